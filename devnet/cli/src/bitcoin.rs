//! The devnet's Bitcoin node: `alys-devnet-bitcoin` in process, regtest with bitcoind's cookie
//! authentication, a wallet whose balance is mature from the start (101 blocks mined to it on a fresh
//! chain) and a new block every few seconds, so deposits confirm as they would on a busy regtest.

use std::{net::SocketAddr, path::Path, time::Duration};

use alys_devnet_bitcoin::{BitcoinConfig, BitcoinHandle};
use eyre::WrapErr as _;
use tokio::task::JoinHandle;

/// Blocks on a fresh chain before the first coinbase is spendable (maturity 100, plus the block itself).
const MATURE_HEIGHT: u32 = 101;

/// Starts the Bitcoin node in `datadir` on `addr`, funds its wallet, and mines a block every
/// `interval` (never, if zero). Returns the node and the mining task.
pub(crate) async fn start(
    datadir: &Path,
    addr: SocketAddr,
    interval: Duration,
) -> eyre::Result<(BitcoinHandle, Option<JoinHandle<()>>)> {
    let handle = alys_devnet_bitcoin::start(BitcoinConfig::new(datadir).with_rpc_addr(addr))
        .await
        .wrap_err_with(|| format!("starting the devnet Bitcoin node in {}", datadir.display()))?;
    let node = std::sync::Arc::clone(handle.node());
    let funding = node.clone();
    tokio::task::spawn_blocking(move || -> eyre::Result<()> {
        let mut node = funding.lock().map_err(|_| eyre::eyre!("the Bitcoin node's state is poisoned"))?;
        let height = node.chain().height();
        if height < MATURE_HEIGHT {
            let script = node.wallet_mut().new_address(false)?.script_pubkey();
            node.generate(u64::from(MATURE_HEIGHT - height), &script)?;
        }
        Ok(())
    })
    .await
    .wrap_err("funding the devnet Bitcoin wallet")??;
    let miner = (!interval.is_zero()).then(|| {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let node = node.clone();
                let mined = tokio::task::spawn_blocking(move || -> eyre::Result<()> {
                    let mut node =
                        node.lock().map_err(|_| eyre::eyre!("the Bitcoin node's state is poisoned"))?;
                    let script = node.wallet_mut().new_address(false)?.script_pubkey();
                    node.generate(1, &script)?;
                    Ok(())
                })
                .await;
                match mined {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        tracing::warn!(target: "alys::devnet", %error, "mining a Bitcoin block failed")
                    }
                    Err(error) => {
                        tracing::warn!(target: "alys::devnet", %error, "the Bitcoin miner task failed")
                    }
                }
            }
        })
    });
    Ok((handle, miner))
}
