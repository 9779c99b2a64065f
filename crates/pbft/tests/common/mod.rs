//! A deterministic in-memory cluster of PBFT replicas: a FIFO network with filters,
//! a synchronous disk per replica (crash and restart from it), a tiny service whose
//! state is its executed log, and hooks that turn replicas into liars.

#![allow(dead_code, missing_docs)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use ballot_core::{
    Apply, Instant, LogStore, MemStore, Membership, NodeId, Output, Persist, PersistId, ProposalId, Protocol, ReadId,
};
use ballot_pbft::byzantine::Forge;
use ballot_pbft::insecure::{HashRequestAuth, HashSigner, HashVerifier, signed_request};
use ballot_pbft::{Config, Crypto, Entry, HardState, Message, Pbft, sha256};
use bytes::Bytes;

pub type Store = MemStore<Entry, HardState>;

/// What a liar does with each message its honest core sends to `to`: the messages
/// that actually leave, to whom.
pub type Rewrite = Box<dyn FnMut(&Forge, NodeId, Message) -> Vec<(NodeId, Message)>>;

/// Drops a message on the network when it returns true: (now, from, to, message).
pub type Filter = Box<dyn FnMut(Instant, NodeId, NodeId, &Message) -> bool>;

/// The service: its state is the log it executed (command or internal, by index), and
/// the agreed times it applied (index, ms) — also internal entries of the log.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Service {
    pub log: Vec<(u64, Option<Vec<u8>>)>,
    pub times: Vec<(u64, u64)>,
}

impl Service {
    fn bytes(&self) -> Bytes {
        Bytes::from(postcard::to_allocvec(self).expect("encode"))
    }
}

pub struct Node {
    pub id: NodeId,
    pub pbft: Option<Pbft>,
    pub store: Store,
    pub service: Service,
    pub reads: Vec<(ReadId, u64)>,
    pub restores: u64,
    pub liar: Option<Rewrite>,
    pub forge: Forge,
    /// Proposals resolved here: applied or failed.
    pub resolved: Vec<ProposalId>,
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    pub members: Membership,
    pub cfg: Box<dyn Fn(NodeId) -> Config>,
    pub crypto: Box<dyn Fn(NodeId) -> Crypto>,
    pub now: Instant,
    pub wire: VecDeque<(NodeId, NodeId, Message)>,
    pub filter: Option<Filter>,
    /// Every message sent, for replays: (from, to, message).
    pub sent: Vec<(NodeId, NodeId, Message)>,
    pub record: bool,
    next_proposal: u64,
    pub client_seq: u64,
    /// Random loss, duplication and reordering until `until`.
    pub chaos: Option<Chaos>,
}

pub struct Chaos {
    pub rng: ballot_core::SeededRng,
    pub drop: f64,
    pub dup: f64,
    pub until: Instant,
}

pub fn crypto(id: NodeId) -> Crypto {
    Crypto { signer: Arc::new(HashSigner(id)), verifier: Arc::new(HashVerifier), requests: Arc::new(HashRequestAuth) }
}

/// Test settings: small checkpoints and window, quick timers.
pub fn test_config(id: NodeId) -> Config {
    let mut c = Config::new(id);
    c.checkpoint_interval = 4;
    c.log_window = 8;
    c.max_batch = 8;
    c.max_inflight = 2;
    c.request_timeout = Duration::from_millis(500);
    c.status_interval = Duration::from_millis(50);
    c
}

impl Cluster {
    pub fn new(n: u64) -> Self {
        Self::with_config(n, test_config)
    }

    pub fn with_config(n: u64, cfg: impl Fn(NodeId) -> Config + 'static) -> Self {
        Self::with_crypto(n, cfg, crypto)
    }

