//! Mining without threads: a midstate nonce scanner the node runs on its own threads.

use std::ops::RangeInclusive;

use ballot_ledger::Hash;
use sha2::block_api::compress256;

use crate::{BlockHeader, CompactError, PowError, U256};

/// SHA-256's initial state.
const IV: [u32; 8] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// Searches nonces for one header using a precomputed midstate.
///
/// An 80-byte header is two SHA-256 blocks; the first (version, previous hash and 28
/// bytes of the Merkle root) does not change while the nonce does, so its compression
/// (the *midstate*) is done once. Each try then costs two compressions: the second
/// header block (only its nonce word changes) and the outer SHA-256 of the 32-byte
/// inner digest. A hash is compared with the target through its top 32 bits first; the
/// full 256-bit comparison runs only when those tie or are below.
///
/// The scanner holds no references and is `Send + Sync + Clone`: a miner splits the
/// nonce space over threads and gives each a range.
#[derive(Clone, Debug)]
pub struct NonceScanner {
    header: BlockHeader,
    midstate: [u32; 8],
    tail: [u8; 64],
    target: U256,
    target_top: u32,
}

/// A nonce that meets the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    /// The nonce.
    pub nonce: u32,
    /// The resulting block hash.
    pub hash: Hash,
}

impl NonceScanner {
    /// A scanner for `header` (its `nonce` is ignored).
    ///
    /// # Errors
    /// [`PowError::BadTarget`] if `header.bits` is negative, overflowing or zero.
    pub fn new(header: &BlockHeader) -> Result<Self, PowError> {
        let target = header.bits.to_target()?;
        if target.is_zero() {
            return Err(CompactError::Zero(header.bits).into());
        }
        let bytes = header.to_bytes();
        let mut first = [0u8; 64];
        first.copy_from_slice(&bytes[..64]);
        let mut midstate = IV;
        compress256(&mut midstate, &[first]);
        let mut tail = [0u8; 64];
        tail[..16].copy_from_slice(&bytes[64..80]);
        tail[16] = 0x80;
        tail[56..].copy_from_slice(&(80u64 * 8).to_be_bytes());
        Ok(NonceScanner { header: *header, midstate, tail, target, target_top: (target >> 224).low_u64() as u32 })
    }

    /// The header with `nonce` set.
    #[must_use]
    pub fn header_with(&self, nonce: u32) -> BlockHeader {
        BlockHeader { nonce, ..self.header }
    }

    /// The first nonce in `nonces` whose header hash meets the target, if any.
    #[must_use]
    pub fn scan(&self, nonces: RangeInclusive<u32>) -> Option<Found> {
        if nonces.is_empty() {
            return None;
        }
        let (mut n, end) = (u64::from(*nonces.start()), u64::from(*nonces.end()));
        // Two nonces per round, interleaved so that no compression reads a block that
        // was written just before it: a wide load right after narrow stores to the same
        // bytes stalls on store forwarding, which costs as much as a tenth of a try.
        let (mut inner_a, mut inner_b) = (self.tail, self.tail);
        let (mut outer_a, mut outer_b) = (OUTER_PADDING, OUTER_PADDING);
        set_nonce(&mut inner_a, n);
        set_nonce(&mut inner_b, n + 1);
        while n < end {
            let mut state_a = self.midstate;
            compress256(&mut state_a, std::slice::from_ref(&inner_a));
            set_nonce(&mut inner_a, n + 2);
            put_digest(&mut outer_a, &state_a);
            let mut state_b = self.midstate;
            compress256(&mut state_b, std::slice::from_ref(&inner_b));
            set_nonce(&mut inner_b, n + 3);
            put_digest(&mut outer_b, &state_b);
            let mut digest_a = IV;
            compress256(&mut digest_a, std::slice::from_ref(&outer_a));
            let mut digest_b = IV;
            compress256(&mut digest_b, std::slice::from_ref(&outer_b));
            if let Some(found) = self.check(n, &digest_a) {
                return Some(found);
            }
            if let Some(found) = self.check(n + 1, &digest_b) {
                return Some(found);
            }
            n += 2;
        }
        if n == end {
            // An odd count leaves one nonce, already in `inner_a`.
            let mut state = self.midstate;
            compress256(&mut state, std::slice::from_ref(&inner_a));
            put_digest(&mut outer_a, &state);
            let mut digest = IV;
            compress256(&mut digest, std::slice::from_ref(&outer_a));
            return self.check(n, &digest);
        }
        None
    }

    /// Whether the outer SHA-256 state `digest` of nonce `n` meets the target.
    #[inline(always)]
    fn check(&self, n: u64, digest: &[u32; 8]) -> Option<Found> {
        // Digest bytes 28..32 are the most significant bytes of the hash read as a
        // little-endian number: compare them first, and all 256 bits only if needed.
        if digest[7].swap_bytes() > self.target_top {
            return None;
        }
        let mut hash = [0u8; 32];
        put_digest(&mut hash, digest);
        (U256::from_le_bytes(&hash) <= self.target).then_some(Found { nonce: n as u32, hash: Hash(hash) })
    }
}

/// The outer hash's block: a 32-byte digest, then SHA-256 padding for 256 bits.
const OUTER_PADDING: [u8; 64] = {
    let mut block = [0u8; 64];
    block[32] = 0x80;
    block[62] = 0x01; // length 256 bits, big-endian, in the last 8 bytes
    block
};

