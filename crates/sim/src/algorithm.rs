//! What an algorithm plugs into the simulator: a factory that builds (and, after a
//! crash, rebuilds) replicas, cheap introspection, its own checkers and optional
//! administrative actions.

use std::time::Duration;

use ballot_core::{Consensus, ElectionConfig, Instant, Membership, NodeId, Protocol, Recovered, Role, SeededRng};
use bytes::Bytes;

use crate::SimError;
use crate::checker::Checker;
use crate::sim::SimConfig;

/// The log entry type of an algorithm's protocol.
pub type EntryOf<A> = <<A as Algorithm>::Protocol as Protocol>::Entry;
/// The hard-state type of an algorithm's protocol.
pub type HardStateOf<A> = <<A as Algorithm>::Protocol as Protocol>::HardState;
/// The message type of an algorithm's protocol.
pub type MessageOf<A> = <<A as Algorithm>::Protocol as Protocol>::Message;

/// Cheap facts about one live replica, refreshed after every step that touches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// Its role.
    pub role: Role,
    /// Its term (view, ballot round).
    pub term: u64,
    /// The leader it believes in.
    pub leader: Option<NodeId>,
    /// Its commit index.
    pub commit_index: u64,
    /// Whether it is a voter of the membership it knows.
    pub voter: bool,
}

/// An administrative request the fault schedule may issue to the current leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AdminAction {
    /// Hand leadership to `to`.
    TransferLeadership {
        /// The new leader.
        to: NodeId,
    },
    /// Remove `node` from the voters (it keeps running and may be added back).
    RemoveVoter(NodeId),
    /// Add `node` as a voter (via whatever catch-up the algorithm needs).
    AddVoter(NodeId),
}

/// An algorithm the simulator can run: the algorithm-specific part of a simulation.
///
/// Everything else (virtual time, network, disks, crashes, clients, the KV service and
/// the generic checkers) is shared. An implementation is a small factory object; a
/// new algorithm adds one (for example `ballot_sim::raft::RaftAlgorithm`) plus checkers
/// for its own invariants.
pub trait Algorithm {
    /// The sans-IO state machine under test.
    type Protocol: Protocol;

    /// What [`build`](Self::build) fails with.
    type BuildError: std::error::Error;

    /// The name used on the command line (`--algo NAME`) and in replay commands.
    fn name(&self) -> &'static str;

    /// Picks this run's algorithm settings (say, whether PreVote is on) from the run's
    /// generator. Called once, before any replica is built.
    fn vary(&mut self, _rng: &mut SeededRng) {}

    /// The hosted service needs time the replicas agree on
    /// ([`StateMachine::wants_agreed_time`](ballot_core::service::StateMachine::wants_agreed_time)):
    /// a protocol that can order time turns it on, and returns how much earlier than its
    /// holder expects a lease may then end (the clients'
    /// [`lease_margin`](crate::ClientConfig::lease_margin)). Called after
    /// [`vary`](Self::vary). The default (leases on the leader's clock): zero.
    fn agreed_time_needed(&mut self) -> Duration {
        Duration::ZERO
    }

    /// A one-line description of the settings in force, for traces and reports.
    fn settings(&self) -> String {
        String::new()
    }

    /// Adapts the randomized configuration of a run (see [`run_spec`](crate::run_spec))
    /// to what the algorithm's properties need, for example client behaviour or extra
    /// scheduled faults. It must be a function of `config` (its seed included) so that
    /// runs replay. The default changes nothing.
    fn shape_run(&self, _config: &mut SimConfig) {}

    /// Whether the algorithm elects a leader that every live voter recognizes once
    /// faults heal (the [`Liveness`](crate::Liveness) checker then requires one).
    /// Leaderless algorithms such as single-decree Paxos return `false`.
    fn elects_leader(&self) -> bool {
        true
    }

    /// Builds replica `id` of a cluster whose initial membership is `initial`, from the
    /// durable state `recovered` (empty on first start, what survived on a restart).
    ///
    /// # Errors
    /// The algorithm's own error when it refuses the settings or the state; the
    /// simulator reports it as a refused restart (or a recovery violation).
    fn build(
        &self,
        id: NodeId,
        initial: &Membership,
        recovered: Recovered<EntryOf<Self>, HardStateOf<Self>>,
        rng: SeededRng,
        now: Instant,
    ) -> Result<Self::Protocol, Self::BuildError>;

