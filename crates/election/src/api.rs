//! The election service's requests, responses, events and limits.

use std::fmt;

use ballot_core::service::{Header, Rejection};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The shortest lease TTL, in milliseconds: shorter leases would expire during an
/// ordinary leader failover.
pub const MIN_TTL_MS: u64 = 1_000;
/// The longest lease TTL, in milliseconds (one day).
pub const MAX_TTL_MS: u64 = 24 * 60 * 60 * 1_000;
/// The longest election name, in bytes.
pub const MAX_NAME_SIZE: usize = 1024;
/// The largest value a campaigner publishes (typically its address), in bytes.
pub const MAX_VALUE_SIZE: usize = 64 * 1024;
/// The most leases alive at once.
pub const MAX_LEASES: usize = 100_000;
/// The most elections one lease campaigns in at once (as leader or queued).
pub const MAX_CAMPAIGNS_PER_LEASE: usize = 1_000;

/// A lease's id: the log index of its grant, unique for the life of the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeaseId(pub u64);

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An election service request.
///
/// `Grant`, `Revoke`, `Campaign` and `Resign` are writes ordered through the log;
/// `KeepAlive` and `TimeToLive` are served by the leader alone; `Leader` is a
/// linearizable read; `Observe` opens a stream of [`LeaderEvent`]s. Variant order is part
/// of the wire format: add new variants at the end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionRequest {
    /// Creates a lease that lives `ttl_ms` after its last keep-alive.
    Grant {
        /// The time to live, [`MIN_TTL_MS`]..=[`MAX_TTL_MS`].
        ttl_ms: u64,
    },
    /// Restarts a lease's time to live (send every TTL/3 or so).
    KeepAlive {
        /// The lease.
        lease: LeaseId,
    },
    /// Reports a lease's TTL and the time it has left.
    TimeToLive {
        /// The lease.
        lease: LeaseId,
    },
    /// Ends a lease at once: it resigns every election it leads and leaves every queue.
    Revoke {
        /// The lease.
        lease: LeaseId,
    },
    /// Runs for leader of `election` with `lease`: elected at once if nobody leads,
    /// otherwise queued behind earlier candidates. Campaigning again with the same lease
    /// changes nothing and reports the current standing.
    Campaign {
        /// The election (1..=[`MAX_NAME_SIZE`] bytes, no control characters).
        election: String,
        /// The campaigner's lease.
        lease: LeaseId,
        /// What the campaigner publishes as leader (at most [`MAX_VALUE_SIZE`] bytes).
        value: Bytes,
    },
    /// Gives up leadership of `election`, or leaves its queue.
    Resign {
        /// The election.
        election: String,
        /// The lease that campaigned.
        lease: LeaseId,
    },
    /// Reads the current leader of `election` (linearizable).
    Leader {
        /// The election.
        election: String,
    },
    /// Streams the leader of `election`: first the current one, then every change.
    Observe {
        /// The election.
        election: String,
    },
}

/// One leadership: who holds an election, and its fencing token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leadership {
    /// The leader's lease.
    pub lease: LeaseId,
    /// The value the leader published.
    pub value: Bytes,
    /// The fencing token: strictly greater than the token of every earlier leadership,
    /// of any election. Pass it to the resources the leader writes to, and have them
    /// refuse tokens lower than the highest they have seen.
    pub token: u64,
    /// The service revision at which this leadership began.
    pub revision: u64,
}

/// A change of an election's leader, as streamed to observers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderEvent {
    /// The election.
    pub election: String,
    /// The revision of the change (for the first event of a stream: the revision it was read at).
    pub revision: u64,
    /// The new leader, or `None` if nobody leads now.
    pub leader: Option<Leadership>,
}

/// The reply to an [`ElectionRequest`] (other than `Observe`, which streams events).
/// Variant order is part of the wire format: add new variants at the end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionResponse {
    /// A lease was created.
    Granted {
        /// The revision of the grant.
        header: Header,
        /// The new lease.
        lease: LeaseId,
        /// Its time to live.
        ttl_ms: u64,
    },
    /// The lease's time to live restarted.
    KeptAlive {
        /// The lease.
        lease: LeaseId,
        /// Its time to live, from now.
        ttl_ms: u64,
    },
    /// A lease's time to live.
    TimeToLive {
        /// The lease.
        lease: LeaseId,
        /// Its TTL.
        ttl_ms: u64,
        /// The time it has left unless kept alive.
        remaining_ms: u64,
    },
    /// The lease was revoked.
    Revoked {
        /// The revision of the revocation.
        header: Header,
        /// The lease.
        lease: LeaseId,
    },
    /// The campaigner leads the election.
    Elected {
        /// The revision after the campaign.
        header: Header,
        /// The election.
        election: String,
        /// Its leadership, with the fencing token.
        leader: Leadership,
    },
    /// The campaigner waits behind others; observe the election to learn when it leads.
    Queued {
        /// The revision after the campaign.
        header: Header,
        /// The election.
        election: String,
        /// The campaigner's lease.
        lease: LeaseId,
        /// How many candidates are ahead of it in the queue (the leader not counted).
        ahead: u64,
    },
    /// The lease gave up leadership or left the queue.
    Resigned {
        /// The revision of the resignation.
        header: Header,
        /// The election.
        election: String,
        /// The lease.
        lease: LeaseId,
        /// Whether it was leading (else it was queued).
        was_leader: bool,
    },
    /// The current leader of an election.
    Leader {
        /// The revision read at.
        header: Header,
        /// The election.
        election: String,
        /// Its leader, or `None` if nobody leads.
        leader: Option<Leadership>,
    },
    /// The lease does not exist: it was never granted, was revoked, or expired.
    LeaseNotFound {
        /// The lease.
        lease: LeaseId,
    },
    /// The leader has not applied the lease's grant yet (it has just taken over); retry
    /// shortly. If this persists, the lease id is wrong.
    LeaseNotYetApplied {
        /// The lease.
        lease: LeaseId,
    },
    /// The lease neither leads nor waits in the election.
    NotCandidate {
        /// The election.
        election: String,
        /// The lease.
        lease: LeaseId,
    },
    /// The request was refused when applied or served (it breaks a rule or a limit).
    Rejected(Rejection),
}
