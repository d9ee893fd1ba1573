//! Request and response types of the Alys RPC, with their JSON names.
//!
//! Hashes, addresses and bytes are `0x`-prefixed hex, except in the mining shapes, which keep
//! Namecoin's bare hex.

use alloy_primitives::{Address, B256, Bytes};
use serde::{Deserialize, Serialize};

/// `createauxblock`'s answer: work for a merged miner (Namecoin's `getauxblock` shape plus Alys's
/// `coinbasevalue` and `height`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuxBlock {
    /// The hash the miner's coinbase commits to (bare hex, internal byte order).
    #[serde(with = "bare_hex")]
    pub hash: B256,
    /// Our merged-mining chain id.
    #[serde(rename = "chainid")]
    pub chain_id: u32,
    /// The last finalized block: the batch starts after it (bare hex).
    #[serde(rename = "previousblockhash", with = "bare_hex")]
    pub previous_block_hash: B256,
    /// The miner's share of the batch's fees so far, in satoshis.
    #[serde(rename = "coinbasevalue")]
    pub coinbase_value: u64,
    /// The compact target the proof must meet, as 8 hex digits (`"207fffff"`).
    #[serde(with = "compact_bits")]
    pub bits: u32,
    /// The height of the batch's last block.
    pub height: u64,
    /// The target as 32 bytes, little-endian, bare hex (what miners read as `_target`).
    #[serde(rename = "_target", with = "bare_hex")]
    pub target: B256,
}

/// A peg-in a block claims: one deposit transaction, minted as one withdrawal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PegIn {
    /// The deposit transaction id, as Bitcoin tools print it.
    pub txid: String,
    /// The Bitcoin block that confirmed it, as Bitcoin tools print it.
    pub bitcoin_block: String,
    /// The minted outputs (index and satoshis).
    pub outputs: Vec<PegInOutput>,
    /// Where the deposit is minted.
    pub evm_address: Address,
    /// The amount in satoshis.
    pub amount_sats: u64,
}

/// One minted output of a deposit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PegInOutput {
    /// The output index.
    pub vout: u32,
    /// Its value in satoshis.
    pub amount_sats: u64,
}

/// `alys_pegins`' parameter: a page of deposits, newest Bitcoin block first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeginQuery {
    /// Deposits to skip (default 0).
    #[serde(default)]
    pub offset: Option<u64>,
    /// Deposits per page (default [`Self::DEFAULT_LIMIT`], at most [`Self::MAX_LIMIT`]).
    #[serde(default)]
    pub limit: Option<u32>,
}

impl PeginQuery {
    /// The page size when none is asked for.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// The largest page.
    pub const MAX_LIMIT: u32 = 500;
}

/// Where a deposit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PeginStatus {
    /// Seen, waiting for confirmations.
    Confirming,
    /// Deep enough; the next block this node's chain makes will claim it.
    Ready,
    /// Minted on the canonical chain.
    Minted,
    /// Never minted (see `reason`).
    Rejected,
    /// Minted, then its Bitcoin block left the best chain (a reorg deeper than the confirmations).
    Reorged,
}

/// One deposit as the node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeginInfo {
    /// The deposit transaction id, as Bitcoin tools print it.
    pub txid: String,
    /// Its Bitcoin block, as Bitcoin tools print it.
    pub bitcoin_block: String,
    /// That block's height.
    pub bitcoin_height: u64,
    /// Its outputs paying a federation address.
    pub outputs: Vec<PegInOutput>,
    /// Their sum, in satoshis.
    pub amount_sats: u64,
    /// The EVM address it names, if it names one.
    pub evm_address: Option<Address>,
    /// Where it stands.
    pub status: PeginStatus,
    /// Confirmations on the node's followed Bitcoin chain.
    pub confirmations: u64,
    /// Confirmations required at the next block.
    pub required_confirmations: u32,
    /// The canonical block that minted it.
    pub minted_in: Option<BlockId>,
    /// Why it was rejected (`no_op_return`, `multiple_op_returns`, `bad_evm_address`,
    /// `no_federation_output`, `federation_expired`, `below_minimum`).
    pub reason: Option<String>,
    /// When the node first saw it, unix seconds.
    pub seen_at: u64,
}

