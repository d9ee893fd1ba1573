//! Crash-point tests (DESIGN invariant 8): the whole devnet is aborted at each commit point of the block,
//! mining, peg-out and governance paths — `abort()`, as a `kill -9` or a power cut would, no shutdown
//! path — then restarted on the same data directory, and the chain is checked:
//!
//! - every merged-mining batch is paid once: no two proofs start at the same finalized block, each
//!   proof-carrying block mints exactly the reward its batch's fees give, and the miner's and the
//!   federation's balances are exactly the sum of those rewards;
//! - every burn sent to the bridge is in the peg-out ledger exactly once, pending or final;
//! - the consensus head and finalized block and the execution client agree;
//! - nothing panicked.
//!
//! The points are armed with `FAILPOINTS="<point>=<n>*off->return"`: the process passes the point `n`
//! times, then aborts the next time (see `alys_primitives::crash_point!`).

use std::{collections::HashSet, time::Duration};

use alloy_primitives::{Address, B256, U256};
use alys_auxpow::{AuxPowHeader, RewardSplit, reward_withdrawals};
use alys_chainspec::dev::{DEV_ACCOUNT_BALANCE, DEV_ACCOUNTS, DEV_PRIVATE_KEYS, DEVNET_FEDERATION_FEES};
use alys_rpc::{BridgeApiClient, ChainApiClient, types::PegoutSet};
use alys_storage::ChainRead;
use serde_json::{Value, json};

use crate::support::{DevnetProcess, client, quantity, raw_call, tempdir, until, wait_for_height};

/// The miner's share the devnet is configured with (`[auxpow] miner_share_percent`, default 80).
const SPLIT: RewardSplit = RewardSplit { miner_percent: 80, federation: DEVNET_FEDERATION_FEES };
/// A Bitcoin address burns pay (regtest, as the devnet's network), as the hex of its UTF-8 text: what a
/// dApp passes as `requestPegOut`'s `bytes`.
const BTC: &str =
    "0x62637274317177353038643671656a7874646734793572337a6172766172793063357877376b796774303830";

/// What a scenario does while the point is armed, so the point is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drive {
    /// Blocks and proofs come by themselves.
    Chain,
    /// Burns are sent until the process aborts.
    Burns,
    /// A governance proposal is issued.
    Proposal,
}

