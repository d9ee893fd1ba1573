//! A federation of several authorities over the libp2p network, as processes on loopback: agreement,
//! liveness with 2 of 3 authorities and its loss with 1, catch-up after a crash and from genesis, an
//! equivocating authority, a hostile peer, and a partition through a TCP proxy.
//!
//! Each test prints how long its phases took (`--nocapture`).

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use alloy_primitives::B256;
use alys_network::{PeerId, Request, Response, Topic};
use alys_primitives::SignedBlock;
use alys_rpc::{ChainApiClient, types::Peer};

use crate::{
    federation_support::{
        Federation, Rogue, TcpProxy, alive, check_endpoints, drop_and_check_gone, listen_socket,
    },
    support::until,
};

/// Aura slot length of the federations below: two authorities' approvals fit easily.
const SLOT_MS: u64 = 500;

/// `n` slots of [`SLOT_MS`].
const fn slots(n: u64) -> Duration {
    Duration::from_millis(SLOT_MS * n)
}

/// Prints `what` with the time since `start` (the test's clock).
fn step(start: Instant, what: &str) {
    eprintln!("[{:>6.1}s] {what}", start.elapsed().as_secs_f64());
}

/// Node `i`'s connected peers as `alys_peers` reports them.
async fn peers(federation: &Federation, i: usize) -> Vec<Peer> {
    federation.client(i).peers().await.map(|p| p.peers).unwrap_or_default()
}

/// Node `i`'s own peer id.
async fn peer_id(federation: &Federation, i: usize) -> String {
    federation.client(i).peers().await.unwrap().peer_id
}

