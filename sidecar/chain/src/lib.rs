//! The ChainActor: the one owner of the consensus chain in a node.
//!
//! Each slot the slot's author builds an execution payload through the Engine API, wraps it in a
//! consensus block, signs it, collects approvals and imports it; blocks from other authorities go through
//! the same import path. Import checks the Aura rules and approvals ([`alys_consensus`]), the execution
//! block against the header (hash, number, the withdrawals that mint peg-ins and rewards, the binding to
//! the consensus parent), has the execution client validate it (`newPayload`), and then stores it and
//! moves the head in one database transaction before telling the execution client (`forkchoiceUpdated`).
//! When the execution client has lost blocks (restarted without its data), the actor re-sends them from
//! its own database.
//!
//! The actor also runs merged mining ([`mining`]): it hands out work templates, queues valid proofs,
//! puts a proof in the next block it authors, and finalizes the batch a committed proof covers,
//! retargeting the difficulty. Production stops when too many blocks went without a proof.
//!
//! Readers that need no decision (RPC reading stored blocks) read the database directly; the actor
//! publishes where the chain stands ([`alys_primitives::ChainHeads`]) on a watch channel after every
//! commit.

mod actor;
mod execution;
mod federation;
pub mod metrics;
pub mod mining;
mod range;
mod templates;

pub use actor::{
    ChainActor, ChainConfig, ChainMessage, ChainStatus, Clock, ImportError, ProductionTiming, RangeOutcome,
    run_slot_clock, system_clock,
};
pub use federation::{ApprovalOutcome, ChainEvent};
pub use mining::{AuxTemplate, MiningError};
