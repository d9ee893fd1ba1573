//! The peg-in tables: the Bitcoin blocks the node has followed, the deposits it saw in them, and the
//! outpoints consensus blocks minted.
//!
//! # Local observation and consensus state
//!
//! `bitcoin_blocks` and `pegin_deposits` are this node's view of its own Bitcoin node: which blocks it
//! walked (height → hash, so a reorg is noticed after a restart too) and which transactions in them are
//! deposits or look like failed ones (with the reason). A block and the deposits in it commit together,
//! so the follower's position never runs ahead of what it recorded.
//!
//! `pegin_minted` is consensus state: every outpoint a stored consensus block claims, keyed by the
//! outpoint and the claiming block, written in the same transaction as that block
//! ([`WriteTx::set_head`], [`WriteTx::put_block`]). Whether an outpoint is minted "on a chain" is
//! whether one of its claiming blocks is an ancestor of that chain's tip ([`PeginRead::minted_on`]), so
//! a block that loses an Alys reorg stops counting without anything being deleted. The canonical
//! entries are the federation's UTXOs from deposits ([`PeginRead::federation_utxos`]).
//!
//! `pegin_open` lists the deposits still to be claimed on the canonical chain, in Bitcoin order
//! (height ‖ txid): a deposit leaves it in the commit that makes its claiming block canonical and comes
//! back in the commit that makes that block leave the canonical chain.

use alloy_primitives::{Address, B256};
use alloy_rlp::{RlpDecodable, RlpEncodable};
use alys_primitives::{BlockRef, PegInClaim, SignedBlock, outpoint_key};
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::{ChainRead, StorageError, Tables, WriteTx};

const BITCOIN_BLOCKS: TableDefinition<'static, u64, &[u8; 32]> = TableDefinition::new("bitcoin_blocks");
const DEPOSITS: TableDefinition<'static, &[u8; 32], &[u8]> = TableDefinition::new("pegin_deposits");
const BY_HEIGHT: TableDefinition<'static, &[u8; 40], ()> = TableDefinition::new("pegin_by_height");
const OPEN: TableDefinition<'static, &[u8; 40], ()> = TableDefinition::new("pegin_open");
const MINTED: TableDefinition<'static, &[u8; 68], &[u8; 16]> = TableDefinition::new("pegin_minted");
const META: TableDefinition<'static, &str, u64> = TableDefinition::new("pegin_meta");

const NOTIFIED: &str = "notified_height";

/// How many followed Bitcoin blocks are kept below the tip: far deeper than any reorg the follower
/// must undo, small enough to stay a few hundred kilobytes.
pub const BITCOIN_BLOCKS_KEPT: u64 = 10_000;

pub(crate) fn create_tables(tx: &WriteTransaction) -> Result<(), StorageError> {
    tx.open_table(BITCOIN_BLOCKS)?;
    tx.open_table(DEPOSITS)?;
    tx.open_table(BY_HEIGHT)?;
    tx.open_table(OPEN)?;
    tx.open_table(MINTED)?;
    tx.open_table(META)?;
    Ok(())
}

/// One output of a deposit that pays a federation address.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct DepositOutput {
    /// The output index.
    pub vout: u32,
    /// Its value in satoshis.
    pub amount_sats: u64,
    /// The federation script it pays.
    pub script_pubkey: alloy_primitives::Bytes,
}

/// A transaction the follower saw that is, or tried to be, a deposit.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct DepositRecord {
    /// The transaction id (Bitcoin's internal byte order).
    pub txid: B256,
    /// The Bitcoin block it was seen in.
    pub bitcoin_block: B256,
    /// That block's height.
    pub bitcoin_height: u64,
    /// The outputs paying a known federation address, ascending by index.
    pub outputs: Vec<DepositOutput>,
    /// The EVM address its OP_RETURN names (zero when it names none).
    pub evm_address: Address,
    /// Why it will not be minted (a short code, see `alys_bridge::pegin::Rejection`), or empty.
    pub rejection: String,
    /// 1 when its Bitcoin block left the best chain after the deposit was minted (a reorg deeper than
    /// the confirmations required), else 0.
    pub reorged_out: u8,
    /// When it was first seen, unix seconds.
    pub seen_secs: u64,
}

impl DepositRecord {
    /// The sum of its federation outputs, in satoshis.
    pub fn amount_sats(&self) -> u64 {
        self.outputs.iter().fold(0u64, |sum, o| sum.saturating_add(o.amount_sats))
    }