/// `alys_pegins`' answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeginPage {
    /// The deposits, newest Bitcoin block first.
    pub pegins: Vec<PeginInfo>,
    /// How many deposits the node has recorded.
    pub total: u64,
    /// The offset of the next page, when there is one.
    pub next_offset: Option<u64>,
}

/// One federation UTXO, in `alys_federationUtxos`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FederationUtxo {
    /// The transaction id, as Bitcoin tools print it.
    pub txid: String,
    /// The output index.
    pub vout: u32,
    /// Its value in satoshis.
    pub amount_sats: u64,
    /// The federation script it pays (hex).
    pub script_pubkey: String,
    /// The canonical block that made it the federation's: the claim that minted a deposit, or the
    /// peg-out whose change it is.
    pub minted_in: BlockId,
}

/// `alys_federationUtxos`' answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FederationUtxos {
    /// The UTXOs, by txid and output index.
    pub utxos: Vec<FederationUtxo>,
    /// Their sum, in satoshis.
    pub total_sats: u64,
}

/// The node's Bitcoin node, in `alys_syncStatus`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BitcoinSync {
    /// Whether the last call to bitcoind succeeded.
    pub connected: bool,
    /// bitcoind's best height.
    pub height: u64,
    /// bitcoind's best block hash, as Bitcoin tools print it.
    pub best_hash: Option<String>,
    /// The height the node has followed and recorded.
    pub followed_height: Option<u64>,
}

/// A block's approvals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalSet {
    /// The approving authorities' indexes, ascending.
    pub signers: Vec<u32>,
    /// Their aggregate BLS signature.
    pub signature: Bytes,
}

/// A consensus block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsensusBlock {
    /// The consensus hash.
    pub hash: B256,
    /// The parent's consensus hash (the execution genesis hash for height 1).
    pub parent_hash: B256,
    /// Height, equal to the execution block number.
    pub height: u64,
    /// The Aura slot.
    pub slot: u64,
    /// The author's index in the authority set.
    pub author: u32,
    /// The execution block's hash.
    pub execution_block_hash: B256,
    /// Peg-ins minted by this block.
    pub pegins: Vec<PegIn>,
    /// The merged-mining proof this block carries, if any.
    pub auxpow: Option<Bytes>,
    /// The author's BLS signature.
    pub author_signature: Bytes,
    /// The approvals.
    pub approvals: ApprovalSet,
    /// The execution block, RLP.
    pub execution_block: Bytes,
    /// The execution block's EIP-7685 requests.
    pub execution_requests: Vec<Bytes>,
}

/// A block's height and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockId {
    /// Height.
    pub height: u64,
    /// Consensus hash.
    pub hash: B256,
}

/// The head as `alys_syncStatus` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeadInfo {
    /// Height.
    pub height: u64,
    /// Consensus hash.
    pub hash: B256,
    /// Its execution block's hash.
    pub execution_hash: B256,
    /// Its slot (0 for genesis).
    pub slot: u64,
}

/// The parameters governance may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeParameters {
    /// Production stops after this many blocks without AuxPow.
    pub max_blocks_without_pow: u64,
    /// Fee rate of peg-out transactions, sat/vB.
    pub pegout_fee_rate_sat_vb: u64,
    /// Bitcoin confirmations a deposit needs.
    pub pegin_confirmations: u32,
    /// Smallest burn the bridge pays, in sats.
    pub pegout_min_sats: u64,
}

/// Pauses and parameters at a height.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeState {
    /// Peg-ins are not minted.
    pub pegins_paused: bool,
    /// Burns are held, not paid.
    pub pegouts_paused: bool,
    /// No blocks are produced.
    pub production_paused: bool,
    /// The parameters in force.
    pub parameters: RuntimeParameters,
}

