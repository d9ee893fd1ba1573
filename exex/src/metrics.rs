//! Names of the metrics this crate records, for dashboards and alerts.
//!
//! Extraction's and the feed client's metrics are [`alys_burns::metrics`].

/// Counter: burns added to the store (new canonical blocks; replays are not counted).
pub const BURNS_EXTRACTED: &str = "alys_exex_burns_extracted_total";
/// Counter: burns retracted because their block was reverted.
pub const BURNS_RETRACTED: &str = "alys_exex_burns_retracted_total";
/// Counter: blocks of a notification skipped because they were already processed (replays).
pub const BLOCKS_REPLAYED: &str = "alys_exex_blocks_replayed_total";
/// Histogram (seconds): time to write and commit one notification's transaction.
pub const STORE_COMMIT_SECONDS: &str = "alys_exex_store_commit_seconds";
/// Gauge: number of the last processed block.
pub const HEAD_BLOCK: &str = "alys_exex_head_block";
/// Gauge: the height last reported to reth as `FinishedHeight`.
pub const FINISHED_HEIGHT: &str = "alys_exex_finished_height";
/// Gauge: the last cursor of the feed's event log.
pub const FEED_LAST_CURSOR: &str = "alys_exex_feed_last_cursor";
/// Gauge: burn-feed subscriptions being served.
pub const FEED_SUBSCRIBERS: &str = "alys_exex_feed_subscribers";
/// Counter: events sent to feed subscribers.
pub const FEED_EVENTS_SENT: &str = "alys_exex_feed_events_sent_total";
/// Counter: feed calls refused for a missing or wrong bearer token.
pub const FEED_UNAUTHENTICATED: &str = "alys_exex_feed_unauthenticated_total";
/// Counter: final events pruned from the feed's log by retention.
pub const EVENTS_PRUNED: &str = "alys_exex_events_pruned_total";
/// Gauge: the first cursor the feed's log still holds.
pub const FEED_RETAINED_FROM: &str = "alys_exex_feed_retained_from";
/// Counter: catch-ups from the store's head after missed notifications.
pub const CATCH_UPS: &str = "alys_exex_catch_ups_total";

/// Registers the help text of these metrics, and of [`alys_burns::metrics`], with the installed
/// recorder.
pub fn describe() {
    alys_burns::metrics::describe();
    metrics::describe_counter!(BURNS_EXTRACTED, "Burns added to the ExEx store");
    metrics::describe_counter!(BURNS_RETRACTED, "Burns retracted because their block was reverted");
    metrics::describe_counter!(
        BLOCKS_REPLAYED,
        "Notified blocks skipped because they were already processed"
    );
    metrics::describe_histogram!(
        STORE_COMMIT_SECONDS,
        metrics::Unit::Seconds,
        "Time to write and commit one notification's transaction"
    );
    metrics::describe_gauge!(HEAD_BLOCK, "Number of the last block the ExEx processed");
    metrics::describe_gauge!(FINISHED_HEIGHT, "Height last reported to reth as FinishedHeight");
    metrics::describe_gauge!(FEED_LAST_CURSOR, "Last cursor of the burn feed's event log");
    metrics::describe_gauge!(FEED_SUBSCRIBERS, "Burn-feed subscriptions being served");
    metrics::describe_counter!(FEED_EVENTS_SENT, "Events sent to burn-feed subscribers");
    metrics::describe_counter!(
        FEED_UNAUTHENTICATED,
        "Burn-feed calls refused for a missing or wrong bearer token"
    );
    metrics::describe_counter!(EVENTS_PRUNED, "Final events pruned from the burn feed's log by retention");
    metrics::describe_gauge!(FEED_RETAINED_FROM, "First cursor the burn feed's log still holds");
    metrics::describe_counter!(
        CATCH_UPS,
        "Catch-ups from the ExEx's stored head after missed chain notifications"
    );
}
