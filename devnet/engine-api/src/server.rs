//! The jsonrpsee server: method handlers over an [`EngineBackend`], JWT in front, start and stop.

use std::{future::Future, net::SocketAddr, time::Instant};

use alloy_eips::{eip4844::BlobAndProofV1, eip7685::Requests};
use alloy_primitives::{B256, Bytes, U64};
use alloy_rpc_types_engine::{
    BlobsBundleV1, CancunPayloadFields, ClientVersionV1, ExecutionPayloadBodyV1, ExecutionPayloadEnvelopeV2,
    ExecutionPayloadEnvelopeV3, ExecutionPayloadEnvelopeV4, ExecutionPayloadFieldV2, ExecutionPayloadInputV2,
    ExecutionPayloadSidecar, ExecutionPayloadV3, ForkchoiceState, ForkchoiceUpdated, PayloadAttributes,
    PayloadId, PayloadStatus, PraguePayloadFields,
};
use alys_el_api::{BuiltPayload, EngineBackend};
use jsonrpsee::{
    RpcModule,
    core::RpcResult,
    proc_macros::rpc,
    server::{Server, ServerConfig, ServerHandle},
};
use tracing::Instrument;

use crate::{
    config::EngineApiConfig,
    error::{MAX_PAYLOAD_BODIES, RpcError},
    jwt::JwtAuthLayer,
    validation::{
        EngineApiVersion, MessageKind, VersionedFields, validate_execution_requests,
        validate_payload_timestamp, validate_version_specific_fields,
    },
};

/// The methods this server answers, as listed by `engine_exchangeCapabilities` (which the spec says not
/// to list itself).
pub const CAPABILITIES: &[&str] = &[
    "engine_forkchoiceUpdatedV2",
    "engine_forkchoiceUpdatedV3",
    "engine_getPayloadV2",
    "engine_getPayloadV3",
    "engine_getPayloadV4",
    "engine_newPayloadV2",
    "engine_newPayloadV3",
    "engine_newPayloadV4",
    "engine_getPayloadBodiesByHashV1",
    "engine_getPayloadBodiesByRangeV1",
    "engine_getClientVersionV1",
    "engine_getBlobsV1",
];

/// The most versioned hashes one `engine_getBlobsV1` may ask for (the spec's limit).
pub const MAX_BLOB_HASHES: usize = 128;

/// The Engine API methods (the macro generates `EngineRpcServer` from this).
#[rpc(server, namespace = "engine")]
trait EngineRpc {
    /// `engine_exchangeCapabilities`: the methods this server answers.
    #[method(name = "exchangeCapabilities")]
    async fn exchange_capabilities(&self, capabilities: Vec<String>) -> RpcResult<Vec<String>>;

    /// `engine_getClientVersionV1`: this client's identification.
    #[method(name = "getClientVersionV1")]
    async fn get_client_version_v1(&self, client: ClientVersionV1) -> RpcResult<Vec<ClientVersionV1>>;

    /// `engine_newPayloadV2`: a Shanghai payload.
    #[method(name = "newPayloadV2")]
    async fn new_payload_v2(&self, payload: ExecutionPayloadInputV2) -> RpcResult<PayloadStatus>;

    /// `engine_newPayloadV3`: a Cancun payload.
    #[method(name = "newPayloadV3")]
    async fn new_payload_v3(
        &self,
        payload: ExecutionPayloadV3,
        versioned_hashes: Vec<B256>,
        parent_beacon_block_root: B256,
    ) -> RpcResult<PayloadStatus>;

    /// `engine_newPayloadV4`: a Prague payload with its execution requests.
    #[method(name = "newPayloadV4")]
    async fn new_payload_v4(
        &self,
        payload: ExecutionPayloadV3,
        versioned_hashes: Vec<B256>,
        parent_beacon_block_root: B256,
        execution_requests: Vec<Bytes>,
    ) -> RpcResult<PayloadStatus>;

