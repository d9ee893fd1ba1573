//! The geth path: `eth_getLogs` of the bridge address over finalized ranges.

use alloy_primitives::B256;
use alloy_rpc_types_eth::{Block, Filter, Log};
use alys_burns::{Burn, BurnExtractor};
use jsonrpsee::{
    core::client::ClientT,
    http_client::{HttpClient, HttpClientBuilder},
    rpc_params,
};

/// Why a poll failed (the stored height is unchanged; the next poll retries).
#[derive(Debug, thiserror::Error)]
pub enum GethPollerError {
    /// The execution client's JSON-RPC failed (or answered something that does not parse).
    #[error("eth rpc: {0}")]
    Rpc(#[from] jsonrpsee::core::ClientError),
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

    /// The burns in blocks `from..=to`, read in chunks of at most `max_range` blocks, in chain order.
    pub async fn burns(&self, from: u64, to: u64) -> Result<Vec<Burn>, GethPollerError> {
        let mut burns = Vec::new();
        let mut start = from;
        while start <= to {
            let end = to.min(start.saturating_add(self.max_range - 1));
            let filter = Filter::new()
                .address(self.extractor.bridge_address())
                .event_signature(B256::from(alys_contracts::REQUEST_PEGOUT_TOPIC))
                .from_block(start)
                .to_block(end);
            let logs: Vec<Log> = self.client.request("eth_getLogs", rpc_params![filter]).await?;
            burns.extend(logs.iter().filter_map(|log| self.extractor.burn_from_rpc_log(log)));
            metrics::counter!("alys_pegout_geth_polls_total").increment(1);
            if end == u64::MAX {
                break;
            }
            start = end + 1;
        }
        Ok(burns)
    }
}
