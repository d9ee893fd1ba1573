//! The sampler: one task that builds a [`Dashboard`] snapshot about once a second.
//!
//! Each round asks the node's RPC methods in-process (the same answers an HTTP client gets), reads the
//! recent canonical blocks from the database, and differences the Engine API counters. Every
//! [`HISTORY_INTERVAL`] it also appends a [`Sample`] to the hour of history the plots draw.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use alloy_primitives::{Address, B256};
use alys_engine_client::EngineStats;
use alys_rpc::{
    jsonrpsee::{Methods, rpc_params},
    types::{
        FederationUtxos, GovernanceStatus, Peers, PeginPage, PeginStatus, PendingPegouts, Proposals,
        SyncStatus,
    },
};
use alys_storage::{ChainRead, PegoutRead, Storage, StorageError};
use tokio::{sync::watch, task::JoinHandle};

use crate::snapshot::*;

/// How many canonical blocks the authority records, miners and block times cover.
pub const WINDOW: u64 = 64;
/// Seconds between two history samples.
pub const HISTORY_INTERVAL: Duration = Duration::from_secs(10);
/// History samples kept: one hour.
pub const HISTORY_LEN: usize = 360;
/// Newest deposits shown (and scanned for the queue).
const RECENT_PEGINS: u32 = 50;
/// Newest deposits and burns listed on the page.
const RECENT_SHOWN: usize = 10;

/// What the sampler reads.
#[derive(Debug)]
pub struct Sources {
    /// The node's RPC methods, called in-process.
    pub methods: Methods,
    /// The database (recent blocks).
    pub storage: Arc<Storage>,
    /// The Aura slot length.
    pub slot_duration_ms: u64,
    /// The AuxPow limit (compact bits), for the difficulty.
    pub pow_limit_bits: u32,
    /// The Engine API client's call counters.
    pub engine: Option<Arc<EngineStats>>,
    /// The execution client's `engine_getClientVersionV1` answer, if it gave one.
    pub engine_version: Option<String>,
    /// The node's identity, shown as is.
    pub node: NodeInfo,
}

/// The running dashboard: where snapshots come from.
#[derive(Debug, Clone)]
pub struct DashboardService {
    snapshots: Snapshots,
}

impl DashboardService {
    /// Starts the sampler, taking a snapshot every `interval` (at least 100 ms). The task ends when
    /// every [`DashboardService`] clone (and every subscription) is gone.
    pub fn spawn(sources: Sources, interval: Duration) -> (Self, JoinHandle<()>) {
        let (tx, rx) = watch::channel(None);
        let sampler = Sampler::new(sources);
        let task = tokio::spawn(sampler.run(tx, interval.max(Duration::from_millis(100))));
        (Self { snapshots: rx }, task)
    }

    /// The latest snapshot, if one was taken.
    pub fn latest(&self) -> Option<Arc<Dashboard>> {
        self.snapshots.borrow().clone()
    }

    /// A receiver of every new snapshot.
    pub(crate) fn watch(&self) -> Snapshots {
        self.snapshots.clone()
    }
}

/// The receiver type the service hands out.
pub(crate) type Snapshots = watch::Receiver<Option<Arc<Dashboard>>>;

/// A recent canonical block, as the sampler remembers it.
#[derive(Debug, Clone)]
struct Recent {
    hash: B256,
    slot: u64,
    author: u32,
    signers: Vec<u32>,
    miner: Option<Address>,
}

