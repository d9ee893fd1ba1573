//! Difficulty retargeting: ASERT ("absolutely scheduled exponentially rising targets", Bitcoin Cash's
//! `aserti3-2d` since November 2020), with an accepted AuxPow proof in the role of a block.
//!
//! # The schedule
//!
//! An *anchor* fixes a target and a time. From there proofs are expected one every `spacing` seconds,
//! so proof `n` after the anchor is due at `anchor_secs + n × spacing`. Every second a proof lands
//! behind that schedule makes the next target easier, every second ahead makes it harder, by a factor
//! of two per `half_life` seconds:
//!
//! ```text
//! next_target = anchor_target × 2^((last_proof_secs − anchor_secs − spacing × proofs_since_anchor) / half_life)
//! ```
//!
//! The target depends only on how far the *last* proof is off the schedule, never on a window of past
//! intervals: rounding errors cannot accumulate, there is no oscillation, and a miner who comes and goes
//! cannot game a window. When hash rate is steady, the target settles where proofs arrive every
//! `spacing` on average and the schedule offset stays put; a long half-life averages more proofs (a
//! steadier target), a short one follows hash rate changes faster. An easier target than the pow limit
//! is never handed out.
//!
//! # Time of a proof
//!
//! A proof's time is the execution timestamp of the block that carries it: consensus data every node
//! reads from the block, never a local clock. The state after each proof ([`Schedule`]) is a function
//! of the state before it and that timestamp, so every node that imported the same blocks computes the
//! same bits, and a block whose proof met other bits is refused.
//!
//! # The anchor
//!
//! The chain starts anchored at genesis: the pow limit at the genesis block's timestamp
//! ([`Schedule::anchored_at`]), so the first proof must meet the pow limit, as before ASERT.
//! The specification dates the anchor by its *parent's* timestamp; here the anchor carries its own time
//! and its parent is taken to be one spacing earlier (`time_delta = last − anchor + spacing` below),
//! which makes the proof right after an anchor meet exactly the anchor's bits.
//!
//! One rule is added to the specification: when a proof lands so late that the schedule asks for a
//! target at or beyond the pow limit, that proof becomes the new anchor, at the pow limit. A chain that
//! idles below the hash rate the pow limit expects (a devnet left without a miner, a new chain) would
//! otherwise bank the whole idle time as schedule slack, and a miner arriving later would get that many
//! proofs at the pow limit before the target started to move. Bitcoin Cash never meets its pow limit, so
//! the specification does not need the rule; it keeps the anchor's bits and time the only history.
//!
//! # Integer arithmetic
//!
//! [`asert_bits`] is the specification's algorithm exactly (checked against its published test
//! vectors): the exponent in 16-bit fixed point with truncating division, `2^fraction` by the cubic
//! approximation `1 + 0.695502049·x + 0.2262698·x² + 0.0782318·x³` (exact at 0 and 1, error below
//! 0.013 %), the integer part as a shift, and the result clamped to `[1, pow_limit]`. The specification
//! needs a pow limit below `2^224` to multiply a 256-bit target by the 17-bit factor; devnet pow limits
//! such as `0x207fffff` are near `2^255`, so the product is held in 512 bits and an overflowing left
//! shift saturates to the pow limit. No input overflows or panics.

use alloy_primitives::{U256, U512};
use bitcoin::pow::Target;

use crate::pow::{AuxPowError, target_of};

/// Fraction bits of the fixed-point exponent (the specification's `radix = 2^16`).
const RADIX_BITS: u32 = 16;

/// The retarget's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetargetParams {
    /// The easiest allowed target, compact form; also the genesis anchor's bits.
    pub pow_limit_bits: u32,
    /// Wanted time between proofs, in seconds.
    pub spacing_secs: u64,
    /// Seconds off schedule that halve (ahead) or double (behind) the target.
    pub half_life_secs: u64,
}

