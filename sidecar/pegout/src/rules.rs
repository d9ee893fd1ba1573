//! What a block may propose for peg-out, and how every importer checks it (DESIGN: "Bridge state is
//! consensus state"; invariant 3).
//!
//! # What the author proposes, at height `H` on parent `P`
//!
//! Nothing while governance pauses peg-outs at `H`. Otherwise, from the burns released in its ledger
//! (final and canonical) that no block of `P`'s chain settled (the queue the database keeps in step
//! with the canonical chain), oldest first, at most
//! [`MAX_BURNS_PER_BLOCK`], and from the federation's UTXO set at `P` that pays the federation in force
//! at `H`, the transaction [`build`] makes at the governed fee rate: the burns it pays, the burns it
//! refunds (invalid or wrong-network address, below `pegout_min_sats`, below dust after the fee), and
//! the change to the federation in force. Burns the UTXOs cannot cover wait and are not listed.
//!
//! When that settles nothing (no burn, or none the current federation's outputs can pay, as right
//! after a rotation) and the UTXO set at `P` holds outputs of an earlier federation, the block proposes
//! a sweep of them to the federation in force ([`build_sweep`]), one federation per transaction (one
//! signature request signs it). The swept output is the current federation's at once, so the next
//! block pays the waiting burns from it (the payer broadcasts the sweep first).
//!
//! # Fee bumps (BIP125 replace-by-fee)
//!
//! A payment transaction still unconfirmed `pegout_bump_after_blocks` after the block that proposed
//! it is replaced: the author (whose own payer has it broadcast and unconfirmed) proposes the same
//! inputs paying the same burns at twice the fee rate (within the governed bounds), each burn bearing
//! its share of the higher fee, with `replaces` naming the original block. Every transaction signals
//! replacement, so Bitcoin Core accepts the new one in place of the old. It is signed under a new
//! request id (its own txid) like any proposal. Allowed only while no later block replaced it or
//! spends its change (a replacement would orphan that spend); importers rebuild the bump exactly and
//! refuse one of a transaction their own Bitcoin node saw confirmed. The replaced transaction's change
//! leaves the UTXO set, the replacement's enters it, and the payer stops sending the old one.
//!
//! # What an importer checks
//!
//! Every listed burn is released in its own ledger (final and canonical by its own chain), listed
//! once, and not settled on `P`'s chain; the fee rate is within `[pegout_fee_rate_sat_vb,
//! pegout_fee_rate_cap_sat_vb]`; and the rules, applied to exactly the listed burns and its own UTXO set
//! at `P` at that fee rate, give the same transaction, the same paid burns and the same refunds. So a
//! proposal that spends an output that is not the federation's or is spent already, pays a burn twice,
//! sends change elsewhere or pays a higher fee than allowed is refused. Refunds are minted as
//! withdrawals (gwei = wei / 10⁹) after the block's peg-in claims; the chain compares them with the
//! execution block's withdrawals (invariant 2).
//!
//! [`build`]: super::tx::build
//! [`build_sweep`]: super::tx::build_sweep

use std::collections::HashSet;

use alloy_primitives::{Address as EvmAddress, B256, Bytes, U256};
use alys_burns::{Burn, BurnPosition};
use alys_governance::{Federation, RuntimeView};
use alys_primitives::{BlockRef, BurnRef, ConsensusHeader, PegoutBlock};
use alys_storage::{
    FederationOutput, FederationRead, PayoutRead, PayoutStatus, PegoutRead, StorageError, pegout_transaction,
};
use bitcoin::{
    Network, OutPoint, ScriptBuf, Transaction, Txid, consensus::deserialize, consensus::serialize,
    hashes::Hash as _,
};

use super::tx::{PegoutParams, PegoutPlan, SpendableUtxo, build, build_sweep};

/// Counter: peg-out proposals this node put in blocks it produced.
pub const PROPOSED: &str = "alys_pegout_proposals_total";
/// Counter: blocks refused for their peg-out proposal, by reason.
pub const PROPOSALS_REFUSED: &str = "alys_pegout_proposals_refused_total";

