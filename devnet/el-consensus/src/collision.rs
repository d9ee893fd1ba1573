//! EIP-7610: a contract creation at an address whose account has storage fails, as one at an account
//! with code or a nonce does (EIP-684).
//!
//! revm 43 checks only the target's nonce and code (`JournalInner::create_account_checkpoint`), and its
//! `Database` trait has no way to report storage, so the rule is the engine's: its database says which
//! accounts have storage but neither code nor nonce ([`StorageOnly`]), and [`StorageCollision`] fails a
//! creation at one of them before its init code runs, with the outcome revm gives any other collision.
//! Such accounts come only from a genesis allocation (storage is written by code, and an account loses
//! its code or nonce only by being destroyed), so [`block_evm`] inspects only blocks whose parent state
//! holds one; every other block executes uninspected.

use alloy_evm::{
    EvmEnv,
    eth::{EthEvm, EthEvmBuilder, EthEvmContext},
    precompiles::PrecompilesMap,
};
use alloy_primitives::{Address, Bytes};
use revm::{
    Database, Inspector,
    context_interface::{JournalTr, journaled_state::account::JournaledAccountTr},
    database::State,
    interpreter::{CreateInputs, CreateOutcome, Gas, InstructionResult, InterpreterResult},
    primitives::CALL_STACK_LIMIT,
};

/// A database that knows which accounts are storage-only: storage, but neither code nor a nonce.
pub trait StorageOnly {
    /// Whether the account at `address` has storage but neither code nor a nonce, as of the block's
    /// parent state.
    fn is_storage_only(&self, address: &Address) -> bool;
}

/// The EVM a block executes in over `db`, failing creations at storage-only accounts when the parent
/// state `has_storage_only` accounts.
pub fn block_evm<DB>(
    db: State<DB>,
    env: EvmEnv,
    has_storage_only: bool,
) -> EthEvm<State<DB>, StorageCollision, PrecompilesMap>
where
    DB: Database + StorageOnly,
    State<DB>: alloy_evm::Database,
{
    EthEvmBuilder::new(db, env).inspector(StorageCollision).set_inspect(has_storage_only).build()
}

/// Fails contract creations at storage-only accounts (EIP-7610).
#[derive(Debug, Clone, Copy, Default)]
pub struct StorageCollision;

impl<DB: Database + StorageOnly> Inspector<EthEvmContext<State<DB>>> for StorageCollision {
    fn create(
        &mut self,
        context: &mut EthEvmContext<State<DB>>,
        inputs: &mut CreateInputs,
    ) -> Option<CreateOutcome> {
        let journal = &mut context.journaled_state;
        // Creations that fail before revm's collision check (too deep, unaffordable value, nonce at its
        // maximum) are left to revm, so they fail as they would anyway.
        if journal.depth() > CALL_STACK_LIMIT as usize {
            return None;
        }
        let caller = journal.load_account(inputs.caller()).ok()?.data;
        let nonce = caller.info.nonce;
        if caller.info.balance < inputs.value() || nonce == u64::MAX {
            return None;
        }
        let target = inputs.created_address(nonce);
        let db = &journal.database;
        // An account destroyed earlier in the block lost its storage (only possible before Cancun).
        let destroyed = db.cache.accounts.get(&target).is_some_and(|a| a.status.was_destroyed());
        if destroyed || !db.database.is_storage_only(&target) {
            return None;
        }
        // revm's collision path: the creator's nonce is spent and the target warmed, then all gas goes.
        journal.load_account_mut(inputs.caller()).ok()?.data.bump_nonce();
        journal.load_account(target).ok()?;
        tracing::debug!(target: "el::evm", %target, "contract creation collides with storage (EIP-7610)");
        Some(CreateOutcome {
            result: InterpreterResult {
                result: InstructionResult::CreateCollision,
                output: Bytes::new(),
                gas: Gas::new_with_regular_gas_and_reservoir(inputs.gas_limit(), inputs.reservoir()),
            },
            address: None,
            charged_create_state_gas: inputs.charged_create_state_gas(),
        })
    }
}
