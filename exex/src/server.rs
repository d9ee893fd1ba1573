//! The burn feed's server (`alys.burnfeed.v1`), served by the ExEx.
//!
//! The feed is the store's append-only event log. A subscriber names the last cursor it has processed;
//! the server streams every stored event after it, then live events. Backlog and live events come from
//! the same place (the store, read after a commit wakes the subscriber), so there is no seam at which an
//! event could be skipped or sent twice, and a slow consumer only lags: it holds a bounded channel, not a
//! growing buffer.
//!
//! # Who it serves
//!
//! Burns on the feed become payable peg-outs. With [`FeedServer::with_bearer_token`] every call must
//! carry `authorization: Bearer <token>` (compared in constant time) or is refused with
//! `UNAUTHENTICATED`; with [`FeedServer::with_tls`] the feed is served over TLS only. A feed without TLS
//! belongs on loopback: the client refuses plaintext anywhere else.
//!
//! # A subscriber behind the retained history
//!
//! The store keeps a bounded history ([`Retention`](crate::Retention)). A subscription from a cursor
//! the store no longer holds the events after is refused with `OUT_OF_RANGE` and the first retained
//! cursor in the [`RETAINED_FROM`] metadata, and a subscriber overtaken mid-stream is ended the same
//! way: never a silent gap.

use std::{future::Future, sync::Arc, time::Duration};

use alys_burns::{BearerToken, FeedHead, RETAINED_FROM, auth::AUTHORIZATION};
use alys_proto::burnfeed::v1::{
    self as proto,
    burn_feed_server::{BurnFeed, BurnFeedServer},
};
use tokio::{
    net::TcpListener,
    sync::{mpsc, watch},
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{
    Request, Response, Status,
    transport::{Identity, ServerTlsConfig, server::TcpIncoming},
};

use crate::{BurnStore, StoreError, metrics as m};

/// Tuning of the feed server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedConfig {
    /// Events read from the store per read transaction.
    pub batch_size: usize,
    /// Events buffered per subscriber; a consumer slower than the chain waits here, then lags and is
    /// served from the store, so memory per subscriber is bounded by this.
    pub channel_capacity: usize,
}

impl Default for FeedConfig {
    fn default() -> Self {
        Self { batch_size: 256, channel_capacity: 128 }
    }
}

/// The `BurnFeed` service over a [`BurnStore`], woken by the ExEx after each commit.
///
/// Cloning shares the store, the wake-up channel and the stop signal.
#[derive(Debug, Clone)]
pub struct FeedServer {
    store: Arc<BurnStore>,
    cursor: watch::Receiver<u64>,
    stop: Arc<watch::Sender<bool>>,
    config: FeedConfig,
    token: Option<BearerToken>,
    tls: Option<Identity>,
}

type EventTx = mpsc::Sender<Result<proto::FeedEvent, Status>>;

/// Keeps the subscriber gauge right however the subscription ends.
struct SubscriberGuard;

impl SubscriberGuard {
    fn new() -> Self {
        metrics::gauge!(m::FEED_SUBSCRIBERS).increment(1.0);
        Self
    }
}

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        metrics::gauge!(m::FEED_SUBSCRIBERS).decrement(1.0);
    }
}

impl FeedServer {
    /// A server over `store`; `cursor` carries the last committed cursor (see
    /// [`BurnExEx::feed_server`](crate::BurnExEx::feed_server)).
    pub fn new(store: Arc<BurnStore>, cursor: watch::Receiver<u64>) -> Self {
        let (stop, _) = watch::channel(false);
        Self { store, cursor, stop: Arc::new(stop), config: FeedConfig::default(), token: None, tls: None }
    }

    /// Uses this tuning.
    pub const fn with_config(mut self, config: FeedConfig) -> Self {
        self.config = config;
        self
    }

    /// Requires `authorization: Bearer <token>` on every call; calls without it are refused with
    /// `UNAUTHENTICATED`.
    pub fn with_bearer_token(mut self, token: BearerToken) -> Self {
        self.token = Some(token);
        self
    }

    /// Serves over TLS with this certificate chain and key (PEM), in [`serve`](Self::serve).
    pub fn with_tls(mut self, cert_pem: impl AsRef<[u8]>, key_pem: impl AsRef<[u8]>) -> Self {
        self.tls = Some(Identity::from_pem(cert_pem, key_pem));
        self
    }

    /// Whether a bearer token is required.
    pub const fn requires_token(&self) -> bool {
        self.token.is_some()
    }

