//! The methods developer tools call beyond the core eth set, read and answered as geth does:
//! `eth_blobBaseFee`, `eth_getProof`, `eth_createAccessList`, `debug_traceTransaction`, `debug_traceCall`,
//! `txpool_content`, `txpool_status`, `txpool_inspect` and `rpc_modules`. The engine computes the answers
//! ([`ToolingBackend`]); this module reads parameters and shapes what geth shapes here (`txpool_status` and
//! `txpool_inspect` from the pool's content, the storage keys of a proof as the caller wrote them).

use std::collections::BTreeMap;

use alloy_eips::{BlockId, eip2930::AccessListResult};
use alloy_primitives::{Address, B256, U256};
use alloy_rpc_types_eth::{EIP1186AccountProofResponse, Transaction, TransactionRequest};
use alloy_rpc_types_trace::geth::{GethDebugTracingCallOptions, GethDebugTracingOptions, GethTrace};
use alloy_rpc_types_txpool::{TxpoolContent, TxpoolInspect, TxpoolInspectSummary, TxpoolStatus};
use alloy_serde::storage::JsonStorageKey;
use alys_el_api::ToolingBackend;
use jsonrpsee::types::Params;

use crate::{
    args::Args,
    error::{backend_error, invalid_params, transaction_not_found},
};

/// The result of one method.
type RpcResult<T> = Result<T, jsonrpsee::types::ErrorObjectOwned>;

/// The most storage keys one `eth_getProof` proves (each costs a trie walk on the engine's task).
pub const MAX_PROOF_KEYS: usize = 1024;

/// The version `rpc_modules` answers for every namespace, as geth does.
pub const MODULE_VERSION: &str = "1.0";

pub(crate) async fn blob_base_fee<B: ToolingBackend>(
    backend: &B,
    params: Params<'static>,
) -> RpcResult<Option<U256>> {
    Args::new(&params, 0)?;
    let fee = backend.blob_base_fee().await.map_err(|e| backend_error(&e))?;
    Ok(fee.map(U256::from))
}

pub(crate) async fn proof<B: ToolingBackend>(
    backend: &B,
    params: Params<'static>,
) -> RpcResult<EIP1186AccountProofResponse> {
    let mut args = Args::new(&params, 3)?;
    let address: Address = args.required()?;
    let keys: Vec<JsonStorageKey> = args.required()?;
    let at = args.optional::<BlockId>()?.unwrap_or_default();
    if keys.len() > MAX_PROOF_KEYS {
        return Err(invalid_params(format!(
            "too many storage keys: {}, at most {MAX_PROOF_KEYS}",
            keys.len()
        )));
    }
    let slots: Vec<B256> = keys.iter().map(JsonStorageKey::as_b256).collect();
    let mut proof = backend.proof(address, slots, at).await.map_err(|e| backend_error(&e))?;
    // Keys go back as the caller wrote them (a quantity stays a quantity), as geth answers.
    for (storage, key) in proof.storage_proof.iter_mut().zip(keys) {
        storage.key = key;
    }
    Ok(proof)
}

pub(crate) async fn create_access_list<B: ToolingBackend>(
    backend: &B,
    params: Params<'static>,
) -> RpcResult<AccessListResult> {
    let mut args = Args::new(&params, 2)?;
    let request: TransactionRequest = args.required()?;
    let at = args.optional::<BlockId>()?.unwrap_or_default();
    backend.create_access_list(request, at).await.map_err(|e| backend_error(&e))
}

pub(crate) async fn trace_transaction<B: ToolingBackend>(
    backend: &B,
    params: Params<'static>,
) -> RpcResult<GethTrace> {
    let mut args = Args::new(&params, 2)?;
    let hash: B256 = args.required()?;
    let options: GethDebugTracingOptions = args.optional()?.unwrap_or_default();
    match backend.trace_transaction(hash, options).await {
        Ok(Some(trace)) => Ok(trace),
        Ok(None) => Err(transaction_not_found()),
        Err(e) => Err(backend_error(&e)),
    }
}

pub(crate) async fn trace_call<B: ToolingBackend>(
    backend: &B,
    params: Params<'static>,
) -> RpcResult<GethTrace> {
    let mut args = Args::new(&params, 3)?;
    let request: TransactionRequest = args.required()?;
    let at = args.optional::<BlockId>()?.unwrap_or_default();
    let options: GethDebugTracingCallOptions = args.optional()?.unwrap_or_default();
    // Refused rather than silently ignored, as `eth_call` refuses its overrides.
    if options.state_overrides.is_some() {
        return Err(invalid_params("state overrides are not supported"));
    }
    if options.block_overrides.is_some() {
        return Err(invalid_params("block overrides are not supported"));
    }
    if options.tx_index.is_some() {
        return Err(invalid_params("txIndex is not supported"));
    }
    backend.trace_call(request, at, options.tracing_options).await.map_err(|e| backend_error(&e))
}

async fn content<B: ToolingBackend>(backend: &B) -> RpcResult<TxpoolContent<Transaction>> {
    backend.pool_content().await.map_err(|e| backend_error(&e))
}

pub(crate) async fn txpool_content<B: ToolingBackend>(
    backend: &B,
    params: Params<'static>,
) -> RpcResult<TxpoolContent<Transaction>> {
    Args::new(&params, 0)?;
    content(backend).await
}

pub(crate) async fn txpool_status<B: ToolingBackend>(
    backend: &B,
    params: Params<'static>,
) -> RpcResult<TxpoolStatus> {
    Args::new(&params, 0)?;
    let content = content(backend).await?;
    let count = |txs: &BTreeMap<Address, BTreeMap<String, Transaction>>| {
        txs.values().map(BTreeMap::len).sum::<usize>() as u64
    };
    Ok(TxpoolStatus { pending: count(&content.pending), queued: count(&content.queued) })
}

pub(crate) async fn txpool_inspect<B: ToolingBackend>(
    backend: &B,
    params: Params<'static>,
) -> RpcResult<TxpoolInspect> {
    Args::new(&params, 0)?;
    let content = content(backend).await?;
    let summarize = |txs: BTreeMap<Address, BTreeMap<String, Transaction>>| {
        txs.into_iter()
            .map(|(sender, by_nonce)| {
                let summaries = by_nonce
                    .into_iter()
                    .map(|(nonce, tx)| (nonce, TxpoolInspectSummary::from_tx(tx)))
                    .collect();
                (sender, summaries)
            })
            .collect()
    };
    Ok(TxpoolInspect { pending: summarize(content.pending), queued: summarize(content.queued) })
}

/// `rpc_modules`' answer for a server serving `methods`: each namespace (the part of a method's name
/// before `_`) with version `1.0`, and `rpc` itself.
pub(crate) fn modules<'a>(methods: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, String> {
    methods
        .into_iter()
        .filter_map(|method| method.split_once('_').map(|(namespace, _)| namespace))
        .chain(["rpc"])
        .map(|namespace| (namespace.to_owned(), MODULE_VERSION.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_are_namespaces_with_versions() {
        let answer = modules(["eth_call", "eth_chainId", "net_version", "txpool_status", "eth_subscribe"]);
        let names: Vec<&str> = answer.keys().map(String::as_str).collect();
        assert_eq!(names, ["eth", "net", "rpc", "txpool"]);
        assert!(answer.values().all(|v| v == "1.0"));
    }
}
