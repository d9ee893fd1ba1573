//! The embedded execution engine of Alys devnets and tests.
//!
//! A small Ethereum execution client core: genesis from an [`alys_chainspec::ChainSpec`], block execution
//! with alloy-evm's Ethereum block executor on revm, payload validation and building, fork choice with
//! reorgs, reth-shaped chain notifications, a transaction pool and persistence in redb. The Engine API and
//! eth JSON-RPC servers reach it only through [`EngineHandle`], which implements
//! [`alys_el_api::EngineBackend`], [`alys_el_api::EthBackend`] and [`alys_el_api::ToolingBackend`] (proofs,
//! access lists and debug traces, the last two run by `alys-el-trace`).
//!
//! Start one with [`Engine::spawn`]:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use alys_devnet_el::{Engine, EngineConfig};
//!
//! let spec = Arc::new(alys_chainspec::ChainSpec::devnet()?);
//! let engine = Engine::spawn(EngineConfig::new(spec).with_datadir("/tmp/alys-el"))?;
//! println!("genesis {}", engine.genesis_hash());
//! # Ok(()) }
//! ```
//!
//! **Actor.** The engine is one tokio task that owns all chain state (block tree, canonical index,
//! pool, built payloads). [`EngineHandle`] is a cloneable handle that sends it requests over a bounded
//! channel and awaits the answer; each request runs in a `tracing` span named after it. When the task is
//! gone, handle methods answer with a typed error ([`EngineGone`], mapped to the traits' `Internal`).
//!
//! **Execution.** Blocks run through alloy-evm's `EthBlockExecutor` (revm 43) behind revm's `State`
//! cache: EIP-2935 and EIP-4788 system calls, the transactions, EIP-7002/7251 request calls and the
//! withdrawal credits (gwei → wei; this is how peg-ins mint). Building and validation run the same code,
//! so a block built by one engine validates on another. The header rules, the fork schedule and EIP-7610
//! (creation at an account with storage collides, which revm does not check) are `alys_el_consensus`'s.
//!
//! **Blobs.** Blob transactions (EIP-4844) enter the pool with KZG-checked sidecars; the builder fills a
//! block up to the fork's blob limit and the payload carries the sidecars as its blobs bundle;
//! `newPayload` checks the versioned hashes against the block's; `engine_getBlobsV1` reads the pool.
//!
//! **State.** Every retained block keeps a full state snapshot made of `imbl` persistent maps plus
//! persistent Merkle-Patricia tries with cached node hashes, so a block's state shares everything it did
//! not change with its parent, state roots cost hashing proportional to the block's changes, reorgs just
//! switch snapshots and reads at any retained block need no replay. States are kept from
//! `min(finalized, head - 256)` up to every tip; older canonical blocks keep body and receipts only.
//!
//! **Persistence.** With a data directory, blocks, the canonical index and the forkchoice live in redb,
//! one write transaction per block and per forkchoice change, so a crash never leaves a half-written
//! change. State is not persisted: on open the engine re-executes the stored blocks from genesis (fine
//! for devnets, linear in chain length).

mod engine;
mod execute;
mod genesis;
mod handle;
mod rpc;
mod state;
mod store;
mod tooling;
mod trie;

pub use alys_el_consensus::AlysForks;
pub use handle::{Engine, EngineConfig, EngineGone, EngineHandle, EngineStartError};
pub use rpc::{DEFAULT_TIP, MAX_LOG_RANGE, MAX_LOG_RESULTS};
pub use store::StoreError;
