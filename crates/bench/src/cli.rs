//! The command-line shape shared by `ballot bench` and the `ballot-bench` binary:
//! etcd's `benchmark` flags.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, Subcommand};

use crate::{BenchResult, Error, Op, Progress, ReadConsistency, Spec, Target, run};

/// Flags common to every workload, then the workload.
#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// Concurrent clients (each keeps one request outstanding).
    #[arg(long, global = true, default_value_t = 1)]
    pub clients: usize,
    /// Connections the clients share.
    #[arg(long, global = true, default_value_t = 1)]
    pub conns: usize,
    /// Requests in all.
    #[arg(long, global = true, default_value_t = 10_000)]
    pub total: u64,
    /// Stop issuing requests after this many seconds even if --total was not reached.
    #[arg(long, global = true, default_value_t = 600.0)]
    pub max_secs: f64,
    /// Also write the result as JSON to this file.
    #[arg(long, global = true)]
    pub json_out: Option<PathBuf>,
    /// No progress line while running.
    #[arg(long, global = true)]
    pub quiet: bool,
    /// The workload.
    #[command(subcommand)]
    pub workload: Workload,
}

/// A workload.
#[derive(Subcommand, Clone, Debug)]
pub enum Workload {
    /// Writes: `--total` puts of `--val-size`-byte values.
    Put(PutArgs),
    /// Reads of one key, `--total` times (the key is written once first).
    Range(RangeArgs),
}

/// `put`'s flags.
#[derive(Args, Clone, Debug)]
pub struct PutArgs {
    /// Key size in bytes.
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,
    /// Write keys in order instead of at random.
    #[arg(long)]
    pub sequential_keys: bool,
    /// How many distinct keys to write.
    #[arg(long, default_value_t = 1)]
    pub key_space_size: u64,
}

/// `range`'s flags.
#[derive(Args, Clone, Debug)]
pub struct RangeArgs {
    /// The key to read (default: a key of --key-size bytes, written with a
    /// --val-size-byte value before the run).
    pub key: Option<String>,
    /// `l` (linearizable) or `s` (serializable).
    #[arg(long, default_value = "l")]
    pub consistency: String,
    /// Size of the generated key.
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Size of the value written before the run (0: write nothing).
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,
}

impl BenchArgs {
    /// The workload these flags describe, and for `range` the key to read.
    ///
    /// # Errors
    /// [`Error::InvalidSpec`] for inconsistent flags.
    pub fn spec(&self) -> Result<(Spec, Option<Bytes>), Error> {
        if !(self.max_secs.is_finite() && self.max_secs > 0.0) {
            return Err(Error::InvalidSpec("--max-secs must be a positive number of seconds".into()));
        }
        let common = Spec {
            clients: self.clients,
            conns: self.conns,
            total: self.total,
            max_duration: Duration::from_secs_f64(self.max_secs.min(1e9)),
            ..Spec::default()
        };
        let (spec, key) = match &self.workload {
            Workload::Put(p) => (
                Spec {
                    op: Op::Put,
                    key_size: p.key_size,
                    val_size: p.val_size,
                    sequential_keys: p.sequential_keys,
                    key_space_size: p.key_space_size,
                    ..common
                },
                None,
            ),
            Workload::Range(r) => {
                let consistency = ReadConsistency::parse(&r.consistency)?;
                let key = r.key.as_ref().map(|k| Bytes::from(k.clone().into_bytes()));
                if key.as_ref().is_some_and(Bytes::is_empty) {
                    return Err(Error::InvalidSpec("the key to read must not be empty".into()));
                }
                let key_size = key.as_ref().map_or(r.key_size, Bytes::len);
                (Spec { op: Op::Range, key_size, val_size: r.val_size, consistency, ..common }, key)
            }
        };
        spec.validate()?;
        Ok((spec, key))
    }
}

/// Runs the workload of `args` against `target`: writes the key first for `range`,
/// shows progress on stderr unless `--quiet`, prints the summary (text, or JSON when
/// `json` is set) on stdout and writes `--json-out`. `label` overrides the target's name
/// in the result.
///
/// # Errors
/// Bad flags, a failed preparation write, a run in which every request failed, or an
/// unwritable `--json-out`.
pub async fn execute<T: Target>(
    target: Arc<T>,
    args: &BenchArgs,
    label: Option<&str>,
    json: bool,
) -> Result<BenchResult, Error> {
    let (spec, key) = args.spec()?;
    let key = key.unwrap_or_else(|| spec.keys().key(0));
    if spec.op == Op::Range && spec.val_size > 0 {
        target
            .put(0, key.clone(), spec.value())
            .await
            .map_err(|e| Error::Request(format!("writing the key to read: {e}")))?;
    }
    if !args.quiet {
        eprintln!(
            "{} {} against {}: {} requests, {} clients over {} connections",
            label.map_or_else(|| target.name(), str::to_owned),
            spec.op,
            target.name(),
            spec.total,
            spec.clients,
            spec.conns
        );
    }
    let progress = if args.quiet { Progress::Off } else { Progress::Stderr };
    let mut result = run(target, &spec, Some(key), progress).await?;
    if let Some(label) = label {
        label.clone_into(&mut result.target);
    }
    if json {
        println!("{}", result.to_json());
    } else {
        print!("{}", result.to_text());
    }
    if let Some(path) = &args.json_out {
        std::fs::write(path, result.to_json() + "\n")
            .map_err(|e| Error::InvalidSpec(format!("cannot write --json-out {}: {e}", path.display())))?;
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> Result<(Spec, Option<Bytes>), String> {
        let cli =
            Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).map_err(|e| e.to_string())?;
        cli.bench.spec().map_err(|e| e.to_string())
    }

    #[test]
    fn etcd_style_flags_before_or_after_the_workload() {
        let (spec, key) = parse(&[
            "--clients=100",
            "--conns",
            "10",
            "put",
            "--total",
            "5000",
            "--key-size=8",
            "--val-size=256",
            "--sequential-keys",
            "--key-space-size=1000",
        ])
        .unwrap();
        assert_eq!((spec.op, spec.clients, spec.conns, spec.total), (Op::Put, 100, 10, 5000));
        assert_eq!((spec.key_size, spec.val_size, spec.sequential_keys, spec.key_space_size), (8, 256, true, 1000));
        assert!(key.is_none());
        let (spec, key) = parse(&["range", "foo", "--consistency", "s"]).unwrap();
        assert_eq!((spec.op, spec.consistency, spec.key_size), (Op::Range, ReadConsistency::Serializable, 3));
        assert_eq!(key.unwrap(), "foo");
    }

    #[test]
    fn bad_flags_get_clear_errors() {
        assert!(parse(&["--clients", "0", "put"]).unwrap_err().contains("--clients must be at least 1"));
        assert!(parse(&["--conns", "5", "put"]).unwrap_err().contains("--conns (5) is more than --clients (1)"));
        assert!(parse(&["range", "--consistency", "x"]).unwrap_err().contains("use l (linearizable) or s"));
        assert!(parse(&["--max-secs", "0", "put"]).unwrap_err().contains("--max-secs"));
        assert!(parse(&["--clients", "many", "put"]).is_err());
        assert!(parse(&[]).is_err(), "a workload is required");
    }
}
