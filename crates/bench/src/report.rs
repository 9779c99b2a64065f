//! The result of a run: JSON for scripts, etcd-style text for people.

use serde::{Deserialize, Serialize};

use crate::hist::text_histogram;
use crate::{Bucket, LatencySummary, Spec};

/// What one run measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    /// The system driven (`ballot`, `etcd`, …, as the target names itself).
    pub target: String,
    /// The workload's parameters.
    pub spec: Spec,
    /// Requests that succeeded.
    pub completed: u64,
    /// Requests that failed.
    pub errors: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// From the first request issued to the last one answered, seconds.
    pub duration_secs: f64,
    /// Successful requests per second.
    pub throughput: f64,
    /// Latency of the successful requests, milliseconds.
    pub latency_ms: LatencySummary,
    /// Ten equal-width latency buckets from the fastest to the slowest request.
    pub histogram: Vec<Bucket>,
    /// Whether the run stopped at its time limit before `spec.total` requests.
    pub timed_out: bool,
}

impl BenchResult {
    /// The summary as etcd's `benchmark` prints it, with the histogram.
    #[must_use]
    pub fn to_text(&self) -> String {
        let l = &self.latency_ms;
        let mut out = format!(
            "\nSummary ({} {}, {} clients, {} conns):\n  Total:\t{:.4} secs.\n  Slowest:\t{:.4} secs.\n  \
             Fastest:\t{:.4} secs.\n  Average:\t{:.4} secs.\n  Requests/sec:\t{:.4}\n  \
             Requests:\t{} ok, {} failed{}\n\nResponse time histogram (ms):\n",
            self.target,
            self.spec.op,
            self.spec.clients,
            self.spec.conns,
            self.duration_secs,
            l.max / 1000.0,
            l.min / 1000.0,
            l.avg / 1000.0,
            self.throughput,
            self.completed,
            self.errors,
            if self.timed_out { " (stopped at the time limit)" } else { "" },
        );
        out.push_str(&text_histogram(l.min, &self.histogram, 40));
        out.push_str(&format!(
            "\nLatency (ms): min {:.3}  avg {:.3}  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}\n",
            l.min, l.avg, l.p50, l.p90, l.p99, l.p999, l.max
        ));
        if let Some(e) = &self.first_error {
            out.push_str(&format!("First error: {e}\n"));
        }
        out
    }

    /// Pretty JSON.
    ///
    /// # Panics
    /// Never: every field serializes.
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a BenchResult serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Latencies, Op};

    fn sample() -> BenchResult {
        let mut l = Latencies::new();
        for us in [200u64, 400, 800] {
            l.record(std::time::Duration::from_micros(us));
        }
        BenchResult {
            target: "ballot".into(),
            spec: Spec { op: Op::Put, clients: 2, conns: 1, total: 3, ..Spec::default() },
            completed: 3,
            errors: 0,
            first_error: None,
            duration_secs: 0.5,
            throughput: 6.0,
            latency_ms: l.summary(),
            histogram: l.buckets(10),
            timed_out: false,
        }
    }

    #[test]
    fn json_has_the_documented_shape_and_round_trips() {
        let r = sample();
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        for field in ["target", "spec", "completed", "errors", "duration_secs", "throughput", "latency_ms", "histogram"]
        {
            assert!(v.get(field).is_some(), "missing {field}");
        }
        for field in ["min", "avg", "p50", "p90", "p99", "p999", "max"] {
            assert!(v["latency_ms"][field].is_f64(), "latency_ms.{field}");
        }
        assert_eq!(v["spec"]["op"], "put");
        assert_eq!(v["spec"]["consistency"], "linearizable");
        assert_eq!(v["spec"]["max_duration"], 600.0);
        assert!(v["histogram"][0]["upper_ms"].is_f64() && v["histogram"][0]["count"].is_u64());
        let back: BenchResult = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn text_reads_like_etcds() {
        let t = sample().to_text();
        assert!(t.contains("Requests/sec:\t6.0000"), "{t}");
        assert!(t.contains("p99.9"), "{t}");
        assert!(t.contains("Response time histogram"), "{t}");
    }
}
