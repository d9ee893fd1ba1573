//! Witnesses from governance, checked before anything is broadcast (DESIGN invariant 4).
//!
//! Governance returns signatures for the federation's P2WSH multisig inputs. The node orders them as
//! `CHECKMULTISIG` needs (the order of the keys in the witness script), assembles the witness
//! `[<empty>, sig…, witness_script]`, and runs Bitcoin's own script interpreter (libbitcoinconsensus) on
//! every input against the output it spends. A witness that does not verify is never broadcast.

use bitcoin::{
    Amount, PublicKey, Script, Transaction, TxOut, Witness, consensus::serialize, ecdsa, script::Instruction,
};

/// Why a witness was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessError {
    /// The input index is outside the transaction.
    #[error("input {0} does not exist")]
    NoSuchInput(usize),
    /// Bitcoin's script interpreter refused the spend.
    #[error("input {index} does not verify: {reason}")]
    ScriptFailed {
        /// The input.
        index: usize,
        /// The interpreter's error.
        reason: String,
    },
    /// A signature is not by one of the witness script's keys.
    #[error("signature by a key that is not in the witness script")]
    UnknownSigner,
}

/// The public keys of a multisig witness script, in script order.
pub fn script_keys(witness_script: &Script) -> Vec<PublicKey> {
    witness_script
        .instructions()
        .filter_map(|i| match i {
            Ok(Instruction::PushBytes(bytes)) => PublicKey::from_slice(bytes.as_bytes()).ok(),
            _ => None,
        })
        .collect()
}

/// Assembles a P2WSH multisig witness from `(signer key, signature)` pairs, ordered by the keys' order in
/// `witness_script` as `CHECKMULTISIG` requires.
pub fn multisig_witness(
    witness_script: &Script,
    signatures: &[(PublicKey, ecdsa::Signature)],
) -> Result<Witness, WitnessError> {
    let keys = script_keys(witness_script);
    let mut ordered: Vec<(usize, &ecdsa::Signature)> = signatures
        .iter()
        .map(|(key, sig)| {
            keys.iter().position(|k| k == key).map(|i| (i, sig)).ok_or(WitnessError::UnknownSigner)
        })
        .collect::<Result<_, _>>()?;
    ordered.sort_by_key(|(i, _)| *i);
    let mut witness = Witness::new();
    witness.push([]); // CHECKMULTISIG's extra pop
    for (_, sig) in ordered {
        witness.push(sig.serialize());
    }
    witness.push(witness_script.as_bytes());
    Ok(witness)
}

/// Runs Bitcoin's script interpreter on input `index` of `tx` against the output it spends.
pub fn verify_input(tx: &Transaction, index: usize, spent: &TxOut) -> Result<(), WitnessError> {
    if index >= tx.input.len() {
        return Err(WitnessError::NoSuchInput(index));
    }
    bitcoin::consensus::validation::verify_script(&spent.script_pubkey, index, spent.value, &serialize(tx))
        .map_err(|e| WitnessError::ScriptFailed { index, reason: e.to_string() })
}

/// Verifies every input of `tx` against the outputs it spends, in input order.
pub fn verify_transaction(tx: &Transaction, spent: &[TxOut]) -> Result<(), WitnessError> {
    for index in 0..tx.input.len() {
        let out = spent.get(index).ok_or(WitnessError::NoSuchInput(index))?;
        verify_input(tx, index, out)?;
    }
    Ok(())
}

