//! The StreamActor: the node's one long-lived bidirectional stream to the governance service.
//!
//! It connects over TLS (rustls; the system's web PKI roots or a configured CA) or, for devnets, in
//! plaintext on loopback, sends a bearer token when configured, registers (and waits for the
//! acknowledgement), heartbeats (a missing acknowledgement ends the session), and reconnects with
//! exponential backoff and jitter, the backoff reset after a healthy period. Signature requests are never dropped: each is written to the actor's redb store with its
//! request id before it is sent, re-sent with the same id after every reconnect or restart (so the
//! service can de-duplicate), and deleted only when its response arrives. Other outgoing messages wait in
//! a bounded buffer while disconnected. Responses are matched to requests by id, with a timeout per
//! request; federation updates are verified against the governance key and kept by effective height;
//! proposals are passed on to subscribers.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use alys_proto::governance::v1::{
    FederationUpdate, Heartbeat, NodeInfo, NodeRegistration, ProposalNotification, RequestMetadata,
    SignatureRequest, SignatureResponse, StreamRequest, StreamResponse,
    governance_stream_client::GovernanceStreamClient, stream_request, stream_response,
};
use alys_storage::{GovernanceRead, Storage, StorageError};
use backon::{BackoffBuilder, ExponentialBuilder};
use bitcoin::{Network, secp256k1};
use prost::Message as _;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_stream::{StreamExt, wrappers::ReceiverStream};

use super::{
    federation::{Federation, FederationHistory},
    proposals::{Proposal, ProposalBook, RuntimeParameters, RuntimeView},
};

/// TLS settings of the stream (used when the URL is `https://`).
#[derive(Debug, Clone, Default)]
pub struct StreamTls {
    /// PEM of the CA that signed the service's certificate; the web PKI roots when unset.
    pub ca_pem: Option<Vec<u8>>,
    /// The name to check in the certificate, when it differs from the URL's host.
    pub domain: Option<String>,
}

/// Settings of the stream.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// The governance service, e.g. `http://127.0.0.1:50061`.
    pub url: String,
    /// Sent as `authorization: Bearer <token>` when set.
    pub bearer_token: Option<String>,
    /// TLS settings for `https://` URLs.
    pub tls: StreamTls,
    /// This node's id in request metadata.
    pub node_id: String,
    /// The key that signs federation updates.
    pub governance_key: secp256k1::PublicKey,
    /// Bitcoin network of the deposit addresses.
    pub network: Network,
    /// Interval between heartbeats.
    pub heartbeat: Duration,
    /// Waits between reconnects (with jitter, never giving up).
    pub backoff: ExponentialBuilder,
    /// A connection up this long resets the backoff.
    pub healthy_after: Duration,
    /// How many non-signature messages wait while disconnected (oldest dropped beyond).
    pub buffer: usize,
    /// How long a caller waits for a signature response (the request itself stays pending).
    pub signature_timeout: Duration,
    /// How long the service has to acknowledge the registration before the session is dropped.
    pub registration_timeout: Duration,
    /// How long a heartbeat may go unacknowledged before the session is dropped.
    pub heartbeat_timeout: Duration,
    /// The parameter values before any proposal.
    pub parameters: RuntimeParameters,
}

impl StreamConfig {
    /// Defaults for `url` and `governance_key`: 10 s heartbeats (30 s to acknowledge), reconnects after
    /// 125 ms doubling to 400 ms, each plus up to as much again of jitter (so under 800 ms: a node is back
    /// within a second of the service, connect included), 10 s to acknowledge registration.
    pub fn new(url: impl Into<String>, governance_key: secp256k1::PublicKey) -> Self {
        Self {
            url: url.into(),
            bearer_token: None,
            tls: StreamTls::default(),
            node_id: "alys-node".into(),
            governance_key,
            network: Network::Regtest,
            heartbeat: Duration::from_secs(10),
            backoff: reconnect_backoff(Duration::from_millis(800)),
            healthy_after: Duration::from_secs(60),
            buffer: 1_024,
            signature_timeout: Duration::from_secs(60),
            registration_timeout: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(30),
            parameters: RuntimeParameters::with_max_blocks_without_pow(10),
        }
    }
}

