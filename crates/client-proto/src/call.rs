//! One client call's progress: which node to ask next, when to wait, when to stop, and
//! what a failure means for the request.

use std::hash::Hash;
use std::time::Duration;

use ballot_core::Instant;
use ballot_wire::ClientError;

use crate::endpoints::{Endpoints, Link};

/// Timeouts and backoff of calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// How long a call may take in all, retries included.
    pub deadline: Duration,
    /// How long to wait for one node's answer once the request is sent.
    pub attempt_timeout: Duration,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// How long a node that could not be connected to is left alone.
    pub retry_down_after: Duration,
    /// The first pause between attempts; it doubles up to `backoff_max`, with jitter.
    pub backoff_min: Duration,
    /// The longest pause between attempts.
    pub backoff_max: Duration,
    /// Redirects followed at once before pausing (leadership may be moving).
    pub max_redirects: u32,
}

impl Default for Policy {
    /// 10 s per call, 2 s per attempt, 1 s per connection attempt, backoff from 25 ms
    /// to 1 s.
    fn default() -> Self {
        Policy {
            deadline: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            retry_down_after: Duration::from_millis(500),
            backoff_min: Duration::from_millis(25),
            backoff_max: Duration::from_secs(1),
            max_redirects: 3,
        }
    }
}

/// What a node answered to a request the host sent for a [`Step::Send`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer<A> {
    /// The request was carried out (the host keeps the reply).
    Done,
    /// "Not the leader": the request was not carried out. `leader` is where the node
    /// says the leader is, resolved by the host, if it named one.
    Redirect {
        /// The leader's address, if known.
        leader: Option<A>,
        /// The error as the node sent it.
        error: ClientError,
    },
    /// Any other error of the node.
    Error(ClientError),
}

/// Why a call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The cluster answered with an error that retrying does not fix, or its last
    /// answer before the deadline was a retryable error and no attempt may have taken
    /// effect.
    #[error("{0}")]
    Server(ClientError),
    /// A write that may or may not have taken effect: an attempt was sent and never
    /// answered (or was answered "timed out" or "leader changed"), and no later attempt
    /// settled it before the deadline.
    #[error(
        "outcome unknown: the write may or may not have taken effect (an attempt was sent and not answered, and retries did not settle it before the deadline; last error: {last}); read the state to find out, or retry if the write is idempotent"
    )]
    OutcomeUnknown {
        /// The last failure seen.
        last: String,
    },
    /// No node could be reached before the deadline; the request was not carried out.
    #[error("{last}")]
    Unreachable {
        /// The last failure seen.
        last: String,
    },
}

/// What the host should do next for a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step<A> {
    /// Start connecting to this node, in the background, and report the outcome to
    /// [`Endpoints::connected`] or [`Endpoints::connect_failed`]. Poll again at once.
    Connect(A),
    /// Send the request to this node (connected) and report its answer with
    /// [`Call::on_answer`], or [`Call::on_lost`] if none came by `reply_by`, or
    /// [`Call::on_unsent`] if it could not be sent.
    Send {
        /// The node.
        to: A,
        /// When to give up waiting for the answer.
        reply_by: Instant,
    },
    /// Nothing to do until this instant, or until a connection event.
    Wait(Instant),
    /// The call is over.
    Done(Result<(), CallError>),
}

#[derive(Clone, Debug)]
enum State<A> {
    Ready,
    InFlight { to: A, reply_by: Instant },
    Backoff { until: Instant },
    Finished(Result<(), CallError>),
}

/// What went wrong last, for the final error.
#[derive(Clone, Debug)]
enum Failure {
    Server(ClientError),
    Transport(String),
}

/// One request's progress through the cluster; see the [crate docs](crate).
#[derive(Clone, Debug)]
pub struct Call<A> {
    policy: Policy,
    deadline: Instant,
    write: bool,
    any_node: bool,
    pinned: Option<A>,
    state: State<A>,
    maybe_applied: bool,
    last: Option<Failure>,
    backoff: Duration,
    redirects: u32,
    avoid: Option<A>,
    rng: u64,
}

