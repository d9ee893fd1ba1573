//! Executes the committed bridge runtime bytecode in revm and checks the behaviour wallets and the node
//! rely on: the burn, the exact event, the reverts, and one event per call.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]

use alloy_primitives::{Address, Bytes, Log, U256, address};
use alloy_sol_types::{SolCall, SolError, SolEvent, sol};
use alys_contracts::{
    BRIDGE_ADDRESS, BURN_ADDRESS, Bridge, MAX_BITCOIN_ADDRESS_LENGTH, MIN_PEGOUT_WEI, REQUEST_PEGOUT_TOPIC,
    bridge_runtime_code,
};
use revm::{
    Context, ExecuteCommitEvm, MainBuilder, MainContext,
    bytecode::Bytecode,
    context::{
        TxEnv,
        result::{ExecutionResult, Output},
    },
    database::{CacheDB, EmptyDB},
    primitives::TxKind,
    state::AccountInfo,
};

sol!(
    /// The test helper that calls the bridge twice in one transaction (`test/PegOutTwice.sol`).
    #[sol(all_derives)]
    PegOutTwice,
    "artifacts/PegOutTwice.json"
);

const USER: Address = address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
const HELPER: Address = address!("0x1000000000000000000000000000000000000001");
const BTC_ADDRESS: &[u8] = b"bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

fn ether(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
}

/// A chain state with the bridge predeployed, the helper contract deployed and `USER` funded.
struct Chain {
    db: CacheDB<EmptyDB>,
    nonce: u64,
}

impl Chain {
    fn new() -> Self {
        let mut db = CacheDB::new(EmptyDB::default());
        db.insert_account_info(
            BRIDGE_ADDRESS,
            AccountInfo::default().with_code(Bytecode::new_raw(bridge_runtime_code())),
        );
        db.insert_account_info(
            HELPER,
            AccountInfo::default().with_code(Bytecode::new_raw(PegOutTwice::DEPLOYED_BYTECODE.clone())),
        );
        db.insert_account_info(USER, AccountInfo::from_balance(ether(100)));
        Self { db, nonce: 0 }
    }

    fn call(&mut self, to: Address, value: U256, data: Vec<u8>) -> ExecutionResult {
        let tx = TxEnv::builder()
            .caller(USER)
            .kind(TxKind::Call(to))
            .value(value)
            .data(Bytes::from(data))
            .gas_limit(1_000_000)
            .nonce(self.nonce)
            .build()
            .expect("valid tx");
        let db = std::mem::replace(&mut self.db, CacheDB::new(EmptyDB::default()));
        let mut evm = Context::mainnet().with_db(db).build_mainnet();
        let result = evm.transact_commit(tx).expect("transaction is valid");
        self.db = evm.ctx.journaled_state.database;
        self.nonce += 1;
        result
    }

    fn request_pegout(&mut self, value: U256, bitcoin_address: &[u8]) -> ExecutionResult {
        let data = Bridge::requestPegOutCall { bitcoinAddress: Bytes::copy_from_slice(bitcoin_address) }
            .abi_encode();
        self.call(BRIDGE_ADDRESS, value, data)
    }

    fn balance(&self, address: Address) -> U256 {
        self.db.cache.accounts.get(&address).map(|a| a.info.balance).unwrap_or_default()
    }
}

fn logs(result: &ExecutionResult) -> &[Log] {
    match result {
        ExecutionResult::Success { logs, .. } => logs,
        other => panic!("expected success, got {other:?}"),
    }
}

fn revert_data(result: &ExecutionResult) -> &Bytes {
    match result {
        ExecutionResult::Revert { output, .. } => output,
        other => panic!("expected revert, got {other:?}"),
    }
}

#[test]
fn burns_value_and_emits_exact_event() {
    let mut chain = Chain::new();
    let value = MIN_PEGOUT_WEI * U256::from(3u64);
    let result = chain.request_pegout(value, BTC_ADDRESS);

    let logs = logs(&result);
    assert_eq!(logs.len(), 1);
    let log = &logs[0];
    assert_eq!(log.address, BRIDGE_ADDRESS);
    assert_eq!(log.topics().len(), 2, "topic0 plus the indexed evmAddress");
    assert_eq!(log.topics()[0], REQUEST_PEGOUT_TOPIC);
    assert_eq!(log.topics()[1], USER.into_word());
    let event = Bridge::RequestPegOut::decode_log_data(&log.data).expect("decodes");
    assert_eq!(event.evmAddress, USER);
    assert_eq!(event.bitcoinAddress.as_ref(), BTC_ADDRESS);
    assert_eq!(event.value, value);

    assert_eq!(chain.balance(BRIDGE_ADDRESS), U256::ZERO, "the bridge keeps nothing");
    assert_eq!(chain.balance(BURN_ADDRESS), value, "the value is forwarded to the burn address");
    assert_eq!(chain.balance(USER), ether(100) - value);
}

#[test]
fn exactly_the_minimum_is_accepted() {
    let mut chain = Chain::new();
    let result = chain.request_pegout(MIN_PEGOUT_WEI, BTC_ADDRESS);
    assert_eq!(logs(&result).len(), 1);
    assert_eq!(chain.balance(BURN_ADDRESS), MIN_PEGOUT_WEI);
}

