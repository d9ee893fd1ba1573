//! What the benchmarks share: percentiles and one report line per measurement.

use std::time::Duration;

/// The `p` quantile of sorted samples (nearest rank).
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Prints `name: n=… p50=… p99=… max=…`.
#[allow(dead_code, reason = "each benchmark binary uses some of these")]
pub(crate) fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name}: n={} p50={:?} p99={:?} max={:?}",
        samples.len(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.99),
        samples.last().unwrap()
    );
}

/// Prints `name: n=… p50=… ms p95=… ms max=… ms`.
#[allow(dead_code, reason = "each benchmark binary uses some of these")]
pub(crate) fn report_ms(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{name}: n={} p50={:.1} ms p95={:.1} ms max={:.1} ms",
        samples.len(),
        ms(percentile(&samples, 0.50)),
        ms(percentile(&samples, 0.95)),
        ms(*samples.last().unwrap()),
    );
}
