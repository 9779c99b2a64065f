//! Lagging and restarted replicas: state transfer, committed-batch catch-up, old
//! disks, restarts from durable state, and the durability order of messages.

mod common;

use std::time::Duration;

use ballot_core::{Instant, NodeId, Output, Protocol};
use ballot_pbft::{Item, Message, batch_digest};
use bytes::Bytes;
use common::Cluster;

const SEC: Duration = Duration::from_secs(1);

fn workload(c: &mut Cluster, n: usize, tag: &str) -> Vec<Bytes> {
    let cmds: Vec<_> = (0..n).map(|i| c.request(&format!("{tag}{i}"))).collect();
    for cmd in &cmds {
        c.submit(cmd);
        c.run_for(Duration::from_millis(3));
    }
    cmds
}

fn same_log(c: &Cluster, a: u64, b: u64) {
    assert_eq!(c.nodes[a as usize - 1].service, c.nodes[b as usize - 1].service, "n{a} and n{b} differ");
}

#[test]
fn lagging_replica_catches_up_by_state_transfer() {
    let mut c = Cluster::new(4);
    // n3 lies about state: it corrupts every state it sends.
    c.lie(
        3,
        Box::new(|_, to, m| match m {
            Message::State { checkpoint, state } => {
                let mut bad = state.to_vec();
                bad.push(0);
                vec![(to, Message::State { checkpoint, state: Bytes::from(bad) })]
            }
            other => vec![(to, other)],
        }),
    );
    // n4 is cut off while the others run far past its water marks.
    // The honest states are also slow to arrive, so the forged one comes first.
    c.filter = Some(Box::new(|now, from, to, m| {
        ((from == NodeId(4) || to == NodeId(4)) && now < Instant::from_millis(3_000))
            || (matches!(m, Message::State { .. }) && from != NodeId(3) && now < Instant::from_millis(3_500))
    }));
    let cmds = workload(&mut c, 40, "a");
    c.run_until(10 * SEC, "others execute", |c| cmds.iter().all(|x| (1..=3).all(|i| c.executed_at(i, x))));
    assert_eq!(c.node(4).executed_seq(), 0);
    assert!(c.node(1).stable_checkpoint().seq > 8, "beyond n4's window");
    c.await_all(&cmds, 20 * SEC, "n4 catches up");
    same_log(&c, 1, 4);
    assert!(c.nodes[3].restores >= 1, "n4 installed a transferred state");
    assert!(c.node(4).rejections().contains_key("state does not match its certified digest"));
    // And it takes part in new requests.
    let more = workload(&mut c, 4, "b");
    c.await_all(&more, 10 * SEC, "new requests");
}

#[test]
fn lagging_replica_within_the_window_fetches_committed_batches() {
    let mut c = Cluster::new(4);
    c.filter = Some(Box::new(|now, from, to, m| {
        // n4 misses the agreement on three requests (not the checkpoints' state).
        to == NodeId(4)
            && now < Instant::from_millis(1_000)
            && matches!(m, Message::PrePrepare { .. } | Message::Prepare(_) | Message::Commit { .. })
            && from != NodeId(4)
    }));
    let cmds = workload(&mut c, 3, "w");
    c.await_all(&cmds, 10 * SEC, "n4 catches up");
    assert_eq!(c.nodes[3].restores, 0, "caught up without a state transfer");
    same_log(&c, 1, 4);
}

#[test]
fn restart_with_an_old_disk_catches_up() {
    let mut c = Cluster::new(4);
    let early = workload(&mut c, 3, "e");
    c.await_all(&early, 5 * SEC, "early commands");
    let old_disk = c.copy_disk(3);
    let later = workload(&mut c, 30, "l");
    c.await_all(&later, 10 * SEC, "later commands");
    c.crash(3);
    c.restart_from(3, old_disk);
    c.drain();
    assert_eq!(c.nodes[2].service.log.len(), 3, "restarted from the old disk");
    c.run_until(10 * SEC, "n3 catches up", |c| c.nodes[2].service.log.len() == c.nodes[0].service.log.len());
    same_log(&c, 1, 3);
    let more = workload(&mut c, 3, "m");
    c.await_all(&more, 10 * SEC, "new commands");
}

#[test]
fn replicas_restart_from_durable_state() {
    let mut c = Cluster::new(4);
    let cmds = workload(&mut c, 10, "d");
    c.await_all(&cmds, 5 * SEC, "commands");
    let before = c.nodes[1].service.clone();
    c.crash(2);
    c.restart(2);
    c.drain();
    assert_eq!(c.nodes[1].service, before, "restored and re-executed the same log");
    assert!(c.nodes[1].restores >= 1, "from the stable checkpoint's snapshot");
    // The whole cluster restarts at once.
    for id in 1..=4 {
        c.crash(id);
    }
    for id in 1..=4 {
        c.restart(id);
    }
    let more = workload(&mut c, 5, "r");
    c.await_all(&more, 10 * SEC, "commands after a full restart");
    for id in 2..=4 {
        same_log(&c, 1, id);
    }
}

