//! The dependency-boundary check: the sans-IO crates must not reach an async runtime,
//! a network stack or a database, so that anyone can pick them alone.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Crates that must stay free of IO dependencies.
pub const GUARDED: &[&str] = &[
    "ballot-core",
    "ballot-wire",
    "ballot-raft",
    "ballot-paxos",
    "ballot-pbft",
    "ballot-pbft-auth",
    "ballot-replica",
    "ballot-client-proto",
    "ballot-ledger",
    "ballot-pow",
    "ballot-pos",
    "ballot-sim",
];

/// Crates they must never depend on, directly or transitively (normal and build edges).
pub const FORBIDDEN: &[&str] = &["tokio", "quinn", "quinn-proto", "rocksdb", "librocksdb-sys"];

/// One forbidden path: `chain[0]` is the guarded crate, the last element the forbidden one.
#[derive(Debug, PartialEq, Eq)]
pub struct Violation {
    /// Package names from the guarded crate to the forbidden one.
    pub chain: Vec<String>,
}

/// Runs `cargo metadata` in `workspace` and checks the boundary.
/// `locked` passes `--locked`, so a stale `Cargo.lock` fails the check too.
pub fn check_workspace(workspace: &Path, locked: bool) -> Result<Vec<Violation>> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["metadata", "--format-version", "1"]);
    if locked {
        cmd.arg("--locked");
    }
    let out = cmd.current_dir(workspace).output().context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let metadata: Value = serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    check_metadata(&metadata, GUARDED, FORBIDDEN)
}

/// Checks a parsed `cargo metadata` document: for every guarded package present, a
/// breadth-first search over normal and build dependency edges for a forbidden package.
pub fn check_metadata(metadata: &Value, guarded: &[&str], forbidden: &[&str]) -> Result<Vec<Violation>> {
    let packages = metadata["packages"].as_array().context("metadata without packages")?;
    let name_of: HashMap<&str, &str> =
        packages.iter().filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?))).collect();
    let nodes = metadata["resolve"]["nodes"].as_array().context("metadata without a resolve graph")?;
    let mut edges: HashMap<&str, Vec<&str>> = HashMap::new();
    for node in nodes {
        let id = node["id"].as_str().context("node without id")?;
        let deps = node["deps"].as_array().map(Vec::as_slice).unwrap_or_default();
        let runtime_deps = deps.iter().filter(|d| {
            d["dep_kinds"].as_array().is_some_and(|kinds| kinds.iter().any(|k| k["kind"].as_str() != Some("dev")))
        });
        edges.insert(id, runtime_deps.filter_map(|d| d["pkg"].as_str()).collect());
    }
    let mut violations = Vec::new();
    for root in name_of.iter().filter(|(_, name)| guarded.contains(name)).map(|(id, _)| *id) {
        let mut parent: HashMap<&str, &str> = HashMap::new();
        let mut seen = BTreeSet::from([root]);
        let mut queue = VecDeque::from([root]);
        while let Some(id) = queue.pop_front() {
            if forbidden.contains(&name_of.get(id).copied().unwrap_or_default()) {
                let mut chain = vec![id];
                while let Some(p) = parent.get(chain.last().expect("non-empty")) {
                    chain.push(p);
                }
                chain.reverse();
                violations.push(Violation { chain: chain.iter().map(|i| name_of[i].to_owned()).collect() });
                continue;
            }
            for &dep in edges.get(id).map(Vec::as_slice).unwrap_or_default() {
                if seen.insert(dep) {
                    parent.insert(dep, id);
                    queue.push_back(dep);
                }
            }
        }
    }
    violations.sort_by(|a, b| a.chain.cmp(&b.chain));
    Ok(violations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(id: &str, deps: &[(&str, Option<&str>)]) -> Value {
        json!({
            "id": id,
            "deps": deps.iter().map(|(pkg, kind)| json!({"pkg": pkg, "dep_kinds": [{"kind": kind}]})).collect::<Vec<_>>(),
        })
    }

    fn metadata(nodes: Vec<Value>) -> Value {
        let packages: Vec<Value> = nodes.iter().map(|n| json!({"id": n["id"], "name": n["id"]})).collect();
        json!({"packages": packages, "resolve": {"nodes": nodes}})
    }

    #[test]
    fn finds_a_transitive_path() {
        let m = metadata(vec![
            node("ballot-core", &[("serde", None), ("helper", None)]),
            node("helper", &[("tokio", None)]),
            node("serde", &[]),
            node("tokio", &[]),
        ]);
        let v = check_metadata(&m, GUARDED, FORBIDDEN).unwrap();
        assert_eq!(v, vec![Violation { chain: vec!["ballot-core".into(), "helper".into(), "tokio".into()] }]);
    }

    #[test]
    fn ignores_dev_dependencies_and_unguarded_crates() {
        let m = metadata(vec![
            node("ballot-raft", &[("tokio", Some("dev"))]),
            node("ballot-node", &[("tokio", None)]),
            node("tokio", &[]),
        ]);
        assert!(check_metadata(&m, GUARDED, FORBIDDEN).unwrap().is_empty());
    }

    /// The real `cargo metadata` on a throw-away workspace: adding a (path) dependency
    /// named `tokio` to a crate named `ballot-core` must fail the check.
    #[test]
    fn real_cargo_metadata_catches_a_new_forbidden_dependency() {
        let dir = tempfile::tempdir().unwrap();
        let write = |path: &str, text: &str| {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        let manifest = |name: &str, deps: &str| {
            format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[dependencies]\n{deps}")
        };
        write("Cargo.toml", "[workspace]\nmembers = [\"core\", \"tokio\", \"middle\"]\nresolver = \"2\"\n");
        write("tokio/Cargo.toml", &manifest("tokio", ""));
        write("tokio/src/lib.rs", "");
        write("middle/Cargo.toml", &manifest("middle", ""));
        write("middle/src/lib.rs", "");
        write("core/Cargo.toml", &manifest("ballot-core", "middle = { path = \"../middle\" }\n"));
        write("core/src/lib.rs", "");
        assert!(check_workspace(dir.path(), false).unwrap().is_empty(), "clean workspace passes");

        write("middle/Cargo.toml", &manifest("middle", "tokio = { path = \"../tokio\" }\n"));
        let v = check_workspace(dir.path(), false).unwrap();
        assert_eq!(v, vec![Violation { chain: vec!["ballot-core".into(), "middle".into(), "tokio".into()] }]);
    }

    #[test]
    fn build_dependencies_count() {
        let m = metadata(vec![node("ballot-wire", &[("rocksdb", Some("build"))]), node("rocksdb", &[])]);
        assert_eq!(check_metadata(&m, GUARDED, FORBIDDEN).unwrap().len(), 1);
    }
}
