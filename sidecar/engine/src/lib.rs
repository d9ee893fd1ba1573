//! The Engine API driver of the execution client (reth, geth or the embedded devnet engine: one code path).

mod auth;
mod client;

pub use auth::{JwtAuthLayer, JwtAuthService};
pub use client::{BuiltPayload, EngineClient, EngineClientError, EngineStats, EngineVersion};

/// Registers the help text of the Engine API client's metrics (label `method`, e.g.
/// `engine_newPayloadV4`) with the installed recorder.
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_histogram!(
        "alys_engine_request_seconds",
        Unit::Seconds,
        "Engine API call latency as the node sees it, per method (one attempt, retries counted separately)"
    );
    describe_counter!(
        "alys_engine_request_errors_total",
        "Engine API calls that failed (transport, HTTP or JSON-RPC error), per method"
    );
}
