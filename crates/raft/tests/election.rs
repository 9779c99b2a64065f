//! Elections: vote granting, the up-to-date check, PreVote, CheckQuorum, leader
//! stickiness, and the durability of votes.

mod common;

use std::time::Duration;

use ballot_core::{Event, NodeId, Output, Persist, PersistId, Protocol, Role};
use ballot_raft::{Config, ElectionConfig, HardState, Message};
use common::*;

fn vote_req(term: u64, last_log_index: u64, last_log_term: u64) -> Message {
    Message::RequestVote { term, pre_vote: false, last_log_index, last_log_term, transfer: false }
}

fn pre_vote_req(term: u64, last_log_index: u64, last_log_term: u64) -> Message {
    Message::RequestVote { term, pre_vote: true, last_log_index, last_log_term, transfer: false }
}

fn hs_batch(id: u64, term: u64, vote: Option<u64>) -> Out {
    let mut p = Persist::new(PersistId(id));
    p.hard_state = Some(HardState { term, vote: vote.map(NodeId), commit: 0 });
    Output::Persist(p)
}

#[test]
fn vote_is_sent_only_after_it_is_durable() {
    let mut r = fresh(1, &[1, 2, 3]);
    r.handle_message(ms(10), n(2), vote_req(1, 0, 0));
    assert_eq!(drain(&mut r), vec![hs_batch(1, 1, Some(2))], "the grant waits for the vote to be written");
    r.persisted(ms(11), PersistId(1));
    assert_eq!(
        drain(&mut r),
        vec![Output::Send {
            to: n(2),
            message: Message::RequestVoteResponse { term: 1, pre_vote: false, granted: true }
        }]
    );
}

#[test]
fn one_vote_per_term_and_repeat_grants_need_no_write() {
    let mut r = fresh(1, &[1, 2, 3]);
    r.handle_message(ms(0), n(2), vote_req(1, 0, 0));
    drain(&mut r);
    r.persisted(ms(0), PersistId(1));
    drain(&mut r);
    r.handle_message(ms(1), n(3), vote_req(1, 0, 0));
    assert_eq!(
        drain(&mut r),
        vec![Output::Send {
            to: n(3),
            message: Message::RequestVoteResponse { term: 1, pre_vote: false, granted: false }
        }]
    );
    r.handle_message(ms(2), n(2), vote_req(1, 0, 0));
    assert_eq!(
        drain(&mut r),
        vec![Output::Send {
            to: n(2),
            message: Message::RequestVoteResponse { term: 1, pre_vote: false, granted: true }
        }],
        "a retransmitted request is granted again, without a new write"
    );
}

#[test]
fn vote_requires_an_up_to_date_log() {
    let cfg = Config::new(n(1));
    let log = vec![cmd(1, 1), cmd(2, 2), cmd(3, 2)];
    let hs = HardState { term: 2, vote: None, commit: 0 };
    let granted = |last_index: u64, last_term: u64| {
        let mut r = recovered(cfg.clone(), &[1, 2, 3], log.clone(), hs).unwrap();
        r.handle_message(ms(0), n(2), vote_req(3, last_index, last_term));
        drain(&mut r);
        r.persisted(ms(0), PersistId(1));
        sends(&drain(&mut r)).into_iter().any(|(_, m)| matches!(m, Message::RequestVoteResponse { granted: true, .. }))
    };
    assert!(!granted(5, 1), "lower last term loses even with a longer log");
    assert!(!granted(2, 2), "same last term, shorter log loses");
    assert!(granted(3, 2), "same last term, same length wins");
    assert!(granted(4, 2), "same last term, longer log wins");
    assert!(granted(1, 3), "higher last term wins even with a shorter log");
}

