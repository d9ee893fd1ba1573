//! The fork schedule of an Alys chain in the shape alloy-evm's executor expects.

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
}

impl AlysForks {
    /// The schedule of a chain spec.
    pub fn new(spec: &ChainSpec) -> Self {
        Self {
            shanghai: spec.fork_time(Fork::Shanghai),
            cancun: spec.fork_time(Fork::Cancun),
            prague: spec.fork_time(Fork::Prague),
            deposit_contract: spec.genesis().config.deposit_contract_address,
        }
    }

    /// The blob parameters in force at a timestamp (`None` before Cancun). Alys carries no blobs, but the
    /// header fields and the blob base fee follow the schedule as in reth.
    pub fn blob_params_at(&self, timestamp: u64) -> Option<BlobParams> {
        if self.prague.is_some_and(|t| t <= timestamp) {
            Some(BlobParams::prague())
        } else if self.cancun.is_some_and(|t| t <= timestamp) {
            Some(BlobParams::cancun())
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
