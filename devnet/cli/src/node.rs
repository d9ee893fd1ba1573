//! `alys-devnet node`: the Alys node in this process, exactly as `alys run --config` runs it, so the
//! multi-node devnet needs no binary but its own.

use std::path::PathBuf;

use alys_node::{config::NodeConfig, install_metrics, launch};
use clap::Args;
use eyre::WrapErr;

/// The node's configuration file.
#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    /// Configuration file (the format of `etc/config/alys.toml`).
    #[arg(long, value_name = "FILE", default_value = "etc/config/alys.toml")]
    config: PathBuf,
}

pub(crate) async fn run(args: NodeArgs) -> eyre::Result<()> {
    let config =
        NodeConfig::load(&args.config).wrap_err_with(|| format!("loading {}", args.config.display()))?;
    if let Some(addr) = config.metrics.listen {
        install_metrics(addr)?;
    }
    let node = launch(config).await?;
    // One machine-readable line on stdout, as `alys run` prints, with where peers reach the node.
    println!(
        "{}",
        serde_json::json!({
            "event": "ready",
            "rpc": format!("http://{}", node.rpc.local_addr()),
            "dashboard": crate::up::dashboard_url(&node.rpc),
            "p2p": node.p2p,
            "pid": std::process::id(),
        })
    );
    alys_node::shutdown_signal().await;
    tracing::info!(target: "alys::node", "shutting down");
    node.shutdown().await;
    Ok(())
}
