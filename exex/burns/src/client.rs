//! The consumer's side of the burn feed: a client that resumes after the cursor its consumer keeps.

use std::time::Duration;

use alys_proto::burnfeed::v1::{self as proto, burn_feed_client::BurnFeedClient as RawClient};
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tonic::{
    Code, Streaming,
    metadata::{AsciiMetadataValue, MetadataMap},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint},
};

use crate::{
    auth::{AUTHORIZATION, BearerToken, EndpointError, check_endpoint},
    burn::FeedEvent,
    convert::{FeedHead, ProtoError},
    metrics as m,
};

/// The metadata key of a refusal for a pruned cursor: the first cursor the feed still holds.
pub const RETAINED_FROM: &str = "alys-feed-retained-from";

/// An error of the feed client. Transport failures are not errors: the client reconnects.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint is not a valid URI.
    #[error("invalid burn feed endpoint: {0}")]
    Endpoint(#[source] tonic::transport::Error),
    /// The endpoint breaks the transport rule: plaintext off loopback, or not http(s).
    #[error(transparent)]
    Insecure(#[from] EndpointError),
    /// rustls refused the TLS settings.
    #[error("burn feed TLS settings: {0}")]
    Tls(#[source] tonic::transport::Error),
    /// TLS settings were given for an `http://` endpoint; they would be ignored.
    #[error("burn feed endpoint {url:?} is plaintext: TLS settings need an https:// endpoint")]
    TlsWithoutHttps {
        /// The endpoint.
        url: String,
    },
    /// The feed refused this client's credentials (no token, or a wrong one). Retrying with the same
    /// token cannot succeed; the operator must fix the token.
    #[error("burn feed refused the credentials: {0}")]
    Unauthenticated(#[source] tonic::Status),
    /// The feed no longer holds the events after the client's cursor: its retention pruned them. The
    /// consumer missed events this feed can no longer send, so it must resynchronise from a source that
    /// still has them (a feed kept longer, or the chain's logs over the missed blocks) rather than
    /// resume with a gap.
    #[error(
        "burn feed pruned the events after cursor {position}: it holds cursors from {retained_from} on; \
         this consumer must resynchronise"
    )]
    Pruned {
        /// The first cursor the feed still holds.
        retained_from: u64,
        /// The client's cursor.
        position: u64,
    },
    /// The feed could not be reached ([`BurnFeedClient::head`] only: [`BurnFeedClient::next`] retries).
    #[error("burn feed unreachable: {0}")]
    Connect(#[source] tonic::transport::Error),
    /// The feed answered a call with an error status ([`BurnFeedClient::head`] only).
    #[error("burn feed call failed: {0}")]
    Status(#[from] tonic::Status),
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
}

/// Reconnection and timeouts of the client.
#[derive(Debug, Clone, Copy)]
pub struct ClientConfig {
    /// Waits between reconnection attempts: exponential, with jitter so that clients of one feed do not
    /// reconnect in step. The sequence restarts after each event received; when it ends (a policy with
    /// a maximum number of attempts), its last wait is repeated: the client never gives up.
    ///
    /// Default: from 100 ms, doubling up to 5 s, with jitter, unbounded attempts.
    pub backoff: ExponentialBuilder,
    /// Timeout of a connection attempt.
    pub connect_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            backoff: ExponentialBuilder::new()
                .with_min_delay(Duration::from_millis(100))
                .with_max_delay(Duration::from_secs(5))
                .with_jitter()
                .without_max_times(),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// The wait between attempts when the configured policy yields none.
const FALLBACK_WAIT: Duration = Duration::from_secs(1);

/// A failed connection attempt: worth retrying, or not.
enum ConnectError {
    Retry(ClientError),
    Fatal(ClientError),
}

/// The consumer's burn-feed client: yields typed events in cursor order, with no gap and no duplicate,
/// reconnecting as long as it takes.
///
/// The consumer owns the cursor. It creates the client with the last cursor it has durably processed
/// ([`new`](Self::new)), and records each event's cursor in the same database transaction as what the
/// event changes; so after a crash it resumes exactly after what it committed, and an event processed
/// but not committed is delivered again (burns are keyed by (block hash, log index), which makes that
/// replay harmless). Within a run [`next`](Self::next) returns each cursor once; a consumer whose write
/// failed calls [`rewind`](Self::rewind) to be given the events after its committed cursor again. After
/// a server restart or a dropped connection the client reconnects with exponential backoff and
/// resumes after the last cursor it returned.
///
/// It reaches the feed over TLS or on loopback only ([`new`](Self::new)) and sends the bearer token the
/// feed requires ([`with_bearer_token`](Self::with_bearer_token)). Refusals that retrying cannot cure
/// end [`next`](Self::next) with an error instead of retrying forever: a refused token
/// ([`ClientError::Unauthenticated`]), a cursor the feed no longer holds events after
/// ([`ClientError::Pruned`]), a feed behind the cursor ([`ClientError::CursorAhead`]).
#[derive(Debug)]
pub struct BurnFeedClient {
    url: String,
    endpoint: Endpoint,
    /// Whether the endpoint is `https://`.
    tls: bool,
    auth: AuthInterceptor,
    position: u64,
    stream: Option<Streaming<proto::FeedEvent>>,
    /// The reconnection waits since the last event received; `None` until a connection fails.
    backoff: Option<ExponentialBackoff>,
    /// The last wait taken, repeated if the policy runs out.
    last_wait: Duration,
    config: ClientConfig,
}

impl BurnFeedClient {
    /// A client of the feed at `endpoint` that yields the events after `resume_after` (0: from the first
    /// event). Does not connect yet.
    ///
    /// The endpoint is `https://…` (TLS, checked against the web PKI roots unless [`with_tls`] names a
    /// CA) or `http://…` on loopback only (`127.0.0.1:50551`, `[::1]`, `localhost`); any other endpoint
    /// is refused ([`ClientError::Insecure`]), since forged burns would become payable peg-outs.
    ///
    /// [`with_tls`]: Self::with_tls
    pub fn new(endpoint: impl Into<String>, resume_after: u64) -> Result<Self, ClientError> {
        let config = ClientConfig::default();
        let url = endpoint.into();
        let tls = check_endpoint(&url)?;
        let mut endpoint = Endpoint::from_shared(url.clone()).map_err(ClientError::Endpoint)?;
        if tls {
            endpoint =
                endpoint.tls_config(ClientTlsConfig::new().with_webpki_roots()).map_err(ClientError::Tls)?;
        }
        Ok(Self {
            url,
            endpoint: endpoint.connect_timeout(config.connect_timeout).tcp_nodelay(true),
            tls,
            auth: AuthInterceptor(None),
            position: resume_after,
            stream: None,
            backoff: None,
            last_wait: Duration::ZERO,
            config,
        })
    }

    /// Sends `token` as `authorization: Bearer <token>` with every call.
    pub fn with_bearer_token(mut self, token: &BearerToken) -> Self {
        // A `BearerToken` is visible ASCII, so its header value always parses.
        self.auth = AuthInterceptor(token.header_value().parse().ok());
        self
    }

    /// Checks the server's certificate against `tls` instead of the web PKI roots (an `https://`
    /// endpoint only).
    pub fn with_tls(mut self, tls: &FeedTls) -> Result<Self, ClientError> {
        if !self.tls {
            return Err(ClientError::TlsWithoutHttps { url: self.url });
        }
        let mut config = match &tls.ca_pem {
            Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
            None => ClientTlsConfig::new().with_webpki_roots(),
        };
        if let Some(domain) = &tls.domain {
            config = config.domain_name(domain.clone());
        }
        self.endpoint = self.endpoint.tls_config(config).map_err(ClientError::Tls)?;
        Ok(self)
    }

    /// Uses this reconnection policy.
    pub fn with_config(mut self, config: ClientConfig) -> Self {
        self.endpoint = self.endpoint.connect_timeout(config.connect_timeout);
        self.backoff = None;
        self.config = config;
        self
    }

    /// The last cursor returned by [`next`](Self::next), or the one the client resumed after.
    pub const fn position(&self) -> u64 {
        self.position
    }

    /// Makes the next [`next`](Self::next) return the events after `cursor` again: for a consumer whose
    /// write of later events failed, so that it processes them again from its committed cursor.
    ///
    /// Drops the subscription; the next call resubscribes. A `cursor` after [`position`](Self::position)
    /// is ignored, with a warning: the client never skips events.
    pub fn rewind(&mut self, cursor: u64) {
        if cursor > self.position {
            tracing::warn!(target: "alys::burnfeed", cursor, position = self.position, "rewind past the position ignored");
            return;
        }
        self.stream = None;
        self.position = cursor;
    }

    /// Asks the server for its position (one attempt, no retry).
    pub async fn head(&self) -> Result<FeedHead, ClientError> {
        let channel = self.endpoint.connect().await.map_err(ClientError::Connect)?;
        let head = self
            .raw(channel)
            .head(proto::HeadRequest {})
            .await
            .map_err(|status| refusal(status, self.position).unwrap_or_else(|s| s.into()))?
            .into_inner();
        Ok(FeedHead::try_from(head)?)
    }

    fn raw(&self, channel: Channel) -> RawClient<InterceptedService<Channel, AuthInterceptor>> {
        RawClient::with_interceptor(channel, self.auth.clone())
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
                        let wait = self.next_wait();
                        tracing::debug!(target: "alys::burnfeed", %reason, ?wait, "burn feed unavailable");
                        tokio::time::sleep(wait).await;
                    }
                }
                continue;
            };
            match stream.message().await {
                Ok(Some(message)) => {
                    self.backoff = None;
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
                // A subscriber overtaken by the feed's retention is told so mid-stream.
                Err(status) => match refusal(status, self.position) {
                    Ok(error) => {
                        self.stream = None;
                        return Err(error);
                    }
                    Err(status) => {
                        tracing::info!(target: "alys::burnfeed", position = self.position, %status, "burn feed stream failed; reconnecting");
                        self.disconnected().await;
                    }
                },
            }
        }
    }

    async fn disconnected(&mut self) {
        self.stream = None;
        metrics::counter!(m::CLIENT_RECONNECTS).increment(1);
        tokio::time::sleep(self.next_wait()).await;
    }

    /// The wait before the next connection attempt.
    fn next_wait(&mut self) -> Duration {
        let config = &self.config;
        let backoff = self.backoff.get_or_insert_with(|| config.backoff.build());
        match backoff.next() {
            Some(wait) => self.last_wait = wait,
            // A policy that allows no attempt at all still must not spin.
            None if self.last_wait.is_zero() => self.last_wait = FALLBACK_WAIT,
            None => {}
        }
        self.last_wait
    }

    async fn connect(&self) -> Result<Streaming<proto::FeedEvent>, ConnectError> {
        let retry = ConnectError::Retry;
        let channel = self.endpoint.connect().await.map_err(|e| retry(ClientError::Connect(e)))?;
        let mut client = self.raw(channel);
        let classify = |status: tonic::Status| match refusal(status, self.position) {
            Ok(fatal) => ConnectError::Fatal(fatal),
            Err(status) => retry(status.into()),
        };
        let head = client.head(proto::HeadRequest {}).await.map_err(classify)?.into_inner();
        if head.last_cursor < self.position {
            return Err(ConnectError::Fatal(ClientError::CursorAhead {
                server: head.last_cursor,
                client: self.position,
            }));
        }
        let stream = client
            .subscribe(proto::SubscribeRequest { from_cursor: self.position })
            .await
            .map_err(classify)?
            .into_inner();
        tracing::info!(target: "alys::burnfeed", from_cursor = self.position, server_last = head.last_cursor, "subscribed to burn feed");
        Ok(stream)
    }
}

/// TLS settings of a client of an `https://` feed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedTls {
    /// PEM of the CA that signed the feed's certificate; the web PKI roots when unset.
    pub ca_pem: Option<Vec<u8>>,
    /// The name to check in the certificate, when it differs from the endpoint's host.
    pub domain: Option<String>,
}

/// Adds the bearer token, if any, to every call.
#[derive(Debug, Clone)]
struct AuthInterceptor(Option<AsciiMetadataValue>);

impl Interceptor for AuthInterceptor {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert(AUTHORIZATION, value.clone());
        }
        Ok(request)
    }
}

/// The error a refusal that retrying cannot cure stands for (`Ok`), or the status back (`Err`) when
/// it is worth retrying.
fn refusal(status: tonic::Status, position: u64) -> Result<ClientError, tonic::Status> {
    match status.code() {
        Code::Unauthenticated | Code::PermissionDenied => Ok(ClientError::Unauthenticated(status)),
        Code::OutOfRange => match retained_from(status.metadata()) {
            Some(retained_from) => Ok(ClientError::Pruned { retained_from, position }),
            None => Err(status),
        },
        _ => Err(status),
    }
}

/// The first retained cursor a pruned-cursor refusal names.
fn retained_from(metadata: &MetadataMap) -> Option<u64> {
    metadata.get(RETAINED_FROM)?.to_str().ok()?.parse().ok()
}
