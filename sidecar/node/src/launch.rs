//! Launching a node: configuration in, running actors, RPC and metrics out.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use alloy_primitives::B256;
use alloy_rpc_types_engine::{JwtError, JwtSecret};
use alys_actor::{Handle, RestartPolicy};
use alys_bitcoin::{BitcoinAuth, BitcoinClient, BitcoinClientConfig, BitcoinError, BitcoinStatus, Follower};
use alys_bridge::{
    pegin::{PeginRules, PeginWatcher},
    pegout::{
        payer::{self, PayerConfig},
        rules::PegoutRules,
    },
    source::{self, BurnSourceConfig},
};
use alys_chain::{ChainActor, ChainConfig, ChainMessage, run_slot_clock, system_clock};
use alys_chainspec::ChainSpec;
use alys_consensus::{Aura, AuraError};
use alys_engine_client::{EngineClient, EngineClientError};
use alys_governance::{
    RuntimeParameters, RuntimeView,
    stream::{StreamConfig, StreamError, StreamHandle, StreamTls, reconnect_backoff},
};
use alys_primitives::{AuthorityKey, AuthorityPublicKey, ChainHeads, KeyError, KeyFileError};
use alys_storage::{ChainRead as _, Storage, StorageError};
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    config::{BitcoinSection, EngineSection, GovernanceSection, NodeConfig, PegoutSection},
    rpc::{self, RpcHandle, RpcStartError},
};

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The genesis file is unusable.
    #[error("genesis: {0}")]
    Genesis(#[from] alys_chainspec::ChainSpecError),
    /// An authority public key in `[chain].authorities` is unusable.
    #[error("[chain].authorities: {0}")]
    Key(#[from] KeyError),
    /// The authority key file is unusable.
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    /// The authority set is unusable.
    #[error("authorities: {0}")]
    Aura(#[from] AuraError),
    /// The peer-to-peer network could not start.
    #[error("[network]: {0}")]
    Network(#[from] alys_network::NetworkError),
    /// A `[network].bootnodes` entry is not a multiaddr.
    #[error("[network].bootnodes: {addr:?} is not a multiaddr: {reason}")]
    Bootnode {
        /// The entry.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The JWT secret is unusable.
    #[error("JWT secret {}: {source}", path.display())]
    Jwt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: JwtError,
    },
    /// `[bitcoin]` needs either `cookie_file`, or `user` with `password_file`.
    #[error("[bitcoin] needs either cookie_file, or user and password_file")]
    BitcoinAuth,
    /// The Bitcoin client could not be set up, or bitcoind answered an error.
    #[error("[bitcoin]: {0}")]
    Bitcoin(#[from] BitcoinError),
    /// bitcoind runs another network than the federation's addresses are for.
    #[error("the Bitcoin node at {url} runs {theirs}, but [governance].network is {ours}")]
    BitcoinNetwork {
        /// bitcoind's URL.
        url: String,
        /// Its chain.
        theirs: String,
        /// Ours.
        ours: String,
    },
    /// The configured authority key is not one of the authorities.
    #[error("the authority key {0} is not in [chain].authorities; add it there or remove [authority]")]
    UnknownAuthority(String),
    /// Nothing answers at the execution client's Engine API address.
    #[error(
        "cannot reach the execution client at {url}; start it (reth, geth or `alys-devnet el`) or fix \
         [engine].url"
    )]
    EngineUnreachable {
        /// The configured URL.
        url: String,
        /// What failed.
        #[source]
        error: EngineClientError,
    },
    /// The execution client answered 401: it checks another JWT secret than ours.
    #[error(
        "the execution client at {url} refused our JWT (HTTP 401): it reads another secret than {}; give \
         both the same file (reth/geth: --authrpc.jwtsecret)",
        jwt.display()
    )]
    EngineRefusedJwt {
        /// The configured URL.
        url: String,
        /// Our secret's file.
        jwt: PathBuf,
    },
    /// The execution client answered the capability exchange with an error.
    #[error("the execution client at {url} failed engine_exchangeCapabilities: {error}")]
    EngineError {
        /// The configured URL.
        url: String,
        /// What it answered.
        error: EngineClientError,
    },
    /// The execution client lacks Engine API methods the node calls.
    #[error(
        "the execution client at {url} does not support {}; use reth, geth or alys-devnet el with Prague support",
        missing.join(", ")
    )]
    MissingCapabilities {
        /// The configured URL.
        url: String,
        /// The methods it did not list.
        missing: Vec<&'static str>,
    },
    /// The slot duration is too short for the execution client to build a block.
    #[error("[chain].slot_duration is {0:?}; it must be at least 100ms")]
    SlotTooShort(std::time::Duration),
    /// The execution client's genesis is not the configured one.
    #[error(
        "the execution client at {url} has another genesis: block 0 there is {}, while {} gives {ours}; \
         start the execution client from the same genesis file (reth/geth: --chain / init), or point \
         [chain].genesis at the one it uses",
        theirs.map_or_else(|| "unknown (it does not have our genesis block)".to_owned(), |h| h.to_string()),
        genesis_file.display()
    )]
    GenesisMismatchEngine {
        /// The configured execution client.
        url: String,
        /// `[chain].genesis`.
        genesis_file: PathBuf,
        /// The hash of the configured genesis.
        ours: B256,
        /// The execution client's block 0, when it says.
        theirs: Option<B256>,
    },
    /// The data directory holds a chain started from another genesis.
    #[error(
        "{} holds a chain started from genesis {stored}, while {} gives {ours}; use the genesis this data \
         directory was made with, or a fresh data directory",
        data_dir.display(),
        genesis_file.display()
    )]
    GenesisMismatchData {
        /// `[storage].data_dir`.
        data_dir: PathBuf,
        /// `[chain].genesis`.
        genesis_file: PathBuf,
        /// The hash of the configured genesis.
        ours: B256,
        /// The genesis the stored chain starts from.
        stored: B256,
    },
    /// The engine client could not be built.
    #[error("engine: {0}")]
    Engine(#[from] EngineClientError),
    /// The database could not be opened.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The data directory holds a database of an earlier version of the node.
    #[error(
        "{} holds data of an earlier version of the node (sidecar.redb); move it away or start a fresh \
         data directory (alys-devnet --fresh)",
        dir.display()
    )]
    OldDataDir {
        /// The data directory.
        dir: PathBuf,
    },
    /// A file or directory could not be read or created.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A token file is empty.
    #[error("{}: the token file is empty", path.display())]
    EmptyToken {
        /// The file.
        path: PathBuf,
    },
    /// An actor did not start.
    #[error("actor: {0}")]
    Actor(#[from] alys_actor::ActorError),
    /// `[pegout] source = "geth"` without `[engine].eth_rpc_url`.
    #[error("[pegout] source \"geth\" needs [engine].eth_rpc_url")]
    GethWithoutEthRpc,
    /// `[pegout]` is unusable: a plaintext burn feed off loopback, an unreadable or empty token.
    #[error("[pegout]: {0}")]
    Pegout(#[from] alys_bridge::SourceError),
    /// `[governance].governance_key` is not a compressed secp256k1 key.
    #[error("[governance].governance_key is not a compressed secp256k1 public key (66 hex characters)")]
    GovernanceKey,
    /// `[governance].url` is unusable.
    #[error("[governance].url {url:?}: {reason}")]
    GovernanceUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The governance stream did not start.
    #[error("governance: {0}")]
    Governance(#[from] StreamError),
    /// The RPC server did not start.
    #[error("rpc: {0}")]
    Rpc(#[from] RpcStartError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LaunchError + '_ {
    move |source| LaunchError::Io { path: path.to_owned(), source }
}

/// Reads a secret token file (admin, bearer): trimmed, and refused when empty.
fn read_token(path: &Path) -> Result<String, LaunchError> {
    let token = std::fs::read_to_string(path).map_err(io_err(path))?.trim().to_owned();
    if token.is_empty() {
        return Err(LaunchError::EmptyToken { path: path.to_owned() });
    }
    Ok(token)
}

/// The Engine API methods the node calls.
const ENGINE_CAPABILITIES: &[&str] = &[
    "engine_forkchoiceUpdatedV2",
    "engine_forkchoiceUpdatedV3",
    "engine_getPayloadV2",
    "engine_getPayloadV3",
    "engine_getPayloadV4",
    "engine_newPayloadV2",
    "engine_newPayloadV3",
    "engine_newPayloadV4",
    "engine_getPayloadBodiesByHashV1",
];

/// The name of the node's database file in its data directory.
pub const DATABASE_FILE: &str = "alys.redb";

/// A running node.
#[derive(Debug)]
pub struct NodeHandle {
    /// The chain actor.
    pub chain: Handle<ChainMessage>,
    /// The RPC server.
    pub rpc: RpcHandle,
    /// Where the chain stands, after every commit.
    pub heads: watch::Receiver<ChainHeads>,
    /// The number of connected peers, reported to governance (written by the network when it runs).
    pub peers: watch::Sender<u32>,
    /// Where peers reach this node: its listen multiaddrs ending in `/p2p/<peer id>` (empty without
    /// `[network]`).
    pub p2p: Vec<String>,
    chain_task: JoinHandle<()>,
    tasks: Vec<JoinHandle<()>>,
}

impl NodeHandle {
    /// Stops the node: the background tasks, the RPC server, then the chain actor after its queued
    /// messages.
    pub async fn shutdown(self) {
        for task in &self.tasks {
            task.abort();
        }
        self.rpc.stop();
        self.rpc.stopped().await;
        drop(self.chain);
        let _ = self.chain_task.await;
    }
}

/// Why the Prometheus exporter did not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address is taken (another node, or reth's exporter) or not ours to bind.
    #[error("cannot serve metrics on {addr}: {source}; choose another [metrics].listen or stop what uses it")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The bind error.
        source: std::io::Error,
    },
    /// The exporter could not be installed (a recorder is already installed in this process).
    #[error("cannot install the metrics exporter: {0}")]
    Install(#[from] metrics_exporter_prometheus::BuildError),
}

/// Installs the Prometheus exporter on `addr` (once per process); a taken port is an error, not a
/// node that silently runs without metrics.
pub fn install_metrics(addr: std::net::SocketAddr) -> Result<(), MetricsError> {
    // Bind first: the exporter binds in the background, where a taken port only logs.
    let listener = std::net::TcpListener::bind(addr).map_err(|source| MetricsError::Bind { addr, source })?;
    drop(listener);
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        // Latencies are histograms (not summaries), so Grafana can aggregate them across nodes.
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
            LATENCY_BUCKETS,
        )?
        .install()?;
    describe_metrics();
    tracing::info!(target: "alys::node", %addr, "Prometheus metrics at /metrics");
    Ok(())
}

/// Histogram buckets of every `*_seconds` metric: 1 ms to 30 s, dense where Engine API calls and actor
/// messages live.
const LATENCY_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Gives every metric the node exports its help text (and unit), once the recorder is installed.
fn describe_metrics() {
    alys_actor::describe_metrics();
    alys_chain::metrics::describe();
    alys_engine_client::describe_metrics();
    metrics::describe_counter!(
        "alys_rpc_timeouts_total",
        "Alys RPC calls answered with the timeout error (-32003)"
    );
    alys_burns::metrics::describe();
    alys_bridge::metrics::describe();
    alys_bridge::pegin::metrics::describe();
    alys_bridge::pegout::rules::describe_metrics();
    alys_bridge::pegout::metrics::describe();
    alys_bitcoin::metrics::describe();
    alys_governance::metrics::describe();
}

/// Parses the `[chain].authorities` list.
fn authorities(keys: &[String]) -> Result<Vec<AuthorityPublicKey>, KeyError> {
    keys.iter()
        .map(|k| {
            let bytes = alloy_primitives::hex::decode(k).map_err(|_| KeyError::InvalidPublicKey)?;
            AuthorityPublicKey::from_bytes(&bytes)
        })
        .collect()
}

/// Opens the node's database in `data_dir`, refusing a directory written by an earlier layout.
pub fn open_storage(data_dir: &Path) -> Result<Arc<Storage>, LaunchError> {
    std::fs::create_dir_all(data_dir).map_err(io_err(data_dir))?;
    let path = data_dir.join(DATABASE_FILE);
    if !path.exists() && data_dir.join("sidecar.redb").exists() {
        return Err(LaunchError::OldDataDir { dir: data_dir.to_owned() });
    }
    Ok(Arc::new(Storage::open(path)?))
}

/// Starts a node from its configuration.
pub async fn launch(config: NodeConfig) -> Result<NodeHandle, LaunchError> {
    let spec = Arc::new(ChainSpec::from_file(&config.chain.genesis)?);
    if config.chain.slot_duration < MIN_SLOT_DURATION {
        return Err(LaunchError::SlotTooShort(config.chain.slot_duration));
    }
    let slot_ms = u64::try_from(config.chain.slot_duration.as_millis()).unwrap_or(u64::MAX);
    let tolerance_ms = u64::try_from(config.chain.future_tolerance.as_millis()).unwrap_or(u64::MAX);
    let aura = Aura::new(authorities(&config.chain.authorities)?, slot_ms, tolerance_ms)?;
    let key = match &config.authority {
        Some(a) => Some(Arc::new(AuthorityKey::from_file(&a.key_file)?)),
        None => None,
    };
    if let Some(key) = &key
        && aura.index_of(key.public()).is_none()
    {
        return Err(LaunchError::UnknownAuthority(key.public().to_string()));
    }
    let secret = JwtSecret::from_file(&config.engine.jwt_secret)
        .map_err(|source| LaunchError::Jwt { path: config.engine.jwt_secret.clone(), source })?;
    let engine = EngineClient::new(&config.engine.url, secret, Arc::clone(&spec))?;
    // Local checks of `[bitcoin]` (credentials readable) before anything is asked over the network.
    let bitcoin = config.bitcoin.as_ref().map(bitcoin_client).transpose()?;
    let engine_version = check_engine(&engine, &config.engine).await?;
    let engine_stats = engine.stats();
    check_engine_genesis(&engine, &config, spec.genesis_hash()).await?;
    let storage = open_storage(&config.storage.data_dir)?;
    check_stored_genesis(&storage, &config, spec.genesis_hash())?;
    let admin_token = config.rpc.admin_token_file.as_deref().map(read_token).transpose()?;

    // Where the chain stands, published by the chain actor; governance refuses decisions at or below it.
    let (heads_tx, heads) = watch::channel(ChainHeads {
        head: alys_primitives::BlockRef::new(0, spec.genesis_hash()),
        head_execution_hash: spec.genesis_hash(),
        finalized: None,
    });
    // Governance first: the chain actor reads its proposals (pauses, parameters) from the start.
    let mut parameters = RuntimeParameters::with_max_blocks_without_pow(config.auxpow.max_blocks_without_pow);
    if let Some(bitcoin) = &config.bitcoin {
        parameters = parameters.with_pegin(
            bitcoin.pegin_confirmations.max(1),
            bitcoin.pegin_min_sats,
            bitcoin.pegin_grace_blocks,
        );
        parameters = parameters
            .with_pegout(bitcoin.pegout_fee_rate_sat_vb.max(1), bitcoin.pegout_confirmations.max(1));
    }
    if let (Some(client), Some(section)) = (&bitcoin, &config.bitcoin) {
        check_bitcoin(client, section, &config).await?;
    }
    let mut tasks = Vec::new();
    let governance = match &config.governance {
        Some(section) => {
            let (handle, task) = start_governance(section, parameters, Arc::clone(&storage), heads.clone())?;
            tasks.push(task);
            Some(handle)
        }
        None => None,
    };
    let runtime = governance.as_ref().map_or_else(|| RuntimeView::fixed(parameters), StreamHandle::runtime);

    let chain_config = ChainConfig {
        genesis_hash: spec.genesis_hash(),
        genesis_timestamp: spec.genesis().timestamp,
        fee_recipient: config.chain.fee_recipient,
        clock: system_clock(),
        auxpow: alys_auxpow::MiningParams {
            chain_id: config.auxpow.chain_id,
            pow_limit_bits: config.auxpow.pow_limit_bits,
            target_spacing_secs: config.auxpow.target_spacing.as_secs(),
            target_half_life_secs: config.auxpow.target_half_life.as_secs(),
            split: alys_auxpow::RewardSplit {
                miner_percent: config.auxpow.miner_share_percent,
                federation: config.auxpow.federation_fee_address,
            },
        },
        runtime: runtime.clone(),
    };
    tracing::info!(target: "alys::node", chain_id = spec.chain_id(), genesis = %chain_config.genesis_hash,
        authorities = aura.authorities().len(), "starting node");
    // The federation network: started before the chain, which sends its blocks and proposals to it.
    let network = match &config.network {
        Some(section) => Some(start_network(section, &config.storage.data_dir, spec.genesis_hash()).await?),
        None => None,
    };
    let (chain_events_tx, chain_events) = tokio::sync::mpsc::channel(1_024);
    let chain_events_tx = network.is_some().then_some(chain_events_tx);
    let chain_storage = Arc::clone(&storage);
    let pegin_rules = PeginRules::new(runtime.clone(), bitcoin.clone());
    // Peg-outs pay addresses of the federation's network; without governance there is no federation.
    let pegout_rules = config
        .governance
        .as_ref()
        .map(|g| PegoutRules::new(runtime.clone(), bitcoin::Network::from(g.network)));
    let (chain, chain_task) = alys_actor::spawn(
        move || {
            ChainActor::new(
                chain_config.clone(),
                aura.clone(),
                key.clone(),
                engine.clone(),
                Arc::clone(&chain_storage),
                heads_tx.clone(),
            )
            .map(|chain| chain.with_pegins(pegin_rules.clone()))
            .map(|chain| match &pegout_rules {
                Some(rules) => chain.with_pegouts(rules.clone()),
                None => chain,
            })
            .map(|chain| match &chain_events_tx {
                Some(events) => chain.with_events(events.clone()),
                None => chain,
            })
            .map_err(|e| alys_actor::ActorError::new("chain", e))
        },
        256,
        RestartPolicy::default(),
    )?;
    tasks.push(tokio::spawn(run_slot_clock(chain.clone(), slot_ms)));
    let (peers, peer_count) = watch::channel(0u32);
    if let Some(governance) = &governance {
        tasks.push(tokio::spawn(report_status(governance.clone(), chain.clone(), peer_count)));
    }
    let mut p2p = Vec::new();
    let network_view = match network {
        Some((handle, events, network_id)) => {
            p2p = handle.enode().into_iter().map(|a| a.to_string()).collect();
            let (sync_tasks, view) = alys_sync::spawn(alys_sync::SyncDeps {
                network: handle,
                events,
                chain: chain.clone(),
                chain_events,
                storage: Arc::clone(&storage),
                heads: heads.clone(),
                network_id,
                slot_duration: config.chain.slot_duration,
                peer_count: peers.clone(),
            });
            tasks.extend(sync_tasks);
            Some(view)
        }
        None => None,
    };
    let pegouts = match &config.pegout {
        Some(section) => {
            let source = burn_source(section, &config.engine)?;
            let (storage, heads, runtime) = (Arc::clone(&storage), heads.clone(), runtime.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(error) = source::run(source, storage, heads, runtime).await {
                    tracing::error!(target: "alys::pegout", %error, "the burn source stopped");
                }
            }));
            true
        }
        None => false,
    };
    // The payer: final peg-out transactions signed by governance, verified, broadcast and followed.
    if let (Some(stream), Some(client), Some(section)) = (&governance, &bitcoin, &config.bitcoin) {
        let payer_config = PayerConfig::default()
            .with_pegout_confirmations(u64::from(section.pegout_confirmations.max(1)))
            .with_poll_interval(
                section
                    .poll_interval
                    .clamp(std::time::Duration::from_millis(100), std::time::Duration::from_secs(1)),
            );
        let (storage, stream, client) = (Arc::clone(&storage), stream.clone(), client.clone());
        let (heads, runtime) = (heads.clone(), runtime.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(error) = payer::run(storage, stream, client, heads, runtime, payer_config).await {
                tracing::error!(target: "alys::pegout", %error, "the peg-out payer stopped");
            }
        }));
    }
    let bitcoin_status = match (bitcoin, &config.bitcoin) {
        (Some(client), Some(section)) => {
            let (status_tx, status) = watch::channel(BitcoinStatus::default());
            let follower = Follower::new(client, section.start_height);
            let mut watcher =
                PeginWatcher::new(follower, Arc::clone(&storage), runtime.clone(), heads.clone(), status_tx)
                    .with_poll_interval(section.poll_interval.max(std::time::Duration::from_millis(50)));
            if let Some(governance) = &governance {
                watcher = watcher.with_governance(governance.clone());
            }
            tasks.push(tokio::spawn(watcher.run()));
            Some(status)
        }
        _ => None,
    };
    let context = rpc::RpcContext {
        chain: chain.clone(),
        storage,
        heads: heads.clone(),
        admin_token,
        governance,
        pegouts,
        runtime,
        bitcoin: bitcoin_status,
        network: config.governance.as_ref().map(|g| bitcoin::Network::from(g.network)),
        peers: network_view,
    };
    let dashboard = config.rpc.dashboard.then_some(rpc::DashboardSettings {
        slot_duration_ms: slot_ms,
        pow_limit_bits: config.auxpow.pow_limit_bits,
        engine: engine_stats,
        engine_version,
        chain_id: spec.chain_id(),
    });
    let rpc = rpc::start(config.rpc.listen, context, dashboard).await?;
    Ok(NodeHandle { chain, rpc, heads, peers, p2p, chain_task, tasks })
}

