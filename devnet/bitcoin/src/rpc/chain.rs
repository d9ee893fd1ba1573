//! Blockchain, mempool, raw-transaction, mining and network methods.

use bitcoin::{
    Amount, Block, BlockHash, OutPoint, ScriptBuf, Txid,
    consensus::encode::{deserialize, serialize_hex},
    hex::{DisplayHex, FromHex},
};
use serde_json::{Map, Value, json};

use super::{Args, RpcError, decode_tx, json, parse_address, parse_amount};
use crate::{
    error::Reject,
    error::codes,
    node::Node,
    params::{INCREMENTAL_RELAY_FEE_PER_KVB, MAX_FEE_PER_KVB, MIN_RELAY_FEE_PER_KVB},
    wallet::DEFAULT_FEE_PER_KVB,
};

fn block_not_found() -> RpcError {
    RpcError::new(codes::INVALID_ADDRESS_OR_KEY, "Block not found")
}

fn decode_failed() -> RpcError {
    RpcError::new(codes::DESERIALIZATION_ERROR, "TX decode failed. Make sure the tx has at least one input.")
}

fn fee_rate_arg(args: &Args, index: usize, default: u64) -> Result<u64, RpcError> {
    match args.get(index) {
        None => Ok(default),
        Some(value) => Ok(parse_amount(value)?.to_sat()),
    }
}

pub(super) fn getblockchaininfo(node: &mut Node, _: &Args) -> Result<Value, RpcError> {
    let chain = node.chain();
    let tip = chain.tip();
    Ok(json!({
        "chain": "regtest",
        "blocks": chain.height(),
        "headers": chain.height(),
        "bestblockhash": chain.tip_hash().to_string(),
        "difficulty": tip.block.header.difficulty_float(),
        "time": tip.block.header.time,
        "mediantime": chain.median_time_past(&chain.tip_hash()),
        "verificationprogress": 1.0,
        "initialblockdownload": false,
        "chainwork": tip.chainwork.to_be_bytes().to_lower_hex_string(),
        "size_on_disk": node.store().size_on_disk(),
        "pruned": false,
        "warnings": "",
    }))
}

pub(super) fn getnetworkinfo(_: &mut Node, _: &Args) -> Result<Value, RpcError> {
    Ok(json!({
        "version": 250000,
        "subversion": format!("/alys-devnet-bitcoin:{}/", env!("CARGO_PKG_VERSION")),
        "protocolversion": 70016,
        "localservices": "0000000000000409",
        "localservicesnames": ["NETWORK", "WITNESS", "NETWORK_LIMITED"],
        "localrelay": true,
        "timeoffset": 0,
        "networkactive": true,
        "connections": 0,
        "connections_in": 0,
        "connections_out": 0,
        "networks": [],
        "relayfee": json::amount(Amount::from_sat(MIN_RELAY_FEE_PER_KVB)),
        "incrementalfee": json::amount(Amount::from_sat(INCREMENTAL_RELAY_FEE_PER_KVB)),
        "localaddresses": [],
        "warnings": "",
    }))
}

pub(super) fn getblockcount(node: &mut Node, _: &Args) -> Result<Value, RpcError> {
    Ok(json!(node.chain().height()))
}

pub(super) fn getbestblockhash(node: &mut Node, _: &Args) -> Result<Value, RpcError> {
    Ok(json!(node.chain().tip_hash().to_string()))
}

pub(super) fn getblockhash(node: &mut Node, args: &Args) -> Result<Value, RpcError> {
    let height = args.required(0, "height")?.as_i64().ok_or_else(|| super::type_error("height", "number"))?;
    u32::try_from(height)
        .ok()
        .and_then(|height| node.chain().hash_at(height))
        .map(|hash| json!(hash.to_string()))
        .ok_or_else(|| RpcError::invalid_parameter("Block height out of range"))
}

