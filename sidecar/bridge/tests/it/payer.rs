#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]
//! The peg-out payer's state machine against the node's database: a real 2-of-3 federation spend,
//! signed by a stand-in governance with real secp256k1 keys and checked by the payer (every signature,
//! libbitcoinconsensus on every input), handed to a stand-in bitcoind that verifies every script again
//! and answers `sendrawtransaction` with Bitcoin Core's codes. Bitcoin blocks are followed the way the
//! peg-in watcher commits them (`connect_bitcoin_block` with `confirm_payouts`, `disconnect_bitcoin_block`
//! with `unconfirm_payouts`).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use alloy_primitives::{B256, Bytes};
use alys_bitcoin::BitcoinError;
use alys_bridge::pegout::payer::{Payer, PayerConfig, PayerIo, request_id, status_of};
use alys_governance::{
    Decisions, Federation, FederationHistory, ProposalBook, RuntimeParameters, RuntimeView,
    stream::StreamError, update_digest, witness::verify_transaction,
};
use alys_primitives::{
    Approvals, BlockRef, BurnRef, ConsensusHeader, PegInClaim, PegInOutput, PegoutBlock, SignedBlock,
};
use alys_proto::governance::v1::{
    FederationConfig, FederationMember, FederationUpdate, SignatureRequest, SignatureResponse,
    SignatureStatus, WitnessData,
};
use alys_storage::{GovernanceRead, PayoutRead, PayoutRecord, PayoutStatus, Storage, StorageError, WriteTx};
use bitcoin::{
    Amount, BlockHash, Network, OutPoint, ScriptBuf, Transaction, TxIn, TxOut, Txid,
    absolute::LockTime,
    consensus::encode::deserialize_hex,
    ecdsa,
    hashes::Hash as _,
    secp256k1::{Message, PublicKey, Secp256k1, SecretKey},
    sighash::{EcdsaSighashType, SighashCache},
    transaction::Version,
};
use tokio::sync::watch;

const DEPOSIT_SATS: u64 = 1_000_000;

fn secret(byte: u8) -> SecretKey {
    SecretKey::from_slice(&[byte; 32]).unwrap()
}

/// A 2-of-3 federation of keys 1, 2, 3, signed by governance key 0x99.
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
    let governance = PublicKey::from_secret_key(&secp, &secret(0x99));
    Federation::from_update(&update, &governance, Network::Regtest).unwrap()
}

fn runtime(federation: &Federation) -> RuntimeView {
    let mut history = FederationHistory::default();
    assert!(history.insert(federation.clone()).unwrap());
    let book = ProposalBook::new(RuntimeParameters::with_max_blocks_without_pow(10));
    let (_publisher, view) = watch::channel(Arc::new(Decisions::new(book, history)));
    RuntimeView::new(view)
}

fn write<T>(storage: &Storage, f: impl FnOnce(&WriteTx) -> Result<T, StorageError>) -> T {
    let tx = storage.write().unwrap();
    let out = f(&tx).unwrap();
    tx.commit().unwrap();
    out
}

fn b256(txid: Txid) -> B256 {
    B256::from(txid.to_byte_array())
}

/// The Bitcoin block hash the tests give height `height`.
fn bitcoin_hash(height: u64) -> BlockHash {
    BlockHash::from_byte_array([height as u8; 32])
}

/// How the stand-in governance answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Governance {
    /// Unreachable: every request times out.
    Down,
    /// Signs with two members' keys.
    Signs,
    /// Answers "complete" with signatures by keys outside the federation.
    Forges,
    /// Declines.
    Declines,
}

#[derive(Debug)]
struct State {
    governance: Governance,
    /// Request ids asked, in order.
    asked: Vec<String>,
    mempool: HashMap<Txid, Transaction>,
    /// Mined transactions: their block.
    chain: HashMap<Txid, (u64, BlockHash)>,
    /// Transactions the mempool accepted, in order (a repeat is not counted).
    accepted: Vec<Txid>,
    /// While set, `sendrawtransaction` answers -25 (a parent not broadcast yet).
    missing_inputs: bool,
}

/// Stand-ins for governance and bitcoind, sharing the node's database as the stream actor does.
#[derive(Debug, Clone)]
struct World {
    storage: Arc<Storage>,
    federation: Federation,
    /// The outputs transactions may spend (the deposit), for script verification.
    utxos: HashMap<OutPoint, TxOut>,
    state: Arc<Mutex<State>>,
}

