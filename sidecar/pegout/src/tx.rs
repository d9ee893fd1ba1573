//! The unsigned peg-out transaction: which released burns it pays, which federation UTXOs it spends,
//! what it pays each, and the change — by rules every node recomputes, so all honest nodes build the
//! same transaction (same txid) from the same burns and UTXOs.
//!
//! The slot author builds (the `rules` module), every importer rebuilds and compares.
//!
//! # Rules
//!
//! * **Burns**, in the order given (chain order: block number, log index). A burn's `bitcoinAddress`
//!   bytes are the address as UTF-8 text; one that is not text, not an address, or an address of
//!   another network is refunded ([`RefundReason`]). At most `max_outputs` valid burns are paid per
//!   transaction; the rest wait for the next one. Amounts are whole satoshis of the burned wei (the
//!   contract only accepts multiples large enough that the sub-satoshi rest is dust of wei).
//! * **Inputs**: federation UTXOs by descending value, then by outpoint, until they cover the burns'
//!   sum. Burns the whole set cannot cover wait (from the end of the batch), they are not refunded; so
//!   do burns that would make the signed transaction larger than Bitcoin Core relays
//!   ([`MAX_STANDARD_VSIZE`]).
//! * **Fee**: `fee_rate` sat/vB times the transaction's virtual size, with every input's witness counted
//!   at its largest (`threshold` 73-byte signatures and the witness script), rounded up. Each payment
//!   bears an equal share (the remainder on the first ones); a payment whose amount minus its share is
//!   below the dust limit of its script is refunded instead, and the fee is recomputed without it.
//! * **Outputs**: the payments in burn order, then the change to the current federation (the inputs'
//!   sum minus the burns' sum) when it is not dust; dust change is left to the miner.
//! * **Transaction**: version 2, lock time 0, every input signalling replacement (sequence
//!   `0xfffffffd`) so a stuck transaction can be fee-bumped by a later proposal.

use alloy_primitives::{Address as EvmAddress, U256};
use alys_burns::{Burn, BurnKey};
use alys_contracts::WEI_PER_SAT;
use bitcoin::{
    Address, Amount, Network, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness,
    absolute::LockTime, transaction::Version,
};

/// The largest DER signature with its sighash byte.
const MAX_SIGNATURE_BYTES: u64 = 73;
/// Non-witness bytes of an input with an empty scriptSig: outpoint, script length, sequence.
const INPUT_BASE_BYTES: u64 = 32 + 4 + 1 + 4;
/// Bitcoin Core's largest standard transaction (`MAX_STANDARD_TX_WEIGHT`, 400,000 weight units), in vB.
pub const MAX_STANDARD_VSIZE: u64 = 100_000;

/// Why a burn is refunded to its burner instead of paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum RefundReason {
    /// The address bytes are not UTF-8 text.
    #[error("the Bitcoin address is not text")]
    NotText,
    /// The text is not a Bitcoin address.
    #[error("not a Bitcoin address")]
    InvalidAddress,
    /// The address is for another network than the federation's.
    #[error("a Bitcoin address of another network")]
    WrongNetwork,
    /// After its share of the fee, the payment would be below the dust limit.
    #[error("below the dust limit after its share of the fee")]
    BelowDust,
    /// The burn is below the governed smallest peg-out (`pegout_min_sats`).
    #[error("below the smallest peg-out")]
    BelowMinimum,
}

impl RefundReason {
    /// The short code shown over RPC.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::NotText => "not_text",
            Self::InvalidAddress => "invalid_address",
            Self::WrongNetwork => "wrong_network",
            Self::BelowDust => "below_dust",
            Self::BelowMinimum => "below_minimum",
        }
    }
}

/// A federation UTXO the transaction may spend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendableUtxo {
    /// The outpoint.
    pub outpoint: OutPoint,
    /// Its value.
    pub amount_sats: u64,
    /// The script it pays (a federation's P2WSH).
    pub script_pubkey: ScriptBuf,
    /// The federation's witness script (`OP_m <keys> OP_n OP_CHECKMULTISIG`), for the witness size.
    pub witness_script: ScriptBuf,
    /// Signatures its witness needs.
    pub threshold: u32,
}

