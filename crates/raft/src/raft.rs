//! The Raft state machine: its state, the output plumbing (durability ordering), role
//! transitions, message dispatch and the [`Protocol`] implementation.

use std::collections::VecDeque;

use ballot_core::{
    Apply, Event, Instant, Membership, NodeId, Outbox, Output, Persist, PersistId, ProposalId, ProposeError, Protocol,
    ReadId, Recovered, Role, SeededRng, Snapshot, SnapshotMeta, Status,
};
use bytes::Bytes;

use crate::log::RaftLog;
use crate::progress::{PeerProgress, Progress};
use crate::read::Reads;
use crate::{Config, Entry, EntryPayload, HardState, Message, RaftError};

/// What [`Raft::poll_output`](Protocol::poll_output) returns.
pub(crate) type Out = Output<Message, Entry, HardState>;

/// A leadership transfer in progress.
#[derive(Debug)]
pub(crate) struct Transfer {
    pub(crate) to: NodeId,
    pub(crate) deadline: Instant,
    /// TimeoutNow went out.
    pub(crate) sent: bool,
}

/// A snapshot being assembled from chunks on a follower.
#[derive(Debug)]
pub(crate) struct IncomingSnapshot {
    pub(crate) meta: SnapshotMeta,
    pub(crate) total: u64,
    pub(crate) data: Vec<u8>,
}

