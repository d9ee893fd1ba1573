//! The interface between the eth JSON-RPC server and the engine that owns the chain.
//!
//! The RPC server (`eth_rpc`) is generic over [`EthBackend`]; the engine's handle implements it. Reads are
//! answered from the engine's canonical chain; writes (raw transactions) go to its pool. Errors are typed so
//! the server can answer with the codes and messages wallets expect from geth and reth.

use std::future::Future;

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_rpc_types_eth::{
    Block, FeeHistory, Filter, Log, Transaction, TransactionReceipt, TransactionRequest,
};
use tokio::sync::broadcast;

use crate::notifications::ChainNotification;

/// A read or call that the engine could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The block named by the request is not known (or not canonical, for numbers and tags).
    #[error("unknown block")]
    UnknownBlock,
    /// The call reverted; `data` is the revert payload (ABI-encoded error, possibly empty).
    #[error("execution reverted{}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    Reverted {
        /// Raw revert data.
        data: Bytes,
        /// The decoded `Error(string)` reason, when there is one.
        reason: Option<String>,
    },
    /// The call halted or could not be executed (out of gas, invalid opcode, insufficient funds…).
    #[error("{0}")]
    Execution(String),
    /// A log query spans more blocks than the engine serves in one request.
    #[error("query exceeds max block range {max}")]
    RangeTooLarge {
        /// The largest span, in blocks, one query may cover.
        max: u64,
    },
    /// A log query matched more logs than the engine returns in one response.
    #[error("query returned more than {max} results")]
    TooManyResults {
        /// The most logs one response may carry.
        max: usize,
    },
    /// A parameter is well-formed JSON but makes no sense (e.g. `fromBlock` after `toBlock`).
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// The engine is shutting down or its task failed.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why the pool refused a raw transaction. The messages are geth's, which wallets and tools match on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The bytes are not a valid EIP-2718 transaction.
    #[error("rlp: {0}")]
    Decode(String),
    /// The signature does not recover to a sender.
    #[error("invalid sender")]
    InvalidSignature,
    /// The transaction is signed for another chain, or is a legacy transaction without EIP-155.
    #[error("invalid chain id")]
    WrongChainId,
    /// The type is not accepted by this pool (e.g. EIP-4844 blob transactions before Cancun).
    #[error("transaction type not supported")]
    TxTypeNotSupported,
    /// A blob transaction arrived in its canonical encoding, without the sidecar (blobs, commitments,
    /// proofs) the network encoding carries.
    #[error("missing sidecar in blob transaction")]
    MissingBlobSidecar,
    /// A blob transaction names no blob.
    #[error("blobless blob transaction")]
    NoBlobs,
    /// A blob transaction carries more blobs than the fork allows one transaction.
    #[error("too many blobs in transaction: have {have}, permitted {permitted}")]
    TooManyBlobs {
        /// How many blobs the transaction carries.
        have: usize,
        /// The most the active fork allows.
        permitted: u64,
    },
    /// The sidecar does not match the transaction's versioned hashes or its KZG proofs do not verify.
    #[error(transparent)]
    InvalidBlobSidecar(#[from] BlobSidecarError),
    /// The sender has pooled transactions of the other kind (blob or not); like geth, a sender uses one
    /// kind at a time.
    #[error("address already reserved")]
    AddressReserved,
    /// The exact transaction is already in the pool.
    #[error("already known")]
    AlreadyKnown,
    /// The nonce is below the sender's account nonce.
    #[error("nonce too low: next nonce {expected}, tx nonce {got}")]
    NonceTooLow {
        /// The sender's next nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// The nonce leaves a gap larger than the pool queues per sender.
    #[error("nonce too high: next nonce {expected}, tx nonce {got}")]
    NonceTooHigh {
        /// The sender's next nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// The sender cannot pay `gas * price + value`.
    #[error(
        "insufficient funds for gas * price + value: balance {balance}, tx cost {cost}, overshot {}",
        cost.saturating_sub(*balance)
    )]
    InsufficientFunds {
        /// The sender's balance.
        balance: U256,
        /// `gas_limit * max_fee + value`.
        cost: U256,
    },
    /// The fee is below the pool's floor.
    #[error("transaction underpriced")]
    Underpriced,
    /// A transaction with the same sender and nonce is pooled and this one does not pay enough more.
    #[error("replacement transaction underpriced")]
    ReplacementUnderpriced,
    /// The gas limit is below the intrinsic gas of the transaction.
    #[error("intrinsic gas too low")]
    IntrinsicGasTooLow,
    /// The gas limit is above the block gas limit.
    #[error("exceeds block gas limit")]
    GasLimitExceeded,
    /// `max_priority_fee_per_gas` is above `max_fee_per_gas`.
    #[error("max priority fee per gas higher than max fee per gas")]
    TipAboveFeeCap,
    /// The encoded transaction is larger than the pool accepts.
    #[error("oversized data")]
    Oversized,
    /// The pool is at capacity and this transaction does not pay enough to evict another.
    #[error("txpool is full")]
    PoolFull,
    /// The engine is shutting down or its task failed.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why a blob transaction's sidecar was refused. The messages are geth's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobSidecarError {
    /// The numbers of blobs, commitments and proofs differ from the number of versioned hashes.
    #[error(
        "invalid number of {blobs} blobs, {commitments} commitments and {proofs} proofs compared to {hashes} blob hashes"
    )]
    Length {
        /// Versioned hashes in the transaction.
        hashes: usize,
        /// Blobs in the sidecar.
        blobs: usize,
        /// Commitments in the sidecar.
        commitments: usize,
        /// Proofs in the sidecar.
        proofs: usize,
    },
    /// A commitment does not hash to the transaction's versioned hash at its index.
    #[error("blob {index}: computed hash {computed} mismatches transaction one {claimed}")]
    VersionedHash {
        /// The blob's index in the transaction.
        index: usize,
        /// The versioned hash of the sidecar's commitment.
        computed: B256,
        /// The versioned hash the transaction names.
        claimed: B256,
    },
    /// The KZG proofs do not verify the blobs against their commitments (or a commitment or proof is
    /// not a curve point).
    #[error("invalid blob proof")]
    InvalidProof,
    /// The sidecar carries EIP-7594 cell proofs, which no fork of this chain uses.
    #[error("blob sidecar with cell proofs is not supported before Osaka")]
    CellProofs,
}

