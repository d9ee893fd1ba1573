//! The block builder's view of the pool: executable transactions, highest tip first.

use std::{collections::BinaryHeap, sync::Arc, vec::IntoIter};

use alloy_primitives::Address;

use crate::PooledTx;

/// Orders candidates by tip, then by arrival (earlier first).
#[derive(Debug, PartialEq, Eq)]
struct Candidate {
    tip: u128,
    received: u64,
    queue: usize,
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.tip.cmp(&other.tip).then_with(|| other.received.cmp(&self.received))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Executable transactions in the order a block should include them: each sender's in nonce order, and
/// across senders the highest effective tip first. A transaction whose fee cap is below the base fee ends
/// its sender's run, since the ones after it cannot execute before it.
#[derive(Debug)]
pub struct BestTransactions {
    queues: Vec<(Address, IntoIter<Arc<PooledTx>>)>,
    heap: BinaryHeap<Candidate>,
    pending: Vec<Option<Arc<PooledTx>>>,
    base_fee: u64,
}

impl BestTransactions {
    pub(crate) fn new(queues: impl Iterator<Item = Vec<Arc<PooledTx>>>, base_fee: u64) -> Self {
        let mut best = Self { queues: Vec::new(), heap: BinaryHeap::new(), pending: Vec::new(), base_fee };
        for queue in queues {
            let Some(sender) = queue.first().map(|tx| tx.sender) else { continue };
            let index = best.queues.len();
            best.queues.push((sender, queue.into_iter()));
            best.pending.push(None);
            best.advance(index);
        }
        best
    }

    /// Puts the next transaction of queue `index` on the heap, if it can pay the base fee.
    fn advance(&mut self, index: usize) {
        let Some((_, queue)) = self.queues.get_mut(index) else { return };
        let Some(tx) = queue.next() else { return };
        let Some(tip) = tx.effective_tip(self.base_fee) else { return };
        self.heap.push(Candidate { tip, received: tx.received, queue: index });
        if let Some(slot) = self.pending.get_mut(index) {
            *slot = Some(tx);
        }
    }

    /// Skips every remaining transaction of `sender`: one of its transactions failed, so the following
    /// nonces cannot execute in this block.
    pub fn mark_invalid(&mut self, sender: Address) {
        for (index, (queue_sender, queue)) in self.queues.iter_mut().enumerate() {
            if *queue_sender == sender {
                queue.by_ref().for_each(drop);
                if let Some(slot) = self.pending.get_mut(index) {
                    *slot = None;
                }
            }
        }
    }
}

impl Iterator for BestTransactions {
    type Item = Arc<PooledTx>;

    fn next(&mut self) -> Option<Self::Item> {
        while let Some(candidate) = self.heap.pop() {
            let Some(tx) = self.pending.get_mut(candidate.queue).and_then(Option::take) else {
                continue; // the sender was marked invalid
            };
            self.advance(candidate.queue);
            return Some(tx);
        }
        None
    }
}
