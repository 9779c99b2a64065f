//! The block index and the chain state machine: fork choice, reorganisations, orphans.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use ballot_core::Instant;
use ballot_ledger::{
    BlockUndo, COINBASE_SIZE, Coinbase, Hash, Ledger, Mempool, MempoolConfig, MempoolError, PublicKey, SignedTransfer,
    StateDelta, Transaction, TxId,
};
use serde::{Deserialize, Serialize};

use crate::orphan::OrphanPool;
use crate::{
    Block, BlockHash, BlockHeader, ChainParams, CompactTarget, HEADER_SIZE, PowError, U256, block_work,
    check_proof_of_work, next_target,
};

/// How far a block (or header) has been validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    /// The header passed every check; the block's transactions are not known yet.
    Header,
    /// The block passed every check except its transactions, which are validated when
    /// it is connected.
    Data,
    /// The block has been connected: everything in it is valid.
    Valid,
    /// The block, or one of its ancestors, broke a rule.
    Invalid,
}

/// One entry of the block index: what a node stores per known header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The block hash.
    pub hash: BlockHash,
    /// The header.
    pub header: BlockHeader,
    /// Height above genesis (genesis is 0).
    pub height: u64,
    /// Sum of [`block_work`] from genesis through this block.
    pub chain_work: U256,
    /// Validation status.
    pub status: Status,
}

/// What became of a submitted header or block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// New and valid so far; see the outputs for what it changed.
    New,
    /// Already known.
    Duplicate,
    /// Its parent is unknown: a block is kept in the orphan pool (a
    /// [`ChainOutput::RequestBlock`] asks for the parent); a header is dropped.
    Orphan {
        /// The unknown parent.
        missing: BlockHash,
    },
}

/// A block that joined the active chain. Write all of it in one atomic batch: the
/// block, its index entry, the ledger delta and the undo data.
#[derive(Clone, Debug)]
pub struct Connected {
    /// The block's index entry (status [`Status::Valid`]).
    pub entry: IndexEntry,
    /// The block.
    pub block: Arc<Block>,
    /// What takes it back out of the ledger.
    pub undo: BlockUndo,
    /// The accounts it changed, with their new values.
    pub delta: StateDelta,
}

/// What the node must do after an input; drained with [`Chain::poll_output`] in order.
#[derive(Clone, Debug)]
pub enum ChainOutput {
    /// A block joined the active chain: persist it atomically.
    Connected(Box<Connected>),
    /// The active tip was taken off during a reorganisation: persist the delta (the
    /// accounts' restored values) and drop the block's undo data; keep the block.
    Disconnected {
        /// The block's index entry.
        entry: IndexEntry,
        /// The accounts it had changed, with their restored values.
        delta: StateDelta,
    },
    /// A valid-so-far block that is not on the active chain (a side branch): store it.
    StoreBlock {
        /// Its index entry (status [`Status::Data`]).
        entry: IndexEntry,
        /// The block.
        block: Arc<Block>,
    },
    /// An index entry was added or changed (a new header, a block found invalid).
    StoreIndex(IndexEntry),
    /// The active tip changed.
    NewTip {
        /// New tip hash.
        hash: BlockHash,
        /// Its height.
        height: u64,
        /// Its cumulative work.
        chain_work: U256,
    },
    /// The active chain switched branches.
    Reorg {
        /// Tip before.
        old_tip: BlockHash,
        /// Tip after.
        new_tip: BlockHash,
        /// Last block both branches share.
        fork: BlockHash,
        /// Blocks taken off the old branch.
        depth: u64,
        /// Blocks of the new branch put on.
        connected: u64,
    },
    /// A block broke a rule. Penalise the peer that sent it, if any.
    Invalid {
        /// The block.
        hash: BlockHash,
        /// The rule.
        reason: PowError,
    },
    /// Ask peers for this block: the parent of an orphan, or the data of a new header.
    RequestBlock(BlockHash),
}

/// A block ready to mine: run [`NonceScanner`](crate::NonceScanner) on its header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockTemplate {
    /// The block, nonce 0.
    pub block: Block,
    /// Its height.
    pub height: u64,
    /// Fees its transfers pay (included in the coinbase).
    pub fees: u64,
}

