//! Invariants 1 and 2 on the import path: a block whose peg-in claims do not hold against the
//! importer's own Bitcoin node or minted set is refused by `ChainActor::import`, the path every block
//! from another authority takes.
//!
//! In one process, on loopback: the devnet Bitcoin node (bitcoind JSON-RPC), two embedded execution
//! engines behind their JWT Engine APIs, a producing chain actor with its peg-in watcher, and an
//! importing chain actor with its own database. Forged blocks are re-signed with the (public) devnet
//! authority key, so only the peg-in rules can refuse them.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use alloy_primitives::{Address, B256};
use alys_bitcoin::{BitcoinAuth, BitcoinClient, BitcoinClientConfig, BitcoinStatus, Follower};
use alys_bridge::pegin::{PeginError, PeginRules, PeginWatcher};
use alys_chain::{ChainActor, ChainConfig, ImportError};
use alys_chainspec::ChainSpec;
use alys_consensus::{Aura, ExecutionBlockError};
use alys_devnet_bitcoin::{BitcoinConfig, BitcoinHandle};
use alys_devnet_el::{Engine, EngineConfig};
use alys_engine_api::{EngineApiConfig, EngineApiHandle, EngineApiServer, JwtSecret};
use alys_engine_client::EngineClient;
use alys_governance::{Decisions, FederationHistory, ProposalBook, RuntimeParameters, RuntimeView};
use alys_primitives::{
    Approvals, AuthorityKey, BlockRef, BlsSignature, ChainHeads, PegInClaim, PegInOutput, SignedBlock,
};
use alys_storage::{PeginRead, Storage};
use bitcoin::hashes::Hash as _;
use bitcoincore_rpc::RpcApi;
use serde_json::{Value, json};

use crate::support::{root, tempdir, until};

const CONFIRMATIONS: u32 = 2;

struct Net {
    spec: Arc<ChainSpec>,
    secret: JwtSecret,
    key: Arc<AuthorityKey>,
    clock: Arc<AtomicU64>,
    runtime: RuntimeView,
    bitcoin: BitcoinClient,
    wallet: Arc<bitcoincore_rpc::Client>,
    federation: String,
    _engines: Vec<EngineApiHandle>,
}

impl Net {
    async fn chain(
        &mut self,
        storage: Arc<Storage>,
        author: bool,
    ) -> (ChainActor, tokio::sync::watch::Receiver<ChainHeads>) {
        let engine = Engine::spawn(EngineConfig::new(Arc::clone(&self.spec))).unwrap();
        let mut config = EngineApiConfig::new(self.secret);
        config.addr = "127.0.0.1:0".parse().unwrap();
        let api = EngineApiServer::new(engine, config).start().await.unwrap();
        let client = EngineClient::new(&api.http_url(), self.secret, Arc::clone(&self.spec)).unwrap();
        self._engines.push(api);
        let aura = Aura::new(vec![self.key.public().clone()], 1_000, 500).unwrap();
        let clock = Arc::clone(&self.clock);
        let config = ChainConfig {
            genesis_hash: self.spec.genesis_hash(),
            genesis_timestamp: self.spec.genesis().timestamp,
            fee_recipient: Address::ZERO,
            clock: Arc::new(move || clock.load(Ordering::Relaxed)),
            auxpow: alys_auxpow::MiningParams {
                chain_id: 0x2121,
                pow_limit_bits: 0x207f_ffff,
                target_spacing_secs: 60,
                target_half_life_secs: 1_200,
                split: alys_auxpow::RewardSplit { miner_percent: 80, federation: Address::ZERO },
            },
            runtime: self.runtime.clone(),
        };
        let (heads_tx, heads) = tokio::sync::watch::channel(ChainHeads {
            head: BlockRef::new(0, self.spec.genesis_hash()),
            head_execution_hash: self.spec.genesis_hash(),
            finalized: None,
        });
        let key = author.then(|| Arc::clone(&self.key));
        let chain = ChainActor::new(config, aura, key, client, storage, heads_tx)
            .unwrap()
            .with_pegins(PeginRules::new(self.runtime.clone(), Some(self.bitcoin.clone())));
        (chain, heads)
    }

