//! Merged mining end to end: the reference miner finalizes batches, miners are paid, production stops
//! without proofs and resumes when one arrives, and the mining RPC refuses bad input.

use std::{sync::Arc, time::Duration};

use alloy_primitives::{U256, hex};
use alys_chainspec::{
    ChainSpec,
    dev::{DEV_ACCOUNT_BALANCE, DEV_ACCOUNTS, DEV_PRIVATE_KEYS},
};
use alys_devnet::miner::{Round, mine_once};
use alys_devnet_el::{Engine, EngineConfig};
use alys_engine_api::{EngineApiConfig, EngineApiServer};
use alys_sidecar::{
    chain::AuthorityKey,
    config::{
        AuthoritySection, AuxPowSection, ChainSection, EngineSection, MetricsSection, NodeConfig, RpcSection,
        StorageSection,
    },
    node,
};
use serde_json::json;

use crate::support::{DevnetProcess, cast, root, rpc, wait_for_height};

fn hex_u64(v: &serde_json::Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_devnet_miner_finalizes_blocks_and_is_paid() {
    let dir = std::env::temp_dir().join(format!("alys-mining-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let node = DevnetProcess::start(&dir);
    wait_for_height(&node.rpc, 1, Duration::from_secs(30)).await;
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
        let finalized = rpc(&node.http, "eth_getBlockByNumber", json!(["finalized", false])).await.unwrap();
        let balance = rpc(&node.http, "eth_getBalance", json!([DEV_ACCOUNTS[1], "latest"])).await.unwrap();
        let balance = U256::from_str_radix(balance.as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
        if hex_u64(&finalized["number"]) >= 2 && balance > DEV_ACCOUNT_BALANCE {
            let status = rpc(&node.rpc, "alys_syncStatus", json!([])).await.unwrap();
            assert!(status["finalized"]["height"].as_u64().unwrap() >= 2, "{status}");
            assert_eq!(status["safe"], status["finalized"]);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no finalization with reward: finalized {finalized}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A block carries the proof in its consensus header.
    let head = rpc(&node.rpc, "getheadblock", json!([])).await.unwrap();
    let mut height = head["height"].as_u64().unwrap();
    let mut carried = false;
    while height > 0 && !carried {
        let block = rpc(&node.rpc, "getblockbyheight", json!([height])).await.unwrap();
        carried = !block["auxpow"].is_null();
        height -= 1;
    }
    assert!(carried, "some block carries an auxpow");
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_stops_without_proofs_and_resumes_with_one() {
    let dir = std::env::temp_dir().join(format!("alys-liveness-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let spec = Arc::new(ChainSpec::devnet().unwrap());
    let engine = Engine::spawn(EngineConfig::new(Arc::clone(&spec))).unwrap();
    let mut api = EngineApiConfig::from_secret_file(root().join("etc/jwt/jwt.hex")).unwrap();
    api.addr = "127.0.0.1:0".parse().unwrap();
    let api = EngineApiServer::new(engine, api).start().await.unwrap();
    let etc = root().join("etc");
    let key_file = etc.join("keys/devnet-authority.key");
    let config = NodeConfig {
        chain: ChainSection {
            genesis: etc.join("genesis/devnet.json"),
            slot_duration_ms: 1_000,
            future_tolerance_ms: 500,
            authorities: vec![AuthorityKey::from_file(&key_file).unwrap().public().to_string()],
            fee_recipient: Default::default(),
        },
        authority: Some(AuthoritySection { key_file }),
        storage: StorageSection { data_dir: dir.clone() },
        engine: EngineSection { url: api.http_url(), jwt_secret: etc.join("jwt/jwt.hex"), eth_rpc_url: None },
        rpc: RpcSection { listen: "127.0.0.1:0".parse().unwrap(), admin_token_file: None },
        metrics: MetricsSection { listen: None },
        governance: None,
        pegout: None,
        auxpow: AuxPowSection { max_blocks_without_pow: 3, ..Default::default() },
    };
    let node = node::launch(config).await.unwrap();
    let url = format!("http://{}", node.rpc.local_addr());

    // Three blocks, then production stops and says why.
    wait_for_height(&url, 3, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let stopped = rpc(&url, "alys_syncStatus", json!([])).await.unwrap();
    assert_eq!(stopped["head"]["height"], 3, "{stopped}");
    assert!(stopped["productionStopped"].as_str().unwrap().contains("without AuxPow"), "{stopped}");

    // Bad mining input is answered, not fatal.
    assert_eq!(rpc(&url, "createauxblock", json!(["not-an-address"])).await.unwrap_err()["code"], -32602);
    let template = rpc(&url, "createauxblock", json!([DEV_ACCOUNTS[2]])).await.unwrap();
    assert_eq!(template["height"], 3);
    assert_eq!(template["chainid"], 0x2121);
    assert_eq!(template["bits"], "207fffff");
    assert_eq!(template["_target"].as_str().unwrap().len(), 64);
    let again = rpc(&url, "createauxblock", json!([DEV_ACCOUNTS[2]])).await.unwrap();
    assert_eq!(again["hash"], template["hash"], "templates are cached per payout address and head");
    assert_eq!(
        rpc(&url, "submitauxblock", json!([template["hash"], "zz"])).await.unwrap_err()["code"],
        -32602
    );
    assert_eq!(
        rpc(&url, "submitauxblock", json!([template["hash"], "00"])).await.unwrap_err()["code"],
        -32602
    );
    let unknown = hex::encode([7u8; 32]);
    let proof = alys_sidecar::auxpow::pow::mine([7u8; 32].into(), 0x2121, 0x207f_ffff, 100_000).unwrap();
    assert_eq!(rpc(&url, "submitauxblock", json!([unknown, hex::encode(&proof)])).await.unwrap(), false);
    // A proof for another hash is refused with false.
    assert_eq!(
        rpc(&url, "submitauxblock", json!([template["hash"], hex::encode(&proof)])).await.unwrap(),
        false
    );

    // A real proof: the next block carries it, finalizes height 3, and production resumes.
    assert_eq!(
        mine_once(&url, DEV_ACCOUNTS[2], 1_000_000).await.unwrap(),
        Round::Submitted { height: 3, accepted: true }
    );
    let resumed = wait_for_height(&url, 5, Duration::from_secs(30)).await;
    assert_eq!(resumed["finalized"]["height"], 3, "{resumed}");
    assert!(resumed["productionStopped"].is_null());
    let carrier = rpc(&url, "getblockbyheight", json!([4])).await.unwrap();
    assert!(!carrier["auxpow"].is_null(), "block 4 carries the proof");
    node.shutdown().await;
    api.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