impl World {
    fn set(&self, governance: Governance) {
        self.state.lock().unwrap().governance = governance;
    }

    fn asked(&self) -> Vec<String> {
        self.state.lock().unwrap().asked.clone()
    }

    fn accepted(&self) -> Vec<Txid> {
        self.state.lock().unwrap().accepted.clone()
    }

    fn in_mempool(&self, txid: Txid) -> bool {
        self.state.lock().unwrap().mempool.contains_key(&txid)
    }

    /// Signatures by `keys` for every input of the requested transaction.
    fn signatures(&self, request: &SignatureRequest, keys: &[u8]) -> Vec<WitnessData> {
        let tx: Transaction = deserialize_hex(&request.tx_hex).unwrap();
        let secp = Secp256k1::new();
        let mut cache = SighashCache::new(&tx);
        let mut out = Vec::new();
        for (index, amount) in request.amounts.iter().enumerate() {
            let sighash = cache
                .p2wsh_signature_hash(
                    index,
                    &self.federation.witness_script,
                    Amount::from_sat(*amount),
                    EcdsaSighashType::All,
                )
                .unwrap();
            for key in keys {
                let signature =
                    secp.sign_ecdsa(&Message::from_digest(sighash.to_byte_array()), &secret(*key));
                out.push(WitnessData {
                    signature: ecdsa::Signature { signature, sighash_type: EcdsaSighashType::All }.to_vec(),
                    public_key: PublicKey::from_secret_key(&secp, &secret(*key)).serialize().to_vec(),
                    sig_type: 1,
                });
            }
        }
        out
    }

    /// `tx` signed as governance would (for a copy "another node" broadcast).
    fn signed(&self, tx: &Transaction) -> Transaction {
        let request = SignatureRequest {
            tx_hex: bitcoin::consensus::encode::serialize_hex(tx),
            input_indices: vec![0],
            amounts: vec![DEPOSIT_SATS],
            ..Default::default()
        };
        let response = SignatureResponse {
            status: SignatureStatus::Complete as i32,
            signatures: self.signatures(&request, &[1, 3]),
            ..Default::default()
        };
        let spent = vec![self.utxos.values().next().unwrap().clone()];
        alys_governance::apply_response(tx, &spent, &self.federation, &response).unwrap()
    }

    /// Stores an answer under `id` as the stream actor does when governance answers (an empty message
    /// stands for it: this crate does not encode protobuf).
    fn store_answer(&self, id: &str) {
        write(&self.storage, |tx| {
            tx.put_signature_request(id, b"request")?;
            tx.answer_signature_request(id, &[])
        });
    }

    /// Mines `txs` (and the mempool) into a block at `height` and follows it as the peg-in watcher does.
    fn mine(&self, height: u64, txs: &[Transaction]) -> Vec<B256> {
        let mut block = txs.to_vec();
        {
            let mut state = self.state.lock().unwrap();
            block.extend(state.mempool.drain().map(|(_, tx)| tx));
            for tx in &block {
                state.chain.insert(tx.compute_txid(), (height, bitcoin_hash(height)));
            }
        }
        follow(&self.storage, height, &block)
    }
}

/// The watcher's commit of a Bitcoin block: the block, and the payouts it confirms.
fn follow(storage: &Storage, height: u64, txs: &[Transaction]) -> Vec<B256> {
    let hash = b256_block(bitcoin_hash(height));
    write(storage, |tx| {
        tx.connect_bitcoin_block(height, hash, &[])?;
        tx.confirm_payouts(height, hash, txs)
    })
}

/// The watcher's commit undoing the block at `height`.
fn unfollow(storage: &Storage, height: u64) -> Vec<B256> {
    write(storage, |tx| {
        tx.disconnect_bitcoin_block(height)?;
        tx.unconfirm_payouts(height)
    })
}

fn b256_block(hash: BlockHash) -> B256 {
    B256::from(hash.to_byte_array())
}

