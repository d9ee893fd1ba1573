//! `eth_subscribe`: `newHeads` and `logs`, fed by the backend's chain notifications, and
//! `newPendingTransactions`, fed by the pool.
//!
//! - `newHeads` sends the header (with its hash) of every committed block, in order; on a reorg, the headers
//!   of the new branch. Reverts alone send nothing, as in geth.
//! - `logs` sends every log of committed blocks that matches the filter's address and topics; on a revert or
//!   reorg it first sends the matching logs of the removed blocks again with `removed: true` (ascending, as
//!   they were first sent), then those of the new branch. The filter's block range is ignored, as geth does
//!   for subscriptions.
//! - `newPendingTransactions` sends the hash of every transaction the pool accepts from then on, or with
//!   `true` as its parameter the whole transaction (block fields `null`), as geth does.
//!
//! A subscriber that falls behind the broadcast channel (it lagged, so notifications were dropped) is
//! **closed with an error notification** (`subscription lagged behind the chain ...; subscribe again`) rather
//! than skipped: silently skipping would lose logs, and a client that resubscribes can fetch what it missed
//! with `eth_getLogs`. The rest of the server is unaffected.

use std::{
    collections::hash_map::RandomState,
    hash::BuildHasher,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use alloy_consensus::Sealed;
use alloy_rpc_types_eth::Transaction;
use alloy_rpc_types_eth::{
    Filter, Header,
    pubsub::{Params as SubscriptionParams, SubscriptionKind},
};
use alys_el_api::{ChainNotification, ExecutedBlock, ToolingBackend};
use jsonrpsee::{
    PendingSubscriptionSink, SubscriptionSink,
    core::{SubscriptionError, traits::IdProvider},
    types::{ErrorObjectOwned, Params, SubscriptionId},
};
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::{api::EthApi, args::Args, error::invalid_params};

/// What one subscription sends.
#[derive(Debug)]
enum Kind {
    NewHeads,
    Logs(Box<Filter>),
    /// Pending transactions: whole (`true`) or their hashes.
    PendingTransactions {
        full: bool,
    },
}

fn parse(params: &Params<'static>) -> Result<Kind, ErrorObjectOwned> {
    let mut args = Args::new(params, 2)?;
    let kind: SubscriptionKind = args.required()?;
    let extra = args.optional_raw();
    match kind {
        SubscriptionKind::NewHeads => match extra {
            None => Ok(Kind::NewHeads),
            Some(_) => Err(invalid_params("newHeads takes no parameters")),
        },
        SubscriptionKind::Logs => match extra {
            None => Ok(Kind::Logs(Box::default())),
            Some(value) => match SubscriptionParams::from_json_value(value) {
                Ok(SubscriptionParams::Logs(filter)) => Ok(Kind::Logs(filter)),
                Ok(SubscriptionParams::None) => Ok(Kind::Logs(Box::default())),
                Ok(_) => Err(invalid_params("invalid argument 1: expected a log filter")),
                Err(err) => Err(invalid_params(format!("invalid argument 1: {err}"))),
            },
        },
        SubscriptionKind::NewPendingTransactions => match extra {
            None => Ok(Kind::PendingTransactions { full: false }),
            Some(value) => match SubscriptionParams::from_json_value(value) {
                Ok(SubscriptionParams::Bool(full)) => Ok(Kind::PendingTransactions { full }),
                Ok(SubscriptionParams::None) => Ok(Kind::PendingTransactions { full: false }),
                Ok(_) => Err(invalid_params("invalid argument 1: expected a boolean")),
                Err(err) => Err(invalid_params(format!("invalid argument 1: {err}"))),
            },
        },
        other => Err(invalid_params(format!("unsupported subscription kind: {other}"))),
    }
}

/// Handles one `eth_subscribe` call until the client unsubscribes, disconnects, or lags.
pub(crate) async fn subscribe<B: ToolingBackend>(
    params: Params<'static>,
    pending: PendingSubscriptionSink,
    api: Arc<EthApi<B>>,
) -> Result<(), SubscriptionError> {
    let kind = match parse(&params) {
        Ok(kind) => kind,
        Err(err) => {
            pending.reject(err).await;
            return Ok(());
        }
    };
    // Subscribe before accepting, so nothing committed (or pooled) after the client got its id is missed.
    let notifications = api.backend().subscribe_chain();
    let pool = matches!(kind, Kind::PendingTransactions { .. })
        .then(|| api.backend().subscribe_pending_transactions());
    let Ok(sink) = pending.accept().await else {
        // The connection went away before the answer could be sent.
        return Ok(());
    };
    tracing::debug!(target: "eth_rpc::pubsub", id = ?sink.subscription_id(), ?kind, "subscribed");
    let result = match (kind, pool) {
        (Kind::NewHeads, _) => pump(&sink, notifications, "chain", new_heads).await,
        (Kind::Logs(filter), _) => pump(&sink, notifications, "chain", |n, out| logs(n, &filter, out)).await,
        (Kind::PendingTransactions { full }, Some(pool)) => {
            drop(notifications);
            pump(
                &sink,
                pool,
                "pool",
                |tx: &Transaction, out| {
                    if full { push(out, tx) } else { push(out, tx.inner.tx_hash()) }
                },
            )
            .await
        }
        // Never: the pool's feed is taken above for this kind.
        (Kind::PendingTransactions { .. }, None) => Ok(()),
    };
    if let Err(err) = &result {
        tracing::debug!(target: "eth_rpc::pubsub", id = ?sink.subscription_id(), error = ?err, "subscription closed");
    }
    result
}

/// Forwards what `items` makes of each notification until the subscription ends; `source` names the
/// channel (`chain`, `pool`) in the lag message.
async fn pump<T, F>(
    sink: &SubscriptionSink,
    mut notifications: broadcast::Receiver<T>,
    source: &str,
    mut items: F,
) -> Result<(), SubscriptionError>
where
    T: Clone,
    F: FnMut(&T, &mut Vec<Box<RawValue>>),
{
    let mut out = Vec::new();
    loop {
        let received = tokio::select! {
            biased;
            () = sink.closed() => return Ok(()),
            received = notifications.recv() => received,
        };
        match received {
            Ok(notification) => {
                out.clear();
                items(&notification, &mut out);
                for item in out.drain(..) {
                    if sink.send(item).await.is_err() {
                        // Unsubscribed or disconnected.
                        return Ok(());
                    }
                }
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(target: "eth_rpc::pubsub", id = ?sink.subscription_id(), missed, "subscriber lagged; closing it");
                return Err(format!(
                    "subscription lagged behind the {source} and missed {missed} notifications; subscribe again"
                )
                .into());
            }
            Err(RecvError::Closed) => {
                return Err(format!("{source} notifications ended: the engine is shutting down").into());
            }
        }
    }
}

fn push(out: &mut Vec<Box<RawValue>>, item: &impl Serialize) {
    match serde_json::value::to_raw_value(item) {
        Ok(raw) => out.push(raw),
        // Our own types always serialize; never drop the subscription over it.
        Err(err) => tracing::error!(target: "eth_rpc::pubsub", %err, "failed to serialize a notification"),
    }
}

fn new_heads(notification: &ChainNotification, out: &mut Vec<Box<RawValue>>) {
    let Some(chain) = notification.committed_chain() else { return };
    for block in chain.blocks() {
        push(out, &rpc_header(block));
    }
}

fn logs(notification: &ChainNotification, filter: &Filter, out: &mut Vec<Box<RawValue>>) {
    if let Some(old) = notification.reverted_chain() {
        for block in old.blocks() {
            for log in block.rpc_logs(true).filter(|log| filter.matches(&log.inner)) {
                push(out, &log);
            }
        }
    }
    if let Some(new) = notification.committed_chain() {
        for block in new.blocks() {
            for log in block.rpc_logs(false).filter(|log| filter.matches(&log.inner)) {
                push(out, &log);
            }
        }
    }
}

/// The RPC header (with hash) of an executed block, as `newHeads` sends it.
pub fn rpc_header(block: &ExecutedBlock) -> Header {
    Header::from_sealed(Sealed::new_unchecked(block.block.header.clone(), block.hash))
}

/// Subscription ids as geth and reth give them: `0x` and 32 hex digits.
#[derive(Debug)]
pub(crate) struct HexIdProvider {
    state: RandomState,
    counter: AtomicU64,
}

impl Default for HexIdProvider {
    fn default() -> Self {
        Self { state: RandomState::new(), counter: AtomicU64::new(0) }
    }
}

impl IdProvider for HexIdProvider {
    fn next_id(&self) -> SubscriptionId<'static> {
        // Unique per server (the counter) and not guessable across restarts (the random keys).
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let high = self.state.hash_one((n, 0_u8));
        let low = self.state.hash_one((n, 1_u8));
        SubscriptionId::Str(format!("0x{high:016x}{low:016x}").into())
    }
}
