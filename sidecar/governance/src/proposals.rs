//! Proposals: emergency pauses and parameter changes decided by governance, each taking effect at an
//! effective block height.
//!
//! # What the node accepts
//!
//! A `ProposalNotification` whose `proposal_data` decodes as a `ProposalData` message and whose
//! `ProposalData.signature` is an ECDSA secp256k1 signature (compact or DER) by the governance key in the
//! node's configuration over `sha256(digest input)`:
//!
//! ```text
//! "alys-proposal-v1" ‖ len(proposal_id) (u32 BE) ‖ proposal_id ‖ proposal_type (u32 BE)
//!   ‖ effective_height (u64 BE) ‖ action
//! action = 0x01 ‖ scope (u32 BE) ‖ pause (u8) ‖ len(reason) (u32 BE) ‖ reason      (emergency)
//!        | 0x02 ‖ len(name) (u32 BE) ‖ name ‖ len(value) (u32 BE) ‖ value          (parameter)
//!        | 0x03 ‖ len(description) (u32 BE) ‖ description                          (record only)
//!        | 0x00                                                                     (none)
//! ```
//!
//! The proposal type must match the action: EMERGENCY_ACTION carries an `EmergencyAction`,
//! PARAMETER_CHANGE a `ParameterChange`; FEDERATION_CHANGE and UPGRADE are recorded and shown but have
//! no automatic effect (membership itself changes through signed `FederationUpdate`s). A proposal id is
//! accepted once; the same id with different content is refused.
//!
//! # Effect
//!
//! [`ProposalBook::state_at`] applies every proposal effective at or below a height to the defaults,
//! giving the [`RuntimeState`] at that height: whether peg-ins, peg-outs and block production are
//! paused, and the [`RuntimeParameters`]. The chain actor asks it for the height it is about to produce,
//! the peg-out source for the finalized height.
//!
//! # Order
//!
//! Proposals apply in order of **(effective height, proposal id)**: by height, and at the same height in
//! ascending byte order of their ids. Both are signed by governance, so every node sees the same
//! values. Arrival order would not do: two nodes may receive a pause and a resume at the same height in
//! different orders (and a node reads its stored proposals back by id after a restart), so a pair that
//! arrived as "pause, resume" could read "resume, pause" elsewhere, or after a restart. With this rule
//! the book's answer depends only on which proposals it holds, never on when they came. Governance
//! that wants a pause and a resume in a given order gives them different heights (or ids that sort in
//! that order).
//!
//! A proposal id is accepted once. Governance signing two different proposals under one id is a fault
//! of governance: the node keeps the first it accepted and refuses the other
//! ([`ProposalError::Conflicting`]), counted and logged.
//!
//! # Heights already passed
//!
//! A proposal effective at or below the node's head is refused ([`ProposalError::PastHeight`]): the
//! block at its height exists and was made without it. Governance re-issues it, under a new id, at a
//! height above the head. The rule, and how it holds while the head moves, are in the crate's
//! `decisions` module. A production pause at `p` stops the chain at `p - 1`; the resume that lifts it
//! is effective at `p` (the head + 1) with an id that sorts after the pause's.
//!
//! # Parameters governance may change
//!
//! | name | type | range | default | used by |
//! |---|---|---|---|---|
//! | `max_blocks_without_pow` | u64 | 1..=100000 | `[auxpow] max_blocks_without_pow` | block production: stop after this many blocks without AuxPow |
//! | `pegout_fee_rate_sat_vb` | u64 | 1..=10000 | 10 | peg-out transactions built by the bridge |
//! | `pegin_confirmations` | u32 | 1..=1000 | 6 (`[bitcoin] pegin_confirmations`) | Bitcoin confirmations a deposit needs before it is minted |
//! | `pegin_min_sats` | u64 | 1..=2100000000000000 | 10000 (`[bitcoin] pegin_min_sats`) | smallest deposit minted; smaller ones are rejected |
//! | `pegin_grace_blocks` | u64 | 0..=10000000 | 43200 (`[bitcoin] pegin_grace_blocks`) | Alys blocks after a rotation during which the previous federation's address still mints |
//! | `pegout_min_sats` | u64 | 546..=2100000000000000 | 1000000 (0.01 BTC, the bridge's minimum burn) | smallest burn the bridge pays; smaller ones are refunded |
//! | `pegout_fee_rate_cap_sat_vb` | u64 | 1..=10000 | 1000 | highest fee rate a proposed peg-out may pay (`pegout_fee_rate_sat_vb` is the floor) |
//! | `pegout_confirmations` | u32 | 1..=1000 | 6 (`[bitcoin] pegout_confirmations`) | Bitcoin confirmations after which a peg-out is done |
//! | `pegout_bump_after_blocks` | u64 | 1..=10000000 | 1800 (an hour of 2-second slots) | Alys blocks after its proposal an unconfirmed peg-out transaction is replaced by one at twice the fee rate (RBF) |
//!
//! Everything else (authorities, slot length, chain id, AuxPow difficulty rules, reward split) is a
//! consensus rule every node must agree on from genesis and is not changeable by proposal.

