//! Log replication: the leader's pipelined, flow-controlled AppendEntries and commit
//! rule, and the follower's side of AppendEntries and heartbeats.

use std::collections::BTreeSet;

use ballot_core::{Instant, Membership, NodeId, Output, Role};

use crate::progress::State;
use crate::{Conflict, Entry, EntryPayload, Message, Raft};

/// What one replication step towards a peer does.
enum Step {
    Snapshot,
    Wait,
    Append,
}

impl Raft {
    /// Sends peer `i` everything its flow control allows.
    pub(crate) fn replicate_to(&mut self, i: usize) {
        while self.send_append(i) {}
    }

    /// Sends peer `i` one AppendEntries (or snapshot chunk) if its state allows. Returns
    /// whether entries went out in replicate mode, so that more may follow.
    fn send_append(&mut self, i: usize) -> bool {
        let (max_count, max_bytes) = (self.cfg.max_inflight_appends, self.cfg.max_inflight_bytes);
        let p = &self.peers[i];
        let step = match p.state {
            State::Snapshot(_) => Step::Snapshot,
            State::Probe { sent: true } => Step::Wait,
            State::Replicate if p.inflight_full(max_count, max_bytes) => Step::Wait,
            State::Probe { sent: false } | State::Replicate => Step::Append,
        };
        match step {
            Step::Snapshot => {
                self.send_snapshot_chunk(i);
                return false;
            }
            Step::Wait => return false,
            Step::Append => {}
        }
        let last_index = self.log.last_index();
        if self.peers[i].next > last_index + 1 {
            self.peers[i].become_probe(last_index + 1);
        }
        let next = self.peers[i].next;
        let Some(prev_log_term) = self.log.term_at(next - 1) else {
            // The entries this peer needs are compacted: send the snapshot instead.
            self.start_snapshot(i);
            return false;
        };
        let (entries, bytes) = self.log.slice(next, self.cfg.max_append_entries, self.cfg.max_append_bytes);
        let commit = self.commit;
        let p = &mut self.peers[i];
        let probing = matches!(p.state, State::Probe { .. });
        if entries.is_empty() && !probing && p.sent_commit >= commit {
            return false;
        }
        let last = entries.last().map(|e| e.index);
        p.sent_commit = commit;
        match &mut p.state {
            State::Probe { sent } => *sent = true,
            _ => {
                if let Some(l) = last {
                    p.next = l + 1;
                    p.inflights.push_back((l, bytes));
                    p.inflight_bytes += bytes;
                }
            }
        }
        let to = p.id;
        let message = Message::AppendEntries {
            term: self.term,
            prev_log_index: next - 1,
            prev_log_term,
            entries,
            leader_commit: commit,
        };
        self.out.push(Output::Send { to, message });
        !probing && last.is_some()
    }

    pub(crate) fn on_append_response(&mut self, now: Instant, from: NodeId, index: u64, reject: Option<Conflict>) {
        let Some(i) = self.peer_pos(from) else { return };
        let last_index = self.log.last_index();
        let p = &mut self.peers[i];
        p.recent_active = true;
        let Some(conflict) = reject else {
            if index > last_index {
                return; // acknowledges entries this leader never sent
            }
            if index > p.matched {
                p.matched = index;
                p.progressed = true;
            }
            p.next = p.next.max(index + 1);
            p.free_inflights(index);
            match &p.state {
                State::Probe { .. } => {
                    p.state = State::Replicate;
                    p.next = p.matched + 1;
                }
                State::Snapshot(s) => {
                    if p.matched >= s.snapshot.meta.index {
                        p.become_probe(p.matched + 1);
                    }
                }
                State::Replicate => {}
            }
            self.need_broadcast = true;
            self.maybe_commit(now);
            self.maybe_send_timeout_now(from);
            self.forget_departed(from);
            return;
        };
        // A follower never loses what it acknowledged as durable: a rejection at or below
        // `matched` is a late copy (or a disk that lied, which resending cannot repair;
        // answering each such rejection with a probe let duplicated messages multiply
        // without bound, found by ballot-sim with a follower acknowledging before its
        // writes were durable).
        let stale = index <= p.matched
            || match p.state {
                State::Replicate => index >= p.next,
                State::Probe { .. } => index != p.next - 1,
                State::Snapshot(_) => true,
            };
        if stale {
            return;
        }
        // Skip the follower's whole conflicting term: if this log has entries of that
        // term, resume after its last one; else from where the follower's run starts.
        let hint = match conflict.term {
            Some(t) => {
                let l = self.log.last_index_with_term_at_most(t);
                if self.log.term_at(l) == Some(t) { l + 1 } else { conflict.first_index }
            }
            None => conflict.first_index,
        };
        let p = &mut self.peers[i];
        p.become_probe(hint.min(index));
        self.need_broadcast = true;
    }

