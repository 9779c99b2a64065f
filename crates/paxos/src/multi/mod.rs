//! Multi-Paxos: a distinguished leader runs phase 1 once for every slot from a point on,
//! then only phase 2 per batch of commands. See `docs/paxos.md` for the design.
//!
//! This file holds the replica's state, the acceptor and learner sides (promises,
//! accepts, commit notification, catch-up, snapshots) and the [`Protocol`] impl;
//! `leader.rs` holds elections and the leader.

mod config;
mod leader;
mod log;
mod message;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use ballot_core::{
    Apply, Event, Instant, Membership, NodeId, Output, PersistId, ProposalId, ProposeError, Protocol, ReadId,
    Recovered, Role, SeededRng, Snapshot, SnapshotMeta, Status,
};
use bytes::{Bytes, BytesMut};

pub use config::Config;
use leader::{Candidate, Leader};
use log::SlotLog;
pub use message::Message;

use crate::{Ballot, Entry, HardState, PaxosError, Value};
use ballot_core::Outbox;

/// Progress of this replica's own catch-up.
#[derive(Debug, Default)]
struct CatchUp {
    /// Slots up to here are known decided somewhere.
    goal: u64,
    /// Who to ask first.
    source: Option<NodeId>,
    /// When the outstanding request was sent.
    in_flight: Option<Instant>,
    /// The commit index at the previous tick, to notice a stall.
    commit_at_tick: u64,
    /// Requests sent for the current gap, to rotate sources.
    attempts: u64,
}

/// A proposal of this incarnation waiting for its slot to be decided.
///
/// Values do not name their proposer: a slot decided with a value accepted in the very
/// ballot this replica proposed in holds this proposal, since the leader of a ballot
/// proposes one value per slot, and ballots are never reused (the leader's own promise
/// is durable before it proposes). A slot decided in another ballot may hold the same
/// command re-proposed by a later leader, or another one: the outcome is reported as
/// unknown, and clients retry through their sessions.
#[derive(Clone, Copy, Debug)]
struct Pending {
    slot: u64,
    id: ProposalId,
    ballot: Ballot,
}

/// A snapshot being received.
#[derive(Debug)]
struct SnapshotRecv {
    from: NodeId,
    meta: SnapshotMeta,
    total: u64,
    buf: BytesMut,
    last_at: Instant,
}

/// A snapshot being sent to one peer.
#[derive(Debug)]
struct SnapshotSend {
    snapshot: Snapshot,
    next: u64,
    acked: u64,
    sent_empty: bool,
    rewound_at: Option<u64>,
    /// Last acknowledgement that moved `acked` (or the start); for giving up.
    acked_at: Instant,
    /// Last progress or resend; for resending after a stall.
    progress_at: Instant,
    /// When `acked` last moved (either way): a lower offset soon after is taken for a
    /// stale acknowledgement, not for a receiver that lost its copy.
    moved_at: Instant,
}

/// A Multi-Paxos replica: proposer, acceptor and learner of an unbounded sequence of
/// slots, implementing [`Protocol`].
///
/// # Polling order
///
/// After every input (`handle_message`, `handle_timeout`, `propose`, `read`,
/// `persisted`, `compact`) drain [`poll_output`](Protocol::poll_output) until `None`,
/// then arm a timer for [`poll_timeout`](Protocol::poll_timeout). Carry out `Persist`
/// batches in order and acknowledge them with `persisted`; send `Send` messages in any
/// order (promises and accepts are held back until the writes they depend on are
/// acknowledged); hand `Apply` items to the service in order. Proposals made between two
/// drains are batched into one Accept per peer and one `Persist`.
#[derive(Debug)]
pub struct MultiPaxos {
    cfg: Config,
    membership: Membership,
    /// Whether this replica votes in `membership` (cached: asked on every timer poll).
    voter: bool,
    rng: SeededRng,
    out: Outbox<Message, Entry, HardState>,
    /// Time of the latest input.
    now: Instant,
    /// An input arrived since the last [`flush`](Self::flush): the next `poll_output`
    /// that finds the queue empty must flush. A flush right after a flush has nothing to
    /// add, so a driver polling an idle replica costs no more than a queue check.
    flush_due: bool,

    // Acceptor.
    promised: Ballot,
    log: SlotLog,
    snapshot: Option<Snapshot>,

    // Learner.
    commit: u64,
    /// The last slot handed out as [`Output::Apply`].
    applied: u64,
    /// The last slot whose `Apply` is queued (built when polled, see
    /// [`next_apply`](Self::next_apply)).
    apply_queued: u64,
    hs_written: HardState,
    /// The newest commit announcement: (leader ballot, decided prefix).
    known: (Ballot, u64),
    catchup: CatchUp,
    snap_recv: Option<SnapshotRecv>,
    snap_sends: BTreeMap<NodeId, SnapshotSend>,
    /// This incarnation's proposals awaiting decision, in slot order: the slot, the
    /// proposal, and the ballot this replica led when it put the proposal there.
    pending: VecDeque<Pending>,

