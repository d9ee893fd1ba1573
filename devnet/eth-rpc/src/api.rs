//! The methods: each reads its parameters, asks the backend, and shapes the answer as geth does (quantities
//! as 0x-hex, `null` for what is unknown).

use std::sync::Arc;

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, B256, Bytes, U64, U128, U256, keccak256};
use alloy_rpc_types_eth::{
    Block, BlockTransactions, FeeHistory, Filter, FilterChanges, Index, Log, Transaction, TransactionReceipt,
    TransactionRequest,
};
use alys_el_api::{BackendError, EthBackend, ToolingBackend};
use jsonrpsee::{
    RpcModule,
    core::RegisterMethodError,
    types::{ErrorObjectOwned, Params},
};

use crate::{
    args::{Args, HexOrDecimalU64},
    error::{backend_error, invalid_params, pool_error},
    filters::{FilterId, Filters, normalize},
    pubsub, tooling,
};

/// The result of one method.
pub(crate) type RpcResult<T> = Result<T, ErrorObjectOwned>;

/// The state the methods share: the backend and what `web3_clientVersion` answers.
///
/// Build an [`RpcModule`] of it with [`rpc_module`] to serve it from another jsonrpsee server; [`crate::start`]
/// does that for you.
#[derive(Debug, Clone)]
pub struct EthApi<B> {
    backend: B,
    client_version: String,
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

    async fn block_number(&self, params: Params<'static>) -> RpcResult<U64> {
        Args::new(&params, 0)?;
        self.backend.block_number().await.map(U64::from).map_err(|e| backend_error(&e))
    }

    /// A block, or `None` when the backend does not know it (also when it answers `UnknownBlock`).
    async fn find_block(&self, id: BlockId, full: bool) -> RpcResult<Option<Block>> {
        match self.backend.block(id, full).await {
            Ok(block) => Ok(block),
            Err(BackendError::UnknownBlock) => Ok(None),
            Err(e) => Err(backend_error(&e)),
        }
    }

    async fn block_by_number(&self, params: Params<'static>) -> RpcResult<Option<Block>> {
        let mut args = Args::new(&params, 2)?;
        let number: BlockNumberOrTag = args.required()?;
        let full = args.optional::<bool>()?.unwrap_or(false);
        self.find_block(number.into(), full).await
    }

    async fn block_by_hash(&self, params: Params<'static>) -> RpcResult<Option<Block>> {
        let mut args = Args::new(&params, 2)?;
        let hash: B256 = args.required()?;
        let full = args.optional::<bool>()?.unwrap_or(false);
        self.find_block(hash.into(), full).await
    }

    async fn transaction_count_in(&self, id: BlockId) -> RpcResult<Option<U64>> {
        Ok(self.find_block(id, false).await?.map(|block| U64::from(tx_count(&block.transactions))))
    }

    async fn block_tx_count_by_number(&self, params: Params<'static>) -> RpcResult<Option<U64>> {
        let mut args = Args::new(&params, 1)?;
        let number: BlockNumberOrTag = args.required()?;
        self.transaction_count_in(number.into()).await
    }

    async fn block_tx_count_by_hash(&self, params: Params<'static>) -> RpcResult<Option<U64>> {
        let mut args = Args::new(&params, 1)?;
        let hash: B256 = args.required()?;
        self.transaction_count_in(hash.into()).await
    }

