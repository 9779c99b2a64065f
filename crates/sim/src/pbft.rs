//! PBFT in the simulator: [`PbftAlgorithm`] runs [`ballot_pbft::Pbft`] behind the real
//! replica host and service, with up to f **Byzantine** replicas per run (3f+1 nodes).
//!
//! A Byzantine node runs an honest `Pbft` core; the simulator hands every message the
//! core sends to [`Algorithm::byzantine_send`], which rewrites, drops, delays, duplicates
//! or adds messages with [`ballot_pbft::byzantine::Forge`] (the liar's own key only).
//! Which nodes lie is drawn per seed in [`Algorithm::shape_run`]
//! ([`SimConfig::byzantine`]); what they do is drawn per seed in [`Algorithm::vary`]: each
//! [`Behaviour`] is its own option. Checkers judge correct replicas only.
//!
//! Client requests are "signed" through a registry of the commands the simulated clients
//! issued ([`ClientSignatures`]): the replicas' [`RequestAuth`] accepts exactly those, as
//! an unforgeable signature would.
//!
//! PBFT's own checkers, besides the generic agreement, validity, linearizability and
//! liveness ones:
//!
//! * [`SequenceAgreement`]: no two correct replicas commit different batches at one
//!   sequence number;
//! * [`ClientSigned`]: every command a correct replica executes carries a client's
//!   signature;
//! * [`RequestProgress`]: once faults have healed, a correct replica with pending requests
//!   executes something within the liveness bound.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ballot_core::{Apply, Instant, Membership, NodeId, Recovered, SeededRng};
use ballot_pbft::byzantine::Forge;
use ballot_pbft::insecure::{HashSigner, HashVerifier};
use ballot_pbft::{AgreedClock, Config, Crypto, Digest, Entry, HardState, Item, Message, Pbft, RequestAuth, sha256};
use bytes::Bytes;

use crate::algorithm::{Algorithm, MessageOf, pick};
use crate::checker::{Checker, Observation};
use crate::faults::Fault;
use crate::sim::SimConfig;

/// One kind of lie, each its own option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Behaviour {
    /// As primary, sends PRE-PREPAREs with a different batch to every other backup.
    Equivocate,
    /// As primary, sends nothing at all.
    SilentPrimary,
    /// As primary, delays every message by a per-seed amount.
    SlowPrimary,
    /// PREPAREs and COMMITs with wrong digests.
    WrongDigest,
    /// PREPAREs/COMMITs for batches that do not exist, and (as primary) PRE-PREPAREs
    /// with a request no client signed.
    PhantomRequest,
    /// Copies of its PREPAREs, CHECKPOINTs and VIEW-CHANGEs that claim another replica
    /// signed them.
    Impersonate,
    /// Replays its own messages of earlier views.
    Replay,
    /// As new primary, a NEW-VIEW whose O set is wrong.
    WrongNewView,
    /// CHECKPOINTs with wrong state digests.
    WrongCheckpoint,
    /// Answers clients with wrong results.
    WrongReplies,
    /// As primary with an agreed clock, PRE-PREPAREs whose time is a minute ahead of or
    /// behind its clock.
    WrongTime,
}

impl Behaviour {
    /// Every behaviour.
    pub const ALL: [Behaviour; 11] = [
        Behaviour::Equivocate,
        Behaviour::SilentPrimary,
        Behaviour::SlowPrimary,
        Behaviour::WrongDigest,
        Behaviour::PhantomRequest,
        Behaviour::Impersonate,
        Behaviour::Replay,
        Behaviour::WrongNewView,
        Behaviour::WrongCheckpoint,
        Behaviour::WrongReplies,
        Behaviour::WrongTime,
    ];

    /// The name counted in [`RunStats::byzantine`](crate::RunStats::byzantine).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Behaviour::Equivocate => "equivocation",
            Behaviour::SilentPrimary => "silent primary",
            Behaviour::SlowPrimary => "slow primary",
            Behaviour::WrongDigest => "wrong digest",
            Behaviour::PhantomRequest => "phantom request",
            Behaviour::Impersonate => "impersonation",
            Behaviour::Replay => "old-view replay",
            Behaviour::WrongNewView => "wrong new-view",
            Behaviour::WrongCheckpoint => "wrong checkpoint",
            Behaviour::WrongReplies => "wrong reply",
            Behaviour::WrongTime => "wrong time",
        }
    }
}

/// What one liar does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Its behaviours.
    pub behaviours: BTreeSet<Behaviour>,
    /// With [`Behaviour::SlowPrimary`]: the delay of its messages.
    pub slow_by: Duration,
}

