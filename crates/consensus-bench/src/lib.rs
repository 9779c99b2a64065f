//! One in-memory benchmark harness for consensus cores: ballot-raft, ballot-paxos, tikv's
//! raft-rs (`raft` crate) and omnipaxos, driven side by side under the same rules, and
//! ballot-pbft beside them (what Byzantine fault tolerance costs in messages and rounds).
//!
//! It measures the state machines alone — no network stack, no disk, no serialization —
//! so that their costs can be compared: committed entries per second (committed on the
//! leader *and* applied on every replica), messages per committed entry, storage writes
//! per entry and network rounds per commit; with [`Settings::count_bytes`], also the
//! bytes of ballot's messages in its wire codec (a separate pass: measuring sizes walks
//! every message). Use it through the bench
//! (`cargo bench -p ballot-consensus-bench --bench cores`, see `docs/benchmarks.md`) or
//! call [`run`] from your own code to compare a change.
//!
//! # The rules every system runs under
//!
//! * **Network**: message queues, one per replica. A run proceeds in *rounds*: in each
//!   round every replica receives everything sent to it in the previous round, handles
//!   it, and its outputs are drained. So every system gets the same batching opportunity
//!   (everything that arrives together is handled before outputs are taken) and every
//!   message costs one round of latency. Messages are moved, never serialized or lost.
//! * **Storage**: every entry is written to an in-memory store and a write is durable as
//!   soon as it returns. raft-rs writes to its `MemStorage` (a `Vec`, which is also where
//!   it reads its log from), omnipaxos to omnipaxos_storage's `MemoryStorage` (a `Vec`,
//!   its only log); ballot's protocols keep their log in memory themselves and emit
//!   `Persist` batches, which go to the equally lean [`VecLog`] (or, with
//!   [`BallotStore::MemStore`], to the conformance-tested `ballot_core::MemStore`). With
//!   [`Durability::Group`] a ballot replica's batches of one step are written together and
//!   acknowledged with one `persisted` call (group commit, as ballot-node does); raft-rs
//!   persists one `Ready` per step, which is the same thing; omnipaxos writes
//!   synchronously inside its calls. [`Durability::Instant`] acknowledges every ballot
//!   batch as soon as it is polled. Nothing counts as committed before the writes it
//!   depends on are acknowledged.
//! * **Clients**: a closed loop on the leader keeps [`Settings::window`] commands
//!   outstanding; a command is complete when the leader applies it, and the next one is
//!   proposed in the same step. Commands are [`Settings::command_size`] bytes, each a
//!   fresh heap buffer handed over by value (what a server gets from its network), whose
//!   first 8 bytes are a sequence number: every replica checks it applies them exactly
//!   in order, so a run is also a correctness check.
//! * **Time** is virtual: 10 µs per round (1 ms while electing). Timers are equalised
//!   (heartbeat 100 ms, election timeout 1–2 s; tick-based systems tick every 10 ms), and
//!   so are flow-control limits (1 MiB per append message, 256 append messages in flight
//!   per follower) where a system has them. See [`Tuning`].
//! * **Compaction**: every [`Settings::compact_every`] entries each system discards the
//!   log prefix every replica has applied, as a service taking snapshots would (omnipaxos:
//!   the leader trims and tells the followers, one message each).
//! * **Warm-up**: [`Settings::warmup`] commands (several compaction cycles) run before
//!   the measurement, so logs and buffers have reached their steady-state size.
//! * **Measures**: wall-clock time and the benchmark thread's CPU time (the latter
//!   leaves out time other processes held the core on a shared machine).
//!
//! # Example
//!
//! ```
//! use ballot_consensus_bench::{run, Settings, SystemKind};
//!
//! let settings = Settings { entries: 2_000, warmup: 200, ..Settings::new(3, 64, 64) };
//! for &kind in SystemKind::ALL {
//!     let report = run(kind, &settings);
//!     assert_eq!(report.entries, 2_000);
//!     assert!(report.messages > 0);
//! }
//! ```

mod ballot;
mod cpu;
mod harness;
mod omni;
#[cfg(feature = "raft-rs")]
mod raft_rs;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub use ballot::{BallotPaxos, BallotPbft, BallotRaft, BallotReplica, VecLog};
pub use harness::{Io, Replica, System, run_system};
pub use omni::{OmniPaxos, OmniReplica};
#[cfg(feature = "raft-rs")]
pub use raft_rs::{RaftRs, RaftRsReplica};

