//! geth's debug tracers and `eth_createAccessList` for the embedded execution engine.
//!
//! The engine prepares the state a transaction or call runs on (a block's parent with the transactions
//! before it replayed, or a block's state for a call) as any revm database, with the EVM environment and
//! the transaction; this crate runs it once more under revm-inspectors' inspectors and shapes the answer
//! as geth does:
//!
//! - [`trace`]: `debug_traceCall`, and [`trace_in_block`]: `debug_traceTransaction` (the block's system
//!   calls and the transactions before the traced one replayed first), with every built-in tracer
//!   revm-inspectors' [`DebugInspector`] serves: the default struct logger (opcode logs with pc, op, gas, gasCost, depth,
//!   stack, and memory, storage and return data as the options ask), `callTracer` (with `onlyTopCall` and
//!   `withLog`), `prestateTracer`, `4byteTracer`, `flatCallTracer`, `muxTracer` and `noopTracer`. JavaScript
//!   tracers are refused.
//! - [`access_list`]: runs a call with revm-inspectors' [`AccessListInspector`] until the list it
//!   collects no longer changes (geth's loop), then reports the list and the gas the call uses with it.
//!
//! Errors carry geth's messages where tools match on them ([`geth_error_message`]: a sender who cannot
//! pay gets `insufficient funds for gas * price + value: …`, not revm's `lack of funds`), and convert into
//! the engine interface's [`BackendError`].

use std::fmt::{Debug, Display};

use alloy_consensus::BlockHeader;
use alloy_eips::eip2930::{AccessList, AccessListResult};
use alloy_evm::{
    Evm, EvmEnv, EvmFactory,
    block::{BlockExecutionError, system_calls::SystemCaller},
    eth::EthEvmFactory,
};
use alloy_hardforks::EthereumHardforks;
use alloy_primitives::{Address, U256};
use alloy_rpc_types_trace::geth::{GethDebugTracingOptions, GethTrace};
use alys_el_api::BackendError;
use revm::{
    Database, DatabaseCommit, DatabaseRef,
    context::{
        TxEnv,
        result::{EVMError, ExecutionResult, HaltReason, InvalidTransaction, ResultAndState},
    },
};
pub use revm_inspectors::tracing::{DebugInspectorError, TransactionContext};
use revm_inspectors::{access_list::AccessListInspector, tracing::DebugInspector};

/// How many times [`access_list`] re-runs a call whose list keeps changing (each run can only add what
/// the previous list let it reach, so real calls settle in two or three).
pub const MAX_ACCESS_LIST_ROUNDS: usize = 16;

