//! The interface of the embedded execution engine.
//!
//! The engine (`alys-devnet-el`) owns the chain; its Engine API server (`alys-engine-api`) and eth JSON-RPC
//! server (`alys-eth-rpc`, with the developer methods of [`ToolingBackend`]) reach it only through the
//! traits here, so each side is built and tested on its own. The chain notifications carry what reth gives an Execution Extension, so the burn extractor consumes
//! the embedded engine and reth alike.

pub mod backend;
pub mod notifications;
pub mod tooling;

pub use backend::{
    BackendError, BlobSidecarError, BuiltPayload, EngineBackend, EngineError, EthBackend, PoolError,
};
pub use notifications::{Chain, ChainNotification, ExecutedBlock, NotContiguous};
pub use tooling::ToolingBackend;
