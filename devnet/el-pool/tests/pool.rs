//! Validation, ordering and replacement of the transaction pool, with transactions signed by real keys.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]

use std::{collections::HashMap, sync::Arc};

use alloy_consensus::{SignableTransaction, TxEip1559, TxEip2930, TxEnvelope, TxLegacy};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, Bytes, TxKind, U256, address};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use alys_chainspec::dev::DEV_PRIVATE_KEYS;
use alys_el_api::PoolError;
use alys_el_pool::{AccountState, Pool, PoolConfig, PooledTx, intrinsic_gas};

const CHAIN_ID: u64 = 121_212;
const GWEI: u128 = 1_000_000_000;
const TO: Address = address!("0x000000000000000000000000000000000000bEEF");

#[derive(Default)]
struct State(HashMap<Address, (u64, U256)>);

impl AccountState for State {
    fn nonce(&self, address: Address) -> u64 {
        self.0.get(&address).map_or(0, |a| a.0)
    }
    fn balance(&self, address: Address) -> U256 {
        self.0.get(&address).map_or(U256::ZERO, |a| a.1)
    }
}

fn signer(i: usize) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&DEV_PRIVATE_KEYS[i]).unwrap()
}

fn funded(signers: &[&PrivateKeySigner]) -> State {
    let mut state = State::default();
    for s in signers {
        state.0.insert(s.address(), (0, U256::from(10u128.pow(21))));
    }
    state
}

fn sign<T: SignableTransaction<alloy_primitives::Signature>>(signer: &PrivateKeySigner, tx: T) -> Vec<u8>
where
    TxEnvelope: From<alloy_consensus::Signed<T>>,
{
    let sig = signer.sign_hash_sync(&tx.signature_hash()).unwrap();
    TxEnvelope::from(tx.into_signed(sig)).encoded_2718()
}

fn eip1559(signer: &PrivateKeySigner, nonce: u64, max_fee: u128, tip: u128) -> Vec<u8> {
    sign(
        signer,
        TxEip1559 {
            chain_id: CHAIN_ID,
            nonce,
            gas_limit: 21_000,
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: tip,
            to: TxKind::Call(TO),
            value: U256::from(1u64),
            ..Default::default()
        },
    )
}

fn pool() -> Pool {
    Pool::new(PoolConfig::new(CHAIN_ID, 30_000_000))
}

#[test]
fn accepts_legacy_2930_and_1559() {
    let s = signer(0);
    let state = funded(&[&s]);
    let mut pool = pool();
    let legacy = sign(
        &s,
        TxLegacy {
            chain_id: Some(CHAIN_ID),
            nonce: 0,
            gas_price: 2 * GWEI,
            gas_limit: 21_000,
            to: TxKind::Call(TO),
            value: U256::from(1u64),
            input: Bytes::new(),
        },
    );
    let access_list = sign(
        &s,
        TxEip2930 {
            chain_id: CHAIN_ID,
            nonce: 1,
            gas_price: 2 * GWEI,
            gas_limit: 21_000,
            to: TxKind::Call(TO),
            ..Default::default()
        },
    );
    let dynamic = eip1559(&s, 2, 3 * GWEI, GWEI);
    for raw in [&legacy, &access_list, &dynamic] {
        pool.add_raw(raw, &state, GWEI as u64).unwrap();
    }
    assert_eq!(pool.len(), 3);
    assert_eq!(pool.pending_nonce(s.address(), &state), 3);
    let hash = pool.add_raw(&dynamic, &state, GWEI as u64).unwrap_err();
    assert_eq!(hash, PoolError::AlreadyKnown);
}

