//! The mempool: transactions valid on top of the tip, waiting for a block.
//!
//! Acceptance is Bitcoin Core 25's `AcceptToMemoryPool`: context-free checks, lock time for the next
//! block, every input in the UTXO set or created by a pool transaction
//! (`bad-txns-inputs-missingorspent`), coinbase maturity, the 1 sat/vB minimum relay fee, and
//! libbitcoinconsensus on every input.
//!
//! A transaction spending an output a pool transaction already spends is a replacement, taken as Core
//! 25 takes it (BIP125 as `policy/rbf.cpp` applies it): each directly conflicting transaction must
//! signal on one of its own inputs (`txn-mempool-conflict` otherwise; Core 25 does not honour
//! signalling inherited from an ancestor for the transaction it replaces, and neither does this pool),
//! unless full RBF (`-mempoolfullrbf`, off by default) is on. The replacement must not spend outputs
//! of what it replaces, must pay a higher fee rate than each direct conflict, must evict at most
//! [`MAX_REPLACEMENT_CANDIDATES`], must spend no unconfirmed output the conflicts did not, must pay at
//! least their fees plus its own size at the incremental relay fee. The conflicts leave with all their
//! descendants, which need not signal.
//!
//! Transactions keep their arrival order, which is also a valid block order: a parent arrives before
//! its children, and a replacement cannot be the parent of anything already in the pool.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use bitcoin::{Amount, OutPoint, Transaction, Txid};

use crate::{
    chain::{self, Chain, Coin},
    error::Reject,
    params::{INCREMENTAL_RELAY_FEE_PER_KVB, MAX_REPLACEMENT_CANDIDATES, MIN_RELAY_FEE_PER_KVB},
    store::SavedTx,
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

/// What loading a saved mempool did, as Core's "Imported mempool transactions from disk" line counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Accepted again.
    pub accepted: usize,
    /// No longer valid on the current chain (spent, confirmed, conflicting...).
    pub failed: usize,
    /// Already in the pool.
    pub already: usize,
}

/// The pool.
#[derive(Debug, Default)]
pub struct Mempool {
    entries: HashMap<Txid, MempoolEntry>,
    spends: HashMap<OutPoint, Txid>,
    next_seq: u64,
    full_rbf: bool,
}

/// Fee rate in satoshis per virtual kilobyte, truncated as `CFeeRate(fee, size)` does.
fn fee_rate(fee: u64, vsize: u64) -> u64 {
    fee.saturating_mul(1000).checked_div(vsize).unwrap_or_default()
}

impl Mempool {
    /// Replaces transactions that do not signal BIP125 too (`-mempoolfullrbf`).
    pub const fn with_full_rbf(mut self, full_rbf: bool) -> Self {
        self.full_rbf = full_rbf;
        self
    }

