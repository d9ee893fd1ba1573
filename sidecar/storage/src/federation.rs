//! The federation's Bitcoin UTXO set and the settled burns: consensus state, derived from the consensus
//! blocks alone, so every node that holds the same chain holds the same set.
//!
//! # What a block adds and removes
//!
//! - A peg-in claim's outputs become federation outputs (each pays a federation P2WSH script, which the
//!   claim carries and every importer checked against its own Bitcoin node).
//! - A peg-out proposal's transaction spends federation outputs (its inputs) and creates one: the
//!   change after the paid outputs (output `i` pays `paid[i]`; an output after them goes back to the
//!   federation).
//! - The proposal's paid and refunded burns are settled.
//!
//! # Branches without deletion
//!
//! Every fact is keyed by what it concerns ‖ the block that states it, and written when the block is
//! stored ([`WriteTx::set_head`], [`WriteTx::put_block`]), whichever branch it is on. "Unspent on a
//! chain" is "created by an ancestor of the chain's tip and spent by none", "settled on a chain" is "a
//! settling block is an ancestor" ([`ChainRead::is_ancestor`]), so a reorg needs no rewrite and a fork
//! block is checked against its own ancestry.

use std::collections::{HashMap, HashSet};

use alloy_primitives::{B256, Bytes};
use alys_primitives::{BlockRef, BurnRef, ConsensusHeader, outpoint_key};
use bitcoin::{Transaction, hashes::Hash as _};
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::{ChainRead, StorageError, Tables, WriteTx};

const OUTPUTS: TableDefinition<'static, &[u8; 68], &[u8]> = TableDefinition::new("federation_outputs");
const SPENDS: TableDefinition<'static, &[u8; 68], u64> = TableDefinition::new("federation_spends");
const SETTLED: TableDefinition<'static, &[u8; 80], &[u8; 9]> = TableDefinition::new("pegout_settled");

pub(crate) fn create_tables(tx: &WriteTransaction) -> Result<(), StorageError> {
    tx.open_table(OUTPUTS)?;
    tx.open_table(SPENDS)?;
    tx.open_table(SETTLED)?;
    Ok(())
}

/// A Bitcoin output paying a federation script, as a consensus block recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederationOutput {
    /// The transaction id (Bitcoin's internal byte order).
    pub txid: B256,
    /// The output index.
    pub vout: u32,
    /// Its value in satoshis.
    pub amount_sats: u64,
    /// The federation script it pays.
    pub script_pubkey: Bytes,
    /// The consensus block that made it the federation's (the claim, or the peg-out proposal).
    pub created_in: BlockRef,
}

/// Where a burn was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    /// The proposing block.
    pub block: BlockRef,
    /// Refunded as a withdrawal (else paid by the block's transaction).
    pub refunded: bool,
}

/// Why a stored peg-out transaction could not be read.
#[derive(Debug, thiserror::Error)]
#[error("block {block}: peg-out transaction does not decode: {source}")]
pub struct PegoutTxError {
    /// The block.
    pub block: B256,
    /// The decoder's reason.
    #[source]
    pub source: bitcoin::consensus::encode::Error,
}

fn fact_key(outpoint: &[u8; 36], block: &B256) -> [u8; 68] {
    let mut key = [0u8; 68];
    let (left, right) = key.split_at_mut(36);
    left.copy_from_slice(outpoint);
    right.copy_from_slice(block.as_slice());
    key
}

fn split_fact(key: &[u8; 68]) -> (B256, u32, B256) {
    let (outpoint, block) = key.split_at(36);
    let (txid, vout) = outpoint.split_at(32);
    let mut index = [0u8; 4];
    index.copy_from_slice(vout);
    (B256::from_slice(txid), u32::from_be_bytes(index), B256::from_slice(block))
}

fn burn_key(burn: &BurnRef, block: &B256) -> [u8; 80] {
    let mut key = [0u8; 80];
    let (number, rest) = key.split_at_mut(8);
    number.copy_from_slice(&burn.block_number.to_be_bytes());
    let (index, rest) = rest.split_at_mut(8);
    index.copy_from_slice(&burn.log_index.to_be_bytes());
    let (hash, settling) = rest.split_at_mut(32);
    hash.copy_from_slice(burn.block_hash.as_slice());
    settling.copy_from_slice(block.as_slice());
    key
}

