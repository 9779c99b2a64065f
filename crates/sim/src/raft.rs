//! Raft in the simulator: the [`RaftAlgorithm`] factory and the checkers for Raft's own
//! invariants (Raft paper, Figure 3): [`ElectionSafety`], [`LeaderAppendOnly`],
//! [`LogMatching`], [`LeaderCompleteness`], plus [`LogConvergence`] at the end of a run.
//! State Machine Safety is the generic [`Agreement`](crate::Agreement) checker.
//!
//! The checkers read replicas through the small [`RaftView`] trait, so they can be
//! tested against hand-made logs.

use std::collections::BTreeMap;
use std::time::Duration;

use ballot_core::{Instant, Membership, NodeId, Recovered, Role, SeededRng};
use ballot_raft::{Config, Entry, HardState, MembershipChange, Raft};

use crate::algorithm::{AdminAction, Algorithm, FlowLimits, NodeInfo, Tuned, vary_election};
use crate::checker::{Checker, Observation};
use crate::fasthash::FastMap;
use crate::sim::SimConfig;

/// Runs [`ballot_raft::Raft`] in the simulator.
///
/// By default every run draws its own settings from the seed (timeouts, PreVote,
/// CheckQuorum, lease reads, batching and flow-control limits, snapshot chunk size), so
/// many seeds cover many configurations; [`Tuned::fixed`] pins them.
pub type RaftAlgorithm = Tuned<Config>;

impl Default for RaftAlgorithm {
    fn default() -> Self {
        Tuned::drawn(Config::new(NodeId(1)))
    }
}

impl Algorithm for RaftAlgorithm {
    type Protocol = Raft;
    type BuildError = ballot_raft::RaftError;

    fn name(&self) -> &'static str {
        ballot_core::Consensus::Raft.name()
    }

    fn vary(&mut self, rng: &mut SeededRng) {
        let Some(c) = self.drawable() else {
            return;
        };
        vary_election(rng, &mut c.election);
        let limits = FlowLimits::draw(rng);
        c.max_append_entries = limits.batch_entries;
        c.max_append_bytes = limits.batch_bytes;
        c.max_inflight_appends = limits.inflight_messages;
        c.max_inflight_bytes = limits.inflight_bytes;
        c.max_snapshot_chunk = limits.snapshot_chunk;
        c.max_pending_proposals = limits.pending;
    }

    fn settings(&self) -> String {
        let c = self.template();
        let limits = FlowLimits {
            batch_entries: c.max_append_entries,
            batch_bytes: c.max_append_bytes,
            inflight_messages: c.max_inflight_appends,
            inflight_bytes: c.max_inflight_bytes,
            snapshot_chunk: c.max_snapshot_chunk,
            pending: c.max_pending_proposals,
        };
        format!("{}, {}", c.election, limits.describe("entries"))
    }

    fn build(
        &self,
        id: NodeId,
        initial: &Membership,
        recovered: Recovered<Entry, HardState>,
        rng: SeededRng,
        now: Instant,
    ) -> Result<Raft, ballot_raft::RaftError> {
        let config = Config { id, ..self.template().clone() };
        Raft::new(config, initial.clone(), recovered, rng, now)
    }

    fn info(&self, r: &Raft) -> NodeInfo {
        NodeInfo {
            role: r.role(),
            term: r.term(),
            leader: r.leader(),
            commit_index: r.commit_index(),
            voter: r.membership().is_voter(r.config().id),
        }
    }

    fn checkers(&self, _config: &SimConfig) -> Vec<Box<dyn Checker<Raft>>> {
        raft_checkers()
    }

    fn supports_admin(&self) -> bool {
        true
    }

    fn admin(&self, r: &mut Raft, now: Instant, action: AdminAction) -> Result<(), String> {
        let result = match action {
            AdminAction::TransferLeadership { to } => r.transfer_leadership(now, to),
            AdminAction::RemoveVoter(n) => r.change_membership(now, MembershipChange::new().remove(n)),
            AdminAction::AddVoter(n) => r.change_membership(now, MembershipChange::new().add_voter(n)),
        };
        result.map_err(|e| e.to_string())
    }

    fn membership(&self, r: &Raft) -> Membership {
        r.membership().clone()
    }
}

