//! One adapter for every `ballot_core::Protocol`: ballot-raft, ballot-paxos and
//! ballot-pbft.

use std::collections::{BTreeMap, VecDeque};

use ballot_core::{
    Apply, ElectionConfig, Event, Instant, LogEntry, LogStore, MemStore, Membership, NodeId, Output, Persist,
    ProposalId, Protocol, Recovered, Role, SeededRng, Snapshot,
};
use bytes::Bytes;

use crate::harness::{Io, Replica, System};
use crate::{BallotStore, Durability, Settings, Tuning};

/// An in-memory log store as lean as raft-rs's `MemStorage` and omnipaxos's
/// `MemoryStorage`: entries in a ring buffer by index, taken by value from the batch
/// instead of cloned. Insert-or-overwrite; an entry beyond the end (a hole before it, as
/// Paxos may leave) waits in a side map until the ring reaches it, so the ring holds bare
/// entries, not `Option`s.
#[derive(Debug)]
pub struct VecLog<E, H> {
    /// Index of `entries[0]`.
    first: u64,
    entries: VecDeque<E>,
    /// Entries at indexes past the ring's end (after a hole).
    beyond: BTreeMap<u64, E>,
    hard_state: Option<H>,
    snapshot: Option<Snapshot>,
}

impl<E: LogEntry, H> Default for VecLog<E, H> {
    fn default() -> Self {
        VecLog { first: 1, entries: VecDeque::new(), beyond: BTreeMap::new(), hard_state: None, snapshot: None }
    }
}

impl<E: LogEntry, H> VecLog<E, H> {
    /// Applies `batch` (snapshot, truncation, entries, compaction, hard state, in that order).
    pub fn write(&mut self, batch: Persist<E, H>) {
        if let Some(s) = batch.snapshot {
            self.snapshot = Some(*s);
        }
        if let Some(from) = batch.truncate_from {
            let keep = from.saturating_sub(self.first);
            self.entries.truncate(usize::try_from(keep).unwrap_or(usize::MAX));
            self.beyond.split_off(&from);
        }
        let next = self.first + self.entries.len() as u64;
        if self.beyond.is_empty() && (next..).zip(&batch.entries).all(|(i, e)| e.index() == i) {
            // Consecutive entries continuing the ring, the usual batch: one bulk move.
            self.entries.extend(batch.entries);
        } else {
            for e in batch.entries {
                let index = e.index();
                if index < self.first {
                    continue; // below the compacted prefix: nothing to keep
                }
                let at = index - self.first;
                let len = self.entries.len() as u64;
                if at == len {
                    // Appending: the usual case.
                    self.entries.push_back(e);
                    if !self.beyond.is_empty() {
                        self.absorb();
                    }
                } else if at < len {
                    self.entries[usize::try_from(at).expect("index within memory")] = e;
                } else {
                    self.beyond.insert(index, e);
                }
            }
        }
        if let Some(upto) = batch.compact_to {
            let drop = usize::try_from(upto.saturating_add(1).saturating_sub(self.first)).unwrap_or(usize::MAX);
            let drop = drop.min(self.entries.len());
            self.entries.drain(..drop);
            if self.entries.len() <= drop {
                // Back to the start of the buffer (no dearer than the drop): the ring then
                // reuses the memory it touched last instead of circling through all of it.
                self.entries = VecDeque::from(Vec::from(std::mem::take(&mut self.entries)));
            }
            if self.entries.is_empty() {
                self.first = self.first.max(upto + 1);
                self.beyond = self.beyond.split_off(&self.first);
                self.absorb();
            } else {
                self.first += drop as u64;
            }
        }
        if let Some(h) = batch.hard_state {
            self.hard_state = Some(h);
        }
    }