#[test]
fn reverts_below_minimum() {
    let mut chain = Chain::new();
    let value = MIN_PEGOUT_WEI - U256::from(1u64);
    let result = chain.request_pegout(value, BTC_ADDRESS);
    let err = Bridge::PegOutBelowMinimum::abi_decode(revert_data(&result)).expect("typed revert");
    assert_eq!(err.value, value);
    assert_eq!(err.minimum, MIN_PEGOUT_WEI);
    assert_eq!(chain.balance(BURN_ADDRESS), U256::ZERO);
    assert_eq!(chain.balance(USER), ether(100), "a reverted call moves no value");

    let zero = chain.request_pegout(U256::ZERO, BTC_ADDRESS);
    assert!(Bridge::PegOutBelowMinimum::abi_decode(revert_data(&zero)).is_ok());
}

#[test]
fn reverts_on_bad_address_length() {
    let mut chain = Chain::new();
    let empty = chain.request_pegout(MIN_PEGOUT_WEI, b"");
    let err = Bridge::InvalidBitcoinAddressLength::abi_decode(revert_data(&empty)).expect("typed revert");
    assert_eq!(err.length, U256::ZERO);

    let long = vec![b'1'; MAX_BITCOIN_ADDRESS_LENGTH + 1];
    let too_long = chain.request_pegout(MIN_PEGOUT_WEI, &long);
    let err = Bridge::InvalidBitcoinAddressLength::abi_decode(revert_data(&too_long)).expect("typed revert");
    assert_eq!(err.length, U256::from(MAX_BITCOIN_ADDRESS_LENGTH + 1));

    let longest = vec![b'1'; MAX_BITCOIN_ADDRESS_LENGTH];
    assert_eq!(logs(&chain.request_pegout(MIN_PEGOUT_WEI, &longest)).len(), 1);
    assert_eq!(chain.balance(BURN_ADDRESS), MIN_PEGOUT_WEI, "only the valid call burned");
}

#[test]
fn plain_transfer_and_unknown_selector_revert() {
    let mut chain = Chain::new();
    let plain = chain.call(BRIDGE_ADDRESS, MIN_PEGOUT_WEI, Vec::new());
    assert!(Bridge::MissingBitcoinAddress::abi_decode(revert_data(&plain)).is_ok());

    let unknown = chain.call(BRIDGE_ADDRESS, MIN_PEGOUT_WEI, vec![0xde, 0xad, 0xbe, 0xef]);
    assert!(matches!(unknown, ExecutionResult::Revert { .. }));
    assert_eq!(chain.balance(BRIDGE_ADDRESS), U256::ZERO);
    assert_eq!(chain.balance(BURN_ADDRESS), U256::ZERO);
}

#[test]
fn two_calls_in_one_transaction_give_two_events() {
    let mut chain = Chain::new();
    let value = MIN_PEGOUT_WEI * U256::from(5u64);
    let data = PegOutTwice::pegOutTwiceCall {
        bridge: BRIDGE_ADDRESS,
        first: Bytes::from_static(b"bcrt1qfirst"),
        second: Bytes::from_static(b"bcrt1qsecond"),
    }
    .abi_encode();
    let result = chain.call(HELPER, value, data);
    let logs = logs(&result);
    assert_eq!(logs.len(), 2);
    let events: Vec<_> =
        logs.iter().map(|l| Bridge::RequestPegOut::decode_log_data(&l.data).expect("decodes")).collect();
    let half = value / U256::from(2u64);
    assert_eq!(events[0].evmAddress, HELPER, "the immediate caller is the burner");
    assert_eq!(events[0].bitcoinAddress.as_ref(), b"bcrt1qfirst");
    assert_eq!(events[0].value, half);
    assert_eq!(events[1].bitcoinAddress.as_ref(), b"bcrt1qsecond");
    assert_eq!(events[1].value, value - half);
    assert!(logs.iter().all(|l| l.address == BRIDGE_ADDRESS));
    assert_eq!(chain.balance(BURN_ADDRESS), value);
    assert_eq!(chain.balance(HELPER), U256::ZERO);
}

#[test]
fn getters_report_the_constants() {
    let mut chain = Chain::new();
    let out = |r: ExecutionResult| match r {
        ExecutionResult::Success { output: Output::Call(bytes), .. } => bytes,
        other => panic!("expected success, got {other:?}"),
    };
    let min = out(chain.call(BRIDGE_ADDRESS, U256::ZERO, Bridge::MIN_PEGOUT_WEICall {}.abi_encode()));
    assert_eq!(Bridge::MIN_PEGOUT_WEICall::abi_decode_returns(&min).unwrap(), MIN_PEGOUT_WEI);
    let burn = out(chain.call(BRIDGE_ADDRESS, U256::ZERO, Bridge::BURN_ADDRESSCall {}.abi_encode()));
    assert_eq!(Bridge::BURN_ADDRESSCall::abi_decode_returns(&burn).unwrap(), BURN_ADDRESS);
    let max =
        out(chain.call(BRIDGE_ADDRESS, U256::ZERO, Bridge::MAX_BITCOIN_ADDRESS_LENGTHCall {}.abi_encode()));
    assert_eq!(
        Bridge::MAX_BITCOIN_ADDRESS_LENGTHCall::abi_decode_returns(&max).unwrap(),
        U256::from(MAX_BITCOIN_ADDRESS_LENGTH)
    );
}

#[test]
fn artifact_matches_committed_source() {
    use sha2::{Digest, Sha256};
    let artifact: serde_json::Value =
        serde_json::from_str(alys_contracts::BRIDGE_ARTIFACT_JSON).expect("artifact is JSON");
    let source = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/src/Bridge.sol")).expect("source");
    let digest = format!("0x{}", alloy_primitives::hex::encode(Sha256::digest(&source)));
    assert_eq!(
        artifact["sourceSha256"].as_str(),
        Some(digest.as_str()),
        "Bridge.sol was edited without recompiling: run `npm run build:contracts`"
    );
}
