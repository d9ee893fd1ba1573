//! The federation network on loopback: `alys-devnet --authorities 3 --full-nodes 1` (release build,
//! one process per node and per execution engine), measured from the nodes' own log lines (one clock:
//! the same machine):
//!
//! * block gossip: the author's commit ("produced block") → the block imported on each other node
//!   ("imported block"), p50/p95 over every (block, peer);
//! * approvals: the author's proposal → the quorum of approvals (`approval_ms` of "produced block"),
//!   p50/p95;
//! * sync: a fresh full node (`alys-devnet join`) fetching every block by range from its peers and
//!   importing it (consensus checks, `newPayload`, `forkchoiceUpdated`, storage; "imported range"),
//!   in blocks/s from the start of its first range to the end of its last, against
//!   the execution engine's own `newPayload` rate for the same blocks sent straight to a fresh engine
//!   (both on a quiet machine: block production paused and the bench waiting until nothing, the
//!   devnet's miner grinding its last batch included, uses more than 10 % of a core).
//!
//! Run: `cargo bench -p alys-devnet --bench federation` (`-- 300` for 300 blocks before the sync;
//! default 200, 500 ms slots).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "benchmark code")]

mod common;

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use alys_chainspec::ChainSpec;
use alys_consensus::{block_to_payload, decode_execution_block, requests_of, versioned_hashes};
use alys_engine_client::EngineClient;
use alys_storage::{ChainRead, Storage};
use serde_json::{Value, json};

const SLOT_MS: u64 = 500;
const OFFSET: u16 = 700;

fn call(url: &str, method: &str, params: Value) -> Value {
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }).to_string();
    let output = Command::new("curl")
        .args(["-s", "-m", "5", "-H", "content-type: application/json", "-d", &body, url])
        .output()
        .unwrap();
    serde_json::from_slice::<Value>(&output.stdout).map(|r| r["result"].clone()).unwrap_or(Value::Null)
}

fn height(rpc: &str) -> u64 {
    call(rpc, "alys_syncStatus", json!([]))["head"]["height"].as_u64().unwrap_or(0)
}

/// Runs a command and returns it with its first stdout line (the JSON ready line).
fn start(command: &mut Command) -> (Child, Value) {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    (child, serde_json::from_str(&line).unwrap_or_else(|_| panic!("not a ready line: {line:?}")))
}

fn stop(mut child: Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Microseconds since the epoch of a tracing timestamp `2026-12-02T02:01:50.177195Z`.
fn micros(stamp: &str) -> Option<i64> {
    let (date, time) = stamp.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let mut t = time.split(':');
    let (h, min) = (t.next()?.parse::<i64>().ok()?, t.next()?.parse::<i64>().ok()?);
    let secs: f64 = t.next()?.parse().ok()?;
    Some(((days * 86_400 + h * 3_600 + min * 60) as f64 * 1e6 + secs * 1e6) as i64)
}

/// CPU time (user + system, in clock ticks of 10 ms) of every process, by pid, with its command line.
fn cpu_times() -> HashMap<u32, (u64, String)> {
    let mut out = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // Fields after the command name (which may hold spaces) closed by ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> =
            cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let name = args.first().map(|a| a.rsplit('/').next().unwrap_or(a).to_owned()).unwrap_or_default();
        let detail = args.iter().skip(1).take(3).cloned().collect::<Vec<_>>().join(" ");
        out.insert(pid, (ticks(11) + ticks(12), format!("{name} {detail}")));
    }
    out
}

/// Waits until the machine is quiet: less than 10 % of one core busy over a second, all processes
/// together (a paused federation's miner may still be grinding its last batch for several seconds).
/// Returns how long it waited, or `None` if it never got quiet within `timeout`.
fn wait_quiet(timeout: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        let before = cpu_times();
        std::thread::sleep(Duration::from_secs(1));
        let busy: u64 = cpu_times()
            .iter()
            .map(|(pid, (after, name))| {
                after - before.get(pid).filter(|(_, n)| n == name).map_or(*after, |(t, _)| *t.min(after))
            })
            .sum();
        // Clock ticks are 10 ms: 10 ticks in a second is 10 % of a core.
        if busy < 10 {
            return Some(started.elapsed());
        }
    }
    None
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {name}="))? + name.len() + 2;
    line[start..].split_whitespace().next()
}

