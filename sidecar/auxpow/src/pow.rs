//! The merged-mining proof itself: the standard serialized CAuxPow, Namecoin's validation rules (plus
//! Alys's output placement of the commitment), the compact target, and grinding a proof
//! ([`Grinder`], for the reference miner and tests). The difficulty retarget is the `retarget` module.
//!
//! # Where the commitment may be
//!
//! The parent coinbase commits to the chain merkle root (with one aux chain, the committed hash itself)
//! in one of two places:
//!
//! 1. **Namecoin**: in the coinbase input script, either right after the magic `fabe6d6d` (which must then
//!    appear exactly once), or, without the magic, starting within the first 20 bytes of the script.
//! 2. **Alys**: in the script of coinbase output 2 or 3 (indexes 1 and 2), as the 44-byte merged-mining
//!    header `fabe6d6d ‖ root ‖ size ‖ nonce`, the magic required and present once in that script.
//!
//! In both, the root is written in display byte order (reversed, as `createauxblock` prints the hash) and
//! is followed by the merkle size (`u32` LE, `2^branch length`) and the nonce (`u32` LE) that fixes the
//! chain's expected index in the chain merkle tree.

use alloy_primitives::B256;
use bitcoin::{
    Transaction, TxMerkleNode,
    block::Header,
    consensus::{Decodable, encode},
    hashes::{Hash, sha256d},
    pow::{CompactTarget, Target},
};

/// The merged-mining magic that precedes the chain merkle root.
pub const MERGED_MINING_MAGIC: [u8; 4] = [0xfa, 0xbe, 0x6d, 0x6d];
/// The longest chain merkle branch accepted.
pub const MAX_CHAIN_BRANCH: usize = 30;
/// Version bit a block sets when it is itself merge-mined (auxpow).
const VERSION_AUXPOW: i32 = 1 << 8;

/// A decoded CAuxPow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuxPow {
    /// The parent chain's coinbase transaction.
    pub coinbase: Transaction,
    /// Legacy parent block hash field (unused).
    pub parent_hash: bitcoin::BlockHash,
    /// Merkle branch linking the coinbase to the parent header's merkle root.
    pub coinbase_branch: Vec<TxMerkleNode>,
    /// The coinbase's index in the parent block (must be 0).
    pub coinbase_index: i32,
    /// Merkle branch linking our committed hash to the chain merkle root.
    pub chain_branch: Vec<TxMerkleNode>,
    /// Our index in the chain merkle tree.
    pub chain_index: i32,
    /// The parent chain's block header.
    pub parent: Header,
}

impl Decodable for AuxPow {
    // Decoding through the finite-reader path keeps rust-bitcoin's allocation caps on every vector.
    fn consensus_decode_from_finite_reader<R: bitcoin::io::Read + ?Sized>(
        r: &mut R,
    ) -> Result<Self, encode::Error> {
        Ok(Self {
            coinbase: Decodable::consensus_decode_from_finite_reader(r)?,
            parent_hash: Decodable::consensus_decode_from_finite_reader(r)?,
            coinbase_branch: Decodable::consensus_decode_from_finite_reader(r)?,
            coinbase_index: Decodable::consensus_decode_from_finite_reader(r)?,
            chain_branch: Decodable::consensus_decode_from_finite_reader(r)?,
            chain_index: Decodable::consensus_decode_from_finite_reader(r)?,
            parent: Decodable::consensus_decode_from_finite_reader(r)?,
        })
    }
}

