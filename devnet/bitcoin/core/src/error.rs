//! Why a transaction or block is refused, in Bitcoin Core's words, and why the data directory failed.
//!
//! [`Reject`] renders as the reject reason Core reports (`bad-txns-inputs-missingorspent`,
//! `txn-mempool-conflict`, `min relay fee not met, 100 < 141`, ...) because clients match on those
//! strings; [`Reject::rpc_code`] is the JSON-RPC error code `sendrawtransaction` answers with.

use std::{io, path::PathBuf};

/// A transaction or block refused by consensus or mempool policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// An input spends an output that does not exist or is already spent in the chain.
    #[error("bad-txns-inputs-missingorspent")]
    MissingInputs,
    /// An input spends an output that a mempool transaction already spends.
    #[error("txn-mempool-conflict")]
    MempoolConflict,
    /// The transaction's outputs are already in the UTXO set.
    #[error("Transaction outputs already in utxo set")]
    AlreadyInChain,
    /// The transaction is already in the mempool.
    #[error("txn-already-in-mempool")]
    AlreadyInMempool,
    /// A coinbase output is spent before [`crate::params::COINBASE_MATURITY`] confirmations.
    #[error("bad-txns-premature-spend-of-coinbase")]
    PrematureCoinbase,
    /// The transaction pays less than the minimum relay fee for its size.
    #[error("min relay fee not met, {fee} < {min}")]
    MinRelayFee {
        /// The fee paid, in satoshis.
        fee: u64,
        /// The fee required, in satoshis.
        min: u64,
    },
    /// The fee rate is above the caller's `maxfeerate`.
    #[error("Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)")]
    MaxFeeExceeded,
    /// An input script does not verify (libbitcoinconsensus's verdict).
    #[error("mandatory-script-verify-flag-failed (input {index}: {reason})")]
    Script {
        /// The input that failed.
        index: usize,
        /// libbitcoinconsensus's error.
        reason: String,
    },
    /// A taproot (witness v1) output is spent; this node's libbitcoinconsensus cannot verify it.
    #[error("taproot-spend-unsupported")]
    TaprootUnsupported,
    /// The lock time is not yet reached.
    #[error("non-final")]
    NonFinal,
    /// A context-free or contextual consensus rule, by Core's reason string.
    #[error("{0}")]
    Consensus(&'static str),
}

impl Reject {
    /// The JSON-RPC code `sendrawtransaction` answers with for this reason.
    pub const fn rpc_code(&self) -> i32 {
        match self {
            Self::MissingInputs | Self::MaxFeeExceeded => codes::VERIFY_ERROR,
            Self::AlreadyInChain => codes::VERIFY_ALREADY_IN_CHAIN,
            _ => codes::VERIFY_REJECTED,
        }
    }
}

/// A failure reading or writing the data directory.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A stored block does not decode.
    #[error("stored block does not decode: {0}")]
    Decode(#[from] bitcoin::consensus::encode::Error),
    /// The wallet file is not valid JSON of the expected shape.
    #[error("wallet file: {0}")]
    Wallet(#[from] serde_json::Error),
    /// A wallet key cannot be derived.
    #[error("wallet key derivation: {0}")]
    Keys(#[from] bitcoin::bip32::Error),
    /// The system's random source failed.
    #[error("random source: {0}")]
    Random(#[from] getrandom::Error),
    /// A stored block no longer connects to the chain.
    #[error("stored block refused on reload: {0}")]
    Replay(#[source] Reject),
}

impl StoreError {
    /// Wraps an I/O error with the file it concerns.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

/// Bitcoin Core's JSON-RPC error codes (`src/rpc/protocol.h`).
pub mod codes {
    /// `RPC_MISC_ERROR`: an exception not otherwise classified.
    pub const MISC_ERROR: i32 = -1;
    /// `RPC_TYPE_ERROR`: a parameter has the wrong JSON type.
    pub const TYPE_ERROR: i32 = -3;
    /// `RPC_WALLET_ERROR`: an unspecified wallet problem.
    pub const WALLET_ERROR: i32 = -4;
    /// `RPC_INVALID_ADDRESS_OR_KEY`: an unknown address, key, transaction or block.
    pub const INVALID_ADDRESS_OR_KEY: i32 = -5;
    /// `RPC_WALLET_INSUFFICIENT_FUNDS`.
    pub const WALLET_INSUFFICIENT_FUNDS: i32 = -6;
    /// `RPC_INVALID_PARAMETER`: a parameter has a valid type but an invalid value.
    pub const INVALID_PARAMETER: i32 = -8;
    /// `RPC_DESERIALIZATION_ERROR`: hex or bytes that do not decode.
    pub const DESERIALIZATION_ERROR: i32 = -22;
    /// `RPC_VERIFY_ERROR`: a transaction or block failed verification (missing inputs).
    pub const VERIFY_ERROR: i32 = -25;
    /// `RPC_VERIFY_REJECTED`: refused by consensus or policy.
    pub const VERIFY_REJECTED: i32 = -26;
    /// `RPC_VERIFY_ALREADY_IN_CHAIN`: the transaction is already confirmed.
    pub const VERIFY_ALREADY_IN_CHAIN: i32 = -27;
}
