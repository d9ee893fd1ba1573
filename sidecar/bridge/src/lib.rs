//! The Alys bridge: BTC leaving Alys.
//!
//! A user burns coins on the bridge contract (`requestPegOut(bytes bitcoinAddress)`); the burn counts
//! once its block is finalized by merged mining and is then released for payment, each burn exactly
//! once (DESIGN invariant 3). This crate follows the burns and keeps the ledger's pending and released
//! sets (in the node's database, [`alys_storage`]) in step with the chain.
//!
//! Two sources feed the ledger ([`source`]): the ExEx burn feed (reth with the Alys ExEx, and the devnet
//! engine), whose cursor commits in the same transaction as the burns it announced, and, for geth,
//! [`GethPoller`], which reads `eth_getLogs` of the bridge over finalized ranges only, in bounded chunks,
//! resuming from a stored height. Both decode logs with [`alys_burns::BurnExtractor`], so a burn has the
//! same key (block hash, log index) on either path.

mod geth;
pub mod source;

pub use geth::{GethPoller, GethPollerError};
pub use source::{BurnSourceConfig, SourceError};
