//! Governance stream benchmarks on loopback with the devnet governance service:
//!
//! * signature request round trip through the node's StreamActor (request stored durably, sent, signed
//!   by the service with BIP143, answered), p50/p99; and the same plus the node's own checks (sighash,
//!   ECDSA per signature, witness assembly, libbitcoinconsensus) as `sign_transaction` does them;
//! * time to reconnect after a service restart: `alys-devnet governance` is killed and started again
//!   on the same port, timed from its ready line to the node's session being up (default backoff).
//!
//! Run: `cargo bench -p alys-devnet --bench governance` (add `-- 200` for 200 requests instead of 2,000).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "benchmark code")]

mod common;

use common::report;

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    str::FromStr,
    time::{Duration, Instant},
};

use alys_devnet_governance::DevGovernance;
use alys_governance::{
    sign_transaction, signature_request,
    stream::{self, StreamConfig, StreamHandle},
};
use alys_proto::governance::v1::{SignatureStatus, TransactionType};

async fn wait_connected(handle: &StreamHandle) {
    while !handle.status().connected {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn start_service(root: &Path, port: u16) -> (Child, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_alys-devnet"))
        .current_dir(root)
        .args(["governance", "--addr", &format!("127.0.0.1:{port}"), "--admin-addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
    (
        child,
        ready["governance"].as_str().unwrap().to_owned(),
        ready["governanceKey"].as_str().unwrap().to_owned(),
    )
}

fn main() {
    let requests: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(2_000);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async move {
        let dir = std::env::temp_dir().join(format!("alys-bench-gov-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();

        // Round trip against an in-process service on loopback gRPC.
        let service = DevGovernance::devnet(3, 2).unwrap().into_service();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(alys_devnet_governance::serve(service.clone(), listener, None));
        let (handle, _task) = stream::spawn(
            StreamConfig::new(url, service.state().governance_key()),
            std::sync::Arc::new(alys_storage::Storage::open(dir.join("a.redb")).unwrap()),
        )
        .unwrap();
        wait_connected(&handle).await;
        let federation = service.state().federation().unwrap();
        let (tx, spent) = alys_devnet_governance::example_spend(&federation);
        let request =
            signature_request(&tx, std::slice::from_ref(&spent), &federation, TransactionType::Pegout)
                .unwrap();
        for _ in 0..50 {
            handle.request_signatures(request.clone()).await.unwrap();
        }
        let mut raw = Vec::with_capacity(requests);
        for _ in 0..requests {
            let started = Instant::now();
            let response = handle.request_signatures(request.clone()).await.unwrap();
            raw.push(started.elapsed());
            assert_eq!(response.status, SignatureStatus::Complete as i32);
        }
        report("signature request round trip (loopback, durable)", raw);
        let mut checked = Vec::with_capacity(requests);
        for _ in 0..requests {
            let started = Instant::now();
            sign_transaction(
                &handle,
                &federation,
                &tx,
                std::slice::from_ref(&spent),
                TransactionType::Pegout,
                None,
            )
            .await
            .unwrap();
            checked.push(started.elapsed());
        }
        report("signed and verified spend (round trip + interpreter)", checked);

        // Reconnect after a restart of the service process.
        let (mut child, url, key) = start_service(&root, 0);
        let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
        let key = bitcoin::secp256k1::PublicKey::from_str(&key).unwrap();
        let (handle, _task) = stream::spawn(
            StreamConfig::new(url, key),
            std::sync::Arc::new(alys_storage::Storage::open(dir.join("b.redb")).unwrap()),
        )
        .unwrap();
        wait_connected(&handle).await;
        let mut reconnects = Vec::new();
        for _ in 0..10 {
            child.kill().unwrap();
            child.wait().unwrap();
            while handle.status().connected {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let (next, _, _) = start_service(&root, port);
            child = next;
            let back = Instant::now();
            wait_connected(&handle).await;
            reconnects.push(back.elapsed());
        }
        let _ = child.kill();
        let _ = child.wait();
        report("reconnect after a service restart (from its ready line)", reconnects);
        let _ = std::fs::remove_dir_all(&dir);
    });
}
