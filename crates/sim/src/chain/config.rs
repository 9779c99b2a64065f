//! The configuration of one chain simulation, and its per-seed randomisation.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ballot_core::{NodeId, SeededRng};
use ballot_ledger::{Keypair, PublicKey};
use ballot_pow::{Block, ChainParams};

use super::clients::ClientConfig;
use super::faults::{ChainFault, random_plan};
use crate::net::NetConfig;

/// The chain id every simulated transfer is signed for.
pub const CHAIN_ID: u32 = 0x00ba_1107;
/// Genesis time (Unix seconds); virtual time starts here, since `ballot_pow::Chain`
/// reads `now` as time since the Unix epoch.
pub const GENESIS_TIME: u32 = 1_700_000_000;

/// Healing and settling time at the end of a randomized run.
pub(crate) const SETTLE: Duration = Duration::from_secs(60);

thread_local! {
    /// Test keys already derived on this thread (deriving one costs a scalar
    /// multiplication, and every run needs the same few).
    static KEYS: RefCell<HashMap<u64, Arc<Keypair>>> = RefCell::new(HashMap::new());
}

/// `Keypair::for_testing(n)`, derived once per thread.
pub(crate) fn test_key(n: u64) -> Arc<Keypair> {
    KEYS.with(|keys| keys.borrow_mut().entry(n).or_insert_with(|| Arc::new(Keypair::for_testing(n))).clone())
}

/// The key the genesis coinbase pays (the wallets' faucet).
pub(crate) fn faucet_key() -> Arc<Keypair> {
    test_key(10_000)
}

/// The coinbase key of node index `i`.
pub(crate) fn miner_key(i: usize) -> Arc<Keypair> {
    test_key(1 + i as u64)
}

/// The key of plain wallet `j`.
pub(crate) fn wallet_key(j: usize) -> Arc<Keypair> {
    test_key(20_000 + j as u64)
}

/// How the Byzantine miner behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ByzantineProfile {
    /// Probability that a block it finds is made to break a rule.
    pub invalid: f64,
    /// Probability that a valid block it finds starts (or extends) a withheld branch,
    /// released after an exponential delay of mean three block intervals.
    pub withhold: f64,
}

/// Everything one chain simulation is made of. A run is a pure function of this value.
#[derive(Clone, Debug)]
pub struct ChainSimConfig {
    /// The seed of the run's one random generator.
    pub seed: u64,
    /// Hash-rate share of each node (0: a relay-only node). They sum to 1.
    pub shares: Vec<f64>,
    /// The Byzantine miner (a node index) and its behaviour, if any.
    pub byzantine: Option<(usize, ByzantineProfile)>,
    /// The consensus rules every node runs.
    pub params: ChainParams,
    /// Blocks per target spacing the whole network finds at the proof-of-work limit; the
    /// rate per block at harder targets scales down with their work.
    pub hash_factor: f64,
    /// The weather at the start.
    pub net: NetConfig,
    /// Fault actions, at offsets from the start.
    pub faults: Vec<(Duration, ChainFault)>,
    /// When the network is healed, every node restarted and the weather calmed for good
    /// (offset from the start).
    pub heal_at: Duration,
    /// Virtual time after `heal_at` before the run may end (it ends at the first
    /// moment after that when every honest node has the same tip).
    pub settle: Duration,
    /// Period of each node's tip announcement to its peers (`None`: no announcements).
    pub sync_interval: Option<Duration>,
    /// Each node's clock offset from virtual time, in milliseconds.
    pub clock_skew_ms: Vec<i64>,
    /// Wallet traffic, if any.
    pub clients: Option<ClientConfig>,
    /// Range of the delay after which a stored block is durable.
    pub disk_delay: (Duration, Duration),
    /// [`TipConvergence`](super::TipConvergence)'s allowance for new blocks, in block
    /// intervals (the bound adds the sync interval and network delays).
    pub convergence_intervals: u32,
    /// The command that replays this run.
    pub replay: String,
}

/// The rules the simulation runs by default: `ChainParams::testing` (limit `0x2000ffff`,
/// 10 s blocks, retarget every 8 blocks, maturity 2, halving every 100 blocks), genesis
/// paying `genesis_to`.
#[must_use]
pub fn base_params(genesis_to: PublicKey) -> ChainParams {
    ChainParams::testing(CHAIN_ID, genesis_to, GENESIS_TIME)
}