    async fn transaction_at(&self, id: BlockId, index: Index) -> RpcResult<Option<Transaction>> {
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

    async fn tx_by_block_number_and_index(&self, params: Params<'static>) -> RpcResult<Option<Transaction>> {
        let mut args = Args::new(&params, 2)?;
        let number: BlockNumberOrTag = args.required()?;
        let index: Index = args.required()?;
        self.transaction_at(number.into(), index).await
    }

    async fn tx_by_block_hash_and_index(&self, params: Params<'static>) -> RpcResult<Option<Transaction>> {
        let mut args = Args::new(&params, 2)?;
        let hash: B256 = args.required()?;
        let index: Index = args.required()?;
        self.transaction_at(hash.into(), index).await
    }

    async fn block_receipts(&self, params: Params<'static>) -> RpcResult<Option<Vec<TransactionReceipt>>> {
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

    async fn balance(&self, params: Params<'static>) -> RpcResult<U256> {
        let mut args = Args::new(&params, 2)?;
        let address: Address = args.required()?;
        let at = args.optional::<BlockId>()?.unwrap_or_default();
        self.backend.balance(address, at).await.map_err(|e| backend_error(&e))
    }

    async fn transaction_count(&self, params: Params<'static>) -> RpcResult<U64> {
        let mut args = Args::new(&params, 2)?;
        let address: Address = args.required()?;
        let at = args.optional::<BlockId>()?.unwrap_or_default();
        self.backend.transaction_count(address, at).await.map(U64::from).map_err(|e| backend_error(&e))
    }

    async fn code(&self, params: Params<'static>) -> RpcResult<Bytes> {
        let mut args = Args::new(&params, 2)?;
        let address: Address = args.required()?;
        let at = args.optional::<BlockId>()?.unwrap_or_default();
        self.backend.code(address, at).await.map_err(|e| backend_error(&e))
    }

    async fn storage_at(&self, params: Params<'static>) -> RpcResult<B256> {
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

    async fn call(&self, params: Params<'static>) -> RpcResult<Bytes> {
        let (request, at) = Self::call_args(&params)?;
        self.backend.call(request, at).await.map_err(|e| backend_error(&e))
    }

    async fn estimate_gas(&self, params: Params<'static>) -> RpcResult<U64> {
        let (request, at) = Self::call_args(&params)?;
        self.backend.estimate_gas(request, at).await.map(U64::from).map_err(|e| backend_error(&e))
    }

    async fn gas_price(&self, params: Params<'static>) -> RpcResult<U128> {
        Args::new(&params, 0)?;
        self.backend.gas_price().await.map(U128::from).map_err(|e| backend_error(&e))
    }

    async fn max_priority_fee_per_gas(&self, params: Params<'static>) -> RpcResult<U128> {
        Args::new(&params, 0)?;
        self.backend.max_priority_fee_per_gas().await.map(U128::from).map_err(|e| backend_error(&e))
    }

    async fn fee_history(&self, params: Params<'static>) -> RpcResult<FeeHistory> {
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

    async fn send_raw_transaction(&self, params: Params<'static>) -> RpcResult<B256> {
        let mut args = Args::new(&params, 1)?;
        let raw: Bytes = args.required()?;
        self.backend.send_raw_transaction(raw).await.map_err(|e| {
            tracing::debug!(target: "eth_rpc", error = %e, "raw transaction refused");
            pool_error(&e)
        })
    }

    async fn transaction_by_hash(&self, params: Params<'static>) -> RpcResult<Option<Transaction>> {
        let mut args = Args::new(&params, 1)?;
        let hash: B256 = args.required()?;
        self.backend.transaction_by_hash(hash).await.map_err(|e| backend_error(&e))
    }

    async fn transaction_receipt(&self, params: Params<'static>) -> RpcResult<Option<TransactionReceipt>> {
        let mut args = Args::new(&params, 1)?;
        let hash: B256 = args.required()?;
        self.backend.transaction_receipt(hash).await.map_err(|e| backend_error(&e))
    }

    async fn logs(&self, params: Params<'static>) -> RpcResult<Vec<Log>> {
        let mut args = Args::new(&params, 1)?;
        let filter: Filter = args.required()?;
        if let Err(err) = filter.block_option.ensure_valid_block_range() {
            return Err(invalid_params(err.to_string()));
        }
        self.backend.logs(filter).await.map_err(|e| backend_error(&e))
    }

    async fn new_filter(&self, params: Params<'static>) -> RpcResult<FilterId> {
        let mut args = Args::new(&params, 1)?;
        let filter: Filter = args.required()?;
        self.filters.new_log_filter(&self.backend, filter).await
    }

    async fn new_block_filter(&self, params: Params<'static>) -> RpcResult<FilterId> {
        Args::new(&params, 0)?;
        self.filters.new_block_filter(&self.backend).await
    }

    async fn filter_changes(&self, params: Params<'static>) -> RpcResult<FilterChanges<Transaction, Log>> {
        let mut args = Args::new(&params, 1)?;
        let id: FilterId = args.required()?;
        self.filters.changes(&self.backend, &normalize(id)).await
    }

    async fn filter_logs(&self, params: Params<'static>) -> RpcResult<Vec<Log>> {
        let mut args = Args::new(&params, 1)?;
        let id: FilterId = args.required()?;
        self.filters.logs(&self.backend, &normalize(id)).await
    }

    async fn uninstall_filter(&self, params: Params<'static>) -> RpcResult<bool> {
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

/// Registers an async method that forwards its parameters to an `EthApi` method.
macro_rules! register {
    ($module:ident, $name:literal, $method:ident) => {
        $module.register_async_method($name, |params, api, _| async move { api.$method(params).await })?;
    };
}

/// Registers an async method that forwards its parameters to a function of [`tooling`].
macro_rules! register_tooling {
    ($module:ident, $name:literal, $function:ident) => {
        $module.register_async_method($name, |params, api, _| async move {
            tooling::$function(api.backend(), params).await
        })?;
    };
}

/// All eth, net, web3, debug, txpool and rpc methods and the `eth_subscribe`/`eth_unsubscribe` pair over
/// `backend`.
///
/// Merge it into another jsonrpsee server to serve these methods there; [`crate::start`] serves it on its
/// own HTTP and WebSocket servers.
pub fn rpc_module<B: ToolingBackend>(
    backend: B,
    client_version: String,
) -> Result<RpcModule<EthApi<B>>, RegisterMethodError> {
    let mut module = RpcModule::new(EthApi::new(backend, client_version));

    module.register_method("eth_chainId", |params, api, _| -> RpcResult<U64> {
        Args::new(&params, 0)?;
        Ok(U64::from(api.backend.chain_id()))
    })?;
    module.register_method("net_version", |params, api, _| -> RpcResult<String> {
        Args::new(&params, 0)?;
        Ok(api.backend.chain_id().to_string())
    })?;
    module.register_method("net_listening", |params, _, _| -> RpcResult<bool> {
        Args::new(&params, 0)?;
        Ok(true)
    })?;
    module.register_method("net_peerCount", |params, _, _| -> RpcResult<U64> {
        Args::new(&params, 0)?;
        Ok(U64::ZERO)
    })?;
    module.register_method("web3_clientVersion", |params, api, _| -> RpcResult<String> {
        Args::new(&params, 0)?;
        Ok(api.client_version.clone())
    })?;
    module.register_method("web3_sha3", |params, _, _| -> RpcResult<B256> {
        let mut args = Args::new(&params, 1)?;
        let data: Bytes = args.required()?;
        Ok(keccak256(&data))
    })?;
    module.register_method("eth_syncing", |params, _, _| -> RpcResult<bool> {
        Args::new(&params, 0)?;
        Ok(false)
    })?;
    module.register_method("eth_mining", |params, _, _| -> RpcResult<bool> {
        Args::new(&params, 0)?;
        Ok(false)
    })?;
    module.register_method("eth_accounts", |params, _, _| -> RpcResult<Vec<Address>> {
        Args::new(&params, 0)?;
        Ok(Vec::new())
    })?;

    register!(module, "eth_blockNumber", block_number);
    register!(module, "eth_getBlockByNumber", block_by_number);
    register!(module, "eth_getBlockByHash", block_by_hash);
    register!(module, "eth_getBlockTransactionCountByNumber", block_tx_count_by_number);
    register!(module, "eth_getBlockTransactionCountByHash", block_tx_count_by_hash);
    register!(module, "eth_getTransactionByBlockNumberAndIndex", tx_by_block_number_and_index);
    register!(module, "eth_getTransactionByBlockHashAndIndex", tx_by_block_hash_and_index);
    register!(module, "eth_getBlockReceipts", block_receipts);
    register!(module, "eth_getBalance", balance);
    register!(module, "eth_getTransactionCount", transaction_count);
    register!(module, "eth_getCode", code);
    register!(module, "eth_getStorageAt", storage_at);
    register!(module, "eth_call", call);
    register!(module, "eth_estimateGas", estimate_gas);
    register!(module, "eth_gasPrice", gas_price);
    register!(module, "eth_maxPriorityFeePerGas", max_priority_fee_per_gas);
    register!(module, "eth_feeHistory", fee_history);
    register!(module, "eth_sendRawTransaction", send_raw_transaction);
    register!(module, "eth_getTransactionByHash", transaction_by_hash);
    register!(module, "eth_getTransactionReceipt", transaction_receipt);
    register!(module, "eth_getLogs", logs);
    register!(module, "eth_newFilter", new_filter);
    register!(module, "eth_newBlockFilter", new_block_filter);
    register!(module, "eth_getFilterChanges", filter_changes);
    register!(module, "eth_getFilterLogs", filter_logs);
    register!(module, "eth_uninstallFilter", uninstall_filter);
    register_tooling!(module, "eth_blobBaseFee", blob_base_fee);
    register_tooling!(module, "eth_getProof", proof);
    register_tooling!(module, "eth_createAccessList", create_access_list);
    register_tooling!(module, "debug_traceTransaction", trace_transaction);
    register_tooling!(module, "debug_traceCall", trace_call);
    register_tooling!(module, "txpool_content", txpool_content);
    register_tooling!(module, "txpool_status", txpool_status);
    register_tooling!(module, "txpool_inspect", txpool_inspect);

    module.register_subscription(
        "eth_subscribe",
        "eth_subscription",
        "eth_unsubscribe",
        |params, pending, api, _| async move { pubsub::subscribe(params, pending, api).await },
    )?;

    let served = tooling::modules(module.method_names());
    module.register_method("rpc_modules", move |params, _, _| -> RpcResult<_> {
        Args::new(&params, 0)?;
        Ok(served.clone())
    })?;

    Ok(module)
}
