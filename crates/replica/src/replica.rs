//! [`Replica`]: one protocol, one service, and the bookkeeping between them.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use ballot_core::service::{Command, Consistency, Route, Session, SessionCheck, SessionTable, StateMachine};
use ballot_core::{Apply, Event, Instant, NodeId, Output, Persist, PersistId, ProposalId, ProposeError, Protocol};
use ballot_core::{ReadId, Role, Status};
use ballot_wire::{ClientError, Codec};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// How many service tick writes wait for a busy protocol at most.
const TICK_BACKLOG_LIMIT: usize = 1_000;

/// Settings of a [`Replica`].
#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    /// A client request not answered within this time gets [`ClientError::Timeout`].
    pub request_timeout: Duration,
    /// How often the service's tick runs and overdue requests are expired.
    pub tick_interval: Duration,
    /// Snapshot the service and compact the log after this many applied entries.
    pub snapshot_every: u64,
    /// How many client sessions the exactly-once table remembers.
    pub session_capacity: usize,
    /// The client addresses of the members, for "not leader, try X" answers.
    pub client_addrs: HashMap<NodeId, String>,
    /// Report every applied item ([`ReplicaOutput::Applied`]), polled right after it
    /// took effect: the simulator's checkers compare replicas with it.
    pub report_applied: bool,
}

impl Default for ReplicaConfig {
    /// 5 s per request, a tick every 100 ms, a snapshot every 10,000 entries, 100,000
    /// sessions, no client addresses.
    fn default() -> Self {
        ReplicaConfig {
            request_timeout: Duration::from_secs(5),
            tick_interval: Duration::from_millis(100),
            snapshot_every: 10_000,
            session_capacity: 100_000,
            client_addrs: HashMap::new(),
            report_applied: false,
        }
    }
}

/// Names a client request for the host; its [`ReplicaOutput::Reply`] carries it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Names a watch stream for the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WatchId(pub u64);

/// What a [`Replica`] asks its host to do. `M`, `E`, `H` are the protocol's message,
/// entry and hard-state types; `R` and `V` the service's response and event types.
#[derive(Clone, Debug, PartialEq)]
pub enum ReplicaOutput<M, E, H, R, V> {
    /// Send `message` to peer `to` (best effort; the protocol retransmits).
    Send {
        /// The destination.
        to: NodeId,
        /// The message.
        message: M,
    },
    /// Write this batch atomically after all earlier ones; acknowledge it with
    /// [`Replica::persisted`] once durable.
    Persist(Persist<E, H>),
    /// The answer to request `request`.
    Reply {
        /// The request.
        request: RequestId,
        /// The service's response or why there is none.
        result: Result<R, ClientError>,
        /// The request's operation name, for metrics.
        operation: &'static str,
        /// When the request arrived, for latency metrics.
        started: Instant,
    },
    /// The next event of watch `watch`.
    WatchEvent {
        /// The watch.
        watch: WatchId,
        /// The event.
        event: V,
    },
    /// Watch `watch` ended (the replica was restored from a snapshot, or is stopping):
    /// tell the watcher, who resumes elsewhere from its last revision.
    WatchEnded {
        /// The watch.
        watch: WatchId,
        /// Why.
        error: ClientError,
    },
    /// The protocol reported a leader, role or membership change.
    Event(Event),
    /// A proposal was refused or lost (for metrics; its request was answered).
    ProposalFailed,
    /// With [`ReplicaConfig::report_applied`]: `item` was applied. It is polled before
    /// anything else is applied, so [`Replica::digest`] then is the state right after it.
    Applied {
        /// What the protocol handed over.
        item: Apply,
        /// Whether the service applied a command (not answered a retry from the session
        /// table, nor skipped it).
        fresh: bool,
    },
    /// The service was snapshotted and the log compacted up to `index`.
    Snapshot {
        /// The last index the snapshot covers.
        index: u64,
        /// Its encoded size.
        bytes: usize,
    },
}

/// The outputs of a replica hosting protocol `P` and service `S`.
pub type OutputOf<P, S> = ReplicaOutput<
    <P as Protocol>::Message,
    <P as Protocol>::Entry,
    <P as Protocol>::HardState,
    <S as StateMachine>::Response,
    <S as StateMachine>::Event,
