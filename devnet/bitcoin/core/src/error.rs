//! Why a transaction or block is refused, in Bitcoin Core's words, and why the data directory failed.
//!
//! [`Reject`] renders as the reject reason Core reports (`bad-txns-inputs-missingorspent`,
//! `txn-mempool-conflict`, `min relay fee not met, 100 < 141`, ...) because clients match on those
//! strings; [`Reject::rpc_code`] is the JSON-RPC error code `sendrawtransaction` answers with.

use std::{borrow::Cow, io, path::PathBuf};

use bitcoin::Txid;

/// A transaction or block refused by consensus or mempool policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// An input spends an output that does not exist or is already spent in the chain.
    #[error("bad-txns-inputs-missingorspent")]
    MissingInputs,
    /// An input spends an output that a mempool transaction already spends, and that transaction does
    /// not signal replaceability (BIP125) while full RBF is off.
    #[error("txn-mempool-conflict")]
    MempoolConflict,
    /// The transaction spends an output of a transaction it would replace.
    #[error("bad-txns-spends-conflicting-tx, {txid} spends conflicting transaction {conflict}")]
    SpendsConflicting {
        /// The replacement.
        txid: Txid,
        /// The in-mempool ancestor it also conflicts with.
        conflict: Txid,
    },
    /// The replacement's fee rate is not above a directly conflicting transaction's (BIP125 rule 6).
    #[error(
        "insufficient fee, rejecting replacement {txid}; new feerate {} <= old feerate {}",
        fee_rate(.new),
        fee_rate(.old)
    )]
    ReplacementFeeRate {
        /// The replacement.
        txid: Txid,
        /// Its fee rate, in satoshis per virtual kilobyte.
        new: u64,
        /// The conflicting transaction's fee rate, in satoshis per virtual kilobyte.
        old: u64,
    },
    /// The conflicts and their descendants are more than
    /// [`crate::params::MAX_REPLACEMENT_CANDIDATES`] (BIP125 rule 5).
    #[error(
        "too many potential replacements, rejecting replacement {txid}; too many potential replacements ({count} > {max})",
        max = crate::params::MAX_REPLACEMENT_CANDIDATES
    )]
    TooManyReplacements {
        /// The replacement.
        txid: Txid,
        /// The transactions it would evict, counted per direct conflict.
        count: usize,
    },
    /// The replacement spends an unconfirmed output the replaced transactions did not (BIP125 rule 2).
    #[error("replacement-adds-unconfirmed, replacement {txid} adds unconfirmed input, idx {index}")]
    ReplacementAddsUnconfirmed {
        /// The replacement.
        txid: Txid,
        /// The input.
        index: usize,
    },
    /// The replacement pays less than the transactions it evicts (BIP125 rule 3).
    #[error(
        "insufficient fee, rejecting replacement {txid}, less fees than conflicting txs; {} < {}",
        money(.fee),
        money(.replaced)
    )]
    ReplacementFee {
        /// The replacement.
        txid: Txid,
        /// Its fee, in satoshis.
        fee: u64,
        /// The fees of the evicted transactions, in satoshis.
        replaced: u64,
    },
    /// What the replacement adds does not pay for its own size at the incremental relay fee (BIP125
    /// rule 4).
    #[error(
        "insufficient fee, rejecting replacement {txid}, not enough additional fees to relay; {} < {}",
        money(.additional),
        money(.required)
    )]
    ReplacementRelayFee {
        /// The replacement.
        txid: Txid,
        /// Its fee minus the evicted transactions' fees, in satoshis.
        additional: u64,
        /// Its virtual size at the incremental relay fee, in satoshis.
        required: u64,
    },
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

    /// The reason alone, without the detail Core appends after a comma (`testmempoolaccept`'s
    /// `reject-reason`, which reports `GetRejectReason()` where `sendrawtransaction` reports
    /// `ToString()`).
    pub fn reject_reason(&self) -> Cow<'static, str> {
        match self {
            Self::SpendsConflicting { .. } => "bad-txns-spends-conflicting-tx".into(),
            Self::ReplacementFeeRate { .. }
            | Self::ReplacementFee { .. }
            | Self::ReplacementRelayFee { .. } => "insufficient fee".into(),
            Self::TooManyReplacements { .. } => "too many potential replacements".into(),
            Self::ReplacementAddsUnconfirmed { .. } => "replacement-adds-unconfirmed".into(),
            Self::MinRelayFee { .. } => "min relay fee not met".into(),
            other => other.to_string().into(),
        }
    }
}

/// An amount of satoshis as Core's `FormatMoney` prints it: BTC with trailing zeros trimmed to two
/// decimals (`0.00000141`, `0.00001`, `1.00`).
pub fn money(sats: &u64) -> String {
    let mut text = format!("{}.{:08}", sats / 100_000_000, sats % 100_000_000);
    while text.ends_with('0') && text.len() - text.find('.').unwrap_or_default() > 3 {
        text.pop();
    }
    text
}

/// A fee rate in satoshis per virtual kilobyte as `CFeeRate::ToString` prints it.
pub fn fee_rate(per_kvb: &u64) -> String {
    format!("{}.{:08} BTC/kvB", per_kvb / 100_000_000, per_kvb % 100_000_000)
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
    /// `mempool.dat` has a format version this node does not read.
    #[error("mempool file version {0} is not supported (expected 1)")]
    MempoolVersion(u64),
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

#[cfg(test)]
mod tests {
    use bitcoin::hashes::Hash;

    use super::*;

    #[test]
    fn amounts_and_fee_rates_print_as_core_prints_them() {
        assert_eq!(money(&141), "0.00000141");
        assert_eq!(money(&1_000), "0.00001");
        assert_eq!(money(&50), "0.0000005");
        assert_eq!(money(&100_000_000), "1.00");
        assert_eq!(money(&123_450_000_000), "1234.50");
        assert_eq!(fee_rate(&1_000), "0.00001000 BTC/kvB");
        assert_eq!(fee_rate(&123_456_789), "1.23456789 BTC/kvB");
    }

    #[test]
    fn testmempoolaccept_reasons_drop_the_detail() {
        let txid = Txid::all_zeros();
        let rate = Reject::ReplacementFeeRate { txid, new: 8_181, old: 9_090 };
        assert_eq!(
            rate.to_string(),
            format!(
                "insufficient fee, rejecting replacement {txid}; new feerate 0.00008181 BTC/kvB <= old feerate 0.00009090 BTC/kvB"
            )
        );
        assert_eq!(rate.reject_reason(), "insufficient fee");
        assert_eq!(rate.rpc_code(), codes::VERIFY_REJECTED);
        let relay = Reject::ReplacementRelayFee { txid, additional: 50, required: 110 };
        assert!(relay.to_string().ends_with("not enough additional fees to relay; 0.0000005 < 0.0000011"));
        assert_eq!(Reject::MinRelayFee { fee: 0, min: 141 }.reject_reason(), "min relay fee not met");
        assert_eq!(Reject::MempoolConflict.reject_reason(), "txn-mempool-conflict");
    }
}