#[test]
fn pre_vote_does_not_bump_terms_anywhere() {
    let mut r1 = fresh(1, &[1, 2, 3]);
    let t = r1.poll_timeout().expect("election timer");
    assert!(t >= ms(1000) && t < ms(2000), "randomized within [min, max): {t:?}");
    r1.handle_timeout(t);
    let out = drain(&mut r1);
    assert_eq!(r1.role(), Role::PreCandidate);
    assert_eq!(r1.term(), 0, "a pre-candidate keeps its term");
    assert!(persists(&out).is_empty(), "nothing is written for a pre-vote");
    assert_eq!(out[0], Output::Event(Event::RoleChanged(Role::PreCandidate)));
    assert_eq!(sends(&out), vec![(n(2), pre_vote_req(1, 0, 0)), (n(3), pre_vote_req(1, 0, 0))]);

    // A voter grants the pre-vote without changing its own term or vote.
    let mut r2 = fresh(2, &[1, 2, 3]);
    r2.handle_message(t, n(1), pre_vote_req(1, 0, 0));
    assert_eq!(
        drain(&mut r2),
        vec![Output::Send {
            to: n(1),
            message: Message::RequestVoteResponse { term: 1, pre_vote: true, granted: true }
        }]
    );
    assert_eq!((r2.term(), r2.hard_state().vote), (0, None));

    // With a quorum of pre-votes the pre-candidate campaigns for real: now it writes.
    r1.handle_message(t, n(2), Message::RequestVoteResponse { term: 1, pre_vote: true, granted: true });
    let out = drain(&mut r1);
    assert_eq!((r1.role(), r1.term()), (Role::Candidate, 1));
    assert_eq!(persists(&out).len(), 1);
    assert_eq!(sends(&out), vec![(n(2), vote_req(1, 0, 0)), (n(3), vote_req(1, 0, 0))]);
}

#[test]
fn a_partitioned_node_with_pre_vote_does_not_inflate_its_term_or_disrupt() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    let term = c.raft(1).term();
    c.isolate(3);
    c.advance(Duration::from_secs(20));
    assert_eq!(c.raft(3).term(), term, "pre-votes fail without bumping the term");
    c.heal();
    c.advance(Duration::from_secs(5));
    assert_eq!(c.leader(), Some(1), "the rejoining node did not depose the leader");
    assert_eq!(c.raft(1).term(), term);
    assert_eq!(c.raft(3).leader(), Some(n(1)));
}

#[test]
fn without_pre_vote_an_isolated_node_inflates_its_term() {
    let mut c = Cluster::with_config(&[1, 2, 3], |id| Config {
        election: ElectionConfig { pre_vote: false, ..ElectionConfig::default() },
        ..Config::new(n(id))
    });
    c.elect(1);
    let term = c.raft(1).term();
    c.isolate(3);
    c.advance(Duration::from_secs(20));
    assert!(c.raft(3).term() > term + 3, "each timeout starts a real election");
}

#[test]
fn candidate_counts_its_own_vote_only_once_durable() {
    let cfg = Config { election: ElectionConfig { pre_vote: false, ..ElectionConfig::default() }, ..Config::new(n(1)) };
    let mut r = recovered(cfg, &[1, 2, 3], vec![], HardState::default()).unwrap();
    let t = r.poll_timeout().unwrap();
    r.handle_timeout(t);
    let out = drain(&mut r);
    assert_eq!(r.role(), Role::Candidate);
    assert_eq!(persists(&out)[0].id, PersistId(1));
    r.handle_message(t, n(2), Message::RequestVoteResponse { term: 1, pre_vote: false, granted: true });
    drain(&mut r);
    assert_eq!(r.role(), Role::Candidate, "n2's vote alone is not a quorum while our own vote is not durable");
    r.handle_message(t, n(3), Message::RequestVoteResponse { term: 1, pre_vote: false, granted: true });
    drain(&mut r);
    assert_eq!(
        r.role(),
        Role::Candidate,
        "a quorum without us is not enough either: a leader's term must be durable before it acts on it"
    );
    r.persisted(t, PersistId(1));
    drain(&mut r);
    assert_eq!(r.role(), Role::Leader);
}

#[test]
fn single_voter_elects_itself_once_its_vote_is_durable() {
    let mut r = fresh(1, &[1]);
    let t = r.poll_timeout().unwrap();
    r.handle_timeout(t);
    let out = drain(&mut r);
    assert_eq!(r.role(), Role::Candidate);
    r.persisted(t, persists(&out)[0].id);
    let out = drain(&mut r);
    assert_eq!(r.role(), Role::Leader);
    assert!(out.contains(&Output::Event(Event::LeaderChanged { leader: Some(n(1)), term: 1 })));
    // Its no-op commits once its own write is durable.
    let batch = persists(&out).pop().expect("the no-op batch");
    assert_eq!(batch.entries.len(), 1);
    assert_eq!(r.commit_index(), 0);
    r.persisted(t, batch.id);
    drain(&mut r);
    assert_eq!(r.commit_index(), 1);
}

