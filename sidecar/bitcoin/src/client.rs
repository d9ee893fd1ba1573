//! The bitcoind JSON-RPC client: `bitcoincore-rpc` on a blocking thread, with bitcoind's authentication,
//! timeouts, retries of transport failures, and errors typed by what the caller can do about them.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use backon::{ExponentialBuilder, Retryable as _};
use bitcoin::{Block, BlockHash, Transaction, Txid};
use bitcoincore_rpc::{Client, RpcApi as _, jsonrpc};

use crate::metrics as m;

/// How the node authenticates to bitcoind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BitcoinAuth {
    /// bitcoind's `.cookie` file (`<datadir>/<network>/.cookie`), re-read whenever a call is refused,
    /// since bitcoind writes a new cookie each time it starts.
    Cookie(PathBuf),
    /// `-rpcuser` / `-rpcpassword` (or an `-rpcauth` entry).
    UserPassword {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
}

/// Where bitcoind is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitcoinClientConfig {
    /// The JSON-RPC URL, e.g. `http://127.0.0.1:8332` (18443 on regtest).
    pub url: String,
    /// Credentials.
    pub auth: BitcoinAuth,
    /// How long one call may take.
    pub timeout: Duration,
    /// How many times a call that failed in transport is tried again.
    pub retries: usize,
}

impl BitcoinClientConfig {
    /// A configuration for `url` with `auth`, a 30 s timeout and 3 retries.
    pub fn new(url: impl Into<String>, auth: BitcoinAuth) -> Self {
        Self { url: url.into(), auth, timeout: Duration::from_secs(30), retries: 3 }
    }

    /// Sets the per-call timeout.
    pub const fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how many times a transport failure is retried.
    pub const fn with_retries(mut self, retries: usize) -> Self {
        self.retries = retries;
        self
    }
}

