//! The block tree, the active chain and its UTXO set, with Bitcoin Core's regtest validation.
//!
//! Every block this node has accepted stays in [`Chain`]'s tree. The active chain is the valid branch
//! with the most work (the first seen wins a tie); [`Chain::activate`] moves to it by disconnecting
//! blocks back to the fork point (restoring the coins they spent from their undo data) and connecting
//! the new branch. A block that fails to connect is marked failed with all its descendants, and the
//! next best branch is tried, as `ActivateBestChain` does. `invalidateblock` and `reconsiderblock` set
//! and clear the same flag.
//!
//! Validation follows `CheckBlock`/`ContextualCheckBlock`/`ConnectBlock`: proof of work at the regtest
//! target, merkle root, BIP34 height, segwit witness commitment, weight, time above the median of the
//! last 11 blocks, lock times, coinbase maturity, value conservation, the subsidy, and every input
//! script through libbitcoinconsensus (`VERIFY_ALL`: P2SH, DER, NULLDUMMY, CLTV, CSV, witness).
//! libbitcoinconsensus 25 has no taproot interface, so spends of witness v1 outputs are refused rather
//! than waved through. BIP68 relative lock times are not enforced.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use bitcoin::{
    Amount, Block, BlockHash, OutPoint, Transaction, TxOut, Txid, Work, Wtxid, consensus::encode::serialize,
    script::Builder,
};

use crate::{
    error::Reject,
    params::{self, COINBASE_MATURITY, MAX_BLOCK_WEIGHT, MAX_FUTURE_BLOCK_TIME, POW_BITS},
};

/// An unspent output with what maturity and `gettxout` need to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coin {
    /// The output.
    pub output: TxOut,
    /// The height of the block that created it.
    pub height: u32,
    /// Whether a coinbase created it (then it matures after [`COINBASE_MATURITY`] blocks).
    pub is_coinbase: bool,
}

/// A block in the tree.
#[derive(Debug, Clone)]
pub struct BlockEntry {
    /// The block.
    pub block: Arc<Block>,
    /// Its height.
    pub height: u32,
    /// The work of the chain ending at it.
    pub chainwork: Work,
    /// Failed validation, or invalidated, itself or through an ancestor.
    pub failed: bool,
    /// Arrival order, the tie-break between branches of equal work.
    seq: u64,
    /// The coins its transactions spent, in order; present while it is in the active chain.
    undo: Option<Vec<Coin>>,
}

impl BlockEntry {
    /// The coins this block's inputs spent, in input order, when it is in the active chain.
    pub fn undo(&self) -> Option<&[Coin]> {
        self.undo.as_deref()
    }
}

/// What [`Chain::activate`] changed.
#[derive(Debug, Default)]
pub struct Reorg {
    /// Blocks taken off the active chain, tip first.
    pub disconnected: Vec<Arc<Block>>,
    /// Blocks added to the active chain, lowest first.
    pub connected: Vec<Arc<Block>>,
    /// Blocks that failed to connect, with the reason.
    pub failed: Vec<(BlockHash, Reject)>,
}

/// The block tree, the active chain and its UTXO set.
#[derive(Debug)]
pub struct Chain {
    entries: HashMap<BlockHash, BlockEntry>,
    children: HashMap<BlockHash, Vec<BlockHash>>,
    active: Vec<BlockHash>,
    utxos: HashMap<OutPoint, Coin>,
    tx_index: HashMap<Txid, BlockHash>,
    /// Transactions whose scripts already verified (the script cache), so mining does not verify twice.
    verified: HashSet<Wtxid>,
    next_seq: u64,
}

impl Default for Chain {
    fn default() -> Self {
        Self::new()
    }
}

impl Chain {
    /// A chain holding only the regtest genesis block (whose coinbase, as in Core, is unspendable).
    pub fn new() -> Self {
        let genesis = params::genesis();
        let hash = genesis.block_hash();
        let entry = BlockEntry {
            chainwork: genesis.header.work(),
            block: Arc::new(genesis),
            height: 0,
            failed: false,
            seq: 0,
            undo: Some(Vec::new()),
        };
        Self {
            entries: HashMap::from([(hash, entry)]),
            children: HashMap::new(),
            active: vec![hash],
            utxos: HashMap::new(),
            tx_index: HashMap::new(),
            verified: HashSet::new(),
            next_seq: 1,
        }
    }

