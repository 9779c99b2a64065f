//! Running chain seeds: one, or many in parallel, with a summary.

use std::time::Duration;

use super::config::ChainSimConfig;
use super::sim::{ChainSim, ChainSimError, ChainViolation};
use super::stats::ChainStats;
use crate::sweep::{Sweep, SweepError, SweepSpec, SweepStats, sweep};

/// The virtual time one chain seed simulates unless told otherwise: nine minutes of
/// faults (about 54 block intervals of 10 s), then a minute of healing and settling.
pub const DEFAULT_POW_DURATION: Duration = Duration::from_secs(600);

/// What identifies a randomized chain run: replaying the same spec replays the same run.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainRunSpec {
    /// The seed.
    pub seed: u64,
    /// Number of nodes.
    pub nodes: usize,
    /// Virtual time: faults until 60 s before the end, then the final heal.
    pub duration: Duration,
    /// Hash-rate shares to use instead of the seed's (one per node, summing to 1).
    pub shares: Option<Vec<f64>>,
}

impl ChainRunSpec {
    /// Seed `seed` on `nodes` nodes for [`DEFAULT_POW_DURATION`], with the seed's shares.
    #[must_use]
    pub fn new(seed: u64, nodes: usize) -> Self {
        ChainRunSpec { seed, nodes, duration: DEFAULT_POW_DURATION, shares: None }
    }

    /// The command that replays this run.
    #[must_use]
    pub fn replay_command(&self) -> String {
        let mut cmd = format!("cargo xtask sim --algo pow --seed {} --nodes {}", self.seed, self.nodes);
        if self.duration != DEFAULT_POW_DURATION {
            cmd.push_str(&format!(" --duration {}", self.duration.as_secs()));
        }
        if let Some(shares) = &self.shares {
            let s: Vec<String> = shares.iter().map(f64::to_string).collect();
            cmd.push_str(&format!(" --shares {}", s.join(",")));
        }
        cmd
    }

    /// The run's configuration.
    #[must_use]
    pub fn config(&self) -> ChainSimConfig {
        let mut cfg = ChainSimConfig::randomized(self.seed, self.nodes, self.duration);
        if let Some(shares) = &self.shares {
            cfg.shares.clone_from(shares);
        }
        cfg.replay = self.replay_command();
        cfg
    }
}

/// Runs one randomized chain seed to the end, with every check.
///
/// # Errors
/// [`ChainSimError::Violation`] if a checker fires; setup errors otherwise.
pub fn run_chain_spec(spec: &ChainRunSpec) -> Result<ChainStats, ChainSimError> {
    Ok(ChainSim::new(spec.config())?.run()?)
}

/// The outcome of many chain runs.
pub type ChainSummary = Sweep<ChainRunSpec, ChainStats, ChainSimError>;

impl SweepSpec for ChainRunSpec {
    fn seed(&self) -> u64 {
        self.seed
    }
    fn nodes(&self) -> usize {
        self.nodes
    }
}

impl SweepStats for ChainStats {
    fn merge_from(&mut self, other: &Self) {
        self.merge(other);
    }
}

impl SweepError for ChainSimError {
    type Violation = ChainViolation;
    fn into_violation(self) -> Result<ChainViolation, Self> {
        match self {
            ChainSimError::Violation(v) => Ok(*v),
            e => Err(e),
        }
    }
}

/// Runs every spec on `threads` threads; `on_done` is called as each run ends. The
/// summary is the same whatever the thread count.
pub fn run_chain_many(
    specs: &[ChainRunSpec],
    threads: usize,
    on_done: &(dyn Fn(&ChainRunSpec, &Result<ChainStats, ChainSimError>) + Sync),
) -> ChainSummary {
    sweep(specs, threads, run_chain_spec, on_done)
}
