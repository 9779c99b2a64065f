//! The election service's state and its [`StateMachine`] implementation.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use ballot_core::Instant;
use ballot_core::service::{Consistency, Header, Rejection, RestoreError, Route, StateMachine};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{
    ElectionError, ElectionRequest, ElectionResponse, LeaderEvent, Leadership, LeaseId, MAX_CAMPAIGNS_PER_LEASE,
    MAX_LEASES, MAX_NAME_SIZE, MAX_TTL_MS, MAX_VALUE_SIZE, MIN_TTL_MS,
};

/// The snapshot format this version writes: 2 adds the agreed-time lease deadlines
/// after the state of format 1 (which it still reads).
const SNAPSHOT_FORMAT: u8 = 2;

/// How long the leader waits for a proposed revocation of an expired lease to apply
/// before proposing it again (the first may have been lost).
pub const REVOKE_RETRY: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Lease {
    ttl_ms: u64,
    /// The elections this lease leads or waits in.
    elections: BTreeSet<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Candidate {
    lease: LeaseId,
    value: Bytes,
}

/// An election with a leader or candidates (elections with neither are dropped).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Election {
    leader: Option<Leadership>,
    queue: VecDeque<Candidate>,
}

/// The replicated state: a function of the log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    /// State-changing writes applied.
    revision: u64,
    /// The last log index applied.
    applied: u64,
    /// The last fencing token handed out.
    last_token: u64,
    leases: BTreeMap<LeaseId, Lease>,
    elections: BTreeMap<String, Election>,
}

/// Lease deadlines in time the replicas agreed on (under a Byzantine protocol, see
/// [`StateMachine::apply_time`]): replicated state, the same on every replica.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct AgreedLeases {
    /// The agreed time: the latest applied, in milliseconds since the Unix epoch.
    now_ms: u64,
    /// Every lease's deadline in agreed time.
    deadlines: BTreeMap<LeaseId, u64>,
}

/// The leader's volatile lease clock: deadlines exist only on the leader.
#[derive(Clone, Debug, Default)]
struct LeaseClock {
    deadlines: BTreeMap<LeaseId, Instant>,
    /// Expired leases whose revocation was proposed, and when.
    revoking: BTreeMap<LeaseId, Instant>,
}

/// The election service: leases, named elections with FIFO candidate queues, and
/// fencing tokens.
///
/// Lease deadlines have two homes, chosen by the consensus underneath:
///
/// * **Leader-local** (Raft, Multi-Paxos): [`tick`](StateMachine::tick) on the leader
///   proposes revocations of leases past their deadline,
///   [`leader_request`](StateMachine::leader_request) serves keep-alives; followers keep
///   no deadlines. A replica that becomes leader (its first `tick(_, true)` or leader
///   request since it last ticked as a follower) gives every lease a full TTL from then,
///   so a failover never expires a live lease early. The driver should call
///   `tick(now, false)` as soon as the replica stops leading.
/// * **Agreed time** (PBFT, where no single replica's clock is trusted): once the first
///   [`apply_time`](StateMachine::apply_time) arrives, deadlines are replicated state:
///   set by grants and ordered keep-alives (which, like TTL queries, are then applied as
///   writes), and leases expire when an applied agreed time passes their deadline, on
///   every replica alike. Leases that existed before get a full TTL from that first time.
#[derive(Clone, Debug, Default)]
pub struct ElectionService {
    state: State,
    agreed: Option<AgreedLeases>,
    clock: Option<LeaseClock>,
}

fn ttl(lease: &Lease) -> Duration {
    Duration::from_millis(lease.ttl_ms)
}

fn check_name(election: &str) -> Result<(), Rejection> {
    if election.is_empty() {
        return Err(Rejection::Invalid("the election name is empty".into()));
    }
    Rejection::check_size("election name", election.len(), MAX_NAME_SIZE)?;
    if election.chars().any(char::is_control) {
        return Err(Rejection::Invalid(format!("the election name {election:?} contains a control character")));
    }
    Ok(())
}

