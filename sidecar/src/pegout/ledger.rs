//! The durable ledger of burns: pending until final, released exactly once.

use std::path::Path;

use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_rlp::{RlpDecodable, RlpEncodable};
use alys_exex::Burn;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

const PENDING: TableDefinition<'_, &[u8; 40], &[u8]> = TableDefinition::new("pending_burns");
const RELEASED: TableDefinition<'_, &[u8; 40], &[u8]> = TableDefinition::new("released_burns");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const GETH_HEIGHT: &str = "geth_height";

/// A storage failure; the ledger is unchanged.
#[derive(Debug, thiserror::Error)]
#[error("pegout ledger: {0}")]
pub struct LedgerError(String);

macro_rules! ledger_err {
    ($($t:ty),*) => {$(
        impl From<$t> for LedgerError {
            fn from(e: $t) -> Self {
                Self(e.to_string())
            }
        }
    )*};
}
ledger_err!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

#[derive(RlpEncodable, RlpDecodable)]
struct Stored {
    block_number: u64,
    block_hash: B256,
    log_index: u64,
    tx_hash: B256,
    tx_index: u64,
    sender: Address,
    bitcoin_address: Bytes,
    value: U256,
}

fn key(burn: &Burn) -> [u8; 40] {
    let mut out = [0u8; 40];
    out[..32].copy_from_slice(burn.block_hash.as_slice());
    out[32..].copy_from_slice(&burn.log_index.to_be_bytes());
    out
}

fn encode(b: &Burn) -> Vec<u8> {
    alloy_rlp::encode(Stored {
        block_number: b.block_number,
        block_hash: b.block_hash,
        log_index: b.log_index,
        tx_hash: b.tx_hash,
        tx_index: b.tx_index,
        sender: b.sender,
        bitcoin_address: b.bitcoin_address.clone(),
        value: b.value,
    })
}

fn decode(mut bytes: &[u8]) -> Option<Burn> {
    let s = <Stored as alloy_rlp::Decodable>::decode(&mut bytes).ok()?;
    Some(Burn {
        block_number: s.block_number,
        block_hash: s.block_hash,
        log_index: s.log_index,
        tx_hash: s.tx_hash,
        tx_index: s.tx_index,
        sender: s.sender,
        bitcoin_address: s.bitcoin_address,
        value: s.value,
    })
}

/// Burns seen but not final (pending), and burns released to the bridge (each once, ever).
#[derive(Debug)]
pub struct PegoutLedger {
    db: Database,
}

