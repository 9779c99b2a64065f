//! Log replication: durability ordering, fast conflict back-off, the current-term commit
//! rule (Figure 8), batching, pipelining and flow control, loss recovery, proposal
//! failure, limits, and malformed input.

mod common;

use std::time::Duration;

use ballot_core::{Apply, Event, Output, Persist, PersistId, ProposalId, ProposeError, Protocol, Role};
use ballot_raft::{Config, ElectionConfig, Entry, EntryPayload, HardState, Message, Raft, ReplicationState};
use bytes::Bytes;
use common::*;

fn noop(index: u64, term: u64) -> Entry {
    Entry { index, term, payload: EntryPayload::Noop }
}

/// n1 leader of {1,2,3} in term 1, driven by hand; returns it with the outputs of
/// becoming leader (its no-op batch not yet acknowledged).
fn hand_made_leader() -> (Raft, Vec<Out>) {
    let cfg = Config { election: ElectionConfig { pre_vote: false, ..ElectionConfig::default() }, ..Config::new(n(1)) };
    let mut r = recovered(cfg, &[1, 2, 3], vec![], HardState::default()).unwrap();
    let t = r.poll_timeout().unwrap();
    r.handle_timeout(t);
    drain(&mut r);
    r.persisted(t, PersistId(1));
    r.handle_message(t, n(2), Message::RequestVoteResponse { term: 1, pre_vote: false, granted: true });
    let out = drain(&mut r);
    assert_eq!(r.role(), Role::Leader);
    (r, out)
}

#[test]
fn append_acknowledgement_waits_for_durability() {
    let mut r = fresh(2, &[1, 2, 3]);
    let ae = Message::AppendEntries {
        term: 1,
        prev_log_index: 0,
        prev_log_term: 0,
        entries: vec![noop(1, 1)],
        leader_commit: 0,
    };
    r.handle_message(ms(5), n(1), ae);
    let mut batch = Persist::new(PersistId(1));
    batch.entries = vec![noop(1, 1)];
    batch.hard_state = Some(HardState { term: 1, vote: None, commit: 0 });
    assert_eq!(
        drain(&mut r),
        vec![Output::Event(Event::LeaderChanged { leader: Some(n(1)), term: 1 }), Output::Persist(batch)],
        "no acknowledgement before the entries are durable"
    );
    r.persisted(ms(6), PersistId(1));
    assert_eq!(
        drain(&mut r),
        vec![Output::Send { to: n(1), message: Message::AppendEntriesResponse { term: 1, index: 1, reject: None } }]
    );
}

#[test]
fn leader_replicates_while_its_write_is_in_flight_and_counts_itself_once_durable() {
    let (mut r, out) = hand_made_leader();
    let first_persist = out.iter().position(|o| matches!(o, Output::Persist(_))).expect("no-op batch");
    let first_append = out
        .iter()
        .position(|o| matches!(o, Output::Send { message: Message::AppendEntries { .. }, .. }))
        .expect("appends");
    assert!(first_append < first_persist, "appends leave before the leader's own write");
    let noop_batch = persists(&out)[0].clone();
    assert_eq!(noop_batch.entries, vec![noop(1, 1)]);

    // One follower acknowledges: with the leader's write not durable, no quorum.
    let t = ms(2000);
    r.handle_message(t, n(2), Message::AppendEntriesResponse { term: 1, index: 1, reject: None });
    drain(&mut r);
    assert_eq!(r.commit_index(), 0, "the leader does not count its own undurable write");
    r.persisted(t, noop_batch.id);
    let out = drain(&mut r);
    assert_eq!(r.commit_index(), 1);
    assert!(out.contains(&Output::Apply(Apply::Internal { index: 1 })));

    // A proposal committed by the two followers before the leader's own write is durable:
    // committed, but not applied on the leader until durable there.
    r.propose(t, ProposalId(7), Bytes::from_static(b"x")).unwrap();
    let out = drain(&mut r);
    let batch = persists(&out)[0].clone();
    for f in [2, 3] {
        r.handle_message(t, n(f), Message::AppendEntriesResponse { term: 1, index: 2, reject: None });
    }
    let out = drain(&mut r);
    assert_eq!(r.commit_index(), 2);
    assert!(!out.iter().any(|o| matches!(o, Output::Apply(_))), "not applied before the local write is durable");
    r.persisted(t, batch.id);
    let out = drain(&mut r);
    assert!(out.contains(&Output::Apply(Apply::Command {
        index: 2,
        command: Bytes::from_static(b"x"),
        proposal: Some(ProposalId(7))
    })));
}

