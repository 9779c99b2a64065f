//! The node: one event loop owning the chain, the store, the peers and the miner's jobs.
//!
//! Peers' reader tasks, the accept loop, dialers, the miner threads and the HTTP
//! handlers send events; the loop handles them one at a time, so the chain and the
//! store see one input at a time and every input's outputs are written as one batch
//! before anything is announced.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant, SystemTime, UNIX_EPOCH};

use ballot_core::Instant;
use ballot_ledger::{
    Hash, Ledger, LedgerError, MempoolConfig, MempoolError, PublicKey, SignedTransfer, Transaction, TxId,
};
use ballot_pow::{Accepted, Block, BlockHash, Chain, ChainOutput, ChainParams, PowError, Status};
use ballot_quic::open::{FrameReceiver, FrameSender, OpenConfig, OpenConnection, OpenEndpoint};
use bytes::Bytes;
use rand::seq::IteratorRandom as _;
use tokio::sync::{mpsc, oneshot, watch};

use crate::api::{AccountInfo, BanInfo, BlockInfo, PeerInfo, TipInfo, TxInfo, TxSummary};
use crate::bans::{BAN_SCORE, Bans, Conduct, normalize_target};
use crate::protocol::{ALPN, Inventory, MAX_HEADERS, MAX_MESSAGE, Message, PROTOCOL_VERSION, Version};
use crate::store::ChainStore;
use crate::{ChainSpec, Error, KeyFile, metrics as m};

/// Blocks requested from one peer at a time.
const MAX_IN_FLIGHT_PER_PEER: usize = 16;
/// A requested block not received within this is asked of another peer.
const BLOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages queued for one peer before it counts as too slow (and messages are dropped).
const PEER_QUEUE: usize = 1_024;
/// Two connections between the same nodes opened within this are a dial race.
const DIAL_RACE: Duration = Duration::from_secs(5);
/// Block hashes remembered per peer as known to it, or as missing from it.
const MAX_REMEMBERED: usize = 50_000;
/// Addresses remembered.
const MAX_ADDRS: usize = 1_000;
/// A new block template at least this often (new transactions, a later time).
const TEMPLATE_EVERY: Duration = Duration::from_secs(2);

/// The node's settings.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Where the store (`db/`) and the node key (`node.key`) live.
    pub data_dir: PathBuf,
    /// UDP address for peers.
    pub listen: SocketAddr,
    /// HTTP address for the API, `/metrics` and health.
    pub http_listen: SocketAddr,
    /// Peers to join through (`host:port`).
    pub seeds: Vec<String>,
    /// The chain.
    pub spec: ChainSpec,
    /// Whether to mine.
    pub mine: bool,
    /// Mining threads.
    pub threads: usize,
    /// Who mining rewards go to (default: the node key).
    pub miner_key: Option<PublicKey>,
    /// The node key file (default `data_dir/node.key`, created if missing).
    pub node_key: Option<PathBuf>,
    /// Outbound connections to keep.
    pub max_outbound: usize,
    /// Inbound connections accepted.
    pub max_inbound: usize,
    /// How long a misbehaving peer stays banned.
    pub ban_secs: u64,
    /// Peers (keys or listening addresses) refused for good.
    pub refuse: Vec<String>,
    /// Mempool limits.
    pub mempool: MempoolConfig,
}

impl NodeConfig {
    /// Defaults for a node with `data_dir`, on the default ports.
    #[must_use]
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        NodeConfig {
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8301)),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8401)),
            seeds: Vec::new(),
            spec: ChainSpec::default(),
            mine: false,
            threads: 1,
            miner_key: None,
            node_key: None,
            max_outbound: 8,
            max_inbound: 64,
            ban_secs: 24 * 3600,
            refuse: Vec::new(),
            mempool: MempoolConfig::default(),
        }
    }
}

