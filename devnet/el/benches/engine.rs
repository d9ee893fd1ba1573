//! Engine throughput: blocks of 1,000 plain transfers and of 200 ERC-20 transfers are built on engine A
//! (forkchoiceUpdated with attributes), validated on engine B (newPayload), and the same transactions are
//! executed by bare revm on an in-memory database. Prints tx/s, gas/s, newPayload p50/p99 and the ratio of
//! engine time to bare revm time. Run with `cargo bench -p alys-devnet-el`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmark code"
)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope, transaction::SignerRecoverable};
use alloy_eips::{BlockId, BlockNumberOrTag, eip2718::Encodable2718};
use alloy_evm::{Evm, EvmEnv, EvmFactory, FromRecoveredTx, eth::EthEvmFactory};
use alloy_network::TxSignerSync;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, keccak256};
use alloy_rpc_types_engine::{ExecutionPayload, ForkchoiceState, PayloadAttributes, PayloadStatusEnum};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{SolCall, sol};
use alys_chainspec::{ChainSpec, dev::DEV_PRIVATE_KEYS};
use alys_devnet_el::{Engine, EngineConfig, EngineHandle};
use alys_el_api::{EngineBackend, EthBackend};
use alys_el_pool::PoolConfig;
use revm::{
    DatabaseCommit,
    context::TxEnv,
    database::{CacheDB, EmptyDB},
    state::AccountInfo,
};

sol! {
    function transfer(address to, uint256 value) returns (bool);
}

const GWEI: u128 = 1_000_000_000;
const BENCH_TOKEN: &str = include_str!("../../../contracts/artifacts/BenchToken.json");

fn sign(
    key: &PrivateKeySigner,
    nonce: u64,
    to: TxKind,
    input: Bytes,
    gas_limit: u64,
    value: u64,
) -> TxEnvelope {
    let mut tx = TxEip1559 {
        chain_id: alys_chainspec::DEVNET_CHAIN_ID,
        nonce,
        gas_limit,
        max_fee_per_gas: 100 * GWEI,
        max_priority_fee_per_gas: GWEI,
        to,
        value: U256::from(value),
        access_list: Default::default(),
        input,
    };
    let signature = key.sign_transaction_sync(&mut tx).unwrap();
    tx.into_signed(signature).into()
}

struct Bare {
    db: Option<CacheDB<EmptyDB>>,
}

impl Bare {
    fn new(spec: &ChainSpec) -> Self {
        let mut db = CacheDB::new(EmptyDB::default());
        for (address, account) in &spec.genesis().alloc {
            db.insert_account_info(
                *address,
                AccountInfo {
                    balance: account.balance,
                    nonce: account.nonce.unwrap_or_default(),
                    ..Default::default()
                },
            );
        }
        Self { db: Some(db) }
    }

    /// Executes a block's transactions with bare revm; returns the time spent.
    fn execute(&mut self, engine_env: EvmEnv, txs: &[(TxEnvelope, Address)]) -> Duration {
        let db = self.db.take().unwrap();
        let start = Instant::now();
        let mut evm = EthEvmFactory::default().create_evm(db, engine_env);
        for (tx, sender) in txs {
            let result = evm.transact_raw(TxEnv::from_recovered_tx(tx, *sender)).unwrap();
            assert!(result.result.is_success());
            evm.db_mut().commit(result.state);
        }
        let (db, _) = evm.finish();
        let elapsed = start.elapsed();
        self.db = Some(db);
        elapsed
    }
}

struct Figures {
    name: &'static str,
    txs: usize,
    gas: u64,
    build: Vec<Duration>,
    new_payload: Vec<Duration>,
    bare: Vec<Duration>,
    recovery: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() - 1) * p / 100]
}

