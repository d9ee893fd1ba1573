//! The Alys ExEx on the embedded engine: the same burn extraction, store and gRPC feed a reth node runs
//! with `alys-reth`, fed by the engine's reth-shaped chain notifications (its executed blocks are read in
//! place through `alys_burns::BlockLogs`).
//!
//! reth replays notifications an ExEx missed from its write-ahead log; the engine's notification channel
//! drops what a slow receiver missed (`Lagged`) and holds nothing across a restart. So the ExEx catches
//! up from its own stored head instead (`alys_exex::BurnExEx::catch_up`, reading the engine's canonical
//! blocks by number): when it starts, after a `Lagged`, and after a failed write. No burn is lost.
//!
//! The feed requires the bearer token it is given (the devnet's is `etc/keys/devnet-feed.token`) and
//! listens on loopback in plaintext, as the node accepts only there.

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use alloy_eips::{BlockId, BlockNumHash};
use alys_burns::BearerToken;
use alys_devnet_el::{EngineGone, EngineHandle};
use alys_el_api::{EthBackend, ExecutedBlock};
use alys_exex::{BurnExEx, BurnStore, CanonicalChain};
use eyre::WrapErr;
use tokio::{net::TcpListener, sync::broadcast::error::RecvError, task::JoinHandle};

/// Blocks applied per transaction while catching up.
const CATCH_UP_BATCH: usize = 64;
/// Wait before catching up again after a failure.
const RETRY_WAIT: Duration = Duration::from_secs(1);

/// The running ExEx: its notification loop and its feed server.
#[derive(Debug)]
pub(crate) struct ExExTasks {
    /// Where the burn feed listens.
    pub(crate) feed_addr: SocketAddr,
    driver: JoinHandle<()>,
    server: JoinHandle<()>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl ExExTasks {
    /// Stops the notification loop and the feed server.
    pub(crate) async fn stop(self) {
        self.driver.abort();
        let _ = self.stop.send(());
        let _ = self.server.await;
    }
}

/// The engine's canonical chain, read block by block for catch-ups.
#[derive(Debug, Clone)]
struct EngineChain(EngineHandle);

impl CanonicalChain for EngineChain {
    type Block = Arc<ExecutedBlock>;
    type Error = EngineGone;

    async fn head_number(&self) -> Result<u64, EngineGone> {
        Ok(self.0.head().await?.1)
    }

    async fn block(&self, number: u64) -> Result<Option<Arc<ExecutedBlock>>, EngineGone> {
        self.0.canonical_block(number).await
    }
}

/// Opens the ExEx store at `store`, serves the feed on `feed_addr` (requiring `token` when given) and
/// follows `engine`'s notifications.
///
/// Without a path the store lives in memory, as ephemeral as an engine without a data directory.
pub(crate) async fn start(
    engine: EngineHandle,
    store: Option<&Path>,
    feed_addr: SocketAddr,
    token: Option<BearerToken>,
) -> eyre::Result<ExExTasks> {
    let store = match store {
        Some(path) => BurnStore::open(path).wrap_err_with(|| format!("opening {}", path.display()))?,
        None => BurnStore::in_memory().wrap_err("creating the in-memory ExEx store")?,
    };
    let exex = Arc::new(BurnExEx::new(Arc::new(store)).wrap_err("opening the ExEx store")?);
    let listener =
        TcpListener::bind(feed_addr).await.wrap_err_with(|| format!("binding burn feed {feed_addr}"))?;
    let feed_addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut feed = exex.feed_server();
    if let Some(token) = token {
        feed = feed.with_bearer_token(token);
    }
    let server = tokio::spawn(async move {
        if let Err(error) = feed
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
        {
            tracing::error!(target: "alys::devnet", %error, "burn feed server failed");
        }
    });
    let driver = tokio::spawn(follow(engine, exex));
    Ok(ExExTasks { feed_addr, driver, server, stop })
}

/// The notification loop: blocks reverted, then blocks committed (a reorg has both), as reth's loop
/// reads them; a catch-up from the stored head whenever notifications may have been missed.
async fn follow(engine: EngineHandle, exex: Arc<BurnExEx>) {
    let chain = EngineChain(engine.clone());
    let mut notifications = engine.subscribe_notifications();
    // Blocks the engine executed while no ExEx ran are caught up first.
    let mut behind = true;
    loop {
        if behind {
            // Subscribed before reading: what the catch-up and the new receiver both deliver is a replay.
            notifications = engine.subscribe_notifications();
            match exex.catch_up(&chain, CATCH_UP_BATCH).await {
                Ok(caught) => {
                    behind = !caught.complete;
                    report_finality(&engine, &exex).await;
                }
                Err(error) => {
                    tracing::error!(target: "alys::devnet", %error, "ExEx catch-up failed; retrying");
                    tokio::time::sleep(RETRY_WAIT).await;
                }
            }
            continue;
        }
        let notification = match notifications.recv().await {
            Ok(n) => n,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(target: "alys::devnet", missed, "ExEx missed chain notifications; catching up from its stored head");
                behind = true;
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        // Tests slow this loop down until notifications are missed:
        // `FAILPOINTS=devnet::exex::notification=return(<milliseconds>)`.
        if let Some(ms) = fail::eval("devnet::exex::notification", |ms| ms?.parse::<u64>().ok()).flatten() {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let reverted = notification.reverted_chain().map(|chain| chain.blocks()).unwrap_or_default();
        let committed = notification.committed_chain().map(|chain| chain.blocks()).unwrap_or_default();
        let update = exex.update(reverted, committed);
        match exex.handle_update(update).await {
            Ok(processed) => tracing::debug!(target: "alys::devnet", ?processed, "ExEx processed"),
            Err(error) => {
                // Not stored: read it again from the engine rather than lose its burns.
                tracing::error!(target: "alys::devnet", %error, "ExEx failed to store a notification; catching up");
                behind = true;
                tokio::time::sleep(RETRY_WAIT).await;
                continue;
            }
        }
        report_finality(&engine, &exex).await;
    }
}

/// FinishedHeight follows the finalized block the consensus layer set on the engine.
async fn report_finality(engine: &EngineHandle, exex: &BurnExEx) {
    if let Ok(Some(block)) = engine.block(BlockId::finalized(), false).await {
        let finalized = BlockNumHash { number: block.header.number, hash: block.header.hash };
        if let Err(error) = exex.set_finalized(finalized) {
            tracing::warn!(target: "alys::devnet", %error, "ExEx could not record finality");
        }
    }
}
