//! The wallet methods a peg-in script uses: addresses, balance, coins, sending, building, funding and
//! signing raw transactions, and the wallet's view of a transaction.

use std::collections::HashSet;

use bitcoin::{
    Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid,
    absolute::LockTime,
    consensus::encode::serialize_hex,
    hex::{DisplayHex, FromHex},
    script::PushBytesBuf,
    transaction,
};
use serde_json::{Map, Value, json};

use super::{Args, RpcError, decode_tx, json, parse_address, parse_amount};
use crate::{
    error::codes,
    node::Node,
    params::{COINBASE_MATURITY, MAX_FEE_PER_KVB},
    wallet::{DEFAULT_FEE_PER_KVB, FundError},
};

impl From<FundError> for RpcError {
    fn from(err: FundError) -> Self {
        let code = match err {
            FundError::InsufficientFunds => codes::WALLET_INSUFFICIENT_FUNDS,
            FundError::UnknownInput => codes::WALLET_ERROR,
        };
        Self::new(code, err.to_string())
    }
}

/// Core 25's `-walletrbf` default: wallet transactions signal BIP125 unless told otherwise.
const WALLET_RBF: bool = true;

fn store_error(err: crate::error::StoreError) -> RpcError {
    RpcError::new(codes::WALLET_ERROR, err.to_string())
}

/// A fee rate given in sat/vB (`fee_rate`), as sat/kvB.
fn sat_per_vb(value: &Value) -> Result<u64, RpcError> {
    let rate = value.as_f64().or_else(|| value.as_str()?.parse().ok()).filter(|r| *r >= 0.0);
    rate.map(|r| (r * 1000.0).round() as u64)
        .ok_or_else(|| RpcError::new(codes::TYPE_ERROR, "Invalid amount"))
}

pub(super) fn getnewaddress(node: &mut Node, args: &Args) -> Result<Value, RpcError> {
    if let Some(kind) = args.get(1).and_then(Value::as_str).filter(|kind| *kind != "bech32") {
        return Err(RpcError::new(codes::INVALID_ADDRESS_OR_KEY, format!("Unknown address type '{kind}'")));
    }
    let address = node.wallet_mut().new_address(false).map_err(store_error)?;
    Ok(json!(address.to_string()))
}

pub(super) fn getbalance(node: &mut Node, args: &Args) -> Result<Value, RpcError> {
    let min_conf = u32::try_from(args.u64_or(1, "minconf", 0)?).unwrap_or(u32::MAX);
    let total: Amount = node.wallet_coins(min_conf).iter().map(|coin| coin.output.value).sum();
    Ok(json::amount(total))
}

pub(super) fn listunspent(node: &mut Node, args: &Args) -> Result<Value, RpcError> {
    let min_conf = u32::try_from(args.u64_or(0, "minconf", 1)?).unwrap_or(u32::MAX);
    let max_conf = u32::try_from(args.u64_or(1, "maxconf", 9_999_999)?).unwrap_or(u32::MAX);
    let mut filter = HashSet::new();
    for address in args.get(2).and_then(Value::as_array).into_iter().flatten() {
        let text = address.as_str().ok_or_else(|| super::type_error("addresses", "string"))?;
        filter.insert(parse_address(text)?.script_pubkey());
    }
    let coins = node.wallet_coins(min_conf);
    let list: Vec<Value> = coins
        .iter()
        .filter(|coin| coin.confirmations <= max_conf)
        .filter(|coin| filter.is_empty() || filter.contains(&coin.output.script_pubkey))
        .map(|coin| {
            let address = node.wallet().address_of(&coin.output.script_pubkey).map(ToString::to_string);
            json!({
                "txid": coin.outpoint.txid.to_string(), "vout": coin.outpoint.vout, "address": address, "label": "",
                "scriptPubKey": coin.output.script_pubkey.to_hex_string(), "amount": json::amount(coin.output.value),
                "confirmations": coin.confirmations, "spendable": true, "solvable": true,
                "desc": address.map(|a| format!("addr({a})")), "safe": true,
            })
        })
        .collect();
    Ok(Value::Array(list))
}

/// Funds, signs and submits `tx` (the wallet's send path).
fn fund_sign_send(
    node: &mut Node,
    tx: Transaction,
    fee_per_kvb: u64,
    replaceable: bool,
) -> Result<Txid, RpcError> {
    let coins = node.wallet_coins(0);
    let funded = node.wallet_mut().fund(tx, &[], &coins, fee_per_kvb, replaceable)?;
    let mut tx = funded.tx;
    let spent: Vec<Option<TxOut>> =
        tx.input.iter().map(|input| node.prevout(&input.previous_output)).collect();
    node.wallet().sign(&mut tx, &spent);
    Ok(node.send_transaction(tx, MAX_FEE_PER_KVB)?)
}

