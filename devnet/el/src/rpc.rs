//! eth JSON-RPC reads answered from the engine's state: blocks, receipts, accounts, calls, fees, logs.

use alloy_consensus::{Transaction as _, transaction::Recovered};
use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_evm::{Evm, EvmEnv, EvmFactory, eth::EthEvmFactory};
use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use alloy_rpc_types_eth::{
    Block, BlockTransactions, FeeHistory, Filter, FilterBlockOption, Header as RpcHeader, Log, Transaction,
    TransactionReceipt, TransactionRequest,
};
use alys_el_api::{BackendError, ExecutedBlock, PoolError};
use revm::context::{TxEnv, result::ExecutionResult};

use crate::{
    engine::EngineState,
    state::{SnapshotDb, StateSnapshot},
};

/// The widest block range one `eth_getLogs` may cover.
pub const MAX_LOG_RANGE: u64 = 10_000;
/// The most logs one `eth_getLogs` returns.
pub const MAX_LOG_RESULTS: usize = 10_000;
/// The tip suggested when recent blocks carry no transactions (1 gwei, geth's floor).
pub const DEFAULT_TIP: u128 = 1_000_000_000;
/// How many blocks `eth_feeHistory` covers at most.
const MAX_FEE_HISTORY: u64 = 1024;

impl EngineState {
    fn number_of_tag(&self, tag: BlockNumberOrTag) -> Option<u64> {
        let head = self.canonical.len().checked_sub(1)? as u64;
        let number_of = |hash: &B256| self.blocks.get(hash).map(|n| n.block.number());
        match tag {
            BlockNumberOrTag::Latest | BlockNumberOrTag::Pending => Some(head),
            BlockNumberOrTag::Earliest => Some(0),
            BlockNumberOrTag::Safe => number_of(&self.forkchoice.safe),
            BlockNumberOrTag::Finalized => number_of(&self.forkchoice.finalized),
            BlockNumberOrTag::Number(n) => (n <= head).then_some(n),
        }
    }

    /// The hash a block id names, if it is known (and canonical, for numbers and tags).
    pub(crate) fn resolve(&self, id: BlockId) -> Option<B256> {
        match id {
            BlockId::Hash(h) => {
                let known = self.blocks.contains_key(&h.block_hash);
                let canonical_ok = !h.require_canonical.unwrap_or(false) || self.is_canonical(&h.block_hash);
                (known && canonical_ok).then_some(h.block_hash)
            }
            BlockId::Number(tag) => {
                let number = usize::try_from(self.number_of_tag(tag)?).ok()?;
                self.canonical.get(number).copied()
            }
        }
    }

    fn executed(&self, id: BlockId) -> Result<&ExecutedBlock, BackendError> {
        self.resolve(id)
            .and_then(|h| self.blocks.get(&h))
            .map(|n| &*n.block)
            .ok_or(BackendError::UnknownBlock)
    }

    pub(crate) fn state_at(&self, id: BlockId) -> Result<&StateSnapshot, BackendError> {
        let hash = self.resolve(id).ok_or(BackendError::UnknownBlock)?;
        self.blocks
            .get(&hash)
            .ok_or(BackendError::UnknownBlock)?
            .state
            .as_ref()
            .ok_or_else(|| BackendError::Execution("historical state unavailable (pruned)".into()))
    }

    pub(crate) fn block_number(&self) -> u64 {
        self.canonical.len().saturating_sub(1) as u64
    }

    pub(crate) fn rpc_block(&self, id: BlockId, full: bool) -> Option<Block> {
        let executed = self.resolve(id).and_then(|h| self.blocks.get(&h))?;
        Some(to_rpc_block(&executed.block, full))
    }

    pub(crate) fn transaction_count(&self, address: Address, at: BlockId) -> Result<u64, BackendError> {
        if at == BlockId::Number(BlockNumberOrTag::Pending) {
            let state = self.state_at(at)?;
            return Ok(self.pool.pending_nonce(address, state));
        }
        Ok(self.state_at(at)?.nonce(&address))
    }

    pub(crate) fn code(&self, address: Address, at: BlockId) -> Result<Bytes, BackendError> {
        Ok(self.state_at(at)?.code(&address).original_bytes())
    }

