//! The geth path: `eth_getLogs` of the bridge address over finalized ranges, chunk by chunk.
//!
//! # Chunks, and ranges the server refuses
//!
//! A range is read in chunks of at most `max_range` blocks ([`GethPoller::chunks`]); the caller commits
//! each chunk's burns with the height it reaches before asking for the next, so nothing more than one
//! chunk is ever held in memory and a failure loses at most the chunk in flight.
//!
//! Execution clients cap what one `eth_getLogs` may cover or return, each in its own words:
//! - geth: `exceed maximum block range: N` (`--rpc.rangelimit`);
//! - reth: `query exceeds max block range N`, `query exceeds max results N, retry with the range A-B`
//!   (`-32602`);
//! - hosted nodes (Infura and others): `query returned more than 10000 results` (`-32005`, "limit
//!   exceeded");
//! - the devnet engine: `query exceeds max block range N`, `query returned more than N results`.
//!
//! A chunk refused that way ([`GethPollerError::is_range_refusal`]) is halved and asked again, down to a
//! single block; a single block the server still refuses is an error (the poll stops, and the next one
//! retries from the stored height). After a chunk is served the chunk size grows back (doubling, up to
//! `max_range`), so one dense stretch of the chain does not slow the rest.

use alloy_primitives::B256;
use alloy_rpc_types_eth::{Block, Filter, Log};
use alys_burns::{Burn, BurnExtractor};
use jsonrpsee::{
    core::{ClientError, client::ClientT},
    http_client::{HttpClient, HttpClientBuilder},
    rpc_params,
};

use crate::metrics::{GETH_POLLS, GETH_RANGE_SPLITS};

/// JSON-RPC's "limit exceeded" code, which hosted nodes answer for an `eth_getLogs` over too much.
const LIMIT_EXCEEDED: i32 = -32005;

/// What the execution clients above say when a log query covers or returns too much (lowercase).
const REFUSALS: [&str; 8] = [
    "exceed maximum block range",
    "exceeds max block range",
    "exceeds max results",
    "query returned more than",
    "block range is too wide",
    "range too large",
    "too many results",
    "response size",
];

/// Why a poll failed (the stored height is where the last committed chunk left it; the next poll
/// retries from there).
#[derive(Debug, thiserror::Error)]
pub enum GethPollerError {
    /// The execution client's JSON-RPC failed (or answered something that does not parse).
    #[error("eth rpc: {0}")]
    Rpc(#[from] ClientError),
    /// The execution client refuses to return the logs of even one block (`block`).
    #[error("eth_getLogs refuses block {block} on its own: {source}")]
    BlockRefused {
        /// The block.
        block: u64,
        /// The refusal.
        source: ClientError,
    },
}

impl GethPollerError {
    /// Whether this is the execution client refusing a range as too large (see the module docs):
    /// worth asking again for half of it.
    pub fn is_range_refusal(&self) -> bool {
        match self {
            Self::Rpc(error) => is_range_refusal(error),
            Self::BlockRefused { .. } => false,
        }
    }
}

fn is_range_refusal(error: &ClientError) -> bool {
    match error {
        ClientError::Call(object) => {
            let message = object.message().to_ascii_lowercase();
            object.code() == LIMIT_EXCEEDED || REFUSALS.iter().any(|refusal| message.contains(refusal))
        }
        // A query the server did not finish in time is worth asking in halves, too.
        ClientError::RequestTimeout => true,
        _ => false,
    }
}

/// The burns of blocks `from..=to`, read with one `eth_getLogs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    /// The first block covered.
    pub from: u64,
    /// The last block covered.
    pub to: u64,
    /// The bridge's burns in those blocks, in chain order.
    pub burns: Vec<Burn>,
}

/// Reads the bridge's burns over JSON-RPC.
#[derive(Debug, Clone)]
pub struct GethPoller {
    client: HttpClient,
    extractor: BurnExtractor,
    max_range: u64,
}

impl GethPoller {
    /// A poller of `eth_rpc_url` asking for at most `max_range` blocks per `eth_getLogs`.
    pub fn new(eth_rpc_url: &str, max_range: u64) -> Result<Self, GethPollerError> {
        let client = HttpClientBuilder::default().build(eth_rpc_url)?;
        Ok(Self { client, extractor: BurnExtractor::default(), max_range: max_range.max(1) })
    }

