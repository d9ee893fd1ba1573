//! The fixed context the targets check outside bytes against: merged-mining chain ids, committed hashes
//! and targets, the governance key, a federation and a spend of its outputs, an Engine API chain spec,
//! and a three-authority Aura schedule.
//! The seed corpus is built from the same values, so seeds get past every check they are meant to pass.

use std::{collections::HashSet, sync::OnceLock};

use alloy_primitives::B256;
use alys_chainspec::ChainSpec;
use alys_consensus::Aura;
use alys_governance::{Federation, update_digest};
use alys_primitives::AuthorityKey;
use alys_proto::governance::v1::{FederationConfig, FederationMember, FederationUpdate};
use bitcoin::{
    Amount, Network, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness,
    absolute::LockTime,
    hashes::Hash,
    secp256k1::{self, Message, PublicKey, Secp256k1, SecretKey},
    transaction,
};

/// The merged-mining chain id the targets check proofs for (the auxpow crate's tests' id).
pub const CHAIN_ID: u32 = 0x2121;
/// The easiest compact target (regtest's): a proof meets it after a few nonces.
pub const EASY_BITS: u32 = 0x207f_ffff;
/// The hash the mined seed proofs commit to.
pub const MINED_AUX_HASH: B256 = B256::repeat_byte(0x42);

/// Namecoin's merged-mining chain id.
pub const NAMECOIN_CHAIN_ID: u32 = 1;
/// Namecoin block 19200's target.
pub const NAMECOIN_BITS: u32 = 0x1b00_b269;
/// Namecoin block 19200's hash, as `getblock` prints it: what its CAuxPow commits to.
pub const NAMECOIN_AUX_HASH: B256 =
    alloy_primitives::b256!("d8a7c3e01e1e95bcee015e6fcc7583a2ca60b79e5a3aa0a171eddd344ada903d");
/// Namecoin block 19200: its 80-byte header followed by its CAuxPow (from `alys-auxpow`'s tests).
pub const NAMECOIN_19200: &str = "0101010036909ac07a1673daf65fa7d828882e66c9e89f8546cdd50a9fb10000000000000f5c6549bcd608ab7c4eac593e5bd5a73b2d432eb63518708f778fc7dcdfaf888d1a904e69b2001b0000000001000000010000000000000000000000000000000000000000000000000000000000000000ffffffff35045dee091a014d522cfabe6d6dd8a7c3e01e1e95bcee015e6fcc7583a2ca60b79e5a3aa0a171eddd344ada903d0100000000000000ffffffff0160a0102a01000000434104f8bbe97ed2acbc5bba11c68f6f1a0313f918f3d3c0e8475055e351e3bf442f8c8dcee682d2457bdc5351b70dd9e34026766eba18b06eaee2e102efd1ab634667ac00000000000000000000000000000000000000000000000000000000000000000000000005050ac4a1a1e1bce0c48e555b1a9f935281968c72d6379b24729ca0425a3fc3cb433cd348b35ea22806cf21c7b146489aef6989551eb5ad2373ab6121060f30341d648757c0217d43e66c57eaed64fc1820ec65d157f33b741965183a5e0c8506ac2602dfe2f547012d1cc75004d48f97aba46bd9930ff285c9f276f5bd09f356df19724579d65ec7cb62bf97946dfc6fb0e3b2839b7fdab37cdb60e55122d35b0000000000000000000100000008be13295c03e67cb70d00dae81ea06e78b9014e5ceb7d9ba504000000000000e0fd42db8ef6d783f079d126bea12e2d10c104c0927cd68f954d856f9e8111e59a23904e5dee091a1c655086";

/// The hash Alys's pools copied into the Marathon coinbase below.
pub const MARATHON_AUX_HASH: B256 =
    alloy_primitives::b256!("a62edaca27060f885a1935a8f9f4401e65a6c9d936a5a9fb384a0b9fae07a983");
/// A Marathon coinbase with Alys's commitment in output 2 (from `alys-auxpow`'s tests).
pub const MARATHON_COINBASE: &str = "010000000001010000000000000000000000000000000000000000000000000000000000000000ffffffff2f03bd7e0c04721566652f7a7a616d78632f76649b3c094f135bf4b83108c14ea85f12edd2045a0075000000ffffffffffffffff039df4662700000000160014b6f3cfc20084e3b9f0d12b0e6f9da8fcbcf5a2d90000000000000000266a24aa21a9edb211480d24c30a0d4df77d79618af9f03c2bb0dced634e7b152af2247a9ca99c00000000000000002cfabe6d6da62edaca27060f885a1935a8f9f4401e65a6c9d936a5a9fb384a0b9fae07a983010000000000000001200000000000000000000000000000000000000000000000000000000000000000173d850d";

