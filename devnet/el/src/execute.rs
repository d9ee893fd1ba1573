//! Block execution with alloy-evm's Ethereum block executor, for validating payloads and building them.
//!
//! Both paths run the same executor (EIP-2935 and EIP-4788 system calls before the transactions,
//! EIP-7002/7251 request calls and withdrawal credits after them), so a block built here is exactly what
//! validation recomputes.

use std::{borrow::Cow, collections::HashMap, sync::Arc};

use alloy_consensus::{
    BlockBody, EMPTY_OMMER_ROOT_HASH, Header, ReceiptEnvelope, Transaction, TxEnvelope, TxReceipt,
    proofs::{calculate_receipt_root, calculate_transaction_root, calculate_withdrawals_root},
    transaction::Recovered,
};
use alloy_eips::{
    eip1559::BaseFeeParams,
    eip4895::{Withdrawal, Withdrawals},
    eip7685::Requests,
};
use alloy_evm::{
    EvmEnv, EvmFactory,
    block::{BlockExecutionError, BlockExecutor, BlockValidationError},
    eth::{EthBlockExecutionCtx, EthBlockExecutor, EthEvmFactory, receipt_builder::AlloyReceiptBuilder},
};
use alloy_primitives::{Address, B256, Bloom, Bytes, U256};
use alys_chainspec::{ChainSpec, Fork};
use alys_el_api::ExecutedBlock;
use alys_el_pool::BestTransactions;

use crate::{
    forks::AlysForks,
    state::{StateSnapshot, block_db, finish_block_db},
};

/// The most extra data a header may carry.
pub(crate) const MAX_EXTRA_DATA: usize = 32;
/// The smallest gas limit a block may have.
pub(crate) const MIN_GAS_LIMIT: u64 = 5_000;
/// Gas limits move by less than `parent / 1024` per block.
pub(crate) const GAS_LIMIT_BOUND_DIVISOR: u64 = 1024;

/// Why a block failed execution or validation. The text goes into `PayloadStatus.validationError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BlockError {
    /// A header field is inconsistent with the parent or the fork.
    #[error("invalid header: {0}")]
    Header(String),
    /// A transaction could not be executed.
    #[error("execution failed: {0}")]
    Execution(String),
    /// A computed value differs from the header.
    #[error("{field} mismatch: got {got}, expected {expected}")]
    Mismatch {
        /// Which field.
        field: &'static str,
        /// The value in the block.
        got: String,
        /// The value execution produced.
        expected: String,
    },
}

/// What executing a block produced.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) receipts: Vec<ReceiptEnvelope>,
    pub(crate) requests: Requests,
    pub(crate) gas_used: u64,
    pub(crate) state: StateSnapshot,
    pub(crate) state_root: B256,
    pub(crate) logs_bloom: Bloom,
}

/// What the block builder produced.
#[derive(Debug)]
pub(crate) struct Built {
    pub(crate) block: Arc<ExecutedBlock>,
    pub(crate) state: StateSnapshot,
    pub(crate) fees: U256,
    pub(crate) requests: Option<Requests>,
}

/// The fields of a block to build that do not come from execution.
#[derive(Debug, Clone)]
pub(crate) struct BuildAttributes {
    pub(crate) timestamp: u64,
    pub(crate) prev_randao: B256,
    pub(crate) fee_recipient: Address,
    pub(crate) withdrawals: Option<Vec<Withdrawal>>,
    pub(crate) parent_beacon_block_root: Option<B256>,
    pub(crate) extra_data: Bytes,
    /// The gas limit to move towards (by at most `parent / 1024 - 1` per block); `None` keeps the parent's.
    pub(crate) target_gas_limit: Option<u64>,
}

/// The gas limit of a block whose parent has `parent` and whose builder aims at `target`, moving as far
/// as the protocol allows in one block (geth's `CalcGasLimit`).
pub(crate) fn next_gas_limit(parent: u64, target: Option<u64>) -> u64 {
    let Some(target) = target else { return parent };
    let step = (parent / GAS_LIMIT_BOUND_DIVISOR).saturating_sub(1);
    let limit = if target > parent {
        parent.saturating_add(step).min(target)
    } else {
        parent.saturating_sub(step).max(target)
    };
    limit.max(MIN_GAS_LIMIT)
}

