//! Elections (pre-vote, phase 1 for all slots from a point on) and the leader (phase 2
//! with batching and pipelining, commit, read index, lease, heartbeats).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use ballot_core::{Instant, Membership, NodeId, Output, ProposalId, ProposeError, ReadId, Role};
use bytes::Bytes;

use super::{Message, MultiPaxos};
use crate::{Ballot, Entry, Value};

/// A proposer running for leadership.
#[derive(Debug)]
pub(super) struct Candidate {
    pub(super) ballot: Ballot,
    /// In the pre-vote phase (nothing durable changed yet).
    pre: bool,
    granted: BTreeSet<NodeId>,
    rejected: BTreeSet<NodeId>,
    /// The first slot whose outcome this candidate needs.
    from_slot: u64,
    /// Per acceptor, the `from_slot` of the next Promise page expected.
    next_from: BTreeMap<NodeId, u64>,
    /// Acceptors whose whole promise arrived.
    complete: BTreeSet<NodeId>,
    /// The highest-ballot accepted value reported per slot.
    adopt: BTreeMap<u64, Entry>,
    /// The highest decided prefix reported, and by whom.
    decided: u64,
    decided_by: Option<NodeId>,
}

/// What the leader knows of one peer (and of itself).
#[derive(Debug)]
struct Progress {
    /// The peer.
    id: NodeId,
    /// Next slot to send.
    next: u64,
    /// Every slot from the ballot's start up to here is accepted (durably) in the ballot.
    matched: u64,
    /// Last slot and value bytes of each Accept in flight.
    inflight: VecDeque<(u64, usize)>,
    inflight_bytes: usize,
    /// Already rewound for the current gap; wait for progress before rewinding again.
    rewound: bool,
    /// Last message from the peer in this ballot.
    last_ack: Instant,
    /// Last time `matched` moved (or a rewind).
    progress_at: Instant,
    /// Highest read/lease round acknowledged.
    seq: u64,
    /// Commit index last sent.
    commit_sent: u64,
}

/// The distinguished proposer's state.
#[derive(Debug)]
pub(super) struct Leader {
    pub(super) ballot: Ballot,
    /// The first slot proposed in this ballot; everything before it was decided when
    /// phase 1 completed.
    start: u64,
    /// The last slot re-proposed (or filled) at takeover. Every slot decided before this
    /// ballot's phase 1 completed is at most this one; unlike Raft, where committing the
    /// term's first entry commits everything before it, re-proposed slots are decided
    /// independently, so reads wait until all of them are.
    takeover_end: u64,
    next_slot: u64,
    /// Last slot whose own (durable) acceptance was requested.
    written: u64,
    /// One per member, in id order (a handful: scanned, not searched).
    progress: Vec<Progress>,
    /// Current read/lease round and when each unacknowledged round was sent.
    seq: u64,
    rounds: VecDeque<(u64, Instant)>,
    read_round_needed: bool,
    pub(super) lease_until: Instant,
    /// Reads with their read index and the round that confirms them.
    reads: VecDeque<(ReadId, u64, u64)>,
    /// Reads waiting for the takeover range to be decided.
    early_reads: Vec<ReadId>,
    /// Room for the value vectors of one Accept to several followers, kept between
    /// flushes (see [`MultiPaxos::flush`]).
    fanout: Vec<Vec<Value>>,
}

/// Most unacknowledged rounds remembered for the lease.
const MAX_ROUNDS: usize = 1024;

impl MultiPaxos {
    // ---- Elections. ----

    /// The election timer fired: probe (pre-vote) or prepare a ballot above all seen.
    pub(super) fn campaign(&mut self, now: Instant) {
        self.reset_election_timer(now);
        let round = self.max_round_seen.max(self.promised.round) + 1;
        let ballot = Ballot::new(round, self.id());
        self.set_leader(None, self.promised.round);
        if self.cfg.election.pre_vote {
            self.candidate = Some(Candidate::new(ballot, true, self.commit + 1));
            self.set_role(Role::PreCandidate);
            self.broadcast_voters(&Message::PrePrepare { ballot });
        } else {
            self.start_prepare(now);
        }
    }

