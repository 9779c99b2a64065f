//! A sans-IO implementation of Raft, for ballot's services and for anyone who needs a
//! replicated log without buying into a runtime, a network stack or a storage engine.
//!
//! [`Raft`] is a deterministic state machine implementing [`ballot_core::Protocol`]: you
//! feed it inputs (messages, timeouts, proposals, reads, "this write is durable"), each
//! with the current time, and poll it for outputs (messages to send, batches to write,
//! committed entries to apply, read barriers, events). It never reads a clock, draws
//! randomness only from the injected [`SeededRng`](ballot_core::SeededRng), and does no
//! IO, so the same code runs under ballot's tokio driver (`ballot-node`), its
//! deterministic simulator (`ballot-sim`) and your own event loop. See [`Raft`] for the
//! polling order.
//!
//! What it implements (the feature set etcd-raft and raft-rs users expect):
//!
//! - elections with randomized timeouts, **PreVote**, **CheckQuorum** and leader
//!   stickiness;
//! - **pipelined, batched replication** with per-follower flow control (probe, replicate
//!   and snapshot modes; limits by message count and bytes), fast conflict back-off by
//!   term, a no-op per new term and the current-term commit rule;
//! - **durability ordering inside the state machine**: vote grants and append
//!   acknowledgements leave only after the writes they depend on are acknowledged; the
//!   leader replicates while its own write is in flight and counts itself only once
//!   durable;
//! - **linearizable reads without log writes**: ReadIndex (forwarded from followers), and
//!   optional leader leases;
//! - **membership changes by joint consensus**, learners, removing the leader, and
//!   **leadership transfer**;
//! - **snapshots**: compaction and chunked, resumable InstallSnapshot.
//!
//! The design, the durability rules and the differences from etcd-raft and raft-rs are
//! described in `docs/raft.md` in the repository.
//!
//! # Example
//!
//! A single replica (a one-voter cluster) elects itself and commits a command. The
//! "driver" here acknowledges every write at once; a real one writes each
//! [`Persist`](ballot_core::Persist) batch durably first.
//!
//! ```
//! use ballot_core::{Apply, Instant, Membership, NodeId, Output, ProposalId, Protocol, Recovered, SeededRng};
//! use ballot_raft::{Config, Raft};
//! use bytes::Bytes;
//!
//! fn drive(raft: &mut Raft, now: Instant, applied: &mut Vec<Apply>) {
//!     while let Some(output) = raft.poll_output() {
//!         match output {
//!             Output::Persist(batch) => raft.persisted(now, batch.id), // pretend it is on disk
//!             Output::Apply(item) => applied.push(item),
//!             _ => {} // no peers to send to
//!         }
//!     }
//! }
//!
//! let id = NodeId(1);
//! let mut raft = Raft::new(Config::new(id), Membership::new([id]), Recovered::default(), SeededRng::new(7), Instant::ZERO)?;
//! let mut applied = Vec::new();
//! let now = raft.poll_timeout().expect("a voter arms its election timer");
//! raft.handle_timeout(now);
//! drive(&mut raft, now, &mut applied);
//! assert!(raft.is_leader());
//!
//! raft.propose(now, ProposalId(1), Bytes::from_static(b"hello"))?;
//! drive(&mut raft, now, &mut applied);
//! assert_eq!(
//!     applied.last(),
//!     Some(&Apply::Command { index: 2, command: Bytes::from_static(b"hello"), proposal: Some(ProposalId(1)) })
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod election;
mod error;
mod log;
mod message;
mod progress;
mod raft;
mod read;
mod reconfig;
mod replication;
mod snapshot;
mod types;

pub use ballot_core::ElectionConfig;
pub use config::Config;
pub use error::RaftError;
pub use message::{Conflict, Message};
pub use progress::{PeerProgress, ReplicationState};
pub use raft::Raft;
pub(crate) use raft::Transfer;
pub use types::{Entry, EntryPayload, HardState, MembershipChange};