impl<A: Clone + Eq + Hash + std::fmt::Debug> Call<A> {
    /// A call started at `now`. `write` says whether the request changes state (then a
    /// lost attempt makes the outcome unknown); `seed` drives the backoff jitter.
    #[must_use]
    pub fn new(now: Instant, policy: &Policy, write: bool, seed: u64) -> Self {
        Call {
            policy: policy.clone(),
            deadline: now + policy.deadline,
            write,
            any_node: false,
            pinned: None,
            state: State::Ready,
            maybe_applied: false,
            last: None,
            backoff: policy.backoff_min,
            redirects: 0,
            avoid: None,
            rng: seed | 1,
        }
    }

    /// A call that only asks `node` (a status query, a read of one node's state): a
    /// redirect ends it, and so does a failed connection.
    #[must_use]
    pub fn pinned(now: Instant, policy: &Policy, write: bool, seed: u64, node: A) -> Self {
        Call { pinned: Some(node), ..Self::new(now, policy, write, seed) }
    }

    /// A call any node serves (a serializable read, opening a watch): its answer says
    /// nothing about who leads, so it does not change the leader the client knows.
    #[must_use]
    pub fn served_by_any_node(mut self) -> Self {
        self.any_node = true;
        self
    }

    /// Whether an attempt may have taken effect so far.
    #[must_use]
    pub fn maybe_applied(&self) -> bool {
        self.maybe_applied
    }

    /// The next thing to do.
    pub fn poll(&mut self, now: Instant, endpoints: &mut Endpoints<A>) -> Step<A> {
        if let State::InFlight { to, reply_by } = &self.state {
            if now < *reply_by {
                return Step::Wait(*reply_by);
            }
            let to = to.clone();
            let waited = self.policy.attempt_timeout;
            self.on_lost(now, endpoints, &to, &format!("no answer from {to:?} within {waited:?}"));
        }
        match &self.state {
            State::Finished(r) => return Step::Done(r.clone()),
            State::Backoff { until } if now < *until && now < self.deadline => {
                return Step::Wait((*until).min(self.deadline));
            }
            State::Backoff { .. } | State::Ready | State::InFlight { .. } => {}
        }
        if now >= self.deadline {
            let result = Err(self.final_error(endpoints));
            return self.finish(result);
        }
        self.state = State::Ready;
        endpoints.expire(now, self.policy.retry_down_after);
        if let Some(node) = &self.pinned {
            return match endpoints.link(node) {
                Link::Up => self.send(now, node.clone()),
                Link::Idle => {
                    endpoints.start_connecting(node, now + self.policy.connect_timeout);
                    Step::Connect(node.clone())
                }
                Link::Connecting { until } => Step::Wait(until.min(self.deadline)),
                Link::Down { .. } => {
                    let last = endpoints
                        .last_failure()
                        .map_or_else(|| format!("cannot connect to {node:?}"), ToOwned::to_owned);
                    self.finish(Err(CallError::Unreachable { last }))
                }
            };
        }
        if let Some(target) = self.target(endpoints) {
            return self.send(now, target);
        }
        // No usable connection to the node to ask: connect to every idle node at once
        // (a dead node then costs nothing while another answers), and wait.
        let idle = endpoints.nodes().iter().find(|n| endpoints.link(n) == Link::Idle).cloned();
        if let Some(node) = idle {
            endpoints.start_connecting(&node, now + self.policy.connect_timeout);
            return Step::Connect(node);
        }
        let wake = endpoints
            .nodes()
            .iter()
            .filter_map(|n| match endpoints.link(n) {
                Link::Connecting { until } | Link::Down { until } => Some(until),
                Link::Idle | Link::Up => None,
            })
            .min()
            .unwrap_or(self.deadline);
        Step::Wait(wake.min(self.deadline))
    }