    fn start_prepare(&mut self, now: Instant) {
        self.reset_election_timer(now);
        let round = self.max_round_seen.max(self.promised.round) + 1;
        self.max_round_seen = round;
        let ballot = Ballot::new(round, self.id());
        let from_slot = self.commit + 1;
        let mut c = Candidate::new(ballot, false, from_slot);
        for v in self.membership.all_voters() {
            c.next_from.insert(v, from_slot);
        }
        self.candidate = Some(c);
        self.set_role(Role::Candidate);
        self.broadcast_voters(&Message::Prepare { ballot, from_slot });
    }

    fn broadcast_voters(&mut self, message: &Message) {
        for v in self.membership.all_voters() {
            self.out.send(v, message.clone());
        }
    }

    /// Resends the probe or the prepares still unanswered.
    pub(super) fn candidate_tick(&mut self) {
        let Some(c) = &self.candidate else { return };
        let ballot = c.ballot;
        let mut sends = Vec::new();
        for v in self.membership.all_voters() {
            if v == self.id() {
                continue;
            }
            if c.pre {
                if !c.granted.contains(&v) && !c.rejected.contains(&v) {
                    sends.push((v, Message::PrePrepare { ballot }));
                }
            } else if !c.complete.contains(&v) && !c.rejected.contains(&v) {
                let from_slot = c.next_from.get(&v).copied().unwrap_or(c.from_slot);
                sends.push((v, Message::Prepare { ballot, from_slot }));
            }
        }
        for (to, m) in sends {
            self.out.send(to, m);
        }
    }

