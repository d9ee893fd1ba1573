//! The peg-out ledger: burns seen on the bridge contract, pending until their block is final, then
//! released, each exactly once, ever (DESIGN invariant 3); and where the burn sources stand.

use alys_burns::Burn;
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::{StorageError, Tables, WriteTx};

const PENDING: TableDefinition<'static, &[u8; 40], &[u8]> = TableDefinition::new("pending_burns");
const RELEASED: TableDefinition<'static, &[u8; 40], &[u8]> = TableDefinition::new("released_burns");
const META: TableDefinition<'static, &str, u64> = TableDefinition::new("pegout_meta");

const GETH_HEIGHT: &str = "geth_height";
const BURN_CURSOR: &str = "burn_cursor";

pub(crate) fn create_tables(tx: &WriteTransaction) -> Result<(), StorageError> {
    tx.open_table(PENDING)?;
    tx.open_table(RELEASED)?;
    tx.open_table(META)?;
    Ok(())
}

fn decode(table: &'static str, bytes: &[u8]) -> Result<Burn, StorageError> {
    Burn::decode(bytes).map_err(|source| StorageError::Decode { table, source })
}

fn list(
    table: &impl ReadableTable<&'static [u8; 40], &'static [u8]>,
    name: &'static str,
) -> Result<Vec<Burn>, StorageError> {
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (_, value) = entry?;
        out.push(decode(name, value.value())?);
    }
    out.sort_by_key(|b| (b.block_number, b.log_index));
    Ok(out)
}

/// Reading the peg-out ledger.
pub trait PegoutRead: Tables {
    /// Burns waiting for finality, in chain order.
    fn pending_burns(&self) -> Result<Vec<Burn>, StorageError> {
        list(&self.open(PENDING)?, "pending_burns")
    }

    /// Burns released (final), in chain order.
    fn released_burns(&self) -> Result<Vec<Burn>, StorageError> {
        list(&self.open(RELEASED)?, "released_burns")
    }

    /// The last block the geth path has read (0 before any).
    fn geth_height(&self) -> Result<u64, StorageError> {
        Ok(self.open(META)?.get(GETH_HEIGHT)?.map_or(0, |v| v.value()))
    }

    /// The last burn-feed cursor whose event is recorded here (0 before any).
    fn burn_cursor(&self) -> Result<u64, StorageError> {
        Ok(self.open(META)?.get(BURN_CURSOR)?.map_or(0, |v| v.value()))
    }
}

impl<T: Tables> PegoutRead for T {}

impl WriteTx {
    /// Records burns seen in (not yet final) blocks; burns already released are ignored.
    pub fn add_pending_burns(&self, burns: &[Burn]) -> Result<(), StorageError> {
        let released = self.table(RELEASED)?;
        let mut pending = self.table(PENDING)?;
        for burn in burns {
            let key = burn.key().to_bytes();
            if released.get(&key)?.is_none() {
                pending.insert(&key, burn.encoded().as_slice())?;
            }
        }
        Ok(())
    }

    /// Drops pending burns of a reverted block (a released burn is final and cannot be retracted).
    pub fn retract_burns(&self, burns: &[Burn]) -> Result<(), StorageError> {
        let mut pending = self.table(PENDING)?;
        for burn in burns {
            pending.remove(&burn.key().to_bytes())?;
        }
        Ok(())
    }

    /// Releases every pending burn at or below `finalized`: each moves to the released set and is
    /// returned, in chain order; a burn is returned by at most one call, ever.
    pub fn release_burns(&self, finalized: u64) -> Result<Vec<Burn>, StorageError> {
        let mut pending = self.table(PENDING)?;
        let mut released = self.table(RELEASED)?;
        let mut out = Vec::new();
        for burn in list(&pending, "pending_burns")? {
            if burn.block_number <= finalized {
                let key = burn.key().to_bytes();
                pending.remove(&key)?;
                released.insert(&key, burn.encoded().as_slice())?;
                out.push(burn);
            }
        }
        Ok(out)
    }