pub(super) fn getblock(node: &mut Node, args: &Args) -> Result<Value, RpcError> {
    let hash: BlockHash = args.parsed(0, "blockhash")?;
    let verbosity = match args.get(1) {
        Some(Value::Bool(verbose)) => u64::from(*verbose),
        _ => args.u64_or(1, "verbosity", 1)?,
    };
    let entry = node.chain().entry(&hash).ok_or_else(block_not_found)?;
    if verbosity == 0 {
        return Ok(json!(serialize_hex(&*entry.block)));
    }
    Ok(json::block(node.chain(), entry, verbosity))
}

pub(super) fn getblockheader(node: &mut Node, args: &Args) -> Result<Value, RpcError> {
    let hash: BlockHash = args.parsed(0, "blockhash")?;
    let entry = node.chain().entry(&hash).ok_or_else(block_not_found)?;
    if !args.bool_or(1, "verbose", true)? {
        return Ok(json!(serialize_hex(&entry.block.header)));
    }
    Ok(Value::Object(json::header(node.chain(), entry)))
}

pub(super) fn getrawtransaction(node: &mut Node, args: &Args) -> Result<Value, RpcError> {
    let txid: Txid = args.parsed(0, "txid")?;
    let verbose = args.bool_or(1, "verbose", false)?;
    let (tx, block) = match args.get(2) {
        Some(_) => {
            let hash: BlockHash = args.parsed(2, "blockhash")?;
            let entry = node
                .chain()
                .entry(&hash)
                .ok_or_else(|| RpcError::new(codes::INVALID_ADDRESS_OR_KEY, "Block hash not found"))?;
            let tx = entry.block.txdata.iter().find(|tx| tx.compute_txid() == txid).cloned().ok_or_else(|| {
                RpcError::new(
                    codes::INVALID_ADDRESS_OR_KEY,
                    "No such transaction found in the provided block. Use gettransaction for wallet transactions.",
                )
            })?;
            (std::sync::Arc::new(tx), Some(hash))
        }
        None => node.transaction(&txid).ok_or_else(|| {
            RpcError::new(
                codes::INVALID_ADDRESS_OR_KEY,
                "No such mempool or blockchain transaction. Use gettransaction for wallet transactions.",
            )
        })?,
    };
    if !verbose {
        return Ok(json!(serialize_hex(&*tx)));
    }
    let mut object = json::transaction(&tx, None, true);
    if let Some(hash) = block {
        let chain = node.chain();
        if args.get(2).is_some() {
            object.insert("in_active_chain".into(), json!(chain.is_active(&hash)));
        }
        object.insert("blockhash".into(), json!(hash.to_string()));
        if let Some(entry) = chain.entry(&hash).filter(|_| chain.is_active(&hash)) {
            object.insert("confirmations".into(), json!(chain.confirmations(&hash)));
            object.insert("time".into(), json!(entry.block.header.time));
            object.insert("blocktime".into(), json!(entry.block.header.time));
        } else {
            object.insert("confirmations".into(), json!(0));
        }
    }
    Ok(Value::Object(object))
}

pub(super) fn decoderawtransaction(_: &mut Node, args: &Args) -> Result<Value, RpcError> {
    let witness = args.get(1).and_then(Value::as_bool);
    let tx = decode_tx(args.str(0, "hexstring")?, witness)
        .ok_or_else(|| RpcError::new(codes::DESERIALIZATION_ERROR, "TX decode failed"))?;
    Ok(Value::Object(json::transaction(&tx, None, false)))
}

pub(super) fn sendrawtransaction(node: &mut Node, args: &Args) -> Result<Value, RpcError> {
    let tx = decode_tx(args.str(0, "hexstring")?, None).ok_or_else(decode_failed)?;
    let max_fee = fee_rate_arg(args, 1, MAX_FEE_PER_KVB)?;
    Ok(json!(node.send_transaction(tx, max_fee)?.to_string()))
}