/// Raft's own checkers, for any replica type that offers a [`RaftView`].
#[must_use]
pub fn raft_checkers<N: RaftView>() -> Vec<Box<dyn Checker<N>>> {
    vec![
        Box::new(ElectionSafety::default()),
        Box::new(LeaderAppendOnly::default()),
        Box::new(LogMatching::default()),
        Box::new(LeaderCompleteness::default()),
        Box::new(LogConvergence),
    ]
}

/// What Raft checkers read from a replica.
pub trait RaftView {
    /// Its current term.
    fn term(&self) -> u64;
    /// Its role.
    fn role(&self) -> Role;
    /// Its commit index.
    fn commit_index(&self) -> u64;
    /// The last index its snapshot covers (0 without one); entries up to it are gone.
    fn snapshot_index(&self) -> u64;
    /// Its last log index.
    fn last_index(&self) -> u64;
    /// The term at `index`, including the snapshot's last index.
    fn term_at(&self, index: u64) -> Option<u64>;
    /// The entry at `index`, after the snapshot.
    fn entry(&self, index: u64) -> Option<&Entry>;
}

impl RaftView for Raft {
    fn term(&self) -> u64 {
        Raft::term(self)
    }
    fn role(&self) -> Role {
        Raft::role(self)
    }
    fn commit_index(&self) -> u64 {
        Raft::commit_index(self)
    }
    fn snapshot_index(&self) -> u64 {
        Raft::snapshot_index(self)
    }
    fn last_index(&self) -> u64 {
        Raft::last_index(self)
    }
    fn term_at(&self, index: u64) -> Option<u64> {
        Raft::term_at(self, index)
    }
    fn entry(&self, index: u64) -> Option<&Entry> {
        Raft::entry(self, index)
    }
}

/// The replica the step acted on, if it is up: its id, incarnation and replica.
fn stepped<'a, N>(obs: &Observation<'a, N>) -> Option<(NodeId, u64, &'a N)> {
    obs.stepped().map(|(v, r)| (v.id, v.incarnation, r))
}

/// **Election Safety**: at most one leader is elected in a term.
#[derive(Debug, Default)]
pub struct ElectionSafety {
    leaders: FastMap<u64, NodeId>,
}

impl<N: RaftView> Checker<N> for ElectionSafety {
    fn name(&self) -> &'static str {
        "ElectionSafety"
    }

    fn check(&mut self, obs: &Observation<'_, N>) -> Result<(), String> {
        let Some((id, _, r)) = stepped(obs) else { return Ok(()) };
        if r.role() != Role::Leader {
            return Ok(());
        }
        let term = r.term();
        match self.leaders.insert(term, id) {
            Some(other) if other != id => Err(format!("{other} and {id} were both leader in term {term}")),
            _ => Ok(()),
        }
    }
}

/// How often a node's whole log is re-examined; in between, only what changed.
const FULL_SCAN_EVERY: Duration = Duration::from_millis(200);

/// Decides which part of a node's log a checker re-examines after a step: the suffix
/// after the last index whose term is unchanged since the previous look (a walk back
/// from the end that normally stops at once), and the whole log after a restart and
/// every [`FULL_SCAN_EVERY`] of virtual time. Keeps the per-step cost independent of
/// the log's length.
#[derive(Debug, Default)]
struct Incremental {
    nodes: FastMap<NodeId, Seen>,
}

#[derive(Debug)]
struct Seen {
    incarnation: u64,
    /// Terms of indexes `snapshot + 1 ..`, as last examined.
    snapshot: u64,
    terms: Vec<u64>,
    next_full: Instant,
}

impl Incremental {
    /// The first index to examine now.
    fn start<N: RaftView>(&mut self, id: NodeId, incarnation: u64, now: Instant, r: &N) -> u64 {
        let snap = r.snapshot_index();
        let s = self.nodes.entry(id).or_insert(Seen { incarnation, snapshot: snap, terms: Vec::new(), next_full: now });
        let cached_last = s.snapshot + s.terms.len() as u64;
        if s.incarnation != incarnation || now >= s.next_full || snap < s.snapshot || snap > cached_last {
            *s = Seen { incarnation, snapshot: snap, terms: Vec::new(), next_full: now + FULL_SCAN_EVERY };
            return snap + 1;
        }
        // Compaction moved the front: forget the compacted terms.
        let drop = usize::try_from(snap - s.snapshot).unwrap_or(usize::MAX).min(s.terms.len());
        s.terms.drain(..drop);
        s.snapshot = snap;
        let mut i = cached_last.min(r.last_index());
        while i > snap {
            let cached = s.terms[usize::try_from(i - snap - 1).unwrap_or(0)];
            if r.term_at(i) == Some(cached) {
                break;
            }
            i -= 1;
        }
        i + 1
    }

