//! The federation's peer-to-peer transport: gossip of opaque payloads per topic, validated by the
//! application before anything is forwarded, and a small request/response protocol for sync.
//!
//! This crate knows nothing about consensus. It moves bytes between federation nodes, keeps bad
//! peers out, and leaves every judgement about *content* to the application, which reports a
//! [`Verdict`] for each gossip message and may [`penalize`](NetworkHandle::penalize) a peer for
//! anything else it finds wrong (a bad block in a sync response, say).
//!
//! # Starting a node
//!
//! [`start`] loads (or creates, mode 0600) the node's ed25519 identity from
//! [`NetworkConfig::key_file`], so its [`PeerId`] survives restarts; binds the TCP listener before it
//! returns; and spawns one task that owns the libp2p swarm. It returns a [`NetworkHandle`] (cheap to
//! clone, every method non-blocking or a short round trip to the task) and the receiver of
//! [`NetworkEvent`]s. The task stops when every handle is dropped, or at
//! [`NetworkHandle::shutdown`].
//!
//! Connections are TCP, encrypted and authenticated with noise, multiplexed with yamux. Every
//! connection also runs identify (agent `alys/<version>`, which is how a node learns its peers'
//! listen addresses) and ping.
//!
//! # Gossip
//!
//! Each [`Topic`] is a gossipsub topic named `/alys/<network_id>/<topic>/1`, so two networks (two
//! genesis blocks) never mix. Messages are signed by their publisher (strict signing), their id is
//! the SHA-256 of the payload (the same payload published twice is one message: gossipsub's
//! duplicate cache drops a replay), and a message over [`NetworkConfig::max_gossip_bytes`] is
//! dropped on receipt.
//!
//! Validation is manual: a received message reaches the application as [`NetworkEvent::Gossip`] and
//! is held until the application calls [`NetworkHandle::report`]. Only [`Verdict::Accept`] forwards
//! it to the rest of the mesh; [`Verdict::Ignore`] drops it silently; [`Verdict::Reject`] drops it
//! and penalizes the peer that sent it. A message never reported is forgotten when it ages out of
//! gossipsub's cache. When the application's event channel is full the network drops the message
//! (as Ignore) rather than stall.
//!
//! # Scores and bans
//!
//! Two scores guard the node, both visible in [`PeerInfo::score`] and the `alys_network_peer_score`
//! metric:
//!
//! * gossipsub's peer score, with topic parameters that weigh *invalid message deliveries* heavily:
//!   every Rejected message costs its sender more than the last (the penalty grows with the square
//!   of the count), so a peer that keeps sending invalid messages drops below the gossip, publish
//!   and graylist thresholds in turn;
//! * an application score: every Reject and every [`penalize`](NetworkHandle::penalize) costs
//!   [`PENALTY`] points, a rate-limit violation costs 1, and the score slowly decays back to zero.
//!   It is also fed to gossipsub as its application-specific score.
//!
//! A peer whose application score falls below [`BAN_THRESHOLD`], or whose gossipsub score falls
//! below the graylist threshold, is banned: disconnected, and its connections are refused for
//! [`NetworkConfig::ban_duration`].
//!
//! Each peer also has token buckets for inbound gossip messages and inbound requests
//! ([`NetworkConfig::gossip_rate`], [`NetworkConfig::request_rate`], a burst of twice the rate);
//! what exceeds them is dropped and lightly penalized.
//!
//! # The sync protocol
//!
//! `/alys/<network_id>/sync/1` is a request/response protocol: a node opens a stream, writes one
//! [`Request`], reads one [`Response`]. Frames are length-prefixed with a hard cap checked before
//! anything is read (64 KiB for requests, [`NetworkConfig::max_response_bytes`] for responses); the
//! format is described in [`codec`]. Garbage is a typed error ([`RequestError::Decode`],
//! [`RequestError::TooLarge`]) and a light penalty for the peer that sent it, never a panic.
//!
//! [`Request::Peers`] is answered by the network itself; every other request reaches the
//! application as [`NetworkEvent::Request`] with a `reply` sender. The application answers by
//! sending a [`Response`] (dropping the sender answers [`Response::Error`]); if it does not answer
//! within [`NetworkConfig::request_timeout`] the requester sees [`RequestError::Timeout`]. When the
//! application's event channel is full the network answers `Response::Error("busy")` at once.
//! Responders cap block ranges at [`MAX_BLOCKS_PER_REQUEST`] and requesters never ask for more.
//!
//! # Finding peers
//!
//! At start the node dials its [`NetworkConfig::bootnodes`], and while it has no peer at all it
//! re-dials them with exponential backoff (up to [`NetworkConfig::bootnode_redial_max`]), so a node
//! started before its bootnodes still joins once they are up. Whenever a connection is established
//! (and every [`NetworkConfig::peer_exchange_interval`]) the node asks the peer for
//! [`Request::Peers`], the listen addresses of *its* peers as learned from identify, and dials those
//! it is not connected to while it has fewer than [`NetworkConfig::max_peers`] peers. Connections
//! beyond `max_peers` are closed as they arrive.
//!
//! # Metrics
//!
//! [`describe_metrics`] registers the help text of every metric: `alys_network_peers`,
//! `alys_network_gossip_messages_total{topic,verdict}`, `alys_network_gossip_published_total{topic}`,
//! `alys_network_gossip_bytes_total{topic,direction}`, `alys_network_requests_total{kind,direction,outcome}`,
//! `alys_network_request_seconds{kind}`, `alys_network_peers_banned_total`,
//! `alys_network_penalties_total{reason}`, `alys_network_peer_score{peer}` and
//! `alys_network_dropped_total{reason}`. Logs and spans use the target `alys::network`.

