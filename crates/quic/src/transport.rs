//! [`QuicTransport`]: a node's QUIC endpoint, implementing ballot-core's [`Transport`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use ballot_core::{Closed, Incoming, NodeId, SendError, Transport};
use ballot_wire::{FrameEncoder, Hello};
use bytes::Bytes;
use metrics::Counter;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::client::{ClientConnection, ClientListener};
use crate::metrics::{HandshakeCounts, HandshakeFailure, PeerMetrics, Side, describe_metrics};
use crate::peer::Writer;
use crate::{CLOSE_NORMAL, Error, QuicConfig};

/// Handshakes in progress at once; more incoming connections are refused.
const MAX_CONCURRENT_HANDSHAKES: usize = 256;

/// A node's QUIC endpoint: one UDP port for peer traffic (ALPN `ballot-peer/1`) and
/// client traffic (ALPN `ballot-client/1`), mutual TLS against the cluster CA.
///
/// As a [`Transport`], it keeps one connection and stream per peer for outgoing frames,
/// dialed on demand and redialed with capped, jittered exponential backoff when it
/// fails; frames from one sender arrive in order. [`send`](Transport::send) never
/// blocks: each peer has a bounded queue (frames and bytes), and when it is full the
/// frame is dropped and `send` returns [`SendError::QueueFull`] — safe, because
/// protocols retransmit. Client connections are handed out by
/// [`client_listener`](QuicTransport::client_listener).
///
/// Create it within a Tokio runtime. [`close`](Transport::close) flushes queued frames
/// briefly and closes every connection with [`CLOSE_NORMAL`]; dropping it closes
/// without flushing.
pub struct QuicTransport {
    shared: Arc<Shared>,
    accept_task: Mutex<Option<JoinHandle<()>>>,
    writers: Mutex<HashMap<NodeId, JoinHandle<()>>>,
}

impl std::fmt::Debug for QuicTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicTransport")
            .field("id", &self.shared.id)
            .field("local_addr", &self.shared.local_addr)
            .finish_non_exhaustive()
    }
}

/// The queue to one peer.
struct PeerQueue {
    tx: mpsc::Sender<Bytes>,
    queued_bytes: Arc<AtomicUsize>,
    connected: Arc<AtomicBool>,
    failures: Counter,
}

/// A running inbound reader for one peer: a newer connection from the same peer stops
/// it (and waits for it to stop) before delivering anything, so frames from one sender
/// never interleave across connections.
struct InboundSlot {
    seq: u64,
    stop: oneshot::Sender<()>,
    done: oneshot::Receiver<()>,
}

/// State shared by the transport's tasks.
pub(crate) struct Shared {
    pub(crate) id: NodeId,
    pub(crate) config: QuicConfig,
    pub(crate) endpoint: quinn::Endpoint,
    pub(crate) local_addr: SocketAddr,
    pub(crate) peer_client: quinn::ClientConfig,
    pub(crate) encoder: FrameEncoder,
    pub(crate) hello: Hello,
    pub(crate) inbox_tx: async_channel::Sender<Incoming>,
    inbox_rx: async_channel::Receiver<Incoming>,
    pub(crate) clients_tx: async_channel::Sender<ClientConnection>,
    clients_rx: async_channel::Receiver<ClientConnection>,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) handshakes: HandshakeCounts,
    pub(crate) handshake_slots: Arc<Semaphore>,
    peers: RwLock<HashMap<NodeId, PeerQueue>>,
    inbound: Mutex<HashMap<NodeId, InboundSlot>>,
    next_seq: AtomicU64,
    closed: AtomicBool,
    runtime: tokio::runtime::Handle,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn record_failure(&self, side: Side, reason: HandshakeFailure) {
        self.handshakes.record(side, reason);
    }

    /// Registers the reader of a new connection from `peer`; stops and awaits the reader
    /// of the previous one. Returns the slot's sequence number, the stop signal to
    /// select on and the guard whose drop announces this reader's end.
    pub(crate) async fn register_inbound(&self, peer: NodeId) -> (u64, oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (stop_tx, stop_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let old = lock(&self.inbound).insert(peer, InboundSlot { seq, stop: stop_tx, done: done_rx });
        if let Some(old) = old {
            drop(old.stop);
            let _ = tokio::time::timeout(Duration::from_secs(1), old.done).await;
        }
        (seq, stop_rx, done_tx)
    }

    /// Forgets the reader `seq` of `peer` unless a newer one replaced it.
    pub(crate) fn unregister_inbound(&self, peer: NodeId, seq: u64) {
        let mut inbound = lock(&self.inbound);
        if inbound.get(&peer).is_some_and(|s| s.seq == seq) {
            inbound.remove(&peer);
        }
    }
}

impl QuicTransport {
    /// Binds `config.listen` and starts serving. Must be called within a Tokio runtime.
    ///
    /// # Errors
    /// [`Error::Config`] or [`Error::IdentityMismatch`] for an invalid configuration
    /// (the certificate must name `config.node_id`), [`Error::Bind`] when the address
    /// cannot be bound, [`Error::NoRuntime`] outside a Tokio runtime.
    pub fn bind(config: QuicConfig) -> Result<Self, Error> {
        let addr = config.listen;
        let socket =
            std::net::UdpSocket::bind(addr).map_err(|source| Error::Bind { addr: addr.to_string(), source })?;
        Self::with_socket(config, socket)
    }

