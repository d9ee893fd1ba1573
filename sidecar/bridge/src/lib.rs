//! The Alys bridge: BTC coming in ([`pegin`]) and leaving Alys.
//!
//! A user burns coins on the bridge contract (`requestPegOut(bytes bitcoinAddress)`); the burn counts
//! once its block is finalized by merged mining and is canonical, and is then released for payment,
//! each burn exactly once (DESIGN invariant 3). This crate follows the burns and keeps the ledger's
//! pending and released sets (in the node's database, [`alys_storage`]) in step with the chain.
//!
//! Two sources feed the ledger ([`source`]): the ExEx burn feed (reth with the Alys ExEx, and the devnet
//! engine), reached over TLS or on loopback with a bearer token, whose cursor commits in the same
//! transaction as the event it announced; and, for geth, [`GethPoller`], which reads `eth_getLogs` of
//! the bridge over finalized ranges only, chunk by chunk (each chunk committed with the height it
//! reaches; a range the server refuses is halved), resuming from a stored height. Both decode logs with
//! [`alys_burns::BurnExtractor`], so a burn has the same key (block hash, log index) on either path.
//!
//! A burn is released only in a transaction that finds its block final and canonical by the stored
//! consensus chain; a burn of an orphaned block waits for its retraction. Every commit of this path has
//! named crash points ([`PegoutCommit`]).

mod commit;
mod geth;
pub mod metrics;
pub mod pegin;
pub mod source;

/// Peg-out proposals, their checks and the payer (the `alys-pegout` crate).
pub use alys_pegout as pegout;
pub use commit::PegoutCommit;
pub use geth::{Chunks, GethPoller, GethPollerError, LogChunk};
pub use source::{BurnSourceConfig, SourceError};
