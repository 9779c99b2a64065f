//! The normal case: ordering, batching, water marks, checkpoints, reads.

mod common;

use std::time::Duration;

use ballot_core::{NodeId, Output, Protocol, ReadId};
use ballot_pbft::{Item, Message, ReadMode, batch_digest};
use common::{Cluster, test_config};

const SEC: Duration = Duration::from_secs(1);

#[test]
fn four_replicas_commit_and_execute_in_order() {
    let mut c = Cluster::new(4);
    let cmds: Vec<_> = (0..10).map(|i| c.request(&format!("put k{i}"))).collect();
    for cmd in &cmds {
        c.submit(cmd);
        c.run_for(Duration::from_millis(5));
    }
    c.await_all(&cmds, 5 * SEC, "all ten commands");
    // Same order everywhere: the order they were submitted in (one at a time).
    for id in 1..=4 {
        let log: Vec<_> = c.nodes[id - 1].service.log.iter().filter_map(|(_, x)| x.clone()).collect();
        assert_eq!(log, cmds.iter().map(|x| x.to_vec()).collect::<Vec<_>>(), "n{id}");
    }
    assert_eq!(c.node(1).view(), 0);
    assert!(c.node(1).status().role == ballot_core::Role::Leader);
    assert_eq!(c.node(2).status().leader, Some(NodeId(1)));
}

#[test]
fn seven_replicas_commit() {
    let mut c = Cluster::new(7);
    assert_eq!(c.node(1).faults(), 2);
    let cmds: Vec<_> = (0..6).map(|i| c.request(&format!("x{i}"))).collect();
    for cmd in &cmds {
        c.submit(cmd);
    }
    c.await_all(&cmds, 5 * SEC, "all commands on 7 replicas");
}

#[test]
fn requests_are_batched_under_load() {
    let mut c = Cluster::new(4);
    let cmds: Vec<_> = (0..40).map(|i| c.request(&format!("b{i}"))).collect();
    for cmd in &cmds {
        c.submit(cmd);
    }
    c.await_all(&cmds, 5 * SEC, "forty commands");
    let seqs = c.node(2).executed_seq();
    // 40 requests, at most 8 per batch: at least 5 and far fewer than 40 sequence numbers.
    assert!((5..40).contains(&seqs), "{seqs} sequence numbers for 40 requests");
}

#[test]
fn pre_prepares_outside_the_water_marks_are_refused() {
    let mut c = Cluster::new(4);
    let window = test_config(NodeId(1)).log_window;
    let req = c.request("far");
    let forge = c.nodes[0].forge.clone();
    let now = c.now;
    // The genuine primary n1, but beyond h + L.
    let m = forge.pre_prepare(0, window + 1, vec![Item::Request(req.clone())]);
    c.node_mut(2).handle_message(now, NodeId(1), m);
    assert!(c.node(2).pre_prepared(window + 1).is_none());
    assert!(format!("{:?}", c.node(2).last_error()).contains("water marks"));
    let mut sent_prepare = false;
    while let Some(o) = c.node_mut(2).poll_output() {
        sent_prepare |= matches!(o, Output::Send { message: Message::Prepare(_), .. });
    }
    assert!(!sent_prepare);
    // At the edge of the window it is accepted.
    let m = forge.pre_prepare(0, window, vec![Item::Request(req)]);
    c.node_mut(2).handle_message(now, NodeId(1), m);
    assert!(c.node(2).pre_prepared(window).is_some());
}

#[test]
fn primary_respects_the_window_until_checkpoints_are_stable() {
    // Backups never answer checkpoints: the primary stops at h + L.
    let mut c = Cluster::new(4);
    c.filter = Some(Box::new(|_, _, _, m| matches!(m, Message::Checkpoint(_))));
    let cmds: Vec<_> = (0..40).map(|i| c.request(&format!("w{i}"))).collect();
    for cmd in &cmds {
        c.submit_to(cmd, &[1]);
        c.run_for(Duration::from_millis(2));
    }
    c.run_for(Duration::from_millis(300));
    let window = test_config(NodeId(1)).log_window;
    assert_eq!(c.node(1).executed_seq(), window, "executes up to h + L and no further");
    assert_eq!(c.node(1).stable_checkpoint().seq, 0);
    // Checkpoints flow again: the rest completes.
    c.filter = None;
    c.await_all(&cmds, 10 * SEC, "the rest after checkpoints");
}

