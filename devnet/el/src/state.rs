//! World state: structurally shared snapshots, one per executed block.
//!
//! Every executed block keeps a full [`StateSnapshot`]. Snapshots are built from `imbl` persistent maps,
//! so a child block's snapshot is a cheap clone of its parent's with only the touched accounts and slots
//! copied. This makes reorgs trivial (each branch simply has its own snapshots) and lets reads at any
//! retained block run without replaying diffs. Memory grows with what blocks change, not with the state.
//!
//! During execution the snapshot is revm's database ([`SnapshotDb`]) behind revm's `State` cache; the
//! block's net changes are then applied to a copy of the parent snapshot, which becomes the block's state.

mod inspect;

use std::{collections::HashMap, convert::Infallible, sync::Arc};

use crate::trie::Trie;

use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_trie::TrieAccount;
use revm::{
    Database,
    bytecode::Bytecode,
    database::{CacheState, State},
    primitives::KECCAK_EMPTY,
    state::AccountInfo,
};

/// One account of a snapshot.
#[derive(Debug, Clone)]
pub(crate) struct AccountEntry {
    pub(crate) hashed_address: B256,
    pub(crate) nonce: u64,
    pub(crate) balance: U256,
    pub(crate) code_hash: B256,
    pub(crate) storage: imbl::HashMap<U256, U256>,
    /// The storage trie, up to date except for `dirty_slots`.
    storage_trie: Trie,
    dirty_slots: Vec<U256>,
}

impl AccountEntry {
    fn new(address: Address) -> Self {
        Self {
            hashed_address: keccak256(address),
            nonce: 0,
            balance: U256::ZERO,
            code_hash: KECCAK_EMPTY,
            storage: imbl::HashMap::new(),
            storage_trie: Trie::default(),
            dirty_slots: Vec::new(),
        }
    }

    /// Brings the storage trie up to date and returns the account's trie leaf.
    fn trie_account(&mut self) -> TrieAccount {
        for slot in std::mem::take(&mut self.dirty_slots) {
            let key = keccak256(B256::from(slot));
            match self.storage.get(&slot) {
                Some(value) => self.storage_trie.insert(key, alloy_rlp::encode_fixed_size(value).to_vec()),
                None => self.storage_trie.remove(key),
            }
        }
        TrieAccount {
            nonce: self.nonce,
            balance: self.balance,
            storage_root: self.storage_trie.root(),
            code_hash: self.code_hash,
        }
    }
}

/// The world state after a block.
#[derive(Debug, Clone, Default)]
pub(crate) struct StateSnapshot {
    /// Entries are behind `Arc` so copying a map node on write copies pointers, not accounts.
    accounts: imbl::HashMap<Address, Arc<AccountEntry>>,
    codes: imbl::HashMap<B256, Bytecode>,
    /// The account trie, up to date except for `touched`.
    trie: Trie,
    /// Accounts changed since the last [`StateSnapshot::state_root`].
    touched: std::collections::HashSet<Address>,
    /// Accounts with storage but neither code nor nonce, where a contract creation collides (EIP-7610).
    storage_only: imbl::HashSet<Address>,
}

impl StateSnapshot {
    /// Adds a genesis account.
    pub(crate) fn insert_genesis_account(
        &mut self,
        address: Address,
        nonce: u64,
        balance: U256,
        code: Option<Bytecode>,
        storage: impl IntoIterator<Item = (U256, U256)>,
    ) {
        let mut entry = AccountEntry::new(address);
        entry.nonce = nonce;
        entry.balance = balance;
        if let Some(code) = code.filter(|c| !c.is_empty()) {
            entry.code_hash = code.hash_slow();
            self.codes.insert(entry.code_hash, code);
        }
        for (slot, value) in storage {
            if !value.is_zero() {
                entry.storage.insert(slot, value);
                entry.dirty_slots.push(slot);
            }
        }
        self.touched.insert(address);
        self.accounts.insert(address, Arc::new(entry));
        self.track_storage_only(address);
    }

    /// Whether the account has storage but neither code nor nonce: a contract creation there collides
    /// (EIP-7610), which revm's check of nonce and code misses.
    pub(crate) fn is_storage_only(&self, address: &Address) -> bool {
        self.storage_only.contains(address)
    }

    /// Whether any account is [storage-only](Self::is_storage_only). Only a genesis allocation makes one:
    /// storage is written by code, and an account loses its code or nonce only by being destroyed.
    pub(crate) fn has_storage_only_accounts(&self) -> bool {
        !self.storage_only.is_empty()
    }

    fn track_storage_only(&mut self, address: Address) {
        let entry = self.accounts.get(&address);
        if entry.is_some_and(|a| a.nonce == 0 && a.code_hash == KECCAK_EMPTY && !a.storage.is_empty()) {
            self.storage_only.insert(address);
        } else {
            self.storage_only.remove(&address);
        }
    }

    /// An account's balance (zero when it does not exist).
    pub(crate) fn balance(&self, address: &Address) -> U256 {
        self.accounts.get(address).map_or(U256::ZERO, |a| a.balance)
    }

    /// An account's nonce (zero when it does not exist).
    pub(crate) fn nonce(&self, address: &Address) -> u64 {
        self.accounts.get(address).map_or(0, |a| a.nonce)
    }

    /// An account's code (empty when none).
    pub(crate) fn code(&self, address: &Address) -> Bytecode {
        self.accounts.get(address).and_then(|a| self.codes.get(&a.code_hash)).cloned().unwrap_or_default()
    }

    /// A storage slot (zero when unset).
    pub(crate) fn storage(&self, address: &Address, slot: &U256) -> U256 {
        self.accounts.get(address).and_then(|a| a.storage.get(slot)).copied().unwrap_or_default()
    }

