//! `sendrawtransaction` of 1,000 P2WPKH spends over HTTP, then `generatetoaddress 1` mining them all.
//! Run: `cargo bench -p alys-devnet-bitcoin --bench mempool`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use std::time::Instant;

use alys_devnet_bitcoin::{BitcoinConfig, start};
use base64::Engine;
use bitcoin::{
    Address, Amount, CompressedPublicKey, EcdsaSighashType, Network, OutPoint, Transaction, TxIn, TxOut,
    Witness,
    absolute::LockTime,
    consensus::encode::serialize_hex,
    secp256k1::{Message, Secp256k1, SecretKey},
    sighash::SighashCache,
    transaction::Version,
};
use serde_json::{Value, json};

const SPENDS: usize = 1_000;

fn call(url: &str, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let auth = base64::engine::general_purpose::STANDARD.encode("bench:bench");
    let response = minreq::post(url)
        .with_header("Authorization", format!("Basic {auth}"))
        .with_body(body)
        .send()
        .unwrap();
    let value: Value = serde_json::from_slice(response.as_bytes()).unwrap();
    assert!(value["error"].is_null(), "{method}: {value}");
    value["result"].clone()
}

fn sign(secp: &Secp256k1<bitcoin::secp256k1::All>, key: &SecretKey, tx: &mut Transaction, spent: &[TxOut]) {
    let public = CompressedPublicKey(key.public_key(secp));
    for (index, output) in spent.iter().enumerate() {
        let hash = SighashCache::new(&*tx)
            .p2wpkh_signature_hash(index, &output.script_pubkey, output.value, EcdsaSighashType::All)
            .unwrap();
        let signature = bitcoin::ecdsa::Signature {
            signature: secp.sign_ecdsa(&Message::from(hash), key),
            sighash_type: EcdsaSighashType::All,
        };
        tx.input[index].witness = Witness::p2wpkh(&signature, &public.0);
    }
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let config = BitcoinConfig::new(dir.path())
        .with_rpc_addr("127.0.0.1:0".parse().unwrap())
        .with_user_password("bench", "bench");
    let handle = runtime.block_on(start(config)).unwrap();
    let url = handle.url();

    let secp = Secp256k1::new();
    let key = SecretKey::from_slice(&[7; 32]).unwrap();
    let address = Address::p2wpkh(&CompressedPublicKey(key.public_key(&secp)), Network::Regtest);
    let script = address.script_pubkey();
    let hashes = call(&url, "generatetoaddress", json!([101, address.to_string()]));
    let first: bitcoin::BlockHash = hashes[0].as_str().unwrap().parse().unwrap();
    let block = call(&url, "getblock", json!([first.to_string(), 2]));
    let coinbase_txid: bitcoin::Txid = block["tx"][0]["txid"].as_str().unwrap().parse().unwrap();

    // Fan the first coinbase out into SPENDS outputs.
    let each = Amount::from_sat(4_999_000);
    let mut fan = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint { txid: coinbase_txid, vout: 0 },
            ..Default::default()
        }],
        output: vec![TxOut { value: each, script_pubkey: script.clone() }; SPENDS],
    };
    sign(&secp, &key, &mut fan, &[TxOut { value: Amount::from_int_btc(50), script_pubkey: script.clone() }]);
    let fan_txid = fan.compute_txid();
    call(&url, "sendrawtransaction", json!([serialize_hex(&fan)]));
    call(&url, "generatetoaddress", json!([1, address.to_string()]));

    let spends: Vec<String> = (0..SPENDS)
        .map(|vout| {
            let mut tx = Transaction {
                version: Version::TWO,
                lock_time: LockTime::ZERO,
                input: vec![TxIn {
                    previous_output: OutPoint { txid: fan_txid, vout: vout as u32 },
                    ..Default::default()
                }],
                output: vec![TxOut { value: each - Amount::from_sat(500), script_pubkey: script.clone() }],
            };
            sign(&secp, &key, &mut tx, &[TxOut { value: each, script_pubkey: script.clone() }]);
            serialize_hex(&tx)
        })
        .collect();

    let started = Instant::now();
    for hex in &spends {
        call(&url, "sendrawtransaction", json!([hex]));
    }
    let send = started.elapsed();
    let started = Instant::now();
    call(&url, "generatetoaddress", json!([1, address.to_string()]));
    let mine = started.elapsed();
    let tip = call(&url, "getbestblockhash", json!([]));
    let mined = call(&url, "getblock", json!([tip, 1]))["nTx"].as_u64().unwrap();
    assert_eq!(mined, SPENDS as u64 + 1);
    println!(
        "sendrawtransaction: {SPENDS} P2WPKH spends in {:.1} ms ({:.0} tx/s); generatetoaddress 1 ({mined} txs): {:.1} ms",
        send.as_secs_f64() * 1e3,
        SPENDS as f64 / send.as_secs_f64(),
        mine.as_secs_f64() * 1e3,
    );
    runtime.block_on(handle.stop());
}
