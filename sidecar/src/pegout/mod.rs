//! Peg-out requests as the sidecar learns them: burns on the bridge contract, released to the bridge
//! only once their block is finalized, each exactly once (DESIGN invariant 3).
//!
//! Two sources feed the same [`PegoutLedger`]: the ExEx burn feed (reth with the Alys ExEx, and the
//! devnet engine), and, for geth, [`GethPoller`], which reads `eth_getLogs` of the bridge over finalized
//! ranges only, in bounded chunks, resuming from a stored height. Both decode logs with
//! `alys_exex::BurnExtractor`, so a burn has the same key (block hash, log index) on either path.

mod geth;
mod ledger;
pub mod source;

pub use geth::{GethPoller, GethPollerError};
pub use ledger::{LedgerError, PegoutLedger};
pub use source::BurnSourceConfig;
