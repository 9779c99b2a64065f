//! Restart from `Recovered`, and what recovery refuses.

mod common;

use std::time::Duration;

use ballot_core::{
    Apply, LogStore, Membership, NodeId, Output, ProposalId, Protocol, Recovered, Role, SeededRng, Snapshot,
    SnapshotMeta,
};
use ballot_raft::{Config, HardState, Message, Raft, RaftError};
use bytes::Bytes;
use common::*;

#[test]
fn a_restart_rebuilds_exactly_what_was_durable() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    for i in 0..6 {
        c.propose(1, &format!("c{i}")).unwrap();
    }
    c.advance(Duration::from_millis(300));
    let (now, applied) = (c.now, c.raft(2).applied_index());
    c.raft_mut(2).compact(now, applied - 2, Bytes::from_static(b"state"));
    c.drain(n(2));
    let before: Vec<_> = (1..=3)
        .map(|i| {
            let r = c.raft(i);
            (r.term(), r.hard_state().vote, r.first_index(), r.last_index(), r.snapshot_index())
        })
        .collect();
    for i in 1..=3 {
        c.crash(i);
    }
    for i in 1..=3 {
        c.restart(i);
    }
    for i in 1..=3 {
        let r = c.raft(i);
        assert_eq!(
            (r.term(), r.hard_state().vote, r.first_index(), r.last_index(), r.snapshot_index()),
            before[i as usize - 1],
            "n{i}"
        );
        assert_eq!(r.role(), Role::Follower);
        assert_eq!(r.leader(), None);
    }
    // n2 restores its snapshot first, then replays the committed entries after it.
    let applied = &c.node(2).applied;
    assert!(matches!(&applied[0], Apply::Restore(s) if s.data == Bytes::from_static(b"state")));
    assert_eq!(applied.last().map(Apply::index), Some(c.raft(2).commit_index()));
    // Proposals of the previous incarnation are not reported as this one's.
    assert!(c.node(1).answered().is_empty());
    // The commit index is written lazily (with the next batch), so a restart replays a
    // prefix of what was applied; the rest is re-learned from the leader.
    let replayed = c.node(1).commands();
    let all: Vec<Bytes> = (0..6).map(|i| Bytes::from(format!("c{i}"))).collect();
    assert_eq!(replayed[..], all[..replayed.len()]);
    c.advance(Duration::from_secs(3));
    assert_eq!(c.node(1).commands()[..6], all[..]);
    let l = c.leader().expect("a leader after the restart");
    let pid = c.propose(l, "after restart").unwrap();
    c.advance(Duration::from_millis(100));
    assert!(c.node(l).answered().contains(&pid));
    c.check_safety();
}

#[test]
fn a_leader_crashing_before_its_own_write_loses_nothing_committed() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.advance(Duration::from_millis(200));
    c.node_mut(1).auto_persist = false;
    let pid = c.propose(1, "x").unwrap();
    assert_eq!(c.raft(1).commit_index(), 2, "committed by the two followers");
    assert!(c.node(1).answered().is_empty(), "but not applied on the leader, whose write is pending");
    c.crash(1);
    c.node_mut(1).auto_persist = true;
    c.restart(1);
    assert_eq!(c.raft(1).last_index(), 1, "the unwritten entry is gone locally");
    c.advance(Duration::from_secs(3));
    c.check_safety();
    assert_eq!(c.node(1).commands(), vec!["x"], "it comes back from the new leader");
    assert!(!c.node(1).answered().contains(&pid));
}

#[test]
fn a_vote_survives_a_restart() {
    let mut c = Cluster::new(&[1, 2, 3]);
    let now = c.now;
    let req =
        |term| Message::RequestVote { term, pre_vote: false, last_log_index: 0, last_log_term: 0, transfer: false };
    c.raft_mut(1).handle_message(now, n(2), req(5));
    c.drain(n(1));
    c.crash(1);
    c.restart(1);
    assert_eq!(c.raft(1).hard_state(), HardState { term: 5, vote: Some(n(2)), commit: 0 });
    let r = c.raft_mut(1);
    r.handle_message(now, n(3), req(5));
    let out = drain(r);
    assert!(sends(&out).contains(&(n(3), Message::RequestVoteResponse { term: 5, pre_vote: false, granted: false })));
}

