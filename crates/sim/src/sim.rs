//! The simulation engine: virtual time, one seeded generator, the event loop.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use ballot_core::{
    Apply, Event, Instant, LogStore, MemStore, Membership, NodeId, Output, Persist, ProposalId, ProposeError, Protocol,
    ReadId, Recovered, Role, SeededRng,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{debug, trace};

use crate::SimError;
use crate::algorithm::{AdminAction, Algorithm, EntryOf, HardStateOf, MessageOf, NodeInfo};
use crate::checker::{AppliedItem, Checker, NodeView, Observation, Violation, generic_checkers};
use crate::faults::{Fault, FaultPlan};
use crate::history::{History, OpId, Outcome};
use crate::kv::{Key, KvCommand, KvInput, KvOutput, KvStore};
use crate::linearizability::{self, LinReport};
use crate::net::{NetConfig, Network};
use crate::report::RunStats;

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
}

impl Default for DiskConfig {
    fn default() -> Self {
        DiskConfig { delay_min: Duration::from_micros(200), delay_max: Duration::from_millis(8), group_commit: 0.5 }
    }
}

/// How the simulated clients behave.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClientConfig {
    /// Concurrent clients (each has one operation in flight at a time).
    pub count: usize,
    /// Keys they use (`0..keys`); fewer keys, more contention.
    pub keys: u64,
    /// How long a client waits for an answer before giving up (the operation becomes
    /// indeterminate if it may have been accepted).
    pub op_timeout: Duration,
    /// Longest pause between two operations of one client.
    pub think_max: Duration,
    /// Longest pause before retrying after a rejection.
    pub backoff_max: Duration,
    /// Share of reads among operations (the rest: puts, CAS and deletes).
    pub read_ratio: f64,
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
    /// snapshot), or never.
    pub compaction: Option<(u64, u64)>,
    /// Round-trip every message, entry and hard state through serde (postcard) to catch
    /// state that does not survive the wire or the disk. Off by default: it is slower.
    pub serialize: bool,
    /// Stop with a violation after this many events (a run that never ends).
    pub max_events: u64,
    /// Search steps per key for the linearizability checker.
    pub lin_budget: u64,
    /// How to reproduce this run, printed with violations.
    pub replay: String,
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
            serialize: false,
            max_events: 20_000_000,
            lin_budget: linearizability::DEFAULT_STEP_BUDGET,
            replay: format!("(scripted run, seed {seed}, {nodes} nodes)"),
        }
    }

    /// The randomized configuration of `seed`: network weather, disk speed, client
    /// mix, compaction frequency and a fault schedule whose chaos ends
    /// `liveness_bound + settle` before the end, so liveness and convergence are checked.
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
        Fault::Crash(n) | Fault::Restart(n) | Fault::CrashAfterSync { node: n, .. } => vec![*n],
        Fault::Admin(AdminAction::TransferLeadership { to }) => vec![*to],
        Fault::Admin(AdminAction::AddVoter(n) | AdminAction::RemoveVoter(n)) => vec![*n],
        Fault::PinClients(n) => n.iter().copied().collect(),
        Fault::HealNetwork | Fault::Weather(_) | Fault::HealAll | Fault::CrashLeader { .. } | Fault::IsolateLeader => {
            Vec::new()
        }
    }
}

/// What a node tells a client.
#[derive(Clone, Debug)]
enum Reply {
    /// The operation took effect with this result.
    Done(KvOutput),
    /// It did not take effect.
    Rejected(ProposeError),
    /// It may or may not take effect.
    Unknown,
}

enum Ev<M> {
    Start { node: usize },
    Deliver { from: usize, to: usize, message: M },
    Timer { node: usize, generation: u64 },
    DiskDone { node: usize, incarnation: u64 },
    ClientWake { client: usize },
    ClientArrive { node: usize, client: usize, op: OpId },
    ClientReply { client: usize, op: OpId, reply: Reply },
    ClientTimeout { client: usize, op: OpId },
    Fault(Fault),
    RestoreMembership,
}

struct PendingProposal {
    node: usize,
    client: usize,
    op: OpId,
    at: Instant,
}

struct PendingRead {
    client: usize,
    op: OpId,
    key: Key,
}

