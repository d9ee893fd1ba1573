//! The ExEx's durable store (redb): canonical burns, the feed's event log and the ExEx's own head.
//!
//! Every notification is applied in ONE write transaction: the burns it adds or retracts, the feed
//! events that announce them, the processed blocks and the new head. So after a crash the store is
//! either before or after a notification, never half-way, and `FinishedHeight` (DESIGN invariant 7) is
//! computed from committed state only.
//!
//! # Retention of the event log
//!
//! The event log would otherwise grow with every burn ever made. [`Retention`] bounds it by this rule,
//! applied in the transaction of every update and of every new finalized block:
//!
//! - while the log holds more than [`Retention::max_events`] events, its oldest event is pruned, but
//! - only if that event's burn is in a block at or below the finalized block the consensus layer
//!   reported: events of unfinalized blocks are never pruned (their burns may still be retracted, and
//!   a consumer must hear both), so the log exceeds the bound while finality lags; and
//! - the newest event is never pruned, so cursors continue where they were.
//!
//! Cursors are never reused. The first cursor still held is [`BurnStore::retained_from`]; reading
//! after a cursor below it is [`StoreError::Pruned`], which the feed answers with a typed refusal
//! telling the consumer to resynchronise, never with a silent gap.

use std::{path::Path, time::Instant};

use alloy_eips::BlockNumHash;
use alloy_primitives::{B256, BlockNumber};
use alys_burns::{BlockLogs, Burn, BurnExtractor, BurnKey, FeedEvent, FeedEventKind};
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};

use crate::metrics as m;

/// Canonical burns: (block hash, log index) → burn (RLP, [`Burn::encoded`]).
const BURNS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("burns");
/// The feed's append-only event log: cursor → event (a kind byte, then the burn's RLP).
const EVENTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("events");
/// The blocks processed and still canonical: number → hash.
const CANONICAL: TableDefinition<'_, u64, [u8; 32]> = TableDefinition::new("canonical");
/// Single values: head, finalized.
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");

/// The last processed block.
const META_HEAD: &str = "head";
/// The finalized block as the consensus layer reported it.
const META_FINALIZED: &str = "finalized";
/// The last cursor pruned from the event log (u64 big-endian; absent: none).
const META_PRUNED_THROUGH: &str = "pruned_through";

/// How much of the feed's event log the store keeps (see the module docs for the rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Most events kept once their blocks are final (at least 1: the newest event always stays).
    pub max_events: u64,
}

impl Retention {
    /// The default bound: 100,000 events (some 20 MB), days of burns at any plausible rate.
    pub const DEFAULT_MAX_EVENTS: u64 = 100_000;
}

impl Default for Retention {
    fn default() -> Self {
        Self { max_events: Self::DEFAULT_MAX_EVENTS }
    }
}

