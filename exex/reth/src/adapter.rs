//! The thin adapter: reth's `ExExNotification` in, `alys_el_api::ChainNotification` out, and the ExEx
//! loop around `alys_exex::BurnExEx`. Everything else (extraction, storage, the feed) is reth-free and
//! tested in the workspace.

use std::sync::Arc;

use alloy_consensus::{Eip658Value, Receipt as AlloyReceipt, ReceiptEnvelope, ReceiptWithBloom, TxReceipt};
use alys_el_api::{Chain, ChainNotification, ExecutedBlock};
use alys_exex::BurnExEx;
use futures::TryStreamExt;
use reth_ethereum::{
    EthPrimitives,
    exex::{ExExContext, ExExEvent, ExExHead, ExExNotification},
    node::api::{FullNodeComponents, NodeTypes},
    provider::{BlockIdReader, Chain as RethChain},
};

/// Converts reth's chain of recovered blocks and receipts into the reth-free chain type.
pub(crate) fn convert_chain(chain: &RethChain) -> eyre::Result<Chain> {
    let mut blocks = Vec::new();
    for (block, receipts) in chain.blocks_and_receipts() {
        let receipts = receipts
            .iter()
            .map(|receipt| {
                let inner = AlloyReceipt {
                    status: Eip658Value::Eip658(receipt.success),
                    cumulative_gas_used: receipt.cumulative_gas_used,
                    logs: receipt.logs.clone(),
                };
                let bloom = inner.bloom();
                ReceiptEnvelope::from_typed(
                    receipt.tx_type,
                    ReceiptWithBloom { receipt: inner, logs_bloom: bloom },
                )
            })
            .collect();
        blocks.push(Arc::new(ExecutedBlock {
            hash: block.hash(),
            senders: block.senders().to_vec(),
            // reth's transactions carry a plain EIP-4844 body; the reth-free types use alloy's
            // `TxEnvelope` (EIP-4844 with or without sidecar), a lossless conversion.
            block: block.clone_block().convert_transactions(),
            receipts,
        }));
    }
    Ok(Chain::new(blocks)?)
}

/// Converts one reth notification.
pub(crate) fn convert(notification: &ExExNotification) -> eyre::Result<ChainNotification> {
    Ok(match notification {
        ExExNotification::ChainCommitted { new } => {
            ChainNotification::Committed { new: Arc::new(convert_chain(new)?) }
        }
        ExExNotification::ChainReverted { old } => {
            ChainNotification::Reverted { old: Arc::new(convert_chain(old)?) }
        }
        ExExNotification::ChainReorged { old, new } => ChainNotification::Reorged {
            old: Arc::new(convert_chain(old)?),
            new: Arc::new(convert_chain(new)?),
        },
    })
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
        let processed = exex.handle_notification(convert(&notification)?).await?;
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
