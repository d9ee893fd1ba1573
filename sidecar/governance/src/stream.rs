//! The StreamActor: the node's one long-lived bidirectional stream to the governance service.
//!
//! # The connection
//!
//! It connects over TLS (rustls; the system's web PKI roots or a configured CA) or, for devnets, in
//! plaintext on loopback, sends a bearer token when configured, registers (and waits for the
//! acknowledgement), heartbeats (a missing acknowledgement ends the session), and reconnects with
//! exponential backoff and jitter, the backoff reset after a healthy period. Outgoing notifications
//! wait in a bounded buffer while disconnected.
//!
//! # Signature requests and their answers
//!
//! Nothing is dropped, in either direction:
//!
//! * a request is written to the node's database with its request id before it is sent, and re-sent
//!   with the same id after every reconnect or restart until answered (governance de-duplicates by id,
//!   answering a repeated id with its first answer rather than signing again);
//! * its answer replaces it in one commit and then stays stored until a consumer takes it. A caller
//!   waiting in [`StreamHandle::request_signatures_with_id`] gets a copy; a caller that gave up (timed
//!   out, dropped its future, restarted) asks again with the same id and gets the stored answer at once,
//!   without a round trip. The consumer takes it with [`StreamHandle::take_signature_response`], or,
//!   when it has state of its own to save, with [`crate::store::take_signature_response`] inside its own
//!   transaction. Repeated answers to one id find no pending request and are not stored twice.
//!
//! ```text
//! caller ──request_signatures_with_id(id)──▶ actor: answer stored? ── yes ──▶ answer at once
//!                                                   │ no
//!                                                   ▼
//!                                      commit request (id) ──▶ send ──▶ governance
//!                                                                           │ answer (id)
//!                        commit: request out, answer in ◀───────────────────┘
//!                                   │
//!                    caller still waiting? ── yes ──▶ copy to the caller (the answer stays stored)
//!                                   │ no
//!                                   ▼
//!                   kept for a later request_signatures_with_id(id) / take_signature_response(id)
//! ```
//!
//! # Federation updates and proposals
//!
//! Verified against the governance key, checked against the node's head (one effective at or below
//! the head is refused: the block there exists; [`crate::decisions`] has the rule), saved, and only
//! then applied and published (to the [`RuntimeView`]s and to subscribers); a failed save is not
//! applied, and the session is restarted so governance sends it again ([`crate::store`] has the rule
//! and the commit points).
//!
//! The head is the one the chain actor publishes ([`StreamConfig::with_heads`]) when the message
//! arrives, and the one committed in the node's database inside the transaction that saves it, so a
//! block committed in between is seen. A refusal is counted in [`crate::metrics::REJECTED`] with its
//! reason and logged at WARN; `governance.v1` has no message to tell governance, which re-issues the
//! decision at a height above the head.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use alys_primitives::ChainHeads;
use alys_proto::governance::v1::{
    FederationUpdate, Heartbeat, NodeInfo, NodeRegistration, ProposalNotification, RequestMetadata,
    SignatureRequest, SignatureResponse, StreamRequest, StreamResponse,
    governance_stream_client::GovernanceStreamClient, stream_request, stream_response,
};
use alys_storage::{ChainRead, GovernanceRead, Storage, StorageError, WriteTx};
use backon::{BackoffBuilder, ExponentialBuilder};
use bitcoin::{Network, secp256k1};
use prost::Message as _;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tracing::Instrument as _;

use crate::{
    decisions::{self, Decisions, RuntimeView},
    federation::{Federation, FederationError, FederationHistory},
    metrics as m,
    proposals::{Proposal, ProposalBook, ProposalError, RuntimeParameters},
    store::{self, Commit, StoreError},
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
    /// Where the chain stands (the chain actor's heads channel): decisions effective at or below its
    /// head are refused. Without it (tests, tools without a chain) only the head committed in the
    /// database counts.
    pub heads: Option<watch::Receiver<ChainHeads>>,
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
            heads: None,
        }
    }

    /// Follows the chain's heads: decisions effective at or below the head are refused.
    pub fn with_heads(mut self, heads: watch::Receiver<ChainHeads>) -> Self {
        self.heads = Some(heads);
        self
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
    /// The database failed, or a stored answer does not decode.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No answer in time. The request stays pending (re-sent after reconnects) and its answer is kept
    /// when it comes: ask again with the same id, or take it by id.
    #[error("no answer to signature request {request_id} within {after:?}")]
    Timeout {
        /// The request's id, to find its answer by later.
        request_id: String,
        /// How long the caller waited.
        after: Duration,
    },
    /// The stream actor stopped.
    #[error("governance stream stopped")]
    Stopped,
}

impl From<StorageError> for StreamError {
    fn from(error: StorageError) -> Self {
        Self::Store(StoreError::Storage(error))
    }
}

/// What governance told the node.
#[derive(Debug, Clone)]
pub enum GovernanceEvent {
    /// A verified federation update.
    Federation(Federation),
    /// A verified proposal, newly accepted.
    Proposal(Proposal),
    /// The answer to a signature request no caller was waiting for (the caller timed out, or the node
    /// restarted in between). It is stored under the request id until a consumer takes it; this event
    /// only says it is there.
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

/// Where the actor sends a command's answer.
type Reply<T> = oneshot::Sender<Result<T, StreamError>>;

enum Command {
    Sign(String, SignatureRequest, Reply<SignatureResponse>),
    Send(stream_request::Payload),
    Pending(Reply<Vec<String>>),
    Answered(Reply<Vec<String>>),
    Response(String, Reply<Option<SignatureResponse>>),
    Take(String, Reply<Option<SignatureResponse>>),
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
            Self::Answered(_) => "Answered",
            Self::Response(..) => "Response",
            Self::Take(..) => "Take",
            Self::Federations(_) => "Federations",
            Self::FederationsAt(..) => "FederationsAt",
        })
    }
}

