//! [`ToolingBackend`] for the engine: the blob base fee, EIP-1186 proofs, access lists, geth's debug
//! traces (run by `alys-el-trace`) and the pool's content, each read on the engine's task.

use alloy_consensus::transaction::Recovered;
use alloy_eips::{BlockId, eip2930::AccessListResult};
use alloy_evm::FromRecoveredTx;
use alloy_primitives::{Address, B256};
use alloy_rpc_types_eth::{EIP1186AccountProofResponse, Transaction, TransactionRequest};
use alloy_rpc_types_trace::geth::{GethDebugTracingOptions, GethTrace};
use alloy_rpc_types_txpool::TxpoolContent;
use alys_el_api::{BackendError, ToolingBackend};
use alys_el_trace::TransactionContext;
use revm::context::TxEnv;
use tokio::sync::broadcast;

use crate::{AlysForks, engine::EngineState, handle::EngineHandle, state::block_db};

impl EngineState {
    /// Replays the block of a canonical transaction up to it on the parent's state, and traces it.
    fn trace_transaction(
        &self,
        hash: B256,
        options: GethDebugTracingOptions,
    ) -> Result<Option<GethTrace>, BackendError> {
        let Some(&(block_hash, index)) = self.tx_index.get(&hash) else { return Ok(None) };
        let Some(block) = self.blocks.get(&block_hash).filter(|_| self.is_canonical(&block_hash)) else {
            return Ok(None);
        };
        let (header, body) = (&block.block.block.header, &block.block.block.body);
        let mut txs = body.transactions.iter().zip(&block.block.senders);
        let before: Vec<TxEnv> =
            txs.by_ref().take(index).map(|(tx, from)| TxEnv::from_recovered_tx(tx, *from)).collect();
        let Some((tx, sender)) = txs.next() else { return Ok(None) };
        let parent_state = self
            .blocks
            .get(&header.parent_hash)
            .and_then(|parent| parent.state.as_ref())
            .ok_or_else(|| BackendError::Execution("historical state unavailable (pruned)".into()))?;
        let db = block_db(parent_state.clone(), self.ancestors(header.parent_hash).take(256).collect());
        let context =
            TransactionContext { block_hash: Some(block_hash), tx_index: Some(index), tx_hash: Some(hash) };
        let forks = AlysForks::new(self.spec());
        let tx = TxEnv::from_recovered_tx(tx, *sender);
        let env = self.executor.evm_env(header);
        Ok(Some(alys_el_trace::trace_in_block(db, env, forks, header, before, tx, options, Some(context))?))
    }

    fn pool_content(&self) -> Result<TxpoolContent<Transaction>, BackendError> {
        let state = self.head_state().ok_or_else(|| BackendError::Internal("no head state".into()))?;
        let content = self.pool.content(state);
        let mut answer = TxpoolContent::default();
        for (txs, into) in [(content.pending, &mut answer.pending), (content.queued, &mut answer.queued)] {
            for tx in txs {
                // Pooled: no block, no index, no effective price yet.
                let rpc = Transaction {
                    inner: Recovered::new_unchecked(tx.tx.clone(), tx.sender),
                    block_hash: None,
                    block_number: None,
                    transaction_index: None,
                    effective_gas_price: None,
                    block_timestamp: None,
                };
                into.entry(tx.sender).or_default().insert(tx.nonce().to_string(), rpc);
            }
        }
        Ok(answer)
    }
}

impl ToolingBackend for EngineHandle {
    async fn blob_base_fee(&self) -> Result<Option<u128>, BackendError> {
        let fee = self.request("eth_blobBaseFee", |e| {
            let header = e.head_header()?;
            header.blob_fee(e.executor.blob_params_at(header.timestamp)?)
        });
        Ok(fee.await?)
    }

    async fn proof(
        &self,
        address: Address,
        keys: Vec<B256>,
        at: BlockId,
    ) -> Result<EIP1186AccountProofResponse, BackendError> {
        self.request("eth_getProof", move |e| e.state_at(at).map(|state| state.proof(address, &keys))).await?
    }

    async fn create_access_list(
        &self,
        request: TransactionRequest,
        at: BlockId,
    ) -> Result<AccessListResult, BackendError> {
        self.request("eth_createAccessList", move |e| {
            let (mut db, env, tx) = e.call_env(&request, at, None)?;
            Ok(alys_el_trace::access_list(&mut db, env, tx)?)
        })
        .await?
    }

    async fn trace_transaction(
        &self,
        hash: B256,
        options: GethDebugTracingOptions,
    ) -> Result<Option<GethTrace>, BackendError> {
        self.request("debug_traceTransaction", move |e| e.trace_transaction(hash, options)).await?
    }

    async fn trace_call(
        &self,
        request: TransactionRequest,
        at: BlockId,
        options: GethDebugTracingOptions,
    ) -> Result<GethTrace, BackendError> {
        self.request("debug_traceCall", move |e| {
            let (mut db, env, tx) = e.call_env(&request, at, None)?;
            Ok(alys_el_trace::trace(&mut db, env, tx, options, None)?)
        })
        .await?
    }

    async fn pool_content(&self) -> Result<TxpoolContent<Transaction>, BackendError> {
        self.request("txpool_content", |e| e.pool_content()).await?
    }

    fn subscribe_pending_transactions(&self) -> broadcast::Receiver<Transaction> {
        self.subscribe_pending()
    }
}