    /// Whether it was rejected.
    pub fn is_rejected(&self) -> bool {
        !self.rejection.is_empty()
    }

    fn decode(bytes: &[u8]) -> Result<Self, StorageError> {
        let mut slice = bytes;
        let record = <Self as alloy_rlp::Decodable>::decode(&mut slice)
            .map_err(|source| StorageError::Decode { table: "pegin_deposits", source })?;
        if !slice.is_empty() {
            return Err(StorageError::Decode {
                table: "pegin_deposits",
                source: alloy_rlp::Error::UnexpectedLength,
            });
        }
        Ok(record)
    }
}

/// Where a consensus block minted an outpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Minted {
    /// The claiming block.
    pub block: BlockRef,
    /// The outpoint's value in satoshis.
    pub amount_sats: u64,
}

/// A federation UTXO that came from a deposit: minted on the canonical chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FederationUtxo {
    /// The deposit transaction id.
    pub txid: B256,
    /// The output index.
    pub vout: u32,
    /// Its value in satoshis.
    pub amount_sats: u64,
    /// The canonical block that minted it.
    pub minted_in: BlockRef,
}

fn height_key(height: u64, txid: &B256) -> [u8; 40] {
    let mut key = [0u8; 40];
    let (h, id) = key.split_at_mut(8);
    h.copy_from_slice(&height.to_be_bytes());
    id.copy_from_slice(txid.as_slice());
    key
}

fn split_height_key(key: &[u8; 40]) -> (u64, B256) {
    let (height, txid) = key.split_at(8);
    let mut h = [0u8; 8];
    h.copy_from_slice(height);
    (u64::from_be_bytes(h), B256::from_slice(txid))
}

fn minted_key(outpoint: &[u8; 36], block: &B256) -> [u8; 68] {
    let mut key = [0u8; 68];
    let (o, b) = key.split_at_mut(36);
    o.copy_from_slice(outpoint);
    b.copy_from_slice(block.as_slice());
    key
}

fn minted_value(height: u64, amount: u64) -> [u8; 16] {
    let mut value = [0u8; 16];
    let (h, a) = value.split_at_mut(8);
    h.copy_from_slice(&height.to_be_bytes());
    a.copy_from_slice(&amount.to_be_bytes());
    value
}

fn split_minted(key: &[u8; 68], value: &[u8; 16]) -> (B256, u32, Minted) {
    let (outpoint, block) = key.split_at(36);
    let (txid, vout) = outpoint.split_at(32);
    let mut index = [0u8; 4];
    index.copy_from_slice(vout);
    let (height, amount) = value.split_at(8);
    let (mut h, mut a) = ([0u8; 8], [0u8; 8]);
    h.copy_from_slice(height);
    a.copy_from_slice(amount);
    let minted = Minted {
        block: BlockRef { height: u64::from_be_bytes(h), hash: B256::from_slice(block) },
        amount_sats: u64::from_be_bytes(a),
    };
    (B256::from_slice(txid), u32::from_be_bytes(index), minted)
}

/// Reading the peg-in tables, in a snapshot or inside the write transaction.
pub trait PeginRead: Tables + ChainRead {
    /// The highest Bitcoin block the follower recorded.
    fn bitcoin_tip(&self) -> Result<Option<(u64, B256)>, StorageError> {
        let blocks = self.open(BITCOIN_BLOCKS)?;
        let last = blocks.last()?;
        Ok(last.map(|(h, hash)| (h.value(), B256::from(*hash.value()))))
    }

    /// The Bitcoin block the follower recorded at `height`.
    fn bitcoin_block_at(&self, height: u64) -> Result<Option<B256>, StorageError> {
        Ok(self.open(BITCOIN_BLOCKS)?.get(height)?.map(|v| B256::from(*v.value())))
    }

    /// A deposit by transaction id.
    fn deposit(&self, txid: &B256) -> Result<Option<DepositRecord>, StorageError> {
        let deposits = self.open(DEPOSITS)?;
        deposits.get(&txid.0)?.map(|v| DepositRecord::decode(v.value())).transpose()
    }

    /// Deposits still to be claimed on the canonical chain (not rejected), oldest first, at most `limit`.
    fn open_deposits(&self, limit: usize) -> Result<Vec<DepositRecord>, StorageError> {
        let open = self.open(OPEN)?;
        let deposits = self.open(DEPOSITS)?;
        let mut out = Vec::new();
        for entry in open.iter()? {
            if out.len() >= limit {
                break;
            }
            let (key, _) = entry?;
            let (_, txid) = split_height_key(key.value());
            if let Some(bytes) = deposits.get(&txid.0)? {
                out.push(DepositRecord::decode(bytes.value())?);
            }
        }
        Ok(out)
    }

