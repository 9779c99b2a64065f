//! The crate's error type.

use ballot_core::NodeId;

/// Errors of ballot-pbft.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PbftError {
    /// A configuration value is out of range; nothing was built.
    #[error("invalid configuration: `{field}` {reason}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The membership is not usable (this replica is not a voter, or there are none).
    #[error("invalid membership: {0}")]
    InvalidMembership(&'static str),
    /// The durable state handed to the constructor contradicts itself; the replica must
    /// not start from it.
    #[error("recovered state is inconsistent: {0}")]
    CorruptRecovery(String),
    /// A peer's message was malformed, unauthenticated or out of bounds; it was dropped.
    #[error("rejected message from {from}: {reason}")]
    Rejected {
        /// The sender (the channel's identity).
        from: NodeId,
        /// What was wrong.
        reason: &'static str,
    },
}
