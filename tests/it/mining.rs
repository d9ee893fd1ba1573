//! Merged mining end to end: the reference miner finalizes batches, miners are paid, the difficulty
//! retarget keeps the finality lag bounded, production stops without proofs and resumes when one
//! arrives, and the mining RPC refuses bad input.

use std::time::Duration;

use alloy_primitives::{B256, Bytes, U256, hex};
use alys_chainspec::dev::{DEV_ACCOUNT_BALANCE, DEV_ACCOUNTS, DEV_PRIVATE_KEYS};
use alys_miner::{Miner, Round};
use alys_rpc::{ChainApiClient, ErrorCode, MiningApiClient};
use serde_json::json;

use crate::support::{
    DevnetProcess, ElProcess, NodeProcess, cast, error_code, quantity, raw_call, tempdir, wait_for_height,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_devnet_miner_finalizes_blocks_and_is_paid() {
    let dir = tempdir();
    let node = DevnetProcess::start(dir.path());
    let alys = node.client();
    wait_for_height(&alys, 1, Duration::from_secs(30)).await;
    // A transaction burns base fee; its batch's fees are re-minted to the miner (dev account 1) and the
    // federation when a proof finalizes it.
    cast(&[
        "send",
        "--rpc-url",
        &node.http,
        "--private-key",
        &DEV_PRIVATE_KEYS[6].to_string(),
        "0x000000000000000000000000000000000000bEEF",
        "--value",
        "1ether",
    ])
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let finalized =
            raw_call(&node.http, "eth_getBlockByNumber", json!(["finalized", false])).await.unwrap();
        let balance =
            raw_call(&node.http, "eth_getBalance", json!([DEV_ACCOUNTS[1], "latest"])).await.unwrap();
        let balance: U256 = serde_json::from_value(balance).unwrap();
        if !finalized.is_null() && quantity(&finalized["number"]) >= 2 && balance > DEV_ACCOUNT_BALANCE {
            let status = alys.sync_status().await.unwrap();
            assert!(status.finalized.is_some_and(|f| f.height >= 2), "{status:?}");
            assert_eq!(status.safe, status.finalized);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no finalization with reward: finalized {finalized}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A block carries the proof in its consensus header.
    let head = alys.head_block().await.unwrap().expect("a head block");
    let mut height = head.height;
    let mut carried = false;
    while height > 0 && !carried {
        let block = alys.block_by_height(height).await.unwrap().expect("a canonical block");
        carried = block.auxpow.is_some();
        height -= 1;
    }
    assert!(carried, "some block carries an auxpow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_devnet_retargets_and_keeps_the_finality_lag_bounded() {
    // The devnet: 1 s slots here, a proof wanted every 10 s, a 100 s half-life, the embedded miner
    // starting at the pow limit, which a CPU meets at once. Before ASERT, each early proof made the
    // target 4x harder until the miner's try budget ran dry and the lag grew without end.
    let dir = tempdir();
    let node = DevnetProcess::start(dir.path());
    let alys = node.client();
    wait_for_height(&alys, 1, Duration::from_secs(30)).await;
    let first = alys.sync_status().await.unwrap();
    assert_eq!(first.pow_bits, 0x207f_ffff, "the first proof meets the pow limit");
    let start = tokio::time::Instant::now();
    let mut lags = Vec::new();
    let mut last = first.clone();
    while start.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        last = alys.sync_status().await.unwrap();
        lags.push(last.head.height - last.finalized.map_or(0, |f| f.height));
    }
    let max = lags.iter().max().copied().unwrap_or_default();
    let mean = lags.iter().sum::<u64>() as f64 / lags.len() as f64;
    // Far ahead of the schedule at first, proofs finalize nearly every block: the lag stays within one
    // spacing's worth of blocks, with room for a loaded machine.
    assert!(max <= 15, "finality lag up to {max} blocks (mean {mean:.1}): {lags:?}");
    let finalized = last.finalized.map_or(0, |f| f.height);
    assert!(finalized >= first.head.height + 30, "finalized only reached {finalized}: {last:?}");
    // Proofs ahead of the schedule made the target harder than the limit, and the node exports it.
    let target = |bits: u32| alloy_primitives::U256::from_le_bytes(alys_auxpow::pow::target_le_bytes(bits));
    assert!(target(last.pow_bits) < target(0x207f_ffff), "powBits {:08x} never moved", last.pow_bits);
    let difficulty = node.metric("alys_auxpow_difficulty").await;
    let expected = alys_auxpow::retarget::difficulty(last.pow_bits, 0x207f_ffff);
    assert!(difficulty > 1.0, "alys_auxpow_difficulty {difficulty}");
    // The series and the status may straddle a proof: equal, or one proof's step apart.
    assert!((difficulty / expected).log2().abs() < 0.2, "metric {difficulty}, powBits give {expected}");
    let bits_metric = node.metric("alys_auxpow_bits").await;
    assert!(bits_metric > 0.0 && bits_metric < f64::from(0x207f_ffffu32), "alys_auxpow_bits {bits_metric}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_stops_without_proofs_and_resumes_with_one() {
    let dir = tempdir();
    let el = ElProcess::start();
    let node = NodeProcess::builder(dir.path(), &el).with_max_blocks_without_pow(3).start();
    let alys = node.client();

    // Three blocks, then production stops and says why.
    wait_for_height(&alys, 3, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let stopped = alys.sync_status().await.unwrap();
    assert_eq!(stopped.head.height, 3, "{stopped:?}");
    assert!(
        stopped.production_stopped.as_deref().is_some_and(|why| why.contains("without AuxPow")),
        "{stopped:?}"
    );

    // Bad mining input is answered, not fatal.
    let not_an_address = raw_call(&node.rpc, "createauxblock", json!(["not-an-address"])).await;
    assert_eq!(error_code(not_an_address), Some(ErrorCode::InvalidParams));
    let template = alys.create_aux_block(DEV_ACCOUNTS[2]).await.unwrap();
    assert_eq!(template.height, 3);
    assert_eq!(template.chain_id, 0x2121);
    assert_eq!(template.bits, 0x207f_ffff);
    // The target is the compact bits expanded, 0x7fffff × 256^29, little-endian.
    let mut target = [0u8; 32];
    target[29..].copy_from_slice(&[0xff, 0xff, 0x7f]);
    assert_eq!(template.target, B256::from(target));
    // What a pool reads: Namecoin's bare hex, `bits` as 8 hex digits.
    let wire = raw_call(&node.rpc, "createauxblock", json!([DEV_ACCOUNTS[2]])).await.unwrap();
    assert_eq!(wire["hash"], hex::encode(template.hash), "{wire}");
    assert_eq!(wire["bits"], "207fffff");
    assert_eq!(wire["_target"].as_str().unwrap().len(), 64);
    let again = alys.create_aux_block(DEV_ACCOUNTS[2]).await.unwrap();
    assert_eq!(again.hash, template.hash, "templates are cached per payout address and head");

    // One client cannot make the node do unbounded work in one request.
    let batch: Vec<serde_json::Value> = (0..40)
        .map(|id| json!({ "jsonrpc": "2.0", "id": id, "method": "createauxblock", "params": [DEV_ACCOUNTS[3]] }))
        .collect();
    let (status, body) = http_post(&node.rpc, &serde_json::to_vec(&batch).unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("-32010"), "a batch of 40 calls is refused whole: {body}");
    let huge = json!({ "jsonrpc": "2.0", "id": 1, "method": "submitauxblock",
        "params": [hex::encode(template.hash), "00".repeat(300_000)] });
    let (status, _) = http_post(&node.rpc, &serde_json::to_vec(&huge).unwrap()).await;
    assert_eq!(status, 413, "a 600 kB request is refused before it is parsed");
    let bare_hash = hex::encode(template.hash);
    let bad_hex = raw_call(&node.rpc, "submitauxblock", json!([bare_hash, "zz"])).await;
    assert_eq!(error_code(bad_hex), Some(ErrorCode::InvalidParams));
    let not_a_proof = alys.submit_aux_block(template.hash, Bytes::from_static(&[0])).await;
    assert_eq!(error_code(not_a_proof), Some(ErrorCode::InvalidParams));
    let proof = alys_auxpow::pow::mine(B256::repeat_byte(7), 0x2121, 0x207f_ffff, 100_000).unwrap();
    assert!(!alys.submit_aux_block(B256::repeat_byte(7), proof.clone().into()).await.unwrap());
    // A proof for another hash is refused with false (sent as a pool sends it: the work's hash bare).
    let other = raw_call(&node.rpc, "submitauxblock", json!([bare_hash, hex::encode(&proof)])).await;
    assert_eq!(other.unwrap(), false);

    // A real proof: the next block carries it, finalizes height 3, and production resumes.
    let mut miner = Miner::new(alys_miner::client(&node.rpc).unwrap(), DEV_ACCOUNTS[2]);
    assert!(
        matches!(miner.round().await.unwrap(), Round::Submitted { height: 3, accepted: true, .. }),
        "a proof for the batch ending at 3"
    );
    let resumed = wait_for_height(&alys, 5, Duration::from_secs(30)).await;
    assert_eq!(resumed.finalized.map(|f| f.height), Some(3), "{resumed:?}");
    assert!(resumed.production_stopped.is_none());
    let carrier = alys.block_by_height(4).await.unwrap().expect("block 4");
    assert!(carrier.auxpow.is_some(), "block 4 carries the proof");
}

/// POSTs `body` as JSON to `url` over a plain TCP connection; returns the HTTP status and body.
async fn http_post(url: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer and close before reading a refused body.
    let _ = stream.write_all(body).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_owned());
    (status, body)
}
