//! Assembles a ballot service node from crates: settings (flags, `BALLOT_*` variables,
//! TOML), TLS, the QUIC transport (ballot-quic), RocksDB storage (ballot-storage), the
//! chosen consensus (ballot-raft, ballot-paxos, or ballot-pbft with the keys of the
//! cluster's certificates), the driver (ballot-node), the client port and the HTTP port
//! for metrics and health.
//!
//! The service binaries' `main` is one call to [`main`]:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     ballot_server::main("ballot-kvd", "ballot's replicated key-value database", ballot_kv::KvStore::new)
//! }
//! ```

#[cfg(feature = "byzantine")]
pub mod byzantine;
mod client_server;
mod config;
pub mod http;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use ballot_core::service::StateMachine;
use ballot_core::{ConsensusSettings, LogStore, Membership, NodeId, Protocol, SeededRng};
use ballot_quic::{QuicConfig, QuicTransport, TlsConfig};
use ballot_storage::{RocksStore, StoreOptions};
use ballot_wire::Codec;
use tokio::sync::watch;

pub use self::config::{Consensus, Peer, ServerArgs, load_settings};
use ballot_node::{DriverConfig, Node, NodeParts, ReplicaConfig};

/// Why a node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Bad flags, environment or config file (the message is clap's, for the user).
    #[error("{0}")]
    Args(String),
    /// `--help`, `--version` or a clap parse error: clap prints and exits.
    #[error("{0}")]
    Clap(#[from] clap::Error),
    /// The certificates could not be loaded.
    #[error("TLS setup failed: {0}")]
    Tls(ballot_quic::Error),
    /// The QUIC endpoint could not be started.
    #[error("cannot start the QUIC endpoint on {addr}: {source}")]
    Transport {
        /// The address.
        addr: String,
        /// Why.
        source: ballot_quic::Error,
    },
    /// The data directory could not be used.
    #[error("data directory {dir}: {reason}")]
    DataDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// The consensus protocol refused its configuration or recovered state.
    #[error("cannot start {consensus}: {reason}")]
    Consensus {
        /// Which protocol.
        consensus: Consensus,
        /// Why.
        reason: String,
    },
    /// The HTTP port could not be bound.
    #[error("cannot serve metrics on {addr}: {source}")]
    Http {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The metrics recorder could not be installed.
    #[error("cannot install the metrics recorder: {0}")]
    Metrics(String),
    /// The driver stopped on a fatal error.
    #[error(transparent)]
    Driver(#[from] ballot_node::DriverError),
}

/// The entry point of a service binary: loads settings, runs the node until SIGINT or
/// SIGTERM, and turns errors into a message and an exit code.
pub fn main<S: StateMachine>(name: &'static str, about: &'static str, service: impl FnOnce() -> S) -> ExitCode {
    let args = match ServerArgs::load(name, about) {
        Ok(a) => a,
        Err(ServerError::Clap(e)) => e.exit(),
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&args.log))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: log files and journald get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi).init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().thread_name(name).build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, service())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "{name} stopped");
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Checks (or records) which consensus a data directory belongs to: a store written by
/// one protocol is never opened by another.
fn claim_data_dir(dir: &Path, consensus: Consensus) -> Result<PathBuf, ServerError> {
    let err = |reason: String| ServerError::DataDir { dir: dir.to_owned(), reason };
    std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create it: {e}")))?;
    let marker = dir.join("CONSENSUS");
    match std::fs::read_to_string(&marker) {
        Ok(found) if found.trim() == consensus.name() => {}
        Ok(found) => {
            return Err(err(format!(
                "it holds a {} log, but --consensus is {}; use the matching --consensus or another directory",
                found.trim(),
                consensus.name()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(&marker, format!("{}\n", consensus.name()))
                .map_err(|e| err(format!("cannot write {}: {e}", marker.display())))?;
        }
        Err(e) => return Err(err(format!("cannot read {}: {e}", marker.display()))),
    }
    Ok(dir.join("store"))
}

fn open_store<E, H>(dir: &Path, options: StoreOptions) -> Result<RocksStore<E, H>, ServerError>
where
    E: ballot_core::LogEntry,
    H: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    RocksStore::open_with(dir, options).map_err(|e| ServerError::DataDir { dir: dir.to_owned(), reason: e.to_string() })
}

/// The largest command (an encoded client request with its session) a node orders. A
/// request within the services' own limits fits — a 1 MiB value, or a compare-and-swap
/// comparing a 1 MiB value and writing another — and a replication message carrying one
/// such command alone still fits the 4 MiB peer frame.
pub const MAX_COMMAND_BYTES: usize = 3 << 20;

fn seed(id: NodeId) -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    (nanos as u64) ^ id.get().rotate_left(32) ^ u64::from(std::process::id())
}

/// Runs a node with `args` until SIGINT/SIGTERM or a fatal error.
///
/// # Errors
/// See [`ServerError`].
pub async fn run<S: StateMachine>(args: ServerArgs, service: S) -> Result<(), ServerError> {
    tracing::info!(
        node = %args.node_id, listen = %args.listen, metrics = %args.metrics_listen,
        peers = %args.peers.iter().map(|p| format!("{}={}", p.id.get(), p.addr)).collect::<Vec<_>>().join(","),
        data_dir = %args.data_dir.display(), consensus = args.consensus.name(), cluster = %args.cluster,
        election_timeout_ms = args.election_timeout_ms, heartbeat_ms = args.heartbeat_ms,
        snapshot_every = args.snapshot_every, request_timeout_ms = args.request_timeout_ms,
        "starting with this effective configuration"
    );
    // Latency histograms get real buckets (not summaries) so that dashboards can
    // aggregate percentiles across nodes, as with etcd.
    let latency_buckets =
        [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()), &latency_buckets)
        .map_err(|e| ServerError::Metrics(e.to_string()))?
        .install_recorder()
        .map_err(|e| ServerError::Metrics(e.to_string()))?;
    ballot_node::metrics::describe();
    ballot_quic::metrics::describe_metrics();

    let (ca, cert, key) = args.tls_files();
    let tls = TlsConfig::load(&ca, &cert, &key).map_err(ServerError::Tls)?;
    let mut quic = QuicConfig::new(args.node_id, args.cluster.clone(), args.listen, tls.clone());
    for p in args.peers.iter().filter(|p| p.id != args.node_id) {
        quic = quic.with_peer(p.id, p.addr.clone());
    }
    let transport = Arc::new(
        QuicTransport::bind(quic).map_err(|source| ServerError::Transport { addr: args.listen.to_string(), source })?,
    );
    let http = http::bind(args.metrics_listen)
        .await
        .map_err(|source| ServerError::Http { addr: args.metrics_listen.to_string(), source })?;

    let store_dir = claim_data_dir(&args.data_dir, args.consensus)?;
    let membership = Membership::new(args.peers.iter().map(|p| p.id));
    let rng = SeededRng::new(seed(args.node_id));
    let now = ballot_core::Instant::ZERO;
    let settings = ConsensusSettings {
        election_timeout: args.election_timeout(),
        heartbeat: args.heartbeat(),
        max_command_size: MAX_COMMAND_BYTES,
    };
    let refused = |reason: String| ServerError::Consensus { consensus: args.consensus, reason };
    let node = match args.consensus {
        Consensus::Raft => {
            let mut store = open_store::<ballot_raft::Entry, ballot_raft::HardState>(&store_dir, StoreOptions::new())?;
            let recovered = recover(&mut store, &store_dir)?;
            let config = ballot_raft::Config::from_settings(args.node_id, &settings);
            let raft =
                ballot_raft::Raft::new(config, membership, recovered, rng, now).map_err(|e| refused(e.to_string()))?;
            start(&args, raft, store, service, &transport)?
        }
        Consensus::MultiPaxos => {
            let options = StoreOptions::new().allow_log_gaps(true);
            let mut store = open_store::<ballot_paxos::Entry, ballot_paxos::HardState>(&store_dir, options)?;
            let recovered = recover(&mut store, &store_dir)?;
            let config = ballot_paxos::Config::from_settings(args.node_id, &settings);
            let paxos = ballot_paxos::MultiPaxos::new(config, membership, recovered, rng, now)
                .map_err(|e| refused(e.to_string()))?;
            start(&args, paxos, store, service, &transport)?
        }
        Consensus::Pbft => {
            let crypto = pbft_crypto(&args, &tls).map_err(refused)?;
            let n = args.peers.len();
            let f = args.consensus.faults(n);
            if n != args.consensus.nodes_for(f) {
                tracing::warn!("{n} PBFT replicas tolerate {f} faulty ones, as {} would", args.consensus.nodes_for(f));
            }
            // A backup may accept a PRE-PREPARE above one it has not received yet.
            let options = StoreOptions::new().allow_log_gaps(true);
            let mut store = open_store::<ballot_pbft::Entry, ballot_pbft::HardState>(&store_dir, options)?;
            let recovered = recover(&mut store, &store_dir)?;
            let mut config = ballot_pbft::Config::from_settings(args.node_id, &settings);
            if S::wants_agreed_time() {
                // The replica's clock: the wall clock read once here, then the driver's
                // monotonic time (its zero is taken a moment later, when the node starts).
                let unix_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_err(|e| refused(format!("the system clock is before 1970: {e}")))?;
                let unix_ms = u64::try_from(unix_ms.as_millis()).unwrap_or(u64::MAX);
                config.clock = Some(ballot_pbft::AgreedClock {
                    max_skew: std::time::Duration::from_millis(args.max_clock_skew_ms),
                    ..ballot_pbft::AgreedClock::new(unix_ms)
                });
            }
            #[cfg(feature = "byzantine")]
            let signer = Arc::clone(&crypto.signer);
            let pbft = ballot_pbft::Pbft::new(config, membership, recovered, crypto, now)
                .map_err(|e| refused(e.to_string()))?;
            // In a test build, lies told as `--byzantine` says (none: honest).
            #[cfg(feature = "byzantine")]
            let pbft = byzantine::Liar::new(
                pbft,
                ballot_pbft::byzantine::Forge::new(args.node_id, signer),
                args.byzantine.clone(),
            );
            start(&args, pbft, store, service, &transport)?
        }
    };

    let handle = node.handle();
    let (alive_tx, alive) = watch::channel(true);
    let (stop_http, stop_http_rx) = tokio::sync::oneshot::channel::<()>();
    let http_task = tokio::spawn(http::serve(http, prometheus, handle.subscribe(), alive, async {
        let _ = stop_http_rx.await;
    }));
    let clients = tokio::spawn(crate::client_server::serve_clients(
        transport.client_listener(),
        handle.clone(),
        Codec::default(),
    ));
    tracing::info!(node = %args.node_id, "serving clients on {} and metrics on http://{}/metrics", args.listen, args.metrics_listen);

    let mut node = node;
    let stopped = tokio::select! {
        () = shutdown_signal() => None,
        r = node.wait_finished() => Some(r),
    };
    let result = match stopped {
        Some(r) => r,
        None => {
            tracing::info!("shutting down");
            node.shutdown().await
        }
    };
    let _ = alive_tx.send(false);
    clients.abort();
    let _ = stop_http.send(());
    let _ = http_task.await;
    result.map_err(ServerError::from)
}

