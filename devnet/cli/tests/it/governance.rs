//! The governance stream end to end: the devnet governance service as a process beside a node, its
//! admin RPC driving proposals and rotation through a whole `alys-devnet`.

use std::{str::FromStr, time::Duration};

use alys_sidecar::governance::stream::{self, StreamConfig};
use serde_json::json;

use crate::support::{DevnetProcess, GovernanceProcess, rpc, wait_for_height};

fn tempdir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("alys-gov-e2e-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn until(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "{what} within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_reconnects_within_a_second_after_a_ten_second_outage() {
    let service = GovernanceProcess::start(0);
    let port: u16 = service.url.rsplit(':').next().unwrap().parse().unwrap();
    let key = bitcoin::secp256k1::PublicKey::from_str(&service.governance_key).unwrap();
    let mut config = StreamConfig::new(service.url.clone(), key);
    config.bearer_token = Some(alys_devnet_governance::DEVNET_TOKEN.into());
    // The node's default backoff (250 ms doubling to 800 ms, with jitter) is what is measured.
    let dir = tempdir("outage");
    let (handle, _task) = stream::spawn(config, &dir.join("governance.redb")).unwrap();
    until("connected", Duration::from_secs(10), async || handle.status().connected).await;

    drop(service); // SIGKILL: every connection dies with the process
    until("the loss is noticed", Duration::from_secs(5), async || !handle.status().connected).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(!handle.status().connected);
    let reconnects_before = handle.status().reconnects;

    let service = GovernanceProcess::start(port);
    let back = tokio::time::Instant::now();
    until("reconnected", Duration::from_secs(5), async || handle.status().connected).await;
    let took = back.elapsed();
    eprintln!("reconnected {took:?} after the service came back");
    assert!(took < Duration::from_secs(1), "reconnect took {took:?}");
    assert!(handle.status().reconnects > reconnects_before);
    let status = rpc(&service.admin, "governance_status", json!([])).await.unwrap();
    assert_eq!(status["sessions"], 1, "one live session after the reconnect: {status}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_pause_production_change_parameters_and_rotation_moves_the_deposit_address() {
    let dir = tempdir("proposals");
    let node = DevnetProcess::start(&dir);
    wait_for_height(&node.rpc, 2, Duration::from_secs(30)).await;
    until("governance connected", Duration::from_secs(20), async || {
        rpc(&node.rpc, "alys_governanceStatus", json!([])).await.is_ok_and(|s| s["connected"] == true)
    })
    .await;
    let first_address = rpc(&node.rpc, "getdepositaddress", json!([])).await.unwrap();

    // An emergency pause of block production from height h: the chain stops at h - 1.
    let head =
        rpc(&node.rpc, "alys_syncStatus", json!([])).await.unwrap()["head"]["height"].as_u64().unwrap();
    let h = head + 3;
    let id = rpc(
        &node.governance_admin,
        "governance_propose",
        json!([{ "action": "pause", "scope": "production", "effectiveHeight": h, "reason": "drill" }]),
    )
    .await
    .unwrap();
    let ahead = rpc(&node.rpc, "alys_runtimeState", json!([h])).await.unwrap();
    until("the node holds the proposal", Duration::from_secs(10), async || {
        rpc(&node.rpc, "alys_runtimeState", json!([h])).await.unwrap()["state"]["productionPaused"] == true
    })
    .await;
    assert_eq!(ahead["height"], h);
    wait_for_height(&node.rpc, h - 1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = rpc(&node.rpc, "alys_syncStatus", json!([])).await.unwrap();
    assert_eq!(status["head"]["height"].as_u64().unwrap(), h - 1, "no block at or after the pause: {status}");
    assert_eq!(status["governance"]["productionPaused"], true, "{status}");
    let proposals = rpc(&node.rpc, "alys_proposals", json!([])).await.unwrap();
    assert_eq!(proposals["proposals"][0]["id"], id, "{proposals}");
    assert_eq!(proposals["proposals"][0]["inForce"], true);
    assert_eq!(proposals["proposals"][0]["action"]["scope"], "blockProduction");

    // A parameter change at h, and one the node does not allow (refused by the service before issue).
    rpc(
        &node.governance_admin,
        "governance_propose",
        json!([{ "action": "parameter", "name": "pegin_confirmations", "value": "3", "effectiveHeight": h }]),
    )
    .await
    .unwrap();
    let refused = rpc(
        &node.governance_admin,
        "governance_propose",
        json!([{ "action": "parameter", "name": "chain_id", "value": "1", "effectiveHeight": h }]),
    )
    .await
    .unwrap_err();
    assert!(refused["message"].as_str().unwrap().contains("cannot be changed"), "{refused}");
    until("the parameter is in force", Duration::from_secs(10), async || {
        rpc(&node.rpc, "alys_runtimeState", json!([])).await.unwrap()["state"]["parameters"]["peginConfirmations"]
            == 3
    })
    .await;
    let before = rpc(&node.rpc, "alys_runtimeState", json!([h - 1])).await.unwrap();
    assert_eq!(before["state"]["parameters"]["peginConfirmations"], 6, "not before its height");
    assert_eq!(before["state"]["productionPaused"], false);
    let bad = rpc(&node.rpc, "alys_runtimeState", json!(["soon"])).await.unwrap_err();
    assert_eq!(bad["code"], -32602);

    // Rotation effective at h: the next block's federation is the new one; the old address is kept.
    let rotated = rpc(
        &node.governance_admin,
        "governance_rotate",
        json!([{ "members": 4, "threshold": 3, "effectiveHeight": h }]),
    )
    .await
    .unwrap();
    until("the node follows the rotation", Duration::from_secs(10), async || {
        rpc(&node.rpc, "getdepositaddress", json!([])).await.is_ok_and(|a| a == rotated["address"])
    })
    .await;
    let addresses = rpc(&node.rpc, "alys_depositAddresses", json!([])).await.unwrap();
    assert_eq!(addresses["current"]["address"], rotated["address"], "{addresses}");
    assert_eq!(addresses["current"]["threshold"], 3);
    assert_eq!(addresses["previous"]["address"], first_address, "{addresses}");

    // Resume at the same height: production goes on.
    rpc(
        &node.governance_admin,
        "governance_propose",
        json!([{ "action": "resume", "scope": "production", "effectiveHeight": h }]),
    )
    .await
    .unwrap();
    wait_for_height(&node.rpc, h + 1, Duration::from_secs(30)).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_peg_outs_wait_and_are_released_once_after_the_resume() {
    let dir = tempdir("pegouts");
    let node = DevnetProcess::start(&dir);
    wait_for_height(&node.rpc, 1, Duration::from_secs(30)).await;
    let head =
        rpc(&node.rpc, "alys_syncStatus", json!([])).await.unwrap()["head"]["height"].as_u64().unwrap();
    rpc(
        &node.governance_admin,
        "governance_propose",
        json!([{ "action": "pause", "scope": "pegouts", "effectiveHeight": head, "reason": "drill" }]),
    )
    .await
    .unwrap();
    until("the pause is in force", Duration::from_secs(10), async || {
        rpc(&node.rpc, "alys_syncStatus", json!([])).await.unwrap()["governance"]["pegoutsPaused"] == true
    })
    .await;

    let key = alys_chainspec::dev::DEV_PRIVATE_KEYS[6].to_string();
    let receipt = crate::support::send(
        &node.http,
        &key,
        "0xbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbB",
        &["requestPegOut(bytes)", "0x62637274317133", "--value", "0.02ether"],
    )
    .await;
    let block = crate::support::quantity(&receipt["blockNumber"]);
    // The miner finalizes the burn's block; the burn stays pending while peg-outs are paused.
    until("the burn's block is final", Duration::from_secs(60), async || {
        rpc(&node.rpc, "alys_syncStatus", json!([])).await.unwrap()["finalized"]["height"]
            .as_u64()
            .unwrap_or(0)
            >= block
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = rpc(&node.rpc, "alys_pendingPegouts", json!([])).await.unwrap();
    assert!(held["final"].as_array().unwrap().is_empty(), "released during the pause: {held}");
    assert_eq!(held["pending"][0]["txHash"], receipt["transactionHash"], "{held}");

    let head =
        rpc(&node.rpc, "alys_syncStatus", json!([])).await.unwrap()["head"]["height"].as_u64().unwrap();
    rpc(
        &node.governance_admin,
        "governance_propose",
        json!([{ "action": "resume", "scope": "pegouts", "effectiveHeight": head + 1 }]),
    )
    .await
    .unwrap();
    until("released after the resume", Duration::from_secs(20), async || {
        let pegouts = rpc(&node.rpc, "alys_pendingPegouts", json!([])).await.unwrap();
        pegouts["final"].as_array().unwrap().len() == 1 && pegouts["pending"].as_array().unwrap().is_empty()
    })
    .await;
    let done = rpc(&node.rpc, "alys_pendingPegouts", json!([])).await.unwrap();
    assert_eq!(done["final"][0]["txHash"], receipt["transactionHash"]);
    assert_eq!(done["final"][0]["valueSats"], 2_000_000);
    let _ = std::fs::remove_dir_all(&dir);
}
