//! The regtest node driven over HTTP by `bitcoincore-rpc` (the client the Alys node uses) and by raw
//! JSON-RPC, on a real server bound to 127.0.0.1:0.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use std::{
    collections::{HashMap, HashSet},
    str::FromStr,
};

use alys_devnet_bitcoin::{BitcoinConfig, BitcoinHandle, start};
use base64::Engine;
use bitcoincore_rpc::{
    Auth, Client, RpcApi,
    bitcoin::{
        Address, Amount, EcdsaSighashType, Network, OutPoint, PrivateKey, Sequence, Transaction, TxIn, TxOut,
        Txid, Witness,
        absolute::LockTime,
        consensus::encode::{deserialize, serialize_hex},
        hex::FromHex,
        opcodes::all::{OP_CHECKMULTISIG, OP_PUSHNUM_2, OP_PUSHNUM_3},
        script::Builder,
        secp256k1::{Message, Secp256k1, SecretKey},
        sighash::SighashCache,
        transaction::Version,
    },
    json::ScanTxOutRequest,
};
use serde_json::{Value, json};

/// The regtest genesis block's hash.
const REGTEST_GENESIS: &str = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206";

/// Options on top of the harness's address and credentials.
type Configure = fn(BitcoinConfig) -> BitcoinConfig;

struct Harness {
    runtime: tokio::runtime::Runtime,
    handle: Option<BitcoinHandle>,
    dir: tempfile::TempDir,
}

impl Harness {
    fn new() -> Self {
        Self::with(|config| config)
    }

    fn with(configure: Configure) -> Self {
        Self::open(tempfile::tempdir().unwrap(), configure)
    }

    fn open(dir: tempfile::TempDir, configure: Configure) -> Self {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let config = BitcoinConfig::new(dir.path())
            .with_rpc_addr("127.0.0.1:0".parse().unwrap())
            .with_user_password("alys", "secret");
        let handle = runtime.block_on(start(configure(config))).unwrap();
        Self { runtime, handle: Some(handle), dir }
    }

    fn url(&self) -> String {
        self.handle.as_ref().unwrap().url()
    }

    fn client(&self) -> Client {
        Client::new(&self.url(), Auth::UserPass("alys".into(), "secret".into())).unwrap()
    }

    /// Stops the server and starts a new one on the same data directory.
    fn restart(self) -> Self {
        self.restart_with(|config| config)
    }

    /// Shuts down cleanly and starts again on the same data directory with `configure`.
    fn restart_with(mut self, configure: Configure) -> Self {
        let handle = self.handle.take().unwrap();
        self.runtime.block_on(handle.stop());
        let Self { dir, .. } = self;
        Self::open(dir, configure)
    }

    /// Drops the node with no shutdown, as `kill -9` would, and starts again on the same data directory.
    fn crash_restart(mut self) -> Self {
        let handle = self.handle.take().unwrap();
        let Self { runtime, dir, .. } = self;
        drop(handle);
        runtime.shutdown_timeout(std::time::Duration::from_secs(5));
        Self::open(dir, |config| config)
    }

    fn raw(&self, method: &str, params: Value) -> (i32, Value) {
        raw_call(&self.url(), Some("alys:secret"), method, params)
    }
}

fn raw_call(url: &str, credentials: Option<&str>, method: &str, params: Value) -> (i32, Value) {
    let body = json!({"jsonrpc": "2.0", "id": "test", "method": method, "params": params}).to_string();
    raw_body(url, credentials, body)
}

/// POSTs `body` as it is, as `curl --data-binary` does.
fn raw_body(url: &str, credentials: Option<&str>, body: impl Into<Vec<u8>>) -> (i32, Value) {
    let mut request = minreq::post(url).with_header("Content-Type", "text/plain;").with_body(body);
    if let Some(credentials) = credentials {
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        request = request.with_header("Authorization", format!("Basic {encoded}"));
    }
    let response = request.send().unwrap();
    let value = serde_json::from_slice(response.as_bytes()).unwrap_or(Value::Null);
    (response.status_code, value)
}

fn rpc_error(err: bitcoincore_rpc::Error) -> (i32, String) {
    match err {
        bitcoincore_rpc::Error::JsonRpc(bitcoincore_rpc::jsonrpc::Error::Rpc(err)) => (err.code, err.message),
        other => panic!("not an RPC error: {other:?}"),
    }
}

fn checked(address: Address<bitcoincore_rpc::bitcoin::address::NetworkUnchecked>) -> Address {
    address.require_network(Network::Regtest).unwrap()
}

/// A wallet address with 101 blocks mined to it (one mature coinbase).
fn funded(client: &Client) -> Address {
    let address = checked(client.get_new_address(None, None).unwrap());
    client.generate_to_address(101, &address).unwrap();
    address
}

#[test]
fn cookie_and_user_password_auth() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let config = BitcoinConfig::new(dir.path()).with_rpc_addr("127.0.0.1:0".parse().unwrap());
    let handle = runtime.block_on(start(config)).unwrap();
    let cookie = handle.cookie_path().unwrap().to_path_buf();
    let line = std::fs::read_to_string(&cookie).unwrap();
    assert!(line.starts_with("__cookie__:") && line.len() == "__cookie__:".len() + 64, "{line}");
    let client = Client::new(&handle.url(), Auth::CookieFile(cookie.clone())).unwrap();
    assert_eq!(client.get_block_count().unwrap(), 0);
    assert_eq!(
        raw_call(&handle.url(), Some(&line), "getblockcount", json!([])),
        (200, json!({"jsonrpc": "2.0", "id": "test", "result": 0}))
    );
    assert_eq!(raw_call(&handle.url(), Some("__cookie__:wrong"), "getblockcount", json!([])).0, 401);
    assert_eq!(raw_call(&handle.url(), None, "getblockcount", json!([])).0, 401);
    runtime.block_on(handle.stop());
    assert!(!cookie.exists(), "the cookie is removed on shutdown");

    let harness = Harness::new();
    assert_eq!(harness.raw("getblockcount", json!([])).0, 200);
    assert_eq!(raw_call(&harness.url(), Some("alys:wrong"), "getblockcount", json!([])).0, 401);
    let wrong = Client::new(&harness.url(), Auth::UserPass("alys".into(), "nope".into())).unwrap();
    assert!(wrong.get_block_count().is_err());
    let (_, unknown) = harness.raw("nosuchmethod", json!([]));
    assert_eq!(unknown["error"]["code"], -32601);
}

