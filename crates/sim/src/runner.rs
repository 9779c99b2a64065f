//! Running seeds: one, or many in parallel, with a summary.

use std::time::Duration;

use crate::algorithm::Algorithm;
use crate::report::RunStats;
use crate::sim::{SimConfig, Simulation};
use crate::sweep::{Sweep, SweepError, SweepSpec, SweepStats, sweep};
use crate::workload::{ConfigWorkload, ElectionWorkload, KvWorkload};
use crate::{SimError, Violation};

/// The service a run's nodes host and its clients use: the real service binaries'
/// state machines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Service {
    /// The key-value database (`ballot-kv`), histories checked for linearizability.
    #[default]
    Kv,
    /// The configuration service (`ballot-config`), with watchers.
    Config,
    /// The election service (`ballot-election`), with campaigners.
    Election,
}

impl Service {
    /// Every service.
    pub const ALL: [Service; 3] = [Service::Kv, Service::Config, Service::Election];

    /// The name used on the command line (`--service NAME`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Service::Kv => "kv",
            Service::Config => "config",
            Service::Election => "election",
        }
    }
}

impl std::str::FromStr for Service {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Service::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| format!("unknown service {s:?}: expected kv, config or election"))
    }
}

/// The virtual time one seed simulates unless told otherwise.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(30);

/// What identifies a randomized run: replaying the same spec replays the same run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunSpec {
    /// The seed.
    pub seed: u64,
    /// Cluster size.
    pub nodes: usize,
    /// Virtual time to simulate.
    pub duration: Duration,
    /// Round-trip messages and durable state through serde.
    pub serialize: bool,
    /// The service the nodes host.
    pub service: Service,
}

impl RunSpec {
    /// Seed `seed` on `nodes` nodes for [`DEFAULT_DURATION`], without serialization.
    #[must_use]
    pub fn new(seed: u64, nodes: usize) -> Self {
        RunSpec { seed, nodes, duration: DEFAULT_DURATION, serialize: false, service: Service::Kv }
    }

    /// The command that replays this run.
    #[must_use]
    pub fn replay_command(&self, algo: &str) -> String {
        let mut cmd = format!("cargo xtask sim --algo {algo} --seed {} --nodes {}", self.seed, self.nodes);
        if self.service != Service::Kv {
            cmd.push_str(&format!(" --service {}", self.service.name()));
        }
        if self.duration != DEFAULT_DURATION {
            cmd.push_str(&format!(" --duration {}", self.duration.as_secs()));
        }
        if self.serialize {
            cmd.push_str(" --serialize");
        }
        cmd
    }

    /// The randomized configuration of this run for an algorithm that does (or does not)
    /// support administrative actions.
    #[must_use]
    pub fn config(&self, algo: &str, admin: bool) -> SimConfig {
        let mut cfg = SimConfig::randomized(self.seed, self.nodes, self.duration, admin);
        cfg.serialize = self.serialize;
        cfg.replay = self.replay_command(algo);
        cfg
    }
}

/// Runs one randomized seed of `algo` to the end, with every check: the seed's
/// [`SimConfig::randomized`] configuration, adapted by [`Algorithm::shape_run`].
///
/// # Errors
/// [`SimError::Violation`] if a checker fires; setup errors otherwise.
pub fn run_spec<A: Algorithm>(algo: A, spec: &RunSpec) -> Result<RunStats, SimError> {
    let mut cfg = spec.config(algo.name(), algo.supports_admin());
    algo.shape_run(&mut cfg);
    let run = match spec.service {
        Service::Kv => Simulation::with_workload(algo, KvWorkload::default(), cfg)?.run(),
        Service::Config => Simulation::with_workload(algo, ConfigWorkload::default(), cfg)?.run(),
        Service::Election => Simulation::with_workload(algo, ElectionWorkload::default(), cfg)?.run(),
    };
    run.map_err(SimError::Violation)
}

/// The outcome of many runs.
pub type Summary = Sweep<RunSpec, RunStats, SimError>;

impl SweepSpec for RunSpec {
    fn seed(&self) -> u64 {
        self.seed
    }
    fn nodes(&self) -> usize {
        self.nodes
    }
}

impl SweepStats for RunStats {
    fn merge_from(&mut self, other: &Self) {
        self.merge(other);
    }
}

impl SweepError for SimError {
    type Violation = Violation;
    fn into_violation(self) -> Result<Violation, Self> {
        match self {
            SimError::Violation(v) => Ok(*v),
            e => Err(e),
        }
    }
}

/// Runs every spec with an algorithm from `make`, on `threads` threads; `on_done` is
/// called as each run ends (in completion order). The summary is the same whatever the
/// thread count.
pub fn run_many<A, F>(
    make: F,
    specs: &[RunSpec],
    threads: usize,
    on_done: &(dyn Fn(&RunSpec, &Result<RunStats, SimError>) + Sync),
) -> Summary
where
    A: Algorithm,
    F: Fn() -> A + Sync,
{
    sweep(specs, threads, |spec| run_spec(make(), spec), on_done)
}