/// A sans-IO Raft replica.
///
/// `Raft` implements [`Protocol`]: it never touches a clock, a socket or a disk. Its caller
/// (ballot-node's driver, ballot-sim, or your own loop) owns those and talks to it as
/// follows, like quinn-proto's `Connection`:
///
/// 1. **Feed one input**, passing the current time: [`handle_message`](Protocol::handle_message),
///    [`handle_timeout`](Protocol::handle_timeout), [`propose`](Protocol::propose),
///    [`read`](Protocol::read), [`persisted`](Protocol::persisted),
///    [`compact`](Protocol::compact), [`change_membership`](Raft::change_membership) or
///    [`transfer_leadership`](Raft::transfer_leadership).
/// 2. **Drain [`poll_output`](Protocol::poll_output) until it returns `None`**, and carry out
///    each [`Output`]:
///    - `Persist`: write the batch atomically, after every earlier batch, then call
///      [`persisted`](Protocol::persisted) with its id (acknowledging an id acknowledges
///      all earlier ones, so writes may be grouped);
///    - `Send`: hand the message to the transport (best effort, any order);
///    - `Apply`: feed the service state machine, in the order polled;
///    - `ReadReady { id, index }`: answer read `id` once the service applied `index`;
///    - `ReadFailed`, `ProposalFailed`, `Event`: report them.
/// 3. **Ask [`poll_timeout`](Protocol::poll_timeout)** and call `handle_timeout` at (or after)
///    that instant.
///
/// Durability ordering is handled inside: vote grants and append acknowledgements are
/// only returned from `poll_output` after `persisted` covers the writes they depend on,
/// so a driver that sends every `Send` as soon as it is polled is safe.
///
/// # Example
///
/// Three replicas in memory, with messages delivered and writes acknowledged instantly:
///
/// ```
/// use std::collections::VecDeque;
/// use ballot_core::{Apply, Instant, Membership, NodeId, Output, ProposalId, Protocol, Recovered, SeededRng};
/// use ballot_raft::{Config, Raft};
/// use bytes::Bytes;
///
/// let ids = [NodeId(1), NodeId(2), NodeId(3)];
/// let mut nodes: Vec<Raft> = ids
///     .iter()
///     .map(|&id| {
///         let rng = SeededRng::new(id.get());
///         Raft::new(Config::new(id), Membership::new(ids), Recovered::default(), rng, Instant::ZERO)
///     })
///     .collect::<Result<_, _>>()?;
/// let mut now = Instant::ZERO;
/// let mut inbox = VecDeque::new();
/// let mut applied = Vec::new();
/// let mut proposed = false;
/// for _ in 0..100 {
///     // Deliver messages and writes until every replica is quiet.
///     loop {
///         for (i, node) in nodes.iter_mut().enumerate() {
///             while let Some(out) = node.poll_output() {
///                 match out {
///                     Output::Send { to, message } => inbox.push_back((ids[i], to, message)),
///                     Output::Persist(batch) => node.persisted(now, batch.id), // "written"
///                     Output::Apply(Apply::Command { command, .. }) => applied.push((i, command)),
///                     _ => {}
///                 }
///             }
///         }
///         let Some((from, to, message)) = inbox.pop_front() else { break };
///         nodes[(to.get() - 1) as usize].handle_message(now, from, message);
///     }
///     if let Some(leader) = nodes.iter_mut().find(|n| n.is_leader()) {
///         if !proposed {
///             leader.propose(now, ProposalId(1), Bytes::from_static(b"x=1"))?;
///             proposed = true;
///             continue;
///         }
///     }
///     if applied.len() == 3 {
///         break;
///     }
///     // Nothing to do: advance time to the earliest timer.
///     now = nodes.iter().filter_map(|n| n.poll_timeout()).min().expect("a timer is armed");
///     for node in &mut nodes {
///         node.handle_timeout(now);
///     }
/// }
/// assert_eq!(applied.len(), 3, "every replica applied the command");
/// assert!(applied.iter().all(|(_, c)| c == &Bytes::from_static(b"x=1")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Raft {
    pub(crate) cfg: Config,
    pub(crate) rng: SeededRng,
    /// The latest `now` of any input (inputs going back in time are clamped).
    pub(crate) now: Instant,
    pub(crate) term: u64,
    pub(crate) vote: Option<NodeId>,
    pub(crate) commit: u64,
    pub(crate) applied: u64,
    pub(crate) log: RaftLog,
    pub(crate) role: Role,
    pub(crate) leader: Option<NodeId>,
    /// The (leader, term) last reported in `Event::LeaderChanged`.
    announced_leader: (Option<NodeId>, u64),
    /// The term recovered at start: entries of later terms that name this node as their
    /// origin were proposed by this incarnation.
    pub(crate) incarnation_term: u64,
    pub(crate) election_deadline: Instant,
    pub(crate) heartbeat_deadline: Instant,
    pub(crate) check_quorum_deadline: Instant,
    pub(crate) last_leader_contact: Option<Instant>,
    /// With lease reads, a restarted replica refuses votes until then (it forgot whether
    /// it was supporting a leader's lease).
    sticky_until: Instant,
    /// Votes received in this (pre-)campaign.
    pub(crate) votes: Vec<(NodeId, bool)>,
    /// The batch holding this candidate's vote for itself; it counts once durable.
    pub(crate) self_vote: Option<PersistId>,
    pub(crate) peers: Vec<Progress>,
    pub(crate) transfer: Option<Transfer>,
    /// Heartbeat rounds: the latest round number, and (for leases) when recent rounds went out.
    pub(crate) hb_seq: u64,
    pub(crate) hb_sent: VecDeque<(u64, Instant)>,
    pub(crate) lease_until: Option<Instant>,
    pub(crate) lease_blocked_until: Instant,
    pub(crate) reads: Reads,
    /// The latest snapshot (what lagging followers are sent).
    pub(crate) snapshot: Option<Snapshot>,
    pub(crate) incoming: Option<IncomingSnapshot>,
    /// An installed snapshot handed to the service once its batch is durable.
    pub(crate) pending_restore: Option<(PersistId, Snapshot)>,
    /// Outputs, the batch being filled (emitted by `poll_output`), and messages held
    /// until the writes before them are durable.
    pub(crate) out: Outbox<Message, Entry, HardState>,
    /// The hard state last put into a batch.
    saved_hs: HardState,
    /// The leader has something to replicate (new entries, commit, acks freeing windows).
    pub(crate) need_broadcast: bool,
}

