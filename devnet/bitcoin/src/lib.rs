//! A Bitcoin regtest node for the devnet: a stand-in for `bitcoind -regtest` that speaks the same
//! JSON-RPC, so the Alys node runs unchanged against it or against Bitcoin Core 25+.
//!
//! It keeps Core's regtest consensus ([`params`], [`chain`]): real proof of work at the regtest
//! target, BIP34, the 150-block halving, coinbase maturity, merkle roots, the segwit witness
//! commitment, median-time-past, and every input script verified by libbitcoinconsensus. A
//! [`mempool`] takes BIP125 replacements as Core 25 does (full RBF behind
//! [`BitcoinConfig::with_full_rbf`]) and refuses fees under 1 sat/vB;
//! `invalidateblock`/`reconsiderblock` move between branches and return disconnected transactions to
//! the mempool. Blocks are appended to a file in the data directory ([`store`]) and replayed on start;
//! the mempool is saved to `mempool.dat` on [`BitcoinHandle::stop`] and on `savemempool`, and accepted
//! again on start (`-persistmempool`). A single P2WPKH [`wallet`] covers what a peg-in script needs
//! (`getnewaddress`, `createrawtransaction` with an OP_RETURN `data` output, `fundrawtransaction`,
//! `signrawtransactionwithwallet`, `sendrawtransaction`).
//!
//! The [`rpc`] server authenticates like bitcoind: a `.cookie` file (`__cookie__:<hex>`) in the data
//! directory, or `-rpcuser`/`-rpcpassword`; anything else gets HTTP 401. It takes JSON-RPC 1.0 bodies
//! (Core's `curl` examples, old scripts) as well as 2.0, and answers each in its own shape.
//!
//! ```no_run
//! # async fn run() -> Result<(), alys_devnet_bitcoin::StartError> {
//! let handle = alys_devnet_bitcoin::start(alys_devnet_bitcoin::BitcoinConfig::new("/tmp/btc")).await?;
//! println!("bitcoind-compatible RPC on {} (cookie {:?})", handle.addr(), handle.cookie_path());
//! handle.stop().await;
//! # Ok(()) }
//! ```

pub mod rpc;

pub use alys_devnet_bitcoin_core::{chain, error, mempool, node, params, store, wallet};

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use bitcoin::hex::DisplayHex;
use jsonrpsee::server::ServerHandle;

pub use alys_devnet_bitcoin_core::{Node, NodeError, NodeOptions};

/// bitcoind's default regtest RPC address.
pub const DEFAULT_RPC_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 18443);

/// How RPC clients authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcAuth {
    /// A random password written to `<datadir>/.cookie` as `__cookie__:<hex>` (bitcoind's default).
    Cookie,
    /// A fixed user and password (`-rpcuser`/`-rpcpassword`).
    UserPass {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
}

/// What [`start`] needs.
#[derive(Debug, Clone)]
pub struct BitcoinConfig {
    /// The data directory (`-datadir`); created if missing.
    pub datadir: PathBuf,
    /// Where the RPC server listens (`-rpcbind`/`-rpcport`); port 0 picks a free one.
    pub rpc_addr: SocketAddr,
    /// How clients authenticate.
    pub auth: RpcAuth,
    /// Mempool persistence and replacement policy (`-persistmempool`, `-mempoolfullrbf`).
    pub node: NodeOptions,
}

impl BitcoinConfig {
    /// A configuration with cookie authentication on [`DEFAULT_RPC_ADDR`].
    pub fn new(datadir: impl Into<PathBuf>) -> Self {
        Self {
            datadir: datadir.into(),
            rpc_addr: DEFAULT_RPC_ADDR,
            auth: RpcAuth::Cookie,
            node: NodeOptions::default(),
        }
    }

    /// Loads `mempool.dat` at start and writes it at [`BitcoinHandle::stop`] (`-persistmempool`, on by
    /// default), or neither.
    pub const fn with_persist_mempool(mut self, persist: bool) -> Self {
        self.node = self.node.with_persist_mempool(persist);
        self
    }

