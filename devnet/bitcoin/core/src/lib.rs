//! The chain side of the devnet's Bitcoin regtest node: consensus, UTXO set, mempool, block store and
//! wallet. `alys-devnet-bitcoin` serves it over bitcoind's JSON-RPC.
//!
//! The rules are Bitcoin Core's for regtest ([`params`]): proof of work at the regtest target, BIP34
//! heights, the 150-block halving, coinbase maturity, merkle roots, the segwit witness commitment,
//! median-time-past, and every input script verified by libbitcoinconsensus ([`chain`]). The
//! [`mempool`] takes BIP125 replacements as Core 25 does and refuses fees under 1 sat/vB.
//! [`node::Node`] ties them to the data directory ([`store`], where the mempool is also saved across a
//! clean restart) and the P2WPKH [`wallet`], and keeps the mempool right across reorgs.

pub mod chain;
pub mod error;
pub mod mempool;
pub mod node;
pub mod params;
pub mod store;
pub mod wallet;

pub use crate::node::{Node, NodeError, NodeOptions};
