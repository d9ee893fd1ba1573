//! `alys-miner` as a library and as a process, against a scripted stand-in for a node's mining RPC: it
//! follows changed work, submits each piece of work once, logs normal running below `warn`, and keeps
//! going without a node.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use alloy_primitives::{Address, B256, Bytes};
use alys_auxpow::pow;
use alys_miner::{Miner, Round};
use alys_rpc::{
    ErrorCode, MiningApiServer,
    jsonrpsee::{
        core::{RpcResult, async_trait},
        server::{Server, ServerHandle},
    },
    rpc_error,
    types::AuxBlock,
};

const CHAIN: u32 = 0x2121;
/// About two hashes per proof.
const EASY: u32 = 0x207f_ffff;
/// Bitcoin's genesis target: out of a CPU's reach within a test.
const HARD: u32 = 0x1d00_ffff;

fn alys_miner() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_alys-miner"));
    command.env("NO_COLOR", "1").env_remove("RUST_LOG");
    command
}

fn work(height: u64, bits: u32) -> AuxBlock {
    AuxBlock {
        hash: B256::with_last_byte(height as u8),
        chain_id: CHAIN,
        previous_block_hash: B256::ZERO,
        coinbase_value: 0,
        bits,
        height,
        target: B256::from(pow::target_le_bytes(bits)),
    }
}

/// What the stand-in node does and saw.
#[derive(Debug, Default)]
struct Script {
    /// The work handed out; `None`: everything is finalized.
    work: Option<AuxBlock>,
    /// Work to hand out instead once this many more `createauxblock` calls came (a new block).
    next: Option<(u64, AuxBlock)>,
    /// After an accepted proof, hand out the next height's work this long after (the block that carries
    /// the proof, then new work).
    advance_after_accept: Option<Duration>,
    accepted_at: Option<Instant>,
    polls: u64,
    /// Every `submitauxblock`: the work's hash and whether the proof was valid for it.
    submissions: Vec<(B256, bool)>,
}

#[derive(Debug, Clone, Default)]
struct FakeNode(Arc<Mutex<Script>>);

#[async_trait]
impl MiningApiServer for FakeNode {
    async fn create_aux_block(&self, _address: Address) -> RpcResult<AuxBlock> {
        let mut script = self.0.lock().unwrap();
        script.polls += 1;
        if let Some((after, next)) = script.next.clone() {
            if after == 0 {
                script.work = Some(next);
                script.next = None;
            } else {
                script.next = Some((after - 1, next));
            }
        }
        if let (Some(delay), Some(at)) = (script.advance_after_accept, script.accepted_at)
            && at.elapsed() >= delay
        {
            let height = script.work.as_ref().map_or(1, |w| w.height + 1);
            script.work = Some(work(height, EASY));
            script.accepted_at = None;
        }
        script.work.clone().ok_or_else(|| rpc_error(ErrorCode::Unavailable, "no unfinalized blocks to mine"))
    }

    async fn submit_aux_block(&self, hash: B256, auxpow: Bytes) -> RpcResult<bool> {
        let mut script = self.0.lock().unwrap();
        let valid = script
            .work
            .as_ref()
            .is_some_and(|w| w.hash == hash && pow::check_serialized(&auxpow, hash, CHAIN, w.bits).is_ok());
        script.submissions.push((hash, valid));
        if valid {
            script.accepted_at = Some(Instant::now());
        }
        Ok(valid)
    }
}

