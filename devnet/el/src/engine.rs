//! The engine actor's state: the block tree, the canonical chain, fork choice, payload building and the
//! pool. Everything here runs on the engine task; nothing is shared.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
};

use alloy_consensus::{
    Block, BlockBody, Header, Transaction as _, TxEip4844Variant, TxEnvelope,
    transaction::{SignerRecoverable, TxHashRef},
};
use alloy_eips::{eip2718::Encodable2718, eip4844::BlobAndProofV1, eip4895::Withdrawals};
use alloy_primitives::{Address, B256, keccak256};
use alloy_rpc_types_engine::{
    ExecutionPayload, ExecutionPayloadBodyV1, ExecutionPayloadSidecar, ForkchoiceState, ForkchoiceUpdated,
    PayloadAttributes, PayloadId, PayloadStatus, PayloadStatusEnum,
};
use alys_chainspec::{ChainSpec, Fork};
use alys_el_api::{BuiltPayload, Chain, ChainNotification, EngineError, ExecutedBlock};
use alys_el_pool::{Pool, PooledTx};
use tokio::sync::broadcast;

use crate::{
    execute::{BlockError, BuildAttributes, Executor},
    state::StateSnapshot,
    store::{Store, StoreError, StoredForkchoice},
};

/// How many built payloads the engine keeps for `getPayload`.
const MAX_PAYLOADS: usize = 64;
/// How many invalid block hashes the engine remembers.
const MAX_INVALID: usize = 10_000;
/// How many recent blocks keep their state even when finalized is further back.
pub(crate) const STATE_RETENTION: u64 = 256;

/// A known, valid block.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) block: Arc<ExecutedBlock>,
    /// `None` once pruned (old canonical blocks keep their body and receipts only).
    pub(crate) state: Option<StateSnapshot>,
}

/// The engine's state.
#[derive(Debug)]
pub(crate) struct EngineState {
    pub(crate) executor: Executor,
    pub(crate) genesis_hash: B256,
    pub(crate) blocks: HashMap<B256, Node>,
    /// `canonical[n]` is the hash of canonical block `n`.
    pub(crate) canonical: Vec<B256>,
    /// Canonical transactions: hash → (block hash, index).
    pub(crate) tx_index: HashMap<B256, (B256, usize)>,
    pub(crate) forkchoice: StoredForkchoice,
    /// Invalid blocks and their latest valid ancestor.
    invalid: HashMap<B256, B256>,
    pub(crate) pool: Pool,
    payloads: HashMap<PayloadId, BuiltPayload>,
    payload_order: VecDeque<PayloadId>,
    /// Blocks this engine built, so `newPayload` for them need not execute again.
    built: HashMap<B256, (Arc<ExecutedBlock>, StateSnapshot)>,
    store: Option<Store>,
    notify: broadcast::Sender<ChainNotification>,
}

fn status(status: PayloadStatusEnum, latest_valid: Option<B256>) -> PayloadStatus {
    PayloadStatus::new(status, latest_valid)
}

fn invalid(error: impl ToString, latest_valid: Option<B256>) -> PayloadStatus {
    status(PayloadStatusEnum::Invalid { validation_error: error.to_string() }, latest_valid)
}

fn internal(e: StoreError) -> EngineError {
    EngineError::Internal(e.to_string())
}

/// Recovers the senders of a block's transactions, on two threads for large blocks.
fn recover_senders(txs: &[TxEnvelope]) -> Result<Vec<Address>, String> {
    let recover = |chunk: &[TxEnvelope]| -> Result<Vec<Address>, String> {
        chunk
            .iter()
            .map(|tx| tx.recover_signer().map_err(|e| format!("transaction {}: {e}", tx.tx_hash())))
            .collect()
    };
    if txs.len() < 64 {
        return recover(txs);
    }
    let (left, right) = txs.split_at(txs.len() / 2);
    let (a, b) = std::thread::scope(|s| {
        let handle = s.spawn(|| recover(right));
        let a = recover(left);
        (a, handle.join().unwrap_or_else(|_| Err("sender recovery panicked".into())))
    });
    let mut senders = a?;
    senders.extend(b?);
    Ok(senders)
}

