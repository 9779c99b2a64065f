//! ballot's replicated key-value database: the deterministic state machine behind
//! `ballot-kvd`, in the manner of etcd's key space.
//!
//! Keys and values are bytes. Every state-changing write creates a new global
//! **revision** (one more than the last); each key carries the revision that created it
//! (`create_revision`), the one that last changed it (`mod_revision`) and its `version`
//! (1 on create, +1 per update; a deleted key is gone and starts over at 1). Requests:
//! [`KvRequest::Put`], [`Get`](KvRequest::Get), [`Delete`](KvRequest::Delete),
//! [`CompareAndSwap`](KvRequest::CompareAndSwap), [`CompareAndDelete`](KvRequest::CompareAndDelete),
//! [`Range`](KvRequest::Range) (prefix pages in key order) and
//! [`DeletePrefix`](KvRequest::DeletePrefix). Reads are linearizable by default or
//! serializable on request. Limits: [`MAX_KEY_SIZE`], [`MAX_VALUE_SIZE`],
//! [`MAX_RANGE_LIMIT`], [`MAX_RANGE_BYTES`].
//!
//! Use [`KvStore`] as the service of a `ballot-node` driver (it implements
//! [`StateMachine`]), or on its own as a revisioned ordered map. The client library and
//! CLI use the request and response types. It does no IO and reads no clock.
//!
//! ```
//! use ballot_core::service::{Consistency, StateMachine};
//! use ballot_kv::{Compare, KvRequest, KvResponse, KvStore};
//! use bytes::Bytes;
//!
//! let mut db = KvStore::new();
//! let put = KvRequest::Put { key: Bytes::from("a"), value: Bytes::from("1"), prev_kv: false };
//! db.validate(&put).expect("well-formed");
//! let (reply, _) = db.apply(1, put);
//! assert!(matches!(reply, KvResponse::Put { header, .. } if header.revision == 1));
//!
//! // Create-if-absent fails: the key exists.
//! let cas = KvRequest::CompareAndSwap { key: Bytes::from("a"), compare: Compare::Absent, value: Bytes::from("2") };
//! let (reply, _) = db.apply(2, cas);
//! assert!(matches!(reply, KvResponse::CompareAndSwap { succeeded: false, .. }));
//!
//! let get = KvRequest::Get { key: Bytes::from("a"), consistency: Consistency::Linearizable };
//! let KvResponse::Get { kv: Some(kv), .. } = db.query(&get) else { panic!("a exists") };
//! assert_eq!((kv.value, kv.version, kv.mod_revision), (Bytes::from("1"), 1, 1));
//! ```
//!
//! [`StateMachine`]: ballot_core::service::StateMachine

mod api;
mod service;
mod store;

pub use api::{
    Compare, KeyValue, KvEvent, KvRequest, KvResponse, MAX_KEY_SIZE, MAX_RANGE_BYTES, MAX_RANGE_LIMIT, MAX_VALUE_SIZE,
};
pub use store::{KvStore, RangePage};

/// Why a database snapshot cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The snapshot's bytes do not decode.
    #[error("the database snapshot does not decode: {0}")]
    SnapshotDecode(#[from] postcard::Error),
    /// The snapshot was written in a format this version does not read.
    #[error("database snapshot format {found} is not supported (this version reads format {supported})")]
    SnapshotFormat {
        /// The snapshot's format.
        found: u8,
        /// The format this version reads.
        supported: u8,
    },
    /// The snapshot decodes but describes an impossible store.
    #[error("corrupt database snapshot: {0}")]
    CorruptSnapshot(String),
}