use std::collections::BTreeMap;

use alys_proto::governance::v1::{
    EmergencyScope, ProposalData, ProposalNotification, ProposalType, proposal_data,
};
use bitcoin::{
    hashes::{Hash, sha256},
    secp256k1::{self, Message, Secp256k1, ecdsa::Signature},
};
use prost::Message as _;
use serde::Serialize;

/// Domain tag of the signed digest.
const DOMAIN: &[u8] = b"alys-proposal-v1";

/// Why a proposal was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposalError {
    /// `proposal_data` is not a `ProposalData` message.
    #[error("proposal data does not decode: {0}")]
    Malformed(#[source] prost::DecodeError),
    /// The signature is malformed or does not verify against the governance key.
    #[error("proposal signature does not verify against the governance key")]
    BadSignature,
    /// The type and the action disagree, or the type is unspecified.
    #[error("proposal type {kind} does not match its action")]
    TypeMismatch {
        /// The proposal type's name.
        kind: String,
    },
    /// An emergency action without a scope.
    #[error("emergency action without a scope")]
    NoScope,
    /// A parameter the node does not allow to change.
    #[error("parameter {0:?} cannot be changed by proposal")]
    UnknownParameter(String),
    /// A value out of range or not a number.
    #[error("parameter {name}: {value:?} is not allowed ({allowed})")]
    BadValue {
        /// The parameter.
        name: String,
        /// The value given.
        value: String,
        /// What is allowed.
        allowed: String,
    },
    /// The proposal id was already accepted with different content.
    #[error("proposal {0} was already accepted with different content")]
    Conflicting(String),
    /// The proposal id is empty or longer than 128 bytes.
    #[error("proposal id must be 1..=128 bytes")]
    BadId,
    /// The proposal takes effect at a height whose block exists already (the rule is in the crate's
    /// `decisions` module): governance re-issues it at a height above the head.
    #[error(
        "proposal effective at {height} is not above the head {head} (the block there exists); re-issue \
         it at a height above {head}"
    )]
    PastHeight {
        /// The proposal's effective height.
        height: u64,
        /// The node's head when it was refused.
        head: u64,
    },
}

impl ProposalError {
    /// Why, in one word: the `reason` label of [`crate::metrics::REJECTED`].
    pub const fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::BadSignature => "bad_signature",
            Self::TypeMismatch { .. } => "type_mismatch",
            Self::NoScope => "no_scope",
            Self::UnknownParameter(_) => "unknown_parameter",
            Self::BadValue { .. } => "bad_value",
            Self::Conflicting(_) => "conflicting",
            Self::BadId => "bad_id",
            Self::PastHeight { .. } => "past_height",
        }
    }
}

/// A pausable part of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PauseScope {
    /// Minting deposits.
    Pegins,
    /// Paying burns.
    Pegouts,
    /// Producing blocks.
    BlockProduction,
}