/// Registers the help text of the proposal metrics.
pub fn describe_metrics() {
    metrics::describe_counter!(
        PROPOSED,
        "Peg-out proposals (payments, refunds, sweeps) this node put in blocks it produced"
    );
    metrics::describe_counter!(
        PROPOSALS_REFUSED,
        "Blocks refused because their peg-out proposal is not what the rules build, by reason"
    );
}

/// The most burns one block settles (the rest wait for the next block).
pub const MAX_BURNS_PER_BLOCK: usize = 1_000;
/// Wei per gwei: refunds are withdrawals, which count gwei.
const WEI_PER_GWEI: u64 = 1_000_000_000;

/// Why a block's peg-out proposal was refused.
#[derive(Debug, thiserror::Error)]
pub enum PegoutError {
    /// Governance paused peg-outs at this height.
    #[error("peg-outs are paused at height {0}")]
    Paused(u64),
    /// No federation is in force at this height.
    #[error("no federation is in force at height {0}")]
    NoFederation(u64),
    /// A listed burn is not released in this node's ledger (not final, not canonical, or not seen
    /// yet: a node whose burn source lags refuses until it catches up).
    #[error("burn {0:?} is not a released burn here")]
    UnknownBurn(BurnRef),
    /// A burn is listed twice.
    #[error("burn {0:?} listed twice")]
    Duplicate(BurnRef),
    /// A burn was settled already on this chain.
    #[error("burn {burn:?} was settled already in block {}", block.hash)]
    AlreadySettled {
        /// The burn.
        burn: BurnRef,
        /// Where.
        block: BlockRef,
    },
    /// The fee rate is outside the governed bounds.
    #[error("fee rate {rate} sat/vB outside [{floor}, {cap}]")]
    FeeRate {
        /// The proposal's rate.
        rate: u64,
        /// The floor.
        floor: u64,
        /// The cap.
        cap: u64,
    },
    /// The transaction does not decode.
    #[error("the proposed transaction does not decode: {0}")]
    Decode(#[from] bitcoin::consensus::encode::Error),
    /// The rules give another transaction, other payments or other refunds.
    #[error("the proposal is not what the rules build from its burns: {what} (rules: {expected:?})")]
    Differs {
        /// What differs.
        what: &'static str,
        /// The txid the rules build, if any.
        expected: Option<Txid>,
    },
    /// A fee bump that the rules do not allow: too early, of a transaction replaced or built on
    /// already, or whose replacement would not pay the same burns.
    #[error("fee bump refused: {0}")]
    NotBumpable(&'static str),
    /// A fee bump of a transaction this node's Bitcoin node has confirmed.
    #[error("fee bump of {0}, which is confirmed")]
    AlreadyConfirmed(Txid),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl PegoutError {
    /// A short label for metrics.
    pub const fn reason(&self) -> &'static str {
        match self {
            Self::Paused(_) => "paused",
            Self::NoFederation(_) => "no_federation",
            Self::UnknownBurn(_) => "unknown_burn",
            Self::Duplicate(_) => "duplicate",
            Self::AlreadySettled { .. } => "already_settled",
            Self::FeeRate { .. } => "fee_rate",
            Self::Decode(_) => "decode",
            Self::Differs { .. } => "differs",
            Self::NotBumpable(_) => "not_bumpable",
            Self::AlreadyConfirmed(_) => "already_confirmed",
            Self::Storage(_) => "storage",
        }
    }
}

/// The position of a referenced burn (the ledger's key).
pub const fn position(burn: &BurnRef) -> BurnPosition {
    BurnPosition { block_number: burn.block_number, log_index: burn.log_index, block_hash: burn.block_hash }
}

/// The reference a block lists for `burn`.
pub const fn burn_ref(burn: &Burn) -> BurnRef {
    BurnRef { block_number: burn.block_number, log_index: burn.log_index, block_hash: burn.block_hash }
}

/// A proposal the author puts in its block, with the refunds it mints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposed {
    /// The header field.
    pub block: PegoutBlock,
    /// The refunds, in the order they are minted: (burner, gwei).
    pub refunds: Vec<(EvmAddress, u64)>,
}

/// An earlier federation and its outputs in the UTXO set.
type FederationUtxos = (Federation, Vec<SpendableUtxo>);

/// The peg-out rules of a chain: the Bitcoin network its addresses are on, and governance's decisions.
#[derive(Debug, Clone)]
pub struct PegoutRules {
    runtime: RuntimeView,
    network: Network,
    max_burns: usize,
}

impl PegoutRules {
    /// Rules for a federation on `network`, reading governance's decisions from `runtime`.
    pub const fn new(runtime: RuntimeView, network: Network) -> Self {
        Self { runtime, network, max_burns: MAX_BURNS_PER_BLOCK }
    }

