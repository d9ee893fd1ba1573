//! The node: chain, mempool, wallet and data directory, and the operations that touch several of them
//! (mining, submitting a block, invalidating, the wallet's view of coins).
//!
//! After the active chain moves, the mempool is brought in line as Core's `MaybeUpdateMempoolForReorg`
//! does: transactions of disconnected blocks go back to the pool (if still valid), then the pool's own
//! transactions are re-checked, so those confirmed or conflicting with the new chain drop out.
//!
//! With `-persistmempool` (on by default, [`NodeOptions`]) the mempool survives a clean restart as in
//! Core: [`Node::save_mempool`] writes `mempool.dat` (at shutdown and on `savemempool`), and opening
//! the node accepts the saved transactions again against the chain as it is then, dropping those that
//! no longer validate. A crash loses what was not saved.

use std::{
    path::Path,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use bitcoin::{
    Amount, Block, BlockHash, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxMerkleNode, TxOut, Txid,
    Witness,
    absolute::LockTime,
    block::{Header, Version},
    hashes::Hash,
    script::PushBytesBuf,
    transaction,
};

use crate::{
    chain::{self, Chain, Coin, Reorg},
    error::{Reject, StoreError},
    mempool::{Accepted, LoadStats, Mempool},
    params::{self, MAX_BLOCK_WEIGHT},
    store::Store,
    wallet::{Wallet, WalletCoin},
};

/// Why a node operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Consensus or policy refused it.
    #[error(transparent)]
    Reject(#[from] Reject),
    /// The data directory failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How the node keeps its mempool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeOptions {
    /// Load `mempool.dat` at start (`-persistmempool`, on by default). Saving is the caller's: at
    /// shutdown, and on `savemempool` whatever this says, as in Core.
    pub persist_mempool: bool,
    /// Replace transactions that do not signal BIP125 (`-mempoolfullrbf`, off by default in Core 25).
    pub full_rbf: bool,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self { persist_mempool: true, full_rbf: false }
    }
}

impl NodeOptions {
    /// Sets `-persistmempool`.
    pub const fn with_persist_mempool(mut self, persist: bool) -> Self {
        self.persist_mempool = persist;
        self
    }

    /// Sets `-mempoolfullrbf`.
    pub const fn with_full_rbf(mut self, full_rbf: bool) -> Self {
        self.full_rbf = full_rbf;
        self
    }
}

/// The node's state.
#[derive(Debug)]
pub struct Node {
    chain: Chain,
    mempool: Mempool,
    wallet: Wallet,
    store: Store,
    invalidated: Vec<BlockHash>,
    extra_nonce: u32,
}

/// The current UNIX time in seconds.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

impl Node {
    /// Opens the data directory with [`NodeOptions::default`].
    pub fn open(dir: &Path) -> Result<Self, NodeError> {
        Self::open_with(dir, NodeOptions::default())
    }

    /// Opens the data directory, replays its blocks and, with `persist_mempool`, loads the saved
    /// mempool.
    pub fn open_with(dir: &Path, options: NodeOptions) -> Result<Self, NodeError> {
        let (store, loaded) = Store::open(dir)?;
        let wallet = Wallet::open(dir)?;
        let mut chain = Chain::new();
        let count = loaded.blocks.len();
        for block in loaded.blocks {
            chain.add_block(block, u64::MAX / 2).map_err(StoreError::Replay)?;
        }
        let mut seed = [0u8; 2];
        getrandom::fill(&mut seed).map_err(StoreError::from)?;
        let extra_nonce = u32::from(u16::from_le_bytes(seed));
        let mut node = Self {
            chain,
            mempool: Mempool::default().with_full_rbf(options.full_rbf),
            wallet,
            store,
            invalidated: loaded.invalidated,
            extra_nonce,
        };
        for hash in node.invalidated.clone() {
            node.chain.invalidate(hash);
        }
        node.chain.activate();
        tracing::info!(target: "devnet::bitcoin", blocks = count, height = node.chain.height(), tip = %node.chain.tip_hash(), "data directory loaded");
        if options.persist_mempool {
            node.load_mempool();
        }
        Ok(node)
    }

