//! Federation membership: the signed update, the multisig it defines, and the history by height.
//!
//! # What governance signs
//!
//! `update_signature` is an ECDSA secp256k1 signature (64-byte compact or DER) by the governance key in
//! the node's configuration over `sha256(digest input)`, where the digest input is
//!
//! ```text
//! "alys-federation-v1" ‖ update_type (u32 BE) ‖ effective_height (u64 BE) ‖ threshold (u32 BE)
//!   ‖ for each member, in message order:
//!       len(member_id) (u32 BE) ‖ member_id ‖ len(public_key) (u32 BE) ‖ public_key ‖ weight (u32 BE) ‖ active (u8)
//! ```
//!
//! A fixed, length-prefixed layout rather than the protobuf bytes, because protobuf encodings are not
//! canonical (maps, unknown fields) and a signature must cover exactly one byte string.
//!
//! # The deposit address
//!
//! The active members' compressed public keys, sorted as BIP67 sorts them (lexicographically by their
//! serialization), form `OP_m <keys…> OP_n OP_CHECKMULTISIG` with `m` the update's threshold; the deposit
//! address is that script's P2WSH. The same members in any order give the same address.
//!
//! # Heights already passed
//!
//! A rotation effective at or below the node's head is refused ([`FederationError::PastHeight`]): the
//! blocks from its height on exist, and they were made while the previous federation held the
//! deposits. The first federation a node learns is accepted at any height. The rule is in the crate's
//! `decisions` module.

use std::collections::BTreeMap;

use alys_proto::governance::v1::FederationUpdate;
use bitcoin::{
    Address, Network, PublicKey, ScriptBuf,
    hashes::{Hash, sha256},
    opcodes::all::OP_CHECKMULTISIG,
    script::Builder,
    secp256k1::{self, Message, Secp256k1, ecdsa::Signature},
};

/// Domain tag of the signed digest.
const DOMAIN: &[u8] = b"alys-federation-v1";
/// The most keys a P2WSH `CHECKMULTISIG` federation may have (standardness limit).
pub const MAX_MEMBERS: usize = 20;

/// Why a federation update was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FederationError {
    /// The signature is malformed or does not verify against the governance key.
    #[error("federation update signature does not verify against the governance key")]
    BadSignature,
    /// A member's public key is not a valid compressed secp256k1 key.
    #[error("member {0}: invalid compressed public key")]
    BadMemberKey(String),
    /// The same key appears twice.
    #[error("duplicate member key")]
    DuplicateKey,
    /// The threshold is zero or above the number of active members, or there are too many members.
    #[error(
        "threshold {threshold} of {members} active members is not a valid multisig (at most {MAX_MEMBERS})"
    )]
    BadThreshold {
        /// The requested threshold.
        threshold: u32,
        /// Active members.
        members: usize,
    },
    /// The update takes effect at or below a height already covered by a later federation.
    #[error("update effective at {0} is not after the latest federation")]
    Stale(u64),
    /// The update takes effect at a height whose block exists already (the rule is in the crate's
    /// `decisions` module): governance re-issues it at a height above the head.
    #[error(
        "federation update effective at {height} is not above the head {head} (the block there exists); \
         re-issue it at a height above {head}"
    )]
    PastHeight {
        /// The update's effective height.
        height: u64,
        /// The node's head when it was refused.
        head: u64,
    },
}

impl FederationError {
    /// Why, in one word: the `reason` label of [`crate::metrics::REJECTED`].
    pub const fn reason(&self) -> &'static str {
        match self {
            Self::BadSignature => "bad_signature",
            Self::BadMemberKey(_) => "bad_member_key",
            Self::DuplicateKey => "duplicate_key",
            Self::BadThreshold { .. } => "bad_threshold",
            Self::Stale(_) => "stale",
            Self::PastHeight { .. } => "past_height",
        }
    }
}

