//! A call under a Byzantine protocol's acceptance rule ([`ClientRule::Matching`]): the
//! request goes to every replica, and the call succeeds once enough distinct replicas
//! gave the same reply — f+1 for a write (at least one of them is correct, so the
//! result is the one the correct replicas computed), 2f+1 for a read served without
//! ordering.
//!
//! [`ClientRule::Matching`]: ballot_core::ClientRule::Matching

use std::collections::HashMap;
use std::hash::Hash;

use ballot_core::Instant;
use ballot_wire::ClientError;

use crate::call::{CallError, Policy, Step};
use crate::endpoints::{Endpoints, Link};

/// What one replica answered, as a [`QuorumCall`] compares answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Vote {
    /// A reply; `fingerprint` identifies its content (equal replies, equal fingerprints:
    /// the host hashes the reply's bytes).
    Reply {
        /// The reply's fingerprint.
        fingerprint: u64,
    },
    /// An error the replica sent instead of a reply.
    Error(ClientError),
}

/// One replica's part in the call.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    /// Not sent (yet, or again after `retry_at`).
    Unsent { retry_at: Instant },
    /// Sent; an answer is due by `reply_by`.
    InFlight { reply_by: Instant },
    /// Answered with a reply.
    Replied(u64),
}

/// One request sent to every replica until `needed` of them gave matching replies; see
/// the [module docs](self).
///
/// The host polls it like a [`Call`](crate::Call): [`Step::Connect`] and [`Step::Send`]
/// come for each replica in turn (send to all of them: the call does not wait for one
/// answer before the next send), [`Step::Wait`] when nothing is to be done before an
/// instant, and [`Step::Done`] at the end. On success, [`accepted`](Self::accepted) is
/// the fingerprint of the reply to return: the host keeps the replies it got and picks
/// one with that fingerprint.
#[derive(Clone, Debug)]
pub struct QuorumCall<A> {
    policy: Policy,
    deadline: Instant,
    needed: usize,
    write: bool,
    parts: HashMap<A, Part>,
    /// Non-retryable errors, by replica: `needed` equal ones end the call with it.
    errors: HashMap<A, ClientError>,
    maybe_applied: bool,
    last: Option<String>,
    result: Option<Result<u64, CallError>>,
}

impl<A: Clone + Eq + Hash + std::fmt::Debug> QuorumCall<A> {
    /// A call started at `now` that needs `needed` matching replies (at least 1).
    /// `write` says whether the request changes state (then an unanswered attempt makes
    /// the outcome unknown).
    #[must_use]
    pub fn new(now: Instant, policy: &Policy, write: bool, needed: usize) -> Self {
        QuorumCall {
            policy: policy.clone(),
            deadline: now + policy.deadline,
            needed: needed.max(1),
            write,
            parts: HashMap::new(),
            errors: HashMap::new(),
            maybe_applied: false,
            last: None,
            result: None,
        }
    }

    /// The fingerprint of the reply `needed` replicas agreed on, once the call succeeded.
    #[must_use]
    pub fn accepted(&self) -> Option<u64> {
        match &self.result {
            Some(Ok(fingerprint)) => Some(*fingerprint),
            _ => None,
        }
    }