/// An error of the store. Each redb failure keeps redb's own error as its source.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or created (I/O, lock held by another process, not a
    /// redb file).
    #[error("burn store: opening the database: {0}")]
    Open(#[from] redb::DatabaseError),
    /// A transaction could not begin.
    #[error("burn store: beginning a transaction: {0}")]
    Transaction(#[from] redb::TransactionError),
    /// A table could not be opened (e.g. its type does not match the file's).
    #[error("burn store: opening a table: {0}")]
    Table(#[from] redb::TableError),
    /// Reading or writing failed (I/O, corruption detected by redb).
    #[error("burn store: {0}")]
    Storage(#[from] redb::StorageError),
    /// The write transaction could not commit; nothing of it is stored.
    #[error("burn store: committing: {0}")]
    Commit(#[from] redb::CommitError),
    /// A record does not decode: the file is damaged or was written by something else.
    #[error("burn store: {0}")]
    Corrupt(#[from] CorruptRecord),
    /// The events after `after` were pruned by retention: the log holds cursors from `retained_from`.
    #[error("burn store: the events after cursor {after} were pruned (the log starts at {retained_from})")]
    Pruned {
        /// The cursor asked after.
        after: u64,
        /// The first cursor the log holds.
        retained_from: u64,
    },
}

/// A stored record that does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CorruptRecord {
    /// A stored burn (in the burn table or in a feed event) is not one burn's RLP.
    #[error("stored burn does not decode: {0}")]
    Burn(#[source] alloy_rlp::Error),
    /// A feed event record is empty.
    #[error("feed event {cursor} is empty")]
    EmptyEvent {
        /// The event's cursor.
        cursor: u64,
    },
    /// A feed event record starts with a kind byte that is neither burn nor retraction.
    #[error("feed event {cursor} has unknown kind {kind}")]
    EventKind {
        /// The event's cursor.
        cursor: u64,
        /// The kind byte found.
        kind: u8,
    },
    /// A stored block reference (head, finalized) is not 40 bytes.
    #[error("stored block `{key}` is {len} bytes, not 40")]
    BlockRef {
        /// The record's key.
        key: &'static str,
        /// Its length.
        len: usize,
    },
    /// A stored counter is not 8 bytes.
    #[error("stored `{key}` is {len} bytes, not 8")]
    Counter {
        /// The record's key.
        key: &'static str,
        /// Its length.
        len: usize,
    },
}

/// A block as the store sees it: its number, hash and parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRef {
    /// The block's number and hash.
    pub num_hash: BlockNumHash,
    /// The parent's hash.
    pub parent_hash: B256,
}

impl BlockRef {
    /// The block's reference, read from an executed block.
    pub fn of(block: &impl BlockLogs) -> Self {
        Self { num_hash: block.num_hash(), parent_hash: block.parent_hash() }
    }

    fn parent(&self) -> BlockNumHash {
        BlockNumHash { number: self.num_hash.number.saturating_sub(1), hash: self.parent_hash }
    }
}

/// A committed block and its burns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedBlock {
    /// The block.
    pub block: BlockRef,
    /// Its burns, in log order.
    pub burns: Vec<Burn>,
}

/// What one chain notification changes, with burns already extracted: blocks reverted, then blocks
/// committed. This is the store's input; building it needs no store access, so it happens outside the
/// write transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainUpdate {
    /// Blocks removed from the canonical chain, ascending (applied newest first).
    pub reverted: Vec<BlockRef>,
    /// Blocks added to the canonical chain, ascending.
    pub committed: Vec<CommittedBlock>,
}

impl ChainUpdate {
    /// The update a chain notification stands for: `reverted` blocks removed, then `committed` blocks
    /// added (a reorg has both), each run ascending. Burns of the committed blocks are extracted here,
    /// so the store's write transaction only writes.
    pub fn new<R: BlockLogs, C: BlockLogs>(
        reverted: impl IntoIterator<Item = R>,
        committed: impl IntoIterator<Item = C>,
        extractor: &BurnExtractor,
    ) -> Self {
        let reverted = reverted.into_iter().map(|block| BlockRef::of(&block)).collect();
        let committed = committed
            .into_iter()
            .map(|block| CommittedBlock {
                block: BlockRef::of(&block),
                burns: extractor.extract_block(&block),
            })
            .collect();
        Self { reverted, committed }
    }

    /// Whether the update has no block.
    pub fn is_empty(&self) -> bool {
        self.reverted.is_empty() && self.committed.is_empty()
    }

    /// The last committed block, if any: the chain's tip after the update.
    pub fn tip(&self) -> Option<BlockNumHash> {
        self.committed.last().map(|b| b.block.num_hash)
    }
}

/// What applying an update did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// The head after the update.
    pub head: Option<BlockNumHash>,
    /// The last cursor of the event log after the update (0: empty).
    pub last_cursor: u64,
    /// Blocks newly recorded as canonical.
    pub blocks_committed: usize,
    /// Blocks removed from the canonical record.
    pub blocks_reverted: usize,
    /// Blocks skipped because the store already was in the state the notification describes.
    pub blocks_replayed: usize,
    /// Burns added.
    pub burns_added: usize,
    /// Burns retracted.
    pub burns_retracted: usize,
}

impl ApplyOutcome {
    /// Whether the update changed anything.
    pub const fn changed(&self) -> bool {
        self.blocks_committed + self.blocks_reverted > 0
    }

    /// Adds a later outcome: counts summed, head and last cursor taken from `later`.
    pub const fn add(&mut self, later: &Self) {
        self.head = later.head;
        self.last_cursor = later.last_cursor;
        self.blocks_committed += later.blocks_committed;
        self.blocks_reverted += later.blocks_reverted;
        self.blocks_replayed += later.blocks_replayed;
        self.burns_added += later.burns_added;
        self.burns_retracted += later.burns_retracted;
    }
}

/// The ExEx's durable store.
///
/// All methods take `&self`: redb serializes writers and gives readers consistent snapshots, so one store
/// can be shared (in an `Arc`) by the ExEx, which writes, and the feed server, which reads.
#[derive(Debug)]
pub struct BurnStore {
    db: Database,
    retention: Retention,
}

fn encode_num_hash(nh: BlockNumHash) -> [u8; 40] {
    let mut out = [0u8; 40];
    let (num, hash) = out.split_at_mut(8);
    num.copy_from_slice(&nh.number.to_be_bytes());
    hash.copy_from_slice(nh.hash.as_slice());
    out
}

fn decode_num_hash(key: &'static str, bytes: &[u8]) -> Result<BlockNumHash, CorruptRecord> {
    let Some((num, hash)) = bytes.split_first_chunk::<8>() else {
        return Err(CorruptRecord::BlockRef { key, len: bytes.len() });
    };
    let hash: [u8; 32] = hash.try_into().map_err(|_| CorruptRecord::BlockRef { key, len: bytes.len() })?;
    Ok(BlockNumHash { number: u64::from_be_bytes(*num), hash: B256::from(hash) })
}

fn read_meta(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &'static str,
) -> Result<Option<BlockNumHash>, StoreError> {
    match table.get(key)? {
        Some(value) => Ok(Some(decode_num_hash(key, value.value())?)),
        None => Ok(None),
    }
}

fn read_counter(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &'static str,
) -> Result<u64, StoreError> {
    match table.get(key)? {
        Some(value) => {
            let bytes = value.value();
            let array: [u8; 8] =
                bytes.try_into().map_err(|_| CorruptRecord::Counter { key, len: bytes.len() })?;
            Ok(u64::from_be_bytes(array))
        }
        None => Ok(0),
    }
}

/// Prunes the oldest events by the retention rule (module docs); returns how many went.
fn prune_events(txn: &WriteTransaction, retention: Retention) -> Result<u64, StoreError> {
    let mut meta = txn.open_table(META)?;
    let Some(finalized) = read_meta(&meta, META_FINALIZED)? else { return Ok(0) };
    let pruned_through = read_counter(&meta, META_PRUNED_THROUGH)?;
    let mut events = txn.open_table(EVENTS)?;
    let Some(last) = events.last()?.map(|(cursor, _)| cursor.value()) else { return Ok(0) };
    let excess = last.saturating_sub(pruned_through).saturating_sub(retention.max_events.max(1));
    if excess == 0 {
        return Ok(0);
    }
    let mut through = pruned_through;
    for entry in
        events.range(pruned_through.saturating_add(1)..)?.take(usize::try_from(excess).unwrap_or(usize::MAX))
    {
        let (cursor, value) = entry?;
        let event = decode_event(cursor.value(), value.value())?;
        if event.burn.block_number > finalized.number {
            break;
        }
        through = cursor.value();
    }
    if through == pruned_through {
        return Ok(0);
    }
    events.retain_in(..=through, |_, _| false)?;
    meta.insert(META_PRUNED_THROUGH, through.to_be_bytes().as_slice())?;
    Ok(through - pruned_through)
}

const KIND_BURN: u8 = 1;
const KIND_RETRACT: u8 = 2;

/// Encodes an event (without its cursor, which is the record's key): kind byte, then the burn's RLP.
fn encode_event(kind: FeedEventKind, burn: &Burn) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + alloy_rlp::Encodable::length(burn));
    out.push(match kind {
        FeedEventKind::Burn => KIND_BURN,
        FeedEventKind::Retract => KIND_RETRACT,
    });
    alloy_rlp::Encodable::encode(burn, &mut out);
    out
}

