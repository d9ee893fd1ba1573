//! Names of the metrics this crate records, for dashboards and alerts. [`describe`] registers their
//! help text with the installed recorder (the node calls it once at start).
//!
//! Labels: `type` is the request kind (`registration`, `heartbeat`, `signature`, `notification`) on
//! [`REQUEST_SECONDS`] and [`TIMEOUTS`], the message kind (`federation_update`, `proposal`) on
//! [`REJECTED`], the proposal type on [`PROPOSALS`]; `reason` on [`REJECTED`] says why (`past_height`:
//! effective at or below the head; `bad_signature`, `stale`, `conflicting`, … as the error's `reason()`);
//! `what` is the commit (the name of the store commit that failed, e.g. `proposal`) on
//! [`SAVE_FAILURES`].

/// Gauge: 1 while the stream to governance is up, else 0.
pub const CONNECTED: &str = "alys_governance_connected";
/// Counter: reconnects to governance.
pub const RECONNECTS: &str = "alys_governance_reconnects_total";
/// Histogram (seconds, label `type`): time from sending a request to its answer.
pub const REQUEST_SECONDS: &str = "alys_governance_request_seconds";
/// Counter (label `type`): sessions dropped because a request went unanswered too long.
pub const TIMEOUTS: &str = "alys_governance_timeouts_total";
/// Gauge: notifications waiting for a session.
pub const BUFFERED: &str = "alys_governance_buffered";
/// Counter: notifications dropped because the buffer was full while disconnected.
pub const BUFFER_DROPPED: &str = "alys_governance_buffer_dropped_total";
/// Counter: signature answers for no pending request (repeats of an answer already stored, or strays).
pub const DUPLICATE_RESPONSES: &str = "alys_governance_duplicate_responses_total";
/// Counter: signature answers stored with no caller waiting (late, or after a restart); they wait in
/// the store for their consumer.
pub const UNCLAIMED_RESPONSES: &str = "alys_governance_unclaimed_responses_total";
/// Counter (labels `type`, `reason`): federation updates and proposals refused (`past_height`: effective
/// at or below the head; `bad_signature`, `stale`, `conflicting`, …). Nothing refused is stored.
pub const REJECTED: &str = "alys_governance_rejected_total";
/// Counter (label `type`): proposals accepted.
pub const PROPOSALS: &str = "alys_governance_proposals_total";
/// Counter (label `what`): governance writes that failed; nothing of them was applied, and the session
/// is restarted so governance sends them again.
pub const SAVE_FAILURES: &str = "alys_governance_save_failures_total";
/// Counter: signature sets that left an input short of the threshold or failed the script interpreter.
pub const BAD_WITNESS: &str = "alys_governance_bad_witness_total";
/// Counter: signatures in answers that verify against no input by a federation key.
pub const IGNORED_SIGNATURES: &str = "alys_governance_ignored_signatures_total";

/// Registers the help text of these metrics with the installed recorder.
pub fn describe() {
    metrics::describe_gauge!(CONNECTED, "1 while the governance stream is up, else 0");
    metrics::describe_counter!(RECONNECTS, "Reconnects to the governance service");
    metrics::describe_histogram!(
        REQUEST_SECONDS,
        metrics::Unit::Seconds,
        "Time from sending a governance request to its answer, by request type"
    );
    metrics::describe_counter!(TIMEOUTS, "Governance sessions dropped for an unanswered request, by type");
    metrics::describe_gauge!(BUFFERED, "Notifications waiting for a governance session");
    metrics::describe_counter!(BUFFER_DROPPED, "Notifications dropped while disconnected (buffer full)");
    metrics::describe_counter!(
        DUPLICATE_RESPONSES,
        "Signature answers for no pending request (repeats or strays), not stored again"
    );
    metrics::describe_counter!(
        UNCLAIMED_RESPONSES,
        "Signature answers stored with no caller waiting; kept until a consumer takes them"
    );
    metrics::describe_counter!(
        REJECTED,
        "Federation updates and proposals refused and not stored, by type and reason \
         (past_height: effective at or below the node's head; governance must re-issue them higher)"
    );
    metrics::describe_counter!(PROPOSALS, "Proposals accepted, by proposal type");
    metrics::describe_counter!(
        SAVE_FAILURES,
        "Governance writes that failed and were not applied (the session restarts to get them again)"
    );
    metrics::describe_counter!(BAD_WITNESS, "Governance signature sets refused before use");
    metrics::describe_counter!(IGNORED_SIGNATURES, "Signatures in governance answers that verify nowhere");
}