    /// The next thing to do.
    pub fn poll(&mut self, now: Instant, endpoints: &mut Endpoints<A>) -> Step<A> {
        if let Some(result) = &self.result {
            return Step::Done(result.clone().map(|_| ()));
        }
        if now >= self.deadline {
            return self.finish(Err(self.final_error(endpoints)));
        }
        // Unanswered attempts: the replica may have acted on it; send again later
        // (a Byzantine protocol's clients retransmit to every replica).
        for (node, part) in &mut self.parts {
            if let Part::InFlight { reply_by } = part
                && now >= *reply_by
            {
                if self.write {
                    self.maybe_applied = true;
                }
                self.last = Some(format!("no answer from {node:?} within {:?}", self.policy.attempt_timeout));
                *part = Part::Unsent { retry_at: now + self.policy.backoff_min };
            }
        }
        endpoints.expire(now, self.policy.retry_down_after);
        let mut wake = self.deadline;
        for node in endpoints.nodes().to_vec() {
            match self.parts.get(&node).cloned().unwrap_or(Part::Unsent { retry_at: now }) {
                Part::Replied(_) => continue,
                Part::InFlight { reply_by } => wake = wake.min(reply_by),
                Part::Unsent { retry_at } if retry_at > now => wake = wake.min(retry_at),
                Part::Unsent { .. } => match endpoints.link(&node) {
                    Link::Up => {
                        let reply_by = (now + self.policy.attempt_timeout).min(self.deadline);
                        self.parts.insert(node.clone(), Part::InFlight { reply_by });
                        return Step::Send { to: node, reply_by };
                    }
                    Link::Idle => {
                        endpoints.start_connecting(&node, now + self.policy.connect_timeout);
                        return Step::Connect(node);
                    }
                    Link::Connecting { until } | Link::Down { until } => wake = wake.min(until),
                },
            }
        }
        Step::Wait(wake)
    }

    /// Replica `node` answered the request sent to it.
    pub fn on_vote(&mut self, now: Instant, node: A, vote: Vote) {
        if self.result.is_some() || !matches!(self.parts.get(&node), Some(Part::InFlight { .. })) {
            return;
        }
        match vote {
            Vote::Reply { fingerprint } => {
                self.parts.insert(node, Part::Replied(fingerprint));
                let matching = self.parts.values().filter(|p| **p == Part::Replied(fingerprint)).count();
                if matching >= self.needed {
                    self.result = Some(Ok(fingerprint));
                }
            }
            Vote::Error(error) => {
                if error.is_outcome_unknown() && self.write {
                    self.maybe_applied = true;
                }
                self.last = Some(error.to_string());
                if !error.is_retryable() {
                    self.errors.insert(node.clone(), error.clone());
                    let same = self.errors.values().filter(|e| **e == error).count();
                    if same >= self.needed {
                        // At least one correct replica refused it: so do we. An earlier
                        // attempt may still have taken effect elsewhere.
                        let end = if self.maybe_applied {
                            CallError::OutcomeUnknown { last: error.to_string() }
                        } else {
                            CallError::Server(error)
                        };
                        self.result = Some(Err(end));
                        return;
                    }
                }
                self.parts.insert(node, Part::Unsent { retry_at: now + self.policy.backoff_min });
            }
        }
    }

    /// The request could not be sent to `node`, or its connection broke before it
    /// answered: try that replica again later.
    pub fn on_lost(&mut self, now: Instant, endpoints: &mut Endpoints<A>, node: &A, reason: &str) {
        if !matches!(self.parts.get(node), Some(Part::InFlight { .. })) {
            return;
        }
        if self.write {
            self.maybe_applied = true;
        }
        endpoints.disconnected(node);
        self.last = Some(reason.to_owned());
        self.parts.insert(node.clone(), Part::Unsent { retry_at: now + self.policy.backoff_min });
    }

    fn finish(&mut self, result: Result<u64, CallError>) -> Step<A> {
        self.result = Some(result.clone());
        Step::Done(result.map(|_| ()))
    }

    fn final_error(&self, endpoints: &Endpoints<A>) -> CallError {
        let replied = self.parts.values().filter(|p| matches!(p, Part::Replied(_))).count();
        let last = self.last.clone().unwrap_or_else(|| {
            endpoints.last_failure().unwrap_or("no replica answered before the deadline").to_owned()
        });
        let last = format!("{replied} replies, none matched by {} replicas; last: {last}", self.needed);
        if self.maybe_applied || (self.write && replied > 0) {
            CallError::OutcomeUnknown { last }
        } else {
            CallError::Unreachable { last }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    /// Four replicas, all connected; f = 1, so writes need 2 matching replies.
    fn cluster() -> Endpoints<&'static str> {
        let mut e = Endpoints::new(vec!["n1", "n2", "n3", "n4"]);
        for n in ["n1", "n2", "n3", "n4"] {
            e.connected(n);
        }
        e
    }

    fn send_to_all(
        call: &mut QuorumCall<&'static str>,
        e: &mut Endpoints<&'static str>,
        now: Instant,
    ) -> Vec<&'static str> {
        let mut sent = Vec::new();
        while let Step::Send { to, .. } = call.poll(now, e) {
            sent.push(to);
        }
        sent.sort_unstable();
        sent
    }

