//! Peg-in deposits: a Bitcoin transaction as the peg-in watcher reads it from a Bitcoin block, and a
//! claim as a consensus header carries it.

use std::fmt::Debug;

use alloy_primitives::Address;
use alloy_rlp::{Decodable, Encodable};
use alys_bridge::pegin::{Deposit, Rejection, evm_address_of, scan_block, scan_transaction};
use alys_consensus::pegin_withdrawals;
use alys_primitives::PegInClaim;
use bitcoin::{
    Amount, Block, BlockHash, CompactTarget, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxMerkleNode,
    TxOut, Witness,
    absolute::LockTime,
    block::{Header, Version as BlockVersion},
    consensus::{deserialize, serialize},
    hashes::Hash as _,
    transaction::Version,
};

use crate::fixtures::{EASY_BITS, deposit_scripts};

/// The Bitcoin height the target's blocks are scanned at.
const HEIGHT: u64 = 7;

/// A Bitcoin transaction (consensus encoding) as the watcher reads it from a block: decoded, scanned
/// against the fixed federation scripts alone and inside a block, as the watcher records it. The same
/// bytes are also read as a peg-in claim (RLP), as a consensus header carries it.
///
/// Asserts that the transaction re-encodes to the bytes received, and that what `scan_transaction`
/// decides is what the transaction says: the deposit's outputs are exactly the outputs paying a
/// federation script, ascending, with their amounts; an EVM address is found only in a transaction
/// with exactly one OP_RETURN output, and every rejection matches the outputs. The block's record
/// says the same as the deposit and survives its storage encoding.
pub fn pegin(data: &[u8]) {
    pegin_claim(data);
    let Ok(tx) = deserialize::<Transaction>(data) else { return };
    assert_eq!(serialize(&tx), data, "a decoded transaction re-encodes to other bytes");
    for output in &tx.output {
        if evm_address_of(&output.script_pubkey).is_some() {
            assert!(
                output.script_pubkey.is_op_return(),
                "an EVM address read from a script that is no OP_RETURN"
            );
        }
    }
    let deposit = scan_transaction(&tx, deposit_scripts());
    match &deposit {
        Some(deposit) => check_deposit(&tx, deposit),
        None => check_not_a_deposit(&tx),
    }
    check_block(&tx, deposit.as_ref());
}

/// The outputs paying a federation script, as `(vout, sats)`.
fn federation_outputs(tx: &Transaction) -> Vec<(u32, u64)> {
    tx.output
        .iter()
        .enumerate()
        .filter(|(_, o)| !o.script_pubkey.is_op_return() && deposit_scripts().contains(&o.script_pubkey))
        .filter_map(|(vout, o)| Some((u32::try_from(vout).ok()?, o.value.to_sat())))
        .collect()
}

fn op_returns(tx: &Transaction) -> Vec<&ScriptBuf> {
    tx.output.iter().map(|o| &o.script_pubkey).filter(|s| s.is_op_return()).collect()
}

fn check_deposit(tx: &Transaction, deposit: &Deposit) {
    assert!(!tx.is_coinbase(), "a coinbase scanned as a deposit");
    assert!(
        deposit.outputs.windows(2).all(|w| matches!(w, [a, b] if a.vout < b.vout)),
        "deposit outputs not ascending"
    );
    for output in &deposit.outputs {
        let Some(paid) = tx.output.get(output.vout as usize) else {
            panic!("deposit output {} is not in the transaction", output.vout)
        };
        assert!(
            deposit_scripts().contains(&paid.script_pubkey),
            "a deposit output pays no federation script"
        );
        assert_eq!(output.script_pubkey.as_ref(), paid.script_pubkey.as_bytes(), "deposit output script");
        assert_eq!(output.amount_sats, paid.value.to_sat(), "deposit output amount");
    }
    let listed: Vec<(u32, u64)> = deposit.outputs.iter().map(|o| (o.vout, o.amount_sats)).collect();
    assert_eq!(listed, federation_outputs(tx), "the deposit misses or invents federation outputs");
    let sum = deposit.outputs.iter().fold(0u64, |sum, o| sum.saturating_add(o.amount_sats));
    assert_eq!(deposit.amount_sats(), sum);

    let op_returns = op_returns(tx);
    match deposit.evm_address {
        Ok(address) => {
            let [one] = op_returns.as_slice() else {
                panic!("an EVM address from a transaction with {} OP_RETURN outputs", op_returns.len())
            };
            assert_eq!(evm_address_of(one), Some(address), "the address is not the OP_RETURN's");
            assert!(!deposit.outputs.is_empty(), "an accepted deposit pays no federation script");
        }
        Err(Rejection::NoOpReturn) => assert!(op_returns.is_empty(), "no_op_return with an OP_RETURN"),
        Err(Rejection::MultipleOpReturns) => assert!(op_returns.len() > 1, "multiple_op_returns with one"),
        Err(Rejection::BadAddress) => match op_returns.as_slice() {
            [one] => assert_eq!(evm_address_of(one), None, "bad_evm_address for a good address"),
            _ => panic!("bad_evm_address with {} OP_RETURN outputs", op_returns.len()),
        },
        Err(Rejection::NoFederationOutput) => {
            assert!(deposit.outputs.is_empty(), "no_federation_output with federation outputs");
            let [one] = op_returns.as_slice() else { panic!("no_federation_output without one OP_RETURN") };
            assert!(evm_address_of(one).is_some(), "no_federation_output recorded for a non-deposit");
        }
        Err(other) => panic!("scan_transaction decided {other:?}, which takes more than the transaction"),
    }
    if deposit.outputs.is_empty() {
        assert_eq!(deposit.evm_address, Err(Rejection::NoFederationOutput), "an empty deposit");
    }
}

