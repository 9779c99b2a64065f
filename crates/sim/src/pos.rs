//! Proof of Stake in the simulator: `ballot-pos` validators ([`PosNode`]) on the
//! simulated network, under partitions, loss, duplication, reordering, crashes and
//! restarts, with Byzantine validators holding less than 1/3 of the stake that vote
//! twice per epoch (equivocate) or withhold every block and vote.
//!
//! Checkers:
//! * **finality agreement**: no two checkpoints finalised by correct nodes conflict
//!   (neither descends from the other), at any time;
//! * **no honest slashing**: no correct validator is ever slashed (a validator that
//!   restarts keeps its slashing-protection record, as a host persists it);
//! * **finality liveness**: once the faults stop, every correct node finalises a
//!   checkpoint of an epoch after the healing within [`PosSimConfig::liveness_epochs`].
//!
//! Each checker is a function over plain data, shown to fire on a planted history in the
//! unit tests below. `ballot-sim --algo pos --seeds 300` runs seeds; a failing seed
//! prints the command that replays it.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

use ballot_core::{Instant, NodeId, SeededRng};
use ballot_ledger::{Hash, Keypair};
use ballot_pos::{Checkpoint, ForkChoice, PosMessage, PosNode, PosOutput, PosParams, ValidatorSet, Vote};
use clap::Parser;

use crate::net::{NetConfig, Network};
use crate::queue::EventQueue;
use crate::sweep::{SweepError, SweepSpec, SweepStats, asks_for_algo, print_summary, progress, sweep};

/// How a Byzantine validator misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PosLie {
    /// Every vote it sends goes out with a second, conflicting one for the same epoch.
    Equivocate,
    /// It sends nothing: no block in its slots, no vote.
    Withhold,
}

/// One simulated run.
#[derive(Clone, Debug)]
pub struct PosSimConfig {
    /// The seed of everything random in the run.
    pub seed: u64,
    /// Validators (equal stakes).
    pub nodes: usize,
    /// The Byzantine validators (indexes from 0) and what they do.
    pub liars: Vec<(usize, PosLie)>,
    /// Faults stop (the network heals, every crashed node restarts) at this time.
    pub heal_at: Instant,
    /// The run ends at this time.
    pub end: Instant,
    /// How many epochs after healing every correct node must have finalised a
    /// checkpoint of a later epoch.
    pub liveness_epochs: u64,
    /// The chain's rules.
    pub params: PosParams,
}

/// Slot length and epoch size of simulated chains.
const SLOT: Duration = Duration::from_secs(1);
const SLOTS_PER_EPOCH: u64 = 4;
const CHAIN_ID: u32 = 0x5057;

impl PosSimConfig {
    /// The randomized configuration of `seed` with `nodes` validators: up to the most
    /// liars that hold less than 1/3 of the stake, 40 s of faults, 24 s to settle.
    #[must_use]
    pub fn randomized(seed: u64, nodes: usize) -> Self {
        let mut rng = SeededRng::new(seed ^ 0x9057_5EED);
        let max_liars = nodes.saturating_sub(1) / 3;
        let liars_n = usize::try_from(rng.gen_range(0..max_liars as u64 + 1)).unwrap_or(0);
        let mut liars = Vec::new();
        while liars.len() < liars_n {
            let i = usize::try_from(rng.gen_range(0..nodes as u64)).unwrap_or(0);
            if !liars.iter().any(|(j, _)| *j == i) {
                liars.push((i, if rng.gen_bool(0.5) { PosLie::Equivocate } else { PosLie::Withhold }));
            }
        }
        let validators = ValidatorSet::new((0..nodes).map(|i| (key(i).public(), 32)));
        PosSimConfig {
            seed,
            nodes,
            liars,
            heal_at: Instant::from_millis(40_000),
            end: Instant::from_millis(64_000),
            liveness_epochs: 5,
            params: PosParams {
                chain_id: CHAIN_ID,
                slot_duration: SLOT,
                slots_per_epoch: SLOTS_PER_EPOCH,
                genesis_seed: Hash([u8::try_from(seed % 251).unwrap_or(0); 32]),
                validators,
            },
        }
    }

