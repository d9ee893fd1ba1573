//! The mempool: transactions valid on top of the tip, waiting for a block.
//!
//! Acceptance is `AcceptToMemoryPool` without replacement: context-free checks, no conflict with a
//! transaction already in the pool (`txn-mempool-conflict`, RBF is not implemented), every input in the
//! UTXO set or created by a pool transaction (`bad-txns-inputs-missingorspent`), coinbase maturity,
//! lock time for the next block, the 1 sat/vB minimum relay fee, and libbitcoinconsensus on every input.
//! Transactions keep their arrival order, which is also a valid block order (a parent always arrives
//! before its children).

use std::{collections::HashMap, sync::Arc};

use bitcoin::{Amount, OutPoint, Transaction, Txid};

use crate::{
    chain::{self, Chain, Coin},
    error::Reject,
    params::MIN_RELAY_FEE_PER_KVB,
};

/// A transaction in the mempool.
#[derive(Debug, Clone)]
pub struct MempoolEntry {
    /// The transaction.
    pub tx: Arc<Transaction>,
    /// Its fee.
    pub fee: Amount,
    /// Its virtual size.
    pub vsize: u64,
    /// When it entered, in UNIX seconds.
    pub time: u64,
    /// The chain height when it entered.
    pub height: u32,
    seq: u64,
}

/// What acceptance found out about a valid transaction.
#[derive(Debug, Clone, Copy)]
pub struct Accepted {
    /// The transaction's id.
    pub txid: Txid,
    /// Its fee.
    pub fee: Amount,
    /// Its virtual size.
    pub vsize: u64,
}

/// The pool.
#[derive(Debug, Default)]
pub struct Mempool {
    entries: HashMap<Txid, MempoolEntry>,
    spends: HashMap<OutPoint, Txid>,
    next_seq: u64,
}

impl Mempool {
    /// The entry of `txid`.
    pub fn get(&self, txid: &Txid) -> Option<&MempoolEntry> {
        self.entries.get(txid)
    }

    /// The pool's transactions in arrival (and block) order.
    pub fn ordered(&self) -> Vec<&MempoolEntry> {
        let mut entries: Vec<_> = self.entries.values().collect();
        entries.sort_unstable_by_key(|entry| entry.seq);
        entries
    }

    /// The number of transactions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The pool transaction spending `outpoint`.
    pub fn spender(&self, outpoint: &OutPoint) -> Option<Txid> {
        self.spends.get(outpoint).copied()
    }

    /// An output created by a pool transaction, as a coin at the next block's height.
    pub fn coin(&self, outpoint: &OutPoint, next_height: u32) -> Option<Coin> {
        let entry = self.entries.get(&outpoint.txid)?;
        let output = entry.tx.output.get(usize::try_from(outpoint.vout).ok()?)?;
        Some(Coin { output: output.clone(), height: next_height, is_coinbase: false })
    }

    /// Checks `tx` for acceptance on top of `chain` without adding it.
    pub fn check(&self, chain: &Chain, tx: &Transaction) -> Result<Accepted, Reject> {
        let txid = tx.compute_txid();
        if self.entries.contains_key(&txid) {
            return Err(Reject::AlreadyInMempool);
        }
        chain::check_transaction(tx)?;
        if tx.is_coinbase() {
            return Err(Reject::Consensus("coinbase"));
        }
        let next = chain.height() + 1;
        if !chain::is_final(tx, next, chain.median_time_past(&chain.tip_hash())) {
            return Err(Reject::NonFinal);
        }
        if (0..tx.output.len()).any(|vout| chain.coin(&OutPoint { txid, vout: vout as u32 }).is_some()) {
            return Err(Reject::AlreadyInChain);
        }
        let mut spent = Vec::with_capacity(tx.input.len());
        for input in &tx.input {
            if self.spends.contains_key(&input.previous_output) {
                return Err(Reject::MempoolConflict);
            }
            let coin = chain
                .coin(&input.previous_output)
                .cloned()
                .or_else(|| self.coin(&input.previous_output, next))
                .ok_or(Reject::MissingInputs)?;
            spent.push(coin);
        }
        let fee = chain::check_inputs(tx, &spent, next)?;
        let vsize = tx.vsize() as u64;
        let min = vsize * MIN_RELAY_FEE_PER_KVB / 1000;
        if fee.to_sat() < min {
            return Err(Reject::MinRelayFee { fee: fee.to_sat(), min });
        }
        chain::verify_scripts(tx, &spent)?;
        Ok(Accepted { txid, fee, vsize })
    }

    /// Checks `tx` and adds it.
    pub fn accept(&mut self, chain: &mut Chain, tx: Transaction, now: u64) -> Result<Accepted, Reject> {
        let accepted = self.check(chain, &tx)?;
        chain.mark_verified(tx.compute_wtxid());
        self.insert(tx, accepted, chain.height(), now);
        Ok(accepted)
    }

    fn insert(&mut self, tx: Transaction, accepted: Accepted, height: u32, now: u64) {
        for input in &tx.input {
            self.spends.insert(input.previous_output, accepted.txid);
        }
        let entry = MempoolEntry {
            tx: Arc::new(tx),
            fee: accepted.fee,
            vsize: accepted.vsize,
            time: now,
            height,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        self.entries.insert(accepted.txid, entry);
    }

    /// Empties the pool, returning its transactions in arrival order.
    pub fn take_all(&mut self) -> Vec<Arc<Transaction>> {
        let txs = self.ordered().into_iter().map(|entry| Arc::clone(&entry.tx)).collect();
        self.entries.clear();
        self.spends.clear();
        txs
    }

    /// The pool transactions `txid` spends from (`depends`).
    pub fn parents(&self, txid: &Txid) -> Vec<Txid> {
        let Some(entry) = self.entries.get(txid) else { return Vec::new() };
        let mut parents: Vec<Txid> = entry
            .tx
            .input
            .iter()
            .map(|input| input.previous_output.txid)
            .filter(|p| self.entries.contains_key(p))
            .collect();
        parents.dedup();
        parents
    }

    /// The pool transactions spending `txid`'s outputs (`spentby`).
    pub fn children(&self, txid: &Txid) -> Vec<Txid> {
        let Some(entry) = self.entries.get(txid) else { return Vec::new() };
        let mut children: Vec<Txid> = (0..entry.tx.output.len())
            .filter_map(|vout| self.spends.get(&OutPoint { txid: *txid, vout: vout as u32 }).copied())
            .collect();
        children.sort_unstable();
        children.dedup();
        children
    }
}
