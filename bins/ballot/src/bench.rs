//! `ballot bench put|range …`: etcd's `benchmark` workloads against a ballot-kvd
//! cluster, through ballot-client (the harness is the `ballot-bench` crate).

use std::sync::Arc;

use anyhow::Result;
use ballot_bench::BallotTarget;
use ballot_bench::cli::{BenchArgs, execute};

use crate::{Global, client_config};

/// Runs the benchmark described by `args` against the cluster of `global`.
pub async fn bench(args: &BenchArgs, global: &Global, json: bool) -> Result<()> {
    // Fail on bad flags before connecting anywhere.
    args.spec()?;
    let mut config = client_config(global)?;
    // A benchmark's requests queue behind each other: allow each attempt the whole
    // --timeout rather than the interactive 2 s.
    config.attempt_timeout = global.timeout;
    let target = Arc::new(BallotTarget::connect(config, args.conns).await?);
    execute(target, args, None, json).await?;
    Ok(())
}