    fn lie(&self, i: usize) -> Option<PosLie> {
        self.liars.iter().find(|(j, _)| *j == i).map(|(_, l)| *l)
    }
}

fn key(i: usize) -> Keypair {
    Keypair::for_testing(i as u64 + 1)
}

fn id(i: usize) -> NodeId {
    NodeId(i as u64 + 1)
}

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PosViolation {
    /// The checker.
    pub checker: &'static str,
    /// What it saw.
    pub details: String,
    /// The seed and size.
    pub seed: u64,
    /// Validators.
    pub nodes: usize,
    /// Virtual time.
    pub at: Instant,
}

impl fmt::Display for PosViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "VIOLATION of {} (seed {}, {} nodes, at virtual time {:?})",
            self.checker,
            self.seed,
            self.nodes,
            self.at.saturating_duration_since(Instant::ZERO)
        )?;
        writeln!(f, "  {}", self.details)?;
        write!(f, "  replay: cargo xtask sim --algo pos --seed {} --nodes {}", self.seed, self.nodes)
    }
}

/// Why a run did not pass.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PosSimError {
    /// A checker fired.
    #[error("{0}")]
    Violation(Box<PosViolation>),
}

impl SweepError for PosSimError {
    type Violation = PosViolation;
    fn into_violation(self) -> Result<PosViolation, Self> {
        match self {
            PosSimError::Violation(v) => Ok(*v),
        }
    }
}

/// Figures of one or many runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PosStats {
    /// Runs merged.
    pub runs: u64,
    /// Blocks accepted by correct nodes (counted once per block).
    pub blocks: u64,
    /// The finalised epoch each correct node reached, summed.
    pub finalized_epochs: u64,
    /// Slashings seen by correct nodes (once per offender and run).
    pub slashed: u64,
    /// Runs with liars, and liars by behaviour.
    pub liars: BTreeMap<&'static str, u64>,
    /// Messages sent, and lost or cut by the network or a crash.
    pub messages: (u64, u64),
    /// Crashes and restarts.
    pub crashes: u64,
}

impl SweepStats for PosStats {
    fn merge_from(&mut self, o: &Self) {
        self.runs += o.runs;
        self.blocks += o.blocks;
        self.finalized_epochs += o.finalized_epochs;
        self.slashed += o.slashed;
        for (k, v) in &o.liars {
            *self.liars.entry(k).or_insert(0) += v;
        }
        self.messages.0 += o.messages.0;
        self.messages.1 += o.messages.1;
        self.crashes += o.crashes;
    }
}

impl fmt::Display for PosStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "runs:                {}", self.runs)?;
        writeln!(f, "blocks:              {} accepted", self.blocks)?;
        writeln!(f, "finality:            {} finalised epochs over the correct nodes", self.finalized_epochs)?;
        writeln!(f, "liars:               {:?}; {} slashed", self.liars, self.slashed)?;
        writeln!(f, "messages:            {} sent, {} lost or cut", self.messages.0, self.messages.1)?;
        write!(f, "crashes:             {} (each restarted with its slashing-protection record)", self.crashes)
    }
}

// ---- Checkers over plain data. ----

/// Finality agreement: the first pair of finalised checkpoints that conflict.
#[must_use]
pub fn conflicting_finality(tree: &ForkChoice, finalized: &[(usize, Checkpoint)]) -> Option<String> {
    for (i, (n1, c1)) in finalized.iter().enumerate() {
        for (n2, c2) in &finalized[i + 1..] {
            if !tree.descends(&c1.root, &c2.root) && !tree.descends(&c2.root, &c1.root) {
                return Some(format!(
                    "n{} finalised {c1:?} and n{} finalised {c2:?}, on conflicting branches",
                    n1 + 1,
                    n2 + 1
                ));
            }
        }
    }
    None
}

/// Finality liveness: the correct nodes that have not finalised an epoch above `epoch`.
#[must_use]
pub fn stalled(finalized_epochs: &[(usize, u64)], epoch: u64) -> Option<String> {
    let late: Vec<String> =
        finalized_epochs.iter().filter(|(_, e)| *e <= epoch).map(|(n, e)| format!("n{} at epoch {e}", n + 1)).collect();
    (!late.is_empty()).then(|| format!("finality did not pass epoch {epoch}: {}", late.join(", ")))
}

