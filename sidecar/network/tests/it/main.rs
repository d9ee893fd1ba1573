#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]
//! The network's integration tests, one binary, real swarms on 127.0.0.1: gossip validation and
//! forwarding ([`gossip`]), the sync protocol ([`sync`]), bans ([`bans`]) and the persistent
//! identity with late bootnodes ([`identity`]).

mod bans;
mod gossip;
mod identity;
mod sync;

use std::{future::Future, time::Duration};

use alloy_primitives::Bytes;
use alys_network::{NetworkConfig, NetworkEvent, NetworkHandle, PeerId, Topic, start};
use libp2p::gossipsub::MessageId;
use tempfile::TempDir;
use tokio::sync::mpsc;

/// A started node and its event receiver.
pub(crate) struct Node {
    pub(crate) handle: NetworkHandle,
    pub(crate) events: mpsc::Receiver<NetworkEvent>,
}

/// A test configuration: loopback, port 0, fast re-dials and peer exchange.
pub(crate) fn config(dir: &TempDir, name: &str) -> NetworkConfig {
    let mut c = NetworkConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.path().join(format!("{name}.key")),
        "a1b2c3d4",
    );
    c.bootnode_redial_max = Duration::from_secs(1);
    c.peer_exchange_interval = Duration::from_secs(1);
    c
}

pub(crate) async fn node(config: NetworkConfig) -> Node {
    let (handle, events) = start(config).await.unwrap();
    Node { handle, events }
}

/// Polls `check` every 100 ms until it holds or `within` passes.
pub(crate) async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn connected(a: &NetworkHandle, b: PeerId) -> bool {
    a.peers().await.iter().any(|p| p.peer_id == b)
}

/// Waits until `a` sees every peer in `others` subscribed to the blocks topic, then one more
/// gossipsub heartbeat so meshes are built.
pub(crate) async fn wait_subscribed(a: &NetworkHandle, others: &[PeerId]) {
    let ok = eventually(Duration::from_secs(10), || async {
        let peers = a.topic_peers(Topic::Blocks).await;
        others.iter().all(|o| peers.contains(o))
    })
    .await;
    assert!(ok, "peers did not subscribe in time");
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

/// The next gossip message within `within`, skipping other events.
pub(crate) async fn next_gossip(
    events: &mut mpsc::Receiver<NetworkEvent>,
    within: Duration,
) -> Option<(Topic, MessageId, PeerId, Bytes)> {
    tokio::time::timeout(within, async {
        loop {
            match events.recv().await? {
                NetworkEvent::Gossip { topic, id, from, data } => return Some((topic, id, from, data)),
                _ => continue,
            }
        }
    })
    .await
    .ok()
    .flatten()
}
