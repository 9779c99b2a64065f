//! The simulated network: per-message random delay, loss, duplication and reordering,
//! and partitions made of directed link cuts (so one-way partitions are expressible).

use std::collections::BTreeSet;
use std::time::Duration;

use ballot_core::{NodeId, SeededRng};

/// How the network behaves ("the weather"); the fault schedule changes it over a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetConfig {
    /// Shortest one-way delay.
    pub delay_min: Duration,
    /// Longest ordinary one-way delay (uniform in between).
    pub delay_max: Duration,
    /// Probability that a message is lost.
    pub drop: f64,
    /// Probability that a message is delivered twice (independent delays).
    pub duplicate: f64,
    /// Probability that a message is held back by an extra delay of up to
    /// [`reorder_delay`](Self::reorder_delay), so that later messages overtake it.
    pub reorder: f64,
    /// The longest extra delay of a held-back message.
    pub reorder_delay: Duration,
}

impl NetConfig {
    /// A healthy LAN: 1–5 ms, nothing lost, duplicated or held back.
    #[must_use]
    pub fn calm() -> Self {
        NetConfig {
            delay_min: Duration::from_millis(1),
            delay_max: Duration::from_millis(5),
            drop: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
        }
    }

    /// A random bad-weather profile: some loss, duplication, reordering and jitter.
    #[must_use]
    pub fn stormy(rng: &mut SeededRng) -> Self {
        let delay_min = Duration::from_millis(rng.gen_range(1..10));
        let delay_max = delay_min + Duration::from_millis(rng.gen_range(1..80));
        NetConfig {
            delay_min,
            delay_max,
            drop: pick(rng, &[0.0, 0.01, 0.05, 0.1, 0.2, 0.35]),
            duplicate: pick(rng, &[0.0, 0.01, 0.05, 0.15]),
            reorder: pick(rng, &[0.0, 0.02, 0.1, 0.25]),
            reorder_delay: Duration::from_millis(rng.gen_range(20..400)),
        }
    }

    /// Checks the probabilities and delays.
    ///
    /// # Errors
    /// A description of the first bad value.
    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in [("drop", self.drop), ("duplicate", self.duplicate), ("reorder", self.reorder)] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("network {name} probability {p} is not within [0, 1]"));
            }
        }
        if self.delay_min > self.delay_max {
            return Err(format!("network delay_min {:?} exceeds delay_max {:?}", self.delay_min, self.delay_max));
        }
        Ok(())
    }
}

fn pick(rng: &mut SeededRng, options: &[f64]) -> f64 {
    options[usize::try_from(rng.gen_range(0..options.len() as u64)).unwrap_or(0)]
}

fn uniform(rng: &mut SeededRng, min: Duration, max: Duration) -> Duration {
    let (lo, hi) = (duration_nanos(min), duration_nanos(max));
    Duration::from_nanos(rng.gen_range(lo..hi.saturating_add(1)))
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Counters of what happened to messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Messages the protocols sent.
    pub sent: u64,
    /// Copies delivered to a live node.
    pub delivered: u64,
    /// Messages lost at random.
    pub dropped: u64,
    /// Messages (or copies) stopped by a partition.
    pub cut: u64,
    /// Copies that arrived at a crashed node.
    pub to_down: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Messages held back to be reordered.
    pub reordered: u64,
}

/// The network: its weather and the set of cut links.
#[derive(Clone, Debug)]
pub struct Network {
    config: NetConfig,
    cuts: BTreeSet<(NodeId, NodeId)>,
    /// What happened to messages so far.
    pub stats: NetStats,
}

impl Network {
    /// A whole network with the given weather.
    #[must_use]
    pub fn new(config: NetConfig) -> Self {
        Network { config, cuts: BTreeSet::new(), stats: NetStats::default() }
    }

    /// The weather in force.
    #[must_use]
    pub fn config(&self) -> NetConfig {
        self.config
    }

    /// Changes the weather.
    pub fn set_config(&mut self, config: NetConfig) {
        self.config = config;
    }