/// Asserts node `i`'s head stays `head` for `window` (polled every 50 ms).
async fn assert_stalled(federation: &Federation, i: usize, head: B256, window: Duration) {
    let deadline = Instant::now() + window;
    while Instant::now() < deadline {
        let now = federation.status(i).await.head;
        assert_eq!(now.hash, head, "node {i} kept producing: head now {now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_authorities_agree_and_keep_going_with_two() {
    let start = Instant::now();
    let mut federation = Federation::builder(3, 1).slot_ms(SLOT_MS).start();
    step(start, "3 authorities and a full node are up");
    check_endpoints(&federation).await;
    let all = [0, 1, 2, 3];

    // Every node reaches the same head, and has the same block (and execution block) at every height.
    let head = federation.wait_same_head(&all, 6, Duration::from_secs(60)).await;
    federation.assert_agree(&all, 1..=head.height).await;
    assert_eq!(federation.block_at(0, head.height).await.1, head.execution_hash);
    step(start, &format!("all 4 nodes agree on blocks 1..={}", head.height));

    // A merged-mining proof (the miner on node 0) finalizes a block, the same one everywhere.
    let mut finalized = None;
    until("a finalized block on node 0", Duration::from_secs(60), async || {
        finalized = federation.status(0).await.finalized;
        finalized.is_some()
    })
    .await;
    let finalized = finalized.unwrap();
    until("every node has node 0's finalized block", Duration::from_secs(60), async || {
        for i in all {
            if federation.status(i).await.finalized.is_none_or(|f| f.height < finalized.height) {
                return false;
            }
        }
        true
    })
    .await;
    for i in all {
        assert_eq!(federation.hash_at(i, finalized.height).await, Some(finalized.hash), "node {i}");
        let own = federation.status(i).await.finalized.unwrap();
        assert_eq!(federation.hash_at(i, own.height).await, Some(own.hash), "node {i}: its finalized block");
        assert_eq!(federation.hash_at(0, own.height).await, Some(own.hash), "node {i}'s finalized vs node 0");
    }
    step(start, &format!("block {} finalized everywhere", finalized.height));

    // Each node is connected to the 3 others and knows their heads.
    let mut ids = Vec::new();
    for i in all {
        ids.push(peer_id(&federation, i).await);
    }
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 4, "4 distinct peer ids: {ids:?}");
    until("every node lists the 3 others with their heads", Duration::from_secs(60), async || {
        for i in all {
            let peers = peers(&federation, i).await;
            let with_head: BTreeSet<&str> =
                peers.iter().filter(|p| p.head.is_some()).map(|p| p.peer_id.as_str()).collect();
            if !ids.iter().enumerate().all(|(j, id)| j == i || with_head.contains(id.as_str())) {
                return false;
            }
        }
        true
    })
    .await;
    // The dashboard's data on authority 1: three peers, three authorities each authoring and approving.
    // Under load some slots pass empty, so an authority may need a few more of its turns to author.
    let dashboard_of_1 = async || {
        crate::support::raw_call(&federation.node(1).rpc, "alys_dashboard", serde_json::json!([]))
            .await
            .unwrap()
    };
    until(
        "every authority authored and approved on authority 1's dashboard",
        Duration::from_secs(60),
        async || {
            let dashboard = dashboard_of_1().await;
            dashboard["production"]["authorities"].as_array().is_some_and(|records| {
                records.iter().all(|r| r["blocks"].as_u64() > Some(0) && r["approvals"].as_u64() > Some(0))
            })
        },
    )
    .await;
    let dashboard = dashboard_of_1().await;
    assert_eq!(dashboard["network"]["peers"].as_array().map(Vec::len), Some(3), "{}", dashboard["network"]);
    assert_eq!(dashboard["production"]["threshold"], 2);
    let records = dashboard["production"]["authorities"].as_array().unwrap();
    assert_eq!(records.len(), 3);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record["isSelf"], i == 1, "{record}");
        assert!(record["blocks"].as_u64() > Some(0) && record["approvals"].as_u64() > Some(0), "{record}");
    }
    // `alys status`, the operator's one-screen summary, says the same over the typed RPC client.
    let output = std::process::Command::new(crate::support::bin("alys"))
        .args(["status", "--rpc", &federation.node(1).rpc])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "alys status: {}", String::from_utf8_lossy(&output.stderr));
    for needle in ["authority 1 of 3", ", 3 peers, id ", "execution   online", "governance  connected"] {
        assert!(text.contains(needle), "{needle:?} missing from alys status:\n{text}");
    }
    for id in ids.iter().enumerate().filter(|(j, _)| *j != 1).map(|(_, id)| id) {
        assert!(text.contains(id.as_str()), "peer {id} missing from alys status:\n{text}");
    }
    step(start, "every node has the 3 others as peers, with heads");

    // Authority 2 dies: 0 and 1 are 2 of 3, enough approvals; the chain goes on, the same everywhere.
    federation.kill9_node(2);
    let before = federation.status(0).await.head.height;
    let head = federation.wait_same_head(&[0, 1, 3], before + 4, Duration::from_secs(60)).await;
    federation.assert_agree(&[0, 1, 3], before..=head.height).await;
    step(start, &format!("without authority 2: {before} -> {} on nodes 0, 1, 3", head.height));

    // Authority 1 dies too: one authority cannot gather approvals, so production stalls, without a fork.
    federation.kill9_node(1);
    tokio::time::sleep(slots(2)).await;
    let stalled = federation.status(0).await.head;
    assert_stalled(&federation, 0, stalled.hash, slots(5)).await;
    let seen = federation.wait_same_head(&[0, 3], stalled.height, Duration::from_secs(30)).await;
    assert_eq!(seen.hash, stalled.hash);
    federation.assert_agree(&[0, 3], 1..=stalled.height).await;
    step(start, &format!("with authority 0 alone: stalled at {} for 5 slots, no fork", stalled.height));

    // Authority 1 is back: production resumes.
    federation.restart_node(1);
    step(start, "authority 1 restarted");
    let head = federation.wait_same_head(&[0, 1, 3], stalled.height + 3, Duration::from_secs(60)).await;
    step(start, &format!("production resumed: head {}", head.height));

    // Authority 2 is back: it catches up and agrees block by block.
    federation.restart_node(2);
    step(start, "authority 2 restarted");
    let target = federation.status(0).await.head.height;
    let mut states = BTreeSet::new();
    until("authority 2 catches up", Duration::from_secs(60), async || {
        let Ok(status) = federation.client(2).sync_status().await else { return false };
        if let Some(sync) = &status.sync {
            states.insert(sync.state.clone());
        }
        status.head.height >= target
    })
    .await;
    let head = federation.wait_same_head(&all, target, Duration::from_secs(60)).await;
    federation.assert_agree(&all, 1..=head.height).await;
    step(start, &format!("authority 2 caught up ({states:?} seen) and all agree on 1..={}", head.height));

    for node in &federation.nodes {
        assert!(alive(node.node_pid) && alive(node.el_pid), "node {}'s processes run", node.index);
    }
    drop_and_check_gone(federation).await;
    step(start, "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_node_catches_up_and_a_fresh_full_node_syncs_from_genesis() {
    /// The chain makes at most one block a second whatever the slot (execution timestamps are in
    /// seconds and strictly increase), so 1-second slots: every slot a block, no wasted proposals.
    const SLOT_1S: u64 = 1_000;
    // How far the chain moves while the full node is down: 40 blocks in CI (a block a second: 200
    // take 200 s of the budget), `ALYS_FEDERATION_BLOCKS=200` for the figure.
    let blocks: u64 = std::env::var("ALYS_FEDERATION_BLOCKS").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    let start = Instant::now();
    let mut federation = Federation::builder(3, 1).slot_ms(SLOT_1S).start();
    step(start, "3 authorities and a full node are up (1 s slots)");
    federation.wait_same_head(&[0, 1, 2, 3], 2, Duration::from_secs(60)).await;

    // The full node goes down early; the chain moves on by BLOCKS blocks.
    federation.kill9_node(3);
    let from = federation.status(0).await.head.height;
    let moving = Instant::now();
    let mut report = Instant::now();
    until(
        &format!("{blocks} blocks without the full node"),
        Duration::from_secs(blocks * 3 / 2 + 20),
        async || {
            let height = federation.status(0).await.head.height;
            if report.elapsed() > Duration::from_secs(10) {
                report = Instant::now();
                step(start, &format!("head {height}"));
            }
            height >= from + blocks
        },
    )
    .await;
    step(start, &format!("{blocks} blocks in {:.1}s", moving.elapsed().as_secs_f64()));

    // Restarted, it catches up to the tip and agrees at every height.
    federation.restart_node(3);
    let target = federation.status(0).await.head.height;
    let catching = Instant::now();
    until("the full node catches up", Duration::from_secs(blocks / 2 + 40), async || {
        federation.head(3).await.is_some_and(|h| h.height >= target)
    })
    .await;
    step(start, &format!("full node caught up to {target} in {:.1}s", catching.elapsed().as_secs_f64()));
    federation.assert_agree(&[0, 3], 1..=target).await;

    // A fresh full node syncs from genesis; its engine has node 0's engine's block at every height.
    let fresh = federation.start_full_node();
    step(start, &format!("fresh full node {fresh} started"));
    let target = federation.status(0).await.head.height;
    let syncing = Instant::now();
    until("the fresh node syncs to the tip", Duration::from_secs(blocks / 2 + 60), async || {
        federation.head(fresh).await.is_some_and(|h| h.height >= target)
    })
    .await;
    step(start, &format!("fresh node synced {target} blocks in {:.1}s", syncing.elapsed().as_secs_f64()));
    let (genesis0, genesis) = tokio::join!(federation.el_hash_at(0, 0), federation.el_hash_at(fresh, 0));
    assert_eq!(genesis, genesis0, "engine genesis");
    // At every height: the same consensus block, carrying the block its own engine has.
    federation.assert_agree(&[0, fresh], 1..=target).await;
    step(start, "fresh node's engine equals node 0's at every height");
    drop_and_check_gone(federation).await;
    step(start, "done");
}