/// Rebuilds the genesis block after the ledger parameters changed.
pub(crate) fn regenesis(params: &mut ChainParams, genesis_to: PublicKey) {
    let bits = params.genesis.header.bits;
    params.genesis = Block::genesis(&params.ledger, genesis_to, GENESIS_TIME, bits);
}

fn pick<T: Copy>(rng: &mut SeededRng, options: &[T]) -> T {
    options[usize::try_from(rng.gen_range(0..options.len() as u64)).unwrap_or(0)]
}

impl ChainSimConfig {
    /// A fault-free configuration for measurements: the given shares, rules and weather,
    /// no wallets, no Byzantine miner, no tip announcements, durable writes at once.
    #[must_use]
    pub fn plain(seed: u64, shares: Vec<f64>, params: ChainParams, net: NetConfig) -> Self {
        let n = shares.len();
        ChainSimConfig {
            seed,
            shares,
            byzantine: None,
            params,
            hash_factor: 1.0,
            net,
            faults: Vec::new(),
            heal_at: Duration::ZERO,
            settle: Duration::ZERO,
            sync_interval: None,
            clock_skew_ms: vec![0; n],
            clients: None,
            disk_delay: (Duration::ZERO, Duration::ZERO),
            convergence_intervals: 60,
            replay: String::new(),
        }
    }

    /// The randomized configuration of `seed` on `nodes` nodes for `duration` of
    /// virtual time: hash-rate shares, rule variations (retarget interval, halving
    /// interval, coinbase maturity, orphan pool size), hash power, clock skews, wallet
    /// traffic, a Byzantine miner on about half the seeds, and a fault schedule over
    /// `[0, duration − 60 s)` followed by the final heal.
    #[must_use]
    pub fn randomized(seed: u64, nodes: usize, duration: Duration) -> Self {
        let mut rng = SeededRng::new(seed ^ 0x706f_775f_7369_6d00);
        let n = nodes.max(1);
        let byzantine = (n >= 2 && rng.gen_bool(0.5)).then(|| {
            let i = usize::try_from(rng.gen_range(0..n as u64)).unwrap_or(0);
            (
                i,
                ByzantineProfile {
                    invalid: pick(&mut rng, &[0.2, 0.5, 0.8]),
                    withhold: pick(&mut rng, &[0.0, 0.3, 0.6]),
                },
            )
        });
        let shares = random_shares(&mut rng, n, byzantine.map(|(i, _)| i));

        let faucet = faucet_key().public();
        let mut params = base_params(faucet);
        params.retarget_interval = pick(&mut rng, &[0, 4, 8, 16]);
        params.ledger.halving_interval = pick(&mut rng, &[5, 10, 25, 100]);
        params.ledger.coinbase_maturity = pick(&mut rng, &[0, 1, 2, 5]);
        params.max_orphans = pick(&mut rng, &[1, 2, 8]);
        regenesis(&mut params, faucet);

        let interval = Duration::from_secs(params.target_spacing);
        let heal_at = duration.saturating_sub(SETTLE);
        let ids: Vec<NodeId> = (1..=n as u64).map(NodeId).collect();
        let faults = random_plan(&mut rng, &ids, heal_at, interval);
        let clock_skew_ms = (0..n).map(|_| i64::try_from(rng.gen_range(0..10_001)).unwrap_or(0) - 5_000).collect();
        let clients = ClientConfig {
            gap: Duration::from_millis(pick(&mut rng, &[2_000, 5_000, 10_000])),
            double_spend: pick(&mut rng, &[0.1, 0.25]),
            invalid: 0.1,
            wallets: 3,
        };
        let disk_max = pick(&mut rng, &[1, 20, 200]);
        ChainSimConfig {
            seed,
            shares,
            byzantine,
            hash_factor: pick(&mut rng, &[1.0, 2.0, 3.0]),
            params,
            net: NetConfig::calm(),
            faults,
            heal_at,
            settle: SETTLE,
            sync_interval: Some(Duration::from_secs(1)),
            clock_skew_ms,
            clients: Some(clients),
            disk_delay: (Duration::from_micros(300), Duration::from_millis(disk_max)),
            convergence_intervals: 60,
            replay: String::new(),
        }
    }

