//! The burn and feed-event types, and the one encoding of a burn (RLP).

use alloy_eips::BlockNumHash;
use alloy_primitives::{Address, B256, BlockNumber, Bytes, U256};
use alloy_rlp::{RlpDecodable, RlpEncodable};

/// What identifies a burn across reorgs and restarts (DESIGN invariant 3): the block that holds it and
/// the index of its log among all logs of that block (`eth_getLogs`' `logIndex`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BurnKey {
    /// Hash of the block that holds the burn.
    pub block_hash: B256,
    /// Index of the log among all logs of the block.
    pub log_index: u64,
}

impl BurnKey {
    /// The key's bytes as the store orders them: block hash, then log index big-endian, so that all burns
    /// of a block are one contiguous range in log order.
    pub fn to_bytes(self) -> [u8; 40] {
        let mut out = [0u8; 40];
        let (hash, index) = out.split_at_mut(32);
        hash.copy_from_slice(self.block_hash.as_slice());
        index.copy_from_slice(&self.log_index.to_be_bytes());
        out
    }
}

/// A burn's place in chain order: block number, then log index, then block hash (which only tells apart
/// burns of competing blocks at one height). Ledgers that list burns oldest first key them by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BurnPosition {
    /// Number of the block that holds the burn.
    pub block_number: BlockNumber,
    /// Index of the log among all logs of the block.
    pub log_index: u64,
    /// Hash of the block.
    pub block_hash: B256,
}

impl BurnPosition {
    /// The first position at `block_number`: every burn of that block or a later one is at or after it.
    pub const fn first_at(block_number: BlockNumber) -> Self {
        Self { block_number, log_index: 0, block_hash: B256::ZERO }
    }

    /// The position's bytes, ordered as the positions are: number and log index big-endian, then hash.
    pub fn to_bytes(self) -> [u8; 48] {
        let mut out = [0u8; 48];
        let (number, rest) = out.split_at_mut(8);
        let (index, hash) = rest.split_at_mut(8);
        number.copy_from_slice(&self.block_number.to_be_bytes());
        index.copy_from_slice(&self.log_index.to_be_bytes());
        hash.copy_from_slice(self.block_hash.as_slice());
        out
    }

    /// The position these bytes encode ([`to_bytes`](Self::to_bytes)).
    pub fn from_bytes(bytes: &[u8; 48]) -> Self {
        let (number, rest) = bytes.split_first_chunk::<8>().map_or(([0; 8], &[][..]), |(n, r)| (*n, r));
        let (index, hash) = rest.split_first_chunk::<8>().map_or(([0; 8], &[][..]), |(i, h)| (*i, h));
        Self {
            block_number: u64::from_be_bytes(number),
            log_index: u64::from_be_bytes(index),
            block_hash: B256::try_from(hash).unwrap_or_default(),
        }
    }
}

/// A `RequestPegOut` log emitted by the bridge contract in a block.
///
/// Encoded one way wherever it is stored: RLP of its fields, as a list, in declaration order
/// ([`encoded`](Self::encoded), [`decode`](Self::decode)).
#[derive(Debug, Clone, PartialEq, Eq, Hash, RlpEncodable, RlpDecodable)]
pub struct Burn {
    /// Number of the block that holds the burn.
    pub block_number: BlockNumber,
    /// Hash of that block.
    pub block_hash: B256,
    /// Index of the log among all logs of the block.
    pub log_index: u64,
    /// Hash of the transaction that emitted the log.
    pub tx_hash: B256,
    /// Index of that transaction in the block.
    pub tx_index: u64,
    /// The burning EVM address (the event's indexed `evmAddress`).
    pub sender: Address,
    /// The Bitcoin address to pay, as the raw bytes the contract received (not validated here).
    pub bitcoin_address: Bytes,
    /// The burned value in wei.
    pub value: U256,
}

impl Burn {
    /// The burn's identity: (block hash, log index).
    pub const fn key(&self) -> BurnKey {
        BurnKey { block_hash: self.block_hash, log_index: self.log_index }
    }

    /// The burn's place in chain order.
    pub const fn position(&self) -> BurnPosition {
        BurnPosition {
            block_number: self.block_number,
            log_index: self.log_index,
            block_hash: self.block_hash,
        }
    }

    /// The block that holds the burn.
    pub const fn block(&self) -> BlockNumHash {
        BlockNumHash { number: self.block_number, hash: self.block_hash }
    }

    /// The burn's RLP encoding.
    pub fn encoded(&self) -> Vec<u8> {
        alloy_rlp::encode(self)
    }

    /// Decodes a burn from exactly `bytes`: trailing bytes are an error, so a record is one burn.
    pub fn decode(bytes: &[u8]) -> Result<Self, alloy_rlp::Error> {
        alloy_rlp::decode_exact(bytes)
    }
}

/// Whether a feed event adds or removes a burn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedEventKind {
    /// The burn's block became canonical.
    Burn,
    /// The burn's block was reverted: the burn no longer exists.
    Retract,
}

/// One entry of the feed's append-only event log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FeedEvent {
    /// Position in the feed: 1 for the first event, then one more for each event.
    pub cursor: u64,
    /// Burn or retraction.
    pub kind: FeedEventKind,
    /// The burn added or retracted.
    pub burn: Burn,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]
    use super::*;
    use crate::test_utils::sample_burn;

    #[test]
    fn encoding_roundtrip() {
        let burn = sample_burn();
        assert_eq!(Burn::decode(&burn.encoded()).unwrap(), burn);
        let empty = Burn { bitcoin_address: Bytes::new(), value: U256::ZERO, ..sample_burn() };
        assert_eq!(Burn::decode(&empty.encoded()).unwrap(), empty);
    }

    #[test]
    fn truncated_or_extended_records_are_errors() {
        let bytes = sample_burn().encoded();
        for len in 0..bytes.len() {
            assert!(Burn::decode(&bytes[..len]).is_err(), "len {len}");
        }
        let mut longer = bytes;
        longer.push(0);
        assert_eq!(Burn::decode(&longer), Err(alloy_rlp::Error::UnexpectedLength));
        assert!(Burn::decode(&[9u8; 200]).is_err());
    }

    #[test]
    fn positions_order_as_their_bytes_and_roundtrip() {
        let at = |block_number, log_index, hash| BurnPosition {
            block_number,
            log_index,
            block_hash: B256::repeat_byte(hash),
        };
        let sorted = [
            BurnPosition::first_at(1),
            at(1, 0, 9),
            at(1, 1, 0),
            at(1, 256, 0),
            at(2, 0, 0),
            at(256, 0, 0),
            at(u64::MAX, u64::MAX, 0xff),
        ];
        for pair in sorted.windows(2) {
            assert!(pair[0] < pair[1] && pair[0].to_bytes() < pair[1].to_bytes(), "{pair:?}");
        }
        for position in sorted {
            assert_eq!(BurnPosition::from_bytes(&position.to_bytes()), position);
        }
        assert_eq!(sample_burn().position().block_hash, sample_burn().block_hash);
    }

    #[test]
    fn keys_order_by_block_then_log_index() {
        let a = BurnKey { block_hash: B256::repeat_byte(1), log_index: 2 }.to_bytes();
        let b = BurnKey { block_hash: B256::repeat_byte(1), log_index: 256 }.to_bytes();
        let c = BurnKey { block_hash: B256::repeat_byte(2), log_index: 0 }.to_bytes();
        assert!(a < b && b < c);
        assert_eq!(a[..32], [1u8; 32]);
        assert_eq!(a[32..], 2u64.to_be_bytes());
    }
}
