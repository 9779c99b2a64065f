//! CI: single-decree Paxos (the Synod) with duelling proposers under randomized faults,
//! 300 seeds on 3-node and on 5-node clusters (600 runs). Safety always (agreement and
//! decision stability across crashes, validity, one value per ballot, promise
//! monotonicity, linearizable client histories); termination once the schedule has left
//! one proposer alone and the faults healed. A failure prints each violation with the
//! command that replays it. `BALLOT_SIM_SEEDS=N` changes the number of seeds.

mod common;

use std::time::Duration;

use ballot_core::Instant;
use ballot_sim::paxos::SynodAlgorithm;
use ballot_sim::{Algorithm, FaultKind, RunSpec, Simulation};

#[test]
fn synod_agrees_always_and_terminates_once_alone_on_300_seeds_of_3_and_5_nodes() {
    let specs = common::specs(common::seed_count(300), &[3, 5]);
    let s = common::run_all(SynodAlgorithm::default, &specs);
    // Exactly one decision per run, learned by every replica by the end.
    assert_eq!(s.commands_committed, s.runs, "{s}");
    assert!(s.reads_ok > s.runs, "reads were answered with the decision: {s}");
    assert!(s.ops_failed > s.runs && s.ops_indeterminate > s.runs, "{s}");
    assert!(s.lin_unknown == 0, "{s}");
    for kind in [FaultKind::Partition, FaultKind::OneWayCut, FaultKind::Crash, FaultKind::Restart, FaultKind::ClientPin]
    {
        assert!(s.faults.get(&kind).is_some_and(|&n| n > 0), "no {kind}: {s}");
    }
    assert_eq!(s.faults.get(&FaultKind::ClientPin), Some(&s.runs), "every run leaves one proposer alone");
}

/// The schedules really make proposers duel: several run attempts at the same time,
/// and decisions often need more than one ballot. Steps seeds 1..=40 on 3 and 5 nodes,
/// watching every replica after every step (every checker runs too).
#[test]
fn proposers_duel_before_one_is_left_alone() {
    let (mut runs, mut duels, mut contested, mut max_round) = (0, 0, 0, 0);
    for seed in 1..=40 {
        for nodes in [3, 5] {
            let algo = SynodAlgorithm::default();
            let spec = RunSpec::new(seed, nodes);
            let mut cfg = spec.config(algo.name(), false);
            algo.shape_run(&mut cfg);
            let end = Instant::ZERO + cfg.duration;
            let mut sim = Simulation::new(algo, cfg).expect("valid config");
            // Most proposers with an attempt running at once, and the highest ballot
            // round promised anywhere when the first replica decided.
            let (mut most, mut decided_round) = (0, None);
            while sim.now() < end && sim.step().unwrap_or_else(|v| panic!("{v}")) {
                let replicas: Vec<_> = sim.ids().iter().filter_map(|&id| sim.replica(id)).collect();
                most = most.max(replicas.iter().filter(|r| r.ballot().is_some()).count());
                if decided_round.is_none() && replicas.iter().any(|r| r.is_decided()) {
                    decided_round = replicas.iter().map(|r| r.promised().round).max();
                }
            }
            let round = decided_round.unwrap_or_else(|| panic!("seed {seed}, {nodes} nodes: no decision"));
            runs += 1;
            duels += u64::from(most >= 2);
            contested += u64::from(round >= 3);
            max_round = max_round.max(round);
            sim.run_until(end + Duration::from_millis(1)).unwrap_or_else(|v| panic!("{v}"));
        }
    }
    eprintln!(
        "{runs} runs: {duels} with two or more proposers running at once; {contested} decided at ballot round 3 or \
         higher (highest {max_round})"
    );
    assert!(duels * 2 > runs, "most runs duel: {duels} of {runs}");
    assert!(contested * 5 > runs && max_round >= 5, "many decisions need several ballots: {contested} of {runs}");
}
