//! The node's own peg-in work per 1,000 deposits, without a network:
//!
//! * claim: from a Bitcoin block reaching the required depth to its claims being in the next block's
//!   payload attributes: `PeginRules::select` on an in-memory database that recorded a Bitcoin block of
//!   1,000 deposits `pegin_confirmations` deep, then `pegin_withdrawals` of the claims (the goal is
//!   under 5 ms);
//! * record: what the watcher commits for that block (`connect_bitcoin_block` of its 1,000 deposits);
//! * scan: `scan_block` of a Bitcoin block of 2,000 transactions, 1,000 of them deposits.
//!
//! Run: `cargo bench -p alys-bridge --bench pegin` (add `-- 50` for 50 samples instead of 200).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmark code"
)]

use std::{
    collections::HashSet,
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use alloy_primitives::{Address, B256};
use alys_bitcoin::{BitcoinAuth, BitcoinClient, BitcoinClientConfig};
use alys_bridge::pegin::{PeginRules, rules::known_scripts, scan_block};
use alys_governance::{
    Decisions, Federation, FederationHistory, ProposalBook, RuntimeParameters, RuntimeView, update_digest,
};
use alys_primitives::BlockRef;
use alys_proto::governance::v1::{FederationConfig, FederationMember, FederationUpdate};
use alys_storage::{DepositRecord, Storage};
use bitcoin::{
    Amount, Block, BlockHash, CompactTarget, Network, OutPoint, ScriptBuf, Sequence, Transaction, TxIn,
    TxMerkleNode, TxOut, Txid, Witness,
    absolute::LockTime,
    block::{Header, Version as BlockVersion},
    hashes::Hash as _,
    script::PushBytesBuf,
    secp256k1::{Message, PublicKey, Secp256k1, SecretKey},
    transaction::Version,
};

const DEPOSITS: usize = 1_000;
const BITCOIN_HEIGHT: u64 = 100;

fn secret(byte: u8) -> SecretKey {
    SecretKey::from_slice(&[byte; 32]).unwrap()
}

/// The devnet-shaped 2-of-3 federation, from height 0, signed by a governance key.
fn federation() -> Federation {
    let secp = Secp256k1::new();
    let members = (1..=3u8)
        .map(|n| FederationMember {
            member_id: format!("member-{n}"),
            public_key: PublicKey::from_secret_key(&secp, &secret(n)).serialize().to_vec(),
            weight: 1,
            active: true,
        })
        .collect();
    let mut update = FederationUpdate {
        update_type: 1,
        members,
        effective_height: 0,
        update_signature: Vec::new(),
        config: Some(FederationConfig {
            signature_threshold: 2,
            member_count: 3,
            parameters: Default::default(),
        }),
    };
    let digest = Message::from_digest(update_digest(&update));
    update.update_signature = secp.sign_ecdsa(&digest, &secret(0x99)).serialize_compact().to_vec();
    Federation::from_update(&update, &PublicKey::from_secret_key(&secp, &secret(0x99)), Network::Regtest)
        .unwrap()
}

fn runtime(federation: &Federation) -> RuntimeView {
    let mut history = FederationHistory::default();
    history.insert(federation.clone()).unwrap();
    // The defaults: 6 confirmations, 10,000 sats minimum.
    let book = ProposalBook::new(RuntimeParameters::with_max_blocks_without_pow(10));
    let (_publisher, view) = tokio::sync::watch::channel(Arc::new(Decisions::new(book, history)));
    RuntimeView::new(view)
}

/// A one-input transaction spending outpoint `n` with a P2WPKH-sized witness.
fn transaction(n: u32, output: Vec<TxOut>) -> Transaction {
    let mut spent = [0u8; 32];
    spent[..4].copy_from_slice(&n.to_be_bytes());
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(Txid::from_byte_array(spent), 0),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[vec![0x30; 72], vec![0x02; 33]]),
        }],
        output,
    }
}

fn p2wpkh(n: u32) -> ScriptBuf {
    let mut hash = [0u8; 20];
    hash[..4].copy_from_slice(&n.to_be_bytes());
    ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array(hash))
}

/// A wallet's deposit: federation output, OP_RETURN naming an EVM address, change.
fn deposit(n: u32, federation: &ScriptBuf) -> Transaction {
    let evm = Address::left_padding_from(&n.to_be_bytes());
    let data = PushBytesBuf::try_from(evm.to_vec()).unwrap();
    transaction(
        n,
        vec![
            TxOut { value: Amount::from_sat(100_000 + u64::from(n)), script_pubkey: federation.clone() },
            TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::new_op_return(data) },
            TxOut { value: Amount::from_sat(900_000), script_pubkey: p2wpkh(n) },
        ],
    )
}

/// A payment with change, to nobody the bridge knows.
fn payment(n: u32) -> Transaction {
    transaction(
        n,
        vec![
            TxOut { value: Amount::from_sat(50_000), script_pubkey: p2wpkh(n) },
            TxOut { value: Amount::from_sat(940_000), script_pubkey: p2wpkh(n + 1) },
        ],
    )
}