    /// Every recorded deposit, newest Bitcoin block first, skipping `offset`, at most `limit`.
    fn deposits_newest_first(&self, offset: usize, limit: usize) -> Result<Vec<DepositRecord>, StorageError> {
        let index = self.open(BY_HEIGHT)?;
        let deposits = self.open(DEPOSITS)?;
        let mut out = Vec::new();
        for entry in index.iter()?.rev().skip(offset).take(limit) {
            let (key, _) = entry?;
            let (_, txid) = split_height_key(key.value());
            if let Some(bytes) = deposits.get(&txid.0)? {
                out.push(DepositRecord::decode(bytes.value())?);
            }
        }
        Ok(out)
    }

    /// How many deposits are recorded.
    fn deposit_count(&self) -> Result<u64, StorageError> {
        use redb::ReadableTableMetadata;
        Ok(self.open(DEPOSITS)?.len()?)
    }

    /// Every block that claims `(txid, vout)`, on any branch.
    fn claims_of(&self, txid: &B256, vout: u32) -> Result<Vec<Minted>, StorageError> {
        let outpoint = outpoint_key(txid, vout);
        let minted = self.open(MINTED)?;
        let (low, high) =
            (minted_key(&outpoint, &B256::ZERO), minted_key(&outpoint, &B256::repeat_byte(0xff)));
        let mut out = Vec::new();
        for entry in minted.range::<&[u8; 68]>(&low..=&high)? {
            let (key, value) = entry?;
            out.push(split_minted(key.value(), value.value()).2);
        }
        Ok(out)
    }

    /// The block on the chain ending at `tip` that minted `(txid, vout)`, if one did.
    fn minted_on(&self, txid: &B256, vout: u32, tip: BlockRef) -> Result<Option<Minted>, StorageError> {
        for minted in self.claims_of(txid, vout)? {
            if self.is_ancestor(minted.block, tip)? {
                return Ok(Some(minted));
            }
        }
        Ok(None)
    }

    /// The canonical block that minted a deposit (any of its outputs), if one did.
    fn minted_canonical(&self, txid: &B256) -> Result<Option<BlockRef>, StorageError> {
        let minted = self.open(MINTED)?;
        let mut low = [0u8; 68];
        let mut high = [0xffu8; 68];
        low[..32].copy_from_slice(txid.as_slice());
        high[..32].copy_from_slice(txid.as_slice());
        for entry in minted.range::<&[u8; 68]>(&low..=&high)? {
            let (key, value) = entry?;
            let (_, _, minted) = split_minted(key.value(), value.value());
            if self.canonical_hash(minted.block.height)? == Some(minted.block.hash) {
                return Ok(Some(minted.block));
            }
        }
        Ok(None)
    }

    /// The federation's UTXOs from deposits: every outpoint minted on the canonical chain.
    fn federation_utxos(&self) -> Result<Vec<FederationUtxo>, StorageError> {
        let minted = self.open(MINTED)?;
        let mut out = Vec::new();
        for entry in minted.iter()? {
            let (key, value) = entry?;
            let (txid, vout, minted) = split_minted(key.value(), value.value());
            if self.canonical_hash(minted.block.height)? == Some(minted.block.hash) {
                out.push(FederationUtxo {
                    txid,
                    vout,
                    amount_sats: minted.amount_sats,
                    minted_in: minted.block,
                });
            }
        }
        Ok(out)
    }

    /// The highest consensus height whose peg-ins were announced to governance.
    fn pegin_notified_height(&self) -> Result<u64, StorageError> {
        Ok(self.open(META)?.get(NOTIFIED)?.map_or(0, |v| v.value()))
    }
}

impl<T: Tables + ChainRead> PeginRead for T {}