    pub fn with_crypto(
        n: u64,
        cfg: impl Fn(NodeId) -> Config + 'static,
        crypto: impl Fn(NodeId) -> Crypto + 'static,
    ) -> Self {
        let members = Membership::new((1..=n).map(NodeId));
        let mut c = Cluster {
            nodes: Vec::new(),
            members,
            cfg: Box::new(cfg),
            crypto: Box::new(crypto),
            now: Instant::ZERO,
            wire: VecDeque::new(),
            filter: None,
            sent: Vec::new(),
            record: false,
            next_proposal: 0,
            client_seq: 0,
            chaos: None,
        };
        for i in 1..=n {
            let id = NodeId(i);
            let keys = (c.crypto)(id);
            let forge = Forge::new(id, keys.signer.clone());
            let pbft = Pbft::new((c.cfg)(id), c.members.clone(), Default::default(), keys, c.now).expect("new");
            c.nodes.push(Node {
                id,
                pbft: Some(pbft),
                store: Store::new(),
                service: Service::default(),
                reads: Vec::new(),
                restores: 0,
                liar: None,
                forge,
                resolved: Vec::new(),
            });
        }
        c
    }

    pub fn node(&self, id: u64) -> &Pbft {
        self.nodes[id as usize - 1].pbft.as_ref().expect("node is up")
    }

    pub fn node_mut(&mut self, id: u64) -> &mut Pbft {
        self.nodes[id as usize - 1].pbft.as_mut().expect("node is up")
    }

    pub fn lie(&mut self, id: u64, rewrite: Rewrite) {
        self.nodes[id as usize - 1].liar = Some(rewrite);
    }

    pub fn honest(&self) -> Vec<u64> {
        self.nodes.iter().filter(|n| n.liar.is_none() && n.pbft.is_some()).map(|n| n.id.0).collect()
    }

    /// A client request (signed) with a fresh body.
    pub fn request(&mut self, body: &str) -> Bytes {
        self.client_seq += 1;
        signed_request(self.client_seq, body.as_bytes())
    }

    /// Sends `command` to the replicas in `to`, as a client does.
    pub fn submit_to(&mut self, command: &Bytes, to: &[u64]) {
        for &i in to {
            self.next_proposal += 1;
            let id = ProposalId(self.next_proposal);
            let now = self.now;
            if let Some(p) = self.nodes[i as usize - 1].pbft.as_mut() {
                // A replica that already executed the request refuses it (the host
                // answers such retries from its session table).
                match p.propose(now, id, command.clone()) {
                    Ok(()) | Err(ballot_core::ProposeError::Unavailable(_)) => {}
                    Err(e) => panic!("propose: {e}"),
                }
            }
        }
    }

    /// Sends `command` to every replica (a BFT client's broadcast).
    pub fn submit(&mut self, command: &Bytes) {
        let all: Vec<u64> = (1..=self.nodes.len() as u64).collect();
        self.submit_to(command, &all);
    }

    pub fn crash(&mut self, id: u64) {
        self.nodes[id as usize - 1].pbft = None;
    }

    /// Restarts `id` from its disk (`store`), with an empty service that the replica
    /// restores.
    pub fn restart_from(&mut self, id: u64, store: Store) {
        let nid = NodeId(id);
        let recovered = store.clone().recover().expect("recover");
        let pbft =
            Pbft::new((self.cfg)(nid), self.members.clone(), recovered, (self.crypto)(nid), self.now).expect("restart");
        let node = &mut self.nodes[id as usize - 1];
        node.store = store;
        node.service = Service::default();
        node.pbft = Some(pbft);
    }

    pub fn restart(&mut self, id: u64) {
        let store = self.nodes[id as usize - 1].store.clone();
        self.restart_from(id, store);
    }

    /// A copy of `id`'s disk as it is now.
    pub fn copy_disk(&self, id: u64) -> Store {
        let r = self.nodes[id as usize - 1].store.clone().recover().expect("recover");
        let mut copy = Store::new();
        let mut batch = Persist::new(PersistId(1));
        batch.snapshot = r.snapshot.map(Box::new);
        batch.entries = r.entries;
        batch.hard_state = r.hard_state;
        copy.write(&[batch]).expect("write");
        copy
    }