/// Why a call to bitcoind failed.
#[derive(Debug, thiserror::Error)]
pub enum BitcoinError {
    /// bitcoind could not be reached, refused the credentials, or answered something that is not
    /// JSON-RPC (retried before it is returned).
    #[error("bitcoind at {url} unreachable: {source}")]
    Transport {
        /// The URL.
        url: String,
        /// The transport's reason.
        source: jsonrpc::Error,
    },
    /// The cookie file could not be read.
    #[error("cannot read bitcoind's cookie {}: {source}", path.display())]
    Cookie {
        /// The file.
        path: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
    /// bitcoind answered with an error (e.g. -5 not found, -8 out of range).
    #[error("bitcoind error {code}: {message}")]
    Rpc {
        /// Bitcoin Core's error code.
        code: i32,
        /// Its message.
        message: String,
    },
    /// The answer did not have the expected shape.
    #[error("unexpected answer from bitcoind: {0}")]
    Answer(#[source] bitcoincore_rpc::Error),
    /// The blocking worker running the call was lost (the runtime is shutting down).
    #[error("the Bitcoin client's worker stopped")]
    Worker,
}

impl BitcoinError {
    /// Whether the node could not reach bitcoind (rather than bitcoind answering an error).
    pub const fn is_transport(&self) -> bool {
        matches!(self, Self::Transport { .. } | Self::Cookie { .. } | Self::Worker)
    }

    /// Bitcoin Core's error code, when bitcoind answered with an error.
    pub const fn rpc_code(&self) -> Option<i32> {
        match self {
            Self::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    fn from_rpc(url: &str, error: bitcoincore_rpc::Error) -> Self {
        match error {
            bitcoincore_rpc::Error::JsonRpc(jsonrpc::Error::Rpc(rpc)) => {
                Self::Rpc { code: rpc.code, message: rpc.message }
            }
            bitcoincore_rpc::Error::JsonRpc(source @ jsonrpc::Error::Transport(_)) => {
                Self::Transport { url: url.to_owned(), source }
            }
            bitcoincore_rpc::Error::JsonRpc(source @ jsonrpc::Error::Json(_)) => {
                Self::Transport { url: url.to_owned(), source }
            }
            other => Self::Answer(other),
        }
    }
}

/// Bitcoin Core's "not found" (`RPC_INVALID_ADDRESS_OR_KEY`, e.g. unknown block or transaction).
pub const RPC_NOT_FOUND: i32 = -5;
/// Bitcoin Core's `RPC_TRANSACTION_ERROR` (`RPC_VERIFY_ERROR`): `sendrawtransaction` refused for a
/// reason other than policy, chiefly missing or spent inputs.
pub(crate) const RPC_VERIFY_ERROR: i32 = -25;
/// Bitcoin Core's `RPC_TRANSACTION_REJECTED` (`RPC_VERIFY_REJECTED`): the mempool refused the
/// transaction (its message is the reject reason).
pub(crate) const RPC_VERIFY_REJECTED: i32 = -26;
/// Bitcoin Core's `RPC_TRANSACTION_ALREADY_IN_CHAIN`: the transaction's outputs are in the UTXO set.
pub(crate) const RPC_VERIFY_ALREADY_IN_CHAIN: i32 = -27;

impl BitcoinError {
    /// Whether `sendrawtransaction` refused the transaction because the best chain has it already
    /// (-27: "Transaction outputs already in utxo set", "transaction already in block chain").
    pub fn is_already_in_chain(&self) -> bool {
        self.rpc_code() == Some(RPC_VERIFY_ALREADY_IN_CHAIN)
    }

    /// Whether `sendrawtransaction` refused the transaction because the mempool has it already (-26
    /// `txn-already-in-mempool`, or `txn-already-known` for the same txid with another witness).
    pub fn is_already_in_mempool(&self) -> bool {
        matches!(self, Self::Rpc { code: RPC_VERIFY_REJECTED, message }
            if message.contains("txn-already-in-mempool") || message.contains("txn-already-known"))
    }

    /// Whether `sendrawtransaction` refused the transaction because an input is missing or spent (-25:
    /// a parent not broadcast yet, or the inputs spent already).
    pub fn is_missing_inputs(&self) -> bool {
        matches!(self, Self::Rpc { code: RPC_VERIFY_ERROR, message }
            if message.contains("missingorspent") || message.to_ascii_lowercase().contains("missing inputs"))
    }
}

/// Bitcoin Core's "out of range" (`RPC_INVALID_PARAMETER`, e.g. a height above the tip).
pub const RPC_OUT_OF_RANGE: i32 = -8;

/// What `getblockheader` says about a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderInfo {
    /// Its height.
    pub height: u64,
    /// Confirmations: 1 for the tip, more below it, -1 when it is not in the best chain.
    pub confirmations: i64,
}

/// The best block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BestBlock {
    /// Its height.
    pub height: u64,
    /// Its hash.
    pub hash: BlockHash,
}

/// A bitcoind client. Cheap to clone; calls run on tokio's blocking pool, one at a time per client
/// (the transport keeps one connection).
#[derive(Clone)]
pub struct BitcoinClient {
    config: Arc<BitcoinClientConfig>,
    client: Arc<Mutex<Arc<Client>>>,
}

impl std::fmt::Debug for BitcoinClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BitcoinClient").field("url", &self.config.url).finish_non_exhaustive()
    }
}

fn build(config: &BitcoinClientConfig) -> Result<Client, BitcoinError> {
    let transport = jsonrpc::http::simple_http::Builder::new()
        .url(&config.url)
        .map_err(|source| BitcoinError::Transport { url: config.url.clone(), source: source.into() })?
        .timeout(config.timeout);
    let transport = match &config.auth {
        BitcoinAuth::Cookie(path) => {
            let cookie = std::fs::read_to_string(path)
                .map_err(|source| BitcoinError::Cookie { path: path.clone(), source })?;
            transport.cookie_auth(cookie.trim())
        }
        BitcoinAuth::UserPassword { user, password } => {
            transport.auth(user.as_str(), Some(password.as_str()))
        }
    };
    Ok(Client::from_jsonrpc(jsonrpc::Client::with_transport(transport.build())))
}

impl BitcoinClient {
    /// A client for `config`. Reads the cookie file now, so a missing one is reported at launch.
    pub fn new(config: BitcoinClientConfig) -> Result<Self, BitcoinError> {
        let client = build(&config)?;
        Ok(Self { config: Arc::new(config), client: Arc::new(Mutex::new(Arc::new(client))) })
    }

    /// The URL this client calls.
    pub fn url(&self) -> &str {
        &self.config.url
    }

    fn current(&self) -> Result<Arc<Client>, BitcoinError> {
        self.client.lock().map(|c| Arc::clone(&c)).map_err(|_| BitcoinError::Worker)
    }

    /// Rebuilds the transport (a fresh cookie after bitcoind restarted).
    fn refresh(&self) {
        if matches!(self.config.auth, BitcoinAuth::Cookie(_))
            && let Ok(client) = build(&self.config)
            && let Ok(mut slot) = self.client.lock()
        {
            *slot = Arc::new(client);
        }
    }

