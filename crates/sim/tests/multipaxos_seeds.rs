//! CI: Multi-Paxos under randomized faults, 300 seeds on 3-node and on 5-node clusters
//! (600 runs), with the generic checkers (agreement, integrity, validity, liveness,
//! convergence, linearizability) and Paxos's own (promise monotonicity, decision
//! stability, one value per ballot). A failure prints each violation with the command
//! that replays it. `BALLOT_SIM_SEEDS=N` changes the number of seeds.

mod common;

use ballot_sim::FaultKind;
use ballot_sim::paxos::MultiPaxosAlgorithm;

#[test]
fn multipaxos_passes_every_checker_on_300_seeds_of_3_and_5_nodes() {
    let specs = common::specs(common::seed_count(300), &[3, 5]);
    let s = common::run_all(MultiPaxosAlgorithm::default, &specs);
    // The runs did real work under real faults.
    assert!(s.commands_committed > 100 * s.runs, "{s}");
    assert!(s.elections > s.runs, "{s}");
    assert!(s.restores > 0 && s.compactions > 0, "snapshots were installed and restored: {s}");
    assert!(s.lin_ops > 500 * s.runs && s.lin_unknown * 100 <= s.lin_keys, "{s}");
    assert!(s.ops_indeterminate > 0 && s.ops_failed > 0, "faults left operations in doubt: {s}");
    let n = &s.net;
    assert!(n.dropped > 0 && n.duplicated > 0 && n.reordered > 0 && n.cut > 0 && n.to_down > 0, "{s}");
    for kind in [FaultKind::Partition, FaultKind::OneWayCut, FaultKind::Crash, FaultKind::Restart, FaultKind::Weather] {
        assert!(s.faults.get(&kind).is_some_and(|&n| n > 0), "no {kind}: {s}");
    }
}