impl std::fmt::Debug for Raft {
    /// A summary; the log itself is not printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Raft")
            .field("id", &self.cfg.id)
            .field("role", &self.role)
            .field("term", &self.term)
            .field("vote", &self.vote)
            .field("leader", &self.leader)
            .field("commit", &self.commit)
            .field("applied", &self.applied)
            .field("first_index", &self.log.first_index())
            .field("last_index", &self.log.last_index())
            .field("stable_index", &self.log.stable())
            .field("membership", self.log.membership())
            .finish_non_exhaustive()
    }
}

impl Raft {
    /// Builds a replica from what its store recovered (or `Recovered::default()` for a new
    /// one).
    ///
    /// `initial` is the configuration of a brand-new cluster: it is used only when
    /// `recovered` holds neither a snapshot nor a membership entry, so every founding
    /// member must be started with the same `initial`. A replica that will join an
    /// existing cluster starts with an empty `initial` and waits for a leader to send it
    /// the log. On restart, a snapshot in `recovered` is emitted first as
    /// [`Apply::Restore`], followed by the committed entries after it.
    ///
    /// # Errors
    /// [`RaftError::InvalidConfig`] for a bad `config`; [`RaftError::CorruptRecovery`] if
    /// `recovered` contradicts itself.
    pub fn new(
        config: Config,
        initial: Membership,
        recovered: Recovered<Entry, HardState>,
        rng: SeededRng,
        now: Instant,
    ) -> Result<Raft, RaftError> {
        config.validate()?;
        let Recovered { hard_state, snapshot, entries } = recovered;
        let hs = hard_state.unwrap_or_default();
        let corrupt = |s: String| Err(RaftError::CorruptRecovery(s));
        let meta = match &snapshot {
            Some(s) => s.meta.clone(),
            None => SnapshotMeta { index: 0, term: 0, membership: initial },
        };
        if meta.term > hs.term {
            return corrupt(format!("snapshot term {} is newer than the hard state's term {}", meta.term, hs.term));
        }
        let mut log = RaftLog::new(meta.clone());
        for e in entries {
            if e.index <= meta.index {
                continue; // covered by the snapshot
            }
            if e.index != log.last_index() + 1 {
                return corrupt(format!("entry {} does not follow index {}", e.index, log.last_index()));
            }
            if e.term < log.last_term() || e.term > hs.term {
                return corrupt(format!(
                    "entry {} has term {} (previous term {}, hard state term {})",
                    e.index,
                    e.term,
                    log.last_term(),
                    hs.term
                ));
            }
            log.append(e);
        }
        log.mark_all_stable();
        if hs.commit > log.last_index() {
            return corrupt(format!("commit index {} is past the last entry {}", hs.commit, log.last_index()));
        }
        let sticky_until = if config.election.lease_reads { now + config.election.timeout_min } else { Instant::ZERO };
        let mut raft = Raft {
            rng,
            now,
            term: hs.term,
            vote: hs.vote,
            commit: hs.commit.max(meta.index),
            applied: meta.index,
            log,
            role: Role::Follower,
            leader: None,
            announced_leader: (None, hs.term),
            incarnation_term: hs.term,
            election_deadline: now,
            heartbeat_deadline: now,
            check_quorum_deadline: now,
            last_leader_contact: None,
            sticky_until,
            votes: Vec::new(),
            self_vote: None,
            peers: Vec::new(),
            transfer: None,
            hb_seq: 0,
            hb_sent: VecDeque::new(),
            lease_until: None,
            lease_blocked_until: Instant::ZERO,
            reads: Reads::default(),
            snapshot: None,
            incoming: None,
            pending_restore: None,
            out: Outbox::new(config.id),
            saved_hs: hs,
            need_broadcast: false,
            cfg: config,
        };
        raft.role = raft.follower_role();
        raft.reset_election_deadline(now);
        if let Some(s) = snapshot {
            raft.out.push(Output::Apply(Apply::Restore(Box::new(s.clone()))));
            raft.snapshot = Some(s);
        }
        raft.apply_ready();
        Ok(raft)
    }

