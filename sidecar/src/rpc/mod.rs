//! The sidecar's JSON-RPC server (HTTP and WebSocket, default port 3000): Alys's methods with Alys's
//! parameter shapes, the `alys_` namespace, and admin methods guarded by a token.
//!
//! | method | params | result |
//! |---|---|---|
//! | `getheadblock` | none | the head block, or null at genesis |
//! | `getblockbyheight` | `[height]` | the canonical block at that height, or null |
//! | `getblockbyhash` | `["0x…"]` | the stored block with that consensus hash, or null |
//! | `createauxblock` | `["0x<evm address>"]` | `{hash, chainid, previousblockhash, coinbasevalue, bits, height, _target}` |
//! | `submitauxblock` | `["<hash>", "<auxpow hex>"]` | true when the proof is valid and queued, false otherwise |
//! | `alys_syncStatus` | none | head, safe, finalized, slot, authorities, equivocations, paused, production |
//! | `alys_pauseProduction` | `["token"]` | true; block production stops until resumed |
//! | `alys_resumeProduction` | `["token"]` | true |
//! | `getdepositaddress` | none | the P2WSH deposit address of the federation in force at the next block |
//! | `alys_depositAddresses` | none | `{height, current, previous}`: the federations in force and before it (deposits to either are recognised) |
//! | `alys_governanceStatus` | none | stream connection, federations by height, pending signature requests |
//! | `alys_proposals` | none | every accepted proposal with its effective height and whether it is in force |
//! | `alys_runtimeState` | `[height?]` | pauses (peg-ins, peg-outs, production) and parameters at a height (default: the next block) |
//! | `alys_pendingPegouts` | none | burns waiting for finality (`pending`) and final burns (`final`) |
//! | `alys_health` | none | `"ok"`, or error -32002 when the execution client is offline (also `GET /health`) |

use std::net::SocketAddr;

use alloy_primitives::{B256, hex};
use jsonrpsee::{
    RpcModule,
    server::{Server, ServerHandle},
    types::{ErrorObject, ErrorObjectOwned},
};
use serde_json::{Value, json};

use crate::{
    actor::Handle,
    chain::{ChainMessage, ChainStatus, SignedBlock},
};

/// JSON-RPC error code for a refused admin token.
pub const UNAUTHORIZED: i32 = -32001;
/// JSON-RPC error code of `alys_health` (and HTTP 500 on `GET /health`) when the execution client is
/// offline.
pub const ENGINE_OFFLINE: i32 = -32002;
/// JSON-RPC error code for an internal failure (store or actor).
pub const INTERNAL: i32 = -32603;

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
    /// A method could not be registered (a bug).
    #[error("registering RPC methods: {0}")]
    Register(String),
}

/// A running RPC server.
#[derive(Debug, Clone)]
pub struct RpcHandle {
    addr: SocketAddr,
    handle: ServerHandle,
}

