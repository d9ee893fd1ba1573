//! The engine task and its handle.
//!
//! The engine is one tokio task that owns all chain state. Handles send it messages over a bounded
//! channel; each message is a request the task runs against its state, answering on a oneshot channel,
//! inside a `tracing` span named after the request. Execution is synchronous on the task (payloads are
//! processed one at a time, as in reth's engine tree), so blocks are never validated concurrently.

use std::{path::PathBuf, sync::Arc};

use alloy_eips::{BlockId, BlockNumberOrTag, eip4844::BlobAndProofV1};
use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_rpc_types_engine::{
    ExecutionPayload, ExecutionPayloadBodyV1, ExecutionPayloadSidecar, ForkchoiceState, ForkchoiceUpdated,
    PayloadAttributes, PayloadId, PayloadStatus,
};
use alloy_rpc_types_eth::{
    Block, FeeHistory, Filter, Log, Transaction, TransactionReceipt, TransactionRequest,
};
use alys_chainspec::ChainSpec;
use alys_el_api::{
    BackendError, BuiltPayload, ChainNotification, EngineBackend, EngineError, EthBackend, ExecutedBlock,
    PoolError,
};
use alys_el_pool::{Pool, PoolConfig};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::Instrument;

use crate::{
    engine::EngineState,
    store::{Store, StoreError},
};

/// How the engine starts.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The chain to run.
    pub chain_spec: Arc<ChainSpec>,
    /// Where to keep the chain; `None` keeps everything in memory (tests).
    pub datadir: Option<PathBuf>,
    /// The pool's limits; `None` takes [`PoolConfig::new`] for the chain id and genesis gas limit.
    pub pool: Option<PoolConfig>,
    /// Capacity of the engine's mailbox.
    pub mailbox: usize,
    /// Capacity of the chain notification channel (slow receivers lag past it).
    pub notification_capacity: usize,
}

impl EngineConfig {
    /// An in-memory engine for a chain spec with default limits.
    pub fn new(chain_spec: Arc<ChainSpec>) -> Self {
        Self { chain_spec, datadir: None, pool: None, mailbox: 1024, notification_capacity: 1024 }
    }

    /// Persists the chain in `datadir`.
    pub fn with_datadir(mut self, datadir: impl Into<PathBuf>) -> Self {
        self.datadir = Some(datadir.into());
        self
    }

    /// Uses these pool limits.
    pub fn with_pool(mut self, pool: PoolConfig) -> Self {
        self.pool = Some(pool);
        self
    }
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineStartError {
    /// The data directory's store failed to open or read.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The data directory belongs to another chain.
    #[error("datadir holds genesis {stored}, but the chain spec's genesis is {expected}")]
    GenesisMismatch {
        /// The genesis recorded in the store.
        stored: B256,
        /// The genesis of the configured chain spec.
        expected: B256,
    },
    /// `spawn` was called outside a tokio runtime.
    #[error("no tokio runtime: {0}")]
    NoRuntime(String),
}

type Job = Box<dyn FnOnce(&mut EngineState) + Send>;

struct Message {
    name: &'static str,
    job: Job,
}

/// The embedded execution engine: [`Engine::spawn`] starts its task and returns the handle.
#[derive(Debug)]
pub struct Engine;

impl Engine {
    /// Builds the engine (re-executing a stored chain, if any) and spawns its task on the current tokio
    /// runtime. The task ends when every handle is dropped.
    pub fn spawn(config: EngineConfig) -> Result<EngineHandle, EngineStartError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|e| EngineStartError::NoRuntime(e.to_string()))?;
        let spec = Arc::clone(&config.chain_spec);
        let store = config.datadir.as_deref().map(Store::open).transpose()?;
        let pool_config =
            config.pool.clone().unwrap_or_else(|| PoolConfig::new(spec.chain_id(), spec.genesis().gas_limit));
        let (notify, _) = broadcast::channel(config.notification_capacity.max(1));
        let (pending, _) = broadcast::channel(config.notification_capacity.max(1));
        let engine = EngineState::new(Arc::clone(&spec), store, Pool::new(pool_config), notify.clone())?;
        let genesis_hash = engine.genesis_hash;
        let (tx, mut rx) = mpsc::channel::<Message>(config.mailbox.max(1));
        runtime.spawn(
            async move {
                let mut engine = engine;
                while let Some(Message { name, job }) = rx.recv().await {
                    let span = tracing::debug_span!(target: "el::engine", "request", method = name);
                    let outcome = span.in_scope(|| {
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut engine)))
                    });
                    if outcome.is_err() {
                        // A bug, not an input: keep serving; the caller sees its reply dropped.
                        tracing::error!(target: "el::engine", method = name, "request panicked");
                    }
                    // Block execution is CPU work: let other tasks on this worker run between requests.
                    tokio::task::yield_now().await;
                }
                tracing::debug!(target: "el::engine", "all handles dropped, engine stops");
            }
            .instrument(tracing::info_span!(target: "el::engine", "engine")),
        );
        Ok(EngineHandle { inner: Arc::new(Shared { spec, genesis_hash, notify, pending }), tx })
    }
}