#[test]
fn json_rpc_1_0_is_answered_as_core_answers() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let config = BitcoinConfig::new(dir.path()).with_rpc_addr("127.0.0.1:0".parse().unwrap());
    let handle = runtime.block_on(start(config)).unwrap();
    let cookie = std::fs::read_to_string(handle.cookie_path().unwrap()).unwrap();
    let url = handle.url();
    let post = |body: &str| raw_body(&url, Some(&cookie), body);

    // Core's `curl` example, byte for byte.
    let curl = r#"{"jsonrpc": "1.0", "id": "curltest", "method": "getblockcount", "params": []}"#;
    assert_eq!(post(curl), (200, json!({"result": 0, "error": null, "id": "curltest"})));
    let (status, answer) = post(r#"{"jsonrpc":"1.0","id":"curltest","method":"getblockhash","params":[1]}"#);
    assert_eq!(
        (status, answer),
        (
            500,
            json!({"result": null, "error": {"code": -8, "message": "Block height out of range"}, "id": "curltest"})
        )
    );
    let (status, answer) = post(r#"{"jsonrpc":"1.0","id":7,"method":"nosuchmethod","params":[]}"#);
    assert_eq!((status, &answer["error"]["code"], &answer["id"]), (404, &json!(-32601), &json!(7)));
    assert!(answer["result"].is_null() && answer.get("jsonrpc").is_none(), "{answer}");

    // No version at all is 1.0 too; without an id the answer still comes, with a null id.
    assert_eq!(
        post(r#"{"id":["any","json"],"method":"getblockcount","params":[]}"#),
        (200, json!({"result": 0, "error": null, "id": ["any", "json"]}))
    );
    assert_eq!(
        post(r#"{"method":"getbestblockhash"}"#),
        (200, json!({"result": REGTEST_GENESIS, "error": null, "id": null}))
    );

    // 2.0 keeps 2.0: HTTP 200 even for an error.
    let (status, answer) = post(r#"{"jsonrpc":"2.0","id":1,"method":"getblockhash","params":[1]}"#);
    assert_eq!(status, 200);
    assert_eq!((&answer["jsonrpc"], &answer["error"]["code"]), (&json!("2.0"), &json!(-8)));
    assert!(answer.get("result").is_none(), "{answer}");

    // A batch: HTTP 200, each answer in its request's version, in order.
    let (status, answers) = post(
        r#"[{"jsonrpc":"1.0","id":"a","method":"getblockcount"},
            {"jsonrpc":"2.0","id":"a","method":"getblockhash","params":[1]},
            {"jsonrpc":"2.0","method":"getblockcount"},
            {"id":"c","method":"getblockhash","params":[1]}]"#,
    );
    assert_eq!(status, 200);
    assert_eq!(
        answers,
        json!([
            {"result": 0, "error": null, "id": "a"},
            {"jsonrpc": "2.0", "id": "a", "error": {"code": -8, "message": "Block height out of range"}},
            {"result": null, "error": {"code": -8, "message": "Block height out of range"}, "id": "c"},
        ])
    );

    // Not JSON: Core's legacy parse error.
    let (status, answer) = post("getblockcount");
    assert_eq!((status, &answer["error"]["code"], &answer["id"]), (500, &json!(-32700), &Value::Null));

    // `bitcoincore-rpc` (2.0) is unaffected.
    let client = Client::new(&url, Auth::CookieFile(handle.cookie_path().unwrap().to_path_buf())).unwrap();
    assert_eq!(client.get_block_count().unwrap(), 0);
    runtime.block_on(handle.stop());
}

#[test]
fn coinbase_matures_after_100_blocks() {
    let harness = Harness::new();
    let client = harness.client();
    let address = checked(client.get_new_address(None, None).unwrap());
    client.generate_to_address(100, &address).unwrap();
    assert_eq!(client.get_balance(None, None).unwrap(), Amount::ZERO);
    assert!(client.list_unspent(None, None, None, None, None).unwrap().is_empty());
    client.generate_to_address(1, &address).unwrap();
    assert_eq!(client.get_balance(None, None).unwrap(), Amount::from_int_btc(50));
    let info = client.get_blockchain_info().unwrap();
    assert_eq!((info.chain, info.blocks, info.headers), (Network::Regtest, 101, 101));
    assert_eq!(info.best_block_hash, client.get_best_block_hash().unwrap());
    assert_eq!(client.get_block_hash(101).unwrap(), info.best_block_hash);
    assert!(info.difficulty > 4.6e-10 && info.difficulty < 4.7e-10, "{}", info.difficulty);
    assert_eq!(info.chain_work.last(), Some(&0xcc)); // 102 blocks of work 2
    let (_, err) = harness.raw("getblockhash", json!([102]));
    assert_eq!(err["error"]["code"], -8);
    // The halving: block 150's coinbase pays 25 BTC.
    client.generate_to_address(49, &address).unwrap();
    let block = client.get_block(&client.get_block_hash(150).unwrap()).unwrap();
    assert_eq!(block.txdata[0].output[0].value, Amount::from_sat(2_500_000_000));
    assert_eq!(block.bip34_block_height().unwrap(), 150);
}

#[test]
fn peg_in_flow_and_mempool_rules() {
    let harness = Harness::new();
    let client = harness.client();
    let miner = funded(&client);
    let federation = checked(client.get_new_address(None, None).unwrap());

    // A plain payment.
    let paid = client
        .send_to_address(&federation, Amount::from_int_btc(1), None, None, None, None, None, None)
        .unwrap();
    assert!(client.get_raw_mempool().unwrap().contains(&paid));
    let entry = client.get_mempool_entry(&paid).unwrap();
    assert!(entry.fees.base >= Amount::from_sat(entry.vsize));

    // The peg-in shape: [{federation: amount}, {data: evm address}], funded, signed, sent.
    let evm = "f39fd6e51aad88f6f4ce6ab8827279cfffb92266";
    let hex: String = client
        .call("createrawtransaction", &[json!([]), json!([{federation.to_string(): 2.5}, {"data": evm}])])
        .unwrap();
    // Not replaceable, so a double spend is a conflict whatever it pays.
    let options =
        bitcoincore_rpc::json::FundRawTransactionOptions { replaceable: Some(false), ..Default::default() };
    let funded_tx = client.fund_raw_transaction(hex.as_str(), Some(&options), None).unwrap();
    assert!(funded_tx.change_position >= 0);
    let signed = client.sign_raw_transaction_with_wallet(&funded_tx.hex, None, None).unwrap();
    assert!(signed.complete, "{:?}", signed.errors);
    let tx: Transaction = deserialize(&signed.hex).unwrap();
    assert!(tx.input.iter().all(|input| input.sequence == Sequence::ENABLE_LOCKTIME_NO_RBF));
    assert!(client.test_mempool_accept(&[&signed.hex]).unwrap()[0].allowed);
    let txid = client.send_raw_transaction(&signed.hex).unwrap();
    assert_eq!(txid, tx.compute_txid());

    // Double spend of the same input: txn-mempool-conflict.
    let mut conflict = tx.clone();
    conflict.output[0].value = Amount::from_btc(2.4).unwrap();
    let signed_conflict = client.sign_raw_transaction_with_wallet(&conflict, None, None).unwrap();
    let (code, message) = rpc_error(client.send_raw_transaction(&signed_conflict.hex).unwrap_err());
    assert_eq!((code, message.as_str()), (-26, "txn-mempool-conflict"));

    let hashes = client.generate_to_address(1, &miner).unwrap();
    assert!(client.get_raw_mempool().unwrap().is_empty());
    let info = client.get_raw_transaction_info(&txid, None).unwrap();
    assert_eq!((info.blockhash, info.confirmations), (Some(hashes[0]), Some(1)));
    assert_eq!(info.vout[1].script_pub_key.hex, Vec::<u8>::from_hex(&format!("6a14{evm}")).unwrap());
    assert_eq!(info.vout[0].script_pub_key.address.clone().unwrap().assume_checked(), federation);
    let in_block = client.get_raw_transaction_info(&txid, Some(&hashes[0])).unwrap();
    assert_eq!(in_block.in_active_chain, Some(true));
    let (_, block) = harness.raw("getblock", json!([hashes[0].to_string(), 2]));
    let txs = block["result"]["tx"].as_array().unwrap();
    let found = txs.iter().find(|t| t["txid"] == txid.to_string()).unwrap();
    assert_eq!(found["vout"][1]["scriptPubKey"]["type"], "nulldata");
    assert_eq!(found["vout"][1]["scriptPubKey"]["asm"], format!("OP_RETURN {evm}"));
    assert_eq!(found["fee"].as_f64().unwrap(), funded_tx.fee.to_btc());
    assert_eq!(client.get_block_info(&hashes[0]).unwrap().tx.len(), 3);
    assert_eq!(client.get_received_by_address(&federation, None).unwrap(), Amount::from_btc(3.5).unwrap());

    // Already confirmed: -27; its inputs spent: -25 missing inputs.
    let (code, _) = rpc_error(client.send_raw_transaction(&signed.hex).unwrap_err());
    assert_eq!(code, -27);
    let (code, message) = rpc_error(client.send_raw_transaction(&signed_conflict.hex).unwrap_err());
    assert_eq!((code, message.as_str()), (-25, "bad-txns-inputs-missingorspent"));
    let conflict: Transaction = deserialize(&signed_conflict.hex).unwrap();
    assert_eq!(test_accept(&harness, &conflict)["reject-reason"], "missing-inputs");

    // gettxout: the federation output is unspent, shaped as Core's.
    let out = client.get_tx_out(&txid, 0, Some(true)).unwrap().unwrap();
    assert_eq!((out.value, out.confirmations, out.coinbase), (Amount::from_btc(2.5).unwrap(), 1, false));
    assert!(
        client
            .get_tx_out(&tx.input[0].previous_output.txid, tx.input[0].previous_output.vout, None)
            .unwrap()
            .is_none()
    );

    // The wallet's view.
    let wallet_tx = client.get_transaction(&txid, None).unwrap();
    assert_eq!(wallet_tx.info.confirmations, 1);
    assert_eq!(wallet_tx.fee.unwrap(), -funded_tx.fee.to_signed().unwrap());

    // Below the minimum relay fee.
    let coin = client.list_unspent(Some(1), None, Some(&[&federation]), None, None).unwrap()[0].clone();
    let cheap: String = client
        .call(
            "createrawtransaction",
            &[
                json!([{"txid": coin.txid.to_string(), "vout": coin.vout}]),
                json!({miner.to_string(): coin.amount.to_btc()}),
            ],
        )
        .unwrap();
    let cheap = client.sign_raw_transaction_with_wallet(cheap.as_str(), None, None).unwrap();
    let (code, message) = rpc_error(client.send_raw_transaction(&cheap.hex).unwrap_err());
    assert_eq!(code, -26);
    assert!(message.starts_with("min relay fee not met, 0 < "), "{message}");
}

#[test]
fn bad_scripts_are_refused_and_multisig_verifies() {
    let harness = Harness::new();
    let client = harness.client();
    let miner = funded(&client);
    let secp = Secp256k1::new();

    // A signature over other data does not verify (libbitcoinconsensus).
    let target = checked(client.get_new_address(None, None).unwrap());
    let txid =
        client.send_to_address(&target, Amount::from_int_btc(1), None, None, None, None, None, None).unwrap();
    let raw = client.get_raw_transaction(&txid, None).unwrap();
    let vout = raw.output.iter().position(|o| o.script_pubkey == target.script_pubkey()).unwrap() as u32;
    let mut spend = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn { previous_output: OutPoint { txid, vout }, ..Default::default() }],
        output: vec![TxOut { value: Amount::from_btc(0.999).unwrap(), script_pubkey: miner.script_pubkey() }],
    };
    let signed: Transaction =
        deserialize(&client.sign_raw_transaction_with_wallet(&spend, None, None).unwrap().hex).unwrap();
    let mut forged = signed.clone();
    forged.output[0].value = Amount::from_btc(0.998).unwrap();
    let (code, message) = rpc_error(client.send_raw_transaction(&forged).unwrap_err());
    assert_eq!(code, -26);
    assert!(message.starts_with("mandatory-script-verify-flag-failed"), "{message}");
    spend.input[0].witness = Witness::new();
    assert!(client.send_raw_transaction(&spend).is_err());
    client.send_raw_transaction(&signed).unwrap();

    // A P2WSH 2-of-3 multisig: funded by the wallet, spent with two of the three keys.
    let keys: Vec<SecretKey> = (1u8..=3).map(|i| SecretKey::from_slice(&[i; 32]).unwrap()).collect();
    let pubkeys: Vec<_> =
        keys.iter().map(|k| PrivateKey::new(*k, Network::Regtest).public_key(&secp)).collect();
    let witness_script = Builder::new()
        .push_opcode(OP_PUSHNUM_2)
        .push_key(&pubkeys[0])
        .push_key(&pubkeys[1])
        .push_key(&pubkeys[2])
        .push_opcode(OP_PUSHNUM_3)
        .push_opcode(OP_CHECKMULTISIG)
        .into_script();
    let federation = Address::p2wsh(&witness_script, Network::Regtest);
    let deposit = client
        .send_to_address(&federation, Amount::from_int_btc(2), None, None, None, None, None, None)
        .unwrap();
    client.generate_to_address(1, &miner).unwrap();
    let deposit_tx = client.get_raw_transaction(&deposit, None).unwrap();
    let vout = deposit_tx.output.iter().position(|o| o.script_pubkey == federation.script_pubkey()).unwrap();
    let value = deposit_tx.output[vout].value;
    let scanned =
        client.scan_tx_out_set_blocking(&[ScanTxOutRequest::Single(format!("addr({federation})"))]).unwrap();
    assert_eq!((scanned.unspents.len(), scanned.total_amount), (1, value));
    let mut spend = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint { txid: deposit, vout: vout as u32 },
            sequence: Sequence::MAX,
            ..Default::default()
        }],
        output: vec![TxOut { value: value - Amount::from_sat(1_000), script_pubkey: miner.script_pubkey() }],
    };
    let sighash = SighashCache::new(&spend)
        .p2wsh_signature_hash(0, &witness_script, value, EcdsaSighashType::All)
        .unwrap();
    let sign = |key: &SecretKey| {
        let sig = secp.sign_ecdsa(&Message::from(sighash), key);
        bitcoincore_rpc::bitcoin::ecdsa::Signature { signature: sig, sighash_type: EcdsaSighashType::All }
            .to_vec()
    };
    // One signature is not enough.
    spend.input[0].witness = Witness::from_slice(&[vec![], sign(&keys[0]), witness_script.to_bytes()]);
    let (code, _) = rpc_error(client.send_raw_transaction(&spend).unwrap_err());
    assert_eq!(code, -26);
    spend.input[0].witness =
        Witness::from_slice(&[vec![], sign(&keys[0]), sign(&keys[2]), witness_script.to_bytes()]);
    let spent = client.send_raw_transaction(&spend).unwrap();
    client.generate_to_address(1, &miner).unwrap();
    assert_eq!(client.get_raw_transaction_info(&spent, None).unwrap().confirmations, Some(1));
}

