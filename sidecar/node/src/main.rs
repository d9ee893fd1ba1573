//! `alys`: the Alys consensus sidecar.

use std::path::PathBuf;

use alys_node::{config::NodeConfig, install_metrics, launch};
use alys_primitives::AuthorityKey;
use clap::{Parser, Subcommand};
use eyre::WrapErr;

/// The Alys consensus sidecar: Aura, AuxPow, Engine API driver and bridge.
#[derive(Debug, Parser)]
#[command(name = "alys", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the node.
    Run {
        /// Configuration file.
        #[arg(long, default_value = "etc/config/alys.toml")]
        config: PathBuf,
    },
    /// A one-screen summary of a running node (head, finality, production, peers, execution client,
    /// Bitcoin, governance), read over its Alys RPC.
    Status {
        /// The node's Alys RPC.
        #[arg(long, default_value = "http://127.0.0.1:3000")]
        rpc: String,
    },
    /// Authority key tools.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Write a new random BLS authority key to a file (refuses to overwrite).
    Generate {
        /// Where to write the secret key.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the public key of a key file, for the `authorities` list.
    Public {
        /// The secret key file.
        #[arg(long)]
        key_file: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    // Failpoints (crash-point tests) are armed only by the FAILPOINTS environment variable.
    let _failpoints = fail::FailScenario::setup();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One line per cause, each said once (no source locations: this is for operators).
            let mut said: Vec<String> = Vec::new();
            for cause in error.chain() {
                let text = cause.to_string().replace('\n', " ");
                if !said.iter().any(|s| s.contains(&text)) {
                    said.push(text);
                }
            }
            eprintln!("error: {}", said.join("\n  caused by: "));
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> eyre::Result<()> {
    match cli.command {
        Command::Run { config: path } => {
            let config = NodeConfig::load(&path).wrap_err_with(|| format!("loading {}", path.display()))?;
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(async move {
                if let Some(addr) = config.metrics.listen {
                    install_metrics(addr)?;
                }
                let node = launch(config).await?;
                println!(
                    "{}",
                    serde_json::json!({
                        "event": "ready",
                        "rpc": format!("http://{}", node.rpc.local_addr()),
                        "dashboard": node.rpc.dashboard_url(),
                    })
                );
                alys_node::shutdown_signal().await;
                tracing::info!(target: "alys::node", "shutting down");
                node.shutdown().await;
                Ok(())
            })
        }
        Command::Status { rpc } => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            print!("{}", runtime.block_on(alys_node::status::read(&rpc))?);
            Ok(())
        }
        Command::Key(KeyCommand::Generate { out }) => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| eyre::eyre!("no randomness: {e}"))?;
            let key = AuthorityKey::from_seed(&seed)?;
            // Mode 0600, never over an existing file.
            key.write_file(&out)?;
            println!("{}", key.public());
            Ok(())
        }
        Command::Key(KeyCommand::Public { key_file }) => {
            println!("{}", AuthorityKey::from_file(&key_file)?.public());
            Ok(())
        }
    }
}
