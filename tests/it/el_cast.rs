//! foundry's `cast`, a real client, against the embedded engine: value transfers, a contract deployment,
//! calls, logs, the bridge, the errors wallets rely on, and the developer methods (blob fee, proofs, access
//! lists, debug traces, the pool's content).

use std::time::Duration;

use alloy_primitives::{B256, Bytes, keccak256};
use alys_chainspec::dev::{DEV_ACCOUNTS, DEV_PRIVATE_KEYS};
use serde_json::Value;

use crate::support::{ElProcess, Producer, cast, quantity, root, send};

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
    // The pool's words, as geth's (ethers and MetaMask match on them).
    assert!(broke.contains("insufficient funds for gas * price + value: balance 0, tx cost "), "{broke}");
    // Without a gas limit cast estimates first: the call is refused in the same words (not revm's
    // `lack of funds (0) for max fee`).
    let broke =
        cast(&["send", "--rpc-url", rpc, "--private-key", poor, to, "--value", "1"]).await.unwrap_err();
    assert!(broke.contains("insufficient funds for gas * price + value: address "), "{broke}");
    assert!(!broke.contains("lack of funds"), "{broke}");

    // Blocks by tag.
    let latest: serde_json::Value =
        serde_json::from_str(&cast(&["block", "latest", "--json", "--rpc-url", rpc]).await.unwrap()).unwrap();
    assert!(latest["number"].as_str().is_some());
    let finalized = cast(&["block", "finalized", "--field", "number", "--rpc-url", rpc]).await.unwrap();
    assert!(!finalized.is_empty());
    producer.abort();
}

