//! ballot's configuration service: namespaced, versioned keys that clients watch for
//! changes — the deterministic state machine behind `ballot-configd`, for users of
//! ZooKeeper or etcd watches.
//!
//! Keys live in namespaces (`Set`, `Get`, `Delete`, `List` of a prefix). Every change
//! gets a new global **revision**; entries carry their create and mod revisions and
//! version. A [`ConfigRequest::Watch`] streams the [`ConfigEvent`]s of a key or prefix
//! **from a revision**: the replica first replays its retained history from that
//! revision ([`StateMachine::watch_start`]), then the driver forwards each new matching
//! change ([`StateMachine::watch_matches`]). Revisions are a function of the log alone,
//! so a watcher that reconnects — to any replica, across leader changes — with the last
//! revision it saw plus one misses nothing and sees nothing twice. History is bounded
//! ([`HistoryLimit`], and [`ConfigRequest::Compact`]); a watch from before the
//! compaction point fails with [`Rejection::Compacted`].
//!
//! Use [`ConfigService`] as the service of a `ballot-node` driver; the client library
//! and CLI use the request, response and event types. It does no IO and reads no clock.
//!
//! ```
//! use ballot_config::{ConfigEvent, ConfigRequest, ConfigResponse, ConfigService, EventKind};
//! use ballot_core::service::StateMachine;
//! use bytes::Bytes;
//!
//! let mut config = ConfigService::new();
//! let set = |key: &str, value: &str| ConfigRequest::Set {
//!     namespace: "app".into(),
//!     key: key.into(),
//!     value: Bytes::copy_from_slice(value.as_bytes()),
//! };
//! config.apply(1, set("db/url", "postgres://a"));
//! let (reply, events) = config.apply(2, set("db/pool", "8"));
//! assert!(matches!(reply, ConfigResponse::Set { header, version: 1 } if header.revision == 2));
//! assert_eq!(events.len(), 1);
//!
//! // A watcher that saw revision 1 resumes from 2 and gets exactly what it missed.
//! let watch = ConfigRequest::Watch {
//!     namespace: "app".into(),
//!     key_or_prefix: "db/".into(),
//!     prefix: true,
//!     start_revision: 2,
//! };
//! let replay = config.watch_start(&watch)?;
//! assert_eq!(replay.iter().map(|e| (e.revision, e.kind, e.key.as_str())).collect::<Vec<_>>(),
//!            [(2, EventKind::Put, "db/pool")]);
//! # Ok::<(), ballot_core::service::Rejection>(())
//! ```
//!
//! [`StateMachine::watch_start`]: ballot_core::service::StateMachine::watch_start
//! [`StateMachine::watch_matches`]: ballot_core::service::StateMachine::watch_matches
//! [`Rejection::Compacted`]: ballot_core::service::Rejection::Compacted

mod api;
mod cursor;
mod history;
mod service;

pub use api::{
    ConfigEntry, ConfigEvent, ConfigRequest, ConfigResponse, EventKind, MAX_KEY_SIZE, MAX_LIST_LIMIT,
    MAX_NAMESPACE_SIZE, MAX_VALUE_SIZE,
};
pub use cursor::WatchCursor;
pub use history::{DEFAULT_HISTORY_BYTES, DEFAULT_HISTORY_EVENTS, HistoryLimit};
pub use service::ConfigService;

/// Why a configuration snapshot cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The snapshot's bytes do not decode.
    #[error("the configuration snapshot does not decode: {0}")]
    SnapshotDecode(#[from] postcard::Error),
    /// The snapshot was written in a format this version does not read.
    #[error("configuration snapshot format {found} is not supported (this version reads format {supported})")]
    SnapshotFormat {
        /// The snapshot's format.
        found: u8,
        /// The format this version reads.
        supported: u8,
    },
    /// The key store inside the snapshot is invalid.
    #[error(transparent)]
    Store(#[from] ballot_kv::KvError),
    /// The snapshot decodes but describes an impossible state.
    #[error("corrupt configuration snapshot: {0}")]
    CorruptSnapshot(String),
}
