//! `ballot`: the command-line tool for ballot's services.
//!
//! `ballot kv|config|election …` talk to a cluster through ballot-client;
//! `ballot status` shows every node's view; `ballot certs` writes a development CA and
//! certificates. Tables for people, `--output json` for scripts.

mod bench;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ballot_client::{ClientConfig, ConfigClient, ElectionClient, KvClient};
use ballot_core::NodeId;
use ballot_core::service::Consistency;
use ballot_kv::Compare;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::output::{Output, Row};

#[derive(Parser)]
#[command(
    name = "ballot",
    version,
    about = "Talk to ballot clusters: key-value, config, election; status; certificates"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Global {
    /// Client addresses of the nodes, comma separated.
    #[arg(
        long,
        global = true,
        env = "BALLOT_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"
    )]
    endpoints: Vec<String>,
    /// Directory with `ca.pem`, `client.pem` and `client-key.pem` (from `ballot certs`).
    #[arg(long, global = true, env = "BALLOT_CERT_DIR", default_value = "certs")]
    cert_dir: PathBuf,
    /// The cluster's name.
    #[arg(long, global = true, env = "BALLOT_CLUSTER", default_value = "ballot")]
    cluster: String,
    /// How long a command may take, retries included (e.g. `10s`, `500ms`).
    #[arg(long, global = true, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    /// `table` for people, `json` for scripts.
    #[arg(long, short = 'o', global = true, value_enum, default_value = "table")]
    output: Format,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// The replicated key-value database (`ballot-kvd`).
    #[command(subcommand)]
    Kv(KvCmd),
    /// The configuration service (`ballot-configd`).
    #[command(subcommand)]
    Config(ConfigCmd),
    /// The leader-election service (`ballot-electiond`).
    #[command(subcommand)]
    Election(ElectionCmd),
    /// Every endpoint's view of the cluster: role, leader, term, indexes.
    Status {
        /// Keep watching: print a line whenever a node's leader or role changes.
        #[arg(long)]
        watch: bool,
    },
    /// Local development clusters: node processes on loopback, in the background.
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// Benchmarks the database with etcd's `benchmark` workloads: `ballot bench --clients
    /// 100 --conns 10 --total 10000 put --val-size 256 --sequential-keys`, `ballot bench
    /// range --consistency s`; prints throughput, latency percentiles and a histogram.
    Bench(ballot_bench::cli::BenchArgs),
    /// Writes a development CA, node certificates and a client certificate.
    Certs {
        /// Where to write them.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// Node ids to issue certificates for, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,5")]
        nodes: Vec<NodeId>,
        /// Host names and IP addresses the nodes are reached at, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "127.0.0.1,localhost,::1")]
        hosts: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Starts a cluster in the background (certificates, data and logs under --dir).
    Up {
        /// kv, config or election.
        #[arg(long, default_value = "kv")]
        service: String,
        /// 3 or 5 nodes (any number from 1 to 9 works).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=9))]
        nodes: u64,
        /// raft or multipaxos.
        #[arg(long, default_value = "raft")]
        consensus: String,
        /// Node i listens on 127.0.0.1:BASE+i and serves metrics on BASE+100+i.
        #[arg(long, default_value_t = 7000)]
        base_port: u16,
        /// Where certs/, data directories and logs go.
        #[arg(long, default_value = "ballot-cluster")]
        dir: PathBuf,
        /// Directory of the service binaries (default: next to this `ballot`).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        /// Minimum election timeout in milliseconds.
        #[arg(long, default_value_t = 1000)]
        election_timeout_ms: u64,
        /// Heartbeat interval in milliseconds.
        #[arg(long, default_value_t = 100)]
        heartbeat_ms: u64,
    },
    /// Stops the cluster recorded in --dir.
    Down {
        #[arg(long, default_value = "ballot-cluster")]
        dir: PathBuf,
    },
    /// Shows which nodes run and their health.
    Status {
        #[arg(long, default_value = "ballot-cluster")]
        dir: PathBuf,
    },
    /// Kills node ID with SIGKILL (a crash), for experiments.
    Kill {
        id: NodeId,
        #[arg(long, default_value = "ballot-cluster")]
        dir: PathBuf,
    },
    /// (Re)starts node ID on its data directory.
    Start {
        id: NodeId,
        #[arg(long, default_value = "ballot-cluster")]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum KvCmd {
    /// Sets KEY to VALUE.
    Put { key: String, value: String },
    /// Reads KEY.
    Get {
        key: String,
        /// Read the local state of whichever node answers (may be stale).
        #[arg(long)]
        serializable: bool,
    },
    /// Deletes KEY.
    Del { key: String },
    /// Compare-and-swap: sets KEY to VALUE only if the condition holds.
    Cas {
        key: String,
        value: String,
        /// The current value must be this.
        #[arg(long, group = "cond")]
        expect_value: Option<String>,
        /// The key's version must be this (0: absent).
        #[arg(long, group = "cond")]
        expect_version: Option<u64>,
        /// The key's mod revision must be this (0: absent).
        #[arg(long, group = "cond")]
        expect_mod_revision: Option<u64>,
        /// The key must not exist.
        #[arg(long, group = "cond")]
        expect_absent: bool,
    },
    /// Lists keys starting with PREFIX.
    Range {
        #[arg(default_value = "")]
        prefix: String,
        /// At most this many keys (0: the server's maximum).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Read the local state of whichever node answers (may be stale).
        #[arg(long)]
        serializable: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Sets NAMESPACE/KEY to VALUE.
    Set { namespace: String, key: String, value: String },
    /// Reads NAMESPACE/KEY.
    Get { namespace: String, key: String },
    /// Deletes NAMESPACE/KEY.
    Del { namespace: String, key: String },
    /// Lists the keys of NAMESPACE starting with PREFIX.
    List {
        namespace: String,
        #[arg(default_value = "")]
        prefix: String,
        /// At most this many entries (0: the server's maximum).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Streams changes of NAMESPACE/KEY (or every key under a prefix) until interrupted.
    Watch {
        namespace: String,
        key: String,
        /// Treat KEY as a prefix.
        #[arg(long)]
        prefix: bool,
        /// Start at this revision (replaying history); default: from now.
        #[arg(long)]
        from: Option<u64>,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
    },
}

#[derive(Subcommand)]
enum ElectionCmd {
    /// Campaigns for NAME with VALUE, waits until elected, then holds the leadership
    /// (keeping the lease alive) until interrupted, and resigns.
    Campaign {
        name: String,
        value: String,
        /// The lease's time to live: after a crash, leadership passes on after this long.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        ttl: Duration,
        /// Resign after holding the leadership this long instead of until interrupted.
        #[arg(long, value_parser = parse_duration)]
        hold: Option<Duration>,
    },
    /// Shows NAME's leader and its fencing token.
    Leader { name: String },
    /// Streams NAME's leadership changes until interrupted.
    Observe {
        name: String,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Resigns NAME's leadership held under LEASE.
    Resign { name: String, lease: u64 },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit() && c != '.').map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num.parse().map_err(|_| format!("{s:?} is not a duration such as 10s, 500ms or 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use ms, s, m or h")),
    };
    if !(0.0..=1e9).contains(&secs) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn client_config(g: &Global) -> Result<ClientConfig> {
    let mut config = ClientConfig::from_cert_dir(g.endpoints.clone(), &g.cert_dir).with_context(|| {
        format!(
            "loading the client certificate from {} (make one with `ballot certs --dir {}`, or pass --cert-dir)",
            g.cert_dir.display(),
            g.cert_dir.display()
        )
    })?;
    config.cluster.clone_from(&g.cluster);
    config.deadline = g.timeout;
    config.attempt_timeout = g.timeout.min(Duration::from_secs(2));
    Ok(config)
}

fn consistency(serializable: bool) -> Consistency {
    if serializable { Consistency::Serializable } else { Consistency::Linearizable }
}

async fn run(cli: Cli) -> Result<()> {
    let out = Output::new(cli.global.output == Format::Json);
    match cli.command {
        Command::Certs { dir, nodes, hosts } => {
            let files = ballot_quic::generate_dev_certs(&dir, &nodes, &hosts)?;
            out.message(
                &format!(
                    "wrote a development CA and certificates for {} to {}",
                    nodes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                    dir.display()
                ),
                serde_json::json!({ "dir": dir, "nodes": nodes.iter().map(|n| n.get()).collect::<Vec<_>>(), "files": format!("{files:?}") }),
            );
            Ok(())
        }
        Command::Status { watch } => {
            let kv = KvClient::connect(client_config(&cli.global)?).await?;
            let rows = kv.client().statuses().await;
            out.status(&rows);
            if rows.iter().all(|(_, r)| r.is_err()) {
                bail!("no endpoint answered; is the cluster running at {}?", cli.global.endpoints.join(","));
            }
            if watch {
                watch_status(kv.client(), &out).await?;
            }
            Ok(())
        }
        Command::Cluster(cmd) => cluster(cmd, &out),
        Command::Bench(args) => bench::bench(&args, &cli.global, cli.global.output == Format::Json).await,
        Command::Kv(cmd) => kv(cmd, &cli.global, &out).await,
        Command::Config(cmd) => config(cmd, &cli.global, &out).await,
        Command::Election(cmd) => election(cmd, &cli.global, &out).await,
    }
}

/// Follows every endpoint's status, printing a line when a node's role or leader changes.
async fn watch_status(client: &ballot_client::Client<ballot_kv::KvStore>, out: &Output) -> Result<()> {
    let mut last: std::collections::HashMap<String, (String, Option<NodeId>, u64)> = std::collections::HashMap::new();
    loop {
        for (endpoint, status) in client.statuses().await {
            let now = match &status {
                Ok(s) => (s.status.role.to_string(), s.status.leader, s.status.term),
                Err(_) => ("unreachable".to_owned(), None, 0),
            };
            if last.get(&endpoint) != Some(&now) {
                out.message(
                    &format!(
                        "{endpoint}: {} (leader {}, term {})",
                        now.0,
                        now.1.map_or_else(|| "-".to_owned(), |l| l.to_string()),
                        now.2
                    ),
                    serde_json::json!({ "endpoint": endpoint, "role": now.0, "leader": now.1.map(|l| l.get()), "term": now.2 }),
                );
                last.insert(endpoint, now);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

fn cluster(cmd: ClusterCmd, out: &Output) -> Result<()> {
    use ballot_localcluster::{ClusterSpec, Service, detached};
    match cmd {
        ClusterCmd::Up { service, nodes, consensus, base_port, dir, bin_dir, election_timeout_ms, heartbeat_ms } => {
            let service = Service::parse(&service).map_err(anyhow::Error::msg)?;
            if !["raft", "multipaxos"].contains(&consensus.as_str()) {
                bail!("unknown consensus {consensus:?}: use raft or multipaxos");
            }
            let bin_dir = match bin_dir {
                Some(d) => d,
                None => std::env::current_exe()?.parent().context("locating this binary's directory")?.to_owned(),
            };
            let binary = bin_dir.join(service.binary());
            if !binary.is_file() {
                bail!("{} not found; build it (`cargo build --bins`) or pass --bin-dir", binary.display());
            }
            let dir = std::path::absolute(&dir)?;
            let mut spec = ClusterSpec::new(service, usize::try_from(nodes)?, &dir, binary);
            spec.consensus = consensus;
            spec.base_port = base_port;
            spec.election_timeout_ms = election_timeout_ms;
            spec.heartbeat_ms = heartbeat_ms;
            detached::up(&spec)?;
            out.message(
                &format!(
                    "started {} {} nodes ({}) in {}\n  export BALLOT_ENDPOINTS={} BALLOT_CERT_DIR={}\n  metrics: {}",
                    spec.nodes,
                    service.binary(),
                    spec.consensus,
                    dir.display(),
                    spec.endpoints().join(","),
                    spec.cert_dir().display(),
                    spec.ids()
                        .iter()
                        .map(|&id| format!("http://{}/metrics", spec.metrics(id)))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                serde_json::json!({ "dir": dir, "endpoints": spec.endpoints(), "cert_dir": spec.cert_dir() }),
            );
        }
        ClusterCmd::Down { dir } => {
            let n = detached::down(&dir)?;
            out.message(&format!("stopped {n} nodes"), serde_json::json!({ "stopped": n }));
        }
        ClusterCmd::Status { dir } => {
            let (spec, nodes) = detached::status(&dir)?;
            out.local_cluster(&spec, &nodes);
        }
        ClusterCmd::Kill { id, dir } => {
            let spec = detached::load(&dir)?;
            if !detached::signal_node(&spec, id, "KILL") {
                bail!("node {id} is not running");
            }
            out.message(&format!("killed {id}"), serde_json::json!({ "killed": id.get() }));
        }
        ClusterCmd::Start { id, dir } => {
            let spec = detached::load(&dir)?;
            if !spec.ids().contains(&id) {
                bail!("the cluster has no node {id}");
            }
            let pid = detached::start_node(&spec, id)?;
            out.message(&format!("started {id} (pid {pid})"), serde_json::json!({ "started": id.get(), "pid": pid }));
        }
    }
    Ok(())
}

async fn kv(cmd: KvCmd, g: &Global, out: &Output) -> Result<()> {
    if let KvCmd::Cas {
        expect_value: None,
        expect_version: None,
        expect_mod_revision: None,
        expect_absent: false,
        ..
    } = cmd
    {
        bail!("give a condition: --expect-value, --expect-version, --expect-mod-revision or --expect-absent");
    }
    let kv = KvClient::connect(client_config(g)?).await?;
    match cmd {
        KvCmd::Put { key, value } => {
            let header = kv.put(key.clone(), value).await?;
            out.message(
                &format!("OK (revision {})", header.revision),
                serde_json::json!({ "key": key, "revision": header.revision }),
            );
        }
        KvCmd::Get { key, serializable } => {
            let (header, got) = kv.get_with(key.clone(), consistency(serializable)).await?;
            match got {
                Some(kv) => out.rows(&[Row::kv(&kv)], header.revision),
                None => {
                    out.rows(&[], header.revision);
                    bail!("key {key:?} not found");
                }
            }
        }
        KvCmd::Del { key } => {
            let deleted = kv.delete(key.clone()).await?;
            out.message(
                if deleted { "deleted" } else { "not found (nothing deleted)" },
                serde_json::json!({ "key": key, "deleted": deleted }),
            );
        }
        KvCmd::Cas { key, value, expect_value, expect_version, expect_mod_revision, expect_absent } => {
            let compare = match (expect_value, expect_version, expect_mod_revision, expect_absent) {
                (Some(v), _, _, _) => Compare::Value(v.into()),
                (_, Some(v), _, _) => Compare::Version(v),
                (_, _, Some(r), _) => Compare::ModRevision(r),
                (_, _, _, true) => Compare::Absent,
                _ => bail!(
                    "give a condition: --expect-value, --expect-version, --expect-mod-revision or --expect-absent"
                ),
            };
            let (ok, current) = kv.compare_and_swap(key.clone(), compare, value).await?;
            if ok {
                out.message("OK (swapped)", serde_json::json!({ "key": key, "succeeded": true }));
            } else {
                let now = current.as_ref().map(Row::kv);
                out.message(
                    &format!(
                        "condition failed; current: {}",
                        now.as_ref()
                            .map_or_else(|| "absent".to_owned(), |r| format!("{} (version {})", r.value, r.version))
                    ),
                    serde_json::json!({ "key": key, "succeeded": false, "current": now }),
                );
                bail!("compare-and-swap on {key:?} did not apply: the condition does not hold");
            }
        }
        KvCmd::Range { prefix, limit, serializable } => {
            let page = kv.range(prefix, None, limit, consistency(serializable)).await?;
            let rows: Vec<Row> = page.kvs.iter().map(Row::kv).collect();
            out.rows(&rows, page.header.revision);
            if page.more {
                out.note(&format!("{} of {} keys shown; raise --limit for more", rows.len(), page.count));
            }
        }
    }
    Ok(())
}

async fn config(cmd: ConfigCmd, g: &Global, out: &Output) -> Result<()> {
    let cfg = ConfigClient::connect(client_config(g)?).await?;
    match cmd {
        ConfigCmd::Set { namespace, key, value } => {
            let header = cfg.set(&namespace, &key, value).await?;
            out.message(
                &format!("OK (revision {})", header.revision),
                serde_json::json!({ "namespace": namespace, "key": key, "revision": header.revision }),
            );
        }
        ConfigCmd::Get { namespace, key } => {
            let (header, entry) = cfg.get(&namespace, &key).await?;
            match entry {
                Some(e) => out.rows(&[Row::config(&e)], header.revision),
                None => {
                    out.rows(&[], header.revision);
                    bail!("{namespace}/{key} not found");
                }
            }
        }
        ConfigCmd::Del { namespace, key } => {
            let deleted = cfg.delete(&namespace, &key).await?;
            out.message(
                if deleted { "deleted" } else { "not found (nothing deleted)" },
                serde_json::json!({ "deleted": deleted }),
            );
        }
        ConfigCmd::List { namespace, prefix, limit } => {
            let (header, entries, more) = cfg.list(&namespace, &prefix, limit).await?;
            out.rows(&entries.iter().map(Row::config).collect::<Vec<_>>(), header.revision);
            if more {
                out.note("more entries match; raise --limit");
            }
        }
        ConfigCmd::Watch { namespace, key, prefix, from, count } => {
            let mut watch = cfg.watch(&namespace, &key, prefix, from).await?;
            out.note(&format!(
                "watching {namespace}/{key}{} from revision {}",
                if prefix { "*" } else { "" },
                watch.next_revision()
            ));
            let mut seen = 0u64;
            while count.is_none_or(|c| seen < c) {
                let event = tokio::select! {
                    e = watch.next() => e?,
                    _ = tokio::signal::ctrl_c() => break,
                };
                out.event(&event);
                seen += 1;
            }
        }
    }
    Ok(())
}

async fn election(cmd: ElectionCmd, g: &Global, out: &Output) -> Result<()> {
    let el = ElectionClient::connect(client_config(g)?).await?;
    match cmd {
        ElectionCmd::Campaign { name, value, ttl, hold } => {
            out.note(&format!("campaigning for {name:?} (lease TTL {ttl:?}); waiting to be elected…"));
            let mut campaign = el.campaign(&name, value, ttl).await?;
            let l = campaign.leadership().clone();
            out.message(
                &format!("elected leader of {name:?} with fencing token {} (lease {})", l.token, l.lease),
                serde_json::json!({ "election": name, "elected": true, "token": l.token, "lease": l.lease.0, "revision": l.revision }),
            );
            let sleep = async {
                match hold {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = sleep => {}
                _ = tokio::signal::ctrl_c() => {}
                () = campaign.lost() => bail!("the lease expired: leadership of {name:?} is lost"),
            }
            campaign.resign().await?;
            out.note(&format!("resigned leadership of {name:?}"));
        }
        ElectionCmd::Leader { name } => match el.leader(&name).await? {
            Some(l) => out.leader(&name, &l),
            None => bail!("election {name:?} has no leader"),
        },
        ElectionCmd::Observe { name, count } => {
            let mut observer = el.observe(&name).await?;
            let mut seen = 0u64;
            while count.is_none_or(|c| seen < c) {
                let event = tokio::select! {
                    e = observer.next() => e?,
                    _ = tokio::signal::ctrl_c() => break,
                };
                out.leader_event(&event);
                seen += 1;
            }
        }
        ElectionCmd::Resign { name, lease } => {
            let was = el.resign(&name, ballot_election::LeaseId(lease)).await?;
            out.message(
                if was { "resigned (was leader)" } else { "resigned (was not leading)" },
                serde_json::json!({ "was_leader": was }),
            );
        }
    }
    Ok(())
}

/// The error and its causes, each once (many errors already quote their source).
fn error_chain(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        if !text.contains(&msg) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&msg);
        }
    }
    text
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("BALLOT_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}
