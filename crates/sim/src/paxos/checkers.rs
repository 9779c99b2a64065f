//! Paxos's own invariants, one checker each.

use std::time::Duration;

use ballot_core::{Instant, NodeId};
use ballot_paxos::{Ballot, Value};

use super::PaxosView;
use crate::checker::{Checker, Observation};
use crate::fasthash::FastMap;
use crate::kv::KvCommand;

/// Paxos's own checkers, for any replica type that offers a [`PaxosView`]:
/// [`PromiseMonotonic`], [`DecisionStability`] and [`OneValuePerBallot`].
#[must_use]
pub fn paxos_checkers<N: PaxosView>() -> Vec<Box<dyn Checker<N>>> {
    vec![
        Box::new(PromiseMonotonic::default()),
        Box::new(DecisionStability::default()),
        Box::new(OneValuePerBallot::default()),
    ]
}

/// How often a replica's whole log is re-examined; in between, only what moved.
const FULL_SCAN_EVERY: Duration = Duration::from_millis(200);

fn render(v: &Value) -> String {
    match v {
        Value::Noop => "a no-op".to_owned(),
        Value::Command { data } => match KvCommand::decode(data) {
            Ok(cmd) => format!("{cmd:?}"),
            Err(_) => format!("command {data:?}"),
        },
    }
}

/// **Promise monotonicity**: an acceptor's promise never decreases while it runs, and
/// a restart never brings it below the promise it had made durable before the crash.
/// A promise that was never durable may be lost in a crash (the protocol sends nothing
/// that depends on it before it is durable), so the floor after a restart is the
/// promise the replica held the last time it had no unsynced writes.
#[derive(Debug, Default)]
pub struct PromiseMonotonic {
    // node -> (incarnation, last promise seen, durable floor)
    nodes: FastMap<NodeId, (u64, Ballot, Ballot)>,
}

impl<N: PaxosView> Checker<N> for PromiseMonotonic {
    fn name(&self) -> &'static str {
        "PromiseMonotonic"
    }

    fn check(&mut self, obs: &Observation<'_, N>) -> Result<(), String> {
        let Some((v, r)) = obs.stepped() else { return Ok(()) };
        let (id, promised) = (v.id, r.promised());
        let seen = self.nodes.entry(id).or_insert((v.incarnation, promised, Ballot::ZERO));
        if seen.0 != v.incarnation {
            if promised < seen.2 {
                return Err(format!(
                    "{id} restarted with promise {promised}, below the promise {} it had made durable before crashing: \
                     it may now accept a ballot it promised to refuse",
                    seen.2
                ));
            }
        } else if promised < seen.1 {
            return Err(format!("{id}'s promise went down from {} to {promised} without a restart", seen.1));
        }
        seen.0 = v.incarnation;
        seen.1 = promised;
        if v.unsynced_writes == 0 {
            seen.2 = promised;
        }
        Ok(())
    }
}

/// **Decision stability** (agreement across the whole run): once any replica holds a
/// value as decided for a slot, every replica that ever holds that slot as decided holds
/// the same value, and a replica never overwrites a decided slot or moves its decided
/// prefix back while it runs. Values are compared whole (every simulated command is unique: it carries its operation id),
/// against every decision seen in the run, including those of replicas that crashed
/// since.
#[derive(Debug, Default)]
pub struct DecisionStability {
    // slot -> (the value first seen decided there, by whom)
    decided: FastMap<u64, (Value, NodeId)>,
    // node -> (incarnation, decided prefix examined, next full scan)
    nodes: FastMap<NodeId, (u64, u64, Instant)>,
}

