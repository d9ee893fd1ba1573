#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]
//! The ExEx core end to end: the store across reverts, reorgs and restarts, and the burn feed over real
//! gRPC on loopback with `alys-burns`' client.

use std::{
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use alloy_eips::BlockNumHash;
use alloy_primitives::{B256, U256};
use alys_burns::{
    BearerToken, Burn, BurnExtractor, BurnFeedClient, ClientConfig, ClientError, EndpointError, FeedEvent,
    FeedEventKind, FeedTls,
    test_utils::{
        self, ALICE, BOB, BTC_ADDR, TOKEN, TestBlock, TestNotification, block, block_with_burns, blocks,
        bridge_burn_log, raw_log, transfer_log, wei,
    },
};
use alys_contracts::{BRIDGE_ADDRESS, REQUEST_PEGOUT_TOPIC};
use alys_exex::{
    BurnExEx, BurnStore, CanonicalChain, ChainUpdate, FeedConfig, FeedServer, Retention, StoreError,
};
use alys_proto::burnfeed::v1 as proto;
use backon::ExponentialBuilder;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// The store's input for a notification, as an execution client's loop builds it (default extractor).
fn update(notification: &TestNotification) -> ChainUpdate {
    ChainUpdate::new(&notification.reverted, &notification.committed, &BurnExtractor::default())
}

fn committed(blocks: Vec<TestBlock>) -> ChainUpdate {
    update(&test_utils::committed(blocks))
}

fn reverted(blocks: Vec<TestBlock>) -> ChainUpdate {
    update(&test_utils::reverted(blocks))
}

fn reorged(old: Vec<TestBlock>, new: Vec<TestBlock>) -> ChainUpdate {
    update(&test_utils::reorged(old, new))
}

fn keys(burns: &[Burn]) -> Vec<(B256, u64)> {
    burns.iter().map(|b| (b.block_hash, b.log_index)).collect()
}

fn open_store(path: &Path) -> BurnExEx {
    // A store whose last handle is being dropped on another task may still hold redb's lock briefly.
    for _ in 0..200 {
        match BurnExEx::open(path) {
            Ok(exex) => return exex,
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    BurnExEx::open(path).unwrap()
}

// ---------------------------------------------------------------------------------------------------
// Extraction into the store
// ---------------------------------------------------------------------------------------------------

#[test]
fn two_burns_in_one_transaction_are_both_kept() {
    let b = block(
        1,
        B256::ZERO,
        0,
        vec![vec![bridge_burn_log(ALICE, BTC_ADDR, wei(1)), bridge_burn_log(ALICE, BTC_ADDR, wei(1))]],
    );
    let burns = BurnExtractor::default().extract_block(&b);
    assert_eq!(burns.len(), 2);
    assert_eq!(burns[0].tx_hash, burns[1].tx_hash);
    assert_ne!(burns[0].key(), burns[1].key());
    assert_eq!((burns[0].log_index, burns[1].log_index), (0, 1));

    // Both survive the store, with their own keys.
    let dir = tempfile::tempdir().unwrap();
    let exex = BurnExEx::open(dir.path().join("exex.redb")).unwrap();
    exex.process(&committed(vec![b])).unwrap();
    assert_eq!(exex.store().burns().unwrap(), burns);
}

/// A tiny deterministic generator, so the garbage is reproducible.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn garbage_bridge_logs_are_skipped_without_panic() {
    let good = bridge_burn_log(ALICE, BTC_ADDR, wei(1));
    let sender_topic = ALICE.into_word();
    let mut dirty_topic = sender_topic;
    dirty_topic.0[0] = 0xff; // an address topic with non-zero upper bytes
    let mut logs = vec![
        raw_log(BRIDGE_ADDRESS, vec![REQUEST_PEGOUT_TOPIC], &good.data.data), // topic missing
        raw_log(BRIDGE_ADDRESS, vec![REQUEST_PEGOUT_TOPIC, sender_topic, sender_topic], &good.data.data),
        raw_log(BRIDGE_ADDRESS, vec![REQUEST_PEGOUT_TOPIC, dirty_topic], &good.data.data),
        raw_log(BRIDGE_ADDRESS, vec![REQUEST_PEGOUT_TOPIC, sender_topic], &[]),
        raw_log(BRIDGE_ADDRESS, vec![REQUEST_PEGOUT_TOPIC, sender_topic], &good.data.data[..40]),
        raw_log(BRIDGE_ADDRESS, vec![REQUEST_PEGOUT_TOPIC, sender_topic], &[0xff; 96]), // huge offset
    ];
    // Every truncation of a valid body, and random bodies of many lengths.
    for len in 0..good.data.data.len() {
        logs.push(raw_log(BRIDGE_ADDRESS, vec![REQUEST_PEGOUT_TOPIC, sender_topic], &good.data.data[..len]));
    }
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for i in 0..2_000 {
        let len = (rng.next() % 300) as usize;
        let mut data = rng.bytes(len);
        if i % 2 == 0 && data.len() >= 64 {
            // A plausible head (offset 64, value) with a garbage tail.
            data[..32].copy_from_slice(&U256::from(64).to_be_bytes::<32>());
        }
        logs.push(raw_log(BRIDGE_ADDRESS, vec![REQUEST_PEGOUT_TOPIC, sender_topic], &data));
    }
    let n_garbage = logs.len() as u64;
    logs.push(good);
    let b = block(1, B256::ZERO, 0, vec![logs]);

    let burns = BurnExtractor::default().extract_block(&b);
    // Random data may happen to decode; the valid burn at the end must, with the right index.
    let last = burns.last().unwrap();
    assert_eq!(last.log_index, n_garbage);
    assert_eq!(last.value, wei(1));

    // The store takes such a block too.
    let dir = tempfile::tempdir().unwrap();
    let exex = BurnExEx::open(dir.path().join("exex.redb")).unwrap();
    exex.process(&committed(vec![b])).unwrap();
    assert_eq!(exex.store().burns().unwrap().len(), burns.len());
}

// ---------------------------------------------------------------------------------------------------
// Store: reverts, reorgs, restarts, FinishedHeight
// ---------------------------------------------------------------------------------------------------

#[test]
fn commit_a_revert_a_commit_b_leaves_exactly_b() {
    let dir = tempfile::tempdir().unwrap();
    let exex = BurnExEx::open(dir.path().join("exex.redb")).unwrap();
    let genesis = B256::repeat_byte(0x01);
    let base = blocks(1, genesis, 2, 0);
    let a3 = block_with_burns(3, base[1].hash, 1);
    let a = vec![a3.clone(), block_with_burns(4, a3.hash, 1)];
    let b = vec![block_with_burns(3, base[1].hash, 2)];

    exex.process(&committed(base.clone())).unwrap();
    exex.process(&committed(a.clone())).unwrap();
    assert_eq!(exex.store().burns().unwrap().len(), 2 + 4);
    assert_eq!(exex.head().unwrap(), Some(a[1].num_hash()));

    let p = exex.process(&reverted(a)).unwrap();
    assert_eq!(p.outcome.burns_retracted, 4);
    assert_eq!(exex.head().unwrap(), Some(base[1].num_hash()));

    exex.process(&committed(b.clone())).unwrap();
    let ex = BurnExtractor::default();
    let mut expected: Vec<Burn> = base.iter().chain(&b).flat_map(|blk| ex.extract_block(blk)).collect();
    expected.sort_by_key(|x| (x.block_number, x.log_index));
    assert_eq!(exex.store().burns().unwrap(), expected);
    assert_eq!(exex.head().unwrap(), Some(b[0].num_hash()));

    // The feed tells the whole story: burns of base and A, retractions of A (newest block first), B.
    let events = exex.store().events_after(0, 1000).unwrap();
    let story: Vec<(FeedEventKind, u64)> = events.iter().map(|e| (e.kind, e.burn.block_number)).collect();
    use FeedEventKind::{Burn as Add, Retract};
    assert_eq!(
        story,
        vec![
            (Add, 1),
            (Add, 2),
            (Add, 3),
            (Add, 3),
            (Add, 4),
            (Add, 4),
            (Retract, 4),
            (Retract, 4),
            (Retract, 3),
            (Retract, 3),
            (Add, 3),
            (Add, 3)
        ]
    );
    assert!(events.iter().enumerate().all(|(i, e)| e.cursor == i as u64 + 1), "dense cursors");
}

#[test]
fn reorg_notification_equals_revert_then_commit_and_replays_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let exex = BurnExEx::open(dir.path().join("exex.redb")).unwrap();
    let base = blocks(1, B256::repeat_byte(2), 3, 0);
    let a = blocks(4, base[2].hash, 2, 1);
    let b = blocks(4, base[2].hash, 3, 2);
    exex.process(&committed(base.clone())).unwrap();
    exex.process(&committed(a.clone())).unwrap();
    let reorg = reorged(a.clone(), b.clone());
    let p = exex.process(&reorg).unwrap();
    assert_eq!((p.outcome.burns_retracted, p.outcome.burns_added), (2, 3));
    let burns = exex.store().burns().unwrap();
    let last_cursor = exex.store().last_cursor().unwrap();

    // Notifications whose outcome the store already holds (a WAL replay after a restart): nothing
    // changes. (A stale `Committed(a)` is not one of them: it conflicts with the processed chain and is
    // applied as a reorg; reth never sends it after `set_notifications_with_head`.)
    for n in [committed(base.clone()), committed(b.clone()), reorg, reverted(a)] {
        let p = exex.process(&n).unwrap();
        assert!(!p.outcome.changed(), "{p:?}");
    }
    assert_eq!(exex.store().burns().unwrap(), burns);
    assert_eq!(exex.store().last_cursor().unwrap(), last_cursor);
    assert_eq!(exex.head().unwrap(), Some(b[2].num_hash()));

    // Reverting everything puts the head on the first block's parent.
    let all: Vec<_> = base.iter().chain(&b).cloned().collect();
    exex.process(&reverted(all)).unwrap();
    assert!(exex.store().burns().unwrap().is_empty());
    assert_eq!(exex.head().unwrap(), Some(BlockNumHash { number: 0, hash: B256::repeat_byte(2) }));
}

#[test]
fn committing_over_a_processed_block_without_revert_retracts_it() {
    let dir = tempfile::tempdir().unwrap();
    let exex = BurnExEx::open(dir.path().join("exex.redb")).unwrap();
    let a = blocks(1, B256::ZERO, 3, 1);
    let b = blocks(2, a[0].hash, 1, 2);
    exex.process(&committed(a.clone())).unwrap();
    exex.process(&committed(b.clone())).unwrap();
    let burns = exex.store().burns().unwrap();
    assert_eq!(keys(&burns), vec![(a[0].hash, 0), (b[0].hash, 0)]);
    assert_eq!(exex.head().unwrap(), Some(b[0].num_hash()));
}

#[test]
fn restart_between_commit_and_finished_height_neither_loses_nor_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exex.redb");
    let chain_a = blocks(1, B256::repeat_byte(3), 5, 0);
    let chain_b = blocks(6, chain_a[4].hash, 5, 0);

    let exex = BurnExEx::open(&path).unwrap();
    exex.process(&committed(chain_a.clone())).unwrap();
    // Finality not yet reported: nothing may be pruned.
    assert_eq!(exex.finished_height().unwrap(), None);
    // Commit B; the process dies before FinishedHeight is sent.
    let p = exex.process(&committed(chain_b.clone())).unwrap();
    assert_eq!(p.finished_height, None);
    let burns_before = exex.store().burns().unwrap();
    let events_before = exex.store().events_after(0, 1000).unwrap();
    drop(exex);

    // Restart: the head is where reth must resume.
    let exex = BurnExEx::open(&path).unwrap();
    assert_eq!(exex.head().unwrap(), Some(chain_b[4].num_hash()));
    // reth replays what it has not seen FinishedHeight for (from its WAL), maybe in other groupings.
    let all: Vec<_> = chain_a.iter().chain(&chain_b).cloned().collect();
    for n in [committed(chain_b.clone()), committed(all), committed(chain_a[2..].to_vec())] {
        let p = exex.process(&n).unwrap();
        assert!(!p.outcome.changed());
    }
    assert_eq!(exex.store().burns().unwrap(), burns_before);
    assert_eq!(exex.store().events_after(0, 1000).unwrap(), events_before);

    // FinishedHeight follows finality: min(finalized, head).
    assert_eq!(exex.set_finalized(chain_a[2].num_hash()).unwrap(), Some(chain_a[2].num_hash()));
    let far = BlockNumHash { number: 100, hash: B256::repeat_byte(7) };
    assert_eq!(exex.set_finalized(far).unwrap(), Some(chain_b[4].num_hash()));
    // Finality does not move back.
    assert_eq!(exex.set_finalized(chain_a[0].num_hash()).unwrap(), Some(chain_b[4].num_hash()));
    drop(exex);

    // After another restart, with records below finality pruned, a replay of old blocks still adds nothing.
    let exex = BurnExEx::open(&path).unwrap();
    assert_eq!(exex.store().finalized().unwrap(), Some(far));
    let p = exex.process(&committed(chain_a)).unwrap();
    assert_eq!(p.outcome.burns_added, 0);
    assert_eq!(exex.store().burns().unwrap(), burns_before);
}