fn decode_event(cursor: u64, bytes: &[u8]) -> Result<FeedEvent, CorruptRecord> {
    let (kind, burn) = bytes.split_first().ok_or(CorruptRecord::EmptyEvent { cursor })?;
    let kind = match *kind {
        KIND_BURN => FeedEventKind::Burn,
        KIND_RETRACT => FeedEventKind::Retract,
        kind => return Err(CorruptRecord::EventKind { cursor, kind }),
    };
    Ok(FeedEvent { cursor, kind, burn: decode_burn(burn)? })
}

fn decode_burn(bytes: &[u8]) -> Result<Burn, CorruptRecord> {
    Burn::decode(bytes).map_err(CorruptRecord::Burn)
}

fn burn_range(block_hash: B256) -> ([u8; 40], [u8; 40]) {
    (BurnKey { block_hash, log_index: 0 }.to_bytes(), BurnKey { block_hash, log_index: u64::MAX }.to_bytes())
}

/// The tables of one write transaction, and the next cursor.
struct Writer<'txn> {
    burns: redb::Table<'txn, &'static [u8], &'static [u8]>,
    events: redb::Table<'txn, u64, &'static [u8]>,
    canonical: redb::Table<'txn, u64, [u8; 32]>,
    next_cursor: u64,
    outcome: ApplyOutcome,
    // Parent of the lowest block this update removed: the head if nothing canonical remains.
    lowest_removed_parent: Option<BlockNumHash>,
}