// ---- The run. ----

enum Event {
    Wake(usize),
    Deliver { to: usize, from: usize, message: PosMessage },
    Fault(Fault),
}

#[derive(Clone, Debug)]
enum Fault {
    Partition(Vec<Vec<NodeId>>),
    Heal,
    Weather(NetConfig),
    Crash(usize),
    Restart(usize),
    HealAll,
}

struct Run {
    cfg: PosSimConfig,
    rng: SeededRng,
    net: Network,
    queue: EventQueue<Event>,
    nodes: Vec<Option<PosNode>>,
    /// Each node's slashing-protection record, as its host would persist it.
    attested: Vec<Option<ballot_pos::AttestRecord>>,
    /// Each node's accepted blocks in order, as its host would store them; a restarted
    /// node is given them back.
    stored: Vec<Vec<ballot_pos::Block>>,
    /// Each node's justification proofs, as its host would store them.
    proofs: Vec<Vec<Vec<ballot_pos::SignedVote>>>,
    woken_at: Vec<Option<Instant>>,
    now: Instant,
    /// Every block some node accepted (the checkers' view of the block tree).
    tree: ForkChoice,
    finalized: Vec<(usize, Checkpoint)>,
    slashed: BTreeSet<ballot_ledger::PublicKey>,
    stats: PosStats,
}

impl Run {
    fn new(cfg: PosSimConfig) -> Self {
        let mut rng = SeededRng::new(cfg.seed);
        let nodes = (0..cfg.nodes).map(|i| Some(PosNode::new(cfg.params.clone(), Some(key(i))))).collect();
        let mut queue = EventQueue::new();
        let ids: Vec<NodeId> = (0..cfg.nodes).map(id).collect();
        let mut t = Instant::ZERO;
        let mut down = BTreeSet::new();
        loop {
            t += Duration::from_millis(rng.gen_range(500..4_000));
            if t >= cfg.heal_at {
                break;
            }
            let fault = match rng.gen_range(0..5) {
                0 => {
                    let cut = usize::try_from(rng.gen_range(1..cfg.nodes as u64)).unwrap_or(1);
                    let mut shuffled = ids.clone();
                    for k in (1..shuffled.len()).rev() {
                        shuffled.swap(k, usize::try_from(rng.gen_range(0..k as u64 + 1)).unwrap_or(0));
                    }
                    Fault::Partition(vec![shuffled[..cut].to_vec(), shuffled[cut..].to_vec()])
                }
                1 => Fault::Heal,
                2 => Fault::Weather(NetConfig::stormy(&mut rng)),
                3 => {
                    let i = usize::try_from(rng.gen_range(0..cfg.nodes as u64)).unwrap_or(0);
                    if cfg.lie(i).is_some() || !down.insert(i) {
                        continue;
                    }
                    Fault::Crash(i)
                }
                _ => match down.pop_first() {
                    Some(i) => Fault::Restart(i),
                    None => continue,
                },
            };
            queue.push(t, Event::Fault(fault));
        }
        queue.push(cfg.heal_at, Event::Fault(Fault::HealAll));
        let mut stats = PosStats { runs: 1, ..PosStats::default() };
        for (_, lie) in &cfg.liars {
            *stats.liars.entry(if *lie == PosLie::Equivocate { "equivocate" } else { "withhold" }).or_insert(0) += 1;
        }
        let n = cfg.nodes;
        rng = rng.fork();
        Run {
            net: Network::new(NetConfig::calm()),
            queue,
            nodes,
            attested: vec![None; n],
            stored: vec![Vec::new(); n],
            proofs: vec![Vec::new(); n],
            woken_at: vec![None; n],
            now: Instant::ZERO,
            tree: ForkChoice::new(cfg.params.genesis()),
            finalized: Vec::new(),
            slashed: BTreeSet::new(),
            stats,
            rng,
            cfg,
        }
    }