fn check_not_a_deposit(tx: &Transaction) {
    if tx.is_coinbase() {
        return;
    }
    assert!(
        federation_outputs(tx).is_empty(),
        "a transaction paying the federation is not scanned as a deposit"
    );
    if let [one] = op_returns(tx).as_slice() {
        assert_eq!(evm_address_of(one), None, "a transaction naming an EVM address is not recorded");
    }
}

/// The watcher's path: the transaction in a block after a coinbase, scanned into records to store.
fn check_block(tx: &Transaction, deposit: Option<&Deposit>) {
    let coinbase = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: ScriptBuf::from_bytes(vec![0x01, 0x07]),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![TxOut { value: Amount::from_sat(50), script_pubkey: ScriptBuf::new() }],
    };
    let block = Block {
        header: Header {
            version: BlockVersion::TWO,
            prev_blockhash: BlockHash::all_zeros(),
            merkle_root: TxMerkleNode::all_zeros(),
            time: 0,
            bits: CompactTarget::from_consensus(EASY_BITS),
            nonce: 0,
        },
        txdata: vec![coinbase, tx.clone()],
    };
    let records = scan_block(&block, HEIGHT, deposit_scripts(), 1);
    let Some(deposit) = deposit else {
        assert!(records.is_empty(), "a block records a transaction that is no deposit");
        return;
    };
    let [record] = records.as_slice() else { panic!("a block with one deposit records {}", records.len()) };
    assert_eq!(record.txid.0, tx.compute_txid().to_byte_array());
    assert_eq!(record.bitcoin_block.0, block.block_hash().to_byte_array());
    assert_eq!(record.bitcoin_height, HEIGHT);
    assert_eq!(record.outputs, deposit.outputs);
    assert_eq!(record.amount_sats(), deposit.amount_sats());
    match deposit.evm_address {
        Ok(address) => {
            assert!(!record.is_rejected(), "an accepted deposit recorded as rejected");
            assert_eq!(record.evm_address, address);
        }
        Err(reason) => {
            assert_eq!(Rejection::from_code(&record.rejection), Some(reason), "recorded rejection");
            assert_eq!(record.evm_address, Address::ZERO);
        }
    }
    round_trip(record);
}

/// `decode(encode(x)) == x` for what is stored or sent.
fn round_trip<T: Encodable + Decodable + PartialEq + Debug>(value: &T) {
    let encoded = alloy_rlp::encode(value);
    assert_eq!(alloy_rlp::decode_exact::<T>(&encoded).as_ref(), Ok(value), "decode(encode(x)) != x");
}

/// The bytes as a peg-in claim (RLP), as a consensus header carries it: a claim re-encodes to the bytes
/// it was read from and mints one withdrawal of its amount.
fn pegin_claim(data: &[u8]) {
    let mut rest = data;
    let Ok(claim) = PegInClaim::decode(&mut rest) else { return };
    let consumed = data.len() - rest.len();
    assert_eq!(
        alloy_rlp::encode(&claim),
        data.get(..consumed).unwrap_or_default(),
        "non-canonical PegInClaim"
    );
    round_trip(&claim);
    assert_eq!(claim.outpoints().count(), claim.outputs.len());
    let withdrawals = pegin_withdrawals(std::slice::from_ref(&claim));
    let [withdrawal] = withdrawals.as_slice() else {
        panic!("one claim mints {} withdrawals", withdrawals.len())
    };
    assert_eq!(withdrawal.address, claim.evm_address);
    assert_eq!(withdrawal.amount, claim.amount_sats.saturating_mul(10), "gwei = sats x 10");
}
