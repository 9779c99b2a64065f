//! A benchmark harness for ballot's key-value database, modelled on etcd's `benchmark`
//! tool, so that ballot's numbers can be set side by side with etcd's from the same
//! harness on the same machine.
//!
//! * [`Spec`] describes a workload (`put` or `range`, clients, connections, total
//!   requests, key and value sizes, sequential or random keys, read consistency);
//! * [`run`] drives any [`Target`] with closed-loop clients spread over the target's
//!   connections, recording every request's latency in an HDR histogram, and returns a
//!   [`BenchResult`] (throughput, min/avg/p50/p90/p99/p99.9/max, a histogram) that
//!   prints as text or serializes to JSON;
//! * [`BallotTarget`] talks to a ballot-kvd cluster through ballot-client; with the
//!   `etcd` feature, `EtcdTarget` talks to etcd through the `etcd-client` crate.
//!
//! `ballot bench put|range …` (the CLI) and the `ballot-bench` binary (used by
//! `cargo xtask bench --vs etcd`) are built on it.
//!
//! ```
//! use ballot_bench::{Op, Spec};
//!
//! let spec = Spec { op: Op::Put, clients: 100, conns: 10, total: 10_000, ..Spec::default() };
//! spec.validate().unwrap();
//! assert_eq!(spec.keys().key(42).len(), spec.key_size);
//! ```

mod ballot;
pub mod cli;
#[cfg(feature = "etcd")]
mod etcd;
mod hist;
mod report;
mod runner;
mod workload;

pub use ballot::BallotTarget;
#[cfg(feature = "etcd")]
pub use etcd::EtcdTarget;
pub use hist::{Bucket, Latencies, LatencySummary};
pub use report::BenchResult;
pub use runner::{Progress, Target, run};
pub use workload::{Keys, Op, ReadConsistency, Spec};

/// What can go wrong in a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The workload's parameters are inconsistent (zero clients, a key space that does
    /// not fit the key size, …).
    #[error("invalid benchmark: {0}")]
    InvalidSpec(String),
    /// The target could not be reached or set up.
    #[error("cannot use {target}: {detail}")]
    Connect {
        /// Which system.
        target: String,
        /// What failed.
        detail: String,
    },
    /// One request failed (the runner counts these; it is an error of the run only when
    /// nothing succeeded).
    #[error("request failed: {0}")]
    Request(String),
    /// Every request of the run failed.
    #[error("all {count} requests failed; the first error: {first}")]
    AllFailed {
        /// How many requests failed.
        count: u64,
        /// The first failure.
        first: String,
    },
}
