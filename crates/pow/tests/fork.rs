//! Fork choice by cumulative work, reorganisations, orphans, headers first, templates
//! and restart.

mod common;

use ballot_ledger::MempoolConfig;
use ballot_pow::{Accepted, Block, Chain, ChainOutput, ChainParams, NonceScanner, PowError, Status};
use common::*;
use proptest::prelude::*;

/// Retarget every 4 blocks, so that a branch of fast blocks gets harder (more work per
/// block) and a branch of slow blocks stays at the limit.
fn retarget_params() -> ChainParams {
    let mut p = params();
    p.retarget_interval = 4;
    p
}

#[test]
fn a_shorter_chain_with_more_work_wins() {
    let mut producer = new_chain(retarget_params());
    let g = producer.tip().hash;
    // Slow: 10 blocks at the limit. Fast: 5 blocks, the last two at a quarter of it.
    let slow = extend(&mut producer, g, 10, 100, 1);
    let fast = extend(&mut producer, g, 5, 1, 2);
    let slow_work = producer.entry(&slow[9].hash()).unwrap().chain_work;
    let fast_work = producer.entry(&fast[4].hash()).unwrap().chain_work;
    assert!(fast_work > slow_work, "the test needs the shorter branch to have more work");

    let mut c = new_chain(retarget_params());
    feed(&mut c, &slow);
    assert_eq!(c.tip().hash, slow[9].hash());
    drain(&mut c);
    feed(&mut c, &fast[..4]);
    assert_eq!(c.tip().hash, slow[9].hash(), "less work so far: no switch");
    c.accept_block(late(), fast[4].clone()).unwrap();
    assert_eq!(c.tip().hash, fast[4].hash());
    assert_eq!(c.height(), 5);
    let outputs = drain(&mut c);
    // Ten disconnections (tip first), five connections, then the reorg and the new tip.
    let disconnected: Vec<u64> = outputs
        .iter()
        .filter_map(|o| match o {
            ChainOutput::Disconnected { entry, .. } => Some(entry.height),
            _ => None,
        })
        .collect();
    assert_eq!(disconnected, (1..=10).rev().collect::<Vec<_>>());
    let connected: Vec<u64> = outputs
        .iter()
        .filter_map(|o| match o {
            ChainOutput::Connected(c) => Some(c.entry.height),
            _ => None,
        })
        .collect();
    assert_eq!(connected, vec![1, 2, 3, 4, 5]);
    assert!(outputs.iter().any(|o| matches!(o, ChainOutput::Reorg { depth: 10, connected: 5, .. })));
    assert!(matches!(outputs.last(), Some(ChainOutput::NewTip { height: 5, .. })));
    // The ledger is the fast branch's: key 2 mined its blocks, key 1's are gone.
    assert!(c.ledger().account(&key(2).public()).is_some());
    assert!(c.ledger().account(&key(1).public()).is_none());
}

#[test]
fn a_longer_chain_with_less_work_does_not() {
    let mut producer = new_chain(retarget_params());
    let g = producer.tip().hash;
    let slow = extend(&mut producer, g, 10, 100, 1);
    let fast = extend(&mut producer, g, 5, 1, 2);
    let mut c = new_chain(retarget_params());
    feed(&mut c, &fast);
    feed(&mut c, &slow);
    assert_eq!(c.tip().hash, fast[4].hash());
    assert_eq!(c.height(), 5);
    assert!(drain(&mut c).iter().all(|o| !matches!(o, ChainOutput::Reorg { .. })));
    // The slow blocks are kept as a side branch.
    assert_eq!(c.entry(&slow[9].hash()).unwrap().status, Status::Data);
}

#[test]
fn equal_work_keeps_the_first_seen() {
    let mut producer = new_chain(params());
    let g = producer.tip().hash;
    let a = extend(&mut producer, g, 2, 10, 1);
    let b = extend(&mut producer, g, 2, 11, 2);
    let mut c = new_chain(params());
    feed(&mut c, &b);
    feed(&mut c, &a);
    assert_eq!(c.tip().hash, b[1].hash());
    let outputs = drain(&mut c);
    assert!(outputs.iter().any(|o| matches!(o, ChainOutput::StoreBlock { entry, .. } if entry.hash == a[1].hash())));
    // One more block on a: more work, so it wins.
    let a3 = extend(&mut producer, a[1].hash(), 1, 10, 1);
    feed(&mut c, &a3);
    assert_eq!(c.tip().hash, a3[0].hash());
}

