//! Alys chain specifications: the genesis files under `etc/genesis/` and the fork schedule derived from them.
//!
//! The execution engine, the Engine API client (which picks V2, V3 or V4 by the fork active at a payload's
//! timestamp) and the sidecar all read forks from here, so they cannot disagree. Genesis files are plain
//! geth-style post-merge genesis JSON that reth and geth load unchanged.

pub mod dev;

use std::{fmt, path::Path};

use alloy_consensus::{EMPTY_OMMER_ROOT_HASH, Header, constants::EMPTY_WITHDRAWALS};
use alloy_eips::{eip1559::INITIAL_BASE_FEE, eip7685::EMPTY_REQUESTS_HASH};
use alloy_genesis::Genesis;
use alloy_primitives::{B256, U256};
use alloy_trie::{EMPTY_ROOT_HASH, root::state_root_ref_unhashed};

/// Chain id of the local development network (`etc/genesis/devnet.json`).
pub const DEVNET_CHAIN_ID: u64 = 121_212;

/// Chain id of the Alys testnet, used by the Shanghai-only genesis (`etc/genesis/shanghai.json`).
pub const TESTNET_CHAIN_ID: u64 = 212_121;

/// The devnet genesis file, as committed.
pub const DEVNET_GENESIS_JSON: &str = include_str!("../../etc/genesis/devnet.json");

/// The Shanghai-only genesis file, as committed.
pub const SHANGHAI_GENESIS_JSON: &str = include_str!("../../etc/genesis/shanghai.json");

/// The post-merge forks an Alys chain can run, in activation order.
///
/// Alys starts at Shanghai at the latest: peg-ins are minted as withdrawals, which need Shanghai.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fork {
    /// Shanghai: withdrawals. Engine API V2.
    Shanghai,
    /// Cancun: blobs, beacon block root. Engine API V3.
    Cancun,
    /// Prague: execution requests, block hash history. Engine API V4 (`newPayloadV4`, `getPayloadV4`).
    Prague,
}

impl fmt::Display for Fork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Shanghai => "shanghai",
            Self::Cancun => "cancun",
            Self::Prague => "prague",
        })
    }
}

