//! The committed genesis files are generated from their sources (the bridge artifact, the EIP system
//! contracts, the development mnemonic); this test regenerates them and fails on any difference.
//!
//! After a deliberate change (e.g. a recompiled `Bridge.sol`), rewrite them with
//! `ALYS_BLESS=1 cargo test -p alys-chainspec --test genesis` and commit the result.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]

use alloy_eips::{eip2935, eip4788, eip7002, eip7251};
use alloy_primitives::{Address, Bytes, U256};
use alloy_signer_local::{MnemonicBuilder, coins_bip39::English};
use alys_chainspec::{
    ChainSpec, DEVNET_CHAIN_ID, DEVNET_GENESIS_JSON, SHANGHAI_GENESIS_JSON, TESTNET_CHAIN_ID,
    dev::{DEV_ACCOUNT_BALANCE, DEV_ACCOUNTS, DEV_MNEMONIC, DEV_PRIVATE_KEYS},
};
use alys_contracts::{BRIDGE_ADDRESS, bridge_runtime_code};
use serde_json::{Map, Value, json};

fn hex_u64(n: u64) -> Value {
    Value::String(format!("{n:#x}"))
}

fn code_account(code: &Bytes, nonce: Option<u64>) -> Value {
    let mut account = json!({ "balance": "0x0", "code": code.to_string() });
    if let Some(nonce) = nonce {
        account["nonce"] = hex_u64(nonce);
    }
    account
}

fn legacy_forks(config: &mut Map<String, Value>) {
    for fork in [
        "homesteadBlock",
        "eip150Block",
        "eip155Block",
        "eip158Block",
        "byzantiumBlock",
        "constantinopleBlock",
        "petersburgBlock",
        "istanbulBlock",
        "muirGlacierBlock",
        "berlinBlock",
        "londonBlock",
        "arrowGlacierBlock",
        "grayGlacierBlock",
        "mergeNetsplitBlock",
    ] {
        config.insert(fork.into(), 0.into());
    }
    config.insert("terminalTotalDifficulty".into(), 0.into());
    config.insert("terminalTotalDifficultyPassed".into(), true.into());
    config.insert("shanghaiTime".into(), 0.into());
}

fn header(timestamp: u64, config: Map<String, Value>, alloc: Map<String, Value>) -> Value {
    json!({
        "config": config,
        "nonce": "0x0",
        "timestamp": hex_u64(timestamp),
        "extraData": "0x",
        "gasLimit": hex_u64(30_000_000),
        "difficulty": "0x0",
        "mixHash": format!("{:#x}", alloy_primitives::B256::ZERO),
        "coinbase": format!("{:#x}", Address::ZERO),
        "baseFeePerGas": hex_u64(1_000_000_000),
        "number": "0x0",
        "gasUsed": "0x0",
        "parentHash": format!("{:#x}", alloy_primitives::B256::ZERO),
        "alloc": alloc,
    })
}

fn devnet() -> Value {
    let mut config = Map::new();
    config.insert("chainId".into(), DEVNET_CHAIN_ID.into());
    legacy_forks(&mut config);
    config.insert("cancunTime".into(), 0.into());
    config.insert("pragueTime".into(), 0.into());
    config.insert(
        "blobSchedule".into(),
        json!({
            "cancun": { "target": 3, "max": 6, "baseFeeUpdateFraction": 3_338_477 },
            "prague": { "target": 6, "max": 9, "baseFeeUpdateFraction": 5_007_716 },
        }),
    );

    let mut alloc = Map::new();
    alloc.insert(BRIDGE_ADDRESS.to_checksum(None), code_account(&bridge_runtime_code(), None));
    // The Cancun and Prague system contracts must exist from genesis: reth and geth refuse a Prague block
    // whose request contracts have no code, and the beacon-root/history calls need theirs.
    for (address, code) in [
        (eip4788::BEACON_ROOTS_ADDRESS, &eip4788::BEACON_ROOTS_CODE),
        (eip2935::HISTORY_STORAGE_ADDRESS, &eip2935::HISTORY_STORAGE_CODE),
        (eip7002::WITHDRAWAL_REQUEST_PREDEPLOY_ADDRESS, &eip7002::WITHDRAWAL_REQUEST_PREDEPLOY_CODE),
        (eip7251::CONSOLIDATION_REQUEST_PREDEPLOY_ADDRESS, &eip7251::CONSOLIDATION_REQUEST_PREDEPLOY_CODE),
    ] {
        alloc.insert(address.to_checksum(None), code_account(code, Some(1)));
    }
    for account in DEV_ACCOUNTS {
        alloc.insert(account.to_checksum(None), json!({ "balance": format!("{DEV_ACCOUNT_BALANCE:#x}") }));
    }
    let mut genesis = header(1_735_689_600, config, alloc); // 2025-01-01T00:00:00Z
    genesis["excessBlobGas"] = "0x0".into();
    genesis["blobGasUsed"] = "0x0".into();
    genesis
}

fn shanghai() -> Value {
    let mut config = Map::new();
    config.insert("chainId".into(), TESTNET_CHAIN_ID.into());
    legacy_forks(&mut config);
    let mut alloc = Map::new();
    alloc.insert(BRIDGE_ADDRESS.to_checksum(None), code_account(&bridge_runtime_code(), None));
    header(0x63a1_e047, config, alloc) // the Alys testnet's genesis timestamp
}

fn check(name: &str, committed: &str, expected: Value) {
    let text = serde_json::to_string_pretty(&expected).unwrap() + "\n";
    if std::env::var_os("ALYS_BLESS").is_some() {
        let path = format!("{}/../etc/genesis/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::write(&path, &text).unwrap();
        return;
    }
    assert!(
        committed == text,
        "etc/genesis/{name} differs from its sources; regenerate with \
         `ALYS_BLESS=1 cargo test -p alys-chainspec --test genesis` and commit it"
    );
}

#[test]
fn devnet_genesis_is_generated_from_sources() {
    check("devnet.json", DEVNET_GENESIS_JSON, devnet());
}

#[test]
fn shanghai_genesis_is_generated_from_sources() {
    check("shanghai.json", SHANGHAI_GENESIS_JSON, shanghai());
}

#[test]
fn dev_accounts_derive_from_the_mnemonic() {
    for (index, (address, key)) in DEV_ACCOUNTS.iter().zip(DEV_PRIVATE_KEYS).enumerate() {
        let signer = MnemonicBuilder::<English>::default()
            .phrase(DEV_MNEMONIC)
            .index(index as u32)
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(signer.address(), *address, "account {index}");
        assert_eq!(&signer.credential().to_bytes()[..], key.as_slice(), "key {index}");
    }
    assert_eq!(DEV_ACCOUNT_BALANCE, U256::from(10_000u64) * U256::from(10u64).pow(U256::from(18u64)));
}

#[test]
fn devnet_genesis_carries_bridge_and_funds() {
    let spec = ChainSpec::devnet().unwrap();
    let alloc = &spec.genesis().alloc;
    assert_eq!(alloc[&BRIDGE_ADDRESS].code.as_ref(), Some(&bridge_runtime_code()));
    assert_eq!(alloc[&BRIDGE_ADDRESS].balance, U256::ZERO);
    for account in DEV_ACCOUNTS {
        assert_eq!(alloc[&account].balance, DEV_ACCOUNT_BALANCE);
    }
    let shanghai = ChainSpec::shanghai().unwrap();
    assert_eq!(shanghai.genesis().alloc[&BRIDGE_ADDRESS].code.as_ref(), Some(&bridge_runtime_code()));
}