/// The rule a proof failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuxPowError {
    /// The bytes are not a CAuxPow (or have trailing bytes).
    #[error("malformed auxpow: {0}")]
    Malformed(String),
    /// The coinbase has no inputs or no outputs.
    #[error("parent coinbase has no inputs or no outputs")]
    EmptyCoinbase,
    /// The coinbase is not at index 0 of the parent block.
    #[error("auxpow coinbase is not at index 0")]
    NotCoinbase,
    /// The parent block is itself merge-mined.
    #[error("auxpow parent block is itself auxpow")]
    ParentIsAuxPow,
    /// The parent block carries our chain id.
    #[error("auxpow parent has our chain id")]
    ParentHasOurChainId,
    /// The chain merkle branch is longer than 30.
    #[error("chain merkle branch too long ({0})")]
    ChainBranchTooLong(usize),
    /// The coinbase does not hash up to the parent header's merkle root.
    #[error("coinbase is not in the parent block's merkle tree")]
    MerkleRootMismatch,
    /// The chain merkle root is not in the coinbase.
    #[error("chain merkle root missing from the parent coinbase")]
    MissingRoot,
    /// The magic appears more than once.
    #[error("multiple merged-mining headers in the coinbase")]
    MultipleHeaders,
    /// The magic is not immediately before the root.
    #[error("merged-mining header is not just before the chain merkle root")]
    HeaderNotBeforeRoot,
    /// Without the magic, the root must start in the first 20 bytes.
    #[error("chain merkle root must start in the first 20 bytes of the coinbase script")]
    RootTooLate,
    /// The size and nonce after the root are missing.
    #[error("merkle size and nonce missing after the chain merkle root")]
    MissingSizeAndNonce,
    /// The committed merkle size is not 2^(branch length).
    #[error("merkle size {size} does not match branch length {branch}")]
    WrongMerkleSize {
        /// The committed size.
        size: u32,
        /// The branch length.
        branch: usize,
    },
    /// The chain index is not the one the nonce and chain id fix.
    #[error("wrong chain index {got}, expected {expected}")]
    WrongIndex {
        /// The proof's index.
        got: i32,
        /// The expected index.
        expected: u32,
    },
    /// The parent block's hash does not meet our target.
    #[error("parent block hash does not meet the target")]
    InsufficientWork,
    /// The compact target is invalid (negative, zero or overflowing).
    #[error("invalid compact target {0:#x}")]
    InvalidTarget(u32),
}

/// Decodes a serialized CAuxPow; trailing bytes, truncation and absurd lengths are errors.
pub fn decode_auxpow(bytes: &[u8]) -> Result<AuxPow, AuxPowError> {
    let proof: AuxPow =
        bitcoin::consensus::deserialize(bytes).map_err(|e| AuxPowError::Malformed(e.to_string()))?;
    if proof.coinbase.input.is_empty() || proof.coinbase.output.is_empty() {
        return Err(AuxPowError::EmptyCoinbase);
    }
    Ok(proof)
}

/// Namecoin's `CheckMerkleBranch`: folds `hash` up `branch` by the bits of `index`.
fn merkle_root(mut hash: [u8; 32], branch: &[TxMerkleNode], mut index: i32) -> [u8; 32] {
    for node in branch {
        let mut buf = [0u8; 64];
        let (left, right) = buf.split_at_mut(32);
        if index & 1 == 1 {
            left.copy_from_slice(&node.to_byte_array());
            right.copy_from_slice(&hash);
        } else {
            left.copy_from_slice(&hash);
            right.copy_from_slice(&node.to_byte_array());
        }
        hash = sha256d::Hash::hash(&buf).to_byte_array();
        index >>= 1;
    }
    hash
}

