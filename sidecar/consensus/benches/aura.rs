//! The BLS cost of accepting a block from a peer with 3 authorities: its author signature and its 2
//! aggregated approvals, all over the block hash.
//!
//! * one by one: `verify_header` then `verify_approvals` (gossip: one block at a time);
//! * batched: `verify_many` over 16 blocks (one multi-pairing, the author signature and the approvals
//!   of a block sharing one pairing term): sync's fallback for a range whose last block does not verify;
//! * vouched: `vouched_from` over a linked range of 128 blocks (sync by range: the last block's quorum
//!   vouches for the blocks it descends from, whose headers carry their parents' seals).
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
use alys_primitives::{Approvals, AuthorityKey, BlsSignature, ConsensusHeader, Seal};

const BLOCKS: u64 = 16;
/// Blocks in one sync range (the network's request size).
const RANGE: u64 = 128;

/// A header's seal: its author's signature and the next authority's approval beside the author's.
fn seal(keys: &[AuthorityKey], header: &ConsensusHeader) -> Seal {
    let hash = header.hash();
    let next = (header.author + 1) % 3;
    let (own, other) = (keys[header.author as usize].sign(&hash), keys[next as usize].sign(&hash));
    Seal {
        author_signature: own.to_bytes().to_vec().into(),
        approvals: Approvals {
            signers: Approvals::bitfield([header.author, next]),
            signature: BlsSignature::aggregate(&[&own, &other]).unwrap().to_bytes().to_vec().into(),
        },
    }
}

fn main() {
    let rounds: u32 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(20);
    let keys: Vec<AuthorityKey> = (1..=3u8).map(|i| AuthorityKey::from_seed(&[i; 32]).unwrap()).collect();
    let aura = Aura::new(keys.iter().map(|k| k.public().clone()).collect(), 2_000, 500).unwrap();
    // A linked range: each header carries its parent's seal.
    let mut range: Vec<(ConsensusHeader, Seal)> = Vec::new();
    for slot in 1_000..1_000 + RANGE {
        let author = (slot % 3) as u32;
        let (parent_hash, parent_seal) =
            range.last().map_or_else(|| (B256::ZERO, Seal::default()), |(h, s)| (h.hash(), s.clone()));
        let header = ConsensusHeader {
            parent_hash,
            parent_seal,
            height: slot,
            slot,
            author,
            execution_block_hash: B256::repeat_byte(9),
            pegins: vec![],
            auxpow: Bytes::new(),
            pegout: None,
        };
        let seal = seal(&keys, &header);
        range.push((header, seal));
    }
    let now = (1_000 + RANGE) * 2_000;
    let blocks: Vec<(ConsensusHeader, Bytes, Approvals)> = range
        .iter()
        .take(BLOCKS as usize)
        .map(|(header, seal)| (header.clone(), seal.author_signature.clone(), seal.approvals.clone()))
        .collect();

    let mut single = Vec::new();
    let mut batched = Vec::new();
    let mut vouched = Vec::new();
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
        let linked: Vec<(&ConsensusHeader, &[u8], &Approvals)> =
            range.iter().map(|(h, s)| (h, s.author_signature.as_ref(), &s.approvals)).collect();
        let started = Instant::now();
        assert_eq!(aura.vouched_from(&linked, now), 0);
        vouched.push(started.elapsed().as_secs_f64() * 1e6 / RANGE as f64);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("BLS per block, 3 authorities (author signature + 2 approvals), median of {rounds} rounds:");
    println!("  one by one (gossip):          {:>6.0} µs", median(&mut single));
    println!("  batched, {BLOCKS} blocks:           {:>6.0} µs", median(&mut batched));
    println!("  vouched range, {RANGE} blocks (sync): {:>6.1} µs", median(&mut vouched));
}
