//! The ExEx itself, without reth: chain updates in, committed burns and `FinishedHeight` out.
//!
//! reth replays missed notifications from its write-ahead log. An execution client without one (the
//! devnet engine, whose notification channel drops what a slow receiver missed) uses
//! [`BurnExEx::catch_up`] instead: it reads the canonical chain from the ExEx's stored head on, through
//! [`CanonicalChain`], and applies the blocks it missed (reverting what was reorged away), so no burn is
//! lost.

use std::{future::Future, path::Path, sync::Arc};

use alloy_eips::BlockNumHash;
use alloy_primitives::BlockNumber;
use alys_burns::{BlockLogs, BurnExtractor};
use tokio::sync::watch;
use tracing::Instrument;

use crate::{
    FeedServer, metrics as m,
    store::{ApplyOutcome, BlockRef, BurnStore, ChainUpdate, StoreError},
};

/// An execution client's canonical chain, read block by block: what [`BurnExEx::catch_up`] reads
/// after missed notifications.
pub trait CanonicalChain {
    /// A canonical block with its receipts.
    type Block: BlockLogs + Send;
    /// Why a read failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The canonical head's number.
    fn head_number(&self) -> impl Future<Output = Result<BlockNumber, Self::Error>> + Send;

    /// The canonical block at `number` (genesis is 0), or `None` above the head.
    fn block(
        &self,
        number: BlockNumber,
    ) -> impl Future<Output = Result<Option<Self::Block>, Self::Error>> + Send;
}

/// Why a catch-up stopped. What it applied before is committed.
#[derive(Debug, thiserror::Error)]
pub enum CatchUpError<E: std::error::Error + 'static> {
    /// The store failed (reading, or applying a batch).
    #[error(transparent)]
    Store(#[from] ExExError),
    /// Reading the execution client's chain failed.
    #[error("reading the canonical chain: {0}")]
    Chain(#[source] E),
}

/// What a catch-up applied, summed over its transactions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaughtUp {
    /// The changes (counts summed; head and last cursor after the last transaction).
    pub outcome: ApplyOutcome,
    /// `FinishedHeight` after the last transaction.
    pub finished_height: Option<BlockNumHash>,
    /// Whether the chain was read up to its head; `false` when it changed under the reader (a reorg
    /// while catching up): call again, or let the next notification carry on.
    pub complete: bool,
}

/// An error while handling a chain update.
#[derive(Debug, thiserror::Error)]
pub enum ExExError {
    /// The store failed; the update was not applied (its transaction did not commit).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blocking task that writes the store did not complete.
    #[error("store task did not complete: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// What handling one chain update did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    /// The store's changes (all committed in one transaction before this is returned).
    pub outcome: ApplyOutcome,
    /// The height to report to reth as `FinishedHeight`, computed after the commit: min(finalized, head).
    pub finished_height: Option<BlockNumHash>,
}

/// The burn ExEx: extracts burns from chain notifications, commits them, and wakes feed subscribers.
///
/// Driving it from reth (the adapter in `exex/reth`, or the embedded engine's notifications):
/// 1. on start, `ctx.set_notifications_with_head(exex.head()?)`;
/// 2. for each notification, build its [`ChainUpdate`] from the reverted and committed blocks
///    ([`update`](Self::update)), then `let p = exex.handle_update(update).await?` and send
///    `FinishedHeight(p.finished_height)` if it is `Some` — only after the commit, so reth never prunes a
///    block the store has not durably processed (DESIGN invariant 7);
/// 3. when the consensus layer finalizes a block, `exex.set_finalized(block)` and report its result too.
#[derive(Debug)]
pub struct BurnExEx {
    store: Arc<BurnStore>,
    extractor: BurnExtractor,
    cursor: watch::Sender<u64>,
}

