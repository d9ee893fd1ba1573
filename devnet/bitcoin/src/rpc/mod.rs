//! bitcoind's JSON-RPC over HTTP: the server, parameter handling and errors.
//!
//! Parameters come positionally (an array, as `bitcoin-cli` and `bitcoincore-rpc` send them) or by
//! name (an object); [`Args`] maps both onto each method's parameter list. Errors carry Core's codes
//! ([`crate::error::codes`]) and, where clients match on them, Core's messages. Every method runs on
//! tokio's blocking pool under one lock of the node, so calls are serialized like `cs_main` does.
//! Requests in JSON-RPC 1.0 (or with no version) are answered in Core's legacy shape
//! ([`LegacyJsonRpcLayer`]).

mod auth;
mod chain;
mod json;
mod legacy;
mod wallet;

use std::{
    net::SocketAddr,
    path::PathBuf,
    str::FromStr,
    sync::{Arc, Mutex},
};

use bitcoin::{Address, Amount, Denomination, Transaction, consensus::Decodable, hex::FromHex};
use jsonrpsee::{
    RpcModule,
    server::{Server, ServerConfig, ServerHandle},
    types::{ErrorObjectOwned, Params},
};
use serde_json::Value;

pub use self::{
    auth::{BasicAuthLayer, BasicAuthService},
    legacy::{LegacyJsonRpcLayer, LegacyJsonRpcService},
};
use crate::{
    error::{Reject, codes},
    node::{Node, NodeError},
    params::NETWORK,
};

/// An RPC error: Core's code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    /// Core's error code.
    pub code: i32,
    /// The message.
    pub message: String,
}

impl RpcError {
    /// An error with `code` and `message`.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// `RPC_INVALID_PARAMETER`.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_PARAMETER, message)
    }
}

impl From<Reject> for RpcError {
    fn from(reason: Reject) -> Self {
        Self::new(reason.rpc_code(), reason.to_string())
    }
}

impl From<NodeError> for RpcError {
    fn from(err: NodeError) -> Self {
        match err {
            NodeError::Reject(reason) => reason.into(),
            NodeError::Store(err) => Self::new(codes::MISC_ERROR, err.to_string()),
        }
    }
}

impl From<RpcError> for ErrorObjectOwned {
    fn from(err: RpcError) -> Self {
        Self::owned(err.code, err.message, None::<()>)
    }
}

/// A method's arguments, positional or named.
#[derive(Debug)]
pub struct Args {
    values: Vec<Value>,
}

impl Args {
    fn parse(params: &Params<'_>, names: &[&str]) -> Result<Self, RpcError> {
        let value: Value = if params.as_str().is_none() {
            Value::Null
        } else {
            params.parse().map_err(|err| RpcError::new(codes::MISC_ERROR, err.to_string()))?
        };
        let values = match value {
            Value::Null => Vec::new(),
            Value::Array(values) if values.len() > names.len() => {
                return Err(RpcError::new(codes::MISC_ERROR, "too many parameters"));
            }
            Value::Array(values) => values,
            Value::Object(mut map) => {
                let values: Vec<Value> =
                    names.iter().map(|name| map.remove(*name).unwrap_or(Value::Null)).collect();
                if let Some(unknown) = map.keys().next() {
                    return Err(RpcError::invalid_parameter(format!("Unknown named parameter {unknown}")));
                }
                values
            }
            _ => return Err(RpcError::new(codes::MISC_ERROR, "params must be an array or an object")),
        };
        Ok(Self { values })
    }

    /// The argument at `index`, absent when missing or null.
    pub fn get(&self, index: usize) -> Option<&Value> {
        self.values.get(index).filter(|value| !value.is_null())
    }

    fn required(&self, index: usize, name: &str) -> Result<&Value, RpcError> {
        self.get(index)
            .ok_or_else(|| RpcError::new(codes::MISC_ERROR, format!("Missing required parameter {name}")))
    }

    /// A required string.
    pub fn str(&self, index: usize, name: &str) -> Result<&str, RpcError> {
        self.required(index, name)?.as_str().ok_or_else(|| type_error(name, "string"))
    }

    /// A string parsed with `FromStr` (hashes, txids), `-8` when it does not parse.
    pub fn parsed<T: FromStr>(&self, index: usize, name: &str) -> Result<T, RpcError> {
        let text = self.str(index, name)?;
        text.parse().map_err(|_| {
            RpcError::invalid_parameter(format!("{name} must be hexadecimal string (not '{text}')"))
        })
    }

