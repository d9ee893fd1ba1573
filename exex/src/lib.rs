//! The reth-free core of the Alys Execution Extension: bridge burns in, a durable burn feed out.
//!
//! This crate owns the peg-out side of the ExEx, written against alloy types only so it is tested in CI
//! (the reth adapter in `exex/reth` converts reth's notifications into [`alys_el_api::ChainNotification`]):
//!
//! - [`BurnExtractor`]: `RequestPegOut` logs of the bridge contract, keyed by (block hash, log index);
//! - [`BurnStore`]: redb store of canonical burns, the feed's append-only event log and the ExEx's own
//!   head, each notification applied in one transaction, idempotently;
//! - [`BurnExEx`]: notifications in, committed burns and `FinishedHeight` (min(finalized, head), only
//!   after the commit) out;
//! - [`feed`]: the `alys.burnfeed.v1` gRPC server ([`FeedServer`]) and the sidecar's resuming client
//!   ([`BurnFeedClient`]).

mod burn;
mod exex;
mod extract;
pub mod feed;
pub mod metrics;
mod store;
#[cfg(feature = "test-utils")]
pub mod test_utils;

pub use burn::{Burn, BurnKey, CorruptRecord, FeedEvent, FeedEventKind};
pub use exex::{BurnExEx, ExExError, Processed};
pub use extract::BurnExtractor;
pub use feed::{
    BurnFeedClient, ClientConfig, ClientError, CursorStore, FeedConfig, FeedHead, FeedServer, FileCursorStore,
};
pub use store::{ApplyOutcome, BlockRef, BurnStore, ChainUpdate, CommittedBlock, StoreError};
