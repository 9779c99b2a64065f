//! `ballot-bench`: drives ballot-kvd or (with the `etcd` feature) etcd with the same
//! harness and flags. `cargo xtask bench --vs etcd` runs it; people usually want
//! `ballot bench` instead.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ballot_bench::cli::{BenchArgs, execute};
use ballot_bench::{BallotTarget, BenchResult};
use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum System {
    Ballot,
    Etcd,
}

#[derive(Parser)]
#[command(name = "ballot-bench", version, about = "Benchmarks ballot-kvd or etcd with etcd's benchmark workloads")]
struct Cli {
    /// The system to drive.
    #[arg(long, value_enum, default_value = "ballot")]
    system: System,
    /// Client addresses (ballot: host:port; etcd: http://host:port), comma separated.
    #[arg(long, value_delimiter = ',', required = true)]
    endpoints: Vec<String>,
    /// ballot: directory with ca.pem, client.pem, client-key.pem.
    #[arg(long, default_value = "certs")]
    cert_dir: PathBuf,
    /// ballot: the cluster's name.
    #[arg(long, default_value = "ballot")]
    cluster: String,
    /// ballot: the cluster's consensus (raft, multipaxos or pbft; pbft clients sign
    /// their requests and wait for matching replies from several replicas).
    #[arg(long, default_value = "raft", value_parser = |s: &str| s.parse::<ballot_core::Consensus>())]
    consensus: ballot_core::Consensus,
    /// etcd: send every request to the leader (ballot's client always does).
    #[arg(long)]
    target_leader: bool,
    /// The name of the system in the result (e.g. `ballot-raft`).
    #[arg(long)]
    label: Option<String>,
    /// Print the result as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    #[command(flatten)]
    bench: BenchArgs,
}

async fn run(cli: Cli) -> Result<BenchResult> {
    let label = cli.label.as_deref();
    match cli.system {
        System::Ballot => {
            let mut config = ballot_client::ClientConfig::from_cert_dir(cli.endpoints.clone(), &cli.cert_dir)
                .with_context(|| format!("loading the client certificate from {}", cli.cert_dir.display()))?;
            config.cluster.clone_from(&cli.cluster);
            config.consensus = cli.consensus;
            config.attempt_timeout = Duration::from_secs(5);
            config.deadline = Duration::from_secs(20);
            let target = Arc::new(BallotTarget::connect(config, cli.bench.conns).await?);
            Ok(execute(target, &cli.bench, label, cli.json).await?)
        }
        #[cfg(feature = "etcd")]
        System::Etcd => {
            let target =
                Arc::new(ballot_bench::EtcdTarget::connect(&cli.endpoints, cli.bench.conns, cli.target_leader).await?);
            Ok(execute(target, &cli.bench, label, cli.json).await?)
        }
        #[cfg(not(feature = "etcd"))]
        System::Etcd => {
            let _ = cli.target_leader;
            anyhow::bail!(
                "this ballot-bench was built without etcd support; build it with `--features ballot-bench/etcd`"
            )
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(cli.threads.max(1)).enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
    match runtime.block_on(run(cli)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