#[test]
fn follower_applies_committed_entries_only_once_durable() {
    let mut r = fresh(2, &[1, 2, 3]);
    let ae = Message::AppendEntries {
        term: 1,
        prev_log_index: 0,
        prev_log_term: 0,
        entries: vec![noop(1, 1), cmd(2, 1)],
        leader_commit: 2,
    };
    r.handle_message(ms(5), n(1), ae);
    let out = drain(&mut r);
    assert_eq!(r.commit_index(), 2);
    assert!(!out.iter().any(|o| matches!(o, Output::Apply(_))));
    r.persisted(ms(6), PersistId(1));
    let applied: Vec<u64> = drain(&mut r)
        .iter()
        .filter_map(|o| match o {
            Output::Apply(a) => Some(a.index()),
            _ => None,
        })
        .collect();
    assert_eq!(applied, vec![1, 2]);
}

/// n1 holds `leader`, n3 a copy of it, n2 holds `follower`; n1 is elected and brings n2
/// in line. Returns the AppendEntries rejections n2 sent and the `prev_log_index` of the
/// AppendEntries n2 accepted with entries.
fn backoff(leader: &[u64], follower: &[u64]) -> (usize, Vec<u64>) {
    let mut c = Cluster::new(&[1, 2, 3]);
    let term = *leader.iter().chain(follower).max().unwrap();
    c.load(1, leader, term, None);
    c.load(3, leader, term, None);
    c.load(2, follower, term, None);
    c.record_trace = true;
    c.elect(1);
    c.advance(Duration::from_millis(200));
    c.check_safety();
    let last = c.raft(1).last_index();
    assert_eq!(c.raft(2).last_index(), last);
    assert_eq!(c.raft(2).term_at(last), c.raft(1).term_at(last));
    for i in 1..=last {
        assert_eq!(c.raft(2).entry(i), c.raft(1).entry(i), "entry {i}");
    }
    let rejections = c
        .count(|f, t, m| f == n(2) && t == n(1) && matches!(m, Message::AppendEntriesResponse { reject: Some(_), .. }));
    let accepted = c
        .trace
        .iter()
        .filter_map(|(f, t, m)| match m {
            Message::AppendEntries { prev_log_index, entries, .. }
                if *f == n(1) && *t == n(2) && !entries.is_empty() =>
            {
                Some(*prev_log_index)
            }
            _ => None,
        })
        .collect();
    (rejections, accepted)
}

#[test]
fn conflict_backoff_skips_whole_terms() {
    // Raft paper, Figure 7 (f): eight entries behind in two round trips instead of eight.
    let (rejections, _) = backoff(&[1, 1, 1, 4, 4, 5, 5, 6, 6, 6], &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]);
    assert_eq!(rejections, 2);
    // The leader holds the follower's conflicting term: it resumes after its own run of
    // that term instead of at the follower's first index of it.
    let (rejections, accepted) = backoff(&[1, 3, 3, 5], &[1, 3, 3, 3, 3, 3]);
    assert_eq!(rejections, 1);
    assert!(accepted.contains(&3), "resumed right after the leader's last term-3 entry: {accepted:?}");
    // A follower that is merely short is probed from its last index + 1.
    let (rejections, _) = backoff(&[1, 1, 2, 2, 2, 2, 2, 2], &[1, 1]);
    assert_eq!(rejections, 1);
}