async fn serve(node: &FakeNode) -> (ServerHandle, String) {
    let server = Server::builder().build("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", server.local_addr().unwrap());
    (server.start(node.clone().into_rpc()), url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_miner_drops_changed_work_and_submits_each_piece_of_work_once() {
    let node = FakeNode::default();
    let (_server, url) = serve(&node).await;
    let mut miner = Miner::new(alys_miner::client(&url).unwrap(), Address::repeat_byte(1))
        .with_poll_interval(Duration::from_millis(20));

    // Everything finalized: nothing to do, and no error.
    assert_eq!(miner.round().await.unwrap(), Round::Idle);

    // Work out of reach; after three more polls the node has a new block and new, easy work. The miner
    // grinds until then (no try budget), then gives the old work up.
    {
        let mut script = node.0.lock().unwrap();
        script.work = Some(work(5, HARD));
        script.next = Some((3, work(6, EASY)));
    }
    let started = Instant::now();
    let Round::Superseded { height: 5, hashes } = miner.round().await.unwrap() else {
        panic!("not superseded")
    };
    assert!(hashes > 0);
    assert!(
        started.elapsed() >= Duration::from_millis(40),
        "it ground across polls: {:?}",
        started.elapsed()
    );
    assert!(node.0.lock().unwrap().submissions.is_empty(), "nothing submitted for out-of-reach work");

    // The new work is mined and its proof accepted.
    let Round::Submitted { height: 6, accepted: true, .. } = miner.round().await.unwrap() else {
        panic!("no proof for the new work")
    };
    // The node still hands out that work (the block carrying the proof has not come): no second proof.
    for _ in 0..3 {
        assert_eq!(miner.round().await.unwrap(), Round::Waiting);
    }
    assert_eq!(node.0.lock().unwrap().submissions, vec![(work(6, EASY).hash, true)]);

    // The next block's work gets its own proof.
    node.0.lock().unwrap().work = Some(work(7, EASY));
    assert!(matches!(miner.round().await.unwrap(), Round::Submitted { height: 7, accepted: true, .. }));
    assert_eq!(node.0.lock().unwrap().submissions.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_running_logs_accepted_proofs_and_no_warnings() {
    let node = FakeNode::default();
    {
        let mut script = node.0.lock().unwrap();
        script.work = Some(work(1, EASY));
        script.advance_after_accept = Some(Duration::from_millis(200));
    }
    let (_server, url) = serve(&node).await;
    let mut child = alys_miner()
        .args(["--rpc", &url, "--poll-ms", "50"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader =
        std::thread::spawn(move || BufReader::new(stderr).lines().map(Result::unwrap).collect::<Vec<_>>());
    tokio::time::sleep(Duration::from_secs(3)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let lines = reader.join().unwrap();
    let accepted = lines.iter().filter(|l| l.contains("INFO") && l.contains("proof accepted")).count();
    assert!(accepted >= 5, "an accepted proof per piece of work: {lines:#?}");
    assert!(lines.iter().all(|l| !l.contains("WARN") && !l.contains("ERROR")), "{lines:#?}");
    // Between blocks the miner only waited: every submission was for new work, and valid.
    let submissions = node.0.lock().unwrap().submissions.clone();
    let mut hashes: Vec<B256> = submissions.iter().map(|(hash, _)| *hash).collect();
    hashes.dedup();
    assert_eq!(hashes.len(), submissions.len(), "no work submitted twice: {submissions:?}");
    assert!(submissions.iter().all(|(_, valid)| *valid));
}

#[test]
fn help_says_what_the_miner_is_and_how_to_use_it_and_a_bad_payout_address_is_refused() {
    let output = alys_miner().arg("--help").output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let help = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "merged-mining CPU miner",
        "createauxblock",
        "submitauxblock",
        "--rpc",
        "http://127.0.0.1:3000",
        "--address",
        "--poll-ms",
        "Examples:",
        "alys-devnet -- --no-miner",
    ] {
        assert!(help.contains(expected), "{expected:?} missing from:\n{help}");
    }
    let short = String::from_utf8(alys_miner().arg("-h").output().unwrap().stdout).unwrap();
    assert!(short.contains("merged-mining CPU miner") && short.contains("--poll-ms"), "{short}");

    let output = alys_miner().args(["--address", "0x1234"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let error = String::from_utf8(output.stderr).unwrap();
    assert!(error.contains("invalid value '0x1234' for '--address"), "{error}");
}

#[test]
fn without_a_node_each_round_fails_and_the_miner_keeps_going() {
    // Port 1 on loopback: nothing listens, every connection is refused at once.
    let mut child = alys_miner()
        .args(["--rpc", "http://127.0.0.1:1", "--interval-ms", "50"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            if lines_tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let mut failed_rounds = 0;
    while failed_rounds < 3 {
        let line = lines_rx.recv_timeout(Duration::from_secs(30)).expect("a log line within 30 s");
        if line.contains("mining round failed") {
            failed_rounds += 1;
        }
    }
    assert!(child.try_wait().unwrap().is_none(), "the miner is still running after failed rounds");
    child.kill().unwrap();
    child.wait().unwrap();
}
