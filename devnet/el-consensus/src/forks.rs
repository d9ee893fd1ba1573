//! The fork schedule of an Alys chain in the shape alloy-evm's executor expects, with the blob
//! parameters of each fork.

use alloy_eips::eip7840::BlobParams;
use alloy_evm::eth::spec::EthExecutorSpec;
use alloy_hardforks::{EthereumHardfork, EthereumHardforks, ForkCondition};
use alloy_primitives::{Address, U256};
use alys_chainspec::{ChainSpec, Fork};

/// The Ethereum hardforks of an Alys chain: every block-based fork and the merge at genesis, then
/// Shanghai, Cancun and Prague at the timestamps of the chain spec.
#[derive(Debug, Clone)]
pub struct AlysForks {
    shanghai: Option<u64>,
    cancun: Option<u64>,
    prague: Option<u64>,
    deposit_contract: Option<Address>,
    /// The genesis `blobSchedule` for Cancun and Prague (EIP-7840), as reth and geth read it.
    cancun_blobs: BlobParams,
    prague_blobs: BlobParams,
}

impl AlysForks {
    /// The schedule of a chain spec.
    pub fn new(spec: &ChainSpec) -> Self {
        let schedule = &spec.genesis().config.blob_schedule;
        Self {
            cancun_blobs: schedule.get("cancun").copied().unwrap_or_else(BlobParams::cancun),
            prague_blobs: schedule.get("prague").copied().unwrap_or_else(BlobParams::prague),
            shanghai: spec.fork_time(Fork::Shanghai),
            cancun: spec.fork_time(Fork::Cancun),
            prague: spec.fork_time(Fork::Prague),
            deposit_contract: spec.genesis().config.deposit_contract_address,
        }
    }

    /// The blob parameters in force at a timestamp (`None` before Cancun): the target and maximum blobs
    /// per block, the blob base fee's update fraction (EIP-4844, EIP-7691 from Prague) and the most blobs
    /// one transaction may carry (the block maximum until Osaka).
    pub fn blob_params_at(&self, timestamp: u64) -> Option<BlobParams> {
        if self.prague.is_some_and(|t| t <= timestamp) {
            Some(self.prague_blobs)
        } else if self.cancun.is_some_and(|t| t <= timestamp) {
            Some(self.cancun_blobs)
        } else {
            None
        }
    }
}

impl EthereumHardforks for AlysForks {
    fn ethereum_fork_activation(&self, fork: EthereumHardfork) -> ForkCondition {
        let at = |time: Option<u64>| time.map_or(ForkCondition::Never, ForkCondition::Timestamp);
        match fork {
            EthereumHardfork::Frontier
            | EthereumHardfork::Homestead
            | EthereumHardfork::Tangerine
            | EthereumHardfork::SpuriousDragon
            | EthereumHardfork::Byzantium
            | EthereumHardfork::Constantinople
            | EthereumHardfork::Petersburg
            | EthereumHardfork::Istanbul
            | EthereumHardfork::MuirGlacier
            | EthereumHardfork::Berlin
            | EthereumHardfork::London
            | EthereumHardfork::ArrowGlacier
            | EthereumHardfork::GrayGlacier => ForkCondition::ZERO_BLOCK,
            EthereumHardfork::Paris => ForkCondition::TTD {
                activation_block_number: 0,
                fork_block: Some(0),
                total_difficulty: U256::ZERO,
            },
            EthereumHardfork::Shanghai => at(self.shanghai),
            EthereumHardfork::Cancun => at(self.cancun),
            EthereumHardfork::Prague => at(self.prague),
            _ => ForkCondition::Never,
        }
    }
}

impl EthExecutorSpec for AlysForks {
    fn deposit_contract_address(&self) -> Option<Address> {
        self.deposit_contract
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]

    use super::*;

    #[test]
    fn blob_parameters_follow_the_genesis_schedule() {
        let mut genesis: serde_json::Value =
            serde_json::from_str(alys_chainspec::DEVNET_GENESIS_JSON).unwrap();
        genesis["config"]["cancunTime"] = 0.into();
        genesis["config"]["pragueTime"] = 100.into();
        genesis["config"]["blobSchedule"]["prague"]["max"] = 12.into();
        let forks = AlysForks::new(&ChainSpec::from_json(&genesis.to_string()).unwrap());
        assert_eq!(forks.blob_params_at(99), Some(BlobParams::cancun()));
        let prague = forks.blob_params_at(100).unwrap();
        assert_eq!((prague.target_blob_count, prague.max_blob_count, prague.max_blobs_per_tx), (6, 12, 12));
        assert_eq!(prague.update_fraction, BlobParams::prague().update_fraction);

        let shanghai = AlysForks::new(&ChainSpec::shanghai().unwrap());
        assert_eq!(shanghai.blob_params_at(u64::MAX), None);
    }
}
