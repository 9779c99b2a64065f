//! Fault schedules: timed actions that break and repair the simulated cluster.

use std::fmt;
use std::time::Duration;

use ballot_core::{Instant, NodeId, SeededRng};

use crate::algorithm::AdminAction;
use crate::net::NetConfig;

/// One action of a fault schedule.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
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
    /// Crash a node: it loses its volatile state and every write not yet durable.
    Crash(NodeId),
    /// Restart a crashed node from its durable state.
    Restart(NodeId),
    /// Crash `node` right after its next disk write completes (and it has acted on it:
    /// sent the votes and acknowledgements that waited for it), then restart it
    /// `downtime` later. The most dangerous moment for durability bugs.
    CrashAfterSync {
        /// The node.
        node: NodeId,
        /// How long it stays down.
        downtime: Duration,
    },
    /// Crash whichever node leads at that moment (if any) and restart it `downtime` later.
    CrashLeader {
        /// How long it stays down.
        downtime: Duration,
    },
    /// Cut whichever node leads at that moment off from every other node, both ways
    /// (replacing earlier cuts).
    IsolateLeader,
    /// Ask the current leader to carry out an administrative action.
    Admin(AdminAction),
    /// From now on every client sends every request to this node only, ignoring leader
    /// hints (`None`: back to following hints). With single-decree Paxos this leaves one
    /// proposer; it survives [`Fault::HealAll`].
    PinClients(Option<NodeId>),
    /// Bit rot: crash `node` (if it runs) and corrupt one record of its disk. The node
    /// then refuses to start (recovery verifies every record) and stays down for the
    /// rest of the run; the others must stay safe and live without it.
    CorruptDisk(NodeId),
    /// End of the chaos: heal the network, calm the weather, restart every node and
    /// restore full membership. Liveness is checked from here on.
    HealAll,
}

/// The kinds of [`Fault`], for statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// A symmetric partition.
    Partition,
    /// An asymmetric (one-way) cut.
    OneWayCut,
    /// A network repair.
    HealNetwork,
    /// A change of weather (loss, duplication, reordering, delay).
    Weather,
    /// A crash.
    Crash,
    /// A restart.
    Restart,
    /// A leadership transfer.
    TransferLeadership,
    /// A membership change.
    MembershipChange,
    /// The final heal.
    HealAll,
    /// Clients pinned to one node (or released).
    ClientPin,
    /// A disk corrupted (a storage fault).
    Corruption,
}

impl Fault {
    /// The kind of fault.
    #[must_use]
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Partition(_) => FaultKind::Partition,
            Fault::CutOneWay { .. } => FaultKind::OneWayCut,
            Fault::HealNetwork => FaultKind::HealNetwork,
            Fault::Weather(_) => FaultKind::Weather,
            Fault::Crash(_) | Fault::CrashLeader { .. } | Fault::CrashAfterSync { .. } => FaultKind::Crash,
            Fault::IsolateLeader => FaultKind::Partition,
            Fault::Restart(_) => FaultKind::Restart,
            Fault::Admin(AdminAction::TransferLeadership { .. }) => FaultKind::TransferLeadership,
            Fault::Admin(_) => FaultKind::MembershipChange,
            Fault::HealAll => FaultKind::HealAll,
            Fault::PinClients(_) => FaultKind::ClientPin,
            Fault::CorruptDisk(_) => FaultKind::Corruption,
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FaultKind::Partition => "partition",
            FaultKind::OneWayCut => "one-way cut",
            FaultKind::HealNetwork => "network heal",
            FaultKind::Weather => "weather change",
            FaultKind::Crash => "crash",
            FaultKind::Restart => "restart",
            FaultKind::TransferLeadership => "leadership transfer",
            FaultKind::MembershipChange => "membership change",
            FaultKind::HealAll => "final heal",
            FaultKind::ClientPin => "client pin",
            FaultKind::Corruption => "disk corruption",
        })
    }
}

/// A timed list of faults.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultPlan {
    /// The actions, in time order.
    pub actions: Vec<(Instant, Fault)>,
}