/// The parameters governance may change (see the module docs for ranges and defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeParameters {
    /// Production stops after this many blocks without AuxPow.
    pub max_blocks_without_pow: u64,
    /// Fee rate of peg-out transactions, sat/vB.
    pub pegout_fee_rate_sat_vb: u64,
    /// Bitcoin confirmations a deposit needs.
    pub pegin_confirmations: u32,
    /// Smallest burn the bridge pays, in sats.
    pub pegout_min_sats: u64,
    /// Smallest deposit minted, in sats (smaller ones are rejected and recorded).
    pub pegin_min_sats: u64,
    /// Alys blocks after a federation rotation during which deposits to the previous federation's
    /// address are still minted.
    pub pegin_grace_blocks: u64,
    /// Highest fee rate a peg-out transaction may pay, sat/vB (`pegout_fee_rate_sat_vb` is the floor).
    pub pegout_fee_rate_cap_sat_vb: u64,
    /// Bitcoin confirmations after which a peg-out transaction is done.
    pub pegout_confirmations: u32,
    /// Alys blocks after its proposal after which an unconfirmed peg-out transaction is fee-bumped.
    pub pegout_bump_after_blocks: u64,
}

impl RuntimeParameters {
    /// The defaults, with `max_blocks_without_pow` from the node's `[auxpow]` section.
    pub const fn with_max_blocks_without_pow(max_blocks_without_pow: u64) -> Self {
        Self {
            max_blocks_without_pow,
            pegout_fee_rate_sat_vb: 10,
            pegin_confirmations: 6,
            pegout_min_sats: 1_000_000,
            pegin_min_sats: 10_000,
            pegin_grace_blocks: 43_200,
            pegout_fee_rate_cap_sat_vb: 1_000,
            pegout_confirmations: 6,
            pegout_bump_after_blocks: 1_800,
        }
    }

    /// Sets the peg-out defaults a chain starts with (before any proposal changes them).
    pub const fn with_pegout(mut self, fee_rate_sat_vb: u64, confirmations: u32) -> Self {
        self.pegout_fee_rate_sat_vb = fee_rate_sat_vb;
        self.pegout_confirmations = confirmations;
        self
    }

    /// Sets the peg-in defaults a chain starts with (before any proposal changes them).
    pub const fn with_pegin(mut self, confirmations: u32, min_sats: u64, grace_blocks: u64) -> Self {
        self.pegin_confirmations = confirmations;
        self.pegin_min_sats = min_sats;
        self.pegin_grace_blocks = grace_blocks;
        self
    }

    /// Names of the parameters that may change, for RPC and error messages.
    pub const NAMES: [&'static str; 9] = [
        "max_blocks_without_pow",
        "pegout_fee_rate_sat_vb",
        "pegin_confirmations",
        "pegout_min_sats",
        "pegin_min_sats",
        "pegin_grace_blocks",
        "pegout_fee_rate_cap_sat_vb",
        "pegout_confirmations",
        "pegout_bump_after_blocks",
    ];

    /// Applies `name = value` after checking name and range.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ProposalError> {
        let bad = |allowed: &str| ProposalError::BadValue {
            name: name.to_owned(),
            value: value.to_owned(),
            allowed: allowed.to_owned(),
        };
        let number = |lo: u64, hi: u64| -> Result<u64, ProposalError> {
            value
                .parse::<u64>()
                .ok()
                .filter(|v| (lo..=hi).contains(v))
                .ok_or_else(|| bad(&format!("{lo}..={hi}")))
        };
        match name {
            "max_blocks_without_pow" => self.max_blocks_without_pow = number(1, 100_000)?,
            "pegout_fee_rate_sat_vb" => self.pegout_fee_rate_sat_vb = number(1, 10_000)?,
            "pegin_confirmations" => {
                self.pegin_confirmations = u32::try_from(number(1, 1_000)?).map_err(|_| bad("1..=1000"))?;
            }
            "pegout_min_sats" => self.pegout_min_sats = number(546, 2_100_000_000_000_000)?,
            "pegin_min_sats" => self.pegin_min_sats = number(1, 2_100_000_000_000_000)?,
            "pegin_grace_blocks" => self.pegin_grace_blocks = number(0, 10_000_000)?,
            "pegout_fee_rate_cap_sat_vb" => self.pegout_fee_rate_cap_sat_vb = number(1, 10_000)?,
            "pegout_bump_after_blocks" => self.pegout_bump_after_blocks = number(1, 10_000_000)?,
            "pegout_confirmations" => {
                self.pegout_confirmations = u32::try_from(number(1, 1_000)?).map_err(|_| bad("1..=1000"))?;
            }
            other => return Err(ProposalError::UnknownParameter(other.to_owned())),
        }
        Ok(())
    }
}

