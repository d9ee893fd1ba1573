//! The Bitcoin client's metrics (`alys_bitcoin_*`).

/// Duration of bitcoind calls by method (histogram, seconds).
pub const RPC_SECONDS: &str = "alys_bitcoin_rpc_seconds";
/// Failed bitcoind calls by method and kind (`transport`, `rpc`).
pub const RPC_ERRORS: &str = "alys_bitcoin_rpc_errors_total";
/// bitcoind's best height, as last seen.
pub const NODE_HEIGHT: &str = "alys_bitcoin_node_height";
/// The height the node has followed and recorded.
pub const FOLLOWED_HEIGHT: &str = "alys_bitcoin_followed_height";
/// 1 when the last call to bitcoind succeeded.
pub const CONNECTED: &str = "alys_bitcoin_connected";
/// Blocks that left the best chain under the follower.
pub const REORGS: &str = "alys_bitcoin_reorgs_total";
/// Blocks the follower recorded.
pub const BLOCKS: &str = "alys_bitcoin_blocks_followed_total";

/// Registers help text for every metric above.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(RPC_SECONDS, metrics::Unit::Seconds, "Duration of calls to bitcoind, by method.");
    describe_counter!(RPC_ERRORS, "Failed calls to bitcoind, by method and kind (transport, rpc).");
    describe_gauge!(NODE_HEIGHT, "bitcoind's best block height, as last seen.");
    describe_gauge!(FOLLOWED_HEIGHT, "Height of the last Bitcoin block the node recorded.");
    describe_gauge!(CONNECTED, "1 when the last call to bitcoind succeeded, 0 when it failed.");
    describe_counter!(REORGS, "Bitcoin blocks that left the best chain while the node followed it.");
    describe_counter!(BLOCKS, "Bitcoin blocks the node recorded.");
}
