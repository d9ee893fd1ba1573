//! The consensus block: one canonical RLP encoding and its hash.
//!
//! ```text
//! ConsensusHeader = RLP[ parent_hash: B256, parent_seal: Seal, height: u64, slot: u64, author: u32,
//!                        execution_block_hash: B256, pegins: [PegInClaim], auxpow: bytes ]
//! Seal            = RLP[ author_signature: bytes96, approvals: Approvals ]   (the parent's; empty for height 1)
//! PegInClaim      = RLP[ txid: B256, bitcoin_block: B256, outputs: [PegInOutput], amount_sats: u64,
//!                        evm_address: Address ]
//! PegInOutput     = RLP[ vout: u32, amount_sats: u64, script_pubkey: bytes ]
//! PegoutBlock     = RLP[ paid: [BurnRef], refunded: [BurnRef], fee_rate_sat_vb: u64, tx: bytes,
//!                        replaces: B256 (trailing, optional) ]
//!                   (a trailing, optional header field)
//! BurnRef         = RLP[ block_number: u64, log_index: u64, block_hash: B256 ]
//! hash            = keccak256(RLP(ConsensusHeader))
//! SignedBlock     = RLP[ header, execution_block: bytes, execution_requests: [bytes],
//!                        author_signature: bytes96, approvals ]
//! Approvals       = RLP[ signers: bytes (bitfield, authority i = bit i%8 of byte i/8), signature: bytes96 ]
//! Approval        = RLP[ block_hash: B256, authority: u32, signature: bytes96 ]   (one authority's, gossiped)
//! Evidence        = RLP[ first: ConsensusHeader, first_signature: bytes96,
//!                        second: ConsensusHeader, second_signature: bytes96 ]
//! ```
//!
//! `parent_hash` is the parent consensus header's hash (the execution genesis hash for the first block),
//! `height` equals the execution block number, `auxpow` is empty when the block carries no proof. The
//! author signs `hash`; approvals are BLS signatures over the same `hash`, aggregated.
//!
//! `parent_seal` is the parent's author signature and approvals, as the author of this block holds them
//! (every importer checks them before it approves). A block's own seal travels beside its header, since
//! it signs the header's hash; its child's header then commits to it. So one block's verified quorum
//! vouches for every ancestor's header *and* seal through the hash chain: an honest authority approves a
//! block only after checking its parent's seal, and only when the parent is committed in its store. Sync
//! uses that to verify one quorum per range instead of one per block (see `alys-chain`'s `range`). The execution block
//! travels RLP-encoded beside the header and must hash to `execution_block_hash`; its EIP-7685 requests
//! (Prague) travel beside it, since `newPayloadV4` needs them and the block holds only their hash.

use alloy_primitives::{Address, B256, Bytes, keccak256};
use alloy_rlp::{RlpDecodable, RlpEncodable};

/// One output of a deposit transaction that pays a federation address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, RlpEncodable, RlpDecodable)]
pub struct PegInOutput {
    /// The output index in the deposit transaction.
    pub vout: u32,
    /// Its value in satoshis.
    pub amount_sats: u64,
    /// The federation script it pays (a P2WSH): whose UTXO it becomes once minted.
    pub script_pubkey: Bytes,
}

/// A deposit the block claims and mints: one Bitcoin transaction whose outputs to federation addresses
/// are minted together, as one withdrawal of their sum, to the EVM address its OP_RETURN names.
///
/// `txid` and `bitcoin_block` are in Bitcoin's internal byte order (the order `bitcoin::Txid` and
/// `bitcoin::BlockHash` hold, reversed from how explorers print them).
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct PegInClaim {
    /// The deposit transaction id.
    pub txid: B256,
    /// The Bitcoin block that confirmed it.
    pub bitcoin_block: B256,
    /// The outputs paying the federation, ascending by `vout`.
    pub outputs: Vec<PegInOutput>,
    /// The sum of `outputs`, in satoshis: what is minted.
    pub amount_sats: u64,
    /// The EVM address named by the deposit's OP_RETURN.
    pub evm_address: Address,
}

