//! The chain simulator's invariants, one struct each.
//!
//! Checkers see honest nodes only: every time an honest node's best chain changes
//! ([`ChainChecker::on_tip`]), after every step ([`ChainChecker::on_step`]) and when an
//! honest node reports a block invalid ([`ChainChecker::on_refused`]). They keep their own
//! state per block hash (a hash commits to the whole ancestry), so each block is judged
//! once however many nodes adopt it, and a node's new tip costs only its new blocks.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ballot_core::{Instant, NodeId};
use ballot_ledger::{Hash, Ledger, LedgerParams, PublicKey, Transaction};
use ballot_pow::{Block, BlockHash, ChainParams, CompactTarget, PowError, U256, next_target};

/// An honest node's best chain, after it changed.
pub struct TipView<'a> {
    /// Virtual time.
    pub now: Instant,
    /// The node.
    pub node: NodeId,
    /// Height of its tip.
    pub height: u64,
    /// The hash of its best chain's block at a height (genesis is height 0).
    pub hash_at: &'a dyn Fn(u64) -> Option<BlockHash>,
    /// Every block any miner made, by hash.
    pub blocks: &'a HashMap<BlockHash, Arc<Block>>,
    /// The node's ledger at its tip.
    pub ledger: &'a Ledger,
}

/// A window in which the network has been whole and lossless with every node up, and
/// the bounds that hold within it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Healed {
    /// When the window started (the last fault).
    pub since: Instant,
    /// Within this, every honest node has caught up with the most work any honest node
    /// had when the window started.
    pub catch_up: Duration,
    /// Within this, all honest nodes have had the same tip at some moment.
    pub converge: Duration,
}

/// One honest node's tip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HonestTip {
    /// The node.
    pub node: NodeId,
    /// Its tip's hash, height and cumulative work, `None` while it is down.
    pub tip: Option<(BlockHash, u64, U256)>,
}

/// The honest nodes' tips after a step.
pub struct StepView<'a> {
    /// Virtual time.
    pub now: Instant,
    /// The healed window in force, `None` while faults last.
    pub healed: Option<Healed>,
    /// Every honest node's tip.
    pub tips: &'a [HonestTip],
}

/// An honest node reported a block invalid.
pub struct RefusedView<'a> {
    /// Virtual time.
    pub now: Instant,
    /// The node.
    pub node: NodeId,
    /// The block.
    pub hash: BlockHash,
    /// The rule the node says it breaks.
    pub reason: &'a PowError,
    /// The node that mined it, if it was mined in the simulation.
    pub miner: Option<NodeId>,
    /// Whether that miner is honest (then the block followed every rule).
    pub honest_miner: bool,
}

/// An invariant of the chain simulation.
pub trait ChainChecker {
    /// The invariant's name, as reported.
    fn name(&self) -> &'static str;

    /// An honest node's best chain changed (or was rebuilt after a restart).
    ///
    /// # Errors
    /// How the invariant is broken.
    fn on_tip(&mut self, _view: &TipView<'_>) -> Result<(), String> {
        Ok(())
    }

    /// After every step.
    ///
    /// # Errors
    /// How the invariant is broken.
    fn on_step(&mut self, _view: &StepView<'_>) -> Result<(), String> {
        Ok(())
    }

    /// An honest node reported a block invalid.
    ///
    /// # Errors
    /// How the invariant is broken.
    fn on_refused(&mut self, _view: &RefusedView<'_>) -> Result<(), String> {
        Ok(())
    }
}

/// Every checker of this module for a chain with `params`.
#[must_use]
pub fn all_checkers(params: &ChainParams) -> Vec<Box<dyn ChainChecker>> {
    vec![
        Box::new(ValidChain::new(params)),
        Box::new(NoDoubleSpend::new(params)),
        Box::new(SupplySchedule::new(params)),
        Box::new(TipConvergence::default()),
        Box::new(HonestBlocksAccepted),
    ]
}

