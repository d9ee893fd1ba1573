//! The interface of the embedded execution engine.
//!
//! The engine (`alys-devnet-el`) owns the chain; its Engine API server (`alys-engine-api`) and eth JSON-RPC
//! server (`alys-eth-rpc`) reach it only through the traits here, so each side is built and tested on its
//! own. The chain notifications carry what reth gives an Execution Extension, so the burn extractor consumes
//! the embedded engine and reth alike.

pub mod backend;
pub mod notifications;

pub use backend::{BackendError, BuiltPayload, EngineBackend, EngineError, EthBackend, PoolError};
pub use notifications::{Chain, ChainNotification, ExecutedBlock, NotContiguous};