/// A proof context: the committed hash, the chain id and the compact target a proof is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofContext {
    /// The committed hash, in display order.
    pub aux_hash: B256,
    /// The aux chain's id.
    pub chain_id: u32,
    /// The compact target.
    pub bits: u32,
}

/// The contexts every CAuxPow input is checked in: one per kind of seed (a real Namecoin proof, proofs
/// mined for a fixed hash, the Marathon coinbase), so each seed passes in one of them.
pub const PROOF_CONTEXTS: [ProofContext; 3] = [
    ProofContext { aux_hash: NAMECOIN_AUX_HASH, chain_id: NAMECOIN_CHAIN_ID, bits: NAMECOIN_BITS },
    ProofContext { aux_hash: MINED_AUX_HASH, chain_id: CHAIN_ID, bits: EASY_BITS },
    ProofContext { aux_hash: MARATHON_AUX_HASH, chain_id: CHAIN_ID, bits: EASY_BITS },
];

/// The governance secret key. Public on purpose: the targets re-sign fuzzed messages with it to reach
/// the checks behind the signature.
pub fn governance_secret() -> SecretKey {
    secret(0x99)
}

/// The governance key the targets verify against.
pub fn governance_key() -> PublicKey {
    PublicKey::from_secret_key(&Secp256k1::signing_only(), &governance_secret())
}

/// The secret of federation member `n` (1, 2 or 3).
pub fn member_secret(n: u8) -> SecretKey {
    secret(n)
}

fn secret(byte: u8) -> SecretKey {
    // 0x01..=0x99 repeated is below the curve order: a valid key, never an error.
    SecretKey::from_slice(&[byte; 32]).unwrap_or_else(|_| unreachable!("[{byte}; 32] is a valid key"))
}

/// Signs a federation update with the governance key (compact signature), as governance does.
pub fn sign_update(update: &mut FederationUpdate) {
    let digest = Message::from_digest(update_digest(update));
    let signature = Secp256k1::signing_only().sign_ecdsa(&digest, &governance_secret());
    update.update_signature = signature.serialize_compact().to_vec();
}

/// The signed update of the fixed 2-of-3 federation (members 1, 2 and 3, from height 0).
pub fn federation_update() -> FederationUpdate {
    let secp = Secp256k1::signing_only();
    let members = (1..=3u8)
        .map(|n| FederationMember {
            member_id: format!("member-{n}"),
            public_key: PublicKey::from_secret_key(&secp, &member_secret(n)).serialize().to_vec(),
            weight: 1,
            active: true,
        })
        .collect();
    let mut update = FederationUpdate {
        update_type: 1,
        members,
        effective_height: 0,
        update_signature: Vec::new(),
        config: Some(FederationConfig {
            signature_threshold: 2,
            member_count: 3,
            parameters: Default::default(),
        }),
    };
    sign_update(&mut update);
    update
}

/// The Bitcoin network of deposit addresses.
pub const NETWORK: Network = Network::Regtest;

/// The fixed federation signature responses are applied for.
pub fn federation() -> &'static Federation {
    static FEDERATION: OnceLock<Federation> = OnceLock::new();
    FEDERATION.get_or_init(|| {
        Federation::from_update(&federation_update(), &governance_key(), NETWORK)
            .unwrap_or_else(|e| unreachable!("the fixed federation update is valid: {e}"))
    })
}

/// A previous federation's deposit script, as one still valid within a rotation's grace period: the
/// `pegin` target scans deposits against it and [`federation`]'s address together.
pub fn previous_federation_script() -> ScriptBuf {
    ScriptBuf::new_p2wsh(&bitcoin::WScriptHash::from_byte_array([0x0f; 32]))
}

/// The federation scripts deposits are scanned against: [`federation`]'s P2WSH address and
/// [`previous_federation_script`].
pub fn deposit_scripts() -> &'static HashSet<ScriptBuf> {
    static SCRIPTS: OnceLock<HashSet<ScriptBuf>> = OnceLock::new();
    SCRIPTS
        .get_or_init(|| HashSet::from([federation().address.script_pubkey(), previous_federation_script()]))
}

