//! The ledger's rules: each with its valid and its refused case, plus the apply/undo
//! round trip and the supply bound as properties.

use ballot_ledger::{
    Coinbase, Keypair, Ledger, LedgerError, LedgerParams, PublicKey, SignedTransfer, Transaction, Transfer,
};
use proptest::prelude::*;

const CHAIN: u32 = 7;

fn params() -> LedgerParams {
    LedgerParams::testing(CHAIN)
}

fn key(n: u64) -> Keypair {
    Keypair::for_testing(n)
}

fn coinbase(height: u64, to: PublicKey, amount: u64) -> Transaction {
    Transaction::Coinbase(Coinbase { height, to, amount })
}

fn pay(from: &Keypair, to: PublicKey, amount: u64, fee: u64, nonce: u64) -> SignedTransfer {
    Transfer { chain_id: CHAIN, from: from.public(), to, amount, fee, nonce, memo: vec![] }.sign(from).unwrap()
}

/// A ledger where `miner` earned the coinbases of blocks 0 and 1, so block 2 may spend
/// block 0's (maturity 2).
fn funded(miner: &Keypair) -> Ledger {
    let mut l = Ledger::new(params());
    for h in 0..2 {
        l.apply_block(h, &[coinbase(h, miner.public(), params().subsidy(h))]).unwrap();
    }
    l
}

/// Applies `block` at the next height and asserts it fails with `err`, leaving the
/// ledger exactly as it was.
fn refused(ledger: &mut Ledger, block: &[Transaction], err: LedgerError) {
    let before = ledger.clone();
    assert_eq!(ledger.apply_block(ledger.next_height(), block), Err(err));
    assert_eq!(*ledger, before, "a refused block must not change the ledger");
}

#[test]
fn transfer_moves_amount_and_fee() {
    let (m, a) = (key(1), key(2));
    let mut l = funded(&m);
    let supply = l.supply();
    let block = [coinbase(2, m.public(), params().subsidy(2) + 10), pay(&m, a.public(), 500, 10, 0).into()];
    let undo = l.apply_block(2, &block).unwrap();
    assert_eq!(l.account(&a.public()).unwrap().balance, 500);
    assert_eq!(l.account(&m.public()).unwrap().nonce, 1);
    assert_eq!(l.account(&m.public()).unwrap().balance, 3 * 1_000_000 - 500);
    assert_eq!(l.supply(), supply + params().subsidy(2));
    assert_eq!(undo.fees, 10);
    let delta = l.delta(&undo);
    assert_eq!(delta.height, Some(2));
    assert!(delta.accounts.contains(&(a.public(), l.account(&a.public()))));
}

#[test]
fn self_transfer_costs_only_the_fee() {
    let m = key(1);
    let mut l = funded(&m);
    let before = l.account(&m.public()).unwrap().balance;
    l.apply_block(2, &[coinbase(2, m.public(), 0), pay(&m, m.public(), 1000, 3, 0).into()]).unwrap();
    assert_eq!(l.account(&m.public()).unwrap().balance, before - 3);
}

#[test]
fn coinbase_may_claim_subsidy_plus_fees_and_no_more() {
    let (m, a) = (key(1), key(2));
    let mut l = funded(&m);
    let t = pay(&m, a.public(), 100, 25, 0);
    let allowed = params().subsidy(2) + 25;
    refused(
        &mut l,
        &[coinbase(2, m.public(), allowed + 1), t.clone().into()],
        LedgerError::CoinbaseOverspend { claimed: allowed + 1, allowed },
    );
    refused(
        &mut l,
        &[coinbase(2, m.public(), u64::MAX)],
        LedgerError::CoinbaseOverspend { claimed: u64::MAX, allowed: params().subsidy(2) },
    );
    // Claiming less burns the difference: the supply grows by the claim minus the fees.
    let supply = l.supply();
    l.apply_block(2, &[coinbase(2, m.public(), 5), t.into()]).unwrap();
    assert_eq!(l.supply(), supply + 5 - 25);
}

#[test]
fn coinbase_matures_after_the_configured_confirmations() {
    let (m, a) = (key(1), key(2));
    let mut l = Ledger::new(params());
    l.apply_block(0, &[coinbase(0, m.public(), 1_000_000)]).unwrap();
    // Height 1 - 0 < maturity 2: immature.
    let spend = pay(&m, a.public(), 10, 0, 0);
    refused(
        &mut l,
        &[coinbase(1, m.public(), 0), spend.clone().into()],
        LedgerError::ImmatureCoinbase { account: m.public(), needed: 10, spendable: 0, locked: 1_000_000 },
    );
    l.apply_block(1, &[coinbase(1, m.public(), 1_000_000)]).unwrap();
    // Height 2: block 0's coinbase is mature, block 1's is not.
    assert_eq!(l.spendable(&m.public(), 2), 1_000_000);
    let too_much = pay(&m, a.public(), 1_000_001, 0, 0);
    refused(
        &mut l,
        &[coinbase(2, m.public(), 0), too_much.into()],
        LedgerError::ImmatureCoinbase {
            account: m.public(),
            needed: 1_000_001,
            spendable: 1_000_000,
            locked: 1_000_000,
        },
    );
    l.apply_block(2, &[coinbase(2, m.public(), 0), spend.into()]).unwrap();
}

