//! Building the binaries and driving the `ballot` CLI: what `cluster` and `demo` stand on.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{cargo, run};

/// Builds every binary of the workspace (dev profile, the one the tests use, so the
/// RocksDB build is shared) and returns the directory holding them.
pub fn build_bins() -> Result<PathBuf> {
    crate::prereqs::ensure(&[crate::prereqs::Need::Build])?;
    let mut c = cargo();
    // `--tests` on purpose: building exactly the units `cargo xtask test` builds makes cargo reuse
    // the same RocksDB build-script run. Without it, dev-dependency feature unification differs
    // and cargo compiles RocksDB's C++ a second time (15 minutes on two cores).
    c.args(["build", "--workspace", "--bins", "--tests", "--locked"]);
    run(c)?;
    Ok(target_dir()?.join("debug"))
}

/// The directory of the binaries already built, building them only if the CLI is not
/// there yet.
pub fn built_bins() -> Result<PathBuf> {
    let dir = target_dir()?.join("debug");
    if dir.join("ballot").is_file() { Ok(dir) } else { build_bins() }
}

/// The build directory, as cargo resolves it (`CARGO_TARGET_DIR`, `.cargo/config.toml`).
pub fn target_dir() -> Result<PathBuf> {
    let out = cargo().args(["metadata", "--format-version", "1", "--no-deps"]).output()?;
    if !out.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let meta: Value = serde_json::from_slice(&out.stdout)?;
    Ok(PathBuf::from(meta["target_directory"].as_str().context("no target_directory")?))
}

/// Runs the `ballot` CLI.
#[derive(Clone)]
pub struct Cli {
    pub binary: PathBuf,
    pub endpoints: String,
    pub cert_dir: PathBuf,
    /// The cluster's consensus (`BALLOT_CONSENSUS`); `None`: the CLI's default.
    pub consensus: Option<&'static str>,
}

impl Cli {
    pub fn new(bin_dir: &Path) -> Self {
        Cli { binary: bin_dir.join("ballot"), endpoints: String::new(), cert_dir: PathBuf::new(), consensus: None }
    }

    /// A command for the CLI with this cluster's endpoints and certificates.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = Command::new(&self.binary);
        c.args(args);
        // Unset until a cluster is up: the CLI's own defaults (or the caller's
        // environment) apply then.
        if !self.endpoints.is_empty() {
            c.env("BALLOT_ENDPOINTS", &self.endpoints);
        }
        if !self.cert_dir.as_os_str().is_empty() {
            c.env("BALLOT_CERT_DIR", &self.cert_dir);
        }
        if let Some(consensus) = self.consensus {
            c.env("BALLOT_CONSENSUS", consensus);
        }
        c
    }

    /// Runs it, echoing the command line and its output; fails if it fails.
    pub fn show(&self, args: &[&str]) -> Result<String> {
        println!("$ ballot {}", args.join(" "));
        let out = self.output(args)?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            bail!("`ballot {}` failed", args.join(" "));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs it quietly.
    pub fn output(&self, args: &[&str]) -> Result<Output> {
        self.command(args).stdin(Stdio::null()).output().with_context(|| format!("running {}", self.binary.display()))
    }

    /// `ballot status` as JSON rows, one per endpoint. Read whatever the exit status:
    /// `status` exits 1 when any endpoint is unhealthy (a node just killed) and still
    /// prints a row for each.
    pub fn status_rows(&self) -> Vec<Value> {
        let out = self.output(&["--output", "json", "status", "--timeout", "2s"]);
        match out.ok().and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok()) {
            Some(Value::Array(rows)) => rows,
            _ => Vec::new(),
        }
    }

    /// Runs it with `--output json` and parses stdout.
    pub fn json(&self, args: &[&str]) -> Result<Value> {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        let out = self.output(&all)?;
        if !out.status.success() {
            bail!("`ballot {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
        }
        serde_json::from_slice(&out.stdout)
            .with_context(|| format!("parsing the output of `ballot {}`", args.join(" ")))
    }
}

/// What a long xtask command started: clusters (by data directory, stopped with `ballot
/// cluster down`) and child processes (killed). Torn down when dropped, whatever happened.
pub struct Teardown {
    cli: PathBuf,
    pub cluster_dirs: Vec<PathBuf>,
    pub children: Vec<std::process::Child>,
}

impl Teardown {
    pub fn new(cli: &Path) -> Self {
        Teardown { cli: cli.to_owned(), cluster_dirs: Vec::new(), children: Vec::new() }
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for dir in &self.cluster_dirs {
            let _ = Command::new(&self.cli)
                .args(["cluster", "down", "--dir"])
                .arg(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Whether `port` on 127.0.0.1 looks free for both UDP (QUIC) and TCP (metrics).
pub fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

/// The first base port `b` among 21000, 22000, … 59000 whose `ports(b)` all look free.
pub fn free_base<I: Iterator<Item = u16>>(ports: impl Fn(u16) -> I) -> Result<u16> {
    for base in (21_000..60_000).step_by(1000) {
        if ports(base).all(port_free) {
            return Ok(base);
        }
    }
    bail!("no free range of loopback ports found")
}

/// The Prometheus exposition of the node whose metrics listen on `127.0.0.1:port`.
pub fn metrics_text(port: u16) -> Option<String> {
    use std::io::{Read as _, Write as _};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(std::time::Duration::from_secs(5))).ok()?;
    conn.write_all(format!("GET /metrics HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes()).ok()?;
    let mut body = String::new();
    conn.read_to_string(&mut body).ok()?;
    Some(body)
}

/// The samples of metric `name` in a Prometheus text exposition: (labels, value).
pub fn samples<'a>(exposition: &'a str, name: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    exposition.lines().filter_map(move |l| {
        let rest = l.strip_prefix(name)?;
        let (labels, value) = rest.rsplit_once(' ')?;
        (labels.is_empty() || labels.starts_with('{')).then_some(())?;
        Some((labels, value.parse().ok()?))
    })
}

/// The sum of the samples of metric `name` in a Prometheus text exposition.
pub fn sum_samples(exposition: &str, name: &str) -> f64 {
    samples(exposition, name).map(|(_, v)| v).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_sample_of_one_metric_and_no_other() {
        let body = "# HELP ballot_network_peer_sent_bytes_total Bytes sent to a peer.\n\
                    ballot_network_peer_sent_bytes_total{To=\"2\"} 1500\n\
                    ballot_network_peer_sent_bytes_total{To=\"3\"} 2500\n\
                    ballot_network_peer_sent_bytes_total_extra 7\n\
                    ballot_network_peer_received_bytes_total{From=\"2\"} 99\n";
        assert_eq!(sum_samples(body, "ballot_network_peer_sent_bytes_total"), 4000.0);
        assert_eq!(sum_samples(body, "ballot_absent_total"), 0.0);
    }
}
