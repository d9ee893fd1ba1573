//! The burn source task: feeds the ledger from the ExEx feed or the geth poller and releases burns as
//! the chain finalizes them.
//!
//! # Nothing is lost, nothing is released twice
//!
//! - ExEx feed: each event is applied with its cursor in one transaction ([`PegoutCommit::FeedEvent`]).
//!   A failed write rewinds the feed client to the last committed cursor, so the event comes again; the
//!   stored cursor never passes an event that is not recorded.
//! - geth: each chunk of logs is committed with the height it reaches ([`PegoutCommit::GethChunk`]);
//!   a failure leaves the height where the last chunk left it.
//! - Release ([`PegoutCommit::Release`]): the ledger's rule (`alys_storage`'s peg-out module): final by
//!   the stored consensus chain, and the burn's block is the canonical one at its height, checked in
//!   the transaction that releases it. Burns of orphaned blocks wait for their retraction.
//!
//! # Who may feed it
//!
//! The feed is reached over TLS or on loopback only, with the bearer token the ExEx requires
//! ([`BurnSourceConfig::Exex`]); [`BurnSourceConfig::check`] refuses anything else before the node
//! starts.

use std::{sync::Arc, time::Duration};

use alys_burns::{BearerToken, BurnFeedClient, ClientError, FeedEvent, FeedEventKind, FeedTls, TokenError};
use alys_governance::RuntimeView;
use alys_primitives::ChainHeads;
use alys_storage::{PegoutRead, Storage, StorageError};
use tokio::sync::watch;

use crate::{
    GethPoller, GethPollerError,
    commit::{PegoutCommit, commit},
    metrics as m,
};

