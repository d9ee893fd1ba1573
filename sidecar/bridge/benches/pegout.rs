//! Peg-out cost at 1,000 released burns over 10,000 federation UTXOs, the goal under 50 ms for each
//! step, in two parts:
//!
//! - the transaction rules alone (`alys_bridge::pegout::tx::{build, check}`), on burns and UTXOs in
//!   memory: the slot author builds; every importer checks, which rebuilds from the same burns and
//!   UTXOs and compares;
//! - the consensus path (`alys_bridge::pegout::rules::PegoutRules::{propose, verify}`), on an
//!   in-memory database whose canonical chain minted the UTXOs (peg-in claims paying the federation's
//!   P2WSH script) and whose ledger released the burns (final and canonical): the author reads the
//!   released burns and the UTXO set at its parent and builds; the importer reads the listed burns and
//!   the same UTXO set and rebuilds. Governance's defaults, a 2-of-3 federation in force.
//!
//! Run: `cargo bench -p alys-bridge --bench pegout` (add `-- 20` for 20 samples instead of 50).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmark code"
)]

use std::{
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use alloy_primitives::{Address as EvmAddress, B256, Bytes, U256, keccak256};
use alys_bridge::pegout::{
    rules::PegoutRules,
    tx::{PegoutParams, SpendableUtxo, build, check},
};
use alys_burns::Burn;
use alys_contracts::WEI_PER_SAT;
use alys_governance::{
    Decisions, Federation, FederationHistory, ProposalBook, RuntimeParameters, RuntimeView, update_digest,
};
use alys_primitives::{Approvals, BlockRef, ConsensusHeader, PegInClaim, PegInOutput, SignedBlock};
use alys_proto::governance::v1::{FederationConfig, FederationMember, FederationUpdate};
use alys_storage::{FederationRead as _, Storage, StorageError, WriteTx};
use bitcoin::{
    Network, OutPoint, PublicKey, ScriptBuf, Txid,
    hashes::Hash as _,
    opcodes::all::OP_CHECKMULTISIG,
    script::Builder,
    secp256k1::{Message, Secp256k1, SecretKey},
};

const BURNS: u64 = 1_000;
const UTXOS: u32 = 10_000;
/// Consensus blocks in the stored chain: the first [`PEGIN_BLOCKS`] mint the UTXOs, every one holds
/// `BURNS / CHAIN_BLOCKS` burns.
const CHAIN_BLOCKS: u64 = 100;
const PEGIN_BLOCKS: u32 = 10;
const TO: [&str; 2] = [
    "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
    "bcrt1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qzf4jry",
];

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name}: n={} p50={:?} p99={:?} max={:?}",
        samples.len(),
        at(0.5),
        at(0.99),
        samples[samples.len() - 1]
    );
}

fn time<T>(samples: usize, mut f: impl FnMut() -> T) -> Vec<Duration> {
    (0..samples)
        .map(|_| {
            let started = Instant::now();
            black_box(f());
            started.elapsed()
        })
        .collect()
}

/// The UTXO `n` of the set: its outpoint (txid in Bitcoin's internal byte order) and value.
fn utxo(n: u32) -> (B256, u32, u64) {
    (B256::from(U256::from(n)), n % 3, 100_000 + u64::from(n % 997) * 1_000)
}

/// Burn `n` (at least 1,000,000 sats, governance's default minimum), in execution block
/// `block_number` whose hash is `block_hash`.
fn burn(n: u64, block_number: u64, block_hash: B256) -> Burn {
    Burn {
        block_number,
        block_hash,
        log_index: n % 10,
        tx_hash: B256::from(U256::from(n)),
        tx_index: n,
        sender: EvmAddress::with_last_byte(n as u8),
        bitcoin_address: Bytes::copy_from_slice(TO[(n % 2) as usize].as_bytes()),
        value: U256::from(1_000_000 + n * 13) * U256::from(WEI_PER_SAT),
    }
}

fn main() {
    let samples: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(50);
    transaction_rules(samples);
    println!();
    consensus_path(samples);
}