pub mod codec;
mod identity;
mod metrics;
mod service;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use alloy_primitives::{B256, Bytes};
use alys_primitives::BlockRef;
pub use libp2p::{Multiaddr, PeerId, gossipsub::MessageId};

pub use crate::{
    codec::{CodecError, MAX_REQUEST_BYTES},
    identity::{KeyError, load_or_create_identity},
    metrics::describe_metrics,
    service::{NetworkHandle, start},
};

/// The largest number of blocks one request asks for; responders cap ranges at this.
pub const MAX_BLOCKS_PER_REQUEST: u64 = 128;

/// What one Reject or one [`NetworkHandle::penalize`] costs a peer's application score.
pub const PENALTY: f64 = 10.0;

/// A peer whose application score falls below this is banned.
pub const BAN_THRESHOLD: f64 = -50.0;

/// How the node joins the network.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// TCP listen address (port 0 picks a free port; see [`NetworkHandle::listen_addrs`]).
    pub listen: SocketAddr,
    /// Dialed at start and re-dialed (with backoff) while the node has no peers.
    pub bootnodes: Vec<Multiaddr>,
    /// The ed25519 identity, protobuf-encoded; created (mode 0600) if missing, reused after restart.
    pub key_file: PathBuf,
    /// Namespaces topics and protocol names, e.g. the first 8 bytes of the genesis hash in hex.
    pub network_id: String,
    /// The most peers the node keeps connections to.
    pub max_peers: u32,
    /// The largest gossip payload; bigger gossip is dropped (default 10 MiB).
    pub max_gossip_bytes: usize,
    /// The largest sync response read (default 32 MiB).
    pub max_response_bytes: usize,
    /// How long a request waits for its response (default 10 s).
    pub request_timeout: Duration,
    /// Whether the node asks its peers for theirs and dials them (default on).
    pub peer_exchange: bool,
    /// How often peer exchange is repeated while below `max_peers` (default 30 s).
    pub peer_exchange_interval: Duration,
    /// The longest wait between two re-dials of the bootnodes while the node has no peers (default
    /// 30 s; the first wait is 1 s, doubling).
    pub bootnode_redial_max: Duration,
    /// How long a banned peer's connections are refused (default 30 min).
    pub ban_duration: Duration,
    /// Inbound gossip messages per second per peer (burst: twice as many).
    pub gossip_rate: u32,
    /// Inbound requests per second per peer (burst: twice as many).
    pub request_rate: u32,
    /// Capacity of the [`NetworkEvent`] channel (default 1024).
    pub event_buffer: usize,
}

impl NetworkConfig {
    /// A configuration with the defaults: no bootnodes, 50 peers, 10 MiB gossip, 32 MiB responses,
    /// 10 s request timeout, peer exchange on.
    pub fn new(listen: SocketAddr, key_file: impl Into<PathBuf>, network_id: impl Into<String>) -> Self {
        Self {
            listen,
            bootnodes: Vec::new(),
            key_file: key_file.into(),
            network_id: network_id.into(),
            max_peers: 50,
            max_gossip_bytes: 10 * 1024 * 1024,
            max_response_bytes: 32 * 1024 * 1024,
            request_timeout: Duration::from_secs(10),
            peer_exchange: true,
            peer_exchange_interval: Duration::from_secs(30),
            bootnode_redial_max: Duration::from_secs(30),
            ban_duration: Duration::from_secs(30 * 60),
            gossip_rate: 200,
            request_rate: 50,
            event_buffer: 1024,
        }
    }
}

/// A gossip topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Signed blocks.
    Blocks,
    /// Block proposals.
    Proposals,
    /// Approvals of proposed blocks.
    Approvals,
    /// Merged-mining proofs of work.
    AuxPow,
    /// Evidence of authority misbehaviour.
    Evidence,
}

impl Topic {
    /// Every topic.
    pub const ALL: [Self; 5] = [Self::Blocks, Self::Proposals, Self::Approvals, Self::AuxPow, Self::Evidence];

    /// The topic's short name, as used in the gossipsub topic and metric labels.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Blocks => "blocks",
            Self::Proposals => "proposals",
            Self::Approvals => "approvals",
            Self::AuxPow => "auxpow",
            Self::Evidence => "evidence",
        }
    }

    /// The gossipsub topic name on network `network_id`: `/alys/<network_id>/<name>/1`.
    pub fn topic_name(&self, network_id: &str) -> String {
        format!("/alys/{network_id}/{}/1", self.name())
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The application's judgement of a gossip message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Valid: forward it to the mesh.
    Accept,
    /// Not forwarded, no penalty (a duplicate by other means, not yet relevant, ...).
    Ignore,
    /// Invalid: not forwarded, and the sender is penalized.
    Reject,
}

