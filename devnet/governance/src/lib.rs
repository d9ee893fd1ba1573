//! A governance service for Alys devnets and tests, speaking `governance.v1` like the real HSM-backed
//! service: it holds the federation's software secp256k1 keys (the node never does), signs P2WSH
//! multisig inputs with real BIP143 sighashes, announces federations with updates signed by a
//! governance key, rotates membership and issues signed proposals on request (its admin JSON-RPC,
//! [`admin`]), requires a bearer token when given one, serves TLS when given a certificate, and injects
//! faults (drop the stream, delay, duplicate or reorder responses, bad signatures).
//!
//! # Effective heights
//!
//! The service issues what it is asked for and does not know the nodes' heads: a node refuses a
//! proposal or a rotation effective at or below its head (the block there exists), logs it at WARN
//! and counts it in `alys_governance_rejected_total{reason="past_height"}`. Issue decisions a few
//! blocks above the head (read it with `alys_syncStatus`), and re-issue a refused one higher.
//!
//! # Signature responses
//!
//! For each requested input, in request order, and for each federation it knows (newest first, so
//! deposits to a previous federation's address stay spendable), `SignatureResponse.signatures` holds
//! `threshold` signatures (DER + sighash byte) with the signer's compressed key. The node keeps those
//! that verify against its own sighash and witness script. A request id is signed once: a repeated id
//! (the node re-sends pending requests after a reconnect) gets the first answer again.

pub mod admin;
mod service;

use std::time::Duration;

use alys_governance::{
    Federation,
    signing::{emergency_data, parameter_data, sign_proposal},
    update_digest,
};
use alys_proto::governance::v1::{
    EmergencyScope, FederationConfig, FederationMember, FederationUpdate, ProposalNotification, ProposalType,
    SignatureRequest, SignatureResponse, SignatureStatus, SignatureType, WitnessData,
};
use bitcoin::{
    Amount, Network, Transaction,
    consensus::deserialize,
    ecdsa,
    hashes::Hash,
    secp256k1::{self, Message, Secp256k1, SecretKey},
    sighash::{EcdsaSighashType, SighashCache},
};
pub use service::{GovernanceService, serve};

/// The devnet governance public key (compressed, hex), from the fixed devnet seed. Public: devnets only.
pub const DEVNET_GOVERNANCE_KEY: &str = "03ab5d2e79cfd621b1b027ffb24e2453ed7fb571ba9a841ff0e2473466cabd168d";

/// The devnet bearer token (`etc/keys/devnet-governance.token`). Public: devnets only.
pub const DEVNET_TOKEN: &str = "devnet-governance-token-public";

/// Faults the service injects, for tests of the node's stream handling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Faults {
    /// Close the stream after this many responses.
    pub drop_after: Option<usize>,
    /// Wait this long before each response, in milliseconds.
    pub delay_ms: Option<u64>,
    /// Send every response twice.
    pub duplicate: bool,
    /// Hold each response until the next one (at most 200 ms) and send them swapped.
    pub reorder: bool,
    /// Corrupt every signature it returns.
    pub bad_signature: bool,
    /// Once: sign the next signature request, then drop the stream before answering (the node must
    /// re-send it after reconnecting and get the same answer, signed once). Cleared when it fires.
    pub drop_on_next_signature: bool,
}

impl Faults {
    fn delay(&self) -> Option<Duration> {
        self.delay_ms.map(Duration::from_millis)
    }
}