#[derive(Debug)]
struct Shared {
    spec: Arc<ChainSpec>,
    genesis_hash: B256,
    notify: broadcast::Sender<ChainNotification>,
    /// Transactions the pool accepted, for `newPendingTransactions`.
    pending: broadcast::Sender<Transaction>,
}

/// A cloneable handle to the engine task. Implements [`EngineBackend`], [`EthBackend`] and
/// [`alys_el_api::ToolingBackend`].
#[derive(Debug, Clone)]
pub struct EngineHandle {
    inner: Arc<Shared>,
    tx: mpsc::Sender<Message>,
}

/// The engine task has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("engine task is gone")]
pub struct EngineGone;

impl From<EngineGone> for EngineError {
    fn from(e: EngineGone) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<EngineGone> for BackendError {
    fn from(e: EngineGone) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<EngineGone> for PoolError {
    fn from(e: EngineGone) -> Self {
        Self::Internal(e.to_string())
    }
}

impl EngineHandle {
    /// The genesis block hash.
    pub fn genesis_hash(&self) -> B256 {
        self.inner.genesis_hash
    }

    /// The chain spec the engine runs.
    pub fn spec(&self) -> &Arc<ChainSpec> {
        &self.inner.spec
    }

    /// Canonical chain notifications for in-process consumers (the ExEx): the same channel as
    /// [`EthBackend::subscribe_chain`].
    pub fn subscribe_notifications(&self) -> broadcast::Receiver<ChainNotification> {
        self.inner.notify.subscribe()
    }

    /// Every transaction the pool accepts from now on.
    pub(crate) fn subscribe_pending(&self) -> broadcast::Receiver<Transaction> {
        self.inner.pending.subscribe()
    }

    pub(crate) async fn request<T: Send + 'static>(
        &self,
        name: &'static str,
        f: impl FnOnce(&mut EngineState) -> T + Send + 'static,
    ) -> Result<T, EngineGone> {
        let (reply, response) = oneshot::channel();
        let job: Job = Box::new(move |engine| {
            let _ = reply.send(f(engine));
        });
        self.tx.send(Message { name, job }).await.map_err(|_| EngineGone)?;
        response.await.map_err(|_| EngineGone)
    }

    /// The canonical head's hash and number.
    pub async fn head(&self) -> Result<(B256, u64), EngineGone> {
        self.request("head", |e| (e.head_hash(), e.block_number())).await
    }

    /// The canonical block `number` with its senders and receipts, as chain notifications carry it
    /// (`None` above the head): what the ExEx re-reads after notifications it missed.
    pub async fn canonical_block(&self, number: u64) -> Result<Option<Arc<ExecutedBlock>>, EngineGone> {
        self.request("canonical_block", move |e| {
            let hash = usize::try_from(number).ok().and_then(|n| e.canonical.get(n))?;
            e.blocks.get(hash).map(|node| Arc::clone(&node.block))
        })
        .await
    }

    /// How many transactions the pool holds.
    pub async fn pool_size(&self) -> Result<usize, EngineGone> {
        self.request("pool_size", |e| e.pool.len()).await
    }
}

impl EngineBackend for EngineHandle {
    fn chain_spec(&self) -> &ChainSpec {
        &self.inner.spec
    }

    async fn new_payload(
        &self,
        payload: ExecutionPayload,
        sidecar: ExecutionPayloadSidecar,
    ) -> Result<PayloadStatus, EngineError> {
        self.request("engine_newPayload", move |e| e.new_payload(payload, sidecar)).await?
    }

    async fn fork_choice_updated(
        &self,
        state: ForkchoiceState,
        attributes: Option<PayloadAttributes>,
    ) -> Result<ForkchoiceUpdated, EngineError> {
        self.request("engine_forkchoiceUpdated", move |e| e.fork_choice_updated(state, attributes)).await?
    }

    async fn get_payload(&self, id: PayloadId) -> Result<BuiltPayload, EngineError> {
        self.request("engine_getPayload", move |e| e.get_payload(id)).await?
    }

