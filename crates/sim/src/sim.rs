//! The simulation engine: virtual time, one seeded generator, the event loop.
//!
//! Every node hosts a [`Replica`] (the same type a real node runs) of the algorithm's
//! protocol and the workload's service; clients go through the same sans-IO call logic
//! as `ballot-client` ([`Call`], [`Endpoints`], [`SessionPool`]).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use ballot_client_proto::{Answer, Call, CallError, Endpoints, Policy, QuorumCall, SessionPool, Step, Vote};
use ballot_core::service::{Command, Session, StateMachine};
use ballot_core::{
    Apply, ClientRule, Event, Instant, Membership, NodeId, Persist, Protocol, Recovered, Role, SeededRng,
};
use ballot_replica::{Replica, ReplicaConfig, ReplicaOutput, RequestId, WatchId};
use ballot_wire::{ClientError, Codec};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{debug, trace};

use crate::SimError;
use crate::algorithm::{AdminAction, Algorithm, EntryOf, HardStateOf, MessageOf, NodeInfo};
use crate::checker::{AppliedItem, Checker, CommandOracle, NodeView, Observation, Violation, generic_checkers};
use crate::disk::SimDisk;
use crate::faults::{Fault, FaultPlan};
use crate::history::{History, OpId, Outcome};
use crate::kv::{Key, KvInput};
use crate::linearizability::{self, LinReport};
use crate::net::{NetConfig, Network};
use crate::report::RunStats;
use crate::workload::{CallOutcome, KvWorkload, PlannedOp, ServiceView, Workload};

/// How the simulated disks behave.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DiskConfig {
    /// Shortest time a write takes to become durable.
    pub delay_min: Duration,
    /// Longest time (uniform in between).
    pub delay_max: Duration,
    /// Probability that a completing sync also makes every batch queued behind it
    /// durable (group commit), rather than only the oldest.
    pub group_commit: f64,
    /// At a crash, writes not yet acknowledged as durable may have reached the disk (a
    /// random prefix of them survives, each batch whole); otherwise all are lost.
    pub unacknowledged_may_survive: bool,
}

impl Default for DiskConfig {
    fn default() -> Self {
        DiskConfig {
            delay_min: Duration::from_micros(200),
            delay_max: Duration::from_millis(8),
            group_commit: 0.5,
            unacknowledged_may_survive: false,
        }
    }
}

/// How the simulated clients behave.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClientConfig {
    /// Concurrent clients (each has one operation in flight at a time).
    pub count: usize,
    /// Keys they use (`0..keys`); fewer keys, more contention.
    pub keys: u64,
    /// How long a client's call may take in all, retries included (the
    /// [`Policy::deadline`] of its calls).
    pub op_timeout: Duration,
    /// Longest pause between two operations of one client.
    pub think_max: Duration,
    /// Longest pause between two attempts of one call.
    pub backoff_max: Duration,
    /// Share of reads among operations (the rest: puts, CAS and deletes).
    pub read_ratio: f64,
    /// How much earlier than its TTL (counted from its last confirmed keep-alive) a
    /// lease holder stops counting on its lease: the clock skew the consensus allows
    /// (PBFT's agreed time), zero where the leader's own clock times leases.
    pub lease_margin: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            count: 4,
            keys: 4,
            op_timeout: Duration::from_secs(2),
            think_max: Duration::from_millis(60),
            backoff_max: Duration::from_millis(100),
            read_ratio: 0.4,
            lease_margin: Duration::ZERO,
        }
    }
}

impl ClientConfig {
    /// The call policy of the simulated clients: a quarter of the call's deadline per
    /// attempt, a tenth of it to connect.
    #[must_use]
    pub fn policy(&self) -> Policy {
        Policy {
            deadline: self.op_timeout,
            attempt_timeout: self.op_timeout / 4,
            connect_timeout: self.op_timeout / 10,
            retry_down_after: self.op_timeout / 10,
            backoff_min: Duration::from_millis(1).min(self.backoff_max),
            backoff_max: self.backoff_max,
            max_redirects: 3,
        }
    }
}

/// Everything that determines a simulation run.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// The seed every random choice derives from.
    pub seed: u64,
    /// Cluster size (nodes are `n1..=nN`).
    pub nodes: usize,
    /// Virtual time to simulate.
    pub duration: Duration,
    /// The initial network weather.
    pub network: NetConfig,
    /// The disks.
    pub disk: DiskConfig,
    /// The clients.
    pub clients: ClientConfig,
    /// Faults to inject.
    pub faults: FaultPlan,
    /// How long after healing a leader and progress must appear.
    pub liveness_bound: Duration,
    /// Clients stop this long before the end so the cluster can converge.
    pub settle: Duration,
    /// After the end, a cluster still catching up (a slow disk, one entry per message)
    /// gets up to this much more virtual time to converge before the final checks.
    pub convergence_bound: Duration,
    /// Take a snapshot every so many applied entries (drawn from this range for each
    /// node at each start), or never.
    pub compaction: Option<(u64, u64)>,
    /// How many clients each replica's exactly-once session table remembers (a tiny
    /// table forgets retried writes: the planted bug the exactly-once checker catches).
    pub session_capacity: usize,
    /// Round-trip every message, entry and hard state through serde (postcard) to catch
    /// state that does not survive the wire or the disk. Off by default: it is slower.
    pub serialize: bool,
    /// Stop with a violation after this many events (a run that never ends).
    pub max_events: u64,
    /// Search steps per key for the linearizability checker.
    pub lin_budget: u64,
    /// How to reproduce this run, printed with violations.
    pub replay: String,
    /// Byzantine nodes: the algorithm rewrites what they send
    /// ([`Algorithm::byzantine_send`]) and checkers judge only the other nodes. Empty
    /// unless the algorithm's [`shape_run`](Algorithm::shape_run) picks some.
    pub byzantine: Vec<NodeId>,
}

impl SimConfig {
    /// A calm run: no faults, default clients, disks and compaction.
    #[must_use]
    pub fn calm(seed: u64, nodes: usize, duration: Duration) -> Self {
        SimConfig {
            seed,
            nodes,
            duration,
            network: NetConfig::calm(),
            disk: DiskConfig::default(),
            clients: ClientConfig::default(),
            faults: FaultPlan::none(),
            liveness_bound: Duration::from_secs(10),
            settle: Duration::from_secs(3),
            convergence_bound: Duration::from_secs(30),
            compaction: Some((50, 200)),
            session_capacity: ReplicaConfig::default().session_capacity,
            serialize: false,
            max_events: 20_000_000,
            lin_budget: linearizability::DEFAULT_STEP_BUDGET,
            replay: format!("(scripted run, seed {seed}, {nodes} nodes)"),
            byzantine: Vec::new(),
        }
    }

    /// The randomized configuration of `seed`: network weather, disk speed, client
    /// mix, compaction frequency and a fault schedule (storage faults included) whose
    /// chaos ends `liveness_bound + settle` before the end, so liveness and convergence
    /// are checked.
    #[must_use]
    pub fn randomized(seed: u64, nodes: usize, duration: Duration, admin: bool) -> Self {
        let mut cfg = SimConfig::calm(seed, nodes, duration);
        // Derived from the seed, but a different stream than the engine's generator.
        let mut rng = SeededRng::new(seed ^ 0xC0FF_EE00_D15E_A5E5);
        // Mostly fast disks, sometimes slow ones (long windows in which a crash loses
        // writes the protocol is waiting for).
        cfg.disk.delay_max = Duration::from_micros(match rng.gen_range(0..20) {
            0..=11 => rng.gen_range(300..5_000),
            12..=16 => rng.gen_range(5_000..30_000),
            _ => rng.gen_range(30_000..200_000),
        });
        cfg.disk.delay_min = cfg.disk.delay_max / 10;
        cfg.disk.group_commit = [0.0, 0.5, 1.0][usize::try_from(rng.gen_range(0..3)).unwrap_or(0)];
        cfg.disk.unacknowledged_may_survive = true;
        cfg.clients.count = usize::try_from(rng.gen_range(2..7)).unwrap_or(4);
        cfg.clients.keys = rng.gen_range(1..6);
        cfg.clients.read_ratio = [0.2, 0.4, 0.6][usize::try_from(rng.gen_range(0..3)).unwrap_or(0)];
        cfg.compaction = match rng.gen_range(0..4) {
            0 => None,
            1 => Some((3, 10)),
            _ => Some((20, 200)),
        };
        if rng.gen_bool(0.3) {
            cfg.network = NetConfig::stormy(&mut rng);
        }
        let ids: Vec<NodeId> = (1..=nodes as u64).map(NodeId).collect();
        let chaos_end = Instant::ZERO + duration.saturating_sub(cfg.liveness_bound + cfg.settle);
        cfg.faults = FaultPlan::random(&mut rng, &ids, chaos_end, admin);
        cfg
    }

