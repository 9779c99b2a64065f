//! The chain a network runs: the rules every node of it must share.

use ballot_ledger::{COIN, Hash, LedgerParams, PublicKey, sha256d};
use ballot_pow::{Block, ChainParams, CompactTarget, U256};

/// Genesis time of every ballot test network: 2023-11-14 22:13:20 UTC.
pub const GENESIS_TIME: u32 = 1_700_000_000;

/// What distinguishes one local network from another. Every node of a network must
/// use the same values (peers compare [`ChainSpec::digest`] in their handshake).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainSpec {
    /// Signed into every transfer.
    pub chain_id: u32,
    /// Intended seconds between blocks.
    pub block_interval_secs: u64,
    /// Blocks between difficulty retargets.
    pub retarget_interval: u64,
    /// Leading zero bits of the proof-of-work limit: genesis and the easiest blocks need
    /// about `2^pow_limit_bits` hashes.
    pub pow_limit_bits: u32,
}

impl Default for ChainSpec {
    /// The local test network: 5-second blocks, a retarget every 10 blocks (by at most
    /// 4x), a limit of about a million hashes a block (a fraction of a second on one
    /// core; retargeting raises it to the network's hashrate within a few windows).
    fn default() -> Self {
        ChainSpec { chain_id: 1, block_interval_secs: 5, retarget_interval: 10, pow_limit_bits: 20 }
    }
}

impl ChainSpec {
    /// The consensus rules: [`ChainParams::testing`]'s shape with this spec's spacing,
    /// retarget and limit; 1 MB blocks; 50 coins a block halving every 100,000 blocks,
    /// spendable 5 blocks after being mined. Genesis pays the zero key (unspendable).
    #[must_use]
    pub fn params(&self) -> ChainParams {
        let ledger = LedgerParams {
            chain_id: self.chain_id,
            initial_subsidy: 50 * COIN,
            halving_interval: 100_000,
            coinbase_maturity: 5,
            max_tx_size: 1_000,
        };
        let bits = CompactTarget::from_target(U256::MAX >> self.pow_limit_bits.clamp(1, 255));
        let pow_limit = bits.to_target().unwrap_or(U256::MAX >> 32);
        let genesis = Block::genesis(&ledger, PublicKey([0; 32]), GENESIS_TIME, bits);
        let mut params = ChainParams::testing(self.chain_id, PublicKey([0; 32]), GENESIS_TIME);
        params.ledger = ledger;
        params.pow_limit = pow_limit;
        params.target_spacing = self.block_interval_secs.max(1);
        params.retarget_interval = self.retarget_interval;
        params.max_block_size = 1_000_000;
        params.max_orphans = 64;
        params.max_orphan_bytes = 16 << 20;
        params.genesis = genesis;
        params
    }

    /// A digest of all the rules: peers with another digest are on another chain.
    #[must_use]
    pub fn digest(&self) -> Hash {
        digest(&self.params())
    }
}

/// A digest of `params` (their canonical encoding, SHA-256d).
#[must_use]
pub fn digest(params: &ChainParams) -> Hash {
    let bytes = ballot_wire::encode(params).map(|b| b.to_vec()).unwrap_or_default();
    sha256d(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_differ_in_digest_and_genesis_is_at_the_limit() {
        let a = ChainSpec::default();
        let b = ChainSpec { block_interval_secs: 1, ..a };
        assert_ne!(a.digest(), b.digest());
        assert_eq!(a.digest(), ChainSpec::default().digest());
        let p = a.params();
        assert_eq!(p.genesis.header.bits.to_target().unwrap(), p.pow_limit);
        assert!(ballot_pow::Chain::new(p, ballot_ledger::MempoolConfig::default()).is_ok());
    }
}
