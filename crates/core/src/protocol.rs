//! The sans-IO contract every consensus algorithm implements.

use std::fmt::Debug;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Instant, Membership, NodeId, PersistId, ProposalId, ReadId};

/// Bounds every protocol message, log entry and hard-state type meets: cloneable for
/// the simulator, serializable for the wire and the disk.
pub trait Payload: Clone + Debug + Serialize + DeserializeOwned + Send + 'static {}
impl<T: Clone + Debug + Serialize + DeserializeOwned + Send + 'static> Payload for T {}

/// A record of a protocol's durable log. Storage keys entries by [`index`](Self::index).
pub trait LogEntry: Payload {
    /// Position in the log (or slot, for Paxos); unique within one log.
    fn index(&self) -> u64;
}

/// A deterministic consensus state machine with no IO (sans-IO).
///
/// The caller (the async driver `ballot-node`, or the simulator `ballot-sim`) owns the
/// clock, the network and the disk:
///
/// 1. **Inputs** are method calls that carry `now`: [`handle_message`], [`handle_timeout`],
///    [`propose`], [`read`], [`persisted`] and [`compact`].
/// 2. After any input the caller **drains** [`poll_output`] until it returns `None`, then
///    asks [`poll_timeout`] when to call [`handle_timeout`] next.
/// 3. Outputs are carried out as follows: [`Output::Persist`] batches are written to
///    stable storage *in order*, each atomically, and acknowledged with
///    [`persisted`](Protocol::persisted) once durable (acknowledging an id acknowledges all
///    earlier ones, so storage may group-commit); [`Output::Send`] messages go to peers in
///    any order and may be lost; [`Output::Apply`] items go to the service state machine
///    in the order they are polled.
///
/// **Durability ordering is the protocol's job**: a message that may only leave after a
/// write is durable — a vote, an append acknowledgement, a Paxos promise — is not
/// returned from `poll_output` until the matching `persisted` call. A caller that sends
/// every `Send` as soon as it is polled cannot break safety.
///
/// [`handle_message`]: Protocol::handle_message
/// [`handle_timeout`]: Protocol::handle_timeout
/// [`propose`]: Protocol::propose
/// [`read`]: Protocol::read
/// [`persisted`]: Protocol::persisted
/// [`compact`]: Protocol::compact
/// [`poll_output`]: Protocol::poll_output
/// [`poll_timeout`]: Protocol::poll_timeout
pub trait Protocol {
    /// Messages exchanged between replicas.
    type Message: Payload;
    /// Records of the durable log.
    type Entry: LogEntry;
    /// Small durable state written as a whole (Raft's term and vote; a Paxos promise).
    type HardState: Payload + Default + PartialEq;

    /// This replica's id.
    fn id(&self) -> NodeId;

    /// A message from peer `from` arrived.
    fn handle_message(&mut self, now: Instant, from: NodeId, message: Self::Message);

    /// Time has reached (or passed) the deadline last returned by [`poll_timeout`](Self::poll_timeout).
    /// Calling it early is harmless: the protocol checks its deadlines against `now`.
    fn handle_timeout(&mut self, now: Instant);

    /// The next instant at which [`handle_timeout`](Self::handle_timeout) must be called,
    /// or `None` if no timer is armed.
    #[must_use]
    fn poll_timeout(&self) -> Option<Instant>;

    /// Submits a client command for ordering.
    ///
    /// `Ok` means it was accepted for replication, not that it committed: the outcome
    /// arrives as [`Apply::Command`] with `proposal == Some(id)` on this node, or as
    /// [`Output::ProposalFailed`]. A command that was accepted may still commit after
    /// this node lost leadership, or be lost; clients retry through sessions.
    ///
    /// # Errors
    /// [`ProposeError::NotLeader`] with a hint where this node cannot order commands, and
    /// the other variants of [`ProposeError`] for overload and shutdown.
    fn propose(&mut self, now: Instant, id: ProposalId, command: Bytes) -> Result<(), ProposeError>;

