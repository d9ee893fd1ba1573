//! The peg-out payer's records: one per finalized peg-out transaction, from the moment its proposing
//! block is final until Bitcoin confirmed it (`alys_bridge::pegout::payer` drives them).
//!
//! # Tables
//!
//! | table | key → value |
//! |---|---|
//! | `pegout_payouts` | txid (Bitcoin's internal byte order) → [`PayoutRecord`] (RLP) |
//! | `pegout_payouts_by_status` | status ‖ order (u64 BE) ‖ txid → (): order is the Bitcoin height of the confirmation for [`PayoutStatus::Confirmed`], the proposing block's height otherwise |
//! | `pegout_meta` | `payer_height` → the highest finalized consensus height whose peg-out transactions are recorded |
//!
//! The index lists each status oldest first (parents before the children that spend their change), and
//! the confirmations of one Bitcoin block by a range, which is what undoing a Bitcoin block needs.
//!
//! # Local observation
//!
//! Unlike the consensus tables, these records are this node's own progress: two nodes may be at
//! different statuses for the same transaction (only one needs to broadcast it). Confirmations are
//! written by the Bitcoin follower in the commit that records the Bitcoin block
//! ([`WriteTx::confirm_payouts`]) and cleared in the commit that undoes it
//! ([`WriteTx::unconfirm_payouts`]), so a confirmation is never ahead of, or behind, the followed chain.

use std::collections::HashMap;

use alloy_primitives::{B256, Bytes};
use alloy_rlp::{Decodable, Encodable, RlpDecodable, RlpEncodable};
use alys_primitives::BlockRef;
use bitcoin::hashes::Hash as _;
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::{StorageError, Tables, WriteTx};

const PAYOUTS: TableDefinition<'static, &[u8; 32], &[u8]> = TableDefinition::new("pegout_payouts");
const BY_STATUS: TableDefinition<'static, &[u8; 41], ()> = TableDefinition::new("pegout_payouts_by_status");
const META: TableDefinition<'static, &str, u64> = TableDefinition::new("pegout_meta");

const PAYER_HEIGHT: &str = "payer_height";
const TABLE: &str = "pegout_payouts";

pub(crate) fn create_tables(tx: &WriteTransaction) -> Result<(), StorageError> {
    tx.open_table(PAYOUTS)?;
    tx.open_table(BY_STATUS)?;
    tx.open_table(META)?;
    Ok(())
}

/// Where a payout stands. Statuses only move forward, except that a confirmation is undone when its
/// Bitcoin block leaves the best chain (back to [`Self::Broadcast`]) and a refused signature answer
/// sends a [`Self::Requested`] payout back to [`Self::Final`] under the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PayoutStatus {
    /// Its proposing block is final; no signature was asked for under the current attempt yet.
    Final = 0,
    /// Signatures were asked for under the current attempt's request id.
    Requested = 1,
    /// Signed and every witness verified; not yet accepted by bitcoind.
    Signed = 2,
    /// Accepted by bitcoind (or found already there), not yet in a followed Bitcoin block.
    Broadcast = 3,
    /// In a Bitcoin block the follower recorded.
    Confirmed = 4,
    /// A later block proposed a fee bump of it (same inputs, same burns): it is not signed, sent or
    /// re-sent any more; the replacement is.
    Replaced = 5,
}

impl PayoutStatus {
    /// Every status, in order.
    pub const ALL: [Self; 6] =
        [Self::Final, Self::Requested, Self::Signed, Self::Broadcast, Self::Confirmed, Self::Replaced];

    /// The status's name, as in metrics and RPC.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Final => "final",
            Self::Requested => "requested",
            Self::Signed => "signed",
            Self::Broadcast => "broadcast",
            Self::Confirmed => "confirmed",
            Self::Replaced => "replaced",
        }
    }

    /// The status stored as `byte`, if it is one.
    pub const fn from_u8(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Self::Final),
            1 => Some(Self::Requested),
            2 => Some(Self::Signed),
            3 => Some(Self::Broadcast),
            4 => Some(Self::Confirmed),
            5 => Some(Self::Replaced),
            _ => None,
        }
    }

    /// Whether the payout still waits for governance's signatures.
    pub const fn needs_signatures(self) -> bool {
        matches!(self, Self::Final | Self::Requested)
    }
}

impl Encodable for PayoutStatus {
    fn encode(&self, out: &mut dyn alloy_rlp::BufMut) {
        (*self as u8).encode(out);
    }

