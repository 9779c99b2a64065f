//! ballot-sim: the deterministic simulator every ballot consensus algorithm is tested
//! with.
//!
//! It runs the real sans-IO state machines (`ballot_core::Protocol`) of a whole cluster
//! in one thread, on **virtual time**, with **one seeded generator** behind every random
//! choice, so a run is a pure function of its seed and any failure replays exactly. The
//! simulated world has a network that delays, drops, duplicates and reorders messages
//! and can be partitioned (symmetrically or one way), a disk per node whose writes
//! become durable after a delay (and are lost if the node crashes first), crashes and
//! restarts from durable state, a replicated key-value service per node, and clients
//! whose histories are checked for **linearizability**. Invariant checkers (one struct
//! per invariant) run after every step; the first violation stops the run and reports
//! the seed and the command that replays it.
//!
//! Who uses it: algorithm authors (each algorithm plugs in through the small
//! [`Algorithm`] trait and adds checkers for its own invariants, as the [`raft`] and
//! [`paxos`] modules do for Raft, Multi-Paxos and the single-decree Synod), CI
//! (`tests/raft_seeds.rs`, `tests/multipaxos_seeds.rs`, `tests/synod_seeds.rs`) and
//! anyone chasing a bug with the `ballot-sim` binary
//! (`cargo xtask sim --algo multipaxos --seeds 100`).
//!
//! ```
//! use std::time::Duration;
//! use ballot_sim::{RunSpec, raft::RaftAlgorithm, run_spec};
//!
//! // Fifteen virtual seconds of a three-node Raft cluster under seed 7's faults.
//! let spec = RunSpec { duration: Duration::from_secs(15), ..RunSpec::new(7, 3) };
//! let stats = run_spec(RaftAlgorithm::default(), &spec)?;
//! assert!(stats.commands_committed > 0);
//! assert_eq!(spec.replay_command("raft"), "cargo xtask sim --algo raft --seed 7 --nodes 3 --duration 15");
//! # Ok::<(), ballot_sim::SimError>(())
//! ```

mod algorithm;
pub mod chain;
mod checker;
mod disk;
mod error;
mod fasthash;
pub mod faults;
mod history;
mod kv;
pub mod linearizability;
mod net;
pub mod paxos;
pub mod pbft;
pub mod pos;
mod queue;
pub mod raft;
mod report;
mod runner;
mod sim;
mod sweep;
pub mod workload;

pub use algorithm::{AdminAction, Algorithm, EntryOf, HardStateOf, MessageOf, NodeInfo, SimAlgorithm, Tuned};
pub use checker::{
    Agreement, AppliedItem, Checker, CommandOracle, Convergence, Integrity, Liveness, NodeView, Observation, Validity,
    Violation, generic_checkers,
};
pub use error::SimError;
pub use faults::{Fault, FaultKind, FaultPlan};
pub use history::{History, OpId, Operation, Outcome};
pub use kv::{Key, KvCommand, KvInput, KvOutput, KvStore, Value};
pub use net::{NetConfig, NetStats, Network};
pub use report::RunStats;
pub use runner::{DEFAULT_DURATION, RunSpec, Service, Summary, run_many, run_spec};
pub use sim::{ClientConfig, DiskConfig, SimConfig, Simulation, SubmitKv};
pub use sweep::{Sweep, SweepError, SweepSpec, SweepStats, print_summary, progress, sweep};
pub use workload::{ConfigWorkload, ElectionWorkload, KvWorkload, Workload};
