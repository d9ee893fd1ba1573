//! The node's side of the Alys RPC ([`alys_rpc`]): the server traits implemented over the chain actor
//! (decisions: mining, production control, status), the database (stored blocks, the peg-out ledger) and
//! the governance stream.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use alloy_primitives::{Address, B256, Bytes, hex};
use alys_actor::{Handle, SupervisorStatus};
use alys_bitcoin::BitcoinStatus;
use alys_bridge::pegin::{display_block, display_txid};
use alys_burns::Burn;
use alys_chain::{ChainMessage, ChainStatus, MiningError};
use alys_governance::{Federation, PauseScope, ProposalAction, RuntimeView, stream::StreamHandle};
use alys_primitives::{ChainHeads, SignedBlock};
use alys_rpc::{
    AdminApiServer, BridgeApiServer, ChainApiServer, ErrorCode, GovernanceApiServer, MiningApiServer,
    jsonrpsee::{
        RpcModule,
        core::{RpcResult, async_trait},
        server::{Server, ServerHandle},
        types::ErrorObjectOwned,
    },
    rpc_error, types,
};
use alys_storage::{
    ChainRead, DepositRecord, FederationRead, PayoutRead, PeginRead, PegoutRead, ReadTx, Storage,
};
use subtle::ConstantTimeEq;
use tokio::sync::watch;

/// Why the RPC server did not start.
#[derive(Debug, thiserror::Error)]
pub enum RpcStartError {
    /// The listen address could not be bound.
    #[error("cannot bind RPC on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A method name is registered twice (a bug).
    #[error("registering RPC methods: {0}")]
    Register(#[from] alys_rpc::jsonrpsee::core::RegisterMethodError),
    /// The `/health` route could not be set up (a bug).
    #[error("health route: {0}")]
    Health(#[source] alys_rpc::jsonrpsee::server::middleware::http::ProxyGetRequestError),
}

/// A running RPC server.
#[derive(Debug, Clone)]
pub struct RpcHandle {
    addr: SocketAddr,
    handle: ServerHandle,
    dashboard: bool,
}

impl RpcHandle {
    /// The bound address.
    pub const fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the dashboard is served, if it is (`[rpc] dashboard`).
    pub fn dashboard_url(&self) -> Option<String> {
        self.dashboard.then(|| format!("http://{}{}", self.addr, alys_dashboard::PAGE_PATH))
    }

    /// Stops the server.
    pub fn stop(&self) {
        let _ = self.handle.stop();
    }

    /// Waits until the server stopped.
    pub async fn stopped(self) {
        self.handle.stopped().await;
    }
}

/// What the RPC server reads and asks.
#[derive(Debug)]
pub struct RpcContext {
    /// The chain actor (status, mining, production control).
    pub chain: Handle<ChainMessage>,
    /// The database (stored blocks, the peg-out ledger).
    pub storage: Arc<Storage>,
    /// Where the chain stands.
    pub heads: watch::Receiver<ChainHeads>,
    /// The admin token; admin methods are refused without one.
    pub admin_token: Option<String>,
    /// The governance stream, if configured.
    pub governance: Option<StreamHandle>,
    /// Whether a burn source is configured.
    pub pegouts: bool,
    /// Governance's proposals in force.
    pub runtime: RuntimeView,
    /// The Bitcoin node as the peg-in watcher last saw it, if `[bitcoin]` is configured.
    pub bitcoin: Option<watch::Receiver<BitcoinStatus>>,
    /// The network burn addresses must be on (`[governance].network`), for refund reasons.
    pub network: Option<bitcoin::Network>,
    /// The federation network as the NetworkActor last saw it, if `[network]` is configured.
    pub peers: Option<watch::Receiver<alys_sync::NetworkView>>,
}

/// Longest time a call waits for the part of the node that answers it (the chain actor's mailbox, the
/// governance stream); a busy node answers [`ErrorCode::Timeout`] instead of holding the connection.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request body: a mining proof is a few kilobytes, everything else smaller.
pub const MAX_REQUEST_BYTES: u32 = 256 * 1024;
/// Largest response body: a block with a full execution payload.
pub const MAX_RESPONSE_BYTES: u32 = 64 * 1024 * 1024;
/// Most calls in one batch.
pub const MAX_BATCH: u32 = 32;
/// Most open connections (HTTP and WebSocket).
pub const MAX_CONNECTIONS: u32 = 512;

/// The RPC implementation.
#[derive(Debug, Clone)]
struct AlysRpc(Arc<RpcContext>);

/// Waits for `call` at most [`CALL_TIMEOUT`].
async fn timed<T, E: std::fmt::Display>(call: impl Future<Output = Result<T, E>>) -> RpcResult<T> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => result.map_err(internal),
        Err(_) => {
            metrics::counter!("alys_rpc_timeouts_total").increment(1);
            Err(rpc_error(ErrorCode::Timeout, format!("no answer within {CALL_TIMEOUT:?}; retry later")))
        }
    }
}

