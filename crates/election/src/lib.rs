//! ballot's leader-election service for outside processes: leases, named elections with
//! queued candidates, and fencing tokens — the deterministic state machine behind
//! `ballot-electiond`, for users of etcd's election API or ZooKeeper's leader recipe.
//!
//! A client [`Grant`](ElectionRequest::Grant)s a lease with a TTL and keeps it alive
//! ([`KeepAlive`](ElectionRequest::KeepAlive), about every TTL/3, served by the leader
//! alone). It [`Campaign`](ElectionRequest::Campaign)s in a named election with that
//! lease: if nobody leads it is elected at once, otherwise it waits in a queue, in log
//! order. It then [`Observe`](ElectionRequest::Observe)s the election until the leader is
//! its own lease. When a leader [`Resign`](ElectionRequest::Resign)s or its lease is
//! revoked or expires, the next queued candidate leads. Every leadership carries a
//! **fencing token** greater than every earlier one, service-wide.
//!
//! Lease ids and tokens are functions of the log. Deadlines are not: they live only on
//! the leader, which proposes revocations of expired leases from
//! [`tick`](ballot_core::service::StateMachine::tick), and a new leader restarts every
//! lease's full TTL so a failover never expires a live client early.
//!
//! Use [`ElectionService`] as the service of a `ballot-node` driver; the client library
//! and CLI use the request, response and event types. It does no IO and reads no clock.
//!
//! ```
//! use ballot_core::Instant;
//! use ballot_core::service::StateMachine;
//! use ballot_election::{ElectionRequest, ElectionResponse, ElectionService, LeaseId};
//! use bytes::Bytes;
//!
//! let mut svc = ElectionService::new();
//! // Log index 1 grants lease 1, index 2 lease 2.
//! svc.apply(1, ElectionRequest::Grant { ttl_ms: 5_000 });
//! svc.apply(2, ElectionRequest::Grant { ttl_ms: 5_000 });
//! let campaign = |lease, value: &str| ElectionRequest::Campaign {
//!     election: "scheduler".into(),
//!     lease: LeaseId(lease),
//!     value: Bytes::copy_from_slice(value.as_bytes()),
//! };
//! let (first, _) = svc.apply(3, campaign(1, "host-a"));
//! let ElectionResponse::Elected { leader, .. } = first else { panic!("nobody led") };
//! let (second, _) = svc.apply(4, campaign(2, "host-b"));
//! assert!(matches!(second, ElectionResponse::Queued { ahead: 0, .. }));
//!
//! // On the leader, lease 2 keeps alive but lease 1 falls silent: 5 s later the
//! // leader's tick proposes to revoke it.
//! assert!(svc.tick(Instant::from_millis(0), true).is_empty());
//! let keep_alive = ElectionRequest::KeepAlive { lease: LeaseId(2) };
//! let reply = svc.leader_request(Instant::from_millis(3_000), &keep_alive);
//! assert_eq!(reply, ElectionResponse::KeptAlive { lease: LeaseId(2), ttl_ms: 5_000 });
//! let revokes = svc.tick(Instant::from_millis(5_000), true);
//! assert_eq!(revokes, [ElectionRequest::Revoke { lease: LeaseId(1) }]);
//! let (_, events) = svc.apply(5, revokes[0].clone());
//! let next = events[0].leader.as_ref().expect("host-b leads");
//! assert_eq!(next.lease, LeaseId(2));
//! assert!(next.token > leader.token, "fencing tokens only grow");
//! ```

mod api;
mod service;

pub use api::{
    ElectionRequest, ElectionResponse, LeaderEvent, Leadership, LeaseId, MAX_CAMPAIGNS_PER_LEASE, MAX_LEASES,
    MAX_NAME_SIZE, MAX_TTL_MS, MAX_VALUE_SIZE, MIN_TTL_MS,
};
pub use service::{ElectionService, REVOKE_RETRY};

/// Why an election snapshot cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    /// The snapshot's bytes do not decode.
    #[error("the election snapshot does not decode: {0}")]
    SnapshotDecode(#[from] postcard::Error),
    /// The snapshot was written in a format this version does not read.
    #[error("election snapshot format {found} is not supported (this version reads format {supported})")]
    SnapshotFormat {
        /// The snapshot's format.
        found: u8,
        /// The format this version reads.
        supported: u8,
    },
    /// The snapshot decodes but describes an impossible state.
    #[error("corrupt election snapshot: {0}")]
    CorruptSnapshot(String),
}
