//! Governance messages: the stream's responses, signed proposals and signed federation updates.

use alys_governance::{
    Federation, FederationError, FederationHistory, Proposal, ProposalAction, ProposalBook, ProposalError,
    RuntimeParameters, apply_response, proposal_digest, witness::script_keys, witness::verify_transaction,
};
use alys_proto::governance::v1::{
    FederationUpdate, ProposalData, ProposalNotification, SignatureResponse, StreamResponse,
    stream_response::Payload,
};
use bitcoin::{Address, secp256k1::Message as SecpMessage};
use prost::Message;

use crate::fixtures::{
    NETWORK, federation, governance_key, governance_secret, secp, sign_update, spent_outputs, unsigned_spend,
};

/// Asserts `decode(encode(message)) == message`.
fn round_trip<M: Message + Default + PartialEq>(message: &M, what: &str) {
    let again = M::decode(message.encode_to_vec().as_slice());
    assert!(again.as_ref() == Ok(message), "{what}: decode(encode(m)) != m");
}

/// A message of the governance stream (protobuf), routed as the stream actor routes it: a signature
/// response applied to the fixed spend of the fixed federation, a federation update and a proposal
/// checked as [`governance_federation`] and [`governance_proposal`] check them.
pub fn governance_stream(data: &[u8]) {
    let Ok(response) = StreamResponse::decode(data) else { return };
    round_trip(&response, "StreamResponse");
    match &response.payload {
        Some(Payload::SignatureResponse(signatures)) => check_signatures(signatures),
        Some(Payload::FederationUpdate(update)) => check_update(update),
        Some(Payload::ProposalNotification(notification)) => check_notification(notification),
        Some(Payload::RegistrationAck(_) | Payload::ErrorResponse(_) | Payload::HeartbeatAck(_)) | None => {}
    }
}

/// What governance answered to a request to sign the fixed two-input spend: witnesses assembled and
/// verified by the script interpreter. A transaction that comes back is the same transaction (same txid)
/// and verifies.
fn check_signatures(response: &SignatureResponse) {
    let tx = unsigned_spend();
    let spent = spent_outputs();
    let federation = federation();
    let Ok(signed) = apply_response(&tx, &spent, federation, response) else { return };
    assert_eq!(signed.compute_txid(), tx.compute_txid(), "signing changed the transaction");
    assert!(verify_transaction(&signed, &spent).is_ok(), "a returned witness does not verify");
    let items = federation.threshold as usize + 2;
    assert!(signed.input.iter().all(|input| input.witness.len() == items), "witness of the wrong shape");
}

/// A proposal notification (protobuf), against the fixed governance key as it comes, then re-signed
/// with that key.
pub fn governance_proposal(data: &[u8]) {
    let Ok(notification) = ProposalNotification::decode(data) else { return };
    round_trip(&notification, "ProposalNotification");
    check_notification(&notification);
}

fn check_notification(notification: &ProposalNotification) {
    let key = governance_key();
    if let Ok(proposal) = Proposal::from_notification(notification, &key) {
        check_proposal(&proposal);
    }
    // Re-signed by the governance key: everything behind the signature check.
    let Ok(mut data) = ProposalData::decode(notification.proposal_data.as_slice()) else { return };
    round_trip(&data, "ProposalData");
    let digest = proposal_digest(&notification.proposal_id, notification.proposal_type, &data);
    let signature = secp().sign_ecdsa(&SecpMessage::from_digest(digest), &governance_secret());
    data.signature = signature.serialize_compact().to_vec();
    let signed = ProposalNotification { proposal_data: data.encode_to_vec(), ..notification.clone() };
    match Proposal::from_notification(&signed, &key) {
        Ok(proposal) => {
            assert_eq!(proposal.id, signed.proposal_id);
            assert_eq!(proposal.effective_height, data.effective_height);
            check_proposal(&proposal);
        }
        Err(ProposalError::BadSignature) => panic!("a proposal signed by the governance key is refused"),
        Err(ProposalError::Malformed(e)) => panic!("re-encoded proposal data does not decode: {e}"),
        Err(_) => {}
    }
}

/// An accepted proposal enters the book once and changes the state from its height, as it says.
fn check_proposal(proposal: &Proposal) {
    let defaults = RuntimeParameters::with_max_blocks_without_pow(10);
    let mut book = ProposalBook::new(defaults);
    assert_eq!(book.insert(proposal.clone()), Ok(true));
    assert_eq!(book.insert(proposal.clone()), Ok(false), "the same proposal counted twice");
    let height = proposal.effective_height;
    let before = ProposalBook::new(defaults).state_at(height);
    if let Some(earlier) = height.checked_sub(1) {
        assert_eq!(book.state_at(earlier), before, "a proposal holds before its height");
    }
    let state = book.state_at(height);
    match &proposal.action {
        ProposalAction::Emergency { scope, pause, .. } => assert_eq!(state.paused(*scope), *pause),
        ProposalAction::Parameter { name, value } => {
            let mut expected = defaults;
            assert!(expected.set(name, value).is_ok(), "an accepted parameter change does not apply");
            assert_eq!(state.parameters, expected);
        }
        ProposalAction::Record { .. } => assert_eq!(state, before, "a record-only proposal changed state"),
    }
}

/// A federation update (protobuf), against the fixed governance key as it comes, then re-signed with
/// that key.
pub fn governance_federation(data: &[u8]) {
    let Ok(update) = FederationUpdate::decode(data) else { return };
    round_trip(&update, "FederationUpdate");
    check_update(&update);
}

fn check_update(update: &FederationUpdate) {
    let key = governance_key();
    if let Ok(federation) = Federation::from_update(update, &key, NETWORK) {
        check_federation(&federation, update);
    }
    let mut signed = update.clone();
    sign_update(&mut signed);
    match Federation::from_update(&signed, &key, NETWORK) {
        Ok(federation) => check_federation(&federation, &signed),
        Err(FederationError::BadSignature) => panic!("an update signed by the governance key is refused"),
        Err(_) => {}
    }
}

/// A federation is a valid multisig of its active members, in BIP67 order, at its P2WSH address.
fn check_federation(federation: &Federation, update: &FederationUpdate) {
    let members = federation.members.len();
    assert_eq!(federation.effective_height, update.effective_height);
    assert!(federation.threshold >= 1 && federation.threshold as usize <= members);
    assert!(members <= alys_governance::federation::MAX_MEMBERS);
    assert_eq!(members, update.members.iter().filter(|m| m.active).count());
    let keys: Vec<_> = federation.members.iter().map(|m| m.key).collect();
    assert!(keys.windows(2).all(|w| matches!(w, [a, b] if a.to_bytes() < b.to_bytes())), "not BIP67");
    assert_eq!(script_keys(&federation.witness_script), keys, "the script holds other keys");
    assert_eq!(federation.address, Address::p2wsh(&federation.witness_script, NETWORK));
    let mut history = FederationHistory::default();
    assert!(history.insert(federation.clone()).is_ok());
    assert_eq!(history.at(federation.effective_height), Some(federation));
}
