//! The tooling methods against the real embedded engine: proofs verified against its state roots with
//! alloy-trie, traces and access lists of a contract that calls another, the pool's content and pending
//! notifications, and geth's insufficient-funds messages.

use std::sync::Arc;

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_network::TxSignerSync;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, keccak256};
use alloy_rpc_types_engine::{ExecutionPayload, ForkchoiceState, PayloadAttributes, PayloadStatusEnum};
use alloy_rpc_types_eth::EIP1186AccountProofResponse;
use alloy_rpc_types_trace::geth::{CallFrame, DefaultFrame};
use alloy_signer_local::PrivateKeySigner;
use alloy_trie::{Nibbles, TrieAccount, proof::verify_proof};
use alys_chainspec::{
    ChainSpec, DEVNET_CHAIN_ID,
    dev::{DEV_ACCOUNTS, DEV_PRIVATE_KEYS},
};
use alys_devnet_el::{Engine, EngineConfig, EngineHandle};
use alys_el_api::{EngineBackend, EthBackend};
use alys_eth_rpc::{EthRpcConfig, EthRpcHandle, start};
use jsonrpsee::core::client::{Subscription, SubscriptionClientT};
use serde_json::{Value, json};

use super::{err, http, next, ok, params, ws};

const GWEI: u128 = 1_000_000_000;
/// The slot the inner contract's constructor sets, and reads on every call.
const SLOT: u8 = 7;

/// INNER: reads slot 7, logs, returns 42. Its constructor stores 42 in slot 7.
fn inner_runtime() -> Vec<u8> {
    // PUSH1 7 SLOAD POP  PUSH1 0 PUSH1 0 LOG0  PUSH1 42 PUSH1 0 MSTORE  PUSH1 32 PUSH1 0 RETURN
    vec![0x60, SLOT, 0x54, 0x50, 0x60, 0, 0x60, 0, 0xa0, 0x60, 42, 0x60, 0, 0x52, 0x60, 32, 0x60, 0, 0xf3]
}

/// OUTER: calls `inner` with 1 wei and returns its 32-byte answer.
fn outer_runtime(inner: Address) -> Vec<u8> {
    // PUSH1 32 PUSH1 0 PUSH1 0 PUSH1 0 PUSH1 1 PUSH20 inner GAS CALL POP PUSH1 32 PUSH1 0 RETURN
    let mut code = vec![0x60, 32, 0x60, 0, 0x60, 0, 0x60, 0, 0x60, 1, 0x73];
    code.extend_from_slice(inner.as_slice());
    code.extend_from_slice(&[0x5a, 0xf1, 0x50, 0x60, 32, 0x60, 0, 0xf3]);
    code
}

/// Init code that sets `storage` and deploys `runtime`.
fn init_code(storage: &[(u8, u8)], runtime: &[u8]) -> Bytes {
    let mut code = Vec::new();
    for (slot, value) in storage {
        code.extend_from_slice(&[0x60, *value, 0x60, *slot, 0x55]);
    }
    // PUSH1 len DUP1 PUSH1 offset PUSH1 0 CODECOPY PUSH1 0 RETURN: 11 bytes, then the runtime.
    let offset = u8::try_from(code.len() + 11).unwrap();
    let len = u8::try_from(runtime.len()).unwrap();
    code.extend_from_slice(&[0x60, len, 0x80, 0x60, offset, 0x60, 0, 0x39, 0x60, 0, 0xf3]);
    code.extend_from_slice(runtime);
    code.into()
}

fn sign(key: &B256, nonce: u64, to: TxKind, value: u64, input: Bytes, tip: u128) -> Bytes {
    let mut tx = TxEip1559 {
        chain_id: DEVNET_CHAIN_ID,
        nonce,
        gas_limit: 300_000,
        max_fee_per_gas: 20 * GWEI,
        max_priority_fee_per_gas: tip,
        to,
        value: U256::from(value),
        access_list: Default::default(),
        input,
    };
    let signer = PrivateKeySigner::from_bytes(key).unwrap();
    let signature = signer.sign_transaction_sync(&mut tx).unwrap();
    TxEnvelope::from(tx.into_signed(signature)).encoded_2718().into()
}

fn dev_key(i: usize) -> B256 {
    DEV_PRIVATE_KEYS[i]
}

