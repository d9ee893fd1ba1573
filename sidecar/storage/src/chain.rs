//! The consensus chain's tables: blocks by hash, the canonical index by height, head and finalized, and
//! the merged-mining state that changes with finality.
//!
//! A new head is written with its block and the canonical index rewrite in the caller's transaction;
//! nothing below the finalized block can be reverted.

use alloy_primitives::B256;
use alloy_rlp::{RlpDecodable, RlpEncodable};
use alys_primitives::{BlockRef, SignedBlock};
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::{StorageError, Tables, WriteTx};

const BLOCKS: TableDefinition<'static, &[u8; 32], &[u8]> = TableDefinition::new("blocks");
const CANONICAL: TableDefinition<'static, u64, &[u8; 32]> = TableDefinition::new("canonical");
const META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("chain_meta");

const HEAD: &str = "head";
const FINALIZED: &str = "finalized";
const POW_STATE: &str = "pow_state";
const QUEUED_POW: &str = "queued_pow";
const PAUSED: &str = "production_paused";
const GENESIS: &str = "genesis_hash";

pub(crate) fn create_tables(tx: &WriteTransaction) -> Result<(), StorageError> {
    tx.open_table(BLOCKS)?;
    tx.open_table(CANONICAL)?;
    tx.open_table(META)?;
    Ok(())
}

/// The merged-mining difficulty schedule (ASERT, `alys_auxpow::retarget`): an anchor, the proofs since
/// it, and when the last one landed. The bits the next proof must meet follow from these and the
/// configured spacing, half-life and pow limit, so they are not stored.
///
/// Stored as the RLP list `[anchor_bits, anchor_secs, proofs_since_anchor, last_proof_secs]`. A database
/// written before ASERT holds `[bits, last_proof_secs]` ([`PowState::from_legacy`]): it still opens, the
/// schedule anchored at that last proof with those bits, so the next proof must meet the bits the old
/// node had set, and the next write stores the new record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct PowState {
    /// The anchor's compact target.
    pub anchor_bits: u32,
    /// The anchor's time: execution timestamp of the block that carried the anchor proof (genesis time
    /// for the genesis anchor).
    pub anchor_secs: u64,
    /// Proofs committed after the anchor.
    pub proofs_since_anchor: u64,
    /// Execution timestamp of the block that carried the last proof (the anchor's time before any).
    pub last_proof_secs: u64,
}

/// The record written before ASERT: the next proof's bits and the last proof's time.
#[derive(RlpDecodable)]
struct LegacyPowState {
    bits: u32,
    last_proof_secs: u64,
}

impl PowState {
    /// The schedule a pre-ASERT record stands for: anchored at the last proof, whose successor must meet
    /// `bits`.
    pub const fn from_legacy(bits: u32, last_proof_secs: u64) -> Self {
        Self { anchor_bits: bits, anchor_secs: last_proof_secs, proofs_since_anchor: 0, last_proof_secs }
    }

    /// Decodes a stored record, current or pre-ASERT; trailing bytes are refused.
    fn decode_stored(bytes: &[u8]) -> Result<Self, alloy_rlp::Error> {
        use alloy_rlp::Decodable;
        let current = Self::decode_exact(bytes, <Self as Decodable>::decode);
        current.or_else(|error| {
            Self::decode_exact(bytes, <LegacyPowState as Decodable>::decode)
                .map(|old| Self::from_legacy(old.bits, old.last_proof_secs))
                .map_err(|_| error)
        })
    }

    fn decode_exact<T>(
        mut bytes: &[u8],
        decode: impl FnOnce(&mut &[u8]) -> Result<T, alloy_rlp::Error>,
    ) -> Result<T, alloy_rlp::Error> {
        let value = decode(&mut bytes)?;
        if bytes.is_empty() { Ok(value) } else { Err(alloy_rlp::Error::UnexpectedLength) }
    }
}

fn encode_ref(block: BlockRef) -> [u8; 40] {
    let mut out = [0u8; 40];
    let (height, hash) = out.split_at_mut(8);
    height.copy_from_slice(&block.height.to_be_bytes());
    hash.copy_from_slice(block.hash.as_slice());
    out
}

