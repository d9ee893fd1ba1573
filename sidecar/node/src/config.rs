//! The node configuration: a TOML file (see `etc/config/alys.toml`), overridable by `ALYS_`-prefixed
//! environment variables (`ALYS_RPC__LISTEN=127.0.0.1:3001`).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

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
    /// The node's own Bitcoin node; without it the node claims no deposits and refuses blocks that do.
    #[serde(default)]
    pub bitcoin: Option<BitcoinSection>,
    /// The federation's peer-to-peer network; without it the node runs alone (one authority only).
    #[serde(default)]
    pub network: Option<NetworkSection>,
}

/// `[network]`: libp2p (TCP, noise, yamux) gossip and sync with the other nodes of the federation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    /// Where to listen for peers (TCP).
    #[serde(default = "default_p2p_listen")]
    pub listen: SocketAddr,
    /// Peers to dial at start and whenever the node has none, as multiaddrs
    /// (`/ip4/10.0.0.2/tcp/30333`, optionally ending in `/p2p/<peer id>`).
    #[serde(default)]
    pub bootnodes: Vec<String>,
    /// The node's network identity (an ed25519 key, created on first start); default
    /// `<data_dir>/network.key`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Most peers connected at once.
    #[serde(default = "default_max_peers")]
    pub max_peers: u32,
    /// Ask peers for their peers and dial them (on by default); off, the node connects to its
    /// bootnodes (and whoever dials it) only.
    #[serde(default = "default_true")]
    pub peer_exchange: bool,
}

const fn default_true() -> bool {
    true
}

fn default_p2p_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 30333))
}

const fn default_max_peers() -> u32 {
    50
}

/// `[bitcoin]`: the node's own Bitcoin node (Bitcoin Core 25+), and the peg-in rules' starting values.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BitcoinSection {
    /// bitcoind's JSON-RPC URL (`http://127.0.0.1:8332`; 18443 on regtest).
    pub url: String,
    /// bitcoind's `.cookie` file (re-read when bitcoind restarts). Use this or `user`.
    #[serde(default)]
    pub cookie_file: Option<PathBuf>,
    /// `-rpcuser`, with the password in `password_file`.
    #[serde(default)]
    pub user: Option<String>,
    /// A file holding `-rpcpassword`.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The Bitcoin height to start following from on a fresh data directory (default: 144 blocks, a
    /// day, below bitcoind's tip at first start). Deposits below it are never seen.
    #[serde(default)]
    pub start_height: Option<u64>,
    /// How often bitcoind is asked for new blocks.
    #[serde(default = "default_bitcoin_poll", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// The longest one call to bitcoind may take.
    #[serde(default = "default_bitcoin_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Confirmations a deposit needs before it is minted, until governance changes it.
    #[serde(default = "default_pegin_confirmations")]
    pub pegin_confirmations: u32,
    /// The smallest deposit minted, in sats, until governance changes it.
    #[serde(default = "default_pegin_min_sats")]
    pub pegin_min_sats: u64,
    /// Alys blocks after a federation rotation during which the previous address still mints, until
    /// governance changes it.
    #[serde(default = "default_pegin_grace_blocks")]
    pub pegin_grace_blocks: u64,
    /// The fee rate peg-out transactions are built at (sat/vB), until governance changes it.
    #[serde(default = "default_pegout_fee_rate")]
    pub pegout_fee_rate_sat_vb: u64,
    /// Confirmations after which a peg-out transaction is done, until governance changes it.
    #[serde(default = "default_pegin_confirmations")]
    pub pegout_confirmations: u32,
}

impl BitcoinSection {
    /// A section for `url` authenticated by `cookie_file`, every other setting at its default.
    pub fn with_cookie(url: impl Into<String>, cookie_file: impl Into<PathBuf>) -> Self {
        Self {
            url: url.into(),
            cookie_file: Some(cookie_file.into()),
            user: None,
            password_file: None,
            start_height: None,
            poll_interval: default_bitcoin_poll(),
            timeout: default_bitcoin_timeout(),
            pegin_confirmations: default_pegin_confirmations(),
            pegin_min_sats: default_pegin_min_sats(),
            pegin_grace_blocks: default_pegin_grace_blocks(),
            pegout_fee_rate_sat_vb: default_pegout_fee_rate(),
            pegout_confirmations: default_pegin_confirmations(),
        }
    }
}

const fn default_bitcoin_poll() -> Duration {
    Duration::from_secs(1)
}

