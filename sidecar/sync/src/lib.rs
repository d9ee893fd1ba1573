//! The NetworkActor: what a node does with the federation's network.
//!
//! [`alys_network`] carries bytes; this crate gives them meaning. Three tasks share one network handle
//! and talk to the ChainActor only through its mailbox (no shared state):
//!
//! - **Gossip** ([`gossip`]): every message is decoded and put through the chain's own checks before it
//!   is forwarded; the verdict goes back to gossipsub (accept forwards it, reject penalizes the peer
//!   that sent it, ignore does neither). Blocks are imported; proposals are checked and, on an
//!   authority, answered with its approval, gossiped; approvals count toward this node's pending block;
//!   merged-mining proofs are queued for the next block; equivocation evidence is stored. What the
//!   chain emits ([`alys_chain::ChainEvent`]: its proposals, its approved blocks, evidence, proofs
//!   miners submitted here) is published.
//! - **Serving** ([`serve`]): peers' requests are answered from the database: status (head,
//!   finalized), canonical blocks by range, blocks by hash, each response bounded.
//! - **Sync** ([`sync`]): every couple of seconds, and whenever gossip shows a block whose parent is
//!   unknown, the peers' status is asked; while a peer's head is ahead, blocks are fetched by range from
//!   the best peer and imported in order through the chain's full import path (the execution client is
//!   fed through the Engine API as for any block). A range whose first block does not attach steps back
//!   toward the finalized block until it does, so a node on a dead fork finds the common ancestor.
//!
//! What the node shows of all this ([`NetworkView`]: peers with their heads and scores, sync mode and
//! target) is published on a watch channel for the RPC.

mod gossip;
mod serve;
mod sync;

use std::{sync::Arc, time::Duration};

use alys_actor::Handle;
use alys_chain::{ChainEvent, ChainMessage};
use alys_network::{NetworkEvent, NetworkHandle};
use alys_primitives::{BlockRef, ChainHeads};
use alys_storage::Storage;
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};

/// Whether the node is catching up or following gossip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// At the best head any peer reported (or no peer is ahead): blocks arrive by gossip.
    #[default]
    Following,
    /// Fetching blocks by range from a peer that is ahead.
    Syncing,
}

impl SyncMode {
    /// `"following"` or `"syncing"`.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Following => "following",
            Self::Syncing => "syncing",
        }
    }
}

/// One connected peer, as the RPC shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerView {
    /// Its libp2p peer id.
    pub peer_id: String,
    /// The address of the connection.
    pub address: Option<String>,
    /// `"inbound"` or `"outbound"`.
    pub direction: &'static str,
    /// Its gossip score.
    pub score: f64,
    /// Its client (identify agent).
    pub client: Option<String>,
    /// Seconds connected.
    pub connected_secs: u64,
    /// Its head and finalized block, from its last status answer.
    pub head: Option<BlockRef>,
    /// Its finalized block.
    pub finalized: Option<BlockRef>,
}

/// The network as the node's RPC shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NetworkView {
    /// This node's peer id.
    pub peer_id: String,
    /// Where peers reach this node.
    pub listen: Vec<String>,
    /// Connected peers.
    pub peers: Vec<PeerView>,
    /// Syncing or following.
    pub mode: SyncMode,
    /// The best head a peer reported, when it is above ours.
    pub target: Option<u64>,
}

/// What the NetworkActor needs.
#[derive(Debug)]
pub struct SyncDeps {
    /// The network.
    pub network: NetworkHandle,
    /// Its events.
    pub events: mpsc::Receiver<NetworkEvent>,
    /// The chain actor.
    pub chain: Handle<ChainMessage>,
    /// What the chain emits.
    pub chain_events: mpsc::Receiver<ChainEvent>,
    /// The database (read only here).
    pub storage: Arc<Storage>,
    /// Where the chain stands.
    pub heads: watch::Receiver<ChainHeads>,
    /// The network id peers must share (status answers from other networks are refused).
    pub network_id: String,
    /// The Aura slot length (gossip arrival times are measured from the slot start).
    pub slot_duration: Duration,
    /// Where the connected-peer count goes (reported to governance).
    pub peer_count: watch::Sender<u32>,
}