    // Roles.
    role: Role,
    leader: Option<NodeId>,
    reported_leader: (Option<NodeId>, u64),
    last_leader_contact: Instant,
    election_base: Instant,
    election_rand: Duration,
    tick_at: Instant,
    max_round_seen: u64,
    candidate: Option<Candidate>,
    lead: Option<Leader>,

    invalid_messages: u64,
    last_error: Option<PaxosError>,
}

impl MultiPaxos {
    /// Builds replica `config.id` from its durable state (`Recovered::default()` on
    /// first start). `initial` is the membership unless the recovered snapshot carries
    /// one. A recovered snapshot is handed out first as [`Apply::Restore`], followed by
    /// the decided slots after it.
    ///
    /// # Errors
    /// [`PaxosError::InvalidConfig`] for bad settings; [`PaxosError::CorruptRecovery`] when
    /// the recovered state contradicts itself (decided slots missing from the log, slot 0).
    pub fn new(
        config: Config,
        initial: Membership,
        recovered: Recovered<Entry, HardState>,
        mut rng: SeededRng,
        now: Instant,
    ) -> Result<Self, PaxosError> {
        config.validate()?;
        let hs = recovered.hard_state.unwrap_or_default();
        let snap_index = recovered.snapshot.as_ref().map_or(0, |s| s.meta.index);
        let membership = recovered.snapshot.as_ref().map_or(initial, |s| s.meta.membership.clone());
        let mut promised = hs.promised;
        let mut log = SlotLog::new(snap_index + 1);
        for e in recovered.entries {
            if e.slot == 0 {
                return Err(PaxosError::CorruptRecovery("an entry has slot 0".into()));
            }
            if e.ballot == Ballot::ZERO {
                return Err(PaxosError::CorruptRecovery(format!("the entry at slot {} has ballot zero", e.slot)));
            }
            if e.slot > snap_index {
                promised = promised.max(e.ballot);
                log.insert(e);
            }
        }
        let commit = hs.decided.max(snap_index);
        if let Some(missing) = (snap_index + 1..=commit).find(|&s| !log.contains(s)) {
            return Err(PaxosError::CorruptRecovery(format!(
                "hard state says slots up to {commit} are decided but slot {missing} is not stored"
            )));
        }
        let role = if membership.is_voter(config.id) { Role::Follower } else { Role::Learner };
        let election_rand = config.election.random_timeout(&mut rng);
        let mut p = MultiPaxos {
            out: Outbox::new(config.id),
            rng,
            now,
            flush_due: true,
            promised,
            log,
            snapshot: recovered.snapshot,
            commit,
            applied: snap_index,
            apply_queued: snap_index,
            hs_written: hs,
            known: (Ballot::ZERO, 0),
            catchup: CatchUp::default(),
            snap_recv: None,
            snap_sends: BTreeMap::new(),
            pending: VecDeque::new(),
            role,
            leader: None,
            reported_leader: (None, 0),
            // Counting the start as leader contact keeps a restarted acceptor from
            // promising a new ballot within a lease granted before it crashed.
            last_leader_contact: now,
            election_base: now,
            election_rand,
            tick_at: now + config.election.heartbeat_interval,
            max_round_seen: promised.round,
            candidate: None,
            lead: None,
            voter: membership.is_voter(config.id),
            membership,
            cfg: config,
            invalid_messages: 0,
            last_error: None,
        };
        if let Some(s) = &p.snapshot {
            p.out.push(Output::Apply(Apply::Restore(Box::new(s.clone()))));
        }
        p.apply_committed();
        Ok(p)
    }

    // ---- Introspection (for status pages, tests and the simulator's checkers). ----

    /// The ballot this replica acts under: its own while leading or running, else the
    /// highest it promised.
    #[must_use]
    pub fn ballot(&self) -> Ballot {
        if let Some(l) = &self.lead {
            l.ballot
        } else if let Some(c) = &self.candidate {
            c.ballot
        } else {
            self.promised
        }
    }

    /// The highest ballot this acceptor promised.
    #[must_use]
    pub fn promised(&self) -> Ballot {
        self.promised
    }

    /// This replica's role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    /// The leader this replica follows (itself while leading).
    #[must_use]
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// Every slot up to this one is decided and known here.
    #[must_use]
    pub fn commit_index(&self) -> u64 {
        self.commit
    }

    /// The last slot handed out as [`Output::Apply`].
    #[must_use]
    pub fn applied_index(&self) -> u64 {
        self.applied
    }

    /// The value decided for `slot`, if this replica knows it and has not compacted it.
    #[must_use]
    pub fn decided(&self, slot: u64) -> Option<&Value> {
        if slot == 0 || slot > self.commit {
            return None;
        }
        self.log.get(slot).map(|(_, value)| value)
    }

    /// The ballot and value this acceptor accepted for `slot`, decided or not.
    #[must_use]
    pub fn accepted(&self, slot: u64) -> Option<(Ballot, &Value)> {
        self.log.get(slot)
    }