/// `alys_syncStatus`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    /// The head.
    pub head: HeadInfo,
    /// The safe block (the finalized one: Alys has no weaker finality).
    pub safe: Option<BlockId>,
    /// The finalized block, if any.
    pub finalized: Option<BlockId>,
    /// The local clock's slot.
    pub slot: u64,
    /// The authorities' BLS public keys, in schedule order.
    pub authorities: Vec<String>,
    /// This node's index among them, if it is an authority.
    pub authority_index: Option<u32>,
    /// Equivocations seen since start.
    pub equivocations: u64,
    /// Production paused by an operator.
    pub paused: bool,
    /// Whether the last call to the execution client succeeded.
    pub engine_online: bool,
    /// Why production is stopped, if it is.
    pub production_stopped: Option<String>,
    /// The current merged-mining target, compact form, 8 hex digits.
    #[serde(with = "compact_bits")]
    pub pow_bits: u32,
    /// Governance's state for the next block.
    pub governance: RuntimeState,
    /// The node's Bitcoin node (absent without `[bitcoin]`).
    pub bitcoin: Option<BitcoinSync>,
    /// Whether the execution client is known to hold every canonical block up to the head.
    #[serde(default)]
    pub engine_synced: bool,
    /// Catching up from peers or following gossip (absent without `[network]`).
    #[serde(default)]
    pub sync: Option<SyncInfo>,
}

/// `alys_syncStatus.sync`: the node against its peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncInfo {
    /// `"syncing"` (fetching blocks by range from a peer ahead) or `"following"` (blocks by gossip).
    pub state: String,
    /// The best head height a peer reported, while syncing.
    pub target: Option<u64>,
    /// Connected peers.
    pub peers: usize,
}

/// One connected peer in `alys_peers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Peer {
    /// Its libp2p peer id.
    pub peer_id: String,
    /// The remote address of the connection.
    pub address: Option<String>,
    /// `"inbound"` or `"outbound"`.
    pub direction: String,
    /// Its gossip score (negative: misbehaving; far below zero: banned).
    pub score: f64,
    /// Its client version (identify agent).
    pub client: Option<String>,
    /// Seconds connected.
    pub connected_secs: u64,
    /// Its head, from its last status answer.
    pub head: Option<BlockId>,
    /// Its finalized block, from its last status answer.
    pub finalized: Option<BlockId>,
}

/// `alys_peers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Peers {
    /// This node's peer id.
    pub peer_id: String,
    /// Where peers reach this node (multiaddrs with `/p2p/<peer id>`).
    pub listen: Vec<String>,
    /// Connected peers.
    pub peers: Vec<Peer>,
}

/// `alys_runtimeState`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeStateAt {
    /// The height asked about.
    pub height: u64,
    /// The state there.
    pub state: RuntimeState,
    /// The parameter names a proposal may change.
    pub changeable_parameters: Vec<String>,
}

/// A federation's deposit address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FederationAddress {
    /// The P2WSH address.
    pub address: String,
    /// The height from which it holds deposits.
    pub effective_height: u64,
    /// Signatures required.
    pub threshold: u32,
    /// Number of members.
    pub members: usize,
}

/// `alys_depositAddresses`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepositAddresses {
    /// The next block's height.
    pub height: u64,
    /// The federation in force there.
    pub current: Option<FederationAddress>,
    /// The one before it.
    pub previous: Option<FederationAddress>,
}

/// A federation member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FederationMember {
    /// Governance's member id.
    pub id: String,
    /// The compressed secp256k1 public key, hex.
    pub public_key: String,
}

/// A federation as governance announced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FederationInfo {
    /// The height from which it holds deposits.
    pub effective_height: u64,
    /// Signatures required.
    pub threshold: u32,
    /// Members, sorted by key.
    pub members: Vec<FederationMember>,
    /// The P2WSH deposit address.
    pub address: String,
}

/// `alys_governanceStatus`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GovernanceStatus {
    /// Whether a governance service is configured (everything else is empty when not).
    pub configured: bool,
    /// Whether the stream is up.
    pub connected: bool,
    /// Reconnects since start.
    pub reconnects: u64,
    /// Signature requests not yet answered.
    pub pending_signature_requests: usize,
    /// Federations by effective height.
    pub federations: Vec<FederationInfo>,
}

/// What a proposal does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum ProposalAction {
    /// Pause or resume `scope` (`pegins`, `pegouts` or `blockProduction`).
    #[serde(rename_all = "camelCase")]
    Emergency {
        /// What is paused or resumed.
        scope: String,
        /// True pauses, false resumes.
        pause: bool,
        /// Governance's reason.
        reason: String,
    },
    /// Set a parameter.
    Parameter {
        /// Its name.
        name: String,
        /// Its new value.
        value: String,
    },
    /// Recorded only.
    Record {
        /// Governance's description.
        description: String,
    },
}

