//! The payer: gets each finalized peg-out transaction signed by governance, verified, broadcast to
//! Bitcoin and followed to confirmation, once, across crashes.
//!
//! # The state machine
//!
//! ```text
//!  proposing block final ──▶ Final ──▶ Requested ──answer verified──▶ Signed ──sent──▶ Broadcast
//!                              ▲            │                                              │
//!                              └─refused────┘          Bitcoin block recorded by the       ▼
//!                                (attempt + 1)         follower (any status) ───────▶ Confirmed
//!                                                      that block undone ◀──── back to Broadcast
//! ```
//!
//! Each step of [`Payer::step`] (woken by new chain heads, and every `poll_interval`):
//!
//! 1. **Record.** Every canonical block in `(payer_height, finalized]` whose peg-out carries a
//!    transaction gets a [`PayoutRecord`] at `Final`, with the outputs it spends (from the federation's
//!    outputs in the database): one commit for the range, with the new `payer_height`
//!    (`pegout::final::*`), so a crash re-reads the range from the old height and records exist for
//!    every height below it. Recording a txid twice changes nothing.
//! 2. **Broadcast** `Signed` payouts, oldest first (a parent before the child spending its change);
//!    accepted, or already in the mempool or the chain, is `Broadcast` (`pegout::broadcast::*`). A crash
//!    before that commit sends the same transaction again after the restart, which is harmless: same
//!    txid. Missing inputs (a parent not out yet) and other refusals leave it `Signed`, retried.
//! 3. **Re-broadcast** `Broadcast` payouts that left the mempool without a confirmation the follower
//!    recorded. "Already in the chain" from bitcoind means a block the follower has not recorded, or
//!    walked before the payout was recorded (a node catching up): the block is asked of bitcoind
//!    (needs `-txindex`) and the confirmation recorded if the follower holds that block, or will never
//!    walk it.
//! 4. **Sign** `Final` and `Requested` payouts, oldest first. `Final` becomes `Requested` in a commit
//!    before governance is asked (`pegout::request::*`), so what the node reports (and finds after a
//!    crash) is a request that may be answered, never a payout nobody asked for; the request id is
//!    `pegout-<txid>-<attempt>` (the txid in display order), the same on every node and after every
//!    restart, and governance answers a repeated id with its first answer, never signing twice. A
//!    timeout or a stream error leaves it `Requested` and ends the pass (governance is away; the stream
//!    re-sends the request and keeps the answer when it comes). An answer is checked
//!    ([`apply_response`]: every signature and every input through libbitcoinconsensus); a good one
//!    makes the payout `Signed` in the commit that takes the stored answer (`pegout::signed::*`), so a
//!    crash leaves either the answer stored or the signed transaction, then it is broadcast at once.
//!    A refused one is taken in a commit that sends the payout back to `Final` under `attempt + 1`, so
//!    the next request, `retry_interval` later, has a new id (governance would repeat its first answer
//!    to the old one).
//!
//! Only the stored status decides what happens next: a payout that is `Signed` or beyond never goes
//! back to signing, and answers stored under any other id than its current one (late answers to an
//! earlier attempt, answers for a payout confirmed meanwhile) are taken and dropped.
//!
//! Confirmations are recorded by the peg-in watcher in the commit of the Bitcoin block
//! (`WriteTx::confirm_payouts`), whatever the payout's status (another node may have broadcast it; the
//! block's copy then becomes the signed transaction), and cleared in the commit that undoes that block
//! (`WriteTx::unconfirm_payouts`), after which the payout is re-broadcast. A payout is done once it
//! has `pegout_confirmations`. Every signed transaction, from governance or a block, is verified
//! against the outputs it spends before each broadcast (DESIGN invariant 4).