impl Figures {
    fn print(&mut self) {
        self.build.sort();
        self.new_payload.sort();
        self.bare.sort();
        self.recovery.sort();
        let build = percentile(&self.build, 50);
        let np = percentile(&self.new_payload, 50);
        let bare = percentile(&self.bare, 50);
        let per_sec = |d: Duration, x: f64| x / d.as_secs_f64();
        println!(
            "== {} ({} blocks of {} txs, {} gas each, medians)",
            self.name,
            self.build.len(),
            self.txs,
            self.gas
        );
        println!(
            "  build (forkchoiceUpdated+attributes): {:>8.2?}  {:>10.0} tx/s  {:>8.1} Mgas/s",
            build,
            per_sec(build, self.txs as f64),
            per_sec(build, self.gas as f64) / 1e6
        );
        println!(
            "  newPayload on engine B:               p50 {:>8.2?}  p99 {:>8.2?}  {:>10.0} tx/s  {:>8.1} Mgas/s",
            np,
            percentile(&self.new_payload, 99),
            per_sec(np, self.txs as f64),
            per_sec(np, self.gas as f64) / 1e6
        );
        println!(
            "  bare revm (same txs, in-memory db):   {:>8.2?}  {:>10.0} tx/s  {:>8.1} Mgas/s",
            bare,
            per_sec(bare, self.txs as f64),
            per_sec(bare, self.gas as f64) / 1e6
        );
        println!(
            "  sender recovery alone (one thread):   {:>8.2?}  (part of newPayload, not of bare revm)",
            percentile(&self.recovery, 50)
        );
        println!(
            "  ratio engine/bare revm: build {:.2}x, newPayload {:.2}x (goal < 1.5x)",
            build.as_secs_f64() / bare.as_secs_f64(),
            np.as_secs_f64() / bare.as_secs_f64()
        );
    }
}

struct Bench {
    a: EngineHandle,
    b: EngineHandle,
    bare: Bare,
    spec: Arc<ChainSpec>,
}

impl Bench {
    /// Pools `txs` on A, builds a block, imports it on A and B; returns (build, newPayload on B, bare revm).
    async fn block(&mut self, txs: Vec<TxEnvelope>) -> (Duration, Duration, Duration, Duration, u64) {
        for tx in &txs {
            self.a.send_raw_transaction(tx.encoded_2718().into()).await.unwrap();
        }
        let parent = self.a.block(BlockId::Number(BlockNumberOrTag::Latest), false).await.unwrap().unwrap();
        let fcs = |head| ForkchoiceState {
            head_block_hash: head,
            safe_block_hash: B256::ZERO,
            finalized_block_hash: B256::ZERO,
        };
        let attributes = PayloadAttributes {
            timestamp: parent.header.inner.timestamp + 2,
            prev_randao: B256::ZERO,
            suggested_fee_recipient: Address::repeat_byte(0xfe),
            withdrawals: Some(vec![]),
            parent_beacon_block_root: Some(B256::ZERO),
            slot_number: None,
            target_gas_limit: None,
        };
        let start = Instant::now();
        let updated = self.a.fork_choice_updated(fcs(parent.header.hash), Some(attributes)).await.unwrap();
        let build = start.elapsed();
        let built = self.a.get_payload(updated.payload_id.unwrap()).await.unwrap();
        let block = &built.block.block;
        assert_eq!(block.body.transactions.len(), txs.len(), "every transaction fits");
        let (payload, sidecar) = ExecutionPayload::from_block_slow(block);
        assert_eq!(
            self.a.new_payload(payload.clone(), sidecar.clone()).await.unwrap().status,
            PayloadStatusEnum::Valid
        );
        self.a.fork_choice_updated(fcs(built.block.hash), None).await.unwrap();
        let start = Instant::now();
        let status = self.b.new_payload(payload, sidecar).await.unwrap();
        let new_payload = start.elapsed();
        assert_eq!(status.status, PayloadStatusEnum::Valid);
        self.b.fork_choice_updated(fcs(built.block.hash), None).await.unwrap();

        let start = Instant::now();
        let recovered: Vec<(TxEnvelope, Address)> =
            block.body.transactions.iter().map(|tx| (tx.clone(), tx.recover_signer().unwrap())).collect();
        let recovery = start.elapsed();
        let forks = alys_devnet_el::AlysForks::new(&self.spec);
        let blob_params = forks.blob_params_at(block.header.timestamp);
        let env = EvmEnv::for_eth_block(&block.header, &forks, self.spec.chain_id(), blob_params);
        let bare = self.bare.execute(env, &recovered);
        (build, new_payload, bare, recovery, block.header.gas_used)
    }
}

