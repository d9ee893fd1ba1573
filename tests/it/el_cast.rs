//! foundry's `cast`, a real client, against the embedded engine: value transfers, a contract deployment,
//! calls, logs, the bridge, and the errors wallets rely on.

use std::time::Duration;

use alys_chainspec::dev::{DEV_ACCOUNTS, DEV_PRIVATE_KEYS};

use crate::support::{ElProcess, Producer, cast, root};

/// The first word of cast's answer (it appends a scientific form to large numbers: "1000000 [1e6]").
fn first(out: Result<String, String>) -> String {
    out.unwrap().split_whitespace().next().unwrap_or_default().to_owned()
}

fn key(i: usize) -> String {
    DEV_PRIVATE_KEYS[i].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cast_sends_deploys_calls_and_reads_logs() {
    let el = ElProcess::start();
    let producer = Producer::new(el.engine_client(), el.genesis_hash).run(Duration::from_millis(300));
    let rpc = el.http.as_str();

    assert_eq!(cast(&["chain-id", "--rpc-url", rpc]).await.unwrap(), "121212");
    assert_eq!(cast(&["chain-id", "--rpc-url", &el.ws]).await.unwrap(), "121212", "over WebSocket too");
    assert!(cast(&["client", "--rpc-url", rpc]).await.unwrap().starts_with("alys-devnet-el"));

    // A value transfer between development accounts.
    let to = "0x000000000000000000000000000000000000bEEF";
    let receipt =
        cast(&["send", "--rpc-url", rpc, "--private-key", &key(0), to, "--value", "1.5ether", "--json"])
            .await
            .unwrap();
    let receipt: serde_json::Value = serde_json::from_str(&receipt).unwrap();
    assert_eq!(receipt["status"], "0x1");
    assert_eq!(cast(&["balance", "--rpc-url", rpc, to]).await.unwrap(), "1500000000000000000");
    assert_eq!(cast(&["nonce", "--rpc-url", rpc, &DEV_ACCOUNTS[0].to_string()]).await.unwrap(), "1");

    // Deploy the ERC-20 and use it.
    let artifact: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("contracts/artifacts/BenchToken.json")).unwrap(),
    )
    .unwrap();
    let bytecode = artifact["bytecode"].as_str().unwrap();
    let deployed = cast(&[
        "send",
        "--rpc-url",
        rpc,
        "--private-key",
        &key(1),
        "--create",
        bytecode,
        "constructor(uint256)",
        "1000000",
        "--json",
    ])
    .await
    .unwrap();
    let deployed: serde_json::Value = serde_json::from_str(&deployed).unwrap();
    let token = deployed["contractAddress"].as_str().unwrap().to_owned();
    assert!(!cast(&["code", "--rpc-url", rpc, &token]).await.unwrap().trim_start_matches("0x").is_empty());
    let holder = DEV_ACCOUNTS[1].to_string();
    assert_eq!(
        first(cast(&["call", "--rpc-url", rpc, &token, "balanceOf(address)(uint256)", &holder]).await),
        "1000000"
    );
    let recipient = DEV_ACCOUNTS[2].to_string();
    cast(&[
        "send",
        "--rpc-url",
        rpc,
        "--private-key",
        &key(1),
        &token,
        "transfer(address,uint256)",
        &recipient,
        "250",
    ])
    .await
    .unwrap();
    assert_eq!(
        first(cast(&["call", "--rpc-url", rpc, &token, "balanceOf(address)(uint256)", &recipient]).await),
        "250"
    );
    let logs = cast(&[
        "logs",
        "--rpc-url",
        rpc,
        "--from-block",
        "0",
        "--address",
        &token,
        "Transfer(address,address,uint256)",
        "--json",
    ])
    .await
    .unwrap();
    let logs: Vec<serde_json::Value> = serde_json::from_str(&logs).unwrap();
    assert_eq!(logs.len(), 2, "mint and transfer: {logs:?}");
    assert_eq!(logs[1]["data"], format!("0x{:064x}", 250));

    // A revert comes back with its reason.
    let err = cast(&[
        "call",
        "--rpc-url",
        rpc,
        "--from",
        &recipient,
        &token,
        "transfer(address,uint256)",
        &holder,
        "251",
    ])
    .await
    .unwrap_err();
    assert!(err.contains("execution reverted") && err.contains("balance"), "{err}");

    // The bridge burns and logs a peg-out request.
    let bridge = "0xbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbB";
    cast(&[
        "send",
        "--rpc-url",
        rpc,
        "--private-key",
        &key(3),
        bridge,
        "requestPegOut(bytes)",
        "0x6263727431717738",
        "--value",
        "0.02ether",
    ])
    .await
    .unwrap();
    let pegouts = cast(&[
        "logs",
        "--rpc-url",
        rpc,
        "--from-block",
        "0",
        "--address",
        bridge,
        "RequestPegOut(address,bytes,uint256)",
        "--json",
    ])
    .await
    .unwrap();
    let pegouts: Vec<serde_json::Value> = serde_json::from_str(&pegouts).unwrap();
    assert_eq!(pegouts.len(), 1);
    assert_eq!(
        cast(&["balance", "--rpc-url", rpc, "0x000000000000000000000000000000000000dEaD"]).await.unwrap(),
        "20000000000000000"
    );

    // Errors wallets match on.
    let low = cast(&["send", "--rpc-url", rpc, "--private-key", &key(0), to, "--value", "1", "--nonce", "0"])
        .await
        .unwrap_err();
    assert!(low.contains("nonce too low"), "{low}");
    let poor = "0x0123456789012345678901234567890123456789012345678901234567890123";
    let broke =
        cast(&["send", "--rpc-url", rpc, "--private-key", poor, to, "--value", "1", "--gas-limit", "21000"])
            .await
            .unwrap_err();
    assert!(broke.contains("insufficient funds"), "{broke}");

    // Blocks by tag.
    let latest: serde_json::Value =
        serde_json::from_str(&cast(&["block", "latest", "--json", "--rpc-url", rpc]).await.unwrap()).unwrap();
    assert!(latest["number"].as_str().is_some());
    let finalized = cast(&["block", "finalized", "--field", "number", "--rpc-url", rpc]).await.unwrap();
    assert!(!finalized.is_empty());
    producer.abort();
}
