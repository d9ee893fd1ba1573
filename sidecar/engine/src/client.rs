//! A typed Engine API client that picks the method version from the fork at the payload's timestamp.

use std::{sync::Arc, time::Duration};

use backon::{BackoffBuilder, ExponentialBuilder};

use alloy_eips::eip7685::Requests;
use alloy_primitives::{B256, U256};
use alloy_rpc_types_engine::{
    ExecutionPayload, ExecutionPayloadEnvelopeV2, ExecutionPayloadEnvelopeV3, ExecutionPayloadEnvelopeV4,
    ExecutionPayloadFieldV2, ExecutionPayloadInputV2, ExecutionPayloadV3, ForkchoiceState, ForkchoiceUpdated,
    JwtSecret, PayloadAttributes, PayloadId, PayloadStatus,
};
use alys_chainspec::{ChainSpec, Fork};
use jsonrpsee::{
    core::{ClientError, client::ClientT},
    http_client::{HttpBackend, HttpClient, HttpClientBuilder, RpcLogger, RpcService},
    rpc_params,
};

use tracing::Instrument;

use super::auth::{JwtAuthLayer, JwtAuthService};

/// The Engine API method generation used for a fork (reth's and geth's rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EngineVersion {
    /// Shanghai: `forkchoiceUpdatedV2`, `getPayloadV2`, `newPayloadV2`.
    V2,
    /// Cancun: `forkchoiceUpdatedV3`, `getPayloadV3`, `newPayloadV3`.
    V3,
    /// Prague: `forkchoiceUpdatedV3`, `getPayloadV4`, `newPayloadV4`.
    V4,
}

impl EngineVersion {
    /// The version for payloads of `fork`.
    pub const fn for_fork(fork: Fork) -> Self {
        match fork {
            Fork::Shanghai => Self::V2,
            Fork::Cancun => Self::V3,
            Fork::Prague => Self::V4,
        }
    }
}

/// An Engine API call that failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineClientError {
    /// The request did not reach the execution client, or no answer came back (retryable).
    #[error("engine transport error: {0}")]
    Transport(#[source] ClientError),
    /// The execution client answered with a JSON-RPC error.
    #[error("engine returned error {code}: {message}")]
    Rpc {
        /// The JSON-RPC error code (e.g. -38001 unknown payload).
        code: i32,
        /// The error message, as the execution client wrote it.
        message: String,
    },
    /// The execution client answered with something that is not the expected result.
    #[error("malformed engine response: {0}")]
    Malformed(#[source] ClientError),
    /// The payload's version does not fit the fork at its timestamp (a caller's mistake).
    #[error("a {fork:?} timestamp needs a {needed} payload")]
    PayloadVersion {
        /// The fork at the payload's timestamp.
        fork: alys_chainspec::Fork,
        /// What that fork needs.
        needed: &'static str,
    },
    /// From Cancun on `newPayload` needs the parent beacon block root.
    #[error("parentBeaconBlockRoot is required from Cancun on")]
    MissingBeaconRoot,
    /// The client could not be built (bad URL).
    #[error("invalid engine endpoint: {0}")]
    Endpoint(#[source] ClientError),
}

impl EngineClientError {
    /// Whether retrying the same call may succeed (transport problems only).
    pub const fn is_transport(&self) -> bool {
        matches!(self, Self::Transport(_))
    }

    /// The HTTP status the execution client refused the request with (401: wrong JWT secret).
    pub fn http_status(&self) -> Option<u16> {
        let Self::Transport(ClientError::Transport(error)) = self else { return None };
        match error.downcast_ref::<jsonrpsee::http_client::transport::Error>() {
            Some(jsonrpsee::http_client::transport::Error::Rejected { status_code }) => Some(*status_code),
            _ => None,
        }
    }
}

impl From<ClientError> for EngineClientError {
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::Call(e) => Self::Rpc { code: e.code(), message: e.message().to_owned() },
            e @ (ClientError::ParseError(_) | ClientError::InvalidRequestId(_)) => Self::Malformed(e),
            other => Self::Transport(other),
        }
    }
}

