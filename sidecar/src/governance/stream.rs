//! The StreamActor: the node's one long-lived bidirectional stream to the governance service.
//!
//! It connects (plaintext on loopback for devnets; a bearer token is sent when configured), registers,
//! heartbeats, and reconnects with exponential backoff and jitter, the backoff reset after a healthy
//! period. Signature requests are never dropped: each is written to the actor's redb store with its
//! request id before it is sent, re-sent with the same id after every reconnect or restart (so the
//! service can de-duplicate), and deleted only when its response arrives. Other outgoing messages wait in
//! a bounded buffer while disconnected. Responses are matched to requests by id, with a timeout per
//! request; federation updates are verified against the governance key and kept by effective height;
//! proposals are passed on to subscribers.

use std::{
    collections::{HashMap, VecDeque},
    path::Path,
    sync::Arc,
    time::Duration,
};

use alys_proto::governance::v1::{
    FederationUpdate, Heartbeat, NodeInfo, NodeRegistration, ProposalNotification, RequestMetadata,
    SignatureRequest, SignatureResponse, StreamRequest, StreamResponse,
    governance_stream_client::GovernanceStreamClient, stream_request, stream_response,
};
use bitcoin::{Network, secp256k1};
use prost::Message as _;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_stream::{StreamExt, wrappers::ReceiverStream};

use super::federation::{Federation, FederationHistory};

const PENDING: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("pending_signature_requests");
const FEDERATIONS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("federation_updates");

/// Settings of the stream.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// The governance service, e.g. `http://127.0.0.1:50061`.
    pub url: String,
    /// Sent as `authorization: Bearer <token>` when set.
    pub bearer_token: Option<String>,
    /// This node's id in request metadata.
    pub node_id: String,
    /// The key that signs federation updates.
    pub governance_key: secp256k1::PublicKey,
    /// Bitcoin network of the deposit addresses.
    pub network: Network,
    /// Interval between heartbeats.
    pub heartbeat: Duration,
    /// First reconnect delay; doubled per failure up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest reconnect delay.
    pub max_backoff: Duration,
    /// A connection up this long resets the backoff.
    pub healthy_after: Duration,
    /// How many non-signature messages wait while disconnected (oldest dropped beyond).
    pub buffer: usize,
    /// How long a caller waits for a signature response (the request itself stays pending).
    pub signature_timeout: Duration,
}

impl StreamConfig {
    /// Defaults for `url` and `governance_key`: 10 s heartbeats, 250 ms..30 s backoff.
    pub fn new(url: impl Into<String>, governance_key: secp256k1::PublicKey) -> Self {
        Self {
            url: url.into(),
            bearer_token: None,
            node_id: "alys-node".into(),
            governance_key,
            network: Network::Regtest,
            heartbeat: Duration::from_secs(10),
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            healthy_after: Duration::from_secs(60),
            buffer: 1_024,
            signature_timeout: Duration::from_secs(60),
        }
    }
}

/// Why a stream request failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The store failed.
    #[error("governance store: {0}")]
    Store(String),
    /// No response in time (a signature request stays pending and is re-sent after reconnects).
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// The stream actor stopped.
    #[error("governance stream stopped")]
    Stopped,
}

macro_rules! store_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StreamError {
            fn from(e: $t) -> Self {
                Self::Store(e.to_string())
            }
        }
    )*};
}
store_err!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// What governance told the node.
#[derive(Debug, Clone)]
pub enum GovernanceEvent {
    /// A verified federation update.
    Federation(Federation),
    /// A proposal.
    Proposal(ProposalNotification),
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
}

/// A cloneable handle to the StreamActor.
#[derive(Debug, Clone)]
pub struct StreamHandle {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<GovernanceEvent>,
    status: watch::Receiver<StreamStatus>,
    signature_timeout: Duration,
    next_id: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sign(..) => "Sign",
            Self::Send(_) => "Send",
            Self::Pending(_) => "Pending",
            Self::Federations(_) => "Federations",
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
            std::process::id(),
            self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
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

    /// Federation updates and proposals as they arrive.
    pub fn subscribe(&self) -> broadcast::Receiver<GovernanceEvent> {
        self.events.subscribe()
    }

    /// The connection state.
    pub fn status(&self) -> StreamStatus {
        *self.status.borrow()
    }
}

struct StreamActor {
    config: StreamConfig,
    db: Database,
    federations: FederationHistory,
    waiting: HashMap<String, oneshot::Sender<SignatureResponse>>,
    buffered: VecDeque<stream_request::Payload>,
    events: broadcast::Sender<GovernanceEvent>,
    status: watch::Sender<StreamStatus>,
    heartbeat_seq: u64,
}