fn decode_output(key: &[u8; 68], value: &[u8]) -> Result<FederationOutput, StorageError> {
    let (txid, vout, block) = split_fact(key);
    let corrupt = || StorageError::Length { table: "federation_outputs", len: value.len(), expected: 16 };
    let (height, rest) = value.split_first_chunk::<8>().ok_or_else(corrupt)?;
    let (amount, script) = rest.split_first_chunk::<8>().ok_or_else(corrupt)?;
    Ok(FederationOutput {
        txid,
        vout,
        amount_sats: u64::from_be_bytes(*amount),
        script_pubkey: Bytes::copy_from_slice(script),
        created_in: BlockRef { height: u64::from_be_bytes(*height), hash: block },
    })
}

/// The bounds of every fact about `outpoint`, whichever block states it.
fn outpoint_range(outpoint: &[u8; 36]) -> ([u8; 68], [u8; 68]) {
    (fact_key(outpoint, &B256::ZERO), fact_key(outpoint, &B256::repeat_byte(0xff)))
}

/// The transaction a proposal carries, or `None` when it refunds only.
pub fn pegout_transaction(header: &ConsensusHeader) -> Result<Option<Transaction>, PegoutTxError> {
    let Some(pegout) = &header.pegout else { return Ok(None) };
    if pegout.tx.is_empty() {
        return Ok(None);
    }
    bitcoin::consensus::deserialize(&pegout.tx)
        .map(Some)
        .map_err(|source| PegoutTxError { block: header.hash(), source })
}

/// Reading the federation's UTXO set and the settled burns.
pub trait FederationRead: Tables + ChainRead + Sized {
    /// The federation output `txid:vout`, as any block recorded it (an output's value and script are
    /// the same on every branch that has it).
    fn federation_output(&self, txid: &B256, vout: u32) -> Result<Option<FederationOutput>, StorageError> {
        let outputs = self.open(OUTPUTS)?;
        let (low, high) = outpoint_range(&outpoint_key(txid, vout));
        let first = outputs.range::<&[u8; 68]>(&low..=&high)?.next();
        match first {
            Some(entry) => {
                let (key, value) = entry?;
                Ok(Some(decode_output(key.value(), value.value())?))
            }
            None => Ok(None),
        }
    }

    /// The block on the chain ending at `tip` that spent `txid:vout`, if one did.
    fn spent_on(&self, txid: &B256, vout: u32, tip: BlockRef) -> Result<Option<BlockRef>, StorageError> {
        let spends = self.open(SPENDS)?;
        let (low, high) = outpoint_range(&outpoint_key(txid, vout));
        for entry in spends.range::<&[u8; 68]>(&low..=&high)? {
            let (key, height) = entry?;
            let (_, _, hash) = split_fact(key.value());
            let block = BlockRef { height: height.value(), hash };
            if self.is_ancestor(block, tip)? {
                return Ok(Some(block));
            }
        }
        Ok(None)
    }

    /// The federation's UTXO set on the chain ending at `tip`: outputs created by its blocks and spent
    /// by none of them, ordered by outpoint.
    ///
    /// One pass over each table; whether a block is an ancestor of `tip` is asked once per block.
    fn federation_utxos_at(&self, tip: BlockRef) -> Result<Vec<FederationOutput>, StorageError> {
        let mut on_chain: HashMap<B256, bool> = HashMap::new();
        let mut ancestor = |block: BlockRef| -> Result<bool, StorageError> {
            if let Some(known) = on_chain.get(&block.hash) {
                return Ok(*known);
            }
            let answer = self.is_ancestor(block, tip)?;
            on_chain.insert(block.hash, answer);
            Ok(answer)
        };
        let mut spent: HashSet<[u8; 36]> = HashSet::new();
        for entry in self.open(SPENDS)?.iter()? {
            let (key, height) = entry?;
            let key = key.value();
            let (_, _, hash) = split_fact(key);
            if ancestor(BlockRef { height: height.value(), hash })? {
                let mut outpoint = [0u8; 36];
                outpoint.copy_from_slice(key.split_at(36).0);
                spent.insert(outpoint);
            }
        }
        let mut out: Vec<FederationOutput> = Vec::new();
        for entry in self.open(OUTPUTS)?.iter()? {
            let (key, value) = entry?;
            let output = decode_output(key.value(), value.value())?;
            // Several blocks may state one outpoint (a claim on two branches); it counts once.
            if out.last().is_some_and(|last| last.txid == output.txid && last.vout == output.vout) {
                continue;
            }
            if ancestor(output.created_in)? && !spent.contains(&outpoint_key(&output.txid, output.vout)) {
                out.push(output);
            }
        }
        Ok(out)
    }