>;

/// A replica's view: the protocol's status and how far the service has applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// The protocol's status.
    pub status: Status,
    /// The highest log index the service has applied.
    pub applied_index: u64,
}

/// The service state plus the session table, as stored in a snapshot.
#[derive(Serialize, Deserialize)]
struct SnapshotData<R> {
    sessions: SessionTable<R>,
    service: Vec<u8>,
}

/// A request waiting for its answer.
#[derive(Clone, Copy, Debug)]
struct Pending {
    request: RequestId,
    operation: &'static str,
    started: Instant,
    deadline: Instant,
}

/// A write waiting to be applied: reply routing is by session, or by proposal for a
/// write without one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum WriteKey {
    Session(Session),
    Proposal(ProposalId),
}

#[derive(Clone, Copy, Debug)]
struct PendingWrite {
    pending: Pending,
    proposal: ProposalId,
}

struct PendingRead<Q> {
    request: Q,
    pending: Pending,
}

/// The host of one protocol and one service; see the [crate docs](crate).
pub struct Replica<P: Protocol, S: StateMachine> {
    cfg: ReplicaConfig,
    protocol: P,
    service: S,
    sessions: SessionTable<S::Response>,
    codec: Codec,
    /// The `now` of the latest input.
    now: Instant,
    next_tick: Instant,
    applied: u64,
    last_snapshot: u64,
    next_id: u64,
    writes: HashMap<WriteKey, Vec<PendingWrite>>,
    /// Where the writes of each proposal wait.
    proposals: HashMap<ProposalId, WriteKey>,
    /// Proposals neither applied nor failed yet, and when they were made (ids grow with
    /// time: the first is the oldest).
    open_proposals: BTreeMap<ProposalId, Instant>,
    /// Whether the command applied last was applied fresh by the service.
    last_fresh: bool,
    /// Writes the service's tick asked for that the protocol refused as busy: proposed
    /// first at the next tick, so that a full pipeline delays them by a tick, not by
    /// the service's own retry period.
    tick_backlog: VecDeque<Bytes>,
    /// Writes of the service's tick that are proposed and not yet resolved: asking
    /// again for one of those (a revoke retried while the log is slow) adds nothing
    /// but load, so it waits until the first copy is applied or failed.
    tick_open: HashMap<Bytes, ProposalId>,
    reads: HashMap<ReadId, PendingRead<S::Request>>,
    reads_at: BTreeMap<u64, Vec<PendingRead<S::Request>>>,
    watchers: BTreeMap<WatchId, S::Request>,
    outputs: VecDeque<OutputOf<P, S>>,
}

impl<P: Protocol, S: StateMachine> std::fmt::Debug for Replica<P, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("applied", &self.applied)
            .field("last_snapshot", &self.last_snapshot)
            .field("pending_writes", &self.writes.len())
            .field("pending_reads", &(self.reads.len() + self.reads_at.len()))
            .field("watchers", &self.watchers.len())
            .finish_non_exhaustive()
    }
}

impl<P: Protocol, S: StateMachine> Replica<P, S> {
    /// Hosts `protocol` (already built from its recovered state) and `service` (empty:
    /// the protocol replays the snapshot and the log into it).
    #[must_use]
    pub fn new(protocol: P, service: S, cfg: ReplicaConfig) -> Self {
        Replica {
            sessions: SessionTable::new(cfg.session_capacity),
            protocol,
            service,
            codec: Codec::default(),
            now: Instant::ZERO,
            next_tick: Instant::ZERO,
            applied: 0,
            last_snapshot: 0,
            next_id: 0,
            writes: HashMap::new(),
            proposals: HashMap::new(),
            open_proposals: BTreeMap::new(),
            last_fresh: false,
            tick_backlog: VecDeque::new(),
            tick_open: HashMap::new(),
            reads: HashMap::new(),
            reads_at: BTreeMap::new(),
            watchers: BTreeMap::new(),
            outputs: VecDeque::new(),
            cfg,
        }
    }

    /// The protocol.
    #[must_use]
    pub fn protocol(&self) -> &P {
        &self.protocol
    }

