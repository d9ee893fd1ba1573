//! The burn source task: feeds the ledger from the ExEx feed or the geth poller and releases burns as
//! the chain finalizes them.

use std::{path::Path, sync::Arc, time::Duration};

use alys_exex::{BurnFeedClient, FeedEventKind, FileCursorStore};

use super::{GethPoller, PegoutLedger};
use crate::{actor::Handle, chain::ChainMessage, governance::RuntimeView};

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

/// Runs the source until the chain actor stops. Errors are logged and retried; nothing is lost because
/// the feed cursor is acknowledged only after the ledger committed, and the geth height is stored in
/// the same transaction as the burns it covers.
///
/// While governance has peg-outs paused (an EMERGENCY_ACTION in force at the chain's head), final burns
/// stay pending in the ledger and are released, each once, after the resume.
pub async fn run(
    config: BurnSourceConfig,
    ledger: Arc<PegoutLedger>,
    data_dir: &Path,
    chain: Handle<ChainMessage>,
    runtime: RuntimeView,
) {
    match config {
        BurnSourceConfig::Exex { feed_url } => {
            let client =
                match BurnFeedClient::new(feed_url, FileCursorStore::new(data_dir.join("burnfeed.cursor"))) {
                    Ok(c) => c,
                    Err(error) => {
                        tracing::error!(target: "alys::pegout", %error, "cannot start the burn feed client");
                        return;
                    }
                };
            run_exex(client, ledger, chain, runtime).await;
        }
        BurnSourceConfig::Geth { eth_rpc_url, max_log_range, poll_interval } => {
            let poller = match GethPoller::new(&eth_rpc_url, max_log_range) {
                Ok(p) => p,
                Err(error) => {
                    tracing::error!(target: "alys::pegout", %error, "cannot start the geth poller");
                    return;
                }
            };
            loop {
                let Ok(status) = chain.ask(ChainMessage::Status).await else { return };
                let paused = runtime.state_at(status.head.height).pegouts_paused;
                if let Err(error) = poll_geth(&poller, &ledger, paused).await {
                    metrics::counter!("alys_pegout_errors_total").increment(1);
                    tracing::warn!(target: "alys::pegout", %error, "geth poll failed");
                }
                if chain.is_closed() {
                    return;
                }
                tokio::time::sleep(poll_interval).await;
            }
        }
    }
}

async fn poll_geth(poller: &GethPoller, ledger: &PegoutLedger, paused: bool) -> Result<(), String> {
    let Some(finalized) = poller.finalized().await.map_err(|e| e.to_string())? else { return Ok(()) };
    if !paused {
        // Burns held during a pause go out first, in order.
        let held = ledger.release(finalized).map_err(|e| e.to_string())?;
        if !held.is_empty() {
            tracing::info!(target: "alys::pegout", count = held.len(), "held peg-outs released after the pause");
        }
    }
    let from = ledger.geth_height().map_err(|e| e.to_string())? + 1;
    if finalized < from {
        return Ok(());
    }
    let burns = poller.burns(from, finalized).await.map_err(|e| e.to_string())?;
    let released = ledger.ingest_finalized(&burns, finalized, !paused).map_err(|e| e.to_string())?;
    if !released.is_empty() {
        tracing::info!(target: "alys::pegout", count = released.len(), finalized, "peg-outs final (geth path)");
    }
    Ok(())
}

async fn run_exex(
    mut client: BurnFeedClient<FileCursorStore>,
    ledger: Arc<PegoutLedger>,
    chain: Handle<ChainMessage>,
    runtime: RuntimeView,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
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
                let stored = match event.kind {
                    FeedEventKind::Burn => ledger.add_pending(std::slice::from_ref(&event.burn)),
                    FeedEventKind::Retract => ledger.retract(std::slice::from_ref(&event.burn)),
                };
                match stored {
                    Ok(()) => {
                        if let Err(error) = client.ack(event.cursor) {
                            tracing::warn!(target: "alys::pegout", %error, "cannot record the feed cursor");
                        }
                    }
                    Err(error) => tracing::error!(target: "alys::pegout", %error, "cannot store a burn"),
                }
            }
            _ = tick.tick() => {
                let Ok(status) = chain.ask(ChainMessage::Status).await else { return };
                if runtime.state_at(status.head.height).pegouts_paused {
                    metrics::gauge!("alys_pegout_paused").set(1.0);
                    continue;
                }
                metrics::gauge!("alys_pegout_paused").set(0.0);
                // Consensus height equals the execution block number.
                let finalized = status.finalized.map_or(0, |f| f.height);
                match ledger.release(finalized) {
                    Ok(released) if !released.is_empty() => {
                        tracing::info!(target: "alys::pegout", count = released.len(), finalized, "peg-outs final");
                    }
                    Ok(_) => {}
                    Err(error) => tracing::error!(target: "alys::pegout", %error, "cannot release burns"),
                }
            }
        }
    }
}
