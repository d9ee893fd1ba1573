//! Help text for the metrics the chain actor records: production, import, finality, merged mining.
//! [`describe`] registers it with the installed recorder (the node calls it once at start), so every
//! series on `/metrics` says what it counts.
//!
//! Labels: `head` on `alys_chain_head_height` is `head` or `finalized`; `reason` on
//! `alys_chain_slots_skipped_total` is why this authority's slot produced nothing (`operator_pause`,
//! `governance_pause`, `no_network`, `timestamp`, `no_auxpow`, `no_quorum`, `head_moved`, `voted`).

/// Registers the help text of every chain and AuxPow metric.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        "alys_chain_head_height",
        "Height of the head (head=\"head\") and of the finalized block (head=\"finalized\")"
    );
    describe_gauge!(
        "alys_chain_production_paused",
        "1 while an operator paused block production (alys_pauseProduction; it holds across restarts), else 0"
    );
    describe_counter!("alys_chain_blocks_produced_total", "Blocks this node produced in its own Aura slots");
    describe_counter!(
        "alys_chain_blocks_imported_total",
        "Blocks imported (own and from peers) and committed as head"
    );
    describe_counter!(
        "alys_chain_slots_skipped_total",
        "Slots of this authority that produced no block, by reason (operator_pause: alys_pauseProduction, governance_pause, no_network, timestamp, no_auxpow, no_quorum: too few approvals before the slot ended, head_moved: a peer's block arrived first, voted: this node approved another block of the height a moment ago)"
    );
    describe_histogram!(
        "alys_chain_import_seconds",
        Unit::Seconds,
        "Time importing a block from a peer takes, split into the execution client's part (part=engine) and the node's own checks and commit (part=consensus)"
    );
    describe_histogram!(
        "alys_chain_approval_seconds",
        Unit::Seconds,
        "Time from this authority's proposal to the quorum of approvals that commits it"
    );
    describe_histogram!(
        "alys_chain_proposal_check_seconds",
        Unit::Seconds,
        "Time this authority takes to check and execute another authority's proposal before approving it"
    );
    describe_counter!(
        "alys_chain_events_dropped_total",
        "Blocks, proposals, evidence or proofs the chain could not hand to the network (its queue was full)"
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
        "Equivocations recorded: two blocks one authority signed for one slot (found here or received as evidence)"
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
