//! The published analyses the measurements are compared with, the exact values of this
//! simulator's attack model, and confidence intervals.

/// Nakamoto (2008), section 11: the probability that an attacker with hash-rate share `q`
/// ever catches up with an honest chain that is `z` blocks ahead when the merchant
/// accepts, with the attacker's progress approximated as Poisson with mean `z q / p`
/// (the C code of the white paper).
#[must_use]
pub fn nakamoto(q: f64, z: u64) -> f64 {
    let p = 1.0 - q;
    if q >= p {
        return 1.0;
    }
    let lambda = z as f64 * (q / p);
    let mut sum = 1.0;
    let mut poisson = (-lambda).exp();
    for k in 0..=z {
        if k > 0 {
            poisson *= lambda / k as f64;
        }
        sum -= poisson * (1.0 - (q / p).powi(i32::try_from(z - k).unwrap_or(i32::MAX)));
    }
    sum.max(0.0)
}

/// `C(n, k)` as a float.
fn binomial(n: u64, k: u64) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// Rosenfeld (2014), "Analysis of hashrate-based double spending", the exact success
/// probability after `n` confirmations:
/// `r = 1 − Σ_{m=0}^{n} C(m+n−1, m) (pⁿ qᵐ − pᵐ qⁿ)` for `q < p` (1 otherwise, and for
/// `n = 0`). In his model the attacker, like Nakamoto's, wins once his branch is as long
/// as the honest one; equivalently, he needs a strict lead but starts with one
/// pre-mined block.
#[must_use]
pub fn rosenfeld(q: f64, n: u64) -> f64 {
    let p = 1.0 - q;
    if q >= p || n == 0 {
        return 1.0;
    }
    let n32 = i32::try_from(n).unwrap_or(i32::MAX);
    let mut sum = 0.0;
    for m in 0..=n {
        let m32 = i32::try_from(m).unwrap_or(i32::MAX);
        sum += binomial(m + n - 1, m) * (p.powi(n32) * q.powi(m32) - p.powi(m32) * q.powi(n32));
    }
    (1.0 - sum).clamp(0.0, 1.0)
}

/// Grunspan and Pérez-Marco (2017), "Double spend races", the closed form of the same
/// probability: `P(z) = I_{4pq}(z, 1/2)`, the regularized incomplete beta function
/// (1 for `z = 0` or `q ≥ 1/2`). It equals [`rosenfeld`]; computed here independently,
/// by Simpson's rule on `t^(z−1) (1−t)^(−1/2)` over `[0, 4pq]` and
/// `B(z, 1/2) = 2 · Π_{k=1}^{z−1} k / (k + 1/2)`.
#[must_use]
pub fn grunspan_perez_marco(q: f64, z: u64) -> f64 {
    let p = 1.0 - q;
    if q >= p || z == 0 {
        return 1.0;
    }
    let x = 4.0 * p * q;
    let power = i32::try_from(z - 1).unwrap_or(i32::MAX);
    let f = |t: f64| t.powi(power) / (1.0 - t).sqrt();
    const STEPS: u32 = 20_000;
    let h = x / f64::from(STEPS);
    let inner: f64 = (1..STEPS).map(|i| f(f64::from(i) * h) * if i % 2 == 1 { 4.0 } else { 2.0 }).sum();
    let integral = (f(0.0) + inner + f(x)) * h / 3.0;
    let beta = (1..z).fold(2.0, |b, k| b * k as f64 / (k as f64 + 0.5));
    (integral / beta).clamp(0.0, 1.0)
}

/// Probability that an attacker `deficit` blocks behind (negative: ahead) ever gets
/// strictly ahead before falling more than `give_up` blocks behind, each block being
/// his with probability `q` (gambler's ruin with two absorbing barriers).
#[must_use]
pub fn overtake(q: f64, deficit: i64, give_up: u64) -> f64 {
    if deficit < 0 {
        return 1.0;
    }
    let g = i64::try_from(give_up).unwrap_or(i64::MAX);
    if deficit > g {
        return 0.0;
    }
    let p = 1.0 - q;
    // Distance to the winning barrier (lead of one) and to the losing one.
    let x = deficit + 1;
    let n = g + 2;
    if (p - q).abs() < 1e-12 {
        return 1.0 - x as f64 / n as f64;
    }
    let s = q / p;
    let (sx, sn) = (s.powi(i32::try_from(x).unwrap_or(i32::MAX)), s.powi(i32::try_from(n).unwrap_or(i32::MAX)));
    ((sx - sn) / (1.0 - sn)).clamp(0.0, 1.0)
}