impl<'txn> Writer<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        let pruned_through = read_counter(&txn.open_table(META)?, META_PRUNED_THROUGH)?;
        let events = txn.open_table(EVENTS)?;
        // Never below what was pruned: cursors are not reused.
        let next_cursor = match events.last()? {
            Some((cursor, _)) => cursor.value(),
            None => 0,
        }
        .max(pruned_through)
        .saturating_add(1);
        Ok(Self {
            burns: txn.open_table(BURNS)?,
            events,
            canonical: txn.open_table(CANONICAL)?,
            next_cursor,
            outcome: ApplyOutcome::default(),
            lowest_removed_parent: None,
        })
    }

    fn append_event(&mut self, kind: FeedEventKind, burn: &Burn) -> Result<(), StoreError> {
        self.events.insert(self.next_cursor, encode_event(kind, burn).as_slice())?;
        self.next_cursor = self.next_cursor.saturating_add(1);
        Ok(())
    }

    /// Removes a canonical block and its burns, appending one `Retract` per burn in log order.
    fn remove_block(&mut self, block: BlockNumHash, parent: Option<BlockNumHash>) -> Result<(), StoreError> {
        let (lo, hi) = burn_range(block.hash);
        let mut removed = Vec::new();
        for entry in self.burns.range::<&[u8]>(lo.as_slice()..=hi.as_slice())? {
            let (_, value) = entry?;
            removed.push(decode_burn(value.value())?);
        }
        for burn in &removed {
            self.burns.remove(burn.key().to_bytes().as_slice())?;
            self.append_event(FeedEventKind::Retract, burn)?;
        }
        self.canonical.remove(block.number)?;
        self.outcome.blocks_reverted += 1;
        self.outcome.burns_retracted += removed.len();
        let parent = parent.unwrap_or(BlockNumHash {
            number: block.number.saturating_sub(1),
            hash: self
                .canonical
                .get(block.number.saturating_sub(1))?
                .map(|h| B256::from(h.value()))
                .unwrap_or_default(),
        });
        self.lowest_removed_parent = Some(match self.lowest_removed_parent {
            Some(p) if p.number <= parent.number => p,
            _ => parent,
        });
        Ok(())
    }

    fn canonical_hash(&self, number: BlockNumber) -> Result<Option<B256>, StoreError> {
        Ok(self.canonical.get(number)?.map(|h| B256::from(h.value())))
    }

    fn revert(&mut self, block: &BlockRef) -> Result<(), StoreError> {
        match self.canonical_hash(block.num_hash.number)? {
            Some(hash) if hash == block.num_hash.hash => {
                self.remove_block(block.num_hash, Some(block.parent()))
            }
            // Not (or no longer) ours: a replay of a revert that is already applied.
            _ => {
                self.outcome.blocks_replayed += 1;
                Ok(())
            }
        }
    }

    fn commit(&mut self, block: &CommittedBlock) -> Result<(), StoreError> {
        let num_hash = block.block.num_hash;
        match self.canonical_hash(num_hash.number)? {
            Some(hash) if hash == num_hash.hash => {
                self.outcome.blocks_replayed += 1;
                return Ok(());
            }
            Some(other) => {
                // reth reverts before it commits a competing block; if it did not, still keep the store
                // equal to the canonical chain: drop our blocks from this height up, newest first.
                tracing::warn!(
                    target: "alys::exex::store",
                    number = num_hash.number,
                    ours = %other,
                    theirs = %num_hash.hash,
                    "committed block replaces a processed block without a revert"
                );
                let above: Vec<(u64, B256)> = self
                    .canonical
                    .range(num_hash.number..)?
                    .map(|e| e.map(|(k, v)| (k.value(), B256::from(v.value()))))
                    .collect::<Result<_, _>>()?;
                for (number, hash) in above.into_iter().rev() {
                    self.remove_block(BlockNumHash { number, hash }, None)?;
                }
            }
            None => {
                if let Some(parent) = self.canonical_hash(num_hash.number.saturating_sub(1))?
                    && parent != block.block.parent_hash
                {
                    // Recorded, not refused: the execution client is the authority on the canonical chain.
                    tracing::warn!(
                        target: "alys::exex::store",
                        number = num_hash.number,
                        parent = %block.block.parent_hash,
                        processed_parent = %parent,
                        "committed block does not extend the processed block below it"
                    );
                }
            }
        }
        self.canonical.insert(num_hash.number, num_hash.hash.0)?;
        for burn in &block.burns {
            let key = burn.key().to_bytes();
            // A burn already stored (its block's canonical record was pruned) is not announced twice.
            if self.burns.get(key.as_slice())?.is_some() {
                continue;
            }
            self.burns.insert(key.as_slice(), burn.encoded().as_slice())?;
            self.append_event(FeedEventKind::Burn, burn)?;
            self.outcome.burns_added += 1;
        }
        self.outcome.blocks_committed += 1;
        Ok(())
    }
}

