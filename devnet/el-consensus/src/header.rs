//! A header against its parent: everything about a block that is known before executing it.

use alloy_consensus::{EMPTY_OMMER_ROOT_HASH, Header};
use alloy_eips::{eip1559::BaseFeeParams, eip4844::DATA_GAS_PER_BLOB};
use alloy_hardforks::EthereumHardforks;

use crate::forks::AlysForks;

/// The most extra data a header may carry.
pub const MAX_EXTRA_DATA: usize = 32;
/// The smallest gas limit a block may have.
pub const MIN_GAS_LIMIT: u64 = 5_000;
/// The largest gas limit a block may have, 2^63 - 1 (geth's `MaxGasLimit`, reth's
/// `MAXIMUM_GAS_LIMIT_BLOCK`).
pub const MAX_GAS_LIMIT: u64 = 0x7fff_ffff_ffff_ffff;
/// Gas limits move by less than `parent / 1024` per block.
pub const GAS_LIMIT_BOUND_DIVISOR: u64 = 1024;

/// Why a header does not follow its parent under the fork schedule. The text goes into
/// `PayloadStatus.validationError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The number is not the parent's plus one.
    #[error("block number {number} does not follow parent {parent}")]
    Number {
        /// The header's number.
        number: u64,
        /// The parent's number.
        parent: u64,
    },
    /// The timestamp is not after the parent's.
    #[error("timestamp {timestamp} not after parent {parent}")]
    Timestamp {
        /// The header's timestamp.
        timestamp: u64,
        /// The parent's timestamp.
        parent: u64,
    },
    /// More gas used than the gas limit allows.
    #[error("gas used {gas_used} above gas limit {gas_limit}")]
    GasUsed {
        /// The header's gas used.
        gas_used: u64,
        /// The header's gas limit.
        gas_limit: u64,
    },
    /// The gas limit is above [`MAX_GAS_LIMIT`].
    #[error("gas limit {0} above the maximum {MAX_GAS_LIMIT}")]
    GasLimitAboveMaximum(u64),
    /// The gas limit moved by 1/1024 of the parent's or more, or is below [`MIN_GAS_LIMIT`].
    #[error("gas limit {gas_limit} invalid for parent gas limit {parent}")]
    GasLimit {
        /// The header's gas limit.
        gas_limit: u64,
        /// The parent's gas limit.
        parent: u64,
    },
    /// The base fee is not the one EIP-1559 derives from the parent.
    #[error("base fee {got:?}, expected {expected}")]
    BaseFee {
        /// The header's base fee.
        got: Option<u64>,
        /// The base fee the parent implies.
        expected: u64,
    },
    /// More than [`MAX_EXTRA_DATA`] bytes of extra data.
    #[error("extra data is {0} bytes")]
    ExtraData(usize),
    /// Ommers, difficulty or nonce set after the merge.
    #[error("ommers, difficulty and nonce must be empty after the merge")]
    ProofOfWork,
    /// A fork's header field is present before the fork or missing after it.
    #[error("{field} presence must be {expected}")]
    Presence {
        /// The field.
        field: &'static str,
        /// Whether the fork at the header's timestamp has it.
        expected: bool,
    },
    /// Blob gas used is not a whole number of blobs up to the fork's maximum per block.
    #[error("blob gas used {blob_gas_used}: not a multiple of {DATA_GAS_PER_BLOB} up to {max}")]
    BlobGasUsed {
        /// The header's blob gas used.
        blob_gas_used: u64,
        /// The fork's maximum blob gas per block.
        max: u64,
    },
    /// The excess blob gas is not the one EIP-4844 derives from the parent.
    #[error("excess blob gas {got:?}, expected {expected:?}")]
    ExcessBlobGas {
        /// The header's excess blob gas.
        got: Option<u64>,
        /// The excess the parent implies.
        expected: Option<u64>,
    },
}

/// The base fee of the block after `parent` (EIP-1559).
pub fn next_base_fee(parent: &Header) -> u64 {
    parent.next_block_base_fee(BaseFeeParams::ethereum()).unwrap_or_default()
}

/// The excess blob gas of a block after `parent` at `timestamp`, with that fork's blob parameters (`None`
/// before Cancun; zero after a pre-Cancun parent).
pub fn next_excess_blob_gas(forks: &AlysForks, parent: &Header, timestamp: u64) -> Option<u64> {
    let params = forks.blob_params_at(timestamp)?;
    Some(parent.next_block_excess_blob_gas(params).unwrap_or_default())
}

