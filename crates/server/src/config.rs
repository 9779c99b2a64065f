//! Server settings: flags, `BALLOT_*` environment variables and a TOML file, with the
//! same names. Precedence: flag, then environment, then file, then default.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use ballot_core::Consensus;
use ballot_core::NodeId;
use clap::Parser;

use super::ServerError;

/// One member of the initial cluster: `ID=HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The member's node id.
    pub id: NodeId,
    /// Its QUIC address (peers and clients).
    pub addr: String,
}

fn parse_peer(s: &str) -> Result<Peer, String> {
    let (id, addr) =
        s.split_once('=').ok_or_else(|| format!("{s:?} is not ID=HOST:PORT (for example 1=127.0.0.1:7001)"))?;
    let id: NodeId = id.trim().parse().map_err(|e| format!("{e}"))?;
    let addr = addr.trim();
    if addr.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none() {
        return Err(format!("{addr:?} is not HOST:PORT"));
    }
    Ok(Peer { id, addr: addr.to_owned() })
}

fn parse_node_id(s: &str) -> Result<NodeId, String> {
    s.parse::<NodeId>().map_err(|e| e.to_string())
}

/// Settings of a ballot service node.
#[derive(Clone, Debug, Parser)]
#[command(version, about = None, long_about = None)]
pub struct ServerArgs {
    /// A TOML file with any of these settings, under the flags' names (`node-id = 1`).
    #[arg(long, env = "BALLOT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// This node's id (a positive integer, unique in the cluster).
    #[arg(long, env = "BALLOT_NODE_ID", value_parser = parse_node_id)]
    pub node_id: NodeId,

    /// Where this node keeps its log, snapshots and state (created if missing).
    #[arg(long, env = "BALLOT_DATA_DIR", value_name = "DIR")]
    pub data_dir: PathBuf,

    /// UDP address of this node's QUIC endpoint, for peers and clients alike.
    #[arg(long, env = "BALLOT_LISTEN", default_value = "127.0.0.1:7001")]
    pub listen: SocketAddr,

    /// The initial cluster, this node included: `1=127.0.0.1:7001,2=127.0.0.1:7002,...`.
    #[arg(long, env = "BALLOT_PEERS", value_delimiter = ',', value_parser = parse_peer, required = true)]
    pub peers: Vec<Peer>,

    /// HTTP address serving /metrics, /health, /livez and /readyz.
    #[arg(long, env = "BALLOT_METRICS_LISTEN", default_value = "127.0.0.1:9001")]
    pub metrics_listen: SocketAddr,

    /// The cluster's name; peers and clients of another cluster are refused.
    #[arg(long, env = "BALLOT_CLUSTER", default_value = "ballot")]
    pub cluster: String,

    /// Directory with `ca.pem`, `n<ID>.pem` and `n<ID>-key.pem` (as written by `ballot certs`);
    /// `--ca`, `--cert` and `--key` override single files.
    #[arg(long, env = "BALLOT_CERT_DIR", value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,

    /// The cluster CA certificate (PEM).
    #[arg(long, env = "BALLOT_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,

    /// This node's certificate (PEM), signed by the cluster CA.
    #[arg(long, env = "BALLOT_CERT", value_name = "FILE")]
    pub cert: Option<PathBuf>,

    /// This node's private key (PEM).
    #[arg(long, env = "BALLOT_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,

    /// Directory with every member's certificate, `n<ID>.pem` (PBFT replicas check each
    /// other's signatures with the keys in them); default: --cert-dir, or the directory
    /// of --cert.
    #[arg(long, env = "BALLOT_PEER_CERT_DIR", value_name = "DIR")]
    pub peer_cert_dir: Option<PathBuf>,

    /// The consensus protocol: raft, multipaxos or pbft (3f+1 nodes, at least 4,
    /// tolerate f lying ones; needs Ed25519 certificates, as `ballot certs` makes).
    #[arg(long, env = "BALLOT_CONSENSUS", default_value = "raft", value_parser = |s: &str| s.parse::<Consensus>())]
    pub consensus: Consensus,

    /// Minimum election timeout in milliseconds (the maximum is twice this).
    #[arg(long, env = "BALLOT_ELECTION_TIMEOUT_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub election_timeout_ms: u64,

