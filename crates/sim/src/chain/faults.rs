//! The chain simulator's fault schedule: partitions, one-way cuts, weather, crashes
//! and restarts, timed in block intervals so that forks grow several blocks deep.

use std::time::Duration;

use ballot_core::{NodeId, SeededRng};

use crate::net::NetConfig;

/// One action of a chain fault schedule.
#[derive(Clone, Debug, PartialEq)]
pub enum ChainFault {
    /// Cut every link between the groups, both ways (replacing earlier cuts); nodes in
    /// no group form a group of their own.
    Partition(Vec<Vec<NodeId>>),
    /// Cut the links from every node of `from` to every node of `to`, one way only.
    CutOneWay {
        /// Senders whose messages are lost.
        from: Vec<NodeId>,
        /// Receivers that no longer hear them.
        to: Vec<NodeId>,
    },
    /// Restore every link.
    HealNetwork,
    /// Change loss, duplication, reordering and delay.
    Weather(NetConfig),
    /// Crash a node: it loses its index, mempool, orphans and every write not yet durable.
    Crash(NodeId),
    /// Restart a crashed node from its durable blocks.
    Restart(NodeId),
    /// Heal the network, calm the weather and restart every node, for good.
    HealAll,
}

impl ChainFault {
    /// A short name of the kind of fault, for statistics.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            ChainFault::Partition(_) => "partition",
            ChainFault::CutOneWay { .. } => "one-way cut",
            ChainFault::HealNetwork => "network heal",
            ChainFault::Weather(w) if w.drop > 0.0 => "lossy weather",
            ChainFault::Weather(w) if w.delay_max >= Duration::from_millis(100) => "slow weather",
            ChainFault::Weather(_) => "calm weather",
            ChainFault::Crash(_) => "crash",
            ChainFault::Restart(_) => "restart",
            ChainFault::HealAll => "final heal",
        }
    }
}

/// Slow but lossless links: 50 ms to a few seconds, so that blocks race each other.
fn slow(rng: &mut SeededRng) -> NetConfig {
    let delay_min = Duration::from_millis(rng.gen_range(50..500));
    NetConfig {
        delay_min,
        delay_max: delay_min + Duration::from_millis(rng.gen_range(100..3_000)),
        drop: 0.0,
        duplicate: if rng.gen_bool(0.3) { 0.05 } else { 0.0 },
        reorder: if rng.gen_bool(0.3) { 0.1 } else { 0.0 },
        reorder_delay: Duration::from_millis(rng.gen_range(10..1_000)),
    }
}

fn dur(rng: &mut SeededRng, lo: Duration, hi: Duration) -> Duration {
    let (lo, hi) = (lo.as_millis() as u64, hi.as_millis() as u64);
    Duration::from_millis(rng.gen_range(lo..hi.max(lo + 1)))
}

fn shuffle(rng: &mut SeededRng, v: &mut [NodeId]) {
    for i in (1..v.len()).rev() {
        let j = usize::try_from(rng.gen_range(0..i as u64 + 1)).unwrap_or(0);
        v.swap(i, j);
    }
}

/// A random schedule over `[0, chaos)` for a chain whose blocks come every `interval`:
/// partitions into two or three groups and one-way cuts lasting half an interval to a
/// dozen intervals, isolated nodes, lossy, slow and calm weather, crashes of one node or
/// of most nodes with restarts after a few milliseconds to several intervals. About one
/// seed in eight is calm. The final heal is not included (the simulator applies it at
/// `chaos`).
#[must_use]
pub fn random_plan(
    rng: &mut SeededRng,
    nodes: &[NodeId],
    chaos: Duration,
    interval: Duration,
) -> Vec<(Duration, ChainFault)> {
    let mut out = Vec::new();
    let n = nodes.len() as u64;
    if n == 0 || rng.gen_range(0..8) == 0 {
        return out;
    }
    // The pace of this seed: mean gap between faults, in intervals.
    let gap = interval * [1u32, 3, 8][usize::try_from(rng.gen_range(0..3)).unwrap_or(0)];
    let mut t = dur(rng, Duration::ZERO, interval * 3);
    while t < chaos {
        let node = nodes[usize::try_from(rng.gen_range(0..n)).unwrap_or(0)];
        match rng.gen_range(0..100) {
            0..=19 if n >= 2 => {
                let mut v = nodes.to_vec();
                shuffle(rng, &mut v);
                let k = if v.len() >= 4 && rng.gen_bool(0.3) { 3 } else { 2 };
                let mut groups = vec![Vec::new(); k];
                for (i, m) in v.into_iter().enumerate() {
                    let g = if i < k { i } else { usize::try_from(rng.gen_range(0..k as u64)).unwrap_or(0) };
                    groups[g].push(m);
                }
                out.push((t, ChainFault::Partition(groups)));
                out.push((t + dur(rng, interval / 2, interval * 12), ChainFault::HealNetwork));
            }
            20..=29 if n >= 2 => {
                let mut v = nodes.to_vec();
                shuffle(rng, &mut v);
                let cut = usize::try_from(rng.gen_range(1..n)).unwrap_or(1);
                let to = v.split_off(cut);
                out.push((t, ChainFault::CutOneWay { from: v, to }));
                out.push((t + dur(rng, interval / 2, interval * 6), ChainFault::HealNetwork));
            }
            30..=39 if n >= 2 => {
                out.push((t, ChainFault::Partition(vec![vec![node]])));
                out.push((t + dur(rng, interval / 2, interval * 10), ChainFault::HealNetwork));
            }
            40..=49 => out.push((t, ChainFault::Weather(NetConfig::stormy(rng)))),
            50..=59 => out.push((t, ChainFault::Weather(slow(rng)))),
            60..=64 => out.push((t, ChainFault::Weather(NetConfig::calm()))),
            65..=84 => {
                out.push((t, ChainFault::Crash(node)));
                let down = if rng.gen_bool(0.4) {
                    dur(rng, Duration::from_millis(1), interval / 5)
                } else {
                    dur(rng, interval / 5, interval * 6)
                };
                out.push(((t + down).min(chaos), ChainFault::Restart(node)));
            }
            85..=89 => {
                let mut victims = nodes.to_vec();
                shuffle(rng, &mut victims);
                victims.truncate(nodes.len() / 2 + 1);
                for v in victims {
                    out.push((t, ChainFault::Crash(v)));
                    out.push((
                        (t + dur(rng, Duration::from_millis(1), interval * 3)).min(chaos),
                        ChainFault::Restart(v),
                    ));
                }
            }
            _ => out.push((t, ChainFault::HealNetwork)),
        }
        t += dur(rng, gap / 4, gap * 2);
    }
    out.retain(|(at, _)| *at < chaos);
    out.sort_by_key(|(at, _)| *at);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_deterministic_sorted_within_the_chaos_and_varied() {
        let nodes: Vec<NodeId> = (1..=5).map(NodeId).collect();
        let chaos = Duration::from_secs(300);
        let interval = Duration::from_secs(10);
        let mut kinds = std::collections::BTreeSet::new();
        for seed in 0..60 {
            let a = random_plan(&mut SeededRng::new(seed), &nodes, chaos, interval);
            assert_eq!(a, random_plan(&mut SeededRng::new(seed), &nodes, chaos, interval));
            assert!(a.windows(2).all(|w| w[0].0 <= w[1].0));
            assert!(a.iter().all(|(t, _)| *t < chaos));
            kinds.extend(a.iter().map(|(_, f)| f.kind()));
        }
        assert_eq!(kinds.len(), 8, "{kinds:?}");
    }
}
