//! Single-decree Paxos in the simulator: duelling proposers, then one left alone.

use std::time::Duration;

use ballot_core::{Instant, Membership, NodeId, Recovered, SeededRng};
use ballot_paxos::{Entry, HardState, Synod, SynodConfig};

use super::checkers::{SynodTermination, paxos_checkers};
use crate::algorithm::{Algorithm, Tuned, pick};
use crate::checker::Checker;
use crate::faults::Fault;
use crate::sim::SimConfig;

/// Runs single-decree [`ballot_paxos::Synod`] in the simulator.
///
/// Every node is a proposer, an acceptor and a learner; the simulated clients are the
/// proposers' users. Each run ([`Algorithm::shape_run`]) has more clients than nodes,
/// each starting at a random node, so several nodes propose at once (duelling
/// proposers); half the runs begin with no majority anywhere, so that every proposer's
/// first attempts fail and all of them meet when the network heals. On top of the
/// usual fault schedule (partitions, loss, duplication, reordering, crashes and
/// restarts of acceptors), at a random point in the second half of the chaos the
/// schedule **leaves one proposer alone**: clients are pinned to one node
/// ([`Fault::PinClients`]) and every other node is restarted, which makes it forget its
/// proposal but keep its promise and accepted value. Once everything heals, the last
/// proposer must get a value decided and every learner must learn it within the
/// liveness bound ([`SynodTermination`] and the generic liveness checker).
///
/// Settings (the retry backoff) are drawn per seed; [`Tuned::fixed`] pins them.
pub type SynodAlgorithm = Tuned<SynodConfig>;

impl Default for SynodAlgorithm {
    fn default() -> Self {
        Tuned::drawn(SynodConfig::new(NodeId(1)))
    }
}

impl Algorithm for SynodAlgorithm {
    type Protocol = Synod;
    type BuildError = ballot_paxos::PaxosError;

    fn name(&self) -> &'static str {
        "synod"
    }

    fn vary(&mut self, rng: &mut SeededRng) {
        let Some(c) = self.drawable() else {
            return;
        };
        // A base retry below, near or above a network round trip plus two disk writes:
        // short ones make proposers pre-empt each other (and themselves) many times
        // before the randomized exponential backoff separates them. The cap stays above
        // the slowest round (two writes of up to 200 ms), or a lone proposer could never
        // finish.
        c.retry_timeout = Duration::from_millis(pick(rng, &[2, 10, 50, 100]));
        c.max_retry_timeout = Duration::from_millis(pick(rng, &[500, 1000, 2000]));
    }

    fn settings(&self) -> String {
        let c = self.template();
        format!("retry {:?} doubling up to {:?}", c.retry_timeout, c.max_retry_timeout)
    }

    fn shape_run(&self, cfg: &mut SimConfig) {
        let mut rng = SeededRng::new(cfg.seed ^ 0x5_1A0D_D0E1_1ED5);
        let ids: Vec<NodeId> = (1..=cfg.nodes as u64).map(NodeId).collect();
        let n = ids.len() as u64;
        // More clients than nodes, each starting at a random node: several proposers.
        cfg.clients.count = usize::try_from(rng.gen_range(n..2 * n + 1)).unwrap_or(cfg.clients.count);
        // Reads wait for the decision; a write-heavy mix keeps the last proposer supplied.
        cfg.clients.read_ratio = 0.1;
        // Until the decision every write is in doubt (indeterminate) and all but one
        // never take effect: spread them over many keys, so that the linearizability
        // search per key stays small.
        cfg.clients.keys = rng.gen_range(8..17);
        let end = Instant::ZERO + cfg.duration;
        let heal = cfg.faults.actions.iter().find(|(_, f)| matches!(f, Fault::HealAll)).map_or(end, |(at, _)| *at);
        let mut extra = Vec::new();
        if rng.gen_bool(0.5) {
            // No majority anywhere at first: every proposer's attempts fail until the
            // network heals, and then they all duel.
            extra.push((Instant::ZERO, Fault::Partition(ids.iter().map(|&id| vec![id]).collect())));
            extra.push((Instant::from_millis(rng.gen_range(300..3_000)), Fault::HealNetwork));
        }
        // Leave one proposer: pin the clients to it and restart every other node (it
        // forgets its proposal and keeps its acceptor state).
        let alone = Instant::from_nanos(rng.gen_range(heal.as_nanos() / 2..heal.as_nanos().max(1)));
        let last = ids[usize::try_from(rng.gen_range(0..n)).unwrap_or(0)];
        extra.push((alone, Fault::PinClients(Some(last))));
        for &id in ids.iter().filter(|&&id| id != last) {
            extra.push((alone, Fault::Crash(id)));
            extra.push((alone, Fault::Restart(id)));
        }
        cfg.faults.actions.extend(extra);
        // Stable: actions at the same instant keep their order.
        cfg.faults.actions.sort_by_key(|(at, _)| *at);
    }

    fn elects_leader(&self) -> bool {
        false
    }

    fn build(
        &self,
        id: NodeId,
        initial: &Membership,
        recovered: Recovered<Entry, HardState>,
        rng: SeededRng,
        now: Instant,
    ) -> Result<Synod, ballot_paxos::PaxosError> {
        let config = SynodConfig { id, ..self.template().clone() };
        Synod::new(config, initial.clone(), recovered, rng, now)
    }

    fn checkers(&self, config: &SimConfig) -> Vec<Box<dyn Checker<Synod>>> {
        let mut checkers = paxos_checkers();
        checkers.push(Box::new(SynodTermination::new(config.liveness_bound)));
        checkers
    }

    fn membership(&self, s: &Synod) -> Membership {
        s.membership().clone()
    }
}
