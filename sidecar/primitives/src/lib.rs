//! The data every part of the Alys node agrees on: the consensus block and its one encoding, the
//! authorities' keys and signatures, and references to blocks.
//!
//! # Consensus blocks
//!
//! Alys runs two chains in lock step. The execution chain (reth, geth or the devnet engine) holds
//! accounts, contracts and transactions; the consensus chain, kept by the `alys` node, says which
//! execution block is canonical, who produced it and who approved it. Every consensus block carries
//! exactly one execution block, at the same height: a [`SignedBlock`] is a [`ConsensusHeader`] (parent,
//! height, Aura slot, author, execution block hash, claimed peg-ins, an optional merged-mining proof)
//! plus the execution block itself, the author's BLS signature and the aggregated [`Approvals`].
//! Its hash is `keccak256(RLP(header))` ([`block`] has the exact encoding).
//!
//! # Keys
//!
//! Authorities sign with BLS12-381 keys ([`keys`]): public keys in G1 (48 bytes), signatures in G2
//! (96 bytes), Ethereum's proof-of-possession ciphersuite, so approvals of one block aggregate into one
//! signature.

pub mod block;
pub mod keys;

#[doc(hidden)]
pub use fail as __fail;

/// Names a commit point for the crash-point tests (DESIGN invariant 8).
///
/// With `FAILPOINTS="<name>=return"` in the environment of a process that called
/// `fail::FailScenario::setup()` (the `alys` and `alys-devnet` binaries), or `fail::cfg(name, "return")`
/// in a test, the process aborts here at once, as a `kill -9` would: no destructor, no flush, no
/// graceful shutdown. Unarmed, it costs one lookup in an empty registry. `"2*off->return"` lets the
/// point pass twice and aborts on the third time.
#[macro_export]
macro_rules! crash_point {
    ($name:literal) => {
        $crate::__fail::fail_point!($name, |_| { ::std::process::abort() })
    };
}

pub use block::{
    Approval, Approvals, BurnRef, ConsensusHeader, EquivocationEvidence, PegInClaim, PegInOutput,
    PegoutBlock, Seal, SignedBlock, outpoint_key,
};
pub use keys::{
    AuthorityKey, AuthorityPublicKey, BatchItem, BlsSignature, KeyError, KeyFileError, verify_batch,
};

use alloy_primitives::B256;

/// A consensus block's height and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockRef {
    /// Height (equal to the execution block number).
    pub height: u64,
    /// Consensus block hash.
    pub hash: B256,
}

impl BlockRef {
    /// A reference to `hash` at `height`.
    pub const fn new(height: u64, hash: B256) -> Self {
        Self { height, hash }
    }
}

/// Where the consensus chain stands: what the chain actor publishes after every commit, for the parts
/// of the node that follow it (the bridge, RPC, governance status) without asking the actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHeads {
    /// The head.
    pub head: BlockRef,
    /// The head's execution block hash.
    pub head_execution_hash: B256,
    /// The last finalized block, if any block was finalized.
    pub finalized: Option<BlockRef>,
}
