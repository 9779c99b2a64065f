//! Single-decree Paxos (the Synod): every node is a proposer, an acceptor and a learner
//! of one value.
//!
//! * A proposer picks a ballot above every round it has seen, makes it durable (so that a
//!   restart never reuses it) and sends `Prepare` to the voters. Each acceptor promises
//!   to accept nothing lower (durably, before replying) and reports the highest
//!   `(ballot, value)` it accepted. With a quorum of promises the proposer asks the
//!   acceptors to accept the reported value of the highest ballot, or its own value if
//!   none was reported.
//! * An acceptor accepts a value (durably, before replying) unless it promised a higher
//!   ballot, and tells every learner; a lower ballot gets a `Nack` carrying the promise,
//!   so the proposer can back off.
//! * A learner decides once a quorum of acceptors accepted the same ballot, applies the
//!   value as slot 1 and tells the others (`Decided`), which also answers any proposer
//!   still running.
//!
//! Failed attempts are retried after a randomized, exponentially growing backoff, so
//! duelling proposers eventually leave one of them alone long enough to finish.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ballot_core::{
    Apply, Instant, Membership, NodeId, Output, PersistId, ProposalId, ProposeError, Protocol, ReadId, Recovered, Role,
    SeededRng, Status,
};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{Ballot, Entry, HardState, PaxosError, Value};
use ballot_core::Outbox;

/// The slot a Synod instance decides (its only log index).
pub const SYNOD_SLOT: u64 = 1;

/// How many ballots a learner keeps votes for; older ones are forgotten.
const MAX_TRACKED_BALLOTS: usize = 16;

/// Settings of a [`Synod`] replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynodConfig {
    /// This replica.
    pub id: NodeId,
    /// Base time a proposal attempt may take before it is retried with a higher ballot;
    /// each failure doubles it (up to `max_retry_timeout`), and every wait is drawn at
    /// random from `[t, 2t)`.
    pub retry_timeout: Duration,
    /// Cap of the exponential backoff.
    pub max_retry_timeout: Duration,
    /// Largest value [`Protocol::propose`] accepts.
    pub max_value_bytes: usize,
    /// Most reads waiting for the decision at once.
    pub max_pending_reads: usize,
}

impl SynodConfig {
    /// Defaults for replica `id`: 100 ms base retry, 2 s cap, 1 MiB values.
    #[must_use]
    pub fn new(id: NodeId) -> Self {
        SynodConfig {
            id,
            retry_timeout: Duration::from_millis(100),
            max_retry_timeout: Duration::from_secs(2),
            max_value_bytes: 1 << 20,
            max_pending_reads: 4096,
        }
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`PaxosError::InvalidConfig`] naming the first bad field.
    pub fn validate(&self) -> Result<(), PaxosError> {
        let bad = |field, reason| Err(PaxosError::InvalidConfig { field, reason });
        if self.id.0 == 0 {
            return bad("id", "must be a positive node id");
        }
        if self.retry_timeout.is_zero() {
            return bad("retry_timeout", "must be positive");
        }
        if self.max_retry_timeout < self.retry_timeout {
            return bad("max_retry_timeout", "must be at least retry_timeout");
        }
        if self.max_value_bytes == 0 {
            return bad("max_value_bytes", "must be positive");
        }
        Ok(())
    }
}

/// Messages between Synod replicas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SynodMessage {
    /// Phase 1a: promise to accept nothing below `ballot`.
    Prepare {
        /// The proposer's ballot.
        ballot: Ballot,
    },
    /// Phase 1b: the promise, with the highest accepted `(ballot, value)`, if any. Sent
    /// only once the promise is durable.
    Promise {
        /// The ballot promised.
        ballot: Ballot,
        /// What the acceptor accepted before, if anything.
        accepted: Option<(Ballot, Value)>,
    },
    /// Phase 2a: accept `value` in `ballot`.
    Accept {
        /// The proposer's ballot.
        ballot: Ballot,
        /// The value.
        value: Value,
    },
    /// Phase 2b, to every learner: the acceptor accepted `value` in `ballot` (durably).
    Accepted {
        /// The ballot.
        ballot: Ballot,
        /// The value.
        value: Value,
    },
    /// `ballot` was refused because the acceptor promised `promised`.
    Nack {
        /// The refused ballot.
        ballot: Ballot,
        /// The acceptor's promise.
        promised: Ballot,
    },
    /// The sender learned that `value` was chosen (in `ballot`).
    Decided {
        /// A ballot in which a quorum accepted `value`.
        ballot: Ballot,
        /// The chosen value.
        value: Value,
    },
}