/// What the eth JSON-RPC server needs from the engine.
///
/// Every method resolves `BlockId`s the way geth does: `latest` is the canonical head, `safe` and
/// `finalized` the blocks the consensus client named in its last `forkchoiceUpdated`, `pending` is
/// answered as `latest`, `earliest` is genesis.
pub trait EthBackend: Clone + Send + Sync + 'static {
    /// The EIP-155 chain id.
    fn chain_id(&self) -> u64;

    /// The canonical head's number.
    fn block_number(&self) -> impl Future<Output = Result<u64, BackendError>> + Send;

    /// A block with full transactions (`full`) or their hashes; `None` when unknown.
    fn block(
        &self,
        id: BlockId,
        full: bool,
    ) -> impl Future<Output = Result<Option<Block>, BackendError>> + Send;

    /// An account's balance at a block.
    fn balance(
        &self,
        address: Address,
        at: BlockId,
    ) -> impl Future<Output = Result<U256, BackendError>> + Send;

    /// An account's nonce at a block. For `pending`, pooled transactions of the sender count too.
    fn transaction_count(
        &self,
        address: Address,
        at: BlockId,
    ) -> impl Future<Output = Result<u64, BackendError>> + Send;

    /// An account's code at a block.
    fn code(&self, address: Address, at: BlockId)
    -> impl Future<Output = Result<Bytes, BackendError>> + Send;

    /// A storage slot's value at a block.
    fn storage_at(
        &self,
        address: Address,
        slot: U256,
        at: BlockId,
    ) -> impl Future<Output = Result<B256, BackendError>> + Send;

    /// Executes a call against the state at a block without committing it; returns the output.
    fn call(
        &self,
        request: TransactionRequest,
        at: BlockId,
    ) -> impl Future<Output = Result<Bytes, BackendError>> + Send;

    /// The smallest gas limit with which the call succeeds at a block.
    fn estimate_gas(
        &self,
        request: TransactionRequest,
        at: BlockId,
    ) -> impl Future<Output = Result<u64, BackendError>> + Send;

    /// A suggested legacy gas price: the next base fee plus the suggested tip.
    fn gas_price(&self) -> impl Future<Output = Result<u128, BackendError>> + Send;

    /// A suggested priority fee (tip) per gas.
    fn max_priority_fee_per_gas(&self) -> impl Future<Output = Result<u128, BackendError>> + Send;

    /// `eth_feeHistory` over up to `block_count` blocks ending at `newest`.
    fn fee_history(
        &self,
        block_count: u64,
        newest: BlockNumberOrTag,
        reward_percentiles: Option<Vec<f64>>,
    ) -> impl Future<Output = Result<FeeHistory, BackendError>> + Send;

    /// A transaction by hash, from the canonical chain or the pool; `None` when unknown.
    fn transaction_by_hash(
        &self,
        hash: B256,
    ) -> impl Future<Output = Result<Option<Transaction>, BackendError>> + Send;

    /// A canonical transaction's receipt; `None` when not mined (or not canonical).
    fn transaction_receipt(
        &self,
        hash: B256,
    ) -> impl Future<Output = Result<Option<TransactionReceipt>, BackendError>> + Send;

    /// Canonical logs matching the filter. The backend enforces its block-range and result limits.
    fn logs(&self, filter: Filter) -> impl Future<Output = Result<Vec<Log>, BackendError>> + Send;

    /// Validates a signed EIP-2718 transaction and adds it to the pool; returns its hash.
    fn send_raw_transaction(&self, raw: Bytes) -> impl Future<Output = Result<B256, PoolError>> + Send;

    /// Canonical chain changes (commits, reverts, reorgs), for `eth_subscribe`.
    fn subscribe_chain(&self) -> broadcast::Receiver<ChainNotification>;
}

