//! `ballot`: the command-line tool for ballot's services.
//!
//! `ballot kv|config|election …` talk to a cluster through ballot-client;
//! `ballot status` shows every node's view; `ballot certs` writes a development CA and
//! certificates. Tables for people, `--output json` for scripts.

mod bench;
mod chain;
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
    about = "Talk to ballot clusters: key-value, config, election; status; certificates",
    after_help = "Exit codes: 0 success; 1 failed (e.g. a compare-and-swap whose condition did not hold); \
                  2 invalid input; 3 not found; 4 unavailable (nothing was changed); \
                  5 outcome unknown (a write that may or may not have taken effect: read before retrying).\n\
                  With --output json, errors are printed on stdout as {\"error\": {\"kind\", \"code\", \"message\"}}."
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
    /// The cluster's consensus: raft, multipaxos or pbft (requests are then signed with
    /// the client certificate's key, sent to every endpoint, and answers must match).
    #[arg(long, global = true, env = "BALLOT_CONSENSUS", default_value = "raft", value_parser = |s: &str| s.parse::<ballot_core::Consensus>())]
    consensus: ballot_core::Consensus,
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
    /// The Proof-of-Work chain (`ballot-chaind`): keys, balances, transfers, blocks,
    /// peers, bans, verification.
    Chain(chain::ChainArgs),
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
        /// kv, config, election or chain.
        #[arg(long, default_value = "kv")]
        service: String,
        /// How many nodes, 1 to 9 (default: 3, or 4 for pbft, which needs at least 4). The
        /// nodes run the global --consensus.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=9))]
        nodes: Option<u64>,
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
        /// Extra flags for one node, `ID=FLAGS` (split at spaces; repeatable), e.g.
        /// `--node-args '1=--log debug'`. Kept for the node's restarts by `cluster start`.
        #[arg(long = "node-args", value_name = "ID=FLAGS", value_parser = parse_node_args)]
        node_args: Vec<(u64, Vec<String>)>,
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
    /// Sets KEY to VALUE, or to the contents of a file (`--from-file PATH`, `-` for
    /// standard input) for large or binary values.
    Put {
        key: String,
        #[arg(required_unless_present = "from_file")]
        value: Option<String>,
        /// Read the value from this file (`-`: standard input) instead of VALUE.
        #[arg(long, value_name = "PATH", conflicts_with = "value")]
        from_file: Option<PathBuf>,
    },
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
    config.consensus = g.consensus;
    config.deadline = g.timeout;
    config.attempt_timeout = g.timeout.min(Duration::from_secs(2));
    config.connect_timeout = g.timeout.min(Duration::from_secs(1));
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
            if watch {
                out.status(&rows);
                return watch_status(kv.client(), &out).await;
            }
            out.status(&rows);
            let down = rows.iter().filter(|(_, r)| r.is_err()).count();
            if down == rows.len() {
                return Err(reported(
                    Failure::Unavailable,
                    format!("no endpoint answered; is the cluster running at {}?", cli.global.endpoints.join(",")),
                ));
            }
            if down > 0 {
                return Err(reported(
                    Failure::Unavailable,
                    format!("{down} of {} endpoints are unhealthy", rows.len()),
                ));
            }
            Ok(())
        }
        Command::Cluster(cmd) => cluster(cmd, cli.global.consensus, &out),
        Command::Chain(args) => {
            let timeout = cli.global.timeout;
            tokio::task::block_in_place(|| chain::run(args, timeout, &out))
        }
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

/// `ID=FLAGS` of `cluster up --node-args`.
fn parse_node_args(value: &str) -> Result<(u64, Vec<String>), String> {
    let (id, flags) = value.split_once('=').ok_or("expected ID=FLAGS, e.g. 1=--log debug")?;
    let id: u64 = id.trim().parse().map_err(|_| format!("`{id}` is not a node id (1 to 9)"))?;
    if id == 0 {
        return Err("node ids start at 1".into());
    }
    let flags: Vec<String> = flags.split_whitespace().map(str::to_owned).collect();
    if flags.is_empty() {
        return Err(format!("no flags given for node {id}"));
    }
    Ok((id, flags))
}

