//! The seed corpus, built from the code's own encoders and the real encodings its tests use, so a seed
//! is always what the current code sends or accepts. Each seed is named `seed-<what>`; the seeds meant
//! to pass every check are checked to pass here, so the fuzzer starts past the checks.

use alloy_consensus::{
    Block, BlockBody, EMPTY_OMMER_ROOT_HASH, Header, SignableTransaction, TxEip1559, TxEip2930, TxEip4844,
    TxEip7702, TxEnvelope, TxLegacy,
    proofs::{calculate_transaction_root, calculate_withdrawals_root},
};
use alloy_eips::{
    eip2930::{AccessList, AccessListItem},
    eip4895::Withdrawals,
    eip7685::Requests,
    eip7702::Authorization,
};
use alloy_primitives::{Address, B256, Bytes, U256, address, hex};
use alloy_rpc_types_engine::{Claims, ExecutionPayload, ExecutionPayloadV3, JwtSecret};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use alys_auxpow::{
    AuxPowHeader,
    pow::{
        AuxPow, MERGED_MINING_MAGIC, check, check_serialized, decode_auxpow, expected_index, mine, target_of,
    },
};
use alys_bridge::pegin::{Rejection, scan_transaction};
use alys_burns::{Burn, FeedEvent, FeedEventKind, FeedHead, test_utils};
use alys_chainspec::dev::DEV_PRIVATE_KEYS;
use alys_fuzz_replay::{encode_auxpow, fixtures::*};
use alys_governance::{
    Federation, Proposal, apply_response,
    signing::{emergency_data, parameter_data, sign_proposal},
};
use alys_network::{
    MAX_BLOCKS_PER_REQUEST, PeerStatus, Request, Response,
    codec::{decode_request, decode_response, encode_request, encode_response},
};
use alys_primitives::{
    Approval, Approvals, BlockRef, ConsensusHeader, EquivocationEvidence, PegInClaim, PegInOutput,
    SignedBlock,
};
use alys_proto::{
    burnfeed::v1 as feed,
    governance::v1::{
        EmergencyScope, ErrorResponse, FederationConfig, FederationMember, FederationUpdate, HeartbeatAck,
        NodeRegistrationAck, ProposalData, ProposalNotification, ProposalType, ResponseMetadata,
        SignatureResponse, SignatureStatus, SignatureType, StreamResponse, WitnessData, proposal_data,
        stream_response,
    },
};
use bitcoin::{
    Amount, CompressedPublicKey, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxMerkleNode, TxOut, Txid,
    Witness,
    absolute::LockTime,
    consensus::{deserialize, serialize},
    ecdsa,
    hashes::{Hash, sha256d},
    script::{Builder, PushBytesBuf},
    secp256k1::{Message, PublicKey, Secp256k1, SecretKey},
    sighash::{EcdsaSighashType, SighashCache},
    transaction,
};
use prost::Message as _;
use serde_json::{Value, json};

/// One seed: the target it belongs to, its name (`seed-<name>` in `fuzz/corpus/<target>/`), its bytes.
pub(crate) struct Seed {
    pub(crate) target: &'static str,
    pub(crate) name: String,
    pub(crate) bytes: Vec<u8>,
}

#[derive(Default)]
struct Seeds(Vec<Seed>);

impl Seeds {
    fn add(&mut self, target: &'static str, name: &str, bytes: impl Into<Vec<u8>>) {
        self.0.push(Seed { target, name: format!("seed-{name}"), bytes: bytes.into() });
    }

    fn json(&mut self, target: &'static str, name: &str, value: &Value) {
        self.add(target, name, serde_json::to_vec(value).unwrap());
    }
}

/// Every seed, in a fixed order.
pub(crate) fn all() -> Vec<Seed> {
    let mut seeds = Seeds::default();
    auxpow(&mut seeds);
    blocks(&mut seeds);
    burns(&mut seeds);
    governance(&mut seeds);
    engine(&mut seeds);
    deposits(&mut seeds);
    network(&mut seeds);
    seeds.0
}

// ---------------------------------------------------------------------------------------------------------
// Merged mining

/// Sets the parent's merkle root to the coinbase's (no coinbase branch) and grinds its nonce.
fn seal(mut proof: AuxPow, bits: u32) -> AuxPow {
    let mut hash = proof.coinbase.compute_txid().to_byte_array();
    for node in &proof.coinbase_branch {
        hash = sha256d::Hash::hash(&[hash.as_slice(), node.as_byte_array()].concat()).to_byte_array();
    }
    proof.parent.merkle_root = TxMerkleNode::from_byte_array(hash);
    let target = target_of(bits).unwrap();
    proof.parent.nonce = (0..100_000u32)
        .find(|n| {
            let mut parent = proof.parent;
            parent.nonce = *n;
            target.is_met_by(parent.block_hash())
        })
        .unwrap();
    proof
}

fn mined() -> AuxPow {
    decode_auxpow(&mine(MINED_AUX_HASH, CHAIN_ID, EASY_BITS, 10_000).unwrap()).unwrap()
}

/// `root ‖ size ‖ nonce`, the commitment after the magic.
fn commitment(root: &[u8], size: u32, nonce: u32) -> Vec<u8> {
    [root, &size.to_le_bytes(), &nonce.to_le_bytes()].concat()
}