    /// Sets the most burns settled per block.
    pub const fn with_max_burns(mut self, max_burns: usize) -> Self {
        self.max_burns = max_burns;
        self
    }

    /// The federation whose script `script` is, if governance ever announced it.
    fn federation_of(&self, script: &[u8]) -> Option<Federation> {
        self.runtime.federations().into_iter().find(|f| f.address.script_pubkey().as_bytes() == script)
    }

    /// The UTXO set at `parent`, split into the outputs of the federation in force and those of each
    /// earlier federation (in outpoint order), as the builder takes them.
    fn utxos(
        &self,
        read: &impl FederationRead,
        parent: BlockRef,
        current: &Federation,
    ) -> Result<(Vec<SpendableUtxo>, Vec<FederationUtxos>), StorageError> {
        let current_script = current.address.script_pubkey();
        let mut own = Vec::new();
        let mut others: Vec<FederationUtxos> = Vec::new();
        for output in read.federation_utxos_at(parent)? {
            if output.script_pubkey.as_ref() == current_script.as_bytes() {
                own.push(spendable(&output, current));
            } else if let Some(federation) = self.federation_of(&output.script_pubkey) {
                let utxo = spendable(&output, &federation);
                match others.iter_mut().find(|(f, _)| f.address == federation.address) {
                    Some((_, list)) => list.push(utxo),
                    None => others.push((federation, vec![utxo])),
                }
            }
        }
        others.sort_by_key(|(f, _)| f.effective_height);
        Ok((own, others))
    }

    fn params(&self, height: u64, current: &Federation, fee_rate_sat_vb: u64) -> PegoutParams {
        let parameters = self.runtime.state_at(height).parameters;
        PegoutParams {
            network: self.network,
            fee_rate_sat_vb,
            change_script: current.address.script_pubkey(),
            max_outputs: self.max_burns,
            min_sats: parameters.pegout_min_sats,
        }
    }

