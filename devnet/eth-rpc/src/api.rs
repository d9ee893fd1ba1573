//! The methods: each reads its parameters, asks the backend, and shapes the answer as geth does (quantities
//! as 0x-hex, `null` for what is unknown).

use std::sync::Arc;

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, B256, Bytes, U64, U128, U256};
use alloy_rpc_types_eth::{
    Block, BlockTransactions, FeeHistory, Filter, FilterChanges, Index, Log, Transaction, TransactionReceipt,
    TransactionRequest,
};
use alys_el_api::{BackendError, EthBackend};
use jsonrpsee::types::{ErrorObjectOwned, Params};

use crate::{
    args::{Args, HexOrDecimalU64},
    error::{backend_error, invalid_params, pool_error},
    filters::{FilterId, Filters, normalize},
};

/// The result of one method.
pub(crate) type RpcResult<T> = Result<T, ErrorObjectOwned>;

/// The state the methods share: the backend and what `web3_clientVersion` answers.
///
/// Build an [`RpcModule`] of it with [`rpc_module`] to serve it from another jsonrpsee server; [`crate::start`]
/// does that for you.
#[derive(Debug, Clone)]
pub struct EthApi<B> {
    pub(crate) backend: B,
    pub(crate) client_version: String,
    /// Shared by clones, so the HTTP and WebSocket servers see the same filters.
    filters: Arc<Filters>,
}

impl<B: EthBackend> EthApi<B> {
    /// The methods over `backend`.
    pub fn new(backend: B, client_version: String) -> Self {
        Self { backend, client_version, filters: Arc::default() }
    }

    /// The backend.
    pub const fn backend(&self) -> &B {
        &self.backend
    }

    pub(crate) async fn block_number(&self, params: Params<'static>) -> RpcResult<U64> {
        Args::new(&params, 0)?;
        self.backend.block_number().await.map(U64::from).map_err(|e| backend_error(&e))
    }

    /// A block, or `None` when the backend does not know it (also when it answers `UnknownBlock`).
    pub(crate) async fn find_block(&self, id: BlockId, full: bool) -> RpcResult<Option<Block>> {
        match self.backend.block(id, full).await {
            Ok(block) => Ok(block),
            Err(BackendError::UnknownBlock) => Ok(None),
            Err(e) => Err(backend_error(&e)),
        }
    }

    pub(crate) async fn block_by_number(&self, params: Params<'static>) -> RpcResult<Option<Block>> {
        let mut args = Args::new(&params, 2)?;
        let number: BlockNumberOrTag = args.required()?;
        let full = args.optional::<bool>()?.unwrap_or(false);
        self.find_block(number.into(), full).await
    }

    pub(crate) async fn block_by_hash(&self, params: Params<'static>) -> RpcResult<Option<Block>> {
        let mut args = Args::new(&params, 2)?;
        let hash: B256 = args.required()?;
        let full = args.optional::<bool>()?.unwrap_or(false);
        self.find_block(hash.into(), full).await
    }

    pub(crate) async fn transaction_count_in(&self, id: BlockId) -> RpcResult<Option<U64>> {
        Ok(self.find_block(id, false).await?.map(|block| U64::from(tx_count(&block.transactions))))
    }

    pub(crate) async fn block_tx_count_by_number(&self, params: Params<'static>) -> RpcResult<Option<U64>> {
        let mut args = Args::new(&params, 1)?;
        let number: BlockNumberOrTag = args.required()?;
        self.transaction_count_in(number.into()).await
    }

    pub(crate) async fn block_tx_count_by_hash(&self, params: Params<'static>) -> RpcResult<Option<U64>> {
        let mut args = Args::new(&params, 1)?;
        let hash: B256 = args.required()?;
        self.transaction_count_in(hash.into()).await
    }

    pub(crate) async fn transaction_at(&self, id: BlockId, index: Index) -> RpcResult<Option<Transaction>> {
        let Some(block) = self.find_block(id, true).await? else { return Ok(None) };
        match block.transactions {
            BlockTransactions::Full(txs) => Ok(txs.into_iter().nth(index.0)),
            // A backend that answered hashes despite `full`: look the transaction up by hash.
            BlockTransactions::Hashes(hashes) => match hashes.get(index.0) {
                Some(hash) => self.backend.transaction_by_hash(*hash).await.map_err(|e| backend_error(&e)),
                None => Ok(None),
            },
            BlockTransactions::Uncle => Ok(None),
        }
    }

