//! Core's JSON shapes: `TxToUniv`, `ScriptToUniv`, `blockheaderToJSON`, `blockToJSON`, with Core's field
//! names (`scriptPubKey`, `versionHex`, `nTx`, ...), amounts as BTC numbers and hashes as hex.

use bitcoin::{
    Address, Amount, Block, Script, Transaction,
    consensus::encode::serialize_hex,
    hex::DisplayHex,
    opcodes::all::{OP_PUSHNUM_1, OP_PUSHNUM_16, OP_PUSHNUM_NEG1},
    script::Instruction,
};
use serde_json::{Map, Value, json};

use crate::{
    chain::{BlockEntry, Chain},
    params::NETWORK,
};

/// An amount as Core prints it: BTC as a JSON number.
pub(super) fn amount(value: Amount) -> Value {
    json!(value.to_btc())
}

/// A signed satoshi value as BTC.
pub(super) fn signed_sats(sats: i64) -> Value {
    json!(sats as f64 / 100_000_000.0)
}

/// Core's name for the kind of `script` (`GetTxnOutputType`).
pub(super) fn script_type(script: &Script) -> &'static str {
    if script.is_p2pkh() {
        "pubkeyhash"
    } else if script.is_p2sh() {
        "scripthash"
    } else if script.is_p2wpkh() {
        "witness_v0_keyhash"
    } else if script.is_p2wsh() {
        "witness_v0_scripthash"
    } else if script.is_p2tr() {
        "witness_v1_taproot"
    } else if script.is_op_return() {
        "nulldata"
    } else if script.is_p2pk() {
        "pubkey"
    } else if script.is_multisig() {
        "multisig"
    } else if script.is_witness_program() {
        "witness_unknown"
    } else {
        "nonstandard"
    }
}

/// A script in Core's assembly notation (`ScriptToAsmStr`): small pushes as numbers, data as hex.
pub(super) fn asm(script: &Script) -> String {
    let mut parts = Vec::new();
    for instruction in script.instructions() {
        match instruction {
            Ok(Instruction::PushBytes(bytes)) if bytes.len() <= 4 => {
                parts.push(script_num(bytes.as_bytes()).to_string())
            }
            Ok(Instruction::PushBytes(bytes)) => parts.push(bytes.as_bytes().to_lower_hex_string()),
            Ok(Instruction::Op(op)) if op == OP_PUSHNUM_NEG1 => parts.push("-1".into()),
            Ok(Instruction::Op(op))
                if (OP_PUSHNUM_1.to_u8()..=OP_PUSHNUM_16.to_u8()).contains(&op.to_u8()) =>
            {
                parts.push((op.to_u8() - OP_PUSHNUM_1.to_u8() + 1).to_string());
            }
            Ok(Instruction::Op(op)) => parts.push(op.to_string()),
            Err(_) => {
                parts.push("[error]".into());
                break;
            }
        }
    }
    parts.join(" ")
}

/// A little-endian sign-magnitude script number of up to four bytes.
fn script_num(bytes: &[u8]) -> i64 {
    let value = bytes.iter().rev().fold(0i64, |acc, byte| (acc << 8) | i64::from(*byte));
    match bytes.last() {
        Some(last) if last & 0x80 != 0 => -(value & !(0x80i64 << (8 * (bytes.len() - 1)))),
        _ => value,
    }
}

/// `ScriptToUniv` for an output script: `{asm, desc, hex, address?, type}`.
pub(super) fn script_pubkey(script: &Script) -> Value {
    let mut object = Map::new();
    object.insert("asm".into(), json!(asm(script)));
    object.insert("hex".into(), json!(script.to_hex_string()));
    if let Ok(address) = Address::from_script(script, NETWORK) {
        object.insert("desc".into(), json!(format!("addr({address})")));
        object.insert("address".into(), json!(address.to_string()));
    } else {
        object.insert("desc".into(), json!(format!("raw({})", script.to_hex_string())));
    }
    object.insert("type".into(), json!(script_type(script)));
    Value::Object(object)
}

