//! Block validation throughput: blocks of 1,000 signed transfers, fully validated and
//! connected by `Chain::accept_block` (proof of work, bits, timestamps, Merkle root and
//! mutation check, size, coinbase, every signature, nonce and balance, undo data).
//!
//! `cargo bench -p ballot-pow --bench validate [-- BLOCKS]` (default 20)

use std::time::Instant;

use ballot_core::Instant as Now;
use ballot_ledger::{Coinbase, Keypair, Ledger, MempoolConfig, Transaction, Transfer};
use ballot_pow::{Block, Chain, ChainParams, mine};

const CHAIN_ID: u32 = 7;
const T0: u32 = 1_700_000_000;
const TXS_PER_BLOCK: usize = 1_000;
const SENDERS: usize = 20;

fn now() -> Now {
    Now::from_millis(u64::from(T0 + 10_000_000) * 1000)
}

fn drain(c: &mut Chain) {
    while c.poll_output().is_some() {}
}

/// Mines a block on the tip of `c` with `transfers` and accepts it there.
fn next_block(c: &mut Chain, miner: &Keypair, transfers: Vec<Transaction>) -> Block {
    let tip = c.tip().clone();
    let height = tip.height + 1;
    let fees: u64 = transfers.iter().filter_map(Transaction::as_transfer).map(|t| t.transfer.fee).sum();
    let coinbase = Coinbase { height, to: miner.public(), amount: c.params().ledger.subsidy(height) + fees };
    let mut txs = vec![Transaction::Coinbase(coinbase)];
    txs.extend(transfers);
    let mut block = Block::new(tip.hash, tip.header.time + 10, c.next_bits(&tip), txs);
    assert!(mine(&mut block.header).expect("valid bits"));
    c.accept_block(now(), block.clone()).expect("valid block");
    drain(c);
    block
}

fn main() {
    let blocks: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(20);
    let mut params = ChainParams::testing(CHAIN_ID, Keypair::for_testing(1000).public(), T0);
    params.max_block_size = 1_000_000;
    let senders: Vec<Keypair> = (0..SENDERS as u64).map(Keypair::for_testing).collect();
    let receiver = Keypair::for_testing(5000).public();

    // Setup: each sender mines one block, then two more let the last coinbase mature.
    let mut producer = Chain::new(params.clone(), MempoolConfig::default()).expect("genesis");
    drain(&mut producer);
    let mut setup = Vec::new();
    for key in senders.iter().chain([&senders[0], &senders[0]]) {
        setup.push(next_block(&mut producer, key, vec![]));
    }
    let mut nonces = [0u64; SENDERS];
    let mut work = Vec::new();
    for _ in 0..blocks {
        let transfers = (0..TXS_PER_BLOCK)
            .map(|i| {
                let s = i % SENDERS;
                let t = Transfer {
                    chain_id: CHAIN_ID,
                    from: senders[s].public(),
                    to: receiver,
                    amount: 1,
                    fee: 1,
                    nonce: nonces[s],
                    memo: Vec::new(),
                };
                nonces[s] += 1;
                Transaction::Transfer(t.sign(&senders[s]).expect("own key"))
            })
            .collect();
        work.push(next_block(&mut producer, &senders[0], transfers));
    }
    let size = work[0].size();

    // Measured: a fresh node validating and connecting the blocks.
    let mut chain = Chain::new(params.clone(), MempoolConfig::default()).expect("genesis");
    for b in setup {
        chain.accept_block(now(), b).expect("valid");
    }
    drain(&mut chain);
    let start = Instant::now();
    for b in work.iter().cloned() {
        chain.accept_block(now(), b).expect("valid");
        drain(&mut chain);
    }
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(chain.tip().hash, producer.tip().hash);

    // The parts: context-free checks (PoW, Merkle root, size, coinbase) and the ledger.
    let start = Instant::now();
    for b in &work {
        b.check(&params).expect("valid");
    }
    let checks = start.elapsed().as_secs_f64();
    let mut ledger = Ledger::new(params.ledger.clone());
    // The ledger up to the measured blocks, not measured.
    for h in 0..=producer.height() - blocks as u64 {
        let b = producer.block(&producer.hash_at(h).expect("active")).expect("held");
        ledger.apply_block(h, &b.txs).expect("valid");
    }
    let start = Instant::now();
    for (i, b) in work.iter().enumerate() {
        let h = producer.height() - blocks as u64 + 1 + i as u64;
        ledger.apply_block(h, &b.txs).expect("valid");
    }
    let ledger_time = start.elapsed().as_secs_f64();

    let n = blocks as f64;
    println!("{blocks} blocks of {TXS_PER_BLOCK} signed transfers ({size} bytes each), one thread");
    println!(
        "accept_block (full validation + connect): {:.1} blocks/s, {:.0} transfers/s, {:.2} ms per block",
        n / elapsed,
        n * TXS_PER_BLOCK as f64 / elapsed,
        1e3 * elapsed / n
    );
    println!("  of which context-free checks:  {:.2} ms per block", 1e3 * checks / n);
    println!("  of which ledger (signatures, nonces, balances, undo): {:.2} ms per block", 1e3 * ledger_time / n);
}
