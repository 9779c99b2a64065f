//! Cluster membership and quorums.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::NodeId;

/// How many voters of a set of `n` make a quorum; the protocol chooses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Quorum {
    /// More than half: any two quorums share a voter (crash faults: Raft, Paxos).
    #[default]
    Majority,
    /// `n - f` of `n = 3f + 1` (2f+1 when `n` is exactly 3f+1): any two quorums share
    /// f+1 voters, so at least one correct one, with up to `f` arbitrary faults (PBFT).
    Byzantine,
}

impl Quorum {
    /// The fewest voters of a set of `n` that form a quorum (0 for an empty set).
    #[must_use]
    pub const fn size(self, n: usize) -> usize {
        match self {
            Quorum::Majority if n == 0 => 0,
            Quorum::Majority => n / 2 + 1,
            Quorum::Byzantine => n - Self::faults(n),
        }
    }

    /// How many arbitrary faults a Byzantine set of `n` tolerates: `(n - 1) / 3`.
    #[must_use]
    pub const fn faults(n: usize) -> usize {
        n.saturating_sub(1) / 3
    }
}

/// Who takes part in consensus.
///
/// `voters` decide; `learners` receive the log but neither vote nor count toward a
/// quorum. During a joint-consensus change (Raft §6) `outgoing` holds the old voter set
/// and every decision needs a majority of *both* sets; outside a change it is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Membership {
    /// The (incoming) voters.
    pub voters: BTreeSet<NodeId>,
    /// The voters of the configuration being left, during a joint change; else empty.
    pub outgoing: BTreeSet<NodeId>,
    /// Non-voting members that replicate the log.
    pub learners: BTreeSet<NodeId>,
}

impl Membership {
    /// A simple configuration of voters, with no learners and no change in progress.
    #[must_use]
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> Self {
        Membership { voters: voters.into_iter().collect(), ..Membership::default() }
    }

    /// Whether a joint change is in progress.
    #[must_use]
    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Whether `id` votes in either half of the configuration.
    #[must_use]
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.outgoing.contains(&id)
    }

    /// Whether `id` is a learner (and not a voter).
    #[must_use]
    pub fn is_learner(&self, id: NodeId) -> bool {
        self.learners.contains(&id) && !self.is_voter(id)
    }

    /// Every member: voters of both halves and learners, each once, in id order.
    #[must_use]
    pub fn members(&self) -> BTreeSet<NodeId> {
        self.voters.iter().chain(&self.outgoing).chain(&self.learners).copied().collect()
    }

    /// Every voter of both halves, each once.
    #[must_use]
    pub fn all_voters(&self) -> BTreeSet<NodeId> {
        self.voters.union(&self.outgoing).copied().collect()
    }

    /// Whether the nodes for which `has` is true form a quorum: a majority of `voters`
    /// and, during a joint change, also a majority of `outgoing`.
    pub fn is_quorum(&self, has: impl FnMut(NodeId) -> bool) -> bool {
        self.is_quorum_of(Quorum::Majority, has)
    }

    /// Whether the nodes for which `has` is true form a `quorum` of `voters` and, during
    /// a joint change, also of `outgoing`.
    pub fn is_quorum_of(&self, quorum: Quorum, mut has: impl FnMut(NodeId) -> bool) -> bool {
        let enough = |set: &BTreeSet<NodeId>, has: &mut dyn FnMut(NodeId) -> bool| {
            set.is_empty() || set.iter().filter(|&&n| has(n)).count() >= quorum.size(set.len())
        };
        !self.voters.is_empty() && enough(&self.voters, &mut has) && enough(&self.outgoing, &mut has)
    }

    /// The greatest value `v` such that a majority of voters has a value `>= v`, given
    /// each voter's value by `value_of`. This is how a leader finds the commit index from
    /// its followers' match indexes. Returns 0 when there are no voters.
    pub fn quorum_min(&self, value_of: impl FnMut(NodeId) -> u64) -> u64 {
        self.quorum_min_of(Quorum::Majority, value_of)
    }

    /// [`quorum_min`](Self::quorum_min) for any [`Quorum`].
    pub fn quorum_min_of(&self, quorum: Quorum, mut value_of: impl FnMut(NodeId) -> u64) -> u64 {
        if self.voters.is_empty() {
            return 0;
        }
        let incoming = quorum_value(quorum, &self.voters, &mut value_of);
        if self.outgoing.is_empty() {
            incoming
        } else {
            incoming.min(quorum_value(quorum, &self.outgoing, &mut value_of))
        }
    }
}

/// Voter sets up to this size are handled on the stack (no allocation per call: leaders
/// call [`Membership::quorum_min`] on every acknowledgement).
const STACK_VOTERS: usize = 16;