    /// Asks for a linearizable read barrier. When it is safe to answer a read from the
    /// service state once it has applied up to some index, the protocol emits
    /// [`Output::ReadReady`] with that index; or [`Output::ReadFailed`].
    ///
    /// # Errors
    /// As for [`propose`](Self::propose).
    fn read(&mut self, now: Instant, id: ReadId) -> Result<(), ProposeError>;

    /// Every [`Persist`] batch up to and including `id` is durable.
    fn persisted(&mut self, now: Instant, id: PersistId);

    /// The service state machine has serialized its state after applying everything up
    /// to `index` into `data`. The protocol records the snapshot, emits a [`Persist`] that
    /// saves it and drops log entries up to `index`, and uses it to catch up peers that
    /// have fallen behind the compacted log.
    fn compact(&mut self, now: Instant, index: u64, data: Bytes);

    /// The service's state after applying everything up to `index` is `state` (the
    /// bytes [`compact`](Self::compact) would receive at `index`), whose SHA-256 is
    /// `digest`: the host's answer to [`Apply::Checkpoint`]. A protocol that transfers
    /// state between replicas (PBFT) keeps `state` to send it to a lagging replica, which
    /// checks it against a digest certified by a quorum. Protocols that never ask (Raft,
    /// Multi-Paxos) ignore it.
    fn checkpoint(&mut self, now: Instant, index: u64, digest: [u8; 32], state: Bytes) {
        let _ = (now, index, digest, state);
    }

    /// The service's next deadline in agreed time (milliseconds since the Unix epoch;
    /// `None`: nothing is due): a protocol that orders time ([`Apply::Time`]) orders a
    /// time at or past it once its clock reaches it, even if no request arrives, so that
    /// an idle cluster still expires leases. The host tells it every tick. Others ignore it.
    fn time_wanted(&mut self, now: Instant, unix_ms: Option<u64>) {
        let _ = (now, unix_ms);
    }

    /// What a client needs before it accepts an answer from this cluster.
    #[must_use]
    fn client_rule(&self) -> ClientRule {
        ClientRule::Leader
    }

    /// The service command inside `command`, the bytes a client sent: `command` itself,
    /// unless this protocol's clients wrap their commands (PBFT's signed requests carry
    /// the client's certificate and signature around it). The host decodes the service
    /// request from the body, and proposes `command` whole.
    ///
    /// # Errors
    /// Why `command` is not a request of this protocol's clients (for the client).
    fn request_body(&self, command: &Bytes) -> Result<Bytes, String> {
        Ok(command.clone())
    }

    /// The next output, or `None` when there is nothing to do until the next input.
    #[must_use]
    fn poll_output(&mut self) -> Option<Output<Self::Message, Self::Entry, Self::HardState>>;

    /// A snapshot of this replica's view, for status pages, metrics and tests.
    #[must_use]
    fn status(&self) -> Status;

