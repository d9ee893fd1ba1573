//! Walking bitcoind's best chain one block at a time, undoing blocks that leave it.
//!
//! The follower holds no state of its own: the caller passes where it stands (the last block it
//! recorded, and a way to look up the hash it recorded at a height) and applies each [`Step`] in its own
//! transaction, so its position is exactly what it committed. A step is one of:
//!
//! * [`Step::Disconnect`]: the block the caller stands on is no longer in bitcoind's best chain (a
//!   reorg); the caller forgets it and stands on the one below. Repeated, this walks back to the fork.
//! * [`Step::Connect`]: the next block of the best chain, whose parent is the block the caller stands
//!   on.
//! * [`Step::Tip`]: nothing new.
//!
//! A block that arrives between two calls is picked up on the next call. Walking forward, the next
//! block's parent is checked against the caller's block; when it does not match (a reorg), the caller's
//! height is looked up, and a block no longer there is answered with `Disconnect`.

use bitcoin::{Block, BlockHash};

use crate::{BestBlock, BitcoinClient, BitcoinError};

/// What the caller does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Record `block` at `height` (its parent is the caller's position).
    Connect {
        /// Its height.
        height: u64,
        /// The block.
        block: Box<Block>,
        /// The height of bitcoind's best block when this step was taken: how far the caller is
        /// behind (it may batch its commits while catching up).
        best: u64,
    },
    /// Forget the block at `height`: it left the best chain.
    Disconnect {
        /// Its height.
        height: u64,
        /// Its hash, as the caller recorded it.
        hash: BlockHash,
    },
    /// Up to date with bitcoind's best block.
    Tip(BestBlock),
}

/// How far below bitcoind's tip a follower with no start height begins: a day of blocks.
pub const DEFAULT_START_DEPTH: u64 = 144;

/// Walks bitcoind's best chain from a start height.
#[derive(Debug, Clone)]
pub struct Follower {
    client: BitcoinClient,
    start_height: Option<u64>,
}

impl Follower {
    /// A follower over `client`, beginning at `start_height` when the caller has recorded nothing
    /// (without one, [`DEFAULT_START_DEPTH`] blocks below the tip it first sees).
    pub const fn new(client: BitcoinClient, start_height: Option<u64>) -> Self {
        Self { client, start_height }
    }

    /// The client.
    pub const fn client(&self) -> &BitcoinClient {
        &self.client
    }

    /// The next step from `position` (the caller's last recorded block, if any).
    pub async fn step(&self, position: Option<(u64, BlockHash)>) -> Result<Step, BitcoinError> {
        let best = self.client.best_block().await?;
        metrics::gauge!(crate::metrics::NODE_HEIGHT).set(best.height as f64);
        let Some((height, hash)) = position else {
            let start = self.start_height.unwrap_or_else(|| best.height.saturating_sub(DEFAULT_START_DEPTH));
            if best.height < start {
                return Ok(Step::Tip(best));
            }
            return match self.client.block_hash(start).await? {
                Some(at) => {
                    let block = self.client.block(at).await?;
                    Ok(Step::Connect { height: start, block: Box::new(block), best: best.height })
                }
                None => Ok(Step::Tip(best)),
            };
        };
        if best.height == height && best.hash == hash {
            return Ok(Step::Tip(best));
        }
        // Walking forward, the next block's parent proves our block is still in the best chain: no
        // separate check of our height (a third of the calls while catching up).
        if best.height > height
            && let Some(next) = self.client.block_hash(height + 1).await?
        {
            let block = self.client.block(next).await?;
            if block.header.prev_blockhash == hash {
                return Ok(Step::Connect { height: height + 1, block: Box::new(block), best: best.height });
            }
        }
        if self.client.block_hash(height).await? != Some(hash) {
            metrics::counter!(crate::metrics::REORGS).increment(1);
            return Ok(Step::Disconnect { height, hash });
        }
        // Our block stands: at the tip, or the chain moved between two calls (the next call looks
        // again).
        Ok(Step::Tip(best))
    }
}