impl PayerIo for World {
    async fn request_signatures(
        &self,
        id: String,
        request: SignatureRequest,
    ) -> Result<SignatureResponse, StreamError> {
        let mode = {
            let mut state = self.state.lock().unwrap();
            state.asked.push(id.clone());
            state.governance
        };
        let response = match mode {
            Governance::Down => return Err(StreamError::Timeout { request_id: id, after: Duration::ZERO }),
            Governance::Signs => SignatureResponse {
                status: SignatureStatus::Complete as i32,
                signatures: self.signatures(&request, &[1, 2]),
                ..Default::default()
            },
            Governance::Forges => SignatureResponse {
                status: SignatureStatus::Complete as i32,
                signatures: self.signatures(&request, &[7, 8]),
                ..Default::default()
            },
            Governance::Declines => SignatureResponse {
                status: SignatureStatus::Failed as i32,
                failure_reason: Some("policy".to_owned()),
                ..Default::default()
            },
        };
        self.store_answer(&id);
        Ok(response)
    }

    async fn send_transaction(&self, tx: Transaction) -> Result<Txid, BitcoinError> {
        let rpc = |code, message: &str| BitcoinError::Rpc { code, message: message.to_owned() };
        let txid = tx.compute_txid();
        let mut state = self.state.lock().unwrap();
        if state.chain.contains_key(&txid) {
            return Err(rpc(-27, "Transaction outputs already in utxo set"));
        }
        if state.mempool.contains_key(&txid) {
            return Ok(txid);
        }
        if state.missing_inputs {
            return Err(rpc(-25, "bad-txns-inputs-missingorspent"));
        }
        let spent: Vec<TxOut> = tx.input.iter().map(|i| self.utxos[&i.previous_output].clone()).collect();
        if let Err(error) = verify_transaction(&tx, &spent) {
            return Err(rpc(-26, &format!("mandatory-script-verify-flag-failed ({error})")));
        }
        state.mempool.insert(txid, tx);
        state.accepted.push(txid);
        Ok(txid)
    }

    async fn in_mempool(&self, txid: Txid) -> Result<bool, BitcoinError> {
        Ok(self.state.lock().unwrap().mempool.contains_key(&txid))
    }

    async fn locate(&self, txid: Txid) -> Result<Option<(u64, BlockHash)>, BitcoinError> {
        Ok(self.state.lock().unwrap().chain.get(&txid).copied())
    }
}

fn block(parent: B256, height: u64, pegins: Vec<PegInClaim>, pegout: Option<PegoutBlock>) -> SignedBlock {
    SignedBlock {
        header: ConsensusHeader {
            parent_hash: parent,
            parent_seal: Default::default(),
            height,
            slot: height,
            author: 0,
            execution_block_hash: B256::with_last_byte(height as u8),
            pegins,
            auxpow: Bytes::new(),
            pegout,
        },
        execution_block: Bytes::new(),
        execution_requests: vec![],
        author_signature: Bytes::new(),
        approvals: Approvals { signers: Bytes::new(), signature: Bytes::new() },
    }
}

fn burn(n: u64) -> BurnRef {
    BurnRef { block_number: n, log_index: 0, block_hash: B256::repeat_byte(n as u8) }
}

struct Harness {
    storage: Arc<Storage>,
    world: World,
    payer: Payer<World>,
    /// The chain: 1 mints a deposit to the federation, 2 proposes the peg-out spending it, 3 only
    /// refunds.
    blocks: Vec<BlockRef>,
    unsigned: Transaction,
    txid: B256,
}

