//! Configuration of a node's endpoint and of client connectors.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ballot_core::NodeId;
use ballot_wire::{DEFAULT_MAX_SIZE, MAX_SIZE_LIMIT};

use crate::{Error, TlsConfig};

/// Longest cluster name accepted.
const MAX_CLUSTER_NAME: usize = 255;

/// Settings of a [`QuicTransport`](crate::QuicTransport). Build with
/// [`QuicConfig::new`] and adjust fields; every field has a sensible default.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct QuicConfig {
    /// This node.
    pub node_id: NodeId,
    /// The cluster name, checked in every handshake.
    pub cluster: String,
    /// The UDP address to listen on (peers and clients share it).
    pub listen: SocketAddr,
    /// The peers and their addresses (`host:port`, resolved at each connection attempt).
    pub peers: BTreeMap<NodeId, String>,
    /// The CA and this node's certificate, which must carry `n{node_id}.ballot`.
    pub tls: TlsConfig,
    /// Largest frame sent or accepted (default 4 MiB, [`ballot_wire::DEFAULT_MAX_SIZE`]).
    pub max_frame_size: usize,
    /// Frames queued per peer before `send` returns `QueueFull` (default 4096).
    pub send_queue_frames: usize,
    /// Bytes queued per peer before `send` returns `QueueFull` (default 64 MiB; one
    /// frame is always admitted into an empty queue).
    pub send_queue_bytes: usize,
    /// Frames received and not yet taken by `recv` (default 8192). When full, reading
    /// from peers pauses and QUIC flow control slows the senders.
    pub recv_queue_frames: usize,
    /// Keep-alive interval on idle connections (default 2 s).
    pub keep_alive_interval: Duration,
    /// A connection silent for this long is dead (default 10 s).
    pub idle_timeout: Duration,
    /// Limit for a TLS handshake plus `Hello` exchange (default 5 s).
    pub handshake_timeout: Duration,
    /// RTT assumed before the first sample (default 100 ms; QUIC's default of 333 ms
    /// suits the Internet, not a cluster network).
    pub initial_rtt: Duration,
    /// First reconnect delay after a failure (default 50 ms); doubles per failure.
    pub reconnect_min: Duration,
    /// Longest reconnect delay (default 2 s). Delays are jittered by up to half.
    pub reconnect_max: Duration,
    /// How often each peer's round-trip time is sampled into the RTT histogram
    /// (default 5 s).
    pub rtt_sample_interval: Duration,
    /// How long `close` waits to flush queued frames and close connections (default 1 s).
    pub close_timeout: Duration,
    /// QUIC flow-control window per stream (default 8 MiB) and per connection (twice
    /// that).
    pub stream_window: u32,
    /// Accept client connections (ALPN `ballot-client/1`); when false they are closed
    /// with [`CLOSE_NOT_SERVING`](crate::CLOSE_NOT_SERVING) (default true).
    pub serve_clients: bool,
    /// Authenticated client connections waiting for [`accept`](crate::ClientListener::accept)
    /// (default 128); more are closed with [`CLOSE_BUSY`](crate::CLOSE_BUSY).
    pub client_backlog: usize,
    /// Concurrent request streams per client connection (default 1024).
    pub max_client_streams: u32,
}

impl QuicConfig {
    /// Defaults for node `node_id` of `cluster`, listening on `listen`, with no peers yet.
    #[must_use]
    pub fn new(node_id: NodeId, cluster: impl Into<String>, listen: SocketAddr, tls: TlsConfig) -> Self {
        QuicConfig {
            node_id,
            cluster: cluster.into(),
            listen,
            peers: BTreeMap::new(),
            tls,
            max_frame_size: DEFAULT_MAX_SIZE,
            send_queue_frames: 4096,
            send_queue_bytes: 64 * 1024 * 1024,
            recv_queue_frames: 8192,
            keep_alive_interval: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(5),
            initial_rtt: Duration::from_millis(100),
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(2),
            rtt_sample_interval: Duration::from_secs(5),
            close_timeout: Duration::from_secs(1),
            stream_window: 8 * 1024 * 1024,
            serve_clients: true,
            client_backlog: 128,
            max_client_streams: 1024,
        }
    }

    /// Adds (or replaces) a peer.
    #[must_use]
    pub fn with_peer(mut self, id: NodeId, addr: impl Into<String>) -> Self {
        self.peers.insert(id, addr.into());
        self
    }

    /// Checks the values and that the certificate names this node.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.node_id.get() == 0 {
            return Err(Error::Config("node ids start at 1".into()));
        }
        validate_cluster(&self.cluster)?;
        if self.peers.contains_key(&self.node_id) {
            return Err(Error::Config(format!("{} is listed as its own peer", self.node_id)));
        }
        if let Some((id, _)) = self.peers.iter().find(|(id, _)| id.get() == 0) {
            return Err(Error::Config(format!("invalid peer id {id}: node ids start at 1")));
        }
        validate_frame_size(self.max_frame_size)?;
        for (name, v) in [
            ("send_queue_frames", self.send_queue_frames),
            ("send_queue_bytes", self.send_queue_bytes),
            ("recv_queue_frames", self.recv_queue_frames),
            ("client_backlog", self.client_backlog),
        ] {
            if v == 0 {
                return Err(Error::Config(format!("{name} must be at least 1")));
            }
        }
        validate_timeouts(self.keep_alive_interval, self.idle_timeout, self.handshake_timeout)?;
        if self.reconnect_min.is_zero() || self.reconnect_min > self.reconnect_max {
            return Err(Error::Config("reconnect_min must be positive and at most reconnect_max".into()));
        }
        if self.rtt_sample_interval.is_zero() {
            return Err(Error::Config("rtt_sample_interval must be positive".into()));
        }
        if self.stream_window < 65_536 {
            return Err(Error::Config("stream_window must be at least 64 KiB".into()));
        }
        let expected_name = crate::node_dns_name(self.node_id);
        let identity = self.tls.identity();
        if identity.node != Some(self.node_id) {
            return Err(Error::IdentityMismatch {
                expected: self.node_id,
                expected_name,
                found: identity.dns_names.clone(),
            });
        }
        Ok(())
    }

    /// The QUIC transport parameters of peer and client connections.
    pub(crate) fn transport_config(&self) -> Result<Arc<quinn::TransportConfig>, Error> {
        transport_config(self.keep_alive_interval, self.idle_timeout, self.initial_rtt, self.stream_window, 1)
    }
}