fn cluster(cmd: ClusterCmd, consensus: ballot_core::Consensus, out: &Output) -> Result<()> {
    use ballot_localcluster::{ClusterSpec, Service, detached};
    match cmd {
        ClusterCmd::Up { service, nodes, base_port, dir, bin_dir, election_timeout_ms, heartbeat_ms, node_args } => {
            let service = Service::parse(&service).map_err(anyhow::Error::msg)?;
            let bin_dir = match bin_dir {
                Some(d) => d,
                None => std::env::current_exe()?.parent().context("locating this binary's directory")?.to_owned(),
            };
            let binary = bin_dir.join(service.binary());
            if !binary.is_file() {
                bail!("{} not found; build it (`cargo build --bins`) or pass --bin-dir", binary.display());
            }
            let dir = std::path::absolute(&dir)?;
            let nodes = match nodes {
                Some(n) => usize::try_from(n)?,
                None => consensus.nodes_for(1),
            };
            if consensus.is_byzantine() && nodes < consensus.nodes_for(1) {
                return Err(invalid(format!(
                    "--consensus {consensus} needs at least {} nodes (3f+1 survive f faulty ones)",
                    consensus.nodes_for(1)
                )));
            }
            let mut spec = ClusterSpec::new(service, nodes, &dir, binary);
            spec.consensus = consensus;
            spec.base_port = base_port;
            spec.election_timeout_ms = election_timeout_ms;
            spec.heartbeat_ms = heartbeat_ms;
            for (id, args) in node_args {
                if usize::try_from(id).map_or(true, |i| i > nodes) {
                    return Err(invalid(format!("--node-args names node {id}; the cluster has nodes 1 to {nodes}")));
                }
                spec.node_args.entry(NodeId(id)).or_default().extend(args);
            }
            detached::up(&spec)?;
            if service == Service::Chain {
                let api = spec.metrics(NodeId(1));
                out.message(
                    &format!(
                        "started {} mining ballot-chaind nodes in {}\n  export BALLOT_CHAIN_NODE={api}\n  node keys (mining rewards): {}/n<i>/node.key\n  metrics: {}",
                        spec.nodes,
                        dir.display(),
                        dir.display(),
                        spec.ids().iter().map(|&id| format!("http://{}/metrics", spec.metrics(id))).collect::<Vec<_>>().join(" ")
                    ),
                    serde_json::json!({ "dir": dir, "api": api, "peers": spec.endpoints() }),
                );
                return Ok(());
            }
            out.message(
                &format!(
                    "started {} {} nodes ({}) in {}\n  export BALLOT_ENDPOINTS={} BALLOT_CERT_DIR={} BALLOT_CONSENSUS={}\n  metrics: {}",
                    spec.nodes,
                    service.binary(),
                    spec.consensus,
                    dir.display(),
                    spec.endpoints().join(","),
                    spec.cert_dir().display(),
                    spec.consensus,
                    spec.ids()
                        .iter()
                        .map(|&id| format!("http://{}/metrics", spec.metrics(id)))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                serde_json::json!({ "dir": dir, "endpoints": spec.endpoints(), "cert_dir": spec.cert_dir(), "consensus": spec.consensus }),
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
            if !detached::signal_node(&spec, id, ballot_localcluster::Signal::KILL) {
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
        return Err(invalid(
            "give a condition: --expect-value, --expect-version, --expect-mod-revision or --expect-absent",
        ));
    }
    let kv = KvClient::connect(client_config(g)?).await?;
    match cmd {
        KvCmd::Put { key, value, from_file } => {
            let value = match (value, from_file) {
                (Some(v), _) => bytes::Bytes::from(v),
                (None, Some(path)) => read_value(&path)?,
                (None, None) => return Err(invalid("give a VALUE or --from-file PATH")),
            };
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
                None => return Err(not_found(format!("key {key:?} not found"))),
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
                _ => {
                    return Err(invalid(
                        "give a condition: --expect-value, --expect-version, --expect-mod-revision or --expect-absent",
                    ));
                }
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
                return Err(reported(Failure::General, String::new()));
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
                None => return Err(not_found(format!("{namespace}/{key} not found"))),
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
            None => return Err(not_found(format!("election {name:?} has no leader"))),
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

/// How a command failed: its exit code (documented in `ballot --help`) and the `kind`
/// of its JSON error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// Anything else (exit 1), including a compare-and-swap whose condition failed.
    General,
    /// Invalid input: bad flags, a request the service refuses, unusable certificates (exit 2).
    Invalid,
    /// The key, entry or leader asked for does not exist (exit 3).
    NotFound,
    /// The cluster could not be reached or could not serve (exit 4); nothing was changed.
    Unavailable,
    /// A write that may or may not have taken effect (exit 5): read before retrying.
    OutcomeUnknown,
}

impl Failure {
    fn code(self) -> u8 {
        match self {
            Failure::General => 1,
            Failure::Invalid => 2,
            Failure::NotFound => 3,
            Failure::Unavailable => 4,
            Failure::OutcomeUnknown => 5,
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Failure::General => "failed",
            Failure::Invalid => "invalid",
            Failure::NotFound => "not_found",
            Failure::Unavailable => "unavailable",
            Failure::OutcomeUnknown => "outcome_unknown",
        }
    }

    /// What a client error means for the user.
    fn of_client(e: &ballot_client::Error) -> Failure {
        use ballot_wire::ClientError as E;
        match e {
            _ if e.is_outcome_unknown() => Failure::OutcomeUnknown,
            ballot_client::Error::Server(E::NotFound(_)) => Failure::NotFound,
            ballot_client::Error::Server(
                E::InvalidRequest(_) | E::TooLarge { .. } | E::Unauthenticated | E::UnsupportedVersion { .. },
            )
            | ballot_client::Error::Config(_)
            | ballot_client::Error::Transport(_) => Failure::Invalid,
            ballot_client::Error::Server(E::NotLeader { .. } | E::Busy | E::Unavailable(_))
            | ballot_client::Error::Unreachable { .. } => Failure::Unavailable,
            _ => Failure::General,
        }
    }
}

/// A failure of the command itself, with its kind. `reported`: the command already
/// printed its result (a status table, a failed compare-and-swap), so only the exit
/// code (and, for people, the message on stderr) remains.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct CliError {
    failure: Failure,
    message: String,
    reported: bool,
}

fn invalid(message: impl Into<String>) -> anyhow::Error {
    CliError { failure: Failure::Invalid, message: message.into(), reported: false }.into()
}

fn not_found(message: impl Into<String>) -> anyhow::Error {
    CliError { failure: Failure::NotFound, message: message.into(), reported: false }.into()
}

fn reported(failure: Failure, message: String) -> anyhow::Error {
    CliError { failure, message, reported: true }.into()
}

/// The failure an error stands for: the command's own, else the client's, else general.
fn classify(e: &anyhow::Error) -> (Failure, bool) {
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<CliError>() {
            return (c.failure, c.reported);
        }
        if let Some(c) = cause.downcast_ref::<ballot_client::Error>() {
            return (Failure::of_client(c), false);
        }
    }
    (Failure::General, false)
}

/// Reads a value from `path` (`-`: standard input), refusing one over the limit before
/// anything is sent.
fn read_value(path: &std::path::Path) -> Result<bytes::Bytes> {
    use std::io::Read as _;
    let limit = ballot_kv::MAX_VALUE_SIZE as u64;
    let mut data = Vec::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().lock().take(limit + 1).read_to_end(&mut data)
    } else {
        std::fs::File::open(path)
            .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?
            .take(limit + 1)
            .read_to_end(&mut data)
    };
    read.map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
    if data.len() as u64 > limit {
        return Err(invalid(format!("the value in {} exceeds the limit of {limit} bytes", path.display())));
    }
    Ok(data.into())
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

/// Whether the command ends by itself (and so must end within `--timeout`): everything
/// but streams, long-running holders, benchmarks and local cluster management.
fn is_one_shot(command: &Command) -> bool {
    match command {
        Command::Kv(_) | Command::Status { watch: false } => true,
        Command::Chain(c) => c.one_shot(),
        Command::Config(c) => !matches!(c, ConfigCmd::Watch { .. }),
        Command::Election(c) => matches!(c, ElectionCmd::Leader { .. } | ElectionCmd::Resign { .. }),
        Command::Status { watch: true } | Command::Cluster(_) | Command::Bench(_) | Command::Certs { .. } => false,
    }
}

fn main() -> ExitCode {
    use std::io::IsTerminal as _;
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("BALLOT_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = cli.global.output == Format::Json;
    let timeout = cli.global.timeout;
    let one_shot = is_one_shot(&cli.command);
    let result = runtime.block_on(async {
        if !one_shot {
            return run(cli).await;
        }
        // The client's own deadline is the same; this is the guarantee for the whole
        // command (several calls, slow name resolution), with a little grace.
        match tokio::time::timeout(timeout + Duration::from_millis(500), run(cli)).await {
            Ok(r) => r,
            Err(_) => Err(CliError {
                failure: Failure::Unavailable,
                message: format!("the command did not finish within --timeout {timeout:?}"),
                reported: false,
            }
            .into()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let (failure, already_reported) = classify(&e);
            let message = error_chain(&e);
            if json && !already_reported {
                let error = serde_json::json!({ "error": { "kind": failure.kind(), "code": failure.code(), "message": message } });
                println!("{error}");
            } else if !json && !message.is_empty() {
                eprintln!("error: {message}");
            }
            ExitCode::from(failure.code())
        }
    }
}
