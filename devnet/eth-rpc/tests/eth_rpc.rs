#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]
//! The eth JSON-RPC server over real HTTP and WebSocket on 127.0.0.1, against a fake backend with a few
//! canned blocks, transactions and receipts, a pool whose answer the test sets, and a chain-notification
//! channel the test drives.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use alloy_consensus::{
    Block as ConsensusBlock, BlockBody, Eip658Value, Header, Receipt, ReceiptEnvelope, SignableTransaction,
    TxEnvelope, TxLegacy, transaction::Recovered,
};
use alloy_eips::eip2930::{AccessList, AccessListItem, AccessListResult};
use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, B256, Bytes, LogData, Signature, TxKind, U256, address, b256, keccak256};
use alloy_rpc_types_eth::{
    Block, BlockTransactions, FeeHistory, Filter, Log, Transaction, TransactionReceipt, TransactionRequest,
};
use alloy_rpc_types_eth::{EIP1186AccountProofResponse, EIP1186StorageProof};
use alloy_rpc_types_trace::geth::{GethDebugTracingOptions, GethTrace};
use alloy_rpc_types_txpool::TxpoolContent;
use alys_el_api::{
    BackendError, Chain, ChainNotification, EthBackend, ExecutedBlock, PoolError, ToolingBackend,
};
use alys_eth_rpc::{EthRpcConfig, EthRpcHandle, error, rpc_header, start};
use jsonrpsee::core::{
    client::{ClientT, Subscription, SubscriptionClientT},
    params::ArrayParams,
};
use jsonrpsee_ws_client::{WsClient, WsClientBuilder};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::broadcast,
};

#[path = "eth_rpc/engine.rs"]
mod engine;

const CHAIN_ID: u64 = 212121;
const ALICE: Address = address!("0x00000000000000000000000000000000000a11ce");
const CONTRACT_A: Address = address!("0x000000000000000000000000000000000000000a");
const CONTRACT_B: Address = address!("0x000000000000000000000000000000000000000b");
const TOPIC_1: B256 = b256!("0x1111111111111111111111111111111111111111111111111111111111111111");
const TOPIC_2: B256 = b256!("0x2222222222222222222222222222222222222222222222222222222222222222");

// ---------------------------------------------------------------------------------------------------------
// Canned chain

fn tx(nonce: u64) -> TxEnvelope {
    tx_to(nonce, Some(CONTRACT_A))
}

/// A signed legacy transaction to `to` (`None` creates a contract).
fn tx_to(nonce: u64, to: Option<Address>) -> TxEnvelope {
    let tx = TxLegacy {
        chain_id: Some(CHAIN_ID),
        nonce,
        gas_price: 1_000_000_007,
        gas_limit: 50_000,
        to: to.map_or(TxKind::Create, TxKind::Call),
        value: U256::from(nonce),
        input: Bytes::new(),
    };
    TxEnvelope::Legacy(tx.into_signed(Signature::test_signature()))
}

fn log(address: Address, topic: B256) -> alloy_primitives::Log {
    alloy_primitives::Log { address, data: LogData::new_unchecked(vec![topic], Bytes::from_static(&[1, 2])) }
}

/// A block whose transaction `i` emits `logs[i]`. `salt` makes sibling blocks (reorgs) differ.
fn executed(
    number: u64,
    parent_hash: B256,
    salt: u64,
    logs: Vec<Vec<alloy_primitives::Log>>,
) -> ExecutedBlock {
    let transactions: Vec<TxEnvelope> =
        (0..logs.len() as u64).map(|i| tx(number * 100 + salt * 10 + i)).collect();
    let mut cumulative = 0;
    let receipts = logs
        .into_iter()
        .map(|logs| {
            cumulative += 30_000;
            ReceiptEnvelope::Legacy(
                Receipt { status: Eip658Value::Eip658(true), cumulative_gas_used: cumulative, logs }
                    .with_bloom(),
            )
        })
        .collect();
    let header = Header {
        parent_hash,
        number,
        timestamp: 1_700_000_000 + number * 2 + salt,
        gas_limit: 30_000_000,
        gas_used: cumulative,
        base_fee_per_gas: Some(7),
        extra_data: Bytes::from(salt.to_be_bytes().to_vec()),
        ..Header::default()
    };
    let hash = header.hash_slow();
    let senders = vec![ALICE; transactions.len()];
    ExecutedBlock {
        hash,
        block: ConsensusBlock { header, body: BlockBody { transactions, ommers: vec![], withdrawals: None } },
        senders,
        receipts,
    }
}

/// Blocks 0..=3: genesis, two transactions with logs (A/T1 and B/T2), one transaction (A/T2), empty.
fn canned_chain() -> Vec<Arc<ExecutedBlock>> {
    let genesis = executed(0, B256::ZERO, 0, vec![]);
    let one =
        executed(1, genesis.hash, 0, vec![vec![log(CONTRACT_A, TOPIC_1)], vec![log(CONTRACT_B, TOPIC_2)]]);
    let two = executed(2, one.hash, 0, vec![vec![log(CONTRACT_A, TOPIC_2)]]);
    let three = executed(3, two.hash, 0, vec![]);
    vec![genesis, one, two, three].into_iter().map(Arc::new).collect()
}

fn rpc_transaction(block: &ExecutedBlock, index: usize) -> Transaction {
    let envelope = block.block.body.transactions[index].clone();
    let gas_price = match &envelope {
        TxEnvelope::Legacy(signed) => signed.tx().gas_price,
        _ => 0,
    };
    Transaction {
        inner: Recovered::new_unchecked(envelope, block.senders[index]),
        block_hash: Some(block.hash),
        block_number: Some(block.number()),
        transaction_index: Some(index as u64),
        effective_gas_price: Some(gas_price),
        block_timestamp: Some(block.block.header.timestamp),
    }
}

fn rpc_receipt(block: &ExecutedBlock, index: usize) -> TransactionReceipt {
    let logs: Vec<Log> =
        block.rpc_logs(false).filter(|l| l.transaction_index == Some(index as u64)).collect();
    let consensus = block.receipts[index].as_receipt().unwrap();
    let previous = if index == 0 { 0 } else { block.receipts[index - 1].cumulative_gas_used() };
    let receipt =
        Receipt { status: consensus.status, cumulative_gas_used: consensus.cumulative_gas_used, logs };
    TransactionReceipt {
        inner: ReceiptEnvelope::Legacy(receipt.with_bloom()),
        transaction_hash: *block.block.body.transactions[index].tx_hash(),
        transaction_index: Some(index as u64),
        block_hash: Some(block.hash),
        block_number: Some(block.number()),
        gas_used: consensus.cumulative_gas_used - previous,
        effective_gas_price: 1_000_000_007,
        blob_gas_used: None,
        blob_gas_price: None,
        from: block.senders[index],
        to: Some(CONTRACT_A),
        contract_address: None,
    }
}

fn rpc_block(block: &ExecutedBlock, full: bool) -> Block {
    let transactions = if full {
        BlockTransactions::Full(
            (0..block.block.body.transactions.len()).map(|i| rpc_transaction(block, i)).collect(),
        )
    } else {
        BlockTransactions::Hashes(block.block.body.transactions.iter().map(|tx| *tx.tx_hash()).collect())
    };
    Block::new(rpc_header(block), transactions)
}

// ---------------------------------------------------------------------------------------------------------
// Fake backend

#[derive(Clone)]
struct Fake {
    /// The canonical chain; the test may extend it.
    blocks: Arc<Mutex<Vec<Arc<ExecutedBlock>>>>,
    /// When set, every state read, call and log query fails with it.
    fail: Arc<Mutex<Option<BackendError>>>,
    /// When set, the pool refuses every transaction with it.
    pool: Arc<Mutex<Option<PoolError>>>,
    /// What the last state read, call or fee-history query was asked, as the backend saw it.
    seen: Arc<Mutex<Vec<String>>>,
    chain: broadcast::Sender<ChainNotification>,
    /// What `newPendingTransactions` subscribers receive.
    pending: broadcast::Sender<Transaction>,
}

impl Fake {
    fn new(capacity: usize) -> Self {
        Self {
            blocks: Arc::new(Mutex::new(canned_chain())),
            fail: Arc::default(),
            pool: Arc::default(),
            seen: Arc::default(),
            chain: broadcast::channel(capacity).0,
            pending: broadcast::channel(capacity).0,
        }
    }

    /// Canonical block `n`.
    fn block(&self, n: usize) -> Arc<ExecutedBlock> {
        self.blocks.lock().unwrap()[n].clone()
    }

