//! Runs real ballot service processes on loopback: the end-to-end tests and
//! `cargo xtask cluster|demo` use it.
//!
//! [`ClusterSpec`] lays out a cluster (ports, data and log directories, development
//! certificates) and builds each node's command line; [`Cluster`] owns running node
//! processes and kills them when dropped, so a failing test leaves nothing behind.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use ballot_core::Consensus;
use ballot_core::NodeId;
pub use rustix::process::Signal;

/// Sends `signal` to process `pid` (directly: minimal systems have no `kill` binary).
/// Returns whether the process existed.
pub fn send_signal(pid: u32, signal: Signal) -> bool {
    let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) else { return false };
    rustix::process::kill_process(pid, signal).is_ok()
}

/// The service a cluster runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// `ballot-kvd`.
    Kv,
    /// `ballot-configd`.
    Config,
    /// `ballot-electiond`.
    Election,
    /// `ballot-chaind`: a Proof-of-Work network where every node mines.
    Chain,
}

impl Service {
    /// The daemon's binary name.
    #[must_use]
    pub fn binary(self) -> &'static str {
        match self {
            Service::Kv => "ballot-kvd",
            Service::Config => "ballot-configd",
            Service::Election => "ballot-electiond",
            Service::Chain => "ballot-chaind",
        }
    }

    /// A short name (`kv`, `config`, `election`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Service::Kv => "kv",
            Service::Config => "config",
            Service::Election => "election",
            Service::Chain => "chain",
        }
    }

    /// Parses `kv`, `config`, `election` or `chain`.
    ///
    /// # Errors
    /// For any other name.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "kv" => Ok(Service::Kv),
            "config" => Ok(Service::Config),
            "election" => Ok(Service::Election),
            "chain" => Ok(Service::Chain),
            _ => Err(format!("unknown service {s:?}: use kv, config, election or chain")),
        }
    }
}

/// The shape of a loopback cluster.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// Which daemon to run.
    pub service: Service,
    /// How many nodes (ids 1..=nodes).
    pub nodes: usize,
    /// The consensus algorithm the nodes run.
    pub consensus: Consensus,
    /// Node `i` listens on UDP `base_port + i` and serves HTTP on `base_port + 100 + i`.
    pub base_port: u16,
    /// Holds `certs/`, `n<i>/` data directories and `n<i>.log` files.
    pub dir: PathBuf,
    /// Where the daemon binary is.
    pub binary: PathBuf,
    /// Minimum election timeout.
    pub election_timeout_ms: u64,
    /// Heartbeat interval.
    pub heartbeat_ms: u64,
    /// Extra flags for every node.
    pub extra_args: Vec<String>,
    /// Extra flags for single nodes (`ballot cluster up --node-args`; recorded by
    /// detached clusters, so a node restarted by `cluster start` keeps them).
    pub node_args: std::collections::BTreeMap<NodeId, Vec<String>>,
}

impl ClusterSpec {
    /// A spec with fast timeouts suited to tests (election 300 ms, heartbeat 50 ms).
    #[must_use]
    pub fn new(service: Service, nodes: usize, dir: impl Into<PathBuf>, binary: impl Into<PathBuf>) -> Self {
        ClusterSpec {
            service,
            nodes,
            consensus: Consensus::Raft,
            base_port: free_port_base(nodes),
            dir: dir.into(),
            binary: binary.into(),
            election_timeout_ms: 300,
            heartbeat_ms: 50,
            extra_args: Vec::new(),
            node_args: std::collections::BTreeMap::new(),
        }
    }

    /// The node ids.
    #[must_use]
    pub fn ids(&self) -> Vec<NodeId> {
        (1..=self.nodes as u64).map(NodeId).collect()
    }

