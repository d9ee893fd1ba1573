//! What federation peers send over libp2p: gossip of the approvals and evidence topics, and the frames
//! of the sync request/response protocol.

use alys_consensus::{AuraError, Equivocation};
use alys_network::{
    Request, Response,
    codec::{decode_request, decode_response, encode_request, encode_response},
};
use alys_primitives::{Approval, AuthorityKey, ConsensusHeader, EquivocationEvidence, KeyError};

use crate::fixtures::{AUTHORITIES, aura, authority_keys};

/// A gossip payload of the approvals or the evidence topic: the first byte picks the type (even: an
/// [`Approval`], odd: [`EquivocationEvidence`]), the rest is its RLP, as `alys-sync`'s gossip
/// validation decodes it.
///
/// Asserts the RLP round trip both ways (both types have one encoding), then checks the message against
/// the fixed three-authority Aura schedule ([`crate::fixtures::aura`]): a verdict or a typed error,
/// never a panic. Then, like the governance targets, re-signs it with the fixed authority keys to reach
/// past the signature checks: an approval by a known authority re-signed by that authority verifies,
/// and evidence of two different headers for one slot by the slot's author, both re-signed by the
/// author, proves that equivocation; signatures by another authority are refused.
pub fn gossip(data: &[u8]) {
    let Some((&kind, payload)) = data.split_first() else { return };
    if kind % 2 == 0 { approval(payload) } else { evidence(payload) }
}

fn approval(data: &[u8]) {
    let Ok(approval) = Approval::decode(data) else { return };
    assert_eq!(approval.encoded(), data, "a decoded Approval re-encodes to other bytes");
    assert_eq!(
        Approval::decode(&approval.encoded()).as_ref(),
        Ok(&approval),
        "decode(encode(approval)) != approval"
    );
    let aura = aura();
    let verdict = aura.verify_approval(&approval);
    let Some(key) = authority_keys().get(approval.authority as usize) else {
        assert_eq!(
            verdict,
            Err(AuraError::UnknownAuthority(approval.authority)),
            "approval by a non-authority"
        );
        return;
    };

    // Re-signed by its authority: accepted. Signed by another authority: refused.
    let signed = Approval { signature: signature(key, &approval.block_hash), ..approval.clone() };
    assert_eq!(
        Approval::decode(&signed.encoded()).as_ref(),
        Ok(&signed),
        "decode(encode(approval)) != approval"
    );
    assert_eq!(aura.verify_approval(&signed), Ok(()), "an approval signed by its authority is refused");
    let forged =
        Approval { signature: signature(other_key(approval.authority), &approval.block_hash), ..approval };
    assert_eq!(
        aura.verify_approval(&forged),
        Err(AuraError::ApprovalSignature(KeyError::BadSignature)),
        "an approval signed by another authority is accepted"
    );
}

fn evidence(data: &[u8]) {
    let Ok(evidence) = EquivocationEvidence::decode(data) else { return };
    assert_eq!(evidence.encoded(), data, "decoded EquivocationEvidence re-encodes to other bytes");
    assert_eq!(
        EquivocationEvidence::decode(&evidence.encoded()).as_ref(),
        Ok(&evidence),
        "decode(encode(evidence)) != evidence"
    );
    let aura = aura();
    if let Ok(proved) = aura.verify_evidence(&evidence) {
        check_equivocation(&evidence, &proved);
    }

    // Re-signed by the slot's author: everything behind the signature checks.
    let (first, second) = (&evidence.first, &evidence.second);
    if first.slot != second.slot || first.author != second.author || first.hash() == second.hash() {
        return;
    }
    let Some(key) = authority_keys().get(first.author as usize) else { return };
    if aura.author_of(first.slot) != first.author {
        return;
    }
    let signed = EquivocationEvidence {
        first_signature: signature(key, &first.hash()),
        second_signature: signature(key, &second.hash()),
        ..evidence.clone()
    };
    assert_eq!(
        EquivocationEvidence::decode(&signed.encoded()).as_ref(),
        Ok(&signed),
        "decode(encode(evidence)) != evidence"
    );
    match aura.verify_evidence(&signed) {
        Ok(proved) => check_equivocation(&signed, &proved),
        Err(e) => panic!("evidence signed by the slot's author is refused: {e}"),
    }
    // One header signed by another authority: not the author's equivocation.
    let forged = EquivocationEvidence {
        second_signature: signature(other_key(first.author), &second.hash()),
        ..signed
    };
    assert_eq!(
        aura.verify_evidence(&forged),
        Err(AuraError::AuthorSignature(KeyError::BadSignature)),
        "evidence with a header signed by another authority is accepted"
    );
}