/// Opens the store at `store_path` and starts the StreamActor.
pub fn spawn(
    config: StreamConfig,
    store_path: &Path,
) -> Result<(StreamHandle, tokio::task::JoinHandle<()>), StreamError> {
    let db = Database::create(store_path)?;
    let tx = db.begin_write()?;
    tx.open_table(PENDING)?;
    tx.open_table(FEDERATIONS)?;
    tx.commit()?;
    let mut federations = FederationHistory::default();
    {
        let read = db.begin_read()?;
        for entry in read.open_table(FEDERATIONS)?.iter()? {
            let (_, bytes) = entry?;
            // Stored updates were verified on arrival; re-verify anyway, a store is outside data too.
            if let Ok(update) = FederationUpdate::decode(bytes.value())
                && let Ok(federation) =
                    Federation::from_update(&update, &config.governance_key, config.network)
            {
                let _ = federations.insert(federation);
            }
        }
    }
    let (commands, rx) = mpsc::channel(256);
    let (events, _) = broadcast::channel(64);
    let (status_tx, status) = watch::channel(StreamStatus::default());
    let signature_timeout = config.signature_timeout;
    let actor = StreamActor {
        config,
        db,
        federations,
        waiting: HashMap::new(),
        buffered: VecDeque::new(),
        events: events.clone(),
        status: status_tx,
        heartbeat_seq: 0,
    };
    let task = tokio::spawn(actor.run(rx));
    let next_id = Arc::new(std::sync::atomic::AtomicU64::new(0));
    Ok((StreamHandle { commands, events, status, signature_timeout, next_id }, task))
}

impl StreamActor {
    fn metadata(&self, request_id: String) -> Option<RequestMetadata> {
        Some(RequestMetadata {
            request_id,
            timestamp: 0,
            node_id: self.config.node_id.clone(),
            protocol_version: "governance.v1".into(),
            priority: 0,
            timeout: None,
        })
    }