use std::{
    collections::HashMap,
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use alloy_primitives::B256;
use alys_bitcoin::{BitcoinClient, BitcoinError};
use alys_governance::{
    Federation, RuntimeView, SignError, apply_response, signature_request,
    store::{self, StoreError},
    stream::{StreamError, StreamHandle},
    witness::verify_transaction,
};
use alys_primitives::{BlockRef, ChainHeads};
use alys_proto::governance::v1::{SignatureRequest, SignatureResponse, TransactionType};
use alys_storage::{
    ChainRead, FederationRead, GovernanceRead, PayoutRead, PayoutRecord, PayoutStatus, PeginRead, PegoutRead,
    SpentOutput, Storage, StorageError, WriteTx, pegout_transaction,
};
use bitcoin::{Amount, BlockHash, ScriptBuf, Transaction, TxOut, Txid, hashes::Hash as _};
use tokio::sync::watch;
use tracing::Instrument as _;

use super::metrics as m;

/// At most this many consensus heights are recorded in one commit.
const RECORD_RANGE: u64 = 1_000;

/// How the payer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayerConfig {
    /// How often a step runs without new chain heads.
    pub poll_interval: Duration,
    /// Confirmations after which a payout is done.
    pub pegout_confirmations: u64,
    /// How long a payout waits after a refused answer before it is asked again, and a broadcast
    /// payout whose re-broadcast failed before it is tried again.
    pub retry_interval: Duration,
}

impl Default for PayerConfig {
    /// A step every second, 6 confirmations, 10 s between retries.
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            pegout_confirmations: 6,
            retry_interval: Duration::from_secs(10),
        }
    }
}

impl PayerConfig {
    /// Sets how often a step runs without new heads.
    pub const fn with_poll_interval(mut self, poll_interval: Duration) -> Self {
        self.poll_interval = poll_interval;
        self
    }

    /// Sets the confirmations after which a payout is done.
    pub const fn with_pegout_confirmations(mut self, confirmations: u64) -> Self {
        self.pegout_confirmations = confirmations;
        self
    }

    /// Sets the wait before a refused or failing payout is tried again.
    pub const fn with_retry_interval(mut self, retry_interval: Duration) -> Self {
        self.retry_interval = retry_interval;
        self
    }
}

