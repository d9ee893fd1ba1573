//! Conversions between the typed burn/feed types and their `alys.burnfeed.v1` wire form.

use alloy_eips::BlockNumHash;
use alloy_primitives::{Address, B256, Bytes, U256};
use alys_proto::burnfeed::v1 as proto;

use crate::burn::{Burn, FeedEvent, FeedEventKind};

/// A wire message that does not convert to a typed event: outside data, answered with this error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// The event has neither a burn nor a retraction.
    #[error("feed event {cursor} carries neither a burn nor a retraction")]
    MissingEvent {
        /// The event's cursor.
        cursor: u64,
    },
    /// A fixed-size field has the wrong length.
    #[error("field `{field}`: expected {expected} bytes, got {got}")]
    Length {
        /// The field.
        field: &'static str,
        /// Its required length.
        expected: usize,
        /// The length received.
        got: usize,
    },
}

fn fixed<const N: usize>(field: &'static str, bytes: &[u8]) -> Result<[u8; N], ProtoError> {
    bytes.try_into().map_err(|_| ProtoError::Length { field, expected: N, got: bytes.len() })
}

impl From<&Burn> for proto::Burn {
    fn from(burn: &Burn) -> Self {
        Self {
            block_number: burn.block_number,
            block_hash: burn.block_hash.to_vec(),
            log_index: burn.log_index,
            tx_hash: burn.tx_hash.to_vec(),
            tx_index: burn.tx_index,
            sender: burn.sender.to_vec(),
            bitcoin_address: burn.bitcoin_address.to_vec(),
            value: burn.value.to_be_bytes::<32>().to_vec(),
        }
    }
}

impl TryFrom<proto::Burn> for Burn {
    type Error = ProtoError;

    fn try_from(burn: proto::Burn) -> Result<Self, Self::Error> {
        Ok(Self {
            block_number: burn.block_number,
            block_hash: B256::from(fixed::<32>("block_hash", &burn.block_hash)?),
            log_index: burn.log_index,
            tx_hash: B256::from(fixed::<32>("tx_hash", &burn.tx_hash)?),
            tx_index: burn.tx_index,
            sender: Address::from(fixed::<20>("sender", &burn.sender)?),
            bitcoin_address: Bytes::from(burn.bitcoin_address),
            value: U256::from_be_bytes(fixed::<32>("value", &burn.value)?),
        })
    }
}

impl From<&FeedEvent> for proto::FeedEvent {
    fn from(event: &FeedEvent) -> Self {
        let burn = proto::Burn::from(&event.burn);
        Self {
            cursor: event.cursor,
            event: Some(match event.kind {
                FeedEventKind::Burn => proto::feed_event::Event::Burn(burn),
                FeedEventKind::Retract => proto::feed_event::Event::Retract(burn),
            }),
        }
    }
}

impl TryFrom<proto::FeedEvent> for FeedEvent {
    type Error = ProtoError;

    fn try_from(event: proto::FeedEvent) -> Result<Self, Self::Error> {
        let (kind, burn) = match event.event {
            Some(proto::feed_event::Event::Burn(burn)) => (FeedEventKind::Burn, burn),
            Some(proto::feed_event::Event::Retract(burn)) => (FeedEventKind::Retract, burn),
            None => return Err(ProtoError::MissingEvent { cursor: event.cursor }),
        };
        Ok(Self { cursor: event.cursor, kind, burn: burn.try_into()? })
    }
}

/// The feed's position as the `Head` RPC reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeedHead {
    /// The last cursor written (0: empty).
    pub last_cursor: u64,
    /// The last block the ExEx processed.
    pub head: Option<BlockNumHash>,
    /// The finalized block the consensus layer reported.
    pub finalized: Option<BlockNumHash>,
    /// The height reported to reth as `FinishedHeight`.
    pub finished: Option<BlockNumHash>,
}

fn block_to_proto(block: Option<BlockNumHash>) -> Option<proto::BlockRef> {
    block.map(|b| proto::BlockRef { number: b.number, hash: b.hash.to_vec() })
}

fn block_from_proto(
    field: &'static str,
    block: Option<proto::BlockRef>,
) -> Result<Option<BlockNumHash>, ProtoError> {
    block
        .map(|b| Ok(BlockNumHash { number: b.number, hash: B256::from(fixed::<32>(field, &b.hash)?) }))
        .transpose()
}

impl From<FeedHead> for proto::HeadResponse {
    fn from(head: FeedHead) -> Self {
        Self {
            last_cursor: head.last_cursor,
            head: block_to_proto(head.head),
            finalized: block_to_proto(head.finalized),
            finished: block_to_proto(head.finished),
        }
    }
}

impl TryFrom<proto::HeadResponse> for FeedHead {
    type Error = ProtoError;

    fn try_from(head: proto::HeadResponse) -> Result<Self, Self::Error> {
        Ok(Self {
            last_cursor: head.last_cursor,
            head: block_from_proto("head.hash", head.head)?,
            finalized: block_from_proto("finalized.hash", head.finalized)?,
            finished: block_from_proto("finished.hash", head.finished)?,
        })
    }
}
