//! Sidecar benchmarks against the embedded engine over the real Engine API (HTTP + JWT):
//!
//! * consensus overhead per block: sidecar time excluding Engine API calls, p50/p99 over 1,000 blocks;
//! * actor message round trip, p50/p99;
//! * import throughput of a stored chain into a fresh engine (the wiped-engine recovery path).
//!
//! Run: `cargo bench -p alys-devnet --bench sidecar` (add `-- 200` for a quicker run of 200 blocks).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "benchmark code")]

mod common;

use common::report;

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use alys_actor::{self as actor, Actor, ActorError, RestartPolicy};
use alys_chain::{ChainActor, ChainConfig};
use alys_chainspec::ChainSpec;
use alys_consensus::Aura;
use alys_devnet_el::{Engine, EngineConfig};
use alys_engine_api::{EngineApiConfig, EngineApiHandle, EngineApiServer, JwtSecret};
use alys_engine_client::EngineClient;
use alys_primitives::{AuthorityKey, BlockRef, ChainHeads};
use alys_storage::Storage;

struct Echo;

impl Actor for Echo {
    type Message = tokio::sync::oneshot::Sender<()>;
    const NAME: &'static str = "echo";

    async fn handle(&mut self, reply: Self::Message) -> Result<(), ActorError> {
        let _ = reply.send(());
        Ok(())
    }
}

async fn engine_api(spec: &Arc<ChainSpec>, secret: JwtSecret) -> EngineApiHandle {
    let engine = Engine::spawn(EngineConfig::new(Arc::clone(spec))).unwrap();
    let mut config = EngineApiConfig::new(secret);
    config.addr = "127.0.0.1:0".parse().unwrap();
    EngineApiServer::new(engine, config).start().await.unwrap()
}

fn chain(
    spec: &Arc<ChainSpec>,
    url: &str,
    secret: JwtSecret,
    store: Arc<Storage>,
    key: &Arc<AuthorityKey>,
    clock: Arc<AtomicU64>,
) -> ChainActor {
    let aura = Aura::new(vec![key.public().clone()], 1_000, 500).unwrap();
    let engine = EngineClient::new(url, secret, Arc::clone(spec)).unwrap();
    let config = ChainConfig {
        genesis_hash: spec.genesis_hash(),
        genesis_timestamp: spec.genesis().timestamp,
        fee_recipient: Default::default(),
        clock: Arc::new(move || clock.load(Ordering::Relaxed)),
        // No proofs arrive in the benchmark: never stop production for lack of them.
        auxpow: alys_auxpow::MiningParams {
            chain_id: 0x2121,
            pow_limit_bits: 0x207f_ffff,
            target_spacing_secs: 60,
            target_half_life_secs: 1_200,
            split: alys_auxpow::RewardSplit { miner_percent: 80, federation: Default::default() },
        },
        runtime: alys_governance::RuntimeView::fixed(
            alys_governance::RuntimeParameters::with_max_blocks_without_pow(u64::MAX),
        ),
    };
    let genesis = BlockRef::new(0, spec.genesis_hash());
    let (heads, _) = tokio::sync::watch::channel(ChainHeads {
        head: genesis,
        head_execution_hash: spec.genesis_hash(),
        finalized: None,
    });
    ChainActor::new(config, aura, Some(Arc::clone(key)), engine, store, heads).unwrap()
}

/// createauxblock over the unfinalized chain, proof validation, and submitauxblock.
fn mining(producer: &mut ChainActor, unfinalized: u64) {
    use alys_auxpow::pow;
    let miner = alloy_primitives::Address::repeat_byte(0x11);
    let started = Instant::now();
    let template = producer.create_aux_block(miner).unwrap();
    println!(
        "createauxblock with {unfinalized} unfinalized blocks: {:?} (template height {})",
        started.elapsed(),
        template.height
    );
    let started = Instant::now();
    let _cached = producer.create_aux_block(miner).unwrap();
    println!("createauxblock again (cached template): {:?}", started.elapsed());

    let proof = pow::mine(template.hash, template.chain_id, template.bits, 10_000_000).unwrap();
    let mut samples = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        let started = Instant::now();
        pow::check_serialized(&proof, template.hash, template.chain_id, template.bits).unwrap();
        samples.push(started.elapsed());
    }
    report("auxpow validation per proof (decode + all rules)", samples);
    let started = Instant::now();
    assert!(producer.submit_aux_block(template.hash, proof.into()).unwrap());
    println!("submitauxblock (validate + durable queue): {:?}", started.elapsed());
}

fn main() {
    let blocks: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async move {
        // Actor round trip.
        let (handle, _task) = actor::spawn(|| Ok(Echo), 1024, RestartPolicy::default()).unwrap();
        let mut samples = Vec::with_capacity(100_000);
        for _ in 0..100_000 {
            let started = Instant::now();
            handle.ask(|reply| reply).await.unwrap();
            samples.push(started.elapsed());
        }
        report("actor round trip", samples);

        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let spec = Arc::new(ChainSpec::devnet().unwrap());
        let secret = JwtSecret::from_file(&root.join("etc/jwt/jwt.hex")).unwrap();
        let text = std::fs::read_to_string(root.join("etc/keys/devnet-authority.key")).unwrap();
        let key = Arc::new(AuthorityKey::from_hex(text.trim()).unwrap());
        let dir = std::env::temp_dir().join(format!("alys-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // In memory: the sidecar's own work. On disk: as a node runs, each head one durable (fsync'd)
        // redb transaction.
        for (label, store) in [
            ("in-memory store", Storage::in_memory().unwrap()),
            ("on-disk store", Storage::open(dir.join("alys.redb")).unwrap()),
        ] {
            let store = Arc::new(store);
            let clock = Arc::new(AtomicU64::new(0));
            let api = engine_api(&spec, secret).await;
            let mut producer =
                chain(&spec, &api.http_url(), secret, Arc::clone(&store), &key, Arc::clone(&clock));
            let first_slot = spec.genesis().timestamp + 1; // 1-second slots: slot number = unix seconds
            let (mut consensus, mut engine) = (Vec::new(), Vec::new());
            for slot in first_slot..first_slot + blocks {
                clock.store(slot * 1_000, Ordering::Relaxed);
                let timing = producer.produce_slot(slot).await.unwrap().expect("our slot");
                consensus.push(timing.consensus);
                engine.push(timing.engine);
            }
            report(&format!("[{label}] consensus overhead per block (excl. Engine API)"), consensus);
            if label == "on-disk store" {
                mining(&mut producer, blocks);
            }
            report(&format!("[{label}] Engine API time per block"), engine);

            // Import of the stored chain into a fresh engine.
            let fresh = engine_api(&spec, secret).await;
            let mut importer = chain(&spec, &fresh.http_url(), secret, Arc::clone(&store), &key, clock);
            let started = Instant::now();
            importer.sync_engine().await.unwrap();
            let elapsed = started.elapsed();
            println!(
                "[{label}] import of {blocks} stored blocks into a fresh engine: {:?} ({:.0} blocks/s)",
                elapsed,
                blocks as f64 / elapsed.as_secs_f64()
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
}