/// Namecoin's `getExpectedIndex`: the slot of chain `chain_id` in a chain merkle tree of height `height`.
pub fn expected_index(nonce: u32, chain_id: u32, height: usize) -> u32 {
    let mut rand = nonce.wrapping_mul(1_103_515_245).wrapping_add(12_345);
    rand = rand.wrapping_add(chain_id);
    rand = rand.wrapping_mul(1_103_515_245).wrapping_add(12_345);
    rand % (1u32 << height.min(31))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Where in `script` the root is, checked by Namecoin's placement rules; returns the offset after it.
fn locate_in_input(script: &[u8], root: &[u8; 32]) -> Result<usize, AuxPowError> {
    let pc = find(script, root).ok_or(AuxPowError::MissingRoot)?;
    match find(script, &MERGED_MINING_MAGIC) {
        Some(head) => {
            let after = script.get(head + 1..).unwrap_or_default();
            if find(after, &MERGED_MINING_MAGIC).is_some() {
                return Err(AuxPowError::MultipleHeaders);
            }
            if head + MERGED_MINING_MAGIC.len() != pc {
                return Err(AuxPowError::HeaderNotBeforeRoot);
            }
        }
        None if pc > 20 => return Err(AuxPowError::RootTooLate),
        None => {}
    }
    Ok(pc + root.len())
}

/// Alys's placement: the magic-prefixed header in output 2 or 3.
fn locate_in_outputs(coinbase: &Transaction, root: &[u8; 32]) -> Option<(usize, Vec<u8>)> {
    let mut header = MERGED_MINING_MAGIC.to_vec();
    header.extend_from_slice(root);
    coinbase.output.iter().skip(1).take(2).find_map(|out| {
        let script = out.script_pubkey.as_bytes();
        let at = find(script, &header)?;
        let after = script.get(at + 1..).unwrap_or_default();
        (find(after, &MERGED_MINING_MAGIC).is_none()).then(|| (at + header.len(), script.to_vec()))
    })
}

/// Checks a proof for `aux_hash` (the committed hash, as `createauxblock` hands it out) on chain
/// `chain_id` against the compact target `bits`. Returns the rule that failed.
pub fn check(proof: &AuxPow, aux_hash: B256, chain_id: u32, bits: u32) -> Result<(), AuxPowError> {
    if proof.coinbase.input.is_empty() || proof.coinbase.output.is_empty() {
        return Err(AuxPowError::EmptyCoinbase);
    }
    if proof.coinbase_index != 0 {
        return Err(AuxPowError::NotCoinbase);
    }
    let version = proof.parent.version.to_consensus();
    if version & VERSION_AUXPOW != 0 {
        return Err(AuxPowError::ParentIsAuxPow);
    }
    if (version >> 16) as u32 == chain_id {
        return Err(AuxPowError::ParentHasOurChainId);
    }
    let height = proof.chain_branch.len();
    if height > MAX_CHAIN_BRANCH {
        return Err(AuxPowError::ChainBranchTooLong(height));
    }
    // The committed hash is a uint256 in internal order: the reverse of how it is displayed.
    let mut internal = aux_hash.0;
    internal.reverse();
    let mut root = merkle_root(internal, &proof.chain_branch, proof.chain_index);
    root.reverse();

    let txid = proof.coinbase.compute_txid().to_byte_array();
    if merkle_root(txid, &proof.coinbase_branch, proof.coinbase_index)
        != proof.parent.merkle_root.to_byte_array()
    {
        return Err(AuxPowError::MerkleRootMismatch);
    }
    let input = proof.coinbase.input.first().map(|i| i.script_sig.as_bytes()).unwrap_or_default();
    let (after, script) = match locate_in_input(input, &root) {
        Ok(after) => (after, input.to_vec()),
        Err(AuxPowError::MissingRoot) => {
            locate_in_outputs(&proof.coinbase, &root).ok_or(AuxPowError::MissingRoot)?
        }
        Err(other) => return Err(other),
    };
    let tail: [u8; 8] = script
        .get(after..after + 8)
        .and_then(|t| t.try_into().ok())
        .ok_or(AuxPowError::MissingSizeAndNonce)?;
    let size = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    let nonce = u32::from_le_bytes([tail[4], tail[5], tail[6], tail[7]]);
    if u64::from(size) != 1u64 << height {
        return Err(AuxPowError::WrongMerkleSize { size, branch: height });
    }
    let expected = expected_index(nonce, chain_id, height);
    if i64::from(proof.chain_index) != i64::from(expected) {
        return Err(AuxPowError::WrongIndex { got: proof.chain_index, expected });
    }
    let target = target_of(bits)?;
    if !target.is_met_by(proof.parent.block_hash()) {
        return Err(AuxPowError::InsufficientWork);
    }
    Ok(())
}

/// The whole check as one pure function over outside bytes: decodes the serialized CAuxPow and checks it
/// for `aux_hash` on chain `chain_id` against the compact target `bits`; returns the rule that failed.
pub fn check_serialized(proof: &[u8], aux_hash: B256, chain_id: u32, bits: u32) -> Result<(), AuxPowError> {
    check(&decode_auxpow(proof)?, aux_hash, chain_id, bits)
}

/// The target of a compact `bits`, refused as Bitcoin's `CheckProofOfWork` refuses it: negative, zero
/// (after the shift of a small exponent) or overflowing 256 bits.
pub fn target_of(bits: u32) -> Result<Target, AuxPowError> {
    let exponent = bits >> 24;
    let mantissa = bits & 0x007f_ffff;
    let word = if exponent <= 3 { mantissa >> (8 * (3 - exponent)) } else { mantissa };
    let overflows = exponent > 34 || (word > 0xff && exponent > 33) || (word > 0xffff && exponent > 32);
    if bits & 0x0080_0000 != 0 || word == 0 || overflows {
        return Err(AuxPowError::InvalidTarget(bits));
    }
    Ok(Target::from_compact(CompactTarget::from_consensus(bits)))
}

/// The target as 32 little-endian bytes (`_target` in `createauxblock`).
pub fn target_le_bytes(bits: u32) -> [u8; 32] {
    target_of(bits).map(|t| t.to_le_bytes()).unwrap_or([0xff; 32])
}

/// Builds a proof for `aux_hash` by grinding the parent header's nonce, from nonce 0 (tests and
/// benches): [`Grinder`] for at most `max_tries` headers. `None` when none met `bits` or `bits` is not a
/// valid target. The proof's chain merkle tree has height 0, which suits every chain id, so the chain
/// id (kept for symmetry with [`check`]) does not change it.
pub fn mine(aux_hash: B256, _chain_id: u32, bits: u32, max_tries: u32) -> Option<Vec<u8>> {
    Grinder::new(aux_hash, bits).ok()?.grind(max_tries)
}

/// A parent block being ground for a proof of one committed hash: how the reference miner and the tests
/// make proofs.
///
/// The parent coinbase commits to the hash in its input script (Namecoin placement, with the magic,
/// chain merkle tree of height 0); the header's nonce is searched from 0, and each time the nonce space
/// wraps the header's `time` (which Alys does not check) moves on, so the search never runs dry. The
/// first 64 bytes of the header never change while grinding, so their SHA-256 midstate is computed once
/// and each try hashes only the last 16 bytes (two compressions instead of three).
#[derive(Clone)]
pub struct Grinder {
    coinbase: Transaction,
    parent: Header,
    target: Target,
    midstate: bitcoin::hashes::sha256::HashEngine,
    tries: u64,
}

impl std::fmt::Debug for Grinder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grinder")
            .field("parent", &self.parent)
            .field("target", &self.target)
            .field("tries", &self.tries)
            .finish_non_exhaustive()
    }
}

