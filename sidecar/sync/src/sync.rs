//! Catching up from peers: status polls, then canonical blocks by range from the best peer, imported
//! in order through the chain's full import path.

use std::{collections::HashMap, time::Duration};

use alys_actor::Handle;
use alys_chain::{ChainMessage, ImportError};
use alys_network::{Direction, MAX_BLOCKS_PER_REQUEST, NetworkHandle, PeerStatus, Request, Response};
use alys_primitives::{ChainHeads, SignedBlock};
use libp2p::PeerId;
use tokio::sync::{mpsc, watch};

use crate::{NetworkView, PeerView, SyncMode};

/// How often peers are asked where they stand when nothing wakes the task sooner.
const POLL: Duration = Duration::from_secs(2);
/// How long a status answer may take.
const STATUS_TIMEOUT: Duration = Duration::from_secs(3);

pub(crate) struct Sync {
    pub(crate) network: NetworkHandle,
    pub(crate) chain: Handle<ChainMessage>,
    pub(crate) heads: watch::Receiver<ChainHeads>,
    pub(crate) network_id: String,
    pub(crate) view: watch::Sender<NetworkView>,
    pub(crate) wake: mpsc::Receiver<()>,
    pub(crate) peer_count: watch::Sender<u32>,
}

pub(crate) async fn run(mut sync: Sync) {
    let mut statuses: HashMap<PeerId, PeerStatus> = HashMap::new();
    let mut interval = tokio::time::interval(POLL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            woke = sync.wake.recv() => if woke.is_none() { return },
        }
        while sync.wake.try_recv().is_ok() {}
        sync.poll(&mut statuses).await;
        let head = sync.heads.borrow().head;
        let best =
            statuses.iter().max_by_key(|(_, status)| status.head.height).map(|(p, s)| (*p, s.head.height));
        if let Some((peer, target)) = best
            && target > head.height
        {
            sync.set_mode(SyncMode::Syncing, Some(target));
            metrics::gauge!("alys_sync_syncing").set(1.0);
            metrics::gauge!("alys_sync_target_height").set(target as f64);
            sync.catch_up(peer, target).await;
            metrics::gauge!("alys_sync_syncing").set(0.0);
        }
        sync.set_mode(SyncMode::Following, None);
    }
}

impl Sync {
    fn set_mode(&self, mode: SyncMode, target: Option<u64>) {
        self.view.send_modify(|view| {
            view.mode = mode;
            view.target = target;
        });
    }

    /// Asks every connected peer where it stands; refreshes the view.
    async fn poll(&self, statuses: &mut HashMap<PeerId, PeerStatus>) {
        let peers = self.network.peers().await;
        let asks =
            peers.iter().map(|peer| {
                let network = self.network.clone();
                let id = peer.peer_id;
                async move {
                    (id, tokio::time::timeout(STATUS_TIMEOUT, network.request(id, Request::Status)).await)
                }
            });
        let answers = futures::future::join_all(asks).await;
        statuses.retain(|id, _| peers.iter().any(|p| p.peer_id == *id));
        for (peer, answer) in answers {
            match answer {
                Ok(Ok(Response::Status(status))) if status.network_id == self.network_id => {
                    statuses.insert(peer, status);
                }
                Ok(Ok(Response::Status(status))) => {
                    tracing::info!(target: "alys::sync", %peer, network = %status.network_id, "peer is on another network");
                    self.network.penalize(peer, "wrong_network");
                    statuses.remove(&peer);
                }
                Ok(Ok(_)) => {
                    self.network.penalize(peer, "bad_status");
                    statuses.remove(&peer);
                }
                Ok(Err(error)) => {
                    tracing::debug!(target: "alys::sync", %peer, %error, "status request failed");
                }
                Err(_) => tracing::debug!(target: "alys::sync", %peer, "status request timed out"),
            }
        }
        let _ = self.peer_count.send(u32::try_from(peers.len()).unwrap_or(u32::MAX));
        let views = peers
            .into_iter()
            .map(|p| {
                let status = statuses.get(&p.peer_id);
                PeerView {
                    peer_id: p.peer_id.to_string(),
                    address: p.address.map(|a| a.to_string()),
                    direction: match p.direction {
                        Direction::Inbound => "inbound",
                        Direction::Outbound => "outbound",
                    },
                    score: p.score,
                    client: p.client,
                    connected_secs: p.connected_secs,
                    head: status.map(|s| s.head),
                    finalized: status.and_then(|s| s.finalized),
                }
            })
            .collect();
        self.view.send_modify(|view| view.peers = views);
    }

