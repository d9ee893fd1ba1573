//! The ChainActor's state, messages, block import and block production.

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use alloy_primitives::{Address, B256, Bytes};
use alloy_rpc_types_engine::{ForkchoiceState, PayloadAttributes, PayloadStatusEnum};
use alys_actor::{Actor, ActorError};
use alys_auxpow::{AuxPowHeader, MiningParams};
use alys_bridge::{
    pegin::{PeginError, PeginRules},
    pegout::rules::{PegoutError, PegoutRules},
};
use alys_chainspec::Fork;
use alys_consensus::{
    Aura, AuraError, EquivocationDetector, ExecutionBlockError, block_to_payload, check_withdrawals,
    decode_execution_block, encode_execution_block, payload_to_block, pegin_withdrawals, refund_withdrawals,
    requests_of, versioned_hashes,
};
use alys_engine_client::{EngineClient, EngineClientError};
use alys_governance::{RuntimeState, RuntimeView};
use alys_primitives::{
    Approval, Approvals, AuthorityKey, BlockRef, BlsSignature, ChainHeads, ConsensusHeader,
    EquivocationEvidence, Seal, SignedBlock,
};
use alys_storage::{ChainRead, Storage, StorageError};
use tokio::sync::{mpsc, oneshot, watch};

use crate::{
    execution::{Executed, Execution},
    federation::{ApprovalOutcome, ChainEvent},
    mining::{self, AuxTemplate, MiningError},
};

/// The wall clock the chain reads, in unix milliseconds. Benchmarks and tests may drive their own.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(now_ms)
}

/// Static settings of the chain.
#[derive(Clone)]
pub struct ChainConfig {
    /// Hash of the execution genesis block: the parent of consensus height 1.
    pub genesis_hash: B256,
    /// Timestamp of the execution genesis block.
    pub genesis_timestamp: u64,
    /// Where block fees go.
    pub fee_recipient: Address,
    /// The wall clock (slots, future-slot checks).
    pub clock: Clock,
    /// Merged-mining parameters.
    pub auxpow: MiningParams,
    /// Governance's pauses and parameters by height (fixed defaults without governance).
    pub runtime: RuntimeView,
}

impl std::fmt::Debug for ChainConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainConfig")
            .field("genesis_hash", &self.genesis_hash)
            .field("genesis_timestamp", &self.genesis_timestamp)
            .field("fee_recipient", &self.fee_recipient)
            .finish_non_exhaustive()
    }
}

/// What the chain reports over RPC and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainStatus {
    /// The head consensus block (genesis: height 0, the execution genesis hash).
    pub head: BlockRef,
    /// The head's execution block hash.
    pub head_execution_hash: B256,
    /// The slot of the head block (0 for genesis).
    pub head_slot: u64,
    /// The finalized block, if any block was finalized.
    pub finalized: Option<BlockRef>,
    /// The local clock's slot.
    pub slot: u64,
    /// The authority set, as hex public keys.
    pub authorities: Vec<String>,
    /// This node's authority index, if it is an authority.
    pub authority_index: Option<u32>,
    /// Equivocations seen since start.
    pub equivocations: u64,
    /// Whether production was paused by an operator.
    pub paused: bool,
    /// Whether the last call to the execution client succeeded.
    pub engine_online: bool,
    /// Whether the execution client is known to hold every canonical block up to the head.
    pub engine_synced: bool,
    /// Why production is stopped (too many blocks without AuxPow), if it is.
    pub production_stopped: Option<String>,
    /// The current merged-mining target, compact form.
    pub pow_bits: u32,
    /// Governance's pauses and parameters in force for the next block.
    pub runtime: RuntimeState,
}

/// Messages the ChainActor takes.
#[derive(Debug)]
pub enum ChainMessage {
    /// A slot began: produce if this node is its author.
    Tick {
        /// The slot.
        slot: u64,
    },
    /// A block from the network (or a test) to import.
    Import(Box<SignedBlock>, oneshot::Sender<Result<B256, ImportError>>),
    /// The current status.
    Status(oneshot::Sender<ChainStatus>),
    /// Pauses (`true`) or resumes (`false`) block production, durably.
    SetPaused(bool, oneshot::Sender<Result<(), StorageError>>),
    /// `createauxblock`: work for a miner paying to the address.
    CreateAuxBlock(Address, oneshot::Sender<Result<AuxTemplate, MiningError>>),
    /// `submitauxblock`: a committed hash and a serialized CAuxPow.
    SubmitAuxBlock(B256, Bytes, oneshot::Sender<Result<bool, MiningError>>),
    /// Another authority's block, waiting for approvals: check it as an import would (without the
    /// approvals) and, if this node is an authority, answer its approval to gossip.
    Proposal(Box<SignedBlock>, oneshot::Sender<Result<Option<Approval>, ImportError>>),
    /// An authority's approval, from the network.
    Approval(Approval, oneshot::Sender<Result<ApprovalOutcome, ImportError>>),
    /// Equivocation evidence, from the network: `Ok(true)` when it is new and now stored.
    Evidence(Box<EquivocationEvidence>, oneshot::Sender<Result<bool, ImportError>>),
    /// Consecutive blocks fetched from a peer, imported in order ([`ChainActor::import_range`]).
    ImportRange(Vec<SignedBlock>, oneshot::Sender<RangeOutcome>),
    /// A merged-mining proof another node queued (an encoded `AuxPowHeader`), from the network:
    /// `Ok(true)` when it is valid here and now queued for this node's next block.
    GossipProof(Bytes, oneshot::Sender<Result<bool, ImportError>>),
}

