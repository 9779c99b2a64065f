//! Every system commits a few thousand commands through the harness, in order on every
//! replica (the harness checks the order), with 3 and 5 replicas. The measurement itself
//! is the `cores` bench, not a test.

use ballot_consensus_bench::{Durability, Settings, SystemKind, run};

fn smoke(nodes: usize, window: u64, durability: Durability) {
    // Compact often, so that compaction runs in the test too.
    let settings =
        Settings { entries: 3_000, warmup: 100, compact_every: 1_000, durability, ..Settings::new(nodes, 64, window) };
    for &kind in SystemKind::ALL {
        let report = run(kind, &settings);
        assert_eq!(report.entries, 3_000, "{kind}");
        assert!(report.messages > 0 && report.writes > 0 && report.rounds > 0, "{kind}: {report:?}");
        // Pipelined and batched: far fewer messages than entries per follower.
        if window > 1 {
            assert!(report.messages_per_entry() < (nodes - 1) as f64, "{kind}: {report:?}");
        }
    }
}

#[test]
fn three_replicas_commit_in_order() {
    smoke(3, 64, Durability::Group);
}

#[test]
fn five_replicas_commit_in_order() {
    smoke(5, 64, Durability::Group);
}

#[test]
fn one_outstanding_command_and_instant_acknowledgements() {
    let settings = Settings { entries: 300, warmup: 10, durability: Durability::Instant, ..Settings::new(3, 1024, 1) };
    for &kind in SystemKind::ALL {
        let report = run(kind, &settings);
        // A commit needs the leader's message out and the acknowledgements back.
        assert!(report.rounds_per_entry() >= 2.0, "{kind}: {report:?}");
    }
}

/// Bytes are counted only when asked, and only for the systems whose messages ballot's
/// codec encodes; every follower receives every command's bytes.
#[test]
fn message_bytes_are_counted_on_request() {
    let plain = Settings { entries: 2_000, warmup: 100, ..Settings::new(4, 1024, 64) };
    let counted = Settings { count_bytes: true, ..plain.clone() };
    for &kind in SystemKind::ALL {
        assert_eq!(run(kind, &plain).bytes, None, "{kind}: not asked");
        let report = run(kind, &counted);
        let ballot = matches!(kind, SystemKind::BallotRaft | SystemKind::BallotPaxos | SystemKind::BallotPbft);
        match report.bytes_per_entry() {
            Some(b) => {
                assert!(ballot, "{kind} has no codec here, yet counted bytes");
                // 1 KiB to each of 3 followers, less what the pipeline (64 entries) had
                // sent before the measurement started.
                assert!(b >= 0.9 * 3.0 * 1024.0, "{kind}: {b} bytes per entry cannot carry 1 KiB to 3 followers");
            }
            None => assert!(!ballot, "{kind}: no bytes counted"),
        }
    }
}
