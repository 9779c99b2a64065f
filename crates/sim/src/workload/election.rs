//! The election service (`ballot-election`): campaigners with leases that keep them
//! alive, resign and crash (stop keeping alive), and the invariants users build on —
//! at most one holder per election at any instant, as the holders themselves believe
//! it under the lease rules, and fencing tokens that strictly increase.

use std::collections::BTreeMap;
use std::time::Duration;

use ballot_core::{Instant, SeededRng};
use ballot_election::{ElectionRequest, ElectionResponse, ElectionService, LeaseId, MIN_TTL_MS, REVOKE_RETRY};
use bytes::Bytes;

use super::{CallOutcome, PlannedOp, ServiceView, ServiceViolation, Workload};
use crate::sim::ClientConfig;

/// One leadership as its holder believed it: from when it learned it was elected until
/// its lease could have expired (the start of the last keep-alive it had confirmed, plus
/// the TTL), or until it resigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Hold {
    client: usize,
    token: u64,
    from: Instant,
    until: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    Grant,
    KeepAlive,
    Campaign,
    Resign,
}

#[derive(Clone, Debug, Default)]
struct Campaigner {
    /// The lease and until when the campaigner may count on it.
    lease: Option<(LeaseId, Instant)>,
    /// The hold it believes it has (an index into the election's holds).
    leading: Option<usize>,
    /// What it asked last, and when it sent it.
    pending: Option<(Pending, Instant)>,
    next_keep_alive: Instant,
}

/// Campaigners for one or two elections.
#[derive(Clone, Debug)]
pub struct ElectionWorkload {
    elections: Vec<String>,
    campaigners: Vec<Campaigner>,
    holds: BTreeMap<usize, Vec<Hold>>,
    /// How much earlier than its TTL a holder stops counting on its lease.
    lease_margin: Duration,
    /// The TTL campaigners ask for.
    ttl_ms: u64,
}

impl Default for ElectionWorkload {
    fn default() -> Self {
        ElectionWorkload {
            elections: vec!["jobs".into()],
            campaigners: Vec::new(),
            holds: BTreeMap::new(),
            lease_margin: Duration::ZERO,
            ttl_ms: MIN_TTL_MS,
        }
    }
}

impl ElectionWorkload {
    fn election_of(&self, client: usize) -> usize {
        client % self.elections.len()
    }

    fn campaigner(&mut self, client: usize) -> &mut Campaigner {
        if self.campaigners.len() <= client {
            self.campaigners.resize_with(client + 1, Campaigner::default);
        }
        &mut self.campaigners[client]
    }

    /// Ends `client`'s hold at `at` (no later than its lease allowed).
    fn step_down(&mut self, client: usize, at: Instant) {
        let e = self.election_of(client);
        let Some(i) = self.campaigner(client).leading.take() else { return };
        if let Some(h) = self.holds.get_mut(&e).and_then(|hs| hs.get_mut(i)) {
            h.until = h.until.min(at);
        }
    }
}

impl Workload for ElectionWorkload {
    type Service = ElectionService;