pub(super) fn sendtoaddress(node: &mut Node, args: &Args) -> Result<Value, RpcError> {
    let address = parse_address(args.str(0, "address")?)?;
    let amount = parse_amount(args.required(1, "amount")?)?;
    if amount == Amount::ZERO {
        return Err(RpcError::new(codes::TYPE_ERROR, "Invalid amount for send"));
    }
    let fee = args.get(9).map(sat_per_vb).transpose()?.unwrap_or(DEFAULT_FEE_PER_KVB);
    let replaceable = args.bool_or(5, "replaceable", WALLET_RBF)?;
    let tx = Transaction {
        version: transaction::Version::TWO,
        lock_time: LockTime::ZERO,
        input: Vec::new(),
        output: vec![TxOut { value: amount, script_pubkey: address.script_pubkey() }],
    };
    Ok(json!(fund_sign_send(node, tx, fee, replaceable)?.to_string()))
}

pub(super) fn createrawtransaction(_: &mut Node, args: &Args) -> Result<Value, RpcError> {
    let replaceable = args.bool_or(3, "replaceable", false)?;
    let lock_time = u32::try_from(args.u64_or(2, "locktime", 0)?)
        .map_err(|_| RpcError::invalid_parameter("Invalid parameter, locktime out of range"))?;
    let default_sequence = if replaceable {
        Sequence::ENABLE_RBF_NO_LOCKTIME
    } else if lock_time != 0 {
        Sequence::ENABLE_LOCKTIME_NO_RBF
    } else {
        Sequence::MAX
    };
    let mut input = Vec::new();
    for item in args.required(0, "inputs")?.as_array().ok_or_else(|| super::type_error("inputs", "array"))? {
        let txid: Txid = item
            .get("txid")
            .and_then(Value::as_str)
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| RpcError::invalid_parameter("Invalid parameter, missing txid key"))?;
        let vout = item
            .get("vout")
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| RpcError::invalid_parameter("Invalid parameter, missing vout key"))?;
        let sequence = match item.get("sequence").and_then(Value::as_u64) {
            Some(seq) => Sequence(u32::try_from(seq).map_err(|_| {
                RpcError::invalid_parameter("Invalid parameter, sequence number is out of range")
            })?),
            None => default_sequence,
        };
        input.push(TxIn { previous_output: OutPoint { txid, vout }, sequence, ..Default::default() });
    }
    let outputs_value = args.required(1, "outputs")?;
    let pairs: Vec<(String, Value)> = match outputs_value {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_object)
            .flat_map(|map| map.iter().map(|(k, v)| (k.clone(), v.clone())))
            .collect(),
        _ => return Err(super::type_error("outputs", "object or array")),
    };
    let mut seen = HashSet::new();
    let mut output = Vec::new();
    for (key, value) in pairs {
        if !seen.insert(key.clone()) {
            let what = if key == "data" {
                "Invalid parameter, duplicate key: data".to_owned()
            } else {
                format!("Invalid parameter, duplicated address: {key}")
            };
            return Err(RpcError::invalid_parameter(what));
        }
        if key == "data" {
            let bytes = value
                .as_str()
                .and_then(|hex| Vec::<u8>::from_hex(hex).ok())
                .ok_or_else(|| RpcError::invalid_parameter("Data must be hexadecimal string"))?;
            let push =
                PushBytesBuf::try_from(bytes).map_err(|_| RpcError::invalid_parameter("Data too large"))?;
            output.push(TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::new_op_return(push) });
        } else {
            let address = parse_address(&key).map_err(|_| {
                RpcError::new(codes::INVALID_ADDRESS_OR_KEY, format!("Invalid Bitcoin address: {key}"))
            })?;
            output.push(TxOut { value: parse_amount(&value)?, script_pubkey: address.script_pubkey() });
        }
    }
    let tx = Transaction {
        version: transaction::Version::TWO,
        lock_time: LockTime::from_consensus(lock_time),
        input,
        output,
    };
    Ok(json!(serialize_hex(&tx)))
}

