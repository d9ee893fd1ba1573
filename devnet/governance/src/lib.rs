//! A governance service for Alys devnets and tests, speaking `governance.v1` like the real HSM-backed
//! service: it holds the federation's software secp256k1 keys (the node never does), signs P2WSH
//! multisig inputs with real BIP143 sighashes, announces the federation with updates signed by a
//! governance key, and can inject faults (drop the stream, delay, duplicate responses, bad signatures).
//!
//! # Signature responses
//!
//! `SignatureResponse.signatures` lists, for each requested input in request order, `threshold`
//! signatures (DER + sighash byte) with the signer's compressed key: input-major, so the node can group
//! them by input and order each group by the witness script's keys.

use std::{pin::Pin, sync::Arc, time::Duration};

use alys_proto::governance::v1::{
    CapabilitiesRequest, CapabilitiesResponse, FederationConfig, FederationMember, FederationUpdate,
    HealthRequest, HealthResponse, HealthStatus, HeartbeatAck, NodeRegistrationAck, ResponseMetadata,
    SignatureRequest, SignatureResponse, SignatureStatus, SignatureType, StatusCode, StreamRequest,
    StreamResponse, WitnessData, governance_stream_server::GovernanceStream, stream_request, stream_response,
};
use alys_sidecar::governance::{Federation, update_digest};
use bitcoin::{
    Amount, Network, Transaction,
    consensus::deserialize,
    ecdsa,
    hashes::Hash,
    secp256k1::{self, Message, Secp256k1, SecretKey},
    sighash::{EcdsaSighashType, SighashCache},
};
use tokio::sync::mpsc;
use tokio_stream::{Stream, StreamExt, wrappers::ReceiverStream};
use tonic::{Request, Response, Status, Streaming};

/// The devnet governance public key (compressed, hex), from the fixed devnet seed. Public: devnets only.
pub const DEVNET_GOVERNANCE_KEY: &str = "03ab5d2e79cfd621b1b027ffb24e2453ed7fb571ba9a841ff0e2473466cabd168d";

/// Faults the service injects, for tests of the node's stream handling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Close the stream after this many responses.
    pub drop_after: Option<usize>,
    /// Wait this long before each response.
    pub delay: Option<Duration>,
    /// Send every response twice.
    pub duplicate: bool,
    /// Corrupt every signature it returns.
    pub bad_signature: bool,
}

/// Why the service could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum GovernanceError {
    /// The federation it would announce is not a valid multisig.
    #[error("federation: {0}")]
    Federation(#[from] alys_sidecar::governance::FederationError),
}

/// The service's keys and behaviour.
#[derive(Debug, Clone)]
pub struct DevGovernance {
    members: Vec<SecretKey>,
    threshold: u32,
    governance: SecretKey,
    effective_height: u64,
    network: Network,
    faults: Faults,
}

impl DevGovernance {
    /// A federation of `members` signing `threshold`-of-n, announced by `governance`'s key.
    pub fn new(members: Vec<SecretKey>, threshold: u32, governance: SecretKey, network: Network) -> Self {
        Self { members, threshold, governance, effective_height: 0, network, faults: Faults::default() }
    }

