//! Durable-append benchmark for ballot-storage, next to the disk's own limit.
//!
//! ```text
//! cargo bench -p ballot-storage --bench storage [-- --secs 5] [-- --dir /path/on/the/disk]
//! ```
//!
//! Measures, on one directory: a plain `write` + `fdatasync` loop (the disk's limit for
//! synced appends); `RocksStore::write` with 1, 16 and 256 entries of 256 bytes per
//! synced write; and the group-commit writer fed 1-entry batches by a pipelining
//! producer. Prints durable entries/s, syncs/s, fsync latency percentiles (for the
//! store: `ballot_disk_wal_fsync_duration_seconds`, the synced RocksDB write) and the
//! ratios of syncs/s and of entries/s to the plain fdatasync loop's, as a Markdown table.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use ballot_core::testkit::{TestEntry, TestHardState};
use ballot_core::{LogStore, Persist, PersistId};
use ballot_storage::{GroupCommit, GroupCommitOptions, RocksStore};
use bytes::Bytes;
use hdrhistogram::Histogram;

const ENTRY_BYTES: usize = 256;

/// Records the storage crate's fsync histogram into an HDR histogram (microseconds).
#[derive(Clone, Default)]
struct FsyncRecorder(Arc<Mutex<HashMap<String, Histogram<u64>>>>);

struct Sink(String, FsyncRecorder);

impl metrics::HistogramFn for Sink {
    fn record(&self, secs: f64) {
        let mut map = self.1.0.lock().expect("lock");
        let h = map.entry(self.0.clone()).or_insert_with(new_histogram);
        let _ = h.record((secs * 1e6).max(1.0) as u64);
    }
}

impl metrics::Recorder for FsyncRecorder {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::noop()
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::from_arc(Arc::new(Sink(key.name().to_owned(), self.clone())))
    }
}

impl FsyncRecorder {
    fn take(&self, name: &str) -> Histogram<u64> {
        self.0.lock().expect("lock").remove(name).unwrap_or_else(new_histogram)
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

struct Row {
    case: String,
    entries_per_sec: f64,
    syncs_per_sec: f64,
    lat: Histogram<u64>,
}

fn ms(h: &Histogram<u64>, q: f64) -> String {
    format!("{:.2}", h.value_at_quantile(q) as f64 / 1000.0)
}

fn raw_fdatasync(dir: &Path, secs: f64) -> anyhow::Result<Row> {
    let path = dir.join("raw-fdatasync.bin");
    let mut f = OpenOptions::new().create(true).truncate(true).write(true).open(&path).context("open raw file")?;
    let record = vec![0xabu8; ENTRY_BYTES];
    let mut lat = new_histogram();
    let (start, mut n) = (Instant::now(), 0u64);
    while start.elapsed().as_secs_f64() < secs {
        let t = Instant::now();
        f.write_all(&record)?;
        f.sync_data()?;
        lat.record(t.elapsed().as_micros().max(1) as u64)?;
        n += 1;
    }
    let el = start.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(Row {
        case: "disk: write+fdatasync, 256 B".into(),
        entries_per_sec: n as f64 / el,
        syncs_per_sec: n as f64 / el,
        lat,
    })
}

fn entries(from: u64, n: u64, data: &Bytes) -> Vec<TestEntry> {
    (from..from + n).map(|index| TestEntry { index, term: 1, data: data.clone() }).collect()
}

fn store_batches(dir: &Path, batch: u64, secs: f64, rec: &FsyncRecorder) -> anyhow::Result<Row> {
    let path = dir.join(format!("store-batch-{batch}"));
    let mut store: RocksStore<TestEntry, TestHardState> = RocksStore::open(&path)?;
    let data = Bytes::from(vec![0x5au8; ENTRY_BYTES]);
    rec.take(ballot_storage::metrics::WAL_FSYNC_DURATION);
    let (start, mut next, mut syncs) = (Instant::now(), 1u64, 0u64);
    while start.elapsed().as_secs_f64() < secs {
        let mut b = Persist::new(PersistId(syncs + 1));
        b.entries = entries(next, batch, &data);
        store.write(&[b])?;
        next += batch;
        syncs += 1;
    }
    let el = start.elapsed().as_secs_f64();
    drop(store);
    std::fs::remove_dir_all(&path)?;
    Ok(Row {
        case: format!("RocksStore::write, {batch} x 256 B per sync"),
        entries_per_sec: (next - 1) as f64 / el,
        syncs_per_sec: syncs as f64 / el,
        lat: rec.take(ballot_storage::metrics::WAL_FSYNC_DURATION),
    })
}

fn group_commit(dir: &Path, secs: f64, rec: &FsyncRecorder) -> anyhow::Result<Row> {
    let path = dir.join("store-group");
    let store: RocksStore<TestEntry, TestHardState> = RocksStore::open(&path)?;
    let data = Bytes::from(vec![0x5au8; ENTRY_BYTES]);
    rec.take(ballot_storage::metrics::WAL_FSYNC_DURATION);
    let syncs = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = Arc::clone(&syncs);
    let opts = GroupCommitOptions::new().queue_capacity(1024).max_group(1024);
    let gc = GroupCommit::spawn_with(store, opts, move |ack| {
        ack.expect("write failed");
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    })?;
    let start = Instant::now();
    let mut id = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        id += 1;
        let mut b = Persist::new(PersistId(id));
        b.entries = entries(id, 1, &data);
        gc.submit(b)?;
    }
    let store = gc.shutdown()?;
    let el = start.elapsed().as_secs_f64();
    anyhow::ensure!(store.last_index() == Some(id), "group commit lost entries");
    drop(store);
    std::fs::remove_dir_all(&path)?;
    Ok(Row {
        case: "GroupCommit, 1 x 256 B batches, pipelined".into(),
        entries_per_sec: id as f64 / el,
        syncs_per_sec: syncs.load(std::sync::atomic::Ordering::Relaxed) as f64 / el,
        lat: rec.take(ballot_storage::metrics::WAL_FSYNC_DURATION),
    })
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let secs: f64 = arg("--secs").map(|s| s.parse()).transpose()?.unwrap_or(5.0);
    let base: PathBuf = arg("--dir").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("ballot-storage-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let rec = FsyncRecorder::default();
    metrics::set_global_recorder(rec.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;

    println!("ballot-storage benchmark in {} ({secs} s per case)\n", dir.display());
    let mut rows = vec![raw_fdatasync(&dir, secs)?];
    for batch in [1, 16, 256] {
        rows.push(store_batches(&dir, batch, secs, &rec)?);
    }
    rows.push(group_commit(&dir, secs, &rec)?);
    std::fs::remove_dir_all(&dir)?;

    let disk = rows[0].syncs_per_sec;
    println!(
        "| case | durable entries/s | syncs/s | fsync p50 ms | p90 ms | p99 ms | p99.9 ms | syncs/s vs disk | entries/s vs \
         disk |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.0} | {} | {} | {} | {} | {:.2} | {:.2} |",
            r.case,
            r.entries_per_sec,
            r.syncs_per_sec,
            ms(&r.lat, 0.5),
            ms(&r.lat, 0.9),
            ms(&r.lat, 0.99),
            ms(&r.lat, 0.999),
            r.syncs_per_sec / disk,
            r.entries_per_sec / disk
        );
    }
    Ok(())
}