    /// Records the terms from `from` to the end as examined.
    fn finish<N: RaftView>(&mut self, id: NodeId, from: u64, r: &N) {
        let Some(s) = self.nodes.get_mut(&id) else { return };
        s.terms.truncate(usize::try_from(from.saturating_sub(s.snapshot + 1)).unwrap_or(usize::MAX));
        for i in from..=r.last_index() {
            s.terms.push(r.term_at(i).unwrap_or(0));
        }
    }
}

/// **Leader Append-Only**: during its term a leader never overwrites or deletes entries
/// of its log (it only appends; compaction may drop committed entries from the front).
#[derive(Debug, Default)]
pub struct LeaderAppendOnly {
    // node -> (term, incarnation, index of entries[0], entries seen while leading)
    watch: FastMap<NodeId, (u64, u64, u64, Vec<Entry>)>,
    scan: Incremental,
}

impl<N: RaftView> Checker<N> for LeaderAppendOnly {
    fn name(&self) -> &'static str {
        "LeaderAppendOnly"
    }

    fn check(&mut self, obs: &Observation<'_, N>) -> Result<(), String> {
        let Some((id, incarnation, r)) = stepped(obs) else { return Ok(()) };
        if r.role() != Role::Leader {
            self.watch.remove(&id);
            return Ok(());
        }
        let term = r.term();
        let first = r.snapshot_index() + 1;
        let w = self.watch.entry(id).or_insert_with(|| (term, incarnation, first, Vec::new()));
        if w.0 != term || w.1 != incarnation {
            *w = (term, incarnation, first, Vec::new());
        }
        let (_, _, start, seen) = w;
        let seen_end = *start + seen.len() as u64; // one past the last entry seen
        if r.last_index() + 1 < seen_end {
            return Err(format!(
                "{id}, leader of term {term}, deleted entries: its log ended at {} and now ends at {}",
                seen_end - 1,
                r.last_index()
            ));
        }
        // Entries compacted into a snapshot leave the front (they must be committed).
        if first > *start {
            let gone = usize::try_from(first - *start).unwrap_or(usize::MAX).min(seen.len());
            if (*start + gone as u64).saturating_sub(1) > r.commit_index() {
                return Err(format!(
                    "{id}, leader of term {term}, dropped uncommitted entries up to {} (commit {})",
                    first - 1,
                    r.commit_index()
                ));
            }
            seen.drain(..gone);
            *start = first;
        }
        let from = self.scan.start(id, incarnation, obs.now, r).max(*start);
        for index in from..*start + seen.len() as u64 {
            let old = &seen[usize::try_from(index - *start).unwrap_or(0)];
            match r.entry(index) {
                Some(now) if now == old => {}
                other => {
                    return Err(format!(
                        "{id}, leader of term {term}, changed its entry at index {index}: it was {old:?}, now {other:?}"
                    ));
                }
            }
        }
        for index in *start + seen.len() as u64..=r.last_index() {
            match r.entry(index) {
                Some(e) => seen.push(e.clone()),
                None => return Err(format!("{id}: entry {index} missing below its last index {}", r.last_index())),
            }
        }
        self.scan.finish(id, from, r);
        Ok(())
    }
}

/// **Log Matching**: if two logs contain an entry with the same index and term, the
/// logs are identical in all entries up through that index.
///
/// Checked inductively: every (index, term) seen in any log maps to one entry and one
/// predecessor term, so equal (index, term) pairs imply equal entries and equal
/// (index − 1, term) pairs, down to the older snapshot.
#[derive(Debug, Default)]
pub struct LogMatching {
    // (index, term) -> (entry, previous entry's term, first holder)
    seen: FastMap<(u64, u64), (Entry, Option<u64>, NodeId)>,
    scan: Incremental,
}

