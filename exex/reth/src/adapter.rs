//! The thin adapter: reth's blocks and receipts read in place as [`BlockLogs`], each `ExExNotification`
//! turned into an `alys_exex::ChainUpdate`, and the ExEx loop around `alys_exex::BurnExEx`. Everything
//! else (extraction, storage, the feed) is reth-free and tested in the workspace.

use std::sync::Arc;

use alloy_eips::BlockNumHash;
use alloy_primitives::{B256, Log};
use alys_burns::{BlockLogs, BurnExtractor};
use alys_exex::{BurnExEx, ChainUpdate};
use futures::TryStreamExt;
use reth_ethereum::{
    Block, EthPrimitives, Receipt,
    exex::{ExExContext, ExExEvent, ExExHead, ExExNotification},
    node::api::{FullNodeComponents, NodeTypes},
    primitives::RecoveredBlock,
    provider::{BlockIdReader, Chain},
};

/// One of reth's executed blocks with its receipts, borrowed from the notification's chain: extraction
/// reads the logs where reth keeps them, and hashes only the transactions that burned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RethBlock<'a> {
    block: &'a RecoveredBlock<Block>,
    receipts: &'a [Receipt],
}

impl BlockLogs for RethBlock<'_> {
    fn num_hash(&self) -> BlockNumHash {
        self.block.num_hash()
    }

    fn parent_hash(&self) -> B256 {
        self.block.sealed_block().header().parent_hash
    }

    fn receipt_logs(&self) -> impl Iterator<Item = &[Log]> {
        self.receipts.iter().map(|receipt| receipt.logs.as_slice())
    }

    fn tx_hash(&self, index: usize) -> Option<B256> {
        self.block.sealed_block().body().transactions.get(index).map(|tx| *tx.tx_hash())
    }
}

/// The blocks of a chain with their receipts, ascending.
///
/// Fails when the chain does not hold one receipt list per block: pairing them anyway would give a
/// block another block's logs, or drop blocks (and their burns) from the update.
fn blocks_with_receipts(chain: &Chain) -> eyre::Result<impl Iterator<Item = RethBlock<'_>>> {
    let receipts = chain.execution_outcome().receipts();
    eyre::ensure!(
        receipts.len() == chain.len(),
        "chain of {} blocks from {} carries receipts for {}",
        chain.len(),
        chain.first().num_hash().number,
        receipts.len()
    );
    Ok(chain.blocks_and_receipts().map(|(block, receipts)| RethBlock { block, receipts }))
}

/// The blocks of a reverted chain, ascending: only their number, hash and parent are read, so their
/// receipts are not needed (and not paired).
fn reverted_blocks(chain: &Chain) -> impl Iterator<Item = RethBlock<'_>> {
    chain.blocks_iter().map(|block| RethBlock { block, receipts: &[] })
}

/// The store's input for one notification: the reverted chain's blocks, then the committed chain's
/// blocks with their burns, read by `extractor`.
pub(crate) fn chain_update(
    extractor: &BurnExtractor,
    notification: &ExExNotification,
) -> eyre::Result<ChainUpdate> {
    // Cloning the `Arc`s, not the chains.
    let old = notification.reverted_chain();
    let new = notification.committed_chain();
    let committed = match new.as_deref() {
        Some(chain) => Some(blocks_with_receipts(chain)?),
        None => None,
    };
    let reverted = old.as_deref().into_iter().flat_map(reverted_blocks);
    Ok(ChainUpdate::new(reverted, committed.into_iter().flatten(), extractor))
}