    /// Checks the values.
    ///
    /// # Errors
    /// [`SimError::InvalidConfig`] naming the first bad value.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |m: String| Err(SimError::InvalidConfig(m));
        if !(1..=64).contains(&self.nodes) {
            return bad(format!("{} nodes: the simulator runs clusters of 1 to 64 nodes", self.nodes));
        }
        if self.duration.is_zero() || self.duration > Duration::from_secs(24 * 3600) {
            return bad(format!("duration {:?} must be positive and at most a day", self.duration));
        }
        self.network.validate().map_err(SimError::InvalidConfig)?;
        if self.disk.delay_min > self.disk.delay_max || !(0.0..=1.0).contains(&self.disk.group_commit) {
            return bad(format!("bad disk config {:?}", self.disk));
        }
        let c = &self.clients;
        if c.count > 1_000 || c.keys == 0 || c.op_timeout.is_zero() || !(0.0..=1.0).contains(&c.read_ratio) {
            return bad(format!("bad client config {c:?} (at most 1000 clients, at least one key, a timeout)"));
        }
        if let Some((lo, hi)) = self.compaction
            && (lo == 0 || lo > hi || hi > 1 << 40)
        {
            return bad(format!("bad compaction range {lo}..={hi}"));
        }
        let hour = Duration::from_secs(3600);
        let delays = [
            ("network delay_max", self.network.delay_max),
            ("network reorder_delay", self.network.reorder_delay),
            ("disk delay_max", self.disk.delay_max),
            ("client op_timeout", c.op_timeout),
            ("client think_max", c.think_max),
            ("client backoff_max", c.backoff_max),
            ("liveness_bound", self.liveness_bound),
            ("settle", self.settle),
            ("convergence_bound", self.convergence_bound),
        ];
        if let Some((name, d)) = delays.iter().find(|(_, d)| *d > hour) {
            return bad(format!("{name} {d:?} exceeds an hour of virtual time"));
        }
        for id in &self.byzantine {
            if id.0 == 0 || id.0 > self.nodes as u64 {
                return Err(SimError::UnknownNode(*id));
            }
        }
        for (_, f) in &self.faults.actions {
            for id in fault_nodes(f) {
                if id.0 == 0 || id.0 > self.nodes as u64 {
                    return Err(SimError::UnknownNode(id));
                }
            }
        }
        Ok(())
    }
}

fn fault_nodes(f: &Fault) -> Vec<NodeId> {
    match f {
        Fault::Partition(groups) => groups.iter().flatten().copied().collect(),
        Fault::CutOneWay { from, to } => from.iter().chain(to).copied().collect(),
        Fault::Crash(n) | Fault::Restart(n) | Fault::CrashAfterSync { node: n, .. } | Fault::CorruptDisk(n) => {
            vec![*n]
        }
        Fault::Admin(AdminAction::TransferLeadership { to }) => vec![*to],
        Fault::Admin(AdminAction::AddVoter(n) | AdminAction::RemoveVoter(n)) => vec![*n],
        Fault::PinClients(n) => n.iter().copied().collect(),
        Fault::HealNetwork | Fault::Weather(_) | Fault::HealAll | Fault::CrashLeader { .. } | Fault::IsolateLeader => {
            Vec::new()
        }
    }
}

type ServiceOf<W> = <W as Workload>::Service;
type RequestOf<W> = <ServiceOf<W> as StateMachine>::Request;
type ResponseOf<W> = <ServiceOf<W> as StateMachine>::Response;
type EventOf<W> = <ServiceOf<W> as StateMachine>::Event;
/// What a simulated node's replica puts out.
type NodeOutput<A, W> = ReplicaOutput<MessageOf<A>, EntryOf<A>, HardStateOf<A>, ResponseOf<W>, EventOf<W>>;

enum Ev<M, R, V> {
    Start { node: usize },
    Deliver { from: usize, to: usize, message: M },
    Timer { node: usize, generation: u64 },
    DiskDone { node: usize, incarnation: u64 },
    ClientWake { client: usize },
    Connected { client: usize, node: usize, incarnation: u64 },
    ClientArrive { node: usize, client: usize, attempt: u64, command: Bytes },
    ClientReply { client: usize, attempt: u64, node: usize, result: Result<R, ClientError> },
    WatchOpen { node: usize, watcher: usize, generation: u64 },
    WatchEvent { watcher: usize, generation: u64, event: V },
    WatchEnded { watcher: usize, generation: u64, error: ClientError },
    WatchWake { watcher: usize },
    Fault(Fault),
    RestoreMembership,
}

struct SimNode<A: Algorithm, W: Workload> {
    id: NodeId,
    replica: Option<Replica<A::Protocol, ServiceOf<W>>>,
    incarnation: u64,
    disk: SimDisk<EntryOf<A>, HardStateOf<A>>,
    disk_queue: VecDeque<Persist<EntryOf<A>, HardStateOf<A>>>,
    disk_busy: bool,
    timer: Option<Instant>,
    timer_generation: u64,
    /// Client requests waiting for their reply: who sent them, which attempt.
    requests: HashMap<RequestId, (usize, u64)>,
    /// Watch streams served here: which watcher, which of its streams.
    watches: HashMap<WatchId, (usize, u64)>,
    info: Option<NodeInfo>,
    /// Crash right after the next completed sync, for this long.
    crash_after_sync: Option<Duration>,
    /// Why the node refuses to start (its disk failed verification), if it does.
    refuses: Option<String>,
    /// One of the run's Byzantine nodes.
    byzantine: bool,
    /// The last result it answered a client with (a lying node replays it).
    last_reply: Option<ResponseOf<W>>,
}

/// A simulated client: the call logic of `ballot-client`, on the simulated network.
struct SimClient<Q, R> {
    endpoints: Endpoints<usize>,
    sessions: SessionPool,
    current: Option<ClientCall<Q, R>>,
    /// The earliest wake-up already scheduled.
    next_wake: Option<Instant>,
    /// Attempts sent so far, over all calls: replies name theirs, and a late reply to an
    /// attempt of an earlier call must not be taken for the current one's.
    attempts: u64,
}

/// How a client call collects its answer: the protocol's [`ClientRule`].
enum CallKind<R> {
    /// The answer of the node asked (the leader, after redirects).
    Leader(Call<usize>),
    /// Matching replies from distinct replicas; the replies so far by fingerprint.
    Quorum(QuorumCall<usize>, HashMap<u64, R>),
}

struct ClientCall<Q, R> {
    op: Option<OpId>,
    request: Q,
    call: CallKind<R>,
    /// The first attempt number of this call: replies to earlier ones are stale.
    first_attempt: u64,
    command: Bytes,
    session: Session,
    attempt: u64,
    response: Option<R>,
}

/// A watcher: keeps one watch stream open at some node, reconnecting elsewhere when it
/// ends (the workload tracks where to resume).
struct SimWatcher {
    endpoints: Endpoints<usize>,
    node: Option<usize>,
    generation: u64,
    /// While (re)connecting: the call choosing the node.
    opening: Option<Call<usize>>,
    /// When the last item of its stream arrives: a stream delivers in order.
    stream_clock: Instant,
    /// The earliest wake-up already scheduled.
    next_wake: Option<Instant>,
}

/// Replicas' states are compared (by digest) at every index divisible by this.
const DIGEST_EVERY: u64 = 8;

/// Whose operation a test submitted directly (not one of the simulated clients).
const TEST_CLIENT: usize = usize::MAX;

/// A deterministic simulation of one cluster running algorithm `A` with workload `W`
/// (by default the key-value database).
///
/// Build it with [`Simulation::new`] (or [`Simulation::with_workload`]), then either
/// [`run`](Simulation::run) it to the end or drive it step by step with
/// [`run_until`](Simulation::run_until) and [`apply_fault`](Simulation::apply_fault)
/// (scripted scenarios), and finish with [`finish`](Simulation::finish).
pub struct Simulation<A: Algorithm, W: Workload = KvWorkload> {
    algo: A,
    workload: W,
    config: SimConfig,
    ids: Vec<NodeId>,
    initial: Membership,
    rng: SeededRng,
    now: Instant,
    queue: crate::queue::EventQueue<Ev<MessageOf<A>, ResponseOf<W>, EventOf<W>>>,
    nodes: Vec<SimNode<A, W>>,
    network: Network,
    clients: Vec<SimClient<RequestOf<W>, ResponseOf<W>>>,
    watchers: Vec<SimWatcher>,
    clients_stop_at: Instant,
    history: History,
    codec: Codec,
    next_request: u64,
    /// The command each client session sent: what Validity compares applied commands with.
    sent: HashMap<Session, (Option<OpId>, Bytes)>,
    checkers: Vec<Box<dyn Checker<A::Protocol>>>,
    healed_since: Option<Instant>,
    last_success: Option<Instant>,
    committed: HashMap<OpId, u64>,
    /// The first log index at which each unique effect was applied (exactly-once).
    effects: HashMap<Vec<u8>, (u64, NodeId)>,
    max_applied: u64,
    stats: RunStats,
    step_applied: Vec<AppliedItem>,
    same_instant: u64,
    restoring_membership: bool,
    /// Every client request goes to this node ([`Fault::PinClients`]).
    client_pin: Option<usize>,
    /// What clients need before they accept an answer (the protocol's rule).
    client_rule: ClientRule,
}

