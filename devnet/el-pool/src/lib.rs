//! The transaction pool of the embedded execution engine.
//!
//! It validates signed transactions the way geth's pool does (signature, chain id, size, intrinsic gas,
//! block gas limit, fee caps, nonce, balance), keeps them per sender ordered by nonce, lets a transaction
//! replace one with the same sender and nonce only when it pays [`PoolConfig::price_bump_percent`] more,
//! and hands the block builder the executable transactions highest tip first. Errors are
//! [`alys_el_api::PoolError`], whose messages are geth's.
//!
//! Blob transactions (EIP-4844) arrive in their network encoding with a sidecar; the pool checks the
//! sidecar's KZG proofs against the versioned hashes, counts blob fees in the sender's cost, keeps the
//! sidecars for the block builder and `engine_getBlobsV1`, and holds them a while after inclusion so a
//! reorg can re-pool the transactions. It accepts them only while blob parameters are set
//! ([`Pool::set_blob_params`], from Cancun on).
//!
//! The pool owns no state: account nonces and balances come from the caller through [`AccountState`],
//! read at the canonical head.

mod best;
mod blob;
mod content;
mod intrinsic;

pub use best::BestTransactions;
pub use content::PoolContent;
pub use intrinsic::intrinsic_gas;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use alloy_consensus::{Transaction, TxEnvelope, transaction::SignerRecoverable};
use alloy_eips::{
    eip2718::{Decodable2718, EIP4844_TX_TYPE_ID, Encodable2718},
    eip4844::{BlobAndProofV1, BlobTransactionSidecar},
    eip7840::BlobParams,
};
use alloy_primitives::{Address, B256, Bytes, U256};
use alys_el_api::PoolError;

use crate::blob::BlobStore;

/// Account facts the pool validates against: the canonical head's nonce and balance of a sender.
pub trait AccountState {
    /// The account's nonce (the next nonce it may use).
    fn nonce(&self, address: Address) -> u64;
    /// The account's balance in wei.
    fn balance(&self, address: Address) -> U256;
}

/// Limits and prices of the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// The chain id every transaction must be signed for (EIP-155; unprotected legacy txs are refused).
    pub chain_id: u64,
    /// The block gas limit: no transaction may ask for more.
    pub block_gas_limit: u64,
    /// The smallest priority fee (tip) per gas the pool accepts.
    pub min_priority_fee: u128,
    /// How many transactions one sender may have pooled, and how far ahead of its nonce they may be.
    pub max_account_slots: usize,
    /// How many transactions the pool holds in all.
    pub max_size: usize,
    /// How much more (in percent) a replacement must pay in both fee cap and tip.
    pub price_bump_percent: u128,
    /// How much more (in percent) a blob transaction's replacement must pay in fee cap, tip and blob fee
    /// cap (geth's and reth's 100 %: blobs are expensive to propagate).
    pub blob_price_bump_percent: u128,
    /// The largest encoded transaction accepted, in bytes (for blob transactions, without the sidecar).
    pub max_tx_bytes: usize,
    /// Whether the EIP-7623 calldata floor (Prague) counts towards the minimum gas limit.
    pub calldata_floor: bool,
}

impl PoolConfig {
    /// geth's defaults for a chain: 16 slots per account, 4096 transactions, 10 % bump, 128 KiB per tx.
    pub const fn new(chain_id: u64, block_gas_limit: u64) -> Self {
        Self {
            chain_id,
            block_gas_limit,
            min_priority_fee: 0,
            max_account_slots: 64,
            max_size: 4096,
            price_bump_percent: 10,
            blob_price_bump_percent: 100,
            max_tx_bytes: 128 * 1024,
            calldata_floor: true,
        }
    }
}

/// A validated transaction in the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PooledTx {
    /// The transaction hash.
    pub hash: B256,
    /// The recovered sender.
    pub sender: Address,
    /// The signed transaction, as a block carries it (a blob transaction without its sidecar).
    pub tx: TxEnvelope,
    /// Its canonical EIP-2718 encoding (a blob transaction's without the sidecar).
    pub encoded: Bytes,
    /// Arrival order, used to break ties between equal tips.
    pub received: u64,
    /// A blob transaction's blobs, commitments and proofs (`None` for other types; for a transaction
    /// handed back by a reorg, filled in from the pool's store).
    pub sidecar: Option<Arc<BlobTransactionSidecar>>,
}

impl PooledTx {
    /// The transaction's nonce.
    pub fn nonce(&self) -> u64 {
        self.tx.nonce()
    }

    /// The tip per gas the fee recipient receives at `base_fee`, or `None` when the fee cap is below it.
    pub fn effective_tip(&self, base_fee: u64) -> Option<u128> {
        self.tx.effective_tip_per_gas(base_fee)
    }

