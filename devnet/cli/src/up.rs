//! `alys-devnet` (no subcommand): a complete local network in one process.
//!
//! With `--authorities N` (N ≥ 2) or `--full-nodes M` it runs a federation of node processes instead
//! (`federation.rs`, chosen by `main`). Otherwise it starts the embedded execution engine (Engine API + eth JSON-RPC, persisted under the data
//! directory) and one Alys authority node driving it, with the public devnet key, genesis and JWT from
//! `etc/`. Stop it with Ctrl-C; start it again and the chain continues from where it stopped.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use alys_chainspec::{ChainSpec, dev::DEV_ACCOUNTS};
use alys_devnet_el::{Engine, EngineConfig};
use alys_engine_api::{EngineApiConfig, EngineApiServer};
use alys_eth_rpc::EthRpcConfig;
use alys_node::{
    self as node,
    config::{
        AuthoritySection, AuxPowSection, BitcoinSection, ChainSection, EngineSection, GovernanceSection,
        MetricsSection, NodeConfig, PegoutSection, RpcSection, StorageSection,
    },
};
use alys_primitives::AuthorityKey;
use clap::Args;
use eyre::WrapErr;

/// Where the network lives and listens.
#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// Data directory of the network (execution chain and sidecar store).
    #[arg(long, default_value = "data/devnet")]
    pub(crate) datadir: PathBuf,
    /// Delete the data directory first and start a new chain.
    #[arg(long)]
    pub(crate) fresh: bool,
    /// Directory holding the genesis, JWT and devnet key files.
    #[arg(long, default_value = "etc")]
    pub(crate) etc: PathBuf,
    /// Aura slot length in milliseconds (at least 100: the execution client needs time to build).
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub(crate) slot_ms: u64,
    /// eth JSON-RPC over HTTP.
    #[arg(long = "http.addr", default_value = "127.0.0.1:8545")]
    pub(crate) http_addr: SocketAddr,
    /// eth JSON-RPC over WebSocket.
    #[arg(long = "ws.addr", default_value = "127.0.0.1:8546")]
    pub(crate) ws_addr: SocketAddr,
    /// Engine API.
    #[arg(long = "authrpc.addr", default_value = "127.0.0.1:8551")]
    pub(crate) authrpc_addr: SocketAddr,
    /// Alys RPC (mining, alys_*, admin).
    #[arg(long = "rpc.addr", default_value = "127.0.0.1:3000")]
    pub(crate) rpc_addr: SocketAddr,
    /// gRPC burn feed of the ExEx (what `alys-reth` serves).
    #[arg(long = "feed.addr", default_value = "127.0.0.1:50551")]
    pub(crate) feed_addr: SocketAddr,
    /// The devnet governance service (federation keys, signing).
    #[arg(long = "governance.addr", default_value = "127.0.0.1:50061")]
    pub(crate) governance_addr: SocketAddr,
    /// The devnet governance service's admin JSON-RPC (rotate the federation, issue proposals).
    #[arg(long = "governance.admin-addr", default_value = "127.0.0.1:50062")]
    pub(crate) governance_admin_addr: SocketAddr,
    /// Do not run the embedded reference miner (blocks then stop finalizing).
    #[arg(long)]
    pub(crate) no_miner: bool,
    /// Prometheus metrics.
    #[arg(long = "metrics.addr", default_value = "127.0.0.1:9101")]
    pub(crate) metrics_addr: SocketAddr,
    /// The Bitcoin regtest node's JSON-RPC (bitcoind's `-rpcport`; cookie in `<datadir>/bitcoin/.cookie`).
    #[arg(long = "bitcoin.addr", default_value = "127.0.0.1:18443")]
    pub(crate) bitcoin_addr: SocketAddr,
    /// Seconds between the Bitcoin blocks the devnet mines (0: mine only on request, `generatetoaddress`).
    #[arg(long = "bitcoin.block-secs", default_value_t = 5)]
    pub(crate) bitcoin_block_secs: u64,
    /// Bitcoin confirmations a deposit needs before it is minted (governance may change it later).
    #[arg(long = "pegin.confirmations", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) pegin_confirmations: u32,
    /// Bitcoin confirmations after which a peg-out is done (governance may change it later).
    #[arg(long = "pegout.confirmations", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) pegout_confirmations: u32,
    /// The fee rate peg-out transactions are built at, sat/vB (governance may change it later).
    #[arg(long = "pegout.fee-rate", default_value_t = 2)]
    pub(crate) pegout_fee_rate: u64,
    /// Authorities of the network. 1 runs everything in this one process; 2 or more run each node and
    /// its execution engine as processes of their own (keys `etc/keys/devnet-authority[-i].key`), with
    /// node i's ports at the base ports above plus i (plus 10·i for the engine's).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) authorities: u32,
    /// Full (non-authority) nodes beside the authorities; giving it selects the multi-process mode even
    /// with one authority (default there: 1).
    #[arg(long = "full-nodes")]
    pub(crate) full_nodes: Option<u32>,
    /// Base address of node 0's peer-to-peer listener; node i listens on its port + i (multi-process
    /// mode only).
    #[arg(long = "p2p.addr", default_value = "127.0.0.1:30333")]
    pub(crate) p2p_addr: SocketAddr,
    /// Added to every port above that is not 0 (to run several devnets side by side).
    #[arg(long = "ports.offset", default_value_t = 0)]
    pub(crate) ports_offset: u16,
}

