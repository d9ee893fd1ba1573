#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]
//! Integration tests of the embedded engine through its Engine API and eth backends.

use std::{sync::Arc, time::Duration};

use alloy_consensus::{Block, SignableTransaction, Transaction as _, TxEip1559, TxEnvelope};
use alloy_eips::{BlockId, BlockNumberOrTag, eip2718::Encodable2718, eip4895::Withdrawal};
use alloy_network::TxSignerSync;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, address, bytes};
use alloy_rpc_types_engine::{
    ExecutionPayload, ExecutionPayloadSidecar, ForkchoiceState, PayloadAttributes, PayloadStatusEnum,
};
use alloy_rpc_types_eth::{Filter, TransactionRequest};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{SolCall, SolError};
use alys_chainspec::{
    ChainSpec,
    dev::{DEV_ACCOUNT_BALANCE, DEV_ACCOUNTS, DEV_PRIVATE_KEYS},
};
use alys_devnet_el::{Engine, EngineConfig, EngineHandle};
use alys_el_api::{
    BackendError, BuiltPayload, ChainNotification, EngineBackend, EngineError, EthBackend, PoolError,
};

const GWEI: u128 = 1_000_000_000;
const LATEST: BlockId = BlockId::Number(BlockNumberOrTag::Latest);

fn spec() -> Arc<ChainSpec> {
    Arc::new(ChainSpec::devnet().unwrap())
}

fn engine() -> EngineHandle {
    Engine::spawn(EngineConfig::new(spec())).unwrap()
}

fn signer(i: usize) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&DEV_PRIVATE_KEYS[i]).unwrap()
}

fn sign(i: usize, nonce: u64, to: TxKind, value: U256, input: Bytes, gas_limit: u64) -> Bytes {
    let mut tx = TxEip1559 {
        chain_id: alys_chainspec::DEVNET_CHAIN_ID,
        nonce,
        gas_limit,
        max_fee_per_gas: 10 * GWEI,
        max_priority_fee_per_gas: GWEI,
        to,
        value,
        access_list: Default::default(),
        input,
    };
    let signature = signer(i).sign_transaction_sync(&mut tx).unwrap();
    TxEnvelope::from(tx.into_signed(signature)).encoded_2718().into()
}

fn transfer(i: usize, nonce: u64, to: Address, value: u64) -> Bytes {
    sign(i, nonce, TxKind::Call(to), U256::from(value), Bytes::new(), 21_000)
}

fn attributes(timestamp: u64, withdrawals: Vec<Withdrawal>) -> PayloadAttributes {
    PayloadAttributes {
        timestamp,
        prev_randao: B256::repeat_byte(7),
        suggested_fee_recipient: address!("0x00000000000000000000000000000000000fee00"),
        withdrawals: Some(withdrawals),
        parent_beacon_block_root: Some(B256::repeat_byte(9)),
        slot_number: None,
        target_gas_limit: None,
    }
}

fn fcs(head: B256) -> ForkchoiceState {
    ForkchoiceState { head_block_hash: head, safe_block_hash: B256::ZERO, finalized_block_hash: B256::ZERO }
}

async fn head_timestamp(engine: &EngineHandle) -> u64 {
    engine.block(LATEST, false).await.unwrap().unwrap().header.inner.timestamp
}

/// forkchoiceUpdated(head, attributes) then getPayload.
async fn build(engine: &EngineHandle, head: B256, withdrawals: Vec<Withdrawal>) -> BuiltPayload {
    let parent = engine.block(BlockId::from(head), false).await.unwrap().unwrap();
    let updated = engine
        .fork_choice_updated(fcs(head), Some(attributes(parent.header.inner.timestamp + 2, withdrawals)))
        .await
        .unwrap();
    assert_eq!(updated.payload_status.status, PayloadStatusEnum::Valid);
    engine.get_payload(updated.payload_id.unwrap()).await.unwrap()
}

fn to_payload(block: &Block<TxEnvelope>) -> (ExecutionPayload, ExecutionPayloadSidecar) {
    ExecutionPayload::from_block_slow(block)
}

/// Builds on `engine`, imports the block and makes it canonical; returns it.
async fn produce(engine: &EngineHandle, withdrawals: Vec<Withdrawal>) -> BuiltPayload {
    let head = engine.block(LATEST, false).await.unwrap().unwrap().header.hash;
    let built = build(engine, head, withdrawals).await;
    let (payload, sidecar) = to_payload(&built.block.block);
    let status = engine.new_payload(payload, sidecar).await.unwrap();
    assert_eq!(status.status, PayloadStatusEnum::Valid, "{status:?}");
    let updated = engine.fork_choice_updated(fcs(built.block.hash), None).await.unwrap();
    assert_eq!(updated.payload_status.status, PayloadStatusEnum::Valid);
    built
}

async fn balance(engine: &EngineHandle, address: Address) -> U256 {
    engine.balance(address, LATEST).await.unwrap()
}

#[tokio::test]
async fn genesis_matches_the_file() {
    let engine = engine();
    let genesis = engine.block(BlockId::Number(BlockNumberOrTag::Earliest), true).await.unwrap().unwrap();
    assert_eq!(genesis.header.hash, engine.genesis_hash());
    assert_eq!(engine.genesis_hash(), spec().genesis_hash());
    assert_eq!(genesis.header.inner.base_fee_per_gas, Some(1_000_000_000));
    assert_eq!(genesis.header.inner.requests_hash, Some(alloy_eips::eip7685::EMPTY_REQUESTS_HASH));
    assert_eq!(engine.block_number().await.unwrap(), 0);
    assert_eq!(balance(&engine, DEV_ACCOUNTS[0]).await, DEV_ACCOUNT_BALANCE);
    let bridge = engine.code(alys_contracts::BRIDGE_ADDRESS, LATEST).await.unwrap();
    assert_eq!(bridge, alys_contracts::bridge_runtime_code());
    // A second engine on the same genesis agrees on the hash.
    assert_eq!(Engine::spawn(EngineConfig::new(spec())).unwrap().genesis_hash(), engine.genesis_hash());
    // Same genesis under a different spec is a different chain.
    let shanghai = Engine::spawn(EngineConfig::new(Arc::new(ChainSpec::shanghai().unwrap()))).unwrap();
    assert_ne!(shanghai.genesis_hash(), engine.genesis_hash());
}