/// When a write counts as durable, for systems that let the driver decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// All writes a replica makes in one step are written together and acknowledged once
    /// at the end of the step (group commit, as `ballot-node` does). raft-rs persists one
    /// `Ready` per step either way.
    Group,
    /// Every write is acknowledged as soon as it is polled.
    Instant,
}

impl FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "group" => Ok(Durability::Group),
            "instant" => Ok(Durability::Instant),
            other => Err(format!("unknown durability {other:?}: expected `group` or `instant`")),
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Durability::Group => "group",
            Durability::Instant => "instant",
        })
    }
}

/// The store ballot's protocols write their `Persist` batches to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BallotStore {
    /// [`VecLog`]: entries moved into a ring buffer by index, like raft-rs's `MemStorage`
    /// (a `Vec`) and omnipaxos's `MemoryStorage` (a `Vec`). The default, for comparing
    /// the protocols.
    Vec,
    /// `ballot_core::MemStore`: the conformance-tested test store (a `BTreeMap` behind a
    /// mutex, entries cloned).
    MemStore,
}

impl FromStr for BallotStore {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "vec" => Ok(BallotStore::Vec),
            "memstore" => Ok(BallotStore::MemStore),
            other => Err(format!("unknown ballot store {other:?}: expected `vec` or `memstore`")),
        }
    }
}

impl fmt::Display for BallotStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BallotStore::Vec => "vec",
            BallotStore::MemStore => "memstore",
        })
    }
}

/// What one run does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Replicas in the cluster (all voters).
    pub nodes: usize,
    /// Bytes per command (at least 8: the sequence number).
    pub command_size: usize,
    /// Commands outstanding at the leader (closed loop); 1 measures latency.
    pub window: u64,
    /// Commands measured.
    pub entries: u64,
    /// Commands committed before the measurement starts (allocations, caches).
    pub warmup: u64,
    /// When ballot's writes are acknowledged.
    pub durability: Durability,
    /// Where ballot's protocols write.
    pub ballot_store: BallotStore,
    /// raft-rs's `batch_append` (coalesce the proposals of one step into one append per
    /// follower, as the other systems do). raft-rs's own default is `false`: one append
    /// message per proposal.
    pub raft_rs_batch_append: bool,
    /// Compact the log every this many applied commands (0: never).
    pub compact_every: u64,
    /// Seed of the protocols' random number generators.
    pub seed: u64,
    /// Count the bytes of every message as ballot's wire codec encodes them (systems
    /// without that codec report none). Off for throughput: it walks every message.
    pub count_bytes: bool,
}

impl Settings {
    /// `nodes` replicas, `command_size`-byte commands, `window` outstanding: 100 000
    /// measured commands after 65 536 of warm-up (four compaction cycles, so that logs
    /// and buffers have reached their steady-state size), group commit into [`VecLog`],
    /// compaction every 16 384.
    #[must_use]
    pub fn new(nodes: usize, command_size: usize, window: u64) -> Self {
        Settings {
            nodes,
            command_size,
            window,
            entries: 100_000,
            warmup: 1 << 16,
            durability: Durability::Group,
            ballot_store: BallotStore::Vec,
            raft_rs_batch_append: true,
            compact_every: 1 << 14,
            seed: 1,
            count_bytes: false,
        }
    }
}

/// The knobs set to the same value for every system that has them.
#[derive(Clone, Copy, Debug)]
pub struct Tuning;

impl Tuning {
    /// Virtual time per round once a leader is elected.
    pub const ROUND: Duration = Duration::from_micros(10);
    /// Virtual time per round while electing the first leader.
    pub const ELECTION_ROUND: Duration = Duration::from_millis(1);
    /// Heartbeat period (ballot's `heartbeat_interval`, raft-rs's `heartbeat_tick`,
    /// omnipaxos's leader-election round).
    pub const HEARTBEAT: Duration = Duration::from_millis(100);
    /// Lower bound of the election timeout (the upper bound is twice it).
    pub const ELECTION_TIMEOUT: Duration = Duration::from_millis(1000);
    /// Period of `tick()` for raft-rs and omnipaxos.
    pub const TICK: Duration = Duration::from_millis(10);
    /// Most entry bytes in one append/accept message.
    pub const MAX_MESSAGE_BYTES: usize = 1 << 20;
    /// Most append/accept messages in flight to one follower.
    pub const MAX_INFLIGHT_MESSAGES: usize = 256;
}