    /// The node `node` answered the request sent to it.
    pub fn on_answer(&mut self, now: Instant, endpoints: &mut Endpoints<A>, node: A, answer: Answer<A>) {
        if !self.in_flight_to(&node) {
            return;
        }
        self.state = State::Ready;
        match answer {
            Answer::Done => {
                if self.pinned.is_none() && !self.any_node {
                    endpoints.set_leader(Some(node));
                }
                self.state = State::Finished(Ok(()));
            }
            Answer::Redirect { leader, error } => {
                if self.pinned.is_some() {
                    self.state = State::Finished(Err(CallError::Server(error)));
                    return;
                }
                self.last = Some(Failure::Server(error));
                match leader.filter(|l| *l != node) {
                    Some(l) => {
                        endpoints.set_leader(Some(l));
                        self.redirects += 1;
                        if self.redirects > self.policy.max_redirects {
                            self.pause(now);
                        }
                    }
                    None => {
                        // An election is under way (or the node is confused): ask
                        // another node after a pause.
                        endpoints.set_leader(None);
                        self.avoid = Some(node);
                        self.pause(now);
                    }
                }
            }
            Answer::Error(error) => {
                if error.is_outcome_unknown() && self.write {
                    self.maybe_applied = true;
                }
                if !error.is_retryable() {
                    // An earlier attempt may still have taken effect: this answer does not
                    // settle it.
                    let end = if self.maybe_applied {
                        CallError::OutcomeUnknown { last: error.to_string() }
                    } else {
                        CallError::Server(error)
                    };
                    self.state = State::Finished(Err(end));
                    return;
                }
                let move_on = matches!(error, ClientError::Unavailable(_) | ClientError::LeaderChanged);
                self.last = Some(Failure::Server(error));
                if move_on && self.pinned.is_none() {
                    if endpoints.leader() == Some(&node) {
                        endpoints.set_leader(None);
                    }
                    self.avoid = Some(node);
                }
                self.pause(now);
            }
        }
    }

    /// The request was sent to `node` but no answer came (it timed out, or the
    /// connection failed while waiting): a write may have taken effect.
    pub fn on_lost(&mut self, now: Instant, endpoints: &mut Endpoints<A>, node: &A, reason: &str) {
        if !self.in_flight_to(node) {
            return;
        }
        if self.write {
            self.maybe_applied = true;
        }
        self.last = Some(Failure::Transport(reason.to_owned()));
        if self.pinned.is_none() {
            if endpoints.leader() == Some(node) {
                endpoints.set_leader(None);
            }
            self.avoid = Some(node.clone());
        }
        self.pause(now);
    }

    /// The request could not be sent to `node` (its connection was gone): it did not
    /// take effect there.
    pub fn on_unsent(&mut self, now: Instant, endpoints: &mut Endpoints<A>, node: &A, reason: &str) {
        if !self.in_flight_to(node) {
            return;
        }
        endpoints.disconnected(node);
        self.last = Some(Failure::Transport(reason.to_owned()));
        self.avoid = Some(node.clone());
        self.pause(now);
    }

    fn in_flight_to(&self, node: &A) -> bool {
        matches!(&self.state, State::InFlight { to, .. } if to == node)
    }

    fn send(&mut self, now: Instant, to: A) -> Step<A> {
        let reply_by = (now + self.policy.attempt_timeout).min(self.deadline);
        self.state = State::InFlight { to: to.clone(), reply_by };
        Step::Send { to, reply_by }
    }

    fn finish(&mut self, result: Result<(), CallError>) -> Step<A> {
        self.state = State::Finished(result.clone());
        Step::Done(result)
    }

    /// The node to send to: the leader if connected; else, when no leader is known or
    /// it cannot be reached, any connected node other than the one that just failed.
    fn target(&self, endpoints: &Endpoints<A>) -> Option<A> {
        if let Some(leader) = endpoints.leader() {
            match endpoints.link(leader) {
                Link::Up => return Some(leader.clone()),
                // Wait for the leader's connection rather than be redirected back.
                Link::Connecting { .. } | Link::Idle => return None,
                Link::Down { .. } => {}
            }
        }
        let up: Vec<&A> = endpoints.nodes().iter().filter(|n| endpoints.is_up(n)).collect();
        let start = self.avoid.as_ref().and_then(|a| up.iter().position(|n| *n == a)).map_or(0, |i| i + 1);
        let other = (0..up.len()).map(|i| up[(start + i) % up.len()]).find(|n| Some(*n) != self.avoid.as_ref());
        if let Some(n) = other {
            return Some(n.clone());
        }
        // Only the node that just failed is connected: try it again only when no other
        // node could be connected to.
        let others_pending = endpoints.nodes().iter().any(|n| {
            Some(n) != self.avoid.as_ref() && matches!(endpoints.link(n), Link::Idle | Link::Connecting { .. })
        });
        if others_pending { None } else { up.first().map(|n| (*n).clone()) }
    }