impl WriteTx {
    /// Records the Bitcoin block the follower reached and the deposits seen in it, in one commit with
    /// whatever else the caller writes. Blocks more than [`BITCOIN_BLOCKS_KEPT`] below are forgotten.
    pub fn connect_bitcoin_block(
        &self,
        height: u64,
        hash: B256,
        deposits: &[DepositRecord],
    ) -> Result<(), StorageError> {
        let mut blocks = self.table(BITCOIN_BLOCKS)?;
        blocks.insert(height, &hash.0)?;
        if let Some(floor) = height.checked_sub(BITCOIN_BLOCKS_KEPT) {
            let old: Vec<u64> =
                blocks.range(..floor)?.map(|e| e.map(|(k, _)| k.value())).collect::<Result<_, _>>()?;
            for h in old {
                blocks.remove(h)?;
            }
        }
        drop(blocks);
        for deposit in deposits {
            let minted = self.minted_canonical(&deposit.txid)?.is_some();
            // Seen before in a block that left the best chain (kept because it was minted): its old
            // index entries go, so it is listed once, at the height it has now.
            if let Some(old) = self.deposit(&deposit.txid)?
                && old.bitcoin_height != deposit.bitcoin_height
            {
                let old_key = height_key(old.bitcoin_height, &deposit.txid);
                self.table(BY_HEIGHT)?.remove(&old_key)?;
                self.table(OPEN)?.remove(&old_key)?;
            }
            let mut table = self.table(DEPOSITS)?;
            let mut index = self.table(BY_HEIGHT)?;
            let mut open = self.table(OPEN)?;
            let key = height_key(deposit.bitcoin_height, &deposit.txid);
            table.insert(&deposit.txid.0, alloy_rlp::encode(deposit).as_slice())?;
            index.insert(&key, ())?;
            // A deposit this node's chain minted before its follower got here (imported claims).
            if !deposit.is_rejected() && !minted {
                open.insert(&key, ())?;
            }
        }
        Ok(())
    }

    /// Forgets the followed Bitcoin block at `height` (it left the best chain). Deposits seen only in it
    /// are forgotten too, unless a canonical consensus block minted them: those stay, marked
    /// `reorged_out`, and are returned (a reorg deeper than the confirmations required: an alert).
    pub fn disconnect_bitcoin_block(&self, height: u64) -> Result<Vec<DepositRecord>, StorageError> {
        let Some(hash) = self.table(BITCOIN_BLOCKS)?.remove(height)?.map(|v| B256::from(*v.value())) else {
            return Ok(Vec::new());
        };
        let low = height_key(height, &B256::ZERO);
        let high = height_key(height, &B256::repeat_byte(0xff));
        let keys: Vec<[u8; 40]> = self
            .table(BY_HEIGHT)?
            .range::<&[u8; 40]>(&low..=&high)?
            .map(|e| e.map(|(k, _)| *k.value()))
            .collect::<Result<_, _>>()?;
        let mut reorged = Vec::new();
        for key in keys {
            let (_, txid) = split_height_key(&key);
            let Some(mut record) = self.deposit(&txid)? else { continue };
            if record.bitcoin_block != hash {
                continue;
            }
            if self.minted_canonical(&txid)?.is_some() {
                record.reorged_out = 1;
                self.table(DEPOSITS)?.insert(&txid.0, alloy_rlp::encode(&record).as_slice())?;
                reorged.push(record);
            } else {
                self.table(DEPOSITS)?.remove(&txid.0)?;
                self.table(BY_HEIGHT)?.remove(&key)?;
                self.table(OPEN)?.remove(&key)?;
            }
        }
        Ok(reorged)
    }

    /// Marks a deposit rejected with `reason`: it will not be claimed.
    pub fn reject_deposit(&self, txid: &B256, reason: &str) -> Result<(), StorageError> {
        let Some(mut record) = self.deposit(txid)? else { return Ok(()) };
        record.rejection = reason.to_owned();
        self.table(DEPOSITS)?.insert(&txid.0, alloy_rlp::encode(&record).as_slice())?;
        self.table(OPEN)?.remove(&height_key(record.bitcoin_height, txid))?;
        Ok(())
    }

    /// Records that peg-ins up to consensus height `height` were announced to governance.
    pub fn set_pegin_notified_height(&self, height: u64) -> Result<(), StorageError> {
        self.table(META)?.insert(NOTIFIED, height)?;
        Ok(())
    }

    /// Writes the outpoints `block` claims into the minted set (any branch).
    pub(crate) fn record_claims(
        &self,
        hash: &B256,
        height: u64,
        claims: &[PegInClaim],
    ) -> Result<(), StorageError> {
        if claims.is_empty() {
            return Ok(());
        }
        let mut minted = self.table(MINTED)?;
        for claim in claims {
            for output in &claim.outputs {
                let key = minted_key(&outpoint_key(&claim.txid, output.vout), hash);
                minted.insert(&key, &minted_value(height, output.amount_sats))?;
            }
        }
        Ok(())
    }

