//! Builders of executed blocks, receipts and logs for tests and benchmarks (feature `test-utils`).
//!
//! Blocks are real alloy blocks: EIP-1559 transactions (signed with a fixed test signature), EIP-1559
//! receipts with their blooms, and `RequestPegOut` logs ABI-encoded by the contract's bindings.

use std::sync::Arc;

use alloy_consensus::{
    Block, BlockBody, Header, Receipt, ReceiptEnvelope, ReceiptWithBloom, Signed, TxEip1559, TxEnvelope,
};
use alloy_primitives::{Address, B256, Bytes, Log, LogData, Signature, U256, b256, logs_bloom};
use alloy_sol_types::SolEvent;
use alys_contracts::{BRIDGE_ADDRESS, Bridge};
use alys_el_api::{Chain, ChainNotification, ExecutedBlock};

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
pub fn block(number: u64, parent_hash: B256, salt: u64, logs_per_tx: Vec<Vec<Log>>) -> ExecutedBlock {
    let transactions: Vec<TxEnvelope> = (0..logs_per_tx.len() as u64)
        .map(|i| transaction(salt.wrapping_mul(1_000_003) ^ number, i))
        .collect();
    let senders = vec![Address::repeat_byte(0x11); transactions.len()];
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
    ExecutedBlock {
        hash,
        block: Block { header, body: BlockBody { transactions, ommers: Vec::new(), withdrawals: None } },
        senders,
        receipts,
    }
}

/// A chain of `blocks`.
///
/// # Panics
/// If the blocks are not contiguous: a test that builds such a chain is wrong.
#[allow(clippy::expect_used, reason = "test utilities")]
pub fn chain(blocks: Vec<ExecutedBlock>) -> Arc<Chain> {
    Arc::new(Chain::new(blocks.into_iter().map(Arc::new).collect()).expect("contiguous test chain"))
}

/// `Committed { new: blocks }`.
pub fn committed(blocks: Vec<ExecutedBlock>) -> ChainNotification {
    ChainNotification::Committed { new: chain(blocks) }
}

/// `Reverted { old: blocks }`.
pub fn reverted(blocks: Vec<ExecutedBlock>) -> ChainNotification {
    ChainNotification::Reverted { old: chain(blocks) }
}

/// `Reorged { old, new }`.
pub fn reorged(old: Vec<ExecutedBlock>, new: Vec<ExecutedBlock>) -> ChainNotification {
    ChainNotification::Reorged { old: chain(old), new: chain(new) }
}
