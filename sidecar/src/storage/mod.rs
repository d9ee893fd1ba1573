//! The sidecar's durable store (redb): consensus blocks by hash and by height, head and finalized.
//!
//! Every change that must survive a crash is one write transaction together with the fact it depends on:
//! a new head is written with its block and the canonical index rewrite; nothing below the finalized block
//! can be reverted. redb is ACID, so a `kill -9` at any point leaves either the old or the new state.

use std::path::Path;

use alloy_primitives::B256;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::chain::SignedBlock;

const BLOCKS: TableDefinition<'_, &[u8; 32], &[u8]> = TableDefinition::new("blocks");
const CANONICAL: TableDefinition<'_, u64, &[u8; 32]> = TableDefinition::new("canonical");
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");

const HEAD: &str = "head";
const FINALIZED: &str = "finalized";

/// A storage failure. The store's contents are unchanged when a write fails.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb failed (I/O, corruption, or a transaction error).
    #[error("database: {0}")]
    Database(String),
    /// A stored block does not decode: the store is corrupt.
    #[error("stored block {0} does not decode")]
    Corrupt(B256),
    /// The block is not in the store.
    #[error("unknown block {0}")]
    UnknownBlock(B256),
    /// The block's ancestry does not reach the canonical chain through stored blocks.
    #[error("block {0} does not connect to the canonical chain")]
    Disconnected(B256),
    /// Moving the head there would revert the finalized block.
    #[error("block {hash} would revert finalized block at height {finalized}")]
    BelowFinalized {
        /// The refused head.
        hash: B256,
        /// The finalized height.
        finalized: u64,
    },
    /// Only a canonical block can be finalized.
    #[error("block {0} is not canonical")]
    NotCanonical(B256),
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                Self::Database(e.to_string())
            }
        }
    )*};
}
db_err!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// A block's height and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRef {
    /// Height.
    pub height: u64,
    /// Consensus block hash.
    pub hash: B256,
}

impl BlockRef {
    fn encode(&self) -> [u8; 40] {
        let mut out = [0u8; 40];
        out[..8].copy_from_slice(&self.height.to_be_bytes());
        out[8..].copy_from_slice(self.hash.as_slice());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let height = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let hash = B256::try_from(bytes.get(8..40)?).ok()?;
        Some(Self { height, hash })
    }
}