    /// Advances the commit index to the highest index a quorum holds durably (this leader
    /// counting itself only for what its own storage acknowledged), provided that entry
    /// is from the current term (Raft §5.4.2).
    pub(crate) fn maybe_commit(&mut self, now: Instant) {
        if self.role != Role::Leader {
            return;
        }
        let id = self.cfg.id;
        let stable = self.log.stable();
        let peers = &self.peers;
        let quorum = self
            .log
            .membership()
            .quorum_min(|n| if n == id { stable } else { peers.iter().find(|p| p.id == n).map_or(0, |p| p.matched) });
        if quorum <= self.commit || self.log.term_at(quorum) != Some(self.term) {
            return;
        }
        let first_in_term = !self.committed_in_term();
        self.commit = quorum;
        self.need_broadcast = true;
        self.apply_ready();
        if first_in_term {
            self.activate_waiting_reads();
        }
        self.after_leader_commit(now);
    }

    /// Membership follow-ups once the configuration entry is committed: leave a joint
    /// configuration, or step down if this leader is no longer a voter.
    fn after_leader_commit(&mut self, now: Instant) {
        if self.log.membership_index() > self.commit {
            return;
        }
        let m = self.log.membership();
        if m.is_joint() {
            let leave =
                Membership { voters: m.voters.clone(), outgoing: BTreeSet::new(), learners: m.learners.clone() };
            self.append_local(EntryPayload::Membership(leave));
            self.need_broadcast = true;
        } else if !m.voters.contains(&self.cfg.id) {
            self.hand_over(now);
        }
    }

    /// This leader is not a voter of the committed configuration: tell everyone the
    /// commit index, ask the most up-to-date voter to campaign at once (so the cluster
    /// does not wait an election timeout), and step down.
    fn hand_over(&mut self, now: Instant) {
        self.send_heartbeats();
        let m = self.log.membership();
        let successor = self.peers.iter().filter(|p| m.voters.contains(&p.id)).max_by_key(|p| p.matched).map(|p| p.id);
        if let Some(to) = successor {
            let term = self.term;
            self.send(to, Message::TimeoutNow { term });
        }
        self.become_follower(now, self.term, None);
    }

    pub(crate) fn on_append_entries(
        &mut self,
        now: Instant,
        from: NodeId,
        prev_log_index: u64,
        prev_log_term: u64,
        mut entries: Vec<Entry>,
        leader_commit: u64,
    ) {
        if !self.accept_leader(now, from) || !self.valid_append(prev_log_index, prev_log_term, &entries) {
            return;
        }
        let (mut prev_index, mut prev_term) = (prev_log_index, prev_log_term);
        let last_new = prev_log_index + entries.len() as u64;
        if prev_index < self.commit {
            // Everything up to the commit index matches already; skip it.
            let skip = usize::try_from(self.commit - prev_index).unwrap_or(usize::MAX).min(entries.len());
            entries.drain(..skip);
            prev_index += skip as u64;
            if prev_index < self.commit {
                let term = self.term;
                self.send_durable(from, Message::AppendEntriesResponse { term, index: self.commit, reject: None });
                return;
            }
            match self.log.term_at(prev_index) {
                Some(t) => prev_term = t,
                None => return,
            }
        }
        match self.log.term_at(prev_index) {
            Some(t) if t == prev_term => {}
            found => {
                let conflict = match found {
                    Some(t) => Conflict { term: Some(t), first_index: self.log.first_index_of_term(prev_index) },
                    None => Conflict { term: None, first_index: self.log.last_index() + 1 },
                };
                let term = self.term;
                self.send(from, Message::AppendEntriesResponse { term, index: prev_log_index, reject: Some(conflict) });
                return;
            }
        }
        // Skip the entries already held; truncate at the first conflicting one.
        let first_new = entries.iter().position(|e| self.log.term_at(e.index) != Some(e.term));
        if let Some(k) = first_new {
            let at = entries[k].index;
            if at <= self.log.last_index() {
                if at <= self.commit {
                    return; // a leader contradicting committed entries: drop the message
                }
                self.truncate_log(at);
            }
            entries.drain(..k);
            self.append_from_leader(entries);
        }
        let commit = leader_commit.min(last_new);
        if commit > self.commit {
            self.commit = commit;
            self.apply_ready();
        }
        let term = self.term;
        self.send_durable(from, Message::AppendEntriesResponse { term, index: last_new, reject: None });
    }

