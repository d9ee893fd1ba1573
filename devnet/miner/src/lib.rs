//! The reference merged-mining CPU miner: `createauxblock` → grind a parent header → `submitauxblock`,
//! against any Alys node's RPC, exactly as a merged-mining pool talks to it. It links only the AuxPow
//! rules and the RPC's typed client, not the node.

use std::time::Duration;

use alloy_primitives::Address;
use alys_auxpow::pow;
use alys_rpc::{
    ErrorCode, MiningApiClient,
    jsonrpsee::{
        core::ClientError,
        http_client::{HttpClient, HttpClientBuilder},
    },
};

/// Why one round of mining failed.
#[derive(Debug, thiserror::Error)]
pub enum MinerError {
    /// The node's RPC failed.
    #[error("rpc: {0}")]
    Rpc(#[from] ClientError),
    /// The grinding task did not finish.
    #[error("mining task: {0}")]
    Task(#[from] tokio::task::JoinError),
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

/// A client of a node's mining RPC.
pub fn client(rpc_url: &str) -> Result<HttpClient, MinerError> {
    Ok(HttpClientBuilder::default().request_timeout(Duration::from_secs(10)).build(rpc_url)?)
}

/// One round: fetch work, mine it, submit it.
pub async fn mine_once(client: &HttpClient, payout: Address, max_tries: u32) -> Result<Round, MinerError> {
    let template = match client.create_aux_block(payout).await {
        Ok(t) => t,
        Err(ClientError::Call(e)) if e.code() == ErrorCode::Unavailable.code() => return Ok(Round::Idle),
        Err(e) => return Err(e.into()),
    };
    let (hash, chain_id, bits) = (template.hash, template.chain_id, template.bits);
    let proof = tokio::task::spawn_blocking(move || pow::mine(hash, chain_id, bits, max_tries))
        .await?
        .ok_or(MinerError::Exhausted)?;
    let accepted = client.submit_aux_block(template.hash, proof.into()).await?;
    Ok(Round::Submitted { height: template.height, accepted })
}

/// Mines forever: one round every `interval`, logging what happened.
pub async fn run(rpc_url: String, payout: Address, interval: Duration) {
    let client = match client(&rpc_url) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(target: "alys::miner", %error, url = rpc_url, "cannot build the RPC client");
            return;
        }
    };
    loop {
        match mine_once(&client, payout, 1_000_000).await {
            Ok(Round::Submitted { height, accepted }) => {
                tracing::info!(target: "alys::miner", height, accepted, "submitted auxpow");
            }
            Ok(Round::Idle) => tracing::debug!(target: "alys::miner", "nothing to mine"),
            Err(error) => tracing::warn!(target: "alys::miner", %error, "mining round failed"),
        }
        tokio::time::sleep(interval).await;
    }
}
