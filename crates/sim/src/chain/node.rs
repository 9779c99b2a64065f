//! One simulated chain node: its `Chain`, its disk of stored blocks, its clock and its
//! role.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ballot_core::{Instant, NodeId};
use ballot_ledger::{Keypair, PublicKey};
use ballot_pow::{Block, BlockHash, Chain};

use super::attacks::double_spend::DoubleSpender;
use super::attacks::selfish::Selfish;
use super::byzantine::Byzantine;

/// How a node behaves.
pub(crate) enum Role {
    /// Follows the protocol.
    Honest,
    /// The chaos runs' rule breaker.
    Byzantine(Box<Byzantine>),
    /// The double-spend measurement's attacker.
    DoubleSpender(Box<DoubleSpender>),
    /// The selfish-mining measurement's attacker.
    Selfish(Box<Selfish>),
}

/// A block on a node's disk.
pub(crate) struct Stored {
    pub(crate) height: u64,
    pub(crate) block: Arc<Block>,
    /// When the write completes; a crash before then loses it.
    pub(crate) durable_at: Instant,
}

pub(crate) struct Node {
    pub(crate) id: NodeId,
    pub(crate) share: f64,
    pub(crate) key: Arc<Keypair>,
    pub(crate) public: PublicKey,
    /// `None` while crashed.
    pub(crate) chain: Option<Chain>,
    pub(crate) store: HashMap<BlockHash, Stored>,
    /// Writes complete in order: the completion time of the last one.
    pub(crate) last_durable: Instant,
    pub(crate) skew_ms: i64,
    pub(crate) incarnation: u64,
    /// Bumped whenever the pending mining event is superseded.
    pub(crate) mine_gen: u64,
    pub(crate) role: Role,
}

impl Node {
    pub(crate) fn up(&self) -> bool {
        self.chain.is_some()
    }

    pub(crate) fn honest(&self) -> bool {
        matches!(self.role, Role::Honest)
    }

    /// The node's clock at virtual time `now`.
    pub(crate) fn clock(&self, now: Instant) -> Instant {
        let skew = i128::from(self.skew_ms) * 1_000_000;
        Instant::from_nanos(u64::try_from((i128::from(now.as_nanos()) + skew).max(0)).unwrap_or(u64::MAX))
    }

    /// Writes a block; it is durable `delay` after the previous write is.
    pub(crate) fn store(&mut self, now: Instant, delay: Duration, hash: BlockHash, height: u64, block: Arc<Block>) {
        if self.store.contains_key(&hash) {
            return;
        }
        let durable_at = (now + delay).max(self.last_durable);
        self.last_durable = durable_at;
        self.store.insert(hash, Stored { height, block, durable_at });
    }

    /// Loses the volatile state and the writes still in flight.
    pub(crate) fn crash(&mut self, now: Instant) {
        self.chain = None;
        self.store.retain(|_, s| s.durable_at <= now);
        self.last_durable = now;
        self.incarnation += 1;
        self.mine_gen += 1;
    }

    /// The durable blocks, parents first (by height, then hash, for determinism).
    pub(crate) fn durable_blocks(&self) -> Vec<Block> {
        let mut v: Vec<(u64, BlockHash, &Arc<Block>)> =
            self.store.iter().map(|(h, s)| (s.height, *h, &s.block)).collect();
        v.sort_by_key(|(height, hash, _)| (*height, *hash));
        v.into_iter().map(|(_, _, b)| Block::clone(b)).collect()
    }
}
