//! The ChainActor's merged-mining duties: work templates, proof submission, proofs in blocks,
//! finalization, difficulty, and stopping production when proofs stop coming.
//!
//! # Difficulty
//!
//! The bits a proof must meet follow the ASERT schedule of [`alys_auxpow::retarget`]: the chain starts
//! anchored at the pow limit at the genesis timestamp, and every committed proof advances the schedule
//! by the execution timestamp of the block that carries it. That schedule ([`PowState`]) is written in
//! the transaction that commits the block, with the finality the proof brings, so the bits in memory,
//! on disk and at every node that imported the same blocks are the same, and a block whose proof met
//! other bits is refused ([`ProofError::WrongBits`]).

use std::collections::HashMap;

use alloy_eips::eip4895::Withdrawal;
use alloy_primitives::{Address, B256, Bytes, U256};

use alys_auxpow::{
    AuxPowHeader, MiningParams, batch_fees, pow,
    retarget::{self, Schedule},
    reward_withdrawals,
};
use alys_consensus::decode_execution_block;
use alys_primitives::BlockRef;
use alys_storage::{ChainRead, PowState, StorageError, WriteTx};

use crate::{
    ChainActor, ImportError,
    templates::{Template, TemplateCache},
};

/// What `createauxblock` answers (Namecoin's and Alys's shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuxTemplate {
    /// The hash the miner's coinbase must commit to.
    pub hash: B256,
    /// Our merged-mining chain id.
    pub chain_id: u32,
    /// The last finalized block: the batch starts after it.
    pub previous_block_hash: B256,
    /// The miner's share of the batch's fees so far, in satoshis.
    pub coinbase_value: u64,
    /// The compact target the proof must meet.
    pub bits: u32,
    /// The height of the batch's last block.
    pub height: u64,
    /// The target as 32 bytes, little-endian, as miners read `_target`.
    pub target_le: [u8; 32],
}

