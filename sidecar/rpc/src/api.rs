//! The API traits. `#[rpc(server, client)]` generates `XServer` (implemented by the node) and `XClient`
//! (implemented for every jsonrpsee client) from each.

use alloy_primitives::{Address, B256, Bytes};
use jsonrpsee::{core::RpcResult, proc_macros::rpc};

use crate::types::{
    AuxBlock, ConsensusBlock, DepositAddresses, FederationUtxos, GovernanceStatus, Peers, PeginPage,
    PeginQuery, PegoutPage, PegoutQuery, PendingPegouts, Proposals, RuntimeStateAt, SyncStatus,
};

/// Merged mining, in the shapes Namecoin's and Alys's pools speak.
#[rpc(server, client)]
pub trait MiningApi {
    /// Work for a miner paying to `address`: the hash its coinbase must commit to, and the target.
    /// Repeated calls for the same head and address return the same work. Error
    /// [`Unavailable`](crate::ErrorCode::Unavailable) when every block is already finalized.
    #[method(name = "createauxblock")]
    async fn create_aux_block(&self, address: Address) -> RpcResult<AuxBlock>;

    /// A proof (serialized CAuxPow, hex) for the work `hash`: `true` when it is valid and queued for the
    /// next block, `false` for unknown or stale work and proofs that fail a rule.
    #[method(name = "submitauxblock")]
    async fn submit_aux_block(&self, hash: B256, auxpow: Bytes) -> RpcResult<bool>;
}

/// The consensus chain.
#[rpc(server, client)]
pub trait ChainApi {
    /// The head block, or null at genesis.
    #[method(name = "getheadblock")]
    async fn head_block(&self) -> RpcResult<Option<ConsensusBlock>>;

    /// The canonical block at `height`, or null.
    #[method(name = "getblockbyheight")]
    async fn block_by_height(&self, height: u64) -> RpcResult<Option<ConsensusBlock>>;

    /// The stored block with consensus hash `hash` (canonical or not), or null.
    #[method(name = "getblockbyhash")]
    async fn block_by_hash(&self, hash: B256) -> RpcResult<Option<ConsensusBlock>>;

    /// Where the node stands: head, finality, slot, authorities, production, governance state.
    #[method(name = "alys_syncStatus")]
    async fn sync_status(&self) -> RpcResult<SyncStatus>;

    /// `"ok"`, or error [`Unhealthy`](crate::ErrorCode::Unhealthy) saying why not.
    #[method(name = "alys_health")]
    async fn health(&self) -> RpcResult<String>;

    /// This node's peer id and listen addresses, and every connected peer with its address, direction,
    /// gossip score, client and last reported head. Error [`Unavailable`](crate::ErrorCode::Unavailable)
    /// without `[network]`.
    #[method(name = "alys_peers")]
    async fn peers(&self) -> RpcResult<Peers>;
}

/// BTC in and out.
#[rpc(server, client)]
pub trait BridgeApi {
    /// The P2WSH deposit address of the federation in force at the next block.
    #[method(name = "getdepositaddress")]
    async fn deposit_address(&self) -> RpcResult<String>;

    /// The federation in force at the next block and the one before it (deposits to either count).
    #[method(name = "alys_depositAddresses")]
    async fn deposit_addresses(&self) -> RpcResult<DepositAddresses>;

    /// The first page of burns waiting for finality and of burns released for payment, oldest first,
    /// with the cursors to page on with `alys_pegouts`. Error
    /// [`Unavailable`](crate::ErrorCode::Unavailable) without a peg-out source.
    #[method(name = "alys_pendingPegouts")]
    async fn pending_pegouts(&self) -> RpcResult<PendingPegouts>;

    /// One page of a set of the peg-out ledger, oldest first, with the cursor of the next page. The one
    /// positional parameter is an object, `params: [{"set": "pending" | "final", "after": cursor,
    /// "limit": n}]`, every field optional (params given as a bare object are named parameters, and name
    /// none of this method's). A limit above
    /// [`PegoutQuery::MAX_LIMIT`](crate::types::PegoutQuery::MAX_LIMIT) (or 0) is
    /// [`InvalidParams`](crate::ErrorCode::InvalidParams).
    #[method(name = "alys_pegouts")]
    async fn pegouts(&self, query: Option<PegoutQuery>) -> RpcResult<PegoutPage>;

    /// One page of the deposits the node recorded, newest Bitcoin block first: confirming (n of N),
    /// ready, minted (in which block), rejected (why) or reorged. `params: [{"offset": n, "limit": n}]`,
    /// both optional. A limit above [`PeginQuery::MAX_LIMIT`] (or 0) is
    /// [`InvalidParams`](crate::ErrorCode::InvalidParams); [`Unavailable`](crate::ErrorCode::Unavailable)
    /// without `[bitcoin]`.
    #[method(name = "alys_pegins")]
    async fn pegins(&self, query: Option<PeginQuery>) -> RpcResult<PeginPage>;

    /// The federation's UTXOs as the canonical chain has them: every deposit output minted (peg-out
    /// transactions, which spend them and add change, are not wired in yet).
    #[method(name = "alys_federationUtxos")]
    async fn federation_utxos(&self) -> RpcResult<FederationUtxos>;
}

/// Governance as the node sees it.
#[rpc(server, client)]
pub trait GovernanceApi {
    /// The stream's connection, the federations by height, and unanswered signature requests.
    #[method(name = "alys_governanceStatus")]
    async fn governance_status(&self) -> RpcResult<GovernanceStatus>;

    /// Every accepted proposal with its effective height and whether it is in force.
    #[method(name = "alys_proposals")]
    async fn proposals(&self) -> RpcResult<Proposals>;

    /// Pauses and parameters at `height` (default: the next block).
    #[method(name = "alys_runtimeState")]
    async fn runtime_state(&self, height: Option<u64>) -> RpcResult<RuntimeStateAt>;
}

/// Operator controls, guarded by the admin token (the first parameter).
#[rpc(server, client)]
pub trait AdminApi {
    /// Stops block production until resumed.
    #[method(name = "alys_pauseProduction")]
    async fn pause_production(&self, token: String) -> RpcResult<bool>;

    /// Resumes block production.
    #[method(name = "alys_resumeProduction")]
    async fn resume_production(&self, token: String) -> RpcResult<bool>;
}