/// The greatest value a `quorum` of `set` has reached: the `size`-th largest. `set`
/// must not be empty.
fn quorum_value(quorum: Quorum, set: &BTreeSet<NodeId>, value_of: &mut impl FnMut(NodeId) -> u64) -> u64 {
    let n = set.len();
    // Descending order: the value at `k - 1` is held by `k` voters, a quorum.
    let k = quorum.size(n) - 1;
    if n <= STACK_VOTERS {
        // Insertion sort: a handful of values, no allocation.
        let mut sorted = [0u64; STACK_VOTERS];
        for (len, &id) in set.iter().enumerate() {
            let v = value_of(id);
            let mut i = len;
            while i > 0 && sorted[i - 1] < v {
                sorted[i] = sorted[i - 1];
                i -= 1;
            }
            sorted[i] = v;
        }
        sorted[k]
    } else {
        let mut values: Vec<u64> = set.iter().map(|&id| value_of(id)).collect();
        *values.select_nth_unstable_by(k, |a, b| b.cmp(a)).1
    }
}

impl fmt::Display for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |s: &BTreeSet<NodeId>| s.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
        write!(f, "voters[{}]", list(&self.voters))?;
        if self.is_joint() {
            write!(f, " outgoing[{}]", list(&self.outgoing))?;
        }
        if !self.learners.is_empty() {
            write!(f, " learners[{}]", list(&self.learners))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u64]) -> BTreeSet<NodeId> {
        v.iter().map(|&n| NodeId(n)).collect()
    }

    #[test]
    fn byzantine_quorums_are_2f_plus_1_of_3f_plus_1() {
        for (n, f, size) in [(1, 0, 1), (4, 1, 3), (5, 1, 4), (7, 2, 5), (10, 3, 7)] {
            assert_eq!((Quorum::faults(n), Quorum::Byzantine.size(n)), (f, size), "n = {n}");
        }
        let m = Membership::new([1, 2, 3, 4].map(NodeId));
        assert!(m.is_quorum_of(Quorum::Byzantine, |n| n.0 <= 3));
        assert!(!m.is_quorum_of(Quorum::Byzantine, |n| n.0 <= 2), "two of four is a majority, not 2f+1");
        assert!(!m.is_quorum(|n| n.0 <= 2));
        assert_eq!(m.quorum_min_of(Quorum::Byzantine, |n| [0, 9, 8, 7, 1][n.0 as usize]), 7);
        assert_eq!(m.quorum_min(|n| [0, 9, 8, 7, 1][n.0 as usize]), 7);
    }

    #[test]
    fn simple_majority() {
        let m = Membership::new([1, 2, 3].map(NodeId));
        assert!(m.is_quorum(|n| n.0 <= 2));
        assert!(!m.is_quorum(|n| n.0 == 1));
        assert_eq!(m.quorum_min(|n| [0, 10, 7, 3][n.0 as usize]), 7);
    }

    #[test]
    fn joint_needs_both_majorities() {
        let m = Membership { voters: ids(&[1, 2, 3]), outgoing: ids(&[3, 4, 5]), learners: ids(&[6]) };
        assert!(m.is_joint());
        assert!(!m.is_quorum(|n| [1, 2].contains(&n.0)));
        assert!(m.is_quorum(|n| [1, 3, 4].contains(&n.0)));
        assert_eq!(m.quorum_min(|n| n.0 * 10), 20);
        assert!(m.is_learner(NodeId(6)) && !m.is_voter(NodeId(6)));
        assert_eq!(m.members().len(), 6);
    }

    #[test]
    fn quorum_min_matches_sorting() {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for n in 1..=20u64 {
            for _ in 0..50 {
                let values: Vec<u64> = (0..n)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x % 8
                    })
                    .collect();
                let m = Membership::new((0..n).map(NodeId));
                let mut sorted = values.clone();
                sorted.sort_unstable_by(|a, b| b.cmp(a));
                assert_eq!(m.quorum_min(|id| values[id.0 as usize]), sorted[values.len() / 2], "{values:?}");
            }
        }
    }

    #[test]
    fn quorum_min_of_large_sets() {
        // Beyond the stack buffer: 21 voters, a majority of 11 has reached 10 and above.
        let m = Membership::new((1..=21).map(NodeId));
        assert_eq!(m.quorum_min(|n| n.0), 11);
        let m = Membership::new((1..=16).map(NodeId));
        assert_eq!(m.quorum_min(|n| n.0), 8);
        let m = Membership { voters: ids(&[1, 2, 3]), outgoing: (1..=21).map(NodeId).collect(), learners: ids(&[]) };
        assert_eq!(m.quorum_min(|n| n.0), 2);
    }

    #[test]
    fn empty_voters_is_never_a_quorum() {
        let m = Membership::default();
        assert!(!m.is_quorum(|_| true));
        assert_eq!(m.quorum_min(|_| 5), 0);
    }
}