    /// Like [`bind`](QuicTransport::bind), on a socket the caller bound (`config.listen`
    /// is ignored).
    ///
    /// # Errors
    /// As [`bind`](QuicTransport::bind).
    pub fn with_socket(config: QuicConfig, socket: std::net::UdpSocket) -> Result<Self, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        config.validate()?;
        describe_metrics();
        let local_addr = socket.local_addr().map_err(|source| Error::Bind { addr: "socket".into(), source })?;

        let transport = config.transport_config()?;
        let server_crypto = quinn::crypto::rustls::QuicServerConfig::try_from(config.tls.server_config()?)
            .map_err(|e| Error::Config(format!("QUIC server TLS: {e}")))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
        server.transport_config(transport.clone());
        let client_crypto = quinn::crypto::rustls::QuicClientConfig::try_from(config.tls.peer_client_config()?)
            .map_err(|e| Error::Config(format!("QUIC client TLS: {e}")))?;
        let mut peer_client = quinn::ClientConfig::new(Arc::new(client_crypto));
        peer_client.transport_config(transport);

        // Stateless resets keyed by a secret derived from the node's private key: after
        // a crash and restart on the same address, the new incarnation can reset the
        // connections of the old one, so peers reconnect at once instead of waiting for
        // the idle timeout.
        let reset_key = ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            &config.tls.derive_secret(b"ballot-quic stateless reset key v1"),
        );
        let mut endpoint_config = quinn::EndpointConfig::new(Arc::new(reset_key));
        // The connection-id checksum key must survive restarts too, or the new
        // incarnation drops the old connections' packets instead of resetting them.
        let cid_secret = config.tls.derive_secret(b"ballot-quic connection id key v1");
        let cid_key = u64::from_le_bytes(cid_secret[..8].try_into().unwrap_or_default());
        endpoint_config.cid_generator(move || Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key)));
        crate::config::enlarge_socket_buffers(socket2::SockRef::from(&socket));
        let endpoint = {
            let _guard = runtime.enter();
            quinn::Endpoint::new(
                endpoint_config,
                Some(server),
                socket,
                quinn::default_runtime().ok_or(Error::NoRuntime)?,
            )
            .map_err(|source| Error::Bind { addr: local_addr.to_string(), source })?
        };

        let (inbox_tx, inbox_rx) = async_channel::bounded(config.recv_queue_frames);
        let (clients_tx, clients_rx) = async_channel::bounded(config.client_backlog);
        let (shutdown, _) = watch::channel(false);
        let peers = config.peers.clone();
        let shared = Arc::new(Shared {
            id: config.node_id,
            hello: Hello::new(config.cluster.clone(), Some(config.node_id)),
            encoder: FrameEncoder::new(config.max_frame_size),
            config,
            endpoint,
            local_addr,
            peer_client,
            inbox_tx,
            inbox_rx,
            clients_tx,
            clients_rx,
            shutdown,
            handshakes: HandshakeCounts::default(),
            handshake_slots: Arc::new(Semaphore::new(MAX_CONCURRENT_HANDSHAKES)),
            peers: RwLock::default(),
            inbound: Mutex::default(),
            next_seq: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            runtime,
        });
        let accept_task = shared.runtime.spawn(crate::accept::accept_loop(shared.clone()));
        let t = QuicTransport { shared, accept_task: Mutex::new(Some(accept_task)), writers: Mutex::default() };
        for (id, addr) in peers {
            t.add_peer(id, addr)?;
        }
        tracing::info!(node = %t.shared.id, addr = %local_addr, cluster = %t.shared.config.cluster, "QUIC endpoint listening");
        Ok(t)
    }

    /// The bound UDP address.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Adds peer `id` at `addr` (`host:port`), or moves it there: frames still queued
    /// for the old address are dropped.
    ///
    /// # Errors
    /// [`Error::Config`] for this node's own id or id 0, [`Error::Closed`] after close.
    pub fn add_peer(&self, id: NodeId, addr: impl Into<String>) -> Result<(), Error> {
        if id == self.shared.id || id.get() == 0 {
            return Err(Error::Config(format!("{id} cannot be a peer of {}", self.shared.id)));
        }
        if self.shared.is_closed() {
            return Err(Error::Closed);
        }
        let addr = addr.into();
        let c = &self.shared.config;
        let (tx, rx) = mpsc::channel(c.send_queue_frames);
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let connected = Arc::new(AtomicBool::new(false));
        let metrics = PeerMetrics::new(id);
        let failures = metrics.sent_failures.clone();
        let writer =
            Writer::new(self.shared.clone(), id, addr.clone(), rx, queued_bytes.clone(), connected.clone(), metrics);
        let mut writers = lock(&self.writers);
        let handle = self.shared.runtime.spawn(writer.run());
        if let Some(old) = writers.insert(id, handle) {
            old.abort();
        }
        self.shared
            .peers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, PeerQueue { tx, queued_bytes, connected, failures });
        tracing::debug!(node = %self.shared.id, peer = %id, %addr, "peer added");
        Ok(())
    }

    /// Removes peer `id`: its queued frames are dropped and its connection closed.
    /// Returns whether it was a peer.
    pub fn remove_peer(&self, id: NodeId) -> bool {
        let removed = self.shared.peers.write().unwrap_or_else(PoisonError::into_inner).remove(&id).is_some();
        if let Some(handle) = lock(&self.writers).remove(&id) {
            handle.abort();
        }
        removed
    }

    /// Whether the outgoing connection to `peer` is established.
    #[must_use]
    pub fn is_connected(&self, peer: NodeId) -> bool {
        self.shared
            .peers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&peer)
            .is_some_and(|p| p.connected.load(Ordering::Relaxed))
    }

    /// Authenticated client connections (ALPN `ballot-client/1`), for the node's client
    /// server. Every listener shares one backlog.
    #[must_use]
    pub fn client_listener(&self) -> ClientListener {
        ClientListener::new(self.shared.clients_rx.clone())
    }

    /// How many peer connections this endpoint refused, or had refused, for `reason`
    /// (also exported as `ballot_network_peer_handshake_failures_total`).
    #[must_use]
    pub fn peer_handshake_failures(&self, reason: HandshakeFailure) -> u64 {
        self.shared.handshakes.get(Side::Peer, reason)
    }

    /// How many client connections this endpoint refused for `reason` (also exported
    /// as `ballot_network_client_handshake_failures_total`).
    #[must_use]
    pub fn client_handshake_failures(&self, reason: HandshakeFailure) -> u64 {
        self.shared.handshakes.get(Side::Client, reason)
    }

    fn mark_closed(&self) -> bool {
        let was = self.shared.closed.swap(true, Ordering::AcqRel);
        self.shared.shutdown.send_replace(true);
        self.shared.inbox_rx.close();
        self.shared.clients_rx.close();
        !was
    }
}

