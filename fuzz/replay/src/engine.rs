//! The embedded engine's Engine API: request bodies through the real server module in process, and the
//! `Authorization` header through its JWT layer.
//!
//! The server (`alys-engine-api`) deserializes the params, checks the method version against the fork
//! schedule and the execution requests, and hands the payload to an [`EngineBackend`]. The backend here
//! does what the embedded engine does first with a payload, before it looks at any state: turn it into a
//! block ([`ExecutionPayload::try_into_block_with_sidecar`]) and compare the block hash with the claimed
//! one. It answers INVALID or SYNCING, never executes.

use std::{convert::Infallible, sync::OnceLock};

use alloy_consensus::TxEnvelope;
use alloy_primitives::{B256, Bytes};
use alloy_rpc_types_engine::{
    ExecutionPayload, ExecutionPayloadBodyV1, ExecutionPayloadInputV2, ExecutionPayloadSidecar,
    ExecutionPayloadV3, ForkchoiceState, ForkchoiceUpdated, JwtSecret, PayloadAttributes, PayloadId,
    PayloadStatus, PayloadStatusEnum,
};
use alys_chainspec::ChainSpec;
use alys_el_api::{BuiltPayload, EngineBackend, EngineError};
use alys_engine_api::{EngineApiConfig, EngineApiServer, JwtAuthLayer};
use jsonrpsee::{
    RpcModule,
    server::{HttpBody, HttpResponse},
};
use serde::{Serialize, de::DeserializeOwned};
use tokio::runtime::Runtime;
use tower::{Layer, Service};

use crate::fixtures::{JWT_SECRET, chain_spec};

/// The embedded engine's stateless first steps on a payload, and canned answers for the rest.
#[derive(Debug, Clone, Copy)]
struct StatelessBackend;

impl EngineBackend for StatelessBackend {
    fn chain_spec(&self) -> &ChainSpec {
        chain_spec()
    }

    async fn new_payload(
        &self,
        payload: ExecutionPayload,
        sidecar: ExecutionPayloadSidecar,
    ) -> Result<PayloadStatus, EngineError> {
        let claimed = payload.block_hash();
        let invalid = |reason: String| {
            PayloadStatus::new(PayloadStatusEnum::Invalid { validation_error: reason }, None)
        };
        let block = match payload.try_into_block_with_sidecar::<TxEnvelope>(&sidecar) {
            Ok(block) => block,
            Err(e) => return Ok(invalid(format!("malformed payload: {e}"))),
        };
        let hash = block.header.hash_slow();
        // Whatever a payload turned into, the payload of that block turns into the same block again:
        // the engine hands built blocks out as payloads and takes them back.
        let (again, _) = ExecutionPayload::from_block_unchecked(hash, &block);
        match again.try_into_block_with_sidecar::<TxEnvelope>(&sidecar) {
            Ok(back) => assert!(back == block, "block -> payload -> block changed the block"),
            Err(e) => panic!("the payload of a block does not convert back: {e}"),
        }
        if hash != claimed {
            return Ok(invalid(format!("block hash mismatch: want {claimed}, got {hash}")));
        }
        Ok(PayloadStatus::from_status(PayloadStatusEnum::Syncing))
    }

    async fn fork_choice_updated(
        &self,
        _state: ForkchoiceState,
        _attributes: Option<PayloadAttributes>,
    ) -> Result<ForkchoiceUpdated, EngineError> {
        Ok(ForkchoiceUpdated::from_status(PayloadStatusEnum::Syncing))
    }

    async fn get_payload(&self, _id: PayloadId) -> Result<BuiltPayload, EngineError> {
        Err(EngineError::UnknownPayload)
    }

    async fn payload_bodies_by_hash(
        &self,
        _hashes: Vec<B256>,
    ) -> Result<Vec<Option<ExecutionPayloadBodyV1>>, EngineError> {
        Ok(Vec::new())
    }

    async fn payload_bodies_by_range(
        &self,
        _start: u64,
        _count: u64,
    ) -> Result<Vec<Option<ExecutionPayloadBodyV1>>, EngineError> {
        Ok(Vec::new())
    }
}

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("cannot start a tokio runtime: {e}"))
    })
}

fn secret() -> JwtSecret {
    JwtSecret::from_hex(alloy_primitives::hex::encode(JWT_SECRET))
        .unwrap_or_else(|e| unreachable!("32 bytes of hex are a JWT secret: {e}"))
}

fn module() -> &'static RpcModule<()> {
    static MODULE: OnceLock<RpcModule<()>> = OnceLock::new();
    MODULE.get_or_init(|| {
        EngineApiServer::new(StatelessBackend, EngineApiConfig::new(secret())).into_rpc_module()
    })
}

/// The part of a JSON-RPC request the round trips need.
#[derive(serde::Deserialize)]
struct Call {
    method: String,
    #[serde(default)]
    params: serde_json::Value,
}

/// Asserts that params that deserialize as `T` serialize back to JSON that deserializes to the same.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(params: &serde_json::Value) {
    let Ok(value) = serde_json::from_value::<T>(params.clone()) else { return };
    let json = serde_json::to_value(&value).unwrap_or_else(|e| panic!("params do not serialize: {e}"));
    let again = serde_json::from_value::<T>(json).map_err(|e| e.to_string());
    assert_eq!(again.as_ref(), Ok(&value), "params: from_json(to_json(x)) != x");
}

/// An Engine API request body (JSON-RPC), as the embedded engine's server receives it once the JWT
/// layer let it through: answered by the real server module over the stateless backend above.
///
/// Asserts that the params of the payload and forkchoice methods survive a JSON round trip, and (in the
/// backend) that a block made from a payload makes the same block again through its own payload.
pub fn engine_payload(data: &[u8]) {
    let Ok(body) = std::str::from_utf8(data) else { return };
    if let Ok(call) = serde_json::from_str::<Call>(body) {
        match call.method.as_str() {
            "engine_newPayloadV2" => round_trip::<(ExecutionPayloadInputV2,)>(&call.params),
            "engine_newPayloadV3" => round_trip::<(ExecutionPayloadV3, Vec<B256>, B256)>(&call.params),
            "engine_newPayloadV4" => {
                round_trip::<(ExecutionPayloadV3, Vec<B256>, B256, Vec<Bytes>)>(&call.params)
            }
            "engine_forkchoiceUpdatedV2" | "engine_forkchoiceUpdatedV3" => {
                round_trip::<(ForkchoiceState, Option<PayloadAttributes>)>(&call.params)
            }
            _ => {}
        }
    }
    let _ = runtime().block_on(module().raw_json_request(body, 1));
}

/// An `Authorization` header value of an Engine API request: passed through the server's JWT layer in
/// front of a service that answers 200. Asserts that only a bearer token gets through.
pub fn engine_jwt(data: &[u8]) {
    let Ok(value) = http::HeaderValue::from_bytes(data) else { return };
    let mut request = http::Request::new(());
    request.headers_mut().insert(http::header::AUTHORIZATION, value);
    let inner = tower::service_fn(|_: http::Request<()>| async {
        Ok::<_, Infallible>(HttpResponse::new(HttpBody::from(String::new())))
    });
    let mut service = JwtAuthLayer::new(secret()).layer(inner);
    let Ok(response) = runtime().block_on(service.call(request));
    if response.status().is_success() {
        let scheme = data.trim_ascii().split(|b| *b == b' ').next().unwrap_or_default();
        assert!(scheme.eq_ignore_ascii_case(b"bearer"), "a request without a bearer token got through");
    }
}