    fn length(&self) -> usize {
        (*self as u8).length()
    }
}

impl Decodable for PayoutStatus {
    fn decode(buf: &mut &[u8]) -> alloy_rlp::Result<Self> {
        Self::from_u8(u8::decode(buf)?).ok_or(alloy_rlp::Error::Custom("unknown payout status"))
    }
}

/// An output a payout spends: what BIP143 signing and script verification need of it.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct SpentOutput {
    /// Its value in satoshis.
    pub amount_sats: u64,
    /// The federation script it pays.
    pub script_pubkey: Bytes,
}

/// One finalized peg-out transaction and how far this node got in paying it.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct PayoutRecord {
    /// The transaction id (Bitcoin's internal byte order).
    pub txid: B256,
    /// Height of the consensus block that proposed it.
    pub block_height: u64,
    /// Hash of that block.
    pub block_hash: B256,
    /// The unsigned transaction, as the block carries it.
    pub unsigned_tx: Bytes,
    /// The outputs its inputs spend, input by input.
    pub spent: Vec<SpentOutput>,
    /// Where it stands.
    pub status: PayoutStatus,
    /// Signature request attempts that got a refused answer: the current request id's counter.
    pub attempt: u32,
    /// The signed transaction with verified witnesses (or as a Bitcoin block carried it), or empty.
    pub signed_tx: Bytes,
    /// When it was recorded, unix seconds.
    pub final_secs: u64,
    /// When its signatures were verified, unix seconds (0 before).
    pub signed_secs: u64,
    /// When bitcoind first accepted it from this node, unix seconds (0 before).
    pub broadcast_secs: u64,
    /// The Bitcoin height of the followed block that holds it (0 when not confirmed).
    pub confirmed_height: u64,
    /// That block's hash (zero when not confirmed).
    pub confirmed_block: B256,
    /// The last failure met on the way (a refused answer, a broadcast error), or empty.
    pub last_error: String,
}

impl PayoutRecord {
    /// A payout just recorded: its block `block` is final.
    pub const fn new(
        txid: B256,
        block: BlockRef,
        unsigned_tx: Bytes,
        spent: Vec<SpentOutput>,
        now_secs: u64,
    ) -> Self {
        Self {
            txid,
            block_height: block.height,
            block_hash: block.hash,
            unsigned_tx,
            spent,
            status: PayoutStatus::Final,
            attempt: 0,
            signed_tx: Bytes::new(),
            final_secs: now_secs,
            signed_secs: 0,
            broadcast_secs: 0,
            confirmed_height: 0,
            confirmed_block: B256::ZERO,
            last_error: String::new(),
        }
    }

    /// Confirmations with the followed Bitcoin tip at `bitcoin_tip_height`: 1 in the tip itself, 0 when
    /// not confirmed.
    pub const fn confirmations(&self, bitcoin_tip_height: u64) -> u64 {
        match self.status {
            PayoutStatus::Confirmed => {
                bitcoin_tip_height.saturating_add(1).saturating_sub(self.confirmed_height)
            }
            _ => 0,
        }
    }

    fn decode(bytes: &[u8]) -> Result<Self, StorageError> {
        let mut slice = bytes;
        let record = <Self as Decodable>::decode(&mut slice)
            .map_err(|source| StorageError::Decode { table: TABLE, source })?;
        if !slice.is_empty() {
            return Err(StorageError::Decode { table: TABLE, source: alloy_rlp::Error::UnexpectedLength });
        }
        Ok(record)
    }

    fn index_key(&self) -> [u8; 41] {
        let order = match self.status {
            PayoutStatus::Confirmed => self.confirmed_height,
            _ => self.block_height,
        };
        index_key(self.status, order, &self.txid)
    }
}

fn index_key(status: PayoutStatus, order: u64, txid: &B256) -> [u8; 41] {
    let mut key = [0u8; 41];
    let (head, id) = key.split_at_mut(9);
    let (s, o) = head.split_at_mut(1);
    s.copy_from_slice(&[status as u8]);
    o.copy_from_slice(&order.to_be_bytes());
    id.copy_from_slice(txid.as_slice());
    key
}

/// The index range of `status` with order in `from..=to`.
fn index_range(status: PayoutStatus, from: u64, to: u64) -> ([u8; 41], [u8; 41]) {
    (index_key(status, from, &B256::ZERO), index_key(status, to, &B256::repeat_byte(0xff)))
}

fn txid_of(key: &[u8; 41]) -> B256 {
    let (_, txid) = key.split_at(9);
    B256::from_slice(txid)
}

