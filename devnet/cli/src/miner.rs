//! The reference CPU miner: `createauxblock` → grind a parent header → `submitauxblock`, against any
//! Alys node's RPC, exactly as a merged-mining pool talks to it.

use std::time::Duration;

use alloy_primitives::{Address, B256, hex};
use alys_sidecar::auxpow::pow;
use jsonrpsee::{core::client::ClientT, http_client::HttpClientBuilder, rpc_params};
use serde::Deserialize;

/// The `createauxblock` answer the miner reads.
#[derive(Debug, Deserialize)]
struct Template {
    hash: String,
    chainid: u32,
    bits: String,
    height: u64,
}

/// Why one round of mining failed.
#[derive(Debug, thiserror::Error)]
pub enum MinerError {
    /// The node's RPC failed.
    #[error("rpc: {0}")]
    Rpc(#[from] jsonrpsee::core::ClientError),
    /// The template is not in the expected shape.
    #[error("bad template: {0}")]
    Template(String),
    /// No nonce met the target within the try budget.
    #[error("no proof within the try budget")]
    Exhausted,
}

/// What one round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Round {
    /// Nothing to finalize yet.
    Idle,
    /// A proof for the batch ending at `height` was submitted; `accepted` is the node's answer.
    Submitted {
        /// The batch's last height.
        height: u64,
        /// Whether the node accepted the proof.
        accepted: bool,
    },
}

/// One round: fetch work, mine it, submit it.
pub async fn mine_once(rpc_url: &str, payout: Address, max_tries: u32) -> Result<Round, MinerError> {
    let client = HttpClientBuilder::default().request_timeout(Duration::from_secs(10)).build(rpc_url)?;
    let template: Template = match client.request("createauxblock", rpc_params![payout.to_string()]).await {
        Ok(t) => t,
        Err(jsonrpsee::core::ClientError::Call(e)) if e.code() == -32000 => return Ok(Round::Idle),
        Err(e) => return Err(e.into()),
    };
    let hash: B256 = hex::decode(&template.hash)
        .ok()
        .and_then(|b| B256::try_from(b.as_slice()).ok())
        .ok_or_else(|| MinerError::Template(format!("hash {:?}", template.hash)))?;
    let bits = u32::from_str_radix(&template.bits, 16)
        .map_err(|_| MinerError::Template(format!("bits {:?}", template.bits)))?;
    let chain_id = template.chainid;
    let proof = tokio::task::spawn_blocking(move || pow::mine(hash, chain_id, bits, max_tries))
        .await
        .map_err(|e| MinerError::Template(e.to_string()))?
        .ok_or(MinerError::Exhausted)?;
    let accepted: bool =
        client.request("submitauxblock", rpc_params![template.hash, hex::encode(proof)]).await?;
    Ok(Round::Submitted { height: template.height, accepted })
}

/// Mines forever: one round every `interval`, logging what happened.
pub async fn run(rpc_url: String, payout: Address, interval: Duration) {
    loop {
        match mine_once(&rpc_url, payout, 1_000_000).await {
            Ok(Round::Submitted { height, accepted }) => {
                tracing::info!(target: "alys::miner", height, accepted, "submitted auxpow");
            }
            Ok(Round::Idle) => tracing::debug!(target: "alys::miner", "nothing to mine"),
            Err(error) => tracing::warn!(target: "alys::miner", %error, "mining round failed"),
        }
        tokio::time::sleep(interval).await;
    }
}
