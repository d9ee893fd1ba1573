//! Aura with three authorities on the real import path, in one process: three chain actors, each with
//! its own embedded execution engine (Engine API, JWT) and database, a clock the test moves slot by
//! slot, and the messages the network would carry between them handed over by the test. Covers what a
//! proposal needs to be approved (its author's slot, its parent, an execution timestamp inside the
//! slot, one vote per height), approvals counted to the quorum, a block without its quorum refused,
//! equivocation evidence found, stored and accepted by a third node, fork choice between two
//! approved blocks of one height, parent seals, and ranges imported as sync does.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use alloy_primitives::{Address, B256};
use alys_actor::Actor;
use alys_chain::{ApprovalOutcome, ChainActor, ChainConfig, ChainEvent, ChainMessage, ImportError};
use alys_chainspec::ChainSpec;
use alys_consensus::{Aura, AuraError, decode_execution_block, encode_execution_block};
use alys_devnet_el::{Engine, EngineConfig};
use alys_engine_api::{EngineApiConfig, EngineApiHandle, EngineApiServer, JwtSecret};
use alys_engine_client::EngineClient;
use alys_governance::{RuntimeParameters, RuntimeView};
use alys_primitives::{
    Approval, Approvals, AuthorityKey, BlockRef, BlsSignature, ChainHeads, EquivocationEvidence, Seal,
    SignedBlock,
};
use alys_storage::{ChainRead, EvidenceRead, Storage};
use tokio::sync::{mpsc, oneshot};

use crate::support::root;

const SLOT_MS: u64 = 1_000;

struct Node {
    chain: ChainActor,
    events: mpsc::Receiver<ChainEvent>,
    storage: Arc<Storage>,
    heads: tokio::sync::watch::Receiver<ChainHeads>,
    engine: alys_devnet_el::EngineHandle,
    _api: EngineApiHandle,
    /// Between the node and its engine, when the test holds a request back.
    proxy: Option<HoldingProxy>,
}

impl Node {
    async fn ask<R>(&mut self, make: impl FnOnce(oneshot::Sender<R>) -> ChainMessage) -> R {
        let (tx, rx) = oneshot::channel();
        Box::pin(self.chain.handle(make(tx))).await.unwrap();
        rx.await.unwrap()
    }

    async fn proposal(&mut self, block: &SignedBlock) -> Result<Option<Approval>, ImportError> {
        self.ask(|tx| ChainMessage::Proposal(Box::new(block.clone()), tx)).await
    }

    async fn approval(&mut self, approval: Approval) -> Result<ApprovalOutcome, ImportError> {
        self.ask(|tx| ChainMessage::Approval(approval, tx)).await
    }

    async fn import(&mut self, block: &SignedBlock) -> Result<B256, ImportError> {
        Box::pin(self.chain.import(block.clone())).await
    }

    async fn tick(&mut self, slot: u64) {
        Box::pin(self.chain.handle(ChainMessage::Tick { slot })).await.unwrap();
    }

    fn next_event(&mut self) -> ChainEvent {
        self.events.try_recv().expect("an event from the chain")
    }

    fn head(&self) -> BlockRef {
        self.heads.borrow().head
    }
}

fn keys() -> Vec<Arc<AuthorityKey>> {
    ["devnet-authority.key", "devnet-authority-1.key", "devnet-authority-2.key"]
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(root().join("etc/keys").join(f)).unwrap();
            Arc::new(AuthorityKey::from_hex(text.trim()).unwrap())
        })
        .collect()
}

async fn node(spec: &Arc<ChainSpec>, keys: &[Arc<AuthorityKey>], me: usize, clock: &Arc<AtomicU64>) -> Node {
    node_through(spec, keys, me, clock, None).await
}

