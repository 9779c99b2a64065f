//! An in-memory cluster harness for any `ballot_core::Protocol`: a network with
//! latency, drop and delay filters (like raft-rs's `harness/src/network.rs`), an
//! in-memory disk per node that survives crashes, and virtual time.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use ballot_core::{
    Apply, Event, Instant, LogStore, MemStore, NodeId, Output, Persist, ProposalId, ProposeError, Protocol, ReadId,
    Recovered, SeededRng,
};
use bytes::Bytes;

/// What a filter does with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Deliver after the normal latency.
    Deliver,
    /// Lose it.
    Drop,
    /// Deliver after this extra delay.
    Delay(Duration),
    /// Deliver twice: now and after this extra delay.
    Duplicate(Duration),
}

type Filter<M> = Box<dyn FnMut(NodeId, NodeId, &M) -> Fate>;
type Builder<P> =
    Box<dyn Fn(NodeId, Recovered<<P as Protocol>::Entry, <P as Protocol>::HardState>, SeededRng, Instant) -> P>;

/// One replica: the protocol (absent while crashed), its disk and what it produced.
pub struct Node<P: Protocol> {
    pub proto: Option<P>,
    pub store: MemStore<P::Entry, P::HardState>,
    pub applied: Vec<Apply>,
    pub failed: Vec<(ProposalId, ProposeError)>,
    pub reads: Vec<(ReadId, u64)>,
    pub read_failed: Vec<(ReadId, ProposeError)>,
    pub events: Vec<Event>,
    pub incarnations: u64,
    pub persists: u64,
    /// Batches handed out but not yet on disk (lost on a crash).
    pub unwritten: Vec<Persist<P::Entry, P::HardState>>,
}

impl<P: Protocol> Node<P> {
    pub fn p(&self) -> &P {
        self.proto.as_ref().expect("node is crashed")
    }

    /// The commands applied, in order, with their index.
    pub fn commands(&self) -> Vec<(u64, Bytes)> {
        self.applied
            .iter()
            .filter_map(|a| match a {
                Apply::Command { index, command, .. } => Some((*index, command.clone())),
                _ => None,
            })
            .collect()
    }
}

/// A cluster on a simulated network.
pub struct Cluster<P: Protocol> {
    pub now: Instant,
    pub nodes: BTreeMap<NodeId, Node<P>>,
    queue: BTreeMap<(Instant, u64), (NodeId, NodeId, P::Message)>,
    seq: u64,
    pub latency: Duration,
    filters: Vec<Filter<P::Message>>,
    build: Builder<P>,
    pub rng: SeededRng,
    pub delivered: u64,
    pub dropped: u64,
    /// When set, writes reach the disk (and are acknowledged, group-committed) only this
    /// long after they are handed out; a crash loses what is not on disk yet.
    pub disk_latency: Option<Duration>,
    disk: BTreeMap<(Instant, u64), NodeId>,
}

impl<P: Protocol> Cluster<P> {
    /// Builds nodes `ids` with `build(id, recovered, rng, now)`.
    pub fn new(
        ids: &[u64],
        seed: u64,
        build: impl Fn(NodeId, Recovered<P::Entry, P::HardState>, SeededRng, Instant) -> P + 'static,
    ) -> Self {
        let mut c = Cluster {
            now: Instant::ZERO,
            nodes: BTreeMap::new(),
            queue: BTreeMap::new(),
            seq: 0,
            latency: Duration::from_millis(1),
            filters: Vec::new(),
            build: Box::new(build),
            rng: SeededRng::new(seed),
            delivered: 0,
            dropped: 0,
            disk_latency: None,
            disk: BTreeMap::new(),
        };
        for &i in ids {
            let id = NodeId(i);
            let node = Node {
                proto: None,
                store: MemStore::new(),
                applied: Vec::new(),
                failed: Vec::new(),
                reads: Vec::new(),
                read_failed: Vec::new(),
                events: Vec::new(),
                incarnations: 0,
                persists: 0,
                unwritten: Vec::new(),
            };
            c.nodes.insert(id, node);
            c.start(id);
        }
        c
    }

