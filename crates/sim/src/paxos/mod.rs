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

use std::time::Duration;

use ballot_core::{Instant, Membership, NodeId, Recovered, SeededRng};
use ballot_paxos::{Ballot, Config, Entry, HardState, MultiPaxos, Synod, Value};

pub use checkers::{DecisionStability, OneValuePerBallot, PromiseMonotonic, SynodTermination, paxos_checkers};
pub use synod::SynodAlgorithm;

use crate::algorithm::{Algorithm, NodeInfo, pick};
use crate::checker::Checker;
use crate::sim::SimConfig;

/// Runs [`ballot_paxos::MultiPaxos`] in the simulator.
///
/// By default every run draws its own settings from the seed (timeouts, pre-vote,
/// CheckQuorum, lease reads, batching and flow-control limits, snapshot chunk size), as
/// [`RaftAlgorithm`](crate::raft::RaftAlgorithm) does, so many seeds cover many
/// configurations; [`MultiPaxosAlgorithm::fixed`] pins them. Multi-Paxos has no
/// membership change or leadership transfer, so its fault schedules have no
/// administrative actions.
#[derive(Clone, Debug)]
pub struct MultiPaxosAlgorithm {
    template: Config,
    vary: bool,
}

impl Default for MultiPaxosAlgorithm {
    fn default() -> Self {
        MultiPaxosAlgorithm { template: Config::new(NodeId(1)), vary: true }
    }
}

impl MultiPaxosAlgorithm {
    /// Every replica runs with `template` (its `id` replaced by the replica's).
    #[must_use]
    pub fn fixed(template: Config) -> Self {
        MultiPaxosAlgorithm { template, vary: false }
    }

    /// The settings in force (after [`Algorithm::vary`]).
    #[must_use]
    pub fn template(&self) -> &Config {
        &self.template
    }
}

impl Algorithm for MultiPaxosAlgorithm {
    type Protocol = MultiPaxos;

    fn name(&self) -> &'static str {
        ballot_core::Consensus::MultiPaxos.name()
    }

    fn vary(&mut self, rng: &mut SeededRng) {
        if !self.vary {
            return;
        }
        let c = &mut self.template;
        // Timing: fast (many elections per virtual second), medium, or the defaults.
        let (min, hb) = pick(rng, &[(150, 30), (300, 50), (1000, 100)]);
        c.election_timeout_min = Duration::from_millis(min);
        c.election_timeout_max = Duration::from_millis(min * 2);
        c.heartbeat_interval = Duration::from_millis(hb);
        c.pre_vote = rng.gen_bool(0.7);
        c.check_quorum = rng.gen_bool(0.7);
        c.lease_reads = c.check_quorum && rng.gen_bool(0.3);
        c.max_accept_slots = pick(rng, &[1, 4, 64, 4096]);
        c.max_accept_bytes = pick(rng, &[64, 4096, 1 << 20]);
        c.max_inflight_accepts = pick(rng, &[1, 2, 8, 256]);
        c.max_inflight_bytes = pick(rng, &[128, 1 << 16, 32 << 20]);
        c.max_snapshot_chunk = pick(rng, &[8, 64, 1 << 20]);
        c.max_pending_proposals = pick(rng, &[4, 10_000]);
    }

    fn settings(&self) -> String {
        let c = &self.template;
        format!(
            "election {:?}..{:?}, heartbeat {:?}, pre_vote {}, check_quorum {}, lease_reads {}, accept {} slots/{} B, \
             inflight {}/{} B, snapshot chunk {} B, pending {}",
            c.election_timeout_min,
            c.election_timeout_max,
            c.heartbeat_interval,
            c.pre_vote,
            c.check_quorum,
            c.lease_reads,
            c.max_accept_slots,
            c.max_accept_bytes,
            c.max_inflight_accepts,
            c.max_inflight_bytes,
            c.max_snapshot_chunk,
            c.max_pending_proposals
        )
    }

    fn build(
        &self,
        id: NodeId,
        initial: &Membership,
        recovered: Recovered<Entry, HardState>,
        rng: SeededRng,
        now: Instant,
    ) -> Result<MultiPaxos, String> {
        let config = Config { id, ..self.template.clone() };
        MultiPaxos::new(config, initial.clone(), recovered, rng, now).map_err(|e| e.to_string())
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
