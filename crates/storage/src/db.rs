//! Opening the RocksDB database: creation, format-version check, refusal rules. Shared
//! by every handle of one store.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, DBRecoveryMode, IteratorMode, Options, WriteBatch,
    WriteOptions,
};

use crate::keys::{self, ALL_CFS, CF_META};
use crate::{Error, Result};

/// The on-disk format this build reads and writes. Bump it on any incompatible change
/// of `docs/storage.md`'s layout.
pub const FORMAT_VERSION: u32 = 1;

/// The RocksDB database and what every handle of one store shares.
pub(crate) struct Db {
    pub(crate) db: DB,
    pub(crate) dir: PathBuf,
    /// Serializes snapshot replacement; holds the live chunk generation.
    snap: Mutex<SnapState>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct SnapState {
    /// Generation of the chunks the stored header points at.
    pub(crate) current: Option<u64>,
    /// Next generation to hand out.
    pub(crate) next: u64,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn db_options() -> Options {
    let mut o = Options::default();
    // Acknowledged (synced) writes are never the torn tail of the WAL, so a torn tail is
    // tolerated; corruption anywhere else refuses the open instead of dropping writes.
    o.set_wal_recovery_mode(DBRecoveryMode::TolerateCorruptedTailRecords);
    o.set_paranoid_checks(true);
    o.set_compression_type(DBCompressionType::Lz4);
    o.set_max_background_jobs(2);
    o.set_keep_log_file_num(4);
    o.set_max_total_wal_size(512 << 20);
    o
}

impl Db {
    /// Opens (or creates) the store at `dir`, applying the refusal rules of
    /// `docs/storage.md`.
    pub(crate) fn open(dir: &Path) -> Result<Db> {
        let fresh = Self::inspect_dir(dir)?;
        let mut opts = db_options();
        let db = if fresh {
            opts.create_if_missing(true);
            opts.create_missing_column_families(true);
            let cfs = ALL_CFS.iter().map(|n| ColumnFamilyDescriptor::new(*n, db_options()));
            DB::open_cf_descriptors(&opts, dir, cfs).map_err(|e| Error::db(dir, e))?
        } else {
            let names = DB::list_cf(&opts, dir).map_err(|e| Error::db(dir, e))?;
            if !names.iter().any(|n| n == CF_META) {
                return Err(Error::NotAStore {
                    dir: dir.to_path_buf(),
                    detail: format!("a RocksDB database without ballot's metadata, column families {names:?}"),
                });
            }
            let cfs = names.iter().map(|n| ColumnFamilyDescriptor::new(n, db_options()));
            let db = DB::open_cf_descriptors(&opts, dir, cfs).map_err(|e| Error::db(dir, e))?;
            Self::check_format(&db, dir, &names)?;
            db
        };
        let db = Db { db, dir: dir.to_path_buf(), snap: Mutex::new(SnapState { current: None, next: 1 }) };
        if fresh {
            db.write_metadata()?;
        }
        Ok(db)
    }

    /// Returns whether `dir` is to be created as a fresh store (missing or empty), or
    /// refuses it.
    fn inspect_dir(dir: &Path) -> Result<bool> {
        let fs_err = |op, source| Error::Fs { dir: dir.to_path_buf(), op, source };
        match std::fs::metadata(dir) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(|e| fs_err("creating the data directory", e))?;
                tracing::info!(dir = %dir.display(), "created data directory");
                Ok(true)
            }
            Err(e) => Err(fs_err("reading the data directory", e)),
            Ok(m) if !m.is_dir() => {
                Err(Error::NotAStore { dir: dir.to_path_buf(), detail: "it is not a directory".into() })
            }
            Ok(_) => {
                let mut names = Vec::new();
                for entry in std::fs::read_dir(dir).map_err(|e| fs_err("listing the data directory", e))? {
                    let entry = entry.map_err(|e| fs_err("listing the data directory", e))?;
                    names.push(entry.file_name().to_string_lossy().into_owned());
                }
                if names.is_empty() {
                    return Ok(true);
                }
                if !names.iter().any(|n| n == "CURRENT") {
                    names.sort();
                    names.truncate(5);
                    return Err(Error::NotAStore {
                        dir: dir.to_path_buf(),
                        detail: format!("it holds other files, e.g. {names:?}"),
                    });
                }
                Ok(false)
            }
        }
    }

