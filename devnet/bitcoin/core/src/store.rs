//! The data directory: an append-only block file, the list of invalidated blocks, the wallet, and the
//! mempool saved at shutdown.
//!
//! `blocks.dat` holds every accepted block as `[length: u32 LE][block]`, in acceptance order, so a
//! parent always precedes its children. On start the node replays it through full validation,
//! rebuilding the tree, the UTXO set and the undo data; a torn record at the end (a crash mid-append)
//! is cut off. Small files (`invalidated.txt`, `wallet.json`) are replaced atomically by writing a
//! temporary file and renaming it over the old one.
//!
//! `mempool.dat` is written in Bitcoin Core 25's format (`MEMPOOL_DUMP_VERSION_NO_XOR_KEY`), so either
//! node reads the other's: version `1` (u64), the count (u64), then per transaction its consensus
//! encoding, its entry time and its `prioritisetransaction` fee delta (i64 seconds and satoshis),
//! then the map of fee deltas and the set of unbroadcast txids. This node writes no deltas and an
//! empty unbroadcast set, and ignores both on reading.

use std::{
    fs::{self, File, OpenOptions},
    io::{Read, Write},
    path::{Path, PathBuf},
};

use bitcoin::{
    Block, BlockHash, Transaction, VarInt,
    consensus::{Decodable, Encodable, encode},
};

use crate::error::StoreError;

const BLOCKS: &str = "blocks.dat";
const INVALIDATED: &str = "invalidated.txt";
const MEMPOOL: &str = "mempool.dat";
/// Core's `MEMPOOL_DUMP_VERSION_NO_XOR_KEY`, the only version Core 25 writes and reads.
const MEMPOOL_VERSION: u64 = 1;

/// A mempool transaction as `mempool.dat` keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedTx {
    /// The transaction.
    pub tx: Transaction,
    /// When it entered the mempool, in UNIX seconds.
    pub time: u64,
}

/// The open data directory.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    blocks: File,
    size: u64,
}

/// What was stored before this start.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Blocks in acceptance order.
    pub blocks: Vec<Block>,
    /// Blocks `invalidateblock` marked and `reconsiderblock` did not clear.
    pub invalidated: Vec<BlockHash>,
}

impl Store {
    /// Opens (creating) `dir` and reads what it holds.
    pub fn open(dir: &Path) -> Result<(Self, Loaded), StoreError> {
        fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
        let path = dir.join(BLOCKS);
        let mut bytes = Vec::new();
        if path.exists() {
            File::open(&path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(StoreError::io(&path))?;
        }
        let mut loaded = Loaded::default();
        let mut offset = 0usize;
        while let Some(len_bytes) = bytes.get(offset..offset + 4) {
            let len = u32::from_le_bytes(len_bytes.try_into().unwrap_or_default()) as usize;
            let Some(record) = bytes.get(offset + 4..offset + 4 + len) else { break };
            loaded.blocks.push(encode::deserialize(record)?);
            offset += 4 + len;
        }
        let blocks =
            OpenOptions::new().create(true).append(true).open(&path).map_err(StoreError::io(&path))?;
        if offset < bytes.len() {
            tracing::warn!(target: "devnet::bitcoin", kept = offset, dropped = bytes.len() - offset, "cut a torn record off the block file");
            blocks.set_len(offset as u64).map_err(StoreError::io(&path))?;
        }
        if let Some(text) = read_optional(&dir.join(INVALIDATED))? {
            loaded.invalidated =
                String::from_utf8_lossy(&text).lines().filter_map(|line| line.trim().parse().ok()).collect();
        }
        Ok((Self { dir: dir.to_path_buf(), blocks, size: offset as u64 }, loaded))
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes in the block file (`size_on_disk`).
    pub const fn size_on_disk(&self) -> u64 {
        self.size
    }

    /// Appends `block` durably.
    pub fn append_block(&mut self, block: &Block) -> Result<(), StoreError> {
        let bytes = encode::serialize(block);
        let mut record = Vec::with_capacity(bytes.len() + 4);
        record.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
        record.extend_from_slice(&bytes);
        let path = self.dir.join(BLOCKS);
        self.blocks
            .write_all(&record)
            .and_then(|()| self.blocks.sync_data())
            .map_err(StoreError::io(path))?;
        self.size += record.len() as u64;
        Ok(())
    }

    /// Replaces the list of invalidated blocks.
    pub fn save_invalidated(&self, hashes: &[BlockHash]) -> Result<(), StoreError> {
        let text: String = hashes.iter().map(|hash| format!("{hash}\n")).collect();
        self.write_atomic(INVALIDATED, text.as_bytes())
    }

    /// Where the mempool is saved (`savemempool`'s `filename`).
    pub fn mempool_path(&self) -> PathBuf {
        self.dir.join(MEMPOOL)
    }

    /// Replaces `mempool.dat` with `txs`, which must be in dependency order (parents first).
    pub fn save_mempool(&self, txs: &[SavedTx]) -> Result<PathBuf, StoreError> {
        self.write_atomic(MEMPOOL, &encode_mempool(txs))?;
        Ok(self.mempool_path())
    }

    /// The transactions of `mempool.dat`, none when there is no such file.
    pub fn load_mempool(&self) -> Result<Vec<SavedTx>, StoreError> {
        match read_optional(&self.mempool_path())? {
            Some(bytes) => decode_mempool(&bytes),
            None => Ok(Vec::new()),
        }
    }

    /// Replaces the file `name` in the data directory with `bytes`, atomically.
    pub fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        write_atomic(&self.dir.join(name), bytes)
    }
}

/// Replaces `path` with `bytes`: write a temporary file, sync it, rename it over.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(StoreError::io(path))
}