    pub(crate) fn storage_at(&self, address: Address, slot: U256, at: BlockId) -> Result<B256, BackendError> {
        Ok(B256::from(self.state_at(at)?.storage(&address, &slot)))
    }

    /// The state, EVM environment and transaction of a call at `at` with `gas_limit` (else the request's,
    /// else the block's), as geth runs calls: free unless the request names a price, with the sender's
    /// nonce, gas capped at the block's gas limit.
    pub(crate) fn call_env(
        &self,
        request: &TransactionRequest,
        at: BlockId,
        gas_limit: Option<u64>,
    ) -> Result<(SnapshotDb, EvmEnv, TxEnv), BackendError> {
        let executed = self.executed(at)?;
        let state = self.state_at(at)?;
        let header = &executed.block.header;
        let mut env = self.executor.evm_env(header);
        // Calls are free unless they name a price, as in geth.
        env.block_env.basefee = 0;
        let from = request.from.unwrap_or_default();
        let gas_price = request.gas_price.or(request.max_fee_per_gas).unwrap_or_default();
        let gas_limit = gas_limit.or(request.gas).unwrap_or(header.gas_limit).min(header.gas_limit);
        let tx = TxEnv {
            tx_type: 0,
            caller: from,
            gas_limit,
            gas_price,
            kind: request.to.unwrap_or(TxKind::Create),
            value: request.value.unwrap_or_default(),
            data: request.input.input().cloned().unwrap_or_default(),
            nonce: state.nonce(&from),
            chain_id: Some(self.spec().chain_id()),
            access_list: request.access_list.clone().unwrap_or_default(),
            ..Default::default()
        };
        let block_hashes = self.ancestors(executed.hash).take(256).collect();
        Ok((SnapshotDb { state: state.clone(), block_hashes }, env, tx))
    }

    /// Runs a call on the state at `at` with `gas_limit`, without committing.
    fn run_call(
        &self,
        request: &TransactionRequest,
        at: BlockId,
        gas_limit: Option<u64>,
    ) -> Result<(ExecutionResult, u64), BackendError> {
        let (db, env, tx) = self.call_env(request, at, gas_limit)?;
        let (caller, gas_limit) = (tx.caller, tx.gas_limit);
        let mut evm = EthEvmFactory::default().create_evm(db, env);
        // geth's words for a refused call (`insufficient funds for gas * price + value: …`).
        let result = evm
            .transact_raw(tx)
            .map_err(|e| BackendError::Execution(alys_el_trace::geth_error_message(&e, caller)))?;
        Ok((result.result, gas_limit))
    }

    pub(crate) fn call(&self, request: &TransactionRequest, at: BlockId) -> Result<Bytes, BackendError> {
        let (result, _) = self.run_call(request, at, None)?;
        outcome(result)
    }