impl Grinder {
    /// A grinder for `aux_hash` against the compact target `bits`. The proof suits any chain id: with
    /// one aux chain the chain merkle tree has height 0 and every chain's expected index is 0.
    pub fn new(aux_hash: B256, bits: u32) -> Result<Self, AuxPowError> {
        use bitcoin::{
            Amount, OutPoint, ScriptBuf, Sequence, TxIn, TxOut, Witness, absolute::LockTime, block::Version,
            hashes::HashEngine, transaction,
        };
        let target = target_of(bits)?;
        let mut script = vec![0x03, 0x01, 0x00, 0x00]; // height push, as a real coinbase starts
        script.extend_from_slice(&MERGED_MINING_MAGIC);
        script.extend_from_slice(aux_hash.as_slice());
        script.extend_from_slice(&1u32.to_le_bytes()); // merkle size 2^0
        script.extend_from_slice(&0u32.to_le_bytes()); // nonce: expected index 0 for a height-0 tree
        let coinbase = Transaction {
            version: transaction::Version::ONE,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: ScriptBuf::from_bytes(script),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![TxOut { value: Amount::from_sat(0), script_pubkey: ScriptBuf::new() }],
        };
        let merkle_root = TxMerkleNode::from_byte_array(coinbase.compute_txid().to_byte_array());
        let parent = Header {
            version: Version::from_consensus(0x2000_0000),
            prev_blockhash: bitcoin::BlockHash::all_zeros(),
            merkle_root,
            time: 0,
            bits: CompactTarget::from_consensus(0x1d00_ffff),
            nonce: 0,
        };
        let header = encode::serialize(&parent);
        let mut midstate = bitcoin::hashes::sha256::HashEngine::default();
        midstate.input(header.get(..64).unwrap_or_default());
        Ok(Self { coinbase, parent, target, midstate, tries: 0 })
    }

