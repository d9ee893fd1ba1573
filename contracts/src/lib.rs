//! The Alys bridge contract as the node sees it.
//!
//! This crate owns `Bridge.sol`'s committed artifact (compiled by the pinned `solc` in `package.json`), its
//! alloy bindings, and the constants that the burn extractor, the execution engine and the bridge share:
//! the predeploy address, the `RequestPegOut` topic, the `requestPegOut` selector and the peg-out bounds.
//!
//! The contract burns by forwarding `msg.value` to [`BURN_ADDRESS`] in the same call, so the bridge's own
//! balance is always zero and burned supply is visible at one address.

use alloy_primitives::{Address, B256, Bytes, U256, address};
use alloy_sol_types::{SolCall, SolEvent, sol};

sol!(
    /// Bindings generated from the committed artifact `artifacts/Bridge.json`.
    #[sol(all_derives)]
    Bridge,
    "artifacts/Bridge.json"
);

/// Address at which every Alys genesis predeploys the bridge.
pub const BRIDGE_ADDRESS: Address = address!("0xbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbB");

/// Address the bridge forwards burned value to. Nobody holds its key.
pub const BURN_ADDRESS: Address = address!("0x000000000000000000000000000000000000dEaD");

/// Wei per satoshi: the chain's native coin is BTC with 18 decimals, Bitcoin has 8.
pub const WEI_PER_SAT: u64 = 10_000_000_000;

/// Gwei per satoshi, the unit of Engine API withdrawals (peg-in mints).
pub const GWEI_PER_SAT: u64 = 10;

/// Smallest peg-out the contract accepts, in satoshis.
pub const MIN_PEGOUT_SATS: u64 = 1_000_000;

/// Smallest peg-out the contract accepts, in wei (10^16).
pub const MIN_PEGOUT_WEI: U256 = U256::from_limbs([MIN_PEGOUT_SATS * WEI_PER_SAT, 0, 0, 0]);

/// Longest Bitcoin address, in bytes of its string form, that the contract accepts.
pub const MAX_BITCOIN_ADDRESS_LENGTH: usize = 90;

/// Topic 0 of `RequestPegOut(address indexed evmAddress, bytes bitcoinAddress, uint256 value)`.
pub const REQUEST_PEGOUT_TOPIC: B256 = Bridge::RequestPegOut::SIGNATURE_HASH;

/// Selector of `requestPegOut(bytes)`.
pub const REQUEST_PEGOUT_SELECTOR: [u8; 4] = Bridge::requestPegOutCall::SELECTOR;

/// Runtime bytecode of the bridge, as placed at [`BRIDGE_ADDRESS`] in genesis.
pub fn bridge_runtime_code() -> Bytes {
    Bridge::DEPLOYED_BYTECODE.clone()
}

/// The committed artifact of `Bridge.sol`, as `compile.js` writes it.
pub const BRIDGE_ARTIFACT_JSON: &str = include_str!("../artifacts/Bridge.json");

/// Converts a wei amount to whole satoshis, rounding down; `None` when it does not fit in a `u64`.
pub fn wei_to_sats(wei: U256) -> Option<u64> {
    u64::try_from(wei / U256::from(WEI_PER_SAT)).ok()
}

/// Converts satoshis to wei.
pub fn sats_to_wei(sats: u64) -> U256 {
    U256::from(sats) * U256::from(WEI_PER_SAT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{b256, hex};

    #[test]
    fn abi_keeps_alys_selector_and_topic() {
        assert_eq!(REQUEST_PEGOUT_SELECTOR, hex!("9911dc74"));
        assert_eq!(
            REQUEST_PEGOUT_TOPIC,
            b256!("0xaa1c6070bc915de33c0fbc36ecf77b1e4fc1ebce832b2da62b6fe25f5a7dd5b0")
        );
    }

    #[test]
    fn unit_conversions() {
        assert_eq!(MIN_PEGOUT_WEI, U256::from(10u64).pow(U256::from(16u64)));
        assert_eq!(sats_to_wei(1), U256::from(WEI_PER_SAT));
        assert_eq!(wei_to_sats(sats_to_wei(123_456_789)), Some(123_456_789));
        assert_eq!(wei_to_sats(sats_to_wei(7) + U256::from(1u64)), Some(7));
        assert_eq!(wei_to_sats(U256::MAX), None);
        assert_eq!(GWEI_PER_SAT * 1_000_000_000, WEI_PER_SAT);
    }

    #[test]
    fn runtime_code_is_the_artifacts() {
        let artifact: serde_json::Value = serde_json::from_str(BRIDGE_ARTIFACT_JSON).unwrap();
        let code = artifact["deployedBytecode"].as_str().unwrap();
        assert_eq!(format!("{}", bridge_runtime_code()), code);
        assert!(!bridge_runtime_code().is_empty());
    }
}
