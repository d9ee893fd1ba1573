//! Peg-in metrics (`alys_pegin_*`).

/// Deposits recorded as seen (valid so far).
pub const SEEN: &str = "alys_pegin_deposits_seen_total";
/// Deposits rejected, by reason.
pub const REJECTED: &str = "alys_pegin_deposits_rejected_total";
/// Deposits minted on the canonical chain (counted as the watcher announces them).
pub const MINTED: &str = "alys_pegin_deposits_minted_total";
/// Satoshis minted on the canonical chain.
pub const MINTED_SATS: &str = "alys_pegin_minted_sats_total";
/// Deposits waiting to be claimed (confirming, or ready).
pub const OPEN: &str = "alys_pegin_open_deposits";
/// Age of the oldest deposit waiting to be claimed.
pub const OLDEST_OPEN_SECONDS: &str = "alys_pegin_oldest_open_seconds";
/// Minted deposits whose Bitcoin block left the best chain (alert).
pub const DEEP_REORG: &str = "alys_pegin_deep_reorg_total";
/// Blocks refused because of their peg-in claims, by reason.
pub const CLAIMS_REFUSED: &str = "alys_pegin_claims_refused_total";
/// Deposits claimed in blocks this node produced.
pub const CLAIMED: &str = "alys_pegin_claimed_total";

/// Registers help text for every metric above.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge};
    describe_counter!(SEEN, "Deposits to the federation seen on the Bitcoin chain.");
    describe_counter!(REJECTED, "Deposits rejected (recorded, never minted), by reason.");
    describe_counter!(MINTED, "Deposits minted on the canonical Alys chain.");
    describe_counter!(MINTED_SATS, "Satoshis minted by deposits on the canonical Alys chain.");
    describe_gauge!(OPEN, "Deposits waiting to be claimed (confirming or ready).");
    describe_gauge!(OLDEST_OPEN_SECONDS, "Age of the oldest deposit waiting to be claimed, in seconds.");
    describe_counter!(
        DEEP_REORG,
        "Minted deposits whose Bitcoin block left the best chain (a reorg deeper than pegin_confirmations); alert on any."
    );
    describe_counter!(CLAIMS_REFUSED, "Blocks refused on import because of their peg-in claims, by reason.");
    describe_counter!(CLAIMED, "Deposits this node claimed in blocks it produced.");
}
