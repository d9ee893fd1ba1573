//! The whole network as one process: production, crash safety, operator controls.

use std::time::Duration;

use serde_json::json;

use crate::support::{DevnetProcess, rpc, wait_for_height};

/// Reads the canonical chain 1..=head over RPC and checks it has no gap, no duplicate and intact links.
async fn assert_contiguous(rpc_url: &str) -> u64 {
    let status = rpc(rpc_url, "alys_syncStatus", json!([])).await.unwrap();
    let head = status["head"]["height"].as_u64().unwrap();
    let mut parent: Option<String> = None;
    let mut slots = Vec::new();
    for height in 1..=head {
        let block = rpc(rpc_url, "getblockbyheight", json!([height])).await.unwrap();
        assert_eq!(block["height"].as_u64(), Some(height), "block at {height}: {block}");
        if let Some(parent) = &parent {
            assert_eq!(block["parentHash"].as_str(), Some(parent.as_str()), "link at {height}");
        }
        slots.push(block["slot"].as_u64().unwrap());
        parent = Some(block["hash"].as_str().unwrap().to_owned());
    }
    assert!(slots.windows(2).all(|w| w[0] < w[1]), "slots strictly increase: {slots:?}");
    head
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_production_loses_nothing_and_duplicates_nothing() {
    let dir = tempdir();
    let node = DevnetProcess::start(&dir);
    wait_for_height(&node.rpc, 3, Duration::from_secs(30)).await;
    let before = assert_contiguous(&node.rpc).await;
    node.kill9();

    let node = DevnetProcess::start(&dir);
    let status = rpc(&node.rpc, "alys_syncStatus", json!([])).await.unwrap();
    assert!(status["head"]["height"].as_u64().unwrap() >= before, "the stored head survived: {status}");
    wait_for_height(&node.rpc, before + 3, Duration::from_secs(30)).await;
    let after = assert_contiguous(&node.rpc).await;
    assert!(after >= before + 3);
    // The execution chain agrees with the consensus chain.
    let el_head = rpc(&node.http, "eth_blockNumber", json!([])).await.unwrap();
    let el_head = u64::from_str_radix(el_head.as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    assert!(el_head >= after, "execution head {el_head} behind consensus head {after}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_can_pause_and_resume_production_with_the_token() {
    let dir = tempdir();
    let node = DevnetProcess::start(&dir);
    wait_for_height(&node.rpc, 1, Duration::from_secs(30)).await;

    // A transaction sent with cast to the whole network lands in a block the sidecar produced.
    let key = alys_chainspec::dev::DEV_PRIVATE_KEYS[4].to_string();
    let receipt = crate::support::send(
        &node.http,
        &key,
        "0x000000000000000000000000000000000000bEEF",
        &["--value", "3ether"],
    )
    .await;
    let landed = crate::support::quantity(&receipt["blockNumber"]);
    let block = rpc(&node.rpc, "getblockbyheight", json!([landed])).await.unwrap();
    assert_eq!(block["executionBlockHash"], receipt["blockHash"], "the consensus block carries it");

    let refused = rpc(&node.rpc, "alys_pauseProduction", json!(["wrong-token"])).await.unwrap_err();
    assert_eq!(refused["code"], -32001, "{refused}");
    let malformed = rpc(&node.rpc, "alys_pauseProduction", json!([42])).await.unwrap_err();
    assert_eq!(malformed["code"], -32602, "{malformed}");

    let token = std::fs::read_to_string(crate::support::root().join("etc/keys/devnet-admin.token")).unwrap();
    assert_eq!(rpc(&node.rpc, "alys_pauseProduction", json!([token.trim()])).await.unwrap(), true);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let paused = rpc(&node.rpc, "alys_syncStatus", json!([])).await.unwrap();
    assert_eq!(paused["paused"], true);
    let height = paused["head"]["height"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let still = rpc(&node.rpc, "alys_syncStatus", json!([])).await.unwrap();
    assert_eq!(still["head"]["height"].as_u64().unwrap(), height, "no block while paused");

    assert_eq!(rpc(&node.rpc, "alys_resumeProduction", json!([token.trim()])).await.unwrap(), true);
    wait_for_height(&node.rpc, height + 2, Duration::from_secs(30)).await;

    // The devnet governance service announced its federation: the deposit address is a P2WSH.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let address = loop {
        match rpc(&node.rpc, "getdepositaddress", json!([])).await {
            Ok(address) => break address,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "no deposit address: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(address.as_str().unwrap().starts_with("bcrt1q"), "{address}");
    let governance = rpc(&node.rpc, "alys_governanceStatus", json!([])).await.unwrap();
    assert_eq!(governance["connected"], true, "{governance}");
    assert_eq!(governance["federations"][0]["threshold"], 2);
    assert_eq!(governance["federations"][0]["address"], address);

    // The Alys methods answer in their shapes; bad input is a typed error.
    let head = rpc(&node.rpc, "getheadblock", json!([])).await.unwrap();
    let by_hash = rpc(&node.rpc, "getblockbyhash", json!([head["hash"]])).await.unwrap();
    assert_eq!(by_hash["hash"], head["hash"]);
    assert_eq!(
        rpc(&node.rpc, "getblockbyheight", json!([1_000_000])).await.unwrap(),
        serde_json::Value::Null
    );
    assert_eq!(rpc(&node.rpc, "getblockbyhash", json!(["0x1234"])).await.unwrap_err()["code"], -32602);
    assert_eq!(rpc(&node.rpc, "getblockbyheight", json!(["one"])).await.unwrap_err()["code"], -32602);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "alys-devnet-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peg_out_reaches_the_burn_feed() {
    use alys_exex::{BurnFeedClient, FeedEventKind, FileCursorStore};

    let dir = tempdir();
    let node = DevnetProcess::start(&dir);
    wait_for_height(&node.rpc, 1, Duration::from_secs(30)).await;
    let key = alys_chainspec::dev::DEV_PRIVATE_KEYS[5].to_string();
    let receipt = crate::support::send(
        &node.http,
        &key,
        "0xbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbB",
        &["requestPegOut(bytes)", "0x62637274317132", "--value", "0.05ether"],
    )
    .await;

    std::fs::create_dir_all(&dir).unwrap();
    let mut client =
        BurnFeedClient::new(node.burn_feed.clone(), FileCursorStore::new(dir.join("cursor"))).unwrap();
    let event =
        tokio::time::timeout(Duration::from_secs(20), client.next()).await.expect("a feed event").unwrap();
    assert_eq!(event.kind, FeedEventKind::Burn);
    assert_eq!(event.burn.bitcoin_address.as_ref(), b"bcrt1q2");
    assert_eq!(event.burn.sender, alys_chainspec::dev::DEV_ACCOUNTS[5]);
    assert_eq!(
        event.burn.value,
        alloy_primitives::U256::from(5u64)
            * alloy_primitives::U256::from(10u64).pow(alloy_primitives::U256::from(16u64))
    );
    assert_eq!(format!("{:#x}", event.burn.tx_hash), receipt["transactionHash"].as_str().unwrap());

    // The node follows the feed: the burn shows over RPC, and becomes final once the miner's proof
    // finalizes its block.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let pegouts = rpc(&node.rpc, "alys_pendingPegouts", json!([])).await.unwrap();
        if let Some(done) = pegouts["final"].as_array().and_then(|f| f.first()) {
            assert_eq!(done["bitcoinAddress"], "bcrt1q2");
            assert_eq!(done["valueSats"], 5_000_000);
            assert_eq!(done["txHash"], receipt["transactionHash"]);
            assert!(pegouts["pending"].as_array().unwrap().is_empty());
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "peg-out never became final: {pegouts}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geth_path_and_exex_path_give_identical_burns() {
    use alys_exex::{BurnFeedClient, FeedEventKind, FileCursorStore};
    use alys_sidecar::pegout::{GethPoller, PegoutLedger};

    let dir = tempdir();
    let node = DevnetProcess::start(&dir);
    wait_for_height(&node.rpc, 1, Duration::from_secs(30)).await;
    let root = crate::support::root();
    let artifact: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("contracts/artifacts/Bridge.json")).unwrap())
            .unwrap();
    let key = alys_chainspec::dev::DEV_PRIVATE_KEYS[7].to_string();
    // A copy of the bridge at another address: its burns must count on neither path.
    let copy = crate::support::cast(&[
        "send",
        "--rpc-url",
        &node.http,
        "--private-key",
        &key,
        "--create",
        artifact["bytecode"].as_str().unwrap(),
        "--json",
    ])
    .await
    .unwrap();
    let copy: serde_json::Value = serde_json::from_str(&copy).unwrap();
    let copy = copy["contractAddress"].as_str().unwrap().to_owned();
    let mut last_block = 0;
    for (target, btc) in [
        ("0xbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbB", "0x6263727431"),
        (copy.as_str(), "0x6263727432"),
        ("0xbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbB", "0x6263727433"),
    ] {
        let receipt = crate::support::send(
            &node.http,
            &key,
            target,
            &["requestPegOut(bytes)", btc, "--value", "0.01ether"],
        )
        .await;
        last_block = crate::support::quantity(&receipt["blockNumber"]);
    }

    // Wait until the miner has finalized past the last burn.
    let poller = GethPoller::new(&node.http, 2).unwrap(); // 2-block chunks: the range is split
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let finalized = loop {
        if let Some(f) = poller.finalized().await.unwrap()
            && f >= last_block
        {
            break f;
        }
        assert!(tokio::time::Instant::now() < deadline, "not finalized past {last_block}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let geth = poller.burns(1, finalized).await.unwrap();
    assert_eq!(geth.len(), 2, "the copy's burn is ignored: {geth:?}");

    std::fs::create_dir_all(&dir).unwrap();
    let mut client =
        BurnFeedClient::new(node.burn_feed.clone(), FileCursorStore::new(dir.join("cursor"))).unwrap();
    let mut exex = Vec::new();
    while exex.len() < geth.len() {
        let event = tokio::time::timeout(Duration::from_secs(20), client.next()).await.unwrap().unwrap();
        assert_eq!(event.kind, FeedEventKind::Burn);
        exex.push(event.burn);
    }
    assert_eq!(geth, exex, "both paths give the same burns, keys and fields");

    // The ledger releases them once, across a reopen.
    let ledger = PegoutLedger::open(dir.join("pegouts.redb")).unwrap();
    assert_eq!(ledger.ingest_finalized(&geth, finalized, true).unwrap().len(), 2);
    drop(ledger);
    let ledger = PegoutLedger::open(dir.join("pegouts.redb")).unwrap();
    assert!(ledger.ingest_finalized(&exex, finalized, true).unwrap().is_empty(), "never released twice");
    let _ = std::fs::remove_dir_all(&dir);
}