/// The blocks of `view`'s best chain above the highest one in `known`, lowest first.
/// Fails if the chain does not start at a known block (the genesis block is always
/// known) or names a block no miner made.
fn new_blocks<T>(view: &TipView<'_>, known: &HashMap<BlockHash, T>) -> Result<Vec<(u64, Arc<Block>)>, String> {
    let mut out = Vec::new();
    let mut h = view.height;
    loop {
        let hash =
            (view.hash_at)(h).ok_or_else(|| format!("{} has no block at height {h} of its best chain", view.node))?;
        if known.contains_key(&hash) {
            break;
        }
        if h == 0 {
            return Err(format!("{}'s best chain starts at {hash}, not at the genesis block", view.node));
        }
        let block = view
            .blocks
            .get(&hash)
            .ok_or_else(|| format!("{}'s best chain holds block {hash}, which no miner made", view.node))?;
        let parent = (view.hash_at)(h - 1);
        if parent != Some(block.header.prev) {
            return Err(format!(
                "{}'s best chain is not linked: block {hash} at height {h} names parent {}, the chain has {parent:?}",
                view.node, block.header.prev
            ));
        }
        out.push((h, block.clone()));
        h -= 1;
    }
    out.reverse();
    Ok(out)
}

fn transfers(block: &Block) -> impl Iterator<Item = &ballot_ledger::SignedTransfer> {
    block.txs.iter().filter_map(Transaction::as_transfer)
}

fn coinbase_amount(block: &Block) -> u64 {
    match block.txs.first() {
        Some(Transaction::Coinbase(c)) => c.amount,
        _ => 0,
    }
}

/// What [`ValidChain`] knows about a block it validated.
struct Validated {
    height: u64,
    prev: BlockHash,
    time: u32,
    bits: CompactTarget,
    ledger: Ledger,
}

/// **No honest node's best chain ever contains an invalid block**, and the node's ledger
/// at its tip is exactly a replay of that chain.
///
/// Every block of an honest best chain is validated from scratch against its own
/// ancestry, with the rule functions and a ledger replay of its own, independently of
/// the node's incremental state: the context-free checks (`Block::check`: proof of work
/// within the limit, Merkle root and mutation, size, one coinbase first), `bits` as the
/// retarget rule requires (recomputed here with `next_target` from the ancestors'
/// timestamps), time above the median time past, and every transaction against the
/// replayed ledger (signatures, nonces, funds, maturity, coinbase claim, supply). The
/// node's own ledger must then equal the replay, which catches undo and reorganisation
/// bugs. (The "not too far in the future" rule depends on the receiving node's clock and
/// is not re-checked.)
pub struct ValidChain {
    params: ChainParams,
    known: HashMap<BlockHash, Validated>,
}

impl ValidChain {
    /// A checker for a chain with `params`.
    #[must_use]
    pub fn new(params: &ChainParams) -> Self {
        let g = &params.genesis;
        let mut ledger = Ledger::new(params.ledger.clone());
        // Nodes refuse to start on an invalid genesis; the replay follows them.
        let _ = ledger.apply_block(0, &g.txs);
        let root = Validated { height: 0, prev: Hash::ZERO, time: g.header.time, bits: g.header.bits, ledger };
        ValidChain { params: params.clone(), known: HashMap::from([(g.hash(), root)]) }
    }

    fn expected_bits(&self, parent: &Validated, height: u64) -> Result<CompactTarget, String> {
        let interval = self.params.retarget_interval;
        if interval == 0 || !height.is_multiple_of(interval) {
            return Ok(parent.bits);
        }
        let mut first = parent;
        while first.height > height - interval {
            first = self.known.get(&first.prev).ok_or("an ancestor of a validated block is unknown")?;
        }
        Ok(next_target(
            parent.bits,
            i64::from(parent.time) - i64::from(first.time),
            self.params.target_timespan(),
            self.params.max_adjust,
            &self.params.pow_limit,
        ))
    }

    fn median_time_past(&self, parent: &Validated) -> u32 {
        let mut times = Vec::with_capacity(self.params.median_time_span);
        let mut cur = Some(parent);
        while let Some(v) = cur {
            if times.len() == self.params.median_time_span {
                break;
            }
            times.push(v.time);
            cur = if v.height == 0 { None } else { self.known.get(&v.prev) };
        }
        times.sort_unstable();
        times.get(times.len() / 2).copied().unwrap_or(0)
    }