fn block(height: u64, txs: Vec<Transaction>) -> Block {
    let coinbase = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: ScriptBuf::from_bytes(vec![0x02, height as u8, (height >> 8) as u8]),
            ..Default::default()
        }],
        output: vec![TxOut { value: Amount::from_sat(5_000_000_000), script_pubkey: p2wpkh(0) }],
    };
    Block {
        header: Header {
            version: BlockVersion::TWO,
            prev_blockhash: BlockHash::all_zeros(),
            merkle_root: TxMerkleNode::all_zeros(),
            time: height as u32,
            bits: CompactTarget::from_consensus(0x207f_ffff),
            nonce: 0,
        },
        txdata: std::iter::once(coinbase).chain(txs).collect(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn report(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let p50 = percentile(&samples, 0.50);
    println!(
        "{name}: n={} p50={p50:?} p99={:?} max={:?}",
        samples.len(),
        percentile(&samples, 0.99),
        samples.last().unwrap()
    );
    p50
}

fn sample(n: usize, mut f: impl FnMut() -> Duration) -> Vec<Duration> {
    for _ in 0..n.div_ceil(10) {
        f();
    }
    (0..n).map(|_| f()).collect()
}

/// The database after the watcher recorded `deposits` at [`BITCOIN_HEIGHT`] and enough blocks on top.
fn recorded(deposits: &[DepositRecord], confirmations: u64) -> Storage {
    let storage = Storage::in_memory().unwrap();
    let tx = storage.write().unwrap();
    tx.connect_bitcoin_block(BITCOIN_HEIGHT, deposits[0].bitcoin_block, deposits).unwrap();
    for height in BITCOIN_HEIGHT + 1..BITCOIN_HEIGHT + confirmations {
        tx.connect_bitcoin_block(height, B256::from(block(height, vec![]).block_hash().to_byte_array()), &[])
            .unwrap();
    }
    tx.commit().unwrap();
    storage
}

fn main() {
    let samples: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(200);
    let federation = federation();
    let runtime = runtime(&federation);
    let scripts: HashSet<ScriptBuf> = known_scripts(&runtime);
    let script = federation.address.script_pubkey();

    // A block of 2,000 transactions, every other one a deposit.
    let txs: Vec<Transaction> =
        (0..2 * DEPOSITS as u32).map(|n| if n % 2 == 0 { deposit(n, &script) } else { payment(n) }).collect();
    let bitcoin_block = block(BITCOIN_HEIGHT, txs);
    let deposits = scan_block(&bitcoin_block, BITCOIN_HEIGHT, &scripts, 0);
    assert_eq!(deposits.len(), DEPOSITS);
    assert!(deposits.iter().all(|d| !d.is_rejected()));

    let confirmations = u64::from(runtime.state_at(1).parameters.pegin_confirmations);
    let storage = recorded(&deposits, confirmations);
    let config = BitcoinClientConfig::new(
        "http://127.0.0.1:1",
        BitcoinAuth::UserPassword { user: "bench".to_owned(), password: "bench".to_owned() },
    );
    let rules = PeginRules::new(runtime, Some(BitcoinClient::new(config).unwrap()));
    let parent = BlockRef { height: 0, hash: B256::repeat_byte(0xee) };
    let claims = rules.select(&storage.read().unwrap(), 1, parent).unwrap();
    assert_eq!(claims.len(), DEPOSITS, "every deposit is deep enough and claimable");
    assert_eq!(alys_consensus::pegin_withdrawals(&claims).len(), DEPOSITS);

    println!("peg-in, per {DEPOSITS} deposits ({samples} samples each):");
    let claim = report(
        "  claim (select + pegin_withdrawals)",
        sample(samples, || {
            let start = Instant::now();
            let read = storage.read().unwrap();
            let claims = rules.select(&read, 1, parent).unwrap();
            let withdrawals = alys_consensus::pegin_withdrawals(&claims);
            let elapsed = start.elapsed();
            assert_eq!(black_box(withdrawals).len(), DEPOSITS);
            elapsed
        }),
    );
    report(
        "    of which select",
        sample(samples, || {
            let start = Instant::now();
            let claims = rules.select(&storage.read().unwrap(), 1, parent).unwrap();
            let elapsed = start.elapsed();
            black_box(claims);
            elapsed
        }),
    );
    report(
        "  record (connect_bitcoin_block + commit)",
        sample(samples.min(50), || {
            let storage = Storage::in_memory().unwrap();
            let start = Instant::now();
            let tx = storage.write().unwrap();
            tx.connect_bitcoin_block(BITCOIN_HEIGHT, deposits[0].bitcoin_block, &deposits).unwrap();
            tx.commit().unwrap();
            start.elapsed()
        }),
    );
    report(
        "  scan_block (2,000 transactions)",
        sample(samples, || {
            let start = Instant::now();
            let records = scan_block(black_box(&bitcoin_block), BITCOIN_HEIGHT, &scripts, 0);
            let elapsed = start.elapsed();
            assert_eq!(black_box(records).len(), DEPOSITS);
            elapsed
        }),
    );
    let goal = Duration::from_millis(5);
    println!(
        "claim p50 {claim:?} against the goal of {goal:?}: {}",
        if claim < goal { "met" } else { "MISSED" }
    );
}