    fn head(&self) -> u64 {
        self.blocks.lock().unwrap().len() as u64 - 1
    }

    /// Extends the canonical chain by a block with these logs (one transaction per inner list).
    fn push(&self, logs: Vec<Vec<alloy_primitives::Log>>) -> Arc<ExecutedBlock> {
        let tip = self.block(self.head() as usize);
        let block = Arc::new(executed(tip.number() + 1, tip.hash, 0, logs));
        self.blocks.lock().unwrap().push(block.clone());
        block
    }

    /// latest/pending = the head (3 unless extended), safe = 2, finalized = 1, earliest = 0.
    fn resolve(&self, id: BlockId) -> Option<Arc<ExecutedBlock>> {
        let blocks = self.blocks.lock().unwrap();
        let number = match id {
            BlockId::Hash(hash) => return blocks.iter().find(|b| b.hash == hash.block_hash).cloned(),
            BlockId::Number(BlockNumberOrTag::Latest | BlockNumberOrTag::Pending) => blocks.len() as u64 - 1,
            BlockId::Number(BlockNumberOrTag::Safe) => 2,
            BlockId::Number(BlockNumberOrTag::Finalized) => 1,
            BlockId::Number(BlockNumberOrTag::Earliest) => 0,
            BlockId::Number(BlockNumberOrTag::Number(n)) => n,
        };
        blocks.get(number as usize).cloned()
    }

    fn state_at(&self, what: String, at: BlockId) -> Result<Arc<ExecutedBlock>, BackendError> {
        self.seen.lock().unwrap().push(what);
        if let Some(err) = self.fail.lock().unwrap().clone() {
            return Err(err);
        }
        self.resolve(at).ok_or(BackendError::UnknownBlock)
    }

    fn last_seen(&self) -> String {
        self.seen.lock().unwrap().last().cloned().unwrap_or_default()
    }

    fn find_tx(&self, hash: B256) -> Option<(Arc<ExecutedBlock>, usize)> {
        self.blocks.lock().unwrap().iter().find_map(|block| {
            block
                .block
                .body
                .transactions
                .iter()
                .position(|tx| *tx.tx_hash() == hash)
                .map(|i| (block.clone(), i))
        })
    }
}

impl EthBackend for Fake {
    fn chain_id(&self) -> u64 {
        CHAIN_ID
    }

    async fn block_number(&self) -> Result<u64, BackendError> {
        Ok(self.head())
    }

    async fn block(&self, id: BlockId, full: bool) -> Result<Option<Block>, BackendError> {
        Ok(self.resolve(id).map(|block| rpc_block(&block, full)))
    }

    async fn balance(&self, address: Address, at: BlockId) -> Result<U256, BackendError> {
        let block = self.state_at(format!("balance {address} {at}"), at)?;
        Ok(U256::from(1000 + block.number()))
    }

    async fn transaction_count(&self, address: Address, at: BlockId) -> Result<u64, BackendError> {
        let block = self.state_at(format!("nonce {address} {at}"), at)?;
        Ok(block.number() + 5)
    }

    async fn code(&self, address: Address, at: BlockId) -> Result<Bytes, BackendError> {
        self.state_at(format!("code {address} {at}"), at)?;
        Ok(Bytes::from_static(&[0x60, 0x01]))
    }

    async fn storage_at(&self, address: Address, slot: U256, at: BlockId) -> Result<B256, BackendError> {
        self.state_at(format!("storage {address} {slot} {at}"), at)?;
        Ok(B256::from(slot + U256::from(1)))
    }

    async fn call(&self, request: TransactionRequest, at: BlockId) -> Result<Bytes, BackendError> {
        let input = request.input.input().cloned().unwrap_or_default();
        self.state_at(format!("call {:?} {input} {at}", request.to), at)?;
        Ok(input)
    }

    async fn estimate_gas(&self, request: TransactionRequest, at: BlockId) -> Result<u64, BackendError> {
        self.state_at(format!("estimate {:?} {at}", request.to), at)?;
        Ok(21_000)
    }

    async fn gas_price(&self) -> Result<u128, BackendError> {
        Ok(1_000_000_007)
    }

    async fn max_priority_fee_per_gas(&self) -> Result<u128, BackendError> {
        Ok(1_000_000_000)
    }

    async fn fee_history(
        &self,
        block_count: u64,
        newest: BlockNumberOrTag,
        reward_percentiles: Option<Vec<f64>>,
    ) -> Result<FeeHistory, BackendError> {
        self.state_at(format!("fees {block_count} {newest} {reward_percentiles:?}"), newest.into())?;
        Ok(FeeHistory {
            base_fee_per_gas: vec![7, 7, 8],
            gas_used_ratio: vec![0.5, 0.25],
            base_fee_per_blob_gas: vec![],
            blob_gas_used_ratio: vec![],
            oldest_block: 2,
            reward: reward_percentiles.map(|p| vec![vec![1_000_000_000; p.len()]; 2]),
        })
    }

    async fn transaction_by_hash(&self, hash: B256) -> Result<Option<Transaction>, BackendError> {
        Ok(self.find_tx(hash).map(|(block, i)| rpc_transaction(&block, i)))
    }

    async fn transaction_receipt(&self, hash: B256) -> Result<Option<TransactionReceipt>, BackendError> {
        Ok(self.find_tx(hash).map(|(block, i)| rpc_receipt(&block, i)))
    }

    async fn logs(&self, filter: Filter) -> Result<Vec<Log>, BackendError> {
        let (from, to) = (filter.get_from_block().unwrap_or(0), filter.get_to_block().unwrap_or(u64::MAX));
        self.state_at(format!("logs {from}..={to}"), BlockId::latest())?;
        let blocks = self.blocks.lock().unwrap().clone();
        Ok(blocks
            .iter()
            .filter(|b| (from..=to).contains(&b.number()))
            .flat_map(|b| b.rpc_logs(false).collect::<Vec<_>>())
            .filter(|l| filter.matches(&l.inner))
            .collect())
    }

    async fn send_raw_transaction(&self, raw: Bytes) -> Result<B256, PoolError> {
        match self.pool.lock().unwrap().clone() {
            Some(err) => Err(err),
            None => Ok(keccak256(&raw)),
        }
    }

    fn subscribe_chain(&self) -> broadcast::Receiver<ChainNotification> {
        self.chain.subscribe()
    }
}

/// Tooling answers are canned; traces echo the options the server parsed, so tests see what reached the
/// backend.
impl ToolingBackend for Fake {
    async fn blob_base_fee(&self) -> Result<Option<u128>, BackendError> {
        Ok(Some(1))
    }

    async fn proof(
        &self,
        address: Address,
        keys: Vec<B256>,
        at: BlockId,
    ) -> Result<EIP1186AccountProofResponse, BackendError> {
        self.state_at(format!("proof {address} {} {at}", keys.len()), at)?;
        let storage_proof = keys
            .into_iter()
            .map(|key| EIP1186StorageProof {
                key: key.into(),
                value: U256::from_be_bytes(key.0) + U256::from(1),
                proof: vec![Bytes::from_static(&[0xc0])],
            })
            .collect();
        Ok(EIP1186AccountProofResponse {
            address,
            balance: U256::from(1000),
            code_hash: keccak256([]),
            nonce: 5,
            storage_hash: B256::repeat_byte(0x55),
            account_proof: vec![Bytes::from_static(&[0xc1, 0x80])],
            storage_proof,
        })
    }

    async fn create_access_list(
        &self,
        request: TransactionRequest,
        at: BlockId,
    ) -> Result<AccessListResult, BackendError> {
        self.state_at(format!("access list {:?} {at}", request.to), at)?;
        Ok(AccessListResult {
            access_list: AccessList(vec![AccessListItem {
                address: CONTRACT_B,
                storage_keys: vec![B256::with_last_byte(7)],
            }]),
            gas_used: U256::from(30_000),
            error: Some("execution reverted".into()),
        })
    }

    async fn trace_transaction(
        &self,
        hash: B256,
        options: GethDebugTracingOptions,
    ) -> Result<Option<GethTrace>, BackendError> {
        Ok(self.find_tx(hash).map(|_| GethTrace::JS(serde_json::to_value(options).unwrap())))
    }

    async fn trace_call(
        &self,
        request: TransactionRequest,
        at: BlockId,
        options: GethDebugTracingOptions,
    ) -> Result<GethTrace, BackendError> {
        self.state_at(format!("trace call {:?} {at}", request.to), at)?;
        Ok(GethTrace::JS(serde_json::to_value(options).unwrap()))
    }