    pub(crate) async fn tx_by_block_number_and_index(
        &self,
        params: Params<'static>,
    ) -> RpcResult<Option<Transaction>> {
        let mut args = Args::new(&params, 2)?;
        let number: BlockNumberOrTag = args.required()?;
        let index: Index = args.required()?;
        self.transaction_at(number.into(), index).await
    }

    pub(crate) async fn tx_by_block_hash_and_index(
        &self,
        params: Params<'static>,
    ) -> RpcResult<Option<Transaction>> {
        let mut args = Args::new(&params, 2)?;
        let hash: B256 = args.required()?;
        let index: Index = args.required()?;
        self.transaction_at(hash.into(), index).await
    }

    pub(crate) async fn block_receipts(
        &self,
        params: Params<'static>,
    ) -> RpcResult<Option<Vec<TransactionReceipt>>> {
        let mut args = Args::new(&params, 1)?;
        let id: BlockId = args.required()?;
        let Some(block) = self.find_block(id, false).await? else { return Ok(None) };
        let hashes: Vec<B256> = match &block.transactions {
            BlockTransactions::Full(txs) => txs.iter().map(|tx| *tx.inner.tx_hash()).collect(),
            BlockTransactions::Hashes(hashes) => hashes.clone(),
            BlockTransactions::Uncle => Vec::new(),
        };
        let mut receipts = Vec::with_capacity(hashes.len());
        for hash in hashes {
            match self.backend.transaction_receipt(hash).await.map_err(|e| backend_error(&e))? {
                Some(receipt) => receipts.push(receipt),
                // The block left the canonical chain while we read it.
                None => return Ok(None),
            }
        }
        Ok(Some(receipts))
    }

    pub(crate) async fn balance(&self, params: Params<'static>) -> RpcResult<U256> {
        let mut args = Args::new(&params, 2)?;
        let address: Address = args.required()?;
        let at = args.optional::<BlockId>()?.unwrap_or_default();
        self.backend.balance(address, at).await.map_err(|e| backend_error(&e))
    }

    pub(crate) async fn transaction_count(&self, params: Params<'static>) -> RpcResult<U64> {
        let mut args = Args::new(&params, 2)?;
        let address: Address = args.required()?;
        let at = args.optional::<BlockId>()?.unwrap_or_default();
        self.backend.transaction_count(address, at).await.map(U64::from).map_err(|e| backend_error(&e))
    }

    pub(crate) async fn code(&self, params: Params<'static>) -> RpcResult<Bytes> {
        let mut args = Args::new(&params, 2)?;
        let address: Address = args.required()?;
        let at = args.optional::<BlockId>()?.unwrap_or_default();
        self.backend.code(address, at).await.map_err(|e| backend_error(&e))
    }

    pub(crate) async fn storage_at(&self, params: Params<'static>) -> RpcResult<B256> {
        let mut args = Args::new(&params, 3)?;
        let address: Address = args.required()?;
        let slot: U256 = args.required()?;
        let at = args.optional::<BlockId>()?.unwrap_or_default();
        self.backend.storage_at(address, slot, at).await.map_err(|e| backend_error(&e))
    }

    /// The request and block of `eth_call`/`eth_estimateGas`; state and block overrides are refused rather
    /// than silently ignored.
    fn call_args(params: &Params<'static>) -> RpcResult<(TransactionRequest, BlockId)> {
        let mut args = Args::new(params, 4)?;
        let request: TransactionRequest = args.required()?;
        let at = args.optional::<BlockId>()?.unwrap_or_default();
        if args.optional_raw().is_some_and(|overrides| !is_empty_object(&overrides)) {
            return Err(invalid_params("state overrides are not supported"));
        }
        if args.optional_raw().is_some_and(|overrides| !is_empty_object(&overrides)) {
            return Err(invalid_params("block overrides are not supported"));
        }
        Ok((request, at))
    }

    pub(crate) async fn call(&self, params: Params<'static>) -> RpcResult<Bytes> {
        let (request, at) = Self::call_args(&params)?;
        self.backend.call(request, at).await.map_err(|e| backend_error(&e))
    }

    pub(crate) async fn estimate_gas(&self, params: Params<'static>) -> RpcResult<U64> {
        let (request, at) = Self::call_args(&params)?;
        self.backend.estimate_gas(request, at).await.map(U64::from).map_err(|e| backend_error(&e))
    }