#[derive(Debug)]
enum Phase {
    Prepare,
    Accept,
}

#[derive(Debug)]
struct Attempt {
    ballot: Ballot,
    phase: Phase,
    promises: BTreeSet<NodeId>,
    highest: Option<(Ballot, Value)>,
    deadline: Instant,
}

/// One replica of a single-decree Paxos instance (proposer, acceptor and learner).
///
/// It implements [`Protocol`] with `Apply::Command { index: 1, .. }` for the chosen
/// value, so the simulator and drivers run it like any other algorithm; used alone it is
/// a one-shot agreement library: call [`propose`](Protocol::propose) on one or more
/// replicas, carry out [`poll_output`](Protocol::poll_output) (send messages, persist
/// batches and acknowledge them with [`persisted`](Protocol::persisted)), call
/// [`handle_timeout`](Protocol::handle_timeout) at [`poll_timeout`](Protocol::poll_timeout),
/// and read [`chosen`](Synod::chosen). See the crate documentation for an example.
#[derive(Debug)]
pub struct Synod {
    cfg: SynodConfig,
    membership: Membership,
    rng: SeededRng,
    out: Outbox<SynodMessage, Entry, HardState>,
    // Acceptor.
    promised: Ballot,
    accepted: Option<(Ballot, Value)>,
    // Learner.
    votes: BTreeMap<Ballot, (Value, BTreeSet<NodeId>)>,
    chosen: Option<(Ballot, Value)>,
    // Proposer.
    proposal: Option<(ProposalId, Value)>,
    /// Ballots of this replica in which it asked to accept its proposal's value (its own
    /// command, or the value adopted from an earlier such ballot). A value accepted in
    /// one of them is that command, so a decision reported in one is this proposal's;
    /// values carry no proposer, and a decision in any other ballot leaves the outcome
    /// unknown here.
    own: Vec<Ballot>,
    attempt: Option<Attempt>,
    retry_at: Option<Instant>,
    failures: u32,
    max_round_seen: u64,
    reads: Vec<ReadId>,
    /// Members known to have decided (they sent `Decided`), and when to re-send it to
    /// the others.
    informed: BTreeSet<NodeId>,
    inform_at: Option<Instant>,
    invalid_messages: u64,
    last_error: Option<PaxosError>,
}

impl Synod {
    /// Builds replica `config.id` of the instance decided by the voters of `membership`,
    /// from its durable state (`Recovered::default()` on first start). A replica that
    /// had decided before a restart applies the value again as its first output.
    ///
    /// # Errors
    /// [`PaxosError::InvalidConfig`] for bad settings; [`PaxosError::CorruptRecovery`] if
    /// the hard state says decided but no value was stored.
    pub fn new(
        config: SynodConfig,
        membership: Membership,
        recovered: Recovered<Entry, HardState>,
        rng: SeededRng,
        now: Instant,
    ) -> Result<Self, PaxosError> {
        config.validate()?;
        let hs = recovered.hard_state.unwrap_or_default();
        let accepted = recovered.entries.into_iter().find(|e| e.slot == SYNOD_SLOT).map(|e| (e.ballot, e.value));
        if hs.decided >= SYNOD_SLOT && accepted.is_none() {
            return Err(PaxosError::CorruptRecovery("hard state says decided but no value is stored".into()));
        }
        let promised = hs.promised.max(accepted.as_ref().map_or(Ballot::ZERO, |a| a.0));
        let mut s = Synod {
            out: Outbox::new(config.id),
            cfg: config,
            membership,
            rng,
            promised,
            chosen: if hs.decided >= SYNOD_SLOT { accepted.clone() } else { None },
            accepted,
            votes: BTreeMap::new(),
            proposal: None,
            own: Vec::new(),
            attempt: None,
            retry_at: None,
            failures: 0,
            max_round_seen: promised.round,
            reads: Vec::new(),
            informed: BTreeSet::new(),
            inform_at: None,
            invalid_messages: 0,
            last_error: None,
        };
        if s.chosen.is_some() {
            s.informed.insert(s.cfg.id);
            s.inform_at = Some(now);
        }
        if let Some((_, v)) = &s.chosen {
            let apply = apply_of(v, None);
            s.out.push(Output::Apply(apply));
        }
        Ok(s)
    }