/// One member's key, as it enters the multisig.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FederationMemberKey {
    /// The member id from governance.
    pub member_id: String,
    /// The compressed public key.
    pub key: PublicKey,
    /// Its weight (recorded; CHECKMULTISIG counts each key once).
    pub weight: u32,
}

/// A federation: its members, threshold, multisig script and deposit address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Federation {
    /// The height from which this federation holds deposits.
    pub effective_height: u64,
    /// Signatures required.
    pub threshold: u32,
    /// Active members, BIP67-sorted by key.
    pub members: Vec<FederationMemberKey>,
    /// `OP_m <keys> OP_n OP_CHECKMULTISIG`.
    pub witness_script: ScriptBuf,
    /// The P2WSH deposit address.
    pub address: Address,
}

/// The digest governance signs for `update` (see the module docs).
pub fn update_digest(update: &FederationUpdate) -> [u8; 32] {
    let mut data = DOMAIN.to_vec();
    data.extend_from_slice(&(update.update_type as u32).to_be_bytes());
    data.extend_from_slice(&update.effective_height.to_be_bytes());
    data.extend_from_slice(&update.config.as_ref().map_or(0, |c| c.signature_threshold).to_be_bytes());
    for member in &update.members {
        data.extend_from_slice(&(member.member_id.len() as u32).to_be_bytes());
        data.extend_from_slice(member.member_id.as_bytes());
        data.extend_from_slice(&(member.public_key.len() as u32).to_be_bytes());
        data.extend_from_slice(&member.public_key);
        data.extend_from_slice(&member.weight.to_be_bytes());
        data.push(u8::from(member.active));
    }
    sha256::Hash::hash(&data).to_byte_array()
}

impl Federation {
    /// Verifies `update` against the governance key and derives the federation it defines.
    pub fn from_update(
        update: &FederationUpdate,
        governance_key: &secp256k1::PublicKey,
        network: Network,
    ) -> Result<Self, FederationError> {
        let signature = Signature::from_compact(&update.update_signature)
            .or_else(|_| Signature::from_der(&update.update_signature))
            .map_err(|_| FederationError::BadSignature)?;
        let message = Message::from_digest(update_digest(update));
        Secp256k1::verification_only()
            .verify_ecdsa(&message, &signature, governance_key)
            .map_err(|_| FederationError::BadSignature)?;

        let mut members = Vec::new();
        for member in update.members.iter().filter(|m| m.active) {
            let key = PublicKey::from_slice(&member.public_key)
                .ok()
                .filter(|k| k.compressed)
                .ok_or_else(|| FederationError::BadMemberKey(member.member_id.clone()))?;
            members.push(FederationMemberKey {
                member_id: member.member_id.clone(),
                key,
                weight: member.weight,
            });
        }
        // BIP67: sort by the serialized compressed key.
        members.sort_by_key(|m| m.key.to_bytes());
        if members.windows(2).any(|w| matches!(w, [a, b] if a.key == b.key)) {
            return Err(FederationError::DuplicateKey);
        }
        let threshold = update.config.as_ref().map_or(0, |c| c.signature_threshold);
        if threshold == 0 || threshold as usize > members.len() || members.len() > MAX_MEMBERS {
            return Err(FederationError::BadThreshold { threshold, members: members.len() });
        }
        let mut builder = Builder::new().push_int(i64::from(threshold));
        for member in &members {
            builder = builder.push_key(&member.key);
        }
        let witness_script =
            builder.push_int(members.len() as i64).push_opcode(OP_CHECKMULTISIG).into_script();
        let address = Address::p2wsh(&witness_script, network);
        Ok(Self { effective_height: update.effective_height, threshold, members, witness_script, address })
    }
}

/// Federations by effective height.
#[derive(Debug, Clone, Default)]
pub struct FederationHistory {
    by_height: BTreeMap<u64, Federation>,
}