/// One federation for a misbehaving authority and a hostile peer (one start for both).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_equivocating_authority_and_a_hostile_peer_are_caught() {
    let start = Instant::now();
    let mut federation = Federation::builder(3, 1).slot_ms(SLOT_MS).start();
    step(start, "3 authorities and a full node are up");
    federation.wait_same_head(&[0, 1, 2, 3], 2, Duration::from_secs(60)).await;
    hostile_gossip_is_dropped_and_its_sender_penalized(&federation, start).await;
    an_equivocating_authority_is_caught_by_every_node(&mut federation, start).await;
    drop_and_check_gone(federation).await;
    step(start, "done");
}

/// The test joins as a rogue peer of node 0 and publishes blocks: a replay of a real one (ignored,
/// not penalized), garbage, a forged one and an oversized payload (each rejected and penalized):
/// its score on node 0 goes negative, it is banned, and nothing it sent is imported.
async fn hostile_gossip_is_dropped_and_its_sender_penalized(federation: &Federation, start: Instant) {
    const MIB: usize = 1024 * 1024;
    let all = [0, 1, 2, 3];
    let head_before = federation.status(0).await.head.height;
    let node0: PeerId = peer_id(federation, 0).await.parse().unwrap();
    let rogue = Rogue::join(federation, &federation.nodes[0].p2p[0], 11 * MIB).await;
    let me = rogue.network.local_peer_id().to_string();
    until("the rogue and node 0 are connected and subscribed", Duration::from_secs(60), async || {
        rogue.network.topic_peers(Topic::Blocks).await.contains(&node0)
            && peers(federation, 0).await.iter().any(|p| p.peer_id == me)
    })
    .await;
    step(start, &format!("rogue {me} joined node 0"));
    let rogue_score =
        async || peers(federation, 0).await.into_iter().find(|p| p.peer_id == me).map(|p| p.score);
    let penalties = async || {
        federation.metric(0, "alys_network_penalties_total{reason=\"rejected_gossip\"}").await
            + federation.metric(0, "alys_network_penalties_total{reason=\"oversized_gossip\"}").await
    };

    // A real block, fetched over the sync protocol.
    let Response::Blocks(blocks) =
        rogue.network.request(node0, Request::BlocksByRange { start: 1, count: 1 }).await.unwrap()
    else {
        panic!("no blocks from node 0")
    };
    let real = SignedBlock::decode(&blocks[0]).unwrap();
    assert_eq!(Some(real.header.hash()), federation.hash_at(0, 1).await);

    // 1. A replay of a block every node has: ignored, not penalized.
    rogue.network.publish(Topic::Blocks, blocks[0].to_vec()).unwrap();
    tokio::time::sleep(Duration::from_millis(4500)).await; // two status polls refresh alys_peers
    let score = rogue_score().await.expect("the rogue is still connected after a replay");
    assert!(score >= 0.0, "a replay is not penalized: score {score}");
    assert_eq!(penalties().await, 0.0, "a replay is not penalized");
    step(start, &format!("replay ignored: score {score}"));

    // 2. Garbage: rejected; the rogue's score goes negative.
    rogue.network.publish(Topic::Blocks, b"\xde\xad\xbe\xef not a block".to_vec()).unwrap();
    let mut score = 0.0;
    until("the rogue's score on node 0 goes negative", Duration::from_secs(30), async || {
        score = rogue_score().await.unwrap_or(0.0);
        score < 0.0
    })
    .await;
    assert_eq!(penalties().await, 1.0);
    step(start, &format!("garbage rejected: score {score}"));

    // 3. A forged block: block 1 with another execution hash (a new block hash) and a flipped byte in
    // the author's signature. (Only the signature flipped, the header hash would be block 1's own,
    // and a known block is ignored before its signature is checked.)
    let mut forged = real.clone();
    forged.header.execution_block_hash.0[0] ^= 1;
    let mut signature = forged.author_signature.to_vec();
    signature[20] ^= 1;
    forged.author_signature = signature.into();
    let forged_hash = forged.header.hash();
    rogue.network.publish(Topic::Blocks, forged.encoded()).unwrap();
    until("node 0 rejects the forged block", Duration::from_secs(30), async || penalties().await >= 2.0)
        .await;
    step(start, &format!("forged block {forged_hash} rejected: score {:?}", rogue_score().await));

    // 4. Over the 10 MiB gossip limit (the rogue's own limit is raised so it sends it).
    // Slow in a debug build: both sides hash and sign or verify the 10 MiB, and encrypt or decrypt it.
    rogue.network.publish(Topic::Blocks, vec![0x42; 10 * MIB + 1024]).unwrap();
    // Generous: on a loaded 2-core CI machine this alone has taken 41 s.
    until("node 0 drops the oversized message", Duration::from_secs(180), async || {
        federation.metric(0, "alys_network_dropped_total{reason=\"oversize\"}").await >= 1.0
    })
    .await;
    step(start, "oversized message dropped");

    // The rogue is banned: disconnected, and node 0 no longer lists it.
    until("node 0 bans the rogue", Duration::from_secs(60), async || {
        federation.metric(0, "alys_network_peers_banned_total").await >= 1.0
            && !peers(federation, 0).await.iter().any(|p| p.peer_id == me)
            && !rogue.network.peers().await.iter().any(|p| p.peer_id == node0)
    })
    .await;
    step(start, "rogue banned by node 0");

    // Nothing it sent was imported, and the chain went on, the same everywhere.
    for i in all {
        assert_eq!(federation.client(i).block_by_hash(forged_hash).await.unwrap(), None, "node {i}");
    }
    let head = federation.wait_same_head(&all, head_before + 3, Duration::from_secs(60)).await;
    federation.assert_agree(&all, 1..=head.height).await;
    step(start, &format!("chain went on to {} and agrees everywhere", head.height));
}

