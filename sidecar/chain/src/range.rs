//! Importing a range of blocks fetched from a peer (sync), as fast as the execution client allows.
//!
//! Each block from a peer costs three kinds of work: BLS verification of its author signature and
//! approvals (the sidecar's CPU), `newPayload` (the execution client), and the chain's own checks and
//! storage (the actor). Done one after another for each block, the execution client would idle while
//! the sidecar verifies and stores. A range is imported as a three-stage pipeline instead:
//!
//! ```text
//!  verify (blocking thread)      execute ahead (task)            import (the actor, in order)
//!  author signatures and    ──▶  newPayload of each verified ──▶ Aura rules, parent, withdrawals,
//!  approvals, in batches         block, one after another        peg-ins, peg-outs, proof; storage
//! ```
//!
//! The execution client validates block n+1 while the actor checks and stores block n, so it does not
//! wait for the sidecar. Only blocks whose signatures verified are sent ahead, and sending stops at
//! the first block the execution client does not find valid. A block sent ahead that the actor then
//! refuses was only validated by the execution client, never made canonical: the execution client
//! hears the head once, after the range (`forkchoiceUpdated`), and it is the head the actor committed.
//! The actor takes each answer from the pipeline instead of asking again and reads it exactly as its
//! own call's ([`crate::actor::payload_outcome`]).
//!
//! Commits inside a range are deferred and made durable together at the end: a crash in between rolls
//! back to before the range, which sync fetches again.

use alloy_primitives::{B256, Bytes};
use alloy_rpc_types_engine::PayloadStatus;
use alys_consensus::decode_execution_block;
use alys_engine_client::EngineClientError;
use alys_primitives::{Approvals, ConsensusHeader, SignedBlock};
use tokio::sync::{mpsc, oneshot};

use crate::{
    ChainActor, ImportError,
    actor::{AheadStatus, Execution, RangeOutcome, new_payload},
};

/// Blocks verified in the first batch of a range: few, so that execution starts early.
const FIRST_BATCH: usize = 4;
/// Blocks verified per batch after the first (one multi-pairing each).
const BATCH: usize = 16;

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
        if let Some((verify, (engine, starved))) = stages {
            tracing::info!(target: "alys::chain", first, blocks = count, imported,
                ms = format!("{:.1}", ms(started.elapsed())), verify_ms = format!("{:.1}", ms(verify)),
                engine_ms = format!("{:.1}", ms(engine)), engine_starved_ms = format!("{:.1}", ms(starved)),
                actor_waited_ms = format!("{:.1}", ms(waited)),
                finish_ms = format!("{:.1}", ms(finishing.elapsed())), "imported range");
        }
        RangeOutcome { imported, error }
    }

    /// Verifies the author signature and approvals of each block on a thread of its own, in order, in
    /// batches (one multi-pairing each): `Some(hash)` for one that verifies, `None` for one that does
    /// not (one by one only when a batch fails, to find which). The thread reports how long it worked.
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
            let (first, rest) = items.split_at(FIRST_BATCH.min(items.len()));
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
            let _ = done.send(started.elapsed());
        };
        // Without the thread, nothing is verified ahead: each import verifies its own block.
        if let Err(error) = std::thread::Builder::new().name("alys-verify".into()).spawn(verify) {
            tracing::warn!(target: "alys::chain", %error, "cannot start the verification thread");
        }
        (rx, worked)
    }

    /// The second stage: forwards each block's verification and, while `execute`, sends each verified
    /// block's `newPayload` in order, until the first that is not verified, cannot be decoded, or is
    /// not found valid (the import stops at that block; it asks again itself if it gets that far).
    /// The task returns the time spent in `newPayload` calls and the time spent waiting for
    /// verification.
    fn execute_ahead(
        &self,
        blocks: &[SignedBlock],
        mut verified: mpsc::Receiver<Option<B256>>,
        mut execute: bool,
    ) -> (mpsc::Receiver<Ahead>, tokio::task::JoinHandle<(std::time::Duration, std::time::Duration)>) {
        let (tx, rx) = mpsc::channel(blocks.len().max(1));
        let engine = self.engine.clone();
        let blocks = blocks.to_vec();
        let task = tokio::spawn(async move {
            let (mut engine_time, mut starved) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
            for block in blocks {
                let wait = std::time::Instant::now();
                let verified = verified.recv().await.flatten();
                starved += wait.elapsed();
                let mut status = None;
                if execute && verified.is_some() {
                    status = match decode_execution_block(&block) {
                        Ok(decoded) => {
                            let call = std::time::Instant::now();
                            let execution = Execution { block: decoded, payload: None };
                            let status = new_payload(&engine, &block, execution).await;
                            engine_time += call.elapsed();
                            Some(status)
                        }
                        Err(_) => None,
                    };
                }
                execute &= matches!(&status, Some(Ok(s)) if s.status.is_valid());
                if tx.send(Ahead { verified, status }).await.is_err() {
                    break;
                }
            }
            (engine_time, starved)
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
