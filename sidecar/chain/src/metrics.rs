//! Help text for the metrics the chain actor records: production, import, finality, merged mining.
//! [`describe`] registers it with the installed recorder (the node calls it once at start), so every
//! series on `/metrics` says what it counts.
//!
//! Labels: `head` on `alys_chain_head_height` is `head` or `finalized`; `reason` on
//! `alys_chain_slots_skipped_total` is why this authority's slot produced nothing (`governance_pause`,
//! `no_network`, `timestamp`, `no_auxpow`).

/// Registers the help text of every chain and AuxPow metric.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        "alys_chain_head_height",
        "Height of the head (head=\"head\") and of the finalized block (head=\"finalized\")"
    );
    describe_counter!("alys_chain_blocks_produced_total", "Blocks this node produced in its own Aura slots");
    describe_counter!(
        "alys_chain_blocks_imported_total",
        "Blocks imported (own and from peers) and committed as head"
    );
    describe_counter!(
        "alys_chain_slots_skipped_total",
        "Slots of this authority that produced no block, by reason (governance_pause, no_network, timestamp, no_auxpow)"
    );
    describe_counter!(
        "alys_chain_production_errors_total",
        "Slots whose block production failed (see the log for the error)"
    );
    describe_counter!(
        "alys_chain_engine_resync_total",
        "Times the execution client was missing committed blocks and they were re-sent"
    );
    describe_counter!(
        "alys_chain_equivocations_total",
        "Second blocks seen for one (slot, author): equivocation evidence"
    );
    describe_histogram!(
        "alys_chain_consensus_overhead_seconds",
        Unit::Seconds,
        "Time a produced block spends in consensus work (signing, storing) beside the execution client's build"
    );
    describe_gauge!("alys_engine_online", "1 while the execution client answers the Engine API, else 0");
    describe_gauge!("alys_auxpow_bits", "Compact bits (nBits) the next AuxPow proof must meet, as a decimal");
    describe_gauge!(
        "alys_auxpow_difficulty",
        "Difficulty of the next AuxPow proof: the pow limit's target over the current target"
    );
    describe_gauge!(
        "alys_auxpow_templates",
        "Mining templates held for miners (createauxblock answers awaiting a proof)"
    );
    describe_counter!(
        "alys_auxpow_templates_evicted_total",
        "Mining templates evicted by the template cache's bounds"
    );
    describe_counter!(
        "alys_auxpow_accepted_total",
        "AuxPow proofs accepted by submitauxblock and queued for the next block"
    );
    describe_counter!("alys_auxpow_rejected_total", "AuxPow proofs submitted that fail a merged-mining rule");
}
