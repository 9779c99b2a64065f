//! The checker interface and the checkers every algorithm gets.
//!
//! A checker is one struct per invariant. After every step of a simulation (a message
//! delivered, a timer fired, a write made durable, a client request, a crash, a
//! restart) each checker sees an [`Observation`]; the first one to return an error stops
//! the run, which is reported as a [`Violation`] with the seed and the command that
//! replays it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use ballot_core::{Apply, Instant, NodeId, Role};
use bytes::Bytes;

use crate::algorithm::NodeInfo;
use crate::history::History;

/// An invariant, checked after every step.
///
/// `N` is the replica type (an algorithm's [`Protocol`](ballot_core::Protocol)); generic
/// checkers work for any `N`, algorithm checkers bound `N` by the introspection they need.
pub trait Checker<N> {
    /// The invariant's name, as reported.
    fn name(&self) -> &'static str;

    /// Inspects the state after one step.
    ///
    /// # Errors
    /// A human-readable account of how the invariant is broken.
    fn check(&mut self, obs: &Observation<'_, N>) -> Result<(), String>;
}

/// Knows the commands clients sent: what [`Validity`] compares applied commands with.
pub trait CommandOracle {
    /// `Ok` if `command` is one a client sent (or a replica's own service proposed),
    /// unaltered; else what is wrong with it.
    ///
    /// # Errors
    /// The account of a forged, altered or undecodable command.
    fn check(&self, command: &Bytes) -> Result<(), String>;

    /// `command` for people.
    fn render(&self, command: &Bytes) -> String;
}

impl fmt::Debug for dyn CommandOracle + '_ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CommandOracle")
    }
}

/// An oracle that accepts every command, for checker unit tests that do not look at
/// commands.
#[cfg(test)]
pub(crate) struct AnyCommand;

#[cfg(test)]
impl CommandOracle for AnyCommand {
    fn check(&self, _command: &Bytes) -> Result<(), String> {
        Ok(())
    }

    fn render(&self, command: &Bytes) -> String {
        format!("{command:?}")
    }
}

/// One replica as checkers see it.
#[derive(Debug)]
pub struct NodeView<'a, N> {
    /// Its id.
    pub id: NodeId,
    /// Counts restarts: volatile state (and the service) starts afresh with each.
    pub incarnation: u64,
    /// The replica, or `None` while it is crashed.
    pub replica: Option<&'a N>,
    /// Cheap facts, or `None` while it is crashed.
    pub info: Option<NodeInfo>,
    /// The log index its service has applied (0 while it is down).
    pub applied: u64,
    /// The digest of its replicated state (service and sessions), taken for the final
    /// check only; `None` otherwise and while it is down.
    pub digest: Option<u64>,
    /// `Output::Persist` batches it emitted that are not yet durable: what a crash now
    /// would lose. When it is 0, everything the replica wrote is on its disk.
    pub unsynced_writes: usize,
    /// It refuses to start: its disk failed verification at recovery.
    pub refuses_to_start: bool,
    /// It is one of the run's Byzantine nodes: checkers judge correct nodes only, so
    /// the simulator shows it without its replica, info or applied items.
    pub byzantine: bool,
}

/// One applied item and the digest of the node's replicated state right after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedItem {
    /// What the protocol handed to the service.
    pub apply: Apply,
    /// The state digest after applying it, where it was taken (the simulator samples).
    pub digest: Option<u64>,
}

/// What checkers see after a step.
#[derive(Debug)]
pub struct Observation<'a, N> {
    /// Virtual time.
    pub now: Instant,
    /// The node the step acted on, if any.
    pub node: Option<NodeId>,
    /// What that node applied during the step, in order.
    pub applied: &'a [AppliedItem],
    /// Every node, in id order.
    pub nodes: &'a [NodeView<'a, N>],
    /// Since when every fault has been healed (network whole, every node up), or `None`
    /// while faults are active.
    pub healed_since: Option<Instant>,
    /// The oldest proposal accepted by a live node and neither applied nor failed there
    /// yet: the node and when it accepted it.
    pub oldest_pending_proposal: Option<(NodeId, Instant)>,
    /// When a client operation last completed successfully.
    pub last_client_success: Option<Instant>,
    /// Whether clients are issuing operations.
    pub clients_active: bool,
    /// The client history so far.
    pub history: &'a History,
    /// The commands clients sent.
    pub commands: &'a dyn CommandOracle,
    /// This is the last observation of the run, after clients stopped and the cluster
    /// had time to settle.
    pub final_check: bool,
}

