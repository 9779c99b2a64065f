//! Linearizable reads: ReadIndex, forwarding from followers, leases.

mod common;

use std::time::Duration;

use ballot_core::{Output, PersistId, ProposeError, Protocol, ReadId, Role};
use ballot_raft::{Config, ElectionConfig, HardState, Message, Raft};
use common::*;

fn heartbeats(outs: &[Out]) -> Vec<(u64, u64)> {
    sends(outs)
        .into_iter()
        .filter_map(|(to, m)| match m {
            Message::Heartbeat { seq, .. } => Some((to.get(), seq)),
            _ => None,
        })
        .collect()
}

#[test]
fn read_index_is_confirmed_by_a_heartbeat_round() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.propose(1, "w").unwrap();
    c.advance(Duration::from_millis(50));
    let commit = c.raft(1).commit_index();
    assert_eq!(commit, 2);
    let now = c.now;
    let r = c.raft_mut(1);
    r.read(now, ReadId(9)).unwrap();
    r.read(now, ReadId(10)).unwrap();
    let out = drain(r);
    assert!(!out.iter().any(|o| matches!(o, Output::ReadReady { .. })), "not before a quorum confirms");
    let hb = heartbeats(&out);
    assert_eq!(hb.len(), 2, "one round for both reads: {hb:?}");
    let seq = hb[0].1;
    let term = r.term();
    r.handle_message(now, n(3), Message::HeartbeatResponse { term, seq: seq - 1 });
    assert!(drain(r).is_empty(), "an older round does not confirm these reads");
    r.handle_message(now, n(2), Message::HeartbeatResponse { term, seq });
    assert_eq!(
        drain(r),
        vec![Output::ReadReady { id: ReadId(9), index: commit }, Output::ReadReady { id: ReadId(10), index: commit }]
    );
}

#[test]
fn a_new_leader_serves_reads_only_after_its_noop_commits() {
    let cfg = Config { election: ElectionConfig { pre_vote: false, ..ElectionConfig::default() }, ..Config::new(n(1)) };
    // n1 has an entry of term 1 that may be committed; it becomes leader of term 2.
    let hs = HardState { term: 1, vote: None, commit: 0 };
    let mut r: Raft = recovered(cfg, &[1, 2, 3], vec![cmd(1, 1)], hs).unwrap();
    let t = r.poll_timeout().unwrap();
    r.handle_timeout(t);
    drain(&mut r);
    r.persisted(t, PersistId(1));
    r.handle_message(t, n(2), Message::RequestVoteResponse { term: 2, pre_vote: false, granted: true });
    let out = drain(&mut r);
    assert_eq!(r.role(), Role::Leader);
    r.persisted(t, persists(&out)[0].id);
    drain(&mut r);
    r.read(t, ReadId(1)).unwrap();
    let out = drain(&mut r);
    assert!(heartbeats(&out).is_empty(), "nothing to confirm yet: the commit index is not known");
    // Heartbeat acknowledgements alone do not help.
    r.handle_timeout(t + Duration::from_millis(100));
    let seq = heartbeats(&drain(&mut r))[0].1;
    r.handle_message(t, n(2), Message::HeartbeatResponse { term: 2, seq });
    assert!(!drain(&mut r).iter().any(|o| matches!(o, Output::ReadReady { .. })));
    // The no-op (index 2) commits: the read gets index 2 after one more round.
    r.handle_message(t, n(2), Message::AppendEntriesResponse { term: 2, index: 2, reject: None });
    assert_eq!(r.commit_index(), 2);
    let out = drain(&mut r);
    let seq = heartbeats(&out)[0].1;
    r.handle_message(t, n(3), Message::HeartbeatResponse { term: 2, seq });
    assert_eq!(drain(&mut r), vec![Output::ReadReady { id: ReadId(1), index: 2 }]);
}

#[test]
fn followers_forward_reads_to_the_leader() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.record_trace = true;
    c.elect(1);
    c.propose(1, "w").unwrap();
    let rid = c.read(2).unwrap();
    c.deliver();
    assert!(c.trace.iter().any(|(f, t, m)| *f == n(2) && *t == n(1) && matches!(m, Message::ReadIndex { .. })));
    assert_eq!(c.node(2).reads, vec![(rid, 2)]);
    // The driver serves the read once n2 has applied index 2, which it soon does.
    c.advance(Duration::from_millis(100));
    assert!(c.node(2).last_applied() >= 2);
}