/// Executes blocks for one chain spec.
#[derive(Debug, Clone)]
pub(crate) struct Executor {
    spec: Arc<ChainSpec>,
    forks: AlysForks,
}

impl Executor {
    pub(crate) fn new(spec: Arc<ChainSpec>) -> Self {
        let forks = AlysForks::new(&spec);
        Self { spec, forks }
    }

    pub(crate) fn spec(&self) -> &ChainSpec {
        &self.spec
    }

    /// The base fee of the block after `parent`.
    pub(crate) fn next_base_fee(parent: &Header) -> u64 {
        parent.next_block_base_fee(BaseFeeParams::ethereum()).unwrap_or_default()
    }

    /// The excess blob gas of a block after `parent` at `timestamp` (`None` before Cancun).
    pub(crate) fn next_excess_blob_gas(&self, parent: &Header, timestamp: u64) -> Option<u64> {
        let params = self.forks.blob_params_at(timestamp)?;
        Some(parent.next_block_excess_blob_gas(params).unwrap_or_default())
    }

    /// The EVM environment of a header.
    pub(crate) fn blob_params_at(&self, timestamp: u64) -> Option<alloy_eips::eip7840::BlobParams> {
        self.forks.blob_params_at(timestamp)
    }

    pub(crate) fn evm_env(&self, header: &Header) -> EvmEnv {
        EvmEnv::for_eth_block(
            header,
            &self.forks,
            self.spec.chain_id(),
            self.forks.blob_params_at(header.timestamp),
        )
    }

    /// Checks a header against its parent and the fork schedule (everything but execution results).
    pub(crate) fn validate_header(&self, header: &Header, parent: &Header) -> Result<(), BlockError> {
        let fail = |msg: String| Err(BlockError::Header(msg));
        if header.number != parent.number + 1 {
            return fail(format!("block number {} does not follow parent {}", header.number, parent.number));
        }
        if header.timestamp <= parent.timestamp {
            return fail(format!("timestamp {} not after parent {}", header.timestamp, parent.timestamp));
        }
        if header.gas_used > header.gas_limit {
            return fail(format!("gas used {} above gas limit {}", header.gas_used, header.gas_limit));
        }
        let max_delta = parent.gas_limit / GAS_LIMIT_BOUND_DIVISOR;
        if header.gas_limit.abs_diff(parent.gas_limit) >= max_delta || header.gas_limit < MIN_GAS_LIMIT {
            return fail(format!(
                "gas limit {} invalid for parent gas limit {}",
                header.gas_limit, parent.gas_limit
            ));
        }
        let base_fee = Self::next_base_fee(parent);
        if header.base_fee_per_gas != Some(base_fee) {
            return fail(format!("base fee {:?}, expected {base_fee}", header.base_fee_per_gas));
        }
        if header.extra_data.len() > MAX_EXTRA_DATA {
            return fail(format!("extra data is {} bytes", header.extra_data.len()));
        }
        if header.ommers_hash != EMPTY_OMMER_ROOT_HASH
            || !header.difficulty.is_zero()
            || !header.nonce.is_zero()
        {
            return fail("ommers, difficulty and nonce must be empty after the merge".into());
        }
        let ts = header.timestamp;
        let shanghai = self.spec.is_active_at(Fork::Shanghai, ts);
        if header.withdrawals_root.is_some() != shanghai {
            return fail(format!("withdrawals root presence must be {shanghai}"));
        }
        let cancun = self.spec.is_active_at(Fork::Cancun, ts);
        if header.parent_beacon_block_root.is_some() != cancun {
            return fail(format!("parent beacon block root presence must be {cancun}"));
        }
        if cancun {
            if header.blob_gas_used != Some(0) {
                return fail(format!(
                    "blob gas used {:?}: this chain carries no blobs",
                    header.blob_gas_used
                ));
            }
            let expected = self.next_excess_blob_gas(parent, ts);
            if header.excess_blob_gas != expected {
                return fail(format!("excess blob gas {:?}, expected {expected:?}", header.excess_blob_gas));
            }
        } else if header.blob_gas_used.is_some() || header.excess_blob_gas.is_some() {
            return fail("blob gas fields before cancun".into());
        }
        let prague = self.spec.is_active_at(Fork::Prague, ts);
        if header.requests_hash.is_some() != prague {
            return fail(format!("requests hash presence must be {prague}"));
        }
        Ok(())
    }