    /// The protocol, for inputs the replica does not know (membership changes,
    /// leadership transfer). Drain [`poll_output`](Self::poll_output) afterwards.
    pub fn protocol_mut(&mut self) -> &mut P {
        &mut self.protocol
    }

    /// The service.
    #[must_use]
    pub fn service(&self) -> &S {
        &self.service
    }

    /// The highest log index the service has applied.
    #[must_use]
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The protocol's status and the applied index.
    #[must_use]
    pub fn status(&self) -> ReplicaStatus {
        ReplicaStatus { status: self.protocol.status(), applied_index: self.applied }
    }

    /// How many requests wait for an answer (writes and reads).
    #[must_use]
    pub fn pending_requests(&self) -> usize {
        self.writes.values().map(Vec::len).sum::<usize>()
            + self.reads.len()
            + self.reads_at.values().map(Vec::len).sum::<usize>()
    }

    /// When the oldest proposal still neither applied nor failed was made: a protocol
    /// must resolve every proposal (the simulator's liveness check).
    #[must_use]
    pub fn oldest_open_proposal(&self) -> Option<Instant> {
        self.open_proposals.first_key_value().map(|(_, at)| *at)
    }

    /// How many watches are open.
    #[must_use]
    pub fn watches(&self) -> usize {
        self.watchers.len()
    }

    /// A digest of the replicated state (service and session table): equal on replicas
    /// that applied the same log.
    #[must_use]
    pub fn digest(&self) -> [u8; 32] {
        sha256(&self.snapshot_bytes().unwrap_or_default())
    }

    fn input(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    /// A message from peer `from` arrived.
    pub fn handle_message(&mut self, now: Instant, from: NodeId, message: P::Message) {
        self.input(now);
        self.protocol.handle_message(self.now, from, message);
    }

    /// Every [`ReplicaOutput::Persist`] batch up to `id` is durable.
    pub fn persisted(&mut self, now: Instant, id: PersistId) {
        self.input(now);
        self.protocol.persisted(self.now, id);
    }

    /// The deadline from [`poll_timeout`](Self::poll_timeout) passed: runs the
    /// protocol's timers, and every tick the service's and the request timeouts.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.input(now);
        if self.protocol.poll_timeout().is_some_and(|t| t <= self.now) {
            self.protocol.handle_timeout(self.now);
        }
        if self.now >= self.next_tick {
            self.next_tick = self.now + self.cfg.tick_interval;
            let leader = self.protocol.status().role == Role::Leader;
            self.service_tick(leader);
            self.expire_requests();
        }
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(self.protocol.poll_timeout().map_or(self.next_tick, |t| t.min(self.next_tick)))
    }

    /// A client request: `request` within `session` (writes carry one so that a retry
    /// applies once). Its answer comes as a [`ReplicaOutput::Reply`] for `id`.
    pub fn request(&mut self, now: Instant, id: RequestId, session: Option<Session>, request: S::Request) {
        match self.codec.encode(&Command { session, request }) {
            Ok(command) => self.request_command(now, id, command),
            Err(e) => self.reply_now(id, "request", now, Err(e.into())),
        }
    }

    /// A client request as the client encoded it (a [`Command`] of the service's
    /// request, wrapped as the protocol's clients wrap it: see
    /// [`Protocol::request_body`]). A write is proposed as these very bytes, so that
    /// whatever the client put in them (a signature, say) reaches every replica unchanged.
    pub fn request_command(&mut self, now: Instant, id: RequestId, command: Bytes) {
        self.submit(now, id, command, false);
    }

    /// Like [`request_command`](Self::request_command), but a linearizable read is
    /// ordered through the protocol like a write (and answered when applied), instead of
    /// waiting for a read barrier: under a Byzantine protocol, the fallback of a client
    /// whose unordered read found no 2f+1 matching answers. Other requests are handled
    /// as by `request_command`.
    pub fn request_ordered(&mut self, now: Instant, id: RequestId, command: Bytes) {
        self.submit(now, id, command, true);
    }

