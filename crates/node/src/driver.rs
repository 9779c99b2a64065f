//! The event loop that runs one protocol replica against storage, transport and a
//! service.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ballot_core::GroupCommit;
use ballot_core::service::{Command, Consistency, Route, SessionCheck, SessionTable, StateMachine};
use ballot_core::{
    Ack, Apply, Event, Incoming, Instant, LogStore, Output, PersistId, ProposalId, Protocol, ReadId, Role, Transport,
};
use ballot_wire::{ClientError, Codec};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use crate::metrics as m;
use crate::status::NodeStatus;

/// Tuning of the driver.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// A client request not answered within this time gets [`ClientError::Timeout`].
    pub request_timeout: Duration,
    /// How often the service's `tick` runs and gauges are refreshed.
    pub tick_interval: Duration,
    /// Take a snapshot and compact the log after this many applied entries.
    pub snapshot_every: u64,
    /// The most client calls taken in one turn of the loop (they are proposed together).
    pub max_batch: usize,
    /// How many client sessions the exactly-once table remembers.
    pub session_capacity: usize,
    /// Live events buffered per watch before a slow watcher is cut off.
    pub watch_buffer: usize,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            request_timeout: Duration::from_secs(5),
            tick_interval: Duration::from_millis(100),
            snapshot_every: 10_000,
            max_batch: 1024,
            session_capacity: 100_000,
            watch_buffer: 1024,
        }
    }
}

/// A reply channel for one request.
pub(crate) type Reply<R> = oneshot::Sender<Result<R, ClientError>>;

/// An item on a watch stream: an event, or the error that ended the watch.
pub type WatchItem<E> = Result<E, ClientError>;

/// What clients ask of the driver.
pub(crate) enum Call<S: StateMachine> {
    /// A request of the service, with an optional session for exactly-once writes.
    Request { session: Option<ballot_core::service::Session>, request: S::Request, reply: Reply<S::Response> },
    /// Open a watch stream.
    Watch { request: S::Request, reply: Reply<mpsc::Receiver<WatchItem<S::Event>>> },
}

struct Pending<R> {
    reply: Reply<R>,
    op: &'static str,
    started: std::time::Instant,
    deadline: std::time::Instant,
}

struct PendingRead<S: StateMachine> {
    request: S::Request,
    pending: Pending<S::Response>,
}

struct Watcher<S: StateMachine> {
    request: S::Request,
    events: mpsc::Sender<WatchItem<S::Event>>,
}

/// The service state plus the session table, as stored in a snapshot.
#[derive(Serialize, Deserialize)]
struct SnapshotData<R> {
    sessions: SessionTable<R>,
    service: Vec<u8>,
}

enum Wake<S: StateMachine> {
    Shutdown,
    Ack(Option<Ack>),
    Frame(Result<Incoming, ballot_core::Closed>),
    Call(Option<Call<S>>),
    Timeout,
    Tick,
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
}

/// Runs one replica. Owned by one tokio task; see [`crate::Node`] for the public face.
pub(crate) struct Driver<P: Protocol, S: StateMachine, L> {
    cfg: DriverConfig,
    protocol: P,
    service: S,
    sessions: SessionTable<S::Response>,
    transport: Arc<dyn Transport>,
    codec: Codec,
    storage: GroupCommit<P::Entry, P::HardState, L>,
    acks: mpsc::UnboundedReceiver<Ack>,
    calls: mpsc::Receiver<Call<S>>,
    origin: std::time::Instant,
    applied: u64,
    last_snapshot: u64,
    next_id: u64,
    proposals: HashMap<ProposalId, Pending<S::Response>>,
    reads: HashMap<ReadId, PendingRead<S>>,
    reads_at: BTreeMap<u64, Vec<PendingRead<S>>>,
    watchers: Vec<Watcher<S>>,
    client_addrs: Arc<HashMap<ballot_core::NodeId, String>>,
    status: watch::Sender<NodeStatus>,
    status_dirty: bool,
    failed: Option<DriverError>,
}