/// Reading the payer's records, in a snapshot or inside the write transaction.
pub trait PayoutRead: Tables + Sized {
    /// The record of transaction `txid`.
    fn payout(&self, txid: &B256) -> Result<Option<PayoutRecord>, StorageError> {
        self.open(PAYOUTS)?.get(&txid.0)?.map(|v| PayoutRecord::decode(v.value())).transpose()
    }

    /// Every record, oldest proposing block first.
    fn payouts(&self) -> Result<Vec<PayoutRecord>, StorageError> {
        let mut out = Vec::new();
        for entry in self.open(PAYOUTS)?.iter()? {
            out.push(PayoutRecord::decode(entry?.1.value())?);
        }
        out.sort_by_key(|r| (r.block_height, r.txid));
        Ok(out)
    }

    /// The records at `status`, oldest first (by proposing block; confirmed ones by Bitcoin height).
    fn payouts_with_status(&self, status: PayoutStatus) -> Result<Vec<PayoutRecord>, StorageError> {
        self.payouts_in(status, 0, u64::MAX)
    }

    /// The confirmed records whose Bitcoin block is at `bitcoin_height` or above, lowest first.
    fn payouts_confirmed_since(&self, bitcoin_height: u64) -> Result<Vec<PayoutRecord>, StorageError> {
        self.payouts_in(PayoutStatus::Confirmed, bitcoin_height, u64::MAX)
    }

    #[doc(hidden)]
    fn payouts_in(
        &self,
        status: PayoutStatus,
        from: u64,
        to: u64,
    ) -> Result<Vec<PayoutRecord>, StorageError> {
        let index = self.open(BY_STATUS)?;
        let payouts = self.open(PAYOUTS)?;
        let (low, high) = index_range(status, from, to);
        let mut out = Vec::new();
        for entry in index.range::<&[u8; 41]>(&low..=&high)? {
            let txid = txid_of(entry?.0.value());
            if let Some(bytes) = payouts.get(&txid.0)? {
                out.push(PayoutRecord::decode(bytes.value())?);
            }
        }
        Ok(out)
    }

    /// How many records are at `status`.
    fn payout_count(&self, status: PayoutStatus) -> Result<u64, StorageError> {
        let (low, high) = index_range(status, 0, u64::MAX);
        let mut count = 0u64;
        for entry in self.open(BY_STATUS)?.range::<&[u8; 41]>(&low..=&high)? {
            entry?;
            count += 1;
        }
        Ok(count)
    }

    /// The highest finalized consensus height whose peg-out transactions are recorded (0 before any).
    fn payer_height(&self) -> Result<u64, StorageError> {
        Ok(self.open(META)?.get(PAYER_HEIGHT)?.map_or(0, |v| v.value()))
    }

    /// `record`'s confirmations with the followed Bitcoin tip at `bitcoin_tip_height`
    /// ([`PayoutRecord::confirmations`]).
    fn confirmations(&self, record: &PayoutRecord, bitcoin_tip_height: u64) -> u64 {
        record.confirmations(bitcoin_tip_height)
    }
}

impl<T: Tables> PayoutRead for T {}

impl WriteTx {
    /// Records a new payout; `false` (and nothing written) when its txid is recorded already, so
    /// recording a range again never resets a payout's progress.
    pub fn insert_payout(&self, record: &PayoutRecord) -> Result<bool, StorageError> {
        if self.payout(&record.txid)?.is_some() {
            return Ok(false);
        }
        self.put_payout(record)?;
        Ok(true)
    }

    /// Writes `record` over the stored one (its index entry follows its status).
    pub fn put_payout(&self, record: &PayoutRecord) -> Result<(), StorageError> {
        let old = self.payout(&record.txid)?;
        let mut index = self.table(BY_STATUS)?;
        if let Some(old) = old {
            index.remove(&old.index_key())?;
        }
        index.insert(&record.index_key(), ())?;
        self.table(PAYOUTS)?.insert(&record.txid.0, alloy_rlp::encode(record).as_slice())?;
        Ok(())
    }

    /// Records that the peg-out transactions of finalized blocks up to `height` are recorded.
    pub fn set_payer_height(&self, height: u64) -> Result<(), StorageError> {
        self.table(META)?.insert(PAYER_HEIGHT, height)?;
        Ok(())
    }