struct SimNode<A: Algorithm> {
    id: NodeId,
    replica: Option<A::Protocol>,
    incarnation: u64,
    store: MemStore<EntryOf<A>, HardStateOf<A>>,
    disk_queue: VecDeque<Persist<EntryOf<A>, HardStateOf<A>>>,
    disk_busy: bool,
    kv: KvStore,
    timer: Option<Instant>,
    timer_generation: u64,
    reads: HashMap<ReadId, PendingRead>,
    waiting_reads: Vec<(u64, PendingRead)>,
    next_compaction: u64,
    info: Option<NodeInfo>,
    /// Crash right after the next completed sync, for this long.
    crash_after_sync: Option<Duration>,
}

struct Client {
    guess: usize,
    current: Option<InFlight>,
}

struct InFlight {
    op: OpId,
    /// An attempt was sent and not definitely rejected: it may take effect.
    outstanding: bool,
    deadline: Instant,
}

/// Whose operation a test submitted directly (not one of the simulated clients).
const TEST_CLIENT: usize = usize::MAX;

/// A deterministic simulation of one cluster running algorithm `A`.
///
/// Build it with [`Simulation::new`], then either [`run`](Simulation::run) it to the end
/// or drive it step by step with [`run_until`](Simulation::run_until) and
/// [`apply_fault`](Simulation::apply_fault) (scripted scenarios), and finish with
/// [`finish`](Simulation::finish).
pub struct Simulation<A: Algorithm> {
    algo: A,
    config: SimConfig,
    ids: Vec<NodeId>,
    initial: Membership,
    rng: SeededRng,
    now: Instant,
    queue: crate::queue::EventQueue<Ev<MessageOf<A>>>,
    nodes: Vec<SimNode<A>>,
    network: Network,
    clients: Vec<Client>,
    clients_stop_at: Instant,
    history: History,
    next_value: u64,
    proposals: BTreeMap<ProposalId, PendingProposal>,
    next_proposal: u64,
    next_read: u64,
    checkers: Vec<Box<dyn Checker<A::Protocol>>>,
    healed_since: Option<Instant>,
    last_success: Option<Instant>,
    committed: HashMap<OpId, u64>,
    max_applied: u64,
    stats: RunStats,
    step_applied: Vec<AppliedItem>,
    same_instant: u64,
    restoring_membership: bool,
    /// Every client request goes to this node ([`Fault::PinClients`]).
    client_pin: Option<usize>,
}

type StepResult = Result<(), Box<Violation>>;