impl UpArgs {
    /// Whether the network runs as a federation of processes.
    pub(crate) fn is_federation(&self) -> bool {
        self.authorities > 1 || self.full_nodes.is_some()
    }

    /// Adds `--ports.offset` to every address whose port is not 0.
    pub(crate) fn with_port_offset(mut self) -> eyre::Result<Self> {
        let offset = self.ports_offset;
        for addr in [
            &mut self.http_addr,
            &mut self.ws_addr,
            &mut self.authrpc_addr,
            &mut self.rpc_addr,
            &mut self.feed_addr,
            &mut self.governance_addr,
            &mut self.governance_admin_addr,
            &mut self.metrics_addr,
            &mut self.bitcoin_addr,
            &mut self.p2p_addr,
        ] {
            *addr = offset_addr(*addr, offset)?;
        }
        self.ports_offset = 0;
        Ok(self)
    }
}

/// `addr` with `offset` added to its port, unless the port is 0 (any).
pub(crate) fn offset_addr(mut addr: SocketAddr, offset: u16) -> eyre::Result<SocketAddr> {
    if addr.port() != 0 {
        let port = addr
            .port()
            .checked_add(offset)
            .ok_or_else(|| eyre::eyre!("port {} + offset {offset} is past 65535", addr.port()))?;
        addr.set_port(port);
    }
    Ok(addr)
}

