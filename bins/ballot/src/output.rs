//! Tables for people, JSON lines for scripts.

use ballot_client::Error;
use ballot_config::{ConfigEntry, ConfigEvent, EventKind};
use ballot_election::{LeaderEvent, Leadership};
use ballot_kv::KeyValue;
use ballot_wire::NodeStatus;
use bytes::Bytes;
use serde::Serialize;

/// Bytes as text when they are UTF-8, else as `0x` hex.
pub fn text(b: &Bytes) -> String {
    match std::str::from_utf8(b) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_owned(),
        _ => format!("0x{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
    }
}

/// One key (of the database or the config service) as printed.
#[derive(Serialize)]
pub struct Row {
    key: String,
    pub value: String,
    create_revision: u64,
    mod_revision: u64,
    pub version: u64,
}

impl Row {
    pub fn kv(kv: &KeyValue) -> Row {
        Row {
            key: text(&kv.key),
            value: text(&kv.value),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
        }
    }

    pub fn config(e: &ConfigEntry) -> Row {
        Row {
            key: format!("{}/{}", e.namespace, e.key),
            value: text(&e.value),
            create_revision: e.create_revision,
            mod_revision: e.mod_revision,
            version: e.version,
        }
    }
}

pub struct Output {
    json: bool,
}

fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(headers.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row.clone());
    }
}

impl Output {
    pub fn new(json: bool) -> Self {
        Output { json }
    }