    /// The chosen value as this learner knows it, or `None` while undecided.
    #[must_use]
    pub fn chosen(&self) -> Option<&Value> {
        self.chosen.as_ref().map(|(_, v)| v)
    }

    /// Whether this learner knows the decision.
    #[must_use]
    pub fn is_decided(&self) -> bool {
        self.chosen.is_some()
    }

    /// The highest ballot this acceptor promised.
    #[must_use]
    pub fn promised(&self) -> Ballot {
        self.promised
    }

    /// What this acceptor accepted last, if anything.
    #[must_use]
    pub fn accepted(&self) -> Option<(Ballot, &Value)> {
        self.accepted.as_ref().map(|(b, v)| (*b, v))
    }

    /// The ballot of this proposer's current attempt, if one is running.
    #[must_use]
    pub fn ballot(&self) -> Option<Ballot> {
        self.attempt.as_ref().map(|a| a.ballot)
    }

    /// The membership whose voters decide.
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

    fn id(&self) -> NodeId {
        self.cfg.id
    }

    fn hard_state(&self) -> HardState {
        HardState { promised: self.promised, decided: u64::from(self.chosen.is_some()) }
    }

    fn backoff(&mut self) -> Duration {
        let shift = self.failures.min(20);
        let base = self.cfg.retry_timeout.saturating_mul(1 << shift).min(self.cfg.max_retry_timeout);
        let nanos = u64::try_from(base.as_nanos()).unwrap_or(u64::MAX).max(1);
        Duration::from_nanos(self.rng.gen_range(nanos..nanos.saturating_mul(2)))
    }

    fn voters(&self) -> Vec<NodeId> {
        self.membership.all_voters().into_iter().collect()
    }

    fn broadcast(&mut self, to: &[NodeId], message: &SynodMessage) {
        for &n in to {
            self.out.send(n, message.clone());
        }
    }

    fn start_attempt(&mut self, now: Instant) {
        self.retry_at = None;
        if self.chosen.is_some() || self.proposal.is_none() {
            self.attempt = None;
            return;
        }
        self.max_round_seen = self.max_round_seen.max(self.promised.round);
        let ballot = Ballot::new(self.max_round_seen + 1, self.id());
        self.max_round_seen = ballot.round;
        let deadline = now + self.backoff();
        self.attempt =
            Some(Attempt { ballot, phase: Phase::Prepare, promises: BTreeSet::new(), highest: None, deadline });
        // The ballot is durable before anyone hears of it, so that after a restart this
        // proposer never uses it again (two values in one ballot would break Paxos).
        // For a voter this is the promise its own acceptor would give anyway.
        self.promised = ballot;
        self.out.batch().hard_state = Some(self.hard_state());
        for n in self.voters() {
            self.out.send_durable(n, SynodMessage::Prepare { ballot });
        }
    }

    fn abandon(&mut self, now: Instant) {
        self.attempt = None;
        self.failures = self.failures.saturating_add(1);
        if self.chosen.is_none() && self.proposal.is_some() {
            self.retry_at = Some(now + self.backoff());
        }
    }

    fn invalid(&mut self, from: NodeId, reason: &'static str) {
        self.invalid_messages += 1;
        self.last_error = Some(PaxosError::InvalidMessage { from, reason });
    }

    fn on_message(&mut self, now: Instant, from: NodeId, message: SynodMessage) {
        if let Some(b) = ballot_of(&message) {
            self.max_round_seen = self.max_round_seen.max(b.round);
        }
        match message {
            SynodMessage::Prepare { ballot } => self.on_prepare(from, ballot),
            SynodMessage::Accept { ballot, value } => self.on_accept(from, ballot, value),
            SynodMessage::Promise { ballot, accepted } => self.on_promise(from, ballot, accepted),
            SynodMessage::Accepted { ballot, value } => self.on_accepted(now, from, ballot, value),
            SynodMessage::Nack { ballot, promised } => {
                self.max_round_seen = self.max_round_seen.max(promised.round);
                if self.attempt.as_ref().is_some_and(|a| a.ballot == ballot) && promised > ballot {
                    self.abandon(now);
                }
            }
            SynodMessage::Decided { ballot, value } => {
                let knew = self.chosen.is_some();
                self.decide(now, ballot, value);
                if self.informed.insert(from) && knew {
                    // The sender does not know this replica decided: tell it, once.
                    self.send_decided(from);
                }
            }
        }
    }