/// Authority 1 restarts with `FAILPOINTS=chain::equivocate=return`: every slot it authors, it signs and
/// gossips a second block. Every other node records the equivocation (status, metric), refuses the
/// second block, and the chain stays one and the same everywhere.
async fn an_equivocating_authority_is_caught_by_every_node(federation: &mut Federation, start: Instant) {
    let all = [0, 1, 2, 3];
    let others = [0, 2, 3];
    for i in all {
        assert_eq!(federation.status(i).await.equivocations, 0, "node {i}");
    }
    federation.restart_node_with_env(1, &[("FAILPOINTS", "chain::equivocate=return")]);
    let restarted_at = federation.status(0).await.head.height;
    step(start, &format!("authority 1 restarted equivocating at height {restarted_at}"));
    until("every other node sees the equivocation", Duration::from_secs(60), async || {
        for i in others {
            if federation.status(i).await.equivocations < 1 {
                return false;
            }
        }
        true
    })
    .await;
    step(start, "equivocation counted by nodes 0, 2, 3");

    // A couple more of its slots: the chain goes on with one block per height, the same everywhere.
    let head = federation
        .wait_same_head(&all, federation.status(0).await.head.height + 6, Duration::from_secs(60))
        .await;
    federation.assert_agree(&all, 1..=head.height).await;
    let mut authors = Vec::new();
    for height in restarted_at + 1..=head.height {
        authors.push(federation.client(0).block_by_height(height).await.unwrap().unwrap().author);
    }
    step(start, &format!("chain agrees on 1..={}; authors since the restart {authors:?}", head.height));

    for i in others {
        let status = federation.status(i).await;
        assert!(status.equivocations >= 1, "node {i}: {status:?}");
        let counted = federation.metric(i, "alys_chain_equivocations_total").await;
        assert!(counted >= 1.0, "node {i}: alys_chain_equivocations_total {counted}");
    }

    // The second blocks named in node 0's evidence were refused: no node has them.
    let log = federation.node_log(0);
    let seconds: BTreeSet<B256> = log
        .lines()
        .filter(|line| line.contains("equivocation"))
        .filter_map(|line| line.split_once("second=")?.1.get(..66)?.parse().ok())
        .collect();
    assert!(!seconds.is_empty(), "node 0 logged the equivocation's blocks");
    for second in &seconds {
        for i in all {
            assert_eq!(
                federation.client(i).block_by_hash(*second).await.unwrap(),
                None,
                "node {i}: {second}"
            );
        }
    }
    step(start, &format!("{} second block(s) refused everywhere", seconds.len()));
}

