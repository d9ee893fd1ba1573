//! Merged mining on the sidecar's side: what a miner's coinbase commits to, the proof a block carries,
//! how a proof finalizes a batch of blocks, how the fees of that batch are shared, and when production
//! must stop for lack of proofs.
//!
//! # The committed hash
//!
//! `createauxblock(miner)` answers a `hash` that commits to every block after the last finalized one up to
//! the current head, and to the miner's payout address:
//!
//! ```text
//! hash = keccak256(RLP[ "alys-auxpow-v1", chain_id: u64, finalized: B256, head: B256,
//!                       head_height: u64, miner: Address ])
//! ```
//!
//! `finalized` is the hash of the last finalized consensus block (the execution genesis hash before the
//! first proof) and `head` the consensus head the template was made for: the batch is
//! `(finalized, head]`. A proof for that hash finalizes `head`. Binding the payout address into the hash
//! means a proof cannot be replayed to pay someone else.
//!
//! # The proof in a block
//!
//! The next slot author puts an [`AuxPowHeader`] (RLP) in the consensus header's `auxpow` field: the
//! fields above, the compact target the proof met, and the serialized CAuxPow. Every node recomputes the
//! hash, checks the proof against it (all of Namecoin's rules, `alys-auxpow`), checks that `finalized` is
//! its finalized block and `head` an ancestor of the new block, and then finalizes `head`.
//!
//! # The target
//!
//! The compact target a proof must meet follows an absolute schedule of one proof per spacing
//! (ASERT, [`retarget`]): every half-life the proofs run ahead of the schedule halves the target, every
//! half-life behind doubles it, never easier than the pow limit. Each node computes it from the
//! timestamps of the blocks that carried proofs, so all agree on the bits a proof must meet.

mod commitment;
pub mod pow;
pub mod retarget;
mod reward;

pub use commitment::{AUX_DOMAIN, AuxPowHeader, aux_hash};
pub use reward::{RewardSplit, batch_fees, reward_withdrawals};

/// Merged-mining parameters of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MiningParams {
    /// This chain's merged-mining chain id (distinct from the parent chain's and other aux chains').
    pub chain_id: u32,
    /// The easiest allowed target, compact form (`nBits`); also the starting difficulty.
    pub pow_limit_bits: u32,
    /// Wanted time between proofs, in seconds.
    pub target_spacing_secs: u64,
    /// Seconds off the proof schedule that halve or double the target (ASERT's half-life).
    pub target_half_life_secs: u64,
    /// How a finalized batch's fees are shared.
    pub split: RewardSplit,
}

impl MiningParams {
    /// The difficulty retarget's parameters.
    pub const fn retarget(&self) -> retarget::RetargetParams {
        retarget::RetargetParams {
            pow_limit_bits: self.pow_limit_bits,
            spacing_secs: self.target_spacing_secs,
            half_life_secs: self.target_half_life_secs,
        }
    }
}