/// The value of a spent output, for signing hashes (BIP143 commits to it).
pub const fn amount(sats: u64) -> Amount {
    Amount::from_sat(sats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::{
        OutPoint, ScriptBuf, Sequence, TxIn, Txid,
        absolute::LockTime,
        hashes::Hash,
        opcodes::all::OP_CHECKMULTISIG,
        script::Builder,
        secp256k1::{Message, Secp256k1, SecretKey},
        sighash::{EcdsaSighashType, SighashCache},
        transaction,
    };

    struct Fixture {
        keys: Vec<(SecretKey, PublicKey)>,
        witness_script: ScriptBuf,
        spent: TxOut,
        tx: Transaction,
    }

    fn fixture() -> Fixture {
        let secp = Secp256k1::new();
        let mut keys: Vec<_> = (1..=3u8)
            .map(|n| {
                let sk = SecretKey::from_slice(&[n; 32]).unwrap();
                (sk, PublicKey::new(bitcoin::secp256k1::PublicKey::from_secret_key(&secp, &sk)))
            })
            .collect();
        keys.sort_by_key(|(_, pk)| pk.to_bytes());
        let mut builder = Builder::new().push_int(2);
        for (_, pk) in &keys {
            builder = builder.push_key(pk);
        }
        let witness_script = builder.push_int(3).push_opcode(OP_CHECKMULTISIG).into_script();
        let spent = TxOut {
            value: Amount::from_sat(1_000_000),
            script_pubkey: ScriptBuf::new_p2wsh(&witness_script.wscript_hash()),
        };
        let tx = Transaction {
            version: transaction::Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint { txid: Txid::from_byte_array([7; 32]), vout: 0 },
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![TxOut {
                value: Amount::from_sat(990_000),
                script_pubkey: ScriptBuf::new_op_return([1, 2]),
            }],
        };
        Fixture { keys, witness_script, spent, tx }
    }

    fn sign(f: &Fixture, signer: usize, value: Amount) -> (PublicKey, ecdsa::Signature) {
        let secp = Secp256k1::new();
        let sighash = SighashCache::new(&f.tx)
            .p2wsh_signature_hash(0, &f.witness_script, value, EcdsaSighashType::All)
            .unwrap();
        let sig = secp.sign_ecdsa(&Message::from_digest(sighash.to_byte_array()), &f.keys[signer].0);
        (f.keys[signer].1, ecdsa::Signature { signature: sig, sighash_type: EcdsaSighashType::All })
    }

    #[test]
    fn a_two_of_three_witness_verifies_in_any_signature_order() {
        let mut f = fixture();
        let sigs = [sign(&f, 2, f.spent.value), sign(&f, 0, f.spent.value)];
        f.tx.input[0].witness = multisig_witness(&f.witness_script, &sigs).unwrap();
        verify_input(&f.tx, 0, &f.spent).unwrap();
        verify_transaction(&f.tx, std::slice::from_ref(&f.spent)).unwrap();
    }

    #[test]
    fn bad_witnesses_are_refused() {
        let mut f = fixture();
        // One signature of two.
        let one = [sign(&f, 0, f.spent.value)];
        f.tx.input[0].witness = multisig_witness(&f.witness_script, &one).unwrap();
        assert!(matches!(verify_input(&f.tx, 0, &f.spent), Err(WitnessError::ScriptFailed { .. })));
        // Signed for the wrong amount (BIP143 commits to it).
        let wrong = [sign(&f, 0, Amount::from_sat(1)), sign(&f, 1, Amount::from_sat(1))];
        f.tx.input[0].witness = multisig_witness(&f.witness_script, &wrong).unwrap();
        assert!(matches!(verify_input(&f.tx, 0, &f.spent), Err(WitnessError::ScriptFailed { .. })));
        // A corrupted signature.
        let (key, mut sig) = sign(&f, 0, f.spent.value);
        let mut bytes = sig.signature.serialize_compact();
        bytes[10] ^= 1;
        sig.signature = bitcoin::secp256k1::ecdsa::Signature::from_compact(&bytes).unwrap();
        f.tx.input[0].witness =
            multisig_witness(&f.witness_script, &[(key, sig), sign(&f, 1, f.spent.value)]).unwrap();
        assert!(matches!(verify_input(&f.tx, 0, &f.spent), Err(WitnessError::ScriptFailed { .. })));
        // A stranger's signature cannot even be placed.
        let secret = SecretKey::from_slice(&[9; 32]).unwrap();
        let stranger =
            PublicKey::new(bitcoin::secp256k1::PublicKey::from_secret_key(&Secp256k1::new(), &secret));
        let (_, any) = sign(&f, 0, f.spent.value);
        assert_eq!(multisig_witness(&f.witness_script, &[(stranger, any)]), Err(WitnessError::UnknownSigner));
        assert_eq!(verify_input(&f.tx, 5, &f.spent), Err(WitnessError::NoSuchInput(5)));
    }
}
