//! The eth JSON-RPC server (HTTP and WebSocket) of the embedded execution engine.
//!
//! dApps, wallets, `cast` and scripts talk to it as they talk to geth or reth. It owns the wire: parameter
//! parsing, answer shapes, error codes, subscriptions, polling filters and limits; the engine behind it is
//! reached only through [`alys_el_api::EthBackend`] and [`alys_el_api::ToolingBackend`], so the server is
//! generic over the backend and tested against a fake one (and against the real engine).
//!
//! ```no_run
//! # async fn run(backend: impl alys_el_api::ToolingBackend) -> Result<(), alys_eth_rpc::StartError> {
//! use alys_eth_rpc::{EthRpcConfig, start};
//!
//! let handle = start(backend, EthRpcConfig::default()).await?; // 127.0.0.1:8545 and :8546
//! println!("HTTP on {:?}, WebSocket on {:?}", handle.http_addr(), handle.ws_addr());
//! handle.stop();
//! handle.stopped().await;
//! # Ok(()) }
//! ```
//!
//! # Methods
//!
//! `web3_clientVersion`, `web3_sha3`, `net_version` (decimal), `net_listening`, `net_peerCount`,
//! `eth_chainId`, `eth_syncing` (`false`), `eth_mining` (`false`), `eth_accounts` (`[]`), `eth_blockNumber`,
//! `eth_getBlockByNumber`, `eth_getBlockByHash`, `eth_getBlockTransactionCountByNumber`/`ByHash`,
//! `eth_getTransactionByBlockNumberAndIndex`/`ByBlockHashAndIndex`, `eth_getBlockReceipts`,
//! `eth_getBalance`, `eth_getTransactionCount`, `eth_getCode`, `eth_getStorageAt`, `eth_call`,
//! `eth_estimateGas`, `eth_gasPrice`, `eth_maxPriorityFeePerGas`, `eth_feeHistory`, `eth_sendRawTransaction`,
//! `eth_getTransactionByHash`, `eth_getTransactionReceipt`, `eth_getLogs`, `eth_newFilter`,
//! `eth_newBlockFilter`, `eth_getFilterChanges`, `eth_getFilterLogs`, `eth_uninstallFilter`, and over
//! WebSocket `eth_subscribe`/`eth_unsubscribe` with `newHeads`, `logs` and `newPendingTransactions`.
//!
//! For developer tools: `eth_blobBaseFee` (the head's blob fee, `null` before Cancun), `eth_getProof`
//! (EIP-1186), `eth_createAccessList`, `debug_traceTransaction` and `debug_traceCall` (geth's struct logger,
//! `callTracer` with `onlyTopCall`/`withLog`, `prestateTracer`, `4byteTracer`, `flatCallTracer`,
//! `muxTracer`, `noopTracer`; no JavaScript tracers), `txpool_content`, `txpool_status`,
//! `txpool_inspect`, and `rpc_modules` (every namespace served, at version `1.0`).
//!
//! Parameters are read as geth reads them: positional, optional trailing ones may be omitted or `null` (the
//! block defaults to `latest`), extra ones are refused. Unknown blocks, transactions and receipts are `null`.
//! `eth_call`/`eth_estimateGas` refuse state and block overrides (`-32602`) rather than ignore them, and so
//! does `debug_traceCall` (with `txIndex`).
//!
//! # Errors
//!
//! See [`error`] for the codes: pool rejections `-32000` with geth's message (a sender short of funds gets
//! `insufficient funds for gas * price + value: …` from the pool and from calls alike, as in geth); a
//! trace of an unknown transaction `-32000 transaction not found`; reverts `3` with
//! `execution reverted[: reason]` and the revert data in `data`; other execution errors `-32000`; log-query
//! limits and bad parameters `-32602` (reth's choice); an unknown block in a state read `-32001
//! header not found`; internal failures `-32603`; malformed JSON `-32700`; unknown methods `-32601`;
//! subscriptions over the HTTP-only server `-32601 notifications not supported`. Oversized HTTP bodies get
//! status 413; batches over the limit get an error answer.
//!
//! # Subscriptions
//!
//! Fed by [`alys_el_api::EthBackend::subscribe_chain`]. `newHeads` sends each committed block's header;
//! `logs` sends matching logs of committed blocks, and on a revert or reorg first re-sends the matching logs
//! of the removed blocks with `removed: true`. A subscriber that lags behind the broadcast channel is
//! **closed with an error notification** (`subscription lagged behind the chain and missed N notifications;
//! subscribe again`), never silently skipped; the connection and the server go on. `newPendingTransactions`
//! is fed by [`alys_el_api::ToolingBackend::subscribe_pending_transactions`]: the hash of each transaction
//! the pool accepts, or the whole transaction with `true` as its parameter; it lags and closes the same way.

mod api;
mod args;
pub mod config;
pub mod error;
mod filters;
mod module;
mod pubsub;
mod server;
mod tooling;
mod trace;

pub use api::EthApi;
pub use config::{EthRpcConfig, default_client_version};
pub use module::rpc_module;
pub use pubsub::rpc_header;
pub use server::{EthRpcHandle, StartError, start};
pub use tooling::{MAX_PROOF_KEYS, MODULE_VERSION};