    pub(crate) async fn gas_price(&self, params: Params<'static>) -> RpcResult<U128> {
        Args::new(&params, 0)?;
        self.backend.gas_price().await.map(U128::from).map_err(|e| backend_error(&e))
    }

    pub(crate) async fn max_priority_fee_per_gas(&self, params: Params<'static>) -> RpcResult<U128> {
        Args::new(&params, 0)?;
        self.backend.max_priority_fee_per_gas().await.map(U128::from).map_err(|e| backend_error(&e))
    }

    pub(crate) async fn fee_history(&self, params: Params<'static>) -> RpcResult<FeeHistory> {
        let mut args = Args::new(&params, 3)?;
        let HexOrDecimalU64(block_count) = args.required()?;
        let newest: BlockNumberOrTag = args.required()?;
        let percentiles: Option<Vec<f64>> = args.optional()?;
        if let Some(percentiles) = &percentiles {
            let mut previous = 0.0_f64;
            for p in percentiles {
                if !(0.0..=100.0).contains(p) || *p < previous {
                    return Err(invalid_params(format!("invalid reward percentile: {p}")));
                }
                previous = *p;
            }
        }
        self.backend.fee_history(block_count, newest, percentiles).await.map_err(|e| backend_error(&e))
    }

    pub(crate) async fn send_raw_transaction(&self, params: Params<'static>) -> RpcResult<B256> {
        let mut args = Args::new(&params, 1)?;
        let raw: Bytes = args.required()?;
        self.backend.send_raw_transaction(raw).await.map_err(|e| {
            tracing::debug!(target: "eth_rpc", error = %e, "raw transaction refused");
            pool_error(&e)
        })
    }

    pub(crate) async fn transaction_by_hash(
        &self,
        params: Params<'static>,
    ) -> RpcResult<Option<Transaction>> {
        let mut args = Args::new(&params, 1)?;
        let hash: B256 = args.required()?;
        self.backend.transaction_by_hash(hash).await.map_err(|e| backend_error(&e))
    }

    pub(crate) async fn transaction_receipt(
        &self,
        params: Params<'static>,
    ) -> RpcResult<Option<TransactionReceipt>> {
        let mut args = Args::new(&params, 1)?;
        let hash: B256 = args.required()?;
        self.backend.transaction_receipt(hash).await.map_err(|e| backend_error(&e))
    }

    pub(crate) async fn logs(&self, params: Params<'static>) -> RpcResult<Vec<Log>> {
        let mut args = Args::new(&params, 1)?;
        let filter: Filter = args.required()?;
        if let Err(err) = filter.block_option.ensure_valid_block_range() {
            return Err(invalid_params(err.to_string()));
        }
        self.backend.logs(filter).await.map_err(|e| backend_error(&e))
    }

    pub(crate) async fn new_filter(&self, params: Params<'static>) -> RpcResult<FilterId> {
        let mut args = Args::new(&params, 1)?;
        let filter: Filter = args.required()?;
        self.filters.new_log_filter(&self.backend, filter).await
    }

    pub(crate) async fn new_block_filter(&self, params: Params<'static>) -> RpcResult<FilterId> {
        Args::new(&params, 0)?;
        self.filters.new_block_filter(&self.backend).await
    }

    pub(crate) async fn filter_changes(
        &self,
        params: Params<'static>,
    ) -> RpcResult<FilterChanges<Transaction, Log>> {
        let mut args = Args::new(&params, 1)?;
        let id: FilterId = args.required()?;
        self.filters.changes(&self.backend, &normalize(id)).await
    }

    pub(crate) async fn filter_logs(&self, params: Params<'static>) -> RpcResult<Vec<Log>> {
        let mut args = Args::new(&params, 1)?;
        let id: FilterId = args.required()?;
        self.filters.logs(&self.backend, &normalize(id)).await
    }

    pub(crate) async fn uninstall_filter(&self, params: Params<'static>) -> RpcResult<bool> {
        let mut args = Args::new(&params, 1)?;
        let id: FilterId = args.required()?;
        self.filters.uninstall(&normalize(id))
    }
}

fn tx_count<T>(transactions: &BlockTransactions<T>) -> usize {
    match transactions {
        BlockTransactions::Full(txs) => txs.len(),
        BlockTransactions::Hashes(hashes) => hashes.len(),
        BlockTransactions::Uncle => 0,
    }
}

fn is_empty_object(value: &serde_json::Value) -> bool {
    value.as_object().is_some_and(serde_json::Map::is_empty)
}