#[test]
fn checkpoints_become_stable_and_discard_the_log() {
    let mut c = Cluster::new(4);
    let cmds: Vec<_> = (0..30).map(|i| c.request(&format!("c{i}"))).collect();
    for cmd in &cmds {
        c.submit(cmd);
        c.run_for(Duration::from_millis(3));
    }
    c.await_all(&cmds, 10 * SEC, "thirty commands");
    c.run_for(Duration::from_millis(200));
    for id in 1..=4u64 {
        let p = c.node(id);
        let k = test_config(NodeId(id)).checkpoint_interval;
        assert!(p.stable_checkpoint().seq >= p.executed_seq() - p.executed_seq() % k - k, "n{id}: {}", c.describe());
        assert!(p.stable_checkpoint().seq > 0);
        assert!(p.stable_checkpoint().proof.len() >= 3);
        assert!(p.log_len() <= 8, "n{id} keeps {} slots", p.log_len());
        // The stable checkpoint's state is on disk.
        let r = ballot_core::LogStore::recover(&mut c.nodes[id as usize - 1].store.clone()).unwrap();
        let snap = r.snapshot.expect("snapshot on disk");
        assert_eq!(snap.meta.index, p.stable_checkpoint().index);
        assert!(r.entries.iter().all(|e| e.seq > p.stable_checkpoint().seq));
    }
    // Every replica certified the same checkpoint digests.
    let d: Vec<_> = (1..=4).map(|i| c.node(i).stable_checkpoint().clone()).collect();
    for s in &d {
        for t in &d {
            if s.seq == t.seq {
                assert_eq!(s.digest, t.digest);
            }
        }
    }
}

#[test]
fn fast_reads_answer_at_the_executed_index_and_ordered_reads_wait_for_a_barrier() {
    let mut c = Cluster::with_config(4, |id| {
        let mut cfg = test_config(id);
        if id == NodeId(3) {
            cfg.read_mode = ReadMode::Ordered;
        }
        cfg
    });
    assert_eq!(
        c.node(1).client_rule(),
        ballot_core::ClientRule::Matching { writes: 3, reads: 3 },
        "2f+1 for writes and fast reads"
    );
    let cmd = c.request("r");
    c.submit(&cmd);
    c.await_all(&[cmd], 5 * SEC, "a write");
    let now = c.now;
    c.node_mut(2).read(now, ReadId(1)).unwrap();
    c.drain();
    assert_eq!(c.nodes[1].reads, vec![(ReadId(1), 1)]);
    // Ordered: a barrier is ordered through the primary, then the read is answered.
    c.node_mut(3).read(now, ReadId(2)).unwrap();
    c.run_until(5 * SEC, "ordered read", |c| !c.nodes[2].reads.is_empty());
    assert_eq!(c.nodes[2].reads, vec![(ReadId(2), 2)], "after the barrier at index 2");
    assert_eq!(c.nodes[0].service.log[1], (2, None), "the barrier executes as an internal entry everywhere");
}

#[test]
fn null_batch_digest_is_the_empty_batch() {
    assert_eq!(ballot_pbft::null_digest(), batch_digest(&[]));
    assert_ne!(batch_digest(&[Item::Barrier { replica: NodeId(1), nonce: 1 }]), batch_digest(&[]));
}

/// Counts the client-signature checks of one replica.
#[derive(Default)]
struct CountingAuth(std::sync::atomic::AtomicU64);

impl ballot_pbft::RequestAuth for CountingAuth {
    fn verify(&self, command: &[u8]) -> bool {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ballot_pbft::RequestAuth::verify(&ballot_pbft::insecure::HashRequestAuth, command)
    }
}

/// Each replica checks a client's signature once: when the request arrives, not again
/// when a backup finds it in a PRE-PREPARE or the primary receives it relayed.
#[test]
fn each_replica_checks_a_client_signature_once() {
    use std::sync::Arc;
    let counters: Vec<Arc<CountingAuth>> = (0..4).map(|_| Arc::new(CountingAuth::default())).collect();
    let shared = counters.clone();
    let mut c = Cluster::with_crypto(4, test_config, move |id| ballot_pbft::Crypto {
        requests: shared[id.0 as usize - 1].clone(),
        ..common::crypto(id)
    });
    let cmds: Vec<_> = (0..20).map(|i| c.request(&format!("once{i}"))).collect();
    for cmd in &cmds {
        c.submit(cmd);
    }
    c.await_all(&cmds, 5 * SEC, "twenty commands");
    for (i, counter) in counters.iter().enumerate() {
        let checks = counter.0.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(checks, 20, "n{}: {checks} signature checks for 20 requests", i + 1);
    }
    // A request that reaches a backup only inside a PRE-PREPARE is checked there.
    let late = c.request("late");
    c.submit_to(&late, &[1]);
    c.await_all(std::slice::from_ref(&late), 5 * SEC, "a request sent to the primary only");
    assert_eq!(counters[1].0.load(std::sync::atomic::Ordering::Relaxed), 21, "n2 checked it in the PRE-PREPARE");
}