/// A block the engine built for a payload id: what `engine_getPayloadV2/V3/V4` wrap in their envelopes.
#[derive(Debug, Clone)]
pub struct BuiltPayload {
    /// The built block, executed, with its receipts.
    pub block: std::sync::Arc<crate::notifications::ExecutedBlock>,
    /// Total priority fees paid to the fee recipient, in wei (`blockValue`).
    pub fees: U256,
    /// EIP-7685 execution requests (Prague and later), in the order and encoding of `getPayloadV4`.
    pub requests: Option<alloy_eips::eip7685::Requests>,
    /// The sidecars of the block's blob transactions, in block order: the `blobsBundle` of
    /// `getPayloadV3/V4`.
    pub sidecars: Vec<std::sync::Arc<alloy_eips::eip4844::BlobTransactionSidecar>>,
}

/// An Engine API call the engine refused. Each maps to the spec's JSON-RPC error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// `-38001`: no payload is being built for this id.
    #[error("Unknown payload")]
    UnknownPayload,
    /// `-38002`: the forkchoice state is inconsistent (e.g. finalized not an ancestor of head).
    #[error("Invalid forkchoice state")]
    InvalidForkchoiceState,
    /// `-38003`: the payload attributes are invalid for the head (e.g. timestamp not after parent).
    #[error("Invalid payload attributes")]
    InvalidPayloadAttributes,
    /// `-38004`: a bodies request asked for too many blocks.
    #[error("Too large request")]
    TooLargeRequest,
    /// `-38005`: the method version does not match the fork at the payload's timestamp.
    #[error("Unsupported fork")]
    UnsupportedFork,
    /// `-32602`: parameters of the wrong shape for this method version.
    #[error("Invalid params: {0}")]
    InvalidParams(String),
    /// `-32603`: the engine failed internally (storage, task gone).
    #[error("Internal error: {0}")]
    Internal(String),
}

/// What the Engine API server needs from the engine.
///
/// The server checks method versions against the fork schedule (reth's rules) before calling these; the
/// backend validates and executes payloads, moves the canonical chain and builds payloads.
pub trait EngineBackend: Clone + Send + Sync + 'static {
    /// The chain spec, for the fork schedule.
    fn chain_spec(&self) -> &alys_chainspec::ChainSpec;

    /// Validates and executes a payload (`engine_newPayloadV2/V3/V4`). Returns VALID, INVALID with the
    /// latest valid ancestor, or SYNCING when the parent is unknown. Does not change the canonical head.
    fn new_payload(
        &self,
        payload: alloy_rpc_types_engine::ExecutionPayload,
        sidecar: alloy_rpc_types_engine::ExecutionPayloadSidecar,
    ) -> impl Future<Output = Result<alloy_rpc_types_engine::PayloadStatus, EngineError>> + Send;

    /// Moves the canonical head, safe and finalized blocks (`engine_forkchoiceUpdatedV2/V3`), and starts
    /// building a payload on the new head when attributes are given.
    fn fork_choice_updated(
        &self,
        state: alloy_rpc_types_engine::ForkchoiceState,
        attributes: Option<alloy_rpc_types_engine::PayloadAttributes>,
    ) -> impl Future<Output = Result<alloy_rpc_types_engine::ForkchoiceUpdated, EngineError>> + Send;

    /// The best payload built so far for an id (`engine_getPayloadV2/V3/V4`).
    fn get_payload(
        &self,
        id: alloy_rpc_types_engine::PayloadId,
    ) -> impl Future<Output = Result<BuiltPayload, EngineError>> + Send;

    /// Bodies of blocks by hash (`engine_getPayloadBodiesByHashV1`); `None` for unknown blocks.
    fn payload_bodies_by_hash(
        &self,
        hashes: Vec<B256>,
    ) -> impl Future<Output = Result<Vec<Option<alloy_rpc_types_engine::ExecutionPayloadBodyV1>>, EngineError>>
    + Send;

    /// Bodies of canonical blocks `start..start + count` (`engine_getPayloadBodiesByRangeV1`); the list
    /// stops at the head, and `None` stands for a block that is not available.
    fn payload_bodies_by_range(
        &self,
        start: u64,
        count: u64,
    ) -> impl Future<Output = Result<Vec<Option<alloy_rpc_types_engine::ExecutionPayloadBodyV1>>, EngineError>>
    + Send;

    /// The blobs and proofs of pooled blob transactions by versioned hash (`engine_getBlobsV1`), one
    /// entry per hash in order, `None` for blobs the backend does not hold. A backend without a blob
    /// pool holds none.
    fn blobs_v1(
        &self,
        versioned_hashes: Vec<B256>,
    ) -> impl Future<Output = Result<Vec<Option<alloy_eips::eip4844::BlobAndProofV1>>, EngineError>> + Send
    {
        std::future::ready(Ok(vec![None; versioned_hashes.len()]))
    }
}
