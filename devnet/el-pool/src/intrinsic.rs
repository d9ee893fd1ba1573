//! Intrinsic gas: what a transaction costs before its first opcode runs.

use alloy_consensus::{Transaction, TxEnvelope};

const TX_BASE: u64 = 21_000;
const TX_CREATE: u64 = 32_000;
const CALLDATA_ZERO: u64 = 4;
const CALLDATA_NONZERO: u64 = 16;
const ACCESS_LIST_ADDRESS: u64 = 2_400;
const ACCESS_LIST_STORAGE_KEY: u64 = 1_900;
const INITCODE_WORD: u64 = 2;
const AUTHORIZATION: u64 = 25_000;
const FLOOR_PER_TOKEN: u64 = 10;

/// The minimum gas limit of `tx`: base cost, calldata, contract creation and init code words (EIP-3860),
/// access list (EIP-2930) and authorizations (EIP-7702); with `calldata_floor`, at least the EIP-7623
/// floor of 10 gas per calldata token.
pub fn intrinsic_gas(tx: &TxEnvelope, calldata_floor: bool) -> u64 {
    let input = tx.input();
    let zeros = input.iter().filter(|b| **b == 0).count() as u64;
    let nonzeros = input.len() as u64 - zeros;
    let mut gas = TX_BASE
        .saturating_add(zeros.saturating_mul(CALLDATA_ZERO))
        .saturating_add(nonzeros.saturating_mul(CALLDATA_NONZERO));
    if tx.is_create() {
        let words = (input.len() as u64).div_ceil(32);
        gas = gas.saturating_add(TX_CREATE).saturating_add(words.saturating_mul(INITCODE_WORD));
    }
    if let Some(list) = tx.access_list() {
        let keys: u64 = list.iter().map(|item| item.storage_keys.len() as u64).sum();
        gas = gas
            .saturating_add((list.len() as u64).saturating_mul(ACCESS_LIST_ADDRESS))
            .saturating_add(keys.saturating_mul(ACCESS_LIST_STORAGE_KEY));
    }
    if let Some(auths) = tx.authorization_list() {
        gas = gas.saturating_add((auths.len() as u64).saturating_mul(AUTHORIZATION));
    }
    if calldata_floor {
        let tokens = zeros.saturating_add(nonzeros.saturating_mul(4));
        gas = gas.max(TX_BASE.saturating_add(tokens.saturating_mul(FLOOR_PER_TOKEN)));
    }
    gas
}