#[test]
fn refuses_bad_transactions_with_typed_errors() {
    let s = signer(1);
    let mut state = funded(&[&s]);
    let mut pool = pool();
    let base = GWEI as u64;

    assert!(matches!(pool.add_raw(&[], &state, base), Err(PoolError::Decode(_))));
    assert!(matches!(pool.add_raw(&[0x02, 0xff, 0x00], &state, base), Err(PoolError::Decode(_))));
    let mut trailing = eip1559(&s, 0, 2 * GWEI, GWEI);
    trailing.push(0);
    assert!(matches!(pool.add_raw(&trailing, &state, base), Err(PoolError::Decode(_))));

    let other_chain =
        sign(&s, TxEip1559 { chain_id: 1, gas_limit: 21_000, max_fee_per_gas: GWEI, ..Default::default() });
    assert_eq!(pool.add_raw(&other_chain, &state, base), Err(PoolError::WrongChainId));
    let unprotected =
        sign(&s, TxLegacy { chain_id: None, gas_price: GWEI, gas_limit: 21_000, ..Default::default() });
    assert_eq!(pool.add_raw(&unprotected, &state, base), Err(PoolError::WrongChainId));

    let too_much_gas = sign(
        &s,
        TxEip1559 { chain_id: CHAIN_ID, gas_limit: 30_000_001, max_fee_per_gas: GWEI, ..Default::default() },
    );
    assert_eq!(pool.add_raw(&too_much_gas, &state, base), Err(PoolError::GasLimitExceeded));

    let calldata = sign(
        &s,
        TxEip1559 {
            chain_id: CHAIN_ID,
            gas_limit: 21_000,
            max_fee_per_gas: GWEI,
            to: TxKind::Call(TO),
            input: Bytes::from(vec![1u8; 10]),
            ..Default::default()
        },
    );
    assert_eq!(pool.add_raw(&calldata, &state, base), Err(PoolError::IntrinsicGasTooLow));

    assert_eq!(pool.add_raw(&eip1559(&s, 0, GWEI, 2 * GWEI), &state, base), Err(PoolError::TipAboveFeeCap));

    state.0.insert(s.address(), (5, U256::from(10u128.pow(21))));
    assert_eq!(
        pool.add_raw(&eip1559(&s, 4, 2 * GWEI, GWEI), &state, base),
        Err(PoolError::NonceTooLow { expected: 5, got: 4 })
    );
    assert_eq!(
        pool.add_raw(&eip1559(&s, 5 + 64, 2 * GWEI, GWEI), &state, base),
        Err(PoolError::NonceTooHigh { expected: 5, got: 69 })
    );

    state.0.insert(s.address(), (5, U256::from(21_000u128 * 2 * GWEI)));
    assert!(matches!(
        pool.add_raw(&eip1559(&s, 5, 2 * GWEI, GWEI), &state, base),
        Err(PoolError::InsufficientFunds { .. })
    ));

    let mut oversized = Pool::new(PoolConfig { max_tx_bytes: 10, ..PoolConfig::new(CHAIN_ID, 30_000_000) });
    assert_eq!(oversized.add_raw(&eip1559(&s, 5, GWEI, 0), &state, base), Err(PoolError::Oversized));

    let mut priced =
        Pool::new(PoolConfig { min_priority_fee: GWEI, ..PoolConfig::new(CHAIN_ID, 30_000_000) });
    assert_eq!(priced.add_raw(&eip1559(&s, 5, GWEI, GWEI - 1), &state, base), Err(PoolError::Underpriced));

    let mut bad_sig = eip1559(&s, 5, 2 * GWEI, GWEI);
    let last = bad_sig.len() - 1;
    bad_sig[last] ^= 0xff; // corrupt `s`
    assert!(matches!(
        pool.add_raw(&bad_sig, &state, base),
        Err(PoolError::InvalidSignature | PoolError::Decode(_) | PoolError::InsufficientFunds { .. })
    ));
    assert!(pool.is_empty(), "nothing invalid was pooled");
}

