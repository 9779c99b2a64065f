//! The chain simulator's event loop: nodes, messages, mining, faults and checks.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ballot_core::{Instant, NodeId, SeededRng};
use ballot_ledger::{MempoolConfig, MempoolError, SignedTransfer, Transaction};
use ballot_pow::{Accepted, Block, BlockHash, Chain, ChainOutput, CompactTarget, PowError, U256};

use super::checkers::{ChainChecker, Healed, HonestTip, RefusedView, StepView, TipView, all_checkers};
use super::clients::Wallets;
use super::config::{ChainSimConfig, GENESIS_TIME, miner_key};
use super::faults::ChainFault;
use super::mining::{exponential, grind, work_f64};
use super::node::{Node, Role};
use super::stats::ChainStats;
use crate::net::{NetConfig, Network};
use crate::queue::EventQueue;

/// Most blocks in one `Blocks` reply.
pub(crate) const BATCH: usize = 64;

/// The first 12 hex digits of a hash as displayed, for logs and reports.
pub(crate) fn short(h: &BlockHash) -> String {
    h.to_string().chars().take(12).collect()
}

/// What nodes send each other.
#[derive(Clone)]
pub(crate) enum Msg {
    /// A transfer to relay.
    Tx(SignedTransfer),
    /// A block (a new tip pushed to peers, or a released one).
    Block(Arc<Block>),
    /// "Send me the blocks of your best chain after the first of these I share."
    GetBlocks(Vec<BlockHash>),
    /// The reply: consecutive blocks, parents first.
    Blocks(Vec<Arc<Block>>),
    /// A periodic announcement of the sender's tip.
    Tip { hash: BlockHash, work: U256 },
}

impl fmt::Debug for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Msg::Tx(t) => write!(f, "Tx({})", short(&t.id())),
            Msg::Block(b) => write!(f, "Block({})", short(&b.hash())),
            Msg::GetBlocks(l) => {
                write!(f, "GetBlocks({} hashes from {})", l.len(), short(&l.first().copied().unwrap_or_default()))
            }
            Msg::Blocks(b) => {
                write!(f, "Blocks({} from {})", b.len(), short(&b.first().map(|b| b.hash()).unwrap_or_default()))
            }
            Msg::Tip { hash, .. } => write!(f, "Tip({})", short(hash)),
        }
    }
}

pub(crate) enum Event {
    Deliver {
        from: usize,
        to: usize,
        msg: Msg,
    },
    Mine {
        node: usize,
        generation: u64,
    },
    Sync {
        node: usize,
        incarnation: u64,
    },
    Release {
        node: usize,
        generation: u64,
    },
    WalletTick,
    TxArrives {
        node: usize,
        tx: SignedTransfer,
    },
    Fault(ChainFault),
    /// Nothing happens; a measurement wakes up to look at the state.
    Wake,
}

/// Who mined a block, and whether it was meant to be valid.
pub(crate) struct Origin {
    pub(crate) miner: usize,
    pub(crate) honest: bool,
    pub(crate) valid: bool,
}

/// What a node's role is, without its state.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoleKind {
    Honest,
    Byzantine,
    DoubleSpender,
    Selfish,
}

/// A broken invariant of a chain run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainViolation {
    /// The checker that fired.
    pub checker: String,
    /// The run's seed.
    pub seed: u64,
    /// Number of nodes.
    pub nodes: usize,
    /// Virtual time since the start (genesis) of the step after which it fired.
    pub at: Duration,
    /// What is wrong.
    pub details: String,
    /// The command that replays the run.
    pub replay: String,
}

impl fmt::Display for ChainViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "VIOLATION of {} (seed {}, {} nodes, at virtual time {:?})",
            self.checker, self.seed, self.nodes, self.at
        )?;
        writeln!(f, "  {}", self.details.replace('\n', "\n  "))?;
        write!(f, "  replay: {}", self.replay)
    }
}

impl std::error::Error for ChainViolation {}

/// Why a chain simulation could not run (protocol misbehaviour is a
/// [`ChainViolation`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainSimError {
    /// A configuration value is out of range or inconsistent.
    #[error("invalid chain simulation config: {0}")]
    InvalidConfig(String),
    /// `Chain::new` refused the configured genesis block.
    #[error("the genesis block is refused: {0}")]
    Genesis(PowError),
    /// A checker found a broken invariant.
    #[error("{0}")]
    Violation(Box<ChainViolation>),
}