    /// `engine_forkchoiceUpdatedV2`: Shanghai attributes.
    #[method(name = "forkchoiceUpdatedV2")]
    async fn fork_choice_updated_v2(
        &self,
        state: ForkchoiceState,
        attributes: Option<PayloadAttributes>,
    ) -> RpcResult<ForkchoiceUpdated>;

    /// `engine_forkchoiceUpdatedV3`: Cancun and Prague attributes.
    #[method(name = "forkchoiceUpdatedV3")]
    async fn fork_choice_updated_v3(
        &self,
        state: ForkchoiceState,
        attributes: Option<PayloadAttributes>,
    ) -> RpcResult<ForkchoiceUpdated>;

    /// `engine_getPayloadV2`: a built Shanghai payload.
    #[method(name = "getPayloadV2")]
    async fn get_payload_v2(&self, id: PayloadId) -> RpcResult<ExecutionPayloadEnvelopeV2>;

    /// `engine_getPayloadV3`: a built Cancun payload.
    #[method(name = "getPayloadV3")]
    async fn get_payload_v3(&self, id: PayloadId) -> RpcResult<ExecutionPayloadEnvelopeV3>;

    /// `engine_getPayloadV4`: a built Prague payload with its requests.
    #[method(name = "getPayloadV4")]
    async fn get_payload_v4(&self, id: PayloadId) -> RpcResult<ExecutionPayloadEnvelopeV4>;

    /// `engine_getPayloadBodiesByHashV1`: bodies of blocks by hash.
    #[method(name = "getPayloadBodiesByHashV1")]
    async fn get_payload_bodies_by_hash_v1(
        &self,
        hashes: Vec<B256>,
    ) -> RpcResult<Vec<Option<ExecutionPayloadBodyV1>>>;

    /// `engine_getPayloadBodiesByRangeV1`: bodies of canonical blocks by number.
    #[method(name = "getPayloadBodiesByRangeV1")]
    async fn get_payload_bodies_by_range_v1(
        &self,
        start: U64,
        count: U64,
    ) -> RpcResult<Vec<Option<ExecutionPayloadBodyV1>>>;

    /// `engine_getBlobsV1`: blobs and proofs of pooled blob transactions by versioned hash.
    #[method(name = "getBlobsV1")]
    async fn get_blobs_v1(&self, versioned_hashes: Vec<B256>) -> RpcResult<Vec<Option<BlobAndProofV1>>>;
}

/// Runs one call in a span named after the method, records its latency and outcome, and turns its error
/// into the JSON-RPC error object.
async fn observe<T>(method: &'static str, call: impl Future<Output = Result<T, RpcError>>) -> RpcResult<T> {
    let span = tracing::info_span!(target: "engine::rpc", "engine_api", method);
    let started = Instant::now();
    let result = call.instrument(span.clone()).await;
    metrics::histogram!("alys_devnet_engine_api_server_seconds", "method" => method)
        .record(started.elapsed().as_secs_f64());
    let outcome = match &result {
        Ok(_) => "ok",
        Err(err) => {
            span.in_scope(|| tracing::debug!(target: "engine::rpc", code = err.code(), %err, "call refused"));
            "error"
        }
    };
    metrics::counter!("alys_devnet_engine_api_requests_total", "method" => method, "outcome" => outcome)
        .increment(1);
    result.map_err(Into::into)
}

/// The handlers; holds the backend and what is needed to answer without it.
#[derive(Debug, Clone)]
struct EngineApi<B> {
    backend: B,
    client_version: ClientVersionV1,
}

impl<B: EngineBackend> EngineApi<B> {
    async fn new_payload(
        &self,
        version: EngineApiVersion,
        payload: alloy_rpc_types_engine::ExecutionPayload,
        sidecar: ExecutionPayloadSidecar,
    ) -> Result<PayloadStatus, RpcError> {
        let fields = VersionedFields {
            timestamp: payload.timestamp(),
            has_withdrawals: payload.withdrawals().is_some(),
            has_parent_beacon_block_root: sidecar.parent_beacon_block_root().is_some(),
            has_slot_number: payload.slot_number().is_some(),
        };
        validate_version_specific_fields(self.backend.chain_spec(), version, MessageKind::Payload, fields)?;
        Ok(self.backend.new_payload(payload, sidecar).await?)
    }