/// Why a payer step failed (it is retried at the next step; nothing is lost).
#[derive(Debug, thiserror::Error)]
pub enum PayerError {
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A stored signature answer could not be taken.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A payer commit with its crash points (`alys_primitives::crash_point!`, DESIGN invariant 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayoutCommit {
    /// Final peg-out transactions recorded with the new `payer_height`.
    Final,
    /// A payout marked requested before governance is asked.
    Request,
    /// The verified signed transaction stored, the answer taken.
    Signed,
    /// Accepted by bitcoind.
    Broadcast,
}

impl PayoutCommit {
    /// Every commit, for harnesses that arm each point in turn.
    pub const ALL: [Self; 4] = [Self::Final, Self::Request, Self::Signed, Self::Broadcast];

    /// The crash points right before and right after the commit.
    pub const fn points(self) -> (&'static str, &'static str) {
        match self {
            Self::Final => ("pegout::final::before", "pegout::final::after"),
            Self::Request => ("pegout::request::before", "pegout::request::after"),
            Self::Signed => ("pegout::signed::before", "pegout::signed::after"),
            Self::Broadcast => ("pegout::broadcast::before", "pegout::broadcast::after"),
        }
    }

    /// Commits `tx` between the crash points (`crash_point!` takes a literal, hence the arms; a test
    /// checks them against [`Self::points`]).
    fn commit(self, tx: WriteTx) -> Result<(), StorageError> {
        match self {
            Self::Final => alys_primitives::crash_point!("pegout::final::before"),
            Self::Request => alys_primitives::crash_point!("pegout::request::before"),
            Self::Signed => alys_primitives::crash_point!("pegout::signed::before"),
            Self::Broadcast => alys_primitives::crash_point!("pegout::broadcast::before"),
        }
        tx.commit()?;
        match self {
            Self::Final => alys_primitives::crash_point!("pegout::final::after"),
            Self::Request => alys_primitives::crash_point!("pegout::request::after"),
            Self::Signed => alys_primitives::crash_point!("pegout::signed::after"),
            Self::Broadcast => alys_primitives::crash_point!("pegout::broadcast::after"),
        }
        Ok(())
    }
}

/// What the payer needs of the outside world: governance's signatures and the Bitcoin node. [`run`]
/// uses the governance stream and bitcoind ([`Live`]); tests use stand-ins.
pub trait PayerIo: Send + Sync {
    /// Asks governance to sign under `id` ([`StreamHandle::request_signatures_with_id`]).
    fn request_signatures(
        &self,
        id: String,
        request: SignatureRequest,
    ) -> impl Future<Output = Result<SignatureResponse, StreamError>> + Send;

    /// `sendrawtransaction`.
    fn send_transaction(&self, tx: Transaction) -> impl Future<Output = Result<Txid, BitcoinError>> + Send;

    /// Whether bitcoind's mempool holds `txid`.
    fn in_mempool(&self, txid: Txid) -> impl Future<Output = Result<bool, BitcoinError>> + Send;

    /// The best-chain block (height, hash) holding `txid`, if bitcoind can tell.
    fn locate(
        &self,
        txid: Txid,
    ) -> impl Future<Output = Result<Option<(u64, BlockHash)>, BitcoinError>> + Send;
}

/// The governance stream and bitcoind.
#[derive(Debug, Clone)]
pub struct Live {
    /// The governance stream.
    pub stream: StreamHandle,
    /// The node's bitcoind.
    pub bitcoin: BitcoinClient,
}

impl PayerIo for Live {
    async fn request_signatures(
        &self,
        id: String,
        request: SignatureRequest,
    ) -> Result<SignatureResponse, StreamError> {
        self.stream.request_signatures_with_id(id, request).await
    }

    async fn send_transaction(&self, tx: Transaction) -> Result<Txid, BitcoinError> {
        self.bitcoin.send_transaction(tx).await
    }

    async fn in_mempool(&self, txid: Txid) -> Result<bool, BitcoinError> {
        self.bitcoin.mempool_entry(txid).await
    }

    async fn locate(&self, txid: Txid) -> Result<Option<(u64, BlockHash)>, BitcoinError> {
        let Some(hash) = self.bitcoin.transaction_block(txid).await? else { return Ok(None) };
        let header = self.bitcoin.header_info(hash).await?;
        Ok(header.filter(|h| h.confirmations > 0).map(|h| (h.height, hash)))
    }
}

/// The signature request id of a payout's attempt: the same on every node and after every restart.
pub fn request_id(txid: &B256, attempt: u32) -> String {
    format!("pegout-{}-{attempt}", Txid::from_byte_array(txid.0))
}

/// The payout and attempt a [`request_id`] names.
pub fn parse_request_id(id: &str) -> Option<(B256, u32)> {
    let (txid, attempt) = id.strip_prefix("pegout-")?.rsplit_once('-')?;
    Some((B256::from(txid.parse::<Txid>().ok()?.to_byte_array()), attempt.parse().ok()?))
}

/// A payout's status name and confirmations with the followed Bitcoin tip at `bitcoin_tip`, for RPC.
pub const fn status_of(record: &PayoutRecord, bitcoin_tip: u64) -> (&'static str, u64) {
    (record.status.as_str(), record.confirmations(bitcoin_tip))
}

/// Runs the payer until the chain stops publishing heads; a failed step is logged and retried.
pub async fn run(
    storage: Arc<Storage>,
    stream: StreamHandle,
    bitcoin: BitcoinClient,
    heads: watch::Receiver<ChainHeads>,
    runtime: RuntimeView,
    config: PayerConfig,
) -> Result<(), PayerError> {
    Payer::new(storage, Live { stream, bitcoin }, runtime, config).run(heads).await
}

/// The payer over a database and an outside world (module docs).
#[derive(Debug)]
pub struct Payer<Io> {
    storage: Arc<Storage>,
    io: Io,
    runtime: RuntimeView,
    config: PayerConfig,
    /// When this process first asked under each request id (signature latency).
    asked: HashMap<String, Instant>,
    /// Payouts not tried again before a time (after a refused answer or a failed re-broadcast).
    not_before: HashMap<B256, Instant>,
}

fn spent_outputs(record: &PayoutRecord) -> Vec<TxOut> {
    let out = |o: &SpentOutput| TxOut {
        value: Amount::from_sat(o.amount_sats),
        script_pubkey: ScriptBuf::from_bytes(o.script_pubkey.to_vec()),
    };
    record.spent.iter().map(out).collect()
}

fn display(txid: &B256) -> Txid {
    Txid::from_byte_array(txid.0)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Applies `change` to the stored record of `txid` when it returns `true`; returns the new record.
fn update(
    tx: &WriteTx,
    txid: &B256,
    change: impl FnOnce(&mut PayoutRecord) -> bool,
) -> Result<Option<PayoutRecord>, StorageError> {
    let Some(mut record) = tx.payout(txid)? else { return Ok(None) };
    if !change(&mut record) {
        return Ok(None);
    }
    tx.put_payout(&record)?;
    Ok(Some(record))
}

/// `metrics` label of a refused answer.
const fn refusal(error: &SignError) -> &'static str {
    match error {
        SignError::Stream(_) => "stream",
        SignError::Declined(_) => "declined",
        SignError::BadRequest(_) => "bad_request",
        SignError::InsufficientSignatures { .. } => "insufficient_signatures",
        SignError::BadWitness(_) => "bad_witness",
    }
}

impl<Io: PayerIo> Payer<Io> {
    /// A payer over `storage`, reaching governance and bitcoind through `io`, finding federations in
    /// `runtime`.
    pub fn new(storage: Arc<Storage>, io: Io, runtime: RuntimeView, config: PayerConfig) -> Self {
        Self { storage, io, runtime, config, asked: HashMap::new(), not_before: HashMap::new() }
    }

    /// Steps until `heads` closes: at each new head and every `poll_interval`.
    pub async fn run(mut self, mut heads: watch::Receiver<ChainHeads>) -> Result<(), PayerError> {
        loop {
            let span = tracing::debug_span!(target: "alys::pegout", "payer_step");
            if let Err(error) = self.step().instrument(span).await {
                metrics::counter!(m::PAYER_ERRORS).increment(1);
                tracing::error!(target: "alys::pegout", %error, "peg-out payer step failed; retrying");
            }
            tokio::select! {
                changed = heads.changed() => if changed.is_err() { return Ok(()) },
                () = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
    }

    /// One step (module docs): record, broadcast, re-broadcast, sign, then the gauges.
    pub async fn step(&mut self) -> Result<(), PayerError> {
        let now = Instant::now();
        self.not_before.retain(|_, at| *at > now);
        self.record_final()?;
        self.drop_stale_answers()?;
        let signed = self.storage.read()?.payouts_with_status(PayoutStatus::Signed)?;
        for record in signed {
            let span = tracing::info_span!(target: "alys::pegout", "payout_broadcast", txid = %display(&record.txid));
            self.broadcast(record).instrument(span).await?;
        }
        let mut broadcast = self.storage.read()?.payouts_with_status(PayoutStatus::Broadcast)?;
        broadcast.retain(|r| self.ready(&r.txid));
        for record in broadcast {
            let span =
                tracing::info_span!(target: "alys::pegout", "payout_recheck", txid = %display(&record.txid));
            if !self.recheck(record).instrument(span).await? {
                break;
            }
        }
        let mut waiting = self.storage.read()?.payouts_with_status(PayoutStatus::Final)?;
        waiting.extend(self.storage.read()?.payouts_with_status(PayoutStatus::Requested)?);
        waiting.sort_by_key(|r| (r.block_height, r.txid));
        waiting.retain(|r| self.ready(&r.txid));
        for record in waiting {
            let span = tracing::info_span!(target: "alys::pegout", "payout_sign", txid = %display(&record.txid), attempt = record.attempt);
            if !self.sign(record).instrument(span).await? {
                break;
            }
        }
        self.update_gauges()?;
        Ok(())
    }

    fn ready(&self, txid: &B256) -> bool {
        self.not_before.get(txid).is_none_or(|at| Instant::now() >= *at)
    }

    fn back_off(&mut self, txid: B256) {
        if let Some(at) = Instant::now().checked_add(self.config.retry_interval) {
            self.not_before.insert(txid, at);
        }
    }

    /// Records the peg-out transactions of final blocks above `payer_height`, in one commit.
    fn record_final(&self) -> Result<(), PayerError> {
        let read = self.storage.read()?;
        let Some(finalized) = read.finalized()? else { return Ok(()) };
        let from = read.payer_height()?.saturating_add(1);
        let mut to = finalized.height.min(from.saturating_add(RECORD_RANGE - 1));
        let mut records = Vec::new();
        let mut replaced_txids = Vec::new();
        'blocks: for height in from..=to {
            let block = match read.canonical_hash(height)? {
                Some(hash) => read.block(&hash)?.map(|b| (hash, b)),
                None => None,
            };
            let Some((hash, block)) = block else {
                to = height.saturating_sub(1);
                break;
            };
            let tx = match pegout_transaction(&block.header) {
                Ok(Some(tx)) => tx,
                Ok(None) => continue,
                Err(error) => {
                    // Imported blocks were checked; this one can never be paid by this node.
                    tracing::error!(target: "alys::pegout", height, %error, "final peg-out transaction does not decode; skipped");
                    continue;
                }
            };
            let mut spent = Vec::with_capacity(tx.input.len());
            for input in &tx.input {
                let prev = B256::from(input.previous_output.txid.to_byte_array());
                let Some(output) = read.federation_output(&prev, input.previous_output.vout)? else {
                    // The block was imported against these outputs: wait rather than skip a payout.
                    tracing::error!(target: "alys::pegout", height, input = %input.previous_output,
                        "a final peg-out spends an output the database does not hold; waiting");
                    to = height.saturating_sub(1);
                    break 'blocks;
                };
                spent.push(SpentOutput {
                    amount_sats: output.amount_sats,
                    script_pubkey: output.script_pubkey,
                });
            }
            let txid = B256::from(tx.compute_txid().to_byte_array());
            // A fee bump: the transaction it replaces is not to be sent any more.
            if let Some(replaced) = block.header.pegout.as_ref().and_then(|p| p.replaces)
                && let Some(old) = read.block(&replaced)?
                && let Ok(Some(old)) = pegout_transaction(&old.header)
            {
                replaced_txids.push(B256::from(old.compute_txid().to_byte_array()));
            }
            let unsigned = block.header.pegout.map(|p| p.tx).unwrap_or_default();
            records.push(PayoutRecord::new(txid, BlockRef::new(height, hash), unsigned, spent, unix_now()));
        }
        drop(read);
        if to < from {
            return Ok(());
        }
        // Final blocks without a peg-out only move the cursor: that commit skips the fsync (durable with
        // the next durable commit of anyone; a crash before that scans the same blocks again and finds
        // nothing again). A sync moves finality thousands of times in a row.
        let tx = if records.is_empty() && replaced_txids.is_empty() {
            self.storage.write_deferred()?
        } else {
            self.storage.write()?
        };
        for record in &records {
            tx.insert_payout(record)?;
        }
        for txid in &replaced_txids {
            if let Some(mut old) = tx.payout(txid)?
                && old.status != PayoutStatus::Confirmed
            {
                old.status = PayoutStatus::Replaced;
                tx.put_payout(&old)?;
            }
        }
        tx.set_payer_height(to)?;
        if records.is_empty() {
            tx.commit()?
        } else {
            PayoutCommit::Final.commit(tx)?
        }
        metrics::gauge!(m::PAYER_HEIGHT).set(to as f64);
        for record in &records {
            tracing::info!(target: "alys::pegout", txid = %display(&record.txid), height = record.block_height,
                inputs = record.spent.len(), "peg-out transaction final; to be signed");
        }
        Ok(())
    }

    /// Takes answers stored under a `pegout-` id that is not a payout's current request.
    fn drop_stale_answers(&self) -> Result<(), PayerError> {
        let read = self.storage.read()?;
        let mut stale = Vec::new();
        for (id, _) in read.signature_responses()? {
            let Some((txid, attempt)) = parse_request_id(&id) else { continue };
            let current = read.payout(&txid)?;
            if current.is_none_or(|r| r.attempt != attempt || !r.status.needs_signatures()) {
                stale.push(id);
            }
        }
        drop(read);
        if stale.is_empty() {
            return Ok(());
        }
        let tx = self.storage.write()?;
        for id in &stale {
            tx.take_signature_response(id)?;
        }
        tx.commit()?;
        for id in stale {
            tracing::info!(target: "alys::pegout", request_id = %id, "late signature answer dropped: not the payout's current request");
        }
        Ok(())
    }

    /// Records `error` as the payout's last error (a commit only when it changed).
    fn note_error(&self, record: &PayoutRecord, error: String) -> Result<(), PayerError> {
        if record.last_error == error {
            tracing::debug!(target: "alys::pegout", %error, "still failing");
            return Ok(());
        }
        tracing::warn!(target: "alys::pegout", %error, status = record.status.as_str(), "peg-out payout held up");
        let tx = self.storage.write()?;
        update(&tx, &record.txid, |r| {
            r.last_error = error;
            true
        })?;
        tx.commit()?;
        Ok(())
    }

    fn federation_of(&self, spent: &[TxOut]) -> Option<Federation> {
        let script = &spent.first()?.script_pubkey;
        self.runtime.federations().into_iter().find(|f| f.address.script_pubkey() == *script)
    }

    /// The payout's transaction, spent outputs, federation and signature request, or why not.
    fn prepare(
        &self,
        record: &PayoutRecord,
    ) -> Result<(Transaction, Vec<TxOut>, Federation, SignatureRequest), String> {
        let tx: Transaction = bitcoin::consensus::deserialize(&record.unsigned_tx)
            .map_err(|e| format!("stored unsigned transaction does not decode: {e}"))?;
        let spent = spent_outputs(record);
        let federation =
            self.federation_of(&spent).ok_or("no known federation holds the outputs it spends")?;
        let request = signature_request(&tx, &spent, &federation, TransactionType::Pegout)
            .map_err(|e| e.to_string())?;
        Ok((tx, spent, federation, request))
    }

    /// Asks for the payout's signatures and stores the verified transaction; `false` when governance
    /// did not answer (the pass ends).
    async fn sign(&mut self, mut record: PayoutRecord) -> Result<bool, PayerError> {
        let (tx, spent, federation, request) = match self.prepare(&record) {
            Ok(prepared) => prepared,
            Err(error) => {
                self.note_error(&record, error)?;
                return Ok(true);
            }
        };
        let id = request_id(&record.txid, record.attempt);
        if record.status == PayoutStatus::Final {
            let tx = self.storage.write()?;
            let attempt = record.attempt;
            let marked = update(&tx, &record.txid, |r| {
                let unchanged = r.status == PayoutStatus::Final && r.attempt == attempt;
                r.status = PayoutStatus::Requested;
                unchanged
            })?;
            let Some(marked) = marked else { return Ok(true) };
            PayoutCommit::Request.commit(tx)?;
            record = marked;
        }
        self.asked.entry(id.clone()).or_insert_with(Instant::now);
        let response = match self.io.request_signatures(id.clone(), request).await {
            Ok(response) => response,
            Err(StreamError::Store(StoreError::CorruptResponse { source, .. })) => {
                self.refused(&record, &id, format!("stored answer does not decode: {source}"), "corrupt")?;
                return Ok(true);
            }
            Err(error) => {
                tracing::warn!(target: "alys::pegout", request_id = %id, %error, "no signatures from governance yet; asking again later");
                return Ok(false);
            }
        };
        let signed = match apply_response(&tx, &spent, &federation, &response) {
            Ok(signed) => signed,
            Err(error) => {
                self.refused(&record, &id, error.to_string(), refusal(&error))?;
                return Ok(true);
            }
        };
        let bytes = bitcoin::consensus::serialize(&signed);
        let tx = self.storage.write()?;
        store::take_signature_response(&tx, &id)?;
        let attempt = record.attempt;
        let stored = update(&tx, &record.txid, |r| {
            // Confirmed meanwhile (another node broadcast it): the answer is taken, nothing else.
            if !r.status.needs_signatures() || r.attempt != attempt {
                return false;
            }
            r.status = PayoutStatus::Signed;
            r.signed_tx = bytes.into();
            r.signed_secs = unix_now();
            r.last_error.clear();
            true
        })?;
        PayoutCommit::Signed.commit(tx)?;
        if let Some(asked) = self.asked.remove(&id) {
            metrics::histogram!(m::SIGNATURE_SECONDS).record(asked.elapsed().as_secs_f64());
        }
        if let Some(stored) = stored {
            tracing::info!(target: "alys::pegout", request_id = %id, "peg-out signatures verified");
            self.broadcast(stored).await?;
        }
        Ok(true)
    }

    /// Governance's answer under `id` was refused: take it, and ask again under the next attempt.
    fn refused(
        &mut self,
        record: &PayoutRecord,
        id: &str,
        error: String,
        reason: &'static str,
    ) -> Result<(), PayerError> {
        metrics::counter!(m::BAD_ANSWERS, "reason" => reason).increment(1);
        tracing::warn!(target: "alys::pegout", request_id = %id, %error, "signature answer refused; asking again under a new id");
        let tx = self.storage.write()?;
        tx.take_signature_response(id)?;
        let attempt = record.attempt;
        update(&tx, &record.txid, |r| {
            if !r.status.needs_signatures() || r.attempt != attempt {
                return false;
            }
            r.status = PayoutStatus::Final;
            r.attempt = attempt.saturating_add(1);
            r.last_error = error;
            true
        })?;
        tx.commit()?;
        self.asked.remove(id);
        self.back_off(record.txid);
        Ok(())
    }

    /// The payout's signed transaction, checked: it decodes, is the payout's, and every input verifies
    /// against the output it spends. `None` (and the reason noted) otherwise.
    fn verified(&self, record: &PayoutRecord) -> Result<Option<Transaction>, PayerError> {
        let checked = bitcoin::consensus::deserialize::<Transaction>(&record.signed_tx)
            .map_err(|e| format!("stored signed transaction does not decode: {e}"))
            .and_then(|tx| match tx.compute_txid().to_byte_array() == record.txid.0 {
                true => Ok(tx),
                false => Err("stored signed transaction is another transaction".to_owned()),
            })
            .and_then(|tx| match verify_transaction(&tx, &spent_outputs(record)) {
                Ok(()) => Ok(tx),
                Err(error) => Err(format!("stored signed transaction does not verify: {error}")),
            });
        match checked {
            Ok(tx) => Ok(Some(tx)),
            Err(error) => {
                tracing::error!(target: "alys::pegout", %error, "not broadcast");
                self.note_error(record, error)?;
                Ok(None)
            }
        }
    }

    /// Sends a signed payout; accepted or already there makes it `Broadcast`.
    async fn broadcast(&self, record: PayoutRecord) -> Result<(), PayerError> {
        let Some(signed) = self.verified(&record)? else { return Ok(()) };
        match self.io.send_transaction(signed).await {
            Ok(_) => {}
            Err(error) if error.is_already_in_mempool() || error.is_already_in_chain() => {
                tracing::debug!(target: "alys::pegout", %error, "bitcoind has it already");
            }
            Err(error) => return self.send_failed(&record, &error),
        }
        let tx = self.storage.write()?;
        let now = unix_now();
        let moved = update(&tx, &record.txid, |r| {
            let signed = r.status == PayoutStatus::Signed;
            if signed {
                r.status = PayoutStatus::Broadcast;
                r.broadcast_secs = now;
                r.last_error.clear();
            }
            signed
        })?;
        PayoutCommit::Broadcast.commit(tx)?;
        if moved.is_some() {
            let waited = now.saturating_sub(record.final_secs);
            metrics::histogram!(m::FINAL_TO_BROADCAST_SECONDS).record(waited as f64);
            tracing::info!(target: "alys::pegout", "peg-out transaction broadcast");
        }
        Ok(())
    }

    fn send_failed(&self, record: &PayoutRecord, error: &BitcoinError) -> Result<(), PayerError> {
        let reason = match error {
            e if e.is_missing_inputs() => "missing_inputs",
            e if e.is_transport() => "unreachable",
            _ => "rejected",
        };
        metrics::counter!(m::BROADCAST_ERRORS, "reason" => reason).increment(1);
        self.note_error(record, format!("broadcast: {error}"))
    }

    /// A broadcast payout: sent again if it left the mempool. `false` when bitcoind is unreachable.
    async fn recheck(&mut self, record: PayoutRecord) -> Result<bool, PayerError> {
        let txid = display(&record.txid);
        match self.io.in_mempool(txid).await {
            Ok(true) => return Ok(true),
            Ok(false) => {}
            Err(error) => {
                tracing::debug!(target: "alys::pegout", %error, "cannot ask bitcoind's mempool");
                return Ok(!error.is_transport());
            }
        }
        let Some(signed) = self.verified(&record)? else { return Ok(true) };
        match self.io.send_transaction(signed).await {
            Ok(_) => {
                metrics::counter!(m::REBROADCASTS).increment(1);
                tracing::info!(target: "alys::pegout", "peg-out transaction left the mempool unconfirmed; broadcast again");
            }
            Err(error) if error.is_already_in_mempool() => {}
            Err(error) if error.is_already_in_chain() || error.is_missing_inputs() => {
                self.locate(&record).await?;
            }
            Err(error) => {
                self.send_failed(&record, &error)?;
                self.back_off(record.txid);
            }
        }
        Ok(true)
    }

    /// bitcoind says the payout is mined (or its inputs spent) but the follower recorded no
    /// confirmation: record the block if the follower holds it, or is past it for good.
    async fn locate(&mut self, record: &PayoutRecord) -> Result<(), PayerError> {
        let located = self.io.locate(display(&record.txid)).await.unwrap_or_else(|error| {
            tracing::debug!(target: "alys::pegout", %error, "cannot locate the transaction");
            None
        });
        self.back_off(record.txid);
        let Some((height, hash)) = located else {
            let why = "bitcoind has it in a block it cannot name (no -txindex?) or its inputs are spent; \
                       waiting for the follower";
            return self.note_error(record, why.to_owned());
        };
        let hash = B256::from(hash.to_byte_array());
        let tx = self.storage.write()?;
        let tip = tx.bitcoin_tip()?.map_or(0, |(h, _)| h);
        // Below the follower's window (or its start) nothing walks that block again.
        let followed = match tx.bitcoin_block_at(height)? {
            Some(recorded) => recorded == hash,
            None => height <= tip,
        };
        if !followed {
            return Ok(());
        }
        let confirmed = update(&tx, &record.txid, |r| {
            let broadcast = r.status == PayoutStatus::Broadcast;
            if broadcast {
                r.status = PayoutStatus::Confirmed;
                r.confirmed_height = height;
                r.confirmed_block = hash;
                r.last_error.clear();
            }
            broadcast
        })?;
        tx.commit()?;
        if confirmed.is_some() {
            tracing::info!(target: "alys::pegout", bitcoin_height = height, "peg-out transaction found confirmed in a block followed earlier");
        }
        Ok(())
    }

    fn update_gauges(&self) -> Result<(), StorageError> {
        let read = self.storage.read()?;
        for status in PayoutStatus::ALL.into_iter().filter(|s| *s != PayoutStatus::Confirmed) {
            metrics::gauge!(m::PAYOUTS, "status" => status.as_str()).set(read.payout_count(status)? as f64);
        }
        let tip = read.bitcoin_tip()?.map_or(0, |(h, _)| h);
        // The governed depth at the next block, else the configured one.
        let next = read.head()?.map_or(0, |h| h.height.saturating_add(1));
        let depth = match self.runtime.state_at(next).parameters.pegout_confirmations {
            0 => self.config.pegout_confirmations,
            governed => u64::from(governed),
        };
        // Confirmations below the depth: confirmed at `tip + 2 - depth` or above.
        let since = tip.saturating_add(2).saturating_sub(depth.max(1));
        let confirming = read.payouts_confirmed_since(since)?.len() as u64;
        let confirmed = read.payout_count(PayoutStatus::Confirmed)?.saturating_sub(confirming);
        metrics::gauge!(m::PAYOUTS, "status" => "confirming").set(confirming as f64);
        metrics::gauge!(m::PAYOUTS, "status" => "confirmed").set(confirmed as f64);
        let (queued, oldest) = read.unsettled_burns()?;
        metrics::gauge!(m::QUEUE_DEPTH).set(queued as f64);
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        metrics::gauge!(m::OLDEST_QUEUED_SECONDS).set(oldest.map_or(0, |t| now.saturating_sub(t)) as f64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]
    use super::*;

    #[test]
    fn crash_points_are_named_as_listed() {
        // An armed crash point aborts, so the literal names are checked by reading this file.
        let source = include_str!("payer.rs");
        for commit in PayoutCommit::ALL {
            let (before, after) = commit.points();
            assert!(before.ends_with("::before") && after.ends_with("::after"));
            for name in [before, after] {
                assert!(source.contains(&format!("crash_point!(\"{name}\")")), "{name}");
                assert!(name.starts_with("pegout::"), "{name}");
            }
        }
    }

    #[test]
    fn request_ids_name_the_payout_and_attempt() {
        let txid = B256::repeat_byte(0xab);
        let id = request_id(&txid, 7);
        assert_eq!(id, format!("pegout-{}-7", "ab".repeat(32)));
        assert_eq!(parse_request_id(&id), Some((txid, 7)));
        for other in ["sig-1-2", "pegout-zz-1", "pegout-", &format!("pegout-{}-x", "ab".repeat(32))] {
            assert_eq!(parse_request_id(other), None, "{other}");
        }
    }

    #[test]
    fn status_names_and_confirmations_are_reported() {
        let mut record =
            PayoutRecord::new(B256::ZERO, BlockRef::new(1, B256::ZERO), Default::default(), vec![], 0);
        assert_eq!(status_of(&record, 100), ("final", 0));
        record.status = PayoutStatus::Confirmed;
        record.confirmed_height = 95;
        assert_eq!(status_of(&record, 100), ("confirmed", 6));
        assert_eq!(status_of(&record, 90), ("confirmed", 0), "a tip behind its block");
    }
}