    /// Re-signs a block whose header was changed, as its (only) authority would.
    fn resign(&self, mut block: SignedBlock) -> SignedBlock {
        let signature = self.key.sign(&block.header.hash());
        let aggregate = BlsSignature::aggregate(&[&signature]).unwrap();
        block.author_signature = signature.to_bytes().to_vec().into();
        block.approvals =
            Approvals { signers: Approvals::bitfield([0]), signature: aggregate.to_bytes().to_vec().into() };
        block
    }

    async fn wallet<T: Send + 'static>(
        &self,
        f: impl FnOnce(&bitcoincore_rpc::Client) -> T + Send + 'static,
    ) -> T {
        let wallet = Arc::clone(&self.wallet);
        tokio::task::spawn_blocking(move || f(&wallet)).await.unwrap()
    }

    async fn mine(&self, n: u64) {
        self.wallet(move |c| {
            let to = c.get_new_address(None, None).unwrap().assume_checked();
            c.generate_to_address(n, &to).unwrap();
        })
        .await;
    }

    async fn deposit(&self, sats: u64, to: Address) -> B256 {
        let federation = self.federation.clone();
        let txid: bitcoin::Txid = self
            .wallet(move |c| {
                let outputs = json!([{ federation: bitcoin::Amount::from_sat(sats).to_btc() },
                    { "data": alloy_primitives::hex::encode(to) }]);
                let raw: String = c.call("createrawtransaction", &[json!([]), outputs]).unwrap();
                let funded: Value = c.call("fundrawtransaction", &[json!(raw)]).unwrap();
                let signed: Value = c.call("signrawtransactionwithwallet", &[funded["hex"].clone()]).unwrap();
                let txid: String = c.call("sendrawtransaction", &[signed["hex"].clone()]).unwrap();
                txid.parse().unwrap()
            })
            .await;
        B256::from(txid.to_byte_array())
    }
}