fn internal(error: impl std::fmt::Display) -> ErrorObjectOwned {
    rpc_error(ErrorCode::Internal, error.to_string())
}

fn no_governance() -> ErrorObjectOwned {
    rpc_error(ErrorCode::Unavailable, "no governance service configured")
}

/// A consensus block in the RPC's shape.
pub fn block_view(block: &SignedBlock) -> types::ConsensusBlock {
    let h = &block.header;
    types::ConsensusBlock {
        hash: h.hash(),
        parent_hash: h.parent_hash,
        height: h.height,
        slot: h.slot,
        author: h.author,
        execution_block_hash: h.execution_block_hash,
        pegins: h
            .pegins
            .iter()
            .map(|p| types::PegIn {
                txid: display_txid(&p.txid).to_string(),
                bitcoin_block: display_block(&p.bitcoin_block).to_string(),
                outputs: p
                    .outputs
                    .iter()
                    .map(|o| types::PegInOutput { vout: o.vout, amount_sats: o.amount_sats })
                    .collect(),
                evm_address: p.evm_address,
                amount_sats: p.amount_sats,
            })
            .collect(),
        auxpow: (!h.auxpow.is_empty()).then(|| h.auxpow.clone()),
        author_signature: block.author_signature.clone(),
        approvals: types::ApprovalSet {
            signers: block.approvals.signer_indexes(),
            signature: block.approvals.signature.clone(),
        },
        execution_block: block.execution_block.clone(),
        execution_requests: block.execution_requests.clone(),
    }
}

fn runtime_view(state: &alys_governance::RuntimeState) -> types::RuntimeState {
    let p = &state.parameters;
    types::RuntimeState {
        pegins_paused: state.pegins_paused,
        pegouts_paused: state.pegouts_paused,
        production_paused: state.production_paused,
        parameters: types::RuntimeParameters {
            max_blocks_without_pow: p.max_blocks_without_pow,
            pegout_fee_rate_sat_vb: p.pegout_fee_rate_sat_vb,
            pegin_confirmations: p.pegin_confirmations,
            pegout_min_sats: p.pegout_min_sats,
        },
    }
}

fn status_view(status: &ChainStatus) -> types::SyncStatus {
    let finalized = status.finalized.map(|f| types::BlockId { height: f.height, hash: f.hash });
    types::SyncStatus {
        head: types::HeadInfo {
            height: status.head.height,
            hash: status.head.hash,
            execution_hash: status.head_execution_hash,
            slot: status.head_slot,
        },
        safe: finalized,
        finalized,
        slot: status.slot,
        authorities: status.authorities.clone(),
        authority_index: status.authority_index,
        equivocations: status.equivocations,
        paused: status.paused,
        engine_online: status.engine_online,
        production_stopped: status.production_stopped.clone(),
        pow_bits: status.pow_bits,
        governance: runtime_view(&status.runtime),
        bitcoin: None,
        engine_synced: status.engine_synced,
        sync: None,
    }
}

fn block_id(block: alys_primitives::BlockRef) -> types::BlockId {
    types::BlockId { height: block.height, hash: block.hash }
}