    /// Hashes up to `tries` more headers and returns the serialized CAuxPow of the first one that meets
    /// the target; the next call continues after it.
    pub fn grind(&mut self, tries: u32) -> Option<Vec<u8>> {
        use bitcoin::hashes::{HashEngine, sha256};
        // Bytes 64..80 of the header: the merkle root's last 4 bytes, time, bits, nonce.
        let root = self.parent.merkle_root.to_byte_array();
        let mut tail = [0u8; 16];
        tail[..4].copy_from_slice(root.get(28..).unwrap_or_default());
        tail[8..12].copy_from_slice(&self.parent.bits.to_consensus().to_le_bytes());
        for _ in 0..tries {
            tail[4..8].copy_from_slice(&self.parent.time.to_le_bytes());
            tail[12..].copy_from_slice(&self.parent.nonce.to_le_bytes());
            let mut engine = self.midstate.clone();
            engine.input(&tail);
            let first = sha256::Hash::from_engine(engine);
            let hash = bitcoin::BlockHash::from_byte_array(
                sha256::Hash::hash(first.as_byte_array()).to_byte_array(),
            );
            self.tries += 1;
            let found = self.target.is_met_by(hash).then(|| self.proof());
            self.parent.nonce = self.parent.nonce.wrapping_add(1);
            if self.parent.nonce == 0 {
                self.parent.time = self.parent.time.wrapping_add(1);
            }
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// Headers hashed so far.
    pub const fn tries(&self) -> u64 {
        self.tries
    }

    /// The serialized CAuxPow of the current header.
    fn proof(&self) -> Vec<u8> {
        let mut out = encode::serialize(&self.coinbase);
        out.extend_from_slice(&[0u8; 32]); // legacy parent hash
        out.push(0); // empty coinbase branch
        out.extend_from_slice(&0i32.to_le_bytes());
        out.push(0); // empty chain branch
        // In a chain merkle tree of height 0 every chain's expected index is 0.
        out.extend_from_slice(&0i32.to_le_bytes());
        out.extend_from_slice(&encode::serialize(&self.parent));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::{Amount, ScriptBuf, TxOut, block::Version, consensus::serialize};

    const CHAIN: u32 = 0x2121;
    const EASY: u32 = 0x207f_ffff;

    fn aux() -> B256 {
        B256::repeat_byte(0x42)
    }

    fn commitment(root: &[u8], size: u32, nonce: u32) -> Vec<u8> {
        let mut v = root.to_vec();
        v.extend_from_slice(&size.to_le_bytes());
        v.extend_from_slice(&nonce.to_le_bytes());
        v
    }

    /// A proof with `script` as the coinbase input script, sealed (merkle root set, nonce ground).
    fn proof_with(script: Vec<u8>) -> AuxPow {
        let bytes = mine(aux(), CHAIN, EASY, 1_000).unwrap();
        let mut proof = decode_auxpow(&bytes).unwrap();
        proof.coinbase.input[0].script_sig = ScriptBuf::from_bytes(script);
        seal(proof)
    }

    fn seal(mut proof: AuxPow) -> AuxPow {
        proof.parent.merkle_root = TxMerkleNode::from_byte_array(merkle_root(
            proof.coinbase.compute_txid().to_byte_array(),
            &proof.coinbase_branch,
            proof.coinbase_index,
        ));
        let target = target_of(EASY).unwrap();
        proof.parent.nonce = (0..10_000)
            .find(|n| {
                let mut h = proof.parent;
                h.nonce = *n;
                target.is_met_by(h.block_hash())
            })
            .unwrap();
        proof
    }

    fn magic_then(rest: &[u8]) -> Vec<u8> {
        let mut v = vec![0x03, 0x01, 0x00, 0x00];
        v.extend_from_slice(&MERGED_MINING_MAGIC);
        v.extend_from_slice(rest);
        v
    }

    /// A real merged-mining proof: Namecoin block 19200's 80-byte header followed by its CAuxPow.
    const NMC_19200: &str = "0101010036909ac07a1673daf65fa7d828882e66c9e89f8546cdd50a9fb10000000000000f5c6549bcd608ab7c4eac593e5bd5a73b2d432eb63518708f778fc7dcdfaf888d1a904e69b2001b0000000001000000010000000000000000000000000000000000000000000000000000000000000000ffffffff35045dee091a014d522cfabe6d6dd8a7c3e01e1e95bcee015e6fcc7583a2ca60b79e5a3aa0a171eddd344ada903d0100000000000000ffffffff0160a0102a01000000434104f8bbe97ed2acbc5bba11c68f6f1a0313f918f3d3c0e8475055e351e3bf442f8c8dcee682d2457bdc5351b70dd9e34026766eba18b06eaee2e102efd1ab634667ac00000000000000000000000000000000000000000000000000000000000000000000000005050ac4a1a1e1bce0c48e555b1a9f935281968c72d6379b24729ca0425a3fc3cb433cd348b35ea22806cf21c7b146489aef6989551eb5ad2373ab6121060f30341d648757c0217d43e66c57eaed64fc1820ec65d157f33b741965183a5e0c8506ac2602dfe2f547012d1cc75004d48f97aba46bd9930ff285c9f276f5bd09f356df19724579d65ec7cb62bf97946dfc6fb0e3b2839b7fdab37cdb60e55122d35b0000000000000000000100000008be13295c03e67cb70d00dae81ea06e78b9014e5ceb7d9ba504000000000000e0fd42db8ef6d783f079d126bea12e2d10c104c0927cd68f954d856f9e8111e59a23904e5dee091a1c655086";

    /// A Marathon coinbase (Bitcoin block 00000000000000000002f3cb…bc1a) carrying Alys's commitment as
    /// the whole 44-byte script of output 2 (after the payout and the witness commitment): the form
    /// Alys's pools mine today.
    const MARATHON_COINBASE: &str = "010000000001010000000000000000000000000000000000000000000000000000000000000000ffffffff2f03bd7e0c04721566652f7a7a616d78632f76649b3c094f135bf4b83108c14ea85f12edd2045a0075000000ffffffffffffffff039df4662700000000160014b6f3cfc20084e3b9f0d12b0e6f9da8fcbcf5a2d90000000000000000266a24aa21a9edb211480d24c30a0d4df77d79618af9f03c2bb0dced634e7b152af2247a9ca99c00000000000000002cfabe6d6da62edaca27060f885a1935a8f9f4401e65a6c9d936a5a9fb384a0b9fae07a983010000000000000001200000000000000000000000000000000000000000000000000000000000000000173d850d";

    #[test]
    fn a_real_marathon_coinbase_with_the_alys_output_commitment_verifies() {
        let bytes = alloy_primitives::hex::decode(MARATHON_COINBASE).unwrap();
        let coinbase: Transaction = bitcoin::consensus::deserialize(&bytes).unwrap();
        let mut proof = proof_with(vec![0x03, 0x01, 0x00, 0x00]);
        proof.coinbase = coinbase;
        let proof = seal(proof);
        // The pool copied the hash `createauxblock` handed out into the output, byte for byte.
        let aux: B256 = "a62edaca27060f885a1935a8f9f4401e65a6c9d936a5a9fb384a0b9fae07a983".parse().unwrap();
        check(&proof, aux, CHAIN, EASY).unwrap();
        assert_eq!(check(&proof, B256::repeat_byte(7), CHAIN, EASY), Err(AuxPowError::MissingRoot));
    }

    #[test]
    fn a_real_namecoin_proof_verifies() {
        let bytes = alloy_primitives::hex::decode(NMC_19200).unwrap();
        // The committed hash is the Namecoin block hash, in the display order `getblock` prints.
        let aux: B256 = "d8a7c3e01e1e95bcee015e6fcc7583a2ca60b79e5a3aa0a171eddd344ada903d".parse().unwrap();
        let bits = 0x1b00_b269; // Namecoin's target at that height
        check_serialized(&bytes[80..], aux, 1, bits).unwrap();
        assert_eq!(check_serialized(&bytes[80..], aux, 0, bits), Err(AuxPowError::ParentHasOurChainId));
        assert_eq!(check_serialized(&bytes[80..], B256::ZERO, 1, bits), Err(AuxPowError::MissingRoot));
        assert_eq!(check_serialized(&bytes[80..], aux, 1, 0x1a00_ffff), Err(AuxPowError::InsufficientWork));
    }

    #[test]
    fn mined_proof_round_trips_and_verifies() {
        let bytes = mine(aux(), CHAIN, EASY, 1_000).unwrap();
        let proof = decode_auxpow(&bytes).unwrap();
        check(&proof, aux(), CHAIN, EASY).unwrap();
        assert_eq!(check(&proof, B256::repeat_byte(0x43), CHAIN, EASY), Err(AuxPowError::MissingRoot));
    }

    #[test]
    fn decoder_refuses_garbage() {
        let bytes = mine(aux(), CHAIN, EASY, 1_000).unwrap();
        assert!(matches!(decode_auxpow(&[]), Err(AuxPowError::Malformed(_))));
        assert!(matches!(decode_auxpow(&bytes[..bytes.len() - 1]), Err(AuxPowError::Malformed(_))));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(decode_auxpow(&trailing), Err(AuxPowError::Malformed(_))));
        // A huge branch length prefix must not allocate or panic.
        let mut proof = decode_auxpow(&bytes).unwrap();
        proof.coinbase_branch.clear();
        let mut absurd = serialize(&proof.coinbase);
        absurd.extend_from_slice(&[0u8; 32]);
        absurd.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert!(matches!(decode_auxpow(&absurd), Err(AuxPowError::Malformed(_))));
        for len in 0..bytes.len().min(200) {
            let _ = decode_auxpow(&bytes[..len]);
        }
    }

    #[test]
    fn mutated_proofs_never_panic() {
        // A deterministic xorshift fuzz: flip, truncate and extend a valid proof many times.
        let valid = mine(aux(), CHAIN, EASY, 1_000).unwrap();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..5_000 {
            let mut bytes = valid.clone();
            match next() % 4 {
                0 => {
                    let at = (next() as usize) % bytes.len();
                    bytes[at] ^= (next() as u8) | 1;
                }
                1 => bytes.truncate((next() as usize) % bytes.len()),
                2 => bytes.extend((0..next() % 64).map(|_| next() as u8)),
                _ => {
                    let at = (next() as usize) % bytes.len();
                    bytes.insert(at, next() as u8);
                }
            }
            let _ = check_serialized(&bytes, aux(), CHAIN, EASY);
        }
        assert!(check_serialized(&valid, aux(), CHAIN, EASY).is_ok());
    }

    #[test]
    fn coinbase_without_inputs_or_outputs_is_refused() {
        let mut proof = proof_with(magic_then(&commitment(aux().as_slice(), 1, 0)));
        proof.coinbase.output.clear();
        assert_eq!(check(&proof, aux(), CHAIN, EASY), Err(AuxPowError::EmptyCoinbase));
        proof.coinbase.output.push(TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::new() });
        proof.coinbase.input.clear();
        assert_eq!(check(&proof, aux(), CHAIN, EASY), Err(AuxPowError::EmptyCoinbase));
    }

    #[test]
    fn placement_rules_in_the_input_script() {
        let good = commitment(aux().as_slice(), 1, 0);
        check(&proof_with(magic_then(&good)), aux(), CHAIN, EASY).unwrap();

        // Without the magic the root must start within the first 20 bytes.
        let mut early = vec![0u8; 20];
        early.extend_from_slice(&good);
        check(&proof_with(early), aux(), CHAIN, EASY).unwrap();
        let mut late = vec![0u8; 21];
        late.extend_from_slice(&good);
        assert_eq!(check(&proof_with(late), aux(), CHAIN, EASY), Err(AuxPowError::RootTooLate));

        let mut twice = magic_then(&good);
        twice.extend_from_slice(&MERGED_MINING_MAGIC);
        assert_eq!(check(&proof_with(twice), aux(), CHAIN, EASY), Err(AuxPowError::MultipleHeaders));

        let mut gap = magic_then(&[0u8]);
        gap.extend_from_slice(&good);
        assert_eq!(check(&proof_with(gap), aux(), CHAIN, EASY), Err(AuxPowError::HeaderNotBeforeRoot));

        assert_eq!(
            check(&proof_with(magic_then(&[1, 2, 3])), aux(), CHAIN, EASY),
            Err(AuxPowError::MissingRoot)
        );
        let short = magic_then(&commitment(aux().as_slice(), 1, 0)[..36]);
        assert_eq!(check(&proof_with(short), aux(), CHAIN, EASY), Err(AuxPowError::MissingSizeAndNonce));
        let wrong_size = magic_then(&commitment(aux().as_slice(), 2, 0));
        assert_eq!(
            check(&proof_with(wrong_size), aux(), CHAIN, EASY),
            Err(AuxPowError::WrongMerkleSize { size: 2, branch: 0 })
        );
    }

    #[test]
    fn alys_output_placement() {
        let mut header = MERGED_MINING_MAGIC.to_vec();
        header.extend_from_slice(&commitment(aux().as_slice(), 1, 0));
        for (index, ok) in [(1usize, true), (2, true), (3, false)] {
            let mut proof = proof_with(vec![0x03, 0x01, 0x00, 0x00]);
            while proof.coinbase.output.len() <= index {
                proof.coinbase.output.push(TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::new() });
            }
            let mut script = vec![0x6a, 44]; // OP_RETURN, push 44
            script.extend_from_slice(&header);
            proof.coinbase.output[index].script_pubkey = ScriptBuf::from_bytes(script);
            let proof = seal(proof);
            let result = check(&proof, aux(), CHAIN, EASY);
            assert_eq!(result.is_ok(), ok, "output {index}: {result:?}");
        }
    }

