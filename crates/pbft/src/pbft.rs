//! The replica: state, the normal case (pre-prepare, prepare, commit, execute),
//! checkpoints and the [`Protocol`] impl. View changes are in `view_change.rs`, state
//! transfer and retransmission in `transfer.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;

use ballot_core::{
    Apply, ClientRule, Event, Instant, Membership, NodeId, Outbox, Output, PersistId, ProposalId, ProposeError,
    Protocol, Quorum, ReadId, Recovered, Role, Snapshot, SnapshotMeta, Status,
};
use bytes::Bytes;

use crate::config::ReadMode;
use crate::crypto::{Crypto, Digest, Signed};
use crate::message::{
    Checkpoint, Entry, HardState, Item, Message, NewView, PrePrepare, Prepare, PreparedCert, StableCheckpoint,
    ViewChange, batch_digest, state_digest,
};
use crate::{Config, PbftError};

/// How many executed requests a replica remembers to refuse relayed duplicates.
const EXECUTED_MEMORY: usize = 65_536;

/// The outputs of a [`Pbft`] replica.
pub type PbftOutput = Output<Message, Entry, HardState>;

/// One sequence number in the log, above the stable checkpoint.
#[derive(Clone, Debug, Default)]
pub(crate) struct Slot {
    /// The PRE-PREPARE accepted for this sequence number in the latest view with one.
    pub pre_prepare: Option<Signed<PrePrepare>>,
    /// PREPAREs of the current view, by signer (any digest; matching ones count).
    pub prepares: BTreeMap<NodeId, Signed<Prepare>>,
    /// COMMITs of the current view, by sender: (view, digest).
    pub commits: BTreeMap<NodeId, (u64, Digest)>,
    /// Prepared in the current view.
    pub prepared: bool,
    /// The committed digest.
    pub committed: Option<Digest>,
    /// The prepared certificate of the highest view.
    pub cert: Option<PreparedCert>,
    /// When the PRE-PREPARE was accepted (for retransmission).
    pub since: Instant,
}

/// What a peer reported lagging on since the last tick: helped once per tick, so that
/// duplicated or replayed reports cost nothing more.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Behind {
    /// The view it is in, and whether it is still changing to it.
    pub view: Option<(u64, bool)>,
    /// Its stable checkpoint.
    pub stable: Option<u64>,
    /// In this replica's view, the last sequence number it executed.
    pub executed: Option<u64>,
}

/// Replicas that claim a batch committed at a sequence number, and the batch.
pub(crate) type Claim = (BTreeSet<NodeId>, Vec<Item>);

/// A request waiting to execute.
#[derive(Clone, Debug)]
pub(crate) struct Pending {
    pub item: Item,
    /// Its place in arrival order here (a new primary orders the waiting requests
    /// oldest first).
    pub arrival: u64,
}

/// A PBFT replica (Castro and Liskov, OSDI'99 / TOCS 2002), implementing [`Protocol`].
///
/// # Polling order
///
/// After every input (`handle_message`, `handle_timeout`, `propose`, `read`,
/// `persisted`, `checkpoint`) drain [`poll_output`](Protocol::poll_output) until `None`,
/// then arm a timer for [`poll_timeout`](Protocol::poll_timeout). Write `Persist`
/// batches in order and acknowledge them with `persisted`: PRE-PREPAREs, PREPAREs,
/// COMMITs, VIEW-CHANGEs and NEW-VIEWs are held back until the writes they depend on are
/// durable, so sending every `Send` at once is safe. Hand `Apply` items to the service
/// in order and answer each [`Apply::Checkpoint`] with
/// [`checkpoint`](Protocol::checkpoint).
///
/// # Authentication
///
/// `handle_message(now, from, m)` trusts `from`: the host delivers a message only from
/// the peer its authenticated channel (mutual TLS) names. Messages that are forwarded
/// inside others carry signatures, checked with the injected
/// [`Verifier`](crate::Verifier) whoever delivered them; see the crate docs.
pub struct Pbft {
    pub(crate) cfg: Config,
    pub(crate) membership: Membership,
    /// The voters in id order: the primary of view `v` is `replicas[v mod n]`.
    pub(crate) replicas: Vec<NodeId>,
    pub(crate) f: usize,
    pub(crate) quorum: usize,
    pub(crate) crypto: Crypto,
    pub(crate) out: Outbox<Message, Entry, HardState>,
    pub(crate) now: Instant,
    pub(crate) flush_due: bool,

    // Views.
    pub(crate) view: u64,
    /// In `view` with a valid NEW-VIEW (or view 0); false while changing views.
    pub(crate) active: bool,
    /// The NEW-VIEW that started the current view, to relay to laggards.
    pub(crate) new_view: Option<Signed<NewView>>,
    pub(crate) reported: (Option<NodeId>, u64),
    pub(crate) role: Role,
    pub(crate) view_changes: BTreeMap<u64, BTreeMap<NodeId, Signed<ViewChange>>>,
    pub(crate) vc_deadline: Option<Instant>,
    /// When this replica started changing to `view` (meaningful while not active).
    pub(crate) changing_since: Instant,
    /// View changes in a row that did not execute the request the timer waited for,
    /// less one: the request and NEW-VIEW timers run for `request_timeout * 2^backoff`.
    pub(crate) backoff: u32,
    /// A view change started since the last execution.
    pub(crate) changed_since_exec: bool,

    // Log.
    pub(crate) stable: StableCheckpoint,
    /// The service state at `stable` (`None` for the empty initial state).
    pub(crate) stable_state: Option<Bytes>,
    pub(crate) slots: BTreeMap<u64, Slot>,
    pub(crate) batches: HashMap<Digest, Vec<Item>>,
    pub(crate) exec_seq: u64,
    pub(crate) exec_index: u64,
    /// The primary's next sequence number.
    pub(crate) next_seq: u64,

    // Checkpoints.
    /// Own checkpoints: seq -> (index, digest, state).
    pub(crate) own_checkpoints: BTreeMap<u64, (u64, Digest, Bytes)>,
    /// Checkpoints asked of the host: index -> seq.
    pub(crate) checkpoint_at: BTreeMap<u64, u64>,
    pub(crate) checkpoint_votes: BTreeMap<u64, BTreeMap<NodeId, Signed<Checkpoint>>>,
    /// A certified checkpoint above the local state (state transfer target).
    pub(crate) known_stable: Option<StableCheckpoint>,