impl Plan {
    /// A plan with these behaviours (a slow primary is 1.5 s late).
    #[must_use]
    pub fn of(behaviours: &[Behaviour]) -> Self {
        Plan { behaviours: behaviours.iter().copied().collect(), slow_by: Duration::from_millis(1_500) }
    }

    fn has(&self, b: Behaviour) -> bool {
        self.behaviours.contains(&b)
    }
}

/// The commands simulated clients signed: what [`RequestAuth`] accepts.
#[derive(Clone, Debug, Default)]
pub struct ClientSignatures {
    signed: Arc<Mutex<HashSet<Digest>>>,
    /// A planted bug: accept every command (for the checker tests).
    trust_all: bool,
}

impl ClientSignatures {
    /// Records that a client signed `command`.
    pub fn sign(&self, command: &[u8]) {
        self.signed.lock().unwrap_or_else(PoisonError::into_inner).insert(sha256(command));
    }

    /// Whether a client signed `command`.
    #[must_use]
    pub fn is_signed(&self, command: &[u8]) -> bool {
        self.signed.lock().unwrap_or_else(PoisonError::into_inner).contains(&sha256(command))
    }
}

impl RequestAuth for ClientSignatures {
    fn verify(&self, command: &[u8]) -> bool {
        self.trust_all || self.is_signed(command)
    }
}

/// Runs [`ballot_pbft::Pbft`] in the simulator with Byzantine replicas.
///
/// By default each run draws its settings (batch size, checkpoint interval K, window
/// L, in-flight batches, request timeout, status interval, read mode), its liars (up
/// to f, see [`shape_run`](Algorithm::shape_run)) and their behaviours from the seed.
#[derive(Clone, Debug)]
pub struct PbftAlgorithm {
    template: Config,
    vary: bool,
    /// Liars per run: `None` draws 0..=f per seed (mostly at least one).
    liars: Option<usize>,
    /// Behaviours by liar (liar `n` follows `plans[n % len]`); drawn per seed unless fixed.
    plans: Vec<Plan>,
    fixed_plans: bool,
    signatures: ClientSignatures,
    /// Each liar's messages of earlier views, for replays: (view, message).
    sent: HashMap<NodeId, Vec<(u64, Message)>>,
    /// Drawn per seed: how the replicas' clocks differ (see [`clock_offset_ms`]).
    clock_seed: u64,
    /// Drawn per seed: the agreed clock's settings, used when the clock is on.
    clock_draw: AgreedClock,
}

/// The Unix time (ms) of the simulation's `Instant::ZERO`, for agreed clocks.
pub const SIM_EPOCH_MS: u64 = 1_800_000_000_000;

