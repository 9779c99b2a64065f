//! Durable storage for ballot on RocksDB: a replica's log, hard state and snapshot, and
//! the service state machine's data, in one data directory.
//!
//! Use it to run a ballot protocol on real disks: [`RocksStore`] implements
//! [`ballot_core::LogStore`] (and passes its conformance suite); [`GroupCommit`] runs it
//! on a writer thread that makes every [`Persist`](ballot_core::Persist) batch queued
//! during one sync durable with the next single sync; [`StateStore`] gives services an
//! atomic key-value API with an applied index; [`SnapshotStore`] streams snapshots in
//! and out in chunks. `docs/storage.md` describes the on-disk layout, durability and
//! recovery rules.
//!
//! Opening validates the whole store and refuses — never resets — a directory that is
//! not a ballot store, a store of another format version, or corrupt data, with an
//! [`Error`] naming the directory.
//!
//! ```
//! use ballot_core::testkit::{TestEntry, TestHardState, entry};
//! use ballot_core::{LogStore, Persist, PersistId};
//! use ballot_storage::RocksStore;
//!
//! let dir = tempfile::tempdir()?;
//! {
//!     let mut store: RocksStore<TestEntry, TestHardState> = RocksStore::open(dir.path())?;
//!     let mut batch = Persist::new(PersistId(1));
//!     batch.entries = vec![entry(1, 1), entry(2, 1)];
//!     batch.hard_state = Some(TestHardState { term: 1, vote: None });
//!     store.write(&[batch])?; // durable once this returns
//! }
//! // After a restart, everything written is back.
//! let mut store: RocksStore<TestEntry, TestHardState> = RocksStore::open(dir.path())?;
//! let recovered = store.recover()?;
//! assert_eq!(recovered.entries, vec![entry(1, 1), entry(2, 1)]);
//! assert_eq!(recovered.hard_state.map(|h| h.term), Some(1));
//! # Ok::<(), anyhow::Error>(())
//! ```

mod codec;
mod db;
mod error;
mod group_commit;
mod keys;
pub mod metrics;
mod snapshot;
mod state;
mod store;

/// The group-commit writer, generic over any [`ballot_core::LogStore`]; with a
/// [`RocksStore`] each group is one synced `WriteBatch`.
pub use db::FORMAT_VERSION;
pub use error::{Error, Result};
pub use group_commit::{Ack, GroupCommit, GroupCommitOptions};
pub use snapshot::{SNAPSHOT_CHUNK_SIZE, SnapshotReader, SnapshotStore, SnapshotWriter};
pub use state::{StateBatch, StateIter, StateStore};
pub use store::{RocksStore, StoreOptions};
