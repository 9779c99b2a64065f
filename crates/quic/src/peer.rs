//! The writer task of one peer link: dial, exchange `Hello`s, then stream queued
//! frames in coalesced batches; redial with backoff when the connection fails.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ballot_core::NodeId;
use ballot_wire::{FrameEncoder, FrameKind};
use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, watch};

use crate::backoff::Backoff;
use crate::metrics::{HandshakeFailure, PeerMetrics, Side};
use crate::stream::{
    COPY_THRESHOLD, FrameReader, HelloError, classify, negotiation_failure, read_hello, write_error, write_hello,
};
use crate::transport::Shared;
use crate::{CLOSE_NORMAL, Error, node_dns_name};

/// Most payload bytes coalesced into one stream write.
const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// Most frames coalesced into one stream write.
const MAX_BATCH_FRAMES: usize = 1024;

/// An established, handshaken link.
struct Link {
    conn: quinn::Connection,
    send: quinn::SendStream,
    encoder: FrameEncoder,
    remote: SocketAddr,
}

/// Why dialing failed.
enum DialError {
    /// A handshake failure worth counting and a warning.
    Handshake(HandshakeFailure, String),
    /// The peer is unreachable, restarting, or otherwise not there yet.
    Unreachable(String),
    /// This endpoint is closing.
    Closed,
}

/// How a link ended.
enum LinkEnd {
    /// Shut down: stop the task.
    Shutdown,
    /// The connection failed: redial.
    Lost(String),
}

/// Frames taken off the queue for one write: small frames are copied next to their
/// headers into one buffer, larger payloads are passed through without copying.
struct Batch {
    chunks: Vec<Bytes>,
    buf: BytesMut,
    frames: u64,
    wire_bytes: usize,
    payload_bytes: usize,
}

impl Batch {
    fn new() -> Self {
        Batch { chunks: Vec::with_capacity(64), buf: BytesMut::new(), frames: 0, wire_bytes: 0, payload_bytes: 0 }
    }

    fn push(&mut self, encoder: &FrameEncoder, frame: Bytes) {
        let Ok(header) = encoder.header(FrameKind::Message, frame.len()) else {
            // `send` checked the size against the same limit.
            return;
        };
        self.frames += 1;
        self.payload_bytes += frame.len();
        self.wire_bytes += header.len() + frame.len();
        if self.buf.capacity() - self.buf.len() < header.len() + COPY_THRESHOLD {
            self.buf.reserve(64 * 1024);
        }
        self.buf.extend_from_slice(&header);
        if frame.len() <= COPY_THRESHOLD {
            self.buf.extend_from_slice(&frame);
        } else {
            self.chunks.push(self.buf.split().freeze());
            self.chunks.push(frame);
        }
    }

    fn seal(&mut self) {
        if !self.buf.is_empty() {
            self.chunks.push(self.buf.split().freeze());
        }
    }

    fn clear(&mut self) {
        self.chunks.clear();
        self.frames = 0;
        self.wire_bytes = 0;
        self.payload_bytes = 0;
    }

    fn full(&self) -> bool {
        self.payload_bytes >= MAX_BATCH_BYTES || self.frames as usize >= MAX_BATCH_FRAMES
    }
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    peer: NodeId,
    addr: String,
    rx: mpsc::Receiver<Bytes>,
    queued_bytes: Arc<AtomicUsize>,
    connected: Arc<AtomicBool>,
    metrics: PeerMetrics,
    shutdown: watch::Receiver<bool>,
    backoff: Backoff,
    batch: Batch,
}

