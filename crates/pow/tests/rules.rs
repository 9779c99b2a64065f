//! Every consensus rule of a block, each with its valid case accepted and its invalid
//! case refused.

mod common;

use ballot_ledger::{LedgerError, Transaction};
use ballot_pow::{
    Accepted, Block, ChainOutput, CompactError, CompactTarget, PowError, Status, U256, block_work, mine, next_target,
};
use common::*;

/// A chain where key 0's genesis coinbase is mature (height 2).
fn funded() -> ballot_pow::Chain {
    let mut c = new_chain(params());
    let g = c.tip().hash;
    let blocks = extend(&mut c, g, 2, 10, 9);
    assert_eq!(blocks.len(), 2);
    drain(&mut c);
    c
}

/// Submits `b` and asserts it is refused with `err` and leaves the tip alone.
fn refused(c: &mut ballot_pow::Chain, b: Block, err: PowError) {
    let tip = c.tip().hash;
    assert_eq!(c.accept_block(late(), b), Err(err));
    assert_eq!(c.tip().hash, tip);
}

/// Submits `b`, which passes the header and block checks but breaks a ledger rule
/// found when connecting: reported as an `Invalid` output, the block marked invalid.
fn invalid_on_connect(c: &mut ballot_pow::Chain, b: Block, err: LedgerError) {
    let tip = c.tip().hash;
    let hash = b.hash();
    assert_eq!(c.accept_block(late(), b), Ok(Accepted::New));
    assert_eq!(c.tip().hash, tip);
    assert_eq!(c.entry(&hash).unwrap().status, Status::Invalid);
    let outputs = drain(c);
    assert!(
        outputs.iter().any(
            |o| matches!(o, ChainOutput::Invalid { hash: h, reason: PowError::Ledger(e) } if *h == hash && *e == err)
        ),
        "{outputs:?}"
    );
    assert!(!outputs.iter().any(|o| matches!(o, ChainOutput::Connected(_) | ChainOutput::NewTip { .. })));
}

#[test]
fn valid_block_connects_with_everything_the_store_needs() {
    let mut c = funded();
    let t = pay(&key(0), key(1).public(), 1000, 7, 0);
    let b = block(&c, c.tip().hash, Spec { transfers: vec![t.clone()], ..Spec::default() });
    assert_eq!(c.accept_block(late(), b.clone()), Ok(Accepted::New));
    assert_eq!(c.accept_block(late(), b.clone()), Ok(Accepted::Duplicate));
    let outputs = drain(&mut c);
    let ChainOutput::Connected(conn) = &outputs[0] else { panic!("{outputs:?}") };
    assert_eq!(*conn.block, b);
    assert_eq!(conn.entry.status, Status::Valid);
    assert_eq!(conn.entry.height, 3);
    assert_eq!(conn.undo.fees, 7);
    assert!(conn.delta.accounts.iter().any(|(k, a)| *k == key(1).public() && a.unwrap().balance == 1000));
    assert!(matches!(outputs[1], ChainOutput::NewTip { height: 3, .. }));
    assert_eq!(c.ledger().account(&key(1).public()).unwrap().balance, 1000);
}

#[test]
fn bad_proof_of_work_is_refused() {
    let mut c = funded();
    let mut b = block(&c, c.tip().hash, Spec::default());
    let target = b.header.bits.to_target().unwrap();
    while U256::from_le_bytes(b.hash().as_bytes()) <= target {
        b.header.nonce = b.header.nonce.wrapping_add(1);
    }
    let (hash, bits) = (b.hash(), b.header.bits);
    refused(&mut c, b, PowError::HighHash { hash, bits });
    // A target easier than the limit is refused whatever the hash.
    let mut easy = unmined(&c, c.tip().hash, Spec::default());
    easy.header.bits = CompactTarget(0x2100_ffff);
    mine(&mut easy.header).unwrap();
    refused(&mut c, easy, PowError::BadTarget(CompactError::AbovePowLimit(CompactTarget(0x2100_ffff))));
    // Negative and overflowing encodings too.
    for bits in [CompactTarget(0x0480_0001), CompactTarget(0xff12_3456)] {
        let mut b = unmined(&c, c.tip().hash, Spec::default());
        b.header.bits = bits;
        assert!(matches!(c.accept_block(late(), b), Err(PowError::BadTarget(_))));
    }
}