/// The sampler's own state.
struct Sampler {
    sources: Sources,
    sequence: u64,
    recent: BTreeMap<u64, Recent>,
    history: VecDeque<Sample>,
    last_history_ms: u64,
    engine_last: (u64, u64),
    engine_latency_ms: Option<f64>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Sampler {
    fn new(sources: Sources) -> Self {
        let engine_last = sources.engine.as_ref().map_or((0, 0), |e| e.read());
        Self {
            sources,
            sequence: 0,
            recent: BTreeMap::new(),
            history: VecDeque::with_capacity(HISTORY_LEN),
            last_history_ms: 0,
            engine_last,
            engine_latency_ms: None,
        }
    }

    async fn run(mut self, tx: watch::Sender<Option<Arc<Dashboard>>>, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = tx.closed() => return,
            }
            let span = tracing::debug_span!(target: "alys::dashboard", "sample", sequence = self.sequence);
            let _entered = span.enter();
            drop(_entered);
            match self.take().await {
                Ok(snapshot) => {
                    tx.send_replace(Some(Arc::new(snapshot)));
                }
                Err(error) => {
                    tracing::warn!(target: "alys::dashboard", %error, "no dashboard snapshot this round")
                }
            }
        }
    }

    /// Calls an RPC method in-process; `None` when it answers an error (an unconfigured part).
    async fn optional<T: serde::de::DeserializeOwned + Clone>(
        &self,
        method: &str,
        params: impl alys_rpc::jsonrpsee::core::traits::ToRpcParams + Send,
    ) -> Option<T> {
        self.sources.methods.call::<_, T>(method, params).await.ok()
    }

    async fn take(&mut self) -> Result<Dashboard, SampleError> {
        let now = now_ms();
        let status: SyncStatus = self
            .sources
            .methods
            .call("alys_syncStatus", rpc_params![])
            .await
            .map_err(|e| SampleError::Rpc("alys_syncStatus", e.to_string()))?;
        let peers: Option<Peers> = self.optional("alys_peers", rpc_params![]).await;
        let governance: Option<GovernanceStatus> =
            self.optional("alys_governanceStatus", rpc_params![]).await;
        let proposals: Option<Proposals> = self.optional("alys_proposals", rpc_params![]).await;
        let pegins: Option<PeginPage> =
            self.optional("alys_pegins", rpc_params![serde_json::json!({ "limit": RECENT_PEGINS })]).await;
        let pegouts: Option<PendingPegouts> = self.optional("alys_pendingPegouts", rpc_params![]).await;
        let utxos: Option<FederationUtxos> = self.optional("alys_federationUtxos", rpc_params![]).await;

        self.refresh_recent(status.head.height)?;
        self.sample_engine();
        let snapshot = self.assemble(now, &status, peers, governance, proposals, pegins, pegouts, utxos)?;
        if now.saturating_sub(self.last_history_ms)
            >= u64::try_from(HISTORY_INTERVAL.as_millis()).unwrap_or(0)
        {
            self.last_history_ms = now;
            let sample = Sample {
                at_ms: now,
                head: snapshot.chain.head.height,
                finality_lag: snapshot.chain.finality_lag,
                pegin_queue: snapshot.pegins.queued,
                pegout_queue: snapshot.pegouts.as_ref().map_or(0, |p| p.pending.saturating_add(p.queued)),
                peers: snapshot.network.as_ref().map_or(0, |n| n.peers.len() as u64),
            };
            if self.history.len() == HISTORY_LEN {
                self.history.pop_front();
            }
            self.history.push_back(sample);
        }
        let mut snapshot = snapshot;
        snapshot.history.samples = self.history.iter().copied().collect();
        self.sequence = self.sequence.wrapping_add(1);
        Ok(snapshot)
    }

    /// Brings the window of recent canonical blocks up to `head`, reading only heights whose canonical
    /// hash changed since the last round.
    fn refresh_recent(&mut self, head: u64) -> Result<(), StorageError> {
        let from = head.saturating_sub(WINDOW - 1).max(1);
        self.recent.retain(|height, _| (from..=head).contains(height));
        let read = self.sources.storage.read()?;
        for height in from..=head {
            let Some(hash) = read.canonical_hash(height)? else {
                self.recent.remove(&height);
                continue;
            };
            if self.recent.get(&height).is_some_and(|r| r.hash == hash) {
                continue;
            }
            let Some(block) = read.block(&hash)? else {
                self.recent.remove(&height);
                continue;
            };
            let header = &block.header;
            let miner = (!header.auxpow.is_empty())
                .then(|| alys_auxpow::AuxPowHeader::decode(&header.auxpow).ok().map(|p| p.miner))
                .flatten();
            self.recent.insert(
                height,
                Recent {
                    hash,
                    slot: header.slot,
                    author: header.author,
                    signers: block.approvals.signer_indexes(),
                    miner,
                },
            );
        }
        Ok(())
    }

    /// The mean latency of the Engine API calls made since the last round.
    fn sample_engine(&mut self) {
        let Some(engine) = &self.sources.engine else { return };
        let (calls, micros) = engine.read();
        let (last_calls, last_micros) = self.engine_last;
        let new_calls = calls.saturating_sub(last_calls);
        if new_calls > 0 {
            self.engine_latency_ms =
                Some(micros.saturating_sub(last_micros) as f64 / new_calls as f64 / 1_000.0);
        }
        self.engine_last = (calls, micros);
    }

    fn block_summary(&self, now: u64, height: u64, hash: B256, slot: u64) -> BlockSummary {
        let slot = if height == 0 { 0 } else { self.recent.get(&height).map_or(slot, |r| r.slot) };
        let age_secs = (slot > 0)
            .then(|| now.saturating_sub(slot.saturating_mul(self.sources.slot_duration_ms)) / 1_000);
        BlockSummary { height, hash, slot, age_secs }
    }

    /// The stored slot of a canonical block outside the window, 0 when unknown.
    fn slot_of(&self, hash: B256) -> u64 {
        self.sources
            .storage
            .read()
            .ok()
            .and_then(|read| read.block(&hash).ok().flatten())
            .map_or(0, |b| b.header.slot)
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        &self,
        now: u64,
        status: &SyncStatus,
        peers: Option<Peers>,
        governance: Option<GovernanceStatus>,
        proposals: Option<Proposals>,
        pegins: Option<PeginPage>,
        pegouts: Option<PendingPegouts>,
        utxos: Option<FederationUtxos>,
    ) -> Result<Dashboard, SampleError> {
        let n = status.authorities.len().max(1) as u64;
        let head = self.block_summary(now, status.head.height, status.head.hash, status.head.slot);
        let finalized = status.finalized.as_ref().map(|f| {
            let slot = if self.recent.contains_key(&f.height) { 0 } else { self.slot_of(f.hash) };
            self.block_summary(now, f.height, f.hash, slot)
        });
        let finality_lag =
            status.head.height.saturating_sub(status.finalized.as_ref().map_or(0, |f| f.height));
        let chain = ChainPanel {
            head,
            head_execution_hash: status.head.execution_hash,
            safe: finalized.clone(),
            finalized,
            finality_lag,
            slot: status.slot,
            slot_author: u32::try_from(status.slot % n).unwrap_or(0),
            slot_duration_ms: self.sources.slot_duration_ms,
        };

        // Authority records over the window: blocks authored, approvals given, own slots left empty.
        let window_from_height = self.recent.keys().next().copied().unwrap_or(status.head.height);
        let window_from_slot = self.recent.values().next().map_or(status.slot, |r| r.slot);
        let filled: std::collections::BTreeSet<u64> = self.recent.values().map(|r| r.slot).collect();
        let authorities = status
            .authorities
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let index = u32::try_from(i).unwrap_or(u32::MAX);
                let blocks = self.recent.values().filter(|r| r.author == index).count() as u64;
                let approvals = self.recent.values().filter(|r| r.signers.contains(&index)).count() as u64;
                // Slots strictly before the current one, from the window's first block on.
                let missed_slots = (window_from_slot..status.slot)
                    .filter(|slot| slot % n == i as u64 && !filled.contains(slot))
                    .count() as u64;
                AuthorityRecord {
                    index,
                    public_key: key.clone(),
                    is_self: status.authority_index == Some(index),
                    blocks,
                    approvals,
                    missed_slots,
                }
            })
            .collect();
        let production = ProductionPanel {
            authority_index: status.authority_index,
            threshold: u32::try_from((2 * n).div_ceil(3)).unwrap_or(u32::MAX),
            paused: status.paused,
            governance_paused: status.governance.production_paused,
            stopped: status.production_stopped.clone(),
            window_from_height,
            window_from_slot,
            authorities,
        };

        let auxpow = self.auxpow_panel(now, status)?;
        let network = peers.map(|p| NetworkPanel {
            peer_id: p.peer_id,
            sync_state: status.sync.as_ref().map_or_else(|| "following".to_owned(), |s| s.state.clone()),
            sync_target: status.sync.as_ref().and_then(|s| s.target),
            peers: p.peers,
        });
        let execution = ExecutionPanel {
            online: status.engine_online,
            synced: status.engine_synced,
            version: self.sources.engine_version.clone(),
            engine_latency_ms: self.engine_latency_ms,
            engine_calls: self.engine_last.0,
        };
        let now_secs = now / 1_000;
        let pegin_panel = match pegins {
            Some(page) => {
                let queued: Vec<_> = page
                    .pegins
                    .iter()
                    .filter(|p| matches!(p.status, PeginStatus::Confirming | PeginStatus::Ready))
                    .collect();
                PeginPanel {
                    configured: true,
                    total: page.total,
                    queued: queued.len() as u64,
                    oldest_queued_secs: queued.iter().map(|p| now_secs.saturating_sub(p.seen_at)).max(),
                    recent: page.pegins.into_iter().take(RECENT_SHOWN).collect(),
                }
            }
            None => PeginPanel {
                configured: false,
                total: 0,
                queued: 0,
                oldest_queued_secs: None,
                recent: vec![],
            },
        };
        let (queued, oldest) = self.sources.storage.read()?.unsettled_burns()?;
        let pegout_panel = pegouts.map(|p| {
            let unpaid =
                p.released.iter().filter(|b| !matches!(b.status.as_str(), "confirmed" | "refunded")).count();
            PegoutPanel {
                pending: p.pending.len() as u64,
                unpaid: unpaid as u64,
                queued,
                oldest_queued_secs: oldest.map(|t| now_secs.saturating_sub(t)),
                more: p.next_pending.is_some() || p.next_final.is_some(),
                recent: p.pending.into_iter().chain(p.released).take(RECENT_SHOWN).collect(),
            }
        });
        let next_height = status.head.height.saturating_add(1);
        let federation = governance.as_ref().and_then(|g| {
            let current = g.federations.iter().rfind(|f| f.effective_height <= next_height)?;
            let pending = g.federations.iter().find(|f| f.effective_height > next_height);
            Some(FederationPanel {
                address: current.address.clone(),
                threshold: current.threshold,
                members: current.members.iter().map(|m| m.id.clone()).collect(),
                effective_height: current.effective_height,
                utxos: utxos.as_ref().map_or(0, |u| u.utxos.len() as u64),
                utxo_total_sats: utxos.as_ref().map_or(0, |u| u.total_sats),
                pending_rotation: pending.map(|f| PendingRotation {
                    address: f.address.clone(),
                    effective_height: f.effective_height,
                    threshold: f.threshold,
                    members: f.members.len(),
                }),
            })
        });
        let governance_panel = GovernancePanel {
            configured: governance.as_ref().is_some_and(|g| g.configured),
            connected: governance.as_ref().is_some_and(|g| g.connected),
            reconnects: governance.as_ref().map_or(0, |g| g.reconnects),
            pending_signature_requests: governance.as_ref().map_or(0, |g| g.pending_signature_requests),
            proposals: proposals.as_ref().map_or(0, |p| p.proposals.len()),
            proposals_in_force: proposals
                .as_ref()
                .map_or(0, |p| p.proposals.iter().filter(|p| p.in_force).count()),
            pegins_paused: status.governance.pegins_paused,
            pegouts_paused: status.governance.pegouts_paused,
        };
        let block_times = self
            .recent
            .iter()
            .zip(self.recent.iter().skip(1))
            .filter(|((h0, _), (h1, _))| h0.saturating_add(1) == **h1)
            .map(|((_, parent), (height, block))| BlockTime {
                height: *height,
                seconds: block.slot.saturating_sub(parent.slot).saturating_mul(self.sources.slot_duration_ms)
                    as f64
                    / 1_000.0,
            })
            .collect();
        Ok(Dashboard {
            taken_at_ms: now,
            sequence: self.sequence,
            node: self.sources.node.clone(),
            chain,
            production,
            auxpow,
            network,
            execution,
            bitcoin: status.bitcoin.clone(),
            pegins: pegin_panel,
            pegouts: pegout_panel,
            federation,
            governance: governance_panel,
            equivocations: status.equivocations,
            history: History { interval_secs: HISTORY_INTERVAL.as_secs(), samples: Vec::new(), block_times },
        })
    }

    fn auxpow_panel(&self, now: u64, status: &SyncStatus) -> Result<AuxPowPanel, SampleError> {
        let pow = self.sources.storage.read()?.pow_state()?;
        let last = self.recent.iter().rev().find(|(_, r)| r.miner.is_some());
        // The last block carrying a proof, when it is in the window.
        let last_proof = last.map(|(height, r)| self.block_summary(now, *height, r.hash, r.slot));
        let mut miners: Vec<MinerRecord> = Vec::new();
        for (height, recent) in self.recent.iter().rev() {
            let Some(address) = recent.miner else { continue };
            match miners.iter_mut().find(|m| m.address == address) {
                Some(m) => m.proofs += 1,
                None => miners.push(MinerRecord { address, proofs: 1, last_height: *height }),
            }
        }
        Ok(AuxPowPanel {
            bits: status.pow_bits,
            difficulty: alys_auxpow::retarget::difficulty(status.pow_bits, self.sources.pow_limit_bits),
            last_proof,
            last_proof_secs: pow.map_or(0, |p| p.last_proof_secs),
            // As the chain counts them when it stops production: blocks above the finalized one.
            blocks_without_proof: status
                .head
                .height
                .saturating_sub(status.finalized.as_ref().map_or(0, |f| f.height)),
            max_blocks_without_proof: status.governance.parameters.max_blocks_without_pow,
            miners,
        })
    }
}