impl<'a, N> Observation<'a, N> {
    /// The view of node `id`.
    #[must_use]
    pub fn view(&self, id: NodeId) -> Option<&NodeView<'a, N>> {
        self.nodes.iter().find(|v| v.id == id)
    }

    /// The node the step acted on, if it is up: its view and its replica.
    #[must_use]
    pub fn stepped(&self) -> Option<(&NodeView<'a, N>, &'a N)> {
        let v = self.view(self.node?)?;
        Some((v, v.replica?))
    }
}

/// A broken invariant: what the run reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The checker that fired.
    pub checker: String,
    /// The seed of the run.
    pub seed: u64,
    /// The cluster size.
    pub nodes: usize,
    /// Virtual time of the step after which it fired.
    pub at: Instant,
    /// What is wrong.
    pub details: String,
    /// The command that replays the run.
    pub replay: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "VIOLATION of {} (seed {}, {} nodes, at virtual time {:?})",
            self.checker, self.seed, self.nodes, self.at
        )?;
        writeln!(f, "  {}", self.details.replace('\n', "\n  "))?;
        write!(f, "  replay: {}", self.replay)
    }
}

impl std::error::Error for Violation {}

/// The checkers every algorithm gets: [`Agreement`], [`Integrity`], [`Validity`],
/// [`Liveness`] with the given bound (requiring a recognized leader if the algorithm
/// `elects_leader`), and [`Convergence`].
#[must_use]
pub fn generic_checkers<N>(liveness_bound: Duration, elects_leader: bool) -> Vec<Box<dyn Checker<N>>> {
    let liveness = if elects_leader { Liveness::new(liveness_bound) } else { Liveness::leaderless(liveness_bound) };
    vec![
        Box::new(Agreement::default()),
        Box::new(Integrity::default()),
        Box::new(Validity),
        Box::new(liveness),
        Box::new(Convergence),
    ]
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Applied {
    Command(Bytes),
    Internal,
    /// Agreed time (ms since the Unix epoch).
    Time(u64),
    Restore,
}

/// **State Machine Safety / agreement**: no two nodes apply different items at the same
/// index, and the service states right after applying an index are identical everywhere
/// (which also covers snapshot restores).
#[derive(Debug, Default)]
pub struct Agreement {
    // index -> (what was applied, digest after (if taken), who first applied it)
    seen: HashMap<u64, (Applied, Option<u64>, NodeId)>,
}

impl<N> Checker<N> for Agreement {
    fn name(&self) -> &'static str {
        "StateMachineSafety"
    }

    fn check(&mut self, obs: &Observation<'_, N>) -> Result<(), String> {
        let Some(node) = obs.node else { return Ok(()) };
        for item in obs.applied {
            let (what, index) = match &item.apply {
                Apply::Command { index, command, .. } => (Applied::Command(command.clone()), *index),
                Apply::Internal { index } => (Applied::Internal, *index),
                Apply::Time { index, unix_ms } => (Applied::Time(*unix_ms), *index),
                Apply::Restore(s) => (Applied::Restore, s.meta.index),
                Apply::Checkpoint { .. } => continue,
            };
            match self.seen.get_mut(&index) {
                None => {
                    self.seen.insert(index, (what, item.digest, node));
                }
                Some((first, digest, by)) => {
                    let same_kind = what == Applied::Restore || *first == Applied::Restore || *first == what;
                    if !same_kind {
                        return Err(format!(
                            "{node} applied {} at index {index}, but {by} applied {} there",
                            render(&what, obs.commands),
                            render(first, obs.commands)
                        ));
                    }
                    match (*digest, item.digest) {
                        (Some(a), Some(b)) if a != b => {
                            return Err(format!(
                                "after index {index} ({}) the service state of {node} differs from {by}'s \
                                 (digest {b:#x} vs {a:#x})",
                                render(&what, obs.commands),
                            ));
                        }
                        (None, Some(b)) => *digest = Some(b),
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }
}

fn render(a: &Applied, commands: &dyn CommandOracle) -> String {
    match a {
        Applied::Command(c) => format!("command {}", commands.render(c)),
        Applied::Internal => "an internal entry".to_owned(),
        Applied::Time(ms) => format!("agreed time {ms} ms"),
        Applied::Restore => "a snapshot".to_owned(),
    }
}

/// **Integrity**: within one incarnation a node applies each index at most once and in
/// order (`last + 1`), and a snapshot restore never moves it backwards.
#[derive(Debug, Default)]
pub struct Integrity {
    // node -> (incarnation, last applied index)
    last: HashMap<NodeId, (u64, u64)>,
}

impl<N> Checker<N> for Integrity {
    fn name(&self) -> &'static str {
        "Integrity"
    }

    fn check(&mut self, obs: &Observation<'_, N>) -> Result<(), String> {
        let Some(node) = obs.node else { return Ok(()) };
        let Some(view) = obs.view(node) else { return Ok(()) };
        let entry = self.last.entry(node).or_insert((view.incarnation, 0));
        if entry.0 != view.incarnation {
            *entry = (view.incarnation, 0);
        }
        for item in obs.applied {
            match &item.apply {
                Apply::Restore(s) => {
                    if s.meta.index < entry.1 {
                        return Err(format!(
                            "{node} restored a snapshot at index {} after applying up to {}: the service went back",
                            s.meta.index, entry.1
                        ));
                    }
                    entry.1 = s.meta.index;
                }
                // A request for the state at an index already applied (PBFT checkpoints).
                Apply::Checkpoint { .. } => {}
                other => {
                    let index = other.index();
                    if index != entry.1 + 1 {
                        let what = if index <= entry.1 { "again" } else { "out of order" };
                        return Err(format!(
                            "{node} applied index {index} {what}: the last index it applied was {}",
                            entry.1
                        ));
                    }
                    entry.1 = index;
                }
            }
        }
        Ok(())
    }
}

/// **Validity**: every applied command is one a client sent, unaltered (or one a
/// replica's own service proposed). That each takes effect once is the simulator's
/// exactly-once check.
#[derive(Debug, Default)]
pub struct Validity;

impl<N> Checker<N> for Validity {
    fn name(&self) -> &'static str {
        "Validity"
    }

    fn check(&mut self, obs: &Observation<'_, N>) -> Result<(), String> {
        let Some(node) = obs.node else { return Ok(()) };
        for item in obs.applied {
            let Apply::Command { index, command, .. } = &item.apply else { continue };
            obs.commands.check(command).map_err(|e| format!("{node} applied at index {index} {e}"))?;
        }
        Ok(())
    }
}

/// **Liveness**: once every fault has healed, within `bound` of virtual time
/// (1) a leader appears that every live voter recognizes (for algorithms that elect
/// one), (2) some client operation completes, and (3) no proposal accepted by a live
/// node stays unresolved (neither applied nor failed) for longer than `bound`.
#[derive(Debug)]
pub struct Liveness {
    bound: Duration,
    requires_leader: bool,
    leader_seen: bool,
}

impl Liveness {
    /// Requires a leader and progress within `bound` after healing.
    #[must_use]
    pub fn new(bound: Duration) -> Self {
        Liveness { bound, requires_leader: true, leader_seen: false }
    }

    /// Requires progress (parts 2 and 3) within `bound` after healing, but no leader:
    /// for leaderless algorithms such as single-decree Paxos.
    #[must_use]
    pub fn leaderless(bound: Duration) -> Self {
        Liveness { bound, requires_leader: false, leader_seen: false }
    }
}

/// The leader every live voter agrees on, if there is one.
fn recognized_leader<N>(nodes: &[NodeView<'_, N>]) -> Option<NodeId> {
    let leader = nodes.iter().find(|v| v.info.is_some_and(|i| i.role == Role::Leader && i.voter))?;
    let li = leader.info?;
    nodes
        .iter()
        .filter_map(|v| v.info)
        .filter(|i| i.voter)
        .all(|i| i.leader == Some(leader.id) && i.term == li.term)
        .then_some(leader.id)
}

fn describe_views<N>(nodes: &[NodeView<'_, N>]) -> String {
    nodes
        .iter()
        .map(|v| match v.info {
            None => format!("{}: down", v.id),
            Some(i) => format!(
                "{}: {}{} term {} leader {} commit {}",
                v.id,
                i.role,
                if i.voter { "" } else { " (non-voter)" },
                i.term,
                i.leader.map_or_else(|| "none".to_owned(), |l| l.to_string()),
                i.commit_index
            ),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl<N> Checker<N> for Liveness {
    fn name(&self) -> &'static str {
        "Liveness"
    }

    fn check(&mut self, obs: &Observation<'_, N>) -> Result<(), String> {
        let Some(healed) = obs.healed_since else {
            self.leader_seen = false;
            return Ok(());
        };
        let deadline = healed + self.bound;
        if self.requires_leader && !self.leader_seen {
            if recognized_leader(obs.nodes).is_some() {
                self.leader_seen = true;
            } else if obs.now > deadline {
                return Err(format!(
                    "no leader recognized by every live voter within {:?} of healing at {healed:?}; now: {}",
                    self.bound,
                    describe_views(obs.nodes)
                ));
            }
        }
        if obs.clients_active && obs.now > deadline && obs.last_client_success.is_none_or(|t| t < healed) {
            return Err(format!(
                "no client operation completed within {:?} of healing at {healed:?}; now: {}",
                self.bound,
                describe_views(obs.nodes)
            ));
        }
        if let Some((node, since)) = obs.oldest_pending_proposal
            && obs.now > since.max(healed) + self.bound
        {
            return Err(format!(
                "a proposal {node} accepted at {since:?} was neither applied nor failed {:?} after healing at {healed:?}; \
                 now: {}",
                self.bound,
                describe_views(obs.nodes)
            ));
        }
        Ok(())
    }
}

/// **Convergence** (checked once, at the end of a run, after clients stopped and the
/// cluster settled): every node is up, has applied the same index, and holds the same
/// service state.
#[derive(Debug, Default)]
pub struct Convergence;

impl<N> Checker<N> for Convergence {
    fn name(&self) -> &'static str {
        "Convergence"
    }

    fn check(&mut self, obs: &Observation<'_, N>) -> Result<(), String> {
        if !obs.final_check || obs.healed_since.is_none() {
            return Ok(());
        }
        let mut states: BTreeMap<(u64, u64), Vec<NodeId>> = BTreeMap::new();
        for v in obs.nodes.iter().filter(|v| !v.refuses_to_start && !v.byzantine) {
            let Some(digest) = v.digest.filter(|_| v.replica.is_some()) else {
                return Err(format!("{} is still down at the end of the run", v.id));
            };
            states.entry((v.applied, digest)).or_default().push(v.id);
        }
        if states.len() > 1 {
            let groups: Vec<String> = states
                .iter()
                .map(|((applied, digest), ids)| format!("{ids:?} applied {applied} (state {digest:#x})"))
                .collect();
            return Err(format!("replicas did not converge after healing: {}", groups.join(" vs ")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use ballot_core::{Snapshot, SnapshotMeta};

    use super::*;
    use crate::history::OpId;
    use crate::kv::{KvCommand, KvInput, KvStore};

    /// The test world's clients: commands are toy KV commands naming a history op.
    struct Sent<'a>(&'a History);

    impl CommandOracle for Sent<'_> {
        fn check(&self, command: &Bytes) -> Result<(), String> {
            let cmd = KvCommand::decode(command).map_err(|e| format!("a command that could not decode: {e}"))?;
            let op = self.0.get(OpId(cmd.op)).ok_or_else(|| format!("a command no client proposed: {cmd:?}"))?;
            if op.key != cmd.key || op.input != cmd.input {
                return Err(format!("{cmd:?}, but client operation {} was {} on key {}", cmd.op, op.input, op.key));
            }
            Ok(())
        }

        fn render(&self, command: &Bytes) -> String {
            KvCommand::decode(command).map_or_else(|_| format!("{command:?}"), |c| format!("{c:?}"))
        }
    }

    /// A hand-made world of replicas with no protocol behind them.
    struct World {
        kv: Vec<KvStore>,
        infos: Vec<Option<NodeInfo>>,
        incarnation: Vec<u64>,
        history: History,
    }

    impl World {
        fn new(n: usize) -> Self {
            let info = NodeInfo { role: Role::Follower, term: 1, leader: None, commit_index: 0, voter: true };
            World {
                kv: vec![KvStore::new(); n],
                infos: vec![Some(info); n],
                incarnation: vec![0; n],
                history: History::new(),
            }
        }

        fn views(&self) -> Vec<NodeView<'_, ()>> {
            (0..self.kv.len())
                .map(|i| NodeView {
                    id: NodeId(i as u64 + 1),
                    incarnation: self.incarnation[i],
                    replica: self.infos[i].map(|_| &()),
                    info: self.infos[i],
                    applied: self.kv[i].applied(),
                    digest: Some(self.kv[i].digest()),
                    unsynced_writes: 0,
                    refuses_to_start: false,
                    byzantine: false,
                })
                .collect()
        }

        fn command(&mut self, key: u64, input: KvInput) -> Bytes {
            let op = self.history.invoke(0, key, input, Instant::ZERO);
            KvCommand { op: op.0, key, input }.encode()
        }

        /// Runs `checker` after node `node` (1-based) applied `applies`.
        fn apply(&mut self, checker: &mut dyn Checker<()>, node: u64, applies: Vec<Apply>) -> Result<(), String> {
            let i = (node - 1) as usize;
            let mut items = Vec::new();
            for a in applies {
                match &a {
                    Apply::Command { index, command, .. } => {
                        if let Ok(c) = KvCommand::decode(command) {
                            self.kv[i].apply(*index, &c);
                        }
                    }
                    Apply::Internal { index } | Apply::Time { index, .. } => self.kv[i].skip(*index),
                    Apply::Checkpoint { .. } => {}
                    Apply::Restore(s) => self.kv[i].restore(s).map_err(|e| e.to_string())?,
                }
                items.push(AppliedItem { apply: a, digest: Some(self.kv[i].digest()) });
            }
            let views = self.views();
            let sent = Sent(&self.history);
            let obs = self.obs(&views, Some(NodeId(node)), &items, Instant::ZERO, &sent);
            checker.check(&obs)
        }

        fn obs<'a>(
            &'a self,
            views: &'a [NodeView<'a, ()>],
            node: Option<NodeId>,
            applied: &'a [AppliedItem],
            now: Instant,
            commands: &'a dyn CommandOracle,
        ) -> Observation<'a, ()> {
            Observation {
                now,
                node,
                applied,
                nodes: views,
                healed_since: None,
                oldest_pending_proposal: None,
                last_client_success: None,
                clients_active: true,
                history: &self.history,
                commands,
                final_check: false,
            }
        }
    }

    fn cmd(index: u64, command: &Bytes) -> Apply {
        Apply::Command { index, command: command.clone(), proposal: None }
    }

    #[test]
    fn agreement_fires_on_different_commands_at_one_index() {
        let mut w = World::new(3);
        let (a, b) = (w.command(1, KvInput::Put(1)), w.command(1, KvInput::Put(2)));
        let mut c = Agreement::default();
        w.apply(&mut c, 1, vec![Apply::Internal { index: 1 }, cmd(2, &a)]).expect("first node");
        w.apply(&mut c, 2, vec![Apply::Internal { index: 1 }, cmd(2, &a)]).expect("same commands agree");
        let err = w.apply(&mut c, 3, vec![Apply::Internal { index: 1 }, cmd(2, &b)]).expect_err("must fire");
        assert!(
            err.contains("n3 applied command") && err.contains("at index 2") && err.contains("n1 applied"),
            "{err}"
        );
        let err = w.apply(&mut c, 3, vec![Apply::Internal { index: 3 }]).map(|()| "no conflict at 3");
        assert_eq!(err, Ok("no conflict at 3"));
    }

    #[test]
    fn agreement_compares_snapshot_restores_by_state() {
        let mut w = World::new(2);
        let a = w.command(1, KvInput::Put(1));
        let mut c = Agreement::default();
        w.apply(&mut c, 1, vec![cmd(1, &a)]).expect("apply");
        let good = Snapshot { meta: SnapshotMeta { index: 1, ..SnapshotMeta::default() }, data: w.kv[0].snapshot() };
        w.apply(&mut c, 2, vec![Apply::Restore(Box::new(good))]).expect("a faithful snapshot agrees");
        let mut empty = KvStore::new();
        empty.skip(1);
        let bad = Snapshot { meta: SnapshotMeta { index: 1, ..SnapshotMeta::default() }, data: empty.snapshot() };
        let err = w.apply(&mut c, 2, vec![Apply::Restore(Box::new(bad))]).expect_err("a snapshot with other contents");
        assert!(err.contains("service state of n2 differs"), "{err}");
    }

    #[test]
    fn integrity_fires_on_gaps_repeats_and_backward_restores() {
        let mut w = World::new(1);
        let mut c = Integrity::default();
        w.apply(&mut c, 1, vec![Apply::Internal { index: 1 }, Apply::Internal { index: 2 }]).expect("in order");
        let err = w.apply(&mut c, 1, vec![Apply::Internal { index: 2 }]).expect_err("repeat");
        assert!(err.contains("index 2 again"), "{err}");
        let mut c = Integrity::default();
        w.apply(&mut c, 1, vec![Apply::Internal { index: 1 }]).expect("in order");
        let err = w.apply(&mut c, 1, vec![Apply::Internal { index: 3 }]).expect_err("gap");
        assert!(err.contains("out of order"), "{err}");
        // A restart (new incarnation) starts over.
        w.incarnation[0] = 1;
        w.apply(&mut c, 1, vec![Apply::Internal { index: 1 }]).expect("new incarnation");
        let snap = Snapshot { meta: SnapshotMeta::default(), data: KvStore::new().snapshot() };
        let err = w.apply(&mut c, 1, vec![Apply::Restore(Box::new(snap))]).expect_err("backwards restore");
        assert!(err.contains("went back"), "{err}");
    }

    #[test]
    fn validity_fires_on_forged_and_altered_commands() {
        let mut w = World::new(2);
        let a = w.command(1, KvInput::Put(1));
        let mut c = Validity;
        w.apply(&mut c, 1, vec![cmd(1, &a)]).expect("proposed");
        w.apply(&mut c, 2, vec![cmd(1, &a)]).expect("same index elsewhere");
        let forged = KvCommand { op: 99, key: 1, input: KvInput::Delete }.encode();
        assert!(w.apply(&mut c, 1, vec![cmd(3, &forged)]).expect_err("forged").contains("no client proposed"));
        let altered = KvCommand { op: 0, key: 1, input: KvInput::Put(7) }.encode();
        assert!(w.apply(&mut c, 1, vec![cmd(4, &altered)]).expect_err("altered").contains("was put(1)"));
        let garbage = Bytes::from_static(b"\xff\xff\xff");
        assert!(w.apply(&mut c, 1, vec![cmd(5, &garbage)]).expect_err("garbage").contains("could not decode"));
    }

    #[test]
    fn liveness_fires_without_a_leader_or_progress() {
        let mut w = World::new(3);
        let views = w.views();
        let mut c = Liveness::new(Duration::from_secs(5));
        let sent = Sent(&w.history);
        let mut obs = w.obs(&views, None, &[], Instant::from_millis(1000), &sent);
        obs.healed_since = None;
        Checker::<()>::check(&mut c, &obs).expect("not healed: nothing to check");
        obs.healed_since = Some(Instant::from_millis(1000));
        obs.now = Instant::from_millis(5999);
        Checker::<()>::check(&mut c, &obs).expect("within the bound");
        obs.now = Instant::from_millis(6001);
        let err = Checker::<()>::check(&mut c, &obs).expect_err("no leader");
        assert!(err.contains("no leader recognized"), "{err}");

        // Give n2 leadership recognized by all: the leader part passes, progress fails.
        let leader = NodeInfo { role: Role::Leader, term: 2, leader: Some(NodeId(2)), commit_index: 3, voter: true };
        let follower = NodeInfo { role: Role::Follower, ..leader };
        w.infos = vec![Some(follower), Some(leader), Some(follower)];
        let views = w.views();
        let sent = Sent(&w.history);
        let mut obs = w.obs(&views, None, &[], Instant::from_millis(6001), &sent);
        obs.healed_since = Some(Instant::from_millis(1000));
        let mut c = Liveness::new(Duration::from_secs(5));
        let err = Checker::<()>::check(&mut c, &obs).expect_err("no progress");
        assert!(err.contains("no client operation completed"), "{err}");
        obs.last_client_success = Some(Instant::from_millis(2000));
        Checker::<()>::check(&mut c, &obs).expect("leader and progress");
        obs.oldest_pending_proposal = Some((NodeId(2), Instant::from_millis(500)));
        let err = Checker::<()>::check(&mut c, &obs).expect_err("stuck proposal");
        assert!(err.contains("neither applied nor failed"), "{err}");
        obs.oldest_pending_proposal = Some((NodeId(2), Instant::from_millis(3000)));
        Checker::<()>::check(&mut c, &obs).expect("young proposal");

        // Leaderless: no leader needed, but progress still is.
        let w = World::new(3);
        let views = w.views();
        let sent = Sent(&w.history);
        let mut obs = w.obs(&views, None, &[], Instant::from_millis(6001), &sent);
        obs.healed_since = Some(Instant::from_millis(1000));
        obs.last_client_success = Some(Instant::from_millis(2000));
        let mut c = Liveness::leaderless(Duration::from_secs(5));
        Checker::<()>::check(&mut c, &obs).expect("no leader required");
        obs.last_client_success = None;
        let err = Checker::<()>::check(&mut c, &obs).expect_err("no progress");
        assert!(err.contains("no client operation completed"), "{err}");
    }

    #[test]
    fn convergence_fires_on_divergent_states() {
        let mut w = World::new(2);
        let a = w.command(1, KvInput::Put(1));
        let mut c = Convergence;
        w.apply(&mut c, 1, vec![cmd(1, &a)]).expect("not final: nothing to check");
        let views = w.views();
        let sent = Sent(&w.history);
        let mut obs = w.obs(&views, None, &[], Instant::from_millis(1), &sent);
        obs.final_check = true;
        obs.healed_since = Some(Instant::ZERO);
        let err = Checker::<()>::check(&mut c, &obs).expect_err("n2 is behind");
        assert!(err.contains("did not converge"), "{err}");
        drop(views);
        w.apply(&mut c, 2, vec![cmd(1, &a)]).expect("apply");
        let views = w.views();
        let sent = Sent(&w.history);
        let mut obs = w.obs(&views, None, &[], Instant::from_millis(1), &sent);
        obs.final_check = true;
        obs.healed_since = Some(Instant::ZERO);
        Checker::<()>::check(&mut c, &obs).expect("converged");
    }
}
