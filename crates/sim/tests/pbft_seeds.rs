//! CI: PBFT with Byzantine replicas under randomized faults, 300 seeds on 4-node and on
//! 7-node clusters (600 runs). Each seed picks up to f liars and their behaviours
//! (`ballot_sim::pbft::Behaviour`), on top of network, crash and storage faults. Every
//! checker is on: the generic ones (agreement, integrity, validity, linearizability,
//! liveness, convergence, exactly-once) over the correct replicas, and PBFT's own
//! (sequence agreement, client signatures, request progress); any violation fails the
//! test. `BALLOT_SIM_SEEDS=N` changes the number of seeds.

mod common;

use ballot_core::{Instant, NodeId};
use ballot_sim::pbft::{Behaviour, PbftAlgorithm, Plan};
use ballot_sim::{Algorithm, FaultKind, RunSpec, Simulation};

#[test]
fn pbft_with_byzantine_replicas_passes_every_checker_on_300_seeds_of_4_and_7_nodes() {
    let specs = common::specs(common::seed_count(300), &[4, 7]);
    let s = &common::run_all(PbftAlgorithm::default, &specs);
    // The runs did real work under real faults, with liars lying.
    assert!(s.commands_committed > 50 * s.runs, "{s}");
    assert!(s.lin_ops > 200 * s.runs && s.lin_unknown * 100 <= s.lin_keys.max(1), "{s}");
    assert!(s.byzantine_runs * 10 >= s.runs * 8, "most runs have liars: {s}");
    for b in Behaviour::ALL {
        assert!(s.byzantine.get(b.name()).is_some_and(|&n| n > 0), "no {}: {s}", b.name());
    }
    assert!(s.rejected > s.byzantine_runs * 10, "correct replicas refused the liars' messages: {s}");
    assert!(s.restores > 0, "state transfers happened: {s}");
    let n = &s.net;
    assert!(n.dropped > 0 && n.duplicated > 0 && n.reordered > 0 && n.cut > 0 && n.to_down > 0, "{s}");
    for kind in [FaultKind::Partition, FaultKind::OneWayCut, FaultKind::Crash, FaultKind::Restart, FaultKind::Weather] {
        assert!(s.faults.get(&kind).is_some_and(|&n| n > 0), "no {kind}: {s}");
    }
}

/// Runs `algo` on seed `seed` with `nodes` nodes.
fn run(algo: PbftAlgorithm, seed: u64, nodes: usize) -> Result<ballot_sim::RunStats, Box<ballot_sim::Violation>> {
    let spec = RunSpec::new(seed, nodes);
    let mut cfg = spec.config("pbft", false);
    algo.shape_run(&mut cfg);
    Simulation::new(algo, cfg).expect("builds").run()
}

/// Runs `algo` on seed `seed` with `nodes` nodes; the violated checker, if any.
fn violated(algo: PbftAlgorithm, seed: u64, nodes: usize) -> Option<String> {
    run(algo, seed, nodes).err().map(|v| v.checker)
}

/// A seed replays exactly: ordered reads failed by a state transfer were answered in
/// hash-map order (random per process), so a failing seed could pass when replayed
/// (seed 101 with 7 nodes).
#[test]
fn a_pbft_run_replays_identically() {
    let outcome = || match run(PbftAlgorithm::default(), 101, 7) {
        Ok(stats) => format!("{stats}"),
        Err(v) => format!("{v}"),
    };
    let first = outcome();
    for _ in 0..3 {
        assert_eq!(outcome(), first);
    }
}

#[test]
fn a_primary_slipping_in_unsigned_requests_is_caught_when_replicas_trust_them() {
    // Planted bug: replicas skip the client-signature check; the lying primary's
    // phantom requests then execute, and the validity checkers fire.
    let fired: Vec<String> = (1..=6)
        .filter_map(|seed| {
            let algo =
                PbftAlgorithm::with_liars(1, Plan::of(&[Behaviour::PhantomRequest])).trusting_unsigned_requests();
            violated(algo, seed, 4)
        })
        .collect();
    assert!(!fired.is_empty(), "no checker fired");
    assert!(fired.iter().all(|c| c == "Validity" || c == "ClientSigned"), "{fired:?}");
    // With the check in place the same liar achieves nothing.
    for seed in 1..=3 {
        let algo = PbftAlgorithm::with_liars(1, Plan::of(&[Behaviour::PhantomRequest]));
        assert_eq!(violated(algo, seed, 4), None, "seed {seed}");
    }
}

#[test]
fn every_behaviour_alone_is_survived_by_four_replicas() {
    for (i, b) in Behaviour::ALL.into_iter().enumerate() {
        // A liar acts as primary only if the views reach it: a few seeds each, every run
        // clean, at least one with the lie told.
        let mut told = false;
        for seed in (0..4).map(|k| 1_000 + 10 * i as u64 + k) {
            let algo = PbftAlgorithm::with_liars(1, Plan::of(&[b]));
            let mut cfg = RunSpec::new(seed, 4).config("pbft", false);
            algo.shape_run(&mut cfg);
            assert_eq!(cfg.byzantine.len(), 1);
            let sim = Simulation::new(algo, cfg).expect("builds");
            let stats = sim.run().unwrap_or_else(|v| panic!("{b:?}: {v}"));
            assert!(stats.ops_ok > 50, "{b:?}, seed {seed}: {stats}");
            told = stats.byzantine.get(b.name()).is_some_and(|&n| n > 0);
            if told {
                break;
            }
        }
        assert!(told || b == Behaviour::WrongNewView || b == Behaviour::Replay, "{b:?} never happened");
    }
    let _ = (Instant::ZERO, NodeId(1));
}