    /// Node `id`'s QUIC address.
    #[must_use]
    pub fn listen(&self, id: NodeId) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.base_port + id.get() as u16))
    }

    /// Node `id`'s HTTP address.
    #[must_use]
    pub fn metrics(&self, id: NodeId) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.base_port + 100 + id.get() as u16))
    }

    /// The client endpoints (`127.0.0.1:port`), in id order.
    #[must_use]
    pub fn endpoints(&self) -> Vec<String> {
        self.ids().iter().map(|&id| self.listen(id).to_string()).collect()
    }

    /// The certificate directory.
    #[must_use]
    pub fn cert_dir(&self) -> PathBuf {
        self.dir.join("certs")
    }

    /// Node `id`'s data directory.
    #[must_use]
    pub fn data_dir(&self, id: NodeId) -> PathBuf {
        self.dir.join(format!("n{}", id.get()))
    }

    /// Node `id`'s log file.
    #[must_use]
    pub fn log_file(&self, id: NodeId) -> PathBuf {
        self.dir.join(format!("n{}.log", id.get()))
    }

    /// The ports this cluster needs that something else holds, each with what it is for.
    #[must_use]
    pub fn ports_in_use(&self) -> Vec<(u16, String)> {
        let mut taken = Vec::new();
        for id in self.ids() {
            let (quic, http) = (self.listen(id), self.metrics(id));
            if std::net::UdpSocket::bind(quic).is_err() {
                taken.push((quic.port(), format!("node {}'s client and peer port (UDP {quic})", id.get())));
            }
            if std::net::TcpListener::bind(http).is_err() {
                taken.push((http.port(), format!("node {}'s metrics port (TCP {http})", id.get())));
            }
        }
        taken
    }

    /// Writes development certificates for every node and a client, unless present.
    ///
    /// # Errors
    /// If they cannot be written.
    pub fn ensure_certs(&self) -> io::Result<()> {
        // Chain nodes are identified by their own keys: no CA, no certificates.
        if self.service == Service::Chain || self.cert_dir().join("client.pem").exists() {
            return Ok(());
        }
        let ids: Vec<NodeId> = (1..=9).map(NodeId).collect();
        ballot_quic::generate_dev_certs(&self.cert_dir(), &ids, &["127.0.0.1".to_owned(), "localhost".to_owned()])
            .map(|_| ())
            .map_err(|e| io::Error::other(e.to_string()))
    }

    /// A client configuration for this cluster, with attempts short enough that a dead
    /// node is skipped quickly.
    ///
    /// # Errors
    /// If the client certificate cannot be loaded.
    pub fn client_config(&self) -> Result<ballot_client::ClientConfig, ballot_client::Error> {
        let mut config = ballot_client::ClientConfig::from_cert_dir(self.endpoints(), self.cert_dir())?;
        config.attempt_timeout = Duration::from_millis(500);
        config.deadline = Duration::from_secs(10);
        config.consensus = self.consensus;
        Ok(config)
    }

    /// The command line of node `id`.
    #[must_use]
    pub fn command(&self, id: NodeId) -> Command {
        if self.service == Service::Chain {
            return self.chain_command(id);
        }
        let peers: Vec<String> = self.ids().iter().map(|&p| format!("{}={}", p.get(), self.listen(p))).collect();
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--node-id")
            .arg(id.get().to_string())
            .arg("--data-dir")
            .arg(self.data_dir(id))
            .arg("--listen")
            .arg(self.listen(id).to_string())
            .arg("--peers")
            .arg(peers.join(","))
            .arg("--metrics-listen")
            .arg(self.metrics(id).to_string())
            .arg("--cert-dir")
            .arg(self.cert_dir())
            .arg("--consensus")
            .arg(self.consensus.name())
            .arg("--election-timeout-ms")
            .arg(self.election_timeout_ms.to_string())
            .arg("--heartbeat-ms")
            .arg(self.heartbeat_ms.to_string())
            .args(&self.extra_args)
            .args(self.node_args.get(&id).into_iter().flatten())
            .env_remove("BALLOT_CONFIG");
        cmd
    }

    /// A chain node's command line: it mines on one thread and joins through node 1
    /// (node 1 through node 2), learning the others by address gossip.
    fn chain_command(&self, id: NodeId) -> Command {
        let seed = if id.get() == 1 { NodeId(2) } else { NodeId(1) };
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--data-dir")
            .arg(self.data_dir(id))
            .arg("--listen")
            .arg(self.listen(id).to_string())
            .arg("--metrics-listen")
            .arg(self.metrics(id).to_string())
            .arg("--mine")
            .arg("--threads")
            .arg("1");
        if self.nodes > 1 {
            cmd.arg("--seeds").arg(self.listen(seed).to_string());
        }
        cmd.args(&self.extra_args).env_remove("BALLOT_CONFIG");
        cmd
    }

    /// Starts node `id` with stdout and stderr appended to its log file.
    ///
    /// # Errors
    /// If the process cannot be started.
    pub fn spawn(&self, id: NodeId) -> io::Result<Child> {
        fs::create_dir_all(&self.dir)?;
        let log = fs::OpenOptions::new().create(true).append(true).open(self.log_file(id))?;
        let mut cmd = self.command(id);
        cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        cmd.spawn().map_err(|e| io::Error::new(e.kind(), format!("starting {}: {e}", self.binary.display())))
    }
}