    /// How many messages from other replicas this replica has refused since it started,
    /// by reason, for metrics: a Byzantine protocol counts forged, altered and misplaced
    /// messages (and stale ones, which loss and restarts produce in a correct cluster
    /// too). By default none are counted.
    #[must_use]
    fn refusals(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// What a client needs before it accepts an answer: declared by the protocol, honoured
/// by `ballot-client`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ClientRule {
    /// The answer of the node it asked (the leader, or one it was redirected to): crash
    /// faults only, a node's answer is the cluster's.
    #[default]
    Leader,
    /// Matching answers from distinct replicas: `writes` of them for a write, `reads`
    /// for a read (PBFT: 2f+1 of 3f+1 for both; f+1 would show a write is correct, but
    /// reads served without ordering them are linearizable only if every accepted write
    /// executed at f+1 correct replicas).
    Matching {
        /// Matching replies a write needs.
        writes: usize,
        /// Matching replies a read needs.
        reads: usize,
    },
}

impl ClientRule {
    /// The rule of a Byzantine fault tolerant cluster of `replicas`: 2f+1 matching
    /// replies for writes and unordered reads alike, with f = (n-1)/3. Unordered reads
    /// are answered from each replica's executed state; a write accepted on f+1 replies
    /// may have executed at one correct replica only, and a later read's 2f+1 repliers
    /// could all have missed it. With 2f+1 on both sides the quorums share a correct
    /// replica that executed the write (Castro and Liskov, TOCS 2002, section 5.1.3).
    ///
    /// ```
    /// assert_eq!(ballot_core::ClientRule::byzantine(4), ballot_core::ClientRule::Matching { writes: 3, reads: 3 });
    /// ```
    #[must_use]
    pub const fn byzantine(replicas: usize) -> Self {
        let quorum = crate::Quorum::Byzantine.size(replicas);
        ClientRule::Matching { writes: quorum, reads: quorum }
    }
}

/// What a protocol asks its caller to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Output<M, E, H> {
    /// Send `message` to peer `to`. Delivery is best-effort: the protocol retransmits.
    Send {
        /// The destination.
        to: NodeId,
        /// The message.
        message: M,
    },
    /// Write this batch atomically to stable storage, after all earlier batches, and
    /// acknowledge it with [`Protocol::persisted`] once durable.
    Persist(Persist<E, H>),
    /// Hand this committed item to the service state machine.
    Apply(Apply),
    /// The read [`ReadId`] may be answered once the service has applied `index`.
    ReadReady {
        /// The read.
        id: ReadId,
        /// The index the service must have applied first.
        index: u64,
    },
    /// The read [`ReadId`] cannot be served here (lost leadership, timed out).
    ReadFailed {
        /// The read.
        id: ReadId,
        /// Why.
        error: ProposeError,
    },
    /// The proposal will not commit through this node (for example, it was still
    /// unreplicated when this node stepped down and a new leader overwrote it).
    ProposalFailed {
        /// The proposal.
        id: ProposalId,
        /// Why.
        error: ProposeError,
    },
    /// Something the driver reports or exports as a metric.
    Event(Event),
}

/// One atomic, ordered write to stable storage.
///
/// Storage applies the parts in this order: `snapshot`, `truncate_from`, `entries`,
/// `compact_to`, `hard_state`; all or nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct Persist<E, H> {
    /// Acknowledge with [`Protocol::persisted`] once durable.
    pub id: PersistId,
    /// Replace the stored snapshot. Boxed: snapshots are rare and every other batch (and
    /// every [`Output`] carrying one) would otherwise pay for the inline space.
    pub snapshot: Option<Box<Snapshot>>,
    /// Delete every entry with index `>=` this first (a conflicting suffix).
    pub truncate_from: Option<u64>,
    /// Insert or overwrite these entries, keyed by [`LogEntry::index`].
    pub entries: Vec<E>,
    /// Delete every entry with index `<=` this (covered by the snapshot).
    pub compact_to: Option<u64>,
    /// Replace the hard state.
    pub hard_state: Option<H>,
}

impl<E, H> Persist<E, H> {
    /// An empty batch with id `id`.
    #[must_use]
    pub fn new(id: PersistId) -> Self {
        Persist { id, snapshot: None, truncate_from: None, entries: Vec::new(), compact_to: None, hard_state: None }
    }

    /// Whether the batch changes nothing (it still needs acknowledging).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none()
            && self.truncate_from.is_none()
            && self.entries.is_empty()
            && self.compact_to.is_none()
            && self.hard_state.is_none()
    }
}

/// A serialized service state after applying everything up to `meta.index`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Where the snapshot stands in the log.
    pub meta: SnapshotMeta,
    /// The service's serialized state; opaque to protocols and storage.
    pub data: Bytes,
}

/// Where a snapshot stands in the log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The last log index the snapshot covers.
    pub index: u64,
    /// The term (or ballot round) of the entry at `index`; 0 where the protocol has none.
    pub term: u64,
    /// The membership in force at `index`.
    pub membership: Membership,
}