/// The ExEx: resume from the store's head, store every notification, and report `FinishedHeight` only
/// after the store committed (DESIGN invariant 7), following reth's finalized block.
pub(crate) async fn run<Node>(mut ctx: ExExContext<Node>, exex: Arc<BurnExEx>) -> eyre::Result<()>
where
    Node: FullNodeComponents<Types: NodeTypes<Primitives = EthPrimitives>>,
{
    if let Some(head) = exex.head()? {
        ctx.set_notifications_with_head(ExExHead { block: head });
    }
    while let Some(notification) = ctx.notifications.try_next().await? {
        let update = chain_update(exex.extractor(), &notification)?;
        // Returns once the update is committed; only then may reth hear of a FinishedHeight.
        let processed = exex.handle_update(update).await?;
        if let Some(finalized) = ctx.provider().finalized_block_num_hash()?
            && let Some(finished) = exex.set_finalized(finalized)?
        {
            ctx.events.send(ExExEvent::FinishedHeight(finished))?;
            continue;
        }
        if let Some(finished) = processed.finished_height {
            ctx.events.send(ExExEvent::FinishedHeight(finished))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic, reason = "test code")]
    use std::collections::BTreeMap;

    use alloy_consensus::TxEnvelope;
    use alloy_primitives::{Address, U256};
    use alys_burns::test_utils::{TestBlock, block, bridge_burn_log, burn_log, transfer_log};
    use reth_ethereum::{TransactionSigned, TxType, provider::ExecutionOutcome};

    use super::*;

    /// The same blocks and receipts as reth holds them in a notification's chain.
    fn reth_chain(blocks: &[TestBlock]) -> Chain {
        let receipts = blocks
            .iter()
            .map(|b| {
                b.receipts
                    .iter()
                    .map(|r| Receipt {
                        tx_type: TxType::Eip1559,
                        success: true,
                        cumulative_gas_used: 21_000,
                        logs: r.logs().to_vec(),
                    })
                    .collect()
            })
            .collect();
        let recovered = blocks.iter().map(|b| {
            let block = b.block.clone().map_transactions(|tx| match tx {
                TxEnvelope::Eip1559(tx) => TransactionSigned::Eip1559(tx),
                other => panic!("test blocks hold EIP-1559 transactions, not {other:?}"),
            });
            RecoveredBlock::new_unhashed(
                block,
                vec![Address::repeat_byte(0x11); b.block.body.transactions.len()],
            )
        });
        let outcome = ExecutionOutcome { receipts, first_block: blocks[0].number(), ..Default::default() };
        Chain::new(recovered, outcome, BTreeMap::new())
    }

    #[test]
    fn reth_blocks_give_the_update_of_the_same_alloy_blocks() {
        let copy = Address::repeat_byte(0xbc);
        let (alice, bob) = (Address::repeat_byte(0xa1), Address::repeat_byte(0xb2));
        let old =
            vec![block(1, B256::ZERO, 1, vec![vec![bridge_burn_log(alice, b"bc1qold", U256::from(1))]])];
        let mut new = Vec::new();
        let mut parent = B256::ZERO;
        for number in 1..=3 {
            let b = block(
                number,
                parent,
                2,
                vec![
                    vec![transfer_log(copy, alice, bob, U256::from(5))],
                    vec![],
                    vec![
                        burn_log(copy, alice, b"bc1qcopy", U256::from(7)),
                        bridge_burn_log(bob, b"bc1qbob", U256::from(number)),
                    ],
                ],
            );
            parent = b.hash;
            new.push(b);
        }
        let extractor = BurnExtractor::default();
        let notification = ExExNotification::ChainReorged {
            old: Arc::new(reth_chain(&old)),
            new: Arc::new(reth_chain(&new)),
        };
        let update = chain_update(&extractor, &notification).unwrap();
        assert_eq!(update, ChainUpdate::new(&old, &new, &extractor));
        assert_eq!(update.reverted.len(), 1);
        let burns: Vec<_> = update.committed.iter().flat_map(|b| &b.burns).collect();
        assert_eq!(burns.len(), 3, "one bridge burn per block; the copy's are ignored");
        assert!(burns.iter().all(|burn| burn.log_index == 2 && burn.tx_index == 2));
        assert_eq!(burns[0].tx_hash, *new[0].block.body.transactions[2].tx_hash());

        // A committed chain whose receipts do not cover its blocks is refused, not mis-paired.
        let mut short = reth_chain(&new);
        short.execution_outcome_mut().receipts.pop();
        let notification = ExExNotification::ChainCommitted { new: Arc::new(short) };
        assert!(chain_update(&extractor, &notification).is_err());
    }
}
