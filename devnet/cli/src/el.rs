//! `alys-devnet el`: the embedded execution engine as a standalone process.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use alys_burns::BearerToken;
use alys_chainspec::ChainSpec;
use alys_devnet_el::{Engine, EngineConfig};
use alys_engine_api::{EngineApiConfig, EngineApiServer};
use alys_eth_rpc::EthRpcConfig;
use clap::Args;
use eyre::WrapErr;

/// Flags named as reth's and geth's are, so scripts carry over.
#[derive(Debug, Args)]
pub(crate) struct ElArgs {
    /// Genesis file (reth's `--chain`, geth's `init`).
    #[arg(long, value_name = "FILE", default_value = "etc/genesis/devnet.json")]
    chain: PathBuf,
    /// Data directory; without it the chain lives in memory and is gone on exit.
    #[arg(long, value_name = "DIR")]
    datadir: Option<PathBuf>,
    /// Engine API listen address.
    #[arg(long = "authrpc.addr", default_value = "127.0.0.1:8551")]
    authrpc_addr: SocketAddr,
    /// Engine API JWT secret: a file of 64 hex characters.
    #[arg(long = "authrpc.jwtsecret", value_name = "FILE", default_value = "etc/jwt/jwt.hex")]
    jwt_secret: PathBuf,
    /// eth JSON-RPC over HTTP listen address.
    #[arg(long = "http.addr", default_value = "127.0.0.1:8545")]
    http_addr: SocketAddr,
    /// eth JSON-RPC over WebSocket listen address.
    #[arg(long = "ws.addr", default_value = "127.0.0.1:8546")]
    ws_addr: SocketAddr,
    /// gRPC burn feed of the ExEx, as `alys-reth` serves it (plaintext: the node connects on loopback
    /// only).
    #[arg(long = "feed.addr", default_value = "127.0.0.1:50551")]
    feed_addr: SocketAddr,
    /// The bearer token the burn feed requires (`alys-reth --alys.feed-token-file`); the node sends it
    /// from `[pegout] bearer_token_file`.
    #[arg(long = "feed.token-file", value_name = "FILE", default_value = "etc/keys/devnet-feed.token")]
    feed_token_file: PathBuf,
    /// Capacity of the engine's chain-notification channel (tests shrink it to make the ExEx miss
    /// notifications and catch up).
    #[arg(long = "engine.notification-capacity", hide = true, default_value_t = 1024)]
    notification_capacity: usize,
}

pub(crate) async fn run(args: ElArgs) -> eyre::Result<()> {
    let spec = Arc::new(
        ChainSpec::from_file(&args.chain).wrap_err_with(|| format!("loading {}", args.chain.display()))?,
    );
    let mut config = EngineConfig::new(Arc::clone(&spec));
    config.notification_capacity = args.notification_capacity;
    if let Some(datadir) = &args.datadir {
        config = config.with_datadir(datadir);
    }
    let engine = Engine::spawn(config).wrap_err("starting the execution engine")?;
    // Without a data directory the ExEx store is as ephemeral as the chain: in memory.
    let exex_store = match &args.datadir {
        Some(dir) => {
            std::fs::create_dir_all(dir).wrap_err_with(|| format!("creating {}", dir.display()))?;
            Some(dir.join("exex.redb"))
        }
        None => None,
    };
    let token = BearerToken::from_file(&args.feed_token_file).wrap_err_with(|| {
        format!("the burn feed's token (--feed.token-file {})", args.feed_token_file.display())
    })?;
    if !args.feed_addr.ip().is_loopback() {
        tracing::warn!(target: "alys::devnet", addr = %args.feed_addr, "the burn feed is plaintext: nodes connect to it on loopback only");
    }
    let exex = crate::exex::start(engine.clone(), exex_store.as_deref(), args.feed_addr, Some(token)).await?;

    let mut engine_api = EngineApiConfig::from_secret_file(&args.jwt_secret)
        .wrap_err_with(|| format!("reading JWT secret {}", args.jwt_secret.display()))?;
    engine_api.addr = args.authrpc_addr;
    let engine_api = EngineApiServer::new(engine.clone(), engine_api).start().await?;

    let eth_config =
        EthRpcConfig { http_addr: Some(args.http_addr), ws_addr: Some(args.ws_addr), ..Default::default() };
    let eth = alys_eth_rpc::start(engine.clone(), eth_config).await?;

    // One machine-readable line on stdout so scripts and tests can find ports chosen with `:0`.
    let ready = serde_json::json!({
        "event": "ready",
        "chainId": spec.chain_id(),
        "genesisHash": engine.genesis_hash(),
        "authrpc": engine_api.http_url(),
        "http": eth.http_url(),
        "ws": eth.ws_url(),
        "burnFeed": format!("http://{}", exex.feed_addr),
    });
    println!("{ready}");
    tracing::info!(target: "alys::devnet", chain_id = spec.chain_id(), genesis = %engine.genesis_hash(),
        authrpc = %engine_api.http_url(), http = ?eth.http_url(), ws = ?eth.ws_url(), "execution engine ready");

    alys_node::shutdown_signal().await;
    tracing::info!(target: "alys::devnet", "shutting down");
    eth.stop();
    engine_api.stop();
    eth.stopped().await;
    engine_api.stopped().await;
    exex.stop().await;
    Ok(())
}