    // Requests.
    pub(crate) pending: BTreeMap<Digest, Pending>,
    /// The waiting requests by arrival, oldest first.
    pub(crate) by_arrival: BTreeMap<u64, Digest>,
    pub(crate) arrivals: u64,
    /// The request the running request timer waits for (a backup in an active view).
    pub(crate) timer_for: Option<Digest>,
    /// Halfway through the request timer: when this replica sends the request it waits
    /// for to every replica (see [`Pbft::forward_waited_request`]).
    pub(crate) forward_at: Option<Instant>,
    /// Primary: requests not yet pre-prepared, in arrival order.
    pub(crate) queue: VecDeque<Digest>,
    /// Primary: requests in a PRE-PREPARE of this view, not executed yet.
    pub(crate) assigned: HashSet<Digest>,
    pub(crate) proposals: HashMap<Digest, VecDeque<ProposalId>>,
    /// Recently executed requests, oldest first: a relayed copy of one is not ordered
    /// again (a lagging backup relays what its clients retry).
    pub(crate) executed: HashSet<Digest>,
    pub(crate) executed_order: VecDeque<Digest>,
    /// Ordered reads: the read barrier in flight (its nonce) and the reads it answers.
    /// Reads that arrive meanwhile wait for the next one, sent when it executes: one
    /// barrier per read let retried and abandoned reads pile up barriers faster than a
    /// primary orders them (ballot-sim, seed 75, 4 nodes).
    pub(crate) read_barrier: Option<(u64, Vec<ReadId>)>,
    /// Ordered reads waiting for the next barrier.
    pub(crate) reads_waiting: Vec<ReadId>,
    pub(crate) next_nonce: u64,
    /// This start's number (durable before any read barrier of it leaves).
    pub(crate) starts: u64,
    /// Primary with an agreed clock: the last time it proposed, and when.
    pub(crate) time_proposed: (u64, Instant),
    /// The service's next deadline in agreed time, as the host last said.
    pub(crate) time_wanted: Option<u64>,

    // Catch-up.
    pub(crate) tick_at: Instant,
    pub(crate) peers: BTreeMap<NodeId, (u64, u64)>,
    pub(crate) behind: BTreeMap<NodeId, Behind>,
    pub(crate) exec_at_tick: u64,
    pub(crate) claims: BTreeMap<u64, BTreeMap<Digest, Claim>>,

    pub(crate) rejected: u64,
    pub(crate) rejections: BTreeMap<&'static str, u64>,
    pub(crate) last_error: Option<PbftError>,
}

