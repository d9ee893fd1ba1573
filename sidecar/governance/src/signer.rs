//! Getting a federation spend signed: ask governance over the stream, assemble the multisig witnesses,
//! and verify every input with Bitcoin's script interpreter before the transaction is handed back.
//!
//! `SignatureResponse.signatures` carries `(signature, public key)` pairs without saying which input
//! each signs, so the node finds out itself: it computes each requested input's BIP143 sighash and keeps,
//! per input, the signatures that verify against it by a federation key. Anything else in the response
//! (a bad signature, a stranger's key, a signature for another transaction) is ignored and counted, and
//! an input left with fewer than `threshold` good signatures fails the whole request. The assembled
//! transaction must then pass libbitcoinconsensus on every input; nothing that fails is returned, so a
//! bad witness is never used (DESIGN invariant 4).

use alys_proto::governance::v1::{SignatureRequest, SignatureResponse, SignatureStatus, TransactionType};
use bitcoin::{
    PublicKey, Transaction, TxOut,
    consensus::serialize,
    ecdsa,
    hashes::Hash,
    hex::DisplayHex,
    secp256k1::{Message, Secp256k1},
    sighash::{EcdsaSighashType, SighashCache},
};

use super::{
    Federation, metrics as m,
    stream::{StreamError, StreamHandle},
    witness::{WitnessError, multisig_witness, verify_transaction},
};

/// Why a spend could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The stream failed or timed out.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// Governance declined.
    #[error("governance did not sign: {0}")]
    Declined(String),
    /// The request is inconsistent (spent outputs vs inputs, an input that is not the federation's).
    #[error("cannot request signatures: {0}")]
    BadRequest(String),
    /// An input got fewer good signatures than the threshold.
    #[error("input {input}: {good} valid signatures by federation keys, {threshold} needed")]
    InsufficientSignatures {
        /// The input.
        input: usize,
        /// Signatures that verified.
        good: usize,
        /// The federation's threshold.
        threshold: usize,
    },
    /// The assembled witness failed Bitcoin's script interpreter.
    #[error("witness refused: {0}")]
    BadWitness(#[from] WitnessError),
}

/// The signature request for spending `spent[i]` with input `i` of `tx` (all inputs).
pub fn signature_request(
    tx: &Transaction,
    spent: &[TxOut],
    federation: &Federation,
    tx_type: TransactionType,
) -> Result<SignatureRequest, SignError> {
    if tx.input.len() != spent.len() {
        return Err(SignError::BadRequest(format!(
            "{} inputs but {} spent outputs",
            tx.input.len(),
            spent.len()
        )));
    }
    let script_pubkey = federation.address.script_pubkey();
    if let Some(i) = spent.iter().position(|out| out.script_pubkey != script_pubkey) {
        return Err(SignError::BadRequest(format!("input {i} does not spend the federation's address")));
    }
    Ok(SignatureRequest {
        tx_hex: serialize(tx).to_lower_hex_string(),
        input_indices: (0..tx.input.len() as u32).collect(),
        amounts: spent.iter().map(|out| out.value.to_sat()).collect(),
        tx_type: tx_type as i32,
        required_signatures: federation.threshold,
        timeout_seconds: None,
    })
}

/// Builds the signed transaction from governance's `response`, or says why not. Pure: no I/O.
pub fn apply_response(
    tx: &Transaction,
    spent: &[TxOut],
    federation: &Federation,
    response: &SignatureResponse,
) -> Result<Transaction, SignError> {
    if response.status != SignatureStatus::Complete as i32 {
        let reason = response.failure_reason.clone().unwrap_or_else(|| format!("status {}", response.status));
        return Err(SignError::Declined(reason));
    }
    if tx.input.len() != spent.len() {
        return Err(SignError::BadRequest("inputs and spent outputs differ in number".into()));
    }
    let secp = Secp256k1::verification_only();
    let threshold = federation.threshold as usize;
    let mut cache = SighashCache::new(tx);
    let mut signed = tx.clone();
    let mut ignored = 0u64;
    for (index, out) in spent.iter().enumerate() {
        let sighash = cache
            .p2wsh_signature_hash(index, &federation.witness_script, out.value, EcdsaSighashType::All)
            .map_err(|e| SignError::BadRequest(format!("input {index}: {e}")))?;
        let message = Message::from_digest(sighash.to_byte_array());
        let mut good: Vec<(PublicKey, ecdsa::Signature)> = Vec::new();
        for data in &response.signatures {
            let (Ok(key), Ok(sig)) =
                (PublicKey::from_slice(&data.public_key), ecdsa::Signature::from_slice(&data.signature))
            else {
                ignored += 1;
                continue;
            };
            let member = federation.members.iter().any(|m| m.key == key);
            let fresh = !good.iter().any(|(k, _)| *k == key);
            if member
                && fresh
                && sig.sighash_type == EcdsaSighashType::All
                && secp.verify_ecdsa(&message, &sig.signature, &key.inner).is_ok()
            {
                good.push((key, sig));
            }
        }
        if good.len() < threshold {
            metrics::counter!(m::BAD_WITNESS).increment(1);
            return Err(SignError::InsufficientSignatures { input: index, good: good.len(), threshold });
        }
        good.truncate(threshold);
        let witness = multisig_witness(&federation.witness_script, &good)?;
        if let Some(input) = signed.input.get_mut(index) {
            input.witness = witness;
        }
    }
    if ignored > 0 {
        metrics::counter!(m::IGNORED_SIGNATURES).increment(ignored);
    }
    // The interpreter is the last word: a witness it refuses is never returned.
    verify_transaction(&signed, spent).inspect_err(|_| {
        metrics::counter!(m::BAD_WITNESS).increment(1);
    })?;
    Ok(signed)
}

/// Asks governance to sign every input of `tx` (each spending the federation's `spent[i]`), and returns
/// the transaction with verified witnesses. `request_id` lets a caller that persists its work reuse
/// its id after a restart.
pub async fn sign_transaction(
    stream: &StreamHandle,
    federation: &Federation,
    tx: &Transaction,
    spent: &[TxOut],
    tx_type: TransactionType,
    request_id: Option<String>,
) -> Result<Transaction, SignError> {
    let request = signature_request(tx, spent, federation, tx_type)?;
    let response = match request_id {
        Some(id) => stream.request_signatures_with_id(id, request).await?,
        None => stream.request_signatures(request).await?,
    };
    apply_response(tx, spent, federation, &response)
}