/// Why [`asert_bits`] cannot compute a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetargetError {
    /// The anchor's compact target is not a valid target.
    #[error("invalid anchor bits")]
    Anchor(#[source] AuxPowError),
    /// The pow limit's compact target is not a valid target.
    #[error("invalid pow limit bits")]
    Limit(#[source] AuxPowError),
    /// A half-life of zero seconds (the exponent would divide by zero).
    #[error("the retarget half-life must be at least one second")]
    ZeroHalfLife,
}

/// The `aserti3-2d` next target, compact form.
///
/// `time_delta` is the evaluated proof's time minus the anchor's parent's time, `height_delta` the
/// proofs from the anchor to the evaluated one (0 when the anchor is evaluated); the answer is the bits
/// the proof after the evaluated one must meet:
/// `anchor × 2^((time_delta − spacing × (height_delta + 1)) / half_life)`, clamped to `[1, pow_limit]`
/// (the pow limit's bits are returned as given when the target reaches it).
pub fn asert_bits(
    anchor_bits: u32,
    time_delta: i64,
    height_delta: u64,
    spacing_secs: u64,
    half_life_secs: u64,
    pow_limit_bits: u32,
) -> Result<u32, RetargetError> {
    let anchor = target_u256(anchor_bits).map_err(RetargetError::Anchor)?;
    let limit = target_u256(pow_limit_bits).map_err(RetargetError::Limit)?;
    if half_life_secs == 0 {
        return Err(RetargetError::ZeroHalfLife);
    }
    let next = scale(anchor, exponent(time_delta, height_delta, spacing_secs, half_life_secs));
    if next >= U512::from(limit) {
        return Ok(pow_limit_bits);
    }
    // Below the limit, so it fits in 256 bits; 0 is not a target, 1 is the hardest one.
    Ok(compact(U256::saturating_from(next).max(U256::from(1u8))))
}

/// `trunc((time_delta − spacing × (height_delta + 1)) × 2^16 / half_life)`, in 128 bits. Saturation only
/// happens for exponents whose magnitude exceeds `2^47` shifts, where the target is clamped anyway.
fn exponent(time_delta: i64, height_delta: u64, spacing_secs: u64, half_life_secs: u64) -> i128 {
    let scheduled = i128::from(spacing_secs).saturating_mul(i128::from(height_delta).saturating_add(1));
    let off = i128::from(time_delta).saturating_sub(scheduled);
    // `/` on signed integers truncates toward zero, as the specification requires.
    off.saturating_mul(1 << RADIX_BITS) / i128::from(half_life_secs.max(1))
}

/// `target × 2^(exponent / 2^16)` with the specification's cubic approximation of the fraction, floored.
fn scale(target: U256, exponent: i128) -> U512 {
    // Floor division by 2^16 (arithmetic shift) and the non-negative remainder.
    let shifts = exponent >> RADIX_BITS;
    let frac = (exponent & 0xffff) as u128;
    // Below 2^64 for every 16-bit fraction; u128 keeps that obvious.
    let polynomial =
        195_766_423_245_049 * frac + 971_821_376 * frac * frac + 5_127 * frac * frac * frac + (1 << 47);
    let factor = 65_536 + (polynomial >> 48);
    let product = U512::from(target) * U512::from(factor);
    // The factor carries 16 fraction bits: shift by the integer part minus 16.
    let shifts = shifts - i128::from(RADIX_BITS);
    if shifts <= 0 {
        product.wrapping_shr(usize::try_from(shifts.unsigned_abs()).unwrap_or(usize::MAX))
    } else {
        // An overflowing shift is far beyond any 256-bit limit.
        usize::try_from(shifts).ok().and_then(|left| product.checked_shl(left)).unwrap_or(U512::MAX)
    }
}

/// A compact target as a 256-bit integer.
fn target_u256(bits: u32) -> Result<U256, AuxPowError> {
    Ok(U256::from_le_bytes(target_of(bits)?.to_le_bytes()))
}

/// Bitcoin's `GetCompact`: the compact form of a target (rounding the mantissa down).
fn compact(target: U256) -> u32 {
    Target::from_le_bytes(target.to_le_bytes()).to_compact_lossy().to_consensus()
}

/// How much harder `bits` is than the pow limit: the pow limit's target over `bits`'s target (1 at the
/// pow limit). 0 when either is not a valid target.
pub fn difficulty(bits: u32, pow_limit_bits: u32) -> f64 {
    match (target_u256(bits), target_u256(pow_limit_bits)) {
        (Ok(target), Ok(limit)) => f64::from(limit) / f64::from(target),
        _ => 0.0,
    }
}

/// Where the retarget schedule stands after the last accepted proof: all ASERT needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// The anchor's compact target.
    pub anchor_bits: u32,
    /// The anchor's time: the timestamp of the block that carried the anchor proof (the genesis
    /// timestamp for the genesis anchor).
    pub anchor_secs: u64,
    /// Proofs accepted after the anchor.
    pub proofs_since_anchor: u64,
    /// The time of the last accepted proof (the anchor's time while there is none after it).
    pub last_proof_secs: u64,
}

impl Schedule {
    /// A schedule anchored at `bits` at time `secs`: the next proof must meet `bits`.
    pub const fn anchored_at(bits: u32, secs: u64) -> Self {
        Self { anchor_bits: bits, anchor_secs: secs, proofs_since_anchor: 0, last_proof_secs: secs }
    }

    /// The compact target the next proof must meet.
    ///
    /// An anchor that is not a valid target (a damaged record; the node never writes one) gives the pow
    /// limit, and the next proof re-anchors there.
    pub fn next_bits(&self, params: &RetargetParams) -> u32 {
        // The anchor's parent is one spacing before the anchor (module docs).
        let time_delta =
            i128::from(self.last_proof_secs) - i128::from(self.anchor_secs) + i128::from(params.spacing_secs);
        let time_delta =
            i64::try_from(time_delta).unwrap_or(if time_delta < 0 { i64::MIN } else { i64::MAX });
        asert_bits(
            self.anchor_bits,
            time_delta,
            self.proofs_since_anchor,
            params.spacing_secs,
            params.half_life_secs.max(1),
            params.pow_limit_bits,
        )
        .unwrap_or(params.pow_limit_bits)
    }

