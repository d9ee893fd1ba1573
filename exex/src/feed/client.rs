//! The sidecar's side of the burn feed: a client that resumes from a durable cursor.

use std::{
    fs, io,
    path::{Path, PathBuf},
    time::Duration,
};

use alys_proto::burnfeed::v1::{self as proto, burn_feed_client::BurnFeedClient as RawClient};
use tonic::{Streaming, transport::Endpoint};

use crate::{
    burn::FeedEvent,
    feed::{FeedHead, ProtoError},
    metrics as m,
};

/// Where a client keeps the last cursor it has processed.
///
/// [`FileCursorStore`] is the standalone choice. A consumer that records burns in its own database should
/// implement this over that database, so the cursor is written in the same transaction as the burns.
pub trait CursorStore: Send {
    /// The last processed cursor (0: nothing processed yet).
    fn load(&mut self) -> io::Result<u64>;
    /// Durably records the last processed cursor.
    fn save(&mut self, cursor: u64) -> io::Result<()>;
}

/// A cursor in a small file, replaced atomically (write, fsync, rename, fsync the directory).
#[derive(Debug, Clone)]
pub struct FileCursorStore {
    path: PathBuf,
}

impl FileCursorStore {
    /// A store at `path`; the file is created on the first save.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl CursorStore for FileCursorStore {
    fn load(&mut self) -> io::Result<u64> {
        match fs::read_to_string(&self.path) {
            Ok(text) => text.trim().parse().map_err(|err| {
                io::Error::new(io::ErrorKind::InvalidData, format!("{}: {err}", self.path.display()))
            }),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(err) => Err(err),
        }
    }