    async fn payload_bodies_by_hash(
        &self,
        hashes: Vec<B256>,
    ) -> Result<Vec<Option<ExecutionPayloadBodyV1>>, EngineError> {
        self.request("engine_getPayloadBodiesByHash", move |e| e.bodies_by_hash(hashes)).await?
    }

    async fn payload_bodies_by_range(
        &self,
        start: u64,
        count: u64,
    ) -> Result<Vec<Option<ExecutionPayloadBodyV1>>, EngineError> {
        self.request("engine_getPayloadBodiesByRange", move |e| e.bodies_by_range(start, count)).await?
    }

    async fn blobs_v1(
        &self,
        versioned_hashes: Vec<B256>,
    ) -> Result<Vec<Option<BlobAndProofV1>>, EngineError> {
        Ok(self.request("engine_getBlobsV1", move |e| e.blobs_v1(&versioned_hashes)).await?)
    }
}

impl EthBackend for EngineHandle {
    fn chain_id(&self) -> u64 {
        self.inner.spec.chain_id()
    }

    async fn block_number(&self) -> Result<u64, BackendError> {
        Ok(self.request("eth_blockNumber", |e| e.block_number()).await?)
    }

    async fn block(&self, id: BlockId, full: bool) -> Result<Option<Block>, BackendError> {
        Ok(self.request("eth_getBlock", move |e| e.rpc_block(id, full)).await?)
    }

    async fn balance(&self, address: Address, at: BlockId) -> Result<U256, BackendError> {
        self.request("eth_getBalance", move |e| e.state_at(at).map(|s| s.balance(&address))).await?
    }

    async fn transaction_count(&self, address: Address, at: BlockId) -> Result<u64, BackendError> {
        self.request("eth_getTransactionCount", move |e| e.transaction_count(address, at)).await?
    }

    async fn code(&self, address: Address, at: BlockId) -> Result<Bytes, BackendError> {
        self.request("eth_getCode", move |e| e.code(address, at)).await?
    }

    async fn storage_at(&self, address: Address, slot: U256, at: BlockId) -> Result<B256, BackendError> {
        self.request("eth_getStorageAt", move |e| e.storage_at(address, slot, at)).await?
    }

    async fn call(&self, request: TransactionRequest, at: BlockId) -> Result<Bytes, BackendError> {
        self.request("eth_call", move |e| e.call(&request, at)).await?
    }

    async fn estimate_gas(&self, request: TransactionRequest, at: BlockId) -> Result<u64, BackendError> {
        self.request("eth_estimateGas", move |e| e.estimate_gas(&request, at)).await?
    }

    async fn gas_price(&self) -> Result<u128, BackendError> {
        Ok(self.request("eth_gasPrice", |e| u128::from(e.next_base_fee()) + e.suggested_tip()).await?)
    }

    async fn max_priority_fee_per_gas(&self) -> Result<u128, BackendError> {
        Ok(self.request("eth_maxPriorityFeePerGas", |e| e.suggested_tip()).await?)
    }

    async fn fee_history(
        &self,
        block_count: u64,
        newest: BlockNumberOrTag,
        reward_percentiles: Option<Vec<f64>>,
    ) -> Result<FeeHistory, BackendError> {
        self.request("eth_feeHistory", move |e| e.fee_history(block_count, newest, reward_percentiles))
            .await?
    }

    async fn transaction_by_hash(&self, hash: B256) -> Result<Option<Transaction>, BackendError> {
        Ok(self.request("eth_getTransactionByHash", move |e| e.transaction_by_hash(hash)).await?)
    }

    async fn transaction_receipt(&self, hash: B256) -> Result<Option<TransactionReceipt>, BackendError> {
        Ok(self.request("eth_getTransactionReceipt", move |e| e.transaction_receipt(hash)).await?)
    }

    async fn logs(&self, filter: Filter) -> Result<Vec<Log>, BackendError> {
        self.request("eth_getLogs", move |e| e.logs(&filter)).await?
    }

    async fn send_raw_transaction(&self, raw: Bytes) -> Result<B256, PoolError> {
        let announce = self.inner.pending.receiver_count() > 0;
        let (hash, accepted) = self
            .request("eth_sendRawTransaction", move |e| {
                let hash = e.send_raw_transaction(&raw)?;
                Ok::<_, PoolError>((hash, announce.then(|| e.transaction_by_hash(hash)).flatten()))
            })
            .await??;
        if let Some(tx) = accepted {
            // No receiver left is fine: nobody is subscribed.
            let _ = self.inner.pending.send(tx);
        }
        Ok(hash)
    }

    fn subscribe_chain(&self) -> broadcast::Receiver<ChainNotification> {
        self.inner.notify.subscribe()
    }
}