#[test]
fn rejected_votes_end_the_campaign() {
    let cfg = Config { election: ElectionConfig { pre_vote: false, ..ElectionConfig::default() }, ..Config::new(n(1)) };
    let mut r = recovered(cfg, &[1, 2, 3], vec![], HardState::default()).unwrap();
    let t = r.poll_timeout().unwrap();
    r.handle_timeout(t);
    drain(&mut r);
    r.persisted(t, PersistId(1));
    for v in [2, 3] {
        r.handle_message(t, n(v), Message::RequestVoteResponse { term: 1, pre_vote: false, granted: false });
    }
    drain(&mut r);
    assert_eq!((r.role(), r.term()), (Role::Follower, 1));
}

#[test]
fn leader_stickiness_ignores_vote_requests_while_the_leader_is_heard() {
    let mut r = fresh(2, &[1, 2, 3]);
    r.handle_message(ms(0), n(1), Message::Heartbeat { term: 1, commit: 0, seq: 1 });
    drain(&mut r);
    r.persisted(ms(0), PersistId(1));
    assert_eq!(r.leader(), Some(n(1)));
    // Within election.timeout_min of the leader's last message: ignored outright.
    r.handle_message(ms(500), n(3), vote_req(2, 10, 1));
    r.handle_message(ms(500), n(3), pre_vote_req(2, 10, 1));
    assert_eq!(drain(&mut r), vec![], "no answer, and no term change");
    assert_eq!(r.term(), 1);
    // A campaign following a leadership transfer is not ignored.
    let transfer =
        Message::RequestVote { term: 2, pre_vote: false, last_log_index: 10, last_log_term: 1, transfer: true };
    let mut r2 = fresh(2, &[1, 2, 3]);
    r2.handle_message(ms(0), n(1), Message::Heartbeat { term: 1, commit: 0, seq: 1 });
    drain(&mut r2);
    r2.persisted(ms(0), PersistId(1));
    r2.handle_message(ms(500), n(3), transfer);
    drain(&mut r2);
    r2.persisted(ms(500), PersistId(2));
    assert!(
        sends(&drain(&mut r2))
            .contains(&(n(3), Message::RequestVoteResponse { term: 2, pre_vote: false, granted: true }))
    );
    // Once the leader has been silent for election.timeout_min, votes are considered.
    r.handle_message(ms(1001), n(3), vote_req(2, 10, 1));
    drain(&mut r);
    r.persisted(ms(1001), PersistId(2));
    let out = drain(&mut r);
    assert_eq!(r.term(), 2);
    assert!(sends(&out).contains(&(n(3), Message::RequestVoteResponse { term: 2, pre_vote: false, granted: true })));
}

#[test]
fn without_check_quorum_there_is_no_stickiness() {
    let cfg =
        Config { election: ElectionConfig { check_quorum: false, ..ElectionConfig::default() }, ..Config::new(n(2)) };
    let mut r = recovered(cfg, &[1, 2, 3], vec![], HardState::default()).unwrap();
    r.handle_message(ms(0), n(1), Message::Heartbeat { term: 1, commit: 0, seq: 1 });
    r.handle_message(ms(10), n(3), vote_req(2, 0, 0));
    drain(&mut r);
    assert_eq!((r.term(), r.hard_state().vote), (2, Some(n(3))));
}

#[test]
fn check_quorum_makes_an_isolated_leader_step_down() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.isolate(1);
    c.advance(Duration::from_millis(900));
    assert_eq!(c.raft(1).role(), Role::Leader, "not before an election timeout");
    c.advance(Duration::from_millis(1200));
    assert_eq!(c.raft(1).role(), Role::Follower, "no quorum heard within an election timeout");
    assert_eq!(c.raft(1).leader(), None);
    assert!(c.node(1).events.contains(&Event::RoleChanged(Role::Follower)));
    // The majority side elected a new leader meanwhile.
    let new = c.leader().expect("majority elects");
    assert_ne!(new, 1);
}

