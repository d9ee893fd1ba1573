//! The swarm task and the handle the application drives it with.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use alloy_primitives::Bytes;
use futures::{StreamExt, future::BoxFuture, stream::FuturesUnordered};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, allow_block_list, connection_limits,
    core::ConnectedPoint,
    gossipsub::{self, MessageAcceptance, MessageId, TopicHash},
    identify,
    multiaddr::Protocol,
    noise, ping,
    request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel},
    swarm::{
        NetworkBehaviour, SwarmEvent,
        dial_opts::{DialOpts, PeerCondition},
    },
    tcp, yamux,
};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, debug, info, trace, warn};

use crate::{
    BAN_THRESHOLD, Direction, MAX_BLOCKS_PER_REQUEST, NetworkConfig, NetworkError, NetworkEvent, PENALTY,
    PeerInfo, Request, RequestError, Response, Topic, Verdict,
    codec::{CodecError, SyncCodec, codec_error},
    identity::load_or_create_identity,
    metrics as m,
};

const TARGET: &str = "alys::network";

/// Room for the gossipsub envelope (signature, key, topic, protobuf framing) on top of the payload.
const GOSSIP_OVERHEAD: usize = 4096;
/// Capacity of the handle → task command queue.
const COMMAND_BUFFER: usize = 8192;
/// How often scores decay, bans expire, metrics update and bootnodes are re-dialed.
const TICK: Duration = Duration::from_secs(1);
/// The application score is multiplied by this every [`TICK`] (half-life about 70 s).
const APP_SCORE_DECAY: f64 = 0.99;
/// Penalty for exceeding a rate limit.
const RATE_LIMIT_PENALTY: f64 = 1.0;
/// Penalty for an undecodable request or response.
const MALFORMED_PENALTY: f64 = 5.0;
/// At most this many addresses in a [`Response::Peers`].
const MAX_PEER_ADDRESSES: usize = 64;
/// Gossip messages awaiting a verdict longer than this are forgotten (for metric labels only;
/// gossipsub forgets them sooner).
const VALIDATION_MEMORY: Duration = Duration::from_secs(120);
/// A requester gives up after `request_timeout` (in [`NetworkHandle::request`]); a responder waits
/// for its application this much longer, and libp2p's own stream timeout is twice this beyond, so
/// a requester sees [`RequestError::Timeout`] rather than a responder closing the stream.
const REQUEST_GRACE: Duration = Duration::from_secs(1);
/// The first wait between two bootnode re-dials.
const REDIAL_INITIAL: Duration = Duration::from_secs(1);

/// The libp2p behaviours every connection runs.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    limits: connection_limits::Behaviour,
    gossipsub: gossipsub::Behaviour,
    sync: request_response::Behaviour<SyncCodec>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

enum Command {
    Publish { topic: Topic, data: Vec<u8> },
    Report { id: MessageId, from: PeerId, verdict: Verdict },
    Request { peer: PeerId, request: Request, reply: oneshot::Sender<Result<Response, RequestError>> },
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    TopicPeers(Topic, oneshot::Sender<Vec<PeerId>>),
    Banned(oneshot::Sender<Vec<PeerId>>),
    Penalize { peer: PeerId, reason: &'static str },
    Dial(Multiaddr),
    Shutdown(oneshot::Sender<()>),
}

#[derive(Debug)]
struct Shared {
    local_peer_id: PeerId,
    listen_addrs: Mutex<Vec<Multiaddr>>,
    max_gossip_bytes: usize,
    request_timeout: Duration,
}

/// The application's handle on the network task; cheap to clone. The task stops when every handle
/// is dropped, or at [`NetworkHandle::shutdown`].
#[derive(Clone, Debug)]
pub struct NetworkHandle {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Publish { .. } => "Publish",
            Self::Report { .. } => "Report",
            Self::Request { .. } => "Request",
            Self::Peers(_) => "Peers",
            Self::TopicPeers(..) => "TopicPeers",
            Self::Banned(_) => "Banned",
            Self::Penalize { .. } => "Penalize",
            Self::Dial(_) => "Dial",
            Self::Shutdown(_) => "Shutdown",
        })
    }
}

impl NetworkHandle {
    /// This node's peer id (stable across restarts: it comes from the key file).
    pub fn local_peer_id(&self) -> PeerId {
        self.shared.local_peer_id
    }

    /// The addresses the node listens on (the actual port when configured with port 0).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.shared.listen_addrs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The first listen address with `/p2p/<peer id>` appended: what another node puts in its
    /// bootnodes.
    pub fn enode(&self) -> Option<Multiaddr> {
        self.listen_addrs().into_iter().next().map(|a| a.with(Protocol::P2p(self.local_peer_id())))
    }