#[tokio::test]
async fn block_built_on_a_is_valid_on_b() {
    let a = engine();
    let b = engine();
    let to = address!("0x1111111111111111111111111111111111111111");
    for nonce in 0..3 {
        a.send_raw_transaction(transfer(0, nonce, to, 1_000 + nonce)).await.unwrap();
    }
    a.send_raw_transaction(transfer(1, 0, to, 5)).await.unwrap();
    assert_eq!(
        a.transaction_count(DEV_ACCOUNTS[0], BlockId::Number(BlockNumberOrTag::Pending)).await.unwrap(),
        3
    );
    let built = produce(&a, vec![]).await;
    assert_eq!(built.block.block.body.transactions.len(), 4);
    assert_eq!(built.fees, U256::from(4 * 21_000 * GWEI));
    assert_eq!(built.requests.as_ref().map(|r| r.is_empty()), Some(true));
    let header = &built.block.block.header;
    assert_eq!(header.gas_used, 4 * 21_000);
    assert_eq!(header.blob_gas_used, Some(0));
    assert_eq!(built.block.receipts.last().unwrap().cumulative_gas_used(), 4 * 21_000);

    let (payload, sidecar) = to_payload(&built.block.block);
    let status = b.new_payload(payload, sidecar).await.unwrap();
    assert_eq!(status.status, PayloadStatusEnum::Valid);
    assert_eq!(status.latest_valid_hash, Some(built.block.hash));
    // Not canonical on B until forkchoiceUpdated.
    assert_eq!(b.block_number().await.unwrap(), 0);
    b.fork_choice_updated(fcs(built.block.hash), None).await.unwrap();
    let block_b = b.block(LATEST, true).await.unwrap().unwrap();
    assert_eq!(block_b.header.hash, built.block.hash);
    assert_eq!(block_b.header.inner.state_root, header.state_root);
    assert_eq!(balance(&b, to).await, U256::from(1_000 + 1_001 + 1_002 + 5));
    assert_eq!(balance(&a, to).await, balance(&b, to).await);
    assert_eq!(balance(&a, DEV_ACCOUNTS[0]).await, balance(&b, DEV_ACCOUNTS[0]).await);
    assert_eq!(balance(&b, address!("0x00000000000000000000000000000000000fee00")).await, built.fees);

    // The system calls ran: EIP-2935 keeps the parent hash, EIP-4788 the beacon root by timestamp.
    let history = alloy_eips::eip2935::HISTORY_STORAGE_ADDRESS;
    assert_eq!(b.storage_at(history, U256::ZERO, LATEST).await.unwrap(), a.genesis_hash());
    let beacon = alloy_eips::eip4788::BEACON_ROOTS_ADDRESS;
    let slot = U256::from(header.timestamp % 8191 + 8191);
    assert_eq!(b.storage_at(beacon, slot, LATEST).await.unwrap(), B256::repeat_byte(9));

    // Receipts and transactions are served with their block positions.
    let tx_hash = *built.block.block.body.transactions[2].tx_hash();
    let receipt = b.transaction_receipt(tx_hash).await.unwrap().unwrap();
    assert_eq!(receipt.transaction_index, Some(2));
    assert_eq!(receipt.gas_used, 21_000);
    assert_eq!(receipt.block_hash, Some(built.block.hash));
    assert_eq!(receipt.effective_gas_price, header.base_fee_per_gas.unwrap() as u128 + GWEI);
    let tx = b.transaction_by_hash(tx_hash).await.unwrap().unwrap();
    assert_eq!(tx.block_number, Some(1));
    // The pool dropped what was included.
    assert_eq!(a.pool_size().await.unwrap(), 0);
    // Next block's base fee follows EIP-1559 (block far below target: fee falls).
    let second = produce(&a, vec![]).await;
    assert!(second.block.block.header.base_fee_per_gas.unwrap() < header.base_fee_per_gas.unwrap());
}

fn reseal(block: &Block<TxEnvelope>) -> (ExecutionPayload, ExecutionPayloadSidecar) {
    ExecutionPayload::from_block_slow(block)
}

#[tokio::test]
async fn tampered_payloads_are_invalid_with_parent_as_latest_valid() {
    let a = engine();
    let b = engine();
    let to = address!("0x2222222222222222222222222222222222222222");
    a.send_raw_transaction(transfer(0, 0, to, 7)).await.unwrap();
    a.send_raw_transaction(transfer(1, 0, to, 8)).await.unwrap();
    let withdrawal = Withdrawal { index: 0, validator_index: 0, address: to, amount: 10 };
    let built = build(&a, a.genesis_hash(), vec![withdrawal]).await;
    let good = built.block.block.clone();
    let parent = a.genesis_hash();

    let mut cases: Vec<(&str, Block<TxEnvelope>)> = Vec::new();
    let mut edit = |name: &'static str, f: &dyn Fn(&mut Block<TxEnvelope>)| {
        let mut block = good.clone();
        f(&mut block);
        cases.push((name, block));
    };
    edit("state root", &|b| b.header.state_root = B256::repeat_byte(1));
    edit("receipts root", &|b| b.header.receipts_root = B256::repeat_byte(2));
    edit("logs bloom", &|b| b.header.logs_bloom = alloy_primitives::Bloom::repeat_byte(3));
    edit("gas used", &|b| b.header.gas_used += 1);
    edit("base fee", &|b| b.header.base_fee_per_gas = Some(b.header.base_fee_per_gas.unwrap() + 1));
    edit("timestamp", &|b| b.header.timestamp = 0);
    edit("gas limit", &|b| b.header.gas_limit *= 2);
    edit("number", &|b| b.header.number = 5);
    edit("extra data", &|b| b.header.extra_data = Bytes::from(vec![1u8; 33]));
    edit("requests hash", &|b| b.header.requests_hash = Some(B256::repeat_byte(4)));
    edit("excess blob gas", &|b| b.header.excess_blob_gas = Some(1));
    edit("blob gas used", &|b| b.header.blob_gas_used = Some(131_072));
    edit("dropped tx", &|b| {
        b.body.transactions.pop();
    });
    edit("withdrawal amount", &|b| {
        let w = b.body.withdrawals.as_mut().unwrap();
        w[0].amount += 1;
    });
    edit("missing withdrawals", &|b| b.body.withdrawals = None);
    edit("beacon root", &|b| b.header.parent_beacon_block_root = Some(B256::repeat_byte(5)));
    for (name, block) in cases {
        // Header roots of the body are recomputed from the body, as a CL would send it.
        let mut block = block;
        if name == "dropped tx" {
            block.header.transactions_root =
                alloy_consensus::proofs::calculate_transaction_root(&block.body.transactions);
        }
        if name == "withdrawal amount" {
            block.header.withdrawals_root = Some(alloy_consensus::proofs::calculate_withdrawals_root(
                block.body.withdrawals.as_ref().unwrap(),
            ));
        }
        let (payload, sidecar) = reseal(&block);
        let status = b.new_payload(payload, sidecar).await.unwrap();
        assert!(status.is_invalid(), "{name}: {status:?}");
        assert_eq!(status.latest_valid_hash, Some(parent), "{name}");
        assert!(status.status.validation_error().is_some(), "{name}");
    }
    // A block hash that does not match the header.
    let (mut payload, sidecar) = to_payload(&good);
    payload.as_v1_mut().block_hash = B256::repeat_byte(6);
    let status = b.new_payload(payload, sidecar).await.unwrap();
    assert!(status.is_invalid());
    // Blob versioned hashes must be the block's (here: none).
    let (payload, _) = to_payload(&good);
    let sidecar = ExecutionPayloadSidecar::v4(
        alloy_rpc_types_engine::CancunPayloadFields::new(
            good.header.parent_beacon_block_root.unwrap(),
            vec![B256::ZERO],
        ),
        alloy_rpc_types_engine::PraguePayloadFields::new(good.header.requests_hash.unwrap()),
    );
    assert!(b.new_payload(payload, sidecar).await.unwrap().is_invalid());
    // The untouched block is still valid on B.
    let (payload, sidecar) = to_payload(&good);
    assert_eq!(b.new_payload(payload, sidecar).await.unwrap().status, PayloadStatusEnum::Valid);
}

