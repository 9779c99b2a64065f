//! The mempool: admission, fee-rate order, nonce order, eviction, double spends,
//! replacement, block removal and re-admission.

use ballot_ledger::{
    Coinbase, Keypair, Ledger, LedgerError, LedgerParams, Mempool, MempoolConfig, MempoolError, PublicKey,
    SignedTransfer, Transaction, Transfer,
};

const CHAIN: u32 = 7;

fn key(n: u64) -> Keypair {
    Keypair::for_testing(n)
}

fn pay(from: &Keypair, to: PublicKey, amount: u64, fee: u64, nonce: u64) -> SignedTransfer {
    Transfer { chain_id: CHAIN, from: from.public(), to, amount, fee, nonce, memo: vec![] }.sign(from).unwrap()
}

/// A ledger at height 2 where accounts 1..=3 each own one mature coinbase of 1,000,000.
fn ledger() -> Ledger {
    let params = LedgerParams::testing(CHAIN);
    let mut l = Ledger::new(params.clone());
    for h in 0..3 {
        let cb = Transaction::Coinbase(Coinbase { height: h, to: key(h + 1).public(), amount: params.subsidy(h) });
        l.apply_block(h, &[cb]).unwrap();
    }
    // Block 3 lets block 1's coinbase mature; block 4 block 2's.
    for h in 3..5 {
        l.apply_block(h, &[Transaction::Coinbase(Coinbase { height: h, to: key(9).public(), amount: 0 })]).unwrap();
    }
    l
}

fn pool() -> Mempool {
    Mempool::new(MempoolConfig::default())
}

#[test]
fn select_orders_by_fee_rate_and_respects_nonces() {
    let l = ledger();
    let mut p = pool();
    let (a, b, c) = (key(1), key(2), key(3));
    let a0 = pay(&a, c.public(), 10, 5, 0);
    let a1 = pay(&a, c.public(), 10, 500, 1); // high fee, but after a0
    let b0 = pay(&b, c.public(), 10, 100, 0);
    let c0 = pay(&c, a.public(), 10, 50, 0);
    // Arrive out of nonce order: a1 before a0.
    for t in [&a1, &b0, &c0, &a0] {
        p.insert(t.clone(), &l).unwrap();
    }
    assert_eq!(p.select(&l, usize::MAX), vec![b0.clone(), c0.clone(), a0.clone(), a1.clone()]);
    // Room for two: the two best that are minable now.
    assert_eq!(p.select(&l, 2 * b0.size()), vec![b0, c0]);
    // A gap (a0 missing) keeps a1 out.
    p.remove(&a0.id());
    assert!(!p.select(&l, usize::MAX).contains(&a1));
}

#[test]
fn select_skips_what_the_sender_cannot_afford() {
    let l = ledger();
    let mut p = pool();
    let (a, c) = (key(1), key(3));
    let a0 = pay(&a, c.public(), 600_000, 1, 0);
    p.insert(a0.clone(), &l).unwrap();
    // Admission counts pending transfers: a1 would overdraw.
    assert_eq!(
        p.insert(pay(&a, c.public(), 600_000, 1, 1), &l),
        Err(MempoolError::Invalid(LedgerError::InsufficientFunds {
            account: a.public(),
            needed: 1_200_002,
            available: 1_000_000
        }))
    );
    assert_eq!(p.select(&l, usize::MAX), vec![a0]);
}

#[test]
fn double_spend_is_refused_unless_it_pays_enough_more() {
    let l = ledger();
    let mut p = pool();
    let (a, b, c) = (key(1), key(2), key(3));
    let first = pay(&a, b.public(), 10, 100, 0);
    p.insert(first.clone(), &l).unwrap();
    assert_eq!(p.insert(first.clone(), &l), Err(MempoolError::AlreadyKnown(first.id())));
    let cheap = pay(&a, c.public(), 10, 105, 0); // +5 %: not enough
    assert_eq!(
        p.insert(cheap, &l),
        Err(MempoolError::ReplacementUnderpriced { account: a.public(), nonce: 0, old: first.id() })
    );
    let rich = pay(&a, c.public(), 10, 110, 0);
    p.insert(rich.clone(), &l).unwrap();
    assert!(!p.contains(&first.id()));
    assert_eq!(p.len(), 1);
    assert_eq!(p.select(&l, usize::MAX), vec![rich]);
}

