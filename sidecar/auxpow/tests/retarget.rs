//! The difficulty retarget against the specification and in operation: the published `aserti3-2d`
//! test vectors, simulated miners at a tenth of, exactly and ten times the hash rate the start target
//! expects, the devnet's parameters from the pow limit, and no overflow or panic anywhere in the input
//! space.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]

use std::path::Path;

use alloy_primitives::U256;
use alys_auxpow::{
    pow::target_of,
    retarget::{RetargetError, RetargetParams, Schedule, asert_bits, difficulty},
};
use proptest::{
    prelude::*,
    test_runner::{RngAlgorithm, TestRng},
};

fn target(bits: u32) -> U256 {
    U256::from_le_bytes(target_of(bits).unwrap().to_le_bytes())
}

/// `GetCompact` of a target, through rust-bitcoin.
fn compact(target: U256) -> u32 {
    bitcoin::pow::Target::from_le_bytes(target.to_le_bytes()).to_compact_lossy().to_consensus()
}

// ---------------------------------------------------------------------------------------------------
// The published test vectors (tests/data/asert, see its README).

/// Bitcoin Cash mainnet's parameters, which every vector file uses.
const BCH_SPACING: u64 = 600;
const BCH_HALF_LIFE: u64 = 172_800;
const BCH_LIMIT: u32 = 0x1d00_ffff;

/// One vector file: the anchor from its `##` header, then `(height, time, bits)` lines.
struct Run {
    name: String,
    anchor_height: u64,
    anchor_parent_time: i64,
    anchor_bits: u32,
    iterations: usize,
    vectors: Vec<(u64, i64, u32)>,
}

fn hex_bits(text: &str) -> u32 {
    u32::from_str_radix(text.trim().trim_start_matches("0x"), 16).unwrap()
}

fn read_run(path: &Path) -> Run {
    let text = std::fs::read_to_string(path).unwrap();
    let header = |key: &str| {
        text.lines()
            .filter_map(|line| line.strip_prefix("##"))
            .find_map(|line| {
                line.trim().strip_prefix(key).map(|v| v.trim_start_matches(':').trim().to_owned())
            })
            .unwrap_or_else(|| panic!("{} has no `{key}`", path.display()))
    };
    // The files name the anchor's parent time "ancestor time" or "parent time".
    let parent_time = text
        .lines()
        .filter_map(|line| line.strip_prefix("##"))
        .find_map(|line| {
            let line = line.trim();
            line.strip_prefix("anchor ancestor time:").or_else(|| line.strip_prefix("anchor parent time:"))
        })
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let vectors = text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields.len(), 4, "{line}");
            (fields[1].parse().unwrap(), fields[2].parse().unwrap(), hex_bits(fields[3]))
        })
        .collect();
    Run {
        name: path.file_name().unwrap().to_string_lossy().into_owned(),
        anchor_height: header("anchor height").parse().unwrap(),
        anchor_parent_time: parent_time,
        anchor_bits: hex_bits(&header("anchor nBits")),
        iterations: header("iterations").parse().unwrap(),
        vectors,
    }
}

#[test]
fn every_published_aserti3_2d_vector_matches() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/asert");
    let mut checked = 0;
    for n in 1..=12 {
        let run = read_run(&dir.join(format!("run{n:02}")));
        assert_eq!(run.vectors.len(), run.iterations, "{}: every iteration is listed", run.name);
        for (height, time, expected) in &run.vectors {
            let got = asert_bits(
                run.anchor_bits,
                time - run.anchor_parent_time,
                height - run.anchor_height,
                BCH_SPACING,
                BCH_HALF_LIFE,
                BCH_LIMIT,
            )
            .unwrap();
            assert_eq!(got, *expected, "{} height {height} time {time}: {got:#010x}", run.name);
            checked += 1;
        }
    }
    // 12 runs, 14 000 vectors: a missing or truncated file fails here.
    assert_eq!(checked, 14_000);
}

// ---------------------------------------------------------------------------------------------------
// Simulated miners.

/// What a simulated chain did, one entry per proof.
struct Trace {
    /// Seconds between the blocks that carried consecutive proofs.
    intervals: Vec<u64>,
    /// The schedule's lag after each proof ([`Schedule::lag_secs`]).
    lags: Vec<i128>,
    /// The bits each proof met.
    bits: Vec<u32>,
    /// The target each proof met, relative to the start target.
    relative_targets: Vec<f64>,
}