#[test]
fn invalidate_and_reconsider_move_transactions() {
    let harness = Harness::new();
    let client = harness.client();
    let miner = funded(&client);
    let other = checked(client.get_new_address(None, None).unwrap());
    let txid =
        client.send_to_address(&other, Amount::from_int_btc(3), None, None, None, None, None, None).unwrap();
    let tip = client.generate_to_address(1, &miner).unwrap()[0];
    assert!(client.get_raw_mempool().unwrap().is_empty());

    client.invalidate_block(&tip).unwrap();
    assert_eq!(client.get_block_count().unwrap(), 101);
    assert_eq!(client.get_raw_mempool().unwrap(), vec![txid], "the transaction is back in the mempool");
    assert_eq!(client.get_block_header_info(&tip).unwrap().confirmations, -1);

    // A longer branch mined meanwhile keeps the active chain when the old tip is reconsidered.
    let replacement = client.generate_to_address(2, &miner).unwrap();
    assert!(client.get_raw_mempool().unwrap().is_empty(), "mined again on the new branch");
    client.reconsider_block(&tip).unwrap();
    assert_eq!(client.get_best_block_hash().unwrap(), replacement[1], "more work stays active");

    client.invalidate_block(&replacement[0]).unwrap();
    assert_eq!(client.get_best_block_hash().unwrap(), tip, "the old branch is back");
    assert_eq!(client.get_raw_transaction_info(&txid, None).unwrap().blockhash, Some(tip));
    client.reconsider_block(&replacement[0]).unwrap();
    assert_eq!(client.get_best_block_hash().unwrap(), replacement[1]);

    // A transaction whose input the new branch spends is dropped.
    let coin = client.list_unspent(Some(1), None, Some(&[&other]), None, None).unwrap()[0].clone();
    let outputs = HashMap::from([(miner.to_string(), coin.amount - Amount::from_sat(500))]);
    let input =
        bitcoincore_rpc::json::CreateRawTransactionInput { txid: coin.txid, vout: coin.vout, sequence: None };
    let first = client.create_raw_transaction(std::slice::from_ref(&input), &outputs, None, None).unwrap();
    let first = client.sign_raw_transaction_with_wallet(&first, None, None).unwrap();
    let first_id = client.send_raw_transaction(&first.hex).unwrap();
    let mined = client.generate_to_address(1, &miner).unwrap()[0];
    client.invalidate_block(&mined).unwrap();
    assert_eq!(client.get_raw_mempool().unwrap(), vec![first_id]);
    let outputs = HashMap::from([(miner.to_string(), coin.amount - Amount::from_sat(900))]);
    let second = client.create_raw_transaction(&[input], &outputs, None, None).unwrap();
    let second = client.sign_raw_transaction_with_wallet(&second, None, None).unwrap();
    let second_tx: Transaction = deserialize(&second.hex).unwrap();
    let generated: Value = client
        .call("generateblock", &[json!(miner.to_string()), json!([serialize_hex(&second_tx)])])
        .unwrap();
    let block = generated["hash"].as_str().unwrap().parse().unwrap();
    assert_eq!(client.get_best_block_hash().unwrap(), block);
    // The mempool copy of `first` conflicts with `second`, which is now confirmed.
    assert!(client.get_raw_mempool().unwrap().is_empty(), "the conflicting transaction is dropped");
}