/// Starts the libp2p network of `[network]`; the network id is the genesis hash's first 8 bytes, so
/// nodes of different chains never mix their gossip.
async fn start_network(
    section: &crate::config::NetworkSection,
    data_dir: &Path,
    genesis: alloy_primitives::B256,
) -> Result<
    (alys_network::NetworkHandle, tokio::sync::mpsc::Receiver<alys_network::NetworkEvent>, String),
    LaunchError,
> {
    let network_id = alloy_primitives::hex::encode(genesis.get(..8).unwrap_or_default());
    let key_file = section.key_file.clone().unwrap_or_else(|| data_dir.join("network.key"));
    let mut config = alys_network::NetworkConfig::new(section.listen, key_file, network_id.clone());
    config.max_peers = section.max_peers;
    config.peer_exchange = section.peer_exchange;
    config.bootnodes = section
        .bootnodes
        .iter()
        .map(|addr| {
            addr.parse::<alys_network::Multiaddr>()
                .map_err(|e| LaunchError::Bootnode { addr: addr.clone(), reason: e.to_string() })
        })
        .collect::<Result<_, _>>()?;
    alys_network::describe_metrics();
    let (handle, events) = alys_network::start(config).await?;
    tracing::info!(target: "alys::node", peer_id = %handle.local_peer_id(), listen = ?handle.listen_addrs(),
        "federation network started");
    Ok((handle, events, network_id))
}

