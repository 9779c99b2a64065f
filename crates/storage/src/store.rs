//! [`RocksStore`]: the durable [`LogStore`].

use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ballot_core::{LogEntry, LogStore, Persist, Recovered, StorageError};
use bytes::BytesMut;
use rocksdb::{IteratorMode, WriteBatch};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::db::Db;
use crate::keys::{self, CF_HARD_STATE, CF_LOG, CF_SNAPSHOT};
use crate::snapshot::{self, SnapshotStore};
use crate::state::StateStore;
use crate::{Error, Result, codec};

/// How a store is opened.
#[derive(Clone, Debug, Default)]
pub struct StoreOptions {
    allow_log_gaps: bool,
}

impl StoreOptions {
    /// Default options: the log must be contiguous.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Accept a log with holes (Multi-Paxos acceptors store slots out of order). By
    /// default a gap is refused on write ([`Error::LogGap`]) and on open
    /// ([`Error::Corrupt`]), since for a Raft log it means lost data.
    #[must_use]
    pub fn allow_log_gaps(mut self, allow: bool) -> Self {
        self.allow_log_gaps = allow;
        self
    }
}

/// The range of log indexes held, `first..=last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bounds {
    first: u64,
    last: u64,
}

/// Tracks the indexes the log holds, to refuse writes that would leave a gap.
#[derive(Clone, Copy, Debug, Default)]
struct LogBounds {
    range: Option<Bounds>,
    allow_gaps: bool,
}

impl LogBounds {
    fn truncate(&mut self, from: u64) {
        if let Some(b) = self.range {
            self.range =
                if from <= b.first { None } else { Some(Bounds { first: b.first, last: b.last.min(from - 1) }) };
        }
    }

    fn append(&mut self, index: u64) -> Result<()> {
        self.range = Some(match self.range {
            None => Bounds { first: index, last: index },
            Some(b) if self.allow_gaps => Bounds { first: b.first.min(index), last: b.last.max(index) },
            Some(b) if index >= b.first && index <= b.last.saturating_add(1) => {
                Bounds { first: b.first, last: b.last.max(index) }
            }
            Some(b) => return Err(Error::LogGap { index, first: b.first, last: b.last }),
        });
        Ok(())
    }

    fn compact(&mut self, upto: u64) {
        if let Some(b) = self.range {
            self.range = if upto >= b.last {
                None
            } else {
                Some(Bounds { first: b.first.max(upto.saturating_add(1)), last: b.last })
            };
        }
    }
}

/// A durable [`LogStore`] on RocksDB: log entries, hard state and a chunked snapshot, in
/// one data directory, plus the service's data ([`StateStore`]).
///
/// Every [`write`](LogStore::write) is one atomic, synced RocksDB `WriteBatch`, however
/// many [`Persist`] batches it carries. Wrap the store in a
/// [`GroupCommit`](crate::GroupCommit) to have many batches share one sync.
///
/// `E` is the protocol's log entry, `H` its hard state; both are stored with serde.
pub struct RocksStore<E, H> {
    db: Arc<Db>,
    bounds: LogBounds,
    /// Reused encoding buffer: an entry's payload is copied once into it, then once into
    /// the write batch.
    scratch: BytesMut,
    _types: PhantomData<fn() -> (E, H)>,
}

impl<E, H> std::fmt::Debug for RocksStore<E, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore").field("dir", &self.db.dir).field("log", &self.bounds.range).finish()
    }
}