/// `TxToUniv`: the decoded transaction, with `fee` when known and `hex` when asked.
pub(super) fn transaction(tx: &Transaction, fee: Option<Amount>, with_hex: bool) -> Map<String, Value> {
    let vin: Vec<Value> = tx
        .input
        .iter()
        .map(|input| {
            let mut object = Map::new();
            if tx.is_coinbase() {
                object.insert("coinbase".into(), json!(input.script_sig.to_hex_string()));
            } else {
                object.insert("txid".into(), json!(input.previous_output.txid.to_string()));
                object.insert("vout".into(), json!(input.previous_output.vout));
                object.insert(
                    "scriptSig".into(),
                    json!({"asm": asm(&input.script_sig), "hex": input.script_sig.to_hex_string()}),
                );
            }
            if !input.witness.is_empty() {
                let items: Vec<String> =
                    input.witness.iter().map(|item| item.to_lower_hex_string()).collect();
                object.insert("txinwitness".into(), json!(items));
            }
            object.insert("sequence".into(), json!(input.sequence.to_consensus_u32()));
            Value::Object(object)
        })
        .collect();
    let vout: Vec<Value> = tx
        .output
        .iter()
        .enumerate()
        .map(|(n, output)| {
            json!({"value": amount(output.value), "n": n, "scriptPubKey": script_pubkey(&output.script_pubkey)})
        })
        .collect();
    let mut object = Map::new();
    object.insert("txid".into(), json!(tx.compute_txid().to_string()));
    object.insert("hash".into(), json!(tx.compute_wtxid().to_string()));
    object.insert("version".into(), json!(tx.version.0));
    object.insert("size".into(), json!(tx.total_size()));
    object.insert("vsize".into(), json!(tx.vsize()));
    object.insert("weight".into(), json!(tx.weight().to_wu()));
    object.insert("locktime".into(), json!(tx.lock_time.to_consensus_u32()));
    object.insert("vin".into(), Value::Array(vin));
    object.insert("vout".into(), Value::Array(vout));
    if let Some(fee) = fee {
        object.insert("fee".into(), amount(fee));
    }
    if with_hex {
        object.insert("hex".into(), json!(serialize_hex(tx)));
    }
    object
}

/// `blockheaderToJSON`.
pub(super) fn header(chain: &Chain, entry: &BlockEntry) -> Map<String, Value> {
    let header = &entry.block.header;
    let hash = entry.block.block_hash();
    let mut object = Map::new();
    object.insert("hash".into(), json!(hash.to_string()));
    object.insert("confirmations".into(), json!(chain.confirmations(&hash)));
    object.insert("height".into(), json!(entry.height));
    object.insert("version".into(), json!(header.version.to_consensus()));
    object.insert("versionHex".into(), json!(format!("{:08x}", header.version.to_consensus())));
    object.insert("merkleroot".into(), json!(header.merkle_root.to_string()));
    object.insert("time".into(), json!(header.time));
    object.insert("mediantime".into(), json!(chain.median_time_past(&hash)));
    object.insert("nonce".into(), json!(header.nonce));
    object.insert("bits".into(), json!(format!("{:08x}", header.bits.to_consensus())));
    object.insert("difficulty".into(), json!(header.difficulty_float()));
    object.insert("chainwork".into(), json!(entry.chainwork.to_be_bytes().to_lower_hex_string()));
    object.insert("nTx".into(), json!(entry.block.txdata.len()));
    if entry.height > 0 {
        object.insert("previousblockhash".into(), json!(header.prev_blockhash.to_string()));
    }
    if chain.is_active(&hash)
        && let Some(next) = chain.hash_at(entry.height + 1)
    {
        object.insert("nextblockhash".into(), json!(next.to_string()));
    }
    object
}

/// `blockToJSON` at verbosity 1 (txids) or 2 (decoded transactions with fees).
pub(super) fn block(chain: &Chain, entry: &BlockEntry, verbosity: u64) -> Value {
    let block: &Block = &entry.block;
    let mut object = header(chain, entry);
    object.insert(
        "strippedsize".into(),
        json!(block.txdata.iter().map(Transaction::base_size).sum::<usize>() + 80 + 1),
    );
    object.insert("size".into(), json!(block.total_size()));
    object.insert("weight".into(), json!(block.weight().to_wu()));
    let txs: Vec<Value> = if verbosity >= 2 {
        let mut undo = entry.undo().unwrap_or_default().iter();
        block
            .txdata
            .iter()
            .map(|tx| {
                let fee = if tx.is_coinbase() {
                    None
                } else {
                    let spent: Option<Amount> =
                        tx.input.iter().map(|_| undo.next().map(|coin| coin.output.value)).sum();
                    let out: Amount = tx.output.iter().map(|o| o.value).sum();
                    spent.and_then(|value_in| value_in.checked_sub(out))
                };
                Value::Object(transaction(tx, fee, true))
            })
            .collect()
    } else {
        block.txdata.iter().map(|tx| json!(tx.compute_txid().to_string())).collect()
    };
    object.insert("tx".into(), Value::Array(txs));
    Value::Object(object)
}
