//! The crate's error type.

use std::path::PathBuf;

/// Why the node, its store or a message was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad flags, environment or config file.
    #[error("{0}")]
    Args(String),
    /// RocksDB refused or failed (see ballot-storage's errors).
    #[error(transparent)]
    Store(#[from] ballot_storage::Error),
    /// The data directory holds a store of another chain, or of another service.
    #[error("{dir} holds {detail}; refusing to use it: point --data-dir at an empty directory or this chain's store")]
    ForeignStore {
        /// The data directory.
        dir: PathBuf,
        /// What it holds.
        detail: String,
    },
    /// A stored record does not decode.
    #[error("stored {what} is corrupt: {detail}")]
    Corrupt {
        /// Which record.
        what: String,
        /// Why.
        detail: String,
    },
    /// A key file is missing, unreadable or malformed.
    #[error("key file {path}: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The QUIC endpoint failed.
    #[error(transparent)]
    Transport(#[from] ballot_quic::Error),
    /// The HTTP port could not be bound or served.
    #[error("HTTP on {addr}: {source}")]
    Http {
        /// The address.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The chain state machine refused its parameters.
    #[error("chain: {0}")]
    Chain(#[from] ballot_pow::PowError),
    /// A peer message does not decode.
    #[error("undecodable message: {0}")]
    Decode(#[from] ballot_wire::WireError),
    /// A peer message holds more items than the protocol allows.
    #[error("{what} with {count} items (at most {max})")]
    TooMany {
        /// Which list.
        what: &'static str,
        /// Its length.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The metrics recorder could not be installed.
    #[error("cannot install the metrics recorder: {0}")]
    Metrics(String),
    /// The node stopped.
    #[error("the node stopped")]
    Stopped,
}
