//! The configuration service's state and its [`StateMachine`] implementation.

use std::collections::VecDeque;

use ballot_core::service::{Header, Rejection, RestoreError, Route, StateMachine};
use ballot_kv::{KeyValue, KvStore};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::history::History;
use crate::{
    ConfigEntry, ConfigError, ConfigEvent, ConfigRequest, ConfigResponse, EventKind, HistoryLimit, MAX_KEY_SIZE,
    MAX_LIST_LIMIT, MAX_NAMESPACE_SIZE, MAX_VALUE_SIZE,
};

/// The snapshot format this version writes and reads.
const SNAPSHOT_FORMAT: u8 = 1;

/// Separates the namespace from the key in the underlying store (namespaces never
/// contain control characters, so it cannot occur in one).
const SEPARATOR: u8 = 0;

/// The configuration service: namespaced keys with revisions (kept in a
/// [`ballot_kv::KvStore`]) and a bounded history of changes that watches replay.
///
/// Deterministic: replicas that apply the same log hold the same keys, revisions,
/// history and compaction point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigService {
    store: KvStore,
    history: History,
}

impl Default for ConfigService {
    fn default() -> Self {
        ConfigService::new()
    }
}

#[derive(Serialize)]
struct SnapshotRef<'a> {
    store: Bytes,
    compact_revision: u64,
    history: &'a VecDeque<ConfigEvent>,
}

#[derive(Deserialize)]
struct SnapshotOwned {
    store: Bytes,
    compact_revision: u64,
    history: VecDeque<ConfigEvent>,
}

impl ConfigService {
    /// An empty service at revision 0 with the default [`HistoryLimit`].
    #[must_use]
    pub fn new() -> Self {
        ConfigService::with_history_limit(HistoryLimit::default())
    }

    /// An empty service keeping at most `limit` of change history.
    #[must_use]
    pub fn with_history_limit(limit: HistoryLimit) -> Self {
        ConfigService { store: KvStore::new(), history: History::new(limit) }
    }

    /// The current revision: how many changes were applied.
    #[must_use]
    pub fn revision(&self) -> u64 {
        self.store.revision()
    }

    /// The oldest revision a watch can start from.
    #[must_use]
    pub fn compact_revision(&self) -> u64 {
        self.history.compact_revision
    }

    /// The history limit this replica keeps.
    #[must_use]
    pub fn history_limit(&self) -> HistoryLimit {
        self.history.limit
    }

    /// How many changes are retained for watches.
    #[must_use]
    pub fn history_len(&self) -> usize {
        self.history.events.len()
    }

    fn header(&self) -> Header {
        Header { revision: self.store.revision() }
    }

    /// Records the change just made to the store and returns its event.
    fn record(&mut self, kind: EventKind, namespace: String, key: String, value: Bytes) -> Vec<ConfigEvent> {
        let event = ConfigEvent { revision: self.store.revision(), kind, namespace, key, value };
        self.history.push(event.clone());
        vec![event]
    }

    fn list(&self, namespace: &str, prefix: &str, after: Option<&str>, limit: u32) -> (Vec<ConfigEntry>, bool, u64) {
        let limit = if limit == 0 { MAX_LIST_LIMIT } else { limit.min(MAX_LIST_LIMIT) };
        let after = after.map(|a| store_key(namespace, a));
        let page = self.store.range(&store_key(namespace, prefix), after.as_deref(), limit as usize);
        let entries = page.kvs.into_iter().map(|kv| entry(namespace, kv)).collect();
        (entries, page.more, page.count)
    }

    /// Serializes the keys, the retained history and the compaction point.
    #[must_use]
    pub fn to_snapshot(&self) -> Vec<u8> {
        let snap = SnapshotRef {
            store: Bytes::from(self.store.to_snapshot()),
            compact_revision: self.history.compact_revision,
            history: &self.history.events,
        };
        postcard::to_extend(&snap, vec![SNAPSHOT_FORMAT]).expect("serializing plain data into memory cannot fail")
    }