/// Picks a base port whose QUIC and HTTP ports look free, so that parallel tests do not
/// collide. Ports are between 20000 and 59000.
#[must_use]
pub fn free_port_base(nodes: usize) -> u16 {
    let seed = u64::from(std::process::id())
        ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let candidates = std::iter::repeat_with(move || {
        x ^= x >> 29;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        20_000 + (x % 390) as u16 * 100
    });
    first_free_base(nodes, candidates.take(64)).unwrap_or(20_000)
}

/// The first base port among `candidates` whose `nodes` QUIC and HTTP ports are free.
pub fn first_free_base(nodes: usize, candidates: impl IntoIterator<Item = u16>) -> Option<u16> {
    candidates.into_iter().find(|&base| {
        base.checked_add(101 + nodes as u16).is_some()
            && (1..=nodes as u16).all(|i| {
                std::net::UdpSocket::bind(("127.0.0.1", base + i)).is_ok()
                    && std::net::TcpListener::bind(("127.0.0.1", base + 100 + i)).is_ok()
            })
    })
}

/// Serializes the end-to-end tests of one test binary: each starts several processes,
/// and running them side by side on a small machine only makes timing flaky.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A GET request to a node's HTTP port: `(status code, body)`.
///
/// # Errors
/// If the node does not answer within `timeout`.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let code = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an HTTP response"))?;
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((code, body))
}

/// Node processes on loopback, killed when dropped.
pub struct Cluster {
    spec: ClusterSpec,
    children: Vec<Option<Child>>,
}

impl Cluster {
    /// Creates certificates and starts every node.
    ///
    /// # Errors
    /// If a directory, the certificates or a process cannot be created.
    pub fn start(spec: ClusterSpec) -> io::Result<Cluster> {
        fs::create_dir_all(&spec.dir)?;
        spec.ensure_certs()?;
        let mut cluster = Cluster { children: spec.ids().iter().map(|_| None).collect(), spec };
        for id in cluster.spec.ids() {
            cluster.restart(id)?;
        }
        Ok(cluster)
    }

    /// The spec.
    #[must_use]
    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    fn slot(&mut self, id: NodeId) -> &mut Option<Child> {
        &mut self.children[(id.get() - 1) as usize]
    }