    /// The most this transaction can cost its sender: `gas_limit * max_fee + value`, plus
    /// `blob_gas * max_fee_per_blob_gas` for a blob transaction.
    pub fn max_cost(&self) -> U256 {
        let blob_fee = U256::from(self.tx.blob_gas_used().unwrap_or_default())
            * U256::from(self.tx.max_fee_per_blob_gas().unwrap_or_default());
        U256::from(self.tx.gas_limit()) * U256::from(self.tx.max_fee_per_gas()) + self.tx.value() + blob_fee
    }
}

/// A sender's transactions from `nonce` on, up to the first gap.
fn executable_run(txs: &BTreeMap<u64, Arc<PooledTx>>, nonce: u64) -> impl Iterator<Item = &Arc<PooledTx>> {
    txs.range(nonce..).zip(nonce..).take_while(|((have, _), want)| *have == want).map(|((_, tx), _)| tx)
}

/// The transaction pool. Owned by the engine task; not shared.
#[derive(Debug)]
pub struct Pool {
    config: PoolConfig,
    by_hash: HashMap<B256, Arc<PooledTx>>,
    by_sender: HashMap<Address, BTreeMap<u64, Arc<PooledTx>>>,
    next_seq: u64,
    /// The blob limits of the fork at the head; `None` (before Cancun) refuses blob transactions.
    blob_params: Option<BlobParams>,
    blobs: BlobStore,
}

impl Pool {
    /// An empty pool.
    pub fn new(config: PoolConfig) -> Self {
        Self {
            config,
            by_hash: HashMap::new(),
            by_sender: HashMap::new(),
            next_seq: 0,
            blob_params: None,
            blobs: BlobStore::default(),
        }
    }

    /// Sets the blob limits of the fork at the canonical head (`None` before Cancun: blob transactions
    /// are refused as an unsupported type).
    pub const fn set_blob_params(&mut self, params: Option<BlobParams>) {
        self.blob_params = params;
    }

    /// The blob limits blob transactions are checked against.
    pub const fn blob_params(&self) -> Option<BlobParams> {
        self.blob_params
    }

