//! `ballot-sim`: runs seeds of the deterministic simulator and prints a summary, or
//! replays one seed (optionally with a full trace). Exits non-zero on a violation.
//!
//! ```text
//! ballot-sim --algo raft --seeds 300 --nodes both
//! ballot-sim --algo multipaxos --seeds 300
//! ballot-sim --algo synod --seed 42 --nodes 5 --trace
//! ballot-sim --algo pbft --seeds 300             # 4 and 7 nodes, up to f Byzantine
//! ballot-sim --algo raft --seed 1234 --nodes 5 --trace
//! ballot-sim --algo pow --seeds 300   # the chain simulator: see `ballot_sim::chain::cli`
//! ```

use std::time::Duration;

use anyhow::{Context as _, bail};
use ballot_core::Consensus;
use ballot_sim::paxos::{MultiPaxosAlgorithm, SynodAlgorithm};
use ballot_sim::pbft::PbftAlgorithm;
use ballot_sim::raft::RaftAlgorithm;
use ballot_sim::{DEFAULT_DURATION, RunSpec, SimAlgorithm, Summary, print_summary, progress, run_many};
use clap::Parser;

/// Deterministic simulation of ballot's consensus algorithms under faults.
#[derive(Debug, Parser)]
#[command(name = "ballot-sim", version, about)]
struct Args {
    /// The algorithm to simulate: raft, multipaxos, synod or pbft (with Byzantine
    /// replicas; kv service only) (`--algo pow` runs the chain
    /// simulator, with its own flags: `--algo pow --help`).
    #[arg(long, default_value = "raft", value_parser = |s: &str| s.parse::<SimAlgorithm>())]
    algo: SimAlgorithm,
    /// The service the nodes host (the real state machines): kv, config or election.
    #[arg(long, default_value = "kv")]
    service: ballot_sim::Service,
    /// Replay this one seed (prints the violation, if any, in full).
    #[arg(long, conflicts_with_all = ["seeds", "start"])]
    seed: Option<u64>,
    /// How many seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    start: u64,
    /// Cluster size: a number of nodes (1 to 64), or `both` for 3 and 5 (4 and 7 for pbft).
    #[arg(long, default_value = "both")]
    nodes: String,
    /// Virtual seconds per seed (the last 13 are for healing and settling).
    #[arg(long, default_value_t = DEFAULT_DURATION.as_secs())]
    duration: u64,
    /// Round-trip every message and durable write through serde (slower).
    #[arg(long)]
    serialize: bool,
    /// With `--seed`: log every simulator event and protocol event to stderr.
    #[arg(long, requires = "seed")]
    trace: bool,
    /// Worker threads (default: the number of CPUs).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    if ballot_sim::chain::cli::is_pow(std::env::args_os()) {
        std::process::exit(ballot_sim::chain::cli::main(std::env::args_os()));
    }
    if ballot_sim::pos::is_pos(std::env::args_os()) {
        std::process::exit(ballot_sim::pos::main(std::env::args_os()));
    }
    let args = Args::parse();
    if args.trace {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                    "ballot_sim=trace,ballot_raft=debug,ballot_paxos=debug,ballot_pbft=debug".into()
                }),
            )
            .with_writer(std::io::stderr)
            .with_target(false)
            .without_time()
            .init();
    }
    let sizes: Vec<usize> = match args.nodes.as_str() {
        "both" => args.algo.both_sizes().to_vec(),
        n => vec![n.parse().with_context(|| format!("--nodes {n:?}: expected a number of nodes or `both`"))?],
    };
    if sizes.iter().any(|&n| !(1..=64).contains(&n)) {
        bail!("--nodes {}: the simulator runs clusters of 1 to 64 nodes", args.nodes);
    }
    if args.duration < 14 || args.duration > 24 * 3600 {
        bail!(
            "--duration {}: expected 14 to 86400 virtual seconds (13 are used for healing and settling)",
            args.duration
        );
    }
    let seeds: Vec<u64> = match args.seed {
        Some(s) => vec![s],
        None => (args.start..args.start.saturating_add(args.seeds)).collect(),
    };
    let duration = Duration::from_secs(args.duration);
    let specs: Vec<RunSpec> = seeds
        .iter()
        .flat_map(|&seed| {
            sizes.iter().map(move |&nodes| RunSpec {
                seed,
                nodes,
                duration,
                serialize: args.serialize,
                service: args.service,
            })
        })
        .collect();
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    eprintln!(
        "ballot-sim: {} run(s) of {} hosting {} ({} seed(s) x {:?} nodes, {} virtual s each) on {} thread(s)",
        specs.len(),
        args.algo,
        args.service.name(),
        seeds.len(),
        sizes,
        args.duration,
        threads
    );

    let progress = progress(specs.len());
    let summary: Summary = match args.algo {
        SimAlgorithm::Log(Consensus::Raft) => run_many(RaftAlgorithm::default, &specs, threads, &progress),
        SimAlgorithm::Log(Consensus::MultiPaxos) => run_many(MultiPaxosAlgorithm::default, &specs, threads, &progress),
        SimAlgorithm::Synod => run_many(SynodAlgorithm::default, &specs, threads, &progress),
        SimAlgorithm::Pbft | SimAlgorithm::Log(Consensus::Pbft) => {
            run_many(PbftAlgorithm::default, &specs, threads, &progress)
        }
    };
    if print_summary(&summary, seeds.len(), &sizes, specs.len()) {
        return Ok(());
    }
    std::process::exit(1);
}
