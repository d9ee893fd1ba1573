//! The shape of an executed block as burn extraction reads it.
//!
//! Extraction needs little of a block: its number, hash and parent (to key burns and to follow the
//! chain), and, per transaction in order, the logs of its receipt and, only for a transaction that
//! burned, its hash. [`BlockLogs`] asks for exactly that, by reference, so an execution client's own
//! block and receipt types (reth's in `exex/reth`, the devnet engine's in `alys-el-api`) are read in
//! place: nothing is copied, no receipt is rebuilt and no bloom recomputed.

use alloy_eips::BlockNumHash;
use alloy_primitives::{B256, Log};

/// An executed block, as burn extraction and the ExEx read it: identity, parent, and each receipt's
/// logs in transaction order.
///
/// Implemented over an execution client's block and receipts without copying them. The log index of a
/// burn counts every log yielded by [`receipt_logs`](Self::receipt_logs) before it, so an implementation
/// must yield every receipt of the block, in order, each with all its logs.
pub trait BlockLogs {
    /// The block's number and hash.
    fn num_hash(&self) -> BlockNumHash;

    /// The hash of the block's parent.
    fn parent_hash(&self) -> B256;

    /// The logs of each receipt, in transaction order (one item per receipt, possibly empty).
    fn receipt_logs(&self) -> impl Iterator<Item = &[Log]>;

    /// The hash of the transaction at `index` in the block, or `None` when the block has no such
    /// transaction.
    ///
    /// Asked only for transactions that burned, so a client that hashes transactions lazily hashes few.
    fn tx_hash(&self, index: usize) -> Option<B256>;
}

impl<T: BlockLogs + ?Sized> BlockLogs for &T {
    fn num_hash(&self) -> BlockNumHash {
        (**self).num_hash()
    }

    fn parent_hash(&self) -> B256 {
        (**self).parent_hash()
    }

    fn receipt_logs(&self) -> impl Iterator<Item = &[Log]> {
        (**self).receipt_logs()
    }

    fn tx_hash(&self, index: usize) -> Option<B256> {
        (**self).tx_hash(index)
    }
}

impl<T: BlockLogs + ?Sized> BlockLogs for std::sync::Arc<T> {
    fn num_hash(&self) -> BlockNumHash {
        (**self).num_hash()
    }

    fn parent_hash(&self) -> B256 {
        (**self).parent_hash()
    }

    fn receipt_logs(&self) -> impl Iterator<Item = &[Log]> {
        (**self).receipt_logs()
    }

    fn tx_hash(&self, index: usize) -> Option<B256> {
        (**self).tx_hash(index)
    }
}
