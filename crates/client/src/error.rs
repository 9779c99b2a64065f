//! Errors of the client library.

use ballot_wire::ClientError;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cluster answered with an error (after retries, where retrying made sense).
    #[error("{0}")]
    Server(#[from] ClientError),
    /// No endpoint could be reached before the deadline; `last` is the last failure.
    #[error(
        "no ballot node reachable at {endpoints} before the deadline (last error: {last}); check that the cluster runs and the addresses are right"
    )]
    Unreachable {
        /// The endpoints tried.
        endpoints: String,
        /// The last connection error.
        last: String,
    },
    /// A write that may or may not have taken effect: an attempt reached a node and was
    /// never answered (or was answered "timed out" / "leader changed"), and no later
    /// attempt settled it before the deadline. Read the state to find out.
    #[error(
        "outcome unknown: the write may or may not have taken effect (an attempt reached a node and was not answered, and retries did not settle it before the deadline; last error: {last}); read the state to find out, or retry if the write is idempotent"
    )]
    OutcomeUnknown {
        /// The last failure seen.
        last: String,
    },
    /// The client's configuration is unusable (bad address, missing certificate, …).
    #[error("client configuration: {0}")]
    Config(String),
    /// TLS or QUIC setup failed.
    #[error(transparent)]
    Transport(#[from] ballot_quic::Error),
    /// The node sent something this client cannot decode (a version mismatch).
    #[error("cannot decode the node's answer: {0}; are client and server the same version?")]
    Decode(#[from] ballot_wire::WireError),
    /// The node answered with a reply of the wrong kind.
    #[error("unexpected reply from the node: {0}")]
    Unexpected(String),
}

impl Error {
    /// Whether the request may have taken effect despite the error.
    #[must_use]
    pub fn is_outcome_unknown(&self) -> bool {
        match self {
            Error::OutcomeUnknown { .. } => true,
            Error::Server(e) => e.is_outcome_unknown(),
            _ => false,
        }
    }

    /// The server's error, if it is one.
    #[must_use]
    pub fn server(&self) -> Option<&ClientError> {
        match self {
            Error::Server(e) => Some(e),
            _ => None,
        }
    }
}
