//! CI: the Proof-of-Stake simulator (`ballot_sim::pos`) on 300 seeds × {4, 7}
//! validators (the runs of `cargo xtask sim --algo pos --seeds 300`): partitions, bad
//! weather, crashes and restarts (a restarted validator keeps its stored blocks and its
//! slashing-protection record), and Byzantine validators below 1/3 of the stake that
//! equivocate or withhold. Every run checks finality agreement and that no correct
//! validator is slashed, at every step, and that finality passes the healing epoch
//! within five epochs. A failure prints each violation with its replay command.
//! `BALLOT_SIM_SEEDS=N` changes the number of seeds.

use ballot_sim::pos::{PosRunSpec, run_pos_many};

#[test]
fn pos_finality_is_safe_and_live_on_300_seeds_of_4_and_7_validators() {
    let seeds = std::env::var("BALLOT_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(300u64);
    let specs: Vec<PosRunSpec> = (1..=seeds).flat_map(|seed| [4, 7].map(|nodes| PosRunSpec { seed, nodes })).collect();
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let summary = run_pos_many(&specs, threads, &|_, _| {});
    let s = &summary.stats;
    eprintln!("{s}\nwall time: {:.1} s", summary.wall.as_secs_f64());
    let report: Vec<String> = summary.violations.iter().map(ToString::to_string).collect();
    assert!(summary.passed(), "{} of {} runs failed:\n{}", report.len(), specs.len(), report.join("\n\n"));
    assert_eq!(s.runs, specs.len() as u64);
    assert!(s.liars.get("equivocate").is_some_and(|&n| n > 0), "equivocators ran: {s}");
    assert!(s.liars.get("withhold").is_some_and(|&n| n > 0), "withholders ran: {s}");
    assert!(s.slashed > 0, "equivocators were slashed: {s}");
    assert!(s.crashes > 0, "validators crashed and restarted: {s}");
}
