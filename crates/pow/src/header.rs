//! The 80-byte block header.

use ballot_ledger::{Hash, sha256d};
use serde::{Deserialize, Serialize};

use crate::CompactTarget;

/// A block's hash: SHA-256d of its 80-byte header.
pub type BlockHash = Hash;

/// Size of a serialized header.
pub const HEADER_SIZE: usize = 80;

/// A block header, laid out and hashed exactly as Bitcoin's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlockHeader {
    /// Block version (1 here; Bitcoin uses it for soft-fork signalling).
    pub version: i32,
    /// Hash of the parent block (all zeros for genesis).
    pub prev: BlockHash,
    /// Merkle root of the block's transaction ids.
    pub merkle_root: Hash,
    /// Seconds since the Unix epoch, as claimed by the miner.
    pub time: u32,
    /// The target this block's hash must meet.
    pub bits: CompactTarget,
    /// Varied by miners to find a hash below the target.
    pub nonce: u32,
}

impl BlockHeader {
    /// Bitcoin's serialization: version, previous hash, Merkle root, time, bits, nonce,
    /// integers little-endian, hashes in their internal byte order.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut out = [0u8; HEADER_SIZE];
        out[0..4].copy_from_slice(&self.version.to_le_bytes());
        out[4..36].copy_from_slice(&self.prev.0);
        out[36..68].copy_from_slice(&self.merkle_root.0);
        out[68..72].copy_from_slice(&self.time.to_le_bytes());
        out[72..76].copy_from_slice(&self.bits.0.to_le_bytes());
        out[76..80].copy_from_slice(&self.nonce.to_le_bytes());
        out
    }

    /// Parses [`BlockHeader::to_bytes`].
    #[must_use]
    pub fn from_bytes(bytes: &[u8; HEADER_SIZE]) -> Self {
        let word = |at: usize| [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
        let hash = |at: usize| {
            let mut h = [0u8; 32];
            h.copy_from_slice(&bytes[at..at + 32]);
            Hash(h)
        };
        BlockHeader {
            version: i32::from_le_bytes(word(0)),
            prev: hash(4),
            merkle_root: hash(36),
            time: u32::from_le_bytes(word(68)),
            bits: CompactTarget(u32::from_le_bytes(word(72))),
            nonce: u32::from_le_bytes(word(76)),
        }
    }

    /// The block hash: SHA-256d of the serialized header.
    #[must_use]
    pub fn hash(&self) -> BlockHash {
        sha256d(&self.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bitcoin's genesis block header.
    pub(crate) fn bitcoin_genesis() -> BlockHeader {
        BlockHeader {
            version: 1,
            prev: Hash::ZERO,
            merkle_root: "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b".parse().unwrap(),
            time: 1_231_006_505,
            bits: CompactTarget(0x1d00_ffff),
            nonce: 2_083_236_893,
        }
    }

    #[test]
    fn bitcoin_genesis_hash() {
        let h = bitcoin_genesis();
        assert_eq!(h.hash().to_string(), "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f");
        let bytes = h.to_bytes();
        // The well-known serialization starts with version 1 and ends with the nonce.
        assert_eq!(&bytes[..4], &[1, 0, 0, 0]);
        assert_eq!(&bytes[72..], &[0xff, 0xff, 0x00, 0x1d, 0x1d, 0xac, 0x2b, 0x7c]);
        assert_eq!(BlockHeader::from_bytes(&bytes), h);
        let limit = crate::U256::MAX >> 32;
        assert_eq!(crate::check_proof_of_work(&h.hash(), h.bits, &limit), Ok(()));
    }
}
