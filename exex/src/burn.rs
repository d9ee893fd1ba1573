//! The burn and feed-event types, and their compact encoding in the store.

use alloy_eips::BlockNumHash;
use alloy_primitives::{Address, B256, BlockNumber, Bytes, U256};

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
    pub(crate) fn to_bytes(self) -> [u8; 40] {
        let mut out = [0u8; 40];
        let (hash, index) = out.split_at_mut(32);
        hash.copy_from_slice(self.block_hash.as_slice());
        index.copy_from_slice(&self.log_index.to_be_bytes());
        out
    }
}

/// A `RequestPegOut` log emitted by the bridge contract in a block.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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

    /// The block that holds the burn.
    pub const fn block(&self) -> BlockNumHash {
        BlockNumHash { number: self.block_number, hash: self.block_hash }
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

/// A stored record that does not decode: the store file is damaged or was written by something else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("corrupt {what} record: {reason}")]
pub struct CorruptRecord {
    /// Which kind of record.
    pub what: &'static str,
    /// Why it does not decode.
    pub reason: &'static str,
}

// Fixed part of an encoded burn: number, block hash, log index, tx hash, tx index, sender, value.
const BURN_FIXED_LEN: usize = 8 + 32 + 8 + 32 + 8 + 20 + 32;

/// Encodes a burn: its fixed-size fields, then the bitcoin address bytes to the end.
pub(crate) fn encode_burn(burn: &Burn, out: &mut Vec<u8>) {
    out.reserve(BURN_FIXED_LEN + burn.bitcoin_address.len());
    out.extend_from_slice(&burn.block_number.to_be_bytes());
    out.extend_from_slice(burn.block_hash.as_slice());
    out.extend_from_slice(&burn.log_index.to_be_bytes());
    out.extend_from_slice(burn.tx_hash.as_slice());
    out.extend_from_slice(&burn.tx_index.to_be_bytes());
    out.extend_from_slice(burn.sender.as_slice());
    out.extend_from_slice(&burn.value.to_be_bytes::<32>());
    out.extend_from_slice(&burn.bitcoin_address);
}

/// Reads fixed-size fields off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take::<8>().map(u64::from_be_bytes)
    }

    fn rest(self) -> &'a [u8] {
        self.0
    }
}

pub(crate) fn decode_burn(bytes: &[u8]) -> Result<Burn, CorruptRecord> {
    let short = CorruptRecord { what: "burn", reason: "too short" };
    let mut r = Reader(bytes);
    let block_number = r.u64().ok_or(short)?;
    let block_hash = B256::from(r.take::<32>().ok_or(short)?);
    let log_index = r.u64().ok_or(short)?;
    let tx_hash = B256::from(r.take::<32>().ok_or(short)?);
    let tx_index = r.u64().ok_or(short)?;
    let sender = Address::from(r.take::<20>().ok_or(short)?);
    let value = U256::from_be_bytes(r.take::<32>().ok_or(short)?);
    let bitcoin_address = Bytes::copy_from_slice(r.rest());
    Ok(Burn { block_number, block_hash, log_index, tx_hash, tx_index, sender, bitcoin_address, value })
}

const KIND_BURN: u8 = 1;
const KIND_RETRACT: u8 = 2;

/// Encodes an event (without its cursor, which is the record's key): kind byte, then the burn.
pub(crate) fn encode_event(kind: FeedEventKind, burn: &Burn) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + BURN_FIXED_LEN + burn.bitcoin_address.len());
    out.push(match kind {
        FeedEventKind::Burn => KIND_BURN,
        FeedEventKind::Retract => KIND_RETRACT,
    });
    encode_burn(burn, &mut out);
    out
}

pub(crate) fn decode_event(cursor: u64, bytes: &[u8]) -> Result<FeedEvent, CorruptRecord> {
    let (kind, rest) = bytes.split_first().ok_or(CorruptRecord { what: "event", reason: "empty" })?;
    let kind = match *kind {
        KIND_BURN => FeedEventKind::Burn,
        KIND_RETRACT => FeedEventKind::Retract,
        _ => return Err(CorruptRecord { what: "event", reason: "unknown kind" }),
    };
    Ok(FeedEvent { cursor, kind, burn: decode_burn(rest)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Burn {
        Burn {
            block_number: 7,
            block_hash: B256::repeat_byte(1),
            log_index: 3,
            tx_hash: B256::repeat_byte(2),
            tx_index: 1,
            sender: Address::repeat_byte(3),
            bitcoin_address: Bytes::from_static(b"bcrt1qexample"),
            value: U256::from(10u64).pow(U256::from(16u64)),
        }
    }

    #[test]
    fn event_roundtrip() {
        let burn = sample();
        for kind in [FeedEventKind::Burn, FeedEventKind::Retract] {
            let bytes = encode_event(kind, &burn);
            assert_eq!(decode_event(9, &bytes).unwrap(), FeedEvent { cursor: 9, kind, burn: burn.clone() });
        }
    }

    #[test]
    fn truncated_records_are_errors() {
        let bytes = encode_event(FeedEventKind::Burn, &sample());
        for len in 0..=BURN_FIXED_LEN {
            assert!(decode_event(1, &bytes[..len]).is_err(), "len {len}");
        }
        assert!(decode_event(1, &[9u8; 200]).is_err());
    }

    #[test]
    fn keys_order_by_block_then_log_index() {
        let a = BurnKey { block_hash: B256::repeat_byte(1), log_index: 2 }.to_bytes();
        let b = BurnKey { block_hash: B256::repeat_byte(1), log_index: 256 }.to_bytes();
        assert!(a < b);
    }
}