type StepResult = Result<(), Box<Violation>>;

impl<A: Algorithm> Simulation<A, KvWorkload> {
    /// Builds the cluster (every replica from empty durable state) running the
    /// key-value database, and schedules the fault plan and the clients.
    ///
    /// # Errors
    /// [`SimError::InvalidConfig`] or [`SimError::UnknownNode`] for a bad config,
    /// [`SimError::Build`] if the algorithm refuses to build a replica.
    pub fn new(algo: A, config: SimConfig) -> Result<Self, SimError> {
        Self::with_workload(algo, KvWorkload::default(), config)
    }
}

impl<A: Algorithm, W: Workload> Simulation<A, W> {
    /// Builds the cluster (every replica from empty durable state) running `workload`'s
    /// service, and schedules the fault plan, the clients and the watchers.
    ///
    /// # Errors
    /// As [`Simulation::new`].
    pub fn with_workload(mut algo: A, mut workload: W, mut config: SimConfig) -> Result<Self, SimError> {
        config.validate()?;
        let mut rng = SeededRng::new(config.seed);
        algo.vary(&mut rng);
        if <W::Service as ballot_core::service::StateMachine>::wants_agreed_time() {
            config.clients.lease_margin = algo.agreed_time_needed();
        }
        workload.shape(&mut rng, &mut config.clients);
        let ids: Vec<NodeId> = (1..=config.nodes as u64).map(NodeId).collect();
        let initial = Membership::new(ids.iter().copied());
        let mut checkers = generic_checkers(config.liveness_bound, algo.elects_leader());
        checkers.extend(algo.checkers(&config));
        let nodes = ids
            .iter()
            .map(|&id| SimNode {
                id,
                replica: None,
                incarnation: 0,
                disk: SimDisk::new(),
                disk_queue: VecDeque::new(),
                disk_busy: false,
                timer: None,
                timer_generation: 0,
                requests: HashMap::new(),
                watches: HashMap::new(),
                info: None,
                crash_after_sync: None,
                refuses: None,
                byzantine: config.byzantine.contains(&id),
                last_reply: None,
            })
            .collect();
        let mut queue = crate::queue::EventQueue::new();
        for (at, fault) in &config.faults.actions {
            queue.push(*at, Ev::Fault(fault.clone()));
        }
        let n = ids.len();
        let endpoints = |rng: &mut SeededRng| {
            // Each client knows every node, starting from a different one.
            let first = usize::try_from(rng.gen_range(0..n as u64)).unwrap_or(0);
            Endpoints::new((0..n).map(|i| (first + i) % n).collect())
        };
        let clients = (0..config.clients.count)
            .map(|c| {
                queue.push(Instant::ZERO + config.clients.think_max, Ev::ClientWake { client: c });
                SimClient {
                    endpoints: endpoints(&mut rng),
                    sessions: SessionPool::new(1 + c as u64),
                    current: None,
                    next_wake: None,
                    attempts: 0,
                }
            })
            .collect();
        let watchers = (0..workload.watchers())
            .map(|w| {
                let first = Instant::ZERO + config.clients.think_max;
                queue.push(first, Ev::WatchWake { watcher: w });
                SimWatcher {
                    endpoints: endpoints(&mut rng),
                    node: None,
                    generation: 0,
                    opening: None,
                    stream_clock: Instant::ZERO,
                    next_wake: Some(first),
                }
            })
            .collect();
        let end = Instant::ZERO + config.duration;
        let quiet = duration_nanos(config.settle) + duration_nanos(workload.wind_down());
        let clients_stop_at = Instant::from_nanos(end.as_nanos().saturating_sub(quiet));
        debug!(target: "ballot_sim", seed = config.seed, nodes = config.nodes, settings = %algo.settings(), service = workload.name(), "simulation starts");
        debug!(target: "ballot_sim", disk = ?config.disk, clients = ?config.clients, network = ?config.network, "world");
        for (at, f) in &config.faults.actions {
            debug!(target: "ballot_sim", "planned fault at {at:?}: {f:?}");
        }
        let config_network = config.network;
        let byzantine_run = !config.byzantine.is_empty();
        let mut sim = Simulation {
            algo,
            workload,
            network: Network::new(config.network),
            config,
            ids,
            initial,
            rng,
            now: Instant::ZERO,
            queue,
            nodes,
            clients,
            watchers,
            clients_stop_at,
            history: History::new(),
            codec: Codec::default(),
            next_request: 1,
            sent: HashMap::new(),
            checkers,
            // A cluster starts healthy unless the seed starts it in bad weather.
            healed_since: (!lossy(&config_network)).then_some(Instant::ZERO),
            last_success: None,
            committed: HashMap::new(),
            effects: HashMap::new(),
            max_applied: 0,
            stats: RunStats { runs: 1, byzantine_runs: u64::from(byzantine_run), ..RunStats::default() },
            step_applied: Vec::new(),
            same_instant: 0,
            restoring_membership: false,
            client_pin: None,
            client_rule: ClientRule::Leader,
        };
        for i in 0..sim.nodes.len() {
            sim.boot(i).map_err(|reason| SimError::Build { node: sim.ids[i], reason })?;
            sim.queue.push(Instant::ZERO, Ev::Start { node: i });
        }
        if let Some(r) = sim.nodes.first().and_then(|n| n.replica.as_ref()) {
            sim.client_rule = r.protocol().client_rule();
        }
        Ok(sim)
    }

    /// Builds node `i`'s replica from its disk.
    fn boot(&mut self, i: usize) -> Result<(), String> {
        let id = self.ids[i];
        let recovered = self.nodes[i].disk.recover()?;
        let protocol =
            self.algo.build(id, &self.initial, recovered, self.rng.fork(), self.now).map_err(|e| e.to_string())?;
        let snapshot_every = match self.config.compaction {
            Some((lo, hi)) => self.rng.gen_range(lo..hi + 1),
            None => u64::MAX / 2,
        };
        let cfg = ReplicaConfig {
            request_timeout: self.config.clients.op_timeout,
            snapshot_every,
            session_capacity: self.config.session_capacity,
            report_applied: true,
            ..ReplicaConfig::default()
        };
        let replica = Replica::new(protocol, self.workload.service(), cfg);
        let n = &mut self.nodes[i];
        n.info = Some(self.algo.info(replica.protocol()));
        n.replica = Some(replica);
        Ok(())
    }

