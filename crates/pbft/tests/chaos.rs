//! Seeded runs with message loss, duplication and reordering, crashes and restarts, or
//! one Byzantine replica with a behaviour chosen per seed. Safety is checked all along;
//! after the faults stop every request completes (liveness after stabilisation).

mod common;

use std::time::Duration;

use ballot_core::{Instant, NodeId, SeededRng};
use ballot_pbft::byzantine::Forge;
use ballot_pbft::{Item, Message, sha256};
use common::{Chaos, Cluster, Rewrite};

fn liar(kind: u64) -> (&'static str, Rewrite) {
    let bogus = sha256(b"bogus");
    match kind {
        0 => ("silent", Box::new(|_, _, _| Vec::new())),
        1 => (
            "wrong digests",
            Box::new(move |forge: &Forge, to, m| match m {
                Message::Prepare(p) => vec![(to, forge.prepare(p.body.view, p.body.seq, bogus))],
                Message::Commit { view, seq, .. } => vec![(to, Forge::commit(view, seq, bogus))],
                Message::Checkpoint(c) => vec![(to, forge.checkpoint(c.body.seq, c.body.index, bogus))],
                other => vec![(to, other)],
            }),
        ),
        2 => (
            "equivocating",
            Box::new(|forge: &Forge, to, m| match m {
                Message::PrePrepare { pre_prepare, mut batch } if to.0 % 2 == 0 => {
                    batch.push(Item::Barrier { replica: forge.id, nonce: to.0 });
                    vec![(to, forge.resign(&Message::PrePrepare { pre_prepare, batch }))]
                }
                other => vec![(to, other)],
            }),
        ),
        4 => (
            "wrong O set and forged state",
            Box::new(|forge: &Forge, to, m| match m {
                Message::NewView(nv) => {
                    let mut o = Forge::honest_o(&nv.body.view_changes);
                    let next = o.last().map_or(nv.body.view_changes[0].body.stable.seq, |x| x.0) + 1;
                    o.push((next, sha256(b"bogus")));
                    vec![(to, forge.new_view(nv.body.view, nv.body.view_changes, &o))]
                }
                Message::State { checkpoint, state } => {
                    let mut bad = state.to_vec();
                    bad.push(1);
                    vec![(to, Message::State { checkpoint, state: bad.into() })]
                }
                other => vec![(to, other)],
            }),
        ),
        _ => (
            "replaying and view-change happy",
            Box::new(|forge: &Forge, to, m| match m {
                Message::ViewChange(v) => {
                    let higher = forge.view_change(v.body.view + 1, v.body.stable.clone(), Vec::new());
                    vec![(to, Message::ViewChange(v)), (to, higher)]
                }
                Message::Commit { view, seq, digest } => {
                    vec![
                        (to, Message::Commit { view, seq, digest }),
                        (to, Forge::commit(view.saturating_sub(1), seq, digest)),
                    ]
                }
                other => vec![(to, other)],
            }),
        ),
    }
}

fn run(seed: u64) {
    let mut rng = SeededRng::new(seed);
    let n = if rng.gen_bool(0.25) { 7 } else { 4 };
    let mut c = Cluster::new(n);
    let faults_until = Instant::from_millis(6_000);
    c.chaos = Some(Chaos { rng: rng.fork(), drop: 0.05, dup: 0.05, until: faults_until });
    if std::env::var("PBFT_TRACE").is_ok() {
        c.filter = Some(Box::new(|now, from, to, m| {
            match m {
                Message::PrePrepare { pre_prepare, batch } => eprintln!(
                    "{now:?} {from}->{to} PP v{} n{} {:?}",
                    pre_prepare.body.view,
                    pre_prepare.body.seq,
                    batch
                        .iter()
                        .map(|i| match i {
                            Item::Request(b) => String::from_utf8_lossy(&b[8..b.len() - 32]).into_owned(),
                            _ => "barrier".into(),
                        })
                        .collect::<Vec<_>>()
                ),
                Message::NewView(nv) => eprintln!(
                    "{now:?} {from}->{to} NV v{} O {:?}",
                    nv.body.view,
                    nv.body.pre_prepares.iter().map(|p| (p.body.seq, p.body.digest)).collect::<Vec<_>>()
                ),
                Message::Request(Item::Request(b)) => {
                    eprintln!("{now:?} {from}->{to} REQ {}", String::from_utf8_lossy(&b[8..b.len() - 32]))
                }
                _ => {}
            }
            false
        }));
    }
    let byzantine = rng.gen_bool(0.6);
    let mut what = String::new();
    if byzantine {
        let who = rng.gen_range(1..n + 1);
        let (name, rw) = liar(rng.gen_range(0..5));
        what = format!("n{who} {name}");
        c.lie(who, rw);
    }
    let mut cmds = Vec::new();
    let mut crashed: Option<u64> = None;
    while c.now < faults_until {
        if rng.gen_bool(0.3) {
            let cmd = c.request(&format!("s{seed}-{}", cmds.len()));
            c.submit(&cmd);
            cmds.push(cmd);
        }
        // Crashes are faults too: with a liar, only where f = 2.
        if (!byzantine || n == 7) && rng.gen_bool(0.03) {
            match crashed {
                None => {
                    let id = rng.gen_range(1..n + 1);
                    if c.nodes[id as usize - 1].liar.is_some() {
                        continue;
                    }
                    c.crash(id);
                    if std::env::var("PBFT_TRACE").is_ok() {
                        eprintln!("{:?} crash n{id}", c.now);
                    }
                    crashed = Some(id);
                }
                Some(id) => {
                    c.restart(id);
                    if std::env::var("PBFT_TRACE").is_ok() {
                        eprintln!("{:?} restart n{id}", c.now);
                    }
                    crashed = None;
                }
            }
        }
        c.run_for(Duration::from_millis(rng.gen_range(1..60)));
        c.check_agreement();
    }
    if let Some(id) = crashed {
        c.restart(id);
        c.drain();
    }
    // The faults stopped: clients retry what is still pending, at every replica.
    let honest = c.honest();
    let mut rounds = 0;
    while !cmds.iter().all(|x| c.executed_everywhere(x)) {
        rounds += 1;
        assert!(rounds < 60, "seed {seed} ({what}): not live after the faults stopped\n{}", c.describe());
        // A BFT client retries at every replica; one that executed the request orders
        // it again (the service's sessions make the second execution a no-op).
        for x in cmds.clone() {
            if !honest.iter().all(|&i| c.executed_at(i, &x)) {
                c.submit(&x);
            }
        }
        c.run_for(Duration::from_millis(1_000));
    }
    c.check_agreement();
    let _ = NodeId(0);
}

#[test]
fn seeded_chaos_is_safe_and_live() {
    let seeds: u64 = std::env::var("PBFT_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    let first: u64 = std::env::var("PBFT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    for seed in first..first + seeds {
        run(seed);
    }
}