impl<N: PaxosView> Checker<N> for DecisionStability {
    fn name(&self) -> &'static str {
        "DecisionStability"
    }

    fn check(&mut self, obs: &Observation<'_, N>) -> Result<(), String> {
        let Some((v, r)) = obs.stepped() else { return Ok(()) };
        let (id, commit, first) = (v.id, r.commit_index(), r.first_index());
        let seen = self.nodes.entry(id).or_insert((v.incarnation, 0, obs.now));
        let restarted = seen.0 != v.incarnation;
        if !restarted && commit < seen.1 {
            return Err(format!("{id}'s decided prefix went back from {} to {commit} without a restart", seen.1));
        }
        let full = restarted || obs.now >= seen.2;
        let from = if full { first } else { (seen.1 + 1).max(first) };
        *seen = (v.incarnation, commit, if full { obs.now + FULL_SCAN_EVERY } else { seen.2 });
        for slot in from..=commit {
            let Some(value) = r.decided(slot) else {
                return Err(format!("{id} says slots up to {commit} are decided but holds no value for slot {slot}"));
            };
            match self.decided.get(&slot) {
                None => {
                    self.decided.insert(slot, (value.clone(), id));
                }
                Some((first, by)) if first != value => {
                    return Err(format!(
                        "slot {slot}: {id} holds {} as decided, but {by} decided {} there",
                        render(value),
                        render(first)
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// **One value per ballot**: every acceptor that accepted a slot in a ballot, and does
/// not yet know the slot decided, accepted the same value there: a proposer proposes one
/// value per slot per ballot. Multi-Paxos's followers rely on it to learn decisions ("my
/// entry was accepted in the ballot that announced the slot decided, so it is the
/// decided value"). Decided slots are left out: a replica that learns a decision by
/// catch-up keeps the higher of its old and the new ballot, which is safe but may pair
/// the decided value with a ballot that proposed another.
#[derive(Debug, Default)]
pub struct OneValuePerBallot {
    // (slot, ballot) -> (the value accepted, by whom)
    seen: FastMap<(u64, Ballot), (Value, NodeId)>,
    // node -> (incarnation, last slot examined, next full scan)
    nodes: FastMap<NodeId, (u64, u64, Instant)>,
}

impl<N: PaxosView> Checker<N> for OneValuePerBallot {
    fn name(&self) -> &'static str {
        "OneValuePerBallot"
    }

    fn check(&mut self, obs: &Observation<'_, N>) -> Result<(), String> {
        let Some((v, r)) = obs.stepped() else { return Ok(()) };
        let (id, last) = (v.id, r.last_index());
        let undecided = (r.commit_index() + 1).max(r.first_index());
        let seen = self.nodes.entry(id).or_insert((v.incarnation, 0, obs.now));
        let full = seen.0 != v.incarnation || obs.now >= seen.2;
        // In between full scans, the slots past the last one examined (new accepts).
        let from = if full { undecided } else { (seen.1 + 1).max(undecided) };
        *seen = (v.incarnation, last, if full { obs.now + FULL_SCAN_EVERY } else { seen.2 });
        for slot in from..=last {
            let Some((ballot, value)) = r.accepted(slot) else { continue };
            match self.seen.get(&(slot, ballot)) {
                None => {
                    self.seen.insert((slot, ballot), (value.clone(), id));
                }
                Some((first, by)) if first != value => {
                    return Err(format!(
                        "{id} accepted {} at slot {slot} in ballot {ballot}, but {by} accepted {} there in the same \
                         ballot",
                        render(value),
                        render(first)
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// **Synod termination**: once every fault has healed (by then the schedule has left a
/// single proposer), (1) every live learner learns the decision within `bound` of the
/// later of the healing and the first decision, and (2) at the end of the run the
/// instance has decided if any client proposed after healing (through the last
/// proposer). That the last proposer's own proposal terminates within `bound` is the
/// generic [`Liveness`](crate::Liveness) rule that no proposal stays unresolved.
#[derive(Debug)]
pub struct SynodTermination {
    bound: Duration,
    first_decision: Option<Instant>,
}

impl SynodTermination {
    /// Requires learning within `bound` after healing.
    #[must_use]
    pub fn new(bound: Duration) -> Self {
        SynodTermination { bound, first_decision: None }
    }
}

impl<N: PaxosView> Checker<N> for SynodTermination {
    fn name(&self) -> &'static str {
        "SynodTermination"
    }

    fn check(&mut self, obs: &Observation<'_, N>) -> Result<(), String> {
        let decided = |r: &N| r.commit_index() >= 1;
        if self.first_decision.is_none() && obs.nodes.iter().any(|v| v.replica.is_some_and(decided)) {
            self.first_decision = Some(obs.now);
        }
        let Some(healed) = obs.healed_since else { return Ok(()) };
        let undecided = || -> Vec<String> {
            obs.nodes.iter().filter(|v| v.replica.is_some_and(|r| !decided(r))).map(|v| v.id.to_string()).collect()
        };
        match self.first_decision {
            None if obs.final_check => {
                let proposed =
                    obs.history.ops().iter().rev().take_while(|op| op.invoke >= healed).any(|op| !op.is_read());
                if proposed {
                    return Err(format!(
                        "nothing was decided by the end of the run, although clients proposed after healing at {healed:?}"
                    ));
                }
            }
            Some(at) if obs.now > at.max(healed) + self.bound || obs.final_check => {
                let missing = undecided();
                if !missing.is_empty() {
                    return Err(format!(
                        "{} did not learn the decision (first seen at {at:?}) within {:?} of healing at {healed:?}",
                        missing.join(", "),
                        self.bound
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::checker::NodeView;
    use crate::history::History;
    use crate::kv::KvInput;

    /// A hand-made acceptor and learner: a promise, a decided prefix, and slots
    /// `1..=log.len()` holding `(ballot, value)` (or a hole).
    #[derive(Clone, Debug, Default)]
    struct Fake {
        promised: Ballot,
        commit: u64,
        first: u64,
        log: Vec<Option<(Ballot, Value)>>,
    }

    impl PaxosView for Fake {
        fn promised(&self) -> Ballot {
            self.promised
        }
        fn commit_index(&self) -> u64 {
            self.commit
        }
        fn first_index(&self) -> u64 {
            self.first.max(1)
        }
        fn last_index(&self) -> u64 {
            self.log.len() as u64
        }
        fn decided(&self, slot: u64) -> Option<&Value> {
            if slot > self.commit { None } else { self.accepted(slot).map(|(_, v)| v) }
        }
        fn accepted(&self, slot: u64) -> Option<(Ballot, &Value)> {
            let e = self.log.get(usize::try_from(slot.checked_sub(1)?).ok()?)?.as_ref()?;
            Some((e.0, &e.1))
        }
    }

    fn b(round: u64, node: u64) -> Ballot {
        Ballot::new(round, NodeId(node))
    }

    fn cmd(op: u64) -> Value {
        let data = KvCommand { op, key: 1, input: KvInput::Put(op) }.encode();
        Value::Command { data }
    }

    fn fake(promised: Ballot, commit: u64, log: &[(Ballot, Value)]) -> Fake {
        Fake { promised, commit, first: 1, log: log.iter().cloned().map(Some).collect() }
    }

    /// A step of node `stepped` (1-based) at `now`, with the given incarnations and
    /// unsynced writes per node.
    struct Step<'a> {
        nodes: &'a [Option<Fake>],
        stepped: u64,
        now: Instant,
        incarnation: u64,
        unsynced: usize,
        healed: Option<Instant>,
        final_check: bool,
        history: Option<&'a History>,
    }

    impl<'a> Step<'a> {
        fn new(nodes: &'a [Option<Fake>], stepped: u64, now_ms: u64) -> Self {
            Step {
                nodes,
                stepped,
                now: Instant::from_millis(now_ms),
                incarnation: 0,
                unsynced: 0,
                healed: None,
                final_check: false,
                history: None,
            }
        }

        fn run(&self, checker: &mut dyn Checker<Fake>) -> Result<(), String> {
            let empty = History::new();
            let views: Vec<NodeView<'_, Fake>> = self
                .nodes
                .iter()
                .enumerate()
                .map(|(i, f)| NodeView {
                    id: NodeId(i as u64 + 1),
                    incarnation: self.incarnation,
                    replica: f.as_ref(),
                    info: None,
                    applied: 0,
                    digest: Some(0),
                    unsynced_writes: self.unsynced,
                    refuses_to_start: false,
                })
                .collect();
            checker.check(&Observation {
                now: self.now,
                node: Some(NodeId(self.stepped)),
                applied: &[],
                nodes: &views,
                healed_since: self.healed,
                oldest_pending_proposal: None,
                last_client_success: None,
                clients_active: false,
                history: self.history.unwrap_or(&empty),
                commands: &crate::checker::AnyCommand,
                final_check: self.final_check,
            })
        }
    }

    #[test]
    fn promise_monotonic_fires_on_a_lower_promise_and_on_forgetting_a_durable_one() {
        let mut c = PromiseMonotonic::default();
        let at = |p| [Some(fake(p, 0, &[]))];
        Step::new(&at(b(2, 1)), 1, 0).run(&mut c).expect("first sight (durable)");
        Step { unsynced: 1, ..Step::new(&at(b(5, 2)), 1, 1) }.run(&mut c).expect("promise raised, not yet durable");
        let err = Step { unsynced: 1, ..Step::new(&at(b(4, 2)), 1, 2) }.run(&mut c).expect_err("went down");
        assert!(err.contains("n1's promise went down from b5.2 to b4.2 without a restart"), "{err}");
        // A crash loses the promise that was not yet durable: fine.
        let mut c = PromiseMonotonic::default();
        Step::new(&at(b(2, 1)), 1, 0).run(&mut c).expect("durable b2.1");
        Step { unsynced: 1, ..Step::new(&at(b(5, 2)), 1, 1) }.run(&mut c).expect("b5.2 in flight");
        Step { incarnation: 1, ..Step::new(&at(b(2, 1)), 1, 2) }.run(&mut c).expect("lost the unsynced promise");
        // Once durable, it must survive the next restart.
        Step { incarnation: 1, ..Step::new(&at(b(6, 3)), 1, 3) }.run(&mut c).expect("b6.3 durable");
        let err = Step { incarnation: 2, ..Step::new(&at(b(5, 2)), 1, 4) }.run(&mut c).expect_err("forgotten");
        assert!(err.contains("n1 restarted with promise b5.2, below the promise b6.3 it had made durable"), "{err}");
    }

    #[test]
    fn decision_stability_fires_on_disagreement_overwrites_and_a_shrinking_prefix() {
        let (v1, v2) = (cmd(1), cmd(2));
        let mut c = DecisionStability::default();
        let n1 = fake(b(1, 1), 2, &[(b(1, 1), Value::Noop), (b(1, 1), v1.clone())]);
        let n2 = fake(b(2, 2), 1, &[(b(2, 2), Value::Noop), (b(2, 2), v2.clone())]);
        let nodes = [Some(n1.clone()), Some(n2.clone())];
        Step::new(&nodes, 1, 0).run(&mut c).expect("n1 decides slots 1 and 2");
        Step::new(&nodes, 2, 1).run(&mut c).expect("n2 decides slot 1 alike; slot 2 is undecided there");
        let mut n2_decides = n2.clone();
        n2_decides.commit = 2;
        let err = Step::new(&[Some(n1.clone()), Some(n2_decides)], 2, 2).run(&mut c).expect_err("disagreement");
        assert!(err.contains("slot 2: n2 holds") && err.contains("op: 2") && err.contains("n1 decided"), "{err}");
        // The first decision is remembered after its holder crashed.
        let mut c = DecisionStability::default();
        Step::new(&[Some(n1.clone()), None], 1, 0).run(&mut c).expect("n1 decides");
        let mut n2_decides = n2.clone();
        n2_decides.commit = 2;
        assert!(Step::new(&[None, Some(n2_decides)], 2, 1).run(&mut c).is_err(), "checked against crashed n1");
        // Overwriting a decided slot is found by the next full scan.
        let mut c = DecisionStability::default();
        Step::new(&[Some(n1.clone())], 1, 0).run(&mut c).expect("decided");
        let mut overwritten = n1.clone();
        overwritten.log[0] = Some((b(3, 1), v2.clone()));
        Step::new(&[Some(overwritten.clone())], 1, 1).run(&mut c).expect("not re-scanned yet");
        let err = Step::new(&[Some(overwritten)], 1, 300).run(&mut c).expect_err("full scan");
        assert!(err.contains("slot 1: n1 holds") && err.contains("a no-op"), "{err}");
        // The decided prefix never shrinks within an incarnation, may after a restart.
        let mut c = DecisionStability::default();
        Step::new(&[Some(n1.clone())], 1, 0).run(&mut c).expect("decided up to 2");
        let mut behind = n1.clone();
        behind.commit = 1;
        let err = Step::new(&[Some(behind.clone())], 1, 1).run(&mut c).expect_err("went back");
        assert!(err.contains("went back from 2 to 1 without a restart"), "{err}");
        Step { incarnation: 1, ..Step::new(&[Some(behind)], 1, 2) }.run(&mut c).expect("after a restart");
        // Saying a slot is decided without holding it is a violation too.
        let mut c = DecisionStability::default();
        let mut hole = n1;
        hole.log[0] = None;
        let err = Step::new(&[Some(hole)], 1, 0).run(&mut c).expect_err("hole");
        assert!(err.contains("holds no value for slot 1"), "{err}");
    }

    #[test]
    fn one_value_per_ballot_fires_on_two_values_in_one_ballot_but_not_across_ballots() {
        let (v1, v2) = (cmd(1), cmd(2));
        let mut c = OneValuePerBallot::default();
        let n1 = fake(b(3, 1), 0, &[(b(3, 1), v1.clone())]);
        let n2 = fake(b(4, 2), 0, &[(b(4, 2), v2.clone())]);
        let n3 = fake(b(3, 1), 0, &[(b(3, 1), v1.clone())]);
        Step::new(&[Some(n1.clone()), Some(n2), Some(n3)], 1, 0).run(&mut c).expect("n1");
        let nodes = [Some(n1.clone()), Some(fake(b(4, 2), 0, &[(b(4, 2), v2.clone())])), None];
        Step::new(&nodes, 2, 1).run(&mut c).expect("another ballot may carry another value");
        let n3 = fake(b(3, 1), 0, &[(b(3, 1), Value::Noop)]);
        let err = Step::new(&[None, None, Some(n3)], 3, 2).run(&mut c).expect_err("same ballot, other value");
        assert!(
            err.contains("n3 accepted a no-op at slot 1 in ballot b3.1, but n1 accepted") && err.contains("op: 1"),
            "{err}"
        );
        // Decided slots are not compared (catch-up may relabel them).
        let mut c = OneValuePerBallot::default();
        Step::new(&[Some(n1)], 1, 0).run(&mut c).expect("n1");
        let relabelled = fake(b(3, 1), 1, &[(b(3, 1), v2)]);
        Step::new(&[None, Some(relabelled)], 2, 1).run(&mut c).expect("decided there");
    }

    #[test]
    fn synod_termination_fires_when_a_learner_never_learns_or_nothing_is_decided() {
        let undecided = fake(b(1, 1), 0, &[]);
        let decided = fake(b(1, 1), 1, &[(b(1, 1), cmd(1))]);
        let healed = Some(Instant::from_millis(1000));
        let mut c = SynodTermination::new(Duration::from_secs(5));
        // n1 decides at 2 s, before healing; n2 must learn within 5 s of healing.
        let nodes = [Some(decided.clone()), Some(undecided.clone())];
        Step::new(&nodes, 1, 2000).run(&mut c).expect("not healed");
        let healed_at = Some(Instant::from_millis(3000));
        Step { healed: healed_at, ..Step::new(&nodes, 1, 8000) }.run(&mut c).expect("n2 still has time");
        let err = Step { healed: healed_at, ..Step::new(&nodes, 1, 8001) }.run(&mut c).expect_err("n2 never learns");
        assert!(err.contains("n2 did not learn the decision (first seen at 2s) within 5s"), "{err}");
        let all = [Some(decided.clone()), Some(decided), None];
        Step { healed: healed_at, ..Step::new(&all, 1, 8002) }.run(&mut c).expect("every live node learned");

        // Nothing decided at the end: a violation only if a client proposed after healing.
        let nodes = [Some(undecided.clone()), Some(undecided)];
        let mut history = History::new();
        let mut c = SynodTermination::new(Duration::from_secs(5));
        history.invoke(0, 1, KvInput::Put(1), Instant::from_millis(500));
        history.invoke(0, 1, KvInput::Get, Instant::from_millis(1500));
        let end = Step { healed, final_check: true, history: Some(&history), ..Step::new(&nodes, 1, 20_000) };
        end.run(&mut c).expect("only a read after healing");
        history.invoke(1, 1, KvInput::Delete, Instant::from_millis(1200));
        let end = Step { healed, final_check: true, history: Some(&history), ..Step::new(&nodes, 1, 20_000) };
        let err = end.run(&mut c).expect_err("a proposal after healing was never decided");
        assert!(err.contains("nothing was decided by the end of the run"), "{err}");
    }
}