fn try_recover(rec: Recovered<ballot_raft::Entry, HardState>) -> Result<Raft, RaftError> {
    Raft::new(Config::new(n(1)), members(&[1, 2, 3]), rec, SeededRng::new(1), ms(0))
}

#[test]
fn inconsistent_recovered_state_is_refused() {
    let hs = |term, commit| Some(HardState { term, vote: None, commit });
    let snap = |index, term| {
        Some(Snapshot { meta: SnapshotMeta { index, term, membership: members(&[1, 2, 3]) }, data: Bytes::new() })
    };
    let cases = [
        ("gap", Recovered { hard_state: hs(2, 0), snapshot: None, entries: vec![cmd(1, 1), cmd(3, 1)] }),
        ("gap after snapshot", Recovered { hard_state: hs(2, 0), snapshot: snap(5, 1), entries: vec![cmd(7, 1)] }),
        ("term past hard state", Recovered { hard_state: hs(1, 0), snapshot: None, entries: vec![cmd(1, 2)] }),
        ("terms decreasing", Recovered { hard_state: hs(3, 0), snapshot: None, entries: vec![cmd(1, 2), cmd(2, 1)] }),
        ("commit past log", Recovered { hard_state: hs(1, 5), snapshot: None, entries: vec![cmd(1, 1)] }),
        ("snapshot newer than term", Recovered { hard_state: hs(1, 0), snapshot: snap(5, 2), entries: vec![] }),
        ("no hard state but entries", Recovered { hard_state: None, snapshot: None, entries: vec![cmd(1, 1)] }),
    ];
    for (what, rec) in cases {
        assert!(matches!(try_recover(rec), Err(RaftError::CorruptRecovery(_))), "{what}");
    }
    // Entries the snapshot covers are skipped, not an error.
    let ok = Recovered { hard_state: hs(1, 0), snapshot: snap(2, 1), entries: vec![cmd(2, 1), cmd(3, 1)] };
    let r = try_recover(ok).unwrap();
    assert_eq!((r.first_index(), r.last_index(), r.commit_index()), (3, 3, 2));
}

#[test]
fn an_invalid_config_is_refused() {
    let cfg = Config { max_append_entries: 0, ..Config::new(n(1)) };
    let r = Raft::new(cfg, members(&[1]), Recovered::default(), SeededRng::new(1), ms(0));
    assert!(matches!(r, Err(RaftError::InvalidConfig { field: "max_append_entries", .. })));
}

#[test]
fn a_restart_emits_the_snapshot_then_committed_entries() {
    let snapshot = Snapshot {
        meta: SnapshotMeta { index: 5, term: 2, membership: members(&[1, 2, 3]) },
        data: Bytes::from_static(b"s5"),
    };
    let rec = Recovered {
        hard_state: Some(HardState { term: 3, vote: Some(NodeId(1)), commit: 7 }),
        snapshot: Some(snapshot.clone()),
        entries: vec![cmd(6, 2), cmd(7, 3), cmd(8, 3)],
    };
    let mut r = try_recover(rec).unwrap();
    let out = drain(&mut r);
    assert_eq!(
        out,
        vec![
            Output::Apply(Apply::Restore(Box::new(snapshot))),
            Output::Apply(Apply::Command { index: 6, command: Bytes::from_static(b"e6t2"), proposal: None }),
            Output::Apply(Apply::Command { index: 7, command: Bytes::from_static(b"e7t3"), proposal: None }),
        ]
    );
    assert_eq!((r.term(), r.commit_index(), r.applied_index(), r.last_index()), (3, 7, 7, 8));
}

#[test]
fn a_node_started_empty_waits_to_be_added() {
    let mut r =
        Raft::new(Config::new(n(4)), Membership::default(), Recovered::default(), SeededRng::new(4), ms(0)).unwrap();
    assert_eq!(r.poll_timeout(), None);
    assert!(drain(&mut r).is_empty());
    assert!(matches!(
        r.propose(ms(0), ProposalId(1), Bytes::new()),
        Err(ballot_core::ProposeError::NotLeader { leader: None })
    ));
    let mut store: ballot_core::MemStore<ballot_raft::Entry, HardState> = ballot_core::MemStore::new();
    assert_eq!(store.recover().unwrap(), Recovered::default());
}