    async fn fork_choice_updated(
        &self,
        version: EngineApiVersion,
        state: ForkchoiceState,
        attributes: Option<PayloadAttributes>,
    ) -> Result<ForkchoiceUpdated, RpcError> {
        if let Some(attrs) = &attributes {
            let fields = VersionedFields {
                timestamp: attrs.timestamp,
                has_withdrawals: attrs.withdrawals.is_some(),
                has_parent_beacon_block_root: attrs.parent_beacon_block_root.is_some(),
                has_slot_number: attrs.slot_number.is_some(),
            };
            if let Err(err) = validate_version_specific_fields(
                self.backend.chain_spec(),
                version,
                MessageKind::PayloadAttributes,
                fields,
            ) {
                // The spec: bad attributes must not roll back the forkchoice update. Like reth, apply the
                // update without attributes, and report an INVALID head over the attribute error.
                let updated = self.backend.fork_choice_updated(state, None).await?;
                if updated.is_invalid() {
                    return Ok(updated);
                }
                return Err(err);
            }
        }
        Ok(self.backend.fork_choice_updated(state, attributes).await?)
    }

    /// Fetches a built payload and checks the method version against its timestamp.
    async fn built_payload(
        &self,
        version: EngineApiVersion,
        id: PayloadId,
    ) -> Result<BuiltPayload, RpcError> {
        let built = self.backend.get_payload(id).await?;
        validate_payload_timestamp(self.backend.chain_spec(), version, built.block.block.header.timestamp)?;
        Ok(built)
    }

    fn envelope_v3(built: &BuiltPayload) -> ExecutionPayloadEnvelopeV3 {
        ExecutionPayloadEnvelopeV3 {
            execution_payload: ExecutionPayloadV3::from_block_unchecked(built.block.hash, &built.block.block),
            block_value: built.fees,
            blobs_bundle: BlobsBundleV1::new(built.sidecars.iter().map(|sidecar| (**sidecar).clone())),
            should_override_builder: false,
        }
    }

    async fn bodies_by_range(
        &self,
        start: u64,
        count: u64,
    ) -> Result<Vec<Option<ExecutionPayloadBodyV1>>, RpcError> {
        if count > MAX_PAYLOAD_BODIES {
            return Err(RpcError::TooLargeRequest(count));
        }
        if start == 0 || count == 0 {
            return Err(RpcError::InvalidParams(format!("invalid start ({start}) or count ({count})")));
        }
        Ok(self.backend.payload_bodies_by_range(start, count).await?)
    }

    async fn blobs(&self, versioned_hashes: Vec<B256>) -> Result<Vec<Option<BlobAndProofV1>>, RpcError> {
        if versioned_hashes.len() > MAX_BLOB_HASHES {
            return Err(RpcError::TooLargeRequest(versioned_hashes.len() as u64));
        }
        Ok(self.backend.blobs_v1(versioned_hashes).await?)
    }

    async fn bodies_by_hash(
        &self,
        hashes: Vec<B256>,
    ) -> Result<Vec<Option<ExecutionPayloadBodyV1>>, RpcError> {
        let len = hashes.len() as u64;
        if len > MAX_PAYLOAD_BODIES {
            return Err(RpcError::TooLargeRequest(len));
        }
        Ok(self.backend.payload_bodies_by_hash(hashes).await?)
    }
}

#[jsonrpsee::core::async_trait]
impl<B: EngineBackend> EngineRpcServer for EngineApi<B> {
    async fn exchange_capabilities(&self, _capabilities: Vec<String>) -> RpcResult<Vec<String>> {
        observe("engine_exchangeCapabilities", async {
            Ok(CAPABILITIES.iter().map(|m| (*m).to_string()).collect())
        })
        .await
    }

