//! The RPC module: every method of [`EthApi`], the tooling methods and the `eth_subscribe` pair,
//! registered on one jsonrpsee module.

use alloy_primitives::{Address, B256, Bytes, U64, keccak256};
use alys_el_api::ToolingBackend;
use jsonrpsee::{RpcModule, core::RegisterMethodError};

use crate::{
    api::{EthApi, RpcResult},
    args::Args,
    pubsub, tooling,
};

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