    /// Cheap facts about `replica`. The default goes through [`Protocol::status`].
    fn info(&self, replica: &Self::Protocol) -> NodeInfo {
        let s = replica.status();
        NodeInfo {
            role: s.role,
            term: s.term,
            leader: s.leader,
            commit_index: s.commit_index,
            voter: s.membership.is_voter(s.id),
        }
    }

    /// The algorithm's own invariant checkers for a run with `config` (whose bounds
    /// they may use), run after every step together with the generic ones.
    fn checkers(&self, _config: &SimConfig) -> Vec<Box<dyn Checker<Self::Protocol>>> {
        Vec::new()
    }

    /// Whether [`admin`](Self::admin) does anything; if not, fault schedules contain no
    /// administrative actions.
    fn supports_admin(&self) -> bool {
        false
    }

    /// Carries out `action` on `replica` (the simulator picks the current leader).
    ///
    /// # Errors
    /// The protocol's refusal, rendered; the default refuses everything.
    fn admin(&self, _replica: &mut Self::Protocol, _now: Instant, _action: AdminAction) -> Result<(), String> {
        Err("administrative actions are not supported".to_owned())
    }

    /// The membership `replica` has in force, used to restore full membership when
    /// faults heal.
    fn membership(&self, replica: &Self::Protocol) -> Membership {
        replica.status().membership
    }

    /// A client signed `command` (and is about to send it): algorithms that check client
    /// signatures (PBFT's `RequestAuth`) learn here which commands are authentic.
    fn client_signed(&mut self, _command: &Bytes) {}

    /// What Byzantine node `from` (one of [`SimConfig::byzantine`]) really sends when
    /// its honest core `core` sends `message` to `to`: any number of messages, each to
    /// someone, after an extra delay. Each lie told is named in `acts` (counted in
    /// [`RunStats::byzantine`](crate::RunStats::byzantine)). The default is honest.
    #[allow(clippy::too_many_arguments)]
    fn byzantine_send(
        &mut self,
        _core: &Self::Protocol,
        _from: NodeId,
        to: NodeId,
        message: MessageOf<Self>,
        _now: Instant,
        _rng: &mut SeededRng,
        _acts: &mut Vec<&'static str>,
    ) -> Vec<(NodeId, MessageOf<Self>, Duration)> {
        vec![(to, message, Duration::ZERO)]
    }

    /// How many messages `replica` refused as invalid (for statistics; 0 by default).
    fn refused_messages(&self, _replica: &Self::Protocol) -> u64 {
        0
    }

    /// Whether Byzantine node `node` answers clients with wrong results (the engine
    /// replaces its replies).
    fn lies_to_clients(&self, _node: NodeId) -> bool {
        false
    }
}

/// One of `options`, chosen with `rng` (for per-seed settings in [`Algorithm::vary`]).
pub(crate) fn pick<T: Copy>(rng: &mut SeededRng, options: &[T]) -> T {
    options[usize::try_from(rng.gen_range(0..options.len() as u64)).unwrap_or(0)]
}

/// A protocol's settings in the simulator: by default drawn from each run's seed
/// ([`Algorithm::vary`]), so many seeds cover many configurations; [`Tuned::fixed`]
/// pins them. The Raft, Multi-Paxos and Synod adapters are this type over their
/// protocol's configuration.
#[derive(Clone, Debug)]
pub struct Tuned<C> {
    template: C,
    vary: bool,
}

impl<C> Tuned<C> {
    /// Settings drawn per seed, starting from `template`.
    #[must_use]
    pub fn drawn(template: C) -> Self {
        Tuned { template, vary: true }
    }

    /// Every replica runs with `template` (its `id` replaced by the replica's).
    #[must_use]
    pub fn fixed(template: C) -> Self {
        Tuned { template, vary: false }
    }

    /// The settings in force (after [`Algorithm::vary`]).
    #[must_use]
    pub fn template(&self) -> &C {
        &self.template
    }

    /// The settings to draw into, unless they are pinned.
    pub(crate) fn drawable(&mut self) -> Option<&mut C> {
        self.vary.then_some(&mut self.template)
    }
}