    fn validate(&self, block: &Block, parent: &Validated, height: u64) -> Result<Ledger, String> {
        block.check(&self.params).map_err(|e| e.to_string())?;
        let bits = self.expected_bits(parent, height)?;
        if block.header.bits != bits {
            return Err(format!("bits {} where the retarget rule requires {bits}", block.header.bits));
        }
        let mtp = self.median_time_past(parent);
        if block.header.time <= mtp {
            return Err(format!("time {} is not after the median time past {mtp}", block.header.time));
        }
        let mut ledger = parent.ledger.clone();
        ledger.apply_block(height, &block.txs).map_err(|e| format!("ledger: {e}"))?;
        Ok(ledger)
    }
}

impl ChainChecker for ValidChain {
    fn name(&self) -> &'static str {
        "ValidChain"
    }

    fn on_tip(&mut self, view: &TipView<'_>) -> Result<(), String> {
        for (height, block) in new_blocks(view, &self.known)? {
            let hash = block.hash();
            let parent = self.known.get(&block.header.prev).ok_or("the parent of a new block was not validated")?;
            let ledger = self.validate(&block, parent, height).map_err(|e| {
                format!("{}'s best chain contains invalid block {hash} at height {height}: {e}", view.node)
            })?;
            let v =
                Validated { height, prev: block.header.prev, time: block.header.time, bits: block.header.bits, ledger };
            self.known.insert(hash, v);
        }
        let tip = (view.hash_at)(view.height).and_then(|h| self.known.get(&h)).ok_or("the tip was not validated")?;
        if tip.ledger != *view.ledger {
            return Err(format!(
                "{}'s ledger at height {} differs from a replay of its best chain: supply {} vs {}, {} vs {} accounts, \
                 tip {:?} vs {:?}",
                view.node,
                view.height,
                view.ledger.supply(),
                tip.ledger.supply(),
                view.ledger.accounts().count(),
                tip.ledger.accounts().count(),
                view.ledger.tip_height(),
                tip.ledger.tip_height()
            ));
        }
        Ok(())
    }
}

/// What [`NoDoubleSpend`] tracks along a chain.
#[derive(Clone)]
struct Spends {
    /// Next nonce of every sender.
    nonces: BTreeMap<PublicKey, u64>,
    /// Units held (mature or not).
    balances: BTreeMap<PublicKey, u128>,
}

/// **No double spend in any best chain**: along every honest best chain, each sender's
/// transfers carry the nonces 0, 1, 2… exactly once each (so no transfer, and no pair of
/// conflicting transfers, is included twice), and no transfer spends units its sender
/// does not hold at that point. A plain account model of its own, without
/// `ballot_ledger`, so a bug in the ledger does not hide itself.
pub struct NoDoubleSpend {
    known: HashMap<BlockHash, Spends>,
}

impl NoDoubleSpend {
    /// A checker for a chain with `params`.
    #[must_use]
    pub fn new(params: &ChainParams) -> Self {
        let g = &params.genesis;
        let mut s = Spends { nonces: BTreeMap::new(), balances: BTreeMap::new() };
        if let Some(Transaction::Coinbase(c)) = g.txs.first() {
            s.balances.insert(c.to, u128::from(c.amount));
        }
        NoDoubleSpend { known: HashMap::from([(g.hash(), s)]) }
    }

    /// Where the transfer of `from` with `nonce` first appears at or below `height`.
    fn first_use(view: &TipView<'_>, from: &PublicKey, nonce: u64, height: u64) -> String {
        for h in 1..=height {
            let Some(b) = (view.hash_at)(h).and_then(|x| view.blocks.get(&x)) else { continue };
            if let Some(t) = transfers(b).find(|t| t.transfer.from == *from && t.transfer.nonce == nonce) {
                return format!("transfer {} at height {h}", t.id());
            }
        }
        "an earlier transfer".to_owned()
    }
}

