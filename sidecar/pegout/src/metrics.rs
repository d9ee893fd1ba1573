//! Peg-out metrics (`alys_pegout_*`) of the payer; [`describe`] registers their help text
//! with the installed recorder.

/// Gauge, by `status` (`final`, `requested`, `signed`, `broadcast`, `confirming`, `confirmed`): payouts
/// at each stage; `confirming` are confirmed with fewer than `pegout_confirmations`.
pub const PAYOUTS: &str = "alys_pegout_payouts";
/// Gauge: released burns waiting for a block to settle them (the queue).
pub const QUEUE_DEPTH: &str = "alys_pegout_queue_depth";
/// Gauge: seconds the oldest burn in the queue has waited.
pub const OLDEST_QUEUED_SECONDS: &str = "alys_pegout_oldest_queued_seconds";
/// Counter: burns settled by canonical blocks this node committed, by outcome (`paid`, `refunded`).
pub const SETTLED: &str = "alys_pegout_burns_settled_total";
/// Gauge: the highest finalized consensus height whose peg-out transactions are recorded.
pub const PAYER_HEIGHT: &str = "alys_pegout_payer_height";
/// Histogram: seconds from this process's first signature request under an id to verified witnesses.
pub const SIGNATURE_SECONDS: &str = "alys_pegout_signature_seconds";
/// Histogram: seconds from a payout's proposing block being final to bitcoind accepting it.
pub const FINAL_TO_BROADCAST_SECONDS: &str = "alys_pegout_final_to_broadcast_seconds";
/// Counter, by `reason`: signature answers refused (declined, too few valid signatures, a witness the
/// interpreter refuses, an answer that does not decode); each is asked again under the next attempt.
pub const BAD_ANSWERS: &str = "alys_pegout_bad_signature_answers_total";
/// Counter: payouts broadcast again after they left bitcoind's mempool unconfirmed.
pub const REBROADCASTS: &str = "alys_pegout_rebroadcasts_total";
/// Counter, by `reason` (`missing_inputs`, `rejected`, `unreachable`): broadcasts bitcoind refused or
/// that did not reach it (retried).
pub const BROADCAST_ERRORS: &str = "alys_pegout_broadcast_errors_total";
/// Counter: payer steps that failed on the database (retried at the next step).
pub const PAYER_ERRORS: &str = "alys_pegout_payer_errors_total";

/// Registers the help text of these metrics with the installed recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(PAYOUTS, "Peg-out transactions by payment stage");
    describe_gauge!(
        QUEUE_DEPTH,
        "Released (final, canonical) burns waiting for a block to pay or refund them"
    );
    describe_gauge!(
        OLDEST_QUEUED_SECONDS,
        "Seconds the oldest released burn has waited for a block to settle it"
    );
    describe_counter!(
        SETTLED,
        "Burns settled by blocks this node committed as head, by outcome (paid, refunded)"
    );
    describe_gauge!(
        PAYER_HEIGHT,
        "Highest finalized consensus height whose peg-out transactions are recorded"
    );
    describe_histogram!(SIGNATURE_SECONDS, "Seconds from a peg-out signature request to verified witnesses");
    describe_histogram!(
        FINAL_TO_BROADCAST_SECONDS,
        "Seconds from a peg-out's proposing block being final to its broadcast"
    );
    describe_counter!(
        BAD_ANSWERS,
        "Peg-out signature answers refused by reason (asked again under a new id)"
    );
    describe_counter!(REBROADCASTS, "Peg-out transactions broadcast again after leaving the mempool");
    describe_counter!(BROADCAST_ERRORS, "Peg-out broadcasts refused by bitcoind or not delivered, by reason");
    describe_counter!(PAYER_ERRORS, "Peg-out payer steps that failed on the database (retried)");
}