    /// The execution client's finalized block number, if it has one.
    pub async fn finalized(&self) -> Result<Option<u64>, GethPollerError> {
        let block: Option<Block> =
            self.client.request("eth_getBlockByNumber", rpc_params!["finalized", false]).await?;
        Ok(block.map(|b| b.header.number))
    }

    /// The burns in blocks `from..=to`, with one `eth_getLogs` (no splitting).
    pub async fn burns_in(&self, from: u64, to: u64) -> Result<Vec<Burn>, GethPollerError> {
        let filter = Filter::new()
            .address(self.extractor.bridge_address())
            .event_signature(B256::from(alys_contracts::REQUEST_PEGOUT_TOPIC))
            .from_block(from)
            .to_block(to);
        metrics::counter!(GETH_POLLS).increment(1);
        let logs: Vec<Log> = self.client.request("eth_getLogs", rpc_params![filter]).await?;
        Ok(logs.iter().filter_map(|log| self.extractor.burn_from_rpc_log(log)).collect())
    }

    /// Blocks `from..=to`, chunk by chunk (see the module docs).
    pub const fn chunks(&self, from: u64, to: u64) -> Chunks<'_> {
        Chunks { poller: self, next: from, to, span: self.max_range, done: from > to }
    }

    /// Every burn in blocks `from..=to`, in chain order: [`chunks`](Self::chunks) collected, for tools
    /// and tests (the burn source commits chunk by chunk instead).
    pub async fn burns(&self, from: u64, to: u64) -> Result<Vec<Burn>, GethPollerError> {
        let mut chunks = self.chunks(from, to);
        let mut burns = Vec::new();
        while let Some(chunk) = chunks.next().await? {
            burns.extend(chunk.burns);
        }
        Ok(burns)
    }
}

/// Reads a range chunk by chunk, halving chunks the server refuses ([`GethPoller::chunks`]).
#[derive(Debug)]
pub struct Chunks<'a> {
    poller: &'a GethPoller,
    next: u64,
    to: u64,
    span: u64,
    done: bool,
}

impl Chunks<'_> {
    /// The next chunk, or `None` when the range is read. After an error the same chunk is asked for
    /// again by the next call.
    pub async fn next(&mut self) -> Result<Option<LogChunk>, GethPollerError> {
        if self.done {
            return Ok(None);
        }
        loop {
            let from = self.next;
            let end = self.to.min(from.saturating_add(self.span - 1));
            match self.poller.burns_in(from, end).await {
                Ok(burns) => {
                    if end >= self.to {
                        self.done = true;
                    } else {
                        self.next = end + 1;
                    }
                    self.span = self.span.saturating_mul(2).min(self.poller.max_range);
                    return Ok(Some(LogChunk { from, to: end, burns }));
                }
                Err(error) if error.is_range_refusal() && end > from => {
                    self.span = (end - from) / 2 + 1;
                    metrics::counter!(GETH_RANGE_SPLITS).increment(1);
                    tracing::debug!(target: "alys::pegout", from, to = end, span = self.span, %error, "eth_getLogs range refused; halving");
                }
                Err(GethPollerError::Rpc(source)) if is_range_refusal(&source) => {
                    return Err(GethPollerError::BlockRefused { block: from, source });
                }
                Err(error) => return Err(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use jsonrpsee::types::ErrorObjectOwned;

    use super::*;

    fn call(code: i32, message: &str) -> ClientError {
        ClientError::Call(ErrorObjectOwned::owned(code, message.to_owned(), None::<()>))
    }

    #[test]
    fn the_clients_refusals_are_recognised_and_nothing_else() {
        for (code, message) in [
            (-32000, "exceed maximum block range: 50000"),    // geth
            (-32602, "query exceeds max block range 100000"), // reth, devnet
            (-32602, "query exceeds max results 20000, retry with the range 5-9"), // reth
            (-32005, "query returned more than 10000 results"), // hosted nodes, devnet
            (-32005, "limit exceeded"),
            (-32602, "query returned more than 10000 results"), // devnet
        ] {
            assert!(is_range_refusal(&call(code, message)), "{code} {message}");
        }
        for (code, message) in
            [(-32000, "header not found"), (-32602, "invalid params"), (-32603, "internal error")]
        {
            assert!(!is_range_refusal(&call(code, message)), "{code} {message}");
        }
        assert!(is_range_refusal(&ClientError::RequestTimeout));
        let refused = GethPollerError::BlockRefused { block: 3, source: call(-32005, "limit exceeded") };
        assert!(!refused.is_range_refusal(), "one block cannot be split");
    }
}
