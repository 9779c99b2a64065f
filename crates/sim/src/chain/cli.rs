//! `ballot-sim --algo pow`: chain seeds under faults, one seed replayed, or the attack
//! measurements as markdown tables.
//!
//! ```text
//! ballot-sim --algo pow --seeds 300                 # 300 seeds on 3 and on 5 nodes
//! ballot-sim --algo pow --seed 42 --nodes 5 --trace # replay one seed, logging events
//! ballot-sim --algo pow --seeds 20 --nodes 4 --shares 0.4,0.3,0.2,0.1
//! ballot-sim --algo pow --attack all                # the tables of docs/pow.md
//! ballot-sim --algo pow --attack double-spend --quick
//! ```

use std::ffi::OsString;
use std::time::{Duration, Instant};

use clap::Parser;

use super::attacks::{self, Plan};
use super::runner::{ChainRunSpec, DEFAULT_POW_DURATION, run_chain_many};
use super::sim::ChainSimError;
use crate::sweep::{asks_for_algo, print_summary, progress};

/// Deterministic simulation of ballot's Proof-of-Work chain: Poisson miners on the
/// simulated network under faults, with invariant checkers; or attack measurements.
#[derive(Debug, Parser)]
#[command(name = "ballot-sim --algo pow", version, about)]
struct PowArgs {
    /// `pow`.
    #[arg(long, value_parser = ["pow"])]
    algo: String,
    /// Replay this one seed (with `--attack`: the seed all trial seeds derive from).
    #[arg(long, conflicts_with_all = ["seeds", "start"])]
    seed: Option<u64>,
    /// How many seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    start: u64,
    /// Nodes (1 to 64), or `both` for 3 and 5; with `--shares`, the number of shares.
    #[arg(long, default_value = "both")]
    nodes: String,
    /// Virtual seconds per seed: faults until 60 s before the end, then the final heal.
    #[arg(long, default_value_t = DEFAULT_POW_DURATION.as_secs())]
    duration: u64,
    /// Hash-rate shares of the nodes, comma-separated, summing to 1 (default: the seed's).
    #[arg(long, value_delimiter = ',')]
    shares: Option<Vec<f64>>,
    /// With `--seed`: log the simulator's events to stderr.
    #[arg(long, requires = "seed")]
    trace: bool,
    /// Worker threads (default: the number of CPUs).
    #[arg(long)]
    threads: Option<usize>,
    /// Measure an attack instead of running seeds: the markdown tables of docs/pow.md.
    #[arg(long, value_parser = ["double-spend", "selfish", "stale", "all"])]
    attack: Option<String>,
    /// With `--attack`: small samples (seconds), to check the machinery.
    #[arg(long, requires = "attack")]
    quick: bool,
    /// With `--attack double-spend`: trials per cell (default 10,000, or 4,000 with pre-mining;
    /// quick 200).
    #[arg(long, requires = "attack")]
    trials: Option<u64>,
}

/// Whether the command line asks for `--algo pow` (the binary hands it over here).
pub fn is_pow(args: impl IntoIterator<Item = OsString>) -> bool {
    asks_for_algo(args, "pow")
}

/// Runs the command line; returns the process exit status (0: every run passed, 1: a
/// violation, 2: bad arguments).
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let args = match PowArgs::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    match args.attack.as_deref() {
        Some(which) => attack(&args, which, threads),
        None => seeds(&args, threads),
    }
}