#[tokio::test]
async fn unknown_parent_is_syncing_and_children_of_invalid_are_invalid() {
    let a = engine();
    let b = engine();
    let first = produce(&a, vec![]).await;
    let second = produce(&a, vec![]).await;
    let (payload, sidecar) = to_payload(&second.block.block);
    let status = b.new_payload(payload, sidecar).await.unwrap();
    assert_eq!(status.status, PayloadStatusEnum::Syncing);
    assert_eq!(status.latest_valid_hash, None);
    // Unknown head → SYNCING.
    let updated = b.fork_choice_updated(fcs(second.block.hash), None).await.unwrap();
    assert_eq!(updated.payload_status.status, PayloadStatusEnum::Syncing);
    // After the parent arrives the child is valid.
    let (payload, sidecar) = to_payload(&first.block.block);
    assert_eq!(b.new_payload(payload, sidecar).await.unwrap().status, PayloadStatusEnum::Valid);
    let (payload, sidecar) = to_payload(&second.block.block);
    assert_eq!(b.new_payload(payload, sidecar).await.unwrap().status, PayloadStatusEnum::Valid);

    // A child of an invalid block is invalid, with the invalid block's parent as latest valid.
    let c = engine();
    let mut bad = first.block.block.clone();
    bad.header.state_root = B256::repeat_byte(1);
    let (payload, sidecar) = to_payload(&bad);
    let bad_hash = payload.block_hash();
    assert!(c.new_payload(payload, sidecar).await.unwrap().is_invalid());
    let mut child = second.block.block.clone();
    child.header.parent_hash = bad_hash;
    let (payload, sidecar) = to_payload(&child);
    let status = c.new_payload(payload, sidecar).await.unwrap();
    assert!(status.is_invalid());
    assert_eq!(status.latest_valid_hash, Some(c.genesis_hash()));
}

#[tokio::test]
async fn withdrawals_mint_gwei_as_wei() {
    let engine = engine();
    let to = address!("0x3333333333333333333333333333333333333333");
    let sats = 150_000u64;
    let withdrawals = vec![
        Withdrawal { index: 0, validator_index: 0, address: to, amount: sats * alys_contracts::GWEI_PER_SAT },
        Withdrawal { index: 1, validator_index: 0, address: to, amount: 1 },
    ];
    let built = produce(&engine, withdrawals).await;
    assert!(built.block.block.body.withdrawals.as_ref().is_some_and(|w| w.len() == 2));
    let expected = alys_contracts::sats_to_wei(sats) + U256::from(1_000_000_000u64);
    assert_eq!(balance(&engine, to).await, expected);
    let previous = BlockId::Number(BlockNumberOrTag::Number(0));
    assert_eq!(engine.balance(to, previous).await.unwrap(), U256::ZERO);
}

#[tokio::test]
async fn canonical_blocks_are_read_by_number_as_notifications_carry_them() {
    let engine = engine();
    let mut notifications = engine.subscribe_notifications();
    let call =
        alys_contracts::Bridge::requestPegOutCall { bitcoinAddress: Bytes::from_static(b"bcrt1qread") };
    let raw = sign(
        0,
        0,
        TxKind::Call(alys_contracts::BRIDGE_ADDRESS),
        alys_contracts::MIN_PEGOUT_WEI,
        call.abi_encode().into(),
        200_000,
    );
    engine.send_raw_transaction(raw).await.unwrap();
    let built = produce(&engine, vec![]).await;
    let notification = notifications.recv().await.unwrap();
    let ChainNotification::Committed { new } = notification else { panic!("expected Committed") };

    let read = engine.canonical_block(1).await.unwrap().unwrap();
    assert_eq!(read.hash, built.block.hash);
    assert_eq!(&read, new.tip().unwrap(), "the same block, senders and receipts");
    assert_eq!(engine.canonical_block(0).await.unwrap().unwrap().hash, engine.genesis_hash());
    assert!(engine.canonical_block(2).await.unwrap().is_none(), "nothing above the head");
    assert!(engine.canonical_block(u64::MAX).await.unwrap().is_none());
}

#[tokio::test]
async fn peg_out_burn_log_is_in_receipt_and_committed_notification() {
    let engine = engine();
    let mut notifications = engine.subscribe_notifications();
    let call =
        alys_contracts::Bridge::requestPegOutCall { bitcoinAddress: Bytes::from_static(b"bcrt1qexample") };
    let value = alys_contracts::MIN_PEGOUT_WEI;
    let raw =
        sign(0, 0, TxKind::Call(alys_contracts::BRIDGE_ADDRESS), value, call.abi_encode().into(), 200_000);
    let hash = engine.send_raw_transaction(raw).await.unwrap();
    let built = produce(&engine, vec![]).await;

    let receipt = engine.transaction_receipt(hash).await.unwrap().unwrap();
    assert!(receipt.status());
    let logs = receipt.inner.logs();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].address(), alys_contracts::BRIDGE_ADDRESS);
    assert_eq!(logs[0].topics()[0], alys_contracts::REQUEST_PEGOUT_TOPIC);
    assert_eq!(logs[0].log_index, Some(0));
    assert_eq!(balance(&engine, alys_contracts::BURN_ADDRESS).await, value);
    assert_eq!(balance(&engine, alys_contracts::BRIDGE_ADDRESS).await, U256::ZERO);

    let notification =
        tokio::time::timeout(Duration::from_secs(5), notifications.recv()).await.unwrap().unwrap();
    let ChainNotification::Committed { new } = notification else { panic!("expected Committed") };
    let block = new.tip().unwrap();
    assert_eq!(block.hash, built.block.hash);
    assert_eq!(block.senders, vec![DEV_ACCOUNTS[0]]);
    assert!(block.receipts[0].logs().iter().any(|l| l.topics()[0] == alys_contracts::REQUEST_PEGOUT_TOPIC));

    // getLogs finds it; filters work.
    let filter = Filter::new().address(alys_contracts::BRIDGE_ADDRESS).from_block(0u64).to_block(1u64);
    let found = engine.logs(filter).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].transaction_hash, Some(hash));
    let none = engine.logs(Filter::new().address(Address::ZERO).from_block(0u64)).await.unwrap();
    assert!(none.is_empty());
    let too_wide = Filter::new().from_block(0u64).to_block(20_000u64);
    assert_eq!(
        engine.logs(too_wide).await,
        Err(BackendError::RangeTooLarge { max: alys_devnet_el::MAX_LOG_RANGE })
    );
    let huge = Filter::new().from_block(0u64).to_block(u64::MAX);
    assert_eq!(
        engine.logs(huge).await,
        Err(BackendError::RangeTooLarge { max: alys_devnet_el::MAX_LOG_RANGE })
    );
    let widest = Filter::new().from_block(0u64).to_block(alys_devnet_el::MAX_LOG_RANGE - 1);
    assert_eq!(engine.logs(widest).await.unwrap().len(), 1);
    let backwards = Filter::new().from_block(1u64).to_block(0u64);
    assert!(matches!(engine.logs(backwards).await, Err(BackendError::InvalidParams(_))));
}

