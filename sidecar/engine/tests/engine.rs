//! The Engine API client against a recording stand-in server: what goes on the wire.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]

use std::sync::{Arc, Mutex};

use alloy_primitives::B256;
use alloy_rpc_types_engine::{ExecutionPayload, ExecutionPayloadV3, JwtSecret, PayloadStatusEnum};
use alys_chainspec::ChainSpec;
use alys_engine_client::EngineClient;
use jsonrpsee::{RpcModule, server::Server};

/// Serves `engine_newPayloadV3/V4`, records their params, answers VALID.
async fn recording_server() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut module = RpcModule::new(Arc::clone(&seen));
    for method in ["engine_newPayloadV3", "engine_newPayloadV4"] {
        module
            .register_method(method, |params, seen, _| {
                let params: serde_json::Value = params.parse().unwrap();
                seen.lock().unwrap().push(params);
                serde_json::json!({ "status": "VALID", "latestValidHash": null, "validationError": null })
            })
            .unwrap();
    }
    let server = Server::builder().build("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", server.local_addr().unwrap());
    let handle = server.start(module);
    std::mem::forget(handle);
    (url, seen)
}

#[tokio::test]
async fn new_payload_carries_the_blob_versioned_hashes_it_is_given() {
    let (url, seen) = recording_server().await;
    let spec = Arc::new(ChainSpec::devnet().unwrap());
    let client = EngineClient::new(&url, JwtSecret::random(), Arc::clone(&spec)).unwrap();
    let header = alloy_consensus::Header {
        timestamp: spec.genesis().timestamp + 1,
        base_fee_per_gas: Some(7),
        withdrawals_root: Some(B256::ZERO),
        blob_gas_used: Some(0),
        excess_blob_gas: Some(0),
        ..Default::default()
    };
    let block = alloy_consensus::Block::<alloy_consensus::TxEnvelope> {
        header,
        body: alloy_consensus::BlockBody { withdrawals: Some(Default::default()), ..Default::default() },
    };
    let payload = ExecutionPayloadV3::from_block_slow(&block);
    let hashes = vec![B256::repeat_byte(1), B256::repeat_byte(2)];
    let status = client
        .new_payload(ExecutionPayload::V3(payload), Some(B256::repeat_byte(9)), hashes.clone(), None)
        .await
        .unwrap();
    assert_eq!(status.status, PayloadStatusEnum::Valid);
    let params = seen.lock().unwrap().pop().expect("newPayload reached the server");
    let sent: Vec<B256> = serde_json::from_value(params[1].clone()).unwrap();
    assert_eq!(sent, hashes, "the versioned hashes go out as given, in order");
    assert_eq!(params[2], serde_json::json!(B256::repeat_byte(9)));
}
