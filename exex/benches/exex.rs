#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "benchmark code")]
//! Benchmarks of the ExEx core; prints its figures (`cargo bench -p alys-exex --bench exex`).
//!
//! 1. Extraction throughput over 10,000 blocks x 100 receipts with a realistic mix of logs.
//! 2. Store commit latency of one notification (one block of 100 receipts), fsync included.
//! 3. Latency from a notification being processed to a feed client on loopback receiving its burn.

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use alloy_primitives::{Address, B256, Log, U256};
use alys_burns::{
    BurnExtractor, BurnFeedClient, ClientConfig,
    test_utils::{TestBlock, block, bridge_burn_log, burn_log, transfer_log},
};
use alys_contracts::MIN_PEGOUT_WEI;
use alys_exex::BurnExEx;
use backon::ExponentialBuilder;

const BLOCKS: u64 = 10_000;
const RECEIPTS_PER_BLOCK: u64 = 100;
const CHUNK: u64 = 500;
const LATENCY_BURNS: usize = 1_000;

/// Deterministic pseudo-random numbers.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A block of 100 receipts: 15% without logs (plain transfers), 55% one ERC-20 transfer, 20% three logs
/// (a swap: two transfers and a sync-like log), 5% a bridge burn (after a transfer), 5% a `RequestPegOut`
/// from a copy of the contract elsewhere (must be ignored). ~1.3 logs per receipt.
fn realistic_block(number: u64, parent: B256, rng: &mut XorShift) -> TestBlock {
    let token = Address::repeat_byte(0x70);
    let pool = Address::repeat_byte(0x50);
    let copy = Address::repeat_byte(0xbc);
    let (a, b) = (Address::repeat_byte(0xa1), Address::repeat_byte(0xb2));
    let logs: Vec<Vec<Log>> = (0..RECEIPTS_PER_BLOCK)
        .map(|_| match rng.next() % 100 {
            0..15 => Vec::new(),
            15..70 => vec![transfer_log(token, a, b, U256::from(rng.next()))],
            70..90 => vec![
                transfer_log(token, a, pool, U256::from(rng.next())),
                transfer_log(pool, pool, a, U256::from(rng.next())),
                transfer_log(pool, pool, pool, U256::from(rng.next())),
            ],
            90..95 => vec![
                transfer_log(token, a, b, U256::from(1)),
                bridge_burn_log(a, b"bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", MIN_PEGOUT_WEI),
            ],
            _ => vec![burn_log(copy, a, b"bc1qcopy", MIN_PEGOUT_WEI)],
        })
        .collect();
    block(number, parent, 0, logs)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn fmt(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn bench_extraction() {
    let extractor = BurnExtractor::default();
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let (mut receipts, mut logs, mut burns) = (0u64, 0u64, 0u64);
    let mut elapsed = Duration::ZERO;
    let mut parent = B256::ZERO;
    let mut number = 1;
    // Built in chunks so that 1M receipts are never all in memory; only extraction is timed.
    while number <= BLOCKS {
        let chunk: Vec<TestBlock> = (0..CHUNK.min(BLOCKS - number + 1))
            .map(|_| {
                let b = realistic_block(number, parent, &mut rng);
                parent = b.hash;
                number += 1;
                b
            })
            .collect();
        receipts += chunk.iter().map(|b| b.receipts.len() as u64).sum::<u64>();
        logs += chunk.iter().flat_map(|b| &b.receipts).map(|r| r.logs().len() as u64).sum::<u64>();
        let started = Instant::now();
        for b in &chunk {
            burns += black_box(extractor.extract_block(black_box(b))).len() as u64;
        }
        elapsed += started.elapsed();
    }
    let secs = elapsed.as_secs_f64();
    println!(
        "extraction: {BLOCKS} blocks x {RECEIPTS_PER_BLOCK} receipts = {receipts} receipts, {logs} logs, {burns} bridge burns"
    );
    println!(
        "extraction: {:.3} s -> {:.2} M receipts/s, {:.2} M logs/s, {:.0} blocks/s",
        secs,
        receipts as f64 / secs / 1e6,
        logs as f64 / secs / 1e6,
        BLOCKS as f64 / secs
    );
}

fn bench_store_commit() {
    let dir = tempfile::tempdir().unwrap();
    let exex = BurnExEx::open(dir.path().join("bench.redb")).unwrap();
    let mut rng = XorShift(0x1234_5678_9abc_def1);
    let mut parent = B256::ZERO;
    let mut times = Vec::new();
    for number in 1..=500 {
        let b = realistic_block(number, parent, &mut rng);
        parent = b.hash;
        let started = Instant::now();
        let update = exex.update(std::iter::empty::<&TestBlock>(), [&b]);
        exex.process(&update).unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    println!(
        "store: one notification (1 block, 100 receipts, ~5 burns), extract + one durable redb commit: p50 {} p99 {} (n={})",
        fmt(percentile(&times, 0.5)),
        fmt(percentile(&times, 0.99)),
        times.len()
    );
}

fn bench_feed_latency() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let exex = BurnExEx::open(dir.path().join("feed.redb")).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(exex.feed_server().serve(listener, async {
            let _ = stopped.await;
        }));

        let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
        let client_task = tokio::spawn(async move {
            let config = ClientConfig {
                backoff: ExponentialBuilder::new()
                    .with_min_delay(Duration::from_millis(5))
                    .with_max_delay(Duration::from_secs(5))
                    .with_jitter()
                    .without_max_times(),
                ..ClientConfig::default()
            };
            let mut client = BurnFeedClient::new(format!("http://{addr}"), 0).unwrap().with_config(config);
            for _ in 0..LATENCY_BURNS {
                let event = client.next().await.unwrap();
                let _ = seen_tx.send((event.cursor, Instant::now()));
            }
        });

        let blocks: Vec<TestBlock> = {
            let mut parent = B256::ZERO;
            (1..=LATENCY_BURNS as u64)
                .map(|number| {
                    let b = block(
                        number,
                        parent,
                        0,
                        vec![vec![bridge_burn_log(Address::repeat_byte(1), b"bc1qlatency", MIN_PEGOUT_WEI)]],
                    );
                    parent = b.hash;
                    b
                })
                .collect()
        };
        let (mut from_commit, mut from_start) = (Vec::new(), Vec::new());
        for (i, b) in blocks.into_iter().enumerate() {
            let started = Instant::now();
            let update = exex.update(std::iter::empty::<&TestBlock>(), [&b]);
            let processed = exex.handle_update(update).await.unwrap();
            let committed_at = Instant::now();
            let (cursor, received_at) = seen_rx.recv().await.unwrap();
            assert_eq!(cursor, i as u64 + 1);
            assert_eq!(processed.outcome.last_cursor, cursor);
            from_commit.push(received_at.saturating_duration_since(committed_at));
            from_start.push(received_at - started);
        }
        client_task.await.unwrap();
        let _ = stop.send(());
        server.await.unwrap().unwrap();

        from_commit.sort();
        from_start.sort();
        println!(
            "feed latency, commit returned -> client received (loopback gRPC, n={LATENCY_BURNS}): p50 {} p99 {}",
            fmt(percentile(&from_commit, 0.5)),
            fmt(percentile(&from_commit, 0.99))
        );
        println!(
            "feed latency, notification handed to the ExEx -> client received (incl. durable commit): p50 {} p99 {}",
            fmt(percentile(&from_start, 0.5)),
            fmt(percentile(&from_start, 0.99))
        );
    });
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and only wants it to build.
    if !std::env::args().any(|a| a == "--bench") {
        println!("run with `cargo bench -p alys-exex --bench exex` to measure");
        return;
    }
    bench_extraction();
    bench_store_commit();
    bench_feed_latency();
}