#[test]
fn restart_keeps_chain_utxos_and_wallet() {
    let harness = Harness::new();
    let client = harness.client();
    let miner = funded(&client);
    let kept = checked(client.get_new_address(None, None).unwrap());
    let txid =
        client.send_to_address(&kept, Amount::from_int_btc(7), None, None, None, None, None, None).unwrap();
    let tip = client.generate_to_address(1, &miner).unwrap()[0];
    client.invalidate_block(&client.get_block_hash(100).unwrap()).unwrap();
    client.reconsider_block(&client.get_block_hash(99).unwrap()).unwrap();
    let balance = client.get_balance(None, None).unwrap();
    let next = checked(client.get_new_address(None, None).unwrap());

    let harness = harness.restart();
    let client = harness.client();
    assert_eq!(client.get_best_block_hash().unwrap(), tip);
    assert_eq!(client.get_block_count().unwrap(), 102);
    assert_eq!(client.get_balance(None, None).unwrap(), balance);
    assert!(
        client.get_tx_out(&txid, 0, None).unwrap().is_some()
            || client.get_tx_out(&txid, 1, None).unwrap().is_some()
    );
    assert_eq!(client.get_received_by_address(&kept, None).unwrap(), Amount::from_int_btc(7));
    assert_ne!(checked(client.get_new_address(None, None).unwrap()), next, "the key counter survives");
}