/// What the rules need besides the burns and UTXOs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PegoutParams {
    /// The network burn addresses must be on.
    pub network: Network,
    /// Fee rate, sat/vB.
    pub fee_rate_sat_vb: u64,
    /// Where change goes: the current federation's P2WSH script.
    pub change_script: ScriptBuf,
    /// Most burns paid by one transaction.
    pub max_outputs: usize,
    /// Smallest burn paid, in satoshis; smaller ones are refunded.
    pub min_sats: u64,
}

/// A burn the transaction pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payment {
    /// The burn.
    pub burn: BurnKey,
    /// The number of the execution block that holds it.
    pub block_number: u64,
    /// Its output in the transaction.
    pub vout: u32,
    /// What the output pays: the burn minus its fee share.
    pub amount_sats: u64,
    /// Its share of the fee.
    pub fee_share_sats: u64,
}

/// A burn minted back to its burner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refund {
    /// The burn.
    pub burn: BurnKey,
    /// The number of the execution block that holds it.
    pub block_number: u64,
    /// The burner.
    pub to: EvmAddress,
    /// The burned value, returned whole.
    pub amount_wei: U256,
    /// Why.
    pub reason: RefundReason,
}

/// A built peg-out: the unsigned transaction and what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PegoutProposal {
    /// The unsigned transaction.
    pub tx: Transaction,
    /// The outputs it spends, in input order (what signatures and their verification need).
    pub spent: Vec<TxOut>,
    /// The burns it pays, in output order.
    pub payments: Vec<Payment>,
    /// The fee paid, in satoshis.
    pub fee_sats: u64,
}

/// The outcome of applying the rules to a batch of burns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PegoutPlan {
    /// The transaction, when there is anything to pay.
    pub proposal: Option<PegoutProposal>,
    /// Burns refunded instead, in burn order.
    pub refunds: Vec<Refund>,
}

/// Why a proposed transaction was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PegoutCheckError {
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
    /// The rules give no transaction, or another one.
    #[error("the proposed transaction is not the one the rules build (expected {expected:?})")]
    Differs {
        /// The txid the rules build, if any.
        expected: Option<bitcoin::Txid>,
    },
}