    fn submit(&mut self, now: Instant, id: RequestId, command: Bytes, ordered: bool) {
        self.input(now);
        let body = match self.protocol.request_body(&command) {
            Ok(body) => body,
            Err(reason) => return self.reply_now(id, "request", now, Err(ClientError::InvalidRequest(reason))),
        };
        let Command { session, request } = match self.codec.decode::<Command<S::Request>>(&body) {
            Ok(c) => c,
            Err(e) => return self.reply_now(id, "request", now, Err(e.into())),
        };
        let operation = S::operation(&request);
        if let Err(rejection) = self.service.validate(&request) {
            return self.reply_now(id, operation, now, Err(rejection.into()));
        }
        let pending = Pending { request: id, operation, started: now, deadline: now + self.cfg.request_timeout };
        let rule = self.protocol.client_rule();
        let byzantine = matches!(rule, ballot_core::ClientRule::Matching { .. });
        let route = match S::route(&request).under(rule) {
            Route::Read(Consistency::Linearizable) if ordered => Route::Write,
            route => route,
        };
        match route {
            // Under a Byzantine protocol every replica answers every client: a retry of a
            // write this replica already applied is answered from its session table (the
            // protocol would not order an executed request again).
            Route::Write
                if byzantine
                    && let Some(SessionCheck::Duplicate(previous)) = session.map(|s| self.sessions.check(s)) =>
            {
                let previous = previous.clone();
                self.finish(pending, Ok(previous));
            }
            Route::Write => {
                let proposal = ProposalId(self.next_id());
                match self.protocol.propose(self.now, proposal, command) {
                    Ok(()) => {
                        self.open_proposals.insert(proposal, self.now);
                        let key = session.map_or(WriteKey::Proposal(proposal), WriteKey::Session);
                        self.writes.entry(key).or_default().push(PendingWrite { pending, proposal });
                        self.proposals.insert(proposal, key);
                    }
                    Err(e) => {
                        let e = self.client_error(e);
                        self.outputs.push_back(ReplicaOutput::ProposalFailed);
                        self.finish(pending, Err(e));
                    }
                }
            }
            Route::Read(Consistency::Serializable) => {
                let response = self.service.query(&request);
                self.finish(pending, Ok(response));
            }
            // A leader-local request (a lease keep-alive) waits for the same barrier as a
            // linearizable read: answered only once a quorum confirmed this leader after
            // the request arrived, so that a deposed leader that does not know it yet
            // cannot extend a lease its successor is about to expire.
            Route::Read(Consistency::Linearizable) | Route::Leader => {
                let read = ReadId(self.next_id());
                match self.protocol.read(self.now, read) {
                    Ok(()) => {
                        self.reads.insert(read, PendingRead { request, pending });
                    }
                    Err(e) => {
                        let e = self.client_error(e);
                        self.finish(pending, Err(e));
                    }
                }
            }
            Route::Watch => {
                self.finish(pending, Err(ClientError::InvalidRequest("this request opens a watch stream".into())));
            }
        }
    }

    /// Opens watch `id` for `request` (a request the service routes as a watch): its
    /// history comes first, then every applied event that matches, as
    /// [`ReplicaOutput::WatchEvent`]s. A refused watch ends at once with
    /// [`ReplicaOutput::WatchEnded`].
    pub fn open_watch(&mut self, now: Instant, id: WatchId, request: S::Request) {
        self.input(now);
        if S::route(&request) != Route::Watch {
            let error = ClientError::InvalidRequest("this request is not a watch".into());
            self.outputs.push_back(ReplicaOutput::WatchEnded { watch: id, error });
            return;
        }
        let start = self.service.validate(&request).and_then(|()| self.service.watch_start(&request));
        match start {
            Ok(history) => {
                for event in history {
                    self.outputs.push_back(ReplicaOutput::WatchEvent { watch: id, event });
                }
                self.watchers.insert(id, request);
            }
            Err(rejection) => {
                self.outputs.push_back(ReplicaOutput::WatchEnded { watch: id, error: rejection.into() });
            }
        }
    }

    /// The watcher of `id` went away (or fell behind and was cut off by the host).
    pub fn close_watch(&mut self, id: WatchId) {
        self.watchers.remove(&id);
    }

