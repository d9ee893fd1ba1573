//! Importing a range of blocks fetched from a peer (sync), as fast as the execution client allows.
//!
//! Each block from a peer costs three kinds of work: BLS verification of its author signature and
//! approvals (the sidecar's CPU), `newPayload` (the execution client), and the chain's own checks and
//! storage (the actor). Done one after another for each block, the execution client would idle while
//! the sidecar verifies and stores. A range is imported as a three-stage pipeline instead:
//!
//! ```text
//!  verify (blocking thread)      execute ahead (task)            import (the actor, in order)
//!  the last block's quorum  ──▶  newPayload of each verified ──▶ Aura rules, parent, withdrawals,
//!  vouches for the range         block, two calls in flight      peg-ins, peg-outs, proof; storage
//! ```
//!
//! BLS costs one quorum per range, not one per block: every header commits to its parent's seal (author
//! signature and approvals), which every honest approver checked, so the last block's verified quorum
//! vouches for each block it descends from by parent hashes, seals included. The seals stored are the
//! ones the headers commit to, not the copies the peer sent beside the blocks. A range whose last block
//! does not verify, or the blocks before a broken link, are verified block by block (in batches).
//!
//! The execution client validates block n+1 while the actor checks and stores block n, so it does not
//! wait for the sidecar; and block n+2's call already waits at the execution client while it validates
//! n+1, so it does not wait for a round trip either. The execution client still validates one block
//! after another. A call that overtakes its parent's is told the parent is unknown; it is sent again
//! once the parent is valid, and so are the calls sent after it.
//!
//! Only blocks whose signatures verified are sent ahead, and sending stops at the first block the
//! execution client does not find valid (an answer already on its way for the block after it is
//! dropped). A block sent ahead that the actor then refuses was only validated by the execution
//! client, never made canonical: the execution client hears the head once, after the range
//! (`forkchoiceUpdated`), and it is the head the actor committed. The actor takes each answer from the
//! pipeline instead of asking again and reads it exactly as its own call's
//! ([`crate::actor::payload_outcome`]).
//!
//! Commits inside a range are deferred and made durable together at the end: a crash in between rolls
//! back to before the range, which sync fetches again.

use std::collections::VecDeque;

use alloy_primitives::{B256, Bytes};
use alloy_rpc_types_engine::{PayloadStatus, PayloadStatusEnum};
use alys_consensus::decode_execution_block;
use alys_engine_client::{EngineClient, EngineClientError};
use alys_primitives::{Approvals, ConsensusHeader, Seal, SignedBlock};
use tokio::sync::{mpsc, oneshot};

use crate::{
    ChainActor, ImportError,
    actor::{AheadStatus, RangeOutcome, new_payload, new_payload_call},
    execution::Execution,
};

/// Blocks verified in the first batch of a range: few, so that execution starts early.
const FIRST_BATCH: usize = 4;
/// Blocks verified per batch after the first (one multi-pairing each).
const BATCH: usize = 16;

/// `newPayload` calls a range keeps in flight: the execution client finds the next block waiting
/// when it is done with one, instead of idling for a round trip and the sidecar's turn (on the
/// devnet's engine, 1.6 times the rate of one call at a time: `cargo bench --bench federation`).
const IN_FLIGHT: usize = 2;

/// What the execution stage of a range did (for the "imported range" log line).
#[derive(Debug, Default)]
struct Stages {
    /// Time spent waiting for `newPayload` answers.
    engine: std::time::Duration,
    /// Time spent waiting for verification.
    starved: std::time::Duration,
    /// Calls sent again because they reached the execution client before their parent's.
    resent: u64,
}

/// A `newPayload` call running as a task of its own; dropping it cancels the call.
#[derive(Debug)]
struct Call(tokio::task::JoinHandle<Result<PayloadStatus, EngineClientError>>);

