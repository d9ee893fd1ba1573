//! Builders of executed blocks, receipts and logs for tests and benchmarks (feature `test-utils`).
//!
//! Blocks are real alloy blocks: EIP-1559 transactions (signed with a fixed test signature), EIP-1559
//! receipts with their blooms, and `RequestPegOut` logs ABI-encoded by the contract's bindings.
//! [`TestBlock`] is such a block with its receipts, read through [`BlockLogs`] like an execution
//! client's; [`TestNotification`] is a chain notification of them (blocks reverted, then committed).

use alloy_consensus::{
    Block, BlockBody, Header, Receipt, ReceiptEnvelope, ReceiptWithBloom, Signed, TxEip1559, TxEnvelope,
};
use alloy_eips::BlockNumHash;
use alloy_primitives::{
    Address, B256, BlockNumber, Bytes, Log, LogData, Signature, U256, address, b256, logs_bloom,
};
use alloy_sol_types::SolEvent;
use alys_contracts::{BRIDGE_ADDRESS, Bridge};

use crate::BlockLogs;

/// An executed block: the block, its hash and the receipt of each transaction, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestBlock {
    /// The block's hash (the hash of its header).
    pub hash: B256,
    /// The block: header and body.
    pub block: Block<TxEnvelope, Header>,
    /// The receipt of each transaction, in the body's order.
    pub receipts: Vec<ReceiptEnvelope>,
}

impl TestBlock {
    /// The block's number.
    pub const fn number(&self) -> BlockNumber {
        self.block.header.number
    }

    /// The block's number and hash.
    pub const fn num_hash(&self) -> BlockNumHash {
        BlockNumHash { number: self.block.header.number, hash: self.hash }
    }
}

