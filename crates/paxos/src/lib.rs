//! Sans-IO Paxos: the single-decree Synod and Multi-Paxos, as deterministic state
//! machines implementing [`ballot_core::Protocol`].
//!
//! * [`Synod`] decides one value among proposers, acceptors and learners: a one-shot
//!   agreement library, and the reference for the safety argument.
//! * [`MultiPaxos`] orders an unbounded log of client commands behind a distinguished
//!   leader (phase 1 once for all slots from a point on, then phase 2 only), with
//!   pre-vote and leader stickiness, hole filling with no-ops, batched and pipelined
//!   accepts, commit notification, catch-up and chunked snapshot transfer, read index
//!   and leader leases. It is a drop-in alternative to `ballot-raft` behind ballot's
//!   services: same constructor shape, same `propose`/`read`/`persisted`/`compact`
//!   semantics.
//!
//! Use this crate to run Paxos inside your own driver, or through ballot's driver
//! (`ballot-node`, `--consensus multipaxos`) and simulator (`ballot-sim`). It performs no
//! IO and reads no clock: time comes with every input, randomness from an injected
//! [`SeededRng`](ballot_core::SeededRng). The design is described in `docs/paxos.md`.
//!
//! # Polling order
//!
//! After every input (`handle_message`, `handle_timeout`, `propose`, `read`, `persisted`,
//! `compact`), drain `poll_output` until it returns `None`, then arm a timer for
//! `poll_timeout`. Write each `Persist` batch in order and acknowledge it with
//! `persisted`; send each `Send` (promises and accepts are only released once the writes
//! they depend on are acknowledged, so sending at once is always safe); hand each
//! `Apply` to the service in order.
//!
//! # Example: three Synod replicas agree on a value
//!
//! ```
//! use std::collections::VecDeque;
//! use ballot_core::{Instant, Membership, NodeId, Output, ProposalId, Protocol, Recovered, SeededRng, Apply};
//! use ballot_paxos::{Synod, SynodConfig};
//!
//! let members = Membership::new([1, 2, 3].map(NodeId));
//! let mut nodes: Vec<Synod> = (1..=3)
//!     .map(|i| {
//!         let cfg = SynodConfig::new(NodeId(i));
//!         Synod::new(cfg, members.clone(), Recovered::default(), SeededRng::new(i), Instant::ZERO)
//!     })
//!     .collect::<Result<_, _>>()?;
//! let now = Instant::ZERO;
//! nodes[0].propose(now, ProposalId(1), "x=1".into())?;
//!
//! // A perfect network and disk: deliver everything, acknowledge every write at once.
//! let mut wire = VecDeque::new();
//! let mut applied = Vec::new();
//! loop {
//!     for (i, node) in nodes.iter_mut().enumerate() {
//!         while let Some(out) = node.poll_output() {
//!             match out {
//!                 Output::Send { to, message } => wire.push_back((node.id(), to, message)),
//!                 Output::Persist(batch) => node.persisted(now, batch.id),
//!                 Output::Apply(a) => applied.push((i + 1, a)),
//!                 _ => {}
//!             }
//!         }
//!     }
//!     let Some((from, to, message)) = wire.pop_front() else { break };
//!     nodes[to.0 as usize - 1].handle_message(now, from, message);
//! }
//! assert!(nodes.iter().all(|n| n.chosen().and_then(|v| v.command()) == Some(&"x=1".into())));
//! // The proposer learns its own proposal was chosen.
//! assert!(applied.contains(&(1, Apply::Command { index: 1, command: "x=1".into(), proposal: Some(ProposalId(1)) })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Example: a three-node Multi-Paxos cluster in memory
//!
//! ```
//! use std::collections::VecDeque;
//! use std::time::Duration;
//! use ballot_core::{Apply, Instant, Membership, NodeId, Output, ProposalId, Protocol, Recovered, Role, SeededRng};
//! use ballot_paxos::{Config, MultiPaxos};
//!
//! let members = Membership::new([1, 2, 3].map(NodeId));
//! let mut nodes: Vec<MultiPaxos> = (1..=3)
//!     .map(|i| {
//!         let mut cfg = Config::new(NodeId(i));
//!         cfg.election.timeout_min = Duration::from_millis(300);
//!         cfg.election.timeout_max = Duration::from_millis(600);
//!         cfg.election.heartbeat_interval = Duration::from_millis(50);
//!         MultiPaxos::new(cfg, members.clone(), Recovered::default(), SeededRng::new(i), Instant::ZERO)
//!     })
//!     .collect::<Result<_, _>>()?;
//!
//! let mut now = Instant::ZERO;
//! let mut wire = VecDeque::new();
//! let mut applied: Vec<Vec<Apply>> = vec![Vec::new(); 3];
//! let mut proposed = false;
//! while applied.iter().any(|a| !a.iter().any(|x| matches!(x, Apply::Command { .. }))) {
//!     assert!(now < Instant::from_millis(10_000), "no progress");
//!     for (i, node) in nodes.iter_mut().enumerate() {
//!         while let Some(out) = node.poll_output() {
//!             match out {
//!                 Output::Send { to, message } => wire.push_back((node.id(), to, message)),
//!                 Output::Persist(batch) => node.persisted(now, batch.id),
//!                 Output::Apply(a) => applied[i].push(a),
//!                 _ => {}
//!             }
//!         }
//!     }
//!     if let Some((from, to, message)) = wire.pop_front() {
//!         nodes[to.0 as usize - 1].handle_message(now, from, message);
//!         continue;
//!     }
//!     if let Some(leader) = nodes.iter_mut().find(|n| n.role() == Role::Leader) {
//!         if !proposed {
//!             leader.propose(now, ProposalId(7), "set a 1".into())?;
//!             proposed = true;
//!             continue;
//!         }
//!     }
//!     // Nothing in flight: jump to the earliest timer.
//!     now = nodes.iter().filter_map(|n| n.poll_timeout()).min().unwrap_or(now).max(now);
//!     for node in &mut nodes {
//!         if node.poll_timeout().is_some_and(|t| t <= now) {
//!             node.handle_timeout(now);
//!         }
//!     }
//! }
//! // Every replica applied the same command in the same slot (after the leader's no-op).
//! for a in &applied {
//!     assert!(a.iter().any(|x| matches!(x, Apply::Command { index: 2, command, .. } if command == "set a 1")));
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod multi;

mod synod;
mod types;

pub use ballot_core::ElectionConfig;
pub use error::PaxosError;
pub use multi::{Config, Message, MultiPaxos};
pub use synod::{SYNOD_SLOT, Synod, SynodConfig, SynodMessage};
pub use types::{Ballot, Entry, HardState, Value};