#[async_trait]
impl Transport for QuicTransport {
    fn local_id(&self) -> NodeId {
        self.shared.id
    }

    fn max_frame_size(&self) -> usize {
        self.shared.config.max_frame_size
    }

    fn send(&self, to: NodeId, frame: Bytes) -> Result<(), SendError> {
        if self.shared.is_closed() {
            return Err(SendError::Closed);
        }
        let max = self.shared.config.max_frame_size;
        if frame.len() > max {
            return Err(SendError::TooLarge { size: frame.len(), max });
        }
        let peers = self.shared.peers.read().unwrap_or_else(PoisonError::into_inner);
        let peer = peers.get(&to).ok_or(SendError::UnknownPeer(to))?;
        let len = frame.len();
        let before = peer.queued_bytes.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before + len > self.shared.config.send_queue_bytes {
            peer.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            peer.failures.increment(1);
            return Err(SendError::QueueFull(to));
        }
        match peer.tx.try_send(frame) {
            Ok(()) => Ok(()),
            Err(e) => {
                peer.queued_bytes.fetch_sub(len, Ordering::AcqRel);
                match e {
                    mpsc::error::TrySendError::Full(_) => {
                        peer.failures.increment(1);
                        Err(SendError::QueueFull(to))
                    }
                    mpsc::error::TrySendError::Closed(_) => Err(SendError::Closed),
                }
            }
        }
    }

    async fn recv(&self) -> Result<Incoming, Closed> {
        self.shared.inbox_rx.recv().await.map_err(|_| Closed)
    }

    async fn close(&self) {
        if !self.mark_closed() {
            return;
        }
        let timeout = self.shared.config.close_timeout;
        // Writers flush what is queued, finish their streams and close their connections.
        let writers: Vec<JoinHandle<()>> = lock(&self.writers).drain().map(|(_, h)| h).collect();
        let aborts: Vec<_> = writers.iter().map(JoinHandle::abort_handle).collect();
        let all = async {
            for w in writers {
                let _ = w.await;
            }
        };
        if tokio::time::timeout(timeout, all).await.is_err() {
            tracing::debug!(node = %self.shared.id, "close: some peers did not flush in time");
            aborts.iter().for_each(tokio::task::AbortHandle::abort);
        }
        if let Some(accept) = lock(&self.accept_task).take() {
            accept.abort();
        }
        self.shared.endpoint.close(CLOSE_NORMAL, b"node shutting down");
        let _ = tokio::time::timeout(timeout, self.shared.endpoint.wait_idle()).await;
        tracing::info!(node = %self.shared.id, "QUIC endpoint closed");
    }
}

impl Drop for QuicTransport {
    fn drop(&mut self) {
        self.mark_closed();
        for (_, w) in lock(&self.writers).drain() {
            w.abort();
        }
        if let Some(accept) = lock(&self.accept_task).take() {
            accept.abort();
        }
        self.shared.endpoint.close(CLOSE_NORMAL, b"node shutting down");
    }
}