/// Why a block was not imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The block breaks an Aura rule (author, slot, signature, approvals, parent).
    #[error(transparent)]
    Aura(#[from] AuraError),
    /// The execution block does not match the header.
    #[error(transparent)]
    Execution(#[from] ExecutionBlockError),
    /// The parent is unknown.
    #[error("unknown parent {0}")]
    UnknownParent(B256),
    /// The author already produced a different block for this slot.
    #[error("equivocation by authority {author} in slot {slot}")]
    Equivocation {
        /// The slot.
        slot: u64,
        /// The author.
        author: u32,
    },
    /// The execution client judged the payload invalid.
    #[error("execution client: payload invalid: {0}")]
    InvalidPayload(String),
    /// The execution client could not be reached or answered an error.
    #[error(transparent)]
    Engine(#[from] EngineClientError),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The block's merged-mining proof is invalid.
    #[error("auxpow: {0}")]
    AuxPow(#[from] mining::ProofError),
    /// The block's peg-in claims do not hold against this node's Bitcoin node or minted set.
    #[error("peg-in: {0}")]
    Pegin(#[from] PeginError),
    /// The block's peg-out proposal is not what the rules build, or this node cannot check it.
    #[error("peg-out: {0}")]
    Pegout(#[from] PegoutError),
    /// The block proposes a peg-out but this node has no peg-out rules (no `[governance].network`).
    #[error("the block proposes a peg-out but this node has no peg-out rules")]
    NoPegoutRules,
    /// This node approved or proposed another block of this height in a recent slot.
    #[error("already voted for a block of height {height} in slot {slot}")]
    AlreadyVoted {
        /// The height voted for.
        height: u64,
        /// The slot of that vote.
        slot: u64,
    },
    /// A proposal that does not extend this node's head: not approved (this node may be behind).
    #[error("proposal's parent {parent} is not this node's head {head}")]
    NotOnHead {
        /// The proposal's parent.
        parent: B256,
        /// This node's head.
        head: B256,
    },
}

impl ImportError {
    /// Whether the block itself is at fault (a sender relaying it should be penalized), as opposed to
    /// this node lacking something (its parent, its execution client, its database).
    pub const fn is_invalid_block(&self) -> bool {
        !matches!(
            self,
            Self::UnknownParent(_)
                | Self::Engine(_)
                | Self::Storage(_)
                | Self::NoPegoutRules
                | Self::NotOnHead { .. }
                | Self::AlreadyVoted { .. }
                | Self::Equivocation { .. }
        ) && !matches!(self, Self::Aura(AuraError::FutureSlot { .. }))
    }
}

/// The head as the actor tracks it.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub(crate) block: BlockRef,
    pub(crate) header: Option<ConsensusHeader>,
    pub(crate) execution_hash: B256,
    pub(crate) execution_timestamp: u64,
}

/// The ChainActor. See the module docs.
#[derive(Debug)]
pub struct ChainActor {
    pub(crate) config: ChainConfig,
    pub(crate) aura: Aura,
    pub(crate) key: Option<Arc<AuthorityKey>>,
    pub(crate) engine: EngineClient,
    pub(crate) storage: Arc<Storage>,
    pub(crate) heads: watch::Sender<ChainHeads>,
    pub(crate) head: Head,
    pub(crate) finalized_execution_hash: B256,
    pub(crate) equivocations: EquivocationDetector,
    pub(crate) equivocation_count: u64,
    pub(crate) paused: bool,
    pub(crate) engine_synced: bool,
    pub(crate) engine_online: bool,
    /// Merged-mining state.
    pub(crate) mining: mining::MiningState,
    /// Nanoseconds spent waiting on the execution client during the current production.
    pub(crate) engine_nanos: std::sync::atomic::AtomicU64,
    /// Peg-in claims: selecting them when producing, checking them when importing.
    pub(crate) pegins: PeginRules,
    /// Peg-out proposals: building them when producing, checking them when importing (`None`: this
    /// node proposes none and refuses blocks that do).
    pub(crate) pegouts: Option<PegoutRules>,
    /// Where blocks, proposals and evidence go out to the network (`None`: this node runs alone).
    pub(crate) events: Option<mpsc::Sender<ChainEvent>>,
    /// This node's own block waiting for approvals.
    pub(crate) pending: Option<crate::federation::Pending>,
    /// Proposals already checked in full here (peg-ins, peg-outs, proof, execution), by hash: their
    /// block, arriving with approvals, needs only the approvals checked.
    pub(crate) validated: lru::LruCache<B256, ()>,
    /// The (height, slot) of the last block this node proposed or approved: it approves no other block
    /// of that height until two slots later, so two blocks of one height rarely both gather a quorum.
    pub(crate) last_vote: Option<(u64, u64)>,
    /// While a range from a peer is imported: commits are deferred (durable with the range's last
    /// block) and the execution client hears the new head once, at the end.
    pub(crate) range: bool,
    /// Blocks of the range being imported whose author signature and approvals were verified ahead,
    /// in parallel.
    pub(crate) preverified: std::collections::HashSet<B256>,
    /// The execution client's answer for the block of the range being imported now, when the range
    /// import sent it ahead.
    pub(crate) ahead: Option<AheadStatus>,
    /// The first signed header seen per (slot, author), to build evidence when a second one arrives.
    pub(crate) seen_headers: lru::LruCache<(u64, u32), (ConsensusHeader, Bytes)>,
}

/// How long producing one block took, split into the sidecar's own work and Engine API calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProductionTiming {
    /// Time spent in the sidecar: signing, verifying, encoding, storing.
    pub consensus: std::time::Duration,
    /// Time spent waiting on the execution client.
    pub engine: std::time::Duration,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// What importing a range of blocks from a peer did.
#[derive(Debug)]
pub struct RangeOutcome {
    /// Blocks imported (or already known) before the first refusal.
    pub imported: usize,
    /// The first block refused, by height, and why; the blocks after it were not tried.
    pub error: Option<(u64, ImportError)>,
}

/// The execution client's answer to a block's `newPayload`, sent ahead of its import.
#[derive(Debug)]
pub(crate) struct AheadStatus {
    /// The block's consensus hash.
    pub(crate) hash: B256,
    /// The answer.
    pub(crate) status: Result<alloy_rpc_types_engine::PayloadStatus, EngineClientError>,
    /// How long the actor waited for it, in nanoseconds (execution-client time in the import's
    /// metrics).
    pub(crate) waited_nanos: u64,
}

impl ChainActor {
    /// Loads the head from the database (or starts at genesis); `heads` receives where the chain stands
    /// after every commit.
    pub fn new(
        config: ChainConfig,
        aura: Aura,
        key: Option<Arc<AuthorityKey>>,
        engine: EngineClient,
        storage: Arc<Storage>,
        heads: watch::Sender<ChainHeads>,
    ) -> Result<Self, ImportError> {
        let genesis = Head {
            block: BlockRef { height: 0, hash: config.genesis_hash },
            header: None,
            execution_hash: config.genesis_hash,
            execution_timestamp: config.genesis_timestamp,
        };
        let read = storage.read()?;
        let head = match read.head()? {
            Some(head) => {
                let block = read.block(&head.hash)?.ok_or(StorageError::UnknownBlock(head.hash))?;
                let execution = decode_execution_block(&block)?;
                Head {
                    block: head,
                    execution_hash: block.header.execution_block_hash,
                    execution_timestamp: execution.header.timestamp,
                    header: Some(block.header),
                }
            }
            None => genesis,
        };
        let finalized = read.finalized()?;
        let finalized_execution_hash = match finalized {
            Some(f) => read.block(&f.hash)?.map_or(config.genesis_hash, |b| b.header.execution_block_hash),
            None => config.genesis_hash,
        };
        metrics::gauge!("alys_chain_head_height", "head" => "head").set(head.block.height as f64);
        if let Some(finalized) = finalized {
            metrics::gauge!("alys_chain_head_height", "head" => "finalized").set(finalized.height as f64);
        }
        let mining = mining::MiningState::load(&read, &config.auxpow, config.genesis_timestamp)?;
        let runtime = config.runtime.clone();
        let paused = read.production_paused()?;
        metrics::gauge!("alys_chain_production_paused").set(if paused { 1.0 } else { 0.0 });
        let equivocation_count = alys_storage::EvidenceRead::equivocation_count(&read)?;
        drop(read);
        heads.send_replace(ChainHeads {
            head: head.block,
            head_execution_hash: head.execution_hash,
            finalized,
        });
        Ok(Self {
            mining,
            config,
            aura,
            key,
            engine,
            storage,
            heads,
            head,
            finalized_execution_hash,
            equivocations: EquivocationDetector::default(),
            equivocation_count,
            paused,
            engine_synced: false,
            engine_online: true,
            engine_nanos: std::sync::atomic::AtomicU64::new(0),
            pegins: PeginRules::new(runtime, None),
            pegouts: None,
            events: None,
            pending: None,
            last_vote: None,
            range: false,
            preverified: std::collections::HashSet::new(),
            ahead: None,
            validated: lru::LruCache::new(
                std::num::NonZeroUsize::new(256).unwrap_or(std::num::NonZeroUsize::MIN),
            ),
            seen_headers: lru::LruCache::new(
                std::num::NonZeroUsize::new(4_096).unwrap_or(std::num::NonZeroUsize::MIN),
            ),
        })
    }

    /// Claims and checks peg-ins with `rules` (the default claims nothing and refuses blocks that
    /// claim: a node without a Bitcoin node cannot check them).
    pub fn with_pegins(mut self, rules: PeginRules) -> Self {
        self.pegins = rules;
        self
    }

    /// Sends blocks this node authors, its proposals and equivocation evidence to `events` (the
    /// network), and lets it produce with more than one authority (approvals arrive as
    /// [`ChainMessage::Approval`]).
    pub fn with_events(mut self, events: mpsc::Sender<ChainEvent>) -> Self {
        self.events = Some(events);
        self
    }

    /// Proposes and checks peg-outs with `rules`.
    pub fn with_pegouts(mut self, rules: PegoutRules) -> Self {
        self.pegouts = Some(rules);
        self
    }

    /// The refunds `header`'s peg-out mints, (burner, gwei) in order, from this node's ledger.
    fn refunds_of(
        &self,
        header: &ConsensusHeader,
    ) -> Result<Vec<(alloy_primitives::Address, u64)>, ImportError> {
        if header.pegout.is_none() {
            return Ok(Vec::new());
        }
        let rules = self.pegouts.as_ref().ok_or(ImportError::NoPegoutRules)?;
        Ok(rules.refunds_of(&self.storage.read()?, header)?)
    }

    fn my_index(&self) -> Option<u32> {
        self.key.as_ref().and_then(|k| self.aura.index_of(k.public()))
    }

    pub(crate) fn forkchoice(&self, head: B256) -> ForkchoiceState {
        ForkchoiceState {
            head_block_hash: head,
            safe_block_hash: self.finalized_execution_hash,
            finalized_block_hash: self.finalized_execution_hash,
        }
    }

    fn status(&self) -> ChainStatus {
        ChainStatus {
            head: self.head.block,
            head_execution_hash: self.head.execution_hash,
            head_slot: self.head.header.as_ref().map_or(0, |h| h.slot),
            finalized: self.heads.borrow().finalized,
            slot: self.aura.slot_at((self.config.clock)()),
            authorities: self.aura.authorities().iter().map(|k| k.to_string()).collect(),
            authority_index: self.my_index(),
            equivocations: self.equivocation_count,
            paused: self.paused,
            engine_online: self.engine.stats().online(),
            engine_synced: self.engine_synced,
            production_stopped: self.production_stopped(),
            pow_bits: self.mining.bits,
            runtime: self.config.runtime.state_at(self.head.block.height + 1),
        }
    }

    /// Tells the followers of the chain (bridge, RPC) where it stands, after a commit.
    pub(crate) fn publish_heads(&self) {
        let finalized = self.heads.borrow().finalized;
        self.publish_heads_with(finalized);
    }

    pub(crate) fn publish_heads_with(&self, finalized: Option<BlockRef>) {
        self.heads.send_replace(ChainHeads {
            head: self.head.block,
            head_execution_hash: self.head.execution_hash,
            finalized,
        });
    }

    /// Makes sure the execution client has every canonical block up to the head, re-sending what it lost.
    pub async fn sync_engine(&mut self) -> Result<(), ImportError> {
        let head = self.head.execution_hash;
        let state = self.forkchoice(head);
        let updated =
            self.timed(self.engine.forkchoice_updated(state, None, self.head.execution_timestamp)).await?;
        match updated.payload_status.status {
            PayloadStatusEnum::Valid => {
                self.engine_synced = true;
                return Ok(());
            }
            PayloadStatusEnum::Invalid { validation_error } => {
                return Err(ImportError::InvalidPayload(validation_error));
            }
            PayloadStatusEnum::Syncing | PayloadStatusEnum::Accepted => {}
        }
        // Find the highest canonical block the execution client still has, walking back in batches.
        let mut missing_from = 1;
        let mut height = self.head.block.height;
        'search: while height >= 1 {
            let low = height.saturating_sub(63).max(1);
            let mut hashes = Vec::new();
            let read = self.storage.read()?;
            for h in low..=height {
                let block = read.block_by_height(h)?.ok_or(StorageError::MissingHeight(h))?;
                hashes.push(block.header.execution_block_hash);
            }
            drop(read);
            let bodies = self.timed(self.engine.payload_bodies_by_hash(hashes)).await?;
            for (offset, body) in bodies.iter().enumerate().rev() {
                if body.is_some() {
                    missing_from = low + offset as u64 + 1;
                    break 'search;
                }
            }
            height = low - 1;
        }
        tracing::warn!(target: "alys::chain", from = missing_from, to = self.head.block.height,
            "execution client is missing blocks; re-sending them");
        metrics::counter!("alys_chain_engine_resync_total").increment(1);
        for h in missing_from..=self.head.block.height {
            let block = self.storage.read()?.block_by_height(h)?.ok_or(StorageError::MissingHeight(h))?;
            let execution = Execution { block: decode_execution_block(&block)?, payload: None };
            self.send_execution(&block, execution).await?;
        }
        let updated =
            self.timed(self.engine.forkchoice_updated(state, None, self.head.execution_timestamp)).await?;
        match updated.payload_status.status {
            PayloadStatusEnum::Valid => {
                self.engine_synced = true;
                Ok(())
            }
            other => Err(ImportError::InvalidPayload(format!("after re-sending: {other:?}"))),
        }
    }

    /// Awaits an execution-client call, adding its duration to the production's engine time.
    async fn timed<T>(&self, call: impl std::future::Future<Output = T>) -> T {
        let started = std::time::Instant::now();
        let out = call.await;
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.engine_nanos.fetch_add(nanos, std::sync::atomic::Ordering::Relaxed);
        out
    }

    /// `newPayload` for a block whose execution part is already decoded and checked.
    async fn send_execution(&self, block: &SignedBlock, execution: Execution) -> Result<(), ImportError> {
        let status = self.timed(new_payload(&self.engine, block, execution)).await?;
        payload_outcome(block, status)
    }

    /// The parent header of a block at `parent_hash` (None for genesis), if known.
    fn parent_of(
        &self,
        header: &ConsensusHeader,
    ) -> Result<Option<Option<(ConsensusHeader, Seal)>>, StorageError> {
        if header.parent_hash == self.config.genesis_hash && header.height == 1 {
            return Ok(Some(None));
        }
        Ok(self.storage.read()?.block(&header.parent_hash)?.map(|block| {
            let seal = block.seal();
            Some((block.header, seal))
        }))
    }

    /// Imports a block: consensus checks, execution validation, storage, fork choice.
    pub async fn import(&mut self, block: SignedBlock) -> Result<B256, ImportError> {
        let hash = block.header.hash();
        if self.storage.read()?.has_block(&hash)? {
            return Ok(hash);
        }
        let started = std::time::Instant::now();
        self.engine_nanos.store(0, std::sync::atomic::Ordering::Relaxed);
        // Boxed: the checks and the execution are large futures, and an import's caller (a test's
        // thread, the actor's task) should not carry them on its stack.
        let execution = Box::pin(self.check(&block, hash, true)).await?;
        let (height, slot, author) = (block.header.height, block.header.slot, block.header.author);
        Box::pin(self.apply(block, hash, execution)).await?;
        let engine =
            std::time::Duration::from_nanos(self.engine_nanos.load(std::sync::atomic::Ordering::Relaxed));
        metrics::histogram!("alys_chain_import_seconds", "part" => "engine").record(engine.as_secs_f64());
        metrics::histogram!("alys_chain_import_seconds", "part" => "consensus")
            .record(started.elapsed().saturating_sub(engine).as_secs_f64());
        let head = self.head.block.hash == hash;
        // A range (sync) says what it imported once, at its end ("imported range"); its blocks one by
        // one only at debug level, so a syncing node's log does not grow by a line per block.
        if self.range {
            tracing::debug!(target: "alys::chain", height, slot, author, consensus_hash = %hash, head, "imported block");
        } else {
            tracing::info!(target: "alys::chain", height, slot, author, consensus_hash = %hash, head, "imported block");
        }
        Ok(hash)
    }

    /// The checks of a block from another node, before execution: Aura (author, slot, signature,
    /// equivocation, parent, execution timestamp inside the slot), the approvals if `approvals`, and,
    /// unless this node checked the same block as a proposal already, its peg-in claims, peg-out
    /// proposal and merged-mining proof.
    pub(crate) async fn check(
        &mut self,
        block: &SignedBlock,
        hash: B256,
        approvals: bool,
    ) -> Result<Execution, ImportError> {
        let header = &block.header;
        let preverified = self.preverified.contains(&hash);
        if preverified {
            self.aura.check_schedule(header, (self.config.clock)())?;
        } else {
            self.aura.verify_header(header, &block.author_signature, (self.config.clock)())?;
        }
        self.observe(header, &block.author_signature)?;
        let parent = self.parent_of(header)?.ok_or(ImportError::UnknownParent(header.parent_hash))?;
        match &parent {
            Some((parent, stored)) => {
                self.aura.check_child(parent, header)?;
                // The parent's seal as this block's author holds it. The one stored with the parent
                // was verified when the parent was imported; a block verified with its range's quorum
                // has its seal vouched for by that quorum (see `range`).
                if !preverified && header.parent_seal != *stored {
                    self.aura.verify_seal(&header.parent_hash, parent.author, &header.parent_seal)?;
                }
            }
            None if header.height != 1 => return Err(AuraError::NotChild("height").into()),
            None if !header.parent_seal.is_empty() => {
                return Err(AuraError::NotChild("a first block carries a parent seal").into());
            }
            None => {}
        }
        if approvals && !preverified {
            self.aura.verify_approvals(&hash, &block.approvals)?;
        }
        if self.validated.get(&hash).is_none() {
            self.check_bridge(block, hash).await?;
        }
        Ok(Execution { block: decode_execution_block(block)?, payload: None })
    }

    /// A block's merged-mining proof, peg-in claims and peg-out proposal, against this node's state.
    async fn check_bridge(&self, block: &SignedBlock, hash: B256) -> Result<(), ImportError> {
        let header = &block.header;
        if !block.header.auxpow.is_empty() {
            self.verify_block_auxpow(block.header.parent_hash, &block.header.auxpow)?;
        }
        if !block.header.pegins.is_empty() {
            let parent = BlockRef { height: header.height - 1, hash: header.parent_hash };
            if let Err(error) = self.pegins.verify(&self.storage, &block.header, parent).await {
                metrics::counter!(alys_bridge::pegin::metrics::CLAIMS_REFUSED, "reason" => error.reason())
                    .increment(1);
                tracing::warn!(target: "alys::chain", %hash, %error, "block refused: peg-in claims");
                return Err(error.into());
            }
        }
        if block.header.pegout.is_some() {
            let parent = BlockRef { height: header.height - 1, hash: header.parent_hash };
            let rules = self.pegouts.as_ref().ok_or(ImportError::NoPegoutRules)?;
            if let Err(error) = rules.verify(&self.storage.read()?, &block.header, parent) {
                metrics::counter!(alys_bridge::pegout::rules::PROPOSALS_REFUSED, "reason" => error.reason())
                    .increment(1);
                tracing::warn!(target: "alys::chain", %hash, %error, "block refused: peg-out proposal");
                return Err(error.into());
            }
        }
        Ok(())
    }

    /// Imports a block whose signatures and Aura rules are already checked (received and verified, or
    /// just produced and signed here): execution binding, execution-client validation, storage, fork
    /// choice.
    async fn apply(
        &mut self,
        block: SignedBlock,
        hash: B256,
        execution: Execution,
    ) -> Result<B256, ImportError> {
        let executed = self.execute(&block, execution).await?;
        self.commit(block, hash, executed).await
    }

    /// The execution side of a checked block: the withdrawals it must mint, its binding to the
    /// consensus parent, and the execution client's `newPayload`. Nothing is stored.
    pub(crate) async fn execute(
        &mut self,
        block: &SignedBlock,
        execution: Execution,
    ) -> Result<Executed, ImportError> {
        let header = &block.header;
        let proof = if header.auxpow.is_empty() {
            None
        } else {
            Some(AuxPowHeader::decode(&header.auxpow).map_err(mining::ProofError::Encoding)?)
        };
        let mut expected = pegin_withdrawals(&header.pegins);
        let refunds = self.refunds_of(header)?;
        expected.extend(refund_withdrawals(&refunds, expected.len() as u64));
        if let Some(proof) = &proof {
            expected.extend(self.reward_for(proof, expected.len())?);
        }
        check_withdrawals(&execution.block, &expected)?;
        let timestamp = execution.block.header.timestamp;
        if execution.block.header.mix_hash != header.parent_hash
            || execution.block.header.parent_beacon_block_root.is_some_and(|root| root != header.parent_hash)
        {
            return Err(AuraError::NotChild("execution block not bound to the consensus parent").into());
        }
        self.aura.check_timestamp(header.slot, timestamp)?;
        if !self.engine_synced {
            self.sync_engine().await?;
        }
        match self.ahead.take().filter(|ahead| ahead.hash == block.header.hash()) {
            // A range import already sent it: its answer, with the time it was awaited.
            Some(ahead) => {
                self.engine_nanos.fetch_add(ahead.waited_nanos, std::sync::atomic::Ordering::Relaxed);
                payload_outcome(block, ahead.status?)?;
            }
            None => self.send_execution(block, execution).await?,
        }
        Ok(Executed { proof, timestamp })
    }

    /// Stores an executed block and, when fork choice prefers it, makes it the head (with the finality
    /// its proof brings) in one commit, then tells the execution client.
    pub(crate) async fn commit(
        &mut self,
        block: SignedBlock,
        hash: B256,
        executed: Executed,
    ) -> Result<B256, ImportError> {
        let Executed { proof, timestamp } = executed;
        let header = &block.header;
        if self.prefer(header)? {
            // The block, the finality its proof brings, the new difficulty and the consumed proof are
            // one commit: a crash leaves all of them or none (a reward is never paid for a batch that
            // stays unfinalized). Memory follows the commit.
            // A branch becoming canonical may carry proofs in blocks stored while it was a fork: their
            // finality and difficulty are applied in the same commit, in order, before this block's.
            let joined = if header.parent_hash == self.head.block.hash {
                Vec::new()
            } else {
                self.joined_proofs(header)?
            };
            let tx = if self.range { self.storage.write_deferred()? } else { self.storage.write()? };
            let head = tx.set_head(&block)?;
            let mut staged: Vec<mining::Finalization> = Vec::new();
            for (proof, proof_timestamp) in &joined {
                staged.push(self.stage_finalization(&tx, proof, *proof_timestamp, staged.last())?);
            }
            let finalization = proof
                .as_ref()
                .map(|p| self.stage_finalization(&tx, p, timestamp, staged.last()))
                .transpose()?;
            if !staged.is_empty() {
                tracing::info!(target: "alys::chain", proofs = staged.len(), height = header.height,
                    "a branch with merged-mining proofs became canonical");
            }
            // Memory takes the last one after the commit (each overwrites the one before).
            let finalization = finalization.or_else(|| staged.pop());
            alys_primitives::crash_point!("chain::commit::before");
            if finalization.is_some() {
                // The same commit, named for the blocks that finalize a batch and pay its reward.
                alys_primitives::crash_point!("chain::finalize::before");
            }
            if !header.pegins.is_empty() {
                // The same commit, named for the blocks that mint deposits (the minted outpoints).
                alys_primitives::crash_point!("pegin::mint::before");
            }
            if header.pegout.is_some() {
                // The same commit, named for the blocks that settle burns (spent and created
                // federation outputs, settled burns).
                alys_primitives::crash_point!("pegout::settle::before");
            }
            tx.commit()?;
            alys_primitives::crash_point!("chain::commit::after");
            if finalization.is_some() {
                alys_primitives::crash_point!("chain::finalize::after");
            }
            if !header.pegins.is_empty() {
                alys_primitives::crash_point!("pegin::mint::after");
            }
            if let Some(pegout) = &header.pegout {
                alys_primitives::crash_point!("pegout::settle::after");
                let settled = alys_bridge::pegout::metrics::SETTLED;
                metrics::counter!(settled, "outcome" => "paid").increment(pegout.paid.len() as u64);
                metrics::counter!(settled, "outcome" => "refunded").increment(pegout.refunded.len() as u64);
            }
            self.head = Head {
                block: head,
                execution_hash: header.execution_block_hash,
                execution_timestamp: timestamp,
                header: Some(block.header.clone()),
            };
            match finalization {
                Some(finalization) => self.apply_finalization(finalization),
                None => self.publish_heads(),
            }
            metrics::gauge!("alys_chain_head_height", "head" => "head").set(head.height as f64);
            // Governance decisions whose first block this is: logged once, as a height is the head once.
            self.config.runtime.log_in_force(head.height);
            if self.range {
                // Inside a range the execution client hears the head once, after its last block.
                metrics::counter!("alys_chain_blocks_imported_total").increment(1);
                return Ok(hash);
            }
            // Then the execution client. If this fails, the committed head stands: the client is
            // brought up to it (`sync_engine`) before the next block is built on it.
            let state = self.forkchoice(header.execution_block_hash);
            let engine = self.engine.clone();
            // Crash-point tests make this call fail once (`chain::forkchoice=1*return`).
            let injected = fail::eval("chain::forkchoice", |_| EngineClientError::Rpc {
                code: -32603,
                message: "failure injected by failpoint chain::forkchoice".into(),
            });
            let result = match injected {
                Some(error) => Err(error),
                None => self.timed(engine.forkchoice_updated(state, None, timestamp)).await,
            };
            let updated = match result {
                Ok(updated) => updated,
                Err(error) => {
                    self.engine_synced = false;
                    return Err(error.into());
                }
            };
            if let PayloadStatusEnum::Invalid { validation_error } = updated.payload_status.status {
                self.engine_synced = false;
                return Err(ImportError::InvalidPayload(validation_error));
            }
        } else {
            let tx = if self.range { self.storage.write_deferred()? } else { self.storage.write()? };
            tx.put_block(&block)?;
            alys_primitives::crash_point!("chain::fork_block::before");
            tx.commit()?;
            alys_primitives::crash_point!("chain::fork_block::after");
        }
        metrics::counter!("alys_chain_blocks_imported_total").increment(1);
        Ok(hash)
    }

    /// Produces the block of `slot` if this node is its author; returns how long it took, or `None` when
    /// this node did not produce (not its slot, paused, no key, or the slot could not carry a block).
    pub async fn produce_slot(&mut self, slot: u64) -> Result<Option<ProductionTiming>, ImportError> {
        let started = std::time::Instant::now();
        self.engine_nanos.store(0, std::sync::atomic::Ordering::Relaxed);
        if !self.produce(slot).await? {
            return Ok(None);
        }
        let engine =
            std::time::Duration::from_nanos(self.engine_nanos.load(std::sync::atomic::Ordering::Relaxed));
        let consensus = started.elapsed().saturating_sub(engine);
        metrics::histogram!("alys_chain_consensus_overhead_seconds").record(consensus.as_secs_f64());
        Ok(Some(ProductionTiming { consensus, engine }))
    }

    /// Produces the block of `slot` if this node is its author; `Ok(false)` when it did not.
    async fn produce(&mut self, slot: u64) -> Result<bool, ImportError> {
        let Some(index) = self.my_index() else { return Ok(false) };
        if self.aura.author_of(slot) != index {
            return Ok(false);
        }
        if self.paused {
            metrics::counter!("alys_chain_slots_skipped_total", "reason" => "operator_pause").increment(1);
            return Ok(false);
        }
        let height = self.head.block.height + 1;
        if self.config.runtime.state_at(height).production_paused {
            metrics::counter!("alys_chain_slots_skipped_total", "reason" => "governance_pause").increment(1);
            tracing::debug!(target: "alys::chain", slot, height, "block production paused by governance");
            return Ok(false);
        }
        let Some(key) = self.key.clone() else { return Ok(false) };
        let need = Aura::required_approvals(self.aura.authorities().len());
        if need > 1 && self.events.is_none() {
            // Approvals from other authorities arrive over the network, and this node has none.
            metrics::counter!("alys_chain_slots_skipped_total", "reason" => "no_network").increment(1);
            return Ok(false);
        }
        let timestamp = self.aura.slot_start_ms(slot) / 1_000;
        if timestamp <= self.head.execution_timestamp
            || slot <= self.head.header.as_ref().map_or(0, |h| h.slot)
        {
            metrics::counter!("alys_chain_slots_skipped_total", "reason" => "timestamp").increment(1);
            return Ok(false);
        }
        if let Some((voted, voted_slot)) = self.last_vote
            && height <= voted
            && slot < voted_slot.saturating_add(2)
        {
            // This node approved another block of this height a moment ago: a second one could fork.
            metrics::counter!("alys_chain_slots_skipped_total", "reason" => "voted").increment(1);
            return Ok(false);
        }
        if let Some(reason) = self.production_stopped() {
            metrics::counter!("alys_chain_slots_skipped_total", "reason" => "no_auxpow").increment(1);
            tracing::warn!(target: "alys::chain", slot, %reason, "not producing");
            return Ok(false);
        }
        if !self.engine_synced {
            self.sync_engine().await?;
        }
        let parent_hash = self.head.block.hash;
        let proof = self.includable_proof();
        let claims = self.pegins.select(&self.storage.read()?, height, self.head.block)?;
        if !claims.is_empty() {
            metrics::counter!(alys_bridge::pegin::metrics::CLAIMED).increment(claims.len() as u64);
            alys_primitives::crash_point!("pegin::claim");
        }
        let mut withdrawals = pegin_withdrawals(&claims);
        let pegout = match &self.pegouts {
            Some(rules) => rules.propose(&self.storage.read()?, height, self.head.block)?,
            None => None,
        };
        if let Some(pegout) = &pegout {
            metrics::counter!(alys_bridge::pegout::rules::PROPOSED).increment(1);
            alys_primitives::crash_point!("pegout::propose");
            withdrawals.extend(refund_withdrawals(&pegout.refunds, withdrawals.len() as u64));
        }
        if let Some(proof) = &proof {
            withdrawals.extend(self.reward_for(proof, withdrawals.len())?);
        }
        let spec = self.engine.chain_spec();
        let cancun = spec.is_active_at(Fork::Cancun, timestamp);
        let attributes = PayloadAttributes {
            timestamp,
            prev_randao: parent_hash,
            suggested_fee_recipient: self.config.fee_recipient,
            withdrawals: Some(withdrawals),
            parent_beacon_block_root: cancun.then_some(parent_hash),
            ..Default::default()
        };
        let state = self.forkchoice(self.head.execution_hash);
        let engine = self.engine.clone();
        let updated = self
            .timed(engine.forkchoice_updated(state, Some(attributes), self.head.execution_timestamp))
            .await?;
        let Some(id) = updated.payload_id else {
            self.engine_synced = false;
            return Err(ImportError::InvalidPayload(format!(
                "no payload started: {:?}",
                updated.payload_status
            )));
        };
        let built = self.timed(self.engine.get_payload(id, timestamp)).await?;
        let execution_hash = built.payload.block_hash();
        let requests = built.execution_requests;
        let execution =
            payload_to_block(built.payload.clone(), cancun.then_some(parent_hash), requests.as_ref())?;
        let parent_seal = match &self.head.header {
            Some(_) => self
                .storage
                .read()?
                .block(&self.head.block.hash)?
                .map(|parent| parent.seal())
                .ok_or(ImportError::UnknownParent(self.head.block.hash))?,
            None => Seal::default(),
        };
        let header = ConsensusHeader {
            parent_hash,
            parent_seal,
            height: self.head.block.height + 1,
            slot,
            author: index,
            execution_block_hash: execution_hash,
            pegins: claims,
            auxpow: proof.as_ref().map(AuxPowHeader::encoded).unwrap_or_default(),
            pegout: pegout.map(|p| p.block),
        };
        let hash = header.hash();
        let signature = key.sign(&hash);
        let approval = BlsSignature::aggregate(&[&signature]).map_err(AuraError::ApprovalSignature)?;
        let block = SignedBlock {
            header,
            execution_block: encode_execution_block(&execution),
            execution_requests: requests.map(|r| r.take()).unwrap_or_default(),
            author_signature: signature.to_bytes().to_vec().into(),
            approvals: Approvals {
                signers: Approvals::bitfield([index]),
                signature: approval.to_bytes().to_vec().into(),
            },
        };
        // Our own block: its signatures were made just now, so only the execution side is checked.
        if self.equivocations.observe(slot, index, hash).is_err() {
            return Err(ImportError::Equivocation { slot, author: index });
        }
        self.seen_headers.put((slot, index), (block.header.clone(), block.author_signature.clone()));
        let execution = Execution { block: execution, payload: Some(built.payload) };
        if need > 1 {
            // Other authorities approve it first: it is executed (the execution client holds it) and
            // gossiped; the commit waits for `need` approvals (`ChainMessage::Approval`).
            let executed = self.execute(&block, execution).await?;
            // Equivocation tests arm this (`FAILPOINTS=chain::equivocate=return`) to make an authority
            // sign a second, different block for its slot and gossip it after the first.
            let twin = fail::eval("chain::equivocate", |_| {
                let mut header = block.header.clone();
                header.execution_block_hash = alloy_primitives::keccak256(header.execution_block_hash);
                let signature = key.sign(&header.hash());
                SignedBlock {
                    header,
                    author_signature: signature.to_bytes().to_vec().into(),
                    ..block.clone()
                }
            });
            self.propose(block, hash, signature, executed);
            if let Some(twin) = twin {
                tracing::warn!(target: "alys::chain", slot, "failpoint chain::equivocate: gossiping a second block");
                self.emit(ChainEvent::Proposed(Box::new(twin)));
            }
            return Ok(true);
        }
        self.apply(block.clone(), hash, execution).await?;
        self.emit(ChainEvent::Block(Box::new(block)));
        metrics::counter!("alys_chain_blocks_produced_total").increment(1);
        let finalized = self.heads.borrow().finalized.map_or(0, |f| f.height);
        let pegins = self.head.header.as_ref().map_or(0, |h| h.pegins.len());
        tracing::info!(target: "alys::chain", height = self.head.block.height, slot, consensus_hash = %hash,
            execution_hash = %execution_hash, finalized, pegins, "produced block");
        Ok(true)
    }
}

impl Actor for ChainActor {
    type Message = ChainMessage;
    const NAME: &'static str = "chain";

    async fn handle(&mut self, message: ChainMessage) -> Result<(), ActorError> {
        // Crash-point tests make the handler fail here (`chain::handle=panic`): the supervisor's path.
        fail::fail_point!("chain::handle");
        match message {
            ChainMessage::Tick { slot } => {
                self.expire_pending(slot);
                let result = self.produce_slot(slot).await;
                // Whether the execution client answered its last call, whoever made it (production,
                // imports, sync): an authority between its slots and a full node know it too.
                self.engine_online = self.engine.stats().online();
                if let Err(error) = result {
                    metrics::counter!("alys_chain_production_errors_total").increment(1);
                    tracing::warn!(target: "alys::chain", slot, %error, "block production failed");
                    if matches!(error, ImportError::Engine(_)) {
                        self.engine_synced = false;
                    }
                }
            }
            ChainMessage::Import(block, reply) => {
                let result = self.import(*block).await;
                if let Err(error) = &result {
                    tracing::debug!(target: "alys::chain", %error, "block refused");
                }
                let _ = reply.send(result);
            }
            ChainMessage::Status(reply) => {
                let _ = reply.send(self.status());
            }
            ChainMessage::CreateAuxBlock(miner, reply) => {
                let _ = reply.send(self.create_aux_block(miner));
            }
            ChainMessage::SubmitAuxBlock(hash, proof, reply) => {
                let result = self.submit_aux_block(hash, proof);
                if matches!(result, Ok(true))
                    && let Some(queued) = &self.mining.queued
                {
                    self.emit(ChainEvent::Proof(queued.encoded()));
                }
                let _ = reply.send(result);
            }
            ChainMessage::ImportRange(blocks, reply) => {
                let _ = reply.send(self.import_range(blocks).await);
            }
            ChainMessage::Proposal(block, reply) => {
                let _ = reply.send(self.on_proposal(*block).await);
            }
            ChainMessage::Approval(approval, reply) => {
                let _ = reply.send(self.on_approval(approval).await);
            }
            ChainMessage::Evidence(evidence, reply) => {
                let _ = reply.send(self.on_evidence(*evidence));
            }
            ChainMessage::GossipProof(proof, reply) => {
                let _ = reply.send(self.on_gossip_proof(&proof));
            }
            ChainMessage::SetPaused(paused, reply) => {
                // Saved first: an operator's pause holds across restarts.
                let saved = self.storage.write().and_then(|tx| {
                    tx.set_production_paused(paused)?;
                    tx.commit()
                });
                match saved {
                    Ok(()) => {
                        self.paused = paused;
                        metrics::gauge!("alys_chain_production_paused").set(if paused { 1.0 } else { 0.0 });
                        tracing::info!(target: "alys::chain", paused, "block production {}", if paused { "paused" } else { "resumed" });
                        let _ = reply.send(Ok(()));
                    }
                    Err(error) => {
                        tracing::error!(target: "alys::chain", %error, "cannot save the production pause");
                        let _ = reply.send(Err(error));
                    }
                }
            }
        }
        Ok(())
    }
}

/// `newPayload` for a block whose execution part is decoded: the call the actor makes, and the one a
/// range import makes ahead of it.
pub(crate) async fn new_payload(
    engine: &EngineClient,
    block: &SignedBlock,
    execution: Execution,
) -> Result<alloy_rpc_types_engine::PayloadStatus, EngineClientError> {
    new_payload_call(engine, block, execution).await
}

/// [`new_payload`] as a future that owns what it sends (the block's parts are copied out first), for
/// calls that run as tasks of their own.
pub(crate) fn new_payload_call(
    engine: &EngineClient,
    block: &SignedBlock,
    execution: Execution,
) -> impl Future<Output = Result<alloy_rpc_types_engine::PayloadStatus, EngineClientError>> + Send + 'static {
    let timestamp = execution.block.header.timestamp;
    let spec = engine.chain_spec();
    let root = spec.is_active_at(Fork::Cancun, timestamp).then_some(block.header.parent_hash);
    let requests = spec.is_active_at(Fork::Prague, timestamp).then(|| requests_of(block));
    let hashes = versioned_hashes(&execution.block);
    let payload = match execution.payload {
        Some(payload) => payload,
        None => block_to_payload(block.header.execution_block_hash, &execution.block),
    };
    let engine = engine.clone();
    async move { engine.new_payload(payload, root, hashes, requests).await }
}

/// What the execution client's answer to a block's `newPayload` means for its import.
pub(crate) fn payload_outcome(
    block: &SignedBlock,
    status: alloy_rpc_types_engine::PayloadStatus,
) -> Result<(), ImportError> {
    match status.status {
        PayloadStatusEnum::Valid | PayloadStatusEnum::Accepted => Ok(()),
        PayloadStatusEnum::Invalid { validation_error } => Err(ImportError::InvalidPayload(validation_error)),
        PayloadStatusEnum::Syncing => Err(ImportError::UnknownParent(block.header.parent_hash)),
    }
}

/// Sends a [`ChainMessage::Tick`] at the start of every slot until the chain actor stops.
pub async fn run_slot_clock(chain: alys_actor::Handle<ChainMessage>, slot_duration_ms: u64) {
    let duration = slot_duration_ms.max(1);
    loop {
        let now = now_ms();
        let next = (now / duration + 1) * duration;
        tokio::time::sleep(std::time::Duration::from_millis(next - now)).await;
        if chain.send(ChainMessage::Tick { slot: next / duration }).await.is_err() {
            return;
        }
    }
}