    // ----- accessors -----

    /// The configuration this replica runs with.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The current term.
    #[must_use]
    pub fn term(&self) -> u64 {
        self.term
    }

    /// The role this replica plays.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether this replica is the leader.
    #[must_use]
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    /// The leader this replica knows of in the current term.
    #[must_use]
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// The highest index known committed.
    #[must_use]
    pub fn commit_index(&self) -> u64 {
        self.commit
    }

    /// The highest index handed to the service as [`Output::Apply`].
    #[must_use]
    pub fn applied_index(&self) -> u64 {
        self.applied
    }

    /// The first index held in memory (the snapshot index + 1).
    #[must_use]
    pub fn first_index(&self) -> u64 {
        self.log.first_index()
    }

    /// The last index of the log (the snapshot index if the log after it is empty).
    #[must_use]
    pub fn last_index(&self) -> u64 {
        self.log.last_index()
    }

    /// The last index the latest snapshot covers (0 without one).
    #[must_use]
    pub fn snapshot_index(&self) -> u64 {
        self.log.snapshot_index()
    }

    /// The entry at `index` in the in-memory log (after the snapshot).
    #[must_use]
    pub fn entry(&self, index: u64) -> Option<&Entry> {
        self.log.entry(index)
    }

    /// The term of the entry at `index`, including the snapshot's last index.
    #[must_use]
    pub fn term_at(&self, index: u64) -> Option<u64> {
        self.log.term_at(index)
    }

    /// The configuration in force (that of the latest membership entry in the log, even
    /// if uncommitted, as in Raft §6).
    #[must_use]
    pub fn membership(&self) -> &Membership {
        self.log.membership()
    }

    /// The current term, vote and commit index.
    #[must_use]
    pub fn hard_state(&self) -> HardState {
        HardState { term: self.term, vote: self.vote, commit: self.commit }
    }

    /// On the leader, how replication to `node` stands; `None` elsewhere or for non-members.
    #[must_use]
    pub fn progress(&self, node: NodeId) -> Option<PeerProgress> {
        if self.role != Role::Leader {
            return None;
        }
        self.peer(node).map(Progress::view)
    }

    /// On the leader: whether `node` (typically a learner about to be promoted) holds the
    /// log up to within one AppendEntries batch (`max_append_entries`) of the commit index.
    #[must_use]
    pub fn is_caught_up(&self, node: NodeId) -> bool {
        self.role == Role::Leader
            && self
                .peer(node)
                .is_some_and(|p| p.matched.saturating_add(self.cfg.max_append_entries as u64) >= self.commit)
    }

    /// The target of the leadership transfer in progress, if any.
    #[must_use]
    pub fn transferring_to(&self) -> Option<NodeId> {
        self.transfer.as_ref().map(|t| t.to)
    }

    // ----- helpers shared by the other modules -----

    pub(crate) fn peer(&self, id: NodeId) -> Option<&Progress> {
        self.peers.iter().find(|p| p.id == id)
    }

    pub(crate) fn peer_pos(&self, id: NodeId) -> Option<usize> {
        self.peers.iter().position(|p| p.id == id)
    }

    pub(crate) fn is_voter(&self) -> bool {
        self.log.membership().is_voter(self.cfg.id)
    }

    /// Whether the entry at the commit index belongs to this term (the leader committed
    /// its no-op, so its commit index is as high as any earlier leader's).
    pub(crate) fn committed_in_term(&self) -> bool {
        self.log.term_at(self.commit) == Some(self.term)
    }

    fn follower_role(&self) -> Role {
        if self.log.membership().is_learner(self.cfg.id) { Role::Learner } else { Role::Follower }
    }