impl Call {
    /// Starts `block`'s call; `None` when its execution part does not decode (the import says why).
    fn start(engine: &EngineClient, block: &SignedBlock) -> Option<Self> {
        let execution = Execution { block: decode_execution_block(block).ok()?, payload: None };
        Some(Self(tokio::spawn(new_payload_call(engine, block, execution))))
    }

    /// The execution client's answer; `None` when the task did not finish (the import then asks).
    async fn answer(mut self) -> Option<Result<PayloadStatus, EngineClientError>> {
        (&mut self.0).await.ok()
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One block out of the first two stages, in range order.
#[derive(Debug)]
struct Ahead {
    /// The block's hash when its author signature and approvals verified (its import skips those
    /// checks); `None` when they did not (its import checks again and says why).
    verified: Option<B256>,
    /// The execution client's answer, when the block was sent ahead.
    status: Option<Result<PayloadStatus, EngineClientError>>,
}

impl ChainActor {
    /// Imports consecutive blocks fetched from a peer, in order, through the full import path (see the
    /// module docs for the pipeline), and tells the execution client the new head once.
    pub async fn import_range(&mut self, blocks: Vec<SignedBlock>) -> RangeOutcome {
        let started = std::time::Instant::now();
        let (first, count) = (blocks.first().map_or(0, |b| b.header.height), blocks.len());
        let blocks = with_vouched_seals(blocks);
        let (verified, verifier) = self.verify_ahead(&blocks);
        // Blocks are sent ahead only to an execution client known to hold our head: it is brought up
        // to date first (as the first import would), and if that fails each import tries again in
        // its turn and reports why.
        if !self.engine_synced
            && let Err(error) = self.sync_engine().await
        {
            tracing::debug!(target: "alys::chain", %error, "execution client not ready for a range");
        }
        let (mut ahead, executor) = self.execute_ahead(&blocks, verified, self.engine_synced);
        self.range = true;
        let mut imported = 0;
        let mut error = None;
        let mut waited = std::time::Duration::ZERO;
        for block in blocks {
            let height = block.header.height;
            let wait = std::time::Instant::now();
            if let Some(Ahead { verified, status }) = ahead.recv().await
                && let Some(hash) = verified
            {
                self.preverified.insert(hash);
                self.ahead = status.map(|status| AheadStatus {
                    hash,
                    status,
                    waited_nanos: u64::try_from(wait.elapsed().as_nanos()).unwrap_or(u64::MAX),
                });
            }
            waited += wait.elapsed();
            let result = Box::pin(self.import(block)).await;
            self.preverified.clear();
            self.ahead = None;
            match result {
                Ok(_) => imported += 1,
                Err(e) => {
                    error = Some((height, e));
                    break;
                }
            }
        }
        self.range = false;
        // Nothing more is sent once the import stopped; the execution client hears the head next.
        let stages = if error.is_none() {
            drop(ahead);
            let executor = executor.await.unwrap_or_default();
            Some((verifier.await.unwrap_or_default(), executor))
        } else {
            executor.abort();
            None
        };
        let finishing = std::time::Instant::now();
        if imported > 0
            && let Err(e) = self.finish_range().await
        {
            tracing::warn!(target: "alys::chain", error = %e, "finishing a range import");
            if error.is_none() {
                error = Some((self.head.block.height, e));
            }
        }
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        if let Some((verify, Stages { engine, starved, resent })) = stages {
            tracing::info!(target: "alys::chain", first, blocks = count, imported,
                ms = format!("{:.1}", ms(started.elapsed())), verify_ms = format!("{:.1}", ms(verify)),
                engine_ms = format!("{:.1}", ms(engine)), engine_starved_ms = format!("{:.1}", ms(starved)),
                resent,
                actor_waited_ms = format!("{:.1}", ms(waited)),
                finish_ms = format!("{:.1}", ms(finishing.elapsed())), "imported range");
        } else if imported > 0 {
            // Stopped at a refused block (the sync actor says which and why).
            tracing::info!(target: "alys::chain", first, blocks = count, imported,
                ms = format!("{:.1}", ms(started.elapsed())), "imported range");
        }
        RangeOutcome { imported, error }
    }

    /// Verifies the range's signatures on a thread of its own and reports each block, in order:
    /// `Some(hash)` for one whose author signature and approvals are vouched for, `None` for one whose
    /// are not. The thread reports how long it worked.
    ///
    /// The last block's author signature and quorum are verified; every block linked to it by parent
    /// hashes is then vouched for by that quorum ([`alys_consensus::Aura::vouched_from`]). Blocks before
    /// a broken link, or all of them when the last block does not verify, are verified in batches (one
    /// multi-pairing each; one by one only when a batch fails, to find which).
    fn verify_ahead(
        &self,
        blocks: &[SignedBlock],
    ) -> (mpsc::Receiver<Option<B256>>, oneshot::Receiver<std::time::Duration>) {
        let (tx, rx) = mpsc::channel(blocks.len().max(1));
        let (done, worked) = oneshot::channel();
        let aura = self.aura.clone();
        let now = (self.config.clock)();
        let items: Vec<(ConsensusHeader, Bytes, Approvals)> = blocks
            .iter()
            .map(|b| (b.header.clone(), b.author_signature.clone(), b.approvals.clone()))
            .collect();
        let verify = move || {
            let started = std::time::Instant::now();
            let range: Vec<(&ConsensusHeader, &[u8], &Approvals)> = items
                .iter()
                .map(|(header, signature, approvals)| (header, signature.as_ref(), approvals))
                .collect();
            let vouched = aura.vouched_from(&range, now);
            let (unvouched, _) = items.split_at(vouched);
            let (first, rest) = unvouched.split_at(FIRST_BATCH.min(unvouched.len()));
            'batches: for chunk in std::iter::once(first).chain(rest.chunks(BATCH)) {
                let batch: Vec<(ConsensusHeader, &[u8], &Approvals)> =
                    chunk.iter().map(|(h, s, a)| (h.clone(), s.as_ref(), a)).collect();
                let all = aura.verify_many(&batch, now).is_ok();
                for (header, signature, approvals) in chunk {
                    let hash = header.hash();
                    let ok = all
                        || (aura.verify_header(header, signature, now).is_ok()
                            && aura.verify_approvals(&hash, approvals).is_ok());
                    if tx.blocking_send(ok.then_some(hash)).is_err() {
                        break 'batches;
                    }
                }
            }
            for (header, _, _) in items.iter().skip(vouched) {
                if tx.blocking_send(Some(header.hash())).is_err() {
                    break;
                }
            }
            let _ = done.send(started.elapsed());
        };
        // Without the thread, nothing is verified ahead: each import verifies its own block.
        if let Err(error) = std::thread::Builder::new().name("alys-verify".into()).spawn(verify) {
            tracing::warn!(target: "alys::chain", %error, "cannot start the verification thread");
        }
        (rx, worked)
    }

    /// The second stage: forwards each block's verification and, while `execute`, sends each verified
    /// block's `newPayload` in order, [`IN_FLIGHT`] calls at a time, until the first that is not
    /// verified, cannot be decoded, or is not found valid (the import stops at that block; it asks
    /// again itself if it gets that far; a call already made past it is dropped).
    ///
    /// A call made while its parent's was still pending can reach the execution client first, which
    /// then does not know the parent yet (`SYNCING`, or `ACCEPTED` from geth): once the parent is
    /// found valid, it is sent again, and so are the calls that left after it (they met the same
    /// unknown parent).
    ///
    /// The task returns the time spent waiting for `newPayload` answers, the time spent waiting for
    /// verification, and the number of calls sent again.
    fn execute_ahead(
        &self,
        blocks: &[SignedBlock],
        mut verified: mpsc::Receiver<Option<B256>>,
        execute: bool,
    ) -> (mpsc::Receiver<Ahead>, tokio::task::JoinHandle<Stages>) {
        let (tx, rx) = mpsc::channel(blocks.len().max(1));
        let engine = self.engine.clone();
        let blocks = blocks.to_vec();
        let task = tokio::spawn(async move {
            let mut stages = Stages::default();
            let mut calls: VecDeque<(Option<B256>, SignedBlock, Option<Call>)> = VecDeque::new();
            let mut blocks = blocks.into_iter();
            // Whether blocks are still sent; whether the last answer taken was VALID.
            let (mut sending, mut parent_valid) = (execute, false);
            loop {
                while calls.len() < IN_FLIGHT
                    && let Some(block) = blocks.next()
                {
                    let wait = std::time::Instant::now();
                    let verified = verified.recv().await.flatten();
                    stages.starved += wait.elapsed();
                    let call =
                        (sending && verified.is_some()).then(|| Call::start(&engine, &block)).flatten();
                    sending &= call.is_some();
                    calls.push_back((verified, block, call));
                }
                let Some((verified, block, call)) = calls.pop_front() else { break };
                let wait = std::time::Instant::now();
                let mut status = match call {
                    Some(call) => call.answer().await,
                    None => None,
                };
                if parent_valid && parent_unknown(&status) {
                    stages.resent += 1;
                    if let Ok(decoded) = decode_execution_block(&block) {
                        let execution = Execution { block: decoded, payload: None };
                        status = Some(new_payload(&engine, &block, execution).await);
                    }
                    // The calls after it left while it was unknown too: they go again, now after it.
                    for (_, block, call) in &mut calls {
                        if call.is_some() {
                            *call = Call::start(&engine, block);
                        }
                    }
                }
                stages.engine += wait.elapsed();
                // Past a block not found valid nothing more is sent, and answers already on their way
                // are dropped: the import stops there.
                parent_valid = matches!(&status, Some(Ok(s)) if s.status.is_valid());
                if !parent_valid {
                    sending = false;
                    for (_, _, call) in &mut calls {
                        *call = None;
                    }
                }
                if tx.send(Ahead { verified, status }).await.is_err() {
                    break;
                }
            }
            stages
        });
        (rx, task)
    }

    /// Makes a range's deferred commits durable and tells the execution client the head.
    async fn finish_range(&mut self) -> Result<(), ImportError> {
        self.storage.write()?.commit()?;
        let state = self.forkchoice(self.head.execution_hash);
        let engine = self.engine.clone();
        let updated = engine.forkchoice_updated(state, None, self.head.execution_timestamp).await;
        match updated {
            Ok(updated) if !updated.payload_status.status.is_invalid() => Ok(()),
            Ok(updated) => {
                self.engine_synced = false;
                Err(ImportError::InvalidPayload(format!("{:?}", updated.payload_status.status)))
            }
            Err(e) => {
                self.engine_synced = false;
                Err(e.into())
            }
        }
    }
}

/// Whether an answer says the execution client did not know the block's parent when the call
/// reached it (`SYNCING`, or geth's `ACCEPTED`).
fn parent_unknown(status: &Option<Result<PayloadStatus, EngineClientError>>) -> bool {
    matches!(status, Some(Ok(s)) if matches!(s.status, PayloadStatusEnum::Syncing | PayloadStatusEnum::Accepted))
}

/// Gives each block of a range that its successor in the range extends the seal that successor's
/// header carries for it. Both are valid seals of the block when honest authorities made them, but
/// only the header's copy is vouched for by a later quorum; the peer's copy beside the block could be
/// anything. What is stored and served on is then always a seal some quorum stands behind (or one this
/// node verified itself, when the block is not vouched for).
fn with_vouched_seals(mut blocks: Vec<SignedBlock>) -> Vec<SignedBlock> {
    let mut child_seal: Option<(B256, Seal)> = None;
    for block in blocks.iter_mut().rev() {
        let hash = block.header.hash();
        if let Some((parent_hash, seal)) = child_seal.take()
            && parent_hash == hash
        {
            block.author_signature = seal.author_signature;
            block.approvals = seal.approvals;
        }
        child_seal = Some((block.header.parent_hash, block.header.parent_seal.clone()));
    }
    blocks
}