    /// Publishes `data` on `topic`. Non-blocking: the message is queued for the network task.
    /// Having no peers is not an error (the message is simply not delivered; logged at debug).
    pub fn publish(&self, topic: Topic, data: Vec<u8>) -> Result<(), NetworkError> {
        let max = self.shared.max_gossip_bytes;
        if data.len() > max {
            return Err(NetworkError::TooLarge { len: data.len(), max });
        }
        self.commands.try_send(Command::Publish { topic, data }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => NetworkError::Busy,
            mpsc::error::TrySendError::Closed(_) => NetworkError::Closed,
        })
    }

    /// Reports the application's verdict on a gossip message ([`NetworkEvent::Gossip`]): only
    /// [`Verdict::Accept`] forwards it; [`Verdict::Reject`] also penalizes `from`.
    pub fn report(&self, id: MessageId, from: PeerId, verdict: Verdict) {
        self.send(Command::Report { id, from, verdict });
    }

    /// Sends a sync request to `peer` and waits for its response (at most
    /// [`NetworkConfig::request_timeout`]).
    pub async fn request(&self, peer: PeerId, request: Request) -> Result<Response, RequestError> {
        match &request {
            Request::BlocksByRange { count, .. } if *count > MAX_BLOCKS_PER_REQUEST => {
                return Err(RequestError::Invalid("more than MAX_BLOCKS_PER_REQUEST blocks"));
            }
            Request::BlocksByHash(hashes) if hashes.len() as u64 > MAX_BLOCKS_PER_REQUEST => {
                return Err(RequestError::Invalid("more than MAX_BLOCKS_PER_REQUEST hashes"));
            }
            _ => {}
        }
        let (reply, response) = oneshot::channel();
        self.commands
            .send(Command::Request { peer, request, reply })
            .await
            .map_err(|_| RequestError::Closed)?;
        match tokio::time::timeout(self.shared.request_timeout, response).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(RequestError::Closed),
            Err(_) => Err(RequestError::Timeout),
        }
    }

    /// The connected peers, with their scores.
    pub async fn peers(&self) -> Vec<PeerInfo> {
        self.ask(Command::Peers).await.unwrap_or_default()
    }

    /// The peers subscribed to `topic` (those a publish reaches directly).
    pub async fn topic_peers(&self, topic: Topic) -> Vec<PeerId> {
        self.ask(|tx| Command::TopicPeers(topic, tx)).await.unwrap_or_default()
    }

    /// The peers currently banned.
    pub async fn banned_peers(&self) -> Vec<PeerId> {
        self.ask(Command::Banned).await.unwrap_or_default()
    }

    /// Penalizes `peer` for application-level misbehaviour (a bad block in a sync response, ...):
    /// [`crate::PENALTY`] off its application score, banned below [`crate::BAN_THRESHOLD`].
    pub fn penalize(&self, peer: PeerId, reason: &'static str) {
        self.send(Command::Penalize { peer, reason });
    }

    /// Dials `addr` (with or without a `/p2p/<peer id>` suffix).
    pub fn dial(&self, addr: Multiaddr) {
        self.send(Command::Dial(addr));
    }

    /// Stops the network task, whatever other handles exist, and waits until its listener and
    /// connections are closed.
    pub async fn shutdown(&self) {
        if let Some(()) = self.ask(Command::Shutdown).await {
            debug!(target: TARGET, "network stopped");
        }
    }

    fn send(&self, command: Command) {
        if let Err(e) = self.commands.try_send(command) {
            warn!(target: TARGET, command = ?e.into_inner(), "network command dropped: queue full or task stopped");
        }
    }

    async fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(command(tx)).await.ok()?;
        rx.await.ok()
    }
}

