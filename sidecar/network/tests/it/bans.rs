//! Bans: a peer whose gossip keeps being rejected, or that the application penalizes, is
//! disconnected and its reconnections are refused.

use std::time::Duration;

use alys_network::{Topic, Verdict};

use crate::{config, connected, eventually, next_gossip, node, wait_subscribed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_gossip_gets_the_sender_banned() {
    let dir = tempfile::tempdir().unwrap();
    let a = node(config(&dir, "a")).await;
    let mut cb = config(&dir, "b");
    cb.bootnodes = vec![a.handle.enode().unwrap()];
    let mut b = node(cb).await;
    let (ida, idb) = (a.handle.local_peer_id(), b.handle.local_peer_id());
    wait_subscribed(&a.handle, &[idb]).await;

    // B rejects everything A sends, until A is gone.
    let mut rejected = 0;
    for i in 0..8u8 {
        if !b.handle.banned_peers().await.is_empty() {
            break;
        }
        a.handle.publish(Topic::Evidence, vec![i; 32]).unwrap();
        if let Some((_, id, from, _)) = next_gossip(&mut b.events, Duration::from_secs(2)).await {
            assert_eq!(from, ida);
            b.handle.report(id, from, Verdict::Reject);
            rejected += 1;
            if rejected == 1 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let info = b.handle.peers().await;
                let score = info.iter().find(|p| p.peer_id == ida).unwrap().score;
                assert!(score < 0.0, "one rejection already costs A: {score}");
            }
        }
    }
    assert!(rejected >= 2, "B saw {rejected} messages");
    assert!(
        eventually(Duration::from_secs(3), || async { b.handle.banned_peers().await == vec![ida] }).await
    );
    assert!(eventually(Duration::from_secs(3), || async { !connected(&b.handle, ida).await }).await);
    assert!(eventually(Duration::from_secs(3), || async { !connected(&a.handle, idb).await }).await);

    // A keeps trying (its bootnode re-dials, plus an explicit dial): B never lets it back in.
    a.handle.dial(b.handle.enode().unwrap());
    for _ in 0..30 {
        assert!(!connected(&b.handle, ida).await, "banned peer reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn penalized_peer_gets_banned() {
    let dir = tempfile::tempdir().unwrap();
    let a = node(config(&dir, "a")).await;
    let mut cb = config(&dir, "b");
    cb.bootnodes = vec![a.handle.enode().unwrap()];
    let b = node(cb).await;
    let ida = a.handle.local_peer_id();
    assert!(eventually(Duration::from_secs(10), || connected(&b.handle, ida)).await);

    for _ in 0..5 {
        b.handle.penalize(ida, "bad_block");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let score = b.handle.peers().await.into_iter().find(|p| p.peer_id == ida).expect("still connected").score;
    assert!(score <= -45.0, "five penalties: {score}");
    b.handle.penalize(ida, "bad_block");
    assert!(eventually(Duration::from_secs(3), || async { !connected(&b.handle, ida).await }).await);
    assert_eq!(b.handle.banned_peers().await, vec![ida]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!connected(&b.handle, ida).await, "banned peer reconnected");
}
