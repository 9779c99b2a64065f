//! A validator (or observer) node of a Proof-of-Stake chain, sans-IO: slots from `now`,
//! proposals in its slots, one attestation per slot, block and vote validation, fork
//! choice, finality and slashing-evidence detection. The host delivers messages and
//! timeouts and carries out the outputs (broadcasts, storage, metrics).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;

use ballot_core::Instant;
use ballot_ledger::{Hash, Keypair, PublicKey, sha256d};
use serde::{Deserialize, Serialize};

use crate::{
    BlockHeader, Checkpoint, Evidence, Finality, ForkChoice, PosError, ProposerEvidence, Randao, SignedHeader,
    SignedVote, ValidatorSet, Vote, offence,
};

/// The rules of a chain every node agrees on (from the genesis file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PosParams {
    /// The chain id signed into every vote, header and reveal.
    pub chain_id: u32,
    /// How long a slot lasts.
    pub slot_duration: Duration,
    /// Slots per epoch (the checkpoint interval).
    pub slots_per_epoch: u64,
    /// The RANDAO value at genesis.
    pub genesis_seed: Hash,
    /// The validators at genesis and their stakes.
    pub validators: ValidatorSet,
}

impl PosParams {
    /// The epoch of `slot`.
    #[must_use]
    pub fn epoch(&self, slot: u64) -> u64 {
        slot / self.slots_per_epoch.max(1)
    }

    /// The hash of the genesis block, from the chain id and the genesis seed.
    #[must_use]
    pub fn genesis(&self) -> Hash {
        let mut b = b"ballot-pos/genesis".to_vec();
        b.extend_from_slice(&self.chain_id.to_le_bytes());
        b.extend_from_slice(self.genesis_seed.as_bytes());
        sha256d(&b)
    }

    /// The slot in progress at `now` (slot 0 starts at `Instant::ZERO`, the genesis time).
    #[must_use]
    pub fn slot_at(&self, now: Instant) -> u64 {
        let d = u64::try_from(self.slot_duration.as_nanos()).unwrap_or(u64::MAX).max(1);
        now.as_nanos() / d
    }

    /// When `slot` starts.
    #[must_use]
    pub fn slot_start(&self, slot: u64) -> Instant {
        Instant::ZERO + self.slot_duration.saturating_mul(u32::try_from(slot).unwrap_or(u32::MAX))
    }
}

/// A block: the signed header, the votes and evidence it carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// The proposer's signed header; its `body` is [`Block::body_digest`].
    pub header: SignedHeader,
    /// Attestations the proposer saw.
    pub votes: Vec<SignedVote>,
    /// Evidence of double and surround votes.
    pub evidence: Vec<Evidence>,
}

impl Block {
    /// The digest of the votes and evidence, in order: what the header's `body` commits to.
    #[must_use]
    pub fn body_digest(votes: &[SignedVote], evidence: &[Evidence], chain_id: u32) -> Hash {
        let mut b = b"ballot-pos/body/v1".to_vec();
        let mut vote = |v: &SignedVote| {
            b.extend_from_slice(&v.validator.0);
            b.extend_from_slice(&v.vote.signing_bytes(chain_id));
            b.extend_from_slice(&v.signature.0);
        };
        for v in votes {
            vote(v);
        }
        for e in evidence {
            vote(&e.a);
            vote(&e.b);
        }
        sha256d(&b)
    }
}

/// What nodes send each other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PosMessage {
    /// A new block.
    Block(Box<Block>),
    /// An attestation.
    Vote(SignedVote),
    /// Evidence of a double or surround vote.
    Evidence(Box<Evidence>),
    /// Evidence of a proposer that signed two headers for one slot.
    ProposerEvidence(Box<ProposerEvidence>),
    /// Asks for a block (the parent of one that arrived without it).
    GetBlock(Hash),
    /// Asks for the votes that justified a checkpoint (the source of a vote that arrived
    /// before this node knew the checkpoint justified).
    GetProof(Checkpoint),
    /// The votes that justified a checkpoint.
    Proof(Vec<SignedVote>),
}

/// The host's name for a peer, opaque to the node (it only answers to it).
pub type PeerId = u64;

/// A validator's slashing protection: the source and target epochs of its last vote.
/// A new vote is signed only with a later target and a source no older, which can
/// neither double-vote nor surround (or be surrounded by) any earlier vote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AttestRecord {
    /// The source epoch of the last vote.
    pub source_epoch: u64,
    /// The target epoch of the last vote.
    pub target_epoch: u64,
}

