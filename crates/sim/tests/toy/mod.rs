//! A tiny test-only protocol for exercising the simulator's generic machinery: a
//! replicated log with a fixed leader (`n1`), durable-before-ack replication and
//! retransmission, plus switchable bugs that the checkers must catch.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use ballot_core::{
    Apply, Instant, LogEntry, Membership, NodeId, Output, Persist, PersistId, ProposalId, ProposeError, Protocol,
    ReadId, Recovered, Role, SeededRng, Status,
};
use ballot_sim::{Algorithm, NodeInfo};
use bytes::Bytes;
use serde::{Deserialize, Serialize, Serializer};

/// Deliberate defects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// A correct protocol.
    None,
    /// Followers answer reads from their own (possibly stale) state.
    StaleFollowerReads,
    /// The leader ignores its recovered log after a restart and reuses indexes.
    ForgetLogOnRestart,
    /// The leader accepts proposals and silently forgets them.
    ForgetProposals,
    /// The leader sends a message that cannot be serialized.
    Unserializable,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToyEntry {
    pub index: u64,
    pub data: Bytes,
    pub origin: Option<(NodeId, ProposalId)>,
}

impl LogEntry for ToyEntry {
    fn index(&self) -> u64 {
        self.index
    }
}

/// A field whose serialization always fails.
#[derive(Clone, Debug, Deserialize)]
pub struct Poison;

impl Serialize for Poison {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("poison cannot be serialized"))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ToyMessage {
    Append { entries: Vec<ToyEntry>, commit: u64 },
    Ack { durable: u64 },
    Poisoned(Poison),
}

const LEADER: NodeId = NodeId(1);
const HEARTBEAT: Duration = Duration::from_millis(20);
const MAX_BATCH: usize = 64;

pub struct Toy {
    id: NodeId,
    peers: Vec<NodeId>,
    bug: Bug,
    log: Vec<ToyEntry>,
    durable: u64,
    commit: u64,
    applied: u64,
    /// Until the leader has re-committed what it recovered, its commit index may be
    /// behind what it acknowledged before the crash: it serves no reads.
    recovered_last: u64,
    matched: BTreeMap<NodeId, u64>,
    out: VecDeque<Output<ToyMessage, ToyEntry, ()>>,
    next_persist: u64,
    in_flight: VecDeque<(PersistId, u64)>,
    ack_pending: bool,
    waiting_reads: Vec<ReadId>,
    next_heartbeat: Instant,
}

impl Toy {
    pub fn new(id: NodeId, members: &Membership, recovered: Recovered<ToyEntry, ()>, bug: Bug, now: Instant) -> Self {
        let log = if bug == Bug::ForgetLogOnRestart && id == LEADER { Vec::new() } else { recovered.entries };
        let last = log.len() as u64;
        Toy {
            id,
            peers: members.voters.iter().copied().filter(|&p| p != id).collect(),
            bug,
            log,
            durable: last,
            commit: 0,
            applied: 0,
            recovered_last: last,
            matched: BTreeMap::new(),
            out: VecDeque::new(),
            next_persist: 1,
            in_flight: VecDeque::new(),
            ack_pending: false,
            waiting_reads: Vec::new(),
            next_heartbeat: now,
        }
    }

    fn is_leader(&self) -> bool {
        self.id == LEADER
    }

    fn persist(&mut self, entries: Vec<ToyEntry>) {
        let id = PersistId(self.next_persist);
        self.next_persist += 1;
        let last = entries.last().map_or(self.durable, |e| e.index);
        self.in_flight.push_back((id, last));
        let mut p = Persist::new(id);
        p.entries = entries;
        self.out.push_back(Output::Persist(p));
    }

    fn broadcast(&mut self) {
        for &p in &self.peers {
            let from = self.matched.get(&p).copied().unwrap_or(0);
            // Only durable entries leave the leader: a follower never holds an entry the
            // leader could lose in a crash.
            let count = usize::try_from(self.durable.saturating_sub(from)).unwrap_or(0).min(MAX_BATCH);
            let entries: Vec<ToyEntry> =
                self.log.iter().skip(usize::try_from(from).unwrap_or(0)).take(count).cloned().collect();
            self.out.push_back(Output::Send { to: p, message: ToyMessage::Append { entries, commit: self.commit } });
        }
    }

    fn advance_commit(&mut self) {
        let own = self.durable;
        let members = Membership::new(self.peers.iter().copied().chain([self.id]));
        let c = members.quorum_min(|n| if n == self.id { own } else { self.matched.get(&n).copied().unwrap_or(0) });
        if c > self.commit {
            self.commit = c;
        }
        self.apply();
    }

    fn apply(&mut self) {
        let upto = self.commit.min(self.log.len() as u64);
        while self.applied < upto {
            self.applied += 1;
            let e = &self.log[usize::try_from(self.applied - 1).unwrap_or(0)];
            let proposal = e.origin.filter(|(n, _)| *n == self.id).map(|(_, p)| p);
            self.out.push_back(Output::Apply(Apply::Command { index: e.index, command: e.data.clone(), proposal }));
        }
        if self.commit >= self.recovered_last {
            for id in std::mem::take(&mut self.waiting_reads) {
                self.out.push_back(Output::ReadReady { id, index: self.commit });
            }
        }
    }
}

