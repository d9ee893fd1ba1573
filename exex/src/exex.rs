//! The ExEx itself, without reth: chain updates in, committed burns and `FinishedHeight` out.

use std::{path::Path, sync::Arc};

use alloy_eips::BlockNumHash;
use alys_burns::{BlockLogs, BurnExtractor};
use tokio::sync::watch;

use crate::{
    FeedServer, metrics as m,
    store::{ApplyOutcome, BurnStore, ChainUpdate, StoreError},
};

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