/// Why the service refused an admin request or could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum GovernanceError {
    /// The federation it would announce is not a valid multisig.
    #[error("federation: {0}")]
    Federation(#[from] alys_governance::FederationError),
    /// A key could not be made.
    #[error("key: {0}")]
    Key(#[from] secp256k1::Error),
    /// A rotation's effective height is not after the current federation's.
    #[error("effective height {0} is not after the latest federation's {1}")]
    NotAfter(u64, u64),
    /// A proposal the node would refuse.
    #[error("proposal: {0}")]
    Proposal(#[from] alys_governance::ProposalError),
}

/// One federation the service holds keys for.
#[derive(Debug, Clone)]
struct Members {
    keys: Vec<SecretKey>,
    threshold: u32,
    effective_height: u64,
}

/// The service's keys and behaviour: federations (oldest first), the governance key, proposals issued,
/// faults.
#[derive(Debug, Clone)]
pub struct DevGovernance {
    federations: Vec<Members>,
    governance: SecretKey,
    network: Network,
    faults: Faults,
    bearer_token: Option<String>,
    proposals: Vec<ProposalNotification>,
}

impl DevGovernance {
    /// A federation of `members` signing `threshold`-of-n, announced by `governance`'s key.
    pub fn new(members: Vec<SecretKey>, threshold: u32, governance: SecretKey, network: Network) -> Self {
        Self {
            federations: vec![Members { keys: members, threshold, effective_height: 0 }],
            governance,
            network,
            faults: Faults::default(),
            bearer_token: None,
            proposals: Vec::new(),
        }
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

    /// Requires `authorization: Bearer <token>` on every call.
    pub fn with_bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// Announces the (first) federation from `height` on.
    pub fn with_effective_height(mut self, height: u64) -> Self {
        if let Some(first) = self.federations.first_mut() {
            first.effective_height = height;
        }
        self
    }

    /// The faults in effect.
    pub const fn faults(&self) -> Faults {
        self.faults
    }

    /// The governance public key a node must be configured with.
    pub fn governance_key(&self) -> secp256k1::PublicKey {
        secp256k1::PublicKey::from_secret_key(&Secp256k1::new(), &self.governance)
    }

    fn update_for(&self, members: &Members) -> FederationUpdate {
        let secp = Secp256k1::new();
        let list = members
            .keys
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
            effective_height: members.effective_height,
            update_signature: Vec::new(),
            config: Some(FederationConfig {
                signature_threshold: members.threshold,
                member_count: list.len() as u32,
                parameters: Default::default(),
            }),
            members: list,
        };
        let sig = secp.sign_ecdsa(&Message::from_digest(update_digest(&update)), &self.governance);
        update.update_signature = sig.serialize_compact().to_vec();
        update
    }

    /// The signed update of the latest federation.
    pub fn federation_update(&self) -> FederationUpdate {
        self.federation_updates().pop().unwrap_or_default()
    }

    /// Signed updates of every federation, oldest first (what a connecting node is sent).
    pub fn federation_updates(&self) -> Vec<FederationUpdate> {
        self.federations.iter().map(|m| self.update_for(m)).collect()
    }

    /// The latest federation (witness script, address).
    pub fn federation(&self) -> Result<Federation, GovernanceError> {
        Ok(Federation::from_update(&self.federation_update(), &self.governance_key(), self.network)?)
    }

    /// Every federation, newest first.
    fn federations_newest_first(&self) -> Result<Vec<(Federation, &Members)>, GovernanceError> {
        self.federations
            .iter()
            .rev()
            .map(|m| {
                Ok((Federation::from_update(&self.update_for(m), &self.governance_key(), self.network)?, m))
            })
            .collect()
    }

    /// Replaces the federation from `effective_height` on with `n` new members (deterministic devnet
    /// keys, distinct from every earlier federation's) signing `threshold`-of-n; returns the new
    /// federation. The old keys are kept so deposits to the previous address stay spendable.
    pub fn rotate(
        &mut self,
        n: u8,
        threshold: u32,
        effective_height: u64,
    ) -> Result<Federation, GovernanceError> {
        let latest = self.federations.last().map_or(0, |m| m.effective_height);
        if effective_height <= latest && !self.federations.is_empty() {
            return Err(GovernanceError::NotAfter(effective_height, latest));
        }
        let generation = self.federations.len() as u8;
        let keys = (1..=n)
            .map(|i| {
                let mut seed = [i; 32];
                seed[0] = 0x80 | generation; // never a first-generation seed ([i; 32], i < 0x80)
                SecretKey::from_slice(&seed)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let candidate = Members { keys, threshold, effective_height };
        // Refuse what the node would refuse, before announcing it.
        let federation =
            Federation::from_update(&self.update_for(&candidate), &self.governance_key(), self.network)?;
        self.federations.push(candidate);
        Ok(federation)
    }

    /// Issues a signed EMERGENCY_ACTION proposal pausing or resuming `scope` from `effective_height`.
    pub fn propose_emergency(
        &mut self,
        scope: EmergencyScope,
        pause: bool,
        effective_height: u64,
        reason: &str,
    ) -> Result<ProposalNotification, GovernanceError> {
        let id = self.next_proposal_id();
        let data = emergency_data(effective_height, scope, pause, reason);
        self.record(sign_proposal(&id, ProposalType::EmergencyAction, data, &self.governance))
    }

    /// Issues a signed PARAMETER_CHANGE proposal setting `name` to `value` from `effective_height`.
    pub fn propose_parameter(
        &mut self,
        name: &str,
        value: &str,
        effective_height: u64,
    ) -> Result<ProposalNotification, GovernanceError> {
        let id = self.next_proposal_id();
        let data = parameter_data(effective_height, name, value);
        self.record(sign_proposal(&id, ProposalType::ParameterChange, data, &self.governance))
    }

    /// `proposal-000001`, `proposal-000002`, …: zero-padded so the ids sort in issue order, and of two
    /// proposals at one height the later one has the last word (the node applies them by id there).
    fn next_proposal_id(&self) -> String {
        format!("proposal-{:06}", self.proposals.len() + 1)
    }

    fn record(
        &mut self,
        notification: ProposalNotification,
    ) -> Result<ProposalNotification, GovernanceError> {
        alys_governance::Proposal::from_notification(&notification, &self.governance_key())?;
        self.proposals.push(notification.clone());
        Ok(notification)
    }

    /// Proposals issued, oldest first.
    pub fn proposals(&self) -> &[ProposalNotification] {
        &self.proposals
    }

    /// Signs the requested inputs with `threshold` keys of every federation (BIP143, SIGHASH_ALL).
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
        let federations = self.federations_newest_first().map_err(|e| e.to_string())?;
        let secp = Secp256k1::new();
        let mut cache = SighashCache::new(&tx);
        let mut out = Vec::new();
        for (index, amount) in request.input_indices.iter().zip(&request.amounts) {
            for (federation, members) in &federations {
                let sighash = cache
                    .p2wsh_signature_hash(
                        *index as usize,
                        &federation.witness_script,
                        Amount::from_sat(*amount),
                        EcdsaSighashType::All,
                    )
                    .map_err(|e| format!("input {index}: {e}"))?;
                for key in members.keys.iter().take(members.threshold as usize) {
                    let mut signature = secp.sign_ecdsa(&Message::from_digest(sighash.to_byte_array()), key);
                    if self.faults.bad_signature {
                        let mut compact = signature.serialize_compact();
                        if let Some(byte) = compact.get_mut(40) {
                            *byte ^= 1;
                        }
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
        }
        Ok(out)
    }
}

/// A one-input spend of 0.02 BTC held at `federation`'s address (to an `OP_RETURN`), and the output it
/// spends: what tests and benchmarks ask the service to sign.
pub fn example_spend(federation: &Federation) -> (Transaction, bitcoin::TxOut) {
    use bitcoin::{
        OutPoint, ScriptBuf, Sequence, TxIn, TxOut, Txid, Witness, absolute::LockTime, transaction,
    };
    let spent =
        TxOut { value: Amount::from_sat(2_000_000), script_pubkey: federation.address.script_pubkey() };
    let tx = Transaction {
        version: transaction::Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint { txid: Txid::from_byte_array([3; 32]), vout: 1 },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value: Amount::from_sat(1_990_000),
            script_pubkey: ScriptBuf::new_op_return([7]),
        }],
    };
    (tx, spent)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]
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

    #[test]
    fn rotation_gives_new_keys_and_refuses_going_back() {
        let mut service = DevGovernance::devnet(3, 2).unwrap();
        let first = service.federation().unwrap();
        let second = service.rotate(4, 3, 10).unwrap();
        assert_ne!(first.address, second.address);
        assert_eq!(second.threshold, 3);
        assert!(second.members.iter().all(|m| !first.members.iter().any(|f| f.key == m.key)));
        assert!(matches!(service.rotate(3, 2, 10), Err(GovernanceError::NotAfter(10, 10))));
        assert!(service.rotate(3, 4, 11).is_err(), "4-of-3 is refused before it is announced");
        assert_eq!(service.federation_updates().len(), 2);
    }

    #[test]
    fn proposals_are_checked_before_they_are_issued() {
        let mut service = DevGovernance::devnet(3, 2).unwrap();
        service.propose_emergency(EmergencyScope::Pegouts, true, 5, "test").unwrap();
        service.propose_parameter("pegin_confirmations", "3", 6).unwrap();
        assert!(service.propose_parameter("chain_id", "1", 6).is_err());
        assert_eq!(service.proposals().len(), 2);
    }
}