    #[test]
    fn chain_branch_index_and_length() {
        // A two-level chain tree: the root commits to size 4 and the nonce fixes our index.
        let nonce = 7;
        let index = expected_index(nonce, CHAIN, 2);
        let branch = vec![TxMerkleNode::from_byte_array([1; 32]), TxMerkleNode::from_byte_array([2; 32])];
        let mut internal = aux().0;
        internal.reverse();
        let mut root = merkle_root(internal, &branch, index as i32);
        root.reverse();
        let mut proof = proof_with(magic_then(&commitment(&root, 4, nonce)));
        proof.chain_branch = branch.clone();
        proof.chain_index = index as i32;
        check(&proof, aux(), CHAIN, EASY).unwrap();

        let wrong = (index + 1) % 4;
        let mut root = merkle_root(internal, &branch, wrong as i32);
        root.reverse();
        let mut bad = proof_with(magic_then(&commitment(&root, 4, nonce)));
        bad.chain_branch = branch;
        bad.chain_index = wrong as i32;
        assert_eq!(
            check(&bad, aux(), CHAIN, EASY),
            Err(AuxPowError::WrongIndex { got: wrong as i32, expected: index })
        );

        let mut long = proof;
        long.chain_branch = vec![TxMerkleNode::from_byte_array([0; 32]); MAX_CHAIN_BRANCH + 1];
        assert_eq!(check(&long, aux(), CHAIN, EASY), Err(AuxPowError::ChainBranchTooLong(31)));
    }