    /// Answers every pending request and ends every watch with `error` (the replica is
    /// stopping).
    pub fn fail_all(&mut self, error: &ClientError) {
        let mut writes: Vec<PendingWrite> = self.writes.drain().flat_map(|(_, w)| w).collect();
        writes.sort_unstable_by_key(|w| w.pending.request);
        self.proposals.clear();
        for w in writes {
            self.finish(w.pending, Err(error.clone()));
        }
        let mut reads: Vec<Pending> = self
            .reads
            .drain()
            .map(|(_, r)| r.pending)
            .chain(std::mem::take(&mut self.reads_at).into_values().flatten().map(|r| r.pending))
            .collect();
        reads.sort_unstable_by_key(|p| p.request);
        for p in reads {
            self.finish(p, Err(error.clone()));
        }
        for (watch, _) in std::mem::take(&mut self.watchers) {
            self.outputs.push_back(ReplicaOutput::WatchEnded { watch, error: error.clone() });
        }
    }

    /// The next output, or `None` until the next input.
    pub fn poll_output(&mut self) -> Option<OutputOf<P, S>> {
        loop {
            if let Some(out) = self.outputs.pop_front() {
                return Some(out);
            }
            let Some(out) = self.protocol.poll_output() else {
                if self.applied >= self.last_snapshot + self.cfg.snapshot_every && self.applied > self.last_snapshot {
                    self.snapshot();
                    continue;
                }
                return None;
            };
            match out {
                Output::Send { to, message } => return Some(ReplicaOutput::Send { to, message }),
                Output::Persist(batch) => return Some(ReplicaOutput::Persist(batch)),
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
                        self.finish(read.pending, Err(e));
                    }
                }
                Output::ProposalFailed { id, error } => self.proposal_failed(id, error),
                Output::Event(event) => {
                    if let Event::RoleChanged(role) = &event {
                        // Services keep leader-only state (lease deadlines): tell them at once.
                        self.service_tick(*role == Role::Leader);
                    }
                    return Some(ReplicaOutput::Event(event));
                }
            }
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn not_leader(&self, leader: Option<NodeId>) -> ClientError {
        ClientError::NotLeader { leader, leader_addr: leader.and_then(|l| self.cfg.client_addrs.get(&l).cloned()) }
    }

    fn client_error(&self, e: ProposeError) -> ClientError {
        match e {
            ProposeError::NotLeader { leader } => self.not_leader(leader),
            other => other.into(),
        }
    }

    fn finish(&mut self, pending: Pending, result: Result<S::Response, ClientError>) {
        self.outputs.push_back(ReplicaOutput::Reply {
            request: pending.request,
            result,
            operation: pending.operation,
            started: pending.started,
        });
    }

    fn reply_now(
        &mut self,
        id: RequestId,
        operation: &'static str,
        now: Instant,
        result: Result<S::Response, ClientError>,
    ) {
        self.input(now);
        let pending = Pending { request: id, operation, started: now, deadline: now };
        self.finish(pending, result);
    }

