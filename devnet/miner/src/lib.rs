//! The reference merged-mining CPU miner: `createauxblock` → grind a parent header → `submitauxblock`,
//! against any Alys node's RPC, exactly as a merged-mining pool talks to it. It links only the AuxPow
//! rules and the RPC's typed client, not the node.
//!
//! # How it mines
//!
//! A node hands out one piece of work per head: the hash that commits to every unfinalized block (and
//! the payout address), and the compact target the proof must meet. The miner grinds a parent header
//! for that hash on a blocking thread ([`alys_auxpow::pow::Grinder`]), in slices of about a poll
//! interval; between slices it asks the node for work again, which costs the node a cache lookup. When
//! the work changed (a new block arrived, or another miner's proof finalized the batch) it drops the old
//! search and starts on the new work: proof search has no memory, so nothing is lost, and the proof then
//! covers the newest blocks. It grinds for as long as it takes; the node's difficulty retarget, not a
//! try budget, decides how long that is.
//!
//! A piece of work is submitted at most once: after a proof for it, the miner waits for the node to hand
//! out different work (the block carrying the proof), instead of proving the same batch again.

use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256};
use alys_auxpow::pow::{AuxPowError, Grinder};
use alys_rpc::{
    ErrorCode, MiningApiClient,
    jsonrpsee::{
        core::ClientError,
        http_client::{HttpClient, HttpClientBuilder},
    },
    types::AuxBlock,
};

/// How often the miner asks the node whether its work changed, by default.
pub const DEFAULT_POLL: Duration = Duration::from_millis(250);

/// Headers hashed between looks at the clock: a few milliseconds of one core.
const SLICE: u32 = 4_096;

/// Pause after a failed round, so an unreachable node is not asked (or logged about) in a tight loop.
const ERROR_PAUSE: Duration = Duration::from_secs(2);

/// Why one round of mining failed.
#[derive(Debug, thiserror::Error)]
pub enum MinerError {
    /// The node's RPC failed.
    #[error("rpc: {0}")]
    Rpc(#[from] ClientError),
    /// The grinding task did not finish.
    #[error("mining task: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The node asked for a compact target that is not a valid target.
    #[error("the node's work has an invalid target")]
    Target(#[source] AuxPowError),
}

/// What one round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Round {
    /// Every block is finalized: nothing to mine yet.
    Idle,
    /// The node still hands out the work a proof was already submitted for: waiting for the block that
    /// carries it.
    Waiting,
    /// The node's work changed before a proof was found; the next round mines the new work.
    Superseded {
        /// The abandoned batch's last height.
        height: u64,
        /// Headers hashed for it.
        hashes: u64,
    },
    /// A proof for the batch ending at `height` was submitted; `accepted` is the node's answer.
    Submitted {
        /// The batch's last height.
        height: u64,
        /// Whether the node accepted the proof.
        accepted: bool,
        /// Headers hashed to find it.
        hashes: u64,
    },
}

/// A client of a node's mining RPC.
pub fn client(rpc_url: &str) -> Result<HttpClient, MinerError> {
    Ok(HttpClientBuilder::default().request_timeout(Duration::from_secs(10)).build(rpc_url)?)
}

/// A miner working for one node and one payout address.
#[derive(Debug)]
pub struct Miner {
    client: HttpClient,
    payout: Address,
    poll: Duration,
    /// The work a proof was last submitted for: never submitted again.
    submitted: Option<B256>,
}

impl Miner {
    /// A miner asking `client` for work paying `payout`, checking for new work every [`DEFAULT_POLL`].
    pub const fn new(client: HttpClient, payout: Address) -> Self {
        Self { client, payout, poll: DEFAULT_POLL, submitted: None }
    }

    /// Checks for new work every `poll` instead (at least a millisecond).
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll.max(Duration::from_millis(1));
        self
    }

    /// The node's current work, `None` when there is nothing to finalize.
    async fn work(&self) -> Result<Option<AuxBlock>, MinerError> {
        match self.client.create_aux_block(self.payout).await {
            Ok(work) => Ok(Some(work)),
            Err(ClientError::Call(e)) if e.code() == ErrorCode::Unavailable.code() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// One round: fetch the work and grind it until a proof is found (then submit it) or the node's
    /// work changes.
    pub async fn round(&mut self) -> Result<Round, MinerError> {
        let Some(work) = self.work().await? else { return Ok(Round::Idle) };
        if self.submitted == Some(work.hash) {
            return Ok(Round::Waiting);
        }
        let mut grinder = Grinder::new(work.hash, work.bits).map_err(MinerError::Target)?;
        loop {
            let slice = self.poll;
            let (returned, found) = tokio::task::spawn_blocking(move || {
                let found = grind_for(&mut grinder, slice);
                (grinder, found)
            })
            .await?;
            grinder = returned;
            if let Some(proof) = found {
                // Remembered before the answer: a proof the node received is never sent twice.
                self.submitted = Some(work.hash);
                let accepted = self.client.submit_aux_block(work.hash, proof.into()).await?;
                return Ok(Round::Submitted { height: work.height, accepted, hashes: grinder.tries() });
            }
            match self.work().await? {
                Some(current) if current.hash == work.hash => {}
                _ => return Ok(Round::Superseded { height: work.height, hashes: grinder.tries() }),
            }
        }
    }

    /// Mines until the task is dropped, logging each outcome: accepted proofs at `info`, rounds that
    /// found nothing at `debug`, failures (the node unreachable, a refused proof) at `warn`.
    pub async fn run(mut self) {
        loop {
            let started = Instant::now();
            let pause = match self.round().await {
                Ok(Round::Submitted { height, accepted: true, hashes }) => {
                    let secs = started.elapsed().as_secs_f64();
                    tracing::info!(target: "alys::miner", height, hashes, secs = format!("{secs:.1}"),
                        hash_rate = format!("{:.0}/s", hashes as f64 / secs.max(1e-3)), "proof accepted");
                    None
                }
                Ok(Round::Submitted { height, accepted: false, hashes }) => {
                    // Another miner's proof finalized the batch first, or the node restarted.
                    tracing::warn!(target: "alys::miner", height, hashes, "proof refused by the node");
                    None
                }
                Ok(Round::Superseded { height, hashes }) => {
                    tracing::debug!(target: "alys::miner", height, hashes, "new work; restarting");
                    None
                }
                Ok(Round::Waiting) => {
                    tracing::trace!(target: "alys::miner", "waiting for the block that carries the proof");
                    Some(self.poll)
                }
                Ok(Round::Idle) => {
                    tracing::debug!(target: "alys::miner", "nothing to mine");
                    Some(self.poll)
                }
                Err(error) => {
                    tracing::warn!(target: "alys::miner", %error, "mining round failed");
                    Some(ERROR_PAUSE.max(self.poll))
                }
            };
            if let Some(pause) = pause {
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// Grinds for about `budget` (whole slices), returning the first proof found.
fn grind_for(grinder: &mut Grinder, budget: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + budget;
    loop {
        if let Some(proof) = grinder.grind(SLICE) {
            return Some(proof);
        }
        if Instant::now() >= deadline {
            return None;
        }
    }
}

/// Mines for the node at `rpc_url`, paying `payout`, checking for new work every `poll`, until the task
/// is dropped (what `alys-miner` and the devnet run).
pub async fn run(rpc_url: String, payout: Address, poll: Duration) {
    match client(&rpc_url) {
        Ok(client) => Miner::new(client, payout).with_poll_interval(poll).run().await,
        Err(error) => {
            tracing::error!(target: "alys::miner", %error, url = rpc_url, "cannot build the RPC client");
        }
    }
}