    /// An optional unsigned integer.
    pub fn u64_or(&self, index: usize, name: &str, default: u64) -> Result<u64, RpcError> {
        match self.get(index) {
            None => Ok(default),
            Some(value) => value.as_u64().ok_or_else(|| type_error(name, "non-negative number")),
        }
    }

    /// An optional boolean; numbers count as booleans as Core's verbosity flags allow.
    pub fn bool_or(&self, index: usize, name: &str, default: bool) -> Result<bool, RpcError> {
        match self.get(index) {
            None => Ok(default),
            Some(Value::Bool(flag)) => Ok(*flag),
            Some(Value::Number(n)) => Ok(n.as_u64().unwrap_or(1) != 0),
            Some(_) => Err(type_error(name, "bool")),
        }
    }
}

fn type_error(name: &str, expected: &str) -> RpcError {
    RpcError::new(codes::TYPE_ERROR, format!("Expected type {expected} for {name}"))
}

/// Parses a regtest address, `-5` otherwise.
pub fn parse_address(text: &str) -> Result<Address, RpcError> {
    Address::from_str(text)
        .ok()
        .and_then(|address| address.require_network(NETWORK).ok())
        .ok_or_else(|| RpcError::new(codes::INVALID_ADDRESS_OR_KEY, format!("Invalid address: {text}")))
}

/// Parses an amount in BTC given as a JSON number or string (`AmountFromValue`).
pub fn parse_amount(value: &Value) -> Result<Amount, RpcError> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return Err(RpcError::new(codes::TYPE_ERROR, "Amount is not a number or string")),
    };
    let amount = if text.contains(['e', 'E']) {
        text.parse::<f64>().ok().and_then(|btc| Amount::from_btc(btc).ok())
    } else {
        Amount::from_str_in(&text, Denomination::Bitcoin).ok()
    };
    amount
        .filter(|a| *a <= Amount::MAX_MONEY)
        .ok_or_else(|| RpcError::new(codes::TYPE_ERROR, "Invalid amount"))
}

/// Decodes a transaction from hex the way `DecodeHexTx` does: with witness, and without it (which a
/// transaction with no inputs needs), preferring the reading whose scripts make sense.
pub fn decode_tx(hex: &str, witness: Option<bool>) -> Option<Transaction> {
    let bytes = Vec::<u8>::from_hex(hex).ok()?;
    let extended = if witness == Some(false) {
        None
    } else {
        bitcoin::consensus::deserialize::<Transaction>(&bytes).ok()
    };
    let sane = |tx: &Transaction| !tx.input.is_empty();
    if let Some(tx) = extended.as_ref().filter(|tx| witness == Some(true) || sane(tx)) {
        return Some(tx.clone());
    }
    let legacy = if witness == Some(true) { None } else { decode_legacy(&bytes) };
    legacy.or(extended)
}

fn decode_legacy(bytes: &[u8]) -> Option<Transaction> {
    let mut reader = bytes;
    let version = bitcoin::transaction::Version::consensus_decode(&mut reader).ok()?;
    let input = Vec::<bitcoin::TxIn>::consensus_decode(&mut reader).ok()?;
    let output = Vec::<bitcoin::TxOut>::consensus_decode(&mut reader).ok()?;
    let lock_time = bitcoin::absolute::LockTime::consensus_decode(&mut reader).ok()?;
    reader.is_empty().then_some(Transaction { version, lock_time, input, output })
}

/// A method: arguments in, Core's JSON result out.
type Handler = fn(&mut Node, &Args) -> Result<Value, RpcError>;

