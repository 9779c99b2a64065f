//! Sweeps of many seeds, shared by the log simulator and the chain simulator: runs
//! specs in parallel, collects a summary in spec order, reports progress and prints the
//! result the same way for every algorithm.

use std::ffi::OsString;
use std::fmt;
use std::io::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// What a sweep needs of a run's description: the seed and cluster size it names.
pub trait SweepSpec: Clone + Sync {
    /// The seed.
    fn seed(&self) -> u64;
    /// The number of nodes.
    fn nodes(&self) -> usize;
}

/// What a sweep needs of a run's figures: merging them over runs.
pub trait SweepStats: Default + Send {
    /// Adds `other`'s figures to these.
    fn merge_from(&mut self, other: &Self);
}

/// What a sweep needs of a run's error: telling a checker's violation (a finding) from
/// a run that could not be set up.
pub trait SweepError: Send + Sized {
    /// The violation report.
    type Violation;
    /// The violation, or the error itself if it is not one.
    ///
    /// # Errors
    /// `self` when it is not a violation.
    fn into_violation(self) -> Result<Self::Violation, Self>;
}

/// The outcome of many runs.
#[derive(Debug)]
pub struct Sweep<Spec, Stats, E: SweepError> {
    /// Figures merged over the runs that passed.
    pub stats: Stats,
    /// Violations found, in spec order.
    pub violations: Vec<E::Violation>,
    /// Runs that could not be set up, in spec order.
    pub errors: Vec<(Spec, E)>,
    /// Wall-clock time taken.
    pub wall: Duration,
}

impl<Spec, Stats: Default, E: SweepError> Default for Sweep<Spec, Stats, E> {
    fn default() -> Self {
        Sweep { stats: Stats::default(), violations: Vec::new(), errors: Vec::new(), wall: Duration::ZERO }
    }
}

impl<Spec, Stats, E: SweepError> Sweep<Spec, Stats, E> {
    /// Whether every run passed.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.errors.is_empty()
    }
}

/// Runs `run` on every spec on `threads` threads (1 to 64); `on_done` is called as each
/// run ends (in completion order). The summary is the same whatever the thread count.
pub fn sweep<Spec, Stats, E>(
    specs: &[Spec],
    threads: usize,
    run: impl Fn(&Spec) -> Result<Stats, E> + Sync,
    on_done: &(dyn Fn(&Spec, &Result<Stats, E>) + Sync),
) -> Sweep<Spec, Stats, E>
where
    Spec: SweepSpec,
    Stats: SweepStats,
    E: SweepError,
{
    let started = std::time::Instant::now();
    let results = par_map(specs, threads, &|spec| {
        let result = run(spec);
        on_done(spec, &result);
        result
    });
    let mut summary: Sweep<Spec, Stats, E> = Sweep::default();
    for (i, result) in results.into_iter().enumerate() {
        match result.map_err(SweepError::into_violation) {
            Ok(stats) => summary.stats.merge_from(&stats),
            Err(Ok(v)) => summary.violations.push(v),
            Err(Err(e)) => summary.errors.push((specs[i].clone(), e)),
        }
    }
    summary.wall = started.elapsed();
    summary
}

/// Runs `f` on every item on `threads` threads (1 to 64); results in item order.
pub(crate) fn par_map<T: Sync, R: Send>(items: &[T], threads: usize, f: &(dyn Fn(&T) -> R + Sync)) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, 64) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    out.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((i, r));
                }
            });
        }
    });
    let mut out = out.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// Whether the command line asks for `--algo NAME` (`--algo NAME` or `--algo=NAME`): how
/// the binary hands the chain simulators their own command lines.
pub fn asks_for_algo(args: impl IntoIterator<Item = OsString>, name: &str) -> bool {
    let args: Vec<OsString> = args.into_iter().collect();
    let joined = format!("--algo={name}");
    args.iter().any(|a| *a == *joined) || args.windows(2).any(|w| w[0] == "--algo" && w[1] == name)
}

/// A progress reporter for `total` runs on standard error: every failure at once, and
/// a count every ten runs.
pub fn progress<Spec: SweepSpec, Stats, E: fmt::Display>(total: usize) -> impl Fn(&Spec, &Result<Stats, E>) + Sync {
    let done = AtomicU64::new(0);
    let total = total as u64;
    move |spec, result| {
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        if let Err(e) = result {
            eprintln!("\nseed {} ({} nodes) FAILED:\n{e}", spec.seed(), spec.nodes());
        } else if total > 1 && (n.is_multiple_of(10) || n == total) {
            eprint!("\r{n}/{total} runs done");
            let _ = std::io::stderr().flush();
        }
    }
}

/// Prints a sweep's result on standard output (the seeds and sizes, the figures, every
/// violation with its replay command); returns whether every run passed.
pub fn print_summary<Spec, Stats, E>(
    summary: &Sweep<Spec, Stats, E>,
    seeds: usize,
    sizes: &[usize],
    runs: usize,
) -> bool
where
    Spec: SweepSpec,
    Stats: fmt::Display,
    E: SweepError + fmt::Display,
    E::Violation: fmt::Display,
{
    eprintln!();
    println!("seeds:               {seeds} ({runs} runs, nodes {sizes:?})");
    println!("{}", summary.stats);
    println!("wall time:           {:.1} s", summary.wall.as_secs_f64());
    for (spec, e) in &summary.errors {
        println!("seed {} ({} nodes) could not run: {e}", spec.seed(), spec.nodes());
    }
    if summary.passed() {
        println!("result:              all {runs} runs passed");
        return true;
    }
    println!("result:              {} violation(s)", summary.violations.len() + summary.errors.len());
    for v in &summary.violations {
        println!("\n{v}");
    }
    false
}