#[test]
fn core_result_shapes() {
    let harness = Harness::new();
    let client = harness.client();
    let miner = funded(&client);
    let network = client.get_network_info().unwrap();
    assert!(network.version >= 250000);
    let header = client.get_block_header_info(&client.get_block_hash(1).unwrap()).unwrap();
    assert_eq!((header.height, header.confirmations, header.n_tx), (1, 101, 1));
    assert_eq!(header.next_block_hash, Some(client.get_block_hash(2).unwrap()));
    let genesis = client.get_block_header_info(&client.get_block_hash(0).unwrap()).unwrap();
    assert_eq!(genesis.hash.to_string(), REGTEST_GENESIS);
    assert_eq!(genesis.bits, "207fffff");
    let raw_header = client.get_block_header(&genesis.hash).unwrap();
    assert_eq!(raw_header.block_hash(), genesis.hash);
    let fee = client.estimate_smart_fee(6, None).unwrap();
    assert!(fee.fee_rate.is_some());
    let unspent = client.list_unspent(None, None, None, None, None).unwrap();
    assert_eq!(unspent.len(), 1);
    assert_eq!(unspent[0].amount, Amount::from_int_btc(50));

    // Core's help examples, as raw calls: decoderawtransaction "hexstring", getblock "hash" 0,
    // gettxout "txid" 1, getblockheader "hash" false, getmempoolinfo, testmempoolaccept ["hex"].
    let coinbase = client.get_block(&client.get_block_hash(1).unwrap()).unwrap().txdata[0].clone();
    let (_, decoded) = harness.raw("decoderawtransaction", json!([serialize_hex(&coinbase)]));
    let decoded = &decoded["result"];
    assert_eq!(decoded["txid"], coinbase.compute_txid().to_string());
    assert!(decoded["vin"][0]["coinbase"].is_string());
    assert_eq!(decoded["vout"][0]["scriptPubKey"]["type"], "witness_v0_keyhash");
    assert_eq!(decoded["vout"][0]["scriptPubKey"]["address"], miner.to_string());
    assert_eq!(decoded["vout"][0]["value"], json!(50.0));
    let (_, block) = harness.raw("getblock", json!({"blockhash": header.hash.to_string(), "verbosity": 0}));
    assert!(block["result"].as_str().unwrap().starts_with("00000020"));
    let (_, out) = harness.raw("gettxout", json!([coinbase.compute_txid().to_string(), 0]));
    assert_eq!(out["result"]["coinbase"], true);
    let (_, info) = harness.raw("getmempoolinfo", json!([]));
    assert_eq!(info["result"]["size"], 0);
    let (_, missing) =
        harness.raw("getrawtransaction", json!([Txid::from_str(&"11".repeat(32)).unwrap().to_string()]));
    assert_eq!(missing["error"]["code"], -5);
    let (_, bad) = harness.raw("sendrawtransaction", json!(["00ff"]));
    assert_eq!(bad["error"]["code"], -22);
    let (_, unknown_block) = harness.raw("getblock", json!(["00".repeat(32)]));
    assert_eq!(unknown_block["error"]["code"], -5);
    let (_, low) = harness.raw("sendtoaddress", json!([miner.to_string(), 1_000_000]));
    assert_eq!(low["error"]["code"], -6);
    let (_, bad_address) = harness.raw("getreceivedbyaddress", json!(["bc1qnotregtest"]));
    assert_eq!(bad_address["error"]["code"], -5);
}