impl std::fmt::Debug for Pbft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pbft")
            .field("id", &self.cfg.id)
            .field("view", &self.view)
            .field("active", &self.active)
            .field("stable", &self.stable.seq)
            .field("executed", &self.exec_seq)
            .field("slots", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl Pbft {
    /// Builds replica `config.id` from its durable state (`Recovered::default()` on first
    /// start). The stored snapshot is the stable checkpoint's state: it is handed out
    /// first as [`Apply::Restore`], then the committed batches after it are executed
    /// again.
    ///
    /// # Errors
    /// [`PbftError::InvalidConfig`], [`PbftError::InvalidMembership`] (this replica must
    /// be a voter), [`PbftError::CorruptRecovery`] when the stored parts disagree.
    pub fn new(
        config: Config,
        membership: Membership,
        recovered: Recovered<Entry, HardState>,
        crypto: Crypto,
        now: Instant,
    ) -> Result<Self, PbftError> {
        config.validate()?;
        if !membership.is_voter(config.id) {
            return Err(PbftError::InvalidMembership("this replica is not a voter"));
        }
        let replicas: Vec<NodeId> = membership.all_voters().into_iter().collect();
        let n = replicas.len();
        let hs = recovered.hard_state.unwrap_or_default();
        let snap_index = recovered.snapshot.as_ref().map_or(0, |s| s.meta.index);
        if snap_index != hs.stable.index {
            return Err(PbftError::CorruptRecovery(format!(
                "the snapshot is at index {snap_index} but the stable checkpoint at index {}",
                hs.stable.index
            )));
        }
        if let Some(s) = &recovered.snapshot
            && state_digest(&s.data) != hs.stable.digest
        {
            return Err(PbftError::CorruptRecovery(
                "the snapshot does not match the stable checkpoint's digest".into(),
            ));
        }
        let mut p = Pbft {
            out: Outbox::new(config.id),
            now,
            flush_due: true,
            view: hs.view,
            active: !hs.changing,
            new_view: hs.new_view.clone().filter(|nv| !hs.changing && nv.body.view == hs.view),
            reported: (None, u64::MAX),
            role: Role::Follower,
            view_changes: BTreeMap::new(),
            vc_deadline: None,
            changing_since: now,
            backoff: 0,
            changed_since_exec: false,
            exec_seq: hs.stable.seq,
            exec_index: hs.stable.index,
            next_seq: hs.stable.seq + 1,
            stable_state: recovered.snapshot.as_ref().map(|s| s.data.clone()),
            stable: hs.stable,
            slots: BTreeMap::new(),
            batches: HashMap::new(),
            own_checkpoints: BTreeMap::new(),
            checkpoint_at: BTreeMap::new(),
            checkpoint_votes: BTreeMap::new(),
            known_stable: None,
            pending: BTreeMap::new(),
            by_arrival: BTreeMap::new(),
            arrivals: 0,
            timer_for: None,
            forward_at: None,
            queue: VecDeque::new(),
            assigned: HashSet::new(),
            proposals: HashMap::new(),
            executed: HashSet::new(),
            executed_order: VecDeque::new(),
            read_barrier: None,
            reads_waiting: Vec::new(),
            next_nonce: hs.starts.wrapping_add(1) << 32,
            starts: hs.starts.wrapping_add(1),
            time_proposed: (0, Instant::ZERO),
            time_wanted: None,
            tick_at: now + config.status_interval,
            peers: BTreeMap::new(),
            behind: BTreeMap::new(),
            exec_at_tick: 0,
            claims: BTreeMap::new(),
            f: Quorum::faults(n),
            quorum: Quorum::Byzantine.size(n),
            replicas,
            membership,
            crypto,
            cfg: config,
            rejected: 0,
            rejections: BTreeMap::new(),
            last_error: None,
        };
        for e in recovered.entries {
            if e.seq <= p.stable.seq {
                continue;
            }
            if let Some(b) = e.batch {
                let d = batch_digest(&b);
                if e.committed.is_some_and(|c| c != d) {
                    return Err(PbftError::CorruptRecovery(format!(
                        "the batch stored at {} is not the committed one",
                        e.seq
                    )));
                }
                p.batches.insert(d, b);
            }
            let slot = p.slots.entry(e.seq).or_default();
            slot.pre_prepare = e.pre_prepare;
            slot.cert = e.cert;
            slot.committed = e.committed;
            slot.since = now;
        }
        if p.active {
            p.restore_votes();
        }
        if let Some(s) = recovered.snapshot {
            p.out.push(Output::Apply(Apply::Restore(Box::new(s))));
        }
        if p.active && p.is_primary() {
            p.next_seq = p.slots.keys().next_back().map_or(p.stable.seq, |s| *s).max(p.stable.seq) + 1;
        }
        // This start's number, before anything that carries it.
        p.persist_hard_state();
        p.report_role();
        p.execute_committed();
        if p.active && p.is_primary() {
            p.recompute_assigned();
        }
        if !p.active {
            // Restarted between views: ask again (the same durable certificates).
            p.send_view_change();
        }
        Ok(p)
    }

    // ---- Introspection (status pages, tests, simulators). ----

    /// The current view (or the view being changed to).
    #[must_use]
    pub fn view(&self) -> u64 {
        self.view
    }

    /// Whether this replica is in its view (false while a view change is under way).
    #[must_use]
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The primary of view `view`.
    #[must_use]
    pub fn primary_of(&self, view: u64) -> NodeId {
        self.replicas[usize::try_from(view % self.replicas.len() as u64).unwrap_or(0)]
    }

    /// Whether this replica is the primary of its view.
    #[must_use]
    pub fn is_primary(&self) -> bool {
        self.primary_of(self.view) == self.cfg.id
    }

    /// The last sequence number executed.
    #[must_use]
    pub fn executed_seq(&self) -> u64 {
        self.exec_seq
    }

    /// The service log index reached by execution.
    #[must_use]
    pub fn executed_index(&self) -> u64 {
        self.exec_index
    }

    /// The stable checkpoint (the low water mark is its sequence number).
    #[must_use]
    pub fn stable_checkpoint(&self) -> &StableCheckpoint {
        &self.stable
    }

    /// The digest committed at `seq`, if known and not yet discarded.
    #[must_use]
    pub fn committed_digest(&self, seq: u64) -> Option<Digest> {
        self.slots.get(&seq).and_then(|s| s.committed)
    }

    /// The PRE-PREPARE accepted for `seq`, if any.
    #[must_use]
    pub fn pre_prepared(&self, seq: u64) -> Option<&Signed<PrePrepare>> {
        self.slots.get(&seq).and_then(|s| s.pre_prepare.as_ref())
    }

    /// How many sequence numbers the log holds (above the stable checkpoint).
    #[must_use]
    pub fn log_len(&self) -> usize {
        self.slots.len()
    }

    /// The VIEW-CHANGEs received for `view` (a Byzantine test primary builds a NEW-VIEW
    /// from them).
    #[must_use]
    pub fn view_changes_for(&self, view: u64) -> Vec<Signed<ViewChange>> {
        self.view_changes.get(&view).map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    /// How many messages were rejected (bad signature, wrong view, out of the window…).
    #[must_use]
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// How many messages were rejected, by reason (for metrics and tests).
    #[must_use]
    pub fn rejections(&self) -> &BTreeMap<&'static str, u64> {
        &self.rejections
    }

    /// Why the last message was rejected.
    #[must_use]
    pub fn last_error(&self) -> Option<&PbftError> {
        self.last_error.as_ref()
    }

    /// Requests waiting to execute here.
    #[must_use]
    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }

    /// f: how many arbitrary faults the cluster tolerates.
    #[must_use]
    pub fn faults(&self) -> usize {
        self.f
    }

    /// After a restart in an active view: this replica's own PREPAREs and COMMITs of
    /// that view, as it sent them before (its durable records say so), for
    /// retransmission.
    fn restore_votes(&mut self) {
        let (view, me) = (self.view, self.cfg.id);
        let backup = self.primary_of(view) != me;
        let signer = self.crypto.signer.clone();
        for (&seq, slot) in &mut self.slots {
            let Some(pp) = slot.pre_prepare.as_ref().filter(|p| p.body.view == view) else { continue };
            let digest = pp.body.digest;
            if backup {
                let prepare = Signed::sign(Prepare { view, seq, digest }, me, signer.as_ref());
                slot.prepares.insert(me, prepare);
            }
            if slot.cert.as_ref().is_some_and(|c| c.view() == view && c.digest() == digest) {
                slot.prepared = true;
                slot.commits.insert(me, (view, digest));
            }
        }
    }

    // ---- Helpers. ----

    pub(crate) fn id_(&self) -> NodeId {
        self.cfg.id
    }

    pub(crate) fn is_replica(&self, id: NodeId) -> bool {
        self.replicas.binary_search(&id).is_ok()
    }

    pub(crate) fn reject(&mut self, from: NodeId, reason: &'static str) {
        self.rejected += 1;
        *self.rejections.entry(reason).or_default() += 1;
        self.last_error = Some(PbftError::Rejected { from, reason });
    }

    pub(crate) fn in_window(&self, seq: u64) -> bool {
        seq > self.stable.seq && seq <= self.stable.seq + self.cfg.log_window
    }

    pub(crate) fn hard_state(&self) -> HardState {
        HardState {
            view: self.view,
            changing: !self.active,
            stable: self.stable.clone(),
            new_view: self.new_view.clone().filter(|nv| self.active && nv.body.view == self.view),
            starts: self.starts,
        }
    }

    pub(crate) fn persist_hard_state(&mut self) {
        let hs = self.hard_state();
        self.out.batch().hard_state = Some(hs);
    }

    /// Adds the durable record of `seq` to the pending write.
    pub(crate) fn persist_slot(&mut self, seq: u64) {
        let Some(slot) = self.slots.get(&seq) else { return };
        let digest = slot.committed.or(slot.pre_prepare.as_ref().map(|p| p.body.digest));
        let entry = Entry {
            seq,
            pre_prepare: slot.pre_prepare.clone(),
            batch: digest.and_then(|d| self.batches.get(&d).cloned()),
            cert: slot.cert.clone(),
            committed: slot.committed,
        };
        self.out.push_entry(entry);
    }

    /// Sends to every other replica; `durable` holds it until the writes so far are.
    pub(crate) fn broadcast(&mut self, m: &Message, durable: bool) {
        for i in 0..self.replicas.len() {
            let to = self.replicas[i];
            if to == self.cfg.id {
                continue;
            }
            if durable {
                self.out.send_durable(to, m.clone());
            } else {
                self.out.send(to, m.clone());
            }
        }
    }

    pub(crate) fn send(&mut self, to: NodeId, m: Message) {
        if to != self.cfg.id {
            self.out.send(to, m);
        }
    }

    pub(crate) fn sign<T: crate::crypto::Signable>(&self, body: T) -> Signed<T> {
        Signed::sign(body, self.cfg.id, self.crypto.signer.as_ref())
    }

    pub(crate) fn report_role(&mut self) {
        let role = if !self.active {
            Role::Candidate
        } else if self.is_primary() {
            Role::Leader
        } else {
            Role::Follower
        };
        if role != self.role {
            self.role = role;
            self.out.push(Output::Event(Event::RoleChanged(role)));
        }
        let leader = self.active.then(|| self.primary_of(self.view));
        if self.reported != (leader, self.view) {
            self.reported = (leader, self.view);
            self.out.push(Output::Event(Event::LeaderChanged { leader, term: self.view }));
        }
    }

    /// The request and NEW-VIEW timer: `request_timeout * 2^backoff`.
    pub(crate) fn timer(&self) -> Duration {
        let factor = 1u32.checked_shl(self.backoff.min(self.cfg.max_backoff).min(16)).unwrap_or(1 << 16);
        self.cfg.request_timeout.saturating_mul(factor)
    }

    /// A backup in an active view runs the request timer for one request, the oldest
    /// waiting when it started, and restarts it (for the then oldest) only once that one
    /// no longer waits. Restarted by any execution, it let a primary that orders every
    /// request but one keep its view for ever (Castro and Liskov, section 4.4).
    pub(crate) fn arm_request_timer(&mut self) {
        if !self.active || self.is_primary() {
            return;
        }
        if self.vc_deadline.is_some() && self.timer_for.is_some_and(|d| self.pending.contains_key(&d)) {
            return;
        }
        self.timer_for = self.by_arrival.values().next().copied();
        self.vc_deadline = self.timer_for.map(|_| self.now + self.timer());
        self.forward_at = self.timer_for.map(|_| self.now + self.timer() / 2);
    }

    /// Stops the request timer (a view change starts, or a view begins).
    pub(crate) fn stop_request_timer(&mut self) {
        self.vc_deadline = None;
        self.timer_for = None;
        self.forward_at = None;
    }

    /// Halfway through its request timer, a backup sends the request it waits for to
    /// every replica, as a PBFT client does when it gets no answer in time (BFT-SMaRt's
    /// replicas do it on their first request timeout). A relay to the primary that was
    /// lost is made good, and the other backups start their timers on the request too: a
    /// primary that cannot order it is then replaced by f+1 replicas together, instead of
    /// one backup changing view alone while the others, with nothing waiting, stay
    /// behind (ballot-sim, seed 690 with 7 nodes: a replica alone in view 15 for ever,
    /// four in view 14 one short of a quorum).
    fn forward_waited_request(&mut self) {
        self.forward_at = None;
        let Some(pending) = self.timer_for.and_then(|d| self.pending.get(&d)) else {
            return;
        };
        let item = pending.item.clone();
        let durable = matches!(item, Item::Barrier { replica, .. } if replica == self.cfg.id);
        self.broadcast(&Message::Request(item), durable);
    }

    // ---- Requests. ----

    /// Records a verified request `item`, whose digest is `d`, as waiting; the primary
    /// queues it, a backup relays it.
    pub(crate) fn add_request(&mut self, d: Digest, item: Item, relay: bool) {
        if self.pending.contains_key(&d) {
            if relay && self.active && !self.is_primary() {
                self.relay_to_primary(item);
            }
            return;
        }
        self.arrivals += 1;
        self.pending.insert(d, Pending { item: item.clone(), arrival: self.arrivals });
        self.by_arrival.insert(self.arrivals, d);
        if self.active && self.is_primary() {
            if !self.assigned.contains(&d) {
                self.queue.push_back(d);
            }
        } else if self.active && relay {
            self.relay_to_primary(item);
        }
        self.arm_request_timer();
    }

    /// Passes a waiting request on to the primary. An own read barrier is held until
    /// this start's number is durable (the first write of every start).
    pub(crate) fn relay_to_primary(&mut self, item: Item) {
        let primary = self.primary_of(self.view);
        if primary == self.cfg.id {
            return;
        }
        if matches!(item, Item::Barrier { replica, .. } if replica == self.cfg.id) {
            self.out.send_durable(primary, Message::Request(item));
        } else {
            self.out.send(primary, Message::Request(item));
        }
    }

    /// The waiting requests, oldest first.
    pub(crate) fn pending_oldest_first(&self) -> Vec<(Digest, Item)> {
        self.by_arrival.values().filter_map(|d| Some((*d, self.pending.get(d)?.item.clone()))).collect()
    }

    /// Request `d` no longer waits here.
    pub(crate) fn remove_pending(&mut self, d: &Digest) {
        if let Some(p) = self.pending.remove(d) {
            self.by_arrival.remove(&p.arrival);
        }
    }

    /// Whether `item` may be ordered: a request with a valid client signature, a barrier
    /// of a replica. Time is never a request of its own (see [`Self::batch_valid`]).
    pub(crate) fn item_authentic(&self, item: &Item) -> bool {
        match item {
            Item::Request(b) => b.len() <= self.cfg.max_command_size && self.crypto.requests.verify(b),
            Item::Barrier { replica, .. } => self.is_replica(*replica),
            Item::Time(_) => false,
        }
    }

    /// Whether `item` (whose digest is `d`) was verified when it arrived here (it waits
    /// here: the same digest is the same bytes) or is authentic now. Each replica checks a
    /// client's signature once, not again in the PRE-PREPARE that orders it.
    pub(crate) fn item_verified(&self, d: &Digest, item: &Item) -> bool {
        self.pending.contains_key(d) || self.item_authentic(item)
    }

    /// Whether `batch` is well formed: at most `max_batch` authentic items after the
    /// agreed time, which comes first if the clock is on and nowhere if it is off. Returns
    /// the batch's time, or says what is wrong.
    pub(crate) fn batch_valid(&self, batch: &[Item]) -> Result<Option<u64>, &'static str> {
        let (time, items) = match (batch.first(), self.cfg.clock) {
            (Some(Item::Time(t)), Some(_)) => (Some(*t), &batch[1..]),
            (Some(Item::Time(_)), None) => return Err("pre-prepare carries a time, and this cluster orders none"),
            _ => (None, batch),
        };
        if items.len() > self.cfg.max_batch {
            return Err("pre-prepare batch larger than max_batch");
        }
        if !items.iter().all(|i| self.item_verified(&i.digest(), i)) {
            return Err("pre-prepare carries a request without a valid client signature");
        }
        Ok(time)
    }

    /// Whether the time `t` of a PRE-PREPARE's (valid) batch is within this replica's
    /// bounds: at most `max_skew` ahead of its clock, and at most `max_skew` plus the
    /// request timeout behind it (the batch was timed before its durable write and its
    /// trip here; a PRE-PREPARE later than a request timeout finds its view suspected
    /// anyway). With the clock off, [`Self::batch_valid`] already refused any time.
    fn time_acceptable(&self, t: Option<u64>) -> Result<(), &'static str> {
        let Some(clock) = self.cfg.clock else { return Ok(()) };
        let Some(t) = t else { return Err("pre-prepare without the agreed time") };
        let own = clock.unix_ms(self.now);
        let ahead = u64::try_from(clock.max_skew.as_millis()).unwrap_or(u64::MAX);
        let behind = u64::try_from((clock.max_skew + self.cfg.request_timeout).as_millis()).unwrap_or(u64::MAX);
        if t > own.saturating_add(ahead) {
            return Err("pre-prepare time ahead of this replica's clock by more than max_skew");
        }
        if t.saturating_add(behind) < own {
            return Err("pre-prepare time behind this replica's clock by more than max_skew and the request timeout");
        }
        Ok(())
    }

    /// Primary with an agreed clock: whether a batch of time alone is due — its clock
    /// reached the service's deadline, and it has not proposed a time past it (or did,
    /// a heartbeat ago, and the service still waits).
    fn time_due(&self) -> bool {
        let (Some(clock), Some(wanted)) = (self.cfg.clock, self.time_wanted) else { return false };
        clock.unix_ms(self.now) >= wanted
            && (self.time_proposed.0 < wanted || self.now >= self.time_proposed.1 + clock.heartbeat)
    }

    /// Primary: pre-prepares queued requests in batches, within the water marks and the
    /// in-flight limit.
    pub(crate) fn send_batches(&mut self) {
        if !self.active || !self.is_primary() || (self.queue.is_empty() && !self.time_due()) {
            return;
        }
        // Until every batch a NEW-VIEW carried over is known, its requests cannot be
        // told apart from new ones: wait, rather than order them twice.
        if self.missing_batches().next().is_some() {
            return;
        }
        while (!self.queue.is_empty() || self.time_due())
            && self.in_window(self.next_seq)
            && self.next_seq.saturating_sub(self.exec_seq + 1) < self.cfg.max_inflight
        {
            let mut batch = Vec::new();
            let mut bytes = 0;
            while let Some(d) = self.queue.front().copied() {
                let Some(p) = self.pending.get(&d) else {
                    self.queue.pop_front();
                    continue;
                };
                let size = p.item.size();
                if batch.len() >= self.cfg.max_batch || (!batch.is_empty() && bytes + size > self.cfg.max_batch_bytes) {
                    break;
                }
                self.queue.pop_front();
                if self.assigned.insert(d) {
                    bytes += size;
                    batch.push(p.item.clone());
                }
            }
            if let Some(clock) = self.cfg.clock {
                if batch.is_empty() && !self.time_due() {
                    break;
                }
                let t = clock.unix_ms(self.now).max(self.time_proposed.0);
                self.time_proposed = (t, self.now);
                batch.insert(0, Item::Time(t));
            } else if batch.is_empty() {
                break;
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            let digest = batch_digest(&batch);
            let pp = self.sign(PrePrepare { view: self.view, seq, digest });
            self.batches.insert(digest, batch.clone());
            let slot = self.slots.entry(seq).or_default();
            slot.pre_prepare = Some(pp.clone());
            slot.since = self.now;
            self.persist_slot(seq);
            self.broadcast(&Message::PrePrepare { pre_prepare: pp, batch }, true);
            self.check_prepared(seq);
        }
    }

    /// Digests of batches this replica needs (pre-prepared in its view, or committed)
    /// and does not have.
    pub(crate) fn missing_batches(&self) -> impl Iterator<Item = Digest> + '_ {
        self.slots.range(self.exec_seq + 1..).filter_map(|(_, s)| {
            let d =
                s.committed.or(s.pre_prepare.as_ref().filter(|p| p.body.view == self.view).map(|p| p.body.digest))?;
            (!self.batches.contains_key(&d)).then_some(d)
        })
    }

    // ---- Normal case. ----

    pub(crate) fn on_pre_prepare(&mut self, from: NodeId, pp: Signed<PrePrepare>, batch: Vec<Item>) {
        let PrePrepare { view, seq, digest } = pp.body;
        if view != self.view || !self.active {
            return self.reject(from, "pre-prepare for another view");
        }
        let primary = self.primary_of(view);
        if from != primary || pp.signer != primary || primary == self.cfg.id {
            return self.reject(from, "pre-prepare not from the primary");
        }
        if !self.in_window(seq) {
            return self.reject(from, "pre-prepare outside the water marks");
        }
        if let Some(existing) = self.slots.get(&seq).and_then(|s| s.pre_prepare.as_ref())
            && existing.body.view == view
        {
            if existing.body.digest != digest {
                self.reject(from, "conflicting pre-prepare (equivocating primary)");
            }
            return;
        }
        if batch.len() > self.cfg.max_batch.saturating_add(1) || batch_digest(&batch) != digest {
            return self.reject(from, "pre-prepare digest does not match its batch");
        }
        if !pp.verify(self.crypto.verifier.as_ref()) {
            return self.reject(from, "pre-prepare signature invalid");
        }
        let time = match self.batch_valid(&batch) {
            Ok(time) => time,
            Err(why) => return self.reject(from, why),
        };
        if let Err(why) = self.time_acceptable(time) {
            // A time outside this replica's bounds is still accepted once f+1 backups
            // prepared this very PRE-PREPARE: one of them is correct and checked the time
            // when it was fresh. Without this, a backup that missed the PRE-PREPARE (a
            // partition, a restart) could never accept its retransmission, which carries
            // the time of the first sending (ballot-sim, seed 150, 7 nodes, election).
            let vouched = self
                .slots
                .get(&seq)
                .map_or(0, |s| s.prepares.values().filter(|p| p.body.view == view && p.body.digest == digest).count());
            if vouched <= self.f {
                return self.reject(from, why);
            }
        }
        self.batches.insert(digest, batch);
        self.accept_pre_prepare(pp);
    }

    /// Accepts a (verified) PRE-PREPARE of the current view: durable, then PREPARE.
    pub(crate) fn accept_pre_prepare(&mut self, pp: Signed<PrePrepare>) {
        let PrePrepare { view, seq, digest } = pp.body;
        let now = self.now;
        let slot = self.slots.entry(seq).or_default();
        slot.pre_prepare = Some(pp);
        slot.since = now;
        self.persist_slot(seq);
        if self.primary_of(view) != self.cfg.id {
            let prepare = self.sign(Prepare { view, seq, digest });
            self.broadcast(&Message::Prepare(prepare.clone()), true);
            if let Some(slot) = self.slots.get_mut(&seq) {
                slot.prepares.insert(self.cfg.id, prepare);
            }
        }
        if !self.batches.contains_key(&digest) {
            self.broadcast(&Message::FetchBatch { digest }, false);
        }
        self.check_prepared(seq);
    }

    pub(crate) fn on_prepare(&mut self, from: NodeId, p: Signed<Prepare>) {
        let Prepare { view, seq, .. } = p.body;
        if view != self.view || !self.active {
            return self.reject(from, "prepare for another view");
        }
        if p.signer != from || from == self.primary_of(view) {
            return self.reject(from, "prepare not from a backup of the view");
        }
        if !self.in_window(seq) {
            return self.reject(from, "prepare outside the water marks");
        }
        if self.slots.get(&seq).is_some_and(|s| s.prepares.contains_key(&from)) {
            return;
        }
        if !p.verify(self.crypto.verifier.as_ref()) {
            return self.reject(from, "prepare signature invalid");
        }
        self.slots.entry(seq).or_default().prepares.insert(from, p);
        self.check_prepared(seq);
    }

    /// prepared(m, v, n, i): the PRE-PREPARE and 2f matching PREPAREs from distinct
    /// backups. Records the certificate durably, then sends COMMIT.
    pub(crate) fn check_prepared(&mut self, seq: u64) {
        let view = self.view;
        let need = self.quorum - 1;
        let Some(slot) = self.slots.get_mut(&seq) else { return };
        let Some(pp) = slot.pre_prepare.clone() else { return };
        if slot.prepared || pp.body.view != view {
            return;
        }
        let digest = pp.body.digest;
        let matching: Vec<Signed<Prepare>> =
            slot.prepares.values().filter(|p| p.body.view == view && p.body.digest == digest).cloned().collect();
        if matching.len() < need {
            return;
        }
        slot.prepared = true;
        slot.cert = Some(PreparedCert { pre_prepare: pp, prepares: matching.into_iter().take(need).collect() });
        slot.commits.insert(self.cfg.id, (view, digest));
        self.persist_slot(seq);
        self.broadcast(&Message::Commit { view, seq, digest }, true);
        self.check_committed(seq);
    }

    pub(crate) fn on_commit(&mut self, from: NodeId, view: u64, seq: u64, digest: Digest) {
        if view != self.view || !self.active {
            return self.reject(from, "commit for another view");
        }
        if !self.in_window(seq) {
            return self.reject(from, "commit outside the water marks");
        }
        self.slots.entry(seq).or_default().commits.entry(from).or_insert((view, digest));
        self.check_committed(seq);
    }

    /// committed-local(m, v, n, i): prepared and 2f+1 matching COMMITs.
    pub(crate) fn check_committed(&mut self, seq: u64) {
        let q = self.quorum;
        let Some(slot) = self.slots.get_mut(&seq) else { return };
        if !slot.prepared || slot.committed.is_some() {
            return;
        }
        let Some(pp) = &slot.pre_prepare else { return };
        let key = (pp.body.view, pp.body.digest);
        if slot.commits.values().filter(|c| **c == key).count() < q {
            return;
        }
        slot.committed = Some(key.1);
        self.persist_slot(seq);
        self.execute_committed();
    }

    /// Executes committed batches strictly in sequence order, as far as they are known.
    pub(crate) fn execute_committed(&mut self) {
        loop {
            let seq = self.exec_seq + 1;
            let Some(digest) = self.slots.get(&seq).and_then(|s| s.committed) else { break };
            let Some(batch) = self.batches.get(&digest).cloned() else {
                self.broadcast(&Message::FetchBatch { digest }, false);
                break;
            };
            self.execute(seq, &batch);
        }
    }

    fn execute(&mut self, seq: u64, batch: &[Item]) {
        // The back-off ends once the request the timer waits for executes (or, with no
        // timer running, at any execution in an active view). A cluster that executes
        // other requests but not that one keeps doubling the timer, up to the cap: with
        // more waiting than a primary commits in one timer period, restarting at the
        // base timer after each execution brought a view change after every batch, for
        // ever (ballot-sim, seed 75, 4 nodes).
        let waited_for = self.timer_for.is_none_or(|t| batch.iter().any(|i| i.digest() == t));
        if self.active && waited_for {
            self.backoff = 0;
            self.changed_since_exec = false;
        }
        if batch.is_empty() {
            self.exec_index += 1;
            self.out.push(Output::Apply(Apply::Internal { index: self.exec_index }));
        }
        for item in batch {
            self.exec_index += 1;
            let index = self.exec_index;
            let d = item.digest();
            self.remove_pending(&d);
            self.assigned.remove(&d);
            self.remember_executed(d);
            match item {
                Item::Request(command) => {
                    // The request executes once however often it was proposed here (a
                    // client's retry reaching this replica again while it waited): the
                    // first proposal is applied, the others are resolved as failed, so
                    // that the host does not wait for them for ever (its session table
                    // answers their clients).
                    let mut ids = self.proposals.remove(&d).unwrap_or_default();
                    let proposal = ids.pop_front();
                    self.out.push(Output::Apply(Apply::Command { index, command: command.clone(), proposal }));
                    for id in ids {
                        let error =
                            ProposeError::Unavailable("the same request executed under an earlier proposal".into());
                        self.out.push(Output::ProposalFailed { id, error });
                    }
                }
                Item::Time(unix_ms) => self.out.push(Output::Apply(Apply::Time { index, unix_ms: *unix_ms })),
                Item::Barrier { replica, nonce } => {
                    self.out.push(Output::Apply(Apply::Internal { index }));
                    if *replica == self.cfg.id && self.read_barrier.as_ref().is_some_and(|(n, _)| n == nonce) {
                        for id in self.read_barrier.take().map(|(_, ids)| ids).unwrap_or_default() {
                            self.out.push(Output::ReadReady { id, index });
                        }
                        let waiting = std::mem::take(&mut self.reads_waiting);
                        if !waiting.is_empty() {
                            self.send_read_barrier(waiting);
                        }
                    }
                }
            }
        }
        self.exec_seq = seq;
        self.arm_request_timer();
        if seq.is_multiple_of(self.cfg.checkpoint_interval) {
            self.checkpoint_at.insert(self.exec_index, seq);
            self.out.push(Output::Apply(Apply::Checkpoint { index: self.exec_index }));
        }
        self.send_batches();
    }

    /// Remembers that request `d` executed (a bounded memory, oldest forgotten first).
    pub(crate) fn remember_executed(&mut self, d: Digest) {
        if self.executed.insert(d) {
            self.executed_order.push_back(d);
            if self.executed_order.len() > EXECUTED_MEMORY
                && let Some(old) = self.executed_order.pop_front()
            {
                self.executed.remove(&old);
            }
        }
    }

    // ---- Checkpoints. ----

    pub(crate) fn on_checkpoint(&mut self, from: NodeId, c: Signed<Checkpoint>) {
        let seq = c.body.seq;
        if seq <= self.stable.seq {
            return;
        }
        if !self.is_replica(c.signer) {
            return self.reject(from, "checkpoint signed by a non-member");
        }
        if self.checkpoint_votes.get(&seq).is_some_and(|v| v.contains_key(&c.signer)) {
            return;
        }
        if !c.verify(self.crypto.verifier.as_ref()) {
            return self.reject(from, "checkpoint signature invalid");
        }
        let signer = c.signer;
        self.checkpoint_votes.entry(seq).or_default().insert(signer, c);
        // Bound memory: keep each signer's four newest votes.
        let mine: Vec<u64> =
            self.checkpoint_votes.iter().filter(|(_, v)| v.contains_key(&signer)).map(|(s, _)| *s).collect();
        if mine.len() > 4 {
            for s in &mine[..mine.len() - 4] {
                if let Some(v) = self.checkpoint_votes.get_mut(s) {
                    v.remove(&signer);
                }
            }
        }
        self.check_stable(seq);
    }

    /// 2f+1 matching CHECKPOINTs make `seq` stable.
    pub(crate) fn check_stable(&mut self, seq: u64) {
        let Some(votes) = self.checkpoint_votes.get(&seq) else { return };
        let mut groups: BTreeMap<(u64, Digest), Vec<&Signed<Checkpoint>>> = BTreeMap::new();
        for v in votes.values() {
            groups.entry((v.body.index, v.body.digest)).or_default().push(v);
        }
        let Some(((index, digest), proof)) = groups.into_iter().find(|(_, v)| v.len() >= self.quorum) else { return };
        let cert = StableCheckpoint { seq, index, digest, proof: proof.into_iter().cloned().collect() };
        self.adopt_stable(cert);
    }

    /// A certified checkpoint: becomes stable here if the local state matches it;
    /// otherwise it is the target of a state transfer.
    pub(crate) fn adopt_stable(&mut self, cert: StableCheckpoint) {
        if cert.seq <= self.stable.seq {
            return;
        }
        match self.own_checkpoints.get(&cert.seq) {
            Some((index, digest, state)) if *index == cert.index && *digest == cert.digest => {
                let state = state.clone();
                self.set_stable(cert, state);
            }
            Some(_) => {
                // Our own state differs from what 2f+1 certified: replace it.
                self.broadcast(&Message::FetchState { seq: cert.seq }, false);
                self.known_stable = Some(cert);
            }
            None => {
                if self.known_stable.as_ref().is_none_or(|k| k.seq < cert.seq) {
                    self.known_stable = Some(cert);
                }
            }
        }
    }

    /// Makes `cert` the stable checkpoint with local `state`: discards the log below it
    /// and advances the water marks.
    pub(crate) fn set_stable(&mut self, cert: StableCheckpoint, state: Bytes) {
        let seq = cert.seq;
        self.slots = self.slots.split_off(&(seq + 1));
        self.own_checkpoints = self.own_checkpoints.split_off(&(seq + 1));
        self.checkpoint_votes = self.checkpoint_votes.split_off(&(seq + 1));
        self.claims = self.claims.split_off(&(seq + 1));
        if self.known_stable.as_ref().is_some_and(|k| k.seq <= seq) {
            self.known_stable = None;
        }
        let live: HashSet<Digest> = self
            .slots
            .values()
            .flat_map(|s| {
                s.pre_prepare
                    .iter()
                    .map(|p| p.body.digest)
                    .chain(s.committed)
                    .chain(s.cert.iter().map(PreparedCert::digest))
            })
            .collect();
        self.batches.retain(|d, _| live.contains(d));
        let snapshot = Snapshot {
            meta: SnapshotMeta { index: cert.index, term: self.view, membership: self.membership.clone() },
            data: state.clone(),
        };
        self.stable = cert;
        self.stable_state = Some(state);
        let batch = self.out.batch();
        batch.snapshot = Some(Box::new(snapshot));
        batch.compact_to = Some(seq);
        self.persist_hard_state();
        if self.next_seq <= seq {
            self.next_seq = seq + 1;
        }
        self.send_batches();
    }

    // ---- Flushing. ----

    pub(crate) fn flush(&mut self) {
        self.send_batches();
        self.out.flush_persist();
        self.flush_due = false;
    }

    /// Handles one message (after the `from` checks).
    pub(crate) fn step(&mut self, from: NodeId, m: Message) {
        match m {
            Message::Request(item) => {
                let d = item.digest();
                if !self.item_verified(&d, &item) {
                    return self.reject(from, "relayed request without a valid client signature");
                }
                if self.executed.contains(&d) {
                    return;
                }
                // Bounded like proposals: read barriers need no client signature, and a
                // liar could relay them without end.
                if self.pending.len() >= self.cfg.max_pending && !self.pending.contains_key(&d) {
                    return self.reject(from, "relayed request beyond max_pending");
                }
                // A backup passes a relayed request on to the primary: a request that
                // starts its timer must also reach the one who can order it.
                let relay = !self.is_primary();
                self.add_request(d, item, relay);
            }
            Message::PrePrepare { pre_prepare, batch } => self.on_pre_prepare(from, pre_prepare, batch),
            Message::Prepare(p) => self.on_prepare(from, p),
            Message::Commit { view, seq, digest } => self.on_commit(from, view, seq, digest),
            Message::Checkpoint(c) => self.on_checkpoint(from, c),
            Message::ViewChange(vc) => self.on_view_change(from, vc),
            Message::NewView(nv) => self.on_new_view(from, nv),
            Message::Status { view, changing, stable, executed } => {
                self.on_status(from, view, changing, stable, executed)
            }
            Message::FetchBatch { digest } => self.on_fetch_batch(from, digest),
            Message::Batch { batch } => self.on_batch(from, batch),
            Message::FetchCommitted { from: lo, to } => self.on_fetch_committed(from, lo, to),
            Message::Committed { seq, batch } => self.on_committed(from, seq, batch),
            Message::FetchState { seq } => self.on_fetch_state(from, seq),
            Message::State { checkpoint, state } => self.on_state(from, checkpoint, state),
        }
    }

    fn ordered_read(&mut self, id: ReadId) -> Result<(), ProposeError> {
        if self.pending.len() >= self.cfg.max_pending || self.reads_waiting.len() >= self.cfg.max_pending {
            return Err(ProposeError::Busy);
        }
        if self.read_barrier.is_some() {
            // Ordered after this read began: the barrier in flight may not be.
            self.reads_waiting.push(id);
        } else {
            self.send_read_barrier(vec![id]);
        }
        Ok(())
    }

    /// Orders a new read barrier that answers `reads` once it executes here.
    fn send_read_barrier(&mut self, reads: Vec<ReadId>) {
        self.next_nonce += 1;
        let nonce = self.next_nonce;
        self.read_barrier = Some((nonce, reads));
        let barrier = Item::Barrier { replica: self.cfg.id, nonce };
        self.add_request(barrier.digest(), barrier, true);
    }

    /// Fails every ordered read waiting here (the state it waited on was replaced).
    pub(crate) fn fail_reads(&mut self, why: &str) {
        let barrier = self.read_barrier.take().map(|(_, ids)| ids).unwrap_or_default();
        for id in barrier.into_iter().chain(std::mem::take(&mut self.reads_waiting)) {
            self.out.push(Output::ReadFailed { id, error: ProposeError::Unavailable(why.into()) });
        }
    }

    /// Orders a read barrier and answers `id` once it executed here: the fallback of a
    /// client whose fast read did not get 2f+1 matching answers.
    ///
    /// # Errors
    /// [`ProposeError::Busy`] when too many requests wait.
    pub fn read_ordered(&mut self, now: Instant, id: ReadId) -> Result<(), ProposeError> {
        self.now = now;
        self.flush_due = true;
        self.ordered_read(id)
    }
}