/// Where burns come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BurnSourceConfig {
    /// The Alys ExEx's gRPC burn feed (reth with `alys-reth`, or the devnet engine).
    Exex {
        /// The feed URL: `https://…`, or `http://…` on loopback only (e.g. `http://127.0.0.1:50551`).
        feed_url: String,
        /// Sent as `authorization: Bearer <token>`; the feed refuses calls without the token it requires.
        bearer_token: Option<BearerToken>,
        /// Certificate checks of an `https://` feed.
        tls: FeedTls,
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

impl BurnSourceConfig {
    /// The ExEx feed at `feed_url`, without a token or TLS settings.
    pub fn exex(feed_url: impl Into<String>) -> Self {
        Self::Exex { feed_url: feed_url.into(), bearer_token: None, tls: FeedTls::default() }
    }

    /// Refuses a configuration the source could not run with: a plaintext feed off loopback, TLS
    /// settings for a plaintext feed, an unusable geth URL. Called by the node before it starts.
    pub fn check(&self) -> Result<(), SourceError> {
        match self {
            Self::Exex { .. } => self.feed_client(0).map(drop),
            Self::Geth { eth_rpc_url, max_log_range, .. } => {
                GethPoller::new(eth_rpc_url, *max_log_range).map(drop).map_err(Into::into)
            }
        }
    }

    /// The feed client resuming after `cursor` (an ExEx source only).
    fn feed_client(&self, cursor: u64) -> Result<BurnFeedClient, SourceError> {
        let Self::Exex { feed_url, bearer_token, tls } = self else { return Err(SourceError::NotExex) };
        let mut client = BurnFeedClient::new(feed_url.clone(), cursor)?;
        if *tls != FeedTls::default() {
            client = client.with_tls(tls)?;
        }
        if let Some(token) = bearer_token {
            client = client.with_bearer_token(token);
        }
        Ok(client)
    }
}

/// Why a step of the burn source failed (logged and retried: nothing is lost, nothing advanced), or
/// why it cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The database failed; the step's transaction did not commit.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The burn feed failed in a way reconnecting cannot cure, or its settings are refused.
    #[error(transparent)]
    Feed(#[from] ClientError),
    /// The feed's bearer token is unusable.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The geth poller failed.
    #[error(transparent)]
    Geth(#[from] GethPollerError),
    /// A feed client was asked of a geth source.
    #[error("not an ExEx burn source")]
    NotExex,
}

/// How long the ExEx path waits after a failed write or a feed error before trying again.
const RETRY_WAIT: Duration = Duration::from_secs(1);

/// Runs the source until the chain stops publishing heads. Errors are logged and retried; nothing is
/// lost (module docs).
///
/// While governance has peg-outs paused (an EMERGENCY_ACTION in force at the chain's head), final burns
/// stay pending in the ledger and are released, each once, after the resume.
pub async fn run(
    config: BurnSourceConfig,
    storage: Arc<Storage>,
    heads: watch::Receiver<ChainHeads>,
    runtime: RuntimeView,
) -> Result<(), SourceError> {
    match &config {
        BurnSourceConfig::Exex { feed_url, bearer_token, .. } => {
            if bearer_token.is_none() {
                tracing::warn!(target: "alys::pegout", feed_url, "no bearer token for the burn feed: a feed that requires one refuses this node");
            }
            let resume_after = storage.read()?.burn_cursor()?;
            let client = config.feed_client(resume_after)?;
            run_exex(client, &storage, heads, &runtime).await;
            Ok(())
        }
        BurnSourceConfig::Geth { eth_rpc_url, max_log_range, poll_interval } => {
            let poller = GethPoller::new(eth_rpc_url, *max_log_range)?;
            loop {
                if heads.has_changed().is_err() {
                    return Ok(());
                }
                let head = heads.borrow().head.height;
                let paused = runtime.state_at(head).pegouts_paused;
                if let Err(error) = poll_geth(&poller, &storage, paused).await {
                    metrics::counter!(m::ERRORS).increment(1);
                    tracing::warn!(target: "alys::pegout", %error, "geth poll failed");
                }
                tokio::time::sleep(*poll_interval).await;
            }
        }
    }
}

/// One poll: releases what a pause held, then reads the finalized range after the stored height chunk
/// by chunk, committing each chunk with the height it reaches.
async fn poll_geth(poller: &GethPoller, storage: &Storage, paused: bool) -> Result<(), SourceError> {
    let Some(finalized) = poller.finalized().await? else { return Ok(()) };
    if !paused {
        // Burns held during a pause (or final only now by the stored chain) go out first, in order.
        let held = release(storage)?;
        if held > 0 {
            tracing::info!(target: "alys::pegout", count = held, "held peg-outs released");
        }
    }
    let from = storage.read()?.geth_height()?.saturating_add(1);
    let mut chunks = poller.chunks(from, finalized);
    while let Some(chunk) = chunks.next().await? {
        let span = tracing::debug_span!(target: "alys::pegout", "geth_chunk", from = chunk.from, to = chunk.to, burns = chunk.burns.len());
        let released = span.in_scope(|| -> Result<_, StorageError> {
            let tx = storage.write()?;
            let released = tx.ingest_final_burns(&chunk.burns, chunk.to, !paused)?;
            commit(tx, PegoutCommit::GethChunk)?;
            Ok(released)
        })?;
        metrics::gauge!(m::GETH_HEIGHT).set(chunk.to as f64);
        if !released.is_empty() {
            metrics::counter!(m::BURNS_RELEASED).increment(released.len() as u64);
            tracing::info!(target: "alys::pegout", count = released.len(), to = chunk.to, "peg-outs final (geth path)");
        }
    }
    Ok(())
}

/// Records one feed event and its cursor in one transaction.
fn record(storage: &Storage, event: &FeedEvent) -> Result<(), StorageError> {
    let tx = storage.write()?;
    let burn = std::slice::from_ref(&event.burn);
    match event.kind {
        FeedEventKind::Burn => tx.add_pending_burns(burn)?,
        FeedEventKind::Retract => {
            if tx.retract_burns(burn)? > 0 {
                // The burn's block was final when it was released: finality was reverted somewhere.
                metrics::counter!(m::RETRACTED_AFTER_RELEASE).increment(1);
                tracing::error!(target: "alys::pegout", cursor = event.cursor, block = %event.burn.block_hash,
                    log_index = event.burn.log_index, "the feed retracted a burn already released");
            }
        }
    }
    tx.set_burn_cursor(event.cursor)?;
    commit(tx, PegoutCommit::FeedEvent)
}

/// One release pass: releases what the ledger's rule allows, in one transaction; returns how many.
fn release(storage: &Storage) -> Result<usize, StorageError> {
    let tx = storage.write()?;
    let released = tx.release_burns()?;
    if released.is_empty() {
        // Nothing changed: dropping the transaction spares a commit (and its fsync) per slot.
        drop(tx);
    } else {
        commit(tx, PegoutCommit::Release)?;
        metrics::counter!(m::BURNS_RELEASED).increment(released.len() as u64);
    }
    let orphaned = storage.read()?.orphaned_pending_burns()?.len();
    metrics::gauge!(m::ORPHANED_PENDING).set(orphaned as f64);
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
                        metrics::counter!(m::ERRORS).increment(1);
                        tracing::warn!(target: "alys::pegout", %error, "burn feed error");
                        tokio::time::sleep(RETRY_WAIT).await;
                        continue;
                    }
                };
                let span = tracing::debug_span!(target: "alys::pegout", "feed_event", cursor = event.cursor, kind = ?event.kind);
                match span.in_scope(|| record(storage, &event)) {
                    Ok(()) => committed = event.cursor,
                    Err(error) => {
                        // Nothing was written: have the feed deliver this event again.
                        metrics::counter!(m::ERRORS).increment(1);
                        tracing::error!(target: "alys::pegout", %error, cursor = event.cursor, "cannot record a burn; retrying");
                        client.rewind(committed);
                        tokio::time::sleep(RETRY_WAIT).await;
                    }
                }
            }
            changed = heads.changed() => {
                if changed.is_err() {
                    return;
                }
                let heads = *heads.borrow_and_update();
                if runtime.state_at(heads.head.height).pegouts_paused {
                    metrics::gauge!(m::PAUSED).set(1.0);
                    continue;
                }
                metrics::gauge!(m::PAUSED).set(0.0);
                let span = tracing::debug_span!(target: "alys::pegout", "release", head = heads.head.height);
                match span.in_scope(|| release(storage)) {
                    Ok(0) => {}
                    Ok(count) => tracing::info!(target: "alys::pegout", count, "peg-outs final"),
                    Err(error) => {
                        metrics::counter!(m::ERRORS).increment(1);
                        tracing::error!(target: "alys::pegout", %error, "cannot release burns");
                    }
                }
            }
        }
    }
}