impl Harness {
    fn new() -> Self {
        let federation = federation();
        let script = federation.address.script_pubkey();
        let deposit = OutPoint::new(Txid::from_byte_array([0xd1; 32]), 0);
        let claim = PegInClaim {
            txid: b256(deposit.txid),
            bitcoin_block: B256::repeat_byte(0xb1),
            outputs: vec![PegInOutput {
                vout: 0,
                amount_sats: DEPOSIT_SATS,
                script_pubkey: script.to_bytes().into(),
            }],
            amount_sats: DEPOSIT_SATS,
            evm_address: alloy_primitives::Address::repeat_byte(0xa1),
        };
        let unsigned = Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn { previous_output: deposit, ..Default::default() }],
            output: vec![
                TxOut {
                    value: Amount::from_sat(400_000),
                    script_pubkey: ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array([7u8; 20])),
                },
                TxOut { value: Amount::from_sat(590_000), script_pubkey: script.clone() },
            ],
        };
        let pegout = PegoutBlock {
            paid: vec![burn(1)],
            refunded: vec![],
            fee_rate_sat_vb: 10,
            tx: bitcoin::consensus::serialize(&unsigned).into(),
            replaces: None,
        };
        let refund = PegoutBlock {
            paid: vec![],
            refunded: vec![burn(2)],
            fee_rate_sat_vb: 10,
            tx: Bytes::new(),
            replaces: None,
        };
        let storage = Arc::new(Storage::in_memory().unwrap());
        let b1 = write(&storage, |tx| tx.set_head(&block(B256::ZERO, 1, vec![claim], None)));
        let b2 = write(&storage, |tx| tx.set_head(&block(b1.hash, 2, vec![], Some(pegout))));
        let b3 = write(&storage, |tx| tx.set_head(&block(b2.hash, 3, vec![], Some(refund))));
        let world = World {
            storage: Arc::clone(&storage),
            federation: federation.clone(),
            utxos: HashMap::from([(
                deposit,
                TxOut { value: Amount::from_sat(DEPOSIT_SATS), script_pubkey: script },
            )]),
            state: Arc::new(Mutex::new(State {
                governance: Governance::Signs,
                asked: vec![],
                mempool: HashMap::new(),
                chain: HashMap::new(),
                accepted: vec![],
                missing_inputs: false,
            })),
        };
        let config = PayerConfig::default().with_retry_interval(Duration::ZERO).with_pegout_confirmations(6);
        let payer = Payer::new(Arc::clone(&storage), world.clone(), runtime(&federation), config);
        let txid = b256(unsigned.compute_txid());
        Self { storage, world, payer, blocks: vec![b1, b2, b3], unsigned, txid }
    }

    /// The harness with every block final.
    fn finalized() -> Self {
        let harness = Self::new();
        write(&harness.storage, |tx| tx.set_finalized(harness.blocks[2]));
        harness
    }

    fn record(&self) -> PayoutRecord {
        self.storage.read().unwrap().payout(&self.txid).unwrap().unwrap()
    }

    fn id(&self, attempt: u32) -> String {
        request_id(&self.txid, attempt)
    }

    fn answers(&self) -> Vec<String> {
        self.storage.read().unwrap().signature_responses().unwrap().into_iter().map(|(id, _)| id).collect()
    }

    async fn step(&mut self) {
        self.payer.step().await.unwrap();
    }
}

#[tokio::test]
async fn a_final_payout_is_signed_verified_and_broadcast_once() {
    let mut h = Harness::new();
    // Nothing is paid before its proposing block is final.
    write(&h.storage, |tx| tx.set_finalized(h.blocks[0]));
    h.step().await;
    assert!(h.storage.read().unwrap().payouts().unwrap().is_empty());
    assert_eq!(h.storage.read().unwrap().payer_height().unwrap(), 1);

    write(&h.storage, |tx| tx.set_finalized(h.blocks[2]));
    h.step().await;
    let record = h.record();
    assert_eq!((record.status, record.attempt, record.block_height), (PayoutStatus::Broadcast, 0, 2));
    assert_eq!(record.block_hash, h.blocks[1].hash);
    assert!(record.signed_secs > 0 && record.broadcast_secs > 0 && record.last_error.is_empty());
    // The refund-only block records nothing; one record, the range recorded once.
    assert_eq!(h.storage.read().unwrap().payouts().unwrap().len(), 1);
    assert_eq!(h.storage.read().unwrap().payer_height().unwrap(), 3);
    // The signed transaction is the proposal's, with witnesses that verify against the deposit.
    let signed: Transaction = bitcoin::consensus::deserialize(&record.signed_tx).unwrap();
    assert_eq!(b256(signed.compute_txid()), h.txid);
    assert_eq!(signed.input[0].witness.len(), 4, "empty, two signatures, the witness script");
    let deposit = h.world.utxos.values().next().unwrap().clone();
    verify_transaction(&signed, &[deposit]).unwrap();
    assert_eq!(h.world.asked(), vec![h.id(0)]);
    assert_eq!(h.world.accepted(), vec![signed.compute_txid()]);
    assert!(h.world.in_mempool(signed.compute_txid()));
    assert!(h.answers().is_empty(), "the answer was taken with the signed transaction");
    assert_eq!(status_of(&record, 0), ("broadcast", 0));

    // Later steps neither ask nor send again while the mempool holds it.
    h.step().await;
    h.step().await;
    assert_eq!(h.world.asked().len(), 1);
    assert_eq!(h.world.accepted().len(), 1);
    assert_eq!(h.record().status, PayoutStatus::Broadcast);
}