/// Reconnect waits whose longest, jitter included, stays under `max`: from `max / 6.4` doubling to
/// `max / 2`, each plus a random part of up to as much again.
pub fn reconnect_backoff(max: Duration) -> ExponentialBuilder {
    let max = max.max(Duration::from_millis(10));
    ExponentialBuilder::new()
        .with_min_delay(max.mul_f64(0.156_25))
        .with_max_delay(max / 2)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
}

/// Why a stream request failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The database failed.
    #[error("governance store: {0}")]
    Store(#[from] StorageError),
    /// No response in time (a signature request stays pending and is re-sent after reconnects).
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// The stream actor stopped.
    #[error("governance stream stopped")]
    Stopped,
}

/// What governance told the node.
#[derive(Debug, Clone)]
pub enum GovernanceEvent {
    /// A verified federation update.
    Federation(Federation),
    /// A verified proposal, newly accepted.
    Proposal(Proposal),
    /// The answer to a signature request no caller waits for any more (it was re-sent after a restart
    /// or the caller timed out): whoever owns the transaction picks it up by request id.
    Signature(String, SignatureResponse),
}

/// Connection state, for RPC and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStatus {
    /// Whether the stream is up.
    pub connected: bool,
    /// Reconnects since start.
    pub reconnects: u64,
}

enum Command {
    Sign(String, SignatureRequest, oneshot::Sender<SignatureResponse>),
    Send(stream_request::Payload),
    Pending(oneshot::Sender<Vec<String>>),
    Federations(oneshot::Sender<Vec<Federation>>),
    FederationsAt(u64, oneshot::Sender<(Option<Federation>, Option<Federation>)>),
}

/// A cloneable handle to the StreamActor.
#[derive(Debug, Clone)]
pub struct StreamHandle {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<GovernanceEvent>,
    status: watch::Receiver<StreamStatus>,
    runtime: RuntimeView,
    signature_timeout: Duration,
    id_prefix: Arc<str>,
    next_id: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sign(..) => "Sign",
            Self::Send(_) => "Send",
            Self::Pending(_) => "Pending",
            Self::Federations(_) => "Federations",
            Self::FederationsAt(..) => "FederationsAt",
        })
    }
}

impl StreamHandle {
    /// Asks governance to sign; the request is stored durably before it is sent.
    pub async fn request_signatures(
        &self,
        request: SignatureRequest,
    ) -> Result<SignatureResponse, StreamError> {
        let id = format!(
            "sig-{}-{}",
            self.id_prefix,
            self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        self.request_signatures_with_id(id, request).await
    }

    /// Like [`Self::request_signatures`] with the caller's request id: a caller that persists its own
    /// work (the bridge) reuses the id after a restart so the service de-duplicates.
    pub async fn request_signatures_with_id(
        &self,
        id: String,
        request: SignatureRequest,
    ) -> Result<SignatureResponse, StreamError> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(Command::Sign(id, request, reply)).await.map_err(|_| StreamError::Stopped)?;
        tokio::time::timeout(self.signature_timeout, rx)
            .await
            .map_err(|_| StreamError::Timeout(self.signature_timeout))?
            .map_err(|_| StreamError::Stopped)
    }

    /// Sends a message that needs no answer (peg-in notification, status); buffered while disconnected.
    pub async fn send(&self, payload: stream_request::Payload) -> Result<(), StreamError> {
        self.commands.send(Command::Send(payload)).await.map_err(|_| StreamError::Stopped)
    }