impl FaultPlan {
    /// No faults at all.
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// A random schedule over `[0, chaos_end)` mixing partitions (symmetric and one-way),
    /// weather changes (loss, duplication, reordering, delay), crashes with restarts,
    /// storage faults (in one seed in four with at least three nodes, one node's disk
    /// rots: it refuses to start from then on) and, if `admin` is set, leadership
    /// transfers and membership changes, followed by [`Fault::HealAll`] at `chaos_end`.
    /// About one seed in eight gets a calm run. (Every crash also loses or keeps, at
    /// random, the writes not yet acknowledged as durable.)
    #[must_use]
    pub fn random(rng: &mut SeededRng, nodes: &[NodeId], chaos_end: Instant, admin: bool) -> Self {
        let mut actions = Vec::new();
        let n = nodes.len() as u64;
        let calm = rng.gen_range(0..8) == 0;
        // How busy this seed is: mean gap between faults.
        let gap_ms = [300, 800, 2_000][usize::try_from(rng.gen_range(0..3)).unwrap_or(0)];
        let mut t = ms(rng.gen_range(200..2_000));
        let mut removed: Vec<NodeId> = Vec::new();
        while !calm && t < chaos_end && n > 0 {
            let node = nodes[usize::try_from(rng.gen_range(0..n)).unwrap_or(0)];
            let roll = rng.gen_range(0..100);
            let roll = if !admin && roll >= 91 { rng.gen_range(0..91) } else { roll };
            match roll {
                0..=17 => {
                    let groups = random_groups(rng, nodes);
                    actions.push((t, Fault::Partition(groups)));
                    actions.push((t + dur(rng, 300, 6_000), Fault::HealNetwork));
                }
                18..=27 => {
                    let (from, to) = split(rng, nodes);
                    actions.push((t, Fault::CutOneWay { from, to }));
                    actions.push((t + dur(rng, 300, 6_000), Fault::HealNetwork));
                }
                28..=37 => {
                    // Isolate one node; sometimes only its outbound or inbound links.
                    let others: Vec<NodeId> = nodes.iter().copied().filter(|&m| m != node).collect();
                    let f = match rng.gen_range(0..3) {
                        0 => Fault::Partition(vec![vec![node]]),
                        1 => Fault::CutOneWay { from: vec![node], to: others },
                        _ => Fault::CutOneWay { from: others, to: vec![node] },
                    };
                    actions.push((t, f));
                    actions.push((t + dur(rng, 300, 4_000), Fault::HealNetwork));
                }
                38..=49 => actions.push((t, Fault::Weather(NetConfig::stormy(rng)))),
                50..=53 => actions.push((t, Fault::Weather(NetConfig::calm()))),
                54..=61 => actions.push((t, Fault::CrashAfterSync { node, downtime: downtime(rng) })),
                62..=70 => {
                    actions.push((t, Fault::Crash(node)));
                    let back = t + downtime(rng);
                    actions.push((back.min(chaos_end), Fault::Restart(node)));
                }
                71..=74 => {
                    // Crash a majority at once, then bring them back.
                    let mut victims = nodes.to_vec();
                    shuffle(rng, &mut victims);
                    victims.truncate(nodes.len() / 2 + 1);
                    for v in victims {
                        actions.push((t, Fault::Crash(v)));
                        actions.push(((t + downtime(rng)).min(chaos_end), Fault::Restart(v)));
                    }
                }
                75..=83 => actions.push((t, Fault::CrashLeader { downtime: downtime(rng) })),
                84..=90 => {
                    actions.push((t, Fault::IsolateLeader));
                    actions.push((t + dur(rng, 300, 5_000), Fault::HealNetwork));
                }
                91..=95 if admin => actions.push((t, Fault::Admin(AdminAction::TransferLeadership { to: node }))),
                96..=99 if admin => {
                    if let Some(back) = removed.pop() {
                        actions.push((t, Fault::Admin(AdminAction::AddVoter(back))));
                    } else if n >= 3 {
                        actions.push((t, Fault::Admin(AdminAction::RemoveVoter(node))));
                        removed.push(node);
                    }
                }
                _ => actions.push((t, Fault::HealNetwork)),
            }
            t += dur(rng, gap_ms / 4, gap_ms * 2);
        }
        // A voter removed by an admin action counts as lost too: with three nodes, one
        // removed and one rotten leave no quorum, which is no protocol's fault.
        let removes = actions.iter().any(|(_, f)| matches!(f, Fault::Admin(AdminAction::RemoveVoter(_))));
        if !calm && (n >= 5 || (n >= 3 && !removes)) && rng.gen_range(0..4) == 0 {
            // At most one rotten disk: the majority left must carry on.
            let node = nodes[usize::try_from(rng.gen_range(0..n)).unwrap_or(0)];
            actions.push((ms(rng.gen_range(0..chaos_end.as_nanos() / 1_000_000 + 1)), Fault::CorruptDisk(node)));
        }
        actions.retain(|(at, _)| *at < chaos_end);
        actions.push((chaos_end, Fault::HealAll));
        actions.sort_by_key(|(at, _)| *at);
        FaultPlan { actions }
    }
}