/// The exact success probability of this simulator's double-spend model: the honest
/// network finds blocks at rate `p`, the attacker at rate `q`; the merchant accepts when
/// the payment has `n` confirmations (at once for `n = 0`); the attacker starts `lead`
/// blocks ahead (0, or 1 with a pre-mined block), publishes as soon as his branch is
/// strictly longer after acceptance, and gives up when he falls more than `give_up`
/// blocks behind. When the `n`-th honest block is found the attacker has `m` blocks with
/// the negative binomial probability `C(m+n−1, m) pⁿ qᵐ`.
#[must_use]
pub fn race(q: f64, n: u64, lead: u64, give_up: u64) -> f64 {
    let p = 1.0 - q;
    let lead = i64::try_from(lead).unwrap_or(i64::MAX);
    if n == 0 {
        return overtake(q, -lead, give_up);
    }
    let n32 = i32::try_from(n).unwrap_or(i32::MAX);
    let ni = i64::try_from(n).unwrap_or(i64::MAX);
    let (mut win, mut mass) = (0.0, 0.0);
    // Only m ≤ n − lead leaves the attacker not yet ahead; every larger m wins at once.
    let mut m = 0u64;
    while i64::try_from(m).unwrap_or(i64::MAX) <= ni - lead {
        let pm = binomial(m + n - 1, m) * p.powi(n32) * q.powi(i32::try_from(m).unwrap_or(i32::MAX));
        win += pm * overtake(q, ni - i64::try_from(m).unwrap_or(0) - lead, give_up);
        mass += pm;
        m += 1;
    }
    (win + (1.0 - mass)).clamp(0.0, 1.0)
}

/// Eyal and Sirer (2014), "Majority is not enough", the selfish pool's share of the main
/// chain's blocks for hash-rate share `alpha` and tie-breaking `gamma`:
/// `[α(1−α)²(4α + γ(1−2α)) − α³] / [1 − α(1 + (2−α)α)]`.
#[must_use]
pub fn eyal_sirer(alpha: f64, gamma: f64) -> f64 {
    let a = alpha;
    (a * (1.0 - a).powi(2) * (4.0 * a + gamma * (1.0 - 2.0 * a)) - a.powi(3)) / (1.0 - a * (1.0 + (2.0 - a) * a))
}

/// The simple stale-block model: a block is stale when another is found within the
/// propagation delay `d`, `1 − e^(−d/T)`, for `ratio = d / T`.
#[must_use]
pub fn stale_simple(ratio: f64) -> f64 {
    1.0 - (-ratio).exp()
}

/// The same with the finder's own share removed (it does not race its own block):
/// `1 − e^(−(1 − 1/N) d/T)` for `N` equal miners.
#[must_use]
pub fn stale_others(ratio: f64, miners: usize) -> f64 {
    1.0 - (-(1.0 - 1.0 / miners.max(1) as f64) * ratio).exp()
}

