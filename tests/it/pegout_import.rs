//! Invariants 2 and 3 on the import path: a block whose peg-out proposal is not what the rules build
//! from the importer's own ledger and federation UTXO set is refused by `ChainActor::import`, the path
//! every block from another authority takes; the genuine one is taken, and both nodes then agree on the
//! federation's UTXO set and on where each burn was settled.
//!
//! In one process, on loopback: the devnet Bitcoin node (bitcoind JSON-RPC), two embedded execution
//! engines behind their JWT Engine APIs, a producing chain actor with its peg-in watcher, and an
//! importing chain actor with its own database, both with the peg-out rules. Deposits give the
//! federation its UTXOs; the same burns are released in both ledgers. Forged blocks are re-signed with
//! the (public) devnet authority key, so only the bridge rules (or the withdrawal check) can refuse
//! them.
//!
//! Then a fee bump: with `pegout_bump_after_blocks` low, the producer's payer holding the payment as
//! broadcast, the producer proposes its replacement at twice the fee rate; forged bumps (other
//! outputs, another rate, too early, of a transaction the importer saw confirmed, proposed again) are
//! refused, the genuine one is taken, and both nodes agree the original's change left the UTXO set and
//! the replacement's entered it.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_rpc_types_engine::{ForkchoiceState, PayloadAttributes};
use alys_bitcoin::{BitcoinAuth, BitcoinClient, BitcoinClientConfig, BitcoinStatus, Follower};
use alys_bridge::{
    pegin::{PeginRules, PeginWatcher},
    pegout::rules::{PegoutError, PegoutRules, burn_ref},
};
use alys_burns::Burn;
use alys_chain::{ChainActor, ChainConfig, ImportError};
use alys_chainspec::{ChainSpec, Fork};
use alys_consensus::{
    Aura, ExecutionBlockError, decode_execution_block, encode_execution_block, payload_to_block,
    refund_withdrawals,
};
use alys_contracts::{GWEI_PER_SAT, WEI_PER_SAT};
use alys_devnet_bitcoin::{BitcoinConfig, BitcoinHandle};
use alys_devnet_el::{Engine, EngineConfig};
use alys_engine_api::{EngineApiConfig, EngineApiHandle, EngineApiServer, JwtSecret};
use alys_engine_client::EngineClient;
use alys_governance::{
    Decisions, Federation, FederationHistory, ProposalBook, RuntimeParameters, RuntimeView,
};
use alys_primitives::{
    Approvals, AuthorityKey, BlockRef, BlsSignature, BurnRef, ChainHeads, PegoutBlock, SignedBlock,
};
use alys_storage::{
    ChainRead, FederationOutput, FederationRead, PayoutRecord, PayoutStatus, PeginRead, Settlement,
    SpentOutput, Storage,
};
use bitcoin::hashes::Hash as _;
use bitcoin::{OutPoint, Transaction, TxOut, consensus::deserialize, consensus::serialize};
use bitcoincore_rpc::RpcApi;
use serde_json::{Value, json};

use crate::support::{root, tempdir, until};

const CONFIRMATIONS: u32 = 2;
/// Genuine blocks are produced every `GAP` slots; forged ones use the slots between, so none is taken
/// for an equivocation.
const GAP: u64 = 20;
/// The governed defaults this test relies on (`RuntimeParameters::with_max_blocks_without_pow`).
const FEE_FLOOR: u64 = 10;
const FEE_CAP: u64 = 1_000;
const MIN_SATS: u64 = 1_000_000;
/// `pegout_bump_after_blocks`, set low so a stuck payment is bumped within the test.
const BUMP_AFTER: u64 = 2;

struct Net {
    spec: Arc<ChainSpec>,
    secret: JwtSecret,
    key: Arc<AuthorityKey>,
    clock: Arc<AtomicU64>,
    runtime: RuntimeView,
    bitcoin: BitcoinClient,
    wallet: Arc<bitcoincore_rpc::Client>,
    federation: Federation,
    _engines: Vec<EngineApiHandle>,
}