#[tokio::test]
async fn governance_away_then_back_signs_once_under_one_id() {
    let mut h = Harness::finalized();
    h.world.set(Governance::Down);
    h.step().await;
    assert_eq!(h.record().status, PayoutStatus::Requested);
    h.step().await;
    assert_eq!(h.record().status, PayoutStatus::Requested);
    assert!(h.world.accepted().is_empty());

    h.world.set(Governance::Signs);
    h.step().await;
    assert_eq!(h.record().status, PayoutStatus::Broadcast);
    assert_eq!(h.world.asked(), vec![h.id(0); 3], "the same id every time: governance signs once");
    assert_eq!(h.world.accepted().len(), 1);
}

#[tokio::test]
async fn a_refused_answer_is_not_broadcast_and_is_asked_again_under_the_next_attempt() {
    let mut h = Harness::finalized();
    h.world.set(Governance::Forges);
    h.step().await;
    let record = h.record();
    assert_eq!((record.status, record.attempt), (PayoutStatus::Final, 1));
    assert!(record.last_error.contains("valid signatures"), "{}", record.last_error);
    assert!(record.signed_tx.is_empty());
    assert!(h.world.accepted().is_empty(), "nothing unverified reaches bitcoind");
    assert!(h.answers().is_empty(), "the refused answer was taken");

    h.world.set(Governance::Declines);
    h.step().await;
    let record = h.record();
    assert_eq!((record.status, record.attempt), (PayoutStatus::Final, 2));
    assert!(record.last_error.contains("policy"), "{}", record.last_error);

    h.world.set(Governance::Signs);
    h.step().await;
    assert_eq!(h.record().status, PayoutStatus::Broadcast);
    assert_eq!(h.world.asked(), vec![h.id(0), h.id(1), h.id(2)]);

    // Governance answers an earlier id again, late: dropped, nothing sent twice.
    h.world.store_answer(&h.id(0));
    h.world.store_answer(&h.id(2));
    h.step().await;
    assert!(h.answers().is_empty());
    assert_eq!(h.world.accepted().len(), 1);
    assert_eq!(h.world.asked().len(), 3);
    assert_eq!(h.record().status, PayoutStatus::Broadcast);
}

#[tokio::test]
async fn a_confirmation_follows_its_bitcoin_block_and_a_disconnect_broadcasts_again() {
    let mut h = Harness::finalized();
    h.step().await;
    let signed: Transaction = bitcoin::consensus::deserialize(&h.record().signed_tx).unwrap();
    assert_eq!(h.world.mine(100, &[]), vec![h.txid]);
    let record = h.record();
    assert_eq!((record.status, record.confirmed_height), (PayoutStatus::Confirmed, 100));
    assert_eq!(record.confirmed_block, b256_block(bitcoin_hash(100)));
    assert_eq!(status_of(&record, 100), ("confirmed", 1));
    for height in 101..=105 {
        assert!(h.world.mine(height, &[]).is_empty());
    }
    assert_eq!(h.storage.read().unwrap().confirmations(&h.record(), 105), 6);
    h.step().await;
    assert_eq!(h.world.accepted().len(), 1, "a confirmed payout is not sent again");

    // Bitcoin reorganizes blocks 105..=100 away, and the transaction is not back in the mempool.
    for height in (100..=105).rev() {
        let undone = unfollow(&h.storage, height);
        assert_eq!(undone, if height == 100 { vec![h.txid] } else { vec![] });
    }
    h.world.state.lock().unwrap().chain.clear();
    let record = h.record();
    assert_eq!((record.status, record.confirmed_height), (PayoutStatus::Broadcast, 0));
    h.step().await;
    assert_eq!(h.world.accepted(), vec![signed.compute_txid(); 2], "broadcast again");
    assert!(h.world.in_mempool(signed.compute_txid()));
    assert_eq!(h.world.asked().len(), 1, "not signed again");
}

