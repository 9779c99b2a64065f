//! Snapshots: compaction, chunked InstallSnapshot with loss and restarts, durability of
//! the restore, and membership carried in snapshots.

mod common;

use std::time::Duration;

use ballot_core::{Apply, Membership, Output, PersistId, Protocol, Snapshot, SnapshotMeta};
use ballot_raft::{Config, MembershipChange, Message};
use bytes::Bytes;
use common::*;

fn data(len: usize) -> Bytes {
    Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}

fn chunks(c: &Cluster, to: u64) -> Vec<(u64, usize)> {
    c.trace
        .iter()
        .filter_map(|(_, t, m)| match m {
            Message::InstallSnapshot { offset, data, .. } if *t == n(to) => Some((*offset, data.len())),
            _ => None,
        })
        .collect()
}

fn restores(c: &Cluster, id: u64) -> Vec<Snapshot> {
    c.node(id)
        .applied
        .iter()
        .filter_map(|a| match a {
            Apply::Restore(s) => Some(Snapshot::clone(s)),
            _ => None,
        })
        .collect()
}

/// n1 leads {1,2,3}; n3 is down while ten commands commit; then n1 compacts everything
/// it applied into a 95-byte snapshot.
fn lagging_cluster() -> Cluster {
    let mut c = Cluster::with_config(&[1, 2, 3], |id| Config { max_snapshot_chunk: 10, ..Config::new(n(id)) });
    c.elect(1);
    c.advance(Duration::from_millis(200));
    c.crash(3);
    for i in 0..10 {
        c.propose(1, &format!("c{i}")).unwrap();
    }
    c.advance(Duration::from_millis(200));
    let (now, applied) = (c.now, c.raft(1).applied_index());
    assert_eq!(applied, 11);
    c.raft_mut(1).compact(now, applied, data(95));
    c.drain(n(1));
    c
}

#[test]
fn compaction_records_the_snapshot_and_drops_covered_entries() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    for i in 0..5 {
        c.propose(1, &format!("c{i}")).unwrap();
    }
    c.advance(Duration::from_millis(100));
    let now = c.now;
    let term = c.raft(1).term();
    let r = c.raft_mut(1);
    assert_eq!(r.applied_index(), 6);
    r.compact(now, 7, Bytes::from_static(b"beyond applied"));
    r.compact(now, 0, Bytes::new());
    assert!(drain(r).is_empty(), "compacting past what was applied, or before the snapshot, is ignored");
    r.compact(now, 4, Bytes::from_static(b"state@4"));
    let out = drain(r);
    assert_eq!(out.len(), 1);
    let Output::Persist(p) = &out[0] else { panic!("expected a persist, got {out:?}") };
    let snap = Snapshot {
        meta: SnapshotMeta { index: 4, term, membership: members(&[1, 2, 3]) },
        data: Bytes::from_static(b"state@4"),
    };
    assert_eq!((p.snapshot.as_deref(), p.compact_to, p.entries.len()), (Some(&snap), Some(4), 0));
    assert_eq!((r.first_index(), r.snapshot_index(), r.last_index()), (5, 4, 6));
    assert_eq!((r.entry(4), r.term_at(4), r.term_at(3)), (None, Some(term), None));
    assert_eq!(r.status().snapshot_index, 4);
    r.compact(now, 4, Bytes::new());
    assert!(drain(r).is_empty(), "the same index twice is ignored");
}

#[test]
fn a_lagging_follower_receives_the_snapshot_in_chunks() {
    let mut c = lagging_cluster();
    c.record_trace = true;
    c.restart(3);
    c.advance(Duration::from_millis(300));
    let sent = chunks(&c, 3);
    let want: Vec<(u64, usize)> = (0..10).map(|k| (k * 10, if k == 9 { 5 } else { 10 })).collect();
    assert_eq!(sent, want, "ten chunks of at most 10 bytes, in order, each acknowledged before the next");
    let r = restores(&c, 3);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].meta.index, &r[0].data), (11, &data(95)));
    assert_eq!(c.raft(3).first_index(), 12);
    c.propose(1, "after").unwrap();
    c.advance(Duration::from_millis(100));
    assert_eq!(c.node(3).commands(), vec!["after"], "the log continues after the snapshot");
    assert_eq!(c.raft(1).progress(n(3)).unwrap().match_index, c.raft(1).last_index());
}