/// Refuses to start against an execution client that is not there, refuses our JWT, or lacks a method
/// the node calls: the operator should learn it now, not from a stream of failed slots.
///
/// Answers the client's `engine_getClientVersionV1` identification when it offers the method.
async fn check_engine(engine: &EngineClient, section: &EngineSection) -> Result<Option<String>, LaunchError> {
    let url = section.url.as_str();
    let supported = engine.exchange_capabilities(ENGINE_CAPABILITIES).await.map_err(|error| {
        if error.http_status() == Some(401) {
            LaunchError::EngineRefusedJwt { url: url.to_owned(), jwt: section.jwt_secret.clone() }
        } else if error.is_transport() {
            LaunchError::EngineUnreachable { url: url.to_owned(), error }
        } else {
            LaunchError::EngineError { url: url.to_owned(), error }
        }
    })?;
    let missing: Vec<&'static str> =
        ENGINE_CAPABILITIES.iter().copied().filter(|m| !supported.iter().any(|s| s == m)).collect();
    if !missing.is_empty() {
        return Err(LaunchError::MissingCapabilities { url: url.to_owned(), missing });
    }
    if !supported.iter().any(|m| m == "engine_getClientVersionV1") {
        return Ok(None);
    }
    match engine.client_version().await {
        Ok(version) => {
            tracing::info!(target: "alys::node", %version, "execution client");
            Ok(Some(version))
        }
        Err(error) => {
            tracing::warn!(target: "alys::node", %error, "engine_getClientVersionV1 failed; the version stays unknown");
            Ok(None)
        }
    }
}