    /// Heartbeat interval in milliseconds (well below the election timeout).
    #[arg(long, env = "BALLOT_HEARTBEAT_MS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub heartbeat_ms: u64,

    /// Take a snapshot and compact the log every this many applied entries (etcd's
    /// `--snapshot-count` default; each snapshot encodes the whole service state).
    #[arg(long, env = "BALLOT_SNAPSHOT_EVERY", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub snapshot_every: u64,

    /// How long a client request may wait to complete, in milliseconds.
    #[arg(long, env = "BALLOT_REQUEST_TIMEOUT_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_ms: u64,

    /// PBFT with a service that has leases (the election service): how far, in
    /// milliseconds, the time the primary proposes may be from this replica's clock
    /// before it refuses the primary's batches. A lying primary can make a lease end up
    /// to twice this early; keep the replicas' clocks synchronised well within it (NTP).
    #[arg(long, env = "BALLOT_MAX_CLOCK_SKEW_MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub max_clock_skew_ms: u64,

    /// Test builds only (feature `byzantine`): this PBFT replica lies, e.g.
    /// `alter-requests,wrong-digests`.
    #[cfg(feature = "byzantine")]
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LIE")]
    pub byzantine: Vec<crate::byzantine::Lie>,

    /// Log filter (tracing's env-filter syntax, e.g. `info` or `ballot_node=debug`);
    /// `RUST_LOG` works too.
    #[arg(long, env = "BALLOT_LOG", default_value = "info")]
    pub log: String,
}

impl ServerArgs {
    /// Parses the process's arguments, environment and config file.
    ///
    /// # Errors
    /// A message for the user: the bad flag, setting or file.
    pub fn load(name: &'static str, about: &'static str) -> Result<Self, ServerError> {
        Self::load_from(name, about, std::env::args_os(), |k| std::env::var_os(k))
    }

    /// Like [`load`](Self::load), from explicit arguments and environment (for tests).
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn load_from(
        name: &'static str,
        about: &'static str,
        args: impl IntoIterator<Item = impl Into<OsString>>,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Self, ServerError> {
        let parsed: Self = load_settings(name, about, args, env)?;
        parsed.validate()?;
        Ok(parsed)
    }

    fn validate(&self) -> Result<(), ServerError> {
        if !self.peers.iter().any(|p| p.id == self.node_id) {
            return Err(ServerError::Args(format!(
                "--peers must include this node ({}); got {}",
                self.node_id,
                self.peers.iter().map(|p| format!("{}={}", p.id.get(), p.addr)).collect::<Vec<_>>().join(",")
            )));
        }
        let mut ids: Vec<NodeId> = self.peers.iter().map(|p| p.id).collect();
        ids.sort();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(ServerError::Args("--peers lists a node id twice".into()));
        }
        if self.consensus.is_byzantine() && self.peers.len() < self.consensus.nodes_for(1) {
            return Err(ServerError::Args(format!(
                "--consensus {} needs at least {} nodes (3f+1 survive f faulty ones); --peers lists {}",
                self.consensus,
                self.consensus.nodes_for(1),
                self.peers.len()
            )));
        }
        if self.heartbeat_ms * 2 > self.election_timeout_ms {
            return Err(ServerError::Args(format!(
                "--heartbeat-ms ({}) must be at most half of --election-timeout-ms ({})",
                self.heartbeat_ms, self.election_timeout_ms
            )));
        }
        if self.cert_dir.is_none() && (self.ca.is_none() || self.cert.is_none() || self.key.is_none()) {
            return Err(ServerError::Args(
                "TLS is required: pass --cert-dir DIR (from `ballot certs`), or --ca, --cert and --key".into(),
            ));
        }
        Ok(())
    }

    /// The CA, certificate and key files to load.
    #[must_use]
    pub fn tls_files(&self) -> (PathBuf, PathBuf, PathBuf) {
        let dir = self.cert_dir.clone().unwrap_or_default();
        let id = self.node_id.get();
        (
            self.ca.clone().unwrap_or_else(|| dir.join("ca.pem")),
            self.cert.clone().unwrap_or_else(|| dir.join(format!("n{id}.pem"))),
            self.key.clone().unwrap_or_else(|| dir.join(format!("n{id}-key.pem"))),
        )
    }

