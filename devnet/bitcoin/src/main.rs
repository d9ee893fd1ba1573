//! `alys-devnet-bitcoin`: the devnet's regtest Bitcoin node, with bitcoind's flags
//! (`-datadir=`, `-rpcport=`, `-rpcbind=`, `-rpcuser=`, `-rpcpassword=`; one or two dashes).

use std::net::{IpAddr, SocketAddr};

use alys_devnet_bitcoin::{BitcoinConfig, DEFAULT_RPC_ADDR};
use clap::Parser;
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
    let mut config =
        BitcoinConfig::new(args.datadir).with_rpc_addr(SocketAddr::new(args.rpcbind, args.rpcport));
    if let (Some(user), Some(password)) = (args.rpcuser, args.rpcpassword) {
        config = config.with_user_password(user, password);
    }
    let handle = alys_devnet_bitcoin::start(config).await.wrap_err("starting the regtest node")?;
    tokio::select! {
        () = handle.stopped() => {}
        result = tokio::signal::ctrl_c() => {
            result.wrap_err("waiting for ctrl-c")?;
            handle.stop().await;
        }
    }
    Ok(())
}
