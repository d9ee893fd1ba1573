#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]
//! Peg-in claims against the node's database, without a network: which deposits `PeginRules::select`
//! claims at a height (depth, minimum, pause, cap, federation rotation), and how the recorded deposits
//! and the minted set follow Bitcoin reorgs and Alys reorgs (DESIGN invariant 1), ending with a
//! state-machine test of both.

use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    sync::Arc,
};

use alloy_primitives::{Address, B256, Bytes};
use alys_bitcoin::{BitcoinAuth, BitcoinClient, BitcoinClientConfig};
use alys_bridge::pegin::{
    PeginRules, Rejection, deposit_scripts_at,
    rules::{future_scripts_at, known_scripts, rejection_at},
    scan_block,
};
use alys_governance::{
    Decisions, Federation, FederationHistory, PauseScope, Proposal, ProposalAction, ProposalBook,
    RuntimeParameters, RuntimeView, update_digest,
};
use alys_primitives::{Approvals, BlockRef, ConsensusHeader, PegInClaim, PegInOutput, SignedBlock};
use alys_proto::governance::v1::{FederationConfig, FederationMember, FederationUpdate};
use alys_storage::{ChainRead, FederationUtxo, Minted, PeginRead, Storage, StorageError, WriteTx};
use bitcoin::{
    Amount, Block, BlockHash, CompactTarget, Network, OutPoint, ScriptBuf, Transaction, TxIn, TxMerkleNode,
    TxOut, Txid,
    absolute::LockTime,
    block::{Header, Version as BlockVersion},
    hashes::Hash as _,
    script::{Builder, PushBytesBuf},
    secp256k1::{Message, PublicKey, Secp256k1, SecretKey},
    transaction::Version,
};
use tokio::sync::watch;

// ---------------------------------------------------------------------------------------------------
// Fixtures: governance (federations, proposals), a followed Bitcoin chain, consensus blocks
// ---------------------------------------------------------------------------------------------------

const ALICE: Address = Address::repeat_byte(0xa1);
const BOB: Address = Address::repeat_byte(0xb0);
/// The parent of the first consensus block.
const GENESIS: B256 = B256::repeat_byte(0xee);

fn secret(byte: u8) -> SecretKey {
    SecretKey::from_slice(&[byte; 32]).unwrap()
}

fn governance_key() -> PublicKey {
    PublicKey::from_secret_key(&Secp256k1::new(), &secret(0x99))
}

/// A 2-of-3 federation of member keys `first`, `first + 1`, `first + 2`, signed by governance, holding
/// deposits from `effective_height`.
fn federation(first: u8, effective_height: u64) -> Federation {
    let secp = Secp256k1::new();
    let members = (first..first + 3)
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
        effective_height,
        update_signature: Vec::new(),
        config: Some(FederationConfig {
            signature_threshold: 2,
            member_count: 3,
            parameters: Default::default(),
        }),
    };
    let digest = Message::from_digest(update_digest(&update));
    update.update_signature = secp.sign_ecdsa(&digest, &secret(0x99)).serialize_compact().to_vec();
    Federation::from_update(&update, &governance_key(), Network::Regtest).unwrap()
}

/// Peg-in parameters: confirmations, minimum deposit, grace blocks after a rotation.
fn params(confirmations: u32, min_sats: u64, grace_blocks: u64) -> RuntimeParameters {
    RuntimeParameters::with_max_blocks_without_pow(10).with_pegin(confirmations, min_sats, grace_blocks)
}

/// What governance decided, as the stream actor publishes it.
fn runtime(params: RuntimeParameters, federations: &[&Federation], proposals: Vec<Proposal>) -> RuntimeView {
    let mut book = ProposalBook::new(params);
    for proposal in proposals {
        assert!(book.insert(proposal).unwrap());
    }
    let mut history = FederationHistory::default();
    for federation in federations {
        assert!(history.insert((*federation).clone()).unwrap());
    }
    let (_publisher, view) = watch::channel(Arc::new(Decisions::new(book, history)));
    RuntimeView::new(view)
}

fn pause_pegins(id: &str, height: u64, pause: bool) -> Proposal {
    Proposal {
        id: id.to_owned(),
        proposal_type: "EMERGENCY_ACTION".to_owned(),
        effective_height: height,
        action: ProposalAction::Emergency { scope: PauseScope::Pegins, pause, reason: "drill".to_owned() },
    }
}

