//! The storage contract the driver writes [`Persist`] batches through, and an in-memory
//! implementation.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::{LogEntry, Persist, Snapshot};

/// What a store holds after a restart: the input a protocol is rebuilt from.
#[derive(Clone, Debug, PartialEq)]
pub struct Recovered<E, H> {
    /// The last hard state written, if any.
    pub hard_state: Option<H>,
    /// The last snapshot written, if any.
    pub snapshot: Option<Snapshot>,
    /// Every entry not compacted away, in index order.
    pub entries: Vec<E>,
}

impl<E, H> Default for Recovered<E, H> {
    fn default() -> Self {
        Recovered { hard_state: None, snapshot: None, entries: Vec::new() }
    }
}

/// Errors from a [`LogStore`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The underlying medium failed (disk error, RocksDB error). The node must stop:
    /// it can no longer promise durability.
    #[error("storage I/O failed: {0}")]
    Io(String),
    /// Stored data could not be decoded; `what` names the record.
    #[error("corrupt record in storage ({what}): {detail}")]
    Corrupt {
        /// Which record.
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// The store was written by an incompatible version of ballot.
    #[error("storage format version {found} is not supported (this build reads version {supported})")]
    IncompatibleVersion {
        /// Version on disk.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// The store is closed.
    #[error("storage is closed")]
    Closed,
}

/// Durable storage for one replica's log, hard state and snapshot.
///
/// The driver calls it from a blocking thread. Implementations must make every
/// [`write`](LogStore::write) durable before returning `Ok` (this is what lets the driver
/// acknowledge with `Protocol::persisted`), apply each batch atomically and the batches
/// in order, and return from [`recover`](LogStore::recover) exactly what the
/// acknowledged writes left. The conformance suite in `ballot_core::testkit` checks all
/// of this; every implementation runs it.
pub trait LogStore<E: LogEntry, H>: Send {
    /// Durably applies `batches`, in order, each atomically. Passing several batches at
    /// once lets an implementation commit them with one sync (group commit).
    ///
    /// # Errors
    /// [`StorageError::Io`] if the medium fails; the caller must treat it as fatal.
    fn write(&mut self, batches: &[Persist<E, H>]) -> Result<(), StorageError>;

    /// Reads back the durable state.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] or [`StorageError::IncompatibleVersion`] for data this
    /// build cannot trust, [`StorageError::Io`] for medium failures.
    fn recover(&mut self) -> Result<Recovered<E, H>, StorageError>;
}

#[derive(Debug)]
struct MemState<E, H> {
    hard_state: Option<H>,
    snapshot: Option<Snapshot>,
    entries: BTreeMap<u64, E>,
    writes: u64,
}

/// An in-memory [`LogStore`]. Clones share the same state, so a test can "restart" a
/// replica by building a new one from a clone of its store. Nothing survives the process.
#[derive(Debug)]
pub struct MemStore<E, H> {
    state: Arc<Mutex<MemState<E, H>>>,
}

impl<E, H> Clone for MemStore<E, H> {
    fn clone(&self) -> Self {
        MemStore { state: Arc::clone(&self.state) }
    }
}

impl<E, H> Default for MemStore<E, H> {
    fn default() -> Self {
        MemStore {
            state: Arc::new(Mutex::new(MemState {
                hard_state: None,
                snapshot: None,
                entries: BTreeMap::new(),
                writes: 0,
            })),
        }
    }
}

impl<E, H> MemStore<E, H> {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How many times [`LogStore::write`] was called (each call is one "sync").
    #[must_use]
    pub fn write_calls(&self) -> u64 {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).writes
    }
}

/// Applies one batch to an ordered map of entries and the other durable parts; shared by
/// the in-memory store and by anything else that keeps a log in a `BTreeMap`.
pub fn apply_persist<E: LogEntry, H: Clone>(
    batch: &Persist<E, H>,
    hard_state: &mut Option<H>,
    snapshot: &mut Option<Snapshot>,
    entries: &mut BTreeMap<u64, E>,
) {
    if let Some(s) = &batch.snapshot {
        *snapshot = Some(Snapshot::clone(s));
    }
    if let Some(from) = batch.truncate_from {
        entries.split_off(&from);
    }
    for e in &batch.entries {
        entries.insert(e.index(), e.clone());
    }
    if let Some(upto) = batch.compact_to {
        *entries = entries.split_off(&upto.saturating_add(1));
    }
    if let Some(h) = &batch.hard_state {
        *hard_state = Some(h.clone());
    }
}

impl<E: LogEntry, H: Clone + Send> LogStore<E, H> for MemStore<E, H> {
    fn write(&mut self, batches: &[Persist<E, H>]) -> Result<(), StorageError> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let st = &mut *st;
        st.writes += 1;
        for b in batches {
            apply_persist(b, &mut st.hard_state, &mut st.snapshot, &mut st.entries);
        }
        Ok(())
    }

    fn recover(&mut self) -> Result<Recovered<E, H>, StorageError> {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(Recovered {
            hard_state: st.hard_state.clone(),
            snapshot: st.snapshot.clone(),
            entries: st.entries.values().cloned().collect(),
        })
    }
}