impl Trace {
    fn mean_interval(&self, skip: usize) -> f64 {
        let tail = &self.intervals[skip..];
        tail.iter().sum::<u64>() as f64 / tail.len() as f64
    }
}

/// A miner whose hash rate is `multiple` times what the start target expects (one proof per spacing),
/// from a schedule anchored at `start_bits`, for `proofs` proofs. Proof search is a Poisson process:
/// the wait is exponential with rate `multiple × target / start_target / spacing`. The proof is found
/// after the block that carried the previous one and lands in the block of the next slot boundary, as
/// the node's next block carries it.
fn simulate(
    params: RetargetParams,
    slot: u64,
    start_bits: u32,
    multiple: f64,
    proofs: usize,
    seed: u8,
) -> Trace {
    let mut rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]);
    let start_target = f64::from(target(start_bits));
    let genesis = 1_700_000_000 / slot * slot;
    let mut schedule = Schedule::anchored_at(start_bits, genesis);
    let mut now = genesis;
    let mut trace =
        Trace { intervals: Vec::new(), lags: Vec::new(), bits: Vec::new(), relative_targets: Vec::new() };
    for _ in 0..proofs {
        let bits = schedule.next_bits(&params);
        let relative = f64::from(target(bits)) / start_target;
        let rate = multiple * relative / params.spacing_secs as f64;
        // Uniform in (0, 1] from 53 random bits.
        let uniform = ((rng.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64;
        let found = now as f64 + (-uniform.ln() / rate);
        let landed = ((found / slot as f64).floor() as u64 + 1) * slot;
        schedule = schedule.after_proof(landed, &params);
        trace.intervals.push(landed - now);
        trace.lags.push(schedule.lag_secs(params.spacing_secs));
        trace.bits.push(bits);
        trace.relative_targets.push(relative);
        now = landed;
    }
    trace
}

/// `alys.toml`'s parameters: a minute between proofs, a 20-minute half-life, 2 s slots, and a start
/// target far below the devnet pow limit so that a slow miner can ease it.
const NODE: RetargetParams =
    RetargetParams { pow_limit_bits: 0x207f_ffff, spacing_secs: 60, half_life_secs: 1_200 };
const SLOT: u64 = 2;
const START: u32 = 0x1d00_ffff;

#[test]
fn simulated_miners_at_a_tenth_one_and_ten_times_the_expected_hash_rate_converge_to_the_spacing() {
    let half_life = NODE.half_life_secs as f64;
    for (multiple, seed) in [(0.1, 1), (1.0, 2), (10.0, 3), (0.1, 4), (10.0, 5)] {
        let trace = simulate(NODE, SLOT, START, multiple, 2_300, seed);
        // Warm-up: the target must move by log2(multiple) half-lives; ASERT's time constant is
        // half-life / ln 2 ≈ 29 proofs here, so 300 proofs leave well under 1 % to go.
        let warm_up = 300;
        let mean = trace.mean_interval(warm_up);
        assert!(
            (mean - 60.0).abs() < 6.0,
            "{multiple}x (seed {seed}): mean interval {mean:.1} s after warm-up"
        );
        // The target settled where this miner finds one proof per spacing: `1 / multiple` of the start
        // (within a factor of 1.5 on the geometric mean after warm-up)...
        let tail = &trace.relative_targets[warm_up..];
        let log_mean = tail.iter().map(|t| t.log2()).sum::<f64>() / tail.len() as f64;
        assert!((log_mean - (1.0 / multiple).log2()).abs() < 0.6, "{multiple}x: log2 target {log_mean:.2}");
        // ...and the schedule lag, the target's logarithm in seconds, stays within a band around that
        // equilibrium rather than drifting: never more than 1.5 half-lives from it.
        let equilibrium = half_life * (1.0 / multiple).log2();
        let worst =
            trace.lags[warm_up..].iter().map(|lag| (*lag as f64 - equilibrium).abs()).fold(0.0, f64::max);
        assert!(worst < 1.5 * half_life, "{multiple}x: lag strayed {worst:.0} s from {equilibrium:.0} s");
        // Slow or fast, the first proofs already move the target the right way.
        let early = trace.relative_targets[20];
        assert!(if multiple > 1.0 {
            early < 1.0
        } else if multiple < 1.0 {
            early > 1.0
        } else {
            true
        });
        // The longest wait after warm-up: exponential tails, never a stall.
        let longest = trace.intervals[warm_up..].iter().max().copied().unwrap_or_default();
        assert!(longest < 15 * 60, "{multiple}x: a {longest} s gap between proofs");
    }
}

#[test]
fn a_steady_miner_moves_the_target_less_with_a_longer_half_life() {
    // The half-life trades responsiveness for steadiness: the spread of the target at equilibrium
    // shrinks as the half-life grows.
    let spread = |half_life_secs| {
        let params = RetargetParams { half_life_secs, ..NODE };
        let trace = simulate(params, SLOT, START, 1.0, 3_000, 9);
        let logs: Vec<f64> = trace.relative_targets[300..].iter().map(|t| t.log2()).collect();
        let mean = logs.iter().sum::<f64>() / logs.len() as f64;
        (logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / logs.len() as f64).sqrt()
    };
    let (short, long) = (spread(600), spread(4_800));
    assert!(long < short / 2.0, "log2 target spread: {short:.3} at 10 spacings, {long:.3} at 80");
}

/// The devnet: 10 s spacing, a 100 s half-life, 2 s slots, starting at the pow limit `0x207fffff`
/// (about two hashes per proof) with one CPU core hashing about a million headers a second: five
/// million times the hash rate the pow limit expects.
#[test]
fn the_devnet_parameters_take_a_cpu_miner_from_the_pow_limit_to_its_spacing_within_minutes() {
    let devnet = RetargetParams { pow_limit_bits: 0x207f_ffff, spacing_secs: 10, half_life_secs: 100 };
    let multiple = 5.0e6;
    let trace = simulate(devnet, SLOT, devnet.pow_limit_bits, multiple, 1_600, 7);
    // Proofs every slot at first (8 s ahead of schedule each): 22 halvings take about 280 proofs.
    let mut elapsed = 0;
    let settled = trace
        .relative_targets
        .iter()
        .zip(&trace.intervals)
        .position(|(relative, interval)| {
            elapsed += interval;
            relative * multiple < 2.0
        })
        .expect("the target reaches the CPU's equilibrium");
    assert!(elapsed < 15 * 60, "equilibrium after {elapsed} s ({settled} proofs)");
    let mean = trace.mean_interval(settled + 200);
    assert!((mean - 10.0).abs() < 1.5, "mean interval {mean:.2} s once settled");
    // The difficulty the node exports is that ratio seen from the pow limit: about the hash rate's
    // multiple of what the limit expects.
    let exported = difficulty(trace.bits[settled], devnet.pow_limit_bits);
    assert!((exported * trace.relative_targets[settled] - 1.0).abs() < 1e-6, "{exported}");
    assert!(exported > multiple / 2.0, "{exported}");
}

// ---------------------------------------------------------------------------------------------------
// No overflow, no panic, over the whole input space.

/// Any compact bits: every exponent byte, every mantissa, the sign bit.
fn any_bits() -> impl Strategy<Value = u32> {
    prop_oneof![any::<u32>(), (0u32..=0x22, 1u32..=0x7f_ffff).prop_map(|(e, m)| (e << 24) | m)]
}

/// A valid pow limit: the devnet's, Bitcoin's, the largest one, or any target that encodes.
fn any_limit() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0x207f_ffff),
        Just(0x1d00_ffff),
        Just(0x2100_ffff),
        any::<[u8; 32]>().prop_filter_map("zero", |bytes| {
            let t = U256::from_le_bytes(bytes);
            (!t.is_zero()).then(|| compact(t))
        }),
    ]
}