    /// The schedule after a proof carried by a block with timestamp `secs`. A proof so late that the next
    /// target would be the pow limit becomes the new anchor (module docs).
    pub fn after_proof(&self, secs: u64, params: &RetargetParams) -> Self {
        let next = Self {
            proofs_since_anchor: self.proofs_since_anchor.saturating_add(1),
            last_proof_secs: secs,
            ..*self
        };
        if next.next_bits(params) == params.pow_limit_bits {
            Self::anchored_at(params.pow_limit_bits, secs)
        } else {
            next
        }
    }

    /// Seconds the last proof landed after its scheduled time (negative: ahead of schedule). The target
    /// is the anchor's scaled by `2^(lag / half_life)`.
    pub fn lag_secs(&self, spacing_secs: u64) -> i128 {
        i128::from(self.last_proof_secs)
            - i128::from(self.anchor_secs)
            - i128::from(spacing_secs) * i128::from(self.proofs_since_anchor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: u32 = 0x207f_ffff;
    const PARAMS: RetargetParams =
        RetargetParams { pow_limit_bits: LIMIT, spacing_secs: 60, half_life_secs: 1_200 };

    fn target(bits: u32) -> U256 {
        target_u256(bits).unwrap()
    }

    #[test]
    fn on_schedule_the_target_stays_and_each_half_life_off_schedule_doubles_or_halves_it() {
        let anchor = 0x1d00_ffff;
        let start = Schedule::anchored_at(anchor, 1_000);
        assert_eq!(start.next_bits(&PARAMS), anchor);
        let on_time = (1..=50u64).fold(start, |s, n| s.after_proof(1_000 + 60 * n, &PARAMS));
        assert_eq!(on_time.proofs_since_anchor, 50);
        assert_eq!(on_time.lag_secs(60), 0);
        assert_eq!(on_time.next_bits(&PARAMS), anchor);
        // One half-life ahead: half the target (the cubic is exact at whole powers of two).
        let ahead = Schedule { last_proof_secs: 1_000 + 60 * 50 - 1_200, ..on_time };
        assert_eq!(target(ahead.next_bits(&PARAMS)), target(anchor) / U256::from(2u8));
        let behind = Schedule { last_proof_secs: 1_000 + 60 * 50 + 2_400, ..on_time };
        assert_eq!(target(behind.next_bits(&PARAMS)), target(anchor) * U256::from(4u8));
    }

    #[test]
    fn the_first_proof_after_genesis_meets_the_pow_limit_and_early_proofs_harden_it() {
        let genesis = Schedule::anchored_at(LIMIT, 1_700_000_000);
        assert_eq!(genesis.next_bits(&PARAMS), LIMIT);
        // A proof 2 s after genesis is 58 s ahead of schedule: 2^(-58/1200) of the limit.
        let early = genesis.after_proof(1_700_000_002, &PARAMS);
        assert_eq!(early.proofs_since_anchor, 1);
        let ratio = f64::from(target(early.next_bits(&PARAMS))) / f64::from(target(LIMIT));
        assert!((ratio - 2f64.powf(-58.0 / 1_200.0)).abs() < 1e-3, "{ratio}");
        assert!((difficulty(early.next_bits(&PARAMS), LIMIT) - 1.0 / ratio).abs() < 1e-9);
        assert_eq!(difficulty(LIMIT, LIMIT), 1.0);
    }

    #[test]
    fn a_proof_later_than_the_limit_allows_becomes_the_anchor() {
        let genesis = Schedule::anchored_at(LIMIT, 0);
        // Late: the schedule would ask for a target beyond the limit, so no slack is banked.
        let late = genesis.after_proof(10_000, &PARAMS);
        assert_eq!(late, Schedule::anchored_at(LIMIT, 10_000));
        // The next early proof hardens the target at once, as if the idle time never happened.
        let early = late.after_proof(10_002, &PARAMS);
        assert_eq!(early.proofs_since_anchor, 1);
        assert!(target(early.next_bits(&PARAMS)) < target(LIMIT));
    }

    #[test]
    fn bad_anchors_and_parameters_are_errors_or_fall_back_to_the_limit() {
        assert!(matches!(asert_bits(0, 0, 0, 60, 1_200, LIMIT), Err(RetargetError::Anchor(_))));
        assert!(matches!(asert_bits(LIMIT, 0, 0, 60, 1_200, 0x0080_0001), Err(RetargetError::Limit(_))));
        assert_eq!(asert_bits(LIMIT, 0, 0, 60, 0, LIMIT), Err(RetargetError::ZeroHalfLife));
        let damaged = Schedule::anchored_at(0x0000_0000, 5);
        assert_eq!(damaged.next_bits(&PARAMS), LIMIT);
        assert_eq!(damaged.after_proof(6, &PARAMS), Schedule::anchored_at(LIMIT, 6));
        let zero = RetargetParams { half_life_secs: 0, ..PARAMS };
        assert_eq!(Schedule::anchored_at(0x1d00_ffff, 0).next_bits(&zero), 0x1d00_ffff, "0 s counts as 1 s");
        assert_eq!(difficulty(0, LIMIT), 0.0);
    }
}
