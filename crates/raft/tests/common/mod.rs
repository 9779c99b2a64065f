//! A deterministic in-memory test network for ballot-raft, in the manner of raft-rs's
//! harness: nodes with in-memory stores, a message queue with per-link cuts and a drop
//! filter, manual or automatic persistence, crash and restart, and virtual time.
#![allow(dead_code, clippy::missing_panics_doc)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use ballot_core::{
    Apply, Event, Instant, LogStore, MemStore, Membership, NodeId, Output, Persist, ProposalId, ProposeError, Protocol,
    ReadId, Recovered, Role, SeededRng,
};
use ballot_raft::{Config, Entry, HardState, Message, Raft};
use bytes::Bytes;

pub type Out = Output<Message, Entry, HardState>;

pub fn n(id: u64) -> NodeId {
    NodeId(id)
}

pub fn members(ids: &[u64]) -> Membership {
    Membership::new(ids.iter().map(|&i| NodeId(i)))
}

pub fn ms(millis: u64) -> Instant {
    Instant::from_millis(millis)
}

/// Drains every output of `r`.
pub fn drain(r: &mut Raft) -> Vec<Out> {
    std::iter::from_fn(|| r.poll_output()).collect()
}

/// A fresh replica `id` of a new cluster of `ids`, at time 0, with the default config.
pub fn fresh(id: u64, ids: &[u64]) -> Raft {
    Raft::new(Config::new(n(id)), members(ids), Recovered::default(), SeededRng::new(id), ms(0)).expect("valid")
}

/// The sends among `outs`.
pub fn sends(outs: &[Out]) -> Vec<(NodeId, Message)> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send { to, message } => Some((*to, message.clone())),
            _ => None,
        })
        .collect()
}