    /// Virtual time now.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The configuration of this run.
    #[must_use]
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The algorithm (with this run's settings).
    #[must_use]
    pub fn algorithm(&self) -> &A {
        &self.algo
    }

    /// The workload.
    #[must_use]
    pub fn workload(&self) -> &W {
        &self.workload
    }

    /// The node ids, `n1..=nN`.
    #[must_use]
    pub fn ids(&self) -> &[NodeId] {
        &self.ids
    }

    /// Node `id`'s protocol, or `None` while it is crashed (or if there is no such node).
    #[must_use]
    pub fn replica(&self, id: NodeId) -> Option<&A::Protocol> {
        self.node_index(id).and_then(|i| self.nodes[i].replica.as_ref()).map(Replica::protocol)
    }

    /// Node `id`'s service, or `None` while it is crashed.
    #[must_use]
    pub fn service(&self, id: NodeId) -> Option<&ServiceOf<W>> {
        self.node_index(id).and_then(|i| self.nodes[i].replica.as_ref()).map(Replica::service)
    }

    /// The log index node `id`'s service has applied (0 while it is down).
    #[must_use]
    pub fn applied(&self, id: NodeId) -> u64 {
        self.node_index(id).and_then(|i| self.nodes[i].replica.as_ref()).map_or(0, Replica::applied)
    }

    /// The digest of node `id`'s replicated state (service and sessions), or `None`
    /// while it is down.
    #[must_use]
    pub fn digest(&self, id: NodeId) -> Option<[u8; 32]> {
        self.node_index(id).and_then(|i| self.nodes[i].replica.as_ref()).map(Replica::digest)
    }

    /// What node `id` would recover from if it restarted now.
    #[must_use]
    pub fn durable(&self, id: NodeId) -> Option<Recovered<EntryOf<A>, HardStateOf<A>>> {
        let i = self.node_index(id)?;
        self.nodes[i].disk.recover().ok()
    }

    /// Why node `id` refuses to start (its disk failed verification), if it does.
    #[must_use]
    pub fn refused(&self, id: NodeId) -> Option<&str> {
        self.node_index(id).and_then(|i| self.nodes[i].refuses.as_deref())
    }

    /// The leader recognized by every live voter, if any.
    #[must_use]
    pub fn stable_leader(&self) -> Option<NodeId> {
        let leader = self.nodes.iter().find(|n| n.info.is_some_and(|i| i.role == Role::Leader && i.voter))?;
        let term = leader.info?.term;
        self.nodes
            .iter()
            .filter_map(|n| n.info)
            .filter(|i| i.voter)
            .all(|i| i.leader == Some(leader.id) && i.term == term)
            .then_some(leader.id)
    }

    /// The client history so far.
    #[must_use]
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The log index at which operation `op` took effect, once some node applied it.
    #[must_use]
    pub fn committed_at(&self, op: OpId) -> Option<u64> {
        self.committed.get(&op).copied()
    }

    /// Statistics so far.
    #[must_use]
    pub fn stats(&self) -> &RunStats {
        &self.stats
    }

    /// The network (to inspect cuts and counters).
    #[must_use]
    pub fn network(&self) -> &Network {
        &self.network
    }

    fn node_index(&self, id: NodeId) -> Option<usize> {
        let i = usize::try_from(id.0.checked_sub(1)?).ok()?;
        (i < self.nodes.len()).then_some(i)
    }

    fn violation(&self, checker: &str, details: String) -> Box<Violation> {
        Box::new(Violation {
            checker: checker.to_owned(),
            seed: self.config.seed,
            nodes: self.config.nodes,
            at: self.now,
            details,
            replay: self.config.replay.clone(),
        })
    }

    /// Processes every event up to and including `until`, then sets the clock to it.
    ///
    /// # Errors
    /// The first violation found.
    pub fn run_until(&mut self, until: Instant) -> StepResult {
        while let Some(at) = self.queue.peek_time() {
            if at > until {
                break;
            }
            self.step()?;
        }
        self.now = self.now.max(until);
        Ok(())
    }

    /// Processes the next event; returns `false` if there is none.
    ///
    /// # Errors
    /// The first violation found.
    pub fn step(&mut self) -> Result<bool, Box<Violation>> {
        let Some((at, ev)) = self.queue.pop() else { return Ok(false) };
        if at > self.now {
            self.now = at;
            self.same_instant = 0;
        } else {
            self.same_instant += 1;
            if self.same_instant > 1_000_000 {
                return Err(self.violation(
                    "Progress",
                    "virtual time stopped: a million events at the same instant (a timer that is always due?)".into(),
                ));
            }
        }
        self.stats.events += 1;
        if self.stats.events > self.config.max_events {
            return Err(self.violation(
                "Progress",
                format!("more than {} events; queue holds {}", self.config.max_events, self.queue.len()),
            ));
        }
        self.dispatch(ev)?;
        Ok(true)
    }

    /// Runs to the end of the configured duration, performs the final checks and checks
    /// the client history for linearizability.
    ///
    /// # Errors
    /// The first violation found.
    pub fn run(mut self) -> Result<RunStats, Box<Violation>> {
        let end = Instant::ZERO + self.config.duration;
        self.run_until(end)?;
        if self.healed_since.is_some() {
            let deadline = end + self.config.convergence_bound;
            while !self.converged() && self.now < deadline {
                let next = self.now + Duration::from_millis(100);
                self.run_until(next)?;
            }
        }
        self.finish()
    }

    /// Whether every node that can run is up, knows the same commit index and has
    /// applied it, with identical replicated states, no proposal is still open (the
    /// service's own writes, such as lease revocations, settle too) and no client
    /// operation is in flight.
    #[must_use]
    pub fn converged(&self) -> bool {
        let mut it = self.nodes.iter().filter(|n| n.refuses.is_none() && !n.byzantine).map(|n| {
            let r = n.replica.as_ref()?;
            if r.oldest_open_proposal().is_some() {
                return None;
            }
            Some((n.info?.commit_index, r.applied(), r.digest()))
        });
        let Some(Some(first)) = it.next() else { return false };
        first.0 == first.1 && it.all(|x| x == Some(first)) && self.clients.iter().all(|c| c.current.is_none())
    }

    /// Final checks (with `final_check` set: convergence and the like) and the
    /// linearizability check of the whole history; returns the statistics.
    ///
    /// # Errors
    /// The first violation found.
    pub fn finish(mut self) -> Result<RunStats, Box<Violation>> {
        self.check(None, true)?;
        let report = self.check_linearizability();
        self.stats.lin_keys = report.keys;
        self.stats.lin_ops = report.ops;
        self.stats.lin_unknown = report.unknown;
        if let Some(why) = report.violation {
            return Err(self.violation("Linearizability", why));
        }
        for op in self.history.ops() {
            match op.outcome {
                Outcome::Ok { .. } => {
                    self.stats.ops_ok += 1;
                    self.stats.reads_ok += u64::from(op.is_read());
                }
                Outcome::Failed => self.stats.ops_failed += 1,
                Outcome::Indeterminate | Outcome::Pending => self.stats.ops_indeterminate += 1,
            }
        }
        self.stats.virtual_time = self.now - Instant::ZERO;
        self.stats.net = self.network.stats;
        self.stats.rejected = self
            .nodes
            .iter()
            .filter(|n| !n.byzantine)
            .filter_map(|n| n.replica.as_ref())
            .map(|r| self.algo.refused_messages(r.protocol()))
            .sum();
        Ok(self.stats)
    }

    /// Checks the client history so far for linearizability.
    #[must_use]
    pub fn check_linearizability(&self) -> LinReport {
        linearizability::check_history(&self.history, self.config.lin_budget)
    }

    fn dispatch(&mut self, ev: Ev<MessageOf<A>, ResponseOf<W>, EventOf<W>>) -> StepResult {
        let node = match &ev {
            Ev::Start { node }
            | Ev::Deliver { to: node, .. }
            | Ev::Timer { node, .. }
            | Ev::DiskDone { node, .. }
            | Ev::ClientArrive { node, .. }
            | Ev::WatchOpen { node, .. } => Some(*node),
            _ => None,
        };
        let _span = node.map(|i| tracing::debug_span!(target: "ballot_sim", "node", id = %self.ids[i]).entered());
        match ev {
            Ev::Start { node } => self.after_input(node),
            Ev::Deliver { from, to, message } => {
                let (src, dst) = (self.ids[from], self.ids[to]);
                if self.network.is_cut(src, dst) {
                    self.network.stats.cut += 1;
                    return Ok(());
                }
                let now = self.now;
                let Some(replica) = self.nodes[to].replica.as_mut() else {
                    self.network.stats.to_down += 1;
                    return Ok(());
                };
                self.network.stats.delivered += 1;
                trace!(target: "ballot_sim", t = ?now, "{src} -> {dst}: {message:?}");
                replica.handle_message(now, src, message);
                self.after_input(to)
            }
            Ev::Timer { node, generation } => {
                let now = self.now;
                let n = &mut self.nodes[node];
                if n.timer_generation != generation {
                    return Ok(());
                }
                let Some(replica) = n.replica.as_mut() else { return Ok(()) };
                n.timer = None;
                replica.handle_timeout(now);
                self.after_input(node)
            }
            Ev::DiskDone { node, incarnation } => self.disk_done(node, incarnation),
            Ev::ClientWake { client } => {
                if self.clients[client].next_wake.is_some_and(|t| t <= self.now) {
                    self.clients[client].next_wake = None;
                }
                self.client_poll(client);
                Ok(())
            }
            Ev::Connected { client, node, incarnation } => {
                if self.nodes[node].replica.is_some() && self.nodes[node].incarnation == incarnation {
                    self.clients[client].endpoints.connected(node);
                    self.client_poll(client);
                }
                Ok(())
            }
            Ev::ClientArrive { node, client, attempt, command } => self.client_arrive(node, client, attempt, command),
            Ev::ClientReply { client, attempt, node, result } => {
                self.client_reply(client, attempt, node, result);
                Ok(())
            }
            Ev::WatchOpen { node, watcher, generation } => self.watch_open(node, watcher, generation),
            Ev::WatchEvent { watcher, generation, event } => {
                if self.watchers[watcher].generation == generation && self.watchers[watcher].node.is_some() {
                    self.workload.watch_event(watcher, event, self.now);
                    self.check(None, false)?;
                }
                Ok(())
            }
            Ev::WatchEnded { watcher, generation, error } => {
                if self.watchers[watcher].generation == generation {
                    self.workload.watch_ended(watcher, Some(&error), self.now);
                    self.watch_lost(watcher);
                }
                Ok(())
            }
            Ev::WatchWake { watcher } => {
                if self.watchers[watcher].next_wake.is_some_and(|t| t <= self.now) {
                    self.watchers[watcher].next_wake = None;
                }
                self.watch_poll(watcher);
                Ok(())
            }
            Ev::Fault(f) => self.apply_fault(f),
            Ev::RestoreMembership => self.restore_membership(),
        }
    }

    /// Drains node `i`'s outputs, re-arms its timer, refreshes its info and runs the
    /// checkers.
    fn after_input(&mut self, i: usize) -> StepResult {
        self.step_applied.clear();
        loop {
            let n = &mut self.nodes[i];
            let Some(replica) = n.replica.as_mut() else { break };
            let Some(out) = replica.poll_output() else { break };
            self.handle_output(i, out)?;
        }
        let now = self.now;
        let n = &mut self.nodes[i];
        if let Some(replica) = n.replica.as_ref() {
            match replica.poll_timeout() {
                Some(t) if n.timer != Some(t) => {
                    n.timer = Some(t);
                    n.timer_generation += 1;
                    self.queue.push(t.max(now), Ev::Timer { node: i, generation: n.timer_generation });
                }
                Some(_) => {}
                None => {
                    n.timer = None;
                    n.timer_generation += 1;
                }
            }
            n.info = Some(self.algo.info(replica.protocol()));
        }
        self.check(Some(i), false)
    }

    fn check(&mut self, node: Option<usize>, final_check: bool) -> StepResult {
        let views: Vec<NodeView<'_, A::Protocol>> = self
            .nodes
            .iter()
            .map(|n| {
                // A Byzantine node is judged by nobody: checkers see it without state.
                let replica = n.replica.as_ref().filter(|_| !n.byzantine);
                NodeView {
                    id: n.id,
                    incarnation: n.incarnation,
                    replica: replica.map(Replica::protocol),
                    info: n.info.filter(|_| !n.byzantine),
                    applied: replica.map_or(0, Replica::applied),
                    // Encoding the whole state is costly: only the final checks compare it.
                    digest: if final_check { replica.map(|r| fold(r.digest())) } else { None },
                    unsynced_writes: n.disk_queue.len(),
                    refuses_to_start: n.refuses.is_some(),
                    byzantine: n.byzantine,
                }
            })
            .collect();
        let node = node.filter(|&i| !self.nodes[i].byzantine);
        let applied: &[AppliedItem] = if node.is_some() { &self.step_applied } else { &[] };
        let oracle = SentCommands { sent: &self.sent, codec: self.codec, workload: &self.workload };
        let obs = Observation {
            now: self.now,
            node: node.map(|i| self.ids[i]),
            applied,
            nodes: &views,
            healed_since: self.healed_since,
            oldest_pending_proposal: self.oldest_pending(),
            last_client_success: self.last_success,
            clients_active: self.now < self.clients_stop_at && !self.clients.is_empty(),
            history: &self.history,
            commands: &oracle,
            final_check,
        };
        for c in &mut self.checkers {
            if let Err(details) = c.check(&obs) {
                let name = c.name();
                drop(views);
                return Err(self.violation(name, details));
            }
        }
        let view = ServiceView {
            now: self.now,
            services: self.nodes.iter().map(|n| (n.id, n.replica.as_ref().map(Replica::service))).collect(),
            history: &self.history,
            final_check,
        };
        if let Err((name, details)) = self.workload.check(&view) {
            drop(view);
            return Err(self.violation(name, details));
        }
        Ok(())
    }

    /// The oldest proposal a live node made and has seen neither applied nor failed.
    fn oldest_pending(&self) -> Option<(NodeId, Instant)> {
        self.nodes
            .iter()
            .filter(|n| !n.byzantine)
            .filter_map(|n| Some((n.id, n.replica.as_ref()?.oldest_open_proposal()?)))
            .min_by_key(|(_, t)| *t)
    }

    fn round_trip<T: Serialize + DeserializeOwned>(&self, what: &str, value: T) -> Result<T, Box<Violation>> {
        if !self.config.serialize {
            return Ok(value);
        }
        let bytes = postcard::to_allocvec(&value)
            .map_err(|e| self.violation("Serialization", format!("could not serialize a {what}: {e}")))?;
        postcard::from_bytes(&bytes)
            .map_err(|e| self.violation("Serialization", format!("a {what} did not deserialize: {e}")))
    }

    fn handle_output(&mut self, i: usize, out: NodeOutput<A, W>) -> StepResult {
        let now = self.now;
        match out {
            ReplicaOutput::Send { to, message } => {
                let message = self.round_trip("message", message)?;
                if self.nodes[i].byzantine
                    && let Some(core) = self.nodes[i].replica.as_ref()
                {
                    let mut acts = Vec::new();
                    let lies = self.algo.byzantine_send(
                        core.protocol(),
                        self.ids[i],
                        to,
                        message,
                        now,
                        &mut self.rng,
                        &mut acts,
                    );
                    for act in acts {
                        *self.stats.byzantine.entry(act).or_default() += 1;
                    }
                    for (to, message, extra) in lies {
                        self.route(i, to, message, extra);
                    }
                } else {
                    self.route(i, to, message, Duration::ZERO);
                }
            }
            ReplicaOutput::Persist(mut batch) => {
                if self.config.serialize {
                    batch.entries = self.round_trip("log entry batch", std::mem::take(&mut batch.entries))?;
                    batch.hard_state = self.round_trip("hard state", batch.hard_state.take())?;
                    batch.snapshot = self.round_trip("snapshot", batch.snapshot.take())?;
                }
                self.stats.persists += 1;
                self.nodes[i].disk_queue.push_back(batch);
                self.schedule_disk(i);
            }
            ReplicaOutput::Reply { request, mut result, .. } => {
                if self.nodes[i].byzantine && self.algo.lies_to_clients(self.ids[i]) {
                    result = self.lie_to_client(i, result);
                }
                if let Some((client, attempt)) = self.nodes[i].requests.remove(&request) {
                    if client == TEST_CLIENT {
                        self.test_reply(attempt, result);
                    } else {
                        let d = self.network.client_delay(&mut self.rng);
                        self.queue.push(now + d, Ev::ClientReply { client, attempt, node: i, result });
                    }
                }
            }
            ReplicaOutput::WatchEvent { watch, event } => {
                if let Some(&(watcher, generation)) = self.nodes[i].watches.get(&watch) {
                    let at = self.stream_arrival(watcher);
                    self.queue.push(at, Ev::WatchEvent { watcher, generation, event });
                }
            }
            ReplicaOutput::WatchEnded { watch, error } => {
                if let Some((watcher, generation)) = self.nodes[i].watches.remove(&watch) {
                    let at = self.stream_arrival(watcher);
                    self.queue.push(at, Ev::WatchEnded { watcher, generation, error });
                }
            }
            ReplicaOutput::Applied { item, fresh } => {
                // The replica has applied nothing since: its digest is the state after
                // `item`. Taken at every eighth index and at every restore (a digest
                // encodes the whole state).
                let sampled = matches!(item, Apply::Restore(_)) || item.index().is_multiple_of(DIGEST_EVERY);
                let digest = sampled.then(|| self.nodes[i].replica.as_ref().map(|r| fold(r.digest()))).flatten();
                self.applied_item(i, item, digest, fresh)?;
            }
            ReplicaOutput::Snapshot { .. } => self.stats.compactions += 1,
            ReplicaOutput::ProposalFailed => {}
            ReplicaOutput::Event(e) => {
                if e == Event::RoleChanged(Role::Leader) {
                    self.stats.elections += 1;
                }
                debug!(target: "ballot_sim", t = ?now, "{}: {e:?}", self.ids[i]);
            }
        }
        Ok(())
    }

    /// Sends `message` from node `i` to `to` over the simulated network, `extra` later
    /// than the network alone would deliver it.
    fn route(&mut self, i: usize, to: NodeId, message: MessageOf<A>, extra: Duration) {
        let now = self.now + extra;
        let Some(j) = self.node_index(to) else {
            self.network.stats.sent += 1;
            self.network.stats.to_down += 1;
            return;
        };
        let delays = self.network.route(&mut self.rng, self.ids[i], to);
        if let Some((last, rest)) = delays.split_last() {
            for d in rest {
                self.queue.push(now + *d, Ev::Deliver { from: i, to: j, message: message.clone() });
            }
            self.queue.push(now + *last, Ev::Deliver { from: i, to: j, message });
        }
    }

    /// A lying node's answer instead of `result`: the result of an earlier request (a
    /// wrong result), or an error when it has none yet.
    fn lie_to_client(
        &mut self,
        i: usize,
        result: Result<ResponseOf<W>, ClientError>,
    ) -> Result<ResponseOf<W>, ClientError> {
        let n = &mut self.nodes[i];
        let Ok(right) = result else { return result };
        let lie = match n.last_reply.replace(right.clone()) {
            Some(old) if fingerprint(&old) != fingerprint(&right) => Ok(old),
            _ => Err(ClientError::Internal("a lie".into())),
        };
        *self.stats.byzantine.entry("wrong reply").or_default() += 1;
        lie
    }

    /// Records what node `i` applied, for the checkers and statistics.
    fn applied_item(&mut self, i: usize, item: Apply, digest: Option<u64>, fresh: bool) -> StepResult {
        match &item {
            Apply::Command { index, command, .. } => {
                if let Ok(Command { session, request }) = self.codec.decode::<Command<RequestOf<W>>>(command) {
                    if let Some(op) = session.and_then(|s| self.sent.get(&s)).and_then(|(op, _)| *op) {
                        self.committed.entry(op).or_insert(*index);
                    }
                    if *index > self.max_applied {
                        self.stats.commands_committed += 1;
                    }
                    if fresh {
                        self.check_effect(i, *index, &request)?;
                    }
                }
                trace!(target: "ballot_sim", t = ?self.now, "{}: apply {index}", self.ids[i]);
            }
            Apply::Restore(s) => {
                self.stats.restores += 1;
                trace!(target: "ballot_sim", t = ?self.now, "{}: restore snapshot at {}", self.ids[i], s.meta.index);
            }
            Apply::Internal { .. } | Apply::Time { .. } | Apply::Checkpoint { .. } => {}
        }
        self.max_applied = self.max_applied.max(item.index());
        self.step_applied.push(AppliedItem { apply: item, digest });
        Ok(())
    }

    /// **Exactly once**: a write with a unique effect (a unique written value) is applied
    /// by the service at one log index only, however many leaders and retries it crossed:
    /// every other copy of it in the log must have been answered from the session table.
    fn check_effect(&mut self, i: usize, index: u64, request: &RequestOf<W>) -> StepResult {
        let Some(key) = self.workload.effect_key(request) else { return Ok(()) };
        match self.effects.get(&key) {
            None => {
                self.effects.insert(key, (index, self.ids[i]));
                Ok(())
            }
            Some(&(first, _)) if first == index => Ok(()),
            Some(&(first, by)) => {
                let node = self.ids[i];
                Err(self.violation(
                    "ExactlyOnce",
                    format!("{node} applied at index {index} a write already applied at index {first} (by {by}): {request:?}"),
                ))
            }
        }
    }

    fn schedule_disk(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        if n.disk_busy || n.disk_queue.is_empty() {
            return;
        }
        n.disk_busy = true;
        let d = &self.config.disk;
        let delay = self.rng.gen_range(duration_nanos(d.delay_min)..duration_nanos(d.delay_max) + 1);
        let incarnation = n.incarnation;
        self.queue.push(self.now + Duration::from_nanos(delay), Ev::DiskDone { node: i, incarnation });
    }

    fn disk_done(&mut self, i: usize, incarnation: u64) -> StepResult {
        let group = self.rng.gen_bool(self.config.disk.group_commit);
        let n = &mut self.nodes[i];
        if n.incarnation != incarnation || n.replica.is_none() {
            return Ok(());
        }
        n.disk_busy = false;
        let count = if group { n.disk_queue.len() } else { 1 };
        let batches: Vec<_> = n.disk_queue.drain(..count.min(n.disk_queue.len())).collect();
        let Some(last) = batches.last().map(|b| b.id) else { return Ok(()) };
        if let Err(e) = n.disk.write(&batches) {
            let id = n.id;
            return Err(self.violation("Storage", format!("{id}: in-memory store failed: {e}")));
        }
        self.stats.disk_syncs += 1;
        let now = self.now;
        if let Some(replica) = n.replica.as_mut() {
            replica.persisted(now, last);
        }
        self.schedule_disk(i);
        self.after_input(i)?;
        if let Some(downtime) = self.nodes[i].crash_after_sync.take() {
            self.crash(i)?;
            self.queue.push(self.now + downtime, Ev::Fault(Fault::Restart(self.ids[i])));
        }
        Ok(())
    }

    // ----- clients -----

    /// Schedules a wake-up of client `c` at `at`, unless an earlier one is pending.
    fn wake_client(&mut self, c: usize, at: Instant) {
        let client = &mut self.clients[c];
        if client.next_wake.is_some_and(|w| w <= at && w > self.now) {
            return;
        }
        client.next_wake = Some(at);
        self.queue.push(at.max(self.now), Ev::ClientWake { client: c });
    }

    /// Moves client `c`'s call on as far as it can go now, or starts its next operation.
    fn client_poll(&mut self, c: usize) {
        if self.clients[c].current.is_none() {
            self.start_op(c);
        }
        loop {
            let now = self.now;
            let client = &mut self.clients[c];
            let Some(call) = client.current.as_mut() else { return };
            let (step, quorum) = match &mut call.call {
                CallKind::Leader(k) => (k.poll(now, &mut client.endpoints), false),
                CallKind::Quorum(k, _) => (k.poll(now, &mut client.endpoints), true),
            };
            match step {
                Step::Connect(node) => {
                    // A live node accepts the connection after a round trip; a dead one never
                    // answers and the call gives up on it by itself.
                    if self.nodes[node].replica.is_some() {
                        let d = self.network.client_delay(&mut self.rng) * 2;
                        let incarnation = self.nodes[node].incarnation;
                        self.queue.push(now + d, Ev::Connected { client: c, node, incarnation });
                    }
                }
                Step::Send { to, reply_by } => {
                    // (A pin applies to calls started after it: see `start_op`.)
                    client.attempts += 1;
                    call.attempt = client.attempts;
                    let (attempt, command) = (call.attempt, call.command.clone());
                    let d = self.network.client_delay(&mut self.rng);
                    self.queue.push(now + d, Ev::ClientArrive { node: to, client: c, attempt, command });
                    self.wake_client(c, reply_by);
                    // A quorum call sends to every replica before it waits.
                    if !quorum {
                        return;
                    }
                }
                Step::Wait(at) => {
                    self.wake_client(c, at);
                    return;
                }
                Step::Done(result) => {
                    self.finish_op(c, result);
                    return;
                }
            }
        }
    }

    fn start_op(&mut self, c: usize) {
        let now = self.now;
        if now >= self.clients_stop_at {
            return;
        }
        let cfg = self.config.clients;
        let Some(PlannedOp { request, model }) = self.workload.next_op(&mut self.rng, c, now, &cfg) else {
            let think = self.rng.gen_range(1..duration_nanos(cfg.think_max) + 2);
            self.wake_client(c, now + Duration::from_nanos(think));
            return;
        };
        let op = model.map(|(key, input)| self.history.invoke(c, key, input, now));
        let write = W::Service::route(&request).under(self.client_rule) == ballot_core::service::Route::Write;
        let client = &mut self.clients[c];
        let session = client.sessions.take(|| 0);
        let Ok(command) = self.codec.encode(&Command { session: Some(session), request: request.clone() }) else {
            return;
        };
        self.sent.insert(session, (op, command.clone()));
        let policy = cfg.policy();
        let seed = self.rng.next_u64();
        let call = match (self.client_rule, self.client_pin) {
            (ClientRule::Matching { writes, reads }, _) => CallKind::Quorum(
                QuorumCall::new(now, &policy, write, if write { writes } else { reads }),
                HashMap::new(),
            ),
            (ClientRule::Leader, Some(node)) => CallKind::Leader(Call::pinned(now, &policy, write, seed, node)),
            (ClientRule::Leader, None) => CallKind::Leader(Call::new(now, &policy, write, seed)),
        };
        let first_attempt = client.attempts + 1;
        self.algo.client_signed(&command);
        client.current =
            Some(ClientCall { op, request, call, first_attempt, command, session, attempt: 0, response: None });
    }

    fn finish_op(&mut self, c: usize, result: Result<(), CallError>) {
        let now = self.now;
        let Some(mut call) = self.clients[c].current.take() else { return };
        if let CallKind::Quorum(k, replies) = &mut call.call {
            call.response = k.accepted().and_then(|f| replies.remove(&f));
        }
        let outcome = match result {
            Ok(()) => match call.response {
                Some(r) => CallOutcome::Ok(r),
                None => CallOutcome::Unknown,
            },
            Err(CallError::OutcomeUnknown { .. }) => CallOutcome::Unknown,
            Err(CallError::Server(e)) if e.is_outcome_unknown() => CallOutcome::Unknown,
            Err(CallError::Server(e)) => CallOutcome::Failed(e),
            Err(CallError::Unreachable { last }) => CallOutcome::Failed(ClientError::Unavailable(last)),
        };
        // Only a finished call gives its session back (a cancelled one could still apply).
        self.clients[c].sessions.give_back(call.session);
        if let Some(op) = call.op {
            let history_outcome = match &outcome {
                CallOutcome::Ok(r) => match self.workload.model_output(r) {
                    Some(output) => {
                        self.last_success = Some(now);
                        Outcome::Ok { at: now, output }
                    }
                    None => Outcome::Failed,
                },
                CallOutcome::Failed(_) => Outcome::Failed,
                CallOutcome::Unknown => Outcome::Indeterminate,
            };
            self.history.resolve(op, history_outcome);
        } else if matches!(outcome, CallOutcome::Ok(_)) {
            self.last_success = Some(now);
        }
        self.workload.completed(c, &call.request, &outcome, now);
        let think = self.rng.gen_range(0..duration_nanos(self.config.clients.think_max) + 1);
        self.wake_client(c, now + Duration::from_nanos(think));
    }

    fn client_arrive(&mut self, i: usize, client: usize, attempt: u64, command: Bytes) -> StepResult {
        let now = self.now;
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let n = &mut self.nodes[i];
        // A crashed node refuses the connection: the request reaches no replica.
        let Some(replica) = n.replica.as_mut() else { return Ok(()) };
        n.requests.insert(id, (client, attempt));
        replica.request_command(now, id, command);
        self.after_input(i)
    }

    fn client_reply(&mut self, c: usize, attempt: u64, node: usize, result: Result<ResponseOf<W>, ClientError>) {
        let now = self.now;
        let client = &mut self.clients[c];
        // Replies to earlier attempts arrive on streams the client already dropped (under a
        // quorum rule, to earlier calls: each replica answers the attempt sent to it).
        let Some(call) = client.current.as_mut().filter(|call| match call.call {
            CallKind::Leader(_) => call.attempt == attempt,
            CallKind::Quorum(..) => attempt >= call.first_attempt,
        }) else {
            return;
        };
        if let CallKind::Quorum(k, replies) = &mut call.call {
            let vote = match result {
                Ok(response) => {
                    let fingerprint = fingerprint(&response);
                    replies.entry(fingerprint).or_insert(response);
                    Vote::Reply { fingerprint }
                }
                Err(error) => Vote::Error(error),
            };
            k.on_vote(now, node, vote);
            self.client_poll(c);
            return;
        }
        let CallKind::Leader(leader_call) = &mut call.call else { return };
        let answer = match result {
            Ok(response) => {
                call.response = Some(response);
                Answer::Done
            }
            Err(error @ ClientError::NotLeader { leader, .. }) => {
                let leader =
                    leader.and_then(|l| usize::try_from(l.0.checked_sub(1)?).ok()).filter(|&l| l < self.nodes.len());
                Answer::Redirect { leader, error }
            }
            Err(error) => Answer::Error(error),
        };
        leader_call.on_answer(now, &mut client.endpoints, node, answer);
        self.client_poll(c);
    }

    /// Submits a client operation directly to node `id` now, outside the simulated
    /// clients (for scripted scenarios). Its outcome is recorded in the history (and
    /// checked for linearizability) when the node answers. A `Put`'s or `Cas`'s new
    /// value is replaced by a fresh unique one; read it back from the history.
    ///
    /// # Errors
    /// The outer error is a violation found while the node handled the request; the
    /// inner one is the node's refusal ([`ClientError::Unavailable`] for an unknown or
    /// crashed node).
    pub fn submit(&mut self, id: NodeId, key: Key, input: KvInput) -> Result<Result<OpId, ClientError>, Box<Violation>>
    where
        W: SubmitKv,
    {
        let Some(i) = self.node_index(id).filter(|&i| self.nodes[i].replica.is_some()) else {
            return Ok(Err(ClientError::Unavailable("no such node, or it is down".into())));
        };
        let input = self.workload.fresh(input);
        let op = self.history.invoke(TEST_CLIENT, key, input, self.now);
        let request = W::request(key, input);
        let session = Session { client: u64::MAX - op.0, seq: 1 };
        let Ok(command) = self.codec.encode(&Command { session: Some(session), request }) else {
            return Ok(Err(ClientError::Internal("cannot encode".into())));
        };
        self.sent.insert(session, (Some(op), command.clone()));
        self.algo.client_signed(&command);
        let rid = RequestId(self.next_request);
        self.next_request += 1;
        self.nodes[i].requests.insert(rid, (TEST_CLIENT, op.0));
        if let Some(replica) = self.nodes[i].replica.as_mut() {
            replica.request_command(self.now, rid, command);
        }
        self.after_input(i)?;
        // A refusal comes back at once; record it.
        match self.history.get(op).map(|o| o.outcome) {
            Some(Outcome::Failed) => Ok(Err(ClientError::Unavailable("refused".into()))),
            _ => Ok(Ok(op)),
        }
    }

    /// A node answered an operation submitted by a test.
    fn test_reply(&mut self, op: u64, result: Result<ResponseOf<W>, ClientError>) {
        let outcome = match result {
            Ok(r) => match self.workload.model_output(&r) {
                Some(output) => Outcome::Ok { at: self.now, output },
                None => Outcome::Failed,
            },
            Err(e) if e.is_outcome_unknown() => Outcome::Indeterminate,
            Err(_) => Outcome::Failed,
        };
        self.history.resolve(OpId(op), outcome);
    }

    // ----- watchers -----

    /// Schedules a wake-up of watcher `w` at `at`, unless an earlier one is pending.
    fn wake_watcher(&mut self, w: usize, at: Instant) {
        let watcher = &mut self.watchers[w];
        if watcher.next_wake.is_some_and(|t| t <= at && t > self.now) {
            return;
        }
        watcher.next_wake = Some(at);
        self.queue.push(at.max(self.now), Ev::WatchWake { watcher: w });
    }

    /// When the next item of watcher `w`'s stream arrives: after a network delay, and
    /// never before the items sent on the stream earlier.
    fn stream_arrival(&mut self, w: usize) -> Instant {
        let d = self.network.client_delay(&mut self.rng);
        let watcher = &mut self.watchers[w];
        watcher.stream_clock = (self.now + d).max(watcher.stream_clock);
        watcher.stream_clock
    }

    fn watch_poll(&mut self, w: usize) {
        let now = self.now;
        if now >= self.clients_stop_at || self.watchers[w].node.is_some() {
            return;
        }
        let policy = self.config.clients.policy();
        let seed = self.rng.next_u64();
        let wake = loop {
            let watcher = &mut self.watchers[w];
            let call = watcher.opening.get_or_insert_with(|| Call::new(now, &policy, false, seed).served_by_any_node());
            match call.poll(now, &mut watcher.endpoints) {
                Step::Connect(node) => {
                    // Connections are modelled at once for watchers: only the stream matters.
                    if self.nodes[node].replica.is_some() {
                        watcher.endpoints.connected(node);
                    }
                }
                Step::Send { to, reply_by } => {
                    watcher.generation += 1;
                    let generation = watcher.generation;
                    let d = self.network.client_delay(&mut self.rng);
                    self.queue.push(now + d, Ev::WatchOpen { node: to, watcher: w, generation });
                    break reply_by;
                }
                Step::Wait(at) => break at,
                Step::Done(_) => {
                    // Gave up for now: try again later.
                    watcher.opening = None;
                    break now + policy.backoff_max;
                }
            }
        };
        self.wake_watcher(w, wake);
    }

    fn watch_open(&mut self, i: usize, w: usize, generation: u64) -> StepResult {
        let now = self.now;
        if self.watchers[w].generation != generation {
            return Ok(());
        }
        let Some(request) = self.workload.watch_request(w) else { return Ok(()) };
        let id = WatchId(self.next_request);
        self.next_request += 1;
        let n = &mut self.nodes[i];
        let Some(replica) = n.replica.as_mut() else { return Ok(()) };
        n.watches.insert(id, (w, generation));
        replica.open_watch(now, id, request);
        let watcher = &mut self.watchers[w];
        if let Some(mut call) = watcher.opening.take() {
            call.on_answer(now, &mut watcher.endpoints, i, Answer::Done);
        }
        watcher.node = Some(i);
        self.after_input(i)
    }

    /// Watcher `w`'s stream is gone: it reconnects (to any node) from where it was.
    fn watch_lost(&mut self, w: usize) {
        let watcher = &mut self.watchers[w];
        if let Some(node) = watcher.node.take() {
            watcher.endpoints.disconnected(&node);
        }
        watcher.generation += 1;
        watcher.opening = None;
        let at = self.now + self.config.clients.backoff_max;
        self.wake_watcher(w, at);
    }

    // ----- faults -----

    /// Applies a fault now (scripted scenarios use this; fault plans schedule it).
    ///
    /// # Errors
    /// The first violation found while doing so.
    pub fn apply_fault(&mut self, fault: Fault) -> StepResult {
        debug!(target: "ballot_sim", t = ?self.now, "fault: {fault:?}");
        *self.stats.faults.entry(fault.kind()).or_default() += 1;
        match fault {
            Fault::Partition(groups) => {
                self.network.partition(&self.ids, &groups);
                self.healed_since = None;
            }
            Fault::CutOneWay { from, to } => {
                self.network.cut_one_way(&from, &to);
                self.healed_since = None;
            }
            Fault::HealNetwork => self.network.heal(),
            Fault::Weather(w) => {
                if lossy(&w) {
                    self.healed_since = None;
                }
                self.network.set_config(w);
            }
            Fault::Crash(id) => {
                self.healed_since = None;
                if let Some(i) = self.node_index(id) {
                    self.crash(i)?;
                }
            }
            Fault::Restart(id) => {
                if let Some(i) = self.node_index(id) {
                    self.restart(i)?;
                }
            }
            Fault::CrashAfterSync { node, downtime } => {
                self.healed_since = None;
                if let Some(i) = self.node_index(node) {
                    self.nodes[i].crash_after_sync = Some(downtime);
                }
            }
            Fault::CrashLeader { downtime } => {
                self.healed_since = None;
                if let Some(l) = self.leader_index() {
                    self.crash(l)?;
                    let at = self.now + downtime;
                    self.queue.push(at, Ev::Fault(Fault::Restart(self.ids[l])));
                }
            }
            Fault::IsolateLeader => {
                self.healed_since = None;
                if let Some(l) = self.leader_index() {
                    self.network.partition(&self.ids, &[vec![self.ids[l]]]);
                }
            }
            Fault::CorruptDisk(id) => {
                self.healed_since = None;
                if let Some(i) = self.node_index(id) {
                    // Bit rot strikes a stopped disk: crash the node first if it runs.
                    self.crash(i)?;
                    if let Some(what) = self.nodes[i].disk.corrupt(&mut self.rng) {
                        debug!(target: "ballot_sim", t = ?self.now, "{id}: corrupted {what}");
                        self.stats.corruptions += 1;
                    }
                }
            }
            Fault::Admin(action) => self.admin(action)?,
            Fault::PinClients(id) => self.client_pin = id.and_then(|id| self.node_index(id)),
            Fault::HealAll => {
                for n in &mut self.nodes {
                    n.crash_after_sync = None;
                }
                self.network.heal();
                self.network.set_config(NetConfig::calm());
                for i in 0..self.nodes.len() {
                    self.restart(i)?;
                }
                self.healed_since = Some(self.now);
                if self.algo.supports_admin() && !self.restoring_membership {
                    self.restoring_membership = true;
                    self.queue.push(self.now, Ev::RestoreMembership);
                }
            }
        }
        self.check(None, false)
    }

    fn crash(&mut self, i: usize) -> StepResult {
        let n = &mut self.nodes[i];
        if n.replica.is_none() {
            return Ok(());
        }
        // Batches written but not acknowledged may or may not have reached the disk: a
        // random prefix did (each batch whole).
        let reached = if self.config.disk.unacknowledged_may_survive {
            usize::try_from(self.rng.gen_range(0..n.disk_queue.len() as u64 + 1)).unwrap_or(0)
        } else {
            0
        };
        let survivors: Vec<_> = n.disk_queue.drain(..reached).collect();
        debug!(target: "ballot_sim", t = ?self.now, "{}: crash ({} unsynced batches lost, {} reached the disk)", n.id, n.disk_queue.len(), survivors.len());
        if !survivors.is_empty() && n.disk.write(&survivors).is_err() {
            let id = n.id;
            return Err(self.violation("Storage", format!("{id}: in-memory store failed")));
        }
        n.replica = None;
        n.info = None;
        n.incarnation += 1;
        n.disk_queue.clear();
        n.disk_busy = false;
        n.timer = None;
        n.timer_generation += 1;
        n.requests.clear();
        let lost: Vec<usize> = n.watches.drain().map(|(_, (w, _))| w).collect();
        self.step_applied.clear();
        for w in lost {
            // The stream dies with the node; the watcher notices and reconnects.
            self.workload.watch_ended(w, None, self.now);
            self.watch_lost(w);
        }
        self.check(Some(i), false)
    }

    fn restart(&mut self, i: usize) -> StepResult {
        if self.nodes[i].replica.is_some() || self.nodes[i].refuses.is_some() {
            return Ok(());
        }
        let id = self.ids[i];
        if let Err(e) = self.nodes[i].disk.recover() {
            // The node refuses to start rather than run on state it cannot trust.
            debug!(target: "ballot_sim", t = ?self.now, "{id} refuses to start: {e}");
            self.nodes[i].refuses = Some(e);
            self.stats.refused_starts += 1;
            return Ok(());
        }
        if let Err(e) = self.boot(i) {
            return Err(self.violation("Recovery", format!("{id} could not be rebuilt from its durable state: {e}")));
        }
        debug!(target: "ballot_sim", t = ?self.now, "{id}: restart");
        self.after_input(i)
    }

    fn leader_index(&self) -> Option<usize> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.info.is_some_and(|i| i.role == Role::Leader))
            .max_by_key(|(_, n)| n.info.map(|i| i.term))
            .map(|(i, _)| i)
    }

    fn admin(&mut self, action: AdminAction) -> StepResult {
        let Some(l) = self.leader_index() else {
            self.stats.admin.1 += 1;
            return Ok(());
        };
        let now = self.now;
        let Some(replica) = self.nodes[l].replica.as_mut() else { return Ok(()) };
        match self.algo.admin(replica.protocol_mut(), now, action) {
            Ok(()) => self.stats.admin.0 += 1,
            Err(e) => {
                self.stats.admin.1 += 1;
                debug!(target: "ballot_sim", t = ?now, "admin {action:?} refused: {e}");
            }
        }
        self.after_input(l)
    }

    /// After the final heal: add back every node the leader does not count as a voter,
    /// one at a time (waiting out joint configurations), until membership is whole.
    fn restore_membership(&mut self) -> StepResult {
        let state = self.leader_index().and_then(|l| {
            let m = self.nodes[l].replica.as_ref().map(|r| self.algo.membership(r.protocol()))?;
            let wanted = |id: &NodeId| self.node_index(*id).is_some_and(|i| self.nodes[i].refuses.is_none());
            Some((m.is_joint(), self.ids.iter().copied().filter(wanted).find(|id| !m.voters.contains(id))))
        });
        match state {
            Some((false, None)) => {
                self.restoring_membership = false;
                return Ok(());
            }
            Some((false, Some(id))) => self.admin(AdminAction::AddVoter(id))?,
            _ => {}
        }
        self.queue.push(self.now + Duration::from_millis(200), Ev::RestoreMembership);
        Ok(())
    }

    /// Stops the simulated clients from starting new operations.
    pub fn stop_clients(&mut self) {
        self.clients_stop_at = self.clients_stop_at.min(self.now);
    }
}