#[test]
fn figure8_entries_of_older_terms_are_not_committed_by_counting_replicas() {
    let mut c = Cluster::with_config(&[1, 2, 3, 4, 5], |id| Config {
        election: ElectionConfig { pre_vote: false, check_quorum: false, ..ElectionConfig::default() },
        max_append_entries: 1,
        ..Config::new(n(id))
    });
    let elect = |c: &mut Cluster, id: u64| {
        for _ in 0..10 {
            c.campaign(id);
            if c.raft(id).role() == Role::Leader {
                return;
            }
        }
        panic!("n{id} could not win");
    };
    // (a) n1 leads term 1; its no-op commits everywhere.
    elect(&mut c, 1);
    c.advance(Duration::from_millis(300));
    assert!((1..=5).all(|i| c.raft(i).commit_index() == 1));
    // (b) n1 appends A at index 2 and replicates it only to n2.
    c.filter =
        Some(Box::new(|from, to, m| !(from == n(1) && to != n(2) && matches!(m, Message::AppendEntries { .. }))));
    c.propose(1, "A").unwrap();
    assert_eq!(c.raft(2).last_index(), 2);
    // (c) n1 crashes; n5 wins term 2 with n3 and n4, appends its no-op at index 2, and
    // crashes before sending it anywhere.
    c.crash(1);
    c.filter = Some(Box::new(|from, _, m| !(from == n(5) && matches!(m, Message::AppendEntries { .. }))));
    elect(&mut c, 5);
    assert_eq!(c.raft(5).term_at(2), Some(c.raft(5).term()));
    c.crash(5);
    // (d) n1 restarts and leads again; it gets A onto n3 and n4 but not its new no-op:
    // A is on a majority {1, 2?, 3, 4} yet from an older term, so it must not commit.
    c.restart(1);
    // Nothing at index 3 may be stored anywhere; n3 and n4 may see (and reject, lacking
    // index 2) the first probe that carries it, so that n1 backs off and sends them A.
    let mut probed = std::collections::BTreeSet::new();
    c.filter = Some(Box::new(move |from, to, m| match m {
        Message::AppendEntries { prev_log_index, entries, .. }
            if from == n(1) && entries.iter().any(|e| e.index >= 3) =>
        {
            (to == n(3) || to == n(4)) && *prev_log_index == 2 && probed.insert(to)
        }
        _ => true,
    }));
    elect(&mut c, 1);
    c.advance(Duration::from_millis(300));
    let leader_term = c.raft(1).term();
    assert_eq!(c.raft(1).progress(n(3)).map(|p| p.match_index), Some(2));
    assert_eq!(c.raft(1).progress(n(4)).map(|p| p.match_index), Some(2));
    assert_eq!(c.raft(1).term_at(2), Some(1));
    assert!(leader_term > 1);
    assert_eq!(c.raft(1).commit_index(), 1, "an entry of an older term is not committed by counting replicas");
    // (e) n1 crashes; n5 comes back, wins (its index-2 entry has the newer term) and
    // overwrites A everywhere. Had A been committed, this would lose it.
    c.crash(1);
    c.filter = None;
    c.restart(5);
    elect(&mut c, 5);
    c.restart(1);
    c.advance(Duration::from_secs(1));
    c.check_safety();
    for i in 1..=5 {
        assert!(c.node(i).commands().is_empty(), "A was never applied (n{i})");
        assert_eq!(c.raft(i).term_at(2), Some(2), "n{i} holds n5's entry at index 2");
        assert_eq!(c.raft(i).commit_index(), c.raft(5).commit_index());
    }
}

#[test]
fn many_proposals_travel_in_one_append_and_one_write() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.advance(Duration::from_millis(200));
    c.record_trace = true;
    let now = c.now;
    for i in 0..100 {
        c.raft_mut(1).propose(now, ProposalId(1000 + i), Bytes::from(vec![7u8; 64])).unwrap();
    }
    let out = drain(c.raft_mut(1));
    let ps = persists(&out);
    assert_eq!(ps.len(), 1, "one batch for everything proposed between two polls");
    assert_eq!(ps[0].entries.len(), 100);
    let appends: Vec<usize> = sends(&out)
        .iter()
        .filter_map(|(_, m)| match m {
            Message::AppendEntries { entries, .. } => Some(entries.len()),
            _ => None,
        })
        .collect();
    assert_eq!(appends, vec![100, 100], "one AppendEntries per follower");
}

#[test]
fn appends_are_bounded_by_count_and_bytes() {
    let mut c = Cluster::with_config(&[1, 2, 3], |id| Config { max_append_entries: 10, ..Config::new(n(id)) });
    c.elect(1);
    c.advance(Duration::from_millis(200));
    let now = c.now;
    for i in 0..25 {
        c.raft_mut(1).propose(now, ProposalId(i), Bytes::from(vec![1u8; 10])).unwrap();
    }
    let sizes: Vec<usize> = sends(&drain(c.raft_mut(1)))
        .iter()
        .filter_map(|(to, m)| match m {
            Message::AppendEntries { entries, .. } if *to == n(2) => Some(entries.len()),
            _ => None,
        })
        .collect();
    assert_eq!(sizes, vec![10, 10, 5]);

    let size = cmd(1, 1).size();
    let mut c = Cluster::with_config(&[1, 2, 3], |id| Config { max_append_bytes: 3 * size, ..Config::new(n(id)) });
    c.elect(1);
    c.advance(Duration::from_millis(200));
    let now = c.now;
    for i in 0..7 {
        let data = Bytes::from(format!("e{}t{}", 3 + i, 1)); // same size as `cmd`
        c.raft_mut(1).propose(now, ProposalId(i), data).unwrap();
    }
    let sizes: Vec<usize> = sends(&drain(c.raft_mut(1)))
        .iter()
        .filter_map(|(to, m)| match m {
            Message::AppendEntries { entries, .. } if *to == n(2) => Some(entries.len()),
            _ => None,
        })
        .collect();
    assert_eq!(sizes, vec![3, 3, 1]);
    // A single entry larger than the byte limit still goes, alone.
    let now = c.now;
    c.raft_mut(1).propose(now, ProposalId(99), Bytes::from(vec![0u8; 10 * size])).unwrap();
    c.deliver();
    c.advance(Duration::from_millis(200));
    assert_eq!(c.raft(2).last_index(), c.raft(1).last_index());
}