    #[test]
    fn parent_block_rules() {
        let good = magic_then(&commitment(aux().as_slice(), 1, 0));
        let mut not_coinbase = proof_with(good.clone());
        not_coinbase.coinbase_index = 1;
        assert_eq!(check(&not_coinbase, aux(), CHAIN, EASY), Err(AuxPowError::NotCoinbase));

        let mut auxpow_parent = proof_with(good.clone());
        auxpow_parent.parent.version = Version::from_consensus(0x2000_0100);
        assert_eq!(check(&auxpow_parent, aux(), CHAIN, EASY), Err(AuxPowError::ParentIsAuxPow));

        let mut same_chain = proof_with(good.clone());
        same_chain.parent.version = Version::from_consensus((CHAIN << 16) as i32 | 4);
        assert_eq!(check(&same_chain, aux(), CHAIN, EASY), Err(AuxPowError::ParentHasOurChainId));

        let mut unlinked = proof_with(good.clone());
        unlinked.parent.merkle_root = TxMerkleNode::from_byte_array([9; 32]);
        assert_eq!(check(&unlinked, aux(), CHAIN, EASY), Err(AuxPowError::MerkleRootMismatch));

        let proof = proof_with(good);
        assert_eq!(check(&proof, aux(), CHAIN, 0x1d00_ffff), Err(AuxPowError::InsufficientWork));
        assert_eq!(check(&proof, aux(), CHAIN, 0x0080_0001), Err(AuxPowError::InvalidTarget(0x0080_0001)));
    }