async fn run() {
    let spec = Arc::new(ChainSpec::devnet().unwrap());
    let pool = PoolConfig {
        max_account_slots: 1_000,
        max_size: 20_000,
        ..PoolConfig::new(spec.chain_id(), 30_000_000)
    };
    let config = EngineConfig::new(Arc::clone(&spec)).with_pool(pool);
    let mut bench = Bench {
        a: Engine::spawn(config.clone()).unwrap(),
        b: Engine::spawn(config).unwrap(),
        bare: Bare::new(&spec),
        spec: Arc::clone(&spec),
    };
    let keys: Vec<PrivateKeySigner> =
        DEV_PRIVATE_KEYS.iter().map(|k| PrivateKeySigner::from_bytes(k).unwrap()).collect();
    let mut nonces = [0u64; 10];
    let rounds = 20;

    // Plain transfers: 10 senders x 100, each to a fresh account.
    let mut figures = Figures {
        name: "1,000 transfers",
        txs: 1_000,
        gas: 0,
        build: vec![],
        new_payload: vec![],
        bare: vec![],
        recovery: vec![],
    };
    for round in 0..rounds {
        let txs: Vec<TxEnvelope> = (0..1_000u64)
            .map(|i| {
                let sender = (i % 10) as usize;
                let to = Address::from_word(keccak256((round as u64 * 1_000 + i).to_be_bytes()));
                let nonce = nonces[sender];
                nonces[sender] += 1;
                sign(&keys[sender], nonce, TxKind::Call(to), Bytes::new(), 21_000, 1)
            })
            .collect();
        let (build, np, bare, recovery, gas) = bench.block(txs).await;
        figures.gas = gas;
        if round > 0 {
            figures.build.push(build);
            figures.new_payload.push(np);
            figures.bare.push(bare);
            figures.recovery.push(recovery);
        }
    }
    figures.print();

    // ERC-20: deploy BenchToken, then 200 transfers per block to fresh holders.
    let artifact: serde_json::Value = serde_json::from_str(BENCH_TOKEN).unwrap();
    let code = alloy_primitives::hex::decode(artifact["bytecode"].as_str().unwrap()).unwrap();
    let mut init = code;
    init.extend_from_slice(&U256::from(10u128.pow(30)).to_be_bytes::<32>());
    let deployer = 9usize;
    let token = keys[deployer].address().create(nonces[deployer]);
    let deploy = sign(&keys[deployer], nonces[deployer], TxKind::Create, init.into(), 3_000_000, 0);
    nonces[deployer] += 1;
    bench.block(vec![deploy]).await;
    let mut figures = Figures {
        name: "200 ERC-20 transfers",
        txs: 200,
        gas: 0,
        build: vec![],
        new_payload: vec![],
        bare: vec![],
        recovery: vec![],
    };
    for round in 0..rounds {
        let txs: Vec<TxEnvelope> = (0..200u64)
            .map(|i| {
                let to = Address::from_word(keccak256((1_000_000 + round as u64 * 1_000 + i).to_be_bytes()));
                let input = transferCall { to, value: U256::from(1_000) }.abi_encode();
                let nonce = nonces[deployer];
                nonces[deployer] += 1;
                sign(&keys[deployer], nonce, TxKind::Call(token), input.into(), 80_000, 0)
            })
            .collect();
        let (build, np, bare, recovery, gas) = bench.block(txs).await;
        figures.gas = gas;
        if round > 0 {
            figures.build.push(build);
            figures.new_payload.push(np);
            figures.bare.push(bare);
            figures.recovery.push(recovery);
        }
    }
    figures.print();
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let start = Instant::now();
    runtime.block_on(run());
    println!("benchmark ran in {:.1?}", start.elapsed());
}
