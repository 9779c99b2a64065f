//! The service state machine's column family: a small key-value API whose changes are
//! committed in one atomic batch together with the applied index.

use std::sync::Arc;

use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch};

use crate::db::Db;
use crate::keys::{self, CF_STATE};
use crate::{Error, Result};

/// A handle on the service state machine's data (the `state` column family). Cheap to
/// clone and usable from any thread, independently of the log writer.
///
/// Changes are staged in a [`StateBatch`] and committed atomically together with the
/// index of the last log entry they reflect, so after a crash the data and
/// [`applied_index`](Self::applied_index) always agree.
#[derive(Clone, Debug)]
pub struct StateStore {
    pub(crate) db: Arc<Db>,
}

impl StateStore {
    /// Opens (or creates) a store in `dir` for state alone: a node that keeps no
    /// replicated log (a blockchain node, say) gets the same refusal rules, format check
    /// and atomic batches as a replica's store. The log, hard state and snapshot column
    /// families stay empty.
    ///
    /// # Errors
    /// As [`RocksStore::open`](crate::RocksStore::open): [`Error::NotAStore`],
    /// [`Error::IncompatibleVersion`], [`Error::Corrupt`], [`Error::Db`] (e.g. the store
    /// is open in another process), [`Error::Fs`]. Nothing is ever reset or repaired.
    pub fn open(dir: impl AsRef<std::path::Path>) -> Result<Self> {
        crate::metrics::describe_metrics();
        let db = Arc::new(Db::open(dir.as_ref())?);
        tracing::info!(dir = %db.dir.display(), "opened ballot state store");
        Ok(StateStore { db })
    }

    /// The data directory.
    #[must_use]
    pub fn dir(&self) -> &std::path::Path {
        &self.db.dir
    }

    /// The value of `key`.
    ///
    /// # Errors
    /// [`Error::Db`].
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get(CF_STATE, &keys::state_key(key))
    }

    /// The index of the last log entry reflected in the data (0 if none).
    ///
    /// # Errors
    /// [`Error::Db`], or [`Error::Corrupt`] if the stored index is malformed.
    pub fn applied_index(&self) -> Result<u64> {
        match self.db.get(CF_STATE, keys::STATE_APPLIED_KEY)? {
            None => Ok(0),
            Some(v) => <[u8; 8]>::try_from(v.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| self.db.corrupt("applied index", format!("{} bytes, expected 8", v.len()))),
        }
    }

    /// Every `(key, value)` whose key starts with `prefix`, in key order, from a
    /// consistent view taken when the iterator is created. An empty prefix scans all.
    ///
    /// # Errors
    /// [`Error::Db`] to start; each item may carry a read error.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<StateIter<'_>> {
        let start = keys::state_key(prefix);
        let mut ro = ReadOptions::default();
        if let Some(end) = keys::prefix_successor(&start) {
            ro.set_iterate_upper_bound(end);
        }
        let cf = self.db.cf(CF_STATE)?;
        let inner = self.db.db.iterator_cf_opt(cf, ro, IteratorMode::From(&start, Direction::Forward));
        Ok(StateIter { inner, dir: &self.db.dir })
    }

    /// A new, empty batch of changes.
    #[must_use]
    pub fn batch(&self) -> StateBatch {
        StateBatch {
            db: Arc::clone(&self.db),
            wb: WriteBatch::default(),
            applied: None,
            sync: false,
            ops: 0,
            error: None,
        }
    }

    /// Commits `batch` atomically. Without [`StateBatch::sync`], it survives a process
    /// crash but may be lost with the machine (the service then replays the log from
    /// its [`applied_index`](Self::applied_index)).
    ///
    /// # Errors
    /// [`Error::Db`], or the error recorded while staging the batch.
    pub fn commit(&self, batch: StateBatch) -> Result<()> {
        let StateBatch { mut wb, applied, sync, error, .. } = batch;
        if let Some(e) = error {
            return Err(e);
        }
        if let Some(index) = applied {
            wb.put_cf(self.db.cf(CF_STATE)?, keys::STATE_APPLIED_KEY, index.to_be_bytes());
        }
        if wb.is_empty() {
            return Ok(());
        }
        self.db.write(wb, sync)
    }
}

