//! The event loop that carries one [`Replica`]'s outputs to QUIC, RocksDB and the
//! client connections, and feeds what happens back in.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ballot_core::service::StateMachine;
use ballot_core::{Event, Incoming, Instant, LogStore, NodeId, Protocol, Role, Transport};
use ballot_replica::{Replica, ReplicaOutput, RequestId, WatchId};
use ballot_storage::{Ack, GroupCommit};
use ballot_wire::{ClientError, Codec};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use crate::metrics as m;
use crate::status::NodeStatus;

/// Tuning of the shell (the replica's own settings are in [`ballot_replica::ReplicaConfig`]).
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// The most client calls taken in one turn of the loop (they are proposed together).
    pub max_batch: usize,
    /// Live events buffered per watch before a slow watcher is cut off.
    pub watch_buffer: usize,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig { max_batch: 1024, watch_buffer: 1024 }
    }
}

/// A reply channel for one request.
pub(crate) type Reply<R> = oneshot::Sender<Result<R, ClientError>>;

/// An item on a watch stream: an event, or the error that ended the watch.
pub type WatchItem<E> = Result<E, ClientError>;

/// What clients ask of the driver.
pub(crate) enum Call<S: StateMachine> {
    /// A request of the service as the client encoded it (a `Command`); `ordered`: a
    /// read ordered like a write (`Replica::request_ordered`).
    Command { command: Bytes, ordered: bool, reply: Reply<S::Response> },
    /// Open a watch stream.
    Watch { request: S::Request, reply: Reply<mpsc::Receiver<WatchItem<S::Event>>> },
}

/// A waiting request: who to answer and since when (for the latency metric).
struct Waiting<R> {
    reply: Reply<R>,
    started: std::time::Instant,
}

/// Where a watch's events go. While it is being opened (within one turn of the loop)
/// its history collects in `opening`; then the channel is sized for it and handed out.
struct WatchSink<E> {
    events: Option<mpsc::Sender<WatchItem<E>>>,
    opening: Option<Opening<E>>,
}

/// A watch being opened: its history so far, and who waits for the stream.
type Opening<E> = (Vec<E>, Reply<mpsc::Receiver<WatchItem<E>>>);

enum Wake<S: StateMachine> {
    Shutdown,
    Ack(Option<Ack>),
    Frame(Result<Incoming, ballot_core::Closed>),
    Call(Option<Call<S>>),
    Timeout,
}

/// Why a driver stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// Storage failed; the node can no longer promise durability and stops.
    #[error("storage failed: {0}")]
    Storage(String),
    /// The transport closed underneath the driver.
    #[error("the peer transport closed")]
    TransportClosed,
    /// The driver's task panicked or was cancelled (a bug: the message is for the report).
    #[error("the driver task failed: {0}")]
    Panicked(String),
}

/// Runs one replica. Owned by one tokio task; see [`crate::Node`] for the public face.
pub(crate) struct Driver<P: Protocol, S: StateMachine, L> {
    cfg: DriverConfig,
    replica: Replica<P, S>,
    transport: Arc<dyn Transport>,
    codec: Codec,
    storage: GroupCommit<P::Entry, P::HardState, L>,
    acks: mpsc::UnboundedReceiver<Ack>,
    calls: mpsc::Receiver<Call<S>>,
    origin: std::time::Instant,
    next_id: u64,
    waiting: HashMap<RequestId, Waiting<S::Response>>,
    watches: HashMap<WatchId, WatchSink<S::Event>>,
    status: watch::Sender<NodeStatus>,
    status_dirty: bool,
    failed: Option<DriverError>,
}

/// Everything a driver is built from.
pub(crate) struct DriverParts<P: Protocol, S: StateMachine, L> {
    pub cfg: DriverConfig,
    pub replica: Replica<P, S>,
    pub transport: Arc<dyn Transport>,
    pub storage: GroupCommit<P::Entry, P::HardState, L>,
    pub acks: mpsc::UnboundedReceiver<Ack>,
    pub calls: mpsc::Receiver<Call<S>>,
    pub origin: std::time::Instant,
    pub status: watch::Sender<NodeStatus>,
    pub codec: Codec,
}

