//! Names of the metrics this crate records, for dashboards and alerts.
//!
//! The names keep the `alys_exex_` / `alys_burnfeed_` prefixes they had before burns became their own
//! crate, so dashboards and alerts did not change.

/// Counter: bridge logs with the burn topic that did not decode and were skipped.
pub const MALFORMED_BURN_LOGS: &str = "alys_exex_malformed_burn_logs_total";
/// Counter: reconnections of a burn-feed client.
pub const CLIENT_RECONNECTS: &str = "alys_burnfeed_client_reconnects_total";
/// Counter: events a burn-feed client yielded.
pub const CLIENT_EVENTS: &str = "alys_burnfeed_client_events_total";

/// Registers the help text of these metrics with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(
        MALFORMED_BURN_LOGS,
        "Bridge logs with the RequestPegOut topic that did not decode and were skipped"
    );
    metrics::describe_counter!(CLIENT_RECONNECTS, "Reconnections of the burn-feed client");
    metrics::describe_counter!(CLIENT_EVENTS, "Events the burn-feed client yielded");
}