const RBF: Sequence = Sequence::ENABLE_RBF_NO_LOCKTIME;
/// `0xfffffffe`: final for lock time, not signalling BIP125.
const NO_RBF: Sequence = Sequence::ENABLE_LOCKTIME_NO_RBF;

fn sats(n: u64) -> Amount {
    Amount::from_sat(n)
}

fn out(txid: Txid, vout: u32) -> OutPoint {
    OutPoint { txid, vout }
}

/// The wallet's confirmed spendable coins.
fn confirmed_coins(client: &Client) -> Vec<(OutPoint, Amount)> {
    let unspent = client.list_unspent(Some(1), None, None, None, None).unwrap();
    unspent.iter().map(|coin| (out(coin.txid, coin.vout), coin.amount)).collect()
}

/// One output of `value` to `to`.
fn pay(to: &Address, value: Amount) -> Vec<TxOut> {
    vec![TxOut { value, script_pubkey: to.script_pubkey() }]
}

/// A transaction spending `inputs`, each with `sequence`, to `outputs`, signed by the wallet.
fn signed(client: &Client, inputs: &[OutPoint], sequence: Sequence, outputs: Vec<TxOut>) -> Transaction {
    let tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: inputs
            .iter()
            .map(|outpoint| TxIn { previous_output: *outpoint, sequence, ..Default::default() })
            .collect(),
        output: outputs,
    };
    let signed = client.sign_raw_transaction_with_wallet(&tx, None, None).unwrap();
    assert!(signed.complete, "{:?}", signed.errors);
    deserialize(&signed.hex).unwrap()
}

fn send(client: &Client, tx: &Transaction) -> Txid {
    client.send_raw_transaction(tx).unwrap()
}

fn refused(client: &Client, tx: &Transaction) -> (i32, String) {
    rpc_error(client.send_raw_transaction(tx).unwrap_err())
}

/// `testmempoolaccept`'s verdict on `tx`.
fn test_accept(harness: &Harness, tx: &Transaction) -> Value {
    let (_, answer) = harness.raw("testmempoolaccept", json!([[serialize_hex(tx)]]));
    answer["result"][0].clone()
}

/// Satoshis as Core's `FormatMoney` prints amounts under 0.01 BTC.
fn money(sats: u64) -> String {
    format!("0.{sats:08}").trim_end_matches('0').to_owned()
}

fn mempool(client: &Client) -> HashSet<Txid> {
    client.get_raw_mempool().unwrap().into_iter().collect()
}

#[test]
fn the_mempool_survives_a_clean_restart() {
    let harness = Harness::new();
    let client = harness.client();
    funded(&client);
    let to = checked(client.get_new_address(None, None).unwrap());
    let parent =
        client.send_to_address(&to, Amount::from_int_btc(1), None, None, None, None, None, None).unwrap();
    // Spends the parent's change: loading must bring them back parents first.
    let child =
        client.send_to_address(&to, Amount::from_int_btc(2), None, None, None, None, None, None).unwrap();
    assert_eq!(client.get_mempool_entry(&child).unwrap().depends, vec![parent]);
    let time = client.get_mempool_entry(&parent).unwrap().time;

    let harness = harness.restart();
    let client = harness.client();
    assert_eq!(mempool(&client), HashSet::from([parent, child]));
    assert_eq!(client.get_mempool_entry(&parent).unwrap().time, time, "the entry time is kept");
    let (_, info) = harness.raw("getmempoolinfo", json!([]));
    assert_eq!((&info["result"]["loaded"], &info["result"]["size"]), (&json!(true), &json!(2)));
    assert!(harness.dir.path().join("mempool.dat").exists());
    let miner = checked(client.get_new_address(None, None).unwrap());
    let block = client.generate_to_address(1, &miner).unwrap()[0];
    assert!(client.get_raw_mempool().unwrap().is_empty());
    for txid in [parent, child] {
        assert_eq!(client.get_raw_transaction_info(&txid, None).unwrap().blockhash, Some(block));
    }
}