const fn default_bitcoin_timeout() -> Duration {
    Duration::from_secs(30)
}

const fn default_pegin_confirmations() -> u32 {
    6
}

const fn default_pegout_fee_rate() -> u64 {
    10
}

const fn default_pegin_min_sats() -> u64 {
    10_000
}

const fn default_pegin_grace_blocks() -> u64 {
    43_200
}

/// `[pegout]`: where peg-out burns come from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "source", rename_all = "lowercase", deny_unknown_fields)]
pub enum PegoutSection {
    /// The Alys ExEx's gRPC burn feed (reth with alys-reth, or the devnet).
    Exex {
        /// The burn feed URL: `https://…` (TLS), or `http://…` on loopback only; a plaintext URL to
        /// another host is refused at launch.
        feed_url: String,
        /// A file holding the bearer token the feed requires (`alys-reth --alys.feed-token-file`).
        #[serde(default)]
        bearer_token_file: Option<PathBuf>,
        /// PEM file of the CA that signed the feed's TLS certificate (`https://` URLs); the web PKI
        /// roots when unset.
        #[serde(default)]
        tls_ca_file: Option<PathBuf>,
        /// The certificate name to check, when it differs from the URL's host.
        #[serde(default)]
        tls_domain: Option<String>,
    },
    /// `eth_getLogs` of the bridge over finalized ranges (geth), via `[engine].eth_rpc_url`.
    Geth {
        /// Most blocks per `eth_getLogs`.
        #[serde(default = "default_log_range")]
        max_log_range: u64,
        /// Pause between polls.
        #[serde(default = "default_poll_interval", with = "humantime_serde")]
        poll_interval: Duration,
    },
}

const fn default_log_range() -> u64 {
    1_000
}

const fn default_poll_interval() -> Duration {
    Duration::from_secs(2)
}

/// A Bitcoin network, as the configuration names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BitcoinNetwork {
    /// Bitcoin mainnet (also `mainnet`).
    #[serde(alias = "mainnet")]
    Bitcoin,
    /// Testnet3.
    Testnet,
    /// Testnet4.
    Testnet4,
    /// Signet.
    Signet,
    /// Regtest (devnets).
    #[default]
    Regtest,
}

impl From<BitcoinNetwork> for bitcoin::Network {
    fn from(network: BitcoinNetwork) -> Self {
        match network {
            BitcoinNetwork::Bitcoin => Self::Bitcoin,
            BitcoinNetwork::Testnet => Self::Testnet,
            BitcoinNetwork::Testnet4 => Self::Testnet4,
            BitcoinNetwork::Signet => Self::Signet,
            BitcoinNetwork::Regtest => Self::Regtest,
        }
    }
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
    /// Bitcoin network of the deposit addresses.
    #[serde(default)]
    pub network: BitcoinNetwork,
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
    /// Time between heartbeats (three missed acknowledgements end the session).
    #[serde(default = "default_heartbeat", with = "humantime_serde")]
    pub heartbeat: Duration,
    /// Longest wait between reconnect attempts, jitter included.
    #[serde(default = "default_max_backoff", with = "humantime_serde")]
    pub max_backoff: Duration,
    /// How long a caller waits for signatures; the request itself stays pending until answered.
    #[serde(default = "default_signature_timeout", with = "humantime_serde")]
    pub signature_timeout: Duration,
}

impl PegoutSection {
    /// The ExEx feed at `feed_url`, without a token or TLS settings.
    pub fn exex(feed_url: impl Into<String>) -> Self {
        Self::Exex { feed_url: feed_url.into(), bearer_token_file: None, tls_ca_file: None, tls_domain: None }
    }
}

impl GovernanceSection {
    /// A section for `url` and `governance_key` with every other setting at its default.
    pub fn new(url: impl Into<String>, governance_key: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            governance_key: governance_key.into(),
            bearer_token_file: None,
            network: BitcoinNetwork::default(),
            tls_ca_file: None,
            tls_domain: None,
            node_id: default_node_id(),
            heartbeat: default_heartbeat(),
            max_backoff: default_max_backoff(),
            signature_timeout: default_signature_timeout(),
        }
    }
}

fn default_node_id() -> String {
    "alys-node".into()
}

const fn default_heartbeat() -> Duration {
    Duration::from_secs(10)
}

const fn default_max_backoff() -> Duration {
    Duration::from_millis(800)
}