    pub(crate) fn estimate_gas(
        &self,
        request: &TransactionRequest,
        at: BlockId,
    ) -> Result<u64, BackendError> {
        let (result, cap) = self.run_call(request, at, None)?;
        let used = result.tx_gas_used();
        outcome(result)?;
        // Binary search between what it used (refunds make it need more) and the cap.
        let mut lo = used.saturating_sub(1).max(20_999);
        let mut hi = cap;
        let optimistic = used.saturating_add(2_300).saturating_mul(64) / 63;
        if optimistic < hi {
            let (result, _) = self.run_call(request, at, Some(optimistic))?;
            if result.is_success() {
                hi = optimistic;
            } else {
                lo = optimistic;
            }
        }
        while lo + 1 < hi {
            let mid = lo + (hi - lo) / 2;
            let (result, _) = self.run_call(request, at, Some(mid))?;
            if result.is_success() {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Ok(hi)
    }

    /// The tip suggestion: the 60th percentile of effective tips in the last 20 blocks.
    pub(crate) fn suggested_tip(&self) -> u128 {
        let mut tips: Vec<u128> = Vec::new();
        for hash in self.canonical.iter().rev().take(20) {
            if let Some(node) = self.blocks.get(hash) {
                let base_fee = node.block.block.header.base_fee_per_gas.unwrap_or_default();
                tips.extend(
                    node.block
                        .block
                        .body
                        .transactions
                        .iter()
                        .filter_map(|tx| tx.effective_tip_per_gas(base_fee)),
                );
            }
        }
        if tips.is_empty() {
            return DEFAULT_TIP.max(self.pool.config().min_priority_fee);
        }
        tips.sort_unstable();
        tips.get((tips.len() - 1) * 60 / 100).copied().unwrap_or(DEFAULT_TIP)
    }

    pub(crate) fn fee_history(
        &self,
        block_count: u64,
        newest: BlockNumberOrTag,
        percentiles: Option<Vec<f64>>,
    ) -> Result<FeeHistory, BackendError> {
        if let Some(p) = &percentiles
            && (p.iter().any(|x| !(0.0..=100.0).contains(x))
                || p.windows(2).any(|w| matches!(w, [a, b] if a > b)))
        {
            return Err(BackendError::InvalidParams("invalid reward percentiles".into()));
        }
        let newest = self.number_of_tag(newest).ok_or(BackendError::UnknownBlock)?;
        let count = block_count.min(MAX_FEE_HISTORY).min(newest + 1);
        if count == 0 {
            return Ok(FeeHistory { oldest_block: newest, ..Default::default() });
        }
        let oldest = newest + 1 - count;
        let mut history = FeeHistory { oldest_block: oldest, ..Default::default() };
        let mut rewards = Vec::new();
        let mut last_header = None;
        for number in oldest..=newest {
            let node = usize::try_from(number)
                .ok()
                .and_then(|n| self.canonical.get(n))
                .and_then(|h| self.blocks.get(h))
                .ok_or(BackendError::UnknownBlock)?;
            let block = &node.block;
            let header = &block.block.header;
            let base_fee = header.base_fee_per_gas.unwrap_or_default();
            history.base_fee_per_gas.push(base_fee.into());
            history.gas_used_ratio.push(header.gas_used as f64 / header.gas_limit.max(1) as f64);
            if let Some(params) = self.executor.blob_params_at(header.timestamp) {
                history.base_fee_per_blob_gas.push(header.blob_fee(params).unwrap_or_default());
                let max = params.max_blob_gas_per_block().max(1) as f64;
                history.blob_gas_used_ratio.push(header.blob_gas_used.unwrap_or_default() as f64 / max);
            }
            if let Some(percentiles) = &percentiles {
                rewards.push(block_rewards(block, base_fee, percentiles));
            }
            last_header = Some(header);
        }
        if let Some(last) = last_header {
            history.base_fee_per_gas.push(crate::execute::Executor::next_base_fee(last).into());
            if let Some(params) = self.executor.blob_params_at(last.timestamp) {
                let next_excess = last.next_block_excess_blob_gas(params).unwrap_or_default();
                history.base_fee_per_blob_gas.push(params.calc_blob_fee(next_excess));
            }
        }
        history.reward = percentiles.map(|_| rewards);
        Ok(history)
    }

    pub(crate) fn transaction_by_hash(&self, hash: B256) -> Option<Transaction> {
        if let Some((block_hash, index)) = self.tx_index.get(&hash)
            && let Some(node) = self.blocks.get(block_hash)
        {
            let block = &node.block;
            let tx = block.block.body.transactions.get(*index)?;
            let sender = *block.senders.get(*index)?;
            let header = &block.block.header;
            return Some(Transaction {
                inner: Recovered::new_unchecked(tx.clone(), sender),
                block_hash: Some(block.hash),
                block_number: Some(header.number),
                transaction_index: Some(*index as u64),
                effective_gas_price: Some(tx.effective_gas_price(header.base_fee_per_gas)),
                block_timestamp: Some(header.timestamp),
            });
        }
        let pooled = self.pool.get(&hash)?;
        Some(Transaction {
            inner: Recovered::new_unchecked(pooled.tx.clone(), pooled.sender),
            block_hash: None,
            block_number: None,
            transaction_index: None,
            effective_gas_price: None,
            block_timestamp: None,
        })
    }

    pub(crate) fn transaction_receipt(&self, hash: B256) -> Option<TransactionReceipt> {
        let (block_hash, index) = self.tx_index.get(&hash)?;
        let block = &self.blocks.get(block_hash)?.block;
        let mut receipt = receipt_at(block, *index)?;
        // A blob transaction's receipt names its blob gas and the block's blob base fee, as reth's does.
        let header = &block.block.header;
        receipt.blob_gas_used = block.block.body.transactions.get(*index)?.blob_gas_used();
        receipt.blob_gas_price = receipt
            .blob_gas_used
            .and_then(|_| self.executor.blob_params_at(header.timestamp))
            .and_then(|params| header.blob_fee(params));
        Some(receipt)
    }

    pub(crate) fn logs(&self, filter: &Filter) -> Result<Vec<Log>, BackendError> {
        self.logs_limited(filter, MAX_LOG_RANGE, MAX_LOG_RESULTS)
    }

    /// `eth_getLogs` with explicit limits.
    fn logs_limited(
        &self,
        filter: &Filter,
        max_range: u64,
        max_results: usize,
    ) -> Result<Vec<Log>, BackendError> {
        let blocks: Vec<&ExecutedBlock> = match filter.block_option {
            FilterBlockOption::AtBlockHash(hash) => {
                vec![self.blocks.get(&hash).map(|n| &*n.block).ok_or(BackendError::UnknownBlock)?]
            }
            FilterBlockOption::Range { from_block, to_block } => {
                let head = self.block_number();
                // Numbers past the head are taken as asked for the range checks, then clamped to the head.
                let resolve = |tag: Option<BlockNumberOrTag>| -> Result<u64, BackendError> {
                    match tag.unwrap_or(BlockNumberOrTag::Latest) {
                        BlockNumberOrTag::Number(n) => Ok(n),
                        tag => self.number_of_tag(tag).ok_or(BackendError::UnknownBlock),
                    }
                };
                let from = resolve(from_block)?;
                let to = resolve(to_block)?;
                if from > to {
                    return Err(BackendError::InvalidParams("fromBlock is after toBlock".into()));
                }
                if to - from >= max_range {
                    return Err(BackendError::RangeTooLarge { max: max_range });
                }
                (from..=to.min(head))
                    .filter_map(|n| usize::try_from(n).ok())
                    .filter_map(|n| self.canonical.get(n))
                    .filter_map(|h| self.blocks.get(h).map(|n| &*n.block))
                    .collect()
            }
        };
        let mut out = Vec::new();
        for block in blocks {
            if !filter.matches_bloom(block.block.header.logs_bloom) {
                continue;
            }
            for log in block.rpc_logs(false) {
                if filter.matches(&log.inner) {
                    if out.len() >= max_results {
                        return Err(BackendError::TooManyResults { max: max_results });
                    }
                    out.push(log);
                }
            }
        }
        Ok(out)
    }

    pub(crate) fn send_raw_transaction(&mut self, raw: &[u8]) -> Result<B256, PoolError> {
        let base_fee = self.next_base_fee();
        let state = self.head_state().cloned().ok_or_else(|| PoolError::Internal("no head state".into()))?;
        self.pool.add_raw(raw, &state, base_fee)
    }
}

fn outcome(result: ExecutionResult) -> Result<Bytes, BackendError> {
    match result {
        ExecutionResult::Success { output, .. } => Ok(output.into_data()),
        ExecutionResult::Revert { output, .. } => {
            let reason = <alloy_sol_types::Revert as alloy_sol_types::SolError>::abi_decode(&output)
                .ok()
                .map(|r| r.reason);
            Err(BackendError::Reverted { data: output, reason })
        }
        ExecutionResult::Halt { reason, .. } => Err(BackendError::Execution(format!("{reason:?}"))),
    }
}

/// Rewards at percentiles of gas used, geth's algorithm.
fn block_rewards(block: &ExecutedBlock, base_fee: u64, percentiles: &[f64]) -> Vec<u128> {
    let mut prev = 0u64;
    let mut txs: Vec<(u128, u64)> = block
        .block
        .body
        .transactions
        .iter()
        .zip(&block.receipts)
        .map(|(tx, r)| {
            let used = r.cumulative_gas_used() - prev;
            prev = r.cumulative_gas_used();
            (tx.effective_tip_per_gas(base_fee).unwrap_or_default(), used)
        })
        .collect();
    if txs.is_empty() {
        return vec![0; percentiles.len()];
    }
    txs.sort_unstable_by_key(|(tip, _)| *tip);
    let gas_used = block.block.header.gas_used as f64;
    let mut index = 0usize;
    let mut sum = txs.first().map_or(0, |t| t.1);
    percentiles
        .iter()
        .map(|p| {
            let threshold = gas_used * p / 100.0;
            while (sum as f64) < threshold && index + 1 < txs.len() {
                index += 1;
                sum += txs.get(index).map_or(0, |t| t.1);
            }
            txs.get(index).map_or(0, |t| t.0)
        })
        .collect()
}

/// A block in its JSON-RPC shape.
pub(crate) fn to_rpc_block(block: &ExecutedBlock, full: bool) -> Block {
    let header = &block.block.header;
    let size = alloy_rlp::Encodable::length(&block.block);
    let transactions = if full {
        BlockTransactions::Full(
            (0..block.block.body.transactions.len()).filter_map(|i| rpc_transaction(block, i)).collect(),
        )
    } else {
        BlockTransactions::Hashes(block.block.body.transactions.iter().map(|tx| *tx.tx_hash()).collect())
    };
    Block {
        header: RpcHeader {
            hash: block.hash,
            inner: header.clone(),
            total_difficulty: Some(U256::ZERO),
            size: Some(U256::from(size)),
        },
        uncles: vec![],
        transactions,
        withdrawals: block.block.body.withdrawals.clone(),
    }
}

fn rpc_transaction(block: &ExecutedBlock, index: usize) -> Option<Transaction> {
    let tx = block.block.body.transactions.get(index)?;
    let header = &block.block.header;
    Some(Transaction {
        inner: Recovered::new_unchecked(tx.clone(), *block.senders.get(index)?),
        block_hash: Some(block.hash),
        block_number: Some(header.number),
        transaction_index: Some(index as u64),
        effective_gas_price: Some(tx.effective_gas_price(header.base_fee_per_gas)),
        block_timestamp: Some(header.timestamp),
    })
}

/// The receipt of transaction `index` of a block, in its JSON-RPC shape.
pub(crate) fn receipt_at(block: &ExecutedBlock, index: usize) -> Option<TransactionReceipt> {
    let tx = block.block.body.transactions.get(index)?;
    let receipt = block.receipts.get(index)?;
    let sender = *block.senders.get(index)?;
    let header = &block.block.header;
    let prev_cumulative =
        index.checked_sub(1).and_then(|i| block.receipts.get(i)).map_or(0, |r| r.cumulative_gas_used());
    let first_log_index: usize = block.receipts.iter().take(index).map(|r| r.logs().len()).sum();
    let mut log_index = first_log_index as u64;
    let tx_hash = *tx.tx_hash();
    let inner = receipt.clone().map_logs(|log| {
        let rpc = Log {
            inner: log,
            block_hash: Some(block.hash),
            block_number: Some(header.number),
            block_timestamp: Some(header.timestamp),
            transaction_hash: Some(tx_hash),
            transaction_index: Some(index as u64),
            log_index: Some(log_index),
            removed: false,
        };
        log_index += 1;
        rpc
    });
    let contract_address = tx.kind().is_create().then(|| sender.create(tx.nonce()));
    Some(TransactionReceipt {
        inner,
        transaction_hash: tx_hash,
        transaction_index: Some(index as u64),
        block_hash: Some(block.hash),
        block_number: Some(header.number),
        gas_used: receipt.cumulative_gas_used() - prev_cumulative,
        effective_gas_price: tx.effective_gas_price(header.base_fee_per_gas),
        blob_gas_used: None,
        blob_gas_price: None,
        from: sender,
        to: tx.to(),
        contract_address,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
    use alloy_eips::eip2718::Encodable2718;
    use alloy_rpc_types_engine::{ExecutionPayload, ForkchoiceState, PayloadAttributes, PayloadStatusEnum};
    use alloy_sol_types::SolCall;
    use alys_chainspec::{ChainSpec, dev::DEV_PRIVATE_KEYS};
    use alys_el_pool::{Pool, PoolConfig};

    use super::*;

    /// An engine state driven synchronously, with `count` peg-outs (one log each) in block 1.
    fn engine_with_pegouts(count: u64) -> EngineState {
        let spec = Arc::new(ChainSpec::devnet().unwrap());
        let pool = Pool::new(PoolConfig::new(spec.chain_id(), 30_000_000));
        let (notify, _) = tokio::sync::broadcast::channel(4);
        let mut engine = EngineState::new(Arc::clone(&spec), None, pool, notify).unwrap();
        let key = alloy_signer_local::PrivateKeySigner::from_bytes(&DEV_PRIVATE_KEYS[0]).unwrap();
        for nonce in 0..count {
            let call =
                alys_contracts::Bridge::requestPegOutCall { bitcoinAddress: Bytes::from_static(b"bc1qx") };
            let mut tx = TxEip1559 {
                chain_id: spec.chain_id(),
                nonce,
                gas_limit: 200_000,
                max_fee_per_gas: 10_000_000_000,
                max_priority_fee_per_gas: 1,
                to: TxKind::Call(alys_contracts::BRIDGE_ADDRESS),
                value: alys_contracts::MIN_PEGOUT_WEI,
                access_list: Default::default(),
                input: call.abi_encode().into(),
            };
            let signature = alloy_network::TxSignerSync::sign_transaction_sync(&key, &mut tx).unwrap();
            let raw = TxEnvelope::from(tx.into_signed(signature)).encoded_2718();
            engine.send_raw_transaction(&raw).unwrap();
        }
        let genesis = engine.genesis_hash;
        let state = ForkchoiceState { head_block_hash: genesis, ..Default::default() };
        let attributes = PayloadAttributes {
            timestamp: engine.head_header().unwrap().timestamp + 1,
            prev_randao: B256::ZERO,
            suggested_fee_recipient: Address::ZERO,
            withdrawals: Some(vec![]),
            parent_beacon_block_root: Some(B256::ZERO),
            slot_number: None,
            target_gas_limit: None,
        };
        let id = engine.fork_choice_updated(state, Some(attributes)).unwrap().payload_id.unwrap();
        let built = engine.get_payload(id).unwrap();
        let (payload, sidecar) = ExecutionPayload::from_block_slow(&built.block.block);
        assert_eq!(engine.new_payload(payload, sidecar).unwrap().status, PayloadStatusEnum::Valid);
        let head = ForkchoiceState { head_block_hash: built.block.hash, ..Default::default() };
        engine.fork_choice_updated(head, None).unwrap();
        engine
    }

    #[test]
    fn log_queries_enforce_result_and_range_limits() {
        let engine = engine_with_pegouts(5);
        let filter = Filter::new().address(alys_contracts::BRIDGE_ADDRESS).from_block(0u64);
        let logs = engine.logs_limited(&filter, 100, 5).unwrap();
        assert_eq!(logs.len(), 5);
        assert_eq!(
            logs.iter().map(|l| l.log_index).collect::<Vec<_>>(),
            (0..5).map(Some).collect::<Vec<_>>()
        );
        assert_eq!(engine.logs_limited(&filter, 100, 4), Err(BackendError::TooManyResults { max: 4 }));
        let wide = Filter::new().from_block(0u64).to_block(2u64);
        assert_eq!(engine.logs_limited(&wide, 2, 100), Err(BackendError::RangeTooLarge { max: 2 }));
        // Topic filters: the indexed sender matches, another address does not.
        let sender = B256::left_padding_from(alys_chainspec::dev::DEV_ACCOUNTS[0].as_slice());
        let by_topic = Filter::new()
            .event_signature(alys_contracts::REQUEST_PEGOUT_TOPIC)
            .topic1(sender)
            .from_block(0u64);
        assert_eq!(engine.logs(&by_topic).unwrap().len(), 5);
        let other = Filter::new().topic1(B256::repeat_byte(1)).from_block(0u64);
        assert!(engine.logs(&other).unwrap().is_empty());
        // Receipts carry their logs' block-wide indexes.
        let tx =
            engine.canonical.get(1).and_then(|h| engine.blocks.get(h)).unwrap().block.block.body.transactions
                [3]
            .clone();
        let receipt =
            engine.transaction_receipt(*alloy_consensus::transaction::TxHashRef::tx_hash(&tx)).unwrap();
        assert_eq!(receipt.inner.logs()[0].log_index, Some(3));
    }
}