/// A committed item for the service state machine, in log order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Apply {
    /// A client command committed at `index`.
    Command {
        /// Its log index.
        index: u64,
        /// The command, as proposed.
        command: Bytes,
        /// `Some` on the node that proposed it (in the same incarnation).
        proposal: Option<ProposalId>,
    },
    /// A protocol-internal entry (a no-op, a membership change) committed at `index`;
    /// services only note that `index` is applied.
    Internal {
        /// Its log index.
        index: u64,
    },
    /// Replace the whole service state with this snapshot (a lagging replica caught up
    /// by snapshot, or a restart from one). Boxed, so that the frequent variants (and
    /// the [`Output`]s carrying them) stay small.
    Restore(Box<Snapshot>),
    /// Everything up to `index` is applied: answer with the digest of the service state
    /// through [`Protocol::checkpoint`] (PBFT's checkpoints).
    Checkpoint {
        /// The index the digest is taken at.
        index: u64,
    },
    /// Time the replicas agreed on, ordered at `index` (PBFT with an agreed clock): the
    /// service's clock moves to `unix_ms` (never backwards) before the commands that
    /// follow. Every correct replica applies the same times at the same indexes, so
    /// leases can expire deterministically.
    Time {
        /// Its log index.
        index: u64,
        /// Milliseconds since the Unix epoch, as proposed by the primary and checked by
        /// the backups against their own clocks.
        unix_ms: u64,
    },
}

impl Apply {
    /// The log index this item brings the service to.
    #[must_use]
    pub fn index(&self) -> u64 {
        match self {
            Apply::Command { index, .. }
            | Apply::Internal { index }
            | Apply::Checkpoint { index }
            | Apply::Time { index, .. } => *index,
            Apply::Restore(s) => s.meta.index,
        }
    }
}

/// Events for status, metrics and services.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The known leader (or primary) changed. `term` is the term, view or ballot round
    /// in which it leads.
    LeaderChanged {
        /// The new leader, if known.
        leader: Option<NodeId>,
        /// Its term.
        term: u64,
    },
    /// This replica's role changed.
    RoleChanged(Role),
    /// The membership in force changed.
    MembershipChanged(Membership),
}

/// The role a replica plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Follows a leader (Raft follower, Paxos acceptor, PBFT backup).
    Follower,
    /// Probing whether it could win an election before disturbing anyone (Raft's
    /// PreVote, Multi-Paxos's probe).
    PreCandidate,
    /// Running for leadership (Raft candidate, Paxos proposer in phase 1, a PBFT
    /// replica in a view change).
    Candidate,
    /// Orders commands (Raft leader, Multi-Paxos distinguished proposer, PBFT primary).
    Leader,
    /// Receives the log without voting.
    Learner,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Follower => "follower",
            Role::PreCandidate => "pre-candidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
            Role::Learner => "learner",
        })
    }
}

/// A replica's view of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// This replica.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// The current term, view or ballot round.
    pub term: u64,
    /// The highest index known committed.
    pub commit_index: u64,
    /// The highest index handed out as [`Output::Apply`].
    pub applied_index: u64,
    /// The last index in the local log.
    pub last_index: u64,
    /// The index of the latest snapshot (entries up to it are compacted).
    pub snapshot_index: u64,
    /// The membership in force.
    pub membership: Membership,
}

/// Why a command or read was not accepted or did not complete.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
pub enum ProposeError {
    /// This replica does not order commands; `leader` is the one it knows, if any.
    #[error("not the leader{}", match .leader { Some(l) => format!(" (leader is {l})"), None => " (no leader known)".into() })]
    NotLeader {
        /// The leader this replica knows of.
        leader: Option<NodeId>,
    },
    /// Too many commands are in flight; retry later.
    #[error("busy: too many requests in flight, retry later")]
    Busy,
    /// The command is larger than the protocol accepts.
    #[error("command of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Leadership was lost before the request completed; it may or may not take effect.
    #[error("leadership lost before the request completed; outcome unknown, retry")]
    LeadershipLost,
    /// The replica cannot order commands for a while (a leadership transfer, a view
    /// change); retry shortly, here or elsewhere.
    #[error("unavailable: {0}; retry shortly")]
    Unavailable(String),
    /// The replica is shutting down or was removed from the cluster.
    #[error("replica is stopped")]
    Stopped,
}
