//! `alys-miner`: the reference merged-mining CPU miner. It loops `createauxblock` → grind →
//! `submitauxblock` against any Alys node's RPC (see the library docs for how it follows new work).

use std::time::Duration;

use alloy_primitives::Address;
use clap::Parser;

/// The reference merged-mining CPU miner for Alys devnets.
///
/// Alys blocks become final when Bitcoin work commits to them (merged mining, AuxPow). This miner plays
/// the Bitcoin side on one CPU core: it asks an Alys node for work (`createauxblock <address>`: the hash
/// of the unfinalized blocks and the target), grinds a Bitcoin-style parent block whose coinbase commits
/// to that hash until its header hash meets the target, and hands the proof back (`submitauxblock`). The
/// node's next block carries the proof and finalizes the batch; the miner's share of the batch's fees
/// goes to --address.
///
/// It keeps grinding until it finds a proof or the node's work changes (a new block), which it checks
/// every --poll-ms, and never submits twice for the same work. The node's difficulty retarget sets the
/// pace: one proof per configured spacing (10 s on the devnet) once the target has caught up with this
/// core's hash rate. Only a devnet's easy pow limit is within reach of a CPU.
#[derive(Debug, Parser)]
#[command(
    name = "alys-miner",
    version,
    about = "The reference merged-mining CPU miner for Alys devnets: createauxblock, grind, submitauxblock",
    after_long_help = EXAMPLES,
)]
struct Args {
    /// The node's RPC (`rpc` in the devnet's ready line; `[rpc].listen` of a node).
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    rpc: String,
    /// EVM address that receives the miner's share of the fees (default: devnet dev account 1).
    #[arg(long, default_value = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8")]
    address: Address,
    /// How often to ask the node whether its work changed while grinding, in milliseconds.
    #[arg(long, default_value_t = 250, alias = "interval-ms")]
    poll_ms: u64,
}

const EXAMPLES: &str = "\
Examples:
  # The devnet mines with this miner in process; start it without, and mine from here instead:
  cargo run --bin alys-devnet -- --no-miner
  cargo run --release --bin alys-miner -- --rpc http://127.0.0.1:3000

  # Pay the miner's share to your own address; log every round, not only accepted proofs:
  RUST_LOG=alys::miner=debug alys-miner --address 0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC

  # Follow the difficulty: powBits in alys_syncStatus, alys_auxpow_difficulty on /metrics
  cast rpc --rpc-url http://127.0.0.1:3000 alys_syncStatus
  curl -s http://127.0.0.1:9101/metrics | grep alys_auxpow_difficulty

Logs go to stderr: an `info` line per accepted proof (height, hashes, hash rate); RUST_LOG filters.";

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
            _ = alys_miner::run(args.rpc, args.address, Duration::from_millis(args.poll_ms)) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    });
    Ok(())
}
