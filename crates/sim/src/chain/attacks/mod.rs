//! Attacks on Nakamoto consensus, measured in the chain simulator with the real
//! `ballot_pow::Chain` on every node, and set next to the published analyses.
//!
//! * **Double spend** ([`double_spend_trial`]): the attacker (hash-rate share `q`, the
//!   rest shared by two honest miners, one of them the merchant) broadcasts a payment
//!   and, from that moment, mines in private on the parent of the merchant's tip a
//!   branch holding a conflicting transfer of the same coins (same nonce). The merchant
//!   accepts after `z` confirmations in its own best chain (at once for `z = 0`). The
//!   attacker publishes his branch as soon as it is strictly longer (more work; ties go
//!   to the block seen first) after the merchant accepted, and gives up when the honest
//!   chain is more than [`GIVE_UP`] blocks ahead. Success: the merchant's best chain
//!   ends up holding the conflicting transfer. A second setting gives the attacker one
//!   pre-mined block (he pays only once he holds a block with the theft on the current
//!   tip), which is Rosenfeld's model. Links of 1 ms and T = 600 s make natural forks
//!   negligible, as the analyses assume.
//! * **Selfish mining** ([`selfish_run`]): Eyal and Sirer's Algorithm 1 against four
//!   honest miners, `γ` through the network (see [`selfish`]'s module docs).
//! * **Stale blocks** ([`stale_run`]): ten equal honest miners, every link of delay `d`.
//!
//! Every trial has its own seed derived from the plan's seed, so tables are reproducible
//! and the same whatever the thread count.

pub(crate) mod double_spend;
pub(crate) mod selfish;
mod stale;
pub mod theory;

use ballot_core::SeededRng;

pub use double_spend::{DoubleSpendSetup, Trial, double_spend_trial};
pub use selfish::{SelfishRun, selfish_run};
pub use stale::{StaleRun, stale_run};

use super::sim::ChainSimError;
use crate::sweep::par_map;

/// Attacker shares of the double-spend table.
pub const QS: [f64; 4] = [0.1, 0.2, 0.3, 0.4];
/// Confirmation depths of the double-spend table.
pub const ZS: [u64; 6] = [0, 1, 2, 4, 6, 10];
/// The double-spend attacker gives up when the honest chain is more than this many
/// blocks ahead (catching up from there has probability at most (q/p)^21, 2·10⁻⁴ at
/// q = 0.4).
pub const GIVE_UP: u64 = 20;
/// Pool shares of the selfish-mining table.
pub const ALPHAS: [f64; 8] = [0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45];
/// Tie-breaking values of the selfish-mining table.
pub const GAMMAS: [f64; 2] = [0.0, 0.5];
/// Delay-to-interval ratios of the stale-block table.
pub const RATIOS: [f64; 7] = [0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5];
/// Honest miners in the selfish-mining runs.
pub const SELFISH_HONEST: usize = 4;
/// Miners in the stale-block runs.
pub const STALE_MINERS: usize = 10;

/// How much to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Small samples, to check the machinery (seconds).
    pub quick: bool,
    /// Worker threads.
    pub threads: usize,
    /// The seed all trial seeds derive from.
    pub seed: u64,
    /// Double-spend trials per cell, instead of the plan's defaults.
    pub trials: Option<u64>,
}

impl Plan {
    /// Double-spend trials per cell: 10,000 without pre-mining, 4,000 with (quick: 200).
    #[must_use]
    pub fn ds_trials(&self, premine: bool) -> u64 {
        self.trials.unwrap_or(match (self.quick, premine) {
            (true, _) => 200,
            (false, false) => 10_000,
            (false, true) => 4_000,
        })
    }

    /// Selfish-mining runs per cell and public-chain blocks per run: 32 × 2,000
    /// (quick: 4 × 250).
    #[must_use]
    pub fn selfish_runs(&self) -> (u64, u64) {
        if self.quick { (4, 250) } else { (32, 2_000) }
    }

    /// Stale-rate runs per ratio and blocks per run: 10 × 4,000 (quick: 2 × 400).
    #[must_use]
    pub fn stale_runs(&self) -> (u64, u64) {
        if self.quick { (2, 400) } else { (10, 4_000) }
    }

    fn trial_seed(&self, table: u64, cell: usize, trial: u64) -> u64 {
        SeededRng::new(self.seed ^ (table << 56) ^ ((cell as u64) << 40) ^ trial).next_u64()
    }
}

