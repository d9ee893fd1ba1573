//! The genesis block and state, built from a genesis file exactly as reth and geth build them.
//!
//! The header comes from [`ChainSpec::genesis_header`], which the consensus sidecar uses too, so both
//! agree on the genesis hash; the state is the allocation loaded into a snapshot.

use alloy_consensus::Header;
use alloy_primitives::U256;
use alys_chainspec::ChainSpec;
use revm::bytecode::Bytecode;

use crate::state::StateSnapshot;

/// The genesis header and state of a chain spec.
pub(crate) fn genesis(spec: &ChainSpec) -> (Header, StateSnapshot) {
    let mut state = StateSnapshot::default();
    for (address, account) in &spec.genesis().alloc {
        let code = account.code.as_ref().map(|code| Bytecode::new_raw(code.clone()));
        let storage = account
            .storage
            .iter()
            .flatten()
            .map(|(slot, value)| (U256::from_be_bytes(slot.0), U256::from_be_bytes(value.0)));
        state.insert_genesis_account(
            *address,
            account.nonce.unwrap_or_default(),
            account.balance,
            code,
            storage,
        );
    }
    let header = spec.genesis_header();
    let root = state.state_root();
    if root != header.state_root {
        // Both roots are computed from the same allocation; a difference is a bug in the snapshot trie.
        tracing::error!(target: "el::genesis", %root, expected = %header.state_root, "genesis state root differs");
    }
    (header, state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::constants::EMPTY_WITHDRAWALS;
    use alloy_eips::eip7685::EMPTY_REQUESTS_HASH;
    use alloy_primitives::B256;

    #[test]
    fn genesis_state_root_matches_the_header() {
        for spec in [ChainSpec::devnet().unwrap(), ChainSpec::shanghai().unwrap()] {
            let (header, mut state) = genesis(&spec);
            assert_eq!(state.state_root(), header.state_root);
            assert_eq!(header.hash_slow(), spec.genesis_hash());
        }
        let (header, _) = genesis(&ChainSpec::devnet().unwrap());
        assert_eq!(header.base_fee_per_gas, Some(1_000_000_000));
        assert_eq!(header.withdrawals_root, Some(EMPTY_WITHDRAWALS));
        assert_eq!(header.parent_beacon_block_root, Some(B256::ZERO));
        assert_eq!(header.requests_hash, Some(EMPTY_REQUESTS_HASH));
    }
}