/// The sidecar's block store.
#[derive(Debug)]
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::init(Database::create(path)?)
    }

    /// A store that lives in memory only, for tests.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?)
    }

    fn init(db: Database) -> Result<Self, StoreError> {
        let tx = db.begin_write()?;
        tx.open_table(BLOCKS)?;
        tx.open_table(CANONICAL)?;
        tx.open_table(META)?;
        tx.commit()?;
        Ok(Self { db })
    }

    /// Stores a block without changing the canonical chain (a fork block, or one awaiting approvals).
    pub fn insert_block(&self, block: &SignedBlock) -> Result<B256, StoreError> {
        let hash = block.header.hash();
        let tx = self.db.begin_write()?;
        tx.open_table(BLOCKS)?.insert(&hash.0, block.encoded().as_slice())?;
        tx.commit()?;
        Ok(hash)
    }

    /// Stores `block` and makes it the head, in one transaction: the canonical index is rewritten from
    /// the point where the block's ancestry meets the canonical chain, and heights above it are dropped.
    pub fn commit_head(&self, block: &SignedBlock) -> Result<BlockRef, StoreError> {
        let hash = block.header.hash();
        let head = BlockRef { height: block.header.height, hash };
        let tx = self.db.begin_write()?;
        {
            let mut blocks = tx.open_table(BLOCKS)?;
            blocks.insert(&hash.0, block.encoded().as_slice())?;
            let mut canonical = tx.open_table(CANONICAL)?;
            let mut meta = tx.open_table(META)?;
            let finalized = meta.get(FINALIZED)?.and_then(|v| BlockRef::decode(v.value()));

            // Walk back until the ancestry meets the canonical index (or genesis).
            let mut segment = vec![head];
            let mut cursor = block.header.clone();
            loop {
                if cursor.height <= 1 {
                    break;
                }
                let parent_height = cursor.height - 1;
                let on_canonical = canonical.get(parent_height)?.map(|v| B256::from(*v.value()));
                if on_canonical == Some(cursor.parent_hash) {
                    break;
                }
                let parent = blocks.get(&cursor.parent_hash.0)?.ok_or(StoreError::Disconnected(hash))?;
                let parent = SignedBlock::decode(parent.value())
                    .map_err(|_| StoreError::Corrupt(cursor.parent_hash))?;
                segment.push(BlockRef { height: parent_height, hash: cursor.parent_hash });
                cursor = parent.header;
            }
            let fork_point = segment.last().map_or(head.height, |b| b.height);
            if let Some(finalized) = finalized
                && fork_point <= finalized.height
                && canonical.get(finalized.height)?.map(|v| B256::from(*v.value())) == Some(finalized.hash)
                && !segment.contains(&finalized)
            {
                return Err(StoreError::BelowFinalized { hash, finalized: finalized.height });
            }
            let stale: Vec<u64> =
                canonical.range(head.height + 1..)?.filter_map(|e| e.ok().map(|(k, _)| k.value())).collect();
            for height in stale {
                canonical.remove(height)?;
            }
            for b in &segment {
                canonical.insert(b.height, &b.hash.0)?;
            }
            meta.insert(HEAD, head.encode().as_slice())?;
        }
        tx.commit()?;
        Ok(head)
    }

    /// Marks a canonical block finalized.
    pub fn set_finalized(&self, block: BlockRef) -> Result<(), StoreError> {
        let tx = self.db.begin_write()?;
        {
            let canonical = tx.open_table(CANONICAL)?;
            if canonical.get(block.height)?.map(|v| B256::from(*v.value())) != Some(block.hash) {
                return Err(StoreError::NotCanonical(block.hash));
            }
            tx.open_table(META)?.insert(FINALIZED, block.encode().as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Marks a canonical block finalized and writes `extra` metadata in the same transaction (the
    /// merged-mining state that changes with finality).
    pub fn finalize_with(&self, block: BlockRef, extra: &[(&str, &[u8])]) -> Result<(), StoreError> {
        let tx = self.db.begin_write()?;
        {
            let canonical = tx.open_table(CANONICAL)?;
            if canonical.get(block.height)?.map(|v| B256::from(*v.value())) != Some(block.hash) {
                return Err(StoreError::NotCanonical(block.hash));
            }
            let mut meta = tx.open_table(META)?;
            meta.insert(FINALIZED, block.encode().as_slice())?;
            for (key, value) in extra {
                meta.insert(*key, *value)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Writes a metadata value (e.g. a queued proof) durably.
    pub fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let tx = self.db.begin_write()?;
        tx.open_table(META)?.insert(key, value)?;
        tx.commit()?;
        Ok(())
    }

    /// Deletes a metadata value.
    pub fn delete_meta(&self, key: &str) -> Result<(), StoreError> {
        let tx = self.db.begin_write()?;
        tx.open_table(META)?.remove(key)?;
        tx.commit()?;
        Ok(())
    }

    /// Reads a metadata value.
    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read()?;
        let meta = tx.open_table(META)?;
        Ok(meta.get(key)?.map(|v| v.value().to_vec()))
    }

    /// The head, if any block was committed.
    pub fn head(&self) -> Result<Option<BlockRef>, StoreError> {
        self.meta(HEAD)
    }

    /// The finalized block, if any.
    pub fn finalized(&self) -> Result<Option<BlockRef>, StoreError> {
        self.meta(FINALIZED)
    }

    fn meta(&self, key: &str) -> Result<Option<BlockRef>, StoreError> {
        let tx = self.db.begin_read()?;
        let meta = tx.open_table(META)?;
        Ok(meta.get(key)?.and_then(|v| BlockRef::decode(v.value())))
    }

    /// A stored block by hash.
    pub fn block(&self, hash: &B256) -> Result<Option<SignedBlock>, StoreError> {
        let tx = self.db.begin_read()?;
        let blocks = tx.open_table(BLOCKS)?;
        let Some(bytes) = blocks.get(&hash.0)? else { return Ok(None) };
        SignedBlock::decode(bytes.value()).map(Some).map_err(|_| StoreError::Corrupt(*hash))
    }

    /// The canonical block hash at a height.
    pub fn canonical_hash(&self, height: u64) -> Result<Option<B256>, StoreError> {
        let tx = self.db.begin_read()?;
        let canonical = tx.open_table(CANONICAL)?;
        Ok(canonical.get(height)?.map(|v| B256::from(*v.value())))
    }

    /// The canonical block at a height.
    pub fn block_by_height(&self, height: u64) -> Result<Option<SignedBlock>, StoreError> {
        match self.canonical_hash(height)? {
            Some(hash) => self.block(&hash),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{Approvals, ConsensusHeader};
    use alloy_primitives::Bytes;

    fn block(parent: B256, height: u64, slot: u64) -> SignedBlock {
        SignedBlock {
            header: ConsensusHeader {
                parent_hash: parent,
                height,
                slot,
                author: 0,
                execution_block_hash: B256::with_last_byte(slot as u8),
                pegins: vec![],
                auxpow: Bytes::new(),
            },
            execution_block: Bytes::new(),
            execution_requests: vec![],
            author_signature: Bytes::new(),
            approvals: Approvals { signers: Bytes::new(), signature: Bytes::new() },
        }
    }

    fn chain(
        store: &Store,
        from: B256,
        heights: std::ops::RangeInclusive<u64>,
        slot_offset: u64,
    ) -> Vec<B256> {
        let mut parent = from;
        let mut out = Vec::new();
        for h in heights {
            let b = block(parent, h, h + slot_offset);
            parent = store.commit_head(&b).unwrap().hash;
            out.push(parent);
        }
        out
    }

    #[test]
    fn heads_extend_and_reorg_rewrites_the_index() {
        let store = Store::in_memory().unwrap();
        let genesis = B256::repeat_byte(0xee);
        let a = chain(&store, genesis, 1..=4, 0);
        assert_eq!(store.head().unwrap().unwrap(), BlockRef { height: 4, hash: a[3] });
        assert_eq!(store.canonical_hash(2).unwrap(), Some(a[1]));

        // A sibling branch from height 2, stored first, then made head at height 3.
        let b2 = block(a[0], 2, 100);
        store.insert_block(&b2).unwrap();
        let b3 = block(b2.header.hash(), 3, 101);
        let head = store.commit_head(&b3).unwrap();
        assert_eq!(head.height, 3);
        assert_eq!(store.canonical_hash(1).unwrap(), Some(a[0]));
        assert_eq!(store.canonical_hash(2).unwrap(), Some(b2.header.hash()));
        assert_eq!(store.canonical_hash(3).unwrap(), Some(b3.header.hash()));
        assert_eq!(store.canonical_hash(4).unwrap(), None, "the old branch above the head is dropped");
        assert_eq!(store.block_by_height(2).unwrap().unwrap(), b2);
        assert!(store.block(&a[3]).unwrap().is_some(), "fork blocks stay stored");
    }

    #[test]
    fn finalized_blocks_are_never_reverted() {
        let store = Store::in_memory().unwrap();
        let a = chain(&store, B256::ZERO, 1..=3, 0);
        store.set_finalized(BlockRef { height: 2, hash: a[1] }).unwrap();
        let fork = block(a[0], 2, 50);
        store.insert_block(&fork).unwrap();
        let err = store.commit_head(&block(fork.header.hash(), 3, 51)).unwrap_err();
        assert!(matches!(err, StoreError::BelowFinalized { finalized: 2, .. }));
        assert_eq!(store.head().unwrap().unwrap().hash, a[2], "nothing changed");
        // Extending past the finalized block is fine.
        chain(&store, a[2], 4..=5, 0);
        assert!(matches!(
            store.set_finalized(BlockRef { height: 2, hash: fork.header.hash() }),
            Err(StoreError::NotCanonical(_))
        ));
    }

    #[test]
    fn disconnected_heads_are_refused() {
        let store = Store::in_memory().unwrap();
        chain(&store, B256::ZERO, 1..=2, 0);
        let orphan = block(B256::repeat_byte(9), 5, 5);
        assert!(matches!(store.commit_head(&orphan), Err(StoreError::Disconnected(_))));
    }

    #[test]
    fn reopening_keeps_head_and_blocks() {
        let dir = std::env::temp_dir().join(format!("alys-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sidecar.redb");
        let hashes = {
            let store = Store::open(&path).unwrap();
            let h = chain(&store, B256::ZERO, 1..=3, 0);
            store.set_finalized(BlockRef { height: 1, hash: h[0] }).unwrap();
            h
        };
        let store = Store::open(&path).unwrap();
        assert_eq!(store.head().unwrap().unwrap(), BlockRef { height: 3, hash: hashes[2] });
        assert_eq!(store.finalized().unwrap().unwrap().hash, hashes[0]);
        assert_eq!(store.block_by_height(3).unwrap().unwrap().header.hash(), hashes[2]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