impl From<ChainViolation> for ChainSimError {
    fn from(v: ChainViolation) -> Self {
        ChainSimError::Violation(Box::new(v))
    }
}

/// A deterministic simulation of a Proof-of-Work network.
///
/// Drive it with [`ChainSim::step`] (one event) or [`ChainSim::run`] (to the end of a
/// randomized run); after every step the checkers look at every honest node whose best
/// chain changed. Virtual time starts at [`GENESIS_TIME`].
///
/// After every fault that leaves the network whole and lossless with every node up, a
/// window starts in which [`TipConvergence`](super::TipConvergence) holds honest nodes to
/// two bounds, with `T` the target block interval, `S` the sync interval and `d` the
/// longest one-way delay of the weather (ordinary delay plus reordering hold):
///
/// * catch-up, `2·S + 8·d`: within `S + d` every node hears the best tip's announcement,
///   and each round trip of `2·d` fetches up to 64 missing blocks;
/// * agreement, `k·T + S + 6·d` with `k` [`ChainSimConfig::convergence_intervals`] (60):
///   tips of equal work are only told apart by the next block, which reaches everyone
///   `d` after it is found; one is found within `k` intervals except with probability
///   about `e^-k` at the target rate.
pub struct ChainSim {
    pub(crate) cfg: ChainSimConfig,
    pub(crate) start: Instant,
    pub(crate) now: Instant,
    pub(crate) rng: SeededRng,
    pub(crate) queue: EventQueue<Event>,
    pub(crate) net: Network,
    /// Per-link delays that replace the weather's (measurements).
    pub(crate) fixed: Vec<Vec<Option<Duration>>>,
    pub(crate) nodes: Vec<Node>,
    /// Every block any miner made (and genesis).
    pub(crate) universe: HashMap<BlockHash, Arc<Block>>,
    pub(crate) origin: HashMap<BlockHash, Origin>,
    checkers: Vec<Box<dyn ChainChecker>>,
    pub(crate) stats: ChainStats,
    /// Hashes per second of the whole network.
    hashrate: f64,
    work: HashMap<CompactTarget, f64>,
    healed_since: Option<Instant>,
    /// The healed window being measured: start, best work then, caught up.
    window: Option<(Instant, U256, bool)>,
    final_heal: Option<Instant>,
    pub(crate) wallets: Option<Wallets>,
    dirty: Vec<usize>,
    refusals: Vec<(usize, BlockHash, PowError)>,
    pub(crate) ids: Vec<NodeId>,
    /// Measurements stop mining to let the network settle.
    pub(crate) mining_paused: bool,
}

