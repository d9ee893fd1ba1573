//! What can go wrong with the database.

use std::path::PathBuf;

use alloy_primitives::B256;

/// A database failure. A failed write transaction changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database file could not be opened or created.
    #[error("cannot open the database {}: {source}{}", path.display(), lock_hint(source))]
    Open {
        /// The file.
        path: PathBuf,
        /// redb's reason.
        source: redb::DatabaseError,
    },
    /// A transaction could not begin.
    #[error("database transaction: {0}")]
    Transaction(#[from] redb::TransactionError),
    /// A table could not be opened.
    #[error("database table: {0}")]
    Table(#[from] redb::TableError),
    /// Reading or writing failed (I/O, or corruption redb detected).
    #[error("database storage: {0}")]
    Storage(#[from] redb::StorageError),
    /// A transaction's durability could not be set.
    #[error("database durability: {0}")]
    Durability(String),
    /// The commit failed; nothing of the transaction was applied.
    #[error("database commit: {0}")]
    Commit(#[from] redb::CommitError),
    /// A stored value does not decode: the file is damaged or was written by something else.
    #[error("corrupt {table} record: {source}")]
    Decode {
        /// The table.
        table: &'static str,
        /// The decoding error.
        source: alloy_rlp::Error,
    },
    /// A stored value has the wrong size.
    #[error("corrupt {table} record: {len} bytes, expected {expected}")]
    Length {
        /// The table.
        table: &'static str,
        /// Its length.
        len: usize,
        /// The length it must have.
        expected: usize,
    },
    /// The block is not in the database.
    #[error("unknown block {0}")]
    UnknownBlock(B256),
    /// The canonical index has no block at a height below the head.
    #[error("no canonical block at height {0}")]
    MissingHeight(u64),
    /// The block's ancestry does not reach the canonical chain through stored blocks.
    #[error("block {0} does not connect to the canonical chain")]
    Disconnected(B256),
    /// Moving the head there would revert the finalized block.
    #[error("block {hash} would revert finalized block at height {finalized}")]
    BelowFinalized {
        /// The refused head.
        hash: B256,
        /// The finalized height.
        finalized: u64,
    },
    /// Only a canonical block can be finalized.
    #[error("block {0} is not canonical")]
    NotCanonical(B256),
    /// A block's peg-out transaction does not decode (blocks are checked before they are stored, so
    /// this is a damaged file or a bug).
    #[error(transparent)]
    PegoutTx(Box<crate::federation::PegoutTxError>),
}

fn lock_hint(error: &redb::DatabaseError) -> &'static str {
    match error {
        redb::DatabaseError::DatabaseAlreadyOpen => {
            " (another process, probably another `alys` with the same data directory, holds it)"
        }
        _ => "",
    }
}
