//! The database's requests, responses and limits: what clients send and receive.

use ballot_core::service::{Consistency, Header, Rejection};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The largest key, in bytes (etcd-like: keys are names, not data).
pub const MAX_KEY_SIZE: usize = 4 * 1024;
/// The largest value, in bytes (etcd's default request limit is 1.5 MiB).
pub const MAX_VALUE_SIZE: usize = 1024 * 1024;
/// The most keys one [`KvRequest::Range`] returns; a `limit` of 0 means this many.
pub const MAX_RANGE_LIMIT: u32 = 10_000;
/// A range page stops once its keys and values exceed this many bytes (it always holds
/// at least one key), so that a response stays well under the wire's 4 MiB frame limit.
pub const MAX_RANGE_BYTES: usize = 2 * 1024 * 1024;

/// A database request.
///
/// Writes (`Put`, `Delete`, `CompareAndSwap`, `CompareAndDelete`, `DeletePrefix`) are
/// ordered through the log; reads (`Get`, `Range`) are linearizable or serializable as
/// asked. Variant order is part of the wire format: add new variants at the end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvRequest {
    /// Sets `key` to `value`, creating it if needed.
    Put {
        /// The key (1..=[`MAX_KEY_SIZE`] bytes).
        key: Bytes,
        /// The value (at most [`MAX_VALUE_SIZE`] bytes).
        value: Bytes,
        /// Return the key's previous value and metadata.
        prev_kv: bool,
    },
    /// Reads one key.
    Get {
        /// The key.
        key: Bytes,
        /// How fresh the read must be.
        consistency: Consistency,
    },
    /// Removes one key.
    Delete {
        /// The key.
        key: Bytes,
        /// Return the removed value and metadata.
        prev_kv: bool,
    },
    /// Sets `key` to `value` only if `compare` holds for it now.
    CompareAndSwap {
        /// The key.
        key: Bytes,
        /// The condition.
        compare: Compare,
        /// The new value.
        value: Bytes,
    },
    /// Removes `key` only if `compare` holds for it now.
    CompareAndDelete {
        /// The key.
        key: Bytes,
        /// The condition.
        compare: Compare,
    },
    /// Lists keys starting with `prefix` in byte order, one page at a time.
    Range {
        /// The prefix; empty for every key.
        prefix: Bytes,
        /// Resume strictly after this key (the last key of the previous page).
        after: Option<Bytes>,
        /// At most this many keys (at most [`MAX_RANGE_LIMIT`]; 0 means that maximum).
        limit: u32,
        /// How fresh the read must be.
        consistency: Consistency,
    },
    /// Removes every key starting with `prefix` (which must not be empty), at one revision.
    DeletePrefix {
        /// The prefix.
        prefix: Bytes,
    },
}

/// The condition of a compare-and-swap. A missing key has version 0 and mod revision 0,
/// so `Version(0)` and `ModRevision(0)` also mean "absent".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Compare {
    /// The key exists with exactly this value.
    Value(Bytes),
    /// The key's `mod_revision` equals this.
    ModRevision(u64),
    /// The key's `version` equals this.
    Version(u64),
    /// The key does not exist (create-if-absent).
    Absent,
}

/// A key with its value and metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key.
    pub key: Bytes,
    /// The value.
    pub value: Bytes,
    /// The revision that created the key (since it was last absent).
    pub create_revision: u64,
    /// The revision that last changed the key.
    pub mod_revision: u64,
    /// 1 when created, plus one per update.
    pub version: u64,
}

/// The reply to a [`KvRequest`], one variant per request kind.
///
/// `header.revision` is the store's revision after the request; for a write that changed
/// something it is the revision the write created. Variant order is part of the wire
/// format: add new variants at the end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvResponse {
    /// The key was set.
    Put {
        /// The revision the put created.
        header: Header,
        /// The previous value, if asked for and the key existed.
        prev_kv: Option<KeyValue>,
    },
    /// The key's value.
    Get {
        /// The revision read at.
        header: Header,
        /// The key, or `None` if absent.
        kv: Option<KeyValue>,
    },
    /// The outcome of a delete.
    Delete {
        /// The revision after the delete.
        header: Header,
        /// Whether the key existed (and so was removed).
        deleted: bool,
        /// The removed value, if asked for and the key existed.
        prev_kv: Option<KeyValue>,
    },
    /// The outcome of a compare-and-swap.
    CompareAndSwap {
        /// The revision after the request (the new key's mod revision on success).
        header: Header,
        /// Whether the condition held and the value was set.
        succeeded: bool,
        /// On failure, the key's current state (`None` if absent), so a
        /// read-modify-write loop can retry without another read; `None` on success.
        kv: Option<KeyValue>,
    },
    /// The outcome of a compare-and-delete.
    CompareAndDelete {
        /// The revision after the request.
        header: Header,
        /// Whether the condition held (and the key, if present, was removed).
        succeeded: bool,
        /// On failure, the key's current state (`None` if absent); `None` on success.
        kv: Option<KeyValue>,
    },
    /// A page of keys.
    Range {
        /// The revision read at.
        header: Header,
        /// The keys, in byte order.
        kvs: Vec<KeyValue>,
        /// Whether more keys match: ask again with `after` set to the last key returned.
        more: bool,
        /// How many keys match the prefix in all.
        count: u64,
    },
    /// The outcome of a prefix delete.
    DeletePrefix {
        /// The revision after the request.
        header: Header,
        /// How many keys were removed.
        deleted: u64,
    },
    /// The request was refused when applied or served (it breaks a limit, or a write was
    /// sent as a read). The driver normally refuses such requests before logging them.
    Rejected(Rejection),
}

/// The database has no watch streams (use `ballot-config` for watches): this type has no
/// values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvEvent {}