fn varint_len(n: u64) -> u64 {
    match n {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

fn output_bytes(script: &ScriptBuf) -> u64 {
    let len = script.len() as u64;
    8 + varint_len(len) + len
}

fn input_witness_bytes(utxo: &SpendableUtxo) -> u64 {
    let signatures = u64::from(utxo.threshold);
    let script = utxo.witness_script.len() as u64;
    // Items: the empty dummy CHECKMULTISIG pops, the signatures, the witness script.
    varint_len(signatures + 2) + 1 + signatures * (1 + MAX_SIGNATURE_BYTES) + varint_len(script) + script
}

/// The virtual size of a transaction spending `inputs` to `outputs`, every witness at its largest.
fn virtual_size(inputs: &[&SpendableUtxo], outputs: &[&ScriptBuf]) -> u64 {
    let base = 4
        + varint_len(inputs.len() as u64)
        + INPUT_BASE_BYTES * inputs.len() as u64
        + varint_len(outputs.len() as u64)
        + outputs.iter().map(|s| output_bytes(s)).sum::<u64>()
        + 4;
    let witness = 2 + inputs.iter().map(|u| input_witness_bytes(u)).sum::<u64>();
    (base * 4 + witness).div_ceil(4)
}

/// The destination of `burn` on `network`, or why it has none.
pub fn destination(burn: &Burn, network: Network) -> Result<Address, RefundReason> {
    let text = std::str::from_utf8(&burn.bitcoin_address).map_err(|_| RefundReason::NotText)?;
    let address = text
        .trim()
        .parse::<Address<bitcoin::address::NetworkUnchecked>>()
        .map_err(|_| RefundReason::InvalidAddress)?;
    address.require_network(network).map_err(|_| RefundReason::WrongNetwork)
}

fn refund(burn: &Burn, reason: RefundReason) -> Refund {
    Refund {
        burn: burn.key(),
        block_number: burn.block_number,
        to: burn.sender,
        amount_wei: burn.value,
        reason,
    }
}

/// The unsigned transaction spending `inputs` (in order, each signalling replacement) to `output`, and
/// the outputs it spends.
fn unsigned(inputs: &[&SpendableUtxo], output: Vec<TxOut>) -> (Transaction, Vec<TxOut>) {
    let tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: inputs
            .iter()
            .map(|u| TxIn {
                previous_output: u.outpoint,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::new(),
            })
            .collect(),
        output,
    };
    let spent = inputs
        .iter()
        .map(|u| TxOut { value: Amount::from_sat(u.amount_sats), script_pubkey: u.script_pubkey.clone() })
        .collect();
    (tx, spent)
}

/// Applies the rules (see the module docs) to `burns` (chain order) over `utxos`.
pub fn build(burns: &[Burn], utxos: &[SpendableUtxo], params: &PegoutParams) -> PegoutPlan {
    // Refunds carry their burn's index, to be listed in burn order.
    let mut refunds: Vec<(usize, Refund)> = Vec::new();
    let mut batch: Vec<(usize, &Burn, ScriptBuf, u64)> = Vec::new();
    for (index, burn) in burns.iter().enumerate() {
        if batch.len() >= params.max_outputs {
            break;
        }
        match destination(burn, params.network) {
            Ok(address) => {
                let sats = u64::try_from(burn.value / U256::from(WEI_PER_SAT)).unwrap_or(u64::MAX);
                if sats < params.min_sats {
                    refunds.push((index, refund(burn, RefundReason::BelowMinimum)));
                } else {
                    batch.push((index, burn, address.script_pubkey(), sats));
                }
            }
            Err(reason) => refunds.push((index, refund(burn, reason))),
        }
    }
    let finish = |mut refunds: Vec<(usize, Refund)>| -> Vec<Refund> {
        refunds.sort_by_key(|(index, _)| *index);
        refunds.into_iter().map(|(_, r)| r).collect()
    };
    let mut ordered: Vec<&SpendableUtxo> = utxos.iter().collect();
    ordered.sort_by(|a, b| b.amount_sats.cmp(&a.amount_sats).then_with(|| a.outpoint.cmp(&b.outpoint)));
    let available = ordered.iter().fold(0u64, |sum, u| sum.saturating_add(u.amount_sats));
    // Burns the federation cannot cover wait, from the end of the batch.
    while batch.iter().fold(0u64, |sum, (_, _, _, sats)| sum.saturating_add(*sats)) > available {
        batch.pop();
    }
    // Each round either builds the transaction or refunds at least one burn as dust.
    loop {
        if batch.is_empty() {
            return PegoutPlan { proposal: None, refunds: finish(refunds) };
        }
        let total = batch.iter().fold(0u64, |sum, (_, _, _, sats)| sum.saturating_add(*sats));
        let mut inputs = Vec::new();
        let mut covered = 0u64;
        for utxo in &ordered {
            if covered >= total {
                break;
            }
            covered = covered.saturating_add(utxo.amount_sats);
            inputs.push(*utxo);
        }
        let mut scripts: Vec<&ScriptBuf> = batch.iter().map(|(_, _, script, _)| script).collect();
        scripts.push(&params.change_script);
        let vsize = virtual_size(&inputs, &scripts);
        if vsize > MAX_STANDARD_VSIZE {
            // Too large to relay once signed: the longest prefix of the batch that fits goes, the rest
            // waits for the next transaction (size grows with the prefix, so a binary search finds it).
            let fits = |k: usize| -> bool {
                let total = batch.iter().take(k).fold(0u64, |sum, (_, _, _, sats)| sum.saturating_add(*sats));
                let (mut covered, mut count) = (0u64, 0usize);
                for utxo in &ordered {
                    if covered >= total {
                        break;
                    }
                    covered = covered.saturating_add(utxo.amount_sats);
                    count += 1;
                }
                let inputs: Vec<&SpendableUtxo> = ordered.iter().take(count).copied().collect();
                let mut scripts: Vec<&ScriptBuf> =
                    batch.iter().take(k).map(|(_, _, script, _)| script).collect();
                scripts.push(&params.change_script);
                virtual_size(&inputs, &scripts) <= MAX_STANDARD_VSIZE
            };
            let (mut low, mut high) = (0usize, batch.len() - 1);
            while low < high {
                let mid = (low + high).div_ceil(2);
                if fits(mid) { low = mid } else { high = mid - 1 }
            }
            batch.truncate(low);
            continue;
        }
        let fee = vsize.saturating_mul(params.fee_rate_sat_vb);
        let count = batch.len() as u64;
        let (share, rest) = (fee / count, fee % count);
        let shares: Vec<u64> = (0..count).map(|i| share + u64::from(i < rest)).collect();
        let dust: Vec<usize> = batch
            .iter()
            .zip(&shares)
            .enumerate()
            .filter(|(_, ((_, _, script, sats), share))| {
                sats.saturating_sub(**share) < script.minimal_non_dust().to_sat() || **share > *sats
            })
            .map(|(i, _)| i)
            .collect();
        if !dust.is_empty() {
            for position in dust.into_iter().rev() {
                let (index, burn, _, _) = batch.remove(position);
                refunds.push((index, refund(burn, RefundReason::BelowDust)));
            }
            continue;
        }
        let mut output = Vec::with_capacity(batch.len() + 1);
        let mut payments = Vec::with_capacity(batch.len());
        for (((_, burn, script, sats), share), vout) in batch.iter().zip(&shares).zip(0u32..) {
            let amount = sats - share;
            output.push(TxOut { value: Amount::from_sat(amount), script_pubkey: script.clone() });
            payments.push(Payment {
                burn: burn.key(),
                block_number: burn.block_number,
                vout,
                amount_sats: amount,
                fee_share_sats: *share,
            });
        }
        let change = covered - total;
        if change >= params.change_script.minimal_non_dust().to_sat() {
            output
                .push(TxOut { value: Amount::from_sat(change), script_pubkey: params.change_script.clone() });
        }
        let (tx, spent) = unsigned(&inputs, output);
        let paid_out = tx.output.iter().fold(0u64, |sum, o| sum.saturating_add(o.value.to_sat()));
        let fee_sats = covered - paid_out;
        return PegoutPlan {
            proposal: Some(PegoutProposal { tx, spent, payments, fee_sats }),
            refunds: finish(refunds),
        };
    }
}

/// Checks a proposed transaction and fee rate against the rules: the rate within `[floor, cap]`, and
/// the transaction the one [`build`] makes from the same burns and UTXOs at that rate.
pub fn check(
    proposed: &Transaction,
    fee_rate_sat_vb: u64,
    (floor, cap): (u64, u64),
    burns: &[Burn],
    utxos: &[SpendableUtxo],
    params: &PegoutParams,
) -> Result<PegoutPlan, PegoutCheckError> {
    if fee_rate_sat_vb < floor || fee_rate_sat_vb > cap {
        return Err(PegoutCheckError::FeeRate { rate: fee_rate_sat_vb, floor, cap });
    }
    let params = PegoutParams { fee_rate_sat_vb, ..params.clone() };
    let plan = build(burns, utxos, &params);
    match &plan.proposal {
        Some(expected) if expected.tx == *proposed => Ok(plan),
        other => Err(PegoutCheckError::Differs { expected: other.as_ref().map(|p| p.tx.compute_txid()) }),
    }
}

/// Most inputs one sweep spends (a signed sweep of this many 2-of-3 inputs stays far below
/// [`MAX_STANDARD_VSIZE`]).
pub const MAX_SWEEP_INPUTS: usize = 200;

/// The sweep of a previous federation's `utxos` to `to` (the current federation's script): inputs by
/// outpoint, at most [`MAX_SWEEP_INPUTS`], one output of their sum minus the fee at `fee_rate_sat_vb`.
/// `None` when there is nothing to sweep or the sum would not cover the fee and a non-dust output (the
/// outputs then wait for more, or for a lower fee rate).
pub fn build_sweep(utxos: &[SpendableUtxo], to: &ScriptBuf, fee_rate_sat_vb: u64) -> Option<PegoutProposal> {
    let mut inputs: Vec<&SpendableUtxo> = utxos.iter().collect();
    inputs.sort_by_key(|u| u.outpoint);
    inputs.truncate(MAX_SWEEP_INPUTS);
    if inputs.is_empty() {
        return None;
    }
    let total = inputs.iter().fold(0u64, |sum, u| sum.saturating_add(u.amount_sats));
    let fee = virtual_size(&inputs, &[to]).saturating_mul(fee_rate_sat_vb);
    let value = total.checked_sub(fee).filter(|v| *v >= to.minimal_non_dust().to_sat())?;
    let (tx, spent) =
        unsigned(&inputs, vec![TxOut { value: Amount::from_sat(value), script_pubkey: to.clone() }]);
    Some(PegoutProposal { tx, spent, payments: Vec::new(), fee_sats: fee })
}