#[test]
fn saved_transactions_that_no_longer_validate_are_dropped_and_a_crash_loses_the_unsaved() {
    let harness = Harness::new();
    let client = harness.client();
    let miner = funded(&client);
    client.generate_to_address(1, &miner).unwrap();
    let coins = confirmed_coins(&client);
    let ((x, x_value), (y, y_value)) = (coins[0], coins[1]);
    let to = checked(client.get_new_address(None, None).unwrap());
    let a = send(&client, &signed(&client, &[x], RBF, pay(&to, x_value - sats(1_000))));
    send(&client, &signed(&client, &[out(a, 0)], RBF, pay(&to, x_value - sats(2_000))));
    let c = send(&client, &signed(&client, &[y], RBF, pay(&to, y_value - sats(1_000))));
    let (_, saved) = harness.raw("savemempool", json!([]));
    let file = harness.dir.path().join("mempool.dat");
    assert_eq!(saved["result"]["filename"], file.display().to_string());
    assert!(file.exists());

    // A block spends `a`'s input in another transaction: `a` and its child leave the mempool.
    let b = signed(&client, &[x], NO_RBF, pay(&miner, x_value - sats(5_000)));
    let (_, generated) = harness.raw("generateblock", json!([miner.to_string(), [serialize_hex(&b)]]));
    assert!(generated["error"].is_null(), "{generated}");
    assert_eq!(client.get_raw_mempool().unwrap(), vec![c]);

    // The file still holds all three; loading drops the two whose input is gone.
    let harness = harness.crash_restart();
    let client = harness.client();
    assert_eq!(client.get_raw_mempool().unwrap(), vec![c]);

    // A kill loses what was not saved since.
    let lost =
        client.send_to_address(&to, Amount::from_int_btc(1), None, None, None, None, None, None).unwrap();
    let harness = harness.crash_restart();
    let client = harness.client();
    assert_eq!(client.get_raw_mempool().unwrap(), vec![c], "{lost} was never saved");

    // Without -persistmempool nothing is loaded.
    let harness = harness.restart_with(|config| config.with_persist_mempool(false));
    assert!(harness.client().get_raw_mempool().unwrap().is_empty());
}

#[test]
fn a_signalling_transaction_is_replaced_with_its_descendants() {
    let harness = Harness::new();
    let client = harness.client();
    let miner = funded(&client);
    let (x, value) = confirmed_coins(&client)[0];
    let to = checked(client.get_new_address(None, None).unwrap());
    let original_id = send(&client, &signed(&client, &[x], RBF, pay(&to, value - sats(1_000))));
    // Descendants need not signal: they go with what they spend.
    let child = signed(&client, &[out(original_id, 0)], Sequence::MAX, pay(&to, value - sats(2_000)));
    let child_id = send(&client, &child);
    let grandchild = signed(&client, &[out(child_id, 0)], Sequence::MAX, pay(&to, value - sats(3_000)));
    let grandchild_id = send(&client, &grandchild);
    assert!(client.get_mempool_entry(&grandchild_id).unwrap().bip125_replaceable, "inherited");
    let old_vsize = client.get_mempool_entry(&original_id).unwrap().vsize;

    // Rule 6: a higher fee rate than the transaction replaced.
    let low = signed(&client, &[x], RBF, pay(&miner, value - sats(900)));
    let low_rate = 900_000 / low.vsize() as u64;
    let expected = format!(
        "insufficient fee, rejecting replacement {}; new feerate 0.{low_rate:08} BTC/kvB <= old feerate 0.{:08} BTC/kvB",
        low.compute_txid(),
        1_000_000 / old_vsize
    );
    assert_eq!(refused(&client, &low), (-26, expected));
    assert_eq!(test_accept(&harness, &low)["reject-reason"], "insufficient fee");
    assert_eq!(test_accept(&harness, &low)["allowed"], false);
    // Rule 3: more than everything evicted (3,000 sat).
    let less = signed(&client, &[x], RBF, pay(&miner, value - sats(2_500)));
    let expected = format!(
        "insufficient fee, rejecting replacement {}, less fees than conflicting txs; 0.000025 < 0.00003",
        less.compute_txid()
    );
    assert_eq!(refused(&client, &less), (-26, expected));
    // Rule 4: and its own size on top at 1 sat/vB.
    let thin = signed(&client, &[x], RBF, pay(&miner, value - sats(3_050)));
    let expected = format!(
        "insufficient fee, rejecting replacement {}, not enough additional fees to relay; 0.0000005 < {}",
        thin.compute_txid(),
        money(thin.vsize() as u64)
    );
    assert_eq!(refused(&client, &thin), (-26, expected));
    assert_eq!(test_accept(&harness, &thin)["reject-reason"], "insufficient fee");

    let replacement = signed(&client, &[x], RBF, pay(&miner, value - sats(10_000)));
    assert_eq!(test_accept(&harness, &replacement)["allowed"], true);
    assert_eq!(client.get_raw_mempool().unwrap().len(), 3, "testmempoolaccept changes nothing");
    let replacement_id = send(&client, &replacement);
    assert_eq!(client.get_raw_mempool().unwrap(), vec![replacement_id]);
    let block = client.generate_to_address(1, &miner).unwrap()[0];
    assert_eq!(client.get_raw_transaction_info(&replacement_id, None).unwrap().blockhash, Some(block));
    for gone in [original_id, child_id, grandchild_id] {
        let (_, answer) = harness.raw("getrawtransaction", json!([gone.to_string()]));
        assert_eq!(answer["error"]["code"], -5, "{gone}");
    }
}

#[test]
fn non_signalling_transactions_are_replaced_only_with_full_rbf() {
    let harness = Harness::new();
    let client = harness.client();
    let miner = funded(&client);
    client.generate_to_address(1, &miner).unwrap();
    let coins = confirmed_coins(&client);
    let ((x, x_value), (y, y_value)) = (coins[0], coins[1]);
    let to = checked(client.get_new_address(None, None).unwrap());
    let original_id = send(&client, &signed(&client, &[x], NO_RBF, pay(&to, x_value - sats(1_000))));
    let conflict = signed(&client, &[x], RBF, pay(&miner, x_value - sats(50_000)));
    assert_eq!(refused(&client, &conflict), (-26, "txn-mempool-conflict".to_owned()));
    assert_eq!(test_accept(&harness, &conflict)["reject-reason"], "txn-mempool-conflict");

    // Core 25 asks the replaced transaction itself to signal; a signalling parent is not enough, even
    // though `bip125-replaceable` reports the inherited signal.
    let parent_id = send(&client, &signed(&client, &[y], RBF, pay(&to, y_value - sats(1_000))));
    let child = signed(&client, &[out(parent_id, 0)], NO_RBF, pay(&to, y_value - sats(2_000)));
    let child_id = send(&client, &child);
    assert!(client.get_mempool_entry(&child_id).unwrap().bip125_replaceable);
    let child_conflict = signed(&client, &[out(parent_id, 0)], RBF, pay(&miner, y_value - sats(20_000)));
    assert_eq!(refused(&client, &child_conflict), (-26, "txn-mempool-conflict".to_owned()));
    let (_, info) = harness.raw("getmempoolinfo", json!([]));
    assert_eq!(info["result"]["fullrbf"], false);

    // With -mempoolfullrbf both go through (the pool comes back from mempool.dat).
    let harness = harness.restart_with(|config| config.with_full_rbf(true));
    let client = harness.client();
    assert_eq!(mempool(&client), HashSet::from([original_id, parent_id, child_id]));
    let (_, info) = harness.raw("getmempoolinfo", json!([]));
    assert_eq!(info["result"]["fullrbf"], true);
    let conflict_id = send(&client, &conflict);
    let child_conflict_id = send(&client, &child_conflict);
    assert_eq!(mempool(&client), HashSet::from([conflict_id, parent_id, child_conflict_id]));
}