impl Writer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        peer: NodeId,
        addr: String,
        rx: mpsc::Receiver<Bytes>,
        queued_bytes: Arc<AtomicUsize>,
        connected: Arc<AtomicBool>,
        metrics: PeerMetrics,
    ) -> Self {
        let c = &shared.config;
        let backoff = Backoff::new(c.reconnect_min, c.reconnect_max, Backoff::random_seed() ^ peer.get());
        let shutdown = shared.shutdown.subscribe();
        Writer { shared, peer, addr, rx, queued_bytes, connected, metrics, shutdown, backoff, batch: Batch::new() }
    }

    fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub(crate) async fn run(mut self) {
        let mut last_warning: Option<HandshakeFailure> = None;
        while !self.shutting_down() {
            let mut shutdown = self.shutdown.clone();
            let dialed = tokio::select! {
                biased;
                _ = shutdown.changed() => return,
                d = self.dial() => d,
            };
            match dialed {
                Ok(link) => {
                    last_warning = None;
                    self.backoff.reset();
                    self.connected.store(true, Ordering::Relaxed);
                    tracing::info!(node = %self.shared.id, peer = %self.peer, remote = %link.remote, "connected to peer");
                    let end = self.pump(link).await;
                    self.connected.store(false, Ordering::Relaxed);
                    match end {
                        LinkEnd::Shutdown => return,
                        LinkEnd::Lost(reason) => {
                            tracing::info!(node = %self.shared.id, peer = %self.peer, "connection to peer lost: {reason}");
                        }
                    }
                }
                Err(DialError::Closed) => return,
                Err(DialError::Handshake(reason, detail)) => {
                    self.shared.record_failure(Side::Peer, reason);
                    if last_warning == Some(reason) {
                        tracing::debug!(node = %self.shared.id, peer = %self.peer, reason = %reason, "handshake with peer failed: {detail}");
                    } else {
                        tracing::warn!(node = %self.shared.id, peer = %self.peer, reason = %reason, "handshake with peer failed: {detail}");
                    }
                    last_warning = Some(reason);
                }
                Err(DialError::Unreachable(detail)) => {
                    tracing::debug!(node = %self.shared.id, peer = %self.peer, "cannot reach peer: {detail}");
                }
            }
            let delay = self.backoff.next_delay();
            tokio::select! {
                biased;
                _ = self.shutdown.changed() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    async fn resolve(&self) -> Result<SocketAddr, DialError> {
        if let Ok(addr) = self.addr.parse::<SocketAddr>() {
            return Ok(addr);
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(self.addr.as_str())
            .await
            .map_err(|e| DialError::Unreachable(format!("cannot resolve {:?}: {e}", self.addr)))?
            .collect();
        // A name such as `localhost` resolves to ::1 first on a stock Debian; an
        // endpoint bound to an IPv4 address cannot send there. Take an address of the
        // endpoint's own family when there is one.
        let ipv4 = self.shared.endpoint.local_addr().map_or(true, |a| a.is_ipv4());
        addrs
            .iter()
            .find(|a| a.is_ipv4() == ipv4)
            .or(addrs.first())
            .copied()
            .ok_or_else(|| DialError::Unreachable(format!("{:?} resolves to no address", self.addr)))
    }

    async fn dial(&self) -> Result<Link, DialError> {
        let remote = self.resolve().await?;
        let connecting = self
            .shared
            .endpoint
            .connect_with(self.shared.peer_client.clone(), remote, &node_dns_name(self.peer))
            .map_err(|e| match e {
                quinn::ConnectError::EndpointStopping => DialError::Closed,
                e => DialError::Unreachable(format!("cannot connect to {remote}: {e}")),
            })?;
        let timeout = self.shared.config.handshake_timeout;
        let handshake = async {
            let conn = connecting.await.map_err(|e| conn_dial_error(&e))?;
            let (mut send, recv) = conn.open_bi().await.map_err(|e| conn_dial_error(&e))?;
            write_hello(&mut send, &self.shared.hello, remote).await.map_err(|e| match conn.close_reason() {
                Some(reason) => conn_dial_error(&reason),
                None => io_dial_error(e),
            })?;
            let mut reader = FrameReader::new(recv, self.shared.config.max_frame_size, remote);
            let hello = read_hello(&mut reader).await.map_err(|e| match e {
                HelloError::Io(e) => match conn.close_reason() {
                    Some(reason) => conn_dial_error(&reason),
                    None => io_dial_error(e),
                },
                HelloError::Bad(detail) => DialError::Handshake(HandshakeFailure::BadHello, detail),
            })?;
            if hello.node != Some(self.peer) {
                let detail = format!("{remote} answered as {:?}, expected {}", hello.node, self.peer);
                conn.close(crate::CLOSE_REFUSED, crate::stream::close_reason(&detail));
                return Err(DialError::Handshake(HandshakeFailure::IdMismatch, detail));
            }
            let version = self.shared.hello.negotiate(&hello).map_err(|e| {
                let detail = e.to_string();
                conn.close(crate::CLOSE_REFUSED, crate::stream::close_reason(&detail));
                DialError::Handshake(negotiation_failure(&e), detail)
            })?;
            Ok(Link { conn, send, encoder: self.shared.encoder.with_version(version), remote })
        };
        match tokio::time::timeout(timeout, handshake).await {
            Ok(r) => r,
            Err(_) => Err(DialError::Unreachable(format!("no handshake with {remote} within {timeout:?}"))),
        }
    }

    /// Streams queued frames until the connection fails or the endpoint shuts down.
    async fn pump(&mut self, mut link: Link) -> LinkEnd {
        let mut rtt_tick = tokio::time::interval(self.shared.config.rtt_sample_interval);
        rtt_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let first = tokio::select! {
                biased;
                _ = self.shutdown.changed() => {
                    self.flush_and_close(link).await;
                    return LinkEnd::Shutdown;
                }
                e = link.conn.closed() => return LinkEnd::Lost(classify(&e).1),
                _ = rtt_tick.tick() => {
                    self.metrics.rtt.record(link.conn.rtt().as_secs_f64());
                    continue;
                }
                f = self.rx.recv() => match f {
                    Some(f) => f,
                    None => {
                        link.conn.close(CLOSE_NORMAL, b"peer removed");
                        return LinkEnd::Shutdown;
                    }
                },
            };
            self.fill_batch(first, &link.encoder);
            let result = link.send.write_all_chunks(&mut self.batch.chunks).await;
            let (frames, wire_bytes) = (self.batch.frames, self.batch.wire_bytes);
            self.batch.clear();
            if let Err(e) = result {
                self.metrics.sent_failures.increment(frames);
                return LinkEnd::Lost(write_error(link.remote, e).to_string());
            }
            self.metrics.sent_bytes.increment(wire_bytes as u64);
        }
    }

    /// Takes `first` and whatever else is queued (up to the batch limits) into the batch.
    fn fill_batch(&mut self, first: Bytes, encoder: &FrameEncoder) {
        self.batch.push(encoder, first);
        while !self.batch.full() {
            match self.rx.try_recv() {
                Ok(f) => self.batch.push(encoder, f),
                Err(_) => break,
            }
        }
        self.batch.seal();
        self.queued_bytes.fetch_sub(self.batch.payload_bytes, Ordering::AcqRel);
    }

    /// On shutdown: writes what is queued, finishes the stream, waits (briefly) for the
    /// peer to acknowledge it, and closes the connection.
    async fn flush_and_close(&mut self, mut link: Link) {
        let limit = self.shared.config.close_timeout.saturating_sub(Duration::from_millis(50));
        let flush = async {
            while let Ok(first) = self.rx.try_recv() {
                self.fill_batch(first, &link.encoder);
                let result = link.send.write_all_chunks(&mut self.batch.chunks).await;
                let (frames, wire_bytes) = (self.batch.frames, self.batch.wire_bytes);
                self.batch.clear();
                if result.is_err() {
                    self.metrics.sent_failures.increment(frames);
                    return;
                }
                self.metrics.sent_bytes.increment(wire_bytes as u64);
            }
            if link.send.finish().is_ok() {
                let _ = link.send.stopped().await;
            }
        };
        let _ = tokio::time::timeout(limit, flush).await;
        link.conn.close(CLOSE_NORMAL, b"node shutting down");
    }
}

fn conn_dial_error(e: &quinn::ConnectionError) -> DialError {
    match classify(e) {
        (_, _) if matches!(e, quinn::ConnectionError::LocallyClosed) => DialError::Closed,
        (Some(reason), detail) => DialError::Handshake(reason, detail),
        (None, detail) => DialError::Unreachable(detail),
    }
}

fn io_dial_error(e: Error) -> DialError {
    match e {
        Error::Closed => DialError::Closed,
        Error::Handshake { reason, .. } => DialError::Handshake(HandshakeFailure::Tls, reason),
        Error::Refused { reason, .. } => DialError::Handshake(HandshakeFailure::RejectedByRemote, reason),
        other => DialError::Unreachable(other.to_string()),
    }
}