/// `build` and `check` on burns and UTXOs in memory.
fn transaction_rules(samples: usize) {
    let secp = Secp256k1::new();
    let mut keys: Vec<PublicKey> = (1..=3u8)
        .map(|n| PublicKey::new(SecretKey::from_slice(&[n; 32]).unwrap().public_key(&secp)))
        .collect();
    keys.sort_by_key(|k| k.to_bytes());
    let witness_script = keys
        .iter()
        .fold(Builder::new().push_int(2), |b, k| b.push_key(k))
        .push_int(3)
        .push_opcode(OP_CHECKMULTISIG)
        .into_script();
    let script_pubkey = ScriptBuf::new_p2wsh(&witness_script.wscript_hash());
    let utxos: Vec<SpendableUtxo> = (0..UTXOS)
        .map(|n| {
            let (txid, vout, amount_sats) = utxo(n);
            SpendableUtxo {
                outpoint: OutPoint::new(Txid::from_byte_array(txid.0), vout),
                amount_sats,
                script_pubkey: script_pubkey.clone(),
                witness_script: witness_script.clone(),
                threshold: 2,
            }
        })
        .collect();
    let burns: Vec<Burn> =
        (0..BURNS).map(|n| burn(n, 100 + n / 10, B256::from(U256::from(100 + n / 10)))).collect();
    let params = PegoutParams {
        network: Network::Regtest,
        fee_rate_sat_vb: 5,
        change_script: script_pubkey,
        max_outputs: 1_000,
        min_sats: 546,
    };

    let plan = build(&burns, &utxos, &params);
    let proposal = plan.proposal.unwrap();
    println!(
        "{} burns over {} UTXOs: {} paid in one transaction (the rest wait: it stays under Bitcoin Core's \
         standard size once signed), {} inputs, {} outputs, {} vB unsigned, fee {} sats",
        BURNS,
        UTXOS,
        proposal.payments.len(),
        proposal.tx.input.len(),
        proposal.tx.output.len(),
        proposal.tx.vsize(),
        proposal.fee_sats
    );

    report("build (author)", time(samples, || build(black_box(&burns), black_box(&utxos), &params)));
    report(
        "check (importer: rebuild and compare)",
        time(samples, || {
            check(&proposal.tx, 5, (1, 100), black_box(&burns), black_box(&utxos), &params).unwrap()
        }),
    );
}

// ---------------------------------------------------------------------------------------------------
// The consensus path: a stored chain, a ledger, governance's decisions
// ---------------------------------------------------------------------------------------------------

fn secret(byte: u8) -> SecretKey {
    SecretKey::from_slice(&[byte; 32]).unwrap()
}

