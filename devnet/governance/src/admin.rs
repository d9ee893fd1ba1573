//! The devnet governance service's admin JSON-RPC (HTTP): rotate the federation, issue proposals,
//! inject faults, read the state. Each change is pushed to every connected node at once.
//!
//! | method | params | result |
//! |---|---|---|
//! | `governance_status` | none | federations (address, threshold, members, effective height), proposals, faults, sessions, signing operations, the last peg-in notifications received (`pegins`) |
//! | `governance_rotate` | `[{"members": n, "threshold": m, "effectiveHeight": h}]` | the new federation's deposit address |
//! | `governance_propose` | `[{"action": "pause" \| "resume", "scope": "pegins" \| "pegouts" \| "production", "effectiveHeight": h, "reason": "…"}]` or `[{"action": "parameter", "name": "…", "value": "…", "effectiveHeight": h}]` | the proposal id |
//! | `governance_setFaults` | `[{"dropAfter"?, "delayMs"?, "duplicate"?, "reorder"?, "badSignature"?}]` | true |
//!
//! For example, with foundry's `cast`:
//! `cast rpc --rpc-url http://127.0.0.1:50062 governance_propose '{"action":"pause","scope":"production","effectiveHeight":40}'`.
//!
//! `effectiveHeight` must be above the node's head (`alys_syncStatus`), with a margin of a few blocks:
//! the node refuses a decision for a height whose block exists (logged at WARN, counted in
//! `alys_governance_rejected_total{reason="past_height"}`, not in `alys_proposals`), and the id this
//! service returned then names nothing the node holds. Proposal ids sort in issue order, so a resume
//! at a pause's height lifts it.

use std::net::SocketAddr;

use alys_proto::governance::v1::{EmergencyScope, stream_response};
use jsonrpsee::{
    RpcModule,
    server::{Server, ServerHandle},
    types::{ErrorObject, ErrorObjectOwned},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Faults, GovernanceService};

/// `governance_rotate`'s parameter.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Rotate {
    members: u8,
    threshold: u32,
    effective_height: u64,
}

/// `governance_propose`'s parameter.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Propose {
    action: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    value: Option<String>,
    effective_height: u64,
    #[serde(default)]
    reason: String,
}

fn invalid(message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObject::owned(-32602, message.into(), None::<()>)
}

fn refused(error: impl std::fmt::Display) -> ErrorObjectOwned {
    ErrorObject::owned(-32000, error.to_string(), None::<()>)
}

fn status(service: &GovernanceService) -> Value {
    let state = service.state();
    let federations = state
        .federation_updates()
        .iter()
        .filter_map(|u| {
            alys_governance::Federation::from_update(u, &state.governance_key(), state.network).ok()
        })
        .map(|f| {
            json!({
                "effectiveHeight": f.effective_height,
                "threshold": f.threshold,
                "members": f.members.iter().map(|m| m.key.to_string()).collect::<Vec<_>>(),
                "address": f.address.to_string(),
            })
        })
        .collect::<Vec<_>>();
    let proposals = state
        .proposals()
        .iter()
        .filter_map(|n| alys_governance::Proposal::from_notification(n, &state.governance_key()).ok())
        .collect::<Vec<_>>();
    json!({
        "governanceKey": state.governance_key().to_string(),
        "federations": federations,
        "proposals": proposals,
        "faults": state.faults(),
        "sessions": service.sessions(),
        "signed": service.signed(),
        "pegins": service
            .pegins()
            .iter()
            .map(|n| json!({
                "btcTxid": n.btc_txid,
                "vout": n.vout,
                "amount": n.amount,
                "evmAddress": n.evm_address,
                "confirmations": n.confirmations,
                "extraData": n.extra_data.as_ref().map(|d| String::from_utf8_lossy(d).into_owned()),
            }))
            .collect::<Vec<_>>(),
    })
}

