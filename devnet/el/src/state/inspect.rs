//! Read-only views of a snapshot for the RPC's tooling: EIP-1186 proofs, and revm's `DatabaseRef`, which
//! tracers read the state before a transaction through.

use std::convert::Infallible;

use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_rpc_types_eth::{EIP1186AccountProofResponse, EIP1186StorageProof};
use alloy_trie::EMPTY_ROOT_HASH;
use revm::{DatabaseRef, bytecode::Bytecode, primitives::KECCAK_EMPTY, state::AccountInfo};

use super::{SnapshotDb, StateSnapshot};

impl StateSnapshot {
    /// The EIP-1186 proof of `address` and of its storage `slots`; an absent account is proven absent and
    /// answered as an empty one (geth's and reth's answer).
    pub(crate) fn proof(&self, address: Address, slots: &[B256]) -> EIP1186AccountProofResponse {
        // Bring every trie up to date first; cloning shares everything, so this costs only pending updates.
        let mut state = self.clone();
        state.state_root();
        let account_proof = state.trie.proof(keccak256(address));
        let entry = state.accounts.get(&address);
        let storage_proof = slots
            .iter()
            .map(|slot| {
                let value = entry.and_then(|e| e.storage.get(&U256::from_be_bytes(slot.0))).copied();
                let proof = entry.map(|e| e.storage_trie.proof(keccak256(slot))).unwrap_or_default();
                EIP1186StorageProof { key: (*slot).into(), value: value.unwrap_or_default(), proof }
            })
            .collect();
        EIP1186AccountProofResponse {
            address,
            balance: entry.map_or(U256::ZERO, |e| e.balance),
            code_hash: entry.map_or(KECCAK_EMPTY, |e| e.code_hash),
            nonce: entry.map_or(0, |e| e.nonce),
            storage_hash: entry.map_or(EMPTY_ROOT_HASH, |e| e.storage_trie.root()),
            account_proof,
            storage_proof,
        }
    }
}

impl DatabaseRef for SnapshotDb {
    type Error = Infallible;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        Ok(self.state.accounts.get(&address).map(|entry| AccountInfo {
            balance: entry.balance,
            nonce: entry.nonce,
            code_hash: entry.code_hash,
            code: self.state.codes.get(&entry.code_hash).cloned(),
            ..Default::default()
        }))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        Ok(self.state.codes.get(&code_hash).cloned().unwrap_or_default())
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, Self::Error> {
        Ok(self.state.storage(&address, &index))
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, Self::Error> {
        Ok(self.block_hashes.get(&number).copied().unwrap_or_default())
    }
}