pub(super) fn testmempoolaccept(node: &mut Node, args: &Args) -> Result<Value, RpcError> {
    let raw = args.required(0, "rawtxs")?.as_array().ok_or_else(|| super::type_error("rawtxs", "array"))?;
    let max_fee = fee_rate_arg(args, 1, MAX_FEE_PER_KVB)?;
    let mut results = Vec::with_capacity(raw.len());
    for hex in raw {
        let tx = hex.as_str().and_then(|hex| decode_tx(hex, None)).ok_or_else(decode_failed)?;
        let mut object = Map::new();
        object.insert("txid".into(), json!(tx.compute_txid().to_string()));
        object.insert("wtxid".into(), json!(tx.compute_wtxid().to_string()));
        match node.test_accept(&tx) {
            Ok(accepted) if max_fee == 0 || accepted.fee.to_sat() <= accepted.vsize * max_fee / 1000 => {
                object.insert("allowed".into(), json!(true));
                object.insert("vsize".into(), json!(accepted.vsize));
                object.insert("fees".into(), json!({"base": json::amount(accepted.fee)}));
            }
            Ok(_) => {
                object.insert("allowed".into(), json!(false));
                object.insert("reject-reason".into(), json!("max-fee-exceeded"));
            }
            Err(reason) => {
                // Core reports `GetRejectReason()` here, without the detail `sendrawtransaction` adds,
                // and names missing inputs by their result.
                let text = match reason {
                    Reject::MissingInputs => "missing-inputs".into(),
                    other => other.reject_reason(),
                };
                object.insert("allowed".into(), json!(false));
                object.insert("reject-reason".into(), json!(text));
            }
        }
        results.push(Value::Object(object));
    }
    Ok(Value::Array(results))
}

fn mempool_entry(node: &Node, txid: &Txid) -> Option<Value> {
    let pool = node.mempool();
    let entry = pool.get(txid)?;
    let fee = json::amount(entry.fee);
    Some(json!({
        "vsize": entry.vsize,
        "weight": entry.tx.weight().to_wu(),
        "time": entry.time,
        "height": entry.height,
        "descendantcount": 1 + pool.children(txid).len(),
        "descendantsize": entry.vsize,
        "ancestorcount": 1 + pool.parents(txid).len(),
        "ancestorsize": entry.vsize,
        "wtxid": entry.tx.compute_wtxid().to_string(),
        "fees": {"base": fee, "modified": fee, "ancestor": fee, "descendant": fee},
        "depends": pool.parents(txid).iter().map(ToString::to_string).collect::<Vec<_>>(),
        "spentby": pool.children(txid).iter().map(ToString::to_string).collect::<Vec<_>>(),
        "bip125-replaceable": pool.signals_rbf(txid),
        "unbroadcast": false,
    }))
}

pub(super) fn getrawmempool(node: &mut Node, args: &Args) -> Result<Value, RpcError> {
    let txids: Vec<Txid> = node.mempool().ordered().iter().map(|entry| entry.tx.compute_txid()).collect();
    if args.bool_or(0, "verbose", false)? {
        let map: Map<String, Value> =
            txids.iter().filter_map(|txid| Some((txid.to_string(), mempool_entry(node, txid)?))).collect();
        return Ok(Value::Object(map));
    }
    Ok(json!(txids.iter().map(ToString::to_string).collect::<Vec<_>>()))
}

pub(super) fn getmempoolentry(node: &mut Node, args: &Args) -> Result<Value, RpcError> {
    let txid: Txid = args.parsed(0, "txid")?;
    mempool_entry(node, &txid)
        .ok_or_else(|| RpcError::new(codes::INVALID_ADDRESS_OR_KEY, "Transaction not in mempool"))
}

pub(super) fn getmempoolinfo(node: &mut Node, _: &Args) -> Result<Value, RpcError> {
    let pool = node.mempool();
    let bytes: u64 = pool.ordered().iter().map(|entry| entry.vsize).sum();
    let fees: Amount = pool.ordered().iter().map(|entry| entry.fee).sum();
    let min = json::amount(Amount::from_sat(MIN_RELAY_FEE_PER_KVB));
    let incremental = json::amount(Amount::from_sat(INCREMENTAL_RELAY_FEE_PER_KVB));
    // `loaded`: the saved mempool is loaded before the server starts.
    Ok(json!({
        "loaded": true, "size": pool.len(), "bytes": bytes, "usage": bytes, "total_fee": json::amount(fees),
        "maxmempool": 300_000_000, "mempoolminfee": min, "minrelaytxfee": min,
        "incrementalrelayfee": incremental, "unbroadcastcount": 0, "fullrbf": pool.full_rbf(),
    }))
}

