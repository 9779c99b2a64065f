//! The driver loop shared by every system: rounds of message delivery, the closed-loop
//! client on the leader, compaction, and the accounting.

use std::time::Duration;

use ballot_core::Instant;

use crate::{Report, Settings, SystemKind, Tuning, cpu};

/// One replica of some system, as the harness drives it. An adapter translates these
/// calls into the system's own API.
pub trait Replica {
    /// The system's message type (moved between replicas, never serialized).
    type Message;

    /// A message from replica `from` (ids start at 1) arrived.
    fn handle(&mut self, now: Instant, from: u64, message: Self::Message);

    /// Proposes `command` (only called on the leader); `false` if it was refused.
    fn propose(&mut self, now: Instant, command: Vec<u8>) -> bool;

    /// Virtual time is now `now`: fire whatever timers are due.
    fn tick(&mut self, now: Instant);

    /// Takes every output: sends messages through `io`, writes to storage (reporting
    /// each durable write to `io`) and acknowledges the writes as the [`Durability`]
    /// setting says, and hands committed commands to `io` in log order. Returns once the
    /// replica has nothing more to do until its next input.
    ///
    /// [`Durability`]: crate::Durability
    fn drain(&mut self, now: Instant, io: &mut Io<'_, Self::Message>);

    /// Whether this replica leads and can order commands.
    fn is_leader(&self) -> bool;

    /// The log index up to which this replica has applied (in the system's own index
    /// space, the same on every replica).
    fn applied_index(&self) -> u64;

    /// Discards the log up to `index`, which every replica has applied.
    fn compact(&mut self, now: Instant, index: u64);

    /// The encoded size of `message` on ballot's wire, for systems that have one
    /// (`None`: the system's bytes are not counted).
    fn wire_size(message: &Self::Message) -> Option<usize> {
        let _ = message;
        None
    }
}

/// A system the harness can build clusters of.
pub trait System {
    /// Name in reports.
    const NAME: &'static str;
    /// Its replica adapter.
    type Replica: Replica;
    /// A fresh cluster of `settings.nodes` replicas with ids `1..=nodes`.
    fn cluster(settings: &Settings) -> Vec<Self::Replica>;
}

/// Per-replica counters the harness keeps.
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    applied: u64,
    writes: u64,
}

/// A system's [`Replica::wire_size`].
type SizeOf<M> = fn(&M) -> Option<usize>;

/// What a replica's [`Replica::drain`] reports to the harness.
#[derive(Debug)]
pub struct Io<'a, M> {
    from: u64,
    outbox: &'a mut [Vec<(u64, M)>],
    counters: &'a mut Counters,
    messages: &'a mut u64,
    /// The sizes of the messages sent, when bytes are counted.
    bytes: Option<(&'a mut u64, SizeOf<M>)>,
}

impl<M> Io<'_, M> {
    /// Sends `message` to replica `to` (delivered next round).
    ///
    /// # Panics
    /// If `to` is not a replica of the cluster.
    pub fn send(&mut self, to: u64, message: M) {
        *self.messages += 1;
        if let Some((bytes, size)) = self.bytes.as_mut() {
            **bytes += size(&message).unwrap_or(0) as u64;
        }
        self.outbox[(to - 1) as usize].push((self.from, message));
    }

    /// One durable storage write happened.
    pub fn wrote(&mut self) {
        self.counters.writes += 1;
    }

    /// The next committed command, in log order.
    ///
    /// # Panics
    /// If it is not the command that should come next on this replica.
    pub fn apply(&mut self, command: &[u8]) {
        let seq = command.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
        assert_eq!(
            seq,
            Some(self.counters.applied),
            "replica {} applied a command out of order (command of {} bytes)",
            self.from,
            command.len()
        );
        self.counters.applied += 1;
    }
}

struct Cluster<R: Replica> {
    replicas: Vec<R>,
    counters: Vec<Counters>,
    /// Messages to deliver this round, per destination.
    inbox: Vec<Vec<(u64, R::Message)>>,
    /// Messages sent this round, per destination.
    outbox: Vec<Vec<(u64, R::Message)>>,
    messages: u64,
    /// Encoded bytes sent, if counted.
    bytes: Option<u64>,
    rounds: u64,
    now: Instant,
}

impl<R: Replica> Cluster<R> {
    fn new(replicas: Vec<R>, count_bytes: bool) -> Self {
        let n = replicas.len();
        Cluster {
            replicas,
            counters: vec![Counters::default(); n],
            inbox: (0..n).map(|_| Vec::new()).collect(),
            outbox: (0..n).map(|_| Vec::new()).collect(),
            messages: 0,
            bytes: count_bytes.then_some(0),
            rounds: 0,
            now: Instant::ZERO,
        }
    }

    fn drain(&mut self, i: usize) {
        let mut io = Io {
            from: i as u64 + 1,
            outbox: &mut self.outbox,
            counters: &mut self.counters[i],
            messages: &mut self.messages,
            bytes: self.bytes.as_mut().map(|b| (b, R::wire_size as SizeOf<R::Message>)),
        };
        self.replicas[i].drain(self.now, &mut io);
    }