impl BurnExEx {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::new(Arc::new(BurnStore::open(path)?))
    }

    /// An ExEx over an open store.
    pub fn new(store: Arc<BurnStore>) -> Result<Self, StoreError> {
        let (cursor, _) = watch::channel(store.last_cursor()?);
        Ok(Self { store, extractor: BurnExtractor::default(), cursor })
    }

    /// Uses this extractor (another bridge address) instead of the default.
    pub const fn with_extractor(mut self, extractor: BurnExtractor) -> Self {
        self.extractor = extractor;
        self
    }

    /// The extractor that reads burns out of committed blocks.
    pub const fn extractor(&self) -> &BurnExtractor {
        &self.extractor
    }

    /// The update a chain notification stands for, with this ExEx's extractor: `reverted` blocks, then
    /// `committed` blocks, each run ascending. Extraction happens here, before and outside the store's
    /// write transaction; the blocks are only read.
    pub fn update<R: BlockLogs, C: BlockLogs>(
        &self,
        reverted: impl IntoIterator<Item = R>,
        committed: impl IntoIterator<Item = C>,
    ) -> ChainUpdate {
        ChainUpdate::new(reverted, committed, &self.extractor)
    }

    /// The store.
    pub const fn store(&self) -> &Arc<BurnStore> {
        &self.store
    }

    /// The last processed block: where reth must resume notifications after a restart.
    pub fn head(&self) -> Result<Option<BlockNumHash>, StoreError> {
        self.store.head()
    }

    /// The height reth may prune to now, from committed state.
    pub fn finished_height(&self) -> Result<Option<BlockNumHash>, StoreError> {
        self.store.finished_height()
    }

    /// Applies one chain update on the calling thread (it blocks on the store's fsync). When it returns
    /// `Ok`, the update is committed.
    pub fn process(&self, update: &ChainUpdate) -> Result<Processed, StoreError> {
        let processed = apply(&self.store, update)?;
        self.announce(&processed);
        Ok(processed)
    }

    /// Applies one chain update, writing the store on tokio's blocking pool. When it returns `Ok`, the
    /// update is committed.
    pub async fn handle_update(&self, update: ChainUpdate) -> Result<Processed, ExExError> {
        let store = Arc::clone(&self.store);
        let processed = tokio::task::spawn_blocking(move || apply(&store, &update)).await??;
        self.announce(&processed);
        Ok(processed)
    }

    /// Brings the store level with `chain` after missed notifications: finds the highest processed
    /// block `chain` still has (reverting the processed blocks above it, newest first, with their
    /// burns), then applies `chain`'s blocks from there to its head, `batch` blocks per transaction.
    ///
    /// Every transaction is an ordinary [`ChainUpdate`], so a catch-up racing live notifications is
    /// harmless: whatever both deliver is a replay. If the chain reorgs under the reader (a block that
    /// does not extend the one read before it), the catch-up stops with what it committed and
    /// [`CaughtUp::complete`] `false`.
    pub async fn catch_up<C: CanonicalChain>(
        &self,
        chain: &C,
        batch: usize,
    ) -> Result<CaughtUp, CatchUpError<C::Error>> {
        let span = tracing::info_span!(target: "alys::exex", "catch_up");
        self.catch_up_in_span(chain, batch).instrument(span).await
    }

    async fn catch_up_in_span<C: CanonicalChain>(
        &self,
        chain: &C,
        batch: usize,
    ) -> Result<CaughtUp, CatchUpError<C::Error>> {
        metrics::counter!(m::CATCH_UPS).increment(1);
        let batch = batch.max(1);
        // Walk down from the stored head to the highest processed block the chain still holds.
        let store = |e: StoreError| CatchUpError::Store(e.into());
        let head = self.store.head().map_err(store)?;
        let mut fork = head.map_or(0, |h| h.number);
        let mut reverted = Vec::new();
        let mut base = None;
        while fork > 0 {
            let Some(ours) = self.store.canonical_hash(fork).map_err(store)? else { break };
            let theirs = chain.block(fork).await.map_err(CatchUpError::Chain)?;
            if let Some(block) = theirs.filter(|b| b.num_hash().hash == ours) {
                base = Some(block.num_hash());
                break;
            }
            let parent = self.store.canonical_hash(fork - 1).map_err(store)?.unwrap_or_default();
            reverted
                .push(BlockRef { num_hash: BlockNumHash { number: fork, hash: ours }, parent_hash: parent });
            fork -= 1;
        }
        reverted.reverse();
        let mut previous = match base {
            Some(base) => Some(base.hash),
            // Below the processed records (pruned at finality, or nothing processed): take the chain's.
            None => chain.block(fork).await.map_err(CatchUpError::Chain)?.map(|b| b.num_hash().hash),
        };
        let tip = chain.head_number().await.map_err(CatchUpError::Chain)?;
        let mut caught = CaughtUp { complete: true, ..CaughtUp::default() };
        let mut next = fork.saturating_add(1);
        loop {
            let mut blocks = Vec::new();
            while blocks.len() < batch && next <= tip {
                let Some(block) = chain.block(next).await.map_err(CatchUpError::Chain)? else { break };
                if previous.is_some_and(|p| p != block.parent_hash()) {
                    caught.complete = false;
                    break;
                }
                previous = Some(block.num_hash().hash);
                blocks.push(block);
                next = next.saturating_add(1);
            }
            let stop = blocks.len() < batch || !caught.complete;
            let update = self.update(std::mem::take(&mut reverted).iter().map(|b| RefOnly(*b)), &blocks);
            if !update.is_empty() {
                let processed = self.handle_update(update).await?;
                caught.outcome.add(&processed.outcome);
                caught.finished_height = processed.finished_height;
            }
            if stop {
                break;
            }
        }
        if next <= tip {
            caught.complete = false;
        }
        tracing::info!(
            target: "alys::exex",
            reverted = caught.outcome.blocks_reverted,
            committed = caught.outcome.blocks_committed,
            burns = caught.outcome.burns_added,
            complete = caught.complete,
            "caught up from the stored head"
        );
        Ok(caught)
    }

    /// Records the block the consensus layer finalized; returns the new `FinishedHeight`.
    pub fn set_finalized(&self, finalized: BlockNumHash) -> Result<Option<BlockNumHash>, StoreError> {
        self.store.set_finalized(finalized)?;
        let finished = self.store.finished_height()?;
        if let Some(f) = finished {
            metrics::gauge!(m::FINISHED_HEIGHT).set(f.number as f64);
        }
        Ok(finished)
    }

    /// A burn-feed server reading this ExEx's store and woken by its commits.
    pub fn feed_server(&self) -> FeedServer {
        FeedServer::new(Arc::clone(&self.store), self.cursor.subscribe())
    }

    fn announce(&self, processed: &Processed) {
        // After the commit: a subscriber woken now finds the events in the store.
        self.cursor.send_if_modified(|cursor| {
            let changed = *cursor != processed.outcome.last_cursor;
            *cursor = processed.outcome.last_cursor;
            changed
        });
        if let Some(f) = processed.finished_height {
            metrics::gauge!(m::FINISHED_HEIGHT).set(f.number as f64);
        }
    }
}

fn apply(store: &BurnStore, update: &ChainUpdate) -> Result<Processed, StoreError> {
    let _span = tracing::info_span!(
        target: "alys::exex",
        "chain_update",
        reverted = update.reverted.len(),
        committed = update.committed.len(),
        tip = update.tip().map(|b| b.number),
    )
    .entered();
    let outcome = store.apply(update)?;
    let finished_height = store.finished_height()?;
    Ok(Processed { outcome, finished_height })
}

/// A reverted block as the store needs it (number, hash, parent): reverted blocks' logs are not read.
#[derive(Debug, Clone, Copy)]
struct RefOnly(BlockRef);

impl BlockLogs for RefOnly {
    fn num_hash(&self) -> BlockNumHash {
        self.0.num_hash
    }

    fn parent_hash(&self) -> alloy_primitives::B256 {
        self.0.parent_hash
    }

    fn receipt_logs(&self) -> impl Iterator<Item = &[alloy_primitives::Log]> {
        std::iter::empty()
    }

    fn tx_hash(&self, _index: usize) -> Option<alloy_primitives::B256> {
        None
    }
}
