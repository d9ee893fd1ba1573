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
    eip4844::BlobTransactionSidecar,
    eip4895::{Withdrawal, Withdrawals},
    eip7685::Requests,
};
use alloy_evm::{
    EvmEnv,
    block::{BlockExecutionError, BlockExecutor, BlockValidationError},
    eth::{EthBlockExecutionCtx, EthBlockExecutor, receipt_builder::AlloyReceiptBuilder},
};
use alloy_primitives::{Address, B256, Bloom, Bytes, U256};
use alys_chainspec::{ChainSpec, Fork};
use alys_el_api::ExecutedBlock;
use alys_el_consensus::{AlysForks, HeaderError, block_evm, next_excess_blob_gas, next_gas_limit};
use alys_el_pool::BestTransactions;

use crate::state::{StateSnapshot, block_db, finish_block_db};

/// Why a block failed execution or validation. The text goes into `PayloadStatus.validationError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BlockError {
    /// The parent is unknown or its state was pruned.
    #[error("invalid header: {0}")]
    Header(String),
    /// A header field is inconsistent with the parent or the fork.
    #[error("invalid header: {0}")]
    Rules(#[from] HeaderError),
    /// A transaction could not be executed.
    #[error("execution failed: {0}")]
    Execution(String),
    /// A computed value differs from the header. As in reth, `got` is what the engine computed from the
    /// block's body and execution, `expected` what the header claims.
    #[error("{field} mismatch: got {got}, expected {expected}")]
    Mismatch {
        /// Which field.
        field: &'static str,
        /// The value execution (or the body) produced.
        got: String,
        /// The value in the header.
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
    /// The sidecars of the block's blob transactions, in block order.
    pub(crate) sidecars: Vec<Arc<BlobTransactionSidecar>>,
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
        alys_el_consensus::next_base_fee(parent)
    }

    /// The blob parameters of the fork at a timestamp (`None` before Cancun).
    pub(crate) fn blob_params_at(&self, timestamp: u64) -> Option<alloy_eips::eip7840::BlobParams> {
        self.forks.blob_params_at(timestamp)
    }

    /// The EVM environment of a header.
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
        Ok(alys_el_consensus::validate_header(&self.forks, header, parent)?)
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
        if let Some(claimed) = header.blob_gas_used {
            let blob_gas =
                body.transactions.iter().filter_map(|tx| tx.blob_gas_used()).fold(0u64, u64::saturating_add);
            check("blob gas used", blob_gas, claimed)?;
        }
        let db = block_db(parent_state.clone(), Self::block_hashes(ancestors));
        let evm = block_evm(db, self.evm_env(header), parent_state.has_storage_only_accounts());
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
        check("gas used", outcome.gas_used, header.gas_used)?;
        check("receipts root", receipts_root, header.receipts_root)?;
        check("logs bloom", outcome.logs_bloom, header.logs_bloom)?;
        if let Some(requests_hash) = header.requests_hash {
            check("requests hash", outcome.requests.requests_hash(), requests_hash)?;
        }
        check("state root", outcome.state_root, header.state_root)?;
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
            excess_blob_gas: next_excess_blob_gas(&self.forks, parent, ts),
            parent_beacon_block_root: attributes.parent_beacon_block_root,
            ..Default::default()
        };
        let db = block_db(parent_state.clone(), Self::block_hashes(ancestors));
        let evm = block_evm(db, self.evm_env(&header), parent_state.has_storage_only_accounts());
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
        let max_blob_gas = self.forks.blob_params_at(ts).map_or(0, |p| p.max_blob_gas_per_block());
        let (mut blob_gas_used, mut sidecars) = (0u64, Vec::new());
        while let Some(pooled) = best.next() {
            let blob_gas = pooled.tx.blob_gas_used().unwrap_or_default();
            let blobs_fit =
                blob_gas == 0 || (pooled.sidecar.is_some() && blob_gas_used + blob_gas <= max_blob_gas);
            if cumulative + pooled.tx.gas_limit() > header.gas_limit || !blobs_fit {
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
                    blob_gas_used += blob_gas;
                    sidecars.extend(pooled.sidecar.clone());
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
        header.blob_gas_used = cancun.then_some(blob_gas_used);
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
            sidecars,
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