    /// Brings the tries up to date with the changes since the last call and returns the state root.
    ///
    /// The tries are persistent with cached hashes, so this hashes only the paths of changed accounts
    /// and slots.
    pub(crate) fn state_root(&mut self) -> B256 {
        for address in std::mem::take(&mut self.touched) {
            match self.accounts.get_mut(&address).map(Arc::make_mut) {
                Some(entry) => {
                    let leaf = entry.trie_account();
                    let key = entry.hashed_address;
                    self.trie.insert(key, alloy_rlp::encode(leaf));
                }
                None => self.trie.remove(keccak256(address)),
            }
        }
        self.trie.root()
    }
}

impl StateSnapshot {
    /// Applies the changes of a block executed behind revm's `State` cache: one update per changed
    /// account, however many transactions touched it. Slots that were only read are skipped.
    pub(crate) fn apply_cache(&mut self, cache: CacheState) {
        for (hash, code) in cache.contracts {
            if hash != KECCAK_EMPTY && !self.codes.contains_key(&hash) {
                self.codes.insert(hash, code);
            }
        }
        for (address, account) in cache.accounts {
            if account.status.is_not_modified() {
                continue;
            }
            self.touched.insert(address);
            // EIP-161: accounts left empty are removed, as are destroyed ones.
            let Some(plain) = account.account.filter(|a| !a.info.is_empty()) else {
                self.accounts.remove(&address);
                self.storage_only.remove(&address);
                continue;
            };
            let entry = Arc::make_mut(
                self.accounts.entry(address).or_insert_with(|| Arc::new(AccountEntry::new(address))),
            );
            if account.status.was_destroyed() {
                entry.storage = imbl::HashMap::new();
                entry.storage_trie = Trie::default();
                entry.dirty_slots.clear();
            }
            let info = plain.info;
            entry.nonce = info.nonce;
            entry.balance = info.balance;
            entry.code_hash = info.code_hash;
            if entry.code_hash != KECCAK_EMPTY
                && !self.codes.contains_key(&entry.code_hash)
                && let Some(code) = info.code
            {
                self.codes.insert(entry.code_hash, code);
            }
            for (slot, value) in plain.storage {
                if entry.storage.get(&slot).copied().unwrap_or_default() == value {
                    continue;
                }
                if value.is_zero() {
                    entry.storage.remove(&slot);
                } else {
                    entry.storage.insert(slot, value);
                }
                entry.dirty_slots.push(slot);
            }
            self.track_storage_only(address);
        }
    }
}

impl alys_el_consensus::StorageOnly for SnapshotDb {
    fn is_storage_only(&self, address: &Address) -> bool {
        self.state.is_storage_only(address)
    }
}

impl alys_el_pool::AccountState for StateSnapshot {
    fn nonce(&self, address: Address) -> u64 {
        Self::nonce(self, &address)
    }

    fn balance(&self, address: Address) -> U256 {
        Self::balance(self, &address)
    }
}

/// A snapshot as revm's database: reads from it, commits into it.
#[derive(Debug)]
pub(crate) struct SnapshotDb {
    /// The working state; after execution, the new block's state.
    pub(crate) state: StateSnapshot,
    /// Hashes of the last 256 ancestors, for `BLOCKHASH`.
    pub(crate) block_hashes: HashMap<u64, B256>,
}

impl Database for SnapshotDb {
    type Error = Infallible;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        Ok(self.state.accounts.get(&address).map(|entry| {
            let code = self.state.codes.get(&entry.code_hash).cloned();
            AccountInfo {
                balance: entry.balance,
                nonce: entry.nonce,
                code_hash: entry.code_hash,
                code,
                ..Default::default()
            }
        }))
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        Ok(self.state.codes.get(&code_hash).cloned().unwrap_or_default())
    }

    fn storage(&mut self, address: Address, index: U256) -> Result<U256, Self::Error> {
        Ok(self.state.storage(&address, &index))
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, Self::Error> {
        Ok(self.block_hashes.get(&number).copied().unwrap_or_default())
    }
}

/// Wraps a snapshot in revm's `State` cache for executing a block.
pub(crate) fn block_db(state: StateSnapshot, block_hashes: HashMap<u64, B256>) -> State<SnapshotDb> {
    State::builder().with_database(SnapshotDb { state, block_hashes }).build()
}

/// The snapshot after a block executed on [`block_db`].
pub(crate) fn finish_block_db(db: State<SnapshotDb>) -> StateSnapshot {
    let mut state = db.database.state;
    state.apply_cache(db.cache);
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::address;

    #[test]
    fn state_root_matches_alloy_trie() {
        let mut state = StateSnapshot::default();
        let a = address!("0x1000000000000000000000000000000000000001");
        let b = address!("0x2000000000000000000000000000000000000002");
        state.insert_genesis_account(a, 1, U256::from(5), None, []);
        let code = Bytecode::new_raw(alloy_primitives::bytes!("6001600055"));
        state.insert_genesis_account(b, 0, U256::ZERO, Some(code.clone()), [(U256::from(1), U256::from(7))]);
        let expected = alloy_trie::root::state_root_unhashed([
            (a, TrieAccount { nonce: 1, balance: U256::from(5), ..Default::default() }),
            (
                b,
                TrieAccount {
                    storage_root: alloy_trie::root::storage_root_unhashed([(
                        B256::from(U256::from(1)),
                        U256::from(7),
                    )]),
                    code_hash: code.hash_slow(),
                    ..Default::default()
                },
            ),
        ]);
        assert_eq!(state.state_root(), expected);
        assert_eq!(StateSnapshot::default().state_root(), alloy_trie::EMPTY_ROOT_HASH);
    }
}