#[test]
fn replacement_needs_the_price_bump() {
    let s = signer(2);
    let state = funded(&[&s]);
    let mut pool = pool();
    let first = pool.add_raw(&eip1559(&s, 0, 10 * GWEI, 2 * GWEI), &state, 1).unwrap();
    assert_eq!(
        pool.add_raw(&eip1559(&s, 0, 10 * GWEI + 1, 2 * GWEI + 1), &state, 1),
        Err(PoolError::ReplacementUnderpriced)
    );
    assert_eq!(
        pool.add_raw(&eip1559(&s, 0, 11 * GWEI, 2 * GWEI), &state, 1),
        Err(PoolError::ReplacementUnderpriced),
        "the tip must rise too"
    );
    let second = pool.add_raw(&eip1559(&s, 0, 11 * GWEI, 2 * GWEI + GWEI / 5), &state, 1).unwrap();
    assert_eq!(pool.len(), 1);
    assert!(pool.get(&first).is_none());
    assert_eq!(pool.get(&second).unwrap().nonce(), 0);
}

#[test]
fn best_transactions_order_by_tip_and_nonce() {
    let (a, b, c) = (signer(3), signer(4), signer(5));
    let state = funded(&[&a, &b, &c]);
    let mut pool = pool();
    let base = 5 * GWEI as u64;
    let a0 = pool.add_raw(&eip1559(&a, 0, 20 * GWEI, GWEI), &state, base).unwrap();
    let a1 = pool.add_raw(&eip1559(&a, 1, 20 * GWEI, 9 * GWEI), &state, base).unwrap();
    let b0 = pool.add_raw(&eip1559(&b, 0, 20 * GWEI, 3 * GWEI), &state, base).unwrap();
    let _b2 = pool.add_raw(&eip1559(&b, 2, 20 * GWEI, 9 * GWEI), &state, base).unwrap(); // gap: not executable
    let _c0 = pool.add_raw(&eip1559(&c, 0, 4 * GWEI, 4 * GWEI), &state, base).unwrap(); // fee cap below base fee

    let order: Vec<_> = pool.best_transactions(base, &state).map(|tx| tx.hash).collect();
    assert_eq!(order, vec![b0, a0, a1], "b0 tips 3 gwei, a0 1 gwei; a1 only after a0");

    let mut best = pool.best_transactions(base, &state);
    assert_eq!(best.next().unwrap().hash, b0);
    best.mark_invalid(a.address());
    assert!(best.next().is_none(), "a's run is skipped once marked invalid");

    let cheaper_base = 3 * GWEI as u64;
    assert_eq!(pool.best_transactions(cheaper_base, &state).count(), 4, "c0 executes at a lower base fee");
    assert_eq!(pool.pending_nonce(b.address(), &state), 1, "the gap stops the pending nonce");
}

#[test]
fn canonical_change_prunes_mined_and_reinjects_reverted() {
    let s = signer(6);
    let mut state = funded(&[&s]);
    let mut pool = pool();
    let h0 = pool.add_raw(&eip1559(&s, 0, 2 * GWEI, GWEI), &state, 1).unwrap();
    let h1 = pool.add_raw(&eip1559(&s, 1, 2 * GWEI, GWEI), &state, 1).unwrap();
    let tx0: Arc<_> = pool.get(&h0).unwrap();

    state.0.get_mut(&s.address()).unwrap().0 = 1; // tx0 mined
    pool.on_canonical_change(Vec::new(), &state);
    assert!(pool.get(&h0).is_none());
    assert!(pool.get(&h1).is_some());

    state.0.get_mut(&s.address()).unwrap().0 = 0; // the block with tx0 reverted
    pool.on_canonical_change(vec![tx0], &state);
    assert_eq!(pool.len(), 2);
    assert_eq!(pool.best_transactions(1, &state).map(|t| t.hash).collect::<Vec<_>>(), vec![h0, h1]);
}