    /// Whether messages from `from` to `to` are cut.
    #[must_use]
    pub fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.cuts.contains(&(from, to))
    }

    /// Whether any link is cut.
    #[must_use]
    pub fn is_partitioned(&self) -> bool {
        !self.cuts.is_empty()
    }

    /// Cuts every link between nodes of different groups, both ways, replacing earlier
    /// cuts. Nodes of `all` in no group form one more group together.
    pub fn partition(&mut self, all: &[NodeId], groups: &[Vec<NodeId>]) {
        let group_of = |n: NodeId| groups.iter().position(|g| g.contains(&n)).unwrap_or(groups.len());
        self.cuts.clear();
        for &a in all {
            for &b in all {
                if a != b && group_of(a) != group_of(b) {
                    self.cuts.insert((a, b));
                }
            }
        }
    }

    /// Cuts the links from every node of `from` to every node of `to` (one way only), in
    /// addition to existing cuts.
    pub fn cut_one_way(&mut self, from: &[NodeId], to: &[NodeId]) {
        for &a in from {
            for &b in to {
                if a != b {
                    self.cuts.insert((a, b));
                }
            }
        }
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cuts.clear();
    }

    /// Decides the fate of one message: the delays after which copies arrive (empty if
    /// it is lost), updating the counters.
    pub fn route(&mut self, rng: &mut SeededRng, from: NodeId, to: NodeId) -> Vec<Duration> {
        self.stats.sent += 1;
        if self.is_cut(from, to) {
            self.stats.cut += 1;
            return Vec::new();
        }
        if rng.gen_bool(self.config.drop) {
            self.stats.dropped += 1;
            return Vec::new();
        }
        let copies = if rng.gen_bool(self.config.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        (0..copies)
            .map(|_| {
                let mut d = uniform(rng, self.config.delay_min, self.config.delay_max);
                if rng.gen_bool(self.config.reorder) {
                    self.stats.reordered += 1;
                    d += uniform(rng, Duration::ZERO, self.config.reorder_delay);
                }
                d
            })
            .collect()
    }

    /// A delay drawn from the current weather (for client traffic, which the fault
    /// model does not lose).
    pub fn client_delay(&self, rng: &mut SeededRng) -> Duration {
        uniform(rng, self.config.delay_min, self.config.delay_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u64]) -> Vec<NodeId> {
        v.iter().map(|&n| NodeId(n)).collect()
    }

    #[test]
    fn partitions_cut_between_groups_and_one_way_cuts_are_directed() {
        let all = ids(&[1, 2, 3, 4, 5]);
        let mut net = Network::new(NetConfig::calm());
        net.partition(&all, &[ids(&[1, 2]), ids(&[3, 4])]);
        assert!(!net.is_cut(NodeId(1), NodeId(2)));
        assert!(net.is_cut(NodeId(1), NodeId(3)) && net.is_cut(NodeId(3), NodeId(1)));
        assert!(net.is_cut(NodeId(5), NodeId(4)), "n5 was in no group: its own group");
        net.heal();
        net.cut_one_way(&ids(&[1]), &ids(&[2, 3]));
        assert!(net.is_cut(NodeId(1), NodeId(2)) && !net.is_cut(NodeId(2), NodeId(1)));
        let mut rng = SeededRng::new(1);
        assert!(net.route(&mut rng, NodeId(1), NodeId(3)).is_empty());
        assert_eq!(net.route(&mut rng, NodeId(3), NodeId(1)).len(), 1);
        assert_eq!((net.stats.sent, net.stats.cut), (2, 1));
    }

    #[test]
    fn weather_loses_duplicates_and_delays_within_bounds() {
        let cfg = NetConfig {
            delay_min: Duration::from_millis(2),
            delay_max: Duration::from_millis(9),
            drop: 0.2,
            duplicate: 0.1,
            reorder: 0.1,
            reorder_delay: Duration::from_millis(100),
        };
        cfg.validate().expect("valid");
        let mut net = Network::new(cfg);
        let mut rng = SeededRng::new(9);
        let mut copies = 0u64;
        for _ in 0..10_000 {
            for d in net.route(&mut rng, NodeId(1), NodeId(2)) {
                assert!(d >= Duration::from_millis(2) && d <= Duration::from_millis(109), "{d:?}");
                copies += 1;
            }
        }
        let s = net.stats;
        assert!((1_700..2_300).contains(&s.dropped), "{s:?}");
        assert!((600..1_000).contains(&s.duplicated), "{s:?}");
        assert!((700..1_100).contains(&s.reordered), "{s:?}");
        assert_eq!(copies, s.sent - s.dropped + s.duplicated);
        let bad = NetConfig { drop: 1.5, ..cfg };
        assert!(bad.validate().is_err());
    }
}