/// Authority 2 reaches the others only through TCP proxies the test runs; cutting them partitions it:
/// 0 and 1 go on (2 of 3), 2 stalls; healed, 2 catches up, and its finalized block never changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_authority_stalls_and_catches_up_after_the_heal() {
    let start = Instant::now();
    let mut federation = Federation::builder(3, 0).slot_ms(SLOT_MS).start();
    step(start, "3 authorities are up");
    federation.wait_same_head(&[0, 1, 2], 2, Duration::from_secs(60)).await;

    // Rewire: 0 and 1 only know each other; 2 knows only the proxies to them. Nobody exchanges peers.
    let proxies = [
        TcpProxy::start(listen_socket(&federation.nodes[0].p2p_listen).parse().unwrap()).await,
        TcpProxy::start(listen_socket(&federation.nodes[1].p2p_listen).parse().unwrap()).await,
    ];
    federation.kill9_node(2);
    let (listen0, listen1) = (federation.nodes[0].p2p_listen.clone(), federation.nodes[1].p2p_listen.clone());
    federation.set_network(0, &[listen1], false);
    federation.set_network(1, &[listen0], false);
    federation.set_network(2, &[proxies[0].multiaddr(), proxies[1].multiaddr()], false);
    federation.restart_node(0);
    federation.restart_node(1);
    federation.restart_node(2);
    step(start, "rewired and restarted");
    let ids = [peer_id(&federation, 0).await, peer_id(&federation, 1).await, peer_id(&federation, 2).await];
    until("node 2 is connected to 0 and 1 through the proxies", Duration::from_secs(60), async || {
        let peers2 = peers(&federation, 2).await;
        let via_proxy = |i: usize| {
            peers2.iter().any(|p| {
                p.peer_id == ids[i]
                    && p.address
                        .as_deref()
                        .is_some_and(|a| a.contains(&format!("/tcp/{}", proxies[i].addr.port())))
            })
        };
        via_proxy(0) && via_proxy(1) && peers2.len() == 2
    })
    .await;
    for i in [0, 1] {
        let link = peers(&federation, i).await.into_iter().find(|p| p.peer_id == ids[2]);
        assert_eq!(
            link.map(|p| p.direction),
            Some("inbound".to_owned()),
            "node {i} did not dial node 2 itself"
        );
    }
    let head = federation.wait_same_head(&[0, 1, 2], 3, Duration::from_secs(60)).await;
    let mut finalized = None;
    until("node 2 has a finalized block", Duration::from_secs(60), async || {
        finalized = federation.status(2).await.finalized;
        finalized.is_some()
    })
    .await;
    let finalized = finalized.unwrap();
    step(start, &format!("node 2 at {} via proxies, finalized {}", head.height, finalized.height));

    // Cut: node 2 loses both peers and stalls; 0 and 1 go on.
    for proxy in &proxies {
        proxy.cut();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // `alys_peers` is refreshed by the sync's status poll, every 2 s.
        let left = peers(&federation, 2).await;
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 2 still has peers 10 s after both proxies were cut, so a link goes around them: {left:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(slots(1)).await;
    let stalled = federation.status(2).await.head;
    let from = federation.status(0).await.head.height;
    let head =
        federation.wait_same_head(&[0, 1], from.max(stalled.height) + 4, Duration::from_secs(60)).await;
    assert_eq!(federation.status(2).await.head.hash, stalled.hash, "node 2 produced alone");
    assert!(
        !peers(&federation, 0).await.iter().any(|p| p.peer_id == ids[2]),
        "node 0 reached node 2 around the cut"
    );
    step(start, &format!("cut: 0 and 1 at {}, node 2 stalled at {}", head.height, stalled.height));

    // Heal: node 2 reconnects (bootnode redial), catches up and agrees block by block.
    for proxy in &proxies {
        proxy.heal();
    }
    let target = federation.status(0).await.head.height;
    let head = federation.wait_same_head(&[0, 1, 2], target, Duration::from_secs(60)).await;
    step(start, &format!("healed: node 2 caught up to {}", head.height));
    federation.assert_agree(&[0, 1, 2], 1..=head.height).await;
    assert_eq!(
        federation.hash_at(2, finalized.height).await,
        Some(finalized.hash),
        "node 2's finalized block"
    );
    let now = federation.status(2).await.finalized.unwrap();
    assert!(now.height >= finalized.height, "finality went back: {finalized:?} -> {now:?}");
    drop(proxies);
    drop_and_check_gone(federation).await;
    step(start, "done");
}