/// Every method with its parameter names (for named calls) and handler.
const METHODS: &[(&str, &[&str], Handler)] = &[
    ("getblockchaininfo", &[], chain::getblockchaininfo),
    ("getnetworkinfo", &[], chain::getnetworkinfo),
    ("getblockcount", &[], chain::getblockcount),
    ("getbestblockhash", &[], chain::getbestblockhash),
    ("getblockhash", &["height"], chain::getblockhash),
    ("getblock", &["blockhash", "verbosity"], chain::getblock),
    ("getblockheader", &["blockhash", "verbose"], chain::getblockheader),
    ("getrawtransaction", &["txid", "verbose", "blockhash"], chain::getrawtransaction),
    ("decoderawtransaction", &["hexstring", "iswitness"], chain::decoderawtransaction),
    ("sendrawtransaction", &["hexstring", "maxfeerate", "maxburnamount"], chain::sendrawtransaction),
    ("testmempoolaccept", &["rawtxs", "maxfeerate"], chain::testmempoolaccept),
    ("getrawmempool", &["verbose", "mempool_sequence"], chain::getrawmempool),
    ("getmempoolentry", &["txid"], chain::getmempoolentry),
    ("getmempoolinfo", &[], chain::getmempoolinfo),
    ("savemempool", &[], chain::savemempool),
    ("gettxout", &["txid", "n", "include_mempool"], chain::gettxout),
    ("estimatesmartfee", &["conf_target", "estimate_mode"], chain::estimatesmartfee),
    ("generatetoaddress", &["nblocks", "address", "maxtries"], chain::generatetoaddress),
    ("generateblock", &["output", "transactions", "submit"], chain::generateblock),
    ("submitblock", &["hexdata", "dummy"], chain::submitblock),
    ("invalidateblock", &["blockhash"], chain::invalidateblock),
    ("reconsiderblock", &["blockhash"], chain::reconsiderblock),
    ("scantxoutset", &["action", "scanobjects"], chain::scantxoutset),
    ("getnewaddress", &["label", "address_type"], wallet::getnewaddress),
    ("getbalance", &["dummy", "minconf", "include_watchonly", "avoid_reuse"], wallet::getbalance),
    (
        "listunspent",
        &["minconf", "maxconf", "addresses", "include_unsafe", "query_options"],
        wallet::listunspent,
    ),
    (
        "sendtoaddress",
        &[
            "address",
            "amount",
            "comment",
            "comment_to",
            "subtractfeefromamount",
            "replaceable",
            "conf_target",
            "estimate_mode",
            "avoid_reuse",
            "fee_rate",
            "verbose",
        ],
        wallet::sendtoaddress,
    ),
    ("createrawtransaction", &["inputs", "outputs", "locktime", "replaceable"], wallet::createrawtransaction),
    ("fundrawtransaction", &["hexstring", "options", "iswitness"], wallet::fundrawtransaction),
    (
        "signrawtransactionwithwallet",
        &["hexstring", "prevtxs", "sighashtype"],
        wallet::signrawtransactionwithwallet,
    ),
    (
        "getreceivedbyaddress",
        &["address", "minconf", "include_immature_coinbase"],
        wallet::getreceivedbyaddress,
    ),
    ("gettransaction", &["txid", "include_watchonly", "verbose"], wallet::gettransaction),
    ("createwallet", &["wallet_name"], wallet::loadwallet),
    ("loadwallet", &["filename"], wallet::loadwallet),
];

/// The names of the methods this server answers.
pub fn method_names() -> impl Iterator<Item = &'static str> {
    METHODS.iter().map(|(name, _, _)| *name)
}

/// Builds the method table over `node`.
pub fn module(
    node: Arc<Mutex<Node>>,
) -> Result<RpcModule<Mutex<Node>>, jsonrpsee::core::RegisterMethodError> {
    let mut module = RpcModule::from_arc(node);
    for &(name, names, handler) in METHODS {
        module.register_blocking_method(name, move |params, node, _| -> Result<Value, ErrorObjectOwned> {
            let span = tracing::debug_span!(target: "devnet::bitcoin::rpc", "rpc", method = name);
            let _entered = span.enter();
            let args = Args::parse(&params, names)?;
            let mut node = node.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            handler(&mut node, &args).map_err(|err| {
                tracing::debug!(target: "devnet::bitcoin::rpc", code = err.code, message = %err.message, "call refused");
                err.into()
            })
        })?;
    }
    Ok(module)
}

/// Starts the HTTP JSON-RPC server on `addr`, accepting `credentials` (`user:password` pairs).
pub async fn serve(
    node: Arc<Mutex<Node>>,
    addr: SocketAddr,
    credentials: Vec<String>,
) -> Result<(SocketAddr, ServerHandle), std::io::Error> {
    // Authentication first, as bitcoind refuses a request before reading its body.
    let middleware =
        tower::ServiceBuilder::new().layer(BasicAuthLayer::new(credentials)).layer(LegacyJsonRpcLayer);
    let config = ServerConfig::builder().http_only().max_request_body_size(legacy::MAX_BODY_SIZE).build();
    let server = Server::builder().set_config(config).set_http_middleware(middleware).build(addr).await?;
    let local = server.local_addr()?;
    let module = module(node).map_err(std::io::Error::other)?;
    Ok((local, server.start(module)))
}

/// Where `-rpccookiefile` would point by default: `<datadir>/.cookie`.
pub fn cookie_path(datadir: &std::path::Path) -> PathBuf {
    datadir.join(".cookie")
}
