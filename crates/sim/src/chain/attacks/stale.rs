//! The stale-block rate against the ratio of propagation delay to block interval.

use std::time::Duration;

use super::super::config::{ChainSimConfig, faucet_key};
use super::super::sim::{ChainSim, ChainSimError};
use super::double_spend::{INTERVAL, lossless, measurement_params};

/// One run's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaleRun {
    /// Blocks mined.
    pub mined: u64,
    /// Height of the final best chain.
    pub main: u64,
}

/// `miners` equal honest miners on links of delay `ratio × T` (T = 600 s) mine until
/// `blocks` blocks exist; then mining stops and the network settles.
///
/// # Errors
/// A violation of a checker (which run here too).
pub fn stale_run(ratio: f64, miners: usize, blocks: u64, seed: u64) -> Result<StaleRun, ChainSimError> {
    let miners = miners.max(2);
    let params = measurement_params(faucet_key().public(), 2);
    let delay = Duration::from_secs_f64(ratio * INTERVAL as f64);
    let shares = vec![1.0 / miners as f64; miners];
    let mut cfg = ChainSimConfig::plain(seed, shares, params, lossless(delay));
    cfg.replay = format!("stale-rate run seed {seed} (d/T {ratio})");
    let mut sim = ChainSim::new(cfg)?;
    while sim.stats.blocks_mined < blocks {
        if !sim.step()? {
            break;
        }
    }
    sim.mining_paused = true;
    while sim.step()? {}
    let main = sim.chain(0).map_or(0, ballot_pow::Chain::height);
    Ok(StaleRun { mined: sim.stats.blocks_mined, main })
}
