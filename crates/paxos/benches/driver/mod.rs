//! A minimal in-memory driver for throughput measurements, generic over any
//! `ballot_core::Protocol`: a perfect network (every message delivered in order), an
//! instant disk that group-commits whatever a node wrote during one step, and clients
//! that keep `window` proposals outstanding at the leader.

use std::collections::VecDeque;
use std::time::Duration;

use ballot_core::{Apply, Instant, NodeId, Output, PersistId, ProposalId, ProposeError, Protocol, Role};
use bytes::Bytes;

/// What one run measured.
#[derive(Debug)]
pub struct Report {
    /// Commands the leader saw applied (its own proposals).
    pub committed: u64,
    /// Wall-clock time of the measured phase.
    pub elapsed: Duration,
    /// Messages delivered.
    pub messages: u64,
    /// Write batches (one per node per step at most: group commit).
    pub syncs: u64,
}

impl Report {
    /// Committed commands per second.
    pub fn rate(&self) -> f64 {
        self.committed as f64 / self.elapsed.as_secs_f64()
    }
}

struct Node<P: Protocol> {
    p: P,
    inbox: VecDeque<(NodeId, P::Message)>,
}

/// Drains `nodes[i]`, acknowledging its writes once per call; returns commands applied
/// with a proposal id.
fn pump<P: Protocol>(nodes: &mut [Node<P>], i: usize, now: Instant, messages: &mut u64, syncs: &mut u64) -> u64 {
    let mut mine = 0;
    loop {
        let mut last: Option<PersistId> = None;
        while let Some(out) = nodes[i].p.poll_output() {
            match out {
                Output::Send { to, message } => {
                    let from = nodes[i].p.id();
                    *messages += 1;
                    nodes[to.0 as usize - 1].inbox.push_back((from, message));
                }
                Output::Persist(b) => last = Some(b.id),
                Output::Apply(Apply::Command { proposal: Some(_), .. }) => mine += 1,
                _ => {}
            }
        }
        match last {
            Some(id) => {
                *syncs += 1;
                nodes[i].p.persisted(now, id);
            }
            None => return mine,
        }
    }
}

/// Elects a leader, then commits `total` commands of `size` bytes through it with
/// `window` outstanding.
pub fn run<P: Protocol>(nodes: Vec<P>, total: u64, window: u64, size: usize) -> Report {
    let mut nodes: Vec<Node<P>> = nodes.into_iter().map(|p| Node { p, inbox: VecDeque::new() }).collect();
    let (mut messages, mut syncs) = (0, 0);
    let mut now = Instant::ZERO;
    // Elect: jump from timer to timer, delivering everything in between.
    let leader = loop {
        if let Some(l) = nodes.iter().position(|n| n.p.status().role == Role::Leader) {
            break l;
        }
        now = nodes.iter().filter_map(|n| n.p.poll_timeout()).min().expect("timers").max(now);
        for i in 0..nodes.len() {
            if nodes[i].p.poll_timeout().is_some_and(|t| t <= now) {
                nodes[i].p.handle_timeout(now);
            }
            pump(&mut nodes, i, now, &mut messages, &mut syncs);
        }
        for _ in 0..100 {
            for i in 0..nodes.len() {
                while let Some((from, m)) = nodes[i].inbox.pop_front() {
                    nodes[i].p.handle_message(now, from, m);
                }
                pump(&mut nodes, i, now, &mut messages, &mut syncs);
            }
        }
    };
    let command = Bytes::from(vec![7u8; size]);
    let (mut proposed, mut committed) = (0u64, 0u64);
    let (messages0, syncs0) = (messages, syncs);
    let start = std::time::Instant::now();
    while committed < total {
        while proposed < total && proposed - committed < window {
            match nodes[leader].p.propose(now, ProposalId(proposed), command.clone()) {
                Ok(()) => proposed += 1,
                Err(ProposeError::Busy) => break,
                Err(e) => panic!("leader refused: {e}"),
            }
        }
        for i in 0..nodes.len() {
            while let Some((from, m)) = nodes[i].inbox.pop_front() {
                nodes[i].p.handle_message(now, from, m);
            }
            let mine = pump(&mut nodes, i, now, &mut messages, &mut syncs);
            if i == leader {
                committed += mine;
            }
        }
        // Virtual time creeps forward (timers stay quiet: no elections mid-run).
        now += Duration::from_micros(1);
        assert_eq!(nodes[leader].p.status().role, Role::Leader, "leadership lost mid-run");
    }
    Report { committed, elapsed: start.elapsed(), messages: messages - messages0, syncs: syncs - syncs0 }
}