    /// The active chain's tip.
    pub fn tip(&self) -> &BlockEntry {
        self.active.last().and_then(|hash| self.entries.get(hash)).unwrap_or_else(|| unreachable_tip())
    }

    /// The hash of the active chain's tip.
    pub fn tip_hash(&self) -> BlockHash {
        self.active.last().copied().unwrap_or_else(|| params::genesis().block_hash())
    }

    /// The active chain's height.
    pub fn height(&self) -> u32 {
        u32::try_from(self.active.len().saturating_sub(1)).unwrap_or(u32::MAX)
    }

    /// The hash of the active block at `height`.
    pub fn hash_at(&self, height: u32) -> Option<BlockHash> {
        self.active.get(usize::try_from(height).ok()?).copied()
    }

    /// A block of the tree.
    pub fn entry(&self, hash: &BlockHash) -> Option<&BlockEntry> {
        self.entries.get(hash)
    }

    /// Whether `hash` is in the active chain.
    pub fn is_active(&self, hash: &BlockHash) -> bool {
        self.entries.get(hash).is_some_and(|entry| self.hash_at(entry.height) == Some(*hash))
    }

    /// Confirmations of a block: its depth in the active chain, or -1 when it is not in it.
    pub fn confirmations(&self, hash: &BlockHash) -> i64 {
        match self.entries.get(hash) {
            Some(entry) if self.is_active(hash) => i64::from(self.height() - entry.height) + 1,
            _ => -1,
        }
    }

    /// The unspent output at `outpoint` in the active chain.
    pub fn coin(&self, outpoint: &OutPoint) -> Option<&Coin> {
        self.utxos.get(outpoint)
    }

    /// Every unspent output of the active chain.
    pub fn utxos(&self) -> impl Iterator<Item = (&OutPoint, &Coin)> {
        self.utxos.iter()
    }

    /// The active block that confirmed `txid`.
    pub fn block_of(&self, txid: &Txid) -> Option<BlockHash> {
        self.tx_index.get(txid).copied()
    }

    /// Blocks of the tree, for `getchaintips`-like scans.
    pub fn entries(&self) -> impl Iterator<Item = (&BlockHash, &BlockEntry)> {
        self.entries.iter()
    }

    /// The median time of the 11 blocks ending at `hash` (BIP113's median-time-past).
    pub fn median_time_past(&self, hash: &BlockHash) -> u32 {
        let mut times = Vec::with_capacity(11);
        let mut cursor = self.entries.get(hash);
        while let Some(entry) = cursor {
            times.push(entry.block.header.time);
            if times.len() == 11 {
                break;
            }
            cursor = self.entries.get(&entry.block.header.prev_blockhash);
        }
        times.sort_unstable();
        times.get(times.len() / 2).copied().unwrap_or_default()
    }

    /// Records that `wtxid`'s scripts verified against the current flags.
    pub fn mark_verified(&mut self, wtxid: Wtxid) {
        self.verified.insert(wtxid);
    }

    /// Checks `block` on its own and against its parent, and adds it to the tree without activating it.
    /// A block already in the tree is accepted again without change.
    pub fn add_block(&mut self, block: Block, now: u64) -> Result<BlockHash, Reject> {
        let hash = block.block_hash();
        if self.entries.contains_key(&hash) {
            return Ok(hash);
        }
        let parent =
            self.entries.get(&block.header.prev_blockhash).ok_or(Reject::Consensus("prev-blk-not-found"))?;
        if parent.failed {
            return Err(Reject::Consensus("bad-prevblk"));
        }
        let height = parent.height + 1;
        if block.header.bits.to_consensus() != POW_BITS {
            return Err(Reject::Consensus("bad-diffbits"));
        }
        block.header.validate_pow(block.header.target()).map_err(|_| Reject::Consensus("high-hash"))?;
        if block.header.time <= self.median_time_past(&block.header.prev_blockhash) {
            return Err(Reject::Consensus("time-too-old"));
        }
        if u64::from(block.header.time) > now + MAX_FUTURE_BLOCK_TIME {
            return Err(Reject::Consensus("time-too-new"));
        }
        check_block(&block, height)?;
        let entry = BlockEntry {
            chainwork: parent.chainwork + block.header.work(),
            failed: false,
            block: Arc::new(block),
            height,
            seq: self.next_seq,
            undo: None,
        };
        self.next_seq += 1;
        self.children.entry(entry.block.header.prev_blockhash).or_default().push(hash);
        self.entries.insert(hash, entry);
        Ok(hash)
    }