fn json(out: Result<String, String>) -> Value {
    let out = out.unwrap();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn bytes(value: &Value) -> Bytes {
    value.as_str().unwrap_or_else(|| panic!("not hex: {value}")).parse().unwrap()
}

fn lower(value: &Value) -> String {
    value.as_str().unwrap_or_else(|| panic!("not a string: {value}")).to_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cast_reads_proofs_access_lists_traces_and_the_pool() {
    let el = ElProcess::start();
    let producer = Producer::new(el.engine_client(), el.genesis_hash).run(Duration::from_millis(300));
    let rpc = el.http.as_str();

    // Cancun and Prague from genesis, no blob ever: the minimum blob fee.
    assert_eq!(cast(&["rpc", "--rpc-url", rpc, "eth_blobBaseFee"]).await.unwrap(), "\"0x1\"");
    let modules = json(cast(&["rpc", "--rpc-url", rpc, "rpc_modules"]).await);
    for namespace in ["eth", "net", "web3", "debug", "txpool", "rpc"] {
        assert_eq!(modules[namespace], "1.0", "{modules}");
    }

    // The ERC-20, with 250 moved from the holder to the recipient.
    let artifact: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("contracts/artifacts/BenchToken.json")).unwrap(),
    )
    .unwrap();
    let bytecode = artifact["bytecode"].as_str().unwrap();
    let deployed = send(rpc, &key(1), "--create", &[bytecode, "constructor(uint256)", "1000000"]).await;
    let token = deployed["contractAddress"].as_str().unwrap().to_owned();
    let (holder, recipient) = (DEV_ACCOUNTS[1].to_string(), DEV_ACCOUNTS[2].to_string());
    let moved = send(rpc, &key(1), &token, &["transfer(address,uint256)", &recipient, "250"]).await;
    let block = quantity(&moved["blockNumber"]).to_string();

    // `balanceOf` is the mapping at slot 1. The proof at the transfer's block holds the new balance, and
    // its first nodes hash to the block's state root and to the account's storage root.
    let holder_slot = cast(&["index", "address", &holder, "1"]).await.unwrap();
    let recipient_slot = cast(&["index", "address", &recipient, "1"]).await.unwrap();
    let proof = json(cast(&["proof", "--rpc-url", rpc, "--block", &block, &token, &holder_slot]).await);
    assert_eq!(quantity(&proof["storageProof"][0]["value"]), 1_000_000 - 250, "{proof}");
    let state_root: B256 =
        cast(&["block", &block, "--field", "stateRoot", "--rpc-url", rpc]).await.unwrap().parse().unwrap();
    assert_eq!(keccak256(bytes(&proof["accountProof"][0])), state_root, "{proof}");
    let storage_root: B256 = proof["storageHash"].as_str().unwrap().parse().unwrap();
    assert_eq!(keccak256(bytes(&proof["storageProof"][0]["proof"][0])), storage_root, "{proof}");
    let cast_root = cast(&["storage-root", "--rpc-url", rpc, "--block", &block, &token]).await.unwrap();
    assert_eq!(cast_root.parse::<B256>().unwrap(), storage_root);

    // Another transfer's access list: the token (the recipient of the call) is listed for its two
    // balance slots, as geth lists them.
    let list = cast(&[
        "access-list",
        "--rpc-url",
        rpc,
        "--from",
        &holder,
        &token,
        "transfer(address,uint256)",
        &recipient,
        "1",
        "--json",
    ])
    .await
    .unwrap();
    let list_lower = list.to_lowercase();
    for needle in [token.to_lowercase(), holder_slot.to_lowercase(), recipient_slot.to_lowercase()] {
        assert!(list_lower.contains(&needle), "{needle} not in {list}");
    }

    // A peg-out: the bridge forwards the value to the burn address and logs the request.
    let bridge = "0xbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbB";
    let burn = "0x000000000000000000000000000000000000dead";
    let two_cents = "0x470de4df820000"; // 0.02 ether
    let pegout =
        send(rpc, &key(3), bridge, &["requestPegOut(bytes)", "0x6263727431717738", "--value", "0.02ether"])
            .await;
    let tx = pegout["transactionHash"].as_str().unwrap();
    let options = r#"{"tracer":"callTracer","tracerConfig":{"withLog":true}}"#;
    let top = json(cast(&["rpc", "--rpc-url", rpc, "debug_traceTransaction", tx, options]).await);
    assert_eq!(
        (lower(&top["from"]), lower(&top["to"])),
        (DEV_ACCOUNTS[3].to_string().to_lowercase(), bridge.to_lowercase())
    );
    assert_eq!((top["type"].as_str(), top["value"].as_str()), (Some("CALL"), Some(two_cents)), "{top}");
    assert_eq!(quantity(&top["gasUsed"]), quantity(&pegout["gasUsed"]));
    let nested = &top["calls"][0];
    assert_eq!(
        (lower(&nested["from"]), lower(&nested["to"])),
        (bridge.to_lowercase(), burn.to_owned()),
        "{top}"
    );
    assert_eq!(nested["value"].as_str(), Some(two_cents));
    assert_eq!(
        top["logs"][0]["topics"][0], "0xaa1c6070bc915de33c0fbc36ecf77b1e4fc1ebce832b2da62b6fe25f5a7dd5b0",
        "RequestPegOut: {top}"
    );
    // The struct logger: every opcode, the CALL to the burn address among them.
    let steps = json(cast(&["rpc", "--rpc-url", rpc, "debug_traceTransaction", tx]).await);
    assert_eq!(steps["failed"], false);
    assert_eq!(
        steps["gas"].as_u64(),
        Some(quantity(&pegout["gasUsed"])),
        "geth's struct logger: gas as a number"
    );
    let logs = steps["structLogs"].as_array().unwrap();
    assert_eq!(
        (logs[0]["pc"].as_u64(), logs[0]["op"].as_str(), logs[0]["depth"].as_u64()),
        (Some(0), Some("PUSH1"), Some(1))
    );
    assert!(logs.iter().any(|log| log["op"] == "CALL" && log["depth"] == 1), "no CALL step");
    // The same call, traced as a call on the latest state: only the top frame when asked.
    let data = cast(&["calldata", "requestPegOut(bytes)", "0x6263727431717738"]).await.unwrap();
    let request =
        format!(r#"{{"from":"{}","to":"{bridge}","value":"{two_cents}","data":"{data}"}}"#, DEV_ACCOUNTS[4]);
    let options = r#"{"tracer":"callTracer","tracerConfig":{"onlyTopCall":true}}"#;
    let call = json(cast(&["rpc", "--rpc-url", rpc, "debug_traceCall", &request, "latest", options]).await);
    assert_eq!(lower(&call["to"]), bridge.to_lowercase());
    assert!(call.get("calls").is_none_or(|calls| calls.as_array().is_some_and(Vec::is_empty)), "{call}");
    assert!(call.get("error").is_none(), "{call}");

    // The pool: a transaction behind a nonce gap stays queued.
    let nonce = cast(&["nonce", "--rpc-url", rpc, &DEV_ACCOUNTS[5].to_string()]).await.unwrap();
    let gapped_nonce = (nonce.parse::<u64>().unwrap() + 3).to_string();
    let queued = cast(&[
        "send",
        "--rpc-url",
        rpc,
        "--private-key",
        &key(5),
        "0x000000000000000000000000000000000000bEEF",
        "--value",
        "1",
        "--nonce",
        &gapped_nonce,
        "--gas-limit",
        "21000",
        "--async",
    ])
    .await
    .unwrap();
    let status = cast(&["tx-pool", "status", "--rpc-url", rpc]).await.unwrap();
    let status_lower = status.to_lowercase();
    assert!(status_lower.contains("queued") && status_lower.contains('1'), "{status}");
    let content = json(cast(&["tx-pool", "content", "--rpc-url", rpc]).await);
    // The server keys senders by checksummed address, as geth; cast prints them as it parsed them.
    let sender = DEV_ACCOUNTS[5].to_string().to_lowercase();
    let queued_of =
        content["queued"].as_object().unwrap().iter().find(|(key, _)| key.to_lowercase() == sender);
    assert_eq!(queued_of.unwrap().1[&gapped_nonce]["hash"], queued.as_str(), "{content}");
    assert_eq!(content["pending"], serde_json::json!({}), "{content}");
    let inspect = cast(&["tx-pool", "inspect", "--rpc-url", rpc]).await.unwrap();
    assert!(
        inspect.to_lowercase().contains("0x000000000000000000000000000000000000beef: 1 wei + 21000 gas × "),
        "{inspect}"
    );
    producer.abort();
}