#[test]
fn bits_must_be_the_expected_ones_for_the_height() {
    let mut c = funded();
    // A harder target than required still breaks the rule.
    let mut b = unmined(&c, c.tip().hash, Spec::default());
    b.header.bits = CompactTarget(0x1f7f_ffff);
    assert!(mine(&mut b.header).unwrap());
    let hash = b.hash();
    refused(&mut c, b, PowError::WrongBits { expected: CompactTarget(0x2000_ffff), got: CompactTarget(0x1f7f_ffff) });
    assert_eq!(c.entry(&hash).unwrap().status, Status::Invalid);
    assert_eq!(c.accept_block(late(), block(&c, c.tip().hash, Spec { dt: 11, ..Spec::default() })), Ok(Accepted::New));
}

#[test]
fn retarget_follows_the_window_and_is_bounded() {
    let mut p = params();
    p.retarget_interval = 4;
    let limit = p.pow_limit;
    let span = p.target_timespan();
    // Fast blocks: a second apart. At height 4 the target drops by the maximum factor.
    let mut c = new_chain(p.clone());
    let g = c.tip().hash;
    let fast = extend(&mut c, g, 5, 1, 9);
    let at4 = c.entry(&fast[3].hash()).unwrap().clone();
    assert_eq!(at4.header.bits, next_target(CompactTarget::from_target(limit), 3, span, 4, &limit));
    assert_eq!(
        at4.header.bits.to_target().unwrap(),
        CompactTarget::from_target(limit.mul_div_u64(1, 4)).to_target().unwrap()
    );
    assert_eq!(c.entry(&fast[4].hash()).unwrap().header.bits, at4.header.bits, "no retarget between windows");
    assert!(block_work(at4.header.bits) > block_work(fast[2].header.bits));
    // The old bits at a retarget height are refused.
    let mut stale = unmined(&c, fast[2].hash(), Spec { dt: 1, miner: 3, ..Spec::default() });
    stale.header.bits = fast[2].header.bits;
    mine(&mut stale.header).unwrap();
    assert_eq!(
        c.accept_block(late(), stale),
        Err(PowError::WrongBits { expected: at4.header.bits, got: fast[2].header.bits })
    );
    // Slow blocks: the target would rise above the limit, and is held at it.
    let mut slow_chain = new_chain(p);
    let g = slow_chain.tip().hash;
    let slow = extend(&mut slow_chain, g, 5, 1000, 9);
    assert_eq!(slow[3].header.bits, CompactTarget::from_target(limit));
}

#[test]
fn timestamps_must_pass_the_median_and_not_run_ahead() {
    let mut c = new_chain(params());
    let g = c.tip().hash;
    let blocks = extend(&mut c, g, 11, 10, 9);
    let tip = c.tip().hash;
    let mtp = c.median_time_past(&tip);
    assert_eq!(mtp, blocks[5].header.time, "median of the last eleven");
    let dt = i64::from(mtp) - i64::from(c.tip().header.time);
    // At the median: refused; one second later: accepted.
    let old = block(&c, tip, Spec { dt, ..Spec::default() });
    refused(&mut c, old, PowError::TimeTooOld { time: mtp, median_time_past: mtp });
    let ok = block(&c, tip, Spec { dt: dt + 1, ..Spec::default() });
    assert_eq!(c.accept_block(late(), ok), Ok(Accepted::New));

    // Too far ahead of now: refused, but not marked invalid; accepted once the clock
    // has caught up.
    let now = c.tip().header.time;
    let ahead = block(&c, c.tip().hash, Spec { dt: 2 * 60 * 60 + 1, ..Spec::default() });
    let hash = ahead.hash();
    assert_eq!(
        c.accept_block(at(now), ahead.clone()),
        Err(PowError::TimeTooNew { time: now + 7201, max: u64::from(now) + 7200 })
    );
    assert!(c.entry(&hash).is_none());
    assert_eq!(c.accept_block(at(now + 1), ahead), Ok(Accepted::New));
}