    /// A deterministic devnet service: `n` member keys and a governance key from fixed seeds (`[i; 32]`
    /// for member i ≥ 1, `[0xa1; 32]` for governance). These keys are public: devnets only.
    pub fn devnet(n: u8, threshold: u32) -> Result<Self, secp256k1::Error> {
        let members =
            (1..=n).map(|seed| SecretKey::from_slice(&[seed; 32])).collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(members, threshold, SecretKey::from_slice(&[0xa1; 32])?, Network::Regtest))
    }

    /// Injects `faults`.
    pub const fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Announces the federation from `height` on.
    pub const fn with_effective_height(mut self, height: u64) -> Self {
        self.effective_height = height;
        self
    }

    /// The governance public key a node must be configured with.
    pub fn governance_key(&self) -> secp256k1::PublicKey {
        secp256k1::PublicKey::from_secret_key(&Secp256k1::new(), &self.governance)
    }

    /// The signed federation update this service announces.
    pub fn federation_update(&self) -> FederationUpdate {
        let secp = Secp256k1::new();
        let members = self
            .members
            .iter()
            .enumerate()
            .map(|(i, sk)| FederationMember {
                member_id: format!("member-{i}"),
                public_key: secp256k1::PublicKey::from_secret_key(&secp, sk).serialize().to_vec(),
                weight: 1,
                active: true,
            })
            .collect::<Vec<_>>();
        let mut update = FederationUpdate {
            update_type: 1,
            effective_height: self.effective_height,
            update_signature: Vec::new(),
            config: Some(FederationConfig {
                signature_threshold: self.threshold,
                member_count: members.len() as u32,
                parameters: Default::default(),
            }),
            members,
        };
        let sig = secp.sign_ecdsa(&Message::from_digest(update_digest(&update)), &self.governance);
        update.update_signature = sig.serialize_compact().to_vec();
        update
    }

    /// The federation (witness script, address) the update defines.
    pub fn federation(&self) -> Result<Federation, GovernanceError> {
        Ok(Federation::from_update(&self.federation_update(), &self.governance_key(), self.network)?)
    }

    /// Signs the requested inputs with `threshold` member keys (BIP143, SIGHASH_ALL).
    pub fn sign(&self, request: &SignatureRequest) -> SignatureResponse {
        match self.try_sign(request) {
            Ok(signatures) => SignatureResponse {
                status: SignatureStatus::Complete as i32,
                signatures,
                failure_reason: None,
                partial_signatures: Vec::new(),
            },
            Err(reason) => SignatureResponse {
                status: SignatureStatus::Failed as i32,
                signatures: Vec::new(),
                failure_reason: Some(reason),
                partial_signatures: Vec::new(),
            },
        }
    }

    fn try_sign(&self, request: &SignatureRequest) -> Result<Vec<WitnessData>, String> {
        let bytes: Vec<u8> =
            bitcoin::hex::FromHex::from_hex(&request.tx_hex).map_err(|_| "tx_hex is not hex".to_owned())?;
        let tx: Transaction = deserialize(&bytes).map_err(|e| format!("tx_hex is not a transaction: {e}"))?;
        if request.input_indices.len() != request.amounts.len() {
            return Err("input_indices and amounts differ in length".into());
        }
        let federation = self.federation().map_err(|e| e.to_string())?;
        let secp = Secp256k1::new();
        let mut cache = SighashCache::new(&tx);
        let mut out = Vec::new();
        for (index, amount) in request.input_indices.iter().zip(&request.amounts) {
            let sighash = cache
                .p2wsh_signature_hash(
                    *index as usize,
                    &federation.witness_script,
                    Amount::from_sat(*amount),
                    EcdsaSighashType::All,
                )
                .map_err(|e| format!("input {index}: {e}"))?;
            for key in self.members.iter().take(self.threshold as usize) {
                let mut signature = secp.sign_ecdsa(&Message::from_digest(sighash.to_byte_array()), key);
                if self.faults.bad_signature {
                    let mut compact = signature.serialize_compact();
                    compact[40] ^= 1;
                    signature = secp256k1::ecdsa::Signature::from_compact(&compact).unwrap_or(signature);
                }
                let sig = ecdsa::Signature { signature, sighash_type: EcdsaSighashType::All };
                out.push(WitnessData {
                    signature: sig.serialize().to_vec(),
                    public_key: secp256k1::PublicKey::from_secret_key(&secp, key).serialize().to_vec(),
                    sig_type: SignatureType::Ecdsa as i32,
                });
            }
        }
        Ok(out)
    }

    fn respond(&self, request: StreamRequest) -> Option<StreamResponse> {
        let request_id = request.metadata.map(|m| m.request_id).unwrap_or_default();
        let payload = match request.payload? {
            stream_request::Payload::NodeRegistration(reg) => {
                stream_response::Payload::RegistrationAck(NodeRegistrationAck {
                    accepted: true,
                    assigned_node_id: reg.node_info.map(|n| n.public_key).unwrap_or_default(),
                    session_token: None,
                    expires_at: None,
                })
            }
            stream_request::Payload::SignatureRequest(req) => {
                stream_response::Payload::SignatureResponse(self.sign(&req))
            }
            stream_request::Payload::Heartbeat(hb) => stream_response::Payload::HeartbeatAck(HeartbeatAck {
                original_timestamp: hb.timestamp,
                ack_timestamp: hb.timestamp,
                sequence: hb.sequence,
            }),
            stream_request::Payload::PeginNotification(_) | stream_request::Payload::StatusUpdate(_) => {
                return None;
            }
        };
        Some(StreamResponse { metadata: Some(metadata(request_id)), payload: Some(payload) })
    }
}