impl StreamHandle {
    /// Asks governance to sign under a fresh request id, for a caller with no state of its own to
    /// resume from: the request is stored durably before it is sent, and the answer is taken from the
    /// store when it is handed over. If the wait times out, the answer is still kept when it comes,
    /// under the id in [`StreamError::Timeout`].
    pub async fn request_signatures(
        &self,
        request: SignatureRequest,
    ) -> Result<SignatureResponse, StreamError> {
        let id = format!(
            "sig-{}-{}",
            self.id_prefix,
            self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let response = self.request_signatures_with_id(id.clone(), request).await?;
        // The caller has its answer; a take that fails leaves a copy stored (listed by `answered`),
        // which loses nothing.
        if let Err(error) = self.take_signature_response(id.clone()).await {
            tracing::warn!(target: "alys::governance", request_id = %id, %error, "answer delivered but not taken from the store");
        }
        Ok(response)
    }

    /// Asks governance to sign under the caller's request id, which a caller that persists its own work
    /// (the peg-out signer) reuses after a timeout or a restart.
    ///
    /// If an answer to `id` is already stored (it came after an earlier call gave up), it is returned at
    /// once, without asking governance again. Otherwise the request is stored durably (unless already
    /// pending) and sent, and the call waits up to the configured signature timeout. The answer stays
    /// stored after it is returned, until the caller takes it: [`Self::take_signature_response`], or
    /// [`crate::store::take_signature_response`] in the transaction that records what the caller did
    /// with it.
    pub async fn request_signatures_with_id(
        &self,
        id: String,
        request: SignatureRequest,
    ) -> Result<SignatureResponse, StreamError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Sign(id.clone(), request, reply))
            .await
            .map_err(|_| StreamError::Stopped)?;
        match tokio::time::timeout(self.signature_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(StreamError::Stopped),
            Err(_) => Err(StreamError::Timeout { request_id: id, after: self.signature_timeout }),
        }
    }

    /// The stored answer to signature request `id`, without taking it: `None` if it has not come yet
    /// (see [`Self::pending`]) or was taken.
    pub async fn signature_response(&self, id: String) -> Result<Option<SignatureResponse>, StreamError> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(Command::Response(id, reply)).await.map_err(|_| StreamError::Stopped)?;
        rx.await.map_err(|_| StreamError::Stopped)?
    }

    /// Takes the stored answer to signature request `id`, durably: it is removed from the store before
    /// this returns, so it is returned by at most one call. `None` if there is no answer (not come yet,
    /// or taken).
    pub async fn take_signature_response(
        &self,
        id: String,
    ) -> Result<Option<SignatureResponse>, StreamError> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(Command::Take(id, reply)).await.map_err(|_| StreamError::Stopped)?;
        rx.await.map_err(|_| StreamError::Stopped)?
    }

    /// Ids of the signature requests answered and not yet taken.
    pub async fn answered(&self) -> Result<Vec<String>, StreamError> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(Command::Answered(reply)).await.map_err(|_| StreamError::Stopped)?;
        rx.await.map_err(|_| StreamError::Stopped)?
    }

    /// Sends a message that needs no answer (peg-in notification, status); buffered while disconnected.
    pub async fn send(&self, payload: stream_request::Payload) -> Result<(), StreamError> {
        self.commands.send(Command::Send(payload)).await.map_err(|_| StreamError::Stopped)
    }

    /// Ids of the signature requests stored and not yet answered.
    pub async fn pending(&self) -> Result<Vec<String>, StreamError> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(Command::Pending(reply)).await.map_err(|_| StreamError::Stopped)?;
        rx.await.map_err(|_| StreamError::Stopped)?
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

    /// Federation updates and proposals as they are saved and applied, and answers no caller was
    /// waiting for as they are stored.
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
    runtime: watch::Sender<Arc<Decisions>>,
    /// Callers waiting for the answer to a request id (several may wait for one id).
    waiting: HashMap<String, Vec<Reply<SignatureResponse>>>,
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
    let (actor, handle, commands) = StreamActor::load(config, storage)?;
    Ok((handle, tokio::spawn(actor.run(commands))))
}

