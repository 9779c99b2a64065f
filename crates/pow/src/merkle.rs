//! Merkle roots over transaction ids, with Bitcoin's CVE-2012-2459 mutation check.

use ballot_ledger::{Hash, sha256d};

/// The Merkle root of `leaves` and whether the list is *mutated*, exactly as Bitcoin
/// Core's `ComputeMerkleRoot(leaves, &mutated)`.
///
/// A level with an odd number of nodes pairs its last node with itself. That makes the
/// lists `[a, b, c]` and `[a, b, c, c]` share a root (CVE-2012-2459), so a block could
/// be altered without changing its header hash. `mutated` is set when any level has two
/// equal nodes in one pair; a block whose list is mutated must be refused (without
/// marking its header invalid: the same header with the right list may be valid). The
/// root of no leaves is all zeros.
#[must_use]
pub fn merkle_root(leaves: &[Hash]) -> (Hash, bool) {
    let mut level: Vec<Hash> = leaves.to_vec();
    let mut mutated = false;
    let mut buf = [0u8; 64];
    while level.len() > 1 {
        mutated |= level.chunks_exact(2).any(|pair| pair[0] == pair[1]);
        if level.len() % 2 == 1 {
            level.push(level[level.len() - 1]);
        }
        level = level
            .chunks_exact(2)
            .map(|pair| {
                buf[..32].copy_from_slice(&pair[0].0);
                buf[32..].copy_from_slice(&pair[1].0);
                sha256d(&buf)
            })
            .collect();
    }
    (level.first().copied().unwrap_or(Hash::ZERO), mutated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(n: u8) -> Hash {
        sha256d(&[n])
    }

    fn pair(a: Hash, b: Hash) -> Hash {
        let mut buf = [0u8; 64];
        buf[..32].copy_from_slice(&a.0);
        buf[32..].copy_from_slice(&b.0);
        sha256d(&buf)
    }

    #[test]
    fn small_trees() {
        assert_eq!(merkle_root(&[]), (Hash::ZERO, false));
        assert_eq!(merkle_root(&[leaf(1)]), (leaf(1), false));
        let (a, b, c) = (leaf(1), leaf(2), leaf(3));
        assert_eq!(merkle_root(&[a, b]), (pair(a, b), false));
        // Odd count: the last node is paired with itself.
        assert_eq!(merkle_root(&[a, b, c]), (pair(pair(a, b), pair(c, c)), false));
    }

    #[test]
    fn bitcoin_block_170() {
        // The first block with a payment: two transactions.
        let ids = [
            "b1fea52486ce0c62bb442b530a3f0132b826c74e473d1f2c220bfa78111c5082".parse().unwrap(),
            "f4184fc596403b9d638783cf57adfe4c75c605f6356fbc91338530e9831e9e16".parse().unwrap(),
        ];
        let root = "7dac2c5666815c17a3b36427de37bb9d2e2c5ccec3f8633eb91a4205cb4c10ff".parse().unwrap();
        assert_eq!(merkle_root(&ids), (root, false));
    }

    #[test]
    fn duplicated_tail_has_the_same_root_and_is_flagged() {
        let l: Vec<Hash> = (1..=6).map(leaf).collect();
        // [1..6] has an odd level above (3 nodes); duplicating leaves 5 and 6 gives the same root.
        let (root, mutated) = merkle_root(&l);
        assert!(!mutated);
        let mut evil = l.clone();
        evil.extend_from_slice(&l[4..6]);
        assert_eq!(merkle_root(&evil), (root, true));
        // Three leaves vs. the last duplicated.
        let three = [leaf(1), leaf(2), leaf(3)];
        let four = [leaf(1), leaf(2), leaf(3), leaf(3)];
        assert_eq!(merkle_root(&three).0, merkle_root(&four).0);
        assert!(!merkle_root(&three).1);
        assert!(merkle_root(&four).1);
        // Equal leaves that are not a pair are not a mutation.
        assert!(!merkle_root(&[leaf(1), leaf(2), leaf(2), leaf(3)]).1);
    }
}
