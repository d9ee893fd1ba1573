//! The Bitcoin client and follower against the devnet's regtest node (bitcoind's JSON-RPC on loopback,
//! cookie authentication): typed answers and errors, a cookie re-read after a restart, and a follower
//! that walks back over a reorg and on along the new best chain.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]

use std::time::Duration;

use alys_bitcoin::{BitcoinAuth, BitcoinClient, BitcoinClientConfig, BitcoinError, Follower, Step};
use alys_devnet_bitcoin::{BitcoinConfig, BitcoinHandle};
use bitcoin::{BlockHash, hashes::Hash as _};

async fn start(dir: &std::path::Path, addr: &str) -> BitcoinHandle {
    alys_devnet_bitcoin::start(BitcoinConfig::new(dir).with_rpc_addr(addr.parse().unwrap())).await.unwrap()
}

fn client(handle: &BitcoinHandle) -> BitcoinClient {
    let auth = BitcoinAuth::Cookie(handle.cookie_path().unwrap().to_owned());
    BitcoinClient::new(BitcoinClientConfig::new(handle.url(), auth).with_timeout(Duration::from_secs(5)))
        .unwrap()
}

async fn mine(handle: &BitcoinHandle, n: u64) -> Vec<BlockHash> {
    let node = std::sync::Arc::clone(handle.node());
    tokio::task::spawn_blocking(move || {
        let mut node = node.lock().unwrap();
        let script = node.wallet_mut().new_address(false).unwrap().script_pubkey();
        node.generate(n, &script).unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_and_errors_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(dir.path(), "127.0.0.1:0").await;
    let bitcoin = client(&handle);
    let mined = mine(&handle, 3).await;
    let (chain, best) = bitcoin.chain().await.unwrap();
    assert_eq!(chain, "regtest");
    assert_eq!((best.height, best.hash), (3, mined[2]));
    assert_eq!(bitcoin.block_hash(2).await.unwrap(), Some(mined[1]));
    assert_eq!(bitcoin.block_hash(4).await.unwrap(), None, "above the tip: -8 becomes None");
    let info = bitcoin.header_info(mined[0]).await.unwrap().unwrap();
    assert_eq!((info.height, info.confirmations), (1, 3));
    assert_eq!(bitcoin.header_info(BlockHash::all_zeros()).await.unwrap(), None, "-5 becomes None");
    let block = bitcoin.block(mined[2]).await.unwrap();
    assert_eq!(block.block_hash(), mined[2]);
    let coinbase = block.txdata[0].compute_txid();
    assert_eq!(bitcoin.transaction_in(coinbase, mined[2]).await.unwrap().unwrap().compute_txid(), coinbase);
    assert!(bitcoin.transaction_in(coinbase, mined[1]).await.unwrap().is_none(), "not in that block");
    // bitcoind's own errors keep their code.
    let error = bitcoin.send_transaction(block.txdata[0].clone()).await.unwrap_err();
    assert!(matches!(error, BitcoinError::Rpc { .. }) && !error.is_transport(), "{error}");

    // Wrong credentials and a silent port are transport failures, retried and then reported.
    let wrong = BitcoinClient::new(
        BitcoinClientConfig::new(
            handle.url(),
            BitcoinAuth::UserPassword { user: "alys".into(), password: "wrong".into() },
        )
        .with_retries(1),
    )
    .unwrap();
    assert!(wrong.best_block().await.unwrap_err().is_transport());
    let nobody = BitcoinClient::new(
        BitcoinClientConfig::new(
            "http://127.0.0.1:1",
            BitcoinAuth::UserPassword { user: "a".into(), password: "b".into() },
        )
        .with_retries(0),
    )
    .unwrap();
    assert!(nobody.best_block().await.unwrap_err().is_transport());
    let missing = BitcoinClient::new(BitcoinClientConfig::new(
        handle.url(),
        BitcoinAuth::Cookie(dir.path().join("no-such-cookie")),
    ));
    assert!(matches!(missing, Err(BitcoinError::Cookie { .. })));
    handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_bitcoind_with_a_new_cookie_is_reached_again() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(dir.path(), "127.0.0.1:0").await;
    let addr = handle.addr().to_string();
    let bitcoin = client(&handle);
    mine(&handle, 1).await;
    assert_eq!(bitcoin.best_block().await.unwrap().height, 1);
    let old_cookie = std::fs::read_to_string(handle.cookie_path().unwrap()).unwrap();
    handle.stop().await;
    assert!(bitcoin.best_block().await.unwrap_err().is_transport(), "down");

    let handle = start(dir.path(), &addr).await;
    let new_cookie = std::fs::read_to_string(handle.cookie_path().unwrap()).unwrap();
    assert_ne!(old_cookie, new_cookie, "bitcoind writes a new cookie at each start");
    // The first attempt uses the old cookie and is refused; the retry re-reads the file.
    assert_eq!(bitcoin.best_block().await.unwrap().height, 1, "the chain persisted, the client recovered");
    handle.stop().await;
}

/// Applies steps to `recorded` (height → hash, as a caller's database would) until the follower is at
/// the tip; returns how many blocks were disconnected.
async fn follow(follower: &Follower, recorded: &mut Vec<BlockHash>) -> usize {
    let mut disconnected = 0;
    loop {
        let position = recorded.last().map(|hash| (recorded.len() as u64 - 1, *hash));
        match follower.step(position).await.unwrap() {
            Step::Connect { height, block, best } => {
                assert_eq!(height, recorded.len() as u64, "blocks come in order");
                assert!(best >= height, "the best block is at or above the one to connect");
                if let Some(parent) = recorded.last() {
                    assert_eq!(block.header.prev_blockhash, *parent, "each block extends the last");
                }
                recorded.push(block.block_hash());
            }
            Step::Disconnect { height, hash } => {
                assert_eq!((height, Some(hash)), (recorded.len() as u64 - 1, recorded.last().copied()));
                recorded.pop();
                disconnected += 1;
            }
            Step::Tip(best) => {
                assert_eq!(Some(best.hash), recorded.last().copied());
                return disconnected;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_follower_walks_back_over_a_reorg_and_on_along_the_best_chain() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(dir.path(), "127.0.0.1:0").await;
    let bitcoin = client(&handle);
    mine(&handle, 5).await;
    let follower = Follower::new(bitcoin.clone(), Some(0));
    let mut recorded = Vec::new();
    assert_eq!(follow(&follower, &mut recorded).await, 0);
    assert_eq!(recorded.len(), 6, "genesis and five blocks");

    // Blocks 4 and 5 leave the best chain; a longer branch replaces them.
    let fork = recorded[4];
    let node = std::sync::Arc::clone(handle.node());
    tokio::task::spawn_blocking(move || node.lock().unwrap().invalidate(fork).unwrap()).await.unwrap();
    mine(&handle, 4).await;
    assert_eq!(follow(&follower, &mut recorded).await, 2, "exactly the two orphaned blocks are undone");
    assert_eq!(recorded.len(), 8);
    for (height, hash) in recorded.iter().enumerate() {
        assert_eq!(bitcoin.block_hash(height as u64).await.unwrap(), Some(*hash), "height {height}");
    }

    // Without a start height, a fresh follower begins a day of blocks below the tip (here: genesis).
    let mut fresh = Vec::new();
    let from_tip = Follower::new(bitcoin, None);
    follow(&from_tip, &mut fresh).await;
    assert_eq!(fresh, recorded);
    handle.stop().await;
}