/// Why a trace or an access list could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum TraceError<E: Display> {
    /// The options name a tracer that is not served (JavaScript, unknown) or carry a config it cannot
    /// read.
    #[error("{0}")]
    Options(#[source] DebugInspectorError),
    /// The transaction is not valid on the state (nonce, funds, gas limit, fee caps...).
    #[error("{}", geth_error_message(source, *caller))]
    Transaction {
        /// The transaction's sender.
        caller: Address,
        /// What the EVM refused.
        #[source]
        source: EVMError<E>,
    },
    /// Replaying the block before the traced transaction failed (its state is not the one the block was
    /// executed on).
    #[error("replaying the block: {0}")]
    Replay(#[source] BlockExecutionError),
    /// A transaction before the traced one failed on replay.
    #[error("replaying transaction {index} of the block: {source}")]
    ReplayTransaction {
        /// Its index in the block.
        index: usize,
        /// What the EVM refused.
        #[source]
        source: EVMError<E>,
    },
    /// The tracer could not build its answer (a state read failed).
    #[error("{0}")]
    Result(#[source] DebugInspectorError<E>),
}

impl<E: Display> From<TraceError<E>> for BackendError {
    /// Bad tracer options are the caller's (`InvalidParams`); a refused transaction is an execution error
    /// in geth's words; a failed replay or state read is the engine's (`Internal`).
    fn from(err: TraceError<E>) -> Self {
        match err {
            TraceError::Options(e) => Self::InvalidParams(e.to_string()),
            TraceError::Transaction { caller, source } => {
                Self::Execution(geth_error_message(&source, caller))
            }
            TraceError::Replay(e) => Self::Internal(format!("replaying the block: {e}")),
            TraceError::ReplayTransaction { index, source } => {
                Self::Internal(format!("replaying transaction {index} of the block: {source}"))
            }
            TraceError::Result(e) => Self::Internal(e.to_string()),
        }
    }
}

/// geth's message for a transaction the EVM refused, where wallets match on it: a sender who cannot pay
/// `gas * price + value` gets `insufficient funds for gas * price + value: address … have … want …`
/// (revm's words are `lack of funds (…) for max fee (…)`); revm's words otherwise.
pub fn geth_error_message<E: Display>(err: &EVMError<E>, caller: Address) -> String {
    match err {
        EVMError::Transaction(InvalidTransaction::LackOfFundForMaxFee { fee, balance }) => {
            format!("insufficient funds for gas * price + value: address {caller} have {balance} want {fee}")
        }
        other => other.to_string(),
    }
}

/// `debug_traceTransaction`: on `db`, the state of the parent of the block `header` heads, runs the
/// block's system calls (EIP-2935, EIP-4788) and the transactions `before` the traced one, each
/// committed, then traces `tx` as [`trace`] does.
#[allow(clippy::too_many_arguments, reason = "the block's context, each part needed once")]
pub fn trace_in_block<DB, E>(
    db: DB,
    env: EvmEnv,
    forks: impl EthereumHardforks,
    header: &impl BlockHeader,
    before: impl IntoIterator<Item = TxEnv>,
    tx: TxEnv,
    options: GethDebugTracingOptions,
    context: Option<TransactionContext>,
) -> Result<GethTrace, TraceError<E>>
where
    DB: Database<Error = E> + DatabaseRef<Error = E> + DatabaseCommit + Debug,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut evm = EthEvmFactory::default().create_evm(db, env.clone());
    SystemCaller::new(forks).apply_pre_execution_changes(header, &mut evm).map_err(TraceError::Replay)?;
    for (index, earlier) in before.into_iter().enumerate() {
        evm.transact_commit(earlier).map_err(|source| TraceError::ReplayTransaction { index, source })?;
    }
    let (mut db, _) = evm.finish();
    trace(&mut db, env, tx, options, context)
}

/// Runs `tx` on `db` with the tracer `options` name and returns geth's answer for it; `context` names the
/// transaction and block for tracers that report them (`None` for a call).
pub fn trace<DB, E>(
    db: &mut DB,
    env: EvmEnv,
    tx: TxEnv,
    options: GethDebugTracingOptions,
    context: Option<TransactionContext>,
) -> Result<GethTrace, TraceError<E>>
where
    DB: Database<Error = E> + DatabaseRef<Error = E> + Debug,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut inspector = DebugInspector::new(options).map_err(TraceError::Options)?;
    let outcome = {
        let mut evm =
            EthEvmFactory::default().create_evm_with_inspector(&mut *db, env.clone(), &mut inspector);
        evm.transact(tx.clone()).map_err(|source| TraceError::Transaction { caller: tx.caller, source })?
    };
    inspector.get_result(context, &tx, &env.block_env, &outcome, db).map_err(TraceError::Result)
}

/// The access list of `tx` on `db` (every account and slot it touches, less its sender, its recipient and
/// the precompiles; the request's own list is kept) and the gas it uses with that list. A revert or halt
/// is reported in `error` with geth's message, as `eth_createAccessList` answers it.
pub fn access_list<DB, E>(db: &mut DB, env: EvmEnv, mut tx: TxEnv) -> Result<AccessListResult, TraceError<E>>
where
    DB: Database<Error = E> + Debug,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut list = tx.access_list.clone();
    for _ in 0..MAX_ACCESS_LIST_ROUNDS {
        tx.access_list = list.clone();
        let mut inspector = AccessListInspector::new(list.clone());
        let outcome: ResultAndState = {
            let mut evm =
                EthEvmFactory::default().create_evm_with_inspector(&mut *db, env.clone(), &mut inspector);
            evm.transact(tx.clone())
                .map_err(|source| TraceError::Transaction { caller: tx.caller, source })?
        };
        let found = inspector.into_access_list();
        if same_list(&found, &list) {
            return Ok(AccessListResult {
                access_list: found,
                gas_used: U256::from(outcome.result.tx_gas_used()),
                error: failure(&outcome.result),
            });
        }
        list = found;
    }
    // Still growing: answer the last list with what it costs, as geth would after its next round.
    tx.access_list = list.clone();
    let caller = tx.caller;
    let outcome = {
        let mut evm = EthEvmFactory::default().create_evm(&mut *db, env);
        evm.transact(tx).map_err(|source| TraceError::Transaction { caller, source })?
    };
    Ok(AccessListResult {
        access_list: list,
        gas_used: U256::from(outcome.result.tx_gas_used()),
        error: failure(&outcome.result),
    })
}

