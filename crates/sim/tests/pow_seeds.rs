//! CI: the Proof-of-Work chain simulator (`ballot_sim::chain`) on 300 seeds × {3, 5}
//! nodes (600 runs of the default ten virtual minutes, the same runs as
//! `cargo xtask sim --algo pow --seeds 300`) under partitions, lossy and slow weather,
//! crashes, a Byzantine miner on about half the seeds and double-spending wallets: every
//! checker after every step, convergence after the final heal. A failure prints each
//! violation with the command that replays it. `BALLOT_SIM_SEEDS=N` changes the number
//! of seeds. The simulator crate is built with `opt-level = 2` in the dev profile (root
//! `Cargo.toml`), which keeps this to one or two minutes on two cores. Also:
//! reproducibility, and the attack measurements on small samples against their closed
//! forms.

use std::time::Duration;

use ballot_core::NodeId;
use ballot_sim::chain::attacks::{self, DoubleSpendSetup, theory};
use ballot_sim::chain::{ChainFault, ChainRunSpec, ChainSim, ChainSimError, run_chain_many, run_chain_spec};

fn seed_count(default: u64) -> u64 {
    std::env::var("BALLOT_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

#[test]
fn pow_chains_stay_valid_and_converge_on_300_seeds_of_3_and_5_nodes() {
    let specs: Vec<ChainRunSpec> =
        (1..=seed_count(300)).flat_map(|seed| [3, 5].map(|nodes| ChainRunSpec::new(seed, nodes))).collect();
    let summary = run_chain_many(&specs, threads(), &|_, _| {});
    let s = &summary.stats;
    eprintln!("{s}\nwall time: {:.1} s", summary.wall.as_secs_f64());
    if !summary.passed() {
        let mut report =
            format!("{} of {} runs failed:\n", summary.violations.len() + summary.errors.len(), specs.len());
        for v in &summary.violations {
            report.push_str(&format!("\n{v}\n"));
        }
        for (spec, e) in &summary.errors {
            report.push_str(&format!("\nseed {} ({} nodes) could not run: {e}\n", spec.seed, spec.nodes));
        }
        panic!("{report}");
    }
    assert_eq!(s.runs, specs.len() as u64);
    // The runs exercised what the checkers are about.
    assert!(s.reorgs > 0 && s.max_reorg >= 2 && s.stale > 0, "forks and reorganisations: {s}");
    assert!(s.byz_invalid > 0 && s.invalid_found > 0, "rule-breaking blocks were mined and refused: {s}");
    assert!(s.byz_withheld > 0, "withheld branches: {s}");
    assert!(s.ds_attempts > 0 && s.ds_one_confirmed > 0 && s.ds_both_confirmed == 0, "double spends: {s}");
    assert!(s.tx_confirmed > 0 && s.tx_conflicts > 0 && s.tx_refused > 0, "transfers: {s}");
    assert!(s.crashes > 0 && s.restarts > 0 && s.orphans > 0, "crashes and resyncs: {s}");
    assert!(s.difficulties > s.runs, "retargeting changed the difficulty: {s}");
    for kind in ["partition", "one-way cut", "lossy weather", "slow weather", "final heal"] {
        assert!(s.faults.get(kind).is_some_and(|&n| n > 0), "no {kind}: {s}");
    }
    assert!(s.supply <= s.schedule, "{s}");
}

#[test]
fn pow_runs_are_reproducible_and_independent_of_threads() {
    let spec = ChainRunSpec { duration: Duration::from_secs(200), ..ChainRunSpec::new(11, 4) };
    let a = run_chain_spec(&spec).expect("seed 11 passes");
    assert_eq!(a, run_chain_spec(&spec).expect("seed 11 passes"));
    let other = run_chain_spec(&ChainRunSpec { seed: 12, ..spec.clone() }).expect("seed 12 passes");
    assert_ne!(a.events, other.events);
    let specs: Vec<ChainRunSpec> = (1..=4).map(|seed| ChainRunSpec { seed, ..spec.clone() }).collect();
    let one = run_chain_many(&specs, 1, &|_, _| {});
    let two = run_chain_many(&specs, 2, &|_, _| {});
    assert!(one.passed() && two.passed());
    assert_eq!(one.stats, two.stats);
    assert_eq!(spec.replay_command(), "cargo xtask sim --algo pow --seed 11 --nodes 4 --duration 200");
    let shared = ChainRunSpec { shares: Some(vec![0.5, 0.25, 0.25]), ..ChainRunSpec::new(3, 3) };
    assert_eq!(shared.replay_command(), "cargo xtask sim --algo pow --seed 3 --nodes 3 --shares 0.5,0.25,0.25");
}

#[test]
fn a_network_that_never_heals_is_reported_with_the_replay_command() {
    // Seed 7 on three nodes, with every node cut off from the others one second after
    // the final heal: each keeps mining its own branch, so they can never agree.
    let spec = ChainRunSpec { duration: Duration::from_secs(120), ..ChainRunSpec::new(7, 3) };
    let mut cfg = spec.config();
    let split = ChainFault::Partition((1..=3).map(|n| vec![NodeId(n)]).collect());
    cfg.faults.push((cfg.heal_at + Duration::from_secs(1), split));
    let err = ChainSim::new(cfg).expect("valid config").run().expect_err("split nodes cannot converge");
    assert_eq!((err.checker.as_str(), err.seed, err.nodes), ("TipConvergence", 7, 3), "{err}");
    let shown = ChainSimError::from(err).to_string();
    assert!(shown.contains("do not agree"), "{shown}");
    assert!(shown.ends_with("replay: cargo xtask sim --algo pow --seed 7 --nodes 3 --duration 120"), "{shown}");
}

/// Within `k` standard errors of `p` after `n` trials.
fn close(successes: u64, n: u64, p: f64, k: f64) -> bool {
    let se = (p * (1.0 - p) / n as f64).sqrt().max(1.0 / n as f64);
    (successes as f64 / n as f64 - p).abs() <= k * se
}

#[test]
fn attack_measurements_track_their_closed_forms_on_small_samples() {
    // Double spend, q = 0.3, two confirmations: exact for this model, and Rosenfeld's
    // setting with one pre-mined block.
    for (premine, want) in [(false, theory::race(0.3, 2, 0, attacks::GIVE_UP)), (true, theory::rosenfeld(0.3, 2))] {
        let setup = DoubleSpendSetup { q: 0.3, z: 2, premine, give_up: attacks::GIVE_UP, honest: 2 };
        let n = 300;
        let wins = (0..n)
            .map(|seed| attacks::double_spend_trial(&setup, seed).expect("no violation"))
            .filter(|t| t.success)
            .count() as u64;
        assert!(close(wins, n, want, 4.0), "pre-mine {premine}: {wins}/{n} against {want}");
    }
    // Selfish mining above the threshold pays: α = 0.4, γ = 0.
    let runs: Vec<_> = (0..2).map(|seed| attacks::selfish_run(0.4, 0.0, 400, 4, seed).expect("no violation")).collect();
    let (pool, total) = runs.iter().fold((0, 0), |(p, t), r| (p + r.pool, t + r.total));
    let share = pool as f64 / total as f64;
    assert!(share > 0.43 && (share - theory::eyal_sirer(0.4, 0.0)).abs() < 0.06, "{share}");
    // Stale blocks at d/T = 0.2: near 1 − e^(−0.2·0.9).
    let r = attacks::stale_run(0.2, 10, 600, 1).expect("no violation");
    let rate = (r.mined - r.main) as f64 / r.mined as f64;
    assert!((rate - theory::stale_others(0.2, 10)).abs() < 0.06, "{rate}");
}