fn auxpow(seeds: &mut Seeds) {
    let namecoin = hex::decode(NAMECOIN_19200).unwrap().split_off(80);
    check_serialized(&namecoin, NAMECOIN_AUX_HASH, NAMECOIN_CHAIN_ID, NAMECOIN_BITS).unwrap();
    seeds.add("auxpow", "namecoin-19200", namecoin.clone());

    let proof = mined();
    check(&proof, MINED_AUX_HASH, CHAIN_ID, EASY_BITS).unwrap();
    seeds.add("auxpow", "mined-input-magic", encode_auxpow(&proof));

    // Alys's pools: the commitment in output 2 of a real Marathon coinbase.
    let mut marathon = mined();
    marathon.coinbase = deserialize::<Transaction>(&hex::decode(MARATHON_COINBASE).unwrap()).unwrap();
    let marathon = seal(marathon, EASY_BITS);
    check(&marathon, MARATHON_AUX_HASH, CHAIN_ID, EASY_BITS).unwrap();
    seeds.add("auxpow", "marathon-output-2", encode_auxpow(&marathon));

    // The same placement in output 1 of a minimal coinbase.
    let mut output = mined();
    output.coinbase.input[0].script_sig = ScriptBuf::from_bytes(vec![0x03, 0x01, 0x00, 0x00]);
    let mut script = vec![0x6a, 44];
    script.extend_from_slice(&MERGED_MINING_MAGIC);
    script.extend_from_slice(&commitment(MINED_AUX_HASH.as_slice(), 1, 0));
    output.coinbase.output.push(TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::from_bytes(script) });
    let output = seal(output, EASY_BITS);
    check(&output, MINED_AUX_HASH, CHAIN_ID, EASY_BITS).unwrap();
    seeds.add("auxpow", "mined-output-1", encode_auxpow(&output));

    // Namecoin's older placement: no magic, the root in the first 20 bytes of the input script.
    let mut early = mined();
    let mut script = vec![0u8; 20];
    script.extend_from_slice(&commitment(MINED_AUX_HASH.as_slice(), 1, 0));
    early.coinbase.input[0].script_sig = ScriptBuf::from_bytes(script);
    let early = seal(early, EASY_BITS);
    check(&early, MINED_AUX_HASH, CHAIN_ID, EASY_BITS).unwrap();
    seeds.add("auxpow", "mined-no-magic", encode_auxpow(&early));

    // A two-level chain merkle tree, our slot fixed by the nonce, and a one-level coinbase branch.
    let nonce = 7;
    let index = expected_index(nonce, CHAIN_ID, 2);
    let branch = vec![TxMerkleNode::from_byte_array([1; 32]), TxMerkleNode::from_byte_array([2; 32])];
    let mut root = MINED_AUX_HASH.0;
    root.reverse();
    let mut folded = root;
    for (level, node) in branch.iter().enumerate() {
        let (left, right) = if (index >> level) & 1 == 1 {
            (node.to_byte_array(), folded)
        } else {
            (folded, node.to_byte_array())
        };
        folded = sha256d::Hash::hash(&[left, right].concat()).to_byte_array();
    }
    folded.reverse();
    let mut tree = mined();
    let mut script = vec![0x03, 0x01, 0x00, 0x00];
    script.extend_from_slice(&MERGED_MINING_MAGIC);
    script.extend_from_slice(&commitment(&folded, 4, nonce));
    tree.coinbase.input[0].script_sig = ScriptBuf::from_bytes(script);
    tree.chain_branch = branch;
    tree.chain_index = index as i32;
    tree.coinbase_branch = vec![TxMerkleNode::from_byte_array([3; 32])];
    let tree = seal(tree, EASY_BITS);
    check(&tree, MINED_AUX_HASH, CHAIN_ID, EASY_BITS).unwrap();
    seeds.add("auxpow", "mined-chain-tree", encode_auxpow(&tree));

    // Malformed: a branch length prefix far beyond the input (must not allocate it).
    let mut absurd = serialize(&proof.coinbase);
    absurd.extend_from_slice(&[0u8; 32]);
    absurd.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    seeds.add("auxpow", "huge-branch-length", absurd);

    // Proof headers: one for the hash it names (what a block carries), one with Namecoin's proof.
    let header = proof_header();
    check_serialized(&header.proof, header.aux_hash(CHAIN_ID), CHAIN_ID, header.bits).unwrap();
    seeds.add("auxpow_header", "mined", header.encoded());
    let foreign = AuxPowHeader { proof: namecoin.into(), bits: NAMECOIN_BITS, ..header };
    seeds.add("auxpow_header", "namecoin-proof", foreign.encoded());
    seeds.add("auxpow_header", "empty-proof", AuxPowHeader { proof: Bytes::new(), ..header }.encoded());
}

/// A proof header whose proof is mined for its own committed hash.
fn proof_header() -> AuxPowHeader {
    let mut header = AuxPowHeader {
        finalized: B256::repeat_byte(0x0f),
        head: B256::repeat_byte(0x1e),
        head_height: 12,
        miner: address!("0x00000000000000000000000000000000000000aa"),
        bits: EASY_BITS,
        proof: Bytes::new(),
    };
    header.proof = mine(header.aux_hash(CHAIN_ID), CHAIN_ID, EASY_BITS, 10_000).unwrap().into();
    header
}

// ---------------------------------------------------------------------------------------------------------
// Consensus blocks

fn signer() -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&DEV_PRIVATE_KEYS[0]).unwrap()
}

fn sign<T: SignableTransaction<alloy_primitives::Signature>>(tx: T) -> alloy_consensus::Signed<T> {
    let signature = signer().sign_hash_sync(&tx.signature_hash()).unwrap();
    tx.into_signed(signature)
}

/// One transaction of each type the execution layer decodes (legacy, 2930, 1559, 4844, 7702), signed
/// by the first development account.
fn transactions() -> Vec<TxEnvelope> {
    let chain_id = alys_chainspec::DEVNET_CHAIN_ID;
    let to = address!("0x000000000000000000000000000000000000bEEF");
    let access_list =
        AccessList(vec![AccessListItem { address: to, storage_keys: vec![B256::with_last_byte(1)] }]);
    let authorization = Authorization { chain_id: U256::from(chain_id), address: to, nonce: 5 };
    let signed_authorization = {
        let signature = signer().sign_hash_sync(&authorization.signature_hash()).unwrap();
        authorization.into_signed(signature)
    };
    vec![
        sign(TxLegacy {
            chain_id: Some(chain_id),
            nonce: 0,
            gas_price: 1_000_000_000,
            gas_limit: 21_000,
            to: to.into(),
            value: U256::from(1u64),
            input: Bytes::new(),
        })
        .into(),
        sign(TxEip2930 {
            chain_id,
            nonce: 1,
            gas_price: 1_000_000_000,
            gas_limit: 30_000,
            to: to.into(),
            value: U256::ZERO,
            access_list: access_list.clone(),
            input: Bytes::from_static(&[0xde, 0xad]),
        })
        .into(),
        sign(TxEip1559 {
            chain_id,
            nonce: 2,
            gas_limit: 60_000,
            max_fee_per_gas: 2_000_000_000,
            max_priority_fee_per_gas: 1,
            to: alys_contracts::BRIDGE_ADDRESS.into(),
            value: U256::from(10u64).pow(U256::from(16u64)),
            access_list: AccessList::default(),
            input: Bytes::from_static(&[0x99, 0x11, 0xdc, 0x74]),
        })
        .into(),
        sign(TxEip4844 {
            chain_id,
            nonce: 3,
            gas_limit: 21_000,
            max_fee_per_gas: 2_000_000_000,
            max_priority_fee_per_gas: 1,
            to,
            value: U256::ZERO,
            access_list: AccessList::default(),
            blob_versioned_hashes: vec![B256::with_last_byte(0x01)],
            max_fee_per_blob_gas: 1,
            input: Bytes::new(),
        })
        .into(),
        sign(TxEip7702 {
            chain_id,
            nonce: 4,
            gas_limit: 80_000,
            max_fee_per_gas: 2_000_000_000,
            max_priority_fee_per_gas: 1,
            to,
            value: U256::ZERO,
            access_list,
            authorization_list: vec![signed_authorization],
            input: Bytes::new(),
        })
        .into(),
    ]
}