/// The shortest slot the node accepts: the execution client needs time to build and the authority to
/// sign within one.
const MIN_SLOT_DURATION: std::time::Duration = std::time::Duration::from_millis(100);

/// Refuses an execution client that started from another genesis than `[chain].genesis` (it would
/// answer every slot with `-38005 Unsupported fork` or an unknown parent). The verdict uses only the
/// Engine API: the client either has our genesis block or not; its own block 0 is asked for (by
/// `eth_getBlockByNumber` on the Engine API port, then on `[engine].eth_rpc_url`) only to name it.
async fn check_engine_genesis(
    engine: &EngineClient,
    config: &NodeConfig,
    ours: B256,
) -> Result<(), LaunchError> {
    let url = config.engine.url.clone();
    let known = engine
        .payload_bodies_by_hash(vec![ours])
        .await
        .map_err(|error| LaunchError::EngineError { url: url.clone(), error })?;
    if known.first().is_some_and(Option::is_some) {
        return Ok(());
    }
    let mut theirs = engine.block_hash_by_number(0).await.ok().flatten();
    if theirs.is_none()
        && let Some(eth) = &config.engine.eth_rpc_url
    {
        theirs = eth_genesis_hash(eth).await;
    }
    if theirs == Some(ours) {
        return Ok(());
    }
    Err(LaunchError::GenesisMismatchEngine { url, genesis_file: config.chain.genesis.clone(), ours, theirs })
}