/// Writes nonce `n` (truncated to 32 bits) into a header's second block.
#[inline(always)]
fn set_nonce(block: &mut [u8; 64], n: u64) {
    block[12..16].copy_from_slice(&(n as u32).to_le_bytes());
}

/// Writes a SHA-256 state as the big-endian digest bytes at the start of `out`.
#[inline(always)]
fn put_digest(out: &mut [u8], state: &[u32; 8]) {
    // Two words per store: fewer, wider stores for the compression's 16-byte loads.
    for (chunk, pair) in out.chunks_exact_mut(8).zip(state.chunks_exact(2)) {
        let wide = u64::from(pair[0].swap_bytes()) | u64::from(pair[1].swap_bytes()) << 32;
        chunk.copy_from_slice(&wide.to_le_bytes());
    }
}

/// Searches the whole nonce space of `header` on the calling thread and sets the
/// winning nonce. Returns whether one was found (if not, change `time` or the
/// transactions and try again). Meant for tests and tools at easy targets; a node
/// splits [`NonceScanner::scan`] over threads.
///
/// # Errors
/// [`PowError::BadTarget`] if `header.bits` is not a usable target.
pub fn mine(header: &mut BlockHeader) -> Result<bool, PowError> {
    let scanner = NonceScanner::new(header)?;
    match scanner.scan(0..=u32::MAX) {
        Some(found) => {
            header.nonce = found.nonce;
            Ok(true)
        }
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CompactTarget;

    #[test]
    fn scan_finds_bitcoins_genesis_nonce() {
        let genesis = BlockHeader {
            version: 1,
            prev: Hash::ZERO,
            merkle_root: "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b".parse().unwrap(),
            time: 1_231_006_505,
            bits: CompactTarget(0x1d00_ffff),
            nonce: 0,
        };
        let s = NonceScanner::new(&genesis).unwrap();
        let nonce = 2_083_236_893;
        let found = s.scan(nonce - 1000..=nonce + 1000).unwrap();
        assert_eq!(found.nonce, nonce);
        assert_eq!(found.hash, s.header_with(nonce).hash());
        assert_eq!(found.hash.to_string(), "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f");
        assert_eq!(s.scan(nonce + 1..=nonce + 1000), None);
    }

    #[test]
    fn scan_agrees_with_plain_hashing_at_an_easy_target() {
        let header = BlockHeader {
            version: 1,
            prev: ballot_ledger::sha256d(b"parent"),
            merkle_root: ballot_ledger::sha256d(b"root"),
            time: 1_700_000_000,
            bits: CompactTarget(0x2000_ffff),
            nonce: 0,
        };
        let target = header.bits.to_target().unwrap();
        let s = NonceScanner::new(&header).unwrap();
        let mut start = 0;
        for _ in 0..20 {
            let found = s.scan(start..=u32::MAX).unwrap();
            // Every nonce skipped misses the target; the one found meets it.
            for n in start..found.nonce {
                assert!(U256::from_le_bytes(s.header_with(n).hash().as_bytes()) > target);
            }
            assert_eq!(found.hash, s.header_with(found.nonce).hash());
            assert!(U256::from_le_bytes(found.hash.as_bytes()) <= target);
            start = found.nonce + 1;
        }
        let mut h = header;
        assert!(mine(&mut h).unwrap());
        assert!(crate::check_proof_of_work(&h.hash(), h.bits, &target).is_ok());
        assert!(NonceScanner::new(&BlockHeader { bits: CompactTarget(0x0480_0001), ..header }).is_err());
        assert!(NonceScanner::new(&BlockHeader { bits: CompactTarget(0), ..header }).is_err());
    }

    #[test]
    fn scan_returns_the_first_winner_of_any_range() {
        let header = BlockHeader {
            version: 1,
            prev: ballot_ledger::sha256d(b"p"),
            merkle_root: ballot_ledger::sha256d(b"r"),
            time: 1_700_000_000,
            bits: CompactTarget(0x2000_ffff),
            nonce: 0,
        };
        let target = header.bits.to_target().unwrap();
        let s = NonceScanner::new(&header).unwrap();
        let wins = |n: u32| U256::from_le_bytes(s.header_with(n).hash().as_bytes()) <= target;
        let top = u32::MAX - 1200;
        let winners: Vec<u32> = (0..1200).chain(top..=u32::MAX).filter(|n| wins(*n)).collect();
        assert!(winners.len() >= 4, "{winners:?}");
        let first_in = |a: u32, b: u32| winners.iter().copied().find(|n| (a..=b).contains(n));
        let mut ranges = vec![(0, 0), (5, 4), (u32::MAX, u32::MAX), (top, u32::MAX), (u32::MAX - 1, u32::MAX)];
        for w in &winners {
            // Ranges starting on, before (odd and even offsets) and just after a winner.
            for (a, b) in [(0, 2), (1, 2), (2, 5), (0, 0), (1, 0)] {
                ranges.push((w.saturating_sub(a), w.saturating_add(b)));
            }
            ranges.push((w.saturating_add(1), w.saturating_add(3)));
        }
        for (a, b) in ranges {
            assert_eq!(s.scan(a..=b).map(|f| f.nonce), first_in(a, b), "range {a}..={b}");
        }
    }
}
