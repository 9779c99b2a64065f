//! Running chain seeds: one, or many in parallel, with a summary.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::config::ChainSimConfig;
use super::sim::{ChainSim, ChainSimError, ChainViolation};
use super::stats::ChainStats;

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
#[derive(Debug, Default)]
pub struct ChainSummary {
    /// Figures merged over the runs that passed.
    pub stats: ChainStats,
    /// Violations found, in spec order.
    pub violations: Vec<ChainViolation>,
    /// Runs that could not be set up, in spec order.
    pub errors: Vec<(ChainRunSpec, ChainSimError)>,
    /// Wall-clock time taken.
    pub wall: Duration,
}

impl ChainSummary {
    /// Whether every run passed.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.errors.is_empty()
    }
}

/// Runs every spec on `threads` threads; `on_done` is called as each run ends. The
/// summary is the same whatever the thread count.
pub fn run_chain_many(
    specs: &[ChainRunSpec],
    threads: usize,
    on_done: &(dyn Fn(&ChainRunSpec, &Result<ChainStats, ChainSimError>) + Sync),
) -> ChainSummary {
    let started = std::time::Instant::now();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Result<ChainStats, ChainSimError>)>> = Mutex::new(Vec::with_capacity(specs.len()));
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, 64) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(spec) = specs.get(i) else { break };
                    let result = run_chain_spec(spec);
                    on_done(spec, &result);
                    results.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((i, result));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    results.sort_by_key(|(i, _)| *i);
    let mut summary = ChainSummary::default();
    for (i, result) in results {
        match result {
            Ok(stats) => summary.stats.merge(&stats),
            Err(ChainSimError::Violation(v)) => summary.violations.push(*v),
            Err(e) => summary.errors.push((specs[i].clone(), e)),
        }
    }
    summary.wall = started.elapsed();
    summary
}
