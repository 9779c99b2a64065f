//! Messages between Multi-Paxos replicas.

use ballot_core::{NodeId, SnapshotMeta};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{Ballot, Entry, Value};

/// A message between Multi-Paxos replicas. Ballots name their proposer, so a message
/// carrying a leader's or candidate's ballot is refused unless it comes from that node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Pre-vote probe: would you promise `ballot`? Changes nothing durable.
    PrePrepare {
        /// The ballot the sender would prepare.
        ballot: Ballot,
    },
    /// Answer to [`Message::PrePrepare`].
    PrePromise {
        /// The probed ballot.
        ballot: Ballot,
        /// Whether the acceptor would promise it (it is higher than its promise and the
        /// acceptor has not heard from a live leader recently).
        granted: bool,
        /// The acceptor's promise, so a refused prober can pick a higher round.
        promised: Ballot,
    },
    /// Phase 1a for every slot from `from_slot` on.
    Prepare {
        /// The candidate's ballot.
        ballot: Ballot,
        /// The first slot the candidate does not know decided.
        from_slot: u64,
    },
    /// Phase 1b: the (durable) promise, with the accepted slots `>= from_slot` that this
    /// acceptor does not know decided. Long answers come in pages: `more` is the
    /// `from_slot` to ask for next.
    Promise {
        /// The ballot promised.
        ballot: Ballot,
        /// The `from_slot` this page answers.
        from_slot: u64,
        /// The acceptor's decided prefix; slots up to it are left out.
        decided: u64,
        /// Accepted, undecided slots, in slot order.
        entries: Vec<Entry>,
        /// Where the next page starts, if there is one.
        more: Option<u64>,
    },
    /// Phase 2a for consecutive slots `first_slot..first_slot + values.len()`.
    Accept {
        /// The leader's ballot.
        ballot: Ballot,
        /// The first slot.
        first_slot: u64,
        /// One value per slot.
        values: Vec<Value>,
        /// The leader's decided prefix (commit notification).
        commit: u64,
        /// The leader's read/lease round, echoed in [`Message::Accepted`].
        seq: u64,
    },
    /// Phase 2b: the acceptor durably accepted slots `first_slot..=last_slot` in `ballot`.
    Accepted {
        /// The ballot.
        ballot: Ballot,
        /// The first slot.
        first_slot: u64,
        /// The last slot.
        last_slot: u64,
        /// Echo of the Accept's round.
        seq: u64,
    },
    /// `ballot` was refused: the acceptor promised `promised`, or (when `promised <
    /// ballot`) it still follows a live leader.
    Nack {
        /// The refused ballot.
        ballot: Ballot,
        /// The acceptor's promise.
        promised: Ballot,
        /// The leader the acceptor follows, if any.
        leader: Option<NodeId>,
    },
    /// Commit notification: every slot up to `commit` is decided.
    Commit {
        /// The leader's ballot.
        ballot: Ballot,
        /// The leader's decided prefix.
        commit: u64,
    },
    /// Leader heartbeat, also a read/lease round.
    Heartbeat {
        /// The leader's ballot.
        ballot: Ballot,
        /// The leader's decided prefix.
        commit: u64,
        /// The round, echoed in [`Message::HeartbeatAck`].
        seq: u64,
    },
    /// The acceptor still accepts `ballot` (it promised nothing higher).
    HeartbeatAck {
        /// The leader's ballot.
        ballot: Ballot,
        /// The echoed round.
        seq: u64,
        /// The acceptor's decided prefix.
        commit: u64,
    },
    /// A lagging replica asks for decided slots `from_slot..=to_slot`.
    CatchUp {
        /// The first missing slot.
        from_slot: u64,
        /// The last slot wanted.
        to_slot: u64,
    },
    /// Decided slots from `entries[0].slot` on (empty if the sender has none).
    CatchUpReply {
        /// Consecutive decided entries.
        entries: Vec<Entry>,
        /// The sender's decided prefix.
        commit: u64,
    },
    /// One chunk of a snapshot, for a replica that needs slots compacted away.
    Snapshot {
        /// The snapshot's metadata (boxed: it is rare and large, and every message is as
        /// big as the largest variant).
        meta: Box<SnapshotMeta>,
        /// The size of the whole snapshot data.
        total: u64,
        /// Where this chunk starts.
        offset: u64,
        /// The chunk.
        data: Bytes,
    },
    /// Cumulative acknowledgement of snapshot `index`: the receiver holds `offset` bytes
    /// (`offset == total` once installed).
    SnapshotAck {
        /// The snapshot's index.
        index: u64,
        /// Bytes received in order.
        offset: u64,
    },
}

impl Message {
    /// The ballot a proposer-issued message carries, which must name its sender.
    pub(crate) fn proposer_ballot(&self) -> Option<Ballot> {
        match self {
            Message::PrePrepare { ballot }
            | Message::Prepare { ballot, .. }
            | Message::Accept { ballot, .. }
            | Message::Commit { ballot, .. }
            | Message::Heartbeat { ballot, .. } => Some(*ballot),
            _ => None,
        }
    }
}