    /// The peg-out the block at `height` on `parent` proposes (module docs), or `None`.
    pub fn propose(
        &self,
        read: &(impl PegoutRead + FederationRead + PayoutRead),
        height: u64,
        parent: BlockRef,
    ) -> Result<Option<Proposed>, PegoutError> {
        let state = self.runtime.state_at(height);
        if state.pegouts_paused {
            return Ok(None);
        }
        let Some(current) = self.runtime.federations_at(height).0 else { return Ok(None) };
        if let Some(bump) = self.stuck_bump(read, height, parent)? {
            return Ok(Some(bump));
        }
        let fee_rate = state.parameters.pegout_fee_rate_sat_vb;
        let mut burns = Vec::new();
        let mut after = None;
        // The queue: released burns no canonical block settled (the parent is the head when producing;
        // each is still checked against the parent's chain).
        'pages: loop {
            let page = read.unsettled_burns_page(after, 256)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.position());
            for (burn, _) in page {
                if read.settled_on(&burn_ref(&burn), parent)?.is_none() {
                    burns.push(burn);
                    if burns.len() >= self.max_burns {
                        break 'pages;
                    }
                }
            }
        }
        let (own, others) = self.utxos(read, parent, &current)?;
        if !burns.is_empty() {
            let plan = build(&burns, &own, &self.params(height, &current, fee_rate));
            if let Some(proposed) = proposed(&plan, fee_rate) {
                return Ok(Some(proposed));
            }
        }
        // Nothing to settle, or nothing the current federation's outputs can pay yet (right after a
        // rotation): sweep an earlier federation's outputs, which pays the burns from the next block.
        let Some((_, old)) = others.first() else { return Ok(None) };
        let Some(sweep) = build_sweep(old, &current.address.script_pubkey(), fee_rate) else {
            return Ok(None);
        };
        let block = PegoutBlock {
            paid: Vec::new(),
            refunded: Vec::new(),
            fee_rate_sat_vb: fee_rate,
            tx: Bytes::from(serialize(&sweep.tx)),
            replaces: None,
        };
        Ok(Some(Proposed { block, refunds: Vec::new() }))
    }

    /// The fee bump the author proposes, if one of the transactions it broadcast is stuck: unconfirmed
    /// `pegout_bump_after_blocks` after its block, oldest first.
    fn stuck_bump(
        &self,
        read: &(impl PegoutRead + FederationRead + PayoutRead),
        height: u64,
        parent: BlockRef,
    ) -> Result<Option<Proposed>, PegoutError> {
        let after = self.runtime.state_at(height).parameters.pegout_bump_after_blocks;
        for record in read.payouts_with_status(PayoutStatus::Broadcast)? {
            if record.block_height.saturating_add(after) > height {
                continue;
            }
            let Some(block) = read.block(&record.block_hash)? else { continue };
            match self.bump_of(read, height, parent, &block.header) {
                Ok(bump) => return Ok(Some(bump)),
                Err(PegoutError::NotBumpable(_)) => continue,
                Err(error) => return Err(error),
            }
        }
        Ok(None)
    }

    /// The fee bump of the transaction `replaced` proposes, in the block at `height` on `parent`: the
    /// same inputs and burns at twice the fee rate (within the governed bounds), the burns bearing the
    /// difference. Allowed `pegout_bump_after_blocks` after `replaced`, when it is on `parent`'s chain,
    /// no later block replaced it, and no later block spends its change (a replacement would orphan
    /// that spend).
    fn bump_of(
        &self,
        read: &(impl PegoutRead + FederationRead),
        height: u64,
        parent: BlockRef,
        replaced: &ConsensusHeader,
    ) -> Result<Proposed, PegoutError> {
        let Some(pegout) = &replaced.pegout else { return Err(PegoutError::NotBumpable("no peg-out")) };
        let Some(tx) = pegout_transaction(replaced).ok().flatten() else {
            return Err(PegoutError::NotBumpable("no transaction"));
        };
        if pegout.paid.is_empty() {
            return Err(PegoutError::NotBumpable("a sweep"));
        }
        let state = self.runtime.state_at(height);
        let at = BlockRef { height: replaced.height, hash: replaced.hash() };
        if at.height.saturating_add(state.parameters.pegout_bump_after_blocks) > height {
            return Err(PegoutError::NotBumpable("too early"));
        }
        if !read.is_ancestor(at, parent)? {
            return Err(PegoutError::NotBumpable("not on this chain"));
        }
        for burn in &pegout.paid {
            if read.settled_on(burn, parent)?.map(|s| s.block) != Some(at) {
                return Err(PegoutError::NotBumpable("replaced already"));
            }
        }
        let txid = B256::from(tx.compute_txid().to_byte_array());
        for (vout, _) in (0u32..).zip(&tx.output).skip(pegout.paid.len()) {
            if read.spent_on(&txid, vout, parent)?.is_some() {
                return Err(PegoutError::NotBumpable("its change is spent"));
            }
        }
        let (floor, cap) =
            (state.parameters.pegout_fee_rate_sat_vb, state.parameters.pegout_fee_rate_cap_sat_vb);
        let rate = pegout.fee_rate_sat_vb.saturating_mul(2).max(floor).min(cap);
        if rate <= pegout.fee_rate_sat_vb {
            return Err(PegoutError::NotBumpable("at the fee cap"));
        }
        let mut burns = Vec::with_capacity(pegout.paid.len());
        for burn in &pegout.paid {
            burns.push(read.released_burn(&position(burn))?.ok_or(PegoutError::UnknownBurn(*burn))?);
        }
        let mut utxos = Vec::with_capacity(tx.input.len());
        for input in &tx.input {
            let prev = B256::from(input.previous_output.txid.to_byte_array());
            let output = read
                .federation_output(&prev, input.previous_output.vout)?
                .ok_or(PegoutError::NotBumpable("spends an unknown output"))?;
            let federation = self
                .federation_of(&output.script_pubkey)
                .ok_or(PegoutError::NotBumpable("unknown federation"))?;
            utxos.push(spendable(&output, &federation));
        }
        let change_script = tx.output.get(pegout.paid.len()).map(|o| o.script_pubkey.clone());
        let Some(current) = self.runtime.federations_at(height).0 else {
            return Err(PegoutError::NoFederation(height));
        };
        let mut params = self.params(height, &current, rate);
        if let Some(script) = change_script {
            params.change_script = script;
        }
        let plan = build(&burns, &utxos, &params);
        let Some(bump) = proposed(&plan, rate) else {
            return Err(PegoutError::NotBumpable("nothing to pay"));
        };
        if bump.block.paid != pegout.paid || !bump.block.refunded.is_empty() {
            return Err(PegoutError::NotBumpable("the burns would not all be paid at the higher fee"));
        }
        Ok(Proposed { block: PegoutBlock { replaces: Some(at.hash), ..bump.block }, refunds: Vec::new() })
    }

    /// Checks the peg-out `header` proposes on `parent` (module docs); returns the refunds it mints,
    /// in order: (burner, gwei).
    pub fn verify(
        &self,
        read: &(impl PegoutRead + FederationRead + PayoutRead),
        header: &ConsensusHeader,
        parent: BlockRef,
    ) -> Result<Vec<(EvmAddress, u64)>, PegoutError> {
        let Some(pegout) = &header.pegout else { return Ok(Vec::new()) };
        let height = header.height;
        let state = self.runtime.state_at(height);
        if state.pegouts_paused {
            return Err(PegoutError::Paused(height));
        }
        if let Some(replaced) = pegout.replaces {
            let block = read.block(&replaced)?.ok_or(PegoutError::NotBumpable("replaced block unknown"))?;
            let replaced_tx = pegout_transaction(&block.header)
                .ok()
                .flatten()
                .ok_or(PegoutError::NotBumpable("replaced block pays nothing"))?;
            let txid = B256::from(replaced_tx.compute_txid().to_byte_array());
            if read.payout(&txid)?.is_some_and(|r| r.status == PayoutStatus::Confirmed) {
                return Err(PegoutError::AlreadyConfirmed(replaced_tx.compute_txid()));
            }
            let expected = self.bump_of(read, height, parent, &block.header)?;
            if expected.block != *pegout {
                return Err(PegoutError::Differs { what: "fee bump", expected: None });
            }
            return Ok(Vec::new());
        }
        let current = self.runtime.federations_at(height).0.ok_or(PegoutError::NoFederation(height))?;
        let (floor, cap) =
            (state.parameters.pegout_fee_rate_sat_vb, state.parameters.pegout_fee_rate_cap_sat_vb);
        let rate = pegout.fee_rate_sat_vb;
        if rate < floor || rate > cap {
            return Err(PegoutError::FeeRate { rate, floor, cap });
        }
        let proposed_tx: Option<Transaction> =
            if pegout.tx.is_empty() { None } else { Some(deserialize(&pegout.tx)?) };
        let mut listed: Vec<BurnRef> = pegout.paid.iter().chain(&pegout.refunded).copied().collect();
        let mut seen = HashSet::new();
        for burn in &listed {
            if !seen.insert(*burn) {
                return Err(PegoutError::Duplicate(*burn));
            }
        }
        listed.sort_by_key(position);
        let mut burns = Vec::with_capacity(listed.len());
        for burn in &listed {
            let released = read.released_burn(&position(burn))?.ok_or(PegoutError::UnknownBurn(*burn))?;
            if let Some(settled) = read.settled_on(burn, parent)? {
                return Err(PegoutError::AlreadySettled { burn: *burn, block: settled.block });
            }
            burns.push(released);
        }
        let (own, others) = self.utxos(read, parent, &current)?;
        let differs = |what, expected: Option<&Transaction>| PegoutError::Differs {
            what,
            expected: expected.map(Transaction::compute_txid),
        };
        if burns.is_empty() {
            // A sweep: the rules sweep the earliest other federation's outputs.
            let sweep = others
                .first()
                .and_then(|(_, old)| build_sweep(old, &current.address.script_pubkey(), rate))
                .map(|s| s.tx);
            return match (&sweep, &proposed_tx) {
                (Some(expected), Some(tx)) if expected == tx => Ok(Vec::new()),
                _ => Err(differs("sweep", sweep.as_ref())),
            };
        }
        let plan = build(&burns, &own, &self.params(height, &current, rate));
        let expected = proposed(&plan, rate);
        let expected_tx = plan.proposal.as_ref().map(|p| &p.tx);
        let Some(expected) = expected else { return Err(differs("nothing to settle", None)) };
        if expected_tx != proposed_tx.as_ref() {
            return Err(differs("transaction", expected_tx));
        }
        if expected.block.paid != pegout.paid {
            return Err(differs("paid burns", expected_tx));
        }
        if expected.block.refunded != pegout.refunded {
            return Err(differs("refunded burns", expected_tx));
        }
        Ok(expected.refunds)
    }

    /// The refunds a stored block mints, in order (burner, gwei), read from this node's ledger.
    pub fn refunds_of(
        &self,
        read: &impl PegoutRead,
        header: &ConsensusHeader,
    ) -> Result<Vec<(EvmAddress, u64)>, PegoutError> {
        let Some(pegout) = &header.pegout else { return Ok(Vec::new()) };
        let mut out = Vec::with_capacity(pegout.refunded.len());
        for burn in &pegout.refunded {
            let released = read.released_burn(&position(burn))?.ok_or(PegoutError::UnknownBurn(*burn))?;
            out.push((released.sender, gwei(released.value)));
        }
        Ok(out)
    }
}

