//! The burn source task: feeds the ledger from the ExEx feed or the geth poller and releases burns as
//! the chain finalizes them.

use std::{sync::Arc, time::Duration};

use alys_burns::{BurnFeedClient, ClientError, FeedEvent, FeedEventKind};
use alys_governance::RuntimeView;
use alys_primitives::ChainHeads;
use alys_storage::{PegoutRead, Storage, StorageError};
use tokio::sync::watch;

use crate::{GethPoller, GethPollerError};

/// Where burns come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BurnSourceConfig {
    /// The Alys ExEx's gRPC burn feed (reth with `alys-reth`, or the devnet engine).
    Exex {
        /// The feed URL, e.g. `http://127.0.0.1:50551`.
        feed_url: String,
    },
    /// `eth_getLogs` polling of the execution client (geth).
    Geth {
        /// The execution client's eth JSON-RPC.
        eth_rpc_url: String,
        /// Most blocks per `eth_getLogs`.
        max_log_range: u64,
        /// Pause between polls.
        poll_interval: Duration,
    },
}

/// Why a step of the burn source failed (logged and retried: nothing is lost, nothing advanced).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The database failed; the step's transaction did not commit.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The burn feed failed in a way reconnecting cannot cure.
    #[error(transparent)]
    Feed(#[from] ClientError),
    /// The geth poller failed.
    #[error(transparent)]
    Geth(#[from] GethPollerError),
}

/// Runs the source until the chain stops publishing heads. Errors are logged and retried; nothing is
/// lost: a feed event and the cursor that announced it commit in one transaction (a failed write
/// rewinds the feed to the last committed cursor), and the geth height is stored in the same transaction
/// as the burns it covers.
///
/// While governance has peg-outs paused (an EMERGENCY_ACTION in force at the chain's head), final burns
/// stay pending in the ledger and are released, each once, after the resume.
pub async fn run(
    config: BurnSourceConfig,
    storage: Arc<Storage>,
    heads: watch::Receiver<ChainHeads>,
    runtime: RuntimeView,
) -> Result<(), SourceError> {
    match config {
        BurnSourceConfig::Exex { feed_url } => {
            let resume_after = storage.read()?.burn_cursor()?;
            let client = BurnFeedClient::new(feed_url, resume_after)?;
            run_exex(client, &storage, heads, &runtime).await;
            Ok(())
        }
        BurnSourceConfig::Geth { eth_rpc_url, max_log_range, poll_interval } => {
            let poller = GethPoller::new(&eth_rpc_url, max_log_range)?;
            loop {
                if heads.has_changed().is_err() {
                    return Ok(());
                }
                let head = heads.borrow().head.height;
                let paused = runtime.state_at(head).pegouts_paused;
                if let Err(error) = poll_geth(&poller, &storage, paused).await {
                    metrics::counter!("alys_pegout_errors_total").increment(1);
                    tracing::warn!(target: "alys::pegout", %error, "geth poll failed");
                }
                tokio::time::sleep(poll_interval).await;
            }
        }
    }
}

async fn poll_geth(poller: &GethPoller, storage: &Storage, paused: bool) -> Result<(), SourceError> {
    let Some(finalized) = poller.finalized().await? else { return Ok(()) };
    if !paused {
        // Burns held during a pause go out first, in order.
        let tx = storage.write()?;
        let held = tx.release_burns(finalized)?;
        tx.commit()?;
        if !held.is_empty() {
            metrics::counter!("alys_pegout_burns_released_total").increment(held.len() as u64);
            tracing::info!(target: "alys::pegout", count = held.len(), "held peg-outs released after the pause");
        }
    }
    let from = storage.read()?.geth_height()? + 1;
    if finalized < from {
        return Ok(());
    }
    let burns = poller.burns(from, finalized).await?;
    let tx = storage.write()?;
    let released = tx.ingest_final_burns(&burns, finalized, !paused)?;
    tx.commit()?;
    if !released.is_empty() {
        metrics::counter!("alys_pegout_burns_released_total").increment(released.len() as u64);
        tracing::info!(target: "alys::pegout", count = released.len(), finalized, "peg-outs final (geth path)");
    }
    Ok(())
}

/// Records one feed event and its cursor in one transaction.
fn record(storage: &Storage, event: &FeedEvent) -> Result<(), StorageError> {
    let tx = storage.write()?;
    match event.kind {
        FeedEventKind::Burn => tx.add_pending_burns(std::slice::from_ref(&event.burn))?,
        FeedEventKind::Retract => tx.retract_burns(std::slice::from_ref(&event.burn))?,
    }
    tx.set_burn_cursor(event.cursor)?;
    tx.commit()
}

fn release(storage: &Storage, finalized: u64) -> Result<usize, StorageError> {
    let tx = storage.write()?;
    let released = tx.release_burns(finalized)?;
    tx.commit()?;
    Ok(released.len())
}

async fn run_exex(
    mut client: BurnFeedClient,
    storage: &Storage,
    mut heads: watch::Receiver<ChainHeads>,
    runtime: &RuntimeView,
) {
    let mut committed = client.position();
    loop {
        tokio::select! {
            event = client.next() => {
                let event = match event {
                    Ok(event) => event,
                    Err(error) => {
                        metrics::counter!("alys_pegout_errors_total").increment(1);
                        tracing::warn!(target: "alys::pegout", %error, "burn feed error");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                match record(storage, &event) {
                    Ok(()) => committed = event.cursor,
                    Err(error) => {
                        // Nothing was written: have the feed deliver this event again.
                        metrics::counter!("alys_pegout_errors_total").increment(1);
                        tracing::error!(target: "alys::pegout", %error, cursor = event.cursor, "cannot record a burn; retrying");
                        client.rewind(committed);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            changed = heads.changed() => {
                if changed.is_err() {
                    return;
                }
                let heads = *heads.borrow_and_update();
                if runtime.state_at(heads.head.height).pegouts_paused {
                    metrics::gauge!("alys_pegout_paused").set(1.0);
                    continue;
                }
                metrics::gauge!("alys_pegout_paused").set(0.0);
                // Consensus height equals the execution block number.
                let finalized = heads.finalized.map_or(0, |f| f.height);
                match release(storage, finalized) {
                    Ok(0) => {}
                    Ok(count) => {
                        metrics::counter!("alys_pegout_burns_released_total").increment(count as u64);
                        tracing::info!(target: "alys::pegout", count, finalized, "peg-outs final");
                    }
                    Err(error) => tracing::error!(target: "alys::pegout", %error, "cannot release burns"),
                }
            }
        }
    }
}