/// Starts the network: loads the identity, binds the listener, subscribes to every [`Topic`] and
/// spawns the swarm task. Returns once the listener is bound.
pub async fn start(
    config: NetworkConfig,
) -> Result<(NetworkHandle, mpsc::Receiver<NetworkEvent>), NetworkError> {
    let keypair = load_or_create_identity(&config.key_file)?;
    let local_peer_id = keypair.public().to_peer_id();
    // A node that never connects shows 0 peers (an alert can fire on it), not a missing series.
    metrics::gauge!(m::PEERS).set(0.0);
    let build = |e: &dyn std::fmt::Display| NetworkError::Build(e.to_string());

    let protocol = StreamProtocol::try_from_owned(format!("/alys/{}/sync/1", config.network_id))
        .map_err(|e| build(&e))?;
    let topics: HashMap<TopicHash, Topic> = Topic::ALL
        .iter()
        .map(|t| (gossipsub::IdentTopic::new(t.topic_name(&config.network_id)).hash(), *t))
        .collect();

    let gossip_config = gossipsub::ConfigBuilder::default()
        .validate_messages()
        .validation_mode(gossipsub::ValidationMode::Strict)
        .message_id_fn(|m: &gossipsub::Message| MessageId::from(Sha256::digest(&m.data).to_vec()))
        .max_transmit_size(config.max_gossip_bytes.saturating_add(GOSSIP_OVERHEAD))
        .heartbeat_initial_delay(Duration::from_millis(500))
        .history_length(12)
        .build()
        .map_err(|e| build(&e))?;
    let mut gossipsub =
        gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(keypair.clone()), gossip_config)
            .map_err(|e| build(&e))?;
    let (score_params, thresholds) = score_params(topics.keys());
    gossipsub.with_peer_score(score_params, thresholds).map_err(|e| build(&e))?;
    for hash in topics.keys() {
        let topic = gossipsub::IdentTopic::new(hash.as_str());
        gossipsub.subscribe(&topic).map_err(|e| build(&e))?;
    }

    let sync = request_response::Behaviour::with_codec(
        SyncCodec { max_response_bytes: config.max_response_bytes },
        [(protocol, ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(config.request_timeout + 2 * REQUEST_GRACE),
    );
    let identify = identify::Behaviour::new(
        identify::Config::new("/alys/1".to_owned(), keypair.public())
            .with_agent_version(format!("alys/{}", env!("CARGO_PKG_VERSION"))),
    );
    let limits = connection_limits::Behaviour::new(
        connection_limits::ConnectionLimits::default()
            .with_max_established(Some(config.max_peers.saturating_mul(2).max(1)))
            .with_max_established_per_peer(Some(2))
            .with_max_pending_incoming(Some(config.max_peers.max(1))),
    );
    let behaviour = Behaviour {
        blocked: allow_block_list::Behaviour::default(),
        limits,
        gossipsub,
        sync,
        identify,
        ping: ping::Behaviour::default(),
    };

    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|e| build(&e))?
        .with_behaviour(|_| behaviour)
        .map_err(|e| build(&e))?
        // Federation links are meant to stay up: only bans, limits and the peer close them.
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(24 * 60 * 60)))
        .build();

    let listen = socket_multiaddr(config.listen);
    let listen_err = |reason: String| NetworkError::Listen { addr: config.listen, reason };
    swarm.listen_on(listen).map_err(|e| listen_err(e.to_string()))?;
    let first = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::NewListenAddr { address, .. } => return Ok(address),
                SwarmEvent::ListenerError { error, .. } => return Err(error.to_string()),
                SwarmEvent::ListenerClosed { reason: Err(error), .. } => return Err(error.to_string()),
                SwarmEvent::ListenerClosed { .. } => return Err("listener closed".to_owned()),
                other => trace!(target: TARGET, event = ?other, "event before listening"),
            }
        }
    })
    .await
    .map_err(|_| listen_err("timed out".to_owned()))?
    .map_err(listen_err)?;
    info!(target: TARGET, %local_peer_id, address = %first, network_id = %config.network_id, "network listening");

    let shared = Arc::new(Shared {
        local_peer_id,
        listen_addrs: Mutex::new(vec![first]),
        max_gossip_bytes: config.max_gossip_bytes,
        request_timeout: config.request_timeout,
    });
    let (commands_tx, commands) = mpsc::channel(COMMAND_BUFFER);
    let (events, events_rx) = mpsc::channel(config.event_buffer.max(1));
    let now = Instant::now();
    let task = Task {
        swarm,
        shared: shared.clone(),
        commands,
        events,
        topics,
        peers: HashMap::new(),
        app_scores: HashMap::new(),
        banned: HashMap::new(),
        outbound: HashMap::new(),
        awaiting_verdict: HashMap::new(),
        replies: FuturesUnordered::new(),
        redial_backoff: REDIAL_INITIAL,
        next_redial: now,
        next_exchange: now + config.peer_exchange_interval,
        exchange_cursor: 0,
        config,
    };
    let span = tracing::info_span!(target: TARGET, "network", peer_id = %local_peer_id);
    tokio::spawn(task.run().instrument(span));
    Ok((NetworkHandle { shared, commands: commands_tx }, events_rx))
}

fn socket_multiaddr(addr: SocketAddr) -> Multiaddr {
    Multiaddr::from(addr.ip()).with(Protocol::Tcp(addr.port()))
}

/// The last `/p2p/<id>` of an address.
fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

/// Gossipsub scoring: invalid messages weigh heavily (squared count × −10 per topic), quiet topics
/// cost nothing (a federation may go minutes without a proposal), co-located nodes are fine.
fn score_params<'a>(
    topics: impl Iterator<Item = &'a TopicHash>,
) -> (gossipsub::PeerScoreParams, gossipsub::PeerScoreThresholds) {
    let topic_params = gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 100.0,
        first_message_deliveries_weight: 0.5,
        first_message_deliveries_decay: 0.9,
        first_message_deliveries_cap: 20.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -10.0,
        invalid_message_deliveries_decay: 0.99,
        ..Default::default()
    };
    let params = gossipsub::PeerScoreParams {
        topics: topics.map(|t| (t.clone(), topic_params.clone())).collect(),
        topic_score_cap: 20.0,
        app_specific_weight: 1.0,
        ip_colocation_factor_weight: 0.0,
        ..Default::default()
    };
    (params, gossipsub::PeerScoreThresholds::default())
}