    /// Ids of the signature requests stored and not yet answered.
    pub async fn pending(&self) -> Result<Vec<String>, StreamError> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(Command::Pending(reply)).await.map_err(|_| StreamError::Stopped)?;
        rx.await.map_err(|_| StreamError::Stopped)
    }

    /// The federations known, oldest first (for `getdepositaddress`).
    pub async fn federations(&self) -> Result<Vec<Federation>, StreamError> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(Command::Federations(reply)).await.map_err(|_| StreamError::Stopped)?;
        rx.await.map_err(|_| StreamError::Stopped)
    }

    /// The federation in force at `height` and the one before it (deposits to either are recognised).
    pub async fn federations_at(
        &self,
        height: u64,
    ) -> Result<(Option<Federation>, Option<Federation>), StreamError> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(Command::FederationsAt(height, reply)).await.map_err(|_| StreamError::Stopped)?;
        rx.await.map_err(|_| StreamError::Stopped)
    }

    /// Federation updates and proposals as they arrive.
    pub fn subscribe(&self) -> broadcast::Receiver<GovernanceEvent> {
        self.events.subscribe()
    }

    /// The connection state.
    pub fn status(&self) -> StreamStatus {
        *self.status.borrow()
    }

    /// The proposals in force, as the chain actor and the peg-out source see them.
    pub fn runtime(&self) -> RuntimeView {
        self.runtime.clone()
    }
}

struct StreamActor {
    config: StreamConfig,
    storage: Arc<Storage>,
    federations: FederationHistory,
    proposals: ProposalBook,
    runtime: watch::Sender<Arc<ProposalBook>>,
    waiting: HashMap<String, oneshot::Sender<SignatureResponse>>,
    /// When each request of this session was sent, by id, with its type (latency and timeouts).
    in_flight: HashMap<String, (RequestKind, tokio::time::Instant)>,
    /// Notifications waiting for a session, with the request id each was given when it was accepted.
    buffered: VecDeque<(String, stream_request::Payload)>,
    /// Numbers notification request ids.
    notification_seq: u64,
    /// Makes request ids of this run unique across restarts.
    id_prefix: Arc<str>,
    events: broadcast::Sender<GovernanceEvent>,
    status: watch::Sender<StreamStatus>,
    heartbeat_seq: u64,
}

/// Loads governance's state from `storage` and starts the StreamActor.
pub fn spawn(
    config: StreamConfig,
    storage: Arc<Storage>,
) -> Result<(StreamHandle, tokio::task::JoinHandle<()>), StreamError> {
    let mut federations = FederationHistory::default();
    let mut proposals = ProposalBook::new(config.parameters);
    {
        let read = storage.read()?;
        for (_, bytes) in read.federation_updates()? {
            // Stored updates were verified on arrival; re-verify anyway, a database is outside data too.
            if let Ok(update) = FederationUpdate::decode(bytes.as_slice())
                && let Ok(federation) =
                    Federation::from_update(&update, &config.governance_key, config.network)
            {
                let _ = federations.insert(federation);
            }
        }
        for (_, bytes) in read.proposals()? {
            if let Ok(notification) = ProposalNotification::decode(bytes.as_slice())
                && let Ok(proposal) = Proposal::from_notification(&notification, &config.governance_key)
            {
                let _ = proposals.insert(proposal);
            }
        }
    }
    let (runtime_tx, runtime_rx) = watch::channel(Arc::new(proposals.clone()));
    let (commands, rx) = mpsc::channel(256);
    let (events, _) = broadcast::channel(64);
    let (status_tx, status) = watch::channel(StreamStatus::default());
    let signature_timeout = config.signature_timeout;
    let next_id = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // Unique across restarts: ids of requests still pending from an earlier run never collide.
    let started =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let id_prefix: Arc<str> = format!("{started:x}").into();
    let actor = StreamActor {
        config,
        storage,
        federations,
        proposals,
        runtime: runtime_tx,
        waiting: HashMap::new(),
        in_flight: HashMap::new(),
        buffered: VecDeque::new(),
        notification_seq: 0,
        id_prefix: Arc::clone(&id_prefix),
        events: events.clone(),
        status: status_tx,
        heartbeat_seq: 0,
    };
    let task = tokio::spawn(actor.run(rx));
    let runtime = RuntimeView::new(runtime_rx);
    Ok((StreamHandle { commands, events, status, runtime, signature_timeout, id_prefix, next_id }, task))
}