/// PBFT's keys: this node signs with its TLS key; the other members' keys come from
/// their certificates (checked against the CA and their `n<ID>.ballot` names); clients
/// sign requests with certificates of the CA.
fn pbft_crypto(args: &ServerArgs, tls: &TlsConfig) -> Result<ballot_pbft::Crypto, String> {
    use ballot_pbft_auth::{ClientAuth, ClusterKeys, NodeSigner};
    let signer = NodeSigner::new(tls.certificate(), tls.private_key()).map_err(|e| e.to_string())?;
    let mut certs = Vec::with_capacity(args.peers.len());
    for peer in &args.peers {
        let cert = if peer.id == args.node_id {
            tls.certificate().clone()
        } else {
            ballot_quic::load_certificate(&args.peer_certificate(peer.id)).map_err(|e| {
                format!("the certificate of member {}: {e}; --peer-cert-dir names the directory of every member's n<ID>.pem", peer.id)
            })?
        };
        certs.push((peer.id, cert));
    }
    let keys = ClusterKeys::from_certificates(tls.ca_certificates(), certs, ballot_quic::node_dns_name)
        .map_err(|e| e.to_string())?;
    let requests = ClientAuth::new(&args.cluster, tls.ca_certificates()).map_err(|e| e.to_string())?;
    Ok(ballot_pbft::Crypto { signer: Arc::new(signer), verifier: Arc::new(keys), requests: Arc::new(requests) })
}