    /// One round: fire timers, deliver last round's messages to each replica, and drain
    /// it; `client` runs on a replica after it drained and may propose (its proposals are
    /// drained in the same step).
    fn round(&mut self, step: Duration, mut client: impl FnMut(usize, &mut R, &Counters, Instant) -> bool) {
        self.now += step;
        self.rounds += 1;
        std::mem::swap(&mut self.inbox, &mut self.outbox);
        for i in 0..self.replicas.len() {
            self.replicas[i].tick(self.now);
            let mut inbox = std::mem::take(&mut self.inbox[i]);
            for (from, m) in inbox.drain(..) {
                self.replicas[i].handle(self.now, from, m);
            }
            self.inbox[i] = inbox; // keep the allocation
            self.drain(i);
            if client(i, &mut self.replicas[i], &self.counters[i], self.now) {
                self.drain(i);
            }
        }
    }

    fn min_applied(&self) -> u64 {
        self.counters.iter().map(|c| c.applied).min().unwrap_or(0)
    }

    fn writes(&self) -> u64 {
        self.counters.iter().map(|c| c.writes).sum()
    }
}

/// The counters when the measurement started.
struct Mark {
    /// Commands the leader had applied.
    applied: u64,
    messages: u64,
    bytes: Option<u64>,
    writes: u64,
    rounds: u64,
    wall: std::time::Instant,
    cpu: Option<Duration>,
}

/// Builds a cluster of `S`, elects a leader, warms up and measures `settings.entries`
/// commands; see the crate documentation for the rules.
///
/// # Panics
/// If no leader is elected within a minute of virtual time, leadership changes during
/// the run, the run stalls, or a replica applies commands out of order.
#[must_use]
pub fn run_system<S: System>(kind: SystemKind, settings: &Settings) -> Report {
    assert!(settings.command_size >= 8, "commands carry an 8-byte sequence number");
    assert!(settings.window >= 1, "the window must be at least 1");
    let mut c = Cluster::new(S::cluster(settings), settings.count_bytes);

    // Elect: let timers run in 1 ms rounds until some replica leads.
    let leader = loop {
        if let Some(l) = c.replicas.iter().position(Replica::is_leader) {
            break l;
        }
        assert!(c.now < Instant::from_millis(60_000), "{}: no leader elected within 60 s", S::NAME);
        c.round(Tuning::ELECTION_ROUND, |_, _, _, _| false);
    };
    let election_rounds = c.rounds;

    // The closed loop: run until `warmup` commands committed, then measure `entries`.
    let size = settings.command_size;
    let mut proposed: u64 = 0;
    let mut limit = u64::MAX; // stop proposing here once the measurement is under way
    let mut start: Option<Mark> = None;
    let mut compacted: u64 = 0;
    let mut last_progress = (c.rounds, 0u64);
    loop {
        let window = settings.window;
        c.round(Tuning::ROUND, |i, r, counters, now| {
            if i != leader {
                return false;
            }
            let mut any = false;
            while proposed < limit && proposed - counters.applied < window {
                let mut command = vec![0u8; size];
                command[..8].copy_from_slice(&proposed.to_le_bytes());
                if !r.propose(now, command) {
                    break;
                }
                proposed += 1;
                any = true;
            }
            any
        });
        assert!(c.replicas[leader].is_leader(), "{}: the leader lost leadership mid-run", S::NAME);
        let leader_applied = c.counters[leader].applied;
        if start.is_none() && leader_applied >= settings.warmup {
            limit = leader_applied + settings.entries;
            start = Some(Mark {
                applied: leader_applied,
                messages: c.messages,
                bytes: c.bytes,
                writes: c.writes(),
                rounds: c.rounds,
                wall: std::time::Instant::now(),
                cpu: cpu::thread_time(),
            });
        }
        let min_applied = c.min_applied();
        if let Some(m) = &start
            && min_applied >= m.applied + settings.entries
        {
            return Report {
                system: kind,
                settings: settings.clone(),
                entries: settings.entries,
                wall: m.wall.elapsed(),
                cpu: cpu::thread_time().zip(m.cpu).map(|(now, then)| now.saturating_sub(then)),
                messages: c.messages - m.messages,
                // Systems that cannot tell their sizes count nothing: no figure.
                bytes: c.bytes.zip(m.bytes).map(|(now, then)| now - then).filter(|&b| b > 0),
                writes: c.writes() - m.writes,
                rounds: c.rounds - m.rounds,
            };
        }
        if settings.compact_every > 0 && min_applied >= compacted + settings.compact_every {
            compacted = min_applied;
            let index = c.replicas.iter().map(Replica::applied_index).min().unwrap_or(0);
            let now = c.now;
            for r in &mut c.replicas {
                r.compact(now, index);
            }
            for i in 0..c.replicas.len() {
                c.drain(i);
            }
        }
        if min_applied + leader_applied > last_progress.1 {
            last_progress = (c.rounds, min_applied + leader_applied);
        }
        assert!(
            c.rounds - last_progress.0 < 1_000_000,
            "{}: stalled at {} applied on every replica ({} proposed, leader applied {}, {} election rounds)",
            S::NAME,
            min_applied,
            proposed,
            leader_applied,
            election_rounds
        );
    }
}