/// The persist batches among `outs`.
pub fn persists(outs: &[Out]) -> Vec<Persist<Entry, HardState>> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Persist(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

pub struct Node {
    pub raft: Raft,
    pub store: MemStore<Entry, HardState>,
    pub config: Config,
    pub initial: Membership,
    /// Acknowledge every batch as soon as it is polled.
    pub auto_persist: bool,
    /// Batches polled but not yet written (when `auto_persist` is off).
    pub unpersisted: Vec<Persist<Entry, HardState>>,
    pub applied: Vec<Apply>,
    pub events: Vec<Event>,
    pub reads: Vec<(ReadId, u64)>,
    pub read_failures: Vec<(ReadId, ProposeError)>,
    pub proposal_failures: Vec<(ProposalId, ProposeError)>,
    pub up: bool,
    pub restarts: u64,
}

impl Node {
    /// The commands applied, in order.
    pub fn commands(&self) -> Vec<Bytes> {
        self.applied
            .iter()
            .filter_map(|a| match a {
                Apply::Command { command, .. } => Some(command.clone()),
                _ => None,
            })
            .collect()
    }

    /// The proposals answered by an `Apply::Command` on this node.
    pub fn answered(&self) -> Vec<ProposalId> {
        self.applied
            .iter()
            .filter_map(|a| match a {
                Apply::Command { proposal, .. } => *proposal,
                _ => None,
            })
            .collect()
    }

    pub fn last_applied(&self) -> u64 {
        self.applied.last().map_or(0, Apply::index)
    }
}

type Filter = Box<dyn FnMut(NodeId, NodeId, &Message) -> bool>;

pub struct Cluster {
    pub nodes: BTreeMap<NodeId, Node>,
    pub now: Instant,
    pub queue: VecDeque<(NodeId, NodeId, Message)>,
    /// Directed links that drop everything: (from, to).
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// Messages for which this returns `false` are dropped.
    pub filter: Option<Filter>,
    /// Every message handed to a node, for assertions.
    pub trace: Vec<(NodeId, NodeId, Message)>,
    pub record_trace: bool,
    /// When set, messages are delivered in random order, and some are duplicated.
    pub chaos: Option<SeededRng>,
    /// With `chaos`: the probability that a message is held back, and for at most how long.
    pub delay: Option<(f64, Duration)>,
    /// Messages held back, with the time they are released.
    pub delayed: Vec<(Instant, NodeId, NodeId, Message)>,
    next_proposal: u64,
    next_read: u64,
}

impl Cluster {
    /// A new cluster of `ids` with the default config.
    pub fn new(ids: &[u64]) -> Self {
        Self::with_config(ids, |id| Config::new(n(id)))
    }

    /// A new cluster of `ids` with `config(id)` for each node.
    pub fn with_config(ids: &[u64], config: impl Fn(u64) -> Config) -> Self {
        let mut c = Cluster {
            nodes: BTreeMap::new(),
            now: ms(0),
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            filter: None,
            trace: Vec::new(),
            record_trace: false,
            chaos: None,
            delay: None,
            delayed: Vec::new(),
            next_proposal: 0,
            next_read: 0,
        };
        for &id in ids {
            c.add_node(config(id), members(ids));
        }
        c
    }

    /// Starts a node with an empty store.
    pub fn add_node(&mut self, config: Config, initial: Membership) {
        let id = config.id;
        let store = MemStore::new();
        let raft = Raft::new(config.clone(), initial.clone(), Recovered::default(), SeededRng::new(id.get()), self.now)
            .expect("valid config");
        let node = Node {
            raft,
            store,
            config,
            initial,
            auto_persist: true,
            unpersisted: Vec::new(),
            applied: Vec::new(),
            events: Vec::new(),
            reads: Vec::new(),
            read_failures: Vec::new(),
            proposal_failures: Vec::new(),
            up: true,
            restarts: 0,
        };
        self.nodes.insert(id, node);
        self.drain(id);
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[&n(id)]
    }

    pub fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes.get_mut(&n(id)).expect("node exists")
    }

    pub fn raft(&self, id: u64) -> &Raft {
        &self.node(id).raft
    }

    pub fn raft_mut(&mut self, id: u64) -> &mut Raft {
        &mut self.node_mut(id).raft
    }

    /// Polls node `id` dry, routing its outputs.
    pub fn drain(&mut self, id: NodeId) {
        let now = self.now;
        let Some(node) = self.nodes.get_mut(&id) else { return };
        if !node.up {
            return;
        }
        while let Some(out) = node.raft.poll_output() {
            match out {
                Output::Send { to, message } => self.queue.push_back((id, to, message)),
                Output::Persist(batch) => {
                    if node.auto_persist {
                        node.store.write(std::slice::from_ref(&batch)).expect("mem store");
                        node.raft.persisted(now, batch.id);
                    } else {
                        node.unpersisted.push(batch);
                    }
                }
                Output::Apply(a) => {
                    if let Some(last) = node.applied.last()
                        && !matches!(a, Apply::Restore(_))
                    {
                        assert_eq!(a.index(), last.index() + 1, "{id} applied out of order");
                    }
                    node.applied.push(a);
                }
                Output::ReadReady { id, index } => node.reads.push((id, index)),
                Output::ReadFailed { id, error } => node.read_failures.push((id, error)),
                Output::ProposalFailed { id, error } => node.proposal_failures.push((id, error)),
                Output::Event(e) => node.events.push(e),
            }
        }
    }

    pub fn drain_all(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.drain(id);
        }
    }

    /// Writes node `id`'s pending batches and acknowledges them.
    pub fn persist(&mut self, id: u64) {
        let now = self.now;
        let node = self.node_mut(id);
        let batches = std::mem::take(&mut node.unpersisted);
        if let Some(last) = batches.last().map(|b| b.id) {
            node.store.write(&batches).expect("mem store");
            node.raft.persisted(now, last);
        }
        self.drain(n(id));
    }

    fn allowed(&mut self, from: NodeId, to: NodeId, m: &Message) -> bool {
        if self.cut.contains(&(from, to)) {
            return false;
        }
        match &mut self.filter {
            Some(f) => f(from, to, m),
            None => true,
        }
    }

    /// Delivers queued messages (and those they cause) until the network is quiet.
    pub fn deliver(&mut self) {
        self.drain_all();
        let mut budget = 2_000_000u64;
        while let Some((from, to, m)) = self.pop_message() {
            budget -= 1;
            assert!(budget > 0, "message storm: the network never quiesces");
            if !self.allowed(from, to, &m) {
                continue;
            }
            let now = self.now;
            let Some(node) = self.nodes.get_mut(&to) else { continue };
            if !node.up {
                continue;
            }
            if self.record_trace {
                self.trace.push((from, to, m.clone()));
            }
            node.raft.handle_message(now, from, m);
            self.drain(to);
        }
    }

    fn pop_message(&mut self) -> Option<(NodeId, NodeId, Message)> {
        let Some(rng) = self.chaos.as_mut() else { return self.queue.pop_front() };
        if self.queue.is_empty() {
            return None;
        }
        loop {
            let i = rng.gen_range(0..self.queue.len() as u64) as usize;
            let m = self.queue.swap_remove_back(i)?;
            if rng.gen_bool(0.02) {
                self.queue.push_back(m.clone());
            }
            if let Some((p, max)) = self.delay
                && rng.gen_bool(p)
            {
                let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
                let release = self.now + Duration::from_nanos(rng.gen_range(1..nanos.max(2)));
                self.delayed.push((release, m.0, m.1, m.2));
                if self.queue.is_empty() {
                    return None;
                }
                continue;
            }
            return Some(m);
        }
    }

    /// Moves delayed messages whose time has come back into the queue.
    fn release_delayed(&mut self) {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.delayed).into_iter().partition(|d| d.0 <= now);
        self.delayed = later;
        self.queue.extend(due.into_iter().map(|(_, f, t, m)| (f, t, m)));
    }

    /// Delivers only the messages currently queued (not those they cause).
    pub fn deliver_one_round(&mut self) {
        self.drain_all();
        let batch: Vec<_> = self.queue.drain(..).collect();
        for (from, to, m) in batch {
            if !self.allowed(from, to, &m) {
                continue;
            }
            let now = self.now;
            let Some(node) = self.nodes.get_mut(&to) else { continue };
            if node.up {
                node.raft.handle_message(now, from, m);
                self.drain(to);
            }
        }
    }

    /// Advances virtual time by `d`, firing timers in order and delivering messages
    /// instantly after each.
    pub fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        self.deliver();
        loop {
            let timers = self.nodes.values().filter(|n| n.up).filter_map(|n| n.raft.poll_timeout()).min();
            let release = self.delayed.iter().map(|d| d.0).min();
            let next = match (timers, release) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match next {
                Some(t) if t <= target => {
                    self.now = self.now.max(t);
                    self.release_delayed();
                    let now = self.now;
                    let due: Vec<NodeId> = self
                        .nodes
                        .iter()
                        .filter(|(_, n)| n.up && n.raft.poll_timeout().is_some_and(|t| t <= now))
                        .map(|(&id, _)| id)
                        .collect();
                    for id in due {
                        if let Some(node) = self.nodes.get_mut(&id) {
                            node.raft.handle_timeout(now);
                        }
                        self.drain(id);
                    }
                    self.deliver();
                }
                _ => break,
            }
        }
        self.now = target;
    }

    /// Fires node `id`'s election timer now (it campaigns), then delivers.
    pub fn campaign(&mut self, id: u64) {
        let deadline = self.raft(id).poll_timeout().expect("a voter has an election timer");
        self.now = self.now.max(deadline);
        let now = self.now;
        self.raft_mut(id).handle_timeout(now);
        self.deliver();
    }

    /// Makes `id` the leader by letting it campaign; asserts it won.
    pub fn elect(&mut self, id: u64) {
        self.campaign(id);
        assert_eq!(self.raft(id).role(), Role::Leader, "n{id} should have won the election");
    }

    /// The leader with the highest term among live nodes.
    pub fn leader(&self) -> Option<u64> {
        self.nodes
            .values()
            .filter(|n| n.up && n.raft.role() == Role::Leader)
            .max_by_key(|n| n.raft.term())
            .map(|n| n.config.id.get())
    }

    /// Proposes `data` on `id`, then delivers; returns the proposal id.
    pub fn propose(&mut self, id: u64, data: &str) -> Result<ProposalId, ProposeError> {
        let pid = self.propose_no_deliver(id, data)?;
        self.deliver();
        Ok(pid)
    }

    pub fn propose_no_deliver(&mut self, id: u64, data: &str) -> Result<ProposalId, ProposeError> {
        self.next_proposal += 1;
        let pid = ProposalId(self.next_proposal);
        let now = self.now;
        self.raft_mut(id).propose(now, pid, Bytes::copy_from_slice(data.as_bytes()))?;
        self.drain(n(id));
        Ok(pid)
    }

    /// Asks `id` for a read barrier; returns the read id.
    pub fn read(&mut self, id: u64) -> Result<ReadId, ProposeError> {
        self.next_read += 1;
        let rid = ReadId(self.next_read);
        let now = self.now;
        self.raft_mut(id).read(now, rid)?;
        self.drain(n(id));
        Ok(rid)
    }

    /// Cuts every link to and from `id`.
    pub fn isolate(&mut self, id: u64) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for other in ids {
            if other != n(id) {
                self.cut.insert((n(id), other));
                self.cut.insert((other, n(id)));
            }
        }
    }

    /// Splits the cluster into groups that cannot talk to each other.
    pub fn partition(&mut self, groups: &[&[u64]]) {
        for (i, a) in groups.iter().enumerate() {
            for b in &groups[i + 1..] {
                for &x in *a {
                    for &y in *b {
                        self.cut.insert((n(x), n(y)));
                        self.cut.insert((n(y), n(x)));
                    }
                }
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Stops `id`: its unwritten batches and queued messages are lost.
    pub fn crash(&mut self, id: u64) {
        let node = self.node_mut(id);
        node.up = false;
        node.unpersisted.clear();
        self.queue.retain(|(from, to, _)| *from != n(id) && *to != n(id));
    }

    /// Restarts `id` from what its store holds.
    pub fn restart(&mut self, id: u64) {
        let now = self.now;
        let node = self.node_mut(id);
        node.restarts += 1;
        let recovered = node.store.recover().expect("mem store");
        let seed = node.config.id.get() * 1000 + node.restarts;
        node.raft = Raft::new(node.config.clone(), node.initial.clone(), recovered, SeededRng::new(seed), now)
            .expect("recovery");
        node.up = true;
        node.applied.clear();
        node.unpersisted.clear();
        self.drain(n(id));
    }

    /// Asserts the core safety properties across live and crashed nodes: the committed
    /// prefixes agree (state machine safety), and logs that share an (index, term) agree
    /// on everything before it (log matching).
    pub fn check_safety(&self) {
        let nodes: Vec<&Node> = self.nodes.values().collect();
        for a in &nodes {
            for b in &nodes {
                let (ra, rb) = (&a.raft, &b.raft);
                let upto = ra.commit_index().min(rb.commit_index());
                let from = ra.first_index().max(rb.first_index());
                for i in from..=upto {
                    if let (Some(x), Some(y)) = (ra.entry(i), rb.entry(i)) {
                        assert_eq!(x, y, "committed entry {i} differs between {} and {}", a.config.id, b.config.id);
                    }
                }
            }
        }
        // The applied command sequences are prefixes of one another.
        for a in &nodes {
            for b in &nodes {
                let (ca, cb) = (indexed_commands(a), indexed_commands(b));
                for (i, cmd) in &ca {
                    if let Some(other) = cb.get(i) {
                        assert_eq!(cmd, other, "applied command at {i} differs");
                    }
                }
            }
        }
    }
}

fn indexed_commands(n: &Node) -> BTreeMap<u64, Bytes> {
    n.applied
        .iter()
        .filter_map(|a| match a {
            Apply::Command { index, command, .. } => Some((*index, command.clone())),
            _ => None,
        })
        .collect()
}

impl Cluster {
    /// Replaces node `id`'s durable state with `entries` (terms, from index 1) and hard
    /// state `(term, vote)`, and restarts it from that.
    pub fn load(&mut self, id: u64, terms: &[u64], term: u64, vote: Option<u64>) {
        let entries: Vec<Entry> = terms
            .iter()
            .enumerate()
            .map(|(k, &t)| Entry {
                index: k as u64 + 1,
                term: t,
                payload: ballot_raft::EntryPayload::Command {
                    origin: None,
                    data: Bytes::from(format!("e{}t{t}", k + 1)),
                },
            })
            .collect();
        let node = self.node_mut(id);
        node.store = MemStore::new();
        let mut batch = Persist::new(ballot_core::PersistId(1));
        batch.entries = entries;
        batch.hard_state = Some(HardState { term, vote: vote.map(NodeId), commit: 0 });
        node.store.write(&[batch]).expect("mem store");
        self.restart(id);
    }

    /// Counts the traced messages matching `pred`.
    pub fn count(&self, pred: impl Fn(NodeId, NodeId, &Message) -> bool) -> usize {
        self.trace.iter().filter(|(f, t, m)| pred(*f, *t, m)).count()
    }
}

/// A replica built from recovered state.
pub fn recovered(
    config: Config,
    ids: &[u64],
    entries: Vec<Entry>,
    hard_state: HardState,
) -> Result<Raft, ballot_raft::RaftError> {
    let rec = Recovered { hard_state: Some(hard_state), snapshot: None, entries };
    Raft::new(config, members(ids), rec, SeededRng::new(7), ms(0))
}

/// A command entry.
pub fn cmd(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        payload: ballot_raft::EntryPayload::Command { origin: None, data: Bytes::from(format!("e{index}t{term}")) },
    }
}