    /// Drains every replica's outputs: writes, sends, applies.
    pub fn drain(&mut self) {
        let now = self.now;
        for node in &mut self.nodes {
            let Some(p) = node.pbft.as_mut() else { continue };
            while let Some(out) = p.poll_output() {
                match out {
                    Output::Send { to, message } => {
                        let msgs = match node.liar.as_mut() {
                            Some(rw) => rw(&node.forge, to, message),
                            None => vec![(to, message)],
                        };
                        for (to, m) in msgs {
                            if self.record {
                                self.sent.push((node.id, to, m.clone()));
                            }
                            self.wire.push_back((node.id, to, m));
                        }
                    }
                    Output::Persist(batch) => {
                        node.store.write(std::slice::from_ref(&batch)).expect("write");
                        p.persisted(now, batch.id);
                    }
                    Output::Apply(a) => match a {
                        Apply::Command { index, command, proposal } => {
                            node.resolved.extend(proposal);
                            assert_eq!(index, node.service.log.len() as u64 + 1, "{} applies out of order", node.id);
                            node.service.log.push((index, Some(command.to_vec())));
                        }
                        Apply::Internal { index } => {
                            assert_eq!(index, node.service.log.len() as u64 + 1, "{} applies out of order", node.id);
                            node.service.log.push((index, None));
                        }
                        Apply::Time { index, unix_ms } => {
                            assert_eq!(index, node.service.log.len() as u64 + 1, "{} applies out of order", node.id);
                            node.service.log.push((index, None));
                            node.service.times.push((index, unix_ms));
                        }
                        Apply::Restore(s) => {
                            node.restores += 1;
                            node.service = if s.data.is_empty() {
                                Service::default()
                            } else {
                                postcard::from_bytes(&s.data).expect("decode state")
                            };
                            assert_eq!(node.service.log.len() as u64, s.meta.index);
                        }
                        Apply::Checkpoint { index } => {
                            assert_eq!(index, node.service.log.len() as u64);
                            let state = node.service.bytes();
                            let digest = sha256(&state).0;
                            p.checkpoint(now, index, digest, state);
                        }
                    },
                    Output::ReadReady { id, index } => node.reads.push((id, index)),
                    Output::ProposalFailed { id, .. } => node.resolved.push(id),
                    _ => {}
                }
            }
        }
    }

    /// One step: drain, then deliver one message, or else advance time to the next timer.
    pub fn step(&mut self) {
        self.drain();
        let mut pick = None;
        if let Some(ch) = self.chaos.as_mut()
            && self.now < ch.until
            && !self.wire.is_empty()
        {
            let i = ch.rng.gen_range(0..self.wire.len().min(8) as u64) as usize;
            if ch.rng.gen_bool(ch.drop) {
                self.wire.remove(i);
                return;
            }
            if ch.rng.gen_bool(ch.dup) {
                let copy = self.wire[i].clone();
                self.wire.push_back(copy);
            }
            pick = self.wire.remove(i);
        }
        if let Some((from, to, m)) = pick.or_else(|| self.wire.pop_front()) {
            let now = self.now;
            if let Some(f) = self.filter.as_mut()
                && f(now, from, to, &m)
            {
                return;
            }
            if let Some(p) = self.nodes[to.0 as usize - 1].pbft.as_mut() {
                p.handle_message(now, from, m);
            }
            return;
        }
        let next = self.nodes.iter().filter_map(|n| n.pbft.as_ref()).filter_map(Protocol::poll_timeout).min();
        if let Some(t) = next {
            self.now = self.now.max(t);
        }
        let now = self.now;
        for n in &mut self.nodes {
            if let Some(p) = n.pbft.as_mut()
                && p.poll_timeout().is_some_and(|t| t <= now)
            {
                p.handle_timeout(now);
            }
        }
    }

