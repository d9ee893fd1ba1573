//! The Alys ExEx on the embedded engine: the same burn extraction, store and gRPC feed a reth node runs
//! with `alys-reth`, fed by the engine's reth-shaped chain notifications (its executed blocks are read in
//! place through `alys_burns::BlockLogs`).

use std::{net::SocketAddr, path::Path, sync::Arc};

use alloy_eips::{BlockId, BlockNumHash};
use alys_devnet_el::EngineHandle;
use alys_el_api::EthBackend;
use alys_exex::{BurnExEx, BurnStore};
use eyre::WrapErr;
use tokio::{net::TcpListener, sync::broadcast::error::RecvError, task::JoinHandle};

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

/// Opens the ExEx store at `store`, serves the feed on `feed_addr` and follows `engine`'s notifications.
///
/// Without a path the store lives in memory, as ephemeral as an engine without a data directory.
pub(crate) async fn start(
    engine: EngineHandle,
    store: Option<&Path>,
    feed_addr: SocketAddr,
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
    let feed = exex.feed_server();
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
    let mut notifications = engine.subscribe_notifications();
    let driver = tokio::spawn(async move {
        loop {
            let notification = match notifications.recv().await {
                Ok(n) => n,
                Err(RecvError::Lagged(missed)) => {
                    // reth would replay these from its WAL; the devnet engine's channel is sized so this
                    // does not happen in practice, and it is loud when it does.
                    tracing::error!(target: "alys::devnet", missed, "ExEx missed chain notifications");
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            // Blocks reverted, then blocks committed (a reorg has both), as reth's loop reads them.
            let reverted = notification.reverted_chain().map(|chain| chain.blocks()).unwrap_or_default();
            let committed = notification.committed_chain().map(|chain| chain.blocks()).unwrap_or_default();
            let update = exex.update(reverted, committed);
            match exex.handle_update(update).await {
                Ok(processed) => tracing::debug!(target: "alys::devnet", ?processed, "ExEx processed"),
                Err(error) => {
                    tracing::error!(target: "alys::devnet", %error, "ExEx failed to store a notification");
                    continue;
                }
            }
            // FinishedHeight follows the finalized block the consensus layer set on the engine.
            if let Ok(Some(block)) = engine.block(BlockId::finalized(), false).await {
                let finalized = BlockNumHash { number: block.header.number, hash: block.header.hash };
                if let Err(error) = exex.set_finalized(finalized) {
                    tracing::warn!(target: "alys::devnet", %error, "ExEx could not record finality");
                }
            }
        }
    });
    Ok(ExExTasks { feed_addr, driver, server, stop })
}