impl<P, S, L> Driver<P, S, L>
where
    P: Protocol,
    S: StateMachine,
    L: LogStore<P::Entry, P::HardState> + 'static,
{
    pub(crate) fn new(parts: DriverParts<P, S, L>) -> Self {
        Driver {
            cfg: parts.cfg,
            replica: parts.replica,
            transport: parts.transport,
            codec: parts.codec,
            storage: parts.storage,
            acks: parts.acks,
            calls: parts.calls,
            origin: parts.origin,
            next_id: 0,
            waiting: HashMap::new(),
            watches: HashMap::new(),
            status: parts.status,
            status_dirty: true,
            failed: None,
        }
    }

    fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    fn deadline_of(&self, at: Instant) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.origin + Duration::from_nanos(at.as_nanos()))
    }

    /// Runs until `shutdown` flips to true or a fatal error.
    pub(crate) async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), DriverError> {
        self.drain();
        while self.failed.is_none() {
            let timer = self.replica.poll_timeout().map(|t| self.deadline_of(t));
            let wake = {
                let transport = Arc::clone(&self.transport);
                tokio::select! {
                    biased;
                    _ = shutdown.changed() => Wake::Shutdown,
                    ack = self.acks.recv() => Wake::Ack(ack),
                    call = self.calls.recv() => Wake::Call(call),
                    frame = transport.recv() => Wake::Frame(frame),
                    () = sleep_until(timer) => Wake::Timeout,
                }
            };
            match wake {
                Wake::Shutdown | Wake::Call(None) => break,
                Wake::Ack(Some(Ok(id))) => {
                    let now = self.now();
                    self.replica.persisted(now, id);
                }
                Wake::Ack(Some(Err(e))) => self.failed = Some(DriverError::Storage(e.to_string())),
                Wake::Ack(None) => self.failed = Some(DriverError::Storage("the storage thread stopped".into())),
                Wake::Frame(Ok(incoming)) => self.on_frame(incoming),
                Wake::Frame(Err(_)) => self.failed = Some(DriverError::TransportClosed),
                Wake::Call(Some(call)) => {
                    self.on_call(call);
                    for _ in 1..self.cfg.max_batch {
                        match self.calls.try_recv() {
                            Ok(call) => self.on_call(call),
                            Err(_) => break,
                        }
                    }
                }
                Wake::Timeout => {
                    let now = self.now();
                    self.replica.handle_timeout(now);
                    self.status_dirty = true;
                    for (reason, n) in self.replica.protocol().refusals() {
                        metrics::counter!(m::REFUSED, "reason" => reason).absolute(n);
                    }
                }
            }
            self.drain();
        }
        self.replica.fail_all(&ClientError::Unavailable("node is shutting down".into()));
        self.drain();
        self.transport.close().await;
        match self.failed.take() {
            Some(e) => {
                tracing::error!(error = %e, "node stopped");
                Err(e)
            }
            None => Ok(()),
        }
    }

    fn on_frame(&mut self, incoming: Incoming) {
        match self.codec.decode::<P::Message>(&incoming.frame) {
            Ok(message) => {
                let now = self.now();
                self.replica.handle_message(now, incoming.from, message);
            }
            Err(e) => {
                metrics::counter!(m::PEER_MALFORMED, "From" => incoming.from.to_string()).increment(1);
                tracing::warn!(peer = %incoming.from, error = %e, "dropping a malformed peer message");
            }
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn on_call(&mut self, call: Call<S>) {
        let now = self.now();
        match call {
            Call::Command { command, ordered, reply } => {
                let id = RequestId(self.next_id());
                self.waiting.insert(id, Waiting { reply, started: std::time::Instant::now() });
                if ordered {
                    self.replica.request_ordered(now, id, command);
                } else {
                    self.replica.request_command(now, id, command);
                }
            }
            Call::Watch { request, reply } => {
                let id = WatchId(self.next_id());
                self.watches.insert(id, WatchSink { events: None, opening: Some((Vec::new(), reply)) });
                self.replica.open_watch(now, id, request);
            }
        }
    }

    /// Carries out every output the replica has, until it has none.
    fn drain(&mut self) {
        while let Some(output) = self.replica.poll_output() {
            match output {
                ReplicaOutput::Send { to, message } => self.send(to, &message),
                ReplicaOutput::Persist(batch) => {
                    if let Err(e) = self.storage.submit(batch) {
                        self.failed.get_or_insert(DriverError::Storage(e.to_string()));
                    }
                }
                ReplicaOutput::Reply { request, result, operation, .. } => {
                    if let Some(w) = self.waiting.remove(&request) {
                        record_request(operation, w.started, &result);
                        let _ = w.reply.send(result);
                    }
                }
                ReplicaOutput::WatchEvent { watch, event } => self.watch_event(watch, event),
                ReplicaOutput::WatchEnded { watch, error } => {
                    if let Some(sink) = self.watches.remove(&watch) {
                        match (sink.opening, sink.events) {
                            (Some((_, reply)), _) => {
                                let _ = reply.send(Err(error));
                            }
                            (None, Some(events)) => {
                                let _ = events.try_send(Err(error));
                            }
                            (None, None) => {}
                        }
                    }
                }
                ReplicaOutput::Event(event) => self.on_event(&event),
                ReplicaOutput::Snapshot { index, bytes } => {
                    tracing::debug!(index, bytes, "snapshot taken");
                    metrics::counter!(m::SNAPSHOTS).increment(1);
                }
                ReplicaOutput::ProposalFailed => metrics::counter!(m::PROPOSALS_FAILED).increment(1),
                ReplicaOutput::Applied { .. } => {}
            }
        }
        self.finish_opening_watches();
        metrics::gauge!(m::PROPOSALS_PENDING).set(self.replica.pending_requests() as f64);
        metrics::gauge!(m::WATCHERS).set(self.replica.watches() as f64);
        if self.status_dirty {
            self.status_dirty = false;
            let status = self.replica.status();
            m::record_status(&status.status, status.applied_index);
            self.status.send_if_modified(|s| {
                let changed = s.status != status.status || s.applied_index != status.applied_index;
                s.status = status.status;
                s.applied_index = status.applied_index;
                changed
            });
        }
    }

    fn watch_event(&mut self, watch: WatchId, event: S::Event) {
        let Some(sink) = self.watches.get_mut(&watch) else { return };
        if let Some((history, _)) = sink.opening.as_mut() {
            history.push(event);
            return;
        }
        let Some(events) = &sink.events else { return };
        let cut = if events.capacity() <= 1 {
            let _ = events.try_send(Err(ClientError::Unavailable(
                "watch fell behind; resume it from the last revision you received".into(),
            )));
            true
        } else {
            events.try_send(Ok(event)).is_err()
        };
        if cut {
            self.watches.remove(&watch);
            self.replica.close_watch(watch);
        }
    }

    /// Hands every watch opened this turn its stream, sized for its history.
    fn finish_opening_watches(&mut self) {
        let buffer = self.cfg.watch_buffer;
        let mut gone = Vec::new();
        for (id, sink) in &mut self.watches {
            let Some((history, reply)) = sink.opening.take() else { continue };
            let (tx, rx) = mpsc::channel(history.len() + buffer + 1);
            for event in history {
                // Capacity was sized for these; cannot fail.
                let _ = tx.try_send(Ok(event));
            }
            if reply.send(Ok(rx)).is_ok() {
                sink.events = Some(tx);
            } else {
                gone.push(*id);
            }
        }
        for id in gone {
            self.watches.remove(&id);
            self.replica.close_watch(id);
        }
        // Watchers that went away: their receivers are dropped.
        let closed: Vec<WatchId> = self
            .watches
            .iter()
            .filter(|(_, s)| s.events.as_ref().is_some_and(mpsc::Sender::is_closed))
            .map(|(id, _)| *id)
            .collect();
        for id in closed {
            self.watches.remove(&id);
            self.replica.close_watch(id);
        }
    }

    fn send(&mut self, to: NodeId, message: &P::Message) {
        match self.codec.encode(message) {
            Ok(frame) => {
                if let Err(e) = self.transport.send(to, frame) {
                    metrics::counter!(m::PEER_SEND_DROPPED, "To" => to.to_string()).increment(1);
                    tracing::trace!(peer = %to, error = %e, "message not sent");
                }
            }
            Err(e) => tracing::error!(peer = %to, error = %e, "cannot encode a protocol message"),
        }
    }

    fn on_event(&mut self, event: &Event) {
        self.status_dirty = true;
        match event {
            Event::LeaderChanged { leader, term } => {
                tracing::info!(leader = ?leader, term, "leader changed");
                metrics::counter!(m::LEADER_CHANGES).increment(1);
                metrics::gauge!(m::HAS_LEADER).set(if leader.is_some() { 1.0 } else { 0.0 });
                self.status.send_modify(|s| s.leader_changes += 1);
            }
            Event::RoleChanged(role) => {
                tracing::info!(%role, "role changed");
                metrics::gauge!(m::IS_LEADER).set(if *role == Role::Leader { 1.0 } else { 0.0 });
            }
            Event::MembershipChanged(membership) => tracing::info!(%membership, "membership changed"),
        }
    }
}

fn record_request<R>(operation: &'static str, started: std::time::Instant, result: &Result<R, ClientError>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(e) => m::error_label(e),
    };
    metrics::counter!(m::CLIENT_REQUESTS, "op" => operation, "outcome" => outcome).increment(1);
    metrics::histogram!(m::CLIENT_REQUEST_DURATION, "op" => operation, "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