/// Why a genesis cannot start an Alys chain.
#[derive(Debug, thiserror::Error)]
pub enum ChainSpecError {
    /// The file could not be read.
    #[error("cannot read genesis file {path}: {source}")]
    Io {
        /// The path that was read.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The text is not a genesis document.
    #[error("genesis is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Chain id 0 is not a usable EIP-155 chain id.
    #[error("chain id must not be zero")]
    ZeroChainId,
    /// Alys is post-merge from genesis: `terminalTotalDifficulty` must be 0.
    #[error("terminalTotalDifficulty must be 0 (post-merge from genesis), found {0:?}")]
    NotPostMerge(Option<U256>),
    /// A pre-merge fork block is missing or not at genesis.
    #[error("{0} must be active at block 0")]
    LegacyForkNotAtGenesis(&'static str),
    /// Alys needs Shanghai (withdrawals) from genesis.
    #[error("shanghaiTime must be 0: peg-ins are minted as withdrawals from the first block")]
    ShanghaiNotAtGenesis,
    /// A later fork is scheduled without the fork before it, or before it.
    #[error("{later} is scheduled at {later_time} but {earlier} is {earlier_time:?}")]
    ForkOrder {
        /// The earlier fork.
        earlier: Fork,
        /// Its activation time, if any.
        earlier_time: Option<u64>,
        /// The later fork.
        later: Fork,
        /// Its activation time.
        later_time: u64,
    },
    /// A fork this node does not implement is scheduled.
    #[error("fork {0} is scheduled, but this node supports forks up to prague")]
    UnsupportedFork(&'static str),
    /// Cancun or Prague is scheduled without its blob parameters (geth requires them).
    #[error("{0} is scheduled but blobSchedule.{0} is missing")]
    MissingBlobSchedule(Fork),
}

/// A validated Alys chain specification.
#[derive(Debug, Clone)]
pub struct ChainSpec {
    genesis: Genesis,
}

impl ChainSpec {
    /// Validates a genesis as an Alys chain: post-merge, Shanghai at genesis, forks in order.
    pub fn from_genesis(genesis: Genesis) -> Result<Self, ChainSpecError> {
        let c = &genesis.config;
        if c.chain_id == 0 {
            return Err(ChainSpecError::ZeroChainId);
        }
        if c.terminal_total_difficulty != Some(U256::ZERO) {
            return Err(ChainSpecError::NotPostMerge(c.terminal_total_difficulty));
        }
        let legacy = [
            ("homesteadBlock", c.homestead_block),
            ("eip150Block", c.eip150_block),
            ("eip155Block", c.eip155_block),
            ("eip158Block", c.eip158_block),
            ("byzantiumBlock", c.byzantium_block),
            ("constantinopleBlock", c.constantinople_block),
            ("petersburgBlock", c.petersburg_block),
            ("istanbulBlock", c.istanbul_block),
            ("berlinBlock", c.berlin_block),
            ("londonBlock", c.london_block),
        ];
        for (name, block) in legacy {
            if block != Some(0) {
                return Err(ChainSpecError::LegacyForkNotAtGenesis(name));
            }
        }
        if c.shanghai_time != Some(0) {
            return Err(ChainSpecError::ShanghaiNotAtGenesis);
        }
        let scheduled =
            [(Fork::Shanghai, c.shanghai_time), (Fork::Cancun, c.cancun_time), (Fork::Prague, c.prague_time)];
        for pair in scheduled.windows(2) {
            if let [(earlier, earlier_time), (later, Some(later_time))] = *pair
                && earlier_time.is_none_or(|t| t > later_time)
            {
                return Err(ChainSpecError::ForkOrder { earlier, earlier_time, later, later_time });
            }
        }
        let unsupported =
            [("osakaTime", c.osaka_time), ("amsterdamTime", c.amsterdam_time), ("bogotaTime", c.bogota_time)];
        if let Some((name, _)) = unsupported.iter().find(|(_, t)| t.is_some()) {
            return Err(ChainSpecError::UnsupportedFork(name));
        }
        for (fork, time) in [(Fork::Cancun, c.cancun_time), (Fork::Prague, c.prague_time)] {
            if time.is_some() && !c.blob_schedule.contains_key(&fork.to_string()) {
                return Err(ChainSpecError::MissingBlobSchedule(fork));
            }
        }
        Ok(Self { genesis })
    }

    /// Parses and validates genesis JSON.
    pub fn from_json(json: &str) -> Result<Self, ChainSpecError> {
        Self::from_genesis(serde_json::from_str(json)?)
    }

    /// Reads, parses and validates a genesis file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ChainSpecError> {
        let path = path.as_ref();
        let json = std::fs::read_to_string(path)
            .map_err(|source| ChainSpecError::Io { path: path.display().to_string(), source })?;
        Self::from_json(&json)
    }

    /// The local development network (`etc/genesis/devnet.json`): Shanghai, Cancun and Prague at genesis.
    pub fn devnet() -> Result<Self, ChainSpecError> {
        Self::from_json(DEVNET_GENESIS_JSON)
    }

    /// The Shanghai-only chain with the Alys testnet's fork set (`etc/genesis/shanghai.json`).
    pub fn shanghai() -> Result<Self, ChainSpecError> {
        Self::from_json(SHANGHAI_GENESIS_JSON)
    }

    /// The genesis this spec was built from.
    pub const fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The EIP-155 chain id.
    pub const fn chain_id(&self) -> u64 {
        self.genesis.config.chain_id
    }

    /// The activation timestamp of `fork`, if it is scheduled.
    pub const fn fork_time(&self, fork: Fork) -> Option<u64> {
        match fork {
            Fork::Shanghai => self.genesis.config.shanghai_time,
            Fork::Cancun => self.genesis.config.cancun_time,
            Fork::Prague => self.genesis.config.prague_time,
        }
    }

    /// Whether `fork` is active for a block with this timestamp.
    pub fn is_active_at(&self, fork: Fork, timestamp: u64) -> bool {
        self.fork_time(fork).is_some_and(|t| t <= timestamp)
    }

    /// The genesis block header, built from the file exactly as reth and geth build it: state root of the
    /// allocation, the fork fields of the forks active at the genesis timestamp, and the file's header
    /// values. The consensus sidecar takes its genesis hash from here, the execution engine its header.
    pub fn genesis_header(&self) -> Header {
        let genesis = &self.genesis;
        let timestamp = genesis.timestamp;
        let cancun = self.is_active_at(Fork::Cancun, timestamp);
        Header {
            parent_hash: genesis.parent_hash.unwrap_or_default(),
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            beneficiary: genesis.coinbase,
            state_root: state_root_ref_unhashed(&genesis.alloc),
            transactions_root: EMPTY_ROOT_HASH,
            receipts_root: EMPTY_ROOT_HASH,
            logs_bloom: Default::default(),
            difficulty: genesis.difficulty,
            number: genesis.number.unwrap_or_default(),
            gas_limit: genesis.gas_limit,
            timestamp,
            extra_data: genesis.extra_data.clone(),
            mix_hash: genesis.mix_hash,
            nonce: genesis.nonce.into(),
            base_fee_per_gas: Some(genesis.base_fee_per_gas.map_or(INITIAL_BASE_FEE, |fee| fee as u64)),
            withdrawals_root: self.is_active_at(Fork::Shanghai, timestamp).then_some(EMPTY_WITHDRAWALS),
            blob_gas_used: cancun.then(|| genesis.blob_gas_used.unwrap_or_default()),
            excess_blob_gas: cancun.then(|| genesis.excess_blob_gas.unwrap_or_default()),
            parent_beacon_block_root: cancun.then_some(B256::ZERO),
            requests_hash: self.is_active_at(Fork::Prague, timestamp).then_some(EMPTY_REQUESTS_HASH),
            ..Default::default()
        }
    }

    /// The genesis block hash.
    pub fn genesis_hash(&self) -> B256 {
        self.genesis_header().hash_slow()
    }

    /// The latest fork active for a block with this timestamp.
    pub fn fork_at(&self, timestamp: u64) -> Fork {
        [Fork::Prague, Fork::Cancun]
            .into_iter()
            .find(|fork| self.is_active_at(*fork, timestamp))
            .unwrap_or(Fork::Shanghai)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn genesis_with(edit: impl FnOnce(&mut serde_json::Value)) -> Result<ChainSpec, ChainSpecError> {
        let mut value: serde_json::Value = serde_json::from_str(DEVNET_GENESIS_JSON).unwrap();
        edit(&mut value["config"]);
        ChainSpec::from_genesis(serde_json::from_value(value).unwrap())
    }

    #[test]
    fn committed_genesis_files_are_valid() {
        let devnet = ChainSpec::devnet().unwrap();
        assert_eq!(devnet.chain_id(), DEVNET_CHAIN_ID);
        assert_eq!(devnet.fork_at(0), Fork::Prague);
        assert_eq!(devnet.fork_at(u64::MAX), Fork::Prague);

        let shanghai = ChainSpec::shanghai().unwrap();
        assert_eq!(shanghai.chain_id(), TESTNET_CHAIN_ID);
        assert_eq!(shanghai.fork_at(0), Fork::Shanghai);
        assert_eq!(shanghai.fork_at(u64::MAX), Fork::Shanghai);
        assert!(!shanghai.is_active_at(Fork::Cancun, u64::MAX));
    }

    #[test]
    fn genesis_headers_carry_the_fork_fields() {
        let devnet = ChainSpec::devnet().unwrap().genesis_header();
        assert_eq!(devnet.number, 0);
        assert_eq!(devnet.base_fee_per_gas, Some(1_000_000_000));
        assert_eq!(devnet.withdrawals_root, Some(EMPTY_WITHDRAWALS));
        assert_eq!(devnet.parent_beacon_block_root, Some(B256::ZERO));
        assert_eq!((devnet.blob_gas_used, devnet.excess_blob_gas), (Some(0), Some(0)));
        assert_eq!(devnet.requests_hash, Some(EMPTY_REQUESTS_HASH));
        assert_ne!(devnet.state_root, EMPTY_ROOT_HASH);

        let shanghai = ChainSpec::shanghai().unwrap().genesis_header();
        assert_eq!(shanghai.withdrawals_root, Some(EMPTY_WITHDRAWALS));
        assert!(shanghai.parent_beacon_block_root.is_none() && shanghai.requests_hash.is_none());
        assert_ne!(
            ChainSpec::devnet().unwrap().genesis_hash(),
            ChainSpec::shanghai().unwrap().genesis_hash()
        );
    }

    #[test]
    fn fork_schedule_follows_timestamps() {
        let spec = genesis_with(|c| {
            c["cancunTime"] = 100.into();
            c["pragueTime"] = 200.into();
        })
        .unwrap();
        assert_eq!(spec.fork_at(0), Fork::Shanghai);
        assert_eq!(spec.fork_at(99), Fork::Shanghai);
        assert_eq!(spec.fork_at(100), Fork::Cancun);
        assert_eq!(spec.fork_at(199), Fork::Cancun);
        assert_eq!(spec.fork_at(200), Fork::Prague);
        assert!(Fork::Shanghai < Fork::Cancun && Fork::Cancun < Fork::Prague);
    }

    #[test]
    fn rejects_unusable_genesis() {
        assert!(matches!(genesis_with(|c| c["chainId"] = 0.into()), Err(ChainSpecError::ZeroChainId)));
        assert!(matches!(
            genesis_with(|c| c["terminalTotalDifficulty"] = 1.into()),
            Err(ChainSpecError::NotPostMerge(_))
        ));
        assert!(matches!(
            genesis_with(|c| {
                c.as_object_mut().unwrap().remove("londonBlock");
            }),
            Err(ChainSpecError::LegacyForkNotAtGenesis("londonBlock"))
        ));
        assert!(matches!(
            genesis_with(|c| c["shanghaiTime"] = 5.into()),
            Err(ChainSpecError::ShanghaiNotAtGenesis)
        ));
        assert!(matches!(
            genesis_with(|c| {
                c["cancunTime"] = 300.into();
                c["pragueTime"] = 200.into();
            }),
            Err(ChainSpecError::ForkOrder { later: Fork::Prague, .. })
        ));
        assert!(matches!(
            genesis_with(|c| {
                c.as_object_mut().unwrap().remove("cancunTime");
            }),
            Err(ChainSpecError::ForkOrder { earlier: Fork::Cancun, earlier_time: None, .. })
        ));
        assert!(matches!(
            genesis_with(|c| c["osakaTime"] = 0.into()),
            Err(ChainSpecError::UnsupportedFork("osakaTime"))
        ));
        assert!(matches!(
            genesis_with(|c| {
                c["blobSchedule"].as_object_mut().unwrap().remove("prague");
            }),
            Err(ChainSpecError::MissingBlobSchedule(Fork::Prague))
        ));
        assert!(matches!(ChainSpec::from_json("{"), Err(ChainSpecError::Json(_))));
        assert!(matches!(ChainSpec::from_file("/nonexistent/genesis.json"), Err(ChainSpecError::Io { .. })));
    }
}
