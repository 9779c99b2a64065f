//! Membership changes by joint consensus, and leadership transfer.

use ballot_core::{Event, Instant, Membership, NodeId, ProposeError, Role};

use crate::progress::Progress;
use crate::{EntryPayload, MembershipChange, Message, Raft, RaftError, Transfer};

/// Why proposals are refused while leadership moves.
pub(crate) const TRANSFERRING: &str = "leadership transfer in progress";

impl Raft {
    /// Starts a membership change on the leader.
    ///
    /// A change of the voter set goes through joint consensus (Raft §6): the leader
    /// appends the joint configuration (new voters, with the old ones as `outgoing`),
    /// which takes effect at once; when it commits, the leader appends the final
    /// configuration by itself. A change of learners only takes effect in one step. A
    /// leader that is not a voter of the final configuration steps down once it commits.
    /// [`Event::MembershipChanged`] reports each step. A change that changes nothing
    /// returns `Ok` and appends nothing.
    ///
    /// # Errors
    /// [`RaftError::Rejected`] with [`ProposeError::NotLeader`] off the leader,
    /// [`ProposeError::Unavailable`] during a leadership transfer, and
    /// [`ProposeError::Busy`] while an earlier change is not finished (or the leader has
    /// not committed an entry of its term yet); [`RaftError::InvalidMembershipChange`]
    /// for a change that would leave no voters or names a node twice.
    pub fn change_membership(&mut self, now: Instant, change: MembershipChange) -> Result<(), RaftError> {
        self.clock(now);
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader { leader: self.leader }.into());
        }
        if self.transfer.is_some() {
            return Err(ProposeError::Unavailable(TRANSFERRING.into()).into());
        }
        let current = self.log.membership();
        if current.is_joint() || self.log.membership_index() > self.commit || !self.committed_in_term() {
            return Err(ProposeError::Busy.into());
        }
        let target = change.target(current)?;
        if target == *current {
            return Ok(());
        }
        let next = if target.voters == current.voters {
            target
        } else {
            Membership { outgoing: current.voters.clone(), ..target }
        };
        self.append_local(EntryPayload::Membership(next));
        self.need_broadcast = true;
        Ok(())
    }

    /// Hands leadership to voter `to`: the leader stops accepting proposals
    /// ([`ProposeError::Unavailable`]), brings `to` up to date, and sends it TimeoutNow,
    /// upon which `to` campaigns at once (skipping PreVote, and past other voters' leader
    /// stickiness). The transfer is abandoned after `election.timeout_min` if `to` has not
    /// taken over. Transferring to this leader itself, or again to the current target, is
    /// a no-op; naming another target restarts the transfer.
    ///
    /// # Errors
    /// [`RaftError::Rejected`] with [`ProposeError::NotLeader`] off the leader;
    /// [`RaftError::NotAVoter`] if `to` is not a voter of the configuration in force.
    pub fn transfer_leadership(&mut self, now: Instant, to: NodeId) -> Result<(), RaftError> {
        let now = self.clock(now);
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader { leader: self.leader }.into());
        }
        if to == self.cfg.id {
            return Ok(());
        }
        if !self.log.membership().voters.contains(&to) {
            return Err(RaftError::NotAVoter(to));
        }
        if self.transfer.as_ref().is_some_and(|t| t.to == to) {
            return Ok(());
        }
        self.transfer = Some(Transfer { to, deadline: now + self.cfg.election.timeout_min, sent: false });
        self.maybe_send_timeout_now(to);
        self.need_broadcast = true;
        Ok(())
    }

    /// Sends TimeoutNow to the transfer target once it holds the whole log.
    pub(crate) fn maybe_send_timeout_now(&mut self, peer: NodeId) {
        let last = self.log.last_index();
        let caught_up = self.peer(peer).is_some_and(|p| p.matched >= last);
        let term = self.term;
        match &mut self.transfer {
            Some(t) if t.to == peer && !t.sent && caught_up => t.sent = true,
            _ => return,
        }
        self.send(peer, Message::TimeoutNow { term });
    }

    pub(crate) fn abort_transfer(&mut self, now: Instant) {
        if self.transfer.take().is_some() {
            // TimeoutNow may still be in flight and its campaign ignores stickiness: no
            // lease reads until any such election is over.
            self.lease_until = None;
            self.lease_blocked_until = now + self.cfg.election.timeout_max;
        }
    }

    /// Stops replicating to `peer` if it left the configuration and holds the entry that
    /// removed it.
    pub(crate) fn forget_departed(&mut self, peer: NodeId) {
        let (m, index) = (self.log.membership(), self.log.membership_index());
        if !is_member(m, peer) && self.peer(peer).is_some_and(|p| p.matched >= index) {
            self.peers.retain(|p| p.id != peer);
        }
    }

    /// The configuration in force changed (appended, truncated away, or restored from a
    /// snapshot).
    pub(crate) fn on_membership_changed(&mut self) {
        let m = self.log.membership().clone();
        match self.role {
            Role::Leader => {
                let members = m.members();
                // Nodes the change removed keep receiving the log until they hold the
                // entry that removed them, so they learn it and stop campaigning.
                let index = self.log.membership_index();
                let before = self.log.membership_at(index.saturating_sub(1));
                self.peers.retain(|p| members.contains(&p.id) || (is_member(before, p.id) && p.matched < index));
                let next = self.log.last_index() + 1;
                for &n in &members {
                    if n != self.cfg.id && self.peer(n).is_none() {
                        self.peers.push(Progress::new(n, next));
                    }
                }
                if self.transfer.as_ref().is_some_and(|t| !m.voters.contains(&t.to)) {
                    self.abort_transfer(self.now);
                }
                self.need_broadcast = true;
            }
            Role::Follower | Role::Learner => {
                let role = if m.is_learner(self.cfg.id) { Role::Learner } else { Role::Follower };
                self.set_role(role);
            }
            Role::Candidate | Role::PreCandidate => {}
        }
        self.event(Event::MembershipChanged(m));
    }
}

fn is_member(m: &Membership, id: NodeId) -> bool {
    m.is_voter(id) || m.learners.contains(&id)
}