    /// Whether node `id`'s process runs.
    pub fn is_running(&mut self, id: NodeId) -> bool {
        matches!(self.slot(id).as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Kills node `id` with SIGKILL (a crash: nothing is flushed).
    pub fn kill(&mut self, id: NodeId) {
        if let Some(mut child) = self.slot(id).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes node `id` with SIGSTOP: its connections stay open but it answers nothing.
    pub fn pause(&mut self, id: NodeId) {
        self.signal(id, Signal::STOP);
    }

    /// Thaws a node frozen by [`pause`](Self::pause) with SIGCONT.
    pub fn resume(&mut self, id: NodeId) {
        self.signal(id, Signal::CONT);
    }

    fn signal(&mut self, id: NodeId, signal: Signal) {
        if let Some(child) = self.slot(id).as_ref() {
            send_signal(child.id(), signal);
        }
    }

    /// Stops node `id` with SIGTERM and waits up to `timeout` for it to exit (then kills it).
    /// Returns whether it exited by itself.
    pub fn stop(&mut self, id: NodeId, timeout: Duration) -> bool {
        let Some(mut child) = self.slot(id).take() else { return true };
        send_signal(child.id(), Signal::TERM);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// (Re)starts node `id` on its existing data directory.
    ///
    /// # Errors
    /// If the process cannot be started.
    pub fn restart(&mut self, id: NodeId) -> io::Result<()> {
        self.kill(id);
        let child = self.spec.spawn(id)?;
        *self.slot(id) = Some(child);
        Ok(())
    }

    /// Waits until every running node answers `/readyz` with 200 (has a leader, caught up).
    ///
    /// # Errors
    /// [`io::ErrorKind::TimedOut`] naming the nodes that were not ready, with their log tails.
    pub fn wait_ready(&mut self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let running: Vec<NodeId> = self.spec.ids().into_iter().filter(|&id| self.is_running(id)).collect();
            let not_ready: Vec<NodeId> = running
                .iter()
                .copied()
                .filter(|&id| {
                    !matches!(http_get(self.spec.metrics(id), "/readyz", Duration::from_millis(500)), Ok((200, _)))
                })
                .collect();
            if not_ready.is_empty() && !running.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let tails: Vec<String> =
                    not_ready.iter().map(|&id| format!("n{}: {}", id.get(), self.log_tail(id, 15))).collect();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("nodes not ready after {timeout:?}: {}", tails.join("\n")),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last `lines` lines of node `id`'s log.
    #[must_use]
    pub fn log_tail(&self, id: NodeId, lines: usize) -> String {
        tail(&self.spec.log_file(id), lines)
    }

    /// Scrapes node `id`'s `/metrics`.
    ///
    /// # Errors
    /// If the node does not answer.
    pub fn metrics_text(&self, id: NodeId) -> io::Result<String> {
        let (code, body) = http_get(self.spec.metrics(id), "/metrics", Duration::from_secs(2))?;
        if code == 200 { Ok(body) } else { Err(io::Error::other(format!("/metrics answered {code}"))) }
    }
}

impl Drop for Cluster {
    /// Kills every node; a directory made by [`test_dir`] is removed too, unless the
    /// test is failing (it stays for a look).
    fn drop(&mut self) {
        for id in self.spec.ids() {
            self.kill(id);
        }
        if !std::thread::panicking() && self.spec.dir.join(TEST_DIR_MARKER).exists() {
            // Best effort: a leftover directory only costs disk space.
            let _ = fs::remove_dir_all(&self.spec.dir);
        }
    }
}

/// The last `lines` lines of a text file (empty if it cannot be read).
fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Marks a directory made by [`test_dir`], which a [`Cluster`] removes when dropped.
const TEST_DIR_MARKER: &str = ".ballot-test-dir";

/// A fresh directory `base/name-<pid>` for one test's cluster (tests pass
/// `env!("CARGO_TARGET_TMPDIR")` as `base`). A [`Cluster`] started in it removes it when
/// dropped after the test passed: every run of the end-to-end tests would otherwise
/// leave its nodes' databases behind (27 GB after 128 runs here).
///
/// # Errors
/// If it cannot be created.
pub fn test_dir(base: impl AsRef<Path>, name: &str) -> io::Result<PathBuf> {
    let dir = base.as_ref().join(format!("{name}-{}", std::process::id()));
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    fs::write(dir.join(TEST_DIR_MARKER), b"")?;
    Ok(dir)
}

/// Detached clusters for local development (`ballot cluster up|down|status`): nodes run
/// in their own process group and outlive the command that started them; their pids
/// and the cluster's layout are kept in the cluster directory.
pub mod detached {
    use std::fs;
    use std::io;
    use std::os::unix::process::CommandExt as _;
    use std::path::{Path, PathBuf};
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    use ballot_core::NodeId;

    use super::{ClusterSpec, Service, Signal, http_get};

    const LAYOUT: &str = "cluster.txt";

    fn pid_file(spec: &ClusterSpec, id: NodeId) -> PathBuf {
        spec.dir.join(format!("n{}.pid", id.get()))
    }

    fn alive(pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
            && !fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
    }

    fn read_pid(spec: &ClusterSpec, id: NodeId) -> Option<u32> {
        fs::read_to_string(pid_file(spec, id)).ok()?.trim().parse().ok()
    }

    /// Writes certificates, starts every node in the background, records the layout and
    /// waits until every node serves (`/livez`). Refuses if a cluster already runs in
    /// `spec.dir` or another program holds one of its ports; if a node exits while
    /// starting, stops the others and says why (from its log).
    ///
    /// # Errors
    /// As above, or if a process cannot be started.
    pub fn up(spec: &ClusterSpec) -> io::Result<()> {
        if let Ok(running) = load(&spec.dir)
            && running.ids().iter().any(|&id| read_pid(&running, id).is_some_and(alive))
        {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("a cluster already runs in {}; stop it first (`down`)", spec.dir.display()),
            ));
        }
        let taken = spec.ports_in_use();
        if !taken.is_empty() {
            let suggestion = super::first_free_base(spec.nodes, (1..=60).map(|k| spec.base_port.wrapping_add(k * 200)))
                .map_or_else(String::new, |b| format!(" ({b} looks free)"));
            let what: Vec<String> = taken.iter().map(|(_, w)| w.clone()).collect();
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "ports in use: {}. Is another cluster running? Stop it, or choose other ports with \
                     --base-port{suggestion}",
                    what.join(", ")
                ),
            ));
        }
        fs::create_dir_all(&spec.dir)?;
        spec.ensure_certs()?;
        save(spec)?;
        for id in spec.ids() {
            start_node(spec, id)?;
        }
        if let Err(e) = wait_serving(spec, Duration::from_secs(30)) {
            for id in spec.ids() {
                signal_node(spec, id, Signal::KILL);
                let _ = fs::remove_file(pid_file(spec, id));
            }
            return Err(e);
        }
        Ok(())
    }

