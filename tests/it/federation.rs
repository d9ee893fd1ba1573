//! A federation of several authorities over the libp2p network, as processes on loopback.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federation_smoke() {
    crate::federation_support::smoke().await;
}