#[test]
fn pipelining_is_bounded_by_inflight_count_and_bytes() {
    let size = cmd(1, 1).size();
    for (count, bytes, expect) in [(3, usize::MAX, 3), (100, 3 * size - 1, 3), (100, 5 * size, 5)] {
        let mut c = Cluster::with_config(&[1, 2, 3], |id| Config {
            max_append_entries: 1,
            max_inflight_appends: count,
            max_inflight_bytes: bytes,
            ..Config::new(n(id))
        });
        c.elect(1);
        c.advance(Duration::from_millis(200));
        assert_eq!(c.raft(1).progress(n(2)).unwrap().state, ReplicationState::Replicate);
        // n2's acknowledgements are lost: the window fills and stays full.
        c.filter = Some(Box::new(|from, _, m| !(from == n(2) && matches!(m, Message::AppendEntriesResponse { .. }))));
        c.record_trace = true;
        let now = c.now;
        for i in 0..10 {
            let data = Bytes::from(format!("e{}t{}", 10 + i, 1));
            c.raft_mut(1).propose(now, ProposalId(i), data).unwrap();
        }
        c.deliver();
        let to2 = c.count(|f, t, m| {
            f == n(1) && t == n(2) && matches!(m, Message::AppendEntries { entries, .. } if !entries.is_empty())
        });
        let to3 = c.count(|f, t, m| {
            f == n(1) && t == n(3) && matches!(m, Message::AppendEntries { entries, .. } if !entries.is_empty())
        });
        assert_eq!(to2, expect, "window of {count} messages / {bytes} bytes");
        assert_eq!(to3, 10, "an acknowledging follower keeps receiving");
        assert_eq!(c.raft(1).progress(n(2)).unwrap().inflight, expect);
        assert_eq!(c.raft(1).commit_index(), c.raft(1).last_index(), "n3 completes the quorum");
        // Once acknowledgements flow again, the stalled pipeline recovers.
        c.filter = None;
        c.advance(Duration::from_millis(500));
        assert_eq!(c.raft(2).last_index(), c.raft(1).last_index());
        assert_eq!(c.raft(1).progress(n(2)).unwrap().match_index, c.raft(1).last_index());
    }
}

#[test]
fn a_lost_append_is_recovered() {
    // Lost to one follower: the next commit-index update (an empty append) reveals the
    // gap at once, and the leader resends.
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.advance(Duration::from_millis(200));
    let mut dropped = false;
    c.filter = Some(Box::new(move |from, to, m| {
        let data = matches!(m, Message::AppendEntries { entries, .. } if !entries.is_empty());
        if !dropped && from == n(1) && to == n(2) && data {
            dropped = true;
            return false;
        }
        true
    }));
    c.propose(1, "z").unwrap();
    assert_eq!(c.node(2).commands(), vec!["z"]);
}

#[test]
fn a_lost_append_with_no_later_traffic_is_resent_after_a_stall() {
    // Lost to every follower: nothing commits and nothing else is sent. After a
    // heartbeat interval without acknowledgements the leader resends from the match index.
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.advance(Duration::from_millis(200));
    let mut dropped = 0;
    c.filter = Some(Box::new(move |from, _, m| {
        let data = matches!(m, Message::AppendEntries { entries, .. } if !entries.is_empty());
        if dropped < 2 && from == n(1) && data {
            dropped += 1;
            return false;
        }
        true
    }));
    c.propose(1, "z").unwrap();
    assert!(c.node(2).commands().is_empty() && c.node(3).commands().is_empty());
    assert_eq!(c.raft(1).commit_index(), 1);
    c.advance(Duration::from_millis(350));
    assert_eq!(c.node(2).commands(), vec!["z"]);
    assert_eq!(c.node(3).commands(), vec!["z"]);
    assert_eq!(c.node(1).commands(), vec!["z"]);
}

#[test]
fn a_follower_rejects_until_the_leader_finds_the_match_point() {
    let mut r = fresh(2, &[1, 2, 3]);
    let ae = |prev_log_index, prev_log_term| Message::AppendEntries {
        term: 3,
        prev_log_index,
        prev_log_term,
        entries: vec![],
        leader_commit: 0,
    };
    r.handle_message(ms(0), n(1), ae(5, 2));
    let out = drain(&mut r);
    let conflict = ballot_raft::Conflict { term: None, first_index: 1 };
    assert!(
        sends(&out).contains(&(n(1), Message::AppendEntriesResponse { term: 3, index: 5, reject: Some(conflict) }))
    );
}