    /// The pool's configuration.
    pub const fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Decodes, validates and pools a signed EIP-2718 transaction (a blob transaction in its network
    /// encoding, with the sidecar); returns its hash.
    ///
    /// `base_fee` is the next block's base fee; a fee cap below it is accepted (the transaction waits
    /// until the base fee falls), as geth does.
    pub fn add_raw(
        &mut self,
        raw: &[u8],
        state: &impl AccountState,
        base_fee: u64,
    ) -> Result<B256, PoolError> {
        // A blob transaction's sidecar adds up to a blob and its commitment and proof per allowed blob.
        let sidecar_room = match (raw.first(), self.blob_params) {
            (Some(&EIP4844_TX_TYPE_ID), None) => return Err(PoolError::TxTypeNotSupported),
            (Some(&EIP4844_TX_TYPE_ID), Some(params)) => usize::try_from(params.max_blobs_per_tx)
                .unwrap_or(usize::MAX)
                .saturating_mul(blob::SIDECAR_BYTES_PER_BLOB),
            _ => 0,
        };
        if raw.len() > self.config.max_tx_bytes.saturating_add(sidecar_room) {
            return Err(PoolError::Oversized);
        }
        let tx = TxEnvelope::decode_2718_exact(raw).map_err(|e| PoolError::Decode(e.to_string()))?;
        let hash = self.add_transaction(tx, Bytes::copy_from_slice(raw), state)?;
        let executable = self.get(&hash).and_then(|tx| tx.effective_tip(base_fee)).is_some();
        tracing::trace!(target: "el::pool", %hash, base_fee, executable, "received raw transaction");
        Ok(hash)
    }

    /// Validates and pools a decoded transaction; a blob transaction must carry its sidecar (network
    /// encoding), which the pool keeps apart from the transaction.
    pub fn add_transaction(
        &mut self,
        tx: TxEnvelope,
        encoded: Bytes,
        state: &impl AccountState,
    ) -> Result<B256, PoolError> {
        let hash = *tx.tx_hash();
        if self.by_hash.contains_key(&hash) {
            return Err(PoolError::AlreadyKnown);
        }
        let blob_params = match (tx.is_eip4844(), self.blob_params) {
            (true, None) => return Err(PoolError::TxTypeNotSupported),
            (true, params) => params,
            (false, _) => None,
        };
        let (tx, sidecar) = blob::split_sidecar(tx)?;
        let encoded = if sidecar.is_some() { tx.encoded_2718().into() } else { encoded };
        if encoded.len() > self.config.max_tx_bytes {
            return Err(PoolError::Oversized);
        }
        if tx.chain_id() != Some(self.config.chain_id) {
            return Err(PoolError::WrongChainId);
        }
        if tx.gas_limit() > self.config.block_gas_limit {
            return Err(PoolError::GasLimitExceeded);
        }
        if tx.gas_limit() < intrinsic_gas(&tx, self.config.calldata_floor) {
            return Err(PoolError::IntrinsicGasTooLow);
        }
        if tx.max_priority_fee_per_gas().is_some_and(|tip| tip > tx.max_fee_per_gas()) {
            return Err(PoolError::TipAboveFeeCap);
        }
        if tx.priority_fee_or_price() < self.config.min_priority_fee {
            return Err(PoolError::Underpriced);
        }
        let sender = tx.recover_signer().map_err(|_| PoolError::InvalidSignature)?;

        let account_nonce = state.nonce(sender);
        let nonce = tx.nonce();
        if nonce < account_nonce {
            return Err(PoolError::NonceTooLow { expected: account_nonce, got: nonce });
        }
        let slots = u64::try_from(self.config.max_account_slots).unwrap_or(u64::MAX);
        if nonce - account_nonce >= slots {
            return Err(PoolError::NonceTooHigh { expected: account_nonce, got: nonce });
        }
        let pooled = PooledTx { hash, sender, tx, encoded, received: self.next_seq, sidecar };
        let balance = state.balance(sender);
        if pooled.max_cost() > balance {
            return Err(PoolError::InsufficientFunds { balance, cost: pooled.max_cost() });
        }
        // Like geth's separate blob pool: a sender's pooled transactions are all blob ones or none are.
        let is_blob = pooled.sidecar.is_some();
        let other_kind =
            |txs: &BTreeMap<u64, Arc<PooledTx>>| txs.values().any(|t| t.sidecar.is_some() != is_blob);
        if self.by_sender.get(&sender).is_some_and(other_kind) {
            return Err(PoolError::AddressReserved);
        }

        let replaced = self.by_sender.get(&sender).and_then(|txs| txs.get(&nonce)).cloned();
        if let Some(old) = &replaced {
            if !self.pays_bump(&old.tx, &pooled.tx) {
                return Err(PoolError::ReplacementUnderpriced);
            }
        } else if self.by_hash.len() >= self.config.max_size {
            self.evict_for(&pooled)?;
        }
        // The proofs last: verifying them is the most expensive check.
        if let (Some(sidecar), Some(params)) = (&pooled.sidecar, &blob_params) {
            blob::validate_sidecar(&pooled.tx, sidecar, params)?;
        }
        if let Some(old) = replaced {
            self.by_hash.remove(&old.hash);
            self.blobs.remove(&old.hash);
            tracing::debug!(target: "el::pool", old = %old.hash, new = %hash, "replaced transaction");
        }

        let pooled = Arc::new(pooled);
        self.next_seq += 1;
        if let Some(sidecar) = &pooled.sidecar {
            self.blobs.insert(hash, Arc::clone(sidecar));
        }
        self.by_hash.insert(hash, Arc::clone(&pooled));
        self.by_sender.entry(sender).or_default().insert(nonce, pooled);
        tracing::debug!(target: "el::pool", %hash, %sender, nonce, "pooled transaction");
        Ok(hash)
    }

    /// Whether `new` pays at least the configured bump over `old` in fee cap and tip, and for blob
    /// transactions the blob bump in blob fee cap as well.
    fn pays_bump(&self, old: &TxEnvelope, new: &TxEnvelope) -> bool {
        let percent = if old.is_eip4844() {
            self.config.blob_price_bump_percent
        } else {
            self.config.price_bump_percent
        };
        let bump = |price: u128| price.saturating_mul(100u128.saturating_add(percent)) / 100;
        let old_tip = old.max_priority_fee_per_gas().unwrap_or_else(|| old.max_fee_per_gas());
        let new_tip = new.max_priority_fee_per_gas().unwrap_or_else(|| new.max_fee_per_gas());
        let blob_fee = |tx: &TxEnvelope| tx.max_fee_per_blob_gas().unwrap_or_default();
        new.max_fee_per_gas() >= bump(old.max_fee_per_gas())
            && new_tip >= bump(old_tip)
            && blob_fee(new) >= bump(blob_fee(old))
    }

    /// Makes room for `incoming` by dropping the cheapest last-nonce transaction of another sender, if
    /// `incoming` pays a higher tip; otherwise the pool is full for it.
    fn evict_for(&mut self, incoming: &PooledTx) -> Result<(), PoolError> {
        let cheapest = self
            .by_sender
            .iter()
            .filter(|(sender, _)| **sender != incoming.sender)
            .filter_map(|(_, txs)| txs.values().next_back())
            .min_by_key(|tx| (tx.tx.priority_fee_or_price(), std::cmp::Reverse(tx.received)))
            .cloned();
        match cheapest {
            Some(victim) if victim.tx.priority_fee_or_price() < incoming.tx.priority_fee_or_price() => {
                self.remove(&victim.hash);
                Ok(())
            }
            _ => Err(PoolError::PoolFull),
        }
    }

    /// Removes a transaction; returns it if it was pooled.
    pub fn remove(&mut self, hash: &B256) -> Option<Arc<PooledTx>> {
        let tx = self.unlink(hash)?;
        self.blobs.remove(hash);
        Some(tx)
    }

    /// Takes a transaction out of the indexes, leaving its sidecar (if any) in the blob store.
    fn unlink(&mut self, hash: &B256) -> Option<Arc<PooledTx>> {
        let tx = self.by_hash.remove(hash)?;
        if let Some(txs) = self.by_sender.get_mut(&tx.sender) {
            txs.remove(&tx.nonce());
            if txs.is_empty() {
                self.by_sender.remove(&tx.sender);
            }
        }
        Some(tx)
    }

    /// The blobs and proofs of pooled (and recently included) blob transactions by versioned hash, in
    /// order, `None` for blobs the pool does not hold (`engine_getBlobsV1`).
    pub fn blobs_v1(&self, versioned_hashes: &[B256]) -> Vec<Option<BlobAndProofV1>> {
        versioned_hashes.iter().map(|hash| self.blobs.blob_and_proof(hash)).collect()
    }

    /// A pooled transaction by hash.
    pub fn get(&self, hash: &B256) -> Option<Arc<PooledTx>> {
        self.by_hash.get(hash).cloned()
    }

    /// The sender's next nonce counting its pooled transactions that follow the account nonce without a
    /// gap (what `eth_getTransactionCount(…, "pending")` answers).
    pub fn pending_nonce(&self, sender: Address, state: &impl AccountState) -> u64 {
        let nonce = state.nonce(sender);
        let run = self.by_sender.get(&sender).map_or(0, |txs| executable_run(txs, nonce).count());
        nonce + run as u64
    }

    /// The executable transactions at `base_fee`, for the block builder: per sender from its account
    /// nonce without gaps, highest effective tip first across senders.
    pub fn best_transactions(&self, base_fee: u64, state: &impl AccountState) -> BestTransactions {
        let queues = self
            .by_sender
            .iter()
            .map(|(sender, txs)| executable_run(txs, state.nonce(*sender)).map(Arc::clone).collect());
        BestTransactions::new(queues, base_fee)
    }

    /// Brings the pool up to a new canonical head: drops transactions whose nonce the chain has used
    /// (keeping blob sidecars a while, see the crate docs), and re-adds transactions of reverted blocks
    /// that are still valid by nonce. A reverted blob transaction comes back only with its sidecar, from
    /// `reinject` or the pool's store.
    pub fn on_canonical_change(&mut self, reinject: Vec<Arc<PooledTx>>, state: &impl AccountState) {
        let stale: Vec<B256> = self
            .by_sender
            .iter()
            .flat_map(|(sender, txs)| {
                let nonce = state.nonce(*sender);
                txs.range(..nonce).map(|(_, tx)| tx.hash)
            })
            .collect();
        for hash in &stale {
            self.unlink(hash);
            self.blobs.retire(*hash);
        }
        let mut reinjected = 0usize;
        for mut tx in reinject {
            let taken = self.by_sender.get(&tx.sender).is_some_and(|txs| txs.contains_key(&tx.nonce()));
            if tx.nonce() < state.nonce(tx.sender) || taken || self.by_hash.contains_key(&tx.hash) {
                continue;
            }
            if tx.tx.is_eip4844() {
                let Some(sidecar) = tx.sidecar.clone().or_else(|| self.blobs.get(&tx.hash)) else {
                    tracing::debug!(target: "el::pool", hash = %tx.hash, "sidecar gone, reverted blob tx dropped");
                    continue;
                };
                self.blobs.insert(tx.hash, Arc::clone(&sidecar));
                Arc::make_mut(&mut tx).sidecar = Some(sidecar);
            }
            self.by_hash.insert(tx.hash, Arc::clone(&tx));
            self.by_sender.entry(tx.sender).or_default().insert(tx.nonce(), tx);
            reinjected += 1;
        }
        tracing::debug!(target: "el::pool", dropped = stale.len(), reinjected, size = self.len(), "canonical change");
    }

    /// How many transactions are pooled.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}