    /// Runs the service's tick and proposes the writes it asks for (without a session:
    /// nobody waits for their answers). Those the protocol is too busy for wait in
    /// [`tick_backlog`](Self::tick_backlog) for the next tick (while this node leads).
    ///
    /// Under a Byzantine protocol the service ticks as a follower and nothing is proposed:
    /// a tick's writes would be unsigned commands that correct replicas refuse, and one
    /// replica's clock is not the cluster's (leases expire in agreed time instead, see
    /// [`StateMachine::apply_time`]).
    fn service_tick(&mut self, is_leader: bool) {
        if matches!(self.protocol.client_rule(), ballot_core::ClientRule::Matching { .. }) {
            let _ = self.service.tick(self.now, false);
            self.protocol.time_wanted(self.now, self.service.agreed_deadline());
            return;
        }
        let requests = self.service.tick(self.now, is_leader);
        if !is_leader {
            self.tick_backlog.clear();
            self.tick_open.clear();
        }
        for request in requests {
            match self.codec.encode(&Command { session: None, request }) {
                // The service asks again for what it still waits for (a revoke it retries):
                // one copy waiting or in flight is enough.
                Ok(command) if self.tick_backlog.contains(&command) || self.tick_open.contains_key(&command) => {}
                Ok(command) if self.tick_backlog.len() < TICK_BACKLOG_LIMIT => self.tick_backlog.push_back(command),
                Ok(_) => tracing::warn!("service tick backlog full: a tick proposal waits for the service's retry"),
                Err(e) => tracing::error!(error = %e, "cannot encode a service tick proposal"),
            }
        }
        while let Some(command) = self.tick_backlog.pop_front() {
            let id = ProposalId(self.next_id());
            match self.protocol.propose(self.now, id, command.clone()) {
                Ok(()) => {
                    self.open_proposals.insert(id, self.now);
                    self.tick_open.insert(command, id);
                }
                Err(ProposeError::Busy) => {
                    self.tick_backlog.push_front(command);
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "service tick proposal refused");
                    self.tick_backlog.clear();
                }
            }
        }
    }

    fn expire_requests(&mut self) {
        let now = self.now;
        let mut late = Vec::new();
        self.writes.retain(|_, waiting| {
            waiting.retain(|w| {
                let keep = w.pending.deadline > now;
                if !keep {
                    late.push(w.pending);
                }
                keep
            });
            !waiting.is_empty()
        });
        let writes = &self.writes;
        self.proposals.retain(|_, key| writes.contains_key(key));
        let expired: Vec<ReadId> =
            self.reads.iter().filter(|(_, r)| r.pending.deadline <= now).map(|(id, _)| *id).collect();
        for id in expired {
            if let Some(r) = self.reads.remove(&id) {
                late.push(r.pending);
            }
        }
        for waiting in self.reads_at.values_mut() {
            waiting.retain(|r| {
                let keep = r.pending.deadline > now;
                if !keep {
                    late.push(r.pending);
                }
                keep
            });
        }
        self.reads_at.retain(|_, v| !v.is_empty());
        // In request order: the maps above iterate in no fixed order, and the replies'
        // order must not depend on it (deterministic simulation).
        late.sort_unstable_by_key(|p| p.request);
        for p in late {
            self.finish(p, Err(ClientError::Timeout));
        }
    }

    /// Proposal `id` was applied or failed.
    fn resolved(&mut self, id: ProposalId) {
        self.open_proposals.remove(&id);
        if !self.tick_open.is_empty() {
            self.tick_open.retain(|_, open| *open != id);
        }
    }

    fn proposal_failed(&mut self, id: ProposalId, error: ProposeError) {
        self.resolved(id);
        let Some(key) = self.proposals.remove(&id) else { return };
        let Some(waiting) = self.writes.get_mut(&key) else { return };
        // Only the requests that rode on this proposal: a retry may have re-proposed.
        let (failed, rest): (Vec<PendingWrite>, Vec<PendingWrite>) = waiting.drain(..).partition(|w| w.proposal == id);
        if rest.is_empty() {
            self.writes.remove(&key);
        } else {
            *waiting = rest;
        }
        let e = self.client_error(error);
        self.outputs.push_back(ReplicaOutput::ProposalFailed);
        for w in failed {
            self.finish(w.pending, Err(e.clone()));
        }
    }

    fn apply(&mut self, item: Apply) {
        let report = self.cfg.report_applied.then(|| item.clone());
        self.last_fresh = false;
        self.apply_item(item);
        if let Some(item) = report {
            self.outputs.push_back(ReplicaOutput::Applied { item, fresh: self.last_fresh });
        }
        self.serve_ready_reads();
    }

    fn apply_item(&mut self, item: Apply) {
        match item {
            Apply::Command { index, command, proposal } => {
                if let Some(id) = proposal {
                    self.resolved(id);
                }
                let (key, result) = self.apply_command(index, &command);
                self.applied = index;
                let key = key.or(proposal.map(WriteKey::Proposal));
                if let Some(waiting) = key.and_then(|k| self.writes.remove(&k)) {
                    for w in waiting {
                        self.proposals.remove(&w.proposal);
                        self.finish(w.pending, result.clone());
                    }
                }
            }
            Apply::Internal { index } => {
                self.service.apply_internal(index);
                self.applied = index;
            }
            Apply::Time { index, unix_ms } => {
                let events = self.service.apply_time(index, unix_ms);
                self.applied = index;
                self.publish(events);
            }
            Apply::Checkpoint { index } => {
                let state = self.snapshot_bytes().unwrap_or_default();
                let digest = sha256(&state);
                self.protocol.checkpoint(self.now, index, digest, state);
            }
            Apply::Restore(snapshot) => {
                match self.codec.decode::<SnapshotData<S::Response>>(&snapshot.data) {
                    Ok(data) => match self.service.restore(&data.service) {
                        Ok(()) => self.sessions = data.sessions,
                        Err(e) => {
                            tracing::error!(index = snapshot.meta.index, error = %e, "cannot restore the service snapshot");
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
                for (watch, _) in std::mem::take(&mut self.watchers) {
                    let error = ClientError::Unavailable(
                        "this node was restored from a snapshot; resume the watch from your last revision".into(),
                    );
                    self.outputs.push_back(ReplicaOutput::WatchEnded { watch, error });
                }
            }
        }
    }

    /// Applies one committed command; returns where its answer is awaited and the answer.
    fn apply_command(&mut self, index: u64, command: &Bytes) -> (Option<WriteKey>, Result<S::Response, ClientError>) {
        let decoded = self
            .protocol
            .request_body(command)
            .and_then(|body| self.codec.decode::<Command<S::Request>>(&body).map_err(|e| e.to_string()));
        let Command { session, request } = match decoded {
            Ok(c) => c,
            Err(e) => {
                // Every replica skips it alike, so replicas stay identical.
                tracing::error!(index, error = %e, "skipping a log entry this service cannot decode");
                self.service.apply_internal(index);
                return (None, Err(ClientError::Internal(format!("undecodable command at index {index}: {e}"))));
            }
        };
        let key = session.map(WriteKey::Session);
        let (response, events) = match session.map(|s| (s, self.sessions.check(s))) {
            Some((_, SessionCheck::Duplicate(previous))) => {
                let previous = previous.clone();
                self.service.apply_internal(index);
                (previous, Vec::new())
            }
            Some((_, SessionCheck::Stale)) => {
                self.service.apply_internal(index);
                return (
                    key,
                    Err(ClientError::InvalidRequest(
                        "a retry of a write older than the session's latest one; its outcome is no longer known".into(),
                    )),
                );
            }
            Some((s, SessionCheck::Fresh)) => {
                self.last_fresh = true;
                let (response, events) = self.service.apply(index, request);
                self.sessions.record(s, index, response.clone());
                (response, events)
            }
            None => {
                self.last_fresh = true;
                self.service.apply(index, request)
            }
        };
        self.publish(events);
        (key, Ok(response))
    }

    fn publish(&mut self, events: Vec<S::Event>) {
        if events.is_empty() || self.watchers.is_empty() {
            return;
        }
        for event in events {
            for (watch, request) in &self.watchers {
                if self.service.watch_matches(request, &event) {
                    self.outputs.push_back(ReplicaOutput::WatchEvent { watch: *watch, event: event.clone() });
                }
            }
        }
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

    fn serve_read(&mut self, read: PendingRead<S::Request>) {
        let result = if S::route(&read.request) == Route::Leader {
            let status = self.protocol.status();
            if status.role == Role::Leader {
                Ok(self.service.leader_request(self.now, &read.request))
            } else {
                Err(self.not_leader(status.leader))
            }
        } else {
            Ok(self.service.query(&read.request))
        };
        self.finish(read.pending, result);
    }

    fn snapshot_bytes(&self) -> Result<Bytes, ballot_wire::WireError> {
        let data = SnapshotData { sessions: self.sessions.clone(), service: self.service.snapshot() };
        self.codec.encode(&data)
    }

    fn snapshot(&mut self) {
        match self.snapshot_bytes() {
            Ok(bytes) => {
                let size = bytes.len();
                tracing::debug!(index = self.applied, bytes = size, "snapshot taken");
                self.protocol.compact(self.now, self.applied, bytes);
                self.outputs.push_back(ReplicaOutput::Snapshot { index: self.applied, bytes: size });
            }
            // Too large for the codec's limit: keep the log instead.
            Err(e) => tracing::warn!(error = %e, "cannot encode a snapshot; the log is not compacted"),
        }
        self.last_snapshot = self.applied;
    }
}

/// SHA-256 of `data`: the digest of a checkpoint's state.
fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}