    /// The first slot still in the log (one past the snapshot).
    #[must_use]
    pub fn first_index(&self) -> u64 {
        self.snapshot_index() + 1
    }

    /// The highest slot this acceptor holds a value for (or the snapshot index).
    #[must_use]
    pub fn last_index(&self) -> u64 {
        self.log.last_slot().unwrap_or(0).max(self.snapshot_index()).max(self.commit)
    }

    /// The index of the latest snapshot (0 if none).
    #[must_use]
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |s| s.meta.index)
    }

    /// The membership in force.
    #[must_use]
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// How many malformed messages were dropped.
    #[must_use]
    pub fn invalid_messages(&self) -> u64 {
        self.invalid_messages
    }

    /// The last malformed message's error, if any.
    #[must_use]
    pub fn last_error(&self) -> Option<&PaxosError> {
        self.last_error.as_ref()
    }

    /// Whether this leader currently holds a read lease (always `false` without
    /// [`Config::lease_reads`]).
    #[must_use]
    pub fn has_lease(&self) -> bool {
        self.cfg.election.lease_reads && self.lead.as_ref().is_some_and(|l| self.now < l.lease_until)
    }

    // ---- Shared helpers. ----

    fn id(&self) -> NodeId {
        self.cfg.id
    }

    fn is_voter(&self) -> bool {
        self.voter
    }

    fn invalid(&mut self, from: NodeId, reason: &'static str) {
        self.invalid_messages += 1;
        self.last_error = Some(PaxosError::InvalidMessage { from, reason });
    }

    /// Adds the current hard state to the pending write.
    fn persist_hard_state(&mut self) {
        let hs = HardState { promised: self.promised, decided: self.commit };
        self.hs_written = hs;
        self.out.batch().hard_state = Some(hs);
    }

    fn set_role(&mut self, role: Role) {
        if self.role != role {
            self.role = role;
            self.out.push(Output::Event(Event::RoleChanged(role)));
        }
    }

    fn set_leader(&mut self, leader: Option<NodeId>, round: u64) {
        self.leader = leader;
        if self.reported_leader != (leader, round) && (leader.is_some() || self.reported_leader.0.is_some()) {
            self.reported_leader = (leader, round);
            self.out.push(Output::Event(Event::LeaderChanged { leader, term: round }));
        }
    }

    fn reset_election_timer(&mut self, now: Instant) {
        self.election_base = now;
        self.election_rand = self.cfg.election.random_timeout(&mut self.rng);
    }

    /// Whether this acceptor refuses new proposers because a leader is alive.
    fn sticky(&self, now: Instant) -> bool {
        self.role == Role::Leader || now < self.last_leader_contact + self.cfg.election.timeout_min
    }

    fn nack(&mut self, to: NodeId, ballot: Ballot) {
        let m = Message::Nack { ballot, promised: self.promised, leader: self.leader };
        self.out.send(to, m);
    }

    /// Hands decided slots to the service, in order: queues their `Apply` items, which
    /// [`next_apply`](Self::next_apply) builds from the log when they are polled
    /// (decided slots do not change until compaction, which builds them first).
    fn apply_committed(&mut self) {
        let upto = if self.apply_queued < self.commit {
            self.log.held_through(self.apply_queued + 1, self.commit)
        } else {
            self.apply_queued
        };
        if upto > self.apply_queued {
            self.apply_queued = upto;
            self.out.push_apply_up_to(upto);
        }
    }

    /// The next output for the queued `Apply` items up to `upto`, or `None` once they are
    /// all out. A proposal of this incarnation waiting in a slot that decided something
    /// else is failed first (the next call then hands out the slot).
    #[inline(never)]
    fn next_apply(&mut self, upto: u64) -> Option<Output<Message, Entry, HardState>> {
        let slot = self.applied + 1;
        if slot > upto {
            return None;
        }
        let (ballot, value) = self.log.get(slot)?;
        let mut proposal = None;
        if let Some(&p) = self.pending.front()
            && p.slot == slot
        {
            self.pending.pop_front();
            if p.ballot != ballot || matches!(value, Value::Noop) {
                return Some(Output::ProposalFailed { id: p.id, error: ProposeError::LeadershipLost });
            }
            proposal = Some(p.id);
        }
        self.applied = slot;
        Some(Output::Apply(match value {
            Value::Noop => Apply::Internal { index: slot },
            Value::Command { data } => Apply::Command { index: slot, command: data.clone(), proposal },
        }))
    }

    /// [`Protocol::poll_output`] beyond its usual calls: `Apply` items due, or a flush.
    #[inline(never)]
    fn poll_output_slow(&mut self) -> Option<Output<Message, Entry, HardState>> {
        loop {
            if let Some(upto) = self.out.front_apply_up_to() {
                if let Some(o) = self.next_apply(upto) {
                    return Some(o);
                }
                self.out.pop_apply_up_to();
                if self.applied < upto {
                    // A slot missing from the log (never for a decided one): queue again.
                    self.apply_queued = self.applied;
                }
                continue;
            }
            if let Some(o) = self.out.pop_unchecked() {
                return Some(o);
            }
            if !self.flush_due {
                return None;
            }
            self.flush_due = false;
            self.flush();
        }
    }

    /// Builds every queued `Apply` item now, in place (before the log drops slots).
    fn materialize_applies(&mut self) {
        if !self.out.has_applies() {
            return;
        }
        let (outputs, applies) = self.out.take_for_build();
        let mut built = VecDeque::with_capacity(outputs.len());
        let mut applies = applies.into_iter().peekable();
        for (i, o) in outputs.into_iter().enumerate() {
            while let Some((_, upto)) = applies.next_if(|&(at, _)| at == i) {
                while let Some(a) = self.next_apply(upto) {
                    built.push_back(a);
                }
            }
            built.push_back(o);
        }
        for (_, upto) in applies {
            while let Some(a) = self.next_apply(upto) {
                built.push_back(a);
            }
        }
        self.out.put_built(built);
        // Whatever could not be built (a slot missing from the log, which a decided slot
        // never is) is queued again by the next `apply_committed`.
        self.apply_queued = self.applied;
    }

    /// Proposals in slots covered by a snapshot: their outcome is unknown here.
    fn fail_pending_upto(&mut self, index: u64) {
        while let Some(&p) = self.pending.front() {
            if p.slot > index {
                break;
            }
            self.pending.pop_front();
            self.out.push(Output::ProposalFailed { id: p.id, error: ProposeError::LeadershipLost });
        }
    }

    /// Records that this incarnation's proposal `id` sits in `slot`, proposed in
    /// `ballot`. A proposal still waiting in the same slot (proposed in an earlier
    /// leadership, then overwritten) has an unknown outcome: it is failed.
    fn add_pending(&mut self, slot: u64, id: ProposalId, ballot: Ballot) {
        let p = Pending { slot, id, ballot };
        if self.pending.back().is_none_or(|q| q.slot < slot) {
            self.pending.push_back(p);
            return;
        }
        match self.pending.binary_search_by_key(&slot, |q| q.slot) {
            Ok(i) => {
                let old = std::mem::replace(&mut self.pending[i], p);
                self.out.push(Output::ProposalFailed { id: old.id, error: ProposeError::LeadershipLost });
            }
            Err(i) => self.pending.insert(i, p),
        }
    }

    fn drain_local(&mut self, now: Instant) {
        while let Some(m) = self.out.pop_local() {
            let id = self.id();
            self.step(now, id, m);
        }
    }

    // ---- Message dispatch. ----

    fn step(&mut self, now: Instant, from: NodeId, message: Message) {
        if let Some(b) = message.proposer_ballot() {
            if b.node != from {
                return self.invalid(from, "ballot names another node than the sender");
            }
            if b.round == 0 {
                return self.invalid(from, "ballot of round 0");
            }
            if !matches!(message, Message::PrePrepare { .. }) {
                self.max_round_seen = self.max_round_seen.max(b.round);
            }
        }
        match message {
            Message::PrePrepare { ballot } => self.on_pre_prepare(now, from, ballot),
            Message::PrePromise { ballot, granted, promised } => {
                self.max_round_seen = self.max_round_seen.max(promised.round);
                self.on_pre_promise(now, from, ballot, granted);
            }
            Message::Prepare { ballot, from_slot } => self.on_prepare(now, from, ballot, from_slot),
            Message::Promise { ballot, from_slot, decided, entries, more } => {
                self.on_promise(now, from, ballot, from_slot, decided, entries, more);
            }
            Message::Accept { ballot, first_slot, values, commit, seq } => {
                self.on_accept(now, from, ballot, first_slot, values, commit, seq);
            }
            Message::Accepted { ballot, first_slot, last_slot, seq } => {
                self.on_accepted(now, from, ballot, first_slot, last_slot, seq);
            }
            Message::Nack { ballot, promised, leader: _ } => self.on_nack(now, from, ballot, promised),
            Message::Commit { ballot, commit } => {
                if ballot < self.promised {
                    return self.nack(from, ballot);
                }
                self.follow(now, from, ballot);
                self.learn_commit(from, ballot, commit);
            }
            Message::Heartbeat { ballot, commit, seq } => {
                if ballot < self.promised {
                    return self.nack(from, ballot);
                }
                self.follow(now, from, ballot);
                self.out.send(from, Message::HeartbeatAck { ballot, seq, commit: self.commit });
                self.learn_commit(from, ballot, commit);
            }
            Message::HeartbeatAck { ballot, seq, commit: _ } => self.on_heartbeat_ack(now, from, ballot, seq),
            Message::CatchUp { from_slot, to_slot } => self.on_catch_up(now, from, from_slot, to_slot),
            Message::CatchUpReply { entries, commit } => self.on_catch_up_reply(now, from, entries, commit),
            Message::Snapshot { meta, total, offset, data } => self.on_snapshot(now, from, *meta, total, offset, data),
            Message::SnapshotAck { index, offset } => self.on_snapshot_ack(now, from, index, offset),
        }
    }

    // ---- Acceptor. ----

    fn on_pre_prepare(&mut self, now: Instant, from: NodeId, ballot: Ballot) {
        let granted = ballot > self.promised && self.is_voter() && (from == self.id() || !self.sticky(now));
        self.out.send(from, Message::PrePromise { ballot, granted, promised: self.promised });
    }

    fn on_prepare(&mut self, now: Instant, from: NodeId, ballot: Ballot, from_slot: u64) {
        if from_slot == 0 {
            return self.invalid(from, "prepare from slot 0");
        }
        if !self.is_voter() {
            return;
        }
        if ballot < self.promised || (ballot > self.promised && from != self.id() && self.sticky(now)) {
            return self.nack(from, ballot);
        }
        if ballot > self.promised {
            self.promised = ballot;
            self.persist_hard_state();
            if from != self.id() {
                if self.role == Role::Follower {
                    // Like a Raft vote grant: give the candidate a full election timeout
                    // to finish phase 1 (which waits for every promise to be durable)
                    // before this acceptor runs against it.
                    self.reset_election_timer(now);
                } else {
                    // A higher ballot won this acceptor over: stop leading or running.
                    self.become_follower(now, None, ballot.round);
                }
            }
        }
        let start = from_slot.max(self.commit + 1);
        let (entries, more) = self.collect(start, u64::MAX, false);
        let decided = self.commit;
        self.out.send_durable(from, Message::Promise { ballot, from_slot, decided, entries, more });
    }

    /// Entries from `start` to `end` within the batch limits; with `contiguous`, stops
    /// at the first hole. Returns them and the slot after the last one if more remain.
    fn collect(&self, start: u64, end: u64, contiguous: bool) -> (Vec<Entry>, Option<u64>) {
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        let mut expect = start;
        for (slot, ballot, value) in self.log.range(start, end) {
            if contiguous && slot != expect {
                return (entries, None);
            }
            if !entries.is_empty() && (entries.len() >= self.cfg.max_accept_slots || bytes >= self.cfg.max_accept_bytes)
            {
                return (entries, Some(slot));
            }
            bytes += value.size();
            entries.push(Entry { slot, ballot, value: value.clone() });
            expect = slot + 1;
        }
        (entries, None)
    }

    #[allow(clippy::too_many_arguments)]
    fn on_accept(
        &mut self,
        now: Instant,
        from: NodeId,
        ballot: Ballot,
        first_slot: u64,
        values: Vec<Value>,
        commit: u64,
        seq: u64,
    ) {
        let len = values.len() as u64;
        let Some(last_slot) = first_slot.checked_add(len.saturating_sub(1)) else {
            return self.invalid(from, "accept slot range overflows");
        };
        if first_slot == 0 || len == 0 {
            return self.invalid(from, "accept without slots");
        }
        if ballot < self.promised {
            return self.nack(from, ballot);
        }
        if ballot > self.promised {
            self.promised = ballot;
            self.persist_hard_state();
        }
        self.follow(now, from, ballot);
        // Slots already decided keep their value; by Paxos the leader proposes the same one.
        let decided = usize::try_from((self.commit + 1).saturating_sub(first_slot)).unwrap_or(usize::MAX);
        let start = first_slot.saturating_add(decided as u64);
        if decided < values.len() && start == self.log.end() && self.log.is_free_from(start) {
            // The usual case: every slot is new and continues the log. Written and logged
            // in one pass (the write gets clones, the log the values).
            let mut values = values;
            values.drain(..decided);
            let copies = self.out.entries_for(values.len());
            self.log.append_copying(ballot, values.into_iter(), copies);
        } else {
            self.accept_each(ballot, first_slot, values);
        }
        self.out.send_durable(from, Message::Accepted { ballot, first_slot, last_slot, seq });
        self.learn_commit(from, ballot, commit);
    }

    /// Records `values` accepted in `ballot` from `first_slot` on, one slot at a time.
    fn accept_each(&mut self, ballot: Ballot, first_slot: u64, values: Vec<Value>) {
        self.out.reserve_entries(values.len());
        for (slot, value) in (first_slot..).zip(values) {
            // Decided slots keep their value; by Paxos the leader proposes the same one.
            if slot <= self.commit {
                continue;
            }
            // A retransmitted Accept costs no write: the entry is already durable or in
            // a write the Accepted below waits for. Rewriting it would let retransmissions
            // pile up behind a slow disk faster than it syncs.
            if self.log.get(slot).is_some_and(|(b, v)| b == ballot && *v == value) {
                continue;
            }
            let e = Entry { slot, ballot, value };
            self.out.push_entry(e.clone());
            self.log.insert(e);
        }
    }

    /// A message from the leader of `ballot` (`>=` the promise) arrived: follow it.
    fn follow(&mut self, now: Instant, from: NodeId, ballot: Ballot) {
        self.last_leader_contact = now;
        self.election_base = now;
        if self.role != Role::Follower && self.role != Role::Learner {
            self.become_follower(now, Some(from), ballot.round);
        } else {
            self.set_leader(Some(from), ballot.round);
        }
    }

    // ---- Learner: commit notification and catch-up. ----

    /// The leader of `ballot` says every slot up to `upto` is decided. Slots whose local
    /// entry was accepted in that very ballot hold the decided value (a leader proposes
    /// one value per slot per ballot); the rest are fetched by catch-up.
    fn learn_commit(&mut self, from: NodeId, ballot: Ballot, upto: u64) {
        if ballot > self.known.0 {
            self.known = (ballot, upto);
        } else if ballot == self.known.0 {
            self.known.1 = self.known.1.max(upto);
        } else {
            return;
        }
        if self.lead.is_none() {
            self.catchup.source = Some(from);
        }
        self.advance_by_ballot();
    }

    fn advance_by_ballot(&mut self) {
        let (ballot, upto) = self.known;
        let before = self.commit;
        if upto > before {
            self.commit += self.log.ballot_run(before + 1, upto - before, ballot);
        }
        if self.commit > before {
            self.apply_committed();
        }
    }

    fn catchup_goal(&self) -> u64 {
        if self.lead.is_some() { self.catchup.goal } else { self.catchup.goal.max(self.known.1) }
    }

    /// Asks a peer for decided slots this replica misses. Without `force`, only when the
    /// commit index did not move since the previous tick (the leader's own replication
    /// usually fills small gaps first).
    fn maybe_catch_up(&mut self, now: Instant, force: bool) {
        let goal = self.catchup_goal();
        if self.commit >= goal {
            self.catchup.in_flight = None;
            self.catchup.attempts = 0;
            return;
        }
        if self.snap_recv.is_some() {
            return;
        }
        let stalled = self.commit == self.catchup.commit_at_tick;
        let outstanding = self.catchup.in_flight.is_some_and(|t| now < t + self.cfg.election.heartbeat_interval * 2);
        if !force && (!stalled || outstanding) {
            return;
        }
        // Ask the source first, then rotate through the other members.
        let others: Vec<NodeId> = self.membership.members().into_iter().filter(|&n| n != self.id()).collect();
        let target = match self.catchup.source.filter(|&s| s != self.id()) {
            Some(s) if self.catchup.attempts.is_multiple_of(2) || others.is_empty() => Some(s),
            _ if others.is_empty() => None,
            _ => Some(others[(self.catchup.attempts / 2) as usize % others.len()]),
        };
        let Some(target) = target else { return };
        self.catchup.attempts += 1;
        self.catchup.in_flight = Some(now);
        self.out.send(target, Message::CatchUp { from_slot: self.commit + 1, to_slot: goal });
    }

    fn on_catch_up(&mut self, now: Instant, from: NodeId, from_slot: u64, to_slot: u64) {
        if from_slot == 0 || to_slot < from_slot {
            return self.invalid(from, "empty catch-up range");
        }
        if from_slot <= self.snapshot_index() {
            return self.start_snapshot_send(now, from);
        }
        let (entries, _) = if from_slot <= self.commit {
            self.collect(from_slot, to_slot.min(self.commit), true)
        } else {
            (Vec::new(), None)
        };
        self.out.send(from, Message::CatchUpReply { entries, commit: self.commit });
    }

    fn on_catch_up_reply(&mut self, now: Instant, from: NodeId, entries: Vec<Entry>, commit: u64) {
        self.catchup.in_flight = None;
        let before = self.commit;
        self.out.reserve_entries(entries.len());
        for e in entries {
            if e.slot <= self.commit {
                continue;
            }
            if e.slot != self.commit + 1 {
                break;
            }
            // Record the decided value as accepted, keeping the higher ballot: every
            // proposal above the choosing ballot carries this value, so no promise
            // reports it with a ballot lower than the one it replaces.
            if e.ballot == Ballot::ZERO {
                self.invalid(from, "catch-up entry in ballot zero");
                break;
            }
            let ballot = self.log.get(e.slot).map_or(e.ballot, |(old, _)| old.max(e.ballot));
            let e = Entry { ballot, ..e };
            self.out.push_entry(e.clone());
            self.log.insert(e);
            self.commit += 1;
        }
        if self.lead.is_none() && commit > self.catchup.goal {
            self.catchup.goal = commit;
            self.catchup.source = Some(from);
        }
        if self.commit > before {
            self.catchup.attempts = 0;
            // Decided entries written out of ballot order must never be mistaken for
            // undecided ones after a restart: persist the decided prefix with them.
            self.persist_hard_state();
            self.apply_committed();
            self.advance_by_ballot();
            self.leader_commit_changed(now);
            self.maybe_catch_up(now, true);
        }
    }

    // ---- Snapshots. ----

    /// (Re)starts sending the snapshot to `to`. A replica asks only while it receives no
    /// snapshot, so an earlier transfer to it is over; acknowledgements are cumulative,
    /// so restarting a transfer the receiver still holds part of only costs one chunk.
    fn start_snapshot_send(&mut self, now: Instant, to: NodeId) {
        let Some(snapshot) = &self.snapshot else { return };
        let send = SnapshotSend {
            snapshot: snapshot.clone(),
            next: 0,
            acked: 0,
            sent_empty: false,
            rewound_at: None,
            acked_at: now,
            progress_at: now,
            moved_at: now,
        };
        self.snap_sends.insert(to, send);
        self.pump_snapshot(to);
    }

    fn pump_snapshot(&mut self, to: NodeId) {
        let chunk = self.cfg.max_snapshot_chunk as u64;
        let window = chunk.max(self.cfg.max_inflight_bytes as u64);
        let Some(s) = self.snap_sends.get_mut(&to) else { return };
        let total = s.snapshot.data.len() as u64;
        let mut chunks = Vec::new();
        while (s.next < total && s.next - s.acked < window) || (total == 0 && !s.sent_empty) {
            let end = total.min(s.next + chunk);
            // Both bounds are within the data, whose length fits in usize.
            let data = s.snapshot.data.slice(s.next as usize..end as usize);
            let meta = Box::new(s.snapshot.meta.clone());
            chunks.push(Message::Snapshot { meta, total, offset: s.next, data });
            s.next = end;
            s.sent_empty = true;
        }
        for m in chunks {
            self.out.send(to, m);
        }
    }

    fn on_snapshot_ack(&mut self, now: Instant, from: NodeId, index: u64, offset: u64) {
        let Some(s) = self.snap_sends.get_mut(&from) else { return };
        if s.snapshot.meta.index != index {
            return;
        }
        let total = s.snapshot.data.len() as u64;
        if offset >= total && (total > 0 || s.sent_empty) {
            self.snap_sends.remove(&from);
            return;
        }
        if offset > s.acked {
            s.acked = offset;
            s.acked_at = now;
            s.progress_at = now;
            s.moved_at = now;
            s.next = s.next.max(offset);
        } else if offset < s.acked && now.saturating_duration_since(s.moved_at) >= self.cfg.election.heartbeat_interval
        {
            // The receiver lost its partial copy (restarted, or gave up): start over
            // from what it holds. A lower offset right after progress is more likely a
            // late or duplicated acknowledgement: rewinding on each of those would
            // resend the window once per stale acknowledgement, and every resent chunk
            // draws acknowledgements of its own (found by the simulator: a transfer
            // that multiplied without bound under duplication and reordering).
            s.acked = offset;
            s.next = offset;
            s.sent_empty = false;
            s.rewound_at = Some(offset);
            s.progress_at = now;
            s.moved_at = now;
        } else if offset == s.acked && s.next > offset && s.rewound_at != Some(offset) {
            // The receiver skipped a chunk after a loss: resend from what it holds.
            s.next = offset;
            s.rewound_at = Some(offset);
        }
        self.pump_snapshot(from);
    }

    #[allow(clippy::too_many_arguments)]
    fn on_snapshot(&mut self, now: Instant, from: NodeId, meta: SnapshotMeta, total: u64, offset: u64, data: Bytes) {
        let index = meta.index;
        if index <= self.commit {
            // Already past it: tell the sender to stop.
            return self.out.send(from, Message::SnapshotAck { index, offset: total });
        }
        if total > self.cfg.max_snapshot_bytes {
            return self.invalid(from, "snapshot larger than max_snapshot_bytes");
        }
        if offset.checked_add(data.len() as u64).is_none_or(|end| end > total) {
            return self.invalid(from, "snapshot chunk beyond its total size");
        }
        self.catchup.in_flight = None;
        let same = |r: &SnapshotRecv| r.meta.index == index && r.from == from && r.total == total;
        if let Some(r) = &self.snap_recv
            && !same(r)
            && r.from != from
            && now.saturating_duration_since(r.last_at) < self.cfg.election.timeout_min
        {
            // Another peer's transfer is under way: this sender may stop.
            return self.out.send(from, Message::SnapshotAck { index, offset: total });
        }
        if self.snap_recv.as_ref().is_none_or(|r| !same(r)) {
            if offset != 0 {
                return self.out.send(from, Message::SnapshotAck { index, offset: 0 });
            }
            self.snap_recv = Some(SnapshotRecv { from, meta, total, buf: BytesMut::new(), last_at: now });
        }
        let Some(r) = self.snap_recv.as_mut() else { return };
        if offset == r.buf.len() as u64 {
            r.buf.extend_from_slice(&data);
            r.last_at = now;
        }
        let have = r.buf.len() as u64;
        self.out.send(from, Message::SnapshotAck { index, offset: have });
        if have == total
            && let Some(r) = self.snap_recv.take()
        {
            self.install_snapshot(now, Snapshot { meta: r.meta, data: r.buf.freeze() });
        }
    }

    fn install_snapshot(&mut self, now: Instant, snapshot: Snapshot) {
        let index = snapshot.meta.index;
        // Decided slots still to be handed out come before the snapshot: build them
        // while the log holds them.
        self.materialize_applies();
        self.log.compact(index);
        self.commit = self.commit.max(index);
        self.applied = index;
        self.apply_queued = index;
        if snapshot.meta.membership != self.membership {
            self.membership = snapshot.meta.membership.clone();
            self.voter = self.membership.is_voter(self.cfg.id);
            self.out.push(Output::Event(Event::MembershipChanged(self.membership.clone())));
        }
        let batch = self.out.batch();
        batch.snapshot = Some(Box::new(snapshot.clone()));
        batch.compact_to = Some(index);
        self.persist_hard_state();
        self.snapshot = Some(snapshot.clone());
        self.fail_pending_upto(index);
        self.out.push(Output::Apply(Apply::Restore(Box::new(snapshot))));
        self.advance_by_ballot();
        self.apply_committed();
        self.leader_commit_changed(now);
        self.maybe_catch_up(now, true);
    }

    // ---- Timers. ----

    fn tick(&mut self, now: Instant) {
        match self.role {
            Role::Leader => self.leader_tick(now),
            Role::Candidate | Role::PreCandidate => self.candidate_tick(),
            Role::Follower | Role::Learner => {}
        }
        self.maybe_catch_up(now, false);
        self.catchup.commit_at_tick = self.commit;
        let stalled_after = self.cfg.election.heartbeat_interval * 2;
        let give_up_after = self.cfg.election.timeout_min * 4;
        let mut resend = Vec::new();
        self.snap_sends.retain(|&to, s| {
            if now.saturating_duration_since(s.acked_at) >= give_up_after {
                return false;
            }
            if now.saturating_duration_since(s.progress_at) >= stalled_after && (s.next > s.acked || !s.sent_empty) {
                s.next = s.acked;
                s.sent_empty = false;
                s.progress_at = now;
                resend.push(to);
            }
            true
        });
        for to in resend {
            self.pump_snapshot(to);
        }
        if self.snap_recv.as_ref().is_some_and(|r| now.saturating_duration_since(r.last_at) >= give_up_after) {
            self.snap_recv = None;
        }
        if self.hs_written.decided != self.commit {
            self.persist_hard_state();
        }
    }
}