impl Verdict {
    /// The metric label.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Ignore => "ignore",
            Self::Reject => "reject",
        }
    }
}

/// A sync request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// The peer's [`PeerStatus`].
    Status,
    /// Canonical blocks from height `start`, at most `count` (≤ [`MAX_BLOCKS_PER_REQUEST`]).
    BlocksByRange {
        /// First height.
        start: u64,
        /// How many.
        count: u64,
    },
    /// Blocks by consensus hash (at most [`MAX_BLOCKS_PER_REQUEST`]).
    BlocksByHash(Vec<B256>),
    /// Listen addresses of the peer's peers (answered by the network itself).
    Peers,
}

impl Request {
    /// The metric label.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::BlocksByRange { .. } => "blocks_by_range",
            Self::BlocksByHash(_) => "blocks_by_hash",
            Self::Peers => "peers",
        }
    }
}

/// A sync response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// The answer to [`Request::Status`].
    Status(PeerStatus),
    /// Encoded blocks, opaque to this crate.
    Blocks(Vec<Bytes>),
    /// The answer to [`Request::Peers`].
    Peers(Vec<Multiaddr>),
    /// The responder could not answer.
    Error(String),
}

/// Where a peer's chain stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer's network id.
    pub network_id: String,
    /// Its head.
    pub head: BlockRef,
    /// Its finalized block, if any.
    pub finalized: Option<BlockRef>,
}

/// What the network tells the application, through a bounded channel
/// ([`NetworkConfig::event_buffer`]). The network never waits for the application: when the channel
/// is full, gossip is dropped (as [`Verdict::Ignore`]), requests are answered
/// `Response::Error("busy")`, and connection events are dropped and counted
/// (`alys_network_dropped_total{reason="channel_full"}`); [`NetworkHandle::peers`] is always exact.
#[derive(Debug)]
pub enum NetworkEvent {
    /// A gossip message awaiting a [`Verdict`] ([`NetworkHandle::report`] with `id` and `from`).
    Gossip {
        /// The topic.
        topic: Topic,
        /// The message id (to report the verdict).
        id: MessageId,
        /// The peer that forwarded it (not necessarily its author).
        from: PeerId,
        /// The payload.
        data: Bytes,
    },
    /// A sync request from a peer; answer through `reply` (dropping it answers
    /// [`Response::Error`]).
    Request {
        /// The requesting peer.
        peer: PeerId,
        /// The request.
        request: Request,
        /// Where the response goes.
        reply: tokio::sync::oneshot::Sender<Response>,
    },
    /// A peer connected (its first connection).
    PeerConnected(PeerId),
    /// A peer disconnected (its last connection closed).
    PeerDisconnected(PeerId),
}

/// Who opened a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The peer dialed us.
    Inbound,
    /// We dialed the peer.
    Outbound,
}

/// A connected peer, for status pages and RPC.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    /// Its id.
    pub peer_id: PeerId,
    /// The remote address of its connection.
    pub address: Option<Multiaddr>,
    /// Who dialed.
    pub direction: Direction,
    /// Its gossipsub score (which includes the application score).
    pub score: f64,
    /// Its identify agent (`alys/<version>`), once known.
    pub client: Option<String>,
    /// Seconds since it connected.
    pub connected_secs: u64,
}

/// Why the network could not start or take a command.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The identity key file could not be read, parsed or written.
    #[error("identity key: {0}")]
    Key(#[from] KeyError),
    /// The transport or a behaviour could not be built.
    #[error("building the swarm: {0}")]
    Build(String),
    /// The listen address could not be bound.
    #[error("listening on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The payload is larger than [`NetworkConfig::max_gossip_bytes`].
    #[error("gossip payload of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The payload's size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The network task's command queue is full.
    #[error("network command queue is full")]
    Busy,
    /// The network task has stopped.
    #[error("network task has stopped")]
    Closed,
}

/// Why a sync request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No response within [`NetworkConfig::request_timeout`].
    #[error("request timed out")]
    Timeout,
    /// The connection closed (or could not be opened) before a response arrived.
    #[error("peer disconnected")]
    Disconnected,
    /// The peer does not speak this network's sync protocol.
    #[error("peer does not support the sync protocol")]
    Unsupported,
    /// The response was larger than [`NetworkConfig::max_response_bytes`].
    #[error("response of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The response could not be decoded.
    #[error("undecodable response: {0}")]
    Decode(&'static str),
    /// The stream failed.
    #[error("stream error: {0}")]
    Io(String),
    /// The request breaks the protocol's limits and was not sent.
    #[error("invalid request: {0}")]
    Invalid(&'static str),
    /// The network task's command queue is full.
    #[error("network command queue is full")]
    Busy,
    /// The network task has stopped.
    #[error("network task has stopped")]
    Closed,
}