    pub(crate) fn clock(&mut self, now: Instant) -> Instant {
        self.now = self.now.max(now);
        self.now
    }

    pub(crate) fn reset_election_deadline(&mut self, now: Instant) {
        self.election_deadline = now + self.cfg.election.random_timeout(&mut self.rng);
    }

    /// Whether this replica currently refuses to help depose its leader: CheckQuorum's
    /// leader stickiness (or a restarted lease-reading replica's grace period).
    pub(crate) fn in_lease(&self, now: Instant) -> bool {
        if now < self.sticky_until {
            return true;
        }
        if !self.cfg.election.check_quorum {
            return false;
        }
        if self.role == Role::Leader {
            return true;
        }
        self.leader.is_some() && self.last_leader_contact.is_some_and(|t| now < t + self.cfg.election.timeout_min)
    }

    // ----- output plumbing -----

    /// The batch being filled (it is emitted by `poll_output`).
    pub(crate) fn batch(&mut self) -> &mut Persist<Entry, HardState> {
        self.out.batch()
    }

    /// The hard state changed in a way messages depend on (term, vote): the batch being
    /// filled carries it, so messages sent durably after this wait for it.
    pub(crate) fn save_hard_state(&mut self) {
        let hs = self.hard_state();
        self.out.batch().hard_state = Some(hs);
        self.saved_hs = hs;
    }

    /// Emits the batch being filled, with the latest hard state (a commit index that
    /// moved rides along with writes, never costs a write of its own).
    fn seal(&mut self) {
        let hs = self.hard_state();
        if hs != self.saved_hs && !self.out.batch().is_empty() {
            self.out.batch().hard_state = Some(hs);
            self.saved_hs = hs;
        }
        self.out.flush_persist();
    }

    pub(crate) fn send(&mut self, to: NodeId, message: Message) {
        self.out.send(to, message);
    }

    /// Sends `message` once every write made so far is durable.
    pub(crate) fn send_durable(&mut self, to: NodeId, message: Message) {
        self.out.send_durable(to, message);
    }

    pub(crate) fn event(&mut self, event: Event) {
        self.out.push(Output::Event(event));
    }

    /// Appends one entry of this leader's term.
    pub(crate) fn append_local(&mut self, payload: EntryPayload) {
        let entry = Entry { index: self.log.last_index() + 1, term: self.term, payload };
        let is_config = self.log.append(entry.clone());
        self.out.push_entry(entry);
        let id = self.out.batch_id();
        self.log.record_write(id);
        if is_config {
            self.on_membership_changed();
        }
    }

    /// Appends entries received from the leader (following the current last index).
    pub(crate) fn append_from_leader(&mut self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        let id = self.out.batch_id();
        let mut config = false;
        let batch = self.out.entries_for(entries.len());
        for e in entries {
            config |= self.log.append(e.clone());
            batch.push(e);
        }
        self.log.record_write(id);
        if config {
            self.on_membership_changed();
        }
    }

    /// Removes the log suffix from `from` on (a follower overwritten by a new leader).
    pub(crate) fn truncate_log(&mut self, from: u64) {
        let (removed, config_changed) = self.log.truncate_from(from);
        let b = self.batch();
        b.entries.retain(|e| e.index < from);
        b.truncate_from = Some(b.truncate_from.map_or(from, |t| t.min(from)));
        self.fail_proposals(&removed);
        if config_changed {
            self.on_membership_changed();
        }
    }

    /// Reports this incarnation's proposals among `removed` (never applied here) as failed.
    pub(crate) fn fail_proposals(&mut self, removed: &[Entry]) {
        for e in removed {
            if let EntryPayload::Command { origin: Some((node, id)), .. } = e.payload
                && node == self.cfg.id
                && e.term > self.incarnation_term
                && e.index > self.applied
            {
                self.out.push(Output::ProposalFailed { id, error: ProposeError::LeadershipLost });
            }
        }
    }

