//! Sharing a finalized batch's fees between the miner and the federation.
//!
//! The fees of a batch are what its blocks burned as EIP-1559 base fee, `Σ base_fee_per_gas × gas_used`:
//! every node can compute them from the execution headers alone. When a proof finalizes the batch, the
//! block carrying the proof mints them again as withdrawals (after its peg-in withdrawals): the miner's
//! share to the miner, the rest to the federation. Amounts are whole gwei (withdrawals are in gwei); the
//! sub-gwei remainder stays burned. Other authorities recompute the split and refuse a block that differs.

use alloy_consensus::Header;
use alloy_eips::eip4895::Withdrawal;
use alloy_primitives::{Address, U256};

/// Who gets what share of a batch's fees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewardSplit {
    /// The miner's share in percent (Alys: 80).
    pub miner_percent: u64,
    /// Where the federation's share goes.
    pub federation: Address,
}

/// The fees burned by a batch of execution headers, in wei.
pub fn batch_fees<'a>(headers: impl IntoIterator<Item = &'a Header>) -> U256 {
    headers
        .into_iter()
        .map(|h| U256::from(h.base_fee_per_gas.unwrap_or_default()) * U256::from(h.gas_used))
        .fold(U256::ZERO, |acc, fee| acc.saturating_add(fee))
}

/// The withdrawals that pay `fees_wei` to `miner` and the federation, indexed from `first_index`.
/// Zero amounts are left out.
pub fn reward_withdrawals(
    fees_wei: U256,
    miner: Address,
    split: RewardSplit,
    first_index: u64,
) -> Vec<Withdrawal> {
    let gwei = fees_wei / U256::from(1_000_000_000u64);
    let gwei = u64::try_from(gwei).unwrap_or(u64::MAX);
    let miner_percent = split.miner_percent.min(100);
    let miner_gwei = u64::try_from(u128::from(gwei) * u128::from(miner_percent) / 100).unwrap_or(u64::MAX);
    let federation_gwei = gwei - miner_gwei;
    [(miner, miner_gwei), (split.federation, federation_gwei)]
        .into_iter()
        .filter(|(_, amount)| *amount > 0)
        .enumerate()
        .map(|(i, (address, amount))| Withdrawal {
            index: first_index + i as u64,
            validator_index: 0,
            address,
            amount,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fees_are_base_fee_times_gas() {
        let h =
            |fee: u64, gas: u64| Header { base_fee_per_gas: Some(fee), gas_used: gas, ..Default::default() };
        let headers = [h(1_000_000_000, 21_000), h(875_000_000, 42_000), h(7, 0)];
        assert_eq!(batch_fees(&headers), U256::from(21_000u64 * 1_000_000_000 + 42_000 * 875_000_000));
        assert_eq!(batch_fees(&[]), U256::ZERO);
    }

    #[test]
    fn split_is_exact_in_gwei() {
        let split = RewardSplit { miner_percent: 80, federation: Address::repeat_byte(0xfe) };
        let miner = Address::repeat_byte(0xaa);
        let w = reward_withdrawals(
            U256::from(1_000u64) * U256::from(1_000_000_000u64) + U256::from(5u64),
            miner,
            split,
            3,
        );
        assert_eq!(w.len(), 2);
        assert_eq!((w[0].index, w[0].address, w[0].amount), (3, miner, 800));
        assert_eq!((w[1].index, w[1].address, w[1].amount), (4, split.federation, 200));
        // Rounding: 999 gwei → 799 to the miner, the remaining 200 to the federation; nothing is created.
        let w = reward_withdrawals(U256::from(999u64) * U256::from(1_000_000_000u64), miner, split, 0);
        assert_eq!(w[0].amount + w[1].amount, 999);
        assert!(
            reward_withdrawals(U256::from(999u64), miner, split, 0).is_empty(),
            "under one gwei mints nothing"
        );
        let all = RewardSplit { miner_percent: 100, ..split };
        assert_eq!(reward_withdrawals(U256::from(10u64.pow(10)), miner, all, 0).len(), 1);
    }
}
