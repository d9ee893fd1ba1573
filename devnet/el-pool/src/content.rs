//! A read-only view of everything pooled, split as geth's `txpool_content` splits it.

use std::sync::Arc;

use crate::{AccountState, Pool, PooledTx, executable_run};

/// The pooled transactions, each sender's in nonce order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolContent {
    /// Executable: from the sender's account nonce on, without a gap.
    pub pending: Vec<Arc<PooledTx>>,
    /// Waiting behind a nonce gap.
    pub queued: Vec<Arc<PooledTx>>,
}

impl Pool {
    /// Every pooled transaction, pending or queued against the account nonces of `state`.
    pub fn content(&self, state: &impl AccountState) -> PoolContent {
        let mut content = PoolContent::default();
        for (sender, txs) in &self.by_sender {
            let run = executable_run(txs, state.nonce(*sender)).count();
            let mut all = txs.range(state.nonce(*sender)..).map(|(_, tx)| Arc::clone(tx));
            content.pending.extend(all.by_ref().take(run));
            content.queued.extend(all);
        }
        content
    }
}
