//! The committed hash and the proof header a block carries.

use alloy_primitives::{Address, B256, Bytes, keccak256};
use alloy_rlp::{RlpDecodable, RlpEncodable};

/// Domain tag of the committed hash, so it can never collide with another RLP structure's hash.
pub const AUX_DOMAIN: &[u8] = b"alys-auxpow-v1";

#[derive(RlpEncodable)]
struct Commitment<'a> {
    domain: &'a [u8],
    chain_id: u64,
    finalized: B256,
    head: B256,
    head_height: u64,
    miner: Address,
}

/// The hash a miner's coinbase commits to for the batch `(finalized, head]` paid to `miner`.
pub fn aux_hash(chain_id: u32, finalized: B256, head: B256, head_height: u64, miner: Address) -> B256 {
    keccak256(alloy_rlp::encode(Commitment {
        domain: AUX_DOMAIN,
        chain_id: u64::from(chain_id),
        finalized,
        head,
        head_height,
        miner,
    }))
}

/// The merged-mining proof a consensus block carries in its `auxpow` field.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct AuxPowHeader {
    /// The last finalized block when the work was issued: the batch starts after it.
    pub finalized: B256,
    /// The last block of the batch; the proof finalizes it.
    pub head: B256,
    /// The height of `head`.
    pub head_height: u64,
    /// Where the miner's share of the batch's fees goes.
    pub miner: Address,
    /// The compact target (Bitcoin `nBits`) the proof had to meet.
    pub bits: u32,
    /// The serialized CAuxPow, as `submitauxblock` received it.
    pub proof: Bytes,
}

impl AuxPowHeader {
    /// The hash this proof commits to.
    pub fn aux_hash(&self, chain_id: u32) -> B256 {
        aux_hash(chain_id, self.finalized, self.head, self.head_height, self.miner)
    }

    /// The canonical encoding, as stored in the consensus header.
    pub fn encoded(&self) -> Bytes {
        alloy_rlp::encode(self).into()
    }

    /// Decodes the `auxpow` field of a consensus header; trailing bytes are refused.
    pub fn decode(mut bytes: &[u8]) -> Result<Self, alloy_rlp::Error> {
        let header = <Self as alloy_rlp::Decodable>::decode(&mut bytes)?;
        if !bytes.is_empty() {
            return Err(alloy_rlp::Error::UnexpectedLength);
        }
        Ok(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_commits_to_every_field() {
        let base = aux_hash(7, B256::repeat_byte(1), B256::repeat_byte(2), 10, Address::repeat_byte(3));
        assert_ne!(
            base,
            aux_hash(8, B256::repeat_byte(1), B256::repeat_byte(2), 10, Address::repeat_byte(3))
        );
        assert_ne!(
            base,
            aux_hash(7, B256::repeat_byte(9), B256::repeat_byte(2), 10, Address::repeat_byte(3))
        );
        assert_ne!(
            base,
            aux_hash(7, B256::repeat_byte(1), B256::repeat_byte(9), 10, Address::repeat_byte(3))
        );
        assert_ne!(
            base,
            aux_hash(7, B256::repeat_byte(1), B256::repeat_byte(2), 11, Address::repeat_byte(3))
        );
        assert_ne!(
            base,
            aux_hash(7, B256::repeat_byte(1), B256::repeat_byte(2), 10, Address::repeat_byte(4))
        );
    }

    #[test]
    fn header_round_trips_and_refuses_garbage() {
        let header = AuxPowHeader {
            finalized: B256::repeat_byte(1),
            head: B256::repeat_byte(2),
            head_height: 5,
            miner: Address::repeat_byte(3),
            bits: 0x207f_ffff,
            proof: Bytes::from_static(&[1, 2, 3]),
        };
        let bytes = header.encoded();
        assert_eq!(AuxPowHeader::decode(&bytes).unwrap(), header);
        assert_eq!(header.aux_hash(1), aux_hash(1, header.finalized, header.head, 5, header.miner));
        let mut trailing = bytes.to_vec();
        trailing.push(0);
        assert!(AuxPowHeader::decode(&trailing).is_err());
        assert!(AuxPowHeader::decode(&[]).is_err());
        assert!(AuxPowHeader::decode(&[0xc1, 0x80]).is_err());
    }
}