impl Protocol for MultiPaxos {
    type Message = Message;
    type Entry = Entry;
    type HardState = HardState;

    fn id(&self) -> NodeId {
        self.cfg.id
    }

    fn handle_message(&mut self, now: Instant, from: NodeId, message: Message) {
        self.now = now;
        self.flush_due = true;
        if from == self.id() {
            return self.invalid(from, "message claims to come from this node");
        }
        self.step(now, from, message);
        self.drain_local(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        self.flush_due = true;
        if self.role != Role::Leader && self.is_voter() && now >= self.election_base + self.election_rand {
            self.campaign(now);
        }
        if now >= self.tick_at {
            self.tick_at = now + self.cfg.election.heartbeat_interval;
            self.tick(now);
        }
        self.drain_local(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.role != Role::Leader && self.is_voter() {
            Some(self.tick_at.min(self.election_base + self.election_rand))
        } else {
            Some(self.tick_at)
        }
    }

    fn propose(&mut self, now: Instant, id: ProposalId, command: Bytes) -> Result<(), ProposeError> {
        self.now = now;
        self.flush_due = true;
        self.leader_propose(id, command)
    }

    fn read(&mut self, now: Instant, id: ReadId) -> Result<(), ProposeError> {
        self.now = now;
        self.flush_due = true;
        self.leader_read(now, id)
    }

    fn persisted(&mut self, now: Instant, id: PersistId) {
        self.now = now;
        self.flush_due = true;
        let _ = self.out.persisted(id);
        self.drain_local(now);
    }

    fn compact(&mut self, now: Instant, index: u64, data: Bytes) {
        self.now = now;
        self.flush_due = true;
        if index <= self.snapshot_index() || index > self.applied {
            return;
        }
        let term = self.log.get(index).map_or(0, |(ballot, _)| ballot.round);
        let snapshot = Snapshot { meta: SnapshotMeta { index, term, membership: self.membership.clone() }, data };
        self.log.compact(index);
        let batch = self.out.batch();
        batch.snapshot = Some(Box::new(snapshot.clone()));
        batch.compact_to = Some(index);
        self.snapshot = Some(snapshot);
    }

    fn poll_output(&mut self) -> Option<Output<Message, Entry, HardState>> {
        // The usual calls — an output or an `Apply` item is due, or nothing is to do — stay
        // small.
        match self.out.front_apply_up_to() {
            None => {
                if let Some(o) = self.out.pop_unchecked() {
                    return Some(o);
                }
                if !self.flush_due {
                    return None;
                }
            }
            Some(upto) => {
                if let Some(o) = self.next_apply(upto) {
                    return Some(o);
                }
            }
        }
        self.poll_output_slow()
    }

    fn status(&self) -> Status {
        Status {
            id: self.id(),
            role: self.role,
            leader: self.leader,
            term: self.ballot().round,
            commit_index: self.commit,
            applied_index: self.applied,
            last_index: self.last_index(),
            snapshot_index: self.snapshot_index(),
            membership: self.membership.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