const fn default_signature_timeout() -> Duration {
    Duration::from_secs(60)
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
    /// Wanted time between proofs (whole seconds, at least one): the difficulty retarget (ASERT)
    /// schedules one proof per spacing.
    #[serde(default = "default_spacing", deserialize_with = "whole_seconds")]
    pub target_spacing: Duration,
    /// ASERT's half-life (whole seconds, at least one): proofs running this far ahead of the schedule
    /// halve the target, this far behind double it. Longer is steadier, shorter follows hash rate
    /// changes faster.
    #[serde(default = "default_half_life", deserialize_with = "whole_seconds")]
    pub target_half_life: Duration,
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
            target_spacing: default_spacing(),
            target_half_life: default_half_life(),
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

const fn default_spacing() -> Duration {
    Duration::from_secs(60)
}

/// Twenty spacings of the default spacing: the target's spread at a steady hash rate stays near ±15 %
/// (one standard deviation), a tenfold rise in hash rate is met within about 20 minutes and a tenfold
/// drop within about an hour.
const fn default_half_life() -> Duration {
    Duration::from_secs(20 * 60)
}

/// A humantime duration (`"60s"`, `"20m"`) of at least one second; fractions of a second are dropped,
/// as the retarget counts whole seconds.
fn whole_seconds<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let duration: Duration = humantime_serde::deserialize(deserializer)?;
    if duration.as_secs() == 0 {
        return Err(serde::de::Error::custom(format!(
            "{} is shorter than one second",
            humantime_serde::re::humantime::format_duration(duration)
        )));
    }
    Ok(Duration::from_secs(duration.as_secs()))
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
    /// Aura slot length (whole milliseconds).
    #[serde(default = "default_slot_duration", with = "humantime_serde")]
    pub slot_duration: Duration,
    /// How far ahead of the local clock a block's slot may be.
    #[serde(default = "default_future_tolerance", with = "humantime_serde")]
    pub future_tolerance: Duration,
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
    /// Serve the live dashboard at `GET /dashboard` and its methods (`alys_dashboard`,
    /// `alys_subscribeDashboard`) on this listener (default true).
    #[serde(default = "default_true")]
    pub dashboard: bool,
}