/// Block 0's hash from an execution client's eth JSON-RPC, if it answers.
async fn eth_genesis_hash(url: &str) -> Option<B256> {
    use jsonrpsee::core::client::ClientT as _;
    #[derive(serde::Deserialize)]
    struct HashOnly {
        hash: B256,
    }
    let client = jsonrpsee::http_client::HttpClientBuilder::default()
        .request_timeout(std::time::Duration::from_secs(5))
        .build(url)
        .ok()?;
    let block: Option<HashOnly> =
        client.request("eth_getBlockByNumber", jsonrpsee::rpc_params!["0x0", false]).await.ok()?;
    block.map(|b| b.hash)
}

/// Refuses a data directory whose chain started from another genesis; records the genesis on first
/// start (or, for a database from before the record existed, checks its first block's parent).
fn check_stored_genesis(storage: &Storage, config: &NodeConfig, ours: B256) -> Result<(), LaunchError> {
    let read = storage.read()?;
    let stored = match read.genesis_hash()? {
        Some(hash) => Some(hash),
        None => read.block_by_height(1)?.map(|block| block.header.parent_hash),
    };
    let recorded = read.genesis_hash()?.is_some();
    drop(read);
    if let Some(stored) = stored
        && stored != ours
    {
        return Err(LaunchError::GenesisMismatchData {
            data_dir: config.storage.data_dir.clone(),
            genesis_file: config.chain.genesis.clone(),
            ours,
            stored,
        });
    }
    if !recorded {
        let tx = storage.write()?;
        tx.set_genesis_hash(ours)?;
        tx.commit()?;
    }
    Ok(())
}