impl<N: RaftView> Checker<N> for LogMatching {
    fn name(&self) -> &'static str {
        "LogMatching"
    }

    fn check(&mut self, obs: &Observation<'_, N>) -> Result<(), String> {
        let Some((id, incarnation, r)) = stepped(obs) else { return Ok(()) };
        let from = self.scan.start(id, incarnation, obs.now, r);
        for index in from..=r.last_index() {
            let Some(e) = r.entry(index) else {
                return Err(format!("{id}: entry {index} missing below its last index {}", r.last_index()));
            };
            if e.index != index {
                return Err(format!("{id}: the entry at position {index} says it has index {}", e.index));
            }
            let prev = r.term_at(index - 1);
            match self.seen.get(&(index, e.term)) {
                None => {
                    self.seen.insert((index, e.term), (e.clone(), prev, id));
                }
                Some((first, first_prev, by)) => {
                    if first != e {
                        return Err(format!(
                            "{id} and {by} both hold index {index} term {} but with different entries: {e:?} vs {first:?}",
                            e.term
                        ));
                    }
                    if let (Some(a), Some(b)) = (prev, first_prev)
                        && a != *b
                    {
                        return Err(format!(
                            "{id} and {by} both hold index {index} term {} but their previous entries differ \
                             (terms {a} and {b})",
                            e.term
                        ));
                    }
                }
            }
        }
        self.scan.finish(id, from, r);
        Ok(())
    }
}

/// **Leader Completeness**: an entry committed in a term is present in the log of every
/// leader of a later term. Also reports two different entries committed at one index.
#[derive(Debug, Default)]
pub struct LeaderCompleteness {
    // index -> (entry term, term of the node that first saw it committed, that node)
    committed: BTreeMap<u64, (u64, u64, NodeId)>,
    // node -> (incarnation, commit index already recorded)
    recorded: FastMap<NodeId, (u64, u64)>,
    // node -> term in which it was last checked as leader
    checked_leader: FastMap<NodeId, u64>,
}

impl LeaderCompleteness {
    fn missing<N: RaftView>(r: &N, index: u64, term: u64) -> bool {
        index > r.snapshot_index() && r.term_at(index) != Some(term)
    }
}

impl<N: RaftView> Checker<N> for LeaderCompleteness {
    fn name(&self) -> &'static str {
        "LeaderCompleteness"
    }

    fn check(&mut self, obs: &Observation<'_, N>) -> Result<(), String> {
        let Some((id, incarnation, r)) = stepped(obs) else { return Ok(()) };
        // Record what this node now knows committed.
        let rec = self.recorded.entry(id).or_insert((incarnation, 0));
        if rec.0 != incarnation {
            *rec = (incarnation, 0);
        }
        let from = (rec.1 + 1).max(r.snapshot_index());
        let commit = r.commit_index();
        let mut fresh = Vec::new();
        for index in from..=commit {
            let Some(term) = r.term_at(index) else { continue };
            match self.committed.get(&index) {
                None => {
                    self.committed.insert(index, (term, r.term(), id));
                    fresh.push((index, term, r.term()));
                }
                Some(&(t, _, by)) if t != term => {
                    return Err(format!(
                        "{id} considers index {index} committed with term {term}, but {by} committed term {t} there"
                    ));
                }
                Some(_) => {}
            }
        }
        rec.1 = rec.1.max(commit);
        // A node that just became leader must hold every entry committed before its term.
        if r.role() == Role::Leader && self.checked_leader.get(&id) != Some(&r.term()) {
            self.checked_leader.insert(id, r.term());
            for (&index, &(term, seen, by)) in self.committed.range(r.snapshot_index() + 1..) {
                if seen < r.term() && Self::missing(r, index, term) {
                    return Err(format!(
                        "{id} became leader of term {} without the entry at index {index} (term {term}) that {by} \
                         saw committed in term {seen}; its log holds term {:?} there",
                        r.term(),
                        r.term_at(index)
                    ));
                }
            }
        }
        // Entries newly known committed must be in the logs of the leaders of later terms.
        for v in obs.nodes {
            let Some(l) = v.replica.filter(|l| l.role() == Role::Leader) else { continue };
            for &(index, term, seen) in &fresh {
                if seen < l.term() && Self::missing(l, index, term) {
                    return Err(format!(
                        "{} leads term {} without the entry at index {index} (term {term}) that {id} saw committed \
                         in term {seen}",
                        v.id,
                        l.term()
                    ));
                }
            }
        }
        Ok(())
    }
}

/// **Log convergence** (at the end of a run, after healing and settling): every node
/// has the same commit index and last index, and the same terms wherever their logs
/// overlap.
#[derive(Debug, Default)]
pub struct LogConvergence;