    /// Whether full RBF is on (`getmempoolinfo`'s `fullrbf`).
    pub const fn full_rbf(&self) -> bool {
        self.full_rbf
    }

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
        self.validate(chain, tx).map(|(accepted, _)| accepted)
    }

    /// Checks `tx`; on success also returns the transactions it replaces (conflicts and descendants).
    fn validate(&self, chain: &Chain, tx: &Transaction) -> Result<(Accepted, HashSet<Txid>), Reject> {
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
        let mut conflicts = Vec::new();
        for input in &tx.input {
            let Some(conflict) = self.spends.get(&input.previous_output) else { continue };
            if conflicts.contains(conflict) {
                continue;
            }
            let signals = self.entries.get(conflict).is_some_and(|entry| entry.tx.is_explicitly_rbf());
            if !signals && !self.full_rbf {
                return Err(Reject::MempoolConflict);
            }
            conflicts.push(*conflict);
        }
        let mut spent = Vec::with_capacity(tx.input.len());
        for input in &tx.input {
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
        let ancestors = self.ancestors(tx);
        if let Some(conflict) = conflicts.iter().find(|conflict| ancestors.contains(*conflict)) {
            return Err(Reject::SpendsConflicting { txid, conflict: *conflict });
        }
        let evicted = if conflicts.is_empty() {
            HashSet::new()
        } else {
            self.replaces(tx, txid, fee, vsize, &conflicts)?
        };
        chain::verify_scripts(tx, &spent)?;
        Ok((Accepted { txid, fee, vsize }, evicted))
    }

    /// Core's `ReplacementChecks`, rules in Core's order; the transactions to evict.
    fn replaces(
        &self,
        tx: &Transaction,
        txid: Txid,
        fee: Amount,
        vsize: u64,
        conflicts: &[Txid],
    ) -> Result<HashSet<Txid>, Reject> {
        let direct: Vec<&MempoolEntry> = conflicts.iter().filter_map(|c| self.entries.get(c)).collect();
        let new = fee_rate(fee.to_sat(), vsize);
        for entry in &direct {
            let old = fee_rate(entry.fee.to_sat(), entry.vsize);
            if new <= old {
                return Err(Reject::ReplacementFeeRate { txid, new, old });
            }
        }
        // Counted per direct conflict, so a shared descendant counts more than once, as in Core.
        let mut count = 0;
        let mut evicted = HashSet::new();
        for conflict in conflicts {
            let descendants = self.descendants(conflict);
            count += descendants.len();
            if count > MAX_REPLACEMENT_CANDIDATES {
                return Err(Reject::TooManyReplacements { txid, count });
            }
            evicted.extend(descendants);
        }
        let parents: HashSet<Txid> =
            direct.iter().flat_map(|entry| entry.tx.input.iter().map(|i| i.previous_output.txid)).collect();
        let adds_unconfirmed = tx.input.iter().position(|input| {
            let parent = input.previous_output.txid;
            !parents.contains(&parent) && self.entries.contains_key(&parent)
        });
        if let Some(index) = adds_unconfirmed {
            return Err(Reject::ReplacementAddsUnconfirmed { txid, index });
        }
        let replaced: u64 = evicted.iter().filter_map(|e| self.entries.get(e)).map(|e| e.fee.to_sat()).sum();
        let fee = fee.to_sat();
        if fee < replaced {
            return Err(Reject::ReplacementFee { txid, fee, replaced });
        }
        // `CFeeRate::GetFee`: rounded up.
        let required = (vsize * INCREMENTAL_RELAY_FEE_PER_KVB).div_ceil(1000);
        if fee - replaced < required {
            return Err(Reject::ReplacementRelayFee { txid, additional: fee - replaced, required });
        }
        Ok(evicted)
    }

    /// Checks `tx` and adds it (entered at `time`), evicting what it replaces.
    pub fn accept(&mut self, chain: &mut Chain, tx: Transaction, time: u64) -> Result<Accepted, Reject> {
        let (accepted, evicted) = self.validate(chain, &tx)?;
        chain.mark_verified(tx.compute_wtxid());
        for txid in &evicted {
            self.remove(txid);
        }
        if !evicted.is_empty() {
            tracing::debug!(target: "devnet::bitcoin", txid = %accepted.txid, replaced = ?evicted, "replaced mempool transactions");
        }
        self.insert(tx, accepted, chain.height(), time);
        Ok(accepted)
    }

    /// Accepts saved transactions again through [`Self::accept`], parents first whatever their order.
    pub fn load(&mut self, chain: &mut Chain, saved: Vec<SavedTx>) -> LoadStats {
        let mut stats = LoadStats::default();
        for SavedTx { tx, time } in dependency_order(saved) {
            match self.accept(chain, tx, time) {
                Ok(_) => stats.accepted += 1,
                Err(Reject::AlreadyInMempool) => stats.already += 1,
                Err(reason) => {
                    tracing::debug!(target: "devnet::bitcoin", %reason, "saved transaction dropped");
                    stats.failed += 1;
                }
            }
        }
        stats
    }

    fn insert(&mut self, tx: Transaction, accepted: Accepted, height: u32, time: u64) {
        for input in &tx.input {
            self.spends.insert(input.previous_output, accepted.txid);
        }
        let entry = MempoolEntry {
            tx: Arc::new(tx),
            fee: accepted.fee,
            vsize: accepted.vsize,
            time,
            height,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        self.entries.insert(accepted.txid, entry);
    }

    fn remove(&mut self, txid: &Txid) {
        let Some(entry) = self.entries.remove(txid) else { return };
        for input in &entry.tx.input {
            if self.spends.get(&input.previous_output) == Some(txid) {
                self.spends.remove(&input.previous_output);
            }
        }
    }

    /// The pool's transactions as `mempool.dat` keeps them, parents first.
    pub fn saved(&self) -> Vec<SavedTx> {
        self.ordered()
            .into_iter()
            .map(|entry| SavedTx { tx: (*entry.tx).clone(), time: entry.time })
            .collect()
    }

    /// Whether `txid` is replaceable by BIP125's definition (`IsRBFOptIn`, `bip125-replaceable`): it or
    /// an unconfirmed ancestor signals.
    pub fn signals_rbf(&self, txid: &Txid) -> bool {
        let Some(entry) = self.entries.get(txid) else { return false };
        let signals = |entry: &MempoolEntry| entry.tx.is_explicitly_rbf();
        signals(entry) || self.ancestors(&entry.tx).iter().filter_map(|a| self.entries.get(a)).any(signals)
    }

    /// The pool transactions `tx` depends on, directly or not.
    fn ancestors(&self, tx: &Transaction) -> HashSet<Txid> {
        let mut found = HashSet::new();
        let mut queue: Vec<Txid> = tx.input.iter().map(|input| input.previous_output.txid).collect();
        while let Some(txid) = queue.pop() {
            if let Some(entry) = self.entries.get(&txid)
                && found.insert(txid)
            {
                queue.extend(entry.tx.input.iter().map(|input| input.previous_output.txid));
            }
        }
        found
    }

    /// `txid` and every pool transaction depending on it.
    pub fn descendants(&self, txid: &Txid) -> HashSet<Txid> {
        let mut found = HashSet::new();
        let mut queue = vec![*txid];
        while let Some(next) = queue.pop() {
            if self.entries.contains_key(&next) && found.insert(next) {
                queue.extend(self.children(&next));
            }
        }
        found
    }

    /// Empties the pool, returning its transactions in arrival order with their entry times.
    pub fn take_all(&mut self) -> Vec<SavedTx> {
        let txs = self.saved();
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

/// `txs` reordered so every transaction comes after the ones it spends from (a depth-first walk over
/// parents), otherwise keeping their order.
fn dependency_order(txs: Vec<SavedTx>) -> Vec<SavedTx> {
    let index: HashMap<Txid, usize> =
        txs.iter().enumerate().map(|(position, saved)| (saved.tx.compute_txid(), position)).collect();
    // 0: not visited, 1: on the walk (a cycle, impossible for real txids, ends here), 2: placed.
    let mut state = vec![0u8; txs.len()];
    let mut order = Vec::with_capacity(txs.len());
    for start in 0..txs.len() {
        let mut stack = vec![(start, false)];
        while let Some((at, expanded)) = stack.pop() {
            let Some(slot) = state.get_mut(at) else { continue };
            if expanded {
                *slot = 2;
                order.push(at);
                continue;
            }
            if *slot != 0 {
                continue;
            }
            *slot = 1;
            stack.push((at, true));
            for input in txs.get(at).map(|saved| saved.tx.input.as_slice()).unwrap_or_default() {
                if let Some(&parent) = index.get(&input.previous_output.txid)
                    && state.get(parent) == Some(&0)
                {
                    stack.push((parent, false));
                }
            }
        }
    }
    let mut slots: Vec<Option<SavedTx>> = txs.into_iter().map(Some).collect();
    order.into_iter().filter_map(|at| slots.get_mut(at).and_then(Option::take)).collect()
}

#[cfg(test)]
mod tests {
    use bitcoin::{ScriptBuf, TxIn, TxOut, absolute, hashes::Hash, transaction};

    use super::*;

    fn spending(previous: OutPoint) -> Transaction {
        Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn { previous_output: previous, ..Default::default() }],
            output: vec![TxOut { value: Amount::from_sat(1), script_pubkey: ScriptBuf::new() }; 2],
        }
    }

    #[test]
    fn saved_transactions_load_parents_first() {
        let root = spending(OutPoint { txid: Txid::all_zeros(), vout: 0 });
        let child = spending(OutPoint { txid: root.compute_txid(), vout: 0 });
        let sibling = spending(OutPoint { txid: root.compute_txid(), vout: 1 });
        let grandchild = spending(OutPoint { txid: child.compute_txid(), vout: 0 });
        let unrelated = spending(OutPoint { txid: Txid::from_byte_array([7; 32]), vout: 0 });
        let saved = |txs: &[&Transaction]| -> Vec<SavedTx> {
            txs.iter().map(|tx| SavedTx { tx: (*tx).clone(), time: 0 }).collect()
        };
        let order = dependency_order(saved(&[&grandchild, &sibling, &unrelated, &child, &root]));
        let ids: Vec<Txid> = order.iter().map(|saved| saved.tx.compute_txid()).collect();
        let at = |tx: &Transaction| ids.iter().position(|id| *id == tx.compute_txid()).unwrap();
        assert_eq!(ids.len(), 5);
        assert!(at(&root) < at(&child) && at(&child) < at(&grandchild) && at(&root) < at(&sibling));
        // Already ordered input keeps its order.
        let ordered = saved(&[&root, &child, &sibling, &grandchild, &unrelated]);
        assert_eq!(dependency_order(ordered.clone()), ordered);
    }
}