impl Protocol for Toy {
    type Message = ToyMessage;
    type Entry = ToyEntry;
    type HardState = ();

    fn id(&self) -> NodeId {
        self.id
    }

    fn handle_message(&mut self, _now: Instant, from: NodeId, message: ToyMessage) {
        match message {
            ToyMessage::Append { entries, commit } if !self.is_leader() => {
                let mut new = Vec::new();
                for e in entries {
                    if e.index == self.log.len() as u64 + 1 {
                        self.log.push(e.clone());
                        new.push(e);
                    }
                }
                if new.is_empty() {
                    self.out.push_back(Output::Send { to: from, message: ToyMessage::Ack { durable: self.durable } });
                } else {
                    self.persist(new);
                    self.ack_pending = true;
                }
                self.commit = self.commit.max(commit);
                self.apply();
            }
            ToyMessage::Ack { durable } if self.is_leader() => {
                let m = self.matched.entry(from).or_default();
                *m = (*m).max(durable);
                self.advance_commit();
            }
            _ => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.is_leader() && now >= self.next_heartbeat {
            self.next_heartbeat = now + HEARTBEAT;
            self.broadcast();
            if self.bug == Bug::Unserializable {
                self.out.push_back(Output::Send { to: self.peers[0], message: ToyMessage::Poisoned(Poison) });
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.is_leader().then_some(self.next_heartbeat)
    }

    fn propose(&mut self, _now: Instant, id: ProposalId, command: Bytes) -> Result<(), ProposeError> {
        if !self.is_leader() {
            return Err(ProposeError::NotLeader { leader: Some(LEADER) });
        }
        if self.bug == Bug::ForgetProposals {
            return Ok(());
        }
        let e = ToyEntry { index: self.log.len() as u64 + 1, data: command, origin: Some((self.id, id)) };
        self.log.push(e.clone());
        self.persist(vec![e]);
        Ok(())
    }

    fn read(&mut self, _now: Instant, id: ReadId) -> Result<(), ProposeError> {
        if !self.is_leader() {
            if self.bug == Bug::StaleFollowerReads {
                self.out.push_back(Output::ReadReady { id, index: self.applied });
                return Ok(());
            }
            return Err(ProposeError::NotLeader { leader: Some(LEADER) });
        }
        self.waiting_reads.push(id);
        self.apply();
        Ok(())
    }

    fn persisted(&mut self, _now: Instant, id: PersistId) {
        while let Some(&(p, last)) = self.in_flight.front() {
            if p > id {
                break;
            }
            self.in_flight.pop_front();
            self.durable = self.durable.max(last);
        }
        if self.is_leader() {
            self.broadcast();
            self.advance_commit();
        } else if self.ack_pending {
            self.ack_pending = false;
            self.out.push_back(Output::Send { to: LEADER, message: ToyMessage::Ack { durable: self.durable } });
        }
    }

    fn compact(&mut self, _now: Instant, _index: u64, _data: Bytes) {}

    fn poll_output(&mut self) -> Option<Output<ToyMessage, ToyEntry, ()>> {
        self.out.pop_front()
    }

    fn status(&self) -> Status {
        Status {
            id: self.id,
            role: if self.is_leader() { Role::Leader } else { Role::Follower },
            leader: Some(LEADER),
            term: 1,
            commit_index: self.commit,
            applied_index: self.applied,
            last_index: self.log.len() as u64,
            snapshot_index: 0,
            membership: Membership::new(self.peers.iter().copied().chain([self.id])),
        }
    }
}

/// The toy as a simulator algorithm.
pub struct ToyAlgorithm(pub Bug);

impl Algorithm for ToyAlgorithm {
    type Protocol = Toy;
    type BuildError = std::convert::Infallible;

    fn name(&self) -> &'static str {
        "toy"
    }

    /// The fixed leader cannot be replaced: no disk of it may rot away for good.
    fn shape_run(&self, config: &mut ballot_sim::SimConfig) {
        config.faults.actions.retain(|(_, f)| !matches!(f, ballot_sim::Fault::CorruptDisk(_)));
    }

    fn build(
        &self,
        id: NodeId,
        initial: &Membership,
        recovered: Recovered<ToyEntry, ()>,
        _rng: SeededRng,
        now: Instant,
    ) -> Result<Toy, std::convert::Infallible> {
        Ok(Toy::new(id, initial, recovered, self.0, now))
    }

    fn info(&self, replica: &Toy) -> NodeInfo {
        NodeInfo {
            role: if replica.is_leader() { Role::Leader } else { Role::Follower },
            term: 1,
            leader: Some(LEADER),
            commit_index: replica.commit,
            voter: true,
        }
    }
}