/// A recorded deposit as `alys_pegins` shows it.
fn pegin_view(
    read: &impl PeginRead,
    record: &DepositRecord,
    tip: u64,
    required: u32,
) -> RpcResult<types::PeginInfo> {
    let confirmations = tip.saturating_add(1).saturating_sub(record.bitcoin_height);
    let minted = read.minted_canonical(&record.txid).map_err(internal)?;
    let status = if record.reorged_out != 0 {
        types::PeginStatus::Reorged
    } else if minted.is_some() {
        types::PeginStatus::Minted
    } else if record.is_rejected() {
        types::PeginStatus::Rejected
    } else if confirmations >= u64::from(required) {
        types::PeginStatus::Ready
    } else {
        types::PeginStatus::Confirming
    };
    Ok(types::PeginInfo {
        txid: display_txid(&record.txid).to_string(),
        bitcoin_block: display_block(&record.bitcoin_block).to_string(),
        bitcoin_height: record.bitcoin_height,
        outputs: record
            .outputs
            .iter()
            .map(|o| types::PegInOutput { vout: o.vout, amount_sats: o.amount_sats })
            .collect(),
        amount_sats: record.amount_sats(),
        evm_address: (record.evm_address != Address::ZERO).then_some(record.evm_address),
        status,
        confirmations,
        required_confirmations: required,
        minted_in: minted.map(|b| types::BlockId { height: b.height, hash: b.hash }),
        reason: record.is_rejected().then(|| record.rejection.clone()),
        seen_at: record.seen_secs,
    })
}

/// Up to `limit` burns of `set` after `after`, and the cursor of the next page when there is one.
fn pegout_page(
    read: &ReadTx,
    context: &RpcContext,
    set: types::PegoutSet,
    after: Option<types::PegoutCursor>,
    limit: u32,
) -> RpcResult<(Vec<types::Pegout>, Option<types::PegoutCursor>)> {
    let after = after.map(|c| alys_burns::BurnPosition {
        block_number: c.block_number,
        log_index: c.log_index,
        block_hash: c.block_hash,
    });
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    // One more than asked: whether a next page exists without an empty last page.
    let mut burns = match set {
        types::PegoutSet::Pending => read.pending_burns_page(after, limit.saturating_add(1)),
        types::PegoutSet::Released => read.released_burns_page(after, limit.saturating_add(1)),
    }
    .map_err(internal)?;
    let next = if burns.len() > limit {
        burns.truncate(limit);
        burns.last().map(|b| types::PegoutCursor {
            block_number: b.block_number,
            log_index: b.log_index,
            block_hash: b.block_hash,
        })
    } else {
        None
    };
    let settlement = Settlements::new(read, context)?;
    let views = burns
        .iter()
        .map(|burn| {
            let mut view = pegout_view(burn);
            if set == types::PegoutSet::Released {
                settlement.fill(burn, &mut view)?;
            }
            Ok(view)
        })
        .collect::<RpcResult<_>>()?;
    Ok((views, next))
}

/// What the chain and the payer say about released burns, read once per page.
struct Settlements<'a, R> {
    read: &'a R,
    context: &'a RpcContext,
    head: Option<alys_primitives::BlockRef>,
    finalized: u64,
    bitcoin_tip: u64,
}

impl<'a, R: PegoutRead + FederationRead + PayoutRead + PeginRead> Settlements<'a, R> {
    fn new(read: &'a R, context: &'a RpcContext) -> RpcResult<Self> {
        Ok(Self {
            read,
            context,
            head: read.head().map_err(internal)?,
            finalized: read.finalized().map_err(internal)?.map_or(0, |f| f.height),
            bitcoin_tip: read.bitcoin_tip().map_err(internal)?.map_or(0, |(height, _)| height),
        })
    }

