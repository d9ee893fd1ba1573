//! The ChainActor's side of a federation of several authorities: proposals, approvals, equivocation
//! evidence, proofs from other nodes, and fork choice.
//!
//! # A block's way to the chain with n authorities
//!
//! ```text
//!  author (slot s)                          every other authority                every node
//!  build, sign, execute ──Proposed──▶ gossip ──▶ check as an import would,
//!                                              execute (newPayload), sign
//!  collect ⌈2n/3⌉ ◀──────── gossip ◀──────── Approval(hash, index, signature)
//!  aggregate, commit ──Block──▶ gossip ───────────────────────────────────────▶ import (approvals
//!                                                                                 checked, the rest
//!                                                                                 already checked)
//! ```
//!
//! An authority approves only a block that extends its own head, once per (slot, author): it never
//! approves two blocks of a slot, so two conflicting blocks can never both gather a quorum. A proposal
//! that has not gathered its approvals when the next slot begins is dropped.
//!
//! # Equivocation
//!
//! The first signed header seen for each (slot, author) is remembered; a second, different one makes
//! [`EquivocationEvidence`] (both signed headers): stored, counted, gossiped, and the second block is
//! refused. Evidence from the network is checked (both signatures, same slot and author) and stored
//! the same way.
//!
//! # Fork choice
//!
//! A block becomes the head when it extends the head; otherwise its branch must carry more merged-mining
//! work (the difficulty of the proofs in blocks after the common ancestor) than the head's branch, or as
//! much work and more blocks. Nothing below the finalized block is ever reorganized
//! ([`alys_storage::StorageError::BelowFinalized`]).

use std::collections::BTreeMap;

use alloy_primitives::{B256, Bytes};
use alys_auxpow::{AuxPowHeader, retarget};
use alys_consensus::{Aura, AuraError};
use alys_primitives::{
    Approval, Approvals, BlsSignature, ConsensusHeader, EquivocationEvidence, SignedBlock,
};
use alys_storage::{ChainRead, EvidenceRead, StorageError};

use crate::{
    ChainActor, ImportError,
    execution::{Executed, Execution},
    mining::ProofError,
};

/// What the chain sends out to the network.
#[derive(Debug, Clone)]
pub enum ChainEvent {
    /// A block this node authored, waiting for approvals: gossip it as a proposal.
    Proposed(Box<SignedBlock>),
    /// A block this node authored, with its approvals, now committed: gossip it as a block.
    Block(Box<SignedBlock>),
    /// Equivocation evidence this node found: gossip it.
    Equivocation(Box<EquivocationEvidence>),
    /// A merged-mining proof a miner submitted here (an encoded `AuxPowHeader`): gossip it, so the next
    /// author can include it.
    Proof(Bytes),
}

/// What an approval from the network did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalOutcome {
    /// It approves this node's pending block and was counted.
    Counted,
    /// It completed the quorum: the block is committed and gossiped.
    Completed,
    /// A valid approval of a block this node is not collecting for (it may be someone else's).
    NotOurs,
    /// Already counted.
    Duplicate,
}

/// This node's block waiting for approvals.
#[derive(Debug)]
pub(crate) struct Pending {
    block: SignedBlock,
    hash: B256,
    executed: Executed,
    signatures: BTreeMap<u32, BlsSignature>,
    proposed_at: std::time::Instant,
}

impl ChainActor {
    /// Sends an event to the network, never waiting: a full queue drops it (gossip is best effort; a
    /// node that missed a block syncs it).
    pub(crate) fn emit(&self, event: ChainEvent) {
        if let Some(events) = &self.events
            && events.try_send(event).is_err()
        {
            metrics::counter!("alys_chain_events_dropped_total").increment(1);
        }
    }

    /// Keeps this node's signed, executed block until `need` approvals arrive, and gossips it.
    pub(crate) fn propose(&mut self, block: SignedBlock, hash: B256, own: BlsSignature, executed: Executed) {
        let index = block.header.author;
        self.last_vote = Some((block.header.height, block.header.slot));
        let mut signatures = BTreeMap::new();
        signatures.insert(index, own);
        self.emit(ChainEvent::Proposed(Box::new(block.clone())));
        tracing::debug!(target: "alys::chain", slot = block.header.slot, height = block.header.height,
            %hash, "proposed block; waiting for approvals");
        self.pending =
            Some(Pending { block, hash, executed, signatures, proposed_at: std::time::Instant::now() });
    }

