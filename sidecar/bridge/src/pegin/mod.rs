//! Peg-in: BTC coming in.
//!
//! ```text
//!  bitcoind ──follower──▶ watcher: each block's deposits recorded with the block (pegin_deposits)
//!                                   │  pegin_confirmations deep
//!                                   ▼
//!  slot author: PeginRules::select ──▶ claims in the consensus block, minted as withdrawals
//!                                   │  (gwei = sats × 10), the outpoints committed with the block
//!                                   ▼
//!  every importer: PeginRules::verify against its own bitcoind and minted set ──▶ import or refuse
//! ```
//!
//! [`deposit`] decides from a transaction alone whether it is a deposit, [`rules`] what a block may
//! claim, [`watcher`] follows Bitcoin. The minted-outpoint set lives in the node's database, written by
//! the chain in the commit of the block that claims (see `alys_storage`'s `pegin` module).

pub mod deposit;
pub mod metrics;
pub mod rules;
pub mod watcher;

pub use deposit::{Deposit, Rejection, evm_address_of, scan_block, scan_transaction};
pub use rules::{
    MAX_CLAIMS_PER_BLOCK, PeginError, PeginRules, deposit_scripts_at, display_block, display_txid,
};
pub use watcher::PeginWatcher;
