//! Governance for the Alys node: the federation that holds the peg-in funds, the decisions governance
//! takes, and getting federation spends signed, all through one long-lived stream to the external
//! governance service (an HSM-backed service the node trusts only as far as its signatures verify).
//!
//! # The federation
//!
//! The node never holds a Bitcoin key. It learns the federation's members and threshold from signed
//! `FederationUpdate` messages ([`federation`]), derives the P2WSH multisig deposit address from them,
//! and keeps the history by effective height, so deposits to the previous address are still recognised
//! after a rotation.
//!
//! # Proposals
//!
//! Governance pauses and resumes parts of the node (peg-ins, peg-outs, block production) and changes a
//! few parameters, each from an effective height, by signed `ProposalNotification`s ([`proposals`]). The
//! node verifies the signature against the configured governance key and applies accepted proposals in
//! order of (effective height, proposal id), an order every node sees the same whatever the arrival
//! order; every part of the node reads them through a [`RuntimeView`].
//!
//! # Only heights above the head
//!
//! A decision governs the block at its effective height and those after, so one whose height is at
//! or below the node's head (the block there exists) is refused, counted and logged, never stored:
//! governance re-issues it at a height above the head. [`decisions`] has the rule, how it holds while
//! the head moves, and the log line each decision gets when its first block is committed.
//!
//! # Signatures
//!
//! To spend federation outputs the node sends a `SignatureRequest` ([`signer`]), stored durably and
//! re-sent with the same id until answered; the answer is stored in its place and kept until a consumer
//! takes it, so an answer that comes late or after a restart is not lost. The node assembles the
//! multisig witnesses from the answer and verifies every input with Bitcoin's script interpreter
//! ([`witness`]) before the transaction is used (DESIGN invariant 4).
//!
//! # Durability
//!
//! Everything governance tells the node is verified, saved in one transaction, and only then applied
//! and published; a failed save is not applied and is fetched again on the next session. [`store`]
//! has the rule, the consumer's take of a signature answer, and the crash points of each commit.
//!
//! # The stream
//!
//! [`stream`] runs the StreamActor: TLS (or plaintext on loopback), a bearer token, registration,
//! heartbeats, reconnects with backoff, and the routing of responses to requests. Its metrics are named
//! in [`metrics`].

pub mod decisions;
pub mod federation;
pub mod metrics;
pub mod proposals;
pub mod signer;
#[cfg(any(test, feature = "signing"))]
pub mod signing;
pub mod store;
pub mod stream;
pub mod witness;

pub use decisions::{Decision, Decisions, RuntimeView};
pub use federation::{Federation, FederationError, FederationHistory, FederationMemberKey, update_digest};
pub use proposals::{
    PauseScope, Proposal, ProposalAction, ProposalBook, ProposalError, RuntimeParameters, RuntimeState,
    proposal_digest,
};
pub use signer::{SignError, apply_response, sign_transaction, signature_request};