#[test]
fn a_reorg_returns_transfers_to_the_mempool() {
    let mut producer = new_chain(params());
    let g = producer.tip().hash;
    let prefix = extend(&mut producer, g, 2, 10, 9);
    let t = pay(&key(0), key(1).public(), 1000, 5, 0);
    let u = pay(&key(0), key(1).public(), 2000, 5, 1);
    let a = block(&producer, prefix[1].hash(), Spec { transfers: vec![t.clone(), u.clone()], ..Spec::default() });
    producer.accept_block(late(), a.clone()).unwrap();
    // The competing branch includes only `t`, and is one block longer.
    let b1 = block(&producer, prefix[1].hash(), Spec { transfers: vec![t.clone()], dt: 11, ..Spec::default() });
    producer.accept_block(late(), b1.clone()).unwrap();
    let b2 = extend(&mut producer, b1.hash(), 1, 10, 9);

    let mut c = new_chain(params());
    feed(&mut c, &prefix);
    c.submit_transaction(t.clone()).unwrap();
    c.submit_transaction(u.clone()).unwrap();
    feed(&mut c, std::slice::from_ref(&a));
    assert!(c.mempool().is_empty(), "connected transfers leave the mempool");
    drain(&mut c);
    feed(&mut c, &[b1, b2[0].clone()]);
    assert_eq!(c.tip().hash, b2[0].hash());
    assert!(drain(&mut c).iter().any(|o| matches!(o, ChainOutput::Reorg { depth: 1, connected: 2, .. })));
    // `u` is back; `t` is in the new branch, so it is not.
    assert!(c.mempool().contains(&u.id()));
    assert!(!c.mempool().contains(&t.id()));
    assert_eq!(c.mempool().len(), 1);
    // And it is minable on the new tip.
    let template = c.block_template(late(), key(3).public());
    assert_eq!(template.block.txs.len(), 2);
    assert_eq!(template.fees, 5);
}

#[test]
fn a_branch_that_fails_midway_falls_back_to_the_best_valid_chain() {
    let mut producer = new_chain(params());
    let g = producer.tip().hash;
    let a = extend(&mut producer, g, 3, 10, 1);
    let b2 = extend(&mut producer, a[0].hash(), 1, 11, 2);
    let bad = block(&producer, b2[0].hash(), Spec { extra_claim: 1, ..Spec::default() });
    producer.accept_block(late(), bad.clone()).unwrap();
    drain(&mut producer);
    // The producer found `bad` invalid when connecting it, but still knows its header.
    let b4 = block(&producer, bad.hash(), Spec::default());

    let mut c = new_chain(params());
    feed(&mut c, &a);
    drain(&mut c);
    c.accept_block(late(), b2[0].clone()).unwrap();
    // Send the child first: an orphan until `bad` arrives.
    assert_eq!(c.accept_block(late(), b4.clone()), Ok(Accepted::Orphan { missing: bad.hash() }));
    c.accept_block(late(), bad.clone()).unwrap();
    // b4 had the most work; connecting `bad` failed; back to a.
    assert_eq!(c.tip().hash, a[2].hash());
    assert_eq!(c.entry(&bad.hash()).unwrap().status, Status::Invalid);
    assert_eq!(c.entry(&b4.hash()).unwrap().status, Status::Invalid);
    assert_eq!(c.entry(&b2[0].hash()).unwrap().status, Status::Valid, "connected once, then disconnected");
    let outputs = drain(&mut c);
    assert!(
        outputs
            .iter()
            .any(|o| matches!(o, ChainOutput::Invalid { hash, reason: PowError::Ledger(_) } if *hash == bad.hash()))
    );
    assert!(!outputs.iter().any(|o| matches!(o, ChainOutput::Reorg { .. })), "the tip ends where it started");
    let mut producer2 = new_chain(params());
    feed(&mut producer2, &a);
    assert_eq!(c.ledger(), producer2.ledger());
}