/// Seconds since the Unix epoch of `now`: the chain reads [`Instant`] as time since
/// the Unix epoch (block timestamps are wall-clock times).
#[must_use]
pub fn unix_seconds(now: Instant) -> u64 {
    now.as_nanos() / 1_000_000_000
}

/// The Nakamoto consensus state machine of one node: block index, active chain, ledger
/// at the tip, mempool and orphan pool. Sans-IO: it reads no clock (`now` is an input
/// and is read as time since the Unix epoch), does no IO and spawns nothing.
///
/// # Driving it
///
/// * Feed headers ([`Chain::accept_header`]), blocks ([`Chain::accept_block`]) and
///   transfers ([`Chain::submit_transaction`]) from peers, users and your own miner.
/// * After each input, drain [`Chain::poll_output`] until `None` and act on every
///   output in order: write each [`ChainOutput::Connected`] as one atomic batch (block,
///   index entry, state delta, undo), apply [`ChainOutput::Disconnected`] deltas, store
///   side-branch blocks and index entries, announce new tips, fetch requested blocks,
///   penalise senders of invalid blocks.
/// * To mine, take a [`Chain::block_template`], scan nonces on your threads, and submit
///   the solved block like any other.
/// * On restart, [`Chain::restore`] replays the stored blocks (parents before children).
///
/// # Fork choice
///
/// The active chain ends at the valid block with the most cumulative work (not the
/// longest chain); between equal work, the block whose data arrived first stays.
/// Switching branches disconnects the old blocks down to the fork with their undo data,
/// connects the new ones, and returns the disconnected transfers to the mempool. A block
/// whose transactions fail while connecting is marked invalid with its descendants and
/// the next best chain is chosen (possibly the old one again).
pub struct Chain {
    params: ChainParams,
    index: HashMap<BlockHash, IndexEntry>,
    children: HashMap<BlockHash, Vec<BlockHash>>,
    blocks: HashMap<BlockHash, Arc<Block>>,
    undo: HashMap<BlockHash, BlockUndo>,
    active: Vec<BlockHash>,
    /// Blocks whose data and ancestors' data are all present and not invalid, with the
    /// order their data became available; the best is the last element.
    candidates: BTreeSet<(U256, Reverse<u64>, BlockHash)>,
    seq: HashMap<BlockHash, u64>,
    next_seq: u64,
    ledger: Ledger,
    mempool: Mempool,
    orphans: OrphanPool,
    outputs: VecDeque<ChainOutput>,
}

impl Chain {
    /// A chain holding only `params.genesis` (connected; a
    /// [`ChainOutput::Connected`] for it is queued so a fresh store writes it).
    ///
    /// # Errors
    /// [`PowError::Ledger`] if the genesis coinbase is not valid under the ledger rules.
    pub fn new(params: ChainParams, mempool: MempoolConfig) -> Result<Self, PowError> {
        let genesis = Arc::new(params.genesis.clone());
        let hash = genesis.hash();
        let mut ledger = Ledger::new(params.ledger.clone());
        let undo = ledger.apply_block(0, &genesis.txs)?;
        let entry = IndexEntry {
            hash,
            header: genesis.header,
            height: 0,
            chain_work: block_work(genesis.header.bits),
            status: Status::Valid,
        };
        let mut chain = Chain {
            orphans: OrphanPool::new(params.max_orphans, params.max_orphan_bytes),
            params,
            index: HashMap::new(),
            children: HashMap::new(),
            blocks: HashMap::new(),
            undo: HashMap::new(),
            active: vec![hash],
            candidates: BTreeSet::new(),
            seq: HashMap::new(),
            next_seq: 0,
            ledger,
            mempool: Mempool::new(mempool),
            outputs: VecDeque::new(),
        };
        chain.candidates.insert((entry.chain_work, Reverse(0), hash));
        chain.seq.insert(hash, 0);
        chain.next_seq = 1;
        chain.index.insert(hash, entry.clone());
        chain.blocks.insert(hash, genesis.clone());
        let delta = chain.ledger.delta(&undo);
        chain.undo.insert(hash, undo.clone());
        chain.outputs.push_back(ChainOutput::Connected(Box::new(Connected { entry, block: genesis, undo, delta })));
        Ok(chain)
    }