pub(super) fn savemempool(node: &mut Node, _: &Args) -> Result<Value, RpcError> {
    let path = node.save_mempool().map_err(|err| {
        tracing::warn!(target: "devnet::bitcoin", %err, "savemempool failed");
        RpcError::new(codes::MISC_ERROR, "Unable to dump mempool to disk")
    })?;
    Ok(json!({"filename": path.display().to_string()}))
}

pub(super) fn gettxout(node: &mut Node, args: &Args) -> Result<Value, RpcError> {
    let txid: Txid = args.parsed(0, "txid")?;
    let vout =
        u32::try_from(args.required(1, "n")?.as_u64().ok_or_else(|| super::type_error("n", "number"))?)
            .map_err(|_| RpcError::invalid_parameter("vout out of range"))?;
    let include_mempool = args.bool_or(2, "include_mempool", true)?;
    let Some(coin) = node.coin(&OutPoint { txid, vout }, include_mempool) else { return Ok(Value::Null) };
    let chain = node.chain();
    let confirmations = if coin.height > chain.height() { 0 } else { chain.height() - coin.height + 1 };
    Ok(json!({
        "bestblock": chain.tip_hash().to_string(),
        "confirmations": confirmations,
        "value": json::amount(coin.output.value),
        "scriptPubKey": json::script_pubkey(&coin.output.script_pubkey),
        "coinbase": coin.is_coinbase,
    }))
}

pub(super) fn estimatesmartfee(_: &mut Node, args: &Args) -> Result<Value, RpcError> {
    let target = args.u64_or(0, "conf_target", 6)?.clamp(1, 1008);
    Ok(json!({"feerate": json::amount(Amount::from_sat(DEFAULT_FEE_PER_KVB)), "blocks": target.max(2)}))
}

fn output_script(text: &str) -> Result<ScriptBuf, RpcError> {
    if let Some(inner) = text.strip_prefix("raw(").and_then(|rest| rest.split('#').next()?.strip_suffix(')'))
    {
        return ScriptBuf::from_hex(inner).map_err(|_| RpcError::invalid_parameter("Invalid descriptor"));
    }
    let address =
        text.strip_prefix("addr(").and_then(|rest| rest.split('#').next()?.strip_suffix(')')).unwrap_or(text);
    Ok(parse_address(address)?.script_pubkey())
}

pub(super) fn generatetoaddress(node: &mut Node, args: &Args) -> Result<Value, RpcError> {
    let count = args.u64_or(0, "nblocks", 0)?;
    let script = parse_address(args.str(1, "address")?)
        .map_err(|_| RpcError::new(codes::INVALID_ADDRESS_OR_KEY, "Error: Invalid address"))?
        .script_pubkey();
    let hashes = node.generate(count, &script)?;
    Ok(json!(hashes.iter().map(ToString::to_string).collect::<Vec<_>>()))
}

pub(super) fn generateblock(node: &mut Node, args: &Args) -> Result<Value, RpcError> {
    let script = output_script(args.str(0, "output")?)?;
    let listed = args
        .required(1, "transactions")?
        .as_array()
        .ok_or_else(|| super::type_error("transactions", "array"))?;
    let mut txs = Vec::with_capacity(listed.len());
    for item in listed {
        let text = item.as_str().ok_or_else(|| super::type_error("transactions", "string"))?;
        let tx = match text.parse::<Txid>() {
            Ok(txid) => {
                node.mempool().get(&txid).map(|entry| (*entry.tx).clone()).ok_or_else(|| {
                    RpcError::invalid_parameter(format!("Transaction {txid} not in mempool."))
                })?
            }
            Err(_) => decode_tx(text, None).ok_or_else(|| {
                RpcError::new(codes::DESERIALIZATION_ERROR, format!("Transaction decode failed for {text}"))
            })?,
        };
        txs.push(tx);
    }
    let hash = node
        .mine_with(&script, txs)
        .map_err(|err| RpcError::new(codes::VERIFY_ERROR, format!("TestBlockValidity failed: {err}")))?;
    Ok(json!({"hash": hash.to_string()}))
}

