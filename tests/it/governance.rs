//! The governance stream end to end: the devnet governance service as a process beside a node, its
//! admin RPC driving proposals and rotation through a whole `alys-devnet`.

use std::time::Duration;

use alys_rpc::{BridgeApiClient, ChainApiClient, ErrorCode, GovernanceApiClient, types::ProposalAction};
use serde_json::json;

use crate::support::{
    DevnetProcess, ElProcess, GovernanceProcess, NodeProcess, call_error, error_code, hash, quantity,
    raw_call, send, tempdir, until, wait_for_height,
};

/// Proposals the node refused for a height at or below its head.
const PAST_PROPOSALS: &str = r#"alys_governance_rejected_total{type="proposal",reason="past_height"}"#;
/// Federation updates the node refused for a height at or below its head.
const PAST_ROTATIONS: &str =
    r#"alys_governance_rejected_total{type="federation_update",reason="past_height"}"#;
/// Slots this node did not fill because governance paused production.
const PAUSED_SLOTS: &str = r#"alys_chain_slots_skipped_total{reason="governance_pause"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_reconnects_within_a_second_after_a_ten_second_outage() {
    let service = GovernanceProcess::start(0);
    let dir = tempdir();
    let el = ElProcess::start();
    // The node's default reconnect backoff (under 800 ms, jitter included) is what is measured.
    let node =
        NodeProcess::builder(dir.path(), &el).with_governance(&service.url, &service.governance_key).start();
    let alys = node.client();
    let connected = async || alys.governance_status().await.is_ok_and(|status| status.connected);
    until("connected", Duration::from_secs(10), connected).await;

    let port = service.port();
    drop(service); // SIGKILL: every connection dies with the process
    until("the loss is noticed", Duration::from_secs(5), async || {
        alys.governance_status().await.is_ok_and(|status| !status.connected)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let down = alys.governance_status().await.unwrap();
    assert!(!down.connected);

    let service = GovernanceProcess::start(port);
    let back = tokio::time::Instant::now();
    until("reconnected", Duration::from_secs(5), connected).await;
    let took = back.elapsed();
    eprintln!("reconnected {took:?} after the service came back");
    assert!(took < Duration::from_secs(1), "reconnect took {took:?}");
    assert!(alys.governance_status().await.unwrap().reconnects > down.reconnects);
    let status = raw_call(&service.admin, "governance_status", json!([])).await.unwrap();
    assert_eq!(status["sessions"], 1, "one live session after the reconnect: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_pause_production_change_parameters_and_rotation_moves_the_deposit_address() {
    let dir = tempdir();
    let node = DevnetProcess::start(dir.path());
    let alys = node.client();
    wait_for_height(&alys, 2, Duration::from_secs(30)).await;
    until("governance connected", Duration::from_secs(20), async || {
        alys.governance_status().await.is_ok_and(|status| status.connected)
    })
    .await;
    let first_address = alys.deposit_address().await.unwrap();

    // An emergency pause of block production from height h: the chain stops at h - 1.
    let head = alys.sync_status().await.unwrap().head.height;
    let h = head + 3;
    let id = raw_call(
        &node.governance_admin,
        "governance_propose",
        json!([{ "action": "pause", "scope": "production", "effectiveHeight": h, "reason": "drill" }]),
    )
    .await
    .unwrap();
    let ahead = alys.runtime_state(Some(h)).await.unwrap();
    until("the node holds the proposal", Duration::from_secs(10), async || {
        alys.runtime_state(Some(h)).await.unwrap().state.production_paused
    })
    .await;
    assert_eq!(ahead.height, h);
    wait_for_height(&alys, h - 1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = alys.sync_status().await.unwrap();
    assert_eq!(status.head.height, h - 1, "no block at or after the pause: {status:?}");
    assert!(status.governance.production_paused, "{status:?}");
    let proposals = alys.proposals().await.unwrap();
    let first = proposals.proposals.first().unwrap_or_else(|| panic!("no proposal: {proposals:?}"));
    assert_eq!(first.id, id.as_str().unwrap(), "{proposals:?}");
    assert!(first.in_force);
    assert!(
        matches!(&first.action, ProposalAction::Emergency { scope, .. } if scope == "blockProduction"),
        "{first:?}"
    );

    // A parameter change at h, and one the node does not allow (refused by the service before issue).
    raw_call(
        &node.governance_admin,
        "governance_propose",
        json!([{ "action": "parameter", "name": "pegin_confirmations", "value": "3", "effectiveHeight": h }]),
    )
    .await
    .unwrap();
    let refused = raw_call(
        &node.governance_admin,
        "governance_propose",
        json!([{ "action": "parameter", "name": "chain_id", "value": "1", "effectiveHeight": h }]),
    )
    .await;
    let refused = call_error(refused);
    assert!(refused.message().contains("cannot be changed"), "{refused:?}");
    until("the parameter is in force", Duration::from_secs(10), async || {
        alys.runtime_state(None).await.unwrap().state.parameters.pegin_confirmations == 3
    })
    .await;
    let before = alys.runtime_state(Some(h - 1)).await.unwrap();
    assert_eq!(before.state.parameters.pegin_confirmations, 1, "the devnet's own value before its height");
    assert!(!before.state.production_paused);
    let bad = raw_call(&node.rpc, "alys_runtimeState", json!(["soon"])).await;
    assert_eq!(error_code(bad), Some(ErrorCode::InvalidParams));

    // Rotation effective at h: the next block's federation is the new one; the old address is kept.
    let rotated = raw_call(
        &node.governance_admin,
        "governance_rotate",
        json!([{ "members": 4, "threshold": 3, "effectiveHeight": h }]),
    )
    .await
    .unwrap();
    let rotated = rotated["address"].as_str().unwrap_or_else(|| panic!("no address: {rotated}")).to_owned();
    until("the node follows the rotation", Duration::from_secs(10), async || {
        alys.deposit_address().await.is_ok_and(|address| address == rotated)
    })
    .await;
    let addresses = alys.deposit_addresses().await.unwrap();
    let current = addresses.current.as_ref().unwrap_or_else(|| panic!("no federation: {addresses:?}"));
    assert_eq!(current.address, rotated, "{addresses:?}");
    assert_eq!(current.threshold, 3);
    assert_eq!(addresses.previous.map(|previous| previous.address), Some(first_address));

    // Resume at the same height: production goes on.
    raw_call(
        &node.governance_admin,
        "governance_propose",
        json!([{ "action": "resume", "scope": "production", "effectiveHeight": h }]),
    )
    .await
    .unwrap();
    wait_for_height(&alys, h + 1, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_peg_outs_wait_and_are_released_once_after_the_resume() {
    let dir = tempdir();
    let node = DevnetProcess::start(dir.path());
    let alys = node.client();
    wait_for_height(&alys, 1, Duration::from_secs(30)).await;
    // Above the head (a height whose block exists is refused), then wait until its block is there.
    let pause = alys.sync_status().await.unwrap().head.height + 2;
    raw_call(
        &node.governance_admin,
        "governance_propose",
        json!([{ "action": "pause", "scope": "pegouts", "effectiveHeight": pause, "reason": "drill" }]),
    )
    .await
    .unwrap();
    until("the pause is in force", Duration::from_secs(10), async || {
        let status = alys.sync_status().await.unwrap();
        status.head.height >= pause && status.governance.pegouts_paused
    })
    .await;

    let key = alys_chainspec::dev::DEV_PRIVATE_KEYS[6].to_string();
    let receipt = send(
        &node.http,
        &key,
        "0xbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbB",
        &["requestPegOut(bytes)", "0x62637274317133", "--value", "0.02ether"],
    )
    .await;
    let block = quantity(&receipt["blockNumber"]);
    let tx_hash = hash(&receipt["transactionHash"]);
    // The miner finalizes the burn's block; the burn stays pending while peg-outs are paused.
    until("the burn's block is final", Duration::from_secs(60), async || {
        alys.sync_status().await.unwrap().finalized.is_some_and(|finalized| finalized.height >= block)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = alys.pending_pegouts().await.unwrap();
    assert!(held.released.is_empty(), "released during the pause: {held:?}");
    assert_eq!(held.pending.first().map(|burn| burn.tx_hash), Some(tx_hash), "{held:?}");

    let head = alys.sync_status().await.unwrap().head.height;
    raw_call(
        &node.governance_admin,
        "governance_propose",
        json!([{ "action": "resume", "scope": "pegouts", "effectiveHeight": head + 1 }]),
    )
    .await
    .unwrap();
    until("released after the resume", Duration::from_secs(20), async || {
        let pegouts = alys.pending_pegouts().await.unwrap();
        pegouts.released.len() == 1 && pegouts.pending.is_empty()
    })
    .await;
    let done = alys.pending_pegouts().await.unwrap();
    assert_eq!(done.released[0].tx_hash, tx_hash);
    assert_eq!(done.released[0].value_sats, Some(2_000_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_for_passed_heights_are_refused_and_a_pause_ahead_stops_production_until_resumed() {
    let dir = tempdir();
    let node = DevnetProcess::start(dir.path());
    let alys = node.client();
    wait_for_height(&alys, 4, Duration::from_secs(30)).await;
    until("governance connected", Duration::from_secs(20), async || {
        alys.governance_status().await.is_ok_and(|status| status.connected)
    })
    .await;
    let address = alys.deposit_address().await.unwrap();

    // The reported cases: a pause at height 2 and a rotation at height 3, sent after both blocks exist.
    let head = alys.sync_status().await.unwrap().head.height;
    raw_call(
        &node.governance_admin,
        "governance_propose",
        json!([{ "action": "pause", "scope": "production", "effectiveHeight": 2, "reason": "late" }]),
    )
    .await
    .unwrap();
    raw_call(
        &node.governance_admin,
        "governance_rotate",
        json!([{ "members": 4, "threshold": 3, "effectiveHeight": 3 }]),
    )
    .await
    .unwrap();
    until("both are refused", Duration::from_secs(10), async || {
        node.metric(PAST_PROPOSALS).await >= 1.0 && node.metric(PAST_ROTATIONS).await >= 1.0
    })
    .await;
    assert!(node.stderr_contains("proposal refused"), "logged at WARN");
    assert!(node.stderr_contains("federation update refused"), "logged at WARN");
    let proposals = alys.proposals().await.unwrap();
    assert!(proposals.proposals.is_empty(), "not held, not shown in force: {proposals:?}");
    assert!(!alys.runtime_state(Some(2)).await.unwrap().state.production_paused, "not from its old height");
    let status = alys.governance_status().await.unwrap();
    assert_eq!(status.federations.len(), 1, "the rotation is not held: {status:?}");
    assert_eq!(alys.deposit_address().await.unwrap(), address);
    // Production goes on.
    let status = wait_for_height(&alys, head + 3, Duration::from_secs(30)).await;
    assert!(!status.governance.production_paused, "{status:?}");
    assert_eq!(node.metric(PAUSED_SLOTS).await, 0.0);

    // A pause three blocks above the head: the chain stops just below it.
    let refused = node.metric(PAST_PROPOSALS).await;
    let pause = alys.sync_status().await.unwrap().head.height + 3;
    let pause_id = raw_call(
        &node.governance_admin,
        "governance_propose",
        json!([{ "action": "pause", "scope": "production", "effectiveHeight": pause, "reason": "drill" }]),
    )
    .await
    .unwrap();
    wait_for_height(&alys, pause - 1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = alys.sync_status().await.unwrap();
    assert_eq!(status.head.height, pause - 1, "no block at the pause's height: {status:?}");
    assert!(status.governance.production_paused, "{status:?}");
    assert!(node.metric(PAUSED_SLOTS).await >= 1.0, "the skipped slots are counted");

    // A resume at the height the chain waits at (its head + 1): production goes on from there.
    let resume_id = raw_call(
        &node.governance_admin,
        "governance_propose",
        json!([{ "action": "resume", "scope": "production", "effectiveHeight": status.head.height + 1 }]),
    )
    .await
    .unwrap();
    let status = wait_for_height(&alys, pause + 2, Duration::from_secs(30)).await;
    assert!(!status.governance.production_paused, "{status:?}");
    let held: Vec<_> =
        alys.proposals().await.unwrap().proposals.into_iter().map(|p| (p.id, p.in_force)).collect();
    // The resume lifted the pause: only the resume decides production now.
    let expected =
        [(pause_id.as_str().unwrap().to_owned(), false), (resume_id.as_str().unwrap().to_owned(), true)];
    assert_eq!(held, expected);
    assert_eq!(node.metric(PAST_PROPOSALS).await, refused, "the pause and the resume ahead were not refused");
}