/// The Bitcoin client `[bitcoin]` describes; a missing cookie or password file stops the launch.
fn bitcoin_client(section: &BitcoinSection) -> Result<BitcoinClient, LaunchError> {
    let auth = match (&section.cookie_file, &section.user, &section.password_file) {
        (Some(cookie), None, None) => BitcoinAuth::Cookie(cookie.clone()),
        (None, Some(user), Some(password_file)) => {
            BitcoinAuth::UserPassword { user: user.clone(), password: read_token(password_file)? }
        }
        _ => return Err(LaunchError::BitcoinAuth),
    };
    Ok(BitcoinClient::new(
        BitcoinClientConfig::new(section.url.clone(), auth).with_timeout(section.timeout).with_retries(1),
    )?)
}

/// A bitcoind on another network than `[governance].network` stops the launch; one that does not
/// answer yet (still starting) is only reported: the peg-in watcher keeps trying.
async fn check_bitcoin(
    client: &BitcoinClient,
    section: &BitcoinSection,
    config: &NodeConfig,
) -> Result<(), LaunchError> {
    let network: bitcoin::Network = config.governance.as_ref().map(|g| g.network).unwrap_or_default().into();
    match client.chain().await {
        Ok((chain, best)) => {
            if chain != network.to_core_arg() {
                return Err(LaunchError::BitcoinNetwork {
                    url: section.url.clone(),
                    theirs: chain,
                    ours: network.to_core_arg().to_owned(),
                });
            }
            tracing::info!(target: "alys::node", url = %section.url, chain, height = best.height, "Bitcoin node");
        }
        Err(error) if error.is_transport() => {
            tracing::warn!(target: "alys::node", url = %section.url, %error,
                "the Bitcoin node does not answer yet; peg-ins wait for it");
        }
        Err(error) => return Err(error.into()),
    }
    Ok(())
}

