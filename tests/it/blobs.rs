//! A blob transaction (EIP-4844) through the whole devnet: foundry's `cast` sends it in the network
//! encoding with its sidecar, the embedded engine checks the KZG proofs and pools it, the authority's
//! block carries it, and the node imports that block, naming its versioned hashes to `newPayload`.

use std::time::Duration;

use alys_chainspec::dev::DEV_PRIVATE_KEYS;
use alys_rpc::ChainApiClient;
use serde_json::json;

use crate::support::{DevnetProcess, hash, quantity, raw_call, send, tempdir, wait_for_height};

/// The blob gas of one blob.
const BLOB_GAS: u64 = 131_072;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_transaction_goes_through_the_devnet() {
    let dir = tempdir();
    let node = DevnetProcess::start(dir.path());
    let alys = node.client();
    wait_for_height(&alys, 1, Duration::from_secs(30)).await;

    let data = dir.path().join("blob.txt");
    std::fs::write(&data, "Alys carries blobs").unwrap();
    let path = data.to_str().unwrap();
    // `--eip4844`: the Cancun/Prague sidecar (a proof per blob), not Osaka's cell proofs.
    let args = ["--blob", "--eip4844", "--path", path, "--blob-gas-price", "1000"];
    let key = DEV_PRIVATE_KEYS[3].to_string();
    let receipt = send(&node.http, &key, "0x000000000000000000000000000000000000b10b", &args).await;
    assert_eq!(receipt["type"], "0x3", "{receipt}");
    assert_eq!(quantity(&receipt["blobGasUsed"]), BLOB_GAS, "{receipt}");

    let block =
        raw_call(&node.http, "eth_getBlockByNumber", json!([receipt["blockNumber"], false])).await.unwrap();
    assert_eq!(quantity(&block["blobGasUsed"]), BLOB_GAS, "{block}");
    let tx =
        raw_call(&node.http, "eth_getTransactionByHash", json!([receipt["transactionHash"]])).await.unwrap();
    assert_eq!(tx["blobVersionedHashes"].as_array().map(Vec::len), Some(1), "{tx}");

    // The consensus chain holds the block and builds on it: the node's newPayload with the block's
    // versioned hashes was answered VALID.
    let number = quantity(&receipt["blockNumber"]);
    wait_for_height(&alys, number + 1, Duration::from_secs(30)).await;
    let consensus = alys.block_by_height(number).await.unwrap().expect("a canonical block");
    assert_eq!(consensus.execution_block_hash, hash(&block["hash"]));
}