    /// The geth path's step: records the burns of the finalized range up to `to` and advances the
    /// stored height; releases them, or, when `release` is false because peg-outs are paused, keeps them
    /// pending for a later [`Self::release_burns`]. Returns the burns released.
    pub fn ingest_final_burns(
        &self,
        burns: &[Burn],
        to: u64,
        release: bool,
    ) -> Result<Vec<Burn>, StorageError> {
        let mut released = self.table(RELEASED)?;
        let mut pending = self.table(PENDING)?;
        let mut out = Vec::new();
        for burn in burns {
            let key = burn.key().to_bytes();
            if released.get(&key)?.is_some() {
                continue;
            }
            if release {
                released.insert(&key, burn.encoded().as_slice())?;
                out.push(burn.clone());
            } else {
                pending.insert(&key, burn.encoded().as_slice())?;
            }
        }
        self.table(META)?.insert(GETH_HEIGHT, to)?;
        Ok(out)
    }

    /// Records the burn-feed cursor whose event this transaction records.
    pub fn set_burn_cursor(&self, cursor: u64) -> Result<(), StorageError> {
        self.table(META)?.insert(BURN_CURSOR, cursor)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use alloy_primitives::{Address, B256, Bytes, U256};

    use super::*;
    use crate::Storage;

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

    fn write<T>(store: &Storage, f: impl FnOnce(&WriteTx) -> Result<T, StorageError>) -> T {
        let tx = store.write().unwrap();
        let out = f(&tx).unwrap();
        tx.commit().unwrap();
        out
    }

    #[test]
    fn burns_are_released_once_when_final_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alys.redb");
        {
            let store = Storage::open(&path).unwrap();
            write(&store, |tx| tx.add_pending_burns(&[burn(1, 0), burn(2, 3), burn(3, 1)]));
            assert_eq!(write(&store, |tx| tx.release_burns(2)), vec![burn(1, 0), burn(2, 3)]);
            assert!(write(&store, |tx| tx.release_burns(2)).is_empty(), "released once");
            write(&store, |tx| tx.retract_burns(&[burn(3, 1)]));
            assert!(store.read().unwrap().pending_burns().unwrap().is_empty());
            // Seeing a released burn again (a replay) does not make it pending again.
            write(&store, |tx| tx.add_pending_burns(&[burn(1, 0)]));
            assert!(store.read().unwrap().pending_burns().unwrap().is_empty());
        }
        let store = Storage::open(&path).unwrap();
        assert_eq!(store.read().unwrap().released_burns().unwrap().len(), 2);
        assert_eq!(
            write(&store, |tx| tx.ingest_final_burns(&[burn(1, 0), burn(4, 0)], 4, true)),
            vec![burn(4, 0)]
        );
        assert_eq!(store.read().unwrap().geth_height().unwrap(), 4);
        // Peg-outs paused: final burns are held pending, then released once after the resume.
        assert!(write(&store, |tx| tx.ingest_final_burns(&[burn(5, 0), burn(4, 0)], 5, false)).is_empty());
        assert_eq!(store.read().unwrap().geth_height().unwrap(), 5);
        assert_eq!(
            store.read().unwrap().pending_burns().unwrap(),
            vec![burn(5, 0)],
            "a released burn is not held again"
        );
        assert_eq!(write(&store, |tx| tx.release_burns(5)), vec![burn(5, 0)]);
        assert!(write(&store, |tx| tx.release_burns(5)).is_empty());
    }

    #[test]
    fn the_feed_cursor_commits_with_the_burn_it_announced() {
        let store = Storage::in_memory().unwrap();
        {
            let tx = store.write().unwrap();
            tx.add_pending_burns(&[burn(1, 0)]).unwrap();
            tx.set_burn_cursor(7).unwrap();
        }
        let read = store.read().unwrap();
        assert_eq!(read.burn_cursor().unwrap(), 0, "an uncommitted write moves neither");
        assert!(read.pending_burns().unwrap().is_empty());
        drop(read);
        write(&store, |tx| {
            tx.add_pending_burns(&[burn(1, 0)])?;
            tx.set_burn_cursor(7)
        });
        let read = store.read().unwrap();
        assert_eq!(read.burn_cursor().unwrap(), 7);
        assert_eq!(read.pending_burns().unwrap(), vec![burn(1, 0)]);
    }
}