impl<E: LogEntry, H: Serialize + DeserializeOwned + Send + 'static> RocksStore<E, H> {
    /// Opens the store in `dir` with default options; see [`open_with`](Self::open_with).
    ///
    /// # Errors
    /// As for [`open_with`](Self::open_with).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, StoreOptions::default())
    }

    /// Opens the store in `dir`, creating it if `dir` is missing or empty, and validates
    /// everything in it: every log entry and the hard state must decode, the log must be
    /// contiguous (unless allowed otherwise), the snapshot's chunks must all be there.
    ///
    /// # Errors
    /// [`Error::NotAStore`] for a directory holding anything but a ballot store,
    /// [`Error::IncompatibleVersion`], [`Error::Corrupt`], [`Error::Db`] (e.g. the store
    /// is open in another process), [`Error::Fs`]. Nothing is ever reset or repaired.
    pub fn open_with(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Self> {
        crate::metrics::describe_metrics();
        let db = Arc::new(Db::open(dir.as_ref())?);
        snapshot::init(&db)?;
        let mut store = RocksStore {
            db,
            bounds: LogBounds { range: None, allow_gaps: options.allow_log_gaps },
            scratch: BytesMut::new(),
            _types: PhantomData,
        };
        store.read_hard_state()?;
        store.bounds.range = store.scan_log(|_| {})?;
        tracing::info!(dir = %store.db.dir.display(), log = ?store.bounds.range, "opened ballot store");
        Ok(store)
    }

    /// The data directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.db.dir
    }

    /// The first log index held, if the log is not empty.
    #[must_use]
    pub fn first_index(&self) -> Option<u64> {
        self.bounds.range.map(|b| b.first)
    }

    /// The last log index held, if the log is not empty.
    #[must_use]
    pub fn last_index(&self) -> Option<u64> {
        self.bounds.range.map(|b| b.last)
    }

    /// A handle on the service state machine's data.
    #[must_use]
    pub fn state(&self) -> StateStore {
        StateStore { db: Arc::clone(&self.db) }
    }

    /// A handle for streaming snapshots in and out.
    #[must_use]
    pub fn snapshots(&self) -> SnapshotStore {
        SnapshotStore { db: Arc::clone(&self.db) }
    }

    /// Reads log entries `from..=to` (those that exist), in index order.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for an undecodable entry, [`Error::Db`].
    pub fn entries(&self, from: u64, to: u64) -> Result<Vec<E>> {
        let mut out = Vec::new();
        if from > to {
            return Ok(out);
        }
        let cf = self.db.cf(CF_LOG)?;
        let mut ro = rocksdb::ReadOptions::default();
        ro.set_iterate_upper_bound(keys::log_key_after(to));
        let it =
            self.db.db.iterator_cf_opt(cf, ro, IteratorMode::From(&keys::log_key(from), rocksdb::Direction::Forward));
        for item in it {
            let (k, v) = item.map_err(|e| Error::db(&self.db.dir, e))?;
            out.push(self.decode_entry(&k, &v)?);
        }
        Ok(out)
    }

    fn decode_entry(&self, key: &[u8], value: &[u8]) -> Result<E> {
        let index = keys::parse_log_key(key)
            .ok_or_else(|| self.db.corrupt("log key", format!("{} bytes, expected 8", key.len())))?;
        let e: E = codec::decode(value).map_err(|d| self.db.corrupt(format!("log entry {index}"), d))?;
        if e.index() != index {
            return Err(self.db.corrupt(format!("log entry {index}"), format!("holds index {}", e.index())));
        }
        Ok(e)
    }

    /// Decodes every log entry in order, checking contiguity, and returns the bounds.
    fn scan_log(&self, mut each: impl FnMut(E)) -> Result<Option<Bounds>> {
        let cf = self.db.cf(CF_LOG)?;
        let mut range: Option<Bounds> = None;
        for item in self.db.db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item.map_err(|e| Error::db(&self.db.dir, e))?;
            let e = self.decode_entry(&k, &v)?;
            let index = e.index();
            range = Some(match range {
                None => Bounds { first: index, last: index },
                Some(b) if self.bounds.allow_gaps || b.last.checked_add(1) == Some(index) => {
                    Bounds { first: b.first, last: index }
                }
                Some(b) => {
                    return Err(self.db.corrupt(
                        "log",
                        format!("gap between entries {} and {index} (log starts at {})", b.last, b.first),
                    ));
                }
            });
            each(e);
        }
        Ok(range)
    }

    fn read_hard_state(&self) -> Result<Option<H>> {
        match self.db.get(CF_HARD_STATE, keys::HARD_STATE_KEY)? {
            None => Ok(None),
            Some(v) => codec::decode(&v).map(Some).map_err(|d| self.db.corrupt("hard state", d)),
        }
    }

    /// Reads back everything durable; see [`LogStore::recover`].
    ///
    /// # Errors
    /// [`Error::Corrupt`], [`Error::Db`].
    pub fn recover_state(&mut self) -> Result<Recovered<E, H>> {
        let hard_state = self.read_hard_state()?;
        let snapshot = snapshot::read_all(&self.db)?;
        let mut entries =
            Vec::with_capacity(self.bounds.range.map_or(0, |b| (b.last - b.first).min(1 << 20) as usize + 1));
        self.bounds.range = self.scan_log(|e| entries.push(e))?;
        Ok(Recovered { hard_state, snapshot, entries })
    }

    /// Durably applies `batches` in order with ONE synced write; see [`LogStore::write`].
    ///
    /// # Errors
    /// [`Error::LogGap`] (nothing is written), [`Error::Encode`], [`Error::Db`] (fatal).
    pub fn write_batches(&mut self, batches: &[Persist<E, H>]) -> Result<()> {
        let started = Instant::now();
        if batches.iter().all(Persist::is_empty) {
            return Ok(());
        }
        let db = Arc::clone(&self.db);
        let (log, hard, snap_cf) = (db.cf(CF_LOG)?, db.cf(CF_HARD_STATE)?, db.cf(CF_SNAPSHOT)?);
        let mut bounds = self.bounds;
        let mut snap_guard = batches.iter().any(|b| b.snapshot.is_some()).then(|| db.snap_state());
        let mut snap_state = snap_guard.as_deref().copied();
        let mut wb = WriteBatch::default();
        let mut entries = 0usize;
        for b in batches {
            if let (Some(s), Some(st)) = (&b.snapshot, snap_state.as_mut()) {
                snapshot::put_in_batch(&mut wb, snap_cf, st, &s.meta, &s.data)?;
            }
            if let Some(from) = b.truncate_from {
                wb.delete_range_cf(log, keys::log_key(from).as_slice(), keys::LOG_END.as_slice());
                bounds.truncate(from);
            }
            for e in &b.entries {
                bounds.append(e.index())?;
                codec::encode_into(e, &mut self.scratch, "log entry")?;
                wb.put_cf(log, keys::log_key(e.index()), &self.scratch);
            }
            entries += b.entries.len();
            if let Some(upto) = b.compact_to {
                wb.delete_range_cf(log, keys::log_key(0).to_vec(), keys::log_key_after(upto));
                bounds.compact(upto);
            }
            if let Some(h) = &b.hard_state {
                codec::encode_into(h, &mut self.scratch, "hard state")?;
                wb.put_cf(hard, keys::HARD_STATE_KEY, &self.scratch);
            }
        }
        db.write(wb, true)?;
        if let (Some(guard), Some(st)) = (snap_guard.as_deref_mut(), snap_state) {
            *guard = st;
        }
        drop(snap_guard);
        self.bounds = bounds;
        if self.scratch.capacity() > 1 << 20 {
            self.scratch = BytesMut::new();
        }
        crate::metrics::record_commit(started.elapsed(), batches.len(), entries);
        Ok(())
    }
}

impl<E: LogEntry, H: Serialize + DeserializeOwned + Send + 'static> LogStore<E, H> for RocksStore<E, H> {
    fn write(&mut self, batches: &[Persist<E, H>]) -> Result<(), StorageError> {
        self.write_batches(batches).map_err(StorageError::from)
    }

    fn recover(&mut self) -> Result<Recovered<E, H>, StorageError> {
        self.recover_state().map_err(StorageError::from)
    }
}