impl AttestRecord {
    /// Whether a vote with `next`'s epochs may be signed after this one.
    #[must_use]
    pub fn allows(&self, next: AttestRecord) -> bool {
        next.target_epoch > self.target_epoch && next.source_epoch >= self.source_epoch
    }
}

/// What the node asks of its host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PosOutput {
    /// Send to every peer.
    Broadcast(PosMessage),
    /// Send to one peer (an answer).
    Send {
        /// The peer.
        to: PeerId,
        /// The message.
        message: PosMessage,
    },
    /// A block was accepted (store it).
    Accepted(Box<Block>),
    /// The head changed.
    NewHead {
        /// The head block.
        block: Hash,
        /// Its slot.
        slot: u64,
    },
    /// A checkpoint was justified, by (among) these votes. A host stores the proof and,
    /// after a restart, gives it back as [`PosMessage::Proof`] after the stored blocks:
    /// the votes that justified a checkpoint may be in no block of the chain.
    Justified {
        /// The checkpoint.
        checkpoint: Checkpoint,
        /// The votes held for it when it was justified.
        proof: Vec<SignedVote>,
    },
    /// A checkpoint was finalised.
    Finalized(Checkpoint),
    /// A validator's offence was proven; its stake no longer weighs in this node's fork
    /// choice.
    Slashed(PublicKey),
    /// A message was refused.
    Refused(PosError),
}

/// One node. See the module docs.
#[derive(Debug)]
pub struct PosNode {
    params: PosParams,
    key: Option<Keypair>,
    genesis: Hash,
    /// The RANDAO value after each connected block (parents and slots are the fork
    /// choice's).
    mixes: HashMap<Hash, Randao>,
    /// Every accepted block, to answer [`PosMessage::GetBlock`] (in memory, all of them:
    /// a host with storage would answer from it).
    bodies: HashMap<Hash, Block>,
    /// Parents asked for and not yet received.
    requested: HashSet<Hash>,
    /// For each checkpoint this node justified, the votes it held for it then (among
    /// them the supermajority link that justified it), to answer
    /// [`PosMessage::GetProof`]: a node that missed those votes, which may be in no
    /// block of the chain, could otherwise never count a vote with that source.
    proofs: HashMap<Checkpoint, Vec<SignedVote>>,
    /// Proofs asked for this slot.
    proofs_requested: HashSet<Checkpoint>,
    /// The source and target epochs of this validator's last vote (slashing protection).
    attested: Option<AttestRecord>,
    /// Blocks waiting for their parent, by parent. Ordered maps wherever the node iterates
    /// (here and `votes`): what it sends must not depend on hashing order, or a
    /// simulated run would not replay.
    orphans: BTreeMap<Hash, Vec<Block>>,
    /// (proposer, slot) -> the header seen, to catch double proposals.
    headers: HashMap<(PublicKey, u64), SignedHeader>,
    fork: ForkChoice,
    finality: Finality,
    head: Hash,
    /// Every vote counted, by validator (to catch double and surround votes).
    votes: BTreeMap<PublicKey, Vec<SignedVote>>,
    slashed: BTreeSet<PublicKey>,
    /// The votes every block this node proposes carries: all it counted whose target is
    /// above the finalised epoch. Included again and again, not once: a vote in a block
    /// that lost the fork choice would otherwise be lost to every node that did not see
    /// it sent, and a node catching up from the chain could not follow the justified
    /// checkpoints past it (found by `ballot-sim --algo pos`, seed 65 on 7 nodes).
    to_include: Vec<SignedVote>,
    /// Evidence not yet in a block this node proposed.
    evidence_to_include: Vec<Evidence>,
    /// The next slot to propose in, and the next to attest in.
    next_propose: u64,
    next_attest: u64,
    out: VecDeque<PosOutput>,
}

/// At most this many orphan blocks are held (a flood of blocks with unknown parents).
const MAX_ORPHANS: usize = 256;