/// Whether two lists name the same accounts and slots, whatever their order.
fn same_list(a: &AccessList, b: &AccessList) -> bool {
    let normalize = |list: &AccessList| {
        let mut items: Vec<_> = list
            .iter()
            .map(|item| {
                let mut keys = item.storage_keys.clone();
                keys.sort_unstable();
                keys.dedup();
                (item.address, keys)
            })
            .collect();
        items.sort_unstable();
        items.dedup();
        items
    };
    normalize(a) == normalize(b)
}

/// geth's message for a call that did not succeed, `None` for one that did.
pub fn failure(result: &ExecutionResult) -> Option<String> {
    match result {
        ExecutionResult::Success { .. } => None,
        ExecutionResult::Revert { .. } => Some("execution reverted".to_owned()),
        ExecutionResult::Halt { reason, .. } => Some(halt_message(reason)),
    }
}

/// geth's message for an exceptional halt where tools match on it (`out of gas`, `invalid opcode`,
/// `write protection`, …); revm's words for the rest.
pub fn halt_message(reason: &HaltReason) -> String {
    match reason {
        HaltReason::OutOfGas(_) => "out of gas".to_owned(),
        HaltReason::OpcodeNotFound | HaltReason::InvalidFEOpcode => "invalid opcode".to_owned(),
        HaltReason::StateChangeDuringStaticCall => "write protection".to_owned(),
        HaltReason::CreateContractSizeLimit => "max code size exceeded".to_owned(),
        HaltReason::CallTooDeep => "max call depth exceeded".to_owned(),
        HaltReason::OutOfFunds => "insufficient balance for transfer".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]

    use alloy_primitives::{Address, B256, Bytes, TxKind, U256, address, bytes};
    use alloy_rpc_types_trace::geth::{
        CallConfig, GethDebugBuiltInTracerType, GethDebugTracerType, GethDefaultTracingOptions,
    };
    use revm::{
        bytecode::Bytecode,
        database::{CacheDB, EmptyDB},
        state::AccountInfo,
    };

    use super::*;

    const CALLER: Address = address!("0x00000000000000000000000000000000000ca11e");
    const OUTER: Address = address!("0x00000000000000000000000000000000000000aa");
    const INNER: Address = address!("0x00000000000000000000000000000000000000bb");

    /// INNER: `SLOAD(7)`, then logs and returns 42. OUTER: calls INNER with 1 wei and returns its answer.
    fn db() -> CacheDB<EmptyDB> {
        let mut db = CacheDB::new(EmptyDB::default());
        // PUSH1 7 SLOAD POP  PUSH1 0 PUSH1 0 LOG0  PUSH1 42 PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN
        let inner = bytes!("6007545060006000a0602a60005260206000f3");
        // PUSH1 32 PUSH1 0 PUSH1 0 PUSH1 0 PUSH1 1 PUSH20 INNER GAS CALL POP PUSH1 32 PUSH1 0 RETURN
        let mut outer = hex_code("6020600060006000600173");
        outer.extend_from_slice(INNER.as_slice());
        outer.extend_from_slice(&hex_code("5af15060206000f3"));
        let account = |code: Bytes, balance| {
            let code = Bytecode::new_raw(code);
            AccountInfo { balance, code_hash: code.hash_slow(), code: Some(code), ..Default::default() }
        };
        db.insert_account_info(INNER, account(inner, U256::ZERO));
        db.insert_account_info(OUTER, account(outer.into(), U256::from(10)));
        db.insert_account_info(
            CALLER,
            AccountInfo { balance: U256::from(1_000_000_000u64), ..Default::default() },
        );
        db
    }

    fn hex_code(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn tx() -> TxEnv {
        TxEnv { caller: CALLER, kind: TxKind::Call(OUTER), gas_limit: 200_000, ..Default::default() }
    }

    fn call_tracer(config: CallConfig) -> GethDebugTracingOptions {
        GethDebugTracingOptions::default()
            .with_tracer(GethDebugTracerType::BuiltInTracer(GethDebugBuiltInTracerType::CallTracer))
            .with_call_config(config)
    }

    #[test]
    fn call_tracer_shows_the_nested_call_and_its_log() {
        let config = CallConfig { only_top_call: None, with_log: Some(true) };
        let answer = trace(&mut db(), EvmEnv::default(), tx(), call_tracer(config), None).unwrap();
        let GethTrace::CallTracer(top) = answer else { panic!("{answer:?}") };
        assert_eq!((top.from, top.to), (CALLER, Some(OUTER)));
        assert_eq!(top.output.as_ref().unwrap().as_ref(), B256::from(U256::from(42)).as_slice());
        let inner = &top.calls[0];
        assert_eq!((inner.from, inner.to, inner.value), (OUTER, Some(INNER), Some(U256::from(1))));
        assert_eq!(inner.typ, "CALL");
        assert_eq!(inner.logs.len(), 1);
        assert_eq!(inner.output, top.output);

        let only_top = CallConfig { only_top_call: Some(true), with_log: None };
        let GethTrace::CallTracer(top) =
            trace(&mut db(), EvmEnv::default(), tx(), call_tracer(only_top), None).unwrap()
        else {
            panic!()
        };
        assert!(top.calls.is_empty());
    }

    #[test]
    fn struct_logger_records_opcodes_and_storage() {
        let options = GethDebugTracingOptions {
            config: GethDefaultTracingOptions::default().with_enable_memory(true),
            ..Default::default()
        };
        let GethTrace::Default(frame) = trace(&mut db(), EvmEnv::default(), tx(), options, None).unwrap()
        else {
            panic!()
        };
        assert!(!frame.failed);
        let first = &frame.struct_logs[0];
        assert_eq!((first.pc, first.op.as_ref(), first.depth), (0, "PUSH1", 1));
        let sload = frame.struct_logs.iter().find(|log| log.op == "SLOAD").unwrap();
        assert_eq!(sload.depth, 2);
        assert_eq!(sload.stack.as_ref().unwrap().last(), Some(&U256::from(7)));
        assert!(sload.storage.as_ref().unwrap().contains_key(&B256::from(U256::from(7))));
        assert!(frame.struct_logs.iter().any(|log| log.memory.as_ref().is_some_and(|m| !m.is_empty())));
    }

    #[test]
    fn a_sender_without_funds_gets_geths_message() {
        let mut poor = tx();
        poor.caller = address!("0x0000000000000000000000000000000000000bad");
        poor.gas_price = 1_000_000_000;
        let err = access_list(&mut db(), EvmEnv::default(), poor).unwrap_err();
        assert_eq!(
            err.to_string(),
            "insufficient funds for gas * price + value: address 0x0000000000000000000000000000000000000Bad \
             have 0 want 200000000000000"
        );
        assert_eq!(
            BackendError::from(err),
            BackendError::Execution(
                "insufficient funds for gas * price + value: address 0x0000000000000000000000000000000000000Bad \
                 have 0 want 200000000000000"
                    .into()
            )
        );
    }

    #[test]
    fn js_tracers_are_refused() {
        let options =
            GethDebugTracingOptions::default().with_tracer(GethDebugTracerType::JsTracer("{}".into()));
        assert!(matches!(
            trace(&mut db(), EvmEnv::default(), tx(), options, None),
            Err(TraceError::Options(DebugInspectorError::JsTracerNotEnabled))
        ));
    }

    #[test]
    fn access_list_holds_the_inner_contract_and_its_slot() {
        let result = access_list(&mut db(), EvmEnv::default(), tx()).unwrap();
        assert_eq!(result.error, None);
        let items = &result.access_list.0;
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0].address, INNER);
        assert_eq!(items[0].storage_keys, vec![B256::from(U256::from(7))]);
        // The gas is what the call costs with the list: more than without it would be cheaper to warm.
        assert!(result.gas_used > U256::from(21_000));

        let mut reverting = tx();
        reverting.kind = TxKind::Call(address!("0x00000000000000000000000000000000000000cc"));
        let mut db = db();
        db.insert_account_info(
            address!("0x00000000000000000000000000000000000000cc"),
            AccountInfo {
                code: Some(Bytecode::new_raw(bytes!("60006000fd"))),
                code_hash: B256::repeat_byte(1),
                ..Default::default()
            },
        );
        let result = access_list(&mut db, EvmEnv::default(), reverting).unwrap();
        assert_eq!(result.error.as_deref(), Some("execution reverted"));
    }
}