impl RpcHandle {
    /// The bound address.
    pub const fn local_addr(&self) -> SocketAddr {
        self.addr
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

struct Context {
    chain: Handle<ChainMessage>,
    admin_token: Option<String>,
    governance: Option<crate::governance::stream::StreamHandle>,
    pegouts: Option<std::sync::Arc<crate::pegout::PegoutLedger>>,
    runtime: crate::governance::RuntimeView,
}

fn internal(error: impl std::fmt::Display) -> ErrorObjectOwned {
    ErrorObject::owned(INTERNAL, error.to_string(), None::<()>)
}

/// The JSON shape of a consensus block.
pub fn block_json(block: &SignedBlock) -> Value {
    let h = &block.header;
    json!({
        "hash": h.hash(),
        "parentHash": h.parent_hash,
        "height": h.height,
        "slot": h.slot,
        "author": h.author,
        "executionBlockHash": h.execution_block_hash,
        "pegins": h.pegins.iter().map(|p| json!({
            "txid": p.txid, "vout": p.vout, "evmAddress": p.evm_address, "amountSats": p.amount_sats,
        })).collect::<Vec<_>>(),
        "auxpow": (!h.auxpow.is_empty()).then(|| h.auxpow.clone()),
        "authorSignature": block.author_signature,
        "approvals": {
            "signers": block.approvals.signer_indexes(),
            "signature": block.approvals.signature,
        },
        "executionBlock": block.execution_block,
        "executionRequests": block.execution_requests,
    })
}

fn status_json(status: &ChainStatus) -> Value {
    let finalized = status.finalized.map(|f| json!({ "height": f.height, "hash": f.hash }));
    json!({
        "head": { "height": status.head.height, "hash": status.head.hash, "executionHash": status.head_execution_hash, "slot": status.head_slot },
        "safe": finalized,
        "finalized": finalized,
        "slot": status.slot,
        "authorities": status.authorities,
        "authorityIndex": status.authority_index,
        "equivocations": status.equivocations,
        "paused": status.paused,
        "engineOnline": status.engine_online,
        "productionStopped": status.production_stopped,
        "powBits": format!("{:08x}", status.pow_bits),
        "governance": status.runtime,
    })
}

fn pegout_json(burn: &alys_exex::Burn) -> Value {
    json!({
        "evmAddress": burn.sender,
        "bitcoinAddress": std::str::from_utf8(&burn.bitcoin_address)
            .map_or_else(|_| format!("0x{}", hex::encode(&burn.bitcoin_address)), str::to_owned),
        "valueWei": burn.value.to_string(),
        "valueSats": alys_contracts::wei_to_sats(burn.value),
        "blockNumber": burn.block_number,
        "blockHash": burn.block_hash,
        "logIndex": burn.log_index,
        "txHash": burn.tx_hash,
    })
}

async fn next_height(c: &Context) -> Result<u64, ErrorObjectOwned> {
    Ok(c.chain.ask(ChainMessage::Status).await.map_err(internal)?.head.height + 1)
}

async fn federations_at(
    c: &Context,
    height: u64,
) -> Result<(Option<crate::governance::Federation>, Option<crate::governance::Federation>), ErrorObjectOwned>
{
    match &c.governance {
        Some(stream) => stream.federations_at(height).await.map_err(internal),
        None => Err(ErrorObject::owned(-32000, "no governance service configured", None::<()>)),
    }
}

async fn federations(c: &Context) -> Result<Vec<crate::governance::Federation>, ErrorObjectOwned> {
    match &c.governance {
        Some(stream) => stream.federations().await.map_err(internal),
        None => Err(ErrorObject::owned(-32000, "no governance service configured", None::<()>)),
    }
}

fn mining_error(error: crate::chain::MiningError) -> ErrorObjectOwned {
    match error {
        crate::chain::MiningError::Malformed(reason) => {
            ErrorObject::owned(-32602, format!("malformed auxpow: {reason}"), None::<()>)
        }
        crate::chain::MiningError::NothingToFinalize => {
            ErrorObject::owned(-32000, "no unfinalized blocks to mine yet", None::<()>)
        }
        other => internal(other),
    }
}

fn check_token(ctx: &Context, token: &str) -> Result<(), ErrorObjectOwned> {
    let Some(expected) = &ctx.admin_token else {
        return Err(ErrorObject::owned(
            UNAUTHORIZED,
            "admin methods are disabled (no admin token configured)",
            None::<()>,
        ));
    };
    // The token guards production control: compare in constant time.
    if constant_time_eq(expected.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(ErrorObject::owned(UNAUTHORIZED, "invalid admin token", None::<()>))
    }
}

/// Whether `a` and `b` are equal, in time that depends only on their lengths (for secrets).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn parse_hash(text: &str) -> Result<B256, ErrorObjectOwned> {
    let bytes = hex::decode(text)
        .map_err(|_| ErrorObject::owned(-32602, "invalid block hash: not hex", None::<()>))?;
    B256::try_from(bytes.as_slice())
        .map_err(|_| ErrorObject::owned(-32602, "invalid block hash: must be 32 bytes", None::<()>))
}

/// Builds the RPC module over the chain actor.
pub fn rpc_module(
    chain: Handle<ChainMessage>,
    admin_token: Option<String>,
    governance: Option<crate::governance::stream::StreamHandle>,
    pegouts: Option<std::sync::Arc<crate::pegout::PegoutLedger>>,
    runtime: crate::governance::RuntimeView,
) -> Result<RpcModule<()>, RpcStartError> {
    let ctx = std::sync::Arc::new(Context { chain, admin_token, governance, pegouts, runtime });
    let mut module = RpcModule::new(());
    let reg = |e: jsonrpsee::core::RegisterMethodError| RpcStartError::Register(e.to_string());

    let c = ctx.clone();
    module
        .register_async_method("getheadblock", move |_, _, _| {
            let c = c.clone();
            async move {
                let status = c.chain.ask(ChainMessage::Status).await.map_err(internal)?;
                if status.head.height == 0 {
                    return Ok::<Value, ErrorObjectOwned>(Value::Null);
                }
                let block = c
                    .chain
                    .ask(|r| ChainMessage::BlockByHash(status.head.hash, r))
                    .await
                    .map_err(internal)?;
                Ok(block.map_err(internal)?.as_ref().map_or(Value::Null, block_json))
            }
        })
        .map_err(reg)?;

    let c = ctx.clone();
    module
        .register_async_method("getblockbyheight", move |params, _, _| {
            let c = c.clone();
            async move {
                let (height,): (u64,) = params.parse()?;
                let block =
                    c.chain.ask(|r| ChainMessage::BlockByHeight(height, r)).await.map_err(internal)?;
                Ok::<Value, ErrorObjectOwned>(
                    block.map_err(internal)?.as_ref().map_or(Value::Null, block_json),
                )
            }
        })
        .map_err(reg)?;

    let c = ctx.clone();
    module
        .register_async_method("getblockbyhash", move |params, _, _| {
            let c = c.clone();
            async move {
                let (hash,): (String,) = params.parse()?;
                let hash = parse_hash(&hash)?;
                let block = c.chain.ask(|r| ChainMessage::BlockByHash(hash, r)).await.map_err(internal)?;
                Ok::<Value, ErrorObjectOwned>(
                    block.map_err(internal)?.as_ref().map_or(Value::Null, block_json),
                )
            }
        })
        .map_err(reg)?;

    let c = ctx.clone();
    module
        .register_async_method("alys_syncStatus", move |_, _, _| {
            let c = c.clone();
            async move {
                let status = c.chain.ask(ChainMessage::Status).await.map_err(internal)?;
                Ok::<Value, ErrorObjectOwned>(status_json(&status))
            }
        })
        .map_err(reg)?;

    for (method, paused) in [("alys_pauseProduction", true), ("alys_resumeProduction", false)] {
        let c = ctx.clone();
        module
            .register_async_method(method, move |params, _, _| {
                let c = c.clone();
                async move {
                    let (token,): (String,) = params.parse()?;
                    check_token(&c, &token)?;
                    c.chain.ask(|r| ChainMessage::SetPaused(paused, r)).await.map_err(internal)?;
                    Ok::<bool, ErrorObjectOwned>(true)
                }
            })
            .map_err(reg)?;
    }

    let c = ctx.clone();
    module
        .register_async_method("createauxblock", move |params, _, _| {
            let c = c.clone();
            async move {
                let (miner,): (String,) = params.parse()?;
                let miner: alloy_primitives::Address = miner
                    .parse()
                    .map_err(|_| ErrorObject::owned(-32602, "invalid EVM address", None::<()>))?;
                let template = c
                    .chain
                    .ask(|r| ChainMessage::CreateAuxBlock(miner, r))
                    .await
                    .map_err(internal)?
                    .map_err(mining_error)?;
                Ok::<Value, ErrorObjectOwned>(json!({
                    "hash": hex::encode(template.hash),
                    "chainid": template.chain_id,
                    "previousblockhash": hex::encode(template.previous_block_hash),
                    "coinbasevalue": template.coinbase_value,
                    "bits": format!("{:08x}", template.bits),
                    "height": template.height,
                    "_target": hex::encode(template.target_le),
                }))
            }
        })
        .map_err(reg)?;

    let c = ctx.clone();
    module
        .register_async_method("submitauxblock", move |params, _, _| {
            let c = c.clone();
            async move {
                let (hash, auxpow): (String, String) = params.parse()?;
                let hash = parse_hash(&hash)?;
                let auxpow = hex::decode(auxpow)
                    .map_err(|_| ErrorObject::owned(-32602, "invalid auxpow: not hex", None::<()>))?;
                c.chain
                    .ask(|r| ChainMessage::SubmitAuxBlock(hash, auxpow.into(), r))
                    .await
                    .map_err(internal)?
                    .map_err(mining_error)
            }
        })
        .map_err(reg)?;

    let c = ctx.clone();
    module
        .register_async_method("getdepositaddress", move |_, _, _| {
            let c = c.clone();
            async move {
                let height = next_height(&c).await?;
                let (current, _) = federations_at(&c, height).await?;
                let current = current.ok_or_else(|| {
                    ErrorObject::owned(-32000, "the federation is not known yet", None::<()>)
                })?;
                Ok::<String, ErrorObjectOwned>(current.address.to_string())
            }
        })
        .map_err(reg)?;

    let c = ctx.clone();
    module
        .register_async_method("alys_depositAddresses", move |_, _, _| {
            let c = c.clone();
            async move {
                let height = next_height(&c).await?;
                let (current, previous) = federations_at(&c, height).await?;
                let entry = |f: Option<crate::governance::Federation>| {
                    f.map(|f| json!({ "address": f.address.to_string(), "effectiveHeight": f.effective_height, "threshold": f.threshold, "members": f.members.len() }))
                };
                Ok::<Value, ErrorObjectOwned>(json!({
                    "height": height,
                    "current": entry(current),
                    "previous": entry(previous),
                }))
            }
        })
        .map_err(reg)?;

    let c = ctx.clone();
    module
        .register_async_method("alys_proposals", move |_, _, _| {
            let c = c.clone();
            async move {
                let height = next_height(&c).await?;
                let book = c.runtime.book();
                let list = book
                    .proposals()
                    .map(|p| {
                        let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
                        if let Some(o) = v.as_object_mut() {
                            o.insert("inForce".into(), json!(p.effective_height <= height));
                        }
                        v
                    })
                    .collect::<Vec<_>>();
                Ok::<Value, ErrorObjectOwned>(json!({ "height": height, "proposals": list }))
            }
        })
        .map_err(reg)?;

    let c = ctx.clone();
    module
        .register_async_method("alys_runtimeState", move |params, _, _| {
            let c = c.clone();
            async move {
                let requested: Option<u64> = params.sequence().optional_next().map_err(|_| {
                    ErrorObject::owned(-32602, "invalid params: expected [height] or []", None::<()>)
                })?;
                let height = match requested {
                    Some(h) => h,
                    None => next_height(&c).await?,
                };
                let state = c.runtime.state_at(height);
                Ok::<Value, ErrorObjectOwned>(json!({
                    "height": height,
                    "state": state,
                    "changeableParameters": crate::governance::RuntimeParameters::NAMES,
                }))
            }
        })
        .map_err(reg)?;

    let c = ctx.clone();
    module
        .register_async_method("alys_governanceStatus", move |_, _, _| {
            let c = c.clone();
            async move {
                let Some(stream) = &c.governance else {
                    return Ok::<Value, ErrorObjectOwned>(json!({ "configured": false }));
                };
                let status = stream.status();
                let federations = federations(&c).await?;
                let pending = stream.pending().await.map_err(internal)?;
                Ok(json!({
                    "configured": true,
                    "connected": status.connected,
                    "reconnects": status.reconnects,
                    "pendingSignatureRequests": pending.len(),
                    "federations": federations.iter().map(|f| json!({
                        "effectiveHeight": f.effective_height,
                        "threshold": f.threshold,
                        "members": f.members.iter().map(|m| json!({ "id": m.member_id, "publicKey": m.key.to_string() })).collect::<Vec<_>>(),
                        "address": f.address.to_string(),
                    })).collect::<Vec<_>>(),
                }))
            }
        })
        .map_err(reg)?;

    let c = ctx.clone();
    module
        .register_method("alys_pendingPegouts", move |_, _, _| {
            let Some(ledger) = &c.pegouts else {
                return Err(ErrorObject::owned(-32000, "no peg-out source configured", None::<()>));
            };
            let pending = ledger.pending().map_err(internal)?;
            let released = ledger.released().map_err(internal)?;
            Ok::<Value, ErrorObjectOwned>(json!({
                "pending": pending.iter().map(pegout_json).collect::<Vec<_>>(),
                "final": released.iter().map(pegout_json).collect::<Vec<_>>(),
            }))
        })
        .map_err(reg)?;

    let c = ctx;
    module
        .register_async_method("alys_health", move |_, _, _| {
            let c = c.clone();
            async move {
                let status = c.chain.ask(ChainMessage::Status).await.map_err(internal)?;
                if status.engine_online {
                    Ok("ok")
                } else {
                    Err(ErrorObject::owned(ENGINE_OFFLINE, "execution client is offline", None::<()>))
                }
            }
        })
        .map_err(reg)?;
    Ok(module)
}

/// Starts the RPC server on `addr` (port 0 picks a free port); `GET /health` answers `alys_health`.
pub async fn start(
    addr: SocketAddr,
    chain: Handle<ChainMessage>,
    admin_token: Option<String>,
    governance: Option<crate::governance::stream::StreamHandle>,
    pegouts: Option<std::sync::Arc<crate::pegout::PegoutLedger>>,
    runtime: crate::governance::RuntimeView,
) -> Result<RpcHandle, RpcStartError> {
    let module = rpc_module(chain, admin_token, governance, pegouts, runtime)?;
    let health = jsonrpsee::server::middleware::http::ProxyGetRequestLayer::new([("/health", "alys_health")])
        .map_err(|e| RpcStartError::Register(e.to_string()))?;
    let server = Server::builder()
        .set_http_middleware(tower::ServiceBuilder::new().layer(health))
        .build(addr)
        .await
        .map_err(|source| RpcStartError::Bind { addr, source })?;
    let addr = server.local_addr().map_err(|source| RpcStartError::Bind { addr, source })?;
    let handle = server.start(module);
    tracing::info!(target: "alys::rpc", %addr, "RPC listening");
    Ok(RpcHandle { addr, handle })
}