#[test]
fn double_spend_within_a_block_is_refused() {
    let (m, a, b) = (key(1), key(2), key(3));
    let mut l = funded(&m);
    let first = pay(&m, a.public(), 100, 0, 0);
    let second = pay(&m, b.public(), 100, 0, 0);
    refused(
        &mut l,
        &[coinbase(2, m.public(), 0), first.into(), second.into()],
        LedgerError::WrongNonce { account: m.public(), expected: 1, got: 0 },
    );
}

#[test]
fn replay_across_blocks_is_refused() {
    let (m, a) = (key(1), key(2));
    let mut l = funded(&m);
    let t = pay(&m, a.public(), 100, 0, 0);
    l.apply_block(2, &[coinbase(2, m.public(), 0), t.clone().into()]).unwrap();
    refused(
        &mut l,
        &[coinbase(3, m.public(), 0), t.into()],
        LedgerError::WrongNonce { account: m.public(), expected: 1, got: 0 },
    );
    // A gap is refused too.
    let gap = pay(&m, a.public(), 100, 0, 2);
    refused(
        &mut l,
        &[coinbase(3, m.public(), 0), gap.into()],
        LedgerError::WrongNonce { account: m.public(), expected: 1, got: 2 },
    );
}

#[test]
fn unsigned_forged_and_foreign_transfers_are_refused() {
    let (m, a) = (key(1), key(2));
    let mut l = funded(&m);
    let mut forged = pay(&m, a.public(), 100, 0, 0);
    forged.transfer.amount = 1000;
    refused(&mut l, &[coinbase(2, m.public(), 0), forged.into()], LedgerError::BadSignature);
    let mut unsigned = pay(&m, a.public(), 100, 0, 0);
    unsigned.signature.0 = [0; 64];
    refused(&mut l, &[coinbase(2, m.public(), 0), unsigned.into()], LedgerError::BadSignature);
    // Signed by someone else for the miner's account.
    let mut stolen = pay(&a, a.public(), 100, 0, 0);
    stolen.transfer.from = m.public();
    refused(&mut l, &[coinbase(2, m.public(), 0), stolen.into()], LedgerError::BadSignature);
    let foreign =
        Transfer { chain_id: CHAIN + 1, from: m.public(), to: a.public(), amount: 1, fee: 0, nonce: 0, memo: vec![] }
            .sign(&m)
            .unwrap();
    refused(
        &mut l,
        &[coinbase(2, m.public(), 0), foreign.into()],
        LedgerError::WrongChainId { expected: CHAIN, got: CHAIN + 1 },
    );
}

#[test]
fn accounts_amounts_and_sizes_are_checked() {
    let (m, a, nobody) = (key(1), key(2), key(3));
    let mut l = funded(&m);
    refused(
        &mut l,
        &[coinbase(2, m.public(), 0), pay(&nobody, a.public(), 1, 0, 0).into()],
        LedgerError::UnknownAccount(nobody.public()),
    );
    refused(
        &mut l,
        &[coinbase(2, m.public(), 0), pay(&m, a.public(), 2_000_000, 1, 0).into()],
        LedgerError::InsufficientFunds { account: m.public(), needed: 2_000_001, available: 1_000_000 },
    );
    refused(&mut l, &[coinbase(2, m.public(), 0), pay(&m, a.public(), 0, 1, 0).into()], LedgerError::ZeroAmount);
    refused(
        &mut l,
        &[coinbase(2, m.public(), 0), pay(&m, a.public(), u64::MAX, 1, 0).into()],
        LedgerError::AmountOverflow,
    );
    let big = Transfer {
        chain_id: CHAIN,
        from: m.public(),
        to: a.public(),
        amount: 1,
        fee: 0,
        nonce: 0,
        memo: vec![0; params().max_tx_size],
    }
    .sign(&m)
    .unwrap();
    let size = big.size();
    refused(
        &mut l,
        &[coinbase(2, m.public(), 0), big.into()],
        LedgerError::TxTooLarge { size, max: params().max_tx_size },
    );
}

#[test]
fn block_structure_is_checked() {
    let (m, a) = (key(1), key(2));
    let mut l = funded(&m);
    let t: Transaction = pay(&m, a.public(), 1, 0, 0).into();
    refused(&mut l, &[], LedgerError::MissingCoinbase);
    refused(&mut l, &[t.clone(), coinbase(2, m.public(), 0)], LedgerError::MissingCoinbase);
    refused(&mut l, &[coinbase(2, m.public(), 0), coinbase(2, m.public(), 0)], LedgerError::ExtraCoinbase);
    refused(&mut l, &[coinbase(3, m.public(), 0)], LedgerError::WrongCoinbaseHeight { expected: 2, got: 3 });
    let before = l.clone();
    assert_eq!(l.apply_block(5, &[coinbase(5, m.public(), 0)]), Err(LedgerError::WrongHeight { expected: 2, got: 5 }));
    assert_eq!(l, before);
}

