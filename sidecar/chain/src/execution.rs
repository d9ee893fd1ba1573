//! What an import carries between its execution-client steps: the block to send with `newPayload`,
//! and what the execution client's validation leaves for the commit. Kept apart from the actor so that
//! the actor, the federation rules and range imports all build on it without depending on each other.

use alloy_consensus::{Block, TxEnvelope};
use alloy_rpc_types_engine::ExecutionPayload;
use alys_auxpow::AuxPowHeader;

/// An execution block ready for `newPayload`: decoded and checked, with its payload when it was built
/// here (so our own blocks are neither decoded nor hashed again).
#[derive(Debug)]
pub(crate) struct Execution {
    pub(crate) block: Block<TxEnvelope>,
    pub(crate) payload: Option<ExecutionPayload>,
}

/// A block the execution client validated, ready to commit: the proof it carries and its execution
/// timestamp.
#[derive(Debug)]
pub(crate) struct Executed {
    pub(crate) proof: Option<AuxPowHeader>,
    pub(crate) timestamp: u64,
}