    /// Where `burn` was settled on the chain ending at `tip`, if it was: the latest block that did (a
    /// fee bump settles the burns of the transaction it replaces again).
    fn settled_on(&self, burn: &BurnRef, tip: BlockRef) -> Result<Option<Settlement>, StorageError> {
        let mut latest: Option<Settlement> = None;
        for settlement in self.settlements(burn)? {
            if latest.is_none_or(|l| settlement.block.height > l.block.height)
                && self.is_ancestor(settlement.block, tip)?
            {
                latest = Some(settlement);
            }
        }
        Ok(latest)
    }

    /// Every block, on any branch, that settled `burn`.
    fn settlements(&self, burn: &BurnRef) -> Result<Vec<Settlement>, StorageError> {
        let settled = self.open(SETTLED)?;
        let (low, high) = (burn_key(burn, &B256::ZERO), burn_key(burn, &B256::repeat_byte(0xff)));
        let mut out = Vec::new();
        for entry in settled.range::<&[u8; 80]>(&low..=&high)? {
            let (key, value) = entry?;
            let (_, hash) = key.value().split_at(48);
            let value = value.value();
            let (height, kind) = value.split_at(8);
            let mut h = [0u8; 8];
            h.copy_from_slice(height);
            out.push(Settlement {
                block: BlockRef { height: u64::from_be_bytes(h), hash: B256::from_slice(hash) },
                refunded: kind.first() == Some(&1),
            });
        }
        Ok(out)
    }
}

impl<T: Tables> FederationRead for T {}

impl WriteTx {
    /// Records what the block at `hash` does to the federation's outputs and the burns (any branch):
    /// the outputs its claims mint, the outputs its peg-out spends and creates, the burns it settles.
    pub(crate) fn record_federation(
        &self,
        hash: &B256,
        header: &ConsensusHeader,
    ) -> Result<(), StorageError> {
        let height = header.height;
        if header.pegins.is_empty() && header.pegout.is_none() {
            return Ok(());
        }
        let mut outputs = self.table(OUTPUTS)?;
        let value = |amount: u64, script: &[u8]| -> Vec<u8> {
            let mut value = Vec::with_capacity(16 + script.len());
            value.extend_from_slice(&height.to_be_bytes());
            value.extend_from_slice(&amount.to_be_bytes());
            value.extend_from_slice(script);
            value
        };
        for claim in &header.pegins {
            for output in &claim.outputs {
                let key = fact_key(&outpoint_key(&claim.txid, output.vout), hash);
                outputs.insert(&key, value(output.amount_sats, &output.script_pubkey).as_slice())?;
            }
        }
        let Some(pegout) = &header.pegout else { return Ok(()) };
        if let Some(tx) = pegout_transaction(header).map_err(|e| StorageError::PegoutTx(Box::new(e)))? {
            let txid = B256::from(tx.compute_txid().to_byte_array());
            let mut spends = self.table(SPENDS)?;
            for input in &tx.input {
                let spent = B256::from(input.previous_output.txid.to_byte_array());
                spends.insert(&fact_key(&outpoint_key(&spent, input.previous_output.vout), hash), height)?;
            }
            for (vout, output) in (0u32..).zip(&tx.output).skip(pegout.paid.len()) {
                let key = fact_key(&outpoint_key(&txid, vout), hash);
                outputs
                    .insert(&key, value(output.value.to_sat(), output.script_pubkey.as_bytes()).as_slice())?;
            }
            // A fee bump: the replaced transaction's change never exists on this chain.
            if let Some(replaced) = pegout.replaces {
                let block = self.block(&replaced)?.ok_or(StorageError::UnknownBlock(replaced))?;
                let paid = block.header.pegout.as_ref().map_or(0, |p| p.paid.len());
                let old =
                    pegout_transaction(&block.header).map_err(|e| StorageError::PegoutTx(Box::new(e)))?;
                if let Some(old) = old {
                    let old_txid = B256::from(old.compute_txid().to_byte_array());
                    for (vout, _) in (0u32..).zip(&old.output).skip(paid) {
                        spends.insert(&fact_key(&outpoint_key(&old_txid, vout), hash), height)?;
                    }
                }
            }
        }
        let mut settled = self.table(SETTLED)?;
        for (burns, kind) in [(&pegout.paid, 0u8), (&pegout.refunded, 1u8)] {
            for burn in burns {
                let mut value = [kind; 9];
                let (h, _) = value.split_at_mut(8);
                h.copy_from_slice(&height.to_be_bytes());
                settled.insert(&burn_key(burn, hash), &value)?;
            }
        }
        Ok(())
    }
}
