//! The gRPC side: `GovernanceStream` over a shared [`DevGovernance`], with pushes to every session.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use alys_proto::governance::v1::{
    CapabilitiesRequest, CapabilitiesResponse, HealthRequest, HealthResponse, HealthStatus, HeartbeatAck,
    NodeRegistrationAck, PeginNotification, ResponseMetadata, SignatureResponse, StatusCode, StreamRequest,
    StreamResponse,
    governance_stream_server::{GovernanceStream, GovernanceStreamServer},
    stream_request, stream_response,
};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::{Stream, StreamExt, wrappers::ReceiverStream};
use tonic::{Request, Response, Status, Streaming};

use crate::DevGovernance;

/// How long the reorder fault holds a response waiting for the next one.
const REORDER_HOLD: std::time::Duration = std::time::Duration::from_millis(200);

type ResponseStream = Pin<Box<dyn Stream<Item = Result<StreamResponse, Status>> + Send>>;

/// Shared by the gRPC sessions and the admin RPC.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The keys, federations, proposals and faults; the admin RPC changes them.
    pub(crate) state: watch::Sender<DevGovernance>,
    /// Messages pushed to every live session (federation updates, proposals).
    pub(crate) pushes: broadcast::Sender<StreamResponse>,
    /// Answers by request id: a re-sent request gets the first answer, and is signed once.
    answered: Mutex<HashMap<String, SignatureResponse>>,
    /// Signing operations performed.
    pub(crate) signed: AtomicU64,
    /// Live sessions.
    pub(crate) sessions: AtomicU64,
    /// Peg-in notifications and status updates received.
    pub(crate) notifications: AtomicU64,
    /// The last peg-in notifications received (at most [`PEGINS_KEPT`]), oldest first.
    pub(crate) pegins: Mutex<std::collections::VecDeque<PeginNotification>>,
}

/// How many peg-in notifications the service keeps for `governance_status`.
pub(crate) const PEGINS_KEPT: usize = 1_000;

/// The gRPC service; clone it freely, every clone shares the same state.
#[derive(Debug, Clone)]
pub struct GovernanceService(pub(crate) Arc<Shared>);

impl DevGovernance {
    /// The gRPC service answering with these keys and faults.
    pub fn into_service(self) -> GovernanceService {
        let (state, _) = watch::channel(self);
        let (pushes, _) = broadcast::channel(64);
        GovernanceService(Arc::new(Shared {
            state,
            pushes,
            answered: Mutex::new(HashMap::new()),
            signed: AtomicU64::new(0),
            sessions: AtomicU64::new(0),
            notifications: AtomicU64::new(0),
            pegins: Mutex::new(std::collections::VecDeque::new()),
        }))
    }
}

impl GovernanceService {
    /// The tonic server for this service.
    pub fn server(&self) -> GovernanceStreamServer<Self> {
        GovernanceStreamServer::new(self.clone())
    }

    /// How many signing operations the service performed (a re-sent request id is not signed again).
    pub fn signed(&self) -> u64 {
        self.0.signed.load(Ordering::Relaxed)
    }

    /// Peg-in notifications and status updates received.
    pub fn notifications(&self) -> u64 {
        self.0.notifications.load(Ordering::Relaxed)
    }

    /// The last peg-in notifications received, oldest first.
    pub fn pegins(&self) -> Vec<PeginNotification> {
        self.0.pegins.lock().map(|p| p.iter().cloned().collect()).unwrap_or_default()
    }

    /// Sessions currently open.
    pub fn sessions(&self) -> u64 {
        self.0.sessions.load(Ordering::Relaxed)
    }

    /// A copy of the current state.
    pub fn state(&self) -> DevGovernance {
        self.0.state.borrow().clone()
    }