    fn start(&mut self, id: NodeId) {
        let rng = self.rng.fork();
        let node = self.nodes.get_mut(&id).expect("unknown node");
        let recovered = node.store.recover().expect("memstore recovers");
        node.incarnations += 1;
        node.applied.clear();
        node.proto = Some((self.build)(id, recovered, rng, self.now));
        self.drain(id);
    }

    /// Adds a filter consulted for every message; the first non-`Deliver` fate wins.
    pub fn filter(&mut self, f: impl FnMut(NodeId, NodeId, &P::Message) -> Fate + 'static) {
        self.filters.push(Box::new(f));
    }

    pub fn clear_filters(&mut self) {
        self.filters.clear();
    }

    /// Cuts `id` off from everyone, both directions.
    pub fn isolate(&mut self, id: NodeId) {
        self.filter(move |from, to, _| if from == id || to == id { Fate::Drop } else { Fate::Deliver });
    }

    /// Loses each message with probability `p`.
    pub fn lossy(&mut self, p: f64, seed: u64) {
        let mut rng = SeededRng::new(seed);
        self.filter(move |_, _, _| if rng.gen_bool(p) { Fate::Drop } else { Fate::Deliver });
    }

    pub fn node(&self, id: u64) -> &Node<P> {
        &self.nodes[&NodeId(id)]
    }

    pub fn p(&self, id: u64) -> &P {
        self.nodes[&NodeId(id)].p()
    }

    /// Runs `f` on node `id`'s protocol, then drains its outputs.
    pub fn with<R>(&mut self, id: u64, f: impl FnOnce(&mut P, Instant) -> R) -> R {
        let now = self.now;
        let r = f(self.nodes.get_mut(&NodeId(id)).and_then(|n| n.proto.as_mut()).expect("live node"), now);
        self.drain(NodeId(id));
        r
    }

    pub fn propose(&mut self, id: u64, proposal: u64, data: impl Into<Bytes>) -> Result<(), ProposeError> {
        let data = data.into();
        self.with(id, |p, now| p.propose(now, ProposalId(proposal), data))
    }

    pub fn read(&mut self, id: u64, read: u64) -> Result<(), ProposeError> {
        self.with(id, |p, now| p.read(now, ReadId(read)))
    }

    pub fn crash(&mut self, id: u64) {
        if let Some(n) = self.nodes.get_mut(&NodeId(id)) {
            n.proto = None;
            n.unwritten.clear();
        }
        self.disk.retain(|_, n| n.0 != id);
        self.queue.retain(|_, (_, to, _)| to.0 != id);
    }

    pub fn restart(&mut self, id: u64) {
        self.start(NodeId(id));
    }

    /// Drains node `id`'s outputs: sends go through the filters onto the network,
    /// writes go to its disk and are acknowledged at once.
    pub fn drain(&mut self, id: NodeId) {
        loop {
            let Some(node) = self.nodes.get_mut(&id) else { return };
            let Some(p) = node.proto.as_mut() else { return };
            let Some(out) = p.poll_output() else { return };
            match out {
                Output::Send { to, message } => self.send(id, to, message),
                Output::Persist(batch) => {
                    node.persists += 1;
                    if let Some(d) = self.disk_latency {
                        if node.unwritten.is_empty() {
                            self.seq += 1;
                            self.disk.insert((self.now + d, self.seq), id);
                        }
                        node.unwritten.push(batch);
                    } else {
                        node.store.write(std::slice::from_ref(&batch)).expect("memstore writes");
                        p.persisted(self.now, batch.id);
                    }
                }
                Output::Apply(a) => node.applied.push(a),
                Output::ReadReady { id, index } => node.reads.push((id, index)),
                Output::ReadFailed { id, error } => node.read_failed.push((id, error)),
                Output::ProposalFailed { id, error } => node.failed.push((id, error)),
                Output::Event(e) => node.events.push(e),
            }
        }
    }

