//! The adapter for omnipaxos: an `OmniPaxos` over omnipaxos_storage's `MemoryStorage`
//! (wrapped to count writes), ticked on a virtual clock.

use std::cell::Cell;
use std::rc::Rc;

use ballot_core::Instant;
use bytes::Bytes;
use omnipaxos::ballot_leader_election::Ballot;
use omnipaxos::messages::Message;
use omnipaxos::storage::{Entry, NoSnapshot, StopSign, Storage, StorageOp, StorageResult};
use omnipaxos::util::LogEntry;
use omnipaxos::{ClusterConfig, OmniPaxosConfig, ServerConfig};
use omnipaxos_storage::memory_storage::MemoryStorage;

use crate::harness::{Io, Replica, System};
use crate::{Settings, Tuning};

/// A command as omnipaxos stores it: the client's bytes, shared without copying.
#[derive(Clone, Debug)]
pub struct Command(pub Bytes);

impl Entry for Command {
    type Snapshot = NoSnapshot;
}

/// `MemoryStorage` counting its mutating calls: omnipaxos has no group commit, so each
/// one is a separate write.
struct CountingStorage {
    inner: MemoryStorage<Command>,
    writes: Rc<Cell<u64>>,
}

impl CountingStorage {
    fn wrote(&self) {
        self.writes.set(self.writes.get() + 1);
    }
}

impl Storage<Command> for CountingStorage {
    fn write_atomically(&mut self, ops: Vec<StorageOp<Command>>) -> StorageResult<()> {
        self.wrote();
        self.inner.write_atomically(ops)
    }
    fn append_entry(&mut self, entry: Command) -> StorageResult<()> {
        self.wrote();
        self.inner.append_entry(entry)
    }
    fn append_entries(&mut self, entries: Vec<Command>) -> StorageResult<()> {
        self.wrote();
        self.inner.append_entries(entries)
    }
    fn append_on_prefix(&mut self, from_idx: usize, entries: Vec<Command>) -> StorageResult<()> {
        self.wrote();
        self.inner.append_on_prefix(from_idx, entries)
    }
    fn set_promise(&mut self, n_prom: Ballot) -> StorageResult<()> {
        self.wrote();
        self.inner.set_promise(n_prom)
    }
    fn set_decided_idx(&mut self, ld: usize) -> StorageResult<()> {
        self.wrote();
        self.inner.set_decided_idx(ld)
    }
    fn get_decided_idx(&self) -> StorageResult<usize> {
        self.inner.get_decided_idx()
    }
    fn set_accepted_round(&mut self, na: Ballot) -> StorageResult<()> {
        self.wrote();
        self.inner.set_accepted_round(na)
    }
    fn get_accepted_round(&self) -> StorageResult<Option<Ballot>> {
        self.inner.get_accepted_round()
    }
    fn get_entries(&self, from: usize, to: usize) -> StorageResult<Vec<Command>> {
        self.inner.get_entries(from, to)
    }
    fn get_log_len(&self) -> StorageResult<usize> {
        self.inner.get_log_len()
    }
    fn get_suffix(&self, from: usize) -> StorageResult<Vec<Command>> {
        self.inner.get_suffix(from)
    }
    fn get_promise(&self) -> StorageResult<Option<Ballot>> {
        self.inner.get_promise()
    }
    fn set_stopsign(&mut self, s: Option<StopSign>) -> StorageResult<()> {
        self.wrote();
        self.inner.set_stopsign(s)
    }
    fn get_stopsign(&self) -> StorageResult<Option<StopSign>> {
        self.inner.get_stopsign()
    }
    fn trim(&mut self, idx: usize) -> StorageResult<()> {
        self.wrote();
        self.inner.trim(idx)
    }
    fn set_compacted_idx(&mut self, idx: usize) -> StorageResult<()> {
        self.wrote();
        self.inner.set_compacted_idx(idx)
    }
    fn get_compacted_idx(&self) -> StorageResult<usize> {
        self.inner.get_compacted_idx()
    }
    fn set_snapshot(&mut self, snapshot: Option<NoSnapshot>) -> StorageResult<()> {
        self.wrote();
        self.inner.set_snapshot(snapshot)
    }
    fn get_snapshot(&self) -> StorageResult<Option<NoSnapshot>> {
        self.inner.get_snapshot()
    }
}