impl ElectionService {
    /// An empty service.
    #[must_use]
    pub fn new() -> Self {
        ElectionService::default()
    }

    /// The current revision: how many state-changing writes were applied.
    #[must_use]
    pub fn revision(&self) -> u64 {
        self.state.revision
    }

    /// How many leases exist.
    #[must_use]
    pub fn lease_count(&self) -> usize {
        self.state.leases.len()
    }

    /// The current leader of `election`.
    #[must_use]
    pub fn leader(&self, election: &str) -> Option<&Leadership> {
        self.state.elections.get(election).and_then(|e| e.leader.as_ref())
    }

    /// The leases queued in `election`, in the order they will lead.
    #[must_use]
    pub fn queue(&self, election: &str) -> Vec<LeaseId> {
        self.state.elections.get(election).map(|e| e.queue.iter().map(|c| c.lease).collect()).unwrap_or_default()
    }

    fn header(&self) -> Header {
        Header { revision: self.state.revision }
    }

    /// Hands `election`'s leadership to its next candidate, or leaves it vacant (and drops
    /// it); returns the event.
    fn promote(&mut self, election: &str) -> LeaderEvent {
        let revision = self.state.revision;
        let next = match self.state.elections.get_mut(election) {
            Some(e) => match e.queue.pop_front() {
                Some(c) => {
                    self.state.last_token += 1;
                    let leader = Leadership { lease: c.lease, value: c.value, token: self.state.last_token, revision };
                    e.leader = Some(leader.clone());
                    Some(leader)
                }
                None => {
                    self.state.elections.remove(election);
                    None
                }
            },
            None => None,
        };
        LeaderEvent { election: election.to_owned(), revision, leader: next }
    }

    /// Takes `lease` out of `election`, as leader or candidate (the revision is already
    /// bumped); returns the leadership change, if any.
    fn withdraw(&mut self, election: &str, lease: LeaseId) -> Option<LeaderEvent> {
        let e = self.state.elections.get_mut(election)?;
        if e.leader.as_ref().is_some_and(|l| l.lease == lease) {
            e.leader = None;
            return Some(self.promote(election));
        }
        e.queue.retain(|c| c.lease != lease);
        None
    }

    fn grant(&mut self, index: u64, ttl_ms: u64) -> ElectionResponse {
        let lease = LeaseId(index);
        if self.state.leases.len() >= MAX_LEASES {
            return ElectionResponse::Rejected(Rejection::Invalid(format!(
                "too many leases ({MAX_LEASES}); revoke unused ones first"
            )));
        }
        if self.state.leases.contains_key(&lease) {
            return ElectionResponse::Rejected(Rejection::Invalid(format!("lease {lease} already exists")));
        }
        self.state.revision += 1;
        self.state.leases.insert(lease, Lease { ttl_ms, elections: BTreeSet::new() });
        if let Some(a) = &mut self.agreed {
            a.deadlines.insert(lease, a.now_ms.saturating_add(ttl_ms));
        }
        ElectionResponse::Granted { header: self.header(), lease, ttl_ms }
    }

    fn revoke(&mut self, lease: LeaseId) -> (ElectionResponse, Vec<LeaderEvent>) {
        let Some(l) = self.state.leases.remove(&lease) else {
            return (ElectionResponse::LeaseNotFound { lease }, Vec::new());
        };
        if let Some(clock) = &mut self.clock {
            clock.deadlines.remove(&lease);
            clock.revoking.remove(&lease);
        }
        if let Some(a) = &mut self.agreed {
            a.deadlines.remove(&lease);
        }
        self.state.revision += 1;
        let events = l.elections.iter().filter_map(|e| self.withdraw(e, lease)).collect();
        (ElectionResponse::Revoked { header: self.header(), lease }, events)
    }

