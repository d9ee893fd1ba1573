//! The Alys node's JSON-RPC API (HTTP and WebSocket on one port, 3000 by default), as jsonrpsee traits:
//! the node implements the `*Server` traits, and miners, the devnet and tests call it through the
//! generated `*Client` traits with the same request and response types.
//!
//! | trait | methods | who calls them |
//! |---|---|---|
//! | [`MiningApiServer`] | `createauxblock`, `submitauxblock` | merged-mining pools and the reference miner (Namecoin's and Alys's shapes) |
//! | [`ChainApiServer`] | `getheadblock`, `getblockbyheight`, `getblockbyhash`, `alys_syncStatus`, `alys_health` | explorers, operators, monitoring |
//! | [`BridgeApiServer`] | `getdepositaddress`, `alys_depositAddresses`, `alys_pendingPegouts`, `alys_pegouts` | users and dApps moving BTC |
//! | [`GovernanceApiServer`] | `alys_governanceStatus`, `alys_proposals`, `alys_runtimeState` | operators |
//! | [`AdminApiServer`] | `alys_pauseProduction`, `alys_resumeProduction` (the admin token first) | operators |
//!
//! Every error has a code from [`ErrorCode`]; `GET /health` answers like `alys_health`.

mod api;
mod error;
pub mod types;

pub use api::{
    AdminApiClient, AdminApiServer, BridgeApiClient, BridgeApiServer, ChainApiClient, ChainApiServer,
    GovernanceApiClient, GovernanceApiServer, MiningApiClient, MiningApiServer,
};
pub use error::{ErrorCode, rpc_error};
pub use jsonrpsee;
