//! Paxos in the simulator: [`MultiPaxosAlgorithm`] runs [`ballot_paxos::MultiPaxos`]
//! and [`SynodAlgorithm`] runs single-decree [`ballot_paxos::Synod`] under the same
//! faults, clients and generic checkers as Raft, plus Paxos's own invariants:
//!
//! * [`PromiseMonotonic`]: an acceptor's promise never goes down, not even across a
//!   restart (below what it had made durable);
//! * [`DecisionStability`]: a slot decided with a value is decided with that value on
//!   every replica, for ever (agreement across crashes, and no overwrite of a decided
//!   slot);
//! * [`OneValuePerBallot`]: in one ballot at most one value is accepted for a slot, the
//!   fact Multi-Paxos's per-slot commit rule relies on;
//! * for the Synod, [`SynodTermination`]: once faults heal and one proposer is left
//!   alone, a value is decided and every learner learns it within the liveness bound.
//!
//! Agreement on applied commands, validity, integrity, liveness and linearizability
//! are the generic checkers. The Paxos checkers read replicas through the small
//! [`PaxosView`] trait, so they can be tested against hand-made replicas.

mod checkers;
mod synod;

use ballot_core::{Instant, Membership, NodeId, Recovered, SeededRng};
use ballot_paxos::{Ballot, Config, Entry, HardState, MultiPaxos, Synod, Value};

pub use checkers::{DecisionStability, OneValuePerBallot, PromiseMonotonic, SynodTermination, paxos_checkers};
pub use synod::SynodAlgorithm;

use crate::algorithm::{Algorithm, FlowLimits, NodeInfo, Tuned, vary_election};
use crate::checker::Checker;
use crate::sim::SimConfig;

/// Runs [`ballot_paxos::MultiPaxos`] in the simulator.
///
/// By default every run draws its own settings from the seed (timeouts, pre-vote,
/// CheckQuorum, lease reads, batching and flow-control limits, snapshot chunk size), as
/// [`RaftAlgorithm`](crate::raft::RaftAlgorithm) does, so many seeds cover many
/// configurations; [`Tuned::fixed`] pins them. Multi-Paxos has no membership change or
/// leadership transfer, so its fault schedules have no administrative actions.
pub type MultiPaxosAlgorithm = Tuned<Config>;

impl Default for MultiPaxosAlgorithm {
    fn default() -> Self {
        Tuned::drawn(Config::new(NodeId(1)))
    }
}

impl Algorithm for MultiPaxosAlgorithm {
    type Protocol = MultiPaxos;
    type BuildError = ballot_paxos::PaxosError;

    fn name(&self) -> &'static str {
        ballot_core::Consensus::MultiPaxos.name()
    }

    fn vary(&mut self, rng: &mut SeededRng) {
        let Some(c) = self.drawable() else {
            return;
        };
        vary_election(rng, &mut c.election);
        let limits = FlowLimits::draw(rng);
        c.max_accept_slots = limits.batch_entries;
        c.max_accept_bytes = limits.batch_bytes;
        c.max_inflight_accepts = limits.inflight_messages;
        c.max_inflight_bytes = limits.inflight_bytes;
        c.max_snapshot_chunk = limits.snapshot_chunk;
        c.max_pending_proposals = limits.pending;
    }

    fn settings(&self) -> String {
        let c = self.template();
        let limits = FlowLimits {
            batch_entries: c.max_accept_slots,
            batch_bytes: c.max_accept_bytes,
            inflight_messages: c.max_inflight_accepts,
            inflight_bytes: c.max_inflight_bytes,
            snapshot_chunk: c.max_snapshot_chunk,
            pending: c.max_pending_proposals,
        };
        format!("{}, {}", c.election, limits.describe("slots"))
    }

    fn build(
        &self,
        id: NodeId,
        initial: &Membership,
        recovered: Recovered<Entry, HardState>,
        rng: SeededRng,
        now: Instant,
    ) -> Result<MultiPaxos, ballot_paxos::PaxosError> {
        let config = Config { id, ..self.template().clone() };
        MultiPaxos::new(config, initial.clone(), recovered, rng, now)
    }

    fn info(&self, p: &MultiPaxos) -> NodeInfo {
        NodeInfo {
            role: p.role(),
            term: p.ballot().round,
            leader: p.leader(),
            commit_index: p.commit_index(),
            voter: p.membership().is_voter(ballot_core::Protocol::id(p)),
        }
    }

    fn checkers(&self, _config: &SimConfig) -> Vec<Box<dyn Checker<MultiPaxos>>> {
        paxos_checkers()
    }

    fn membership(&self, p: &MultiPaxos) -> Membership {
        p.membership().clone()
    }
}

/// What the Paxos checkers read from a replica (an acceptor and learner of slots; the
/// Synod has the one slot [`SYNOD_SLOT`](ballot_paxos::SYNOD_SLOT)).
pub trait PaxosView {
    /// The highest ballot it promised: it accepts nothing lower.
    fn promised(&self) -> Ballot;
    /// Every slot up to this one is decided and known here.
    fn commit_index(&self) -> u64;
    /// The first slot still held (one past the snapshot).
    fn first_index(&self) -> u64;
    /// The highest slot it holds (accepted or decided).
    fn last_index(&self) -> u64;
    /// The value it holds as decided at `slot` (`first_index..=commit_index`).
    fn decided(&self, slot: u64) -> Option<&Value>;
    /// What it accepted at `slot`, and in which ballot.
    fn accepted(&self, slot: u64) -> Option<(Ballot, &Value)>;
}

impl PaxosView for MultiPaxos {
    fn promised(&self) -> Ballot {
        MultiPaxos::promised(self)
    }
    fn commit_index(&self) -> u64 {
        MultiPaxos::commit_index(self)
    }
    fn first_index(&self) -> u64 {
        MultiPaxos::first_index(self)
    }
    fn last_index(&self) -> u64 {
        MultiPaxos::last_index(self)
    }
    fn decided(&self, slot: u64) -> Option<&Value> {
        MultiPaxos::decided(self, slot)
    }
    fn accepted(&self, slot: u64) -> Option<(Ballot, &Value)> {
        MultiPaxos::accepted(self, slot)
    }
}

impl PaxosView for Synod {
    fn promised(&self) -> Ballot {
        Synod::promised(self)
    }
    fn commit_index(&self) -> u64 {
        u64::from(self.is_decided())
    }
    fn first_index(&self) -> u64 {
        ballot_paxos::SYNOD_SLOT
    }
    fn last_index(&self) -> u64 {
        u64::from(Synod::accepted(self).is_some() || self.is_decided())
    }
    fn decided(&self, slot: u64) -> Option<&Value> {
        self.chosen().filter(|_| slot == ballot_paxos::SYNOD_SLOT)
    }
    fn accepted(&self, slot: u64) -> Option<(Ballot, &Value)> {
        Synod::accepted(self).filter(|_| slot == ballot_paxos::SYNOD_SLOT)
    }
}
