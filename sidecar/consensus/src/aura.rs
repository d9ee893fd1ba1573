//! Aura: who may author which slot, when a slot is in the future, how many approvals make a block, and
//! equivocation (two blocks from one author for one slot).

use std::collections::BTreeMap;

use alloy_primitives::B256;

use alys_primitives::{
    Approval, Approvals, AuthorityPublicKey, BatchItem, BlsSignature, ConsensusHeader, EquivocationEvidence,
    KeyError, Seal, verify_batch,
};

/// Why a header or its approvals were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuraError {
    /// The authority set is empty.
    #[error("no authorities configured")]
    NoAuthorities,
    /// The author index is outside the authority set.
    #[error("author index {0} is not an authority")]
    UnknownAuthority(u32),
    /// The signer is not the slot's author.
    #[error("slot {slot} belongs to authority {expected}, block is by {got}")]
    WrongAuthor {
        /// The slot.
        slot: u64,
        /// The slot's scheduled author.
        expected: u32,
        /// The claimed author.
        got: u32,
    },
    /// The block's slot is ahead of the local clock (beyond the tolerance).
    #[error("block slot {slot} is ahead of the local slot {local}")]
    FutureSlot {
        /// The block's slot.
        slot: u64,
        /// The local clock's slot.
        local: u64,
    },
    /// The block does not extend its parent (height, hash or slot order).
    #[error("block does not extend its parent: {0}")]
    NotChild(&'static str),
    /// The author's signature does not verify, or is malformed.
    #[error("author signature: {0}")]
    AuthorSignature(KeyError),
    /// Fewer approvals than the threshold.
    #[error("{have} approvals, {need} required")]
    NotEnoughApprovals {
        /// Distinct approving authorities.
        have: usize,
        /// The threshold, `ceil(2n/3)`.
        need: usize,
    },
    /// The aggregate approval signature does not verify, or is malformed.
    #[error("approvals signature: {0}")]
    ApprovalSignature(KeyError),
    /// The parent seal a block carries (its parent's author signature and approvals) does not verify,
    /// or a first block carries one.
    #[error("parent seal: {0}")]
    ParentSeal(#[source] Box<Self>),
    /// The execution block's timestamp is not inside the consensus block's slot.
    #[error("execution timestamp {timestamp} is outside slot {slot}")]
    TimestampOutsideSlot {
        /// The slot.
        slot: u64,
        /// The execution timestamp, unix seconds.
        timestamp: u64,
    },
    /// Equivocation evidence that proves nothing.
    #[error("not an equivocation: {0}")]
    NotEquivocation(&'static str),
}

/// The Aura schedule of one authority set.
#[derive(Debug, Clone)]
pub struct Aura {
    authorities: Vec<AuthorityPublicKey>,
    slot_duration_ms: u64,
    future_tolerance_ms: u64,
}

impl Aura {
    /// A schedule over `authorities` (in order) with slots of `slot_duration_ms`; blocks up to
    /// `future_tolerance_ms` ahead of the local clock are accepted, to absorb clock drift.
    pub fn new(
        authorities: Vec<AuthorityPublicKey>,
        slot_duration_ms: u64,
        future_tolerance_ms: u64,
    ) -> Result<Self, AuraError> {
        if authorities.is_empty() {
            return Err(AuraError::NoAuthorities);
        }
        Ok(Self { authorities, slot_duration_ms: slot_duration_ms.max(1), future_tolerance_ms })
    }

    /// The authorities, in schedule order.
    pub fn authorities(&self) -> &[AuthorityPublicKey] {
        &self.authorities
    }

    /// The slot at a unix time in milliseconds: `floor(t / slot_duration)`.
    pub const fn slot_at(&self, unix_ms: u64) -> u64 {
        unix_ms / self.slot_duration_ms
    }

    /// The unix time in milliseconds at which `slot` starts.
    pub const fn slot_start_ms(&self, slot: u64) -> u64 {
        slot.saturating_mul(self.slot_duration_ms)
    }

    /// Checks that an execution timestamp (unix seconds) falls inside `slot`: the second it names
    /// overlaps `[slot_start, slot_start + slot_duration)`.
    pub const fn check_timestamp(&self, slot: u64, timestamp_secs: u64) -> Result<(), AuraError> {
        let start = self.slot_start_ms(slot);
        let end = start.saturating_add(self.slot_duration_ms);
        let second = timestamp_secs.saturating_mul(1_000);
        if second.saturating_add(999) < start || second >= end {
            return Err(AuraError::TimestampOutsideSlot { slot, timestamp: timestamp_secs });
        }
        Ok(())
    }

    /// The index of the authority scheduled for `slot`: `slot mod n`.
    pub fn author_of(&self, slot: u64) -> u32 {
        (slot % self.authorities.len() as u64) as u32
    }

    /// The index of `key` in the authority set, if it is an authority.
    pub fn index_of(&self, key: &AuthorityPublicKey) -> Option<u32> {
        self.authorities.iter().position(|k| k == key).map(|i| i as u32)
    }

    /// Approvals needed to accept a block: `ceil(2n/3)`.
    pub const fn required_approvals(n: usize) -> usize {
        (2 * n).div_ceil(3)
    }

    /// Checks that `header` extends `parent`: parent hash, next height, later slot.
    pub fn check_child(&self, parent: &ConsensusHeader, header: &ConsensusHeader) -> Result<(), AuraError> {
        if header.parent_hash != parent.hash() {
            return Err(AuraError::NotChild("parent hash"));
        }
        if header.height != parent.height.saturating_add(1) {
            return Err(AuraError::NotChild("height"));
        }
        if header.slot <= parent.slot {
            return Err(AuraError::NotChild("slot not after the parent's"));
        }
        Ok(())
    }

    /// Checks the author and slot of a header at local time `now_ms` (not its signature).
    pub fn check_schedule(&self, header: &ConsensusHeader, now_ms: u64) -> Result<(), AuraError> {
        if header.author as usize >= self.authorities.len() {
            return Err(AuraError::UnknownAuthority(header.author));
        }
        let expected = self.author_of(header.slot);
        if header.author != expected {
            return Err(AuraError::WrongAuthor { slot: header.slot, expected, got: header.author });
        }
        let local = self.slot_at(now_ms.saturating_add(self.future_tolerance_ms));
        if header.slot > local {
            return Err(AuraError::FutureSlot { slot: header.slot, local: self.slot_at(now_ms) });
        }
        Ok(())
    }

    /// Checks the author and slot of a header and the author's signature, at local time `now_ms`.
    pub fn verify_header(
        &self,
        header: &ConsensusHeader,
        author_signature: &[u8],
        now_ms: u64,
    ) -> Result<(), AuraError> {
        self.check_schedule(header, now_ms)?;
        let key =
            self.authorities.get(header.author as usize).ok_or(AuraError::UnknownAuthority(header.author))?;
        let signature = BlsSignature::from_bytes(author_signature).map_err(AuraError::AuthorSignature)?;
        key.verify(&header.hash(), &signature).map_err(AuraError::AuthorSignature)
    }

    /// Checks that `approvals` carry at least `ceil(2n/3)` distinct authorities whose aggregate signature
    /// over `block_hash` verifies; returns how many approved.
    pub fn verify_approvals(&self, block_hash: &B256, approvals: &Approvals) -> Result<usize, AuraError> {
        let keys = self.quorum(approvals)?;
        let signature =
            BlsSignature::from_bytes(&approvals.signature).map_err(AuraError::ApprovalSignature)?;
        signature.fast_aggregate_verify(block_hash, &keys).map_err(AuraError::ApprovalSignature)?;
        Ok(keys.len())
    }
}

impl Aura {
    /// Checks a block's seal (`seal`) as its child carries it: the author signature of the block
    /// (`hash`, by authority `author`) and a quorum of approvals, both over `hash`, in one batched
    /// pairing. Errors come wrapped in [`AuraError::ParentSeal`].
    pub fn verify_seal(&self, hash: &B256, author: u32, seal: &Seal) -> Result<(), AuraError> {
        let check = || {
            let key = self.authorities.get(author as usize).ok_or(AuraError::UnknownAuthority(author))?;
            let author_signature =
                BlsSignature::from_bytes(&seal.author_signature).map_err(AuraError::AuthorSignature)?;
            let signers = self.quorum(&seal.approvals)?;
            let approval =
                BlsSignature::from_bytes(&seal.approvals.signature).map_err(AuraError::ApprovalSignature)?;
            verify_batch(&[
                BatchItem { message: hash, signature: &author_signature, signers: &[key] },
                BatchItem { message: hash, signature: &approval, signers: &signers },
            ])
            .map_err(AuraError::ApprovalSignature)
        };
        check().map_err(|e| AuraError::ParentSeal(Box::new(e)))
    }

    /// The keys of the authorities `approvals` names, if they are at least a quorum.
    fn quorum(&self, approvals: &Approvals) -> Result<Vec<&AuthorityPublicKey>, AuraError> {
        let need = Self::required_approvals(self.authorities.len());
        let keys = approvals
            .signer_indexes()
            .iter()
            .map(|i| self.authorities.get(*i as usize).ok_or(AuraError::UnknownAuthority(*i)))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.len() < need {
            return Err(AuraError::NotEnoughApprovals { have: keys.len(), need });
        }
        Ok(keys)
    }

    /// Checks one authority's approval of `approval.block_hash`.
    pub fn verify_approval(&self, approval: &Approval) -> Result<(), AuraError> {
        let key = self
            .authorities
            .get(approval.authority as usize)
            .ok_or(AuraError::UnknownAuthority(approval.authority))?;
        let signature =
            BlsSignature::from_bytes(&approval.signature).map_err(AuraError::ApprovalSignature)?;
        key.verify(&approval.block_hash, &signature).map_err(AuraError::ApprovalSignature)
    }

    /// Checks the author signature and approvals of many blocks at once (a range from a peer), with
    /// one batched multi-pairing: `Ok` only if every block's author is scheduled for its slot (at
    /// `now_ms`), its author signature verifies and it carries a verifying quorum of approvals. On
    /// `Err`, check the blocks one by one ([`Self::verify_header`], [`Self::verify_approvals`]) to learn
    /// which fails and why.
    pub fn verify_many(
        &self,
        blocks: &[(ConsensusHeader, &[u8], &Approvals)],
        now_ms: u64,
    ) -> Result<(), AuraError> {
        let mut parsed = Vec::with_capacity(blocks.len());
        for (header, author_signature, approvals) in blocks {
            self.check_schedule(header, now_ms)?;
            let author = self
                .authorities
                .get(header.author as usize)
                .ok_or(AuraError::UnknownAuthority(header.author))?;
            let author_signature =
                BlsSignature::from_bytes(author_signature).map_err(AuraError::AuthorSignature)?;
            let signers = self.quorum(approvals)?;
            let approval =
                BlsSignature::from_bytes(&approvals.signature).map_err(AuraError::ApprovalSignature)?;
            parsed.push((header.hash(), [author], author_signature, signers, approval));
        }
        let mut items = Vec::with_capacity(parsed.len() * 2);
        for (hash, author, author_signature, signers, approval) in &parsed {
            items.push(BatchItem { message: hash, signature: author_signature, signers: author });
            items.push(BatchItem { message: hash, signature: approval, signers });
        }
        verify_batch(&items).map_err(AuraError::ApprovalSignature)
    }

    /// Where a range of blocks from a peer (ascending heights) starts to be vouched for by its last
    /// block: the index of the first block of the suffix linked by parent hashes to a last block whose
    /// author (at `now_ms`), author signature and quorum verify, or `range.len()` when the last block
    /// does not verify.
    ///
    /// Each header commits to its parent's seal, and an honest authority approves a block only after
    /// checking that seal, with the parent committed in its store. So a verified quorum (which holds at
    /// least one honest authority) stands behind every header it descends from, and behind the seals
    /// those headers' children carry: only the last block needs a pairing.
    pub fn vouched_from(&self, range: &[(&ConsensusHeader, &[u8], &Approvals)], now_ms: u64) -> usize {
        let Some((tip, signature, approvals)) = range.last() else { return 0 };
        if self.verify_many(&[((*tip).clone(), signature, approvals)], now_ms).is_err() {
            return range.len();
        }
        let mut from = range.len() - 1;
        let mut parent_hash = tip.parent_hash;
        while let Some(index) = from.checked_sub(1)
            && let Some((header, _, _)) = range.get(index)
            && header.hash() == parent_hash
        {
            parent_hash = header.parent_hash;
            from = index;
        }
        from
    }

    /// Checks equivocation evidence: two different headers for one (slot, author), both signed by the
    /// author, whose slot is the author's by the schedule. Returns what it proves.
    pub fn verify_evidence(&self, evidence: &EquivocationEvidence) -> Result<Equivocation, AuraError> {
        let (first, second) = (&evidence.first, &evidence.second);
        if first.slot != second.slot || first.author != second.author {
            return Err(AuraError::NotEquivocation("different slot or author"));
        }
        let (first_hash, second_hash) = (first.hash(), second.hash());
        if first_hash == second_hash {
            return Err(AuraError::NotEquivocation("the same block twice"));
        }
        let key =
            self.authorities.get(first.author as usize).ok_or(AuraError::UnknownAuthority(first.author))?;
        let expected = self.author_of(first.slot);
        if first.author != expected {
            return Err(AuraError::WrongAuthor { slot: first.slot, expected, got: first.author });
        }
        for (hash, signature) in
            [(first_hash, &evidence.first_signature), (second_hash, &evidence.second_signature)]
        {
            let signature = BlsSignature::from_bytes(signature).map_err(AuraError::AuthorSignature)?;
            key.verify(&hash, &signature).map_err(AuraError::AuthorSignature)?;
        }
        Ok(Equivocation { slot: first.slot, author: first.author, first: first_hash, second: second_hash })
    }
}

/// Evidence that an author signed two different blocks for one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Equivocation {
    /// The slot.
    pub slot: u64,
    /// The author's index.
    pub author: u32,
    /// The block seen first.
    pub first: B256,
    /// The conflicting block.
    pub second: B256,
}

/// Remembers which block each author produced for each recent slot.
#[derive(Debug, Default)]
pub struct EquivocationDetector {
    seen: BTreeMap<(u64, u32), B256>,
}

impl EquivocationDetector {
    /// Records a block; returns the evidence when the author already produced another block for the slot.
    /// Seeing the same block again is not an equivocation.
    pub fn observe(&mut self, slot: u64, author: u32, hash: B256) -> Result<(), Equivocation> {
        match self.seen.get(&(slot, author)) {
            Some(first) if *first != hash => Err(Equivocation { slot, author, first: *first, second: hash }),
            Some(_) => Ok(()),
            None => {
                self.seen.insert((slot, author), hash);
                Ok(())
            }
        }
    }

    /// Forgets slots below `slot` (they are final).
    pub fn prune_below(&mut self, slot: u64) {
        self.seen = self.seen.split_off(&(slot, 0));
    }

    /// How many (slot, author) pairs are remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::Bytes;
    use alys_primitives::AuthorityKey;

    fn keys(n: u8) -> Vec<AuthorityKey> {
        (1..=n).map(|i| AuthorityKey::from_seed(&[i; 32]).unwrap()).collect()
    }

    fn aura(keys: &[AuthorityKey]) -> Aura {
        Aura::new(keys.iter().map(|k| k.public().clone()).collect(), 2_000, 500).unwrap()
    }

    fn header(slot: u64, author: u32) -> ConsensusHeader {
        ConsensusHeader {
            parent_hash: B256::ZERO,
            parent_seal: Default::default(),
            height: 1,
            slot,
            author,
            execution_block_hash: B256::repeat_byte(9),
            pegins: vec![],
            auxpow: Bytes::new(),
            pegout: None,
        }
    }

    #[test]
    fn schedule_rotates_by_slot() {
        let k = keys(3);
        let a = aura(&k);
        assert_eq!(a.slot_at(0), 0);
        assert_eq!(a.slot_at(1_999), 0);
        assert_eq!(a.slot_at(2_000), 1);
        assert_eq!(a.slot_start_ms(5), 10_000);
        assert_eq!((0..6).map(|s| a.author_of(s)).collect::<Vec<_>>(), vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(a.index_of(k[2].public()), Some(2));
        assert_eq!(a.index_of(AuthorityKey::from_seed(&[99; 32]).unwrap().public()), None);
        assert!(matches!(Aura::new(vec![], 1, 0), Err(AuraError::NoAuthorities)));
    }

    #[test]
    fn one_approval_verifies_only_for_its_authority_and_block() {
        let k = keys(3);
        let a = aura(&k);
        let hash = B256::repeat_byte(7);
        let good = Approval {
            block_hash: hash,
            authority: 2,
            signature: k[2].sign(&hash).to_bytes().to_vec().into(),
        };
        a.verify_approval(&good).unwrap();
        let other_signer = Approval { authority: 1, ..good.clone() };
        assert!(matches!(a.verify_approval(&other_signer), Err(AuraError::ApprovalSignature(_))));
        let other_block = Approval { block_hash: B256::repeat_byte(8), ..good.clone() };
        assert!(matches!(a.verify_approval(&other_block), Err(AuraError::ApprovalSignature(_))));
        let unknown = Approval { authority: 3, ..good.clone() };
        assert_eq!(a.verify_approval(&unknown), Err(AuraError::UnknownAuthority(3)));
        let garbage = Approval { signature: Bytes::from_static(&[1, 2, 3]), ..good };
        assert!(matches!(a.verify_approval(&garbage), Err(AuraError::ApprovalSignature(_))));
    }

    #[test]
    fn evidence_needs_two_different_headers_of_one_slot_both_signed_by_its_author() {
        let k = keys(3);
        let a = aura(&k);
        let first = header(10, 1);
        let second = ConsensusHeader { execution_block_hash: B256::repeat_byte(1), ..first.clone() };
        let sign = |key: &AuthorityKey, h: &ConsensusHeader| -> Bytes {
            key.sign(&h.hash()).to_bytes().to_vec().into()
        };
        let evidence = EquivocationEvidence {
            first: first.clone(),
            first_signature: sign(&k[1], &first),
            second: second.clone(),
            second_signature: sign(&k[1], &second),
        };
        let proven = a.verify_evidence(&evidence).unwrap();
        assert_eq!(
            (proven.slot, proven.author, proven.first, proven.second),
            (10, 1, first.hash(), second.hash())
        );
        let same = EquivocationEvidence {
            second: first.clone(),
            second_signature: sign(&k[1], &first),
            ..evidence.clone()
        };
        assert_eq!(a.verify_evidence(&same), Err(AuraError::NotEquivocation("the same block twice")));
        let other_slot = ConsensusHeader { slot: 13, ..second.clone() };
        let moved = EquivocationEvidence {
            second: other_slot.clone(),
            second_signature: sign(&k[1], &other_slot),
            ..evidence.clone()
        };
        assert!(matches!(a.verify_evidence(&moved), Err(AuraError::NotEquivocation(_))));
        let forged = EquivocationEvidence { second_signature: sign(&k[2], &second), ..evidence };
        assert!(matches!(a.verify_evidence(&forged), Err(AuraError::AuthorSignature(_))));
    }

    #[test]
    fn many_blocks_verify_at_once_or_not_at_all() {
        let k = keys(3);
        let a = aura(&k);
        let signed: Vec<(ConsensusHeader, Bytes, Approvals)> = (10..20u64)
            .map(|slot| {
                let h = header(slot, (slot % 3) as u32);
                let hash = h.hash();
                let author = k[(slot % 3) as usize].sign(&hash);
                let other = k[((slot + 1) % 3) as usize].sign(&hash);
                let approvals = Approvals {
                    signers: Approvals::bitfield([(slot % 3) as u32, ((slot + 1) % 3) as u32]),
                    signature: BlsSignature::aggregate(&[&author, &other])
                        .unwrap()
                        .to_bytes()
                        .to_vec()
                        .into(),
                };
                (h, author.to_bytes().to_vec().into(), approvals)
            })
            .collect();
        let view = |s: &[(ConsensusHeader, Bytes, Approvals)]| -> Vec<(ConsensusHeader, Vec<u8>, Approvals)> {
            s.iter().map(|(h, sig, ap)| (h.clone(), sig.to_vec(), ap.clone())).collect()
        };
        let check = |s: &[(ConsensusHeader, Vec<u8>, Approvals)]| {
            let batch: Vec<(ConsensusHeader, &[u8], &Approvals)> =
                s.iter().map(|(h, sig, ap)| (h.clone(), sig.as_slice(), ap)).collect();
            a.verify_many(&batch, 30 * 2_000)
        };
        check(&view(&signed)).unwrap();
        let mut bad = view(&signed);
        bad[4].2.signature = bad[5].2.signature.clone();
        assert!(matches!(check(&bad), Err(AuraError::ApprovalSignature(_))));
        let mut thin = view(&signed);
        thin[2].2.signers = Approvals::bitfield([0]);
        assert!(matches!(check(&thin), Err(AuraError::NotEnoughApprovals { have: 1, need: 2 })));
        let mut wrong_author = view(&signed);
        wrong_author[0].1 = wrong_author[1].1.clone();
        assert!(check(&wrong_author).is_err());
    }

    #[test]
    fn execution_timestamps_must_fall_inside_the_slot() {
        let a = aura(&keys(1)); // 2 s slots: slot 5 is [10 s, 12 s)
        a.check_timestamp(5, 10).unwrap();
        a.check_timestamp(5, 11).unwrap();
        assert!(a.check_timestamp(5, 12).is_err());
        assert!(a.check_timestamp(5, 9).is_err());
        assert!(a.check_timestamp(5, 0).is_err());
        let fast =
            Aura::new(vec![AuthorityKey::from_seed(&[1; 32]).unwrap().public().clone()], 500, 0).unwrap();
        // 500 ms slots: slot 3 is [1.5 s, 2 s), inside second 1.
        fast.check_timestamp(3, 1).unwrap();
        assert!(fast.check_timestamp(3, 2).is_err());
    }

    #[test]
    fn thresholds_are_two_thirds_rounded_up() {
        let table = [(1, 1), (2, 2), (3, 2), (4, 3), (5, 4), (6, 4), (7, 5), (9, 6), (10, 7), (100, 67)];
        for (n, need) in table {
            assert_eq!(Aura::required_approvals(n), need, "n = {n}");
        }
    }

    #[test]
    fn author_must_be_scheduled_and_sign() {
        let k = keys(3);
        let a = aura(&k);
        let now = 10 * 2_000; // slot 10
        let h = header(10, 1); // 10 % 3 = 1
        a.verify_header(&h, &k[1].sign(&h.hash()).to_bytes(), now).unwrap();

        let wrong = header(10, 2);
        assert_eq!(
            a.verify_header(&wrong, &k[2].sign(&wrong.hash()).to_bytes(), now),
            Err(AuraError::WrongAuthor { slot: 10, expected: 1, got: 2 })
        );
        assert!(matches!(
            a.verify_header(&h, &k[0].sign(&h.hash()).to_bytes(), now),
            Err(AuraError::AuthorSignature(KeyError::BadSignature))
        ));
        assert!(matches!(a.verify_header(&h, &[1, 2, 3], now), Err(AuraError::AuthorSignature(_))));
        assert_eq!(a.verify_header(&header(10, 7), &[], now), Err(AuraError::UnknownAuthority(7)));
    }

    #[test]
    fn future_slots_are_refused_beyond_tolerance() {
        let k = keys(1);
        let a = aura(&k);
        let h = header(11, 0);
        let sig = k[0].sign(&h.hash()).to_bytes();
        // Slot 11 starts at 22,000 ms; tolerance 500 ms.
        assert_eq!(a.verify_header(&h, &sig, 21_000), Err(AuraError::FutureSlot { slot: 11, local: 10 }));
        a.verify_header(&h, &sig, 21_500).unwrap();
        a.verify_header(&h, &sig, 22_000).unwrap();
    }

    #[test]
    fn approvals_need_a_verified_two_thirds() {
        let k = keys(4);
        let a = aura(&k);
        let hash = B256::repeat_byte(5);
        let sign = |idx: &[u32]| {
            let sigs: Vec<_> = idx.iter().map(|i| k[*i as usize].sign(&hash)).collect();
            let refs: Vec<_> = sigs.iter().collect();
            Approvals {
                signers: Approvals::bitfield(idx.iter().copied()),
                signature: BlsSignature::aggregate(&refs).unwrap().to_bytes().to_vec().into(),
            }
        };
        assert_eq!(a.verify_approvals(&hash, &sign(&[0, 1, 3])), Ok(3));
        assert_eq!(
            a.verify_approvals(&hash, &sign(&[0, 1])),
            Err(AuraError::NotEnoughApprovals { have: 2, need: 3 })
        );
        let mut lying = sign(&[0, 1, 3]);
        lying.signers = Approvals::bitfield([0, 1, 2]);
        assert!(matches!(a.verify_approvals(&hash, &lying), Err(AuraError::ApprovalSignature(_))));
        let mut unknown = sign(&[0, 1, 3]);
        unknown.signers = Approvals::bitfield([0, 1, 3, 40]);
        assert_eq!(a.verify_approvals(&hash, &unknown), Err(AuraError::UnknownAuthority(40)));
        assert!(matches!(
            a.verify_approvals(&B256::ZERO, &sign(&[0, 1, 3])),
            Err(AuraError::ApprovalSignature(KeyError::BadSignature))
        ));
    }

    #[test]
    fn a_parent_seal_needs_its_author_and_a_verified_quorum_over_the_parent() {
        let k = keys(4);
        let a = aura(&k);
        let hash = B256::repeat_byte(5);
        let approvals = |idx: &[u32], over: &B256| {
            let sigs: Vec<_> = idx.iter().map(|i| k[*i as usize].sign(over)).collect();
            let refs: Vec<_> = sigs.iter().collect();
            Approvals {
                signers: Approvals::bitfield(idx.iter().copied()),
                signature: BlsSignature::aggregate(&refs).unwrap().to_bytes().to_vec().into(),
            }
        };
        let author = |i: usize, over: &B256| -> Bytes { k[i].sign(over).to_bytes().to_vec().into() };
        let seal = Seal { author_signature: author(2, &hash), approvals: approvals(&[0, 2, 3], &hash) };
        a.verify_seal(&hash, 2, &seal).unwrap();
        let refused = |author: u32, seal: &Seal| match a.verify_seal(&hash, author, seal) {
            Err(AuraError::ParentSeal(inner)) => *inner,
            other => panic!("expected a refused parent seal, got {other:?}"),
        };
        // Another author's block, or a signature over another block: the author signature is wrong.
        assert!(matches!(refused(1, &seal), AuraError::ApprovalSignature(KeyError::BadSignature)));
        let other = Seal { author_signature: author(2, &B256::ZERO), ..seal.clone() };
        assert!(matches!(refused(2, &other), AuraError::ApprovalSignature(KeyError::BadSignature)));
        // Approvals short of the quorum, over another block, or naming an unknown authority.
        let short = Seal { approvals: approvals(&[0, 2], &hash), ..seal.clone() };
        assert_eq!(refused(2, &short), AuraError::NotEnoughApprovals { have: 2, need: 3 });
        let elsewhere = Seal { approvals: approvals(&[0, 2, 3], &B256::ZERO), ..seal.clone() };
        assert!(matches!(refused(2, &elsewhere), AuraError::ApprovalSignature(KeyError::BadSignature)));
        assert_eq!(refused(9, &seal), AuraError::UnknownAuthority(9));
        // Garbage bytes and the empty seal are refused with a reason, not a panic.
        let garbage = Seal { author_signature: Bytes::from_static(&[1, 2, 3]), ..seal };
        assert!(matches!(refused(2, &garbage), AuraError::AuthorSignature(_)));
        assert!(matches!(refused(2, &Seal::default()), AuraError::AuthorSignature(_)));
    }

    #[test]
    fn the_last_blocks_quorum_vouches_for_the_chain_linked_to_it() {
        let k = keys(3);
        let a = aura(&k);
        let seal_of = |header: &ConsensusHeader| {
            let hash = header.hash();
            let (own, next) =
                (k[header.author as usize].sign(&hash), k[(header.author as usize + 1) % 3].sign(&hash));
            Seal {
                author_signature: own.to_bytes().to_vec().into(),
                approvals: Approvals {
                    signers: Approvals::bitfield([header.author, (header.author + 1) % 3]),
                    signature: BlsSignature::aggregate(&[&own, &next]).unwrap().to_bytes().to_vec().into(),
                },
            }
        };
        let mut chain: Vec<(ConsensusHeader, Seal)> = Vec::new();
        for slot in 10..15u64 {
            let mut header = header(slot, (slot % 3) as u32);
            if let Some((parent, seal)) = chain.last() {
                header.parent_hash = parent.hash();
                header.parent_seal = seal.clone();
            }
            let seal = seal_of(&header);
            chain.push((header, seal));
        }
        let now = 15 * 2_000;
        let vouched = |chain: &[(ConsensusHeader, Seal)]| {
            let range: Vec<(&ConsensusHeader, &[u8], &Approvals)> =
                chain.iter().map(|(h, s)| (h, s.author_signature.as_ref(), &s.approvals)).collect();
            a.vouched_from(&range, now)
        };
        assert_eq!(vouched(&chain), 0, "every block descends to the verified last one");
        assert_eq!(vouched(&[]), 0);
        // A broken link: only the blocks above it are vouched for.
        let mut broken = chain.clone();
        broken[2].0.auxpow = Bytes::from_static(b"not what the child committed to");
        assert_eq!(vouched(&broken), 3);
        // The last block's seal does not verify (another block's), or its slot is not yet: none are.
        let mut forged = chain.clone();
        forged[4].1 = chain[3].1.clone();
        assert_eq!(vouched(&forged), 5);
        assert_eq!(
            a.vouched_from(&[(&chain[4].0, chain[4].1.author_signature.as_ref(), &chain[4].1.approvals)], 0),
            1
        );
    }

    #[test]
    fn child_must_extend_parent() {
        let a = aura(&keys(1));
        let parent = header(10, 0);
        let child = ConsensusHeader { parent_hash: parent.hash(), height: 2, slot: 11, ..header(11, 0) };
        a.check_child(&parent, &child).unwrap();
        let same_slot = ConsensusHeader { slot: 10, ..child.clone() };
        assert!(matches!(a.check_child(&parent, &same_slot), Err(AuraError::NotChild(_))));
        let gap = ConsensusHeader { height: 3, ..child.clone() };
        assert!(matches!(a.check_child(&parent, &gap), Err(AuraError::NotChild("height"))));
        let orphan = ConsensusHeader { parent_hash: B256::ZERO, ..child };
        assert!(matches!(a.check_child(&parent, &orphan), Err(AuraError::NotChild("parent hash"))));
    }

    #[test]
    fn equivocation_is_detected_once_per_conflict() {
        let mut d = EquivocationDetector::default();
        let (x, y) = (B256::repeat_byte(1), B256::repeat_byte(2));
        d.observe(5, 1, x).unwrap();
        d.observe(5, 1, x).unwrap();
        d.observe(5, 2, y).unwrap();
        assert_eq!(d.observe(5, 1, y), Err(Equivocation { slot: 5, author: 1, first: x, second: y }));
        d.observe(6, 1, y).unwrap();
        d.prune_below(6);
        assert_eq!(d.len(), 1);
        d.observe(5, 1, y).unwrap();
    }
}