    fn on_prepare(&mut self, from: NodeId, ballot: Ballot) {
        if ballot.node != from {
            return self.invalid(from, "prepare ballot names another node");
        }
        if self.chosen.is_some() {
            return self.send_decided(from);
        }
        if ballot < self.promised {
            return self.out.send(from, SynodMessage::Nack { ballot, promised: self.promised });
        }
        if ballot > self.promised {
            self.promised = ballot;
            self.out.batch().hard_state = Some(self.hard_state());
        }
        let accepted = self.accepted.clone();
        self.out.send_durable(from, SynodMessage::Promise { ballot, accepted });
    }

    fn on_accept(&mut self, from: NodeId, ballot: Ballot, value: Value) {
        if ballot.node != from {
            return self.invalid(from, "accept ballot names another node");
        }
        if value.size() > self.cfg.max_value_bytes.saturating_add(64) {
            return self.invalid(from, "value exceeds max_value_bytes");
        }
        if self.chosen.is_some() {
            return self.send_decided(from);
        }
        if ballot < self.promised {
            return self.out.send(from, SynodMessage::Nack { ballot, promised: self.promised });
        }
        self.promised = ballot;
        self.accepted = Some((ballot, value.clone()));
        let hs = self.hard_state();
        let batch = self.out.batch();
        batch.entries.clear();
        batch.entries.push(Entry { slot: SYNOD_SLOT, ballot, value: value.clone() });
        batch.hard_state = Some(hs);
        // Tell every learner, the proposer included.
        let message = SynodMessage::Accepted { ballot, value };
        for n in self.membership.members() {
            self.out.send_durable(n, message.clone());
        }
    }

    fn on_promise(&mut self, from: NodeId, ballot: Ballot, accepted: Option<(Ballot, Value)>) {
        if !self.membership.is_voter(from) {
            return;
        }
        let Some(a) = self.attempt.as_mut() else { return };
        if a.ballot != ballot || !matches!(a.phase, Phase::Prepare) {
            return;
        }
        if let Some((b, v)) = accepted
            && a.highest.as_ref().is_none_or(|(hb, _)| b > *hb)
        {
            a.highest = Some((b, v));
        }
        a.promises.insert(from);
        if !self.membership.is_quorum(|n| a.promises.contains(&n)) {
            return;
        }
        a.phase = Phase::Accept;
        let value = match a.highest.take() {
            Some((b, v)) => {
                if self.own.contains(&b) {
                    self.own.push(ballot);
                }
                v
            }
            None => match &self.proposal {
                Some((_, v)) => {
                    self.own.push(ballot);
                    v.clone()
                }
                None => return,
            },
        };
        let voters = self.voters();
        self.broadcast(&voters, &SynodMessage::Accept { ballot, value });
    }

    fn on_accepted(&mut self, now: Instant, from: NodeId, ballot: Ballot, value: Value) {
        if self.chosen.is_some() || !self.membership.is_voter(from) {
            return;
        }
        let (v, who) = self.votes.entry(ballot).or_insert_with(|| (value.clone(), BTreeSet::new()));
        if *v != value {
            return self.invalid(from, "two values accepted in one ballot");
        }
        who.insert(from);
        if self.membership.is_quorum(|n| who.contains(&n)) {
            return self.decide(now, ballot, value);
        }
        while self.votes.len() > MAX_TRACKED_BALLOTS {
            self.votes.pop_first();
        }
    }

