//! Signing proposals as governance does: for governance services (the devnet's) and tests. Not part
//! of the node, which only verifies (feature `signing`).

use alys_proto::governance::v1::{
    EmergencyAction, EmergencyScope, ParameterChange, ProposalData, ProposalNotification, ProposalType,
    proposal_data,
};
use bitcoin::secp256k1::{self, Message, Secp256k1};
use prost::Message as _;

use crate::proposals::proposal_digest;

/// Builds a signed notification (used by governance services and tests; the node only verifies).
pub fn sign_proposal(
    id: &str,
    proposal_type: ProposalType,
    mut data: ProposalData,
    governance: &secp256k1::SecretKey,
) -> ProposalNotification {
    let digest = proposal_digest(id, proposal_type as i32, &data);
    let signature = Secp256k1::signing_only().sign_ecdsa(&Message::from_digest(digest), governance);
    data.signature = signature.serialize_compact().to_vec();
    ProposalNotification {
        proposal_id: id.to_owned(),
        proposal_type: proposal_type as i32,
        proposal_data: data.encode_to_vec(),
        voting_deadline: 0,
        required_votes: 0,
    }
}

/// An emergency action as `ProposalData` (to sign with [`sign_proposal`]).
pub fn emergency_data(
    effective_height: u64,
    scope: EmergencyScope,
    pause: bool,
    reason: &str,
) -> ProposalData {
    ProposalData {
        effective_height,
        action: Some(proposal_data::Action::Emergency(EmergencyAction {
            scope: scope as i32,
            pause,
            reason: reason.to_owned(),
        })),
        signature: Vec::new(),
    }
}

/// A parameter change as `ProposalData` (to sign with [`sign_proposal`]).
pub fn parameter_data(effective_height: u64, name: &str, value: &str) -> ProposalData {
    ProposalData {
        effective_height,
        action: Some(proposal_data::Action::Parameter(ParameterChange {
            name: name.to_owned(),
            value: value.to_owned(),
        })),
        signature: Vec::new(),
    }
}