/// An accepted proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProposalInfo {
    /// Governance's id.
    pub id: String,
    /// `EMERGENCY_ACTION`, `PARAMETER_CHANGE`, `FEDERATION_CHANGE` or `UPGRADE`.
    pub proposal_type: String,
    /// The first height at which it holds.
    pub effective_height: u64,
    /// What it does.
    pub action: ProposalAction,
    /// Whether it decides the state at the next block: the last pause/resume of its scope, or the last
    /// change of its parameter, at or below that height (a pause a later resume lifted is not).
    pub in_force: bool,
}

/// `alys_proposals`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposals {
    /// The next block's height.
    pub height: u64,
    /// Every accepted proposal, in the order they apply.
    pub proposals: Vec<ProposalInfo>,
}

/// A burn on the bridge contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pegout {
    /// Who burned.
    pub evm_address: Address,
    /// The Bitcoin address to pay, as text (or hex when it is not UTF-8).
    pub bitcoin_address: String,
    /// The burned value in wei, decimal.
    pub value_wei: String,
    /// The burned value in satoshis (null when it does not fit 64 bits).
    pub value_sats: Option<u64>,
    /// The block holding the burn.
    pub block_number: u64,
    /// Its hash.
    pub block_hash: B256,
    /// The log's index in the block.
    pub log_index: u64,
    /// The burning transaction.
    pub tx_hash: B256,
    /// Where the burn stands: `pending` (its block not final yet), `queued` (final, waiting for a
    /// proposal), `proposed` (in a block that is not final yet), `final` (the proposing block is final,
    /// signatures not asked yet), `requested` (signatures asked of governance), `signed` (every witness
    /// verified), `broadcast`, `confirmed` (in a Bitcoin block; see `confirmations`), or `refunded`.
    pub status: String,
    /// The Bitcoin transaction paying it, as Bitcoin tools print it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitcoin_txid: Option<String>,
    /// Its output in that transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vout: Option<u32>,
    /// What the output pays: the burn minus its share of the fee, in satoshis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_sats: Option<u64>,
    /// Bitcoin confirmations of the paying transaction, once it is broadcast.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmations: Option<u64>,
    /// Why it was refunded (`not_text`, `invalid_address`, `wrong_network`, `below_minimum`,
    /// `below_dust`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_reason: Option<String>,
    /// The canonical consensus block that proposed its payment or refund.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_in: Option<BlockId>,
}

/// `alys_pendingPegouts`: the first page of each set of the peg-out ledger, oldest first, each with the
/// cursor its next page starts after (`alys_pegouts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingPegouts {
    /// Burns waiting for their block to be final and canonical (at most
    /// [`PegoutQuery::DEFAULT_LIMIT`]).
    pub pending: Vec<Pegout>,
    /// Burns whose block is final, released for payment (at most [`PegoutQuery::DEFAULT_LIMIT`]).
    #[serde(rename = "final")]
    pub released: Vec<Pegout>,
    /// Where the next page of pending burns starts, when there are more.
    #[serde(default)]
    pub next_pending: Option<PegoutCursor>,
    /// Where the next page of final burns starts, when there are more.
    #[serde(default)]
    pub next_final: Option<PegoutCursor>,
}

/// A set of the peg-out ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PegoutSet {
    /// Burns waiting for their block to be final and canonical.
    #[default]
    Pending,
    /// Burns released for payment (`"final"`).
    #[serde(rename = "final")]
    Released,
}

/// A burn's place in the ledger's order (block number, log index, block hash): a page ends at one,
/// and the next page starts after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PegoutCursor {
    /// The burn's block number.
    pub block_number: u64,
    /// The burn's log index in its block.
    pub log_index: u64,
    /// The burn's block hash.
    pub block_hash: B256,
}

