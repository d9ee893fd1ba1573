//! `alys-devnet`: local Alys networks with every stand-in embedded.
//!
//! `alys-devnet` starts a complete local network: the embedded execution engine and an Alys authority
//! driving it. `alys-devnet el` runs the embedded execution engine on its own, as an operator runs reth or
//! geth: an Engine API (JWT) for a consensus client and an eth JSON-RPC for dApps and tools.
//! `alys-devnet governance` runs the devnet governance service on its own. `alys-devnet pegin` deposits
//! BTC from the devnet's Bitcoin wallet to an EVM address on Alys. `alys-devnet --authorities N` runs a
//! federation instead: each node and its engine as processes of their own (`alys-devnet node`, `alys-devnet
//! el`), and `alys-devnet join` adds a full node to a running one.

mod bitcoin;
mod el;
mod exex;
mod federation;
mod governance;
mod node;
mod pegin;
mod up;

use clap::{Parser, Subcommand};

/// Local Alys networks with every stand-in embedded.
#[derive(Debug, Parser)]
#[command(name = "alys-devnet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    up: up::UpArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the embedded execution engine alone (Engine API + eth JSON-RPC), like `reth node`.
    El(el::ElArgs),
    /// Run the devnet governance service alone (federation keys, signing, rotation, proposals).
    Governance(governance::GovernanceArgs),
    /// Deposit BTC from the devnet's Bitcoin wallet to an EVM address (a peg-in), as a user would.
    Pegin(pegin::PeginArgs),
    /// Run the Alys node from a configuration file, exactly as `alys run --config` does.
    Node(node::NodeArgs),
    /// Add a full node (its own engine and node processes) to a running multi-node devnet.
    Join(federation::JoinArgs),
}

fn main() -> eyre::Result<()> {
    // Failpoints (crash-point tests) are armed only by the FAILPOINTS environment variable.
    let _failpoints = fail::FailScenario::setup();
    let cli = Cli::parse();
    // The whole network prints one line per block itself; logs stay quiet unless RUST_LOG asks.
    let default_filter = if cli.command.is_none() { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Some(Command::El(args)) => el::run(args).await,
            Some(Command::Governance(args)) => governance::run(args).await,
            Some(Command::Pegin(args)) => pegin::run(args).await,
            Some(Command::Node(args)) => node::run(args).await,
            Some(Command::Join(args)) => federation::join(args).await,
            None if cli.up.is_federation() => federation::run(cli.up).await,
            None => up::run(cli.up).await,
        }
    })
}