#[test]
fn full_pool_evicts_only_for_a_better_tip() {
    let (a, b, c) = (signer(7), signer(8), signer(9));
    let state = funded(&[&a, &b, &c]);
    let mut pool = Pool::new(PoolConfig { max_size: 2, ..PoolConfig::new(CHAIN_ID, 30_000_000) });
    let cheap = pool.add_raw(&eip1559(&a, 0, 10 * GWEI, GWEI), &state, 1).unwrap();
    pool.add_raw(&eip1559(&b, 0, 10 * GWEI, 2 * GWEI), &state, 1).unwrap();
    assert_eq!(pool.add_raw(&eip1559(&c, 0, 10 * GWEI, GWEI), &state, 1), Err(PoolError::PoolFull));
    pool.add_raw(&eip1559(&c, 0, 10 * GWEI, 3 * GWEI), &state, 1).unwrap();
    assert_eq!(pool.len(), 2);
    assert!(pool.get(&cheap).is_none(), "the cheapest transaction made room");
}

#[test]
fn intrinsic_gas_counts_calldata_creation_and_floor() {
    let call = |input: Vec<u8>| {
        TxEnvelope::from(
            TxEip1559 { to: TxKind::Call(TO), input: input.into(), ..Default::default() }
                .into_signed(alloy_primitives::Signature::test_signature()),
        )
    };
    assert_eq!(intrinsic_gas(&call(vec![]), true), 21_000);
    assert_eq!(intrinsic_gas(&call(vec![0, 1]), false), 21_000 + 4 + 16);
    // 100 non-zero bytes: 21000 + 1600 standard, floor 21000 + 10 * 400 = 25000.
    assert_eq!(intrinsic_gas(&call(vec![1; 100]), false), 22_600);
    assert_eq!(intrinsic_gas(&call(vec![1; 100]), true), 25_000);
    let create = TxEnvelope::from(
        TxEip1559 { to: TxKind::Create, input: vec![0u8; 33].into(), ..Default::default() }
            .into_signed(alloy_primitives::Signature::test_signature()),
    );
    assert_eq!(intrinsic_gas(&create, false), 21_000 + 33 * 4 + 32_000 + 2 * 2);
}

mod blobs {
    use alloy_consensus::{
        Signed, TxEip4844, TxEip4844Variant, TxEip4844WithSidecar, transaction::SignerRecoverable as _,
    };
    use alloy_eips::{
        eip4844::{Blob, BlobTransactionSidecar, DATA_GAS_PER_BLOB, env_settings::EnvKzgSettings},
        eip7594::BlobTransactionSidecarVariant,
        eip7840::BlobParams,
    };
    use alloy_primitives::B256;
    use alys_el_api::BlobSidecarError;

    use super::*;

    /// A blob whose field elements differ (a constant polynomial's proofs would all be the same).
    fn blob(seed: u8) -> Blob {
        let mut blob = Blob::ZERO;
        for (i, element) in blob.0.chunks_mut(32).enumerate() {
            element[31] = seed.wrapping_add(i as u8);
        }
        blob
    }

    fn sidecar(seeds: &[u8]) -> BlobTransactionSidecar {
        let blobs = seeds.iter().map(|seed| blob(*seed)).collect();
        BlobTransactionSidecar::try_from_blobs_with_settings(blobs, EnvKzgSettings::Default.get()).unwrap()
    }

    fn blob_tx(nonce: u64, sidecar: &BlobTransactionSidecar) -> TxEip4844 {
        TxEip4844 {
            chain_id: CHAIN_ID,
            nonce,
            gas_limit: 21_000,
            max_fee_per_gas: 2 * GWEI,
            max_priority_fee_per_gas: GWEI,
            to: TO,
            blob_versioned_hashes: sidecar.versioned_hashes().collect(),
            max_fee_per_blob_gas: 10,
            ..Default::default()
        }
    }

