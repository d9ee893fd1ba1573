//! Measures a running node's finality lag: every `--every-secs` (5) for `--secs` (600) it asks
//! `alys_syncStatus` (through the typed client of `alys-rpc`) for the head and finalized heights, prints
//! one line per sample, and ends with a JSON summary: the lag's maximum, mean and 95th percentile, the
//! final `powBits` and its difficulty (the pow limit's target over the current one).
//!
//! The lag, head − finalized, is how many blocks wait for a merged-mining proof. With the devnet's 2 s
//! slots and 10 s proof spacing it hovers around a handful of blocks once the difficulty has caught up
//! with the miner; a retarget that overshoots shows up here as a lag that keeps growing.
//!
//! ```text
//! cargo run --release --bin alys-devnet -- --fresh          # in one terminal; wait for its ready line
//! cargo run --release -p alys-devnet --example finality_lag -- --rpc http://127.0.0.1:3000 --secs 600
//! ```

use std::time::{Duration, Instant};

use alys_rpc::{ChainApiClient, jsonrpsee::http_client::HttpClientBuilder};
use clap::Parser;

/// Samples head − finalized of an Alys node over time.
#[derive(Debug, Parser)]
struct Args {
    /// The node's RPC.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    rpc: String,
    /// Seconds between samples.
    #[arg(long, default_value_t = 5)]
    every_secs: u64,
    /// How long to sample, in seconds.
    #[arg(long, default_value_t = 600)]
    secs: u64,
    /// The chain's pow limit, compact form, for the difficulty (the devnet's by default).
    #[arg(long, default_value = "207fffff", value_parser = parse_bits)]
    pow_limit: u32,
}

fn parse_bits(text: &str) -> Result<u32, std::num::ParseIntError> {
    u32::from_str_radix(text.trim_start_matches("0x"), 16)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> eyre::Result<()> {
    let args = Args::parse();
    let client = HttpClientBuilder::default().request_timeout(Duration::from_secs(10)).build(&args.rpc)?;
    let every = Duration::from_secs(args.every_secs.max(1));
    let start = Instant::now();
    let mut lags = Vec::new();
    let mut bits = 0;
    let mut ticker = tokio::time::interval(every);
    while start.elapsed() < Duration::from_secs(args.secs) {
        ticker.tick().await;
        let status = match client.sync_status().await {
            Ok(status) => status,
            Err(error) => {
                println!("t={:>4}s  alys_syncStatus failed: {error}", start.elapsed().as_secs());
                continue;
            }
        };
        let finalized = status.finalized.map_or(0, |f| f.height);
        let lag = status.head.height.saturating_sub(finalized);
        bits = status.pow_bits;
        lags.push(lag);
        println!(
            "t={:>4}s  head {:>5}  finalized {:>5}  lag {:>3}  powBits {:08x}  difficulty {:.3e}",
            start.elapsed().as_secs(),
            status.head.height,
            finalized,
            lag,
            bits,
            alys_auxpow::retarget::difficulty(bits, args.pow_limit),
        );
    }
    eyre::ensure!(!lags.is_empty(), "no sample: is a node answering at {}?", args.rpc);
    let mean = lags.iter().sum::<u64>() as f64 / lags.len() as f64;
    let mut sorted = lags.clone();
    sorted.sort_unstable();
    let p95 = sorted.get((sorted.len() * 95).div_ceil(100).saturating_sub(1)).copied().unwrap_or_default();
    let summary = serde_json::json!({
        "samples": lags.len(),
        "everySecs": every.as_secs(),
        "maxLag": sorted.last(),
        "meanLag": (mean * 100.0).round() / 100.0,
        "p95Lag": p95,
        "finalPowBits": format!("{bits:08x}"),
        "finalDifficulty": alys_auxpow::retarget::difficulty(bits, args.pow_limit),
    });
    println!("{summary}");
    Ok(())
}
