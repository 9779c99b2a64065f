//! Why a header or block was refused.

use ballot_ledger::{Hash, LedgerError};

use crate::{BlockHash, CompactTarget};

/// A compact target that cannot be a proof-of-work target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    /// The sign bit is set on a non-zero mantissa (`SetCompact`'s `pfNegative`).
    #[error("negative compact target {0}")]
    Negative(CompactTarget),
    /// The value does not fit in 256 bits (`SetCompact`'s `pfOverflow`).
    #[error("overflowing compact target {0}")]
    Overflow(CompactTarget),
    /// The target is zero: no hash could meet it.
    #[error("zero compact target {0}")]
    Zero(CompactTarget),
    /// Easier than the chain's proof-of-work limit.
    #[error("compact target {0} is above the proof-of-work limit")]
    AbovePowLimit(CompactTarget),
}

/// Why ballot-pow refused a header or a block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PowError {
    /// `bits` is not a usable target.
    #[error(transparent)]
    BadTarget(#[from] CompactError),
    /// The header's hash is above its target: no proof of work.
    #[error("hash {hash} does not meet target {bits}")]
    HighHash {
        /// The header hash.
        hash: BlockHash,
        /// The claimed target.
        bits: CompactTarget,
    },
    /// `bits` is not what the retarget rule requires at this height.
    #[error("bits {got} where the difficulty rule requires {expected}")]
    WrongBits {
        /// What the chain requires.
        expected: CompactTarget,
        /// What the header claims.
        got: CompactTarget,
    },
    /// The timestamp is not above the median of the previous 11 blocks.
    #[error("time {time} is not after the median time past {median_time_past}")]
    TimeTooOld {
        /// The header's time.
        time: u32,
        /// Median of the previous blocks' times.
        median_time_past: u32,
    },
    /// The timestamp is too far ahead of the node's clock.
    #[error("time {time} is more than the allowed drift ahead of now (at most {max})")]
    TimeTooNew {
        /// The header's time.
        time: u32,
        /// `now` plus the allowed drift.
        max: u64,
    },
    /// The header's Merkle root is not the root of the block's transactions.
    #[error("merkle root {got} in the header, {computed} computed")]
    BadMerkleRoot {
        /// Root of the transaction ids.
        computed: Hash,
        /// Root in the header.
        got: Hash,
    },
    /// The transaction list repeats a tail so that it has the root of a shorter list
    /// (CVE-2012-2459).
    #[error("mutated transaction list (duplicate Merkle leaves)")]
    MutatedMerkle,
    /// The block's encoding exceeds the size limit.
    #[error("block of {size} bytes exceeds {max}")]
    Oversized {
        /// Encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A transaction or the coinbase breaks a ledger rule (or the coinbase is missing,
    /// misplaced or repeated).
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    /// The block builds on a block known to be invalid.
    #[error("descends from invalid block {0}")]
    InvalidAncestor(BlockHash),
    /// The block itself was found invalid before.
    #[error("block {0} is known to be invalid")]
    KnownInvalid(BlockHash),
    /// A block other than the chain's genesis claims to have no parent.
    #[error("a second genesis block")]
    UnexpectedGenesis,
}