impl StreamActor {
    fn metadata(&self, request_id: String) -> Option<RequestMetadata> {
        Some(RequestMetadata {
            request_id,
            timestamp: unix_now(),
            node_id: self.config.node_id.clone(),
            protocol_version: "governance.v1".into(),
            priority: 0,
            timeout: None,
        })
    }

    fn pending(&self) -> Result<Vec<(String, SignatureRequest)>, StreamError> {
        let stored = self.storage.read()?.signature_requests()?;
        Ok(stored
            .into_iter()
            .filter_map(|(id, bytes)| SignatureRequest::decode(bytes.as_slice()).ok().map(|r| (id, r)))
            .collect())
    }

    fn store_pending(&self, id: &str, request: &SignatureRequest) -> Result<(), StreamError> {
        let tx = self.storage.write()?;
        tx.put_signature_request(id, &request.encode_to_vec())?;
        tx.commit()?;
        Ok(())
    }

    /// Deletes a pending request; whether it was there (a second answer to the same id finds nothing).
    fn take_pending(&self, id: &str) -> Result<bool, StreamError> {
        let tx = self.storage.write()?;
        let was = tx.take_signature_request(id)?;
        tx.commit()?;
        Ok(was)
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut backoff = self.config.backoff.build();
        let mut reconnects = 0u64;
        loop {
            let started = tokio::time::Instant::now();
            match self.session(&mut commands).await {
                SessionEnd::Shutdown => return,
                SessionEnd::Lost(reason) => {
                    tracing::warn!(target: "alys::governance", %reason, "governance stream lost");
                }
            }
            self.status.send_replace(StreamStatus { connected: false, reconnects });
            metrics::gauge!("alys_governance_connected").set(0.0);
            if started.elapsed() >= self.config.healthy_after {
                backoff = self.config.backoff.build();
            }
            // Jittered, so a restarted service is not hit by every node at once.
            let delay = backoff.next().unwrap_or(Duration::from_secs(1));
            // Keep serving commands while waiting, so signature requests are stored even when offline.
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    command = commands.recv() => match command {
                        Some(command) => self.accept(command, None).await,
                        None => return,
                    },
                }
            }
            reconnects += 1;
            self.status.send_modify(|status| status.reconnects = reconnects);
            metrics::counter!("alys_governance_reconnects_total").increment(1);
        }
    }

    /// Takes a command: signature requests are stored (and sent if connected), others buffered or sent.
    async fn accept(&mut self, command: Command, out: Option<&mpsc::Sender<StreamRequest>>) {
        match command {
            Command::Sign(id, request, reply) => {
                if let Err(error) = self.store_pending(&id, &request) {
                    tracing::error!(target: "alys::governance", %error, "cannot store signature request");
                    return;
                }
                self.waiting.insert(id.clone(), reply);
                if let Some(out) = out {
                    let payload = stream_request::Payload::SignatureRequest(request);
                    let _ = self.send_request(out, RequestKind::Signature, id, payload).await;
                }
            }
            Command::Pending(reply) => {
                let ids =
                    self.pending().map(|p| p.into_iter().map(|(id, _)| id).collect()).unwrap_or_default();
                let _ = reply.send(ids);
            }
            Command::Federations(reply) => {
                let _ = reply.send(self.federations.iter().cloned().collect());
            }
            Command::FederationsAt(height, reply) => {
                let _ = reply
                    .send((self.federations.at(height).cloned(), self.federations.previous(height).cloned()));
            }
            Command::Send(payload) => {
                self.notification_seq += 1;
                let id = format!("note-{}-{}", self.id_prefix, self.notification_seq);
                match out {
                    Some(out) => {
                        let _ = self.send_request(out, RequestKind::Notification, id, payload).await;
                    }
                    None => {
                        if self.buffered.len() >= self.config.buffer {
                            self.buffered.pop_front();
                            metrics::counter!("alys_governance_buffer_dropped_total").increment(1);
                        }
                        self.buffered.push_back((id, payload));
                        metrics::gauge!("alys_governance_buffered").set(self.buffered.len() as f64);
                    }
                }
            }
        }
    }

    /// Sends `payload` as request `id` of `kind`, remembering when, for latency and timeouts.
    async fn send_request(
        &mut self,
        out: &mpsc::Sender<StreamRequest>,
        kind: RequestKind,
        id: String,
        payload: stream_request::Payload,
    ) -> bool {
        if kind != RequestKind::Notification {
            self.in_flight.insert(id.clone(), (kind, tokio::time::Instant::now()));
        }
        out.send(StreamRequest { metadata: self.metadata(id), payload: Some(payload) }).await.is_ok()
    }

    /// A response to `request_id` arrived: record its latency; `None` if nothing of ours was in flight.
    fn answered(&mut self, request_id: &str) -> Option<RequestKind> {
        let (kind, sent) = self.in_flight.remove(request_id)?;
        metrics::histogram!("alys_governance_request_seconds", "type" => kind.as_str())
            .record(sent.elapsed().as_secs_f64());
        Some(kind)
    }

    /// The oldest request that outlived its type's timeout (signature requests never expire here: they
    /// stay pending and are re-sent on the next session).
    fn expired(&self) -> Option<(RequestKind, Duration)> {
        self.in_flight.values().find_map(|(kind, sent)| {
            let limit = match kind {
                RequestKind::Registration => self.config.registration_timeout,
                RequestKind::Heartbeat => self.config.heartbeat_timeout,
                RequestKind::Signature | RequestKind::Notification => return None,
            };
            (sent.elapsed() > limit).then_some((*kind, limit))
        })
    }

    async fn connect(&self) -> Result<tonic::transport::Channel, String> {
        let mut endpoint = tonic::transport::Endpoint::from_shared(self.config.url.clone())
            .map_err(|e| format!("bad governance url: {e}"))?
            .connect_timeout(Duration::from_secs(5))
            .http2_keep_alive_interval(Duration::from_secs(15))
            .keep_alive_timeout(Duration::from_secs(10));
        if self.config.url.starts_with("https://") {
            let mut tls = tonic::transport::ClientTlsConfig::new();
            tls = match &self.config.tls.ca_pem {
                Some(pem) => tls.ca_certificate(tonic::transport::Certificate::from_pem(pem)),
                None => tls.with_webpki_roots(),
            };
            if let Some(domain) = &self.config.tls.domain {
                tls = tls.domain_name(domain.clone());
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| format!("TLS settings: {e}"))?;
        }
        endpoint.connect().await.map_err(|e| format!("{e}: {}", source_chain(&e)))
    }

    async fn session(&mut self, commands: &mut mpsc::Receiver<Command>) -> SessionEnd {
        let channel = match self.connect().await {
            Ok(c) => c,
            Err(e) => return SessionEnd::Lost(e),
        };
        let token = self.config.bearer_token.clone();
        let mut client =
            GovernanceStreamClient::with_interceptor(channel, move |mut req: tonic::Request<()>| {
                if let Some(token) = &token {
                    let value = format!("Bearer {token}")
                        .parse()
                        .map_err(|_| tonic::Status::unauthenticated("bad token"))?;
                    req.metadata_mut().insert("authorization", value);
                }
                Ok(req)
            });
        let (out, rx) = mpsc::channel::<StreamRequest>(256);
        let mut responses = match client.stream(ReceiverStream::new(rx)).await {
            Ok(r) => r.into_inner(),
            Err(e) => return SessionEnd::Lost(e.to_string()),
        };
        self.in_flight.clear();
        // Register and wait for the acknowledgement (routing whatever the service pushes meanwhile).
        let registration = stream_request::Payload::NodeRegistration(NodeRegistration {
            node_info: Some(NodeInfo {
                public_key: self.config.node_id.clone(),
                node_type: 1,
                version: env!("CARGO_PKG_VERSION").into(),
                region: None,
            }),
            capabilities: vec!["pegout-signing".into()],
            endpoints: Vec::new(),
            auth: None,
        });
        let register_id = format!("register-{}", self.status.borrow().reconnects);
        if !self.send_request(&out, RequestKind::Registration, register_id.clone(), registration).await {
            return SessionEnd::Lost("stream closed at registration".into());
        }
        let deadline = tokio::time::Instant::now() + self.config.registration_timeout;
        loop {
            match tokio::time::timeout_at(deadline, responses.next()).await {
                Err(_) => {
                    return SessionEnd::Lost(format!(
                        "registration not acknowledged within {:?}",
                        self.config.registration_timeout
                    ));
                }
                Ok(Some(Ok(response))) => {
                    if let Some(stream_response::Payload::RegistrationAck(ack)) = &response.payload {
                        let _ = self.answered(&register_id);
                        if !ack.accepted {
                            return SessionEnd::Lost("governance refused the registration".into());
                        }
                        break;
                    }
                    self.route(response);
                }
                Ok(Some(Err(status))) => return SessionEnd::Lost(status.to_string()),
                Ok(None) => return SessionEnd::Lost("governance closed the stream at registration".into()),
            }
        }
        // Replay what was waiting: pending signature requests keep their ids.
        match self.pending() {
            Ok(pending) => {
                for (id, request) in pending {
                    let payload = stream_request::Payload::SignatureRequest(request);
                    if !self.send_request(&out, RequestKind::Signature, id, payload).await {
                        return SessionEnd::Lost("stream closed during replay".into());
                    }
                }
            }
            Err(error) => tracing::error!(target: "alys::governance", %error, "cannot read pending requests"),
        }
        while let Some((id, payload)) = self.buffered.pop_front() {
            let _ = self.send_request(&out, RequestKind::Notification, id, payload).await;
        }
        metrics::gauge!("alys_governance_buffered").set(0.0);
        let reconnects = self.status.borrow().reconnects;
        self.status.send_replace(StreamStatus { connected: true, reconnects });
        metrics::gauge!("alys_governance_connected").set(1.0);
        tracing::info!(target: "alys::governance", url = %self.config.url, "governance stream up");

        let mut heartbeat = tokio::time::interval(self.config.heartbeat);
        heartbeat.tick().await;
        let mut check = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.accept(command, Some(&out)).await,
                    None => return SessionEnd::Shutdown,
                },
                response = responses.next() => match response {
                    Some(Ok(response)) => self.route(response),
                    Some(Err(status)) => return SessionEnd::Lost(status.to_string()),
                    None => return SessionEnd::Lost("governance closed the stream".into()),
                },
                _ = heartbeat.tick() => {
                    self.heartbeat_seq += 1;
                    let seq = self.heartbeat_seq;
                    let payload = stream_request::Payload::Heartbeat(Heartbeat { timestamp: unix_now(), sequence: seq, health: 1 });
                    if !self.send_request(&out, RequestKind::Heartbeat, format!("hb-{seq}"), payload).await {
                        return SessionEnd::Lost("stream closed".into());
                    }
                }
                _ = check.tick() => {
                    if let Some((kind, limit)) = self.expired() {
                        metrics::counter!("alys_governance_timeouts_total", "type" => kind.as_str()).increment(1);
                        return SessionEnd::Lost(format!("{} not acknowledged within {limit:?}", kind.as_str()));
                    }
                }
            }
        }
    }

    fn route(&mut self, response: StreamResponse) {
        let request_id = response.metadata.map(|m| m.request_id).unwrap_or_default();
        match response.payload {
            Some(stream_response::Payload::SignatureResponse(signatures)) => {
                let _ = self.answered(&request_id);
                // Duplicates (same id answered twice) find nothing pending the second time.
                let was_pending = match self.take_pending(&request_id) {
                    Ok(was) => was,
                    Err(error) => {
                        tracing::error!(target: "alys::governance", %error, "cannot clear answered request");
                        false
                    }
                };
                if !was_pending {
                    metrics::counter!("alys_governance_duplicate_responses_total").increment(1);
                    return;
                }
                match self.waiting.remove(&request_id) {
                    Some(reply) => {
                        if let Err(signatures) = reply.send(signatures) {
                            let _ = self.events.send(GovernanceEvent::Signature(request_id, signatures));
                        }
                    }
                    None => {
                        let _ = self.events.send(GovernanceEvent::Signature(request_id, signatures));
                    }
                }
            }
            Some(stream_response::Payload::FederationUpdate(update)) => {
                match Federation::from_update(&update, &self.config.governance_key, self.config.network) {
                    Ok(federation) => {
                        let height = federation.effective_height;
                        if self.federations.insert(federation.clone()).is_ok() {
                            let stored = self.storage.write().and_then(|tx| {
                                tx.put_federation_update(height, &update.encode_to_vec())?;
                                tx.commit()
                            });
                            if let Err(error) = stored {
                                tracing::error!(target: "alys::governance", %error, "cannot store federation");
                            }
                            tracing::info!(target: "alys::governance", height, address = %federation.address, "federation update");
                            let _ = self.events.send(GovernanceEvent::Federation(federation));
                        }
                    }
                    Err(error) => {
                        metrics::counter!("alys_governance_rejected_total", "type" => "federation_update")
                            .increment(1);
                        tracing::warn!(target: "alys::governance", %error, "federation update refused");
                    }
                }
            }
            Some(stream_response::Payload::ProposalNotification(notification)) => {
                self.accept_proposal(&notification);
            }
            Some(stream_response::Payload::ErrorResponse(error)) => {
                let _ = self.answered(&request_id);
                tracing::warn!(target: "alys::governance", request_id, message = %error.error_message, "governance error");
            }
            Some(stream_response::Payload::HeartbeatAck(_)) => {
                let _ = self.answered(&request_id);
            }
            Some(stream_response::Payload::RegistrationAck(_)) | None => {}
        }
    }

    /// Verifies, stores and publishes a proposal; refused ones are counted and logged, never applied.
    fn accept_proposal(&mut self, notification: &ProposalNotification) {
        let proposal = match Proposal::from_notification(notification, &self.config.governance_key) {
            Ok(p) => p,
            Err(error) => {
                metrics::counter!("alys_governance_rejected_total", "type" => "proposal").increment(1);
                tracing::warn!(target: "alys::governance", id = %notification.proposal_id, %error, "proposal refused");
                return;
            }
        };
        match self.proposals.insert(proposal.clone()) {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                metrics::counter!("alys_governance_rejected_total", "type" => "proposal").increment(1);
                tracing::warn!(target: "alys::governance", %error, "proposal refused");
                return;
            }
        }
        let stored = self.storage.write().and_then(|tx| {
            tx.put_proposal(&proposal.id, &notification.encode_to_vec())?;
            tx.commit()
        });
        if let Err(error) = stored {
            tracing::error!(target: "alys::governance", %error, "cannot store proposal");
        }
        tracing::info!(target: "alys::governance", id = %proposal.id, height = proposal.effective_height,
            action = ?proposal.action, "proposal accepted");
        metrics::counter!("alys_governance_proposals_total", "type" => proposal.proposal_type.clone())
            .increment(1);
        self.runtime.send_replace(Arc::new(self.proposals.clone()));
        let _ = self.events.send(GovernanceEvent::Proposal(proposal));
    }
}

/// The kinds of request the node sends, for timeouts and the latency histogram's `type` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestKind {
    Registration,
    Heartbeat,
    Signature,
    /// Peg-in notifications and status updates: no answer expected.
    Notification,
}

impl RequestKind {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::Heartbeat => "heartbeat",
            Self::Signature => "signature",
            Self::Notification => "notification",
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The causes of a transport error, which tonic keeps in `source()` (e.g. the TLS failure).
fn source_chain(error: &dyn std::error::Error) -> String {
    let mut out = Vec::new();
    let mut cause = error.source();
    while let Some(e) = cause {
        out.push(e.to_string());
        cause = e.source();
    }
    out.join(": ")
}

enum SessionEnd {
    Shutdown,
    Lost(String),
}