    fn save(&mut self, cursor: u64) -> io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        {
            let file = fs::File::create(&tmp)?;
            io::Write::write_all(&mut &file, format!("{cursor}\n").as_bytes())?;
            file.sync_all()?;
        }
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// An error of the feed client. Transport failures are not errors: the client reconnects.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint is not a valid URI.
    #[error("invalid burn feed endpoint: {0}")]
    Endpoint(#[from] tonic::transport::Error),
    /// The cursor store failed.
    #[error("burn feed cursor store: {0}")]
    CursorStore(#[from] io::Error),
    /// The server sent a malformed event or head.
    #[error("burn feed: malformed message: {0}")]
    Malformed(#[from] ProtoError),
    /// The server skipped cursors: events were lost on its side.
    #[error("burn feed gap: expected cursor {expected}, got {got}")]
    Gap {
        /// The cursor due.
        expected: u64,
        /// The cursor received.
        got: u64,
    },
    /// The server's feed ends before the client's cursor: its store was reset or replaced. Resuming would
    /// silently skip events, so the client refuses.
    #[error("burn feed is behind this client: server's last cursor {server} < client's cursor {client}")]
    CursorAhead {
        /// The server's last cursor.
        server: u64,
        /// The client's cursor.
        client: u64,
    },
    /// Acknowledging a cursor that was never received.
    #[error("cannot acknowledge cursor {cursor}: only {position} received")]
    AckAhead {
        /// The cursor acknowledged.
        cursor: u64,
        /// The last cursor received.
        position: u64,
    },
}

/// Reconnection and timeouts of the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// First wait before reconnecting; doubled after each failed attempt.
    pub min_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Timeout of a connection attempt.
    pub connect_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// A failed connection attempt: worth retrying, or not.
enum ConnectError {
    Retry(String),
    Fatal(ClientError),
}

/// The sidecar's burn-feed client: yields typed events in cursor order, across restarts of either side,
/// with no gap and no duplicate.
///
/// Delivery is at-least-once across a client restart and exactly-once within a run: [`next`](Self::next)
/// returns each cursor once, and [`ack`](Self::ack) durably records that the consumer has processed
/// events up to a cursor. After a restart the client resumes after the last acknowledged cursor, so an
/// event processed but not acknowledged is delivered again (burns are keyed by (block hash, log index),
/// which makes that replay harmless). After a server restart or a dropped connection it reconnects with
/// exponential backoff and resumes after the last cursor it returned.
#[derive(Debug)]
pub struct BurnFeedClient<S = FileCursorStore> {
    endpoint: Endpoint,
    store: S,
    position: u64,
    acked: u64,
    stream: Option<Streaming<proto::FeedEvent>>,
    backoff: Duration,
    config: ClientConfig,
}

impl<S: CursorStore> BurnFeedClient<S> {
    /// A client of the feed at `endpoint` (e.g. `http://127.0.0.1:50061`), resuming after the cursor in
    /// `store`. Does not connect yet.
    pub fn new(endpoint: impl Into<String>, mut store: S) -> Result<Self, ClientError> {
        let config = ClientConfig::default();
        let endpoint = Endpoint::from_shared(endpoint.into())?;
        let acked = store.load()?;
        Ok(Self {
            endpoint: endpoint.connect_timeout(config.connect_timeout).tcp_nodelay(true),
            store,
            position: acked,
            acked,
            stream: None,
            backoff: config.min_backoff,
            config,
        })
    }

    /// Uses this reconnection policy.
    pub fn with_config(mut self, config: ClientConfig) -> Self {
        self.endpoint = self.endpoint.connect_timeout(config.connect_timeout);
        self.backoff = config.min_backoff;
        self.config = config;
        self
    }

    /// The last cursor returned by [`next`](Self::next).
    pub const fn position(&self) -> u64 {
        self.position
    }

    /// The last cursor durably acknowledged.
    pub const fn acked(&self) -> u64 {
        self.acked
    }

    /// The cursor store.
    pub const fn cursor_store(&self) -> &S {
        &self.store
    }

    /// Durably records that events up to `cursor` are processed; a restarted client resumes after it.
    pub fn ack(&mut self, cursor: u64) -> Result<(), ClientError> {
        if cursor > self.position {
            return Err(ClientError::AckAhead { cursor, position: self.position });
        }
        if cursor > self.acked {
            self.store.save(cursor)?;
            self.acked = cursor;
        }
        Ok(())
    }

    /// Asks the server for its position (one attempt, no retry).
    pub async fn head(&self) -> Result<FeedHead, tonic::Status> {
        let channel = self.endpoint.connect().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let head = RawClient::new(channel).head(proto::HeadRequest {}).await?.into_inner();
        FeedHead::try_from(head).map_err(|e| tonic::Status::internal(e.to_string()))
    }

    /// The next event after [`position`](Self::position), waiting for it as long as it takes and
    /// reconnecting as needed. Errors are the ones retrying cannot cure.
    ///
    /// Cancel-safe: dropping the future loses no event (an event is consumed only when returned).
    pub async fn next(&mut self) -> Result<FeedEvent, ClientError> {
        loop {
            let Some(stream) = self.stream.as_mut() else {
                match self.connect().await {
                    Ok(stream) => self.stream = Some(stream),
                    Err(ConnectError::Fatal(err)) => return Err(err),
                    Err(ConnectError::Retry(reason)) => {
                        tracing::debug!(target: "alys::burnfeed", %reason, backoff = ?self.backoff, "burn feed unavailable");
                        self.sleep_backoff().await;
                    }
                }
                continue;
            };
            match stream.message().await {
                Ok(Some(message)) => {
                    self.backoff = self.config.min_backoff;
                    let event = match FeedEvent::try_from(message) {
                        Ok(event) => event,
                        Err(err) => {
                            self.stream = None;
                            return Err(err.into());
                        }
                    };
                    if event.cursor <= self.position {
                        // Never expected from a correct server; dropping keeps the no-duplicate promise.
                        tracing::warn!(target: "alys::burnfeed", cursor = event.cursor, position = self.position, "duplicate event dropped");
                        continue;
                    }
                    let expected = self.position.saturating_add(1);
                    if event.cursor != expected {
                        self.stream = None;
                        return Err(ClientError::Gap { expected, got: event.cursor });
                    }
                    self.position = event.cursor;
                    metrics::counter!(m::CLIENT_EVENTS).increment(1);
                    return Ok(event);
                }
                Ok(None) => {
                    tracing::info!(target: "alys::burnfeed", position = self.position, "burn feed stream ended; reconnecting");
                    self.disconnected().await;
                }
                Err(status) => {
                    tracing::info!(target: "alys::burnfeed", position = self.position, %status, "burn feed stream failed; reconnecting");
                    self.disconnected().await;
                }
            }
        }
    }

    async fn disconnected(&mut self) {
        self.stream = None;
        metrics::counter!(m::CLIENT_RECONNECTS).increment(1);
        self.sleep_backoff().await;
    }

    async fn sleep_backoff(&mut self) {
        tokio::time::sleep(self.backoff).await;
        self.backoff = self.backoff.saturating_mul(2).min(self.config.max_backoff);
    }

    async fn connect(&self) -> Result<Streaming<proto::FeedEvent>, ConnectError> {
        let channel = self.endpoint.connect().await.map_err(|e| ConnectError::Retry(e.to_string()))?;
        let mut client = RawClient::new(channel);
        let head = client
            .head(proto::HeadRequest {})
            .await
            .map_err(|s| ConnectError::Retry(s.to_string()))?
            .into_inner();
        if head.last_cursor < self.position {
            return Err(ConnectError::Fatal(ClientError::CursorAhead {
                server: head.last_cursor,
                client: self.position,
            }));
        }
        let stream = client
            .subscribe(proto::SubscribeRequest { from_cursor: self.position })
            .await
            .map_err(|s| ConnectError::Retry(s.to_string()))?
            .into_inner();
        tracing::info!(target: "alys::burnfeed", from_cursor = self.position, server_last = head.last_cursor, "subscribed to burn feed");
        Ok(stream)
    }
}
