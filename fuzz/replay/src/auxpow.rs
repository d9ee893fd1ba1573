//! Merged-mining proofs: the serialized CAuxPow and the proof header a consensus block carries.

use alys_auxpow::{
    AuxPowHeader,
    pow::{AuxPow, check, check_serialized, decode_auxpow},
};
use bitcoin::consensus::Encodable;

use crate::fixtures::{CHAIN_ID, PROOF_CONTEXTS};

/// Serializes a CAuxPow as `decode_auxpow` reads it (the auxpow crate decodes only: miners build proofs).
pub fn encode_auxpow(proof: &AuxPow) -> Vec<u8> {
    fn put<T: Encodable + ?Sized>(out: &mut Vec<u8>, value: &T) {
        // Writing to a Vec cannot fail.
        let _ = value.consensus_encode(out);
    }
    let mut out = Vec::new();
    put(&mut out, &proof.coinbase);
    put(&mut out, &proof.parent_hash);
    put(&mut out, &proof.coinbase_branch);
    put(&mut out, &proof.coinbase_index);
    put(&mut out, &proof.chain_branch);
    put(&mut out, &proof.chain_index);
    put(&mut out, &proof.parent);
    out
}

/// A serialized CAuxPow, as `submitauxblock` receives it: decoded, then checked in each fixed context.
///
/// Asserts that a proof that decodes re-encodes to exactly the input (the encoding is canonical, so a
/// proof has one byte string) and decodes back to itself, and that checking the bytes and checking the
/// decoded proof agree.
pub fn auxpow(data: &[u8]) {
    let decoded = decode_auxpow(data);
    if let Ok(proof) = &decoded {
        let encoded = encode_auxpow(proof);
        assert_eq!(encoded, data, "a decoded CAuxPow re-encodes to other bytes");
        assert_eq!(decode_auxpow(&encoded).as_ref(), Ok(proof), "decode(encode(proof)) != proof");
    }
    for context in PROOF_CONTEXTS {
        let bytes_result = check_serialized(data, context.aux_hash, context.chain_id, context.bits);
        match &decoded {
            Ok(proof) => {
                let result = check(proof, context.aux_hash, context.chain_id, context.bits);
                assert_eq!(bytes_result, result, "check_serialized and decode + check disagree");
            }
            Err(error) => assert_eq!(bytes_result.as_ref(), Err(error), "check_serialized decodes otherwise"),
        }
    }
}

/// A consensus header's `auxpow` field: decoded, and the proof it carries checked for the hash it names,
/// as block import does.
///
/// Asserts the RLP round trip both ways (the encoding is canonical).
pub fn auxpow_header(data: &[u8]) {
    let Ok(header) = AuxPowHeader::decode(data) else { return };
    check_proof_header(&header, data);
}

/// The checks of a decoded proof header, shared with the consensus header targets.
pub(crate) fn check_proof_header(header: &AuxPowHeader, data: &[u8]) {
    let encoded = header.encoded();
    assert_eq!(encoded.as_ref(), data, "a decoded AuxPowHeader re-encodes to other bytes");
    assert_eq!(AuxPowHeader::decode(&encoded).as_ref(), Ok(header), "decode(encode(header)) != header");
    let _ = check_serialized(&header.proof, header.aux_hash(CHAIN_ID), CHAIN_ID, header.bits);
}