/// Everything a driver is built from.
pub(crate) struct DriverParts<P: Protocol, S: StateMachine, L> {
    pub cfg: DriverConfig,
    pub protocol: P,
    pub service: S,
    pub transport: Arc<dyn Transport>,
    pub storage: GroupCommit<P::Entry, P::HardState, L>,
    pub acks: mpsc::UnboundedReceiver<Ack>,
    pub calls: mpsc::Receiver<Call<S>>,
    pub origin: std::time::Instant,
    pub client_addrs: Arc<HashMap<ballot_core::NodeId, String>>,
    pub status: watch::Sender<NodeStatus>,
    pub codec: Codec,
}

impl<P: Protocol, S: StateMachine, L: LogStore<P::Entry, P::HardState> + 'static> Driver<P, S, L> {
    pub(crate) fn new(parts: DriverParts<P, S, L>) -> Self {
        let sessions = SessionTable::new(parts.cfg.session_capacity);
        Driver {
            protocol: parts.protocol,
            service: parts.service,
            sessions,
            transport: parts.transport,
            codec: parts.codec,
            storage: parts.storage,
            acks: parts.acks,
            calls: parts.calls,
            origin: parts.origin,
            applied: 0,
            last_snapshot: 0,
            next_id: 0,
            proposals: HashMap::new(),
            reads: HashMap::new(),
            reads_at: BTreeMap::new(),
            watchers: Vec::new(),
            client_addrs: parts.client_addrs,
            status: parts.status,
            status_dirty: true,
            failed: None,
            cfg: parts.cfg,
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
        let mut tick = tokio::time::interval(self.cfg.tick_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        self.drain();
        while self.failed.is_none() {
            let timer = self.protocol.poll_timeout().map(|t| self.deadline_of(t));
            let wake = {
                let transport = Arc::clone(&self.transport);
                tokio::select! {
                    biased;
                    _ = shutdown.changed() => Wake::Shutdown,
                    ack = self.acks.recv() => Wake::Ack(ack),
                    call = self.calls.recv() => Wake::Call(call),
                    frame = transport.recv() => Wake::Frame(frame),
                    () = sleep_until(timer) => Wake::Timeout,
                    _ = tick.tick() => Wake::Tick,
                }
            };
            match wake {
                Wake::Shutdown | Wake::Call(None) => break,
                Wake::Ack(Some(Ok(id))) => self.on_persisted(id),
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
                    self.protocol.handle_timeout(now);
                }
                Wake::Tick => self.on_tick(),
            }
            self.drain();
        }
        self.fail_all(&ClientError::Unavailable("node is shutting down".into()));
        self.transport.close().await;
        match self.failed.take() {
            Some(e) => {
                tracing::error!(error = %e, "node stopped");
                Err(e)
            }
            None => Ok(()),
        }
    }

    fn on_persisted(&mut self, id: PersistId) {
        let now = self.now();
        self.protocol.persisted(now, id);
    }

    fn on_frame(&mut self, incoming: Incoming) {
        match self.codec.decode::<P::Message>(&incoming.frame) {
            Ok(message) => {
                let now = self.now();
                self.protocol.handle_message(now, incoming.from, message);
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

    fn pending(&self, reply: Reply<S::Response>, op: &'static str) -> Pending<S::Response> {
        let started = std::time::Instant::now();
        Pending { reply, op, started, deadline: started + self.cfg.request_timeout }
    }

    fn not_leader(&self, leader: Option<ballot_core::NodeId>) -> ClientError {
        ClientError::NotLeader { leader, leader_addr: leader.and_then(|l| self.client_addrs.get(&l).cloned()) }
    }

    fn client_error(&self, e: ballot_core::ProposeError) -> ClientError {
        match e {
            ballot_core::ProposeError::NotLeader { leader } => self.not_leader(leader),
            other => other.into(),
        }
    }

    fn on_call(&mut self, call: Call<S>) {
        match call {
            Call::Request { session, request, reply } => self.on_request(session, request, reply),
            Call::Watch { request, reply } => self.on_watch(request, reply),
        }
    }

    fn on_request(
        &mut self,
        session: Option<ballot_core::service::Session>,
        request: S::Request,
        reply: Reply<S::Response>,
    ) {
        let op = S::operation(&request);
        let pending = self.pending(reply, op);
        if let Err(rejection) = self.service.validate(&request) {
            finish(pending, Err(rejection.into()));
            return;
        }
        let now = self.now();
        match S::route(&request) {
            Route::Write => {
                let command = match self.codec.encode(&Command { session, request }) {
                    Ok(c) => c,
                    Err(e) => return finish(pending, Err(e.into())),
                };
                let id = ProposalId(self.next_id());
                match self.protocol.propose(now, id, command) {
                    Ok(()) => {
                        self.proposals.insert(id, pending);
                        metrics::gauge!(m::PROPOSALS_PENDING).set(self.proposals.len() as f64);
                    }
                    Err(e) => {
                        metrics::counter!(m::PROPOSALS_FAILED).increment(1);
                        let e = self.client_error(e);
                        finish(pending, Err(e));
                    }
                }
            }
            Route::Read(Consistency::Serializable) => {
                let response = self.service.query(&request);
                finish(pending, Ok(response));
            }
            Route::Read(Consistency::Linearizable) => {
                let id = ReadId(self.next_id());
                match self.protocol.read(now, id) {
                    Ok(()) => {
                        self.reads.insert(id, PendingRead { request, pending });
                    }
                    Err(e) => {
                        let e = self.client_error(e);
                        finish(pending, Err(e));
                    }
                }
            }
            Route::Leader => {
                let status = self.protocol.status();
                if status.role == Role::Leader {
                    let response = self.service.leader_request(now, &request);
                    finish(pending, Ok(response));
                } else {
                    let e = self.not_leader(status.leader);
                    finish(pending, Err(e));
                }
            }
            Route::Watch => {
                finish(pending, Err(ClientError::InvalidRequest("this request opens a watch stream".into())))
            }
        }
    }

    fn on_watch(&mut self, request: S::Request, reply: Reply<mpsc::Receiver<WatchItem<S::Event>>>) {
        if S::route(&request) != Route::Watch {
            let _ = reply.send(Err(ClientError::InvalidRequest("this request is not a watch".into())));
            return;
        }
        if let Err(rejection) = self.service.validate(&request) {
            let _ = reply.send(Err(rejection.into()));
            return;
        }
        match self.service.watch_start(&request) {
            Err(rejection) => {
                let _ = reply.send(Err(rejection.into()));
            }
            Ok(initial) => {
                let (tx, rx) = mpsc::channel(initial.len() + self.cfg.watch_buffer + 1);
                for event in initial {
                    // Capacity was sized for these; cannot fail.
                    let _ = tx.try_send(Ok(event));
                }
                if reply.send(Ok(rx)).is_ok() {
                    self.watchers.push(Watcher { request, events: tx });
                    metrics::gauge!(m::WATCHERS).set(self.watchers.len() as f64);
                }
            }
        }
    }

    fn on_tick(&mut self) {
        let status = self.protocol.status();
        self.service_tick(status.role == Role::Leader);
        self.expire_requests();
        self.status_dirty = true;
        m::record_status(&status, self.applied);
    }

    /// Runs the service's tick and proposes the writes it asks for.
    fn service_tick(&mut self, is_leader: bool) {
        let now = self.now();
        for request in self.service.tick(now, is_leader) {
            match self.codec.encode(&Command { session: None, request }) {
                Ok(command) => {
                    let id = ProposalId(self.next_id());
                    if let Err(e) = self.protocol.propose(now, id, command) {
                        tracing::debug!(error = %e, "service tick proposal refused");
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot encode a service tick proposal"),
            }
        }
    }

    fn expire_requests(&mut self) {
        let now = std::time::Instant::now();
        let expired: Vec<ProposalId> =
            self.proposals.iter().filter(|(_, p)| p.deadline <= now).map(|(id, _)| *id).collect();
        for id in expired {
            if let Some(p) = self.proposals.remove(&id) {
                finish(p, Err(ClientError::Timeout));
            }
        }
        let expired: Vec<ReadId> =
            self.reads.iter().filter(|(_, r)| r.pending.deadline <= now).map(|(id, _)| *id).collect();
        for id in expired {
            if let Some(r) = self.reads.remove(&id) {
                finish(r.pending, Err(ClientError::Timeout));
            }
        }
        for waiting in self.reads_at.values_mut() {
            let (late, keep): (Vec<_>, Vec<_>) = waiting.drain(..).partition(|r| r.pending.deadline <= now);
            *waiting = keep;
            for r in late {
                finish(r.pending, Err(ClientError::Timeout));
            }
        }
        self.reads_at.retain(|_, v| !v.is_empty());
        self.watchers.retain(|w| !w.events.is_closed());
        metrics::gauge!(m::PROPOSALS_PENDING).set(self.proposals.len() as f64);
        metrics::gauge!(m::WATCHERS).set(self.watchers.len() as f64);
    }

    fn fail_all(&mut self, error: &ClientError) {
        for (_, p) in self.proposals.drain() {
            finish(p, Err(error.clone()));
        }
        for (_, r) in self.reads.drain() {
            finish(r.pending, Err(error.clone()));
        }
        for (_, rs) in std::mem::take(&mut self.reads_at) {
            for r in rs {
                finish(r.pending, Err(error.clone()));
            }
        }
        for w in self.watchers.drain(..) {
            let _ = w.events.try_send(Err(error.clone()));
        }
    }

    /// Carries out every output the protocol has, until it has none.
    fn drain(&mut self) {
        while let Some(output) = self.protocol.poll_output() {
            match output {
                Output::Send { to, message } => self.send(to, &message),
                Output::Persist(batch) => {
                    if let Err(e) = self.storage.submit(batch) {
                        self.failed.get_or_insert(DriverError::Storage(e.to_string()));
                    }
                }
                Output::Apply(item) => self.apply(item),
                Output::ReadReady { id, index } => {
                    if let Some(read) = self.reads.remove(&id) {
                        if index <= self.applied {
                            self.serve_read(read);
                        } else {
                            self.reads_at.entry(index).or_default().push(read);
                        }
                    }
                }
                Output::ReadFailed { id, error } => {
                    if let Some(read) = self.reads.remove(&id) {
                        let e = self.client_error(error);
                        finish(read.pending, Err(e));
                    }
                }
                Output::ProposalFailed { id, error } => {
                    if let Some(p) = self.proposals.remove(&id) {
                        metrics::counter!(m::PROPOSALS_FAILED).increment(1);
                        let e = self.client_error(error);
                        finish(p, Err(e));
                    }
                }
                Output::Event(event) => self.on_event(&event),
            }
        }
        if self.status_dirty {
            self.status_dirty = false;
            let status = self.protocol.status();
            let applied = self.applied;
            self.status.send_if_modified(|s| {
                let changed = s.status != status || s.applied_index != applied;
                s.status = status;
                s.applied_index = applied;
                changed
            });
        }
    }

    fn send(&mut self, to: ballot_core::NodeId, message: &P::Message) {
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
                // Services keep leader-only state (lease deadlines): tell them at once.
                self.service_tick(*role == Role::Leader);
            }
            Event::MembershipChanged(membership) => tracing::info!(%membership, "membership changed"),
        }
    }

    fn apply(&mut self, item: Apply) {
        match item {
            Apply::Command { index, command, proposal } => {
                let reply = self.apply_command(index, &command);
                self.applied = index;
                if let Some(p) = proposal.and_then(|id| self.proposals.remove(&id)) {
                    finish(p, reply);
                }
            }
            Apply::Internal { index } => {
                self.service.apply_internal(index);
                self.applied = index;
            }
            Apply::Restore(snapshot) => {
                match self.codec.decode::<SnapshotData<S::Response>>(&snapshot.data) {
                    Ok(data) => match self.service.restore(&data.service) {
                        Ok(()) => self.sessions = data.sessions,
                        Err(e) => {
                            tracing::error!(index = snapshot.meta.index, error = %e, "cannot restore the service snapshot")
                        }
                    },
                    Err(e) if snapshot.data.is_empty() => {
                        tracing::debug!(error = %e, "empty snapshot: starting from an empty service");
                    }
                    Err(e) => tracing::error!(index = snapshot.meta.index, error = %e, "cannot decode the snapshot"),
                }
                self.applied = snapshot.meta.index;
                self.last_snapshot = snapshot.meta.index;
                // Watchers cannot follow a state replacement event by event.
                for w in self.watchers.drain(..) {
                    let _ = w.events.try_send(Err(ClientError::Unavailable(
                        "this node was restored from a snapshot; resume the watch from your last revision".into(),
                    )));
                }
            }
        }
        self.serve_ready_reads();
        if self.applied >= self.last_snapshot + self.cfg.snapshot_every {
            self.snapshot();
        }
        metrics::gauge!(m::PROPOSALS_APPLIED).set(self.applied as f64);
    }

    fn apply_command(&mut self, index: u64, command: &Bytes) -> Result<S::Response, ClientError> {
        let Command { session, request } = match self.codec.decode::<Command<S::Request>>(command) {
            Ok(c) => c,
            Err(e) => {
                // Every replica skips it alike, so replicas stay identical.
                tracing::error!(index, error = %e, "skipping a log entry this service cannot decode");
                self.service.apply_internal(index);
                return Err(ClientError::Internal(format!("undecodable command at index {index}: {e}")));
            }
        };
        let (response, events) = match session.map(|s| (s, self.sessions.check(s))) {
            Some((_, SessionCheck::Duplicate(previous))) => {
                let previous = previous.clone();
                self.service.apply_internal(index);
                (previous, Vec::new())
            }
            Some((_, SessionCheck::Stale)) => {
                self.service.apply_internal(index);
                return Err(ClientError::InvalidRequest(
                    "a retry of a write older than the session's latest one; its outcome is no longer known".into(),
                ));
            }
            Some((s, SessionCheck::Fresh)) => {
                let (response, events) = self.service.apply(index, request);
                self.sessions.record(s, index, response.clone());
                (response, events)
            }
            None => self.service.apply(index, request),
        };
        self.publish(&events);
        Ok(response)
    }

    fn publish(&mut self, events: &[S::Event]) {
        if events.is_empty() || self.watchers.is_empty() {
            return;
        }
        let service = &self.service;
        self.watchers.retain(|w| {
            for event in events {
                if !service.watch_matches(&w.request, event) {
                    continue;
                }
                if w.events.capacity() <= 1 {
                    let _ = w.events.try_send(Err(ClientError::Unavailable(
                        "watch fell behind; resume it from the last revision you received".into(),
                    )));
                    return false;
                }
                if w.events.try_send(Ok(event.clone())).is_err() {
                    return false;
                }
            }
            true
        });
    }

    fn serve_ready_reads(&mut self) {
        while let Some(entry) = self.reads_at.first_entry() {
            if *entry.key() > self.applied {
                break;
            }
            for read in entry.remove() {
                self.serve_read(read);
            }
        }
    }

    fn serve_read(&self, read: PendingRead<S>) {
        let response = self.service.query(&read.request);
        finish(read.pending, Ok(response));
    }

    fn snapshot(&mut self) {
        let data = SnapshotData { sessions: self.sessions.clone(), service: self.service.snapshot() };
        match self.codec.encode(&data) {
            Ok(bytes) => {
                let now = self.now();
                tracing::debug!(index = self.applied, bytes = bytes.len(), "snapshot taken");
                self.protocol.compact(now, self.applied, bytes);
                self.last_snapshot = self.applied;
                metrics::counter!(m::SNAPSHOTS).increment(1);
            }
            Err(e) => {
                // Too large for the codec's limit: keep the log instead.
                tracing::warn!(error = %e, "cannot encode a snapshot; the log is not compacted");
                self.last_snapshot = self.applied;
            }
        }
    }
}

fn finish<R>(pending: Pending<R>, result: Result<R, ClientError>) {
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => m::error_label(e),
    };
    metrics::counter!(m::CLIENT_REQUESTS, "op" => pending.op, "outcome" => outcome).increment(1);
    metrics::histogram!(m::CLIENT_REQUEST_DURATION, "op" => pending.op, "outcome" => outcome)
        .record(pending.started.elapsed().as_secs_f64());
    let _ = pending.reply.send(result);
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
