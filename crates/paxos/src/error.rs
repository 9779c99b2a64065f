//! The crate's error type.

use ballot_core::NodeId;

/// Errors of ballot-paxos.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaxosError {
    /// A configuration value is out of range; nothing was built.
    #[error("invalid configuration: `{field}` {reason}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The durable state handed to the constructor contradicts itself (for example, the
    /// hard state says slots are decided that the log does not hold). The replica must
    /// not start from it.
    #[error("recovered state is inconsistent: {0}")]
    CorruptRecovery(String),
    /// A peer sent a malformed or out-of-bounds message; it was dropped.
    #[error("invalid message from {from}: {reason}")]
    InvalidMessage {
        /// The sender.
        from: NodeId,
        /// What was wrong.
        reason: &'static str,
    },
}
