//! Gossip: nothing is forwarded before the application's Accept, a Reject stops a message, peer
//! exchange joins nodes that only know a bootnode, and oversized gossip is dropped.

use std::time::Duration;

use alys_network::{NetworkError, Topic, Verdict};

use crate::{config, connected, eventually, next_gossip, node, wait_subscribed};

/// Chain A – B – C (peer exchange off, so C only hears A through B): B's verdict decides whether
/// C sees A's message, and nothing reaches C before B accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_waits_for_accept_and_reject_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut ca = config(&dir, "a");
    ca.peer_exchange = false;
    let a = node(ca).await;
    let mut cb = config(&dir, "b");
    cb.peer_exchange = false;
    cb.bootnodes = vec![a.handle.enode().unwrap()];
    let mut b = node(cb).await;
    let mut cc = config(&dir, "c");
    cc.peer_exchange = false;
    cc.bootnodes = vec![b.handle.enode().unwrap()];
    let mut c = node(cc).await;
    let (ida, idb, idc) = (a.handle.local_peer_id(), b.handle.local_peer_id(), c.handle.local_peer_id());
    wait_subscribed(&b.handle, &[ida, idc]).await;
    wait_subscribed(&a.handle, &[idb]).await;
    assert!(!connected(&a.handle, idc).await, "A and C must not be connected directly");

    // Rejected at B: never reaches C.
    a.handle.publish(Topic::Blocks, b"invalid block".to_vec()).unwrap();
    let (topic, id, from, data) =
        next_gossip(&mut b.events, Duration::from_secs(5)).await.expect("B gets m1");
    assert_eq!((topic, from, &data[..]), (Topic::Blocks, ida, &b"invalid block"[..]));
    assert!(
        next_gossip(&mut c.events, Duration::from_millis(700)).await.is_none(),
        "forwarded before a verdict"
    );
    b.handle.report(id, from, Verdict::Reject);
    assert!(
        next_gossip(&mut c.events, Duration::from_millis(1500)).await.is_none(),
        "rejected message forwarded"
    );

    // Accepted at B: reaches C, from B, only after the verdict.
    a.handle.publish(Topic::Proposals, b"valid proposal".to_vec()).unwrap();
    let (topic, id, from, _) = next_gossip(&mut b.events, Duration::from_secs(5)).await.expect("B gets m2");
    assert_eq!(topic, Topic::Proposals);
    assert!(
        next_gossip(&mut c.events, Duration::from_millis(700)).await.is_none(),
        "forwarded before a verdict"
    );
    b.handle.report(id, from, Verdict::Accept);
    let (topic, _, from, data) = next_gossip(&mut c.events, Duration::from_secs(5)).await.expect("C gets m2");
    assert_eq!((topic, from, &data[..]), (Topic::Proposals, idb, &b"valid proposal"[..]));

    // The same payload again is a duplicate (content-addressed ids): B does not see it twice.
    a.handle.publish(Topic::Proposals, b"valid proposal".to_vec()).unwrap();
    assert!(next_gossip(&mut b.events, Duration::from_millis(700)).await.is_none(), "replay delivered");

    // The rejection cost A score at B.
    let score = b.handle.peers().await.into_iter().find(|p| p.peer_id == ida).unwrap().score;
    assert!(score < 0.0, "A's score at B is {score}");
}

/// B and C know only A; peer exchange connects them, and gossip from A reaches both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_exchange_connects_bootnode_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let a = node(config(&dir, "a")).await;
    let mut cb = config(&dir, "b");
    cb.bootnodes = vec![a.handle.enode().unwrap()];
    let mut b = node(cb).await;
    let mut cc = config(&dir, "c");
    cc.bootnodes = vec![a.handle.enode().unwrap()];
    let mut c = node(cc).await;
    let (idb, idc) = (b.handle.local_peer_id(), c.handle.local_peer_id());

    assert!(eventually(Duration::from_secs(10), || connected(&b.handle, idc)).await, "B and C never met");
    // Identify runs just after the connection: wait until B has heard both peers' client versions.
    let identified = || async {
        let info = b.handle.peers().await;
        info.len() == 2 && info.iter().all(|p| p.client.as_deref().is_some_and(|c| c.starts_with("alys/")))
    };
    assert!(eventually(Duration::from_secs(10), identified).await, "{:?}", b.handle.peers().await);

    wait_subscribed(&a.handle, &[idb, idc]).await;
    a.handle.publish(Topic::Approvals, b"approval".to_vec()).unwrap();
    for events in [&mut b.events, &mut c.events] {
        let (topic, id, from, data) =
            next_gossip(events, Duration::from_secs(5)).await.expect("gossip arrives");
        assert_eq!((topic, &data[..]), (Topic::Approvals, &b"approval"[..]));
        let _ = (id, from);
    }
}

/// A payload over the receiver's `max_gossip_bytes` is never delivered; the sender's own limit is
/// a typed error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_gossip_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut ca = config(&dir, "a");
    ca.max_gossip_bytes = 1024 * 1024;
    let a = node(ca).await;
    let mut cb = config(&dir, "b");
    cb.max_gossip_bytes = 1024;
    cb.bootnodes = vec![a.handle.enode().unwrap()];
    let mut b = node(cb).await;
    wait_subscribed(&a.handle, &[b.handle.local_peer_id()]).await;

    a.handle.publish(Topic::Blocks, vec![7; 2048]).unwrap();
    a.handle.publish(Topic::Blocks, vec![8; 64 * 1024]).unwrap();
    assert!(next_gossip(&mut b.events, Duration::from_secs(2)).await.is_none(), "oversized gossip delivered");

    assert!(matches!(
        b.handle.publish(Topic::Blocks, vec![0; 1025]),
        Err(NetworkError::TooLarge { len: 1025, max: 1024 })
    ));
}
