//! CI: Raft under randomized faults, 300 seeds on 3-node and on 5-node clusters (600
//! runs), every checker on. A failure prints each violation with the command that
//! replays it. `BALLOT_SIM_SEEDS=N` changes the number of seeds.

mod common;

use ballot_sim::FaultKind;
use ballot_sim::raft::RaftAlgorithm;

#[test]
fn raft_passes_every_checker_on_300_seeds_of_3_and_5_nodes() {
    let specs = common::specs(common::seed_count(300), &[3, 5]);
    let s = common::run_all(RaftAlgorithm::default, &specs);
    // The runs did real work under real faults.
    assert!(s.commands_committed > 100 * s.runs, "{s}");
    assert!(s.elections > s.runs, "{s}");
    assert!(s.restores > 0 && s.compactions > 0, "snapshots were installed and restored: {s}");
    assert!(s.lin_ops > 500 * s.runs && s.lin_unknown * 100 <= s.lin_keys, "{s}");
    for kind in [FaultKind::Partition, FaultKind::OneWayCut, FaultKind::Crash, FaultKind::MembershipChange] {
        assert!(s.faults.get(&kind).is_some_and(|&n| n > 0), "no {kind}: {s}");
    }
}