fn parameter(id: &str, height: u64, name: &str, value: &str) -> Proposal {
    Proposal {
        id: id.to_owned(),
        proposal_type: "PARAMETER_CHANGE".to_owned(),
        effective_height: height,
        action: ProposalAction::Parameter { name: name.to_owned(), value: value.to_owned() },
    }
}

/// Rules with a Bitcoin client (which `select` never calls; without one it claims nothing).
fn rules(runtime: &RuntimeView) -> PeginRules {
    let config = BitcoinClientConfig::new(
        "http://127.0.0.1:1",
        BitcoinAuth::UserPassword { user: "alys".to_owned(), password: "alys".to_owned() },
    );
    PeginRules::new(runtime.clone(), Some(BitcoinClient::new(config).unwrap()))
}

fn write<T>(storage: &Storage, f: impl FnOnce(&WriteTx) -> Result<T, StorageError>) -> T {
    let tx = storage.write().unwrap();
    let out = f(&tx).unwrap();
    tx.commit().unwrap();
    out
}

/// A deposit as a wallet makes it: the federation outputs `pays`, then an OP_RETURN naming `to`; `n`
/// (the outpoint it spends) tells deposits apart.
fn deposit(n: u32, pays: &[(&Federation, u64)], to: Address) -> Transaction {
    let mut output: Vec<TxOut> = pays
        .iter()
        .map(|(federation, sats)| TxOut {
            value: Amount::from_sat(*sats),
            script_pubkey: federation.address.script_pubkey(),
        })
        .collect();
    let data = PushBytesBuf::try_from(to.to_vec()).unwrap();
    output.push(TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::new_op_return(data) });
    let mut spent = [0u8; 32];
    spent[..4].copy_from_slice(&n.to_be_bytes());
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(Txid::from_byte_array(spent), n),
            ..Default::default()
        }],
        output,
    }
}

fn txid(tx: &Transaction) -> B256 {
    B256::from(tx.compute_txid().to_byte_array())
}

/// A Bitcoin block at `height` (`salt` tells competing blocks apart) holding `txs` after a coinbase.
fn bitcoin_block(height: u64, salt: u32, txs: Vec<Transaction>) -> Block {
    let coinbase = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: Builder::new().push_int(height as i64).push_int(i64::from(salt)).into_script(),
            ..Default::default()
        }],
        output: vec![TxOut { value: Amount::from_sat(5_000_000_000), script_pubkey: ScriptBuf::new() }],
    };
    Block {
        header: Header {
            version: BlockVersion::TWO,
            prev_blockhash: BlockHash::all_zeros(),
            merkle_root: TxMerkleNode::all_zeros(),
            time: height as u32,
            bits: CompactTarget::from_consensus(0x207f_ffff),
            nonce: salt,
        },
        txdata: std::iter::once(coinbase).chain(txs).collect(),
    }
}

/// What the watcher does with a new Bitcoin block: scans it for deposits to any known federation and
/// records it with them. Returns the block hash.
fn connect(storage: &Storage, runtime: &RuntimeView, height: u64, salt: u32, txs: Vec<Transaction>) -> B256 {
    let block = bitcoin_block(height, salt, txs);
    let records = scan_block(&block, height, &known_scripts(runtime), 0);
    let hash = B256::from(block.block_hash().to_byte_array());
    write(storage, |tx| tx.connect_bitcoin_block(height, hash, &records));
    hash
}