    /// Rebuilds the state from stored blocks, parents before children (for example in
    /// height order), ignoring their age; outputs of the replay are discarded. Invalid
    /// or duplicate blocks are skipped.
    ///
    /// # Errors
    /// As [`Chain::new`].
    pub fn restore(
        params: ChainParams,
        mempool: MempoolConfig,
        blocks: impl IntoIterator<Item = Block>,
    ) -> Result<Self, PowError> {
        let mut chain = Chain::new(params, mempool)?;
        for block in blocks {
            // A stored block that is now refused is skipped, as a fresh download would.
            let _ = chain.accept_block(Instant::MAX, block);
        }
        chain.outputs.clear();
        Ok(chain)
    }

    /// The next output, if any. Drain after every input.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<ChainOutput> {
        self.outputs.pop_front()
    }

    /// The rules in force.
    #[must_use]
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The active tip's index entry.
    #[must_use]
    pub fn tip(&self) -> &IndexEntry {
        let hash = self.active.last().unwrap_or_else(|| unreachable!("the active chain always holds genesis"));
        &self.index[hash]
    }

    /// Height of the active tip.
    #[must_use]
    pub fn height(&self) -> u64 {
        self.tip().height
    }

    /// The hash of the active chain's block at `height`.
    #[must_use]
    pub fn hash_at(&self, height: u64) -> Option<BlockHash> {
        self.active.get(usize::try_from(height).ok()?).copied()
    }

    /// The index entry of `hash`, if known.
    #[must_use]
    pub fn entry(&self, hash: &BlockHash) -> Option<&IndexEntry> {
        self.index.get(hash)
    }

    /// The block `hash`, if its data is held (invalid blocks' data is dropped).
    #[must_use]
    pub fn block(&self, hash: &BlockHash) -> Option<&Arc<Block>> {
        self.blocks.get(hash)
    }

    /// Whether `hash` is on the active chain.
    #[must_use]
    pub fn is_active(&self, hash: &BlockHash) -> bool {
        self.index.get(hash).is_some_and(|e| self.hash_at(e.height) == Some(*hash))
    }

    /// The ledger at the active tip.
    #[must_use]
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The mempool.
    #[must_use]
    pub fn mempool(&self) -> &Mempool {
        &self.mempool
    }

    /// Number of orphan blocks held, and their bytes.
    #[must_use]
    pub fn orphans(&self) -> (usize, usize) {
        (self.orphans.len(), self.orphans.bytes())
    }

    /// Hashes of the active chain for a peer to find the fork point (Bitcoin's block
    /// locator): the tip, ten predecessors, then exponentially sparser, then genesis.
    #[must_use]
    pub fn locator(&self) -> Vec<BlockHash> {
        let mut out = Vec::new();
        let mut height = self.active.len() - 1;
        let mut step = 1;
        loop {
            out.push(self.active[height]);
            if height == 0 {
                break;
            }
            if out.len() >= 10 {
                step *= 2;
            }
            height = height.saturating_sub(step);
        }
        out
    }

    /// Admits a transfer to the mempool, checked against the ledger at the tip.
    ///
    /// # Errors
    /// The [`MempoolError`] that refused it.
    pub fn submit_transaction(&mut self, tx: SignedTransfer) -> Result<TxId, MempoolError> {
        self.mempool.insert(tx, &self.ledger)
    }

    /// Median of the times of `hash` and its predecessors, up to
    /// `params.median_time_span` blocks (Bitcoin's `GetMedianTimePast`).
    #[must_use]
    pub fn median_time_past(&self, hash: &BlockHash) -> u32 {
        let mut times = Vec::with_capacity(self.params.median_time_span);
        let mut cur = self.index.get(hash);
        while let Some(e) = cur {
            if times.len() == self.params.median_time_span {
                break;
            }
            times.push(e.header.time);
            cur = if e.height == 0 { None } else { self.index.get(&e.header.prev) };
        }
        times.sort_unstable();
        times.get(times.len() / 2).copied().unwrap_or(0)
    }

    /// The `bits` a child of `parent` must carry (Bitcoin's `GetNextWorkRequired`
    /// without testnet's minimum-difficulty exception): the parent's, except every
    /// `retarget_interval` blocks, where the target is scaled by how long the last
    /// window took. As in Bitcoin, the window spans `retarget_interval - 1` block
    /// intervals.
    #[must_use]
    pub fn next_bits(&self, parent: &IndexEntry) -> CompactTarget {
        let interval = self.params.retarget_interval;
        let height = parent.height + 1;
        if interval == 0 || !height.is_multiple_of(interval) {
            return parent.header.bits;
        }
        let first = self.ancestor(parent, height - interval);
        let actual = i64::from(parent.header.time) - i64::from(first.header.time);
        next_target(
            parent.header.bits,
            actual,
            self.params.target_timespan(),
            self.params.max_adjust,
            &self.params.pow_limit,
        )
    }

    /// The ancestor of `entry` at `height` (which must not exceed `entry.height`).
    fn ancestor<'a>(&'a self, entry: &'a IndexEntry, height: u64) -> &'a IndexEntry {
        let mut cur = entry;
        while cur.height > height {
            if self.is_active(&cur.hash)
                && let Some(e) = self.hash_at(height).and_then(|h| self.index.get(&h))
            {
                return e;
            }
            match self.index.get(&cur.header.prev) {
                Some(parent) => cur = parent,
                None => break,
            }
        }
        cur
    }

    /// Bitcoin's `ContextualCheckBlockHeader`: `bits` as the retarget rule requires,
    /// time above the median time past, and not beyond `now` plus the allowed drift.
    fn check_header_context(&self, header: &BlockHeader, parent: &IndexEntry, now: Instant) -> Result<(), PowError> {
        let expected = self.next_bits(parent);
        if header.bits != expected {
            return Err(PowError::WrongBits { expected, got: header.bits });
        }
        let median_time_past = self.median_time_past(&parent.hash);
        if header.time <= median_time_past {
            return Err(PowError::TimeTooOld { time: header.time, median_time_past });
        }
        let max = unix_seconds(now).saturating_add(self.params.max_future_drift);
        if u64::from(header.time) > max {
            return Err(PowError::TimeTooNew { time: header.time, max });
        }
        Ok(())
    }

    /// Adds a header (headers-first sync). A new valid header is stored and its block
    /// requested.
    ///
    /// # Errors
    /// The rule it breaks; breaking a consensus rule also marks it invalid in the
    /// index, except a time too far ahead, which may become valid later.
    pub fn accept_header(&mut self, now: Instant, header: BlockHeader) -> Result<Accepted, PowError> {
        let hash = header.hash();
        if let Some(e) = self.index.get(&hash) {
            return if e.status == Status::Invalid {
                Err(PowError::KnownInvalid(hash))
            } else {
                Ok(Accepted::Duplicate)
            };
        }
        check_proof_of_work(&hash, header.bits, &self.params.pow_limit)?;
        if header.prev == Hash::ZERO {
            return Err(PowError::UnexpectedGenesis);
        }
        let Some(parent) = self.index.get(&header.prev).cloned() else {
            return Ok(Accepted::Orphan { missing: header.prev });
        };
        let entry = self.add_header(now, hash, header, &parent)?;
        self.outputs.push_back(ChainOutput::StoreIndex(entry));
        self.outputs.push_back(ChainOutput::RequestBlock(hash));
        Ok(Accepted::New)
    }

    /// Checks `header` against its parent and adds its index entry (an invalid one is
    /// filed and reported as such).
    fn add_header(
        &mut self,
        now: Instant,
        hash: BlockHash,
        header: BlockHeader,
        parent: &IndexEntry,
    ) -> Result<IndexEntry, PowError> {
        let mut entry = IndexEntry {
            hash,
            header,
            height: parent.height + 1,
            chain_work: parent.chain_work.saturating_add(block_work(header.bits)),
            status: Status::Header,
        };
        let verdict = if parent.status == Status::Invalid {
            Err(PowError::InvalidAncestor(parent.hash))
        } else {
            self.check_header_context(&header, parent, now)
        };
        match verdict {
            Ok(()) => {}
            Err(e @ PowError::TimeTooNew { .. }) => return Err(e),
            Err(e) => {
                entry.status = Status::Invalid;
                self.index.insert(hash, entry.clone());
                self.outputs.push_back(ChainOutput::StoreIndex(entry));
                self.outputs.push_back(ChainOutput::Invalid { hash, reason: e.clone() });
                return Err(e);
            }
        }
        self.index.insert(hash, entry.clone());
        self.children.entry(header.prev).or_default().push(hash);
        Ok(entry)
    }

    /// Adds a block: checks it, files it (or keeps it as an orphan), moves the active
    /// chain to the most-work valid tip, and connects waiting orphans.
    ///
    /// # Errors
    /// The rule the block breaks (also reported as [`ChainOutput::Invalid`]). A block
    /// whose transactions break a ledger rule is only found out when it would be
    /// connected; that is reported through outputs and the call returns `Ok`.
    pub fn accept_block(&mut self, now: Instant, block: Block) -> Result<Accepted, PowError> {
        let hash = block.hash();
        match self.index.get(&hash).map(|e| e.status) {
            Some(Status::Invalid) => return Err(PowError::KnownInvalid(hash)),
            Some(Status::Data | Status::Valid) => return Ok(Accepted::Duplicate),
            Some(Status::Header) | None => {}
        }
        if self.orphans.contains(&hash) {
            return Ok(Accepted::Orphan { missing: block.header.prev });
        }
        if let Err(reason) = block.check(&self.params) {
            self.outputs.push_back(ChainOutput::Invalid { hash, reason: reason.clone() });
            return Err(reason);
        }
        if block.header.prev == Hash::ZERO {
            return Err(PowError::UnexpectedGenesis);
        }
        let missing = block.header.prev;
        if !self.index.contains_key(&missing) {
            self.orphans.insert(hash, Arc::new(block));
            self.outputs.push_back(ChainOutput::RequestBlock(missing));
            return Ok(Accepted::Orphan { missing });
        }
        self.file_block(now, hash, Arc::new(block))?;
        // Orphans waiting for this block (and for their own children, in turn).
        let mut parents = vec![hash];
        while let Some(parent) = parents.pop() {
            for (child, block) in self.orphans.take_children(&parent) {
                if self.file_block(now, child, block).is_ok() {
                    parents.push(child);
                }
            }
        }
        Ok(Accepted::New)
    }

    /// Files a context-free-valid block whose parent is in the index, then activates
    /// the best chain.
    fn file_block(&mut self, now: Instant, hash: BlockHash, block: Arc<Block>) -> Result<(), PowError> {
        let mut entry = match self.index.get(&hash) {
            Some(e) => e.clone(),
            None => {
                let parent = self.index[&block.header.prev].clone();
                self.add_header(now, hash, block.header, &parent)?
            }
        };
        entry.status = Status::Data;
        self.index.insert(hash, entry);
        self.blocks.insert(hash, block.clone());
        if self.seq.contains_key(&block.header.prev) {
            self.make_available(hash);
        }
        self.activate_best_chain();
        if let Some(entry) = self.index.get(&hash).filter(|e| e.status == Status::Data) {
            self.outputs.push_back(ChainOutput::StoreBlock { entry: entry.clone(), block });
        }
        Ok(())
    }

    /// Makes `hash` a candidate tip, and its descendants whose data was waiting.
    fn make_available(&mut self, hash: BlockHash) {
        let mut todo = vec![hash];
        while let Some(h) = todo.pop() {
            let Some(entry) = self.index.get(&h) else { continue };
            if entry.status != Status::Data && entry.status != Status::Valid || self.seq.contains_key(&h) {
                continue;
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            self.seq.insert(h, seq);
            self.candidates.insert((entry.chain_work, Reverse(seq), h));
            todo.extend(self.children.get(&h).into_iter().flatten().copied());
        }
    }

    /// Moves the active chain to the best candidate, retrying with the next best when a
    /// block fails to connect.
    fn activate_best_chain(&mut self) {
        let old_tip = self.tip().clone();
        let mut disconnected: Vec<SignedTransfer> = Vec::new();
        while let Some(&(_, _, best)) = self.candidates.last() {
            if self.active.last() == Some(&best) {
                break;
            }
            let mut path = Vec::new();
            let mut cur = best;
            while !self.is_active(&cur) {
                path.push(cur);
                cur = self.index[&cur].header.prev;
            }
            while self.active.last() != Some(&cur) {
                self.disconnect_tip(&mut disconnected);
            }
            for hash in path.into_iter().rev() {
                if let Err(reason) = self.connect(hash) {
                    self.mark_invalid(hash, reason);
                    break;
                }
            }
        }
        let new_tip = self.tip().clone();
        if new_tip.hash == old_tip.hash {
            return;
        }
        let fork = self.ancestor_on_active(&old_tip);
        let depth = old_tip.height - fork.height;
        if depth > 0 {
            self.outputs.push_back(ChainOutput::Reorg {
                old_tip: old_tip.hash,
                new_tip: new_tip.hash,
                fork: fork.hash,
                depth,
                connected: new_tip.height - fork.height,
            });
        }
        if !disconnected.is_empty() {
            self.mempool.readmit(disconnected, &self.ledger);
            self.mempool.prune_stale(&self.ledger);
        }
        self.outputs.push_back(ChainOutput::NewTip {
            hash: new_tip.hash,
            height: new_tip.height,
            chain_work: new_tip.chain_work,
        });
    }

    /// The last block of `entry`'s branch that is on the active chain.
    fn ancestor_on_active(&self, entry: &IndexEntry) -> IndexEntry {
        let mut cur = entry;
        while !self.is_active(&cur.hash) {
            cur = &self.index[&cur.header.prev];
        }
        cur.clone()
    }

    fn disconnect_tip(&mut self, disconnected: &mut Vec<SignedTransfer>) {
        let Some(hash) = self.active.pop() else { return };
        let undo = self.undo.remove(&hash);
        let applied = undo.as_ref().map(|u| self.ledger.undo_block(u));
        debug_assert!(matches!(applied, Some(Ok(()))), "the active tip always has matching undo data");
        if let Some(block) = self.blocks.get(&hash) {
            disconnected.extend(block.txs.iter().filter_map(Transaction::as_transfer).cloned());
        }
        if let Some(undo) = undo {
            let delta = self.ledger.delta(&undo);
            self.outputs.push_back(ChainOutput::Disconnected { entry: self.index[&hash].clone(), delta });
        }
    }

    fn connect(&mut self, hash: BlockHash) -> Result<(), PowError> {
        let block = self.blocks[&hash].clone();
        let height = self.index[&hash].height;
        let undo = self.ledger.apply_block(height, &block.txs)?;
        self.active.push(hash);
        let entry = self.index.get_mut(&hash).map(|e| {
            e.status = Status::Valid;
            e.clone()
        });
        self.mempool.remove_confirmed(&block.txs, &self.ledger);
        let delta = self.ledger.delta(&undo);
        self.undo.insert(hash, undo.clone());
        if let Some(entry) = entry {
            self.outputs.push_back(ChainOutput::Connected(Box::new(Connected { entry, block, undo, delta })));
        }
        Ok(())
    }

    /// Marks `hash` and its descendants invalid and forgets their data.
    fn mark_invalid(&mut self, hash: BlockHash, reason: PowError) {
        let mut todo = vec![hash];
        while let Some(h) = todo.pop() {
            let Some(entry) = self.index.get_mut(&h) else { continue };
            entry.status = Status::Invalid;
            let entry = entry.clone();
            if let Some(seq) = self.seq.remove(&h) {
                self.candidates.remove(&(entry.chain_work, Reverse(seq), h));
            }
            self.blocks.remove(&h);
            self.outputs.push_back(ChainOutput::StoreIndex(entry));
            todo.extend(self.children.get(&h).into_iter().flatten().copied());
        }
        self.outputs.push_back(ChainOutput::Invalid { hash, reason });
    }

    /// A block to mine on the active tip: a coinbase to `miner` claiming the subsidy
    /// and fees, then the mempool's best transfers that fit; time `now` (or just above
    /// the median time past if that is later), `bits` as required.
    #[must_use]
    pub fn block_template(&self, now: Instant, miner: PublicKey) -> BlockTemplate {
        let tip = self.tip();
        let height = tip.height + 1;
        let room = self.params.max_block_size.saturating_sub(HEADER_SIZE + 4 + COINBASE_SIZE);
        let transfers = self.mempool.select(&self.ledger, room);
        let fees = transfers.iter().fold(0u64, |sum, t| sum.saturating_add(t.transfer.fee));
        let amount = self.params.ledger.subsidy(height).saturating_add(fees);
        let mut txs = Vec::with_capacity(transfers.len() + 1);
        txs.push(Transaction::Coinbase(Coinbase { height, to: miner, amount }));
        txs.extend(transfers.into_iter().map(Transaction::Transfer));
        let now = u32::try_from(unix_seconds(now)).unwrap_or(u32::MAX);
        let time = now.max(self.median_time_past(&tip.hash).saturating_add(1));
        BlockTemplate { block: Block::new(tip.hash, time, self.next_bits(tip), txs), height, fees }
    }
}