#[test]
fn reads_fail_fast_without_a_leader() {
    let mut r = fresh(1, &[1, 2, 3]);
    assert_eq!(r.read(ms(0), ReadId(1)), Err(ProposeError::NotLeader { leader: None }));
}

#[test]
fn a_partitioned_leader_never_confirms_a_read() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.advance(Duration::from_millis(200));
    c.isolate(1);
    let rid = c.read(1).unwrap();
    let forwarded = c.read(2).unwrap();
    c.advance(Duration::from_secs(3));
    assert!(c.node(1).reads.is_empty());
    assert_eq!(c.node(1).read_failures, vec![(rid, ProposeError::LeadershipLost)]);
    assert_eq!(c.node(2).read_failures, vec![(forwarded, ProposeError::LeadershipLost)]);
}

#[test]
fn pending_reads_are_bounded() {
    let mut c = Cluster::with_config(&[1, 2, 3], |id| Config { max_pending_proposals: 2, ..Config::new(n(id)) });
    c.elect(1);
    c.advance(Duration::from_millis(200));
    c.isolate(1);
    c.read(1).unwrap();
    c.read(1).unwrap();
    assert_eq!(c.read(1), Err(ProposeError::Busy));
}

fn lease_cluster() -> Cluster {
    Cluster::with_config(&[1, 2, 3], |id| Config {
        election: ElectionConfig { lease_reads: true, ..ElectionConfig::default() },
        ..Config::new(n(id))
    })
}

#[test]
fn lease_reads_answer_without_a_round_trip_while_the_lease_holds() {
    let mut c = lease_cluster();
    c.advance(Duration::from_secs(3));
    let l = c.leader().expect("leader");
    c.advance(Duration::from_millis(250));
    let now = c.now;
    let commit = c.raft(l).commit_index();
    let r = c.raft_mut(l);
    r.read(now, ReadId(1)).unwrap();
    assert_eq!(drain(r), vec![Output::ReadReady { id: ReadId(1), index: commit }], "no heartbeat round needed");
    // Cut off, the leader keeps serving from its lease only while followers are still
    // bound not to elect anyone else: the lease ends 10 % before their stickiness does.
    c.isolate(l);
    c.advance(Duration::from_millis(700));
    let now = c.now;
    let r = c.raft_mut(l);
    r.read(now, ReadId(2)).unwrap();
    assert!(drain(r).contains(&Output::ReadReady { id: ReadId(2), index: commit }));
    assert!(c.nodes.values().all(|x| x.raft.role() != Role::Leader || x.config.id == n(l)));
    c.advance(Duration::from_millis(300));
    let now = c.now;
    let r = c.raft_mut(l);
    r.read(now, ReadId(3)).unwrap();
    let out = drain(r);
    assert!(!out.iter().any(|o| matches!(o, Output::ReadReady { .. })), "lease expired: {out:?}");
    assert!(!heartbeats(&out).is_empty(), "falls back to ReadIndex");
}

#[test]
fn the_lease_is_not_used_during_a_leadership_transfer() {
    let mut c = lease_cluster();
    c.advance(Duration::from_secs(3));
    let l = c.leader().expect("leader");
    c.advance(Duration::from_millis(250));
    let target = if l == 1 { 2 } else { 1 };
    c.filter = Some(Box::new(|_, _, m| !matches!(m, Message::TimeoutNow { .. })));
    let now = c.now;
    c.raft_mut(l).transfer_leadership(now, n(target)).unwrap();
    let r = c.raft_mut(l);
    r.read(now, ReadId(1)).unwrap();
    let out = drain(r);
    assert!(!out.iter().any(|o| matches!(o, Output::ReadReady { .. })), "the target may campaign past stickiness");
    assert!(!heartbeats(&out).is_empty());
}

#[test]
fn a_restarted_replica_with_leases_refuses_votes_for_an_election_timeout() {
    let cfg =
        Config { election: ElectionConfig { lease_reads: true, ..ElectionConfig::default() }, ..Config::new(n(2)) };
    let mut r = recovered(cfg, &[1, 2, 3], vec![], HardState { term: 3, vote: None, commit: 0 }).unwrap();
    let req = Message::RequestVote { term: 4, pre_vote: false, last_log_index: 0, last_log_term: 0, transfer: false };
    r.handle_message(ms(500), n(3), req.clone());
    assert!(drain(&mut r).is_empty(), "it may have supported a leader's lease before restarting");
    r.handle_message(ms(1000), n(3), req);
    drain(&mut r);
    assert_eq!(r.hard_state().vote, Some(n(3)));
}