/// The burn source `[pegout]` describes, checked: the feed over TLS or on loopback only (forged burns
/// would become payable peg-outs), its token and CA files readable.
fn burn_source(section: &PegoutSection, engine: &EngineSection) -> Result<BurnSourceConfig, LaunchError> {
    let source = match section {
        PegoutSection::Exex { feed_url, bearer_token_file, tls_ca_file, tls_domain } => {
            BurnSourceConfig::Exex {
                feed_url: feed_url.clone(),
                bearer_token: bearer_token_file
                    .as_deref()
                    .map(alys_burns::BearerToken::from_file)
                    .transpose()
                    .map_err(alys_bridge::SourceError::from)?,
                tls: alys_burns::FeedTls {
                    ca_pem: tls_ca_file
                        .as_deref()
                        .map(|path| std::fs::read(path).map_err(io_err(path)))
                        .transpose()?,
                    domain: tls_domain.clone(),
                },
            }
        }
        PegoutSection::Geth { max_log_range, poll_interval } => BurnSourceConfig::Geth {
            eth_rpc_url: engine.eth_rpc_url.clone().ok_or(LaunchError::GethWithoutEthRpc)?,
            max_log_range: *max_log_range,
            poll_interval: *poll_interval,
        },
    };
    source.check()?;
    Ok(source)
}

