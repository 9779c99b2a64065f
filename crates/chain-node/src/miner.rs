//! Mining threads: [`NonceScanner::scan`] over disjoint nonce ranges on N OS threads,
//! outside the async event loop; a new job (a new tip, new transactions, a later time)
//! makes every thread drop its work at the next chunk boundary.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use ballot_pow::{Block, NonceScanner};
use tokio::sync::mpsc;

/// Nonces a thread scans between checks for a new job (a few milliseconds' work).
const CHUNK: u32 = 1 << 16;

struct Shared {
    job: Mutex<Option<Arc<(u64, Block, NonceScanner)>>>,
    generation: AtomicU64,
    hashes: AtomicU64,
    stop: AtomicBool,
}

/// The miner: its threads and the job they work on.
pub struct Miner {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Miner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Miner").field("threads", &self.threads.len()).finish_non_exhaustive()
    }
}

impl Miner {
    /// Starts `threads` mining threads; solved blocks are sent to `found`.
    #[must_use]
    pub fn start(threads: usize, found: mpsc::UnboundedSender<Block>) -> Self {
        let shared = Arc::new(Shared {
            job: Mutex::new(None),
            generation: AtomicU64::new(0),
            hashes: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let threads = (0..threads.max(1))
            .map(|i| {
                let (shared, found, count) = (shared.clone(), found.clone(), threads.max(1));
                std::thread::Builder::new()
                    .name(format!("miner-{i}"))
                    .spawn(move || run(&shared, i as u64, count as u64, &found))
                    .unwrap_or_else(|e| panic!("cannot start a mining thread: {e}"))
            })
            .collect();
        Miner { shared, threads }
    }

    /// Replaces the job: every thread starts on `block` (its nonce is ignored).
    pub fn set_job(&self, block: Block) {
        let Ok(scanner) = NonceScanner::new(&block.header) else {
            tracing::warn!("the block template has an unusable target; not mining it");
            return;
        };
        let generation = self.shared.generation.fetch_add(1, Ordering::SeqCst) + 1;
        *self.shared.job.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new((generation, block, scanner)));
    }

    /// Hashes tried since the start.
    #[must_use]
    pub fn hashes(&self) -> u64 {
        self.shared.hashes.load(Ordering::Relaxed)
    }
}

impl Drop for Miner {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn run(shared: &Shared, index: u64, count: u64, found: &mpsc::UnboundedSender<Block>) {
    let mut done_generation = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        let job = shared.job.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let Some(job) = job.filter(|j| j.0 != done_generation) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let (generation, block, scanner) = &*job;
        done_generation = *generation;
        // Thread `index` of `count` scans chunks index, index + count, ...
        let mut chunk = index;
        loop {
            let start = chunk * u64::from(CHUNK);
            if start > u64::from(u32::MAX) || shared.stop.load(Ordering::Relaxed) {
                break;
            }
            let end = (start + u64::from(CHUNK) - 1).min(u64::from(u32::MAX));
            let hit = scanner.scan(start as u32..=end as u32);
            shared.hashes.fetch_add(end - start + 1, Ordering::Relaxed);
            if let Some(hit) = hit {
                let mut solved = block.clone();
                solved.header.nonce = hit.nonce;
                if found.send(solved).is_err() {
                    return;
                }
                break;
            }
            if shared.generation.load(Ordering::Relaxed) != *generation {
                break;
            }
            chunk += count;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballot_core::Instant;
    use ballot_ledger::{Keypair, MempoolConfig};

    #[test]
    fn threads_solve_the_job_and_count_hashes() {
        let spec = crate::ChainSpec { pow_limit_bits: 12, ..crate::ChainSpec::default() };
        let chain = ballot_pow::Chain::new(spec.params(), MempoolConfig::default()).unwrap();
        let now = Instant::from_millis((u64::from(crate::params::GENESIS_TIME) + 60) * 1000);
        let template = chain.block_template(now, Keypair::for_testing(1).public()).block;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let miner = Miner::start(2, tx);
        miner.set_job(template.clone());
        let solved = rx.blocking_recv().unwrap();
        assert!(solved.check(chain.params()).is_ok());
        assert_eq!(solved.txs, template.txs);
        assert!(miner.hashes() > 0);
    }
}