    /// Moves the active chain to the valid branch with the most work. Blocks that fail to connect are
    /// marked failed (with their descendants) and the next best branch is tried.
    pub fn activate(&mut self) -> Reorg {
        let mut reorg = Reorg::default();
        loop {
            let Some(best) = self.best_candidate() else { return reorg };
            if best == self.tip_hash() {
                return reorg;
            }
            let mut path = Vec::new();
            let mut cursor = best;
            while !self.is_active(&cursor) {
                path.push(cursor);
                match self.entries.get(&cursor) {
                    Some(entry) => cursor = entry.block.header.prev_blockhash,
                    None => return reorg,
                }
            }
            while self.tip_hash() != cursor {
                match self.disconnect_tip() {
                    Some(block) => reorg.disconnected.push(block),
                    None => return reorg,
                }
            }
            for hash in path.into_iter().rev() {
                match self.connect(&hash) {
                    Ok(block) => reorg.connected.push(block),
                    Err(reason) => {
                        tracing::warn!(target: "devnet::bitcoin", %hash, %reason, "block failed to connect");
                        self.set_failed(hash, true);
                        reorg.failed.push((hash, reason));
                        break;
                    }
                }
            }
        }
    }

    /// Marks `hash` and its descendants invalid (`invalidateblock`) and moves to the best valid branch.
    pub fn invalidate(&mut self, hash: BlockHash) -> Reorg {
        self.set_failed(hash, true);
        self.activate()
    }

    /// Clears the failure of `hash`, its descendants and ancestors (`reconsiderblock`) and moves to the
    /// best valid branch.
    pub fn reconsider(&mut self, hash: BlockHash) -> Reorg {
        self.set_failed(hash, false);
        let mut cursor = self.entries.get(&hash).map(|entry| entry.block.header.prev_blockhash);
        while let Some(entry) = cursor.and_then(|prev| self.entries.get_mut(&prev)) {
            entry.failed = false;
            cursor = Some(entry.block.header.prev_blockhash);
        }
        self.activate()
    }

    fn set_failed(&mut self, hash: BlockHash, failed: bool) {
        let mut queue = vec![hash];
        while let Some(next) = queue.pop() {
            if let Some(entry) = self.entries.get_mut(&next) {
                entry.failed = failed;
            }
            queue.extend(self.children.get(&next).into_iter().flatten().copied());
        }
    }

    fn best_candidate(&self) -> Option<BlockHash> {
        self.entries
            .iter()
            .filter(|(_, entry)| !entry.failed)
            .max_by(|(_, a), (_, b)| a.chainwork.cmp(&b.chainwork).then(b.seq.cmp(&a.seq)))
            .map(|(hash, _)| *hash)
    }

    /// Applies a block on top of the tip: contextual checks, inputs, scripts, subsidy. On failure nothing
    /// has changed.
    fn connect(&mut self, hash: &BlockHash) -> Result<Arc<Block>, Reject> {
        let (block, height) = match self.entries.get(hash) {
            Some(entry) => (Arc::clone(&entry.block), entry.height),
            None => return Err(Reject::Consensus("prev-blk-not-found")),
        };
        let mtp = self.median_time_past(&block.header.prev_blockhash);
        let mut undo = Vec::new();
        let mut created = Vec::new();
        let result = self.apply(&block, height, mtp, &mut undo, &mut created);
        if let Err(reason) = result {
            for outpoint in &created {
                self.utxos.remove(outpoint);
            }
            let spent =
                block.txdata.iter().skip(1).flat_map(|tx| tx.input.iter().map(|input| input.previous_output));
            for (outpoint, coin) in spent.zip(undo) {
                self.utxos.insert(outpoint, coin);
            }
            return Err(reason);
        }
        for tx in &block.txdata {
            self.tx_index.insert(tx.compute_txid(), *hash);
        }
        if let Some(entry) = self.entries.get_mut(hash) {
            entry.undo = Some(undo);
        }
        self.active.push(*hash);
        Ok(block)
    }