/// Wall-clock time as the chain reads it (time since the Unix epoch).
pub(crate) fn wall_now() -> Instant {
    Instant::from_millis(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the HTTP handlers ask of the loop.
pub(crate) enum Api {
    Tip(oneshot::Sender<TipInfo>),
    Block(String, oneshot::Sender<Result<BlockInfo, ApiFailure>>),
    Tx(String, oneshot::Sender<Result<TxInfo, ApiFailure>>),
    Account(String, oneshot::Sender<Result<AccountInfo, ApiFailure>>),
    Submit(Box<SignedTransfer>, oneshot::Sender<Result<TxId, ApiFailure>>),
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    Mempool(oneshot::Sender<Vec<TxSummary>>),
    Verify(oneshot::Sender<VerifyInput>),
    Bans(oneshot::Sender<Vec<BanInfo>>),
    Ban(String, u64, oneshot::Sender<Result<Vec<BanInfo>, ApiFailure>>),
    Unban(String, oneshot::Sender<Result<Vec<BanInfo>, ApiFailure>>),
}

/// What a through-the-node verification replays: the active chain, the ledger it
/// must produce, and what the store disagrees on.
pub(crate) struct VerifyInput {
    pub(crate) params: ChainParams,
    pub(crate) blocks: Vec<Arc<Block>>,
    pub(crate) ledger: Ledger,
    pub(crate) problems: Vec<String>,
}

/// An API error: HTTP status class and message.
#[derive(Debug)]
pub(crate) enum ApiFailure {
    Invalid(String),
    NotFound(String),
}

/// What `/health` and `/readyz` read.
#[derive(Clone, Debug, Default)]
pub(crate) struct Health {
    pub(crate) height: u64,
    pub(crate) peers: usize,
    pub(crate) syncing: usize,
    pub(crate) seeds: usize,
}

enum Out {
    Frame(Bytes),
    Close { protocol: bool, reason: String },
}

enum Event {
    Connected { conn: Box<OpenConnection>, dialed: Option<SocketAddr> },
    DialFailed { addr: SocketAddr, error: String },
    Message { peer: u64, msg: Message },
    Misbehaved { peer: u64, points: u32, reason: String },
    Closed { peer: u64, reason: String },
}

struct Peer {
    key: [u8; 32],
    remote: SocketAddr,
    dialed: Option<SocketAddr>,
    out: mpsc::Sender<Out>,
    version: Option<Version>,
    listen: Option<SocketAddr>,
    height: u64,
    in_flight: HashSet<BlockHash>,
    /// Blocks the peer announced or sent the header of: it has them.
    known: HashSet<BlockHash>,
    /// Blocks the peer answered `notfound` for: not asked again until it announces them.
    missing: HashSet<BlockHash>,
    conduct: Conduct,
    connected_at: StdInstant,
}

impl Peer {
    fn ready(&self) -> bool {
        self.version.is_some()
    }
}

struct AddrState {
    next_try: StdInstant,
    fails: u32,
}

/// The state the loop owns.
struct Node {
    config: NodeConfig,
    digest: Hash,
    key: [u8; 32],
    chain: Chain,
    store: ChainStore,
    endpoint: OpenEndpoint,
    events: mpsc::Sender<Event>,
    peers: HashMap<u64, Peer>,
    next_peer: u64,
    addrs: HashMap<SocketAddr, AddrState>,
    seeds: Vec<String>,
    dialing: HashSet<SocketAddr>,
    self_addrs: HashSet<SocketAddr>,
    bans: Bans,
    wanted: VecDeque<BlockHash>,
    in_flight: HashMap<BlockHash, (u64, StdInstant)>,
    block_source: HashMap<BlockHash, u64>,
    announced: HashMap<BlockHash, StdInstant>,
    headers_asked: HashMap<BlockHash, StdInstant>,
    tx_index: HashMap<TxId, BlockHash>,
    miner: Option<crate::miner::Miner>,
    miner_key: PublicKey,
    last_template: StdInstant,
    hash_sample: (StdInstant, u64),
    hashrate: f64,
    ticks: u64,
    health: watch::Sender<Health>,
}

/// Handles to a running node, for the HTTP server.
pub(crate) struct Started {
    pub(crate) api: mpsc::Sender<Api>,
    pub(crate) health: watch::Receiver<Health>,
    pub(crate) task: tokio::task::JoinHandle<Result<(), Error>>,
    pub(crate) key: PublicKey,
    pub(crate) listen: SocketAddr,
}

/// Opens the store, restores the chain, binds the QUIC endpoint, starts the miner and
/// spawns the event loop; it runs until `shutdown` resolves.
pub(crate) async fn start(
    config: NodeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Started, Error> {
    let params = config.spec.params();
    let key_path = config.node_key.clone().unwrap_or_else(|| config.data_dir.join("node.key"));
    let key = KeyFile::load_or_create(&key_path)?;
    let store = ChainStore::open(&config.data_dir.join("db"), &params)?;
    let chain = if store.tip()?.is_none() {
        let mut chain = Chain::new(params.clone(), config.mempool.clone())?;
        let outs: Vec<ChainOutput> = std::iter::from_fn(|| chain.poll_output()).collect();
        store.write(&outs)?;
        chain
    } else {
        store.restore(params.clone(), config.mempool.clone())?
    };
    let mut open = OpenConfig::new(config.listen, key.seed, ALPN);
    open.max_frame_size = MAX_MESSAGE + 1024;
    let endpoint = OpenEndpoint::bind(open)?;
    let listen = endpoint.local_addr();
    let node_key = PublicKey(endpoint.key());
    tracing::info!(key = %node_key, %listen, height = chain.height(), tip = %chain.tip().hash, "chain node listening");

    let (events_tx, events_rx) = mpsc::channel(4096);
    let (api_tx, api_rx) = mpsc::channel(256);
    let (mined_tx, mined_rx) = mpsc::unbounded_channel();
    let (health_tx, health_rx) = watch::channel(Health { seeds: config.seeds.len(), ..Health::default() });
    let miner = config.mine.then(|| crate::miner::Miner::start(config.threads, mined_tx.clone()));
    let now = StdInstant::now();
    let mut bans = Bans::default();
    for target in &config.refuse {
        bans.ban(target, now + Duration::from_secs(100 * 365 * 24 * 3600), "refused by --refuse-peers");
    }
    let mut tx_index = HashMap::new();
    for h in 0..=chain.height() {
        if let Some(block) = chain.hash_at(h).and_then(|hash| chain.block(&hash)) {
            let hash = block.hash();
            tx_index.extend(block.txs.iter().map(|t| (t.id(), hash)));
        }
    }
    let node = Node {
        digest: crate::params::digest(&params),
        key: endpoint.key(),
        miner_key: config.miner_key.unwrap_or(node_key),
        seeds: config.seeds.clone(),
        config,
        chain,
        store,
        endpoint: endpoint.clone(),
        events: events_tx.clone(),
        peers: HashMap::new(),
        next_peer: 1,
        addrs: HashMap::new(),
        dialing: HashSet::new(),
        self_addrs: HashSet::new(),
        bans,
        wanted: VecDeque::new(),
        in_flight: HashMap::new(),
        block_source: HashMap::new(),
        announced: HashMap::new(),
        headers_asked: HashMap::new(),
        tx_index,
        miner,
        last_template: now,
        hash_sample: (now, 0),
        hashrate: 0.0,
        ticks: 0,
        health: health_tx,
    };
    let accept_events = events_tx;
    let accept_endpoint = endpoint.clone();
    tokio::spawn(async move {
        while let Some(incoming) = accept_endpoint.accept().await {
            match incoming {
                Ok(conn) => {
                    if accept_events.send(Event::Connected { conn: Box::new(conn), dialed: None }).await.is_err() {
                        break;
                    }
                }
                Err(e) => tracing::debug!(error = %e, "inbound connection failed"),
            }
        }
    });
    let task = tokio::spawn(node.run(events_rx, api_rx, mined_rx, shutdown));
    Ok(Started { api: api_tx, health: health_rx, task, key: node_key, listen })
}

fn summary(tx: &Transaction) -> TxSummary {
    match tx {
        Transaction::Coinbase(c) => TxSummary {
            id: tx.id().to_string(),
            kind: "coinbase".into(),
            from: None,
            to: c.to.to_string(),
            amount: c.amount,
            fee: 0,
            nonce: None,
        },
        Transaction::Transfer(t) => TxSummary {
            id: tx.id().to_string(),
            kind: "transfer".into(),
            from: Some(t.transfer.from.to_string()),
            to: t.transfer.to.to_string(),
            amount: t.transfer.amount,
            fee: t.transfer.fee,
            nonce: Some(t.transfer.nonce),
        },
    }
}

/// Whether a refused block or header is the sender's fault (a broken consensus rule),
/// rather than our clock being behind.
fn punishable(e: &PowError) -> bool {
    !matches!(e, PowError::TimeTooNew { .. })
}

impl Node {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<Event>,
        mut api: mpsc::Receiver<Api>,
        mut mined: mpsc::UnboundedReceiver<Block>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), Error> {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tokio::pin!(shutdown);
        self.new_template();
        let result = loop {
            let step = tokio::select! {
                () = &mut shutdown => break Ok(()),
                Some(event) = events.recv() => self.on_event(event),
                Some(request) = api.recv() => self.on_api(request),
                Some(block) = mined.recv() => self.on_mined(block),
                _ = tick.tick() => self.on_tick(),
            };
            if let Err(e) = step {
                break Err(e);
            }
        };
        self.miner.take();
        for peer in self.peers.values() {
            let _ = peer.out.try_send(Out::Close { protocol: false, reason: "shutting down".into() });
        }
        self.endpoint.close().await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "the chain node stopped");
        }
        result
    }

    // ---- peers -------------------------------------------------------------------

    fn on_event(&mut self, event: Event) -> Result<(), Error> {
        match event {
            Event::Connected { conn, dialed } => {
                if let Some(addr) = dialed {
                    self.dialing.remove(&addr);
                }
                self.on_connected(*conn, dialed);
                Ok(())
            }
            Event::DialFailed { addr, error } => {
                self.dialing.remove(&addr);
                if let Some(state) = self.addrs.get_mut(&addr) {
                    state.fails += 1;
                    state.next_try = StdInstant::now() + Duration::from_secs(1 << state.fails.min(5));
                }
                tracing::debug!(%addr, %error, "dial failed");
                Ok(())
            }
            Event::Message { peer, msg } => self.on_message(peer, msg),
            Event::Misbehaved { peer, points, reason } => {
                self.misbehave(peer, points, &reason);
                Ok(())
            }
            Event::Closed { peer, reason } => {
                if self.peers.contains_key(&peer) {
                    tracing::info!(peer, %reason, "peer disconnected");
                    self.drop_peer(peer);
                }
                Ok(())
            }
        }
    }

    fn is_banned(&self, key: &[u8; 32], addrs: &[SocketAddr]) -> Option<&str> {
        self.bans.check(&hex(key), addrs, StdInstant::now())
    }

    fn on_connected(&mut self, conn: OpenConnection, dialed: Option<SocketAddr>) {
        let key = conn.peer_key();
        let remote = conn.remote();
        let (sender, receiver) = conn.split();
        let refuse = |reason: &str| {
            sender.close(false, reason);
            tracing::debug!(%remote, reason, "refused a connection");
        };
        if key == self.key {
            if let Some(addr) = dialed {
                self.self_addrs.insert(addr);
                self.addrs.remove(&addr);
            }
            return refuse("connected to itself");
        }
        if self.is_banned(&key, dialed.as_slice()).is_some() {
            return refuse("banned");
        }
        // Two nodes that dial each other at once keep the same one connection: the one
        // dialled by the node with the smaller key (both ends decide alike). A peer never
        // dials a node it is connected to, so a new connection from a key connected for
        // a while means the peer lost the old one (it restarted, say): the new one wins
        // rather than waiting for the old one's idle timeout.
        let preferred = |we_dialed: bool| if we_dialed { self.key < key } else { key < self.key };
        if let Some((&old, existing)) = self.peers.iter().find(|(_, p)| p.key == key) {
            let racing = existing.connected_at.elapsed() < DIAL_RACE;
            if racing && (preferred(existing.dialed.is_some()) || !preferred(dialed.is_some())) {
                return refuse("already connected");
            }
            self.disconnect(old, false, "replaced by a newer connection");
        }
        let inbound = self.peers.values().filter(|p| p.dialed.is_none()).count();
        if dialed.is_none() && inbound >= self.config.max_inbound {
            return refuse("too many peers");
        }
        let id = self.next_peer;
        self.next_peer += 1;
        let (out_tx, out_rx) = mpsc::channel(PEER_QUEUE);
        tokio::spawn(write_loop(sender, out_rx));
        tokio::spawn(read_loop(id, receiver, self.events.clone()));
        let now = StdInstant::now();
        self.peers.insert(
            id,
            Peer {
                key,
                remote,
                dialed,
                out: out_tx,
                version: None,
                listen: None,
                height: 0,
                in_flight: HashSet::new(),
                known: HashSet::new(),
                missing: HashSet::new(),
                conduct: Conduct::new(now),
                connected_at: now,
            },
        );
        if let Some(addr) = dialed
            && let Some(state) = self.addrs.get_mut(&addr)
        {
            state.fails = 0;
        }
        tracing::info!(peer = id, key = %PublicKey(key), %remote, outbound = dialed.is_some(), "peer connected");
        let version = Version {
            protocol: PROTOCOL_VERSION,
            chain: self.digest,
            genesis: self.chain.params().genesis.hash(),
            listen_port: self.endpoint.local_addr().port(),
            height: self.chain.height(),
            agent: concat!("ballot-chaind/", env!("CARGO_PKG_VERSION")).into(),
        };
        self.send(id, &Message::Version(version));
        self.update_gauges();
    }

    fn send(&mut self, peer: u64, msg: &Message) {
        let Some(p) = self.peers.get(&peer) else { return };
        match msg.encode() {
            Ok(bytes) => {
                if p.out.try_send(Out::Frame(bytes)).is_err() {
                    tracing::debug!(peer, message = msg.name(), "peer queue full; message dropped");
                }
            }
            Err(e) => tracing::warn!(peer, message = msg.name(), error = %e, "cannot encode a message"),
        }
    }

    fn broadcast(&mut self, msg: &Message, except: Option<u64>) {
        let ids: Vec<u64> =
            self.peers.iter().filter(|(id, p)| p.ready() && Some(**id) != except).map(|(id, _)| *id).collect();
        for id in ids {
            self.send(id, msg);
        }
    }

    fn disconnect(&mut self, peer: u64, protocol: bool, reason: &str) {
        if let Some(p) = self.peers.get(&peer) {
            let _ = p.out.try_send(Out::Close { protocol, reason: reason.to_owned() });
        }
        self.drop_peer(peer);
    }

    fn drop_peer(&mut self, peer: u64) {
        if let Some(p) = self.peers.remove(&peer) {
            for h in p.in_flight {
                self.in_flight.remove(&h);
            }
        }
        self.update_gauges();
        self.schedule_downloads();
    }

    fn misbehave(&mut self, peer: u64, points: u32, reason: &str) {
        let Some(p) = self.peers.get_mut(&peer) else { return };
        let ban = p.conduct.add(points);
        tracing::warn!(peer, key = %PublicKey(p.key), points, score = p.conduct.score(), reason, "peer misbehaved");
        if !ban {
            return;
        }
        let until = StdInstant::now() + Duration::from_secs(self.config.ban_secs);
        let mut targets = vec![hex(&p.key)];
        targets.extend(p.listen.iter().chain(p.dialed.iter()).map(SocketAddr::to_string));
        for t in targets {
            self.bans.ban(&t, until, reason);
        }
        metrics::counter!(m::PEERS_BANNED).increment(1);
        tracing::warn!(peer, reason, secs = self.config.ban_secs, "banned a peer");
        self.disconnect(peer, true, &format!("banned: {reason}"));
    }

    fn dial(&mut self, addr: SocketAddr) {
        self.dialing.insert(addr);
        let (endpoint, events) = (self.endpoint.clone(), self.events.clone());
        tokio::spawn(async move {
            let event = match endpoint.connect(addr).await {
                Ok(conn) => Event::Connected { conn: Box::new(conn), dialed: Some(addr) },
                Err(e) => Event::DialFailed { addr, error: e.to_string() },
            };
            let _ = events.send(event).await;
        });
    }

    fn learn_addr(&mut self, addr: SocketAddr) {
        if self.addrs.len() < MAX_ADDRS && !self.self_addrs.contains(&addr) && addr.port() != 0 {
            self.addrs.entry(addr).or_insert(AddrState { next_try: StdInstant::now(), fails: 0 });
        }
    }

    fn maintain_peers(&mut self) {
        // Seeds are resolved at each attempt, and always kept.
        for seed in self.seeds.clone() {
            if let Ok(mut resolved) = std::net::ToSocketAddrs::to_socket_addrs(seed.as_str())
                && let Some(addr) = resolved.next()
            {
                self.learn_addr(addr);
            }
        }
        let outbound = self.peers.values().filter(|p| p.dialed.is_some()).count() + self.dialing.len();
        if outbound >= self.config.max_outbound {
            return;
        }
        let now = StdInstant::now();
        let connected: HashSet<SocketAddr> =
            self.peers.values().flat_map(|p| p.listen.iter().chain(p.dialed.iter()).copied()).collect();
        let candidates: Vec<SocketAddr> = self
            .addrs
            .iter()
            .filter(|(a, s)| {
                s.next_try <= now
                    && !connected.contains(*a)
                    && !self.dialing.contains(*a)
                    && !self.self_addrs.contains(*a)
                    && *a != &self.endpoint.local_addr()
            })
            .map(|(a, _)| *a)
            .filter(|a| self.is_banned(&[0; 32], &[*a]).is_none())
            .choose_multiple(&mut rand::rng(), 2.min(self.config.max_outbound - outbound));
        for addr in candidates {
            if let Some(state) = self.addrs.get_mut(&addr) {
                state.next_try = now + Duration::from_secs(1 << state.fails.min(5));
            }
            self.dial(addr);
        }
    }

    // ---- messages ----------------------------------------------------------------

    fn on_message(&mut self, peer: u64, msg: Message) -> Result<(), Error> {
        let Some(p) = self.peers.get_mut(&peer) else { return Ok(()) };
        if p.conduct.count_message(StdInstant::now()) {
            self.misbehave(peer, BAN_SCORE, "message flood");
            return Ok(());
        }
        let ready = p.ready();
        tracing::trace!(peer, message = msg.name(), "received");
        match msg {
            Message::Version(v) if !ready => self.on_version(peer, v),
            Message::Version(_) => self.misbehave(peer, 10, "a second version message"),
            _ if !ready => self.misbehave(peer, 10, "a message before the handshake"),
            Message::Ping(n) => self.send(peer, &Message::Pong(n)),
            Message::Pong(_) => {}
            Message::GetAddr => {
                let addrs: Vec<SocketAddr> = self
                    .peers
                    .values()
                    .filter_map(|p| p.listen)
                    .chain(self.addrs.iter().filter(|(_, s)| s.fails == 0).map(|(a, _)| *a))
                    .collect::<HashSet<_>>()
                    .into_iter()
                    .take(100)
                    .collect();
                self.send(peer, &Message::Addr(addrs));
            }
            Message::Addr(addrs) => {
                for a in addrs {
                    self.learn_addr(a);
                }
            }
            Message::Inv(items) => self.on_inv(peer, items),
            Message::GetData(items) => self.on_getdata(peer, items),
            Message::NotFound(items) => {
                for item in items {
                    if let Inventory::Block(h) = item {
                        self.in_flight.remove(&h);
                        if let Some(p) = self.peers.get_mut(&peer) {
                            p.in_flight.remove(&h);
                            p.known.remove(&h);
                            if p.missing.len() >= MAX_REMEMBERED {
                                p.missing.clear();
                            }
                            p.missing.insert(h);
                        }
                    }
                }
                self.schedule_downloads();
            }
            Message::GetHeaders { locator, stop } => self.on_getheaders(peer, &locator, stop),
            Message::Headers(headers) => return self.on_headers(peer, headers),
            Message::Block(block) => return self.on_block(peer, *block),
            Message::Tx(tx) => self.on_tx(peer, *tx),
        }
        Ok(())
    }

    fn on_version(&mut self, peer: u64, v: Version) {
        let genesis = self.chain.params().genesis.hash();
        if v.protocol != PROTOCOL_VERSION || v.chain != self.digest || v.genesis != genesis {
            tracing::info!(peer, protocol = v.protocol, "peer is on another chain or protocol; disconnecting");
            self.disconnect(peer, false, "another chain or protocol version");
            return;
        }
        let Some(p) = self.peers.get_mut(&peer) else { return };
        let listen = SocketAddr::new(p.remote.ip(), v.listen_port);
        p.listen = Some(listen);
        p.height = v.height;
        let outbound = p.dialed.is_some();
        let key = p.key;
        p.version = Some(v);
        if let Some(reason) = self.is_banned(&key, &[listen]) {
            let reason = reason.to_owned();
            self.disconnect(peer, false, &format!("banned: {reason}"));
            return;
        }
        self.learn_addr(listen);
        if outbound {
            self.send(peer, &Message::GetAddr);
        }
        // Announce our tip: a peer that does not know it asks for headers, whichever of
        // us is behind or on another branch.
        let tip = self.chain.tip().hash;
        self.send(peer, &Message::Inv(vec![Inventory::Block(tip)]));
        if self.peers.get(&peer).is_some_and(|p| p.height > self.chain.height()) {
            self.send(peer, &Message::GetHeaders { locator: self.chain.locator(), stop: Hash::ZERO });
        }
    }

    fn ask_headers(&mut self, peer: u64, stop: BlockHash) {
        let now = StdInstant::now();
        if let Some(at) = self.headers_asked.get(&stop)
            && now.duration_since(*at) < Duration::from_secs(3)
        {
            return;
        }
        self.headers_asked.insert(stop, now);
        self.send(peer, &Message::GetHeaders { locator: self.chain.locator(), stop });
    }

    fn on_inv(&mut self, peer: u64, items: Vec<Inventory>) {
        let mut want_txs = Vec::new();
        for item in items {
            match item {
                Inventory::Block(h) => {
                    self.peer_has(peer, h);
                    if self.chain.entry(&h).is_none() {
                        self.announced.entry(h).or_insert_with(StdInstant::now);
                        self.ask_headers(peer, h);
                    } else if let Some(e) = self.chain.entry(&h)
                        && let Some(p) = self.peers.get_mut(&peer)
                    {
                        p.height = p.height.max(e.height);
                    }
                }
                Inventory::Tx(id) => {
                    if !self.chain.mempool().contains(&id) && !self.tx_index.contains_key(&id) {
                        want_txs.push(Inventory::Tx(id));
                    }
                }
            }
        }
        if !want_txs.is_empty() {
            self.send(peer, &Message::GetData(want_txs));
        }
    }

    fn on_getdata(&mut self, peer: u64, items: Vec<Inventory>) {
        let mut missing = Vec::new();
        for item in items {
            let msg = match item {
                Inventory::Block(h) => self.chain.block(&h).map(|b| Message::Block(Box::new((**b).clone()))),
                Inventory::Tx(id) => self.chain.mempool().get(&id).map(|t| Message::Tx(Box::new(t.clone()))),
            };
            match msg {
                Some(msg) => self.send(peer, &msg),
                None => missing.push(item),
            }
        }
        if !missing.is_empty() {
            self.send(peer, &Message::NotFound(missing));
        }
    }

    fn on_getheaders(&mut self, peer: u64, locator: &[BlockHash], stop: BlockHash) {
        let fork = locator.iter().find_map(|h| self.chain.entry(h).filter(|e| self.chain.is_active(&e.hash)));
        let start = fork.map_or(1, |e| e.height + 1);
        let mut headers = Vec::new();
        let mut height = start;
        while headers.len() < MAX_HEADERS {
            let Some(entry) = self.chain.hash_at(height).and_then(|h| self.chain.entry(&h)) else { break };
            headers.push(entry.header);
            if entry.hash == stop {
                break;
            }
            height += 1;
        }
        self.send(peer, &Message::Headers(headers));
    }

    fn on_headers(&mut self, peer: u64, headers: Vec<ballot_pow::BlockHeader>) -> Result<(), Error> {
        let now = wall_now();
        let full = headers.len() == MAX_HEADERS;
        let mut last = None;
        for header in headers {
            let hash = header.hash();
            self.peer_has(peer, hash);
            match self.chain.accept_header(now, header) {
                Ok(Accepted::New | Accepted::Duplicate) => last = Some(hash),
                Ok(Accepted::Orphan { .. }) => {
                    // Headers that do not connect: ask again from our locator.
                    self.send(peer, &Message::GetHeaders { locator: self.chain.locator(), stop: Hash::ZERO });
                    break;
                }
                Err(e) if punishable(&e) => {
                    self.after_input(Some(peer))?;
                    self.misbehave(peer, BAN_SCORE, &format!("invalid header {hash}: {e}"));
                    return Ok(());
                }
                Err(_) => break,
            }
            self.announced.entry(hash).or_insert_with(StdInstant::now);
        }
        self.after_input(Some(peer))?;
        if let Some(last) = last {
            let height = self.chain.entry(&last).map_or(0, |e| e.height);
            if let Some(p) = self.peers.get_mut(&peer) {
                p.height = p.height.max(height);
            }
            if full {
                self.send(peer, &Message::GetHeaders { locator: vec![last], stop: Hash::ZERO });
            }
        }
        self.schedule_downloads();
        Ok(())
    }

    fn on_block(&mut self, peer: u64, block: Block) -> Result<(), Error> {
        let hash = block.hash();
        if let Some(p) = self.peers.get_mut(&peer) {
            p.in_flight.remove(&hash);
        }
        self.in_flight.remove(&hash);
        if self.chain.entry(&hash).is_some_and(|e| matches!(e.status, Status::Data | Status::Valid)) {
            self.schedule_downloads();
            return Ok(());
        }
        if self.block_source.len() > 10_000 {
            self.block_source.clear();
        }
        self.block_source.insert(hash, peer);
        self.announced.entry(hash).or_insert_with(StdInstant::now);
        match self.chain.accept_block(wall_now(), block) {
            Ok(Accepted::New | Accepted::Duplicate) => {}
            Ok(Accepted::Orphan { .. }) => {
                metrics::counter!(m::ORPHANS).increment(1);
                self.send(peer, &Message::GetHeaders { locator: self.chain.locator(), stop: hash });
            }
            Err(e) if punishable(&e) => {
                self.block_source.remove(&hash);
                metrics::counter!(m::INVALID_BLOCKS).increment(1);
                self.after_input(Some(peer))?;
                self.misbehave(peer, BAN_SCORE, &format!("invalid block {hash}: {e}"));
                return Ok(());
            }
            Err(e) => tracing::debug!(peer, %hash, error = %e, "block not accepted yet"),
        }
        self.after_input(Some(peer))?;
        if let Some(h) = self.chain.entry(&hash).map(|e| e.height)
            && let Some(p) = self.peers.get_mut(&peer)
        {
            p.height = p.height.max(h);
        }
        self.schedule_downloads();
        Ok(())
    }

    fn on_tx(&mut self, peer: u64, tx: SignedTransfer) {
        let id = tx.id();
        if self.chain.mempool().contains(&id) || self.tx_index.contains_key(&id) {
            return;
        }
        match self.chain.submit_transaction(tx) {
            Ok(id) => {
                self.broadcast(&Message::Inv(vec![Inventory::Tx(id)]), Some(peer));
                self.update_gauges();
            }
            Err(MempoolError::Invalid(
                e @ (LedgerError::BadSignature
                | LedgerError::WrongChainId { .. }
                | LedgerError::TxTooLarge { .. }
                | LedgerError::ZeroAmount
                | LedgerError::AmountOverflow),
            )) => self.misbehave(peer, 20, &format!("invalid transaction {id}: {e}")),
            Err(e) => tracing::debug!(peer, %id, error = %e, "transaction not admitted"),
        }
    }

    // ---- sync ----------------------------------------------------------------------

    /// Requests wanted blocks from ready peers, up to a window per peer, spreading them
    /// over the peers that have them.
    fn schedule_downloads(&mut self) {
        self.prune_wanted();
        if self.wanted.is_empty() {
            return;
        }
        let mut requests: HashMap<u64, Vec<Inventory>> = HashMap::new();
        let now = StdInstant::now();
        let mut ids: Vec<u64> = self.peers.iter().filter(|(_, p)| p.ready()).map(|(id, _)| *id).collect();
        ids.sort_unstable();
        if ids.is_empty() {
            return;
        }
        let mut turn = 0usize;
        for hash in self.wanted.iter().copied().collect::<Vec<_>>() {
            if self.in_flight.contains_key(&hash) {
                continue;
            }
            let height = self.chain.entry(&hash).map_or(0, |e| e.height);
            // A peer that announced the block first; else one whose chain is as long
            // and that has not said it lacks the block.
            let free = |id: &u64| self.peers[id].in_flight.len() < MAX_IN_FLIGHT_PER_PEER;
            let rotation = (0..ids.len()).map(|k| ids[(turn + k) % ids.len()]);
            let pick = rotation.clone().find(|id| free(id) && self.peers[id].known.contains(&hash)).or_else(|| {
                rotation.clone().find(|id| {
                    let p = &self.peers[id];
                    free(id) && p.height >= height && !p.missing.contains(&hash)
                })
            });
            let Some(id) = pick else { continue };
            turn = turn.wrapping_add(1);
            self.in_flight.insert(hash, (id, now));
            if let Some(p) = self.peers.get_mut(&id) {
                p.in_flight.insert(hash);
            }
            requests.entry(id).or_default().push(Inventory::Block(hash));
        }
        for (id, items) in requests {
            self.send(id, &Message::GetData(items));
        }
    }

    /// Notes that `peer` has block `hash` (it announced it or sent its header).
    fn peer_has(&mut self, peer: u64, hash: BlockHash) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.missing.remove(&hash);
            if p.known.len() >= MAX_REMEMBERED {
                p.known.clear();
            }
            p.known.insert(hash);
        }
    }

    /// Forgets wanted blocks that arrived (or were found invalid) meanwhile.
    fn prune_wanted(&mut self) {
        self.wanted.retain(|h| self.chain.entry(h).is_some_and(|e| e.status == Status::Header));
    }

    /// Writes an input's outputs in one batch, then acts on them.
    fn after_input(&mut self, source: Option<u64>) -> Result<(), Error> {
        let outs: Vec<ChainOutput> = std::iter::from_fn(|| self.chain.poll_output()).collect();
        if outs.is_empty() {
            return Ok(());
        }
        self.store.write(&outs)?;
        let mut new_tip = false;
        for out in outs {
            match out {
                ChainOutput::Connected(c) => {
                    let hash = c.entry.hash;
                    self.tx_index.extend(c.block.txs.iter().map(|t| (t.id(), hash)));
                    metrics::counter!(m::BLOCKS_CONNECTED).increment(1);
                    metrics::counter!(m::TXS_CONNECTED).increment(c.block.txs.len().saturating_sub(1) as u64);
                    if let Some(at) = self.announced.remove(&hash) {
                        metrics::histogram!(m::PROPAGATION).record(at.elapsed().as_secs_f64());
                    }
                }
                ChainOutput::Disconnected { entry, .. } => {
                    if let Some(block) = self.chain.block(&entry.hash) {
                        for t in &block.txs {
                            self.tx_index.remove(&t.id());
                        }
                    }
                }
                ChainOutput::NewTip { .. } => new_tip = true,
                ChainOutput::Reorg { old_tip, new_tip, depth, connected, .. } => {
                    metrics::counter!(m::REORGS).increment(1);
                    metrics::gauge!(m::LAST_REORG_DEPTH).set(depth as f64);
                    tracing::info!(%old_tip, %new_tip, depth, connected, "reorganised onto the most-work chain");
                }
                ChainOutput::Invalid { hash, reason } => {
                    metrics::counter!(m::INVALID_BLOCKS).increment(1);
                    if let Some(peer) = self.block_source.remove(&hash) {
                        self.misbehave(peer, BAN_SCORE, &format!("invalid block {hash}: {reason}"));
                    } else {
                        tracing::warn!(%hash, %reason, "block found invalid");
                    }
                }
                ChainOutput::RequestBlock(h) => {
                    if !self.wanted.contains(&h) && self.chain.entry(&h).is_some_and(|e| e.status == Status::Header) {
                        self.wanted.push_back(h);
                    }
                }
                ChainOutput::StoreBlock { .. } | ChainOutput::StoreIndex(_) => {}
            }
        }
        if new_tip {
            let tip = self.chain.tip().clone();
            tracing::debug!(height = tip.height, hash = %tip.hash, "new tip");
            self.broadcast(&Message::Inv(vec![Inventory::Block(tip.hash)]), source);
            self.new_template();
            self.update_gauges();
        }
        Ok(())
    }

    // ---- mining --------------------------------------------------------------------

    fn new_template(&mut self) {
        self.last_template = StdInstant::now();
        if let Some(miner) = &self.miner {
            let template = self.chain.block_template(wall_now(), self.miner_key);
            miner.set_job(template.block);
        }
    }

    fn on_mined(&mut self, block: Block) -> Result<(), Error> {
        let hash = block.hash();
        if block.header.prev != self.chain.tip().hash {
            // A stale template (the tip moved meanwhile): the threads that found it wait
            // for a job, so give them one now.
            self.new_template();
            return Ok(());
        }
        match self.chain.accept_block(wall_now(), block) {
            Ok(_) => {
                metrics::counter!(m::BLOCKS_MINED).increment(1);
                let height = self.chain.entry(&hash).map_or(0, |e| e.height);
                tracing::info!(%hash, height, "mined a block");
            }
            Err(e) => tracing::warn!(%hash, error = %e, "own block refused"),
        }
        self.after_input(None)
    }

    // ---- timers --------------------------------------------------------------------

    fn on_tick(&mut self) -> Result<(), Error> {
        let now = StdInstant::now();
        // Requests that timed out go to another peer.
        let late: Vec<(BlockHash, u64)> = self
            .in_flight
            .iter()
            .filter(|(_, (_, at))| now.duration_since(*at) > BLOCK_TIMEOUT)
            .map(|(h, (p, _))| (*h, *p))
            .collect();
        for (hash, peer) in late {
            self.in_flight.remove(&hash);
            if let Some(p) = self.peers.get_mut(&peer) {
                p.in_flight.remove(&hash);
            }
        }
        self.bans.expire(now);
        self.headers_asked.retain(|_, at| now.duration_since(*at) < Duration::from_secs(30));
        self.announced.retain(|_, at| now.duration_since(*at) < Duration::from_secs(600));
        self.maintain_peers();
        // Now and then ask a peer for addresses, while short of outbound peers.
        self.ticks += 1;
        let outbound = self.peers.values().filter(|p| p.dialed.is_some()).count();
        if self.ticks.is_multiple_of(20) && outbound < self.config.max_outbound {
            let ready: Vec<u64> = self.peers.iter().filter(|(_, p)| p.ready()).map(|(id, _)| *id).collect();
            if let Some(&id) = ready.iter().choose(&mut rand::rng()) {
                self.send(id, &Message::GetAddr);
            }
        }
        self.schedule_downloads();
        if self.miner.is_some() && now.duration_since(self.last_template) >= TEMPLATE_EVERY {
            self.new_template();
        }
        if let Some(miner) = &self.miner {
            let (at, hashes) = self.hash_sample;
            let secs = now.duration_since(at).as_secs_f64();
            if secs >= 2.0 {
                let total = miner.hashes();
                self.hashrate = (total - hashes) as f64 / secs;
                self.hash_sample = (now, total);
                metrics::gauge!(m::HASHRATE).set(self.hashrate);
            }
        }
        self.update_gauges();
        Ok(())
    }

    fn update_gauges(&mut self) {
        self.prune_wanted();
        let tip = self.chain.tip();
        let work =
            tip.chain_work.0.iter().rev().fold(0.0f64, |acc, limb| acc * 18_446_744_073_709_551_616.0 + *limb as f64);
        metrics::gauge!(m::HEIGHT).set(tip.height as f64);
        metrics::gauge!(m::CHAIN_WORK).set(work);
        metrics::gauge!(m::MEMPOOL_TXS).set(self.chain.mempool().len() as f64);
        metrics::gauge!(m::MEMPOOL_BYTES).set(self.chain.mempool().bytes() as f64);
        let outbound = self.peers.values().filter(|p| p.dialed.is_some()).count();
        metrics::gauge!(m::PEERS, "direction" => "outbound").set(outbound as f64);
        metrics::gauge!(m::PEERS, "direction" => "inbound").set((self.peers.len() - outbound) as f64);
        metrics::gauge!(m::ORPHAN_POOL).set(self.chain.orphans().0 as f64);
        let syncing = self.wanted.len();
        metrics::gauge!(m::BLOCKS_WANTED).set(syncing as f64);
        let health = Health {
            height: tip.height,
            peers: self.peers.values().filter(|p| p.ready()).count(),
            syncing,
            seeds: self.seeds.len(),
        };
        self.health.send_replace(health);
    }

    // ---- API -----------------------------------------------------------------------

    fn on_api(&mut self, request: Api) -> Result<(), Error> {
        match request {
            Api::Tip(reply) => {
                let tip = self.chain.tip();
                let _ = reply.send(TipInfo {
                    node: PublicKey(self.key).to_string(),
                    chain_id: self.chain.params().ledger.chain_id,
                    height: tip.height,
                    hash: tip.hash.to_string(),
                    chain_work: format!("{:?}", tip.chain_work),
                    time: tip.header.time,
                    bits: self.chain.next_bits(tip).to_string(),
                    peers: self.peers.values().filter(|p| p.ready()).count(),
                    mempool: self.chain.mempool().len(),
                    syncing_blocks: self.wanted.len(),
                    hashrate: self.hashrate,
                });
            }
            Api::Block(id, reply) => {
                let _ = reply.send(self.block_info(&id));
            }
            Api::Tx(id, reply) => {
                let _ = reply.send(self.tx_info(&id));
            }
            Api::Account(key, reply) => {
                let _ = reply.send(self.account_info(&key));
            }
            Api::Submit(tx, reply) => {
                let result = self.chain.submit_transaction(*tx).map_err(|e| ApiFailure::Invalid(e.to_string()));
                if let Ok(id) = &result {
                    tracing::info!(%id, "transaction submitted");
                    self.broadcast(&Message::Inv(vec![Inventory::Tx(*id)]), None);
                    self.update_gauges();
                }
                let _ = reply.send(result);
            }
            Api::Peers(reply) => {
                let mut peers: Vec<PeerInfo> = self
                    .peers
                    .values()
                    .map(|p| PeerInfo {
                        key: PublicKey(p.key).to_string(),
                        addr: p.remote.to_string(),
                        listen: p.listen.map(|a| a.to_string()),
                        direction: if p.dialed.is_some() { "outbound" } else { "inbound" }.into(),
                        height: p.height,
                        in_flight: p.in_flight.len(),
                        misbehaviour: p.conduct.score(),
                        connected_secs: p.connected_at.elapsed().as_secs(),
                    })
                    .collect();
                peers.sort_by(|a, b| a.listen.cmp(&b.listen));
                let _ = reply.send(peers);
            }
            Api::Mempool(reply) => {
                let ledger = self.chain.ledger();
                let txs = self
                    .chain
                    .mempool()
                    .select(ledger, usize::MAX)
                    .into_iter()
                    .map(|t| summary(&Transaction::Transfer(t)))
                    .collect::<Vec<_>>();
                let mut all = txs;
                let listed: HashSet<String> = all.iter().map(|t| t.id.clone()).collect();
                for (id, t) in self.chain.mempool().iter() {
                    if !listed.contains(&id.to_string()) {
                        all.push(summary(&Transaction::Transfer(t.clone())));
                    }
                }
                let _ = reply.send(all);
            }
            Api::Verify(reply) => {
                let blocks = (1..=self.chain.height())
                    .filter_map(|h| self.chain.hash_at(h).and_then(|hash| self.chain.block(&hash).cloned()))
                    .collect();
                let mut problems = self.store.compare_accounts(self.chain.ledger())?;
                if self.store.tip()? != Some(self.chain.tip().hash) {
                    problems.push("the stored tip differs from the active tip".into());
                }
                let _ = reply.send(VerifyInput {
                    params: self.chain.params().clone(),
                    blocks,
                    ledger: self.chain.ledger().clone(),
                    problems,
                });
            }
            Api::Bans(reply) => {
                let _ = reply.send(self.ban_list());
            }
            Api::Ban(target, secs, reply) => {
                let target = normalize_target(&target);
                let until = StdInstant::now() + Duration::from_secs(secs);
                self.bans.ban(&target, until, "banned by an operator");
                let victims: Vec<u64> = self
                    .peers
                    .iter()
                    .filter(|(_, p)| {
                        hex(&p.key) == target
                            || p.listen.is_some_and(|a| a.to_string() == target)
                            || p.dialed.is_some_and(|a| a.to_string() == target)
                    })
                    .map(|(id, _)| *id)
                    .collect();
                for id in victims {
                    tracing::info!(peer = id, %target, "disconnecting a banned peer");
                    self.disconnect(id, false, "banned by an operator");
                }
                let _ = reply.send(Ok(self.ban_list()));
            }
            Api::Unban(target, reply) => {
                let target = normalize_target(&target);
                let result = if self.bans.unban(&target) {
                    if let Ok(addr) = target.parse::<SocketAddr>()
                        && let Some(state) = self.addrs.get_mut(&addr)
                    {
                        state.next_try = StdInstant::now();
                        state.fails = 0;
                    }
                    Ok(self.ban_list())
                } else {
                    Err(ApiFailure::NotFound(format!("no ban on {target}")))
                };
                let _ = reply.send(result);
            }
        }
        Ok(())
    }

    fn ban_list(&self) -> Vec<BanInfo> {
        self.bans.list(StdInstant::now())
    }

    fn block_info(&self, id: &str) -> Result<BlockInfo, ApiFailure> {
        let hash = match id.parse::<u64>() {
            Ok(height) => self.chain.hash_at(height).ok_or_else(|| {
                ApiFailure::NotFound(format!("no block at height {height} (tip {})", self.chain.height()))
            })?,
            Err(_) => {
                id.parse::<Hash>().map_err(|e| ApiFailure::Invalid(format!("{e}; give a height or a block hash")))?
            }
        };
        let entry = self.chain.entry(&hash).ok_or_else(|| ApiFailure::NotFound(format!("unknown block {hash}")))?;
        let active = self.chain.is_active(&hash);
        let block = self.chain.block(&hash);
        Ok(BlockInfo {
            hash: hash.to_string(),
            height: entry.height,
            prev: entry.header.prev.to_string(),
            merkle_root: entry.header.merkle_root.to_string(),
            time: entry.header.time,
            bits: entry.header.bits.to_string(),
            nonce: entry.header.nonce,
            status: format!("{:?}", entry.status).to_lowercase(),
            active,
            confirmations: if active { self.chain.height() - entry.height + 1 } else { 0 },
            size: block.map_or(0, |b| b.size()),
            txs: block.map(|b| b.txs.iter().map(summary).collect()).unwrap_or_default(),
        })
    }

    fn tx_info(&self, id: &str) -> Result<TxInfo, ApiFailure> {
        let id: TxId = id.parse().map_err(|e| ApiFailure::Invalid(format!("{e}")))?;
        if let Some(tx) = self.chain.mempool().get(&id) {
            return Ok(TxInfo {
                tx: summary(&Transaction::Transfer(tx.clone())),
                status: "mempool".into(),
                block: None,
                height: None,
                confirmations: 0,
            });
        }
        let hash = self.tx_index.get(&id).ok_or_else(|| ApiFailure::NotFound(format!("unknown transaction {id}")))?;
        let block = self.chain.block(hash).ok_or_else(|| ApiFailure::NotFound(format!("unknown transaction {id}")))?;
        let tx = block.txs.iter().find(|t| t.id() == id).ok_or_else(|| ApiFailure::NotFound(format!("{id}")))?;
        let height = self.chain.entry(hash).map_or(0, |e| e.height);
        Ok(TxInfo {
            tx: summary(tx),
            status: "confirmed".into(),
            block: Some(hash.to_string()),
            height: Some(height),
            confirmations: self.chain.height() - height + 1,
        })
    }

    fn account_info(&self, key: &str) -> Result<AccountInfo, ApiFailure> {
        let key: PublicKey = key.parse().map_err(|e| ApiFailure::Invalid(format!("{e}")))?;
        let ledger = self.chain.ledger();
        let account = ledger.account(&key).unwrap_or_default();
        let pending = self
            .chain
            .mempool()
            .iter()
            .filter(|(_, t)| t.transfer.from == key)
            .map(|(_, t)| t.transfer.nonce + 1)
            .max();
        Ok(AccountInfo {
            key: key.to_string(),
            balance: account.balance,
            spendable: ledger.spendable(&key, ledger.next_height()),
            next_nonce: pending.unwrap_or(account.nonce).max(account.nonce),
            nonce: account.nonce,
            height: self.chain.height(),
        })
    }
}