#[tokio::test]
async fn reorg_to_sibling_switches_state_logs_and_notifies() {
    let a = engine();
    let b = engine();
    let x = address!("0x4444444444444444444444444444444444444444");
    let y = address!("0x5555555555555555555555555555555555555555");
    let call =
        alys_contracts::Bridge::requestPegOutCall { bitcoinAddress: Bytes::from_static(b"bcrt1qreorg") };
    let pegout = sign(
        0,
        0,
        TxKind::Call(alys_contracts::BRIDGE_ADDRESS),
        alys_contracts::MIN_PEGOUT_WEI,
        call.abi_encode().into(),
        200_000,
    );
    let pegout_hash = a.send_raw_transaction(pegout).await.unwrap();
    a.send_raw_transaction(transfer(1, 0, x, 42)).await.unwrap();
    let block_a = produce(&a, vec![]).await;
    assert_eq!(balance(&a, x).await, U256::from(42));

    // B builds a sibling with a withdrawal to Y and no transactions.
    let block_b =
        build(&b, b.genesis_hash(), vec![Withdrawal { index: 0, validator_index: 1, address: y, amount: 3 }])
            .await;
    assert_ne!(block_a.block.hash, block_b.block.hash);
    let mut notifications = a.subscribe_chain();
    let (payload, sidecar) = to_payload(&block_b.block.block);
    assert_eq!(a.new_payload(payload, sidecar).await.unwrap().status, PayloadStatusEnum::Valid);
    a.fork_choice_updated(fcs(block_b.block.hash), None).await.unwrap();

    let notification =
        tokio::time::timeout(Duration::from_secs(5), notifications.recv()).await.unwrap().unwrap();
    let ChainNotification::Reorged { old, new } = notification else { panic!("expected Reorged") };
    assert_eq!(old.tip().unwrap().hash, block_a.block.hash);
    assert_eq!(new.tip().unwrap().hash, block_b.block.hash);
    assert!(
        old.tip().unwrap().receipts[0]
            .logs()
            .iter()
            .any(|l| l.topics()[0] == alys_contracts::REQUEST_PEGOUT_TOPIC)
    );

    assert_eq!(balance(&a, x).await, U256::ZERO);
    assert_eq!(balance(&a, y).await, U256::from(3_000_000_000u64));
    assert!(a.transaction_receipt(pegout_hash).await.unwrap().is_none());
    let logs = a.logs(Filter::new().address(alys_contracts::BRIDGE_ADDRESS).from_block(0u64)).await.unwrap();
    assert!(logs.is_empty());
    // The reverted transactions are back in the pool and go into the next block.
    assert_eq!(a.pool_size().await.unwrap(), 2);
    let next = produce(&a, vec![]).await;
    assert_eq!(next.block.block.body.transactions.len(), 2);
    assert!(a.transaction_receipt(pegout_hash).await.unwrap().is_some());

    // Moving the head back to genesis reverts.
    let mut notifications = a.subscribe_chain();
    a.fork_choice_updated(fcs(a.genesis_hash()), None).await.unwrap();
    let notification =
        tokio::time::timeout(Duration::from_secs(5), notifications.recv()).await.unwrap().unwrap();
    assert!(matches!(notification, ChainNotification::Reverted { old } if old.len() == 2));
    assert_eq!(a.block_number().await.unwrap(), 0);
}

#[tokio::test]
async fn forkchoice_rules() {
    let engine = engine();
    let first = produce(&engine, vec![]).await;
    let second = produce(&engine, vec![]).await;
    // Finalized must be an ancestor of head.
    let bad = ForkchoiceState {
        head_block_hash: first.block.hash,
        safe_block_hash: B256::ZERO,
        finalized_block_hash: second.block.hash,
    };
    assert_eq!(engine.fork_choice_updated(bad, None).await.unwrap_err(), EngineError::InvalidForkchoiceState);
    let unknown_final =
        ForkchoiceState { finalized_block_hash: B256::repeat_byte(1), ..fcs(second.block.hash) };
    assert_eq!(
        engine.fork_choice_updated(unknown_final, None).await.unwrap_err(),
        EngineError::InvalidForkchoiceState
    );
    let good = ForkchoiceState {
        head_block_hash: second.block.hash,
        safe_block_hash: second.block.hash,
        finalized_block_hash: first.block.hash,
    };
    assert!(engine.fork_choice_updated(good, None).await.unwrap().is_valid());
    let finalized = engine.block(BlockId::Number(BlockNumberOrTag::Finalized), false).await.unwrap().unwrap();
    assert_eq!(finalized.header.hash, first.block.hash);
    let safe = engine.block(BlockId::Number(BlockNumberOrTag::Safe), false).await.unwrap().unwrap();
    assert_eq!(safe.header.hash, second.block.hash);

    // Attributes are checked against the head and the fork.
    let ts = head_timestamp(&engine).await;
    let mut attrs = attributes(ts, vec![]);
    assert_eq!(
        engine.fork_choice_updated(good, Some(attrs.clone())).await.unwrap_err(),
        EngineError::InvalidPayloadAttributes
    );
    attrs.timestamp = ts + 1;
    attrs.withdrawals = None;
    assert_eq!(
        engine.fork_choice_updated(good, Some(attrs.clone())).await.unwrap_err(),
        EngineError::InvalidPayloadAttributes
    );
    attrs.withdrawals = Some(vec![]);
    attrs.parent_beacon_block_root = None;
    assert_eq!(
        engine.fork_choice_updated(good, Some(attrs.clone())).await.unwrap_err(),
        EngineError::InvalidPayloadAttributes
    );
    attrs.parent_beacon_block_root = Some(B256::ZERO);
    let first_id = engine.fork_choice_updated(good, Some(attrs.clone())).await.unwrap().payload_id.unwrap();
    let again = engine.fork_choice_updated(good, Some(attrs)).await.unwrap().payload_id.unwrap();
    assert_eq!(first_id, again, "payload ids are deterministic");
    assert_eq!(
        engine.get_payload(alloy_rpc_types_engine::PayloadId::new([9; 8])).await.unwrap_err(),
        EngineError::UnknownPayload
    );
    // Bodies.
    let bodies = engine.payload_bodies_by_range(1, 10).await.unwrap();
    assert_eq!(bodies.len(), 2);
    let by_hash = engine.payload_bodies_by_hash(vec![first.block.hash, B256::ZERO]).await.unwrap();
    assert!(by_hash[0].is_some() && by_hash[1].is_none());
}

