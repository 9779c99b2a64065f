//! The sans-IO host of one consensus protocol and one replicated service.
//!
//! A [`Replica`] owns a [`Protocol`] (Raft, Multi-Paxos, …) and a [`StateMachine`] (the
//! database, the configuration service, the election service) and everything between
//! them: validation and routing of client requests, the exactly-once session table,
//! pending writes and reads and the replies they are owed, watches, the service's
//! periodic tick, and when to snapshot the service and compact the log.
//!
//! It does no IO and reads no clock, like the protocols it hosts. The tokio shell
//! (`ballot-node`) and the deterministic simulator (`ballot-sim`) both drive this same
//! type, so what the simulator proves about sessions, replies and watches is what users
//! run:
//!
//! 1. **Inputs** carry `now`: [`handle_message`](Replica::handle_message),
//!    [`persisted`](Replica::persisted), [`handle_timeout`](Replica::handle_timeout),
//!    [`request`](Replica::request), [`open_watch`](Replica::open_watch),
//!    [`close_watch`](Replica::close_watch).
//! 2. After any input the host drains [`poll_output`](Replica::poll_output), then asks
//!    [`poll_timeout`](Replica::poll_timeout) when to call `handle_timeout`.
//! 3. [`ReplicaOutput::Send`] and [`ReplicaOutput::Persist`] are carried out exactly as
//!    the protocol's own outputs ([`Protocol`] documents the rules); replies and watch
//!    events go to whoever the host knows by [`RequestId`] and [`WatchId`].
//!
//! Replies are routed by **client session**: every replica that holds a pending request
//! of a session answers it when the session's command is applied, whoever proposed it.
//! A Raft or Multi-Paxos leader answers the requests it received; under a Byzantine
//! protocol, where clients send to every replica, every replica answers.
//!
//! ```
//! use std::time::Duration;
//! use ballot_core::{Instant, Membership, NodeId, Recovered, Role, SeededRng};
//! use ballot_core::service::Session;
//! use ballot_kv::{KvRequest, KvResponse, KvStore};
//! use ballot_replica::{Replica, ReplicaConfig, ReplicaOutput, RequestId};
//!
//! // A one-node Raft cluster hosting the key-value database.
//! let raft = ballot_raft::Raft::new(
//!     ballot_raft::Config::new(NodeId(1)),
//!     Membership::new([NodeId(1)]),
//!     Recovered::default(),
//!     SeededRng::new(7),
//!     Instant::ZERO,
//! )?;
//! let mut replica = Replica::new(raft, KvStore::new(), ReplicaConfig::default());
//! let mut now = Instant::ZERO;
//! let mut reply = None;
//! let put = KvRequest::Put { key: "k".into(), value: "v".into(), prev_kv: false };
//! while reply.is_none() {
//!     // Once the node has elected itself, a client writes within a session.
//!     if replica.status().status.role == Role::Leader && replica.pending_requests() == 0 {
//!         replica.request(now, RequestId(1), Some(Session { client: 9, seq: 1 }), put.clone());
//!     }
//!     while let Some(out) = replica.poll_output() {
//!         match out {
//!             // One node, no disk: every write is durable at once.
//!             ReplicaOutput::Persist(batch) => replica.persisted(now, batch.id),
//!             ReplicaOutput::Reply { request: RequestId(1), result, .. } => reply = Some(result),
//!             _ => {}
//!         }
//!     }
//!     now = replica.poll_timeout().unwrap_or(now).max(now + Duration::from_millis(1));
//!     replica.handle_timeout(now);
//! }
//! assert!(matches!(reply, Some(Ok(KvResponse::Put { .. }))));
//! # Ok::<(), ballot_raft::RaftError>(())
//! ```

mod replica;

pub use replica::{Replica, ReplicaConfig, ReplicaOutput, ReplicaStatus, RequestId, WatchId};