impl Protocol for Pbft {
    type Message = Message;
    type Entry = Entry;
    type HardState = HardState;

    fn id(&self) -> NodeId {
        self.cfg.id
    }

    fn handle_message(&mut self, now: Instant, from: NodeId, message: Message) {
        self.now = self.now.max(now);
        self.flush_due = true;
        if from == self.cfg.id || !self.is_replica(from) {
            return self.reject(from, "sender is not another member");
        }
        self.step(from, message);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        self.flush_due = true;
        if self.forward_at.is_some_and(|t| now >= t) {
            self.forward_waited_request();
        }
        if self.vc_deadline.is_some_and(|d| now >= d) {
            self.stop_request_timer();
            self.start_view_change(self.view.saturating_add(1));
        }
        if now >= self.tick_at {
            self.tick_at = now + self.cfg.status_interval;
            self.tick();
        }
    }

    fn refusals(&self) -> Vec<(&'static str, u64)> {
        self.rejections.iter().map(|(reason, n)| (*reason, *n)).collect()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Some([self.vc_deadline, self.forward_at].into_iter().flatten().fold(self.tick_at, Instant::min))
    }

    fn propose(&mut self, now: Instant, id: ProposalId, command: Bytes) -> Result<(), ProposeError> {
        self.now = self.now.max(now);
        self.flush_due = true;
        if command.len() > self.cfg.max_command_size {
            return Err(ProposeError::TooLarge { size: command.len(), max: self.cfg.max_command_size });
        }
        let item = Item::Request(command);
        let d = item.digest();
        if !self.item_verified(&d, &item) {
            return Err(ProposeError::Unavailable("the request's client signature is not valid".into()));
        }
        if !self.pending.contains_key(&d) && self.pending.len() >= self.cfg.max_pending {
            return Err(ProposeError::Busy);
        }
        if self.executed.contains(&d) {
            // A retry of a request that executed here: the primary would not order it
            // again, so the proposal would never resolve. The host answers such retries
            // from its session table; anything else is refused.
            return Err(ProposeError::Unavailable("this request already executed".into()));
        }
        self.proposals.entry(d).or_default().push_back(id);
        self.add_request(d, item, true);
        Ok(())
    }

