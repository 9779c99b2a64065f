//! The async client library of ballot's services: endpoints, leader discovery and
//! redirects, timeouts, retries with backoff, and sessions that make retried writes
//! apply exactly once.
//!
//! [`Client`] speaks the client protocol of any service; [`KvClient`],
//! [`ConfigClient`] and [`ElectionClient`] wrap it with the operations of the database,
//! the configuration service and the election service. The `ballot` CLI is built on it.
//!
//! ```no_run
//! use ballot_client::{ClientConfig, KvClient};
//!
//! # async fn demo() -> Result<(), ballot_client::Error> {
//! let config = ClientConfig::from_cert_dir(
//!     ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"],
//!     "target/ballot-cluster/certs",
//! )?;
//! let kv = KvClient::connect(config).await?;
//! kv.put("greeting", "hello").await?;
//! let got = kv.get("greeting").await?;
//! assert_eq!(got.map(|kv| kv.value), Some("hello".into()));
//! # Ok(())
//! # }
//! ```
//!
//! Requests go to the node believed to lead; a "not leader" answer names the leader,
//! and the client follows it. Connection failures, "busy", "unavailable" and timeouts
//! are retried with jittered exponential backoff until the configured deadline. Every
//! call carries a session (a random client id and a per-call sequence number) which the
//! cluster uses to apply a retried write at most once.

mod config;
mod election;
mod error;
mod kv;
mod service;

pub use config::{ConfigClient, ConfigWatch};
pub use election::{Campaign, ElectionClient, LeaderObserver};
pub use error::Error;
pub use kv::{KvClient, RangeResult};
pub use service::{Client, ClientConfig, WatchStream};