    /// Changes the state; `f`'s result is returned. Pushes are the caller's business.
    pub fn update<T>(&self, f: impl FnOnce(&mut DevGovernance) -> T) -> T {
        let mut out = None;
        self.0.state.send_modify(|state| out = Some(f(state)));
        // `send_modify` always runs the closure.
        out.unwrap_or_else(|| unreachable!("send_modify runs its closure"))
    }

    /// Sends `payload` to every live session.
    pub fn push(&self, payload: stream_response::Payload) {
        let _ = self
            .0
            .pushes
            .send(StreamResponse { metadata: Some(metadata(String::new())), payload: Some(payload) });
    }

    fn check_auth<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let state = self.0.state.borrow();
        let Some(token) = &state.bearer_token else { return Ok(()) };
        let given = request.metadata().get("authorization").and_then(|v| v.to_str().ok());
        let expected = format!("Bearer {token}");
        // Constant time: the token guards signing.
        let same = given
            .is_some_and(|g| bool::from(subtle::ConstantTimeEq::ct_eq(g.as_bytes(), expected.as_bytes())));
        if same {
            Ok(())
        } else {
            tracing::warn!(target: "alys::devnet::governance", "refused a client without a valid bearer token");
            Err(Status::unauthenticated("missing or invalid bearer token"))
        }
    }

    fn respond(&self, request: StreamRequest) -> Option<StreamResponse> {
        let request_id = request.metadata.map(|m| m.request_id).unwrap_or_default();
        let payload = match request.payload? {
            stream_request::Payload::NodeRegistration(reg) => {
                stream_response::Payload::RegistrationAck(NodeRegistrationAck {
                    accepted: true,
                    assigned_node_id: reg.node_info.map(|n| n.public_key).unwrap_or_default(),
                    session_token: None,
                    expires_at: None,
                })
            }
            stream_request::Payload::SignatureRequest(req) => {
                let cached = self.0.answered.lock().ok().and_then(|a| a.get(&request_id).cloned());
                let response = match cached {
                    Some(r) => r,
                    None => {
                        let r = self.0.state.borrow().sign(&req);
                        self.0.signed.fetch_add(1, Ordering::Relaxed);
                        if !request_id.is_empty()
                            && let Ok(mut answered) = self.0.answered.lock()
                        {
                            answered.insert(request_id.clone(), r.clone());
                        }
                        r
                    }
                };
                stream_response::Payload::SignatureResponse(response)
            }
            stream_request::Payload::Heartbeat(hb) => stream_response::Payload::HeartbeatAck(HeartbeatAck {
                original_timestamp: hb.timestamp,
                ack_timestamp: hb.timestamp,
                sequence: hb.sequence,
            }),
            stream_request::Payload::PeginNotification(note) => {
                self.0.notifications.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut pegins) = self.0.pegins.lock() {
                    if pegins.len() >= PEGINS_KEPT {
                        pegins.pop_front();
                    }
                    pegins.push_back(note);
                }
                return None;
            }
            stream_request::Payload::StatusUpdate(_) => {
                self.0.notifications.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        Some(StreamResponse { metadata: Some(metadata(request_id)), payload: Some(payload) })
    }
}

fn metadata(request_id: String) -> ResponseMetadata {
    ResponseMetadata {
        request_id,
        timestamp: 0,
        node_id: "devnet-governance".into(),
        status: StatusCode::Success as i32,
        message: None,
    }
}