#[tokio::test]
async fn a_payout_another_node_broadcast_is_confirmed_without_signing_and_rebroadcast_from_the_block() {
    let mut h = Harness::finalized();
    h.world.set(Governance::Down);
    h.step().await;
    assert_eq!(h.record().status, PayoutStatus::Requested);
    // Another node got it signed and mined: the block's copy becomes the signed transaction.
    let theirs = h.world.signed(&h.unsigned);
    assert_eq!(h.world.mine(100, std::slice::from_ref(&theirs)), vec![h.txid]);
    let record = h.record();
    assert_eq!(record.status, PayoutStatus::Confirmed);
    assert_eq!(record.signed_tx, Bytes::from(bitcoin::consensus::serialize(&theirs)));
    // Governance answers the old request now: taken, not used.
    h.world.store_answer(&h.id(0));
    h.step().await;
    assert!(h.answers().is_empty());
    assert_eq!(h.world.asked().len(), 1, "a confirmed payout is not signed");

    unfollow(&h.storage, 100);
    h.world.state.lock().unwrap().chain.clear();
    h.step().await;
    assert_eq!(h.world.accepted(), vec![theirs.compute_txid()], "the block's copy, verified, sent");
    assert_eq!(h.record().status, PayoutStatus::Broadcast);
}

#[tokio::test]
async fn a_payout_mined_in_a_block_followed_before_it_was_recorded_is_found_confirmed() {
    let mut h = Harness::finalized();
    h.step().await;
    let txid = h.unsigned.compute_txid();
    // The follower walked block 50 before knowing the payout (a node catching up), and bitcoind mined
    // it there; the mempool no longer has it.
    follow(&h.storage, 50, &[]);
    {
        let mut state = h.world.state.lock().unwrap();
        state.mempool.clear();
        state.chain.insert(txid, (50, bitcoin_hash(50)));
    }
    assert_eq!(h.record().status, PayoutStatus::Broadcast);
    h.step().await;
    let record = h.record();
    assert_eq!((record.status, record.confirmed_height), (PayoutStatus::Confirmed, 50));
    assert_eq!(h.world.accepted().len(), 1, "already in chain: not accepted again");

    // Mined in a block the follower has not reached: left for the follower.
    let mut h = Harness::finalized();
    h.step().await;
    follow(&h.storage, 50, &[]);
    {
        let mut state = h.world.state.lock().unwrap();
        state.mempool.clear();
        state.chain.insert(txid, (51, bitcoin_hash(51)));
    }
    h.step().await;
    assert_eq!(h.record().status, PayoutStatus::Broadcast);
    assert_eq!(follow(&h.storage, 51, &[h.world.signed(&h.unsigned)]), vec![h.txid]);
    assert_eq!(h.record().confirmed_height, 51);
}

#[tokio::test]
async fn missing_inputs_keep_a_payout_signed_until_bitcoind_takes_it() {
    let mut h = Harness::finalized();
    h.world.state.lock().unwrap().missing_inputs = true;
    h.step().await;
    h.step().await;
    let record = h.record();
    assert_eq!(record.status, PayoutStatus::Signed);
    assert!(record.last_error.contains("missingorspent"), "{}", record.last_error);
    assert_eq!(h.world.asked().len(), 1);
    h.world.state.lock().unwrap().missing_inputs = false;
    h.step().await;
    assert_eq!(h.record().status, PayoutStatus::Broadcast);
    assert_eq!(h.world.accepted().len(), 1);
}

#[tokio::test]
async fn a_final_payout_spending_an_output_the_database_lacks_waits_instead_of_being_skipped() {
    let h = Harness::new();
    // A chain whose block 2 spends an output no block of this database created.
    let storage = Arc::new(Storage::in_memory().unwrap());
    let mut unknown = h.unsigned.clone();
    unknown.input[0].previous_output = OutPoint::new(Txid::from_byte_array([0xee; 32]), 3);
    let pegout = PegoutBlock {
        paid: vec![burn(1)],
        refunded: vec![],
        fee_rate_sat_vb: 10,
        tx: bitcoin::consensus::serialize(&unknown).into(),
        replaces: None,
    };
    let b1 = write(&storage, |tx| tx.set_head(&block(B256::ZERO, 1, vec![], None)));
    let b2 = write(&storage, |tx| tx.set_head(&block(b1.hash, 2, vec![], Some(pegout))));
    write(&storage, |tx| tx.set_finalized(b2));
    let world = World { storage: Arc::clone(&storage), ..h.world.clone() };
    let mut payer =
        Payer::new(Arc::clone(&storage), world.clone(), runtime(&federation()), PayerConfig::default());
    payer.step().await.unwrap();
    let read = storage.read().unwrap();
    assert_eq!(read.payer_height().unwrap(), 1, "held below the block it cannot record");
    assert!(read.payouts().unwrap().is_empty());
    assert!(world.asked().is_empty());
}