    fn violation(&self, checker: &'static str, details: String) -> PosSimError {
        PosSimError::Violation(Box::new(PosViolation {
            checker,
            details,
            seed: self.cfg.seed,
            nodes: self.cfg.nodes,
            at: self.now,
        }))
    }

    fn run(mut self) -> Result<PosStats, PosSimError> {
        for i in 0..self.cfg.nodes {
            self.schedule(i);
        }
        let mut liveness_checked = false;
        let deadline = self.cfg.heal_at
            + SLOT.saturating_mul(u32::try_from(self.cfg.liveness_epochs * SLOTS_PER_EPOCH).unwrap_or(u32::MAX));
        while let Some(at) = self.queue.peek_time() {
            if at > self.cfg.end {
                break;
            }
            if !liveness_checked && at > deadline {
                liveness_checked = true;
                self.now = deadline;
                self.check_liveness()?;
            }
            let Some((at, event)) = self.queue.pop() else { break };
            self.now = at;
            match event {
                Event::Wake(i) => {
                    if self.woken_at[i] != Some(at) {
                        continue;
                    }
                    self.woken_at[i] = None;
                    if let Some(node) = self.nodes[i].as_mut() {
                        node.handle_timeout(at);
                    }
                }
                Event::Deliver { to, from, message } => match self.nodes[to].as_mut() {
                    Some(node) => node.handle_message(at, from as u64, message),
                    None => self.stats.messages.1 += 1,
                },
                Event::Fault(f) => self.fault(f),
            }
            for i in 0..self.cfg.nodes {
                self.drain(i)?;
                self.schedule(i);
            }
        }
        if !liveness_checked {
            self.now = deadline;
            self.check_liveness()?;
        }
        for (i, node) in self.nodes.iter().enumerate() {
            if let (Some(n), None) = (node, self.cfg.lie(i)) {
                self.stats.finalized_epochs += n.finalized().epoch;
            }
        }
        Ok(self.stats)
    }

    fn check_liveness(&self) -> Result<(), PosSimError> {
        let heal_epoch = self.cfg.params.epoch(self.cfg.params.slot_at(self.cfg.heal_at));
        let epochs: Vec<(usize, u64)> = (0..self.cfg.nodes)
            .filter(|i| self.cfg.lie(*i).is_none())
            .map(|i| (i, self.nodes[i].as_ref().map_or(0, |n| n.finalized().epoch)))
            .collect();
        match stalled(&epochs, heal_epoch) {
            Some(d) => Err(self.violation("FinalityLiveness", d)),
            None => Ok(()),
        }
    }

    fn schedule(&mut self, i: usize) {
        let Some(t) = self.nodes[i].as_ref().and_then(PosNode::poll_timeout) else { return };
        let t = t.max(self.now);
        if self.woken_at[i] != Some(t) {
            self.woken_at[i] = Some(t);
            self.queue.push(t, Event::Wake(i));
        }
    }

    fn send(&mut self, from: usize, to: usize, message: &PosMessage) {
        self.stats.messages.0 += 1;
        let delays = self.net.route(&mut self.rng, id(from), id(to));
        if delays.is_empty() {
            self.stats.messages.1 += 1;
        }
        for d in delays {
            self.queue.push(self.now + d, Event::Deliver { to, from, message: message.clone() });
        }
    }

    fn broadcast(&mut self, from: usize, message: &PosMessage) {
        for to in 0..self.cfg.nodes {
            if to != from {
                self.send(from, to, message);
            }
        }
    }

