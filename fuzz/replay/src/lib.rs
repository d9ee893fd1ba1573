//! The bodies of the Alys fuzz targets: one function per decoder of outside bytes, each taking the raw
//! bytes an attacker controls and asserting what must hold of whatever decodes.
//!
//! The cargo-fuzz binaries in `fuzz/fuzz_targets/` are one line each, calling the function of the same
//! name here, and this crate's `replay` test runs every file of the committed corpus
//! (`fuzz/corpus/<target>/`) through the same functions on stable Rust, as part of
//! `cargo test --workspace`. A target panics only on a bug: a decoder that panics (DESIGN invariant 6),
//! or a property that does not hold, such as `decode(encode(x)) != x`.
//!
//! | target | outside bytes | what runs |
//! |---|---|---|
//! | [`auxpow`](targets::auxpow) | a serialized CAuxPow (`submitauxblock`, a block's proof) | `decode_auxpow`, `check` against fixed hashes and targets |
//! | [`auxpow_header`](targets::auxpow_header) | a consensus header's `auxpow` field | `AuxPowHeader::decode`, then the proof it carries checked for its own hash |
//! | [`consensus_header`](targets::consensus_header) | a consensus header (RLP) | `ConsensusHeader::decode`, its proof header, its peg-in withdrawals |
//! | [`signed_block`](targets::signed_block) | a consensus block from a peer (RLP) | `SignedBlock::decode`, approvals, `decode_execution_block`, the Engine API payload it becomes |
//! | [`burn`](targets::burn) | a stored burn record (RLP) | `Burn::decode` |
//! | [`feed_event`](targets::feed_event) | a burn-feed message (protobuf) | `FeedEvent` and `HeadResponse` decode and conversion |
//! | [`burn_log`](targets::burn_log) | one `eth_getLogs` entry from geth (JSON) | `BurnExtractor::burn_from_rpc_log` |
//! | [`governance_stream`](targets::governance_stream) | a governance stream message (protobuf) | `StreamResponse` decode, each payload as the stream routes it |
//! | [`governance_proposal`](targets::governance_proposal) | a `ProposalNotification` (protobuf) | `Proposal::from_notification`, the proposal book |
//! | [`governance_federation`](targets::governance_federation) | a `FederationUpdate` (protobuf) | `Federation::from_update` |
//! | [`engine_payload`](targets::engine_payload) | an Engine API request body (JSON) | the embedded engine's Engine API server, in process |
//! | [`engine_jwt`](targets::engine_jwt) | an Engine API `Authorization` header | the JWT layer in front of that server |
//! | [`pegin`](targets::pegin) | a Bitcoin transaction from a block (consensus encoding), or a peg-in claim (RLP) | `scan_transaction`, `scan_block` against fixed federation scripts; `PegInClaim` decode |
//! | [`gossip`](targets::gossip) | a gossip payload of the approvals or evidence topic (RLP) | `Approval` / `EquivocationEvidence` decode, `verify_approval` / `verify_evidence` against a fixed 3-authority Aura |
//! | [`sync_message`](targets::sync_message) | a frame body of the sync request/response protocol | `decode_request` / `decode_response`, canonical round trip |
//!
//! Signed messages (proposals, federation updates, approvals, equivocation evidence) are fuzzed twice per
//! input: as they come, against the fixed governance key or authority keys, and re-signed by this crate
//! with that key's secret, so the fuzzer also reaches everything behind the signature check.

mod auxpow;
mod block;
mod burns;
mod engine;
pub mod fixtures;
mod governance;
mod network;
mod pegin;

/// The fuzz targets, by name.
pub mod targets {
    pub use crate::{
        auxpow::{auxpow, auxpow_header},
        block::{consensus_header, signed_block},
        burns::{burn, burn_log, feed_event},
        engine::{engine_jwt, engine_payload},
        governance::{governance_federation, governance_proposal, governance_stream},
        network::{gossip, sync_message},
        pegin::pegin,
    };
}

pub use auxpow::encode_auxpow;

/// A fuzz target: its name (the binary in `fuzz/fuzz_targets/` and the corpus directory) and its body.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The target's name.
    pub name: &'static str,
    /// The function the fuzzer and the replay call with each input.
    pub run: fn(&[u8]),
}

/// Every fuzz target.
pub const TARGETS: &[Target] = &[
    Target { name: "auxpow", run: targets::auxpow },
    Target { name: "auxpow_header", run: targets::auxpow_header },
    Target { name: "consensus_header", run: targets::consensus_header },
    Target { name: "signed_block", run: targets::signed_block },
    Target { name: "burn", run: targets::burn },
    Target { name: "feed_event", run: targets::feed_event },
    Target { name: "burn_log", run: targets::burn_log },
    Target { name: "governance_stream", run: targets::governance_stream },
    Target { name: "governance_proposal", run: targets::governance_proposal },
    Target { name: "governance_federation", run: targets::governance_federation },
    Target { name: "engine_payload", run: targets::engine_payload },
    Target { name: "engine_jwt", run: targets::engine_jwt },
    Target { name: "pegin", run: targets::pegin },
    Target { name: "gossip", run: targets::gossip },
    Target { name: "sync_message", run: targets::sync_message },
];