fn pegins() -> Vec<PegInClaim> {
    vec![
        PegInClaim {
            txid: B256::repeat_byte(0xa1),
            bitcoin_block: B256::repeat_byte(0xb1),
            outputs: vec![PegInOutput {
                vout: 0,
                amount_sats: 50_000,
                script_pubkey: Bytes::from_static(&[0x00, 0x20]),
            }],
            amount_sats: 50_000,
            evm_address: address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8"),
        },
        PegInClaim {
            txid: B256::repeat_byte(0xa2),
            bitcoin_block: B256::repeat_byte(0xb2),
            outputs: vec![
                PegInOutput {
                    vout: 1,
                    amount_sats: 100_000_000_000_000,
                    script_pubkey: Bytes::from_static(&[0x00, 0x20]),
                },
                PegInOutput {
                    vout: 3,
                    amount_sats: 2_000_000_000_000_000,
                    script_pubkey: Bytes::from_static(&[0x00, 0x20]),
                },
            ],
            amount_sats: 2_100_000_000_000_000,
            evm_address: address!("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"),
        },
    ]
}

/// An execution block at `timestamp` (the fork follows it) carrying `transactions`, the withdrawals of
/// `pegins` and `requests`, bound to the consensus parent `parent`.
fn execution_block(
    timestamp: u64,
    parent: B256,
    transactions: Vec<TxEnvelope>,
    pegins: &[PegInClaim],
    requests: &Requests,
) -> Block<TxEnvelope> {
    let withdrawals = alys_consensus::pegin_withdrawals(pegins);
    let cancun = timestamp >= CANCUN_TIME;
    let prague = timestamp >= PRAGUE_TIME;
    let header = Header {
        parent_hash: B256::repeat_byte(0x77),
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        beneficiary: address!("0x00000000000000000000000000000000000000fe"),
        state_root: B256::repeat_byte(0x55),
        transactions_root: calculate_transaction_root(&transactions),
        receipts_root: B256::repeat_byte(0x56),
        withdrawals_root: Some(calculate_withdrawals_root(&withdrawals)),
        number: 1,
        gas_limit: 30_000_000,
        gas_used: 21_000,
        timestamp,
        mix_hash: parent,
        base_fee_per_gas: Some(7),
        blob_gas_used: cancun.then_some(0),
        excess_blob_gas: cancun.then_some(0),
        parent_beacon_block_root: cancun.then_some(parent),
        requests_hash: prague.then(|| requests.requests_hash()),
        extra_data: Bytes::from_static(b"alys"),
        ..Default::default()
    };
    Block {
        header,
        body: BlockBody {
            transactions,
            ommers: Vec::new(),
            withdrawals: Some(Withdrawals::new(withdrawals)),
        },
    }
}

fn requests() -> Requests {
    // A deposit request (type 0) and a withdrawal request (type 1), in order.
    Requests::new(vec![Bytes::from_static(&[0x00, 0xaa, 0xbb]), Bytes::from_static(&[0x01, 0xcc])])
}

fn signed_block(execution: &Block<TxEnvelope>, header: ConsensusHeader, requests: &Requests) -> SignedBlock {
    let header = ConsensusHeader {
        execution_block_hash: execution.header.hash_slow(),
        height: execution.header.number,
        ..header
    };
    SignedBlock {
        header,
        execution_block: alys_consensus::encode_execution_block(execution),
        execution_requests: requests.iter().cloned().collect(),
        author_signature: Bytes::from(vec![0xb1; 96]),
        approvals: Approvals {
            signers: Approvals::bitfield([0, 2, 9]),
            signature: Bytes::from(vec![0xb2; 96]),
        },
    }
}

fn consensus_header(auxpow: Bytes) -> ConsensusHeader {
    ConsensusHeader {
        parent_hash: chain_spec().genesis_hash(),
        parent_seal: Default::default(),
        height: 1,
        slot: 1_000,
        author: 2,
        execution_block_hash: B256::repeat_byte(0x33),
        pegins: pegins(),
        auxpow,
        pegout: None,
    }
}