/// Builds a block on the head from the pool, imports it and makes it canonical.
async fn produce(engine: &EngineHandle) {
    let head = engine.block(Default::default(), false).await.unwrap().unwrap();
    let attributes = PayloadAttributes {
        timestamp: head.header.inner.timestamp + 2,
        prev_randao: B256::repeat_byte(7),
        suggested_fee_recipient: Address::repeat_byte(0xfe),
        withdrawals: Some(vec![]),
        parent_beacon_block_root: Some(B256::repeat_byte(9)),
        slot_number: None,
        target_gas_limit: None,
    };
    let state = |head| ForkchoiceState { head_block_hash: head, ..Default::default() };
    let updated = engine.fork_choice_updated(state(head.header.hash), Some(attributes)).await.unwrap();
    let built = engine.get_payload(updated.payload_id.unwrap()).await.unwrap();
    let (payload, sidecar) = ExecutionPayload::from_block_slow(&built.block.block);
    assert_eq!(engine.new_payload(payload, sidecar).await.unwrap().status, PayloadStatusEnum::Valid);
    engine.fork_choice_updated(state(built.block.hash), None).await.unwrap();
}

struct Deployed {
    engine: EngineHandle,
    rpc: EthRpcHandle,
    inner: Address,
    outer: Address,
    /// The transaction that called OUTER with 10 wei, second in block 2 after a transfer.
    call: B256,
}

/// Block 1 deploys INNER and OUTER; block 2 holds a transfer, then a call of OUTER with 10 wei.
async fn deployed() -> Deployed {
    let engine = Engine::spawn(EngineConfig::new(Arc::new(ChainSpec::devnet().unwrap()))).unwrap();
    let rpc = start(engine.clone(), EthRpcConfig::ephemeral()).await.unwrap();
    let deployer = DEV_ACCOUNTS[0];
    let (inner, outer) = (deployer.create(0), deployer.create(1));
    let deploy_inner = init_code(&[(SLOT, 42)], &inner_runtime());
    engine.send_raw_transaction(sign(&dev_key(0), 0, TxKind::Create, 0, deploy_inner, GWEI)).await.unwrap();
    let deploy_outer = init_code(&[], &outer_runtime(inner));
    engine.send_raw_transaction(sign(&dev_key(0), 1, TxKind::Create, 0, deploy_outer, GWEI)).await.unwrap();
    produce(&engine).await;
    assert!(!engine.code(outer, Default::default()).await.unwrap().is_empty());

    let transfer = sign(&dev_key(2), 0, TxKind::Call(Address::repeat_byte(0x44)), 5, Bytes::new(), 3 * GWEI);
    engine.send_raw_transaction(transfer).await.unwrap();
    let call = engine.send_raw_transaction(sign(&dev_key(1), 0, TxKind::Call(outer), 10, Bytes::new(), GWEI));
    let call = call.await.unwrap();
    produce(&engine).await;
    let receipt = engine.transaction_receipt(call).await.unwrap().unwrap();
    assert_eq!((receipt.block_number, receipt.transaction_index), (Some(2), Some(1)));
    Deployed { engine, rpc, inner, outer, call }
}

fn word(n: u64) -> B256 {
    B256::from(U256::from(n))
}

/// Checks every part of an `eth_getProof` answer against the state root of the block it was taken at.
fn verify(state_root: B256, proof: &EIP1186AccountProofResponse) {
    let account = TrieAccount {
        nonce: proof.nonce,
        balance: proof.balance,
        storage_root: proof.storage_hash,
        code_hash: proof.code_hash,
    };
    let key = Nibbles::unpack(keccak256(proof.address));
    let leaf = (!proof.is_empty()).then(|| alloy_rlp::encode(account));
    verify_proof(state_root, key, leaf, &proof.account_proof).unwrap();
    for storage in &proof.storage_proof {
        let key = Nibbles::unpack(keccak256(storage.key.as_b256()));
        let leaf = (!storage.value.is_zero()).then(|| alloy_rlp::encode(storage.value));
        verify_proof(proof.storage_hash, key, leaf, &storage.proof).unwrap();
    }
}