impl Default for RpcSection {
    fn default() -> Self {
        Self { listen: default_rpc_listen(), admin_token_file: None, dashboard: true }
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

const fn default_slot_duration() -> Duration {
    Duration::from_secs(2)
}

const fn default_future_tolerance() -> Duration {
    Duration::from_millis(500)
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
        let text = include_str!("../../../etc/config/alys.toml");
        let config = NodeConfig::from_toml(text).unwrap();
        assert_eq!(config.chain.authorities.len(), 1);
        assert_eq!(config.rpc.listen.port(), 3000);
        assert!(config.authority.is_some());
        assert_eq!(config.governance.unwrap().network, BitcoinNetwork::Regtest);
        assert_eq!(config.chain.slot_duration, Duration::from_secs(2));
        assert_eq!(config.auxpow.target_spacing, Duration::from_secs(60));
        assert_eq!(config.auxpow.target_half_life, Duration::from_secs(20 * 60));
        assert_eq!(config.bitcoin, None, "commented out: the example runs without a Bitcoin node");
        assert_eq!(
            config.pegout,
            Some(PegoutSection::Exex {
                feed_url: "http://127.0.0.1:50551".into(),
                bearer_token_file: Some("etc/keys/devnet-feed.token".into()),
                tls_ca_file: None,
                tls_domain: None,
            })
        );
    }

    #[test]
    fn the_example_bitcoin_section_loads_when_uncommented() {
        let config = NodeConfig::from_toml(&uncomment("# [bitcoin]")).unwrap();
        let bitcoin = config.bitcoin.unwrap();
        assert_eq!(bitcoin.url, "http://127.0.0.1:18443");
        assert_eq!(bitcoin.cookie_file, Some("data/devnet/bitcoin/.cookie".into()));
        assert_eq!((bitcoin.user, bitcoin.password_file), (None, None));
        assert_eq!(bitcoin.start_height, Some(0));
        assert_eq!(
            (bitcoin.poll_interval, bitcoin.timeout),
            (Duration::from_secs(1), Duration::from_secs(30))
        );
        assert_eq!(
            (bitcoin.pegin_confirmations, bitcoin.pegin_min_sats, bitcoin.pegin_grace_blocks),
            (6, 10_000, 43_200)
        );
    }

    /// The example config with the commented-out section starting at `header` switched on: one level of
    /// comment off up to the next blank line (explanations, `# # …`, stay comments).
    fn uncomment(header: &str) -> String {
        let text = include_str!("../../../etc/config/alys.toml");
        let (head, tail) = text.split_at(text.find(header).unwrap());
        let end = tail.find("\n\n").unwrap_or(tail.len());
        let (section, rest) = tail.split_at(end);
        let section: String =
            section.lines().map(|l| format!("{}\n", l.strip_prefix("# ").unwrap_or(l))).collect();
        format!("{head}{section}{rest}")
    }

    #[test]
    fn the_example_network_section_loads_when_uncommented() {
        let config = NodeConfig::from_toml(&uncomment("# [network]")).unwrap();
        let network = config.network.unwrap();
        assert_eq!(network.listen, SocketAddr::from(([0, 0, 0, 0], 30333)));
        assert_eq!(network.bootnodes.len(), 2);
        assert_eq!((network.key_file, network.max_peers, network.peer_exchange), (None, 50, true));
        assert!(
            NodeConfig::from_toml(include_str!("../../../etc/config/alys.toml")).unwrap().network.is_none()
        );
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        let bad = "[chain]\ngenesis = 'g'\nauthorities = []\nslot_duration = 'soon'\n[storage]\ndata_dir='d'\n[engine]\nurl='u'\njwt_secret='j'\n";
        assert!(NodeConfig::from_toml(bad).is_err());
        let unknown = "[chain]\ngenesis = 'g'\nauthorities = []\ncolour = 1\n[storage]\ndata_dir='d'\n[engine]\nurl='u'\njwt_secret='j'\n";
        assert!(NodeConfig::from_toml(unknown).is_err());
        assert!(NodeConfig::load("/nonexistent/alys.toml").is_err());
    }

    #[test]
    fn the_retarget_durations_are_whole_seconds_of_at_least_one() {
        let base = "[chain]\ngenesis = 'g'\nauthorities = []\n[storage]\ndata_dir='d'\n[engine]\nurl='u'\njwt_secret='j'\n";
        let defaults = NodeConfig::from_toml(base).unwrap().auxpow;
        assert_eq!(defaults.target_spacing, Duration::from_secs(60));
        assert_eq!(defaults.target_half_life, Duration::from_secs(1_200));
        let set = NodeConfig::from_toml(&format!(
            "{base}[auxpow]\ntarget_spacing = '10s'\ntarget_half_life = '1m 40s 500ms'\n"
        ))
        .unwrap()
        .auxpow;
        assert_eq!(set.target_spacing, Duration::from_secs(10));
        assert_eq!(set.target_half_life, Duration::from_secs(100));
        for bad in [
            "target_half_life = '0s'",
            "target_half_life = '900ms'",
            "target_spacing = '0s'",
            "target_half_life = 'soon'",
        ] {
            let error = NodeConfig::from_toml(&format!("{base}[auxpow]\n{bad}\n")).unwrap_err().to_string();
            assert!(error.contains("target_"), "{bad}: {error}");
        }
    }

    #[test]
    fn choices_are_typed() {
        let base = "[chain]\ngenesis = 'g'\nauthorities = []\n[storage]\ndata_dir='d'\n[engine]\nurl='u'\njwt_secret='j'\n";
        let geth =
            NodeConfig::from_toml(&format!("{base}[pegout]\nsource = 'geth'\npoll_interval = '500ms'\n"))
                .unwrap();
        assert_eq!(
            geth.pegout,
            Some(PegoutSection::Geth { max_log_range: 1_000, poll_interval: Duration::from_millis(500) })
        );
        for bad in [
            "[pegout]\nsource = 'gteh'\n",
            "[pegout]\nsource = 'exex'\n",
            "[pegout]\nsource = 'exex'\nfeed_url = 'u'\nmax_log_range = 5\n",
            "[governance]\nurl = 'u'\ngovernance_key = 'k'\nnetwork = 'moon'\n",
        ] {
            let error = NodeConfig::from_toml(&format!("{base}{bad}")).unwrap_err().to_string();
            assert!(!error.is_empty(), "{bad}");
        }
        let mainnet = NodeConfig::from_toml(&format!(
            "{base}[governance]\nurl = 'u'\ngovernance_key = 'k'\nnetwork = 'mainnet'\n"
        ))
        .unwrap();
        assert_eq!(mainnet.governance.unwrap().network, BitcoinNetwork::Bitcoin);
    }
}