    /// Rejects malformed AppendEntries: entries must be consecutive from
    /// `prev_log_index + 1`, with terms between `prev_log_term` and the current term that
    /// never decrease.
    fn valid_append(&self, prev_log_index: u64, prev_log_term: u64, entries: &[Entry]) -> bool {
        let mut expect = prev_log_index;
        let mut term = prev_log_term;
        for e in entries {
            let Some(next) = expect.checked_add(1) else { return false };
            if e.index != next || e.term < term || e.term > self.term {
                return false;
            }
            expect = next;
            term = e.term;
        }
        prev_log_term <= self.term
    }

    pub(crate) fn on_heartbeat(&mut self, now: Instant, from: NodeId, commit: u64, seq: u64) {
        if !self.accept_leader(now, from) {
            return;
        }
        // The leader caps `commit` at what it knows matches here.
        let commit = commit.min(self.log.last_index());
        if commit > self.commit {
            self.commit = commit;
            self.apply_ready();
        }
        let term = self.term;
        self.send(from, Message::HeartbeatResponse { term, seq });
    }

    pub(crate) fn on_heartbeat_response(&mut self, from: NodeId, seq: u64) {
        let last_index = self.log.last_index();
        let commit = self.commit;
        let Some(i) = self.peer_pos(from) else { return };
        let p = &mut self.peers[i];
        p.recent_active = true;
        p.hb_acked = p.hb_acked.max(seq);
        if p.matched < last_index || p.sent_commit < commit {
            self.need_broadcast = true;
        }
        if matches!(p.state, State::Replicate) && !p.inflights.is_empty() && !p.progressed && !p.stall_probed {
            // Behind, with nothing acknowledged since the last heartbeat: probe the end of
            // what was sent (a lost message shows up as a rejection) instead of waiting
            // for the stall detector. Once per heartbeat interval.
            p.stall_probed = true;
            let prev = p.next - 1;
            if let Some(prev_log_term) = self.log.term_at(prev) {
                let message = Message::AppendEntries {
                    term: self.term,
                    prev_log_index: prev,
                    prev_log_term,
                    entries: Vec::new(),
                    leader_commit: commit,
                };
                self.send(from, message);
            }
        }
        self.advance_reads();
        self.update_lease();
    }

    /// The periodic heartbeat: recover stalled pipelines and lost probes or snapshot
    /// chunks, then send a heartbeat round.
    pub(crate) fn on_heartbeat_tick(&mut self, now: Instant) {
        let retransmit = (self.cfg.election.heartbeat_interval * 2).max(self.cfg.election.timeout_min / 2);
        for p in &mut self.peers {
            match &mut p.state {
                State::Replicate => {
                    // No acknowledgement for a whole interval with messages in flight: one
                    // was probably lost. Resend from the match index.
                    if !p.inflights.is_empty() && !p.progressed {
                        p.stalled_ticks += 1;
                        if p.stalled_ticks >= 2 {
                            p.stalled_ticks = 0;
                            let next = p.matched + 1;
                            p.become_probe(next);
                        }
                    } else {
                        p.stalled_ticks = 0;
                    }
                }
                State::Probe { sent } => *sent = false,
                State::Snapshot(s) => {
                    if s.sent_at.is_some_and(|t| now >= t + retransmit) {
                        s.sent_at = None;
                    }
                }
            }
            p.progressed = false;
            p.stall_probed = false;
        }
        self.need_broadcast = true;
        self.send_heartbeats();
    }

    /// Sends a heartbeat round to every peer (it also confirms pending reads).
    pub(crate) fn send_heartbeats(&mut self) {
        self.hb_seq += 1;
        self.reads.need_round = false;
        let (seq, term, commit, now) = (self.hb_seq, self.term, self.commit, self.now);
        if self.cfg.election.lease_reads {
            let horizon = self.cfg.election.timeout_min;
            while self.hb_sent.front().is_some_and(|&(_, t)| t + horizon <= now) {
                self.hb_sent.pop_front();
            }
            self.hb_sent.push_back((seq, now));
        }
        for p in &self.peers {
            let message = Message::Heartbeat { term, commit: commit.min(p.matched), seq };
            self.out.push(Output::Send { to: p.id, message });
        }
        self.advance_reads();
        self.update_lease();
    }
}
