//! The simulator's error type.

/// Errors from setting up or driving a simulation. Protocol misbehaviour is not an
/// error but a [`Violation`](crate::Violation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// A configuration value is out of range or inconsistent.
    #[error("invalid simulation config: {0}")]
    InvalidConfig(String),
    /// The algorithm's factory refused to build a replica (for example from its own
    /// durable state after a restart).
    #[error("could not build replica {node}: {reason}")]
    Build {
        /// The replica.
        node: ballot_core::NodeId,
        /// The factory's error, rendered.
        reason: String,
    },
    /// An action named a node that is not part of the simulated cluster.
    #[error("unknown node {0}: the simulated cluster has no such node")]
    UnknownNode(ballot_core::NodeId),
    /// Bytes that should hold a KV command or snapshot could not be decoded.
    #[error("could not decode {what}: {detail}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's error.
        detail: String,
    },
    /// A checker found a broken invariant (or the run could not go on).
    #[error("{0}")]
    Violation(Box<crate::Violation>),
    /// An algorithm name the simulator does not know.
    #[error("unknown algorithm {0:?}: expected one of {1}")]
    UnknownAlgorithm(String, String),
}