/// How far replica `id`'s clock is off the true time: within a quarter of `max_skew`
/// either way, fixed per replica and seed (a restart keeps its clock).
#[must_use]
pub fn clock_offset_ms(clock_seed: u64, id: NodeId, max_skew: Duration) -> i64 {
    let range = i64::try_from(max_skew.as_millis() / 2).unwrap_or(0).max(1);
    let h = (clock_seed ^ id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    i64::try_from(h % range.unsigned_abs()).unwrap_or(0) - range / 2
}

impl Default for PbftAlgorithm {
    fn default() -> Self {
        PbftAlgorithm {
            template: Config::new(NodeId(1)),
            vary: true,
            liars: None,
            plans: Vec::new(),
            fixed_plans: false,
            signatures: ClientSignatures::default(),
            sent: HashMap::new(),
            clock_seed: 0,
            clock_draw: AgreedClock::new(SIM_EPOCH_MS),
        }
    }
}

impl PbftAlgorithm {
    /// No liars: every replica is correct.
    #[must_use]
    pub fn honest() -> Self {
        PbftAlgorithm { liars: Some(0), ..Self::default() }
    }

    /// `liars` Byzantine replicas (at most f) per run, each following `plan`.
    #[must_use]
    pub fn with_liars(liars: usize, plan: Plan) -> Self {
        PbftAlgorithm { liars: Some(liars), plans: vec![plan], fixed_plans: true, ..Self::default() }
    }

    /// A planted bug for the checker tests: replicas accept requests no client signed.
    #[must_use]
    pub fn trusting_unsigned_requests(mut self) -> Self {
        self.signatures.trust_all = true;
        self
    }

    /// The settings in force (after [`Algorithm::vary`]).
    #[must_use]
    pub fn template(&self) -> &Config {
        &self.template
    }

    /// The liars' plans in force.
    #[must_use]
    pub fn plans(&self) -> &[Plan] {
        &self.plans
    }

    fn plan(&self, liar: NodeId) -> Option<&Plan> {
        let n = self.plans.len();
        (n > 0).then(|| &self.plans[usize::try_from(liar.0).unwrap_or(0) % n])
    }

    /// A replica's authentication: the insecure test signer (keys derive from ids) and
    /// the clients' signature registry.
    fn crypto(&self, id: NodeId) -> Crypto {
        Crypto {
            signer: Arc::new(HashSigner(id)),
            verifier: Arc::new(HashVerifier),
            requests: Arc::new(self.signatures.clone()),
        }
    }

    /// The checkers of PBFT's own invariants.
    #[must_use]
    pub fn pbft_checkers(&self, config: &SimConfig) -> Vec<Box<dyn Checker<Pbft>>> {
        let mut checkers: Vec<Box<dyn Checker<Pbft>>> = vec![
            Box::new(SequenceAgreement::default()),
            Box::new(ClientSigned::new(&self.signatures)),
            Box::new(RequestProgress::new(config.liveness_bound)),
        ];
        if let Some(clock) = self.template.clock {
            // The correct clocks are at most a quarter of max_skew ahead of the truth.
            checkers.push(Box::new(TimeBound::new(SIM_EPOCH_MS, clock.max_skew + clock.max_skew / 4)));
        }
        checkers
    }
}

/// The view a PBFT message belongs to, if any.
fn view_of(m: &Message) -> Option<u64> {
    match m {
        Message::PrePrepare { pre_prepare, .. } => Some(pre_prepare.body.view),
        Message::Prepare(p) => Some(p.body.view),
        Message::Commit { view, .. } => Some(*view),
        Message::ViewChange(v) => Some(v.body.view),
        Message::NewView(v) => Some(v.body.view),
        _ => None,
    }
}

fn random_digest(rng: &mut SeededRng) -> Digest {
    sha256(&rng.next_u64().to_le_bytes())
}

impl Algorithm for PbftAlgorithm {
    type Protocol = Pbft;
    type BuildError = ballot_pbft::PbftError;

    fn name(&self) -> &'static str {
        "pbft"
    }

    fn vary(&mut self, rng: &mut SeededRng) {
        if self.vary {
            let c = &mut self.template;
            c.max_batch = pick(rng, &[1, 4, 64]);
            c.max_inflight = pick(rng, &[1, 2, 8]);
            c.checkpoint_interval = pick(rng, &[2, 4, 16, 64]);
            c.log_window = c.checkpoint_interval * pick(rng, &[2, 3, 4]);
            let (timeout, status) = pick(rng, &[(300, 30), (600, 50), (1_000, 100)]);
            c.request_timeout = Duration::from_millis(timeout);
            c.status_interval = Duration::from_millis(status);
            c.read_mode = if rng.gen_bool(0.8) { ballot_pbft::ReadMode::Fast } else { ballot_pbft::ReadMode::Ordered };
        }
        // Agreed time and its lie came later: they are drawn from a generator of their
        // own, leaving the run's untouched, so that a seed with the clock off runs as it
        // did before they existed (replay commands in notes and docs stay valid).
        let (older, time_lie) = Behaviour::ALL.split_at(Behaviour::ALL.len() - 1);
        let mut later = SeededRng::new(rng.clone().next_u64() ^ 0xC10C_A9EE_D71E_0001);
        if !self.fixed_plans {
            self.plans = (0..2)
                .map(|_| {
                    let mut behaviours: BTreeSet<Behaviour> =
                        older.iter().copied().filter(|_| rng.gen_bool(0.35)).collect();
                    if behaviours.is_empty() {
                        behaviours.insert(pick(rng, older));
                    }
                    let slow_by = self.template.request_timeout.mul_f64(pick(rng, &[0.5, 1.5, 3.0]));
                    Plan { behaviours, slow_by }
                })
                .collect();
        }
        let rng = &mut later;
        if self.vary {
            self.clock_draw = AgreedClock {
                unix_ms_at_zero: SIM_EPOCH_MS,
                max_skew: Duration::from_millis(pick(rng, &[100, 200])),
                heartbeat: Duration::from_millis(pick(rng, &[100, 500])),
            };
            self.template.clock = rng.gen_bool(0.5).then_some(self.clock_draw);
            self.clock_seed = rng.next_u64();
        }
        if !self.fixed_plans {
            for plan in &mut self.plans {
                if rng.gen_bool(0.35) {
                    plan.behaviours.extend(time_lie);
                }
            }
        }
    }

    /// The election service's leases: the clock is always on. A lying primary moves
    /// agreed time up to max_skew ahead of a correct clock, or times a keep-alive up to
    /// max_skew plus the request timeout late, and the correct clocks differ by up to
    /// half of max_skew: a lease may end 2.5 max_skew plus the request timeout early.
    fn agreed_time_needed(&mut self) -> Duration {
        let clock = *self.template.clock.get_or_insert(self.clock_draw);
        clock.max_skew * 5 / 2 + self.template.request_timeout
    }

    fn settings(&self) -> String {
        let c = &self.template;
        let plans: Vec<String> =
            self.plans.iter().map(|p| p.behaviours.iter().map(|b| b.name()).collect::<Vec<_>>().join("+")).collect();
        let clock = c
            .clock
            .map_or_else(|| "off".to_owned(), |k| format!("max skew {:?}, heartbeat {:?}", k.max_skew, k.heartbeat));
        format!(
            "batch {}, inflight {}, K {}, L {}, request timeout {:?}, status {:?}, reads {:?}, clock {clock}, \
             liar plans [{}]",
            c.max_batch,
            c.max_inflight,
            c.checkpoint_interval,
            c.log_window,
            c.request_timeout,
            c.status_interval,
            c.read_mode,
            plans.join("; ")
        )
    }

    /// Picks the liars (0 to f, mostly at least one) and keeps the other faults within
    /// the budget: a replica whose disk is corrupted (it refuses to start) is faulty too,
    /// so corruptions strike at most f - liars correct replicas. Client calls get more
    /// time: a view change with back-off takes several request timeouts.
    fn shape_run(&self, config: &mut SimConfig) {
        let mut rng = SeededRng::new(config.seed ^ 0xB12A_4711_7E57_0F00);
        let n = config.nodes;
        let f = n.saturating_sub(1) / 3;
        let liars = match self.liars {
            Some(l) => l.min(f),
            None if f == 0 || rng.gen_bool(0.1) => 0,
            None => usize::try_from(rng.gen_range(1..f as u64 + 1)).unwrap_or(1),
        };
        let mut ids: Vec<NodeId> = (1..=n as u64).map(NodeId).collect();
        for i in (1..ids.len()).rev() {
            let j = usize::try_from(rng.gen_range(0..i as u64 + 1)).unwrap_or(0);
            ids.swap(i, j);
        }
        ids.truncate(liars);
        ids.sort_unstable();
        config.byzantine = ids;
        let mut corrupted: BTreeSet<NodeId> = BTreeSet::new();
        let budget = f - liars;
        let byzantine = config.byzantine.clone();
        config.faults.actions.retain(|(_, fault)| match fault {
            Fault::CorruptDisk(id) if !byzantine.contains(id) => {
                if corrupted.contains(id) || corrupted.len() < budget {
                    corrupted.insert(*id);
                    true
                } else {
                    false
                }
            }
            _ => true,
        });
        config.clients.op_timeout = config.clients.op_timeout.max(Duration::from_secs(4));
    }

    /// PBFT's primary is not a leader every replica must recognize: liveness is progress
    /// (requests complete), and a correct replica may sit in a view of its own for a while.
    fn elects_leader(&self) -> bool {
        false
    }

    fn build(
        &self,
        id: NodeId,
        initial: &Membership,
        recovered: Recovered<Entry, HardState>,
        _rng: SeededRng,
        now: Instant,
    ) -> Result<Pbft, ballot_pbft::PbftError> {
        let mut config = Config { id, ..self.template.clone() };
        if let Some(clock) = &mut config.clock {
            let offset = clock_offset_ms(self.clock_seed, id, clock.max_skew);
            clock.unix_ms_at_zero = SIM_EPOCH_MS.saturating_add_signed(offset);
        }
        Pbft::new(config, initial.clone(), recovered, self.crypto(id), now)
    }

    fn checkers(&self, config: &SimConfig) -> Vec<Box<dyn Checker<Pbft>>> {
        self.pbft_checkers(config)
    }

    fn client_signed(&mut self, command: &Bytes) {
        self.signatures.sign(command);
    }

    fn refused_messages(&self, replica: &Pbft) -> u64 {
        replica.rejected()
    }

    fn lies_to_clients(&self, node: NodeId) -> bool {
        self.plan(node).is_some_and(|p| p.has(Behaviour::WrongReplies))
    }

    fn byzantine_send(
        &mut self,
        core: &Pbft,
        from: NodeId,
        to: NodeId,
        message: MessageOf<Self>,
        _now: Instant,
        rng: &mut SeededRng,
        acts: &mut Vec<&'static str>,
    ) -> Vec<(NodeId, Message, Duration)> {
        let Some(plan) = self.plan(from).cloned() else { return vec![(to, message, Duration::ZERO)] };
        let forge = Forge::new(from, Arc::new(HashSigner(from)));
        let primary = core.is_primary() && core.is_active();
        let view = core.view();
        let mut act = |b: Behaviour| acts.push(b.name());
        let mut out: Vec<(NodeId, Message, Duration)> = Vec::new();
        // Replays: its own messages of views before the current one.
        if plan.has(Behaviour::Replay) {
            let sent = self.sent.entry(from).or_default();
            if let Some(v) = view_of(&message) {
                if sent.len() >= 256 {
                    sent.remove(usize::try_from(rng.gen_range(0..256)).unwrap_or(0));
                }
                sent.push((v, message.clone()));
            }
            let old: Vec<&Message> = sent.iter().filter(|(v, _)| *v < view).map(|(_, m)| m).collect();
            if !old.is_empty() && rng.gen_bool(0.2) {
                let m = old[usize::try_from(rng.gen_range(0..old.len() as u64)).unwrap_or(0)].clone();
                act(Behaviour::Replay);
                out.push((to, m, Duration::ZERO));
            }
        }
        if primary && plan.has(Behaviour::SilentPrimary) {
            act(Behaviour::SilentPrimary);
            return out;
        }
        let delay = if primary && plan.has(Behaviour::SlowPrimary) {
            act(Behaviour::SlowPrimary);
            plan.slow_by
        } else {
            Duration::ZERO
        };
        // Forged copies: another replica's name over the liar's signature.
        if plan.has(Behaviour::Impersonate) {
            let others: Vec<NodeId> =
                core.status_membership().voters.iter().copied().filter(|&m| m != from && m != to).collect();
            if !others.is_empty() {
                let claimed = others[usize::try_from(rng.gen_range(0..others.len() as u64)).unwrap_or(0)];
                let forged = match &message {
                    Message::Prepare(p) => Some(Message::Prepare(forge.impersonate(claimed, p.body))),
                    Message::Checkpoint(c) => Some(Message::Checkpoint(forge.impersonate(claimed, c.body))),
                    Message::ViewChange(v) => Some(Message::ViewChange(forge.impersonate(claimed, v.body.clone()))),
                    _ => None,
                };
                if let Some(m) = forged {
                    act(Behaviour::Impersonate);
                    out.push((to, m, delay));
                }
            }
        }
        let message = match message {
            Message::PrePrepare { pre_prepare, mut batch } if plan.has(Behaviour::PhantomRequest) => {
                // A request no client signed, slipped into the batch.
                act(Behaviour::PhantomRequest);
                batch.push(Forge::bogus_request(b"a request no client signed"));
                forge.resign(&Message::PrePrepare { pre_prepare, batch })
            }
            Message::PrePrepare { pre_prepare, mut batch }
                if plan.has(Behaviour::WrongTime) && matches!(batch.first(), Some(Item::Time(_))) =>
            {
                act(Behaviour::WrongTime);
                if let Some(Item::Time(t)) = batch.first_mut() {
                    *t = if rng.gen_bool(0.5) { t.saturating_add(60_000) } else { t.saturating_sub(60_000) };
                }
                forge.resign(&Message::PrePrepare { pre_prepare, batch })
            }
            Message::PrePrepare { pre_prepare, mut batch }
                if plan.has(Behaviour::Equivocate) && to.0.is_multiple_of(2) =>
            {
                act(Behaviour::Equivocate);
                batch.push(Item::Barrier { replica: from, nonce: rng.next_u64() });
                forge.resign(&Message::PrePrepare { pre_prepare, batch })
            }
            Message::Prepare(p) if plan.has(Behaviour::WrongDigest) && rng.gen_bool(0.5) => {
                act(Behaviour::WrongDigest);
                forge.prepare(p.body.view, p.body.seq, random_digest(rng))
            }
            Message::Commit { view, seq, .. } if plan.has(Behaviour::WrongDigest) && rng.gen_bool(0.5) => {
                act(Behaviour::WrongDigest);
                Forge::commit(view, seq, random_digest(rng))
            }
            Message::Checkpoint(c) if plan.has(Behaviour::WrongCheckpoint) => {
                act(Behaviour::WrongCheckpoint);
                forge.checkpoint(c.body.seq, c.body.index, random_digest(rng))
            }
            Message::NewView(nv) if plan.has(Behaviour::WrongNewView) => {
                act(Behaviour::WrongNewView);
                let mut o = Forge::honest_o(&nv.body.view_changes);
                match rng.gen_range(0..3) {
                    0 if !o.is_empty() => {
                        let i = usize::try_from(rng.gen_range(0..o.len() as u64)).unwrap_or(0);
                        o[i].1 = random_digest(rng);
                    }
                    1 if !o.is_empty() => {
                        o.pop();
                    }
                    _ => {
                        let next = o
                            .last()
                            .map_or_else(|| nv.body.view_changes.first().map_or(0, |v| v.body.stable.seq), |x| x.0)
                            + 1;
                        o.push((next, random_digest(rng)));
                    }
                }
                forge.new_view(nv.body.view, nv.body.view_changes, &o)
            }
            other => other,
        };
        // Votes for batches that do not exist, a little ahead of the real ones.
        if plan.has(Behaviour::PhantomRequest)
            && let Message::Prepare(p) = &message
        {
            let seq = p.body.seq + 1 + rng.gen_range(0..3);
            let digest = random_digest(rng);
            act(Behaviour::PhantomRequest);
            out.push((to, forge.prepare(p.body.view, seq, digest), delay));
            out.push((to, Forge::commit(p.body.view, seq, digest), delay));
        }
        out.push((to, message, delay));
        out
    }
}

