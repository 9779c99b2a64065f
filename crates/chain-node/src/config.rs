//! `ballot-chaind`'s settings: flags, `BALLOT_*` environment variables and a TOML file
//! with the same names (loaded as ballot-server loads the other binaries' settings).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use ballot_ledger::{MempoolConfig, PublicKey};
use clap::{ArgAction, Parser};

use crate::{ChainSpec, Error, NodeConfig};

fn parse_key(s: &str) -> Result<PublicKey, String> {
    s.parse::<PublicKey>().map_err(|e| format!("{e} (a public key as `ballot chain keygen` prints it)"))
}

fn parse_host_port(s: &str) -> Result<String, String> {
    let s = s.trim();
    match s.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>())) {
        Some((h, Ok(p))) if !h.is_empty() && p != 0 => Ok(s.to_owned()),
        _ => Err(format!("{s:?} is not HOST:PORT (for example 127.0.0.1:8301)")),
    }
}

/// Settings of a chain node.
#[derive(Clone, Debug, Parser)]
#[command(version, about = None, long_about = None)]
pub struct ChaindArgs {
    /// A TOML file with any of these settings, under the flags' names (`mine = true`).
    #[arg(long, env = "BALLOT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Where the node keeps its store (`db/`) and key (`node.key`); created if missing.
    #[arg(long, env = "BALLOT_DATA_DIR", value_name = "DIR")]
    pub data_dir: PathBuf,

    /// UDP address of the peer endpoint (QUIC, ALPN `ballot-chain/1`).
    #[arg(long, env = "BALLOT_LISTEN", default_value = "127.0.0.1:8301")]
    pub listen: SocketAddr,

    /// HTTP address of the JSON API, /metrics, /health, /livez and /readyz.
    #[arg(long, env = "BALLOT_METRICS_LISTEN", default_value = "127.0.0.1:8401")]
    pub metrics_listen: SocketAddr,

    /// Peers to join through, comma separated (`HOST:PORT`); one is enough, the node
    /// learns the others by address gossip.
    #[arg(long, env = "BALLOT_SEEDS", value_delimiter = ',', value_parser = parse_host_port)]
    pub seeds: Vec<String>,

    /// Mine blocks.
    #[arg(long, env = "BALLOT_MINE", num_args = 0..=1, default_value_t = false, default_missing_value = "true", action = ArgAction::Set)]
    pub mine: bool,

    /// Mining threads (OS threads, outside the async runtime).
    #[arg(long, env = "BALLOT_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub threads: u64,

    /// The public key mining rewards go to (default: this node's key, in `node.key`).
    #[arg(long, env = "BALLOT_MINER_KEY", value_parser = parse_key)]
    pub miner_key: Option<PublicKey>,

    /// The node's key file (default `DATA_DIR/node.key`, created if missing).
    #[arg(long, env = "BALLOT_NODE_KEY", value_name = "FILE")]
    pub node_key: Option<PathBuf>,

    /// Outbound connections to keep.
    #[arg(long, env = "BALLOT_MAX_OUTBOUND", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=128))]
    pub max_outbound: u64,

    /// Inbound connections to accept.
    #[arg(long, env = "BALLOT_MAX_INBOUND", default_value_t = 64, value_parser = clap::value_parser!(u64).range(0..=4096))]
    pub max_inbound: u64,

    /// Seconds a misbehaving peer stays banned.
    #[arg(long, env = "BALLOT_BAN_SECONDS", default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..))]
    pub ban_seconds: u64,

    /// Peers to refuse for good: keys or listening addresses, comma separated.
    #[arg(long, env = "BALLOT_REFUSE_PEERS", value_delimiter = ',')]
    pub refuse_peers: Vec<String>,

    /// Chain id (signed into transfers). Every node of a network must agree on the
    /// chain settings.
    #[arg(long, env = "BALLOT_CHAIN_ID", default_value_t = 1)]
    pub chain_id: u32,

    /// Intended seconds between blocks.
    #[arg(long, env = "BALLOT_BLOCK_INTERVAL", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub block_interval: u64,

    /// Blocks between difficulty retargets.
    #[arg(long, env = "BALLOT_RETARGET_INTERVAL", default_value_t = 10, value_parser = clap::value_parser!(u64).range(2..=100_000))]
    pub retarget_interval: u64,

