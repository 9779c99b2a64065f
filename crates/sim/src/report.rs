//! Run statistics and their summary.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::faults::FaultKind;
use crate::net::NetStats;

/// What one run (or, merged, many runs) did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Runs merged into these figures.
    pub runs: u64,
    /// Virtual time simulated.
    pub virtual_time: Duration,
    /// Events processed.
    pub events: u64,
    /// What happened to protocol messages.
    pub net: NetStats,
    /// `Output::Persist` batches written.
    pub persists: u64,
    /// Simulated disk syncs (a sync may complete several batches).
    pub disk_syncs: u64,
    /// Distinct client commands committed (applied by at least one node).
    pub commands_committed: u64,
    /// Client operations answered.
    pub ops_ok: u64,
    /// Client operations that definitely failed.
    pub ops_failed: u64,
    /// Client operations with an unknown outcome (timeouts, leadership lost).
    pub ops_indeterminate: u64,
    /// Of `ops_ok`, the reads.
    pub reads_ok: u64,
    /// `Protocol::compact` calls.
    pub compactions: u64,
    /// Snapshot restores applied by services.
    pub restores: u64,
    /// Times a node became leader.
    pub elections: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<FaultKind, u64>,
    /// Administrative actions the leader accepted / refused or found no leader for.
    pub admin: (u64, u64),
    /// Keys whose histories were checked for linearizability.
    pub lin_keys: u64,
    /// Operations fed to the linearizability checker.
    pub lin_ops: u64,
    /// Keys whose check ran out of budget.
    pub lin_unknown: u64,
    /// Disk records corrupted (storage faults).
    pub corruptions: u64,
    /// Restarts refused because recovery found a corrupted record.
    pub refused_starts: u64,
}

impl RunStats {
    /// Adds `other`'s figures to these.
    pub fn merge(&mut self, other: &RunStats) {
        self.runs += other.runs;
        self.virtual_time += other.virtual_time;
        self.events += other.events;
        let (a, b) = (&mut self.net, &other.net);
        a.sent += b.sent;
        a.delivered += b.delivered;
        a.dropped += b.dropped;
        a.cut += b.cut;
        a.to_down += b.to_down;
        a.duplicated += b.duplicated;
        a.reordered += b.reordered;
        self.persists += other.persists;
        self.disk_syncs += other.disk_syncs;
        self.commands_committed += other.commands_committed;
        self.ops_ok += other.ops_ok;
        self.ops_failed += other.ops_failed;
        self.ops_indeterminate += other.ops_indeterminate;
        self.reads_ok += other.reads_ok;
        self.compactions += other.compactions;
        self.restores += other.restores;
        self.elections += other.elections;
        for (k, v) in &other.faults {
            *self.faults.entry(*k).or_default() += v;
        }
        self.admin.0 += other.admin.0;
        self.admin.1 += other.admin.1;
        self.lin_keys += other.lin_keys;
        self.lin_ops += other.lin_ops;
        self.lin_unknown += other.lin_unknown;
        self.corruptions += other.corruptions;
        self.refused_starts += other.refused_starts;
    }
}

impl fmt::Display for RunStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = &self.net;
        writeln!(f, "runs:                {}", self.runs)?;
        writeln!(f, "virtual time:        {:.1} s ({} events)", self.virtual_time.as_secs_f64(), self.events)?;
        writeln!(
            f,
            "messages:            {} sent, {} delivered, {} dropped, {} cut by partitions, {} to crashed nodes, \
             {} duplicated, {} reordered",
            n.sent, n.delivered, n.dropped, n.cut, n.to_down, n.duplicated, n.reordered
        )?;
        writeln!(
            f,
            "disk:                {} batches in {} syncs; {} records corrupted, {} restarts refused",
            self.persists, self.disk_syncs, self.corruptions, self.refused_starts
        )?;
        writeln!(
            f,
            "commands committed:  {} ({} snapshots taken, {} restored, {} elections won)",
            self.commands_committed, self.compactions, self.restores, self.elections
        )?;
        writeln!(
            f,
            "client operations:   {} ok ({} reads), {} failed, {} indeterminate",
            self.ops_ok, self.reads_ok, self.ops_failed, self.ops_indeterminate
        )?;
        writeln!(
            f,
            "linearizability:     {} keys, {} operations checked, {} unknown (budget exhausted)",
            self.lin_keys, self.lin_ops, self.lin_unknown
        )?;
        let faults: Vec<String> = self.faults.iter().map(|(k, v)| format!("{k} {v}")).collect();
        write!(f, "faults injected:     {}", if faults.is_empty() { "none".to_owned() } else { faults.join(", ") })?;
        if self.admin != (0, 0) {
            write!(f, "\nadmin actions:       {} accepted, {} refused or leaderless", self.admin.0, self.admin.1)?;
        }
        Ok(())
    }
}