#[test]
fn replacements_add_no_unconfirmed_inputs_and_evict_at_most_100() {
    let harness = Harness::new();
    let client = harness.client();
    let miner = funded(&client);
    client.generate_to_address(1, &miner).unwrap();
    let coins = confirmed_coins(&client);
    let ((x, x_value), (y, y_value)) = (coins[0], coins[1]);
    let to = checked(client.get_new_address(None, None).unwrap());
    let piece = sats((x_value.to_sat() - 10_000) / 100);
    let outputs = vec![TxOut { value: piece, script_pubkey: to.script_pubkey() }; 100];
    let original_id = send(&client, &signed(&client, &[x], RBF, outputs));
    let other_id = send(&client, &signed(&client, &[y], RBF, pay(&to, y_value - sats(1_000))));

    // Rule 2: no unconfirmed input the replaced transaction did not spend.
    let inputs = [x, out(other_id, 0)];
    let adds = signed(&client, &inputs, RBF, pay(&miner, x_value + y_value - sats(200_000)));
    let expected = format!(
        "replacement-adds-unconfirmed, replacement {} adds unconfirmed input, idx 1",
        adds.compute_txid()
    );
    assert_eq!(refused(&client, &adds), (-26, expected));
    assert_eq!(test_accept(&harness, &adds)["reject-reason"], "replacement-adds-unconfirmed");
    // Nor an output of the transaction it replaces.
    let spends =
        signed(&client, &[x, out(original_id, 0)], RBF, pay(&miner, x_value + piece - sats(200_000)));
    let expected = format!(
        "bad-txns-spends-conflicting-tx, {} spends conflicting transaction {original_id}",
        spends.compute_txid()
    );
    assert_eq!(refused(&client, &spends), (-26, expected));

    // Rule 5: the original and 99 children are 100, the most one replacement may evict.
    let children: Vec<Transaction> = (0..100)
        .map(|vout| signed(&client, &[out(original_id, vout)], RBF, pay(&to, piece - sats(200))))
        .collect();
    for child in &children[..99] {
        send(&client, child);
    }
    let replacement = signed(&client, &[x], RBF, pay(&miner, x_value - sats(200_000)));
    assert_eq!(test_accept(&harness, &replacement)["allowed"], true);
    send(&client, &children[99]);
    let expected = format!(
        "too many potential replacements, rejecting replacement {}; too many potential replacements (101 > 100)",
        replacement.compute_txid()
    );
    assert_eq!(refused(&client, &replacement), (-26, expected));
    assert_eq!(test_accept(&harness, &replacement)["reject-reason"], "too many potential replacements");
    assert_eq!(client.get_raw_mempool().unwrap().len(), 102);
}

#[test]
fn wallet_transactions_signal_replaceability_by_default() {
    let harness = Harness::new();
    let client = harness.client();
    let miner = funded(&client);
    let to = checked(client.get_new_address(None, None).unwrap());
    let sequences = |txid: &Txid| -> Vec<Sequence> {
        client.get_raw_transaction(txid, None).unwrap().input.iter().map(|input| input.sequence).collect()
    };
    let default =
        client.send_to_address(&to, Amount::from_int_btc(1), None, None, None, None, None, None).unwrap();
    assert!(sequences(&default).iter().all(|sequence| *sequence == RBF));
    assert!(client.get_mempool_entry(&default).unwrap().bip125_replaceable);
    let (_, wallet_tx) = harness.raw("gettransaction", json!([default.to_string()]));
    assert_eq!(wallet_tx["result"]["bip125-replaceable"], "yes");
    client.generate_to_address(1, &miner).unwrap();
    let (_, wallet_tx) = harness.raw("gettransaction", json!([default.to_string()]));
    assert_eq!(wallet_tx["result"]["bip125-replaceable"], "no", "confirmed");

    let opted_out = client
        .send_to_address(&to, Amount::from_int_btc(1), None, None, None, Some(false), None, None)
        .unwrap();
    assert!(sequences(&opted_out).iter().all(|sequence| *sequence == NO_RBF));
    assert!(!client.get_mempool_entry(&opted_out).unwrap().bip125_replaceable);

    // fundrawtransaction: the inputs it adds signal unless `replaceable: false`.
    let hex: String = client.call("createrawtransaction", &[json!([]), json!({to.to_string(): 1})]).unwrap();
    for (options, expected) in [(json!({}), RBF), (json!({"replaceable": false}), NO_RBF)] {
        let (_, funded) = harness.raw("fundrawtransaction", json!([hex, options]));
        let bytes = Vec::<u8>::from_hex(funded["result"]["hex"].as_str().unwrap()).unwrap();
        let tx: Transaction = deserialize(&bytes).unwrap();
        assert!(!tx.input.is_empty() && tx.input.iter().all(|input| input.sequence == expected), "{options}");
    }
}