/// Workloads whose operations a test can submit directly with
/// [`Simulation::submit`]: the key-value model's operations.
pub trait SubmitKv: Workload {
    /// The service request of a model operation.
    fn request(key: Key, input: KvInput) -> RequestOf<Self>;
    /// `input` with a fresh unique value for a write.
    fn fresh(&mut self, input: KvInput) -> KvInput;
}

impl SubmitKv for KvWorkload {
    fn request(key: Key, input: KvInput) -> ballot_kv::KvRequest {
        crate::workload::kv_request(key, input)
    }

    fn fresh(&mut self, input: KvInput) -> KvInput {
        match input {
            KvInput::Put(_) => KvInput::Put(self.fresh_value()),
            KvInput::Cas { expected, .. } => KvInput::Cas { expected, new: self.fresh_value() },
            other => other,
        }
    }
}

/// What Validity compares applied commands with: the bytes each session sent.
struct SentCommands<'a, W> {
    sent: &'a HashMap<Session, (Option<OpId>, Bytes)>,
    codec: Codec,
    workload: &'a W,
}

impl<W: Workload> CommandOracle for SentCommands<'_, W> {
    fn check(&self, command: &Bytes) -> Result<(), String> {
        let Command { session, request } = self
            .codec
            .decode::<Command<RequestOf<W>>>(command)
            .map_err(|e| format!("a command no client sent (it does not decode: {e})"))?;
        match session {
            Some(s) => match self.sent.get(&s) {
                Some((_, bytes)) if bytes == command => Ok(()),
                Some(_) => Err(format!("a command of session {s:?} altered on its way: {request:?}")),
                None => Err(format!("a command of session {s:?}, which no client used: {request:?}")),
            },
            None if self.workload.is_internal(&request) => Ok(()),
            None => Err(format!("a command without a session that no replica's service proposes: {request:?}")),
        }
    }

    fn render(&self, command: &Bytes) -> String {
        match self.codec.decode::<Command<RequestOf<W>>>(command) {
            Ok(c) => format!("{:?} (session {:?})", c.request, c.session),
            Err(_) => format!("{} undecodable bytes", command.len()),
        }
    }
}

/// A fingerprint of a client reply: equal replies, equal fingerprints.
fn fingerprint<R: Serialize>(r: &R) -> u64 {
    use std::hash::Hasher as _;
    let bytes = postcard::to_allocvec(r).unwrap_or_default();
    let mut h = crate::fasthash::FxHasher::default();
    h.write(&bytes);
    h.write_usize(bytes.len());
    h.finish()
}

/// The first 8 bytes of a digest.
fn fold(d: [u8; 32]) -> u64 {
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// Whether the weather loses, duplicates or reorders messages (a fault in force).
fn lossy(w: &NetConfig) -> bool {
    w.drop > 0.0 || w.duplicate > 0.0 || w.reorder > 0.0
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