    fn decide(&mut self, now: Instant, ballot: Ballot, value: Value) {
        if self.chosen.is_some() {
            return;
        }
        self.informed.insert(self.id());
        self.inform_at = Some(now + self.cfg.max_retry_timeout);
        // Record the decided value as accepted; keeping the higher of the two ballots is
        // safe because every proposal above the choosing ballot carries the same value.
        let b = ballot.max(self.accepted.as_ref().map_or(Ballot::ZERO, |a| a.0));
        self.accepted = Some((b, value.clone()));
        self.chosen = Some((ballot, value.clone()));
        self.promised = self.promised.max(b);
        self.attempt = None;
        self.retry_at = None;
        self.votes.clear();
        let hs = self.hard_state();
        let batch = self.out.batch();
        batch.entries.clear();
        batch.entries.push(Entry { slot: SYNOD_SLOT, ballot: b, value: value.clone() });
        batch.hard_state = Some(hs);
        let mine = self.proposal.take();
        let proposal = match &mine {
            Some((id, _)) if self.own.contains(&ballot) => Some(*id),
            _ => None,
        };
        self.own.clear();
        if let (Some((id, _)), None) = (mine, proposal) {
            self.out.push(Output::ProposalFailed { id, error: ProposeError::LeadershipLost });
        }
        self.out.push(Output::Apply(apply_of(&value, proposal)));
        for id in std::mem::take(&mut self.reads) {
            self.out.push(Output::ReadReady { id, index: SYNOD_SLOT });
        }
        self.inform_others();
    }

    /// Sends the decision to every member not known to have it.
    fn inform_others(&mut self) {
        if self.chosen.is_none() {
            return;
        }
        let others: Vec<NodeId> =
            self.membership.members().into_iter().filter(|n| !self.informed.contains(n)).collect();
        for &n in &others {
            self.send_decided(n);
        }
        if others.is_empty() {
            self.inform_at = None;
        }
    }

    /// Tells `to` the decision once it is durable here. A peer that hears it counts this
    /// replica as informed and stops telling it, so a decision announced and then lost
    /// in a crash would never be learned again.
    fn send_decided(&mut self, to: NodeId) {
        let Some((ballot, value)) = &self.chosen else { return };
        let m = SynodMessage::Decided { ballot: *ballot, value: value.clone() };
        self.out.send_durable(to, m);
    }

    fn drain_local(&mut self, now: Instant) {
        while let Some(m) = self.out.pop_local() {
            let id = self.id();
            self.on_message(now, id, m);
        }
    }
}

fn ballot_of(m: &SynodMessage) -> Option<Ballot> {
    match m {
        SynodMessage::Prepare { ballot }
        | SynodMessage::Promise { ballot, .. }
        | SynodMessage::Accept { ballot, .. }
        | SynodMessage::Accepted { ballot, .. }
        | SynodMessage::Nack { ballot, .. }
        | SynodMessage::Decided { ballot, .. } => Some(*ballot),
    }
}

fn apply_of(value: &Value, proposal: Option<ProposalId>) -> Apply {
    match value {
        Value::Noop => Apply::Internal { index: SYNOD_SLOT },
        Value::Command { data, .. } => Apply::Command { index: SYNOD_SLOT, command: data.clone(), proposal },
    }
}

impl Protocol for Synod {
    type Message = SynodMessage;
    type Entry = Entry;
    type HardState = HardState;

    fn id(&self) -> NodeId {
        self.cfg.id
    }

