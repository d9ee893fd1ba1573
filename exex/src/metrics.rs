//! Names of the metrics this crate records, for dashboards and alerts.

/// Counter: burns added to the store (new canonical blocks; replays are not counted).
pub const BURNS_EXTRACTED: &str = "alys_exex_burns_extracted_total";
/// Counter: burns retracted because their block was reverted.
pub const BURNS_RETRACTED: &str = "alys_exex_burns_retracted_total";
/// Counter: bridge logs with the burn topic that did not decode and were skipped.
pub const MALFORMED_BURN_LOGS: &str = "alys_exex_malformed_burn_logs_total";
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
/// Counter: reconnections of a burn-feed client.
pub const CLIENT_RECONNECTS: &str = "alys_burnfeed_client_reconnects_total";
/// Counter: events a burn-feed client yielded.
pub const CLIENT_EVENTS: &str = "alys_burnfeed_client_events_total";