/// A payload id derived from the parent and the attributes, as reth derives it.
fn payload_id(parent: B256, attributes: &PayloadAttributes) -> PayloadId {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(parent.as_slice());
    buf.extend_from_slice(&attributes.timestamp.to_be_bytes());
    buf.extend_from_slice(attributes.prev_randao.as_slice());
    buf.extend_from_slice(attributes.suggested_fee_recipient.as_slice());
    if let Some(withdrawals) = &attributes.withdrawals {
        alloy_rlp::encode_list(withdrawals, &mut buf);
    }
    if let Some(root) = attributes.parent_beacon_block_root {
        buf.extend_from_slice(root.as_slice());
    }
    let hash = keccak256(&buf);
    let mut id = [0u8; 8];
    id.copy_from_slice(hash.get(..8).unwrap_or(&[0u8; 8]));
    PayloadId::new(id)
}

impl EngineState {
    /// A fresh engine at genesis, or the chain in `store` re-executed from genesis.
    pub(crate) fn new(
        spec: Arc<ChainSpec>,
        store: Option<Store>,
        pool: Pool,
        notify: broadcast::Sender<ChainNotification>,
    ) -> Result<Self, crate::EngineStartError> {
        let (header, state) = crate::genesis::genesis(&spec);
        let genesis_hash = header.hash_slow();
        let withdrawals = spec.is_active_at(Fork::Shanghai, header.timestamp).then(Withdrawals::default);
        let block = Block { header, body: BlockBody { transactions: vec![], ommers: vec![], withdrawals } };
        let genesis =
            Arc::new(ExecutedBlock { hash: genesis_hash, block, senders: vec![], receipts: vec![] });
        let mut engine = Self {
            executor: Executor::new(spec),
            genesis_hash,
            blocks: HashMap::from([(genesis_hash, Node { block: genesis, state: Some(state) })]),
            canonical: vec![genesis_hash],
            tx_index: HashMap::new(),
            forkchoice: StoredForkchoice { head: genesis_hash, safe: B256::ZERO, finalized: B256::ZERO },
            invalid: HashMap::new(),
            pool,
            payloads: HashMap::new(),
            payload_order: VecDeque::new(),
            built: HashMap::new(),
            store: None,
            notify,
        };
        if let Some(store) = store {
            let loaded = store.load()?;
            match loaded.genesis {
                Some(stored) if stored != genesis_hash => {
                    return Err(crate::EngineStartError::GenesisMismatch { stored, expected: genesis_hash });
                }
                Some(_) => {}
                None => store.set_genesis(genesis_hash)?,
            }
            for block in loaded.blocks {
                let hash = block.header.hash_slow();
                if engine.blocks.contains_key(&hash) {
                    continue;
                }
                if let Err(error) = engine.insert_block(hash, block) {
                    tracing::warn!(target: "el::engine", %hash, %error, "stored block no longer valid, dropped");
                }
            }
            if let Some(fc) = loaded.forkchoice
                && engine.blocks.contains_key(&fc.head)
            {
                let state = ForkchoiceState {
                    head_block_hash: fc.head,
                    safe_block_hash: fc.safe,
                    finalized_block_hash: fc.finalized,
                };
                if let Err(error) = engine.apply_forkchoice(&state) {
                    tracing::warn!(target: "el::engine", ?error, "stored forkchoice not applicable");
                }
            }
            engine.store = Some(store);
            tracing::info!(target: "el::engine", head = %engine.head_hash(), blocks = engine.blocks.len(), "reopened chain");
        }
        engine.update_pool_fork();
        Ok(engine)
    }

    pub(crate) fn spec(&self) -> &ChainSpec {
        self.executor.spec()
    }

    pub(crate) fn head_hash(&self) -> B256 {
        self.canonical.last().copied().unwrap_or(self.genesis_hash)
    }

    pub(crate) fn head(&self) -> Option<&Node> {
        self.blocks.get(&self.head_hash())
    }

    pub(crate) fn head_header(&self) -> Option<&Header> {
        self.head().map(|n| &n.block.block.header)
    }

    /// The head's state (always retained).
    pub(crate) fn head_state(&self) -> Option<&StateSnapshot> {
        self.head().and_then(|n| n.state.as_ref())
    }

    /// The base fee of the next block.
    pub(crate) fn next_base_fee(&self) -> u64 {
        self.head_header().map(Executor::next_base_fee).unwrap_or_default()
    }