    fn apply(
        &mut self,
        block: &Block,
        height: u32,
        mtp: u32,
        undo: &mut Vec<Coin>,
        created: &mut Vec<OutPoint>,
    ) -> Result<(), Reject> {
        let mut fees = Amount::ZERO;
        for (position, tx) in block.txdata.iter().enumerate() {
            let txid = tx.compute_txid();
            if !is_final(tx, height, mtp) {
                return Err(Reject::Consensus("bad-txns-nonfinal"));
            }
            if position > 0 {
                let mut spent = Vec::with_capacity(tx.input.len());
                for input in &tx.input {
                    let coin = self.utxos.remove(&input.previous_output).ok_or(Reject::MissingInputs)?;
                    undo.push(coin.clone());
                    spent.push(coin);
                }
                fees = fees
                    .checked_add(check_inputs(tx, &spent, height)?)
                    .ok_or(Reject::Consensus("bad-txns-fee-outofrange"))?;
                let wtxid = tx.compute_wtxid();
                if !self.verified.remove(&wtxid) {
                    verify_scripts(tx, &spent)?;
                }
            }
            for (vout, output) in tx.output.iter().enumerate() {
                let outpoint = OutPoint { txid, vout: u32::try_from(vout).unwrap_or(u32::MAX) };
                if output.script_pubkey.is_op_return() {
                    continue;
                }
                if self.utxos.contains_key(&outpoint) {
                    return Err(Reject::Consensus("bad-txns-BIP30"));
                }
                self.utxos
                    .insert(outpoint, Coin { output: output.clone(), height, is_coinbase: position == 0 });
                created.push(outpoint);
            }
        }
        let paid = block
            .txdata
            .first()
            .map(|cb| cb.output.iter().map(|o| o.value).sum::<Amount>())
            .unwrap_or_default();
        if paid > params::subsidy(height) + fees {
            return Err(Reject::Consensus("bad-cb-amount"));
        }
        Ok(())
    }

    fn disconnect_tip(&mut self) -> Option<Arc<Block>> {
        if self.active.len() <= 1 {
            return None;
        }
        let hash = self.active.pop()?;
        let entry = self.entries.get_mut(&hash)?;
        let undo = entry.undo.take().unwrap_or_default();
        let block = Arc::clone(&entry.block);
        for tx in &block.txdata {
            let txid = tx.compute_txid();
            self.tx_index.remove(&txid);
            for vout in 0..tx.output.len() {
                self.utxos.remove(&OutPoint { txid, vout: u32::try_from(vout).unwrap_or(u32::MAX) });
            }
        }
        let spent =
            block.txdata.iter().skip(1).flat_map(|tx| tx.input.iter().map(|input| input.previous_output));
        for (outpoint, coin) in spent.zip(undo) {
            self.utxos.insert(outpoint, coin);
        }
        Some(block)
    }
}

#[cold]
fn unreachable_tip() -> &'static BlockEntry {
    // The active chain always holds genesis, and every active hash has an entry.
    static GENESIS: std::sync::OnceLock<BlockEntry> = std::sync::OnceLock::new();
    GENESIS.get_or_init(|| BlockEntry {
        block: Arc::new(params::genesis()),
        height: 0,
        chainwork: params::genesis().header.work(),
        failed: false,
        seq: 0,
        undo: None,
    })
}

/// The coinbase's scriptSig prefix BIP34 requires at `height` (Core's `CScript() << nHeight`).
pub fn bip34_prefix(height: u32) -> bitcoin::ScriptBuf {
    Builder::new().push_int(i64::from(height)).into_script()
}