/// The gas limit of a block whose parent has `parent` and whose builder aims at `target`, moving as far
/// as the protocol allows in one block (geth's `CalcGasLimit`), within [`MIN_GAS_LIMIT`] and
/// [`MAX_GAS_LIMIT`].
pub fn next_gas_limit(parent: u64, target: Option<u64>) -> u64 {
    let Some(target) = target else { return parent };
    let step = (parent / GAS_LIMIT_BOUND_DIVISOR).saturating_sub(1);
    let limit = if target > parent {
        parent.saturating_add(step).min(target)
    } else {
        parent.saturating_sub(step).max(target)
    };
    limit.clamp(MIN_GAS_LIMIT, MAX_GAS_LIMIT)
}

/// Checks a header against its parent and the fork schedule: everything but the results of execution
/// and the body's roots.
pub fn validate_header(forks: &AlysForks, header: &Header, parent: &Header) -> Result<(), HeaderError> {
    if header.number != parent.number.saturating_add(1) {
        return Err(HeaderError::Number { number: header.number, parent: parent.number });
    }
    if header.timestamp <= parent.timestamp {
        return Err(HeaderError::Timestamp { timestamp: header.timestamp, parent: parent.timestamp });
    }
    if header.gas_used > header.gas_limit {
        return Err(HeaderError::GasUsed { gas_used: header.gas_used, gas_limit: header.gas_limit });
    }
    if header.gas_limit > MAX_GAS_LIMIT {
        return Err(HeaderError::GasLimitAboveMaximum(header.gas_limit));
    }
    let max_delta = parent.gas_limit / GAS_LIMIT_BOUND_DIVISOR;
    if header.gas_limit.abs_diff(parent.gas_limit) >= max_delta || header.gas_limit < MIN_GAS_LIMIT {
        return Err(HeaderError::GasLimit { gas_limit: header.gas_limit, parent: parent.gas_limit });
    }
    let base_fee = next_base_fee(parent);
    if header.base_fee_per_gas != Some(base_fee) {
        return Err(HeaderError::BaseFee { got: header.base_fee_per_gas, expected: base_fee });
    }
    if header.extra_data.len() > MAX_EXTRA_DATA {
        return Err(HeaderError::ExtraData(header.extra_data.len()));
    }
    if header.ommers_hash != EMPTY_OMMER_ROOT_HASH || !header.difficulty.is_zero() || !header.nonce.is_zero()
    {
        return Err(HeaderError::ProofOfWork);
    }
    let ts = header.timestamp;
    let presence = |field, present: bool, expected: bool| {
        if present == expected { Ok(()) } else { Err(HeaderError::Presence { field, expected }) }
    };
    let shanghai = forks.is_shanghai_active_at_timestamp(ts);
    presence("withdrawals root", header.withdrawals_root.is_some(), shanghai)?;
    let cancun = forks.blob_params_at(ts);
    presence("parent beacon block root", header.parent_beacon_block_root.is_some(), cancun.is_some())?;
    presence("blob gas used", header.blob_gas_used.is_some(), cancun.is_some())?;
    presence("excess blob gas", header.excess_blob_gas.is_some(), cancun.is_some())?;
    if let (Some(params), Some(blob_gas_used)) = (cancun, header.blob_gas_used) {
        let max = params.max_blob_gas_per_block();
        if blob_gas_used % DATA_GAS_PER_BLOB != 0 || blob_gas_used > max {
            return Err(HeaderError::BlobGasUsed { blob_gas_used, max });
        }
        let expected = next_excess_blob_gas(forks, parent, ts);
        if header.excess_blob_gas != expected {
            return Err(HeaderError::ExcessBlobGas { got: header.excess_blob_gas, expected });
        }
    }
    presence("requests hash", header.requests_hash.is_some(), forks.is_prague_active_at_timestamp(ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gas_limit_moves_towards_target_within_bounds() {
        assert_eq!(next_gas_limit(30_000_000, None), 30_000_000);
        assert_eq!(next_gas_limit(30_000_000, Some(60_000_000)), 30_000_000 + 29_295);
        assert_eq!(next_gas_limit(30_000_000, Some(30_000_100)), 30_000_100);
        assert_eq!(next_gas_limit(30_000_000, Some(0)), 30_000_000 - 29_295);
        assert_eq!(next_gas_limit(5_000, Some(0)), 5_000);
        assert_eq!(next_gas_limit(MAX_GAS_LIMIT, Some(u64::MAX)), MAX_GAS_LIMIT);
    }
}