    /// The hashes of `hash`'s ancestors, newest first, with their numbers (for `BLOCKHASH`).
    pub(crate) fn ancestors(&self, hash: B256) -> impl Iterator<Item = (u64, B256)> + '_ {
        let mut next = Some(hash);
        std::iter::from_fn(move || {
            let node = self.blocks.get(&next?)?;
            let header = &node.block.block.header;
            next = (header.number > 0).then_some(header.parent_hash);
            Some((header.number, node.block.hash))
        })
    }

    /// Whether `hash` is canonical.
    pub(crate) fn is_canonical(&self, hash: &B256) -> bool {
        self.blocks
            .get(hash)
            .and_then(|n| usize::try_from(n.block.number()).ok())
            .and_then(|n| self.canonical.get(n))
            .is_some_and(|h| h == hash)
    }

    /// Validates and executes a block on a known parent and adds it to the tree (not canonical yet).
    fn insert_block(&mut self, hash: B256, block: Block<TxEnvelope>) -> Result<(), BlockError> {
        let node = self.execute_block(hash, block)?;
        self.blocks.insert(hash, node);
        Ok(())
    }

    /// Validates and executes a block on a known parent; the caller adds it to the tree.
    fn execute_block(&mut self, hash: B256, block: Block<TxEnvelope>) -> Result<Node, BlockError> {
        let parent = self
            .blocks
            .get(&block.header.parent_hash)
            .ok_or_else(|| BlockError::Header("unknown parent".into()))?;
        let parent_state =
            parent.state.as_ref().ok_or_else(|| BlockError::Header("parent state was pruned".into()))?;
        self.executor.validate_header(&block.header, &parent.block.block.header)?;
        let executed = if let Some((built, state)) = self.built.remove(&hash) {
            (built, state)
        } else {
            let senders = recover_senders(&block.body.transactions).map_err(BlockError::Execution)?;
            let outcome = self.executor.execute(
                &block.header,
                &block.body,
                &senders,
                parent_state,
                self.ancestors(block.header.parent_hash),
            )?;
            (Arc::new(ExecutedBlock { hash, block, senders, receipts: outcome.receipts }), outcome.state)
        };
        Ok(Node { block: executed.0, state: Some(executed.1) })
    }

    /// `engine_newPayload`.
    pub(crate) fn new_payload(
        &mut self,
        payload: ExecutionPayload,
        sidecar: ExecutionPayloadSidecar,
    ) -> Result<PayloadStatus, EngineError> {
        let claimed = payload.block_hash();
        let parent_hash = payload.parent_hash();
        if self.blocks.contains_key(&claimed) {
            return Ok(status(PayloadStatusEnum::Valid, Some(claimed)));
        }
        if let Some(latest) = self.invalid.get(&claimed) {
            return Ok(invalid("block was already found invalid", Some(*latest)));
        }
        let parent_known = self.blocks.contains_key(&parent_hash);
        let latest_if_known = parent_known.then_some(parent_hash);
        let block = match payload.try_into_block_with_sidecar::<TxEnvelope>(&sidecar) {
            Ok(block) => block,
            Err(e) => return Ok(invalid(format!("malformed payload: {e}"), latest_if_known)),
        };
        let hash = block.header.hash_slow();
        if hash != claimed {
            return Ok(invalid(format!("block hash mismatch: want {claimed}, got {hash}"), latest_if_known));
        }
        // Blocks carry blob transactions without their sidecars; the network encoding has no place here.
        let with_sidecar = |tx: &TxEnvelope| match tx {
            TxEnvelope::Eip4844(tx) => matches!(tx.tx(), TxEip4844Variant::TxEip4844WithSidecar(_)),
            _ => false,
        };
        if block.body.transactions.iter().any(with_sidecar) {
            return Ok(invalid("malformed payload: blob transaction with its sidecar", latest_if_known));
        }
        if let Some(given) = sidecar.versioned_hashes() {
            let body = block.body.transactions.iter().filter_map(|tx| tx.blob_versioned_hashes());
            if !given.iter().eq(body.flatten()) {
                // The hashes are not part of the block hash: refuse this call without condemning the block.
                return Ok(invalid("blob versioned hashes do not match the block's", latest_if_known));
            }
        }
        let shanghai = self.spec().is_active_at(Fork::Shanghai, block.header.timestamp);
        if block.body.withdrawals.is_some() != shanghai {
            return Ok(self.mark_invalid(
                hash,
                parent_hash,
                format!("withdrawals presence must be {shanghai}"),
            ));
        }
        if let Some(latest) = self.invalid.get(&parent_hash).copied() {
            self.invalid.insert(hash, latest);
            return Ok(invalid("parent is invalid", Some(latest)));
        }
        if !parent_known {
            return Ok(status(PayloadStatusEnum::Syncing, None));
        }
        if self.blocks.get(&parent_hash).is_some_and(|p| p.state.is_none()) {
            // Not the block's fault: it forks off below the window of retained states.
            return Ok(invalid(
                "parent state was pruned: the block forks below the finalized block",
                latest_if_known,
            ));
        }
        let number = block.header.number;
        let stored = self.store.is_some().then(|| block.clone());
        match self.execute_block(hash, block) {
            Ok(node) => {
                // Persist first, so a block the engine answered VALID for survives a restart.
                if let (Some(store), Some(stored)) = (&self.store, &stored) {
                    store.insert_block(hash, stored).map_err(internal)?;
                }
                self.blocks.insert(hash, node);
                tracing::debug!(target: "el::engine", %hash, number, "payload valid");
                Ok(status(PayloadStatusEnum::Valid, Some(hash)))
            }
            Err(error) => Ok(self.mark_invalid(hash, parent_hash, error)),
        }
    }

    /// Records `hash` as invalid (when its latest valid ancestor is known) and answers INVALID.
    fn mark_invalid(&mut self, hash: B256, parent: B256, error: impl ToString) -> PayloadStatus {
        let latest =
            if self.blocks.contains_key(&parent) { Some(parent) } else { self.invalid.get(&parent).copied() };
        if let Some(latest) = latest {
            if self.invalid.len() >= MAX_INVALID {
                self.invalid.clear();
            }
            self.invalid.insert(hash, latest);
        }
        let error = error.to_string();
        tracing::info!(target: "el::engine", %hash, %error, "payload invalid");
        invalid(error, latest)
    }

    /// Moves the canonical chain to `state.head_block_hash` (known) after checking safe and finalized.
    fn apply_forkchoice(&mut self, state: &ForkchoiceState) -> Result<(), EngineError> {
        let head = state.head_block_hash;
        // The new blocks, newest first, down to the first canonical ancestor.
        let mut new_hashes = Vec::new();
        let mut cursor = head;
        while !self.is_canonical(&cursor) {
            let node = self.blocks.get(&cursor).ok_or(EngineError::InvalidForkchoiceState)?;
            new_hashes.push(cursor);
            cursor = node.block.block.header.parent_hash;
        }
        new_hashes.reverse();
        let fork_number =
            self.blocks.get(&cursor).map(|n| n.block.number()).ok_or(EngineError::InvalidForkchoiceState)?;
        let on_new_chain = |hash: &B256| -> bool {
            if hash.is_zero() {
                return true;
            }
            let Some(number) = self.blocks.get(hash).map(|n| n.block.number()) else { return false };
            if number <= fork_number {
                usize::try_from(number).ok().and_then(|n| self.canonical.get(n)) == Some(hash)
            } else {
                new_hashes.contains(hash)
            }
        };
        if !on_new_chain(&state.safe_block_hash) || !on_new_chain(&state.finalized_block_hash) {
            return Err(EngineError::InvalidForkchoiceState);
        }
        let keep = usize::try_from(fork_number + 1).map_err(|e| EngineError::Internal(e.to_string()))?;
        let old_len = self.canonical.len() as u64;
        let forkchoice =
            StoredForkchoice { head, safe: state.safe_block_hash, finalized: state.finalized_block_hash };
        let unchanged =
            new_hashes.is_empty() && keep >= self.canonical.len() && forkchoice == self.forkchoice;
        if unchanged {
            return Ok(());
        }
        // Persist first: memory changes only once the store has the new facts.
        if let Some(store) = &self.store {
            store.set_forkchoice(fork_number + 1, &new_hashes, old_len, forkchoice).map_err(internal)?;
        }
        let old_hashes: Vec<B256> = self.canonical.split_off(keep.min(self.canonical.len()));
        self.canonical.extend(new_hashes.iter().copied());
        self.forkchoice = forkchoice;

        let old: Vec<Arc<ExecutedBlock>> =
            old_hashes.iter().filter_map(|h| self.blocks.get(h).map(|n| Arc::clone(&n.block))).collect();
        let new: Vec<Arc<ExecutedBlock>> =
            new_hashes.iter().filter_map(|h| self.blocks.get(h).map(|n| Arc::clone(&n.block))).collect();
        for block in &old {
            for tx in &block.block.body.transactions {
                self.tx_index.remove(tx.tx_hash());
            }
        }
        for block in &new {
            for (i, tx) in block.block.body.transactions.iter().enumerate() {
                self.tx_index.insert(*tx.tx_hash(), (block.hash, i));
            }
        }
        if !old.is_empty() || !new.is_empty() {
            self.on_canonical_change(old, new);
        }
        self.prune();
        Ok(())
    }

    fn on_canonical_change(&mut self, old: Vec<Arc<ExecutedBlock>>, new: Vec<Arc<ExecutedBlock>>) {
        let included: HashSet<B256> =
            new.iter().flat_map(|b| b.block.body.transactions.iter().map(|tx| *tx.tx_hash())).collect();
        let reinject: Vec<Arc<PooledTx>> = old
            .iter()
            .flat_map(|b| b.block.body.transactions.iter().zip(&b.senders))
            .filter(|(tx, _)| !included.contains(tx.tx_hash()))
            .map(|(tx, sender)| {
                Arc::new(PooledTx {
                    hash: *tx.tx_hash(),
                    sender: *sender,
                    tx: tx.clone(),
                    encoded: tx.encoded_2718().into(),
                    received: 0,
                    sidecar: None,
                })
            })
            .collect();
        self.update_pool_fork();
        if let Some(state) = self.head().and_then(|n| n.state.clone()) {
            self.pool.on_canonical_change(reinject, &state);
        }
        let chain = |blocks: Vec<Arc<ExecutedBlock>>| Chain::new(blocks).map(Arc::new);
        let notification = match (old.is_empty(), new.is_empty()) {
            (true, _) => chain(new).map(|new| ChainNotification::Committed { new }),
            (false, true) => chain(old).map(|old| ChainNotification::Reverted { old }),
            (false, false) => {
                chain(old).and_then(|old| chain(new).map(|new| ChainNotification::Reorged { old, new }))
            }
        };
        match notification {
            Ok(notification) => {
                tracing::debug!(target: "el::engine", head = %self.head_hash(), "canonical chain changed");
                // No receiver is not an error: nobody may be listening yet.
                let _ = self.notify.send(notification);
            }
            Err(e) => tracing::error!(target: "el::engine", %e, "canonical change is not contiguous"),
        }
    }

    /// Drops the state of old canonical blocks and side blocks that can no longer become canonical.
    fn prune(&mut self) {
        let head_number = self.canonical.len().saturating_sub(1) as u64;
        let finalized = self.blocks.get(&self.forkchoice.finalized).map_or(0, |n| n.block.number());
        let cutoff = finalized.min(head_number.saturating_sub(STATE_RETENTION));
        let mut drop_side = Vec::new();
        for (hash, node) in &mut self.blocks {
            let number = node.block.number();
            let canonical = usize::try_from(number).ok().and_then(|n| self.canonical.get(n)) == Some(hash);
            if canonical {
                if number < cutoff {
                    node.state = None;
                }
            } else if number <= finalized {
                drop_side.push(*hash);
            }
        }
        for hash in drop_side {
            self.blocks.remove(&hash);
        }
    }

    /// `engine_forkchoiceUpdated`.
    pub(crate) fn fork_choice_updated(
        &mut self,
        state: ForkchoiceState,
        attributes: Option<PayloadAttributes>,
    ) -> Result<ForkchoiceUpdated, EngineError> {
        let head = state.head_block_hash;
        if let Some(latest) = self.invalid.get(&head) {
            return Ok(ForkchoiceUpdated::new(invalid("head is invalid", Some(*latest))));
        }
        if !self.blocks.contains_key(&head) {
            return Ok(ForkchoiceUpdated::new(status(PayloadStatusEnum::Syncing, None)));
        }
        self.apply_forkchoice(&state)?;
        let valid = status(PayloadStatusEnum::Valid, Some(head));
        let Some(attributes) = attributes else { return Ok(ForkchoiceUpdated::new(valid)) };
        let id = self.start_payload(head, attributes)?;
        Ok(ForkchoiceUpdated::new(valid).with_payload_id(id))
    }

    fn start_payload(&mut self, head: B256, attributes: PayloadAttributes) -> Result<PayloadId, EngineError> {
        let parent = self.blocks.get(&head).ok_or(EngineError::InvalidForkchoiceState)?;
        let ts = attributes.timestamp;
        let spec = self.executor.spec();
        if ts <= parent.block.block.header.timestamp
            || attributes.withdrawals.is_some() != spec.is_active_at(Fork::Shanghai, ts)
            || attributes.parent_beacon_block_root.is_some() != spec.is_active_at(Fork::Cancun, ts)
        {
            return Err(EngineError::InvalidPayloadAttributes);
        }
        let id = payload_id(head, &attributes);
        if self.payloads.contains_key(&id) {
            return Ok(id);
        }
        let state = parent.state.as_ref().ok_or(EngineError::InvalidForkchoiceState)?;
        let base_fee = Executor::next_base_fee(&parent.block.block.header);
        let best = self.pool.best_transactions(base_fee, state);
        let build = BuildAttributes {
            timestamp: ts,
            prev_randao: attributes.prev_randao,
            fee_recipient: attributes.suggested_fee_recipient,
            withdrawals: attributes.withdrawals,
            parent_beacon_block_root: attributes.parent_beacon_block_root,
            extra_data: Default::default(),
            target_gas_limit: attributes.target_gas_limit,
        };
        let built = self
            .executor
            .build(&parent.block.block.header, head, state, self.ancestors(head), &build, best)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        tracing::debug!(
            target: "el::builder",
            %id, hash = %built.block.hash, txs = built.block.block.body.transactions.len(), "built payload"
        );
        self.built.insert(built.block.hash, (Arc::clone(&built.block), built.state));
        let payload = BuiltPayload {
            block: built.block,
            fees: built.fees,
            requests: built.requests,
            sidecars: built.sidecars,
        };
        self.payloads.insert(id, payload);
        self.payload_order.push_back(id);
        while self.payload_order.len() > MAX_PAYLOADS {
            if let Some(old) = self.payload_order.pop_front()
                && let Some(payload) = self.payloads.remove(&old)
            {
                self.built.remove(&payload.block.hash);
            }
        }
        Ok(id)
    }

    /// `engine_getPayload`.
    pub(crate) fn get_payload(&self, id: PayloadId) -> Result<BuiltPayload, EngineError> {
        self.payloads.get(&id).cloned().ok_or(EngineError::UnknownPayload)
    }

    /// `engine_getBlobsV1`: blobs of pooled (and recently included) blob transactions.
    pub(crate) fn blobs_v1(&self, versioned_hashes: &[B256]) -> Vec<Option<BlobAndProofV1>> {
        self.pool.blobs_v1(versioned_hashes)
    }

    /// Gives the pool the blob limits of the fork at the head (none before Cancun).
    pub(crate) fn update_pool_fork(&mut self) {
        let params = self.head_header().and_then(|h| self.executor.blob_params_at(h.timestamp));
        self.pool.set_blob_params(params);
    }

    fn body(&self, hash: &B256) -> Option<ExecutionPayloadBodyV1> {
        let block = &self.blocks.get(hash)?.block.block;
        Some(ExecutionPayloadBodyV1 {
            transactions: block.body.transactions.iter().map(|tx| tx.encoded_2718().into()).collect(),
            withdrawals: block.body.withdrawals.clone().map(Withdrawals::into_inner),
        })
    }

    /// `engine_getPayloadBodiesByHashV1`.
    pub(crate) fn bodies_by_hash(
        &self,
        hashes: Vec<B256>,
    ) -> Result<Vec<Option<ExecutionPayloadBodyV1>>, EngineError> {
        if hashes.len() > 1024 {
            return Err(EngineError::TooLargeRequest);
        }
        Ok(hashes.iter().map(|h| self.body(h)).collect())
    }

    /// `engine_getPayloadBodiesByRangeV1`.
    pub(crate) fn bodies_by_range(
        &self,
        start: u64,
        count: u64,
    ) -> Result<Vec<Option<ExecutionPayloadBodyV1>>, EngineError> {
        if start == 0 || count == 0 {
            return Err(EngineError::InvalidParams(format!(
                "start {start} and count {count} must be positive"
            )));
        }
        if count > 1024 {
            return Err(EngineError::TooLargeRequest);
        }
        let head = self.canonical.len() as u64;
        Ok((start..start.saturating_add(count).min(head))
            .map(|n| usize::try_from(n).ok().and_then(|n| self.canonical.get(n)).and_then(|h| self.body(h)))
            .collect())
    }
}
