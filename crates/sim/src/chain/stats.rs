//! Figures of chain runs, and their summary.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::net::NetStats;

/// What one chain run (or, merged, many runs) did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainStats {
    /// Runs merged into these figures.
    pub runs: u64,
    /// Virtual time simulated.
    pub virtual_time: Duration,
    /// Events processed.
    pub events: u64,
    /// What happened to messages.
    pub net: NetStats,
    /// Blocks mined (valid or not).
    pub blocks_mined: u64,
    /// Of those, valid blocks mined by the Byzantine node or an attacker.
    pub byz_valid: u64,
    /// Of those, blocks the Byzantine node made to break a rule.
    pub byz_invalid: u64,
    /// Valid blocks the Byzantine node withheld before releasing them.
    pub byz_withheld: u64,
    /// Height of the final best chain (summed over runs).
    pub main_chain: u64,
    /// Valid blocks that did not end in the final best chain.
    pub stale: u64,
    /// Distinct difficulties (`bits`) along the final best chain (summed over runs).
    pub difficulties: u64,
    /// Reorganisations at any node.
    pub reorgs: u64,
    /// The deepest reorganisation (blocks taken off).
    pub max_reorg: u64,
    /// Blocks disconnected by reorganisations.
    pub disconnected: u64,
    /// `Invalid` reports by nodes (a block or its ancestry breaks a rule).
    pub invalid_found: u64,
    /// `accept_block` calls that returned an error.
    pub blocks_refused: u64,
    /// Blocks that arrived before their parent.
    pub orphans: u64,
    /// Transfers wallets sent (each copy of a double-spend pair counts).
    pub tx_submitted: u64,
    /// Of those, admitted to the mempool of the node they reached.
    pub tx_admitted: u64,
    /// Refused there as the conflicting half of a double spend.
    pub tx_conflicts: u64,
    /// Refused there for another reason (replays, overspends, forgeries, stale nonces).
    pub tx_refused: u64,
    /// Lost because the node was down.
    pub tx_lost: u64,
    /// Wallet transfers in the final best chain.
    pub tx_confirmed: u64,
    /// Double-spend pairs sent.
    pub ds_attempts: u64,
    /// Pairs with one side in the final best chain.
    pub ds_one_confirmed: u64,
    /// Pairs with both sides in the final best chain (must stay 0).
    pub ds_both_confirmed: u64,
    /// Node crashes.
    pub crashes: u64,
    /// Node restarts.
    pub restarts: u64,
    /// Faults applied, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Supply at the final tip (summed over runs).
    pub supply: u64,
    /// The schedule's maximum at that height (summed over runs).
    pub schedule: u64,
    /// Healed windows that started with an honest node behind the best honest tip.
    pub catch_ups: u64,
    /// The longest time such a node took to catch up.
    pub catch_up_max: Duration,
    /// Time from the final heal to the first moment every honest node had the same tip
    /// (one run).
    pub converge_after_heal: Option<Duration>,
    /// The longest of those over merged runs.
    pub converge_max: Duration,
    /// Their sum over merged runs (for the mean).
    pub converge_sum: Duration,
}