    fn campaign(&mut self, election: String, lease: LeaseId, value: Bytes) -> (ElectionResponse, Vec<LeaderEvent>) {
        let Some(l) = self.state.leases.get(&lease) else {
            return (ElectionResponse::LeaseNotFound { lease }, Vec::new());
        };
        if let Some(e) = self.state.elections.get(&election) {
            if let Some(leader) = e.leader.as_ref().filter(|l| l.lease == lease) {
                let leader = leader.clone();
                return (ElectionResponse::Elected { header: self.header(), election, leader }, Vec::new());
            }
            if let Some(ahead) = e.queue.iter().position(|c| c.lease == lease) {
                let ahead = ahead as u64;
                return (ElectionResponse::Queued { header: self.header(), election, lease, ahead }, Vec::new());
            }
        }
        if l.elections.len() >= MAX_CAMPAIGNS_PER_LEASE {
            return (
                ElectionResponse::Rejected(Rejection::Invalid(format!(
                    "lease {lease} already campaigns in {MAX_CAMPAIGNS_PER_LEASE} elections, the most allowed"
                ))),
                Vec::new(),
            );
        }
        self.state.revision += 1;
        let revision = self.state.revision;
        if let Some(l) = self.state.leases.get_mut(&lease) {
            l.elections.insert(election.clone());
        }
        let e = self.state.elections.entry(election.clone()).or_default();
        if e.leader.is_some() {
            e.queue.push_back(Candidate { lease, value });
            let ahead = e.queue.len() as u64 - 1;
            return (ElectionResponse::Queued { header: self.header(), election, lease, ahead }, Vec::new());
        }
        self.state.last_token += 1;
        let leader = Leadership { lease, value, token: self.state.last_token, revision };
        e.leader = Some(leader.clone());
        let event = LeaderEvent { election: election.clone(), revision, leader: Some(leader.clone()) };
        (ElectionResponse::Elected { header: self.header(), election, leader }, vec![event])
    }

    fn resign(&mut self, election: String, lease: LeaseId) -> (ElectionResponse, Vec<LeaderEvent>) {
        let standing = self.state.elections.get(&election).and_then(|e| {
            if e.leader.as_ref().is_some_and(|l| l.lease == lease) {
                Some(true)
            } else {
                e.queue.iter().any(|c| c.lease == lease).then_some(false)
            }
        });
        let Some(was_leader) = standing else {
            if self.state.leases.contains_key(&lease) {
                return (ElectionResponse::NotCandidate { election, lease }, Vec::new());
            }
            return (ElectionResponse::LeaseNotFound { lease }, Vec::new());
        };
        self.state.revision += 1;
        if let Some(l) = self.state.leases.get_mut(&lease) {
            l.elections.remove(&election);
        }
        let events = self.withdraw(&election, lease).into_iter().collect();
        (ElectionResponse::Resigned { header: self.header(), election, lease, was_leader }, events)
    }

    /// Looks `lease` up for a leader-local request at `now`: its TTL and live deadline.
    fn lease_deadline(&mut self, now: Instant, lease: LeaseId) -> Result<(u64, &mut Instant), ElectionResponse> {
        let Some(l) = self.state.leases.get(&lease) else {
            return Err(if lease.0 > self.state.applied {
                ElectionResponse::LeaseNotYetApplied { lease }
            } else {
                ElectionResponse::LeaseNotFound { lease }
            });
        };
        let clock = self.clock.get_or_insert_with(LeaseClock::default);
        let deadline = clock.deadlines.entry(lease).or_insert(now + ttl(l));
        if now >= *deadline {
            // Expired: its revocation is (or will be) proposed; it cannot be revived.
            return Err(ElectionResponse::LeaseNotFound { lease });
        }
        Ok((l.ttl_ms, deadline))
    }