/// Accepted evidence proves what it carries: one slot, its scheduled author, two different headers.
fn check_equivocation(evidence: &EquivocationEvidence, proved: &Equivocation) {
    let (first, second): (&ConsensusHeader, &ConsensusHeader) = (&evidence.first, &evidence.second);
    let expected =
        Equivocation { slot: first.slot, author: first.author, first: first.hash(), second: second.hash() };
    assert_eq!(proved, &expected, "verify_evidence proves something else than the evidence says");
    assert_eq!((second.slot, second.author), (first.slot, first.author), "evidence across slots or authors");
    assert_ne!(proved.first, proved.second, "the same block counted as an equivocation");
    assert!(proved.author < AUTHORITIES, "evidence against a non-authority");
    assert_eq!(aura().author_of(proved.slot), proved.author, "evidence against an author off its slot");
}

/// `key`'s signature over `hash`, as the node puts it in a message (96 compressed bytes).
fn signature(key: &AuthorityKey, hash: &alloy_primitives::B256) -> alloy_primitives::Bytes {
    key.sign(hash).to_bytes().to_vec().into()
}

/// The key of an authority other than `index` (an authority).
fn other_key(index: u32) -> &'static AuthorityKey {
    let keys = authority_keys();
    let other = (index as usize + 1) % keys.len();
    keys.get(other).unwrap_or_else(|| unreachable!("{other} < {}", keys.len()))
}

/// A frame body of the sync request/response protocol (without its 4-byte length prefix): the first
/// byte picks the direction (even: a [`Request`], odd: a [`Response`]), the rest is the payload
/// `alys_network::codec` decodes.
///
/// Asserts `decode(encode(x)) == x` for whatever decodes, and `encode(x)` equals the payload received:
/// the codec is canonical (fixed-width big-endian integers, exact length and count prefixes, a strict
/// 0/1 option tag, trailing bytes refused, a multiaddr kept as the bytes it was validated from), so a
/// payload that decodes has exactly one encoding.
pub fn sync_message(data: &[u8]) {
    let Some((&kind, payload)) = data.split_first() else { return };
    if kind % 2 == 0 {
        let Ok(request) = decode_request(payload) else { return };
        let _ = request.kind();
        let encoded = encode_request(&request);
        assert_eq!(decode_request(&encoded).as_ref(), Ok(&request), "decode(encode(request)) != request");
        assert_eq!(encoded, payload, "a decoded Request re-encodes to other bytes");
        if let Request::BlocksByHash(hashes) = &request {
            assert_eq!(payload.len(), 5 + 32 * hashes.len(), "BlocksByHash of the wrong length");
        }
    } else {
        let Ok(response) = decode_response(payload) else { return };
        let encoded = encode_response(&response);
        assert_eq!(decode_response(&encoded).as_ref(), Ok(&response), "decode(encode(response)) != response");
        assert_eq!(encoded, payload, "a decoded Response re-encodes to other bytes");
        if let Response::Peers(addrs) = &response {
            assert!(
                addrs.iter().all(|a| a.len() <= usize::from(u16::MAX)),
                "a multiaddr longer than its prefix"
            );
        }
    }
}