/// Context-free block checks (`CheckBlock`) and the height-dependent ones of `ContextualCheckBlock`.
fn check_block(block: &Block, height: u32) -> Result<(), Reject> {
    let Some((coinbase, rest)) = block.txdata.split_first() else {
        return Err(Reject::Consensus("bad-blk-length"));
    };
    if !coinbase.is_coinbase() {
        return Err(Reject::Consensus("bad-cb-missing"));
    }
    if rest.iter().any(Transaction::is_coinbase) {
        return Err(Reject::Consensus("bad-cb-multiple"));
    }
    if !block.check_merkle_root() {
        return Err(Reject::Consensus("bad-txnmrklroot"));
    }
    // CVE-2012-2459: a duplicated last transaction gives the same merkle root.
    let mut txids = HashSet::with_capacity(block.txdata.len());
    if !block.txdata.iter().all(|tx| txids.insert(tx.compute_txid())) {
        return Err(Reject::Consensus("bad-txns-duplicate"));
    }
    if block.weight() > MAX_BLOCK_WEIGHT {
        return Err(Reject::Consensus("bad-blk-weight"));
    }
    let script_sig = coinbase.input.first().map(|input| input.script_sig.as_bytes()).unwrap_or_default();
    if !(2..=100).contains(&script_sig.len()) {
        return Err(Reject::Consensus("bad-cb-length"));
    }
    if !script_sig.starts_with(bip34_prefix(height).as_bytes()) {
        return Err(Reject::Consensus("bad-cb-height"));
    }
    if !block.check_witness_commitment() {
        return Err(Reject::Consensus("bad-witness-merkle-match"));
    }
    for tx in &block.txdata {
        check_transaction(tx)?;
    }
    Ok(())
}

/// Context-free transaction checks (`CheckTransaction`).
pub fn check_transaction(tx: &Transaction) -> Result<(), Reject> {
    if tx.input.is_empty() {
        return Err(Reject::Consensus("bad-txns-vin-empty"));
    }
    if tx.output.is_empty() {
        return Err(Reject::Consensus("bad-txns-vout-empty"));
    }
    if tx.base_size() * 4 > MAX_BLOCK_WEIGHT.to_wu() as usize {
        return Err(Reject::Consensus("bad-txns-oversize"));
    }
    let mut total = Amount::ZERO;
    for output in &tx.output {
        if output.value > Amount::MAX_MONEY {
            return Err(Reject::Consensus("bad-txns-vout-toolarge"));
        }
        total = total
            .checked_add(output.value)
            .filter(|t| *t <= Amount::MAX_MONEY)
            .ok_or(Reject::Consensus("bad-txns-txouttotal-toolarge"))?;
    }
    let mut seen = HashSet::with_capacity(tx.input.len());
    if !tx.input.iter().all(|input| seen.insert(input.previous_output)) {
        return Err(Reject::Consensus("bad-txns-inputs-duplicate"));
    }
    if !tx.is_coinbase() && tx.input.iter().any(|input| input.previous_output.is_null()) {
        return Err(Reject::Consensus("bad-txns-prevout-null"));
    }
    Ok(())
}

/// Whether `tx`'s lock time allows it in a block at `height` after median time `mtp` (`IsFinalTx`).
pub fn is_final(tx: &Transaction, height: u32, mtp: u32) -> bool {
    let lock = tx.lock_time.to_consensus_u32();
    if lock == 0 || tx.input.iter().all(|input| input.sequence == bitcoin::Sequence::MAX) {
        return true;
    }
    if lock < 500_000_000 { lock < height } else { lock < mtp }
}

/// Checks maturity and value conservation of `tx` spending `spent` at `height`; returns the fee
/// (`Consensus::CheckTxInputs`).
pub fn check_inputs(tx: &Transaction, spent: &[Coin], height: u32) -> Result<Amount, Reject> {
    let mut value_in = Amount::ZERO;
    for coin in spent {
        if coin.is_coinbase && height.saturating_sub(coin.height) < COINBASE_MATURITY {
            return Err(Reject::PrematureCoinbase);
        }
        if coin.output.script_pubkey.witness_version().is_some_and(|v| v.to_num() == 1) {
            return Err(Reject::TaprootUnsupported);
        }
        value_in = value_in
            .checked_add(coin.output.value)
            .ok_or(Reject::Consensus("bad-txns-inputvalues-outofrange"))?;
    }
    let value_out: Amount = tx.output.iter().map(|output| output.value).sum();
    value_in.checked_sub(value_out).ok_or(Reject::Consensus("bad-txns-in-belowout"))
}

/// Runs every input script of `tx` through libbitcoinconsensus against the outputs it spends.
pub fn verify_scripts(tx: &Transaction, spent: &[Coin]) -> Result<(), Reject> {
    let bytes = serialize(tx);
    for (index, coin) in spent.iter().enumerate() {
        bitcoin::consensus::validation::verify_script(
            &coin.output.script_pubkey,
            index,
            coin.output.value,
            &bytes,
        )
        .map_err(|err| Reject::Script { index, reason: err.to_string() })?;
    }
    Ok(())
}