/// `alys_pegouts`' parameter: which set, after which cursor, how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PegoutQuery {
    /// The set to list (default `pending`).
    #[serde(default)]
    pub set: PegoutSet,
    /// List the burns after this cursor (a previous page's `next`); from the oldest when absent.
    #[serde(default)]
    pub after: Option<PegoutCursor>,
    /// Most burns in the page: 1 to [`Self::MAX_LIMIT`], [`Self::DEFAULT_LIMIT`] when absent; more is
    /// refused with `InvalidParams`.
    #[serde(default)]
    pub limit: Option<u32>,
}

impl PegoutQuery {
    /// The page size when the query names none.
    pub const DEFAULT_LIMIT: u32 = 100;
    /// The largest page a query may ask for.
    pub const MAX_LIMIT: u32 = 1_000;
}

/// `alys_pegouts`: one page of a set of the peg-out ledger, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PegoutPage {
    /// The set listed.
    pub set: PegoutSet,
    /// The burns, in chain order.
    pub pegouts: Vec<Pegout>,
    /// Where the next page starts (pass it as `after`); absent on the last page.
    #[serde(default)]
    pub next: Option<PegoutCursor>,
}

/// 32 bytes as bare hex (no `0x`), as Namecoin's mining RPC writes them; `0x` is accepted on input.
mod bare_hex {
    use alloy_primitives::{B256, hex};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(crate) fn serialize<S: Serializer>(value: &B256, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(value))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<B256, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(D::Error::custom)
    }
}

/// A compact target as 8 hex digits (`"207fffff"`), as `getauxblock` writes `bits`.
mod compact_bits {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(crate) fn serialize<S: Serializer>(bits: &u32, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("{bits:08x}"))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
        let text = String::deserialize(deserializer)?;
        u32::from_str_radix(text.trim_start_matches("0x"), 16).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pegout_queries_have_defaults_and_refuse_unknown_fields() {
        let query: PegoutQuery = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(query, PegoutQuery::default());
        assert_eq!(query.set, PegoutSet::Pending);
        let cursor = PegoutCursor { block_number: 7, log_index: 2, block_hash: B256::repeat_byte(3) };
        let query = PegoutQuery { set: PegoutSet::Released, after: Some(cursor), limit: Some(5) };
        let json = serde_json::to_value(query).unwrap();
        assert_eq!(json["set"], "final");
        assert_eq!(json["after"]["blockNumber"], 7);
        assert_eq!(json["after"]["logIndex"], 2);
        assert_eq!(serde_json::from_value::<PegoutQuery>(json).unwrap(), query);
        assert!(serde_json::from_value::<PegoutQuery>(serde_json::json!({ "set": "released" })).is_err());
        assert!(serde_json::from_value::<PegoutQuery>(serde_json::json!({ "from": 3 })).is_err());
    }

    #[test]
    fn mining_shapes_keep_namecoins_bare_hex() {
        let block = AuxBlock {
            hash: B256::repeat_byte(0xab),
            chain_id: 0x2121,
            previous_block_hash: B256::repeat_byte(1),
            coinbase_value: 5,
            bits: 0x207f_ffff,
            height: 9,
            target: B256::repeat_byte(0xff),
        };
        let json = serde_json::to_value(&block).unwrap();
        assert_eq!(json["hash"], "ab".repeat(32));
        assert_eq!(json["chainid"], 0x2121);
        assert_eq!(json["previousblockhash"], "01".repeat(32));
        assert_eq!(json["coinbasevalue"], 5);
        assert_eq!(json["bits"], "207fffff");
        assert_eq!(json["_target"], "ff".repeat(32));
        assert_eq!(serde_json::from_value::<AuxBlock>(json).unwrap(), block);
    }

    #[test]
    fn pegouts_say_final_and_proposals_are_tagged() {
        let json = serde_json::to_value(PendingPegouts {
            pending: vec![],
            released: vec![],
            next_pending: None,
            next_final: None,
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({ "pending": [], "final": [], "nextPending": null, "nextFinal": null })
        );
        let action =
            ProposalAction::Emergency { scope: "blockProduction".into(), pause: true, reason: "x".into() };
        assert_eq!(
            serde_json::to_value(action).unwrap(),
            serde_json::json!({ "kind": "emergency", "scope": "blockProduction", "pause": true, "reason": "x" })
        );
    }
}
