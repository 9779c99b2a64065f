//! The CLI as a user meets it: help, bad flags, missing certificates, an unreachable
//! cluster, certificate generation. (Talking to live clusters is covered by the
//! services' end-to-end tests and by `cargo xtask demo`.)

use std::path::Path;
use std::process::{Command, Output};

fn ballot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ballot"))
        .args(args)
        .env_remove("BALLOT_ENDPOINTS")
        .env_remove("BALLOT_CERT_DIR")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn help_lists_the_commands() {
    let o = ballot(&["--help"]);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    for cmd in ["kv", "config", "election", "status", "certs", "cluster"] {
        assert!(text.contains(cmd), "help lacks {cmd}: {text}");
    }
}

#[test]
fn bad_flags_get_clear_errors() {
    let o = ballot(&["kv", "frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unrecognized subcommand"), "{}", stderr(&o));
    let o = ballot(&["--timeout", "soon", "status"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a duration"), "{}", stderr(&o));
    let o = ballot(&["kv", "cas", "k", "v"]);
    assert_eq!(o.status.code(), Some(2), "invalid input");
    assert!(stderr(&o).contains("give a condition"), "{}", stderr(&o));
}

#[test]
fn missing_certificates_say_how_to_make_them() {
    let dir = tmp("nocerts");
    let o = ballot(&["--cert-dir", dir.to_str().unwrap(), "kv", "get", "k"]);
    assert_eq!(o.status.code(), Some(2), "invalid input");
    let e = stderr(&o);
    assert!(e.contains("ballot certs"), "{e}");
}

#[test]
fn certs_are_written_once_and_an_unreachable_cluster_is_reported() {
    let dir = tmp("certs");
    let o = ballot(&["certs", "--dir", dir.to_str().unwrap(), "--nodes", "1,2,3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["ca.pem", "n1.pem", "n3-key.pem", "client.pem", "client-key.pem"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let again = ballot(&["certs", "--dir", dir.to_str().unwrap(), "--nodes", "1"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("already exists"), "{}", stderr(&again));

    // Nobody listens on these ports: a clear error, not a hang.
    let started = std::time::Instant::now();
    let o = ballot(&[
        "--cert-dir",
        dir.to_str().unwrap(),
        "--endpoints",
        "127.0.0.1:9,127.0.0.1:11",
        "--timeout",
        "2s",
        "kv",
        "put",
        "k",
        "v",
    ]);
    assert_eq!(o.status.code(), Some(4), "unavailable");
    assert!(stderr(&o).contains("no ballot node reachable"), "{}", stderr(&o));
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "took {:?}", started.elapsed());
}

#[test]
fn chain_commands_check_their_input_and_report_an_unreachable_node() {
    let dir = tmp("chain");
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("alice.key");
    let o = ballot(&["--output", "json", "chain", "keygen", "--out", key.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let made: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(made["key"].as_str().map(str::len), Some(64));
    // Keys are never overwritten.
    let o = ballot(&["chain", "keygen", "--out", key.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // A bad account, a bad amount.
    let o = ballot(&["chain", "balance", "not-a-key"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("neither a public key"), "{}", stderr(&o));
    let o = ballot(&["chain", "send", "--key", key.to_str().unwrap(), "--to", "x", "--amount", "lots"]);
    assert_eq!(o.status.code(), Some(2));
    // Nobody listens on port 1: unavailable (exit 4), also as JSON.
    let o = ballot(&["--output", "json", "chain", "--node", "127.0.0.1:1", "balance", key.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let err: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(err["error"]["kind"], "unavailable");
    // Verifying a directory that holds no chain store.
    let o = ballot(&["chain", "verify", "--data-dir", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}