/// One cell of the double-spend table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DoubleSpendRow {
    /// Attacker share.
    pub q: f64,
    /// Confirmations.
    pub z: u64,
    /// With one pre-mined block.
    pub premine: bool,
    /// Trials run.
    pub trials: u64,
    /// Successful double spends.
    pub successes: u64,
    /// Blocks mined over all trials.
    pub blocks: u64,
}

/// Measures every `(q, z)` cell.
///
/// # Errors
/// A checker violation in a trial.
pub fn double_spend(plan: &Plan, premine: bool) -> Result<Vec<DoubleSpendRow>, ChainSimError> {
    const CHUNK: u64 = 50;
    let trials = plan.ds_trials(premine);
    let cells: Vec<(f64, u64)> = QS.iter().flat_map(|&q| ZS.iter().map(move |&z| (q, z))).collect();
    let items: Vec<(usize, u64)> =
        (0..cells.len()).flat_map(|c| (0..trials.div_ceil(CHUNK)).map(move |k| (c, k))).collect();
    let run = |&(c, k): &(usize, u64)| -> Result<(u64, u64), ChainSimError> {
        let (q, z) = cells[c];
        let setup = DoubleSpendSetup { q, z, premine, give_up: GIVE_UP, honest: 2 };
        let (mut wins, mut blocks) = (0, 0);
        for t in k * CHUNK..((k + 1) * CHUNK).min(trials) {
            let trial = double_spend_trial(&setup, plan.trial_seed(1 + u64::from(premine), c, t))?;
            wins += u64::from(trial.success);
            blocks += trial.blocks;
        }
        Ok((wins, blocks))
    };
    let results = par_map(&items, plan.threads, &run);
    let mut rows: Vec<DoubleSpendRow> =
        cells.iter().map(|&(q, z)| DoubleSpendRow { q, z, premine, trials, successes: 0, blocks: 0 }).collect();
    for ((c, _), r) in items.iter().zip(results) {
        let (w, b) = r?;
        rows[*c].successes += w;
        rows[*c].blocks += b;
    }
    Ok(rows)
}

/// One cell of the selfish-mining table.
#[derive(Clone, Debug, PartialEq)]
pub struct SelfishRow {
    /// Pool share of the hash rate.
    pub alpha: f64,
    /// Tie-breaking.
    pub gamma: f64,
    /// Independent runs.
    pub runs: u64,
    /// Public-chain blocks per run.
    pub blocks: u64,
    /// The pool's share of the final chain in each run.
    pub shares: Vec<f64>,
}

/// Measures every `(α, γ)` cell.
///
/// # Errors
/// A checker violation in a run.
pub fn selfish(plan: &Plan) -> Result<Vec<SelfishRow>, ChainSimError> {
    let (runs, blocks) = plan.selfish_runs();
    let cells: Vec<(f64, f64)> = GAMMAS.iter().flat_map(|&g| ALPHAS.iter().map(move |&a| (a, g))).collect();
    let items: Vec<(usize, u64)> = (0..cells.len()).flat_map(|c| (0..runs).map(move |r| (c, r))).collect();
    let run = |&(c, r): &(usize, u64)| {
        let (a, g) = cells[c];
        selfish_run(a, g, blocks, SELFISH_HONEST, plan.trial_seed(3, c, r))
    };
    let results = par_map(&items, plan.threads, &run);
    let mut rows: Vec<SelfishRow> =
        cells.iter().map(|&(alpha, gamma)| SelfishRow { alpha, gamma, runs, blocks, shares: Vec::new() }).collect();
    for ((c, _), r) in items.iter().zip(results) {
        let r = r?;
        rows[*c].shares.push(r.pool as f64 / r.total.max(1) as f64);
    }
    Ok(rows)
}

/// One row of the stale-block table.
#[derive(Clone, Debug, PartialEq)]
pub struct StaleRow {
    /// Propagation delay over block interval.
    pub ratio: f64,
    /// Blocks mined over all runs.
    pub mined: u64,
    /// Stale blocks (mined, not in the final best chain) over all runs.
    pub stale: u64,
    /// The stale fraction of each run.
    pub rates: Vec<f64>,
}