pub(crate) async fn run(args: UpArgs) -> eyre::Result<()> {
    let args = args.with_port_offset()?;
    if args.fresh && args.datadir.exists() {
        std::fs::remove_dir_all(&args.datadir)
            .wrap_err_with(|| format!("removing {}", args.datadir.display()))?;
    }
    let genesis = args.etc.join("genesis/devnet.json");
    let jwt = args.etc.join("jwt/jwt.hex");
    // The devnet key is public and committed (mode 0644 after a checkout); the node loads private keys
    // only, so the devnet runs a private copy in its data directory.
    let key_file = install_devnet_key(&args.etc.join("keys/devnet-authority.key"), &args.datadir)?;
    let spec =
        Arc::new(ChainSpec::from_file(&genesis).wrap_err_with(|| format!("loading {}", genesis.display()))?);
    node::install_metrics(args.metrics_addr)?;
    alys_exex::metrics::describe();
    alys_engine_api::describe_metrics();

    let engine = Engine::spawn(EngineConfig::new(Arc::clone(&spec)).with_datadir(args.datadir.join("el")))
        .wrap_err("starting the execution engine")?;
    std::fs::create_dir_all(&args.datadir)
        .wrap_err_with(|| format!("creating {}", args.datadir.display()))?;
    let feed_token_file = args.etc.join("keys/devnet-feed.token");
    let feed_token = alys_burns::BearerToken::from_file(&feed_token_file)
        .wrap_err_with(|| format!("the burn feed's token ({})", feed_token_file.display()))?;
    let exex = crate::exex::start(
        engine.clone(),
        Some(&args.datadir.join("exex.redb")),
        args.feed_addr,
        Some(feed_token),
    )
    .await?;
    let mut engine_api = EngineApiConfig::from_secret_file(&jwt).wrap_err("reading the JWT secret")?;
    engine_api.addr = args.authrpc_addr;
    let engine_api = EngineApiServer::new(engine.clone(), engine_api).start().await?;
    let eth = alys_eth_rpc::start(
        engine.clone(),
        EthRpcConfig { http_addr: Some(args.http_addr), ws_addr: Some(args.ws_addr), ..Default::default() },
    )
    .await?;

    // The devnet governance service: a 2-of-3 software federation with public devnet keys, requiring
    // the devnet bearer token like a real service would, and its admin RPC (rotation, proposals).
    let governance =
        crate::governance::Embedded::start(args.governance_addr, args.governance_admin_addr).await?;
    let governance_addr = governance.addr;

    let authority = AuthorityKey::from_file(&key_file)?;
    // The Bitcoin node first, like the execution engine: infrastructure the node runs beside.
    let (bitcoin, bitcoin_miner) = crate::bitcoin::start(
        &args.datadir.join("bitcoin"),
        args.bitcoin_addr,
        std::time::Duration::from_secs(args.bitcoin_block_secs),
    )
    .await?;
    let bitcoin_cookie = bitcoin.cookie_path().map(|p| p.display().to_string()).unwrap_or_default();
    let config = NodeConfig {
        chain: ChainSection {
            genesis,
            slot_duration: std::time::Duration::from_millis(args.slot_ms),
            future_tolerance: std::time::Duration::from_millis(500),
            authorities: vec![authority.public().to_string()],
            fee_recipient: Default::default(),
        },
        authority: Some(AuthoritySection { key_file }),
        storage: StorageSection { data_dir: args.datadir.join("sidecar") },
        engine: EngineSection { url: engine_api.http_url(), jwt_secret: jwt, eth_rpc_url: eth.http_url() },
        rpc: RpcSection {
            listen: args.rpc_addr,
            admin_token_file: Some(args.etc.join("keys/devnet-admin.token")),
            dashboard: true,
        },
        metrics: MetricsSection { listen: None },
        governance: Some(GovernanceSection {
            bearer_token_file: Some(args.etc.join("keys/devnet-governance.token")),
            ..GovernanceSection::new(format!("http://{governance_addr}"), governance.key_hex.clone())
        }),
        // Devnet proofs come from the embedded miner: aim for one every 10 s. The pow limit lets any CPU
        // mine, so a fresh devnet starts some 2^22 times too easy for one core; a half-life of 10
        // spacings (the short end of what keeps the target steady, about ±20 % at equilibrium) brings
        // it to the core's hash rate in ten to fifteen minutes of proofs every slot.
        auxpow: AuxPowSection {
            target_spacing: std::time::Duration::from_secs(10),
            target_half_life: std::time::Duration::from_secs(100),
            federation_fee_address: alys_chainspec::dev::DEVNET_FEDERATION_FEES,
            ..Default::default()
        },
        // Peg-outs come from the ExEx feed the devnet engine serves, as with reth.
        pegout: Some(PegoutSection::Exex {
            feed_url: format!("http://{}", exex.feed_addr),
            bearer_token_file: Some(feed_token_file),
            tls_ca_file: None,
            tls_domain: None,
        }),
        // The devnet's Bitcoin node from its first block, one confirmation, as a regtest user expects.
        bitcoin: Some(BitcoinSection {
            start_height: Some(0),
            pegin_confirmations: args.pegin_confirmations,
            pegout_confirmations: args.pegout_confirmations,
            pegout_fee_rate_sat_vb: args.pegout_fee_rate.max(1),
            poll_interval: std::time::Duration::from_millis(250),
            ..BitcoinSection::with_cookie(bitcoin.url(), bitcoin_cookie.clone())
        }),
        network: None,
    };
    let node = node::launch(config).await?;

    let ready = serde_json::json!({
        "event": "ready",
        "chainId": spec.chain_id(),
        "genesisHash": engine.genesis_hash(),
        "http": eth.http_url(),
        "ws": eth.ws_url(),
        "authrpc": engine_api.http_url(),
        "rpc": format!("http://{}", node.rpc.local_addr()),
        "dashboard": dashboard_url(&node.rpc),
        "metrics": format!("http://{}/metrics", args.metrics_addr),
        "burnFeed": format!("http://{}", exex.feed_addr),
        "minerPayout": DEV_ACCOUNTS[1],
        "federationFees": alys_chainspec::dev::DEVNET_FEDERATION_FEES,
        "governance": format!("http://{governance_addr}"),
        "governanceAdmin": format!("http://{}", governance.admin.addr),
        "bitcoinRpc": bitcoin.url(),
        "bitcoinCookie": bitcoin_cookie,
    });
    println!("{ready}");
    eprintln!(
        "\nAlys devnet is up (chain id {chain_id}).\n\
         \x20 eth JSON-RPC      {http}\n\
         \x20 WebSocket         {ws}\n\
         \x20 Alys RPC          http://{rpc} (alys_*, getheadblock, …)\n\
         \x20 dashboard         {dashboard}\n\
         \x20 mining RPC        http://{rpc} (createauxblock, submitauxblock; the built-in miner pays {payout})\n\
         \x20 Engine API        {authrpc} (JWT etc/jwt/jwt.hex)\n\
         \x20 burn feed         http://{feed} (gRPC alys.burnfeed.v1, token etc/keys/devnet-feed.token)\n\
         \x20 metrics           http://{metrics}/metrics\n\
         \x20 governance        http://{governance} (admin JSON-RPC http://{admin})\n\
         \x20 Bitcoin regtest   {bitcoin} (bitcoind JSON-RPC, cookie {cookie})\n\
         \x20 funded dev account 0: {account} (key in chainspec/src/dev.rs; public, devnet only)\n\
         \x20 the JSON line above has every endpoint; block lines below show execution blocks as they land\n",
        chain_id = spec.chain_id(),
        http = eth.http_url().unwrap_or_default(),
        ws = eth.ws_url().unwrap_or_default(),
        rpc = node.rpc.local_addr(),
        dashboard = dashboard_url(&node.rpc),
        payout = DEV_ACCOUNTS[1],
        authrpc = engine_api.http_url(),
        feed = exex.feed_addr,
        metrics = args.metrics_addr,
        governance = governance_addr,
        admin = governance.admin.addr,
        bitcoin = bitcoin.url(),
        cookie = bitcoin_cookie,
        account = DEV_ACCOUNTS[0],
    );

    let feed = tokio::spawn(show_blocks(engine.subscribe_notifications(), node.heads.clone()));
    // The reference miner talks to the node's RPC like any pool; it pays dev account 1. It grinds on a
    // blocking thread and looks for new work every 250 ms.
    let miner = (!args.no_miner).then(|| {
        tokio::spawn(alys_miner::run(
            format!("http://{}", node.rpc.local_addr()),
            DEV_ACCOUNTS[1],
            alys_miner::DEFAULT_POLL,
        ))
    });
    alys_node::shutdown_signal().await;
    feed.abort();
    if let Some(miner) = miner {
        miner.abort();
    }
    tracing::info!(target: "alys::devnet", "shutting down");
    node.shutdown().await;
    eth.stop();
    engine_api.stop();
    eth.stopped().await;
    engine_api.stopped().await;
    exex.stop().await;
    if let Some(miner) = bitcoin_miner {
        miner.abort();
    }
    bitcoin.stop().await;
    governance.stop();
    Ok(())
}

