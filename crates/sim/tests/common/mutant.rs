//! Mutants: a real protocol wrapped so that one durability rule breaks, to show that
//! the simulator's checkers catch the bug. Generic over the algorithm.

use ballot_core::{
    Instant, Membership, NodeId, Output, PersistId, ProposalId, ProposeError, Protocol, ReadId, Recovered, SeededRng,
    Status,
};
use ballot_sim::{AdminAction, Algorithm, Checker, EntryOf, HardStateOf, NodeInfo, RunSpec, SimConfig};
use ballot_sim::{SimError, Violation, run_spec};
use bytes::Bytes;

/// How a mutant breaks durability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// Tell the protocol every write is durable as soon as it is issued (a disk that
    /// lies about fsync): a crash then loses what it promised, voted or acknowledged.
    AckBeforeDurable,
    /// Damage the durable state a replica restarts from (forget the vote, the promise).
    OnRestart,
}

/// A replica of `P` under a mutation.
pub struct Mutant<P> {
    /// The real replica.
    pub inner: P,
    ack_before_durable: bool,
    now: Instant,
}

impl<P: Protocol> Protocol for Mutant<P> {
    type Message = P::Message;
    type Entry = P::Entry;
    type HardState = P::HardState;

    fn id(&self) -> NodeId {
        self.inner.id()
    }
    fn handle_message(&mut self, now: Instant, from: NodeId, message: P::Message) {
        self.now = now;
        self.inner.handle_message(now, from, message);
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        self.inner.handle_timeout(now);
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }
    fn propose(&mut self, now: Instant, id: ProposalId, command: Bytes) -> Result<(), ProposeError> {
        self.now = now;
        self.inner.propose(now, id, command)
    }
    fn read(&mut self, now: Instant, id: ReadId) -> Result<(), ProposeError> {
        self.now = now;
        self.inner.read(now, id)
    }
    fn persisted(&mut self, now: Instant, id: PersistId) {
        self.now = now;
        if !self.ack_before_durable {
            self.inner.persisted(now, id);
        }
    }
    fn compact(&mut self, now: Instant, index: u64, data: Bytes) {
        self.now = now;
        self.inner.compact(now, index, data);
    }
    fn poll_output(&mut self) -> Option<Output<P::Message, P::Entry, P::HardState>> {
        let out = self.inner.poll_output();
        if let Some(Output::Persist(batch)) = &out
            && self.ack_before_durable
        {
            self.inner.persisted(self.now, batch.id);
        }
        out
    }
    fn status(&self) -> Status {
        self.inner.status()
    }
}

/// Durable state damaged on restart.
pub type Damage<A> = fn(&mut Recovered<EntryOf<A>, HardStateOf<A>>);

/// The checkers of a mutant of `A`.
pub type MutantCheckers<A> = fn() -> Vec<Box<dyn Checker<Mutant<<A as Algorithm>::Protocol>>>>;

/// Algorithm `A` with its replicas wrapped in [`Mutant`]s.
pub struct MutantAlgorithm<A: Algorithm> {
    /// The real algorithm.
    pub inner: A,
    /// The mutation.
    pub mutation: Mutation,
    /// For [`Mutation::OnRestart`]: what to damage.
    pub damage: Damage<A>,
    /// The checkers, for the wrapped replica type.
    pub checkers: MutantCheckers<A>,
    /// The name in replay commands.
    pub name: &'static str,
}

impl<A: Algorithm> Algorithm for MutantAlgorithm<A> {
    type Protocol = Mutant<A::Protocol>;
    type BuildError = A::BuildError;

    fn name(&self) -> &'static str {
        self.name
    }
    fn vary(&mut self, rng: &mut SeededRng) {
        self.inner.vary(rng);
    }
    fn shape_run(&self, config: &mut SimConfig) {
        self.inner.shape_run(config);
    }
    fn elects_leader(&self) -> bool {
        self.inner.elects_leader()
    }
    fn build(
        &self,
        id: NodeId,
        initial: &Membership,
        mut recovered: Recovered<EntryOf<A>, HardStateOf<A>>,
        rng: SeededRng,
        now: Instant,
    ) -> Result<Self::Protocol, A::BuildError> {
        if self.mutation == Mutation::OnRestart {
            (self.damage)(&mut recovered);
        }
        let inner = self.inner.build(id, initial, recovered, rng, now)?;
        Ok(Mutant { inner, ack_before_durable: self.mutation == Mutation::AckBeforeDurable, now })
    }
    fn info(&self, m: &Self::Protocol) -> NodeInfo {
        self.inner.info(&m.inner)
    }
    fn checkers(&self, _config: &SimConfig) -> Vec<Box<dyn Checker<Self::Protocol>>> {
        (self.checkers)()
    }
    fn supports_admin(&self) -> bool {
        self.inner.supports_admin()
    }
    fn admin(&self, m: &mut Self::Protocol, now: Instant, action: AdminAction) -> Result<(), String> {
        self.inner.admin(&mut m.inner, now, action)
    }
    fn membership(&self, m: &Self::Protocol) -> Membership {
        self.inner.membership(&m.inner)
    }
}

/// Runs seeds `1..=max_seeds` on 3 nodes of the mutant `make()` builds until a checker
/// fires; returns the seed and the violation.
pub fn first_violation<A: Algorithm>(make: impl Fn() -> MutantAlgorithm<A>, max_seeds: u64) -> (u64, Box<Violation>) {
    for seed in 1..=max_seeds {
        match run_spec(make(), &RunSpec::new(seed, 3)) {
            Ok(_) => {}
            Err(SimError::Violation(v)) => return (seed, v),
            Err(e) => panic!("seed {seed}: {e}"),
        }
    }
    panic!("no checker caught the mutant in {max_seeds} seeds");
}

/// Runs seeds `1..=seeds` on 3 and 5 nodes; returns how often each checker fired.
pub fn detection_rates<A: Algorithm>(
    make: impl Fn() -> MutantAlgorithm<A>,
    seeds: u64,
) -> std::collections::BTreeMap<String, u64> {
    let mut by_checker = std::collections::BTreeMap::<String, u64>::new();
    for seed in 1..=seeds {
        for nodes in [3, 5] {
            if let Err(SimError::Violation(v)) = run_spec(make(), &RunSpec::new(seed, nodes)) {
                *by_checker.entry(v.checker).or_default() += 1;
            }
        }
    }
    by_checker
}