fn recover<E: ballot_core::LogEntry, H>(
    store: &mut RocksStore<E, H>,
    dir: &Path,
) -> Result<ballot_core::Recovered<E, H>, ServerError>
where
    RocksStore<E, H>: LogStore<E, H>,
{
    store.recover().map_err(|e| ServerError::DataDir { dir: dir.to_owned(), reason: e.to_string() })
}

fn start<P, S, L>(
    args: &ServerArgs,
    protocol: P,
    store: L,
    service: S,
    transport: &Arc<QuicTransport>,
) -> Result<Node<S>, ServerError>
where
    P: Protocol + Send + 'static,
    S: StateMachine,
    L: LogStore<P::Entry, P::HardState> + 'static,
{
    let client_addrs: HashMap<NodeId, String> = args.peers.iter().map(|p| (p.id, p.addr.clone())).collect();
    let replica = ReplicaConfig {
        request_timeout: std::time::Duration::from_millis(args.request_timeout_ms),
        snapshot_every: args.snapshot_every,
        client_addrs,
        ..ReplicaConfig::default()
    };
    Node::start(NodeParts {
        config: DriverConfig::default(),
        replica,
        protocol,
        service,
        transport: Arc::clone(transport) as Arc<dyn ballot_core::Transport>,
        store,
        consensus: args.consensus,
        codec: Codec::default(),
    })
    .map_err(ServerError::from)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
