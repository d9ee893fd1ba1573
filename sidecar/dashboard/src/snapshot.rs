//! What the dashboard shows: one [`Dashboard`] snapshot, taken about once a second from the node's own
//! RPC answers (so the page and `alys_syncStatus` never disagree), its database (recent blocks) and its
//! metrics (Engine API latency), with the last hour of samples for the plots.
//!
//! Every field is JSON in camelCase; `alys_dashboard` returns one snapshot and
//! `alys_subscribeDashboard` streams them.

use alloy_primitives::{Address, B256};
use alys_rpc::types::{BitcoinSync, Peer, PeginInfo, Pegout};
use serde::{Deserialize, Serialize};

/// One snapshot of the node, as the dashboard draws it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dashboard {
    /// When it was taken, unix milliseconds (the node's clock).
    pub taken_at_ms: u64,
    /// Incremented with every snapshot since the node started.
    pub sequence: u64,
    /// Which node and which chains.
    pub node: NodeInfo,
    /// Head, safe and finalized blocks, the slot and its author.
    pub chain: ChainPanel,
    /// Whether and why this node produces, and every authority's recent record.
    pub production: ProductionPanel,
    /// Merged mining.
    pub auxpow: AuxPowPanel,
    /// The federation network, when `[network]` is configured.
    pub network: Option<NetworkPanel>,
    /// The execution client.
    pub execution: ExecutionPanel,
    /// The Bitcoin node, when `[bitcoin]` is configured.
    pub bitcoin: Option<BitcoinSync>,
    /// Deposits.
    pub pegins: PeginPanel,
    /// Burns and their payments, when a burn source is configured.
    pub pegouts: Option<PegoutPanel>,
    /// The federation in force and any rotation waiting for its height.
    pub federation: Option<FederationPanel>,
    /// The governance stream.
    pub governance: GovernancePanel,
    /// Equivocations seen since the node started.
    pub equivocations: u64,
    /// The last hour, for the plots.
    pub history: History,
}

/// The node's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// The node's version.
    pub version: String,
    /// The EVM chain id.
    pub chain_id: u64,
    /// The Bitcoin network the bridge is on (`bitcoin`, `testnet`, `testnet4`, `signet`, `regtest`),
    /// when governance is configured.
    pub bitcoin_network: Option<String>,
}

/// A block as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockSummary {
    /// Consensus height.
    pub height: u64,
    /// Consensus hash.
    pub hash: B256,
    /// Its slot (0 for genesis and for blocks the node does not hold).
    pub slot: u64,
    /// Seconds since its slot began (null for genesis).
    pub age_secs: Option<u64>,
}

/// Head, safe and finalized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainPanel {
    /// The head.
    pub head: BlockSummary,
    /// The head's execution block hash.
    pub head_execution_hash: B256,
    /// The safe block (Alys: the finalized one).
    pub safe: Option<BlockSummary>,
    /// The finalized block (the last batch a merged-mining proof covered).
    pub finalized: Option<BlockSummary>,
    /// Blocks between the finalized block and the head.
    pub finality_lag: u64,
    /// The local clock's slot.
    pub slot: u64,
    /// The authority scheduled for that slot.
    pub slot_author: u32,
    /// The slot length.
    pub slot_duration_ms: u64,
}

/// One authority's record over the recent blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorityRecord {
    /// Its index in the authority set.
    pub index: u32,
    /// Its BLS public key, hex.
    pub public_key: String,
    /// Whether it is this node.
    pub is_self: bool,
    /// Blocks it authored in the window.
    pub blocks: u64,
    /// Blocks in the window its approval is part of.
    pub approvals: u64,
    /// Its slots in the window with no canonical block.
    pub missed_slots: u64,
}

/// Production.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductionPanel {
    /// This node's authority index, if it is an authority.
    pub authority_index: Option<u32>,
    /// Approvals a block needs.
    pub threshold: u32,
    /// Paused by an operator (`alys_pauseProduction`).
    pub paused: bool,
    /// Paused by a governance emergency proposal.
    pub governance_paused: bool,
    /// Why production is stopped, if it is (too many blocks without a proof).
    pub stopped: Option<String>,
    /// The window the records count: the canonical blocks from this height to the head.
    pub window_from_height: u64,
    /// The first slot of the window.
    pub window_from_slot: u64,
    /// Every authority's record in the window.
    pub authorities: Vec<AuthorityRecord>,
}