impl FederationHistory {
    /// Whether [`Self::insert`] would add `federation`, without adding it: `Ok(true)` if it takes effect
    /// after the latest one, `Ok(false)` if this very federation is already known (governance announces
    /// every federation to each new session), [`FederationError::Stale`] otherwise. The stream actor
    /// checks, saves, and only then inserts.
    pub fn check(&self, federation: &Federation) -> Result<bool, FederationError> {
        if self.by_height.get(&federation.effective_height) == Some(federation) {
            return Ok(false);
        }
        if let Some((latest, _)) = self.by_height.last_key_value()
            && federation.effective_height <= *latest
        {
            return Err(FederationError::Stale(federation.effective_height));
        }
        Ok(true)
    }

    /// Adds a federation, which must take effect after the latest one; `Ok(false)` when this federation
    /// was already known.
    pub fn insert(&mut self, federation: Federation) -> Result<bool, FederationError> {
        if !self.check(&federation)? {
            return Ok(false);
        }
        self.by_height.insert(federation.effective_height, federation);
        Ok(true)
    }

    /// The federation holding deposits at `height`.
    pub fn at(&self, height: u64) -> Option<&Federation> {
        self.by_height.range(..=height).next_back().map(|(_, f)| f)
    }

    /// The federation before the one at `height`, whose address may still receive late deposits.
    pub fn previous(&self, height: u64) -> Option<&Federation> {
        self.by_height.range(..=height).rev().nth(1).map(|(_, f)| f)
    }