#[test]
fn without_check_quorum_an_isolated_leader_stays_leader() {
    let mut c = Cluster::with_config(&[1, 2, 3], |id| Config {
        election: ElectionConfig { check_quorum: false, ..ElectionConfig::default() },
        ..Config::new(n(id))
    });
    c.elect(1);
    c.isolate(1);
    c.advance(Duration::from_secs(10));
    assert_eq!(c.raft(1).role(), Role::Leader);
}

#[test]
fn leader_steps_down_on_a_higher_term() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    let t = c.raft(1).term();
    let now = c.now;
    c.raft_mut(1).handle_message(now, n(2), Message::HeartbeatResponse { term: t + 5, seq: 0 });
    c.drain(n(1));
    assert_eq!((c.raft(1).role(), c.raft(1).term()), (Role::Follower, t + 5));
}

#[test]
fn stale_leader_is_told_the_new_term() {
    let mut r = fresh(2, &[1, 2, 3]);
    r.handle_message(ms(0), n(3), Message::Heartbeat { term: 5, commit: 0, seq: 1 });
    drain(&mut r);
    r.handle_message(ms(1), n(1), Message::Heartbeat { term: 3, commit: 0, seq: 9 });
    assert_eq!(drain(&mut r), vec![Output::Send { to: n(1), message: Message::HeartbeatResponse { term: 5, seq: 0 } }]);
}

#[test]
fn events_report_leader_and_role_changes() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(2);
    let term = c.raft(2).term();
    let ev = &c.node(2).events;
    assert!(ev.contains(&Event::RoleChanged(Role::PreCandidate)));
    assert!(ev.contains(&Event::RoleChanged(Role::Candidate)));
    assert!(ev.contains(&Event::RoleChanged(Role::Leader)));
    assert_eq!(ev.last(), Some(&Event::LeaderChanged { leader: Some(n(2)), term }));
    assert!(c.node(1).events.contains(&Event::LeaderChanged { leader: Some(n(2)), term }));
}

#[test]
fn election_timeouts_are_randomized_per_seed() {
    let deadlines: std::collections::BTreeSet<_> = (1..=20)
        .map(|seed| {
            let r = ballot_raft::Raft::new(
                Config::new(n(1)),
                members(&[1, 2, 3]),
                Default::default(),
                ballot_core::SeededRng::new(seed),
                ms(0),
            )
            .unwrap();
            r.poll_timeout().unwrap()
        })
        .collect();
    assert!(deadlines.len() > 15, "timeouts should differ across seeds");
    assert!(deadlines.iter().all(|&t| t >= ms(1000) && t < ms(2000)));
}

fn before(t: ballot_core::Instant, millis: u64) -> ballot_core::Instant {
    ballot_core::Instant::from_nanos(t.as_nanos() - millis * 1_000_000)
}

#[test]
fn only_a_granted_vote_restarts_the_election_timer() {
    // n3 holds the newest log; n1, with a stale one, keeps campaigning (no PreVote). n3
    // adopts each new term but must still time out and campaign itself (Raft §5.2).
    let cfg = Config { election: ElectionConfig { pre_vote: false, ..ElectionConfig::default() }, ..Config::new(n(3)) };
    let hs = HardState { term: 2, vote: None, commit: 0 };
    let mut r = recovered(cfg, &[1, 2, 3], vec![cmd(1, 1), cmd(2, 2)], hs).unwrap();
    let deadline = r.poll_timeout().unwrap();
    r.handle_message(before(deadline, 10), n(1), vote_req(3, 1, 1));
    drain(&mut r);
    assert_eq!((r.term(), r.hard_state().vote), (3, None), "higher term adopted, vote refused");
    assert_eq!(r.poll_timeout(), Some(deadline), "a refused vote does not restart the timer");
    r.handle_message(before(deadline, 5), n(2), vote_req(4, 2, 2));
    drain(&mut r);
    assert_eq!(r.hard_state().vote, Some(n(2)));
    assert!(r.poll_timeout().unwrap() > deadline, "granting a vote does");
}