async fn state_root(addr: std::net::SocketAddr, block: &str) -> B256 {
    let block = ok(addr, "eth_getBlockByNumber", json!([block, false])).await;
    serde_json::from_value(block["stateRoot"].clone()).unwrap()
}

#[tokio::test]
async fn proofs_verify_against_the_state_root() {
    let chain = deployed().await;
    let addr = http(&chain.rpc);

    let answer = ok(addr, "eth_getProof", json!([chain.inner, ["0x7", word(8)], "latest"])).await;
    // Keys come back as written.
    assert_eq!(
        (&answer["storageProof"][0]["key"], &answer["storageProof"][1]["key"]),
        (&json!("0x7"), &json!(word(8)))
    );
    let proof: EIP1186AccountProofResponse = serde_json::from_value(answer).unwrap();
    assert_eq!((proof.nonce, proof.balance), (1, U256::from(1)), "INNER got 1 wei from OUTER");
    assert_eq!(proof.code_hash, keccak256(inner_runtime()));
    assert_eq!(proof.storage_proof[0].value, U256::from(42));
    assert_eq!(proof.storage_proof[1].value, U256::ZERO);
    assert!(proof.account_proof.len() > 1, "the state has more than one account");
    verify(state_root(addr, "latest").await, &proof);

    // At block 1 the call had not happened: no wei yet, and the proof holds against block 1's root.
    let before: EIP1186AccountProofResponse =
        serde_json::from_value(ok(addr, "eth_getProof", json!([chain.inner, [], "0x1"])).await).unwrap();
    assert_eq!(before.balance, U256::ZERO);
    verify(state_root(addr, "0x1").await, &before);

    // A funded account without storage, and an account that does not exist (proven absent).
    let funded: EIP1186AccountProofResponse =
        serde_json::from_value(ok(addr, "eth_getProof", json!([DEV_ACCOUNTS[1], [word(0)]])).await).unwrap();
    assert_eq!(funded.nonce, 1);
    verify(state_root(addr, "latest").await, &funded);
    let nobody = Address::repeat_byte(0x99);
    let absent: EIP1186AccountProofResponse =
        serde_json::from_value(ok(addr, "eth_getProof", json!([nobody, [word(1)]])).await).unwrap();
    assert!(absent.is_empty());
    verify(state_root(addr, "latest").await, &absent);

    let error = err(addr, "eth_getProof", json!([chain.inner, [], "0x63"])).await;
    assert_eq!(error["message"], json!("header not found"));
}

