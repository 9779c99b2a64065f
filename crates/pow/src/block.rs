//! Blocks, chain parameters and the context-free block checks.

use ballot_ledger::{Coinbase, Hash, LedgerParams, PublicKey, Transaction};
use serde::{Deserialize, Serialize};

use crate::merkle::merkle_root;
use crate::{BlockHash, BlockHeader, CompactTarget, HEADER_SIZE, PowError, U256, check_proof_of_work};

/// A block: a header and its transactions, a coinbase first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// The header; its Merkle root commits to `txs`.
    pub header: BlockHeader,
    /// The coinbase, then transfers.
    pub txs: Vec<Transaction>,
}

impl Block {
    /// A block on `prev` with the Merkle root of `txs`, version 1 and nonce 0 (ready
    /// to mine).
    #[must_use]
    pub fn new(prev: BlockHash, time: u32, bits: CompactTarget, txs: Vec<Transaction>) -> Self {
        let mut block =
            Block { header: BlockHeader { version: 1, prev, merkle_root: Hash::ZERO, time, bits, nonce: 0 }, txs };
        block.header.merkle_root = block.merkle_root().0;
        block
    }

    /// A genesis block paying the first subsidy to `to`. Its proof of work is not
    /// checked: every node is configured with it.
    #[must_use]
    pub fn genesis(ledger: &LedgerParams, to: PublicKey, time: u32, bits: CompactTarget) -> Self {
        let coinbase = Coinbase { height: 0, to, amount: ledger.subsidy(0) };
        Block::new(Hash::ZERO, time, bits, vec![coinbase.into()])
    }

    /// The block hash (of the header).
    #[must_use]
    pub fn hash(&self) -> BlockHash {
        self.header.hash()
    }

    /// The size the block limit counts: header, a 4-byte transaction count, and each
    /// transaction's canonical encoding.
    #[must_use]
    pub fn size(&self) -> usize {
        HEADER_SIZE + 4 + self.txs.iter().map(Transaction::size).sum::<usize>()
    }

    /// Merkle root of the transaction ids and whether the list is mutated.
    #[must_use]
    pub fn merkle_root(&self) -> (Hash, bool) {
        let ids: Vec<Hash> = self.txs.iter().map(Transaction::id).collect();
        merkle_root(&ids)
    }

    /// The checks that need no chain context, in Bitcoin Core's `CheckBlock` order:
    /// proof of work against the header's own `bits` (and `bits` within the limit), the
    /// Merkle root and its mutation, the size limit, and one coinbase, first.
    ///
    /// # Errors
    /// The first rule broken.
    pub fn check(&self, params: &ChainParams) -> Result<(), PowError> {
        check_proof_of_work(&self.hash(), self.header.bits, &params.pow_limit)?;
        let (computed, mutated) = self.merkle_root();
        if computed != self.header.merkle_root {
            return Err(PowError::BadMerkleRoot { computed, got: self.header.merkle_root });
        }
        if mutated {
            return Err(PowError::MutatedMerkle);
        }
        let size = self.size();
        if size > params.max_block_size {
            return Err(PowError::Oversized { size, max: params.max_block_size });
        }
        match self.txs.split_first() {
            Some((Transaction::Coinbase(_), rest)) => {
                if rest.iter().any(|t| matches!(t, Transaction::Coinbase(_))) {
                    return Err(ballot_ledger::LedgerError::ExtraCoinbase.into());
                }
            }
            _ => return Err(ballot_ledger::LedgerError::MissingCoinbase.into()),
        }
        Ok(())
    }
}

/// The consensus rules and local limits of one chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainParams {
    /// The ledger's rules (chain id, subsidy schedule, coinbase maturity, tx size).
    pub ledger: LedgerParams,
    /// The easiest target allowed; retargeting never goes above it.
    pub pow_limit: U256,
    /// Intended seconds between blocks (Bitcoin: 600).
    pub target_spacing: u64,
    /// Blocks between retargets (Bitcoin: 2016); 0 disables retargeting.
    pub retarget_interval: u64,
    /// Largest factor one retarget may change the target by (Bitcoin: 4).
    pub max_adjust: u64,
    /// Seconds a block's time may be ahead of the node's clock (Bitcoin: 7200).
    pub max_future_drift: u64,
    /// Blocks whose times give the median time past (Bitcoin: 11).
    pub median_time_span: usize,
    /// Largest block size in bytes ([`Block::size`]).
    pub max_block_size: usize,
    /// Most blocks kept while their parent is unknown (local policy).
    pub max_orphans: usize,
    /// Most bytes of such blocks kept (local policy).
    pub max_orphan_bytes: usize,
    /// The first block. Its proof of work is not checked.
    pub genesis: Block,
}

impl ChainParams {
    /// Bitcoin's consensus numbers: limit `0x1d00ffff`, 600 s blocks, retarget every
    /// 2016 blocks by at most 4x, 2 hours of drift, median of 11, 1 MB blocks; the
    /// ledger from [`LedgerParams::bitcoin_like`]. Genesis pays `genesis_to` at
    /// `genesis_time`.
    #[must_use]
    pub fn bitcoin_like(chain_id: u32, genesis_to: PublicKey, genesis_time: u32) -> Self {
        let ledger = LedgerParams::bitcoin_like(chain_id);
        let bits = CompactTarget(0x1d00_ffff);
        let genesis = Block::genesis(&ledger, genesis_to, genesis_time, bits);
        ChainParams {
            ledger,
            pow_limit: U256::MAX >> 32,
            target_spacing: 600,
            retarget_interval: 2016,
            max_adjust: 4,
            max_future_drift: 2 * 60 * 60,
            median_time_span: 11,
            max_block_size: 1_000_000,
            max_orphans: 100,
            max_orphan_bytes: 32 << 20,
            genesis,
        }
    }

    /// Parameters for tests and demos: the limit `0x2000ffff` (one hash in 256 meets
    /// it), 10 s blocks, a retarget every 8 blocks, blocks up to 200 kB, 8 orphans, and
    /// [`LedgerParams::testing`]. Genesis pays `genesis_to` at `genesis_time`.
    #[must_use]
    pub fn testing(chain_id: u32, genesis_to: PublicKey, genesis_time: u32) -> Self {
        let ledger = LedgerParams::testing(chain_id);
        let bits = CompactTarget(0x2000_ffff);
        let genesis = Block::genesis(&ledger, genesis_to, genesis_time, bits);
        ChainParams {
            ledger,
            pow_limit: bits.to_target().unwrap_or(U256::MAX >> 8),
            target_spacing: 10,
            retarget_interval: 8,
            max_adjust: 4,
            max_future_drift: 2 * 60 * 60,
            median_time_span: 11,
            max_block_size: 200_000,
            max_orphans: 8,
            max_orphan_bytes: 1 << 20,
            genesis,
        }
    }

    /// Seconds one retarget window is meant to take.
    #[must_use]
    pub fn target_timespan(&self) -> u64 {
        self.target_spacing.saturating_mul(self.retarget_interval)
    }
}