    /// The status, payment and refund fields of a released burn.
    fn fill(&self, burn: &Burn, view: &mut types::Pegout) -> RpcResult<()> {
        view.status = "queued".into();
        let Some(head) = self.head else { return Ok(()) };
        let reference = alys_bridge::pegout::rules::burn_ref(burn);
        let Some(settled) = self.read.settled_on(&reference, head).map_err(internal)? else { return Ok(()) };
        view.settled_in = Some(types::BlockId { height: settled.block.height, hash: settled.block.hash });
        if settled.refunded {
            view.status = "refunded".into();
            let min_sats = self.context.runtime.state_at(settled.block.height).parameters.pegout_min_sats;
            view.refund_reason = Some(refund_reason(burn, self.context.network, min_sats).into());
            return Ok(());
        }
        let block = self.read.block(&settled.block.hash).map_err(internal)?;
        let Some(block) = block else { return Ok(()) };
        let Some(tx) = alys_storage::pegout_transaction(&block.header).map_err(internal)? else {
            return Ok(());
        };
        let paid = block.header.pegout.as_ref().map_or(&[][..], |p| p.paid.as_slice());
        let vout = paid.iter().position(|r| *r == reference).and_then(|i| u32::try_from(i).ok());
        view.vout = vout;
        view.paid_sats = vout.and_then(|v| tx.output.get(v as usize)).map(|o| o.value.to_sat());
        let txid = tx.compute_txid();
        view.bitcoin_txid = Some(txid.to_string());
        let record =
            self.read.payout(&B256::from(bitcoin::hashes::Hash::to_byte_array(txid))).map_err(internal)?;
        view.status = match &record {
            None if settled.block.height <= self.finalized => "final",
            None => "proposed",
            Some(record) => match record.status {
                alys_storage::PayoutStatus::Final => "final",
                alys_storage::PayoutStatus::Requested => "requested",
                alys_storage::PayoutStatus::Signed => "signed",
                alys_storage::PayoutStatus::Broadcast => "broadcast",
                alys_storage::PayoutStatus::Confirmed => "confirmed",
                alys_storage::PayoutStatus::Replaced => "replaced",
            },
        }
        .into();
        if let Some(record) = record
            && matches!(
                record.status,
                alys_storage::PayoutStatus::Broadcast | alys_storage::PayoutStatus::Confirmed
            )
        {
            view.confirmations = Some(record.confirmations(self.bitcoin_tip));
        }
        Ok(())
    }
}

/// Why a settled burn was refunded, recomputed by the rules that refunded it.
fn refund_reason(burn: &Burn, network: Option<bitcoin::Network>, min_sats: u64) -> &'static str {
    use alys_bridge::pegout::tx::{RefundReason, destination};
    let Some(network) = network else { return "refunded" };
    match destination(burn, network) {
        Err(reason) => reason.code(),
        Ok(_) if alys_contracts::wei_to_sats(burn.value).is_none_or(|sats| sats < min_sats) => {
            RefundReason::BelowMinimum.code()
        }
        Ok(_) => RefundReason::BelowDust.code(),
    }
}

fn pegout_view(burn: &Burn) -> types::Pegout {
    types::Pegout {
        status: "pending".into(),
        bitcoin_txid: None,
        vout: None,
        paid_sats: None,
        confirmations: None,
        refund_reason: None,
        settled_in: None,
        evm_address: burn.sender,
        bitcoin_address: std::str::from_utf8(&burn.bitcoin_address)
            .map_or_else(|_| format!("0x{}", hex::encode(&burn.bitcoin_address)), str::to_owned),
        value_wei: burn.value.to_string(),
        value_sats: alys_contracts::wei_to_sats(burn.value),
        block_number: burn.block_number,
        block_hash: burn.block_hash,
        log_index: burn.log_index,
        tx_hash: burn.tx_hash,
    }
}

fn federation_address(f: Federation) -> types::FederationAddress {
    types::FederationAddress {
        address: f.address.to_string(),
        effective_height: f.effective_height,
        threshold: f.threshold,
        members: f.members.len(),
    }
}

fn proposal_action(action: &ProposalAction) -> types::ProposalAction {
    match action {
        ProposalAction::Emergency { scope, pause, reason } => types::ProposalAction::Emergency {
            scope: match scope {
                PauseScope::Pegins => "pegins",
                PauseScope::Pegouts => "pegouts",
                PauseScope::BlockProduction => "blockProduction",
            }
            .into(),
            pause: *pause,
            reason: reason.clone(),
        },
        ProposalAction::Parameter { name, value } => {
            types::ProposalAction::Parameter { name: name.clone(), value: value.clone() }
        }
        ProposalAction::Record { description } => {
            types::ProposalAction::Record { description: description.clone() }
        }
    }
}

