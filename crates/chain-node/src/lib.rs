//! ballot's Proof-of-Work blockchain node (`ballot-chaind`): the networked, durable
//! driver of `ballot-pow`'s sans-IO [`Chain`](ballot_pow::Chain).
//!
//! * **Peers** over QUIC with open membership ([`ballot_quic::open`]): a node joins by
//!   knowing one address, is identified by its own Ed25519 key (a self-signed
//!   certificate carrying that key, ALPN `ballot-chain/1`), and learns more peers by
//!   address gossip. The [`protocol`] is Bitcoin's in shape: version handshake,
//!   announce-then-fetch relay of blocks and transactions, headers-first sync from a
//!   block locator, blocks downloaded in parallel from several peers.
//! * **Bans**: invalid blocks or headers, frames that break framing or exceed the size
//!   limit, floods and undecodable messages add misbehaviour points; at 100 the peer is
//!   disconnected and banned (by key and address) for `--ban-seconds`. Operators ban and
//!   unban by hand through the API (Bitcoin's `setban`).
//! * **Storage** in RocksDB ([`ChainStore`]): one atomic synced batch per input, so a
//!   node killed at any moment restarts on a valid tip (replayed by
//!   [`Chain::restore`](ballot_pow::Chain::restore)).
//! * **Mining** on OS threads ([`Miner`]), restarted whenever the tip changes.
//! * **HTTP**: a JSON API (used by `ballot chain`, see [`ChainClient`]), `/metrics`,
//!   `/health`, `/livez`, `/readyz`.
//!
//! # Example
//!
//! A node on a fresh data directory, mining alone on an easy chain until height 2.
//!
//! ```no_run
//! use ballot_chain_node::{ChainClient, ChainSpec, NodeConfig};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), ballot_chain_node::Error> {
//! let dir = tempfile::tempdir().expect("a temporary directory");
//! let mut config = NodeConfig::new(dir.path());
//! config.listen = "127.0.0.1:0".parse().unwrap();
//! config.http_listen = "127.0.0.1:0".parse().unwrap();
//! config.spec = ChainSpec { block_interval_secs: 1, pow_limit_bits: 8, ..ChainSpec::default() };
//! config.mine = true;
//! let node = ballot_chain_node::spawn(config).await?;
//! let client = ChainClient::new(node.http_addr().to_string(), std::time::Duration::from_secs(5));
//! while tokio::task::block_in_place(|| client.tip()).map_or(0, |t| t.height) < 2 {
//!     tokio::time::sleep(std::time::Duration::from_millis(100)).await;
//! }
//! node.stop().await
//! # }
//! ```

pub mod api;
mod bans;
mod client;
mod config;
mod error;
mod http;
mod keys;
pub mod metrics;
mod miner;
mod node;
pub mod params;
pub mod protocol;
mod store;

use std::net::SocketAddr;
use std::process::ExitCode;

use tokio::sync::{oneshot, watch};

pub use client::{ChainClient, ClientError};
pub use config::ChaindArgs;
pub use error::Error;
pub use keys::KeyFile;
pub use miner::Miner;
pub use node::NodeConfig;
pub use params::ChainSpec;
pub use store::{ChainStore, VerifyReport, replay};

/// A node running in this process (for tests and embedding).
#[derive(Debug)]
pub struct RunningNode {
    http_addr: SocketAddr,
    listen: SocketAddr,
    key: ballot_ledger::PublicKey,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), Error>>,
}

impl RunningNode {
    /// The HTTP address (API and metrics).
    #[must_use]
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The peer (QUIC) address.
    #[must_use]
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// The node's identity key.
    #[must_use]
    pub fn key(&self) -> ballot_ledger::PublicKey {
        self.key
    }

    /// Stops the node and waits for it.
    ///
    /// # Errors
    /// The error the node stopped with, if any.
    pub async fn stop(mut self) -> Result<(), Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.map_err(|_| Error::Stopped)?
    }
}

/// Starts a node (store, peers, miner, HTTP) in the current Tokio runtime.
///
/// # Errors
/// The store, the key, the QUIC endpoint, the HTTP port or the metrics recorder
/// refused to start.
pub async fn spawn(config: NodeConfig) -> Result<RunningNode, Error> {
    let prometheus = install_metrics()?;
    let http_listen = config.http_listen;
    let listener = tokio::net::TcpListener::bind(http_listen)
        .await
        .map_err(|source| Error::Http { addr: http_listen.to_string(), source })?;
    let http_addr = listener.local_addr().map_err(|source| Error::Http { addr: http_listen.to_string(), source })?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (done_tx, done_rx) = watch::channel(false);
    let started = node::start(config, async move {
        let _ = stop_rx.await;
    })
    .await?;
    let (alive_tx, alive_rx) = watch::channel(true);
    let api = started.api.clone();
    let health = started.health.clone();
    let mut http_done = done_rx.clone();
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = http_done.wait_for(|d| *d).await;
        };
        if let Err(e) = http::serve(listener, api, prometheus, health, alive_rx, shutdown).await {
            tracing::error!(error = %e, "the HTTP server failed");
        }
    });
    let inner = started.task;
    let task = tokio::spawn(async move {
        let result = inner.await.map_err(|_| Error::Stopped).and_then(|r| r);
        alive_tx.send_replace(false);
        done_tx.send_replace(true);
        result
    });
    tracing::info!("serving the API and metrics on http://{http_addr}/metrics");
    Ok(RunningNode { http_addr, listen: started.listen, key: started.key, stop: Some(stop_tx), task })
}

/// The Prometheus recorder (installed once per process; later calls reuse it).
fn install_metrics() -> Result<metrics_exporter_prometheus::PrometheusHandle, Error> {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> = std::sync::OnceLock::new();
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let buckets = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()), &buckets)
        .map_err(|e| Error::Metrics(e.to_string()))?
        .install_recorder()
        .map_err(|e| Error::Metrics(e.to_string()))?;
    metrics::describe();
    ballot_storage::metrics::describe_metrics();
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// The entry point of `ballot-chaind`: loads settings, runs the node until SIGINT or
/// SIGTERM, and turns errors into a message and an exit code (2 for bad settings).
#[must_use]
pub fn main() -> ExitCode {
    let args = match ChaindArgs::load_from(std::env::args_os(), |k| std::env::var_os(k)) {
        Ok(a) => a,
        Err(ballot_server::ServerError::Clap(e)) => e.exit(),
        Err(e) => {
            eprintln!("ballot-chaind: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&args.log))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi).init();
    let config = match args.node_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ballot-chaind: {e}");
            return ExitCode::from(2);
        }
    };
    tracing::info!(?config, "ballot-chaind starting");
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("ballot-chaind").build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ballot-chaind: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let node = spawn(config).await?;
        shutdown_signal().await;
        tracing::info!("shutting down");
        node.stop().await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "ballot-chaind stopped");
            eprintln!("ballot-chaind: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