/// A payload the execution client built, as returned by `getPayload`.
#[derive(Debug, Clone)]
pub struct BuiltPayload {
    /// The execution payload (V2 for Shanghai, V3 from Cancun on).
    pub payload: ExecutionPayload,
    /// The fees the block pays its fee recipient.
    pub block_value: U256,
    /// The EIP-7685 requests (Prague and later).
    pub execution_requests: Option<Requests>,
}

type AuthedHttpClient = HttpClient<RpcLogger<RpcService<JwtAuthService<HttpBackend>>>>;

/// Engine API client with JWT authentication and per-fork method versions.
///
/// Transport failures are retried (100 ms doubling, four retries); answers from the execution client,
/// errors and `INVALID` included, never are.
#[derive(Debug, Clone)]
pub struct EngineClient {
    http: AuthedHttpClient,
    chain_spec: Arc<ChainSpec>,
    retry: ExponentialBuilder,
    stats: Arc<EngineStats>,
}

/// Running totals of the Engine API calls a client (and its clones) made: two counters, read by
/// whoever wants a recent mean latency (the dashboard) as the difference between two readings.
#[derive(Debug, Default)]
pub struct EngineStats {
    calls: std::sync::atomic::AtomicU64,
    micros: std::sync::atomic::AtomicU64,
    /// Whether the last call failed in transport (no answer at all).
    unreachable: std::sync::atomic::AtomicBool,
}

impl EngineStats {
    /// Calls made so far and their total duration in microseconds.
    pub fn read(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.calls.load(Relaxed), self.micros.load(Relaxed))
    }

    /// Whether the execution client answered the last call (with a result or an error of its own); true
    /// before the first call.
    pub fn online(&self) -> bool {
        !self.unreachable.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn record(&self, elapsed: Duration, unreachable: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        self.calls.fetch_add(1, Relaxed);
        self.micros.fetch_add(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX), Relaxed);
        self.unreachable.store(unreachable, Relaxed);
    }
}

impl EngineClient {
    /// A client for the Engine API at `url` (e.g. `http://127.0.0.1:8551`), signing with `secret`.
    pub fn new(url: &str, secret: JwtSecret, chain_spec: Arc<ChainSpec>) -> Result<Self, EngineClientError> {
        let http = HttpClientBuilder::default()
            .request_timeout(Duration::from_secs(8))
            .max_response_size(256 * 1024 * 1024)
            .set_http_middleware(tower::ServiceBuilder::new().layer(JwtAuthLayer::new(secret)))
            .build(url)
            .map_err(EngineClientError::Endpoint)?;
        let retry = ExponentialBuilder::new()
            .with_min_delay(Duration::from_millis(100))
            .with_factor(2.0)
            .with_max_times(4);
        Ok(Self { http, chain_spec, retry, stats: Arc::default() })
    }

    /// The chain spec the versions are chosen from.
    pub fn chain_spec(&self) -> &ChainSpec {
        &self.chain_spec
    }

    /// The method generation for a payload with this timestamp.
    pub fn version_at(&self, timestamp: u64) -> EngineVersion {
        EngineVersion::for_fork(self.chain_spec.fork_at(timestamp))
    }