async fn write_loop(mut sender: FrameSender, mut out: mpsc::Receiver<Out>) {
    while let Some(item) = out.recv().await {
        match item {
            Out::Frame(bytes) => {
                if let Err(e) = sender.send(bytes).await {
                    tracing::debug!(error = %e, "peer write failed");
                    break;
                }
            }
            Out::Close { protocol, reason } => {
                sender.close(protocol, &reason);
                break;
            }
        }
    }
}

async fn read_loop(peer: u64, mut receiver: FrameReceiver, events: mpsc::Sender<Event>) {
    let reason = loop {
        match receiver.next().await {
            Ok(Some(bytes)) => match Message::decode(&bytes) {
                Ok(msg) => {
                    if events.send(Event::Message { peer, msg }).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let reason = format!("bad message: {e}");
                    let _ = events.send(Event::Misbehaved { peer, points: 50, reason }).await;
                }
            },
            Ok(None) => break "stream finished".to_owned(),
            Err(ballot_quic::Error::Wire(e)) => {
                let reason = format!("malformed or oversized frame: {e}");
                let _ = events.send(Event::Misbehaved { peer, points: BAN_SCORE, reason: reason.clone() }).await;
                break reason;
            }
            Err(e) => break e.to_string(),
        }
    };
    let _ = events.send(Event::Closed { peer, reason }).await;
}
