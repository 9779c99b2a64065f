//! Cluster membership and quorums.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::NodeId;

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
    pub fn is_quorum(&self, mut has: impl FnMut(NodeId) -> bool) -> bool {
        let majority = |set: &BTreeSet<NodeId>, has: &mut dyn FnMut(NodeId) -> bool| {
            set.is_empty() || set.iter().filter(|&&n| has(n)).count() * 2 > set.len()
        };
        !self.voters.is_empty() && majority(&self.voters, &mut has) && majority(&self.outgoing, &mut has)
    }

    /// The greatest value `v` such that a quorum of voters has a value `>= v`, given
    /// each voter's value by `value_of`. This is how a leader finds the commit index from
    /// its followers' match indexes. Returns 0 when there are no voters.
    pub fn quorum_min(&self, mut value_of: impl FnMut(NodeId) -> u64) -> u64 {
        let half = |set: &BTreeSet<NodeId>, value_of: &mut dyn FnMut(NodeId) -> u64| {
            if set.is_empty() {
                return u64::MAX;
            }
            let mut values: Vec<u64> = set.iter().map(|&n| value_of(n)).collect();
            values.sort_unstable_by(|a, b| b.cmp(a));
            values[set.len() / 2]
        };
        if self.voters.is_empty() {
            return 0;
        }
        half(&self.voters, &mut value_of).min(half(&self.outgoing, &mut value_of))
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
    fn empty_voters_is_never_a_quorum() {
        let m = Membership::default();
        assert!(!m.is_quorum(|_| true));
        assert_eq!(m.quorum_min(|_| 5), 0);
    }
}
