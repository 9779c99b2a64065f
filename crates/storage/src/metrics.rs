//! Metric names (through the `metrics` facade; the binary installs the exporter).

use std::time::Duration;

/// Latency of the synced RocksDB write that makes a group of batches durable (etcd's
/// `disk_wal_fsync_duration_seconds`).
pub const WAL_FSYNC_DURATION: &str = "ballot_disk_wal_fsync_duration_seconds";
/// Latency of a whole commit: encoding the batches, the synced write, bookkeeping (etcd's
/// `disk_backend_commit_duration_seconds`).
pub const BACKEND_COMMIT_DURATION: &str = "ballot_disk_backend_commit_duration_seconds";
/// Synced writes (one per group commit).
pub const SYNCED_WRITES: &str = "ballot_disk_synced_writes_total";
/// `Persist` batches made durable.
pub const PERSIST_BATCHES: &str = "ballot_disk_persist_batches_total";
/// Log entries made durable.
pub const LOG_ENTRIES: &str = "ballot_disk_log_entries_written_total";

/// Registers the descriptions of this crate's metrics with the installed recorder.
/// Idempotent; stores call it when they open, call it again after installing a recorder.
pub fn describe_metrics() {
    metrics::describe_histogram!(
        WAL_FSYNC_DURATION,
        metrics::Unit::Seconds,
        "Latency of the synced write that makes a group of Persist batches durable"
    );
    metrics::describe_histogram!(
        BACKEND_COMMIT_DURATION,
        metrics::Unit::Seconds,
        "Latency of a whole storage commit: encoding, synced write and bookkeeping"
    );
    metrics::describe_counter!(SYNCED_WRITES, "Synced writes to the storage backend (one per group commit)");
    metrics::describe_counter!(PERSIST_BATCHES, "Persist batches made durable");
    metrics::describe_counter!(LOG_ENTRIES, "Log entries made durable");
}

pub(crate) fn record_fsync(d: Duration) {
    metrics::histogram!(WAL_FSYNC_DURATION).record(d.as_secs_f64());
    metrics::counter!(SYNCED_WRITES).increment(1);
}

pub(crate) fn record_commit(d: Duration, batches: usize, entries: usize) {
    metrics::histogram!(BACKEND_COMMIT_DURATION).record(d.as_secs_f64());
    metrics::counter!(PERSIST_BATCHES).increment(batches as u64);
    metrics::counter!(LOG_ENTRIES).increment(entries as u64);
}