    /// Moves side-map entries that now continue the ring into it.
    fn absorb(&mut self) {
        while let Some(e) = self.beyond.remove(&(self.first + self.entries.len() as u64)) {
            self.entries.push_back(e);
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len() + self.beyond.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where a ballot replica writes its batches.
#[derive(Debug)]
enum Store<E, H> {
    Vec(VecLog<E, H>),
    Mem(MemStore<E, H>),
}

/// A replica of any ballot protocol with its store (see [`BallotStore`]).
pub struct BallotReplica<P: Protocol> {
    protocol: P,
    store: Store<P::Entry, P::HardState>,
    durability: Durability,
    /// Batches polled in this step, written together at its end (group commit).
    pending: Vec<Persist<P::Entry, P::HardState>>,
    role: Role,
    applied_index: u64,
    next_proposal: u64,
}

impl<P: Protocol> BallotReplica<P> {
    /// Wraps `protocol`, which must be freshly built (no outputs polled yet).
    pub fn new(protocol: P, durability: Durability, store: BallotStore) -> Self {
        BallotReplica {
            protocol,
            store: match store {
                BallotStore::Vec => Store::Vec(VecLog::default()),
                BallotStore::MemStore => Store::Mem(MemStore::new()),
            },
            durability,
            pending: Vec::new(),
            role: Role::Follower,
            applied_index: 0,
            next_proposal: 0,
        }
    }

    /// The protocol.
    pub fn protocol(&self) -> &P {
        &self.protocol
    }

    /// Writes `batches` (one write: group commit), emptying the vector.
    fn write(&mut self, batches: &mut Vec<Persist<P::Entry, P::HardState>>) {
        match &mut self.store {
            Store::Vec(log) => batches.drain(..).for_each(|b| log.write(b)),
            Store::Mem(store) => {
                store.write(batches).expect("the in-memory store does not fail");
                batches.clear();
            }
        }
    }
}

impl<P: Protocol> std::fmt::Debug for BallotReplica<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BallotReplica").field("id", &self.protocol.id()).field("role", &self.role).finish()
    }
}

impl<P: Protocol> Replica for BallotReplica<P> {
    fn wire_size(message: &P::Message) -> Option<usize> {
        ballot_wire::Codec::default().encoded_len(message).ok()
    }

    type Message = P::Message;

    fn handle(&mut self, now: Instant, from: u64, message: P::Message) {
        self.protocol.handle_message(now, NodeId(from), message);
    }

    fn propose(&mut self, now: Instant, command: Vec<u8>) -> bool {
        self.next_proposal += 1;
        self.protocol.propose(now, ProposalId(self.next_proposal), Bytes::from(command)).is_ok()
    }

    fn tick(&mut self, now: Instant) {
        if self.protocol.poll_timeout().is_some_and(|t| t <= now) {
            self.protocol.handle_timeout(now);
        }
    }

    fn drain(&mut self, now: Instant, io: &mut Io<'_, P::Message>) {
        loop {
            while let Some(output) = self.protocol.poll_output() {
                match output {
                    Output::Send { to, message } => io.send(to.get(), message),
                    Output::Persist(batch) => {
                        let id = batch.id;
                        self.pending.push(batch);
                        if self.durability == Durability::Instant {
                            let mut batches = std::mem::take(&mut self.pending);
                            self.write(&mut batches);
                            self.pending = batches;
                            io.wrote();
                            self.protocol.persisted(now, id);
                        }
                    }
                    // PBFT's checkpoints: a digest of the (empty) service state at `index`,
                    // the same on every replica.
                    Output::Apply(Apply::Checkpoint { index }) => {
                        let mut digest = [0u8; 32];
                        digest[..8].copy_from_slice(&index.to_le_bytes());
                        self.protocol.checkpoint(now, index, digest, Bytes::new());
                    }
                    Output::Apply(item) => {
                        self.applied_index = item.index();
                        if let Apply::Command { command, .. } = &item {
                            io.apply(command);
                        }
                    }
                    Output::Event(Event::RoleChanged(role)) => self.role = role,
                    _ => {}
                }
            }
            let Some(last) = self.pending.last().map(|b| b.id) else { return };
            let mut batches = std::mem::take(&mut self.pending);
            self.write(&mut batches);
            self.pending = batches;
            io.wrote();
            self.protocol.persisted(now, last);
        }
    }

    fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    fn applied_index(&self) -> u64 {
        self.applied_index
    }

