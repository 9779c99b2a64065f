//! The configuration service's requests, responses, events and limits.

use ballot_core::service::{Consistency, Header, Rejection};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The longest namespace, in bytes.
pub const MAX_NAMESPACE_SIZE: usize = 255;
/// The longest key, in bytes (with its namespace it fits a database key).
pub const MAX_KEY_SIZE: usize = ballot_kv::MAX_KEY_SIZE - MAX_NAMESPACE_SIZE - 1;
/// The largest value, in bytes.
pub const MAX_VALUE_SIZE: usize = ballot_kv::MAX_VALUE_SIZE;
/// The most entries one [`ConfigRequest::List`] returns; a `limit` of 0 means this many.
pub const MAX_LIST_LIMIT: u32 = ballot_kv::MAX_RANGE_LIMIT;

/// A configuration service request.
///
/// Writes (`Set`, `Delete`, `Compact`) are ordered through the log; reads (`Get`,
/// `List`) are linearizable or serializable as asked; `Watch` opens a stream of
/// [`ConfigEvent`]s. Namespaces and keys are non-empty UTF-8 without control characters.
/// Variant order is part of the wire format: add new variants at the end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigRequest {
    /// Sets a key, creating it if needed.
    Set {
        /// The namespace (1..=[`MAX_NAMESPACE_SIZE`] bytes).
        namespace: String,
        /// The key (1..=[`MAX_KEY_SIZE`] bytes).
        key: String,
        /// The value (at most [`MAX_VALUE_SIZE`] bytes).
        value: Bytes,
    },
    /// Reads one key.
    Get {
        /// The namespace.
        namespace: String,
        /// The key.
        key: String,
        /// How fresh the read must be.
        consistency: Consistency,
    },
    /// Removes one key.
    Delete {
        /// The namespace.
        namespace: String,
        /// The key.
        key: String,
    },
    /// Lists the keys of a namespace starting with `prefix`, in byte order, one page at a time.
    List {
        /// The namespace.
        namespace: String,
        /// The prefix; empty for every key of the namespace.
        prefix: String,
        /// Resume strictly after this key (the last key of the previous page).
        after: Option<String>,
        /// At most this many entries (at most [`MAX_LIST_LIMIT`]; 0 means that maximum).
        limit: u32,
        /// How fresh the read must be.
        consistency: Consistency,
    },
    /// Streams the changes of one key, or of every key starting with a prefix, in a namespace.
    Watch {
        /// The namespace.
        namespace: String,
        /// The key, or the prefix if `prefix` (an empty prefix watches the whole namespace).
        key_or_prefix: String,
        /// Whether `key_or_prefix` is a prefix.
        prefix: bool,
        /// Replay retained changes from this revision on, then follow live ones; 0 means
        /// live changes only. Resume a broken watch with the last revision seen plus one.
        start_revision: u64,
    },
    /// Discards the change history before `revision` (watches from earlier revisions then
    /// fail with [`Rejection::Compacted`]). Keys are not affected.
    Compact {
        /// The oldest revision to keep (at least 1, at most the current revision plus one).
        revision: u64,
    },
}

/// A key with its value and metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigEntry {
    /// The namespace.
    pub namespace: String,
    /// The key.
    pub key: String,
    /// The value.
    pub value: Bytes,
    /// The revision that created the key (since it was last absent).
    pub create_revision: u64,
    /// The revision that last changed the key.
    pub mod_revision: u64,
    /// 1 when created, plus one per update.
    pub version: u64,
}

/// The reply to a [`ConfigRequest`] (other than `Watch`, which streams events).
/// Variant order is part of the wire format: add new variants at the end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigResponse {
    /// The key was set.
    Set {
        /// The revision the change created (the key's new `mod_revision`).
        header: Header,
        /// The key's new version (1 if it was created).
        version: u64,
    },
    /// The key's value.
    Get {
        /// The revision read at.
        header: Header,
        /// The entry, or `None` if absent.
        entry: Option<ConfigEntry>,
    },
    /// The outcome of a delete.
    Delete {
        /// The revision after the delete.
        header: Header,
        /// Whether the key existed (and so was removed).
        deleted: bool,
    },
    /// A page of entries.
    List {
        /// The revision read at.
        header: Header,
        /// The entries, in key order.
        entries: Vec<ConfigEntry>,
        /// Whether more keys match: ask again with `after` set to the last key returned.
        more: bool,
        /// How many keys match the prefix in all.
        count: u64,
    },
    /// History was compacted.
    Compact {
        /// The current revision.
        header: Header,
        /// The oldest revision a watch can now start from.
        compact_revision: u64,
    },
    /// The request was refused when applied or served (it breaks a rule, or compacts a
    /// future revision). The driver refuses most such requests before logging them.
    Rejected(Rejection),
}

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// The key was set (created or updated).
    Put,
    /// The key was removed.
    Delete,
}

/// One change, as streamed to watchers. Every change has its own revision, so a stream
/// is ordered by revision and a watcher resumes with the last revision it saw plus one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigEvent {
    /// The revision of the change.
    pub revision: u64,
    /// Put or delete.
    pub kind: EventKind,
    /// The namespace.
    pub namespace: String,
    /// The key.
    pub key: String,
    /// The new value (empty for a delete).
    pub value: Bytes,
}