    /// Accepts `mempool.dat`'s transactions again. A file that cannot be read is logged and skipped,
    /// as Core continues without it.
    fn load_mempool(&mut self) -> LoadStats {
        let saved = match self.store.load_mempool() {
            Ok(saved) => saved,
            Err(err) => {
                tracing::warn!(target: "devnet::bitcoin", %err, "saved mempool not loaded");
                return LoadStats::default();
            }
        };
        let stats = self.mempool.load(&mut self.chain, saved);
        tracing::info!(target: "devnet::bitcoin", succeeded = stats.accepted, failed = stats.failed, already = stats.already, "imported mempool transactions from disk");
        stats
    }

    /// Writes the mempool to `mempool.dat` (`savemempool`, and at a clean shutdown); returns the file.
    pub fn save_mempool(&self) -> Result<std::path::PathBuf, NodeError> {
        let saved = self.mempool.saved();
        let path = self.store.save_mempool(&saved)?;
        tracing::info!(target: "devnet::bitcoin", transactions = saved.len(), path = %path.display(), "mempool saved");
        Ok(path)
    }

    /// The chain.
    pub const fn chain(&self) -> &Chain {
        &self.chain
    }

    /// The mempool.
    pub const fn mempool(&self) -> &Mempool {
        &self.mempool
    }

    /// The wallet.
    pub const fn wallet(&self) -> &Wallet {
        &self.wallet
    }

    /// The wallet, to hand out addresses.
    pub const fn wallet_mut(&mut self) -> &mut Wallet {
        &mut self.wallet
    }

    /// The data directory.
    pub const fn store(&self) -> &Store {
        &self.store
    }

    /// An unspent output: in the chain and not spent by the mempool, or (with `include_mempool`)
    /// created by a mempool transaction.
    pub fn coin(&self, outpoint: &OutPoint, include_mempool: bool) -> Option<Coin> {
        if include_mempool && self.mempool.spender(outpoint).is_some() {
            return None;
        }
        self.chain.coin(outpoint).cloned().or_else(|| {
            include_mempool.then(|| self.mempool.coin(outpoint, self.chain.height() + 1)).flatten()
        })
    }

    /// The transaction `txid` from the mempool or the active chain, with the block that holds it.
    pub fn transaction(&self, txid: &Txid) -> Option<(Arc<Transaction>, Option<BlockHash>)> {
        if let Some(entry) = self.mempool.get(txid) {
            return Some((Arc::clone(&entry.tx), None));
        }
        let hash = self.chain.block_of(txid)?;
        let block = &self.chain.entry(&hash)?.block;
        let tx = block.txdata.iter().find(|tx| tx.compute_txid() == *txid)?;
        Some((Arc::new(tx.clone()), Some(hash)))
    }

    /// The output `outpoint` names, from any transaction this node knows (spent or not).
    pub fn prevout(&self, outpoint: &OutPoint) -> Option<TxOut> {
        if let Some(coin) = self.coin(outpoint, true) {
            return Some(coin.output);
        }
        let (tx, _) = self.transaction(&outpoint.txid)?;
        tx.output.get(usize::try_from(outpoint.vout).ok()?).cloned()
    }

    /// Checks `tx` against the chain and mempool without adding it (`testmempoolaccept`).
    pub fn test_accept(&self, tx: &Transaction) -> Result<Accepted, Reject> {
        self.mempool.check(&self.chain, tx)
    }

    /// Adds `tx` to the mempool (`sendrawtransaction`); a transaction already there is accepted again.
    pub fn send_transaction(&mut self, tx: Transaction, max_fee_per_kvb: u64) -> Result<Txid, Reject> {
        let txid = tx.compute_txid();
        if self.mempool.get(&txid).is_some() {
            return Ok(txid);
        }
        let accepted = self.mempool.check(&self.chain, &tx)?;
        if max_fee_per_kvb > 0 && accepted.fee.to_sat() > accepted.vsize * max_fee_per_kvb / 1000 {
            return Err(Reject::MaxFeeExceeded);
        }
        let accepted = self.mempool.accept(&mut self.chain, tx, now())?;
        tracing::debug!(target: "devnet::bitcoin", txid = %accepted.txid, fee = accepted.fee.to_sat(), "transaction accepted");
        Ok(accepted.txid)
    }

