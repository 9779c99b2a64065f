//! The shared contract of ballot: identifiers, time as an input, the sans-IO
//! [`Protocol`] trait, cluster [`Membership`], and the [`LogStore`] and [`Transport`]
//! traits the driver runs protocols against, each with an in-memory implementation.
//!
//! Use this crate to implement a new consensus algorithm that ballot's driver,
//! simulator and services can run, or to write a storage or transport backend. It
//! depends on no async runtime, network stack or database.
//!
//! The `testkit` feature adds the conformance suites (`testkit::storage_conformance`,
//! `testkit::transport_conformance`) that every implementation must pass.
//!
//! ```
//! use ballot_core::{LogStore, MemStore, Persist, PersistId};
//! use ballot_core::testkit::{entry, TestEntry, TestHardState};
//!
//! let mut store: MemStore<TestEntry, TestHardState> = MemStore::new();
//! let mut batch = Persist::new(PersistId(1));
//! batch.entries = vec![entry(1, 1), entry(2, 1)];
//! store.write(&[batch])?;
//! assert_eq!(store.recover()?.entries.len(), 2);
//! # Ok::<(), ballot_core::StorageError>(())
//! ```

mod consensus;
mod election;
mod id;
mod membership;
mod outbox;
mod protocol;
mod rng;
pub mod service;
mod storage;
mod time;
mod transport;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use consensus::{Consensus, ConsensusSettings, UnknownConsensus};
pub use election::{ElectionConfig, InvalidField, require_positive};
pub use id::{NodeId, ParseNodeIdError, PersistId, ProposalId, ReadId};
pub use membership::{Membership, Quorum};
pub use outbox::{Outbox, Queue};
pub use protocol::{
    Apply, ClientRule, Event, LogEntry, Output, Payload, Persist, ProposeError, Protocol, Role, Snapshot, SnapshotMeta,
    Status,
};
pub use rng::SeededRng;
pub use storage::{LogStore, MemStore, Recovered, StorageError, apply_persist};
pub use time::Instant;
pub use transport::{Closed, Incoming, MemNetwork, MemTransport, SendError, Transport};
