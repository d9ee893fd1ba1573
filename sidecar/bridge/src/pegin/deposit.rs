//! What makes a Bitcoin transaction a deposit, decided from the transaction alone.
//!
//! A deposit pays one or more outputs to a federation address and names the EVM address to mint to in
//! exactly one OP_RETURN output, as Alys's `createrawtransaction '[]' '[{"<federation>": amt},
//! {"data": "<evm hex>"}]'` writes it: the 20 raw bytes of the address in one push. The 40-character
//! hex text of the address (with or without `0x`), which Alys v1 also accepts, is accepted too.
//! Several outputs to federation addresses are one deposit of their sum.

use std::collections::HashSet;

use alloy_primitives::{Address, B256, Bytes};
use alys_storage::{DepositOutput, DepositRecord};
use bitcoin::{
    Block, ScriptBuf, Transaction,
    hashes::Hash as _,
    script::{Instruction, Script},
};

/// Why a deposit is not minted. The short code ([`Self::code`]) is what the node records and RPC shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Rejection {
    /// It pays a federation address but has no OP_RETURN output.
    #[error("no OP_RETURN naming an EVM address")]
    NoOpReturn,
    /// It has more than one OP_RETURN output.
    #[error("more than one OP_RETURN output")]
    MultipleOpReturns,
    /// Its OP_RETURN does not hold a 20-byte EVM address (raw, or as 40 hex characters).
    #[error("the OP_RETURN does not hold a 20-byte EVM address")]
    BadAddress,
    /// It names an EVM address but pays no federation address.
    #[error("pays no federation address")]
    NoFederationOutput,
    /// It pays only a previous federation's address, after the grace period of the rotation.
    #[error("pays a previous federation after its grace period")]
    FederationExpired,
    /// The sum paid is below the governed minimum (`pegin_min_sats`).
    #[error("amount below the minimum deposit")]
    BelowMinimum,
}

impl Rejection {
    /// Every rejection, for metrics labels and RPC documentation.
    pub const ALL: [Self; 6] = [
        Self::NoOpReturn,
        Self::MultipleOpReturns,
        Self::BadAddress,
        Self::NoFederationOutput,
        Self::FederationExpired,
        Self::BelowMinimum,
    ];

    /// The short code recorded in the database and shown over RPC.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::NoOpReturn => "no_op_return",
            Self::MultipleOpReturns => "multiple_op_returns",
            Self::BadAddress => "bad_evm_address",
            Self::NoFederationOutput => "no_federation_output",
            Self::FederationExpired => "federation_expired",
            Self::BelowMinimum => "below_minimum",
        }
    }

    /// The rejection a recorded code stands for.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }
}

/// A transaction's deposit, as far as the transaction alone decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deposit {
    /// Outputs paying one of the federation scripts given, ascending by index.
    pub outputs: Vec<DepositOutput>,
    /// The EVM address, or why there is none.
    pub evm_address: Result<Address, Rejection>,
}

impl Deposit {
    /// The sum of the federation outputs, in satoshis.
    pub fn amount_sats(&self) -> u64 {
        self.outputs.iter().fold(0u64, |sum, o| sum.saturating_add(o.amount_sats))
    }
}

/// The EVM address an OP_RETURN script names: one push of 20 bytes, or of 40 hex characters (an
/// optional `0x` before them).
pub fn evm_address_of(script: &Script) -> Option<Address> {
    let mut instructions = script.instructions();
    match instructions.next() {
        Some(Ok(Instruction::Op(op))) if op == bitcoin::opcodes::all::OP_RETURN => {}
        _ => return None,
    }
    let data = match instructions.next() {
        Some(Ok(Instruction::PushBytes(push))) => push.as_bytes(),
        _ => return None,
    };
    if instructions.next().is_some() {
        return None;
    }
    match data.len() {
        20 => Some(Address::from_slice(data)),
        40 | 42 => {
            let text = std::str::from_utf8(data).ok()?;
            let hex = text.strip_prefix("0x").unwrap_or(text);
            if hex.len() != 40 {
                return None;
            }
            hex.parse::<Address>().ok()
        }
        _ => None,
    }
}