    /// The follower recorded Bitcoin block `hash` at `height` holding `txs`: every payout among them
    /// that is not confirmed yet becomes confirmed there, whatever its status (another node may have
    /// broadcast it), keeping the block's copy as its signed transaction when it had none. Returns the
    /// txids confirmed. Call it in the commit that records the block.
    pub fn confirm_payouts(
        &self,
        height: u64,
        hash: B256,
        txs: &[bitcoin::Transaction],
    ) -> Result<Vec<B256>, StorageError> {
        let mut waiting: HashMap<B256, PayoutRecord> = HashMap::new();
        for status in PayoutStatus::ALL.into_iter().filter(|s| *s != PayoutStatus::Confirmed) {
            waiting.extend(self.payouts_with_status(status)?.into_iter().map(|r| (r.txid, r)));
        }
        let mut confirmed = Vec::new();
        // Hashing the block's transactions only when a payout waits for one.
        for tx in txs {
            if waiting.is_empty() {
                break;
            }
            let txid = B256::from(tx.compute_txid().to_byte_array());
            let Some(mut record) = waiting.remove(&txid) else { continue };
            record.status = PayoutStatus::Confirmed;
            record.confirmed_height = height;
            record.confirmed_block = hash;
            record.last_error.clear();
            if record.signed_tx.is_empty() {
                record.signed_tx = bitcoin::consensus::serialize(tx).into();
            }
            self.put_payout(&record)?;
            confirmed.push(txid);
        }
        Ok(confirmed)
    }

    /// The followed Bitcoin block at `height` left the best chain: payouts confirmed there are
    /// broadcast again (they go back to [`PayoutStatus::Broadcast`]). Returns their txids. Call it in
    /// the commit that undoes the block.
    pub fn unconfirm_payouts(&self, height: u64) -> Result<Vec<B256>, StorageError> {
        let mut undone = Vec::new();
        for mut record in self.payouts_in(PayoutStatus::Confirmed, height, height)? {
            record.status =
                if record.signed_tx.is_empty() { PayoutStatus::Final } else { PayoutStatus::Broadcast };
            record.confirmed_height = 0;
            record.confirmed_block = B256::ZERO;
            self.put_payout(&record)?;
            undone.push(record.txid);
        }
        Ok(undone)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]
    use super::*;
    use crate::Storage;
    use bitcoin::{
        Amount, OutPoint, ScriptBuf, Transaction, TxIn, TxOut, Txid, Witness, absolute::LockTime,
        transaction::Version,
    };

