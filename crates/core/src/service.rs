//! The service side of the log: the contract between the driver and a replicated
//! service (the database, the configuration service, the election service), and the
//! client-session table that makes retried writes apply exactly once.
//!
//! Everything here is deterministic: every replica applies the same commands in the same
//! order and reaches the same state, including the session table.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Instant, Payload};

/// How the driver must serve a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// A state change: ordered through the log, then [`StateMachine::apply`]d everywhere.
    Write,
    /// A read served by [`StateMachine::query`]: linearizable reads wait for a read
    /// barrier (ReadIndex); serializable ones are served from the local replica's state
    /// at once.
    Read(Consistency),
    /// A stream of [`StateMachine::Event`]s (watch, observe), served by any replica:
    /// first [`StateMachine::watch_start`], then every applied event that
    /// [`StateMachine::watch_matches`].
    Watch,
    /// Leader-local, not logged (lease keep-alives): [`StateMachine::leader_request`] on the
    /// leader once a read barrier confirmed its leadership after the request arrived (so
    /// a deposed leader cannot answer); other replicas answer "not leader".
    Leader,
}

impl Route {
    /// How a request of this route is served under the protocol's client `rule`. Under
    /// a Byzantine protocol ([`ClientRule::Matching`](crate::ClientRule::Matching)) no
    /// single replica's clock or word is the cluster's: a leader-local request (a lease
    /// keep-alive) is ordered like a write, and the service answers it from time the
    /// replicas agreed on ([`StateMachine::apply_time`]). Hosts, clients and simulators
    /// all route through this.
    #[must_use]
    pub fn under(self, rule: crate::ClientRule) -> Route {
        match (self, rule) {
            (Route::Leader, crate::ClientRule::Matching { .. }) => Route::Write,
            (route, _) => route,
        }
    }
}

/// How fresh a read must be ([`Route::Read`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Consistency {
    /// The read observes every write acknowledged before it began (a read barrier
    /// through the leader). The default.
    #[default]
    Linearizable,
    /// The read is served at once from whichever replica receives it; it may miss
    /// recent writes, but is cheaper and works without a leader.
    Serializable,
}

/// Metadata carried by service responses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Header {
    /// The service's revision when the request was served: the number of state-changing
    /// writes applied so far (a write's response carries the revision it created).
    pub revision: u64,
}

/// Why a service refuses a request before or instead of running it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    /// The request is malformed or breaks a rule of the service.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A key, value or request is over the service's limit.
    #[error("{what} of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// What was too large ("key", "value", "request").
        what: String,
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The requested history was compacted away; restart from `compact_revision` or later.
    #[error("revision compacted: history before revision {compact_revision} is gone")]
    Compacted {
        /// The oldest revision still available.
        compact_revision: u64,
    },
}

impl Rejection {
    /// `Err(`[`Rejection::TooLarge`]`)` naming `what` if `size` exceeds `max`.
    ///
    /// # Errors
    /// When `size > max`.
    pub fn check_size(what: &str, size: usize, max: usize) -> Result<(), Rejection> {
        if size > max { Err(Rejection::TooLarge { what: what.to_owned(), size, max }) } else { Ok(()) }
    }
}

/// A deterministic replicated service.
///
/// The driver decodes client requests, asks [`route`](Self::route) how to serve each,
/// orders writes through consensus and calls [`apply`](Self::apply) on every replica in
/// log order. Snapshots serialize the whole state.
pub trait StateMachine: Send + 'static {
    /// A client request.
    type Request: Payload;
    /// The reply to a request.
    type Response: Payload;
    /// An item pushed on a watch stream.
    type Event: Payload;

    /// How to serve `request`.
    fn route(request: &Self::Request) -> Route;

    /// A short name of the request's operation ("put", "range", …) for metrics and logs.
    fn operation(request: &Self::Request) -> &'static str {
        let _ = request;
        "request"
    }

    /// Checks limits and well-formedness before anything is logged.
    ///
    /// # Errors
    /// A [`Rejection`] the client sees as a clear error.
    fn validate(&self, request: &Self::Request) -> Result<(), Rejection>;

    /// Applies a committed write at log `index`; returns the reply and the events it
    /// produced for watchers. Must be deterministic.
    fn apply(&mut self, index: u64, request: Self::Request) -> (Self::Response, Vec<Self::Event>);

    /// Notes that `index` was applied without a command of this service (a no-op or a
    /// membership entry), so revisions or indexes can stay in step. Default: nothing.
    fn apply_internal(&mut self, index: u64) {
        let _ = index;
    }

    /// Whether the service needs time the replicas agree on (leases, TTLs). Under a
    /// Byzantine protocol no replica's clock is trusted alone: when this is true the
    /// protocol orders time with the commands ([`Apply::Time`](crate::Apply::Time)) and
    /// the host calls [`apply_time`](Self::apply_time). Default: false.
    fn wants_agreed_time() -> bool {
        false
    }

    /// Applies agreed time `unix_ms` (milliseconds since the Unix epoch) ordered at log
    /// `index`; returns the events it produced (leases that expired). Must be
    /// deterministic, and must not move the service's clock backwards. Default: notes
    /// the index like [`apply_internal`](Self::apply_internal).
    fn apply_time(&mut self, index: u64, unix_ms: u64) -> Vec<Self::Event> {
        let _ = unix_ms;
        self.apply_internal(index);
        Vec::new()
    }

    /// The earliest agreed time (ms since the Unix epoch) at which applying a time would
    /// change the state (a lease's deadline); `None` if none would. The host passes it to
    /// the protocol ([`Protocol::time_wanted`](crate::Protocol::time_wanted)).
    /// Default: `None`.
    fn agreed_deadline(&self) -> Option<u64> {
        None
    }

    /// Answers a read from the current state.
    fn query(&self, request: &Self::Request) -> Self::Response;

    /// The events a new watch starts with (history from its start revision).
    ///
    /// # Errors
    /// [`Rejection::Compacted`] if that history is gone.
    fn watch_start(&self, request: &Self::Request) -> Result<Vec<Self::Event>, Rejection>;

    /// Whether a live `event` belongs on the watch opened by `request`.
    fn watch_matches(&self, request: &Self::Request, event: &Self::Event) -> bool;

    /// Serves a [`Route::Leader`] request on the leader at time `now`.
    fn leader_request(&mut self, now: Instant, request: &Self::Request) -> Self::Response {
        let _ = now;
        self.query(request)
    }

    /// Called periodically on every replica with whether it leads; returns writes the
    /// service wants to propose itself (for example, revoking expired leases).
    fn tick(&mut self, now: Instant, is_leader: bool) -> Vec<Self::Request> {
        let _ = (now, is_leader);
        Vec::new()
    }

    /// Serializes the whole state.
    fn snapshot(&self) -> Vec<u8>;

    /// Replaces the whole state with a snapshot.
    ///
    /// # Errors
    /// [`RestoreError`] saying why the snapshot cannot be decoded; the state is then
    /// unchanged.
    fn restore(&mut self, data: &[u8]) -> Result<(), RestoreError>;
}