#[test]
fn an_orphan_connects_when_its_parent_arrives() {
    let mut producer = new_chain(params());
    let g = producer.tip().hash;
    let blocks = extend(&mut producer, g, 3, 10, 9);
    let mut c = new_chain(params());
    assert_eq!(c.accept_block(late(), blocks[2].clone()), Ok(Accepted::Orphan { missing: blocks[1].hash() }));
    assert_eq!(c.accept_block(late(), blocks[1].clone()), Ok(Accepted::Orphan { missing: blocks[0].hash() }));
    assert_eq!(c.accept_block(late(), blocks[1].clone()), Ok(Accepted::Orphan { missing: blocks[0].hash() }));
    let outputs = drain(&mut c);
    assert!(
        matches!(outputs[..], [ChainOutput::RequestBlock(h1), ChainOutput::RequestBlock(h0)] if h1 == blocks[1].hash() && h0 == blocks[0].hash())
    );
    assert_eq!(c.orphans().0, 2);
    c.accept_block(late(), blocks[0].clone()).unwrap();
    assert_eq!(c.height(), 3);
    assert_eq!(c.orphans(), (0, 0));
}

#[test]
fn the_orphan_pool_is_bounded_in_count_and_bytes() {
    let mut producer = new_chain(params());
    let g = producer.tip().hash;
    let blocks = extend(&mut producer, g, 12, 10, 9);
    let mut c = new_chain(params()); // at most 8 orphans
    feed(&mut c, &blocks[1..]);
    assert_eq!(c.orphans().0, 8);
    // The oldest (blocks 1..=3) were evicted: block 0 connects alone.
    c.accept_block(late(), blocks[0].clone()).unwrap();
    assert_eq!(c.height(), 1);
    assert_eq!(c.orphans().0, 8);
    // Resending the evicted ones connects everything kept.
    feed(&mut c, &blocks[1..4]);
    assert_eq!(c.height(), 12);

    let mut p = params();
    p.max_orphan_bytes = 2 * blocks[1].size() + 10;
    let mut small = new_chain(p);
    feed(&mut small, &blocks[1..]);
    assert_eq!(small.orphans(), (2, 2 * blocks[1].size()));
}

#[test]
fn headers_first_then_blocks() {
    let mut producer = new_chain(params());
    let g = producer.tip().hash;
    let blocks = extend(&mut producer, g, 2, 10, 9);
    let mut c = new_chain(params());
    assert_eq!(c.accept_header(late(), blocks[1].header), Ok(Accepted::Orphan { missing: blocks[0].hash() }));
    assert_eq!(c.accept_header(late(), blocks[0].header), Ok(Accepted::New));
    assert_eq!(c.accept_header(late(), blocks[1].header), Ok(Accepted::New));
    assert_eq!(c.accept_header(late(), blocks[1].header), Ok(Accepted::Duplicate));
    let outputs = drain(&mut c);
    assert!(outputs.iter().any(|o| matches!(o, ChainOutput::RequestBlock(h) if *h == blocks[1].hash())));
    assert_eq!(c.entry(&blocks[1].hash()).unwrap().status, Status::Header);
    assert_eq!(c.height(), 0, "headers alone never move the tip");
    // The second block's data first: it waits for its parent's.
    c.accept_block(late(), blocks[1].clone()).unwrap();
    assert_eq!(c.height(), 0);
    c.accept_block(late(), blocks[0].clone()).unwrap();
    assert_eq!(c.height(), 2);
    // A header with a wrong bits is refused and remembered.
    let mut bad = unmined(&c, c.tip().hash, Spec::default());
    bad.header.bits = ballot_pow::CompactTarget(0x1f7f_ffff);
    ballot_pow::mine(&mut bad.header).unwrap();
    assert!(matches!(c.accept_header(late(), bad.header), Err(PowError::WrongBits { .. })));
    assert_eq!(c.accept_header(late(), bad.header), Err(PowError::KnownInvalid(bad.hash())));
}