fn ms(v: u64) -> Instant {
    Instant::from_millis(v)
}

fn dur(rng: &mut SeededRng, lo_ms: u64, hi_ms: u64) -> Duration {
    Duration::from_millis(rng.gen_range(lo_ms..hi_ms.max(lo_ms + 1)))
}

/// How long a crashed node stays down: often a quick bounce (which lets it rejoin an
/// election or replication round it took part in), otherwise up to a few seconds.
fn downtime(rng: &mut SeededRng) -> Duration {
    if rng.gen_bool(0.5) { dur(rng, 1, 150) } else { dur(rng, 150, 5_000) }
}

fn shuffle(rng: &mut SeededRng, v: &mut [NodeId]) {
    for i in (1..v.len()).rev() {
        let j = usize::try_from(rng.gen_range(0..i as u64 + 1)).unwrap_or(0);
        v.swap(i, j);
    }
}

/// Two (sometimes three) non-empty groups.
fn random_groups(rng: &mut SeededRng, nodes: &[NodeId]) -> Vec<Vec<NodeId>> {
    let mut v = nodes.to_vec();
    shuffle(rng, &mut v);
    let k = if v.len() >= 4 && rng.gen_bool(0.3) { 3 } else { 2 };
    let mut groups = vec![Vec::new(); k];
    for (i, n) in v.into_iter().enumerate() {
        let g = if i < k { i } else { usize::try_from(rng.gen_range(0..k as u64)).unwrap_or(0) };
        groups[g].push(n);
    }
    groups
}

fn split(rng: &mut SeededRng, nodes: &[NodeId]) -> (Vec<NodeId>, Vec<NodeId>) {
    let mut v = nodes.to_vec();
    shuffle(rng, &mut v);
    let cut = usize::try_from(rng.gen_range(1..v.len().max(2) as u64)).unwrap_or(1);
    let to = v.split_off(cut.min(v.len()));
    (v, to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_plans_are_deterministic_sorted_and_end_with_a_heal() {
        let nodes: Vec<NodeId> = (1..=5).map(NodeId).collect();
        let end = Instant::from_millis(20_000);
        let mut kinds = std::collections::BTreeSet::new();
        for seed in 0..50 {
            let a = FaultPlan::random(&mut SeededRng::new(seed), &nodes, end, true);
            let b = FaultPlan::random(&mut SeededRng::new(seed), &nodes, end, true);
            assert_eq!(a, b, "seed {seed}");
            assert!(a.actions.windows(2).all(|w| w[0].0 <= w[1].0));
            assert_eq!(a.actions.last(), Some(&(end, Fault::HealAll)));
            kinds.extend(a.actions.iter().map(|(_, f)| f.kind()));
        }
        // Over 50 seeds every kind of fault shows up.
        assert_eq!(kinds.len(), 10, "{kinds:?}");
        let plain = FaultPlan::random(&mut SeededRng::new(1), &nodes, end, false);
        assert!(plain.actions.iter().all(|(_, f)| !matches!(f, Fault::Admin(_))));
    }
}