pub(super) fn submitblock(node: &mut Node, args: &Args) -> Result<Value, RpcError> {
    let bytes = Vec::<u8>::from_hex(args.str(0, "hexdata")?)
        .map_err(|_| RpcError::new(codes::DESERIALIZATION_ERROR, "Block decode failed"))?;
    let block: Block = deserialize(&bytes)
        .map_err(|_| RpcError::new(codes::DESERIALIZATION_ERROR, "Block decode failed"))?;
    if node.chain().entry(&block.block_hash()).is_some() {
        return Ok(json!("duplicate"));
    }
    match node.submit_block(block) {
        Ok(_) => Ok(Value::Null),
        Err(crate::node::NodeError::Reject(reason)) => Ok(json!(reason.to_string())),
        Err(err) => Err(err.into()),
    }
}

pub(super) fn invalidateblock(node: &mut Node, args: &Args) -> Result<Value, RpcError> {
    let hash: BlockHash = args.parsed(0, "blockhash")?;
    if node.chain().entry(&hash).is_none() {
        return Err(block_not_found());
    }
    node.invalidate(hash)?;
    Ok(Value::Null)
}

pub(super) fn reconsiderblock(node: &mut Node, args: &Args) -> Result<Value, RpcError> {
    let hash: BlockHash = args.parsed(0, "blockhash")?;
    if node.chain().entry(&hash).is_none() {
        return Err(block_not_found());
    }
    node.reconsider(hash)?;
    Ok(Value::Null)
}

pub(super) fn scantxoutset(node: &mut Node, args: &Args) -> Result<Value, RpcError> {
    match args.str(0, "action")? {
        "start" => {}
        "abort" => return Ok(json!(false)),
        "status" => return Ok(Value::Null),
        other => return Err(RpcError::invalid_parameter(format!("Invalid action '{other}'"))),
    }
    let objects = args
        .required(1, "scanobjects")?
        .as_array()
        .ok_or_else(|| super::type_error("scanobjects", "array"))?;
    let mut wanted = Vec::with_capacity(objects.len());
    for object in objects {
        let desc = object
            .as_str()
            .or_else(|| object.get("desc").and_then(Value::as_str))
            .ok_or_else(|| super::type_error("scanobjects", "string or object"))?;
        if !(desc.starts_with("addr(") || desc.starts_with("raw(")) {
            return Err(RpcError::invalid_parameter(format!(
                "only addr() and raw() descriptors are supported: {desc}"
            )));
        }
        let script = output_script(desc)?;
        wanted.push((script, desc.split('#').next().unwrap_or(desc).to_owned()));
    }
    let chain = node.chain();
    let mut unspents = Vec::new();
    let mut total = Amount::ZERO;
    let mut count = 0u64;
    for (outpoint, coin) in chain.utxos() {
        count += 1;
        if let Some((_, desc)) = wanted.iter().find(|(script, _)| *script == coin.output.script_pubkey) {
            total += coin.output.value;
            unspents.push(json!({
                "txid": outpoint.txid.to_string(), "vout": outpoint.vout,
                "scriptPubKey": coin.output.script_pubkey.to_hex_string(), "desc": desc,
                "amount": json::amount(coin.output.value), "coinbase": coin.is_coinbase, "height": coin.height,
            }));
        }
    }
    Ok(json!({
        "success": true, "txouts": count, "height": chain.height(), "bestblock": chain.tip_hash().to_string(),
        "unspents": unspents, "total_amount": json::amount(total),
    }))
}
