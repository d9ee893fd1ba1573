//! Peg-ins end to end: `alys-devnet` with its Bitcoin regtest node, deposits made from the devnet wallet
//! the way a user makes them (`createrawtransaction` / `fundrawtransaction` /
//! `signrawtransactionwithwallet` / `sendrawtransaction` through `bitcoincore-rpc`), Bitcoin blocks mined
//! on request, and the minted balance read from the execution client.

use std::{sync::Arc, time::Duration};

use alloy_primitives::{Address, U256};
use bitcoin::{Amount, ScriptBuf, Transaction, TxOut, consensus::encode, script::PushBytesBuf};
use bitcoincore_rpc::{Auth, Client, RpcApi};
use serde_json::{Value, json};

use crate::support::{DevnetProcess, raw_call, tempdir, until};

/// Mine Bitcoin blocks only when the test asks.
pub(crate) const MANUAL_MINING: [&str; 2] = ["--bitcoin.block-secs", "0"];

/// A blocking bitcoind client on a devnet's Bitcoin node.
pub(crate) async fn bitcoin_client(node: &DevnetProcess) -> Arc<Client> {
    let (url, cookie) = (node.bitcoin_rpc.clone(), node.bitcoin_cookie.clone());
    Arc::new(
        tokio::task::spawn_blocking(move || Client::new(&url, Auth::CookieFile(cookie)).unwrap())
            .await
            .unwrap(),
    )
}

pub(crate) async fn blocking<T: Send + 'static>(
    client: &Arc<Client>,
    f: impl FnOnce(&Client) -> T + Send + 'static,
) -> T {
    let client = Arc::clone(client);
    tokio::task::spawn_blocking(move || f(&client)).await.unwrap()
}

pub(crate) async fn federation_address(node: &DevnetProcess) -> String {
    raw_call(&node.rpc, "getdepositaddress", json!([])).await.unwrap().as_str().unwrap().to_owned()
}

/// Mines `n` Bitcoin blocks to the wallet.
pub(crate) async fn mine(btc: &Arc<Client>, n: u64) -> Vec<bitcoin::BlockHash> {
    blocking(btc, move |c| {
        let address = c.get_new_address(None, None).unwrap().assume_checked();
        c.generate_to_address(n, &address).unwrap()
    })
    .await
}

/// A deposit as a user makes it: an output of `sats` to `to` and one OP_RETURN per entry of `data`
/// (the first through `createrawtransaction`'s `{"data": hex}`, any further ones added to the raw
/// transaction, which Bitcoin Core's RPC does not write), funded, signed and sent from the wallet.
pub(crate) async fn deposit(btc: &Arc<Client>, to: &str, sats: u64, data: Vec<Vec<u8>>) -> bitcoin::Txid {
    let to = to.to_owned();
    blocking(btc, move |c| {
        let btc_amount = Amount::from_sat(sats).to_btc();
        let mut outputs = vec![json!({ to: btc_amount })];
        if let Some(first) = data.first() {
            outputs.push(json!({ "data": alloy_primitives::hex::encode(first) }));
        }
        let raw: String = c.call("createrawtransaction", &[json!([]), Value::Array(outputs)]).unwrap();
        let mut tx: Transaction = encode::deserialize_hex(&raw).unwrap();
        for extra in data.iter().skip(1) {
            let push = PushBytesBuf::try_from(extra.clone()).unwrap();
            tx.output.push(TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::new_op_return(push) });
        }
        let funded: Value = c.call("fundrawtransaction", &[json!(encode::serialize_hex(&tx))]).unwrap();
        let signed: Value = c.call("signrawtransactionwithwallet", &[funded["hex"].clone()]).unwrap();
        assert_eq!(signed["complete"], json!(true), "{signed}");
        let txid: String = c.call("sendrawtransaction", &[signed["hex"].clone()]).unwrap();
        txid.parse().unwrap()
    })
    .await
}

/// The devnet's deposits, newest first, as `alys_pegins` shows them.
async fn pegins(node: &DevnetProcess) -> Vec<Value> {
    let page = raw_call(&node.rpc, "alys_pegins", json!([{ "limit": 500 }])).await.unwrap();
    page["pegins"].as_array().unwrap().clone()
}

async fn pegin(node: &DevnetProcess, txid: &bitcoin::Txid) -> Option<Value> {
    pegins(node).await.into_iter().find(|p| p["txid"] == json!(txid.to_string()))
}