/// `txs` in `mempool.dat`'s format.
pub fn encode_mempool(txs: &[SavedTx]) -> Vec<u8> {
    let mut bytes = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = write_mempool(&mut bytes, txs);
    bytes
}

fn write_mempool(out: &mut Vec<u8>, txs: &[SavedTx]) -> Result<(), bitcoin::io::Error> {
    MEMPOOL_VERSION.consensus_encode(out)?;
    (txs.len() as u64).consensus_encode(out)?;
    for saved in txs {
        saved.tx.consensus_encode(out)?;
        i64::try_from(saved.time).unwrap_or(i64::MAX).consensus_encode(out)?;
        0i64.consensus_encode(out)?; // fee delta
    }
    VarInt(0).consensus_encode(out)?; // fee deltas of transactions not in the pool
    VarInt(0).consensus_encode(out)?; // unbroadcast txids
    Ok(())
}

/// The transactions of a `mempool.dat` file. A file cut short or garbled is an error; what follows
/// the transactions (fee deltas, unbroadcast txids) is not read.
pub fn decode_mempool(bytes: &[u8]) -> Result<Vec<SavedTx>, StoreError> {
    let mut reader = bytes;
    let version = u64::consensus_decode(&mut reader)?;
    if version != MEMPOOL_VERSION {
        return Err(StoreError::MempoolVersion(version));
    }
    let count = u64::consensus_decode(&mut reader)?;
    // No capacity from the count: it comes from the file.
    let mut txs = Vec::new();
    for _ in 0..count {
        let tx = Transaction::consensus_decode(&mut reader)?;
        let time = u64::try_from(i64::consensus_decode(&mut reader)?).unwrap_or_default();
        let _fee_delta = i64::consensus_decode(&mut reader)?;
        txs.push(SavedTx { tx, time });
    }
    Ok(txs)
}

/// The contents of `path`, or `None` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(StoreError::Io { path: path.to_path_buf(), source: err }),
    }
}

#[cfg(test)]
mod tests {
    use bitcoin::{
        Amount, OutPoint, ScriptBuf, Sequence, TxIn, TxOut, Witness, absolute, hashes::Hash, transaction,
    };

    use super::*;

    fn tx(seed: u8, witness: bool) -> Transaction {
        Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint { txid: bitcoin::Txid::from_byte_array([seed; 32]), vout: 1 },
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: if witness { Witness::from_slice(&[[seed; 72]]) } else { Witness::new() },
            }],
            output: vec![TxOut { value: Amount::from_sat(1_000), script_pubkey: ScriptBuf::new() }],
        }
    }

    #[test]
    fn mempool_file_round_trips_in_cores_layout() {
        let txs =
            vec![SavedTx { tx: tx(1, true), time: 1_700_000_000 }, SavedTx { tx: tx(2, false), time: 7 }];
        let bytes = encode_mempool(&txs);
        assert_eq!(bytes.get(..16), Some(&[1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0][..]));
        // Empty fee-delta map and unbroadcast set close the file.
        assert_eq!(bytes.get(bytes.len() - 2..), Some(&[0, 0][..]));
        assert_eq!(decode_mempool(&bytes).unwrap(), txs);
        assert!(decode_mempool(&encode_mempool(&[])).unwrap().is_empty());
    }

    #[test]
    fn a_damaged_mempool_file_is_an_error_not_a_panic() {
        let bytes = encode_mempool(&[SavedTx { tx: tx(3, true), time: 9 }]);
        // Every cut inside the transaction records fails; the two trailing bytes are not read.
        for len in 0..bytes.len() - 2 {
            assert!(decode_mempool(bytes.get(..len).unwrap()).is_err(), "cut at {len}");
        }
        let mut future = bytes;
        future[0] = 2;
        assert!(matches!(decode_mempool(&future), Err(StoreError::MempoolVersion(2))));
        // A huge count with nothing behind it allocates nothing up front.
        let mut huge = vec![1, 0, 0, 0, 0, 0, 0, 0];
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode_mempool(&huge).is_err());
    }

    #[test]
    fn the_mempool_file_is_replaced_atomically() {
        let dir = std::env::temp_dir().join(format!("alys-btc-store-{}", std::process::id()));
        let (store, _) = Store::open(&dir).unwrap();
        assert!(store.load_mempool().unwrap().is_empty(), "no file, no transactions");
        let saved = [SavedTx { tx: tx(4, true), time: 1 }];
        let path = store.save_mempool(&saved).unwrap();
        assert_eq!(path, dir.join("mempool.dat"));
        assert!(!dir.join("mempool.tmp").exists());
        assert_eq!(store.load_mempool().unwrap(), saved);
        fs::remove_dir_all(&dir).unwrap();
    }
}