/// [`node`], its Engine API calls through a [`HoldingProxy`] when `hold` is given.
async fn node_through(
    spec: &Arc<ChainSpec>,
    keys: &[Arc<AuthorityKey>],
    me: usize,
    clock: &Arc<AtomicU64>,
    hold: Option<Hold>,
) -> Node {
    let secret = JwtSecret::from_file(&root().join("etc/jwt/jwt.hex")).unwrap();
    let engine = Engine::spawn(EngineConfig::new(Arc::clone(spec))).unwrap();
    let mut config = EngineApiConfig::new(secret);
    config.addr = "127.0.0.1:0".parse().unwrap();
    let api = EngineApiServer::new(engine.clone(), config).start().await.unwrap();
    let proxy = match hold {
        Some(hold) => Some(HoldingProxy::start(api.local_addr(), hold).await),
        None => None,
    };
    let url = proxy.as_ref().map_or_else(|| api.http_url(), |proxy| proxy.url.clone());
    let client = EngineClient::new(&url, secret, Arc::clone(spec)).unwrap();
    let aura = Aura::new(keys.iter().map(|k| k.public().clone()).collect(), SLOT_MS, 500).unwrap();
    let clock = Arc::clone(clock);
    let config = ChainConfig {
        genesis_hash: spec.genesis_hash(),
        genesis_timestamp: spec.genesis().timestamp,
        fee_recipient: Address::ZERO,
        clock: Arc::new(move || clock.load(Ordering::Relaxed)),
        auxpow: alys_auxpow::MiningParams {
            chain_id: 0x2121,
            pow_limit_bits: 0x207f_ffff,
            target_spacing_secs: 60,
            target_half_life_secs: 1_200,
            split: alys_auxpow::RewardSplit { miner_percent: 80, federation: Address::ZERO },
        },
        runtime: RuntimeView::fixed(RuntimeParameters::with_max_blocks_without_pow(u64::MAX)),
    };
    let (heads_tx, heads) = tokio::sync::watch::channel(ChainHeads {
        head: BlockRef::new(0, spec.genesis_hash()),
        head_execution_hash: spec.genesis_hash(),
        finalized: None,
    });
    let storage = Arc::new(Storage::in_memory().unwrap());
    let (events_tx, events) = mpsc::channel(64);
    let chain =
        ChainActor::new(config, aura, Some(Arc::clone(&keys[me])), client, Arc::clone(&storage), heads_tx)
            .unwrap()
            .with_events(events_tx);
    Node { chain, events, storage, heads, engine, _api: api, proxy }
}

/// A request to hold back between a node and its engine: the first carrying `hold` waits `delay`;
/// the requests carrying `count` are counted.
struct Hold {
    hold: String,
    delay: std::time::Duration,
    count: String,
}

/// A TCP forwarder in front of an Engine API server doing what a [`Hold`] says; it finds the strings
/// in the request bytes.
struct HoldingProxy {
    url: String,
    counted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl HoldingProxy {
    async fn start(target: std::net::SocketAddr, Hold { hold, delay, count }: Hold) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let counted = Arc::new(AtomicU64::new(0));
        let held = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let counter = Arc::clone(&counted);
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(target).await else { continue };
                let (mut from_client, mut to_client) = inbound.into_split();
                let (mut from_server, mut to_server) = outbound.into_split();
                tokio::spawn(async move { tokio::io::copy(&mut from_server, &mut to_client).await });
                let (hold, count, counter, held) =
                    (hold.clone(), count.clone(), Arc::clone(&counter), Arc::clone(&held));
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 1 << 16];
                    while let Ok(n) = from_client.read(&mut buffer).await
                        && n > 0
                    {
                        let text = String::from_utf8_lossy(&buffer[..n]);
                        if text.contains(&count) {
                            counter.fetch_add(1, Ordering::SeqCst);
                        }
                        if text.contains(&hold) && !held.swap(true, Ordering::SeqCst) {
                            tokio::time::sleep(delay).await;
                        }
                        if to_server.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self { url, counted, task }
    }

    /// How many requests carried the counted string so far.
    fn counted(&self) -> u64 {
        self.counted.load(Ordering::SeqCst)
    }
}

impl Drop for HoldingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn proposed(event: ChainEvent) -> SignedBlock {
    match event {
        ChainEvent::Proposed(block) => *block,
        other => panic!("expected a proposal, got {other:?}"),
    }
}