impl PosNode {
    /// A node of the chain `params`, validating with `key` (`None`: an observer).
    #[must_use]
    pub fn new(params: PosParams, key: Option<Keypair>) -> Self {
        let genesis = params.genesis();
        let mix = Randao::new(params.genesis_seed);
        PosNode {
            mixes: HashMap::from([(genesis, mix)]),
            fork: ForkChoice::new(genesis),
            finality: Finality::new(Checkpoint { epoch: 0, root: genesis }),
            key,
            genesis,
            bodies: HashMap::new(),
            requested: HashSet::new(),
            proofs: HashMap::new(),
            proofs_requested: HashSet::new(),
            attested: None,
            orphans: BTreeMap::new(),
            headers: HashMap::new(),
            head: genesis,
            votes: BTreeMap::new(),
            slashed: BTreeSet::new(),
            to_include: Vec::new(),
            evidence_to_include: Vec::new(),
            next_propose: 1,
            next_attest: 0,
            out: VecDeque::new(),
            params,
        }
    }

    /// The chain's parameters.
    #[must_use]
    pub fn params(&self) -> &PosParams {
        &self.params
    }

    /// The head block and its slot.
    #[must_use]
    pub fn head(&self) -> (Hash, u64) {
        (self.head, self.fork.slot(&self.head).unwrap_or(0))
    }

    /// The finalised checkpoint.
    #[must_use]
    pub fn finalized(&self) -> Checkpoint {
        self.finality.finalized()
    }

    /// The latest justified checkpoint.
    #[must_use]
    pub fn justified(&self) -> Checkpoint {
        self.finality.latest_justified()
    }

    /// The validators whose stake weighs in this node's fork choice: the genesis set
    /// less the validators it has seen slashed. (Finality counts the genesis set; see
    /// `on_vote`.)
    #[must_use]
    pub fn validators(&self) -> ValidatorSet {
        ValidatorSet::new(
            self.params.validators.iter().filter(|(k, _)| !self.slashed.contains(k)).map(|(k, s)| (*k, s)),
        )
    }

    /// Whether `block` is known (connected to genesis).
    #[must_use]
    pub fn has_block(&self, block: &Hash) -> bool {
        self.fork.contains(block)
    }

    /// Whether `descendant` is `ancestor` or below it.
    #[must_use]
    pub fn descends(&self, ancestor: &Hash, descendant: &Hash) -> bool {
        self.fork.descends(ancestor, descendant)
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<PosOutput> {
        self.out.pop_front()
    }

    /// When the node next wants [`PosNode::handle_timeout`]: the start of the next slot
    /// to propose in, or the middle of the next slot to attest in.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.key.as_ref()?;
        let propose = self.params.slot_start(self.next_propose);
        let attest = self.params.slot_start(self.next_attest) + self.params.slot_duration / 2;
        Some(propose.min(attest))
    }