fn metadata(request_id: String) -> ResponseMetadata {
    ResponseMetadata {
        request_id,
        timestamp: 0,
        node_id: "devnet-governance".into(),
        status: StatusCode::Success as i32,
        message: None,
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<StreamResponse, Status>> + Send>>;

/// The gRPC service over a [`DevGovernance`]; serve it with `GovernanceStreamServer::new(service)`.
#[derive(Debug, Clone)]
pub struct GovernanceService(Arc<DevGovernance>);

impl DevGovernance {
    /// The gRPC service answering with these keys and faults.
    pub fn into_service(self) -> GovernanceService {
        GovernanceService(Arc::new(self))
    }
}

#[tonic::async_trait]
impl GovernanceStream for GovernanceService {
    type StreamStream = ResponseStream;

    async fn stream(
        &self,
        request: Request<Streaming<StreamRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        let mut incoming = request.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let service = Arc::clone(&self.0);
        tokio::spawn(async move {
            // Announce the federation as soon as the node is connected.
            let update = StreamResponse {
                metadata: Some(metadata(String::new())),
                payload: Some(stream_response::Payload::FederationUpdate(service.federation_update())),
            };
            if tx.send(Ok(update)).await.is_err() {
                return;
            }
            let mut sent = 0usize;
            while let Some(message) = incoming.next().await {
                let Ok(message) = message else { return };
                let Some(response) = service.respond(message) else { continue };
                if let Some(delay) = service.faults.delay {
                    tokio::time::sleep(delay).await;
                }
                let copies = if service.faults.duplicate { 2 } else { 1 };
                for _ in 0..copies {
                    if tx.send(Ok(response.clone())).await.is_err() {
                        return;
                    }
                }
                sent += 1;
                if service.faults.drop_after.is_some_and(|n| sent >= n) {
                    tracing::info!(target: "alys::devnet::governance", sent, "fault injection: dropping the stream");
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn health(&self, _: Request<HealthRequest>) -> Result<Response<HealthResponse>, Status> {
        Ok(Response::new(HealthResponse {
            status: HealthStatus::Healthy as i32,
            version: env!("CARGO_PKG_VERSION").into(),
            uptime: 0,
            info: Default::default(),
        }))
    }

    async fn get_capabilities(
        &self,
        _: Request<CapabilitiesRequest>,
    ) -> Result<Response<CapabilitiesResponse>, Status> {
        Ok(Response::new(CapabilitiesResponse {
            protocol_versions: vec!["governance.v1".into()],
            features: vec!["p2wsh-multisig".into(), "federation-updates".into()],
            limits: Default::default(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devnet_governance_key_is_the_documented_one() {
        // etc/config/alys.toml names this key; the devnet keys are fixed so configs can.
        let service = DevGovernance::devnet(3, 2).unwrap();
        assert_eq!(
            bitcoin::hex::DisplayHex::to_lower_hex_string(&service.governance_key().serialize()),
            DEVNET_GOVERNANCE_KEY
        );
    }
}