/// A consensus block at `height` on `parent` claiming `pegins`; `salt` tells siblings apart.
fn block(parent: B256, height: u64, salt: u64, pegins: Vec<PegInClaim>) -> SignedBlock {
    SignedBlock {
        header: ConsensusHeader {
            parent_hash: parent,
            parent_seal: Default::default(),
            height,
            slot: height * 1_000 + salt,
            author: 0,
            execution_block_hash: B256::with_last_byte(salt as u8),
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

fn set_head(storage: &Storage, block: &SignedBlock) -> BlockRef {
    write(storage, |tx| tx.set_head(block))
}

fn put_block(storage: &Storage, block: &SignedBlock) -> BlockRef {
    BlockRef { height: block.header.height, hash: write(storage, |tx| tx.put_block(block)) }
}

fn genesis() -> BlockRef {
    BlockRef { height: 0, hash: GENESIS }
}

fn select(rules: &PeginRules, storage: &Storage, height: u64, parent: BlockRef) -> Vec<PegInClaim> {
    rules.select(&storage.read().unwrap(), height, parent).unwrap()
}

fn txids(claims: &[PegInClaim]) -> Vec<B256> {
    claims.iter().map(|c| c.txid).collect()
}

fn sorted(mut ids: Vec<B256>) -> Vec<B256> {
    ids.sort();
    ids
}

fn open(storage: &Storage) -> Vec<B256> {
    storage.read().unwrap().open_deposits(10_000).unwrap().iter().map(|d| d.txid).collect()
}

/// A federation UTXO as `(txid, vout, sats, minting height, minting hash)`.
type Utxo = (B256, u32, u64, u64, B256);

fn utxo(txid: B256, vout: u32, sats: u64, minted_in: BlockRef) -> Utxo {
    (txid, vout, sats, minted_in.height, minted_in.hash)
}

fn utxos(storage: &Storage) -> BTreeSet<Utxo> {
    let utxos = storage.read().unwrap().federation_utxos().unwrap();
    utxos
        .into_iter()
        .map(|FederationUtxo { txid, vout, amount_sats, minted_in }| utxo(txid, vout, amount_sats, minted_in))
        .collect()
}

// ---------------------------------------------------------------------------------------------------
// What the author claims
// ---------------------------------------------------------------------------------------------------

#[test]
fn deposits_are_claimed_once_deep_enough_oldest_first() {
    let f = federation(1, 0);
    // Three confirmations, one from Alys height 5 on.
    let runtime = runtime(params(3, 1_000, 100), &[&f], vec![parameter("c", 5, "pegin_confirmations", "1")]);
    let rules = rules(&runtime);
    let storage = Storage::in_memory().unwrap();
    assert!(select(&rules, &storage, 1, genesis()).is_empty(), "nothing followed yet");

    let (a, b, c, d) = (
        deposit(1, &[(&f, 10_000)], ALICE),
        deposit(2, &[(&f, 20_000)], BOB),
        deposit(3, &[(&f, 30_000)], ALICE),
        deposit(4, &[(&f, 40_000)], BOB),
    );
    let b100 = connect(&storage, &runtime, 100, 0, vec![a.clone(), b.clone()]);
    connect(&storage, &runtime, 101, 0, vec![c.clone()]);
    connect(&storage, &runtime, 102, 0, vec![d.clone()]);

    // A and B have 3 confirmations, C 2, D 1; within a Bitcoin block, txid order.
    let claims = select(&rules, &storage, 1, genesis());
    assert_eq!(txids(&claims), sorted(vec![txid(&a), txid(&b)]));
    let claim_a = claims.iter().find(|claim| claim.txid == txid(&a)).unwrap();
    assert_eq!(
        claim_a,
        &PegInClaim {
            txid: txid(&a),
            bitcoin_block: b100,
            outputs: vec![PegInOutput { vout: 0, amount_sats: 10_000, script_pubkey: script_of(&f) }],
            amount_sats: 10_000,
            evm_address: ALICE,
        }
    );

    connect(&storage, &runtime, 103, 0, vec![]);
    let claims = select(&rules, &storage, 4, genesis());
    let mut expected = sorted(vec![txid(&a), txid(&b)]);
    expected.push(txid(&c));
    assert_eq!(txids(&claims), expected, "C has 3 confirmations now, D 2");

    // From height 5 one confirmation is enough.
    let claims = select(&rules, &storage, 5, genesis());
    expected.push(txid(&d));
    assert_eq!(txids(&claims), expected);

    // What goes into the payload attributes: one withdrawal per claim, gwei = sats x 10.
    let withdrawals = alys_consensus::pegin_withdrawals(&claims);
    assert_eq!(withdrawals.len(), 4);
    for (withdrawal, claim) in withdrawals.iter().zip(&claims) {
        assert_eq!(withdrawal.address, claim.evm_address);
        assert_eq!(withdrawal.amount, claim.amount_sats * 10);
    }
}

#[test]
fn deposits_below_the_minimum_are_skipped_without_holding_back_later_ones() {
    let f = federation(1, 0);
    let runtime = runtime(params(1, 10_000, 100), &[&f], vec![parameter("m", 7, "pegin_min_sats", "100000")]);
    let rules = rules(&runtime);
    let storage = Storage::in_memory().unwrap();
    let small = deposit(1, &[(&f, 9_999)], ALICE);
    let exact = deposit(2, &[(&f, 10_000)], ALICE);
    // Two outputs that reach the minimum together: one deposit of their sum.
    let split = deposit(3, &[(&f, 6_000), (&f, 6_000)], BOB);
    connect(&storage, &runtime, 100, 0, vec![small.clone()]);
    connect(&storage, &runtime, 101, 0, vec![exact.clone()]);
    connect(&storage, &runtime, 102, 0, vec![split.clone()]);

    let claims = select(&rules, &storage, 1, genesis());
    assert_eq!(txids(&claims), vec![txid(&exact), txid(&split)]);
    assert_eq!(
        claims[1].outputs,
        vec![
            PegInOutput { vout: 0, amount_sats: 6_000, script_pubkey: script_of(&f) },
            PegInOutput { vout: 1, amount_sats: 6_000, script_pubkey: script_of(&f) },
        ]
    );
    assert_eq!(claims[1].amount_sats, 12_000);
    // Governance raises the minimum at height 7.
    assert!(select(&rules, &storage, 7, genesis()).is_empty());

    // `select` only skips; the watcher records the rejection, and then the deposit is no longer open.
    assert!(open(&storage).contains(&txid(&small)));
    write(&storage, |tx| tx.reject_deposit(&txid(&small), "below_minimum"));
    assert!(!open(&storage).contains(&txid(&small)));
    assert_eq!(storage.read().unwrap().deposit(&txid(&small)).unwrap().unwrap().rejection, "below_minimum");
    assert_eq!(txids(&select(&rules, &storage, 1, genesis())), vec![txid(&exact), txid(&split)]);
}

#[test]
fn nothing_is_claimed_while_pegins_are_paused_or_without_a_bitcoin_node() {
    let f = federation(1, 0);
    let runtime =
        runtime(params(1, 1_000, 100), &[&f], vec![pause_pegins("p", 3, true), pause_pegins("r", 6, false)]);
    let rules = rules(&runtime);
    let storage = Storage::in_memory().unwrap();
    let a = deposit(1, &[(&f, 10_000)], ALICE);
    connect(&storage, &runtime, 100, 0, vec![a.clone()]);

    for height in 1..=8 {
        let claims = select(&rules, &storage, height, genesis());
        let paused = (3..6).contains(&height);
        assert_eq!(txids(&claims), if paused { vec![] } else { vec![txid(&a)] }, "height {height}");
    }
    let blind = PeginRules::new(runtime, None);
    assert!(select(&blind, &storage, 1, genesis()).is_empty());
}

#[test]
fn a_block_claims_at_most_max_claims_and_the_rest_wait_for_the_next() {
    let f = federation(1, 0);
    let runtime = runtime(params(1, 1_000, 100), &[&f], vec![]);
    let storage = Storage::in_memory().unwrap();
    let deposits: Vec<Transaction> = (1..=5).map(|n| deposit(n, &[(&f, 10_000)], ALICE)).collect();
    for (i, tx) in deposits.iter().enumerate() {
        connect(&storage, &runtime, 100 + i as u64, 0, vec![tx.clone()]);
    }
    let all: Vec<B256> = deposits.iter().map(txid).collect();
    assert_eq!(txids(&select(&rules(&runtime), &storage, 1, genesis())), all);

    let capped = rules(&runtime).with_max_claims(2);
    let first = select(&capped, &storage, 1, genesis());
    assert_eq!(txids(&first), all[..2]);
    let b1 = set_head(&storage, &block(GENESIS, 1, 0, first));
    let second = select(&capped, &storage, 2, b1);
    assert_eq!(txids(&second), all[2..4]);
    let b2 = set_head(&storage, &block(b1.hash, 2, 0, second));
    assert_eq!(txids(&select(&capped, &storage, 3, b2)), all[4..]);
}

// ---------------------------------------------------------------------------------------------------
// Claims and the consensus chain
// ---------------------------------------------------------------------------------------------------

#[test]
fn claimed_deposits_are_not_claimed_again_on_that_chain_but_are_on_a_fork_without_the_claim() {
    let f = federation(1, 0);
    let runtime = runtime(params(1, 1_000, 100), &[&f], vec![]);
    let uncapped = rules(&runtime);
    let rules = uncapped.clone().with_max_claims(2);
    let storage = Storage::in_memory().unwrap();
    let (a, b, c) = (
        deposit(1, &[(&f, 10_000)], ALICE),
        deposit(2, &[(&f, 20_000)], BOB),
        deposit(3, &[(&f, 30_000)], BOB),
    );
    connect(&storage, &runtime, 100, 0, vec![a.clone(), b.clone()]);
    connect(&storage, &runtime, 101, 0, vec![c.clone()]);

    let first = select(&rules, &storage, 1, genesis());
    assert_eq!(txids(&first), sorted(vec![txid(&a), txid(&b)]));
    let b1 = set_head(&storage, &block(GENESIS, 1, 0, first));
    let second = select(&rules, &storage, 2, b1);
    assert_eq!(txids(&second), vec![txid(&c)], "A and B are minted on this chain");
    let b2 = set_head(&storage, &block(b1.hash, 2, 0, second));
    assert!(select(&rules, &storage, 3, b2).is_empty());
    assert_eq!(
        storage.read().unwrap().minted_on(&txid(&a), 0, b2).unwrap(),
        Some(Minted { block: b1, amount_sats: 10_000 })
    );

    // A fork from genesis becomes the head: none of its blocks claimed anything.
    let c1 = put_block(&storage, &block(GENESIS, 1, 1, vec![]));
    let c2 = set_head(&storage, &block(c1.hash, 2, 1, vec![]));
    let read = storage.read().unwrap();
    assert_eq!(read.minted_on(&txid(&a), 0, c2).unwrap(), None);
    assert_eq!(read.claims_of(&txid(&a), 0).unwrap(), vec![Minted { block: b1, amount_sats: 10_000 }]);
    drop(read);
    let again = select(&uncapped, &storage, 3, c2);
    assert_eq!(txids(&again), [sorted(vec![txid(&a), txid(&b)]), vec![txid(&c)]].concat());

    // Back to the first branch: nothing is claimable there, nor open on it.
    let b3 = set_head(&storage, &block(b2.hash, 3, 0, vec![]));
    assert!(select(&rules, &storage, 4, b3).is_empty());
    assert!(open(&storage).is_empty());
}

#[test]
fn a_bitcoin_reorg_forgets_unminted_deposits_and_marks_minted_ones() {
    let f = federation(1, 0);
    let runtime = runtime(params(1, 1_000, 100), &[&f], vec![]);
    let rules = rules(&runtime);
    let storage = Storage::in_memory().unwrap();
    let (minted, unminted) = (deposit(1, &[(&f, 10_000)], ALICE), deposit(2, &[(&f, 20_000)], BOB));
    let b99 = connect(&storage, &runtime, 99, 0, vec![]);
    let b100 = connect(&storage, &runtime, 100, 0, vec![minted.clone(), unminted.clone()]);
    let claim: Vec<PegInClaim> =
        select(&rules, &storage, 1, genesis()).into_iter().filter(|c| c.txid == txid(&minted)).collect();
    let b1 = set_head(&storage, &block(GENESIS, 1, 0, claim));
    assert_eq!(open(&storage), vec![txid(&unminted)]);

    let reorged = write(&storage, |tx| tx.disconnect_bitcoin_block(100));
    assert_eq!(reorged.len(), 1);
    assert_eq!((reorged[0].txid, reorged[0].bitcoin_block, reorged[0].reorged_out), (txid(&minted), b100, 1));
    let read = storage.read().unwrap();
    assert_eq!(read.bitcoin_tip().unwrap(), Some((99, b99)));
    assert_eq!(read.deposit(&txid(&unminted)).unwrap(), None, "an unminted deposit is forgotten");
    assert_eq!(read.deposit(&txid(&minted)).unwrap().unwrap().reorged_out, 1, "a minted one stays, marked");
    assert_eq!(read.deposit_count().unwrap(), 1);
    assert_eq!(read.minted_canonical(&txid(&minted)).unwrap(), Some(b1));
    assert!(read.open_deposits(10).unwrap().is_empty());
    drop(read);
    assert!(select(&rules, &storage, 2, b1).is_empty());
    assert!(write(&storage, |tx| tx.disconnect_bitcoin_block(100)).is_empty(), "nothing left at 100");

    // The competing block at 100 mines both again: the unminted one is open again, the minted one is
    // recorded in its new block and stays minted.
    let c100 = connect(&storage, &runtime, 100, 1, vec![minted.clone(), unminted.clone()]);
    let read = storage.read().unwrap();
    let record = read.deposit(&txid(&minted)).unwrap().unwrap();
    assert_eq!((record.bitcoin_block, record.reorged_out), (c100, 0));
    drop(read);
    assert_eq!(open(&storage), vec![txid(&unminted)]);
    let claims = select(&rules, &storage, 2, b1);
    assert_eq!((txids(&claims), claims[0].bitcoin_block), (vec![txid(&unminted)], c100));
}

#[test]
fn deposits_to_the_previous_federation_are_claimed_within_the_grace_period_only() {
    let (old, new) = (federation(1, 0), federation(4, 10));
    let runtime = runtime(params(1, 1_000, 5), &[&old, &new], vec![]);
    let rules = rules(&runtime);
    let storage = Storage::in_memory().unwrap();
    let to_old = deposit(1, &[(&old, 20_000)], ALICE);
    let to_new = deposit(2, &[(&new, 30_000)], BOB);
    let to_both = deposit(3, &[(&old, 4_000), (&new, 6_000)], ALICE);
    connect(&storage, &runtime, 100, 0, vec![to_old.clone()]);
    connect(&storage, &runtime, 101, 0, vec![to_new.clone()]);
    connect(&storage, &runtime, 102, 0, vec![to_both.clone()]);

    let script = |f: &Federation| f.address.script_pubkey();
    assert_eq!(deposit_scripts_at(&runtime, 9), HashSet::from([script(&old)]));
    assert_eq!(deposit_scripts_at(&runtime, 14), HashSet::from([script(&old), script(&new)]));
    assert_eq!(deposit_scripts_at(&runtime, 15), HashSet::from([script(&new)]));

    let at = |height: u64| select(&rules, &storage, height, BlockRef { height: height - 1, hash: GENESIS });
    let outputs = |claims: &[PegInClaim]| -> Vec<(B256, Vec<u32>, u64)> {
        claims.iter().map(|c| (c.txid, c.outputs.iter().map(|o| o.vout).collect(), c.amount_sats)).collect()
    };
    // Before the rotation only the old federation holds deposits.
    assert_eq!(outputs(&at(9)), vec![(txid(&to_old), vec![0], 20_000), (txid(&to_both), vec![0], 4_000)]);
    // Within the grace period, both.
    for height in [10, 14] {
        assert_eq!(
            outputs(&at(height)),
            vec![
                (txid(&to_old), vec![0], 20_000),
                (txid(&to_new), vec![0], 30_000),
                (txid(&to_both), vec![0, 1], 10_000)
            ],
            "height {height}"
        );
    }
    // After it, only what pays the new federation.
    assert_eq!(outputs(&at(15)), vec![(txid(&to_new), vec![0], 30_000), (txid(&to_both), vec![1], 6_000)]);

    // Why a deposit is not minted: paying only the old federation after the grace period is a
    // rejection; paying only a federation announced for a later height is not (it waits for it).
    let record = |tx: &Transaction| storage.read().unwrap().deposit(&txid(tx)).unwrap().unwrap();
    let (valid_9, future_9) = (deposit_scripts_at(&runtime, 9), future_scripts_at(&runtime, 9));
    assert_eq!(future_9, HashSet::from([script(&new)]));
    assert_eq!(rejection_at(&record(&to_new), &valid_9, &future_9, 1_000), None, "waits for height 10");
    let (valid_15, future_15) = (deposit_scripts_at(&runtime, 15), future_scripts_at(&runtime, 15));
    assert!(future_15.is_empty());
    assert_eq!(
        rejection_at(&record(&to_old), &valid_15, &future_15, 1_000),
        Some(Rejection::FederationExpired)
    );
    assert_eq!(rejection_at(&record(&to_both), &valid_15, &future_15, 1_000), None, "its new output counts");
    assert_eq!(rejection_at(&record(&to_both), &valid_15, &future_15, 7_000), Some(Rejection::BelowMinimum));
}

#[test]
fn the_minted_set_and_federation_utxos_follow_an_alys_reorg() {
    let f = federation(1, 0);
    let runtime = runtime(params(1, 1_000, 100), &[&f], vec![]);
    let rules = rules(&runtime);
    let storage = Storage::in_memory().unwrap();
    let (a, b) = (deposit(1, &[(&f, 10_000)], ALICE), deposit(2, &[(&f, 20_000), (&f, 5_000)], BOB));
    connect(&storage, &runtime, 100, 0, vec![a.clone()]);
    connect(&storage, &runtime, 101, 0, vec![b.clone()]);
    let claims = select(&rules, &storage, 1, genesis());
    let (claim_a, claim_b) = (claims[0].clone(), claims[1].clone());

    let b1 = set_head(&storage, &block(GENESIS, 1, 0, vec![claim_a]));
    let b2 = set_head(&storage, &block(b1.hash, 2, 0, vec![claim_b.clone()]));
    let (ta, tb) = (txid(&a), txid(&b));
    let first_branch =
        BTreeSet::from([utxo(ta, 0, 10_000, b1), utxo(tb, 0, 20_000, b2), utxo(tb, 1, 5_000, b2)]);
    assert_eq!(utxos(&storage), first_branch);
    assert!(open(&storage).is_empty());

    // A competing branch that claims only B, in its second block, becomes canonical.
    let c1 = put_block(&storage, &block(GENESIS, 1, 1, vec![]));
    let c2 = put_block(&storage, &block(c1.hash, 2, 1, vec![claim_b]));
    let c3 = set_head(&storage, &block(c2.hash, 3, 1, vec![]));
    assert_eq!(utxos(&storage), BTreeSet::from([utxo(tb, 0, 20_000, c2), utxo(tb, 1, 5_000, c2)]));
    let read = storage.read().unwrap();
    assert_eq!(read.minted_on(&ta, 0, c3).unwrap(), None);
    assert_eq!(read.minted_on(&tb, 1, c3).unwrap(), Some(Minted { block: c2, amount_sats: 5_000 }));
    // The losing branch still minted A, walking its stored blocks.
    assert_eq!(read.minted_on(&ta, 0, b2).unwrap(), Some(Minted { block: b1, amount_sats: 10_000 }));
    assert_eq!(read.minted_canonical(&ta).unwrap(), None);
    assert_eq!(read.minted_canonical(&tb).unwrap(), Some(c2));
    assert_eq!(read.claims_of(&tb, 0).unwrap().len(), 2, "claimed on both branches");
    drop(read);
    assert_eq!(open(&storage), vec![ta]);
    assert_eq!(txids(&select(&rules, &storage, 4, c3)), vec![ta]);

    // And back.
    let b3 = set_head(&storage, &block(b2.hash, 3, 0, vec![]));
    let b4 = set_head(&storage, &block(b3.hash, 4, 0, vec![]));
    assert_eq!(utxos(&storage), first_branch);
    assert!(open(&storage).is_empty());
    assert!(select(&rules, &storage, 5, b4).is_empty());
}

#[test]
fn a_deposit_whose_bitcoin_block_left_is_not_claimed_after_its_claim_is_reorged_out() {
    // The deposit is minted, its Bitcoin block leaves the best chain (a reorg deeper than the
    // confirmations: it stays recorded, `reorged_out`), then an Alys reorg drops the claiming block.
    // `reopen_claims` puts it back on the open list with its vanished block, and `select` claims it:
    // every importer refuses that block (`NotInBestChain`) for as long as the deposit stays open.
    let f = federation(1, 0);
    let runtime = runtime(params(1, 1_000, 100), &[&f], vec![]);
    let rules = rules(&runtime);
    let storage = Storage::in_memory().unwrap();
    let a = deposit(1, &[(&f, 10_000)], ALICE);
    connect(&storage, &runtime, 100, 0, vec![a]);
    let b1 = set_head(&storage, &block(GENESIS, 1, 0, select(&rules, &storage, 1, genesis())));
    assert_eq!(write(&storage, |tx| tx.disconnect_bitcoin_block(100)).len(), 1);
    connect(&storage, &runtime, 100, 1, vec![]);
    connect(&storage, &runtime, 101, 1, vec![]);
    assert!(select(&rules, &storage, 2, b1).is_empty());

    let c1 = put_block(&storage, &block(GENESIS, 1, 1, vec![]));
    let c2 = set_head(&storage, &block(c1.hash, 2, 1, vec![]));
    let claims = select(&rules, &storage, 3, c2);
    let read = storage.read().unwrap();
    for claim in &claims {
        let record = read.deposit(&claim.txid).unwrap().unwrap();
        assert_eq!(
            read.bitcoin_block_at(record.bitcoin_height).unwrap(),
            Some(claim.bitcoin_block),
            "claimed a deposit whose Bitcoin block is no longer followed"
        );
    }
}

// ---------------------------------------------------------------------------------------------------
// State machine: Bitcoin blocks come and go, the author claims, Alys reorgs
// ---------------------------------------------------------------------------------------------------

mod state_machine {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// A Bitcoin block with deposits of these amounts (some below the minimum).
        Bitcoin(Vec<u64>),
        /// The Bitcoin tip leaves the best chain.
        BitcoinReorg,
        /// The author claims on the head.
        Produce,
        /// A block claiming what `select` offers on the ancestor `depth` below the head becomes the head.
        Fork(u64),
    }

    fn any_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => prop::collection::vec(prop_oneof![Just(500u64), 1_000u64..50_000], 0..4).prop_map(Op::Bitcoin),
            1 => Just(Op::BitcoinReorg),
            3 => Just(Op::Produce),
            1 => (0u64..4).prop_map(Op::Fork),
        ]
    }

    struct Model {
        storage: Storage,
        runtime: RuntimeView,
        rules: PeginRules,
        federation: Federation,
        deposits: u32,
        salt: u64,
    }

    impl Model {
        fn new() -> Self {
            let federation = federation(1, 0);
            let runtime = runtime(params(2, 1_000, 100), &[&federation], vec![]);
            let rules = rules(&runtime).with_max_claims(3);
            Self { storage: Storage::in_memory().unwrap(), runtime, rules, federation, deposits: 0, salt: 0 }
        }

        fn head(&self) -> BlockRef {
            self.storage.read().unwrap().head().unwrap().unwrap_or_else(genesis)
        }

        fn ancestor(&self, depth: u64) -> BlockRef {
            let head = self.head();
            let height = head.height.saturating_sub(depth);
            if height == 0 {
                return genesis();
            }
            BlockRef { height, hash: self.storage.read().unwrap().canonical_hash(height).unwrap().unwrap() }
        }

        fn claim_on(&mut self, parent: BlockRef) {
            let claims = select(&self.rules, &self.storage, parent.height + 1, parent);
            let read = self.storage.read().unwrap();
            for claim in &claims {
                for output in &claim.outputs {
                    assert_eq!(
                        read.minted_on(&claim.txid, output.vout, parent).unwrap(),
                        None,
                        "claimed twice"
                    );
                }
            }
            drop(read);
            self.salt += 1;
            set_head(&self.storage, &block(parent.hash, parent.height + 1, self.salt, claims));
        }

        fn apply(&mut self, op: Op) {
            match op {
                Op::Bitcoin(amounts) => {
                    let height =
                        self.storage.read().unwrap().bitcoin_tip().unwrap().map_or(100, |(h, _)| h + 1);
                    let txs = amounts
                        .iter()
                        .map(|sats| {
                            self.deposits += 1;
                            deposit(self.deposits, &[(&self.federation, *sats)], ALICE)
                        })
                        .collect();
                    self.salt += 1;
                    connect(&self.storage, &self.runtime, height, self.salt as u32, txs);
                }
                Op::BitcoinReorg => {
                    if let Some((height, _)) = self.storage.read().unwrap().bitcoin_tip().unwrap() {
                        write(&self.storage, |tx| tx.disconnect_bitcoin_block(height));
                    }
                }
                Op::Produce => self.claim_on(self.head()),
                Op::Fork(depth) => self.claim_on(self.ancestor(depth + 1)),
            }
        }

        /// Invariant 1 on the canonical chain, and the open list and UTXO set agree with it.
        fn check(&self) {
            let read = self.storage.read().unwrap();
            let head = self.head();
            let mut minted: BTreeMap<(B256, u32), (u64, BlockRef)> = BTreeMap::new();
            for height in 1..=head.height {
                let block = read.block_by_height(height).unwrap().unwrap();
                let at = BlockRef { height, hash: block.header.hash() };
                for claim in &block.header.pegins {
                    for output in &claim.outputs {
                        let previous = minted.insert((claim.txid, output.vout), (output.amount_sats, at));
                        assert_eq!(previous, None, "an outpoint minted twice on the canonical chain");
                    }
                }
            }
            let utxos: BTreeMap<(B256, u32), (u64, BlockRef)> = read
                .federation_utxos()
                .unwrap()
                .into_iter()
                .map(|u| ((u.txid, u.vout), (u.amount_sats, u.minted_in)))
                .collect();
            assert_eq!(utxos, minted, "federation UTXOs are not the canonical chain's claims");
            let open: BTreeSet<B256> =
                read.open_deposits(100_000).unwrap().into_iter().map(|d| d.txid).collect();
            for record in read.deposits_newest_first(0, 100_000).unwrap() {
                let minted_here = read.minted_canonical(&record.txid).unwrap().is_some();
                // A deposit whose Bitcoin block left the best chain after it was minted is never reopened.
                let expected = !record.is_rejected() && !minted_here && record.reorged_out == 0;
                assert_eq!(open.contains(&record.txid), expected, "open list of {:?}", record.txid);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn no_outpoint_is_minted_twice_on_the_canonical_chain(ops in prop::collection::vec(any_op(), 1..50)) {
            let mut model = Model::new();
            for op in ops {
                model.apply(op);
                model.check();
            }
        }
    }
}

/// The script a federation's deposits pay, as claims carry it.
fn script_of(federation: &alys_governance::Federation) -> Bytes {
    Bytes::copy_from_slice(federation.address.script_pubkey().as_bytes())
}