/// Time deltas: anything, and the region around the schedule where the target is not clamped.
fn any_time() -> impl Strategy<Value = i64> {
    prop_oneof![any::<i64>(), -10_000_000i64..10_000_000, Just(i64::MIN), Just(i64::MAX)]
}

fn any_height() -> impl Strategy<Value = u64> {
    prop_oneof![any::<u64>(), 0u64..100_000, Just(u64::MAX)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4_096, ..ProptestConfig::default() })]

    #[test]
    fn asert_never_overflows_and_stays_within_one_and_the_limit(
        anchor in any_bits(),
        limit in any_limit(),
        time in any_time(),
        height in any_height(),
        spacing in prop_oneof![any::<u64>(), 0u64..100_000],
        half_life in prop_oneof![any::<u64>(), 0u64..1_000_000],
    ) {
        match asert_bits(anchor, time, height, spacing, half_life, limit) {
            Ok(bits) => {
                prop_assert!(target_of(anchor).is_ok() && half_life > 0);
                let next = target(bits);
                prop_assert!(next >= U256::from(1u8) && next <= target(limit), "{bits:#x} outside [1, {limit:#x}]");
                // Later is never harder; more proofs in the same time are never easier.
                if let Some(later) = time.checked_add(1 + (time.unsigned_abs() % 1_000) as i64) {
                    let eased = asert_bits(anchor, later, height, spacing, half_life, limit).unwrap();
                    prop_assert!(target(eased) >= next);
                }
                if let Some(more) = height.checked_add(1) {
                    let hardened = asert_bits(anchor, time, more, spacing, half_life, limit).unwrap();
                    prop_assert!(target(hardened) <= next);
                }
            }
            Err(RetargetError::Anchor(_)) => prop_assert!(target_of(anchor).is_err()),
            Err(RetargetError::ZeroHalfLife) => prop_assert_eq!(half_life, 0),
            Err(RetargetError::Limit(_)) => prop_assert!(false, "a valid limit was refused"),
        }
    }

    #[test]
    fn the_approximation_tracks_two_to_the_exponent(
        exponent in 0x10u32..=0x19,
        mantissa in 0x8000u32..=0x7f_ffff,
        halvings in -20.0f64..20.0,
        half_life in 1_000u64..1_000_000,
    ) {
        // Within the unclamped range (targets between 2^40 and 2^230 here) the target is
        // anchor × 2^(off / half_life) within the cubic's 0.013 %, the exponent's 2^-16 step and the
        // rounding of a compact mantissa of at least 15 bits.
        let anchor = (exponent << 24) | mantissa;
        let off = (halvings * half_life as f64) as i64;
        let bits = asert_bits(anchor, off + 600, 0, 600, half_life, 0x2100_ffff).unwrap();
        let ratio = f64::from(target(bits)) / f64::from(target(anchor));
        let exact = (off as f64 / half_life as f64).exp2();
        prop_assert!((ratio / exact - 1.0).abs() < 2e-4, "ratio {ratio}, 2^x {exact}");
    }

    #[test]
    fn any_proof_history_keeps_the_schedule_valid(
        start in any_limit(),
        limit in any_limit(),
        gaps in proptest::collection::vec(0u64..100_000, 1..64),
        spacing in 1u64..10_000,
        half_life in 0u64..1_000_000,
    ) {
        let params = RetargetParams { pow_limit_bits: limit, spacing_secs: spacing, half_life_secs: half_life };
        let mut schedule = Schedule::anchored_at(start, 1_000);
        let mut now = 1_000u64;
        for gap in gaps {
            now += gap;
            let before = schedule.proofs_since_anchor;
            schedule = schedule.after_proof(now, &params);
            let bits = schedule.next_bits(&params);
            prop_assert!(target_of(bits).is_ok());
            prop_assert!(target(bits) <= target(limit).max(target(start)) || bits == limit);
            prop_assert_eq!(schedule.last_proof_secs, now);
            // Either one more proof after the same anchor, or this proof is the new anchor at the limit.
            prop_assert!(
                schedule.proofs_since_anchor == before + 1
                    || schedule == Schedule::anchored_at(limit, now)
            );
        }
    }
}

#[test]
fn the_extremes_clamp_to_one_and_to_the_limit() {
    for limit in [0x207f_ffff, 0x1d00_ffff, 0x2100_ffff] {
        for anchor in [limit, 0x1d00_ffff, 0x0101_0000] {
            // Infinitely ahead of schedule: the hardest target, 1.
            assert_eq!(asert_bits(anchor, i64::MIN, u64::MAX, u64::MAX, 1, limit), Ok(0x0101_0000));
            // Infinitely behind: the limit's own bits.
            assert_eq!(asert_bits(anchor, i64::MAX, 0, 0, 1, limit), Ok(limit));
        }
        // At the limit, on schedule, nothing moves; one second early moves it down, never up.
        assert_eq!(asert_bits(limit, 600, 0, 600, 172_800, limit), Ok(limit));
        // (An offset below half-life / 2^16, 2.6 s here, truncates to no change at all.)
        assert_eq!(asert_bits(limit, 598, 0, 600, 172_800, limit), Ok(limit));
        assert!(target(asert_bits(limit, 590, 0, 600, 172_800, limit).unwrap()) < target(limit));
    }
}