    fn json(&self, value: &impl Serialize) {
        println!("{}", serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")));
    }

    pub fn message(&self, human: &str, json: serde_json::Value) {
        if self.json {
            self.json(&json);
        } else {
            println!("{human}");
        }
    }

    /// Whether output is JSON.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// A table for people, `value` as JSON for scripts.
    pub fn table(&self, headers: &[&str], rows: &[Vec<String>], value: &impl Serialize) {
        if self.json {
            self.json(value);
        } else {
            table(headers, rows);
        }
    }

    /// Information for people only (stderr, so pipes stay clean).
    pub fn note(&self, msg: &str) {
        if !self.json {
            eprintln!("{msg}");
        }
    }

    pub fn rows(&self, rows: &[Row], revision: u64) {
        if self.json {
            self.json(&serde_json::json!({ "revision": revision, "kvs": rows }));
            return;
        }
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.key.clone(),
                    r.value.clone(),
                    r.create_revision.to_string(),
                    r.mod_revision.to_string(),
                    r.version.to_string(),
                ]
            })
            .collect();
        table(&["KEY", "VALUE", "CREATE_REV", "MOD_REV", "VERSION"], &cells);
    }

    pub fn event(&self, e: &ConfigEvent) {
        let kind = match e.kind {
            EventKind::Put => "PUT",
            EventKind::Delete => "DELETE",
        };
        if self.json {
            self.json(&serde_json::json!({
                "revision": e.revision, "kind": kind, "namespace": e.namespace, "key": e.key, "value": text(&e.value),
            }));
        } else {
            println!("{:>8}  {kind:<6}  {}/{} = {}", e.revision, e.namespace, e.key, text(&e.value));
        }
    }

    pub fn leader(&self, election: &str, l: &Leadership) {
        if self.json {
            self.json(&serde_json::json!({
                "election": election, "value": text(&l.value), "lease": l.lease.0, "token": l.token, "revision": l.revision,
            }));
        } else {
            table(
                &["ELECTION", "LEADER", "TOKEN", "LEASE", "REVISION"],
                &[vec![
                    election.to_owned(),
                    text(&l.value),
                    l.token.to_string(),
                    l.lease.to_string(),
                    l.revision.to_string(),
                ]],
            );
        }
    }

    pub fn leader_event(&self, e: &LeaderEvent) {
        match (&e.leader, self.json) {
            (Some(l), true) => self.json(&serde_json::json!({
                "election": e.election, "revision": e.revision, "value": text(&l.value), "token": l.token, "lease": l.lease.0,
            })),
            (None, true) => self.json(&serde_json::json!({ "election": e.election, "revision": e.revision, "value": null })),
            (Some(l), false) => {
                println!("{:>8}  {}: leader {} (token {}, lease {})", e.revision, e.election, text(&l.value), l.token, l.lease);
            }
            (None, false) => println!("{:>8}  {}: no leader", e.revision, e.election),
        }
    }

    pub fn local_cluster(
        &self,
        spec: &ballot_localcluster::ClusterSpec,
        nodes: &[ballot_localcluster::detached::NodeState],
    ) {
        if self.json {
            let items: Vec<serde_json::Value> = nodes
                .iter()
                .map(|n| {
                    serde_json::json!({
                        "id": n.id.get(), "pid": n.pid, "listen": n.listen, "metrics": n.metrics_url,
                        "health": n.health.as_deref().and_then(|h| serde_json::from_str::<serde_json::Value>(h).ok()),
                    })
                })
                .collect();
            self.json(
                &serde_json::json!({ "service": spec.service.name(), "consensus": spec.consensus, "nodes": items }),
            );
            return;
        }
        let cells: Vec<Vec<String>> = nodes
            .iter()
            .map(|n| {
                let health = n.health.as_deref().and_then(|h| serde_json::from_str::<serde_json::Value>(h).ok());
                let field = |k: &str| {
                    health.as_ref().and_then(|h| h.get(k)).map(|v| v.to_string().trim_matches('"').to_owned())
                };
                vec![
                    n.id.to_string(),
                    n.pid.map_or_else(|| "stopped".into(), |p| p.to_string()),
                    n.listen.clone(),
                    field("role").unwrap_or_else(|| "-".into()),
                    field("leader").unwrap_or_else(|| "-".into()),
                    field("health").unwrap_or_else(|| "-".into()),
                    n.metrics_url.clone(),
                ]
            })
            .collect();
        table(&["NODE", "PID", "LISTEN", "ROLE", "LEADER", "HEALTHY", "METRICS"], &cells);
    }

    pub fn status(&self, rows: &[(String, Result<NodeStatus, Error>)]) {
        if self.json {
            let items: Vec<serde_json::Value> = rows
                .iter()
                .map(|(endpoint, r)| match r {
                    Ok(s) => serde_json::json!({
                        "endpoint": endpoint, "id": s.status.id.get(), "role": s.status.role.to_string(),
                        "leader": s.status.leader.map(|l| l.get()), "term": s.status.term,
                        "commit_index": s.status.commit_index, "applied_index": s.applied_index,
                        "last_index": s.status.last_index, "snapshot_index": s.status.snapshot_index,
                        "consensus": s.consensus, "leader_changes": s.leader_changes,
                        "voters": s.status.membership.voters.iter().map(|v| v.get()).collect::<Vec<_>>(),
                    }),
                    Err(e) => serde_json::json!({ "endpoint": endpoint, "error": e.to_string() }),
                })
                .collect();
            self.json(&items);
            return;
        }
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|(endpoint, r)| match r {
                Ok(s) => vec![
                    endpoint.clone(),
                    s.status.id.to_string(),
                    s.status.role.to_string(),
                    s.status.leader.map_or_else(|| "-".into(), |l| l.to_string()),
                    s.status.term.to_string(),
                    s.status.commit_index.to_string(),
                    s.applied_index.to_string(),
                    s.consensus.to_string(),
                ],
                Err(e) => vec![
                    endpoint.clone(),
                    "-".into(),
                    match e {
                        ballot_client::Error::Unreachable { last, .. } => format!("unreachable ({last})"),
                        other => format!("error: {other}"),
                    },
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ],
            })
            .collect();
        table(&["ENDPOINT", "ID", "ROLE", "LEADER", "TERM", "COMMIT", "APPLIED", "CONSENSUS"], &cells);
    }
}