/// A snapshot a service cannot restore from.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot restore the service from a snapshot: {0}")]
pub struct RestoreError(pub String);

/// A client session: a client id chosen at random by the client and a sequence number
/// that increases by one per distinct write. A retried write reuses its sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Session {
    /// The client.
    pub client: u64,
    /// The write's number within the client's session.
    pub seq: u64,
}

/// What the log carries for a service write.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Command<R> {
    /// The session, for exactly-once application of retried writes.
    pub session: Option<Session>,
    /// The service request.
    pub request: R,
}

/// Remembers the last write of each client session and its reply, so that a retried
/// write is answered from the table instead of being applied twice.
///
/// Bounded: when more than `capacity` clients are tracked, the one whose last write is
/// oldest (by log index) is forgotten, deterministically on every replica.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionTable<R> {
    capacity: usize,
    // Ordered maps: replicas with the same table encode it to the same bytes (snapshot
    // digests, PBFT checkpoints).
    last: BTreeMap<u64, (u64, u64, R)>,
    by_index: BTreeMap<u64, u64>,
}

/// What [`SessionTable::check`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionCheck<'a, R> {
    /// A new write: apply it.
    Fresh,
    /// A retry of the client's latest write: answer with the stored reply.
    Duplicate(&'a R),
    /// A retry of an older write whose reply is no longer kept.
    Stale,
}

impl<R: Clone> SessionTable<R> {
    /// A table tracking at most `capacity` clients.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        SessionTable { capacity: capacity.max(1), last: BTreeMap::new(), by_index: BTreeMap::new() }
    }

    /// Classifies a write of `session`.
    #[must_use]
    pub fn check(&self, session: Session) -> SessionCheck<'_, R> {
        match self.last.get(&session.client) {
            Some((seq, _, reply)) if *seq == session.seq => SessionCheck::Duplicate(reply),
            Some((seq, _, _)) if *seq > session.seq => SessionCheck::Stale,
            _ => SessionCheck::Fresh,
        }
    }

    /// Records the reply to a fresh write applied at `index`.
    pub fn record(&mut self, session: Session, index: u64, reply: R) {
        if let Some((_, old_index, _)) = self.last.insert(session.client, (session.seq, index, reply)) {
            self.by_index.remove(&old_index);
        }
        self.by_index.insert(index, session.client);
        while self.last.len() > self.capacity {
            let Some((_, client)) = self.by_index.pop_first() else { break };
            self.last.remove(&client);
        }
    }

    /// How many clients are tracked.
    #[must_use]
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether no client is tracked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_answered_from_the_table() {
        let mut t = SessionTable::new(10);
        let s = Session { client: 7, seq: 1 };
        assert_eq!(t.check(s), SessionCheck::Fresh);
        t.record(s, 5, "ok".to_string());
        assert_eq!(t.check(s), SessionCheck::Duplicate(&"ok".to_string()));
        let s2 = Session { client: 7, seq: 2 };
        assert_eq!(t.check(s2), SessionCheck::Fresh);
        t.record(s2, 9, "two".to_string());
        assert_eq!(t.check(s), SessionCheck::Stale);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn evicts_the_least_recently_written_client() {
        let mut t = SessionTable::new(2);
        t.record(Session { client: 1, seq: 1 }, 1, ());
        t.record(Session { client: 2, seq: 1 }, 2, ());
        t.record(Session { client: 1, seq: 2 }, 3, ());
        t.record(Session { client: 3, seq: 1 }, 4, ());
        assert_eq!(t.len(), 2);
        assert_eq!(t.check(Session { client: 2, seq: 1 }), SessionCheck::Fresh, "client 2 was evicted");
        assert_eq!(t.check(Session { client: 1, seq: 2 }), SessionCheck::Duplicate(&()));
    }
}