    /// Refuses a call without the required token.
    #[allow(clippy::result_large_err, reason = "tonic's Status is the error of every call")]
    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(token) = &self.token else { return Ok(()) };
        if token.authorizes(request.metadata().get(AUTHORIZATION).map(|v| v.as_bytes())) {
            return Ok(());
        }
        metrics::counter!(m::FEED_UNAUTHENTICATED).increment(1);
        tracing::warn!(target: "alys::burnfeed", remote = ?request.remote_addr(), "refused a call without a valid bearer token");
        Err(Status::unauthenticated("missing or invalid bearer token"))
    }

    /// The tonic service, to mount on a server of one's own.
    pub fn into_service(self) -> BurnFeedServer<Self> {
        BurnFeedServer::new(self)
    }

    /// Ends every subscription (clients see the stream end and reconnect). Needed before a graceful
    /// shutdown: a server waits for open streams, and feed streams never end on their own.
    pub fn stop_subscriptions(&self) {
        self.stop.send_replace(true);
    }

    /// Serves the feed on `listener` until `shutdown` completes, then ends the subscriptions and returns.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), tonic::transport::Error> {
        let stop = Arc::clone(&self.stop);
        let local = listener.local_addr().ok();
        tracing::info!(target: "alys::burnfeed", addr = ?local, "serving burn feed");
        let signal = async move {
            shutdown.await;
            stop.send_replace(true);
        };
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let mut builder = tonic::transport::Server::builder();
        if let Some(identity) = self.tls.clone() {
            builder = builder.tls_config(ServerTlsConfig::new().identity(identity))?;
        }
        builder
            .http2_keepalive_interval(Some(Duration::from_secs(20)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .add_service(self.into_service())
            .serve_with_incoming_shutdown(incoming, signal)
            .await
    }

    fn head(&self) -> Result<FeedHead, crate::StoreError> {
        Ok(FeedHead {
            last_cursor: self.store.last_cursor()?,
            head: self.store.head()?,
            finalized: self.store.finalized()?,
            finished: self.store.finished_height()?,
        })
    }
}

/// Streams events after `position` into `tx` until the client leaves, the server stops or the ExEx is
/// dropped.
///
/// One loop serves backlog and live events alike: read what the store has after `position`, send it,
/// and when nothing is left wait for the next commit. The wake-up value is marked seen *before* the store
/// is read, so a commit that lands after the read always wakes the loop: no event is missed, and since
/// `position` only moves forward none is sent twice.
async fn run_subscription(
    store: Arc<BurnStore>,
    mut cursor: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
    tx: EventTx,
    mut position: u64,
    batch_size: usize,
) {
    let _guard = SubscriberGuard::new();
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        cursor.borrow_and_update();
        let events = match store.events_after(position, batch_size) {
            Ok(events) => events,
            Err(StoreError::Pruned { retained_from, .. }) => {
                // Overtaken by retention: tell the client, never skip ahead silently.
                let _ = tx.send(Err(pruned(position, retained_from))).await;
                return;
            }
            Err(err) => {
                tracing::error!(target: "alys::burnfeed", %err, position, "reading the feed failed");
                let _ = tx.send(Err(Status::internal("burn store read failed"))).await;
                return;
            }
        };
        if events.is_empty() {
            tokio::select! {
                changed = cursor.changed() => if changed.is_err() { return },
                _ = stop.changed() => return,
                () = tx.closed() => return,
            }
            continue;
        }
        for event in &events {
            tokio::select! {
                sent = tx.send(Ok(event.into())) => if sent.is_err() { return },
                _ = stop.changed() => return,
            }
            position = event.cursor;
            metrics::counter!(m::FEED_EVENTS_SENT).increment(1);
        }
    }
}

#[tonic::async_trait]
impl BurnFeed for FeedServer {
    type SubscribeStream = ReceiverStream<Result<proto::FeedEvent, Status>>;

    async fn subscribe(
        &self,
        request: Request<proto::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        self.authorize(&request)?;
        let from = request.get_ref().from_cursor;
        let last = self.store.last_cursor().map_err(|_| Status::internal("burn store read failed"))?;
        let retained_from =
            self.store.retained_from().map_err(|_| Status::internal("burn store read failed"))?;
        if from.saturating_add(1) < retained_from {
            tracing::warn!(target: "alys::burnfeed", from_cursor = from, retained_from, "refused a subscriber behind the retained history");
            return Err(pruned(from, retained_from));
        }
        tracing::info!(
            target: "alys::burnfeed",
            remote = ?request.remote_addr(),
            from_cursor = from,
            last_cursor = last,
            "subscriber connected"
        );
        let (tx, rx) = mpsc::channel(self.config.channel_capacity.max(1));
        tokio::spawn(run_subscription(
            Arc::clone(&self.store),
            self.cursor.clone(),
            self.stop.subscribe(),
            tx,
            from,
            self.config.batch_size.max(1),
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn head(
        &self,
        request: Request<proto::HeadRequest>,
    ) -> Result<Response<proto::HeadResponse>, Status> {
        self.authorize(&request)?;
        let head = Self::head(self).map_err(|_| Status::internal("burn store read failed"))?;
        Ok(Response::new(head.into()))
    }
}

/// The refusal of a subscriber whose cursor is below the retained history.
fn pruned(position: u64, retained_from: u64) -> Status {
    let mut status = Status::out_of_range(format!(
        "events after cursor {position} were pruned; the feed holds cursors from {retained_from} on: resynchronise"
    ));
    if let Ok(value) = retained_from.to_string().parse() {
        status.metadata_mut().insert(RETAINED_FROM, value);
    }
    status
}