fn blocks(seeds: &mut Seeds) {
    let with_proof = consensus_header(proof_header().encoded());
    seeds.add("consensus_header", "pegins", consensus_header(Bytes::new()).encoded());
    seeds.add("consensus_header", "with-proof", with_proof.encoded());
    let first = ConsensusHeader { pegins: Vec::new(), ..consensus_header(Bytes::new()) };
    seeds.add("consensus_header", "first-block", first.encoded());
    // A peg-out proposal: one burn paid, one refunded, and a one-input, two-output transaction.
    let burn = |n: u8| alys_primitives::BurnRef {
        block_number: 40 + u64::from(n),
        log_index: u64::from(n),
        block_hash: B256::repeat_byte(0xc0 | n),
    };
    let tx = bitcoin::Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![bitcoin::TxIn {
            previous_output: bitcoin::OutPoint::new(bitcoin::hashes::Hash::from_byte_array([0xa1; 32]), 0),
            sequence: bitcoin::Sequence::ENABLE_RBF_NO_LOCKTIME,
            ..Default::default()
        }],
        output: vec![
            bitcoin::TxOut {
                value: bitcoin::Amount::from_sat(1_999_700),
                script_pubkey: bitcoin::ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array(
                    [7; 20],
                )),
            },
            bitcoin::TxOut {
                value: bitcoin::Amount::from_sat(48_000_000),
                script_pubkey: bitcoin::ScriptBuf::new_p2wsh(&bitcoin::WScriptHash::from_byte_array([9; 32])),
            },
        ],
    };
    let with_pegout = ConsensusHeader {
        pegout: Some(alys_primitives::PegoutBlock {
            paid: vec![burn(1)],
            refunded: vec![burn(2)],
            fee_rate_sat_vb: 2,
            tx: Bytes::from(bitcoin::consensus::serialize(&tx)),
            replaces: None,
        }),
        ..consensus_header(Bytes::new())
    };
    seeds.add("consensus_header", "pegout", with_pegout.encoded());
    // A block above the first: it carries its parent's seal.
    let sealed = ConsensusHeader {
        parent_hash: B256::repeat_byte(0x44),
        parent_seal: alys_primitives::Seal {
            author_signature: Bytes::from(vec![0xb1; 96]),
            approvals: Approvals {
                signers: Approvals::bitfield([0, 1]),
                signature: Bytes::from(vec![0xb2; 96]),
            },
        },
        height: 2,
        ..consensus_header(Bytes::new())
    };
    seeds.add("consensus_header", "parent-seal", sealed.encoded());

    let parent = with_proof.parent_hash;
    let none = Requests::default();
    let all = requests();
    for (name, timestamp, txs, header, reqs) in [
        ("prague-all-tx-types", PRAGUE_TIME + 50, transactions(), with_proof, &all),
        ("cancun-empty", CANCUN_TIME + 50, Vec::new(), first, &none),
        (
            "shanghai-pegins",
            50,
            transactions().into_iter().take(3).collect(),
            consensus_header(Bytes::new()),
            &none,
        ),
    ] {
        let execution = execution_block(timestamp, parent, txs, &header.pegins, reqs);
        let block = signed_block(&execution, header, reqs);
        let decoded = alys_consensus::decode_execution_block(&block).unwrap();
        assert_eq!(decoded, execution);
        seeds.add("signed_block", name, block.encoded());
    }
}

// ---------------------------------------------------------------------------------------------------------
// Burns

fn burns(seeds: &mut Seeds) {
    let burn = test_utils::sample_burn();
    seeds.add("burn", "sample", burn.encoded());
    let empty = Burn { bitcoin_address: Bytes::new(), value: U256::ZERO, log_index: 0, ..burn };
    seeds.add("burn", "empty-address", empty.encoded());
    let max =
        Burn { value: U256::MAX, block_number: u64::MAX, bitcoin_address: vec![0x42; 90].into(), ..burn };
    seeds.add("burn", "max-values", max.encoded());

    for (name, kind) in [("burn", FeedEventKind::Burn), ("retract", FeedEventKind::Retract)] {
        let event = FeedEvent { cursor: 42, kind, burn: burn.clone() };
        seeds.add("feed_event", name, feed::FeedEvent::from(&event).encode_to_vec());
    }
    seeds.add("feed_event", "no-event", feed::FeedEvent { cursor: 7, event: None }.encode_to_vec());
    let at = |n: u64| Some(alloy_eips::BlockNumHash { number: n, hash: B256::repeat_byte(n as u8) });
    let head = FeedHead { last_cursor: 42, head: at(9), finalized: at(7), finished: at(7) };
    seeds.add("feed_event", "head", feed::HeadResponse::from(head).encode_to_vec());

    let log = |inner: alloy_primitives::Log, position: bool| alloy_rpc_types_eth::Log {
        inner,
        block_hash: position.then_some(burn.block_hash),
        block_number: position.then_some(burn.block_number),
        block_timestamp: position.then_some(1_700_000_000),
        transaction_hash: position.then_some(burn.tx_hash),
        transaction_index: position.then_some(burn.tx_index),
        log_index: position.then_some(burn.log_index),
        removed: false,
    };
    let bridge = test_utils::bridge_burn_log(burn.sender, b"bcrt1qexample", burn.value);
    let rpc = log(bridge.clone(), true);
    assert_eq!(alys_burns::BurnExtractor::new().burn_from_rpc_log(&rpc), Some(burn.clone()));
    seeds.json("burn_log", "bridge-burn", &serde_json::to_value(&rpc).unwrap());
    seeds.json("burn_log", "pending", &serde_json::to_value(log(bridge, false)).unwrap());
    let copy = test_utils::burn_log(Address::repeat_byte(9), burn.sender, b"bc1q", burn.value);
    seeds.json("burn_log", "other-emitter", &serde_json::to_value(log(copy, true)).unwrap());
    let transfer = test_utils::transfer_log(
        Address::repeat_byte(8),
        Address::repeat_byte(1),
        Address::repeat_byte(2),
        U256::from(5u64),
    );
    seeds.json("burn_log", "erc20-transfer", &serde_json::to_value(log(transfer, true)).unwrap());
}

// ---------------------------------------------------------------------------------------------------------
// Governance

fn metadata(request_id: &str) -> Option<ResponseMetadata> {
    Some(ResponseMetadata {
        request_id: request_id.to_owned(),
        timestamp: 1_700_000_000,
        node_id: "governance".into(),
        status: 1,
        message: None,
    })
}

fn stream(request_id: &str, payload: stream_response::Payload) -> Vec<u8> {
    StreamResponse { metadata: metadata(request_id), payload: Some(payload) }.encode_to_vec()
}