    /// Mines `count` blocks paying `script`, each with as many mempool transactions as fit.
    pub fn generate(&mut self, count: u64, script: &ScriptBuf) -> Result<Vec<BlockHash>, NodeError> {
        let mut hashes = Vec::new();
        for _ in 0..count {
            let budget = MAX_BLOCK_WEIGHT.to_wu() - 4_000;
            let (mut weight, mut fees, mut txs) = (0u64, Amount::ZERO, Vec::new());
            let mut skipped = std::collections::HashSet::new();
            for entry in self.mempool.ordered() {
                let tx_weight = entry.tx.weight().to_wu();
                let txid = entry.tx.compute_txid();
                let orphaned =
                    entry.tx.input.iter().any(|input| skipped.contains(&input.previous_output.txid));
                if orphaned || weight + tx_weight > budget {
                    skipped.insert(txid);
                    continue;
                }
                weight += tx_weight;
                fees += entry.fee;
                txs.push((*entry.tx).clone());
            }
            hashes.push(self.mine(script, txs, fees)?);
        }
        Ok(hashes)
    }

    /// Mines one block paying `script` holding exactly `txs` (`generateblock`).
    pub fn mine_with(&mut self, script: &ScriptBuf, txs: Vec<Transaction>) -> Result<BlockHash, NodeError> {
        let mut fees = Amount::ZERO;
        for tx in &txs {
            let value_in: Option<Amount> = tx
                .input
                .iter()
                .map(|input| {
                    let outpoint = &input.previous_output;
                    let coin = self.chain.coin(outpoint).cloned();
                    coin.or_else(|| self.mempool.coin(outpoint, self.chain.height() + 1))
                        .map(|coin| coin.output.value)
                })
                .sum();
            let value_out: Amount = tx.output.iter().map(|output| output.value).sum();
            fees += value_in.ok_or(Reject::MissingInputs)?.checked_sub(value_out).unwrap_or_default();
        }
        self.mine(script, txs, fees)
    }

