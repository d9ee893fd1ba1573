//! `alys-reth`: reth's Ethereum node with the Alys burn-feed Execution Extension installed.
//!
//! It reads bridge burns from reth's committed and reverted chains, stores them with the ExEx's own
//! head, and serves them to the Alys sidecar over the `alys.burnfeed.v1` gRPC feed. All of reth's CLI is
//! unchanged; the `--alys.*` flags add the feed address, the store path and the bridge address.

mod adapter;

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use alloy_primitives::Address;
use alys_burns::BurnExtractor;
use alys_exex::BurnExEx;
use clap::Parser;
use reth_ethereum::{
    cli::{Cli, chainspec::EthereumChainSpecParser},
    node::EthereumNode,
};

/// The Alys flags beside reth's own.
#[derive(Debug, Clone, clap::Args)]
struct AlysArgs {
    /// Where the gRPC burn feed listens (the sidecar's `[pegout] feed_url`).
    #[arg(long = "alys.feed-addr", default_value = "127.0.0.1:50551")]
    feed_addr: SocketAddr,
    /// The ExEx's redb store; defaults to `alys-exex.redb` in reth's data directory.
    #[arg(long = "alys.store")]
    store: Option<PathBuf>,
    /// The bridge contract, if not the predeploy.
    #[arg(long = "alys.bridge", default_value_t = alys_contracts::BRIDGE_ADDRESS)]
    bridge: Address,
}

fn main() -> eyre::Result<()> {
    // reth's CLI sets up tracing, metrics and the runtime; the Alys flags ride along in `alys`.
    Cli::<EthereumChainSpecParser, AlysArgs>::parse().run(async move |builder, alys| {
        let store = alys
            .store
            .clone()
            .unwrap_or_else(|| builder.config().datadir().data_dir().join("alys-exex.redb"));
        let exex = Arc::new(
            BurnExEx::open(&store)?.with_extractor(BurnExtractor::new().with_bridge_address(alys.bridge)),
        );
        let listener = tokio::net::TcpListener::bind(alys.feed_addr).await?;
        let feed = exex.feed_server();
        tokio::spawn(async move {
            let _ = feed.serve(listener, futures::future::pending()).await;
        });
        let handle = builder
            .node(EthereumNode::default())
            .install_exex("alys-burns", async move |ctx| Ok(adapter::run(ctx, exex)))
            .launch()
            .await?;
        handle.wait_for_node_exit().await
    })
}