    fn pending(&self) -> Result<Vec<(String, SignatureRequest)>, StreamError> {
        let read = self.db.begin_read()?;
        let table = read.open_table(PENDING)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (id, bytes) = entry?;
            if let Ok(request) = SignatureRequest::decode(bytes.value()) {
                out.push((id.value().to_owned(), request));
            }
        }
        Ok(out)
    }

    fn store_pending(&self, id: &str, request: &SignatureRequest) -> Result<(), StreamError> {
        let tx = self.db.begin_write()?;
        tx.open_table(PENDING)?.insert(id, request.encode_to_vec().as_slice())?;
        tx.commit()?;
        Ok(())
    }

    fn clear_pending(&self, id: &str) -> Result<(), StreamError> {
        let tx = self.db.begin_write()?;
        tx.open_table(PENDING)?.remove(id)?;
        tx.commit()?;
        Ok(())
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut backoff = self.config.min_backoff;
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
                backoff = self.config.min_backoff;
            }
            // Jitter in [backoff/2, backoff] so a restarted service is not hit by every node at once.
            let jitter = backoff.mul_f64(0.5 + fastrand_unit() / 2.0);
            // Keep serving commands while waiting, so signature requests are stored even when offline.
            let sleep = tokio::time::sleep(jitter);
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
            backoff = backoff.saturating_mul(2).min(self.config.max_backoff);
            reconnects += 1;
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
                    let message = StreamRequest {
                        metadata: self.metadata(id),
                        payload: Some(stream_request::Payload::SignatureRequest(request)),
                    };
                    let _ = out.send(message).await;
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
            Command::Send(payload) => match out {
                Some(out) => {
                    let message =
                        StreamRequest { metadata: self.metadata(String::new()), payload: Some(payload) };
                    let _ = out.send(message).await;
                }
                None => {
                    if self.buffered.len() >= self.config.buffer {
                        self.buffered.pop_front();
                        metrics::counter!("alys_governance_buffer_dropped_total").increment(1);
                    }
                    self.buffered.push_back(payload);
                    metrics::gauge!("alys_governance_buffered").set(self.buffered.len() as f64);
                }
            },
        }
    }

    async fn session(&mut self, commands: &mut mpsc::Receiver<Command>) -> SessionEnd {
        let endpoint = match tonic::transport::Endpoint::from_shared(self.config.url.clone()) {
            Ok(e) => e.connect_timeout(Duration::from_secs(5)),
            Err(e) => return SessionEnd::Lost(e.to_string()),
        };
        let channel = match endpoint.connect().await {
            Ok(c) => c,
            Err(e) => return SessionEnd::Lost(e.to_string()),
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
        // Register, then replay what was waiting: pending signature requests keep their ids.
        let registration = StreamRequest {
            metadata: self.metadata("register".into()),
            payload: Some(stream_request::Payload::NodeRegistration(NodeRegistration {
                node_info: Some(NodeInfo {
                    public_key: self.config.node_id.clone(),
                    node_type: 1,
                    version: env!("CARGO_PKG_VERSION").into(),
                    region: None,
                }),
                capabilities: vec!["pegout-signing".into()],
                endpoints: Vec::new(),
                auth: None,
            })),
        };
        if out.send(registration).await.is_err() {
            return SessionEnd::Lost("stream closed at registration".into());
        }
        match self.pending() {
            Ok(pending) => {
                for (id, request) in pending {
                    let message = StreamRequest {
                        metadata: self.metadata(id),
                        payload: Some(stream_request::Payload::SignatureRequest(request)),
                    };
                    let _ = out.send(message).await;
                }
            }
            Err(error) => tracing::error!(target: "alys::governance", %error, "cannot read pending requests"),
        }
        while let Some(payload) = self.buffered.pop_front() {
            let _ = out
                .send(StreamRequest { metadata: self.metadata(String::new()), payload: Some(payload) })
                .await;
        }
        let reconnects = self.status.borrow().reconnects;
        self.status.send_replace(StreamStatus { connected: true, reconnects });
        metrics::gauge!("alys_governance_connected").set(1.0);
        tracing::info!(target: "alys::governance", url = %self.config.url, "governance stream up");

        let mut heartbeat = tokio::time::interval(self.config.heartbeat);
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
                    let beat = StreamRequest {
                        metadata: self.metadata(format!("hb-{}", self.heartbeat_seq)),
                        payload: Some(stream_request::Payload::Heartbeat(Heartbeat { timestamp: 0, sequence: self.heartbeat_seq, health: 1 })),
                    };
                    if out.send(beat).await.is_err() {
                        return SessionEnd::Lost("stream closed".into());
                    }
                }
            }
        }
    }

    fn route(&mut self, response: StreamResponse) {
        let request_id = response.metadata.map(|m| m.request_id).unwrap_or_default();
        match response.payload {
            Some(stream_response::Payload::SignatureResponse(signatures)) => {
                // Duplicates (same id answered twice) find nothing waiting the second time.
                if let Err(error) = self.clear_pending(&request_id) {
                    tracing::error!(target: "alys::governance", %error, "cannot clear answered request");
                }
                if let Some(reply) = self.waiting.remove(&request_id) {
                    let _ = reply.send(signatures);
                }
            }
            Some(stream_response::Payload::FederationUpdate(update)) => {
                match Federation::from_update(&update, &self.config.governance_key, self.config.network) {
                    Ok(federation) => {
                        let height = federation.effective_height;
                        if self.federations.insert(federation.clone()).is_ok() {
                            let stored = self.db.begin_write().map_err(StreamError::from).and_then(|tx| {
                                tx.open_table(FEDERATIONS)?
                                    .insert(height, update.encode_to_vec().as_slice())?;
                                tx.commit()?;
                                Ok(())
                            });
                            if let Err(error) = stored {
                                tracing::error!(target: "alys::governance", %error, "cannot store federation");
                            }
                            tracing::info!(target: "alys::governance", height, address = %federation.address, "federation update");
                            let _ = self.events.send(GovernanceEvent::Federation(federation));
                        }
                    }
                    Err(error) => {
                        metrics::counter!("alys_governance_rejected_updates_total").increment(1);
                        tracing::warn!(target: "alys::governance", %error, "federation update refused");
                    }
                }
            }
            Some(stream_response::Payload::ProposalNotification(proposal)) => {
                let _ = self.events.send(GovernanceEvent::Proposal(proposal));
            }
            Some(stream_response::Payload::ErrorResponse(error)) => {
                tracing::warn!(target: "alys::governance", request_id, message = %error.error_message, "governance error");
            }
            Some(
                stream_response::Payload::RegistrationAck(_) | stream_response::Payload::HeartbeatAck(_),
            )
            | None => {}
        }
    }
}

enum SessionEnd {
    Shutdown,
    Lost(String),
}

/// A cheap uniform value in [0, 1) from the clock, for backoff jitter (not for anything secret).
fn fastrand_unit() -> f64 {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1_000) / 1_000.0
}