#[test]
fn admission_refuses_invalid_and_policy_violations() {
    let l = ledger();
    let (a, b, nobody) = (key(1), key(2), key(50));
    let mut p = Mempool::new(MempoolConfig { min_fee_per_kb: 1000, max_per_sender: 3, ..MempoolConfig::default() });
    let mut bad_sig = pay(&a, b.public(), 10, 1000, 0);
    bad_sig.transfer.amount = 11;
    assert_eq!(p.insert(bad_sig, &l), Err(MempoolError::Invalid(LedgerError::BadSignature)));
    assert_eq!(
        p.insert(pay(&nobody, b.public(), 10, 1000, 0), &l),
        Err(MempoolError::Invalid(LedgerError::UnknownAccount(nobody.public())))
    );
    let low = pay(&a, b.public(), 10, 100, 0);
    assert!(matches!(p.insert(low, &l), Err(MempoolError::FeeTooLow { .. })));
    assert_eq!(
        p.insert(pay(&a, b.public(), 10, 1000, 3), &l),
        Err(MempoolError::TooManyPending { account: a.public(), max: 3 })
    );
    // Nonces 0..3 are fine, even out of order.
    p.insert(pay(&a, b.public(), 10, 1000, 2), &l).unwrap();
    p.insert(pay(&a, b.public(), 10, 1000, 0), &l).unwrap();
    assert_eq!(p.len(), 2);
}

#[test]
fn a_full_pool_evicts_the_lowest_fee_rate_with_its_descendants() {
    let l = ledger();
    let (a, b, c) = (key(1), key(2), key(3));
    let size = pay(&a, c.public(), 1, 1, 0).size();
    let mut p = Mempool::new(MempoolConfig { max_bytes: 3 * size, ..MempoolConfig::default() });
    let a0 = pay(&a, c.public(), 1, 10, 0);
    let a1 = pay(&a, c.public(), 1, 300, 1);
    let b0 = pay(&b, c.public(), 1, 20, 0);
    for t in [&a0, &a1, &b0] {
        p.insert(t.clone(), &l).unwrap();
    }
    assert_eq!(p.bytes(), 3 * size);
    // Not above the lowest (10): refused, nothing evicted.
    assert_eq!(p.insert(pay(&c, a.public(), 1, 10, 0), &l), Err(MempoolError::Full { max_bytes: 3 * size }));
    assert_eq!(p.len(), 3);
    // Above it: a0 goes, and a1 with it (it could never be mined without a0).
    let c0 = pay(&c, a.public(), 1, 15, 0);
    p.insert(c0.clone(), &l).unwrap();
    assert!(!p.contains(&a0.id()) && !p.contains(&a1.id()));
    assert!(p.contains(&b0.id()) && p.contains(&c0.id()));
    assert!(p.bytes() <= 3 * size);
}

#[test]
fn connected_blocks_remove_and_disconnected_blocks_readmit() {
    let mut l = ledger();
    let mut p = pool();
    let (a, b, c) = (key(1), key(2), key(3));
    let a0 = pay(&a, c.public(), 10, 5, 0);
    let a0_conflict = pay(&a, b.public(), 10, 5, 0); // another node's double spend, mined
    let b0 = pay(&b, c.public(), 10, 5, 0);
    p.insert(a0.clone(), &l).unwrap();
    p.insert(b0.clone(), &l).unwrap();

    let height = l.next_height();
    let block: Vec<Transaction> = vec![
        Transaction::Coinbase(Coinbase { height, to: c.public(), amount: 0 }),
        a0_conflict.clone().into(),
        b0.clone().into(),
    ];
    let undo = l.apply_block(height, &block).unwrap();
    assert_eq!(p.remove_confirmed(&block, &l), 2, "b0 was included and a0 conflicts with a mined transfer");
    assert!(p.is_empty());

    // The block is disconnected: its transfers come back, and a0 is valid again too.
    l.undo_block(&undo).unwrap();
    let back = block.iter().filter_map(Transaction::as_transfer).cloned();
    assert_eq!(p.readmit(back, &l), 2);
    assert!(p.contains(&a0_conflict.id()) && p.contains(&b0.id()));
    assert_eq!(p.prune_stale(&l), 0);
}
