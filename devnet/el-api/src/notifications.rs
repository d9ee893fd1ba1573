//! Canonical chain notifications, identical in content to what reth gives an Execution Extension.
//!
//! reth's `ExExNotification` has three variants: a chain committed, a chain reverted, and a reorg (the old
//! chain reverted and the new one committed). [`ChainNotification`] has the same three, carrying the same
//! data: every block of the chain in ascending order, each with its transactions, senders and receipts. The
//! ExEx (through [`BlockLogs`], which [`ExecutedBlock`] implements in place) and the eth subscriptions both
//! consume these.

use std::sync::Arc;

use alloy_consensus::{Block, Header, ReceiptEnvelope, TxEnvelope};
use alloy_eips::BlockNumHash;
use alloy_primitives::{Address, B256, BlockNumber, Log};
use alys_burns::BlockLogs;

/// A block after execution: the block, its hash, the recovered senders and the receipts, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutedBlock {
    /// The block's hash (the hash of its header).
    pub hash: B256,
    /// The block: header and body.
    pub block: Block<TxEnvelope, Header>,
    /// The sender of each transaction, in the body's order.
    pub senders: Vec<Address>,
    /// The receipt of each transaction, in the body's order, with its logs and cumulative gas.
    pub receipts: Vec<ReceiptEnvelope>,
}

impl ExecutedBlock {
    /// The block's number.
    pub const fn number(&self) -> BlockNumber {
        self.block.header.number
    }

    /// The block's number and hash.
    pub const fn num_hash(&self) -> BlockNumHash {
        BlockNumHash { number: self.block.header.number, hash: self.hash }
    }

    /// Every log of the block in its JSON-RPC shape, with block, transaction and in-block log indexes
    /// (as `eth_getLogs` numbers them); `removed` marks logs of a reverted block.
    pub fn rpc_logs(&self, removed: bool) -> impl Iterator<Item = alloy_rpc_types_eth::Log> + '_ {
        let header = &self.block.header;
        self.block
            .body
            .transactions
            .iter()
            .zip(&self.receipts)
            .enumerate()
            .flat_map(|(tx_index, (tx, receipt))| {
                let tx_hash = *tx.tx_hash();
                receipt.logs().iter().map(move |log| (tx_index, tx_hash, log))
            })
            .enumerate()
            .map(move |(log_index, (tx_index, tx_hash, log))| alloy_rpc_types_eth::Log {
                inner: log.clone(),
                block_hash: Some(self.hash),
                block_number: Some(header.number),
                block_timestamp: Some(header.timestamp),
                transaction_hash: Some(tx_hash),
                transaction_index: Some(tx_index as u64),
                log_index: Some(log_index as u64),
                removed,
            })
    }
}

impl BlockLogs for ExecutedBlock {
    fn num_hash(&self) -> BlockNumHash {
        Self::num_hash(self)
    }

    fn parent_hash(&self) -> B256 {
        self.block.header.parent_hash
    }

    fn receipt_logs(&self) -> impl Iterator<Item = &[Log]> {
        self.receipts.iter().map(|receipt| receipt.logs())
    }

    fn tx_hash(&self, index: usize) -> Option<B256> {
        self.block.body.transactions.get(index).map(|tx| *tx.tx_hash())
    }
}

/// A contiguous run of blocks in ascending order, each the parent of the next (reth's `Chain`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chain {
    blocks: Vec<Arc<ExecutedBlock>>,
}

/// A run of blocks that is not contiguous cannot form a [`Chain`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("block {number} ({hash}) does not extend the chain")]
pub struct NotContiguous {
    /// The offending block's number.
    pub number: BlockNumber,
    /// The offending block's hash.
    pub hash: B256,
}

impl Chain {
    /// Builds a chain from blocks in ascending order; each block's parent must be the previous block.
    pub fn new(blocks: Vec<Arc<ExecutedBlock>>) -> Result<Self, NotContiguous> {
        for pair in blocks.windows(2) {
            if let [parent, child] = pair
                && (child.block.header.parent_hash != parent.hash || child.number() != parent.number() + 1)
            {
                return Err(NotContiguous { number: child.number(), hash: child.hash });
            }
        }
        Ok(Self { blocks })
    }

    /// The blocks, ascending.
    pub fn blocks(&self) -> &[Arc<ExecutedBlock>] {
        &self.blocks
    }

    /// The first block, if any.
    pub fn first(&self) -> Option<&Arc<ExecutedBlock>> {
        self.blocks.first()
    }

    /// The last block (the tip), if any.
    pub fn tip(&self) -> Option<&Arc<ExecutedBlock>> {
        self.blocks.last()
    }

    /// Whether the chain has no blocks.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The number of blocks.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }
}

/// A change of the canonical chain (reth's `ExExNotification`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainNotification {
    /// New blocks extend the canonical chain.
    Committed {
        /// The blocks added.
        new: Arc<Chain>,
    },
    /// Canonical blocks were removed and not replaced (e.g. the head moved back to an ancestor).
    Reverted {
        /// The blocks removed, ascending.
        old: Arc<Chain>,
    },
    /// The canonical chain switched branches: `old` was reverted, then `new` committed.
    Reorged {
        /// The blocks removed, ascending.
        old: Arc<Chain>,
        /// The blocks added, ascending.
        new: Arc<Chain>,
    },
}