    /// Waits until every node of `spec` answers `/livez`; fails as soon as one exits.
    fn wait_serving(spec: &ClusterSpec, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut pending = spec.ids();
        while !pending.is_empty() {
            for &id in &pending {
                if !read_pid(spec, id).is_some_and(alive) {
                    let tail = super::tail(&spec.log_file(id), 10);
                    return Err(io::Error::other(format!(
                        "node {} exited while starting; the end of {}:\n{tail}",
                        id.get(),
                        spec.log_file(id).display()
                    )));
                }
            }
            pending.retain(|&id| {
                !matches!(http_get(spec.metrics(id), "/livez", Duration::from_millis(300)), Ok((200, _)))
            });
            if pending.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                let ids: Vec<String> = pending.iter().map(|id| id.get().to_string()).collect();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "nodes {} did not start serving within {timeout:?}; see their logs in {}",
                        ids.join(", "),
                        spec.dir.display()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Starts (or restarts) one node of a recorded cluster in the background.
    ///
    /// # Errors
    /// If the process cannot be started.
    pub fn start_node(spec: &ClusterSpec, id: NodeId) -> io::Result<u32> {
        let log = fs::OpenOptions::new().create(true).append(true).open(spec.log_file(id))?;
        let mut cmd = spec.command(id);
        cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).process_group(0);
        let child =
            cmd.spawn().map_err(|e| io::Error::new(e.kind(), format!("starting {}: {e}", spec.binary.display())))?;
        fs::write(pid_file(spec, id), format!("{}\n", child.id()))?;
        Ok(child.id())
    }

    /// Stops one node with `signal` (`Signal::KILL` or `Signal::TERM`) and waits up to
    /// 10 s for it to go (then kills it). Returns whether it was running.
    pub fn signal_node(spec: &ClusterSpec, id: NodeId, signal: Signal) -> bool {
        let Some(pid) = read_pid(spec, id) else { return false };
        if !alive(pid) {
            return false;
        }
        super::send_signal(pid, signal);
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if alive(pid) {
            super::send_signal(pid, Signal::KILL);
        }
        true
    }

    /// Stops every node (SIGTERM, then SIGKILL after 10 s). Returns how many were running.
    ///
    /// # Errors
    /// If no cluster is recorded in `dir`.
    pub fn down(dir: &Path) -> io::Result<usize> {
        let spec = load(dir)?;
        let mut stopped = 0;
        for id in spec.ids() {
            if signal_node(&spec, id, Signal::TERM) {
                stopped += 1;
            }
            let _ = fs::remove_file(pid_file(&spec, id));
        }
        Ok(stopped)
    }

    /// One node's state as seen from outside.
    #[derive(Debug, Clone)]
    pub struct NodeState {
        /// The node.
        pub id: NodeId,
        /// Its pid, if its process runs.
        pub pid: Option<u32>,
        /// Its client address.
        pub listen: String,
        /// Its metrics URL.
        pub metrics_url: String,
        /// `/health`'s JSON, if it answered.
        pub health: Option<String>,
    }

    /// The recorded cluster's nodes: running or not, and their `/health`.
    ///
    /// # Errors
    /// If no cluster is recorded in `dir`.
    pub fn status(dir: &Path) -> io::Result<(ClusterSpec, Vec<NodeState>)> {
        let spec = load(dir)?;
        let nodes = spec
            .ids()
            .into_iter()
            .map(|id| {
                let pid = read_pid(&spec, id).filter(|&p| alive(p));
                // Only a running node of this cluster is asked: its ports may belong to
                // someone else's process when it is down.
                let health = pid.and_then(|_| http_get(spec.metrics(id), "/health", Duration::from_millis(500)).ok());
                NodeState {
                    id,
                    pid,
                    listen: spec.listen(id).to_string(),
                    metrics_url: format!("http://{}/metrics", spec.metrics(id)),
                    health: health.map(|(_, b)| b.trim().to_owned()),
                }
            })
            .collect();
        Ok((spec, nodes))
    }

    fn save(spec: &ClusterSpec) -> io::Result<()> {
        let text = format!(
            "service={}\nnodes={}\nconsensus={}\nbase_port={}\nbinary={}\nelection_timeout_ms={}\nheartbeat_ms={}\nextra_args={}\n",
            spec.service.name(),
            spec.nodes,
            spec.consensus,
            spec.base_port,
            spec.binary.display(),
            spec.election_timeout_ms,
            spec.heartbeat_ms,
            spec.extra_args.join("\u{1f}"),
        );
        let per_node: String = spec
            .node_args
            .iter()
            .map(|(id, args)| format!("node_args.{}={}\n", id.get(), args.join("\u{1f}")))
            .collect();
        fs::write(spec.dir.join(LAYOUT), text + &per_node)
    }

    /// Reads the layout recorded by [`up`].
    ///
    /// # Errors
    /// If `dir` holds no recorded cluster.
    pub fn load(dir: &Path) -> io::Result<ClusterSpec> {
        let text = fs::read_to_string(dir.join(LAYOUT)).map_err(|e| {
            io::Error::new(e.kind(), format!("no cluster recorded in {} ({e}); start one with `up`", dir.display()))
        })?;
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
                .map(str::to_owned)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("{LAYOUT} lacks {name}")))
        };
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{LAYOUT}: bad {what}"));
        let service = Service::parse(&field("service")?).map_err(|_| bad("service"))?;
        let mut spec =
            ClusterSpec::new(service, field("nodes")?.parse().map_err(|_| bad("nodes"))?, dir, field("binary")?);
        spec.consensus = field("consensus")?.parse().map_err(|_| bad("consensus"))?;
        spec.base_port = field("base_port")?.parse().map_err(|_| bad("base_port"))?;
        spec.election_timeout_ms = field("election_timeout_ms")?.parse().map_err(|_| bad("election_timeout_ms"))?;
        spec.heartbeat_ms = field("heartbeat_ms")?.parse().map_err(|_| bad("heartbeat_ms"))?;
        let extra = field("extra_args")?;
        spec.extra_args =
            if extra.is_empty() { Vec::new() } else { extra.split('\u{1f}').map(str::to_owned).collect() };
        // One line per node with arguments of its own (layouts written before they
        // existed have none).
        for line in text.lines() {
            if let Some((id, args)) = line.strip_prefix("node_args.").and_then(|r| r.split_once('=')) {
                let id = NodeId(id.parse().map_err(|_| bad("node_args"))?);
                spec.node_args.insert(id, args.split('\u{1f}').map(str::to_owned).collect());
            }
        }
        Ok(spec)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_recorded_layout_keeps_every_node_s_own_arguments() {
            let dir = std::env::temp_dir().join(format!("ballot-layout-{}", std::process::id()));
            fs::create_dir_all(&dir).expect("dir");
            let mut spec = ClusterSpec::new(Service::Kv, 4, &dir, "/bin/true");
            spec.extra_args = vec!["--log".into(), "debug".into()];
            spec.node_args.insert(NodeId(1), vec!["--byzantine".into(), "alter-requests,wrong-digests".into()]);
            spec.node_args.insert(NodeId(3), vec!["--max-clock-skew-ms".into(), "900".into()]);
            save(&spec).expect("save");
            let loaded = load(&dir).expect("load");
            assert_eq!(loaded.node_args, spec.node_args);
            assert_eq!(loaded.extra_args, spec.extra_args);
            // A layout from before per-node arguments existed still loads, with none.
            let old: String = fs::read_to_string(dir.join(LAYOUT))
                .expect("read")
                .lines()
                .filter(|l| !l.starts_with("node_args."))
                .map(|l| format!("{l}\n"))
                .collect();
            fs::write(dir.join(LAYOUT), old).expect("write");
            assert!(load(&dir).expect("load").node_args.is_empty());
            fs::remove_dir_all(&dir).expect("clean up");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_directory_goes_with_its_cluster_unless_the_test_fails() {
        let base = std::env::temp_dir().join(format!("ballot-localcluster-{}", std::process::id()));
        let start = |dir: &Path| Cluster::start(ClusterSpec::new(Service::Kv, 1, dir, "/bin/true")).expect("start");
        let dir = test_dir(&base, "passed").expect("test dir");
        drop(start(&dir));
        assert!(!dir.exists(), "removed after a passing test");
        // A directory not made by `test_dir` is the caller's: left alone.
        let own = base.join("own");
        drop(start(&own));
        assert!(own.exists(), "kept");
        // A failing test keeps its directory for a look.
        let kept = test_dir(&base, "failed").expect("test dir");
        let inside = kept.clone();
        let outcome = std::panic::catch_unwind(move || {
            let _cluster = start(&inside);
            panic!("a failing test");
        });
        assert!(outcome.is_err() && kept.exists(), "kept after a failing test");
        fs::remove_dir_all(&base).expect("clean up");
    }
}
