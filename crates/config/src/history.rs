//! The bounded change history that watches replay from.

use std::collections::VecDeque;

use crate::ConfigEvent;

/// The default number of changes kept for watches to replay.
pub const DEFAULT_HISTORY_EVENTS: usize = 10_000;
/// The default bound on the bytes of retained changes (namespaces, keys and values).
pub const DEFAULT_HISTORY_BYTES: usize = 64 * 1024 * 1024;

/// Bookkeeping bytes counted per retained change, on top of its namespace, key and value.
const EVENT_OVERHEAD: usize = 64;

/// How much change history a replica keeps. Older changes are compacted away
/// automatically, oldest first, once either bound is exceeded.
///
/// Every replica should use the same limit: then the compaction point, like everything
/// else, is a function of the log, and a watch resumes the same way on every replica.
/// (A different limit changes only how far back watches can start, never keys or
/// revisions.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryLimit {
    /// The most changes kept.
    pub max_events: usize,
    /// The most bytes of changes kept.
    pub max_bytes: usize,
}

impl Default for HistoryLimit {
    fn default() -> Self {
        HistoryLimit { max_events: DEFAULT_HISTORY_EVENTS, max_bytes: DEFAULT_HISTORY_BYTES }
    }
}

/// Retained events in revision order, and the compaction point before them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct History {
    pub(crate) events: VecDeque<ConfigEvent>,
    bytes: usize,
    /// The oldest revision still available: every event with a revision at or after it
    /// is retained.
    pub(crate) compact_revision: u64,
    pub(crate) limit: HistoryLimit,
}

fn size(e: &ConfigEvent) -> usize {
    e.namespace.len() + e.key.len() + e.value.len() + EVENT_OVERHEAD
}

impl History {
    pub(crate) fn new(limit: HistoryLimit) -> Self {
        History { events: VecDeque::new(), bytes: 0, compact_revision: 1, limit }
    }

    /// A history holding `events` (revisions increasing, all at or after `compact_revision`),
    /// trimmed to `limit`.
    pub(crate) fn from_parts(events: VecDeque<ConfigEvent>, compact_revision: u64, limit: HistoryLimit) -> Self {
        let bytes = events.iter().map(size).sum();
        let mut h = History { events, bytes, compact_revision, limit };
        h.trim();
        h
    }

    /// Appends the event of a new revision and compacts past the limit.
    pub(crate) fn push(&mut self, event: ConfigEvent) {
        self.bytes += size(&event);
        self.events.push_back(event);
        self.trim();
    }

    fn trim(&mut self) {
        while self.events.len() > self.limit.max_events
            || (self.bytes > self.limit.max_bytes && !self.events.is_empty())
        {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some(e) = self.events.pop_front() {
            self.bytes -= size(&e);
            self.compact_revision = self.compact_revision.max(e.revision + 1);
        }
    }

    /// Drops every event before `revision`.
    pub(crate) fn compact(&mut self, revision: u64) {
        while self.events.front().is_some_and(|e| e.revision < revision) {
            self.pop_front();
        }
        self.compact_revision = self.compact_revision.max(revision);
    }

    /// The retained events from `revision` on.
    pub(crate) fn since(&self, revision: u64) -> impl Iterator<Item = &ConfigEvent> {
        let start = self.events.partition_point(|e| e.revision < revision);
        self.events.range(start..)
    }
}