async fn setup(dir: &std::path::Path) -> (Net, BitcoinHandle) {
    let handle = alys_devnet_bitcoin::start(
        BitcoinConfig::new(dir.join("bitcoin")).with_rpc_addr("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .unwrap();
    let cookie = handle.cookie_path().unwrap().to_owned();
    let url = handle.url();
    let wallet = {
        let (url, cookie) = (url.clone(), cookie.clone());
        tokio::task::spawn_blocking(move || {
            bitcoincore_rpc::Client::new(&url, bitcoincore_rpc::Auth::CookieFile(cookie)).unwrap()
        })
        .await
        .unwrap()
    };
    let governance = alys_devnet_governance::DevGovernance::devnet(3, 2).unwrap();
    let federation = governance.federation().unwrap();
    let mut history = FederationHistory::default();
    history.insert(federation.clone()).unwrap();
    let parameters =
        RuntimeParameters::with_max_blocks_without_pow(u64::MAX).with_pegin(CONFIRMATIONS, 10_000, 100);
    let (_, decisions) =
        tokio::sync::watch::channel(Arc::new(Decisions::new(ProposalBook::new(parameters), history)));
    let spec = Arc::new(ChainSpec::devnet().unwrap());
    let text = std::fs::read_to_string(root().join("etc/keys/devnet-authority.key")).unwrap();
    let net = Net {
        secret: JwtSecret::from_file(&root().join("etc/jwt/jwt.hex")).unwrap(),
        key: Arc::new(AuthorityKey::from_hex(text.trim()).unwrap()),
        clock: Arc::new(AtomicU64::new(spec.genesis().timestamp * 1_000)),
        spec,
        runtime: RuntimeView::new(decisions),
        bitcoin: BitcoinClient::new(BitcoinClientConfig::new(url, BitcoinAuth::Cookie(cookie))).unwrap(),
        wallet: Arc::new(wallet),
        federation: federation.address.to_string(),
        _engines: Vec::new(),
    };
    net.mine(101).await;
    (net, handle)
}

#[track_caller]
fn pegin_error(result: Result<B256, ImportError>) -> PeginError {
    match result {
        Err(ImportError::Pegin(error)) => error,
        other => panic!("expected a peg-in refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_whose_claims_do_not_hold_against_bitcoin_are_refused_on_import() {
    let dir = tempdir();
    let (mut net, _bitcoin) = setup(dir.path()).await;
    let producer_store = Arc::new(Storage::in_memory().unwrap());
    let (mut producer, heads) = net.chain(Arc::clone(&producer_store), true).await;
    let importer_store = Arc::new(Storage::in_memory().unwrap());
    let (mut importer, _) = net.chain(Arc::clone(&importer_store), false).await;
    let (status, _) = tokio::sync::watch::channel(BitcoinStatus::default());
    let watcher = PeginWatcher::new(
        Follower::new(net.bitcoin.clone(), Some(0)),
        Arc::clone(&producer_store),
        net.runtime.clone(),
        heads,
        status,
    )
    .with_poll_interval(Duration::from_millis(20));
    let _watcher = tokio::spawn(watcher.run());

    // Genuine blocks are produced at every tenth slot; forged ones use the slots between, so none is
    // taken for an equivocation.
    let mut slot = net.spec.genesis().timestamp + 10;
    let mut build = async |net: &Net, producer: &mut ChainActor| -> SignedBlock {
        net.clock.store((slot + 9) * 1_000, Ordering::Relaxed);
        producer.produce_slot(slot).await.unwrap().expect("our slot");
        slot += 10;
        let read = producer_store.read().unwrap();
        let head = alys_storage::ChainRead::head(&read).unwrap().unwrap();
        alys_storage::ChainRead::block(&read, &head.hash).unwrap().unwrap()
    };
    let mut produce =
        async |net: &Net, producer: &mut ChainActor, importer: &mut ChainActor| -> SignedBlock {
            let block = build(net, producer).await;
            importer.import(block.clone()).await.unwrap();
            block
        };
    let forge = |net: &Net, genuine: &SignedBlock, offset: u64, pegins: Vec<PegInClaim>| -> SignedBlock {
        let mut block = genuine.clone();
        block.header.slot += offset;
        block.header.pegins = pegins;
        net.resign(block)
    };
    let base = produce(&net, &mut producer, &mut importer).await;

    // A deposit one block deep (two required).
    let user = Address::repeat_byte(0x77);
    let txid = net.deposit(2_500_000, user).await;
    net.mine(1).await;
    until("the producer's watcher records the deposit", Duration::from_secs(30), async || {
        producer_store.read().unwrap().deposit(&txid).unwrap().is_some()
    })
    .await;
    let record = producer_store.read().unwrap().deposit(&txid).unwrap().unwrap();
    let claim = PegInClaim {
        txid,
        bitcoin_block: record.bitcoin_block,
        outputs: record
            .outputs
            .iter()
            .map(|o| PegInOutput {
                vout: o.vout,
                amount_sats: o.amount_sats,
                script_pubkey: o.script_pubkey.clone(),
            })
            .collect(),
        amount_sats: record.amount_sats(),
        evm_address: user,
    };
    // The next genuine block is the parent of every forged one below.
    let parent = produce(&net, &mut producer, &mut importer).await;
    assert!(parent.header.pegins.is_empty(), "one confirmation of two: nothing claimed yet");
    let mut too_shallow = forge(&net, &base, 0, vec![claim.clone()]);
    too_shallow.header.parent_hash = parent.header.hash();
    too_shallow.header.parent_seal = parent.seal();
    too_shallow.header.height = parent.header.height + 1;
    too_shallow.header.slot = parent.header.slot + 1;
    let too_shallow = net.resign(too_shallow);
    let error = pegin_error(importer.import(too_shallow).await);
    assert!(matches!(error, PeginError::TooShallow { confirmations: 1, required: 2, .. }), "{error}");

    // Deep enough now: the producer claims it, the importer checks it and agrees.
    net.mine(1).await;
    until("the producer's watcher reaches the new tip", Duration::from_secs(30), async || {
        producer_store.read().unwrap().bitcoin_tip().unwrap().is_some_and(|(h, _)| h > record.bitcoin_height)
    })
    .await;
    let minting = produce(&net, &mut producer, &mut importer).await;
    assert_eq!(minting.header.pegins, vec![claim.clone()], "claimed once, as recorded");

    // Forged children of the minting block, each refused for its own reason.
    let child = |k: u64, pegins: Vec<PegInClaim>| -> SignedBlock {
        let mut block = minting.clone();
        block.header.parent_hash = minting.header.hash();
        block.header.parent_seal = minting.seal();
        block.header.height = minting.header.height + 1;
        block.header.slot = minting.header.slot + k;
        block.header.pegins = pegins;
        net.resign(block)
    };
    let error = pegin_error(importer.import(child(1, vec![claim.clone()])).await);
    assert!(matches!(error, PeginError::AlreadyMinted { .. }), "{error}");

    let unknown_tx = PegInClaim { txid: B256::repeat_byte(0x99), ..claim.clone() };
    let error = pegin_error(importer.import(child(2, vec![unknown_tx])).await);
    assert!(matches!(error, PeginError::NotInBlock { .. }), "{error}");

    let unknown_block =
        PegInClaim { txid: B256::repeat_byte(0x97), bitcoin_block: B256::repeat_byte(0x98), ..claim.clone() };
    let error = pegin_error(importer.import(child(3, vec![unknown_block])).await);
    assert!(matches!(error, PeginError::NotInBestChain { .. }), "{error}");

    // A second deposit, deep enough, claimed wrongly in every way a forger could try.
    let other = Address::repeat_byte(0x78);
    let second = net.deposit(4_000_000, other).await;
    net.mine(CONFIRMATIONS.into()).await;
    until("the producer's watcher records the second deposit", Duration::from_secs(30), async || {
        producer_store.read().unwrap().deposit(&second).unwrap().is_some()
    })
    .await;
    let record = producer_store.read().unwrap().deposit(&second).unwrap().unwrap();
    let good = PegInClaim {
        txid: second,
        bitcoin_block: record.bitcoin_block,
        outputs: record
            .outputs
            .iter()
            .map(|o| PegInOutput {
                vout: o.vout,
                amount_sats: o.amount_sats,
                script_pubkey: o.script_pubkey.clone(),
            })
            .collect(),
        amount_sats: record.amount_sats(),
        evm_address: other,
    };
    let more = PegInClaim {
        outputs: vec![PegInOutput {
            vout: good.outputs[0].vout,
            amount_sats: good.amount_sats + 1,
            script_pubkey: good.outputs[0].script_pubkey.clone(),
        }],
        amount_sats: good.amount_sats + 1,
        ..good.clone()
    };
    let error = pegin_error(importer.import(child(4, vec![more])).await);
    assert!(matches!(error, PeginError::Mismatch { what: "federation outputs", .. }), "{error}");
    let elsewhere = PegInClaim { evm_address: Address::repeat_byte(0x13), ..good.clone() };
    let error = pegin_error(importer.import(child(5, vec![elsewhere])).await);
    assert!(matches!(error, PeginError::Mismatch { what: "EVM address", .. }), "{error}");
    let twice = vec![good.clone(), good.clone()];
    let error = pegin_error(importer.import(child(6, twice)).await);
    assert!(matches!(error, PeginError::Duplicate { .. }), "{error}");
    let unsummed = PegInClaim { amount_sats: good.amount_sats - 1, ..good.clone() };
    let error = pegin_error(importer.import(child(7, vec![unsummed])).await);
    assert!(matches!(error, PeginError::Malformed { .. }), "{error}");

    // The producer's block claiming it, with its claims taken out of the header but its withdrawals
    // still minting them: invariant 2.
    until("the producer's watcher reaches the new tip", Duration::from_secs(30), async || {
        producer_store.read().unwrap().bitcoin_tip().unwrap().is_some_and(|(h, _)| h > record.bitcoin_height)
    })
    .await;
    let genuine = build(&net, &mut producer).await;
    assert_eq!(genuine.header.pegins, vec![good.clone()]);
    let result = importer.import(forge(&net, &genuine, 1, Vec::new())).await;
    assert!(
        matches!(result, Err(ImportError::Execution(ExecutionBlockError::WithdrawalsMismatch))),
        "{result:?}"
    );

    // The genuine block is imported; both nodes hold the same minted set.
    importer.import(genuine.clone()).await.unwrap();
    let utxos = |store: &Storage| -> HashSet<(B256, u32)> {
        store.read().unwrap().federation_utxos().unwrap().into_iter().map(|u| (u.txid, u.vout)).collect()
    };
    assert_eq!(utxos(&importer_store), utxos(&producer_store));
    assert_eq!(utxos(&importer_store).len(), 2, "both deposits, each output once");
}