#[tokio::test]
async fn restart_from_datadir_keeps_the_chain() {
    let dir = std::env::temp_dir().join(format!(
        "alys-el-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    ));
    let to = address!("0x6666666666666666666666666666666666666666");
    let (head, finalized) = {
        let engine = Engine::spawn(EngineConfig::new(spec()).with_datadir(&dir)).unwrap();
        engine.send_raw_transaction(transfer(2, 0, to, 99)).await.unwrap();
        let first = produce(&engine, vec![]).await;
        let second =
            produce(&engine, vec![Withdrawal { index: 0, validator_index: 0, address: to, amount: 1 }]).await;
        let state = ForkchoiceState {
            head_block_hash: second.block.hash,
            safe_block_hash: second.block.hash,
            finalized_block_hash: first.block.hash,
        };
        engine.fork_choice_updated(state, None).await.unwrap();
        (second.block.hash, first.block.hash)
    };
    // The old task releases the database once its last handle is gone.
    let mut reopened = None;
    for _ in 0..100 {
        match Engine::spawn(EngineConfig::new(spec()).with_datadir(&dir)) {
            Ok(engine) => {
                reopened = Some(engine);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let engine = reopened.expect("reopen");
    assert_eq!(engine.head().await.unwrap(), (head, 2));
    assert_eq!(engine.genesis_hash(), spec().genesis_hash());
    assert_eq!(balance(&engine, to).await, U256::from(99u64 + 1_000_000_000));
    let fin = engine.block(BlockId::Number(BlockNumberOrTag::Finalized), false).await.unwrap().unwrap();
    assert_eq!(fin.header.hash, finalized);
    // And it keeps building on it.
    let third = produce(&engine, vec![]).await;
    assert_eq!(third.block.block.header.number, 3);
    drop(engine);
    // A datadir of another chain is refused.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let other = EngineConfig::new(Arc::new(ChainSpec::shanghai().unwrap())).with_datadir(&dir);
    let mut refused = false;
    for _ in 0..100 {
        match Engine::spawn(other.clone()) {
            Err(alys_devnet_el::EngineStartError::GenesisMismatch { .. }) => {
                refused = true;
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            Ok(_) => break,
        }
    }
    assert!(refused);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn eth_reads_calls_and_estimates() {
    let engine = engine();
    let to = address!("0x7777777777777777777777777777777777777777");
    let request = TransactionRequest::default().from(DEV_ACCOUNTS[0]).to(to).value(U256::from(1));
    assert_eq!(engine.estimate_gas(request.clone(), LATEST).await.unwrap(), 21_000);
    assert_eq!(engine.call(request, LATEST).await.unwrap(), Bytes::new());

    // Init code that reverts with Error("nope").
    let mut init = bytes!("6064600c60003960646000fd").to_vec();
    init.extend_from_slice(&alloy_sol_types::Revert::from("nope").abi_encode());
    let create = TransactionRequest::default().from(DEV_ACCOUNTS[0]).input(Bytes::from(init).into());
    let err = engine.call(create.clone(), LATEST).await.unwrap_err();
    assert!(
        matches!(&err, BackendError::Reverted { reason: Some(r), data } if r == "nope" && !data.is_empty()),
        "{err:?}"
    );
    assert!(matches!(engine.estimate_gas(create, LATEST).await, Err(BackendError::Reverted { .. })));

    // The bridge refuses a peg-out below the minimum with typed error data.
    let call = alys_contracts::Bridge::requestPegOutCall { bitcoinAddress: Bytes::from_static(b"bc1q") };
    let request = TransactionRequest::default()
        .from(DEV_ACCOUNTS[0])
        .to(alys_contracts::BRIDGE_ADDRESS)
        .value(U256::from(1))
        .input(Bytes::from(call.abi_encode()).into());
    assert!(
        matches!(engine.call(request, LATEST).await, Err(BackendError::Reverted { data, .. }) if !data.is_empty())
    );

    // Read the bridge constant through eth_call.
    let min = alys_contracts::Bridge::MIN_PEGOUT_WEICall {};
    let request = TransactionRequest::default()
        .to(alys_contracts::BRIDGE_ADDRESS)
        .input(Bytes::from(min.abi_encode()).into());
    let out = engine.call(request, LATEST).await.unwrap();
    assert_eq!(U256::from_be_slice(&out), alys_contracts::MIN_PEGOUT_WEI);

    assert!(engine.gas_price().await.unwrap() >= 1_000_000_000);
    assert_eq!(engine.max_priority_fee_per_gas().await.unwrap(), alys_devnet_el::DEFAULT_TIP);
    assert_eq!(engine.storage_at(to, U256::ZERO, LATEST).await.unwrap(), B256::ZERO);
    assert_eq!(engine.transaction_count(to, LATEST).await.unwrap(), 0);
    assert!(matches!(
        engine.balance(to, BlockId::Number(BlockNumberOrTag::Number(5))).await,
        Err(BackendError::UnknownBlock)
    ));
    assert!(engine.block(BlockId::Number(BlockNumberOrTag::Number(5)), false).await.unwrap().is_none());

    // Fee history over produced blocks.
    engine.send_raw_transaction(transfer(3, 0, to, 1)).await.unwrap();
    produce(&engine, vec![]).await;
    produce(&engine, vec![]).await;
    let history = engine.fee_history(10, BlockNumberOrTag::Latest, Some(vec![25.0, 75.0])).await.unwrap();
    assert_eq!(history.oldest_block, 0);
    assert_eq!(history.base_fee_per_gas.len(), 4);
    assert_eq!(history.gas_used_ratio.len(), 3);
    assert_eq!(history.reward.as_ref().unwrap()[1], vec![GWEI, GWEI]);
    let block = engine.block(BlockId::Number(BlockNumberOrTag::Number(1)), true).await.unwrap().unwrap();
    assert_eq!(block.transactions.len(), 1);
    let tx = block.transactions.txns().next().unwrap();
    assert_eq!(tx.inner.signer(), DEV_ACCOUNTS[3]);
    assert_eq!(tx.inner.to(), Some(to));

    // Pool errors are typed.
    assert!(matches!(
        engine.send_raw_transaction(Bytes::from_static(b"\x02garbage")).await,
        Err(PoolError::Decode(_))
    ));
    assert!(matches!(
        engine.send_raw_transaction(transfer(3, 0, to, 1)).await,
        Err(PoolError::NonceTooLow { .. })
    ));
}

#[tokio::test]
async fn builder_skips_failing_transactions_and_respects_gas_limit() {
    let engine = engine();
    let to = address!("0x8888888888888888888888888888888888888888");
    // Sender 4: a valid transfer; sender 5: nonce 0 then a transaction that will fail (not enough funds
    // after replacement is impossible in the pool, so use a gap-free run that exceeds the block's gas).
    engine.send_raw_transaction(transfer(4, 0, to, 1)).await.unwrap();
    let big = sign(5, 0, TxKind::Call(to), U256::from(1), Bytes::new(), 29_970_000);
    engine.send_raw_transaction(big).await.unwrap();
    let small = sign(6, 0, TxKind::Call(to), U256::from(1), Bytes::new(), 29_970_000);
    engine.send_raw_transaction(small).await.unwrap();
    let built = produce(&engine, vec![]).await;
    // Only one of the two huge transactions fits next to the transfer.
    assert_eq!(built.block.block.body.transactions.len(), 2);
    assert!(built.block.block.header.gas_used <= built.block.block.header.gas_limit);
    let next = produce(&engine, vec![]).await;
    assert_eq!(next.block.block.body.transactions.len(), 1);
    assert!(next.block.block.body.transactions.iter().all(|tx| tx.gas_limit() == 29_970_000));
}

#[tokio::test]
async fn garbage_payloads_never_panic() {
    let a = engine();
    let b = engine();
    a.send_raw_transaction(transfer(0, 0, Address::ZERO, 1)).await.unwrap();
    let built = build(&a, a.genesis_hash(), vec![]).await;
    let (payload, sidecar) = to_payload(&built.block.block);
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for round in 0..200 {
        let mut p = payload.clone();
        let v1 = p.as_v1_mut();
        match round % 8 {
            0 => v1.transactions = vec![Bytes::from(vec![next() as u8; (next() % 64) as usize])],
            1 => v1.gas_limit = next(),
            2 => v1.gas_used = next(),
            3 => v1.timestamp = next(),
            4 => v1.base_fee_per_gas = U256::from(next()) << (next() % 200),
            5 => v1.extra_data = Bytes::from(vec![1; 33 + (next() % 100) as usize]),
            6 => v1.block_number = next(),
            _ => {
                let mut raw = v1.transactions[0].to_vec();
                let i = (next() as usize) % raw.len();
                raw[i] ^= 0xff;
                v1.transactions = vec![raw.into()];
            }
        }
        let mut resealed = false;
        if round % 3 == 0 {
            // Re-seal so the deeper checks run too (a re-sealed block may even be valid, e.g. with
            // another timestamp: any answer but a panic is fine then).
            if let Ok(block) = p.clone().try_into_block_with_sidecar::<TxEnvelope>(&sidecar) {
                p = ExecutionPayload::from_block_slow(&block).0;
                resealed = true;
            }
        }
        let status = b.new_payload(p, sidecar.clone()).await.unwrap();
        if !resealed {
            assert!(status.is_invalid(), "{round}: {status:?}");
        }
    }
    assert_eq!(b.block_number().await.unwrap(), 0);
    // Still works.
    let (payload, sidecar) = to_payload(&built.block.block);
    assert_eq!(b.new_payload(payload, sidecar).await.unwrap().status, PayloadStatusEnum::Valid);
}

#[tokio::test]
async fn shanghai_chain_builds_and_validates_v2_payloads() {
    let spec = Arc::new(ChainSpec::shanghai().unwrap());
    let a = Engine::spawn(EngineConfig::new(Arc::clone(&spec))).unwrap();
    let b = Engine::spawn(EngineConfig::new(spec)).unwrap();
    let to = address!("0x9999999999999999999999999999999999999999");
    let mut tx = TxEip1559 {
        chain_id: alys_chainspec::TESTNET_CHAIN_ID,
        nonce: 0,
        gas_limit: 21_000,
        max_fee_per_gas: 10 * GWEI,
        max_priority_fee_per_gas: GWEI,
        to: TxKind::Call(to),
        value: U256::from(1),
        access_list: Default::default(),
        input: Bytes::new(),
    };
    let signature = signer(0).sign_transaction_sync(&mut tx).unwrap();
    let raw: Bytes = TxEnvelope::from(tx.into_signed(signature)).encoded_2718().into();
    if a.balance(DEV_ACCOUNTS[0], LATEST).await.unwrap() > U256::ZERO {
        a.send_raw_transaction(raw).await.unwrap();
    }
    let genesis = a.block(LATEST, false).await.unwrap().unwrap();
    assert!(genesis.header.inner.parent_beacon_block_root.is_none());
    let mut attrs = attributes(
        genesis.header.inner.timestamp + 2,
        vec![Withdrawal { index: 0, validator_index: 0, address: to, amount: 5 }],
    );
    // A beacon root before Cancun is refused.
    assert_eq!(
        a.fork_choice_updated(fcs(a.genesis_hash()), Some(attrs.clone())).await.unwrap_err(),
        EngineError::InvalidPayloadAttributes
    );
    attrs.parent_beacon_block_root = None;
    let id = a.fork_choice_updated(fcs(a.genesis_hash()), Some(attrs)).await.unwrap().payload_id.unwrap();
    let built = a.get_payload(id).await.unwrap();
    assert!(built.requests.is_none());
    let header = &built.block.block.header;
    assert!(
        header.parent_beacon_block_root.is_none()
            && header.blob_gas_used.is_none()
            && header.requests_hash.is_none()
    );
    let (payload, sidecar) = to_payload(&built.block.block);
    assert!(matches!(payload, ExecutionPayload::V2(_)));
    assert_eq!(b.new_payload(payload, sidecar).await.unwrap().status, PayloadStatusEnum::Valid);
    b.fork_choice_updated(fcs(built.block.hash), None).await.unwrap();
    assert_eq!(
        balance(&b, to).await,
        U256::from(5_000_000_000u64) + U256::from(built.block.block.body.transactions.len())
    );
}

#[tokio::test]
async fn restart_after_reorg_keeps_the_new_branch() {
    let dir = std::env::temp_dir().join(format!(
        "alys-el-reorg-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    ));
    let y = address!("0xabababababababababababababababababababab");
    let sibling = {
        let a = Engine::spawn(EngineConfig::new(spec()).with_datadir(&dir)).unwrap();
        let b = engine();
        let first = produce(&a, vec![]).await;
        let (payload, sidecar) = to_payload(&first.block.block);
        assert_eq!(b.new_payload(payload, sidecar).await.unwrap().status, PayloadStatusEnum::Valid);
        produce(&a, vec![]).await;
        produce(&a, vec![]).await;
        // B builds a one-block sibling of A's block 2 and A reorgs to it (head moves from 3 to 2').
        let other = build(
            &b,
            first.block.hash,
            vec![Withdrawal { index: 0, validator_index: 0, address: y, amount: 7 }],
        )
        .await;
        let (payload, sidecar) = to_payload(&other.block.block);
        assert_eq!(a.new_payload(payload, sidecar).await.unwrap().status, PayloadStatusEnum::Valid);
        a.fork_choice_updated(fcs(other.block.hash), None).await.unwrap();
        assert_eq!(a.head().await.unwrap(), (other.block.hash, 2));
        other.block.hash
    };
    let mut reopened = None;
    for _ in 0..100 {
        match Engine::spawn(EngineConfig::new(spec()).with_datadir(&dir)) {
            Ok(engine) => {
                reopened = Some(engine);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let engine = reopened.expect("reopen");
    assert_eq!(engine.head().await.unwrap(), (sibling, 2));
    assert_eq!(balance(&engine, y).await, U256::from(7_000_000_000u64));
    assert!(engine.block(BlockId::Number(BlockNumberOrTag::Number(3)), false).await.unwrap().is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The devnet genesis with `edit` applied to its JSON.
fn spec_with(edit: impl FnOnce(&mut serde_json::Value)) -> Arc<ChainSpec> {
    let mut genesis: serde_json::Value = serde_json::from_str(alys_chainspec::DEVNET_GENESIS_JSON).unwrap();
    edit(&mut genesis);
    Arc::new(ChainSpec::from_json(&genesis.to_string()).unwrap())
}

#[tokio::test]
async fn gas_used_mismatch_names_the_computed_value_then_the_header_value() {
    let a = engine();
    let b = engine();
    a.send_raw_transaction(transfer(0, 0, Address::repeat_byte(0x44), 1)).await.unwrap();
    let mut block = build(&a, a.genesis_hash(), vec![]).await.block.block.clone();
    block.header.gas_used += 1;
    let (payload, sidecar) = reseal(&block);
    let status = b.new_payload(payload, sidecar).await.unwrap();
    // As reth words it: got what execution produced, expected what the header claims.
    assert_eq!(status.status.validation_error(), Some("gas used mismatch: got 21000, expected 21001"));
}

#[tokio::test]
async fn gas_limit_stays_at_most_2_pow_63_minus_1() {
    const MAX: u64 = 0x7fff_ffff_ffff_ffff;
    let spec = spec_with(|g| g["gasLimit"] = format!("{MAX:#x}").into());
    let a = Engine::spawn(EngineConfig::new(Arc::clone(&spec))).unwrap();
    let b = Engine::spawn(EngineConfig::new(spec)).unwrap();
    // The builder aims higher but stops at the maximum.
    let mut attrs = attributes(head_timestamp(&a).await + 2, vec![]);
    attrs.target_gas_limit = Some(u64::MAX);
    let updated = a.fork_choice_updated(fcs(a.genesis_hash()), Some(attrs)).await.unwrap();
    let built = a.get_payload(updated.payload_id.unwrap()).await.unwrap();
    assert_eq!(built.block.block.header.gas_limit, MAX);
    let (payload, sidecar) = to_payload(&built.block.block);
    assert_eq!(b.new_payload(payload, sidecar).await.unwrap().status, PayloadStatusEnum::Valid);
    // One more is within the 1/1024 step of the parent, but above 2^63 - 1: refused, as reth and geth do.
    let mut above = built.block.block.clone();
    above.header.gas_limit = MAX + 1;
    let (payload, sidecar) = reseal(&above);
    let status = b.new_payload(payload, sidecar).await.unwrap();
    assert!(status.is_invalid(), "{status:?}");
    assert!(status.status.validation_error().unwrap().contains("above the maximum"), "{status:?}");
}

#[tokio::test]
async fn creation_at_an_account_with_storage_collides() {
    // EIP-7610: storage without code or nonce at the address of dev account 0's first creation, and at
    // the address of a factory's next CREATE.
    let factory = address!("0x00000000000000000000000000000000000fac70");
    let by_tx = DEV_ACCOUNTS[0].create(0);
    let by_opcode = factory.create(1);
    let slot = serde_json::json!({ format!("{:#066x}", 1): format!("{:#066x}", 7) });
    let spec = spec_with(|g| {
        g["alloc"][by_tx.to_string()] = serde_json::json!({ "balance": "0x0", "storage": slot });
        g["alloc"][by_opcode.to_string()] = serde_json::json!({ "balance": "0x0", "storage": slot });
        // CREATE(0, 0, 0) and store the result in slot 0.
        g["alloc"][factory.to_string()] =
            serde_json::json!({ "balance": "0x0", "nonce": "0x1", "code": "0x600060006000f060005500" });
    });
    let a = Engine::spawn(EngineConfig::new(Arc::clone(&spec))).unwrap();
    let b = Engine::spawn(EngineConfig::new(spec)).unwrap();
    let deploy = sign(0, 0, TxKind::Create, U256::ZERO, bytes!("60016000f3"), 100_000);
    let deploy = a.send_raw_transaction(deploy).await.unwrap();
    // A failed CREATE consumes the gas it forwarded: leave the factory 1/64 enough to store the result.
    let call = a.send_raw_transaction(sign(1, 0, TxKind::Call(factory), U256::ZERO, Bytes::new(), 400_000));
    let call = call.await.unwrap();
    let built = produce(&a, vec![]).await;
    assert_eq!(built.block.block.body.transactions.len(), 2);

    let receipt = a.transaction_receipt(deploy).await.unwrap().unwrap();
    assert!(!receipt.status(), "the creating transaction fails");
    assert_eq!(receipt.gas_used, 100_000, "a collision consumes all gas");
    assert_eq!(receipt.contract_address, Some(by_tx));
    assert!(a.code(by_tx, LATEST).await.unwrap().is_empty());
    assert_eq!(a.transaction_count(by_tx, LATEST).await.unwrap(), 0);
    assert_eq!(a.transaction_count(DEV_ACCOUNTS[0], LATEST).await.unwrap(), 1, "the sender's nonce is spent");
    assert_eq!(a.storage_at(by_tx, U256::from(1), LATEST).await.unwrap(), B256::with_last_byte(7));

    assert!(a.transaction_receipt(call).await.unwrap().unwrap().status(), "CREATE fails, the call does not");
    assert_eq!(a.storage_at(factory, U256::ZERO, LATEST).await.unwrap(), B256::ZERO, "CREATE returned 0");
    assert_eq!(a.transaction_count(factory, LATEST).await.unwrap(), 2, "the factory's nonce is spent");
    assert_eq!(a.transaction_count(by_opcode, LATEST).await.unwrap(), 0);

    // Validation runs the same rule.
    let (payload, sidecar) = to_payload(&built.block.block);
    assert_eq!(b.new_payload(payload, sidecar).await.unwrap().status, PayloadStatusEnum::Valid);
}

mod blobs {
    use alloy_consensus::{Signed, TxEip4844, TxEip4844Variant, TxEip4844WithSidecar};
    use alloy_eips::{
        eip4844::{Blob, BlobTransactionSidecar, DATA_GAS_PER_BLOB, env_settings::EnvKzgSettings},
        eip7594::BlobTransactionSidecarVariant,
    };
    use alloy_rpc_types_engine::{CancunPayloadFields, PraguePayloadFields};

    use super::*;

    fn sidecar(seeds: &[u8]) -> BlobTransactionSidecar {
        let blobs = seeds
            .iter()
            .map(|seed| {
                let mut blob = Blob::ZERO;
                for (i, element) in blob.0.chunks_mut(32).enumerate() {
                    element[31] = seed.wrapping_add(i as u8);
                }
                blob
            })
            .collect();
        BlobTransactionSidecar::try_from_blobs_with_settings(blobs, EnvKzgSettings::Default.get()).unwrap()
    }

    /// A blob transaction from dev account `i` in the network encoding, with its sidecar.
    fn blob_tx(i: usize, nonce: u64, sidecar: &BlobTransactionSidecar) -> Bytes {
        let mut tx = TxEip4844 {
            chain_id: alys_chainspec::DEVNET_CHAIN_ID,
            nonce,
            gas_limit: 21_000,
            max_fee_per_gas: 10 * GWEI,
            max_priority_fee_per_gas: GWEI,
            to: Address::repeat_byte(0xb1),
            blob_versioned_hashes: sidecar.versioned_hashes().collect(),
            max_fee_per_blob_gas: 1_000,
            ..Default::default()
        };
        let signature = signer(i).sign_transaction_sync(&mut tx).unwrap();
        let with = TxEip4844WithSidecar::from_tx_and_sidecar(
            tx,
            BlobTransactionSidecarVariant::Eip4844(sidecar.clone()),
        );
        let signed = Signed::new_unhashed(TxEip4844Variant::TxEip4844WithSidecar(with), signature);
        TxEnvelope::Eip4844(signed).encoded_2718().into()
    }

    #[tokio::test]
    async fn blob_transactions_are_built_validated_and_served() {
        let a = engine();
        let b = engine();
        let blobs = sidecar(&[1, 2]);
        let hash = a.send_raw_transaction(blob_tx(0, 0, &blobs)).await.unwrap();
        let hashes: Vec<B256> = blobs.versioned_hashes().collect();
        assert!(a.blobs_v1(hashes.clone()).await.unwrap().iter().all(Option::is_some));

        let built = build(&a, a.genesis_hash(), vec![]).await;
        let block = &built.block.block;
        assert_eq!(block.body.transactions.len(), 1);
        assert_eq!(*block.body.transactions[0].tx_hash(), hash);
        assert_eq!(block.header.blob_gas_used, Some(2 * DATA_GAS_PER_BLOB));
        assert_eq!(built.sidecars.len(), 1);
        assert_eq!(*built.sidecars[0], blobs, "the payload carries the blobs bundle");

        // Validation wants the block's versioned hashes; wrong ones do not condemn the block.
        let (payload, _) = to_payload(block);
        let wrong = ExecutionPayloadSidecar::v4(
            CancunPayloadFields::new(block.header.parent_beacon_block_root.unwrap(), vec![]),
            PraguePayloadFields::new(block.header.requests_hash.unwrap()),
        );
        assert!(b.new_payload(payload, wrong).await.unwrap().is_invalid());
        let (payload, sidecar) = to_payload(block);
        assert_eq!(sidecar.versioned_hashes(), Some(&hashes));
        assert_eq!(b.new_payload(payload, sidecar).await.unwrap().status, PayloadStatusEnum::Valid);
        b.fork_choice_updated(fcs(built.block.hash), None).await.unwrap();
        let receipt = b.transaction_receipt(hash).await.unwrap().unwrap();
        assert!(receipt.status());
        assert_eq!(receipt.blob_gas_used, Some(2 * DATA_GAS_PER_BLOB));
        assert_eq!(receipt.blob_gas_price, Some(1), "the minimum blob base fee at zero excess");

        // Included blobs stay readable for a while (getBlobsV1, reorgs).
        let (payload, sidecar) = to_payload(block);
        a.new_payload(payload, sidecar).await.unwrap();
        a.fork_choice_updated(fcs(built.block.hash), None).await.unwrap();
        assert_eq!(a.pool_size().await.unwrap(), 0);
        assert!(a.blobs_v1(hashes).await.unwrap().iter().all(Option::is_some));
    }

    #[tokio::test]
    async fn blocks_hold_at_most_the_forks_blobs_and_excess_blob_gas_follows() {
        let a = engine();
        let b = engine();
        let one = sidecar(&[9]);
        for nonce in 0..10 {
            a.send_raw_transaction(blob_tx(1, nonce, &one)).await.unwrap();
        }
        // Prague allows 9 blobs per block (EIP-7691); the tenth waits.
        let first = produce(&a, vec![]).await;
        assert_eq!(first.block.block.body.transactions.len(), 9);
        assert_eq!(first.block.block.header.blob_gas_used, Some(9 * DATA_GAS_PER_BLOB));
        assert_eq!(a.pool_size().await.unwrap(), 1);
        let second = produce(&a, vec![]).await;
        assert_eq!(second.block.block.body.transactions.len(), 1);
        // 9 blobs over a target of 6 leave 3 blobs of excess.
        assert_eq!(second.block.block.header.excess_blob_gas, Some(3 * DATA_GAS_PER_BLOB));
        let history = a.fee_history(2, BlockNumberOrTag::Latest, None).await.unwrap();
        assert_eq!(history.blob_gas_used_ratio, vec![1.0, 1.0 / 9.0]);
        for built in [&first, &second] {
            let (payload, sidecar) = to_payload(&built.block.block);
            assert_eq!(b.new_payload(payload, sidecar).await.unwrap().status, PayloadStatusEnum::Valid);
        }

        // A header claiming more blob gas than the body's blobs is refused; so is one over the maximum.
        for claimed in [8 * DATA_GAS_PER_BLOB, 10 * DATA_GAS_PER_BLOB] {
            let mut block = first.block.block.clone();
            block.header.blob_gas_used = Some(claimed);
            let (payload, sidecar) = reseal(&block);
            assert!(b.new_payload(payload, sidecar).await.unwrap().is_invalid(), "{claimed}");
        }
    }
}