fn decode_ref(bytes: &[u8]) -> Result<BlockRef, StorageError> {
    let bad = || StorageError::Length { table: "chain_meta", len: bytes.len(), expected: 40 };
    let (height, hash) = bytes.split_first_chunk::<8>().ok_or_else(bad)?;
    let hash = B256::try_from(hash).map_err(|_| bad())?;
    Ok(BlockRef { height: u64::from_be_bytes(*height), hash })
}

fn decode_block(bytes: &[u8]) -> Result<SignedBlock, StorageError> {
    SignedBlock::decode(bytes).map_err(|source| StorageError::Decode { table: "blocks", source })
}

/// Reading the chain, in a snapshot or inside the write transaction.
pub trait ChainRead: Tables {
    /// The head, if any block was committed.
    fn head(&self) -> Result<Option<BlockRef>, StorageError> {
        self.chain_ref(HEAD)
    }

    /// The finalized block, if any.
    fn finalized(&self) -> Result<Option<BlockRef>, StorageError> {
        self.chain_ref(FINALIZED)
    }

    #[doc(hidden)]
    fn chain_ref(&self, key: &str) -> Result<Option<BlockRef>, StorageError> {
        let meta = self.open(META)?;
        meta.get(key)?.map(|v| decode_ref(v.value())).transpose()
    }

    /// A stored block by consensus hash.
    fn block(&self, hash: &B256) -> Result<Option<SignedBlock>, StorageError> {
        let blocks = self.open(BLOCKS)?;
        blocks.get(&hash.0)?.map(|v| decode_block(v.value())).transpose()
    }

    /// A stored block's encoding by consensus hash, as it travels between nodes (no decoding).
    fn block_bytes(&self, hash: &B256) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.open(BLOCKS)?.get(&hash.0)?.map(|v| v.value().to_vec()))
    }

    /// How many blocks are stored, canonical or not (fork blocks, blocks that lost a reorg).
    fn stored_block_count(&self) -> Result<u64, StorageError> {
        use redb::ReadableTableMetadata;
        Ok(self.open(BLOCKS)?.len()?)
    }

    /// Whether `ancestor` is `tip` or one of its ancestors (walking stored blocks; the canonical index
    /// answers at once when `tip` is canonical).
    fn is_ancestor(&self, ancestor: BlockRef, tip: BlockRef) -> Result<bool, StorageError> {
        if ancestor.height > tip.height {
            return Ok(false);
        }
        if self.canonical_hash(tip.height)? == Some(tip.hash) {
            return Ok(self.canonical_hash(ancestor.height)? == Some(ancestor.hash));
        }
        let mut cursor = tip;
        while cursor.height > ancestor.height {
            let Some(block) = self.block(&cursor.hash)? else { return Ok(false) };
            cursor = BlockRef { height: cursor.height - 1, hash: block.header.parent_hash };
            if self.canonical_hash(cursor.height)? == Some(cursor.hash) {
                return Ok(self.canonical_hash(ancestor.height)? == Some(ancestor.hash));
            }
        }
        Ok(cursor == ancestor)
    }

    /// Whether a block is stored.
    fn has_block(&self, hash: &B256) -> Result<bool, StorageError> {
        Ok(self.open(BLOCKS)?.get(&hash.0)?.is_some())
    }

    /// The canonical block hash at a height.
    fn canonical_hash(&self, height: u64) -> Result<Option<B256>, StorageError> {
        Ok(self.open(CANONICAL)?.get(height)?.map(|v| B256::from(*v.value())))
    }

    /// The canonical block at a height.
    fn block_by_height(&self, height: u64) -> Result<Option<SignedBlock>, StorageError> {
        match self.canonical_hash(height)? {
            Some(hash) => self.block(&hash),
            None => Ok(None),
        }
    }

    /// The merged-mining difficulty schedule, if a proof was ever committed (a pre-ASERT record is
    /// converted, [`PowState`]).
    fn pow_state(&self) -> Result<Option<PowState>, StorageError> {
        let meta = self.open(META)?;
        let Some(bytes) = meta.get(POW_STATE)? else { return Ok(None) };
        let state = PowState::decode_stored(bytes.value())
            .map_err(|source| StorageError::Decode { table: "chain_meta", source })?;
        Ok(Some(state))
    }

    /// The proof waiting for the next block this node authors, as stored.
    fn queued_proof(&self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.open(META)?.get(QUEUED_POW)?.map(|v| v.value().to_vec()))
    }

    /// The execution genesis hash this database's chain was started from (recorded at first start).
    fn genesis_hash(&self) -> Result<Option<B256>, StorageError> {
        Ok(self.open(META)?.get(GENESIS)?.and_then(|v| <[u8; 32]>::try_from(v.value()).ok()).map(B256::from))
    }

    /// Whether an operator paused block production (`alys_pauseProduction`), across restarts.
    fn production_paused(&self) -> Result<bool, StorageError> {
        Ok(self.open(META)?.get(PAUSED)?.is_some_and(|v| v.value() == [1]))
    }
}