impl ChainNotification {
    /// The chain that was committed, if any.
    pub fn committed_chain(&self) -> Option<&Arc<Chain>> {
        match self {
            Self::Committed { new } | Self::Reorged { new, .. } => Some(new),
            Self::Reverted { .. } => None,
        }
    }

    /// The chain that was reverted, if any.
    pub fn reverted_chain(&self) -> Option<&Arc<Chain>> {
        match self {
            Self::Reverted { old } | Self::Reorged { old, .. } => Some(old),
            Self::Committed { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::BlockBody;

    fn block(number: u64, parent: B256, salt: u8) -> Arc<ExecutedBlock> {
        let header =
            Header { number, parent_hash: parent, extra_data: vec![salt].into(), ..Default::default() };
        let hash = header.hash_slow();
        Arc::new(ExecutedBlock {
            hash,
            block: Block { header, body: BlockBody::default() },
            senders: vec![],
            receipts: vec![],
        })
    }

    #[test]
    fn chains_must_be_contiguous() {
        let a = block(1, B256::ZERO, 0);
        let b = block(2, a.hash, 0);
        let c = block(3, b.hash, 0);
        let chain = Chain::new(vec![a.clone(), b.clone(), c.clone()]).unwrap();
        assert_eq!(chain.len(), 3);
        assert_eq!(chain.tip().unwrap().num_hash(), c.num_hash());
        assert_eq!(chain.first().unwrap().number(), 1);

        let stranger = block(3, B256::repeat_byte(1), 1);
        assert_eq!(
            Chain::new(vec![a.clone(), b.clone(), stranger.clone()]),
            Err(NotContiguous { number: 3, hash: stranger.hash })
        );
        let gap = block(4, b.hash, 2);
        assert!(Chain::new(vec![a, b, gap]).is_err());
        assert!(Chain::new(vec![]).unwrap().is_empty());
    }

    #[test]
    fn notifications_expose_committed_and_reverted_chains() {
        let old = Arc::new(Chain::new(vec![block(1, B256::ZERO, 0)]).unwrap());
        let new = Arc::new(Chain::new(vec![block(1, B256::ZERO, 1)]).unwrap());
        let reorg = ChainNotification::Reorged { old: old.clone(), new: new.clone() };
        assert_eq!(reorg.reverted_chain(), Some(&old));
        assert_eq!(reorg.committed_chain(), Some(&new));
        assert_eq!(ChainNotification::Committed { new }.reverted_chain(), None);
        assert_eq!(ChainNotification::Reverted { old }.committed_chain(), None);
    }

    #[test]
    fn executed_blocks_are_read_in_place_by_extraction() {
        use alloy_consensus::{Receipt, ReceiptWithBloom, Signed, TxEip1559};
        use alloy_primitives::{Bytes, LogData, Signature};

        let log = |n: u8| Log {
            address: Address::repeat_byte(n),
            data: LogData::new_unchecked(vec![B256::repeat_byte(n)], Bytes::new()),
        };
        let tx = |nonce| {
            let tx = TxEip1559 { nonce, ..Default::default() };
            TxEnvelope::Eip1559(Signed::new_unhashed(tx, Signature::test_signature()))
        };
        let receipt = |logs: Vec<Log>| {
            ReceiptEnvelope::Eip1559(ReceiptWithBloom {
                receipt: Receipt { status: true.into(), cumulative_gas_used: 21_000, logs },
                logs_bloom: Default::default(),
            })
        };
        let header = Header { number: 5, parent_hash: B256::repeat_byte(9), ..Default::default() };
        let b = ExecutedBlock {
            hash: header.hash_slow(),
            block: Block {
                header,
                body: BlockBody { transactions: vec![tx(0), tx(1)], ommers: vec![], withdrawals: None },
            },
            senders: vec![Address::ZERO; 2],
            receipts: vec![receipt(vec![log(1), log(2)]), receipt(vec![])],
        };

        assert_eq!(BlockLogs::num_hash(&b), b.num_hash());
        assert_eq!(b.parent_hash(), B256::repeat_byte(9));
        let logs: Vec<&[Log]> = b.receipt_logs().collect();
        assert_eq!(logs, vec![&[log(1), log(2)][..], &[][..]]);
        assert_eq!(b.tx_hash(1), Some(*b.block.body.transactions[1].tx_hash()));
        assert_eq!(b.tx_hash(2), None);
        // The same transactions and logs as the JSON-RPC view of the block.
        let rpc: Vec<_> = b.rpc_logs(false).collect();
        assert_eq!(rpc.len(), 2);
        assert!(rpc.iter().all(|l| l.transaction_hash == b.tx_hash(0)));
        assert_eq!(rpc.iter().map(|l| l.inner.clone()).collect::<Vec<_>>(), logs[0].to_vec());
    }
}