impl StreamActor {
    /// The actor over the state saved in `storage`, its handle, and its mailbox.
    fn load(
        config: StreamConfig,
        storage: Arc<Storage>,
    ) -> Result<(Self, StreamHandle, mpsc::Receiver<Command>), StreamError> {
        let mut federations = FederationHistory::default();
        let mut proposals = ProposalBook::new(config.parameters);
        {
            let read = storage.read()?;
            for (height, bytes) in read.federation_updates()? {
                // Saved updates were verified on arrival; verify again, a database is outside data too.
                let loaded = FederationUpdate::decode(bytes.as_slice())
                    .ok()
                    .and_then(|update| {
                        Federation::from_update(&update, &config.governance_key, config.network).ok()
                    })
                    .map(|federation| federations.insert(federation));
                if !matches!(loaded, Some(Ok(_))) {
                    tracing::warn!(target: "alys::governance", height, "saved federation update refused");
                }
            }
            // Read back by id; the book orders them by (effective height, id) whatever the order.
            for (id, bytes) in read.proposals()? {
                let loaded = ProposalNotification::decode(bytes.as_slice())
                    .ok()
                    .and_then(|n| Proposal::from_notification(&n, &config.governance_key).ok())
                    .map(|proposal| proposals.insert(proposal));
                if !matches!(loaded, Some(Ok(_))) {
                    tracing::warn!(target: "alys::governance", %id, "saved proposal refused");
                }
            }
        }
        let decisions = Decisions::new(proposals.clone(), federations.clone());
        let (runtime_tx, runtime_rx) = watch::channel(Arc::new(decisions));
        let (commands, rx) = mpsc::channel(256);
        let (events, _) = broadcast::channel(64);
        let (status_tx, status) = watch::channel(StreamStatus::default());
        let signature_timeout = config.signature_timeout;
        let next_id = Arc::new(std::sync::atomic::AtomicU64::new(0));
        // Unique across restarts: ids of requests still pending from an earlier run never collide.
        let started =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let id_prefix: Arc<str> = format!("{started:x}").into();
        let actor = Self {
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
        let runtime = RuntimeView::new(runtime_rx);
        let handle =
            StreamHandle { commands, events, status, runtime, signature_timeout, id_prefix, next_id };
        Ok((actor, handle, rx))
    }

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
            .filter_map(|(id, bytes)| match SignatureRequest::decode(bytes.as_slice()) {
                Ok(request) => Some((id, request)),
                Err(error) => {
                    tracing::error!(target: "alys::governance", %id, %error, "stored signature request does not decode");
                    None
                }
            })
            .collect())
    }

    /// Runs `write` in one transaction and commits it at `commit`'s points when it has something to
    /// commit (`Some`); a failure is counted and logged, and nothing of it is applied.
    fn save<T>(
        &self,
        commit: Commit,
        write: impl FnOnce(&WriteTx) -> Result<Option<T>, StorageError>,
    ) -> Result<Option<T>, StorageError> {
        let saved = self.storage.write().and_then(|tx| {
            let Some(value) = write(&tx)? else { return Ok(None) };
            store::commit(tx, commit)?;
            Ok(Some(value))
        });
        if let Err(error) = &saved {
            metrics::counter!(m::SAVE_FAILURES, "what" => commit.as_str()).increment(1);
            tracing::error!(target: "alys::governance", what = commit.as_str(), %error,
                "governance write failed; nothing of it is applied");
        }
        saved
    }

    /// A signature request from a caller: its stored answer if there is one; otherwise it is stored
    /// (unless already pending) before anything is sent.
    fn sign(&self, id: &str, request: &SignatureRequest) -> Result<Signing, StreamError> {
        {
            let read = self.storage.read()?;
            if let Some(answer) = store::signature_response(&read, id)? {
                return Ok(Signing::Answered(answer));
            }
            if read.signature_request(id)?.is_some() {
                return Ok(Signing::AlreadyPending);
            }
        }
        self.save(Commit::SignatureRequest, |tx| {
            tx.put_signature_request(id, &request.encode_to_vec()).map(Some)
        })?;
        Ok(Signing::Stored)
    }

    /// Takes the stored answer to `id` durably.
    fn take(&self, id: &str) -> Result<Option<SignatureResponse>, StreamError> {
        let taken = self.save(Commit::SignatureTake, |tx| tx.take_signature_response(id))?;
        // Decoded after the commit: an answer that does not decode was of no use to anyone.
        Ok(taken.map(|bytes| store::decode_response(id, &bytes)).transpose()?)
    }

    /// Adds a caller waiting for the answer to `id`, forgetting callers that gave up.
    fn wait(&mut self, id: String, reply: Reply<SignatureResponse>) {
        self.waiting.retain(|_, replies| {
            replies.retain(|r| !r.is_closed());
            !replies.is_empty()
        });
        self.waiting.entry(id).or_default().push(reply);
    }

    /// Hands a stored answer to the callers waiting for it; with none, announces it is stored.
    fn deliver(&mut self, id: String, response: SignatureResponse) {
        let mut delivered = false;
        for reply in self.waiting.remove(&id).unwrap_or_default() {
            delivered |= reply.send(Ok(response.clone())).is_ok();
        }
        if !delivered {
            metrics::counter!(m::UNCLAIMED_RESPONSES).increment(1);
            tracing::info!(target: "alys::governance", request_id = %id, "answer stored for a caller that is not waiting");
            let _ = self.events.send(GovernanceEvent::Signature(id, response));
        }
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
            metrics::gauge!(m::CONNECTED).set(0.0);
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
                        Some(command) => self.accept_traced(command, None).await,
                        None => return,
                    },
                }
            }
            reconnects += 1;
            self.status.send_modify(|status| status.reconnects = reconnects);
            metrics::counter!(m::RECONNECTS).increment(1);
        }
    }

    /// [`Self::accept`] in a span naming the command.
    async fn accept_traced(&mut self, command: Command, out: Option<&mpsc::Sender<StreamRequest>>) {
        let span = tracing::debug_span!(target: "alys::governance", "governance_command", command = ?command);
        self.accept(command, out).instrument(span).await;
    }

    /// Takes a command: signature requests are answered from the store or stored (and sent if
    /// connected), notifications buffered or sent, queries answered.
    async fn accept(&mut self, command: Command, out: Option<&mpsc::Sender<StreamRequest>>) {
        match command {
            Command::Sign(id, request, reply) => match self.sign(&id, &request) {
                Ok(Signing::Answered(answer)) => {
                    let _ = reply.send(Ok(answer));
                }
                Ok(Signing::AlreadyPending) => self.wait(id, reply),
                Ok(Signing::Stored) => {
                    self.wait(id.clone(), reply);
                    if let Some(out) = out {
                        let payload = stream_request::Payload::SignatureRequest(request);
                        let _ = self.send_request(out, RequestKind::Signature, id, payload).await;
                    }
                }
                Err(error) => {
                    tracing::error!(target: "alys::governance", request_id = %id, %error, "cannot store signature request");
                    let _ = reply.send(Err(error));
                }
            },
            Command::Pending(reply) => {
                let _ = reply.send(self.pending().map(|p| p.into_iter().map(|(id, _)| id).collect()));
            }
            Command::Answered(reply) => {
                let answered = self.storage.read().and_then(|read| read.signature_responses());
                let _ = reply.send(
                    answered
                        .map(|all| all.into_iter().map(|(id, _)| id).collect())
                        .map_err(StreamError::from),
                );
            }
            Command::Response(id, reply) => {
                let answer = self
                    .storage
                    .read()
                    .map_err(StreamError::from)
                    .and_then(|read| Ok(store::signature_response(&read, &id)?));
                let _ = reply.send(answer);
            }
            Command::Take(id, reply) => {
                let _ = reply.send(self.take(&id));
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
                            metrics::counter!(m::BUFFER_DROPPED).increment(1);
                        }
                        self.buffered.push_back((id, payload));
                        metrics::gauge!(m::BUFFERED).set(self.buffered.len() as f64);
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
        metrics::histogram!(m::REQUEST_SECONDS, "type" => kind.as_str()).record(sent.elapsed().as_secs_f64());
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
                    if let Err(failed) = self.route(response) {
                        return SessionEnd::Lost(failed.to_string());
                    }
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
        metrics::gauge!(m::BUFFERED).set(0.0);
        let reconnects = self.status.borrow().reconnects;
        self.status.send_replace(StreamStatus { connected: true, reconnects });
        metrics::gauge!(m::CONNECTED).set(1.0);
        tracing::info!(target: "alys::governance", url = %self.config.url, "governance stream up");

        let mut heartbeat = tokio::time::interval(self.config.heartbeat);
        heartbeat.tick().await;
        let mut check = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.accept_traced(command, Some(&out)).await,
                    None => return SessionEnd::Shutdown,
                },
                response = responses.next() => match response {
                    Some(Ok(response)) => {
                        if let Err(failed) = self.route(response) {
                            return SessionEnd::Lost(failed.to_string());
                        }
                    }
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
                        metrics::counter!(m::TIMEOUTS, "type" => kind.as_str()).increment(1);
                        return SessionEnd::Lost(format!("{} not acknowledged within {limit:?}", kind.as_str()));
                    }
                }
            }
        }
    }

    /// Handles what governance sent. `Err` when a save failed: nothing of it was applied, and the
    /// caller ends the session so that governance sends it again on the next one.
    fn route(&mut self, response: StreamResponse) -> Result<(), SaveFailed> {
        let request_id = response.metadata.map(|m| m.request_id).unwrap_or_default();
        let kind = response.payload.as_ref().map_or("empty", payload_kind);
        let span = tracing::debug_span!(target: "alys::governance", "governance_response", kind, request_id = %request_id);
        let _entered = span.enter();
        match response.payload {
            Some(stream_response::Payload::SignatureResponse(signatures)) => {
                let _ = self.answered(&request_id);
                self.accept_signatures(request_id, signatures)?;
            }
            Some(stream_response::Payload::FederationUpdate(update)) => self.accept_federation(&update)?,
            Some(stream_response::Payload::ProposalNotification(notification)) => {
                self.accept_proposal(&notification)?;
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
        Ok(())
    }

    /// Stores an answer in place of its pending request (one commit), then hands it to the callers
    /// waiting for it. An answer to nothing pending (a repeat, or a stray) is counted and dropped.
    fn accept_signatures(
        &mut self,
        request_id: String,
        signatures: SignatureResponse,
    ) -> Result<(), SaveFailed> {
        let encoded = signatures.encode_to_vec();
        let stored = self
            .save(Commit::SignatureResponse, |tx| {
                Ok(tx.answer_signature_request(&request_id, &encoded)?.then_some(()))
            })
            .map_err(|source| SaveFailed { commit: Commit::SignatureResponse, source })?;
        if stored.is_none() {
            metrics::counter!(m::DUPLICATE_RESPONSES).increment(1);
            return Ok(());
        }
        self.deliver(request_id, signatures);
        Ok(())
    }

    /// The node's head as the chain actor last published it (0 without a chain to follow).
    fn head(&self) -> u64 {
        self.config.heads.as_ref().map_or(0, |heads| heads.borrow().head.height)
    }

    /// Publishes the decisions held to the [`RuntimeView`]s.
    fn publish(&self) {
        let decisions = Decisions::new(self.proposals.clone(), self.federations.clone());
        self.runtime.send_replace(Arc::new(decisions));
    }

    /// Verifies, checks against the head, saves, then applies and publishes a federation update;
    /// refused ones are counted and logged, never saved or applied.
    fn accept_federation(&mut self, update: &FederationUpdate) -> Result<(), SaveFailed> {
        let head = self.head();
        let checked = Federation::from_update(update, &self.config.governance_key, self.config.network)
            .and_then(|federation| {
                Ok((decisions::check_federation(&self.federations, &federation, head)?, federation))
            });
        let federation = match checked {
            Ok((true, federation)) => federation,
            // Already known: governance announces every federation to each new session.
            Ok((false, _)) => return Ok(()),
            Err(error) => {
                refuse_federation(update.effective_height, &error);
                return Ok(());
            }
        };
        let height = federation.effective_height;
        // The first federation is accepted at any height (see `decisions`).
        let first = self.federations.is_empty();
        let mut passed = None;
        self.save(Commit::FederationUpdate, |tx| {
            let head = committed_head(tx)?.max(self.head());
            if !first && decisions::is_past(height, head) {
                passed = Some(head);
                return Ok(None);
            }
            tx.put_federation_update(height, &update.encode_to_vec()).map(Some)
        })
        .map_err(|source| SaveFailed { commit: Commit::FederationUpdate, source })?;
        if let Some(head) = passed {
            refuse_federation(height, &FederationError::PastHeight { height, head });
            return Ok(());
        }
        // Saved: from here on it holds, in memory as after a restart.
        if let Err(error) = self.federations.insert(federation.clone()) {
            // Checked above and nothing else changes the history meanwhile; logged should it ever happen.
            tracing::error!(target: "alys::governance", %error, height, "saved federation update not applied");
            return Ok(());
        }
        tracing::info!(target: "alys::governance", height, head, address = %federation.address, "federation update");
        self.publish();
        let _ = self.events.send(GovernanceEvent::Federation(federation));
        Ok(())
    }

    /// Verifies, checks against the head, saves, then applies and publishes a proposal; refused ones
    /// are counted and logged, never saved or applied.
    fn accept_proposal(&mut self, notification: &ProposalNotification) -> Result<(), SaveFailed> {
        let id = notification.proposal_id.as_str();
        let head = self.head();
        let checked =
            Proposal::from_notification(notification, &self.config.governance_key).and_then(|proposal| {
                Ok((decisions::check_proposal(&self.proposals, &proposal, head)?, proposal))
            });
        let proposal = match checked {
            Ok((true, proposal)) => proposal,
            Ok((false, _)) => return Ok(()),
            Err(error) => {
                refuse_proposal(id, &error);
                return Ok(());
            }
        };
        let height = proposal.effective_height;
        let mut passed = None;
        self.save(Commit::Proposal, |tx| {
            // Again against the head committed in the database: a block committed since the check
            // (published or not yet) is seen here, and none can be committed before this save is.
            let head = committed_head(tx)?.max(self.head());
            if decisions::is_past(height, head) {
                passed = Some(head);
                return Ok(None);
            }
            tx.put_proposal(&proposal.id, &notification.encode_to_vec()).map(Some)
        })
        .map_err(|source| SaveFailed { commit: Commit::Proposal, source })?;
        if let Some(head) = passed {
            refuse_proposal(id, &ProposalError::PastHeight { height, head });
            return Ok(());
        }
        // Saved: from here on it holds, in memory as after a restart.
        if let Err(error) = self.proposals.insert(proposal.clone()) {
            tracing::error!(target: "alys::governance", %error, "saved proposal not applied");
            return Ok(());
        }
        tracing::info!(target: "alys::governance", id = %proposal.id, height, head,
            action = ?proposal.action, "proposal accepted");
        metrics::counter!(m::PROPOSALS, "type" => proposal.proposal_type.clone()).increment(1);
        self.publish();
        let _ = self.events.send(GovernanceEvent::Proposal(proposal));
        Ok(())
    }
}

/// The head committed in the node's database (0 before any block), read inside the transaction that
/// saves a decision.
fn committed_head(tx: &WriteTx) -> Result<u64, StorageError> {
    Ok(tx.head()?.map_or(0, |head| head.height))
}

/// Counts and logs a refused proposal.
fn refuse_proposal(id: &str, error: &ProposalError) {
    metrics::counter!(m::REJECTED, "type" => "proposal", "reason" => error.reason()).increment(1);
    match error {
        ProposalError::PastHeight { height, head } => tracing::warn!(target: "alys::governance", %id,
            height, head, "proposal refused: effective at or below the head, whose block exists; \
            governance must re-issue it at a height above the head"),
        _ => {
            tracing::warn!(target: "alys::governance", %id, reason = %error.reason(), %error, "proposal refused")
        }
    }
}

/// Counts and logs a refused federation update.
fn refuse_federation(height: u64, error: &FederationError) {
    metrics::counter!(m::REJECTED, "type" => "federation_update", "reason" => error.reason()).increment(1);
    match error {
        FederationError::PastHeight { height, head } => tracing::warn!(target: "alys::governance", height,
            head, "federation update refused: effective at or below the head, whose block exists; \
            governance must re-issue it at a height above the head"),
        _ => tracing::warn!(target: "alys::governance", height, reason = %error.reason(), %error,
            "federation update refused"),
    }
}

/// What [`StreamActor::sign`] found or did.
#[derive(Debug)]
enum Signing {
    /// The answer was already stored.
    Answered(SignatureResponse),
    /// The request is stored and waiting for its answer (it was sent, or is re-sent on connect).
    AlreadyPending,
    /// The request was stored now and is to be sent.
    Stored,
}

/// A governance message could not be saved, so it was not applied; the session is ended so governance
/// sends it again.
#[derive(Debug, thiserror::Error)]
#[error("cannot save a {}: {source}; reconnecting so governance sends it again", commit.as_str())]
struct SaveFailed {
    commit: Commit,
    source: StorageError,
}

/// The payload's kind, for spans.
const fn payload_kind(payload: &stream_response::Payload) -> &'static str {
    match payload {
        stream_response::Payload::SignatureResponse(_) => "signature_response",
        stream_response::Payload::FederationUpdate(_) => "federation_update",
        stream_response::Payload::ProposalNotification(_) => "proposal",
        stream_response::Payload::ErrorResponse(_) => "error",
        stream_response::Payload::HeartbeatAck(_) => "heartbeat_ack",
        stream_response::Payload::RegistrationAck(_) => "registration_ack",
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]
    use super::*;
    use crate::{
        signing::{emergency_data, sign_proposal},
        store::fail_scenario,
        update_digest,
    };
    use alys_proto::governance::v1::{
        EmergencyScope, FederationConfig, FederationMember, ProposalType, ResponseMetadata, SignatureStatus,
    };
    use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};

    fn governance() -> SecretKey {
        SecretKey::from_slice(&[0xa1; 32]).unwrap()
    }

    /// An actor over `storage` that is not connected (its sessions never come up; the tests drive
    /// `route` and `accept` as a session would).
    fn actor(storage: &Arc<Storage>) -> (StreamActor, StreamHandle) {
        let key = secp256k1::PublicKey::from_secret_key(&Secp256k1::new(), &governance());
        let config = StreamConfig::new("http://127.0.0.1:1", key);
        let (actor, handle, _commands) = StreamActor::load(config, Arc::clone(storage)).unwrap();
        (actor, handle)
    }

    /// Like [`actor`], following a chain whose published head the test moves with the returned sender.
    fn actor_following(
        storage: &Arc<Storage>,
        head: u64,
    ) -> (StreamActor, StreamHandle, watch::Sender<ChainHeads>) {
        let key = secp256k1::PublicKey::from_secret_key(&Secp256k1::new(), &governance());
        let (heads_tx, heads) = watch::channel(heads_at(head));
        let config = StreamConfig::new("http://127.0.0.1:1", key).with_heads(heads);
        let (actor, handle, _commands) = StreamActor::load(config, Arc::clone(storage)).unwrap();
        (actor, handle, heads_tx)
    }

    fn heads_at(height: u64) -> ChainHeads {
        ChainHeads {
            head: alys_primitives::BlockRef { height, hash: Default::default() },
            head_execution_hash: Default::default(),
            finalized: None,
        }
    }

    /// Commits blocks 1..=`height` to `storage` as the chain actor would, the last one the head.
    fn commit_chain(storage: &Storage, height: u64) {
        let mut parent = Default::default();
        for h in 1..=height {
            let block = alys_primitives::SignedBlock {
                header: alys_primitives::ConsensusHeader {
                    parent_hash: parent,
                    parent_seal: Default::default(),
                    height: h,
                    slot: h,
                    author: 0,
                    execution_block_hash: Default::default(),
                    pegins: Vec::new(),
                    auxpow: Default::default(),
                    pegout: None,
                },
                execution_block: Default::default(),
                execution_requests: Vec::new(),
                author_signature: Default::default(),
                approvals: alys_primitives::Approvals {
                    signers: Default::default(),
                    signature: Default::default(),
                },
            };
            let tx = storage.write().unwrap();
            parent = tx.set_head(&block).unwrap().hash;
            tx.commit().unwrap();
        }
    }

    /// Counters recorded through it, by `name{label=value,…}` (labels in the order given).
    #[derive(Default)]
    struct Counters(std::sync::Mutex<HashMap<String, Arc<std::sync::atomic::AtomicU64>>>);

    impl Counters {
        fn get(&self, series: &str) -> u64 {
            self.0.lock().unwrap().get(series).map_or(0, |c| c.load(std::sync::atomic::Ordering::Relaxed))
        }
    }

    impl metrics::Recorder for Counters {
        fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
        fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
        fn describe_histogram(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
            let labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            let series = format!("{}{{{}}}", key.name(), labels.join(","));
            metrics::Counter::from_arc(Arc::clone(self.0.lock().unwrap().entry(series).or_default()))
        }
        fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
            metrics::Gauge::noop()
        }
        fn register_histogram(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
            metrics::Histogram::noop()
        }
    }

    const PAST_PROPOSAL: &str = "alys_governance_rejected_total{type=proposal,reason=past_height}";
    const PAST_FEDERATION: &str = "alys_governance_rejected_total{type=federation_update,reason=past_height}";

    fn message(request_id: &str, payload: stream_response::Payload) -> StreamResponse {
        let metadata = ResponseMetadata { request_id: request_id.into(), ..Default::default() };
        StreamResponse { metadata: Some(metadata), payload: Some(payload) }
    }

    fn pause_proposal(id: &str, height: u64) -> stream_response::Payload {
        let data = emergency_data(height, EmergencyScope::Pegouts, true, "drill");
        stream_response::Payload::ProposalNotification(sign_proposal(
            id,
            ProposalType::EmergencyAction,
            data,
            &governance(),
        ))
    }

    fn federation_update(height: u64) -> stream_response::Payload {
        let secp = Secp256k1::new();
        let members = [1u8, 2]
            .iter()
            .map(|n| FederationMember {
                member_id: format!("m{n}"),
                public_key: secp256k1::PublicKey::from_secret_key(
                    &secp,
                    &SecretKey::from_slice(&[*n; 32]).unwrap(),
                )
                .serialize()
                .to_vec(),
                weight: 1,
                active: true,
            })
            .collect();
        let mut update = FederationUpdate {
            update_type: 1,
            members,
            effective_height: height,
            update_signature: Vec::new(),
            config: Some(FederationConfig {
                signature_threshold: 2,
                member_count: 2,
                parameters: Default::default(),
            }),
        };
        let signature = secp.sign_ecdsa(&Message::from_digest(update_digest(&update)), &governance());
        update.update_signature = signature.serialize_compact().to_vec();
        stream_response::Payload::FederationUpdate(update)
    }

    fn answer() -> SignatureResponse {
        SignatureResponse { status: SignatureStatus::Complete as i32, ..Default::default() }
    }

    #[test]
    fn a_proposal_whose_save_fails_is_not_applied_and_is_applied_when_sent_again() {
        let _scenario = fail_scenario();
        let storage = Arc::new(Storage::in_memory().unwrap());
        let (mut actor, handle) = actor(&storage);
        let mut events = handle.subscribe();
        let before = actor.proposals.clone();

        fail::cfg(Commit::Proposal.error(), "return").unwrap();
        let failed = actor.route(message("", pause_proposal("p1", 5)));
        assert!(matches!(failed, Err(SaveFailed { commit: Commit::Proposal, .. })), "{failed:?}");
        assert_eq!(actor.proposals, before, "memory unchanged");
        assert_eq!(handle.runtime().book().proposals().count(), 0, "nothing published to the views");
        assert!(!handle.runtime().state_at(5).pegouts_paused);
        assert!(events.try_recv().is_err(), "no event");
        assert!(storage.read().unwrap().proposals().unwrap().is_empty(), "nothing saved");

        // Governance sends it again on the next session: saved, then applied and published.
        fail::remove(Commit::Proposal.error());
        actor.route(message("", pause_proposal("p1", 5))).unwrap();
        assert_eq!(storage.read().unwrap().proposals().unwrap().len(), 1);
        assert!(handle.runtime().state_at(5).pegouts_paused);
        assert!(matches!(events.try_recv(), Ok(GovernanceEvent::Proposal(p)) if p.id == "p1"));
        // And again: already known, nothing happens.
        actor.route(message("", pause_proposal("p1", 5))).unwrap();
        assert!(events.try_recv().is_err());
    }

    #[test]
    fn a_federation_update_whose_save_fails_is_not_applied() {
        let _scenario = fail_scenario();
        let storage = Arc::new(Storage::in_memory().unwrap());
        let (mut actor, handle) = actor(&storage);
        let mut events = handle.subscribe();

        fail::cfg(Commit::FederationUpdate.error(), "return").unwrap();
        let failed = actor.route(message("", federation_update(0)));
        assert!(matches!(failed, Err(SaveFailed { commit: Commit::FederationUpdate, .. })), "{failed:?}");
        assert_eq!(actor.federations.iter().count(), 0, "memory unchanged");
        assert!(events.try_recv().is_err(), "no event");
        assert!(storage.read().unwrap().federation_updates().unwrap().is_empty(), "nothing saved");

        fail::remove(Commit::FederationUpdate.error());
        actor.route(message("", federation_update(0))).unwrap();
        assert_eq!(actor.federations.iter().count(), 1);
        assert!(matches!(events.try_recv(), Ok(GovernanceEvent::Federation(f)) if f.effective_height == 0));
        // Announced again on the next session: known, not refused, not announced twice.
        actor.route(message("", federation_update(0))).unwrap();
        assert!(events.try_recv().is_err());
        // A restarted actor has it from the store.
        let (restarted, _handle) = super::tests::actor(&storage);
        assert_eq!(restarted.federations.iter().count(), 1);
    }

    #[tokio::test]
    async fn an_answer_whose_save_fails_stays_pending_until_it_comes_again_then_is_kept_until_taken() {
        let _scenario = fail_scenario();
        let storage = Arc::new(Storage::in_memory().unwrap());
        let (mut actor, _handle) = actor(&storage);
        let (reply, mut rx) = oneshot::channel();
        actor.accept(Command::Sign("r1".into(), SignatureRequest::default(), reply), None).await;
        assert_eq!(storage.read().unwrap().signature_requests().unwrap().len(), 1, "stored before sending");

        fail::cfg(Commit::SignatureResponse.error(), "return").unwrap();
        let response = stream_response::Payload::SignatureResponse(answer());
        assert!(actor.route(message("r1", response.clone())).is_err());
        assert!(rx.try_recv().is_err(), "the caller gets nothing that is not saved");
        let read = storage.read().unwrap();
        assert_eq!(read.signature_requests().unwrap().len(), 1, "still pending: re-sent on the next session");
        assert!(read.signature_responses().unwrap().is_empty());
        drop(read);

        fail::remove(Commit::SignatureResponse.error());
        actor.route(message("r1", response.clone())).unwrap();
        assert_eq!(rx.try_recv().unwrap().unwrap(), answer());
        // The caller's copy does not consume it: it stays until taken. A repeat is not stored again.
        actor.route(message("r1", response)).unwrap();
        let read = storage.read().unwrap();
        assert!(read.signature_requests().unwrap().is_empty());
        assert_eq!(read.signature_responses().unwrap().len(), 1);
        drop(read);

        let (reply, rx) = oneshot::channel();
        actor.accept(Command::Take("r1".into(), reply), None).await;
        assert_eq!(rx.await.unwrap().unwrap(), Some(answer()));
        let (reply, rx) = oneshot::channel();
        actor.accept(Command::Take("r1".into(), reply), None).await;
        assert_eq!(rx.await.unwrap().unwrap(), None, "taken once");
    }

    #[tokio::test]
    async fn an_answer_nobody_waits_for_is_handed_to_the_next_request_with_its_id() {
        let _scenario = fail_scenario();
        let storage = Arc::new(Storage::in_memory().unwrap());
        let (mut actor, handle) = actor(&storage);
        let mut events = handle.subscribe();
        let (reply, rx) = oneshot::channel();
        actor.accept(Command::Sign("late".into(), SignatureRequest::default(), reply), None).await;
        drop(rx); // the caller gave up
        actor.route(message("late", stream_response::Payload::SignatureResponse(answer()))).unwrap();
        assert!(matches!(events.try_recv(), Ok(GovernanceEvent::Signature(id, _)) if id == "late"));

        // Restarted: the same id is answered from the store, nothing is asked again.
        drop(actor);
        let (mut actor, _handle) = super::tests::actor(&storage);
        let (reply, rx) = oneshot::channel();
        actor.accept(Command::Sign("late".into(), SignatureRequest::default(), reply), None).await;
        assert_eq!(rx.await.unwrap().unwrap(), answer());
        assert!(storage.read().unwrap().signature_requests().unwrap().is_empty(), "not asked again");
        let (reply, rx) = oneshot::channel();
        actor.accept(Command::Response("late".into(), reply), None).await;
        assert_eq!(rx.await.unwrap().unwrap(), Some(answer()), "still there until taken");
    }

    #[tokio::test]
    async fn a_request_that_cannot_be_stored_fails_for_its_caller() {
        let _scenario = fail_scenario();
        let storage = Arc::new(Storage::in_memory().unwrap());
        let (mut actor, _handle) = actor(&storage);
        fail::cfg(Commit::SignatureRequest.error(), "return").unwrap();
        let (reply, rx) = oneshot::channel();
        actor.accept(Command::Sign("r".into(), SignatureRequest::default(), reply), None).await;
        assert!(matches!(rx.await.unwrap(), Err(StreamError::Store(_))));
        assert!(actor.waiting.is_empty());
        assert!(storage.read().unwrap().signature_requests().unwrap().is_empty());
    }

    #[test]
    fn a_proposal_at_or_below_the_head_is_refused_counted_and_not_stored() {
        let _scenario = fail_scenario();
        let storage = Arc::new(Storage::in_memory().unwrap());
        let (mut actor, handle, _heads) = actor_following(&storage, 41);
        let mut events = handle.subscribe();
        let counters = Counters::default();
        metrics::with_local_recorder(&counters, || {
            // The reported case (a pause at 2 sent at head 41), and both sides of the boundary.
            for (id, height) in [("at-2", 2), ("below", 40), ("at-head", 41)] {
                actor.route(message("", pause_proposal(id, height))).unwrap();
            }
            assert_eq!(counters.get(PAST_PROPOSAL), 3);
            assert!(storage.read().unwrap().proposals().unwrap().is_empty(), "nothing refused is stored");
            assert_eq!(actor.proposals.proposals().count(), 0, "nor applied");
            assert_eq!(handle.runtime().book().proposals().count(), 0, "nor published");
            assert!(!handle.runtime().state_at(42).pegouts_paused);
            assert!(events.try_recv().is_err(), "nor announced");

            actor.route(message("", pause_proposal("next", 42))).unwrap();
            assert_eq!(counters.get(PAST_PROPOSAL), 3, "head + 1 is ahead");
            assert_eq!(storage.read().unwrap().proposals().unwrap().len(), 1);
            assert!(
                handle.runtime().state_at(42).pegouts_paused && !handle.runtime().state_at(41).pegouts_paused
            );
            assert!(matches!(events.try_recv(), Ok(GovernanceEvent::Proposal(p)) if p.id == "next"));
        });
    }

    #[test]
    fn a_held_proposal_announced_again_after_its_height_is_not_refused() {
        let _scenario = fail_scenario();
        let storage = Arc::new(Storage::in_memory().unwrap());
        let (mut actor, handle, heads) = actor_following(&storage, 3);
        let counters = Counters::default();
        metrics::with_local_recorder(&counters, || {
            actor.route(message("", pause_proposal("p", 5))).unwrap();
            // Every new session hears every proposal again, long after its height.
            heads.send_replace(heads_at(20));
            actor.route(message("", pause_proposal("p", 5))).unwrap();
            assert_eq!(counters.get(PAST_PROPOSAL), 0);
        });
        assert_eq!(storage.read().unwrap().proposals().unwrap().len(), 1);
        assert!(handle.runtime().state_at(5).pegouts_paused);
        // A restart reads it back without asking the head.
        let (restarted, _handle, _heads) = actor_following(&storage, 20);
        assert_eq!(restarted.proposals.proposals().count(), 1);
    }

    #[test]
    fn a_rotation_at_or_below_the_head_is_refused_counted_and_not_stored() {
        let _scenario = fail_scenario();
        let storage = Arc::new(Storage::in_memory().unwrap());
        let (mut actor, handle, heads) = actor_following(&storage, 46);
        let counters = Counters::default();
        metrics::with_local_recorder(&counters, || {
            // The first federation holds from its height whatever the head: nothing depended on one.
            actor.route(message("", federation_update(0))).unwrap();
            assert_eq!(actor.federations.iter().count(), 1);
            let mut events = handle.subscribe();
            // The reported case (a rotation at 3 sent at head 46), and the boundary.
            for height in [3, 45, 46] {
                actor.route(message("", federation_update(height))).unwrap();
            }
            assert_eq!(counters.get(PAST_FEDERATION), 3);
            assert_eq!(storage.read().unwrap().federation_updates().unwrap().len(), 1, "not stored");
            assert_eq!(actor.federations.iter().count(), 1, "nor applied");
            assert!(events.try_recv().is_err(), "nor announced");

            actor.route(message("", federation_update(47))).unwrap();
            assert_eq!(counters.get(PAST_FEDERATION), 3, "head + 1 is ahead");
            assert_eq!(storage.read().unwrap().federation_updates().unwrap().len(), 2);
            assert_eq!(actor.federations.at(46).map(|f| f.effective_height), Some(0));
            assert_eq!(actor.federations.at(47).map(|f| f.effective_height), Some(47));
            assert!(
                matches!(events.try_recv(), Ok(GovernanceEvent::Federation(f)) if f.effective_height == 47)
            );
            let published = handle.runtime().taking_effect_at(47);
            assert!(
                matches!(published.as_slice(), [crate::Decision::Federation(f)] if f.effective_height == 47)
            );

            // Announced again on a later session, past its height: known, not refused.
            heads.send_replace(heads_at(100));
            actor.route(message("", federation_update(47))).unwrap();
            actor.route(message("", federation_update(0))).unwrap();
            assert_eq!(counters.get(PAST_FEDERATION), 3);
        });
    }

    #[test]
    fn a_block_committed_after_the_check_is_seen_when_saving() {
        // The chain committed blocks the published head does not show yet (it is published after the
        // commit, or the node just started): the save's own transaction reads the committed head.
        let _scenario = fail_scenario();
        let storage = Arc::new(Storage::in_memory().unwrap());
        let (mut actor, handle, _heads) = actor_following(&storage, 0);
        actor.route(message("", federation_update(0))).unwrap();
        commit_chain(&storage, 6);
        let counters = Counters::default();
        metrics::with_local_recorder(&counters, || {
            actor.route(message("", pause_proposal("late", 6))).unwrap();
            actor.route(message("", federation_update(5))).unwrap();
            assert_eq!(counters.get(PAST_PROPOSAL), 1);
            assert_eq!(counters.get(PAST_FEDERATION), 1);
            actor.route(message("", pause_proposal("ahead", 7))).unwrap();
            actor.route(message("", federation_update(7))).unwrap();
        });
        let read = storage.read().unwrap();
        let ids: Vec<_> = read.proposals().unwrap().into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, ["ahead"]);
        let heights: Vec<_> = read.federation_updates().unwrap().into_iter().map(|(h, _)| h).collect();
        assert_eq!(heights, [0, 7]);
        assert!(!handle.runtime().state_at(6).pegouts_paused, "never in force over block 6");
        assert!(handle.runtime().state_at(7).pegouts_paused);
    }
}