pub(super) fn fundrawtransaction(node: &mut Node, args: &Args) -> Result<Value, RpcError> {
    let witness = args.get(2).and_then(Value::as_bool);
    let tx = decode_tx(args.str(0, "hexstring")?, witness)
        .ok_or_else(|| RpcError::new(codes::DESERIALIZATION_ERROR, "TX decode failed"))?;
    if tx.output.is_empty() {
        return Err(RpcError::invalid_parameter("TX must have at least one output"));
    }
    let options = args.get(1).and_then(Value::as_object);
    let fee = match options {
        Some(options) if options.contains_key("fee_rate") => {
            options.get("fee_rate").map(sat_per_vb).transpose()?
        }
        Some(options) => options.get("feeRate").map(parse_amount).transpose()?.map(|a| a.to_sat()),
        None => None,
    }
    .unwrap_or(DEFAULT_FEE_PER_KVB);
    let replaceable = match options.and_then(|options| options.get("replaceable")) {
        None | Some(Value::Null) => WALLET_RBF,
        Some(Value::Bool(flag)) => *flag,
        Some(_) => return Err(super::type_error("replaceable", "bool")),
    };
    let preset: Vec<Option<TxOut>> =
        tx.input.iter().map(|input| node.prevout(&input.previous_output)).collect();
    let coins = node.wallet_coins(0);
    let funded = node.wallet_mut().fund(tx, &preset, &coins, fee, replaceable)?;
    Ok(
        json!({"hex": serialize_hex(&funded.tx), "fee": json::amount(funded.fee), "changepos": funded.change_position}),
    )
}

pub(super) fn signrawtransactionwithwallet(node: &mut Node, args: &Args) -> Result<Value, RpcError> {
    let mut tx = decode_tx(args.str(0, "hexstring")?, None).ok_or_else(|| {
        RpcError::new(
            codes::DESERIALIZATION_ERROR,
            "TX decode failed. Make sure the tx has at least one input.",
        )
    })?;
    if args.get(2).and_then(Value::as_str).is_some_and(|kind| kind != "ALL" && kind != "DEFAULT") {
        return Err(RpcError::invalid_parameter("only sighashtype ALL is supported"));
    }
    let mut spent: Vec<Option<TxOut>> =
        tx.input.iter().map(|input| node.prevout(&input.previous_output)).collect();
    // prevtxs: outputs the caller vouches for (needed for inputs this node does not know).
    for prev in args.get(1).and_then(Value::as_array).into_iter().flatten() {
        let txid = prev.get("txid").and_then(Value::as_str).and_then(|t| t.parse::<Txid>().ok());
        let vout = prev.get("vout").and_then(Value::as_u64);
        let script =
            prev.get("scriptPubKey").and_then(Value::as_str).and_then(|h| ScriptBuf::from_hex(h).ok());
        let (Some(txid), Some(vout), Some(script)) = (txid, vout, script) else {
            return Err(RpcError::new(
                codes::DESERIALIZATION_ERROR,
                "Missing txid, vout or scriptPubKey in prevtxs",
            ));
        };
        let value = prev.get("amount").map(parse_amount).transpose()?.unwrap_or_default();
        for (input, slot) in tx.input.iter().zip(spent.iter_mut()) {
            if input.previous_output == (OutPoint { txid, vout: vout as u32 }) {
                *slot = Some(TxOut { value, script_pubkey: script.clone() });
            }
        }
    }
    node.wallet().sign(&mut tx, &spent);
    let bytes = bitcoin::consensus::encode::serialize(&tx);
    let mut errors = Vec::new();
    for (index, (input, output)) in tx.input.iter().zip(&spent).enumerate() {
        let error = match output {
            None => Some("Input not found or already spent".to_owned()),
            Some(output) => bitcoin::consensus::validation::verify_script(
                &output.script_pubkey,
                index,
                output.value,
                &bytes,
            )
            .err()
            .map(|_| "Unable to sign input, invalid stack size (possibly missing key)".to_owned()),
        };
        if let Some(error) = error {
            let witness: Vec<String> = input.witness.iter().map(|item| item.to_lower_hex_string()).collect();
            errors.push(json!({
                "txid": input.previous_output.txid.to_string(), "vout": input.previous_output.vout,
                "witness": witness, "scriptSig": input.script_sig.to_hex_string(),
                "sequence": input.sequence.to_consensus_u32(), "error": error,
            }));
        }
    }
    let mut result = Map::new();
    result.insert("hex".into(), json!(serialize_hex(&tx)));
    result.insert("complete".into(), json!(errors.is_empty()));
    if !errors.is_empty() {
        result.insert("errors".into(), Value::Array(errors));
    }
    Ok(Value::Object(result))
}

pub(super) fn getreceivedbyaddress(node: &mut Node, args: &Args) -> Result<Value, RpcError> {
    let script = parse_address(args.str(0, "address")?)?.script_pubkey();
    if !node.wallet().is_mine(&script) {
        return Err(RpcError::new(codes::WALLET_ERROR, "Address not found in wallet"));
    }
    let min_conf = u32::try_from(args.u64_or(1, "minconf", 1)?).unwrap_or(u32::MAX);
    let chain = node.chain();
    let mut total = Amount::ZERO;
    for height in 1..=chain.height() {
        let confirmations = chain.height() - height + 1;
        if confirmations < min_conf {
            break;
        }
        let Some(entry) = chain.hash_at(height).and_then(|hash| chain.entry(&hash)) else { continue };
        for tx in entry.block.txdata.iter().filter(|tx| !tx.is_coinbase()) {
            total += tx.output.iter().filter(|o| o.script_pubkey == script).map(|o| o.value).sum::<Amount>();
        }
    }
    if min_conf == 0 {
        for entry in node.mempool().ordered() {
            total +=
                entry.tx.output.iter().filter(|o| o.script_pubkey == script).map(|o| o.value).sum::<Amount>();
        }
    }
    Ok(json::amount(total))
}