impl<T: Tables> ChainRead for T {}

impl WriteTx {
    /// Stores a block without changing the canonical chain (a fork block, or one awaiting approvals);
    /// returns its hash.
    pub fn put_block(&self, block: &SignedBlock) -> Result<B256, StorageError> {
        let hash = block.header.hash();
        self.table(BLOCKS)?.insert(&hash.0, block.encoded().as_slice())?;
        self.record_claims(&hash, block.header.height, &block.header.pegins)?;
        self.record_federation(&hash, &block.header)?;
        Ok(hash)
    }

    /// Stores `block` and makes it the head: the canonical index is rewritten from the point where the
    /// block's ancestry meets the canonical chain, and heights above it are dropped. Refuses a head that
    /// would revert the finalized block. The outpoints the block claims join the minted set, and the
    /// open peg-in list follows the canonical chain (see the `pegin` module).
    pub fn set_head(&self, block: &SignedBlock) -> Result<BlockRef, StorageError> {
        let hash = block.header.hash();
        self.record_claims(&hash, block.header.height, &block.header.pegins)?;
        self.record_federation(&hash, &block.header)?;
        let head = BlockRef { height: block.header.height, hash };
        let mut blocks = self.table(BLOCKS)?;
        blocks.insert(&hash.0, block.encoded().as_slice())?;
        let mut canonical = self.table(CANONICAL)?;
        let mut meta = self.table(META)?;
        let finalized = meta.get(FINALIZED)?.map(|v| decode_ref(v.value())).transpose()?;

        // Walk back until the ancestry meets the canonical index (or genesis).
        let mut segment = vec![head];
        let mut cursor = block.header.clone();
        while cursor.height > 1 {
            let parent_height = cursor.height - 1;
            let on_canonical = canonical.get(parent_height)?.map(|v| B256::from(*v.value()));
            if on_canonical == Some(cursor.parent_hash) {
                break;
            }
            let parent = blocks.get(&cursor.parent_hash.0)?.ok_or(StorageError::Disconnected(hash))?;
            let parent = decode_block(parent.value())?;
            segment.push(BlockRef { height: parent_height, hash: cursor.parent_hash });
            cursor = parent.header;
        }
        let fork_point = segment.last().map_or(head.height, |b| b.height);
        if let Some(finalized) = finalized
            && fork_point <= finalized.height
            && canonical.get(finalized.height)?.map(|v| B256::from(*v.value())) == Some(finalized.hash)
            && !segment.contains(&finalized)
        {
            return Err(StorageError::BelowFinalized { hash, finalized: finalized.height });
        }
        // The canonical blocks this head replaces: every height from the fork point up.
        let replaced: Vec<(u64, B256)> = canonical
            .range(fork_point..)?
            .map(|e| e.map(|(k, v)| (k.value(), B256::from(*v.value()))))
            .collect::<Result<_, _>>()?;
        let mut left = Vec::new();
        for (height, old) in &replaced {
            if !segment.iter().any(|b| b.hash == *old)
                && let Some(bytes) = blocks.get(&old.0)?
            {
                let old_block = decode_block(bytes.value())?;
                if !old_block.header.pegins.is_empty() || old_block.header.pegout.is_some() {
                    left.push(old_block);
                }
            }
            if *height > head.height {
                canonical.remove(*height)?;
            }
        }
        let mut joined = Vec::new();
        for b in &segment {
            if replaced.iter().any(|(_, old)| *old == b.hash) {
                continue;
            }
            canonical.insert(b.height, &b.hash.0)?;
            if b.hash == hash {
                if !block.header.pegins.is_empty() || block.header.pegout.is_some() {
                    joined.push(block.clone());
                }
            } else if let Some(bytes) = blocks.get(&b.hash.0)? {
                let joining = decode_block(bytes.value())?;
                if !joining.header.pegins.is_empty() || joining.header.pegout.is_some() {
                    joined.push(joining);
                }
            }
        }
        meta.insert(HEAD, encode_ref(head).as_slice())?;
        drop((blocks, canonical, meta));
        if !joined.is_empty() || !left.is_empty() {
            self.reopen_claims(&joined, &left)?;
            self.requeue_settled(&joined, &left)?;
        }
        Ok(head)
    }

