//! Elections: PreVote, votes, and becoming leader.

use ballot_core::{Instant, NodeId, PersistId, Role};

use crate::progress::Progress;
use crate::{EntryPayload, Message, Raft};

/// What a round of vote requests is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Campaign {
    /// A pre-vote: would the voters elect this node at the next term? (No term change.)
    PreVote,
    /// A real election at the node's new term.
    Election,
    /// An election the old leader asked for (`TimeoutNow`): voters grant it even while
    /// they still hear from that leader.
    Transfer,
}
impl Raft {
    /// Starts an election: a PreVote round first (unless disabled, or this is a
    /// leadership transfer), then a real one.
    pub(crate) fn campaign(&mut self, now: Instant, transfer: bool) {
        if !self.is_voter() {
            return;
        }
        if self.cfg.election.pre_vote && !transfer {
            self.set_role(Role::PreCandidate);
            self.set_leader(None);
            self.votes.clear();
            self.self_vote = None;
            self.reset_election_deadline(now);
            self.request_votes(Campaign::PreVote);
            self.tally(now);
        } else {
            self.become_candidate(now, transfer);
        }
    }

    fn become_candidate(&mut self, now: Instant, transfer: bool) {
        let Some(term) = self.term.checked_add(1) else { return }; // terms are exhausted
        self.term = term;
        self.vote = Some(self.cfg.id);
        self.save_hard_state();
        // Our own vote counts only once the batch recording it is durable.
        self.self_vote = Some(self.out.batch_id());
        self.set_role(Role::Candidate);
        self.set_leader(None);
        self.votes.clear();
        self.reset_election_deadline(now);
        self.request_votes(if transfer { Campaign::Transfer } else { Campaign::Election });
        self.tally(now);
    }

    fn request_votes(&mut self, campaign: Campaign) {
        let pre_vote = campaign == Campaign::PreVote;
        let transfer = campaign == Campaign::Transfer;
        let term = if pre_vote { self.term.saturating_add(1) } else { self.term };
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        for to in self.log.membership().all_voters() {
            if to != self.cfg.id {
                self.send(to, Message::RequestVote { term, pre_vote, last_log_index, last_log_term, transfer });
            }
        }
    }

    /// Counts the votes of this (pre-)campaign: win, lose, or keep waiting.
    pub(crate) fn tally(&mut self, now: Instant) {
        let id = self.cfg.id;
        let self_ok = self.role == Role::PreCandidate || self.self_vote.is_some_and(|p| self.is_durable(p));
        let votes = &self.votes;
        let membership = self.log.membership();
        // A candidate leads only once its own term and vote are durable, even when other
        // votes already form a quorum: a leader that could forget its term after a crash
        // might win the same term again and write different entries under it.
        let won = self_ok
            && membership
                .is_quorum(|n| if n == id { self_ok } else { votes.iter().any(|&(v, granted)| v == n && granted) });
        if won {
            if self.role == Role::PreCandidate {
                self.become_candidate(now, false);
            } else {
                self.become_leader(now);
            }
            return;
        }
        let can_win = membership.is_quorum(|n| n == id || !votes.iter().any(|&(v, granted)| v == n && !granted));
        if !can_win {
            self.become_follower(now, self.term, None);
        }
    }

    pub(crate) fn on_request_vote(
        &mut self,
        now: Instant,
        from: NodeId,
        term: u64,
        pre_vote: bool,
        last_log_index: u64,
        last_log_term: u64,
    ) {
        let can_vote =
            self.vote == Some(from) || (self.vote.is_none() && self.leader.is_none()) || (pre_vote && term > self.term);
        let grant = can_vote && self.log.is_up_to_date(last_log_index, last_log_term);
        if pre_vote {
            let term = if grant { term } else { self.term };
            self.send(from, Message::RequestVoteResponse { term, pre_vote, granted: grant });
        } else if grant {
            if self.vote != Some(from) {
                self.vote = Some(from);
                self.save_hard_state();
            }
            self.reset_election_deadline(now);
            self.send_durable(from, Message::RequestVoteResponse { term: self.term, pre_vote, granted: true });
        } else {
            self.send(from, Message::RequestVoteResponse { term: self.term, pre_vote, granted: false });
        }
    }

    pub(crate) fn on_vote_response(&mut self, now: Instant, from: NodeId, term: u64, pre_vote: bool, granted: bool) {
        let counts = match self.role {
            Role::PreCandidate => pre_vote && (!granted || Some(term) == self.term.checked_add(1)),
            Role::Candidate => !pre_vote && term == self.term,
            _ => false,
        };
        if !counts || !self.log.membership().is_voter(from) || self.votes.iter().any(|&(v, _)| v == from) {
            return;
        }
        self.votes.push((from, granted));
        self.tally(now);
    }

    fn become_leader(&mut self, now: Instant) {
        self.set_role(Role::Leader);
        self.set_leader(Some(self.cfg.id));
        let next = self.log.last_index() + 1;
        let id = self.cfg.id;
        self.peers =
            self.log.membership().members().into_iter().filter(|&n| n != id).map(|n| Progress::new(n, next)).collect();
        self.transfer = None;
        self.lease_until = None;
        self.hb_sent.clear();
        self.heartbeat_deadline = now + self.cfg.election.heartbeat_interval;
        self.check_quorum_deadline = now + self.cfg.election.timeout_min;
        self.append_local(EntryPayload::Noop);
        self.need_broadcast = true;
        self.maybe_commit(now);
    }

    pub(crate) fn is_durable(&self, id: PersistId) -> bool {
        id <= self.out.durable()
    }
}