impl PegInClaim {
    /// The outpoints this claim mints: `txid ‖ vout (big endian)`, 36 bytes each.
    pub fn outpoints(&self) -> impl Iterator<Item = [u8; 36]> + '_ {
        self.outputs.iter().map(|o| outpoint_key(&self.txid, o.vout))
    }
}

/// The 36-byte key of an outpoint: the txid's 32 bytes, then the output index big endian.
pub fn outpoint_key(txid: &B256, vout: u32) -> [u8; 36] {
    let mut key = [0u8; 36];
    let (id, index) = key.split_at_mut(32);
    id.copy_from_slice(txid.as_slice());
    index.copy_from_slice(&vout.to_be_bytes());
    key
}

/// A burn on the bridge contract, by its place in the execution chain: the block that holds it and the
/// index of its log among all logs of that block (`alys_burns::BurnPosition`'s fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, RlpEncodable, RlpDecodable)]
pub struct BurnRef {
    /// Number of the execution block that holds the burn.
    pub block_number: u64,
    /// Index of the log among all logs of that block.
    pub log_index: u64,
    /// Hash of that block.
    pub block_hash: B256,
}

/// The peg-out a consensus block proposes: the finalized burns it settles (paid by `tx`, or refunded
/// as withdrawals when they cannot be paid) and the unsigned Bitcoin transaction that pays them.
///
/// Output `i` of `tx` pays `paid[i]`; an output after them is the change, back to the federation.
/// Every input spends a federation output. A transaction that pays no burn is a sweep: its one output
/// moves a previous federation's outputs to the current one. Every importer rebuilds the transaction
/// from the listed burns, its own federation UTXO set at the parent and the fee rate, and refuses the
/// block when it differs (`alys_bridge::pegout`).
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
#[rlp(trailing)]
pub struct PegoutBlock {
    /// The burns `tx` pays, in output order (chain order).
    pub paid: Vec<BurnRef>,
    /// The burns refunded to their burners as withdrawals, in chain order.
    pub refunded: Vec<BurnRef>,
    /// The fee rate the transaction was built at, sat/vB.
    pub fee_rate_sat_vb: u64,
    /// The unsigned transaction (Bitcoin consensus encoding, no witnesses); empty when every listed
    /// burn is refunded.
    pub tx: Bytes,
    /// A fee bump: the consensus hash of the block whose stuck transaction this one replaces (same
    /// inputs, same burns, a higher fee rate; BIP125). Absent from the encoding when `None`.
    pub replaces: Option<B256>,
}

/// The signed part of a consensus block.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
#[rlp(trailing)]
pub struct ConsensusHeader {
    /// Hash of the parent consensus header (the execution genesis hash for height 1).
    pub parent_hash: B256,
    /// The parent's author signature and approvals (empty for height 1, whose parent is the execution
    /// genesis): committed here, they are vouched for by every descendant's quorum.
    pub parent_seal: Seal,
    /// Height, equal to the execution block number.
    pub height: u64,
    /// The Aura slot the block was produced in.
    pub slot: u64,
    /// Index of the author in the authority set.
    pub author: u32,
    /// Hash of the execution block this consensus block carries.
    pub execution_block_hash: B256,
    /// The peg-ins minted by the execution block's withdrawals, in order.
    pub pegins: Vec<PegInClaim>,
    /// The serialized AuxPow proof this block includes, or empty.
    pub auxpow: Bytes,
    /// The peg-out this block proposes, if any. Absent from the encoding when `None`, so blocks
    /// without one hash as before this field existed.
    pub pegout: Option<PegoutBlock>,
}

impl ConsensusHeader {
    /// The canonical encoding.
    pub fn encoded(&self) -> Vec<u8> {
        alloy_rlp::encode(self)
    }

    /// The block hash: keccak256 of the canonical encoding.
    pub fn hash(&self) -> B256 {
        keccak256(self.encoded())
    }