pub(crate) async fn wait_status(node: &DevnetProcess, txid: &bitcoin::Txid, status: &str) -> Value {
    let mut last = None;
    until(&format!("deposit {txid} {status}"), Duration::from_secs(60), async || {
        last = pegin(node, txid).await;
        last.as_ref().is_some_and(|p| p["status"] == json!(status))
    })
    .await;
    last.unwrap()
}

pub(crate) async fn balance(node: &DevnetProcess, address: Address) -> U256 {
    let value = raw_call(&node.http, "eth_getBalance", json!([address, "latest"])).await.unwrap();
    value.as_str().unwrap().parse().unwrap()
}

pub(crate) fn wei(sats: u64) -> U256 {
    U256::from(sats) * U256::from(10_000_000_000u64)
}

/// How many times `txid` is claimed on the canonical chain up to the head.
async fn claims_on_chain(node: &DevnetProcess, txid: &bitcoin::Txid) -> usize {
    let status = raw_call(&node.rpc, "alys_syncStatus", json!([])).await.unwrap();
    let head = status["head"]["height"].as_u64().unwrap();
    let mut count = 0;
    for height in 1..=head {
        let block = raw_call(&node.rpc, "getblockbyheight", json!([height])).await.unwrap();
        count += block["pegins"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["txid"] == json!(txid.to_string()))
            .count();
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deposits_are_minted_once_for_their_amount_and_malformed_ones_are_recorded() {
    let dir = tempdir();
    let node = DevnetProcess::start_with_args(dir.path(), &MANUAL_MINING);
    let btc = bitcoin_client(&node).await;
    let federation = federation_address(&node).await;
    let elsewhere =
        blocking(&btc, |c| c.get_new_address(None, None).unwrap().assume_checked().to_string()).await;
    let user = |n: u8| Address::repeat_byte(n);

    // One output and the 20 raw bytes, exactly as `alys-devnet pegin` makes it.
    let good = deposit(&btc, &federation, 50_000_000, vec![user(1).to_vec()]).await;
    // The 40-character hex text form Alys v1 accepts.
    let hex_text =
        deposit(&btc, &federation, 1_234_567, vec![alloy_primitives::hex::encode(user(2)).into_bytes()])
            .await;
    let malformed = [
        (deposit(&btc, &federation, 100_000, vec![]).await, "no_op_return", user(3)),
        (
            deposit(&btc, &federation, 100_000, vec![user(4).to_vec(), user(4).to_vec()]).await,
            "multiple_op_returns",
            user(4),
        ),
        (deposit(&btc, &federation, 100_000, vec![user(5)[..19].to_vec()]).await, "bad_evm_address", user(5)),
        (deposit(&btc, &elsewhere, 100_000, vec![user(6).to_vec()]).await, "no_federation_output", user(6)),
        (deposit(&btc, &federation, 5_000, vec![user(7).to_vec()]).await, "below_minimum", user(7)),
    ];
    mine(&btc, 1).await;

    let minted = wait_status(&node, &good, "minted").await;
    assert_eq!(minted["amountSats"], json!(50_000_000));
    assert_eq!(minted["evmAddress"], json!(user(1)));
    wait_status(&node, &hex_text, "minted").await;
    for (txid, reason, _) in &malformed {
        let rejected = wait_status(&node, txid, "rejected").await;
        assert_eq!(rejected["reason"], json!(reason), "{rejected}");
    }
    // The dashboard lists them as alys_pegins does, the minted one with its status.
    until("the dashboard shows the minted deposit", Duration::from_secs(10), async || {
        let dashboard = raw_call(&node.rpc, "alys_dashboard", json!([])).await.unwrap();
        dashboard["pegins"]["total"].as_u64() >= Some(7)
            && dashboard["pegins"]["recent"].as_array().is_some_and(|recent| {
                recent.iter().any(|p| p["txid"] == json!(good.to_string()) && p["status"] == "minted")
            })
    })
    .await;
    // The exact amount (1 sat = 10^10 wei), once, however many blocks follow.
    assert_eq!(balance(&node, user(1)).await, wei(50_000_000));
    assert_eq!(balance(&node, user(2)).await, wei(1_234_567));
    mine(&btc, 3).await;
    let head =
        raw_call(&node.rpc, "alys_syncStatus", json!([])).await.unwrap()["head"]["height"].as_u64().unwrap();
    crate::support::wait_for_height(&node.client(), head + 3, Duration::from_secs(30)).await;
    assert_eq!(balance(&node, user(1)).await, wei(50_000_000));
    assert_eq!(claims_on_chain(&node, &good).await, 1);
    for (txid, _, address) in &malformed {
        assert_eq!(balance(&node, *address).await, U256::ZERO, "nothing minted for {txid}");
        assert_eq!(claims_on_chain(&node, txid).await, 0);
    }
    assert!(node.metric("alys_pegin_deposits_rejected_total{reason=\"below_minimum\"}").await >= 1.0);
    // The minted outputs are the federation's UTXOs.
    let utxos = raw_call(&node.rpc, "alys_federationUtxos", json!([])).await.unwrap();
    let ours =
        utxos["utxos"].as_array().unwrap().iter().find(|u| u["txid"] == json!(good.to_string())).unwrap();
    assert_eq!(
        (ours["vout"].clone(), ours["amountSats"].clone()),
        (minted["outputs"][0]["vout"].clone(), json!(50_000_000))
    );
    assert_eq!(ours["mintedIn"], minted["mintedIn"]);
    assert_eq!(
        utxos["totalSats"],
        json!(50_000_000 + 1_234_567),
        "the two minted deposits, nothing rejected"
    );
    // Governance hears of each minted output once, with its amount and address.
    let mut notes = Vec::new();
    until("governance is told of the minted deposits", Duration::from_secs(30), async || {
        let status = raw_call(&node.governance_admin, "governance_status", json!([])).await.unwrap();
        notes = status["pegins"].as_array().unwrap().clone();
        notes.len() >= 2
    })
    .await;
    let note = notes.iter().find(|n| n["btcTxid"] == json!(good.to_string())).unwrap();
    assert_eq!(
        (note["vout"].clone(), note["amount"].clone()),
        (minted["outputs"][0]["vout"].clone(), json!(50_000_000))
    );
    assert_eq!(note["evmAddress"].as_str().unwrap().to_lowercase(), user(1).to_string().to_lowercase());
    assert_eq!(notes.iter().filter(|n| n["btcTxid"] == json!(good.to_string())).count(), 1, "once");
    let status = raw_call(&node.rpc, "alys_syncStatus", json!([])).await.unwrap();
    assert_eq!(status["bitcoin"]["connected"], json!(true), "{status}");
    // Paging.
    let page = raw_call(&node.rpc, "alys_pegins", json!([{ "offset": 2, "limit": 3 }])).await.unwrap();
    assert_eq!(page["pegins"].as_array().unwrap().len(), 3);
    assert_eq!(page["total"], json!(7));
    assert_eq!(page["nextOffset"], json!(5));
    let refused = raw_call(&node.rpc, "alys_pegins", json!([{ "limit": 0 }])).await;
    assert!(refused.is_err(), "a zero limit is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bitcoin_reorg_unsees_a_shallow_deposit_and_a_deeper_one_stays_minted_and_alerts() {
    let dir = tempdir();
    let node = DevnetProcess::start_with_args(
        dir.path(),
        &["--bitcoin.block-secs", "0", "--pegin.confirmations", "3"],
    );
    let btc = bitcoin_client(&node).await;
    let federation = federation_address(&node).await;
    let user = Address::repeat_byte(0x42);

    let txid = deposit(&btc, &federation, 20_000_000, vec![user.to_vec()]).await;
    let first = mine(&btc, 1).await[0];
    let seen = wait_status(&node, &txid, "confirming").await;
    assert_eq!(seen["confirmations"], json!(1));
    assert_eq!(seen["requiredConfirmations"], json!(3));

    // The block leaves the best chain before the deposit is deep enough: the deposit is forgotten.
    blocking(&btc, move |c| c.invalidate_block(&first).unwrap()).await;
    until("the deposit is un-seen", Duration::from_secs(30), async || pegin(&node, &txid).await.is_none())
        .await;
    assert_eq!(balance(&node, user).await, U256::ZERO);

    // Mined again (it went back to the mempool) and deep enough: minted once, from its new block.
    mine(&btc, 3).await;
    let minted = wait_status(&node, &txid, "minted").await;
    assert_ne!(minted["bitcoinBlock"], json!(first.to_string()));
    assert_eq!(balance(&node, user).await, wei(20_000_000));

    // A reorg deeper than the confirmations: the deposit stays minted, the alert fires.
    let block: bitcoin::BlockHash = minted["bitcoinBlock"].as_str().unwrap().parse().unwrap();
    blocking(&btc, move |c| c.invalidate_block(&block).unwrap()).await;
    wait_status(&node, &txid, "reorged").await;
    assert!(node.metric("alys_pegin_deep_reorg_total").await >= 1.0);
    // The transaction is mined once more: nothing is minted twice.
    mine(&btc, 4).await;
    until("the follower passes the new blocks", Duration::from_secs(30), async || {
        pegin(&node, &txid).await.is_some_and(|p| p["bitcoinBlock"] != json!(block.to_string()))
    })
    .await;
    let head =
        raw_call(&node.rpc, "alys_syncStatus", json!([])).await.unwrap()["head"]["height"].as_u64().unwrap();
    crate::support::wait_for_height(&node.client(), head + 3, Duration::from_secs(30)).await;
    assert_eq!(balance(&node, user).await, wei(20_000_000));
    assert_eq!(claims_on_chain(&node, &txid).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deposits_to_the_previous_federation_mint_within_the_grace_period_only() {
    let dir = tempdir();
    let node = DevnetProcess::start_with_args(dir.path(), &MANUAL_MINING);
    let btc = bitcoin_client(&node).await;
    let old = federation_address(&node).await;
    let head =
        raw_call(&node.rpc, "alys_syncStatus", json!([])).await.unwrap()["head"]["height"].as_u64().unwrap();

    // A grace of 10 blocks from the rotation, which comes a few blocks ahead.
    let rotate_at = head + 6;
    raw_call(
        &node.governance_admin,
        "governance_propose",
        json!([{ "action": "parameter", "name": "pegin_grace_blocks", "value": "10", "effectiveHeight": head + 4 }]),
    )
    .await
    .unwrap();
    raw_call(
        &node.governance_admin,
        "governance_rotate",
        json!([{ "members": 3, "threshold": 2, "effectiveHeight": rotate_at }]),
    )
    .await
    .unwrap();
    crate::support::wait_for_height(&node.client(), rotate_at + 1, Duration::from_secs(30)).await;
    let new = federation_address(&node).await;
    assert_ne!(new, old, "the rotation took effect");

    // Within the grace period: the old address still mints.
    let within = deposit(&btc, &old, 3_000_000, vec![Address::repeat_byte(0x51).to_vec()]).await;
    mine(&btc, 1).await;
    wait_status(&node, &within, "minted").await;
    assert_eq!(balance(&node, Address::repeat_byte(0x51)).await, wei(3_000_000));

    // After it: rejected, nothing minted; the new address mints.
    crate::support::wait_for_height(&node.client(), rotate_at + 11, Duration::from_secs(30)).await;
    let late = deposit(&btc, &old, 3_000_000, vec![Address::repeat_byte(0x52).to_vec()]).await;
    let current = deposit(&btc, &new, 3_000_000, vec![Address::repeat_byte(0x53).to_vec()]).await;
    mine(&btc, 1).await;
    let rejected = wait_status(&node, &late, "rejected").await;
    assert_eq!(rejected["reason"], json!("federation_expired"));
    wait_status(&node, &current, "minted").await;
    assert_eq!(balance(&node, Address::repeat_byte(0x52)).await, U256::ZERO);
    assert_eq!(balance(&node, Address::repeat_byte(0x53)).await, wei(3_000_000));
}

/// Kills the devnet at `point` on the peg-in path (a crash point aborts it as `kill -9` would), restarts
/// it, and checks the deposit is minted exactly once.
async fn crash_at(point: &str) {
    let dir = tempdir();
    let user = Address::repeat_byte(0x60);
    let txid = {
        let mut node =
            DevnetProcess::try_start_with(dir.path(), &format!("{point}=return"), &MANUAL_MINING).unwrap();
        let btc = bitcoin_client(&node).await;
        let federation = federation_address(&node).await;
        let txid = deposit(&btc, &federation, 7_000_000, vec![user.to_vec()]).await;
        mine(&btc, 1).await;
        until(&format!("the devnet aborts at {point}"), Duration::from_secs(60), async || node.aborted())
            .await;
        txid
    };
    let node = DevnetProcess::start_with_args(dir.path(), &MANUAL_MINING);
    let minted = wait_status(&node, &txid, "minted").await;
    assert_eq!(minted["amountSats"], json!(7_000_000), "{point}");
    let head =
        raw_call(&node.rpc, "alys_syncStatus", json!([])).await.unwrap()["head"]["height"].as_u64().unwrap();
    crate::support::wait_for_height(&node.client(), head + 3, Duration::from_secs(30)).await;
    assert_eq!(balance(&node, user).await, wei(7_000_000), "{point}: minted exactly once");
    assert_eq!(claims_on_chain(&node, &txid).await, 1, "{point}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_seeing_claiming_and_committing_mints_exactly_once() {
    // Seen and recorded, not yet claimed; claimed in a block that is not yet committed. (The points
    // around them, `pegin::seen::before`, `pegin::claim` and `pegin::mint::after`, leave the same
    // states: nothing recorded, or the claim committed.)
    for point in ["pegin::seen::after", "pegin::mint::before"] {
        crash_at(point).await;
    }
}