    pub(super) fn on_pre_promise(&mut self, now: Instant, from: NodeId, ballot: Ballot, granted: bool) {
        let Some(c) = self.candidate.as_mut() else { return };
        if !c.pre || c.ballot != ballot || !self.membership.is_voter(from) {
            return;
        }
        if granted {
            c.granted.insert(from);
        } else {
            c.rejected.insert(from);
        }
        if self.membership.is_quorum(|n| c.granted.contains(&n)) {
            self.start_prepare(now);
        } else if !self.membership.is_quorum(|n| !c.rejected.contains(&n)) {
            self.become_follower(now, None, self.promised.round);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_promise(
        &mut self,
        now: Instant,
        from: NodeId,
        ballot: Ballot,
        from_slot: u64,
        decided: u64,
        entries: Vec<Entry>,
        more: Option<u64>,
    ) {
        let span = self.max_span();
        let Some(c) = self.candidate.as_mut() else { return };
        if c.pre || c.ballot != ballot || c.complete.contains(&from) || c.next_from.get(&from) != Some(&from_slot) {
            return;
        }
        let limit = decided.max(from_slot).saturating_add(span);
        let bad = entries.iter().any(|e| e.slot < from_slot || e.slot > limit || e.ballot > ballot)
            || more.is_some_and(|m| m <= from_slot);
        if bad {
            return self.invalid(from, "promise entries out of range");
        }
        for e in entries {
            if e.slot < c.from_slot {
                continue;
            }
            match c.adopt.get(&e.slot) {
                Some(old) if old.ballot >= e.ballot => {}
                _ => {
                    c.adopt.insert(e.slot, e);
                }
            }
        }
        if decided > c.decided {
            c.decided = decided;
            c.decided_by = Some(from);
        }
        match more {
            Some(next) => {
                c.next_from.insert(from, next);
                self.out.send(from, Message::Prepare { ballot, from_slot: next });
            }
            None => {
                c.complete.insert(from);
                // A quorum, this candidate's own (durable) promise among it: then a restart
                // finds the ballot promised and never leads in it again — a second
                // incarnation proposing other values in the same ballot would break Paxos.
                if c.complete.contains(&self.cfg.id) && self.membership.is_quorum(|n| c.complete.contains(&n)) {
                    self.become_leader(now);
                }
            }
        }
    }

    /// How far beyond the decided prefix accepted slots may legitimately lie.
    fn max_span(&self) -> u64 {
        (self.cfg.max_pending_proposals as u64).saturating_mul(16).max(1 << 16)
    }

    pub(super) fn on_nack(&mut self, now: Instant, from: NodeId, ballot: Ballot, promised: Ballot) {
        self.max_round_seen = self.max_round_seen.max(promised.round);
        if let Some(l) = &self.lead {
            if l.ballot == ballot && promised > ballot {
                // Pre-empted by a higher ballot.
                self.become_follower(now, None, promised.round);
            }
            return;
        }
        let Some(c) = self.candidate.as_mut() else { return };
        if c.ballot != ballot {
            return;
        }
        if promised > ballot {
            self.become_follower(now, None, promised.round);
            return;
        }
        // The acceptor follows a live leader.
        c.rejected.insert(from);
        if !self.membership.is_quorum(|n| !c.rejected.contains(&n)) {
            self.become_follower(now, None, self.promised.round);
        }
    }

    /// Phase 1 completed with a quorum: take over every slot from the decided prefix on.
    fn become_leader(&mut self, now: Instant) {
        let Some(c) = self.candidate.take() else { return };
        let decided = self.commit.max(c.decided);
        let start = decided + 1;
        let max_slot = c.adopt.last_key_value().map_or(decided, |(&s, _)| s).max(decided);
        let mut progress = Vec::new();
        for id in self.membership.members() {
            progress.push(Progress {
                id,
                next: start,
                matched: start - 1,
                inflight: VecDeque::new(),
                inflight_bytes: 0,
                rewound: false,
                last_ack: now,
                progress_at: now,
                seq: 0,
                commit_sent: 0,
            });
        }
        self.lead = Some(Leader {
            ballot: c.ballot,
            start,
            takeover_end: max_slot.max(start),
            next_slot: start,
            written: start - 1,
            progress,
            seq: 0,
            rounds: VecDeque::new(),
            read_round_needed: false,
            lease_until: Instant::ZERO,
            reads: VecDeque::new(),
            early_reads: Vec::new(),
            fanout: Vec::new(),
        });
        self.set_role(Role::Leader);
        self.set_leader(Some(self.id()), c.ballot.round);
        // Re-propose what a quorum reported accepted, fill the holes with no-ops.
        let mut adopt = c.adopt;
        for slot in start..=max_slot {
            let value = adopt.remove(&slot).map_or(Value::Noop, |e| e.value);
            self.append(slot, value);
        }
        if max_slot < start {
            // Decide one slot in this ballot before serving reads (like Raft's no-op).
            self.append(start, Value::Noop);
        }
        if self.commit < decided {
            self.catchup.goal = decided;
            self.catchup.source = c.decided_by;
            self.catchup.attempts = 0;
            self.maybe_catch_up(now, true);
        }
        self.tick_at = now;
    }

    /// Leaves any leader or candidate role.
    pub(super) fn become_follower(&mut self, now: Instant, leader: Option<NodeId>, round: u64) {
        self.candidate = None;
        if let Some(l) = self.lead.take() {
            for (id, _, _) in l.reads {
                self.out.push(Output::ReadFailed { id, error: ProposeError::LeadershipLost });
            }
            for id in l.early_reads {
                self.out.push(Output::ReadFailed { id, error: ProposeError::LeadershipLost });
            }
        }
        self.reset_election_timer(now);
        self.set_role(if self.is_voter() { Role::Follower } else { Role::Learner });
        self.set_leader(leader, round);
    }

    // ---- Leader: proposals and replication. ----

    fn append(&mut self, slot: u64, value: Value) {
        let Some(l) = self.lead.as_mut() else { return };
        let e = Entry { slot, ballot: l.ballot, value };
        l.next_slot = slot + 1;
        self.out.push_entry(e.clone());
        self.log.insert(e);
    }

    pub(super) fn leader_propose(&mut self, id: ProposalId, command: Bytes) -> Result<(), ProposeError> {
        if command.len() > self.cfg.max_command_size {
            return Err(ProposeError::TooLarge { size: command.len(), max: self.cfg.max_command_size });
        }
        let Some(l) = &self.lead else {
            return Err(ProposeError::NotLeader { leader: self.leader });
        };
        if l.next_slot - 1 - self.commit.min(l.next_slot - 1) >= self.cfg.max_pending_proposals as u64 {
            return Err(ProposeError::Busy);
        }
        let (slot, ballot) = (l.next_slot, l.ballot);
        self.append(slot, Value::Command { data: command });
        self.add_pending(slot, id, ballot);
        Ok(())
    }

    /// Emits what accumulated since the last drain: the leader's own durable
    /// acceptance, read rounds, Accepts and commit notifications, then the write batch.
    pub(super) fn flush(&mut self) {
        let now = self.now;
        let id = self.id();
        let commit = self.commit;
        let snap = self.snapshot_index();
        let (max_slots, max_bytes, max_inflight, max_inflight_bytes) = (
            self.cfg.max_accept_slots,
            self.cfg.max_accept_bytes,
            self.cfg.max_inflight_accepts,
            self.cfg.max_inflight_bytes,
        );
        if self.lead.is_some() {
            self.check_reads();
        }
        let lease = self.cfg.election.lease_reads;
        if let Some(l) = self.lead.as_mut() {
            if l.written + 1 < l.next_slot {
                let m = Message::Accepted {
                    ballot: l.ballot,
                    first_slot: l.written + 1,
                    last_slot: l.next_slot - 1,
                    seq: l.seq,
                };
                l.written = l.next_slot - 1;
                self.out.send_durable(id, m);
            }
            if l.read_round_needed {
                l.read_round_needed = false;
                l.new_round(id, now, lease);
                for p in l.progress.iter_mut().filter(|p| p.id != id) {
                    let to = p.id;
                    p.commit_sent = commit;
                    self.out.send(to, Message::Heartbeat { ballot: l.ballot, commit, seq: l.seq });
                }
            }
            let can_send =
                |p: &Progress| p.id != id && p.inflight.len() < max_inflight && p.inflight_bytes < max_inflight_bytes;
            // The followers due the same next Accept (usually all of them) get their copies
            // of its values from one walk over the log: each entry and its command's
            // reference count are touched once, not once per follower.
            let mut shared = std::mem::take(&mut l.fanout);
            let mut shared_from = 0;
            let mut shared_bytes = 0;
            if let Some(first) = l.progress.iter().find(|p| can_send(p) && p.next.max(snap + 1) < l.next_slot) {
                let from = first.next.max(snap + 1);
                let room = (l.next_slot - from).min(max_slots as u64);
                let n = l.progress.iter().filter(|p| can_send(p) && p.next.max(snap + 1) == from).count();
                if n > 1 {
                    shared.resize_with(n, Vec::new);
                    shared_bytes = self.log.values_into(from, room, max_bytes, &mut shared);
                    shared_from = from;
                }
            }
            for p in l.progress.iter_mut().filter(|p| p.id != id) {
                let to = p.id;
                p.next = p.next.max(snap + 1);
                let mut sent = false;
                while p.inflight.len() < max_inflight && p.inflight_bytes < max_inflight_bytes && p.next < l.next_slot {
                    let room = (l.next_slot - p.next).min(max_slots as u64);
                    let (values, bytes) = match shared.pop() {
                        Some(values) if p.next == shared_from => (values, shared_bytes),
                        other => {
                            shared.extend(other);
                            self.log.values_from(p.next, room, max_bytes)
                        }
                    };
                    if values.is_empty() {
                        break;
                    }
                    let first_slot = p.next;
                    p.next += values.len() as u64;
                    p.inflight.push_back((p.next - 1, bytes));
                    p.inflight_bytes += bytes;
                    p.commit_sent = commit;
                    sent = true;
                    self.out.send(to, Message::Accept { ballot: l.ballot, first_slot, values, commit, seq: l.seq });
                }
                if !sent && p.commit_sent < commit {
                    p.commit_sent = commit;
                    self.out.send(to, Message::Commit { ballot: l.ballot, commit });
                }
            }
            shared.clear();
            l.fanout = shared;
        }
        self.out.flush_persist();
        if self.lead.is_some() {
            self.check_reads();
        }
    }

    pub(super) fn on_accepted(
        &mut self,
        now: Instant,
        from: NodeId,
        ballot: Ballot,
        first_slot: u64,
        last_slot: u64,
        seq: u64,
    ) {
        let snap = self.snapshot_index();
        let commit = self.commit;
        let Some(l) = self.lead.as_mut() else { return };
        if l.ballot != ballot || last_slot < first_slot {
            return;
        }
        let Some(p) = l.progress.iter_mut().find(|p| p.id == from) else { return };
        p.last_ack = now;
        p.seq = p.seq.max(seq.min(l.seq));
        // Slots this leader knows decided need no acknowledgement: once it compacted
        // them (or installed a snapshot past them) it cannot resend them, and a peer's
        // acknowledgements continue above them.
        p.matched = p.matched.max(commit.min(l.next_slot - 1));
        let before = p.matched;
        if first_slot <= p.matched + 1 {
            // In order. Every Accept in flight up to `last_slot` has been handled (this
            // one, or one sent before it): free its place in the window, even when the
            // slots were already decided without this peer — a slower acceptor's
            // acknowledgements arrive after the faster quorum decided them, and its
            // window must still drain or the leader stops sending to it.
            if last_slot > p.matched {
                p.matched = last_slot.min(l.next_slot - 1);
                p.rewound = false;
                p.progress_at = now;
                p.next = p.next.max(p.matched + 1);
            }
            if p.free_inflight_upto(last_slot) {
                p.progress_at = now;
            }
        } else if !p.rewound {
            // An Accept was lost: resend from the first slot the peer lacks.
            p.next = (p.matched + 1).max(snap + 1);
            p.clear_inflight();
            p.rewound = true;
            p.progress_at = now;
        }
        // Only an acceptor passing the commit point can move it.
        if p.matched > before && p.matched > self.commit {
            self.leader_commit_changed(now);
        } else if !l.reads.is_empty() || !l.rounds.is_empty() {
            self.check_reads();
        }
    }

    pub(super) fn on_heartbeat_ack(&mut self, now: Instant, from: NodeId, ballot: Ballot, seq: u64) {
        let Some(l) = self.lead.as_mut() else { return };
        if l.ballot != ballot {
            return;
        }
        if let Some(p) = l.progress.iter_mut().find(|p| p.id == from) {
            p.last_ack = now;
            p.seq = p.seq.max(seq.min(l.seq));
        }
        self.check_reads();
    }

    /// Recomputes the decided prefix from the quorum's acceptances (once the slots
    /// before the ballot's start are all known here) and applies it.
    pub(super) fn leader_commit_changed(&mut self, _now: Instant) {
        let Some(l) = &self.lead else { return };
        if self.commit + 1 < l.start {
            return;
        }
        let chosen = l.quorum_value(&self.membership, |p| p.matched);
        if chosen > self.commit {
            self.commit = chosen;
            self.apply_committed();
        }
        self.check_reads();
    }

    // ---- Reads. ----

    pub(super) fn leader_read(&mut self, now: Instant, id: ReadId) -> Result<(), ProposeError> {
        let commit = self.commit;
        let lease = self.cfg.election.lease_reads;
        let Some(l) = self.lead.as_mut() else {
            return Err(ProposeError::NotLeader { leader: self.leader });
        };
        if l.reads.len() + l.early_reads.len() >= self.cfg.max_pending_proposals {
            return Err(ProposeError::Busy);
        }
        if commit < l.takeover_end {
            l.early_reads.push(id);
        } else if lease && now < l.lease_until {
            self.out.push(Output::ReadReady { id, index: commit });
        } else {
            l.reads.push_back((id, commit, l.seq + 1));
            l.read_round_needed = true;
        }
        Ok(())
    }

    /// Releases reads whose round a quorum acknowledged, and extends the lease.
    #[inline]
    fn check_reads(&mut self) {
        // The common case (no read waiting, no lease round outstanding) costs a check.
        if let Some(l) = &self.lead
            && !(l.reads.is_empty() && l.early_reads.is_empty() && l.rounds.is_empty())
        {
            self.release_reads();
        }
    }

    fn release_reads(&mut self) {
        let commit = self.commit;
        let now = self.now;
        let lease = self.cfg.election.lease();
        let id = self.id();
        let Some(l) = self.lead.as_mut() else { return };
        if commit < l.takeover_end || (l.reads.is_empty() && l.early_reads.is_empty() && l.rounds.is_empty()) {
            return;
        }
        for rid in std::mem::take(&mut l.early_reads) {
            if lease.is_some() && now < l.lease_until {
                self.out.push(Output::ReadReady { id: rid, index: commit });
            } else {
                l.reads.push_back((rid, commit, l.seq + 1));
                l.read_round_needed = true;
            }
        }
        let seq = l.seq;
        if let Some(p) = l.peer_mut(id) {
            p.seq = seq;
        }
        let acked = l.quorum_value(&self.membership, |p| p.seq);
        while l.reads.front().is_some_and(|r| r.2 <= acked) {
            if let Some((rid, index, _)) = l.reads.pop_front() {
                self.out.push(Output::ReadReady { id: rid, index });
            }
        }
        while l.rounds.front().is_some_and(|r| r.0 <= acked) {
            if let Some((_, sent)) = l.rounds.pop_front()
                && let Some(d) = lease
            {
                l.lease_until = l.lease_until.max(sent + d);
            }
        }
    }

    // ---- Leader timers. ----

    pub(super) fn leader_tick(&mut self, now: Instant) {
        let id = self.id();
        let timeout = self.cfg.election.timeout_min;
        let Some(l) = self.lead.as_ref() else { return };
        if self.cfg.election.check_quorum
            && !self.membership.is_quorum(|n| {
                n == id || l.peer(n).is_some_and(|p| now.saturating_duration_since(p.last_ack) < timeout)
            })
        {
            let round = l.ballot.round;
            return self.become_follower(now, None, round);
        }
        let commit = self.commit;
        let snap = self.snapshot_index();
        let retransmit_after = self.cfg.election.heartbeat_interval * 2;
        let lease = self.cfg.election.lease_reads;
        let Some(l) = self.lead.as_mut() else { return };
        l.new_round(id, now, lease);
        for p in l.progress.iter_mut().filter(|p| p.id != id) {
            let to = p.id;
            p.commit_sent = commit;
            self.out.send(to, Message::Heartbeat { ballot: l.ballot, commit, seq: l.seq });
            // Stalled with Accepts outstanding (beyond what the peer acknowledged, or
            // window entries whose acknowledgement was lost): resend from the first slot
            // the peer lacks, with an empty window.
            let outstanding = p.next > p.matched + 1 || !p.inflight.is_empty();
            if outstanding && now.saturating_duration_since(p.progress_at) >= retransmit_after {
                p.next = (p.matched + 1).max(snap + 1);
                p.clear_inflight();
                p.progress_at = now;
            }
        }
        self.check_reads();
    }
}

impl Candidate {
    fn new(ballot: Ballot, pre: bool, from_slot: u64) -> Self {
        Candidate {
            ballot,
            pre,
            granted: BTreeSet::new(),
            rejected: BTreeSet::new(),
            from_slot,
            next_from: BTreeMap::new(),
            complete: BTreeSet::new(),
            adopt: BTreeMap::new(),
            decided: 0,
            decided_by: None,
        }
    }
}

impl Progress {
    /// Frees the Accepts in flight whose last slot is at most `slot`; whether any was.
    fn free_inflight_upto(&mut self, slot: u64) -> bool {
        let mut freed = false;
        while let Some(&(last, bytes)) = self.inflight.front()
            && last <= slot
        {
            self.inflight.pop_front();
            self.inflight_bytes -= bytes;
            freed = true;
        }
        freed
    }

    fn clear_inflight(&mut self) {
        self.inflight.clear();
        self.inflight_bytes = 0;
    }
}

impl Leader {
    /// Starts a new read/lease round sent now (remembering when, for a lease).
    fn new_round(&mut self, id: NodeId, now: Instant, lease: bool) {
        self.seq += 1;
        if lease {
            self.rounds.push_back((self.seq, now));
            if self.rounds.len() > MAX_ROUNDS {
                self.rounds.pop_front();
            }
        }
        let seq = self.seq;
        if let Some(p) = self.peer_mut(id) {
            p.seq = seq;
        }
    }

    /// The greatest value a quorum of voters has reached, by `value` of their progress.
    fn quorum_value(&self, membership: &Membership, value: impl Fn(&Progress) -> u64) -> u64 {
        membership.quorum_min(|id| self.peer(id).map_or(0, &value))
    }

    fn peer(&self, id: NodeId) -> Option<&Progress> {
        self.progress.iter().find(|p| p.id == id)
    }

    fn peer_mut(&mut self, id: NodeId) -> Option<&mut Progress> {
        self.progress.iter_mut().find(|p| p.id == id)
    }
}