impl<N: RaftView> Checker<N> for LogConvergence {
    fn name(&self) -> &'static str {
        "LogConvergence"
    }

    fn check(&mut self, obs: &Observation<'_, N>) -> Result<(), String> {
        if !obs.final_check || obs.healed_since.is_none() {
            return Ok(());
        }
        let live: Vec<(NodeId, &N)> = obs.nodes.iter().filter_map(|v| Some((v.id, v.replica?))).collect();
        let Some(&(a, ra)) = live.first() else { return Ok(()) };
        for &(b, rb) in &live[1..] {
            if (ra.commit_index(), ra.last_index()) != (rb.commit_index(), rb.last_index()) {
                return Err(format!(
                    "logs did not converge: {a} has commit {} last {}, {b} has commit {} last {}",
                    ra.commit_index(),
                    ra.last_index(),
                    rb.commit_index(),
                    rb.last_index()
                ));
            }
            for index in ra.snapshot_index().max(rb.snapshot_index())..=ra.last_index() {
                if ra.term_at(index) != rb.term_at(index) {
                    return Err(format!(
                        "logs did not converge: at index {index} {a} has term {:?}, {b} has term {:?}",
                        ra.term_at(index),
                        rb.term_at(index)
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use ballot_core::ProposalId;
    use bytes::Bytes;

    use super::*;
    use crate::checker::NodeView;
    use crate::history::History;
    use ballot_raft::EntryPayload;

    /// A hand-made replica.
    #[derive(Clone, Debug)]
    struct Fake {
        term: u64,
        role: Role,
        commit: u64,
        snapshot: (u64, u64),
        log: Vec<Entry>,
    }

    impl Fake {
        /// A follower whose log holds entries with these terms, from index 1.
        fn new(terms: &[u64]) -> Self {
            let log = terms.iter().enumerate().map(|(i, &t)| cmd(i as u64 + 1, t, "x")).collect();
            Fake { term: terms.last().copied().unwrap_or(0), role: Role::Follower, commit: 0, snapshot: (0, 0), log }
        }
        fn leader(mut self, term: u64) -> Self {
            self.role = Role::Leader;
            self.term = term;
            self
        }
        fn commit(mut self, c: u64) -> Self {
            self.commit = c;
            self
        }
    }

    fn cmd(index: u64, term: u64, data: &'static str) -> Entry {
        Entry {
            index,
            term,
            payload: EntryPayload::Command { origin: Some((NodeId(1), ProposalId(index))), data: Bytes::from(data) },
        }
    }

    impl RaftView for Fake {
        fn term(&self) -> u64 {
            self.term
        }
        fn role(&self) -> Role {
            self.role
        }
        fn commit_index(&self) -> u64 {
            self.commit
        }
        fn snapshot_index(&self) -> u64 {
            self.snapshot.0
        }
        fn last_index(&self) -> u64 {
            self.snapshot.0 + self.log.len() as u64
        }
        fn term_at(&self, index: u64) -> Option<u64> {
            if index == self.snapshot.0 { Some(self.snapshot.1) } else { self.entry(index).map(|e| e.term) }
        }
        fn entry(&self, index: u64) -> Option<&Entry> {
            let off = index.checked_sub(self.snapshot.0 + 1)?;
            self.log.get(usize::try_from(off).ok()?)
        }
    }

    /// Runs `checker` on a world of fakes after a step of node `stepped` (1-based), each
    /// time a second later than the last, so the checkers re-scan whole logs.
    fn run(
        checker: &mut dyn Checker<Fake>,
        nodes: &[Option<Fake>],
        stepped: u64,
        final_check: bool,
    ) -> Result<(), String> {
        static CLOCK: AtomicU64 = AtomicU64::new(0);
        let now = Instant::from_millis(1_000 * CLOCK.fetch_add(1, Ordering::Relaxed));
        run_at(checker, nodes, stepped, final_check, now)
    }

    fn run_at(
        checker: &mut dyn Checker<Fake>,
        nodes: &[Option<Fake>],
        stepped: u64,
        final_check: bool,
        now: Instant,
    ) -> Result<(), String> {
        let history = History::new();
        let views: Vec<NodeView<'_, Fake>> = nodes
            .iter()
            .enumerate()
            .map(|(i, f)| NodeView {
                id: NodeId(i as u64 + 1),
                incarnation: 0,
                replica: f.as_ref(),
                info: None,
                applied: 0,
                digest: Some(0),
                unsynced_writes: 0,
                refuses_to_start: false,
                byzantine: false,
            })
            .collect();
        let obs = Observation {
            now,
            node: Some(NodeId(stepped)),
            applied: &[],
            nodes: &views,
            healed_since: Some(Instant::ZERO),
            oldest_pending_proposal: None,
            last_client_success: None,
            clients_active: false,
            history: &history,
            commands: &crate::checker::AnyCommand,
            final_check,
        };
        checker.check(&obs)
    }

    #[test]
    fn election_safety_fires_on_two_leaders_in_one_term() {
        let mut c = ElectionSafety::default();
        let a = Fake::new(&[1, 2]).leader(2);
        let b = Fake::new(&[1, 2]);
        run(&mut c, &[Some(a.clone()), Some(b.clone())], 1, false).expect("one leader");
        run(&mut c, &[Some(a.clone()), Some(b.clone())], 2, false).expect("n2 is a follower");
        run(&mut c, &[Some(a.clone()), Some(b.clone().leader(3))], 2, false).expect("a later term is fine");
        let err = run(&mut c, &[Some(a), Some(b.leader(2))], 2, false).expect_err("two leaders in term 2");
        assert!(err.contains("n1 and n2 were both leader in term 2"), "{err}");
    }

    #[test]
    fn leader_append_only_fires_on_overwrite_and_truncation() {
        let mut c = LeaderAppendOnly::default();
        let mut l = Fake::new(&[1, 1, 2]).leader(2);
        run(&mut c, &[Some(l.clone())], 1, false).expect("first sight");
        l.log.push(cmd(4, 2, "y"));
        run(&mut c, &[Some(l.clone())], 1, false).expect("appending is fine");
        // Compaction of committed entries is fine too.
        let mut compacted = l.clone().commit(2);
        compacted.snapshot = (2, 1);
        compacted.log.drain(..2);
        run(&mut c, &[Some(compacted.clone())], 1, false).expect("compaction");
        let mut overwritten = compacted.clone();
        overwritten.log[1] = cmd(4, 2, "z");
        let err = run(&mut c, &[Some(overwritten)], 1, false).expect_err("overwrite");
        assert!(err.contains("changed its entry at index 4"), "{err}");
        let mut truncated = compacted;
        truncated.log.pop();
        let err = run(&mut c, &[Some(truncated.clone())], 1, false).expect_err("truncation");
        assert!(err.contains("deleted entries"), "{err}");
        // A new term (or losing leadership) starts afresh.
        run(&mut c, &[Some(truncated.leader(3))], 1, false).expect("new term");
        let mut c = LeaderAppendOnly::default();
        let l = Fake::new(&[1, 1, 2]).leader(2).commit(1);
        run(&mut c, &[Some(l.clone())], 1, false).expect("first sight");
        let mut dropped = l;
        dropped.snapshot = (3, 2);
        dropped.log.clear();
        let err = run(&mut c, &[Some(dropped)], 1, false).expect_err("compacting uncommitted entries");
        assert!(err.contains("dropped uncommitted entries"), "{err}");
    }

    #[test]
    fn incremental_scans_see_tail_changes_at_once_and_the_rest_within_a_full_scan_period() {
        let ms = Instant::from_millis;
        let mut c = LeaderAppendOnly::default();
        let l = Fake::new(&[1, 1, 2, 3]).leader(3);
        run_at(&mut c, &[Some(l.clone())], 1, false, ms(0)).expect("first sight");
        // The tail shrinking is seen on the next step.
        let mut short = l.clone();
        short.log.pop();
        let err = run_at(&mut c, &[Some(short)], 1, false, ms(1)).expect_err("truncation");
        assert!(err.contains("deleted entries"), "{err}");
        // An overwrite in the middle (index 3: term 2 -> 3) behind an unchanged tail is
        // found by the next full scan.
        let mut c = LeaderAppendOnly::default();
        run_at(&mut c, &[Some(l.clone())], 1, false, ms(0)).expect("first sight");
        let mut mid = l;
        mid.log[2] = cmd(3, 3, "x");
        run_at(&mut c, &[Some(mid.clone())], 1, false, ms(1)).expect("not yet re-scanned");
        let err = run_at(&mut c, &[Some(mid)], 1, false, ms(250)).expect_err("full scan");
        assert!(err.contains("changed its entry at index 3"), "{err}");
    }

    #[test]
    fn log_matching_fires_on_same_index_and_term_with_different_content_or_history() {
        let mut c = LogMatching::default();
        let a = Fake::new(&[1, 1, 2]);
        run(&mut c, &[Some(a.clone()), None], 1, false).expect("one log");
        let mut b = a.clone();
        b.log[2] = cmd(3, 2, "different");
        let err = run(&mut c, &[Some(a.clone()), Some(b)], 2, false).expect_err("content differs");
        assert!(err.contains("n2 and n1 both hold index 3 term 2 but with different entries"), "{err}");
        // Same (3, 2) but a different term at index 2: the prefixes differ.
        let mut c = LogMatching::default();
        run(&mut c, &[Some(a.clone()), None], 1, false).expect("one log");
        let mut d = Fake::new(&[1, 2, 2]);
        d.log[2] = a.log[2].clone();
        let err = run(&mut c, &[Some(a.clone()), Some(d)], 2, false).expect_err("prefix differs");
        assert!(err.contains("previous entries differ"), "{err}");
        // A matching log that is shorter or longer is fine.
        let mut c = LogMatching::default();
        let mut longer = a.clone();
        longer.log.push(cmd(4, 3, "z"));
        run(&mut c, &[Some(a.clone()), Some(longer)], 2, false).expect("longer");
        run(&mut c, &[Some(Fake::new(&[1])), Some(a)], 1, false).expect("shorter");
    }

    #[test]
    fn leader_completeness_fires_when_a_new_leader_lacks_a_committed_entry() {
        let mut c = LeaderCompleteness::default();
        // n1 (term 2) has committed index 3 (term 2).
        let n1 = Fake::new(&[1, 1, 2]).leader(2).commit(3);
        run(&mut c, &[Some(n1.clone()), None], 1, false).expect("commit observed");
        // n2 becomes leader of term 3 with a log lacking it.
        let n2 = Fake::new(&[1, 1]).leader(3);
        let err = run(&mut c, &[None, Some(n2)], 2, false).expect_err("incomplete leader");
        assert!(err.contains("n2 became leader of term 3 without the entry at index 3"), "{err}");
        // A leader that holds it is fine, and so is a stale leader of an older term.
        let mut c = LeaderCompleteness::default();
        run(&mut c, &[Some(n1.clone()), None], 1, false).expect("commit observed");
        run(&mut c, &[None, Some(Fake::new(&[1, 1, 2, 3]).leader(3))], 2, false).expect("complete");
        run(&mut c, &[None, Some(Fake::new(&[1]).leader(1))], 2, false).expect("older term");
        // A commit learned after the election is checked against the sitting leader.
        let mut c = LeaderCompleteness::default();
        let leader = Fake::new(&[1, 1]).leader(3);
        run(&mut c, &[Some(Fake::new(&[1, 1, 2])), Some(leader.clone())], 2, false).expect("elected");
        let err = run(&mut c, &[Some(Fake::new(&[1, 1, 2]).commit(3)), Some(leader)], 1, false)
            .expect_err("newly known commit missing at the leader");
        // n1's own term is 2 < 3: the entry was committed before term 3.
        assert!(err.contains("n2 leads term 3 without the entry at index 3"), "{err}");
        // Two different entries committed at one index.
        let mut c = LeaderCompleteness::default();
        run(&mut c, &[Some(Fake::new(&[1, 2]).commit(2)), None], 1, false).expect("commit");
        let err = run(&mut c, &[None, Some(Fake::new(&[1, 3]).commit(2))], 2, false).expect_err("conflict");
        assert!(err.contains("committed term 2 there"), "{err}");
    }

    #[test]
    fn log_convergence_fires_on_different_logs_at_the_end() {
        let mut c = LogConvergence;
        let a = Fake::new(&[1, 1, 2]).commit(3);
        let b = Fake::new(&[1, 1, 3]).commit(3);
        run(&mut c, &[Some(a.clone()), Some(b.clone())], 1, false).expect("only checked at the end");
        let err = run(&mut c, &[Some(a.clone()), Some(b)], 1, true).expect_err("diverged");
        assert!(err.contains("at index 3 n1 has term Some(2), n2 has term Some(3)"), "{err}");
        let err = run(&mut c, &[Some(a.clone()), Some(a.clone().commit(2))], 1, true).expect_err("commit differs");
        assert!(err.contains("did not converge"), "{err}");
        run(&mut c, &[Some(a.clone()), Some(a)], 1, true).expect("converged");
    }
}