    fn block_hashes(ancestors: impl Iterator<Item = (u64, B256)>) -> HashMap<u64, B256> {
        ancestors.take(256).collect()
    }

    /// Executes a block's transactions on the parent state and checks the results against the header.
    pub(crate) fn execute(
        &self,
        header: &Header,
        body: &BlockBody<TxEnvelope>,
        senders: &[Address],
        parent_state: &StateSnapshot,
        ancestors: impl Iterator<Item = (u64, B256)>,
    ) -> Result<Outcome, BlockError> {
        let db = block_db(parent_state.clone(), Self::block_hashes(ancestors));
        let evm = EthEvmFactory::default().create_evm(db, self.evm_env(header));
        let ctx = EthBlockExecutionCtx {
            parent_hash: header.parent_hash,
            parent_beacon_block_root: header.parent_beacon_block_root,
            ommers: &[],
            withdrawals: body.withdrawals.as_ref().map(|w| Cow::Borrowed(w.as_slice())),
            extra_data: header.extra_data.clone(),
            tx_count_hint: Some(body.transactions.len()),
            slot_number: None,
        };
        let mut executor = EthBlockExecutor::new(evm, ctx, &self.forks, AlloyReceiptBuilder::default());
        executor.apply_pre_execution_changes().map_err(exec_err)?;
        for (tx, sender) in body.transactions.iter().zip(senders) {
            executor.execute_transaction(Recovered::new_unchecked(tx, *sender)).map_err(exec_err)?;
        }
        let (evm, result) = executor.finish().map_err(exec_err)?;
        let (db, _) = alloy_evm::Evm::finish(evm);
        let mut state = finish_block_db(db);
        let receipts = &result.receipts;
        let ((receipts_root, logs_bloom), state_root) = join(
            || (calculate_receipt_root(receipts), logs_bloom(receipts)),
            || state.state_root(),
            receipts.len(),
        );
        let outcome = Outcome {
            receipts: result.receipts,
            requests: result.requests,
            gas_used: result.gas_used,
            state,
            state_root,
            logs_bloom,
        };
        check("gas used", header.gas_used, outcome.gas_used)?;
        check("receipts root", header.receipts_root, receipts_root)?;
        check("logs bloom", header.logs_bloom, outcome.logs_bloom)?;
        if let Some(requests_hash) = header.requests_hash {
            check("requests hash", requests_hash, outcome.requests.requests_hash())?;
        }
        check("state root", header.state_root, outcome.state_root)?;
        Ok(outcome)
    }

