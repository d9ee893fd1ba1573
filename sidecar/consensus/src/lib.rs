//! The consensus rules of Alys, as every node checks them: who may author a slot, how many approvals
//! make a block, what counts as equivocation, and how a consensus block binds the execution block it
//! carries.
//!
//! # Aura
//!
//! Authorities take turns by slot: `slot = floor(unix_time / slot_duration)` and the slot's author is
//! `authorities[slot mod n]` ([`Aura`]). The author builds and signs the block; the other authorities
//! verify it and sign approvals; a block is accepted with `ceil(2n/3)` approvals, aggregated into one BLS
//! signature. A block from a slot ahead of the local clock (beyond a small tolerance) is refused; two
//! different blocks by one author for one slot are an [`Equivocation`].
//!
//! # The execution block
//!
//! A consensus block carries its execution block RLP-encoded ([`execution`]): it must hash to the
//! header's `execution_block_hash`, have the consensus height as its number, bind the consensus parent
//! (in `prevRandao` and, from Cancun, `parentBeaconBlockRoot`), and mint exactly the withdrawals the
//! header claims: its peg-ins (`sats × 10` gwei each, in order), then any merged-mining reward.

pub mod aura;
pub mod execution;

pub use aura::{Aura, AuraError, Equivocation, EquivocationDetector};
pub use execution::{
    ExecutionBlockError, block_to_payload, check_withdrawals, decode_execution_block, encode_execution_block,
    payload_to_block, pegin_withdrawals, refund_withdrawals, requests_of, versioned_hashes,
};