/// `(signature, key)` of member `n` over input `index` of the fixed spend.
fn witness_data(n: u8, index: usize) -> WitnessData {
    let federation = federation();
    let spent = spent_outputs();
    let tx = unsigned_spend();
    let sighash = SighashCache::new(&tx)
        .p2wsh_signature_hash(index, &federation.witness_script, spent[index].value, EcdsaSighashType::All)
        .unwrap();
    let secp = Secp256k1::new();
    let signature = secp.sign_ecdsa(&Message::from_digest(sighash.to_byte_array()), &member_secret(n));
    WitnessData {
        signature: ecdsa::Signature { signature, sighash_type: EcdsaSighashType::All }.serialize().to_vec(),
        public_key: PublicKey::from_secret_key(&secp, &member_secret(n)).serialize().to_vec(),
        sig_type: SignatureType::Ecdsa as i32,
    }
}

fn signature_response(signatures: Vec<WitnessData>) -> SignatureResponse {
    SignatureResponse {
        status: SignatureStatus::Complete as i32,
        signatures,
        failure_reason: None,
        partial_signatures: Vec::new(),
    }
}

fn proposals() -> Vec<(&'static str, ProposalNotification)> {
    let key = governance_secret();
    let mut out = vec![
        (
            "pause-pegouts",
            sign_proposal(
                "p1",
                ProposalType::EmergencyAction,
                emergency_data(40, EmergencyScope::Pegouts, true, "drill"),
                &key,
            ),
        ),
        (
            "resume-production",
            sign_proposal(
                "p2",
                ProposalType::EmergencyAction,
                emergency_data(40, EmergencyScope::BlockProduction, false, ""),
                &key,
            ),
        ),
        (
            "pause-pegins",
            sign_proposal(
                "p3",
                ProposalType::EmergencyAction,
                emergency_data(0, EmergencyScope::Pegins, true, "incident"),
                &key,
            ),
        ),
        (
            "confirmations",
            sign_proposal(
                "p4",
                ProposalType::ParameterChange,
                parameter_data(45, "pegin_confirmations", "3"),
                &key,
            ),
        ),
        (
            "fee-rate",
            sign_proposal(
                "p5",
                ProposalType::ParameterChange,
                parameter_data(46, "pegout_fee_rate_sat_vb", "10000"),
                &key,
            ),
        ),
        (
            "min-sats",
            sign_proposal(
                "p6",
                ProposalType::ParameterChange,
                parameter_data(47, "pegout_min_sats", "546"),
                &key,
            ),
        ),
        (
            "max-blocks",
            sign_proposal(
                "p7",
                ProposalType::ParameterChange,
                parameter_data(48, "max_blocks_without_pow", "100000"),
                &key,
            ),
        ),
        (
            "unknown-parameter",
            sign_proposal("p8", ProposalType::ParameterChange, parameter_data(1, "slot_ms", "1"), &key),
        ),
        (
            "type-mismatch",
            sign_proposal(
                "p9",
                ProposalType::ParameterChange,
                emergency_data(1, EmergencyScope::Pegins, true, ""),
                &key,
            ),
        ),
    ];
    let upgrade = ProposalData {
        effective_height: 1_000,
        action: Some(proposal_data::Action::Description("v2 at 1000".into())),
        signature: Vec::new(),
    };
    out.push(("upgrade", sign_proposal("p10", ProposalType::Upgrade, upgrade, &key)));
    let federation_change = ProposalData { effective_height: 3, action: None, signature: Vec::new() };
    out.push((
        "federation-change",
        sign_proposal("p11", ProposalType::FederationChange, federation_change, &key),
    ));
    // The same pause signed in DER.
    let mut der = sign_proposal(
        "p12",
        ProposalType::EmergencyAction,
        emergency_data(41, EmergencyScope::Pegouts, true, "der"),
        &key,
    );
    let mut data = ProposalData::decode(der.proposal_data.as_slice()).unwrap();
    let digest = alys_governance::proposal_digest(
        &der.proposal_id,
        der.proposal_type,
        &ProposalData { signature: Vec::new(), ..data.clone() },
    );
    data.signature =
        Secp256k1::new().sign_ecdsa(&Message::from_digest(digest), &key).serialize_der().to_vec();
    der.proposal_data = data.encode_to_vec();
    out.push(("der-signature", der));
    out
}

fn federation_updates() -> Vec<(&'static str, FederationUpdate)> {
    let secp = Secp256k1::new();
    let member = |n: u8, active: bool| FederationMember {
        member_id: format!("member-{n}"),
        public_key: PublicKey::from_secret_key(&secp, &SecretKey::from_slice(&[n; 32]).unwrap())
            .serialize()
            .to_vec(),
        weight: u32::from(n),
        active,
    };
    let update = |members: Vec<FederationMember>, threshold: u32, height: u64| {
        let mut update = FederationUpdate {
            update_type: 1,
            members,
            effective_height: height,
            update_signature: Vec::new(),
            config: Some(FederationConfig {
                signature_threshold: threshold,
                member_count: 0,
                parameters: Default::default(),
            }),
        };
        sign_update(&mut update);
        update
    };
    let rotation = update(
        vec![member(4, true), member(5, true), member(6, true), member(7, true), member(8, false)],
        3,
        50,
    );
    let mut der = rotation.clone();
    der.effective_height = 60;
    sign_update(&mut der);
    let signature = bitcoin::secp256k1::ecdsa::Signature::from_compact(&der.update_signature).unwrap();
    der.update_signature = signature.serialize_der().to_vec();
    let mut uncompressed = member(9, true);
    uncompressed.public_key = PublicKey::from_secret_key(&secp, &SecretKey::from_slice(&[9; 32]).unwrap())
        .serialize_uncompressed()
        .to_vec();
    vec![
        ("devnet-2-of-3", federation_update()),
        ("rotation-3-of-4", rotation),
        ("der-signature", der),
        ("uncompressed-key", update(vec![uncompressed, member(1, true)], 1, 70)),
        ("threshold-zero", update(vec![member(1, true)], 0, 80)),
    ]
}

