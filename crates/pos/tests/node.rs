//! Validators on an in-memory network: finality with everyone online, with one of four
//! offline, none with two; an equivocating validator slashed everywhere; bad blocks and
//! votes refused.

use std::collections::BTreeSet;
use std::time::Duration;

use ballot_core::Instant;
use ballot_ledger::{Hash, Keypair};
use ballot_pos::{
    Block, BlockHeader, Checkpoint, PosError, PosMessage, PosNode, PosOutput, PosParams, ValidatorSet, Vote,
};

const CHAIN: u32 = 7;
const SLOT: Duration = Duration::from_secs(1);
const PER_EPOCH: u64 = 4;

fn params(n: u64) -> PosParams {
    PosParams {
        chain_id: CHAIN,
        slot_duration: SLOT,
        slots_per_epoch: PER_EPOCH,
        genesis_seed: Hash([42; 32]),
        validators: ValidatorSet::new((1..=n).map(|i| (Keypair::for_testing(i).public(), 32))),
    }
}

struct Net {
    nodes: Vec<PosNode>,
    offline: BTreeSet<usize>,
    now: Instant,
    /// (deliver at, from, to, message)
    wire: Vec<(Instant, usize, usize, PosMessage)>,
    delay: Duration,
    /// Every output, by node.
    seen: Vec<Vec<PosOutput>>,
}

impl Net {
    fn new(n: u64) -> Self {
        let nodes = (1..=n).map(|i| PosNode::new(params(n), Some(Keypair::for_testing(i)))).collect();
        Net {
            nodes,
            offline: BTreeSet::new(),
            now: Instant::ZERO,
            wire: Vec::new(),
            delay: Duration::from_millis(50),
            seen: vec![Vec::new(); n as usize],
        }
    }

    fn broadcast_from(&mut self, from: usize, m: PosMessage) {
        for to in 0..self.nodes.len() {
            if to != from && !self.offline.contains(&to) && !self.offline.contains(&from) {
                self.wire.push((self.now + self.delay, from, to, m.clone()));
            }
        }
    }

    fn drain(&mut self) {
        for i in 0..self.nodes.len() {
            while let Some(out) = self.nodes[i].poll_output() {
                match &out {
                    PosOutput::Broadcast(m) => self.broadcast_from(i, m.clone()),
                    PosOutput::Send { to, message } => {
                        let to = usize::try_from(*to).expect("small");
                        if !self.offline.contains(&to) && !self.offline.contains(&i) {
                            self.wire.push((self.now + self.delay, i, to, message.clone()));
                        }
                    }
                    _ => {}
                }
                self.seen[i].push(out);
            }
        }
    }

    fn run_until(&mut self, until: Instant) {
        loop {
            self.drain();
            let timer = (0..self.nodes.len())
                .filter(|i| !self.offline.contains(i))
                .filter_map(|i| self.nodes[i].poll_timeout())
                .min();
            let message = self.wire.iter().map(|w| w.0).min();
            let Some(next) = [timer, message].into_iter().flatten().min() else { break };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            let now = self.now;
            let (due, later): (Vec<_>, Vec<_>) = self.wire.drain(..).partition(|w| w.0 <= now);
            self.wire = later;
            for (_, from, to, m) in due {
                self.nodes[to].handle_message(now, from as u64, m);
            }
            for i in 0..self.nodes.len() {
                if !self.offline.contains(&i) && self.nodes[i].poll_timeout().is_some_and(|t| t <= now) {
                    self.nodes[i].handle_timeout(now);
                }
            }
        }
        self.now = until;
    }

    /// Runs `epochs` more epochs, and a quarter slot past their end so that the last
    /// slot's block has reached everyone.
    fn run_epochs(&mut self, epochs: u64) {
        let until = self.now + SLOT * u32::try_from(epochs * PER_EPOCH).expect("small");
        self.run_until(until + SLOT / 4);
        self.now = until;
    }

    fn online(&self) -> impl Iterator<Item = &PosNode> {
        self.nodes.iter().enumerate().filter(|(i, _)| !self.offline.contains(i)).map(|(_, n)| n)
    }
}

