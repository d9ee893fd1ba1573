//! Governance: the federation that holds the peg-in funds, as the external governance service
//! announces it.
//!
//! The node never holds a Bitcoin key. It learns the federation's members and threshold from signed
//! `FederationUpdate` messages, derives the P2WSH multisig deposit address from them, and keeps the
//! history by effective height so deposits to the previous address are still recognised.

pub mod federation;
pub mod proposals;
pub mod signer;
pub mod stream;
pub mod witness;

pub use federation::{Federation, FederationError, FederationHistory, FederationMemberKey, update_digest};
pub use proposals::{
    PauseScope, Proposal, ProposalAction, ProposalBook, ProposalError, RuntimeParameters, RuntimeState,
    RuntimeView,
};
pub use signer::{SignError, apply_response, sign_transaction, signature_request};