    /// Drops this node's pending block once its slot is over without a quorum.
    pub(crate) fn expire_pending(&mut self, slot: u64) {
        if self.pending.as_ref().is_some_and(|p| p.block.header.slot < slot)
            && let Some(pending) = self.pending.take()
        {
            metrics::counter!("alys_chain_slots_skipped_total", "reason" => "no_quorum").increment(1);
            tracing::warn!(target: "alys::chain", slot = pending.block.header.slot,
                approvals = pending.signatures.len(), "proposal expired without enough approvals");
        }
    }

    /// Records a signed header for its (slot, author); a different header already seen for that pair is
    /// an equivocation: evidence is stored and gossiped, and this header refused.
    pub(crate) fn observe(&mut self, header: &ConsensusHeader, signature: &Bytes) -> Result<(), ImportError> {
        let hash = header.hash();
        match self.equivocations.observe(header.slot, header.author, hash) {
            Ok(()) => {
                self.seen_headers
                    .get_or_insert((header.slot, header.author), || (header.clone(), signature.clone()));
                Ok(())
            }
            Err(_) => {
                if let Some((first, first_signature)) =
                    self.seen_headers.get(&(header.slot, header.author)).cloned()
                {
                    let evidence = EquivocationEvidence {
                        first,
                        first_signature,
                        second: header.clone(),
                        second_signature: signature.clone(),
                    };
                    self.record_evidence(&evidence)?;
                }
                Err(ImportError::Equivocation { slot: header.slot, author: header.author })
            }
        }
    }

    /// Stores checked evidence; when it is new, counts and gossips it. Whether it was new.
    fn record_evidence(&mut self, evidence: &EquivocationEvidence) -> Result<bool, ImportError> {
        let tx = self.storage.write()?;
        let new = tx.put_equivocation(evidence)?;
        tx.commit()?;
        if new {
            self.equivocation_count += 1;
            metrics::counter!("alys_chain_equivocations_total").increment(1);
            tracing::warn!(target: "alys::chain", slot = evidence.first.slot, author = evidence.first.author,
                first = %evidence.first.hash(), second = %evidence.second.hash(), "equivocation");
            self.emit(ChainEvent::Equivocation(Box::new(evidence.clone())));
        }
        Ok(new)
    }

    /// Evidence from the network: checked, stored if new, and its second block refused from now on.
    pub(crate) fn on_evidence(&mut self, evidence: EquivocationEvidence) -> Result<bool, ImportError> {
        self.aura.verify_evidence(&evidence)?;
        if self.storage.read()?.equivocation(evidence.first.slot, evidence.first.author)?.is_some() {
            return Ok(false);
        }
        // Whichever of the two this node saw first stays the one it accepts.
        let (slot, author) = (evidence.first.slot, evidence.first.author);
        let _ = self.equivocations.observe(slot, author, evidence.first.hash());
        self.seen_headers
            .get_or_insert((slot, author), || (evidence.first.clone(), evidence.first_signature.clone()));
        self.record_evidence(&evidence)
    }

