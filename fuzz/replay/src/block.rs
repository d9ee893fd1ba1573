//! Consensus blocks and headers, as peers send them, and the execution block a consensus block carries.

use alloy_consensus::{Block, TxEnvelope};
use alloy_rlp::Decodable;
use alloy_rpc_types_engine::{CancunPayloadFields, ExecutionPayloadSidecar, PraguePayloadFields};
use alys_auxpow::AuxPowHeader;
use alys_consensus::{block_to_payload, decode_execution_block, pegin_withdrawals, requests_of};
use alys_primitives::{Approvals, ConsensusHeader, SignedBlock};

use crate::auxpow::check_proof_header;

/// A consensus header (RLP): decoded, its proof header decoded and checked, its peg-ins turned into the
/// withdrawals that mint them.
///
/// Asserts the RLP round trip both ways: a header has one encoding, so its hash is the hash of the bytes
/// that were received.
pub fn consensus_header(data: &[u8]) {
    let Ok(header) = ConsensusHeader::decode(data) else { return };
    check_header(&header);
    assert_eq!(header.encoded(), data, "a decoded ConsensusHeader re-encodes to other bytes");
}

fn check_header(header: &ConsensusHeader) {
    let encoded = header.encoded();
    assert_eq!(ConsensusHeader::decode(&encoded).as_ref(), Ok(header), "decode(encode(header)) != header");
    assert_eq!(header.hash(), alloy_primitives::keccak256(&encoded));
    if !header.auxpow.is_empty()
        && let Ok(proof) = AuxPowHeader::decode(&header.auxpow)
    {
        check_proof_header(&proof, &header.auxpow);
    }
    let withdrawals = pegin_withdrawals(&header.pegins);
    assert_eq!(withdrawals.len(), header.pegins.len());
}

/// A consensus block (RLP) as a peer sends it: decoded, its approvals read, its execution block decoded
/// and bound to the header, and turned into the Engine API payload import hands to the execution client.
///
/// Asserts the RLP round trips of the block and of the execution block it carries, and that the signer
/// bitfield reads back to itself. The execution block is tried twice: against the header as received
/// (almost always a hash mismatch) and against the header fixed to commit to it, so the fuzzer reaches
/// the payload conversion behind the hash check.
pub fn signed_block(data: &[u8]) {
    let Ok(block) = SignedBlock::decode(data) else { return };
    assert_eq!(block.encoded(), data, "a decoded SignedBlock re-encodes to other bytes");
    assert_eq!(SignedBlock::decode(&block.encoded()).as_ref(), Ok(&block), "decode(encode(block)) != block");
    check_header(&block.header);
    check_approvals(&block.approvals);
    let _ = decode_execution_block(&block);

    let mut bytes = block.execution_block.as_ref();
    let Ok(execution) = Block::<TxEnvelope>::decode(&mut bytes) else { return };
    if !bytes.is_empty() {
        return;
    }
    let reencoded = alloy_rlp::encode(&execution);
    assert_eq!(
        Block::<TxEnvelope>::decode(&mut reencoded.as_slice()).as_ref(),
        Ok(&execution),
        "decode(encode(execution block)) != execution block"
    );
    let hash = execution.header.hash_slow();
    let mut bound = block.clone();
    bound.header.execution_block_hash = hash;
    bound.header.height = execution.header.number;
    let Ok(execution) = decode_execution_block(&bound) else {
        panic!("an execution block that decodes, under a header committing to it, is refused")
    };
    let payload = block_to_payload(hash, &execution);
    let requests = requests_of(&bound);
    let cancun = CancunPayloadFields {
        parent_beacon_block_root: execution.header.parent_beacon_block_root.unwrap_or_default(),
        versioned_hashes: Vec::new(),
    };
    // What the execution client does with the payload: back to a block, which must not panic.
    for sidecar in [
        ExecutionPayloadSidecar::none(),
        ExecutionPayloadSidecar::v3(cancun.clone()),
        ExecutionPayloadSidecar::v4(cancun, PraguePayloadFields::new(requests)),
    ] {
        let _ = payload.clone().try_into_block_with_sidecar::<TxEnvelope>(&sidecar);
    }
}

fn check_approvals(approvals: &Approvals) {
    let indexes = approvals.signer_indexes();
    assert!(indexes.windows(2).all(|w| matches!(w, [a, b] if a < b)), "signer indexes not ascending");
    let trimmed = approvals.signers.iter().rposition(|b| *b != 0).map_or(0, |last| last + 1);
    assert_eq!(
        Approvals::bitfield(indexes).as_ref(),
        approvals.signers.get(..trimmed).unwrap_or_default(),
        "the signer bitfield does not read back to itself"
    );
}