/// Whether `tx` spends an output of a `federation` script: the federation's own peg-out or sweep, whose
/// change back to the federation is not a deposit. A P2WSH input carries its witness script last; only
/// the federation's signatures can make Bitcoin accept a spend with one of its scripts.
fn spends_federation(tx: &Transaction, federation: &HashSet<ScriptBuf>) -> bool {
    tx.input.iter().any(|input| {
        input.witness.last().is_some_and(|script| {
            federation.contains(&ScriptBuf::new_p2wsh(&bitcoin::Script::from_bytes(script).wscript_hash()))
        })
    })
}

/// The deposit `tx` makes to `federation` scripts, or `None` when it is not one and does not try to
/// be: no output pays a federation script and no OP_RETURN names an EVM address. A coinbase is never a
/// deposit, nor a transaction spending the federation's own outputs (its change is not a deposit).
pub fn scan_transaction(tx: &Transaction, federation: &HashSet<ScriptBuf>) -> Option<Deposit> {
    if tx.is_coinbase() || spends_federation(tx, federation) {
        return None;
    }
    let mut outputs = Vec::new();
    let mut op_returns = Vec::new();
    for (vout, output) in tx.output.iter().enumerate() {
        if output.script_pubkey.is_op_return() {
            op_returns.push(&output.script_pubkey);
        } else if federation.contains(&output.script_pubkey) {
            outputs.push(DepositOutput {
                vout: u32::try_from(vout).ok()?,
                amount_sats: output.value.to_sat(),
                script_pubkey: Bytes::copy_from_slice(output.script_pubkey.as_bytes()),
            });
        }
    }
    let evm_address = match op_returns.as_slice() {
        [] => Err(Rejection::NoOpReturn),
        [one] => evm_address_of(one).ok_or(Rejection::BadAddress),
        _ => Err(Rejection::MultipleOpReturns),
    };
    if outputs.is_empty() {
        // Only a transaction that names an EVM address the way a deposit does is worth recording.
        return evm_address
            .ok()
            .map(|_| Deposit { outputs, evm_address: Err(Rejection::NoFederationOutput) });
    }
    Some(Deposit { outputs, evm_address })
}

