#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]
//! The Engine API server over real HTTP on loopback, against a fake backend that records calls and
//! answers canned results.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use alloy_consensus::{Block, BlockBody, Header};
use alloy_eips::{
    eip4844::{Blob, BlobAndProofV1, BlobTransactionSidecar, Bytes48},
    eip4895::Withdrawal,
    eip4895::Withdrawals,
    eip7685::Requests,
};
use alloy_primitives::{Address, B64, B256, Bytes, U256};
use alloy_rpc_types_engine::{
    ExecutionPayload, ExecutionPayloadBodyV1, ExecutionPayloadInputV2, ExecutionPayloadSidecar,
    ExecutionPayloadV1, ExecutionPayloadV2, ExecutionPayloadV3, ForkchoiceState, ForkchoiceUpdated,
    PayloadAttributes, PayloadId, PayloadStatus, PayloadStatusEnum,
};
use alys_chainspec::ChainSpec;
use alys_el_api::{BuiltPayload, EngineBackend, EngineError, ExecutedBlock};
use alys_engine_api::{
    CAPABILITIES, EngineApiConfig, EngineApiHandle, EngineApiServer, JwtSecret, StartError,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------------------------------------
// Fake backend

#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant, reason = "a test recorder; size does not matter")]
enum Call {
    NewPayload(ExecutionPayload, ExecutionPayloadSidecar),
    ForkChoice(ForkchoiceState, Option<PayloadAttributes>),
    GetPayload(PayloadId),
    BodiesByHash(Vec<B256>),
    BodiesByRange(u64, u64),
    Blobs(Vec<B256>),
}

#[derive(Debug)]
struct Canned {
    new_payload: Result<PayloadStatus, EngineError>,
    fork_choice: Result<ForkchoiceUpdated, EngineError>,
    get_payload: Result<BuiltPayload, EngineError>,
    bodies: Result<Vec<Option<ExecutionPayloadBodyV1>>, EngineError>,
    blobs: Vec<Option<BlobAndProofV1>>,
}

#[derive(Debug, Clone)]
struct FakeBackend {
    spec: Arc<ChainSpec>,
    calls: Arc<Mutex<Vec<Call>>>,
    canned: Arc<Mutex<Canned>>,
}

impl FakeBackend {
    fn new(spec: ChainSpec) -> Self {
        Self {
            spec: Arc::new(spec),
            calls: Arc::default(),
            canned: Arc::new(Mutex::new(Canned {
                new_payload: Ok(PayloadStatus::new(PayloadStatusEnum::Valid, Some(B256::repeat_byte(0xaa)))),
                fork_choice: Ok(ForkchoiceUpdated::from_status(PayloadStatusEnum::Valid)
                    .with_latest_valid_hash(B256::repeat_byte(0xbb))
                    .with_payload_id(PayloadId::new([1, 2, 3, 4, 5, 6, 7, 8]))),
                get_payload: Err(EngineError::UnknownPayload),
                bodies: Ok(vec![]),
                blobs: vec![],
            })),
        }
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn record(&self, call: Call) {
        self.calls.lock().unwrap().push(call);
    }

    fn canned(&self) -> std::sync::MutexGuard<'_, Canned> {
        self.canned.lock().unwrap()
    }
}

impl EngineBackend for FakeBackend {
    fn chain_spec(&self) -> &ChainSpec {
        &self.spec
    }

    async fn new_payload(
        &self,
        payload: ExecutionPayload,
        sidecar: ExecutionPayloadSidecar,
    ) -> Result<PayloadStatus, EngineError> {
        self.record(Call::NewPayload(payload, sidecar));
        self.canned().new_payload.clone()
    }

    async fn fork_choice_updated(
        &self,
        state: ForkchoiceState,
        attributes: Option<PayloadAttributes>,
    ) -> Result<ForkchoiceUpdated, EngineError> {
        self.record(Call::ForkChoice(state, attributes));
        self.canned().fork_choice.clone()
    }

    async fn get_payload(&self, id: PayloadId) -> Result<BuiltPayload, EngineError> {
        self.record(Call::GetPayload(id));
        self.canned().get_payload.clone()
    }

    async fn payload_bodies_by_hash(
        &self,
        hashes: Vec<B256>,
    ) -> Result<Vec<Option<ExecutionPayloadBodyV1>>, EngineError> {
        self.record(Call::BodiesByHash(hashes));
        self.canned().bodies.clone()
    }

    async fn payload_bodies_by_range(
        &self,
        start: u64,
        count: u64,
    ) -> Result<Vec<Option<ExecutionPayloadBodyV1>>, EngineError> {
        self.record(Call::BodiesByRange(start, count));
        self.canned().bodies.clone()
    }

    async fn blobs_v1(
        &self,
        versioned_hashes: Vec<B256>,
    ) -> Result<Vec<Option<BlobAndProofV1>>, EngineError> {
        self.record(Call::Blobs(versioned_hashes));
        Ok(self.canned().blobs.clone())
    }
}

// ---------------------------------------------------------------------------------------------------------
// Chain specs

/// Shanghai at 0, Cancun at 1000, Prague at 2000.
fn mixed_spec() -> ChainSpec {
    let mut genesis: Value = serde_json::from_str(alys_chainspec::DEVNET_GENESIS_JSON).unwrap();
    genesis["config"]["cancunTime"] = 1000.into();
    genesis["config"]["pragueTime"] = 2000.into();
    ChainSpec::from_genesis(serde_json::from_value(genesis).unwrap()).unwrap()
}

const SHANGHAI_TS: u64 = 500;
const CANCUN_TS: u64 = 1500;
const PRAGUE_TS: u64 = 2500;

// ---------------------------------------------------------------------------------------------------------
// Harness: a started server and a raw HTTP/1.1 client

fn secret() -> JwtSecret {
    JwtSecret::from_hex("5a".repeat(32)).unwrap()
}

struct Harness {
    handle: EngineApiHandle,
    backend: FakeBackend,
}

async fn start_with(spec: ChainSpec, edit: impl FnOnce(EngineApiConfig) -> EngineApiConfig) -> Harness {
    let backend = FakeBackend::new(spec);
    let config = edit(EngineApiConfig::new(secret()).with_addr("127.0.0.1:0".parse().unwrap()));
    let handle = EngineApiServer::new(backend.clone(), config).start().await.unwrap();
    Harness { handle, backend }
}

async fn start(spec: ChainSpec) -> Harness {
    start_with(spec, |c| c).await
}

struct HttpResponse {
    status: u16,
    body: String,
}

impl HttpResponse {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends one POST and reads the whole response. The body is written concurrently with reading, so a server
/// that answers before reading everything (413) is still heard.
async fn post_raw(addr: SocketAddr, authorization: Option<String>, body: Vec<u8>) -> HttpResponse {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let mut head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(auth) = authorization {
        head.push_str(&format!("Authorization: {auth}\r\n"));
    }
    head.push_str("\r\n");
    let writer_task = tokio::spawn(async move {
        // The server may close before reading a refused body; that is not the test's concern.
        let _ = writer.write_all(head.as_bytes()).await;
        let _ = writer.write_all(&body).await;
        let _ = writer.flush().await;
        writer
    });
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(_) if !raw.is_empty() => break,
            Err(e) => panic!("no response: {e}"),
        }
    }
    drop(writer_task.await);
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> HttpResponse {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header end: {text}"));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.contains("chunked"));
    let body = if chunked {
        let mut out = String::new();
        let mut rest = body;
        loop {
            let (size, after) = rest.split_once("\r\n").unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            out.push_str(&after[..size]);
            rest = &after[size + 2..];
        }
        out
    } else {
        body.to_string()
    };
    HttpResponse { status, body }
}

fn bearer_now() -> Option<String> {
    Some(format!("Bearer {}", encode_jwt(&secret(), unix_now())))
}

impl Harness {
    async fn post(&self, body: Value) -> HttpResponse {
        post_raw(self.handle.local_addr(), bearer_now(), body.to_string().into_bytes()).await
    }

    /// Calls a method; returns `Ok(result)` or `Err((code, error object))`.
    async fn call(&self, method: &str, params: Value) -> Result<Value, (i64, Value)> {
        let response =
            self.post(json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})).await;
        assert_eq!(response.status, 200, "{}", response.body);
        let mut value = response.json();
        match value.get_mut("result") {
            Some(result) => Ok(result.take()),
            None => {
                let error = value["error"].take();
                Err((error["code"].as_i64().unwrap(), error))
            }
        }
    }

    async fn code(&self, method: &str, params: Value) -> i64 {
        match self.call(method, params).await {
            Ok(result) => panic!("{method} succeeded: {result}"),
            Err((code, _)) => code,
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Fixtures

fn withdrawal() -> Withdrawal {
    Withdrawal { index: 7, validator_index: 0, address: Address::repeat_byte(0x11), amount: 42 }
}

fn payload_v1(timestamp: u64) -> ExecutionPayloadV1 {
    ExecutionPayloadV1 {
        parent_hash: B256::repeat_byte(1),
        fee_recipient: Address::repeat_byte(2),
        state_root: B256::repeat_byte(3),
        receipts_root: B256::repeat_byte(4),
        logs_bloom: Default::default(),
        prev_randao: B256::repeat_byte(5),
        block_number: 9,
        gas_limit: 30_000_000,
        gas_used: 0,
        timestamp,
        extra_data: Bytes::new(),
        base_fee_per_gas: U256::from(7),
        block_hash: B256::repeat_byte(6),
        transactions: vec![Bytes::from_static(&[0x02, 0xc0])],
    }
}

fn payload_v2_json(timestamp: u64) -> Value {
    serde_json::to_value(ExecutionPayloadInputV2 {
        execution_payload: payload_v1(timestamp),
        withdrawals: Some(vec![withdrawal()]),
    })
    .unwrap()
}

fn payload_v3_json(timestamp: u64) -> Value {
    serde_json::to_value(ExecutionPayloadV3 {
        payload_inner: ExecutionPayloadV2 {
            payload_inner: payload_v1(timestamp),
            withdrawals: vec![withdrawal()],
        },
        blob_gas_used: 0,
        excess_blob_gas: 0,
    })
    .unwrap()
}

fn fcu_state() -> Value {
    serde_json::to_value(ForkchoiceState {
        head_block_hash: B256::repeat_byte(0x10),
        safe_block_hash: B256::repeat_byte(0x0f),
        finalized_block_hash: B256::repeat_byte(0x0e),
    })
    .unwrap()
}

fn attributes(timestamp: u64, beacon_root: bool) -> Value {
    let mut attrs = PayloadAttributes {
        timestamp,
        prev_randao: B256::repeat_byte(0x33),
        suggested_fee_recipient: Address::repeat_byte(0x44),
        withdrawals: Some(vec![withdrawal()]),
        parent_beacon_block_root: None,
        slot_number: None,
        target_gas_limit: None,
    };
    if beacon_root {
        attrs.parent_beacon_block_root = Some(B256::repeat_byte(0x55));
    }
    serde_json::to_value(attrs).unwrap()
}

fn built_payload(timestamp: u64) -> BuiltPayload {
    let cancun = timestamp >= 1000;
    let header = Header {
        number: 12,
        timestamp,
        gas_limit: 30_000_000,
        base_fee_per_gas: Some(7),
        withdrawals_root: Some(B256::repeat_byte(0x77)),
        parent_beacon_block_root: cancun.then_some(B256::repeat_byte(0x55)),
        blob_gas_used: cancun.then_some(0),
        excess_blob_gas: cancun.then_some(0),
        ..Default::default()
    };
    let block = Block {
        header,
        body: BlockBody {
            transactions: vec![],
            ommers: vec![],
            withdrawals: Some(Withdrawals::new(vec![withdrawal()])),
        },
    };
    BuiltPayload {
        block: Arc::new(ExecutedBlock {
            hash: B256::repeat_byte(0x99),
            block,
            senders: vec![],
            receipts: vec![],
        }),
        fees: U256::from(1234),
        requests: Some(Requests::new(vec![Bytes::from_static(&[0x00, 0xab])])),
        sidecars: vec![],
    }
}

const PAYLOAD_ID: &str = "0x0102030405060708";

// ---------------------------------------------------------------------------------------------------------
// Authentication

#[tokio::test]
async fn jwt_is_required_and_checked() {
    let h = start(ChainSpec::devnet().unwrap()).await;
    let addr = h.handle.local_addr();
    let body = || {
        json!({"jsonrpc": "2.0", "id": 1, "method": "engine_exchangeCapabilities", "params": [[]]})
            .to_string()
            .into_bytes()
    };
    let now = unix_now();
    let wrong = JwtSecret::from_hex("a5".repeat(32)).unwrap();
    let refused = [
        ("missing", None),
        ("wrong secret", Some(format!("Bearer {}", encode_jwt(&wrong, now)))),
        ("stale iat", Some(format!("Bearer {}", encode_jwt(&secret(), now - 120)))),
        ("future iat", Some(format!("Bearer {}", encode_jwt(&secret(), now + 120)))),
        ("not bearer", Some(format!("Basic {}", encode_jwt(&secret(), now)))),
        ("garbage", Some("Bearer not.a.jwt".to_string())),
    ];
    for (case, auth) in refused {
        let response = post_raw(addr, auth, body()).await;
        assert_eq!(response.status, 401, "{case}");
        assert!(!response.body.trim().is_empty() && response.body.len() < 200, "{case}: {}", response.body);
    }
    let ok = post_raw(addr, bearer_now(), body()).await;
    assert_eq!(ok.status, 200);
    assert!(ok.json()["result"].is_array());
    // A token within the ±60 s window is accepted.
    let edge = post_raw(addr, Some(format!("Bearer {}", encode_jwt(&secret(), now - 50))), body()).await;
    assert_eq!(edge.status, 200);
    assert!(h.backend.calls().is_empty());
}

#[tokio::test]
async fn secret_file_errors_are_typed() {
    let dir = std::env::temp_dir().join(format!("alys-engine-api-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.hex");
    std::fs::write(&good, format!("  0x{}\n", "5a".repeat(32))).unwrap();
    let config = EngineApiConfig::from_secret_file(&good).unwrap();
    assert_eq!(config.jwt_secret, secret());
    assert_eq!(config.addr, "127.0.0.1:8551".parse().unwrap());
    let short = dir.join("short.hex");
    std::fs::write(&short, "abcd").unwrap();
    assert!(matches!(
        EngineApiConfig::from_secret_file(&short),
        Err(alys_engine_api::JwtError::InvalidLength(64, 4))
    ));
    assert!(matches!(
        EngineApiConfig::from_secret_file(dir.join("absent.hex")),
        Err(alys_engine_api::JwtError::Read { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------------------------
// Server lifecycle and transport

#[tokio::test]
async fn binds_port_zero_stops_and_reports_bind_errors() {
    let h = start(ChainSpec::devnet().unwrap()).await;
    let addr = h.handle.local_addr();
    assert_ne!(addr.port(), 0);
    assert_eq!(h.handle.http_url(), format!("http://{addr}"));

    let taken = EngineApiServer::new(
        FakeBackend::new(ChainSpec::devnet().unwrap()),
        EngineApiConfig::new(secret()).with_addr(addr),
    )
    .start()
    .await;
    assert!(matches!(taken, Err(StartError::Bind { .. })));

    assert!(h.handle.stop());
    h.handle.clone().stopped().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn malformed_requests_get_json_rpc_errors() {
    let h = start(ChainSpec::devnet().unwrap()).await;
    let addr = h.handle.local_addr();
    let parse = post_raw(addr, bearer_now(), b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":".to_vec()).await;
    assert_eq!(parse.status, 200);
    assert_eq!(parse.json()["error"]["code"], -32700);

    // Garbage never takes the server down: each gets a JSON-RPC error and the next call still works.
    for garbage in [&b"null"[..], b"[]", b"{}", b"\xff\xfe\x00", b"{\"jsonrpc\":\"2.0\",\"id\":1}", b"12"] {
        let response = post_raw(addr, bearer_now(), garbage.to_vec()).await;
        // jsonrpsee (as in reth) answers some of these with HTTP 400, always with a JSON-RPC error body.
        assert!(matches!(response.status, 200 | 400), "{garbage:?}: {}", response.status);
        let code = response.json()["error"]["code"].as_i64().unwrap();
        assert!(code == -32700 || code == -32600, "{garbage:?}: {code}");
    }
    assert!(h.call("engine_exchangeCapabilities", json!([[]])).await.is_ok());
    let wrong_type = h.code("engine_forkchoiceUpdatedV3", json!(["0x1234", null])).await;
    assert_eq!(wrong_type, -32602);
    let no_params = h.code("engine_getPayloadV3", json!([])).await;
    assert_eq!(no_params, -32602);
    let bad_id = h.code("engine_getPayloadV3", json!(["0x01"])).await;
    assert_eq!(bad_id, -32602);
    assert_eq!(h.code("engine_newPayloadV1", json!([])).await, -32601);
    assert!(h.backend.calls().is_empty());
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let h = start_with(ChainSpec::devnet().unwrap(), |c| c.with_max_request_body_size(64 * 1024)).await;
    let filler = "0".repeat(128 * 1024);
    let body =
        json!({"jsonrpc": "2.0", "id": 1, "method": "engine_exchangeCapabilities", "params": [[filler]]});
    let response = post_raw(h.handle.local_addr(), bearer_now(), body.to_string().into_bytes()).await;
    assert_eq!(response.status, 413, "{}", response.body);

    // The default limit (16 MiB) refuses a 17 MiB body too.
    let h = start(ChainSpec::devnet().unwrap()).await;
    let filler = "0".repeat(17 * 1024 * 1024);
    let body =
        json!({"jsonrpc": "2.0", "id": 1, "method": "engine_exchangeCapabilities", "params": [[filler]]});
    let response = post_raw(h.handle.local_addr(), bearer_now(), body.to_string().into_bytes()).await;
    assert_eq!(response.status, 413);
    assert!(h.backend.calls().is_empty());
}

// ---------------------------------------------------------------------------------------------------------
// Capabilities and identification

#[tokio::test]
async fn exchange_capabilities_lists_the_methods() {
    let h = start(ChainSpec::devnet().unwrap()).await;
    let result = h.call("engine_exchangeCapabilities", json!([["engine_newPayloadV4"]])).await.unwrap();
    let listed: Vec<String> = serde_json::from_value(result).unwrap();
    assert_eq!(listed, CAPABILITIES);
    for method in [
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
        "engine_getBlobsV1",
    ] {
        assert!(listed.iter().any(|m| m == method), "{method}");
        // Each listed method is actually served (a wrong-shaped call is -32602, not -32601).
        assert_ne!(h.code(method, json!(["bogus", "bogus", "bogus", "bogus", "bogus"])).await, -32601);
    }
    assert!(!listed.iter().any(|m| m == "engine_exchangeCapabilities"));

    let client = json!({"code": "LH", "name": "Lighthouse", "version": "v5", "commit": "abcdef12"});
    let versions = h.call("engine_getClientVersionV1", json!([client])).await.unwrap();
    assert_eq!(versions[0]["code"], "RH");
    assert_eq!(versions[0]["name"], "alys-devnet-el");
}

// ---------------------------------------------------------------------------------------------------------
// newPayload version rules

#[tokio::test]
async fn new_payload_v2_is_for_shanghai_only() {
    let h = start(ChainSpec::shanghai().unwrap()).await;
    let status = h.call("engine_newPayloadV2", json!([payload_v2_json(SHANGHAI_TS)])).await.unwrap();
    assert_eq!(status["status"], "VALID");
    assert_eq!(status["latestValidHash"], json!(B256::repeat_byte(0xaa)));
    let calls = h.backend.calls();
    let [Call::NewPayload(ExecutionPayload::V2(payload), sidecar)] = calls.as_slice() else {
        panic!("{calls:?}")
    };
    assert_eq!(payload.withdrawals, vec![withdrawal()]);
    assert_eq!(payload.payload_inner, payload_v1(SHANGHAI_TS));
    assert!(sidecar.cancun().is_none() && sidecar.prague().is_none());

    // Withdrawals are required after Shanghai.
    let mut no_withdrawals = payload_v2_json(SHANGHAI_TS);
    no_withdrawals.as_object_mut().unwrap().remove("withdrawals");
    assert_eq!(h.code("engine_newPayloadV2", json!([no_withdrawals])).await, -32602);
    // Cancun fields are not part of a V2 payload.
    assert_eq!(h.code("engine_newPayloadV2", json!([payload_v3_json(SHANGHAI_TS)])).await, -32602);
    assert_eq!(h.backend.calls().len(), 1);

    // On a Cancun timestamp V2 is the wrong version.
    let h = start(mixed_spec()).await;
    assert_eq!(h.code("engine_newPayloadV2", json!([payload_v2_json(CANCUN_TS)])).await, -38005);
    assert!(h.call("engine_newPayloadV2", json!([payload_v2_json(SHANGHAI_TS)])).await.is_ok());
    let h = start(ChainSpec::devnet().unwrap()).await;
    assert_eq!(h.code("engine_newPayloadV2", json!([payload_v2_json(0)])).await, -38005);
    assert!(h.backend.calls().is_empty());
}

#[tokio::test]
async fn new_payload_v3_needs_cancun_and_its_fields() {
    let h = start(mixed_spec()).await;
    let hashes = json!([B256::repeat_byte(0x01)]);
    let root = json!(B256::repeat_byte(0x55));
    let status =
        h.call("engine_newPayloadV3", json!([payload_v3_json(CANCUN_TS), hashes, root])).await.unwrap();
    assert_eq!(status["status"], "VALID");
    let calls = h.backend.calls();
    let [Call::NewPayload(ExecutionPayload::V3(payload), sidecar)] = calls.as_slice() else {
        panic!("{calls:?}")
    };
    assert_eq!(payload.payload_inner.payload_inner.timestamp, CANCUN_TS);
    assert_eq!(sidecar.parent_beacon_block_root(), Some(B256::repeat_byte(0x55)));
    assert_eq!(sidecar.versioned_hashes(), Some(&vec![B256::repeat_byte(0x01)]));
    assert!(sidecar.prague().is_none());

    // Missing or null parentBeaconBlockRoot, missing blob fields: invalid params.
    assert_eq!(h.code("engine_newPayloadV3", json!([payload_v3_json(CANCUN_TS), hashes])).await, -32602);
    assert_eq!(
        h.code("engine_newPayloadV3", json!([payload_v3_json(CANCUN_TS), hashes, null])).await,
        -32602
    );
    assert_eq!(h.code("engine_newPayloadV3", json!([payload_v3_json(CANCUN_TS), null, root])).await, -32602);
    let mut no_blob_gas = payload_v3_json(CANCUN_TS);
    no_blob_gas.as_object_mut().unwrap().remove("blobGasUsed");
    assert_eq!(h.code("engine_newPayloadV3", json!([no_blob_gas, hashes, root])).await, -32602);
    let mut no_withdrawals = payload_v3_json(CANCUN_TS);
    no_withdrawals.as_object_mut().unwrap().remove("withdrawals");
    assert_eq!(h.code("engine_newPayloadV3", json!([no_withdrawals, hashes, root])).await, -32602);

    // Before Cancun V3 is the wrong version.
    assert_eq!(
        h.code("engine_newPayloadV3", json!([payload_v3_json(SHANGHAI_TS), hashes, root])).await,
        -38005
    );
    let h2 = start(ChainSpec::shanghai().unwrap()).await;
    assert_eq!(
        h2.code("engine_newPayloadV3", json!([payload_v3_json(SHANGHAI_TS), hashes, root])).await,
        -38005
    );
    assert!(h2.backend.calls().is_empty());
    assert_eq!(h.backend.calls().len(), 1);
}

#[tokio::test]
async fn v3_methods_are_not_refused_on_prague_timestamps_like_reth() {
    // reth only checks that V3 is used at or after Cancun; a V3 payload on a Prague timestamp reaches the
    // engine without requests (and is INVALID there), and getPayloadV3 serves a Prague payload.
    let h = start(ChainSpec::devnet().unwrap()).await;
    let root = json!(B256::repeat_byte(0x55));
    assert!(h.call("engine_newPayloadV3", json!([payload_v3_json(PRAGUE_TS), [], root])).await.is_ok());
    let calls = h.backend.calls();
    let [Call::NewPayload(_, sidecar)] = calls.as_slice() else { panic!("{calls:?}") };
    assert!(sidecar.cancun().is_some() && sidecar.prague().is_none());

    h.backend.canned().get_payload = Ok(built_payload(PRAGUE_TS));
    let envelope = h.call("engine_getPayloadV3", json!([PAYLOAD_ID])).await.unwrap();
    assert!(envelope.get("executionRequests").is_none());
}

#[tokio::test]
async fn new_payload_v4_needs_prague_and_well_formed_requests() {
    let hashes = json!([]);
    let root = json!(B256::repeat_byte(0x55));
    let requests = json!(["0x00aa", "0x01bb"]);

    let h = start(ChainSpec::devnet().unwrap()).await;
    let status = h
        .call("engine_newPayloadV4", json!([payload_v3_json(PRAGUE_TS), hashes, root, requests]))
        .await
        .unwrap();
    assert_eq!(status["status"], "VALID");
    let calls = h.backend.calls();
    let [Call::NewPayload(ExecutionPayload::V3(_), sidecar)] = calls.as_slice() else { panic!("{calls:?}") };
    assert_eq!(
        sidecar.requests(),
        Some(&Requests::new(vec![Bytes::from_static(&[0x00, 0xaa]), Bytes::from_static(&[0x01, 0xbb])]))
    );
    assert_eq!(sidecar.parent_beacon_block_root(), Some(B256::repeat_byte(0x55)));

    // Missing requests, empty / unordered / duplicated requests: invalid params.
    assert_eq!(
        h.code("engine_newPayloadV4", json!([payload_v3_json(PRAGUE_TS), hashes, root])).await,
        -32602
    );
    for bad in [json!(["0x00"]), json!(["0x01aa", "0x00bb"]), json!(["0x01aa", "0x01bb"]), json!(["0x"])] {
        assert_eq!(
            h.code("engine_newPayloadV4", json!([payload_v3_json(PRAGUE_TS), hashes, root, bad])).await,
            -32602,
            "{bad}"
        );
    }
    assert_eq!(h.backend.calls().len(), 1);

    // V4 on a Shanghai-only chain, or on a Cancun timestamp: unsupported fork.
    let h = start(ChainSpec::shanghai().unwrap()).await;
    assert_eq!(
        h.code("engine_newPayloadV4", json!([payload_v3_json(SHANGHAI_TS), hashes, root, requests])).await,
        -38005
    );
    let h = start(mixed_spec()).await;
    assert_eq!(
        h.code("engine_newPayloadV4", json!([payload_v3_json(CANCUN_TS), hashes, root, requests])).await,
        -38005
    );
    assert!(
        h.call("engine_newPayloadV4", json!([payload_v3_json(PRAGUE_TS), hashes, root, []])).await.is_ok()
    );
}

// ---------------------------------------------------------------------------------------------------------
// forkchoiceUpdated version rules

#[tokio::test]
async fn forkchoice_updated_passes_state_and_attributes() {
    let h = start(ChainSpec::devnet().unwrap()).await;
    let updated =
        h.call("engine_forkchoiceUpdatedV3", json!([fcu_state(), attributes(10, true)])).await.unwrap();
    assert_eq!(updated["payloadStatus"]["status"], "VALID");
    assert_eq!(updated["payloadId"], PAYLOAD_ID);
    let calls = h.backend.calls();
    let [Call::ForkChoice(state, Some(attrs))] = calls.as_slice() else { panic!("{calls:?}") };
    assert_eq!(state.head_block_hash, B256::repeat_byte(0x10));
    assert_eq!(attrs.timestamp, 10);
    assert_eq!(attrs.parent_beacon_block_root, Some(B256::repeat_byte(0x55)));
    assert_eq!(attrs.withdrawals, Some(vec![withdrawal()]));

    // Without attributes there is nothing version-specific to check.
    assert!(h.call("engine_forkchoiceUpdatedV3", json!([fcu_state(), null])).await.is_ok());
    assert!(h.call("engine_forkchoiceUpdatedV2", json!([fcu_state()])).await.is_ok());

    let h = start(ChainSpec::shanghai().unwrap()).await;
    let updated =
        h.call("engine_forkchoiceUpdatedV2", json!([fcu_state(), attributes(10, false)])).await.unwrap();
    assert_eq!(updated["payloadId"], PAYLOAD_ID);
}

#[tokio::test]
async fn forkchoice_attribute_errors_keep_the_head_update() {
    // V2 attributes on a Cancun timestamp: unsupported fork, but the forkchoice still moves.
    let h = start(mixed_spec()).await;
    assert_eq!(
        h.code("engine_forkchoiceUpdatedV2", json!([fcu_state(), attributes(CANCUN_TS, false)])).await,
        -38005
    );
    let calls = h.backend.calls();
    let [Call::ForkChoice(_, None)] = calls.as_slice() else { panic!("{calls:?}") };

    // V3 before Cancun: unsupported fork.
    assert_eq!(
        h.code("engine_forkchoiceUpdatedV3", json!([fcu_state(), attributes(SHANGHAI_TS, true)])).await,
        -38005
    );
    // V3 without parentBeaconBlockRoot, V2 with it, no withdrawals: invalid payload attributes.
    assert_eq!(
        h.code("engine_forkchoiceUpdatedV3", json!([fcu_state(), attributes(CANCUN_TS, false)])).await,
        -38003
    );
    assert_eq!(
        h.code("engine_forkchoiceUpdatedV2", json!([fcu_state(), attributes(SHANGHAI_TS, true)])).await,
        -38003
    );
    let mut no_withdrawals = attributes(CANCUN_TS, true);
    no_withdrawals.as_object_mut().unwrap().remove("withdrawals");
    assert_eq!(h.code("engine_forkchoiceUpdatedV3", json!([fcu_state(), no_withdrawals])).await, -38003);
    let mut slot = attributes(CANCUN_TS, true);
    slot["slotNumber"] = json!("0x5");
    assert_eq!(h.code("engine_forkchoiceUpdatedV3", json!([fcu_state(), slot])).await, -38003);
    // V3 serves Prague attributes too (there is no forkchoiceUpdatedV4 before Amsterdam).
    assert!(
        h.call("engine_forkchoiceUpdatedV3", json!([fcu_state(), attributes(PRAGUE_TS, true)])).await.is_ok()
    );
    let calls = h.backend.calls();
    assert_eq!(calls.len(), 7);
    assert!(calls[..6].iter().all(|c| matches!(c, Call::ForkChoice(_, None))));

    // If the head itself is INVALID, that answer wins over the attribute error (reth).
    let invalid =
        ForkchoiceUpdated::from_status(PayloadStatusEnum::Invalid { validation_error: "bad".into() });
    h.backend.canned().fork_choice = Ok(invalid);
    let updated = h
        .call("engine_forkchoiceUpdatedV3", json!([fcu_state(), attributes(CANCUN_TS, false)]))
        .await
        .unwrap();
    assert_eq!(updated["payloadStatus"]["status"], "INVALID");
    assert_eq!(updated["payloadStatus"]["validationError"], "bad");
}

// ---------------------------------------------------------------------------------------------------------
// getPayload version rules

#[tokio::test]
async fn get_payload_version_follows_the_built_timestamp() {
    let h = start(mixed_spec()).await;

    h.backend.canned().get_payload = Ok(built_payload(SHANGHAI_TS));
    let envelope = h.call("engine_getPayloadV2", json!([PAYLOAD_ID])).await.unwrap();
    assert_eq!(envelope["blockValue"], "0x4d2");
    assert_eq!(envelope["executionPayload"]["blockHash"], json!(B256::repeat_byte(0x99)));
    assert_eq!(envelope["executionPayload"]["timestamp"], "0x1f4");
    assert_eq!(envelope["executionPayload"]["withdrawals"][0]["index"], "0x7");
    assert!(envelope["executionPayload"].get("blobGasUsed").is_none());
    assert_eq!(h.code("engine_getPayloadV3", json!([PAYLOAD_ID])).await, -38005);
    assert_eq!(h.code("engine_getPayloadV4", json!([PAYLOAD_ID])).await, -38005);

    h.backend.canned().get_payload = Ok(built_payload(CANCUN_TS));
    assert_eq!(h.code("engine_getPayloadV2", json!([PAYLOAD_ID])).await, -38005);
    let envelope = h.call("engine_getPayloadV3", json!([PAYLOAD_ID])).await.unwrap();
    assert_eq!(envelope["executionPayload"]["blobGasUsed"], "0x0");
    assert_eq!(envelope["blobsBundle"], json!({"commitments": [], "proofs": [], "blobs": []}));
    assert_eq!(envelope["shouldOverrideBuilder"], false);
    assert!(envelope.get("executionRequests").is_none());
    assert_eq!(h.code("engine_getPayloadV4", json!([PAYLOAD_ID])).await, -38005);

    h.backend.canned().get_payload = Ok(built_payload(PRAGUE_TS));
    assert_eq!(h.code("engine_getPayloadV2", json!([PAYLOAD_ID])).await, -38005);
    let envelope = h.call("engine_getPayloadV4", json!([PAYLOAD_ID])).await.unwrap();
    assert_eq!(envelope["executionRequests"], json!(["0x00ab"]));
    assert_eq!(envelope["blockValue"], "0x4d2");

    let calls = h.backend.calls();
    assert!(
        calls.iter().all(
            |c| matches!(c, Call::GetPayload(id) if *id == PayloadId(B64::new([1, 2, 3, 4, 5, 6, 7, 8])))
        )
    );

    // Shanghai-only chain: only V2.
    let h = start(ChainSpec::shanghai().unwrap()).await;
    h.backend.canned().get_payload = Ok(built_payload(SHANGHAI_TS));
    assert!(h.call("engine_getPayloadV2", json!([PAYLOAD_ID])).await.is_ok());
    assert_eq!(h.code("engine_getPayloadV3", json!([PAYLOAD_ID])).await, -38005);
    assert_eq!(h.code("engine_getPayloadV4", json!([PAYLOAD_ID])).await, -38005);
}

// ---------------------------------------------------------------------------------------------------------
// Backend errors

#[tokio::test]
async fn engine_errors_map_to_spec_codes() {
    let h = start(ChainSpec::devnet().unwrap()).await;

    assert_eq!(h.code("engine_getPayloadV4", json!([PAYLOAD_ID])).await, -38001);
    let (_, err) = h.call("engine_getPayloadV4", json!([PAYLOAD_ID])).await.unwrap_err();
    assert_eq!(err["message"], "Unknown payload");

    let cases = [
        (EngineError::InvalidForkchoiceState, -38002),
        (EngineError::InvalidPayloadAttributes, -38003),
        (EngineError::TooLargeRequest, -38004),
        (EngineError::UnsupportedFork, -38005),
        (EngineError::InvalidParams("bad block".into()), -32602),
        (EngineError::Internal("storage gone".into()), -32603),
        (EngineError::UnknownPayload, -38001),
    ];
    for (err, code) in cases {
        {
            let mut canned = h.backend.canned();
            canned.new_payload = Err(err.clone());
            canned.fork_choice = Err(err.clone());
            canned.get_payload = Err(err.clone());
            canned.bodies = Err(err.clone());
        }
        let requests = json!([]);
        let root = json!(B256::ZERO);
        let calls: [(&str, Value); 5] = [
            ("engine_newPayloadV4", json!([payload_v3_json(PRAGUE_TS), [], root, requests])),
            ("engine_forkchoiceUpdatedV3", json!([fcu_state(), attributes(PRAGUE_TS, true)])),
            ("engine_getPayloadV4", json!([PAYLOAD_ID])),
            ("engine_getPayloadBodiesByHashV1", json!([[B256::ZERO]])),
            ("engine_getPayloadBodiesByRangeV1", json!(["0x1", "0x2"])),
        ];
        for (method, params) in calls {
            let (got, object) = h.call(method, params).await.unwrap_err();
            assert_eq!(got, code, "{method} {err:?}");
            if let EngineError::InvalidParams(reason) | EngineError::Internal(reason) = &err {
                assert_eq!(object["data"]["err"], reason.as_str());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Payload bodies

#[tokio::test]
async fn payload_bodies_requests_are_bounded() {
    let h = start(ChainSpec::devnet().unwrap()).await;
    let body = ExecutionPayloadBodyV1 {
        transactions: vec![Bytes::from_static(&[0x02, 0xc0])],
        withdrawals: Some(vec![withdrawal()]),
    };
    h.backend.canned().bodies = Ok(vec![Some(body), None]);

    let bodies = h.call("engine_getPayloadBodiesByRangeV1", json!(["0x5", "0x2"])).await.unwrap();
    assert_eq!(bodies[0]["transactions"], json!(["0x02c0"]));
    assert_eq!(bodies[0]["withdrawals"][0]["amount"], "0x2a");
    assert!(bodies[1].is_null());
    let hashes: Vec<B256> = (0..3u8).map(B256::repeat_byte).collect();
    let bodies = h.call("engine_getPayloadBodiesByHashV1", json!([hashes])).await.unwrap();
    assert_eq!(bodies.as_array().unwrap().len(), 2);
    assert!(h.call("engine_getPayloadBodiesByRangeV1", json!(["0x1", "0x400"])).await.is_ok());
    let too_many: Vec<B256> = (0..1024u32).map(|i| B256::left_padding_from(&i.to_be_bytes())).collect();
    assert!(h.call("engine_getPayloadBodiesByHashV1", json!([too_many])).await.is_ok());

    let calls = h.backend.calls();
    assert!(matches!(&calls[0], Call::BodiesByRange(5, 2)));
    assert!(matches!(&calls[1], Call::BodiesByHash(h) if *h == hashes));
    assert!(matches!(&calls[2], Call::BodiesByRange(1, 1024)));
    assert_eq!(calls.len(), 4);

    assert_eq!(h.code("engine_getPayloadBodiesByRangeV1", json!(["0x0", "0x2"])).await, -32602);
    assert_eq!(h.code("engine_getPayloadBodiesByRangeV1", json!(["0x1", "0x0"])).await, -32602);
    assert_eq!(h.code("engine_getPayloadBodiesByRangeV1", json!(["0x1", "0x401"])).await, -38004);
    assert_eq!(h.code("engine_getPayloadBodiesByRangeV1", json!(["0x0", "0x401"])).await, -38004);
    assert_eq!(
        h.code("engine_getPayloadBodiesByRangeV1", json!(["0x1", "0xffffffffffffffff"])).await,
        -38004
    );
    assert_eq!(h.code("engine_getPayloadBodiesByRangeV1", json!(["0x1"])).await, -32602);
    assert_eq!(h.code("engine_getPayloadBodiesByRangeV1", json!(["start", "0x1"])).await, -32602);
    let too_many: Vec<B256> = (0..1025u32).map(|i| B256::left_padding_from(&i.to_be_bytes())).collect();
    assert_eq!(h.code("engine_getPayloadBodiesByHashV1", json!([too_many])).await, -38004);
    assert_eq!(h.backend.calls().len(), 4);
}

// ---------------------------------------------------------------------------------------------------------
// Observability

/// Records the `method` field of every `engine_api` span.
#[derive(Clone, Default)]
struct SpanRecorder(Arc<Mutex<Vec<(std::thread::ThreadId, String)>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SpanRecorder {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Visitor(Option<String>);
        impl tracing::field::Visit for Visitor {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "method" {
                    self.0 = Some(value.to_string());
                }
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "method" {
                    self.0 = Some(format!("{value:?}"));
                }
            }
        }
        if attrs.metadata().name() == "engine_api" {
            let mut visitor = Visitor(None);
            attrs.record(&mut visitor);
            let thread = std::thread::current().id();
            self.0.lock().unwrap().extend(visitor.0.map(|method| (thread, method)));
        }
    }
}

#[tokio::test]
async fn every_call_runs_in_a_span_named_after_its_method() {
    use tracing_subscriber::layer::SubscriberExt;

    let recorder = SpanRecorder::default();
    // Global, because a thread-local subscriber loses to the callsite interest other tests' threads have
    // already cached. The test runtime is single-threaded, so this test's spans are those of its thread.
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(recorder.clone())).unwrap();
    let h = start(ChainSpec::devnet().unwrap()).await;
    h.call("engine_exchangeCapabilities", json!([[]])).await.unwrap();
    h.call("engine_forkchoiceUpdatedV3", json!([fcu_state(), null])).await.unwrap();
    h.code("engine_getPayloadV4", json!([PAYLOAD_ID])).await;
    let this_thread = std::thread::current().id();
    let methods: Vec<String> = recorder
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| *t == this_thread)
        .map(|(_, m)| m.clone())
        .collect();
    assert_eq!(methods, ["engine_exchangeCapabilities", "engine_forkchoiceUpdatedV3", "engine_getPayloadV4"]);
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_server() {
    let h = start(ChainSpec::devnet().unwrap()).await;
    let addr = h.handle.local_addr();
    assert!(h.call("engine_exchangeCapabilities", json!([[]])).await.is_ok());
    drop(h);
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("server still accepting connections after its handle was dropped");
}

/// A token signed with `secret` and issued at `iat` (UNIX seconds), as a consensus client mints it.
fn encode_jwt(secret: &JwtSecret, iat: u64) -> String {
    secret.encode(&alloy_rpc_types_engine::Claims { iat, exp: None }).unwrap()
}

/// The current UNIX time in seconds.
fn unix_now() -> u64 {
    alloy_rpc_types_engine::Claims::with_current_timestamp().iat
}

// ---------------------------------------------------------------------------------------------------------
// Blobs

#[tokio::test]
async fn built_payloads_carry_their_blobs_and_get_blobs_reads_the_backend() {
    let h = start(mixed_spec()).await;
    let sidecar = BlobTransactionSidecar::new(
        vec![Blob::repeat_byte(0x11)],
        vec![Bytes48::repeat_byte(0x22)],
        vec![Bytes48::repeat_byte(0x33)],
    );
    let mut built = built_payload(PRAGUE_TS);
    built.sidecars = vec![Arc::new(sidecar.clone())];
    h.backend.canned().get_payload = Ok(built);
    let envelope = h.call("engine_getPayloadV4", json!([PAYLOAD_ID])).await.unwrap();
    let bundle = &envelope["blobsBundle"];
    assert_eq!(bundle["commitments"], json!([Bytes48::repeat_byte(0x22)]));
    assert_eq!(bundle["proofs"], json!([Bytes48::repeat_byte(0x33)]));
    assert_eq!(bundle["blobs"], json!([Blob::repeat_byte(0x11)]));

    let wanted = vec![B256::repeat_byte(1), B256::repeat_byte(2)];
    h.backend.canned().blobs = vec![
        Some(BlobAndProofV1 { blob: Box::new(Blob::repeat_byte(0x11)), proof: Bytes48::repeat_byte(0x33) }),
        None,
    ];
    let blobs = h.call("engine_getBlobsV1", json!([wanted])).await.unwrap();
    assert_eq!(blobs[0]["proof"], json!(Bytes48::repeat_byte(0x33)));
    assert_eq!(blobs[0]["blob"], json!(Blob::repeat_byte(0x11)));
    assert_eq!(blobs[1], Value::Null);
    assert!(matches!(h.backend.calls().last(), Some(Call::Blobs(hashes)) if *hashes == wanted));

    // More than 128 hashes: -38004, without asking the backend.
    let calls = h.backend.calls().len();
    assert_eq!(h.code("engine_getBlobsV1", json!([vec![B256::ZERO; 129]])).await, -38004);
    assert_eq!(h.backend.calls().len(), calls);
}