/// What a proposal does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum ProposalAction {
    /// Pause or resume a part of the node.
    Emergency {
        /// What is paused or resumed.
        scope: PauseScope,
        /// True pauses, false resumes.
        pause: bool,
        /// Why, as governance stated it.
        reason: String,
    },
    /// Change one parameter.
    Parameter {
        /// The parameter.
        name: String,
        /// Its new value (checked).
        value: String,
    },
    /// Recorded only (federation change, upgrade).
    Record {
        /// Governance's description.
        description: String,
    },
}

/// A verified proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Proposal {
    /// Governance's id.
    pub id: String,
    /// `EMERGENCY_ACTION`, `PARAMETER_CHANGE`, `FEDERATION_CHANGE` or `UPGRADE`.
    pub proposal_type: String,
    /// The first height at which it holds.
    pub effective_height: u64,
    /// What it does.
    pub action: ProposalAction,
}

fn put_bytes(data: &mut Vec<u8>, bytes: &[u8]) {
    data.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    data.extend_from_slice(bytes);
}

/// The digest governance signs for a proposal (see the module docs).
pub fn proposal_digest(id: &str, proposal_type: i32, data: &ProposalData) -> [u8; 32] {
    let mut bytes = DOMAIN.to_vec();
    put_bytes(&mut bytes, id.as_bytes());
    bytes.extend_from_slice(&(proposal_type as u32).to_be_bytes());
    bytes.extend_from_slice(&data.effective_height.to_be_bytes());
    match &data.action {
        Some(proposal_data::Action::Emergency(e)) => {
            bytes.push(1);
            bytes.extend_from_slice(&(e.scope as u32).to_be_bytes());
            bytes.push(u8::from(e.pause));
            put_bytes(&mut bytes, e.reason.as_bytes());
        }
        Some(proposal_data::Action::Parameter(p)) => {
            bytes.push(2);
            put_bytes(&mut bytes, p.name.as_bytes());
            put_bytes(&mut bytes, p.value.as_bytes());
        }
        Some(proposal_data::Action::Description(d)) => {
            bytes.push(3);
            put_bytes(&mut bytes, d.as_bytes());
        }
        None => bytes.push(0),
    }
    sha256::Hash::hash(&bytes).to_byte_array()
}

impl Proposal {
    /// Verifies `notification` against the governance key and checks what it asks.
    pub fn from_notification(
        notification: &ProposalNotification,
        governance_key: &secp256k1::PublicKey,
    ) -> Result<Self, ProposalError> {
        if notification.proposal_id.is_empty() || notification.proposal_id.len() > 128 {
            return Err(ProposalError::BadId);
        }
        let data =
            ProposalData::decode(notification.proposal_data.as_slice()).map_err(ProposalError::Malformed)?;
        let signature = Signature::from_compact(&data.signature)
            .or_else(|_| Signature::from_der(&data.signature))
            .map_err(|_| ProposalError::BadSignature)?;
        let digest = proposal_digest(&notification.proposal_id, notification.proposal_type, &data);
        Secp256k1::verification_only()
            .verify_ecdsa(&Message::from_digest(digest), &signature, governance_key)
            .map_err(|_| ProposalError::BadSignature)?;
        let kind = ProposalType::try_from(notification.proposal_type).unwrap_or(ProposalType::Unspecified);
        let mismatch = || ProposalError::TypeMismatch { kind: kind.as_str_name().to_owned() };
        let action = match (kind, data.action) {
            (ProposalType::EmergencyAction, Some(proposal_data::Action::Emergency(e))) => {
                let scope = match EmergencyScope::try_from(e.scope) {
                    Ok(EmergencyScope::Pegins) => PauseScope::Pegins,
                    Ok(EmergencyScope::Pegouts) => PauseScope::Pegouts,
                    Ok(EmergencyScope::BlockProduction) => PauseScope::BlockProduction,
                    _ => return Err(ProposalError::NoScope),
                };
                ProposalAction::Emergency { scope, pause: e.pause, reason: e.reason }
            }
            (ProposalType::ParameterChange, Some(proposal_data::Action::Parameter(p))) => {
                // Check name and range now, so a refused change is refused on arrival, not at its height.
                RuntimeParameters::with_max_blocks_without_pow(1).set(&p.name, &p.value)?;
                ProposalAction::Parameter { name: p.name, value: p.value }
            }
            (
                ProposalType::FederationChange | ProposalType::Upgrade,
                Some(proposal_data::Action::Description(description)),
            ) => ProposalAction::Record { description },
            (ProposalType::FederationChange | ProposalType::Upgrade, None) => {
                ProposalAction::Record { description: String::new() }
            }
            _ => return Err(mismatch()),
        };
        let proposal_type = kind.as_str_name().trim_start_matches("PROPOSAL_TYPE_").to_owned();
        Ok(Self {
            id: notification.proposal_id.clone(),
            proposal_type,
            effective_height: data.effective_height,
            action,
        })
    }
}