/// The deposits of a block at `height`, as records to store (`seen_secs` is the time of the call).
pub fn scan_block(
    block: &Block,
    height: u64,
    federation: &HashSet<ScriptBuf>,
    seen_secs: u64,
) -> Vec<DepositRecord> {
    let bitcoin_block = B256::from(block.block_hash().to_byte_array());
    block
        .txdata
        .iter()
        .filter_map(|tx| {
            let deposit = scan_transaction(tx, federation)?;
            let (evm_address, rejection) = match deposit.evm_address {
                Ok(address) => (address, String::new()),
                Err(reason) => (Address::ZERO, reason.code().to_owned()),
            };
            Some(DepositRecord {
                txid: B256::from(tx.compute_txid().to_byte_array()),
                bitcoin_block,
                bitcoin_height: height,
                outputs: deposit.outputs,
                evm_address,
                rejection,
                reorged_out: 0,
                seen_secs,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]
    use super::*;
    use bitcoin::{
        Amount, OutPoint, TxIn, TxOut, absolute::LockTime, script::PushBytesBuf, transaction::Version,
    };

    fn federation() -> ScriptBuf {
        ScriptBuf::new_p2wsh(&bitcoin::WScriptHash::from_byte_array([7; 32]))
    }

    fn op_return(data: &[u8]) -> TxOut {
        let push = PushBytesBuf::try_from(data.to_vec()).unwrap();
        TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::new_op_return(push) }
    }

    fn pay(script: ScriptBuf, sats: u64) -> TxOut {
        TxOut { value: Amount::from_sat(sats), script_pubkey: script }
    }

    fn tx(output: Vec<TxOut>) -> Transaction {
        Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::new(bitcoin::Txid::from_byte_array([1; 32]), 0),
                ..Default::default()
            }],
            output,
        }
    }

    fn set() -> HashSet<ScriptBuf> {
        HashSet::from([federation()])
    }

    const EVM: Address = Address::repeat_byte(0xab);

    #[test]
    fn raw_and_hex_addresses_are_accepted() {
        let raw =
            scan_transaction(&tx(vec![pay(federation(), 5_000), op_return(EVM.as_slice())]), &set()).unwrap();
        assert_eq!(raw.evm_address, Ok(EVM));
        assert_eq!(raw.amount_sats(), 5_000);
        let hex = alloy_primitives::hex::encode(EVM);
        let text =
            scan_transaction(&tx(vec![op_return(hex.as_bytes()), pay(federation(), 7)]), &set()).unwrap();
        assert_eq!(text.evm_address, Ok(EVM));
        assert_eq!(text.outputs[0].vout, 1);
        let prefixed = format!("0x{hex}");
        let text = scan_transaction(&tx(vec![pay(federation(), 7), op_return(prefixed.as_bytes())]), &set())
            .unwrap();
        assert_eq!(text.evm_address, Ok(EVM));
    }

    #[test]
    fn the_federations_own_spend_is_not_a_deposit() {
        // A 2-of-2 witness script standing for the federation's, and a spend of its P2WSH output: the
        // witness ends with the script, as every P2WSH spend's does.
        let witness_script = ScriptBuf::from_bytes(vec![0x52, 0x52, 0xae]);
        let federation = ScriptBuf::new_p2wsh(&witness_script.wscript_hash());
        let scripts = HashSet::from([federation.clone()]);
        let mut spend = tx(vec![pay(ScriptBuf::new(), 40_000), pay(federation, 60_000)]);
        spend.input[0].witness =
            bitcoin::Witness::from_slice(&[vec![], vec![1; 71], witness_script.to_bytes()]);
        assert_eq!(scan_transaction(&spend, &scripts), None, "change back to the federation");
        // The same outputs from anyone else's input are a deposit without an address, recorded as such.
        spend.input[0].witness = bitcoin::Witness::from_slice(&[vec![1; 71], vec![2; 33]]);
        let deposit = scan_transaction(&spend, &scripts).unwrap();
        assert_eq!(deposit.evm_address, Err(Rejection::NoOpReturn));
    }

    #[test]
    fn several_federation_outputs_are_one_deposit_of_their_sum() {
        let other = ScriptBuf::new_p2wsh(&bitcoin::WScriptHash::from_byte_array([9; 32]));
        let deposit = scan_transaction(
            &tx(vec![pay(federation(), 3), pay(other, 100), op_return(EVM.as_slice()), pay(federation(), 4)]),
            &set(),
        )
        .unwrap();
        assert_eq!(deposit.amount_sats(), 7);
        assert_eq!(deposit.outputs.iter().map(|o| o.vout).collect::<Vec<_>>(), vec![0, 3]);
    }

    #[test]
    fn malformed_deposits_are_rejected_with_their_reason() {
        let cases = [
            (vec![pay(federation(), 5)], Rejection::NoOpReturn),
            (
                vec![pay(federation(), 5), op_return(EVM.as_slice()), op_return(EVM.as_slice())],
                Rejection::MultipleOpReturns,
            ),
            (vec![pay(federation(), 5), op_return(&[0xab; 19])], Rejection::BadAddress),
            (vec![pay(federation(), 5), op_return(&[0xab; 21])], Rejection::BadAddress),
            (vec![pay(federation(), 5), op_return(&[b'z'; 40])], Rejection::BadAddress),
            (vec![pay(federation(), 5), op_return(b"")], Rejection::BadAddress),
        ];
        for (outputs, reason) in cases {
            assert_eq!(scan_transaction(&tx(outputs), &set()).unwrap().evm_address, Err(reason));
        }
        let elsewhere = ScriptBuf::new_p2wsh(&bitcoin::WScriptHash::from_byte_array([9; 32]));
        let missed =
            scan_transaction(&tx(vec![pay(elsewhere.clone(), 5), op_return(EVM.as_slice())]), &set())
                .unwrap();
        assert_eq!(missed.evm_address, Err(Rejection::NoFederationOutput));
        assert!(scan_transaction(&tx(vec![pay(elsewhere, 5)]), &set()).is_none(), "unrelated");
        for reason in Rejection::ALL {
            assert_eq!(Rejection::from_code(reason.code()), Some(reason));
        }
    }
}
