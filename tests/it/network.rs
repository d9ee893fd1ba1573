//! The whole network as one process: production, crash safety, operator controls, peg-outs.

use std::time::Duration;

use alloy_primitives::{B256, U256};
use alys_burns::{BearerToken, BurnFeedClient, ClientError, FeedEventKind};
use alys_chainspec::dev::{DEV_ACCOUNTS, DEV_PRIVATE_KEYS};
use alys_rpc::{
    AdminApiClient, BridgeApiClient, ChainApiClient, ErrorCode, GovernanceApiClient,
    jsonrpsee::http_client::HttpClient,
    types::{PegoutQuery, PegoutSet},
};
use serde_json::json;

use crate::support::{
    DevnetProcess, ElProcess, NodeProcess, Producer, cast, error_code, feed_client, hash, quantity, raw_call,
    root, send, tempdir, until, wait_for_height,
};

const BRIDGE: &str = "0xbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbB";

/// Reads the canonical chain 1..=head over RPC and checks it has no gap, no duplicate and intact links.
async fn assert_contiguous(alys: &HttpClient) -> u64 {
    let head = alys.sync_status().await.unwrap().head.height;
    let mut parent: Option<B256> = None;
    let mut slots = Vec::new();
    for height in 1..=head {
        let block =
            alys.block_by_height(height).await.unwrap().unwrap_or_else(|| panic!("no block {height}"));
        assert_eq!(block.height, height, "block at {height}: {block:?}");
        if let Some(parent) = parent {
            assert_eq!(block.parent_hash, parent, "link at {height}");
        }
        slots.push(block.slot);
        parent = Some(block.hash);
    }
    assert!(slots.windows(2).all(|w| w[0] < w[1]), "slots strictly increase: {slots:?}");
    head
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_production_loses_nothing_and_duplicates_nothing() {
    let dir = tempdir();
    let node = DevnetProcess::start(dir.path());
    wait_for_height(&node.client(), 3, Duration::from_secs(30)).await;
    let before = assert_contiguous(&node.client()).await;
    node.kill9();

    let node = DevnetProcess::start(dir.path());
    let alys = node.client();
    let status = alys.sync_status().await.unwrap();
    assert!(status.head.height >= before, "the stored head survived: {status:?}");
    wait_for_height(&alys, before + 3, Duration::from_secs(30)).await;
    let after = assert_contiguous(&alys).await;
    assert!(after >= before + 3);
    // The execution chain agrees with the consensus chain.
    let el_head = quantity(&raw_call(&node.http, "eth_blockNumber", json!([])).await.unwrap());
    assert!(el_head >= after, "execution head {el_head} behind consensus head {after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_can_pause_and_resume_production_with_the_token() {
    let dir = tempdir();
    let node = DevnetProcess::start(dir.path());
    let alys = node.client();
    wait_for_height(&alys, 1, Duration::from_secs(30)).await;

    // A transaction sent with cast to the whole network lands in a block the node produced.
    let key = DEV_PRIVATE_KEYS[4].to_string();
    let receipt =
        send(&node.http, &key, "0x000000000000000000000000000000000000bEEF", &["--value", "3ether"]).await;
    let landed = quantity(&receipt["blockNumber"]);
    let block = alys.block_by_height(landed).await.unwrap().expect("the block with the transaction");
    assert_eq!(block.execution_block_hash, hash(&receipt["blockHash"]), "the consensus block carries it");

    let refused = alys.pause_production("wrong-token".into()).await;
    assert_eq!(error_code(refused), Some(ErrorCode::Unauthorized));
    let malformed = raw_call(&node.rpc, "alys_pauseProduction", json!([42])).await;
    assert_eq!(error_code(malformed), Some(ErrorCode::InvalidParams));

    let token = std::fs::read_to_string(root().join("etc/keys/devnet-admin.token")).unwrap();
    let token = token.trim().to_owned();
    assert!(alys.pause_production(token.clone()).await.unwrap());
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let paused = alys.sync_status().await.unwrap();
    assert!(paused.paused);
    let height = paused.head.height;
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let still = alys.sync_status().await.unwrap();
    assert_eq!(still.head.height, height, "no block while paused");

    assert!(alys.resume_production(token).await.unwrap());
    wait_for_height(&alys, height + 2, Duration::from_secs(30)).await;

    // The devnet governance service announced its federation: the deposit address is a P2WSH.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let address = loop {
        match alys.deposit_address().await {
            Ok(address) => break address,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "no deposit address: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(address.starts_with("bcrt1q"), "{address}");
    let governance = alys.governance_status().await.unwrap();
    assert!(governance.connected, "{governance:?}");
    let federation = governance.federations.first().unwrap_or_else(|| panic!("{governance:?}"));
    assert_eq!(federation.threshold, 2);
    assert_eq!(federation.address, address);

    // The Alys methods answer in their shapes; bad input is a typed error.
    let head = alys.head_block().await.unwrap().expect("a head block");
    let by_hash = alys.block_by_hash(head.hash).await.unwrap().expect("the head by its hash");
    assert_eq!(by_hash.hash, head.hash);
    assert_eq!(alys.block_by_height(1_000_000).await.unwrap(), None);
    let short_hash = raw_call(&node.rpc, "getblockbyhash", json!(["0x1234"])).await;
    assert_eq!(error_code(short_hash), Some(ErrorCode::InvalidParams));
    let word_height = raw_call(&node.rpc, "getblockbyheight", json!(["one"])).await;
    assert_eq!(error_code(word_height), Some(ErrorCode::InvalidParams));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peg_out_reaches_the_burn_feed() {
    let dir = tempdir();
    let node = DevnetProcess::start(dir.path());
    let alys = node.client();
    wait_for_height(&alys, 1, Duration::from_secs(30)).await;
    let key = DEV_PRIVATE_KEYS[5].to_string();
    let receipt =
        send(&node.http, &key, BRIDGE, &["requestPegOut(bytes)", "0x62637274317132", "--value", "0.05ether"])
            .await;
    let tx_hash = hash(&receipt["transactionHash"]);

    // The test consumer keeps its cursor in memory: from the start of the feed.
    let mut client = feed_client(&node.burn_feed, 0);
    let event =
        tokio::time::timeout(Duration::from_secs(20), client.next()).await.expect("a feed event").unwrap();
    assert_eq!(event.kind, FeedEventKind::Burn);
    assert_eq!(event.burn.bitcoin_address.as_ref(), b"bcrt1q2");
    assert_eq!(event.burn.sender, DEV_ACCOUNTS[5]);
    assert_eq!(event.burn.value, U256::from(5u64) * U256::from(10u64).pow(U256::from(16u64)));
    assert_eq!(event.burn.tx_hash, tx_hash);

    // The node follows the feed: the burn shows over RPC, and becomes final once the miner's proof
    // finalizes its block.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let pegouts = alys.pending_pegouts().await.unwrap();
        if let Some(done) = pegouts.released.first() {
            assert_eq!(done.bitcoin_address, "bcrt1q2");
            assert_eq!(done.value_sats, Some(5_000_000));
            assert_eq!(done.tx_hash, tx_hash);
            assert!(pegouts.pending.is_empty());
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "peg-out never became final: {pegouts:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geth_path_and_exex_path_give_identical_burns() {
    use alys_bridge::GethPoller;

    let dir = tempdir();
    let node = DevnetProcess::start(dir.path());
    wait_for_height(&node.client(), 1, Duration::from_secs(30)).await;
    let artifact: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("contracts/artifacts/Bridge.json")).unwrap(),
    )
    .unwrap();
    let key = DEV_PRIVATE_KEYS[7].to_string();
    // A copy of the bridge at another address: its burns must count on neither path.
    let copy = cast(&[
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
    for (target, btc) in [(BRIDGE, "0x6263727431"), (copy.as_str(), "0x6263727432"), (BRIDGE, "0x6263727433")]
    {
        let receipt =
            send(&node.http, &key, target, &["requestPegOut(bytes)", btc, "--value", "0.01ether"]).await;
        last_block = quantity(&receipt["blockNumber"]);
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

    // The test consumer keeps its cursor in memory: from the start of the feed.
    let mut client = feed_client(&node.burn_feed, 0);
    let mut exex = Vec::new();
    while exex.len() < geth.len() {
        let event = tokio::time::timeout(Duration::from_secs(20), client.next()).await.unwrap().unwrap();
        assert_eq!(event.kind, FeedEventKind::Burn);
        exex.push(event.burn);
    }
    assert_eq!(geth, exex, "both paths give the same burns, keys and fields");

    // The node's ledger released the same burns, once: final and canonical by its chain.
    let alys = node.client();
    let query = PegoutQuery { set: PegoutSet::Released, ..PegoutQuery::default() };
    until("the burns released", Duration::from_secs(20), async || {
        alys.pegouts(Some(query)).await.unwrap().pegouts.len() >= geth.len()
    })
    .await;
    let released = alys.pegouts(Some(query)).await.unwrap().pegouts;
    let keys: Vec<(B256, u64)> = released.iter().map(|p| (p.block_hash, p.log_index)).collect();
    let expected: Vec<(B256, u64)> = geth.iter().map(|b| (b.block_hash, b.log_index)).collect();
    assert_eq!(keys, expected, "released once each, in chain order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_burn_feed_serves_only_the_devnet_token() {
    let dir = tempdir();
    let node = DevnetProcess::start(dir.path());
    let key = DEV_PRIVATE_KEYS[8].to_string();
    send(&node.http, &key, BRIDGE, &["requestPegOut(bytes)", "0x62637274317134", "--value", "0.01ether"])
        .await;

    let wrong = BearerToken::new("not-the-devnet-token").unwrap();
    for client in [
        BurnFeedClient::new(node.burn_feed.clone(), 0).unwrap(),
        BurnFeedClient::new(node.burn_feed.clone(), 0).unwrap().with_bearer_token(&wrong),
    ] {
        let mut client = client;
        let error = tokio::time::timeout(Duration::from_secs(10), client.next()).await.unwrap().unwrap_err();
        assert!(matches!(error, ClientError::Unauthenticated(_)), "{error}");
    }
    let mut client = feed_client(&node.burn_feed, 0);
    let event = tokio::time::timeout(Duration::from_secs(20), client.next()).await.unwrap().unwrap();
    assert_eq!(event.burn.sender, DEV_ACCOUNTS[8]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_burn_feed_off_loopback_is_refused_at_launch() {
    let dir = tempdir();
    let el = ElProcess::start();
    let stderr = NodeProcess::builder(dir.path(), &el).with_pegout_feed("http://10.0.0.5:50551").refused();
    assert!(
        stderr.contains("[pegout]") && stderr.contains("loopback") && stderr.contains("https://"),
        "{stderr}"
    );
    // The same node on the loopback feed of its execution client starts.
    let dir = tempdir();
    let node = NodeProcess::builder(dir.path(), &el).with_pegout_feed(&el.burn_feed).start();
    wait_for_height(&node.client(), 1, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_genesis_other_than_the_execution_clients_or_the_data_directorys_is_refused() {
    let ours = alys_chainspec::ChainSpec::devnet().unwrap().genesis_hash();
    let shanghai = root().join("etc/genesis/shanghai.json");
    let other_el = ElProcess::start_with(0, &["--chain", shanghai.to_str().unwrap()], None);
    assert_ne!(other_el.genesis_hash, ours);

    // The execution client started from another genesis: refused at start, naming both hashes and
    // the file (before, the node said ready and failed every slot with -38005).
    let dir = tempdir();
    let stderr = NodeProcess::builder(dir.path(), &other_el).refused();
    assert!(stderr.contains("has another genesis"), "{stderr}");
    assert!(stderr.contains(&other_el.genesis_hash.to_string()), "names the client's block 0: {stderr}");
    assert!(stderr.contains(&ours.to_string()) && stderr.contains("devnet.json"), "names ours: {stderr}");

    // A data directory whose chain started from the other genesis, pointed at a devnet client.
    let node = NodeProcess::builder(dir.path(), &other_el).with_genesis(&shanghai).start();
    wait_for_height(&node.client(), 1, Duration::from_secs(30)).await;
    drop(node);
    let el = ElProcess::start();
    let stderr = NodeProcess::builder(dir.path(), &el).refused();
    assert!(stderr.contains("holds a chain started from genesis"), "{stderr}");
    assert!(
        stderr.contains(&other_el.genesis_hash.to_string()) && stderr.contains(&ours.to_string()),
        "{stderr}"
    );
    // With its own genesis it starts again.
    let node = NodeProcess::builder(dir.path(), &other_el).with_genesis(&shanghai).start();
    wait_for_height(&node.client(), 2, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_has_help_text_and_latencies_are_histograms() {
    let dir = tempdir();
    let node = DevnetProcess::start(dir.path());
    let alys = node.client();
    // Blocks, proofs and a burn-feed round: most series exist by then.
    until("a proof finalized a block", Duration::from_secs(60), async || {
        alys.sync_status().await.is_ok_and(|s| s.finalized.is_some_and(|f| f.height >= 2))
    })
    .await;
    let page = node.metrics_text().await;
    let mut undescribed = Vec::new();
    let mut families = std::collections::BTreeSet::new();
    for line in page.lines().filter(|l| l.starts_with("alys_")) {
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|base| page.contains(&format!("# TYPE {base} histogram")))
            .unwrap_or(name);
        if families.insert(family.to_owned()) && !page.contains(&format!("# HELP {family} ")) {
            undescribed.push(family.to_owned());
        }
    }
    assert!(families.len() > 20, "the node exports its metrics: {families:?}");
    assert!(undescribed.is_empty(), "metrics without help text: {undescribed:?}");
    // Latencies are histograms (Grafana aggregates buckets across nodes), not summaries.
    for histogram in ["alys_engine_request_seconds", "alys_actor_handle_seconds"] {
        assert!(page.contains(&format!("# TYPE {histogram} histogram")), "{histogram} is a histogram");
        assert!(page.contains(&format!("{histogram}_bucket{{")), "{histogram} has buckets");
    }
    assert!(!page.contains("summary"), "no summaries left");
    // The Engine API latency is exported once under the node's name; the embedded engine's own
    // server-side series has its own name.
    assert!(!page.contains("engine_api_request_duration_seconds"), "no unprefixed duplicate");
    assert!(page.contains("alys_auxpow_difficulty "), "difficulty beside the compact bits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peg_outs_are_listed_page_by_page() {
    let dir = tempdir();
    let node = DevnetProcess::start(dir.path());
    let alys = node.client();
    wait_for_height(&alys, 1, Duration::from_secs(30)).await;
    let key = DEV_PRIVATE_KEYS[9].to_string();
    let mut hashes = Vec::new();
    for btc in ["0x6263727431716131", "0x6263727431716132", "0x6263727431716133"] {
        let receipt =
            send(&node.http, &key, BRIDGE, &["requestPegOut(bytes)", btc, "--value", "0.01ether"]).await;
        hashes.push(hash(&receipt["transactionHash"]));
    }
    let released = PegoutQuery { set: PegoutSet::Released, ..PegoutQuery::default() };
    until("three burns final", Duration::from_secs(60), async || {
        alys.pegouts(Some(released)).await.unwrap().pegouts.len() == 3
    })
    .await;

    // One at a time: three pages, each naming where the next starts, the last naming none.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = alys.pegouts(Some(PegoutQuery { after, limit: Some(1), ..released })).await.unwrap();
        assert_eq!(page.set, PegoutSet::Released);
        assert!(page.pegouts.len() <= 1);
        seen.extend(page.pegouts.iter().map(|p| p.tx_hash));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, hashes, "each once, oldest first");
    let summary = alys.pending_pegouts().await.unwrap();
    assert_eq!(summary.released.len(), 3);
    assert_eq!((summary.next_pending, summary.next_final), (None, None));
    assert!(alys.pegouts(None).await.unwrap().pegouts.is_empty(), "nothing pending");

    // A page over the maximum, or of nothing, is refused with a typed error.
    for limit in [0, PegoutQuery::MAX_LIMIT + 1] {
        let refused = alys.pegouts(Some(PegoutQuery { limit: Some(limit), ..released })).await;
        assert_eq!(error_code(refused), Some(ErrorCode::InvalidParams), "limit {limit}");
    }
    let unknown = raw_call(&node.rpc, "alys_pegouts", json!([{ "set": "everything" }])).await;
    assert_eq!(error_code(unknown), Some(ErrorCode::InvalidParams));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_devnet_exex_catches_up_after_missed_notifications() {
    // A notification channel of one, and an ExEx loop slowed to 1.5 s per notification: blocks
    // produced meanwhile are missed (`Lagged`), and the ExEx must read them from the engine.
    let el = ElProcess::start_with(
        0,
        &["--engine.notification-capacity", "1"],
        Some("devnet::exex::notification=return(1500)"),
    );
    let mut producer = Producer::new(el.engine_client(), el.genesis_hash);
    let key = DEV_PRIVATE_KEYS[7].to_string();
    let mut hashes = Vec::new();
    for (nonce, btc) in
        ["0x6263727431716331", "0x6263727431716332", "0x6263727431716333", "0x6263727431716334"]
            .into_iter()
            .enumerate()
    {
        let tx = cast(&[
            "send",
            "--async",
            "--rpc-url",
            &el.http,
            "--private-key",
            &key,
            "--nonce",
            &nonce.to_string(),
            "--gas-limit",
            "200000",
            BRIDGE,
            "requestPegOut(bytes)",
            btc,
            "--value",
            "0.01ether",
        ])
        .await
        .unwrap();
        hashes.push(tx.trim().parse::<B256>().unwrap());
        producer.produce().await;
    }

    // Every burn reaches the feed, once, in order.
    let mut client = feed_client(&el.burn_feed, 0);
    let mut seen = Vec::new();
    while seen.len() < hashes.len() {
        let event = tokio::time::timeout(Duration::from_secs(30), client.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {} burns reached the feed", seen.len(), hashes.len()))
            .unwrap();
        assert_eq!(event.kind, FeedEventKind::Burn);
        seen.push(event.burn.tx_hash);
    }
    assert_eq!(seen, hashes);
}