    fn read(&mut self, now: Instant, id: ReadId) -> Result<(), ProposeError> {
        self.now = self.now.max(now);
        self.flush_due = true;
        match self.cfg.read_mode {
            ReadMode::Fast => {
                self.out.push(Output::ReadReady { id, index: self.exec_index });
                Ok(())
            }
            ReadMode::Ordered => self.ordered_read(id),
        }
    }

    fn persisted(&mut self, now: Instant, id: PersistId) {
        self.now = self.now.max(now);
        self.flush_due = true;
        let _ = self.out.persisted(id);
    }

    /// PBFT discards its log at stable checkpoints, whose state it gets through
    /// [`checkpoint`](Protocol::checkpoint); snapshots the host takes at other points
    /// are not needed.
    fn compact(&mut self, now: Instant, index: u64, data: Bytes) {
        let _ = (now, index, data);
    }

    fn checkpoint(&mut self, now: Instant, index: u64, digest: [u8; 32], state: Bytes) {
        self.now = self.now.max(now);
        self.flush_due = true;
        let Some(seq) = self.checkpoint_at.remove(&index) else { return };
        let digest = Digest(digest);
        self.own_checkpoints.insert(seq, (index, digest, state));
        let vote = self.sign(Checkpoint { seq, index, digest });
        self.broadcast(&Message::Checkpoint(vote.clone()), false);
        self.checkpoint_votes.entry(seq).or_default().insert(self.cfg.id, vote);
        self.check_stable(seq);
        if let Some(k) = self.known_stable.clone()
            && k.seq == seq
        {
            self.adopt_stable(k);
        }
    }