    fn send(&mut self, from: NodeId, to: NodeId, message: P::Message) {
        if !self.nodes.contains_key(&to) {
            return;
        }
        let mut fate = Fate::Deliver;
        for f in &mut self.filters {
            let x = f(from, to, &message);
            if x != Fate::Deliver {
                fate = x;
                break;
            }
        }
        let at = match fate {
            Fate::Drop => {
                self.dropped += 1;
                return;
            }
            Fate::Deliver => self.now + self.latency,
            Fate::Delay(d) => self.now + self.latency + d,
            Fate::Duplicate(d) => {
                self.seq += 1;
                self.queue.insert((self.now + self.latency + d, self.seq), (from, to, message.clone()));
                self.now + self.latency
            }
        };
        self.seq += 1;
        self.queue.insert((at, self.seq), (from, to, message));
    }

    /// Writes node `id`'s pending batches with one sync and acknowledges the last.
    fn sync_disk(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get_mut(&id) else { return };
        let batches = std::mem::take(&mut node.unwritten);
        let Some(last) = batches.last().map(|b| b.id) else { return };
        node.store.write(&batches).expect("memstore writes");
        if let Some(p) = node.proto.as_mut() {
            p.persisted(self.now, last);
        }
        self.drain(id);
    }

    /// Performs the next event (a delivery, a disk sync or a timer) and returns false if
    /// there is none before `limit`.
    pub fn step(&mut self, limit: Instant) -> bool {
        let next_msg = self.queue.first_key_value().map(|(k, _)| k.0);
        let next_disk = self.disk.first_key_value().map(|(k, &id)| (k.0, id));
        let next_timer = self
            .nodes
            .iter()
            .filter_map(|(&id, n)| n.proto.as_ref().and_then(|p| p.poll_timeout()).map(|t| (t, id)))
            .min();
        let t_msg = next_msg.unwrap_or(Instant::MAX);
        let t_disk = next_disk.map_or(Instant::MAX, |d| d.0);
        let t_timer = next_timer.map_or(Instant::MAX, |t| t.0);
        let t = t_msg.min(t_disk).min(t_timer);
        if t > limit || t == Instant::MAX {
            return false;
        }
        self.now = self.now.max(t);
        if t == t_disk
            && let Some((_, id)) = next_disk
        {
            self.disk.pop_first();
            self.sync_disk(id);
        } else if t == t_msg {
            let Some((_, (from, to, message))) = self.queue.pop_first() else { return false };
            if let Some(p) = self.nodes.get_mut(&to).and_then(|n| n.proto.as_mut()) {
                p.handle_message(self.now, from, message);
                self.delivered += 1;
                self.drain(to);
            }
        } else if let Some((_, id)) = next_timer
            && let Some(p) = self.nodes.get_mut(&id).and_then(|n| n.proto.as_mut())
        {
            p.handle_timeout(self.now);
            self.drain(id);
        }
        true
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let limit = self.now + d;
        while self.step(limit) {}
        self.now = self.now.max(limit);
    }

    /// Runs until `pred` holds (checked after each event) or `max` of virtual time
    /// passed; returns whether `pred` held.
    pub fn run_until(&mut self, max: Duration, mut pred: impl FnMut(&Self) -> bool) -> bool {
        let limit = self.now + max;
        loop {
            if pred(self) {
                return true;
            }
            if !self.step(limit) {
                self.now = self.now.max(limit);
                return pred(self);
            }
        }
    }

    pub fn live(&self) -> impl Iterator<Item = (&NodeId, &P)> {
        self.nodes.iter().filter_map(|(id, n)| n.proto.as_ref().map(|p| (id, p)))
    }
}
