//! Membership changes by joint consensus, learners, and leadership transfer.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use ballot_core::{Event, Membership, NodeId, Output, PersistId, ProposeError, Protocol, Role};
use ballot_raft::{Config, Entry, EntryPayload, MembershipChange, Message, RaftError};
use common::*;

fn set(ids: &[u64]) -> BTreeSet<NodeId> {
    ids.iter().map(|&i| n(i)).collect()
}

fn joint(voters: &[u64], outgoing: &[u64], learners: &[u64]) -> Membership {
    Membership { voters: set(voters), outgoing: set(outgoing), learners: set(learners) }
}

fn membership_events(c: &Cluster, id: u64) -> Vec<Membership> {
    c.node(id)
        .events
        .iter()
        .filter_map(|e| match e {
            Event::MembershipChanged(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

/// A cluster of `ids` with extra empty nodes `joiners` waiting to be added; n1 leads.
fn cluster_with_joiners(ids: &[u64], joiners: &[u64]) -> Cluster {
    let mut c = Cluster::new(ids);
    for &j in joiners {
        c.add_node(Config::new(n(j)), Membership::default());
    }
    c.elect(1);
    c.advance(Duration::from_millis(200));
    c
}

fn change(c: &mut Cluster, leader: u64, ch: MembershipChange) -> Result<(), RaftError> {
    let now = c.now;
    let r = c.raft_mut(leader).change_membership(now, ch);
    c.deliver();
    r
}

#[test]
fn adding_a_voter_goes_through_a_joint_configuration() {
    let mut c = cluster_with_joiners(&[1, 2, 3], &[4]);
    assert_eq!(c.raft(4).role(), ballot_core::Role::Follower);
    assert_eq!(c.raft(4).poll_timeout(), None, "a node outside any configuration never campaigns");
    let now = c.now;
    c.raft_mut(1).change_membership(now, MembershipChange::new().add_voter(n(4))).unwrap();
    assert_eq!(c.raft(1).membership(), &joint(&[1, 2, 3, 4], &[1, 2, 3], &[]), "in force once appended");
    c.deliver();
    c.advance(Duration::from_millis(200));
    let want = vec![joint(&[1, 2, 3, 4], &[1, 2, 3], &[]), members(&[1, 2, 3, 4])];
    assert_eq!(membership_events(&c, 1), want, "the leader leaves the joint configuration by itself");
    assert_eq!(
        membership_events(&c, 4).last(),
        want.last(),
        "n4 got both entries in one append: the event reports the configuration in force"
    );
    for id in 1..=4 {
        assert_eq!(c.raft(id).membership(), &members(&[1, 2, 3, 4]));
        assert_eq!(c.raft(id).commit_index(), c.raft(1).last_index());
    }
    assert!(c.raft(4).poll_timeout().is_some(), "a voter now");
    c.propose(1, "after").unwrap();
    assert_eq!(c.node(4).commands(), vec!["after"]);
}

#[test]
fn a_joint_configuration_needs_both_majorities() {
    let mut c = cluster_with_joiners(&[1, 2, 3], &[4, 5]);
    c.crash(4);
    c.crash(5);
    let ch = MembershipChange::new().add_voter(n(4)).add_voter(n(5)).remove(n(2)).remove(n(3));
    change(&mut c, 1, ch).unwrap();
    assert_eq!(c.raft(1).membership(), &joint(&[1, 4, 5], &[1, 2, 3], &[]));
    let commit = c.raft(1).commit_index();
    c.propose(1, "x").unwrap();
    c.advance(Duration::from_millis(300));
    assert_eq!(c.raft(1).commit_index(), commit, "the old majority alone cannot commit");
    c.restart(4);
    c.advance(Duration::from_millis(500));
    assert_eq!(c.raft(1).membership(), &members(&[1, 4, 5]));
    assert_eq!(c.raft(1).commit_index(), c.raft(1).last_index());
    assert_eq!(c.node(4).commands(), vec!["x"]);
    // The removed nodes saw the joint configuration and the final one; they stay quiet.
    let t2 = c.raft(2).term();
    c.advance(Duration::from_secs(10));
    assert_eq!(c.raft(2).term(), t2);
    assert_eq!(c.raft(2).poll_timeout(), None);
    assert_eq!(c.leader(), Some(1));
}

#[test]
fn removing_the_leader_makes_it_step_down_once_the_final_configuration_commits() {
    let mut c = cluster_with_joiners(&[1, 2, 3], &[]);
    change(&mut c, 1, MembershipChange::new().remove(n(1))).unwrap();
    c.advance(Duration::from_millis(100));
    assert_eq!(c.raft(1).membership(), &members(&[2, 3]));
    assert_eq!(c.raft(1).role(), Role::Follower, "stepped down after committing its own removal");
    assert_eq!(c.raft(1).poll_timeout(), None, "and never campaigns");
    let final_index = c.raft(1).last_index();
    assert!(c.raft(2).commit_index() >= final_index, "the final configuration committed without n1's vote");
    let l = c.leader().expect("n2 or n3 takes over at once");
    assert!(l == 2 || l == 3);
    assert_eq!(c.raft(l).term(), c.raft(1).term() + 1, "handed over by TimeoutNow, without waiting for a timeout");
    c.propose(l, "without n1").unwrap();
    c.advance(Duration::from_millis(200));
    for id in [2, 3] {
        assert_eq!(c.node(id).commands(), vec!["without n1"]);
    }
    assert!(c.node(1).commands().is_empty());
}

#[test]
fn learners_catch_up_without_voting_and_can_be_promoted() {
    let mut c = cluster_with_joiners(&[1, 2, 3], &[4]);
    for i in 0..5 {
        c.propose(1, &format!("before{i}")).unwrap();
    }
    change(&mut c, 1, MembershipChange::new().add_learner(n(4))).unwrap();
    assert_eq!(membership_events(&c, 1), vec![joint(&[1, 2, 3], &[], &[4])], "a learner change needs no joint step");
    c.advance(Duration::from_millis(200));
    assert_eq!(c.raft(4).role(), Role::Learner);
    assert_eq!(c.raft(4).poll_timeout(), None, "learners never campaign");
    assert!(c.raft(1).is_caught_up(n(4)));
    assert!(!c.raft(1).is_caught_up(n(9)));
    assert_eq!(c.node(4).commands().len(), 5);
    // A learner does not count toward a quorum.
    c.crash(2);
    c.crash(3);
    let commit = c.raft(1).commit_index();
    c.propose(1, "needs voters").unwrap();
    assert_eq!(c.raft(4).last_index(), c.raft(1).last_index(), "the learner has it");
    assert_eq!(c.raft(1).commit_index(), commit, "but cannot commit it");
    c.restart(2);
    c.restart(3);
    c.advance(Duration::from_millis(300));
    let l = c.leader().expect("leader");
    change(&mut c, l, MembershipChange::new().add_voter(n(4))).unwrap();
    c.advance(Duration::from_millis(200));
    assert_eq!(c.raft(l).membership(), &members(&[1, 2, 3, 4]));
    assert_eq!(c.raft(4).role(), Role::Follower);
    assert!(c.node(4).events.contains(&Event::RoleChanged(Role::Follower)));
}

#[test]
fn changes_are_validated_and_one_at_a_time() {
    let mut c = cluster_with_joiners(&[1, 2, 3], &[4]);
    let now = c.now;
    assert_eq!(
        c.raft_mut(2).change_membership(now, MembershipChange::new().add_voter(n(4))),
        Err(RaftError::Rejected(ProposeError::NotLeader { leader: Some(n(1)) }))
    );
    assert!(matches!(
        c.raft_mut(1).change_membership(now, MembershipChange::new().remove(n(1)).remove(n(2)).remove(n(3))),
        Err(RaftError::InvalidMembershipChange(_))
    ));
    let last = c.raft(1).last_index();
    assert_eq!(c.raft_mut(1).change_membership(now, MembershipChange::new().add_voter(n(2))), Ok(()));
    assert_eq!(c.raft(1).last_index(), last, "a change that changes nothing appends nothing");
    // While the joint configuration is not committed, a second change must wait.
    c.filter = Some(Box::new(|from, _, m| !(from == n(1) && matches!(m, Message::AppendEntries { .. }))));
    c.raft_mut(1).change_membership(now, MembershipChange::new().add_voter(n(4))).unwrap();
    assert_eq!(
        c.raft_mut(1).change_membership(now, MembershipChange::new().add_learner(n(5))),
        Err(RaftError::Rejected(ProposeError::Busy))
    );
    c.filter = None;
    c.advance(Duration::from_millis(300));
    assert!(!c.raft(1).membership().is_joint());
    let now = c.now;
    c.raft_mut(1).change_membership(now, MembershipChange::new().add_learner(n(5))).unwrap();
}

#[test]
fn a_truncated_membership_entry_reverts_the_configuration() {
    let mut r = fresh(2, &[1, 2, 3]);
    let conf = Entry { index: 2, term: 1, payload: EntryPayload::Membership(members(&[1, 2, 3, 4])) };
    let noop = |index, term| Entry { index, term, payload: EntryPayload::Noop };
    r.handle_message(
        ms(0),
        n(1),
        Message::AppendEntries {
            term: 1,
            prev_log_index: 0,
            prev_log_term: 0,
            entries: vec![noop(1, 1), conf],
            leader_commit: 1,
        },
    );
    drain(&mut r);
    assert_eq!(r.membership(), &members(&[1, 2, 3, 4]), "in force once appended, before commit");
    r.persisted(ms(0), PersistId(1));
    drain(&mut r);
    // A new leader never had that entry: it is overwritten.
    r.handle_message(
        ms(1),
        n(3),
        Message::AppendEntries {
            term: 2,
            prev_log_index: 1,
            prev_log_term: 1,
            entries: vec![noop(2, 2)],
            leader_commit: 1,
        },
    );
    let out = drain(&mut r);
    assert_eq!(r.membership(), &members(&[1, 2, 3]));
    assert!(out.contains(&Output::Event(Event::MembershipChanged(members(&[1, 2, 3])))));
    assert_eq!(persists(&out)[0].truncate_from, Some(2));
}

#[test]
fn leadership_transfer_hands_over_to_the_target() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.advance(Duration::from_millis(200));
    let term = c.raft(1).term();
    let now = c.now;
    c.raft_mut(1).transfer_leadership(now, n(2)).unwrap();
    c.deliver();
    assert_eq!(c.leader(), Some(2));
    assert_eq!(c.raft(2).term(), term + 1, "the target campaigns at once, without PreVote");
    assert_eq!(c.raft(1).role(), Role::Follower);
    assert_eq!(c.raft(1).leader(), Some(n(2)));
    c.propose(2, "on n2").unwrap();
    c.advance(Duration::from_millis(100));
    assert_eq!(c.node(1).commands(), vec!["on n2"]);
}

#[test]
fn leadership_transfer_catches_the_target_up_first() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.advance(Duration::from_millis(200));
    c.isolate(3);
    for i in 0..20 {
        c.propose(1, &format!("w{i}")).unwrap();
    }
    c.record_trace = true;
    let now = c.now;
    c.raft_mut(1).transfer_leadership(now, n(3)).unwrap();
    c.deliver();
    assert_eq!(c.count(|_, _, m| matches!(m, Message::TimeoutNow { .. })), 0, "not while the target lags");
    assert_eq!(c.propose(1, "refused"), Err(ProposeError::Unavailable("leadership transfer in progress".into())));
    c.heal();
    c.advance(Duration::from_millis(150));
    assert_eq!(c.leader(), Some(3));
    assert_eq!(c.node(3).commands().len(), 20);
    c.check_safety();
}

#[test]
fn leadership_transfer_is_abandoned_after_an_election_timeout() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.advance(Duration::from_millis(200));
    c.filter = Some(Box::new(|_, _, m| !matches!(m, Message::TimeoutNow { .. })));
    let now = c.now;
    c.raft_mut(1).transfer_leadership(now, n(2)).unwrap();
    assert_eq!(c.raft(1).transferring_to(), Some(n(2)));
    assert_eq!(c.propose(1, "x"), Err(ProposeError::Unavailable("leadership transfer in progress".into())));
    c.advance(Duration::from_millis(1001));
    assert_eq!(c.raft(1).transferring_to(), None);
    assert_eq!(c.leader(), Some(1));
    assert!(c.propose(1, "y").is_ok());
}

#[test]
fn leadership_transfer_validates_its_target() {
    let mut c = cluster_with_joiners(&[1, 2, 3], &[4]);
    change(&mut c, 1, MembershipChange::new().add_learner(n(4))).unwrap();
    let now = c.now;
    assert_eq!(c.raft_mut(1).transfer_leadership(now, n(4)), Err(RaftError::NotAVoter(n(4))));
    assert_eq!(c.raft_mut(1).transfer_leadership(now, n(9)), Err(RaftError::NotAVoter(n(9))));
    assert_eq!(c.raft_mut(1).transfer_leadership(now, n(1)), Ok(()));
    assert_eq!(c.raft(1).transferring_to(), None, "to itself: nothing to do");
    assert_eq!(
        c.raft_mut(2).transfer_leadership(now, n(3)),
        Err(RaftError::Rejected(ProposeError::NotLeader { leader: Some(n(1)) }))
    );
}