/// Starts the NetworkActor's tasks; returns them and the view the RPC reads.
pub fn spawn(deps: SyncDeps) -> (Vec<JoinHandle<()>>, watch::Receiver<NetworkView>) {
    describe_metrics();
    let SyncDeps {
        network,
        mut events,
        chain,
        chain_events,
        storage,
        heads,
        network_id,
        slot_duration,
        peer_count,
    } = deps;
    let view = NetworkView {
        peer_id: network.local_peer_id().to_string(),
        listen: network.enode().into_iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    };
    let (view_tx, view_rx) = watch::channel(view);
    let (gossip_tx, gossip_rx) = mpsc::channel(1_024);
    let (wake_tx, wake_rx) = mpsc::channel(16);
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(gossip::run(gossip::Gossip {
        network: network.clone(),
        chain: chain.clone(),
        storage: Arc::clone(&storage),
        slot_duration,
        wake_sync: wake_tx.clone(),
        messages: gossip_rx,
        chain_events,
    })));
    tasks.push(tokio::spawn(sync::run(sync::Sync {
        network: network.clone(),
        chain,
        heads: heads.clone(),
        network_id: network_id.clone(),
        view: view_tx,
        wake: wake_rx,
        peer_count,
    })));
    // The dispatcher: requests are answered on their own tasks (database reads), gossip goes to the
    // gossip task in order, connections wake the sync task.
    tasks.push(tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                NetworkEvent::Gossip { topic, id, from, data } => {
                    if gossip_tx.try_send((topic, id.clone(), from, data)).is_err() {
                        metrics::counter!("alys_sync_gossip_dropped_total").increment(1);
                        network.report(id, from, alys_network::Verdict::Ignore);
                    }
                }
                NetworkEvent::Request { peer, request, reply } => {
                    let storage = Arc::clone(&storage);
                    let heads = *heads.borrow();
                    let network_id = network_id.clone();
                    tokio::spawn(async move {
                        let response = tokio::task::spawn_blocking(move || {
                            serve::answer(&storage, &heads, &network_id, request)
                        })
                        .await
                        .unwrap_or_else(|_| alys_network::Response::Error("internal error".into()));
                        let _ = reply.send(response);
                        tracing::trace!(target: "alys::sync", %peer, "answered request");
                    });
                }
                NetworkEvent::PeerConnected(_) | NetworkEvent::PeerDisconnected(_) => {
                    let _ = wake_tx.try_send(());
                }
            }
        }
    }));
    (tasks, view_rx)
}

/// Describes this crate's metrics (once, at start).
pub fn describe_metrics() {
    metrics::describe_counter!(
        "alys_sync_gossip_dropped_total",
        "Gossip messages dropped because the gossip task was too far behind"
    );
    metrics::describe_counter!(
        "alys_sync_blocks_imported_total",
        "Blocks imported from peers by range sync (not by gossip)"
    );
    metrics::describe_counter!(
        "alys_sync_gossip_verdicts_total",
        "Gossip messages judged, by topic and verdict (accept forwards, reject penalizes the sender)"
    );
    metrics::describe_histogram!(
        "alys_sync_gossip_arrival_seconds",
        "Time from a block's slot start to its arrival here by gossip, by topic (blocks, proposals)"
    );
    metrics::describe_histogram!(
        "alys_sync_gossip_handle_seconds",
        "Time the chain took to judge a gossip message, by topic"
    );
    metrics::describe_gauge!(
        "alys_sync_syncing",
        "1 while the node fetches blocks by range from a peer ahead of it"
    );
    metrics::describe_gauge!("alys_sync_target_height", "The best head height a peer reported");
    metrics::describe_counter!("alys_sync_range_requests_total", "Block range requests sent, by outcome");
}
