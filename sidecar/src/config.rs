//! The node configuration: a TOML file (see `etc/config/alys.toml`), overridable by `ALYS_`-prefixed
//! environment variables (`ALYS_RPC__LISTEN=127.0.0.1:3001`).

use std::{net::SocketAddr, path::PathBuf};

use alloy_primitives::Address;
use figment::{
    Figment,
    providers::{Env, Format, Toml},
};
use serde::Deserialize;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(#[from] Box<figment::Error>);

/// The whole node configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Chain and consensus settings.
    pub chain: ChainSection,
    /// This node's authority key, if it is an authority.
    #[serde(default)]
    pub authority: Option<AuthoritySection>,
    /// Where the sidecar keeps its data.
    pub storage: StorageSection,
    /// The execution client.
    pub engine: EngineSection,
    /// The JSON-RPC server.
    #[serde(default)]
    pub rpc: RpcSection,
    /// The Prometheus exporter.
    #[serde(default)]
    pub metrics: MetricsSection,
    /// Merged mining.
    #[serde(default)]
    pub auxpow: AuxPowSection,
    /// The governance service; without it the node runs without a federation.
    #[serde(default)]
    pub governance: Option<GovernanceSection>,
    /// Where peg-out burns come from; without it the node does not follow burns.
    #[serde(default)]
    pub pegout: Option<PegoutSection>,
}

/// `[pegout]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PegoutSection {
    /// "exex" (the Alys ExEx's burn feed: reth with alys-reth, or the devnet) or "geth" (eth_getLogs).
    pub source: String,
    /// The burn feed URL (source "exex").
    #[serde(default)]
    pub feed_url: Option<String>,
    /// Most blocks per eth_getLogs (source "geth").
    #[serde(default = "default_log_range")]
    pub max_log_range: u64,
    /// Milliseconds between polls (source "geth").
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
}

const fn default_log_range() -> u64 {
    1_000
}

const fn default_poll_ms() -> u64 {
    2_000
}

/// `[governance]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GovernanceSection {
    /// The governance service's gRPC URL.
    pub url: String,
    /// The compressed secp256k1 public key (66 hex characters) that signs federation updates.
    pub governance_key: String,
    /// A file holding the bearer token sent to the service, if it requires one.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// Bitcoin network of the deposit addresses: "bitcoin", "testnet", "signet" or "regtest".
    #[serde(default = "default_network")]
    pub network: String,
    /// PEM file of the CA that signed the service's TLS certificate (`https://` URLs); the web PKI
    /// roots when unset.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// The certificate name to check, when it differs from the URL's host.
    #[serde(default)]
    pub tls_domain: Option<String>,
    /// This node's id in every request's metadata.
    #[serde(default = "default_node_id")]
    pub node_id: String,
    /// Seconds between heartbeats (three missed acknowledgements end the session).
    #[serde(default = "default_heartbeat_secs")]
    pub heartbeat_secs: u64,
    /// Longest wait between reconnect attempts, in milliseconds (from 250 ms, doubling, with jitter).
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// How long a caller waits for signatures; the request itself stays pending until answered.
    #[serde(default = "default_signature_timeout_secs")]
    pub signature_timeout_secs: u64,
}

impl GovernanceSection {
    /// A section for `url` and `governance_key` with every other setting at its default.
    pub fn new(url: impl Into<String>, governance_key: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            governance_key: governance_key.into(),
            bearer_token_file: None,
            network: default_network(),
            tls_ca_file: None,
            tls_domain: None,
            node_id: default_node_id(),
            heartbeat_secs: default_heartbeat_secs(),
            max_backoff_ms: default_max_backoff_ms(),
            signature_timeout_secs: default_signature_timeout_secs(),
        }
    }
}

fn default_network() -> String {
    "regtest".into()
}

fn default_node_id() -> String {
    "alys-node".into()
}

const fn default_heartbeat_secs() -> u64 {
    10
}

const fn default_max_backoff_ms() -> u64 {
    800
}

const fn default_signature_timeout_secs() -> u64 {
    60
}

/// `[auxpow]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuxPowSection {
    /// This chain's merged-mining chain id.
    #[serde(default = "default_aux_chain_id")]
    pub chain_id: u32,
    /// The easiest target allowed, compact form (e.g. "0x207fffff" for devnets).
    #[serde(default = "default_pow_limit", deserialize_with = "hex_u32")]
    pub pow_limit_bits: u32,
    /// Wanted seconds between proofs; the target is retargeted on the elapsed time.
    #[serde(default = "default_spacing")]
    pub target_spacing_secs: u64,
    /// Production stops after this many blocks without a proof, until one arrives.
    #[serde(default = "default_max_without_pow")]
    pub max_blocks_without_pow: u64,
    /// The miner's share of a finalized batch's fees, in percent (Alys: 80).
    #[serde(default = "default_miner_share")]
    pub miner_share_percent: u64,
    /// Where the federation's share goes.
    #[serde(default)]
    pub federation_fee_address: Address,
}