/// Merged mining.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuxPowPanel {
    /// Compact bits the next proof must meet.
    pub bits: u32,
    /// Difficulty of the next proof (the pow limit's target over the current target).
    pub difficulty: f64,
    /// The last canonical block carrying a proof, if any.
    pub last_proof: Option<BlockSummary>,
    /// Unix seconds of the last accepted proof (0 before the first).
    pub last_proof_secs: u64,
    /// Blocks above the finalized one, waiting for a proof (production stops at the limit).
    pub blocks_without_proof: u64,
    /// The most blocks allowed without a proof before production stops.
    pub max_blocks_without_proof: u64,
    /// The miners (payout addresses) of the proofs among the recent blocks, most recent first.
    pub miners: Vec<MinerRecord>,
}

/// A miner seen in recent proofs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MinerRecord {
    /// Its payout address.
    pub address: Address,
    /// Proofs it found among the recent blocks.
    pub proofs: u64,
    /// The height of its latest one.
    pub last_height: u64,
}

/// The federation network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPanel {
    /// This node's peer id.
    pub peer_id: String,
    /// `syncing` or `following`.
    pub sync_state: String,
    /// The best head a peer reported, when above ours.
    pub sync_target: Option<u64>,
    /// Connected peers.
    pub peers: Vec<Peer>,
}

/// The execution client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionPanel {
    /// Whether the last Engine API call succeeded.
    pub online: bool,
    /// Whether it holds every canonical block up to the head.
    pub synced: bool,
    /// Its `engine_getClientVersionV1` answer (`name/version (commit)`), if it gave one.
    pub version: Option<String>,
    /// Mean Engine API call latency over the last sampling interval, milliseconds (null with no call).
    pub engine_latency_ms: Option<f64>,
    /// Engine API calls since the node started.
    pub engine_calls: u64,
}

/// Deposits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeginPanel {
    /// Whether the node watches Bitcoin for deposits.
    pub configured: bool,
    /// Deposits recorded.
    pub total: u64,
    /// Recent deposits confirming or ready (not minted, not rejected).
    pub queued: u64,
    /// Seconds since the oldest of those was seen.
    pub oldest_queued_secs: Option<u64>,
    /// The newest deposits.
    pub recent: Vec<PeginInfo>,
}

/// Burns and their payments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PegoutPanel {
    /// Burns waiting for their block to be final (first page).
    pub pending: u64,
    /// Final burns not yet confirmed on Bitcoin nor refunded (first page).
    pub unpaid: u64,
    /// Released burns no canonical block settled yet (the whole queue).
    pub queued: u64,
    /// Seconds the oldest of those has waited.
    pub oldest_queued_secs: Option<u64>,
    /// Whether more burns exist beyond the first pages.
    pub more: bool,
    /// The oldest burns of both sets, oldest first.
    pub recent: Vec<Pegout>,
}

/// The federation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FederationPanel {
    /// The P2WSH deposit address.
    pub address: String,
    /// Signatures a peg-out needs.
    pub threshold: u32,
    /// Member ids.
    pub members: Vec<String>,
    /// The height it took effect.
    pub effective_height: u64,
    /// The federation's UTXOs as the canonical chain has them.
    pub utxos: u64,
    /// Their total, satoshis.
    pub utxo_total_sats: u64,
    /// A federation that takes over at a later height, if governance announced one.
    pub pending_rotation: Option<PendingRotation>,
}

/// A federation waiting for its height.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingRotation {
    /// Its deposit address.
    pub address: String,
    /// Its first height.
    pub effective_height: u64,
    /// Its threshold.
    pub threshold: u32,
    /// Its member count.
    pub members: usize,
}

/// Governance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GovernancePanel {
    /// Whether a governance service is configured.
    pub configured: bool,
    /// Whether the stream is connected.
    pub connected: bool,
    /// Reconnections since start.
    pub reconnects: u64,
    /// Signature requests sent and not yet answered.
    pub pending_signature_requests: usize,
    /// Accepted proposals.
    pub proposals: usize,
    /// Of those, the ones in force at the next block.
    pub proposals_in_force: usize,
    /// Peg-ins paused.
    pub pegins_paused: bool,
    /// Peg-outs paused.
    pub pegouts_paused: bool,
}

/// The plots' data.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    /// Seconds between the samples.
    pub interval_secs: u64,
    /// Samples of the last hour, oldest first.
    pub samples: Vec<Sample>,
    /// Recent canonical blocks with the seconds since their parent, oldest first.
    pub block_times: Vec<BlockTime>,
}

/// One sample.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    /// Unix milliseconds.
    pub at_ms: u64,
    /// Head height.
    pub head: u64,
    /// Head minus finalized.
    pub finality_lag: u64,
    /// Queued deposits.
    pub pegin_queue: u64,
    /// Burns pending finality plus released burns waiting for a block to settle them.
    pub pegout_queue: u64,
    /// Connected peers.
    pub peers: u64,
}

/// A block's time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockTime {
    /// Its height.
    pub height: u64,
    /// Seconds between its slot and its parent's.
    pub seconds: f64,
}
