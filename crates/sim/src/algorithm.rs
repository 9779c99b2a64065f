//! What an algorithm plugs into the simulator: a factory that builds (and, after a
//! crash, rebuilds) replicas, cheap introspection, its own checkers and optional
//! administrative actions.

use ballot_core::{Consensus, Instant, Membership, NodeId, Protocol, Recovered, Role, SeededRng};

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

    /// The name used on the command line (`--algo NAME`) and in replay commands.
    fn name(&self) -> &'static str;

    /// Picks this run's algorithm settings (say, whether PreVote is on) from the run's
    /// generator. Called once, before any replica is built.
    fn vary(&mut self, _rng: &mut SeededRng) {}

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
    /// The algorithm's error, rendered, when it refuses the state; the simulator
    /// reports it as a recovery violation.
    fn build(
        &self,
        id: NodeId,
        initial: &Membership,
        recovered: Recovered<EntryOf<Self>, HardStateOf<Self>>,
        rng: SeededRng,
        now: Instant,
    ) -> Result<Self::Protocol, String>;

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
}

/// One of `options`, chosen with `rng` (for per-seed settings in [`Algorithm::vary`]).
pub(crate) fn pick<T: Copy>(rng: &mut SeededRng, options: &[T]) -> T {
    options[usize::try_from(rng.gen_range(0..options.len() as u64)).unwrap_or(0)]
}

/// What `--algo` names: a replicated-log algorithm of [`Consensus`], or the single-decree
/// Synod (one decision per instance, which no server runs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimAlgorithm {
    /// An algorithm servers run.
    Log(Consensus),
    /// Single-decree Paxos.
    Synod,
}

impl SimAlgorithm {
    /// Every algorithm the simulator runs.
    #[must_use]
    pub fn all() -> Vec<SimAlgorithm> {
        Consensus::ALL.into_iter().map(SimAlgorithm::Log).chain([SimAlgorithm::Synod]).collect()
    }

    /// The name on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            SimAlgorithm::Log(c) => c.name(),
            SimAlgorithm::Synod => "synod",
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