impl ChainChecker for NoDoubleSpend {
    fn name(&self) -> &'static str {
        "NoDoubleSpend"
    }

    fn on_tip(&mut self, view: &TipView<'_>) -> Result<(), String> {
        for (height, block) in new_blocks(view, &self.known)? {
            let mut s = self.known.get(&block.header.prev).ok_or("the parent of a new block is unknown")?.clone();
            for t in transfers(&block) {
                let tr = &t.transfer;
                let next = s.nonces.get(&tr.from).copied().unwrap_or(0);
                if tr.nonce < next {
                    return Err(format!(
                        "double spend in {}'s best chain: {:?} spends nonce {} twice, first in {}, again in transfer {} at \
                         height {height}",
                        view.node,
                        tr.from,
                        tr.nonce,
                        Self::first_use(view, &tr.from, tr.nonce, height - 1),
                        t.id()
                    ));
                }
                if tr.nonce > next {
                    return Err(format!(
                        "{}'s best chain skips nonces: transfer {} at height {height} of {:?} has nonce {}, the next \
                         unused one is {next}",
                        view.node,
                        t.id(),
                        tr.from,
                        tr.nonce
                    ));
                }
                let total = u128::from(tr.amount) + u128::from(tr.fee);
                let held = s.balances.get(&tr.from).copied().unwrap_or(0);
                if total > held {
                    return Err(format!(
                        "double spend in {}'s best chain: transfer {} at height {height} moves {total} units out of \
                         {:?}, which holds {held}",
                        view.node,
                        t.id(),
                        tr.from
                    ));
                }
                s.nonces.insert(tr.from, next + 1);
                s.balances.insert(tr.from, held - total);
                *s.balances.entry(tr.to).or_default() += u128::from(tr.amount);
            }
            if let Some(Transaction::Coinbase(c)) = block.txs.first() {
                *s.balances.entry(c.to).or_default() += u128::from(c.amount);
            }
            self.known.insert(block.hash(), s);
        }
        Ok(())
    }
}

/// **Supply follows the schedule**: along every honest best chain, no block creates more
/// than its subsidy (coinbase minus the fees it collects), the supply after height `h`
/// never exceeds the sum of the subsidies through `h`, and the node's ledger reports
/// exactly that supply, held in full by its accounts.
pub struct SupplySchedule {
    ledger: LedgerParams,
    known: HashMap<BlockHash, u128>,
}

impl SupplySchedule {
    /// A checker for a chain with `params`.
    #[must_use]
    pub fn new(params: &ChainParams) -> Self {
        let g = &params.genesis;
        SupplySchedule {
            ledger: params.ledger.clone(),
            known: HashMap::from([(g.hash(), u128::from(coinbase_amount(g)))]),
        }
    }
}

impl ChainChecker for SupplySchedule {
    fn name(&self) -> &'static str {
        "SupplySchedule"
    }

    fn on_tip(&mut self, view: &TipView<'_>) -> Result<(), String> {
        for (height, block) in new_blocks(view, &self.known)? {
            let before = *self.known.get(&block.header.prev).ok_or("the parent of a new block is unknown")?;
            let minted = u128::from(coinbase_amount(&block));
            let fees: u128 = transfers(&block).map(|t| u128::from(t.transfer.fee)).sum();
            let subsidy = u128::from(self.ledger.subsidy(height));
            if minted > subsidy + fees {
                return Err(format!(
                    "block {} at height {height} of {}'s best chain creates {} units; the subsidy is {subsidy}",
                    block.hash(),
                    view.node,
                    minted - fees
                ));
            }
            let after = (before + minted).checked_sub(fees).ok_or_else(|| {
                format!("block {} at height {height} collects {fees} in fees from a supply of {before}", block.hash())
            })?;
            let max = u128::from(self.ledger.max_supply_through(height));
            if after > max {
                return Err(format!(
                    "supply {after} after height {height} of {}'s best chain exceeds the schedule's {max}",
                    view.node
                ));
            }
            self.known.insert(block.hash(), after);
        }
        let tip = (view.hash_at)(view.height).and_then(|h| self.known.get(&h)).copied().unwrap_or(0);
        let reported = u128::from(view.ledger.supply());
        let held: u128 = view.ledger.accounts().map(|(_, a)| u128::from(a.balance)).sum();
        if reported != tip || held != tip {
            return Err(format!(
                "{} at height {}: the chain's supply is {tip}, its ledger reports {reported} and its accounts hold {held}",
                view.node, view.height
            ));
        }
        Ok(())
    }
}