    /// Fetches and imports blocks from `peer` until our head reaches `target` or the peer stops
    /// helping.
    async fn catch_up(&self, peer: PeerId, target: u64) {
        let mut start = self.heads.borrow().head.height + 1;
        tracing::info!(target: "alys::sync", %peer, from = start, to = target, "syncing from peer");
        let mut stepped_back = 0u32;
        // The next range is fetched while this one is imported.
        let fetch = |start: u64| {
            let network = self.network.clone();
            let count = (target + 1 - start).min(MAX_BLOCKS_PER_REQUEST);
            tokio::spawn(async move { network.request(peer, Request::BlocksByRange { start, count }).await })
        };
        let mut prefetched: Option<(u64, tokio::task::JoinHandle<_>)> = None;
        while start <= target {
            let response = match prefetched.take() {
                Some((at, handle)) if at == start => {
                    handle.await.unwrap_or(Err(alys_network::RequestError::Closed))
                }
                Some((_, handle)) => {
                    handle.abort();
                    fetch(start).await.unwrap_or(Err(alys_network::RequestError::Closed))
                }
                None => fetch(start).await.unwrap_or(Err(alys_network::RequestError::Closed)),
            };
            let blocks = match response {
                Ok(Response::Blocks(blocks)) if !blocks.is_empty() => blocks,
                Ok(Response::Blocks(_)) => {
                    metrics::counter!("alys_sync_range_requests_total", "outcome" => "empty").increment(1);
                    return;
                }
                Ok(other) => {
                    metrics::counter!("alys_sync_range_requests_total", "outcome" => "bad_response")
                        .increment(1);
                    tracing::debug!(target: "alys::sync", %peer, ?other, "range request answered otherwise");
                    return;
                }
                Err(error) => {
                    metrics::counter!("alys_sync_range_requests_total", "outcome" => "failed").increment(1);
                    tracing::debug!(target: "alys::sync", %peer, %error, "range request failed");
                    return;
                }
            };
            metrics::counter!("alys_sync_range_requests_total", "outcome" => "ok").increment(1);
            let mut decoded = Vec::with_capacity(blocks.len());
            for (offset, bytes) in blocks.iter().enumerate() {
                let Ok(block) = SignedBlock::decode(bytes) else {
                    self.network.penalize(peer, "undecodable_block");
                    return;
                };
                if block.header.height != start + offset as u64 {
                    self.network.penalize(peer, "range_out_of_order");
                    return;
                }
                decoded.push(block);
            }
            let after = start + decoded.len() as u64;
            if after <= target {
                prefetched = Some((after, fetch(after)));
            }
            let Ok(outcome) = self.chain.ask(|reply| ChainMessage::ImportRange(decoded, reply)).await else {
                return;
            };
            metrics::counter!("alys_sync_blocks_imported_total").increment(outcome.imported as u64);
            let mut next = start + outcome.imported as u64;
            match outcome.error {
                None => {}
                Some((_, ImportError::UnknownParent(_))) if outcome.imported == 0 => {
                    // We are on another branch: step back toward the finalized block until the peer's
                    // chain attaches.
                    let floor = self.heads.borrow().finalized.map_or(1, |f| f.height + 1);
                    if start <= floor || stepped_back > 64 {
                        tracing::warn!(target: "alys::sync", %peer, start, "peer's chain does not attach above our finalized block");
                        self.network.penalize(peer, "unattached_chain");
                        return;
                    }
                    stepped_back += 1;
                    next = start.saturating_sub(MAX_BLOCKS_PER_REQUEST).max(floor);
                }
                Some((height, error)) => {
                    tracing::warn!(target: "alys::sync", %peer, height, %error, "block from peer refused");
                    if error.is_invalid_block() {
                        self.network.penalize(peer, "invalid_block");
                    }
                    return;
                }
            }
            start = next;
        }
        tracing::info!(target: "alys::sync", %peer, head = self.heads.borrow().head.height, "caught up");
    }
}