fn mining_error(error: MiningError) -> ErrorObjectOwned {
    match error {
        MiningError::Malformed(reason) => {
            rpc_error(ErrorCode::InvalidParams, format!("malformed auxpow: {reason}"))
        }
        MiningError::NothingToFinalize => {
            rpc_error(ErrorCode::Unavailable, "no unfinalized blocks to mine yet")
        }
        other => internal(other),
    }
}

impl AlysRpc {
    async fn status(&self) -> RpcResult<ChainStatus> {
        timed(self.0.chain.ask(ChainMessage::Status)).await
    }

    fn next_height(&self) -> u64 {
        self.0.heads.borrow().head.height + 1
    }

    fn governance(&self) -> RpcResult<&StreamHandle> {
        self.0.governance.as_ref().ok_or_else(no_governance)
    }

    fn check_token(&self, token: &str) -> RpcResult<()> {
        let Some(expected) = &self.0.admin_token else {
            return Err(rpc_error(
                ErrorCode::Unauthorized,
                "admin methods are disabled (no admin token configured)",
            ));
        };
        // The token guards production control: compare in constant time.
        if bool::from(expected.as_bytes().ct_eq(token.as_bytes())) {
            Ok(())
        } else {
            Err(rpc_error(ErrorCode::Unauthorized, "invalid admin token"))
        }
    }

    async fn set_paused(&self, token: &str, paused: bool) -> RpcResult<bool> {
        self.check_token(token)?;
        timed(self.0.chain.ask(|r| ChainMessage::SetPaused(paused, r))).await?.map_err(internal)?;
        Ok(true)
    }
}

#[async_trait]
impl MiningApiServer for AlysRpc {
    async fn create_aux_block(&self, address: Address) -> RpcResult<types::AuxBlock> {
        let template = timed(self.0.chain.ask(|r| ChainMessage::CreateAuxBlock(address, r)))
            .await?
            .map_err(mining_error)?;
        Ok(types::AuxBlock {
            hash: template.hash,
            chain_id: template.chain_id,
            previous_block_hash: template.previous_block_hash,
            coinbase_value: template.coinbase_value,
            bits: template.bits,
            height: template.height,
            target: B256::from(template.target_le),
        })
    }

    async fn submit_aux_block(&self, hash: B256, auxpow: Bytes) -> RpcResult<bool> {
        timed(self.0.chain.ask(|r| ChainMessage::SubmitAuxBlock(hash, auxpow, r)))
            .await?
            .map_err(mining_error)
    }
}

#[async_trait]
impl ChainApiServer for AlysRpc {
    async fn head_block(&self) -> RpcResult<Option<types::ConsensusBlock>> {
        let read = self.0.storage.read().map_err(internal)?;
        let Some(head) = read.head().map_err(internal)? else { return Ok(None) };
        Ok(read.block(&head.hash).map_err(internal)?.as_ref().map(block_view))
    }

    async fn block_by_height(&self, height: u64) -> RpcResult<Option<types::ConsensusBlock>> {
        let read = self.0.storage.read().map_err(internal)?;
        Ok(read.block_by_height(height).map_err(internal)?.as_ref().map(block_view))
    }

    async fn block_by_hash(&self, hash: B256) -> RpcResult<Option<types::ConsensusBlock>> {
        let read = self.0.storage.read().map_err(internal)?;
        Ok(read.block(&hash).map_err(internal)?.as_ref().map(block_view))
    }

    async fn sync_status(&self) -> RpcResult<types::SyncStatus> {
        let mut view = status_view(&self.status().await?);
        view.bitcoin = self.0.bitcoin.as_ref().map(|status| {
            let status = *status.borrow();
            types::BitcoinSync {
                connected: status.connected,
                height: status.height,
                best_hash: status.best_hash.map(|h| h.to_string()),
                followed_height: status.followed_height,
            }
        });
        view.sync = self.0.peers.as_ref().map(|network| {
            let network = network.borrow();
            types::SyncInfo {
                state: network.mode.name().to_owned(),
                target: network.target,
                peers: network.peers.len(),
            }
        });
        Ok(view)
    }

