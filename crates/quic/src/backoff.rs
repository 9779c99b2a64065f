//! Capped exponential backoff with jitter, for reconnecting to peers.

use std::hash::{BuildHasher as _, Hasher as _};
use std::time::Duration;

use ballot_core::SeededRng;

/// Delays of `min`, `2·min`, `4·min`, … capped at `max`; each delay is drawn uniformly
/// from its upper half (so peers that failed together do not retry in lockstep).
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    rng: SeededRng,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration, seed: u64) -> Self {
        Backoff { min, max: max.max(min), next: min, rng: SeededRng::new(seed) }
    }

    /// A seed that differs between processes and calls.
    pub(crate) fn random_seed() -> u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
        h.finish()
    }

    /// The delay before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (base * 2).min(self.max);
        let half = u64::try_from(base.as_nanos() / 2).unwrap_or(u64::MAX / 2);
        Duration::from_nanos(half + self.rng.gen_range(0..half + 1))
    }

    /// Starts over from `min` (after a connection succeeded).
    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter_and_resets() {
        let (min, max) = (Duration::from_millis(50), Duration::from_millis(1000));
        let mut b = Backoff::new(min, max, 7);
        let mut bases = vec![];
        for _ in 0..10 {
            let d = b.next_delay();
            bases.push(d);
        }
        let expected_base = [50u64, 100, 200, 400, 800, 1000, 1000, 1000, 1000, 1000];
        for (d, base) in bases.iter().zip(expected_base) {
            let base = Duration::from_millis(base);
            assert!(*d >= base / 2 && *d <= base, "{d:?} not within [{:?}, {base:?}]", base / 2);
        }
        assert!(bases[5..].windows(2).any(|w| w[0] != w[1]), "delays must be jittered: {bases:?}");
        b.reset();
        assert!(b.next_delay() <= min, "reset starts over");
    }
}
