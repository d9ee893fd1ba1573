//! Burn extraction: `RequestPegOut` logs of the bridge contract, read from a block's receipts.

use alloy_primitives::{Address, Log};
use alloy_sol_types::SolEvent;
use alys_contracts::{BRIDGE_ADDRESS, Bridge, REQUEST_PEGOUT_TOPIC};

use crate::{BlockLogs, burn::Burn, metrics as m};

/// Reads bridge burns out of executed blocks.
///
/// Only logs emitted by the configured bridge address count (DESIGN invariant 3): the same event from a
/// copy of the contract elsewhere is ignored. A bridge log with the burn topic that does not decode is
/// skipped with a warning and a metric, never a panic: receipts are outside data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BurnExtractor {
    bridge: Address,
}

impl Default for BurnExtractor {
    fn default() -> Self {
        Self { bridge: BRIDGE_ADDRESS }
    }
}

impl BurnExtractor {
    /// An extractor for the bridge predeployed at [`BRIDGE_ADDRESS`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads burns emitted by `bridge` instead (a test network with the bridge elsewhere).
    pub const fn with_bridge_address(mut self, bridge: Address) -> Self {
        self.bridge = bridge;
        self
    }

    /// The address whose logs count.
    pub const fn bridge_address(&self) -> Address {
        self.bridge
    }

    /// The burns of one block, in log order.
    ///
    /// Log indexes count every log of the block in receipt order, as `eth_getLogs` does, so a burn's key
    /// is the same whether it is read here or over JSON-RPC.
    pub fn extract_block(&self, block: &impl BlockLogs) -> Vec<Burn> {
        let mut burns = Vec::new();
        let mut log_index = 0u64;
        for (tx_index, logs) in block.receipt_logs().enumerate() {
            for log in logs {
                if self.is_burn_log(log)
                    && let Some(burn) = self.decode(block, tx_index, log_index, log)
                {
                    burns.push(burn);
                }
                log_index += 1;
            }
        }
        burns
    }

    /// The burn a log read over JSON-RPC (`eth_getLogs`) stands for, or `None` when it is not a
    /// well-formed `RequestPegOut` of the bridge. The geth path reads burns this way, so both paths
    /// decode and key burns identically.
    pub fn burn_from_rpc_log(&self, log: &alloy_rpc_types_eth::Log) -> Option<Burn> {
        if !self.is_burn_log(&log.inner) {
            return None;
        }
        let (Some(block_number), Some(block_hash), Some(tx_hash), Some(tx_index), Some(log_index)) =
            (log.block_number, log.block_hash, log.transaction_hash, log.transaction_index, log.log_index)
        else {
            metrics::counter!(m::MALFORMED_BURN_LOGS).increment(1);
            tracing::warn!(target: "alys::exex::extract", "skipping a pending log without block position");
            return None;
        };
        let skip = |reason: &dyn std::fmt::Display| {
            metrics::counter!(m::MALFORMED_BURN_LOGS).increment(1);
            tracing::warn!(
                target: "alys::exex::extract",
                block = block_number,
                hash = %block_hash,
                tx_index,
                log_index,
                %reason,
                "skipping malformed RequestPegOut log"
            );
        };
        if log.inner.data.topics().len() != 2 {
            skip(&"wrong number of topics");
            return None;
        }
        let event = match Bridge::RequestPegOut::decode_raw_log_validate(
            log.inner.data.topics(),
            &log.inner.data.data,
        ) {
            Ok(event) => event,
            Err(err) => {
                skip(&err);
                return None;
            }
        };
        Some(Burn {
            block_number,
            block_hash,
            log_index,
            tx_hash,
            tx_index,
            sender: event.evmAddress,
            bitcoin_address: event.bitcoinAddress,
            value: event.value,
        })
    }

    /// The burns of every block of a chain, in the order of its blocks.
    pub fn extract_chain<B: BlockLogs>(&self, blocks: impl IntoIterator<Item = B>) -> Vec<Burn> {
        blocks.into_iter().flat_map(|block| self.extract_block(&block)).collect()
    }

    fn is_burn_log(&self, log: &Log) -> bool {
        log.address == self.bridge && log.data.topics().first() == Some(&REQUEST_PEGOUT_TOPIC)
    }

    fn decode(&self, block: &impl BlockLogs, tx_index: usize, log_index: u64, log: &Log) -> Option<Burn> {
        let at = block.num_hash();
        let skip = |reason: &dyn std::fmt::Display| {
            metrics::counter!(m::MALFORMED_BURN_LOGS).increment(1);
            tracing::warn!(
                target: "alys::exex::extract",
                block = at.number,
                hash = %at.hash,
                tx_index,
                log_index,
                %reason,
                "skipping malformed RequestPegOut log"
            );
        };
        // The event has exactly one indexed parameter; anything else did not come from the bridge's ABI.
        if log.data.topics().len() != 2 {
            skip(&"wrong number of topics");
            return None;
        }
        // Validating decode: an indexed address with dirty upper bytes or non-canonical data is refused.
        let event = match Bridge::RequestPegOut::decode_raw_log_validate(log.data.topics(), &log.data.data) {
            Ok(event) => event,
            Err(err) => {
                skip(&err);
                return None;
            }
        };
        let Some(tx_hash) = block.tx_hash(tx_index) else {
            skip(&"receipt without a transaction");
            return None;
        };
        Some(Burn {
            block_number: at.number,
            block_hash: at.hash,
            log_index,
            tx_hash,
            tx_index: tx_index as u64,
            sender: event.evmAddress,
            bitcoin_address: event.bitcoinAddress,
            value: event.value,
        })
    }
}
