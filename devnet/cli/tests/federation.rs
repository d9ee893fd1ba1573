//! `alys-devnet --authorities N`: one process per node and engine, each answering; none outliving the
//! devnet, even after `kill -9`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    process::{Command, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alys_rpc::ChainApiClient;
use jsonrpsee::{
    core::{client::ClientT, params::ArrayParams},
    http_client::HttpClientBuilder,
};
use serde_json::Value;

fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
        !matches!(state, Some('Z' | 'X') | None)
    })
}

/// An offset under which the ports of `nodes` nodes are free now.
fn free_offset(nodes: u16) -> u16 {
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos() ^ std::process::id();
    (0..200u32)
        .map(|attempt| u16::try_from((seed.wrapping_add(attempt * 7919) % 149 + 1) * 100).unwrap())
        .find(|offset| {
            (0..nodes)
                .flat_map(|i| {
                    [3000 + i, 8545 + 10 * i, 8546 + 10 * i, 8551 + 10 * i, 9101 + i, 30333 + i, 50551 + i]
                })
                .map(|port| TcpListener::bind(("127.0.0.1", port + offset)).ok())
                .collect::<Option<Vec<_>>>()
                .is_some()
        })
        .expect("a free port offset")
}

#[test]
fn more_authorities_than_devnet_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_alys-devnet"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .args(["--authorities", "8", "--datadir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("at most 7 authorities in the devnet"), "{error}");
    assert!(output.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_authorities_and_a_full_node_each_answer_and_die_with_the_devnet() {
    let dir = tempfile::tempdir().unwrap();
    let offset = free_offset(4);
    let mut devnet = Command::new(env!("CARGO_BIN_EXE_alys-devnet"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .args(["--authorities", "3", "--full-nodes", "1", "--slot-ms", "1000"])
        .args(["--ports.offset", &offset.to_string()])
        .args(["--governance.addr", "127.0.0.1:0", "--governance.admin-addr", "127.0.0.1:0"])
        .args(["--bitcoin.addr", "127.0.0.1:0", "--datadir"])
        .arg(dir.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(devnet.stdout.take().unwrap()).lines();
    let line = tokio::task::spawn_blocking(move || {
        let line = lines.next();
        std::thread::spawn(move || lines.for_each(drop));
        line
    })
    .await
    .unwrap();
    let Some(Ok(line)) = line else {
        let _ = devnet.kill();
        panic!("no ready line: {:?}", devnet.wait());
    };
    let ready: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(ready["event"], "ready");
    assert_eq!(ready["chainId"], 121_212);
    let nodes = ready["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 4);
    assert_eq!(ready["rpc"], nodes[0]["rpc"]);
    assert_eq!(ready["rpc"], format!("http://127.0.0.1:{}", 3000 + offset));
    let mut pids = vec![u64::from(devnet.id())];
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(node["index"], i);
        assert_eq!(node["role"], if i < 3 { "authority" } else { "full" });
        assert_eq!(node["http"], format!("http://127.0.0.1:{}", 8545 + offset + 10 * i as u16));
        assert_eq!(node["p2pListen"], format!("/ip4/127.0.0.1/tcp/{}", 30333 + offset + i as u16));
        let alys = HttpClientBuilder::default().build(node["rpc"].as_str().unwrap()).unwrap();
        let status = alys.sync_status().await.unwrap();
        assert_eq!(status.authorities.len(), 3, "{status:?}");
        assert_eq!(status.authority_index, (i < 3).then_some(i as u32));
        let eth = HttpClientBuilder::default().build(node["http"].as_str().unwrap()).unwrap();
        let chain_id: String = eth.request("eth_chainId", ArrayParams::new()).await.unwrap();
        assert_eq!(chain_id, "0x1d97c");
        for part in ["node", "el"] {
            let pid = node["pids"][part].as_u64().unwrap();
            assert!(alive(pid), "node {i}'s {part} runs");
            pids.push(pid);
        }
    }

    // kill -9: no shutdown path runs, yet every child goes with the devnet.
    devnet.kill().unwrap();
    devnet.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&pid| alive(pid)) {
        assert!(Instant::now() < deadline, "children outlived the devnet: {pids:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
