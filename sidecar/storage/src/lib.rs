//! The Alys node's one database (redb): the tables of every domain in one file, so a fact and what
//! depends on it commit in one transaction.
//!
//! # Why one database
//!
//! A block that pays a merged-mining reward must move finality in the same commit, or a crash between
//! two writes leaves a paid reward with an unfinalized batch that the next proof pays again. A burn must
//! be recorded with the feed cursor that announced it, or a failed write skips it forever. So every
//! domain's tables live here, and a [`WriteTx`] may touch any of them: the caller opens one transaction,
//! writes the fact and its consequences, and commits; memory changes only after the commit.
//!
//! # Reading and writing
//!
//! [`Storage::read`] opens a consistent snapshot ([`ReadTx`]); [`Storage::write`] opens the one write
//! transaction redb allows at a time ([`WriteTx`]; a second writer waits). Domain reads are traits over
//! both kinds of transaction ([`ChainRead`], [`PeginRead`], [`PegoutRead`], [`FederationRead`], [`GovernanceRead`]), so a writer reads what
//! it is about to change inside its own transaction; domain writes are methods of [`WriteTx`]. Dropping a
//! `WriteTx` without [`WriteTx::commit`] leaves the database as it was; redb's commits are durable
//! (fsync) and atomic, so a `kill -9` leaves either the old state or the new one.
//!
//! # Tables
//!
//! | domain | table | key → value |
//! |---|---|---|
//! | chain | `blocks` | consensus hash → `SignedBlock` (RLP) |
//! | chain | `canonical` | height → consensus hash |
//! | chain | `chain_meta` | `head`, `finalized` → height ‖ hash; `pow_state` → [`PowState`]; `queued_pow` → proof bytes; `production_paused` → 0/1; `genesis_hash` → the execution genesis hash |
//! | peg-in | `bitcoin_blocks` | Bitcoin height → block hash the follower walked (the last [`BITCOIN_BLOCKS_KEPT`]) |
//! | peg-in | `pegin_deposits` | txid → [`DepositRecord`] (RLP): deposits seen, and rejected ones with their reason |
//! | peg-in | `pegin_by_height`, `pegin_open` | Bitcoin height ‖ txid → (): every deposit; those still to claim |
//! | peg-in | `pegin_minted` | outpoint (txid ‖ vout) ‖ claiming consensus hash → height ‖ sats (consensus state) |
//! | peg-in | `pegin_meta` | `notified_height` → u64 |
//! | peg-out | `pegout_pending`, `pegout_released` | block number ‖ log index ‖ block hash (chain order) → `Burn` (RLP) |
//! | federation | `federation_outputs` | outpoint ‖ creating consensus hash → height ‖ sats ‖ script (consensus state: deposits minted, peg-out change) |
//! | federation | `federation_spends` | outpoint ‖ spending consensus hash → height (consensus state) |
//! | peg-out | `pegout_settled` | burn position ‖ settling consensus hash → height ‖ 0 paid / 1 refunded (consensus state) |
//! | peg-out | `pegout_unsettled` | burn position → unix seconds queued: released burns no canonical block settled yet (follows the canonical chain) |
//! | peg-out | `pegout_payouts` | txid → `PayoutRecord` (RLP): this node's progress getting a final peg-out transaction signed, broadcast and confirmed |
//! | peg-out | `pegout_payouts_by_status` | status ‖ height ‖ txid → () |
//! | peg-out | `pegout_meta` | `geth_height`, `burn_cursor`, `payer_height` → u64 |
//! | governance | `signature_requests` | request id → `SignatureRequest` (protobuf) |
//! | governance | `signature_responses` | request id → `SignatureResponse` (protobuf), answered and not yet taken |
//! | governance | `federation_updates` | effective height → `FederationUpdate` (protobuf) |
//! | governance | `proposals` | proposal id → `ProposalNotification` (protobuf) |

mod chain;
mod error;
mod evidence;
mod federation;
mod governance;
mod payout;
mod pegin;
mod pegout;