fn governance(seeds: &mut Seeds) {
    let key = governance_key();
    for (name, notification) in proposals() {
        let _ = Proposal::from_notification(&notification, &key);
        seeds.add("governance_proposal", name, notification.encode_to_vec());
    }
    assert!(Proposal::from_notification(&proposals()[0].1, &key).is_ok());
    for (name, update) in federation_updates() {
        seeds.add("governance_federation", name, update.encode_to_vec());
    }
    assert!(Federation::from_update(&federation_updates()[1].1, &key, NETWORK).is_ok());
    assert!(Federation::from_update(&federation_updates()[2].1, &key, NETWORK).is_ok());

    let complete = signature_response(vec![
        witness_data(1, 0),
        witness_data(3, 0),
        witness_data(2, 1),
        witness_data(1, 1),
    ]);
    apply_response(&unsigned_spend(), &spent_outputs(), federation(), &complete).unwrap();
    seeds.add(
        "governance_stream",
        "signatures-complete",
        stream("sig-1", stream_response::Payload::SignatureResponse(complete)),
    );
    let mut noisy = vec![witness_data(2, 1), witness_data(1, 0), witness_data(2, 0), witness_data(3, 1)];
    noisy.push(WitnessData {
        signature: vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x01],
        public_key: vec![2; 33],
        sig_type: SignatureType::Ecdsa as i32,
    });
    noisy.push(WitnessData {
        signature: witness_data(1, 0).signature,
        public_key: witness_data(2, 0).public_key,
        sig_type: 0,
    });
    let noisy = signature_response(noisy);
    apply_response(&unsigned_spend(), &spent_outputs(), federation(), &noisy).unwrap();
    seeds.add(
        "governance_stream",
        "signatures-with-noise",
        stream("sig-2", stream_response::Payload::SignatureResponse(noisy)),
    );
    let short = signature_response(vec![witness_data(1, 0), witness_data(2, 0), witness_data(2, 1)]);
    seeds.add(
        "governance_stream",
        "signatures-short",
        stream("sig-3", stream_response::Payload::SignatureResponse(short)),
    );
    let declined = SignatureResponse {
        status: SignatureStatus::Failed as i32,
        signatures: Vec::new(),
        failure_reason: Some("hsm offline".into()),
        partial_signatures: Vec::new(),
    };
    seeds.add(
        "governance_stream",
        "signatures-declined",
        stream("sig-4", stream_response::Payload::SignatureResponse(declined)),
    );
    seeds.add(
        "governance_stream",
        "federation-update",
        stream("", stream_response::Payload::FederationUpdate(federation_update())),
    );
    seeds.add(
        "governance_stream",
        "proposal",
        stream("", stream_response::Payload::ProposalNotification(proposals()[0].1.clone())),
    );
    let ack = NodeRegistrationAck {
        accepted: true,
        assigned_node_id: "node-1".into(),
        session_token: Some("t".into()),
        expires_at: Some(1),
    };
    seeds.add(
        "governance_stream",
        "registration-ack",
        stream("reg-1", stream_response::Payload::RegistrationAck(ack)),
    );
    let error = ErrorResponse {
        error_code: 1,
        error_message: "unknown request".into(),
        error_details: None,
        retry_info: None,
    };
    seeds.add("governance_stream", "error", stream("sig-9", stream_response::Payload::ErrorResponse(error)));
    let heartbeat =
        HeartbeatAck { original_timestamp: 1_700_000_000, ack_timestamp: 1_700_000_001, sequence: 3 };
    seeds.add(
        "governance_stream",
        "heartbeat-ack",
        stream("hb-3", stream_response::Payload::HeartbeatAck(heartbeat)),
    );
}

// ---------------------------------------------------------------------------------------------------------
// Engine API

fn request(method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params })
}

fn engine(seeds: &mut Seeds) {
    let parent = B256::repeat_byte(0x44);
    let pegins = pegins();
    let payload = |timestamp, txs, reqs: &Requests| {
        let block = execution_block(timestamp, parent, txs, &pegins, reqs);
        let hash = block.header.hash_slow();
        (ExecutionPayload::from_block_unchecked(hash, &block).0, block)
    };
    let none = Requests::default();
    let txs = || transactions().into_iter().filter(|tx| !tx.is_eip4844()).collect::<Vec<_>>();

    let (v2, _) = payload(50, txs(), &none);
    let ExecutionPayload::V2(v2) = v2 else { panic!("a Shanghai block is a V2 payload") };
    seeds.json("engine_payload", "new-payload-v2", &request("engine_newPayloadV2", json!([v2])));
    let (v3, _) = payload(CANCUN_TIME + 50, txs(), &none);
    let v3 = v3.as_v3().unwrap().clone();
    seeds.json("engine_payload", "new-payload-v3", &request("engine_newPayloadV3", json!([v3, [], parent])));
    let all = requests();
    let (v4, _) = payload(PRAGUE_TIME + 50, transactions(), &all);
    let v4: ExecutionPayloadV3 = v4.as_v3().unwrap().clone();
    let hashes: Vec<B256> = vec![B256::with_last_byte(0x01)];
    seeds.json(
        "engine_payload",
        "new-payload-v4",
        &request("engine_newPayloadV4", json!([v4, hashes, parent, all])),
    );
    seeds.json(
        "engine_payload",
        "new-payload-v2-wrong-fork",
        &request("engine_newPayloadV2", json!([v3.payload_inner])),
    );
    let attributes = json!({
        "timestamp": format!("{:#x}", PRAGUE_TIME + 60),
        "prevRandao": B256::repeat_byte(0x66),
        "suggestedFeeRecipient": Address::repeat_byte(0xfe),
        "withdrawals": alys_consensus::pegin_withdrawals(&pegins),
        "parentBeaconBlockRoot": parent,
    });
    let state = json!({ "headBlockHash": parent, "safeBlockHash": parent, "finalizedBlockHash": B256::ZERO });
    seeds.json(
        "engine_payload",
        "forkchoice-v3-attributes",
        &request("engine_forkchoiceUpdatedV3", json!([state, attributes])),
    );
    seeds.json(
        "engine_payload",
        "forkchoice-v2",
        &request("engine_forkchoiceUpdatedV2", json!([state, null])),
    );
    seeds.json(
        "engine_payload",
        "bodies-by-range",
        &request("engine_getPayloadBodiesByRangeV1", json!(["0x1", "0x20"])),
    );
    seeds.json(
        "engine_payload",
        "get-payload-v4",
        &request("engine_getPayloadV4", json!(["0x0102030405060708"])),
    );
    seeds.json(
        "engine_payload",
        "capabilities",
        &request("engine_exchangeCapabilities", json!([["engine_newPayloadV4"]])),
    );

    let secret = JwtSecret::from_hex(hex::encode(JWT_SECRET)).unwrap();
    let token = secret.encode(&Claims { iat: 1_700_000_000, exp: None }).unwrap();
    seeds.add("engine_jwt", "stale-token", format!("Bearer {token}"));
    let other = JwtSecret::from_hex("cd".repeat(32))
        .unwrap()
        .encode(&Claims { iat: 1_700_000_000, exp: Some(1_800_000_000) })
        .unwrap();
    seeds.add("engine_jwt", "other-secret", format!("bearer  {other}"));
    seeds.add("engine_jwt", "garbage", "Bearer a.b.c");
    seeds.add("engine_jwt", "basic", "Basic dXNlcjpwYXNz");
}