    fn handle_message(&mut self, now: Instant, from: NodeId, message: SynodMessage) {
        if from == self.id() {
            return self.invalid(from, "message claims to come from this node");
        }
        self.on_message(now, from, message);
        self.drain_local(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if due(self.attempt.as_ref().map(|a| a.deadline)) {
            self.failures = self.failures.saturating_add(1);
            self.start_attempt(now);
        } else if due(self.retry_at) {
            self.start_attempt(now);
        }
        if due(self.inform_at) {
            self.inform_at = Some(now + self.cfg.max_retry_timeout);
            self.inform_others();
        }
        self.drain_local(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let proposer = match &self.attempt {
            Some(a) => Some(a.deadline),
            None => self.retry_at,
        };
        match (proposer, self.inform_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Proposes `command` as the instance's value. Fails with
    /// [`ProposeError::Stopped`] once the instance has decided, and with
    /// [`ProposeError::Busy`] while this replica's own proposal is still running.
    fn propose(&mut self, now: Instant, id: ProposalId, command: Bytes) -> Result<(), ProposeError> {
        if command.len() > self.cfg.max_value_bytes {
            return Err(ProposeError::TooLarge { size: command.len(), max: self.cfg.max_value_bytes });
        }
        if self.chosen.is_some() {
            return Err(ProposeError::Stopped);
        }
        if self.proposal.is_some() {
            return Err(ProposeError::Busy);
        }
        self.proposal = Some((id, Value::Command { data: command }));
        self.failures = 0;
        self.start_attempt(now);
        self.drain_local(now);
        Ok(())
    }

    /// Ready (at index 1) once the value is decided; waits until then.
    fn read(&mut self, _now: Instant, id: ReadId) -> Result<(), ProposeError> {
        if self.chosen.is_some() {
            self.out.push(Output::ReadReady { id, index: SYNOD_SLOT });
        } else if self.reads.len() >= self.cfg.max_pending_reads {
            return Err(ProposeError::Busy);
        } else {
            self.reads.push(id);
        }
        Ok(())
    }

    fn persisted(&mut self, now: Instant, id: PersistId) {
        let _ = self.out.persisted(id);
        self.drain_local(now);
    }

    /// A single value needs no compaction: ignored.
    fn compact(&mut self, _now: Instant, _index: u64, _data: Bytes) {}

    fn poll_output(&mut self) -> Option<Output<SynodMessage, Entry, HardState>> {
        self.out.flush_persist();
        self.out.pop()
    }

    fn status(&self) -> Status {
        let role = match self.attempt.as_ref().map(|a| &a.phase) {
            Some(Phase::Prepare) => Role::Candidate,
            Some(Phase::Accept) => Role::Leader,
            None if self.membership.is_voter(self.id()) => Role::Follower,
            None => Role::Learner,
        };
        let decided = u64::from(self.chosen.is_some());
        Status {
            id: self.id(),
            role,
            leader: None,
            term: self.promised.round,
            commit_index: decided,
            applied_index: decided,
            last_index: u64::from(self.accepted.is_some()),
            snapshot_index: 0,
            membership: self.membership.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use ballot_core::Persist;

    use super::*;

    type Out = Output<SynodMessage, Entry, HardState>;
    const N1: NodeId = NodeId(1);
    const N2: NodeId = NodeId(2);
    const N3: NodeId = NodeId(3);
    const T: Instant = Instant::ZERO;

    fn b(round: u64, node: u64) -> Ballot {
        Ballot::new(round, NodeId(node))
    }

    fn synod(id: NodeId, recovered: Recovered<Entry, HardState>) -> Synod {
        let members = Membership::new([N1, N2, N3]);
        Synod::new(SynodConfig::new(id), members, recovered, SeededRng::new(3), T).expect("valid")
    }

    fn drain(s: &mut Synod) -> Vec<Out> {
        std::iter::from_fn(|| s.poll_output()).collect()
    }

    fn v(data: &'static str) -> Value {
        Value::Command { data: Bytes::from(data) }
    }

    #[test]
    fn acceptor_promises_durably_and_reports_what_it_accepted() {
        let mut s = synod(N2, Recovered::default());
        s.handle_message(T, N1, SynodMessage::Accept { ballot: b(1, 1), value: v("a") });
        let mut write = Persist::new(PersistId(1));
        write.entries = vec![Entry { slot: 1, ballot: b(1, 1), value: v("a") }];
        write.hard_state = Some(HardState { promised: b(1, 1), decided: 0 });
        // Nothing leaves before the accept is durable.
        assert_eq!(drain(&mut s), vec![Output::Persist(write)]);
        s.persisted(T, PersistId(1));
        let accepted = SynodMessage::Accepted { ballot: b(1, 1), value: v("a") };
        assert_eq!(
            drain(&mut s),
            vec![
                Output::Send { to: N1, message: accepted.clone() },
                Output::Send { to: N3, message: accepted.clone() },
            ]
        );
        // The acceptor is a learner too: its own acceptance reached itself.
        assert_eq!(s.votes.get(&b(1, 1)).map(|(_, w)| w.len()), Some(1));
        s.handle_message(T, N3, SynodMessage::Prepare { ballot: b(2, 3) });
        let outs = drain(&mut s);
        assert!(
            matches!(&outs[..], [Output::Persist(p)] if p.hard_state == Some(HardState { promised: b(2, 3), decided: 0 }))
        );
        s.persisted(T, PersistId(2));
        let promise = SynodMessage::Promise { ballot: b(2, 3), accepted: Some((b(1, 1), v("a"))) };
        assert_eq!(drain(&mut s), vec![Output::Send { to: N3, message: promise }]);
        // Lower ballots are refused with the promise.
        s.handle_message(T, N1, SynodMessage::Accept { ballot: b(1, 1), value: v("a") });
        s.handle_message(T, N1, SynodMessage::Prepare { ballot: b(2, 1) });
        let nack = |ballot| Output::Send { to: N1, message: SynodMessage::Nack { ballot, promised: b(2, 3) } };
        assert_eq!(drain(&mut s), vec![nack(b(1, 1)), nack(b(2, 1))]);
    }

    #[test]
    fn proposer_makes_its_ballot_durable_then_adopts_the_highest_accepted_value() {
        let mut s = synod(N1, Recovered::default());
        s.propose(T, ProposalId(1), Bytes::from("mine")).expect("proposed");
        let outs = drain(&mut s);
        let ballot = s.ballot().expect("attempt");
        assert_eq!(ballot, b(1, 1));
        // Nobody hears of the ballot before it is durable, so a restart never reuses it.
        let durable = HardState { promised: ballot, decided: 0 };
        assert!(matches!(&outs[..], [Output::Persist(p)] if p.hard_state == Some(durable)), "{outs:?}");
        s.persisted(T, PersistId(1));
        let outs = drain(&mut s);
        assert!(outs.contains(&Output::Send { to: N2, message: SynodMessage::Prepare { ballot } }));
        // Its own promise and n2's, which reports an earlier accept, form a quorum.
        s.handle_message(T, N2, SynodMessage::Promise { ballot, accepted: Some((b(0, 3), v("newer"))) });
        let outs = drain(&mut s);
        let accept = SynodMessage::Accept { ballot, value: v("newer") };
        assert!(outs.contains(&Output::Send { to: N2, message: accept.clone() }));
        assert!(outs.contains(&Output::Send { to: N3, message: accept }));
        assert_eq!(s.status().role, Role::Leader);
        // A quorum accepted: decided, and the proposer learns its own value lost.
        for n in [N2, N3] {
            s.handle_message(T, n, SynodMessage::Accepted { ballot, value: v("newer") });
        }
        let outs = drain(&mut s);
        assert!(outs.contains(&Output::ProposalFailed { id: ProposalId(1), error: ProposeError::LeadershipLost }));
        assert!(outs.contains(&Output::Apply(Apply::Command {
            index: 1,
            command: Bytes::from("newer"),
            proposal: None
        })));
        assert_eq!(s.chosen(), Some(&v("newer")));
    }

    #[test]
    fn a_value_adopted_from_the_proposers_own_ballot_is_its_proposal() {
        // Values name no proposer: the proposer knows its command by the ballots it
        // proposed it in, including one where it re-proposed it after a retry.
        let mut s = synod(N1, Recovered::default());
        s.propose(T, ProposalId(1), Bytes::from("mine")).expect("proposed");
        drain(&mut s);
        s.persisted(T, PersistId(1));
        drain(&mut s);
        s.handle_message(T, N2, SynodMessage::Promise { ballot: b(1, 1), accepted: None });
        drain(&mut s);
        // Pre-empted after n2 accepted "mine" in b1.1; the retry in b3.1 adopts it.
        s.handle_message(T, N3, SynodMessage::Nack { ballot: b(1, 1), promised: b(2, 3) });
        let retry = s.poll_timeout().expect("retry armed");
        s.handle_timeout(retry);
        let ballot = s.ballot().expect("retrying");
        assert_eq!(ballot, b(3, 1));
        let outs = drain(&mut s);
        let id = outs.iter().find_map(|o| if let Output::Persist(p) = o { Some(p.id) } else { None });
        s.persisted(retry, id.expect("the ballot is written"));
        drain(&mut s);
        s.handle_message(retry, N2, SynodMessage::Promise { ballot, accepted: Some((b(1, 1), v("mine"))) });
        drain(&mut s);
        for n in [N2, N3] {
            s.handle_message(retry, n, SynodMessage::Accepted { ballot, value: v("mine") });
        }
        let outs = drain(&mut s);
        assert!(outs.contains(&Output::Apply(Apply::Command {
            index: 1,
            command: Bytes::from("mine"),
            proposal: Some(ProposalId(1))
        })));
        // The same bytes decided in a ballot this replica never proposed in: unknown.
        let mut s = synod(N1, Recovered::default());
        s.propose(T, ProposalId(1), Bytes::from("mine")).expect("proposed");
        drain(&mut s);
        for n in [N2, N3] {
            s.handle_message(T, n, SynodMessage::Accepted { ballot: b(1, 2), value: v("mine") });
        }
        let outs = drain(&mut s);
        assert!(outs.contains(&Output::ProposalFailed { id: ProposalId(1), error: ProposeError::LeadershipLost }));
    }

    #[test]
    fn a_nack_makes_the_proposer_back_off_and_retry_higher() {
        let mut s = synod(N1, Recovered::default());
        s.propose(T, ProposalId(1), Bytes::from("x")).expect("proposed");
        drain(&mut s);
        s.handle_message(T, N2, SynodMessage::Nack { ballot: b(1, 1), promised: b(7, 3) });
        assert_eq!(s.ballot(), None);
        let retry = s.poll_timeout().expect("retry armed");
        assert!(retry >= T + Duration::from_millis(200) && retry < T + Duration::from_millis(400), "{retry:?}");
        s.handle_timeout(retry);
        assert_eq!(s.ballot(), Some(b(8, 1)));
    }

    /// Found with ballot-sim (`tests/synod_scenarios.rs`): a learner announced its
    /// decision, crashed before the decision was durable, and restarted undecided; the
    /// others counted it as informed and never told it again. The decision is now
    /// announced only once durable.
    #[test]
    fn the_decision_is_announced_only_once_durable() {
        let mut s = synod(N1, Recovered::default());
        for n in [N2, N3] {
            s.handle_message(T, n, SynodMessage::Accepted { ballot: b(1, 2), value: v("x") });
        }
        let outs = drain(&mut s);
        assert!(s.is_decided());
        let decided = HardState { promised: b(1, 2), decided: 1 };
        assert!(
            matches!(&outs[..], [Output::Apply(_), Output::Persist(p)] if p.hard_state == Some(decided)),
            "{outs:?}"
        );
        // A proposer asking now is not told either: the decision could still be lost.
        s.handle_message(T, N3, SynodMessage::Prepare { ballot: b(2, 3) });
        assert_eq!(drain(&mut s), vec![]);
        s.persisted(T, PersistId(1));
        let announce = SynodMessage::Decided { ballot: b(1, 2), value: v("x") };
        assert_eq!(
            drain(&mut s),
            vec![
                Output::Send { to: N2, message: announce.clone() },
                Output::Send { to: N3, message: announce.clone() },
                Output::Send { to: N3, message: announce },
            ]
        );
    }

    #[test]
    fn restart_keeps_the_promise_and_reapplies_a_decision() {
        let recovered = Recovered {
            hard_state: Some(HardState { promised: b(4, 2), decided: 1 }),
            snapshot: None,
            entries: vec![Entry { slot: 1, ballot: b(3, 2), value: v("d") }],
        };
        let mut s = synod(N1, recovered);
        assert_eq!(
            drain(&mut s),
            vec![Output::Apply(Apply::Command { index: 1, command: Bytes::from("d"), proposal: None })]
        );
        assert_eq!(s.promised(), b(4, 2));
        assert!(s.is_decided());
        assert_eq!(s.propose(T, ProposalId(1), Bytes::from("y")), Err(ProposeError::Stopped));
        // A proposer still running learns the decision instead of a promise.
        s.handle_message(T, N3, SynodMessage::Prepare { ballot: b(9, 3) });
        assert_eq!(
            drain(&mut s),
            vec![Output::Send { to: N3, message: SynodMessage::Decided { ballot: b(3, 2), value: v("d") } }]
        );
        let broken = Recovered {
            hard_state: Some(HardState { promised: b(1, 1), decided: 1 }),
            snapshot: None,
            entries: vec![],
        };
        let members = Membership::new([N1, N2, N3]);
        let err = Synod::new(SynodConfig::new(N1), members, broken, SeededRng::new(1), T).expect_err("corrupt");
        assert!(matches!(err, PaxosError::CorruptRecovery(_)));
    }
}