/// Arms `point` to abort after `passes` passes, drives the devnet until it aborts, restarts it and checks
/// every invariant; returns what was checked.
async fn crash_at(point: &str, passes: u32, drive: Drive) -> String {
    let dir = tempdir();
    let mut sent_burns: Vec<B256> = Vec::new();
    // A point may be reached while the devnet starts (governance sends its federation at once); then the
    // process aborts before its ready line, which is as good a crash.
    if let Some(mut node) =
        DevnetProcess::try_start_with_failpoints(dir.path(), &format!("{point}={passes}*off->return"))
    {
        let alys = node.client();
        // Let the chain get going before driving it to the point (unless the point comes first).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !node.has_exited() && !alys.sync_status().await.is_ok_and(|s| s.head.height >= 2) {
            assert!(tokio::time::Instant::now() < deadline, "{point}: the devnet did not start producing");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut nonce_key = 0usize;
        while !node.has_exited() {
            assert!(tokio::time::Instant::now() < deadline, "{point} was never reached");
            match drive {
                Drive::Chain => {}
                Drive::Burns => {
                    if let Some(tx) = try_burn(&node.http, nonce_key).await {
                        sent_burns.push(tx);
                    }
                    nonce_key = (nonce_key + 1) % 3;
                }
                Drive::Proposal => {
                    let height = alys.sync_status().await.map(|s| s.head.height).unwrap_or(0);
                    let _ = raw_call(
                        &node.governance_admin,
                        "governance_propose",
                        json!([{ "action": "parameter", "name": "pegin_confirmations",
                                 "value": (2 + height % 5).to_string(), "effectiveHeight": height + 3 }]),
                    )
                    .await;
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert!(node.aborted(), "{point}: the process stopped, but not by the crash point");
    }

    // Restart on the same data directory, unarmed, and let the chain move on past the crash.
    let node = DevnetProcess::start(dir.path());
    let alys = node.client();
    let before = alys.sync_status().await.unwrap();
    let status = wait_for_height(&alys, before.head.height + 4, Duration::from_secs(60)).await;
    let crash_head = before.head.height;
    until("finality passes the crash", Duration::from_secs(60), async || {
        alys.sync_status().await.is_ok_and(|s| s.finalized.is_some_and(|f| f.height > crash_head))
    })
    .await;
    if drive == Drive::Burns {
        // Burns sent before the crash are in the ledger once it caught up with the feed.
        until("every burn is in the ledger", Duration::from_secs(60), async || {
            ledger_burns(&node.rpc).await.len() >= sent_burns.len()
        })
        .await;
    }
    let checked = check_invariants(&node, &sent_burns).await;
    assert!(!node.stderr_contains("panicked"), "{point}: something panicked");
    format!("{point} after {passes} passes: head {} → {}, {checked}", crash_head, status.head.height)
}

/// Sends one burn to the bridge from dev account `5 + key`; its transaction hash, if it landed.
async fn try_burn(http: &str, key: usize) -> Option<B256> {
    let key = DEV_PRIVATE_KEYS.get(5 + key)?.to_string();
    let bridge = alys_contracts::BRIDGE_ADDRESS.to_string();
    let receipt =
        crate::support::try_send(http, &key, &bridge, &["requestPegOut(bytes)", BTC, "--value", "0.02ether"])
            .await
            .ok()?;
    receipt["transactionHash"].as_str()?.parse().ok()
}

/// Every burn in the ledger (pending and final), by burning transaction, read page by page.
async fn ledger_burns(rpc: &str) -> Vec<(B256, B256, u64)> {
    let alys = client(rpc);
    let mut out = Vec::new();
    for set in [PegoutSet::Pending, PegoutSet::Released] {
        let mut after = None;
        loop {
            let query = alys_rpc::types::PegoutQuery { set, after, limit: Some(100) };
            let Ok(page) = alys.pegouts(Some(query)).await else { return out };
            out.extend(page.pegouts.iter().map(|p| (p.tx_hash, p.block_hash, p.log_index)));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    out
}

/// Checks the invariants listed in the module docs at the current head; says what it checked.
async fn check_invariants(node: &DevnetProcess, sent_burns: &[B256]) -> String {
    let alys = node.client();
    let status = alys.sync_status().await.unwrap();
    let head = status.head.height;

    // Head and finality agree with the execution client.
    let el_head = raw_call(&node.http, "eth_getBlockByNumber", json!(["latest", false])).await.unwrap();
    assert_eq!(quantity(&el_head["number"]), head, "execution head vs consensus head");
    assert_eq!(hash_of(&el_head), status.head.execution_hash);
    let finalized = status.finalized.expect("finality after the restart");
    let el_final = raw_call(&node.http, "eth_getBlockByNumber", json!(["finalized", false])).await.unwrap();
    let final_block = alys.block_by_height(finalized.height).await.unwrap().expect("finalized block");
    assert_eq!(hash_of(&el_final), final_block.execution_block_hash, "execution finalized vs consensus");

    // Every batch paid once, with exactly its fees' reward.
    let miner = DEV_ACCOUNTS[1];
    let mut starts = HashSet::new();
    let (mut miner_gwei, mut federation_gwei) = (0u128, 0u128);
    let mut proofs = 0;
    let mut paid_up_to = 0u64;
    for height in 1..=head {
        let block = alys.block_by_height(height).await.unwrap().expect("canonical block");
        let Some(auxpow) = &block.auxpow else { continue };
        let proof = AuxPowHeader::decode(auxpow).expect("a stored proof decodes");
        proofs += 1;
        assert!(starts.insert(proof.finalized), "batch from {} paid twice (block {height})", proof.finalized);
        assert_eq!(proof.miner, miner, "the devnet miner pays dev account 1");
        let fees = batch_fees(&node.http, paid_up_to + 1, proof.head_height).await;
        paid_up_to = proof.head_height;
        let expected = reward_withdrawals(fees, miner, SPLIT, 0);
        let el_block = raw_call(&node.http, "eth_getBlockByNumber", json!([format!("{height:#x}"), false]))
            .await
            .unwrap();
        let minted: Vec<(Address, u64)> = el_block["withdrawals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| (w["address"].as_str().unwrap().parse().unwrap(), quantity(&w["amount"])))
            .collect();
        let wanted: Vec<(Address, u64)> = expected.iter().map(|w| (w.address, w.amount)).collect();
        assert_eq!(minted, wanted, "block {height} mints exactly its batch's reward");
        for w in expected {
            if w.address == miner {
                miner_gwei += u128::from(w.amount);
            } else {
                federation_gwei += u128::from(w.amount);
            }
        }
    }
    let at = format!("{head:#x}");
    let balance = |address: Address| {
        let at = at.clone();
        async move {
            let value = raw_call(&node.http, "eth_getBalance", json!([address, at])).await.unwrap();
            serde_json::from_value::<U256>(value).unwrap()
        }
    };
    let gwei = U256::from(1_000_000_000u64);
    assert_eq!(balance(miner).await, DEV_ACCOUNT_BALANCE + U256::from(miner_gwei) * gwei, "miner balance");
    assert_eq!(
        balance(DEVNET_FEDERATION_FEES).await,
        U256::from(federation_gwei) * gwei,
        "federation balance"
    );

    // Every burn once.
    let ledger = ledger_burns(&node.rpc).await;
    let keys: HashSet<(B256, u64)> = ledger.iter().map(|(_, block, log)| (*block, *log)).collect();
    assert_eq!(keys.len(), ledger.len(), "a burn appears twice in the ledger");
    for tx in sent_burns {
        let times = ledger.iter().filter(|(hash, ..)| hash == tx).count();
        assert_eq!(times, 1, "burn {tx} is in the ledger {times} times");
    }
    format!("{proofs} proofs paid once, {} burns once, heads agree", sent_burns.len())
}

/// `Σ base fee × gas used` of execution blocks `from..=to`, in wei.
async fn batch_fees(http: &str, from: u64, to: u64) -> U256 {
    let mut total = U256::ZERO;
    for number in from..=to {
        let block: Value =
            raw_call(http, "eth_getBlockByNumber", json!([format!("{number:#x}"), false])).await.unwrap();
        total += U256::from(quantity(&block["baseFeePerGas"])) * U256::from(quantity(&block["gasUsed"]));
    }
    total
}

fn hash_of(block: &Value) -> B256 {
    block["hash"].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_on_the_block_and_mining_paths_lose_nothing_and_pay_nothing_twice() {
    let mut report = Vec::new();
    for (point, passes) in [
        ("chain::commit::before", 4),
        ("chain::commit::after", 5),
        ("chain::finalize::before", 1),
        ("chain::finalize::after", 1),
        ("mining::queue::before", 1),
        ("mining::queue::after", 2),
    ] {
        report.push(crash_at(point, passes, Drive::Chain).await);
    }
    eprintln!("{}", report.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_on_the_peg_out_and_governance_paths_lose_nothing() {
    let mut report = Vec::new();
    for (point, passes, drive) in [
        ("pegout::feed_event::before", 1, Drive::Burns),
        ("pegout::feed_event::after", 1, Drive::Burns),
        ("pegout::release::before", 6, Drive::Burns),
        ("pegout::release::after", 8, Drive::Burns),
        ("governance::proposal::before", 0, Drive::Proposal),
        ("governance::proposal::after", 0, Drive::Proposal),
        ("governance::federation_update::after", 0, Drive::Chain),
    ] {
        report.push(crash_at(point, passes, drive).await);
    }
    eprintln!("{}", report.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_forkchoice_after_the_commit_does_not_fork_the_chain() {
    // The execution client fails forkchoiceUpdated once, right after a block was committed. Before the
    // fix the actor kept its old head in memory and built a sibling at the same height next slot.
    let dir = tempdir();
    let node = DevnetProcess::start_with_failpoints(dir.path(), "chain::forkchoice=3*off->1*return->off");
    let alys = node.client();
    let status = wait_for_height(&alys, 8, Duration::from_secs(60)).await;
    for height in 1..=status.head.height {
        let block = alys.block_by_height(height).await.unwrap().expect("canonical block");
        let parent = if height == 1 { None } else { alys.block_by_height(height - 1).await.unwrap() };
        if let Some(parent) = parent {
            assert_eq!(block.parent_hash, parent.hash, "block {height} extends the one below it");
        }
    }
    assert!(node.stderr_contains("chain::forkchoice"), "the failure was injected");
    assert!(
        node.metric("alys_chain_production_errors_total").await >= 1.0,
        "the failed forkchoiceUpdated is counted as a production error"
    );
    drop(node);
    // A single authority never has a fork block: every block it stored is canonical.
    let storage = alys_storage::Storage::open(dir.path().join("sidecar/alys.redb")).unwrap();
    let read = storage.read().unwrap();
    let head = read.head().unwrap().expect("a head").height;
    assert_eq!(read.stored_block_count().unwrap(), head, "a sibling was built beside a committed block");
}