    /// A keep-alive or TTL query applied in agreed time: answered from the replicated
    /// deadline (a keep-alive first moves it a full TTL past the agreed time).
    fn agreed_lease_request(&mut self, request: &ElectionRequest) -> Option<ElectionResponse> {
        let (ElectionRequest::KeepAlive { lease } | ElectionRequest::TimeToLive { lease }) = request else {
            return None;
        };
        let a = self.agreed.as_mut()?;
        let (Some(l), Some(deadline)) = (self.state.leases.get(lease), a.deadlines.get_mut(lease)) else {
            return Some(ElectionResponse::LeaseNotFound { lease: *lease });
        };
        let lease = *lease;
        let ttl_ms = l.ttl_ms;
        Some(if matches!(request, ElectionRequest::KeepAlive { .. }) {
            *deadline = a.now_ms.saturating_add(ttl_ms);
            ElectionResponse::KeptAlive { lease, ttl_ms }
        } else {
            ElectionResponse::TimeToLive { lease, ttl_ms, remaining_ms: deadline.saturating_sub(a.now_ms) }
        })
    }

    /// The agreed time, once the consensus orders time (milliseconds since the Unix
    /// epoch); `None` while lease deadlines are leader-local.
    #[must_use]
    pub fn agreed_time(&self) -> Option<u64> {
        self.agreed.as_ref().map(|a| a.now_ms)
    }

    /// Serializes the leases, elections, queues, token counter and agreed-time deadlines
    /// (not the leader's volatile deadlines).
    #[must_use]
    pub fn to_snapshot(&self) -> Vec<u8> {
        let out = postcard::to_extend(&self.state, vec![SNAPSHOT_FORMAT]);
        postcard::to_extend(&self.agreed, out.expect("serializing plain data into memory cannot fail"))
            .expect("serializing plain data into memory cannot fail")
    }

    /// Decodes a snapshot written by [`to_snapshot`](Self::to_snapshot), checking that it
    /// is consistent. The result is a follower: it keeps no deadlines until it leads.
    ///
    /// # Errors
    /// [`ElectionError`] if the bytes do not decode or describe an impossible state.
    pub fn from_snapshot(data: &[u8]) -> Result<Self, ElectionError> {
        let (&found, rest) =
            data.split_first().ok_or(ElectionError::CorruptSnapshot("the snapshot is empty".into()))?;
        if !(1..=SNAPSHOT_FORMAT).contains(&found) {
            return Err(ElectionError::SnapshotFormat { found, supported: SNAPSHOT_FORMAT });
        }
        let (state, rest): (State, _) = postcard::take_from_bytes(rest)?;
        let (agreed, trailing): (Option<AgreedLeases>, _) =
            if found >= 2 { postcard::take_from_bytes(rest)? } else { (None, rest) };
        if !trailing.is_empty() {
            return Err(ElectionError::CorruptSnapshot(format!("{} trailing bytes", trailing.len())));
        }
        check_state(&state).map_err(ElectionError::CorruptSnapshot)?;
        if let Some(a) = &agreed
            && !a.deadlines.keys().eq(state.leases.keys())
        {
            return Err(ElectionError::CorruptSnapshot("the agreed-time deadlines do not match the leases".into()));
        }
        Ok(ElectionService { state, agreed, clock: None })
    }
}

/// Checks the invariants a snapshot must keep.
fn check_state(s: &State) -> Result<(), String> {
    let mut memberships = 0usize;
    for (id, lease) in &s.leases {
        if !(MIN_TTL_MS..=MAX_TTL_MS).contains(&lease.ttl_ms) || id.0 > s.applied || id.0 == 0 {
            return Err(format!("lease {id} is impossible"));
        }
        memberships += lease.elections.len();
    }
    let mut members = 0usize;
    for (name, e) in &s.elections {
        check_name(name).map_err(|r| r.to_string())?;
        let Some(leader) = &e.leader else {
            return Err(format!("election {name:?} has no leader"));
        };
        if leader.token == 0 || leader.token > s.last_token || leader.revision > s.revision {
            return Err(format!("election {name:?} has an impossible token or revision"));
        }
        let leases: BTreeSet<LeaseId> = std::iter::once(leader.lease).chain(e.queue.iter().map(|c| c.lease)).collect();
        if leases.len() != 1 + e.queue.len() {
            return Err(format!("election {name:?} lists a lease twice"));
        }
        for lease in leases {
            if !s.leases.get(&lease).is_some_and(|l| l.elections.contains(name)) {
                return Err(format!("election {name:?} lists lease {lease}, which does not campaign in it"));
            }
            members += 1;
        }
    }
    if members != memberships {
        return Err("leases list elections they do not campaign in".into());
    }
    Ok(())
}