    async fn get_client_version_v1(&self, _client: ClientVersionV1) -> RpcResult<Vec<ClientVersionV1>> {
        observe("engine_getClientVersionV1", async { Ok(vec![self.client_version.clone()]) }).await
    }

    async fn new_payload_v2(&self, payload: ExecutionPayloadInputV2) -> RpcResult<PayloadStatus> {
        observe(
            "engine_newPayloadV2",
            self.new_payload(EngineApiVersion::V2, payload.into_payload(), ExecutionPayloadSidecar::none()),
        )
        .await
    }

    async fn new_payload_v3(
        &self,
        payload: ExecutionPayloadV3,
        versioned_hashes: Vec<B256>,
        parent_beacon_block_root: B256,
    ) -> RpcResult<PayloadStatus> {
        let sidecar =
            ExecutionPayloadSidecar::v3(CancunPayloadFields { versioned_hashes, parent_beacon_block_root });
        observe("engine_newPayloadV3", self.new_payload(EngineApiVersion::V3, payload.into(), sidecar)).await
    }

    async fn new_payload_v4(
        &self,
        payload: ExecutionPayloadV3,
        versioned_hashes: Vec<B256>,
        parent_beacon_block_root: B256,
        execution_requests: Vec<Bytes>,
    ) -> RpcResult<PayloadStatus> {
        observe("engine_newPayloadV4", async move {
            validate_execution_requests(&execution_requests)?;
            let sidecar = ExecutionPayloadSidecar::v4(
                CancunPayloadFields { versioned_hashes, parent_beacon_block_root },
                PraguePayloadFields::new(Requests::new(execution_requests)),
            );
            self.new_payload(EngineApiVersion::V4, payload.into(), sidecar).await
        })
        .await
    }

    async fn fork_choice_updated_v2(
        &self,
        state: ForkchoiceState,
        attributes: Option<PayloadAttributes>,
    ) -> RpcResult<ForkchoiceUpdated> {
        observe(
            "engine_forkchoiceUpdatedV2",
            self.fork_choice_updated(EngineApiVersion::V2, state, attributes),
        )
        .await
    }

    async fn fork_choice_updated_v3(
        &self,
        state: ForkchoiceState,
        attributes: Option<PayloadAttributes>,
    ) -> RpcResult<ForkchoiceUpdated> {
        observe(
            "engine_forkchoiceUpdatedV3",
            self.fork_choice_updated(EngineApiVersion::V3, state, attributes),
        )
        .await
    }

    async fn get_payload_v2(&self, id: PayloadId) -> RpcResult<ExecutionPayloadEnvelopeV2> {
        observe("engine_getPayloadV2", async {
            let built = self.built_payload(EngineApiVersion::V2, id).await?;
            Ok(ExecutionPayloadEnvelopeV2 {
                execution_payload: ExecutionPayloadFieldV2::from_block_unchecked(
                    built.block.hash,
                    &built.block.block,
                ),
                block_value: built.fees,
            })
        })
        .await
    }

    async fn get_payload_v3(&self, id: PayloadId) -> RpcResult<ExecutionPayloadEnvelopeV3> {
        observe("engine_getPayloadV3", async {
            let built = self.built_payload(EngineApiVersion::V3, id).await?;
            Ok(Self::envelope_v3(&built))
        })
        .await
    }

    async fn get_payload_v4(&self, id: PayloadId) -> RpcResult<ExecutionPayloadEnvelopeV4> {
        observe("engine_getPayloadV4", async {
            let built = self.built_payload(EngineApiVersion::V4, id).await?;
            Ok(ExecutionPayloadEnvelopeV4 {
                envelope_inner: Self::envelope_v3(&built),
                execution_requests: built.requests.clone().unwrap_or_default(),
            })
        })
        .await
    }