/// The node's state at one height, after every proposal effective at or below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeState {
    /// Peg-ins are not minted.
    pub pegins_paused: bool,
    /// Burns are not handed to the bridge (they wait, nothing is lost).
    pub pegouts_paused: bool,
    /// This node produces no blocks.
    pub production_paused: bool,
    /// The parameters in force.
    pub parameters: RuntimeParameters,
}

impl RuntimeState {
    /// Whether `scope` is paused.
    pub const fn paused(&self, scope: PauseScope) -> bool {
        match scope {
            PauseScope::Pegins => self.pegins_paused,
            PauseScope::Pegouts => self.pegouts_paused,
            PauseScope::BlockProduction => self.production_paused,
        }
    }
}

/// Every accepted proposal, in the order they apply: (effective height, proposal id) (see the module
/// docs). Two books holding the same proposals are equal, whatever order they arrived in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposalBook {
    defaults: RuntimeParameters,
    /// Keyed by (effective height, proposal id).
    proposals: BTreeMap<(u64, String), Proposal>,
    /// The effective height of each accepted id, to find a reused id without a scan.
    heights: BTreeMap<String, u64>,
}

impl ProposalBook {
    /// An empty book over `defaults`.
    pub const fn new(defaults: RuntimeParameters) -> Self {
        Self { defaults, proposals: BTreeMap::new(), heights: BTreeMap::new() }
    }

    /// Whether [`Self::insert`] would add `proposal`, without adding it: `Ok(true)` if it is new,
    /// `Ok(false)` if the same proposal is already there, [`ProposalError::Conflicting`] if its id was
    /// accepted with other content. The stream actor checks, saves, and only then inserts.
    pub fn check(&self, proposal: &Proposal) -> Result<bool, ProposalError> {
        let Some(height) = self.heights.get(&proposal.id) else { return Ok(true) };
        match self.proposals.get(&(*height, proposal.id.clone())) {
            Some(existing) if existing == proposal => Ok(false),
            _ => Err(ProposalError::Conflicting(proposal.id.clone())),
        }
    }

    /// Adds a verified proposal; `Ok(false)` when the same proposal was already there.
    pub fn insert(&mut self, proposal: Proposal) -> Result<bool, ProposalError> {
        if !self.check(&proposal)? {
            return Ok(false);
        }
        self.heights.insert(proposal.id.clone(), proposal.effective_height);
        self.proposals.insert((proposal.effective_height, proposal.id.clone()), proposal);
        Ok(true)
    }

    /// Accepted proposals, in the order they apply: by effective height, then id.
    pub fn proposals(&self) -> impl Iterator<Item = &Proposal> {
        self.proposals.values()
    }

    /// The proposals whose effective height is `height`, in the order they apply there (by id).
    pub fn effective_at(&self, height: u64) -> impl Iterator<Item = &Proposal> {
        self.proposals
            .range((height, String::new())..)
            .take_while(move |((effective, _), _)| *effective == height)
            .map(|(_, proposal)| proposal)
    }