/// The 2-of-3 federation of member keys 1, 2, 3 (those of the first part), signed by governance, in
/// force from height 0.
fn federation() -> Federation {
    let secp = Secp256k1::new();
    let members = (1..=3u8)
        .map(|n| FederationMember {
            member_id: format!("member-{n}"),
            public_key: secret(n).public_key(&secp).serialize().to_vec(),
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
    Federation::from_update(&update, &secret(0x99).public_key(&secp), Network::Regtest).unwrap()
}

/// Governance's decisions as the stream actor publishes them: default parameters, `federation`.
fn runtime(federation: &Federation) -> RuntimeView {
    let book = ProposalBook::new(RuntimeParameters::with_max_blocks_without_pow(10));
    let mut history = FederationHistory::default();
    assert!(history.insert(federation.clone()).unwrap());
    let (publisher, view) = tokio::sync::watch::channel(Arc::new(Decisions::new(book, history)));
    // The view keeps the last value once the publisher is gone.
    drop(publisher);
    RuntimeView::new(view)
}

fn write<T>(storage: &Storage, f: impl FnOnce(&WriteTx) -> Result<T, StorageError>) -> T {
    let tx = storage.write().unwrap();
    let out = f(&tx).unwrap();
    tx.commit().unwrap();
    out
}

/// The execution block a consensus block at `height` carries.
fn execution_hash(height: u64) -> B256 {
    keccak256(height.to_be_bytes())
}

/// A consensus block at `height` on `parent` claiming `pegins`.
fn block(parent: B256, height: u64, pegins: Vec<PegInClaim>) -> SignedBlock {
    SignedBlock {
        header: ConsensusHeader {
            parent_hash: parent,
            parent_seal: Default::default(),
            height,
            slot: height,
            author: 0,
            execution_block_hash: execution_hash(height),
            pegins,
            auxpow: Bytes::new(),
            pegout: None,
        },
        execution_block: Bytes::new(),
        execution_requests: vec![],
        author_signature: Bytes::new(),
        approvals: Approvals { signers: Bytes::new(), signature: Bytes::new() },
    }
}

/// The database: [`CHAIN_BLOCKS`] canonical blocks, the first [`PEGIN_BLOCKS`] claiming one deposit
/// each per UTXO (the same outpoints and values as the first part) to `federation`; [`BURNS`] burns in
/// their execution blocks, the head finalized and the burns released. Returns the head.
fn stored_chain(storage: &Storage, federation: &Federation) -> BlockRef {
    let script = Bytes::copy_from_slice(federation.address.script_pubkey().as_bytes());
    let per_block = UTXOS / PEGIN_BLOCKS;
    let mut parent = BlockRef { height: 0, hash: B256::repeat_byte(0xee) };
    for height in 1..=CHAIN_BLOCKS {
        let pegins = match u32::try_from(height - 1) {
            Ok(index) if index < PEGIN_BLOCKS => (index * per_block..(index + 1) * per_block)
                .map(|n| {
                    let (txid, vout, amount_sats) = utxo(n);
                    PegInClaim {
                        txid,
                        bitcoin_block: B256::from(U256::from(n / 100)),
                        outputs: vec![PegInOutput { vout, amount_sats, script_pubkey: script.clone() }],
                        amount_sats,
                        evm_address: EvmAddress::with_last_byte(n as u8),
                    }
                })
                .collect(),
            _ => Vec::new(),
        };
        parent = write(storage, |tx| tx.set_head(&block(parent.hash, height, pegins)));
    }
    let per_block = BURNS / CHAIN_BLOCKS;
    let burns: Vec<Burn> =
        (0..BURNS).map(|n| burn(n, 1 + n / per_block, execution_hash(1 + n / per_block))).collect();
    write(storage, |tx| tx.add_pending_burns(&burns));
    write(storage, |tx| tx.set_finalized(parent));
    let released = write(storage, WriteTx::release_burns);
    assert_eq!(released.len(), burns.len(), "every burn is final and canonical");
    parent
}

/// `PegoutRules::propose` and `PegoutRules::verify` against the database.
fn consensus_path(samples: usize) {
    let federation = federation();
    let storage = Storage::in_memory().unwrap();
    let started = Instant::now();
    let head = stored_chain(&storage, &federation);
    let setup = started.elapsed();
    let rules = PegoutRules::new(runtime(&federation), Network::Regtest);
    let height = head.height + 1;

    let utxo_count = storage.read().unwrap().federation_utxos_at(head).unwrap().len();
    assert_eq!(utxo_count, UTXOS as usize);
    let proposed = rules.propose(&storage.read().unwrap(), height, head).unwrap().expect("a proposal");
    let tx: bitcoin::Transaction = bitcoin::consensus::deserialize(&proposed.block.tx).unwrap();
    let mut header = block(head.hash, height, Vec::new()).header;
    header.pegout = Some(proposed.block.clone());
    let refunds = rules.verify(&storage.read().unwrap(), &header, head).unwrap();
    assert_eq!(refunds, proposed.refunds);
    println!(
        "consensus path: {BURNS} released burns over {utxo_count} federation UTXOs in the stored chain ({} \
         blocks, built in {setup:.1?}): {} paid, {} refunded, {} wait; {} inputs, {} outputs, {} vB \
         unsigned at {} sat/vB",
        head.height,
        proposed.block.paid.len(),
        proposed.block.refunded.len(),
        BURNS as usize - proposed.block.paid.len() - proposed.block.refunded.len(),
        tx.input.len(),
        tx.output.len(),
        tx.vsize(),
        proposed.block.fee_rate_sat_vb,
    );

    report(
        "propose (author: read released burns and the UTXO set, build)",
        time(samples, || rules.propose(&storage.read().unwrap(), height, head).unwrap()),
    );
    report(
        "verify (importer: read listed burns and the UTXO set, rebuild and compare)",
        time(samples, || rules.verify(&storage.read().unwrap(), black_box(&header), head).unwrap()),
    );
    report(
        "the UTXO-set read both make (FederationRead::federation_utxos_at)",
        time(samples, || storage.read().unwrap().federation_utxos_at(head).unwrap()),
    );
}