/// Changes to the service state, staged in memory and committed atomically by
/// [`StateStore::commit`]. Reads do not see staged changes.
pub struct StateBatch {
    db: Arc<Db>,
    wb: WriteBatch,
    applied: Option<u64>,
    sync: bool,
    ops: usize,
    /// The first staging error, returned by `commit`.
    error: Option<Error>,
}

impl std::fmt::Debug for StateBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateBatch")
            .field("ops", &self.ops)
            .field("applied", &self.applied)
            .field("sync", &self.sync)
            .finish_non_exhaustive()
    }
}

impl StateBatch {
    fn stage(&mut self, f: impl FnOnce(&mut WriteBatch, &rocksdb::ColumnFamily)) -> &mut Self {
        match self.db.cf(CF_STATE) {
            Ok(cf) => {
                f(&mut self.wb, cf);
                self.ops += 1;
            }
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> &mut Self {
        self.stage(|wb, cf| wb.put_cf(cf, keys::state_key(key), value))
    }

    /// Removes `key`.
    pub fn delete(&mut self, key: &[u8]) -> &mut Self {
        self.stage(|wb, cf| wb.delete_cf(cf, keys::state_key(key)))
    }

    /// Removes every key starting with `prefix` (an empty prefix removes all the
    /// service's data, e.g. before restoring a snapshot), with one range deletion.
    /// Operations staged after it in the same batch take effect.
    pub fn delete_prefix(&mut self, prefix: &[u8]) -> &mut Self {
        let start = keys::state_key(prefix);
        // `start` begins with the data tag, which is below 0xff, so it has a successor.
        let end = keys::prefix_successor(&start).unwrap_or_else(|| vec![keys::STATE_DATA_TAG + 1]);
        self.stage(|wb, cf| wb.delete_range_cf(cf, start, end))
    }

    /// Records that the batch brings the data up to log index `index`; stored atomically
    /// with the changes.
    pub fn set_applied_index(&mut self, index: u64) -> &mut Self {
        self.applied = Some(index);
        self
    }

    /// Makes [`StateStore::commit`] return only once the batch is on stable storage.
    pub fn sync(&mut self, sync: bool) -> &mut Self {
        self.sync = sync;
        self
    }

    /// How many put/delete operations the batch holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ops
    }

    /// Whether the batch holds no put/delete operation.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ops == 0
    }
}

/// Iterator returned by [`StateStore::scan_prefix`]: `(key, value)` pairs, keys without
/// the store's internal tag.
pub struct StateIter<'a> {
    inner: rocksdb::DBIteratorWithThreadMode<'a, rocksdb::DB>,
    dir: &'a std::path::Path,
}

impl std::fmt::Debug for StateIter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateIter").finish_non_exhaustive()
    }
}

impl Iterator for StateIter<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.inner.next()? {
            Ok((k, v)) => Some(Ok((k.get(1..).unwrap_or_default().to_vec(), v.into_vec()))),
            Err(e) => Some(Err(Error::db(self.dir, e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standalone_state_store_keeps_batches_and_refuses_foreign_directories() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = StateStore::open(dir.path()).unwrap();
            let mut batch = store.batch();
            batch.put(b"a/1", b"one").put(b"a/2", b"two").put(b"b/1", b"other").sync(true);
            store.commit(batch).unwrap();
        }
        let store = StateStore::open(dir.path()).unwrap();
        let keys: Vec<Vec<u8>> = store.scan_prefix(b"a/").unwrap().map(|kv| kv.unwrap().0).collect();
        assert_eq!(keys, vec![b"a/1".to_vec(), b"a/2".to_vec()]);
        assert_eq!(store.get(b"b/1").unwrap(), Some(b"other".to_vec()));
        drop(store);

        let foreign = tempfile::tempdir().unwrap();
        std::fs::write(foreign.path().join("notes.txt"), b"mine").unwrap();
        assert!(matches!(StateStore::open(foreign.path()), Err(Error::NotAStore { .. })));
    }
}