pub(super) fn gettransaction(node: &mut Node, args: &Args) -> Result<Value, RpcError> {
    let txid: Txid = args.parsed(0, "txid")?;
    let not_wallet = || RpcError::new(codes::INVALID_ADDRESS_OR_KEY, "Invalid or non-wallet transaction id");
    let (tx, block) = node.transaction(&txid).ok_or_else(not_wallet)?;
    let wallet = node.wallet();
    let mut debit: i64 = 0;
    if !tx.is_coinbase() {
        for input in &tx.input {
            if let Some(output) =
                node.prevout(&input.previous_output).filter(|o| wallet.is_mine(&o.script_pubkey))
            {
                debit += output.value.to_sat() as i64;
            }
        }
    }
    let credit: i64 =
        tx.output.iter().filter(|o| wallet.is_mine(&o.script_pubkey)).map(|o| o.value.to_sat() as i64).sum();
    if debit == 0 && credit == 0 {
        return Err(not_wallet());
    }
    let value_out: i64 = tx.output.iter().map(|o| o.value.to_sat() as i64).sum();
    // Core's nFee: negative, the outputs minus what the wallet put in.
    let fee = (debit > 0).then_some(value_out - debit);
    let confirmations = block.map(|hash| node.chain().confirmations(&hash)).unwrap_or(0);
    let category = |coinbase: bool| match (coinbase, confirmations) {
        (false, _) => "receive",
        (true, c) if c > i64::from(COINBASE_MATURITY) => "generate",
        (true, c) if c < 1 => "orphan",
        (true, _) => "immature",
    };
    let mut details = Vec::new();
    for (vout, output) in tx.output.iter().enumerate() {
        let address = bitcoin::Address::from_script(&output.script_pubkey, crate::params::NETWORK)
            .ok()
            .map(|a| a.to_string());
        let mine = wallet.is_mine(&output.script_pubkey);
        if debit > 0 && !mine {
            details.push(json!({"address": address, "category": "send", "amount": json::signed_sats(-(output.value.to_sat() as i64)), "vout": vout, "fee": fee.map(json::signed_sats), "abandoned": false}));
        }
        if mine {
            details.push(json!({"address": address, "category": category(tx.is_coinbase()), "amount": json::amount(output.value), "label": "", "vout": vout}));
        }
    }
    let mut result = Map::new();
    result.insert("amount".into(), json::signed_sats(credit - debit - fee.unwrap_or(0)));
    if let Some(fee) = fee {
        result.insert("fee".into(), json::signed_sats(fee));
    }
    result.insert("confirmations".into(), json!(confirmations));
    if let Some(hash) = block
        && let Some(entry) = node.chain().entry(&hash)
    {
        result.insert("blockhash".into(), json!(hash.to_string()));
        result.insert("blockheight".into(), json!(entry.height));
        let index = entry.block.txdata.iter().position(|t| t.compute_txid() == txid).unwrap_or_default();
        result.insert("blockindex".into(), json!(index));
        result.insert("blocktime".into(), json!(entry.block.header.time));
    }
    let time = block
        .and_then(|hash| node.chain().entry(&hash))
        .map(|e| u64::from(e.block.header.time))
        .or_else(|| node.mempool().get(&txid).map(|e| e.time))
        .unwrap_or_default();
    result.insert("txid".into(), json!(txid.to_string()));
    result.insert("wtxid".into(), json!(tx.compute_wtxid().to_string()));
    result.insert("walletconflicts".into(), json!([]));
    result.insert("time".into(), json!(time));
    result.insert("timereceived".into(), json!(time));
    // Core: "no" once confirmed, otherwise `IsRBFOptIn` (its own signal or an unconfirmed ancestor's).
    let replaceable = confirmations == 0 && (tx.is_explicitly_rbf() || node.mempool().signals_rbf(&txid));
    result.insert("bip125-replaceable".into(), json!(if replaceable { "yes" } else { "no" }));
    result.insert("details".into(), Value::Array(details));
    result.insert("hex".into(), json!(serialize_hex(&*tx)));
    Ok(Value::Object(result))
}

pub(super) fn loadwallet(_: &mut Node, args: &Args) -> Result<Value, RpcError> {
    let name = args.get(0).and_then(Value::as_str).unwrap_or_default();
    Ok(json!({"name": name, "warning": ""}))
}