    fn drain(&mut self, i: usize) -> Result<(), PosSimError> {
        let lie = self.cfg.lie(i);
        loop {
            let Some(out) = self.nodes[i].as_mut().and_then(PosNode::poll_output) else { return Ok(()) };
            match out {
                PosOutput::Broadcast(m) if lie == Some(PosLie::Withhold) => drop(m),
                PosOutput::Broadcast(PosMessage::Vote(v)) if lie == Some(PosLie::Equivocate) => {
                    self.broadcast(i, &PosMessage::Vote(v));
                    let other = Hash(self.rng.next_u64().to_le_bytes().repeat(4).try_into().unwrap_or([7; 32]));
                    let twin = Vote { head: other, target: Checkpoint { root: other, ..v.vote.target }, ..v.vote };
                    if let Ok(signed) = twin.sign(self.cfg.params.chain_id, &key(i)) {
                        self.broadcast(i, &PosMessage::Vote(signed));
                    }
                }
                PosOutput::Broadcast(m) => self.broadcast(i, &m),
                PosOutput::Send { to, message } if lie != Some(PosLie::Withhold) => {
                    self.send(i, usize::try_from(to).unwrap_or(0), &message);
                }
                PosOutput::Accepted(b) => {
                    let h = b.header.header;
                    if self.tree.add_block(h.hash(self.cfg.params.chain_id), h.parent, h.slot).is_ok() {
                        self.stats.blocks += 1;
                    }
                    self.stored[i].push(*b);
                }
                PosOutput::Justified { proof, .. } => self.proofs[i].push(proof),
                PosOutput::Finalized(c) if lie.is_none() => {
                    self.finalized.push((i, c));
                    if let Some(d) = conflicting_finality(&self.tree, &self.finalized) {
                        return Err(self.violation("FinalityAgreement", d));
                    }
                }
                PosOutput::Slashed(k) if lie.is_none() => {
                    let honest = (0..self.cfg.nodes).find(|j| key(*j).public() == k && self.cfg.lie(*j).is_none());
                    if let Some(j) = honest {
                        return Err(self.violation(
                            "NoHonestSlashing",
                            format!("n{} slashed correct validator n{}", i + 1, j + 1),
                        ));
                    }
                    if self.slashed.insert(k) {
                        self.stats.slashed += 1;
                    }
                }
                _ => {}
            }
        }
    }

    fn fault(&mut self, f: Fault) {
        let ids: Vec<NodeId> = (0..self.cfg.nodes).map(id).collect();
        match f {
            Fault::Partition(groups) => self.net.partition(&ids, &groups),
            Fault::Heal => self.net.heal(),
            Fault::Weather(w) => self.net.set_config(w),
            Fault::Crash(i) => {
                if let Some(n) = self.nodes[i].take() {
                    self.attested[i] = n.last_attested();
                    self.woken_at[i] = None;
                    self.stats.crashes += 1;
                }
            }
            Fault::Restart(i) => self.restart(i),
            Fault::HealAll => {
                self.net.heal();
                self.net.set_config(NetConfig::calm());
                for i in 0..self.cfg.nodes {
                    self.restart(i);
                }
            }
        }
    }

    /// Restarts node `i` from what its host kept: the slashing-protection record, the
    /// blocks it had accepted and its justification proofs, replayed in order (they are
    /// stored again as the node accepts them anew).
    fn restart(&mut self, i: usize) {
        if self.nodes[i].is_none() {
            let mut node = PosNode::new(self.cfg.params.clone(), Some(key(i)));
            node.restore_attested(self.attested[i]);
            for block in std::mem::take(&mut self.stored[i]) {
                node.handle_message(self.now, i as u64, PosMessage::Block(Box::new(block)));
            }
            for proof in std::mem::take(&mut self.proofs[i]) {
                node.handle_message(self.now, i as u64, PosMessage::Proof(proof));
            }
            self.nodes[i] = Some(node);
        }
    }
}

/// Runs one configuration to the end with every checker.
///
/// # Errors
/// [`PosSimError::Violation`] when a checker fires.
pub fn run_pos(cfg: PosSimConfig) -> Result<PosStats, PosSimError> {
    Run::new(cfg).run()
}

/// What identifies a randomized run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PosRunSpec {
    /// The seed.
    pub seed: u64,
    /// Validators.
    pub nodes: usize,
}

impl SweepSpec for PosRunSpec {
    fn seed(&self) -> u64 {
        self.seed
    }
    fn nodes(&self) -> usize {
        self.nodes
    }
}

/// Runs every spec on `threads` threads.
pub fn run_pos_many(
    specs: &[PosRunSpec],
    threads: usize,
    on_done: &(dyn Fn(&PosRunSpec, &Result<PosStats, PosSimError>) + Sync),
) -> crate::Sweep<PosRunSpec, PosStats, PosSimError> {
    sweep(specs, threads, |s| run_pos(PosSimConfig::randomized(s.seed, s.nodes)), on_done)
}