impl<A: Algorithm> Simulation<A> {
    /// Builds the cluster (every replica from empty durable state) and schedules the
    /// fault plan and the clients.
    ///
    /// # Errors
    /// [`SimError::InvalidConfig`] or [`SimError::UnknownNode`] for a bad config,
    /// [`SimError::Build`] if the algorithm refuses to build a replica.
    pub fn new(mut algo: A, config: SimConfig) -> Result<Self, SimError> {
        config.validate()?;
        let mut rng = SeededRng::new(config.seed);
        algo.vary(&mut rng);
        let ids: Vec<NodeId> = (1..=config.nodes as u64).map(NodeId).collect();
        let initial = Membership::new(ids.iter().copied());
        let mut checkers = generic_checkers(config.liveness_bound, algo.elects_leader());
        checkers.extend(algo.checkers(&config));
        let mut nodes = Vec::with_capacity(ids.len());
        for &id in &ids {
            let replica = algo
                .build(id, &initial, Recovered::default(), rng.fork(), Instant::ZERO)
                .map_err(|reason| SimError::Build { node: id, reason })?;
            let info = Some(algo.info(&replica));
            nodes.push(SimNode {
                id,
                replica: Some(replica),
                incarnation: 0,
                store: MemStore::new(),
                disk_queue: VecDeque::new(),
                disk_busy: false,
                kv: KvStore::new(),
                timer: None,
                timer_generation: 0,
                reads: HashMap::new(),
                waiting_reads: Vec::new(),
                next_compaction: 0,
                info,
                crash_after_sync: None,
            });
        }
        let mut queue = crate::queue::EventQueue::new();
        for node in 0..nodes.len() {
            queue.push(Instant::ZERO, Ev::Start { node });
        }
        for (at, fault) in &config.faults.actions {
            queue.push(*at, Ev::Fault(fault.clone()));
        }
        let n = ids.len() as u64;
        let clients = (0..config.clients.count)
            .map(|c| {
                queue.push(Instant::ZERO + config.clients.think_max, Ev::ClientWake { client: c });
                Client { guess: usize::try_from(rng.gen_range(0..n)).unwrap_or(0), current: None }
            })
            .collect();
        let end = Instant::ZERO + config.duration;
        let clients_stop_at = Instant::from_nanos(end.as_nanos().saturating_sub(duration_nanos(config.settle)));
        debug!(target: "ballot_sim", seed = config.seed, nodes = config.nodes, settings = %algo.settings(), "simulation starts");
        debug!(target: "ballot_sim", disk = ?config.disk, clients = ?config.clients, network = ?config.network, "world");
        for (at, f) in &config.faults.actions {
            debug!(target: "ballot_sim", "planned fault at {at:?}: {f:?}");
        }
        let config_network = config.network;
        let mut sim = Simulation {
            algo,
            network: Network::new(config.network),
            config,
            ids,
            initial,
            rng,
            now: Instant::ZERO,
            queue,
            nodes,
            clients,
            clients_stop_at,
            history: History::new(),
            next_value: 1,
            proposals: BTreeMap::new(),
            next_proposal: 1,
            next_read: 1,
            checkers,
            // A cluster starts healthy unless the seed starts it in bad weather.
            healed_since: (!lossy(&config_network)).then_some(Instant::ZERO),
            last_success: None,
            committed: HashMap::new(),
            max_applied: 0,
            stats: RunStats { runs: 1, ..RunStats::default() },
            step_applied: Vec::new(),
            same_instant: 0,
            restoring_membership: false,
            client_pin: None,
        };
        for node in 0..sim.nodes.len() {
            sim.draw_next_compaction(node);
        }
        Ok(sim)
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

    /// The node ids, `n1..=nN`.
    #[must_use]
    pub fn ids(&self) -> &[NodeId] {
        &self.ids
    }

    /// Replica `id`, or `None` while it is crashed (or if there is no such node).
    #[must_use]
    pub fn replica(&self, id: NodeId) -> Option<&A::Protocol> {
        self.node_index(id).and_then(|i| self.nodes[i].replica.as_ref())
    }

    /// The service state of node `id`.
    #[must_use]
    pub fn kv(&self, id: NodeId) -> Option<&KvStore> {
        self.node_index(id).map(|i| &self.nodes[i].kv)
    }

    /// What node `id` would recover from if it restarted now.
    #[must_use]
    pub fn durable(&self, id: NodeId) -> Option<Recovered<EntryOf<A>, HardStateOf<A>>> {
        let i = self.node_index(id)?;
        self.nodes[i].store.clone().recover().ok()
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

    /// Whether every node is up, knows the same commit index and has applied it, with
    /// identical service states, and no client operation is in flight.
    #[must_use]
    pub fn converged(&self) -> bool {
        let mut it = self.nodes.iter().map(|n| Some((n.info?.commit_index, n.kv.applied(), n.kv.digest())));
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
        Ok(self.stats)
    }

    /// Checks the client history so far for linearizability.
    #[must_use]
    pub fn check_linearizability(&self) -> LinReport {
        linearizability::check_history(&self.history, self.config.lin_budget)
    }

    fn dispatch(&mut self, ev: Ev<MessageOf<A>>) -> StepResult {
        let node = match &ev {
            Ev::Start { node }
            | Ev::Deliver { to: node, .. }
            | Ev::Timer { node, .. }
            | Ev::DiskDone { node, .. }
            | Ev::ClientArrive { node, .. } => Some(*node),
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
                self.client_wake(client);
                Ok(())
            }
            Ev::ClientArrive { node, client, op } => self.client_arrive(node, client, op),
            Ev::ClientReply { client, op, reply } => {
                self.client_reply(client, op, reply);
                Ok(())
            }
            Ev::ClientTimeout { client, op } => {
                self.client_timeout(client, op);
                Ok(())
            }
            Ev::Fault(f) => self.apply_fault(f),
            Ev::RestoreMembership => self.restore_membership(),
        }
    }

    /// Drains node `i`'s outputs, takes a snapshot when due, re-arms its timer, refreshes
    /// its info and runs the checkers.
    fn after_input(&mut self, i: usize) -> StepResult {
        self.step_applied.clear();
        loop {
            let n = &mut self.nodes[i];
            let Some(replica) = n.replica.as_mut() else { break };
            if let Some(out) = replica.poll_output() {
                self.handle_output(i, out)?;
                continue;
            }
            if self.config.compaction.is_some() && n.kv.applied() >= n.next_compaction && n.kv.applied() > 0 {
                let (index, data) = (n.kv.applied(), n.kv.snapshot());
                replica.compact(self.now, index, data);
                self.stats.compactions += 1;
                trace!(target: "ballot_sim", t = ?self.now, "{}: compact at {index}", n.id);
                self.draw_next_compaction(i);
                continue;
            }
            break;
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
            n.info = Some(self.algo.info(replica));
        }
        self.check(Some(i), false)
    }

    fn draw_next_compaction(&mut self, i: usize) {
        if let Some((lo, hi)) = self.config.compaction {
            let every = self.rng.gen_range(lo..hi + 1);
            let n = &mut self.nodes[i];
            n.next_compaction = n.kv.applied() + every;
        }
    }

    fn check(&mut self, node: Option<usize>, final_check: bool) -> StepResult {
        let views: Vec<NodeView<'_, A::Protocol>> = self
            .nodes
            .iter()
            .map(|n| NodeView {
                id: n.id,
                incarnation: n.incarnation,
                replica: n.replica.as_ref(),
                info: n.info,
                kv: &n.kv,
                unsynced_writes: n.disk_queue.len(),
            })
            .collect();
        let obs = Observation {
            now: self.now,
            node: node.map(|i| self.ids[i]),
            applied: &self.step_applied,
            nodes: &views,
            healed_since: self.healed_since,
            oldest_pending_proposal: self.proposals.values().next().map(|p| (self.ids[p.node], p.at)),
            last_client_success: self.last_success,
            clients_active: self.now < self.clients_stop_at && !self.clients.is_empty(),
            history: &self.history,
            final_check,
        };
        for c in &mut self.checkers {
            if let Err(details) = c.check(&obs) {
                let name = c.name();
                drop(views);
                return Err(self.violation(name, details));
            }
        }
        Ok(())
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

    fn handle_output(&mut self, i: usize, out: Output<MessageOf<A>, EntryOf<A>, HardStateOf<A>>) -> StepResult {
        let now = self.now;
        match out {
            Output::Send { to, message } => {
                let message = self.round_trip("message", message)?;
                let Some(j) = self.node_index(to) else {
                    self.network.stats.sent += 1;
                    self.network.stats.to_down += 1;
                    return Ok(());
                };
                let delays = self.network.route(&mut self.rng, self.ids[i], to);
                if let Some((last, rest)) = delays.split_last() {
                    for d in rest {
                        self.queue.push(now + *d, Ev::Deliver { from: i, to: j, message: message.clone() });
                    }
                    self.queue.push(now + *last, Ev::Deliver { from: i, to: j, message });
                }
            }
            Output::Persist(mut batch) => {
                if self.config.serialize {
                    batch.entries = self.round_trip("log entry batch", std::mem::take(&mut batch.entries))?;
                    batch.hard_state = self.round_trip("hard state", batch.hard_state.take())?;
                    batch.snapshot = self.round_trip("snapshot", batch.snapshot.take())?;
                }
                self.stats.persists += 1;
                self.nodes[i].disk_queue.push_back(batch);
                self.schedule_disk(i);
            }
            Output::Apply(apply) => self.apply(i, apply)?,
            Output::ReadReady { id, index } => {
                let n = &mut self.nodes[i];
                if let Some(r) = n.reads.remove(&id) {
                    if n.kv.applied() >= index {
                        let v = n.kv.get(r.key);
                        self.reply(r.client, r.op, Reply::Done(KvOutput::Value(v)));
                    } else {
                        n.waiting_reads.push((index, r));
                    }
                }
            }
            Output::ReadFailed { id, error } => {
                if let Some(r) = self.nodes[i].reads.remove(&id) {
                    self.reply(r.client, r.op, Reply::Rejected(error));
                }
            }
            Output::ProposalFailed { id, error } => {
                if let Some(p) = self.proposals.remove(&id) {
                    let reply = match error {
                        ProposeError::LeadershipLost => Reply::Unknown,
                        e => Reply::Rejected(e),
                    };
                    self.reply(p.client, p.op, reply);
                }
            }
            Output::Event(e) => {
                if e == Event::RoleChanged(Role::Leader) {
                    self.stats.elections += 1;
                }
                debug!(target: "ballot_sim", t = ?now, "{}: {e:?}", self.ids[i]);
            }
        }
        Ok(())
    }

    fn apply(&mut self, i: usize, apply: Apply) -> StepResult {
        let now = self.now;
        let n = &mut self.nodes[i];
        match &apply {
            Apply::Command { index, command, proposal } => {
                match KvCommand::decode(command) {
                    Ok(cmd) => {
                        let out = n.kv.apply(*index, &cmd);
                        trace!(target: "ballot_sim", t = ?now, "{}: apply {index} {cmd:?} -> {out:?}", n.id);
                        self.committed.entry(OpId(cmd.op)).or_insert(*index);
                        if *index > self.max_applied {
                            self.stats.commands_committed += 1;
                        }
                        if let Some(pid) = proposal
                            && let Some(p) = self.proposals.remove(pid)
                        {
                            self.reply(p.client, p.op, Reply::Done(out));
                        }
                    }
                    // The Validity checker reports it after this step.
                    Err(_) => n.kv.skip(*index),
                }
            }
            Apply::Internal { index } => n.kv.skip(*index),
            Apply::Checkpoint { .. } => {}
            Apply::Restore(s) => {
                if let Err(e) = n.kv.restore(s) {
                    let id = n.id;
                    return Err(self.violation("SnapshotIntegrity", format!("{id} was handed a bad snapshot: {e}")));
                }
                self.stats.restores += 1;
                trace!(target: "ballot_sim", t = ?now, "{}: restore snapshot at {}", n.id, s.meta.index);
            }
        }
        let n = &mut self.nodes[i];
        self.max_applied = self.max_applied.max(n.kv.applied());
        self.step_applied.push(AppliedItem { apply, digest: n.kv.digest() });
        // Reads waiting for this index can be answered now.
        let applied = n.kv.applied();
        if n.waiting_reads.iter().any(|(ix, _)| *ix <= applied) {
            let (ready, waiting): (Vec<_>, Vec<_>) =
                std::mem::take(&mut n.waiting_reads).into_iter().partition(|(ix, _)| *ix <= applied);
            n.waiting_reads = waiting;
            for (_, r) in ready {
                let v = self.nodes[i].kv.get(r.key);
                self.reply(r.client, r.op, Reply::Done(KvOutput::Value(v)));
            }
        }
        Ok(())
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
        if let Err(e) = n.store.write(&batches) {
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

    fn reply(&mut self, client: usize, op: OpId, reply: Reply) {
        if client == TEST_CLIENT {
            // Operations submitted by tests complete when their node answers.
            let outcome = match reply {
                Reply::Done(output) => Outcome::Ok { at: self.now, output },
                Reply::Rejected(_) => Outcome::Failed,
                Reply::Unknown => Outcome::Indeterminate,
            };
            self.history.resolve(op, outcome);
            return;
        }
        let d = self.network.client_delay(&mut self.rng);
        self.queue.push(self.now + d, Ev::ClientReply { client, op, reply });
    }

    fn random_node(&mut self) -> usize {
        usize::try_from(self.rng.gen_range(0..self.nodes.len() as u64)).unwrap_or(0)
    }

    fn client_wake(&mut self, c: usize) {
        let now = self.now;
        match &self.clients[c].current {
            Some(f) if f.outstanding => {}
            Some(_) => self.send_attempt(c),
            None if now < self.clients_stop_at => {
                let cfg = self.config.clients;
                let key = self.rng.gen_range(0..cfg.keys);
                let input = if self.rng.gen_bool(cfg.read_ratio) {
                    KvInput::Get
                } else {
                    let value = self.next_value;
                    self.next_value += 1;
                    match self.rng.gen_range(0..10) {
                        0..=4 => KvInput::Put(value),
                        5..=8 => {
                            // Expect a recent value (or absence) so that some CAS succeed.
                            let back = self.rng.gen_range(1..6);
                            let expected = value.checked_sub(back).filter(|&v| v > 0);
                            KvInput::Cas { expected, new: value }
                        }
                        _ => KvInput::Delete,
                    }
                };
                let op = self.history.invoke(c, key, input, now);
                let deadline = now + cfg.op_timeout;
                self.clients[c].current = Some(InFlight { op, outstanding: false, deadline });
                self.queue.push(deadline, Ev::ClientTimeout { client: c, op });
                self.send_attempt(c);
            }
            None => {}
        }
    }

    fn send_attempt(&mut self, c: usize) {
        let d = self.network.client_delay(&mut self.rng);
        let client = &mut self.clients[c];
        let Some(f) = client.current.as_mut() else { return };
        f.outstanding = true;
        let ev = Ev::ClientArrive { node: self.client_pin.unwrap_or(client.guess), client: c, op: f.op };
        self.queue.push(self.now + d, ev);
    }

    fn client_arrive(&mut self, i: usize, client: usize, op: OpId) -> StepResult {
        if let Err(e) = self.request(i, client, op) {
            self.reply(client, op, Reply::Rejected(e));
        }
        self.after_input(i)
    }

    /// Hands operation `op` to node `i`: a read barrier or a proposal.
    fn request(&mut self, i: usize, client: usize, op: OpId) -> Result<(), ProposeError> {
        let Some(o) = self.history.get(op) else { return Err(ProposeError::Stopped) };
        let (key, input) = (o.key, o.input);
        let now = self.now;
        let n = &mut self.nodes[i];
        // A crashed node refuses the connection: the request reaches no replica.
        let replica = n.replica.as_mut().ok_or(ProposeError::NotLeader { leader: None })?;
        if input == KvInput::Get {
            let id = ReadId(self.next_read);
            self.next_read += 1;
            replica.read(now, id)?;
            n.reads.insert(id, PendingRead { client, op, key });
        } else {
            let id = ProposalId(self.next_proposal);
            self.next_proposal += 1;
            let cmd = KvCommand { op: op.0, key, input };
            replica.propose(now, id, cmd.encode())?;
            self.proposals.insert(id, PendingProposal { node: i, client, op, at: now });
        }
        Ok(())
    }

    fn client_reply(&mut self, c: usize, op: OpId, reply: Reply) {
        let now = self.now;
        let Some(f) = self.clients[c].current.as_mut().filter(|f| f.op == op) else { return };
        f.outstanding = false;
        let deadline = f.deadline;
        let think = self.config.clients.think_max;
        match reply {
            Reply::Done(output) => {
                self.history.resolve(op, Outcome::Ok { at: now, output });
                self.last_success = Some(now);
                self.next_op_after(c, think);
            }
            Reply::Unknown => {
                self.history.resolve(op, Outcome::Indeterminate);
                self.next_op_after(c, think);
            }
            Reply::Rejected(e) => {
                match e {
                    ProposeError::NotLeader { leader: Some(l) } if self.node_index(l).is_some() => {
                        self.clients[c].guess = self.node_index(l).unwrap_or(0);
                    }
                    ProposeError::Busy | ProposeError::Unavailable(_) => {}
                    _ => self.clients[c].guess = self.random_node(),
                }
                let backoff = Duration::from_nanos(
                    self.rng.gen_range(1_000_000..duration_nanos(self.config.clients.backoff_max).max(1_000_001)),
                );
                if now + backoff < deadline {
                    self.queue.push(now + backoff, Ev::ClientWake { client: c });
                }
                // Otherwise the timeout ends the operation as failed.
            }
        }
    }

    fn next_op_after(&mut self, c: usize, think_max: Duration) {
        self.clients[c].current = None;
        let d = self.rng.gen_range(0..duration_nanos(think_max) + 1);
        self.queue.push(self.now + Duration::from_nanos(d), Ev::ClientWake { client: c });
    }

    fn client_timeout(&mut self, c: usize, op: OpId) {
        let Some(f) = self.clients[c].current.as_ref().filter(|f| f.op == op) else { return };
        let outcome = if f.outstanding { Outcome::Indeterminate } else { Outcome::Failed };
        self.history.resolve(op, outcome);
        let think = self.config.clients.think_max;
        self.next_op_after(c, think);
    }

    /// Submits a client operation directly to node `id` now, outside the simulated
    /// clients (for scripted scenarios). Its outcome is recorded in the history (and
    /// checked for linearizability) when the node answers. A `Put`'s or `Cas`'s new
    /// value is replaced by a fresh unique one; read it back from the history.
    ///
    /// # Errors
    /// The outer error is a violation found while the node handled the request; the
    /// inner one is the node's refusal ([`ProposeError::Stopped`] for an unknown or
    /// crashed node).
    pub fn submit(
        &mut self,
        id: NodeId,
        key: Key,
        input: KvInput,
    ) -> Result<Result<OpId, ProposeError>, Box<Violation>> {
        let Some(i) = self.node_index(id).filter(|&i| self.nodes[i].replica.is_some()) else {
            return Ok(Err(ProposeError::Stopped));
        };
        let input = match input {
            KvInput::Put(_) => KvInput::Put(self.fresh_value()),
            KvInput::Cas { expected, .. } => KvInput::Cas { expected, new: self.fresh_value() },
            other => other,
        };
        let op = self.history.invoke(TEST_CLIENT, key, input, self.now);
        let result = self.request(i, TEST_CLIENT, op);
        if result.is_err() {
            self.history.resolve(op, Outcome::Failed);
        }
        self.after_input(i)?;
        Ok(result.map(|()| op))
    }

    fn fresh_value(&mut self) -> u64 {
        let v = self.next_value;
        self.next_value += 1;
        v
    }

    /// Applies a fault now (scripted scenarios use this; fault plans schedule it).
    ///
    /// # Errors
    /// The first violation found while doing so (for example a replica that cannot be
    /// rebuilt from its durable state).
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
        debug!(target: "ballot_sim", t = ?self.now, "{}: crash ({} unsynced batches lost)", n.id, n.disk_queue.len());
        n.replica = None;
        n.info = None;
        n.incarnation += 1;
        n.disk_queue.clear();
        n.disk_busy = false;
        n.timer = None;
        n.timer_generation += 1;
        n.reads.clear();
        n.waiting_reads.clear();
        n.kv = KvStore::new();
        self.proposals.retain(|_, p| p.node != i);
        self.step_applied.clear();
        self.check(Some(i), false)
    }

    fn restart(&mut self, i: usize) -> StepResult {
        if self.nodes[i].replica.is_some() {
            return Ok(());
        }
        let id = self.nodes[i].id;
        let recovered = match self.nodes[i].store.recover() {
            Ok(r) => r,
            Err(e) => return Err(self.violation("Recovery", format!("{id}: could not read its store: {e}"))),
        };
        let rng = self.rng.fork();
        let replica = match self.algo.build(id, &self.initial, recovered, rng, self.now) {
            Ok(r) => r,
            Err(e) => {
                return Err(
                    self.violation("Recovery", format!("{id} could not be rebuilt from its durable state: {e}"))
                );
            }
        };
        debug!(target: "ballot_sim", t = ?self.now, "{id}: restart");
        let n = &mut self.nodes[i];
        n.info = Some(self.algo.info(&replica));
        n.replica = Some(replica);
        self.draw_next_compaction(i);
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
        match self.algo.admin(replica, now, action) {
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
            let m = self.nodes[l].replica.as_ref().map(|r| self.algo.membership(r))?;
            Some((m.is_joint(), self.ids.iter().copied().find(|id| !m.voters.contains(id))))
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

/// Whether the weather loses, duplicates or reorders messages (a fault in force).
fn lossy(w: &NetConfig) -> bool {
    w.drop > 0.0 || w.duplicate > 0.0 || w.reorder > 0.0
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