impl BlockLogs for TestBlock {
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

/// The account that burns in the fixtures.
pub const ALICE: Address = address!("0x00000000000000000000000000000000000a11ce");
/// A second account of the fixtures.
pub const BOB: Address = address!("0x0000000000000000000000000000000000000b0b");
/// An ERC-20 token contract of the fixtures (its logs must never count as burns).
pub const TOKEN: Address = address!("0x7070707070707070707070707070707070707070");
/// The Bitcoin address the fixtures' burns pay.
pub const BTC_ADDR: &[u8] = b"bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

/// `n` times the bridge's minimum burn, in wei.
pub fn wei(n: u64) -> U256 {
    alys_contracts::MIN_PEGOUT_WEI * U256::from(n)
}

/// A block with: a token transfer, a bridge burn, a transfer + a burn in one transaction.
pub fn block_with_burns(number: u64, parent: B256, salt: u64) -> TestBlock {
    block(
        number,
        parent,
        salt,
        vec![
            vec![transfer_log(TOKEN, ALICE, BOB, U256::from(5))],
            vec![bridge_burn_log(ALICE, BTC_ADDR, wei(salt + 1))],
            vec![transfer_log(TOKEN, BOB, ALICE, U256::from(1)), bridge_burn_log(BOB, b"bc1qbob", wei(2))],
        ],
    )
}

/// `n` contiguous blocks after `parent`, numbered from `first`, each with one burn.
pub fn blocks(first: u64, parent: B256, n: u64, salt: u64) -> Vec<TestBlock> {
    let mut out = Vec::new();
    let mut parent = parent;
    for number in first..first + n {
        let b = block(number, parent, salt, vec![vec![bridge_burn_log(ALICE, BTC_ADDR, wei(number))]]);
        parent = b.hash;
        out.push(b);
    }
    out
}

/// One burn with every field set (codec tests).
pub fn sample_burn() -> crate::Burn {
    crate::Burn {
        block_number: 7,
        block_hash: B256::repeat_byte(1),
        log_index: 3,
        tx_hash: B256::repeat_byte(2),
        tx_index: 1,
        sender: Address::repeat_byte(3),
        bitcoin_address: alloy_primitives::Bytes::from_static(b"bcrt1qexample"),
        value: U256::from(10u64).pow(U256::from(16u64)),
    }
}

/// Topic 0 of ERC-20 `Transfer(address,address,uint256)`: the most common log on any EVM chain.
pub const TRANSFER_TOPIC: B256 = b256!("0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef");

/// A `RequestPegOut` log as `emitter` would emit it.
pub fn burn_log(emitter: Address, sender: Address, bitcoin_address: &[u8], value: U256) -> Log {
    let event = Bridge::RequestPegOut {
        evmAddress: sender,
        bitcoinAddress: Bytes::copy_from_slice(bitcoin_address),
        value,
    };
    Log { address: emitter, data: event.encode_log_data() }
}

/// A `RequestPegOut` log of the predeployed bridge.
pub fn bridge_burn_log(sender: Address, bitcoin_address: &[u8], value: U256) -> Log {
    burn_log(BRIDGE_ADDRESS, sender, bitcoin_address, value)
}

/// An ERC-20 `Transfer` log of `token`.
pub fn transfer_log(token: Address, from: Address, to: Address, amount: U256) -> Log {
    let topics = vec![TRANSFER_TOPIC, from.into_word(), to.into_word()];
    Log {
        address: token,
        data: LogData::new_unchecked(topics, Bytes::from(amount.to_be_bytes::<32>().to_vec())),
    }
}

/// A log with arbitrary topics and data.
pub fn raw_log(address: Address, topics: Vec<B256>, data: &[u8]) -> Log {
    Log { address, data: LogData::new_unchecked(topics, Bytes::copy_from_slice(data)) }
}

/// A successful EIP-1559 receipt with these logs.
pub fn receipt(cumulative_gas_used: u64, logs: Vec<Log>) -> ReceiptEnvelope {
    let logs_bloom = logs_bloom(logs.iter());
    ReceiptEnvelope::Eip1559(ReceiptWithBloom {
        receipt: Receipt { status: true.into(), cumulative_gas_used, logs },
        logs_bloom,
    })
}

/// A signed EIP-1559 transaction, distinct per `(salt, nonce)`.
pub fn transaction(salt: u64, nonce: u64) -> TxEnvelope {
    let tx = TxEip1559 {
        chain_id: 212121,
        nonce,
        gas_limit: 100_000 + salt,
        max_fee_per_gas: 1_000_000_000,
        max_priority_fee_per_gas: 1,
        to: BRIDGE_ADDRESS.into(),
        value: U256::ZERO,
        ..Default::default()
    };
    TxEnvelope::Eip1559(Signed::new_unhashed(tx, Signature::test_signature()))
}

/// An executed block at `number` on `parent_hash`: one transaction per entry of `logs_per_tx`, each with
/// a receipt holding those logs. `salt` makes siblings at the same height differ.
pub fn block(number: u64, parent_hash: B256, salt: u64, logs_per_tx: Vec<Vec<Log>>) -> TestBlock {
    let transactions: Vec<TxEnvelope> = (0..logs_per_tx.len() as u64)
        .map(|i| transaction(salt.wrapping_mul(1_000_003) ^ number, i))
        .collect();
    let receipts =
        logs_per_tx.into_iter().enumerate().map(|(i, logs)| receipt(21_000 * (i as u64 + 1), logs)).collect();
    let header = Header {
        number,
        parent_hash,
        extra_data: Bytes::from(salt.to_be_bytes().to_vec()),
        gas_limit: 30_000_000,
        timestamp: 1_700_000_000 + number * 2,
        ..Default::default()
    };
    let hash = header.hash_slow();
    TestBlock {
        hash,
        block: Block { header, body: BlockBody { transactions, ommers: Vec::new(), withdrawals: None } },
        receipts,
    }
}

/// A change of the canonical chain, as an execution client notifies it: `reverted` blocks removed, then
/// `committed` blocks added, each run ascending (reth's `ExExNotification`: a reorg has both).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TestNotification {
    /// The blocks removed, ascending.
    pub reverted: Vec<TestBlock>,
    /// The blocks added, ascending.
    pub committed: Vec<TestBlock>,
}

/// Checks that `blocks` form a chain, each the parent of the next.
///
/// # Panics
/// If they do not: a test that builds such a chain is wrong.
fn contiguous(blocks: Vec<TestBlock>) -> Vec<TestBlock> {
    for pair in blocks.windows(2) {
        if let [parent, child] = pair {
            assert!(
                child.block.header.parent_hash == parent.hash && child.number() == parent.number() + 1,
                "block {} ({}) does not extend the test chain",
                child.number(),
                child.hash
            );
        }
    }
    blocks
}

/// New blocks extend the canonical chain.
///
/// # Panics
/// If the blocks are not contiguous.
pub fn committed(blocks: Vec<TestBlock>) -> TestNotification {
    TestNotification { reverted: Vec::new(), committed: contiguous(blocks) }
}

/// Canonical blocks were removed and not replaced.
///
/// # Panics
/// If the blocks are not contiguous.
pub fn reverted(blocks: Vec<TestBlock>) -> TestNotification {
    TestNotification { reverted: contiguous(blocks), committed: Vec::new() }
}

/// The canonical chain switched branches: `old` reverted, then `new` committed.
///
/// # Panics
/// If either run of blocks is not contiguous.
pub fn reorged(old: Vec<TestBlock>, new: Vec<TestBlock>) -> TestNotification {
    TestNotification { reverted: contiguous(old), committed: contiguous(new) }
}