    /// Decodes a header; trailing bytes are refused.
    pub fn decode(bytes: &[u8]) -> Result<Self, alloy_rlp::Error> {
        decode_exact(bytes)
    }
}

/// The signatures that make a block committed: its author's and its approvals. A block's own seal
/// travels beside its header ([`SignedBlock`]); its child's header carries a copy
/// ([`ConsensusHeader::parent_seal`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct Seal {
    /// The author's BLS signature over the block hash (96 bytes).
    pub author_signature: Bytes,
    /// The aggregated approvals of the block hash.
    pub approvals: Approvals,
}

impl Seal {
    /// Whether this is the empty seal a first block carries for the execution genesis.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Aggregated approvals of a block.
#[derive(Debug, Clone, Default, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct Approvals {
    /// Bitfield of the approving authorities: authority `i` is bit `i % 8` of byte `i / 8`.
    pub signers: Bytes,
    /// The aggregate BLS signature over the block hash (96 bytes).
    pub signature: Bytes,
}

impl Approvals {
    /// The indexes of the approving authorities, ascending.
    pub fn signer_indexes(&self) -> Vec<u32> {
        let mut out = Vec::new();
        for (byte_index, byte) in self.signers.iter().enumerate() {
            for bit in 0..8u32 {
                if byte & (1 << bit) != 0 {
                    out.push(byte_index as u32 * 8 + bit);
                }
            }
        }
        out
    }

    /// A bitfield with the given authority indexes set.
    pub fn bitfield(indexes: impl IntoIterator<Item = u32>) -> Bytes {
        let mut bits: Vec<u8> = Vec::new();
        for index in indexes {
            let byte = (index / 8) as usize;
            if bits.len() <= byte {
                bits.resize(byte + 1, 0);
            }
            if let Some(slot) = bits.get_mut(byte) {
                *slot |= 1 << (index % 8);
            }
        }
        bits.into()
    }
}

/// A consensus block as exchanged between nodes and stored.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct SignedBlock {
    /// The signed header.
    pub header: ConsensusHeader,
    /// The execution block, RLP-encoded.
    pub execution_block: Bytes,
    /// The execution block's EIP-7685 requests, each `type ++ data` (empty before Prague).
    pub execution_requests: Vec<Bytes>,
    /// The author's BLS signature over the header hash (96 bytes).
    pub author_signature: Bytes,
    /// The aggregated approvals.
    pub approvals: Approvals,
}

impl SignedBlock {
    /// This block's seal (its author signature and approvals), as its child's header carries it.
    pub fn seal(&self) -> Seal {
        Seal { author_signature: self.author_signature.clone(), approvals: self.approvals.clone() }
    }

    /// The canonical encoding.
    pub fn encoded(&self) -> Vec<u8> {
        alloy_rlp::encode(self)
    }

    /// Decodes a block; trailing bytes are refused.
    pub fn decode(bytes: &[u8]) -> Result<Self, alloy_rlp::Error> {
        decode_exact(bytes)
    }
}

/// One authority's approval of a proposed block, as gossiped before the author aggregates them.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct Approval {
    /// The approved block's hash.
    pub block_hash: B256,
    /// The approving authority's index.
    pub authority: u32,
    /// Its BLS signature over `block_hash` (96 bytes).
    pub signature: Bytes,
}

impl Approval {
    /// The canonical encoding.
    pub fn encoded(&self) -> Vec<u8> {
        alloy_rlp::encode(self)
    }

    /// Decodes an approval; trailing bytes are refused.
    pub fn decode(bytes: &[u8]) -> Result<Self, alloy_rlp::Error> {
        decode_exact(bytes)
    }
}