    async fn peers(&self) -> RpcResult<types::Peers> {
        let network = self
            .0
            .peers
            .as_ref()
            .ok_or_else(|| rpc_error(ErrorCode::Unavailable, "this node has no [network]"))?
            .borrow()
            .clone();
        Ok(types::Peers {
            peer_id: network.peer_id,
            listen: network.listen,
            peers: network
                .peers
                .into_iter()
                .map(|p| types::Peer {
                    peer_id: p.peer_id,
                    address: p.address,
                    direction: p.direction.to_owned(),
                    score: p.score,
                    client: p.client,
                    connected_secs: p.connected_secs,
                    head: p.head.map(block_id),
                    finalized: p.finalized.map(block_id),
                })
                .collect(),
        })
    }

    async fn health(&self) -> RpcResult<String> {
        if let SupervisorStatus::GaveUp = self.0.chain.status() {
            return Err(rpc_error(ErrorCode::Unhealthy, "the chain actor failed too often and stopped"));
        }
        let status = self.status().await?;
        if status.engine_online {
            Ok("ok".into())
        } else {
            Err(rpc_error(ErrorCode::Unhealthy, "execution client is offline"))
        }
    }
}

#[async_trait]
impl BridgeApiServer for AlysRpc {
    async fn deposit_address(&self) -> RpcResult<String> {
        let (current, _) = timed(self.governance()?.federations_at(self.next_height())).await?;
        let current =
            current.ok_or_else(|| rpc_error(ErrorCode::Unavailable, "the federation is not known yet"))?;
        Ok(current.address.to_string())
    }

    async fn deposit_addresses(&self) -> RpcResult<types::DepositAddresses> {
        let height = self.next_height();
        let (current, previous) = timed(self.governance()?.federations_at(height)).await?;
        Ok(types::DepositAddresses {
            height,
            current: current.map(federation_address),
            previous: previous.map(federation_address),
        })
    }

    async fn pending_pegouts(&self) -> RpcResult<types::PendingPegouts> {
        if !self.0.pegouts {
            return Err(rpc_error(ErrorCode::Unavailable, "no peg-out source configured"));
        }
        let read = self.0.storage.read().map_err(internal)?;
        let limit = types::PegoutQuery::DEFAULT_LIMIT;
        let (pending, next_pending) = pegout_page(&read, &self.0, types::PegoutSet::Pending, None, limit)?;
        let (released, next_final) = pegout_page(&read, &self.0, types::PegoutSet::Released, None, limit)?;
        Ok(types::PendingPegouts { pending, released, next_pending, next_final })
    }

    async fn pegouts(&self, query: Option<types::PegoutQuery>) -> RpcResult<types::PegoutPage> {
        if !self.0.pegouts {
            return Err(rpc_error(ErrorCode::Unavailable, "no peg-out source configured"));
        }
        let query = query.unwrap_or_default();
        let limit = query.limit.unwrap_or(types::PegoutQuery::DEFAULT_LIMIT);
        if limit == 0 || limit > types::PegoutQuery::MAX_LIMIT {
            return Err(rpc_error(
                ErrorCode::InvalidParams,
                format!("limit {limit}: ask for 1 to {} peg-outs per page", types::PegoutQuery::MAX_LIMIT),
            ));
        }
        let read = self.0.storage.read().map_err(internal)?;
        let (pegouts, next) = pegout_page(&read, &self.0, query.set, query.after, limit)?;
        Ok(types::PegoutPage { set: query.set, pegouts, next })
    }

