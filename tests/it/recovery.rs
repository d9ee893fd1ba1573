//! The node keeps the chain when its execution client or its own handler fails.

use std::time::Duration;

use alys_rpc::ChainApiClient;
use serde_json::json;

use crate::support::{
    ElProcess, NodeProcess, free_addr, hash, metric, quantity, raw_call, tempdir, until, wait_for_height,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_execution_client_is_refilled_by_the_sidecar() {
    let dir = tempdir();
    let el = ElProcess::start();
    let authrpc = el.authrpc_port();
    let node = NodeProcess::builder(dir.path(), &el).start();
    let alys = node.client();
    let height = wait_for_height(&alys, 3, Duration::from_secs(30)).await.head.height;

    // The execution client dies: the node says so (health, status, metric) within a few seconds...
    drop(el);
    until("the node reports its execution client offline", Duration::from_secs(20), async || {
        alys.health().await.is_err_and(|e| e.to_string().contains("execution client is offline"))
    })
    .await;
    assert!(!alys.sync_status().await.unwrap().engine_online);
    // ...and it comes back empty (no data directory), where the node expects it.
    let el = ElProcess::start_at(authrpc);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let number = quantity(&raw_call(&el.http, "eth_blockNumber", json!([])).await.unwrap());
        if number > height {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "engine stuck at {number}, node head was {height}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The refilled chain is the node's: same block at the old height.
    let block = alys.block_by_height(height).await.unwrap().expect("the node's block");
    let el_block =
        raw_call(&el.http, "eth_getBlockByNumber", json!([format!("{height:#x}"), false])).await.unwrap();
    assert_eq!(hash(&el_block["hash"]), block.execution_block_hash);
    assert_eq!(alys.health().await.unwrap(), "ok", "online again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_chain_handler_is_restarted_and_blocks_continue() {
    const RESTARTS: &str = "alys_actor_restarts_total{actor=\"chain\"}";
    let dir = tempdir();
    let el = ElProcess::start();
    let metrics = free_addr();
    // The chain actor's handler panics once, on its 21st message; the supervisor rebuilds the actor.
    let node = NodeProcess::builder(dir.path(), &el)
        .with_metrics(metrics)
        .with_failpoints("chain::handle=20*off->1*panic->off")
        .start();
    let alys = node.client();

    let before = wait_for_height(&alys, 2, Duration::from_secs(30)).await.head.height;
    // Every status request is a chain message too, so polling brings the failpoint's turn sooner.
    until("the chain actor is restarted", Duration::from_secs(30), async || {
        let _ = alys.sync_status().await;
        metric(metrics, RESTARTS).await >= 1.0
    })
    .await;
    let at_restart = wait_for_height(&alys, before, Duration::from_secs(10)).await.head.height;
    let after = wait_for_height(&alys, at_restart + 2, Duration::from_secs(30)).await.head.height;
    assert!(after >= before + 2 && after >= at_restart + 2, "production continued after the restart");
    assert_eq!(metric(metrics, RESTARTS).await, 1.0, "the failpoint panics once");
}
