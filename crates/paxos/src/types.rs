//! Ballots, values, log entries and hard state shared by Synod and Multi-Paxos.

use std::fmt;

use ballot_core::{LogEntry, NodeId};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A proposal number: totally ordered by `round`, then by `node`, so two proposers never
/// use the same ballot. [`Ballot::ZERO`] is below every ballot a node can pick.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ballot {
    /// The round; a proposer picks one above every round it has seen.
    pub round: u64,
    /// The proposer that owns the ballot.
    pub node: NodeId,
}

impl Ballot {
    /// The lowest ballot (round 0, node 0), promised by a fresh acceptor.
    pub const ZERO: Ballot = Ballot { round: 0, node: NodeId(0) };

    /// Ballot `round` of `node`.
    #[must_use]
    pub const fn new(round: u64, node: NodeId) -> Self {
        Ballot { round, node }
    }
}

impl Default for Ballot {
    fn default() -> Self {
        Ballot::ZERO
    }
}

impl fmt::Debug for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b{}.{}", self.round, self.node.0)
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What a slot (or a Synod instance) decides.
///
/// A value does not name its proposer: a proposer recognises its own command by the
/// ballot it was decided in (see [`MultiPaxos`](crate::MultiPaxos) and
/// [`Synod`](crate::Synod)). That keeps every copy of a value — in the log, in each
/// write and in each Accept to each follower — as small as the command's `Bytes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    /// Nothing: fills a slot a previous leader left empty.
    Noop,
    /// A client command.
    Command {
        /// The command, opaque to Paxos.
        data: Bytes,
    },
}

impl Value {
    /// Approximate encoded size in bytes, for batching and flow control.
    #[must_use]
    pub fn size(&self) -> usize {
        match self {
            Value::Noop => 1,
            Value::Command { data } => data.len() + 8,
        }
    }

    /// The command bytes, or `None` for a no-op.
    #[must_use]
    pub fn command(&self) -> Option<&Bytes> {
        match self {
            Value::Noop => None,
            Value::Command { data } => Some(data),
        }
    }
}

/// A durable log record: the value this acceptor accepted for `slot`, and in which
/// ballot. A later accept of the same slot overwrites it (storage keys entries by slot,
/// insert-or-overwrite, and tolerates holes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The slot (the log index).
    pub slot: u64,
    /// The ballot in which the value was accepted.
    pub ballot: Ballot,
    /// The value.
    pub value: Value,
}

impl LogEntry for Entry {
    fn index(&self) -> u64 {
        self.slot
    }
}

/// The small durable state written as a whole.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// The highest ballot this acceptor promised: it accepts nothing lower.
    pub promised: Ballot,
    /// Every slot up to this one is decided and the local log holds its decided value.
    /// Written lazily; it may lag the in-memory commit index.
    pub decided: u64,
}
