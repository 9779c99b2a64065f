//! Sans-IO PBFT (Castro and Liskov, OSDI'99 and TOCS 2002): Byzantine fault tolerant
//! state machine replication for 3f+1 replicas, as a deterministic state machine
//! implementing [`ballot_core::Protocol`].
//!
//! Use it where f replicas may lie: several operators, a permissioned ledger. It runs
//! behind ballot's replica host, driver and simulator like `ballot-raft` and
//! `ballot-paxos`, and performs no IO: time comes with every input, keys and the
//! signature scheme come from the host through [`Signer`], [`Verifier`] and
//! [`RequestAuth`]. The design as built is described in `docs/pbft.md`.
//!
//! * **Normal case**: the primary of view v (`v mod n`) batches requests into
//!   PRE-PREPARE(v, n, d); backups accept within the water marks `(h, h+L]` and if no
//!   other digest was accepted for (v, n), and send PREPARE; prepared = PRE-PREPARE +
//!   2f matching PREPAREs; COMMIT; committed-local = 2f+1 matching COMMITs; batches
//!   execute strictly in sequence order.
//! * **Checkpoints** every K sequence numbers with the digest of the service state;
//!   2f+1 matching signed CHECKPOINTs make one stable; the log below is discarded.
//! * **View change** on a request timer with exponential back-off: VIEW-CHANGE with
//!   the checkpoint proof and prepared certificates; NEW-VIEW with V and O, which every
//!   backup recomputes; null requests fill gaps; f+1 VIEW-CHANGEs make a replica join.
//! * **State transfer**: checkpoint state checked against its certified digest, and
//!   committed batches believed on f+1 matching claims.
//! * **Durability**: what a replica pre-prepared, prepared and committed, its view and
//!   its stable checkpoint are written before the messages that depend on them leave.
//!
//! # Authentication
//!
//! PRE-PREPARE, PREPARE, CHECKPOINT, VIEW-CHANGE and NEW-VIEW are signed: they travel
//! inside other messages (certificates, proofs, V) or are relayed, and a receiver must
//! check them whoever delivered them. COMMIT, request relays, status and fetch messages
//! are trusted to come from the `from` that the host's authenticated channel (mutual
//! TLS) names, or are checked against digests. Client requests must pass
//! [`RequestAuth`] at every replica before it orders, accepts or executes them.
//!
//! # Example: four replicas order a request
//!
//! ```
//! use std::collections::VecDeque;
//! use std::sync::Arc;
//! use ballot_core::{Apply, Instant, Membership, NodeId, Output, ProposalId, Protocol, Recovered};
//! use ballot_pbft::insecure::{HashRequestAuth, HashSigner, HashVerifier, signed_request};
//! use ballot_pbft::{Config, Crypto, Pbft};
//!
//! let members = Membership::new((1..=4).map(NodeId));
//! let mut nodes: Vec<Pbft> = (1..=4)
//!     .map(|i| {
//!         let crypto = Crypto {
//!             signer: Arc::new(HashSigner(NodeId(i))),
//!             verifier: Arc::new(HashVerifier),
//!             requests: Arc::new(HashRequestAuth),
//!         };
//!         Pbft::new(Config::new(NodeId(i)), members.clone(), Recovered::default(), crypto, Instant::ZERO)
//!     })
//!     .collect::<Result<_, _>>()?;
//! let now = Instant::ZERO;
//! // The client sends its signed request to every replica; n1 is the primary of view 0.
//! let request = signed_request(7, b"set x 1");
//! for (i, node) in nodes.iter_mut().enumerate() {
//!     node.propose(now, ProposalId(i as u64), request.clone())?;
//! }
//! let mut wire = VecDeque::new();
//! let mut executed = vec![Vec::new(); 4];
//! loop {
//!     for (i, node) in nodes.iter_mut().enumerate() {
//!         while let Some(out) = node.poll_output() {
//!             match out {
//!                 Output::Send { to, message } => wire.push_back((node.id(), to, message)),
//!                 Output::Persist(batch) => node.persisted(now, batch.id),
//!                 Output::Apply(Apply::Command { index, command, .. }) => executed[i].push((index, command)),
//!                 _ => {}
//!             }
//!         }
//!     }
//!     let Some((from, to, message)) = wire.pop_front() else { break };
//!     nodes[to.0 as usize - 1].handle_message(now, from, message);
//! }
//! assert!(executed.iter().all(|e| *e == vec![(1, request.clone())]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod crypto;
mod error;
mod message;
mod pbft;
mod transfer;
mod view_change;

pub mod byzantine;

pub use config::{AgreedClock, Config, ReadMode};
pub use crypto::{Crypto, Digest, Enc, RequestAuth, Signable, Signed, Signer, Verifier, insecure, sha256};
pub use error::PbftError;
pub use message::{
    Checkpoint, Entry, HardState, Item, Message, NewView, PrePrepare, Prepare, PreparedCert, StableCheckpoint,
    ViewChange, batch_digest, null_digest, state_digest,
};
pub use pbft::{Pbft, PbftOutput};