/// The systems the harness knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SystemKind {
    /// `ballot-raft`.
    BallotRaft,
    /// tikv's raft-rs (`raft` crate); with the `raft-rs` feature.
    #[cfg(feature = "raft-rs")]
    RaftRs,
    /// `ballot-paxos` (Multi-Paxos).
    BallotPaxos,
    /// `omnipaxos`.
    OmniPaxos,
    /// `ballot-pbft` (Byzantine fault tolerant: three message rounds, all to all).
    BallotPbft,
}

impl SystemKind {
    /// Every system, in report order.
    pub const ALL: &'static [SystemKind] = &[
        SystemKind::BallotRaft,
        #[cfg(feature = "raft-rs")]
        SystemKind::RaftRs,
        SystemKind::BallotPaxos,
        SystemKind::OmniPaxos,
        SystemKind::BallotPbft,
    ];

    /// The name used in reports and on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            SystemKind::BallotRaft => BallotRaft::NAME,
            #[cfg(feature = "raft-rs")]
            SystemKind::RaftRs => RaftRs::NAME,
            SystemKind::BallotPaxos => BallotPaxos::NAME,
            SystemKind::OmniPaxos => OmniPaxos::NAME,
            SystemKind::BallotPbft => BallotPbft::NAME,
        }
    }
}

impl FromStr for SystemKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        SystemKind::ALL.iter().copied().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<_> = SystemKind::ALL.iter().map(|k| k.name()).collect();
            format!("unknown system {s:?}: expected one of {}", names.join(", "))
        })
    }
}

impl fmt::Display for SystemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one run measured (the measured phase only, after warm-up).
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Which system.
    pub system: SystemKind,
    /// The settings it ran with.
    pub settings: Settings,
    /// Commands committed on the leader and applied on every replica.
    pub entries: u64,
    /// Wall-clock time.
    pub wall: Duration,
    /// CPU time of the benchmark thread (excludes time other processes held the core);
    /// `None` where the platform does not report it.
    pub cpu: Option<Duration>,
    /// Messages sent between replicas.
    pub messages: u64,
    /// Storage writes (ballot: `LogStore::write` calls; raft-rs: `Ready`s with entries or
    /// hard state; omnipaxos: mutating `Storage` calls, as it has no group commit).
    pub writes: u64,
    /// Network rounds (one message hop each).
    pub rounds: u64,
    /// Encoded bytes of the messages, with [`Settings::count_bytes`] and a system that
    /// can tell (ballot's).
    pub bytes: Option<u64>,
}

impl Report {
    /// Entries per wall-clock second.
    #[must_use]
    pub fn wall_rate(&self) -> f64 {
        self.entries as f64 / self.wall.as_secs_f64()
    }

    /// Entries per second of CPU time (falls back to wall-clock time).
    #[must_use]
    pub fn cpu_rate(&self) -> f64 {
        self.entries as f64 / self.cpu.unwrap_or(self.wall).as_secs_f64()
    }

    /// Messages per committed entry.
    #[must_use]
    pub fn messages_per_entry(&self) -> f64 {
        self.messages as f64 / self.entries as f64
    }

    /// Encoded message bytes per entry, where counted.
    #[must_use]
    pub fn bytes_per_entry(&self) -> Option<f64> {
        self.bytes.map(|b| b as f64 / self.entries as f64)
    }

    /// Storage writes per committed entry.
    #[must_use]
    pub fn writes_per_entry(&self) -> f64 {
        self.writes as f64 / self.entries as f64
    }

    /// Network rounds per committed entry (with window 1: the commit latency in hops).
    #[must_use]
    pub fn rounds_per_entry(&self) -> f64 {
        self.rounds as f64 / self.entries as f64
    }
}

/// Runs one system with `settings` and reports the measured phase.
///
/// # Panics
/// If the system loses its leader, stalls, or a replica applies commands out of order.
#[must_use]
pub fn run(kind: SystemKind, settings: &Settings) -> Report {
    match kind {
        SystemKind::BallotRaft => run_system::<BallotRaft>(kind, settings),
        #[cfg(feature = "raft-rs")]
        SystemKind::RaftRs => run_system::<RaftRs>(kind, settings),
        SystemKind::BallotPaxos => run_system::<BallotPaxos>(kind, settings),
        SystemKind::OmniPaxos => run_system::<OmniPaxos>(kind, settings),
        SystemKind::BallotPbft => run_system::<BallotPbft>(kind, settings),
    }
}
