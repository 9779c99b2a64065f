//! Committed entries per second of a three-replica ballot-raft cluster in memory.
//!
//! Messages are moved between replicas without serialization, writes are acknowledged
//! as soon as they are polled, and a client keeps `WINDOW` proposals in flight on the
//! leader. This measures the state machine alone: what a driver with a fast network and
//! disk could get out of it. Run with `cargo bench -p ballot-raft --bench throughput`
//! (`BENCH_ENTRIES`, `BENCH_WINDOW` and `BENCH_SIZE` override the defaults).

use std::collections::VecDeque;
use std::time::Instant as WallClock;

use ballot_core::{Apply, Instant, Membership, NodeId, Output, ProposalId, Protocol, Recovered, SeededRng};
use ballot_raft::{Config, Message, Raft};
use bytes::Bytes;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Stats {
    messages: u64,
    batches: u64,
}

/// Polls every replica dry: writes are "durable" at once, messages are queued.
fn pump(
    nodes: &mut [Raft],
    inbox: &mut VecDeque<(NodeId, NodeId, Message)>,
    applied: &mut [u64],
    stats: &mut Stats,
    now: Instant,
) {
    for (i, node) in nodes.iter_mut().enumerate() {
        let from = NodeId(i as u64 + 1);
        while let Some(out) = node.poll_output() {
            match out {
                Output::Send { to, message } => {
                    stats.messages += 1;
                    inbox.push_back((from, to, message));
                }
                Output::Persist(batch) => {
                    stats.batches += 1;
                    node.persisted(now, batch.id);
                }
                Output::Apply(a) => {
                    if matches!(a, Apply::Command { .. }) {
                        applied[i] += 1;
                    }
                }
                _ => {}
            }
        }
    }
}

fn run(total: u64, window: u64, size: usize) {
    let ids = [NodeId(1), NodeId(2), NodeId(3)];
    let mut nodes: Vec<Raft> = ids
        .iter()
        .map(|&id| {
            let cfg = Config { max_pending_proposals: 1 << 20, ..Config::new(id) };
            Raft::new(cfg, Membership::new(ids), Recovered::default(), SeededRng::new(id.get()), Instant::ZERO)
                .expect("valid config")
        })
        .collect();
    let mut now = Instant::ZERO;
    let mut inbox = VecDeque::new();
    let mut applied = [0u64; 3];
    let mut stats = Stats { messages: 0, batches: 0 };
    // Elect n1.
    now = now.max(nodes[0].poll_timeout().expect("timer"));
    nodes[0].handle_timeout(now);
    loop {
        pump(&mut nodes, &mut inbox, &mut applied, &mut stats, now);
        let Some((from, to, m)) = inbox.pop_front() else { break };
        nodes[(to.get() - 1) as usize].handle_message(now, from, m);
    }
    assert!(nodes[0].is_leader(), "n1 leads");

    let payload = Bytes::from(vec![0xabu8; size]);
    let (mut proposed, mut compacted) = (0u64, 0u64);
    stats = Stats { messages: 0, batches: 0 };
    let start = WallClock::now();
    while applied[0] < total {
        while proposed < total && proposed - applied[0] < window {
            nodes[0].propose(now, ProposalId(proposed), payload.clone()).expect("leader accepts");
            proposed += 1;
        }
        pump(&mut nodes, &mut inbox, &mut applied, &mut stats, now);
        // Deliver everything currently queued, then let the replicas react in one pump.
        for _ in 0..inbox.len() {
            if let Some((from, to, m)) = inbox.pop_front() {
                nodes[(to.get() - 1) as usize].handle_message(now, from, m);
            }
        }
        if applied[0] - compacted >= 100_000 {
            // Keep memory bounded the way a service would: snapshot and compact.
            for node in &mut nodes {
                let index = node.applied_index();
                node.compact(now, index, Bytes::new());
            }
            compacted = applied[0];
        }
        now = Instant::from_nanos(now.as_nanos() + 1);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "ballot-raft 3 replicas, {total} entries of {size} B, window {window}: {:.0} entries/s ({secs:.3} s), \
         {:.2} messages and {:.3} writes per entry",
        total as f64 / secs,
        stats.messages as f64 / total as f64,
        stats.batches as f64 / total as f64,
    );
}

fn main() {
    // `cargo test --benches` runs this with `--test`-like flags: keep that quick.
    let quick = std::env::args().any(|a| a == "--test" || a == "--list");
    let total = if quick { 10_000 } else { env("BENCH_ENTRIES", 2_000_000) };
    let size = env("BENCH_SIZE", 128) as usize;
    let window = env("BENCH_WINDOW", 0);
    if window > 0 {
        run(total, window, size);
    } else {
        for w in [1, 64, 1024] {
            run(if w == 1 { total / 20 } else { total }, w, size);
        }
    }
}