/// Membership access for the adapter (the protocol's status carries it).
trait StatusMembership {
    fn status_membership(&self) -> Membership;
}

impl StatusMembership for Pbft {
    fn status_membership(&self) -> Membership {
        ballot_core::Protocol::status(self).membership
    }
}

/// What the PBFT checkers read from a replica.
pub trait PbftView {
    /// The highest sequence number it executed.
    fn executed_seq(&self) -> u64;
    /// Its stable checkpoint's sequence number (the log at and below it is gone).
    fn stable_seq(&self) -> u64;
    /// The digest of the batch it committed at `seq`, while it holds it.
    fn committed_digest(&self, seq: u64) -> Option<Digest>;
    /// Client requests it holds that have not executed.
    fn pending_requests(&self) -> usize;
}

impl PbftView for Pbft {
    fn executed_seq(&self) -> u64 {
        Pbft::executed_seq(self)
    }
    fn stable_seq(&self) -> u64 {
        self.stable_checkpoint().seq
    }
    fn committed_digest(&self, seq: u64) -> Option<Digest> {
        Pbft::committed_digest(self, seq)
    }
    fn pending_requests(&self) -> usize {
        Pbft::pending_requests(self)
    }
}

/// **Agreement on sequence numbers**: no two correct replicas commit (and so execute)
/// different batches at one sequence number — checked on every correct replica after
/// each of its steps, for every executed sequence number it still holds.
#[derive(Debug, Default)]
pub struct SequenceAgreement {
    // seq -> (digest, first replica that committed it)
    seen: BTreeMap<u64, (Digest, NodeId)>,
}

