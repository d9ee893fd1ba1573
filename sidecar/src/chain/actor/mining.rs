//! The ChainActor's merged-mining duties: work templates, proof submission, proofs in blocks,
//! finalization, difficulty, and stopping production when proofs stop coming.

use std::collections::HashMap;

use alloy_eips::eip4895::Withdrawal;
use alloy_primitives::{Address, B256, Bytes, U256};

use super::{ChainActor, ImportError};
use crate::{
    auxpow::{AuxPowHeader, batch_fees, pow, reward_withdrawals},
    chain::execution::decode_execution_block,
    storage::{BlockRef, StoreError},
};

const POW_STATE: &str = "pow_state";
const QUEUED_POW: &str = "queued_pow";
/// Templates kept per finalized block; older ones are dropped first.
const MAX_TEMPLATES: usize = 1024;

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
    Malformed(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Merged-mining state of the chain.
#[derive(Debug, Default)]
pub(super) struct MiningState {
    /// The current compact target.
    pub(super) bits: u32,
    /// Execution timestamp of the block that carried the last proof (genesis time before any).
    pub(super) last_proof_secs: u64,
    /// A valid proof waiting for the next block this node authors.
    pub(super) queued: Option<AuxPowHeader>,
    /// Templates handed out for the current finalized block, by committed hash, with the miner's
    /// coinbase value in satoshis.
    pub(super) templates: HashMap<B256, (AuxPowHeader, u64)>,
}

impl MiningState {
    fn encode_state(bits: u32, last_proof_secs: u64) -> [u8; 12] {
        let mut out = [0u8; 12];
        out[..4].copy_from_slice(&bits.to_be_bytes());
        out[4..].copy_from_slice(&last_proof_secs.to_be_bytes());
        out
    }

    /// Loads the state from the store, or starts at the pow limit at genesis time.
    pub(super) fn load(
        store: &crate::storage::Store,
        pow_limit_bits: u32,
        genesis_secs: u64,
    ) -> Result<Self, StoreError> {
        let (bits, last_proof_secs) = match store.get_meta(POW_STATE)? {
            Some(bytes) => {
                let bits = bytes.get(..4).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes);
                let secs = bytes.get(4..12).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
                (bits.unwrap_or(pow_limit_bits), secs.unwrap_or(genesis_secs))
            }
            None => (pow_limit_bits, genesis_secs),
        };
        let queued = store.get_meta(QUEUED_POW)?.and_then(|bytes| AuxPowHeader::decode(&bytes).ok());
        Ok(Self { bits, last_proof_secs, queued, templates: HashMap::new() })
    }
}

impl ChainActor {
    /// The hash of the last finalized consensus block (the execution genesis hash before any proof).
    pub(super) fn finalized_ref(&self) -> Result<BlockRef, StoreError> {
        Ok(self.store.finalized()?.unwrap_or(BlockRef { height: 0, hash: self.config.genesis_hash }))
    }

    /// Blocks waiting for a proof.
    pub(super) fn blocks_without_pow(&self) -> Result<u64, StoreError> {
        Ok(self.head.block.height.saturating_sub(self.finalized_ref()?.height))
    }

    /// Why production is stopped, if it is: too many blocks without a proof and none queued.
    pub(super) fn production_stopped(&self) -> Result<Option<String>, StoreError> {
        let waiting = self.blocks_without_pow()?;
        // Governance may change the limit (PARAMETER_CHANGE `max_blocks_without_pow`) from a height on.
        let limit =
            self.config.runtime.state_at(self.head.block.height + 1).parameters.max_blocks_without_pow;
        if waiting >= limit && self.includable_proof()?.is_none() {
            return Ok(Some(format!("{waiting} blocks without AuxPow (limit {limit}); waiting for a proof")));
        }
        Ok(None)
    }

    /// `createauxblock`: a template committing to the unfinalized blocks and the miner's address.
    pub fn create_aux_block(&mut self, miner: Address) -> Result<AuxTemplate, MiningError> {
        let finalized = self.finalized_ref()?;
        if self.head.block.height <= finalized.height {
            return Err(MiningError::NothingToFinalize);
        }
        let params = self.config.auxpow;
        // One template per payout address and head: repeated polls get the same work.
        let head = self.head.block;
        let cached = self
            .mining
            .templates
            .iter()
            .find(|(_, (t, _))| t.miner == miner && t.head == head.hash && t.finalized == finalized.hash)
            .map(|(hash, (_, value))| (*hash, *value));
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
        let fees = self.range_fees(&header)?;
        let miner_gwei = reward_withdrawals(fees, miner, params.split, 0)
            .into_iter()
            .find(|w| w.address == miner)
            .map_or(0, |w| w.amount);
        let coinbase_value = miner_gwei / alys_contracts::GWEI_PER_SAT;
        let answer = template(hash, coinbase_value, self.mining.bits);
        if self.mining.templates.len() >= MAX_TEMPLATES {
            self.mining.templates.clear();
        }
        self.mining.templates.insert(hash, (header, coinbase_value));
        Ok(answer)
    }