    /// Checks the format version and the column families of an existing store.
    fn check_format(db: &DB, dir: &Path, names: &[String]) -> Result<()> {
        let meta = db.cf_handle(CF_META).ok_or_else(|| Error::corrupt(dir, "meta", "column family missing"))?;
        match db.get_cf(meta, keys::META_FORMAT_VERSION).map_err(|e| Error::db(dir, e))? {
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_slice())
                    .map(u32::from_be_bytes)
                    .map_err(|_| Error::corrupt(dir, "format version", format!("{} bytes, expected 4", v.len())))?;
                if found != FORMAT_VERSION {
                    return Err(Error::IncompatibleVersion {
                        dir: dir.to_path_buf(),
                        found,
                        supported: FORMAT_VERSION,
                    });
                }
            }
            None => {
                // Creation writes the metadata right after creating the column families;
                // a crash in between leaves a store with no data at all, which is safe to
                // finish creating. Anything holding data but no version is refused.
                let all_ours = ALL_CFS.iter().all(|n| names.iter().any(|m| m == n));
                let empty = names.iter().all(|n| {
                    db.cf_handle(n).is_some_and(|cf| db.iterator_cf(cf, IteratorMode::Start).next().is_none())
                });
                if !(all_ours && empty) {
                    return Err(Error::corrupt(dir, "format version", "missing from a store that holds data"));
                }
                tracing::warn!(dir = %dir.display(), "finishing the creation of a store interrupted by a crash");
            }
        }
        for n in ALL_CFS {
            if !names.iter().any(|m| m == n) {
                return Err(Error::corrupt(dir, format!("column family {n}"), "missing"));
            }
        }
        if let Some(extra) = names.iter().find(|n| *n != "default" && !ALL_CFS.contains(&n.as_str())) {
            return Err(Error::corrupt(dir, format!("column family {extra}"), "not part of this format version"));
        }
        Ok(())
    }

    fn write_metadata(&self) -> Result<()> {
        let meta = self.cf(CF_META)?;
        let mut wb = WriteBatch::default();
        let created_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        wb.put_cf(meta, keys::META_FORMAT_VERSION, FORMAT_VERSION.to_be_bytes());
        wb.put_cf(meta, keys::META_CREATED_BY, concat!("ballot-storage ", env!("CARGO_PKG_VERSION")));
        wb.put_cf(meta, keys::META_CREATED_AT, created_ms.to_be_bytes());
        self.write(wb, true)?;
        tracing::info!(dir = %self.dir.display(), version = FORMAT_VERSION, "created a new ballot store");
        Ok(())
    }

    /// A column family handle (every one exists once the store is open).
    pub(crate) fn cf(&self, name: &str) -> Result<&ColumnFamily> {
        self.db.cf_handle(name).ok_or_else(|| Error::corrupt(&self.dir, format!("column family {name}"), "missing"))
    }

    /// Writes `wb` atomically; with `sync`, returns only once it is on stable storage
    /// and records the fsync latency.
    pub(crate) fn write(&self, wb: WriteBatch, sync: bool) -> Result<()> {
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        let started = Instant::now();
        self.db.write_opt(wb, &wo).map_err(|e| Error::db(&self.dir, e))?;
        if sync {
            crate::metrics::record_fsync(started.elapsed());
        }
        Ok(())
    }

    /// Reads a raw value.
    pub(crate) fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get_cf(self.cf(cf)?, key).map_err(|e| Error::db(&self.dir, e))
    }

    pub(crate) fn snap_state(&self) -> MutexGuard<'_, SnapState> {
        self.snap.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn corrupt(&self, what: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::corrupt(&self.dir, what, detail)
    }
}