/// A slot whose author is `author`, after `after`.
fn slot_of(author: u64, after: u64) -> u64 {
    let mut slot = after + 1;
    while slot % 3 != author {
        slot += 1;
    }
    slot
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_authorities_approve_refuse_and_choose_on_the_import_path() {
    let spec = Arc::new(ChainSpec::devnet().unwrap());
    let keys = keys();
    let genesis_ms = spec.genesis().timestamp * 1_000;
    let clock = Arc::new(AtomicU64::new(genesis_ms));
    let mut nodes = Vec::new();
    for me in 0..3 {
        nodes.push(node(&spec, &keys, me, &clock).await);
    }
    let at = |slot: u64| {
        clock.store(slot * SLOT_MS + 10, Ordering::Relaxed);
    };

    // Slot of authority 0: it proposes (executed, not committed), 1 approves, the quorum commits it.
    let s1 = slot_of(0, genesis_ms / SLOT_MS + 1);
    at(s1);
    nodes[0].tick(s1).await;
    let b1 = proposed(nodes[0].next_event());
    assert_eq!(nodes[0].head().height, 0, "a proposal is not the head before its approvals");
    // As a block, a proposal lacks its quorum: refused on import.
    assert!(matches!(
        nodes[2].import(&b1).await,
        Err(ImportError::Aura(AuraError::NotEnoughApprovals { have: 1, need: 2 }))
    ));
    let approval = nodes[1].proposal(&b1).await.unwrap().expect("an authority approves");
    assert_eq!((approval.authority, approval.block_hash), (1, b1.header.hash()));
    // A forged approval: refused before it counts.
    let forged = Approval { authority: 2, ..approval.clone() };
    assert!(matches!(
        nodes[0].approval(forged).await,
        Err(ImportError::Aura(AuraError::ApprovalSignature(_)))
    ));
    assert_eq!(nodes[0].approval(approval.clone()).await.unwrap(), ApprovalOutcome::Completed);
    assert_eq!(nodes[0].approval(approval).await.unwrap(), ApprovalOutcome::NotOurs, "already committed");
    let b1 = match nodes[0].next_event() {
        ChainEvent::Block(block) => *block,
        other => panic!("expected the approved block, got {other:?}"),
    };
    assert_eq!(b1.approvals.signer_indexes(), vec![0, 1]);
    assert_eq!(nodes[0].head(), BlockRef::new(1, b1.header.hash()));
    for i in 1..3 {
        nodes[i].import(&b1).await.unwrap();
        assert_eq!(nodes[i].head(), nodes[0].head());
    }

    // Authority 1's slot: a proposal whose execution timestamp lies outside its slot (re-signed by its
    // author, so only the timestamp is wrong) is refused; so is one from the wrong author.
    let s2 = slot_of(1, s1);
    at(s2);
    nodes[1].tick(s2).await;
    let b2 = proposed(nodes[1].next_event());
    let mut late = b2.clone();
    late.header.slot = s2 + 3;
    late.author_signature = keys[1].sign(&late.header.hash()).to_bytes().to_vec().into();
    at(s2 + 3);
    assert!(matches!(
        nodes[2].proposal(&late).await,
        Err(ImportError::Aura(AuraError::TimestampOutsideSlot { .. }))
    ));
    let mut wrong_author = b2.clone();
    wrong_author.header.author = 2;
    wrong_author.author_signature = keys[2].sign(&wrong_author.header.hash()).to_bytes().to_vec().into();
    assert!(matches!(
        nodes[2].proposal(&wrong_author).await,
        Err(ImportError::Aura(AuraError::WrongAuthor { .. }))
    ));
    at(s2);

    // Equivocation: authority 1 signs a second block for its slot; node 2 sees both, refuses the second,
    // stores the evidence and emits it; node 0 takes the evidence from the "network" and refuses the
    // second block too.
    let mut twin = b2.clone();
    twin.header.execution_block_hash = B256::repeat_byte(0xee);
    twin.author_signature = keys[1].sign(&twin.header.hash()).to_bytes().to_vec().into();
    let approval = nodes[2].proposal(&b2).await.unwrap().expect("node 2 approves the first");
    assert!(matches!(nodes[2].proposal(&twin).await, Err(ImportError::Equivocation { author: 1, .. })));
    let evidence: EquivocationEvidence = match nodes[2].next_event() {
        ChainEvent::Equivocation(evidence) => *evidence,
        other => panic!("expected evidence, got {other:?}"),
    };
    assert_eq!((evidence.first.hash(), evidence.second.hash()), (b2.header.hash(), twin.header.hash()));
    assert_eq!(nodes[2].storage.read().unwrap().equivocation_count().unwrap(), 1);
    assert!(nodes[0].ask(|tx| ChainMessage::Evidence(Box::new(evidence.clone()), tx)).await.unwrap());
    assert!(matches!(nodes[0].next_event(), ChainEvent::Equivocation(_)), "new evidence is passed on");
    assert!(
        !nodes[0].ask(|tx| ChainMessage::Evidence(Box::new(evidence.clone()), tx)).await.unwrap(),
        "known"
    );
    let mut bogus = evidence.clone();
    bogus.second_signature = bogus.first_signature.clone();
    assert!(nodes[0].ask(|tx| ChainMessage::Evidence(Box::new(bogus), tx)).await.is_err());
    assert!(matches!(nodes[0].proposal(&twin).await, Err(ImportError::Equivocation { .. })));
    assert_eq!(nodes[1].approval(approval).await.unwrap(), ApprovalOutcome::Completed);
    let b2 = match nodes[1].next_event() {
        ChainEvent::Block(block) => *block,
        other => panic!("expected the approved block, got {other:?}"),
    };
    nodes[0].import(&b2).await.unwrap();
    nodes[2].import(&b2).await.unwrap();
    let status = nodes[0].ask(ChainMessage::Status).await;
    assert_eq!(status.equivocations, 1);

    // One vote per height: node 0 approves authority 2's block at height 3; in the next slot, its own,
    // it proposes nothing while that vote stands (a second block of height 3 could fork the chain),
    // and node 1, having approved the first, refuses another block of that height.
    let s3 = slot_of(2, s2);
    at(s3);
    nodes[2].tick(s3).await;
    let b3 = proposed(nodes[2].next_event());
    let vote = nodes[0].proposal(&b3).await.unwrap().expect("node 0 approves");
    at(s3 + 1);
    nodes[0].tick(s3 + 1).await;
    assert!(nodes[0].events.try_recv().is_err(), "no proposal for a height this node voted for");
    assert!(matches!(nodes[1].proposal(&b3).await, Ok(Some(_))), "node 1 votes for the first it sees");
    assert_eq!(nodes[2].approval(vote).await.unwrap(), ApprovalOutcome::Completed);
    let b3 = match nodes[2].next_event() {
        ChainEvent::Block(block) => *block,
        other => panic!("expected the approved block, got {other:?}"),
    };
    nodes[0].import(&b3).await.unwrap();

    // Fork choice. Node 1 has not seen b3: in its next slot it proposes a rival of height 3 on b2, and
    // the test, holding every key, approves it as authority 2 (a faulty approver) so it completes at
    // node 1. At node 0 the rival (same height, no more work) is stored beside b3, which stays the
    // head; the rival's child (height 4) then outweighs b3 and node 0 reorganizes onto it.
    let s5 = slot_of(1, s3 + 1);
    at(s5);
    nodes[1].tick(s5).await;
    let rival = proposed(nodes[1].next_event());
    assert_eq!((rival.header.height, rival.header.parent_hash), (3, b2.header.hash()));
    let sign = |key: usize, block: &SignedBlock| Approval {
        block_hash: block.header.hash(),
        authority: key as u32,
        signature: keys[key].sign(&block.header.hash()).to_bytes().to_vec().into(),
    };
    assert!(matches!(nodes[0].proposal(&rival).await, Err(ImportError::NotOnHead { .. })));
    assert_eq!(nodes[1].approval(sign(2, &rival)).await.unwrap(), ApprovalOutcome::Completed);
    let rival = match nodes[1].next_event() {
        ChainEvent::Block(block) => *block,
        other => panic!("expected the approved block, got {other:?}"),
    };
    nodes[0].import(&rival).await.unwrap();
    assert_eq!(nodes[0].head(), BlockRef::new(3, b3.header.hash()), "an equal branch does not win");
    let s6 = slot_of(1, s5);
    at(s6);
    nodes[1].tick(s6).await;
    let child = proposed(nodes[1].next_event());
    assert_eq!(nodes[1].approval(sign(2, &child)).await.unwrap(), ApprovalOutcome::Completed);
    let child = match nodes[1].next_event() {
        ChainEvent::Block(block) => *block,
        other => panic!("expected the approved block, got {other:?}"),
    };
    nodes[0].import(&child).await.unwrap();
    assert_eq!(nodes[0].head(), BlockRef::new(4, child.header.hash()), "the longer branch wins");
    let read = nodes[0].storage.read().unwrap();
    assert_eq!(read.canonical_hash(3).unwrap(), Some(rival.header.hash()));
    assert!(read.has_block(&b3.header.hash()).unwrap(), "the losing block stays stored");
    let canonical: Vec<SignedBlock> = (1..=4).map(|h| read.block_by_height(h).unwrap().unwrap()).collect();
    drop(read);

    // A fork block with a merged-mining proof outweighs a branch without one, and its finality holds
    // once it is canonical: node 2 (still on b3) gets a proof for the batch up to b3 and puts it in its
    // next block d4 (approved, as before, by a key the test holds); node 0, on the longer-or-equal
    // rival branch, reorganizes onto d4 and finalizes b3.
    let template =
        nodes[2].ask(|tx| ChainMessage::CreateAuxBlock(Address::repeat_byte(7), tx)).await.unwrap();
    assert_eq!(template.height, 3);
    let proof = alys_auxpow::pow::mine(template.hash, template.chain_id, template.bits, 1_000_000).unwrap();
    assert!(nodes[2].ask(|tx| ChainMessage::SubmitAuxBlock(template.hash, proof.into(), tx)).await.unwrap());
    assert!(matches!(nodes[2].next_event(), ChainEvent::Proof(_)), "a queued proof is gossiped");
    let s7 = slot_of(2, s6);
    at(s7);
    nodes[2].tick(s7).await;
    let d4 = proposed(nodes[2].next_event());
    assert!(!d4.header.auxpow.is_empty(), "the proof rides in the author's next block");
    assert_eq!(nodes[2].approval(sign(0, &d4)).await.unwrap(), ApprovalOutcome::Completed);
    let d4 = match nodes[2].next_event() {
        ChainEvent::Block(block) => *block,
        other => panic!("expected the approved block, got {other:?}"),
    };
    nodes[0].import(&d4).await.unwrap();
    assert_eq!(nodes[0].head(), BlockRef::new(4, d4.header.hash()), "more merged-mining work wins");
    assert_eq!(nodes[0].heads.borrow().finalized, Some(BlockRef::new(3, b3.header.hash())));
    assert_eq!(nodes[0].storage.read().unwrap().canonical_hash(3).unwrap(), Some(b3.header.hash()));
    // And a branch replacing the proof block never wins back, however long it grows: the rival
    // branch's next block (height 5 on child) is stored, not made the head.
    let s8 = slot_of(1, s7);
    at(s8);
    nodes[1].tick(s8).await;
    let e5 = proposed(nodes[1].next_event());
    assert_eq!((e5.header.height, e5.header.parent_hash), (5, child.header.hash()));
    assert_eq!(nodes[1].approval(sign(2, &e5)).await.unwrap(), ApprovalOutcome::Completed);
    let e5 = match nodes[1].next_event() {
        ChainEvent::Block(block) => *block,
        other => panic!("expected the approved block, got {other:?}"),
    };
    nodes[0].import(&e5).await.unwrap();
    assert_eq!(nodes[0].head(), BlockRef::new(4, d4.header.hash()), "a proof block is not reorganized away");

    // A fresh node takes the canonical chain as one range, as sync does. One quorum, the last block's,
    // vouches for the range: each header commits to its parent's seal. So a garbage seal beside an
    // inner block is not even looked at; what is stored is the seal the next header carries.
    let mut forged = canonical.clone();
    forged[1].approvals.signature = forged[0].approvals.signature.clone();
    forged[1].author_signature = forged[0].author_signature.clone();
    let mut vouched = node(&spec, &keys, 2, &clock).await;
    let outcome = vouched.ask(|tx| ChainMessage::ImportRange(forged.clone(), tx)).await;
    assert!(outcome.error.is_none(), "{outcome:?}");
    assert_eq!(vouched.head(), BlockRef::new(4, canonical[3].header.hash()));
    let stored = vouched.storage.read().unwrap().block(&canonical[1].header.hash()).unwrap().unwrap();
    assert_eq!(stored.seal(), canonical[2].header.parent_seal, "the seal the child's header commits to");
    assert_ne!(stored.approvals, forged[1].approvals);
    // When the last block's quorum does not verify, each block is checked on its own: the range stops
    // at the last block, and the ones before it stay, durable.
    forged[3].approvals.signature = forged[0].approvals.signature.clone();
    let mut fresh = node(&spec, &keys, 2, &clock).await;
    let outcome = fresh.ask(|tx| ChainMessage::ImportRange(forged, tx)).await;
    assert_eq!(outcome.imported, 3);
    assert!(
        matches!(outcome.error, Some((4, ImportError::Aura(AuraError::ApprovalSignature(_))))),
        "{outcome:?}"
    );
    assert_eq!(fresh.head().height, 3);

    // The parent seal a single block carries (gossip) is checked against the parent's hash and author:
    // a quorum other than the stored one passes if it verifies; a forged one, or one on a first block,
    // is refused. Each forgery is re-signed by every authority, so only its parent seal is wrong.
    let all_approve = |block: &SignedBlock| -> Approvals {
        let hash = block.header.hash();
        let signatures: Vec<BlsSignature> = keys.iter().map(|k| k.sign(&hash)).collect();
        Approvals {
            signers: Approvals::bitfield([0, 1, 2]),
            signature: BlsSignature::aggregate(&signatures.iter().collect::<Vec<_>>())
                .unwrap()
                .to_bytes()
                .to_vec()
                .into(),
        }
    };
    let seal_case = |seal: Seal, height: usize| -> SignedBlock {
        let mut block = canonical[height].clone();
        block.header.parent_seal = seal;
        block.approvals = all_approve(&block);
        block.author_signature =
            keys[block.header.author as usize].sign(&block.header.hash()).to_bytes().to_vec().into();
        block
    };
    let other_quorum =
        Seal { approvals: all_approve(&canonical[0]), ..canonical[1].header.parent_seal.clone() };
    assert_ne!(other_quorum, canonical[0].seal());
    let forged_seal =
        Seal { author_signature: canonical[1].author_signature.clone(), ..other_quorum.clone() };
    let short_seal = Seal {
        approvals: Approvals {
            signers: Approvals::bitfield([0]),
            signature: canonical[0].author_signature.clone(),
        },
        ..other_quorum.clone()
    };
    for (block, expect) in [
        (seal_case(other_quorum, 1), "imported"),
        (seal_case(forged_seal, 1), "bad signature"),
        (seal_case(short_seal, 1), "short quorum"),
        (seal_case(canonical[1].header.parent_seal.clone(), 0), "first block"),
    ] {
        let mut node = node(&spec, &keys, 2, &clock).await;
        if block.header.height == 2 {
            node.import(&canonical[0]).await.unwrap();
        }
        let got = match node.import(&block).await {
            Ok(_) => "imported",
            Err(ImportError::Aura(AuraError::ParentSeal(inner))) => match *inner {
                AuraError::ApprovalSignature(_) => "bad signature",
                AuraError::NotEnoughApprovals { have: 1, need: 2 } => "short quorum",
                other => panic!("{expect}: {other:?}"),
            },
            Err(ImportError::Aura(AuraError::NotChild("a first block carries a parent seal"))) => {
                "first block"
            }
            Err(other) => panic!("{expect}: {other:?}"),
        };
        assert_eq!(got, expect);
    }

    // A range's blocks go to the execution client ahead of their import (`newPayload` of one while the
    // one before is checked and stored). A block the execution client finds invalid, or one it finds
    // valid that a consensus rule then refuses, stops the range there; the execution client's head is
    // the last block committed, never one sent ahead. Both forgeries are signed by the authorities, so
    // they pass the signature checks and are sent ahead.
    let resign = |mut block: SignedBlock| -> SignedBlock {
        let hash = block.header.hash();
        let own = keys[block.header.author as usize].sign(&hash);
        let approvals: Vec<BlsSignature> =
            block.approvals.signer_indexes().iter().map(|i| keys[*i as usize].sign(&hash)).collect();
        let approvals = BlsSignature::aggregate(&approvals.iter().collect::<Vec<_>>()).unwrap();
        block.author_signature = own.to_bytes().to_vec().into();
        block.approvals.signature = approvals.to_bytes().to_vec().into();
        block
    };
    let mut bad_state = canonical.clone();
    let mut execution = decode_execution_block(&bad_state[2]).unwrap();
    execution.header.state_root = B256::repeat_byte(0x5a);
    bad_state[2].header.execution_block_hash = execution.header.hash_slow();
    bad_state[2].execution_block = encode_execution_block(&execution);
    bad_state[2] = resign(bad_state[2].clone());
    let mut bad_slot = canonical.clone();
    bad_slot[2].header.slot += 3; // the same author's next turn: its execution timestamp is outside it
    bad_slot[2] = resign(bad_slot[2].clone());
    // Each on a node of its own: the forged block is its author's second block of a slot there.
    for (forged, why) in [(bad_state, "invalid execution"), (bad_slot, "timestamp outside the slot")] {
        let mut fresh = node(&spec, &keys, 2, &clock).await;
        let outcome = fresh.ask(|tx| ChainMessage::ImportRange(forged, tx)).await;
        assert_eq!(outcome.imported, 2, "{why}: {outcome:?}");
        let refused = match &outcome.error {
            Some((3, ImportError::InvalidPayload(_))) => "invalid execution",
            Some((3, ImportError::Aura(AuraError::TimestampOutsideSlot { .. }))) => {
                "timestamp outside the slot"
            }
            other => panic!("{why}: refused otherwise: {other:?}"),
        };
        assert_eq!(refused, why);
        assert_eq!(fresh.head(), BlockRef::new(2, canonical[1].header.hash()));
        let (engine_head, number) = fresh.engine.head().await.unwrap();
        assert_eq!((engine_head, number), (canonical[1].header.execution_block_hash, 2), "{why}");
    }
    let outcome = fresh.ask(|tx| ChainMessage::ImportRange(canonical.clone(), tx)).await;
    assert!(outcome.error.is_none(), "{outcome:?}");
    assert_eq!(outcome.imported, 4, "known blocks count as imported");
    assert_eq!(fresh.head(), BlockRef::new(4, canonical[3].header.hash()));
    let (engine_head, number) = fresh.engine.head().await.unwrap();
    assert_eq!((engine_head, number), (canonical[3].header.execution_block_hash, 4));

    // Two calls are in flight, so block 3's can reach the execution client before block 2's: held back
    // here, block 2's call arrives after block 3's, which is answered SYNCING (parent unknown). Block 3
    // is sent again once block 2 is valid, and the whole range is imported.
    let needle = |block: &SignedBlock| format!("\"blockHash\":\"{:#x}\"", block.header.execution_block_hash);
    let hold = Hold {
        hold: needle(&canonical[1]),
        delay: std::time::Duration::from_millis(300),
        count: needle(&canonical[2]),
    };
    let mut overtaken = node_through(&spec, &keys, 2, &clock, Some(hold)).await;
    let outcome = overtaken.ask(|tx| ChainMessage::ImportRange(canonical.clone(), tx)).await;
    assert!(outcome.error.is_none(), "{outcome:?}");
    assert_eq!(outcome.imported, 4);
    assert_eq!(overtaken.head(), BlockRef::new(4, canonical[3].header.hash()));
    let (engine_head, number) = overtaken.engine.head().await.unwrap();
    assert_eq!((engine_head, number), (canonical[3].header.execution_block_hash, 4));
    let sent = overtaken.proxy.as_ref().unwrap().counted();
    assert_eq!(sent, 2, "block 3's newPayload: overtook block 2's (SYNCING), then sent again");
}
