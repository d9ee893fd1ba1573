//! `alys-miner`: the reference merged-mining CPU miner. It loops `createauxblock` → mine →
//! `submitauxblock` against any Alys node's RPC.

use std::time::Duration;

use alloy_primitives::Address;
use clap::Parser;

/// Reference CPU miner for Alys merged mining (devnet difficulty).
#[derive(Debug, Parser)]
#[command(name = "alys-miner", version, about)]
struct Args {
    /// The node's RPC.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    rpc: String,
    /// EVM address that receives the miner's share of the fees.
    #[arg(long, default_value = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8")]
    address: Address,
    /// Pause between rounds, in milliseconds.
    #[arg(long, default_value_t = 2_000)]
    interval_ms: u64,
}

fn main() -> eyre::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        tokio::select! {
            _ = alys_miner::run(args.rpc, args.address, Duration::from_millis(args.interval_ms)) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    });
    Ok(())
}