    /// Where member `id`'s certificate is: `n<ID>.pem` in --peer-cert-dir (by default
    /// --cert-dir, or the directory of --cert).
    #[must_use]
    pub fn peer_certificate(&self, id: NodeId) -> PathBuf {
        let dir =
            self.peer_cert_dir.clone().or_else(|| self.cert_dir.clone()).unwrap_or_else(|| {
                self.cert.as_deref().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default()
            });
        dir.join(format!("n{}.pem", id.get()))
    }

    /// Minimum election timeout.
    #[must_use]
    pub fn election_timeout(&self) -> Duration {
        Duration::from_millis(self.election_timeout_ms)
    }

    /// Heartbeat interval.
    #[must_use]
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }
}

/// Parses any binary's settings from flags, `BALLOT_*` environment variables (as named
/// by each argument's `env`) and the TOML file given by `--config` or `BALLOT_CONFIG`,
/// with ballot's precedence: flag, then environment, then file, then default. The file
/// uses the flags' names (`data-dir = "/var/lib/x"`); an unknown name is an error.
///
/// # Errors
/// [`ServerError::Clap`] for bad flags (and `--help`), [`ServerError::Args`] for an
/// unreadable or invalid file.
pub fn load_settings<T: Parser>(
    name: &'static str,
    about: &'static str,
    args: impl IntoIterator<Item = impl Into<OsString>>,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<T, ServerError> {
    let mut args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    // Settings from `env` (the process environment, in production) and from the file
    // become flags placed before the real ones, so that precedence is flag >
    // environment > file > default without relying on clap reading the environment.
    let command = T::command().name(name).bin_name(name).about(about);
    let mut extra = env_args(&command, &args, &env);
    let file = config_path(&args).or_else(|| env("BALLOT_CONFIG").map(PathBuf::from));
    if let Some(file) = file {
        extra.extend(file_args(&command, &file, &args, &env)?);
    }
    let rest = args.split_off(1.min(args.len()));
    args.extend(extra);
    args.extend(rest);
    let matches = command.try_get_matches_from(args)?;
    Ok(T::from_arg_matches(&matches)?)
}

fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    None
}

/// Whether `--{long}` is on the command line.
fn given(args: &[OsString], long: &str) -> bool {
    let flag = format!("--{long}");
    args.iter().any(|a| a.to_string_lossy() == flag || a.to_string_lossy().starts_with(&format!("{flag}=")))
}

/// Turns the `BALLOT_*` environment variables into `--name=value` arguments for the
/// settings not given by flag.
fn env_args(command: &clap::Command, args: &[OsString], env: &impl Fn(&str) -> Option<OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    for arg in command.get_arguments() {
        let (Some(long), Some(name)) = (arg.get_long(), arg.get_env()) else { continue };
        if long == "config" || given(args, long) {
            continue;
        }
        if let Some(value) = env(&name.to_string_lossy()) {
            let mut flag = OsString::from(format!("--{long}="));
            flag.push(value);
            out.push(flag);
        }
    }
    out
}

