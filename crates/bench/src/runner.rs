//! The closed-loop runner.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::workload::SplitMix;
use crate::{BenchResult, Error, Latencies, Op, ReadConsistency, Spec};

/// A system under test: requests on numbered connections.
///
/// Implementations open `conns` connections up front (so that connecting is not
/// measured) and map connection `i` to the `i`-th of them.
pub trait Target: Send + Sync + 'static {
    /// The system's name for reports (`ballot`, `etcd`).
    fn name(&self) -> String;

    /// Writes `value` at `key` through connection `conn`.
    fn put(&self, conn: usize, key: Bytes, value: Bytes) -> impl Future<Output = Result<(), Error>> + Send;

    /// Reads `key` through connection `conn`.
    fn get(
        &self,
        conn: usize,
        key: Bytes,
        consistency: ReadConsistency,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Whether and how the runner reports progress while it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Silent.
    Off,
    /// A line on stderr every second (rewritten in place on a terminal).
    Stderr,
}

struct Shared {
    issued: AtomicU64,
    done: AtomicU64,
    stop: AtomicBool,
}

/// Runs `spec` against `target`: `spec.clients` closed-loop clients (client `i` on
/// connection `i % spec.conns`) issue `spec.total` requests between them, or as many as
/// they can before `spec.max_duration`. For `range`, `key` is read (default: key 0 of
/// the workload's key space); the caller writes it beforehand.
///
/// # Errors
/// [`Error::InvalidSpec`] for bad parameters; [`Error::AllFailed`] when no request
/// succeeded.
pub async fn run<T: Target>(
    target: Arc<T>,
    spec: &Spec,
    key: Option<Bytes>,
    progress: Progress,
) -> Result<BenchResult, Error> {
    spec.validate()?;
    let shared = Arc::new(Shared { issued: AtomicU64::new(0), done: AtomicU64::new(0), stop: AtomicBool::new(false) });
    let start = Instant::now();
    let deadline = start + spec.max_duration;
    let range_key = key.unwrap_or_else(|| spec.keys().key(0));
    let value = spec.value();
    let mut tasks = Vec::with_capacity(spec.clients);
    for client in 0..spec.clients {
        let (target, shared, spec) = (Arc::clone(&target), Arc::clone(&shared), spec.clone());
        let (range_key, value) = (range_key.clone(), value.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Latencies::new();
            let mut errors = 0u64;
            let mut first_error = None;
            let mut rng = SplitMix::new(0x5EED ^ (client as u64).wrapping_mul(0x9E37_79B9));
            let keys = spec.keys();
            let conn = client % spec.conns;
            loop {
                let i = shared.issued.fetch_add(1, Ordering::Relaxed);
                if i >= spec.total || shared.stop.load(Ordering::Relaxed) {
                    break;
                }
                if Instant::now() >= deadline {
                    shared.stop.store(true, Ordering::Relaxed);
                    break;
                }
                let began = Instant::now();
                let result = match spec.op {
                    Op::Put => target.put(conn, keys.next(i, &mut rng), value.clone()).await,
                    Op::Range => target.get(conn, range_key.clone(), spec.consistency).await,
                };
                match result {
                    Ok(()) => latencies.record(began.elapsed()),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| e.to_string());
                    }
                }
                shared.done.fetch_add(1, Ordering::Relaxed);
            }
            (latencies, errors, first_error, Instant::now())
        }));
    }
    let reporter = (progress == Progress::Stderr).then(|| {
        let shared = Arc::clone(&shared);
        let (total, op) = (spec.total, spec.op);
        tokio::spawn(async move {
            let tty = std::io::stderr().is_terminal();
            let mut last = 0u64;
            let mut tick = tokio::time::interval_at(Instant::now() + Duration::from_secs(1), Duration::from_secs(1));
            loop {
                tick.tick().await;
                let done = shared.done.load(Ordering::Relaxed);
                let line = format!(
                    "  {op}: {done}/{total} requests ({:.0}%), {} req/s, {:.0} s",
                    done as f64 * 100.0 / total as f64,
                    done - last,
                    start.elapsed().as_secs_f64()
                );
                let mut err = std::io::stderr().lock();
                let _ = if tty { write!(err, "\r{line}\x1b[K") } else { writeln!(err, "{line}") };
                let _ = err.flush();
                last = done;
            }
        })
    });
    let mut latencies = Latencies::new();
    let (mut errors, mut first_error, mut end) = (0u64, None, start);
    for task in tasks {
        let (l, e, first, finished) = task.await.map_err(|e| Error::Request(format!("a client task failed: {e}")))?;
        latencies.merge(&l);
        errors += e;
        if first_error.is_none() {
            first_error = first;
        }
        end = end.max(finished);
    }
    if let Some(r) = reporter {
        r.abort();
        if std::io::stderr().is_terminal() {
            eprintln!();
        }
    }
    let completed = latencies.count();
    if completed == 0 {
        return Err(Error::AllFailed { count: errors, first: first_error.unwrap_or_else(|| "none issued".into()) });
    }
    let duration = end.duration_since(start).as_secs_f64().max(1e-9);
    Ok(BenchResult {
        target: target.name(),
        spec: spec.clone(),
        completed,
        errors,
        first_error,
        duration_secs: duration,
        throughput: completed as f64 / duration,
        latency_ms: latencies.summary(),
        histogram: latencies.buckets(10),
        timed_out: shared.stop.load(Ordering::Relaxed) && completed + errors < spec.total,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;

    use super::*;

    /// An in-memory target that records which keys and connections it saw.
    #[derive(Default)]
    struct Fake {
        keys: Mutex<HashSet<Bytes>>,
        conns: Mutex<HashSet<usize>>,
        fail_every: u64,
        calls: AtomicU64,
    }

    impl Target for Fake {
        fn name(&self) -> String {
            "fake".into()
        }

        async fn put(&self, conn: usize, key: Bytes, value: Bytes) -> Result<(), Error> {
            assert_eq!(value.len(), 16);
            self.conns.lock().unwrap().insert(conn);
            self.keys.lock().unwrap().insert(key);
            let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
            tokio::task::yield_now().await;
            if self.fail_every > 0 && n.is_multiple_of(self.fail_every) {
                return Err(Error::Request("injected".into()));
            }
            Ok(())
        }

        async fn get(&self, conn: usize, key: Bytes, _: ReadConsistency) -> Result<(), Error> {
            self.conns.lock().unwrap().insert(conn);
            self.keys.lock().unwrap().insert(key);
            Ok(())
        }
    }

    #[tokio::test]
    async fn runs_exactly_total_requests_over_every_connection() {
        let fake = Arc::new(Fake::default());
        let spec = Spec {
            clients: 8,
            conns: 4,
            total: 1000,
            val_size: 16,
            sequential_keys: true,
            key_space_size: 100,
            ..Spec::default()
        };
        let r = run(Arc::clone(&fake), &spec, None, Progress::Off).await.unwrap();
        assert_eq!((r.completed, r.errors, r.timed_out), (1000, 0, false));
        assert_eq!(fake.keys.lock().unwrap().len(), 100, "sequential keys cover the key space");
        assert_eq!(*fake.conns.lock().unwrap(), (0..4).collect());
        assert!(r.throughput > 0.0 && r.latency_ms.max >= r.latency_ms.min);
    }

    #[tokio::test]
    async fn failures_are_counted_and_the_first_is_kept() {
        let fake = Arc::new(Fake { fail_every: 10, ..Fake::default() });
        let spec = Spec { clients: 2, conns: 1, total: 100, val_size: 16, ..Spec::default() };
        let r = run(fake, &spec, None, Progress::Off).await.unwrap();
        assert_eq!((r.completed, r.errors), (90, 10));
        assert!(r.first_error.unwrap().contains("injected"));
    }

    #[tokio::test]
    async fn range_reads_one_key_and_invalid_specs_fail_early() {
        let fake = Arc::new(Fake::default());
        let spec = Spec { op: Op::Range, clients: 3, conns: 3, total: 30, ..Spec::default() };
        run(Arc::clone(&fake), &spec, Some(Bytes::from_static(b"k")), Progress::Off).await.unwrap();
        assert_eq!(*fake.keys.lock().unwrap(), HashSet::from([Bytes::from_static(b"k")]));
        let bad = Spec { clients: 0, ..spec };
        assert!(matches!(run(fake, &bad, None, Progress::Off).await, Err(Error::InvalidSpec(_))));
    }
}