#[tokio::test]
async fn traces_show_the_nested_call() {
    let chain = deployed().await;
    let addr = http(&chain.rpc);
    let answer = word(42);

    let options = json!({"tracer": "callTracer", "tracerConfig": {"withLog": true}});
    let top: CallFrame =
        serde_json::from_value(ok(addr, "debug_traceTransaction", json!([chain.call, options])).await)
            .unwrap();
    assert_eq!((top.typ.as_str(), top.from, top.to), ("CALL", DEV_ACCOUNTS[1], Some(chain.outer)));
    assert_eq!(top.value, Some(U256::from(10)));
    assert_eq!(top.output.as_ref().map(|o| o.as_ref()), Some(answer.as_slice()));
    assert!(top.error.is_none());
    let [nested] = top.calls.as_slice() else { panic!("one nested call: {top:?}") };
    assert_eq!((nested.typ.as_str(), nested.from, nested.to), ("CALL", chain.outer, Some(chain.inner)));
    assert_eq!(nested.value, Some(U256::from(1)));
    assert_eq!(nested.output.as_ref().map(|o| o.as_ref()), Some(answer.as_slice()));
    assert_eq!(nested.logs.len(), 1);
    assert_eq!(nested.logs[0].address, Some(chain.inner));
    assert!(top.logs.is_empty());
    // The receipt agrees on the gas.
    let receipt = chain.engine.transaction_receipt(chain.call).await.unwrap().unwrap();
    assert_eq!(top.gas_used, U256::from(receipt.gas_used));

    let options = json!({"tracer": "callTracer", "tracerConfig": {"onlyTopCall": true}});
    let only_top: CallFrame =
        serde_json::from_value(ok(addr, "debug_traceTransaction", json!([chain.call, options])).await)
            .unwrap();
    assert!(only_top.calls.is_empty());
    assert_eq!(only_top.output, top.output);

    // The struct logger: opcodes with pc, gas, depth and stack, storage as the SLOAD sees it.
    let frame: DefaultFrame =
        serde_json::from_value(ok(addr, "debug_traceTransaction", json!([chain.call])).await).unwrap();
    assert!(!frame.failed);
    assert_eq!(frame.gas, receipt.gas_used);
    assert_eq!(frame.return_value.as_ref(), answer.as_slice());
    let first = &frame.struct_logs[0];
    assert_eq!(
        (first.pc, first.op.as_ref(), first.depth, first.stack.as_deref()),
        (0, "PUSH1", 1, Some(&[][..]))
    );
    let sload = frame.struct_logs.iter().find(|log| log.op == "SLOAD").unwrap();
    assert_eq!(sload.depth, 2);
    assert_eq!(sload.stack.as_ref().unwrap().last(), Some(&U256::from(SLOT)));
    assert_eq!(sload.storage.as_ref().unwrap().get(&word(7)), Some(&word(42)));
    assert!(sload.gas_cost > 0 && sload.gas > sload.gas_cost);
    assert!(frame.struct_logs.iter().all(|log| log.memory.is_none()), "memory only when asked");
    let with_memory: DefaultFrame = serde_json::from_value(
        ok(
            addr,
            "debug_traceTransaction",
            json!([chain.call, {"enableMemory": true, "disableStorage": true}]),
        )
        .await,
    )
    .unwrap();
    assert!(with_memory.struct_logs.iter().any(|log| log.memory.as_ref().is_some_and(|m| !m.is_empty())));
    assert!(with_memory.struct_logs.iter().all(|log| log.storage.is_none()));

    // The same call as debug_traceCall, from another account with 5 wei.
    let request = json!({"from": DEV_ACCOUNTS[3], "to": chain.outer, "value": "0x5"});
    let options = json!({"tracer": "callTracer"});
    let call: CallFrame =
        serde_json::from_value(ok(addr, "debug_traceCall", json!([request, "latest", options])).await)
            .unwrap();
    assert_eq!((call.from, call.to, call.value), (DEV_ACCOUNTS[3], Some(chain.outer), Some(U256::from(5))));
    assert_eq!(call.calls[0].to, Some(chain.inner));
    assert_eq!(call.calls[0].value, Some(U256::from(1)));
    assert!(call.calls[0].logs.is_empty(), "logs only withLog");
    assert_eq!(call.output, top.output);

    let error = err(addr, "debug_traceTransaction", json!([B256::repeat_byte(1)])).await;
    assert_eq!(error["message"], json!("transaction not found"));
    let error = err(addr, "debug_traceTransaction", json!([chain.call, {"tracer": "function() {}"}])).await;
    assert_eq!(error["code"], json!(-32602));
}

#[tokio::test]
async fn access_list_and_blob_fee() {
    let chain = deployed().await;
    let addr = http(&chain.rpc);
    let request = json!({"from": DEV_ACCOUNTS[3], "to": chain.outer});
    let result = ok(addr, "eth_createAccessList", json!([request, "latest"])).await;
    // OUTER is the recipient and so left out; INNER and its slot are in.
    assert_eq!(result["accessList"], json!([{"address": chain.inner, "storageKeys": [word(7)]}]));
    assert!(result.get("error").is_none(), "{result}");
    let gas_used: U256 = serde_json::from_value(result["gasUsed"].clone()).unwrap();
    // With the list the call pays 2400 + 1900 up front and saves 2500 + 2000 on cold accesses.
    let with_list = json!({"from": DEV_ACCOUNTS[3], "to": chain.outer, "accessList": result["accessList"]});
    let estimate: U256 =
        serde_json::from_value(ok(addr, "eth_estimateGas", json!([with_list, "latest"])).await).unwrap();
    assert!(gas_used > U256::from(21_000) && gas_used <= estimate, "{gas_used} {estimate}");

    // A reverting call reports the revert in `error`.
    let reverting = json!({"from": DEV_ACCOUNTS[3], "to": chain.outer, "value": "0x1", "gas": "0x5300"});
    let result = ok(addr, "eth_createAccessList", json!([reverting])).await;
    assert!(result["error"].as_str().is_some(), "{result}");

    // Cancun and Prague from genesis; no blob was ever carried, so the excess is zero: the minimum fee.
    assert_eq!(ok(addr, "eth_blobBaseFee", json!([])).await, json!("0x1"));
}