/// Why a mining request was refused.
#[derive(Debug, thiserror::Error)]
pub enum MiningError {
    /// Every block is already finalized: there is nothing to mine yet.
    #[error("no unfinalized blocks to mine")]
    NothingToFinalize,
    /// The submitted proof bytes are not a CAuxPow.
    #[error("malformed auxpow: {0}")]
    Malformed(#[source] pow::AuxPowError),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why the merged-mining proof a block carries was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// The block's `auxpow` field is not an [`AuxPowHeader`].
    #[error("proof header does not decode: {0}")]
    Encoding(#[source] alloy_rlp::Error),
    /// The proof does not start at this node's finalized block.
    #[error("proof does not start at our finalized block")]
    WrongFinalized,
    /// The proof met another target than the current one.
    #[error("bits {got:#x}, expected {expected:#x}")]
    WrongBits {
        /// The proof's bits.
        got: u32,
        /// The current bits.
        expected: u32,
    },
    /// The batch's last block is not an ancestor of the block carrying the proof.
    #[error("proof head is not an ancestor of the block")]
    NotAncestor,
    /// A block of the batch is not stored.
    #[error("batch block {0} is unknown")]
    UnknownBatchBlock(B256),
    /// Walking back from the batch's head does not reach the finalized block.
    #[error("batch does not reach the finalized block")]
    BatchNotFromFinalized,
    /// The CAuxPow fails a merged-mining rule.
    #[error("proof refused: {0}")]
    Rule(#[from] pow::AuxPowError),
}

/// Merged-mining state of the chain.
#[derive(Debug)]
pub(crate) struct MiningState {
    /// The compact target the next proof must meet: [`Self::schedule`]'s next bits.
    pub(crate) bits: u32,
    /// The retarget schedule after the last committed proof.
    pub(crate) schedule: Schedule,
    /// A valid proof waiting for the next block this node authors.
    pub(crate) queued: Option<AuxPowHeader>,
    /// Templates handed out for the current finalized block.
    pub(crate) templates: TemplateCache,
    /// Fees of the blocks after the finalized block up to each block (by consensus hash), remembered
    /// so a template or a reward costs one header decode per new block, not one per unfinalized block.
    pub(crate) fees: HashMap<B256, U256>,
}

impl MiningState {
    /// Loads the state from the database, or starts anchored at the pow limit at genesis time.
    pub(crate) fn load(
        read: &impl ChainRead,
        params: &MiningParams,
        genesis_secs: u64,
    ) -> Result<Self, StorageError> {
        let schedule = read
            .pow_state()?
            .map_or_else(|| Schedule::anchored_at(params.pow_limit_bits, genesis_secs), schedule_of);
        let bits = schedule.next_bits(&params.retarget());
        record_difficulty(bits, params.pow_limit_bits);
        let queued = read.queued_proof()?.and_then(|bytes| AuxPowHeader::decode(&bytes).ok());
        Ok(Self { bits, schedule, queued, templates: TemplateCache::default(), fees: HashMap::new() })
    }
}

impl ChainActor {
    /// The hash of the last finalized consensus block (the execution genesis hash before any proof).
    pub(crate) fn finalized_ref(&self) -> BlockRef {
        self.heads.borrow().finalized.unwrap_or(BlockRef { height: 0, hash: self.config.genesis_hash })
    }

    /// Blocks waiting for a proof.
    pub(crate) fn blocks_without_pow(&self) -> u64 {
        self.head.block.height.saturating_sub(self.finalized_ref().height)
    }

    /// Why production is stopped, if it is: too many blocks without a proof and none queued.
    pub(crate) fn production_stopped(&self) -> Option<String> {
        let waiting = self.blocks_without_pow();
        // Governance may change the limit (PARAMETER_CHANGE `max_blocks_without_pow`) from a height on.
        let limit =
            self.config.runtime.state_at(self.head.block.height + 1).parameters.max_blocks_without_pow;
        if waiting >= limit && self.includable_proof().is_none() {
            return Some(format!("{waiting} blocks without AuxPow (limit {limit}); waiting for a proof"));
        }
        None
    }

    /// `createauxblock`: a template committing to the unfinalized blocks and the miner's address.
    pub fn create_aux_block(&mut self, miner: Address) -> Result<AuxTemplate, MiningError> {
        let finalized = self.finalized_ref();
        if self.head.block.height <= finalized.height {
            return Err(MiningError::NothingToFinalize);
        }
        let params = self.config.auxpow;
        // One template per payout address and head: repeated polls get the same work.
        let head = self.head.block;
        let cached = self.mining.templates.find(miner, head.hash);
        let template = |hash: B256, coinbase_value: u64, bits: u32| AuxTemplate {
            hash,
            chain_id: params.chain_id,
            previous_block_hash: finalized.hash,
            coinbase_value,
            bits,
            height: head.height,
            target_le: pow::target_le_bytes(bits),
        };
        if let Some((hash, value)) = cached {
            return Ok(template(hash, value, self.mining.bits));
        }
        let header = AuxPowHeader {
            finalized: finalized.hash,
            head: self.head.block.hash,
            head_height: self.head.block.height,
            miner,
            bits: self.mining.bits,
            proof: Bytes::new(),
        };
        let hash = header.aux_hash(params.chain_id);
        let fees = match self.fees_since_finalized(head.hash) {
            Ok(fees) => fees,
            Err(ImportError::Storage(e)) => return Err(e.into()),
            // The head's batch is always stored; anything else is not worth refusing work over.
            Err(_) => U256::ZERO,
        };
        let miner_gwei = reward_withdrawals(fees, miner, params.split, 0)
            .into_iter()
            .find(|w| w.address == miner)
            .map_or(0, |w| w.amount);
        let coinbase_value = miner_gwei / alys_contracts::GWEI_PER_SAT;
        let answer = template(hash, coinbase_value, self.mining.bits);
        self.mining.templates.insert(hash, Template { header, coinbase_value });
        metrics::gauge!("alys_auxpow_templates").set(self.mining.templates.len() as f64);
        Ok(answer)
    }

    /// `submitauxblock`: `Ok(true)` when the proof is valid for a template we issued and is now queued
    /// for the next block; `Ok(false)` for unknown or stale templates and proofs that fail a rule.
    pub fn submit_aux_block(&mut self, hash: B256, proof: Bytes) -> Result<bool, MiningError> {
        let decoded = pow::decode_auxpow(&proof).map_err(MiningError::Malformed)?;
        let Some(template) = self.mining.templates.get(&hash).map(|t| t.header.clone()) else {
            tracing::info!(target: "alys::auxpow", %hash, "submitted proof for an unknown template");
            return Ok(false);
        };
        if template.finalized != self.finalized_ref().hash {
            tracing::info!(target: "alys::auxpow", %hash, "submitted proof for a stale template");
            return Ok(false);
        }
        let params = self.config.auxpow;
        if let Err(rule) = pow::check(&decoded, hash, params.chain_id, template.bits) {
            metrics::counter!("alys_auxpow_rejected_total").increment(1);
            tracing::info!(target: "alys::auxpow", %hash, %rule, "submitted proof refused");
            return Ok(false);
        }
        let queued = AuxPowHeader { proof, ..template };
        let tx = self.storage.write()?;
        tx.set_queued_proof(Some(&queued.encoded()))?;
        alys_primitives::crash_point!("mining::queue::before");
        tx.commit()?;
        alys_primitives::crash_point!("mining::queue::after");
        self.mining.queued = Some(queued);
        metrics::counter!("alys_auxpow_accepted_total").increment(1);
        tracing::info!(target: "alys::auxpow", %hash, "proof queued for the next block");
        Ok(true)
    }

    /// The queued proof, if it still applies to the current finalized block.
    pub(crate) fn includable_proof(&self) -> Option<AuxPowHeader> {
        let finalized = self.finalized_ref();
        self.mining.queued.clone().filter(|q| q.finalized == finalized.hash)
    }

    /// The fees of the blocks after the finalized block up to and including `hash`, which must
    /// descend from the finalized block: from memory, decoding only the blocks not seen before.
    pub(crate) fn fees_since_finalized(&mut self, hash: B256) -> Result<U256, ImportError> {
        let finalized = self.finalized_ref();
        // Walk back to the finalized block or a block already summed.
        let mut unseen = Vec::new();
        let mut cursor = hash;
        let mut base = U256::ZERO;
        let read = self.storage.read()?;
        while cursor != finalized.hash {
            if let Some(sum) = self.mining.fees.get(&cursor) {
                base = *sum;
                break;
            }
            let block = read.block(&cursor)?.ok_or(ProofError::UnknownBatchBlock(cursor))?;
            if block.header.height <= finalized.height {
                return Err(ProofError::BatchNotFromFinalized.into());
            }
            let execution = decode_execution_block(&block)?;
            unseen.push((cursor, batch_fees([&execution.header])));
            cursor = block.header.parent_hash;
        }
        for (block, fee) in unseen.into_iter().rev() {
            base = base.saturating_add(fee);
            self.mining.fees.insert(block, base);
        }
        Ok(base)
    }

    /// The reward withdrawals a block carrying `proof` must mint, after `pegins` peg-in withdrawals.
    pub(crate) fn reward_for(
        &mut self,
        proof: &AuxPowHeader,
        first_index: usize,
    ) -> Result<Vec<Withdrawal>, ImportError> {
        if proof.finalized != self.finalized_ref().hash {
            return Err(ProofError::WrongFinalized.into());
        }
        let fees = self.fees_since_finalized(proof.head)?;
        Ok(reward_withdrawals(fees, proof.miner, self.config.auxpow.split, first_index as u64))
    }

    /// Checks the proof a received block carries: it finalizes a batch after our finalized block that
    /// ends at an ancestor of the block, at the current difficulty, and passes every AuxPow rule.
    pub(crate) fn verify_block_auxpow(
        &self,
        parent_hash: B256,
        auxpow: &[u8],
    ) -> Result<AuxPowHeader, ImportError> {
        let proof = AuxPowHeader::decode(auxpow).map_err(ProofError::Encoding)?;
        if proof.finalized != self.finalized_ref().hash {
            return Err(ProofError::WrongFinalized.into());
        }
        if proof.bits != self.mining.bits {
            return Err(ProofError::WrongBits { got: proof.bits, expected: self.mining.bits }.into());
        }
        // `head` must be the parent or one of its ancestors.
        let mut cursor = parent_hash;
        let read = self.storage.read()?;
        while cursor != proof.head {
            let block = read.block(&cursor)?.ok_or(ProofError::NotAncestor)?;
            if block.header.height <= proof.head_height {
                return Err(ProofError::NotAncestor.into());
            }
            cursor = block.header.parent_hash;
        }
        let hash = proof.aux_hash(self.config.auxpow.chain_id);
        let decoded = pow::decode_auxpow(&proof.proof).map_err(ProofError::Rule)?;
        pow::check(&decoded, hash, self.config.auxpow.chain_id, proof.bits).map_err(ProofError::Rule)?;
        Ok(proof)
    }

    /// Writes, into the transaction that commits the block carrying `proof`, the finality the proof
    /// brings, the retargeted difficulty and the end of the queued proof it consumed; returns what
    /// memory becomes once that transaction committed ([`Self::apply_finalization`]).
    pub(crate) fn stage_finalization(
        &self,
        tx: &WriteTx,
        proof: &AuxPowHeader,
        block_timestamp: u64,
        after: Option<&Finalization>,
    ) -> Result<Finalization, ImportError> {
        let retarget = self.config.auxpow.retarget();
        // `after`: a finalization staged earlier in the same transaction (the proofs of a branch that
        // becomes canonical, applied in order).
        let schedule =
            after.map_or(self.mining.schedule, |f| f.schedule).after_proof(block_timestamp, &retarget);
        let bits = schedule.next_bits(&retarget);
        let finalized = BlockRef { height: proof.head_height, hash: proof.head };
        tx.set_finalized(finalized)?;
        tx.set_pow_state(stored(schedule))?;
        let finalized_block = tx.block(&proof.head)?.ok_or(StorageError::UnknownBlock(proof.head))?;
        // A queued proof for the batch that just got finalized can never be included any more.
        let drop_queued = self.mining.queued.as_ref().is_some_and(|q| q.finalized != finalized.hash);
        if drop_queued {
            tx.set_queued_proof(None)?;
        }
        Ok(Finalization {
            finalized,
            finalized_slot: finalized_block.header.slot,
            execution_hash: finalized_block.header.execution_block_hash,
            bits,
            schedule,
            drop_queued,
        })
    }

    /// Makes memory match a committed finalization.
    pub(crate) fn apply_finalization(&mut self, f: Finalization) {
        self.finalized_execution_hash = f.execution_hash;
        self.mining.bits = f.bits;
        self.mining.schedule = f.schedule;
        self.mining.templates.clear();
        self.mining.fees.clear();
        if f.drop_queued {
            self.mining.queued = None;
        }
        // Blocks of slots at or below the finalized one can never be imported again.
        self.equivocations.prune_below(f.finalized_slot);
        self.publish_heads_with(Some(f.finalized));
        metrics::gauge!("alys_chain_head_height", "head" => "finalized").set(f.finalized.height as f64);
        let difficulty = record_difficulty(f.bits, self.config.auxpow.pow_limit_bits);
        tracing::info!(target: "alys::auxpow", height = f.finalized.height, hash = %f.finalized.hash,
            bits = format!("{:#010x}", f.bits), difficulty,
            schedule_lag_secs = f.schedule.lag_secs(self.config.auxpow.target_spacing_secs) as i64,
            "batch finalized");
    }
}

/// What a committed finalization changes in memory.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Finalization {
    finalized: BlockRef,
    finalized_slot: u64,
    execution_hash: B256,
    bits: u32,
    schedule: Schedule,
    drop_queued: bool,
}

/// The stored form of a schedule.
const fn stored(schedule: Schedule) -> PowState {
    PowState {
        anchor_bits: schedule.anchor_bits,
        anchor_secs: schedule.anchor_secs,
        proofs_since_anchor: schedule.proofs_since_anchor,
        last_proof_secs: schedule.last_proof_secs,
    }
}

/// The schedule a stored record holds.
const fn schedule_of(state: PowState) -> Schedule {
    Schedule {
        anchor_bits: state.anchor_bits,
        anchor_secs: state.anchor_secs,
        proofs_since_anchor: state.proofs_since_anchor,
        last_proof_secs: state.last_proof_secs,
    }
}

/// Sets the `alys_auxpow_bits` and `alys_auxpow_difficulty` gauges; returns the difficulty.
fn record_difficulty(bits: u32, pow_limit_bits: u32) -> f64 {
    let difficulty = retarget::difficulty(bits, pow_limit_bits);
    metrics::gauge!("alys_auxpow_bits").set(f64::from(bits));
    metrics::gauge!("alys_auxpow_difficulty").set(difficulty);
    difficulty
}

#[cfg(test)]
mod tests {
    use alys_auxpow::RewardSplit;
    use alys_storage::Storage;

    use super::*;

    const LIMIT: u32 = 0x207f_ffff;
    const PARAMS: MiningParams = MiningParams {
        chain_id: 0x2121,
        pow_limit_bits: LIMIT,
        target_spacing_secs: 10,
        target_half_life_secs: 100,
        split: RewardSplit { miner_percent: 80, federation: Address::ZERO },
    };
    const GENESIS: u64 = 1_700_000_000;

    fn load(store: &Storage) -> MiningState {
        MiningState::load(&store.read().unwrap(), &PARAMS, GENESIS).unwrap()
    }

    fn commit(store: &Storage, state: PowState) {
        let tx = store.write().unwrap();
        tx.set_pow_state(state).unwrap();
        tx.commit().unwrap();
    }

    #[test]
    fn a_new_chain_starts_anchored_at_the_pow_limit_at_genesis() {
        let state = load(&Storage::in_memory().unwrap());
        assert_eq!(state.bits, LIMIT);
        assert_eq!(state.schedule, Schedule::anchored_at(LIMIT, GENESIS));
    }

    #[test]
    fn the_stored_schedule_gives_every_node_the_same_bits_after_a_restart() {
        // Five proofs, one per 2 s slot: 8 s ahead of the 10 s schedule each.
        let retarget = PARAMS.retarget();
        let schedule = (1..=5u64)
            .fold(Schedule::anchored_at(LIMIT, GENESIS), |s, n| s.after_proof(GENESIS + 2 * n, &retarget));
        let store = Storage::in_memory().unwrap();
        commit(&store, stored(schedule));
        let state = load(&store);
        assert_eq!(state.schedule, schedule);
        assert_eq!(schedule_of(stored(schedule)), schedule);
        assert_eq!(state.bits, schedule.next_bits(&retarget));
        // 40 s ahead with a 100 s half-life: 2^-0.4 of the limit, harder than it.
        let ratio = retarget::difficulty(state.bits, LIMIT);
        assert!((ratio - 2f64.powf(0.4)).abs() < 1e-3, "{ratio}");
        // Another node that imported the same proofs loads the same bits.
        let other = Storage::in_memory().unwrap();
        commit(&other, stored(schedule));
        assert_eq!(load(&other).bits, state.bits);
    }

    #[test]
    fn a_database_from_before_asert_keeps_the_bits_it_had_set() {
        let store = Storage::in_memory().unwrap();
        commit(&store, PowState::from_legacy(0x1f00_ffff, GENESIS + 600));
        let state = load(&store);
        assert_eq!(state.bits, 0x1f00_ffff);
        assert_eq!(state.schedule, Schedule::anchored_at(0x1f00_ffff, GENESIS + 600));
        // The next proof, on time, keeps them; an early one hardens them.
        let retarget = PARAMS.retarget();
        assert_eq!(state.schedule.after_proof(GENESIS + 610, &retarget).next_bits(&retarget), 0x1f00_ffff);
        let early = state.schedule.after_proof(GENESIS + 602, &retarget).next_bits(&retarget);
        assert!(retarget::difficulty(early, LIMIT) > retarget::difficulty(0x1f00_ffff, LIMIT));
    }
}