/// **Honest nodes converge after partitions heal**, in two steps, in every window in
/// which the network is whole and lossless and every node up (see [`Healed`]):
///
/// * *catch-up* (deterministic): by `since + catch_up` every honest node's tip has at
///   least the work the best honest tip had at `since` — the best node announces its
///   tip within a sync interval, and the others fetch the missing branch with a few
///   locator round trips (the simulator states `catch_up = 2·S + 8·d`);
/// * *agreement*: by `since + converge` all honest nodes have had the same tip at some
///   moment — equal-work tips are only told apart by the next block, so the bound adds
///   `k` block intervals (`converge = k·T + S + 6·d`, see
///   [`ChainSim`](super::ChainSim)).
#[derive(Default)]
pub struct TipConvergence {
    window: Option<Instant>,
    /// The most work an honest tip had when the window started.
    target: U256,
    caught_up: bool,
    converged: bool,
}

fn describe(tips: &[HonestTip]) -> String {
    let tips: Vec<String> = tips
        .iter()
        .map(|t| match t.tip {
            Some((h, height, _)) => format!("{}: {height} {}", t.node, super::sim::short(&h)),
            None => format!("{}: down", t.node),
        })
        .collect();
    tips.join(", ")
}

impl ChainChecker for TipConvergence {
    fn name(&self) -> &'static str {
        "TipConvergence"
    }

    fn on_step(&mut self, view: &StepView<'_>) -> Result<(), String> {
        let Some(healed) = view.healed else {
            self.window = None;
            return Ok(());
        };
        if self.window != Some(healed.since) {
            self.window = Some(healed.since);
            self.target = view.tips.iter().filter_map(|t| t.tip.map(|(_, _, w)| w)).max().unwrap_or(U256::ZERO);
            self.caught_up = false;
            self.converged = false;
        }
        let elapsed = view.now.saturating_duration_since(healed.since);
        if !self.caught_up {
            let behind: Vec<NodeId> =
                view.tips.iter().filter(|t| t.tip.is_none_or(|(_, _, w)| w < self.target)).map(|t| t.node).collect();
            if behind.is_empty() {
                self.caught_up = true;
            } else if elapsed > healed.catch_up {
                return Err(format!(
                    "{behind:?} still behind the best tip of the heal at {:?} after {elapsed:?} (bound {:?}): {}",
                    healed.since,
                    healed.catch_up,
                    describe(view.tips)
                ));
            }
        }
        if self.converged {
            return Ok(());
        }
        let first = view.tips.first().and_then(|t| t.tip.map(|(h, _, _)| h));
        if first.is_some() && view.tips.iter().all(|t| t.tip.map(|(h, _, _)| h) == first) {
            self.converged = true;
            return Ok(());
        }
        if elapsed > healed.converge {
            return Err(format!(
                "honest nodes still disagree {elapsed:?} after the network healed at {:?} (bound {:?}): {}",
                healed.since,
                healed.converge,
                describe(view.tips)
            ));
        }
        Ok(())
    }
}

/// **Honest blocks are valid everywhere**: no honest node reports a block mined by an
/// honest miner as invalid (an honest miner builds on its own valid tip with transfers
/// its mempool checked, so a refusal means two nodes disagree about the rules).
pub struct HonestBlocksAccepted;