impl StateMachine for ElectionService {
    type Request = ElectionRequest;
    type Response = ElectionResponse;
    type Event = LeaderEvent;

    fn route(request: &ElectionRequest) -> Route {
        match request {
            ElectionRequest::Grant { .. }
            | ElectionRequest::Revoke { .. }
            | ElectionRequest::Campaign { .. }
            | ElectionRequest::Resign { .. } => Route::Write,
            ElectionRequest::KeepAlive { .. } | ElectionRequest::TimeToLive { .. } => Route::Leader,
            ElectionRequest::Leader { .. } => Route::Read(Consistency::Linearizable),
            ElectionRequest::Observe { .. } => Route::Watch,
        }
    }

    fn operation(request: &ElectionRequest) -> &'static str {
        match request {
            ElectionRequest::Grant { .. } => "grant",
            ElectionRequest::KeepAlive { .. } => "keep_alive",
            ElectionRequest::TimeToLive { .. } => "time_to_live",
            ElectionRequest::Revoke { .. } => "revoke",
            ElectionRequest::Campaign { .. } => "campaign",
            ElectionRequest::Resign { .. } => "resign",
            ElectionRequest::Leader { .. } => "leader",
            ElectionRequest::Observe { .. } => "observe",
        }
    }

    fn validate(&self, request: &ElectionRequest) -> Result<(), Rejection> {
        match request {
            ElectionRequest::Grant { ttl_ms } => {
                if !(MIN_TTL_MS..=MAX_TTL_MS).contains(ttl_ms) {
                    return Err(Rejection::Invalid(format!(
                        "lease TTL {ttl_ms} ms is outside the allowed {MIN_TTL_MS}..={MAX_TTL_MS} ms"
                    )));
                }
                Ok(())
            }
            ElectionRequest::KeepAlive { .. } | ElectionRequest::TimeToLive { .. } | ElectionRequest::Revoke { .. } => {
                Ok(())
            }
            ElectionRequest::Campaign { election, value, .. } => {
                check_name(election)?;
                Rejection::check_size("value", value.len(), MAX_VALUE_SIZE)
            }
            ElectionRequest::Resign { election, .. }
            | ElectionRequest::Leader { election }
            | ElectionRequest::Observe { election } => check_name(election),
        }
    }

    fn apply(&mut self, index: u64, request: ElectionRequest) -> (ElectionResponse, Vec<LeaderEvent>) {
        self.state.applied = self.state.applied.max(index);
        if let Err(rejection) = self.validate(&request) {
            return (ElectionResponse::Rejected(rejection), Vec::new());
        }
        match request {
            ElectionRequest::Grant { ttl_ms } => (self.grant(index, ttl_ms), Vec::new()),
            ElectionRequest::Revoke { lease } => self.revoke(lease),
            ElectionRequest::Campaign { election, lease, value } => self.campaign(election, lease, value),
            ElectionRequest::Resign { election, lease } => self.resign(election, lease),
            other => (self.agreed_lease_request(&other).unwrap_or_else(|| self.query(&other)), Vec::new()),
        }
    }

    fn apply_internal(&mut self, index: u64) {
        self.state.applied = self.state.applied.max(index);
    }

    fn wants_agreed_time() -> bool {
        true
    }

    fn agreed_deadline(&self) -> Option<u64> {
        self.agreed.as_ref().and_then(|a| a.deadlines.values().min().copied())
    }

    /// Moves the agreed time to `unix_ms` (never back) and revokes every lease whose
    /// deadline it reached, in lease order; the first agreed time gives every existing
    /// lease a full TTL.
    fn apply_time(&mut self, index: u64, unix_ms: u64) -> Vec<LeaderEvent> {
        self.state.applied = self.state.applied.max(index);
        let leases = &self.state.leases;
        let a = self.agreed.get_or_insert_with(|| AgreedLeases {
            now_ms: unix_ms,
            deadlines: leases.iter().map(|(id, l)| (*id, unix_ms.saturating_add(l.ttl_ms))).collect(),
        });
        a.now_ms = a.now_ms.max(unix_ms);
        let now = a.now_ms;
        let expired: Vec<LeaseId> = a.deadlines.iter().filter(|(_, d)| **d <= now).map(|(id, _)| *id).collect();
        expired.into_iter().flat_map(|lease| self.revoke(lease).1).collect()
    }

    fn query(&self, request: &ElectionRequest) -> ElectionResponse {
        match request {
            ElectionRequest::Leader { election } => ElectionResponse::Leader {
                header: self.header(),
                election: election.clone(),
                leader: self.leader(election).cloned(),
            },
            ElectionRequest::KeepAlive { .. } | ElectionRequest::TimeToLive { .. } => ElectionResponse::Rejected(
                Rejection::Invalid("lease keep-alives and TTLs are served by the leader alone".into()),
            ),
            ElectionRequest::Observe { .. } => ElectionResponse::Rejected(Rejection::Invalid(
                "observing opens a stream of events; it cannot be answered as a read".into(),
            )),
            ElectionRequest::Grant { .. }
            | ElectionRequest::Revoke { .. }
            | ElectionRequest::Campaign { .. }
            | ElectionRequest::Resign { .. } => ElectionResponse::Rejected(Rejection::Invalid(format!(
                "`{}` is a write: it must be ordered through the log, not served as a read",
                Self::operation(request)
            ))),
        }
    }

    fn watch_start(&self, request: &ElectionRequest) -> Result<Vec<LeaderEvent>, Rejection> {
        let ElectionRequest::Observe { election } = request else {
            return Err(Rejection::Invalid("this request is not an observation".into()));
        };
        Ok(vec![LeaderEvent {
            election: election.clone(),
            revision: self.state.revision,
            leader: self.leader(election).cloned(),
        }])
    }

    fn watch_matches(&self, request: &ElectionRequest, event: &LeaderEvent) -> bool {
        matches!(request, ElectionRequest::Observe { election } if *election == event.election)
    }

    fn leader_request(&mut self, now: Instant, request: &ElectionRequest) -> ElectionResponse {
        match request {
            ElectionRequest::KeepAlive { lease } => match self.lease_deadline(now, *lease) {
                Ok((ttl_ms, deadline)) => {
                    *deadline = now + Duration::from_millis(ttl_ms);
                    ElectionResponse::KeptAlive { lease: *lease, ttl_ms }
                }
                Err(response) => response,
            },
            ElectionRequest::TimeToLive { lease } => match self.lease_deadline(now, *lease) {
                Ok((ttl_ms, deadline)) => {
                    let remaining_ms = u64::try_from((*deadline - now).as_millis()).unwrap_or(u64::MAX);
                    ElectionResponse::TimeToLive { lease: *lease, ttl_ms, remaining_ms }
                }
                Err(response) => response,
            },
            other => self.query(other),
        }
    }

    fn tick(&mut self, now: Instant, is_leader: bool) -> Vec<ElectionRequest> {
        if !is_leader {
            self.clock = None;
            return Vec::new();
        }
        let clock = self.clock.get_or_insert_with(LeaseClock::default);
        let mut revokes = Vec::new();
        for (id, lease) in &self.state.leases {
            let deadline = *clock.deadlines.entry(*id).or_insert(now + ttl(lease));
            if now < deadline {
                continue;
            }
            if clock.revoking.get(id).is_none_or(|&at| now >= at + REVOKE_RETRY) {
                clock.revoking.insert(*id, now);
                revokes.push(ElectionRequest::Revoke { lease: *id });
            }
        }
        revokes
    }

    fn snapshot(&self) -> Vec<u8> {
        self.to_snapshot()
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), RestoreError> {
        *self = ElectionService::from_snapshot(data).map_err(|e| RestoreError(e.to_string()))?;
        Ok(())
    }
}