    /// Hands committed, durable entries to the service, in order.
    pub(crate) fn apply_ready(&mut self) {
        if self.pending_restore.is_some() {
            return;
        }
        let upto = self.commit.min(self.log.stable());
        while self.applied < upto {
            let index = self.applied + 1;
            let Some(e) = self.log.entry(index) else { break };
            let item = match &e.payload {
                EntryPayload::Command { origin, data } => Apply::Command {
                    index,
                    command: data.clone(),
                    proposal: origin
                        .filter(|(node, _)| *node == self.cfg.id && e.term > self.incarnation_term)
                        .map(|(_, id)| id),
                },
                EntryPayload::Noop | EntryPayload::Membership(_) => Apply::Internal { index },
            };
            self.out.push(Output::Apply(item));
            self.applied = index;
        }
    }

    // ----- role transitions -----

    pub(crate) fn set_role(&mut self, role: Role) {
        if role != self.role {
            self.role = role;
            self.event(Event::RoleChanged(role));
        }
    }

    pub(crate) fn set_leader(&mut self, leader: Option<NodeId>) {
        if leader != self.leader {
            self.leader = leader;
            self.fail_forwarded_reads();
        }
        let (known, term) = self.announced_leader;
        if known != leader || (leader.is_some() && term != self.term) {
            self.announced_leader = (leader, self.term);
            self.event(Event::LeaderChanged { leader, term: self.term });
        }
    }

    /// Becomes a follower (or learner) in `term` (>= the current term), of `leader` if known.
    ///
    /// The election timer keeps running (Raft §5.2: it restarts only on hearing from the
    /// leader, granting a vote, or campaigning), so that candidates with stale logs cannot
    /// keep the up-to-date replicas from ever campaigning; a leader stepping down starts one.
    pub(crate) fn become_follower(&mut self, now: Instant, term: u64, leader: Option<NodeId>) {
        let was_leader = self.role == Role::Leader;
        if term > self.term {
            self.term = term;
            self.vote = None;
            self.save_hard_state();
        }
        self.votes.clear();
        self.self_vote = None;
        if was_leader {
            self.peers.clear();
            self.transfer = None;
            self.hb_sent.clear();
            self.lease_until = None;
            self.need_broadcast = false;
            self.fail_leader_reads();
        }
        let role = self.follower_role();
        self.set_role(role);
        self.set_leader(leader);
        if leader.is_some() {
            self.last_leader_contact = Some(now);
            self.reset_election_deadline(now);
        } else if was_leader {
            self.reset_election_deadline(now);
        }
    }

    /// A leader of the current term spoke: follow it. `false` if this replica is itself
    /// the leader of this term (which Raft rules out; the message is dropped).
    pub(crate) fn accept_leader(&mut self, now: Instant, from: NodeId) -> bool {
        match self.role {
            Role::Leader => return false,
            Role::Candidate | Role::PreCandidate => self.become_follower(now, self.term, Some(from)),
            Role::Follower | Role::Learner => self.set_leader(Some(from)),
        }
        self.last_leader_contact = Some(now);
        self.reset_election_deadline(now);
        true
    }

    // ----- inputs -----