impl ChainSim {
    /// A simulation of `cfg`, with every checker of [`all_checkers`].
    ///
    /// # Errors
    /// [`ChainSimError::InvalidConfig`] or [`ChainSimError::Genesis`].
    pub fn new(cfg: ChainSimConfig) -> Result<Self, ChainSimError> {
        cfg.validate().map_err(ChainSimError::InvalidConfig)?;
        let n = cfg.shares.len();
        let start = Instant::from_millis(u64::from(GENESIS_TIME) * 1000);
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let chain = Chain::new(cfg.params.clone(), MempoolConfig::default()).map_err(ChainSimError::Genesis)?;
            let key = miner_key(i);
            let role = match cfg.byzantine {
                Some((b, profile)) if b == i => Role::Byzantine(Box::new(super::byzantine::Byzantine::new(profile))),
                _ => Role::Honest,
            };
            nodes.push(Node {
                id: NodeId(i as u64 + 1),
                share: cfg.shares[i],
                public: key.public(),
                key,
                chain: Some(chain),
                store: HashMap::new(),
                last_durable: start,
                skew_ms: cfg.clock_skew_ms[i],
                incarnation: 0,
                mine_gen: 0,
                role,
            });
        }
        let genesis = Arc::new(cfg.params.genesis.clone());
        let limit = work_f64(CompactTarget::from_target(cfg.params.pow_limit));
        let hashrate = cfg.hash_factor * limit / cfg.block_interval().as_secs_f64();
        let mut sim = ChainSim {
            checkers: all_checkers(&cfg.params),
            start,
            now: start,
            rng: SeededRng::new(cfg.seed),
            queue: EventQueue::new(),
            net: Network::new(cfg.net),
            fixed: vec![vec![None; n]; n],
            nodes,
            universe: HashMap::from([(genesis.hash(), genesis)]),
            origin: HashMap::new(),
            stats: ChainStats::default(),
            hashrate,
            work: HashMap::new(),
            healed_since: None,
            window: None,
            final_heal: None,
            wallets: None,
            dirty: (0..n).collect(),
            refusals: Vec::new(),
            ids: (1..=n as u64).map(NodeId).collect(),
            mining_paused: false,
            cfg,
        };
        for i in 0..n {
            sim.drain(i, None);
        }
        for (at, f) in sim.cfg.faults.clone() {
            sim.queue.push(start + at, Event::Fault(f));
        }
        if !sim.cfg.settle.is_zero() {
            sim.queue.push(start + sim.cfg.heal_at, Event::Fault(ChainFault::HealAll));
        }
        for i in 0..n {
            sim.schedule_mining(i);
            if let Some(s) = sim.cfg.sync_interval {
                let phase = Duration::from_nanos(sim.rng.gen_range(0..s.as_nanos() as u64));
                sim.queue.push(start + phase, Event::Sync { node: i, incarnation: 0 });
            }
        }
        if let Some(c) = sim.cfg.clients {
            sim.wallets = Some(Wallets::new(c, n));
            sim.queue.push(start, Event::WalletTick);
        }
        sim.update_healed();
        // The first observation: the genesis state, and the start of a healed window.
        sim.check()?;
        Ok(sim)
    }

    /// Virtual time.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time since genesis.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.now.saturating_duration_since(self.start)
    }

    /// The chain state of node index `i`, `None` while it is down.
    #[must_use]
    pub fn chain(&self, i: usize) -> Option<&Chain> {
        self.nodes.get(i).and_then(|n| n.chain.as_ref())
    }

    /// The figures so far.
    #[must_use]
    pub fn stats(&self) -> &ChainStats {
        &self.stats
    }

    /// Runs to the end of a randomized run: past the final heal and the settling time,
    /// to the first moment every honest node has the same tip, then returns the figures.
    ///
    /// # Errors
    /// The first violation.
    pub fn run(mut self) -> Result<ChainStats, ChainViolation> {
        let settle_end = self.start + self.cfg.heal_at + self.cfg.settle;
        let hard_end = settle_end + self.bound() + Duration::from_secs(1);
        while self.step()? {
            if self.now >= settle_end && self.honest_converged() {
                break;
            }
            if self.now > hard_end {
                let tips = self.tips_summary();
                return Err(self.violation(
                    "TipConvergence",
                    format!("honest nodes do not agree {:?} after the final heal: {tips}", self.now - settle_end),
                ));
            }
        }
        Ok(self.finish())
    }

    /// Processes the next event and runs the checkers. Returns `false` when nothing is
    /// left to do.
    ///
    /// # Errors
    /// The first violation.
    pub fn step(&mut self) -> Result<bool, ChainViolation> {
        let Some((at, ev)) = self.queue.pop() else { return Ok(false) };
        self.now = at;
        self.stats.events += 1;
        match ev {
            Event::Deliver { from, to, msg } => self.deliver(from, to, msg),
            Event::Mine { node, generation } => {
                if self.nodes[node].mine_gen == generation && !self.mining_paused {
                    self.mine(node);
                }
            }
            Event::Sync { node, incarnation } => self.sync_tick(node, incarnation),
            Event::Release { node, generation } => self.byz_release(node, generation),
            Event::WalletTick => self.wallet_tick(),
            Event::TxArrives { node, tx } => self.tx_arrives(node, tx),
            Event::Fault(f) => self.apply_fault(f),
            Event::Wake => {}
        }
        self.check()?;
        Ok(true)
    }

    pub(crate) fn kind(&self, i: usize) -> RoleKind {
        match self.nodes[i].role {
            Role::Honest => RoleKind::Honest,
            Role::Byzantine(_) => RoleKind::Byzantine,
            Role::DoubleSpender(_) => RoleKind::DoubleSpender,
            Role::Selfish(_) => RoleKind::Selfish,
        }
    }

    /// Node `i`'s clock.
    pub(crate) fn node_now(&self, i: usize) -> Instant {
        self.nodes[i].clock(self.now)
    }

    pub(crate) fn violation(&self, checker: &str, details: String) -> ChainViolation {
        ChainViolation {
            checker: checker.to_owned(),
            seed: self.cfg.seed,
            nodes: self.nodes.len(),
            at: self.elapsed(),
            details,
            replay: self.cfg.replay.clone(),
        }
    }

    // ---- mining -------------------------------------------------------------------

    /// Draws node `i`'s next block time at its current tip (superseding the last one).
    pub(crate) fn schedule_mining(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.mine_gen += 1;
        let generation = node.mine_gen;
        let Some(chain) = node.chain.as_ref() else { return };
        if node.share <= 0.0 {
            return;
        }
        let bits = chain.next_bits(chain.tip());
        let share = node.share;
        let work = *self.work.entry(bits).or_insert_with(|| work_f64(bits));
        if let Some(dt) = exponential(&mut self.rng, share * self.hashrate / work) {
            self.queue.push(self.now + dt, Event::Mine { node: i, generation });
        }
    }

    fn mine(&mut self, i: usize) {
        if !self.nodes[i].up() {
            return;
        }
        match self.kind(i) {
            RoleKind::Honest => self.mine_honest(i),
            RoleKind::Byzantine => self.mine_byzantine(i),
            RoleKind::DoubleSpender => self.mine_double_spender(i),
            RoleKind::Selfish => self.mine_selfish(i),
        }
        self.schedule_mining(i);
    }

    fn mine_honest(&mut self, i: usize) {
        if let Some(block) = self.new_block(i) {
            let block = self.record(i, block, true);
            self.accept(i, None, block);
        }
    }

    /// A block on node `i`'s tip from its template, nonce ground.
    pub(crate) fn new_block(&mut self, i: usize) -> Option<Block> {
        let now = self.node_now(i);
        let node = &self.nodes[i];
        let mut block = node.chain.as_ref()?.block_template(now, node.public).block;
        grind(&mut block).then_some(block)
    }

    /// Files a freshly mined block in the universe.
    pub(crate) fn record(&mut self, i: usize, block: Block, valid: bool) -> Arc<Block> {
        let block = Arc::new(block);
        let hash = block.hash();
        self.universe.insert(hash, block.clone());
        self.origin.insert(hash, Origin { miner: i, honest: self.nodes[i].honest(), valid });
        tracing::debug!(t = ?self.elapsed(), node = %self.ids[i], hash = short(&hash), prev = short(&block.header.prev), valid, "mined");
        self.stats.blocks_mined += 1;
        if !self.nodes[i].honest() {
            if valid {
                self.stats.byz_valid += 1;
            } else {
                self.stats.byz_invalid += 1;
            }
        }
        block
    }

    // ---- node input and output ----------------------------------------------------

    /// Feeds a block to node `i` (from `peer`, or its own miner) and acts on the outputs.
    pub(crate) fn accept(&mut self, i: usize, peer: Option<usize>, block: Arc<Block>) {
        let now = self.node_now(i);
        let Some(chain) = self.nodes[i].chain.as_mut() else { return };
        match chain.accept_block(now, Block::clone(&block)) {
            Ok(Accepted::Orphan { .. }) => self.stats.orphans += 1,
            Ok(Accepted::New | Accepted::Duplicate) => {}
            Err(_) => self.stats.blocks_refused += 1,
        }
        self.drain(i, peer);
    }

    /// Acts on node `i`'s outputs: stores blocks, relays a new tip, fetches missing
    /// blocks from `peer` (the sender of the input) and notes reorganisations.
    pub(crate) fn drain(&mut self, i: usize, peer: Option<usize>) {
        let mut new_tip = None;
        let mut fetch = false;
        while let Some(out) = self.nodes[i].chain.as_mut().and_then(Chain::poll_output) {
            match out {
                ChainOutput::Connected(c) => {
                    let delay = self.disk_delay();
                    self.nodes[i].store(self.now, delay, c.entry.hash, c.entry.height, c.block);
                }
                ChainOutput::StoreBlock { entry, block } => {
                    let delay = self.disk_delay();
                    self.nodes[i].store(self.now, delay, entry.hash, entry.height, block);
                }
                ChainOutput::Disconnected { .. } => self.stats.disconnected += 1,
                ChainOutput::StoreIndex(_) => {}
                ChainOutput::NewTip { hash, height, .. } => {
                    tracing::debug!(t = ?self.elapsed(), node = %self.ids[i], height, hash = short(&hash), "new tip");
                    new_tip = Some(hash);
                }
                ChainOutput::Reorg { depth, .. } => {
                    tracing::debug!(t = ?self.elapsed(), node = %self.ids[i], depth, "reorganisation");
                    self.stats.reorgs += 1;
                    self.stats.max_reorg = self.stats.max_reorg.max(depth);
                }
                ChainOutput::Invalid { hash, reason } => {
                    self.stats.invalid_found += 1;
                    if self.nodes[i].honest() {
                        self.refusals.push((i, hash, reason));
                    }
                }
                ChainOutput::RequestBlock(_) => fetch = true,
            }
        }
        if fetch && let Some(to) = peer.or_else(|| self.random_peer(i)) {
            let locator = self.locator(i, None);
            self.send(i, to, Msg::GetBlocks(locator));
        }
        if let Some(hash) = new_tip {
            self.dirty.push(i);
            self.schedule_mining(i);
            if self.relays(i)
                && let Some(block) = self.nodes[i].chain.as_ref().and_then(|c| c.block(&hash)).cloned()
            {
                for p in 0..self.nodes.len() {
                    if p != i && Some(p) != peer {
                        self.send(i, p, Msg::Block(block.clone()));
                    }
                }
            }
        }
    }

    fn disk_delay(&mut self) -> Duration {
        let (lo, hi) = self.cfg.disk_delay;
        let (lo, hi) = (lo.as_nanos() as u64, hi.as_nanos() as u64);
        Duration::from_nanos(self.rng.gen_range(lo..hi + 1))
    }

    /// Whether node `i` passes blocks and transfers on and answers requests.
    pub(crate) fn relays(&self, i: usize) -> bool {
        match &self.nodes[i].role {
            Role::Honest => true,
            Role::Byzantine(b) => !b.withholding,
            Role::DoubleSpender(_) | Role::Selfish(_) => false,
        }
    }

    /// Node `i`'s block locator, after `first` if given.
    fn locator(&self, i: usize, first: Option<BlockHash>) -> Vec<BlockHash> {
        let mut out: Vec<BlockHash> = first.into_iter().collect();
        if let Some(c) = self.nodes[i].chain.as_ref() {
            out.extend(c.locator());
        }
        out
    }

    fn random_peer(&mut self, i: usize) -> Option<usize> {
        let peers: Vec<usize> = (0..self.nodes.len()).filter(|&p| p != i && self.nodes[p].up()).collect();
        if peers.is_empty() {
            return None;
        }
        Some(peers[usize::try_from(self.rng.gen_range(0..peers.len() as u64)).unwrap_or(0)])
    }

    // ---- network ------------------------------------------------------------------

    /// Sends `msg` over the link `from → to`: the weather decides delays and loss,
    /// unless the link has a fixed delay.
    pub(crate) fn send(&mut self, from: usize, to: usize, msg: Msg) {
        let delays = match self.fixed[from][to] {
            Some(d) => {
                self.net.stats.sent += 1;
                if self.net.is_cut(self.ids[from], self.ids[to]) {
                    self.net.stats.cut += 1;
                    Vec::new()
                } else {
                    vec![d]
                }
            }
            None => self.net.route(&mut self.rng, self.ids[from], self.ids[to]),
        };
        for d in delays {
            self.queue.push(self.now + d, Event::Deliver { from, to, msg: msg.clone() });
        }
    }

    /// Sends `msg` to arrive exactly `delay` from now (an attacker's chosen timing).
    pub(crate) fn send_after(&mut self, from: usize, to: usize, msg: Msg, delay: Duration) {
        self.net.stats.sent += 1;
        self.queue.push(self.now + delay, Event::Deliver { from, to, msg });
    }

    fn deliver(&mut self, from: usize, to: usize, msg: Msg) {
        if self.net.is_cut(self.ids[from], self.ids[to]) {
            self.net.stats.cut += 1;
            return;
        }
        if !self.nodes[to].up() {
            self.net.stats.to_down += 1;
            return;
        }
        self.net.stats.delivered += 1;
        tracing::trace!(t = ?self.elapsed(), from = %self.ids[from], to = %self.ids[to], ?msg, "deliver");
        match msg {
            Msg::Tx(tx) => self.on_tx(to, Some(from), tx),
            Msg::Block(b) => self.on_block(to, from, b),
            Msg::GetBlocks(locator) => self.on_get_blocks(to, from, &locator),
            Msg::Blocks(blocks) => self.on_blocks(to, from, blocks),
            Msg::Tip { hash, work } => self.on_tip_announce(to, from, hash, work),
        }
    }

    fn on_block(&mut self, to: usize, from: usize, block: Arc<Block>) {
        match self.kind(to) {
            RoleKind::DoubleSpender => {
                // While pre-mining the attacker follows the public chain; racing, it
                // ignores it.
                if !self.ds_ignores_blocks(to) {
                    self.accept(to, Some(from), block);
                }
            }
            RoleKind::Selfish => self.selfish_on_block(to, from, block),
            RoleKind::Honest | RoleKind::Byzantine => self.accept(to, Some(from), block),
        }
    }

    /// Node `i` receives a transfer (from a peer, or from a wallet if `from` is `None`).
    pub(crate) fn on_tx(&mut self, i: usize, from: Option<usize>, tx: SignedTransfer) {
        if !matches!(self.kind(i), RoleKind::Honest | RoleKind::Byzantine) {
            return;
        }
        let Some(chain) = self.nodes[i].chain.as_mut() else { return };
        let result = chain.submit_transaction(tx.clone());
        if from.is_none() {
            match &result {
                Ok(_) => self.stats.tx_admitted += 1,
                Err(MempoolError::ReplacementUnderpriced { .. }) => self.stats.tx_conflicts += 1,
                Err(_) => self.stats.tx_refused += 1,
            }
        }
        if result.is_ok() && self.relays(i) {
            for p in 0..self.nodes.len() {
                if p != i && Some(p) != from {
                    self.send(i, p, Msg::Tx(tx.clone()));
                }
            }
        }
    }

    fn on_get_blocks(&mut self, i: usize, from: usize, locator: &[BlockHash]) {
        if !self.relays(i) {
            return;
        }
        let Some(chain) = self.nodes[i].chain.as_ref() else { return };
        let fork = locator
            .iter()
            .find_map(|h| chain.entry(h).filter(|e| chain.is_active(&e.hash)).map(|e| e.height))
            .unwrap_or(0);
        let end = chain.height().min(fork + BATCH as u64);
        let blocks: Vec<Arc<Block>> =
            (fork + 1..=end).filter_map(|h| chain.hash_at(h).and_then(|x| chain.block(&x).cloned())).collect();
        if !blocks.is_empty() {
            self.send(i, from, Msg::Blocks(blocks));
        }
    }

    fn on_blocks(&mut self, i: usize, from: usize, blocks: Vec<Arc<Block>>) {
        let full = blocks.len() >= BATCH;
        let last = blocks.last().map(|b| b.hash());
        for b in blocks {
            if !self.nodes[i].up() {
                return;
            }
            self.on_block(i, from, b);
        }
        if full && let Some(last) = last {
            let locator = self.locator(i, Some(last));
            self.send(i, from, Msg::GetBlocks(locator));
        }
    }

    fn on_tip_announce(&mut self, i: usize, from: usize, hash: BlockHash, work: U256) {
        let Some(chain) = self.nodes[i].chain.as_ref() else { return };
        if chain.entry(&hash).is_none() && work > chain.tip().chain_work {
            let locator = self.locator(i, None);
            self.send(i, from, Msg::GetBlocks(locator));
        }
    }

    fn sync_tick(&mut self, i: usize, incarnation: u64) {
        if self.nodes[i].incarnation != incarnation {
            return;
        }
        let Some(chain) = self.nodes[i].chain.as_ref() else { return };
        let (hash, work) = (chain.tip().hash, chain.tip().chain_work);
        if self.relays(i) {
            for p in 0..self.nodes.len() {
                if p != i {
                    self.send(i, p, Msg::Tip { hash, work });
                }
            }
        }
        if let Some(s) = self.cfg.sync_interval {
            self.queue.push(self.now + s, Event::Sync { node: i, incarnation });
        }
    }

    // ---- faults -------------------------------------------------------------------

    fn index_of(&self, id: NodeId) -> Option<usize> {
        self.ids.iter().position(|&x| x == id)
    }

    fn apply_fault(&mut self, f: ChainFault) {
        tracing::debug!(t = ?self.elapsed(), fault = ?f, "fault");
        *self.stats.faults.entry(f.kind()).or_default() += 1;
        match f {
            ChainFault::Partition(groups) => self.net.partition(&self.ids.clone(), &groups),
            ChainFault::CutOneWay { from, to } => self.net.cut_one_way(&from, &to),
            ChainFault::HealNetwork => self.net.heal(),
            ChainFault::Weather(w) => self.net.set_config(w),
            ChainFault::Crash(id) => {
                if let Some(i) = self.index_of(id) {
                    self.crash(i);
                }
            }
            ChainFault::Restart(id) => {
                if let Some(i) = self.index_of(id) {
                    self.restart(i);
                }
            }
            ChainFault::HealAll => {
                self.net.heal();
                self.net.set_config(NetConfig::calm());
                for i in 0..self.nodes.len() {
                    self.restart(i);
                }
                self.final_heal = Some(self.now);
            }
        }
        self.update_healed();
    }

    fn crash(&mut self, i: usize) {
        if !self.nodes[i].up() {
            return;
        }
        self.nodes[i].crash(self.now);
        if let Role::Byzantine(b) = &mut self.nodes[i].role {
            b.withheld.clear();
            b.withholding = false;
        }
        self.stats.crashes += 1;
    }

    fn restart(&mut self, i: usize) {
        if self.nodes[i].up() {
            return;
        }
        let blocks = self.nodes[i].durable_blocks();
        let Ok(chain) = Chain::restore(self.cfg.params.clone(), MempoolConfig::default(), blocks) else { return };
        self.nodes[i].chain = Some(chain);
        self.stats.restarts += 1;
        self.dirty.push(i);
        self.schedule_mining(i);
        let incarnation = self.nodes[i].incarnation;
        if let Some(s) = self.cfg.sync_interval {
            self.queue.push(self.now + s, Event::Sync { node: i, incarnation });
        }
        if let Some(p) = self.random_peer(i) {
            let locator = self.locator(i, None);
            self.send(i, p, Msg::GetBlocks(locator));
        }
    }

    /// After a fault: a new healed window starts now if the network is whole and
    /// lossless and every node up (every fault starts a new window, since the bounds
    /// depend on the weather).
    fn update_healed(&mut self) {
        let healed = !self.net.is_partitioned() && self.nodes.iter().all(Node::up) && self.net.config().drop == 0.0;
        self.healed_since = healed.then_some(self.now);
    }

    /// The longest one-way delay of the current weather (ordinary delay plus hold).
    fn longest_delay(&self) -> Duration {
        let w = self.net.config();
        w.delay_max + if w.reorder > 0.0 { w.reorder_delay } else { Duration::ZERO }
    }

    /// The agreement bound in the current weather: `k·T + S + 6·d`.
    pub(crate) fn bound(&self) -> Duration {
        self.cfg.block_interval() * self.cfg.convergence_intervals
            + self.cfg.sync_interval.unwrap_or(Duration::ZERO)
            + self.longest_delay() * 6
    }

    /// The catch-up bound in the current weather: `2·S + 8·d` (an announcement, then up
    /// to three batches of 64 blocks).
    pub(crate) fn catch_up(&self) -> Duration {
        self.cfg.sync_interval.unwrap_or(Duration::ZERO) * 2 + self.longest_delay() * 8
    }

    // ---- checks -------------------------------------------------------------------

    pub(crate) fn honest_converged(&self) -> bool {
        let mut tips = self.nodes.iter().filter(|n| n.honest()).map(|n| n.chain.as_ref().map(|c| c.tip().hash));
        let first = tips.next().flatten();
        first.is_some() && tips.all(|t| t == first)
    }

    fn tips_summary(&self) -> String {
        let tips: Vec<String> = self
            .nodes
            .iter()
            .map(|n| match n.chain.as_ref() {
                Some(c) => format!("{}: {} {}", n.id, c.height(), short(&c.tip().hash)),
                None => format!("{}: down", n.id),
            })
            .collect();
        tips.join(", ")
    }

    fn check(&mut self) -> Result<(), ChainViolation> {
        let mut checkers = std::mem::take(&mut self.checkers);
        let result = self.run_checkers(&mut checkers);
        self.checkers = checkers;
        self.measure_catch_up();
        if self.final_heal.is_some() && self.stats.converge_after_heal.is_none() && self.honest_converged() {
            self.stats.converge_after_heal =
                Some(self.now.saturating_duration_since(self.final_heal.unwrap_or(self.now)));
        }
        result
    }

    /// Figures of the catch-up after heals: how many windows started with an honest
    /// node behind, and the longest catch-up.
    fn measure_catch_up(&mut self) {
        let Some(since) = self.healed_since else {
            self.window = None;
            return;
        };
        let works = || self.nodes.iter().filter(|n| n.honest()).map(|n| n.chain.as_ref().map(|c| c.tip().chain_work));
        if self.window.map(|(s, _, _)| s) != Some(since) {
            let target = works().flatten().max().unwrap_or(U256::ZERO);
            self.window = Some((since, target, false));
        }
        let Some((since, target, done)) = self.window else { return };
        if !done && works().all(|w| w.is_some_and(|w| w >= target)) {
            self.window = Some((since, target, true));
            if self.now > since {
                self.stats.catch_ups += 1;
                self.stats.catch_up_max = self.stats.catch_up_max.max(self.now - since);
            }
        }
    }

    fn run_checkers(&mut self, checkers: &mut [Box<dyn ChainChecker>]) -> Result<(), ChainViolation> {
        for (i, hash, reason) in std::mem::take(&mut self.refusals) {
            let origin = self.origin.get(&hash);
            let view = RefusedView {
                now: self.now,
                node: self.ids[i],
                hash,
                reason: &reason,
                miner: origin.map(|o| self.ids[o.miner]),
                honest_miner: origin.is_some_and(|o| o.honest),
            };
            for c in checkers.iter_mut() {
                c.on_refused(&view).map_err(|e| self.violation(c.name(), e))?;
            }
        }
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for i in dirty {
            let node = &self.nodes[i];
            let Some(chain) = node.chain.as_ref().filter(|_| node.honest()) else { continue };
            let hash_at = |h: u64| chain.hash_at(h);
            let view = TipView {
                now: self.now,
                node: node.id,
                height: chain.height(),
                hash_at: &hash_at,
                blocks: &self.universe,
                ledger: chain.ledger(),
            };
            for c in checkers.iter_mut() {
                c.on_tip(&view).map_err(|e| self.violation(c.name(), e))?;
            }
        }
        let tips: Vec<HonestTip> = self
            .nodes
            .iter()
            .filter(|n| n.honest())
            .map(|n| HonestTip {
                node: n.id,
                tip: n.chain.as_ref().map(|c| (c.tip().hash, c.height(), c.tip().chain_work)),
            })
            .collect();
        let healed = self.healed_since.map(|since| Healed { since, catch_up: self.catch_up(), converge: self.bound() });
        let view = StepView { now: self.now, healed, tips: &tips };
        for c in checkers.iter_mut() {
            c.on_step(&view).map_err(|e| self.violation(c.name(), e))?;
        }
        Ok(())
    }

    /// The figures of the run, with the final chain of the first honest node.
    pub(crate) fn finish(mut self) -> ChainStats {
        let mut s = std::mem::take(&mut self.stats);
        s.runs = 1;
        s.virtual_time = self.elapsed();
        s.converge_max = s.converge_after_heal.unwrap_or_default();
        s.converge_sum = s.converge_max;
        s.net = self.net.stats;
        let Some(chain) = self.nodes.iter().find(|n| n.honest() && n.up()).and_then(|n| n.chain.as_ref()) else {
            return s;
        };
        let height = chain.height();
        let active: HashSet<BlockHash> = (0..=height).filter_map(|h| chain.hash_at(h)).collect();
        s.main_chain = height;
        s.stale = self.origin.iter().filter(|(h, o)| o.valid && !active.contains(*h)).count() as u64;
        let mut bits = HashSet::new();
        let mut confirmed = HashSet::new();
        for h in &active {
            if let Some(b) = chain.block(h) {
                bits.insert(b.header.bits);
                confirmed.extend(b.txs.iter().filter_map(Transaction::as_transfer).map(SignedTransfer::id));
            }
        }
        s.difficulties = bits.len() as u64;
        s.supply = chain.ledger().supply();
        s.schedule = self.cfg.params.ledger.max_supply_through(height);
        if let Some(w) = &self.wallets {
            s.tx_confirmed = w.submitted.iter().filter(|id| confirmed.contains(*id)).count() as u64;
            for (a, b) in &w.pairs {
                match (confirmed.contains(a), confirmed.contains(b)) {
                    (true, true) => s.ds_both_confirmed += 1,
                    (true, false) | (false, true) => s.ds_one_confirmed += 1,
                    (false, false) => {}
                }
            }
        }
        s
    }
}
