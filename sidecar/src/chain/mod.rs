//! Consensus: Aura slot schedule, authority keys, the consensus block and its approvals.
//!
//! Authorities take turns by slot: `slot = floor(unix_time / slot_duration)` and the slot's author is
//! `authorities[slot mod n]`. The author builds and signs the block; the other authorities verify it and
//! sign approvals; a block is accepted with `ceil(2n/3)` approvals, aggregated into one BLS signature.

pub mod actor;
pub mod aura;
pub mod block;
pub mod execution;
pub mod keys;

pub use actor::{
    AuxTemplate, ChainActor, ChainConfig, ChainMessage, ChainStatus, Clock, ImportError, MiningError,
    ProductionTiming, run_slot_clock, system_clock,
};
pub use aura::{Aura, AuraError, Equivocation, EquivocationDetector};
pub use block::{Approvals, ConsensusHeader, PegInRef, SignedBlock};
pub use keys::{AuthorityKey, AuthorityPublicKey, BlsSignature, KeyError};
