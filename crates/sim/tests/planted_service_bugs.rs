//! The checkers that watch the hosting layer (sessions, storage) fire on planted bugs,
//! with Raft and the real key-value service.

use std::time::Duration;

use ballot_core::{Instant, NodeId};
use ballot_sim::raft::RaftAlgorithm;
use ballot_sim::{Fault, KvWorkload, SimConfig, Simulation};

/// An exactly-once session table that remembers one client forgets the others' latest
/// writes: a retry of a write that was applied but whose reply was lost is applied
/// again. The exactly-once checker catches it at the second apply.
#[test]
fn a_forgetful_session_table_is_caught_by_the_exactly_once_checker() {
    let mut caught = Vec::new();
    for seed in 1..=40 {
        let mut cfg = SimConfig::randomized(seed, 3, Duration::from_secs(20), true);
        cfg.session_capacity = 1;
        let sim = Simulation::with_workload(RaftAlgorithm::default(), KvWorkload::default(), cfg).expect("sim");
        if let Err(v) = sim.run() {
            assert_eq!(v.checker, "ExactlyOnce", "seed {seed}: the first thing to break is exactly-once: {v}");
            assert!(v.details.contains("applied at index"), "{v}");
            caught.push(seed);
        }
    }
    assert!(caught.len() >= 2, "retries across lost replies must expose the forgotten sessions: {caught:?}");
    // With the default table the very same seeds pass.
    for &seed in caught.iter().take(2) {
        let cfg = SimConfig::randomized(seed, 3, Duration::from_secs(20), true);
        let sim = Simulation::with_workload(RaftAlgorithm::default(), KvWorkload::default(), cfg).expect("sim");
        if let Err(v) = sim.run() {
            panic!("seed {seed} fails with a correct session table: {v}");
        }
    }
}

/// Bit rot on a stopped node's disk is found by the record checksums at recovery: the
/// node refuses to start instead of serving from state it cannot trust, and the other
/// two keep the cluster going.
#[test]
fn a_corrupted_disk_is_detected_and_the_node_refuses_to_start() {
    let mut cfg = SimConfig::calm(7, 3, Duration::from_secs(20));
    cfg.compaction = None;
    let mut sim = Simulation::with_workload(RaftAlgorithm::default(), KvWorkload::default(), cfg).expect("sim");
    sim.run_until(Instant::from_millis(3_000)).expect("healthy");
    let before = sim.stats().commands_committed;
    assert!(before > 10, "{}", sim.stats());
    sim.apply_fault(Fault::CorruptDisk(NodeId(1))).expect("corrupt");
    assert_eq!(sim.stats().corruptions, 1);
    sim.apply_fault(Fault::Restart(NodeId(1))).expect("restart attempt");
    assert_eq!(sim.stats().refused_starts, 1, "recovery must detect the corrupted record");
    sim.run_until(Instant::from_millis(8_000)).expect("the two healthy nodes go on");
    assert!(sim.stats().commands_committed > before + 10, "{}", sim.stats());
    let stats = sim.run().expect("every check passes without the refusing node");
    assert_eq!(stats.refused_starts, 1);
}