    #[test]
    fn the_request_goes_to_every_replica_and_f_plus_1_matching_replies_settle_it() {
        let mut e = cluster();
        let mut call = QuorumCall::new(ms(0), &Policy::default(), true, 2);
        assert_eq!(send_to_all(&mut call, &mut e, ms(0)), vec!["n1", "n2", "n3", "n4"]);
        call.on_vote(ms(1), "n2", Vote::Reply { fingerprint: 9 }); // the liar
        call.on_vote(ms(2), "n1", Vote::Reply { fingerprint: 7 });
        assert!(matches!(call.poll(ms(2), &mut e), Step::Wait(_)), "one reply of each is not enough");
        call.on_vote(ms(3), "n3", Vote::Reply { fingerprint: 7 });
        assert_eq!(call.poll(ms(3), &mut e), Step::Done(Ok(())));
        assert_eq!(call.accepted(), Some(7));
    }

    #[test]
    fn one_replica_repeating_itself_is_not_a_quorum() {
        let mut e = cluster();
        let mut call = QuorumCall::new(ms(0), &Policy::default(), true, 2);
        send_to_all(&mut call, &mut e, ms(0));
        call.on_vote(ms(1), "n2", Vote::Reply { fingerprint: 9 });
        call.on_vote(ms(2), "n2", Vote::Reply { fingerprint: 9 });
        assert!(matches!(call.poll(ms(2), &mut e), Step::Wait(_)));
        assert_eq!(call.accepted(), None);
    }

    #[test]
    fn a_lone_liar_cannot_settle_a_write_and_silence_makes_the_outcome_unknown() {
        let policy = Policy::default();
        let mut e = cluster();
        let mut call = QuorumCall::new(ms(0), &policy, true, 2);
        send_to_all(&mut call, &mut e, ms(0));
        call.on_vote(ms(1), "n2", Vote::Reply { fingerprint: 9 });
        // The others never answer: the call retransmits to them after the attempt
        // timeout, then gives up at the deadline.
        let lost = ms(0) + policy.attempt_timeout;
        assert_eq!(call.poll(lost, &mut e), Step::Wait(lost + policy.backoff_min), "a pause before resending");
        let retry = lost + policy.backoff_min;
        assert_eq!(send_to_all(&mut call, &mut e, retry), vec!["n1", "n3", "n4"], "retransmitted");
        let end = ms(0) + policy.deadline;
        match call.poll(end, &mut e) {
            Step::Done(Err(CallError::OutcomeUnknown { last })) => assert!(last.contains("1 replies"), "{last}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_from_f_plus_1_replicas_end_the_call_and_fewer_are_retried() {
        let mut e = cluster();
        let mut call = QuorumCall::new(ms(0), &Policy::default(), false, 2);
        send_to_all(&mut call, &mut e, ms(0));
        let refused = ClientError::InvalidRequest("bad key".into());
        call.on_vote(ms(1), "n4", Vote::Error(refused.clone()));
        assert!(matches!(call.poll(ms(1), &mut e), Step::Wait(_)), "one replica's word is not enough");
        call.on_vote(ms(2), "n1", Vote::Error(refused.clone()));
        assert_eq!(call.poll(ms(2), &mut e), Step::Done(Err(CallError::Server(refused))));
    }

    #[test]
    fn unconnected_replicas_are_connected_to_first() {
        let mut e = Endpoints::new(vec!["n1", "n2"]);
        let mut call = QuorumCall::new(ms(0), &Policy::default(), false, 2);
        assert_eq!(call.poll(ms(0), &mut e), Step::Connect("n1"));
        assert_eq!(call.poll(ms(0), &mut e), Step::Connect("n2"));
        assert!(matches!(call.poll(ms(0), &mut e), Step::Wait(_)));
        e.connected("n2");
        assert!(matches!(call.poll(ms(1), &mut e), Step::Send { to: "n2", .. }));
    }
}