    /// Checks the values against each other.
    ///
    /// # Errors
    /// A description of the first bad value.
    pub fn validate(&self) -> Result<(), String> {
        let n = self.shares.len();
        if n == 0 || n > 64 {
            return Err(format!("{n} nodes: the chain simulator runs 1 to 64 nodes"));
        }
        if self.shares.iter().any(|s| !s.is_finite() || *s < 0.0) {
            return Err(format!("hash-rate shares {:?} must be finite and non-negative", self.shares));
        }
        let sum: f64 = self.shares.iter().sum();
        if (sum - 1.0).abs() > 1e-6 {
            return Err(format!("hash-rate shares {:?} sum to {sum}, not 1", self.shares));
        }
        if let Some((i, p)) = self.byzantine {
            if i >= n {
                return Err(format!("Byzantine node index {i} is not below the node count {n}"));
            }
            if !(0.0..=1.0).contains(&p.invalid) || !(0.0..=1.0).contains(&p.withhold) {
                return Err(format!("Byzantine probabilities {p:?} are not within [0, 1]"));
            }
        }
        if self.clock_skew_ms.len() != n {
            return Err(format!("{} clock skews for {n} nodes", self.clock_skew_ms.len()));
        }
        if self.hash_factor.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) || !self.hash_factor.is_finite() {
            return Err(format!("hash factor {} must be positive", self.hash_factor));
        }
        if self.params.target_spacing == 0 {
            return Err("target spacing must be at least one second".to_owned());
        }
        if self.disk_delay.0 > self.disk_delay.1 {
            return Err(format!("disk delay range {:?} is reversed", self.disk_delay));
        }
        if self.sync_interval.is_some_and(|s| s.is_zero()) {
            return Err("the sync interval must be positive".to_owned());
        }
        self.net.validate()
    }

    /// The target block interval.
    #[must_use]
    pub fn block_interval(&self) -> Duration {
        Duration::from_secs(self.params.target_spacing)
    }
}

/// Random shares: equal on a quarter of the seeds, otherwise weights 1–9; on one seed in
/// eight one honest node does not mine (a relay-only node). The Byzantine miner keeps at
/// most 45 %.
fn random_shares(rng: &mut SeededRng, n: usize, byzantine: Option<usize>) -> Vec<f64> {
    let equal = rng.gen_bool(0.25);
    let mut w: Vec<f64> = (0..n).map(|_| if equal { 1.0 } else { rng.gen_range(1..10) as f64 }).collect();
    if n >= 3 && rng.gen_bool(0.125) {
        let i = usize::try_from(rng.gen_range(0..n as u64)).unwrap_or(0);
        if Some(i) != byzantine {
            w[i] = 0.0;
        }
    }
    let mut sum: f64 = w.iter().sum();
    if let Some(b) = byzantine
        && n >= 2
        && w[b] / sum > 0.45
    {
        // Scale the Byzantine weight down to 45 % of the total.
        let others = sum - w[b];
        w[b] = others * 0.45 / 0.55;
        sum = others + w[b];
    }
    w.iter().map(|x| x / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn randomized_configs_are_valid_deterministic_and_varied() {
        let d = Duration::from_secs(300);
        let mut byz = 0;
        for seed in 0..200 {
            let a = ChainSimConfig::randomized(seed, 5, d);
            a.validate().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            let b = ChainSimConfig::randomized(seed, 5, d);
            assert_eq!(a.shares, b.shares);
            assert_eq!(a.faults, b.faults);
            assert_eq!(a.params, b.params);
            if let Some((i, _)) = a.byzantine {
                assert!(a.shares[i] <= 0.45 + 1e-9, "{:?}", a.shares);
                byz += 1;
            }
        }
        assert!((60..140).contains(&byz), "{byz} of 200 seeds with a Byzantine miner");
        let mut bad = ChainSimConfig::randomized(1, 3, d);
        bad.shares = vec![0.5, 0.5, 0.5];
        assert!(bad.validate().is_err());
    }
}
