//! The reth-free core of the Alys Execution Extension: bridge burns in, a durable burn feed out.
//!
//! An Execution Extension (ExEx) runs inside the execution client and is told of every change of the
//! canonical chain: blocks committed, blocks reverted, or both (a reorg). This crate turns those changes
//! into a durable record of the bridge's burns and serves it to the sidecar. It is written against
//! [`alys_burns::BlockLogs`] only, so it is tested in CI; the reth adapter in `exex/reth` and the devnet
//! engine implement that trait over their own block types without copies.
//!
//! - [`ChainUpdate`]: one notification as the store's input (blocks reverted, blocks committed with
//!   their burns), built outside any transaction with an [`alys_burns::BurnExtractor`];
//! - [`BurnStore`]: redb store of canonical burns, the feed's append-only event log and the ExEx's own
//!   head, each update applied in one transaction, idempotently (a replay changes nothing);
//! - [`BurnExEx`]: updates in, committed burns and `FinishedHeight` (min(finalized, head), computed
//!   only after the commit: DESIGN invariant 7) out;
//! - [`FeedServer`]: the `alys.burnfeed.v1` gRPC server over the store, woken by each commit, guarded by
//!   a bearer token and served over TLS off loopback; its client is [`alys_burns::BurnFeedClient`];
//! - [`Retention`]: how much of the event log is kept (never events of unfinalized blocks);
//! - [`BurnExEx::catch_up`]: for an execution client without a notification log (the devnet engine),
//!   re-reading the blocks missed since the stored head through [`CanonicalChain`].

mod exex;
pub mod metrics;
mod server;
mod store;

pub use exex::{BurnExEx, CanonicalChain, CatchUpError, CaughtUp, ExExError, Processed};
pub use server::{FeedConfig, FeedServer};
pub use store::{
    ApplyOutcome, BlockRef, BurnStore, ChainUpdate, CommittedBlock, CorruptRecord, Retention, StoreError,
};
