//! `ballot chain …`: keys, transfers and queries against a `ballot-chaind` node over its
//! HTTP JSON API (see ballot-chain-node's `http` module for why HTTP).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use ballot_chain_node::{ChainClient, ChainStore, ClientError, KeyFile};
use ballot_ledger::{PublicKey, Transfer};
use clap::{Args, Subcommand};

use crate::output::Output;
use crate::{CliError, Failure, invalid, not_found, reported};

#[derive(Args, Clone)]
pub struct ChainArgs {
    /// HTTP address of a `ballot-chaind` node (its --metrics-listen).
    #[arg(long, global = true, env = "BALLOT_CHAIN_NODE", default_value = "127.0.0.1:8401")]
    node: String,
    #[command(subcommand)]
    command: ChainCmd,
}

#[derive(Subcommand, Clone)]
enum ChainCmd {
    /// Makes a new key (an account address, or a node key); prints its public key.
    Keygen {
        /// Write the secret key to this file (never overwritten; mode 0600).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// An account's balance: a public key, or a key file.
    Balance { account: String },
    /// Signs a transfer with a key file and submits it.
    Send {
        /// The sender's key file.
        #[arg(long)]
        key: PathBuf,
        /// The recipient: a public key, or a key file.
        #[arg(long)]
        to: String,
        /// Units to send.
        #[arg(long)]
        amount: u64,
        /// Fee in units (at least the node's minimum fee rate).
        #[arg(long, default_value_t = 1_000)]
        fee: u64,
        /// A note stored with the transfer.
        #[arg(long, default_value = "")]
        memo: String,
        /// Wait until the transfer is in a block with this many confirmations (0: do
        /// not wait).
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// A transaction by id: in the mempool or confirmed.
    Tx { id: String },
    /// A block by hash or height (default: the tip).
    Block { id: Option<String> },
    /// The node's tip, peers, mempool and hashrate.
    Tip,
    /// The node's peers.
    Peers,
    /// Transfers waiting in the node's mempool.
    Mempool,
    /// Re-validates the whole chain: through the node, or on a stopped node's data
    /// directory with --data-dir.
    Verify {
        /// A stopped node's --data-dir.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Bans a peer (key or listening address) and disconnects it.
    Ban {
        target: String,
        /// For how long.
        #[arg(long, default_value_t = 86_400)]
        seconds: u64,
    },
    /// Lifts a ban.
    Unban { target: String },
    /// The bans in force.
    Bans,
}

impl ChainArgs {
    /// Whether the command ends by itself within --timeout.
    pub fn one_shot(&self) -> bool {
        !matches!(self.command, ChainCmd::Send { wait: 1.., .. } | ChainCmd::Verify { .. })
    }
}

fn api_error(e: ClientError) -> anyhow::Error {
    let failure = match &e {
        ClientError::Unavailable { .. } => Failure::Unavailable,
        ClientError::Api { kind, .. } if kind == "invalid" => Failure::Invalid,
        ClientError::Api { kind, .. } if kind == "not_found" => Failure::NotFound,
        ClientError::Api { .. } => Failure::Unavailable,
        ClientError::BadAnswer(_) => Failure::General,
    };
    CliError { failure, message: e.to_string(), reported: false }.into()
}

fn call<T>(r: Result<T, ClientError>) -> Result<T> {
    r.map_err(api_error)
}

/// A public key given as hex, or read from a key file.
fn account(text: &str) -> Result<PublicKey> {
    if let Ok(key) = text.parse::<PublicKey>() {
        return Ok(key);
    }
    if Path::new(text).exists() {
        return Ok(KeyFile::read(Path::new(text)).map_err(|e| invalid(e.to_string()))?.keypair.public());
    }
    Err(invalid(format!("{text:?} is neither a public key (64 hex digits) nor a key file")))
}

pub fn run(args: ChainArgs, timeout: Duration, out: &Output) -> Result<()> {
    let client = ChainClient::new(args.node.clone(), timeout.min(Duration::from_secs(30)));
    match args.command {
        ChainCmd::Keygen { out: path } => {
            let key = KeyFile::generate().map_err(|e| anyhow::anyhow!(e))?;
            if let Some(path) = &path {
                key.write_new(path).map_err(|e| invalid(e.to_string()))?;
            }
            let public = key.keypair.public().to_string();
            let file =
                path.as_ref().map_or_else(|| "(not saved: pass --out FILE)".to_owned(), |p| p.display().to_string());
            out.table(
                &["PUBLIC KEY", "FILE"],
                &[vec![public.clone(), file]],
                &serde_json::json!({ "key": public, "file": path }),
            );
        }
        ChainCmd::Balance { account: a } => {
            let key = account(&a)?;
            let info = call(client.account(&key.to_string()))?;
            out.table(
                &["ACCOUNT", "BALANCE", "SPENDABLE", "NONCE", "HEIGHT"],
                &[vec![
                    info.key.clone(),
                    info.balance.to_string(),
                    info.spendable.to_string(),
                    info.nonce.to_string(),
                    info.height.to_string(),
                ]],
                &info,
            );
        }
        ChainCmd::Send { key, to, amount, fee, memo, wait } => {
            let sender = KeyFile::read(&key).map_err(|e| invalid(e.to_string()))?;
            let to = account(&to)?;
            let from = sender.keypair.public();
            let info = call(client.account(&from.to_string()))?;
            let chain_id = call(client.tip())?.chain_id;
            let transfer =
                Transfer { chain_id, from, to, amount, fee, nonce: info.next_nonce, memo: memo.into_bytes() }
                    .sign(&sender.keypair)
                    .map_err(|e| invalid(e.to_string()))?;
            let submitted = call(client.submit(&transfer))?;
            if wait == 0 {
                out.table(&["TX", "STATUS"], &[vec![submitted.id.clone(), "mempool".into()]], &submitted);
                return Ok(());
            }
            out.note(&format!("submitted {}; waiting for {wait} confirmation(s)…", submitted.id));
            let deadline = Instant::now() + timeout.max(Duration::from_secs(1));
            loop {
                if let Ok(tx) = client.tx(&submitted.id)
                    && tx.confirmations >= wait
                {
                    out.table(
                        &["TX", "STATUS", "BLOCK", "HEIGHT", "CONFIRMATIONS"],
                        &[vec![
                            tx.tx.id.clone(),
                            tx.status.clone(),
                            tx.block.clone().unwrap_or_default(),
                            tx.height.map(|h| h.to_string()).unwrap_or_default(),
                            tx.confirmations.to_string(),
                        ]],
                        &tx,
                    );
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    return Err(CliError {
                        failure: Failure::OutcomeUnknown,
                        message: format!(
                            "{} was submitted but not confirmed {wait} time(s) within --timeout {timeout:?}; check it with `ballot chain tx {}`",
                            submitted.id, submitted.id
                        ),
                        reported: false,
                    }
                    .into());
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
        ChainCmd::Tx { id } => {
            let tx = call(client.tx(&id))?;
            out.table(
                &["TX", "KIND", "FROM", "TO", "AMOUNT", "FEE", "STATUS", "HEIGHT", "CONFIRMATIONS"],
                &[vec![
                    tx.tx.id.clone(),
                    tx.tx.kind.clone(),
                    tx.tx.from.clone().unwrap_or_default(),
                    tx.tx.to.clone(),
                    tx.tx.amount.to_string(),
                    tx.tx.fee.to_string(),
                    tx.status.clone(),
                    tx.height.map(|h| h.to_string()).unwrap_or_default(),
                    tx.confirmations.to_string(),
                ]],
                &tx,
            );
        }
        ChainCmd::Block { id } => {
            let id = match id {
                Some(id) => id,
                None => call(client.tip())?.height.to_string(),
            };
            let b = call(client.block(&id))?;
            if !out.is_json() {
                println!("block {} at height {} ({}, {} confirmations)", b.hash, b.height, b.status, b.confirmations);
                println!("prev {}  time {}  bits {}  nonce {}  size {} bytes", b.prev, b.time, b.bits, b.nonce, b.size);
            }
            let rows: Vec<Vec<String>> = b
                .txs
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        t.kind.clone(),
                        t.from.clone().unwrap_or_default(),
                        t.to.clone(),
                        t.amount.to_string(),
                        t.fee.to_string(),
                    ]
                })
                .collect();
            out.table(&["TX", "KIND", "FROM", "TO", "AMOUNT", "FEE"], &rows, &b);
        }
        ChainCmd::Tip => {
            let t = call(client.tip())?;
            out.table(
                &["HEIGHT", "HASH", "PEERS", "MEMPOOL", "SYNCING", "HASHRATE", "NODE"],
                &[vec![
                    t.height.to_string(),
                    t.hash.clone(),
                    t.peers.to_string(),
                    t.mempool.to_string(),
                    t.syncing_blocks.to_string(),
                    format!("{:.0}", t.hashrate),
                    t.node.clone(),
                ]],
                &t,
            );
        }
        ChainCmd::Peers => {
            let peers = call(client.peers())?;
            let rows: Vec<Vec<String>> = peers
                .iter()
                .map(|p| {
                    vec![
                        p.listen.clone().unwrap_or_else(|| p.addr.clone()),
                        p.direction.clone(),
                        p.height.to_string(),
                        p.misbehaviour.to_string(),
                        p.key.clone(),
                    ]
                })
                .collect();
            out.table(&["ADDRESS", "DIRECTION", "HEIGHT", "MISBEHAVIOUR", "KEY"], &rows, &peers);
        }
        ChainCmd::Mempool => {
            let txs = call(client.mempool())?;
            let rows: Vec<Vec<String>> = txs
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        t.from.clone().unwrap_or_default(),
                        t.to.clone(),
                        t.amount.to_string(),
                        t.fee.to_string(),
                        t.nonce.unwrap_or(0).to_string(),
                    ]
                })
                .collect();
            out.table(&["TX", "FROM", "TO", "AMOUNT", "FEE", "NONCE"], &rows, &txs);
        }
        ChainCmd::Verify { data_dir } => {
            let report = match data_dir {
                Some(dir) => {
                    let store = ChainStore::open_existing(&dir.join("db"))
                        .with_context(|| format!("opening the store in {} (is the node stopped?)", dir.display()))
                        .map_err(|e| invalid(format!("{e:#}")))?;
                    store.verify_stored().map_err(|e| anyhow::anyhow!(e))?
                }
                None => call(client.verify())?,
            };
            out.table(
                &["BLOCKS", "TRANSACTIONS", "HEIGHT", "TIP", "SECONDS", "RESULT"],
                &[vec![
                    report.blocks.to_string(),
                    report.transactions.to_string(),
                    report.height.to_string(),
                    report.tip.clone(),
                    format!("{:.2}", report.seconds),
                    if report.problems.is_empty() {
                        "ok".into()
                    } else {
                        format!("{} problems", report.problems.len())
                    },
                ]],
                &report,
            );
            if !report.problems.is_empty() {
                return Err(reported(Failure::General, report.problems.join("; ")));
            }
        }
        ChainCmd::Ban { target, seconds } => {
            let bans = call(client.ban(&target, seconds))?;
            print_bans(out, &bans);
        }
        ChainCmd::Unban { target } => {
            let bans = client.unban(&target).map_err(|e| match e {
                ClientError::Api { kind, message, .. } if kind == "not_found" => not_found(message),
                other => api_error(other),
            })?;
            print_bans(out, &bans);
        }
        ChainCmd::Bans => {
            let bans = call(client.bans())?;
            print_bans(out, &bans);
        }
    }
    Ok(())
}

fn print_bans(out: &Output, bans: &[ballot_chain_node::api::BanInfo]) {
    let rows: Vec<Vec<String>> =
        bans.iter().map(|b| vec![b.target.clone(), b.remaining_secs.to_string(), b.reason.clone()]).collect();
    out.table(&["TARGET", "SECONDS LEFT", "REASON"], &rows, &bans);
}