/// An omnipaxos replica.
pub struct OmniReplica {
    node: omnipaxos::OmniPaxos<Command, CountingStorage>,
    pid: u64,
    writes: Rc<Cell<u64>>,
    buffer: Vec<Message<Command>>,
    next_tick: Instant,
    /// Entries read from the decided log so far (omnipaxos's indexes count entries).
    applied: usize,
}

impl std::fmt::Debug for OmniReplica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OmniReplica").field("pid", &self.pid).field("applied", &self.applied).finish()
    }
}

impl Replica for OmniReplica {
    type Message = Message<Command>;

    fn handle(&mut self, _now: Instant, _from: u64, message: Message<Command>) {
        self.node.handle_incoming(message);
    }

    fn propose(&mut self, _now: Instant, command: Vec<u8>) -> bool {
        self.node.append(Command(Bytes::from(command))).is_ok()
    }

    fn tick(&mut self, now: Instant) {
        while self.next_tick <= now {
            self.node.tick();
            self.next_tick += Tuning::TICK;
        }
    }

    fn drain(&mut self, _now: Instant, io: &mut Io<'_, Message<Command>>) {
        for _ in 0..self.writes.replace(0) {
            io.wrote();
        }
        self.node.take_outgoing_messages(&mut self.buffer);
        for m in self.buffer.drain(..) {
            io.send(m.get_receiver(), m);
        }
        let decided = self.node.get_decided_idx();
        if decided > self.applied {
            for e in self.node.read_decided_suffix(self.applied).unwrap_or_default() {
                match e {
                    LogEntry::Decided(Command(data)) => io.apply(&data),
                    LogEntry::Undecided(_) => panic!("omnipaxos returned an undecided entry as decided"),
                    LogEntry::Trimmed(_) | LogEntry::Snapshotted(_) | LogEntry::StopSign(..) => {}
                }
            }
            self.applied = decided;
        }
    }

    fn is_leader(&self) -> bool {
        self.node.get_current_leader() == Some((self.pid, true))
    }

    fn applied_index(&self) -> u64 {
        self.applied as u64
    }

    fn compact(&mut self, _now: Instant, index: u64) {
        // The leader trims and tells the followers (a message each); others wait for it.
        if self.is_leader() {
            let _ = self.node.trim(Some(index as usize));
        }
    }
}

/// omnipaxos.
#[derive(Debug)]
pub struct OmniPaxos;

impl System for OmniPaxos {
    const NAME: &'static str = "omnipaxos";
    type Replica = OmniReplica;

    fn cluster(settings: &Settings) -> Vec<OmniReplica> {
        let nodes: Vec<u64> = (1..=settings.nodes as u64).collect();
        let ticks = |d: std::time::Duration| (d.as_nanos() / Tuning::TICK.as_nanos()) as u64;
        nodes
            .iter()
            .map(|&pid| {
                let writes = Rc::new(Cell::new(0));
                let config = OmniPaxosConfig {
                    cluster_config: ClusterConfig { configuration_id: 1, nodes: nodes.clone(), flexible_quorum: None },
                    server_config: ServerConfig {
                        pid,
                        // Its leader election exchanges heartbeats once per election
                        // timeout: make that the heartbeat period of the others.
                        election_tick_timeout: ticks(Tuning::HEARTBEAT),
                        resend_message_tick_timeout: ticks(Tuning::ELECTION_TIMEOUT),
                        // No storage-level batching: entries are written (and sent) when
                        // appended; messages still coalesce until they are taken.
                        batch_size: 1,
                        ..ServerConfig::default()
                    },
                };
                let storage = CountingStorage { inner: MemoryStorage::default(), writes: Rc::clone(&writes) };
                let node = config.build(storage).expect("valid omnipaxos config");
                OmniReplica {
                    node,
                    pid,
                    writes,
                    buffer: Vec::new(),
                    next_tick: Instant::ZERO + Tuning::TICK,
                    applied: 0,
                }
            })
            .collect()
    }
}