impl PegoutLedger {
    /// Opens (or creates) the ledger at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LedgerError> {
        let db = Database::create(path)?;
        let tx = db.begin_write()?;
        tx.open_table(PENDING)?;
        tx.open_table(RELEASED)?;
        tx.open_table(META)?;
        tx.commit()?;
        Ok(Self { db })
    }

    /// Records burns seen in (not yet final) blocks; burns already released are ignored.
    pub fn add_pending(&self, burns: &[Burn]) -> Result<(), LedgerError> {
        let tx = self.db.begin_write()?;
        {
            let released = tx.open_table(RELEASED)?;
            let mut pending = tx.open_table(PENDING)?;
            for burn in burns {
                if released.get(&key(burn))?.is_none() {
                    pending.insert(&key(burn), encode(burn).as_slice())?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Drops pending burns of a reverted block (a released burn is final and cannot be retracted).
    pub fn retract(&self, burns: &[Burn]) -> Result<(), LedgerError> {
        let tx = self.db.begin_write()?;
        {
            let mut pending = tx.open_table(PENDING)?;
            for burn in burns {
                pending.remove(&key(burn))?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Releases every pending burn at or below `finalized`: they move to the released set in one
    /// transaction and are returned; a burn is returned by at most one call, ever.
    pub fn release(&self, finalized: u64) -> Result<Vec<Burn>, LedgerError> {
        let tx = self.db.begin_write()?;
        let mut out = Vec::new();
        {
            let mut pending = tx.open_table(PENDING)?;
            let mut released = tx.open_table(RELEASED)?;
            let candidates: Vec<([u8; 40], Vec<u8>)> = pending
                .iter()?
                .filter_map(|e| e.ok().map(|(k, v)| (*k.value(), v.value().to_vec())))
                .collect();
            for (k, bytes) in candidates {
                let Some(burn) = decode(&bytes) else { continue };
                if burn.block_number <= finalized {
                    pending.remove(&k)?;
                    released.insert(&k, bytes.as_slice())?;
                    out.push(burn);
                }
            }
        }
        tx.commit()?;
        out.sort_by_key(|b| (b.block_number, b.log_index));
        metrics::counter!("alys_pegout_burns_released_total").increment(out.len() as u64);
        Ok(out)
    }

    /// The geth path's step: records the burns of the finalized range up to `to`, advances the stored
    /// height, and releases them (or, when `release` is false because peg-outs are paused, keeps them
    /// pending for a later [`Self::release`]), in one transaction.
    pub fn ingest_finalized(&self, burns: &[Burn], to: u64, release: bool) -> Result<Vec<Burn>, LedgerError> {
        let tx = self.db.begin_write()?;
        let mut out = Vec::new();
        {
            let mut released = tx.open_table(RELEASED)?;
            let mut pending = tx.open_table(PENDING)?;
            for burn in burns {
                if released.get(&key(burn))?.is_none() {
                    if release {
                        released.insert(&key(burn), encode(burn).as_slice())?;
                        out.push(burn.clone());
                    } else {
                        pending.insert(&key(burn), encode(burn).as_slice())?;
                    }
                }
            }
            tx.open_table(META)?.insert(GETH_HEIGHT, to)?;
        }
        tx.commit()?;
        metrics::counter!("alys_pegout_burns_released_total").increment(out.len() as u64);
        Ok(out)
    }

    /// The last block the geth path has read (0 before any).
    pub fn geth_height(&self) -> Result<u64, LedgerError> {
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(META)?.get(GETH_HEIGHT)?.map_or(0, |v| v.value()))
    }

    /// Burns waiting for finality.
    pub fn pending(&self) -> Result<Vec<Burn>, LedgerError> {
        self.list(PENDING)
    }

    /// Burns released (final), oldest first.
    pub fn released(&self) -> Result<Vec<Burn>, LedgerError> {
        self.list(RELEASED)
    }

    fn list(&self, table: TableDefinition<'_, &[u8; 40], &[u8]>) -> Result<Vec<Burn>, LedgerError> {
        let tx = self.db.begin_read()?;
        let mut out: Vec<Burn> = tx
            .open_table(table)?
            .iter()?
            .filter_map(|e| e.ok().and_then(|(_, v)| decode(v.value())))
            .collect();
        out.sort_by_key(|b| (b.block_number, b.log_index));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn burn(block: u8, log_index: u64) -> Burn {
        Burn {
            block_number: u64::from(block),
            block_hash: B256::repeat_byte(block),
            log_index,
            tx_hash: B256::repeat_byte(0xee),
            tx_index: 0,
            sender: Address::repeat_byte(1),
            bitcoin_address: Bytes::from_static(b"bcrt1q"),
            value: U256::from(10u64),
        }
    }

    #[test]
    fn burns_are_released_once_when_final_and_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("alys-ledger-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pegouts.redb");
        {
            let ledger = PegoutLedger::open(&path).unwrap();
            ledger.add_pending(&[burn(1, 0), burn(2, 3), burn(3, 1)]).unwrap();
            assert_eq!(ledger.release(2).unwrap(), vec![burn(1, 0), burn(2, 3)]);
            assert!(ledger.release(2).unwrap().is_empty(), "released once");
            ledger.retract(&[burn(3, 1)]).unwrap();
            assert!(ledger.pending().unwrap().is_empty());
            // Seeing a released burn again (a replay) does not make it pending again.
            ledger.add_pending(&[burn(1, 0)]).unwrap();
            assert!(ledger.pending().unwrap().is_empty());
        }
        let ledger = PegoutLedger::open(&path).unwrap();
        assert_eq!(ledger.released().unwrap().len(), 2);
        assert_eq!(ledger.ingest_finalized(&[burn(1, 0), burn(4, 0)], 4, true).unwrap(), vec![burn(4, 0)]);
        assert_eq!(ledger.geth_height().unwrap(), 4);
        // Peg-outs paused: final burns are held pending, then released once after the resume.
        assert!(ledger.ingest_finalized(&[burn(5, 0), burn(4, 0)], 5, false).unwrap().is_empty());
        assert_eq!(ledger.geth_height().unwrap(), 5);
        assert_eq!(ledger.pending().unwrap(), vec![burn(5, 0)], "a released burn is not held again");
        assert_eq!(ledger.release(5).unwrap(), vec![burn(5, 0)]);
        assert!(ledger.release(5).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
