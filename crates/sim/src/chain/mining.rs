//! Mining without burning CPU: exponential waiting times, and nonce grinding at easy
//! targets.

use std::time::Duration;

use ballot_core::SeededRng;
use ballot_pow::{Block, CompactTarget, NonceScanner, U256, block_work};

/// A 256-bit number as a float (rounded).
pub(crate) fn u256_to_f64(v: U256) -> f64 {
    v.0.iter().rev().fold(0.0, |acc, &limb| acc * 18_446_744_073_709_551_616.0 + limb as f64)
}

/// Expected hashes to find a block at `bits`.
pub(crate) fn work_f64(bits: CompactTarget) -> f64 {
    u256_to_f64(block_work(bits)).max(1.0)
}

/// A uniform float in `(0, 1]`.
pub(crate) fn unit_open(rng: &mut SeededRng) -> f64 {
    ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}

/// A waiting time of an exponential distribution with `rate` events per second
/// (`None` if the rate is not positive).
pub(crate) fn exponential(rng: &mut SeededRng, rate: f64) -> Option<Duration> {
    if rate.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) || !rate.is_finite() {
        return None;
    }
    let secs = -unit_open(rng).ln() / rate;
    Some(Duration::from_secs_f64(secs.min(1e9)))
}

/// Grinds the nonce of `block` until its hash meets its own `bits`. Returns `false` if
/// `bits` is unusable or no nonce works (then change the time and retry).
pub(crate) fn grind(block: &mut Block) -> bool {
    let Ok(scanner) = NonceScanner::new(&block.header) else { return false };
    match scanner.scan(0..=u32::MAX) {
        Some(found) => {
            block.header.nonce = found.nonce;
            true
        }
        None => false,
    }
}

/// Sets a nonce whose hash does *not* meet the block's target (a block without proof of
/// work).
pub(crate) fn unground(block: &mut Block) {
    let target = block.header.bits.to_target().unwrap_or(U256::MAX);
    for nonce in 0..u32::MAX {
        block.header.nonce = nonce;
        if U256::from_le_bytes(block.hash().as_bytes()) > target {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_and_waiting_times() {
        // The test limit 0x2000ffff: about 256 hashes per block.
        let w = work_f64(CompactTarget(0x2000_ffff));
        assert!((255.0..258.0).contains(&w), "{w}");
        assert!((u256_to_f64(U256::from_u64(1) << 200) - 2f64.powi(200)).abs() < 1e45);
        let mut rng = SeededRng::new(5);
        let n = 20_000;
        let mean: f64 = (0..n).map(|_| exponential(&mut rng, 0.5).unwrap().as_secs_f64()).sum::<f64>() / n as f64;
        assert!((mean - 2.0).abs() < 0.06, "{mean}");
        assert_eq!(exponential(&mut rng, 0.0), None);
    }
}
