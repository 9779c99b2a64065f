//! Blocks whose parent is not known yet, bounded in count and bytes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::{Block, BlockHash};

struct Orphan {
    block: Arc<Block>,
    size: usize,
    seq: u64,
}

/// Orphan blocks keyed by hash and by missing parent; the oldest is evicted first when
/// either bound is exceeded.
pub(crate) struct OrphanPool {
    max_count: usize,
    max_bytes: usize,
    blocks: HashMap<BlockHash, Orphan>,
    by_parent: HashMap<BlockHash, Vec<BlockHash>>,
    order: BTreeMap<u64, BlockHash>,
    bytes: usize,
    next_seq: u64,
}

impl OrphanPool {
    pub(crate) fn new(max_count: usize, max_bytes: usize) -> Self {
        OrphanPool {
            max_count,
            max_bytes,
            blocks: HashMap::new(),
            by_parent: HashMap::new(),
            order: BTreeMap::new(),
            bytes: 0,
            next_seq: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.blocks.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn contains(&self, hash: &BlockHash) -> bool {
        self.blocks.contains_key(hash)
    }

    /// Keeps `block`, evicting the oldest orphans past the bounds. Returns whether the
    /// block is held afterwards.
    pub(crate) fn insert(&mut self, hash: BlockHash, block: Arc<Block>) -> bool {
        let size = block.size();
        if self.blocks.contains_key(&hash) {
            return true;
        }
        if size > self.max_bytes || self.max_count == 0 {
            return false;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_parent.entry(block.header.prev).or_default().push(hash);
        self.order.insert(seq, hash);
        self.bytes += size;
        self.blocks.insert(hash, Orphan { block, size, seq });
        while self.blocks.len() > self.max_count || self.bytes > self.max_bytes {
            let Some((_, oldest)) = self.order.first_key_value() else { break };
            let oldest = *oldest;
            self.remove(&oldest);
        }
        self.blocks.contains_key(&hash)
    }

    fn remove(&mut self, hash: &BlockHash) -> Option<Arc<Block>> {
        let orphan = self.blocks.remove(hash)?;
        self.order.remove(&orphan.seq);
        self.bytes -= orphan.size;
        let prev = orphan.block.header.prev;
        if let Some(siblings) = self.by_parent.get_mut(&prev) {
            siblings.retain(|h| h != hash);
            if siblings.is_empty() {
                self.by_parent.remove(&prev);
            }
        }
        Some(orphan.block)
    }

    /// Removes and returns the orphans whose parent is `parent`, oldest first.
    pub(crate) fn take_children(&mut self, parent: &BlockHash) -> Vec<(BlockHash, Arc<Block>)> {
        let hashes = self.by_parent.get(parent).cloned().unwrap_or_default();
        hashes.into_iter().filter_map(|h| self.remove(&h).map(|b| (h, b))).collect()
    }
}