/// Copies the public devnet authority key into `datadir` as a private key file (once).
pub(crate) fn install_devnet_key(
    public_key_file: &std::path::Path,
    datadir: &std::path::Path,
) -> eyre::Result<PathBuf> {
    let installed = datadir.join("authority.key");
    if !installed.exists() {
        std::fs::create_dir_all(datadir).wrap_err_with(|| format!("creating {}", datadir.display()))?;
        let text = std::fs::read_to_string(public_key_file)
            .wrap_err_with(|| format!("reading {}", public_key_file.display()))?;
        let key = AuthorityKey::from_hex(text.trim())
            .wrap_err_with(|| format!("{} is not a key", public_key_file.display()))?;
        key.write_file(&installed)?;
    }
    Ok(installed)
}

/// Prints each canonical execution block as it lands, one line each, for a person watching the
/// terminal, with the consensus chain's finalized height beside it.
async fn show_blocks(
    mut notifications: tokio::sync::broadcast::Receiver<alys_el_api::ChainNotification>,
    heads: tokio::sync::watch::Receiver<alys_primitives::ChainHeads>,
) {
    use alys_el_api::ChainNotification;
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let notification = match notifications.recv().await {
            Ok(n) => n,
            Err(RecvError::Lagged(missed)) => {
                eprintln!("  … {missed} notifications skipped");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        if let Some(old) = notification.reverted_chain() {
            eprintln!("  reorg: {} block(s) reverted", old.len());
        }
        if let ChainNotification::Committed { new } | ChainNotification::Reorged { new, .. } = &notification {
            for block in new.blocks() {
                let header = &block.block.header;
                let finalized = heads.borrow().finalized.map_or(0, |f| f.height);
                eprintln!(
                    "  block {:>6}  execution {}  {:>3} tx  {:>10} gas  base fee {}  finalized {}",
                    header.number,
                    block.hash,
                    block.block.body.transactions.len(),
                    header.gas_used,
                    format_wei(header.base_fee_per_gas.unwrap_or_default()),
                    finalized,
                );
            }
        }
    }
}

/// A fee per gas for a person: gwei with three decimals from 1 Mwei up, wei below (a devnet's base fee
/// decays to a few wei when blocks are empty, which `0.000 gwei` hid).
fn format_wei(wei: u64) -> String {
    if wei >= 1_000_000 { format!("{:.3} gwei", wei as f64 / 1e9) } else { format!("{wei} wei") }
}

/// The node's dashboard URL (empty when `[rpc] dashboard` is off). On regtest the page links no explorer.
pub(crate) fn dashboard_url(rpc: &alys_node::rpc::RpcHandle) -> String {
    rpc.dashboard_url().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::format_wei;

    #[test]
    fn small_base_fees_are_readable() {
        assert_eq!(format_wei(7), "7 wei");
        assert_eq!(format_wei(999_999), "999999 wei");
        assert_eq!(format_wei(1_000_000), "0.001 gwei");
        assert_eq!(format_wei(1_000_000_000), "1.000 gwei");
    }
}