impl<N: PbftView> Checker<N> for SequenceAgreement {
    fn name(&self) -> &'static str {
        "SequenceAgreement"
    }

    fn check(&mut self, obs: &Observation<'_, N>) -> Result<(), String> {
        let Some((view, replica)) = obs.stepped() else { return Ok(()) };
        let id = view.id;
        for seq in replica.stable_seq() + 1..=replica.executed_seq() {
            let Some(digest) = replica.committed_digest(seq) else { continue };
            match self.seen.get(&seq) {
                None => {
                    self.seen.insert(seq, (digest, id));
                }
                Some(&(d, by)) if d != digest => {
                    return Err(format!(
                        "{id} committed batch {digest:?} at sequence number {seq}, but {by} committed {d:?} there"
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// **Validity (client signatures)**: every command a correct replica executes carries a
/// valid client signature — a primary cannot invent or alter a request.
#[derive(Debug)]
pub struct ClientSigned {
    signatures: ClientSignatures,
}

impl ClientSigned {
    /// A checker against `signatures` (the commands clients signed).
    #[must_use]
    pub fn new(signatures: &ClientSignatures) -> Self {
        ClientSigned { signatures: ClientSignatures { trust_all: false, ..signatures.clone() } }
    }
}

impl<N> Checker<N> for ClientSigned {
    fn name(&self) -> &'static str {
        "ClientSigned"
    }

    fn check(&mut self, obs: &Observation<'_, N>) -> Result<(), String> {
        let Some(node) = obs.node else { return Ok(()) };
        for item in obs.applied {
            if let Apply::Command { index, command, .. } = &item.apply
                && !self.signatures.is_signed(command)
            {
                return Err(format!(
                    "{node} executed at index {index} a request no client signed: {}",
                    obs.commands.render(command)
                ));
            }
        }
        Ok(())
    }
}

/// **Liveness after stabilisation**: once every fault has healed, a correct live
/// replica that holds pending requests executes a new sequence number within `bound`
/// (so every pending request completes; the generic [`Liveness`](crate::Liveness)
/// checks the host's proposals and the clients).
#[derive(Debug)]
pub struct RequestProgress {
    bound: Duration,
    // replica -> (incarnation, executed seq, since when it has pending requests at it)
    stuck: HashMap<NodeId, (u64, u64, Instant)>,
}

impl RequestProgress {
    /// Requires progress within `bound`.
    #[must_use]
    pub fn new(bound: Duration) -> Self {
        RequestProgress { bound, stuck: HashMap::new() }
    }
}

impl<N: PbftView> Checker<N> for RequestProgress {
    fn name(&self) -> &'static str {
        "RequestProgress"
    }

    fn check(&mut self, obs: &Observation<'_, N>) -> Result<(), String> {
        let Some(healed) = obs.healed_since else {
            self.stuck.clear();
            return Ok(());
        };
        for v in obs.nodes {
            let Some(r) = v.replica else {
                self.stuck.remove(&v.id);
                continue;
            };
            if r.pending_requests() == 0 {
                self.stuck.remove(&v.id);
                continue;
            }
            let exec = r.executed_seq();
            let entry = self.stuck.entry(v.id).or_insert((v.incarnation, exec, obs.now));
            if entry.0 != v.incarnation || entry.1 != exec {
                *entry = (v.incarnation, exec, obs.now);
            }
            let since = entry.2.max(healed);
            if obs.now > since + self.bound {
                return Err(format!(
                    "{} holds {} pending request(s) and executed nothing since {:?} (sequence number {exec}), \
                     {:?} after healing at {healed:?}",
                    v.id,
                    r.pending_requests(),
                    entry.2,
                    self.bound
                ));
            }
        }
        Ok(())
    }
}

/// **Agreed time never runs ahead**: every agreed time a replica applies is at most
/// `bound` past the true time (the simulation's clock since `epoch_ms`) — so no lease
/// expires early by more than the skew bound, whatever a lying primary proposes.
#[derive(Debug)]
pub struct TimeBound {
    epoch_ms: u64,
    bound: Duration,
}

impl TimeBound {
    /// Allows agreed times at most `bound` past `epoch_ms` plus the simulated time.
    #[must_use]
    pub fn new(epoch_ms: u64, bound: Duration) -> Self {
        TimeBound { epoch_ms, bound }
    }
}

impl<N> Checker<N> for TimeBound {
    fn name(&self) -> &'static str {
        "TimeBound"
    }

    fn check(&mut self, obs: &Observation<'_, N>) -> Result<(), String> {
        let Some(node) = obs.node else { return Ok(()) };
        let truth = self.epoch_ms.saturating_add(obs.now.as_nanos() / 1_000_000);
        let limit = truth.saturating_add(u64::try_from(self.bound.as_millis()).unwrap_or(u64::MAX));
        for item in obs.applied {
            if let Apply::Time { index, unix_ms } = item.apply
                && unix_ms > limit
            {
                return Err(format!(
                    "{node} applied agreed time {unix_ms} ms at index {index}, {} ms past the true time {truth} ms \
                     (allowed: {:?})",
                    unix_ms - truth,
                    self.bound
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::{AnyCommand, AppliedItem, NodeView};
    use crate::history::History;

    /// A hand-made replica: what the PBFT checkers read.
    #[derive(Default)]
    struct Fake {
        executed: u64,
        stable: u64,
        committed: BTreeMap<u64, Digest>,
        pending: usize,
    }

    impl PbftView for Fake {
        fn executed_seq(&self) -> u64 {
            self.executed
        }
        fn stable_seq(&self) -> u64 {
            self.stable
        }
        fn committed_digest(&self, seq: u64) -> Option<Digest> {
            self.committed.get(&seq).copied()
        }
        fn pending_requests(&self) -> usize {
            self.pending
        }
    }

    fn views(replicas: &[Fake]) -> Vec<NodeView<'_, Fake>> {
        replicas
            .iter()
            .enumerate()
            .map(|(i, r)| NodeView {
                id: NodeId(i as u64 + 1),
                incarnation: 0,
                replica: Some(r),
                info: None,
                applied: 0,
                digest: None,
                unsynced_writes: 0,
                refuses_to_start: false,
                byzantine: false,
            })
            .collect()
    }

    fn obs<'a>(
        now: u64,
        node: Option<u64>,
        applied: &'a [AppliedItem],
        nodes: &'a [NodeView<'a, Fake>],
        history: &'a History,
        healed: Option<u64>,
    ) -> Observation<'a, Fake> {
        Observation {
            now: Instant::from_millis(now),
            node: node.map(NodeId),
            applied,
            nodes,
            healed_since: healed.map(Instant::from_millis),
            oldest_pending_proposal: None,
            last_client_success: None,
            clients_active: false,
            history,
            commands: &AnyCommand,
            final_check: false,
        }
    }

    fn replica(executed: u64, committed: &[(u64, &[u8])]) -> Fake {
        Fake { executed, committed: committed.iter().map(|(s, b)| (*s, sha256(b))).collect(), ..Fake::default() }
    }

    #[test]
    fn sequence_agreement_fires_when_two_correct_replicas_commit_different_batches() {
        let h = History::new();
        let mut c = SequenceAgreement::default();
        let good = [replica(2, &[(1, b"a"), (2, b"b")]), replica(2, &[(1, b"a"), (2, b"b")])];
        let v = views(&good);
        for n in [1, 2] {
            assert!(Checker::<Fake>::check(&mut c, &obs(1, Some(n), &[], &v, &h, None)).is_ok());
        }
        // A replica that accepted an equivocating primary's second batch at 2.
        let bad = [replica(2, &[(1, b"a"), (2, b"b")]), replica(2, &[(1, b"a"), (2, b"other")])];
        let v = views(&bad);
        let err = Checker::<Fake>::check(&mut c, &obs(2, Some(2), &[], &v, &h, None)).unwrap_err();
        assert!(err.contains("sequence number 2"), "{err}");
    }

    #[test]
    fn client_signed_fires_on_an_executed_request_no_client_signed() {
        let h = History::new();
        let sigs = ClientSignatures::default();
        sigs.sign(b"put x 1");
        let mut c = ClientSigned::new(&sigs);
        let v = views(&[]);
        let item = |cmd: &'static [u8]| AppliedItem {
            apply: Apply::Command { index: 1, command: Bytes::from_static(cmd), proposal: None },
            digest: None,
        };
        let ok = [item(b"put x 1")];
        assert!(Checker::<Fake>::check(&mut c, &obs(1, Some(1), &ok, &v, &h, None)).is_ok());
        let forged = [item(b"put x 666")];
        let err = Checker::<Fake>::check(&mut c, &obs(1, Some(1), &forged, &v, &h, None)).unwrap_err();
        assert!(err.contains("no client signed"), "{err}");
        // The planted bug's registry (trusting everything) still checks signatures.
        let trusting = ClientSignatures { trust_all: true, ..sigs.clone() };
        assert!(trusting.verify(b"put x 666"));
        assert!(
            Checker::<Fake>::check(&mut ClientSigned::new(&trusting), &obs(1, Some(1), &forged, &v, &h, None)).is_err()
        );
    }

    #[test]
    fn time_bound_fires_on_an_agreed_time_ahead_of_the_truth() {
        let h = History::new();
        let mut c = TimeBound::new(SIM_EPOCH_MS, Duration::from_millis(500));
        let v = views(&[]);
        let time = |unix_ms| [AppliedItem { apply: Apply::Time { index: 3, unix_ms }, digest: None }];
        // At 10 s of simulated time, 10.5 s past the epoch is the limit.
        let ok = time(SIM_EPOCH_MS + 10_500);
        assert!(Checker::<Fake>::check(&mut c, &obs(10_000, Some(1), &ok, &v, &h, None)).is_ok());
        let ahead = time(SIM_EPOCH_MS + 70_000);
        let err = Checker::<Fake>::check(&mut c, &obs(10_000, Some(1), &ahead, &v, &h, None)).unwrap_err();
        assert!(err.contains("60000 ms past the true time"), "{err}");
    }

    #[test]
    fn request_progress_fires_when_pending_requests_stall_after_healing() {
        let h = History::new();
        let mut c = RequestProgress::new(Duration::from_secs(10));
        let stalled = [Fake { executed: 5, pending: 3, ..Fake::default() }];
        let v = views(&stalled);
        // While faults are active nothing is required.
        assert!(Checker::<Fake>::check(&mut c, &obs(1_000, None, &[], &v, &h, None)).is_ok());
        assert!(Checker::<Fake>::check(&mut c, &obs(2_000, None, &[], &v, &h, Some(2_000))).is_ok());
        assert!(Checker::<Fake>::check(&mut c, &obs(11_000, None, &[], &v, &h, Some(2_000))).is_ok());
        let err = Checker::<Fake>::check(&mut c, &obs(12_001, None, &[], &v, &h, Some(2_000))).unwrap_err();
        assert!(err.contains("pending request"), "{err}");
        // Progress resets the clock; no pending requests, nothing to do.
        let mut c = RequestProgress::new(Duration::from_secs(10));
        assert!(Checker::<Fake>::check(&mut c, &obs(2_000, None, &[], &v, &h, Some(2_000))).is_ok());
        let moved = [Fake { executed: 6, pending: 3, ..Fake::default() }];
        let v = views(&moved);
        assert!(Checker::<Fake>::check(&mut c, &obs(11_000, None, &[], &v, &h, Some(2_000))).is_ok());
        assert!(Checker::<Fake>::check(&mut c, &obs(20_000, None, &[], &v, &h, Some(2_000))).is_ok());
        let idle = [Fake { executed: 6, pending: 0, ..Fake::default() }];
        let v = views(&idle);
        assert!(Checker::<Fake>::check(&mut c, &obs(40_000, None, &[], &v, &h, Some(2_000))).is_ok());
    }
}