    /// The network encoding: the signed transaction with its sidecar.
    fn network(s: &PrivateKeySigner, tx: TxEip4844, sidecar: BlobTransactionSidecar) -> Vec<u8> {
        let sig = s.sign_hash_sync(&tx.signature_hash()).unwrap();
        let with =
            TxEip4844WithSidecar::from_tx_and_sidecar(tx, BlobTransactionSidecarVariant::Eip4844(sidecar));
        TxEnvelope::Eip4844(Signed::new_unhashed(TxEip4844Variant::TxEip4844WithSidecar(with), sig))
            .encoded_2718()
    }

    fn cancun_pool() -> Pool {
        let mut pool = pool();
        pool.set_blob_params(Some(BlobParams::cancun()));
        pool
    }

    #[test]
    fn blob_transactions_are_pooled_with_checked_sidecars() {
        let s = signer(0);
        let state = funded(&[&s]);
        let blobs = sidecar(&[1, 2]);
        let raw = network(&s, blob_tx(0, &blobs), blobs.clone());

        // Before Cancun there are no blob transactions.
        assert_eq!(pool().add_raw(&raw, &state, 1), Err(PoolError::TxTypeNotSupported));

        let mut pool = cancun_pool();
        let hash = pool.add_raw(&raw, &state, 1).unwrap();
        let pooled = pool.get(&hash).unwrap();
        // The pool keeps the canonical transaction, as a block carries it, and the sidecar apart.
        assert!(
            matches!(&pooled.tx, TxEnvelope::Eip4844(tx) if matches!(tx.tx(), TxEip4844Variant::TxEip4844(_)))
        );
        assert_eq!(alloy_primitives::keccak256(&pooled.encoded), hash);
        assert_eq!(pooled.tx.recover_signer().unwrap(), s.address());
        assert_eq!(pooled.sidecar.as_deref(), Some(&blobs));
        let cost = U256::from(21_000 * 2 * GWEI) + U256::from(2 * DATA_GAS_PER_BLOB * 10);
        assert_eq!(pooled.max_cost(), cost, "blob gas at the blob fee cap counts");

        // engine_getBlobsV1 reads the sidecar by versioned hash.
        let wanted = [blobs.versioned_hash_for_blob(1).unwrap(), B256::repeat_byte(9)];
        let found = pool.blobs_v1(&wanted);
        assert_eq!(*found[0].as_ref().unwrap().blob, blobs.blobs[1]);
        assert_eq!(found[0].as_ref().unwrap().proof, blobs.proofs[1]);
        assert!(found[1].is_none());
        assert_eq!(pool.best_transactions(1, &state).count(), 1);
    }

