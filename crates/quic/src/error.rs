//! The crate's error type.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ballot_core::NodeId;
use ballot_wire::WireError;

/// Everything that can go wrong setting up or using a QUIC endpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A certificate or key file could not be read (missing, unreadable).
    #[error("cannot read {what} {path}: {source}")]
    ReadFile {
        /// What the file should hold ("CA certificate", "private key", …).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file could not be written, or a directory created.
    #[error("cannot write {path}: {source}")]
    WriteFile {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Certificate generation would overwrite an existing file.
    #[error("{path} already exists; remove it (or use another directory) to generate new certificates")]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// A PEM file is larger than any certificate or key could be.
    #[error("{what} {path} is {size} bytes, over the {max}-byte limit for PEM files")]
    FileTooLarge {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A file is not valid PEM, or holds no item of the expected type.
    #[error("{what} {path} is not usable: {reason}")]
    BadPem {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The private key does not belong to the certificate, or is not a supported key.
    #[error("private key {key} does not match certificate {cert}: {reason}")]
    KeyMismatch {
        /// Where the certificate came from.
        cert: String,
        /// Where the key came from.
        key: String,
        /// What rustls reported.
        reason: String,
    },
    /// A certificate cannot be parsed or used.
    #[error("invalid certificate {what}: {reason}")]
    BadCertificate {
        /// Which certificate.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// rcgen failed to generate a key or certificate.
    #[error("cannot generate {what}: {source}")]
    CertGen {
        /// What was being generated.
        what: String,
        /// rcgen's error.
        source: rcgen::Error,
    },
    /// This node's certificate does not name the node id it is configured with.
    #[error(
        "the node certificate does not identify node {expected} (its DNS names are {found:?}, expected \
         {expected_name:?}); use the certificate issued for this node"
    )]
    IdentityMismatch {
        /// The configured node id.
        expected: NodeId,
        /// The DNS name the certificate should carry.
        expected_name: String,
        /// The DNS names it carries.
        found: Vec<String>,
    },
    /// rustls refused the TLS configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// No Tokio runtime is running on this thread.
    #[error("ballot-quic must be used from within a Tokio runtime")]
    NoRuntime,
    /// The UDP socket could not be bound or set up.
    #[error("cannot bind UDP socket {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An address could not be resolved.
    #[error("cannot resolve {addr:?}: {reason}")]
    Resolve {
        /// The address as configured.
        addr: String,
        /// Why.
        reason: String,
    },
    /// quinn refused to start a connection (bad address or server name).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The remote address.
        addr: SocketAddr,
        /// quinn's error.
        source: quinn::ConnectError,
    },
    /// The TLS handshake failed; the reason says which side refused what.
    #[error("TLS handshake with {addr} failed: {reason}")]
    Handshake {
        /// The remote address.
        addr: SocketAddr,
        /// A description for people.
        reason: String,
    },
    /// The remote end refused the connection after the TLS handshake (wrong cluster,
    /// identity, busy…); `reason` is what it said.
    #[error("{addr} refused the connection: {reason}")]
    Refused {
        /// The remote address.
        addr: SocketAddr,
        /// The reason it gave.
        reason: String,
    },
    /// An established connection was lost or closed.
    #[error("connection to {addr} lost: {reason}")]
    ConnectionLost {
        /// The remote address.
        addr: SocketAddr,
        /// A description for people.
        reason: String,
    },
    /// The remote end broke the protocol (a missing handshake, an unexpected frame).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A frame could not be decoded (see [`WireError`]).
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A frame to send is larger than the maximum frame size.
    #[error("frame of {size} bytes exceeds the maximum frame size of {max} bytes")]
    TooLarge {
        /// The frame's size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Writing to a stream failed.
    #[error("stream write failed: {0}")]
    Write(#[from] quinn::WriteError),
    /// Reading from a stream failed.
    #[error("stream read failed: {0}")]
    Read(#[from] quinn::ReadError),
    /// An operation did not finish in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: &'static str,
        /// The limit.
        after: Duration,
    },
    /// The endpoint or connection was closed.
    #[error("closed")]
    Closed,
}