/// Measures every ratio.
///
/// # Errors
/// A checker violation in a run.
pub fn stale(plan: &Plan) -> Result<Vec<StaleRow>, ChainSimError> {
    let (runs, blocks) = plan.stale_runs();
    let items: Vec<(usize, u64)> = (0..RATIOS.len()).flat_map(|c| (0..runs).map(move |r| (c, r))).collect();
    let run = |&(c, r): &(usize, u64)| stale_run(RATIOS[c], STALE_MINERS, blocks, plan.trial_seed(4, c, r));
    let results = par_map(&items, plan.threads, &run);
    let mut rows: Vec<StaleRow> =
        RATIOS.iter().map(|&ratio| StaleRow { ratio, mined: 0, stale: 0, rates: Vec::new() }).collect();
    for ((c, _), r) in items.iter().zip(results) {
        let r = r?;
        rows[*c].mined += r.mined;
        rows[*c].stale += r.mined.saturating_sub(r.main);
        rows[*c].rates.push(r.mined.saturating_sub(r.main) as f64 / r.mined.max(1) as f64);
    }
    Ok(rows)
}

/// A probability for a table: four decimals, or two significant digits when small.
fn p(x: f64) -> String {
    if x == 0.0 {
        "0".to_owned()
    } else if x < 0.001 {
        format!("{x:.1e}")
    } else {
        format!("{x:.4}")
    }
}

/// The double-spend table in markdown.
#[must_use]
pub fn double_spend_markdown(rows: &[DoubleSpendRow]) -> String {
    let premine = rows.first().is_some_and(|r| r.premine);
    let mut out = String::new();
    if premine {
        out.push_str(
            "| q | z | trials | successes | measured (95 % Wilson) | Rosenfeld 2014 (this setting, exact) | \
             Nakamoto 2008 |\n|---|---|---|---|---|---|---|\n",
        );
    } else {
        out.push_str(
            "| q | z | trials | successes | measured (95 % Wilson) | this model, exact | Rosenfeld 2014 | \
             Nakamoto 2008 |\n|---|---|---|---|---|---|---|---|\n",
        );
    }
    for r in rows {
        let (lo, hi) = theory::wilson(r.successes, r.trials);
        let measured = format!("{} [{}, {}]", p(r.successes as f64 / r.trials.max(1) as f64), p(lo), p(hi));
        let (ros, nak) = (p(theory::rosenfeld(r.q, r.z)), p(theory::nakamoto(r.q, r.z)));
        if premine {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {measured} | {ros} | {nak} |\n",
                r.q, r.z, r.trials, r.successes
            ));
        } else {
            let exact = p(theory::race(r.q, r.z, 0, GIVE_UP));
            out.push_str(&format!(
                "| {} | {} | {} | {} | {measured} | {exact} | {ros} | {nak} |\n",
                r.q, r.z, r.trials, r.successes
            ));
        }
    }
    out
}

/// The selfish-mining table in markdown.
#[must_use]
pub fn selfish_markdown(rows: &[SelfishRow]) -> String {
    let mut out = String::from(
        "| α | γ | runs × blocks | pool's share of the main chain (95 % normal) | Eyal–Sirer 2014 | honest mining (α) |\n\
         |---|---|---|---|---|---|\n",
    );
    for r in rows {
        let (m, h) = theory::mean_interval(&r.shares);
        out.push_str(&format!(
            "| {} | {} | {} × {} | {:.4} ± {:.4} | {:.4} | {} |\n",
            r.alpha,
            r.gamma,
            r.runs,
            r.blocks,
            m,
            h,
            theory::eyal_sirer(r.alpha, r.gamma),
            r.alpha
        ));
    }
    out
}

/// The stale-block table in markdown: the pooled stale fraction with its Wilson
/// interval (a block's fate hardly depends on its neighbours' at these rates), the
/// spread across runs as a check of that, and the per-main-chain-block rate.
#[must_use]
pub fn stale_markdown(rows: &[StaleRow]) -> String {
    let mut out = String::from(
        "| d/T | d (T = 600 s) | stale / mined | stale / mined (95 % Wilson) | across runs (95 % normal) | \
         stale / main chain | 1 − e^(−d/T) | 1 − e^(−(1−1/N)·d/T), N = 10 |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let (m, h) = theory::mean_interval(&r.rates);
        let (lo, hi) = theory::wilson(r.stale, r.mined);
        let pooled = r.stale as f64 / r.mined.max(1) as f64;
        let per_main = r.stale as f64 / r.mined.saturating_sub(r.stale).max(1) as f64;
        out.push_str(&format!(
            "| {} | {:.1} s | {} / {} | {} [{}, {}] | {} ± {} | {} | {} | {} |\n",
            r.ratio,
            r.ratio * 600.0,
            r.stale,
            r.mined,
            p(pooled),
            p(lo),
            p(hi),
            p(m),
            p(h),
            p(per_main),
            p(theory::stale_simple(r.ratio)),
            p(theory::stale_others(r.ratio, STALE_MINERS))
        ));
    }
    out
}
