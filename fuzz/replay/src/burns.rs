//! Peg-out burns: the stored record, the burn feed's wire messages, and the logs the geth path reads.

use alys_burns::{Burn, BurnExtractor, FeedEvent, FeedHead};
use alys_proto::burnfeed::v1 as proto;
use prost::Message;

/// A burn record (RLP), as the ExEx and the peg-out ledger store it.
///
/// Asserts the RLP round trip both ways and the round trip through the feed's wire form.
pub fn burn(data: &[u8]) {
    let Ok(burn) = Burn::decode(data) else { return };
    assert_eq!(burn.encoded(), data, "a decoded Burn re-encodes to other bytes");
    check_burn(&burn);
}

fn check_burn(burn: &Burn) {
    assert_eq!(Burn::decode(&burn.encoded()).as_ref(), Ok(burn), "decode(encode(burn)) != burn");
    let wire = proto::Burn::from(burn);
    assert_eq!(Burn::try_from(wire).as_ref(), Ok(burn), "a burn does not survive its wire form");
    let key = burn.key().to_bytes();
    assert_eq!(key.get(..32), Some(burn.block_hash.as_slice()));
}

/// A burn-feed message (protobuf): decoded as a `FeedEvent` (the `Subscribe` stream) and as a
/// `HeadResponse` (the `Head` call), each converted to its typed form as the feed client does.
///
/// Asserts the protobuf round trip, and that what converts converts back to the same message.
pub fn feed_event(data: &[u8]) {
    if let Ok(message) = proto::FeedEvent::decode(data) {
        let again = proto::FeedEvent::decode(message.encode_to_vec().as_slice());
        assert_eq!(again.as_ref(), Ok(&message), "FeedEvent: decode(encode(m)) != m");
        if let Ok(event) = FeedEvent::try_from(message.clone()) {
            assert_eq!(proto::FeedEvent::from(&event), message, "a feed event does not convert back");
            check_burn(&event.burn);
        }
    }
    if let Ok(message) = proto::HeadResponse::decode(data) {
        let again = proto::HeadResponse::decode(message.encode_to_vec().as_slice());
        assert_eq!(again.as_ref(), Ok(&message), "HeadResponse: decode(encode(m)) != m");
        if let Ok(head) = FeedHead::try_from(message.clone()) {
            assert_eq!(proto::HeadResponse::from(head), message, "a feed head does not convert back");
        }
    }
}

/// One `eth_getLogs` entry (JSON), as the geth poller reads burns: the log and the burn it stands for.
///
/// Asserts that a burn keeps the log's position (block, transaction, log index) and survives its
/// encodings.
pub fn burn_log(data: &[u8]) {
    let Ok(log) = serde_json::from_slice::<alloy_rpc_types_eth::Log>(data) else { return };
    let Some(burn) = BurnExtractor::new().burn_from_rpc_log(&log) else { return };
    assert_eq!(Some(burn.block_hash), log.block_hash);
    assert_eq!(Some(burn.block_number), log.block_number);
    assert_eq!(Some(burn.log_index), log.log_index);
    assert_eq!(Some(burn.tx_hash), log.transaction_hash);
    assert_eq!(Some(burn.tx_index), log.transaction_index);
    check_burn(&burn);
}