    /// Marks a canonical block finalized.
    pub fn set_finalized(&self, block: BlockRef) -> Result<(), StorageError> {
        if self.canonical_hash(block.height)? != Some(block.hash) {
            return Err(StorageError::NotCanonical(block.hash));
        }
        self.table(META)?.insert(FINALIZED, encode_ref(block).as_slice())?;
        Ok(())
    }

    /// Records the merged-mining difficulty state.
    pub fn set_pow_state(&self, state: PowState) -> Result<(), StorageError> {
        self.table(META)?.insert(POW_STATE, alloy_rlp::encode(state).as_slice())?;
        Ok(())
    }

    /// Records the execution genesis hash the chain in this database starts from.
    pub fn set_genesis_hash(&self, hash: B256) -> Result<(), StorageError> {
        self.table(META)?.insert(GENESIS, hash.as_slice())?;
        Ok(())
    }

    /// Records whether an operator paused block production.
    pub fn set_production_paused(&self, paused: bool) -> Result<(), StorageError> {
        self.table(META)?.insert(PAUSED, [u8::from(paused)].as_slice())?;
        Ok(())
    }

    /// Records (or, with `None`, clears) the proof waiting for the next block.
    pub fn set_queued_proof(&self, proof: Option<&[u8]>) -> Result<(), StorageError> {
        let mut meta = self.table(META)?;
        match proof {
            Some(bytes) => meta.insert(QUEUED_POW, bytes)?,
            None => meta.remove(QUEUED_POW)?,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Storage;
    use alloy_primitives::Bytes;
    use alys_primitives::{Approvals, ConsensusHeader};

    fn block(parent: B256, height: u64, slot: u64) -> SignedBlock {
        SignedBlock {
            header: ConsensusHeader {
                parent_hash: parent,
                parent_seal: Default::default(),
                height,
                slot,
                author: 0,
                execution_block_hash: B256::with_last_byte(slot as u8),
                pegins: vec![],
                auxpow: Bytes::new(),
                pegout: None,
            },
            execution_block: Bytes::new(),
            execution_requests: vec![],
            author_signature: Bytes::new(),
            approvals: Approvals { signers: Bytes::new(), signature: Bytes::new() },
        }
    }

    fn commit_head(store: &Storage, block: &SignedBlock) -> Result<BlockRef, StorageError> {
        let tx = store.write()?;
        let head = tx.set_head(block)?;
        tx.commit()?;
        Ok(head)
    }

    fn set_finalized(store: &Storage, block: BlockRef) -> Result<(), StorageError> {
        let tx = store.write()?;
        tx.set_finalized(block)?;
        tx.commit()
    }

    fn insert_block(store: &Storage, block: &SignedBlock) {
        let tx = store.write().unwrap();
        tx.put_block(block).unwrap();
        tx.commit().unwrap();
    }

    fn chain(
        store: &Storage,
        from: B256,
        heights: std::ops::RangeInclusive<u64>,
        slot_offset: u64,
    ) -> Vec<B256> {
        let mut parent = from;
        let mut out = Vec::new();
        for h in heights {
            let b = block(parent, h, h + slot_offset);
            parent = commit_head(store, &b).unwrap().hash;
            out.push(parent);
        }
        out
    }

    #[test]
    fn heads_extend_and_reorg_rewrites_the_index() {
        let store = Storage::in_memory().unwrap();
        let genesis = B256::repeat_byte(0xee);
        let a = chain(&store, genesis, 1..=4, 0);
        let read = store.read().unwrap();
        assert_eq!(read.head().unwrap().unwrap(), BlockRef { height: 4, hash: a[3] });
        assert_eq!(read.canonical_hash(2).unwrap(), Some(a[1]));

        // A sibling branch from height 2, stored first, then made head at height 3.
        let b2 = block(a[0], 2, 100);
        insert_block(&store, &b2);
        let b3 = block(b2.header.hash(), 3, 101);
        let head = commit_head(&store, &b3).unwrap();
        assert_eq!(head.height, 3);
        let read = store.read().unwrap();
        assert_eq!(read.canonical_hash(1).unwrap(), Some(a[0]));
        assert_eq!(read.canonical_hash(2).unwrap(), Some(b2.header.hash()));
        assert_eq!(read.canonical_hash(3).unwrap(), Some(b3.header.hash()));
        assert_eq!(read.canonical_hash(4).unwrap(), None, "the old branch above the head is dropped");
        assert_eq!(read.block_by_height(2).unwrap().unwrap(), b2);
        assert!(read.block(&a[3]).unwrap().is_some(), "fork blocks stay stored");
    }

    #[test]
    fn finalized_blocks_are_never_reverted() {
        let store = Storage::in_memory().unwrap();
        let a = chain(&store, B256::ZERO, 1..=3, 0);
        set_finalized(&store, BlockRef { height: 2, hash: a[1] }).unwrap();
        let fork = block(a[0], 2, 50);
        insert_block(&store, &fork);
        let err = commit_head(&store, &block(fork.header.hash(), 3, 51)).unwrap_err();
        assert!(matches!(err, StorageError::BelowFinalized { finalized: 2, .. }));
        assert_eq!(store.read().unwrap().head().unwrap().unwrap().hash, a[2], "nothing changed");
        // Extending past the finalized block is fine.
        chain(&store, a[2], 4..=5, 0);
        assert!(matches!(
            set_finalized(&store, BlockRef { height: 2, hash: fork.header.hash() }),
            Err(StorageError::NotCanonical(_))
        ));
    }

    #[test]
    fn disconnected_heads_are_refused() {
        let store = Storage::in_memory().unwrap();
        chain(&store, B256::ZERO, 1..=2, 0);
        let orphan = block(B256::repeat_byte(9), 5, 5);
        assert!(matches!(commit_head(&store, &orphan), Err(StorageError::Disconnected(_))));
    }

    #[test]
    fn head_finality_and_pow_state_commit_together_or_not_at_all() {
        let store = Storage::in_memory().unwrap();
        let a = chain(&store, B256::ZERO, 1..=2, 0);
        let b3 = block(a[1], 3, 3);
        let state = PowState {
            anchor_bits: 0x1d00_ffff,
            anchor_secs: 40,
            proofs_since_anchor: 1,
            last_proof_secs: 42,
        };
        {
            let tx = store.write().unwrap();
            tx.set_head(&b3).unwrap();
            tx.set_finalized(BlockRef { height: 2, hash: a[1] }).unwrap();
            tx.set_pow_state(state).unwrap();
            tx.set_queued_proof(Some(b"proof")).unwrap();
            // Dropped without commit: nothing happened.
        }
        let read = store.read().unwrap();
        assert_eq!(read.head().unwrap().unwrap().hash, a[1]);
        assert_eq!(read.finalized().unwrap(), None);
        assert_eq!(read.pow_state().unwrap(), None);
        assert_eq!(read.queued_proof().unwrap(), None);
        drop(read);
        let tx = store.write().unwrap();
        let head = tx.set_head(&b3).unwrap();
        tx.set_finalized(BlockRef { height: 2, hash: a[1] }).unwrap();
        tx.set_pow_state(state).unwrap();
        tx.set_queued_proof(None).unwrap();
        tx.commit().unwrap();
        let read = store.read().unwrap();
        assert_eq!(read.head().unwrap(), Some(head));
        assert_eq!(read.finalized().unwrap(), Some(BlockRef { height: 2, hash: a[1] }));
        assert_eq!(read.pow_state().unwrap(), Some(state));
    }

    #[test]
    fn reopening_keeps_head_and_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alys.redb");
        let hashes = {
            let store = Storage::open(&path).unwrap();
            let h = chain(&store, B256::ZERO, 1..=3, 0);
            set_finalized(&store, BlockRef { height: 1, hash: h[0] }).unwrap();
            h
        };
        let store = Storage::open(&path).unwrap();
        let read = store.read().unwrap();
        assert_eq!(read.head().unwrap().unwrap(), BlockRef { height: 3, hash: hashes[2] });
        assert_eq!(read.finalized().unwrap().unwrap().hash, hashes[0]);
        assert_eq!(read.block_by_height(3).unwrap().unwrap().header.hash(), hashes[2]);
    }

    #[test]
    fn a_pre_asert_pow_state_still_opens_as_an_anchor_at_the_last_proof() {
        #[derive(alloy_rlp::RlpEncodable)]
        struct Legacy {
            bits: u32,
            last_proof_secs: u64,
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alys.redb");
        {
            let store = Storage::open(&path).unwrap();
            let tx = store.write().unwrap();
            let legacy = alloy_rlp::encode(Legacy { bits: 0x1e0f_ffff, last_proof_secs: 1_700_000_123 });
            tx.table(META).unwrap().insert(POW_STATE, legacy.as_slice()).unwrap();
            tx.commit().unwrap();
        }
        let store = Storage::open(&path).unwrap();
        let state = store.read().unwrap().pow_state().unwrap().unwrap();
        assert_eq!(state, PowState::from_legacy(0x1e0f_ffff, 1_700_000_123));
        assert_eq!(
            state,
            PowState {
                anchor_bits: 0x1e0f_ffff,
                anchor_secs: 1_700_000_123,
                proofs_since_anchor: 0,
                last_proof_secs: 1_700_000_123
            }
        );
        // The next write stores the current record, which reads back as written.
        let next = PowState { proofs_since_anchor: 1, last_proof_secs: 1_700_000_180, ..state };
        let tx = store.write().unwrap();
        tx.set_pow_state(next).unwrap();
        tx.commit().unwrap();
        assert_eq!(store.read().unwrap().pow_state().unwrap(), Some(next));
        // Anything else is a corrupt record, not a silent default.
        let tx = store.write().unwrap();
        tx.table(META).unwrap().insert(POW_STATE, [0xc3, 0x01, 0x02, 0x03].as_slice()).unwrap();
        tx.commit().unwrap();
        assert!(matches!(
            store.read().unwrap().pow_state(),
            Err(StorageError::Decode { table: "chain_meta", .. })
        ));
        let mut trailing = alloy_rlp::encode(next);
        trailing.push(0);
        let tx = store.write().unwrap();
        tx.table(META).unwrap().insert(POW_STATE, trailing.as_slice()).unwrap();
        tx.commit().unwrap();
        assert!(store.read().unwrap().pow_state().is_err());
    }

    #[test]
    fn a_second_opener_is_told_who_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alys.redb");
        let _first = Storage::open(&path).unwrap();
        let error = Storage::open(&path).unwrap_err().to_string();
        assert!(error.contains("alys.redb") && error.contains("another"), "{error}");
    }
}
