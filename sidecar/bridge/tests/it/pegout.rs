#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]
//! The peg-out path end to end in one process: the burn source against a real ExEx feed over loopback
//! and against a JSON-RPC server that refuses large log ranges, the ledger's release rule across reorgs,
//! and a state-machine test of the ledger.

use std::{
    collections::{BTreeSet, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alys_bridge::{
    BurnSourceConfig, GethPoller, GethPollerError, PegoutCommit, SourceError,
    source::{self},
};
use alys_burns::{
    BearerToken, Burn, BurnExtractor, ClientError, EndpointError, FeedTls,
    test_utils::{ALICE, BTC_ADDR, TestBlock, block, bridge_burn_log, committed, reorged, wei},
};
use alys_exex::{BurnExEx, ChainUpdate};
use alys_governance::{RuntimeParameters, RuntimeView};
use alys_primitives::{Approvals, BlockRef, ChainHeads, ConsensusHeader, SignedBlock};
use alys_storage::{ChainRead, PegoutRead, Storage, WriteTx};
use jsonrpsee::{
    RpcModule,
    server::{Server, ServerHandle},
    types::ErrorObjectOwned,
};
use tokio::sync::watch;

// ---------------------------------------------------------------------------------------------------
// Fixtures: a consensus chain in the node's database, the ExEx feed, the source task
// ---------------------------------------------------------------------------------------------------

/// A consensus block at `height` on `parent` carrying execution block `execution`; `salt` tells
/// siblings apart.
fn consensus_block(parent: B256, height: u64, execution: B256, salt: u64) -> SignedBlock {
    SignedBlock {
        header: ConsensusHeader {
            parent_hash: parent,
            parent_seal: Default::default(),
            height,
            slot: height * 1_000 + salt,
            author: 0,
            execution_block_hash: execution,
            pegins: vec![],
            auxpow: Bytes::new(),
            pegout: None,
        },
        execution_block: Bytes::new(),
        execution_requests: vec![],
        author_signature: Bytes::new(),
        approvals: Approvals { signers: Bytes::new(), signature: Bytes::new() },
    }
}

fn write<T>(storage: &Storage, f: impl FnOnce(&WriteTx) -> Result<T, alys_storage::StorageError>) -> T {
    let tx = storage.write().unwrap();
    let out = f(&tx).unwrap();
    tx.commit().unwrap();
    out
}

/// Makes the consensus chain carry `executions` (heights 1..) and finalizes height `finalized`.
fn consensus_chain(storage: &Storage, executions: &[B256], finalized: u64) -> Vec<BlockRef> {
    let mut parent = B256::ZERO;
    let mut refs = Vec::new();
    for (i, execution) in executions.iter().enumerate() {
        let block = consensus_block(parent, i as u64 + 1, *execution, 0);
        let head = write(storage, |tx| tx.set_head(&block));
        parent = head.hash;
        refs.push(head);
    }
    if finalized > 0 {
        write(storage, |tx| tx.set_finalized(refs[finalized as usize - 1]));
    }
    refs
}

fn heads_at(head: BlockRef, finalized: Option<BlockRef>) -> ChainHeads {
    ChainHeads { head, head_execution_hash: B256::ZERO, finalized }
}

fn runtime() -> RuntimeView {
    RuntimeView::fixed(RuntimeParameters::with_max_blocks_without_pow(10))
}

fn token() -> BearerToken {
    BearerToken::new("feed-s3cret").unwrap()
}

/// The ExEx's feed on a loopback port, requiring [`token`].
async fn serve_feed(exex: &BurnExEx) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let feed = exex.feed_server().with_bearer_token(token());
    tokio::spawn(async move {
        feed.serve(listener, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (url, stop)
}

fn exex_source(url: &str) -> BurnSourceConfig {
    BurnSourceConfig::Exex { feed_url: url.to_owned(), bearer_token: Some(token()), tls: FeedTls::default() }
}

/// Polls `check` every 5 ms until it holds (panics after 20 s).
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "{what} within 20 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn update(blocks: &[TestBlock]) -> ChainUpdate {
    let n = committed(blocks.to_vec());
    ChainUpdate::new(&n.reverted, &n.committed, &BurnExtractor::default())
}

/// `n` blocks from 1, one burn each.
fn burn_blocks(n: u64, salt: u64) -> Vec<TestBlock> {
    let mut out: Vec<TestBlock> = Vec::new();
    for number in 1..=n {
        let parent = out.last().map_or(B256::ZERO, |b| b.hash);
        out.push(block(number, parent, salt, vec![vec![bridge_burn_log(ALICE, BTC_ADDR, wei(number))]]));
    }
    out
}

// ---------------------------------------------------------------------------------------------------
// The ExEx path: a failed ledger write, and a reorged burn
// ---------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_ledger_write_loses_no_burn_and_the_cursor_never_passes_it() {
    // Fail points are process-wide: each test that records feed events holds the scenario lock.
    let _scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let exex = BurnExEx::open(dir.path().join("exex.redb")).unwrap();
    let chain = burn_blocks(5, 0);
    exex.process(&update(&chain)).unwrap();
    let events = exex.store().events_after(0, 100).unwrap();
    assert_eq!(events.len(), 5);
    let (url, _stop) = serve_feed(&exex).await;

    let storage = Arc::new(Storage::in_memory().unwrap());
    // The second write fails, as a full disk would; the transaction is dropped uncommitted.
    fail::cfg(PegoutCommit::FeedEvent.error(), "1*off->1*return").unwrap();
    let genesis = BlockRef { height: 0, hash: B256::ZERO };
    let (heads_tx, heads) = watch::channel(heads_at(genesis, None));
    let task = tokio::spawn(source::run(exex_source(&url), Arc::clone(&storage), heads, runtime()));

    // At every snapshot, each event at or below the stored cursor is recorded.
    let check = || {
        let read = storage.read().unwrap();
        let cursor = read.burn_cursor().unwrap();
        let pending = read.pending_burns().unwrap();
        for event in events.iter().filter(|e| e.cursor <= cursor) {
            assert!(
                pending.contains(&event.burn),
                "cursor {cursor} passed the unrecorded event {}",
                event.cursor
            );
        }
        cursor == 5
    };
    // Five records evaluated the point at least five times: the second evaluation failed the write.
    until("every event recorded", check).await;
    let read = storage.read().unwrap();
    let expected: Vec<Burn> = events.iter().map(|e| e.burn.clone()).collect();
    assert_eq!(read.pending_burns().unwrap(), expected, "each burn pending exactly once");
    assert!(read.released_burns().unwrap().is_empty());
    drop(heads_tx);
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burn_of_a_reorged_block_waits_for_its_retraction_and_is_never_released() {
    let _scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let exex = BurnExEx::open(dir.path().join("exex.redb")).unwrap();
    // The execution client first commits A1..A3; A3 is then reorged away for B3.
    let a = burn_blocks(3, 0);
    let b3 = block(3, a[1].hash, 9, vec![vec![bridge_burn_log(ALICE, b"bcrt1qb3", wei(7))]]);
    exex.process(&update(&a)).unwrap();
    let (url, _stop) = serve_feed(&exex).await;

    // The consensus chain (finalized through 3) carries A1, A2 and B3: A3 is not canonical.
    let storage = Arc::new(Storage::in_memory().unwrap());
    let refs = consensus_chain(&storage, &[a[0].hash, a[1].hash, b3.hash], 3);
    let (heads_tx, heads) = watch::channel(heads_at(refs[2], None));
    let task = tokio::spawn(source::run(exex_source(&url), Arc::clone(&storage), heads, runtime()));
    until("A's burns recorded", || storage.read().unwrap().burn_cursor().unwrap() == 3).await;

    // Final through 3: the burns of A1 and A2 are released, A3's waits.
    heads_tx.send_replace(heads_at(refs[2], Some(refs[2])));
    until("A1 and A2 released", || storage.read().unwrap().released_burns().unwrap().len() >= 2).await;
    let a_burns: Vec<Burn> = a.iter().flat_map(|b| BurnExtractor::default().extract_block(b)).collect();
    let read = storage.read().unwrap();
    assert_eq!(read.released_burns().unwrap(), a_burns[..2].to_vec());
    assert_eq!(read.pending_burns().unwrap(), vec![a_burns[2].clone()], "A3's burn waits");
    assert_eq!(read.orphaned_pending_burns().unwrap(), vec![a_burns[2].clone()]);
    drop(read);
    // More heads do not release it.
    heads_tx.send_replace(heads_at(refs[2], Some(refs[2])));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!storage.read().unwrap().is_released(&a_burns[2]).unwrap());

    // The reorg reaches the feed: A3's burn retracted, B3's added; B3's is released at the next head.
    let n = reorged(vec![a[2].clone()], vec![b3.clone()]);
    exex.process(&ChainUpdate::new(&n.reverted, &n.committed, &BurnExtractor::default())).unwrap();
    until("the reorg recorded", || storage.read().unwrap().burn_cursor().unwrap() == 5).await;
    heads_tx.send_replace(heads_at(refs[2], Some(refs[2])));
    let b3_burn = BurnExtractor::default().extract_block(&b3).remove(0);
    until("B3 released", || storage.read().unwrap().is_released(&b3_burn).unwrap()).await;
    let read = storage.read().unwrap();
    assert!(read.pending_burns().unwrap().is_empty());
    assert_eq!(read.released_burns().unwrap(), vec![a_burns[0].clone(), a_burns[1].clone(), b3_burn]);
    assert!(!read.is_released(&a_burns[2]).unwrap(), "the orphaned burn was never released");
    drop(read);
    drop(heads_tx);
    task.await.unwrap().unwrap();
}

#[test]
fn a_plaintext_feed_off_loopback_is_refused_before_anything_runs() {
    let error = BurnSourceConfig::exex("http://10.0.0.5:50551").check().unwrap_err();
    assert!(
        matches!(error, SourceError::Feed(ClientError::Insecure(EndpointError::PlaintextOffLoopback { .. }))),
        "{error}"
    );
    assert!(error.to_string().contains("loopback") && error.to_string().contains("https://"), "{error}");
    BurnSourceConfig::exex("http://127.0.0.1:50551").check().unwrap();
    BurnSourceConfig::exex("https://reth.example.org:50551").check().unwrap();
    let tls_on_plaintext = BurnSourceConfig::Exex {
        feed_url: "http://127.0.0.1:50551".into(),
        bearer_token: None,
        tls: FeedTls { ca_pem: None, domain: Some("reth.example.org".into()) },
    };
    assert!(matches!(tls_on_plaintext.check(), Err(SourceError::Feed(ClientError::TlsWithoutHttps { .. }))));
}

// ---------------------------------------------------------------------------------------------------
// The geth path: ranges refused as too large are halved, and each chunk is committed on its own
// ---------------------------------------------------------------------------------------------------

/// The execution block hash of block `n` on the fake execution client.
fn exec_hash(n: u64) -> B256 {
    keccak256(n.to_be_bytes())
}

/// An execution client's `eth_getLogs` with reth's and hosted nodes' limits, over a fixed set of burns.
#[derive(Debug)]
struct FakeEth {
    /// Burns per block number.
    burns: Vec<(u64, u64)>,
    finalized: u64,
    max_span: u64,
    max_results: usize,
    /// Refuses any range holding this block with an error that is not a range refusal.
    broken_block: AtomicU64,
    calls: AtomicUsize,
    /// The largest span answered with logs.
    widest_served: AtomicU64,
    refused: AtomicBool,
}

impl FakeEth {
    fn logs(&self, from: u64, to: u64) -> Result<Vec<alloy_rpc_types_eth::Log>, ErrorObjectOwned> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let broken = self.broken_block.load(Ordering::SeqCst);
        if (from..=to).contains(&broken) {
            return Err(ErrorObjectOwned::owned(-32000, "header not found", None::<()>));
        }
        if to - from + 1 > self.max_span {
            self.refused.store(true, Ordering::SeqCst);
            return Err(ErrorObjectOwned::owned(
                -32602,
                format!("query exceeds max block range {}", self.max_span),
                None::<()>,
            ));
        }
        let mut logs = Vec::new();
        for &(number, count) in self.burns.iter().filter(|(n, _)| (from..=to).contains(n)) {
            for index in 0..count {
                logs.push(alloy_rpc_types_eth::Log {
                    inner: bridge_burn_log(ALICE, BTC_ADDR, wei(number * 10 + index)),
                    block_hash: Some(exec_hash(number)),
                    block_number: Some(number),
                    block_timestamp: None,
                    transaction_hash: Some(keccak256([number as u8, index as u8])),
                    transaction_index: Some(index),
                    log_index: Some(index),
                    removed: false,
                });
            }
        }
        if logs.len() > self.max_results {
            self.refused.store(true, Ordering::SeqCst);
            return Err(ErrorObjectOwned::owned(
                -32005,
                format!("query returned more than {} results", self.max_results),
                None::<()>,
            ));
        }
        self.widest_served.fetch_max(to - from + 1, Ordering::SeqCst);
        Ok(logs)
    }

    fn expected(&self, up_to: u64) -> usize {
        self.burns.iter().filter(|(n, _)| *n <= up_to).map(|(_, c)| *c as usize).sum()
    }
}

async fn serve_eth(fake: Arc<FakeEth>) -> (String, ServerHandle) {
    let mut module = RpcModule::new(fake);
    module
        .register_method("eth_getBlockByNumber", |_, fake, _| {
            let mut block = alloy_rpc_types_eth::Block::<alloy_rpc_types_eth::Transaction>::default();
            block.header.inner.number = fake.finalized;
            block.header.hash = exec_hash(fake.finalized);
            serde_json::to_value(block).unwrap()
        })
        .unwrap();
    module
        .register_method("eth_getLogs", |params, fake, _| {
            let (filter,): (alloy_rpc_types_eth::Filter,) = params.parse()?;
            let from = filter.get_from_block().unwrap();
            let to = filter.get_to_block().unwrap();
            assert_eq!(filter.address.iter().collect::<Vec<_>>(), vec![&alys_contracts::BRIDGE_ADDRESS]);
            fake.logs(from, to)
        })
        .unwrap();
    let server = Server::builder().build("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", server.local_addr().unwrap());
    (url, server.start(module))
}

fn fake_eth(max_span: u64, max_results: usize) -> FakeEth {
    FakeEth {
        // Sparse burns, a block with three, and a dense stretch of one per block.
        burns: [(3, 1), (4, 3), (60, 1), (100, 1)].into_iter().chain((20..=31).map(|n| (n, 1))).collect(),
        finalized: 100,
        max_span,
        max_results,
        broken_block: AtomicU64::new(u64::MAX),
        calls: AtomicUsize::new(0),
        widest_served: AtomicU64::new(0),
        refused: AtomicBool::new(false),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_log_ranges_are_halved_down_to_one_block() {
    let fake = Arc::new(fake_eth(8, 3));
    let (url, _server) = serve_eth(Arc::clone(&fake)).await;
    let poller = GethPoller::new(&url, 64).unwrap();
    assert_eq!(poller.finalized().await.unwrap(), Some(100));

    let burns = poller.burns(1, 100).await.unwrap();
    assert_eq!(burns.len(), fake.expected(100), "every burn, once");
    assert!(burns.windows(2).all(|w| w[0].position() < w[1].position()), "in chain order");
    assert!(fake.refused.load(Ordering::SeqCst), "the server refused ranges");
    assert!(fake.widest_served.load(Ordering::SeqCst) <= 8);

    // One block with more logs than the server returns: nothing left to split, a typed error.
    let strict = Arc::new(fake_eth(8, 2));
    let (url, _server) = serve_eth(Arc::clone(&strict)).await;
    let error = GethPoller::new(&url, 64).unwrap().burns(1, 10).await.unwrap_err();
    assert!(matches!(error, GethPollerError::BlockRefused { block: 4, .. }), "{error}");
    assert!(!error.is_range_refusal());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_geth_path_commits_chunk_by_chunk_and_releases_each_burn_once() {
    let _scenario = fail::FailScenario::setup();
    let fake = Arc::new(fake_eth(8, 3));
    // Block 50 cannot be read for now: the poll stops there.
    fake.broken_block.store(50, Ordering::SeqCst);
    let (url, _server) = serve_eth(Arc::clone(&fake)).await;
    let storage = Arc::new(Storage::in_memory().unwrap());
    let executions: Vec<B256> = (1..=100).map(exec_hash).collect();
    let refs = consensus_chain(&storage, &executions, 100);
    let (heads_tx, heads) = watch::channel(heads_at(refs[99], Some(refs[99])));
    let config = BurnSourceConfig::Geth {
        eth_rpc_url: url,
        max_log_range: 10,
        poll_interval: Duration::from_millis(20),
    };
    let task = tokio::spawn(source::run(config, Arc::clone(&storage), heads, runtime()));

    // The chunks before the broken block are committed, each with its height (the server's 8-block
    // and 3-result limits halve them on the way); the chunk holding block 50 never is.
    until("the chunks before the broken block", || storage.read().unwrap().geth_height().unwrap() >= 42)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let read = storage.read().unwrap();
    let stopped_at = read.geth_height().unwrap();
    assert!((42..50).contains(&stopped_at), "stopped at {stopped_at}");
    assert_eq!(
        read.released_burns().unwrap().len(),
        fake.expected(stopped_at),
        "burns up to there are final"
    );
    drop(read);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(storage.read().unwrap().geth_height().unwrap(), stopped_at, "the broken chunk is not passed");

    // Once the block reads, the poll goes on to the finalized head; every burn released once.
    fake.broken_block.store(u64::MAX, Ordering::SeqCst);
    until("the finalized head", || storage.read().unwrap().geth_height().unwrap() == 100).await;
    let released = storage.read().unwrap().released_burns().unwrap();
    assert_eq!(released.len(), fake.expected(100));
    let unique: HashSet<_> = released.iter().map(Burn::key).collect();
    assert_eq!(unique.len(), released.len());
    drop(heads_tx);
    tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_chunk_commit_is_read_again() {
    let _scenario = fail::FailScenario::setup();
    let fake = Arc::new(fake_eth(64, 100));
    let (url, _server) = serve_eth(Arc::clone(&fake)).await;
    let storage = Arc::new(Storage::in_memory().unwrap());
    let executions: Vec<B256> = (1..=100).map(exec_hash).collect();
    let refs = consensus_chain(&storage, &executions, 100);
    // The third chunk's commit fails once.
    fail::cfg(PegoutCommit::GethChunk.error(), "2*off->1*return").unwrap();
    let (heads_tx, heads) = watch::channel(heads_at(refs[99], Some(refs[99])));
    let config = BurnSourceConfig::Geth {
        eth_rpc_url: url,
        max_log_range: 10,
        poll_interval: Duration::from_millis(20),
    };
    let task = tokio::spawn(source::run(config, Arc::clone(&storage), heads, runtime()));
    until("the finalized head", || storage.read().unwrap().geth_height().unwrap() == 100).await;
    assert_eq!(storage.read().unwrap().released_burns().unwrap().len(), fake.expected(100));
    drop(heads_tx);
    tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap().unwrap();
}

// ---------------------------------------------------------------------------------------------------
// The ledger as a state machine: adds, retractions, releases and geth ingests against consensus
// reorgs and finality
// ---------------------------------------------------------------------------------------------------

mod ledger_model {
    use proptest::prelude::*;

    use super::*;

    /// A burn: (height, execution fork at that height, log index).
    type Id = (u64, u8, u64);

    fn execution(height: u64, fork: u8) -> B256 {
        keccak256([&height.to_be_bytes()[..], &[fork]].concat())
    }

    fn burn((height, fork, log_index): Id) -> Burn {
        Burn {
            block_number: height,
            block_hash: execution(height, fork),
            log_index,
            tx_hash: B256::repeat_byte(0xee),
            tx_index: 0,
            sender: Address::repeat_byte(1),
            bitcoin_address: Bytes::from_static(b"bcrt1q"),
            value: U256::from(10u64),
        }
    }

    fn id(burn: &Burn) -> Id {
        let fork = (0..3).find(|f| execution(burn.block_number, *f) == burn.block_hash).unwrap();
        (burn.block_number, fork, burn.log_index)
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// New consensus blocks on the head.
        Extend(u64),
        /// A new branch from `depth` blocks below the head, `len` blocks long (never below finality).
        Reorg { depth: u64, len: u64 },
        /// Finalize the block `lag` below the head.
        Finalize(u64),
        /// The feed announces a burn.
        Add(Id),
        /// The feed retracts a burn announced before (by index among those announced).
        Retract(usize),
        /// A release pass.
        Release,
        /// A geth chunk: its burns, and whether peg-outs run (`true`) or are paused.
        Ingest(Vec<Id>, bool),
    }

    fn any_id() -> impl Strategy<Value = Id> {
        (1u64..=10, 0u8..3, 0u64..2)
    }

    fn any_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            2 => (1u64..=3).prop_map(Op::Extend),
            1 => (1u64..=3, 1u64..=4).prop_map(|(depth, len)| Op::Reorg { depth, len }),
            2 => (0u64..=3).prop_map(Op::Finalize),
            4 => any_id().prop_map(Op::Add),
            1 => any::<usize>().prop_map(Op::Retract),
            2 => Just(Op::Release),
            1 => (prop::collection::vec(any_id(), 0..4), any::<bool>()).prop_map(|(ids, run)| Op::Ingest(ids, run)),
        ]
    }

    /// The consensus chain as the model sees it: the execution fork carried at each height.
    struct Model {
        storage: Storage,
        /// `forks[h - 1]`: the fork of the execution block the canonical block at `h` carries.
        forks: Vec<u8>,
        refs: Vec<BlockRef>,
        finalized: u64,
        pending: BTreeSet<Id>,
        released: BTreeSet<Id>,
        announced: Vec<Id>,
        next_salt: u64,
    }

    impl Model {
        fn new() -> Self {
            Self {
                storage: Storage::in_memory().unwrap(),
                forks: Vec::new(),
                refs: Vec::new(),
                finalized: 0,
                pending: BTreeSet::new(),
                released: BTreeSet::new(),
                announced: Vec::new(),
                next_salt: 1,
            }
        }

        fn head(&self) -> u64 {
            self.forks.len() as u64
        }

        fn canonical_and_final(&self, (height, fork, _): Id) -> bool {
            height <= self.finalized && self.forks.get(height as usize - 1) == Some(&fork)
        }

        /// Blocks on the block at `base` (0: genesis) with these forks, the last one made head.
        fn build(&mut self, base: u64, forks: &[u8]) {
            let mut parent = if base == 0 { B256::ZERO } else { self.refs[base as usize - 1].hash };
            self.forks.truncate(base as usize);
            self.refs.truncate(base as usize);
            let salt = self.next_salt;
            self.next_salt += 1;
            let tx = self.storage.write().unwrap();
            for (i, fork) in forks.iter().enumerate() {
                let height = base + i as u64 + 1;
                let block = consensus_block(parent, height, execution(height, *fork), salt);
                parent = if i + 1 == forks.len() {
                    tx.set_head(&block).unwrap().hash
                } else {
                    tx.put_block(&block).unwrap()
                };
                self.forks.push(*fork);
                self.refs.push(BlockRef { height, hash: parent });
            }
            tx.commit().unwrap();
        }

        fn release(&mut self, released: Vec<Burn>) {
            let expected: BTreeSet<Id> =
                self.pending.iter().copied().filter(|b| self.canonical_and_final(*b)).collect();
            let got: Vec<Id> = released.iter().map(id).collect();
            for b in &got {
                assert!(self.canonical_and_final(*b), "released {b:?}, which is not final and canonical");
                assert!(!self.released.contains(b), "released {b:?} twice");
            }
            assert_eq!(got.iter().copied().collect::<BTreeSet<_>>(), expected, "everything releasable");
            assert!(got.windows(2).all(|w| burn(w[0]).position() < burn(w[1]).position()), "chain order");
            for b in got {
                self.pending.remove(&b);
                self.released.insert(b);
            }
        }

        fn add(&mut self, b: Id) {
            if !self.released.contains(&b) {
                self.pending.insert(b);
            }
        }

        fn apply(&mut self, op: Op) {
            match op {
                Op::Extend(n) => {
                    let forks = vec![0; n as usize];
                    self.build(self.head(), &forks);
                }
                Op::Reorg { depth, len } => {
                    let Some(base) = self.head().checked_sub(depth) else { return };
                    if base < self.finalized {
                        return;
                    }
                    // A branch whose first block differs from the canonical one at its height.
                    let first = self.forks.get(base as usize).map_or(1, |f| (f + 1) % 3);
                    let forks: Vec<u8> =
                        (0..len).map(|i| if i == 0 { first } else { (i % 3) as u8 }).collect();
                    self.build(base, &forks);
                }
                Op::Finalize(lag) => {
                    let Some(target) = self.head().checked_sub(lag).filter(|t| *t > self.finalized) else {
                        return;
                    };
                    let block = self.refs[target as usize - 1];
                    write(&self.storage, |tx| tx.set_finalized(block));
                    self.finalized = target;
                }
                Op::Add(b) => {
                    write(&self.storage, |tx| tx.add_pending_burns(&[burn(b)]));
                    self.announced.push(b);
                    self.add(b);
                }
                Op::Retract(i) => {
                    if self.announced.is_empty() {
                        return;
                    }
                    let b = self.announced[i % self.announced.len()];
                    let final_ones = write(&self.storage, |tx| tx.retract_burns(&[burn(b)]));
                    assert_eq!(final_ones, usize::from(self.released.contains(&b)));
                    self.pending.remove(&b);
                }
                Op::Release => {
                    let released = write(&self.storage, WriteTx::release_burns);
                    self.release(released);
                }
                Op::Ingest(ids, run) => {
                    let burns: Vec<Burn> = ids.iter().copied().map(burn).collect();
                    let to = self.head();
                    let released = write(&self.storage, |tx| tx.ingest_final_burns(&burns, to, run));
                    for b in ids {
                        self.add(b);
                    }
                    if run {
                        self.release(released);
                    } else {
                        assert!(released.is_empty());
                    }
                    assert_eq!(self.storage.read().unwrap().geth_height().unwrap(), to);
                }
            }
        }

        fn check(&self) {
            let read = self.storage.read().unwrap();
            let pending: BTreeSet<Id> = read.pending_burns().unwrap().iter().map(id).collect();
            let released: BTreeSet<Id> = read.released_burns().unwrap().iter().map(id).collect();
            assert_eq!(pending, self.pending, "pending");
            assert_eq!(released, self.released, "released");
            assert!(pending.is_disjoint(&released), "a burn both pending and released");
            // Finality is never reverted, so what was released stays final and canonical.
            for b in &released {
                assert!(self.canonical_and_final(*b), "released {b:?} is not final and canonical");
            }
            assert_eq!(read.finalized().unwrap().map_or(0, |f| f.height), self.finalized);
            let orphaned: BTreeSet<Id> = read.orphaned_pending_burns().unwrap().iter().map(id).collect();
            let expected: BTreeSet<Id> = self
                .pending
                .iter()
                .copied()
                .filter(|(h, f, _)| *h <= self.finalized && self.forks.get(*h as usize - 1) != Some(f))
                .collect();
            assert_eq!(orphaned, expected, "orphaned pending burns");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        #[test]
        fn every_burn_is_pending_released_or_retracted_consistently(ops in prop::collection::vec(any_op(), 1..60)) {
            let mut model = Model::new();
            for op in ops {
                model.apply(op);
                model.check();
            }
            // Whatever is final and canonical at the end is released by one more pass, once.
            model.apply(Op::Release);
            model.check();
            model.apply(Op::Release);
            model.check();
        }
    }
}