#[test]
fn a_mined_template_is_accepted_and_empties_the_mempool() {
    let mut c = new_chain(params());
    let g = c.tip().hash;
    extend(&mut c, g, 2, 10, 9);
    for n in 0..5 {
        c.submit_transaction(pay(&key(0), key(1).public(), 100, 10 + n, n)).unwrap();
    }
    let template = c.block_template(late(), key(4).public());
    assert_eq!(template.height, 3);
    assert_eq!(template.fees, 10 + 11 + 12 + 13 + 14);
    assert_eq!(template.block.txs.len(), 6);
    let scanner = NonceScanner::new(&template.block.header).unwrap();
    let found = scanner.scan(0..=u32::MAX).unwrap();
    let mut b = template.block;
    b.header.nonce = found.nonce;
    assert_eq!(c.accept_block(late(), b), Ok(Accepted::New));
    assert_eq!(c.height(), 3);
    assert!(c.mempool().is_empty());
    assert_eq!(c.ledger().account(&key(4).public()).unwrap().balance, c.params().ledger.subsidy(3) + 60);
}

#[test]
fn restore_rebuilds_the_same_state() {
    let mut producer = new_chain(retarget_params());
    let g = producer.tip().hash;
    let main = extend(&mut producer, g, 9, 5, 1);
    let side = extend(&mut producer, main[3].hash(), 2, 7, 2);
    let mut stored: Vec<Block> = main.iter().chain(&side).cloned().collect();
    stored.sort_by_key(|b| producer.entry(&b.hash()).unwrap().height);
    let restored = Chain::restore(retarget_params(), MempoolConfig::default(), stored).unwrap();
    assert_eq!(restored.tip(), producer.tip());
    assert_eq!(restored.ledger(), producer.ledger());
    assert_eq!(restored.entry(&side[1].hash()).unwrap().status, Status::Data);
    assert_eq!(restored.locator()[0], producer.tip().hash);
    assert_eq!(*restored.locator().last().unwrap(), g);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Whatever the shape of the block tree and the order blocks arrive in, the tip
    /// ends at the most cumulative work, and the ledger is that branch's ledger.
    #[test]
    fn fork_choice_is_most_work_in_any_order(
        parents in prop::collection::vec(any::<prop::sample::Index>(), 1..14),
        fast in prop::collection::vec(any::<bool>(), 14),
        order in Just(()).prop_perturb(|_, mut rng| rng.random::<u64>()),
    ) {
        let mut p = retarget_params();
        p.max_orphans = 64;
        let mut producer = new_chain(p.clone());
        let mut all = vec![producer.tip().hash];
        let mut blocks = Vec::new();
        for (i, parent) in parents.iter().enumerate() {
            let parent = all[parent.index(all.len())];
            let dt = if fast[i] { 1 } else { 30 };
            let b = extend(&mut producer, parent, 1, dt, i as u64 + 1).remove(0);
            all.push(b.hash());
            blocks.push(b);
        }
        // A deterministic shuffle from the drawn seed.
        let mut rng = ballot_core::SeededRng::new(order);
        for i in (1..blocks.len()).rev() {
            let j = rng.gen_range(0..i as u64 + 1) as usize;
            blocks.swap(i, j);
        }
        let mut c = new_chain(p.clone());
        for b in &blocks {
            let _ = c.accept_block(late(), b.clone());
        }
        let best = blocks.iter().map(|b| producer.entry(&b.hash()).unwrap().chain_work).max().unwrap();
        prop_assert_eq!(c.tip().chain_work, best);
        prop_assert_eq!(c.orphans().0, 0);
        // Replaying only the tip's branch gives the same ledger.
        let mut branch = Vec::new();
        let mut h = c.tip().hash;
        while let Some(b) = c.block(&h).filter(|_| c.tip().height > 0 && h != all[0]) {
            branch.push((**b).clone());
            h = b.header.prev;
        }
        branch.reverse();
        let replay = Chain::restore(p, MempoolConfig::default(), branch).unwrap();
        prop_assert_eq!(replay.ledger(), c.ledger());
        prop_assert_eq!(replay.tip().hash, c.tip().hash);
    }
}
