//! `alys-reth`: reth's Ethereum node with the Alys burn-feed Execution Extension installed.
//!
//! It reads bridge burns from reth's committed and reverted chains, stores them with the ExEx's own
//! head, and serves them to the Alys sidecar over the `alys.burnfeed.v1` gRPC feed. All of reth's CLI is
//! unchanged; the `--alys.*` flags add the feed address, its token and TLS identity, the store path,
//! the feed's retention and the bridge address.
//!
//! Burns on the feed become payable peg-outs, so the feed follows the governance stream's rule: on
//! loopback it may be plaintext (a token is still advised), anywhere else it is served over TLS
//! (`--alys.feed-tls-cert`/`--alys.feed-tls-key`) and requires a bearer token
//! (`--alys.feed-token-file`), or `alys-reth` refuses to start.

mod adapter;

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use alloy_primitives::Address;
use alys_burns::{BearerToken, BurnExtractor};
use alys_exex::{BurnExEx, BurnStore, Retention};
use clap::Parser;
use eyre::WrapErr;
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
    /// A file holding the bearer token the feed requires (the sidecar's `[pegout] bearer_token_file`).
    #[arg(long = "alys.feed-token-file", value_name = "FILE")]
    feed_token_file: Option<PathBuf>,
    /// Serve the feed over TLS with this PEM certificate chain (needs `--alys.feed-tls-key`).
    #[arg(long = "alys.feed-tls-cert", value_name = "FILE", requires = "feed_tls_key")]
    feed_tls_cert: Option<PathBuf>,
    /// The PEM private key of `--alys.feed-tls-cert`.
    #[arg(long = "alys.feed-tls-key", value_name = "FILE", requires = "feed_tls_cert")]
    feed_tls_key: Option<PathBuf>,
    /// Most events of finalized blocks the feed keeps (events of unfinalized blocks are always kept);
    /// a consumer further behind is told to resynchronise.
    #[arg(long = "alys.feed-retain-events", default_value_t = Retention::DEFAULT_MAX_EVENTS)]
    feed_retain_events: u64,
}

impl AlysArgs {
    /// Refuses a feed reachable off loopback without TLS and a token.
    fn check_feed(&self) -> eyre::Result<()> {
        let tls = self.feed_tls_cert.is_some();
        let token = self.feed_token_file.is_some();
        eyre::ensure!(
            self.feed_addr.ip().is_loopback() || (tls && token),
            "--alys.feed-addr {} is not loopback: serve the burn feed over TLS (--alys.feed-tls-cert, \
             --alys.feed-tls-key) and require a token (--alys.feed-token-file); the sidecar refuses \
             plaintext off loopback",
            self.feed_addr
        );
        Ok(())
    }

    /// The feed server over `exex`, with this token and TLS identity.
    fn feed(&self, exex: &BurnExEx) -> eyre::Result<alys_exex::FeedServer> {
        let mut feed = exex.feed_server();
        match &self.feed_token_file {
            Some(path) => {
                let token = BearerToken::from_file(path)
                    .wrap_err_with(|| format!("--alys.feed-token-file {}", path.display()))?;
                feed = feed.with_bearer_token(token);
            }
            None => {
                tracing::warn!(target: "alys::burnfeed", "the burn feed requires no token (--alys.feed-token-file)")
            }
        }
        if let (Some(cert), Some(key)) = (&self.feed_tls_cert, &self.feed_tls_key) {
            let cert = std::fs::read(cert).wrap_err_with(|| format!("reading {}", cert.display()))?;
            let key = std::fs::read(key).wrap_err_with(|| format!("reading {}", key.display()))?;
            feed = feed.with_tls(cert, key);
        }
        Ok(feed)
    }
}

fn main() -> eyre::Result<()> {
    // reth's CLI sets up tracing, metrics and the runtime; the Alys flags ride along in `alys`.
    Cli::<EthereumChainSpecParser, AlysArgs>::parse().run(async move |builder, alys| {
        alys.check_feed()?;
        let store = alys
            .store
            .clone()
            .unwrap_or_else(|| builder.config().datadir().data_dir().join("alys-exex.redb"));
        let store =
            BurnStore::open(&store)?.with_retention(Retention { max_events: alys.feed_retain_events });
        let exex = Arc::new(
            BurnExEx::new(Arc::new(store))?
                .with_extractor(BurnExtractor::new().with_bridge_address(alys.bridge)),
        );
        let feed = alys.feed(&exex)?;
        let listener = tokio::net::TcpListener::bind(alys.feed_addr).await?;
        tokio::spawn(async move {
            if let Err(error) = feed.serve(listener, futures::future::pending()).await {
                tracing::error!(target: "alys::burnfeed", %error, "the burn feed stopped");
            }
        });
        let handle = builder
            .node(EthereumNode::default())
            .install_exex("alys-burns", async move |ctx| Ok(adapter::run(ctx, exex)))
            .launch()
            .await?;
        handle.wait_for_node_exit().await
    })
}