    /// All federations, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Federation> {
        self.by_height.values()
    }

    /// The federation whose first block is at `height`, if one starts there.
    pub fn starting_at(&self, height: u64) -> Option<&Federation> {
        self.by_height.get(&height)
    }

    /// Whether no federation is known yet.
    pub fn is_empty(&self) -> bool {
        self.by_height.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alys_proto::governance::v1::{FederationConfig, FederationMember};
    use bitcoin::secp256k1::SecretKey;

    fn secret(n: u8) -> SecretKey {
        SecretKey::from_slice(&[n; 32]).unwrap()
    }

    fn member(n: u8, active: bool) -> FederationMember {
        let secp = Secp256k1::new();
        FederationMember {
            member_id: format!("m{n}"),
            public_key: secp256k1::PublicKey::from_secret_key(&secp, &secret(n)).serialize().to_vec(),
            weight: 1,
            active,
        }
    }

    fn signed(
        members: Vec<FederationMember>,
        threshold: u32,
        height: u64,
        governance: &SecretKey,
    ) -> FederationUpdate {
        let mut update = FederationUpdate {
            update_type: 1,
            members,
            effective_height: height,
            update_signature: vec![],
            config: Some(FederationConfig {
                signature_threshold: threshold,
                member_count: 0,
                parameters: Default::default(),
            }),
        };
        let secp = Secp256k1::new();
        let sig = secp.sign_ecdsa(&Message::from_digest(update_digest(&update)), governance);
        update.update_signature = sig.serialize_compact().to_vec();
        update
    }

    fn governance_pub() -> secp256k1::PublicKey {
        secp256k1::PublicKey::from_secret_key(&Secp256k1::new(), &secret(0x99))
    }

    #[test]
    fn address_is_p2wsh_of_the_sorted_multisig_in_any_order() {
        let a = signed(vec![member(1, true), member(2, true), member(3, true)], 2, 10, &secret(0x99));
        let b = signed(vec![member(3, true), member(1, true), member(2, true)], 2, 10, &secret(0x99));
        let fa = Federation::from_update(&a, &governance_pub(), Network::Regtest).unwrap();
        let fb = Federation::from_update(&b, &governance_pub(), Network::Regtest).unwrap();
        assert_eq!(fa.address, fb.address);
        assert!(fa.address.to_string().starts_with("bcrt1q"));
        assert_eq!(fa.witness_script.len(), 1 + 3 * 34 + 1 + 1, "OP_2 <3 keys> OP_3 OP_CHECKMULTISIG");
        let keys: Vec<_> = fa.members.iter().map(|m| m.key.to_bytes()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "BIP67 order");
        // Inactive members are not in the multisig; a different threshold is a different address.
        let c = signed(vec![member(1, true), member(2, true), member(3, false)], 2, 10, &secret(0x99));
        let fc = Federation::from_update(&c, &governance_pub(), Network::Regtest).unwrap();
        assert_eq!(fc.members.len(), 2);
        assert_ne!(fc.address, fa.address);
        let d = signed(vec![member(1, true), member(2, true), member(3, true)], 3, 10, &secret(0x99));
        assert_ne!(
            Federation::from_update(&d, &governance_pub(), Network::Regtest).unwrap().address,
            fa.address
        );
    }

    #[test]
    fn bad_updates_are_refused() {
        let good = signed(vec![member(1, true), member(2, true)], 2, 10, &secret(0x99));
        let forged = signed(vec![member(1, true), member(2, true)], 2, 10, &secret(0x42));
        assert_eq!(
            Federation::from_update(&forged, &governance_pub(), Network::Regtest),
            Err(FederationError::BadSignature)
        );
        let mut tampered = good.clone();
        tampered.effective_height = 11;
        assert_eq!(
            Federation::from_update(&tampered, &governance_pub(), Network::Regtest),
            Err(FederationError::BadSignature)
        );
        let mut garbage = good;
        garbage.update_signature = vec![1, 2, 3];
        assert_eq!(
            Federation::from_update(&garbage, &governance_pub(), Network::Regtest),
            Err(FederationError::BadSignature)
        );

        let mut bad_key = member(1, true);
        bad_key.public_key = vec![4; 65];
        let update = signed(vec![bad_key, member(2, true)], 1, 10, &secret(0x99));
        assert!(matches!(
            Federation::from_update(&update, &governance_pub(), Network::Regtest),
            Err(FederationError::BadMemberKey(_))
        ));
        let dup = signed(vec![member(1, true), member(1, true)], 1, 10, &secret(0x99));
        assert_eq!(
            Federation::from_update(&dup, &governance_pub(), Network::Regtest),
            Err(FederationError::DuplicateKey)
        );
        for threshold in [0, 3] {
            let update = signed(vec![member(1, true), member(2, true)], threshold, 10, &secret(0x99));
            assert!(matches!(
                Federation::from_update(&update, &governance_pub(), Network::Regtest),
                Err(FederationError::BadThreshold { .. })
            ));
        }
        let many: Vec<_> = (1..=21).map(|n| member(n, true)).collect();
        let update = signed(many, 11, 10, &secret(0x99));
        assert!(matches!(
            Federation::from_update(&update, &governance_pub(), Network::Regtest),
            Err(FederationError::BadThreshold { .. })
        ));
    }

    #[test]
    fn history_answers_current_and_previous_by_height() {
        let f = |height, n| {
            Federation::from_update(
                &signed(vec![member(n, true)], 1, height, &secret(0x99)),
                &governance_pub(),
                Network::Regtest,
            )
            .unwrap()
        };
        let mut history = FederationHistory::default();
        assert_eq!(history.insert(f(0, 1)), Ok(true));
        assert_eq!(history.check(&f(100, 2)), Ok(true));
        assert_eq!(history.iter().count(), 1, "check changes nothing");
        assert_eq!(history.insert(f(100, 2)), Ok(true));
        assert_eq!(history.insert(f(100, 3)), Err(FederationError::Stale(100)));
        assert_eq!(history.insert(f(50, 3)), Err(FederationError::Stale(50)));
        // Announced again (every new session hears every federation): known, not stale.
        assert_eq!(history.insert(f(0, 1)), Ok(false));
        assert_eq!(history.insert(f(100, 2)), Ok(false));
        assert_eq!(history.at(50).unwrap().effective_height, 0);
        assert_eq!(history.at(100).unwrap().effective_height, 100);
        assert_eq!(history.previous(150).unwrap().effective_height, 0);
        assert!(history.previous(50).is_none());
        assert_eq!(history.iter().count(), 2);
    }
}