    /// Decodes a snapshot written by [`to_snapshot`](Self::to_snapshot) into a service
    /// keeping at most `limit` of history, checking that it is consistent.
    ///
    /// # Errors
    /// [`ConfigError`] if the bytes do not decode or describe an impossible state.
    pub fn from_snapshot(data: &[u8], limit: HistoryLimit) -> Result<Self, ConfigError> {
        let (&found, rest) = data.split_first().ok_or(ConfigError::CorruptSnapshot("the snapshot is empty".into()))?;
        if found != SNAPSHOT_FORMAT {
            return Err(ConfigError::SnapshotFormat { found, supported: SNAPSHOT_FORMAT });
        }
        let (snap, trailing): (SnapshotOwned, _) = postcard::take_from_bytes(rest)?;
        if !trailing.is_empty() {
            return Err(ConfigError::CorruptSnapshot(format!("{} trailing bytes", trailing.len())));
        }
        let store = KvStore::from_snapshot(&snap.store)?;
        let corrupt = |what: String| Err(ConfigError::CorruptSnapshot(what));
        if let Some(bad) = store.iter().find(|kv| !is_store_key(&kv.key)) {
            return corrupt(format!("store key {:?} is not a namespace and key", String::from_utf8_lossy(&bad.key)));
        }
        if snap.compact_revision == 0 || snap.compact_revision > store.revision() + 1 {
            return corrupt(format!(
                "compaction point {} is impossible at revision {}",
                snap.compact_revision,
                store.revision()
            ));
        }
        let mut previous = snap.compact_revision - 1;
        for e in &snap.history {
            if e.revision <= previous || e.revision > store.revision() {
                return corrupt(format!("history event at revision {} is out of order", e.revision));
            }
            if check_name("namespace", &e.namespace, MAX_NAMESPACE_SIZE).is_err()
                || check_name("key", &e.key, MAX_KEY_SIZE).is_err()
            {
                return corrupt(format!("history event at revision {} names an invalid key", e.revision));
            }
            previous = e.revision;
        }
        Ok(ConfigService { store, history: History::from_parts(snap.history, snap.compact_revision, limit) })
    }
}

/// The store key of `key` in `namespace`.
fn store_key(namespace: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(namespace.len() + 1 + key.len());
    k.extend_from_slice(namespace.as_bytes());
    k.push(SEPARATOR);
    k.extend_from_slice(key.as_bytes());
    k
}

/// Whether `k` is the store key of a valid namespace and key.
fn is_store_key(k: &[u8]) -> bool {
    let Some(at) = k.iter().position(|&b| b == SEPARATOR) else { return false };
    let (Ok(namespace), Ok(key)) = (std::str::from_utf8(&k[..at]), std::str::from_utf8(&k[at + 1..])) else {
        return false;
    };
    check_name("namespace", namespace, MAX_NAMESPACE_SIZE).is_ok() && check_name("key", key, MAX_KEY_SIZE).is_ok()
}

fn entry(namespace: &str, kv: KeyValue) -> ConfigEntry {
    let key = kv.key.get(namespace.len() + 1..).unwrap_or_default();
    ConfigEntry {
        namespace: namespace.to_owned(),
        key: String::from_utf8_lossy(key).into_owned(),
        value: kv.value,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
    }
}

/// Checks a namespace or key: not empty, at most `max` bytes, no control characters.
fn check_name(what: &str, name: &str, max: usize) -> Result<(), Rejection> {
    if name.is_empty() {
        return Err(Rejection::Invalid(format!("the {what} is empty")));
    }
    check_text(what, name, max)
}

/// Checks a key prefix or cursor: at most `max` bytes, no control characters.
fn check_text(what: &str, text: &str, max: usize) -> Result<(), Rejection> {
    Rejection::check_size(what, text.len(), max)?;
    if text.chars().any(char::is_control) {
        return Err(Rejection::Invalid(format!("the {what} {text:?} contains a control character")));
    }
    Ok(())
}

impl StateMachine for ConfigService {
    type Request = ConfigRequest;
    type Response = ConfigResponse;
    type Event = ConfigEvent;

    fn route(request: &ConfigRequest) -> Route {
        match request {
            ConfigRequest::Set { .. } | ConfigRequest::Delete { .. } | ConfigRequest::Compact { .. } => Route::Write,
            ConfigRequest::Get { consistency, .. } | ConfigRequest::List { consistency, .. } => {
                Route::Read(*consistency)
            }
            ConfigRequest::Watch { .. } => Route::Watch,
        }
    }

