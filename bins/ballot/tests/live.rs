//! The CLI against live local clusters, as the README uses it: `ballot cluster up`,
//! then the commands a user types. The daemons are the ones built next to `ballot`
//! (`cargo xtask test` builds every binary of the workspace).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A detached cluster started with `ballot cluster up`, stopped when dropped.
struct Up {
    dir: PathBuf,
    endpoints: String,
    certs: PathBuf,
    /// Extra environment of every command (`BALLOT_CONSENSUS`).
    env: Vec<(String, String)>,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = Command::new(ballot_bin()).args(["cluster", "down", "--dir"]).arg(&self.dir).output();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn ballot_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ballot")
}

fn daemon(name: &str) -> PathBuf {
    let path = Path::new(ballot_bin()).with_file_name(name);
    assert!(path.is_file(), "{} is not built: run `cargo build --bins` (cargo xtask test does)", path.display());
    path
}

fn dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("live-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `ballot cluster up` of `service` with 3 nodes at `base`.
fn cluster_up(service: &str, name: &str, base: u16) -> Result<Up, Output> {
    cluster_up_with(service, name, base, &["--nodes", "3"]).map(|(up, _)| up)
}

/// `ballot cluster up` of `service` at `base` with `args`; also returns its output.
fn cluster_up_with(service: &str, name: &str, base: u16, args: &[&str]) -> Result<(Up, String), Output> {
    let d = dir(name);
    let out = Command::new(ballot_bin())
        .args(["cluster", "up", "--service", service, "--base-port", &base.to_string()])
        .args(args)
        .args(["--election-timeout-ms", "300", "--heartbeat-ms", "50", "--dir"])
        .arg(&d)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(out);
    }
    let nodes = std::fs::read_to_string(d.join("cluster.txt"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("nodes=").map(|n| n.parse::<u16>().unwrap()))
        .unwrap();
    let endpoints = (1..=nodes).map(|i| format!("127.0.0.1:{}", base + i)).collect::<Vec<_>>().join(",");
    Ok((Up { certs: d.join("certs"), dir: d, endpoints, env: Vec::new() }, text(&out.stdout)))
}

impl Up {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(ballot_bin());
        c.args(args).env("BALLOT_ENDPOINTS", &self.endpoints).env("BALLOT_CERT_DIR", &self.certs);
        c.env_remove("BALLOT_CONSENSUS").envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "ballot {args:?} failed: {}{}", text(&o.stdout), text(&o.stderr));
        text(&o.stdout)
    }

    /// Retries `args` until it succeeds (the cluster is electing its first leader).
    fn eventually(&self, args: &[&str]) -> String {
        for _ in 0..50 {
            let o = self.run(args);
            if o.status.success() {
                return text(&o.stdout);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        self.ok(args)
    }
}

#[test]
fn readme_kv_session() {
    let _ = daemon("ballot-kvd");
    let base = ballot_localcluster::free_port_base(3);
    let up = cluster_up("kv", "kv", base).unwrap_or_else(|o| panic!("cluster up: {}", text(&o.stderr)));

    up.eventually(&["kv", "put", "greeting", "hello"]);
    assert!(up.ok(&["kv", "get", "greeting"]).contains("hello"));
    up.ok(&["kv", "cas", "greeting", "hi", "--expect-value", "hello"]);
    let range: serde_json::Value = serde_json::from_str(&up.ok(&["kv", "range", "", "--output", "json"])).unwrap();
    assert_eq!(range["kvs"][0]["value"], "hi");

    // A missing key: one message, on stderr, exit 3; in JSON, one error object on stdout.
    let o = up.run(&["kv", "get", "nope"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert!(o.stdout.is_empty(), "a missing key prints no table: {}", text(&o.stdout));
    assert_eq!(text(&o.stderr).lines().count(), 1, "{}", text(&o.stderr));
    let o = up.run(&["kv", "get", "nope", "--output", "json"]);
    assert_eq!(o.status.code(), Some(3));
    let lines: Vec<String> = text(&o.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 1, "one JSON document: {lines:?}");
    let error: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(error["error"]["kind"], "not_found");
    assert!(o.stderr.is_empty(), "JSON mode keeps stderr clean: {}", text(&o.stderr));

    // A failed compare-and-swap is reported once, with exit 1.
    let o = up.run(&["kv", "cas", "greeting", "x", "--expect-value", "wrong"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stdout).contains("condition failed") && o.stderr.is_empty(), "{}", text(&o.stderr));

    // Values up to the documented limit, from a file and from standard input.
    let limit = ballot_kv::MAX_VALUE_SIZE;
    let big = up.dir.join("big.bin");
    std::fs::write(&big, vec![b'a'; limit]).unwrap();
    up.ok(&["kv", "put", "big", "--from-file", big.to_str().unwrap()]);
    let got: serde_json::Value = serde_json::from_str(&up.ok(&["kv", "get", "big", "-o", "json"])).unwrap();
    assert_eq!(got["kvs"][0]["value"].as_str().map(str::len), Some(limit));
    let mut child = up.cmd(&["kv", "put", "piped", "--from-file", "-"]).stdin(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(&vec![b'b'; limit]).unwrap();
    assert!(child.wait().unwrap().success());
    let got: serde_json::Value = serde_json::from_str(&up.ok(&["kv", "get", "piped", "-o", "json"])).unwrap();
    assert_eq!(got["kvs"][0]["value"].as_str().map(str::len), Some(limit));
    std::fs::write(&big, vec![b'a'; limit + 1]).unwrap();
    let o = up.run(&["kv", "put", "big", "--from-file", big.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "over the limit is invalid input: {}", text(&o.stderr));
    assert!(text(&o.stderr).contains("exceeds the limit"), "{}", text(&o.stderr));

    // Node logs are plain text.
    let log = std::fs::read(up.dir.join("n1.log")).unwrap();
    assert!(!log.is_empty() && !log.contains(&0x1b), "ANSI escape codes in a node's log file");

    // A second cluster on the same ports is refused at once and starts nothing.
    let o = cluster_up("config", "clash", base).map(|_| ()).expect_err("a clashing cluster must be refused");
    assert!(text(&o.stderr).contains("--base-port"), "{}", text(&o.stderr));
    let clash = dir("clash");
    assert!(!clash.join("n1.pid").exists(), "no node of the refused cluster was started");
    let _ = std::fs::remove_dir_all(&clash);

    // Node 1 (the first endpoint) down: commands still succeed well within a short
    // --timeout, and `status` says the cluster is unhealthy.
    let o = up.run(&["cluster", "kill", "1", "--dir", up.dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    for i in 0..5 {
        let value = format!("v{i}");
        let o = up.run(&["--timeout", "1500ms", "kv", "put", "after-kill", &value]);
        if i > 0 {
            // (The first may still meet the election that follows the kill.)
            assert!(o.status.success(), "with node 1 down: {}", text(&o.stderr));
        }
    }
    let o = up.run(&["status"]);
    assert_eq!(o.status.code(), Some(4), "status with a dead endpoint: {}", text(&o.stdout));
    assert!(text(&o.stdout).contains("unreachable"), "{}", text(&o.stdout));
}

#[test]
fn readme_config_watch_of_a_whole_namespace() {
    let _ = daemon("ballot-configd");
    let base = ballot_localcluster::free_port_base(3);
    let up = cluster_up("config", "config", base).unwrap_or_else(|o| panic!("cluster up: {}", text(&o.stderr)));
    up.eventually(&["config", "set", "app", "db.url", "postgres://old"]);
    // The README's command, as written (plus a count so that it ends).
    let mut watch = up
        .cmd(&["config", "watch", "app", "", "--prefix", "--count", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It says "watching … from revision N" once the watch is open.
    let mut stderr = std::io::BufReader::new(watch.stderr.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first).unwrap();
    assert!(first.starts_with("watching app/*"), "{first}");
    up.ok(&["config", "set", "app", "db.url", "postgres://new"]);
    up.ok(&["config", "set", "app", "feature.x", "on"]);
    let out = watch.wait_with_output().unwrap();
    assert!(out.status.success(), "watch failed");
    let events = text(&out.stdout);
    assert!(events.contains("app/db.url = postgres://new") && events.contains("app/feature.x = on"), "{events}");
    assert!(!events.contains("postgres://old"), "a watch from now does not replay history: {events}");
}

#[test]
fn readme_pbft_kv_session() {
    let _ = daemon("ballot-kvd");
    let base = ballot_localcluster::free_port_base(4);
    let (mut up, said) = cluster_up_with("kv", "pbft", base, &["--consensus", "pbft"])
        .unwrap_or_else(|o| panic!("cluster up: {}", text(&o.stderr)));
    assert_eq!(up.endpoints.split(',').count(), 4, "pbft clusters have 4 nodes by default");
    assert!(said.contains("BALLOT_CONSENSUS=pbft"), "the export line names the consensus: {said}");

    // A client that does not know it talks to PBFT sends unsigned requests: refused,
    // with what to do about it.
    let o = up.run(&["--timeout", "3s", "kv", "put", "a", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(text(&o.stderr).contains("--consensus pbft"), "{}", text(&o.stderr));

    up.env.push(("BALLOT_CONSENSUS".into(), "pbft".into()));
    up.eventually(&["kv", "put", "a", "1"]);
    assert!(up.ok(&["kv", "get", "a"]).contains('1'));
    let status = up.ok(&["status"]);
    assert_eq!(status.matches("pbft").count(), 4, "{status}");
    // Every replica's address is needed to count matching answers.
    let o = up.run(&["--endpoints", &up.endpoints.split(',').take(3).collect::<Vec<_>>().join(","), "kv", "get", "a"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o.stderr).contains("every replica's address"), "{}", text(&o.stderr));
}

/// `cluster up --node-args ID=FLAGS` gives flags to that node alone: a bad flag stops the
/// start with that node's own complaint, a log level shows in its log only.
#[test]
fn node_args_reach_only_their_node() {
    let _ = daemon("ballot-kvd");
    let base = ballot_localcluster::free_port_base(3);
    let refused =
        cluster_up_with("kv", "node-args-bad", base, &["--nodes", "3", "--node-args", "2=--max-clock-skew-ms 0"])
            .err()
            .expect("node 2 cannot start with a skew bound of 0");
    let said = text(&refused.stderr);
    assert!(said.contains("node 2 exited") && said.contains("max-clock-skew-ms"), "{said}");

    let base = ballot_localcluster::free_port_base(3);
    let (up, _) = cluster_up_with("kv", "node-args", base, &["--nodes", "3", "--node-args", "2=--log debug"])
        .unwrap_or_else(|o| panic!("cluster up failed: {}", text(&o.stderr)));
    up.eventually(&["kv", "put", "k", "v"]);
    let log = |i: u32| std::fs::read_to_string(up.dir.join(format!("n{i}.log"))).unwrap();
    assert!(log(2).contains("DEBUG"), "node 2 logs at debug level");
    assert!(!log(1).contains("DEBUG") && !log(3).contains("DEBUG"), "the others keep the default level");
    let layout = std::fs::read_to_string(up.dir.join("cluster.txt")).unwrap();
    assert!(layout.contains("node_args.2=--log\u{1f}debug"), "recorded for restarts: {layout}");
}