#[test]
fn a_later_failure_rolls_back_earlier_transfers() {
    let (m, a) = (key(1), key(2));
    let mut l = funded(&m);
    let good = pay(&m, a.public(), 100, 1, 0);
    let bad = pay(&a, m.public(), 1000, 0, 0); // a has only 100
    refused(
        &mut l,
        &[coinbase(2, m.public(), 0), good.into(), bad.into()],
        LedgerError::InsufficientFunds { account: a.public(), needed: 1000, available: 100 },
    );
}

#[test]
fn undo_must_match_the_tip_and_snapshots_round_trip() {
    let m = key(1);
    let mut l = funded(&m);
    let undo2 = l.apply_block(2, &[coinbase(2, m.public(), 1)]).unwrap();
    let undo3 = l.apply_block(3, &[coinbase(3, m.public(), 1)]).unwrap();
    let before = l.clone();
    assert_eq!(l.undo_block(&undo2), Err(LedgerError::UndoMismatch { tip: Some(3), got: 2 }));
    assert_eq!(l, before);
    let bytes = postcard::to_allocvec(&l).unwrap();
    assert_eq!(postcard::from_bytes::<Ledger>(&bytes).unwrap(), l);
    l.undo_block(&undo3).unwrap();
    l.undo_block(&undo2).unwrap();
    assert_eq!(l, funded(&m));
}

/// One randomly generated block: who pays whom how much, with which fee and nonce
/// offset, plus how much the coinbase claims beyond the subsidy and fees.
#[derive(Clone, Debug)]
struct BlockPlan {
    transfers: Vec<(usize, usize, u64, u64, i8)>,
    miner: usize,
    extra_claim: i64,
}

fn block_plan() -> impl Strategy<Value = BlockPlan> {
    (
        prop::collection::vec(
            (0..4usize, 0..5usize, 0..400_000u64, 0..50u64, prop_oneof![8 => Just(0i8), 1 => -1i8..=1]),
            0..6,
        ),
        0..4usize,
        prop_oneof![6 => Just(0i64), 1 => -100i64..0, 1 => 1i64..100],
    )
        .prop_map(|(transfers, miner, extra_claim)| BlockPlan { transfers, miner, extra_claim })
}

/// Builds the block a plan describes against the ledger's current nonces.
fn build(ledger: &Ledger, keys: &[Keypair], plan: &BlockPlan) -> Vec<Transaction> {
    let height = ledger.next_height();
    let mut nonces: Vec<u64> = keys.iter().map(|k| ledger.account(&k.public()).map_or(0, |a| a.nonce)).collect();
    let mut txs = Vec::new();
    let mut fees = 0u64;
    for &(from, to, amount, fee, skew) in &plan.transfers {
        let nonce = nonces[from].saturating_add_signed(i64::from(skew));
        txs.push(Transaction::from(pay(&keys[from], keys[to].public(), amount, fee, nonce)));
        nonces[from] += 1;
        fees += fee;
    }
    let claim = (params().subsidy(height) + fees).saturating_add_signed(plan.extra_claim);
    txs.insert(0, coinbase(height, keys[plan.miner].public(), claim));
    txs
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Applying a sequence of random blocks (many of them invalid) and undoing the
    /// applied ones in reverse restores every intermediate state exactly; the supply
    /// never exceeds the schedule.
    #[test]
    fn apply_then_undo_round_trips(plans in prop::collection::vec(block_plan(), 1..12)) {
        let keys: Vec<Keypair> = (1..=5).map(key).collect();
        // Keys 0..4 each own a mature coinbase, so most generated transfers are valid.
        let mut l = Ledger::new(params());
        for h in 0..6 {
            let to = keys[usize::try_from(h).unwrap() % 4].public();
            l.apply_block(h, &[coinbase(h, to, params().subsidy(h))]).unwrap();
        }
        let start = l.clone();
        let mut history = vec![];
        for plan in &plans {
            let block = build(&l, &keys, plan);
            let before = l.clone();
            let height = l.next_height();
            match l.apply_block(height, &block) {
                Ok(undo) => history.push((before, undo)),
                Err(_) => prop_assert_eq!(&l, &before),
            }
            if let Some(tip) = l.tip_height() {
                prop_assert!(l.supply() <= params().max_supply_through(tip));
            }
            let total: u64 = l.accounts().map(|(_, a)| a.balance).sum();
            prop_assert_eq!(total, l.supply(), "balances must add up to the supply");
        }
        while let Some((before, undo)) = history.pop() {
            l.undo_block(&undo).unwrap();
            prop_assert_eq!(&l, &before);
        }
        prop_assert_eq!(l, start);
    }
}