impl ChainStats {
    /// Adds `other`'s figures to these.
    pub fn merge(&mut self, other: &ChainStats) {
        self.runs += other.runs;
        self.virtual_time += other.virtual_time;
        self.events += other.events;
        let (a, b) = (&mut self.net, &other.net);
        a.sent += b.sent;
        a.delivered += b.delivered;
        a.dropped += b.dropped;
        a.cut += b.cut;
        a.to_down += b.to_down;
        a.duplicated += b.duplicated;
        a.reordered += b.reordered;
        for (x, y) in [
            (&mut self.blocks_mined, other.blocks_mined),
            (&mut self.byz_valid, other.byz_valid),
            (&mut self.byz_invalid, other.byz_invalid),
            (&mut self.byz_withheld, other.byz_withheld),
            (&mut self.main_chain, other.main_chain),
            (&mut self.stale, other.stale),
            (&mut self.difficulties, other.difficulties),
            (&mut self.reorgs, other.reorgs),
            (&mut self.disconnected, other.disconnected),
            (&mut self.invalid_found, other.invalid_found),
            (&mut self.blocks_refused, other.blocks_refused),
            (&mut self.orphans, other.orphans),
            (&mut self.tx_submitted, other.tx_submitted),
            (&mut self.tx_admitted, other.tx_admitted),
            (&mut self.tx_conflicts, other.tx_conflicts),
            (&mut self.tx_refused, other.tx_refused),
            (&mut self.tx_lost, other.tx_lost),
            (&mut self.tx_confirmed, other.tx_confirmed),
            (&mut self.ds_attempts, other.ds_attempts),
            (&mut self.ds_one_confirmed, other.ds_one_confirmed),
            (&mut self.ds_both_confirmed, other.ds_both_confirmed),
            (&mut self.crashes, other.crashes),
            (&mut self.restarts, other.restarts),
            (&mut self.supply, other.supply),
            (&mut self.schedule, other.schedule),
        ] {
            *x += y;
        }
        self.max_reorg = self.max_reorg.max(other.max_reorg);
        self.catch_ups += other.catch_ups;
        self.catch_up_max = self.catch_up_max.max(other.catch_up_max);
        for (k, v) in &other.faults {
            *self.faults.entry(k).or_default() += v;
        }
        self.converge_max = self.converge_max.max(other.converge_max);
        self.converge_sum += other.converge_sum;
    }
}

impl fmt::Display for ChainStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = &self.net;
        writeln!(f, "runs:                {}", self.runs)?;
        writeln!(f, "virtual time:        {:.1} s ({} events)", self.virtual_time.as_secs_f64(), self.events)?;
        writeln!(
            f,
            "messages:            {} sent, {} delivered, {} dropped, {} cut by partitions, {} to crashed nodes, \
             {} duplicated, {} reordered",
            n.sent, n.delivered, n.dropped, n.cut, n.to_down, n.duplicated, n.reordered
        )?;
        writeln!(
            f,
            "blocks:              {} mined ({} valid and {} rule-breaking by Byzantine miners, {} withheld); final \
             chains {} blocks in all, {} stale; {} distinct difficulties",
            self.blocks_mined,
            self.byz_valid,
            self.byz_invalid,
            self.byz_withheld,
            self.main_chain,
            self.stale,
            self.difficulties
        )?;
        writeln!(
            f,
            "fork choice:         {} reorganisations (deepest {}), {} blocks disconnected, {} orphans, {} invalid \
             reports, {} refusals",
            self.reorgs, self.max_reorg, self.disconnected, self.orphans, self.invalid_found, self.blocks_refused
        )?;
        writeln!(
            f,
            "transfers:           {} sent, {} admitted, {} refused as conflicting, {} refused otherwise, {} lost, \
             {} confirmed",
            self.tx_submitted, self.tx_admitted, self.tx_conflicts, self.tx_refused, self.tx_lost, self.tx_confirmed
        )?;
        writeln!(
            f,
            "double spends:       {} pairs sent, {} with one side confirmed, {} with both",
            self.ds_attempts, self.ds_one_confirmed, self.ds_both_confirmed
        )?;
        writeln!(f, "supply:              {} at the final tips, schedule allows {}", self.supply, self.schedule)?;
        let mean = if self.runs > 0 {
            self.converge_sum / u32::try_from(self.runs).unwrap_or(u32::MAX)
        } else {
            Duration::ZERO
        };
        writeln!(
            f,
            "convergence:         {} heals with a node behind, caught up within {:.2} s at most; same tip \
             everywhere {:.2} s after the final heal on average, {:.2} s at most",
            self.catch_ups,
            self.catch_up_max.as_secs_f64(),
            mean.as_secs_f64(),
            self.converge_max.as_secs_f64()
        )?;
        let faults: Vec<String> = self.faults.iter().map(|(k, v)| format!("{k} {v}")).collect();
        write!(
            f,
            "faults injected:     {} ({} crashes, {} restarts)",
            if faults.is_empty() { "none".to_owned() } else { faults.join(", ") },
            self.crashes,
            self.restarts
        )
    }
}