    /// `submitauxblock`: `Ok(true)` when the proof is valid for a template we issued and is now queued
    /// for the next block; `Ok(false)` for unknown or stale templates and proofs that fail a rule.
    pub fn submit_aux_block(&mut self, hash: B256, proof: Bytes) -> Result<bool, MiningError> {
        let decoded = pow::decode_auxpow(&proof).map_err(|e| MiningError::Malformed(e.to_string()))?;
        let Some((template, _)) = self.mining.templates.get(&hash).cloned() else {
            tracing::info!(target: "alys::auxpow", %hash, "submitted proof for an unknown template");
            return Ok(false);
        };
        if template.finalized != self.finalized_ref()?.hash {
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
        self.store.put_meta(QUEUED_POW, &queued.encoded())?;
        self.mining.queued = Some(queued);
        metrics::counter!("alys_auxpow_accepted_total").increment(1);
        tracing::info!(target: "alys::auxpow", %hash, "proof queued for the next block");
        Ok(true)
    }

    /// The queued proof, if it still applies to the current finalized block.
    pub(super) fn includable_proof(&self) -> Result<Option<AuxPowHeader>, StoreError> {
        let finalized = self.finalized_ref()?;
        Ok(self.mining.queued.clone().filter(|q| q.finalized == finalized.hash))
    }

    /// The execution headers of the batch `(proof.finalized, proof.head]`, walking back from `head`.
    fn range_headers(&self, proof: &AuxPowHeader) -> Result<Vec<alloy_consensus::Header>, ImportError> {
        let mut headers = Vec::new();
        let mut cursor = proof.head;
        while cursor != proof.finalized {
            let block = self
                .store
                .block(&cursor)?
                .ok_or(ImportError::AuxPow(format!("batch block {cursor} is unknown")))?;
            if block.header.height == 0 || headers.len() as u64 > proof.head_height {
                return Err(ImportError::AuxPow("batch does not reach the finalized block".into()));
            }
            let execution = decode_execution_block(&block)?;
            cursor = block.header.parent_hash;
            headers.push(execution.header);
        }
        Ok(headers)
    }

    fn range_fees(&self, proof: &AuxPowHeader) -> Result<U256, StoreError> {
        match self.range_headers(proof) {
            Ok(headers) => Ok(batch_fees(&headers)),
            Err(ImportError::Store(e)) => Err(e),
            Err(_) => Ok(U256::ZERO),
        }
    }

    /// The reward withdrawals a block carrying `proof` must mint, after `pegins` peg-in withdrawals.
    pub(super) fn reward_for(
        &self,
        proof: &AuxPowHeader,
        pegins: usize,
    ) -> Result<Vec<Withdrawal>, ImportError> {
        let fees = batch_fees(&self.range_headers(proof)?);
        Ok(reward_withdrawals(fees, proof.miner, self.config.auxpow.split, pegins as u64))
    }

    /// Checks the proof a received block carries: it finalizes a batch after our finalized block that
    /// ends at an ancestor of the block, at the current difficulty, and passes every AuxPow rule.
    pub(super) fn verify_block_auxpow(
        &self,
        parent_hash: B256,
        auxpow: &[u8],
    ) -> Result<AuxPowHeader, ImportError> {
        let proof =
            AuxPowHeader::decode(auxpow).map_err(|e| ImportError::AuxPow(format!("encoding: {e}")))?;
        if proof.finalized != self.finalized_ref()?.hash {
            return Err(ImportError::AuxPow("proof does not start at our finalized block".into()));
        }
        if proof.bits != self.mining.bits {
            return Err(ImportError::AuxPow(format!(
                "bits {:#x}, expected {:#x}",
                proof.bits, self.mining.bits
            )));
        }
        // `head` must be the parent or one of its ancestors.
        let mut cursor = parent_hash;
        loop {
            if cursor == proof.head {
                break;
            }
            let block = self
                .store
                .block(&cursor)?
                .ok_or(ImportError::AuxPow("proof head is not an ancestor of the block".into()))?;
            if block.header.height <= proof.head_height {
                return Err(ImportError::AuxPow("proof head is not an ancestor of the block".into()));
            }
            cursor = block.header.parent_hash;
        }
        let hash = proof.aux_hash(self.config.auxpow.chain_id);
        let decoded = pow::decode_auxpow(&proof.proof).map_err(|e| ImportError::AuxPow(e.to_string()))?;
        pow::check(&decoded, hash, self.config.auxpow.chain_id, proof.bits)
            .map_err(|rule| ImportError::AuxPow(format!("proof refused: {rule}")))?;
        Ok(proof)
    }

    /// Finalizes the batch a committed block's proof covers and retargets, in one store transaction.
    pub(super) fn finalize(&mut self, proof: &AuxPowHeader, block_timestamp: u64) -> Result<(), ImportError> {
        let params = self.config.auxpow;
        let elapsed = block_timestamp.saturating_sub(self.mining.last_proof_secs);
        let bits =
            pow::next_bits(self.mining.bits, elapsed, params.target_spacing_secs, params.pow_limit_bits);
        let state = MiningState::encode_state(bits, block_timestamp);
        let finalized = BlockRef { height: proof.head_height, hash: proof.head };
        self.store.finalize_with(finalized, &[(POW_STATE, &state)])?;
        let head = self.store.block(&proof.head)?.ok_or(StoreError::UnknownBlock(proof.head))?;
        self.finalized_execution_hash = head.header.execution_block_hash;
        self.mining.bits = bits;
        self.mining.last_proof_secs = block_timestamp;
        self.mining.templates.clear();
        if self.mining.queued.as_ref().is_some_and(|q| q.finalized != finalized.hash) {
            self.mining.queued = None;
            self.store.delete_meta(QUEUED_POW)?;
        }
        metrics::gauge!("alys_chain_head_height", "head" => "finalized").set(finalized.height as f64);
        metrics::gauge!("alys_auxpow_bits").set(f64::from(bits));
        tracing::info!(target: "alys::auxpow", height = finalized.height, hash = %finalized.hash, bits = format!("{bits:#x}"), "batch finalized");
        Ok(())
    }
}
