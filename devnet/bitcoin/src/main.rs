//! `alys-devnet-bitcoin`: the devnet's regtest Bitcoin node, with bitcoind's flags
//! (`-datadir=`, `-rpcport=`, `-rpcbind=`, `-rpcuser=`, `-rpcpassword=`, `-persistmempool=`,
//! `-mempoolfullrbf=`; one or two dashes). SIGINT and SIGTERM shut it down cleanly, saving the mempool.

use std::net::{IpAddr, SocketAddr};

use alys_devnet_bitcoin::{BitcoinConfig, DEFAULT_RPC_ADDR};
use clap::{ArgAction, Parser, builder::BoolishValueParser};
use eyre::WrapErr;

/// A Bitcoin regtest node speaking bitcoind's JSON-RPC.
#[derive(Debug, Parser)]
#[command(name = "alys-devnet-bitcoin", version)]
struct Args {
    /// The data directory.
    #[arg(long, default_value = "./bitcoin-regtest")]
    datadir: std::path::PathBuf,
    /// The RPC port.
    #[arg(long, default_value_t = DEFAULT_RPC_ADDR.port())]
    rpcport: u16,
    /// The RPC bind address.
    #[arg(long, default_value_t = DEFAULT_RPC_ADDR.ip())]
    rpcbind: IpAddr,
    /// The RPC user (with -rpcpassword; otherwise a cookie file is written).
    #[arg(long, requires = "rpcpassword")]
    rpcuser: Option<String>,
    /// The RPC password.
    #[arg(long, requires = "rpcuser")]
    rpcpassword: Option<String>,
    /// Save the mempool at shutdown and load it at start (`-persistmempool=0` turns it off).
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "1", value_parser = BoolishValueParser::new())]
    persistmempool: bool,
    /// Replace mempool transactions that do not signal BIP125 (off by default, as in Core 25).
    #[arg(long, default_value_t = false, action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "1", value_parser = BoolishValueParser::new())]
    mempoolfullrbf: bool,
    /// Accepted for compatibility with bitcoind command lines; this node is always regtest.
    #[arg(long)]
    regtest: bool,
}

/// Rewrites bitcoind's single-dash flags (`-datadir=x`) into clap's `--datadir=x`.
fn normalized_args() -> Vec<String> {
    std::env::args()
        .enumerate()
        .map(|(i, arg)| {
            if i > 0 && arg.starts_with('-') && !arg.starts_with("--") && arg.len() > 2 {
                format!("-{arg}")
            } else {
                arg
            }
        })
        .collect()
}

#[tokio::main]
async fn main() -> eyre::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse_from(normalized_args());
    let mut config = BitcoinConfig::new(args.datadir)
        .with_rpc_addr(SocketAddr::new(args.rpcbind, args.rpcport))
        .with_persist_mempool(args.persistmempool)
        .with_full_rbf(args.mempoolfullrbf);
    if let (Some(user), Some(password)) = (args.rpcuser, args.rpcpassword) {
        config = config.with_user_password(user, password);
    }
    let handle = alys_devnet_bitcoin::start(config).await.wrap_err("starting the regtest node")?;
    tokio::select! {
        () = handle.stopped() => {}
        result = shutdown_signal() => {
            result?;
            handle.stop().await;
        }
    }
    Ok(())
}

/// SIGINT or (on Unix) SIGTERM, both of which bitcoind takes as a clean shutdown.
async fn shutdown_signal() -> eyre::Result<()> {
    #[cfg(unix)]
    {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .wrap_err("installing the SIGTERM handler")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.wrap_err("waiting for ctrl-c"),
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await.wrap_err("waiting for ctrl-c")
}
