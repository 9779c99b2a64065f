//! The adapter for tikv's raft-rs (`raft` crate): a `RawNode` over its `MemStorage`,
//! driven by the `Ready` loop of raft-rs's own examples.

use ballot_core::Instant;
use raft::StateRole;
use raft::prelude::{ConfState, EntryType, Message, RawNode};
use raft::storage::MemStorage;

use crate::harness::{Io, Replica, System};
use crate::{Settings, Tuning};

/// A raft-rs replica.
pub struct RaftRsReplica {
    node: RawNode<MemStorage>,
    /// The same storage as the node's (raft-rs's `MemStorage` is a shared handle).
    store: MemStorage,
    next_tick: Instant,
    applied_index: u64,
}

impl std::fmt::Debug for RaftRsReplica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftRsReplica").field("id", &self.node.raft.id).field("state", &self.node.raft.state).finish()
    }
}

impl RaftRsReplica {
    fn apply(&mut self, entries: Vec<raft::prelude::Entry>, io: &mut Io<'_, Message>) {
        for e in entries {
            self.applied_index = e.index;
            // Empty normal entries are the no-ops a new leader appends.
            if e.get_entry_type() == EntryType::EntryNormal && !e.data.is_empty() {
                io.apply(&e.data);
            }
        }
    }
}

impl Replica for RaftRsReplica {
    type Message = Message;

    fn handle(&mut self, _now: Instant, _from: u64, message: Message) {
        // A message that does not apply (stale term, unknown peer) is ignored, as a
        // driver would; in this harness none is expected.
        let _ = self.node.step(message);
    }

    fn propose(&mut self, _now: Instant, command: Vec<u8>) -> bool {
        self.node.propose(Vec::new(), command).is_ok()
    }

    fn tick(&mut self, now: Instant) {
        while self.next_tick <= now {
            self.node.tick();
            self.next_tick += Tuning::TICK;
        }
    }

    fn drain(&mut self, _now: Instant, io: &mut Io<'_, Message>) {
        while self.node.has_ready() {
            let mut ready = self.node.ready();
            // A leader's appends may leave before its own write (raft thesis 10.2.1).
            for m in ready.take_messages() {
                io.send(m.to, m);
            }
            if !ready.snapshot().is_empty() {
                self.store.wl().apply_snapshot(ready.snapshot().clone()).expect("snapshot applies");
            }
            self.apply(ready.take_committed_entries(), io);
            let wrote = !ready.entries().is_empty() || ready.hs().is_some() || !ready.snapshot().is_empty();
            if !ready.entries().is_empty() {
                self.store.wl().append(ready.entries()).expect("entries follow the log");
            }
            if let Some(hs) = ready.hs() {
                self.store.wl().set_hardstate(hs.clone());
            }
            if wrote {
                io.wrote();
            }
            // Votes and append acknowledgements: only after the write.
            for m in ready.take_persisted_messages() {
                io.send(m.to, m);
            }
            let mut light = self.node.advance(ready);
            if let Some(commit) = light.commit_index() {
                self.store.wl().mut_hard_state().set_commit(commit);
            }
            for m in light.take_messages() {
                io.send(m.to, m);
            }
            self.apply(light.take_committed_entries(), io);
            self.node.advance_apply();
        }
    }

    fn is_leader(&self) -> bool {
        self.node.raft.state == StateRole::Leader
    }

    fn applied_index(&self) -> u64 {
        self.applied_index
    }

    fn compact(&mut self, _now: Instant, index: u64) {
        // `compact(i)` keeps entry `i` and drops everything before it.
        self.store.wl().compact(index).expect("compaction below the applied index");
    }
}

/// tikv's raft-rs.
#[derive(Debug)]
pub struct RaftRs;

impl System for RaftRs {
    const NAME: &'static str = "raft-rs";
    type Replica = RaftRsReplica;

    fn cluster(settings: &Settings) -> Vec<RaftRsReplica> {
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let voters: Vec<u64> = (1..=settings.nodes as u64).collect();
        let ticks = |d: std::time::Duration| (d.as_nanos() / Tuning::TICK.as_nanos()) as usize;
        voters
            .iter()
            .map(|&id| {
                let config = raft::Config {
                    id,
                    election_tick: ticks(Tuning::ELECTION_TIMEOUT),
                    heartbeat_tick: ticks(Tuning::HEARTBEAT),
                    max_size_per_msg: Tuning::MAX_MESSAGE_BYTES as u64,
                    max_inflight_msgs: Tuning::MAX_INFLIGHT_MESSAGES,
                    check_quorum: true,
                    pre_vote: true,
                    // Coalesce proposals of one step into one append per follower, as
                    // ballot and omnipaxos do (raft-rs's default sends one per proposal).
                    batch_append: settings.raft_rs_batch_append,
                    ..raft::Config::default()
                };
                let store = MemStorage::new_with_conf_state(ConfState::from((voters.clone(), vec![])));
                let node = RawNode::new(&config, store.clone(), &logger).expect("valid raft-rs config");
                RaftRsReplica { node, store, next_tick: Instant::ZERO + Tuning::TICK, applied_index: 0 }
            })
            .collect()
    }
}