    async fn federation_utxos(&self) -> RpcResult<types::FederationUtxos> {
        let read = self.0.storage.read().map_err(internal)?;
        let Some(head) = read.head().map_err(internal)? else {
            return Ok(types::FederationUtxos { utxos: Vec::new(), total_sats: 0 });
        };
        let utxos: Vec<types::FederationUtxo> = read
            .federation_utxos_at(head)
            .map_err(internal)?
            .into_iter()
            .map(|u| types::FederationUtxo {
                txid: display_txid(&u.txid).to_string(),
                vout: u.vout,
                amount_sats: u.amount_sats,
                script_pubkey: hex::encode(&u.script_pubkey),
                minted_in: types::BlockId { height: u.created_in.height, hash: u.created_in.hash },
            })
            .collect();
        let total_sats = utxos.iter().fold(0u64, |sum, u| sum.saturating_add(u.amount_sats));
        Ok(types::FederationUtxos { utxos, total_sats })
    }

    async fn pegins(&self, query: Option<types::PeginQuery>) -> RpcResult<types::PeginPage> {
        if self.0.bitcoin.is_none() {
            return Err(rpc_error(ErrorCode::Unavailable, "no Bitcoin node configured ([bitcoin])"));
        }
        let query = query.unwrap_or_default();
        let limit = query.limit.unwrap_or(types::PeginQuery::DEFAULT_LIMIT);
        if limit == 0 || limit > types::PeginQuery::MAX_LIMIT {
            return Err(rpc_error(
                ErrorCode::InvalidParams,
                format!("limit {limit}: ask for 1 to {} deposits per page", types::PeginQuery::MAX_LIMIT),
            ));
        }
        let offset = query.offset.unwrap_or(0);
        let required = self.0.runtime.state_at(self.next_height()).parameters.pegin_confirmations;
        let read = self.0.storage.read().map_err(internal)?;
        let tip = read.bitcoin_tip().map_err(internal)?.map_or(0, |(h, _)| h);
        let total = read.deposit_count().map_err(internal)?;
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        let records = read
            .deposits_newest_first(skip, usize::try_from(limit).unwrap_or(usize::MAX))
            .map_err(internal)?;
        let pegins =
            records.iter().map(|r| pegin_view(&read, r, tip, required)).collect::<RpcResult<Vec<_>>>()?;
        let end = offset.saturating_add(pegins.len() as u64);
        Ok(types::PeginPage { pegins, total, next_offset: (end < total).then_some(end) })
    }
}

#[async_trait]
impl GovernanceApiServer for AlysRpc {
    async fn governance_status(&self) -> RpcResult<types::GovernanceStatus> {
        let Some(stream) = &self.0.governance else {
            return Ok(types::GovernanceStatus {
                configured: false,
                connected: false,
                reconnects: 0,
                pending_signature_requests: 0,
                federations: Vec::new(),
            });
        };
        let status = stream.status();
        let federations = timed(stream.federations()).await?;
        let pending = timed(stream.pending()).await?;
        Ok(types::GovernanceStatus {
            configured: true,
            connected: status.connected,
            reconnects: status.reconnects,
            pending_signature_requests: pending.len(),
            federations: federations
                .into_iter()
                .map(|f| types::FederationInfo {
                    effective_height: f.effective_height,
                    threshold: f.threshold,
                    members: f
                        .members
                        .iter()
                        .map(|m| types::FederationMember {
                            id: m.member_id.clone(),
                            public_key: m.key.to_string(),
                        })
                        .collect(),
                    address: f.address.to_string(),
                })
                .collect(),
        })
    }

    async fn proposals(&self) -> RpcResult<types::Proposals> {
        let height = self.next_height();
        let book = self.0.runtime.book();
        let in_force = book.in_force_at(height);
        let proposals = book
            .proposals()
            .map(|p| types::ProposalInfo {
                id: p.id.clone(),
                proposal_type: p.proposal_type.clone(),
                effective_height: p.effective_height,
                action: proposal_action(&p.action),
                in_force: in_force.contains(p.id.as_str()),
            })
            .collect();
        Ok(types::Proposals { height, proposals })
    }

    async fn runtime_state(&self, height: Option<u64>) -> RpcResult<types::RuntimeStateAt> {
        let height = height.unwrap_or_else(|| self.next_height());
        Ok(types::RuntimeStateAt {
            height,
            state: runtime_view(&self.0.runtime.state_at(height)),
            changeable_parameters: alys_governance::RuntimeParameters::NAMES.map(str::to_owned).to_vec(),
        })
    }
}

