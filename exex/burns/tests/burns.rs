#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]
//! Burns read from real alloy blocks (the block path) and from JSON-RPC logs (the geth path), and their
//! wire form.

use alloy_consensus::Transaction as _;
use alloy_primitives::{B256, U256, address};
use alys_burns::{
    BurnExtractor, FeedEvent, FeedEventKind,
    test_utils::{
        ALICE, BOB, BTC_ADDR, TOKEN, TestBlock, block, block_with_burns, blocks, bridge_burn_log, burn_log,
        raw_log, transfer_log, wei,
    },
};
use alys_contracts::{BRIDGE_ADDRESS, REQUEST_PEGOUT_TOPIC};
use alys_proto::burnfeed::v1 as proto;

/// Every log of a block as `eth_getLogs` returns it: block position, transaction and block-wide index.
fn rpc_logs(b: &TestBlock) -> Vec<alloy_rpc_types_eth::Log> {
    let mut out = Vec::new();
    for (tx_index, (tx, receipt)) in b.block.body.transactions.iter().zip(&b.receipts).enumerate() {
        for log in receipt.logs() {
            out.push(alloy_rpc_types_eth::Log {
                inner: log.clone(),
                block_hash: Some(b.hash),
                block_number: Some(b.number()),
                block_timestamp: Some(b.block.header.timestamp),
                transaction_hash: Some(*tx.tx_hash()),
                transaction_index: Some(tx_index as u64),
                log_index: Some(out.len() as u64),
                removed: false,
            });
        }
    }
    out
}

#[test]
fn extracts_bridge_burns_with_block_wide_log_indexes() {
    let b = block_with_burns(7, B256::repeat_byte(9), 3);
    let burns = BurnExtractor::default().extract_block(&b);
    assert_eq!(burns.len(), 2);

    // log 0: transfer (tx 0); log 1: burn (tx 1); log 2: transfer, log 3: burn (tx 2)
    assert_eq!(burns[0].log_index, 1);
    assert_eq!(burns[0].tx_index, 1);
    assert_eq!(burns[0].sender, ALICE);
    assert_eq!(burns[0].bitcoin_address.as_ref(), BTC_ADDR);
    assert_eq!(burns[0].value, wei(4));
    assert_eq!(burns[1].log_index, 3);
    assert_eq!(burns[1].tx_index, 2);
    assert_eq!(burns[1].sender, BOB);
    for burn in &burns {
        assert_eq!(burn.block_number, 7);
        assert_eq!(burn.block_hash, b.hash);
        assert_eq!(burn.tx_hash, *b.block.body.transactions[burn.tx_index as usize].tx_hash());
    }
    assert_eq!(b.block.body.transactions[1].to(), Some(BRIDGE_ADDRESS));
}

#[test]
fn burn_from_a_copy_of_the_contract_elsewhere_is_ignored() {
    let copy = address!("0xbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbC");
    let b = block(
        1,
        B256::ZERO,
        0,
        vec![vec![burn_log(copy, ALICE, BTC_ADDR, wei(1)), bridge_burn_log(BOB, BTC_ADDR, wei(2))]],
    );
    let burns = BurnExtractor::default().extract_block(&b);
    assert_eq!(burns.len(), 1);
    assert_eq!(burns[0].sender, BOB);
    assert_eq!(burns[0].log_index, 1, "the ignored log still counts for the index");

    // An extractor configured for the other address sees only that one.
    let other = BurnExtractor::default().with_bridge_address(copy).extract_block(&b);
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].sender, ALICE);
}

#[test]
fn receipts_without_transactions_do_not_panic() {
    let mut b = block_with_burns(1, B256::ZERO, 0);
    b.block.body.transactions.truncate(1);
    let burns = BurnExtractor::default().extract_block(&b);
    assert!(burns.is_empty());
}

#[test]
fn wire_conversion_rejects_malformed_messages() {
    let b = blocks(1, B256::ZERO, 1, 0);
    let burn = BurnExtractor::default().extract_block(&b[0]).remove(0);
    let event = FeedEvent { cursor: 1, kind: FeedEventKind::Burn, burn };
    let wire = proto::FeedEvent::from(&event);
    assert_eq!(FeedEvent::try_from(wire.clone()).unwrap(), event);
    assert_eq!(wire.event.as_ref().map(|e| matches!(e, proto::feed_event::Event::Burn(_))), Some(true));

    let mut short = wire;
    if let Some(proto::feed_event::Event::Burn(b)) = short.event.as_mut() {
        b.value.pop();
    }
    assert!(FeedEvent::try_from(short).is_err());
    assert!(FeedEvent::try_from(proto::FeedEvent { cursor: 1, event: None }).is_err());
}

#[test]
fn the_block_path_and_the_rpc_path_give_identical_burns() {
    let copy = address!("0xbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbC");
    let sender_topic = ALICE.into_word();
    let b = block(
        4,
        B256::repeat_byte(3),
        0,
        vec![
            vec![transfer_log(TOKEN, ALICE, BOB, U256::from(5)), bridge_burn_log(ALICE, BTC_ADDR, wei(1))],
            vec![burn_log(copy, ALICE, BTC_ADDR, wei(2))],
            vec![raw_log(BRIDGE_ADDRESS, vec![REQUEST_PEGOUT_TOPIC, sender_topic], &[0xff; 96])],
            vec![bridge_burn_log(BOB, b"bc1qbob", wei(3)), bridge_burn_log(ALICE, b"bc1qalice", wei(4))],
        ],
    );
    let extractor = BurnExtractor::default();
    let from_block = extractor.extract_block(&b);
    assert_eq!(from_block.iter().map(|x| x.log_index).collect::<Vec<_>>(), vec![1, 4, 5]);
    let logs = rpc_logs(&b);
    let from_rpc: Vec<_> = logs.iter().filter_map(|log| extractor.burn_from_rpc_log(log)).collect();
    assert_eq!(from_rpc, from_block);

    // A pending log (no block position) is not a burn yet.
    let mut pending = logs[1].clone();
    pending.block_hash = None;
    assert_eq!(extractor.burn_from_rpc_log(&pending), None);

    // A chain's burns are its blocks' burns, in block order.
    let chain = blocks(5, b.hash, 3, 0);
    let all = extractor.extract_chain(std::iter::once(&b).chain(&chain));
    assert_eq!(all.len(), 3 + 3);
    assert_eq!(all[..3], from_block[..]);
    assert!(all[3..].iter().map(|x| x.block_number).eq(5..8));
}