    fn step(&mut self, now: Instant, from: NodeId, msg: Message) {
        if from == self.cfg.id {
            return;
        }
        let mterm = msg.term();
        if mterm > self.term {
            match &msg {
                Message::RequestVote { pre_vote, transfer, .. } => {
                    if !transfer && self.in_lease(now) {
                        return; // leader stickiness: do not help depose a live leader
                    }
                    if !pre_vote {
                        self.become_follower(now, mterm, None);
                    }
                }
                // A granted pre-vote echoes the term we would campaign in.
                Message::RequestVoteResponse { pre_vote: true, granted: true, .. } => {}
                Message::AppendEntries { .. } | Message::Heartbeat { .. } | Message::InstallSnapshot { .. } => {
                    self.become_follower(now, mterm, Some(from));
                }
                _ => self.become_follower(now, mterm, None),
            }
        } else if mterm < self.term {
            self.on_stale_message(from, &msg);
            return;
        }
        match msg {
            Message::RequestVote { term, pre_vote, last_log_index, last_log_term, .. } => {
                self.on_request_vote(now, from, term, pre_vote, last_log_index, last_log_term);
            }
            Message::RequestVoteResponse { term, pre_vote, granted } => {
                self.on_vote_response(now, from, term, pre_vote, granted);
            }
            Message::AppendEntries { prev_log_index, prev_log_term, entries, leader_commit, .. } => {
                self.on_append_entries(now, from, prev_log_index, prev_log_term, entries, leader_commit);
            }
            Message::AppendEntriesResponse { index, reject, .. } => {
                if self.role == Role::Leader {
                    self.on_append_response(now, from, index, reject);
                }
            }
            Message::Heartbeat { commit, seq, .. } => self.on_heartbeat(now, from, commit, seq),
            Message::HeartbeatResponse { seq, .. } => {
                if self.role == Role::Leader {
                    self.on_heartbeat_response(from, seq);
                }
            }
            Message::InstallSnapshot { meta, offset, total, data, .. } => {
                self.on_install_snapshot(now, from, meta, offset, total, data);
            }
            Message::InstallSnapshotResponse { index, received, done, .. } => {
                if self.role == Role::Leader {
                    self.on_snapshot_response(now, from, index, received, done);
                }
            }
            Message::TimeoutNow { .. } => {
                if self.role != Role::Leader {
                    self.campaign(now, true);
                }
            }
            Message::ReadIndex { request, .. } => self.on_read_index(now, from, request),
            Message::ReadIndexResponse { request, result, .. } => self.on_read_index_response(request, result),
        }
    }

    /// A message from an older term: tell the sender the current term where that helps it
    /// (a deposed leader steps down, a stale pre-candidate gives up); drop the rest.
    fn on_stale_message(&mut self, from: NodeId, msg: &Message) {
        let term = self.term;
        match msg {
            Message::AppendEntries { .. } | Message::Heartbeat { .. } | Message::InstallSnapshot { .. } => {
                self.send(from, Message::HeartbeatResponse { term, seq: 0 });
            }
            Message::RequestVote { pre_vote, .. } => {
                self.send(from, Message::RequestVoteResponse { term, pre_vote: *pre_vote, granted: false });
            }
            Message::ReadIndex { request, .. } => {
                let result = Err(ProposeError::NotLeader { leader: self.leader });
                self.send(from, Message::ReadIndexResponse { term, request: *request, result });
            }
            _ => {}
        }
    }

    fn on_tick(&mut self, now: Instant) {
        if self.role == Role::Leader {
            if now >= self.heartbeat_deadline {
                self.heartbeat_deadline = now + self.cfg.election.heartbeat_interval;
                self.on_heartbeat_tick(now);
            }
            if self.cfg.election.check_quorum && now >= self.check_quorum_deadline {
                self.check_quorum_deadline = now + self.cfg.election.timeout_min;
                if self.quorum_active() {
                    for p in &mut self.peers {
                        p.recent_active = false;
                    }
                } else {
                    self.become_follower(now, self.term, None);
                }
            }
            if self.transfer.as_ref().is_some_and(|t| now >= t.deadline) {
                self.abort_transfer(now);
            }
        } else if self.is_voter() && now >= self.election_deadline {
            self.campaign(now, false);
        }
        self.expire_reads(now);
    }

    /// CheckQuorum: whether a quorum (this leader included) was heard from this period.
    fn quorum_active(&self) -> bool {
        let id = self.cfg.id;
        self.log.membership().is_quorum(|n| n == id || self.peer(n).is_some_and(|p| p.recent_active))
    }