fn seeds(args: &PowArgs, threads: usize) -> i32 {
    if args.trace {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "ballot_sim=trace".into()),
            )
            .with_writer(std::io::stderr)
            .with_target(false)
            .without_time()
            .init();
    }
    let sizes: Vec<usize> = match (&args.shares, args.nodes.as_str()) {
        (Some(s), _) => vec![s.len()],
        (None, "both") => vec![3, 5],
        (None, n) => match n.parse() {
            Ok(n) => vec![n],
            Err(_) => {
                eprintln!("--nodes {n:?}: expected a number of nodes or `both`");
                return 2;
            }
        },
    };
    if sizes.iter().any(|&n| !(1..=64).contains(&n)) {
        eprintln!("--nodes {}: the chain simulator runs 1 to 64 nodes", args.nodes);
        return 2;
    }
    if args.duration < 70 || args.duration > 24 * 3600 {
        eprintln!("--duration {}: expected 70 to 86400 virtual seconds (60 are for healing)", args.duration);
        return 2;
    }
    let seeds: Vec<u64> = match args.seed {
        Some(s) => vec![s],
        None => (args.start..args.start.saturating_add(args.seeds)).collect(),
    };
    let duration = Duration::from_secs(args.duration);
    let specs: Vec<ChainRunSpec> = seeds
        .iter()
        .flat_map(|&seed| {
            sizes.iter().map(move |&nodes| ChainRunSpec { seed, nodes, duration, shares: args.shares.clone() })
        })
        .collect();
    eprintln!(
        "ballot-sim: {} run(s) of pow ({} seed(s) x {:?} nodes, {} virtual s each) on {} thread(s)",
        specs.len(),
        seeds.len(),
        sizes,
        args.duration,
        threads
    );
    let progress = progress(specs.len());
    let summary = run_chain_many(&specs, threads, &progress);
    if print_summary(&summary, seeds.len(), &sizes, specs.len()) {
        return 0;
    }
    1
}

fn attack(args: &PowArgs, which: &str, threads: usize) -> i32 {
    let plan = Plan { quick: args.quick, threads, seed: args.seed.unwrap_or(1), trials: args.trials };
    let started = Instant::now();
    let mut out = String::new();
    let mut section = |title: &str, body: Result<String, ChainSimError>| -> bool {
        match body {
            Ok(table) => {
                eprintln!("{title}: done after {:.0} s", started.elapsed().as_secs_f64());
                out.push_str(&format!("### {title}\n\n{table}\n"));
                true
            }
            Err(e) => {
                eprintln!("{title}: {e}");
                false
            }
        }
    };
    let all = which == "all";
    let mut ok = true;
    if all || which == "double-spend" {
        ok &= section(
            "Double spend, attacker mines from the moment of payment",
            attacks::double_spend(&plan, false).map(|r| attacks::double_spend_markdown(&r)),
        );
        ok &= section(
            "Double spend, attacker pays only once he holds one pre-mined block",
            attacks::double_spend(&plan, true).map(|r| attacks::double_spend_markdown(&r)),
        );
    }
    if all || which == "selfish" {
        ok &= section("Selfish mining", attacks::selfish(&plan).map(|r| attacks::selfish_markdown(&r)));
    }
    if all || which == "stale" {
        ok &= section("Stale blocks", attacks::stale(&plan).map(|r| attacks::stale_markdown(&r)));
    }
    let mut cmd = format!("cargo xtask sim --algo pow --attack {which}");
    if args.quick {
        cmd.push_str(" --quick");
    }
    if let Some(t) = args.trials {
        cmd.push_str(&format!(" --trials {t}"));
    }
    if let Some(s) = args.seed {
        cmd.push_str(&format!(" --seed {s}"));
    }
    println!("{out}Generated by `{cmd}` ({threads} threads, {:.0} s wall).", started.elapsed().as_secs_f64());
    i32::from(!ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_pow_algorithm() {
        let v = |s: &[&str]| s.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(is_pow(v(&["ballot-sim", "--algo", "pow", "--seeds", "3"])));
        assert!(is_pow(v(&["ballot-sim", "--seeds", "3", "--algo=pow"])));
        assert!(!is_pow(v(&["ballot-sim", "--algo", "raft"])));
        assert!(!is_pow(v(&["ballot-sim", "--algo", "raft", "pow"])));
        assert_eq!(main(v(&["ballot-sim", "--algo", "pow", "--nodes", "x"])), 2);
        assert_eq!(main(v(&["ballot-sim", "--algo", "pow", "--quick"])), 2);
    }
}
