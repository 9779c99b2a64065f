//! Metric names, descriptions and the handshake-failure reasons.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use ballot_core::NodeId;
use metrics::{Counter, Histogram, Unit, counter, describe_counter, describe_histogram, histogram};

/// Bytes sent to a peer, frame headers included (label `To`).
pub const PEER_SENT_BYTES: &str = "ballot_network_peer_sent_bytes_total";
/// Bytes received from a peer (label `From`).
pub const PEER_RECEIVED_BYTES: &str = "ballot_network_peer_received_bytes_total";
/// Frames to a peer that were dropped: queue full, or lost with a failed connection
/// (label `To`).
pub const PEER_SENT_FAILURES: &str = "ballot_network_peer_sent_failures_total";
/// Round-trip time to a peer, QUIC's smoothed estimate sampled periodically (label `To`).
pub const PEER_RTT: &str = "ballot_network_peer_round_trip_time_seconds";
/// Peer connections refused during or right after the handshake (label `reason`, see
/// [`HandshakeFailure`]).
pub const PEER_HANDSHAKE_FAILURES: &str = "ballot_network_peer_handshake_failures_total";
/// Client connections refused during or right after the handshake (label `reason`).
pub const CLIENT_HANDSHAKE_FAILURES: &str = "ballot_network_client_handshake_failures_total";

/// Registers the descriptions of this crate's metrics with the installed recorder.
pub fn describe_metrics() {
    describe_counter!(PEER_SENT_BYTES, Unit::Bytes, "Bytes sent to a peer, frame headers included.");
    describe_counter!(PEER_RECEIVED_BYTES, Unit::Bytes, "Bytes received from a peer.");
    describe_counter!(
        PEER_SENT_FAILURES,
        Unit::Count,
        "Frames to a peer dropped because its send queue was full or its connection failed."
    );
    describe_histogram!(PEER_RTT, Unit::Seconds, "Round-trip time to a peer (QUIC's estimate, sampled).");
    describe_counter!(
        PEER_HANDSHAKE_FAILURES,
        Unit::Count,
        "Peer connections refused during or after the TLS handshake, by reason."
    );
    describe_counter!(
        CLIENT_HANDSHAKE_FAILURES,
        Unit::Count,
        "Client connections refused during or after the TLS handshake, by reason."
    );
}

/// Why a handshake was refused; the `reason` label of the handshake-failure counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum HandshakeFailure {
    /// The remote end presented no certificate.
    NoCertificate,
    /// The remote certificate is not signed by the cluster CA.
    UnknownCa,
    /// The remote certificate has expired or is not yet valid.
    CertificateExpired,
    /// The remote certificate is unusable (bad encoding, wrong name or key usage,
    /// bad signature).
    BadCertificate,
    /// The remote end offered no ALPN protocol this end speaks.
    NoAlpn,
    /// Another TLS failure.
    Tls,
    /// The remote end refused this end's certificate or handshake.
    RejectedByRemote,
    /// A peer's certificate names no node (`n{id}.ballot`), e.g. a client certificate
    /// used on the peer protocol.
    NoNodeIdentity,
    /// The node id claimed in the `Hello` differs from the certificate's.
    IdMismatch,
    /// A peer claimed to be this node.
    SelfId,
    /// The `Hello` named another cluster.
    WrongCluster,
    /// No protocol version in common.
    NoCommonVersion,
    /// The `Hello` was missing, malformed or not the first frame.
    BadHello,
    /// The handshake did not finish within the handshake timeout.
    Timeout,
}

impl HandshakeFailure {
    /// Every reason, in label order.
    pub const ALL: [HandshakeFailure; 14] = [
        HandshakeFailure::NoCertificate,
        HandshakeFailure::UnknownCa,
        HandshakeFailure::CertificateExpired,
        HandshakeFailure::BadCertificate,
        HandshakeFailure::NoAlpn,
        HandshakeFailure::Tls,
        HandshakeFailure::RejectedByRemote,
        HandshakeFailure::NoNodeIdentity,
        HandshakeFailure::IdMismatch,
        HandshakeFailure::SelfId,
        HandshakeFailure::WrongCluster,
        HandshakeFailure::NoCommonVersion,
        HandshakeFailure::BadHello,
        HandshakeFailure::Timeout,
    ];