    fn name(&self) -> &'static str {
        "election"
    }

    fn wind_down(&self) -> Duration {
        // The leases the campaigners leave behind expire and are revoked (and a revoke
        // that got lost is retried) before the cluster falls quiet.
        Duration::from_millis(self.ttl_ms) + 2 * REVOKE_RETRY
    }

    fn service(&self) -> ElectionService {
        ElectionService::new()
    }

    fn shape(&mut self, rng: &mut SeededRng, clients: &mut ClientConfig) {
        self.lease_margin = clients.lease_margin;
        // Leases long enough that a holder still counts on one for most of its TTL.
        self.ttl_ms = MIN_TTL_MS.max(u64::try_from(clients.lease_margin.as_millis() * 4).unwrap_or(u64::MAX));
        if rng.gen_bool(0.5) {
            self.elections.push("locks".into());
        }
    }

    fn next_op(
        &mut self,
        rng: &mut SeededRng,
        client: usize,
        now: Instant,
        _cfg: &ClientConfig,
    ) -> Option<PlannedOp<ElectionRequest>> {
        let election = self.elections[self.election_of(client)].clone();
        if rng.gen_range(0..8) == 0 {
            // Who leads? A linearizable read, the one request every replica can serve
            // whatever the lease state (and the only one that succeeds under the Synod
            // once its single decision is taken).
            return Some(PlannedOp { request: ElectionRequest::Leader { election }, model: None });
        }
        let c = self.campaigner(client).clone();
        let request = match c.lease {
            // No lease, or one it can no longer count on: a leader stops acting at once.
            None => {
                self.step_down(client, now);
                self.campaigner(client).pending = Some((Pending::Grant, now));
                return Some(PlannedOp { request: ElectionRequest::Grant { ttl_ms: self.ttl_ms }, model: None });
            }
            Some((_, until)) if now >= until => {
                self.step_down(client, until);
                self.campaigner(client).lease = None;
                return None;
            }
            Some((lease, _)) if now >= c.next_keep_alive => {
                self.campaigner(client).pending = Some((Pending::KeepAlive, now));
                ElectionRequest::KeepAlive { lease }
            }
            Some((lease, _)) if c.leading.is_some() => {
                // A leader sometimes resigns, sometimes "crashes" (stops keeping its lease
                // alive, and so stops acting once the lease could have expired).
                match rng.gen_range(0..40) {
                    0 => {
                        self.step_down(client, now);
                        self.campaigner(client).pending = Some((Pending::Resign, now));
                        ElectionRequest::Resign { election, lease }
                    }
                    1 => {
                        let until = c.lease.map_or(now, |(_, u)| u);
                        self.step_down(client, until);
                        self.campaigner(client).lease = None;
                        return None;
                    }
                    _ => return None,
                }
            }
            Some((lease, _)) => {
                self.campaigner(client).pending = Some((Pending::Campaign, now));
                ElectionRequest::Campaign { election, lease, value: Bytes::from(format!("client-{client}")) }
            }
        };
        Some(PlannedOp { request, model: None })
    }

    fn completed(
        &mut self,
        client: usize,
        _request: &ElectionRequest,
        outcome: &CallOutcome<ElectionResponse>,
        now: Instant,
    ) {
        let e = self.election_of(client);
        let Some((kind, sent)) = self.campaigner(client).pending.take() else { return };
        match (kind, outcome) {
            (Pending::Grant, CallOutcome::Ok(ElectionResponse::Granted { lease, ttl_ms, .. })) => {
                let margin = self.lease_margin;
                let c = self.campaigner(client);
                c.lease = Some((*lease, sent + Duration::from_millis(*ttl_ms).saturating_sub(margin)));
                c.next_keep_alive = sent + Duration::from_millis(*ttl_ms / 3);
            }
            (Pending::KeepAlive, CallOutcome::Ok(ElectionResponse::KeptAlive { ttl_ms, .. })) => {
                // The leader restarted the TTL when it received the keep-alive, which was
                // after it was sent.
                let until = sent + Duration::from_millis(*ttl_ms).saturating_sub(self.lease_margin);
                let c = self.campaigner(client);
                if let Some((_, u)) = c.lease.as_mut() {
                    *u = (*u).max(until);
                }
                c.next_keep_alive = sent + Duration::from_millis(*ttl_ms / 3);
                if let Some(i) = c.leading
                    && let Some(h) = self.holds.get_mut(&e).and_then(|hs| hs.get_mut(i))
                {
                    h.until = h.until.max(until);
                }
            }
            (Pending::KeepAlive | Pending::Campaign, CallOutcome::Ok(ElectionResponse::LeaseNotFound { .. })) => {
                let until = self.campaigner(client).lease.map_or(now, |(_, u)| u);
                self.step_down(client, until.min(now));
                self.campaigner(client).lease = None;
            }
            (Pending::KeepAlive, _) => {
                // Not confirmed: retry soon; the lease counts only until its last confirmed
                // deadline.
                self.campaigner(client).next_keep_alive = now;
            }
            (Pending::Campaign, CallOutcome::Ok(ElectionResponse::Elected { leader, .. })) => {
                let c = self.campaigner(client);
                let until = c.lease.map_or(now, |(_, u)| u);
                if c.leading.is_none() && now < until {
                    let holds = self.holds.entry(e).or_default();
                    holds.push(Hold { client, token: leader.token, from: now, until });
                    let i = holds.len() - 1;
                    self.campaigner(client).leading = Some(i);
                }
            }
            _ => {}
        }
    }

    fn is_internal(&self, request: &ElectionRequest) -> bool {
        // The leader's lease clock revokes expired leases itself.
        matches!(request, ElectionRequest::Revoke { .. })
    }

    fn check(&mut self, _view: &ServiceView<'_, ElectionService>) -> Result<(), ServiceViolation> {
        for (e, holds) in &self.holds {
            let mut sorted: Vec<&Hold> = holds.iter().collect();
            sorted.sort_by_key(|h| (h.from, h.token));
            for pair in sorted.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                if b.from < a.until {
                    return Err((
                        "OneHolder",
                        format!(
                            "election {:?}: client {} led from {:?} (token {}) while client {} still held it until {:?} \
                             (token {})",
                            self.elections[*e], b.client, b.from, b.token, a.client, a.until, a.token
                        ),
                    ));
                }
                if b.token <= a.token {
                    return Err((
                        "FencingTokens",
                        format!(
                            "election {:?}: token {} of client {} (from {:?}) does not exceed token {} of the earlier \
                             leader, client {}",
                            self.elections[*e], b.token, b.client, b.from, a.token, a.client
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::History;

    fn check(w: &mut ElectionWorkload) -> Result<(), ServiceViolation> {
        let history = History::new();
        let view = ServiceView { now: Instant::ZERO, services: Vec::new(), history: &history, final_check: true };
        w.check(&view)
    }

    fn ms(v: u64) -> Instant {
        Instant::from_millis(v)
    }

    #[test]
    fn two_holders_at_once_and_a_non_increasing_token_are_caught() {
        let mut w = ElectionWorkload::default();
        w.holds.insert(0, vec![Hold { client: 0, token: 5, from: ms(0), until: ms(1000) }]);
        check(&mut w).expect("one holder");
        w.holds.get_mut(&0).unwrap().push(Hold { client: 1, token: 6, from: ms(1000), until: ms(2000) });
        check(&mut w).expect("handed over at the lease's end");
        w.holds.get_mut(&0).unwrap().push(Hold { client: 2, token: 7, from: ms(1500), until: ms(2500) });
        let (name, why) = check(&mut w).expect_err("overlap");
        assert_eq!(name, "OneHolder");
        assert!(why.contains("client 2 led from"), "{why}");

        let mut w = ElectionWorkload::default();
        w.holds.insert(
            0,
            vec![
                Hold { client: 0, token: 5, from: ms(0), until: ms(1000) },
                Hold { client: 1, token: 5, from: ms(2000), until: ms(3000) },
            ],
        );
        let (name, _) = check(&mut w).expect_err("a repeated token");
        assert_eq!(name, "FencingTokens");
    }
}
