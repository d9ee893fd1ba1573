//! Building and checking a peg-out transaction (`alys_bridge::pegout_tx`): 1,000 released burns over
//! 10,000 federation UTXOs, the goal under 50 ms for each. The slot author builds; every importer
//! checks, which rebuilds from the same burns and UTXOs and compares.
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
    time::{Duration, Instant},
};

use alloy_primitives::{Address as EvmAddress, B256, Bytes, U256};
use alys_bridge::pegout_tx::{PegoutParams, SpendableUtxo, build, check};
use alys_burns::Burn;
use alys_contracts::WEI_PER_SAT;
use bitcoin::{
    Network, OutPoint, PublicKey, ScriptBuf, Txid,
    hashes::Hash as _,
    opcodes::all::OP_CHECKMULTISIG,
    script::Builder,
    secp256k1::{Secp256k1, SecretKey},
};

const BURNS: u64 = 1_000;
const UTXOS: u32 = 10_000;
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

fn main() {
    let samples: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(50);
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
        .map(|n| SpendableUtxo {
            outpoint: OutPoint::new(Txid::from_byte_array(B256::from(U256::from(n)).0), n % 3),
            amount_sats: 100_000 + u64::from(n % 997) * 1_000,
            script_pubkey: script_pubkey.clone(),
            witness_script: witness_script.clone(),
            threshold: 2,
        })
        .collect();
    let burns: Vec<Burn> = (0..BURNS)
        .map(|n| Burn {
            block_number: 100 + n / 10,
            block_hash: B256::from(U256::from(100 + n / 10)),
            log_index: n % 10,
            tx_hash: B256::from(U256::from(n)),
            tx_index: n,
            sender: EvmAddress::with_last_byte(n as u8),
            bitcoin_address: Bytes::copy_from_slice(TO[(n % 2) as usize].as_bytes()),
            value: U256::from(1_000_000 + n * 13) * U256::from(WEI_PER_SAT),
        })
        .collect();
    let params = PegoutParams {
        network: Network::Regtest,
        fee_rate_sat_vb: 5,
        change_script: script_pubkey,
        max_outputs: 1_000,
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

    let built = (0..samples)
        .map(|_| {
            let started = Instant::now();
            black_box(build(black_box(&burns), black_box(&utxos), &params));
            started.elapsed()
        })
        .collect();
    report("build (author)", built);
    let checked = (0..samples)
        .map(|_| {
            let started = Instant::now();
            black_box(
                check(&proposal.tx, 5, (1, 100), black_box(&burns), black_box(&utxos), &params).unwrap(),
            );
            started.elapsed()
        })
        .collect();
    report("check (importer: rebuild and compare)", checked);
}