    /// The label value.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            HandshakeFailure::NoCertificate => "no_certificate",
            HandshakeFailure::UnknownCa => "unknown_ca",
            HandshakeFailure::CertificateExpired => "certificate_expired",
            HandshakeFailure::BadCertificate => "bad_certificate",
            HandshakeFailure::NoAlpn => "no_alpn",
            HandshakeFailure::Tls => "tls",
            HandshakeFailure::RejectedByRemote => "rejected_by_remote",
            HandshakeFailure::NoNodeIdentity => "no_node_identity",
            HandshakeFailure::IdMismatch => "id_mismatch",
            HandshakeFailure::SelfId => "self_id",
            HandshakeFailure::WrongCluster => "wrong_cluster",
            HandshakeFailure::NoCommonVersion => "no_common_version",
            HandshakeFailure::BadHello => "bad_hello",
            HandshakeFailure::Timeout => "timeout",
        }
    }

    /// The reason for a TLS alert this end raised (`local`) or received.
    pub(crate) fn from_alert(alert: u8, local: bool) -> HandshakeFailure {
        if !local {
            return HandshakeFailure::RejectedByRemote;
        }
        match alert {
            116 => HandshakeFailure::NoCertificate,
            48 => HandshakeFailure::UnknownCa,
            45 => HandshakeFailure::CertificateExpired,
            42 | 43 | 44 | 46 | 49 | 51 => HandshakeFailure::BadCertificate,
            120 => HandshakeFailure::NoAlpn,
            _ => HandshakeFailure::Tls,
        }
    }
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which protocol a handshake was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Peer,
    Client,
}

/// Per-endpoint handshake-failure counts, mirrored into the metrics.
#[derive(Debug, Default)]
pub(crate) struct HandshakeCounts {
    peer: [AtomicU64; HandshakeFailure::ALL.len()],
    client: [AtomicU64; HandshakeFailure::ALL.len()],
}

impl HandshakeCounts {
    pub(crate) fn record(&self, side: Side, reason: HandshakeFailure) {
        let idx = reason as usize;
        match side {
            Side::Peer => {
                self.peer[idx].fetch_add(1, Ordering::Relaxed);
                counter!(PEER_HANDSHAKE_FAILURES, "reason" => reason.as_str()).increment(1);
            }
            Side::Client => {
                self.client[idx].fetch_add(1, Ordering::Relaxed);
                counter!(CLIENT_HANDSHAKE_FAILURES, "reason" => reason.as_str()).increment(1);
            }
        }
    }

    pub(crate) fn get(&self, side: Side, reason: HandshakeFailure) -> u64 {
        let idx = reason as usize;
        match side {
            Side::Peer => self.peer[idx].load(Ordering::Relaxed),
            Side::Client => self.client[idx].load(Ordering::Relaxed),
        }
    }
}

/// Metric handles of the link to one peer.
#[derive(Clone)]
pub(crate) struct PeerMetrics {
    pub(crate) sent_bytes: Counter,
    pub(crate) sent_failures: Counter,
    pub(crate) rtt: Histogram,
}

impl PeerMetrics {
    pub(crate) fn new(to: NodeId) -> Self {
        let to = to.get().to_string();
        PeerMetrics {
            sent_bytes: counter!(PEER_SENT_BYTES, "To" => to.clone()),
            sent_failures: counter!(PEER_SENT_FAILURES, "To" => to.clone()),
            rtt: histogram!(PEER_RTT, "To" => to),
        }
    }
}

/// The received-bytes counter of a peer.
pub(crate) fn received_bytes(from: NodeId) -> Counter {
    counter!(PEER_RECEIVED_BYTES, "From" => from.get().to_string())
}
