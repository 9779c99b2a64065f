//! Log entries, hard state and membership changes.

use std::collections::BTreeSet;

use ballot_core::{LogEntry, Membership, NodeId, ProposalId};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::RaftError;

/// One record of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the log, from 1.
    pub index: u64,
    /// Term of the leader that created it.
    pub term: u64,
    /// What it carries.
    pub payload: EntryPayload,
}

/// What a log entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryPayload {
    /// Appended by every new leader at the start of its term, so that it can commit
    /// (and serve reads) without waiting for a client.
    Noop,
    /// A client command.
    Command {
        /// The node and proposal that created it, so that node can answer its client when
        /// the entry is applied.
        origin: Option<(NodeId, ProposalId)>,
        /// The command, opaque to Raft.
        data: Bytes,
    },
    /// A new configuration, in force from the moment the entry is appended.
    Membership(Membership),
}

impl LogEntry for Entry {
    fn index(&self) -> u64 {
        self.index
    }
}

/// Bytes counted per entry on top of its payload (index, term, tags) in size limits.
const ENTRY_OVERHEAD: usize = 24;

impl Entry {
    /// Approximate encoded size in bytes; what `max_append_bytes` and
    /// `max_inflight_bytes` count.
    #[must_use]
    pub fn size(&self) -> usize {
        ENTRY_OVERHEAD
            + match &self.payload {
                EntryPayload::Noop => 0,
                EntryPayload::Command { data, .. } => 16 + data.len(),
                EntryPayload::Membership(m) => 8 * (m.voters.len() + m.outgoing.len() + m.learners.len()),
            }
    }
}

/// The small durable state Raft writes as a whole: the current term, the vote cast in
/// it, and the highest index known committed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HardState {
    /// The latest term this replica has seen.
    pub term: u64,
    /// The candidate it voted for in `term`, if any.
    pub vote: Option<NodeId>,
    /// The highest log index known committed (persisted lazily: it may lag; it never
    /// runs ahead of the durable log).
    pub commit: u64,
}

/// A change of the cluster's configuration, for [`Raft::change_membership`](crate::Raft::change_membership).
///
/// Each node may appear in at most one set. `add_voters` adds new voters or promotes
/// learners; `add_learners` adds new learners or demotes voters; `remove` takes nodes out
/// of the cluster. Changing the voter set goes through a joint configuration (Raft §6);
/// changing only learners takes effect in one step.
///
/// ```
/// use ballot_core::{Membership, NodeId};
/// use ballot_raft::MembershipChange;
///
/// let current = Membership::new([NodeId(1), NodeId(2), NodeId(3)]);
/// let change = MembershipChange::new().add_voter(NodeId(4)).remove(NodeId(1));
/// let target = change.target(&current)?;
/// assert_eq!(target, Membership::new([NodeId(2), NodeId(3), NodeId(4)]));
/// # Ok::<(), ballot_raft::RaftError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipChange {
    /// Nodes that become voters.
    pub add_voters: BTreeSet<NodeId>,
    /// Nodes that become learners.
    pub add_learners: BTreeSet<NodeId>,
    /// Nodes that leave the cluster.
    pub remove: BTreeSet<NodeId>,
}

impl MembershipChange {
    /// An empty change.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Also make `id` a voter.
    #[must_use]
    pub fn add_voter(mut self, id: NodeId) -> Self {
        self.add_voters.insert(id);
        self
    }

    /// Also make `id` a learner.
    #[must_use]
    pub fn add_learner(mut self, id: NodeId) -> Self {
        self.add_learners.insert(id);
        self
    }

    /// Also remove `id` from the cluster.
    #[must_use]
    pub fn remove(mut self, id: NodeId) -> Self {
        self.remove.insert(id);
        self
    }

    /// The (non-joint) configuration this change leads to from `current` (whose
    /// `outgoing` half, if any, is ignored).
    ///
    /// # Errors
    /// [`RaftError::InvalidMembershipChange`] if a node appears in two sets, a node id is
    /// zero, or no voter would remain.
    pub fn target(&self, current: &Membership) -> Result<Membership, RaftError> {
        let invalid = |s: String| Err(RaftError::InvalidMembershipChange(s));
        let sets = [&self.add_voters, &self.add_learners, &self.remove];
        for (i, a) in sets.iter().enumerate() {
            for b in &sets[i + 1..] {
                if let Some(n) = a.intersection(b).next() {
                    return invalid(format!("{n} appears in more than one set of the change"));
                }
            }
            if a.contains(&NodeId(0)) {
                return invalid("node id 0 is not valid".to_owned());
            }
        }
        let mut voters = current.voters.clone();
        let mut learners = current.learners.clone();
        for n in self.remove.iter().chain(&self.add_learners) {
            voters.remove(n);
        }
        for n in self.remove.iter().chain(&self.add_voters) {
            learners.remove(n);
        }
        voters.extend(&self.add_voters);
        learners.extend(&self.add_learners);
        if voters.is_empty() {
            return invalid("the change would leave no voters".to_owned());
        }
        Ok(Membership { voters, outgoing: BTreeSet::new(), learners })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u64]) -> BTreeSet<NodeId> {
        v.iter().map(|&n| NodeId(n)).collect()
    }

    #[test]
    fn target_promotes_demotes_and_removes() {
        let cur = Membership { voters: ids(&[1, 2, 3]), outgoing: ids(&[]), learners: ids(&[4, 5]) };
        let t = MembershipChange::new().add_voter(NodeId(4)).add_learner(NodeId(3)).remove(NodeId(5)).target(&cur);
        assert_eq!(t, Ok(Membership { voters: ids(&[1, 2, 4]), outgoing: ids(&[]), learners: ids(&[3]) }));
    }

    #[test]
    fn target_rejects_bad_changes() {
        let cur = Membership::new([NodeId(1)]);
        assert!(matches!(
            MembershipChange::new().remove(NodeId(1)).target(&cur),
            Err(RaftError::InvalidMembershipChange(_))
        ));
        assert!(matches!(
            MembershipChange::new().add_voter(NodeId(2)).remove(NodeId(2)).target(&cur),
            Err(RaftError::InvalidMembershipChange(_))
        ));
        assert!(matches!(
            MembershipChange::new().add_learner(NodeId(0)).target(&cur),
            Err(RaftError::InvalidMembershipChange(_))
        ));
    }

    #[test]
    fn entry_size_counts_payload() {
        let e = |payload| Entry { index: 1, term: 1, payload };
        assert_eq!(e(EntryPayload::Noop).size(), ENTRY_OVERHEAD);
        let cmd = EntryPayload::Command { origin: None, data: Bytes::from_static(&[0; 100]) };
        assert_eq!(e(cmd).size(), ENTRY_OVERHEAD + 116);
    }
}