    /// Runs until `cond` holds; panics after `limit` of virtual time.
    pub fn run_until(&mut self, limit: Duration, what: &str, mut cond: impl FnMut(&Cluster) -> bool) {
        let end = self.now + limit;
        let mut steps = 0u64;
        while !cond(self) {
            assert!(self.now <= end, "timed out waiting for: {what} (now {:?})\n{}", self.now, self.describe());
            steps += 1;
            assert!(steps < 5_000_000, "too many steps waiting for: {what}");
            self.step();
        }
        self.drain();
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
        }
        self.drain();
    }

    pub fn describe(&self) -> String {
        self.nodes
            .iter()
            .map(|n| match &n.pbft {
                Some(p) => format!(
                    "{}: view {} active {} exec {} stable {} log {} applied {} pending {} rejected {} last {:?}\n",
                    n.id,
                    p.view(),
                    p.is_active(),
                    p.executed_seq(),
                    p.stable_checkpoint().seq,
                    p.log_len(),
                    n.service.log.len(),
                    p.pending_requests(),
                    p.rejected(),
                    p.last_error()
                ),
                None => format!("{}: down\n", n.id),
            })
            .collect()
    }

    /// Whether every honest live replica executed `command`.
    pub fn executed_everywhere(&self, command: &Bytes) -> bool {
        self.honest().iter().all(|&i| self.executed_at(i, command))
    }

    pub fn executed_at(&self, id: u64, command: &Bytes) -> bool {
        self.nodes[id as usize - 1].service.log.iter().any(|(_, c)| c.as_deref() == Some(command.as_ref()))
    }

    /// Safety: the executed logs of honest replicas are prefixes of one another, and each
    /// command executed once per replica.
    pub fn check_safety(&self) {
        self.check_agreement();
        let honest = self.honest();
        for &a in &honest {
            let la = &self.nodes[a as usize - 1].service.log;
            let mut seen = BTreeSet::new();
            for (_, c) in la {
                if let Some(c) = c {
                    assert!(
                        seen.insert(c.clone()),
                        "{a} executed a command twice: {:?}\n{}",
                        self.nodes
                            .iter()
                            .map(|n| n
                                .service
                                .log
                                .iter()
                                .map(|(i, c)| (
                                    *i,
                                    c.as_ref().map(|c| String::from_utf8_lossy(&c[8..c.len() - 32]).into_owned())
                                ))
                                .collect::<Vec<_>>())
                            .collect::<Vec<_>>(),
                        self.describe()
                    );
                }
            }
            for &b in &honest {
                let lb = &self.nodes[b as usize - 1].service.log;
                let common = la.len().min(lb.len());
                assert_eq!(la[..common], lb[..common], "replicas {a} and {b} executed different logs");
            }
        }
    }

    /// Agreement only: honest replicas executed the same thing at every index both
    /// reached (a command retried after it executed may execute again, as in PBFT).
    pub fn check_agreement(&self) {
        let honest = self.honest();
        for &a in &honest {
            for (i, c) in &self.nodes[a as usize - 1].service.log {
                if let Some(c) = c {
                    assert!(
                        ballot_pbft::RequestAuth::verify(&HashRequestAuth, c),
                        "{a} executed an unsigned request at {i}"
                    );
                }
            }
            for &b in &honest {
                let (la, lb) = (&self.nodes[a as usize - 1].service.log, &self.nodes[b as usize - 1].service.log);
                let common = la.len().min(lb.len());
                assert_eq!(la[..common], lb[..common], "replicas {a} and {b} executed different logs");
                let (ta, tb) = (&self.nodes[a as usize - 1].service.times, &self.nodes[b as usize - 1].service.times);
                let common = ta.len().min(tb.len());
                assert_eq!(ta[..common], tb[..common], "replicas {a} and {b} applied different agreed times");
            }
        }
    }

    /// The executed logs, by replica.
    pub fn logs(&self) -> BTreeMap<u64, usize> {
        self.nodes.iter().map(|n| (n.id.0, n.service.log.len())).collect()
    }

    /// Runs until every honest replica executed every command in `cmds`.
    pub fn await_all(&mut self, cmds: &[Bytes], limit: Duration, what: &str) {
        let cmds = cmds.to_vec();
        self.run_until(limit, what, |c| cmds.iter().all(|x| c.executed_everywhere(x)));
        self.check_safety();
    }
}