/// Why a round produced no snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// A required RPC method failed.
    #[error("{0}: {1}")]
    Rpc(&'static str, String),
    /// The database could not be read.
    #[error("database: {0}")]
    Storage(#[from] StorageError),
}

#[cfg(test)]
mod tests {
    use alys_rpc::jsonrpsee::{RpcModule, types::ErrorObjectOwned};
    use serde_json::json;

    use super::*;

    /// An `alys_syncStatus` answer of a node with three authorities, this one the second.
    fn status(head: u64, slot: u64) -> SyncStatus {
        serde_json::from_value(json!({
            "head": { "height": head, "hash": B256::repeat_byte(1), "executionHash": B256::repeat_byte(2), "slot": slot },
            "safe": { "height": 1, "hash": B256::repeat_byte(3) },
            "finalized": { "height": 1, "hash": B256::repeat_byte(3) },
            "slot": slot,
            "authorities": ["0xaa", "0xbb", "0xcc"],
            "authorityIndex": 1,
            "equivocations": 2,
            "paused": false,
            "engineOnline": true,
            "productionStopped": null,
            "powBits": "207fffff",
            "governance": {
                "peginsPaused": false, "pegoutsPaused": true, "productionPaused": false,
                "parameters": { "maxBlocksWithoutPow": 10, "pegoutFeeRateSatVb": 2, "peginConfirmations": 6, "pegoutMinSats": 1000 }
            },
            "bitcoin": null,
            "engineSynced": true,
        }))
        .expect("a SyncStatus")
    }

    /// The node's RPC as the sampler sees it: `alys_syncStatus` only, the rest unconfigured.
    fn methods(head: u64, slot: u64) -> Methods {
        let mut module = RpcModule::new(());
        module
            .register_method("alys_syncStatus", move |_, _, _| Ok::<_, ErrorObjectOwned>(status(head, slot)))
            .expect("registered");
        module.into()
    }

    fn sources(methods: Methods) -> Sources {
        Sources {
            methods,
            storage: Arc::new(Storage::in_memory().expect("a database")),
            slot_duration_ms: 2_000,
            pow_limit_bits: 0x207f_ffff,
            engine: Some(Arc::default()),
            engine_version: Some("reth/v2.5.1 (RH, 0x1234abcd)".into()),
            node: NodeInfo {
                version: "0.1.0".into(),
                chain_id: 263_634,
                bitcoin_network: Some("signet".into()),
            },
        }
    }

    #[tokio::test]
    async fn a_snapshot_is_what_the_rpc_answers_and_unconfigured_parts_are_absent() {
        let mut sampler = Sampler::new(sources(methods(5, 1_000)));
        let snapshot = sampler.take().await.expect("a snapshot");
        assert_eq!(snapshot.node.chain_id, 263_634);
        assert_eq!(snapshot.node.bitcoin_network.as_deref(), Some("signet"));
        assert_eq!(snapshot.chain.head.height, 5);
        assert_eq!(snapshot.chain.head.hash, B256::repeat_byte(1));
        assert_eq!(snapshot.chain.finalized.as_ref().map(|f| f.height), Some(1));
        assert_eq!(snapshot.chain.finality_lag, 4);
        assert_eq!(snapshot.chain.slot_author, 1_000 % 3);
        assert_eq!(snapshot.production.threshold, 2, "ceil(2n/3) of 3");
        assert_eq!(snapshot.production.authorities.len(), 3);
        assert!(snapshot.production.authorities[1].is_self);
        assert_eq!(snapshot.auxpow.bits, 0x207f_ffff);
        assert!((snapshot.auxpow.difficulty - 1.0).abs() < 1e-9, "the limit is difficulty 1");
        assert_eq!(snapshot.auxpow.blocks_without_proof, 4);
        assert_eq!(snapshot.auxpow.max_blocks_without_proof, 10);
        assert_eq!(snapshot.equivocations, 2);
        assert!(snapshot.governance.pegouts_paused && !snapshot.governance.configured);
        assert!(snapshot.network.is_none() && snapshot.pegouts.is_none() && snapshot.federation.is_none());
        assert!(!snapshot.pegins.configured);
        assert_eq!(snapshot.execution.version.as_deref(), Some("reth/v2.5.1 (RH, 0x1234abcd)"));
        assert_eq!(snapshot.execution.engine_latency_ms, None, "no Engine API call yet");
        assert_eq!(snapshot.history.samples.len(), 1, "the first round is a history sample");
        let second = sampler.take().await.expect("a snapshot");
        assert_eq!(second.sequence, snapshot.sequence + 1);
        assert_eq!(second.history.samples.len(), 1, "samples are ten seconds apart");
    }

    #[tokio::test]
    async fn without_sync_status_there_is_no_snapshot() {
        let mut sampler = Sampler::new(sources(RpcModule::new(()).into()));
        assert!(matches!(sampler.take().await, Err(SampleError::Rpc("alys_syncStatus", _))));
    }

    #[tokio::test]
    async fn subscribers_get_snapshots_and_the_method_the_latest() {
        let (service, task) = DashboardService::spawn(sources(methods(7, 50)), Duration::from_millis(100));
        let module = service.rpc_module().expect("the module");
        let mut subscription =
            module.subscribe_unbounded("alys_subscribeDashboard", rpc_params![]).await.unwrap();
        let (first, _) = subscription.next::<Dashboard>().await.expect("a notification").expect("a snapshot");
        let (second, _) =
            subscription.next::<Dashboard>().await.expect("a notification").expect("a snapshot");
        assert_eq!(first.chain.head.height, 7);
        assert!(second.sequence > first.sequence, "a new snapshot each round");
        let latest: Dashboard = module.call("alys_dashboard", rpc_params![]).await.unwrap();
        assert!(latest.sequence >= second.sequence);
        // The sampler stops once nothing can read its snapshots.
        drop((subscription, module, service));
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("the sampler ends").unwrap();
    }
}