/// The admin methods over `service`.
pub fn rpc_module(
    service: GovernanceService,
) -> Result<RpcModule<GovernanceService>, jsonrpsee::core::RegisterMethodError> {
    let mut module = RpcModule::new(service);
    module.register_method("governance_status", |_, service, _| {
        Ok::<Value, ErrorObjectOwned>(status(service))
    })?;
    module.register_method("governance_rotate", |params, service, _| {
        let rotate: Rotate = params
            .one()
            .map_err(|e| invalid(format!("expected [{{members, threshold, effectiveHeight}}]: {e}")))?;
        let federation = service
            .update(|state| state.rotate(rotate.members, rotate.threshold, rotate.effective_height))
            .map_err(refused)?;
        let update = service.state().federation_update();
        service.push(stream_response::Payload::FederationUpdate(update));
        tracing::info!(target: "alys::devnet::governance", address = %federation.address,
            height = rotate.effective_height, "federation rotated");
        Ok::<Value, ErrorObjectOwned>(json!({
            "address": federation.address.to_string(),
            "effectiveHeight": federation.effective_height,
        }))
    })?;
    module.register_method("governance_propose", |params, service, _| {
        let propose: Propose =
            params.one().map_err(|e| invalid(format!("expected [{{action, …, effectiveHeight}}]: {e}")))?;
        let notification = match propose.action.as_str() {
            "pause" | "resume" => {
                let scope = match propose.scope.as_deref() {
                    Some("pegins") => EmergencyScope::Pegins,
                    Some("pegouts") => EmergencyScope::Pegouts,
                    Some("production") => EmergencyScope::BlockProduction,
                    other => {
                        return Err(invalid(format!("scope {other:?}: use pegins, pegouts or production")));
                    }
                };
                let pause = propose.action == "pause";
                service
                    .update(|state| {
                        state.propose_emergency(scope, pause, propose.effective_height, &propose.reason)
                    })
                    .map_err(refused)?
            }
            "parameter" => {
                let (Some(name), Some(value)) = (propose.name.as_deref(), propose.value.as_deref()) else {
                    return Err(invalid("a parameter proposal needs name and value"));
                };
                service
                    .update(|state| state.propose_parameter(name, value, propose.effective_height))
                    .map_err(refused)?
            }
            other => return Err(invalid(format!("action {other:?}: use pause, resume or parameter"))),
        };
        let id = notification.proposal_id.clone();
        service.push(stream_response::Payload::ProposalNotification(notification));
        tracing::info!(target: "alys::devnet::governance", id, "proposal issued");
        Ok::<Value, ErrorObjectOwned>(json!(id))
    })?;
    module.register_method("governance_setFaults", |params, service, _| {
        let faults: Faults = params.one().map_err(|e| invalid(format!("expected [faults]: {e}")))?;
        service.update(|state| state.faults = faults);
        Ok::<bool, ErrorObjectOwned>(true)
    })?;
    Ok(module)
}

/// A running admin server.
#[derive(Debug)]
pub struct AdminHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    handle: ServerHandle,
}

impl AdminHandle {
    /// Stops the server.
    pub fn stop(&self) {
        let _ = self.handle.stop();
    }
}

/// Why the admin server did not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The address could not be bound.
    #[error("cannot bind the governance admin RPC: {0}")]
    Bind(#[from] std::io::Error),
    /// A method could not be registered (a bug).
    #[error("registering admin methods: {0}")]
    Register(#[from] jsonrpsee::core::RegisterMethodError),
}

/// Starts the admin JSON-RPC on `addr` (port 0 picks one).
pub async fn start(service: GovernanceService, addr: SocketAddr) -> Result<AdminHandle, AdminError> {
    let module = rpc_module(service)?;
    let server = Server::builder().build(addr).await?;
    let addr = server.local_addr()?;
    let handle = server.start(module);
    tracing::info!(target: "alys::devnet::governance", %addr, "governance admin RPC listening");
    Ok(AdminHandle { addr, handle })
}
