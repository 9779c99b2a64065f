//! Selfish mining (Eyal and Sirer 2014, Algorithm 1), measured: the pool withholds its
//! blocks and publishes them to win races, with the tie-breaking `γ` made by the
//! network: each published block reaches each honest node before the honest competitor
//! with a probability chosen so that a fraction `γ` of the honest hash rate mines on the
//! pool's branch during a tie.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use ballot_pow::Block;

use super::super::config::{ChainSimConfig, faucet_key};
use super::super::node::Role;
use super::super::sim::{ChainSim, ChainSimError, Msg};
use super::double_spend::{lossless, measurement_params};

/// Honest-to-honest delay of the selfish-mining network.
const HONEST_DELAY: Duration = Duration::from_millis(100);
/// The pool hears of honest blocks, and reaches the nodes it wins, this fast.
const FAST: Duration = Duration::from_millis(1);
/// A published block the honest competitor beats arrives this late.
const SLOW: Duration = Duration::from_millis(200);

/// The selfish pool's state.
pub(crate) struct Selfish {
    /// Probability that a published block reaches a given honest node first.
    first: f64,
    /// Blocks of the private branch not published yet, oldest first.
    withheld: VecDeque<Arc<Block>>,
    /// Height of the private branch's tip.
    private: u64,
    /// Height of the longest public chain.
    public: u64,
    /// Length of the private branch since it forked off the public chain.
    branch: u64,
}

/// One selfish-mining run's outcome: the pool's blocks in the honest nodes' final best
/// chain, of how many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelfishRun {
    /// The pool's blocks in the final best chain.
    pub pool: u64,
    /// The final best chain's height.
    pub total: u64,
}

/// Runs the pool with hash-rate share `alpha` against `honest` equal honest miners until
/// the public chain is `blocks` long, then lets it publish what it withholds.
///
/// # Errors
/// A violation of a checker (which run here too).
pub fn selfish_run(alpha: f64, gamma: f64, blocks: u64, honest: usize, seed: u64) -> Result<SelfishRun, ChainSimError> {
    let honest = honest.max(2);
    let pool = honest;
    let params = measurement_params(faucet_key().public(), 2);
    let mut shares = vec![(1.0 - alpha) / honest as f64; honest];
    shares.push(alpha);
    let mut cfg = ChainSimConfig::plain(seed, shares, params, lossless(HONEST_DELAY));
    cfg.replay = format!("selfish-mining run seed {seed} (alpha {alpha}, gamma {gamma})");
    let mut sim = ChainSim::new(cfg)?;
    for h in 0..honest {
        sim.fixed[h][pool] = Some(FAST);
    }
    // The finder always mines on its own block: spread γ over the other honest nodes.
    let first = (gamma * honest as f64 / (honest - 1) as f64).clamp(0.0, 1.0);
    sim.nodes[pool].role =
        Role::Selfish(Box::new(Selfish { first, withheld: VecDeque::new(), private: 0, public: 0, branch: 0 }));
    while sim.public_height(pool) < blocks {
        if !sim.step()? {
            break;
        }
    }
    let rest = match &mut sim.nodes[pool].role {
        Role::Selfish(s) => s.withheld.len(),
        _ => 0,
    };
    sim.selfish_publish(pool, rest, true);
    sim.mining_paused = true;
    while sim.step()? {}
    let chain = sim.nodes[0].chain.as_ref().ok_or_else(|| ChainSimError::InvalidConfig("node down".to_owned()))?;
    let total = chain.height();
    let pool_blocks = (1..=total)
        .filter_map(|h| chain.hash_at(h))
        .filter(|h| sim.origin.get(h).is_some_and(|o| o.miner == pool))
        .count() as u64;
    Ok(SelfishRun { pool: pool_blocks, total })
}

impl ChainSim {
    fn public_height(&self, pool: usize) -> u64 {
        match &self.nodes[pool].role {
            Role::Selfish(s) => s.public,
            _ => 0,
        }
    }

    /// Publishes the `count` oldest withheld blocks; each honest node receives them
    /// before a competing honest block with the pool's probability (or at once if
    /// `fast`).
    fn selfish_publish(&mut self, pool: usize, count: usize, fast: bool) {
        let Role::Selfish(s) = &mut self.nodes[pool].role else { return };
        let first = s.first;
        let n = count.min(s.withheld.len());
        let blocks: Vec<Arc<Block>> = s.withheld.drain(..n).collect();
        let Some(top) = blocks.last().map(|b| b.hash()) else { return };
        let height = self.nodes[pool].chain.as_ref().and_then(|c| c.entry(&top)).map_or(0, |e| e.height);
        if let Role::Selfish(s) = &mut self.nodes[pool].role {
            s.public = s.public.max(height);
        }
        for p in 0..self.nodes.len() {
            if p == pool {
                continue;
            }
            let delay = if fast || self.rng.gen_bool(first) { FAST } else { SLOW };
            for b in &blocks {
                self.send_after(pool, p, Msg::Block(b.clone()), delay);
            }
        }
    }

    pub(crate) fn mine_selfish(&mut self, i: usize) {
        let Some(block) = self.new_block(i) else { return };
        let block = self.record(i, block, true);
        self.accept(i, None, block.clone());
        let height = self.nodes[i].chain.as_ref().and_then(|c| c.entry(&block.hash())).map_or(0, |e| e.height);
        let Role::Selfish(s) = &mut self.nodes[i].role else { return };
        let lead = i64::try_from(s.private).unwrap_or(0) - i64::try_from(s.public).unwrap_or(0);
        s.private = height;
        s.branch += 1;
        s.withheld.push_back(block);
        if lead == 0 && s.branch == 2 {
            // Won the tie race: publish and take both blocks.
            let n = s.withheld.len();
            s.branch = 0;
            self.selfish_publish(i, n, false);
        }
    }

    pub(crate) fn selfish_on_block(&mut self, i: usize, from: usize, block: Arc<Block>) {
        let hash = block.hash();
        let own = self.origin.get(&hash).is_some_and(|o| o.miner == i);
        self.accept(i, Some(from), block);
        if own {
            return;
        }
        let Some(height) = self.nodes[i].chain.as_ref().and_then(|c| c.entry(&hash)).map(|e| e.height) else { return };
        let Role::Selfish(s) = &mut self.nodes[i].role else { return };
        if height <= s.public {
            return;
        }
        let lead = i64::try_from(s.private).unwrap_or(0) - i64::try_from(s.public).unwrap_or(0);
        s.public = height;
        match lead {
            i64::MIN..=0 => {
                // The honest chain is ahead: adopt it.
                s.private = height;
                s.branch = 0;
                s.withheld.clear();
            }
            1 => {
                // Match: publish the one withheld block and race.
                let n = s.withheld.len();
                self.selfish_publish(i, n, false);
            }
            2 => {
                // One ahead after their block: publish everything and win.
                let n = s.withheld.len();
                s.branch = 0;
                self.selfish_publish(i, n, false);
            }
            _ => self.selfish_publish(i, 1, false),
        }
    }
}