fn start_governance(
    section: &GovernanceSection,
    parameters: RuntimeParameters,
    storage: Arc<Storage>,
    heads: watch::Receiver<ChainHeads>,
) -> Result<(StreamHandle, JoinHandle<()>), LaunchError> {
    let key_bytes =
        alloy_primitives::hex::decode(&section.governance_key).map_err(|_| LaunchError::GovernanceKey)?;
    let key =
        bitcoin::secp256k1::PublicKey::from_slice(&key_bytes).map_err(|_| LaunchError::GovernanceKey)?;
    check_governance_url(&section.url)?;
    let mut stream = StreamConfig::new(section.url.clone(), key).with_heads(heads);
    stream.network = section.network.into();
    stream.parameters = parameters;
    stream.node_id = section.node_id.clone();
    stream.heartbeat = section.heartbeat.max(std::time::Duration::from_secs(1));
    stream.heartbeat_timeout = stream.heartbeat * 3;
    stream.backoff = reconnect_backoff(section.max_backoff);
    stream.signature_timeout = section.signature_timeout.max(std::time::Duration::from_secs(1));
    stream.bearer_token = section.bearer_token_file.as_deref().map(read_token).transpose()?;
    stream.tls = StreamTls {
        ca_pem: match &section.tls_ca_file {
            Some(path) => Some(std::fs::read(path).map_err(io_err(path))?),
            None => None,
        },
        domain: section.tls_domain.clone(),
    };
    Ok(alys_governance::stream::spawn(stream, storage)?)
}

/// TLS is required except on loopback: the stream carries the federation's signatures and proposals.
fn check_governance_url(url: &str) -> Result<(), LaunchError> {
    let refuse = |reason| LaunchError::GovernanceUrl { url: url.to_owned(), reason };
    let parsed: http::Uri = url.parse().map_err(|_| refuse("not a URL"))?;
    let host = parsed.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    match parsed.scheme_str() {
        Some("https") => Ok(()),
        Some("http") => {
            let loopback =
                host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err(refuse("plaintext is allowed on loopback only; use https:// (TLS)"))
            }
        }
        _ => Err(refuse("use https:// (or http:// on loopback)")),
    }
}

/// Tells governance how the node is doing, every 30 s while the node runs.
async fn report_status(governance: StreamHandle, chain: Handle<ChainMessage>, peers: watch::Receiver<u32>) {
    use alys_proto::governance::v1::{NodeStatus, StatusUpdate, SyncStatus, stream_request::Payload};
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
    loop {
        tick.tick().await;
        let Ok(status) = chain.ask(ChainMessage::Status).await else { return };
        let (node, sync) = if !status.engine_online {
            (NodeStatus::Degraded, SyncStatus::Error)
        } else if status.production_stopped.is_some() {
            (NodeStatus::Degraded, SyncStatus::Stalled)
        } else if !status.engine_synced {
            (NodeStatus::Active, SyncStatus::Syncing)
        } else {
            (NodeStatus::Active, SyncStatus::Synced)
        };
        let update = StatusUpdate {
            status: node as i32,
            block_height: status.head.height,
            sync_status: sync as i32,
            connection_count: *peers.borrow(),
            metrics: None,
        };
        if governance.send(Payload::StatusUpdate(update)).await.is_err() {
            return;
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM: the signals an operator or systemd sends to stop a node.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(error) => {
            tracing::warn!(target: "alys::node", %error, "no SIGTERM handler; only Ctrl-C stops");
            let _ = ctrl_c.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn governance_needs_tls_off_loopback() {
        for ok in [
            "https://governance.example.org:50061",
            "https://10.0.0.5:50061",
            "http://127.0.0.1:50061",
            "http://localhost:50061",
            "http://[::1]:50061",
        ] {
            check_governance_url(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for refused in ["http://10.0.0.5:50061", "http://governance.example.org", "ftp://127.0.0.1"] {
            let error = check_governance_url(refused).unwrap_err().to_string();
            assert!(error.contains("https://"), "{refused}: {error}");
        }
        let error = check_governance_url("not a url").unwrap_err().to_string();
        assert!(error.contains("not a URL"), "{error}");
    }

    #[test]
    fn empty_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  \n").unwrap();
        assert!(matches!(read_token(&path), Err(LaunchError::EmptyToken { .. })));
        std::fs::write(&path, "secret\n").unwrap();
        assert_eq!(read_token(&path).unwrap(), "secret");
    }
}