/// Turns the file's settings into `--name=value` arguments for the settings not given
/// by flag or environment.
fn file_args(
    command: &clap::Command,
    file: &Path,
    args: &[OsString],
    env: &impl Fn(&str) -> Option<OsString>,
) -> Result<Vec<OsString>, ServerError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| ServerError::Args(format!("cannot read config file {}: {e}", file.display())))?;
    let table: BTreeMap<String, toml::Value> = toml::from_str(&text)
        .map_err(|e| ServerError::Args(format!("config file {} is not valid TOML: {e}", file.display())))?;
    let mut out = Vec::new();
    for (key, value) in table {
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && key != "config")
            .ok_or_else(|| ServerError::Args(format!("unknown setting {key:?} in {}", file.display())))?;
        let from_env = arg.get_env().is_some_and(|e| env(&e.to_string_lossy()).is_some());
        if from_env || given(args, &key) {
            continue;
        }
        let flag = format!("--{key}");
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            other => {
                return Err(ServerError::Args(format!(
                    "setting {key:?} in {} must be a string, number, boolean or list, not {}",
                    file.display(),
                    other.type_str()
                )));
            }
        };
        out.push(OsString::from(format!("{flag}={value}")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(args: &[&str], env: &[(&str, &str)]) -> Result<ServerArgs, ServerError> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        ServerArgs::load_from("test", "test", std::iter::once("test").chain(args.iter().copied()), |k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| OsString::from(v))
        })
    }

    const BASE: &[&str] = &["--node-id", "1", "--data-dir", "/tmp/x", "--peers", "1=127.0.0.1:7001", "--cert-dir", "c"];

    #[test]
    fn flags_parse_with_defaults() {
        let a = load(BASE, &[]).unwrap();
        assert_eq!(a.node_id, NodeId(1));
        assert_eq!(a.consensus, Consensus::Raft);
        assert_eq!(a.peers, vec![Peer { id: NodeId(1), addr: "127.0.0.1:7001".into() }]);
        assert_eq!(a.tls_files().1, PathBuf::from("c/n1.pem"));
        assert_eq!(a.peer_certificate(NodeId(3)), PathBuf::from("c/n3.pem"), "peers' certificates: --cert-dir");
    }

    #[test]
    fn peer_certificates_default_to_the_directory_of_this_nodes_certificate() {
        let base = ["--node-id", "1", "--data-dir", "d", "--peers", "1=a:1,2=b:2,3=c:3,4=d:4", "--consensus", "pbft"];
        let mut args = base.to_vec();
        args.extend(["--ca", "/pki/ca.pem", "--cert", "/pki/nodes/n1.pem", "--key", "/secret/n1-key.pem"]);
        let a = load(&args, &[]).unwrap();
        assert_eq!(a.consensus, Consensus::Pbft);
        assert_eq!(a.peer_certificate(NodeId(2)), PathBuf::from("/pki/nodes/n2.pem"));
        let a = load(&args, &[("BALLOT_PEER_CERT_DIR", "/pki/peers")]).unwrap();
        assert_eq!(a.peer_certificate(NodeId(2)), PathBuf::from("/pki/peers/n2.pem"));
    }

    #[test]
    fn environment_and_file_fill_in_with_flag_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ballot.toml");
        std::fs::write(
            &file,
            "node-id = 2\ndata-dir = \"/d\"\npeers = [\"1=a:1\", \"2=b:2\"]\ncert-dir = \"c\"\nconsensus = \"multipaxos\"\nheartbeat-ms = 50\n",
        )
        .unwrap();
        let a = load(&["--config", file.to_str().unwrap(), "--heartbeat-ms", "70"], &[("BALLOT_DATA_DIR", "/env")])
            .unwrap();
        assert_eq!(a.node_id, NodeId(2), "from the file");
        assert_eq!(a.consensus, Consensus::MultiPaxos, "from the file");
        assert_eq!(a.heartbeat_ms, 70, "the flag beats the file");
        assert_eq!(a.data_dir, PathBuf::from("/env"), "the environment beats the file");
        assert_eq!(a.peers.len(), 2);
    }

    #[test]
    fn bad_input_gets_clear_errors() {
        let err = |args: &[&str]| load(args, &[]).unwrap_err().to_string();
        assert!(err(&["--node-id", "0", "--data-dir", "d", "--peers", "1=a:1", "--cert-dir", "c"]).contains("node id"));
        assert!(
            err(&["--node-id", "2", "--data-dir", "d", "--peers", "1=a:1", "--cert-dir", "c"]).contains("must include")
        );
        assert!(
            err(&["--node-id", "1", "--data-dir", "d", "--peers", "1-a:1", "--cert-dir", "c"]).contains("ID=HOST:PORT")
        );
        assert!(err(&["--node-id", "1", "--data-dir", "d", "--peers", "1=a:1"]).contains("TLS is required"));
        let mut args = BASE.to_vec();
        args.extend(["--consensus", "pbft"]);
        assert_eq!(err(&args), "--consensus pbft needs at least 4 nodes (3f+1 survive f faulty ones); --peers lists 1");
        let mut args = BASE.to_vec();
        args.extend(["--consensus", "zab"]);
        assert!(err(&args).contains("raft, multipaxos, pbft"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "nod-id = 1\n").unwrap();
        let mut args = BASE.to_vec();
        args.extend(["--config", file.to_str().unwrap()]);
        assert!(err(&args).contains("unknown setting \"nod-id\""));
    }
}