    /// Another authority's proposal: checked in full (without approvals) and executed; if this node is
    /// an authority and the block extends its head, its approval.
    pub(crate) async fn on_proposal(&mut self, block: SignedBlock) -> Result<Option<Approval>, ImportError> {
        let hash = block.header.hash();
        // Who signed it, first, on every node: a forged proposal penalizes its sender, and a second
        // block of a (slot, author) becomes evidence whatever else is wrong with it.
        self.aura.verify_header(&block.header, &block.author_signature, (self.config.clock)())?;
        self.observe(&block.header, &block.author_signature)?;
        let Some((key, index)) =
            self.key.clone().and_then(|key| self.aura.index_of(key.public()).map(|index| (key, index)))
        else {
            // A full node waits for the approved block.
            return Ok(None);
        };
        let approve = |hash: B256| Approval {
            block_hash: hash,
            authority: index,
            signature: key.sign(&hash).to_bytes().to_vec().into(),
        };
        if self.validated.get(&hash).is_some() {
            return Ok(Some(approve(hash)));
        }
        if block.header.parent_hash != self.head.block.hash {
            return Err(ImportError::NotOnHead {
                parent: block.header.parent_hash,
                head: self.head.block.hash,
            });
        }
        if let Some((height, slot)) = self.last_vote
            && block.header.height <= height
            && block.header.slot < slot.saturating_add(2)
        {
            return Err(ImportError::AlreadyVoted { height, slot });
        }
        let started = std::time::Instant::now();
        let execution: Execution = self.check(&block, hash, false).await?;
        self.execute(&block, execution).await?;
        self.validated.put(hash, ());
        self.last_vote = Some((block.header.height, block.header.slot));
        metrics::histogram!("alys_chain_proposal_check_seconds").record(started.elapsed().as_secs_f64());
        tracing::debug!(target: "alys::chain", slot = block.header.slot, height = block.header.height, %hash,
            "approved proposal");
        Ok(Some(Approval {
            block_hash: hash,
            authority: index,
            signature: key.sign(&hash).to_bytes().to_vec().into(),
        }))
    }

    /// An approval from the network: counted toward this node's pending block; the quorum commits the
    /// block and gossips it with the aggregated approvals.
    pub(crate) async fn on_approval(&mut self, approval: Approval) -> Result<ApprovalOutcome, ImportError> {
        self.aura.verify_approval(&approval)?;
        let need = Aura::required_approvals(self.aura.authorities().len());
        let Some(pending) = self.pending.as_mut().filter(|p| p.hash == approval.block_hash) else {
            return Ok(ApprovalOutcome::NotOurs);
        };
        if pending.signatures.contains_key(&approval.authority) {
            return Ok(ApprovalOutcome::Duplicate);
        }
        let signature =
            BlsSignature::from_bytes(&approval.signature).map_err(AuraError::ApprovalSignature)?;
        pending.signatures.insert(approval.authority, signature);
        if pending.signatures.len() < need {
            return Ok(ApprovalOutcome::Counted);
        }
        let Some(Pending { mut block, hash, executed, signatures, proposed_at }) = self.pending.take() else {
            return Ok(ApprovalOutcome::Counted);
        };
        metrics::histogram!("alys_chain_approval_seconds").record(proposed_at.elapsed().as_secs_f64());
        let all: Vec<&BlsSignature> = signatures.values().collect();
        let aggregate = BlsSignature::aggregate(&all).map_err(AuraError::ApprovalSignature)?;
        block.approvals = Approvals {
            signers: Approvals::bitfield(signatures.keys().copied()),
            signature: aggregate.to_bytes().to_vec().into(),
        };
        if block.header.parent_hash != self.head.block.hash {
            // The head moved while approvals came in (a block from a peer): building on a stale parent
            // would fork; the slot is lost.
            metrics::counter!("alys_chain_slots_skipped_total", "reason" => "head_moved").increment(1);
            return Ok(ApprovalOutcome::Counted);
        }
        self.commit(block.clone(), hash, executed).await?;
        metrics::counter!("alys_chain_blocks_produced_total").increment(1);
        let finalized = self.heads.borrow().finalized.map_or(0, |f| f.height);
        tracing::info!(target: "alys::chain", height = block.header.height, slot = block.header.slot,
            consensus_hash = %hash, approvals = signatures.len(), finalized,
            approval_ms = proposed_at.elapsed().as_millis() as u64, "produced block");
        self.emit(ChainEvent::Block(Box::new(block)));
        Ok(ApprovalOutcome::Completed)
    }

