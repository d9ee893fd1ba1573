//! What developer tools need from the engine beyond [`EthBackend`]: the blob base fee, EIP-1186 state
//! proofs, access lists, geth's debug tracers, the pool's content and new-transaction notifications.
//!
//! cast, Foundry, Hardhat, ethers and viem call these (`eth_blobBaseFee`, `eth_getProof`,
//! `eth_createAccessList`, `debug_traceTransaction`, `debug_traceCall`, `txpool_*`, the
//! `newPendingTransactions` subscription). The answers are the JSON-RPC types geth and reth serve, so the
//! server only reads parameters and writes them out.

use std::future::Future;

use alloy_eips::BlockId;
use alloy_eips::eip2930::AccessListResult;
use alloy_primitives::{Address, B256};
use alloy_rpc_types_eth::{EIP1186AccountProofResponse, Transaction, TransactionRequest};
use alloy_rpc_types_trace::geth::{GethDebugTracingOptions, GethTrace};
use alloy_rpc_types_txpool::TxpoolContent;
use tokio::sync::broadcast;

use crate::backend::{BackendError, EthBackend};

/// The developer-tooling reads of the engine, answered the way geth answers them.
///
/// Calls and traces of calls run like [`EthBackend::call`]: on the state of the named block, free unless the
/// request names a price, with the sender's nonce filled in.
pub trait ToolingBackend: EthBackend {
    /// The blob base fee of the canonical head: its excess blob gas priced with the blob schedule of the
    /// fork active at its timestamp (geth's `eth_blobBaseFee`). `None` before Cancun.
    fn blob_base_fee(&self) -> impl Future<Output = Result<Option<u128>, BackendError>> + Send;

    /// The EIP-1186 proof of an account and of the storage slots `keys` at a block: Merkle-Patricia proofs
    /// from the block's state root (and the account's storage root), absent keys proven absent. The
    /// `key` of each storage proof is the slot as a 32-byte hash.
    fn proof(
        &self,
        address: Address,
        keys: Vec<B256>,
        at: BlockId,
    ) -> impl Future<Output = Result<EIP1186AccountProofResponse, BackendError>> + Send;

    /// The access list of a call (every account and slot it touches, less the sender, the recipient and
    /// the precompiles) and the gas the call uses with it; a revert or halt is reported in `error`, as
    /// geth does, not as an error of the method.
    fn create_access_list(
        &self,
        request: TransactionRequest,
        at: BlockId,
    ) -> impl Future<Output = Result<AccessListResult, BackendError>> + Send;

    /// Replays a canonical transaction on the state before it (its block's parent, the block's system
    /// calls and the transactions before it) under the tracer `options` name; `None` when the
    /// transaction is not in a canonical block.
    fn trace_transaction(
        &self,
        hash: B256,
        options: GethDebugTracingOptions,
    ) -> impl Future<Output = Result<Option<GethTrace>, BackendError>> + Send;

    /// Runs a call on the state of a block under the tracer `options` name, without committing it.
    fn trace_call(
        &self,
        request: TransactionRequest,
        at: BlockId,
        options: GethDebugTracingOptions,
    ) -> impl Future<Output = Result<GethTrace, BackendError>> + Send;

    /// The pooled transactions by sender and nonce: `pending` are executable (their nonces follow the
    /// sender's account nonce without a gap), `queued` wait behind a gap.
    fn pool_content(&self) -> impl Future<Output = Result<TxpoolContent<Transaction>, BackendError>> + Send;

    /// Every transaction the pool accepts from now on, once, as it is accepted (for the
    /// `newPendingTransactions` subscription).
    fn subscribe_pending_transactions(&self) -> broadcast::Receiver<Transaction>;
}