    fn tx(n: u8) -> Transaction {
        Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::new(Txid::from_byte_array([n; 32]), 0),
                witness: Witness::from_slice(&[vec![n]]),
                ..Default::default()
            }],
            output: vec![TxOut { value: Amount::from_sat(1_000), script_pubkey: ScriptBuf::new() }],
        }
    }

    fn record(n: u8, height: u64) -> PayoutRecord {
        let tx = tx(n);
        let mut unsigned = tx.clone();
        unsigned.input[0].witness = Witness::new();
        PayoutRecord::new(
            B256::from(tx.compute_txid().to_byte_array()),
            BlockRef::new(height, B256::repeat_byte(n)),
            bitcoin::consensus::serialize(&unsigned).into(),
            vec![SpentOutput { amount_sats: 2_000, script_pubkey: Bytes::from_static(&[0, 0x20]) }],
            7,
        )
    }

    fn write<T>(storage: &Storage, f: impl FnOnce(&WriteTx) -> Result<T, StorageError>) -> T {
        let tx = storage.write().unwrap();
        let out = f(&tx).unwrap();
        tx.commit().unwrap();
        out
    }

    fn txids(records: Vec<PayoutRecord>) -> Vec<B256> {
        records.into_iter().map(|r| r.txid).collect()
    }

    #[test]
    fn records_round_trip_and_are_listed_by_status_oldest_first() {
        let storage = Storage::in_memory().unwrap();
        let (a, b, c) = (record(1, 30), record(2, 10), record(3, 20));
        for r in [&a, &b, &c] {
            assert!(write(&storage, |tx| tx.insert_payout(r)));
        }
        let mut moved = a.clone();
        moved.status = PayoutStatus::Signed;
        write(&storage, |tx| tx.put_payout(&moved));
        // Recording it again (a range read twice) does not reset it.
        assert!(!write(&storage, |tx| tx.insert_payout(&a)));
        write(&storage, |tx| tx.set_payer_height(30));

        let read = storage.read().unwrap();
        assert_eq!(read.payout(&a.txid).unwrap(), Some(moved));
        assert_eq!(read.payout(&B256::ZERO).unwrap(), None);
        assert_eq!(txids(read.payouts_with_status(PayoutStatus::Final).unwrap()), vec![b.txid, c.txid]);
        assert_eq!(txids(read.payouts_with_status(PayoutStatus::Signed).unwrap()), vec![a.txid]);
        assert_eq!(txids(read.payouts().unwrap()), vec![b.txid, c.txid, a.txid]);
        assert_eq!(read.payout_count(PayoutStatus::Final).unwrap(), 2);
        assert_eq!(read.payout_count(PayoutStatus::Requested).unwrap(), 0);
        assert_eq!(read.payer_height().unwrap(), 30);
    }

    #[test]
    fn a_followed_block_confirms_payouts_and_undoing_it_clears_them() {
        let storage = Storage::in_memory().unwrap();
        let (mine, theirs, other) = (record(1, 10), record(2, 11), record(3, 12));
        let mut broadcast = mine.clone();
        broadcast.status = PayoutStatus::Broadcast;
        broadcast.signed_tx = bitcoin::consensus::serialize(&tx(1)).into();
        write(&storage, |tx| {
            tx.put_payout(&broadcast)?;
            tx.insert_payout(&theirs)?;
            tx.insert_payout(&other)
        });
        assert_eq!(storage.read().unwrap().payer_height().unwrap(), 0);

        // Block 100 holds ours and one another node broadcast while ours was still unsigned.
        let hash = B256::repeat_byte(0xbb);
        let confirmed = write(&storage, |t| t.confirm_payouts(100, hash, &[tx(9), tx(2), tx(1)]));
        assert_eq!(confirmed, vec![theirs.txid, mine.txid]);
        let read = storage.read().unwrap();
        let got = read.payout(&theirs.txid).unwrap().unwrap();
        assert_eq!(
            (got.status, got.confirmed_height, got.confirmed_block),
            (PayoutStatus::Confirmed, 100, hash)
        );
        assert_eq!(got.signed_tx, Bytes::from(bitcoin::consensus::serialize(&tx(2))), "the block's copy");
        assert_eq!(read.confirmations(&got, 105), 6);
        assert_eq!(read.confirmations(&other, 105), 0, "not confirmed");
        assert_eq!(txids(read.payouts_confirmed_since(100).unwrap()).len(), 2);
        assert!(read.payouts_confirmed_since(101).unwrap().is_empty());
        drop(read);

        // Undoing another height changes nothing; undoing 100 sends both back to broadcast.
        assert!(write(&storage, |t| t.unconfirm_payouts(101)).is_empty());
        assert_eq!(write(&storage, |t| t.unconfirm_payouts(100)).len(), 2);
        let read = storage.read().unwrap();
        assert_eq!(read.payout(&mine.txid).unwrap(), Some(broadcast));
        assert_eq!(read.payout_count(PayoutStatus::Broadcast).unwrap(), 2);
        assert_eq!(read.payout_count(PayoutStatus::Confirmed).unwrap(), 0);
        assert_eq!(txids(read.payouts_with_status(PayoutStatus::Final).unwrap()), vec![other.txid]);
    }

    #[test]
    fn a_damaged_record_is_a_typed_error() {
        let storage = Storage::in_memory().unwrap();
        let good = record(1, 1);
        write(&storage, |tx| tx.insert_payout(&good));
        // Trailing bytes, a list too short, not RLP at all.
        let mut trailing = alloy_rlp::encode(&good);
        trailing.push(0);
        for bytes in [trailing.as_slice(), &[0xc1, 0x80][..], b"junk"] {
            let tx = storage.write().unwrap();
            tx.table(PAYOUTS).unwrap().insert(&good.txid.0, bytes).unwrap();
            tx.commit().unwrap();
            let error = storage.read().unwrap().payout(&good.txid).unwrap_err();
            assert!(matches!(error, StorageError::Decode { table: "pegout_payouts", .. }), "{error}");
        }
        // An unknown status byte.
        assert_eq!(PayoutStatus::from_u8(6), None);
        let mut status = Vec::new();
        6u8.encode(&mut status);
        assert!(PayoutStatus::decode(&mut status.as_slice()).is_err());
        for status in PayoutStatus::ALL {
            assert_eq!(PayoutStatus::from_u8(status as u8), Some(status));
            let mut out = Vec::new();
            status.encode(&mut out);
            assert_eq!(PayoutStatus::decode(&mut out.as_slice()).unwrap(), status);
        }
    }
}
