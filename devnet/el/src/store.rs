//! Persistence in redb: blocks, the canonical index and the forkchoice.
//!
//! Each new block is written in its own write transaction, and each forkchoice change (canonical index
//! rewrite plus head, safe and finalized) in one more, so a crash leaves either the old or the new facts,
//! never a mix. State is not stored: on open the engine re-executes the stored blocks from genesis, which
//! is fast enough for devnets and keeps the store trivially consistent.

use std::path::Path;

use alloy_consensus::{Block, TxEnvelope};
use alloy_primitives::B256;
use alloy_rlp::{Decodable, Encodable};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

const BLOCKS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("blocks");
const CANONICAL: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("canonical");
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");

/// The store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb reported an error.
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    /// A stored value does not decode.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

fn db_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Db(e.into())
}

/// The forkchoice as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StoredForkchoice {
    pub(crate) head: B256,
    pub(crate) safe: B256,
    pub(crate) finalized: B256,
}

/// Everything a store holds, as read on open.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub(crate) genesis: Option<B256>,
    pub(crate) blocks: Vec<Block<TxEnvelope>>,
    pub(crate) forkchoice: Option<StoredForkchoice>,
}

/// The engine's redb database.
#[derive(Debug)]
pub(crate) struct Store {
    db: Database,
}

impl Store {
    /// Opens (or creates) `engine.redb` in `datadir`.
    pub(crate) fn open(datadir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(datadir).map_err(|e| StoreError::Db(redb::Error::Io(e)))?;
        let db = Database::create(datadir.join("engine.redb")).map_err(db_err)?;
        let tx = db.begin_write().map_err(db_err)?;
        tx.open_table(BLOCKS).map_err(db_err)?;
        tx.open_table(CANONICAL).map_err(db_err)?;
        tx.open_table(META).map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok(Self { db })
    }

    /// Reads the whole store.
    pub(crate) fn load(&self) -> Result<Loaded, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let meta = tx.open_table(META).map_err(db_err)?;
        let hash = |key: &str| -> Result<Option<B256>, StoreError> {
            match meta.get(key).map_err(db_err)? {
                Some(v) => {
                    B256::try_from(v.value()).map(Some).map_err(|e| StoreError::Corrupt(e.to_string()))
                }
                None => Ok(None),
            }
        };
        let genesis = hash("genesis")?;
        let forkchoice = match (hash("head")?, hash("safe")?, hash("finalized")?) {
            (Some(head), Some(safe), Some(finalized)) => Some(StoredForkchoice { head, safe, finalized }),
            _ => None,
        };
        let table = tx.open_table(BLOCKS).map_err(db_err)?;
        let mut blocks = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (_, value) = entry.map_err(db_err)?;
            let mut bytes = value.value();
            let block =
                Block::<TxEnvelope>::decode(&mut bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            blocks.push(block);
        }
        blocks.sort_by_key(|b| b.header.number);
        Ok(Loaded { genesis, blocks, forkchoice })
    }

    /// Records the genesis hash the store belongs to.
    pub(crate) fn set_genesis(&self, genesis: B256) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        tx.open_table(META).map_err(db_err)?.insert("genesis", genesis.as_slice()).map_err(db_err)?;
        tx.commit().map_err(db_err)
    }

    /// Stores a validated block.
    pub(crate) fn insert_block(&self, hash: B256, block: &Block<TxEnvelope>) -> Result<(), StoreError> {
        let mut buf = Vec::with_capacity(block.length());
        block.encode(&mut buf);
        let tx = self.db.begin_write().map_err(db_err)?;
        tx.open_table(BLOCKS).map_err(db_err)?.insert(hash.as_slice(), buf.as_slice()).map_err(db_err)?;
        tx.commit().map_err(db_err)
    }

    /// Rewrites the canonical index from `first` on and the forkchoice, in one transaction.
    pub(crate) fn set_forkchoice(
        &self,
        first: u64,
        canonical: &[B256],
        old_len: u64,
        forkchoice: StoredForkchoice,
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = tx.open_table(CANONICAL).map_err(db_err)?;
            let new_end = first + canonical.len() as u64;
            for number in new_end..old_len.max(new_end) {
                table.remove(number).map_err(db_err)?;
            }
            for (number, hash) in (first..).zip(canonical) {
                table.insert(number, hash.as_slice()).map_err(db_err)?;
            }
            let mut meta = tx.open_table(META).map_err(db_err)?;
            meta.insert("head", forkchoice.head.as_slice()).map_err(db_err)?;
            meta.insert("safe", forkchoice.safe.as_slice()).map_err(db_err)?;
            meta.insert("finalized", forkchoice.finalized.as_slice()).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }
}