#[test]
fn finished_height_is_withheld_when_finality_disagrees_with_processed_chain() {
    let dir = tempfile::tempdir().unwrap();
    let exex = BurnExEx::open(dir.path().join("exex.redb")).unwrap();
    let a = blocks(1, B256::ZERO, 4, 0);
    exex.process(&committed(a.clone())).unwrap();
    let other = BlockNumHash { number: 2, hash: B256::repeat_byte(0xee) };
    assert_eq!(exex.set_finalized(other).unwrap(), None);
    assert_eq!(exex.set_finalized(a[2].num_hash()).unwrap(), Some(a[2].num_hash()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_handler_commits_before_returning() {
    let dir = tempfile::tempdir().unwrap();
    let exex = BurnExEx::open(dir.path().join("exex.redb")).unwrap();
    let a = blocks(1, B256::ZERO, 3, 0);
    exex.set_finalized(a[1].num_hash()).unwrap();
    let p = exex.handle_update(committed(a.clone())).await.unwrap();
    assert_eq!(p.finished_height, Some(a[1].num_hash()));
    assert_eq!(p.outcome.last_cursor, 3);
    assert_eq!(exex.store().last_cursor().unwrap(), 3);
}

// ---------------------------------------------------------------------------------------------------
// The feed over gRPC
// ---------------------------------------------------------------------------------------------------

struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(exex: &BurnExEx, addr: SocketAddr, config: FeedConfig) -> Self {
        Self::serve(exex.feed_server().with_config(config), addr).await
    }

    async fn serve(server: FeedServer, addr: SocketAddr) -> Self {
        let mut listener = None;
        for _ in 0..200 {
            match TcpListener::bind(addr).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        let listener = listener.expect("bind");
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            server
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self { addr, stop, task }
    }

    async fn shutdown(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.task).await.expect("graceful shutdown").unwrap();
    }
}

fn client_config() -> ClientConfig {
    ClientConfig {
        backoff: ExponentialBuilder::new()
            .with_min_delay(Duration::from_millis(20))
            .with_max_delay(Duration::from_millis(200))
            .with_jitter()
            .without_max_times(),
        connect_timeout: Duration::from_secs(2),
    }
}

async fn next(client: &mut BurnFeedClient) -> FeedEvent {
    tokio::time::timeout(Duration::from_secs(15), client.next()).await.expect("event in time").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_streams_backlog_then_live_and_survives_restarts_of_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("exex.redb");
    // The consumer's committed cursor (it would commit it with the burns it records).
    let mut committed_cursor = 0;
    let exex = BurnExEx::open(&store_path).unwrap();
    let config = FeedConfig { batch_size: 3, channel_capacity: 2 };

    // Backlog before anyone listens.
    let a = blocks(1, B256::repeat_byte(4), 10, 0);
    exex.process(&committed(a.clone())).unwrap();
    let server = Server::start(&exex, "127.0.0.1:0".parse().unwrap(), config).await;
    let endpoint = format!("http://{}", server.addr);

    let mut client = BurnFeedClient::new(&endpoint, committed_cursor).unwrap().with_config(client_config());
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(next(&mut client).await);
    }
    // Live: commits while subscribed.
    let b = blocks(11, a[9].hash, 5, 0);
    for blk in &b {
        exex.process(&committed(vec![blk.clone()])).unwrap();
    }
    for _ in 0..5 {
        seen.push(next(&mut client).await);
    }
    committed_cursor = 15;

    // Server restart: stop it, drop the ExEx and its store, write more while the feed is down, reopen.
    server.shutdown().await;
    let addr = {
        // Same port: the client reconnects to the address it knows.
        let endpoint_addr: SocketAddr = endpoint.trim_start_matches("http://").parse().unwrap();
        endpoint_addr
    };
    drop(exex);
    let exex = open_store(&store_path);
    let c = blocks(16, b[4].hash, 3, 0);
    exex.process(&committed(c.clone())).unwrap();
    // The client is waiting (and retrying) while the server is down.
    let waiting = tokio::spawn(async move {
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(next(&mut client).await);
        }
        (client, got)
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let server = Server::start(&exex, addr, config).await;
    let (client, got) = waiting.await.unwrap();
    seen.extend(got);
    assert_eq!(client.position(), 18);
    assert_eq!(committed_cursor, 15);

    // Client restart: a new client resuming after the committed cursor (15) gets the uncommitted
    // 16..18 again, then the live 19.
    drop(client);
    let mut client = BurnFeedClient::new(&endpoint, committed_cursor).unwrap().with_config(client_config());
    assert_eq!(client.position(), 15);
    let again: Vec<FeedEvent> =
        vec![next(&mut client).await, next(&mut client).await, next(&mut client).await];
    assert_eq!(again, seen[15..18].to_vec());
    committed_cursor = 18;
    exex.process(&reverted(vec![c[2].clone()])).unwrap();
    let retract = next(&mut client).await;
    assert_eq!(retract.kind, FeedEventKind::Retract);
    assert_eq!(retract.burn, seen[17].burn);
    seen.push(retract);

    // No gap, no duplicate, and exactly the store's log.
    let cursors: Vec<u64> = seen.iter().map(|e| e.cursor).collect();
    assert_eq!(cursors, (1..=19).collect::<Vec<_>>());
    assert_eq!(seen, exex.store().events_after(0, 100).unwrap());

    // A client restarted after committing everything gets only new events.
    assert!(committed_cursor < client.position());
    committed_cursor = client.position();
    drop(client);
    let mut client = BurnFeedClient::new(&endpoint, committed_cursor).unwrap().with_config(client_config());
    let d = blocks(18, c[1].hash, 1, 9);
    exex.process(&committed(d)).unwrap();
    assert_eq!(next(&mut client).await.cursor, 20);

    let head = client.head().await.unwrap();
    assert_eq!(head.last_cursor, 20);
    assert_eq!(head.head, exex.head().unwrap());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_from_a_cursor_and_slow_consumers() {
    let dir = tempfile::tempdir().unwrap();
    let exex = BurnExEx::open(dir.path().join("exex.redb")).unwrap();
    let server = Server::start(
        &exex,
        "127.0.0.1:0".parse().unwrap(),
        FeedConfig { batch_size: 7, channel_capacity: 1 },
    )
    .await;
    let all = blocks(1, B256::repeat_byte(5), 300, 0);
    exex.process(&committed(all[..150].to_vec())).unwrap();

    // Raw gRPC: from_cursor 100 yields 101.. in order.
    let mut raw =
        proto::burn_feed_client::BurnFeedClient::connect(format!("http://{}", server.addr)).await.unwrap();
    let mut stream = raw.subscribe(proto::SubscribeRequest { from_cursor: 100 }).await.unwrap().into_inner();
    // A slow consumer: the server is bounded by the channel and keeps writing meanwhile.
    for blk in all[150..].iter().cloned() {
        exex.process(&committed(vec![blk])).unwrap();
    }
    for expected in 101..=300u64 {
        let event =
            tokio::time::timeout(Duration::from_secs(10), stream.message()).await.unwrap().unwrap().unwrap();
        assert_eq!(event.cursor, expected);
        let typed = FeedEvent::try_from(event).unwrap();
        assert_eq!(typed.burn.block_number, expected);
        if expected % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let head = raw.head(proto::HeadRequest {}).await.unwrap().into_inner();
    assert_eq!(head.last_cursor, 300);
    drop(stream);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_refuses_a_feed_behind_its_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let exex = BurnExEx::open(dir.path().join("exex.redb")).unwrap();
    exex.process(&committed(blocks(1, B256::ZERO, 3, 0))).unwrap();
    let server = Server::start(&exex, "127.0.0.1:0".parse().unwrap(), FeedConfig::default()).await;
    let mut client =
        BurnFeedClient::new(format!("http://{}", server.addr), 42).unwrap().with_config(client_config());
    let err = tokio::time::timeout(Duration::from_secs(10), client.next()).await.unwrap().unwrap_err();
    assert!(matches!(err, ClientError::CursorAhead { server: 3, client: 42 }), "{err}");
    // Rewinding forward would skip events: the client stays where it is.
    client.rewind(43);
    assert_eq!(client.position(), 42);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewind_redelivers_the_events_after_the_committed_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let exex = BurnExEx::open(dir.path().join("exex.redb")).unwrap();
    let a = blocks(1, B256::repeat_byte(6), 6, 0);
    exex.process(&committed(a.clone())).unwrap();
    let server = Server::start(&exex, "127.0.0.1:0".parse().unwrap(), FeedConfig::default()).await;
    // The consumer had committed cursor 2.
    let mut client =
        BurnFeedClient::new(format!("http://{}", server.addr), 2).unwrap().with_config(client_config());
    let first = [next(&mut client).await, next(&mut client).await, next(&mut client).await];
    assert_eq!(first.iter().map(|e| e.cursor).collect::<Vec<_>>(), vec![3, 4, 5]);

    // It committed 3, then its write of 4 and 5 failed: it rewinds to what it committed.
    client.rewind(3);
    assert_eq!(client.position(), 3);
    let again = [next(&mut client).await, next(&mut client).await];
    assert_eq!(again[..], first[1..]);
    assert_eq!(next(&mut client).await.cursor, 6);

    // Live events follow the rewound subscription as usual.
    exex.process(&committed(blocks(7, a[5].hash, 1, 0))).unwrap();
    assert_eq!(next(&mut client).await.cursor, 7);
    assert_eq!(client.position(), 7);
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------------
// Model test: random commits, reverts, reorgs, replays, restarts and finality against a model chain
// ---------------------------------------------------------------------------------------------------

/// A block on `parent` with 0..=3 burns (and transfers between them), distinct per salt.
fn random_block(rng: &mut XorShift, number: u64, parent: B256, salt: u64) -> TestBlock {
    let txs = (0..rng.next() % 4)
        .map(|i| {
            let mut logs = vec![transfer_log(TOKEN, ALICE, BOB, U256::from(i))];
            if rng.next().is_multiple_of(2) {
                logs.push(bridge_burn_log(ALICE, BTC_ADDR, wei(number)));
            }
            logs
        })
        .collect();
    block(number, parent, salt, txs)
}

#[test]
fn random_histories_keep_the_store_equal_to_the_canonical_chain() {
    for seed in [1u64, 7, 0xdead_beef] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exex.redb");
        let mut exex = BurnExEx::open(&path).unwrap();
        let mut rng = XorShift(seed);
        let genesis = B256::repeat_byte(0x42);
        let mut chain: Vec<TestBlock> = Vec::new();
        let mut finalized: Option<BlockNumHash> = None;
        let mut last = None;
        let mut salt = 0u64;
        let tip = |chain: &[TestBlock]| chain.last().map_or((0, genesis), |b| (b.number(), b.hash));
        let new_blocks = |rng: &mut XorShift, from: (u64, B256), n: u64, salt: u64| {
            let mut out: Vec<TestBlock> = Vec::new();
            let (mut number, mut parent) = from;
            for _ in 0..n {
                number += 1;
                let b = random_block(rng, number, parent, salt);
                parent = b.hash;
                out.push(b);
            }
            out
        };
        for _ in 0..150 {
            // Blocks at or below finality are never reverted.
            let revertible = chain.len() - finalized.map_or(0, |f| f.number as usize);
            let notification = match rng.next() % 10 {
                0..=3 => {
                    salt += 1;
                    let n = 1 + rng.next() % 3;
                    let new = new_blocks(&mut rng, tip(&chain), n, salt);
                    chain.extend(new.iter().cloned());
                    Some(committed(new))
                }
                4 if revertible > 0 => {
                    let k = 1 + (rng.next() as usize) % revertible.min(3);
                    let old = chain.split_off(chain.len() - k);
                    Some(reverted(old))
                }
                5 | 6 if revertible > 0 => {
                    let k = 1 + (rng.next() as usize) % revertible.min(3);
                    let old = chain.split_off(chain.len() - k);
                    salt += 1;
                    let n = 1 + rng.next() % 4;
                    let new = new_blocks(&mut rng, tip(&chain), n, salt);
                    chain.extend(new.iter().cloned());
                    Some(reorged(old, new))
                }
                7 => last.clone(), // the last notification again (a WAL replay)
                8 => {
                    drop(exex);
                    exex = BurnExEx::open(&path).unwrap();
                    None
                }
                _ if !chain.is_empty() => {
                    let at = (rng.next() as usize) % chain.len();
                    let f = chain[at].num_hash();
                    if finalized.is_none_or(|old| old.number <= f.number) {
                        finalized = Some(f);
                    }
                    exex.set_finalized(f).unwrap();
                    None
                }
                _ => None,
            };
            if let Some(n) = notification {
                let p = exex.process(&n).unwrap();
                if let (Some(f), Some(h)) = (finalized, p.outcome.head) {
                    let expect = if f.number >= h.number { h } else { f };
                    assert_eq!(p.finished_height, Some(expect));
                }
                last = Some(n);
            }

            // The store holds exactly the canonical chain's burns, and its head is the chain's tip.
            let ex = BurnExtractor::default();
            let expected: Vec<Burn> = chain.iter().flat_map(|b| ex.extract_block(b)).collect();
            let stored = exex.store().burns().unwrap();
            assert_eq!(keys(&stored), keys(&expected), "seed {seed}");
            if !chain.is_empty() {
                assert_eq!(exex.head().unwrap().map(|h| h.hash), Some(tip(&chain).1));
            }
        }
        // Folding the feed reproduces the store, with dense cursors and no double add or retract.
        let events = exex.store().events_after(0, usize::MAX).unwrap();
        let mut live = std::collections::BTreeSet::new();
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.cursor, i as u64 + 1);
            let key = (e.burn.block_hash, e.burn.log_index);
            match e.kind {
                FeedEventKind::Burn => assert!(live.insert(key), "burn announced twice"),
                FeedEventKind::Retract => assert!(live.remove(&key), "retract of an unknown burn"),
            }
        }
        let mut stored = keys(&exex.store().burns().unwrap());
        stored.sort();
        assert_eq!(live.into_iter().collect::<Vec<_>>(), stored, "seed {seed}");
    }
}

// ---------------------------------------------------------------------------------------------------
// Who the feed serves: bearer token, TLS, loopback-only plaintext
// ---------------------------------------------------------------------------------------------------

fn token(text: &str) -> BearerToken {
    BearerToken::new(text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_serves_the_right_token_only() {
    let dir = tempfile::tempdir().unwrap();
    let exex = BurnExEx::open(dir.path().join("exex.redb")).unwrap();
    exex.process(&committed(blocks(1, B256::ZERO, 2, 0))).unwrap();
    let feed = exex.feed_server().with_bearer_token(token("s3cret"));
    assert!(feed.requires_token());
    let server = Server::serve(feed, "127.0.0.1:0".parse().unwrap()).await;
    let url = format!("http://{}", server.addr);

    // No token, then a wrong one: refused, as an error retrying cannot cure.
    for client in [
        BurnFeedClient::new(&url, 0).unwrap(),
        BurnFeedClient::new(&url, 0).unwrap().with_bearer_token(&token("s3cret2")),
        BurnFeedClient::new(&url, 0).unwrap().with_bearer_token(&token("s3cre")),
    ] {
        let mut client = client.with_config(client_config());
        let error = tokio::time::timeout(Duration::from_secs(10), client.next()).await.unwrap().unwrap_err();
        assert!(matches!(error, ClientError::Unauthenticated(_)), "{error}");
        assert!(matches!(client.head().await, Err(ClientError::Unauthenticated(_))));
        assert_eq!(client.position(), 0, "nothing was delivered");
    }
    // Raw gRPC without the header: UNAUTHENTICATED on both calls.
    let mut raw = proto::burn_feed_client::BurnFeedClient::connect(url.clone()).await.unwrap();
    let status = raw.head(proto::HeadRequest {}).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let status = raw.subscribe(proto::SubscribeRequest { from_cursor: 0 }).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);

    // The right token is served.
    let mut client = BurnFeedClient::new(&url, 0)
        .unwrap()
        .with_bearer_token(&token(" s3cret\n"))
        .with_config(client_config());
    assert_eq!(next(&mut client).await.cursor, 1);
    assert_eq!(next(&mut client).await.cursor, 2);
    assert_eq!(client.head().await.unwrap().last_cursor, 2);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_over_tls_trusts_only_the_configured_ca() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert_pem = certified.cert.pem();
    let key_pem = certified.signing_key.serialize_pem();
    let dir = tempfile::tempdir().unwrap();
    let exex = BurnExEx::open(dir.path().join("exex.redb")).unwrap();
    exex.process(&committed(blocks(1, B256::ZERO, 2, 0))).unwrap();
    let feed = exex.feed_server().with_bearer_token(token("s3cret")).with_tls(&cert_pem, &key_pem);
    let server = Server::serve(feed, "127.0.0.1:0".parse().unwrap()).await;
    let port = server.addr.port();
    let tls = FeedTls { ca_pem: Some(cert_pem.clone().into_bytes()), domain: None };

    let mut client = BurnFeedClient::new(format!("https://localhost:{port}"), 0)
        .unwrap()
        .with_tls(&tls)
        .unwrap()
        .with_bearer_token(&token("s3cret"))
        .with_config(client_config());
    assert_eq!(next(&mut client).await.cursor, 1);
    // The certificate names `localhost`; another host name checks against it with `domain`.
    let mut by_ip = BurnFeedClient::new(format!("https://127.0.0.1:{port}"), 1)
        .unwrap()
        .with_tls(&FeedTls { domain: Some("localhost".into()), ..tls.clone() })
        .unwrap()
        .with_bearer_token(&token("s3cret"))
        .with_config(client_config());
    assert_eq!(next(&mut by_ip).await.cursor, 2);

    // Without the CA (web PKI roots) the self-signed feed is never trusted; plaintext to it never
    // gets an answer either: the client keeps retrying, nothing is delivered.
    let untrusted = BurnFeedClient::new(format!("https://localhost:{port}"), 0).unwrap();
    let plaintext = BurnFeedClient::new(format!("http://127.0.0.1:{port}"), 0).unwrap();
    for client in [untrusted, plaintext] {
        let mut client = client.with_bearer_token(&token("s3cret")).with_config(client_config());
        assert!(tokio::time::timeout(Duration::from_secs(2), client.next()).await.is_err());
        assert_eq!(client.position(), 0);
    }
    server.shutdown().await;
}

#[test]
fn plaintext_feeds_are_refused_off_loopback() {
    for url in ["http://10.0.0.5:50551", "http://feed.example.org:50551", "http://[2001:db8::1]:50551"] {
        let error = BurnFeedClient::new(url, 0).unwrap_err();
        assert!(
            matches!(error, ClientError::Insecure(EndpointError::PlaintextOffLoopback { .. })),
            "{url}: {error}"
        );
        assert!(error.to_string().contains("https://"), "{error}");
    }
    assert!(matches!(BurnFeedClient::new("ftp://127.0.0.1:1", 0), Err(ClientError::Insecure(_))));
    for url in
        ["http://127.0.0.1:50551", "http://localhost:50551", "http://[::1]:50551", "https://10.0.0.5:1"]
    {
        BurnFeedClient::new(url, 0).unwrap_or_else(|e| panic!("{url}: {e}"));
    }
    // TLS settings on a plaintext endpoint would be ignored: refused instead.
    let error = BurnFeedClient::new("http://127.0.0.1:50551", 0).unwrap().with_tls(&FeedTls::default());
    assert!(matches!(error, Err(ClientError::TlsWithoutHttps { .. })));
}

// ---------------------------------------------------------------------------------------------------
// Retention of the event log
// ---------------------------------------------------------------------------------------------------

fn exex_with_retention(path: &Path, max_events: u64) -> BurnExEx {
    let store = BurnStore::open(path).unwrap().with_retention(Retention { max_events });
    BurnExEx::new(Arc::new(store)).unwrap()
}

fn cursors(exex: &BurnExEx, after: u64) -> Vec<u64> {
    exex.store().events_after(after, usize::MAX).unwrap().iter().map(|e| e.cursor).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_final_events_only_and_refuses_readers_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exex.redb");
    let exex = exex_with_retention(&path, 3);
    let a = blocks(1, B256::repeat_byte(8), 6, 0); // one burn each: cursor n is block n's burn
    exex.process(&committed(a.clone())).unwrap();
    // Nothing is final: nothing is pruned, however long the log.
    assert_eq!(cursors(&exex, 0), (1..=6).collect::<Vec<_>>());
    assert_eq!(exex.store().retained_from().unwrap(), 1);

    // Block 2 final: only events of blocks 1..=2 may go, though 3 over the bound.
    exex.set_finalized(a[1].num_hash()).unwrap();
    assert_eq!(exex.store().retained_from().unwrap(), 3);
    assert_eq!(cursors(&exex, 2), (3..=6).collect::<Vec<_>>());
    // Block 5 final: down to the bound (3 events), oldest first.
    exex.set_finalized(a[4].num_hash()).unwrap();
    assert_eq!(exex.store().retained_from().unwrap(), 4);
    assert_eq!(cursors(&exex, 3), vec![4, 5, 6]);
    let pruned = exex.store().events_after(2, 10).unwrap_err();
    assert!(matches!(pruned, StoreError::Pruned { after: 2, retained_from: 4 }), "{pruned}");

    // A retraction of the unfinalized block 6 is appended; the final event 4 makes room for it.
    exex.process(&reverted(vec![a[5].clone()])).unwrap();
    assert_eq!(cursors(&exex, 4), vec![5, 6, 7]);
    let retract = exex.store().events_after(6, 1).unwrap();
    assert_eq!(retract[0].kind, FeedEventKind::Retract);

    // Over gRPC: a subscriber behind the retained history is told so, never given a gap.
    let server = Server::start(&exex, "127.0.0.1:0".parse().unwrap(), FeedConfig::default()).await;
    let url = format!("http://{}", server.addr);
    let mut behind = BurnFeedClient::new(&url, 3).unwrap().with_config(client_config());
    let error = tokio::time::timeout(Duration::from_secs(10), behind.next()).await.unwrap().unwrap_err();
    assert!(matches!(error, ClientError::Pruned { retained_from: 5, position: 3 }), "{error}");
    assert!(error.to_string().contains("resynchronise"), "{error}");
    let mut level = BurnFeedClient::new(&url, 4).unwrap().with_config(client_config());
    assert_eq!(next(&mut level).await.cursor, 5);
    server.shutdown().await;

    // Cursors continue across a reopen, after pruning.
    drop(level);
    drop(exex);
    let exex = exex_with_retention(&path, 3);
    assert_eq!(exex.store().last_cursor().unwrap(), 7);
    assert_eq!(exex.store().retained_from().unwrap(), 5);
    exex.process(&committed(blocks(6, a[4].hash, 1, 1))).unwrap();
    assert_eq!(exex.store().last_cursor().unwrap(), 8);
    assert_eq!(cursors(&exex, 5), vec![6, 7, 8]);
}

#[test]
fn a_tiny_retention_still_keeps_the_newest_event_and_dense_cursors() {
    let dir = tempfile::tempdir().unwrap();
    let exex = exex_with_retention(&dir.path().join("exex.redb"), 0);
    let a = blocks(1, B256::repeat_byte(9), 4, 0);
    exex.process(&committed(a.clone())).unwrap();
    exex.set_finalized(a[3].num_hash()).unwrap();
    assert_eq!(cursors(&exex, 3), vec![4]);
    exex.process(&committed(blocks(5, a[3].hash, 2, 0))).unwrap();
    // Events of unfinalized blocks 5 and 6 stay, beyond the bound.
    assert_eq!(cursors(&exex, 4), vec![5, 6]);
    assert_eq!(exex.store().last_cursor().unwrap(), 6);
}

// ---------------------------------------------------------------------------------------------------
// Catching up from the stored head after missed notifications
// ---------------------------------------------------------------------------------------------------

/// An execution client's canonical chain in memory (blocks from 1; genesis is not served).
#[derive(Debug, Default)]
struct MemChain(Mutex<Vec<TestBlock>>);

impl MemChain {
    fn set(&self, blocks: Vec<TestBlock>) {
        *self.0.lock().unwrap() = blocks;
    }
}

impl CanonicalChain for MemChain {
    type Block = TestBlock;
    type Error = std::convert::Infallible;

    async fn head_number(&self) -> Result<u64, Self::Error> {
        Ok(self.0.lock().unwrap().len() as u64)
    }

    async fn block(&self, number: u64) -> Result<Option<TestBlock>, Self::Error> {
        let blocks = self.0.lock().unwrap();
        Ok(number.checked_sub(1).and_then(|i| blocks.get(i as usize)).cloned())
    }
}

fn chain_burns(chain: &[TestBlock]) -> Vec<Burn> {
    let ex = BurnExtractor::default();
    chain.iter().flat_map(|b| ex.extract_block(b)).collect()
}

/// Folds the feed: every burn announced once and retracted at most once, ending with `expected`.
fn assert_feed_folds_to(exex: &BurnExEx, expected: &[Burn]) {
    let mut live = std::collections::BTreeSet::new();
    for (i, e) in exex.store().events_after(0, usize::MAX).unwrap().iter().enumerate() {
        assert_eq!(e.cursor, i as u64 + 1);
        let key = (e.burn.block_hash, e.burn.log_index);
        match e.kind {
            FeedEventKind::Burn => assert!(live.insert(key), "burn announced twice"),
            FeedEventKind::Retract => assert!(live.remove(&key), "retract of an unknown burn"),
        }
    }
    let mut expected = keys(expected);
    expected.sort();
    assert_eq!(live.into_iter().collect::<Vec<_>>(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catching_up_after_missed_notifications_loses_no_burn() {
    let dir = tempfile::tempdir().unwrap();
    let exex = BurnExEx::open(dir.path().join("exex.redb")).unwrap();
    let genesis = B256::repeat_byte(0x61);
    let a: Vec<TestBlock> = {
        let mut out: Vec<TestBlock> = Vec::new();
        for n in 1..=5 {
            let parent = out.last().map_or(genesis, |b| b.hash);
            out.push(block_with_burns(n, parent, 0));
        }
        out
    };
    let chain = MemChain::default();

    // A fresh store catches up from genesis, in batches.
    chain.set(a.clone());
    let caught = exex.catch_up(&chain, 2).await.unwrap();
    assert!(caught.complete);
    assert_eq!(caught.outcome.blocks_committed, 5);
    assert_eq!(exex.store().burns().unwrap(), chain_burns(&a));

    // Missed: a reorg from height 3 and new blocks on the new branch (B4..B9).
    let mut b = a[..3].to_vec();
    for n in 4..=9 {
        let parent = b.last().unwrap().hash;
        b.push(block_with_burns(n, parent, 7));
    }
    chain.set(b.clone());
    let caught = exex.catch_up(&chain, 4).await.unwrap();
    assert!(caught.complete);
    assert_eq!(caught.outcome.blocks_reverted, 2, "A4 and A5");
    assert_eq!(caught.outcome.blocks_committed, 6);
    assert_eq!(caught.outcome.burns_retracted, 4);
    assert_eq!(exex.store().burns().unwrap(), chain_burns(&b));
    assert_eq!(exex.head().unwrap(), Some(b[8].num_hash()));
    assert_feed_folds_to(&exex, &chain_burns(&b));

    // Again, and then the late notifications the receiver did get: replays, nothing changes.
    let cursor = exex.store().last_cursor().unwrap();
    let caught = exex.catch_up(&chain, 4).await.unwrap();
    assert_eq!((caught.outcome.blocks_committed, caught.outcome.blocks_reverted), (0, 0));
    exex.process(&committed(b[3..].to_vec())).unwrap();
    assert_eq!(exex.store().last_cursor().unwrap(), cursor);

    // The chain changes under the reader (block 11 does not extend block 10): it stops there, with
    // what it read committed, and says it is not complete.
    let mut c = b.clone();
    c.push(block_with_burns(10, b[8].hash, 9));
    c.push(block_with_burns(11, B256::repeat_byte(0xee), 9));
    chain.set(c.clone());
    let caught = exex.catch_up(&chain, 8).await.unwrap();
    assert!(!caught.complete);
    assert_eq!(exex.head().unwrap(), Some(c[9].num_hash()));
    assert_feed_folds_to(&exex, &chain_burns(&c[..10]));
}