    fn compact(&mut self, now: Instant, index: u64) {
        self.protocol.compact(now, index, Bytes::new());
    }
}

/// Far above any window: the harness's client bounds what is outstanding.
const MAX_PENDING: usize = 1 << 24;

fn membership(settings: &Settings) -> Membership {
    Membership::new((1..=settings.nodes as u64).map(NodeId))
}

/// A cluster of `settings.nodes` replicas, `build(id)` making each one's protocol, each
/// with the store and durability the settings ask for.
fn cluster_of<P: Protocol>(settings: &Settings, build: impl Fn(NodeId) -> P) -> Vec<BallotReplica<P>> {
    (1..=settings.nodes as u64)
        .map(|id| BallotReplica::new(build(NodeId(id)), settings.durability, settings.ballot_store))
        .collect()
}

/// The seeded generator of replica `id`.
/// The election settings every leader-based system in the harness runs with.
fn election() -> ElectionConfig {
    ElectionConfig {
        timeout_min: Tuning::ELECTION_TIMEOUT,
        timeout_max: Tuning::ELECTION_TIMEOUT * 2,
        heartbeat_interval: Tuning::HEARTBEAT,
        pre_vote: true,
        check_quorum: true,
        lease_reads: false,
    }
}

fn rng(settings: &Settings, id: NodeId) -> SeededRng {
    SeededRng::new(settings.seed.wrapping_mul(1000).wrapping_add(id.get()))
}

/// ballot-raft.
#[derive(Debug)]
pub struct BallotRaft;

impl System for BallotRaft {
    const NAME: &'static str = "ballot-raft";
    type Replica = BallotReplica<ballot_raft::Raft>;

    fn cluster(settings: &Settings) -> Vec<Self::Replica> {
        cluster_of(settings, |id| {
            let config = ballot_raft::Config {
                election: election(),
                // raft-rs and omnipaxos limit messages by bytes only.
                max_append_entries: usize::MAX,
                max_append_bytes: Tuning::MAX_MESSAGE_BYTES,
                max_inflight_appends: Tuning::MAX_INFLIGHT_MESSAGES,
                max_pending_proposals: MAX_PENDING,
                ..ballot_raft::Config::new(id)
            };
            ballot_raft::Raft::new(config, membership(settings), Recovered::default(), rng(settings, id), Instant::ZERO)
                .expect("valid ballot-raft config")
        })
    }
}

/// ballot-paxos's Multi-Paxos.
#[derive(Debug)]
pub struct BallotPaxos;

impl System for BallotPaxos {
    const NAME: &'static str = "ballot-paxos";
    type Replica = BallotReplica<ballot_paxos::MultiPaxos>;

    fn cluster(settings: &Settings) -> Vec<Self::Replica> {
        cluster_of(settings, |id| {
            let config = ballot_paxos::Config {
                election: election(),
                max_accept_slots: usize::MAX,
                max_accept_bytes: Tuning::MAX_MESSAGE_BYTES,
                max_inflight_accepts: Tuning::MAX_INFLIGHT_MESSAGES,
                max_pending_proposals: MAX_PENDING,
                ..ballot_paxos::Config::new(id)
            };
            let recovered = Recovered::default();
            ballot_paxos::MultiPaxos::new(config, membership(settings), recovered, rng(settings, id), Instant::ZERO)
                .expect("valid ballot-paxos config")
        })
    }
}

/// ballot-pbft. Replicas sign with the crate's insecure hash signer (a SHA-256 per signed
/// message, as cheap as a MAC) and client requests are not signed: the harness measures
/// the protocol, not Ed25519. The client proposes to the primary only (the backups learn
/// the requests from its PRE-PREPAREs).
#[derive(Debug)]
pub struct BallotPbft;

/// Accepts every client request (see [`BallotPbft`]).
#[derive(Debug)]
struct Unsigned;

impl ballot_pbft::RequestAuth for Unsigned {
    fn verify(&self, _command: &[u8]) -> bool {
        true
    }
}

impl System for BallotPbft {
    const NAME: &'static str = "ballot-pbft";
    type Replica = BallotReplica<ballot_pbft::Pbft>;