#[test]
fn merkle_root_must_match_the_transactions() {
    let mut c = funded();
    let t = pay(&key(0), key(1).public(), 1000, 0, 0);
    let good = block(&c, c.tip().hash, Spec { transfers: vec![t], ..Spec::default() });
    let mut bad = good.clone();
    bad.txs.truncate(1);
    let computed = bad.merkle_root().0;
    refused(&mut c, bad, PowError::BadMerkleRoot { computed, got: good.header.merkle_root });
    // The header was not at fault: the right transactions are accepted.
    assert_eq!(c.accept_block(late(), good), Ok(Accepted::New));
}

#[test]
fn duplicated_merkle_leaves_are_refused_without_condemning_the_header() {
    let mut c = funded();
    let t0 = pay(&key(0), key(1).public(), 1000, 0, 0);
    let t1 = pay(&key(0), key(1).public(), 1000, 0, 1);
    // Three transactions: the last pairs with itself in the tree.
    let good = block(&c, c.tip().hash, Spec { transfers: vec![t0, t1.clone()], ..Spec::default() });
    let mut evil = good.clone();
    evil.txs.push(Transaction::Transfer(t1));
    assert_eq!(evil.merkle_root().0, good.header.merkle_root, "same root, same header hash");
    assert_eq!(evil.hash(), good.hash());
    refused(&mut c, evil, PowError::MutatedMerkle);
    assert_eq!(c.accept_block(late(), good), Ok(Accepted::New));
    assert_eq!(c.height(), 3);
}

#[test]
fn oversized_blocks_are_refused() {
    let mut p = params();
    let mut c = new_chain(p.clone());
    let g = c.tip().hash;
    extend(&mut c, g, 2, 10, 9);
    let transfers: Vec<_> = (0..4).map(|n| pay(&key(0), key(1).public(), 10, 0, n)).collect();
    let b = block(&c, c.tip().hash, Spec { transfers, ..Spec::default() });
    let size = b.size();
    // The same chain with a smaller limit.
    p.max_block_size = size - 1;
    let mut small = new_chain(p);
    let g = small.tip().hash;
    let prefix = extend(&mut small, g, 2, 10, 9);
    assert_eq!(prefix.last().unwrap().hash(), c.tip().hash);
    refused(&mut small, b.clone(), PowError::Oversized { size, max: size - 1 });
    assert_eq!(c.accept_block(late(), b), Ok(Accepted::New));
}

#[test]
fn coinbase_must_come_first_and_once() {
    let mut c = funded();
    let mut none =
        unmined(&c, c.tip().hash, Spec { transfers: vec![pay(&key(0), key(1).public(), 5, 0, 0)], ..Spec::default() });
    none.txs.remove(0);
    none.header.merkle_root = none.merkle_root().0;
    mine(&mut none.header).unwrap();
    refused(&mut c, none, PowError::Ledger(LedgerError::MissingCoinbase));
    let mut two = unmined(&c, c.tip().hash, Spec::default());
    two.txs.push(two.txs[0].clone());
    if let Transaction::Coinbase(cb) = &mut two.txs[1] {
        cb.amount = 1;
    }
    two.header.merkle_root = two.merkle_root().0;
    mine(&mut two.header).unwrap();
    refused(&mut c, two, PowError::Ledger(LedgerError::ExtraCoinbase));
}

#[test]
fn overspending_coinbase_is_invalid() {
    let mut c = funded();
    let t = pay(&key(0), key(1).public(), 1000, 50, 0);
    let b = block(&c, c.tip().hash, Spec { transfers: vec![t], extra_claim: 1, ..Spec::default() });
    let allowed = c.params().ledger.subsidy(3) + 50;
    invalid_on_connect(&mut c, b, LedgerError::CoinbaseOverspend { claimed: allowed + 1, allowed });
}

#[test]
fn immature_coinbase_cannot_be_spent() {
    let mut c = new_chain(params());
    let g = c.tip().hash;
    extend(&mut c, g, 1, 10, 9);
    // Height 2 may spend genesis' coinbase (maturity 2), not block 1's.
    let spend_b1 = pay(&key(9), key(1).public(), 10, 0, 0);
    let b = block(&c, c.tip().hash, Spec { transfers: vec![spend_b1], ..Spec::default() });
    let locked = c.params().ledger.subsidy(1);
    invalid_on_connect(
        &mut c,
        b,
        LedgerError::ImmatureCoinbase { account: key(9).public(), needed: 10, spendable: 0, locked },
    );
    let spend_genesis = pay(&key(0), key(1).public(), 10, 0, 0);
    let ok = block(&c, c.tip().hash, Spec { transfers: vec![spend_genesis], dt: 11, ..Spec::default() });
    assert_eq!(c.accept_block(late(), ok), Ok(Accepted::New));
    assert_eq!(c.height(), 2);
}