#[tokio::test]
async fn pool_content_status_inspect_and_pending_notifications() {
    let chain = deployed().await;
    let addr = http(&chain.rpc);
    let client = ws(&chain.rpc).await;
    let mut hashes: Subscription<Value> = client
        .subscribe("eth_subscribe", params(vec![json!("newPendingTransactions")]), "eth_unsubscribe")
        .await
        .unwrap();
    let mut full: Subscription<Value> = client
        .subscribe(
            "eth_subscribe",
            params(vec![json!("newPendingTransactions"), json!(true)]),
            "eth_unsubscribe",
        )
        .await
        .unwrap();
    let to = Address::repeat_byte(0x55);
    let ready = sign(&dev_key(4), 0, TxKind::Call(to), 7, Bytes::new(), GWEI);
    let gapped = sign(&dev_key(4), 2, TxKind::Call(to), 8, Bytes::new(), GWEI);
    let ready: B256 =
        serde_json::from_value(ok(addr, "eth_sendRawTransaction", json!([ready])).await).unwrap();
    let gapped: B256 =
        serde_json::from_value(ok(addr, "eth_sendRawTransaction", json!([gapped])).await).unwrap();
    assert_eq!(next(&mut hashes).await, json!(ready));
    assert_eq!(next(&mut hashes).await, json!(gapped));
    let whole = next(&mut full).await;
    assert_eq!(
        (&whole["hash"], &whole["from"], &whole["blockHash"]),
        (&json!(ready), &json!(DEV_ACCOUNTS[4]), &Value::Null)
    );

    assert_eq!(ok(addr, "txpool_status", json!([])).await, json!({"pending": "0x1", "queued": "0x1"}));
    let sender = DEV_ACCOUNTS[4].to_checksum(None);
    let content = ok(addr, "txpool_content", json!([])).await;
    assert_eq!(content["pending"][&sender]["0"]["hash"], json!(ready));
    assert_eq!(content["queued"][&sender]["2"]["hash"], json!(gapped));
    let inspect = ok(addr, "txpool_inspect", json!([])).await;
    assert_eq!(
        inspect["pending"][&sender]["0"],
        json!(format!("{}: 7 wei + 300000 gas × 20000000000 wei", to.to_checksum(None)))
    );
    // Mined, the ready one leaves the pool; the gapped one stays queued.
    produce(&chain.engine).await;
    assert_eq!(ok(addr, "txpool_status", json!([])).await, json!({"pending": "0x0", "queued": "0x1"}));
}

#[tokio::test]
async fn a_sender_without_funds_gets_geths_message() {
    let chain = deployed().await;
    let addr = http(&chain.rpc);
    let poor_key = B256::repeat_byte(0x42);
    let poor = PrivateKeySigner::from_bytes(&poor_key).unwrap().address();
    // A call that names a price: what `cast send` estimates before it signs.
    let request = json!({"from": poor, "to": chain.outer, "value": "0x1", "maxFeePerGas": "0x3b9aca00"});
    for method in ["eth_estimateGas", "eth_call", "eth_createAccessList"] {
        let error = err(addr, method, json!([request])).await;
        assert_eq!(error["code"], json!(-32000), "{method}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!(
                "insufficient funds for gas * price + value: address {poor} have 0 want "
            )),
            "{method}: {message}"
        );
    }
    let error = err(addr, "debug_traceCall", json!([request, "latest", {"tracer": "callTracer"}])).await;
    assert!(error["message"].as_str().unwrap().starts_with("insufficient funds for gas * price + value"));
    // Sent, the pool answers geth's pool message.
    let raw = sign(&poor_key, 0, TxKind::Call(chain.outer), 1, Bytes::new(), GWEI);
    let error = err(addr, "eth_sendRawTransaction", json!([raw])).await;
    let cost = 300_000 * 20 * GWEI + 1;
    assert_eq!(
        error["message"],
        json!(format!(
            "insufficient funds for gas * price + value: balance 0, tx cost {cost}, overshot {cost}"
        ))
    );
}