    /// Waits a jittered, doubling backoff before the next attempt.
    fn pause(&mut self, now: Instant) {
        let half = self.backoff / 2;
        let jitter_ns = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = Duration::from_nanos(if jitter_ns == 0 { 0 } else { self.next_random() % jitter_ns });
        self.state = State::Backoff { until: now + half + jitter };
        self.backoff = (self.backoff * 2).min(self.policy.backoff_max);
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: enough for jitter, and deterministic for the simulator.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn final_error(&self, endpoints: &Endpoints<A>) -> CallError {
        let last = match &self.last {
            Some(Failure::Server(e)) => e.to_string(),
            Some(Failure::Transport(t)) => t.clone(),
            None => endpoints.last_failure().unwrap_or("no node answered before the deadline").to_owned(),
        };
        if self.maybe_applied {
            return CallError::OutcomeUnknown { last };
        }
        match &self.last {
            Some(Failure::Server(e)) => CallError::Server(e.clone()),
            _ => CallError::Unreachable { last },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    fn policy() -> Policy {
        Policy { deadline: Duration::from_secs(3), ..Policy::default() }
    }

    /// Polls until the call asks to send, answering connect steps with `up` nodes
    /// connected and the others failing.
    fn send_target(call: &mut Call<u32>, ep: &mut Endpoints<u32>, now: Instant, up: &[u32]) -> Option<u32> {
        for _ in 0..20 {
            match call.poll(now, ep) {
                Step::Connect(n) if up.contains(&n) => ep.connected(n),
                Step::Connect(n) => ep.connect_failed(now, n, Duration::from_secs(1), "refused".into()),
                Step::Send { to, .. } => return Some(to),
                Step::Wait(_) | Step::Done(_) => return None,
            }
        }
        None
    }

    #[test]
    fn a_dead_first_endpoint_costs_nothing_when_another_answers() {
        let mut ep = Endpoints::new(vec![1, 2, 3]);
        let mut call = Call::new(ms(0), &policy(), true, 1);
        // All three connections start at once; node 1 never answers.
        assert_eq!(call.poll(ms(0), &mut ep), Step::Connect(1));
        assert_eq!(call.poll(ms(0), &mut ep), Step::Connect(2));
        assert_eq!(call.poll(ms(0), &mut ep), Step::Connect(3));
        assert_eq!(call.poll(ms(0), &mut ep), Step::Wait(ms(1000)));
        ep.connected(3);
        assert_eq!(call.poll(ms(2), &mut ep), Step::Send { to: 3, reply_by: ms(2002) });
        call.on_answer(ms(3), &mut ep, 3, Answer::Done);
        assert_eq!(call.poll(ms(3), &mut ep), Step::Done(Ok(())));
        assert_eq!(ep.leader(), Some(&3));
    }

    #[test]
    fn a_lost_write_followed_by_refusals_is_outcome_unknown() {
        let mut ep = Endpoints::new(vec![1, 2]);
        let mut call = Call::new(ms(0), &policy(), true, 1);
        assert_eq!(send_target(&mut call, &mut ep, ms(0), &[1, 2]), Some(1));
        call.on_lost(ms(10), &mut ep, &1, "connection lost");
        assert!(call.maybe_applied());
        let mut now = ms(10);
        // Every later attempt is refused as "not leader": none of them settles whether
        // the first one took effect.
        while let Some(to) = send_target(&mut call, &mut ep, now, &[1, 2]) {
            let error = ClientError::NotLeader { leader: None, leader_addr: None };
            call.on_answer(now, &mut ep, to, Answer::Redirect { leader: None, error });
            now += Duration::from_millis(300);
        }
        let end = loop {
            match call.poll(now, &mut ep) {
                Step::Done(r) => break r,
                Step::Wait(t) => now = t.max(now + Duration::from_millis(1)),
                Step::Connect(n) => ep.connected(n),
                Step::Send { to, .. } => {
                    let error = ClientError::NotLeader { leader: None, leader_addr: None };
                    call.on_answer(now, &mut ep, to, Answer::Redirect { leader: None, error });
                }
            }
        };
        assert!(matches!(end, Err(CallError::OutcomeUnknown { .. })), "{end:?}");
    }

    #[test]
    fn a_read_that_was_lost_is_not_outcome_unknown() {
        let mut ep = Endpoints::new(vec![1]);
        let mut call = Call::new(ms(0), &policy(), false, 1);
        assert_eq!(send_target(&mut call, &mut ep, ms(0), &[1]), Some(1));
        call.on_lost(ms(10), &mut ep, &1, "connection lost");
        let mut now = ms(10);
        let end = loop {
            match call.poll(now, &mut ep) {
                Step::Done(r) => break r,
                Step::Wait(t) => now = t.max(now + Duration::from_millis(1)),
                Step::Connect(n) => ep.connect_failed(now, n, Duration::from_millis(100), "refused".into()),
                Step::Send { to, .. } => call.on_lost(now, &mut ep, &to, "lost again"),
            }
        };
        assert!(matches!(end, Err(CallError::Unreachable { .. })), "{end:?}");
    }

    #[test]
    fn redirects_are_followed_to_the_named_leader() {
        let mut ep = Endpoints::new(vec![1, 2, 3]);
        let mut call = Call::new(ms(0), &policy(), true, 1);
        assert_eq!(send_target(&mut call, &mut ep, ms(0), &[1]), Some(1));
        let error = ClientError::NotLeader { leader: None, leader_addr: Some("n2".into()) };
        call.on_answer(ms(1), &mut ep, 1, Answer::Redirect { leader: Some(2), error });
        // The leader is not connected yet: connect, then send there (not back to 1).
        assert_eq!(call.poll(ms(1), &mut ep), Step::Connect(2));
        assert!(matches!(call.poll(ms(1), &mut ep), Step::Connect(3)));
        assert!(matches!(call.poll(ms(1), &mut ep), Step::Wait(_)));
        ep.connected(2);
        assert!(matches!(call.poll(ms(2), &mut ep), Step::Send { to: 2, .. }));
        assert!(!call.maybe_applied(), "a redirect never takes effect");
    }

    #[test]
    fn a_non_retryable_error_ends_the_call_at_once() {
        let mut ep = Endpoints::new(vec![1]);
        let mut call = Call::new(ms(0), &policy(), true, 1);
        assert_eq!(send_target(&mut call, &mut ep, ms(0), &[1]), Some(1));
        let e = ClientError::InvalidRequest("empty key".into());
        call.on_answer(ms(1), &mut ep, 1, Answer::Error(e.clone()));
        assert_eq!(call.poll(ms(1), &mut ep), Step::Done(Err(CallError::Server(e))));
    }

    #[test]
    fn an_unanswered_attempt_times_out_by_itself() {
        let mut ep = Endpoints::new(vec![1, 2]);
        let mut call = Call::new(ms(0), &policy(), true, 1);
        assert_eq!(send_target(&mut call, &mut ep, ms(0), &[1, 2]), Some(1));
        assert_eq!(call.poll(ms(100), &mut ep), Step::Wait(ms(2000)));
        // Polled after the reply deadline: the attempt counts as lost, and the next one
        // goes to the other node after a pause.
        let step = call.poll(ms(2000), &mut ep);
        assert!(matches!(step, Step::Wait(_)), "{step:?}");
        assert!(call.maybe_applied());
        assert_eq!(send_target(&mut call, &mut ep, ms(2100), &[1, 2]), Some(2));
    }

    #[test]
    fn a_pinned_call_fails_fast_when_its_node_is_down() {
        let mut ep = Endpoints::new(vec![1, 2]);
        let mut call = Call::pinned(ms(0), &policy(), false, 1, 1);
        assert_eq!(call.poll(ms(0), &mut ep), Step::Connect(1));
        ep.connect_failed(ms(5), 1, Duration::from_secs(1), "handshake timed out".into());
        assert_eq!(
            call.poll(ms(5), &mut ep),
            Step::Done(Err(CallError::Unreachable { last: "handshake timed out".into() }))
        );
    }

    #[test]
    fn the_deadline_covers_the_whole_call() {
        let mut ep = Endpoints::new(vec![1]);
        let mut call = Call::new(ms(0), &Policy { deadline: Duration::from_millis(500), ..policy() }, true, 1);
        assert_eq!(call.poll(ms(0), &mut ep), Step::Connect(1));
        // The connection attempt's own timeout is cut to the call's deadline.
        assert_eq!(call.poll(ms(0), &mut ep), Step::Wait(ms(500)));
        assert!(matches!(call.poll(ms(500), &mut ep), Step::Done(Err(CallError::Unreachable { .. }))));
    }
}