#[async_trait]
impl AdminApiServer for AlysRpc {
    async fn pause_production(&self, token: String) -> RpcResult<bool> {
        self.set_paused(&token, true).await
    }

    async fn resume_production(&self, token: String) -> RpcResult<bool> {
        self.set_paused(&token, false).await
    }
}

/// Builds the RPC module with every Alys method.
pub fn rpc_module(context: RpcContext) -> Result<RpcModule<()>, RpcStartError> {
    let api = AlysRpc(Arc::new(context));
    let mut module = RpcModule::new(());
    module.merge(MiningApiServer::into_rpc(api.clone()))?;
    module.merge(ChainApiServer::into_rpc(api.clone()))?;
    module.merge(BridgeApiServer::into_rpc(api.clone()))?;
    module.merge(GovernanceApiServer::into_rpc(api.clone()))?;
    module.merge(AdminApiServer::into_rpc(api))?;
    Ok(module)
}

/// What the dashboard needs beyond the RPC context.
#[derive(Debug)]
pub struct DashboardSettings {
    /// The Aura slot length.
    pub slot_duration_ms: u64,
    /// The AuxPow limit (compact bits).
    pub pow_limit_bits: u32,
    /// The Engine API client's call counters.
    pub engine: Arc<alys_engine_client::EngineStats>,
    /// The execution client's identification, if it gave one.
    pub engine_version: Option<String>,
    /// The EVM chain id.
    pub chain_id: u64,
}

/// How often the dashboard takes a snapshot.
pub const DASHBOARD_INTERVAL: Duration = Duration::from_secs(1);

/// Starts the RPC server on `addr` (port 0 picks a free port); `GET /health` answers `alys_health`;
/// with `dashboard`, `GET /dashboard` serves the live dashboard and its methods join the API.
pub async fn start(
    addr: SocketAddr,
    context: RpcContext,
    dashboard: Option<DashboardSettings>,
) -> Result<RpcHandle, RpcStartError> {
    let storage = Arc::clone(&context.storage);
    let network = context.network;
    let mut module = rpc_module(context)?;
    let with_dashboard = dashboard.is_some();
    let page = alys_dashboard::PageLayer::new(with_dashboard);
    if let Some(settings) = dashboard {
        let sources = alys_dashboard::Sources {
            methods: module.clone().into(),
            storage,
            slot_duration_ms: settings.slot_duration_ms,
            pow_limit_bits: settings.pow_limit_bits,
            engine: Some(settings.engine),
            engine_version: settings.engine_version,
            node: alys_dashboard::snapshot::NodeInfo {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                chain_id: settings.chain_id,
                bitcoin_network: network.map(|n| n.to_string()),
            },
        };
        // The sampler ends by itself once the server (holding the service) is gone.
        let (service, _sampler) = alys_dashboard::DashboardService::spawn(sources, DASHBOARD_INTERVAL);
        module.merge(service.rpc_module()?)?;
    }
    let health = alys_rpc::jsonrpsee::server::middleware::http::ProxyGetRequestLayer::new([(
        "/health",
        "alys_health",
    )])
    .map_err(RpcStartError::Health)?;
    let config = alys_rpc::jsonrpsee::server::ServerConfig::builder()
        .max_request_body_size(MAX_REQUEST_BYTES)
        .max_response_body_size(MAX_RESPONSE_BYTES)
        .set_batch_request_config(alys_rpc::jsonrpsee::server::BatchRequestConfig::Limit(MAX_BATCH))
        .max_connections(MAX_CONNECTIONS)
        .build();
    let server = Server::builder()
        .set_config(config)
        .set_http_middleware(tower::ServiceBuilder::new().layer(page).layer(health))
        .build(addr)
        .await
        .map_err(|source| RpcStartError::Bind { addr, source })?;
    let addr = server.local_addr().map_err(|source| RpcStartError::Bind { addr, source })?;
    let handle = server.start(module);
    tracing::info!(target: "alys::rpc", %addr, "RPC listening");
    Ok(RpcHandle { addr, handle, dashboard: with_dashboard })
}