impl Net {
    /// A chain actor over `storage` with the peg-in and peg-out rules, and the URL of its engine.
    async fn chain(
        &mut self,
        storage: Arc<Storage>,
        author: bool,
    ) -> (ChainActor, tokio::sync::watch::Receiver<ChainHeads>, String) {
        let engine = Engine::spawn(EngineConfig::new(Arc::clone(&self.spec))).unwrap();
        let mut config = EngineApiConfig::new(self.secret);
        config.addr = "127.0.0.1:0".parse().unwrap();
        let api = EngineApiServer::new(engine, config).start().await.unwrap();
        let url = api.http_url();
        let client = EngineClient::new(&url, self.secret, Arc::clone(&self.spec)).unwrap();
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
            .with_pegins(PeginRules::new(self.runtime.clone(), Some(self.bitcoin.clone())))
            .with_pegouts(PegoutRules::new(self.runtime.clone(), bitcoin::Network::Regtest));
        (chain, heads, url)
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
        let federation = self.federation.address.to_string();
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

    /// A fresh P2WPKH (`bcrt1q…`) address of the devnet wallet.
    async fn address(&self) -> bitcoin::Address {
        let address = self
            .wallet(|c| {
                c.get_new_address(None, Some(bitcoincore_rpc::json::AddressType::Bech32))
                    .unwrap()
                    .assume_checked()
            })
            .await;
        assert!(address.to_string().starts_with("bcrt1q"), "{address}");
        address
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
    let mut parameters =
        RuntimeParameters::with_max_blocks_without_pow(u64::MAX).with_pegin(CONFIRMATIONS, 10_000, 100);
    parameters.pegout_bump_after_blocks = BUMP_AFTER;
    assert_eq!(
        (
            parameters.pegout_fee_rate_sat_vb,
            parameters.pegout_fee_rate_cap_sat_vb,
            parameters.pegout_min_sats
        ),
        (FEE_FLOOR, FEE_CAP, MIN_SATS),
        "the governed peg-out defaults this test is written for"
    );
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
        federation,
        _engines: Vec::new(),
    };
    net.mine(101).await;
    (net, handle)
}

/// `chain.import(block)` with its (large) future on the heap, so the scenario's frame stays small.
async fn import(chain: &mut ChainActor, block: SignedBlock) -> Result<B256, ImportError> {
    Box::pin(chain.import(block)).await
}

#[track_caller]
fn pegout_error(result: Result<B256, ImportError>) -> PegoutError {
    match result {
        Err(ImportError::Pegout(error)) => error,
        other => panic!("expected a peg-out refusal, got {other:?}"),
    }
}

/// A burn on the bridge contract in the canonical execution block at `height` of `store`'s chain.
fn burn(store: &Storage, height: u64, log_index: u64, sender: u8, address: &str, sats: u64) -> Burn {
    let block = store.read().unwrap().block_by_height(height).unwrap().expect("a canonical block");
    Burn {
        block_number: height,
        block_hash: block.header.execution_block_hash,
        log_index,
        tx_hash: B256::repeat_byte(sender),
        tx_index: log_index,
        sender: Address::repeat_byte(sender),
        bitcoin_address: Bytes::copy_from_slice(address.as_bytes()),
        value: U256::from(sats) * U256::from(WEI_PER_SAT),
    }
}

/// Records `burns` as the burn source would, finalizes `finalized` and releases what is final and
/// canonical: what the node's burn pipeline does once the chain is final.
fn release(store: &Storage, burns: &[Burn], finalized: BlockRef) -> Vec<Burn> {
    let tx = store.write().unwrap();
    tx.add_pending_burns(burns).unwrap();
    tx.set_finalized(finalized).unwrap();
    let released = tx.release_burns().unwrap();
    tx.commit().unwrap();
    released
}

/// The largest virtual size of `tx` once signed: every input a `threshold`-of-n P2WSH multisig spend
/// with `threshold` 73-byte signatures (the tx builder's documented rule, recomputed here).
fn signed_vsize(tx: &Transaction, federation: &Federation) -> u64 {
    let signatures = u64::from(federation.threshold);
    let script = federation.witness_script.len() as u64;
    assert!(signatures + 2 < 0xfd && script < 0xfd, "one-byte witness lengths");
    let per_input = 1 + 1 + signatures * (1 + 73) + 1 + script;
    let witness = 2 + per_input * tx.input.len() as u64;
    (tx.base_size() as u64 * 4 + witness).div_ceil(4)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_whose_pegout_does_not_follow_the_rules_are_refused_on_import() {
    // On the heap: the scenario's future is too large for a test thread's stack in debug builds.
    Box::pin(refused_on_import_then_bumped()).await;
}

/// The peg-out import scenario, then a fee bump of its payment (module docs).
async fn refused_on_import_then_bumped() {
    let dir = tempdir();
    let (mut net, _bitcoin) = setup(dir.path()).await;
    let producer_store = Arc::new(Storage::in_memory().unwrap());
    let (mut producer, heads, _) = net.chain(Arc::clone(&producer_store), true).await;
    let importer_store = Arc::new(Storage::in_memory().unwrap());
    let (mut importer, _, importer_engine) = net.chain(Arc::clone(&importer_store), false).await;
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

    let mut slot = net.spec.genesis().timestamp + GAP;
    let mut build = async |net: &Net, producer: &mut ChainActor| -> SignedBlock {
        net.clock.store((slot + GAP - 1) * 1_000, Ordering::Relaxed);
        producer.produce_slot(slot).await.unwrap().expect("our slot");
        slot += GAP;
        let read = producer_store.read().unwrap();
        let head = read.head().unwrap().unwrap();
        read.block(&head.hash).unwrap().unwrap()
    };
    let base = build(&net, &mut producer).await;
    import(&mut importer, base.clone()).await.unwrap();

    // Two deposits, deep enough, minted in one block on both nodes: the federation's UTXOs.
    let (big, small) = (30_000_000u64, 20_000_000u64);
    let first = net.deposit(big, Address::repeat_byte(0x71)).await;
    let second = net.deposit(small, Address::repeat_byte(0x72)).await;
    net.mine(CONFIRMATIONS.into()).await;
    until("the producer's watcher sees both deposits deep enough", Duration::from_secs(30), async || {
        let read = producer_store.read().unwrap();
        let (Some(a), Some(b)) = (read.deposit(&first).unwrap(), read.deposit(&second).unwrap()) else {
            return false;
        };
        let needed = a.bitcoin_height.max(b.bitcoin_height) + u64::from(CONFIRMATIONS) - 1;
        read.bitcoin_tip().unwrap().is_some_and(|(h, _)| h >= needed)
    })
    .await;
    let minting = build(&net, &mut producer).await;
    assert_eq!(minting.header.pegins.len(), 2, "both deposits claimed");
    assert!(minting.header.pegout.is_none(), "no burn released yet");
    import(&mut importer, minting.clone()).await.unwrap();
    let head = BlockRef::new(minting.header.height, minting.header.hash());
    assert_eq!(
        importer_store.read().unwrap().federation_utxos_at(head).unwrap(),
        producer_store.read().unwrap().federation_utxos_at(head).unwrap()
    );
    let deposit_output = |txid: B256| -> OutPoint {
        let read = producer_store.read().unwrap();
        let record = read.deposit(&txid).unwrap().unwrap();
        assert_eq!(record.outputs.len(), 1);
        OutPoint { txid: bitcoin::Txid::from_byte_array(txid.0), vout: record.outputs[0].vout }
    };
    let (big_outpoint, small_outpoint) = (deposit_output(first), deposit_output(second));

    // The same burns released in both ledgers, in blocks both chains share: one payable, one to text
    // that is no address, one below the governed minimum.
    let payee = net.address().await;
    let small_payee = net.address().await;
    let paid_sats = 25_000_000u64;
    let payable = burn(&producer_store, 1, 0, 0xa1, &payee.to_string(), paid_sats);
    let invalid = burn(&producer_store, 1, 1, 0xa2, "not-a-bitcoin-address", 2_000_000);
    let below = burn(&producer_store, 2, 0, 0xa3, &small_payee.to_string(), MIN_SATS / 2);
    let burns = vec![payable.clone(), invalid.clone(), below.clone()];
    assert_eq!(release(&producer_store, &burns, head), burns);
    assert_eq!(release(&importer_store, &burns, head), burns);
    let (paid_ref, invalid_ref, below_ref) = (burn_ref(&payable), burn_ref(&invalid), burn_ref(&below));

    // The producer proposes: the payable burn paid by a transaction spending the larger deposit, with
    // the change back to the federation; the other two refunded as withdrawals.
    let genuine = build(&net, &mut producer).await;
    assert_eq!(genuine.header.parent_hash, minting.header.hash());
    let proposal = genuine.header.pegout.clone().expect("a peg-out proposal");
    assert_eq!(proposal.paid, vec![paid_ref]);
    assert_eq!(proposal.refunded, vec![invalid_ref, below_ref], "in chain order");
    assert_eq!(proposal.fee_rate_sat_vb, FEE_FLOOR, "the author builds at the governed rate");
    let tx: Transaction = deserialize(&proposal.tx).unwrap();
    let txid = tx.compute_txid();
    assert_eq!(tx.input.iter().map(|i| i.previous_output).collect::<Vec<_>>(), vec![big_outpoint]);
    let fee = FEE_FLOOR * signed_vsize(&tx, &net.federation);
    let federation_script = net.federation.address.script_pubkey();
    assert_eq!(
        tx.output,
        vec![
            TxOut { value: bitcoin::Amount::from_sat(paid_sats - fee), script_pubkey: payee.script_pubkey() },
            TxOut {
                value: bitcoin::Amount::from_sat(big - paid_sats),
                script_pubkey: federation_script.clone()
            },
        ],
        "the burn minus its (whole) fee share, then the change to the federation"
    );
    let execution = decode_execution_block(&genuine).unwrap();
    let refunds =
        vec![(invalid.sender, 2_000_000 * GWEI_PER_SAT), (below.sender, MIN_SATS / 2 * GWEI_PER_SAT)];
    assert_eq!(
        execution.body.withdrawals.as_ref().map(|w| w.as_slice()),
        Some(refund_withdrawals(&refunds, 0).as_slice())
    );

    // Forged siblings of the genuine block (same parent, slots between), each refused for its reason.
    let sibling = |k: u64, change: &dyn Fn(&mut PegoutBlock)| -> SignedBlock {
        assert!(k < GAP);
        let mut block = genuine.clone();
        block.header.slot += k;
        change(block.header.pegout.as_mut().unwrap());
        net.resign(block)
    };
    let with_tx = |change: &dyn Fn(&mut Transaction)| -> Bytes {
        let mut tx = tx.clone();
        change(&mut tx);
        Bytes::from(serialize(&tx))
    };

    // (a) Spending an output that is not the federation's: a coin of the wallet.
    let coin = net
        .wallet(|c| c.list_unspent(None, None, None, None, None).unwrap())
        .await
        .into_iter()
        .next()
        .expect("the wallet holds coins");
    let foreign = OutPoint { txid: coin.txid, vout: coin.vout };
    let tx_foreign = with_tx(&|tx| tx.input[0].previous_output = foreign);
    let error = pegout_error(import(&mut importer, sibling(1, &|p| p.tx = tx_foreign.clone())).await);
    assert!(
        matches!(error, PegoutError::Differs { what: "transaction", expected: Some(e) } if e == txid),
        "{error}"
    );
    // ... or spending both deposits where the rules spend one (the smaller one is not needed).
    let tx_both = with_tx(&|tx| {
        let mut extra = tx.input[0].clone();
        extra.previous_output = small_outpoint;
        tx.input.push(extra);
    });
    let error = pegout_error(import(&mut importer, sibling(2, &|p| p.tx = tx_both.clone())).await);
    assert!(matches!(error, PegoutError::Differs { what: "transaction", .. }), "{error}");

    // (b) The payable burn listed twice.
    let error = pegout_error(import(&mut importer, sibling(3, &|p| p.paid = vec![paid_ref, paid_ref])).await);
    assert!(matches!(error, PegoutError::Duplicate(b) if b == paid_ref), "{error}");

    // (c) A fee rate above the cap; one within the bounds that is not the rate the tx was built at.
    let error = pegout_error(import(&mut importer, sibling(4, &|p| p.fee_rate_sat_vb = FEE_CAP + 1)).await);
    assert!(
        matches!(error, PegoutError::FeeRate { rate, floor: FEE_FLOOR, cap: FEE_CAP } if rate == FEE_CAP + 1),
        "{error}"
    );
    let error = pegout_error(import(&mut importer, sibling(5, &|p| p.fee_rate_sat_vb = FEE_FLOOR + 1)).await);
    assert!(matches!(error, PegoutError::Differs { what: "transaction", .. }), "{error}");
    // Below the floor too.
    let error = pegout_error(import(&mut importer, sibling(6, &|p| p.fee_rate_sat_vb = FEE_FLOOR - 1)).await);
    assert!(matches!(error, PegoutError::FeeRate { .. }), "{error}");

    // (d) A burn the importer's ledger does not have (released by the producer's only, for now).
    let late_sats = 3_000_000u64;
    let late = burn(&producer_store, 2, 1, 0xa4, &payee.to_string(), late_sats);
    assert_eq!(release(&producer_store, std::slice::from_ref(&late), head), vec![late.clone()]);
    let late_ref = burn_ref(&late);
    let error = pegout_error(
        import(&mut importer, sibling(7, &|p| p.refunded = vec![invalid_ref, below_ref, late_ref])).await,
    );
    assert!(matches!(error, PegoutError::UnknownBurn(b) if b == late_ref), "{error}");

    // (e) The change sent elsewhere.
    let elsewhere = net.address().await.script_pubkey();
    let tx_elsewhere = with_tx(&|tx| tx.output[1].script_pubkey = elsewhere.clone());
    let error = pegout_error(import(&mut importer, sibling(8, &|p| p.tx = tx_elsewhere.clone())).await);
    assert!(
        matches!(error, PegoutError::Differs { what: "transaction", expected: Some(e) } if e == txid),
        "{error}"
    );

    // A payable burn listed as refunded while the transaction still pays it.
    let error = pegout_error(
        importer
            .import(sibling(9, &|p| {
                p.paid = Vec::new();
                p.refunded = vec![paid_ref, invalid_ref, below_ref];
            }))
            .await,
    );
    assert!(matches!(error, PegoutError::Differs { what: "paid burns", .. }), "{error}");

    // (f) Invariant 2 for refunds: a header that no longer lists a refund its withdrawals still mint,
    // and a header listing both whose (re-built, otherwise valid) execution block mints one.
    let result = import(&mut importer, sibling(10, &|p| p.refunded = vec![below_ref])).await;
    assert!(
        matches!(result, Err(ImportError::Execution(ExecutionBlockError::WithdrawalsMismatch))),
        "{result:?}"
    );
    let omitting = {
        let engine = EngineClient::new(&importer_engine, net.secret, Arc::clone(&net.spec)).unwrap();
        let timestamp = execution.header.timestamp;
        let parent_hash = genuine.header.parent_hash;
        let cancun = net.spec.is_active_at(Fork::Cancun, timestamp);
        let attributes = PayloadAttributes {
            timestamp,
            prev_randao: parent_hash,
            suggested_fee_recipient: Address::ZERO,
            withdrawals: Some(refund_withdrawals(&refunds[..1], 0)),
            parent_beacon_block_root: cancun.then_some(parent_hash),
            ..Default::default()
        };
        let state = ForkchoiceState {
            head_block_hash: minting.header.execution_block_hash,
            safe_block_hash: net.spec.genesis_hash(),
            finalized_block_hash: net.spec.genesis_hash(),
        };
        let updated = engine.forkchoice_updated(state, Some(attributes), timestamp).await.unwrap();
        let built = engine.get_payload(updated.payload_id.unwrap(), timestamp).await.unwrap();
        let rebuilt = payload_to_block(
            built.payload.clone(),
            cancun.then_some(parent_hash),
            built.execution_requests.as_ref(),
        )
        .unwrap();
        let mut block = genuine.clone();
        block.header.slot += 11;
        block.header.execution_block_hash = built.payload.block_hash();
        block.execution_block = encode_execution_block(&rebuilt);
        block.execution_requests = built.execution_requests.map(|r| r.take()).unwrap_or_default();
        net.resign(block)
    };
    assert_eq!(omitting.header.pegout, genuine.header.pegout);
    let result = import(&mut importer, omitting).await;
    assert!(
        matches!(result, Err(ImportError::Execution(ExecutionBlockError::WithdrawalsMismatch))),
        "{result:?}"
    );

    // The genuine block is taken.
    assert_eq!(import(&mut importer, genuine.clone()).await.unwrap(), genuine.header.hash());
    let settled_in = BlockRef::new(genuine.header.height, genuine.header.hash());

    // (b) A child proposing the paid burn again: settled already on its chain.
    let child = |k: u64, pegout: PegoutBlock| -> SignedBlock {
        let mut block = genuine.clone();
        block.header.parent_hash = genuine.header.hash();
        block.header.parent_seal = genuine.seal();
        block.header.height = genuine.header.height + 1;
        block.header.slot = genuine.header.slot + k;
        block.header.pegout = Some(pegout);
        net.resign(block)
    };
    let error = pegout_error(import(&mut importer, child(12, proposal.clone())).await);
    assert!(
        matches!(error, PegoutError::AlreadySettled { burn, block } if burn == paid_ref && block == settled_in),
        "{error}"
    );
    // A refunded burn refunded again.
    let again =
        PegoutBlock { paid: Vec::new(), refunded: vec![below_ref], tx: Bytes::new(), ..proposal.clone() };
    let error = pegout_error(import(&mut importer, child(13, again)).await);
    assert!(matches!(error, PegoutError::AlreadySettled { burn, .. } if burn == below_ref), "{error}");

    // Both nodes hold the same federation UTXO set (the spent deposit gone, the change in) and the same
    // settlements.
    let utxos = |store: &Storage| -> HashSet<(B256, u32, u64, Bytes)> {
        store
            .read()
            .unwrap()
            .federation_utxos_at(settled_in)
            .unwrap()
            .into_iter()
            .map(|u| (u.txid, u.vout, u.amount_sats, u.script_pubkey))
            .collect()
    };
    let script = Bytes::copy_from_slice(federation_script.as_bytes());
    let expected: HashSet<_> = [
        (B256::from(small_outpoint.txid.to_byte_array()), small_outpoint.vout, small, script.clone()),
        (B256::from(txid.to_byte_array()), 1, big - paid_sats, script),
    ]
    .into();
    assert_eq!(utxos(&producer_store), expected);
    assert_eq!(utxos(&importer_store), expected);
    let settled = |store: &Storage, burn: &BurnRef| -> Option<Settlement> {
        store.read().unwrap().settled_on(burn, settled_in).unwrap()
    };
    for (burn, refunded) in [(paid_ref, false), (invalid_ref, true), (below_ref, true)] {
        let expected = Some(Settlement { block: settled_in, refunded });
        assert_eq!(settled(&producer_store, &burn), expected, "{burn:?} on the producer");
        assert_eq!(settled(&importer_store, &burn), expected, "{burn:?} on the importer");
    }
    assert_eq!(settled(&producer_store, &late_ref), None);
    assert_eq!(settled(&importer_store, &late_ref), None);

    // The late burn released on the importer too. A child paying it with the deposit the genuine block
    // spent already is refused; the producer's next block pays it from what is left, and is taken.
    assert_eq!(release(&importer_store, std::slice::from_ref(&late), head), vec![late.clone()]);
    let spent_again = PegoutBlock {
        paid: vec![late_ref],
        refunded: Vec::new(),
        fee_rate_sat_vb: FEE_FLOOR,
        tx: with_tx(&|tx| {
            tx.output[0].value = bitcoin::Amount::from_sat(late_sats - fee);
            tx.output[1].value = bitcoin::Amount::from_sat(big - late_sats);
        }),
        replaces: None,
    };
    let spent_txid = deserialize::<Transaction>(&spent_again.tx).unwrap().compute_txid();
    let error = pegout_error(import(&mut importer, child(14, spent_again)).await);
    assert!(
        matches!(error, PegoutError::Differs { what: "transaction", expected: Some(e) } if e != spent_txid),
        "{error}"
    );
    let next = build(&net, &mut producer).await;
    let next_proposal = next.header.pegout.clone().expect("a peg-out proposal");
    assert_eq!(
        (next_proposal.paid, next_proposal.refunded),
        (vec![late_ref], Vec::new()),
        "the rest is settled"
    );
    let next_tx: Transaction = deserialize(&next_proposal.tx).unwrap();
    assert_eq!(
        next_tx.input.iter().map(|i| i.previous_output).collect::<Vec<_>>(),
        vec![small_outpoint],
        "the largest unspent federation output"
    );
    import(&mut importer, next.clone()).await.unwrap();
    let tip = BlockRef::new(next.header.height, next.header.hash());
    let at_tip = |store: &Storage| -> Vec<FederationOutput> {
        store.read().unwrap().federation_utxos_at(tip).unwrap()
    };
    assert_eq!(at_tip(&importer_store), at_tip(&producer_store));
    let outpoints: HashSet<(B256, u32)> = at_tip(&importer_store).iter().map(|u| (u.txid, u.vout)).collect();
    let changes: HashSet<(B256, u32)> =
        [(B256::from(txid.to_byte_array()), 1), (B256::from(next_tx.compute_txid().to_byte_array()), 1)]
            .into();
    assert_eq!(outpoints, changes, "both deposits spent, both changes in");
    let settled_late = Some(Settlement { block: tip, refunded: false });
    assert_eq!(producer_store.read().unwrap().settled_on(&late_ref, tip).unwrap(), settled_late);
    assert_eq!(importer_store.read().unwrap().settled_on(&late_ref, tip).unwrap(), settled_late);

    // Fee bumps. The producer's payer has the genuine block's transaction broadcast and unconfirmed:
    // `BUMP_AFTER` blocks after it, the producer proposes the same inputs paying the same burn at twice
    // the fee rate, the burn bearing the extra fee, with `replaces` naming the genuine block.
    let genuine_hash = genuine.header.hash();
    let genuine_txid = B256::from(txid.to_byte_array());
    let spent = vec![SpentOutput {
        amount_sats: big,
        script_pubkey: Bytes::copy_from_slice(federation_script.as_bytes()),
    }];
    let broadcast = PayoutRecord {
        status: PayoutStatus::Broadcast,
        ..PayoutRecord::new(genuine_txid, settled_in, proposal.tx.clone(), spent, 1)
    };
    {
        let write = producer_store.write().unwrap();
        assert!(write.insert_payout(&broadcast).unwrap());
        write.commit().unwrap();
    }
    assert_eq!(next.header.height, genuine.header.height + 1);
    assert!(next.header.height < genuine.header.height + BUMP_AFTER, "not due at the next height yet");
    let bump = build(&net, &mut producer).await;
    assert_eq!(bump.header.height, genuine.header.height + BUMP_AFTER, "due now");
    assert_eq!(bump.header.parent_hash, next.header.hash());
    let bump_proposal = bump.header.pegout.clone().expect("a fee bump");
    assert_eq!(bump_proposal.replaces, Some(genuine_hash));
    assert_eq!(bump_proposal.fee_rate_sat_vb, 2 * FEE_FLOOR, "twice the original rate");
    assert_eq!((bump_proposal.paid.clone(), bump_proposal.refunded.clone()), (vec![paid_ref], Vec::new()));
    let bump_tx: Transaction = deserialize(&bump_proposal.tx).unwrap();
    let bump_txid = bump_tx.compute_txid();
    assert_ne!(bump_txid, txid);
    assert_eq!(
        bump_tx.input.iter().map(|i| i.previous_output).collect::<Vec<_>>(),
        vec![big_outpoint],
        "the same inputs"
    );
    let bump_fee = 2 * FEE_FLOOR * signed_vsize(&bump_tx, &net.federation);
    assert_eq!(bump_fee, 2 * fee, "the same size at twice the rate");
    assert_eq!(
        bump_tx.output,
        vec![
            TxOut {
                value: bitcoin::Amount::from_sat(paid_sats - fee - (bump_fee - fee)),
                script_pubkey: payee.script_pubkey()
            },
            TxOut {
                value: bitcoin::Amount::from_sat(big - paid_sats),
                script_pubkey: federation_script.clone()
            },
        ],
        "the payment lower by the extra fee, the change unchanged"
    );
    let bump_execution = decode_execution_block(&bump).unwrap();
    assert!(bump_execution.body.withdrawals.as_ref().is_none_or(|w| w.is_empty()), "a bump refunds nothing");

    // Forged bumps, each refused for its reason. Siblings of the genuine bump (same parent):
    let bump_sibling = |k: u64, change: &dyn Fn(&mut PegoutBlock)| -> SignedBlock {
        assert!(k < GAP);
        let mut block = bump.clone();
        block.header.slot += k;
        change(block.header.pegout.as_mut().unwrap());
        net.resign(block)
    };
    let with_bump_tx = |change: &dyn Fn(&mut Transaction)| -> Bytes {
        let mut tx = bump_tx.clone();
        change(&mut tx);
        Bytes::from(serialize(&tx))
    };
    // (g) The payment kept at the original amount (the change pays the extra fee), ...
    let kept = with_bump_tx(&|tx| {
        tx.output[0].value = bitcoin::Amount::from_sat(paid_sats - fee);
        tx.output[1].value = bitcoin::Amount::from_sat(big - paid_sats - (bump_fee - fee));
    });
    let error = pegout_error(import(&mut importer, bump_sibling(1, &|p| p.tx = kept.clone())).await);
    assert!(matches!(error, PegoutError::Differs { what: "fee bump", .. }), "{error}");
    // ... the change sent elsewhere, ...
    let tx_elsewhere = with_bump_tx(&|tx| tx.output[1].script_pubkey = elsewhere.clone());
    let error = pegout_error(import(&mut importer, bump_sibling(2, &|p| p.tx = tx_elsewhere.clone())).await);
    assert!(matches!(error, PegoutError::Differs { what: "fee bump", .. }), "{error}");
    // ... the original transaction re-proposed at the doubled rate, or the bump at another rate.
    let error = pegout_error(import(&mut importer, bump_sibling(3, &|p| p.tx = proposal.tx.clone())).await);
    assert!(matches!(error, PegoutError::Differs { what: "fee bump", .. }), "{error}");
    let error =
        pegout_error(import(&mut importer, bump_sibling(4, &|p| p.fee_rate_sat_vb = 3 * FEE_FLOOR)).await);
    assert!(matches!(error, PegoutError::Differs { what: "fee bump", .. }), "{error}");
    // (h) The importer's own Bitcoin node saw the original confirmed.
    let set_importer_status = |status: PayoutStatus| {
        let record = PayoutRecord { status, ..broadcast.clone() };
        let write = importer_store.write().unwrap();
        write.put_payout(&record).unwrap();
        write.commit().unwrap();
    };
    set_importer_status(PayoutStatus::Confirmed);
    let error = pegout_error(import(&mut importer, bump_sibling(5, &|_| {})).await);
    assert!(matches!(error, PegoutError::AlreadyConfirmed(t) if t == txid), "{error}");
    set_importer_status(PayoutStatus::Broadcast);
    // (i) The same bump proposed too early: a child of the genuine block (a sibling of `next`).
    let early = {
        let mut block = bump.clone();
        block.header.parent_hash = genuine_hash;
        block.header.parent_seal = genuine.seal();
        block.header.height = genuine.header.height + 1;
        block.header.slot = genuine.header.slot + 15;
        net.resign(block)
    };
    assert!(early.header.height < genuine.header.height + BUMP_AFTER);
    let error = pegout_error(import(&mut importer, early).await);
    assert!(matches!(error, PegoutError::NotBumpable("too early")), "{error}");

    // The genuine bump is taken; both nodes agree on the UTXO set: the original's change gone, the
    // bump's in, and the burn settled by the bump.
    assert_eq!(import(&mut importer, bump.clone()).await.unwrap(), bump.header.hash());
    let bumped = BlockRef::new(bump.header.height, bump.header.hash());
    let at_bump = |store: &Storage| -> HashSet<(B256, u32, u64, Bytes)> {
        store
            .read()
            .unwrap()
            .federation_utxos_at(bumped)
            .unwrap()
            .into_iter()
            .map(|u| (u.txid, u.vout, u.amount_sats, u.script_pubkey))
            .collect()
    };
    let script = Bytes::copy_from_slice(federation_script.as_bytes());
    let expected: HashSet<_> = [
        (B256::from(bump_txid.to_byte_array()), 1, big - paid_sats, script.clone()),
        (B256::from(next_tx.compute_txid().to_byte_array()), 1, small - late_sats, script),
    ]
    .into();
    assert_eq!(at_bump(&producer_store), expected, "the producer's UTXO set after the bump");
    assert_eq!(at_bump(&importer_store), expected, "the importer's UTXO set after the bump");
    let settled_bump = Some(Settlement { block: bumped, refunded: false });
    assert_eq!(producer_store.read().unwrap().settled_on(&paid_ref, bumped).unwrap(), settled_bump);
    assert_eq!(importer_store.read().unwrap().settled_on(&paid_ref, bumped).unwrap(), settled_bump);

    // (j) A child of the bump proposing it again: the original was replaced already.
    let again = {
        let mut block = bump.clone();
        block.header.parent_hash = bump.header.hash();
        block.header.parent_seal = bump.seal();
        block.header.height = bump.header.height + 1;
        block.header.slot = bump.header.slot + 6;
        net.resign(block)
    };
    let error = pegout_error(import(&mut importer, again).await);
    assert!(matches!(error, PegoutError::NotBumpable("replaced already")), "{error}");
}