    /// The ids of the proposals that decide the state at `height`: for each pause scope and each
    /// parameter, the last one that applies at or below `height` (an earlier pause a later resume
    /// lifted is not in force); records are in force from their height on.
    pub fn in_force_at(&self, height: u64) -> std::collections::HashSet<&str> {
        let mut deciding: BTreeMap<String, &str> = BTreeMap::new();
        let mut records = std::collections::HashSet::new();
        let effective = self.proposals.iter().take_while(|((effective, _), _)| *effective <= height);
        for proposal in effective.map(|(_, p)| p) {
            match &proposal.action {
                ProposalAction::Emergency { scope, .. } => {
                    deciding.insert(format!("pause:{scope:?}"), proposal.id.as_str());
                }
                ProposalAction::Parameter { name, .. } => {
                    deciding.insert(format!("parameter:{name}"), proposal.id.as_str());
                }
                ProposalAction::Record { .. } => {
                    records.insert(proposal.id.as_str());
                }
            }
        }
        records.extend(deciding.into_values());
        records
    }

    /// The state at `height`.
    pub fn state_at(&self, height: u64) -> RuntimeState {
        let mut state = RuntimeState {
            pegins_paused: false,
            pegouts_paused: false,
            production_paused: false,
            parameters: self.defaults,
        };
        let effective = self.proposals.iter().take_while(|((effective, _), _)| *effective <= height);
        for proposal in effective.map(|(_, p)| p) {
            match &proposal.action {
                ProposalAction::Emergency { scope, pause, .. } => match scope {
                    PauseScope::Pegins => state.pegins_paused = *pause,
                    PauseScope::Pegouts => state.pegouts_paused = *pause,
                    PauseScope::BlockProduction => state.production_paused = *pause,
                },
                ProposalAction::Parameter { name, value } => {
                    // Checked on arrival; a failure here would leave the previous value in force.
                    let _ = state.parameters.set(name, value);
                }
                ProposalAction::Record { .. } => {}
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]
    use super::*;
    use crate::signing::{emergency_data, parameter_data, sign_proposal};

    fn keys() -> (secp256k1::SecretKey, secp256k1::PublicKey) {
        let sk = secp256k1::SecretKey::from_slice(&[0xa1; 32]).unwrap();
        (sk, secp256k1::PublicKey::from_secret_key(&Secp256k1::new(), &sk))
    }

    fn defaults() -> RuntimeParameters {
        RuntimeParameters::with_max_blocks_without_pow(10)
    }

    #[test]
    fn a_pause_lifted_by_a_resume_is_no_longer_in_force() {
        let (sk, pk) = keys();
        let mut book = ProposalBook::new(defaults());
        for (id, height, pause) in [("p1", 10, true), ("p2", 12, false)] {
            let signed = sign_proposal(
                id,
                ProposalType::EmergencyAction,
                emergency_data(height, EmergencyScope::BlockProduction, pause, "drill"),
                &sk,
            );
            book.insert(Proposal::from_notification(&signed, &pk).unwrap()).unwrap();
        }
        assert!(book.in_force_at(9).is_empty());
        assert_eq!(book.in_force_at(10), ["p1"].into_iter().collect());
        assert_eq!(book.in_force_at(12), ["p2"].into_iter().collect(), "the resume decides from 12");
    }

    #[test]
    fn pauses_and_resumes_take_effect_at_their_heights() {
        let (sk, pk) = keys();
        let mut book = ProposalBook::new(defaults());
        let pause = sign_proposal(
            "p1",
            ProposalType::EmergencyAction,
            emergency_data(10, EmergencyScope::BlockProduction, true, "incident"),
            &sk,
        );
        let resume = sign_proposal(
            "p2",
            ProposalType::EmergencyAction,
            emergency_data(20, EmergencyScope::BlockProduction, false, "fixed"),
            &sk,
        );
        // Arrival order does not matter: effective height does.
        assert!(book.insert(Proposal::from_notification(&resume, &pk).unwrap()).unwrap());
        assert!(book.insert(Proposal::from_notification(&pause, &pk).unwrap()).unwrap());
        assert!(!book.state_at(9).production_paused);
        assert!(book.state_at(10).production_paused);
        assert!(book.state_at(19).production_paused);
        assert!(!book.state_at(20).production_paused);
        assert!(!book.state_at(15).pegouts_paused && !book.state_at(15).pegins_paused);
        // The same proposal again is a no-op.
        assert!(!book.insert(Proposal::from_notification(&pause, &pk).unwrap()).unwrap());
    }

    #[test]
    fn parameter_changes_are_checked_and_applied_in_order() {
        let (sk, pk) = keys();
        let mut book = ProposalBook::new(defaults());
        for (id, height, value) in [("a", 5, "20"), ("b", 8, "30")] {
            let n = sign_proposal(
                id,
                ProposalType::ParameterChange,
                parameter_data(height, "max_blocks_without_pow", value),
                &sk,
            );
            book.insert(Proposal::from_notification(&n, &pk).unwrap()).unwrap();
        }
        assert_eq!(book.state_at(4).parameters.max_blocks_without_pow, 10);
        assert_eq!(book.state_at(5).parameters.max_blocks_without_pow, 20);
        assert_eq!(book.state_at(100).parameters.max_blocks_without_pow, 30);

        let unknown =
            sign_proposal("c", ProposalType::ParameterChange, parameter_data(1, "slot_ms", "1"), &sk);
        assert_eq!(
            Proposal::from_notification(&unknown, &pk),
            Err(ProposalError::UnknownParameter("slot_ms".into()))
        );
        for value in ["0", "-1", "ten", "100001", ""] {
            let n = sign_proposal(
                "d",
                ProposalType::ParameterChange,
                parameter_data(1, "max_blocks_without_pow", value),
                &sk,
            );
            assert!(
                matches!(Proposal::from_notification(&n, &pk), Err(ProposalError::BadValue { .. })),
                "{value}"
            );
        }
        let dust = sign_proposal(
            "e",
            ProposalType::ParameterChange,
            parameter_data(1, "pegout_min_sats", "545"),
            &sk,
        );
        assert!(matches!(Proposal::from_notification(&dust, &pk), Err(ProposalError::BadValue { .. })));
    }

    #[test]
    fn unsigned_forged_or_mismatched_proposals_are_refused() {
        let (sk, pk) = keys();
        let other = secp256k1::SecretKey::from_slice(&[7; 32]).unwrap();
        let data = emergency_data(1, EmergencyScope::Pegouts, true, "x");
        let forged = sign_proposal("f", ProposalType::EmergencyAction, data.clone(), &other);
        assert_eq!(Proposal::from_notification(&forged, &pk), Err(ProposalError::BadSignature));

        let mut unsigned = sign_proposal("u", ProposalType::EmergencyAction, data.clone(), &sk);
        let mut inner = ProposalData::decode(unsigned.proposal_data.as_slice()).unwrap();
        inner.signature.clear();
        unsigned.proposal_data = inner.encode_to_vec();
        assert_eq!(Proposal::from_notification(&unsigned, &pk), Err(ProposalError::BadSignature));

        // Changing the height after signing breaks the signature.
        let mut moved = sign_proposal("m", ProposalType::EmergencyAction, data.clone(), &sk);
        let mut inner = ProposalData::decode(moved.proposal_data.as_slice()).unwrap();
        inner.effective_height = 2;
        moved.proposal_data = inner.encode_to_vec();
        assert_eq!(Proposal::from_notification(&moved, &pk), Err(ProposalError::BadSignature));

        let mismatched = sign_proposal("t", ProposalType::ParameterChange, data, &sk);
        assert!(matches!(
            Proposal::from_notification(&mismatched, &pk),
            Err(ProposalError::TypeMismatch { .. })
        ));

        let garbage = ProposalNotification {
            proposal_id: "g".into(),
            proposal_type: ProposalType::EmergencyAction as i32,
            proposal_data: vec![0xff, 0xff, 0xff],
            voting_deadline: 0,
            required_votes: 0,
        };
        assert!(matches!(Proposal::from_notification(&garbage, &pk), Err(ProposalError::Malformed(_))));

        let no_scope = sign_proposal(
            "s",
            ProposalType::EmergencyAction,
            emergency_data(1, EmergencyScope::Unspecified, true, ""),
            &sk,
        );
        assert_eq!(Proposal::from_notification(&no_scope, &pk), Err(ProposalError::NoScope));
    }

    #[test]
    fn a_reused_id_with_other_content_is_refused() {
        let (sk, pk) = keys();
        let mut book = ProposalBook::new(defaults());
        let a = sign_proposal(
            "same",
            ProposalType::EmergencyAction,
            emergency_data(1, EmergencyScope::Pegins, true, ""),
            &sk,
        );
        let b = sign_proposal(
            "same",
            ProposalType::EmergencyAction,
            emergency_data(1, EmergencyScope::Pegins, false, ""),
            &sk,
        );
        book.insert(Proposal::from_notification(&a, &pk).unwrap()).unwrap();
        assert_eq!(
            book.insert(Proposal::from_notification(&b, &pk).unwrap()),
            Err(ProposalError::Conflicting("same".into()))
        );
        assert!(book.state_at(1).pegins_paused);
    }

    #[test]
    fn record_only_proposals_change_nothing() {
        let (sk, pk) = keys();
        let mut book = ProposalBook::new(defaults());
        let data = ProposalData {
            effective_height: 3,
            action: Some(proposal_data::Action::Description("v2 at 1000".into())),
            signature: Vec::new(),
        };
        let n = sign_proposal("up", ProposalType::Upgrade, data, &sk);
        let p = Proposal::from_notification(&n, &pk).unwrap();
        assert_eq!(p.proposal_type, "UPGRADE");
        book.insert(p).unwrap();
        assert_eq!(book.state_at(3), ProposalBook::new(defaults()).state_at(3));
        assert_eq!(book.proposals().count(), 1);
    }

    #[test]
    fn same_height_proposals_apply_by_id_whatever_the_arrival_order() {
        let (sk, pk) = keys();
        let proposal = |id: &str, pause: bool| {
            let data = emergency_data(5, EmergencyScope::Pegouts, pause, "");
            Proposal::from_notification(&sign_proposal(id, ProposalType::EmergencyAction, data, &sk), &pk)
                .unwrap()
        };
        let (pause, resume) = (proposal("a-pause", true), proposal("b-resume", false));
        let mut one = ProposalBook::new(defaults());
        one.insert(pause.clone()).unwrap();
        one.insert(resume.clone()).unwrap();
        let mut other = ProposalBook::new(defaults());
        other.insert(resume).unwrap();
        other.insert(pause).unwrap();
        assert_eq!(one, other);
        for height in 0..8 {
            assert_eq!(one.state_at(height), other.state_at(height), "height {height}");
        }
        // "b-resume" sorts after "a-pause", so it has the last word at height 5.
        assert!(!one.state_at(5).pegouts_paused);
        let ids: Vec<_> = one.proposals().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["a-pause", "b-resume"]);
    }

    #[test]
    fn check_says_what_insert_would_do_without_doing_it() {
        let (sk, pk) = keys();
        let mut book = ProposalBook::new(defaults());
        let data = emergency_data(2, EmergencyScope::Pegins, true, "");
        let p =
            Proposal::from_notification(&sign_proposal("c", ProposalType::EmergencyAction, data, &sk), &pk)
                .unwrap();
        assert_eq!(book.check(&p), Ok(true));
        assert_eq!(book, ProposalBook::new(defaults()), "check changes nothing");
        book.insert(p.clone()).unwrap();
        assert_eq!(book.check(&p), Ok(false));
        let mut moved = p;
        moved.effective_height = 3;
        assert_eq!(book.check(&moved), Err(ProposalError::Conflicting("c".into())));
        assert_eq!(book.insert(moved), Err(ProposalError::Conflicting("c".into())));
        assert!(book.state_at(2).pegins_paused);
    }

    #[test]
    fn the_last_height_is_reachable() {
        let mut book = ProposalBook::new(defaults());
        book.insert(Proposal {
            id: "max".into(),
            proposal_type: "EMERGENCY_ACTION".into(),
            effective_height: u64::MAX,
            action: ProposalAction::Emergency {
                scope: PauseScope::Pegins,
                pause: true,
                reason: String::new(),
            },
        })
        .unwrap();
        assert!(!book.state_at(u64::MAX - 1).pegins_paused);
        assert!(book.state_at(u64::MAX).pegins_paused);
    }
}
