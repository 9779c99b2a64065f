//! Ledger parameters: chain id, the coinbase schedule, maturity, size limits.

use serde::{Deserialize, Serialize};

/// Units in one coin (Bitcoin's satoshis per bitcoin).
pub const COIN: u64 = 100_000_000;

/// The rules of one ledger. Every node of a chain must use the same values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerParams {
    /// Signed into every transfer, so a transfer is valid on one chain only.
    pub chain_id: u32,
    /// Coinbase subsidy of the blocks before the first halving.
    pub initial_subsidy: u64,
    /// Blocks between halvings of the subsidy; 0 means the subsidy never halves.
    pub halving_interval: u64,
    /// A coinbase of height `c` can be spent by a transfer in a block of height `h` only
    /// if `h - c >= coinbase_maturity` (Bitcoin: 100).
    pub coinbase_maturity: u64,
    /// Largest canonical encoding of a transaction, in bytes.
    pub max_tx_size: usize,
}

impl LedgerParams {
    /// Bitcoin's schedule: 50 coins, halving every 210,000 blocks, maturity 100, and
    /// transactions up to 100,000 bytes (Bitcoin Core's standardness limit).
    #[must_use]
    pub fn bitcoin_like(chain_id: u32) -> Self {
        LedgerParams {
            chain_id,
            initial_subsidy: 50 * COIN,
            halving_interval: 210_000,
            coinbase_maturity: 100,
            max_tx_size: 100_000,
        }
    }

    /// Small numbers for tests and demos: a subsidy of 1,000,000 units halving every
    /// 100 blocks, maturity 2, transactions up to 1,000 bytes.
    #[must_use]
    pub fn testing(chain_id: u32) -> Self {
        LedgerParams {
            chain_id,
            initial_subsidy: 1_000_000,
            halving_interval: 100,
            coinbase_maturity: 2,
            max_tx_size: 1_000,
        }
    }

    /// The subsidy of the block at `height`: `initial_subsidy` halved once per
    /// `halving_interval` blocks, zero after 64 halvings (as in Bitcoin Core).
    #[must_use]
    pub fn subsidy(&self, height: u64) -> u64 {
        let halvings = height.checked_div(self.halving_interval).unwrap_or(0);
        if halvings >= 64 { 0 } else { self.initial_subsidy >> halvings }
    }

    /// The sum of the subsidies of blocks `0..=height`: the most units that can exist
    /// once the block at `height` is applied (saturating at `u64::MAX`).
    #[must_use]
    pub fn max_supply_through(&self, height: u64) -> u64 {
        let blocks = u128::from(height) + 1;
        if self.halving_interval == 0 {
            return u64::try_from(blocks * u128::from(self.initial_subsidy)).unwrap_or(u64::MAX);
        }
        let interval = u128::from(self.halving_interval);
        let mut total: u128 = 0;
        let mut era_start: u128 = 0;
        let mut subsidy = self.initial_subsidy;
        while era_start < blocks && subsidy > 0 {
            let in_era = (blocks - era_start).min(interval);
            total += in_era * u128::from(subsidy);
            era_start += interval;
            subsidy >>= 1;
        }
        u64::try_from(total).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitcoin_schedule() {
        let p = LedgerParams::bitcoin_like(0);
        assert_eq!(p.subsidy(0), 50 * COIN);
        assert_eq!(p.subsidy(209_999), 50 * COIN);
        assert_eq!(p.subsidy(210_000), 25 * COIN);
        assert_eq!(p.subsidy(420_000), 1_250_000_000);
        assert_eq!(p.subsidy(210_000 * 33), 0);
        assert_eq!(p.subsidy(210_000 * 64), 0);
        assert_eq!(p.subsidy(u64::MAX), 0);
        // Bitcoin's well-known cap: 20,999,999.9769 coins.
        assert_eq!(p.max_supply_through(u64::MAX - 1), 2_099_999_997_690_000);
        assert_eq!(p.max_supply_through(0), 50 * COIN);
        assert_eq!(p.max_supply_through(209_999), 210_000 * 50 * COIN);
    }

    #[test]
    fn no_halving_and_sums() {
        let mut p = LedgerParams::testing(0);
        assert_eq!(p.max_supply_through(99), 100 * 1_000_000);
        assert_eq!(p.max_supply_through(100), 100 * 1_000_000 + 500_000);
        p.halving_interval = 0;
        assert_eq!(p.subsidy(1_000_000), 1_000_000);
        assert_eq!(p.max_supply_through(9), 10_000_000);
        assert_eq!(p.max_supply_through(u64::MAX), u64::MAX);
    }
}