    /// Proposes (at a slot's start, if this node is its proposer) and attests (halfway
    /// through a slot) for the slots that began by `now`. A slot missed (the host slept)
    /// is skipped, not made up.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Taken out for the duration (a key is not cloned), put back below.
        let Some(key) = self.key.take() else { return };
        let slot = self.params.slot_at(now);
        if self.next_propose <= slot {
            self.next_propose = slot + 1;
            self.ask_again_for_missing_parents();
            self.propose(slot, &key);
        }
        // Slots missed while the host was away are skipped: attesting to them now would
        // vote for a past slot's head.
        self.next_attest = self.next_attest.max(slot);
        let half = self.params.slot_duration / 2;
        if self.next_attest == slot && now >= self.params.slot_start(slot) + half {
            self.next_attest = slot + 1;
            self.attest(slot, &key);
        }
        self.key = Some(key);
    }

    /// The source and target epochs of this validator's last vote: its slashing
    /// protection. A host persists it and gives it back with
    /// [`PosNode::restore_attested`] after a restart.
    #[must_use]
    pub fn last_attested(&self) -> Option<AttestRecord> {
        self.attested
    }

    /// Restores [`PosNode::last_attested`] after a restart.
    pub fn restore_attested(&mut self, record: Option<AttestRecord>) {
        self.attested = self.attested.max(record);
    }

    /// Handles a message from peer `from` at `now`.
    pub fn handle_message(&mut self, now: Instant, from: PeerId, message: PosMessage) {
        let result = match message {
            PosMessage::GetBlock(hash) => {
                if let Some(block) = self.bodies.get(&hash) {
                    let message = PosMessage::Block(Box::new(block.clone()));
                    self.out.push_back(PosOutput::Send { to: from, message });
                }
                Ok(())
            }
            PosMessage::GetProof(c) => {
                if let Some(votes) = self.proofs.get(&c) {
                    self.out.push_back(PosOutput::Send { to: from, message: PosMessage::Proof(votes.clone()) });
                }
                Ok(())
            }
            PosMessage::Proof(votes) => {
                for v in votes {
                    if let Ok(true) = self.check_vote(&v) {
                        self.count_vote(v);
                    }
                }
                self.update_head();
                Ok(())
            }
            PosMessage::Block(b) => self.on_block(now, *b),
            PosMessage::Vote(v) => self.on_vote(v),
            PosMessage::Evidence(e) => self.on_evidence(&e),
            PosMessage::ProposerEvidence(e) => self.on_proposer_evidence(&e),
        };
        if let Err(e) = result {
            self.out.push_back(PosOutput::Refused(e));
        }
    }

    // ---- Proposing and attesting. ----

    fn propose(&mut self, slot: u64, key: &Keypair) {
        let parent = self.head;
        let epoch = self.params.epoch(slot);
        if self.proposer(slot, &parent) != Some(key.public()) || self.fork.slot(&parent).is_none_or(|p| p >= slot) {
            return;
        }
        let votes = self.to_include.clone();
        let evidence = std::mem::take(&mut self.evidence_to_include);
        let header = BlockHeader {
            slot,
            proposer: key.public(),
            parent,
            body: Block::body_digest(&votes, &evidence, self.params.chain_id),
            reveal: Randao::reveal(key, self.params.chain_id, epoch),
        };
        let Ok(header) = header.sign(self.params.chain_id, key) else { return };
        let block = Block { header, votes, evidence };
        let now = self.params.slot_start(slot);
        match self.on_block(now, block.clone()) {
            Ok(()) => self.out.push_back(PosOutput::Broadcast(PosMessage::Block(Box::new(block)))),
            Err(e) => self.out.push_back(PosOutput::Refused(e)),
        }
    }

    /// Attests once per epoch, in the first slot of it this node is awake for, and only
    /// with a source no older than its last vote's: a node that restarted and has not
    /// caught up would otherwise sign a vote that surrounds its earlier one (found by
    /// `ballot-sim --algo pos`, seed 5).
    fn attest(&mut self, slot: u64, key: &Keypair) {
        let head = self.head;
        let epoch = self.params.epoch(slot);
        let target = Checkpoint { epoch, root: self.checkpoint_block(epoch, &head) };
        let source = self.finality.latest_justified();
        let record = AttestRecord { source_epoch: source.epoch, target_epoch: epoch };
        if target.epoch <= source.epoch || !self.attested.is_none_or(|last| last.allows(record)) {
            return;
        }
        let Ok(vote) = (Vote { slot, head, source, target }).sign(self.params.chain_id, key) else { return };
        self.attested = Some(record);
        if self.on_vote(vote).is_ok() {
            self.out.push_back(PosOutput::Broadcast(PosMessage::Vote(vote)));
        }
    }

    /// Once a slot, asks again for up to 8 parents still missing: a request or its
    /// answer may have been lost (found by `ballot-sim --algo pos`: a restarted node
    /// whose only request was lost stayed behind for good).
    fn ask_again_for_missing_parents(&mut self) {
        self.requested.clear();
        self.proofs_requested.clear();
        let missing: Vec<Hash> = self.orphans.keys().filter(|p| !self.fork.contains(p)).take(8).copied().collect();
        for parent in missing {
            self.requested.insert(parent);
            self.out.push_back(PosOutput::Broadcast(PosMessage::GetBlock(parent)));
        }
    }

    // ---- Chain queries. ----

    /// The block of `epoch`'s checkpoint on `head`'s chain: the last block at or before
    /// the epoch's first slot.
    fn checkpoint_block(&self, epoch: u64, head: &Hash) -> Hash {
        let first = epoch.saturating_mul(self.params.slots_per_epoch);
        self.fork
            .ancestors(*head)
            .find(|&(at, slot)| slot <= first || at == self.genesis)
            .map_or(self.genesis, |(at, _)| at)
    }

    /// The seed of `epoch` on the chain ending at `parent`: the RANDAO value after the
    /// last block before the previous epoch began (one epoch of look-ahead, so that a
    /// proposer learns its slots an epoch ahead and no block of the epoch itself can
    /// steer them).
    fn seed(&self, epoch: u64, parent: &Hash) -> Hash {
        let Some(start) = epoch.checked_sub(1).map(|e| e * self.params.slots_per_epoch) else {
            return self.params.genesis_seed;
        };
        self.fork
            .ancestors(*parent)
            .find(|&(at, slot)| slot < start || at == self.genesis)
            .and_then(|(at, _)| self.mixes.get(&at))
            .map_or(self.params.genesis_seed, Randao::mix)
    }

    fn proposer(&self, slot: u64, parent: &Hash) -> Option<PublicKey> {
        // The genesis set decides proposers: slashing on one node must not change whom
        // another expects.
        self.params.validators.proposer(slot, &self.seed(self.params.epoch(slot), parent))
    }

    // ---- Blocks. ----

    fn on_block(&mut self, now: Instant, block: Block) -> Result<(), PosError> {
        let h = block.header.header;
        let hash = h.hash(self.params.chain_id);
        if self.fork.contains(&hash) {
            return Ok(());
        }
        let bad = |reason| Err(PosError::BadBlock { block: hash, reason });
        if h.slot > self.params.slot_at(now) + 1 {
            return bad("from a slot that has not begun");
        }
        block.header.verify(self.params.chain_id)?;
        if Block::body_digest(&block.votes, &block.evidence, self.params.chain_id) != h.body {
            return bad("the body does not match the header");
        }
        let (Some(parent_slot), Some(&parent_mix)) = (self.fork.slot(&h.parent), self.mixes.get(&h.parent)) else {
            let held: usize = self.orphans.values().map(Vec::len).sum();
            if held < MAX_ORPHANS {
                self.orphans.entry(h.parent).or_default().push(block);
                if self.requested.insert(h.parent) {
                    self.out.push_back(PosOutput::Broadcast(PosMessage::GetBlock(h.parent)));
                }
            }
            return Ok(());
        };
        self.check_double_proposal(&block.header)?;
        if h.slot <= parent_slot {
            return bad("slot not after its parent's");
        }
        if self.proposer(h.slot, &h.parent) != Some(h.proposer) {
            return bad("not the slot's proposer");
        }
        let mut mix = parent_mix;
        mix.mix_in(self.params.chain_id, self.params.epoch(h.slot), &h.proposer, &h.reveal)?;
        for v in block.votes.iter().filter(|v| !self.holds(v)) {
            v.verify(self.params.chain_id)?;
        }
        for e in &block.evidence {
            e.verify(self.params.chain_id)?;
        }
        self.fork.add_block(hash, h.parent, h.slot)?;
        self.mixes.insert(hash, mix);
        self.requested.remove(&hash);
        self.bodies.insert(hash, block.clone());
        self.out.push_back(PosOutput::Accepted(Box::new(block.clone())));
        // Verified above; a vote in a block by a stranger is ignored rather than a reason
        // to refuse the block (the proposer may have seen it before this node did).
        for v in block.votes {
            if self.params.validators.contains(&v.validator) && !self.holds(&v) {
                self.count_vote(v);
            }
        }
        for e in &block.evidence {
            self.slash(e.a.validator, Some(*e));
        }
        self.update_head();
        if let Some(children) = self.orphans.remove(&hash) {
            for child in children {
                if let Err(e) = self.on_block(now, child) {
                    self.out.push_back(PosOutput::Refused(e));
                }
            }
        }
        Ok(())
    }

    fn check_double_proposal(&mut self, header: &SignedHeader) -> Result<(), PosError> {
        let h = &header.header;
        match self.headers.get(&(h.proposer, h.slot)) {
            Some(first) if first != header => {
                let evidence = ProposerEvidence { a: *first, b: *header };
                self.on_proposer_evidence(&evidence)?;
                self.out.push_back(PosOutput::Broadcast(PosMessage::ProposerEvidence(Box::new(evidence))));
                Ok(())
            }
            Some(_) => Ok(()),
            None => {
                self.headers.insert((h.proposer, h.slot), *header);
                Ok(())
            }
        }
    }

    fn update_head(&mut self) {
        let justified = self.finality.latest_justified().root;
        let root = if self.fork.contains(&justified) { justified } else { self.finality.finalized().root };
        let head = self.fork.head(root, &self.validators());
        if head != self.head {
            self.head = head;
            let slot = self.fork.slot(&head).unwrap_or(0);
            self.out.push_back(PosOutput::NewHead { block: head, slot });
        }
    }

    // ---- Votes and evidence. ----

    /// A vote from a peer (or this node): checked, counted if new, and the head updated.
    fn on_vote(&mut self, vote: SignedVote) -> Result<(), PosError> {
        if self.check_vote(&vote)? {
            self.count_vote(vote);
            self.update_head();
        }
        Ok(())
    }

    /// Whether `vote` was counted already (the same vote, signature included).
    fn holds(&self, vote: &SignedVote) -> bool {
        self.votes.get(&vote.validator).is_some_and(|held| held.contains(vote))
    }

    /// Whether `vote` is new, after checking it is a validator's and its signature.
    fn check_vote(&self, vote: &SignedVote) -> Result<bool, PosError> {
        if !self.params.validators.contains(&vote.validator) {
            return Err(PosError::UnknownValidator(vote.validator));
        }
        if self.holds(vote) {
            return Ok(false);
        }
        vote.verify(self.params.chain_id)?;
        Ok(true)
    }

    /// Counts a new, verified vote of a validator (the caller updates the head).
    ///
    /// Finality counts it with the genesis stakes, whoever is slashed: every node then
    /// counts the same votes, whatever order it learnt of offences in. Counting a slashed
    /// validator's earlier (or conflicting) votes cannot break safety while slashable
    /// stake is below 1/3, and removing them split nodes for good: one had justified a
    /// checkpoint with a liar's vote, another, which had slashed the liar first, never
    /// could, and their votes' sources differed from then on (found by `ballot-sim --algo
    /// pos`, seed 556 on 7 nodes). The fork choice does ignore the slashed.
    fn count_vote(&mut self, vote: SignedVote) {
        let held = self.votes.entry(vote.validator).or_default();
        let offended = held.iter().find(|v| offence(&v.vote, &vote.vote).is_some()).copied();
        held.push(vote);
        self.to_include.push(vote);
        if let Some(earlier) = offended {
            let evidence = Evidence { a: earlier, b: vote };
            if !self.slashed.contains(&vote.validator) {
                self.out.push_back(PosOutput::Broadcast(PosMessage::Evidence(Box::new(evidence))));
            }
            self.slash(vote.validator, Some(evidence));
        }
        let source = vote.vote.source;
        if !self.finality.is_justified(&source)
            && source.epoch > self.finality.finalized().epoch
            && self.proofs_requested.len() < 8
            && self.proofs_requested.insert(source)
        {
            self.out.push_back(PosOutput::Broadcast(PosMessage::GetProof(source)));
        }
        let fork = &self.fork;
        let changed = self
            .finality
            .add_vote(vote.validator, &vote.vote, &self.params.validators, |a, b| fork.descends(&a.root, &b.root));
        if !self.slashed.contains(&vote.validator) {
            self.fork.on_vote(vote.validator, vote.vote.slot, vote.vote.head);
        }
        for c in changed.justified {
            let proof: Vec<SignedVote> =
                self.votes.values().flatten().filter(|v| v.vote.target == c).copied().collect();
            self.proofs.insert(c, proof.clone());
            self.out.push_back(PosOutput::Justified { checkpoint: c, proof });
        }
        if let Some(c) = changed.finalized {
            self.out.push_back(PosOutput::Finalized(c));
            self.prune(c.epoch);
        }
    }

    fn on_evidence(&mut self, evidence: &Evidence) -> Result<(), PosError> {
        evidence.verify(self.params.chain_id)?;
        self.slash(evidence.a.validator, Some(*evidence));
        Ok(())
    }

    fn on_proposer_evidence(&mut self, evidence: &ProposerEvidence) -> Result<(), PosError> {
        let offender = evidence.verify(self.params.chain_id)?;
        self.slash(offender, None);
        Ok(())
    }

    fn slash(&mut self, validator: PublicKey, evidence: Option<Evidence>) {
        if self.slashed.insert(validator) {
            self.evidence_to_include.extend(evidence);
            self.out.push_back(PosOutput::Slashed(validator));
            self.update_head();
        }
    }

    /// Forgets votes whose target is at or below the finalised epoch: they can no longer
    /// count. (An offence made only of such votes goes undetected here; it cannot change
    /// what is final.)
    fn prune(&mut self, finalized_epoch: u64) {
        self.to_include.retain(|v| v.vote.target.epoch > finalized_epoch);
        for held in self.votes.values_mut() {
            held.retain(|v| v.vote.target.epoch > finalized_epoch);
        }
    }
}