    /// Leading zero bits of the proof-of-work limit (about 2^N hashes for the easiest block).
    #[arg(long, env = "BALLOT_POW_LIMIT_BITS", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub pow_limit_bits: u32,

    /// Log filter (tracing's env-filter syntax); `RUST_LOG` works too.
    #[arg(long, env = "BALLOT_LOG", default_value = "info")]
    pub log: String,
}

impl ChaindArgs {
    /// Parses arguments, environment and config file.
    ///
    /// # Errors
    /// [`ballot_server::ServerError`] for bad input (clap prints `--help` itself).
    pub fn load_from(
        args: impl IntoIterator<Item = impl Into<OsString>>,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Self, ballot_server::ServerError> {
        ballot_server::load_settings("ballot-chaind", "ballot's Proof-of-Work blockchain node", args, env)
    }

    /// The chain these settings select.
    #[must_use]
    pub fn spec(&self) -> ChainSpec {
        ChainSpec {
            chain_id: self.chain_id,
            block_interval_secs: self.block_interval,
            retarget_interval: self.retarget_interval,
            pow_limit_bits: self.pow_limit_bits,
        }
    }

    /// The node configuration.
    ///
    /// # Errors
    /// [`Error::Args`] for inconsistent settings.
    pub fn node_config(&self) -> Result<NodeConfig, Error> {
        if self.listen.port() == 0 && !self.seeds.is_empty() {
            tracing::warn!("listening on a random port: peers can dial out, but others cannot find this node");
        }
        let mut c = NodeConfig::new(&self.data_dir);
        c.listen = self.listen;
        c.http_listen = self.metrics_listen;
        c.seeds = self.seeds.clone();
        c.spec = self.spec();
        c.mine = self.mine;
        c.threads = usize::try_from(self.threads).map_err(|e| Error::Args(e.to_string()))?;
        c.miner_key = self.miner_key;
        c.node_key = self.node_key.clone();
        c.max_outbound = usize::try_from(self.max_outbound).map_err(|e| Error::Args(e.to_string()))?;
        c.max_inbound = usize::try_from(self.max_inbound).map_err(|e| Error::Args(e.to_string()))?;
        c.ban_secs = self.ban_seconds;
        c.refuse = self.refuse_peers.clone();
        c.mempool = MempoolConfig::default();
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(args: &[&str], env: &[(&str, &str)]) -> Result<ChaindArgs, ballot_server::ServerError> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        ChaindArgs::load_from(std::iter::once("ballot-chaind").chain(args.iter().copied()), |k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| OsString::from(v))
        })
    }

    #[test]
    fn flags_environment_and_file() {
        let a = load(&["--data-dir", "/d", "--mine", "--threads", "2"], &[]).unwrap();
        assert!(a.mine);
        assert_eq!(a.threads, 2);
        let a = load(&["--data-dir", "/d"], &[("BALLOT_MINE", "true"), ("BALLOT_SEEDS", "127.0.0.1:1,127.0.0.1:2")])
            .unwrap();
        assert!(a.mine);
        assert_eq!(a.seeds.len(), 2);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("chaind.toml");
        std::fs::write(&file, "data-dir = \"/f\"\nmine = true\nblock-interval = 2\nseeds = [\"127.0.0.1:9\"]\n")
            .unwrap();
        let a = load(&["--config", file.to_str().unwrap(), "--block-interval", "3"], &[]).unwrap();
        assert_eq!((a.data_dir, a.mine, a.block_interval, a.seeds.len()), (PathBuf::from("/f"), true, 3, 1));
    }

    #[test]
    fn wrong_flags_get_clear_errors() {
        let err = |args: &[&str]| load(args, &[]).unwrap_err().to_string();
        assert!(err(&["--data-dir", "/d", "--seeds", "nowhere"]).contains("HOST:PORT"));
        assert!(err(&["--data-dir", "/d", "--miner-key", "abc"]).contains("64 hex digits"));
        assert!(err(&["--data-dir", "/d", "--threads", "0"]).contains("threads"));
        assert!(err(&[]).contains("--data-dir"));
    }
}
