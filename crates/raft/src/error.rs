//! The crate's error type.

use ballot_core::{NodeId, ProposeError};

/// Errors of ballot-raft: invalid configuration, inconsistent recovered state, invalid
/// membership changes, and requests this replica refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RaftError {
    /// A [`Config`](crate::Config) field has a value Raft cannot work with.
    #[error("invalid raft config: `{field}` {reason}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The [`Recovered`](ballot_core::Recovered) state contradicts itself (a gap in the
    /// log, entries from a term newer than the hard state, a commit index past the log).
    /// The store is damaged or was written by something else; the replica must not start.
    #[error("recovered raft state is inconsistent: {0}")]
    CorruptRecovery(String),
    /// A [`MembershipChange`](crate::MembershipChange) cannot be applied (it would leave
    /// no voters, or names a node twice).
    #[error("invalid membership change: {0}")]
    InvalidMembershipChange(String),
    /// Leadership can only be transferred to a voter of the current configuration.
    #[error("{0} is not a voter; leadership can only be transferred to a voter")]
    NotAVoter(NodeId),
    /// This replica refused the request in its current state (not the leader, a change
    /// or transfer in progress); the same conditions [`Protocol::propose`](ballot_core::Protocol::propose) reports.
    #[error(transparent)]
    Rejected(#[from] ProposeError),
}