pub use chain::{ChainRead, PowState};
pub use error::StorageError;
pub use evidence::EvidenceRead;
pub use federation::{FederationOutput, FederationRead, PegoutTxError, Settlement, pegout_transaction};
pub use governance::GovernanceRead;
pub use payout::{PayoutRead, PayoutRecord, PayoutStatus, SpentOutput};
pub use pegin::{BITCOIN_BLOCKS_KEPT, DepositOutput, DepositRecord, FederationUtxo, Minted, PeginRead};
pub use pegout::PegoutRead;

use std::path::Path;

use redb::{Database, Key, ReadOnlyTable, ReadableDatabase, Table, TableDefinition, Value};

/// The node's database. Share it in an `Arc`: redb serializes writers and gives readers snapshots.
#[derive(Debug)]
pub struct Storage {
    db: Database,
}

impl Storage {
    /// Opens (or creates) the database at `path`, creating every table.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        let path = path.as_ref();
        let db =
            Database::create(path).map_err(|source| StorageError::Open { path: path.to_owned(), source })?;
        Self::init(db)
    }

    /// A database in memory only, for tests and benchmarks.
    pub fn in_memory() -> Result<Self, StorageError> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|source| StorageError::Open { path: "<memory>".into(), source })?;
        Self::init(db)
    }

    fn init(db: Database) -> Result<Self, StorageError> {
        let tx = db.begin_write()?;
        chain::create_tables(&tx)?;
        pegout::create_tables(&tx)?;
        pegin::create_tables(&tx)?;
        payout::create_tables(&tx)?;
        federation::create_tables(&tx)?;
        governance::create_tables(&tx)?;
        evidence::create_tables(&tx)?;
        tx.commit()?;
        Ok(Self { db })
    }

    /// A consistent snapshot to read from.
    pub fn read(&self) -> Result<ReadTx, StorageError> {
        Ok(ReadTx(self.db.begin_read()?))
    }

    /// The write transaction (waits while another one is open).
    pub fn write(&self) -> Result<WriteTx, StorageError> {
        Ok(WriteTx(self.db.begin_write()?))
    }

    /// A write transaction whose commit is atomic but not yet durable: it reaches the disk with the
    /// next ordinary ([`Self::write`]) commit, and a crash before that rolls the database back to the
    /// last durable commit, as if the deferred ones never happened. For work that can be redone, such
    /// as the blocks of a range fetched from peers, committed one by one and made durable by the last.
    pub fn write_deferred(&self) -> Result<WriteTx, StorageError> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(redb::Durability::None).map_err(|e| StorageError::Durability(e.to_string()))?;
        Ok(WriteTx(tx))
    }
}

/// A read-only snapshot of the database.
#[derive(Debug)]
pub struct ReadTx(redb::ReadTransaction);

/// The write transaction: changes to any table, applied together by [`Self::commit`] or not at all.
pub struct WriteTx(redb::WriteTransaction);

impl std::fmt::Debug for WriteTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteTx")
    }
}

impl WriteTx {
    /// Applies every change of this transaction durably and atomically.
    pub fn commit(self) -> Result<(), StorageError> {
        self.0.commit()?;
        Ok(())
    }

    pub(crate) fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<Table<'_, K, V>, StorageError> {
        Ok(self.0.open_table(def)?)
    }
}

/// Opening tables for reading, in a snapshot or inside the write transaction: what the domain read
/// traits ([`ChainRead`], [`PegoutRead`], [`GovernanceRead`]) are built on.
pub trait Tables {
    /// A table opened for reading.
    type Table<'a, K: Key + 'static, V: Value + 'static>: redb::ReadableTable<K, V>
    where
        Self: 'a;

    /// Opens `def` for reading.
    fn open<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<Self::Table<'_, K, V>, StorageError>;
}

impl Tables for ReadTx {
    type Table<'a, K: Key + 'static, V: Value + 'static> = ReadOnlyTable<K, V>;

    fn open<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<Self::Table<'_, K, V>, StorageError> {
        Ok(self.0.open_table(def)?)
    }
}

impl Tables for WriteTx {
    type Table<'a, K: Key + 'static, V: Value + 'static> = Table<'a, K, V>;

    fn open<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<Self::Table<'_, K, V>, StorageError> {
        self.table(def)
    }
}
