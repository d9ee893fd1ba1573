//! Launching a node: configuration in, running actors, RPC and metrics out.

use std::{path::Path, sync::Arc};

use alloy_rpc_types_engine::JwtSecret;
use alys_chainspec::ChainSpec;
use tokio::task::JoinHandle;

use crate::{
    actor::{self, Handle, RestartPolicy},
    chain::{Aura, AuthorityKey, AuthorityPublicKey, ChainActor, ChainConfig, ChainMessage, run_slot_clock},
    config::NodeConfig,
    engine::EngineClient,
    rpc::{self, RpcHandle},
    storage::Store,
};

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The genesis file is unusable.
    #[error("genesis: {0}")]
    Genesis(#[from] alys_chainspec::ChainSpecError),
    /// A key or the authority list is unusable.
    #[error("keys: {0}")]
    Key(#[from] crate::chain::KeyError),
    /// The authority set is unusable.
    #[error("authorities: {0}")]
    Aura(#[from] crate::chain::AuraError),
    /// The JWT secret is unusable.
    #[error("JWT secret {path}: {reason}")]
    Jwt {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The configured authority key is not one of the authorities.
    #[error("the authority key {0} is not in [chain].authorities; add it there or remove [authority]")]
    UnknownAuthority(String),
    /// The execution client did not answer (down, wrong URL, or a different JWT secret).
    #[error("cannot reach the execution client at {url} ({error}); is it running with the same JWT secret?")]
    EngineUnreachable {
        /// The configured URL.
        url: String,
        /// What failed.
        error: crate::engine::EngineClientError,
    },
    /// The engine client could not be built.
    #[error("engine: {0}")]
    Engine(#[from] crate::engine::EngineClientError),
    /// The store could not be opened.
    #[error("storage: {0}")]
    Store(#[from] crate::storage::StoreError),
    /// A file or directory could not be read or created.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An actor did not start.
    #[error("actor: {0}")]
    Actor(#[from] crate::actor::ActorError),
    /// The pegout section is unusable.
    #[error("pegout: {0}")]
    Pegout(String),
    /// The governance section is unusable.
    #[error("governance: {0}")]
    Governance(String),
    /// The RPC server did not start.
    #[error("rpc: {0}")]
    Rpc(#[from] rpc::RpcStartError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LaunchError + '_ {
    move |source| LaunchError::Io { path: path.display().to_string(), source }
}

/// The Engine API methods the sidecar calls.
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

/// A running node.
#[derive(Debug)]
pub struct NodeHandle {
    /// The chain actor.
    pub chain: Handle<ChainMessage>,
    /// The RPC server.
    pub rpc: RpcHandle,
    chain_task: JoinHandle<()>,
    clock_task: JoinHandle<()>,
    governance_task: Option<JoinHandle<()>>,
    pegout_task: Option<JoinHandle<()>>,
    status_task: Option<JoinHandle<()>>,
}

impl NodeHandle {
    /// Stops the node: the slot clock, the RPC server, then the chain actor after its queued messages.
    pub async fn shutdown(self) {
        self.clock_task.abort();
        if let Some(task) = &self.governance_task {
            task.abort();
        }
        if let Some(task) = &self.pegout_task {
            task.abort();
        }
        if let Some(task) = &self.status_task {
            task.abort();
        }
        self.rpc.stop();
        self.rpc.stopped().await;
        drop(self.chain);
        let _ = self.chain_task.await;
    }
}

/// Installs the Prometheus exporter on `addr` (once per process).
pub fn install_metrics(addr: std::net::SocketAddr) {
    match metrics_exporter_prometheus::PrometheusBuilder::new().with_http_listener(addr).install() {
        Ok(()) => tracing::info!(target: "alys::node", %addr, "Prometheus metrics at /metrics"),
        Err(error) => tracing::warn!(target: "alys::node", %error, "metrics exporter not installed"),
    }
}

/// Starts a node from its configuration.
pub async fn launch(config: NodeConfig) -> Result<NodeHandle, LaunchError> {
    let spec = Arc::new(ChainSpec::from_file(&config.chain.genesis)?);
    let authorities = config
        .chain
        .authorities
        .iter()
        .map(|k| {
            let bytes =
                alloy_primitives::hex::decode(k).map_err(|_| crate::chain::KeyError::InvalidPublicKey)?;
            AuthorityPublicKey::from_bytes(&bytes)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let aura = Aura::new(authorities, config.chain.slot_duration_ms, config.chain.future_tolerance_ms)?;
    let key = match &config.authority {
        Some(a) => Some(Arc::new(AuthorityKey::from_file(&a.key_file)?)),
        None => None,
    };
    if let Some(key) = &key
        && aura.index_of(key.public()).is_none()
    {
        return Err(LaunchError::UnknownAuthority(key.public().to_string()));
    }
    let secret = JwtSecret::from_file(&config.engine.jwt_secret).map_err(|e| LaunchError::Jwt {
        path: config.engine.jwt_secret.display().to_string(),
        reason: e.to_string(),
    })?;
    let engine = EngineClient::new(&config.engine.url, secret, Arc::clone(&spec))?;
    // Refuse to start against an execution client that is not there or refuses our JWT: the operator
    // should learn it now, not from a stream of failed slots.
    engine
        .exchange_capabilities(ENGINE_CAPABILITIES)
        .await
        .map_err(|error| LaunchError::EngineUnreachable { url: config.engine.url.clone(), error })?;
    std::fs::create_dir_all(&config.storage.data_dir).map_err(io_err(&config.storage.data_dir))?;
    let store = Arc::new(Store::open(config.storage.data_dir.join("sidecar.redb"))?);
    let admin_token = match &config.rpc.admin_token_file {
        Some(path) => Some(std::fs::read_to_string(path).map_err(io_err(path))?.trim().to_owned()),
        None => None,
    };

    // Governance first: the chain actor reads its proposals (pauses, parameters) from the start.
    let parameters = crate::governance::RuntimeParameters::with_max_blocks_without_pow(
        config.auxpow.max_blocks_without_pow,
    );
    let (governance, governance_task) = match &config.governance {
        Some(section) => {
            let (handle, task) = start_governance(section, &config.storage.data_dir, parameters)?;
            (Some(handle), Some(task))
        }
        None => (None, None),
    };
    let runtime = governance
        .as_ref()
        .map_or_else(|| crate::governance::RuntimeView::fixed(parameters), |g| g.runtime());

    let chain_config = ChainConfig {
        genesis_hash: spec.genesis_hash(),
        genesis_timestamp: spec.genesis().timestamp,
        fee_recipient: config.chain.fee_recipient,
        clock: crate::chain::system_clock(),
        auxpow: crate::auxpow::MiningParams {
            chain_id: config.auxpow.chain_id,
            pow_limit_bits: config.auxpow.pow_limit_bits,
            target_spacing_secs: config.auxpow.target_spacing_secs,
            split: crate::auxpow::RewardSplit {
                miner_percent: config.auxpow.miner_share_percent,
                federation: config.auxpow.federation_fee_address,
            },
        },
        runtime: runtime.clone(),
    };
    tracing::info!(target: "alys::node", chain_id = spec.chain_id(), genesis = %chain_config.genesis_hash,
        authorities = aura.authorities().len(), "starting node");
    let slot_ms = config.chain.slot_duration_ms;
    let (chain, chain_task) = actor::spawn(
        move || {
            ChainActor::new(
                chain_config.clone(),
                aura.clone(),
                key.clone(),
                engine.clone(),
                Arc::clone(&store),
            )
            .map_err(|e| actor::ActorError::new("chain", e))
        },
        256,
        RestartPolicy::default(),
    )?;
    let clock_task = tokio::spawn(run_slot_clock(chain.clone(), slot_ms));
    let status_task = governance.clone().map(|g| tokio::spawn(report_status(g, chain.clone())));
    let (pegouts, pegout_task) = match &config.pegout {
        Some(section) => {
            let source = burn_source(section, &config.engine)?;
            let ledger = Arc::new(
                crate::pegout::PegoutLedger::open(config.storage.data_dir.join("pegouts.redb"))
                    .map_err(|e| LaunchError::Pegout(e.to_string()))?,
            );
            let data_dir = config.storage.data_dir.clone();
            let (task_ledger, task_chain, task_runtime) =
                (Arc::clone(&ledger), chain.clone(), runtime.clone());
            let task = tokio::spawn(async move {
                crate::pegout::source::run(source, task_ledger, &data_dir, task_chain, task_runtime).await;
            });
            (Some(ledger), Some(task))
        }
        None => (None, None),
    };
    let rpc = rpc::start(config.rpc.listen, chain.clone(), admin_token, governance, pegouts, runtime).await?;
    Ok(NodeHandle { chain, rpc, chain_task, clock_task, governance_task, pegout_task, status_task })
}

fn burn_source(
    section: &crate::config::PegoutSection,
    engine: &crate::config::EngineSection,
) -> Result<crate::pegout::BurnSourceConfig, LaunchError> {
    use crate::pegout::BurnSourceConfig;
    match section.source.as_str() {
        "exex" => Ok(BurnSourceConfig::Exex {
            feed_url: section
                .feed_url
                .clone()
                .ok_or_else(|| LaunchError::Pegout("source \"exex\" needs feed_url".into()))?,
        }),
        "geth" => Ok(BurnSourceConfig::Geth {
            eth_rpc_url: engine
                .eth_rpc_url
                .clone()
                .ok_or_else(|| LaunchError::Pegout("source \"geth\" needs [engine].eth_rpc_url".into()))?,
            max_log_range: section.max_log_range,
            poll_interval: std::time::Duration::from_millis(section.poll_interval_ms),
        }),
        other => Err(LaunchError::Pegout(format!("unknown source {other:?}: use \"exex\" or \"geth\""))),
    }
}

fn start_governance(
    section: &crate::config::GovernanceSection,
    data_dir: &Path,
    parameters: crate::governance::RuntimeParameters,
) -> Result<(crate::governance::stream::StreamHandle, JoinHandle<()>), LaunchError> {
    use crate::governance::stream::{StreamConfig, StreamTls, spawn};
    let key_bytes = alloy_primitives::hex::decode(&section.governance_key)
        .map_err(|_| LaunchError::Governance("governance_key is not hex".into()))?;
    let key = bitcoin::secp256k1::PublicKey::from_slice(&key_bytes)
        .map_err(|_| LaunchError::Governance("governance_key is not a compressed secp256k1 key".into()))?;
    let network = match section.network.as_str() {
        "bitcoin" | "mainnet" => bitcoin::Network::Bitcoin,
        "testnet" => bitcoin::Network::Testnet,
        "signet" => bitcoin::Network::Signet,
        "regtest" => bitcoin::Network::Regtest,
        other => return Err(LaunchError::Governance(format!("unknown network {other:?}"))),
    };
    check_governance_url(&section.url)?;
    let mut stream = StreamConfig::new(section.url.clone(), key);
    stream.network = network;
    stream.parameters = parameters;
    stream.node_id = section.node_id.clone();
    stream.heartbeat = std::time::Duration::from_secs(section.heartbeat_secs.max(1));
    stream.heartbeat_timeout = stream.heartbeat * 3;
    stream.max_backoff = std::time::Duration::from_millis(section.max_backoff_ms.max(10));
    stream.signature_timeout = std::time::Duration::from_secs(section.signature_timeout_secs.max(1));
    if let Some(path) = &section.bearer_token_file {
        stream.bearer_token = Some(std::fs::read_to_string(path).map_err(io_err(path))?.trim().to_owned());
    }
    stream.tls = StreamTls {
        ca_pem: match &section.tls_ca_file {
            Some(path) => Some(std::fs::read(path).map_err(io_err(path))?),
            None => None,
        },
        domain: section.tls_domain.clone(),
    };
    spawn(stream, &data_dir.join("governance.redb")).map_err(|e| LaunchError::Governance(e.to_string()))
}

/// TLS is required except on loopback: the stream carries the federation's signatures and proposals.
fn check_governance_url(url: &str) -> Result<(), LaunchError> {
    let parsed: http::Uri =
        url.parse().map_err(|_| LaunchError::Governance(format!("url {url:?} is not a URL")))?;
    let host = parsed.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    match parsed.scheme_str() {
        Some("https") => Ok(()),
        Some("http") => {
            let loopback =
                host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err(LaunchError::Governance(format!(
                    "url {url:?}: plaintext is allowed on loopback only; use https:// (TLS)"
                )))
            }
        }
        _ => Err(LaunchError::Governance(format!("url {url:?}: use https:// (or http:// on loopback)"))),
    }
}

/// Tells governance how the node is doing, every 30 s while the node runs.
async fn report_status(
    governance: crate::governance::stream::StreamHandle,
    chain: actor::Handle<crate::chain::ChainMessage>,
) {
    use alys_proto::governance::v1::{NodeStatus, StatusUpdate, SyncStatus, stream_request::Payload};
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
    loop {
        tick.tick().await;
        let Ok(status) = chain.ask(crate::chain::ChainMessage::Status).await else { return };
        let (node, sync) = if !status.engine_online {
            (NodeStatus::Degraded, SyncStatus::Error)
        } else if status.production_stopped.is_some() {
            (NodeStatus::Degraded, SyncStatus::Stalled)
        } else {
            (NodeStatus::Active, SyncStatus::Synced)
        };
        let update = StatusUpdate {
            status: node as i32,
            block_height: status.head.height,
            sync_status: sync as i32,
            connection_count: 0,
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
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]
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
        assert!(error.contains("is not a URL"), "{error}");
    }
}