    fn mine(
        &mut self,
        script: &ScriptBuf,
        txs: Vec<Transaction>,
        fees: Amount,
    ) -> Result<BlockHash, NodeError> {
        let height = self.chain.height() + 1;
        let prev = self.chain.tip_hash();
        // Core's `IncrementExtraNonce`: height, then an extra nonce, so a block mined again on the same
        // parent (after `invalidateblock`) differs from the invalidated one.
        self.extra_nonce = self.extra_nonce.wrapping_add(1);
        let script_sig = bitcoin::script::Builder::from(chain::bip34_prefix(height).into_bytes())
            .push_int(i64::from(self.extra_nonce))
            .into_script()
            .into_bytes();
        let coinbase = Transaction {
            version: transaction::Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: ScriptBuf::from_bytes(script_sig),
                sequence: Sequence::MAX,
                witness: Witness::from_slice(&[[0u8; 32]]),
            }],
            output: vec![TxOut { value: params::subsidy(height) + fees, script_pubkey: script.clone() }],
        };
        let mut txdata = Vec::with_capacity(txs.len() + 1);
        txdata.push(coinbase);
        txdata.extend(txs);
        let time = (self.chain.median_time_past(&prev) + 1).max(u32::try_from(now()).unwrap_or(u32::MAX));
        let header = Header {
            version: Version::from_consensus(0x2000_0000),
            prev_blockhash: prev,
            merkle_root: TxMerkleNode::all_zeros(),
            time,
            bits: params::pow_bits(),
            nonce: 0,
        };
        let mut block = Block { header, txdata };
        if let Some(root) = block.witness_root() {
            let commitment = Block::compute_witness_commitment(&root, &[0u8; 32]);
            let mut data = PushBytesBuf::from([0xaa, 0x21, 0xa9, 0xed]);
            let _ = data.extend_from_slice(commitment.as_byte_array());
            if let Some(coinbase) = block.txdata.first_mut() {
                coinbase
                    .output
                    .push(TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::new_op_return(data) });
            }
        }
        block.header.merkle_root = block.compute_merkle_root().unwrap_or_else(TxMerkleNode::all_zeros);
        while block.header.validate_pow(block.header.target()).is_err() {
            block.header.nonce = block.header.nonce.wrapping_add(1);
        }
        self.submit_block(block)
    }

    /// Accepts a block: checks, stores, activates the best chain, updates the mempool (`submitblock`).
    pub fn submit_block(&mut self, block: Block) -> Result<BlockHash, NodeError> {
        let hash = block.block_hash();
        if self.chain.entry(&hash).is_some() {
            return Ok(hash);
        }
        let stored = block.clone();
        self.chain.add_block(block, now())?;
        self.store.append_block(&stored)?;
        let mut reorg = self.chain.activate();
        let failure = reorg.failed.iter().position(|(failed, _)| *failed == hash);
        let failure = failure.map(|index| reorg.failed.swap_remove(index).1);
        self.after_reorg(reorg);
        match failure {
            Some(reason) => Err(reason.into()),
            None => Ok(hash),
        }
    }

    /// `invalidateblock`: marks `hash` and its descendants invalid, durably.
    pub fn invalidate(&mut self, hash: BlockHash) -> Result<(), NodeError> {
        if !self.invalidated.contains(&hash) {
            self.invalidated.push(hash);
        }
        self.store.save_invalidated(&self.invalidated)?;
        let reorg = self.chain.invalidate(hash);
        self.after_reorg(reorg);
        Ok(())
    }

    /// `reconsiderblock`: clears the invalidity of `hash`, its ancestors and descendants, durably.
    pub fn reconsider(&mut self, hash: BlockHash) -> Result<(), NodeError> {
        let chain = &self.chain;
        self.invalidated.retain(|marked| !is_related(chain, marked, &hash));
        self.store.save_invalidated(&self.invalidated)?;
        let reorg = self.chain.reconsider(hash);
        self.after_reorg(reorg);
        Ok(())
    }

    fn after_reorg(&mut self, reorg: Reorg) {
        if reorg.connected.is_empty() && reorg.disconnected.is_empty() {
            return;
        }
        let pooled = self.mempool.take_all();
        let now = now();
        let returned = reorg
            .disconnected
            .iter()
            .rev()
            .flat_map(|block| block.txdata.iter().skip(1).map(|tx| (tx.clone(), now)));
        for (tx, time) in returned.chain(pooled.into_iter().map(|saved| (saved.tx, saved.time))) {
            if let Err(reason) = self.mempool.accept(&mut self.chain, tx, time) {
                tracing::trace!(target: "devnet::bitcoin", %reason, "transaction left the mempool after a chain change");
            }
        }
    }

    /// The wallet's spendable coins: mature, unspent by the mempool; unconfirmed ones too with
    /// `min_conf` 0.
    pub fn wallet_coins(&self, min_conf: u32) -> Vec<WalletCoin> {
        let height = self.chain.height();
        let mut coins: Vec<WalletCoin> = self
            .chain
            .utxos()
            .filter(|(outpoint, coin)| {
                self.wallet.is_mine(&coin.output.script_pubkey)
                    && self.mempool.spender(outpoint).is_none()
                    // The wallet's rule (`IsImmatureCoinBase`): 101 confirmations, one more than consensus.
                    && !(coin.is_coinbase && height + 1 - coin.height <= params::COINBASE_MATURITY)
            })
            .map(|(outpoint, coin)| WalletCoin {
                outpoint: *outpoint,
                output: coin.output.clone(),
                confirmations: height + 1 - coin.height,
            })
            .filter(|coin| coin.confirmations >= min_conf)
            .collect();
        if min_conf == 0 {
            for entry in self.mempool.ordered() {
                let txid = entry.tx.compute_txid();
                for (vout, output) in entry.tx.output.iter().enumerate() {
                    let outpoint = OutPoint { txid, vout: vout as u32 };
                    if self.wallet.is_mine(&output.script_pubkey) && self.mempool.spender(&outpoint).is_none()
                    {
                        coins.push(WalletCoin { outpoint, output: output.clone(), confirmations: 0 });
                    }
                }
            }
        }
        coins.sort_by_key(|coin| coin.outpoint);
        coins
    }
}

/// Whether `a` is `b`, an ancestor of `b` or a descendant of it.
fn is_related(chain: &Chain, a: &BlockHash, b: &BlockHash) -> bool {
    let descends = |from: &BlockHash, to: &BlockHash| {
        let mut cursor = Some(*from);
        while let Some(hash) = cursor {
            if hash == *to {
                return true;
            }
            cursor = chain.entry(&hash).map(|entry| entry.block.header.prev_blockhash);
        }
        false
    };
    descends(a, b) || descends(b, a)
}