/// Decrements the session count when a session ends, however it ends.
struct SessionGuard(Arc<Shared>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

#[tonic::async_trait]
impl GovernanceStream for GovernanceService {
    type StreamStream = ResponseStream;

    async fn stream(
        &self,
        request: Request<Streaming<StreamRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        self.check_auth(&request)?;
        let mut incoming = request.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let service = self.clone();
        let mut pushes = self.0.pushes.subscribe();
        self.0.sessions.fetch_add(1, Ordering::Relaxed);
        let guard = SessionGuard(Arc::clone(&self.0));
        tokio::spawn(async move {
            let _guard = guard;
            // A connecting node learns every federation (so it knows the previous addresses) and every
            // proposal issued so far.
            let (updates, proposals) = {
                let state = service.0.state.borrow();
                (state.federation_updates(), state.proposals().to_vec())
            };
            let initial = updates
                .into_iter()
                .map(stream_response::Payload::FederationUpdate)
                .chain(proposals.into_iter().map(stream_response::Payload::ProposalNotification));
            for payload in initial {
                let message =
                    StreamResponse { metadata: Some(metadata(String::new())), payload: Some(payload) };
                if tx.send(Ok(message)).await.is_err() {
                    return;
                }
            }
            let mut sent = 0usize;
            let mut held: Option<StreamResponse> = None;
            loop {
                let response = tokio::select! {
                    message = incoming.next() => {
                        let Some(Ok(message)) = message else { return };
                        let signing = matches!(message.payload, Some(stream_request::Payload::SignatureRequest(_)));
                        let Some(response) = service.respond(message) else { continue };
                        if signing && service.0.state.borrow().faults().drop_on_next_signature {
                            service.update(|state| state.faults.drop_on_next_signature = false);
                            tracing::info!(target: "alys::devnet::governance", "fault injection: signed, dropping the stream before answering");
                            return;
                        }
                        response
                    }
                    pushed = pushes.recv() => match pushed {
                        Ok(response) => response,
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    // A response held back for reordering goes out alone if nothing follows it soon.
                    () = tokio::time::sleep(REORDER_HOLD), if held.is_some() => {
                        let Some(alone) = held.take() else { continue };
                        if tx.send(Ok(alone)).await.is_err() {
                            return;
                        }
                        continue;
                    }
                };
                let faults = service.0.state.borrow().faults();
                if let Some(delay) = faults.delay() {
                    tokio::time::sleep(delay).await;
                }
                let mut batch = vec![response];
                if faults.reorder {
                    match held.take() {
                        // Send the newer one first, then the one held back.
                        Some(older) => batch.push(older),
                        None => {
                            held = batch.pop();
                            continue;
                        }
                    }
                }
                for response in batch {
                    let copies = if faults.duplicate { 2 } else { 1 };
                    for _ in 0..copies {
                        if tx.send(Ok(response.clone())).await.is_err() {
                            return;
                        }
                    }
                    sent += 1;
                    if faults.drop_after.is_some_and(|n| sent >= n) {
                        tracing::info!(target: "alys::devnet::governance", sent, "fault injection: dropping the stream");
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn health(&self, request: Request<HealthRequest>) -> Result<Response<HealthResponse>, Status> {
        self.check_auth(&request)?;
        Ok(Response::new(HealthResponse {
            status: HealthStatus::Healthy as i32,
            version: env!("CARGO_PKG_VERSION").into(),
            uptime: 0,
            info: Default::default(),
        }))
    }

    async fn get_capabilities(
        &self,
        request: Request<CapabilitiesRequest>,
    ) -> Result<Response<CapabilitiesResponse>, Status> {
        self.check_auth(&request)?;
        Ok(Response::new(CapabilitiesResponse {
            protocol_versions: vec!["governance.v1".into()],
            features: vec!["p2wsh-multisig".into(), "federation-updates".into(), "proposals".into()],
            limits: Default::default(),
        }))
    }
}

/// Serves `service` on `listener` until the task is aborted; with `tls` (PEM certificate chain and
/// key) over TLS.
pub async fn serve(
    service: GovernanceService,
    listener: tokio::net::TcpListener,
    tls: Option<(Vec<u8>, Vec<u8>)>,
) -> Result<(), tonic::transport::Error> {
    let mut builder = tonic::transport::Server::builder();
    if let Some((cert, key)) = tls {
        builder = builder.tls_config(
            tonic::transport::ServerTlsConfig::new()
                .identity(tonic::transport::Identity::from_pem(cert, key)),
        )?;
    }
    builder
        .add_service(service.server())
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
        .await
}