    async fn get_payload_bodies_by_hash_v1(
        &self,
        hashes: Vec<B256>,
    ) -> RpcResult<Vec<Option<ExecutionPayloadBodyV1>>> {
        observe("engine_getPayloadBodiesByHashV1", self.bodies_by_hash(hashes)).await
    }

    async fn get_payload_bodies_by_range_v1(
        &self,
        start: U64,
        count: U64,
    ) -> RpcResult<Vec<Option<ExecutionPayloadBodyV1>>> {
        observe("engine_getPayloadBodiesByRangeV1", self.bodies_by_range(start.to(), count.to())).await
    }

    async fn get_blobs_v1(&self, versioned_hashes: Vec<B256>) -> RpcResult<Vec<Option<BlobAndProofV1>>> {
        observe("engine_getBlobsV1", self.blobs(versioned_hashes)).await
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address could not be bound.
    #[error("cannot bind Engine API server to {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bound socket's address could not be read.
    #[error("cannot read the Engine API server's local address: {0}")]
    LocalAddr(std::io::Error),
}

/// The Engine API server: JWT-authenticated HTTP JSON-RPC over an [`EngineBackend`].
///
/// ```no_run
/// # async fn run<B: alys_el_api::EngineBackend>(backend: B) -> Result<(), Box<dyn std::error::Error>> {
/// use alys_engine_api::{EngineApiConfig, EngineApiServer};
/// let config = EngineApiConfig::from_secret_file("etc/jwt.hex")?.with_port(8551);
/// let handle = EngineApiServer::new(backend, config).start().await?;
/// println!("Engine API on {}", handle.local_addr());
/// handle.stop();
/// handle.stopped().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct EngineApiServer<B> {
    backend: B,
    config: EngineApiConfig,
}

impl<B: EngineBackend> EngineApiServer<B> {
    /// A server over `backend`, configured by `config`.
    pub const fn new(backend: B, config: EngineApiConfig) -> Self {
        Self { backend, config }
    }

    /// The configuration.
    pub const fn config(&self) -> &EngineApiConfig {
        &self.config
    }

    /// The `engine_*` methods as a jsonrpsee module, without transport or authentication (for embedding in
    /// another server or calling in-process).
    pub fn into_rpc_module(self) -> RpcModule<()> {
        let api = EngineApi { backend: self.backend, client_version: self.config.client_version };
        api.into_rpc().remove_context()
    }

    /// Binds the listen address and serves until the returned handle is stopped (or dropped and stopped).
    pub async fn start(self) -> Result<EngineApiHandle, StartError> {
        let addr = self.config.addr;
        let server_config = ServerConfig::builder()
            .http_only()
            .max_request_body_size(self.config.max_request_body_size)
            .max_response_body_size(self.config.max_response_body_size)
            .build();
        let server = Server::builder()
            .set_config(server_config)
            .set_http_middleware(
                tower::ServiceBuilder::new().layer(JwtAuthLayer::new(self.config.jwt_secret)),
            )
            .build(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let local_addr = server.local_addr().map_err(StartError::LocalAddr)?;
        let handle = server.start(self.into_rpc_module());
        tracing::info!(target: "engine::rpc", %local_addr, "Engine API server started");
        Ok(EngineApiHandle { local_addr, handle })
    }
}

/// A running server: its bound address and the means to stop it.
///
/// The server runs while a clone of this handle is alive: dropping the last one stops it, like
/// [`EngineApiHandle::stop`].
#[derive(Debug, Clone)]
pub struct EngineApiHandle {
    local_addr: SocketAddr,
    handle: ServerHandle,
}

impl EngineApiHandle {
    /// The address the server is bound to (with the real port when port 0 was asked for).
    pub const fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://<local_addr>`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// Asks the server to stop; returns `false` if it was already stopped.
    pub fn stop(&self) -> bool {
        self.handle.stop().is_ok()
    }

    /// Resolves when the server has stopped.
    pub async fn stopped(self) {
        self.handle.stopped().await
    }
}