pub(crate) fn validate_cluster(cluster: &str) -> Result<(), Error> {
    if cluster.is_empty() || cluster.len() > MAX_CLUSTER_NAME {
        return Err(Error::Config(format!("the cluster name must have 1 to {MAX_CLUSTER_NAME} bytes")));
    }
    Ok(())
}

pub(crate) fn validate_frame_size(max: usize) -> Result<(), Error> {
    if max == 0 || max > MAX_SIZE_LIMIT {
        return Err(Error::Config(format!("max_frame_size must be between 1 and {MAX_SIZE_LIMIT}")));
    }
    Ok(())
}

pub(crate) fn validate_timeouts(keep_alive: Duration, idle: Duration, handshake: Duration) -> Result<(), Error> {
    if keep_alive.is_zero() || keep_alive >= idle {
        return Err(Error::Config("keep_alive_interval must be positive and shorter than idle_timeout".into()));
    }
    if handshake.is_zero() {
        return Err(Error::Config("handshake_timeout must be positive".into()));
    }
    Ok(())
}

/// The UDP socket buffers asked for (the kernel caps them at `net.core.rmem_max` and
/// `wmem_max`). The default ~200 KiB receive buffer overflows when a node answers a
/// burst from hundreds of clients: measured on loopback with 1,000 clients, 13 % of the
/// datagrams were dropped, each costing a retransmission after a probe timeout.
const SOCKET_BUFFER: usize = 8 << 20;

/// Enlarges a UDP socket's receive and send buffers (best effort: a refusal is logged).
pub(crate) fn enlarge_socket_buffers(socket: socket2::SockRef<'_>) {
    if let Err(e) = socket.set_recv_buffer_size(SOCKET_BUFFER) {
        tracing::debug!(error = %e, "cannot enlarge the UDP receive buffer");
    }
    if let Err(e) = socket.set_send_buffer_size(SOCKET_BUFFER) {
        tracing::debug!(error = %e, "cannot enlarge the UDP send buffer");
    }
}

/// A client-only endpoint on a socket bound to `addr` (dual-stack for an IPv6
/// wildcard, as `quinn::Endpoint::client` does), with enlarged buffers.
pub(crate) fn client_endpoint(addr: SocketAddr) -> std::io::Result<quinn::Endpoint> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        let _ = socket.set_only_v6(false);
    }
    socket.bind(&addr.into())?;
    enlarge_socket_buffers(socket2::SockRef::from(&socket));
    let runtime = quinn::default_runtime().ok_or_else(|| std::io::Error::other("no async runtime found"))?;
    quinn::Endpoint::new(quinn::EndpointConfig::default(), None, socket.into(), runtime)
}

/// Transport parameters: keep-alives, idle timeout, windows; the peer may open
/// `bidi_streams` bidirectional streams (raised per client connection) and no
/// unidirectional ones; no datagrams.
pub(crate) fn transport_config(
    keep_alive: Duration,
    idle: Duration,
    initial_rtt: Duration,
    stream_window: u32,
    bidi_streams: u32,
) -> Result<Arc<quinn::TransportConfig>, Error> {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(keep_alive));
    t.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(idle).map_err(|_| Error::Config("idle_timeout is too long".into()))?,
    ));
    t.initial_rtt(initial_rtt);
    t.stream_receive_window(quinn::VarInt::from_u32(stream_window));
    t.receive_window(quinn::VarInt::from_u64(u64::from(stream_window) * 2).unwrap_or(quinn::VarInt::MAX));
    t.send_window(u64::from(stream_window) * 2);
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(bidi_streams));
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
    t.datagram_receive_buffer_size(None);
    Ok(Arc::new(t))
}

/// Settings of a [`ClientConnector`](crate::ClientConnector).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientOptions {
    /// Local address to bind (default `[::]:0`, falling back to `0.0.0.0:0`).
    pub bind: Option<SocketAddr>,
    /// Largest frame sent or accepted (default 4 MiB).
    pub max_frame_size: usize,
    /// Keep-alive interval (default 2 s).
    pub keep_alive_interval: Duration,
    /// Idle timeout (default 10 s).
    pub idle_timeout: Duration,
    /// Limit for the TLS handshake plus `Hello` exchange (default 5 s).
    pub handshake_timeout: Duration,
    /// RTT assumed before the first sample (default 100 ms).
    pub initial_rtt: Duration,
    /// Flow-control window per stream (default 8 MiB).
    pub stream_window: u32,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            bind: None,
            max_frame_size: DEFAULT_MAX_SIZE,
            keep_alive_interval: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(5),
            initial_rtt: Duration::from_millis(100),
            stream_window: 8 * 1024 * 1024,
        }
    }
}