    /// A merged-mining proof another node queued: queued here too when it finalizes a batch ending at an
    /// ancestor of our head, from our finalized block, at the current bits.
    pub(crate) fn on_gossip_proof(&mut self, bytes: &[u8]) -> Result<bool, ImportError> {
        let proof = AuxPowHeader::decode(bytes).map_err(ProofError::Encoding)?;
        if self.mining.queued.as_ref().is_some_and(|q| q.finalized == proof.finalized) {
            return Ok(false);
        }
        // As a block on our head would carry it (the batch may end at the head itself).
        let verified = self.verify_block_auxpow(self.head.block.hash, bytes)?;
        let tx = self.storage.write()?;
        tx.set_queued_proof(Some(bytes))?;
        tx.commit()?;
        self.mining.queued = Some(verified);
        tracing::info!(target: "alys::auxpow", head = %proof.head, "proof from a peer queued for the next block");
        Ok(true)
    }

    /// Whether a block should become the head: it extends the head, or its branch carries more
    /// merged-mining work since the common ancestor than the head's (then more blocks).
    pub(crate) fn prefer(&self, header: &ConsensusHeader) -> Result<bool, ImportError> {
        if header.parent_hash == self.head.block.hash {
            return Ok(true);
        }
        let finalized_height = self.heads.borrow().finalized.map_or(0, |f| f.height);
        if header.height <= finalized_height {
            return Ok(false);
        }
        let read = self.storage.read()?;
        let limit = self.config.auxpow.pow_limit_bits;
        // Work in millionths of the pow limit's difficulty, summed exactly.
        let work = |h: &Option<ConsensusHeader>| -> u128 {
            h.as_ref()
                .and_then(|h| AuxPowHeader::decode(&h.auxpow).ok())
                .map_or(0, |p| (retarget::difficulty(p.bits, limit) * 1e6).max(1.0) as u128)
        };
        let height = |h: &Option<ConsensusHeader>| h.as_ref().map_or(0, |h| h.height);
        let parent = |h: &Option<ConsensusHeader>| -> Result<Option<ConsensusHeader>, ImportError> {
            match h {
                Some(h) if h.height > 1 => Ok(Some(
                    read.block(&h.parent_hash)?.ok_or(StorageError::UnknownBlock(h.parent_hash))?.header,
                )),
                _ => Ok(None),
            }
        };
        // Walk both branches back to their common ancestor, summing each one's work; the ancestor's own
        // work is added to both or neither.
        let (mut new, mut old) = (Some(header.clone()), self.head.header.clone());
        let (mut new_work, mut old_work) = (work(&new), work(&old));
        loop {
            match (&new, &old) {
                (None, None) => break,
                (Some(a), Some(b)) if a.height == b.height && a.hash() == b.hash() => break,
                _ => {}
            }
            if height(&new) >= height(&old) {
                new = parent(&new)?;
                new_work += work(&new);
            } else {
                old = parent(&old)?;
                old_work += work(&old);
            }
        }
        // Both sides counted their common ancestor once; what remains is each branch's own work. A
        // committed proof is never reorganized away (its finality and difficulty stand), so a branch
        // replacing one never wins; otherwise more work, then more blocks.
        let ancestor = work(&new);
        let (new_work, old_work) = (new_work.saturating_sub(ancestor), old_work.saturating_sub(ancestor));
        if old_work > 0 {
            return Ok(false);
        }
        Ok(new_work > 0 || header.height > self.head.block.height)
    }

    /// The merged-mining proofs (with their blocks' execution timestamps) in the blocks of `header`'s
    /// branch between the canonical chain and `header` itself, oldest first.
    pub(crate) fn joined_proofs(
        &self,
        header: &ConsensusHeader,
    ) -> Result<Vec<(AuxPowHeader, u64)>, ImportError> {
        let read = self.storage.read()?;
        let mut out = Vec::new();
        let mut cursor = header.parent_hash;
        let mut height = header.height.saturating_sub(1);
        while height >= 1 && read.canonical_hash(height)? != Some(cursor) {
            let block = read.block(&cursor)?.ok_or(StorageError::UnknownBlock(cursor))?;
            if !block.header.auxpow.is_empty() {
                let proof = AuxPowHeader::decode(&block.header.auxpow).map_err(ProofError::Encoding)?;
                let timestamp = alys_consensus::decode_execution_block(&block)?.header.timestamp;
                out.push((proof, timestamp));
            }
            cursor = block.header.parent_hash;
            height -= 1;
        }
        out.reverse();
        Ok(out)
    }
}
