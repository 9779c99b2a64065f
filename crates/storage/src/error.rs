//! The crate's error type.

use std::path::PathBuf;

use ballot_core::StorageError;

/// Errors from ballot-storage. Every variant that concerns stored data names the data
/// directory, so an operator knows which store to inspect.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// RocksDB failed (disk error, lock held by another process, …). Fatal for a node:
    /// it can no longer promise durability.
    #[error("storage at {dir}: RocksDB failed: {source}")]
    Db {
        /// The data directory.
        dir: PathBuf,
        /// The RocksDB error.
        source: rocksdb::Error,
    },
    /// A file-system operation on the data directory failed.
    #[error("storage at {dir}: {op} failed: {source}")]
    Fs {
        /// The data directory.
        dir: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The directory exists but does not hold a ballot store; it is left untouched.
    #[error(
        "{dir} is not a ballot store ({detail}); refusing to use it: point --data-dir at an empty or missing \
         directory, or at an existing ballot store"
    )]
    NotAStore {
        /// The directory.
        dir: PathBuf,
        /// What was found there.
        detail: String,
    },
    /// The store was written by a build with another storage format version.
    #[error(
        "storage at {dir} has format version {found}, this build reads version {supported}; refusing to open it \
         (use a matching ballot version, or restore this node from a peer into an empty directory)"
    )]
    IncompatibleVersion {
        /// The data directory.
        dir: PathBuf,
        /// Version on disk.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// Stored data failed validation (an undecodable record, a gap in the log, a
    /// missing snapshot chunk). The store is refused rather than repaired.
    #[error("storage at {dir} is corrupt ({what}): {detail}; refusing to open it")]
    Corrupt {
        /// The data directory.
        dir: PathBuf,
        /// Which record.
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// A value could not be encoded.
    #[error("could not encode {what}: {detail}")]
    Encode {
        /// Which value.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// A write would leave a gap in the log (the store keeps the log contiguous unless
    /// opened with [`StoreOptions::allow_log_gaps`](crate::StoreOptions::allow_log_gaps)).
    #[error("log append at index {index} would leave a gap: the log holds {first}..={last}")]
    LogGap {
        /// The index of the offending entry.
        index: u64,
        /// First index held (`last + 1` when empty).
        first: u64,
        /// Last index held.
        last: u64,
    },
    /// A streamed snapshot was replaced by a newer one while it was being read.
    #[error("the snapshot being read was replaced by a newer one; start again")]
    SnapshotReplaced,
}

impl Error {
    pub(crate) fn db(dir: &std::path::Path, source: rocksdb::Error) -> Self {
        Error::Db { dir: dir.to_path_buf(), source }
    }

    pub(crate) fn corrupt(dir: &std::path::Path, what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Corrupt { dir: dir.to_path_buf(), what: what.into(), detail: detail.into() }
    }
}

impl From<Error> for StorageError {
    fn from(e: Error) -> Self {
        match e {
            Error::IncompatibleVersion { found, supported, .. } => {
                StorageError::IncompatibleVersion { found, supported }
            }
            Error::Corrupt { dir, what, detail } => {
                StorageError::Corrupt { what, detail: format!("{detail} (in {})", dir.display()) }
            }
            other => StorageError::Io(other.to_string()),
        }
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