    fn time_wanted(&mut self, now: Instant, unix_ms: Option<u64>) {
        self.now = self.now.max(now);
        self.time_wanted = unix_ms;
        if self.time_due() {
            self.flush_due = true;
        }
    }

    /// [`ClientRule::byzantine`]: 2f+1 matching replies for writes and reads alike
    /// (ballot-sim, seed 308, 4 nodes, found stale reads with f+1 for writes).
    fn client_rule(&self) -> ClientRule {
        ClientRule::byzantine(self.replicas.len())
    }

    fn request_body(&self, command: &Bytes) -> Result<Bytes, String> {
        self.crypto.requests.body(command)
    }

    fn poll_output(&mut self) -> Option<PbftOutput> {
        if let Some(o) = self.out.pop() {
            return Some(o);
        }
        if self.flush_due {
            self.flush();
            return self.out.pop();
        }
        None
    }

    fn status(&self) -> Status {
        Status {
            id: self.cfg.id,
            role: self.role,
            leader: self.active.then(|| self.primary_of(self.view)),
            term: self.view,
            commit_index: self.exec_index,
            applied_index: self.exec_index,
            last_index: self.exec_index,
            snapshot_index: self.stable.index,
            membership: self.membership.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbft_can_move_between_threads() {
        fn send<T: Send>() {}
        send::<Pbft>();
        send::<PbftOutput>();
    }
}
