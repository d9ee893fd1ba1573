//! The devnet's Bitcoin regtest node, as the node's Bitcoin client and a user's peg-in script reach
//! it: bitcoind's JSON-RPC with the cookie from its data directory.

use std::time::Duration;

use bitcoincore_rpc::{Auth, Client, RpcApi};

use crate::support::{DevnetProcess, tempdir, until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_devnet_runs_a_funded_regtest_node_that_keeps_mining() {
    let dir = tempdir();
    let node = DevnetProcess::start(dir.path());
    assert!(node.bitcoin_cookie.starts_with(dir.path()), "the cookie lives in the data directory");
    let (url, cookie) = (node.bitcoin_rpc.clone(), node.bitcoin_cookie.clone());
    let bitcoin = tokio::task::spawn_blocking(move || Client::new(&url, Auth::CookieFile(cookie)).unwrap())
        .await
        .unwrap();
    let bitcoin = std::sync::Arc::new(bitcoin);

    let rpc = bitcoin.clone();
    let (info, balance) = tokio::task::spawn_blocking(move || {
        (rpc.get_blockchain_info().unwrap(), rpc.get_balance(None, None).unwrap())
    })
    .await
    .unwrap();
    assert_eq!(info.chain, ::bitcoin::Network::Regtest);
    assert!(info.blocks >= 101, "a mature coinbase from the start: {info:?}");
    assert!(balance.to_sat() >= 50 * 100_000_000, "the wallet can pay a deposit at once: {balance}");

    // A new block every few seconds (the devnet's default 5 s).
    let start = info.blocks;
    until("the devnet mines Bitcoin blocks", Duration::from_secs(20), async || {
        let rpc = bitcoin.clone();
        tokio::task::spawn_blocking(move || rpc.get_block_count().unwrap()).await.unwrap() > start
    })
    .await;
}