    fn cluster(settings: &Settings) -> Vec<Self::Replica> {
        cluster_of(settings, |id| {
            let config = ballot_pbft::Config {
                // Batches limited by bytes, as the others' messages; as many batches in
                // flight as the others' append messages; a window of sequence numbers
                // that never holds them back.
                max_batch: usize::MAX,
                max_batch_bytes: Tuning::MAX_MESSAGE_BYTES,
                max_inflight: Tuning::MAX_INFLIGHT_MESSAGES as u64,
                checkpoint_interval: 128,
                log_window: 4 * Tuning::MAX_INFLIGHT_MESSAGES as u64,
                request_timeout: Tuning::ELECTION_TIMEOUT,
                status_interval: Tuning::HEARTBEAT,
                max_pending: MAX_PENDING,
                ..ballot_pbft::Config::new(id)
            };
            let crypto = ballot_pbft::Crypto {
                signer: std::sync::Arc::new(ballot_pbft::insecure::HashSigner(id)),
                verifier: std::sync::Arc::new(ballot_pbft::insecure::HashVerifier),
                requests: std::sync::Arc::new(Unsigned),
            };
            ballot_pbft::Pbft::new(config, membership(settings), Recovered::default(), crypto, Instant::ZERO)
                .expect("valid ballot-pbft config")
        })
    }
}

#[cfg(test)]
mod tests {
    use ballot_core::{Persist, PersistId};
    use ballot_paxos::{Ballot, Entry, HardState, Value};

    use super::VecLog;

    fn e(slot: u64) -> Entry {
        Entry { slot, ballot: Ballot::ZERO, value: Value::Noop }
    }

    fn batch(entries: Vec<Entry>) -> Persist<Entry, HardState> {
        Persist { entries, ..Persist::new(PersistId(1)) }
    }

    fn slots(log: &VecLog<Entry, HardState>) -> Vec<u64> {
        log.entries.iter().chain(log.beyond.values()).map(|e| e.slot).collect()
    }

    #[test]
    fn appends_overwrites_fills_holes_truncates_and_compacts() {
        let mut log = VecLog::default();
        assert!(log.is_empty());
        log.write(batch(vec![e(1), e(2), e(4)]));
        assert_eq!(slots(&log), vec![1, 2, 4]);
        assert_eq!(log.len(), 3);
        log.write(batch(vec![e(3), e(2)]));
        assert_eq!(slots(&log), vec![1, 2, 3, 4]);
        log.write(Persist { truncate_from: Some(3), ..batch(vec![e(3)]) });
        assert_eq!(slots(&log), vec![1, 2, 3]);
        log.write(Persist { compact_to: Some(2), hard_state: Some(HardState::default()), ..batch(vec![]) });
        assert_eq!(slots(&log), vec![3]);
        assert_eq!(log.first, 3);
        log.write(batch(vec![e(1), e(4)])); // below the compacted prefix: ignored
        assert_eq!(slots(&log), vec![3, 4]);
        log.write(Persist { compact_to: Some(10), ..batch(vec![]) });
        assert!(log.is_empty());
        log.write(batch(vec![e(11)]));
        assert_eq!(slots(&log), vec![11]);
        assert!(log.hard_state.is_some());
        // A hole: the entry after it waits beside the ring until the hole is filled.
        log.write(batch(vec![e(13)]));
        assert_eq!((slots(&log), log.entries.len()), (vec![11, 13], 1));
        log.write(batch(vec![e(12)]));
        assert_eq!((slots(&log), log.entries.len()), (vec![11, 12, 13], 3));
        // Compaction past the ring keeps what lies beyond it.
        log.write(batch(vec![e(16)]));
        log.write(Persist { compact_to: Some(14), ..batch(vec![]) });
        assert_eq!((slots(&log), log.first), (vec![16], 15));
        log.write(batch(vec![e(15)]));
        assert_eq!((slots(&log), log.entries.len()), (vec![15, 16], 2));
        log.write(Persist { truncate_from: Some(16), ..batch(vec![e(18)]) });
        assert_eq!(slots(&log), vec![15, 18]);
    }
}
