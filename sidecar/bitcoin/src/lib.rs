//! The Alys node's Bitcoin client.
//!
//! Every federation node runs its own Bitcoin node (Bitcoin Core 25 or later) and trusts nothing about
//! Bitcoin it has not asked it: deposits are found by walking its best chain, a block's peg-in claims
//! are checked against it, and peg-out transactions are broadcast through it.
//!
//! * [`BitcoinClient`]: bitcoind's JSON-RPC through the `bitcoincore-rpc` crate, authenticated with the
//!   `.cookie` file bitcoind writes (re-read when bitcoind restarts) or `-rpcuser`/`-rpcpassword`,
//!   each call bounded by a timeout and retried with exponential backoff when the transport fails.
//!   bitcoind's own errors come back typed with Bitcoin Core's codes ([`BitcoinError::Rpc`]).
//! * [`Follower`]: the next step along the best chain from a position the caller stores, so the
//!   caller commits each block with what it found in it and a reorg is undone block by block.
//! * [`BitcoinStatus`]: what `alys_syncStatus.bitcoin` reports.
//!
//! Metrics are `alys_bitcoin_*` ([`metrics`]).

mod client;
mod follower;
pub mod metrics;

pub use client::{
    BestBlock, BitcoinAuth, BitcoinClient, BitcoinClientConfig, BitcoinError, HeaderInfo, RPC_NOT_FOUND,
    RPC_OUT_OF_RANGE,
};
pub use follower::{DEFAULT_START_DEPTH, Follower, Step};

/// Where the node stands with its Bitcoin node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BitcoinStatus {
    /// Whether the last call to bitcoind succeeded.
    pub connected: bool,
    /// bitcoind's best height.
    pub height: u64,
    /// bitcoind's best block hash (display order), when known.
    pub best_hash: Option<bitcoin::BlockHash>,
    /// The height the node has followed and recorded.
    pub followed_height: Option<u64>,
}
