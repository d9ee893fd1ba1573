//! Peg-out latency on a running devnet (2-second slots, the reference miner finalizing, the devnet
//! governance service signing, the regtest node mining every 5 s):
//!
//! * finalized burn → broadcast: from the moment the node lists the burn as final (released, polled
//!   every 50 ms on `alys_pegouts`) to the moment it lists the paying transaction as broadcast, p50/p95;
//! * burn receipt → broadcast, the same end to end from `cast send`'s receipt.
//!
//! The federation is funded first by `alys-devnet pegin`; burns are sent one after another with
//! foundry's `cast` (`npm ci`). Run: `cargo bench -p alys-devnet --bench pegout` (add `-- 5` for five
//! burns instead of twenty).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "benchmark code")]

mod common;

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

fn call(url: &str, method: &str, params: Value) -> Value {
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }).to_string();
    let output = Command::new("curl")
        .args(["-s", "-H", "content-type: application/json", "-d", &body, url])
        .output()
        .unwrap();
    let response: Value = serde_json::from_slice(&output.stdout).unwrap();
    response["result"].clone()
}

fn status_of(rpc: &str, tx_hash: &str) -> Option<String> {
    let page = call(rpc, "alys_pegouts", json!([{ "set": "final", "limit": 1000 }]));
    page["pegouts"]
        .as_array()?
        .iter()
        .find(|p| p["txHash"] == json!(tx_hash))
        .map(|p| p["status"].as_str().unwrap_or_default().to_owned())
}

fn main() {
    let burns: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(20);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cast = root.join("node_modules/.bin/cast");
    assert!(cast.exists(), "foundry's cast is missing: run `npm ci` in the repository root");
    let datadir = tempfile::tempdir().unwrap();
    let mut devnet = Command::new(env!("CARGO_BIN_EXE_alys-devnet"))
        .current_dir(&root)
        .args(["--slot-ms", "2000", "--http.addr", "127.0.0.1:0", "--ws.addr", "127.0.0.1:0"])
        .args(["--authrpc.addr", "127.0.0.1:0", "--rpc.addr", "127.0.0.1:0", "--metrics.addr", "127.0.0.1:0"])
        .args(["--feed.addr", "127.0.0.1:0", "--governance.addr", "127.0.0.1:0"])
        .args(["--governance.admin-addr", "127.0.0.1:0", "--bitcoin.addr", "127.0.0.1:0"])
        .arg("--datadir")
        .arg(datadir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(devnet.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap();
    let (rpc, http) = (ready["rpc"].as_str().unwrap().to_owned(), ready["http"].as_str().unwrap().to_owned());
    let (bitcoin_rpc, cookie) = (
        ready["bitcoinRpc"].as_str().unwrap().to_owned(),
        ready["bitcoinCookie"].as_str().unwrap().to_owned(),
    );

    // The federation needs coins: one deposit, minted once its Bitcoin block is mined (every 5 s).
    let pegin = Command::new(env!("CARGO_BIN_EXE_alys-devnet"))
        .current_dir(&root)
        .args(["pegin", "--amount", "10", "--to", "0x000000000000000000000000000000000000bEEF"])
        .args(["--rpc", &rpc, "--bitcoin-rpc", &bitcoin_rpc, "--bitcoin-cookie", &cookie])
        .output()
        .unwrap();
    assert!(pegin.status.success(), "{}", String::from_utf8_lossy(&pegin.stderr));
    let funded = Instant::now();
    while call(&rpc, "alys_federationUtxos", json!([]))["totalSats"].as_u64().unwrap_or(0) == 0 {
        assert!(funded.elapsed() < Duration::from_secs(60), "the deposit was not minted");
        std::thread::sleep(Duration::from_millis(200));
    }

    let address = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
    let bytes = format!("0x{}", address.bytes().map(|b| format!("{b:02x}")).collect::<String>());
    let key = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
    let (mut from_final, mut from_receipt) = (Vec::new(), Vec::new());
    for _ in 0..burns {
        let output = Command::new(&cast)
            .args(["send", "--rpc-url", &http, "--private-key", key, "--json"])
            .args(["0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB", "requestPegOut(bytes)", &bytes])
            .args(["--value", "0.01ether"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let receipt: Value = serde_json::from_slice(&output.stdout).unwrap();
        let tx_hash = receipt["transactionHash"].as_str().unwrap().to_owned();
        let sent = Instant::now();
        let mut released = None;
        loop {
            match status_of(&rpc, &tx_hash).as_deref() {
                Some("broadcast" | "confirmed") => break,
                Some(_) if released.is_none() => released = Some(Instant::now()),
                _ => {}
            }
            assert!(sent.elapsed() < Duration::from_secs(120), "burn {tx_hash} was not broadcast");
            std::thread::sleep(Duration::from_millis(50));
        }
        let broadcast = Instant::now();
        from_final.push(broadcast - released.unwrap_or(broadcast));
        from_receipt.push(broadcast - sent);
    }
    devnet.kill().unwrap();
    let _ = devnet.wait();
    report95("finalized burn -> broadcast (2 s slots)", from_final);
    common::report("burn receipt -> broadcast (2 s slots)", from_receipt);
}

/// Like `common::report`, with the 95th percentile the goal names.
fn report95(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name}: n={} p50={:?} p95={:?} max={:?}",
        samples.len(),
        common::percentile(&samples, 0.50),
        common::percentile(&samples, 0.95),
        samples.last().unwrap()
    );
}