    #[test]
    fn compact_targets_are_refused_as_bitcoin_refuses_them() {
        for bits in [EASY, 0x1d00_ffff, 0x0101_0000, 0x0300_0001, 0x2100_ffff, 0x2200_00ff] {
            assert!(target_of(bits).is_ok(), "{bits:#x}");
        }
        // Negative, zero (also after a small exponent's shift) and overflowing encodings.
        for bits in [
            0x0080_0001,
            0x1d80_0000,
            0x0000_0000,
            0x1d00_0000,
            0x0100_0001,
            0x0200_00ff,
            0x2201_0000,
            0x2101_0000,
            0x2300_0001,
        ] {
            assert_eq!(target_of(bits), Err(AuxPowError::InvalidTarget(bits)), "{bits:#x}");
        }
    }

    #[test]
    fn the_grinder_finds_what_mine_finds_and_hashes_as_bitcoin_does() {
        // A target about 1 in 256 headers meets.
        let bits = 0x2000_ffff;
        let mut grinder = Grinder::new(aux(), bits).unwrap();
        let first = grinder.grind(100_000).unwrap();
        assert_eq!(Some(first.clone()), mine(aux(), CHAIN, bits, 100_000));
        let proof = decode_auxpow(&first).unwrap();
        check(&proof, aux(), CHAIN, bits).unwrap();
        assert_eq!(grinder.tries(), u64::from(proof.parent.nonce) + 1);
        // The midstate hash is the header's hash: the found header meets the target by Bitcoin's rules.
        assert!(target_of(bits).unwrap().is_met_by(proof.parent.block_hash()));
        // The next call continues after the found nonce.
        let second = decode_auxpow(&grinder.grind(100_000).unwrap()).unwrap();
        assert!(second.parent.nonce > proof.parent.nonce);
        check(&second, aux(), CHAIN, bits).unwrap();
        // An exhausted nonce space moves the time on instead of repeating headers.
        grinder.parent.nonce = u32::MAX - 2;
        let mut wrapped = None;
        for _ in 0..1_000 {
            if let Some(found) = grinder.grind(10) {
                wrapped = Some(decode_auxpow(&found).unwrap());
                if wrapped.as_ref().is_some_and(|p| p.parent.time == 1) {
                    break;
                }
            }
        }
        let wrapped = wrapped.unwrap();
        assert_eq!(wrapped.parent.time, 1);
        check(&wrapped, aux(), CHAIN, bits).unwrap();
        // A budget of 0 hashes nothing; an invalid target is refused up front.
        let tries = grinder.tries();
        assert_eq!(grinder.grind(0), None);
        assert_eq!(grinder.tries(), tries);
        assert_eq!(Grinder::new(aux(), 0).unwrap_err(), AuxPowError::InvalidTarget(0));
        assert_eq!(mine(aux(), CHAIN, 0x1d00_ffff, 100), None);
    }

    #[test]
    fn expected_index_is_namecoins_lcg() {
        assert_eq!(expected_index(0, CHAIN, 0), 0);
        let manual = {
            let r = 5u32.wrapping_mul(1_103_515_245).wrapping_add(12_345).wrapping_add(CHAIN);
            r.wrapping_mul(1_103_515_245).wrapping_add(12_345) % 8
        };
        assert_eq!(expected_index(5, CHAIN, 3), manual);
        assert!(expected_index(u32::MAX, u32::MAX, 30) < 1 << 30);
    }
}