    async fn call<R: serde::de::DeserializeOwned>(
        &self,
        method: &'static str,
        params: impl Fn() -> jsonrpsee::core::params::ArrayParams,
    ) -> Result<R, EngineClientError> {
        let mut backoff = self.retry.build();
        let mut attempt = 1;
        loop {
            let span = tracing::debug_span!(target: "alys::engine", "engine_call", method, attempt);
            let started = std::time::Instant::now();
            let result = self.http.request::<R, _>(method, params()).instrument(span).await;
            let elapsed = started.elapsed();
            metrics::histogram!("alys_engine_request_seconds", "method" => method)
                .record(elapsed.as_secs_f64());
            if result.is_err() {
                metrics::counter!("alys_engine_request_errors_total", "method" => method).increment(1);
            }
            let result = result.map_err(EngineClientError::from);
            let unreachable = matches!(&result, Err(error) if error.is_transport());
            self.stats.record(elapsed, unreachable);
            metrics::gauge!("alys_engine_online").set(if unreachable { 0.0 } else { 1.0 });
            match result {
                Err(error) if error.is_transport() => {
                    let Some(delay) = backoff.next() else { return Err(error) };
                    tracing::warn!(target: "alys::engine", method, attempt, %error, delay_ms = delay.as_millis(), "retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// The running totals of this client's calls (shared with its clones).
    pub fn stats(&self) -> Arc<EngineStats> {
        Arc::clone(&self.stats)
    }

    /// `engine_getClientVersionV1`: who the execution client is, as `name/version (code, commit)` for
    /// each client it names (one, or several for a multiplexer), joined by `; `.
    pub async fn client_version(&self) -> Result<String, EngineClientError> {
        // Our own shape, not alloy's: its client codes are a closed list and an execution client may answer
        // with a code it does not have yet. Alys has no reserved code, and clients built on alloy refuse
        // any code outside the list, so the node sends reth's (the client family it is built against, as
        // the devnet engine does) with its own name.
        #[derive(Clone, serde::Serialize, serde::Deserialize)]
        struct ClientVersion {
            code: String,
            name: String,
            version: String,
            commit: String,
        }
        let ours = ClientVersion {
            code: "RH".to_owned(),
            name: "alys".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            commit: "0x00000000".to_owned(),
        };
        let theirs: Vec<ClientVersion> =
            self.call("engine_getClientVersionV1", || rpc_params![ours.clone()]).await?;
        Ok(theirs
            .iter()
            .map(|c| format!("{}/{} ({}, {})", c.name, c.version, c.code, c.commit))
            .collect::<Vec<_>>()
            .join("; "))
    }

    /// `engine_exchangeCapabilities`: the methods the execution client supports.
    pub async fn exchange_capabilities(&self, ours: &[&str]) -> Result<Vec<String>, EngineClientError> {
        let ours: Vec<String> = ours.iter().map(|m| (*m).to_owned()).collect();
        self.call("engine_exchangeCapabilities", || rpc_params![ours.clone()]).await
    }

    /// `engine_forkchoiceUpdatedV2/V3`: moves head, safe and finalized; with attributes, starts a build.
    ///
    /// The version follows the attributes' timestamp, or `head_timestamp` when there are none.
    pub async fn forkchoice_updated(
        &self,
        state: ForkchoiceState,
        attributes: Option<PayloadAttributes>,
        head_timestamp: u64,
    ) -> Result<ForkchoiceUpdated, EngineClientError> {
        let timestamp = attributes.as_ref().map_or(head_timestamp, |a| a.timestamp);
        let method = match self.version_at(timestamp) {
            EngineVersion::V2 => "engine_forkchoiceUpdatedV2",
            EngineVersion::V3 | EngineVersion::V4 => "engine_forkchoiceUpdatedV3",
        };
        self.call(method, || rpc_params![state, attributes.clone()]).await
    }

    /// `engine_getPayloadV2/V3/V4` for a payload whose attributes had `timestamp`.
    pub async fn get_payload(
        &self,
        id: PayloadId,
        timestamp: u64,
    ) -> Result<BuiltPayload, EngineClientError> {
        match self.version_at(timestamp) {
            EngineVersion::V2 => {
                let envelope: ExecutionPayloadEnvelopeV2 =
                    self.call("engine_getPayloadV2", || rpc_params![id]).await?;
                let payload = match envelope.execution_payload {
                    ExecutionPayloadFieldV2::V1(p) => ExecutionPayload::V1(p),
                    ExecutionPayloadFieldV2::V2(p) => ExecutionPayload::V2(p),
                };
                Ok(BuiltPayload { payload, block_value: envelope.block_value, execution_requests: None })
            }
            EngineVersion::V3 => {
                let envelope: ExecutionPayloadEnvelopeV3 =
                    self.call("engine_getPayloadV3", || rpc_params![id]).await?;
                Ok(BuiltPayload {
                    payload: ExecutionPayload::V3(envelope.execution_payload),
                    block_value: envelope.block_value,
                    execution_requests: None,
                })
            }
            EngineVersion::V4 => {
                let envelope: ExecutionPayloadEnvelopeV4 =
                    self.call("engine_getPayloadV4", || rpc_params![id]).await?;
                Ok(BuiltPayload {
                    payload: ExecutionPayload::V3(envelope.envelope_inner.execution_payload),
                    block_value: envelope.envelope_inner.block_value,
                    execution_requests: Some(envelope.execution_requests),
                })
            }
        }
    }

    /// The hash of the execution client's block `number` by `eth_getBlockByNumber`, which reth and geth
    /// also serve on the Engine API port (`None` if it has no such block). Clients that serve only
    /// `engine_*` there answer "method not found".
    pub async fn block_hash_by_number(&self, number: u64) -> Result<Option<B256>, EngineClientError> {
        #[derive(serde::Deserialize)]
        struct HashOnly {
            hash: B256,
        }
        let number = format!("{number:#x}");
        let block: Option<HashOnly> =
            self.call("eth_getBlockByNumber", || rpc_params![number.clone(), false]).await?;
        Ok(block.map(|b| b.hash))
    }

    /// `engine_getPayloadBodiesByHashV1`: which of `hashes` the execution client has (`None` = unknown).
    pub async fn payload_bodies_by_hash(
        &self,
        hashes: Vec<B256>,
    ) -> Result<Vec<Option<alloy_rpc_types_engine::ExecutionPayloadBodyV1>>, EngineClientError> {
        self.call("engine_getPayloadBodiesByHashV1", || rpc_params![hashes.clone()]).await
    }

    /// `engine_newPayloadV2/V3/V4`: asks the execution client to validate and execute a payload.
    ///
    /// From Cancun on, `parent_beacon_block_root` is required and `versioned_hashes` must be the blob
    /// versioned hashes of the payload's own type-3 transactions, in order (an execution client refuses
    /// the payload otherwise); from Prague on, `execution_requests` too.
    pub async fn new_payload(
        &self,
        payload: ExecutionPayload,
        parent_beacon_block_root: Option<B256>,
        versioned_hashes: Vec<B256>,
        execution_requests: Option<Requests>,
    ) -> Result<PayloadStatus, EngineClientError> {
        let version = self.version_at(payload.timestamp());
        match version {
            EngineVersion::V2 => {
                let input = match payload {
                    ExecutionPayload::V1(p) => {
                        ExecutionPayloadInputV2 { execution_payload: p, withdrawals: None }
                    }
                    ExecutionPayload::V2(p) => ExecutionPayloadInputV2 {
                        execution_payload: p.payload_inner,
                        withdrawals: Some(p.withdrawals),
                    },
                    ExecutionPayload::V3(_) | ExecutionPayload::V4(_) => {
                        return Err(EngineClientError::PayloadVersion {
                            fork: Fork::Shanghai,
                            needed: "V1 or V2",
                        });
                    }
                };
                self.call("engine_newPayloadV2", || rpc_params![input.clone()]).await
            }
            EngineVersion::V3 | EngineVersion::V4 => {
                let v3: ExecutionPayloadV3 = match payload {
                    ExecutionPayload::V3(p) => p,
                    _ => {
                        return Err(EngineClientError::PayloadVersion {
                            fork: self.chain_spec.fork_at(payload.timestamp()),
                            needed: "V3",
                        });
                    }
                };
                let root = parent_beacon_block_root.ok_or(EngineClientError::MissingBeaconRoot)?;
                let hashes = versioned_hashes;
                if version == EngineVersion::V3 {
                    self.call("engine_newPayloadV3", || rpc_params![v3.clone(), hashes.clone(), root]).await
                } else {
                    // No requests is an empty list on the wire, which is what a block without them has.
                    let requests = execution_requests.clone().unwrap_or_default();
                    self.call("engine_newPayloadV4", || {
                        rpc_params![v3.clone(), hashes.clone(), root, requests.clone()]
                    })
                    .await
                }
            }
        }
    }
}