    /// Builds a block on `parent` from the pool's best transactions.
    pub(crate) fn build(
        &self,
        parent: &Header,
        parent_hash: B256,
        parent_state: &StateSnapshot,
        ancestors: impl Iterator<Item = (u64, B256)>,
        attributes: &BuildAttributes,
        best: BestTransactions,
    ) -> Result<Built, BlockError> {
        let ts = attributes.timestamp;
        let cancun = self.spec.is_active_at(Fork::Cancun, ts);
        let base_fee = Self::next_base_fee(parent);
        let mut header = Header {
            parent_hash,
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            beneficiary: attributes.fee_recipient,
            number: parent.number + 1,
            gas_limit: next_gas_limit(parent.gas_limit, attributes.target_gas_limit),
            timestamp: ts,
            extra_data: attributes.extra_data.clone(),
            mix_hash: attributes.prev_randao,
            base_fee_per_gas: Some(base_fee),
            blob_gas_used: cancun.then_some(0),
            excess_blob_gas: self.next_excess_blob_gas(parent, ts),
            parent_beacon_block_root: attributes.parent_beacon_block_root,
            ..Default::default()
        };
        let db = block_db(parent_state.clone(), Self::block_hashes(ancestors));
        let evm = EthEvmFactory::default().create_evm(db, self.evm_env(&header));
        let ctx = EthBlockExecutionCtx {
            parent_hash,
            parent_beacon_block_root: attributes.parent_beacon_block_root,
            ommers: &[],
            withdrawals: attributes.withdrawals.as_deref().map(Cow::Borrowed),
            extra_data: attributes.extra_data.clone(),
            tx_count_hint: None,
            slot_number: None,
        };
        let mut executor = EthBlockExecutor::new(evm, ctx, &self.forks, AlloyReceiptBuilder::default());
        executor.apply_pre_execution_changes().map_err(exec_err)?;

        let mut best = best;
        let mut transactions = Vec::new();
        let mut senders = Vec::new();
        let mut fees = U256::ZERO;
        let mut cumulative = 0u64;
        while let Some(pooled) = best.next() {
            if cumulative + pooled.tx.gas_limit() > header.gas_limit {
                // It does not fit; its sender's later nonces cannot run before it.
                best.mark_invalid(pooled.sender);
                continue;
            }
            match executor.execute_transaction(Recovered::new_unchecked(&pooled.tx, pooled.sender)) {
                Ok(gas) => {
                    let used = gas.tx_gas_used();
                    cumulative += used;
                    let tip = pooled.tx.effective_tip_per_gas(base_fee).unwrap_or_default();
                    fees += U256::from(tip) * U256::from(used);
                    transactions.push(pooled.tx.clone());
                    senders.push(pooled.sender);
                }
                Err(BlockExecutionError::Validation(_)) | Err(BlockExecutionError::Internal(_)) => {
                    tracing::debug!(target: "el::builder", hash = %pooled.hash, "skipping transaction that cannot execute");
                    best.mark_invalid(pooled.sender);
                }
            }
        }
        let (evm, result) = executor.finish().map_err(exec_err)?;
        let (db, _) = alloy_evm::Evm::finish(evm);
        let mut state = finish_block_db(db);

        let receipts = &result.receipts;
        let txs = &transactions;
        let ((transactions_root, receipts_root, bloom), state_root) = join(
            || (calculate_transaction_root(txs), calculate_receipt_root(receipts), logs_bloom(receipts)),
            || state.state_root(),
            txs.len(),
        );
        header.state_root = state_root;
        header.transactions_root = transactions_root;
        header.receipts_root = receipts_root;
        header.logs_bloom = bloom;
        header.gas_used = result.gas_used;
        header.withdrawals_root = attributes.withdrawals.as_deref().map(calculate_withdrawals_root);
        let prague = self.spec.is_active_at(Fork::Prague, ts);
        header.requests_hash = prague.then(|| result.requests.requests_hash());
        let body = BlockBody {
            transactions,
            ommers: Vec::new(),
            withdrawals: attributes.withdrawals.clone().map(Withdrawals::new),
        };
        let block = alloy_consensus::Block { header, body };
        let hash = block.header.hash_slow();
        Ok(Built {
            block: Arc::new(ExecutedBlock { hash, block, senders, receipts: result.receipts }),
            state,
            fees,
            requests: prague.then_some(result.requests),
        })
    }
}

/// The bloom of a block's receipts.
fn logs_bloom(receipts: &[ReceiptEnvelope]) -> Bloom {
    receipts.iter().fold(Bloom::ZERO, |bloom, r| bloom | r.bloom())
}

/// Runs `a` on a second thread while `b` runs here, for blocks large enough to gain from it.
fn join<A: Send, B>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B, items: usize) -> (A, B) {
    if items < 64 {
        return (a(), b());
    }
    std::thread::scope(|scope| {
        let handle = scope.spawn(a);
        let b = b();
        // A panic on the helper thread is re-raised here, as if it had run inline.
        let a = handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (a, b)
    })
}

fn exec_err(err: BlockExecutionError) -> BlockError {
    match err {
        BlockExecutionError::Validation(BlockValidationError::InvalidTx { hash, error }) => {
            BlockError::Execution(format!("transaction {hash}: {error}"))
        }
        other => BlockError::Execution(other.to_string()),
    }
}

fn check<T: PartialEq + std::fmt::Debug>(field: &'static str, got: T, expected: T) -> Result<(), BlockError> {
    if got == expected {
        Ok(())
    } else {
        Err(BlockError::Mismatch { field, got: format!("{got:?}"), expected: format!("{expected:?}") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gas_limit_moves_towards_target_within_bounds() {
        assert_eq!(next_gas_limit(30_000_000, None), 30_000_000);
        assert_eq!(next_gas_limit(30_000_000, Some(60_000_000)), 30_000_000 + 29_295);
        assert_eq!(next_gas_limit(30_000_000, Some(30_000_100)), 30_000_100);
        assert_eq!(next_gas_limit(30_000_000, Some(0)), 30_000_000 - 29_295);
        assert_eq!(next_gas_limit(5_000, Some(0)), 5_000);
    }
}
