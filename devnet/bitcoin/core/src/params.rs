//! Regtest consensus parameters, as Bitcoin Core's `CRegTestParams` sets them.
//!
//! Regtest keeps mainnet's rules but makes work trivial: the target is `0x207fffff` (every other hash
//! meets it), difficulty never retargets, and the subsidy halves every 150 blocks instead of 210,000.
//! BIP34 (height in coinbase), BIP65/66, CSV and segwit are active from genesis.

use bitcoin::{Amount, Block, CompactTarget, Network, Weight, blockdata::constants::genesis_block};

/// The network addresses and keys are encoded for.
pub const NETWORK: Network = Network::Regtest;

/// The proof-of-work target of every regtest block (`powLimit`, no retargeting).
pub const POW_BITS: u32 = 0x207f_ffff;

/// [`POW_BITS`] as a header field.
pub fn pow_bits() -> CompactTarget {
    CompactTarget::from_consensus(POW_BITS)
}

/// Blocks between subsidy halvings on regtest.
pub const HALVING_INTERVAL: u32 = 150;

/// Confirmations a coinbase output needs before it can be spent (`COINBASE_MATURITY`).
pub const COINBASE_MATURITY: u32 = 100;

/// The largest block weight (`MAX_BLOCK_WEIGHT`).
pub const MAX_BLOCK_WEIGHT: Weight = Weight::MAX_BLOCK;

/// The minimum relay fee rate in satoshis per virtual kilobyte (`-minrelaytxfee`, 1 sat/vB).
pub const MIN_RELAY_FEE_PER_KVB: u64 = 1_000;

/// The fee rate a replacement must add on top of what it evicts, per virtual kilobyte of its own size
/// (`-incrementalrelayfee`, 1 sat/vB).
pub const INCREMENTAL_RELAY_FEE_PER_KVB: u64 = 1_000;

/// The most transactions one replacement may evict, counted as Core counts them: each direct conflict
/// with all its descendants (`MAX_REPLACEMENT_CANDIDATES`).
pub const MAX_REPLACEMENT_CANDIDATES: usize = 100;

/// The fee rate `sendrawtransaction` refuses above unless told otherwise (`maxfeerate`, 0.10 BTC/kvB).
pub const MAX_FEE_PER_KVB: u64 = 10_000_000;

/// How far ahead of the local clock a block's time may be (`MAX_FUTURE_BLOCK_TIME`, two hours).
pub const MAX_FUTURE_BLOCK_TIME: u64 = 2 * 60 * 60;

/// The genesis block of regtest (Bitcoin Core's, hash `0f9188f1…22060f`).
pub fn genesis() -> Block {
    genesis_block(NETWORK)
}

/// The block subsidy at `height`: 50 BTC, halved every [`HALVING_INTERVAL`] blocks, zero after 64 halvings.
pub fn subsidy(height: u32) -> Amount {
    let halvings = height / HALVING_INTERVAL;
    if halvings >= 64 { Amount::ZERO } else { Amount::from_sat((50 * 100_000_000u64) >> halvings) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsidy_halves_every_150_blocks() {
        assert_eq!(subsidy(0), Amount::from_int_btc(50));
        assert_eq!(subsidy(149), Amount::from_int_btc(50));
        assert_eq!(subsidy(150), Amount::from_sat(2_500_000_000));
        assert_eq!(subsidy(150 * 64), Amount::ZERO);
        assert_eq!(
            genesis().block_hash().to_string(),
            "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
        );
    }
}