/// Per-seed election settings for a leader-based protocol: fast (many elections per
/// virtual second), medium or etcd's timing, and pre-vote, CheckQuorum and lease reads
/// on or off.
pub(crate) fn vary_election(rng: &mut SeededRng, c: &mut ElectionConfig) {
    let (min, hb) = pick(rng, &[(150, 30), (300, 50), (1000, 100)]);
    c.timeout_min = Duration::from_millis(min);
    c.timeout_max = Duration::from_millis(min * 2);
    c.heartbeat_interval = Duration::from_millis(hb);
    c.pre_vote = rng.gen_bool(0.7);
    c.check_quorum = rng.gen_bool(0.7);
    c.lease_reads = c.check_quorum && rng.gen_bool(0.3);
}

/// Per-seed batching and flow-control limits of a leader-based protocol, from one
/// entry per message and one message in flight to the production defaults.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FlowLimits {
    /// Most entries (slots) in one replication message.
    pub batch_entries: usize,
    /// Most entry bytes in one replication message.
    pub batch_bytes: usize,
    /// Most replication messages in flight to one peer.
    pub inflight_messages: usize,
    /// Most entry bytes in flight to one peer.
    pub inflight_bytes: usize,
    /// Most bytes in one snapshot chunk.
    pub snapshot_chunk: usize,
    /// Most uncommitted proposals at the leader.
    pub pending: usize,
}

impl FlowLimits {
    pub(crate) fn draw(rng: &mut SeededRng) -> Self {
        FlowLimits {
            batch_entries: pick(rng, &[1, 4, 64, 4096]),
            batch_bytes: pick(rng, &[64, 4096, 1 << 20]),
            inflight_messages: pick(rng, &[1, 2, 8, 256]),
            inflight_bytes: pick(rng, &[128, 1 << 16, 32 << 20]),
            snapshot_chunk: pick(rng, &[8, 64, 1 << 20]),
            pending: pick(rng, &[4, 10_000]),
        }
    }

    /// The limits as a settings line names them; `unit` is what a message carries
    /// ("entries", "slots").
    pub(crate) fn describe(&self, unit: &str) -> String {
        format!(
            "batch {} {unit}/{} B, inflight {}/{} B, snapshot chunk {} B, pending {}",
            self.batch_entries,
            self.batch_bytes,
            self.inflight_messages,
            self.inflight_bytes,
            self.snapshot_chunk,
            self.pending
        )
    }
}

/// What `--algo` names: a replicated-log algorithm of [`Consensus`], or the single-decree
/// Synod (one decision per instance, which no server runs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimAlgorithm {
    /// An algorithm servers run.
    Log(Consensus),
    /// Single-decree Paxos.
    Synod,
    /// PBFT (ballot-pbft), 3f+1 replicas, with Byzantine replicas.
    Pbft,
}

impl SimAlgorithm {
    /// Every algorithm the simulator runs.
    #[must_use]
    pub fn all() -> Vec<SimAlgorithm> {
        // PBFT has its own variant: its runs draw Byzantine replicas.
        Consensus::ALL
            .into_iter()
            .filter(|c| !c.is_byzantine())
            .map(SimAlgorithm::Log)
            .chain([SimAlgorithm::Synod, SimAlgorithm::Pbft])
            .collect()
    }

    /// The name on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            SimAlgorithm::Log(c) => c.name(),
            SimAlgorithm::Synod => "synod",
            SimAlgorithm::Pbft => "pbft",
        }
    }

    /// The cluster sizes `--nodes both` means: 3 and 5 (f = 1, 2 crash faults), or 4
    /// and 7 for PBFT (f = 1, 2 Byzantine faults).
    #[must_use]
    pub fn both_sizes(self) -> [usize; 2] {
        match self {
            SimAlgorithm::Pbft => [4, 7],
            _ => [3, 5],
        }
    }
}

impl std::fmt::Display for SimAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SimAlgorithm {
    type Err = SimError;

    fn from_str(s: &str) -> Result<Self, SimError> {
        Self::all().into_iter().find(|a| a.name() == s).ok_or_else(|| {
            SimError::UnknownAlgorithm(
                s.to_owned(),
                Self::all().iter().map(|a| a.name()).collect::<Vec<_>>().join(", "),
            )
        })
    }
}