    #[test]
    fn blob_transactions_without_a_valid_sidecar_are_refused() {
        let s = signer(1);
        let state = funded(&[&s]);
        let mut pool = cancun_pool();
        let blobs = sidecar(&[1]);

        // The canonical encoding lacks the sidecar.
        let tx = blob_tx(0, &blobs);
        let sig = s.sign_hash_sync(&tx.signature_hash()).unwrap();
        let canonical =
            TxEnvelope::Eip4844(Signed::new_unhashed(TxEip4844Variant::TxEip4844(tx), sig)).encoded_2718();
        assert_eq!(pool.add_raw(&canonical, &state, 1), Err(PoolError::MissingBlobSidecar));

        let no_blobs = TxEip4844 { blob_versioned_hashes: vec![], ..blob_tx(0, &blobs) };
        let raw = network(&s, no_blobs, BlobTransactionSidecar::default());
        assert_eq!(pool.add_raw(&raw, &state, 1), Err(PoolError::NoBlobs));

        let seven = TxEip4844 { blob_versioned_hashes: vec![B256::ZERO; 7], ..blob_tx(0, &blobs) };
        assert_eq!(
            pool.add_raw(&network(&s, seven, blobs.clone()), &state, 1),
            Err(PoolError::TooManyBlobs { have: 7, permitted: 6 })
        );

        let two_hashes = TxEip4844 {
            blob_versioned_hashes: vec![blobs.versioned_hash_for_blob(0).unwrap(); 2],
            ..blob_tx(0, &blobs)
        };
        assert_eq!(
            pool.add_raw(&network(&s, two_hashes, blobs.clone()), &state, 1),
            Err(BlobSidecarError::Length { hashes: 2, blobs: 1, commitments: 1, proofs: 1 }.into())
        );

        let mut claimed = blobs.versioned_hash_for_blob(0).unwrap();
        claimed.0[31] ^= 1;
        let wrong_hash = TxEip4844 { blob_versioned_hashes: vec![claimed], ..blob_tx(0, &blobs) };
        let computed = blobs.versioned_hash_for_blob(0).unwrap();
        assert_eq!(
            pool.add_raw(&network(&s, wrong_hash, blobs.clone()), &state, 1),
            Err(BlobSidecarError::VersionedHash { index: 0, computed, claimed }.into())
        );

        // A proof of another blob does not verify this one.
        let mut forged = blobs.clone();
        forged.proofs[0] = sidecar(&[2]).proofs[0];
        assert_eq!(
            pool.add_raw(&network(&s, blob_tx(0, &blobs), forged), &state, 1),
            Err(BlobSidecarError::InvalidProof.into())
        );

        // The blob fee counts towards the balance the sender needs.
        let mut poor = State::default();
        poor.0.insert(s.address(), (0, U256::from(21_000 * 2 * GWEI)));
        assert!(matches!(
            pool.add_raw(&network(&s, blob_tx(0, &blobs), blobs.clone()), &poor, 1),
            Err(PoolError::InsufficientFunds { .. })
        ));
        assert!(pool.is_empty());
    }

    #[test]
    fn blob_senders_replace_at_double_price_and_keep_to_blobs() {
        let s = signer(2);
        let state = funded(&[&s]);
        let mut pool = cancun_pool();
        let blobs = sidecar(&[3]);
        let first = pool.add_raw(&network(&s, blob_tx(0, &blobs), blobs.clone()), &state, 1).unwrap();
        assert_eq!(pool.add_raw(&eip1559(&s, 1, 2 * GWEI, GWEI), &state, 1), Err(PoolError::AddressReserved));

        let bumped = |fee: u128, blob_fee: u128| TxEip4844 {
            max_fee_per_gas: fee,
            max_priority_fee_per_gas: fee / 2,
            max_fee_per_blob_gas: blob_fee,
            ..blob_tx(0, &blobs)
        };
        let raw = network(&s, bumped(3 * GWEI, 20), blobs.clone());
        assert_eq!(
            pool.add_raw(&raw, &state, 1),
            Err(PoolError::ReplacementUnderpriced),
            "10 % is not enough"
        );
        let raw = network(&s, bumped(4 * GWEI, 19), blobs.clone());
        assert_eq!(
            pool.add_raw(&raw, &state, 1),
            Err(PoolError::ReplacementUnderpriced),
            "nor is the blob fee"
        );
        let second = pool.add_raw(&network(&s, bumped(4 * GWEI, 20), blobs.clone()), &state, 1).unwrap();
        assert!(pool.get(&first).is_none());
        assert!(pool.blobs_v1(&[blobs.versioned_hash_for_blob(0).unwrap()])[0].is_some());

        // Included: gone from the pool, its blobs kept; reverted: back with its sidecar from the store.
        let mined = pool.get(&second).unwrap();
        let mut after = funded(&[&s]);
        after.0.get_mut(&s.address()).unwrap().0 = 1;
        pool.on_canonical_change(Vec::new(), &after);
        assert!(pool.is_empty());
        assert!(pool.blobs_v1(&[blobs.versioned_hash_for_blob(0).unwrap()])[0].is_some());
        let without_sidecar = Arc::new(PooledTx { sidecar: None, ..(*mined).clone() });
        pool.on_canonical_change(vec![without_sidecar], &state);
        assert_eq!(pool.get(&second).unwrap().sidecar.as_deref(), Some(&blobs));
    }
}