/// `ballot-sim --algo pos`: Proof-of-Stake validators under faults, with Byzantine
/// validators below 1/3 of the stake.
#[derive(Parser, Debug)]
#[command(name = "ballot-sim --algo pos")]
struct PosArgs {
    /// `pos`.
    #[arg(long)]
    algo: String,
    /// How many seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    start: u64,
    /// One seed (replay).
    #[arg(long)]
    seed: Option<u64>,
    /// Validators: a number (4 to 64) or `both` for 4 and 7.
    #[arg(long, default_value = "both")]
    nodes: String,
    /// Worker threads (default: the number of CPUs).
    #[arg(long)]
    threads: Option<usize>,
}

/// Whether the command line asks for the PoS simulator.
pub fn is_pos(args: impl IntoIterator<Item = OsString>) -> bool {
    asks_for_algo(args, "pos")
}

/// Runs the command line; returns the exit status (0: every run passed, 1: a
/// violation, 2: bad arguments).
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let args = match PosArgs::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let sizes: Vec<usize> = match args.nodes.as_str() {
        "both" => vec![4, 7],
        n => match n.parse::<usize>() {
            Ok(n) if (4..=64).contains(&n) => vec![n],
            _ => {
                eprintln!("--nodes {n:?}: expected 4 to 64 validators, or `both`");
                return 2;
            }
        },
    };
    let seeds: Vec<u64> = match args.seed {
        Some(s) => vec![s],
        None => (args.start..args.start.saturating_add(args.seeds)).collect(),
    };
    let specs: Vec<PosRunSpec> =
        seeds.iter().flat_map(|&seed| sizes.iter().map(move |&nodes| PosRunSpec { seed, nodes })).collect();
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    eprintln!(
        "ballot-sim: {} run(s) of pos ({} seed(s) x {:?} nodes) on {threads} thread(s)",
        specs.len(),
        seeds.len(),
        sizes
    );
    let summary = run_pos_many(&specs, threads, &progress(specs.len()));
    i32::from(!print_summary(&summary, seeds.len(), &sizes, specs.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agreement_checker_fires_on_conflicting_finalised_checkpoints() {
        let h = |n: u8| Hash([n; 32]);
        // 0 <- 1 <- 2 and 0 <- 3
        let mut tree = ForkChoice::new(h(0));
        for (block, parent, slot) in [(1, 0, 1), (2, 1, 2), (3, 0, 1)] {
            tree.add_block(h(block), h(parent), slot).expect("a tree");
        }
        let cp = |epoch, n| Checkpoint { epoch, root: h(n) };
        assert_eq!(conflicting_finality(&tree, &[(0, cp(1, 1)), (1, cp(2, 2))]), None, "one chain");
        let planted = conflicting_finality(&tree, &[(0, cp(1, 1)), (1, cp(2, 2)), (2, cp(1, 3))]);
        assert!(planted.is_some_and(|d| d.contains("n1") && d.contains("n3")), "a fork");
    }

    #[test]
    fn the_liveness_checker_fires_on_a_node_that_did_not_pass_the_epoch() {
        assert_eq!(stalled(&[(0, 12), (1, 11)], 10), None);
        assert_eq!(stalled(&[(0, 12), (1, 10)], 10), Some("finality did not pass epoch 10: n2 at epoch 10".into()));
    }

    #[test]
    fn runs_replay_identically() {
        // Seed 1 on 7 validators has blocks waiting for their parents and proofs asked
        // for: what a node iterates over there must not depend on hashing order.
        for (seed, nodes) in [(5, 4), (1, 7), (2, 7)] {
            let a = run_pos(PosSimConfig::randomized(seed, nodes));
            let b = run_pos(PosSimConfig::randomized(seed, nodes));
            assert_eq!(a, b, "seed {seed}, {nodes} nodes");
            assert!(a.expect("the seed passes").finalized_epochs > 0);
        }
    }
}