#[test]
fn proposals_overwritten_by_a_new_leader_fail() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.elect(1);
    c.advance(Duration::from_millis(200));
    c.isolate(1);
    let lost = c.propose(1, "lost").unwrap();
    c.advance(Duration::from_secs(4));
    let new = c.leader().expect("the majority elects a leader");
    assert_ne!(new, 1);
    c.propose(new, "kept").unwrap();
    c.heal();
    c.advance(Duration::from_secs(1));
    assert_eq!(c.node(1).proposal_failures, vec![(lost, ProposeError::LeadershipLost)]);
    assert_eq!(c.node(1).commands(), vec!["kept"]);
    c.check_safety();
}

#[test]
fn followers_and_the_leader_refuse_what_they_cannot_take() {
    let mut c = Cluster::with_config(&[1, 2, 3], |id| Config {
        max_command_size: 10,
        max_pending_proposals: 3,
        ..Config::new(n(id))
    });
    let now = c.now;
    assert_eq!(c.raft_mut(2).propose(now, ProposalId(1), Bytes::new()), Err(ProposeError::NotLeader { leader: None }));
    c.elect(1);
    c.advance(Duration::from_millis(200));
    let now = c.now;
    assert_eq!(
        c.raft_mut(2).propose(now, ProposalId(1), Bytes::new()),
        Err(ProposeError::NotLeader { leader: Some(n(1)) })
    );
    assert_eq!(
        c.raft_mut(1).propose(now, ProposalId(1), Bytes::from_static(b"01234567890")),
        Err(ProposeError::TooLarge { size: 11, max: 10 })
    );
    c.raft_mut(1).propose(now, ProposalId(2), Bytes::from_static(b"0123456789")).unwrap();
    c.isolate(1);
    for i in 3..5 {
        c.propose(1, &format!("p{i}")).unwrap();
    }
    assert_eq!(c.propose(1, "p5"), Err(ProposeError::Busy), "three uncommitted entries already");
    c.heal();
    c.advance(Duration::from_millis(300));
    assert!(c.propose(1, "fits again").is_ok());
}

#[test]
fn malformed_messages_are_dropped_without_effect() {
    let mut r = fresh(2, &[1, 2, 3]);
    let bad = [
        // A gap between prev_log_index and the first entry.
        Message::AppendEntries {
            term: 1,
            prev_log_index: 0,
            prev_log_term: 0,
            entries: vec![cmd(2, 1)],
            leader_commit: 0,
        },
        // An entry from a term newer than the message's.
        Message::AppendEntries {
            term: 1,
            prev_log_index: 0,
            prev_log_term: 0,
            entries: vec![cmd(1, 2)],
            leader_commit: 0,
        },
        // Index overflow.
        Message::AppendEntries {
            term: 1,
            prev_log_index: u64::MAX,
            prev_log_term: 1,
            entries: vec![cmd(0, 1)],
            leader_commit: u64::MAX,
        },
        // Terms going backwards.
        Message::AppendEntries {
            term: 2,
            prev_log_index: 0,
            prev_log_term: 0,
            entries: vec![cmd(1, 2), cmd(2, 1)],
            leader_commit: 0,
        },
        // A snapshot chunk past its declared end, and one whose offset overflows.
        Message::InstallSnapshot {
            term: 2,
            meta: ballot_core::SnapshotMeta { index: 5, term: 1, membership: members(&[1, 2, 3]) },
            offset: 0,
            total: 3,
            data: Bytes::from_static(b"four"),
        },
        Message::InstallSnapshot {
            term: 2,
            meta: ballot_core::SnapshotMeta { index: 5, term: 1, membership: members(&[1, 2, 3]) },
            offset: u64::MAX,
            total: u64::MAX,
            data: Bytes::from_static(b"x"),
        },
    ];
    for m in bad {
        r.handle_message(ms(0), n(1), m);
        let out = drain(&mut r);
        assert!(sends(&out).is_empty(), "no reply to a malformed message: {out:?}");
        r.persisted(ms(0), PersistId(10));
    }
    assert_eq!((r.last_index(), r.commit_index()), (0, 0));
    assert_eq!(r.role(), Role::Follower);
    // Messages from itself are ignored.
    r.handle_message(ms(0), n(2), Message::TimeoutNow { term: 9 });
    assert!(drain(&mut r).is_empty());
}
