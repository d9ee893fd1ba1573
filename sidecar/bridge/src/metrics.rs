//! Names of the metrics the peg-out path records, for dashboards and alerts; [`describe`] registers
//! their help text with the installed recorder.

/// Counter: burns released for payment (final and canonical).
pub const BURNS_RELEASED: &str = "alys_pegout_burns_released_total";
/// Counter: failed steps of the burn source (each is retried; nothing is lost or advanced).
pub const ERRORS: &str = "alys_pegout_errors_total";
/// Gauge: 1 while governance has peg-outs paused at the head, else 0.
pub const PAUSED: &str = "alys_pegout_paused";
/// Gauge: pending burns at or below the finalized height whose block is not the canonical one: they
/// wait for a retraction, and one that never comes is worth an alarm.
pub const ORPHANED_PENDING: &str = "alys_pegout_orphaned_pending";
/// Counter: retractions naming a burn already released (finality was reverted: never expected).
pub const RETRACTED_AFTER_RELEASE: &str = "alys_pegout_retracted_after_release_total";
/// Counter: `eth_getLogs` calls of the geth path.
pub const GETH_POLLS: &str = "alys_pegout_geth_polls_total";
/// Counter: `eth_getLogs` ranges the execution client refused as too large, then halved.
pub const GETH_RANGE_SPLITS: &str = "alys_pegout_geth_range_splits_total";
/// Gauge: the last block the geth path has read and committed.
pub const GETH_HEIGHT: &str = "alys_pegout_geth_height";

/// Registers the help text of these metrics with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(BURNS_RELEASED, "Peg-out burns released for payment (final and canonical)");
    metrics::describe_counter!(ERRORS, "Failed steps of the peg-out burn source (retried)");
    metrics::describe_gauge!(PAUSED, "1 while governance has peg-outs paused at the head");
    metrics::describe_gauge!(
        ORPHANED_PENDING,
        "Pending burns at final heights in non-canonical blocks, waiting for their retraction"
    );
    metrics::describe_counter!(
        RETRACTED_AFTER_RELEASE,
        "Retractions of burns already released (finality reverted; never expected)"
    );
    metrics::describe_counter!(GETH_POLLS, "eth_getLogs calls of the geth peg-out path");
    metrics::describe_counter!(GETH_RANGE_SPLITS, "eth_getLogs ranges refused as too large and halved");
    metrics::describe_gauge!(GETH_HEIGHT, "Last block the geth peg-out path has read and committed");
}