    /// The canonical chain changed: the claims of `joined` blocks leave the open list, those of `left`
    /// blocks return to it (when the deposit is still recorded and not rejected).
    pub(crate) fn reopen_claims(
        &self,
        joined: &[SignedBlock],
        left: &[SignedBlock],
    ) -> Result<(), StorageError> {
        let mut open = self.table(OPEN)?;
        let deposits = self.table(DEPOSITS)?;
        for block in left {
            for claim in &block.header.pegins {
                if let Some(bytes) = deposits.get(&claim.txid.0)? {
                    let record = DepositRecord::decode(bytes.value())?;
                    // A deposit whose Bitcoin block left the best chain is not claimable again.
                    if !record.is_rejected() && record.reorged_out == 0 {
                        open.insert(&height_key(record.bitcoin_height, &claim.txid), ())?;
                    }
                }
            }
        }
        for block in joined {
            for claim in &block.header.pegins {
                if let Some(bytes) = deposits.get(&claim.txid.0)? {
                    let record = DepositRecord::decode(bytes.value())?;
                    open.remove(&height_key(record.bitcoin_height, &claim.txid))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]
    use super::*;
    use crate::{ChainRead, Storage};
    use alloy_primitives::Bytes;
    use alys_primitives::{Approvals, ConsensusHeader, PegInOutput};

    fn record(n: u8, height: u64, block: B256) -> DepositRecord {
        DepositRecord {
            txid: B256::repeat_byte(n),
            bitcoin_block: block,
            bitcoin_height: height,
            outputs: vec![DepositOutput {
                vout: 0,
                amount_sats: 1_000 * u64::from(n),
                script_pubkey: Bytes::from_static(&[0x00, 0x20, 0x07]),
            }],
            evm_address: Address::repeat_byte(n),
            rejection: String::new(),
            reorged_out: 0,
            seen_secs: 1,
        }
    }

    fn claim(record: &DepositRecord) -> PegInClaim {
        PegInClaim {
            txid: record.txid,
            bitcoin_block: record.bitcoin_block,
            outputs: vec![PegInOutput {
                vout: 0,
                amount_sats: record.amount_sats(),
                script_pubkey: Default::default(),
            }],
            amount_sats: record.amount_sats(),
            evm_address: record.evm_address,
        }
    }

    fn block(parent: B256, height: u64, salt: u64, pegins: Vec<PegInClaim>) -> SignedBlock {
        SignedBlock {
            header: ConsensusHeader {
                parent_hash: parent,
                parent_seal: Default::default(),
                height,
                slot: height * 1_000 + salt,
                author: 0,
                execution_block_hash: B256::with_last_byte(salt as u8),
                pegins,
                auxpow: Bytes::new(),
                pegout: None,
            },
            execution_block: Bytes::new(),
            execution_requests: vec![],
            author_signature: Bytes::new(),
            approvals: Approvals { signers: Bytes::new(), signature: Bytes::new() },
        }
    }

    fn write<T>(storage: &Storage, f: impl FnOnce(&WriteTx) -> Result<T, StorageError>) -> T {
        let tx = storage.write().unwrap();
        let out = f(&tx).unwrap();
        tx.commit().unwrap();
        out
    }

    fn hash(height: u64) -> B256 {
        B256::left_padding_from(&height.to_be_bytes())
    }

    fn open(storage: &Storage) -> Vec<B256> {
        storage.read().unwrap().open_deposits(100).unwrap().into_iter().map(|d| d.txid).collect()
    }

    #[test]
    fn followed_blocks_below_the_kept_window_are_forgotten_but_not_their_deposits() {
        let storage = Storage::in_memory().unwrap();
        let early = record(1, 0, hash(0));
        write(&storage, |tx| tx.connect_bitcoin_block(0, hash(0), std::slice::from_ref(&early)));
        write(&storage, |tx| tx.connect_bitcoin_block(1, hash(1), &[]));
        let tip = BITCOIN_BLOCKS_KEPT + 1;
        write(&storage, |tx| tx.connect_bitcoin_block(tip, hash(tip), &[]));
        let read = storage.read().unwrap();
        assert_eq!(read.bitcoin_tip().unwrap(), Some((tip, hash(tip))));
        assert_eq!(read.bitcoin_block_at(0).unwrap(), None);
        assert_eq!(read.bitcoin_block_at(1).unwrap(), Some(hash(1)));
        assert_eq!(read.deposit(&early.txid).unwrap(), Some(early));
    }

    #[test]
    fn a_deposit_minted_before_the_follower_saw_it_is_not_opened() {
        let storage = Storage::in_memory().unwrap();
        let (imported, forked) = (record(1, 100, hash(100)), record(2, 100, hash(100)));
        // The chain imported a block claiming `imported`; a fork block (not canonical) claims `forked`.
        let b1 = write(&storage, |tx| tx.set_head(&block(B256::ZERO, 1, 0, vec![claim(&imported)])));
        write(&storage, |tx| tx.put_block(&block(B256::ZERO, 1, 1, vec![claim(&forked)])));
        write(&storage, |tx| tx.connect_bitcoin_block(100, hash(100), &[imported.clone(), forked.clone()]));
        assert_eq!(open(&storage), vec![forked.txid]);
        let read = storage.read().unwrap();
        assert_eq!(read.minted_canonical(&imported.txid).unwrap(), Some(b1));
        assert_eq!(read.minted_canonical(&forked.txid).unwrap(), None);
        assert_eq!(read.claims_of(&forked.txid, 0).unwrap().len(), 1);
    }

    #[test]
    fn deposits_are_listed_newest_first_and_a_rejection_closes_one_for_good() {
        let storage = Storage::in_memory().unwrap();
        let (a, b, c) = (record(1, 100, hash(100)), record(2, 100, hash(100)), record(3, 101, hash(101)));
        write(&storage, |tx| tx.connect_bitcoin_block(100, hash(100), &[a.clone(), b.clone()]));
        write(&storage, |tx| tx.connect_bitcoin_block(101, hash(101), std::slice::from_ref(&c)));
        let read = storage.read().unwrap();
        let listed = |offset, limit| -> Vec<B256> {
            read.deposits_newest_first(offset, limit).unwrap().into_iter().map(|d| d.txid).collect()
        };
        assert_eq!(listed(0, 10), vec![c.txid, b.txid, a.txid]);
        assert_eq!(listed(1, 1), vec![b.txid]);
        assert_eq!(read.deposit_count().unwrap(), 3);
        assert_eq!(read.open_deposits(2).unwrap().len(), 2, "at most the limit");
        drop(read);

        write(&storage, |tx| tx.reject_deposit(&a.txid, "below_minimum"));
        write(&storage, |tx| tx.reject_deposit(&B256::repeat_byte(9), "below_minimum"));
        assert_eq!(open(&storage), vec![b.txid, c.txid]);
        let rejected = storage.read().unwrap().deposit(&a.txid).unwrap().unwrap();
        assert!(rejected.is_rejected());
        // A claim of it that leaves the canonical chain does not reopen it.
        let b1 = write(&storage, |tx| tx.set_head(&block(B256::ZERO, 1, 0, vec![claim(&a)])));
        write(&storage, |tx| tx.set_head(&block(B256::ZERO, 1, 1, vec![])));
        assert_ne!(storage.read().unwrap().head().unwrap(), Some(b1));
        assert_eq!(open(&storage), vec![b.txid, c.txid]);
    }

    #[test]
    fn the_notified_height_is_kept() {
        let storage = Storage::in_memory().unwrap();
        assert_eq!(storage.read().unwrap().pegin_notified_height().unwrap(), 0);
        write(&storage, |tx| tx.set_pegin_notified_height(42));
        assert_eq!(storage.read().unwrap().pegin_notified_height().unwrap(), 42);
    }

    #[test]
    fn a_minted_deposit_mined_again_at_another_height_is_listed_once() {
        let storage = Storage::in_memory().unwrap();
        let first = record(1, 100, hash(100));
        write(&storage, |tx| tx.connect_bitcoin_block(100, hash(100), std::slice::from_ref(&first)));
        write(&storage, |tx| tx.set_head(&block(B256::ZERO, 1, 0, vec![claim(&first)])));
        assert_eq!(write(&storage, |tx| tx.disconnect_bitcoin_block(100)).len(), 1);
        let again = DepositRecord { bitcoin_height: 101, bitcoin_block: hash(101), ..first };
        write(&storage, |tx| tx.connect_bitcoin_block(100, B256::repeat_byte(0xaa), &[]));
        write(&storage, |tx| tx.connect_bitcoin_block(101, hash(101), std::slice::from_ref(&again)));
        let listed = storage.read().unwrap().deposits_newest_first(0, 10).unwrap();
        assert_eq!(listed, vec![again]);
    }
}