    /// Replaces mempool transactions that do not signal BIP125 (`-mempoolfullrbf`, off by default as
    /// in Core 25).
    pub const fn with_full_rbf(mut self, full_rbf: bool) -> Self {
        self.node = self.node.with_full_rbf(full_rbf);
        self
    }

    /// Listens on `addr` instead.
    pub const fn with_rpc_addr(mut self, addr: SocketAddr) -> Self {
        self.rpc_addr = addr;
        self
    }

    /// Authenticates with `user` and `password` instead of a cookie.
    pub fn with_user_password(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = RpcAuth::UserPass { user: user.into(), password: password.into() };
        self
    }
}

/// Why the node did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be opened or replayed.
    #[error("data directory: {0}")]
    Node(#[from] NodeError),
    /// The cookie could not be written.
    #[error("cookie file: {0}")]
    Cookie(#[from] error::StoreError),
    /// The RPC server could not bind.
    #[error("RPC server: {0}")]
    Server(#[from] std::io::Error),
}

/// A running node.
#[derive(Debug)]
pub struct BitcoinHandle {
    addr: SocketAddr,
    datadir: PathBuf,
    cookie: Option<PathBuf>,
    server: ServerHandle,
    node: Arc<Mutex<Node>>,
    persist_mempool: bool,
}

impl BitcoinHandle {
    /// The RPC server's address.
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, the URL RPC clients use.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The data directory.
    pub fn datadir(&self) -> &Path {
        &self.datadir
    }

    /// The cookie file, when cookie authentication is on.
    pub fn cookie_path(&self) -> Option<&Path> {
        self.cookie.as_deref()
    }

    /// The node's state, for in-process callers (tests, benchmarks).
    pub fn node(&self) -> &Arc<Mutex<Node>> {
        &self.node
    }

    /// Shuts down cleanly as bitcoind does: stops the server and waits for it, saves the mempool to
    /// `mempool.dat` (with `-persistmempool`), and removes the cookie. Dropping the handle instead is
    /// a crash: the unsaved mempool is lost.
    pub async fn stop(self) {
        let _ = self.server.stop();
        self.server.stopped().await;
        if self.persist_mempool {
            let node = Arc::clone(&self.node);
            let saved = tokio::task::spawn_blocking(move || {
                node.lock().unwrap_or_else(std::sync::PoisonError::into_inner).save_mempool()
            })
            .await;
            match saved {
                Ok(Ok(_)) => {}
                Ok(Err(err)) => tracing::warn!(target: "devnet::bitcoin", %err, "mempool not saved"),
                Err(err) => tracing::warn!(target: "devnet::bitcoin", %err, "mempool not saved"),
            }
        }
        if let Some(cookie) = &self.cookie {
            let _ = std::fs::remove_file(cookie);
        }
    }

    /// Waits until the server stops.
    pub async fn stopped(&self) {
        self.server.clone().stopped().await;
    }
}

/// Opens the data directory, replays its chain, writes the cookie (with [`RpcAuth::Cookie`]) and
/// starts the RPC server.
pub async fn start(config: BitcoinConfig) -> Result<BitcoinHandle, StartError> {
    let datadir = config.datadir.clone();
    let options = config.node;
    let node = tokio::task::spawn_blocking(move || Node::open_with(&datadir, options))
        .await
        .map_err(std::io::Error::other)??;
    let (credentials, cookie) = match config.auth {
        RpcAuth::UserPass { user, password } => (format!("{user}:{password}"), None),
        RpcAuth::Cookie => {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).map_err(error::StoreError::from)?;
            let line = format!("__cookie__:{}", secret.to_lower_hex_string());
            let path = rpc::cookie_path(&config.datadir);
            store::write_atomic(&path, line.as_bytes())?;
            (line, Some(path))
        }
    };
    let node = Arc::new(Mutex::new(node));
    let (addr, server) = rpc::serve(Arc::clone(&node), config.rpc_addr, vec![credentials]).await?;
    tracing::info!(target: "devnet::bitcoin", %addr, datadir = %config.datadir.display(), "regtest node started");
    let persist_mempool = options.persist_mempool;
    Ok(BitcoinHandle { addr, datadir: config.datadir, cookie, server, node, persist_mempool })
}