/// The federation outputs the fixed spend consumes.
pub fn spent_outputs() -> Vec<TxOut> {
    let script_pubkey = federation().address.script_pubkey();
    [1_000_000u64, 2_500_000]
        .into_iter()
        .map(|sats| TxOut { value: Amount::from_sat(sats), script_pubkey: script_pubkey.clone() })
        .collect()
}

/// A two-input spend of [`spent_outputs`], unsigned: what a peg-out asks governance to sign.
pub fn unsigned_spend() -> Transaction {
    let input = |n: u8| TxIn {
        previous_output: OutPoint { txid: Txid::from_byte_array([n; 32]), vout: u32::from(n) },
        script_sig: ScriptBuf::new(),
        sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
        witness: Witness::new(),
    };
    Transaction {
        version: transaction::Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![input(7), input(8)],
        output: vec![TxOut {
            value: Amount::from_sat(3_400_000),
            script_pubkey: ScriptBuf::new_p2wsh(&bitcoin::WScriptHash::from_byte_array([5; 32])),
        }],
    }
}

/// Fork times of the Engine API chain spec: Shanghai from genesis, Cancun from this timestamp…
pub const CANCUN_TIME: u64 = 100;
/// …and Prague from this one, so the timestamp picks the method version a payload needs.
pub const PRAGUE_TIME: u64 = 200;

/// The devnet chain spec with Cancun at [`CANCUN_TIME`] and Prague at [`PRAGUE_TIME`].
pub fn chain_spec() -> &'static ChainSpec {
    static SPEC: OnceLock<ChainSpec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let mut genesis: serde_json::Value = serde_json::from_str(alys_chainspec::DEVNET_GENESIS_JSON)
            .unwrap_or_else(|e| unreachable!("the devnet genesis is JSON: {e}"));
        if let Some(config) = genesis.get_mut("config") {
            config["cancunTime"] = CANCUN_TIME.into();
            config["pragueTime"] = PRAGUE_TIME.into();
        }
        serde_json::from_value(genesis)
            .map_err(|e| e.to_string())
            .and_then(|genesis| ChainSpec::from_genesis(genesis).map_err(|e| e.to_string()))
            .unwrap_or_else(|e| unreachable!("the devnet genesis is a valid chain spec: {e}"))
    })
}

/// The Engine API JWT secret of the in-process server (the devnet's example secret is as good as any).
pub const JWT_SECRET: [u8; 32] = [0x11; 32];

/// A helper for the targets: a fresh secp256k1 context for verification-and-signing work.
pub(crate) fn secp() -> &'static Secp256k1<secp256k1::All> {
    static SECP: OnceLock<Secp256k1<secp256k1::All>> = OnceLock::new();
    SECP.get_or_init(Secp256k1::new)
}

/// The number of authorities of [`aura`].
pub const AUTHORITIES: u32 = 3;
/// [`aura`]'s slot duration, milliseconds.
pub const SLOT_DURATION_MS: u64 = 2_000;
/// [`aura`]'s tolerance for blocks ahead of the local clock, milliseconds.
pub const FUTURE_TOLERANCE_MS: u64 = 500;

/// The authority keys of [`aura`], in schedule order: `AuthorityKey::from_seed(&[i; 32])` for i in
/// 1..=3. Public on purpose: the `gossip` target re-signs fuzzed approvals and evidence with them.
pub fn authority_keys() -> &'static [AuthorityKey] {
    static KEYS: OnceLock<Vec<AuthorityKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        (1..=AUTHORITIES as u8)
            .map(|i| {
                AuthorityKey::from_seed(&[i; 32])
                    .unwrap_or_else(|e| unreachable!("[{i}; 32] is valid keying material: {e}"))
            })
            .collect()
    })
}

/// The fixed Aura schedule over [`authority_keys`] (slots of [`SLOT_DURATION_MS`], a tolerance of
/// [`FUTURE_TOLERANCE_MS`]) that gossiped approvals and evidence are checked against.
pub fn aura() -> &'static Aura {
    static AURA: OnceLock<Aura> = OnceLock::new();
    AURA.get_or_init(|| {
        let publics = authority_keys().iter().map(|key| key.public().clone()).collect();
        Aura::new(publics, SLOT_DURATION_MS, FUTURE_TOLERANCE_MS)
            .unwrap_or_else(|e| unreachable!("three authorities make a schedule: {e}"))
    })
}