    /// Runs `call` on a blocking thread, retrying transport failures with backoff.
    async fn run<T: Send + 'static>(
        &self,
        method: &'static str,
        call: impl Fn(&Client) -> Result<T, bitcoincore_rpc::Error> + Send + Sync + Clone + 'static,
    ) -> Result<T, BitcoinError> {
        let attempt = || {
            let call = call.clone();
            async move {
                let client = self.current()?;
                let url = self.config.url.clone();
                let started = Instant::now();
                let result = tokio::task::spawn_blocking(move || call(&client))
                    .await
                    .map_err(|_| BitcoinError::Worker)?
                    .map_err(|error| BitcoinError::from_rpc(&url, error));
                metrics::histogram!(m::RPC_SECONDS, "method" => method)
                    .record(started.elapsed().as_secs_f64());
                if let Err(error) = &result {
                    let kind = if error.is_transport() { "transport" } else { "rpc" };
                    metrics::counter!(m::RPC_ERRORS, "method" => method, "kind" => kind).increment(1);
                }
                result
            }
        };
        attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(2))
                    .with_max_times(self.config.retries),
            )
            .when(BitcoinError::is_transport)
            .notify(|error, wait| {
                tracing::debug!(target: "alys::bitcoin", method, %error, ?wait, "bitcoind call failed; retrying");
                self.refresh();
            })
            .await
    }

    /// `getblockchaininfo`: the chain name (`main`, `test`, `testnet4`, `signet`, `regtest`) and the tip.
    pub async fn chain(&self) -> Result<(String, BestBlock), BitcoinError> {
        let info = self.run("getblockchaininfo", |c| c.get_blockchain_info()).await?;
        let chain = info.chain.to_core_arg().to_owned();
        Ok((chain, BestBlock { height: info.blocks, hash: info.best_block_hash }))
    }

    /// The best block: `getbestblockhash` and its height.
    pub async fn best_block(&self) -> Result<BestBlock, BitcoinError> {
        Ok(self.chain().await?.1)
    }

    /// `getblockhash`: the best chain's block at `height`, `None` above the tip.
    pub async fn block_hash(&self, height: u64) -> Result<Option<BlockHash>, BitcoinError> {
        match self.run("getblockhash", move |c| c.get_block_hash(height)).await {
            Ok(hash) => Ok(Some(hash)),
            Err(error) if error.rpc_code() == Some(RPC_OUT_OF_RANGE) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `getblock <hash> 0`: the whole block.
    pub async fn block(&self, hash: BlockHash) -> Result<Block, BitcoinError> {
        self.run("getblock", move |c| c.get_block(&hash)).await
    }

    /// `getblockheader <hash> true`: height and confirmations, `None` for an unknown block.
    pub async fn header_info(&self, hash: BlockHash) -> Result<Option<HeaderInfo>, BitcoinError> {
        match self.run("getblockheader", move |c| c.get_block_header_info(&hash)).await {
            Ok(info) => Ok(Some(HeaderInfo {
                height: info.height as u64,
                confirmations: i64::from(info.confirmations),
            })),
            Err(error) if error.rpc_code() == Some(RPC_NOT_FOUND) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `getrawtransaction <txid> false <block>`: a transaction of a known block, `None` if it is not there.
    pub async fn transaction_in(
        &self,
        txid: Txid,
        block: BlockHash,
    ) -> Result<Option<Transaction>, BitcoinError> {
        match self.run("getrawtransaction", move |c| c.get_raw_transaction(&txid, Some(&block))).await {
            Ok(tx) => Ok(Some(tx)),
            Err(error) if error.rpc_code() == Some(RPC_NOT_FOUND) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `sendrawtransaction`: broadcasts a signed transaction.
    pub async fn send_transaction(&self, tx: Transaction) -> Result<Txid, BitcoinError> {
        self.run("sendrawtransaction", move |c| c.send_raw_transaction(&tx)).await
    }

    /// `getmempoolentry`: whether the transaction is in bitcoind's mempool.
    pub async fn mempool_entry(&self, txid: Txid) -> Result<bool, BitcoinError> {
        let args = [serde_json::Value::String(txid.to_string())];
        match self
            .run("getmempoolentry", move |c| c.call::<serde_json::Value>("getmempoolentry", &args))
            .await
        {
            Ok(_) => Ok(true),
            Err(error) if error.rpc_code() == Some(RPC_NOT_FOUND) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// `getrawtransaction <txid> true`: the block holding the transaction, `None` when it is in the
    /// mempool or unknown. Finds confirmed transactions only with bitcoind's `-txindex`.
    pub async fn transaction_block(&self, txid: Txid) -> Result<Option<BlockHash>, BitcoinError> {
        #[derive(serde::Deserialize)]
        struct Located {
            blockhash: Option<BlockHash>,
        }
        let args = [serde_json::Value::String(txid.to_string()), serde_json::Value::Bool(true)];
        match self.run("getrawtransaction", move |c| c.call::<Located>("getrawtransaction", &args)).await {
            Ok(located) => Ok(located.blockhash),
            Err(error) if error.rpc_code() == Some(RPC_NOT_FOUND) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]
    use super::*;
    use bitcoin::hashes::Hash as _;

    #[test]
    fn send_refusals_are_classified_by_code_and_reason() {
        let rpc = |code, message: &str| BitcoinError::Rpc { code, message: message.to_owned() };
        assert!(rpc(-27, "Transaction outputs already in utxo set").is_already_in_chain());
        assert!(rpc(-27, "transaction already in block chain").is_already_in_chain());
        assert!(rpc(-26, "txn-already-in-mempool").is_already_in_mempool());
        assert!(rpc(-26, "txn-already-known").is_already_in_mempool());
        assert!(!rpc(-26, "min relay fee not met, 100 < 141").is_already_in_mempool());
        assert!(rpc(-25, "bad-txns-inputs-missingorspent").is_missing_inputs());
        assert!(rpc(-25, "Missing inputs").is_missing_inputs());
        assert!(!rpc(-25, "Fee exceeds maximum configured by user").is_missing_inputs());
        assert!(!BitcoinError::Worker.is_already_in_chain() && !BitcoinError::Worker.is_missing_inputs());
    }

    /// Against the devnet's regtest node: a wallet payment is in the mempool, sending it again is
    /// accepted, and once mined it is "already in chain" and found in its block.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mempool_entries_and_transaction_blocks_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let handle = alys_devnet_bitcoin::start(
            alys_devnet_bitcoin::BitcoinConfig::new(dir.path()).with_rpc_addr("127.0.0.1:0".parse().unwrap()),
        )
        .await
        .unwrap();
        let cookie = handle.cookie_path().unwrap().to_owned();
        let client =
            BitcoinClient::new(BitcoinClientConfig::new(handle.url(), BitcoinAuth::Cookie(cookie.clone())))
                .unwrap();
        let raw =
            bitcoincore_rpc::Client::new(&handle.url(), bitcoincore_rpc::Auth::CookieFile(cookie)).unwrap();
        let txid = tokio::task::spawn_blocking(move || {
            let address: serde_json::Value = raw.call("getnewaddress", &[]).unwrap();
            let _: Vec<BlockHash> = raw.call("generatetoaddress", &[101.into(), address.clone()]).unwrap();
            let txid: Txid = raw.call("sendtoaddress", &[address, 1.5.into()]).unwrap();
            let tx: Transaction = raw.get_raw_transaction(&txid, None).unwrap();
            (txid, tx, raw)
        })
        .await
        .unwrap();
        let (txid, tx, raw) = txid;
        assert!(client.mempool_entry(txid).await.unwrap());
        assert_eq!(client.transaction_block(txid).await.unwrap(), None, "in the mempool, no block yet");
        assert_eq!(client.send_transaction(tx.clone()).await.unwrap(), txid, "already in the mempool");

        let mined = tokio::task::spawn_blocking(move || {
            let address: serde_json::Value = raw.call("getnewaddress", &[]).unwrap();
            let hashes: Vec<BlockHash> = raw.call("generatetoaddress", &[1.into(), address]).unwrap();
            hashes[0]
        })
        .await
        .unwrap();
        assert!(!client.mempool_entry(txid).await.unwrap());
        assert_eq!(client.transaction_block(txid).await.unwrap(), Some(mined));
        let again = client.send_transaction(tx).await.unwrap_err();
        assert!(again.is_already_in_chain(), "{again}");
        let unknown = Txid::from_byte_array([7; 32]);
        assert!(!client.mempool_entry(unknown).await.unwrap());
        assert_eq!(client.transaction_block(unknown).await.unwrap(), None);
    }
}