/// The Wilson score interval (95 %) of `k` successes in `n` trials.
#[must_use]
pub fn wilson(k: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z: f64 = 1.959_964;
    let (k, n) = (k as f64, n as f64);
    let phat = k / n;
    let denom = 1.0 + z * z / n;
    let center = (phat + z * z / (2.0 * n)) / denom;
    let half = z * (phat * (1.0 - phat) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    let lo = if k == 0.0 { 0.0 } else { (center - half).max(0.0) };
    let hi = if k == n { 1.0 } else { (center + half).min(1.0) };
    (lo, hi)
}

/// Mean and the half-width of its normal-approximation 95 % interval.
#[must_use]
pub fn mean_interval(samples: &[f64]) -> (f64, f64) {
    let n = samples.len() as f64;
    if samples.is_empty() {
        return (0.0, 0.0);
    }
    let mean = samples.iter().sum::<f64>() / n;
    if samples.len() < 2 {
        return (mean, 0.0);
    }
    let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, 1.959_964 * (var / n).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nakamoto_matches_the_white_paper_table() {
        // Section 11 of the white paper, q = 0.1 and q = 0.3.
        let q1 = [1.0, 0.2045873, 0.0509779, 0.0131722, 0.0034552, 0.0009137, 0.0002428, 0.0000647, 0.0000173];
        for (z, want) in q1.iter().enumerate() {
            assert!((nakamoto(0.1, z as u64) - want).abs() < 5e-8, "z={z}: {}", nakamoto(0.1, z as u64));
        }
        assert!((nakamoto(0.1, 10) - 0.0000012).abs() < 5e-8);
        assert!((nakamoto(0.3, 5) - 0.1773523).abs() < 5e-8);
        assert!((nakamoto(0.3, 10) - 0.0416605).abs() < 5e-8);
        assert_eq!(nakamoto(0.5, 3), 1.0);
    }

    #[test]
    fn rosenfeld_is_the_race_with_one_pre_mined_block() {
        assert!((rosenfeld(0.1, 1) - 0.2).abs() < 1e-12);
        assert_eq!(rosenfeld(0.3, 0), 1.0);
        for q in [0.1, 0.2, 0.3, 0.4] {
            for n in [1, 2, 4, 6, 10] {
                let r = rosenfeld(q, n);
                assert!((race(q, n, 1, 10_000) - r).abs() < 1e-9, "q={q} n={n}");
                // Without the head start the attacker does worse.
                assert!(race(q, n, 0, 10_000) < r);
            }
        }
        // Nakamoto's Poisson shortcut underestimates the exact value at depth.
        assert!(nakamoto(0.3, 10) < rosenfeld(0.3, 10) && nakamoto(0.1, 6) < rosenfeld(0.1, 6));
        // Grunspan and Pérez-Marco's closed form is the same function.
        for q in [0.1, 0.2, 0.3, 0.4] {
            for n in [0, 1, 2, 4, 6, 10] {
                let (g, r) = (grunspan_perez_marco(q, n), rosenfeld(q, n));
                assert!((g - r).abs() <= 1e-7 * r + 1e-13, "q={q} n={n}: {g} vs {r}");
            }
        }
        // Known values from Rosenfeld's table: q = 10 %, 6 blocks: 0.0006 (0.059 %).
        assert!((rosenfeld(0.1, 6) - 0.000_592).abs() < 5e-6, "{}", rosenfeld(0.1, 6));
    }

    #[test]
    fn overtaking_and_giving_up() {
        assert_eq!(overtake(0.3, -1, 20), 1.0);
        assert!((overtake(0.3, 0, 10_000) - 0.3 / 0.7).abs() < 1e-12);
        assert!(overtake(0.3, 0, 3) < overtake(0.3, 0, 10_000));
        assert_eq!(overtake(0.3, 21, 20), 0.0);
        // No confirmations and no head start: q/p (the attacker must find the first block lead).
        assert!((race(0.2, 0, 0, 10_000) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn eyal_sirer_thresholds() {
        assert!((eyal_sirer(1.0 / 3.0, 0.0) - 1.0 / 3.0).abs() < 1e-12);
        assert!((eyal_sirer(0.25, 0.5) - 0.25).abs() < 1e-12);
        assert!(eyal_sirer(0.1, 0.0) < 0.1 && eyal_sirer(0.45, 0.0) > 0.45);
    }

    #[test]
    fn intervals() {
        let (lo, hi) = wilson(0, 100);
        assert_eq!(lo, 0.0);
        assert!((hi - 0.037).abs() < 0.001, "{hi}");
        let (lo, hi) = wilson(50, 100);
        assert!((lo - 0.404).abs() < 0.001 && (hi - 0.596).abs() < 0.001);
        let (m, h) = mean_interval(&[1.0, 2.0, 3.0]);
        assert!((m - 2.0).abs() < 1e-12 && (h - 1.959_964 / 3f64.sqrt()).abs() < 1e-9);
    }
}