impl ChainChecker for HonestBlocksAccepted {
    fn name(&self) -> &'static str {
        "HonestBlocksAccepted"
    }

    fn on_refused(&mut self, view: &RefusedView<'_>) -> Result<(), String> {
        if view.honest_miner {
            return Err(format!(
                "{} refused block {} mined by honest {}: {}",
                view.node,
                view.hash,
                view.miner.map_or_else(|| "?".to_owned(), |m| m.to_string()),
                view.reason
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use ballot_ledger::{Coinbase, Keypair, SignedTransfer, Transfer};

    use super::*;
    use crate::chain::config::{CHAIN_ID, base_params, faucet_key, regenesis};
    use crate::chain::mining::{grind, unground};

    fn params() -> ChainParams {
        let mut p = base_params(faucet_key().public());
        p.ledger.coinbase_maturity = 0;
        p.retarget_interval = 0;
        regenesis(&mut p, faucet_key().public());
        p
    }

    fn pay(from: &Keypair, to: &Keypair, amount: u64, nonce: u64) -> SignedTransfer {
        Transfer { chain_id: CHAIN_ID, from: from.public(), to: to.public(), amount, fee: 3, nonce, memo: vec![] }
            .sign(from)
            .unwrap()
    }

    /// A hand-made history: blocks in a map, one best chain, the ledger a node would hold.
    struct History {
        params: ChainParams,
        chain: Vec<BlockHash>,
        blocks: HashMap<BlockHash, Arc<Block>>,
    }

    impl History {
        fn new(params: &ChainParams) -> Self {
            let g = params.genesis.clone();
            History { params: params.clone(), chain: vec![g.hash()], blocks: HashMap::from([(g.hash(), Arc::new(g))]) }
        }

        fn tip(&self) -> Arc<Block> {
            self.blocks[self.chain.last().unwrap()].clone()
        }

        /// Appends a mined block with `transfers`, claiming `extra` beyond subsidy and fees.
        fn push(&mut self, transfers: Vec<SignedTransfer>, extra: u64) -> Block {
            let b = self.make(transfers, extra);
            self.push_block(b.clone());
            b
        }

        fn make(&self, transfers: Vec<SignedTransfer>, extra: u64) -> Block {
            let parent = self.tip();
            let height = self.chain.len() as u64;
            let fees: u64 = transfers.iter().map(|t| t.transfer.fee).sum();
            let amount = self.params.ledger.subsidy(height) + fees + extra;
            let mut txs =
                vec![Transaction::Coinbase(Coinbase { height, to: Keypair::for_testing(9).public(), amount })];
            txs.extend(transfers.into_iter().map(Transaction::Transfer));
            let mut b = Block::new(parent.hash(), parent.header.time + 10, parent.header.bits, txs);
            assert!(grind(&mut b));
            b
        }

        fn push_block(&mut self, b: Block) {
            self.chain.push(b.hash());
            self.blocks.insert(b.hash(), Arc::new(b));
        }

        /// The ledger a node that applied the chain would hold (as far as it is valid).
        fn ledger(&self) -> Ledger {
            let mut l = Ledger::new(self.params.ledger.clone());
            for (h, hash) in self.chain.iter().enumerate() {
                let _ = l.apply_block(h as u64, &self.blocks[hash].txs);
            }
            l
        }

        fn check(&self, c: &mut dyn ChainChecker) -> Result<(), String> {
            self.check_with(c, &self.ledger())
        }

        fn check_with(&self, c: &mut dyn ChainChecker, ledger: &Ledger) -> Result<(), String> {
            let hash_at = |h: u64| self.chain.get(usize::try_from(h).ok()?).copied();
            c.on_tip(&TipView {
                now: Instant::ZERO,
                node: NodeId(1),
                height: self.chain.len() as u64 - 1,
                hash_at: &hash_at,
                blocks: &self.blocks,
                ledger,
            })
        }
    }

    fn good_history() -> History {
        let p = params();
        let (faucet, alice) = (faucet_key(), Keypair::for_testing(20));
        let mut h = History::new(&p);
        h.push(vec![pay(&faucet, &alice, 1_000, 0)], 0);
        h.push(vec![pay(&faucet, &alice, 500, 1), pay(&alice, &faucet, 100, 0)], 0);
        h
    }

    #[test]
    fn a_valid_history_passes_every_checker() {
        let h = good_history();
        for mut c in all_checkers(&h.params) {
            h.check(c.as_mut()).unwrap_or_else(|e| panic!("{}: {e}", c.name()));
            // Seen again (another node with the same tip): still fine.
            h.check(c.as_mut()).unwrap_or_else(|e| panic!("{}: {e}", c.name()));
        }
    }

    #[test]
    fn valid_chain_fires_on_a_block_without_proof_of_work() {
        let mut h = good_history();
        let mut b = h.make(vec![], 0);
        unground(&mut b);
        h.push_block(b);
        let e = h.check(&mut ValidChain::new(&h.params)).unwrap_err();
        assert!(e.contains("invalid block") && e.contains("does not meet target"), "{e}");
    }

    #[test]
    fn valid_chain_fires_on_a_forged_transfer_wrong_bits_and_an_old_timestamp() {
        // A transfer whose signature does not verify.
        let mut h = good_history();
        let mut forged = pay(&faucet_key(), &Keypair::for_testing(21), 10, 2);
        forged.signature.0[0] ^= 1;
        h.push(vec![forged], 0);
        let e = h.check(&mut ValidChain::new(&h.params)).unwrap_err();
        assert!(e.contains("bad signature"), "{e}");

        // Easier bits than the chain requires (still within the limit, real work done).
        let mut h = good_history();
        let mut b = h.make(vec![], 0);
        b.header.bits = CompactTarget::from_target(h.params.pow_limit >> 1);
        assert!(grind(&mut b));
        h.push_block(b);
        let e = h.check(&mut ValidChain::new(&h.params)).unwrap_err();
        assert!(e.contains("retarget rule"), "{e}");

        // A timestamp at the median time past.
        let mut h = good_history();
        let mut b = h.make(vec![], 0);
        b.header.time = h.blocks[&h.chain[1]].header.time;
        assert!(grind(&mut b));
        h.push_block(b);
        let e = h.check(&mut ValidChain::new(&h.params)).unwrap_err();
        assert!(e.contains("median time past"), "{e}");
    }

    #[test]
    fn valid_chain_fires_when_the_node_ledger_is_not_the_replay() {
        let h = good_history();
        let mut stale = h.ledger();
        let mut shorter = History::new(&h.params);
        shorter.chain = h.chain[..2].to_vec();
        shorter.blocks = h.blocks.clone();
        stale.clone_from(&shorter.ledger());
        let e = h.check_with(&mut ValidChain::new(&h.params), &stale).unwrap_err();
        assert!(e.contains("differs from a replay"), "{e}");
    }

    #[test]
    fn no_double_spend_fires_on_a_reused_nonce_and_on_an_overspend() {
        let (faucet, alice, bob) = (faucet_key(), Keypair::for_testing(20), Keypair::for_testing(21));
        // The same nonce of the faucet paid to Alice and, two blocks later, to Bob.
        let mut h = good_history();
        h.push(vec![pay(&faucet, &bob, 1_000, 1)], 0);
        let mut c = NoDoubleSpend::new(&h.params);
        let e = h.check(&mut c).unwrap_err();
        assert!(e.contains("double spend") && e.contains("spends nonce 1 twice") && e.contains("height 2"), "{e}");

        // Alice (who holds 1,500 - 103) spends 5,000.
        let mut h = good_history();
        h.push(vec![pay(&alice, &bob, 5_000, 1)], 0);
        let e = h.check(&mut NoDoubleSpend::new(&h.params)).unwrap_err();
        assert!(e.contains("double spend") && e.contains("which holds 1397"), "{e}");

        // A nonce gap is reported too.
        let mut h = good_history();
        h.push(vec![pay(&alice, &bob, 5, 7)], 0);
        assert!(h.check(&mut NoDoubleSpend::new(&h.params)).unwrap_err().contains("skips nonces"));
    }

    #[test]
    fn supply_schedule_fires_on_an_overclaiming_coinbase_and_a_wrong_ledger_supply() {
        let mut h = good_history();
        h.push(vec![], 1);
        let e = h.check(&mut SupplySchedule::new(&h.params)).unwrap_err();
        assert!(e.contains("creates 1000001 units; the subsidy is 1000000"), "{e}");

        // A ledger whose supply does not match the chain (here: one block behind).
        let h = good_history();
        let mut behind = History::new(&h.params);
        behind.chain = h.chain[..2].to_vec();
        behind.blocks = h.blocks.clone();
        let e = h.check_with(&mut SupplySchedule::new(&h.params), &behind.ledger()).unwrap_err();
        assert!(e.contains("its ledger reports"), "{e}");
    }

    #[test]
    fn checkers_fire_on_a_chain_that_does_not_start_at_genesis_or_holds_unknown_blocks() {
        let h = good_history();
        let mut other = params();
        other.genesis.header.time += 1;
        let e = h.check(&mut ValidChain::new(&other)).unwrap_err();
        assert!(e.contains("not at the genesis block"), "{e}");
        let mut missing = good_history();
        let ledger = missing.ledger();
        let tip = *missing.chain.last().unwrap();
        missing.blocks.remove(&tip);
        let e = missing.check_with(&mut NoDoubleSpend::new(&missing.params), &ledger).unwrap_err();
        assert!(e.contains("no miner made"), "{e}");
    }

    #[test]
    fn tip_convergence_fires_when_a_node_stays_behind_or_tips_differ_past_the_bounds() {
        let (a, b, c) = (ballot_ledger::sha256d(b"a"), ballot_ledger::sha256d(b"b"), ballot_ledger::sha256d(b"c"));
        let t = |s: u64| Instant::from_millis(s * 1000);
        let tip = |n, h, height: u64| HonestTip { node: NodeId(n), tip: Some((h, height, U256::from_u64(height))) };
        let split = [tip(1, a, 5), tip(2, b, 5)];
        let behind = [tip(1, a, 5), tip(2, c, 4)];
        let agree = [tip(1, b, 6), tip(2, b, 6)];
        let window = Healed { since: t(10), catch_up: Duration::from_secs(3), converge: Duration::from_secs(100) };
        let healed = Some(window);
        let step = |c: &mut TipConvergence, now, healed, tips: &[HonestTip]| c.on_step(&StepView { now, healed, tips });

        // Disagreement during faults is fine; after healing, equal work at once, and
        // different tips up to the bound.
        let mut c = TipConvergence::default();
        step(&mut c, t(5), None, &behind).unwrap();
        step(&mut c, t(10), healed, &split).unwrap();
        step(&mut c, t(60), healed, &split).unwrap();
        let e = step(&mut c, t(111), healed, &split).unwrap_err();
        assert!(e.contains("still disagree") && e.contains("bound 100s"), "{e}");

        // A node that does not catch up with the best tip of the heal.
        let mut c = TipConvergence::default();
        step(&mut c, t(10), healed, &behind).unwrap();
        step(&mut c, t(12), healed, &behind).unwrap();
        let e = step(&mut c, t(14), healed, &behind).unwrap_err();
        assert!(e.contains("[n2] still behind") && e.contains("bound 3s"), "{e}");

        // Agreeing once within the bound satisfies the window; a new window starts afresh.
        let mut c = TipConvergence::default();
        step(&mut c, t(50), healed, &agree).unwrap();
        step(&mut c, t(500), healed, &split).unwrap();
        let later = Some(Healed { since: t(600), ..window });
        assert!(step(&mut c, t(701), later, &split).is_err());
    }

    #[test]
    fn honest_blocks_accepted_fires_when_an_honest_block_is_refused() {
        let reason = PowError::HighHash { hash: Hash::ZERO, bits: CompactTarget(0x2000_ffff) };
        let view = |honest_miner| RefusedView {
            now: Instant::ZERO,
            node: NodeId(2),
            hash: Hash::ZERO,
            reason: &reason,
            miner: Some(NodeId(1)),
            honest_miner,
        };
        let mut c = HonestBlocksAccepted;
        c.on_refused(&view(false)).unwrap();
        let e = c.on_refused(&view(true)).unwrap_err();
        assert!(e.contains("mined by honest n1"), "{e}");
    }
}