#[test]
fn unsigned_and_wrongly_signed_transfers_are_invalid() {
    let mut c = funded();
    let mut unsigned = pay(&key(0), key(1).public(), 10, 0, 0);
    unsigned.signature.0 = [0; 64];
    let b = block(&c, c.tip().hash, Spec { transfers: vec![unsigned], ..Spec::default() });
    invalid_on_connect(&mut c, b, LedgerError::BadSignature);
    // Signed by key 1 but spending key 0's account.
    let mut stolen = pay(&key(1), key(1).public(), 10, 0, 0);
    stolen.transfer.from = key(0).public();
    let b = block(&c, c.tip().hash, Spec { transfers: vec![stolen], dt: 12, ..Spec::default() });
    invalid_on_connect(&mut c, b, LedgerError::BadSignature);
}

#[test]
fn double_spends_within_and_across_blocks_are_invalid() {
    let mut c = funded();
    let a = pay(&key(0), key(1).public(), 10, 0, 0);
    let b = pay(&key(0), key(2).public(), 10, 0, 0);
    let within = block(&c, c.tip().hash, Spec { transfers: vec![a.clone(), b.clone()], ..Spec::default() });
    let wrong_nonce = LedgerError::WrongNonce { account: key(0).public(), expected: 1, got: 0 };
    invalid_on_connect(&mut c, within, wrong_nonce.clone());

    let first = block(&c, c.tip().hash, Spec { transfers: vec![a], dt: 11, ..Spec::default() });
    assert_eq!(c.accept_block(late(), first), Ok(Accepted::New));
    drain(&mut c);
    let replay = block(&c, c.tip().hash, Spec { transfers: vec![b], ..Spec::default() });
    invalid_on_connect(&mut c, replay, wrong_nonce);
}

#[test]
fn descendants_of_invalid_blocks_are_invalid() {
    let mut c = funded();
    let bad = block(&c, c.tip().hash, Spec { extra_claim: 1, ..Spec::default() });
    let bad_hash = bad.hash();
    c.accept_block(late(), bad.clone()).unwrap();
    assert_eq!(c.accept_block(late(), bad), Err(PowError::KnownInvalid(bad_hash)));
    // A child built on it (the producer below knows the bad block as a header only).
    let mut producer = funded();
    producer.accept_header(late(), c.entry(&bad_hash).unwrap().header).unwrap();
    let child = block(&producer, bad_hash, Spec::default());
    assert_eq!(c.accept_block(late(), child), Err(PowError::InvalidAncestor(bad_hash)));
}

#[test]
fn a_second_genesis_is_refused() {
    let mut c = new_chain(params());
    let mut other = Block::genesis(&c.params().ledger, key(5).public(), T0 + 1, CompactTarget(0x2000_ffff));
    mine(&mut other.header).unwrap();
    assert_eq!(c.accept_block(late(), other), Err(PowError::UnexpectedGenesis));
}

#[test]
fn blocks_and_index_entries_round_trip_through_postcard() {
    let mut c = funded();
    let t = pay(&key(0), key(1).public(), 10, 1, 0);
    let b = block(&c, c.tip().hash, Spec { transfers: vec![t], ..Spec::default() });
    c.accept_block(late(), b.clone()).unwrap();
    let bytes = postcard::to_allocvec(&b).unwrap();
    assert_eq!(postcard::from_bytes::<Block>(&bytes).unwrap(), b);
    let entry = c.tip().clone();
    let bytes = postcard::to_allocvec(&entry).unwrap();
    assert_eq!(postcard::from_bytes::<ballot_pow::IndexEntry>(&bytes).unwrap(), entry);
    let ChainOutput::Connected(conn) = drain(&mut c).remove(0) else { panic!("expected Connected") };
    let bytes = postcard::to_allocvec(&conn.undo).unwrap();
    assert_eq!(postcard::from_bytes::<ballot_ledger::BlockUndo>(&bytes).unwrap(), conn.undo);
}