#[test]
fn four_validators_finalize_epoch_after_epoch_and_agree() {
    let mut net = Net::new(4);
    net.run_epochs(8);
    let finalized: BTreeSet<Checkpoint> = net.online().map(PosNode::finalized).collect();
    assert_eq!(finalized.len(), 1, "every node finalised the same checkpoint: {finalized:?}");
    let f = *finalized.first().expect("one");
    assert!(f.epoch >= 5, "finality follows the chain within two epochs: {f:?}");
    let heads: BTreeSet<(Hash, u64)> = net.online().map(PosNode::head).collect();
    assert_eq!(heads.len(), 1, "one head: {heads:?}");
    let (head, slot) = *heads.first().expect("one");
    assert!(slot >= 8 * PER_EPOCH - 2, "a block in (nearly) every slot: head at slot {slot}");
    assert!(net.nodes[0].descends(&f.root, &head), "the head descends from the finalised block");
    for (i, outs) in net.seen.iter().enumerate() {
        assert!(
            !outs.iter().any(|o| matches!(o, PosOutput::Refused(_) | PosOutput::Slashed(_))),
            "n{}: {outs:?}",
            i + 1
        );
    }
}

#[test]
fn finality_continues_with_a_quarter_of_the_stake_offline_and_stops_with_half() {
    let mut net = Net::new(4);
    net.offline.insert(3);
    net.run_epochs(8);
    let f = net.nodes[0].finalized();
    assert!(f.epoch >= 4, "three of four (3/4 ≥ 2/3) still finalise: {f:?}");

    let mut net = Net::new(4);
    net.offline.extend([2, 3]);
    net.run_epochs(8);
    for n in net.online() {
        assert_eq!(n.finalized().epoch, 0, "half the stake cannot finalise");
        assert!(n.head().1 >= 8, "blocks are still proposed in the online validators' slots");
    }
    // The other two come back: finality resumes.
    net.offline.clear();
    net.run_epochs(6);
    let f = net.nodes[0].finalized();
    assert!(f.epoch >= 10, "finality resumes once 2/3 are online: {f:?}");
    let finalized: BTreeSet<Checkpoint> = net.nodes.iter().map(PosNode::finalized).collect();
    assert_eq!(finalized.len(), 1, "the two that were away caught up (by asking for missing parents): {finalized:?}");
    let slashed = net.seen.iter().flatten().any(|o| matches!(o, PosOutput::Slashed(_)));
    assert!(!slashed, "no honest validator votes twice in an epoch, even while finality stalls");
}

#[test]
fn a_proposer_that_signs_two_blocks_for_a_slot_is_slashed() {
    let mut net = Net::new(4);
    net.run_epochs(1);
    let n = &net.nodes[0];
    let (head, head_slot) = n.head();
    let slot = head_slot + 1;
    let seed = Hash([42; 32]); // epoch 1 still uses the genesis seed (one epoch of look-ahead)
    let proposer = n.params().validators.proposer(slot, &seed).expect("a proposer");
    let key = (1..=4).map(Keypair::for_testing).find(|k| k.public() == proposer).expect("a validator");
    let block = |body: u8| {
        let votes = vec![];
        let evidence = vec![];
        let mut header = BlockHeader {
            slot,
            proposer,
            parent: head,
            body: Block::body_digest(&votes, &evidence, CHAIN),
            reveal: ballot_pos::Randao::reveal(&key, CHAIN, slot / PER_EPOCH),
        };
        if body > 0 {
            header.parent = net.nodes[0].finalized().root; // another parent: another block
        }
        Box::new(Block { header: header.sign(CHAIN, &key).expect("sign"), votes, evidence })
    };
    let (a, b) = (block(0), block(1));
    net.now = net.nodes[0].params().slot_start(slot);
    for to in 0..4 {
        net.nodes[to].handle_message(net.now, 9, PosMessage::Block(a.clone()));
        net.nodes[to].handle_message(net.now, 9, PosMessage::Block(b.clone()));
    }
    net.drain();
    for i in 0..4 {
        assert!(net.seen[i].contains(&PosOutput::Slashed(proposer)), "n{} saw the double proposal", i + 1);
        assert!(!net.nodes[i].validators().contains(&proposer));
    }
}

#[test]
fn a_restarted_validator_does_not_vote_again_in_an_epoch_it_voted_in() {
    let mut net = Net::new(4);
    net.run_until(Instant::ZERO + SLOT * 5 + SLOT / 4);
    let voted = net.nodes[0].last_attested();
    assert_eq!(voted.map(|r| r.target_epoch), Some(1), "voted in epoch 1");
    // Node 1 restarts with an empty memory but its slashing-protection record.
    let mut restarted = PosNode::new(params(4), Some(Keypair::for_testing(1)));
    restarted.restore_attested(voted);
    let votes_in = |node: &mut PosNode| {
        let mut n = 0;
        while let Some(o) = node.poll_output() {
            n += usize::from(matches!(o, PosOutput::Broadcast(PosMessage::Vote(v)) if v.vote.target.epoch == 1));
        }
        n
    };
    for slot in 5..8 {
        restarted.handle_timeout(Instant::ZERO + SLOT * slot + SLOT * 3 / 4);
    }
    assert_eq!(votes_in(&mut restarted), 0, "no second vote for epoch 1");
    let mut forgetful = PosNode::new(params(4), Some(Keypair::for_testing(1)));
    forgetful.handle_timeout(Instant::ZERO + SLOT * 6 + SLOT * 3 / 4);
    assert_eq!(votes_in(&mut forgetful), 1, "without the record it would have voted again");
}