/// Proof that an authority signed two different blocks for one slot: both headers with the author's
/// signatures. Anyone can check it with the author's public key alone.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct EquivocationEvidence {
    /// The block seen first.
    pub first: ConsensusHeader,
    /// The author's signature over `first`'s hash.
    pub first_signature: Bytes,
    /// The conflicting block.
    pub second: ConsensusHeader,
    /// The author's signature over `second`'s hash.
    pub second_signature: Bytes,
}

impl EquivocationEvidence {
    /// The canonical encoding.
    pub fn encoded(&self) -> Vec<u8> {
        alloy_rlp::encode(self)
    }

    /// Decodes evidence; trailing bytes are refused.
    pub fn decode(bytes: &[u8]) -> Result<Self, alloy_rlp::Error> {
        decode_exact(bytes)
    }
}

fn decode_exact<T: alloy_rlp::Decodable>(mut bytes: &[u8]) -> Result<T, alloy_rlp::Error> {
    let value = T::decode(&mut bytes)?;
    if !bytes.is_empty() {
        return Err(alloy_rlp::Error::UnexpectedLength);
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::address;

    fn header() -> ConsensusHeader {
        ConsensusHeader {
            parent_hash: B256::repeat_byte(1),
            parent_seal: Seal {
                author_signature: Bytes::from_static(&[5; 96]),
                approvals: Approvals {
                    signers: Bytes::from_static(&[3]),
                    signature: Bytes::from_static(&[6; 96]),
                },
            },
            height: 7,
            slot: 1_000,
            author: 2,
            execution_block_hash: B256::repeat_byte(2),
            pegins: vec![PegInClaim {
                txid: B256::repeat_byte(3),
                bitcoin_block: B256::repeat_byte(4),
                outputs: vec![PegInOutput {
                    vout: 1,
                    amount_sats: 50_000,
                    script_pubkey: Bytes::from_static(&[0; 34]),
                }],
                amount_sats: 50_000,
                evm_address: address!("0x00000000000000000000000000000000000000aa"),
            }],
            auxpow: Bytes::new(),
            pegout: None,
        }
    }

    #[test]
    fn encoding_round_trips_and_hash_commits_to_every_field() {
        let h = header();
        assert_eq!(ConsensusHeader::decode(&h.encoded()).unwrap(), h);
        let base = h.hash();
        let mut approvals = h.parent_seal.clone();
        approvals.approvals.signers = Bytes::from_static(&[7]);
        let mut variants = Vec::new();
        variants.push(ConsensusHeader { height: 8, ..h.clone() });
        variants.push(ConsensusHeader { slot: 1_001, ..h.clone() });
        variants.push(ConsensusHeader { author: 3, ..h.clone() });
        variants.push(ConsensusHeader { parent_hash: B256::ZERO, ..h.clone() });
        variants.push(ConsensusHeader { parent_seal: Seal::default(), ..h.clone() });
        variants.push(ConsensusHeader { parent_seal: approvals, ..h.clone() });
        variants.push(ConsensusHeader { execution_block_hash: B256::ZERO, ..h.clone() });
        variants.push(ConsensusHeader { pegins: vec![], ..h.clone() });
        variants.push(ConsensusHeader { auxpow: Bytes::from_static(b"x"), ..h });
        for v in variants {
            assert_ne!(v.hash(), base, "{v:?}");
        }
    }

    #[test]
    fn garbage_and_trailing_bytes_are_refused() {
        let mut bytes = header().encoded();
        bytes.push(0);
        assert!(ConsensusHeader::decode(&bytes).is_err());
        assert!(ConsensusHeader::decode(&[]).is_err());
        assert!(ConsensusHeader::decode(&[0xff, 0x00, 0x01]).is_err());
        assert!(SignedBlock::decode(&[0xc0]).is_err());
    }

    #[test]
    fn bitfield_round_trips() {
        let bits = Approvals::bitfield([0, 3, 9, 17]);
        let approvals = Approvals { signers: bits, signature: Bytes::new() };
        assert_eq!(approvals.signer_indexes(), vec![0, 3, 9, 17]);
        assert_eq!(Approvals::bitfield([]).len(), 0);
    }
}