/// (timestamp µs, line) of every log line containing `needle`.
fn lines(log: &Path, needle: &str) -> Vec<(i64, String)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| Some((micros(l.split_whitespace().next()?)?, l.to_owned())))
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let blocks: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(200);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let devnet_bin = env!("CARGO_BIN_EXE_alys-devnet");
    let dir = tempfile::tempdir().unwrap();
    let datadir: PathBuf = dir.path().join("net");
    let (devnet, ready) = start(
        Command::new(devnet_bin)
            .current_dir(&root)
            .args(["--authorities", "3", "--full-nodes", "1", "--slot-ms", &SLOT_MS.to_string()])
            .args(["--ports.offset", &OFFSET.to_string(), "--governance.addr", "127.0.0.1:0"])
            .args(["--governance.admin-addr", "127.0.0.1:0", "--bitcoin.addr", "127.0.0.1:0"])
            .arg("--datadir")
            .arg(&datadir),
    );
    let rpc0 = ready["rpc"].as_str().unwrap().to_owned();
    eprintln!("federation up; producing {blocks} blocks at {SLOT_MS} ms slots");
    while height(&rpc0) < blocks {
        std::thread::sleep(Duration::from_millis(500));
    }

    // A fresh full node syncs everything from its peers, on a quiet machine like the engine's own
    // measurement below: production paused on every authority (the miner then idles too).
    let token = std::fs::read_to_string(root.join("etc/keys/devnet-admin.token")).unwrap();
    for node in ready["nodes"].as_array().unwrap().iter().filter(|n| n["role"] == "authority") {
        call(node["rpc"].as_str().unwrap(), "alys_pauseProduction", json!([token.trim()]));
    }
    std::thread::sleep(Duration::from_secs(2));
    match wait_quiet(Duration::from_secs(120)) {
        Some(waited) => {
            eprintln!("quiet after {:.0} s (the miner done with its last batch)", waited.as_secs_f64())
        }
        None => eprintln!("warning: the machine never got quiet; the sync below competes with it"),
    }
    let target = height(&rpc0);
    let cpu_before = cpu_times();
    // `BENCH_PERF=<file>`: a system-wide `perf record` of the sync, for profiling.
    let perf = std::env::var("BENCH_PERF").ok().map(|out| {
        Command::new("perf")
            .args(["record", "-a", "-F", "997", "--call-graph", "dwarf,16384", "-o", &out])
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    });
    let join_started = Instant::now();
    let (join, joined) = start(
        Command::new(devnet_bin)
            .current_dir(&root)
            .args(["join", "--index", "4"])
            .arg("--datadir")
            .arg(&datadir),
    );
    let rpc4 = joined["node"]["rpc"].as_str().unwrap().to_owned();
    while height(&rpc4) < target {
        assert!(join_started.elapsed() < Duration::from_secs(600), "the fresh node did not sync");
        std::thread::sleep(Duration::from_millis(200));
    }
    let cpu_after = cpu_times();
    if let Some(perf) = perf {
        let _ = Command::new("kill").args(["-INT", &perf.id().to_string()]).status();
        let _ = perf.wait_with_output();
    }
    let sync_wall = join_started.elapsed();
    let metrics_url = joined["node"]["metrics"].as_str().unwrap().to_owned();
    let metrics = Command::new("curl").args(["-s", &metrics_url]).output().unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout).into_owned();
    stop(join);
    stop(devnet);

    // Gossip and approvals, from the four nodes' logs.
    let logs: Vec<PathBuf> = (0..4).map(|i| datadir.join(format!("node{i}/node.log"))).collect();
    let mut produced: HashMap<String, (usize, i64)> = HashMap::new();
    let mut approvals = Vec::new();
    for (i, log) in logs.iter().enumerate() {
        for (at, line) in lines(log, "produced block") {
            produced.insert(field(&line, "consensus_hash").unwrap().to_owned(), (i, at));
            if let Some(ms) = field(&line, "approval_ms").and_then(|v| v.parse::<u64>().ok()) {
                approvals.push(Duration::from_millis(ms));
            }
        }
    }
    let mut gossip = Vec::new();
    for (i, log) in logs.iter().enumerate() {
        for (at, line) in lines(log, "imported block") {
            let hash = field(&line, "consensus_hash").unwrap();
            if let Some((author, made)) = produced.get(hash)
                && *author != i
                && at >= *made
            {
                gossip.push(Duration::from_micros((at - made) as u64));
            }
        }
    }
    // Sync: the joined node's ranges of the blocks that existed when it started, from the start of
    // the first ("imported range" is logged at a range's end, with its duration) to the end of the
    // last, its `forkchoiceUpdated` included.
    let number = |line: &str, name: &str| -> f64 {
        field(line, name).and_then(|v| v.trim_matches('"').parse().ok()).unwrap_or(0.0)
    };
    let ranges: Vec<(i64, String)> = lines(&datadir.join("node4/node.log"), "imported range")
        .into_iter()
        .filter(|(_, line)| number(line, "first") <= target as f64)
        .collect();
    for (_, line) in &ranges {
        let fields = [
            "first",
            "blocks",
            "imported",
            "ms",
            "verify_ms",
            "engine_ms",
            "engine_starved_ms",
            "resent",
            "actor_waited_ms",
            "finish_ms",
        ];
        let shown: Vec<String> =
            fields.iter().filter_map(|f| field(line, f).map(|v| format!("{f}={v}"))).collect();
        eprintln!("  range: {}", shown.join(" "));
    }
    let (first_end, first_line) = ranges.first().expect("the fresh node imported ranges");
    let sync_started = *first_end as f64 / 1e6 - number(first_line, "ms") / 1e3;
    let sync_secs = ranges.last().unwrap().0 as f64 / 1e6 - sync_started;
    let synced_blocks: f64 = ranges.iter().map(|(_, line)| number(line, "imported")).sum();
    let sync_rate = synced_blocks / sync_secs;

    // The engine's own newPayload rate over the same blocks, sent straight to a fresh engine.
    let storage = Storage::open(datadir.join("node0/sidecar/alys.redb")).unwrap();
    let read = storage.read().unwrap();
    let stored: Vec<_> = (1..=target).map(|h| read.block_by_height(h).unwrap().unwrap()).collect();
    drop(read);
    let authrpc = format!("127.0.0.1:{}", 8551 + OFFSET + 90);
    let (el, el_ready) = start(
        Command::new(devnet_bin)
            .current_dir(&root)
            .args([
                "el",
                "--authrpc.addr",
                &authrpc,
                "--http.addr",
                "127.0.0.1:0",
                "--ws.addr",
                "127.0.0.1:0",
            ])
            .args(["--feed.addr", "127.0.0.1:0", "--datadir"])
            .arg(dir.path().join("el-baseline")),
    );
    let spec = Arc::new(ChainSpec::from_file(root.join("etc/genesis/devnet.json")).unwrap());
    let secret = alloy_rpc_types_engine::JwtSecret::from_file(&root.join("etc/jwt/jwt.hex")).unwrap();
    let engine = EngineClient::new(el_ready["authrpc"].as_str().unwrap(), secret, Arc::clone(&spec)).unwrap();
    if wait_quiet(Duration::from_secs(60)).is_none() {
        eprintln!("warning: the machine never got quiet; the engine's own rate below competes with it");
    }
    let started = Instant::now();
    for block in &stored {
        let execution = decode_execution_block(block).unwrap();
        let timestamp = execution.header.timestamp;
        let root_hash =
            spec.is_active_at(alys_chainspec::Fork::Cancun, timestamp).then_some(block.header.parent_hash);
        let requests = spec.is_active_at(alys_chainspec::Fork::Prague, timestamp).then(|| requests_of(block));
        let hashes = versioned_hashes(&execution);
        let payload = block_to_payload(block.header.execution_block_hash, &execution);
        let status = engine.new_payload(payload, root_hash, hashes, requests).await.unwrap();
        assert!(status.status.is_valid(), "{status:?}");
    }
    let engine_rate = stored.len() as f64 / started.elapsed().as_secs_f64();
    stop(el);

    println!(
        "federation of 3 authorities + 1 full node, {SLOT_MS} ms slots, {target} blocks (release build):"
    );
    common::report_ms("block gossip, author commit -> imported on each peer", gossip);
    common::report_ms("approvals, proposal -> quorum at the author", approvals);
    for line in metrics.lines().filter(|l| {
        l.starts_with("alys_chain_import_seconds_sum") || l.starts_with("alys_chain_import_seconds_count")
    }) {
        println!("  the fresh node's {line}");
    }
    let mut cpu: Vec<(u64, String)> = cpu_after
        .iter()
        .map(|(pid, (after, name))| {
            (
                after - cpu_before.get(pid).filter(|(_, n)| n == name).map_or(0, |(t, _)| *t),
                format!("{pid} {name}"),
            )
        })
        .filter(|(ticks, _)| *ticks > 0)
        .collect();
    cpu.sort_by_key(|c| std::cmp::Reverse(c.0));
    println!(
        "CPU during the sync ({:.1} s wall, from the join to the last block), busiest processes:",
        sync_wall.as_secs_f64()
    );
    for (ticks, name) in cpu.iter().take(6) {
        println!("  {:>6} ms  {name}", ticks * 10);
    }
    println!(
        "sync of {} empty blocks from peers: {sync_rate:.0} blocks/s; engine newPayload alone: {engine_rate:.0} blocks/s; ratio {:.0} %",
        synced_blocks,
        100.0 * sync_rate / engine_rate
    );
}
