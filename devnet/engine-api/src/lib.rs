//! The Engine API server of the embedded execution engine.
//!
//! The consensus sidecar drives reth, geth or the embedded engine through the Engine API; this crate makes
//! the embedded engine indistinguishable from reth on that wire. It owns the JSON-RPC surface
//! (`engine_newPayloadV2-4`, `engine_forkchoiceUpdatedV2-3`, `engine_getPayloadV2-4` with the blobs
//! bundle, the payload bodies methods, `engine_getBlobsV1`, `engine_exchangeCapabilities`,
//! `engine_getClientVersionV1`), the method-version rules reth applies by fork ([`validation`]), the
//! spec's error codes ([`error`]) and JWT authentication ([`jwt`]).
//! The engine itself is reached only through [`alys_el_api::EngineBackend`].
//!
//! ```no_run
//! # async fn run<B: alys_el_api::EngineBackend>(backend: B) -> Result<(), Box<dyn std::error::Error>> {
//! use alys_engine_api::{EngineApiConfig, EngineApiServer};
//! let config = EngineApiConfig::from_secret_file("etc/jwt.hex")?;
//! let handle = EngineApiServer::new(backend, config).start().await?;
//! # handle.stop();
//! # Ok(()) }
//! ```

pub mod config;
pub mod error;
pub mod jwt;
pub mod server;
pub mod validation;

pub use config::EngineApiConfig;
pub use jwt::JwtAuthLayer;
pub use server::{CAPABILITIES, EngineApiHandle, EngineApiServer, MAX_BLOB_HASHES, StartError};
pub use validation::EngineApiVersion;

/// The shared-secret type and its errors, re-exported so callers need not depend on alloy for them.
pub use alloy_rpc_types_engine::{JwtError, JwtSecret};

/// Registers the help text of the embedded engine's Engine API server metrics (label `method`) with the
/// installed recorder. These are the server's side of each call; the node's own view of the same calls,
/// including the HTTP round trip, is `alys_engine_request_seconds`.
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_histogram!(
        "alys_devnet_engine_api_server_seconds",
        Unit::Seconds,
        "Embedded engine: time spent handling an Engine API call, per method"
    );
    describe_counter!(
        "alys_devnet_engine_api_requests_total",
        "Embedded engine: Engine API calls handled, per method and outcome (ok, error)"
    );
    describe_counter!(
        "alys_devnet_engine_api_auth_failures_total",
        "Embedded engine: Engine API requests refused for a missing or invalid JWT"
    );
}
