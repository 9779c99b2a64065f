//! Latency recording (an HDR histogram in microseconds) and its summaries.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Request latencies of one run (or one client, merged at the end).
#[derive(Clone, Debug)]
pub struct Latencies {
    hist: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

/// The latency figures of a run, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Fastest request.
    pub min: f64,
    /// Mean.
    pub avg: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest request.
    pub max: f64,
}

/// One bar of the text histogram: requests of latency up to `upper_ms` (and above the
/// previous bucket's bound).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Upper bound, milliseconds.
    pub upper_ms: f64,
    /// Requests in the bucket.
    pub count: u64,
}

const MAX_MICROS: u64 = 3_600_000_000;

impl Latencies {
    /// An empty recorder (1 µs to 1 h, 3 significant digits).
    #[must_use]
    pub fn new() -> Self {
        Latencies { hist: Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds") }
    }

    /// Records one request's latency (clamped to 1 µs..1 h).
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(MAX_MICROS).clamp(1, MAX_MICROS);
        self.hist.record(micros).expect("clamped into the histogram's range");
    }

    /// Adds another recorder's samples.
    pub fn merge(&mut self, other: &Latencies) {
        self.hist.add(&other.hist).expect("histograms of the same bounds");
    }

    /// How many requests were recorded.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Min, mean, percentiles and max, in milliseconds (all zero when empty).
    #[must_use]
    pub fn summary(&self) -> LatencySummary {
        if self.hist.is_empty() {
            return LatencySummary::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        let q = |quantile: f64| ms(self.hist.value_at_quantile(quantile));
        LatencySummary {
            min: ms(self.hist.min()),
            avg: self.hist.mean() / 1000.0,
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p999: q(0.999),
            max: ms(self.hist.max()),
        }
    }

    /// `n` buckets of equal width between the fastest and the slowest request, as etcd's
    /// tool prints them (empty when nothing was recorded).
    #[must_use]
    pub fn buckets(&self, n: usize) -> Vec<Bucket> {
        if self.hist.is_empty() || n == 0 {
            return Vec::new();
        }
        let (lo, hi) = (self.hist.min(), self.hist.max());
        let width = (hi - lo).div_ceil(n as u64).max(1);
        let buckets = usize::try_from((hi - lo).div_ceil(width).max(1)).unwrap_or(n).min(n);
        let mut counts = vec![0u64; buckets];
        for v in self.hist.iter_recorded() {
            let value = v.value_iterated_to().clamp(lo, hi);
            let i = usize::try_from((value - lo).saturating_sub(1) / width).unwrap_or(0).min(buckets - 1);
            counts[i] += v.count_at_value();
        }
        counts
            .into_iter()
            .enumerate()
            .map(|(i, count)| Bucket { upper_ms: (lo + width * (i as u64 + 1)).min(hi) as f64 / 1000.0, count })
            .collect()
    }
}

/// Draws buckets as etcd's tool does (`  0.512 [  1234]  |∎∎∎∎∎`), the bars scaled to
/// `width` characters for the fullest bucket. `first_ms` is the fastest request.
#[must_use]
pub fn text_histogram(first_ms: f64, buckets: &[Bucket], width: usize) -> String {
    let most = buckets.iter().map(|b| b.count).max().unwrap_or(0).max(1);
    let mut out = format!("  {first_ms:>9.3} [{:>8}]\t|\n", 0);
    for b in buckets {
        let bar = usize::try_from(b.count * width as u64 / most).unwrap_or(width);
        out.push_str(&format!("  {:>9.3} [{:>8}]\t|{}\n", b.upper_ms, b.count, "∎".repeat(bar)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut l = Latencies::new();
        for ms in 1..=1000u64 {
            l.record(Duration::from_millis(ms));
        }
        let s = l.summary();
        assert_eq!(l.count(), 1000);
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.002 + 0.001;
        assert!(close(s.min, 1.0), "{s:?}");
        assert!(close(s.max, 1000.0), "{s:?}");
        assert!(close(s.avg, 500.5), "{s:?}");
        assert!(close(s.p50, 500.0), "{s:?}");
        assert!(close(s.p90, 900.0), "{s:?}");
        assert!(close(s.p99, 990.0), "{s:?}");
        assert!(close(s.p999, 999.0), "{s:?}");
    }

    #[test]
    fn merging_adds_samples_and_empty_is_all_zero() {
        let mut a = Latencies::new();
        let mut b = Latencies::new();
        assert_eq!(a.summary(), LatencySummary::default());
        assert!(a.buckets(10).is_empty());
        a.record(Duration::from_micros(100));
        b.record(Duration::from_micros(300));
        b.record(Duration::ZERO);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert!((a.summary().min - 0.001).abs() < 1e-9, "zero is clamped to 1 µs");
        assert!((a.summary().max - 0.3).abs() < 1e-3);
    }

    #[test]
    fn buckets_cover_every_sample() {
        let mut l = Latencies::new();
        for us in [100u64, 150, 200, 900, 1000, 1000, 5000] {
            l.record(Duration::from_micros(us));
        }
        let buckets = l.buckets(10);
        assert!(buckets.len() <= 10);
        assert_eq!(buckets.iter().map(|b| b.count).sum::<u64>(), 7);
        assert!((buckets.last().unwrap().upper_ms - 5.0).abs() < 0.01);
        assert!(buckets.windows(2).all(|w| w[0].upper_ms < w[1].upper_ms));
        let text = text_histogram(l.summary().min, &buckets, 40);
        assert_eq!(text.lines().count(), buckets.len() + 1);
        assert!(text.contains('∎'));
    }

    #[test]
    fn one_sample_is_counted_once() {
        let mut l = Latencies::new();
        l.record(Duration::from_millis(2));
        let b = l.buckets(10);
        assert_eq!(b.iter().map(|b| b.count).sum::<u64>(), 1);
        assert!((b.last().unwrap().upper_ms - 2.0).abs() < 0.01);
    }
}