#[test]
fn a_validator_that_votes_twice_for_one_epoch_is_slashed_everywhere() {
    let mut net = Net::new(4);
    net.run_epochs(2);
    // Validator 1 signs a second vote for the current epoch's target, on another block.
    let key = Keypair::for_testing(1);
    let n = &net.nodes[1];
    let epoch = n.params().epoch(n.params().slot_at(net.now));
    let double = Vote {
        slot: epoch * PER_EPOCH + 1,
        head: Hash([9; 32]),
        source: n.justified(),
        target: Checkpoint { epoch, root: Hash([9; 32]) },
    }
    .sign(CHAIN, &key)
    .expect("sign");
    net.broadcast_from(0, PosMessage::Vote(double));
    net.run_epochs(3);
    for (i, n) in net.nodes.iter().enumerate() {
        assert!(!n.validators().contains(&key.public()), "n{} removed validator 1", i + 1);
        assert!(net.seen[i].contains(&PosOutput::Slashed(key.public())), "n{} slashed validator 1", i + 1);
    }
    let in_a_block = net.seen.iter().flatten().any(|o| matches!(o, PosOutput::Accepted(b) if !b.evidence.is_empty()));
    assert!(in_a_block, "the evidence was included in a block");
    // Three of four remain, 3/4 of the genesis stake, which is 2/3 of... 96 of 128: finality goes on.
    let before = net.nodes[1].finalized();
    net.run_epochs(3);
    assert!(net.nodes[1].finalized().epoch > before.epoch, "finality goes on without the slashed validator");
}

#[test]
fn bad_blocks_and_votes_are_refused() {
    let mut node = PosNode::new(params(4), None);
    let now = Instant::ZERO + SLOT * 3;
    let refused = |node: &mut PosNode| {
        let mut r = Vec::new();
        while let Some(o) = node.poll_output() {
            if let PosOutput::Refused(e) = o {
                r.push(e);
            }
        }
        r
    };
    // A stranger's vote.
    let stranger = Keypair::for_testing(99);
    let genesis = Checkpoint { epoch: 0, root: params(4).genesis() };
    let vote =
        Vote { slot: 5, head: genesis.root, source: genesis, target: Checkpoint { epoch: 1, root: genesis.root } };
    node.handle_message(now, 0, PosMessage::Vote(vote.sign(CHAIN, &stranger).expect("sign")));
    assert_eq!(refused(&mut node), vec![PosError::UnknownValidator(stranger.public())]);

    // Blocks of slot 1 by each validator: only the slot's proposer's is accepted.
    let block = |key: &Keypair, slot: u64, tamper: bool| {
        let header = BlockHeader {
            slot,
            proposer: key.public(),
            parent: genesis.root,
            body: Block::body_digest(&[], &[], CHAIN),
            reveal: ballot_pos::Randao::reveal(key, CHAIN, slot / PER_EPOCH),
        };
        let mut b = Block { header: header.sign(CHAIN, key).expect("sign"), votes: vec![], evidence: vec![] };
        if tamper {
            b.votes.push(vote.sign(CHAIN, key).expect("sign"));
        }
        Box::new(b)
    };
    let keys: Vec<Keypair> = (1..=4).map(Keypair::for_testing).collect();
    let mut accepted = 0;
    for key in &keys {
        node.handle_message(now, 0, PosMessage::Block(block(key, 1, false)));
        let r = refused(&mut node);
        if r.is_empty() {
            accepted += 1;
        } else {
            assert!(matches!(r[..], [PosError::BadBlock { reason: "not the slot's proposer", .. }]), "{r:?}");
        }
    }
    assert_eq!(accepted, 1, "exactly one proposer per slot");
    let proposer = params(4).validators.proposer(2, &Hash([42; 32])).expect("a proposer");
    let key = keys.iter().find(|k| k.public() == proposer).expect("a validator");
    node.handle_message(now, 0, PosMessage::Block(block(key, 2, true)));
    assert!(matches!(
        refused(&mut node)[..],
        [PosError::BadBlock { reason: "the body does not match the header", .. }]
    ));
    node.handle_message(now, 0, PosMessage::Block(block(key, 9, false)));
    assert!(matches!(refused(&mut node)[..], [PosError::BadBlock { reason: "from a slot that has not begun", .. }]));
}