impl Default for AuxPowSection {
    fn default() -> Self {
        Self {
            chain_id: default_aux_chain_id(),
            pow_limit_bits: default_pow_limit(),
            target_spacing_secs: default_spacing(),
            max_blocks_without_pow: default_max_without_pow(),
            miner_share_percent: default_miner_share(),
            federation_fee_address: Address::ZERO,
        }
    }
}

const fn default_aux_chain_id() -> u32 {
    0x2121
}

const fn default_pow_limit() -> u32 {
    0x207f_ffff
}

const fn default_spacing() -> u64 {
    60
}

const fn default_max_without_pow() -> u64 {
    1_000
}

const fn default_miner_share() -> u64 {
    80
}

fn hex_u32<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Bits {
        Number(u32),
        Text(String),
    }
    match Bits::deserialize(deserializer)? {
        Bits::Number(n) => Ok(n),
        Bits::Text(text) => u32::from_str_radix(text.trim_start_matches("0x"), 16)
            .map_err(|_| serde::de::Error::custom("expected compact bits as hex, e.g. \"0x207fffff\"")),
    }
}

/// `[chain]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSection {
    /// Genesis file shared with the execution client.
    pub genesis: PathBuf,
    /// Aura slot length in milliseconds.
    #[serde(default = "default_slot_duration_ms")]
    pub slot_duration_ms: u64,
    /// How far ahead of the local clock a block's slot may be, in milliseconds.
    #[serde(default = "default_future_tolerance_ms")]
    pub future_tolerance_ms: u64,
    /// The authority set: BLS public keys (48 bytes, hex), in schedule order.
    pub authorities: Vec<String>,
    /// Where block fees go.
    #[serde(default)]
    pub fee_recipient: Address,
}

/// `[authority]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthoritySection {
    /// File holding the BLS secret key as 64 hex characters.
    pub key_file: PathBuf,
}

/// `[storage]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    /// Data directory.
    pub data_dir: PathBuf,
}

/// `[engine]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    /// Engine API URL of the execution client.
    pub url: String,
    /// JWT secret file (64 hex characters) shared with the execution client.
    pub jwt_secret: PathBuf,
    /// eth JSON-RPC URL of the execution client.
    #[serde(default)]
    pub eth_rpc_url: Option<String>,
}

/// `[rpc]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcSection {
    /// Listen address (HTTP and WebSocket).
    #[serde(default = "default_rpc_listen")]
    pub listen: SocketAddr,
    /// File holding the token the admin methods require; without it they are refused.
    #[serde(default)]
    pub admin_token_file: Option<PathBuf>,
}

impl Default for RpcSection {
    fn default() -> Self {
        Self { listen: default_rpc_listen(), admin_token_file: None }
    }
}

/// `[metrics]`. The default port, 9101, leaves reth's 9001 free for an execution client on the same host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Listen address of the Prometheus exporter; none disables it.
    #[serde(default = "default_metrics_listen")]
    pub listen: Option<SocketAddr>,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self { listen: default_metrics_listen() }
    }
}

const fn default_slot_duration_ms() -> u64 {
    2_000
}

const fn default_future_tolerance_ms() -> u64 {
    500
}

fn default_rpc_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 3000))
}

#[allow(clippy::unnecessary_wraps, reason = "serde default for an optional field")]
fn default_metrics_listen() -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], 9101)))
}

impl NodeConfig {
    /// Loads `path`, then applies `ALYS_` environment overrides (`__` separates sections).
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Self, ConfigError> {
        Figment::new()
            .merge(Toml::file_exact(path.as_ref()))
            .merge(Env::prefixed("ALYS_").split("__"))
            .extract()
            .map_err(|e| ConfigError(Box::new(e)))
    }

    /// Parses a TOML document (no environment overrides).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Figment::new().merge(Toml::string(text)).extract().map_err(|e| ConfigError(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_loads() {
        let text = include_str!("../../etc/config/alys.toml");
        let config = NodeConfig::from_toml(text).unwrap();
        assert_eq!(config.chain.authorities.len(), 1);
        assert_eq!(config.rpc.listen.port(), 3000);
        assert!(config.authority.is_some());
        assert_eq!(config.governance.unwrap().network, "regtest");
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        let bad = "[chain]\ngenesis = 'g'\nauthorities = []\nslot_duration_ms = 'soon'\n[storage]\ndata_dir='d'\n[engine]\nurl='u'\njwt_secret='j'\n";
        assert!(NodeConfig::from_toml(bad).is_err());
        let unknown = "[chain]\ngenesis = 'g'\nauthorities = []\ncolour = 1\n[storage]\ndata_dir='d'\n[engine]\nurl='u'\njwt_secret='j'\n";
        assert!(NodeConfig::from_toml(unknown).is_err());
        assert!(NodeConfig::load("/nonexistent/alys.toml").is_err());
    }
}
