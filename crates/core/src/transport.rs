//! The transport contract peers exchange frames through, and an in-memory network.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;

use crate::NodeId;

/// Errors from [`Transport::send`]. Sending is best-effort: `Ok` means queued, not
/// delivered; protocols retransmit what is lost.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// `to` is not a configured peer.
    #[error("unknown peer {0}")]
    UnknownPeer(NodeId),
    /// The frame exceeds the transport's maximum frame size.
    #[error("frame of {size} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The frame's size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The queue to `to` is full; the frame was dropped (backpressure).
    #[error("send queue to {0} is full; frame dropped")]
    QueueFull(NodeId),
    /// The transport was closed.
    #[error("transport is closed")]
    Closed,
}

/// [`Transport::recv`] after the transport closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("transport is closed")]
pub struct Closed;

/// A frame received from a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The authenticated sender.
    pub from: NodeId,
    /// The frame, as sent.
    pub frame: Bytes,
}

/// Moves opaque frames between the peers of a cluster.
///
/// Guarantees every implementation gives (checked by the conformance suite in
/// `ballot_core::testkit`): frames from one sender to one receiver arrive in the order
/// sent, without duplication or corruption, or not at all; the sender id of an
/// [`Incoming`] is authenticated; `send` never blocks (a full queue drops the frame and
/// says so); after a peer restarts, frames reach its new incarnation.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// This node.
    fn local_id(&self) -> NodeId;

    /// The largest frame [`send`](Transport::send) accepts.
    fn max_frame_size(&self) -> usize;

    /// Queues `frame` for `to` without blocking.
    ///
    /// # Errors
    /// See [`SendError`]; all are reported, none are fatal.
    fn send(&self, to: NodeId, frame: Bytes) -> Result<(), SendError>;

    /// The next frame from any peer.
    ///
    /// # Errors
    /// [`Closed`] once [`close`](Transport::close) was called.
    async fn recv(&self) -> Result<Incoming, Closed>;

    /// Stops sending and receiving; pending `recv` calls return [`Closed`].
    async fn close(&self);
}

#[derive(Debug, Default)]
struct NetState {
    inboxes: HashMap<NodeId, async_channel::Sender<Incoming>>,
    /// Directed links that drop everything: (from, to).
    cut: BTreeSet<(NodeId, NodeId)>,
}

/// An in-memory network for tests: [`join`](MemNetwork::join) gives each node a
/// [`MemTransport`]; links can be cut and healed per direction.
#[derive(Debug, Clone)]
pub struct MemNetwork {
    state: Arc<Mutex<NetState>>,
    capacity: usize,
    max_frame_size: usize,
}

impl MemNetwork {
    /// A network whose per-node inbox holds `capacity` frames.
    #[must_use]
    pub fn new(capacity: usize, max_frame_size: usize) -> Self {
        MemNetwork { state: Arc::default(), capacity: capacity.max(1), max_frame_size }
    }

    /// Attaches node `id`, replacing (restarting) any earlier incarnation, whose pending
    /// frames are lost.
    #[must_use]
    pub fn join(&self, id: NodeId) -> MemTransport {
        let (tx, rx) = async_channel::bounded(self.capacity);
        self.lock().inboxes.insert(id, tx);
        MemTransport { id, net: self.clone(), inbox: rx }
    }

    /// Drops every frame from `from` to `to` until [`heal`](MemNetwork::heal).
    pub fn cut(&self, from: NodeId, to: NodeId) {
        self.lock().cut.insert((from, to));
    }

    /// Restores every cut link.
    pub fn heal(&self) {
        self.lock().cut.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NetState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One node's endpoint on a [`MemNetwork`].
#[derive(Debug)]
pub struct MemTransport {
    id: NodeId,
    net: MemNetwork,
    inbox: async_channel::Receiver<Incoming>,
}

#[async_trait]
impl Transport for MemTransport {
    fn local_id(&self) -> NodeId {
        self.id
    }

    fn max_frame_size(&self) -> usize {
        self.net.max_frame_size
    }

    fn send(&self, to: NodeId, frame: Bytes) -> Result<(), SendError> {
        if self.inbox.is_closed() {
            return Err(SendError::Closed);
        }
        if frame.len() > self.net.max_frame_size {
            return Err(SendError::TooLarge { size: frame.len(), max: self.net.max_frame_size });
        }
        let state = self.net.lock();
        let inbox = state.inboxes.get(&to).ok_or(SendError::UnknownPeer(to))?;
        if state.cut.contains(&(self.id, to)) {
            return Ok(());
        }
        match inbox.try_send(Incoming { from: self.id, frame }) {
            Ok(()) | Err(async_channel::TrySendError::Closed(_)) => Ok(()),
            Err(async_channel::TrySendError::Full(_)) => Err(SendError::QueueFull(to)),
        }
    }

    async fn recv(&self) -> Result<Incoming, Closed> {
        self.inbox.recv().await.map_err(|_| Closed)
    }

    async fn close(&self) {
        self.inbox.close();
    }
}