impl BurnStore {
    /// Opens the store at `path`, creating the file and its tables if needed, with the default
    /// [`Retention`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::init(Database::create(path)?)
    }

    /// Keeps the event log within `retention` from the next commit on.
    pub const fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// A store in memory only: for an execution client without a data directory, and tests.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?)
    }

    fn init(db: Database) -> Result<Self, StoreError> {
        let txn = db.begin_write()?;
        txn.open_table(BURNS)?;
        txn.open_table(EVENTS)?;
        txn.open_table(CANONICAL)?;
        txn.open_table(META)?;
        txn.commit()?;
        Ok(Self { db, retention: Retention::default() })
    }

    /// Applies one notification's update in one write transaction.
    ///
    /// Idempotent: blocks already processed (same number and hash) are skipped, reverts of blocks that
    /// are not canonical here are skipped, so replaying a notification after a restart neither loses
    /// nor duplicates burns or feed events.
    pub fn apply(&self, update: &ChainUpdate) -> Result<ApplyOutcome, StoreError> {
        let _span = tracing::debug_span!(
            target: "alys::exex::store",
            "apply",
            reverted = update.reverted.len(),
            committed = update.committed.len()
        )
        .entered();
        let started = Instant::now();
        let txn = self.db.begin_write()?;
        let mut outcome = {
            let mut w = Writer::open(&txn)?;
            for block in update.reverted.iter().rev() {
                w.revert(block)?;
            }
            for block in &update.committed {
                w.commit(block)?;
            }
            let mut meta = txn.open_table(META)?;
            let head = match w.canonical.last()? {
                Some((number, hash)) => {
                    Some(BlockNumHash { number: number.value(), hash: B256::from(hash.value()) })
                }
                // Every processed block was reverted: the head is the parent of the lowest one.
                None => match w.lowest_removed_parent {
                    Some(parent) => Some(parent),
                    None => read_meta(&meta, META_HEAD)?,
                },
            };
            if let Some(head) = head {
                meta.insert(META_HEAD, encode_num_hash(head).as_slice())?;
            }
            let mut outcome = w.outcome;
            outcome.head = head;
            outcome.last_cursor = w.next_cursor.saturating_sub(1);
            outcome
        };
        if outcome.changed() {
            let pruned = prune_events(&txn, self.retention)?;
            txn.commit()?;
            self.record_pruned(pruned);
            metrics::histogram!(m::STORE_COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
            metrics::counter!(m::BURNS_EXTRACTED).increment(outcome.burns_added as u64);
            metrics::counter!(m::BURNS_RETRACTED).increment(outcome.burns_retracted as u64);
            metrics::gauge!(m::FEED_LAST_CURSOR).set(outcome.last_cursor as f64);
            if let Some(head) = outcome.head {
                metrics::gauge!(m::HEAD_BLOCK).set(head.number as f64);
            }
        } else {
            // A pure replay: nothing to write, no fsync.
            txn.abort()?;
            outcome.head = self.head()?;
        }
        metrics::counter!(m::BLOCKS_REPLAYED).increment(outcome.blocks_replayed as u64);
        tracing::debug!(
            target: "alys::exex::store",
            head = ?outcome.head.map(|h| h.number),
            added = outcome.burns_added,
            retracted = outcome.burns_retracted,
            replayed = outcome.blocks_replayed,
            elapsed_us = started.elapsed().as_micros() as u64,
            "applied chain update"
        );
        Ok(outcome)
    }

    /// The last processed block (what reth's `set_notifications_with_head` needs on restart).
    pub fn head(&self) -> Result<Option<BlockNumHash>, StoreError> {
        let txn = self.db.begin_read()?;
        read_meta(&txn.open_table(META)?, META_HEAD)
    }

    /// The finalized block last reported by the consensus layer.
    pub fn finalized(&self) -> Result<Option<BlockNumHash>, StoreError> {
        let txn = self.db.begin_read()?;
        read_meta(&txn.open_table(META)?, META_FINALIZED)
    }

    /// Records the finalized block. A report lower than the stored one is ignored (finality does not move
    /// back). Processed-block records below it are pruned: reverts never reach below finality, and a
    /// replayed burn is still recognised by its key.
    pub fn set_finalized(&self, finalized: BlockNumHash) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            if let Some(current) = read_meta(&meta, META_FINALIZED)?
                && current.number > finalized.number
            {
                tracing::warn!(
                    target: "alys::exex::store",
                    current = current.number,
                    reported = finalized.number,
                    "ignoring a finalized block below the stored one"
                );
                drop(meta);
                txn.abort()?;
                return Ok(());
            }
            meta.insert(META_FINALIZED, encode_num_hash(finalized).as_slice())?;
            let head = read_meta(&meta, META_HEAD)?;
            let mut canonical = txn.open_table(CANONICAL)?;
            // Keep the finalized block's own record (finished_height checks it) and never prune past head.
            let prune_below = head.map_or(0, |h| h.number).min(finalized.number);
            canonical.retain_in(..prune_below, |_, _| false)?;
        }
        let pruned = prune_events(&txn, self.retention)?;
        txn.commit()?;
        self.record_pruned(pruned);
        Ok(())
    }

    fn record_pruned(&self, pruned: u64) {
        if pruned > 0 {
            metrics::counter!(m::EVENTS_PRUNED).increment(pruned);
            if let Ok(first) = self.retained_from() {
                metrics::gauge!(m::FEED_RETAINED_FROM).set(first as f64);
            }
            tracing::debug!(target: "alys::exex::store", pruned, "pruned final events beyond retention");
        }
    }

    /// The first cursor the event log still holds (1 until retention pruned anything); reading after a
    /// lower cursor is [`StoreError::Pruned`].
    pub fn retained_from(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(read_counter(&txn.open_table(META)?, META_PRUNED_THROUGH)?.saturating_add(1))
    }

    /// The hash of the processed block at `number`, if it is canonical here (records below the
    /// finalized block are pruned).
    pub fn canonical_hash(&self, number: BlockNumber) -> Result<Option<B256>, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(CANONICAL)?.get(number)?.map(|h| B256::from(h.value())))
    }

    /// The height reth may prune its WAL to: min(finalized, head), from committed state only.
    ///
    /// `None` until both are known, and when the processed chain holds a different block at the finalized
    /// height (then nothing processed is final and reth must keep its WAL).
    pub fn finished_height(&self) -> Result<Option<BlockNumHash>, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let (Some(finalized), Some(head)) = (read_meta(&meta, META_FINALIZED)?, read_meta(&meta, META_HEAD)?)
        else {
            return Ok(None);
        };
        if finalized.number >= head.number {
            return Ok(Some(head));
        }
        let canonical = txn.open_table(CANONICAL)?;
        match canonical.get(finalized.number)? {
            Some(hash) if B256::from(hash.value()) != finalized.hash => {
                tracing::warn!(
                    target: "alys::exex::store",
                    number = finalized.number,
                    finalized = %finalized.hash,
                    processed = %B256::from(hash.value()),
                    "finalized block is not the processed block at its height"
                );
                Ok(None)
            }
            _ => Ok(Some(finalized)),
        }
    }

    /// The last cursor of the event log (0 before any event).
    pub fn last_cursor(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let pruned_through = read_counter(&txn.open_table(META)?, META_PRUNED_THROUGH)?;
        let events = txn.open_table(EVENTS)?;
        Ok(events.last()?.map_or(0, |(cursor, _)| cursor.value()).max(pruned_through))
    }

    /// Up to `limit` events with a cursor greater than `after`, in cursor order; an error if retention
    /// pruned some of them ([`StoreError::Pruned`]).
    pub fn events_after(&self, after: u64, limit: usize) -> Result<Vec<FeedEvent>, StoreError> {
        let Some(from) = after.checked_add(1) else { return Ok(Vec::new()) };
        let txn = self.db.begin_read()?;
        let pruned_through = read_counter(&txn.open_table(META)?, META_PRUNED_THROUGH)?;
        if after < pruned_through {
            return Err(StoreError::Pruned { after, retained_from: pruned_through.saturating_add(1) });
        }
        let events = txn.open_table(EVENTS)?;
        let mut out = Vec::new();
        for entry in events.range(from..)?.take(limit) {
            let (cursor, value) = entry?;
            out.push(decode_event(cursor.value(), value.value())?);
        }
        Ok(out)
    }

    /// The burn with this key, if it is canonical.
    pub fn burn(&self, key: BurnKey) -> Result<Option<Burn>, StoreError> {
        let txn = self.db.begin_read()?;
        let burns = txn.open_table(BURNS)?;
        match burns.get(key.to_bytes().as_slice())? {
            Some(value) => Ok(Some(decode_burn(value.value())?)),
            None => Ok(None),
        }
    }

    /// Every canonical burn, ordered by block number then log index.
    pub fn burns(&self) -> Result<Vec<Burn>, StoreError> {
        let txn = self.db.begin_read()?;
        let burns = txn.open_table(BURNS)?;
        let mut out = Vec::with_capacity(usize::try_from(burns.len()?).unwrap_or(0));
        for entry in burns.iter()? {
            let (_, value) = entry?;
            out.push(decode_burn(value.value())?);
        }
        out.sort_by_key(|b| (b.block_number, b.log_index));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]
    use alys_burns::test_utils::sample_burn;

    use super::*;

    #[test]
    fn event_roundtrip() {
        let burn = sample_burn();
        for kind in [FeedEventKind::Burn, FeedEventKind::Retract] {
            let bytes = encode_event(kind, &burn);
            assert_eq!(bytes[1..], burn.encoded(), "the burn is stored in its one encoding");
            assert_eq!(decode_event(9, &bytes).unwrap(), FeedEvent { cursor: 9, kind, burn: burn.clone() });
        }
    }

    #[test]
    fn truncated_records_are_errors() {
        let bytes = encode_event(FeedEventKind::Burn, &sample_burn());
        for len in 0..bytes.len() {
            assert!(decode_event(1, &bytes[..len]).is_err(), "len {len}");
        }
        assert_eq!(decode_event(1, &[]), Err(CorruptRecord::EmptyEvent { cursor: 1 }));
        assert_eq!(decode_event(1, &[9u8; 200]), Err(CorruptRecord::EventKind { cursor: 1, kind: 9 }));
        assert!(matches!(decode_event(1, &[KIND_BURN, 0xc0]), Err(CorruptRecord::Burn(_))));
    }

    #[test]
    fn block_refs_roundtrip_and_refuse_other_lengths() {
        let nh = BlockNumHash { number: 258, hash: B256::repeat_byte(4) };
        assert_eq!(decode_num_hash(META_HEAD, &encode_num_hash(nh)).unwrap(), nh);
        assert_eq!(
            decode_num_hash(META_HEAD, &[0; 39]),
            Err(CorruptRecord::BlockRef { key: META_HEAD, len: 39 })
        );
        assert!(decode_num_hash(META_FINALIZED, &[0; 41]).is_err());
    }
}
