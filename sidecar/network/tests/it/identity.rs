//! The identity survives restarts, and a node started before its bootnode joins once it is up.

use std::time::Duration;

use libp2p::Multiaddr;

use crate::{config, connected, eventually, node};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_persists_and_late_bootnode_is_reached() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let boot: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();

    // B starts first; its bootnode is not up yet.
    let mut cb = config(&dir, "b");
    cb.bootnodes = vec![boot];
    let b = node(cb).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let mut ca = config(&dir, "a");
    ca.listen = format!("127.0.0.1:{port}").parse().unwrap();
    let a = node(ca.clone()).await;
    let first_id = a.handle.local_peer_id();
    assert!(eventually(Duration::from_secs(8), || connected(&b.handle, first_id)).await, "B never reached A");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&ca.key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Restart A on the same key file and port: same peer id, and B finds it again.
    a.handle.shutdown().await;
    drop(a);
    assert!(eventually(Duration::from_secs(5), || async { b.handle.peers().await.is_empty() }).await);
    let a = node(ca).await;
    assert_eq!(a.handle.local_peer_id(), first_id);
    assert!(
        eventually(Duration::from_secs(8), || connected(&b.handle, first_id)).await,
        "B never reconnected"
    );
}