    fn propose_command(&mut self, id: ProposalId, command: Bytes) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader { leader: self.leader });
        }
        if self.transfer.is_some() {
            return Err(ProposeError::Unavailable(crate::reconfig::TRANSFERRING.into()));
        }
        if command.len() > self.cfg.max_command_size {
            return Err(ProposeError::TooLarge { size: command.len(), max: self.cfg.max_command_size });
        }
        if self.log.last_index().saturating_sub(self.commit) >= self.cfg.max_pending_proposals as u64 {
            return Err(ProposeError::Busy);
        }
        self.append_local(EntryPayload::Command { origin: Some((self.cfg.id, id)), data: command });
        self.need_broadcast = true;
        Ok(())
    }

    fn on_persisted(&mut self, now: Instant, id: PersistId) {
        // Releases the messages that waited for these writes.
        let Some(id) = self.out.persisted(id) else { return };
        self.log.acknowledge(id);
        if self.pending_restore.as_ref().is_some_and(|(pid, _)| *pid <= id)
            && let Some((_, snapshot)) = self.pending_restore.take()
        {
            self.applied = snapshot.meta.index;
            self.out.push(Output::Apply(Apply::Restore(Box::new(snapshot))));
        }
        match self.role {
            Role::Candidate => self.tally(now),
            Role::Leader => self.maybe_commit(now),
            _ => {}
        }
        self.apply_ready();
    }

    /// Runs deferred work before outputs are handed out: one replication pass per peer
    /// for everything proposed or acknowledged since the last poll (this is what batches
    /// many proposals into one AppendEntries), a heartbeat round for new reads, and
    /// sealing the open batch.
    fn flush(&mut self) {
        if self.role == Role::Leader {
            if self.need_broadcast {
                self.need_broadcast = false;
                for i in 0..self.peers.len() {
                    self.replicate_to(i);
                }
            }
            if self.reads.need_round {
                self.send_heartbeats();
            }
        }
        self.seal();
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if self.role == Role::Leader {
            consider(self.heartbeat_deadline);
            if self.cfg.election.check_quorum {
                consider(self.check_quorum_deadline);
            }
            if let Some(t) = &self.transfer {
                consider(t.deadline);
            }
        } else if self.is_voter() {
            consider(self.election_deadline);
        }
        if let Some(t) = self.reads_deadline() {
            consider(t);
        }
        next
    }
}

impl Protocol for Raft {
    type Message = Message;
    type Entry = Entry;
    type HardState = HardState;

    fn id(&self) -> NodeId {
        self.cfg.id
    }

    fn handle_message(&mut self, now: Instant, from: NodeId, message: Message) {
        let now = self.clock(now);
        self.step(now, from, message);
    }

    fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock(now);
        self.on_tick(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.next_deadline()
    }

    fn propose(&mut self, now: Instant, id: ProposalId, command: Bytes) -> Result<(), ProposeError> {
        self.clock(now);
        self.propose_command(id, command)
    }

    fn read(&mut self, now: Instant, id: ReadId) -> Result<(), ProposeError> {
        let now = self.clock(now);
        self.read_index(now, id)
    }

    fn persisted(&mut self, now: Instant, id: PersistId) {
        let now = self.clock(now);
        self.on_persisted(now, id);
    }

    /// Records a snapshot at `index` and drops the entries it covers. Ignored unless
    /// `snapshot_index < index <= applied_index`.
    fn compact(&mut self, now: Instant, index: u64, data: Bytes) {
        self.clock(now);
        self.compact_log(index, data);
    }

    fn poll_output(&mut self) -> Option<Out> {
        self.flush();
        self.out.pop()
    }

    fn status(&self) -> Status {
        Status {
            id: self.cfg.id,
            role: self.role,
            leader: self.leader,
            term: self.term,
            commit_index: self.commit,
            applied_index: self.applied,
            last_index: self.log.last_index(),
            snapshot_index: self.log.snapshot_index(),
            membership: self.log.membership().clone(),
        }
    }
}