#[test]
fn prepare_leaves_only_after_the_pre_prepare_is_durable() {
    let mut c = Cluster::new(4);
    let req = c.request("x");
    let forge = c.nodes[0].forge.clone();
    let p = c.node_mut(2);
    p.handle_message(Instant::ZERO, NodeId(1), forge.pre_prepare(0, 1, vec![Item::Request(req)]));
    let mut persist = None;
    while let Some(o) = p.poll_output() {
        match o {
            Output::Send { message: Message::Prepare(_), .. } => panic!("PREPARE before the write is durable"),
            Output::Persist(b) => {
                assert_eq!(b.entries.len(), 1);
                assert!(b.entries[0].pre_prepare.is_some());
                persist = Some(b.id);
            }
            _ => {}
        }
    }
    p.persisted(Instant::ZERO, persist.expect("a write"));
    let mut prepares = 0;
    while let Some(o) = p.poll_output() {
        prepares += usize::from(matches!(o, Output::Send { message: Message::Prepare(_), .. }));
    }
    assert_eq!(prepares, 3, "PREPARE to the three others once durable");
}

#[test]
fn restarted_backup_does_not_prepare_a_conflicting_batch() {
    let mut c = Cluster::new(4);
    let a = c.request("a");
    let b = c.request("b");
    let forge = c.nodes[0].forge.clone();
    let now = c.now;
    c.node_mut(2).handle_message(now, NodeId(1), forge.pre_prepare(0, 1, vec![Item::Request(a.clone())]));
    c.drain();
    c.wire.clear();
    c.crash(2);
    c.restart(2);
    c.drain();
    let kept = c.node(2).pre_prepared(1).expect("the pre-prepare survived the restart").clone();
    assert_eq!(kept.body.digest, batch_digest(&[Item::Request(a)]));
    // The primary equivocates to the restarted replica.
    c.node_mut(2).handle_message(now, NodeId(1), forge.pre_prepare(0, 1, vec![Item::Request(b)]));
    let mut contradicted = false;
    let mut prepares = 0;
    while let Some(o) = c.node_mut(2).poll_output() {
        match o {
            Output::Send { message: Message::Prepare(p), .. } => {
                prepares += 1;
                contradicted |= p.body.digest != kept.body.digest;
            }
            // The disk acknowledges every write, so nothing stays held back.
            Output::Persist(b) => c.node_mut(2).persisted(now, b.id),
            _ => {}
        }
    }
    assert_eq!(prepares, 0, "no PREPARE at all for the second PRE-PREPARE");
    assert!(!contradicted, "a restarted replica prepared a second digest for (v, n)");
    assert!(c.node(2).rejections().contains_key("conflicting pre-prepare (equivocating primary)"));
}

#[test]
fn restarted_primary_does_not_reuse_sequence_numbers() {
    let mut c = Cluster::new(4);
    // The backups never hear of seq 1 and 2: the primary alone knows it used them.
    c.filter = Some(Box::new(|now, from, _, m| {
        from == NodeId(1) && matches!(m, Message::PrePrepare { .. }) && now < Instant::from_millis(10)
    }));
    let first: Vec<_> = (0..2).map(|i| c.request(&format!("u{i}"))).collect();
    for cmd in &first {
        c.submit_to(cmd, &[1]);
    }
    c.drain();
    let used = c.node(1).pre_prepared(1).map(|p| p.body.digest);
    assert!(used.is_some());
    c.crash(1);
    c.restart(1);
    c.now = Instant::from_millis(20);
    let next = c.request("after restart");
    c.submit_to(&next, &[1]);
    c.drain();
    assert_eq!(c.node(1).pre_prepared(1).map(|p| p.body.digest), used, "seq 1 keeps its batch");
    let fresh = c.node(1).pre_prepared(2).or(c.node(1).pre_prepared(3)).map(|p| p.body.digest);
    assert!(fresh.is_some());
    c.await_all(&[next], 10 * SEC, "the new request");
}

#[test]
fn replica_whose_state_diverged_replaces_it_from_a_certified_checkpoint() {
    let mut c = Cluster::new(4);
    let first = workload(&mut c, 2, "p");
    c.await_all(&first, 5 * SEC, "first commands");
    // n4's service state silently goes bad (a disk or memory fault).
    c.nodes[3].service.log[0].1 = Some(b"corrupted".to_vec());
    let more = workload(&mut c, 10, "q");
    c.run_until(10 * SEC, "n4 repaired", |c| {
        more.iter().all(|x| c.executed_everywhere(x)) && c.nodes[3].service == c.nodes[0].service
    });
    assert!(c.nodes[3].restores >= 1, "repaired by a state transfer");
    assert!(c.node(4).stable_checkpoint().seq >= 8);
}