    async fn pool_content(&self) -> Result<TxpoolContent<Transaction>, BackendError> {
        let pooled = |nonce: u64| {
            let mut tx = rpc_transaction(&self.block(1), 0);
            tx.inner = Recovered::new_unchecked(tx_to(nonce, None), ALICE);
            (tx.block_hash, tx.block_number, tx.transaction_index) = (None, None, None);
            (nonce.to_string(), tx)
        };
        let mut content = TxpoolContent::default();
        content.pending.insert(ALICE, [pooled(5), pooled(6)].into_iter().collect());
        content.queued.insert(ALICE, [pooled(9)].into_iter().collect());
        Ok(content)
    }

    fn subscribe_pending_transactions(&self) -> broadcast::Receiver<Transaction> {
        self.pending.subscribe()
    }
}

// ---------------------------------------------------------------------------------------------------------
// Wire helpers

async fn server_with(config: EthRpcConfig, capacity: usize) -> (Fake, EthRpcHandle) {
    let fake = Fake::new(capacity);
    let handle = start(fake.clone(), config).await.unwrap();
    (fake, handle)
}

async fn server() -> (Fake, EthRpcHandle) {
    server_with(EthRpcConfig::ephemeral(), 64).await
}

/// POSTs `body` over a fresh connection; returns the status and the body.
async fn http_post(addr: SocketAddr, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await.unwrap().unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

/// One JSON-RPC call over HTTP; returns the whole response object.
async fn call(addr: SocketAddr, method: &str, params: Value) -> Value {
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let (status, body) = http_post(addr, request.to_string().as_bytes()).await;
    assert_eq!(status, 200, "{method}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The `result` of a call that must succeed.
async fn ok(addr: SocketAddr, method: &str, params: Value) -> Value {
    let response = call(addr, method, params.clone()).await;
    assert!(response.get("error").is_none(), "{method} {params}: {response}");
    response["result"].clone()
}

/// The `error` of a call that must fail.
async fn err(addr: SocketAddr, method: &str, params: Value) -> Value {
    let response = call(addr, method, params.clone()).await;
    assert!(response.get("result").is_none(), "{method} {params}: {response}");
    response["error"].clone()
}

fn http(handle: &EthRpcHandle) -> SocketAddr {
    handle.http_addr().unwrap()
}

async fn ws(handle: &EthRpcHandle) -> WsClient {
    WsClientBuilder::default().build(handle.ws_url().unwrap()).await.unwrap()
}

fn params(values: Vec<Value>) -> ArrayParams {
    let mut params = ArrayParams::new();
    for value in values {
        params.insert(value).unwrap();
    }
    params
}

async fn next(sub: &mut Subscription<Value>) -> Value {
    tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("notification in time")
        .unwrap()
        .unwrap()
}

/// Asserts that nothing more arrives on the subscription for a short while.
async fn assert_quiet(sub: &mut Subscription<Value>) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await {
        panic!("unexpected notification {item:?}");
    }
}

fn hex(n: u64) -> String {
    format!("0x{n:x}")
}

// ---------------------------------------------------------------------------------------------------------
// Plain methods

#[tokio::test]
async fn identity_methods() {
    let (_fake, handle) = server().await;
    let addr = http(&handle);
    assert_eq!(ok(addr, "eth_chainId", json!([])).await, json!(hex(CHAIN_ID)));
    assert_eq!(ok(addr, "net_version", json!([])).await, json!(CHAIN_ID.to_string()));
    assert_eq!(
        ok(addr, "web3_clientVersion", json!([])).await,
        json!(format!("alys-devnet-el/v{}", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(ok(addr, "eth_blockNumber", json!([])).await, json!("0x3"));
    assert_eq!(ok(addr, "eth_syncing", json!([])).await, json!(false));
    assert_eq!(ok(addr, "net_listening", json!([])).await, json!(true));
    assert_eq!(ok(addr, "net_peerCount", json!([])).await, json!("0x0"));
    assert_eq!(ok(addr, "eth_accounts", json!([])).await, json!([]));
    assert_eq!(ok(addr, "eth_gasPrice", json!([])).await, json!("0x3b9aca07"));
    assert_eq!(ok(addr, "eth_maxPriorityFeePerGas", json!([])).await, json!("0x3b9aca00"));
    assert_eq!(ok(addr, "web3_sha3", json!(["0x"])).await, json!(keccak256([]).to_string()));
    // Params may be omitted entirely for methods without any.
    let response: Value = {
        let (_, body) = http_post(addr, br#"{"jsonrpc":"2.0","id":7,"method":"eth_chainId"}"#).await;
        serde_json::from_str(&body).unwrap()
    };
    assert_eq!(response["result"], json!(hex(CHAIN_ID)));
    assert_eq!(response["id"], json!(7));
}

#[tokio::test]
async fn blocks_by_tag_number_and_hash() {
    let (fake, handle) = server().await;
    let addr = http(&handle);
    for (tag, number) in
        [("latest", 3), ("pending", 3), ("safe", 2), ("finalized", 1), ("earliest", 0), ("0x2", 2)]
    {
        let block = ok(addr, "eth_getBlockByNumber", json!([tag, false])).await;
        assert_eq!(block["number"], json!(hex(number)), "{tag}");
        assert_eq!(block["hash"], json!(fake.block(number as usize).hash.to_string()), "{tag}");
    }
    // Unknown number and hash: null.
    assert_eq!(ok(addr, "eth_getBlockByNumber", json!(["0x63", false])).await, Value::Null);
    assert_eq!(ok(addr, "eth_getBlockByHash", json!([B256::repeat_byte(9), true])).await, Value::Null);

    // Hashes only, then full transactions.
    let one = &fake.block(1);
    let block = ok(addr, "eth_getBlockByHash", json!([one.hash, false])).await;
    assert_eq!(block["number"], json!("0x1"));
    assert_eq!(block["parentHash"], json!(fake.block(0).hash));
    assert_eq!(block["baseFeePerGas"], json!("0x7"));
    assert_eq!(block["gasLimit"], json!("0x1c9c380"));
    assert_eq!(
        block["transactions"],
        json!([one.block.body.transactions[0].tx_hash(), one.block.body.transactions[1].tx_hash()])
    );
    let full = ok(addr, "eth_getBlockByNumber", json!(["0x1", true])).await;
    let first = &full["transactions"][0];
    assert_eq!(first["hash"], json!(one.block.body.transactions[0].tx_hash()));
    assert_eq!(first["from"], json!(ALICE));
    assert_eq!(first["blockNumber"], json!("0x1"));
    assert_eq!(first["transactionIndex"], json!("0x0"));
    assert_eq!(first["nonce"], json!(hex(100)));
    // The `full` flag may be omitted (hashes).
    let block = ok(addr, "eth_getBlockByNumber", json!(["latest"])).await;
    assert_eq!(block["transactions"], json!([]));

    // Counts and transactions by position.
    assert_eq!(ok(addr, "eth_getBlockTransactionCountByNumber", json!(["0x1"])).await, json!("0x2"));
    assert_eq!(ok(addr, "eth_getBlockTransactionCountByNumber", json!(["safe"])).await, json!("0x1"));
    assert_eq!(ok(addr, "eth_getBlockTransactionCountByHash", json!([one.hash])).await, json!("0x2"));
    assert_eq!(ok(addr, "eth_getBlockTransactionCountByNumber", json!(["0x63"])).await, Value::Null);
    let second = ok(addr, "eth_getTransactionByBlockNumberAndIndex", json!(["0x1", "0x1"])).await;
    assert_eq!(second["hash"], json!(one.block.body.transactions[1].tx_hash()));
    let second = ok(addr, "eth_getTransactionByBlockHashAndIndex", json!([one.hash, "0x1"])).await;
    assert_eq!(second["transactionIndex"], json!("0x1"));
    assert_eq!(ok(addr, "eth_getTransactionByBlockNumberAndIndex", json!(["0x1", "0x5"])).await, Value::Null);

    // Receipts of a whole block.
    let receipts = ok(addr, "eth_getBlockReceipts", json!(["0x1"])).await;
    assert_eq!(receipts.as_array().unwrap().len(), 2);
    assert_eq!(receipts[1]["logs"][0]["logIndex"], json!("0x1"));
    assert_eq!(ok(addr, "eth_getBlockReceipts", json!(["0x63"])).await, Value::Null);
}

#[tokio::test]
async fn state_reads_resolve_every_block_id() {
    let (fake, handle) = server().await;
    let addr = http(&handle);
    for (id, number) in [
        (json!("latest"), 3),
        (json!("pending"), 3),
        (json!("safe"), 2),
        (json!("finalized"), 1),
        (json!("earliest"), 0),
        (json!("0x2"), 2),
        (json!({"blockHash": fake.block(1).hash}), 1),
        (json!({"blockNumber": "0x2"}), 2),
        (json!(fake.block(0).hash), 0),
    ] {
        assert_eq!(ok(addr, "eth_getBalance", json!([ALICE, id])).await, json!(hex(1000 + number)), "{id}");
        assert_eq!(
            ok(addr, "eth_getTransactionCount", json!([ALICE, id])).await,
            json!(hex(5 + number)),
            "{id}"
        );
    }
    // The block defaults to latest.
    assert_eq!(ok(addr, "eth_getBalance", json!([ALICE])).await, json!("0x3eb"));
    assert!(fake.last_seen().ends_with("latest"), "{}", fake.last_seen());

    assert_eq!(ok(addr, "eth_getCode", json!([CONTRACT_A, "latest"])).await, json!("0x6001"));
    assert_eq!(
        ok(addr, "eth_getStorageAt", json!([CONTRACT_A, "0x0", "latest"])).await,
        json!(B256::with_last_byte(1))
    );
    // A slot given as a full 32-byte word.
    assert_eq!(
        ok(addr, "eth_getStorageAt", json!([CONTRACT_A, B256::with_last_byte(4), "safe"])).await,
        json!(B256::with_last_byte(5))
    );
    assert_eq!(fake.last_seen(), format!("storage {CONTRACT_A} 4 safe"));

    // Unknown block in a state read: -32001 header not found.
    for method in ["eth_getBalance", "eth_getTransactionCount", "eth_getCode"] {
        let error = err(addr, method, json!([ALICE, "0x63"])).await;
        assert_eq!(error["code"], json!(error::RESOURCE_NOT_FOUND_CODE), "{method}");
        assert_eq!(error["message"], json!("header not found"), "{method}");
    }
}

#[tokio::test]
async fn call_estimate_and_fees() {
    let (fake, handle) = server().await;
    let addr = http(&handle);
    let request = json!({"from": ALICE, "to": CONTRACT_A, "data": "0xc0ffee"});
    assert_eq!(ok(addr, "eth_call", json!([request, "latest"])).await, json!("0xc0ffee"));
    // `input` is accepted as well as `data`; the block defaults to latest.
    let request = json!({"to": CONTRACT_A, "input": "0xbeef"});
    assert_eq!(ok(addr, "eth_call", json!([request])).await, json!("0xbeef"));
    assert_eq!(fake.last_seen(), format!("call Some(Call({CONTRACT_A:?})) 0xbeef latest"));
    assert_eq!(ok(addr, "eth_estimateGas", json!([request, "safe"])).await, json!("0x5208"));
    assert_eq!(fake.last_seen(), format!("estimate Some(Call({CONTRACT_A:?})) safe"));
    // Empty overrides are fine, real ones are refused.
    assert_eq!(ok(addr, "eth_call", json!([request, "latest", {}])).await, json!("0xbeef"));
    let error =
        err(addr, "eth_call", json!([request, "latest", {ALICE.to_string(): {"balance": "0x1"}}])).await;
    assert_eq!(error["code"], json!(-32602));
    assert_eq!(error["message"], json!("state overrides are not supported"));

    let history = ok(addr, "eth_feeHistory", json!(["0x2", "latest", [25.0, 75.0]])).await;
    assert_eq!(history["oldestBlock"], json!("0x2"));
    assert_eq!(history["baseFeePerGas"], json!(["0x7", "0x7", "0x8"]));
    assert_eq!(history["gasUsedRatio"], json!([0.5, 0.25]));
    assert_eq!(history["reward"], json!([["0x3b9aca00", "0x3b9aca00"], ["0x3b9aca00", "0x3b9aca00"]]));
    assert_eq!(fake.last_seen(), "fees 2 latest Some([25.0, 75.0])");
    // A decimal block count, as geth accepts, and no percentiles.
    ok(addr, "eth_feeHistory", json!([4, "0x3"])).await;
    assert_eq!(fake.last_seen(), "fees 4 0x3 None");
    let error = err(addr, "eth_feeHistory", json!(["0x2", "latest", [75.0, 25.0]])).await;
    assert_eq!(error["code"], json!(-32602));
    assert_eq!(error["message"], json!("invalid reward percentile: 25"));
}

#[tokio::test]
async fn transactions_receipts_and_logs() {
    let (fake, handle) = server().await;
    let addr = http(&handle);
    let one = &fake.block(1);
    let hash = *one.block.body.transactions[1].tx_hash();

    let tx = ok(addr, "eth_getTransactionByHash", json!([hash])).await;
    assert_eq!(tx["hash"], json!(hash));
    assert_eq!(tx["blockHash"], json!(one.hash));
    assert_eq!(tx["type"], json!("0x0"));
    assert_eq!(tx["gasPrice"], json!("0x3b9aca07"));
    assert_eq!(tx["chainId"], json!(hex(CHAIN_ID)));
    assert_eq!(ok(addr, "eth_getTransactionByHash", json!([B256::ZERO])).await, Value::Null);

    let receipt = ok(addr, "eth_getTransactionReceipt", json!([hash])).await;
    assert_eq!(receipt["status"], json!("0x1"));
    assert_eq!(receipt["transactionHash"], json!(hash));
    assert_eq!(receipt["transactionIndex"], json!("0x1"));
    assert_eq!(receipt["blockNumber"], json!("0x1"));
    assert_eq!(receipt["gasUsed"], json!("0x7530"));
    assert_eq!(receipt["cumulativeGasUsed"], json!("0xea60"));
    assert_eq!(receipt["logs"][0]["address"], json!(CONTRACT_B));
    assert_eq!(receipt["logs"][0]["logIndex"], json!("0x1"));
    assert_eq!(receipt["logs"][0]["removed"], json!(false));
    assert_eq!(ok(addr, "eth_getTransactionReceipt", json!([B256::ZERO])).await, Value::Null);

    let logs =
        ok(addr, "eth_getLogs", json!([{"fromBlock": "0x0", "toBlock": "latest", "address": CONTRACT_A}]))
            .await;
    let logs = logs.as_array().unwrap();
    assert_eq!(logs.len(), 2);
    assert_eq!(logs[0]["blockNumber"], json!("0x1"));
    assert_eq!(logs[0]["topics"], json!([TOPIC_1]));
    assert_eq!(logs[0]["data"], json!("0x0102"));
    assert_eq!(logs[1]["blockNumber"], json!("0x2"));
    assert_eq!(logs[1]["logIndex"], json!("0x0"));
    let logs = ok(addr, "eth_getLogs", json!([{"topics": [TOPIC_2]}])).await;
    assert_eq!(logs.as_array().unwrap().len(), 2);
    // fromBlock after toBlock is refused before reaching the backend.
    let error = err(addr, "eth_getLogs", json!([{"fromBlock": "0x3", "toBlock": "0x1"}])).await;
    assert_eq!(error["code"], json!(-32602));
}

#[tokio::test]
async fn send_raw_transaction_and_every_pool_error() {
    let (fake, handle) = server().await;
    let addr = http(&handle);
    let raw = Bytes::from_static(&[0x02, 0xf8, 0x01]);
    assert_eq!(ok(addr, "eth_sendRawTransaction", json!([raw])).await, json!(keccak256(&raw)));

    let cases = [
        (PoolError::Decode("unexpected EOF".into()), -32000, "rlp: unexpected EOF"),
        (PoolError::InvalidSignature, -32000, "invalid sender"),
        (PoolError::WrongChainId, -32000, "invalid chain id"),
        (PoolError::TxTypeNotSupported, -32000, "transaction type not supported"),
        (PoolError::AlreadyKnown, -32000, "already known"),
        (PoolError::NonceTooLow { expected: 5, got: 3 }, -32000, "nonce too low: next nonce 5, tx nonce 3"),
        (
            PoolError::NonceTooHigh { expected: 5, got: 90 },
            -32000,
            "nonce too high: next nonce 5, tx nonce 90",
        ),
        (
            PoolError::InsufficientFunds { balance: U256::from(10), cost: U256::from(21_000) },
            -32000,
            "insufficient funds for gas * price + value: balance 10, tx cost 21000, overshot 20990",
        ),
        (PoolError::Underpriced, -32000, "transaction underpriced"),
        (PoolError::ReplacementUnderpriced, -32000, "replacement transaction underpriced"),
        (PoolError::IntrinsicGasTooLow, -32000, "intrinsic gas too low"),
        (PoolError::GasLimitExceeded, -32000, "exceeds block gas limit"),
        (PoolError::TipAboveFeeCap, -32000, "max priority fee per gas higher than max fee per gas"),
        (PoolError::Oversized, -32000, "oversized data"),
        (PoolError::PoolFull, -32000, "txpool is full"),
        (PoolError::Internal("pool task gone".into()), -32603, "internal error: pool task gone"),
    ];
    for (pool_error, code, message) in cases {
        *fake.pool.lock().unwrap() = Some(pool_error);
        let error = err(addr, "eth_sendRawTransaction", json!([raw])).await;
        assert_eq!(error["code"], json!(code), "{message}");
        assert_eq!(error["message"], json!(message));
        assert!(error.get("data").is_none());
    }
    // Not hex at all: a parameter error, not a pool error.
    let error = err(addr, "eth_sendRawTransaction", json!(["nothex"])).await;
    assert_eq!(error["code"], json!(-32602));
}

#[tokio::test]
async fn every_backend_error() {
    let (fake, handle) = server().await;
    let addr = http(&handle);
    let request = json!([{"to": CONTRACT_A, "data": "0x01"}, "latest"]);
    let revert_data = Bytes::from_static(&[0x08, 0xc3, 0x79, 0xa0, 0xff]);
    let cases = [
        (
            BackendError::Reverted { data: revert_data.clone(), reason: Some("not owner".into()) },
            3,
            "execution reverted: not owner",
            Some(json!("0x08c379a0ff")),
        ),
        (
            BackendError::Reverted { data: Bytes::from_static(&[0xab, 0xcd]), reason: None },
            3,
            "execution reverted",
            Some(json!("0xabcd")),
        ),
        (
            BackendError::Reverted { data: Bytes::new(), reason: None },
            3,
            "execution reverted",
            Some(json!("0x")),
        ),
        (BackendError::Execution("out of gas".into()), -32000, "out of gas", None),
        (BackendError::UnknownBlock, -32001, "header not found", None),
        (BackendError::RangeTooLarge { max: 10_000 }, -32602, "query exceeds max block range 10000", None),
        (
            BackendError::TooManyResults { max: 20_000 },
            -32602,
            "query returned more than 20000 results",
            None,
        ),
        (
            BackendError::InvalidParams("fromBlock after toBlock".into()),
            -32602,
            "invalid params: fromBlock after toBlock",
            None,
        ),
        (BackendError::Internal("engine stopped".into()), -32603, "internal error: engine stopped", None),
    ];
    for (backend_error, code, message, data) in cases {
        *fake.fail.lock().unwrap() = Some(backend_error);
        for method in ["eth_call", "eth_estimateGas"] {
            let error = err(addr, method, request.clone()).await;
            assert_eq!(error["code"], json!(code), "{method} {message}");
            assert_eq!(error["message"], json!(message), "{method}");
            assert_eq!(error.get("data").cloned(), data, "{method} {message}");
        }
        let error = err(addr, "eth_getLogs", json!([{"address": CONTRACT_A}])).await;
        assert_eq!(error["code"], json!(code), "eth_getLogs {message}");
    }
}

#[tokio::test]
async fn polling_filters() {
    let (fake, handle) = server().await;
    let addr = http(&handle);

    let blocks = ok(addr, "eth_newBlockFilter", json!([])).await;
    let blocks = blocks.as_str().unwrap().to_owned();
    assert!(blocks.starts_with("0x") && blocks.len() == 34, "{blocks}");
    let by_address = ok(addr, "eth_newFilter", json!([{"address": CONTRACT_A}])).await;
    let since_one = ok(addr, "eth_newFilter", json!([{"fromBlock": "0x1", "topics": [TOPIC_2]}])).await;
    assert_ne!(json!(blocks), by_address);

    // Nothing new yet, except for the filter that starts in the past.
    assert_eq!(ok(addr, "eth_getFilterChanges", json!([blocks])).await, json!([]));
    assert_eq!(ok(addr, "eth_getFilterChanges", json!([by_address])).await, json!([]));
    let past = ok(addr, "eth_getFilterChanges", json!([since_one])).await;
    let past: Vec<(Value, Value)> =
        past.as_array().unwrap().iter().map(|l| (l["blockNumber"].clone(), l["address"].clone())).collect();
    assert_eq!(past, vec![(json!("0x1"), json!(CONTRACT_B)), (json!("0x2"), json!(CONTRACT_A))]);

    let four = fake.push(vec![vec![log(CONTRACT_A, TOPIC_1), log(CONTRACT_B, TOPIC_2)]]);
    let five = fake.push(vec![]);
    assert_eq!(ok(addr, "eth_getFilterChanges", json!([blocks])).await, json!([four.hash, five.hash]));
    assert_eq!(ok(addr, "eth_getFilterChanges", json!([blocks])).await, json!([]));
    let new_logs = ok(addr, "eth_getFilterChanges", json!([by_address])).await;
    assert_eq!(new_logs.as_array().unwrap().len(), 1);
    assert_eq!(new_logs[0]["blockHash"], json!(four.hash));
    assert_eq!(new_logs[0]["topics"], json!([TOPIC_1]));
    assert_eq!(fake.last_seen(), "logs 4..=5");
    assert_eq!(ok(addr, "eth_getFilterChanges", json!([by_address])).await, json!([]));
    let new_logs = ok(addr, "eth_getFilterChanges", json!([since_one])).await;
    assert_eq!(new_logs[0]["address"], json!(CONTRACT_B));

    // All logs of the filter, whenever asked.
    let all = ok(addr, "eth_getFilterLogs", json!([by_address])).await;
    assert_eq!(all.as_array().unwrap().len(), 3);

    // Filters are shared by the HTTP and WebSocket servers.
    let client = ws(&handle).await;
    let changes: Value =
        client.request("eth_getFilterChanges", params(vec![by_address.clone()])).await.unwrap();
    assert_eq!(changes, json!([]));
    let six = fake.push(vec![vec![log(CONTRACT_A, TOPIC_2)]]);
    let changes: Value =
        client.request("eth_getFilterChanges", params(vec![by_address.clone()])).await.unwrap();
    assert_eq!(changes[0]["blockHash"], json!(six.hash));

    // Uninstalling; unknown ids are geth's -32000 "filter not found".
    assert_eq!(ok(addr, "eth_uninstallFilter", json!([blocks])).await, json!(true));
    assert_eq!(ok(addr, "eth_uninstallFilter", json!([blocks])).await, json!(false));
    for method in ["eth_getFilterChanges", "eth_getFilterLogs"] {
        let error = err(addr, method, json!([blocks])).await;
        assert_eq!(
            (error["code"].clone(), error["message"].clone()),
            (json!(-32000), json!("filter not found"))
        );
    }
    let error = err(addr, "eth_newFilter", json!([{"blockHash": four.hash}])).await;
    assert_eq!(error["code"], json!(-32602));
}

// ---------------------------------------------------------------------------------------------------------
// Malformed requests and limits

#[tokio::test]
async fn malformed_requests() {
    let (_fake, handle) = server().await;
    let addr = http(&handle);

    let (status, body) = http_post(addr, b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":").await;
    assert_eq!(status, 200);
    let response: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(response["error"]["code"], json!(-32700), "{body}");

    let error = err(addr, "eth_nope", json!([])).await;
    assert_eq!(error["code"], json!(-32601));

    // Wrong types, missing and extra arguments.
    for (method, params) in [
        ("eth_getBalance", json!(["0x1234", "latest"])),
        ("eth_getBalance", json!([ALICE, "newest"])),
        ("eth_getBalance", json!([ALICE, 7.5])),
        ("eth_getBalance", json!([])),
        ("eth_getBalance", json!([ALICE, "latest", 1])),
        ("eth_getBlockByNumber", json!([true, false])),
        ("eth_getBlockByNumber", json!(["latest", "yes"])),
        ("eth_getTransactionByHash", json!(["0x12"])),
        ("eth_call", json!([{"to": 5}])),
        ("eth_feeHistory", json!(["many", "latest"])),
        ("eth_getLogs", json!([{"address": "nope"}])),
        ("eth_chainId", json!([1])),
        ("eth_getBalance", json!({"address": ALICE})),
    ] {
        let error = err(addr, method, params.clone()).await;
        assert_eq!(error["code"], json!(-32602), "{method} {params}: {error}");
    }
    let error = err(addr, "eth_getBalance", json!([])).await;
    assert_eq!(error["message"], json!("missing value for required argument 0"));
    let error = err(addr, "eth_getBalance", json!([ALICE, "latest", 1])).await;
    assert_eq!(error["message"], json!("too many arguments, want at most 2"));
    let error = err(addr, "eth_getBalance", json!(["0x1234"])).await;
    assert!(error["message"].as_str().unwrap().starts_with("invalid argument 0: "), "{error}");

    // The server is still fine.
    assert_eq!(ok(addr, "eth_blockNumber", json!([])).await, json!("0x3"));
}

#[tokio::test]
async fn oversized_bodies_and_batches() {
    let config = EthRpcConfig::ephemeral().with_max_request_body_size(1024).with_max_batch_size(3);
    let (_fake, handle) = server_with(config, 64).await;
    let addr = http(&handle);

    let padding = "0".repeat(2048);
    let body =
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":["0x{padding}"]}}"#);
    let (status, _) = http_post(addr, body.as_bytes()).await;
    assert_eq!(status, 413);

    // Over WebSocket the oversized message is refused too, and the server keeps serving.
    let client = ws(&handle).await;
    let result: Result<Value, _> =
        client.request("eth_sendRawTransaction", params(vec![json!(format!("0x{padding}"))])).await;
    assert!(result.is_err(), "{result:?}");
    let client = ws(&handle).await;
    let chain_id: String = client.request("eth_chainId", ArrayParams::new()).await.unwrap();
    assert_eq!(chain_id, hex(CHAIN_ID));

    let batch = |n: usize| {
        let calls: Vec<Value> = (0..n)
            .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "eth_chainId", "params": []}))
            .collect();
        Value::Array(calls).to_string()
    };
    let (status, body) = http_post(addr, batch(3).as_bytes()).await;
    assert_eq!(status, 200);
    let answers: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answers.as_array().unwrap().len(), 3);
    assert!(answers.as_array().unwrap().iter().all(|a| a["result"] == json!(hex(CHAIN_ID))));

    let (_, body) = http_post(addr, batch(4).as_bytes()).await;
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert!(answer["error"]["code"].is_i64(), "{body}");

    assert_eq!(ok(addr, "eth_chainId", json!([])).await, json!(hex(CHAIN_ID)));
}

#[tokio::test]
async fn connection_limit() {
    let (_fake, handle) = server_with(EthRpcConfig::ephemeral().with_max_connections(1), 64).await;
    let first = ws(&handle).await;
    let second = WsClientBuilder::default().build(handle.ws_url().unwrap()).await;
    assert!(second.is_err(), "a second connection must be refused");
    let chain_id: String = first.request("eth_chainId", ArrayParams::new()).await.unwrap();
    assert_eq!(chain_id, hex(CHAIN_ID));
}

#[tokio::test]
async fn addresses_stop_and_shared_port() {
    let (_fake, handle) = server().await;
    let (http_addr, ws_addr) = (handle.http_addr().unwrap(), handle.ws_addr().unwrap());
    assert_ne!(http_addr.port(), 0);
    assert_ne!(ws_addr.port(), 0);
    assert_ne!(http_addr, ws_addr);
    assert_eq!(handle.http_url().unwrap(), format!("http://{http_addr}"));
    handle.stop();
    handle.stopped().await;
    assert!(TcpStream::connect(http_addr).await.is_err());

    // HTTP only.
    let config = EthRpcConfig::ephemeral().with_ws_addr(None);
    let (_fake, handle) = server_with(config, 64).await;
    assert!(handle.ws_addr().is_none());
    assert_eq!(ok(http(&handle), "eth_blockNumber", json!([])).await, json!("0x3"));

    // Equal addresses with a real port: one server answers both protocols. Find a free port first.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let shared: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let config = EthRpcConfig::default().with_http_addr(Some(shared)).with_ws_addr(Some(shared));
    let (_fake, handle) = server_with(config, 64).await;
    assert_eq!(handle.http_addr(), Some(shared));
    assert_eq!(handle.ws_addr(), Some(shared));
    assert_eq!(ok(shared, "eth_blockNumber", json!([])).await, json!("0x3"));
    let client = ws(&handle).await;
    let number: String = client.request("eth_blockNumber", ArrayParams::new()).await.unwrap();
    assert_eq!(number, "0x3");

    // Binding an address in use fails with a typed error.
    let taken = start(Fake::new(1), EthRpcConfig::ephemeral().with_http_addr(Some(shared))).await;
    assert!(matches!(taken, Err(alys_eth_rpc::StartError::Bind { .. })), "{taken:?}");
}

// ---------------------------------------------------------------------------------------------------------
// Subscriptions

fn chain(blocks: Vec<ExecutedBlock>) -> Arc<Chain> {
    Arc::new(Chain::new(blocks.into_iter().map(Arc::new).collect()).unwrap())
}

#[tokio::test]
async fn new_heads() {
    let (fake, handle) = server().await;
    let client = ws(&handle).await;
    let mut sub: Subscription<Value> =
        client.subscribe("eth_subscribe", params(vec![json!("newHeads")]), "eth_unsubscribe").await.unwrap();
    match sub.kind() {
        jsonrpsee::core::client::SubscriptionKind::Subscription(id) => {
            let id = serde_json::to_value(id).unwrap();
            let id = id.as_str().unwrap();
            assert!(id.starts_with("0x") && id.len() == 34, "{id}");
        }
        other => panic!("{other:?}"),
    }

    let tip = fake.block(3).clone();
    let four = executed(4, tip.hash, 0, vec![vec![log(CONTRACT_A, TOPIC_1)]]);
    let five = executed(5, four.hash, 0, vec![]);
    fake.chain.send(ChainNotification::Committed { new: chain(vec![four.clone(), five.clone()]) }).unwrap();
    let head = next(&mut sub).await;
    assert_eq!(head["number"], json!("0x4"));
    assert_eq!(head["hash"], json!(four.hash));
    assert_eq!(head["parentHash"], json!(tip.hash));
    assert_eq!(head["timestamp"], json!(hex(four.block.header.timestamp)));
    assert_eq!(head["baseFeePerGas"], json!("0x7"));
    assert!(head.get("transactions").is_none(), "a header, not a block");
    assert_eq!(next(&mut sub).await["hash"], json!(five.hash));

    // A revert alone sends nothing; a reorg sends the new branch.
    fake.chain.send(ChainNotification::Reverted { old: chain(vec![five.clone()]) }).unwrap();
    let five_b = executed(5, four.hash, 1, vec![]);
    fake.chain
        .send(ChainNotification::Reorged { old: chain(vec![five]), new: chain(vec![five_b.clone()]) })
        .unwrap();
    let head = next(&mut sub).await;
    assert_eq!(head["number"], json!("0x5"));
    assert_eq!(head["hash"], json!(five_b.hash));
    assert_quiet(&mut sub).await;

    // Unsubscribing works, and the server answers the wire unsubscribe with true.
    sub.unsubscribe().await.unwrap();
}

#[tokio::test]
async fn logs_with_reorg_and_filters() {
    let (fake, handle) = server().await;
    let client = ws(&handle).await;
    let subscribe = |filter: Value| {
        let client = &client;
        async move {
            let p = if filter.is_null() { vec![json!("logs")] } else { vec![json!("logs"), filter] };
            client.subscribe::<Value, _>("eth_subscribe", params(p), "eth_unsubscribe").await.unwrap()
        }
    };
    let mut by_address = subscribe(json!({"address": CONTRACT_A})).await;
    let mut by_topic = subscribe(json!({"topics": [[TOPIC_2]]})).await;
    let mut by_both = subscribe(json!({"address": [CONTRACT_B], "topics": [TOPIC_1]})).await;
    let mut all = subscribe(Value::Null).await;

    // Block 4: tx0 emits A/T1 and B/T2, tx1 emits A/T2.
    let tip = fake.block(3).clone();
    let four = executed(
        4,
        tip.hash,
        0,
        vec![vec![log(CONTRACT_A, TOPIC_1), log(CONTRACT_B, TOPIC_2)], vec![log(CONTRACT_A, TOPIC_2)]],
    );
    fake.chain.send(ChainNotification::Committed { new: chain(vec![four.clone()]) }).unwrap();

    let first = next(&mut by_address).await;
    assert_eq!(first["address"], json!(CONTRACT_A));
    assert_eq!(first["topics"], json!([TOPIC_1]));
    assert_eq!(first["blockHash"], json!(four.hash));
    assert_eq!(first["blockNumber"], json!("0x4"));
    assert_eq!(first["transactionHash"], json!(four.block.body.transactions[0].tx_hash()));
    assert_eq!(first["transactionIndex"], json!("0x0"));
    assert_eq!(first["logIndex"], json!("0x0"));
    assert_eq!(first["removed"], json!(false));
    let second = next(&mut by_address).await;
    assert_eq!(second["transactionIndex"], json!("0x1"));
    assert_eq!(second["logIndex"], json!("0x2"), "log index counts within the block");

    let topic = next(&mut by_topic).await;
    assert_eq!((topic["address"].clone(), topic["logIndex"].clone()), (json!(CONTRACT_B), json!("0x1")));
    assert_eq!(next(&mut by_topic).await["logIndex"], json!("0x2"));

    for expected in ["0x0", "0x1", "0x2"] {
        assert_eq!(next(&mut all).await["logIndex"], json!(expected));
    }

    // Reorg: block 4 replaced by 4' (tx0 emits A/T2) and 5' (empty).
    let four_b = executed(4, tip.hash, 1, vec![vec![log(CONTRACT_A, TOPIC_2)]]);
    let five_b = executed(5, four_b.hash, 1, vec![]);
    fake.chain
        .send(ChainNotification::Reorged {
            old: chain(vec![four.clone()]),
            new: chain(vec![four_b.clone(), five_b]),
        })
        .unwrap();

    let removed = next(&mut by_address).await;
    assert_eq!(removed["removed"], json!(true));
    assert_eq!(removed["blockHash"], json!(four.hash));
    assert_eq!(removed["logIndex"], json!("0x0"));
    let removed = next(&mut by_address).await;
    assert_eq!((removed["removed"].clone(), removed["logIndex"].clone()), (json!(true), json!("0x2")));
    let added = next(&mut by_address).await;
    assert_eq!(added["removed"], json!(false));
    assert_eq!(added["blockHash"], json!(four_b.hash));
    assert_eq!(added["transactionHash"], json!(four_b.block.body.transactions[0].tx_hash()));

    let removed = next(&mut by_topic).await;
    assert_eq!((removed["removed"].clone(), removed["address"].clone()), (json!(true), json!(CONTRACT_B)));
    assert_eq!(next(&mut by_topic).await["removed"], json!(true));
    assert_eq!(next(&mut by_topic).await["blockHash"], json!(four_b.hash));

    // A pure revert re-sends the removed logs.
    fake.chain.send(ChainNotification::Reverted { old: chain(vec![four_b.clone()]) }).unwrap();
    let removed = next(&mut by_address).await;
    assert_eq!((removed["removed"].clone(), removed["blockHash"].clone()), (json!(true), json!(four_b.hash)));
    let removed = next(&mut by_topic).await;
    assert_eq!((removed["removed"].clone(), removed["blockHash"].clone()), (json!(true), json!(four_b.hash)));

    // Nothing else matched: B with topic T1 never occurred.
    assert_quiet(&mut by_address).await;
    assert_quiet(&mut by_topic).await;
    assert_quiet(&mut by_both).await;
}

#[tokio::test]
async fn bad_subscriptions_are_refused() {
    let (_fake, handle) = server().await;
    let client = ws(&handle).await;
    for p in [
        vec![json!("newPendingTransactions"), json!({"address": CONTRACT_A})],
        vec![json!("nonsense")],
        vec![json!("logs"), json!({"address": "nope"})],
        vec![json!("newHeads"), json!({"address": CONTRACT_A})],
        vec![],
    ] {
        let result =
            client.subscribe::<Value, _>("eth_subscribe", params(p.clone()), "eth_unsubscribe").await;
        match result {
            Err(jsonrpsee::core::client::Error::Call(error)) => assert_eq!(error.code(), -32602, "{p:?}"),
            other => panic!("{p:?}: {other:?}"),
        }
    }
    // Over HTTP there are no subscriptions.
    let error = err(http(&handle), "eth_subscribe", json!(["newHeads"])).await;
    assert_eq!(error["code"], json!(-32601));
    assert_eq!(error["message"], json!("notifications not supported"));
    let chain_id: String = client.request("eth_chainId", ArrayParams::new()).await.unwrap();
    assert_eq!(chain_id, hex(CHAIN_ID));
}

// ---------------------------------------------------------------------------------------------------------
// Tooling: blob fee, proofs, access lists, traces, the pool, modules

#[tokio::test]
async fn blob_fee_proofs_and_access_lists() {
    let (fake, handle) = server().await;
    let addr = http(&handle);
    assert_eq!(ok(addr, "eth_blobBaseFee", json!([])).await, json!("0x1"));

    // Storage keys come back as the caller wrote them: a quantity stays a quantity, a word a word.
    let word = B256::with_last_byte(2);
    let proof = ok(addr, "eth_getProof", json!([ALICE, ["0x1", word], "safe"])).await;
    assert_eq!(fake.last_seen(), format!("proof {ALICE} 2 safe"));
    assert_eq!(
        proof,
        json!({
            "address": ALICE,
            "balance": "0x3e8",
            "codeHash": keccak256([]),
            "nonce": "0x5",
            "storageHash": B256::repeat_byte(0x55),
            "accountProof": ["0xc180"],
            "storageProof": [
                {"key": "0x1", "value": "0x2", "proof": ["0xc0"]},
                {"key": word, "value": "0x3", "proof": ["0xc0"]},
            ],
        })
    );
    ok(addr, "eth_getProof", json!([ALICE, []])).await;
    assert_eq!(fake.last_seen(), format!("proof {ALICE} 0 latest"));
    let error = err(addr, "eth_getProof", json!([ALICE])).await;
    assert_eq!(error["message"], json!("missing value for required argument 1"));
    let error = err(addr, "eth_getProof", json!([ALICE, ["0x1"], "0x63"])).await;
    assert_eq!((&error["code"], &error["message"]), (&json!(-32001), &json!("header not found")));
    let too_many: Vec<String> = (0..=alys_eth_rpc::MAX_PROOF_KEYS).map(|i| hex(i as u64)).collect();
    assert_eq!(err(addr, "eth_getProof", json!([ALICE, too_many])).await["code"], json!(-32602));

    let list = ok(addr, "eth_createAccessList", json!([{"from": ALICE, "to": CONTRACT_A}, "safe"])).await;
    assert_eq!(fake.last_seen(), format!("access list Some(Call({CONTRACT_A:?})) safe"));
    assert_eq!(
        list,
        json!({
            "accessList": [{"address": CONTRACT_B, "storageKeys": [B256::with_last_byte(7)]}],
            "gasUsed": "0x7530",
            "error": "execution reverted",
        })
    );
}

#[tokio::test]
async fn traces_read_geth_options() {
    let (fake, handle) = server().await;
    let addr = http(&handle);
    let hash = *fake.block(1).block.body.transactions[0].tx_hash();
    // The fake echoes the options it was handed.
    let options = json!({"tracer": "callTracer", "tracerConfig": {"onlyTopCall": true, "withLog": true}});
    let echoed = ok(addr, "debug_traceTransaction", json!([hash, options])).await;
    assert_eq!(echoed["tracer"], json!("callTracer"));
    assert_eq!(echoed["tracerConfig"], json!({"onlyTopCall": true, "withLog": true}));
    let echoed =
        ok(addr, "debug_traceTransaction", json!([hash, {"enableMemory": true, "disableStack": true}])).await;
    assert_eq!((&echoed["enableMemory"], &echoed["disableStack"]), (&json!(true), &json!(true)));
    assert!(echoed.get("tracer").is_none(), "the struct logger: {echoed}");
    ok(addr, "debug_traceTransaction", json!([hash])).await;
    let error = err(addr, "debug_traceTransaction", json!([B256::repeat_byte(3)])).await;
    assert_eq!((&error["code"], &error["message"]), (&json!(-32000), &json!("transaction not found")));

    let echoed =
        ok(addr, "debug_traceCall", json!([{"to": CONTRACT_B}, "0x2", {"tracer": "prestateTracer"}])).await;
    assert_eq!(echoed["tracer"], json!("prestateTracer"));
    assert_eq!(fake.last_seen(), format!("trace call Some(Call({CONTRACT_B:?})) 0x2"));
    ok(addr, "debug_traceCall", json!([{"to": CONTRACT_B}])).await;
    assert_eq!(fake.last_seen(), format!("trace call Some(Call({CONTRACT_B:?})) latest"));
    for (options, message) in [
        (
            json!({"stateOverrides": {ALICE.to_string(): {"balance": "0x1"}}}),
            "state overrides are not supported",
        ),
        (json!({"blockOverrides": {"number": "0x9"}}), "block overrides are not supported"),
        (json!({"txIndex": "0x0"}), "txIndex is not supported"),
    ] {
        let error = err(addr, "debug_traceCall", json!([{"to": CONTRACT_B}, "latest", options])).await;
        assert_eq!((&error["code"], &error["message"]), (&json!(-32602), &json!(message)));
    }
    assert_eq!(
        err(addr, "debug_traceCall", json!([{"to": CONTRACT_B}, "0x63"])).await["code"],
        json!(-32001)
    );
}

#[tokio::test]
async fn txpool_and_modules() {
    let (_fake, handle) = server().await;
    let addr = http(&handle);
    let alice = ALICE.to_checksum(None);
    let content = ok(addr, "txpool_content", json!([])).await;
    assert_eq!(content["pending"][&alice]["5"]["nonce"], json!("0x5"));
    assert_eq!(content["pending"][&alice]["6"]["from"], json!(ALICE));
    assert_eq!(content["pending"][&alice]["6"]["blockHash"], Value::Null);
    assert_eq!(content["queued"][&alice]["9"]["nonce"], json!("0x9"));
    assert_eq!(ok(addr, "txpool_status", json!([])).await, json!({"pending": "0x2", "queued": "0x1"}));
    let inspect = ok(addr, "txpool_inspect", json!([])).await;
    assert_eq!(
        inspect,
        json!({
            "pending": {&alice: {
                "5": "contract creation: 5 wei + 50000 gas × 1000000007 wei",
                "6": "contract creation: 6 wei + 50000 gas × 1000000007 wei",
            }},
            "queued": {&alice: {"9": "contract creation: 9 wei + 50000 gas × 1000000007 wei"}},
        })
    );
    assert_eq!(err(addr, "txpool_status", json!([1])).await["code"], json!(-32602));
    assert_eq!(
        ok(addr, "rpc_modules", json!([])).await,
        json!({"debug": "1.0", "eth": "1.0", "net": "1.0", "rpc": "1.0", "txpool": "1.0", "web3": "1.0"})
    );
}

#[tokio::test]
async fn new_pending_transactions_sends_hashes_or_whole_transactions() {
    let (fake, handle) = server().await;
    let client = ws(&handle).await;
    let subscribe =
        |p: Vec<Value>| client.subscribe::<Value, _>("eth_subscribe", params(p), "eth_unsubscribe");
    let mut hashes = subscribe(vec![json!("newPendingTransactions")]).await.unwrap();
    let mut also_hashes = subscribe(vec![json!("newPendingTransactions"), json!(false)]).await.unwrap();
    let mut full = subscribe(vec![json!("newPendingTransactions"), json!(true)]).await.unwrap();
    let mut pooled = rpc_transaction(&fake.block(1), 1);
    (pooled.block_hash, pooled.block_number, pooled.transaction_index) = (None, None, None);
    let hash = *pooled.inner.tx_hash();
    fake.pending.send(pooled).unwrap();
    assert_eq!(next(&mut hashes).await, json!(hash));
    assert_eq!(next(&mut also_hashes).await, json!(hash));
    let whole = next(&mut full).await;
    assert_eq!(
        (&whole["hash"], &whole["from"], &whole["blockHash"]),
        (&json!(hash), &json!(ALICE), &Value::Null)
    );
    // Chain notifications do not reach them (they do not even listen).
    let block = executed(4, fake.block(3).hash, 0, vec![]);
    assert!(fake.chain.send(ChainNotification::Committed { new: chain(vec![block]) }).is_err());
    assert_quiet(&mut hashes).await;
}

/// A bare WebSocket client, to read the server's frames exactly as sent.
struct RawWs {
    stream: TcpStream,
}

impl RawWs {
    async fn connect(addr: SocketAddr) -> Self {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        // Read the handshake answer byte by byte so no frame byte is consumed with it.
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(stream.read_u8().await.unwrap());
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        Self { stream }
    }

    async fn send(&mut self, text: &str) {
        let payload = text.as_bytes();
        let mut frame = vec![0x81];
        if payload.len() < 126 {
            frame.push(0x80 | payload.len() as u8);
        } else {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        // A zero mask key: masking is mandatory for clients, the key is free.
        frame.extend_from_slice(&[0; 4]);
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame).await.unwrap();
    }

    /// The next text message, as JSON (control frames are skipped).
    async fn recv(&mut self) -> Value {
        loop {
            let opcode = self.stream.read_u8().await.unwrap() & 0x0f;
            let len = match self.stream.read_u8().await.unwrap() & 0x7f {
                126 => u64::from(self.stream.read_u16().await.unwrap()),
                127 => self.stream.read_u64().await.unwrap(),
                n => u64::from(n),
            };
            let mut payload = vec![0; len as usize];
            self.stream.read_exact(&mut payload).await.unwrap();
            if opcode == 0x1 {
                return serde_json::from_slice(&payload).unwrap();
            }
        }
    }
}

/// On a current-thread runtime the subscription task cannot run while the test sends, so a channel of
/// capacity 2 deterministically lags: the subscription is closed with an error notification, the server
/// keeps serving, and a new subscription works.
#[tokio::test(flavor = "current_thread")]
async fn lagging_subscriber_is_closed_not_crashing() {
    let (fake, handle) = server_with(EthRpcConfig::ephemeral(), 2).await;
    let mut raw = RawWs::connect(handle.ws_addr().unwrap()).await;
    raw.send(r#"{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}"#).await;
    let answer = raw.recv().await;
    let id = answer["result"].as_str().unwrap().to_owned();
    assert!(id.starts_with("0x") && id.len() == 34, "{answer}");

    let mut parent = fake.block(3).hash;
    for number in 4..14 {
        let block = executed(number, parent, 0, vec![]);
        parent = block.hash;
        fake.chain.send(ChainNotification::Committed { new: chain(vec![block]) }).unwrap();
    }
    // Whatever heads got through, the subscription then ends with an error notification.
    let error = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let message = raw.recv().await;
            assert_eq!(message["method"], json!("eth_subscription"), "{message}");
            assert_eq!(message["params"]["subscription"], json!(id));
            if let Some(error) = message["params"].get("error") {
                return error.clone();
            }
        }
    })
    .await
    .expect("the lagging subscription must be closed");
    let error = error.as_str().unwrap();
    assert!(error.starts_with("subscription lagged behind the chain and missed "), "{error}");

    // The connection and the server keep working; unsubscribing the closed subscription answers false.
    raw.send(&format!(r#"{{"jsonrpc":"2.0","id":2,"method":"eth_unsubscribe","params":["{id}"]}}"#)).await;
    assert_eq!(raw.recv().await["result"], json!(false));
    let client = ws(&handle).await;
    let number: String = client.request("eth_blockNumber", ArrayParams::new()).await.unwrap();
    assert_eq!(number, "0x3");
    let mut again: Subscription<Value> =
        client.subscribe("eth_subscribe", params(vec![json!("newHeads")]), "eth_unsubscribe").await.unwrap();
    let block = executed(14, parent, 0, vec![]);
    fake.chain.send(ChainNotification::Committed { new: chain(vec![block.clone()]) }).unwrap();
    assert_eq!(next(&mut again).await["hash"], json!(block.hash));
}

#[tokio::test]
async fn methods_work_over_websocket() {
    let (fake, handle) = server().await;
    let client = ws(&handle).await;
    let balance: U256 =
        client.request("eth_getBalance", params(vec![json!(ALICE), json!("safe")])).await.unwrap();
    assert_eq!(balance, U256::from(1002));
    let block: Option<Block> =
        client.request("eth_getBlockByNumber", params(vec![json!("0x1"), json!(true)])).await.unwrap();
    let block = block.unwrap();
    assert_eq!(block.header.hash, fake.block(1).hash);
    assert_eq!(block.transactions.len(), 2);
    *fake.pool.lock().unwrap() = Some(PoolError::NonceTooLow { expected: 2, got: 1 });
    let result: Result<B256, _> = client.request("eth_sendRawTransaction", params(vec![json!("0x01")])).await;
    match result {
        Err(jsonrpsee::core::client::Error::Call(error)) => {
            assert_eq!(error.code(), -32000);
            assert_eq!(error.message(), "nonce too low: next nonce 2, tx nonce 1");
        }
        other => panic!("{other:?}"),
    }
}