// ---------------------------------------------------------------------------------------------------------
// Peg-in deposits

/// The EVM address the deposit seeds mint to.
const DEPOSIT_EVM: Address = address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8");

fn wallet_key(n: u8) -> SecretKey {
    SecretKey::from_slice(&[0x40 + n; 32]).unwrap()
}

fn wallet_public(n: u8) -> bitcoin::PublicKey {
    bitcoin::PublicKey::new(wallet_key(n).public_key(&Secp256k1::new()))
}

fn compressed(n: u8) -> CompressedPublicKey {
    CompressedPublicKey(wallet_key(n).public_key(&Secp256k1::new()))
}

fn p2pkh(n: u8) -> ScriptBuf {
    ScriptBuf::new_p2pkh(&wallet_public(n).pubkey_hash())
}

fn p2wpkh(n: u8) -> ScriptBuf {
    ScriptBuf::new_p2wpkh(&compressed(n).wpubkey_hash())
}

fn data_output(data: &[u8]) -> TxOut {
    TxOut {
        value: Amount::ZERO,
        script_pubkey: ScriptBuf::new_op_return(PushBytesBuf::try_from(data.to_vec()).unwrap()),
    }
}

fn paying(script: ScriptBuf, sats: u64) -> TxOut {
    TxOut { value: Amount::from_sat(sats), script_pubkey: script }
}

/// A transaction as `createrawtransaction` writes it (version 2, final sequences, no lock time) spending
/// `inputs` outpoints of fixed funding transactions.
fn raw_transaction(inputs: u8, output: Vec<TxOut>) -> Transaction {
    let input = (0..inputs)
        .map(|n| TxIn {
            previous_output: OutPoint { txid: Txid::from_byte_array([0xc0 + n; 32]), vout: u32::from(n) },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        })
        .collect();
    Transaction { version: transaction::Version::TWO, lock_time: LockTime::ZERO, input, output }
}

/// Signs every input as a spend of a P2PKH output of wallet key 1 (`signrawtransactionwithwallet`).
fn sign_p2pkh(mut tx: Transaction) -> Transaction {
    let secp = Secp256k1::new();
    let script = p2pkh(1);
    for index in 0..tx.input.len() {
        let sighash = SighashCache::new(&tx)
            .legacy_signature_hash(index, &script, EcdsaSighashType::All.to_u32())
            .unwrap();
        let signature = ecdsa::Signature {
            signature: secp.sign_ecdsa(&Message::from_digest(sighash.to_byte_array()), &wallet_key(1)),
            sighash_type: EcdsaSighashType::All,
        };
        tx.input[index].script_sig =
            Builder::new().push_slice(signature.serialize()).push_key(&wallet_public(1)).into_script();
    }
    tx
}

/// Signs every input as a spend of a P2WPKH output of wallet key 2 holding `sats`.
fn sign_p2wpkh(mut tx: Transaction, sats: u64) -> Transaction {
    let secp = Secp256k1::new();
    let script = p2wpkh(2);
    for index in 0..tx.input.len() {
        let sighash = SighashCache::new(&tx)
            .p2wpkh_signature_hash(index, &script, Amount::from_sat(sats), EcdsaSighashType::All)
            .unwrap();
        let signature = ecdsa::Signature {
            signature: secp.sign_ecdsa(&Message::from_digest(sighash.to_byte_array()), &wallet_key(2)),
            sighash_type: EcdsaSighashType::All,
        };
        tx.input[index].witness = Witness::p2wpkh(&signature, &compressed(2).0);
    }
    tx
}

/// What `scan_transaction` makes of a seed: no deposit, or one with its EVM address or rejection.
type Scanned = Option<Result<Address, Rejection>>;