    fn operation(request: &ConfigRequest) -> &'static str {
        match request {
            ConfigRequest::Set { .. } => "set",
            ConfigRequest::Get { .. } => "get",
            ConfigRequest::Delete { .. } => "delete",
            ConfigRequest::List { .. } => "list",
            ConfigRequest::Watch { .. } => "watch",
            ConfigRequest::Compact { .. } => "compact",
        }
    }

    fn validate(&self, request: &ConfigRequest) -> Result<(), Rejection> {
        match request {
            ConfigRequest::Set { namespace, key, value } => {
                check_name("namespace", namespace, MAX_NAMESPACE_SIZE)?;
                check_name("key", key, MAX_KEY_SIZE)?;
                Rejection::check_size("value", value.len(), MAX_VALUE_SIZE)
            }
            ConfigRequest::Get { namespace, key, .. } | ConfigRequest::Delete { namespace, key } => {
                check_name("namespace", namespace, MAX_NAMESPACE_SIZE)?;
                check_name("key", key, MAX_KEY_SIZE)
            }
            ConfigRequest::List { namespace, prefix, after, limit, .. } => {
                check_name("namespace", namespace, MAX_NAMESPACE_SIZE)?;
                check_text("prefix", prefix, MAX_KEY_SIZE)?;
                if let Some(after) = after {
                    check_text("list cursor", after, MAX_KEY_SIZE)?;
                }
                if *limit > MAX_LIST_LIMIT {
                    return Err(Rejection::Invalid(format!(
                        "list limit {limit} exceeds the maximum of {MAX_LIST_LIMIT}; page with `after` instead"
                    )));
                }
                Ok(())
            }
            ConfigRequest::Watch { namespace, key_or_prefix, prefix, .. } => {
                check_name("namespace", namespace, MAX_NAMESPACE_SIZE)?;
                if *prefix {
                    check_text("prefix", key_or_prefix, MAX_KEY_SIZE)
                } else {
                    check_name("key", key_or_prefix, MAX_KEY_SIZE)
                }
            }
            ConfigRequest::Compact { revision } => {
                let current = self.store.revision();
                if *revision == 0 || *revision > current + 1 {
                    return Err(Rejection::Invalid(format!(
                        "cannot compact to revision {revision}: choose a revision from 1 to {} (the current revision plus one)",
                        current + 1
                    )));
                }
                Ok(())
            }
        }
    }

    fn apply(&mut self, _index: u64, request: ConfigRequest) -> (ConfigResponse, Vec<ConfigEvent>) {
        if let Err(rejection) = self.validate(&request) {
            return (ConfigResponse::Rejected(rejection), Vec::new());
        }
        match request {
            ConfigRequest::Set { namespace, key, value } => {
                let prev = self.store.put(Bytes::from(store_key(&namespace, &key)), value.clone());
                let version = prev.map_or(1, |p| p.version + 1);
                let events = self.record(EventKind::Put, namespace, key, value);
                (ConfigResponse::Set { header: self.header(), version }, events)
            }
            ConfigRequest::Delete { namespace, key } => {
                if self.store.delete(&store_key(&namespace, &key)).is_none() {
                    return (ConfigResponse::Delete { header: self.header(), deleted: false }, Vec::new());
                }
                let events = self.record(EventKind::Delete, namespace, key, Bytes::new());
                (ConfigResponse::Delete { header: self.header(), deleted: true }, events)
            }
            ConfigRequest::Compact { revision } => {
                self.history.compact(revision);
                let response =
                    ConfigResponse::Compact { header: self.header(), compact_revision: self.history.compact_revision };
                (response, Vec::new())
            }
            read @ (ConfigRequest::Get { .. } | ConfigRequest::List { .. } | ConfigRequest::Watch { .. }) => {
                (self.query(&read), Vec::new())
            }
        }
    }

    fn query(&self, request: &ConfigRequest) -> ConfigResponse {
        match request {
            ConfigRequest::Get { namespace, key, .. } => {
                let entry = self.store.get(&store_key(namespace, key)).map(|kv| entry(namespace, kv));
                ConfigResponse::Get { header: self.header(), entry }
            }
            ConfigRequest::List { namespace, prefix, after, limit, .. } => {
                let (entries, more, count) = self.list(namespace, prefix, after.as_deref(), *limit);
                ConfigResponse::List { header: self.header(), entries, more, count }
            }
            ConfigRequest::Watch { .. } => ConfigResponse::Rejected(Rejection::Invalid(
                "a watch opens a stream of events; it cannot be answered as a read".into(),
            )),
            ConfigRequest::Set { .. } | ConfigRequest::Delete { .. } | ConfigRequest::Compact { .. } => {
                ConfigResponse::Rejected(Rejection::Invalid(format!(
                    "`{}` is a write: it must be ordered through the log, not served as a read",
                    Self::operation(request)
                )))
            }
        }
    }

    fn watch_start(&self, request: &ConfigRequest) -> Result<Vec<ConfigEvent>, Rejection> {
        let ConfigRequest::Watch { start_revision, .. } = request else {
            return Err(Rejection::Invalid("this request is not a watch".into()));
        };
        if *start_revision == 0 {
            return Ok(Vec::new());
        }
        if *start_revision < self.history.compact_revision {
            return Err(Rejection::Compacted { compact_revision: self.history.compact_revision });
        }
        Ok(self.history.since(*start_revision).filter(|e| self.watch_matches(request, e)).cloned().collect())
    }

    fn watch_matches(&self, request: &ConfigRequest, event: &ConfigEvent) -> bool {
        let ConfigRequest::Watch { namespace, key_or_prefix, prefix, start_revision } = request else {
            return false;
        };
        event.revision >= *start_revision
            && event.namespace == *namespace
            && if *prefix { event.key.starts_with(key_or_prefix.as_str()) } else { event.key == *key_or_prefix }
    }

    fn snapshot(&self) -> Vec<u8> {
        self.to_snapshot()
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), RestoreError> {
        *self = ConfigService::from_snapshot(data, self.history_limit()).map_err(|e| RestoreError(e.to_string()))?;
        Ok(())
    }
}