fn gwei(wei: U256) -> u64 {
    u64::try_from(wei / U256::from(WEI_PER_GWEI)).unwrap_or(u64::MAX)
}

fn spendable(output: &FederationOutput, federation: &Federation) -> SpendableUtxo {
    SpendableUtxo {
        outpoint: OutPoint { txid: Txid::from_byte_array(output.txid.0), vout: output.vout },
        amount_sats: output.amount_sats,
        script_pubkey: ScriptBuf::from_bytes(output.script_pubkey.to_vec()),
        witness_script: federation.witness_script.clone(),
        threshold: federation.threshold,
    }
}

/// The header field and refunds of a plan, or `None` when it settles nothing.
fn proposed(plan: &PegoutPlan, fee_rate_sat_vb: u64) -> Option<Proposed> {
    if plan.proposal.is_none() && plan.refunds.is_empty() {
        return None;
    }
    let key_ref = |block_hash: B256, log_index: u64, number: u64| BurnRef {
        block_number: number,
        log_index,
        block_hash,
    };
    let paid = plan.proposal.as_ref().map_or_else(Vec::new, |p| {
        p.payments
            .iter()
            .map(|pay| key_ref(pay.burn.block_hash, pay.burn.log_index, pay.block_number))
            .collect()
    });
    let refunded =
        plan.refunds.iter().map(|r| key_ref(r.burn.block_hash, r.burn.log_index, r.block_number)).collect();
    let refunds = plan.refunds.iter().map(|r| (r.to, gwei(r.amount_wei))).collect();
    let tx = plan.proposal.as_ref().map(|p| Bytes::from(serialize(&p.tx))).unwrap_or_default();
    Some(Proposed { block: PegoutBlock { paid, refunded, fee_rate_sat_vb, tx, replaces: None }, refunds })
}