fn deposits(seeds: &mut Seeds) {
    let federation = federation().address.script_pubkey();
    let evm_hex = hex::encode(DEPOSIT_EVM);
    let cases: Vec<(&str, Transaction, Scanned)> = vec![
        (
            // `createrawtransaction '[…]' '[{"<federation>": 0.001}, {"data": "<evm>"}]'`, signed.
            "deposit-raw-address",
            sign_p2pkh(raw_transaction(
                1,
                vec![paying(federation.clone(), 100_000), data_output(DEPOSIT_EVM.as_slice())],
            )),
            Some(Ok(DEPOSIT_EVM)),
        ),
        (
            // Alys v1's form: the address as 40 hex characters, before the payment, with change.
            "deposit-hex-address",
            sign_p2pkh(raw_transaction(
                1,
                vec![
                    data_output(evm_hex.as_bytes()),
                    paying(federation.clone(), 250_000),
                    paying(p2pkh(1), 740_000),
                ],
            )),
            Some(Ok(DEPOSIT_EVM)),
        ),
        (
            // A segwit wallet's deposit: two inputs, change first, `0x`-prefixed hex, two outputs to the
            // federation and one to the previous federation (one deposit of their sum).
            "segwit-deposit",
            sign_p2wpkh(
                raw_transaction(
                    2,
                    vec![
                        paying(p2wpkh(2), 1_000_000),
                        paying(federation.clone(), 60_000),
                        data_output(format!("0x{evm_hex}").as_bytes()),
                        paying(federation.clone(), 40_000),
                        paying(previous_federation_script(), 5_000),
                    ],
                ),
                600_000,
            ),
            Some(Ok(DEPOSIT_EVM)),
        ),
        (
            "no-op-return",
            sign_p2pkh(raw_transaction(
                1,
                vec![paying(federation.clone(), 100_000), paying(p2pkh(1), 5_000)],
            )),
            Some(Err(Rejection::NoOpReturn)),
        ),
        (
            "two-op-returns",
            sign_p2pkh(raw_transaction(
                1,
                vec![
                    paying(federation.clone(), 100_000),
                    data_output(DEPOSIT_EVM.as_slice()),
                    data_output(DEPOSIT_EVM.as_slice()),
                ],
            )),
            Some(Err(Rejection::MultipleOpReturns)),
        ),
        (
            "short-address",
            sign_p2pkh(raw_transaction(
                1,
                vec![paying(federation.clone(), 100_000), data_output(&DEPOSIT_EVM.as_slice()[..19])],
            )),
            Some(Err(Rejection::BadAddress)),
        ),
        (
            // Names an EVM address but pays elsewhere: recorded as a failed deposit.
            "no-federation-output",
            sign_p2pkh(raw_transaction(
                1,
                vec![paying(p2wpkh(2), 100_000), data_output(DEPOSIT_EVM.as_slice())],
            )),
            Some(Err(Rejection::NoFederationOutput)),
        ),
        (
            "unrelated",
            sign_p2pkh(raw_transaction(1, vec![paying(p2wpkh(2), 100_000), paying(p2pkh(1), 20_000)])),
            None,
        ),
        (
            // A coinbase is never a deposit, whatever it pays.
            "coinbase",
            Transaction {
                input: vec![TxIn {
                    previous_output: OutPoint::null(),
                    script_sig: ScriptBuf::from_bytes(vec![0x01, 0x07]),
                    ..raw_transaction(1, Vec::new()).input[0].clone()
                }],
                ..raw_transaction(
                    0,
                    vec![paying(federation, 5_000_000_000), data_output(DEPOSIT_EVM.as_slice())],
                )
            },
            None,
        ),
    ];
    for (name, tx, expected) in cases {
        let deposit = scan_transaction(&tx, deposit_scripts());
        assert_eq!(deposit.map(|d| d.evm_address), expected, "seed {name}");
        let bytes = serialize(&tx);
        alys_fuzz_replay::targets::pegin(&bytes);
        seeds.add("pegin", name, bytes);
    }
    // A claim as a consensus header carries it (RLP), for the target's claim decoder.
    seeds.add("pegin", "claim", alloy_rlp::encode(&pegins()[1]));
}

// ---------------------------------------------------------------------------------------------------------
// Federation network: gossip and sync

/// `kind ‖ payload`: the targets' first byte picks the message type (even or odd).
fn tagged(kind: u8, payload: &[u8]) -> Vec<u8> {
    [&[kind][..], payload].concat()
}

fn network(seeds: &mut Seeds) {
    let aura = aura();
    let keys = authority_keys();

    // An approval of a block by authority 1, signed by it.
    let block_hash = consensus_header(Bytes::new()).hash();
    let approval = Approval {
        block_hash,
        authority: 1,
        signature: keys[1].sign(&block_hash).to_bytes().to_vec().into(),
    };
    aura.verify_approval(&approval).unwrap();
    seeds.add("gossip", "approval", tagged(0, &approval.encoded()));

    // Two different blocks for slot 1000 by its scheduled author, both signed by it.
    let slot = 1_000;
    let author = aura.author_of(slot);
    let first = ConsensusHeader { slot, author, ..consensus_header(Bytes::new()) };
    let second = ConsensusHeader { execution_block_hash: B256::repeat_byte(0x34), ..first.clone() };
    let key = &keys[author as usize];
    let evidence = EquivocationEvidence {
        first_signature: key.sign(&first.hash()).to_bytes().to_vec().into(),
        second_signature: key.sign(&second.hash()).to_bytes().to_vec().into(),
        first,
        second,
    };
    let proved = aura.verify_evidence(&evidence).unwrap();
    assert_eq!((proved.slot, proved.author), (slot, author));
    seeds.add("gossip", "evidence", tagged(1, &evidence.encoded()));
    seeds.add("gossip", "garbage", tagged(1, &[0xf8, 0xff, 0x00, 0x01, 0x02, 0xc0, 0x80]));

    let requests = [
        ("request-status", Request::Status),
        ("request-blocks-by-range", Request::BlocksByRange { start: 1, count: MAX_BLOCKS_PER_REQUEST }),
        ("request-blocks-by-hash", Request::BlocksByHash(vec![block_hash, B256::repeat_byte(0x34)])),
        ("request-peers", Request::Peers),
    ];
    for (name, request) in requests {
        let bytes = encode_request(&request);
        assert_eq!(decode_request(&bytes).unwrap(), request, "seed {name}");
        seeds.add("sync_message", name, tagged(0, &bytes));
    }
    let genesis = chain_spec().genesis_hash();
    let responses = [
        (
            "response-status",
            Response::Status(PeerStatus {
                network_id: hex::encode(&genesis[..8]),
                head: BlockRef::new(12, block_hash),
                finalized: Some(BlockRef::new(8, B256::repeat_byte(0x35))),
            }),
        ),
        (
            "response-status-genesis",
            Response::Status(PeerStatus {
                network_id: hex::encode(&genesis[..8]),
                head: BlockRef::new(0, genesis),
                finalized: None,
            }),
        ),
        (
            "response-blocks",
            Response::Blocks(vec![Bytes::from_static(b"\xc3\x01\x02\x03"), Bytes::from_static(b"block")]),
        ),
        ("response-peers", Response::Peers(vec!["/ip4/127.0.0.1/tcp/30333".parse().unwrap()])),
        ("response-error", Response::Error("busy".into())),
    ];
    for (name, response) in responses {
        let bytes = encode_response(&response);
        assert_eq!(decode_response(&bytes).unwrap(), response, "seed {name}");
        seeds.add("sync_message", name, tagged(1, &bytes));
    }
    for seed in seeds.0.iter().filter(|s| s.target == "gossip" || s.target == "sync_message") {
        let run = if seed.target == "gossip" {
            alys_fuzz_replay::targets::gossip
        } else {
            alys_fuzz_replay::targets::sync_message
        };
        run(&seed.bytes);
    }
}