#[test]
fn lost_chunks_and_acknowledgements_are_resent() {
    let mut c = lagging_cluster();
    c.record_trace = true;
    let (mut lost_chunk, mut lost_ack) = (false, false);
    let sends_of_30 = std::rc::Rc::new(std::cell::Cell::new(0));
    let counter = sends_of_30.clone();
    c.filter = Some(Box::new(move |_, _, m| match m {
        Message::InstallSnapshot { offset: 30, .. } => {
            counter.set(counter.get() + 1);
            let first = !lost_chunk;
            lost_chunk = true;
            !first
        }
        Message::InstallSnapshotResponse { received: 60, .. } if !lost_ack => {
            lost_ack = true;
            false
        }
        _ => true,
    }));
    c.restart(3);
    c.advance(Duration::from_secs(3));
    let sent = chunks(&c, 3);
    assert_eq!(sends_of_30.get(), 2, "the lost chunk went twice");
    assert_eq!(sent.iter().filter(|(o, _)| *o == 30).count(), 1, "and arrived once: {sent:?}");
    assert_eq!(sent.iter().filter(|(o, _)| *o == 50).count(), 2, "the unacknowledged chunk went twice");
    let r = restores(&c, 3);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].data, data(95), "assembled intact");
}

#[test]
fn a_follower_restarting_mid_transfer_starts_over() {
    let mut c = lagging_cluster();
    c.record_trace = true;
    c.restart(3);
    // Let three chunks through, then crash and restart n3 before the fourth.
    let mut seen = 0;
    c.filter = Some(Box::new(move |_, _, m| {
        if matches!(m, Message::InstallSnapshot { .. }) {
            seen += 1;
            return seen <= 3;
        }
        true
    }));
    c.advance(Duration::from_millis(300));
    assert_eq!(chunks(&c, 3).len(), 3);
    c.crash(3);
    c.restart(3);
    c.filter = None;
    c.advance(Duration::from_secs(2));
    let offsets: Vec<u64> = chunks(&c, 3).iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets.iter().filter(|&&o| o == 0).count(), 2, "started over from 0: {offsets:?}");
    assert_eq!(restores(&c, 3).last().map(|s| s.data.clone()), Some(data(95)));
}

#[test]
fn the_restore_is_applied_and_acknowledged_only_once_durable() {
    let mut c = lagging_cluster();
    c.restart(3);
    c.node_mut(3).auto_persist = false;
    c.advance(Duration::from_millis(300));
    let pending = &c.node(3).unpersisted;
    let snap_batch = pending.iter().find(|b| b.snapshot.is_some()).expect("a batch installs the snapshot");
    assert_eq!((snap_batch.truncate_from, snap_batch.compact_to), (Some(12), Some(11)));
    assert!(restores(&c, 3).is_empty(), "not before the snapshot is durable");
    assert!(c.raft(1).progress(n(3)).unwrap().match_index < 11, "no acknowledgement yet");
    c.persist(3);
    c.deliver();
    assert_eq!(restores(&c, 3).len(), 1);
    assert_eq!(c.raft(3).applied_index(), 11);
    assert!(c.raft(1).progress(n(3)).unwrap().match_index >= 11);
}

#[test]
fn snapshots_carry_the_membership() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.add_node(Config::new(n(4)), Membership::default());
    c.elect(1);
    for i in 0..3 {
        c.propose(1, &format!("c{i}")).unwrap();
    }
    c.advance(Duration::from_millis(100));
    let (now, applied) = (c.now, c.raft(1).applied_index());
    c.raft_mut(1).compact(now, applied, Bytes::from_static(b"s"));
    let now = c.now;
    c.raft_mut(1).change_membership(now, MembershipChange::new().add_learner(n(4))).unwrap();
    c.advance(Duration::from_millis(300));
    let r = restores(&c, 4);
    assert_eq!(r[0].meta.membership, members(&[1, 2, 3]), "the configuration in force at the snapshot index");
    let mut want = members(&[1, 2, 3]);
    want.learners.insert(n(4));
    assert_eq!(c.raft(4).membership(), &want);
    assert_eq!(c.raft(4).role(), ballot_core::Role::Learner);
}

#[test]
fn a_snapshot_the_follower_already_covers_is_acknowledged_without_installing() {
    let mut r = fresh(2, &[1, 2, 3]);
    let ae = Message::AppendEntries {
        term: 1,
        prev_log_index: 0,
        prev_log_term: 0,
        entries: vec![cmd(1, 1), cmd(2, 1)],
        leader_commit: 2,
    };
    r.handle_message(ms(0), n(1), ae);
    drain(&mut r);
    r.persisted(ms(0), PersistId(1));
    drain(&mut r);
    let meta = SnapshotMeta { index: 2, term: 1, membership: members(&[1, 2, 3]) };
    r.handle_message(
        ms(1),
        n(1),
        Message::InstallSnapshot { term: 1, meta, offset: 0, total: 3, data: Bytes::from_static(b"abc") },
    );
    let out = drain(&mut r);
    assert_eq!(
        out,
        vec![Output::Send {
            to: n(1),
            message: Message::InstallSnapshotResponse { term: 1, index: 2, received: 3, done: true }
        }]
    );
    assert_eq!(r.snapshot_index(), 0, "nothing installed");
}