/// A token bucket: `rate` tokens a second, at most `2 × rate` saved up.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    rate: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate.max(1));
        Self { tokens: 2.0 * rate, rate, last: now }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(2.0 * self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct Peer {
    address: Multiaddr,
    direction: Direction,
    connected_at: Instant,
    client: Option<String>,
    listen_addrs: Vec<Multiaddr>,
    gossip: Bucket,
    requests: Bucket,
}

enum Outbound {
    App { reply: oneshot::Sender<Result<Response, RequestError>>, kind: &'static str, started: Instant },
    PeerExchange,
}

type Reply = (ResponseChannel<Response>, &'static str, Option<Response>);

struct Task {
    swarm: Swarm<Behaviour>,
    config: NetworkConfig,
    shared: Arc<Shared>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetworkEvent>,
    topics: HashMap<TopicHash, Topic>,
    peers: HashMap<PeerId, Peer>,
    /// Application scores, kept after a disconnect until they decay to nothing.
    app_scores: HashMap<PeerId, f64>,
    /// Banned peers and when their ban ends.
    banned: HashMap<PeerId, Instant>,
    outbound: HashMap<OutboundRequestId, Outbound>,
    /// Gossip handed to the application, for the verdict metric's topic label.
    awaiting_verdict: HashMap<MessageId, (Topic, Instant)>,
    /// The application's pending answers to inbound requests.
    replies: FuturesUnordered<BoxFuture<'static, Reply>>,
    redial_backoff: Duration,
    next_redial: Instant,
    next_exchange: Instant,
    exchange_cursor: usize,
}

impl Task {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let done = loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    None => break None,
                    Some(Command::Shutdown(done)) => break Some(done),
                    Some(command) => self.on_command(command),
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some((channel, kind, response)) = self.replies.next(), if !self.replies.is_empty() => {
                    self.answer(channel, kind, response);
                }
                _ = tick.tick() => self.on_tick(),
            }
        };
        info!(target: TARGET, "network task stopping");
        metrics::gauge!(m::PEERS).set(0.0);
        drop(self);
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish { topic, data } => self.publish(topic, data),
            Command::Report { id, from, verdict } => self.report(id, from, verdict),
            Command::Request { peer, request, reply } => {
                let kind = request.kind();
                if !self.peers.contains_key(&peer) {
                    // Sending would make libp2p dial the peer at whatever addresses it announced,
                    // around the bootnodes and `peer_exchange = false`: only connected peers are asked.
                    let _ = reply.send(Err(RequestError::Disconnected));
                    return;
                }
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
                self.outbound.insert(id, Outbound::App { reply, kind, started: Instant::now() });
            }
            Command::Peers(reply) => {
                let now = Instant::now();
                let gossipsub = &self.swarm.behaviour().gossipsub;
                let peers = self
                    .peers
                    .iter()
                    .map(|(id, p)| PeerInfo {
                        peer_id: *id,
                        address: Some(p.address.clone()),
                        direction: p.direction,
                        score: gossipsub.peer_score(id).unwrap_or_default(),
                        client: p.client.clone(),
                        connected_secs: now.saturating_duration_since(p.connected_at).as_secs(),
                    })
                    .collect();
                let _ = reply.send(peers);
            }
            Command::TopicPeers(topic, reply) => {
                let hash = gossipsub::IdentTopic::new(topic.topic_name(&self.config.network_id)).hash();
                let peers = self
                    .swarm
                    .behaviour()
                    .gossipsub
                    .all_peers()
                    .filter(|(_, topics)| topics.contains(&&hash))
                    .map(|(p, _)| *p)
                    .collect();
                let _ = reply.send(peers);
            }
            Command::Banned(reply) => {
                let _ = reply.send(self.banned.keys().copied().collect());
            }
            Command::Penalize { peer, reason } => self.penalize(peer, reason, PENALTY),
            Command::Dial(addr) => self.dial(addr),
            Command::Shutdown(_) => {}
        }
    }

    fn publish(&mut self, topic: Topic, data: Vec<u8>) {
        let hash = gossipsub::IdentTopic::new(topic.topic_name(&self.config.network_id));
        let len = data.len() as u64;
        match self.swarm.behaviour_mut().gossipsub.publish(hash, data) {
            Ok(id) => {
                debug!(target: TARGET, %topic, %id, len, "published");
                metrics::counter!(m::GOSSIP_PUBLISHED, "topic" => topic.name()).increment(1);
                metrics::counter!(m::GOSSIP_BYTES, "topic" => topic.name(), "direction" => "outbound")
                    .increment(len);
            }
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                debug!(target: TARGET, %topic, "published to no one: no peer subscribed");
            }
            Err(gossipsub::PublishError::Duplicate) => {
                debug!(target: TARGET, %topic, "not published: the same payload was published recently");
            }
            Err(e) => warn!(target: TARGET, %topic, error = %e, "publish failed"),
        }
    }

    fn report(&mut self, id: MessageId, from: PeerId, verdict: Verdict) {
        let topic = self.awaiting_verdict.remove(&id).map_or("unknown", |(t, _)| t.name());
        metrics::counter!(m::GOSSIP_MESSAGES, "topic" => topic, "verdict" => verdict.name()).increment(1);
        let acceptance = match verdict {
            Verdict::Accept => MessageAcceptance::Accept,
            Verdict::Ignore => MessageAcceptance::Ignore,
            Verdict::Reject => MessageAcceptance::Reject,
        };
        let known =
            self.swarm.behaviour_mut().gossipsub.report_message_validation_result(&id, &from, acceptance);
        debug!(target: TARGET, %id, %from, verdict = verdict.name(), known, "gossip verdict");
        if verdict == Verdict::Reject {
            self.penalize(from, "rejected_gossip", PENALTY);
        }
    }

    fn penalize(&mut self, peer: PeerId, reason: &'static str, amount: f64) {
        metrics::counter!(m::PENALTIES, "reason" => reason).increment(1);
        let score = self.app_scores.entry(peer).or_default();
        *score -= amount;
        let score = *score;
        debug!(target: TARGET, %peer, reason, score, "peer penalized");
        self.swarm.behaviour_mut().gossipsub.set_application_score(&peer, score);
        if score < BAN_THRESHOLD {
            self.ban(peer, reason);
        }
    }

    fn ban(&mut self, peer: PeerId, reason: &'static str) {
        if peer == self.shared.local_peer_id || self.banned.contains_key(&peer) {
            return;
        }
        warn!(target: TARGET, %peer, reason, duration = ?self.config.ban_duration, "banning peer");
        metrics::counter!(m::PEERS_BANNED).increment(1);
        self.banned.insert(peer, Instant::now() + self.config.ban_duration);
        let behaviour = self.swarm.behaviour_mut();
        behaviour.blocked.block_peer(peer);
        behaviour.gossipsub.blacklist_peer(&peer);
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    fn unban(&mut self, peer: PeerId) {
        info!(target: TARGET, %peer, "ban expired");
        self.banned.remove(&peer);
        self.app_scores.remove(&peer);
        let behaviour = self.swarm.behaviour_mut();
        behaviour.blocked.unblock_peer(peer);
        behaviour.gossipsub.remove_blacklisted_peer(&peer);
        behaviour.gossipsub.set_application_score(&peer, 0.0);
    }

    fn dial(&mut self, addr: Multiaddr) {
        let opts = match peer_of(&addr) {
            Some(peer) if peer == self.shared.local_peer_id || self.peers.contains_key(&peer) => return,
            Some(peer) if self.banned.contains_key(&peer) => {
                debug!(target: TARGET, %peer, "not dialing a banned peer");
                return;
            }
            Some(peer) => DialOpts::peer_id(peer)
                .addresses(vec![addr.clone()])
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build(),
            None => DialOpts::unknown_peer_id().address(addr.clone()).build(),
        };
        if let Err(e) = self.swarm.dial(opts) {
            debug!(target: TARGET, %addr, error = %e, "dial failed");
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        // Scores decay toward zero; a forgiven peer's entry goes away.
        let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
        self.app_scores.retain(|peer, score| {
            *score *= APP_SCORE_DECAY;
            if score.abs() < 0.5 {
                *score = 0.0;
            }
            gossipsub.set_application_score(peer, *score);
            *score != 0.0
        });
        let expired: Vec<PeerId> =
            self.banned.iter().filter(|(_, until)| **until <= now).map(|(p, _)| *p).collect();
        for peer in expired {
            self.unban(peer);
        }
        self.awaiting_verdict.retain(|_, (_, at)| now.saturating_duration_since(*at) < VALIDATION_MEMORY);

        // Gossipsub's own verdict: below graylist, the peer is as good as banned; make it so.
        let graylist = gossipsub::PeerScoreThresholds::default().graylist_threshold;
        let mut graylisted = Vec::new();
        for peer in self.peers.keys() {
            let score = self.swarm.behaviour().gossipsub.peer_score(peer).unwrap_or_default();
            metrics::gauge!(m::PEER_SCORE, "peer" => peer.to_string()).set(score);
            if score < graylist {
                graylisted.push(*peer);
            }
        }
        for peer in graylisted {
            self.ban(peer, "gossip_score");
        }

        // Bootnodes: re-dialed with backoff while the node is alone.
        if self.peers.is_empty() {
            if now >= self.next_redial && !self.config.bootnodes.is_empty() {
                debug!(target: TARGET, backoff = ?self.redial_backoff, "no peers: dialing bootnodes");
                for addr in self.config.bootnodes.clone() {
                    self.dial(addr);
                }
                self.next_redial = now + self.redial_backoff;
                self.redial_backoff = (self.redial_backoff * 2).min(self.config.bootnode_redial_max);
            }
        } else {
            self.redial_backoff = REDIAL_INITIAL;
            self.next_redial = now;
        }

        // Peer exchange, one peer at a time, while there is room for more.
        if self.config.peer_exchange
            && now >= self.next_exchange
            && !self.peers.is_empty()
            && self.peers.len() < self.max_peers()
        {
            self.next_exchange = now + self.config.peer_exchange_interval;
            self.exchange_cursor = self.exchange_cursor.wrapping_add(1);
            if let Some(peer) = self.peers.keys().nth(self.exchange_cursor % self.peers.len()).copied() {
                self.ask_peers(peer);
            }
        }
    }

    fn max_peers(&self) -> usize {
        usize::try_from(self.config.max_peers).unwrap_or(usize::MAX)
    }

    fn ask_peers(&mut self, peer: PeerId) {
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, Request::Peers);
        self.outbound.insert(id, Outbound::PeerExchange);
    }

    fn emit(&self, event: NetworkEvent) {
        if let Err(e) = self.events.try_send(event) {
            if matches!(e, mpsc::error::TrySendError::Full(_)) {
                metrics::counter!(m::DROPPED, "reason" => "channel_full").increment(1);
            }
            warn!(target: TARGET, event = ?e.into_inner(), "event dropped: application channel full or closed");
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => self.on_gossip(event),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => self.on_sync(event),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                debug!(target: TARGET, peer = %peer_id, agent = %info.agent_version, addrs = ?info.listen_addrs, "identified");
                if let Some(peer) = self.peers.get_mut(&peer_id) {
                    peer.client = Some(info.agent_version);
                    peer.listen_addrs = info.listen_addrs;
                }
            }
            SwarmEvent::Behaviour(_) => {}
            SwarmEvent::ConnectionEstablished {
                peer_id, connection_id, endpoint, num_established, ..
            } => {
                if num_established.get() > 1 || self.peers.contains_key(&peer_id) {
                    return;
                }
                if self.peers.len() >= self.max_peers() {
                    debug!(target: TARGET, peer = %peer_id, "at max_peers: closing the new connection");
                    self.swarm.close_connection(connection_id);
                    return;
                }
                let (address, direction) = match endpoint {
                    ConnectedPoint::Dialer { address, .. } => (address, Direction::Outbound),
                    ConnectedPoint::Listener { send_back_addr, .. } => (send_back_addr, Direction::Inbound),
                };
                info!(target: TARGET, peer = %peer_id, %address, ?direction, "peer connected");
                let now = Instant::now();
                self.peers.insert(
                    peer_id,
                    Peer {
                        address,
                        direction,
                        connected_at: now,
                        client: None,
                        listen_addrs: Vec::new(),
                        gossip: Bucket::new(self.config.gossip_rate, now),
                        requests: Bucket::new(self.config.request_rate, now),
                    },
                );
                if let Some(score) = self.app_scores.get(&peer_id).copied() {
                    self.swarm.behaviour_mut().gossipsub.set_application_score(&peer_id, score);
                }
                metrics::gauge!(m::PEERS).set(self.peers.len() as f64);
                self.emit(NetworkEvent::PeerConnected(peer_id));
                if self.config.peer_exchange && self.peers.len() < self.max_peers() {
                    self.ask_peers(peer_id);
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, cause, .. } => {
                if self.peers.remove(&peer_id).is_some() {
                    info!(target: TARGET, peer = %peer_id, cause = ?cause, "peer disconnected");
                    metrics::gauge!(m::PEERS).set(self.peers.len() as f64);
                    self.emit(NetworkEvent::PeerDisconnected(peer_id));
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(target: TARGET, %address, "listening");
                let mut addrs = self.shared.listen_addrs.lock().unwrap_or_else(|e| e.into_inner());
                if !addrs.contains(&address) {
                    addrs.push(address);
                }
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.shared.listen_addrs.lock().unwrap_or_else(|e| e.into_inner()).retain(|a| a != &address);
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                debug!(target: TARGET, peer = ?peer_id, %error, "outgoing connection failed");
            }
            SwarmEvent::IncomingConnectionError { send_back_addr, error, .. } => {
                debug!(target: TARGET, %send_back_addr, %error, "incoming connection failed");
            }
            other => trace!(target: TARGET, event = ?other, "swarm event"),
        }
    }

    fn on_gossip(&mut self, event: gossipsub::Event) {
        let gossipsub::Event::Message { propagation_source: from, message_id: id, message } = event else {
            trace!(target: TARGET, ?event, "gossipsub event");
            return;
        };
        let Some(topic) = self.topics.get(&message.topic).copied() else {
            self.validate(&id, &from, MessageAcceptance::Ignore);
            return;
        };
        metrics::counter!(m::GOSSIP_BYTES, "topic" => topic.name(), "direction" => "inbound")
            .increment(message.data.len() as u64);
        if message.data.len() > self.config.max_gossip_bytes {
            debug!(target: TARGET, %topic, %from, len = message.data.len(), "oversized gossip dropped");
            metrics::counter!(m::DROPPED, "reason" => "oversize").increment(1);
            self.validate(&id, &from, MessageAcceptance::Reject);
            self.penalize(from, "oversized_gossip", PENALTY);
            return;
        }
        let now = Instant::now();
        if let Some(peer) = self.peers.get_mut(&from)
            && !peer.gossip.take(now)
        {
            debug!(target: TARGET, %topic, %from, "gossip over the rate limit dropped");
            metrics::counter!(m::DROPPED, "reason" => "rate_limit").increment(1);
            self.validate(&id, &from, MessageAcceptance::Ignore);
            self.penalize(from, "gossip_rate_limit", RATE_LIMIT_PENALTY);
            return;
        }
        trace!(target: TARGET, %topic, %id, %from, len = message.data.len(), "gossip received");
        let event = NetworkEvent::Gossip { topic, id: id.clone(), from, data: Bytes::from(message.data) };
        match self.events.try_send(event) {
            Ok(()) => {
                self.awaiting_verdict.insert(id, (topic, now));
            }
            Err(e) => {
                let reason = match e {
                    mpsc::error::TrySendError::Full(_) => "channel_full",
                    mpsc::error::TrySendError::Closed(_) => "closed",
                };
                debug!(target: TARGET, %topic, %from, reason, "gossip dropped: application not keeping up");
                metrics::counter!(m::DROPPED, "reason" => reason).increment(1);
                self.validate(&id, &from, MessageAcceptance::Ignore);
            }
        }
    }

    fn validate(&mut self, id: &MessageId, from: &PeerId, acceptance: MessageAcceptance) {
        self.swarm.behaviour_mut().gossipsub.report_message_validation_result(id, from, acceptance);
    }

    fn on_sync(&mut self, event: request_response::Event<Request, Response>) {
        use request_response::{Event, InboundFailure, Message, OutboundFailure};
        match event {
            Event::Message { peer, message: Message::Request { request, channel, .. }, .. } => {
                self.on_request(peer, request, channel);
            }
            Event::Message { peer, message: Message::Response { request_id, response }, .. } => {
                match self.outbound.remove(&request_id) {
                    Some(Outbound::App { reply, kind, started }) => {
                        let outcome = if matches!(response, Response::Error(_)) { "error" } else { "ok" };
                        metrics::counter!(m::REQUESTS, "kind" => kind, "direction" => "outbound", "outcome" => outcome)
                            .increment(1);
                        metrics::histogram!(m::REQUEST_SECONDS, "kind" => kind)
                            .record(started.elapsed().as_secs_f64());
                        let _ = reply.send(Ok(response));
                    }
                    Some(Outbound::PeerExchange) => self.on_peer_exchange(peer, response),
                    None => {}
                }
            }
            Event::OutboundFailure { peer, request_id, error, .. } => {
                let error = match error {
                    OutboundFailure::Timeout => RequestError::Timeout,
                    OutboundFailure::DialFailure | OutboundFailure::ConnectionClosed => {
                        RequestError::Disconnected
                    }
                    OutboundFailure::UnsupportedProtocols => RequestError::Unsupported,
                    OutboundFailure::Io(e) => match codec_error(&e) {
                        Some(CodecError::TooLarge { len, max }) => {
                            RequestError::TooLarge { len: *len, max: *max }
                        }
                        Some(CodecError::Decode(what)) => {
                            self.penalize(peer, "malformed_response", MALFORMED_PENALTY);
                            RequestError::Decode(what)
                        }
                        None if e.kind() == std::io::ErrorKind::UnexpectedEof => RequestError::Disconnected,
                        None => RequestError::Io(e.to_string()),
                    },
                };
                debug!(target: TARGET, %peer, %error, "outbound request failed");
                match self.outbound.remove(&request_id) {
                    Some(Outbound::App { reply, kind, .. }) => {
                        metrics::counter!(m::REQUESTS, "kind" => kind, "direction" => "outbound", "outcome" => outcome(&error))
                            .increment(1);
                        let _ = reply.send(Err(error));
                    }
                    Some(Outbound::PeerExchange) => {
                        metrics::counter!(m::REQUESTS, "kind" => "peers", "direction" => "outbound", "outcome" => outcome(&error))
                            .increment(1);
                    }
                    None => {}
                }
            }
            Event::InboundFailure { peer, error, .. } => {
                let outcome = match &error {
                    InboundFailure::Io(e) => match codec_error(e) {
                        Some(CodecError::TooLarge { .. }) => "too_large",
                        Some(CodecError::Decode(_)) => "decode",
                        None => "io",
                    },
                    InboundFailure::Timeout => "timeout",
                    InboundFailure::ConnectionClosed => "disconnected",
                    InboundFailure::UnsupportedProtocols => "unsupported",
                    InboundFailure::ResponseOmission => "no_response",
                };
                debug!(target: TARGET, %peer, %error, "inbound request failed");
                metrics::counter!(m::REQUESTS, "kind" => "unknown", "direction" => "inbound", "outcome" => outcome)
                    .increment(1);
                if matches!(outcome, "too_large" | "decode") {
                    self.penalize(peer, "malformed_request", MALFORMED_PENALTY);
                }
            }
            Event::ResponseSent { .. } => {}
        }
    }

    fn on_request(&mut self, peer: PeerId, request: Request, channel: ResponseChannel<Response>) {
        let kind = request.kind();
        trace!(target: TARGET, %peer, kind, "request received");
        if let Some(p) = self.peers.get_mut(&peer)
            && !p.requests.take(Instant::now())
        {
            metrics::counter!(m::DROPPED, "reason" => "rate_limit").increment(1);
            self.penalize(peer, "request_rate_limit", RATE_LIMIT_PENALTY);
            self.answer(channel, kind, Some(Response::Error("rate limited".to_owned())));
            return;
        }
        let request = match request {
            Request::Peers => {
                let addrs = self.peer_addresses(peer);
                self.answer(channel, kind, Some(Response::Peers(addrs)));
                return;
            }
            Request::BlocksByRange { start, count } => {
                Request::BlocksByRange { start, count: count.min(MAX_BLOCKS_PER_REQUEST) }
            }
            Request::BlocksByHash(mut hashes) => {
                hashes.truncate(MAX_BLOCKS_PER_REQUEST as usize);
                Request::BlocksByHash(hashes)
            }
            Request::Status => Request::Status,
        };
        let (reply, response) = oneshot::channel();
        match self.events.try_send(NetworkEvent::Request { peer, request, reply }) {
            Ok(()) => {
                let timeout = self.config.request_timeout + REQUEST_GRACE;
                self.replies.push(Box::pin(async move {
                    let response = match tokio::time::timeout(timeout, response).await {
                        Ok(Ok(response)) => Some(response),
                        Ok(Err(_)) => Some(Response::Error("no response".to_owned())),
                        // The requester has given up; dropping the channel closes the stream.
                        Err(_) => None,
                    };
                    (channel, kind, response)
                }));
            }
            Err(e) => {
                let message = match e {
                    mpsc::error::TrySendError::Full(_) => {
                        metrics::counter!(m::DROPPED, "reason" => "channel_full").increment(1);
                        "busy"
                    }
                    mpsc::error::TrySendError::Closed(_) => "shutting down",
                };
                self.answer(channel, kind, Some(Response::Error(message.to_owned())));
            }
        }
    }

    /// Sends the answer to an inbound request (or lets it time out when `None`).
    fn answer(&mut self, channel: ResponseChannel<Response>, kind: &'static str, response: Option<Response>) {
        let Some(mut response) = response else {
            metrics::counter!(m::REQUESTS, "kind" => kind, "direction" => "inbound", "outcome" => "timeout")
                .increment(1);
            return;
        };
        if response_len(&response) > self.config.max_response_bytes {
            warn!(target: TARGET, kind, "the application's response exceeds max_response_bytes; answering an error");
            response = Response::Error("response too large".to_owned());
        }
        let outcome = match &response {
            Response::Error(e) if e == "busy" => "busy",
            Response::Error(e) if e == "rate limited" => "rate_limited",
            Response::Error(_) => "error",
            _ => "ok",
        };
        metrics::counter!(m::REQUESTS, "kind" => kind, "direction" => "inbound", "outcome" => outcome)
            .increment(1);
        if self.swarm.behaviour_mut().sync.send_response(channel, response).is_err() {
            debug!(target: TARGET, kind, "response not sent: the requester is gone");
        }
    }

    /// Listen addresses of our peers other than `asker`, as `/…/p2p/<id>`.
    fn peer_addresses(&self, asker: PeerId) -> Vec<Multiaddr> {
        self.peers
            .iter()
            .filter(|(id, _)| **id != asker)
            .flat_map(|(id, p)| p.listen_addrs.iter().filter_map(|a| a.clone().with_p2p(*id).ok()))
            .take(MAX_PEER_ADDRESSES)
            .collect()
    }

    fn on_peer_exchange(&mut self, from: PeerId, response: Response) {
        let Response::Peers(addrs) = response else {
            debug!(target: TARGET, %from, "peer exchange answered with something else");
            return;
        };
        debug!(target: TARGET, %from, count = addrs.len(), "peer exchange");
        let mut dialed = HashSet::new();
        for addr in addrs.into_iter().take(MAX_PEER_ADDRESSES) {
            if self.peers.len() + dialed.len() >= self.max_peers() {
                break;
            }
            // Only addresses that name their peer: the dial then checks who answers.
            let Some(peer) = peer_of(&addr) else { continue };
            if peer == self.shared.local_peer_id || self.peers.contains_key(&peer) || dialed.contains(&peer) {
                continue;
            }
            dialed.insert(peer);
            self.dial(addr);
        }
    }
}

fn outcome(error: &RequestError) -> &'static str {
    match error {
        RequestError::Timeout => "timeout",
        RequestError::Disconnected => "disconnected",
        RequestError::Unsupported => "unsupported",
        RequestError::TooLarge { .. } => "too_large",
        RequestError::Decode(_) => "decode",
        RequestError::Io(_) => "io",
        RequestError::Invalid(_) => "invalid",
        RequestError::Busy => "busy",
        RequestError::Closed => "closed",
    }
}

/// The encoded size of a response, without encoding it.
fn response_len(response: &Response) -> usize {
    match response {
        Response::Blocks(blocks) => {
            blocks.iter().fold(5usize, |n, b| n.saturating_add(4).saturating_add(b.len()))
        }
        Response::Peers(addrs) => {
            addrs.iter().fold(5usize, |n, a| n.saturating_add(2).saturating_add(a.len()))
        }
        Response::Status(s) => 3 + s.network_id.len() + 2 * 40 + 1,
        Response::Error(e) => 3 + e.len(),
    }
}
