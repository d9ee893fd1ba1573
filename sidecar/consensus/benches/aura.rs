//! The BLS cost of accepting a block from a peer with 3 authorities: its author signature and its 2
//! aggregated approvals, all over the block hash.
//!
//! * one by one: `verify_header` then `verify_approvals` (gossip: one block at a time);
//! * batched: `verify_many` over 16 blocks (sync by range: one multi-pairing, the author signature
//!   and the approvals of a block sharing one pairing term).
//!
//! Run: `cargo bench -p alys-consensus --bench aura` (add `-- 50` for 50 rounds instead of 20).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmark code"
)]

use std::time::Instant;

use alloy_primitives::{B256, Bytes};
use alys_consensus::Aura;
use alys_primitives::{Approvals, AuthorityKey, BlsSignature, ConsensusHeader};

const BLOCKS: u64 = 16;

fn main() {
    let rounds: u32 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(20);
    let keys: Vec<AuthorityKey> = (1..=3u8).map(|i| AuthorityKey::from_seed(&[i; 32]).unwrap()).collect();
    let aura = Aura::new(keys.iter().map(|k| k.public().clone()).collect(), 2_000, 500).unwrap();
    let blocks: Vec<(ConsensusHeader, Bytes, Approvals)> = (100..100 + BLOCKS)
        .map(|slot| {
            let author = (slot % 3) as u32;
            let header = ConsensusHeader {
                parent_hash: B256::with_last_byte(slot as u8),
                height: slot,
                slot,
                author,
                execution_block_hash: B256::repeat_byte(9),
                pegins: vec![],
                auxpow: Bytes::new(),
                pegout: None,
            };
            let hash = header.hash();
            let own = keys[author as usize].sign(&hash);
            let next = (author + 1) % 3;
            let other = keys[next as usize].sign(&hash);
            let approvals = Approvals {
                signers: Approvals::bitfield([author, next]),
                signature: BlsSignature::aggregate(&[&own, &other]).unwrap().to_bytes().to_vec().into(),
            };
            (header, own.to_bytes().to_vec().into(), approvals)
        })
        .collect();
    let now = (100 + BLOCKS) * 2_000;

    let mut single = Vec::new();
    let mut batched = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        for (header, signature, approvals) in &blocks {
            aura.verify_header(header, signature, now).unwrap();
            aura.verify_approvals(&header.hash(), approvals).unwrap();
        }
        single.push(started.elapsed().as_secs_f64() * 1e6 / BLOCKS as f64);
        let batch: Vec<(ConsensusHeader, &[u8], &Approvals)> =
            blocks.iter().map(|(h, s, a)| (h.clone(), s.as_ref(), a)).collect();
        let started = Instant::now();
        aura.verify_many(&batch, now).unwrap();
        batched.push(started.elapsed().as_secs_f64() * 1e6 / BLOCKS as f64);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("BLS per block, 3 authorities (author signature + 2 approvals), median of {rounds} rounds:");
    println!("  one by one (gossip):          {:>6.0} µs", median(&mut single));
    println!("  batched, {BLOCKS} blocks (sync):    {:>6.0} µs", median(&mut batched));
}
