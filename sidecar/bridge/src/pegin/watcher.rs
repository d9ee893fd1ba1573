//! The peg-in watcher: follows the node's bitcoind, records deposits, rejects the ones that cannot be
//! minted, and tells governance about minted ones.
//!
//! Each Bitcoin block is recorded with the deposits in it in one commit (crash points
//! `pegin::seen::before/after`); a block that leaves the best chain is undone in one commit, its
//! unminted deposits forgotten (they come back if the transaction is mined again). A deposit that was
//! minted and whose block then left the best chain — a reorg deeper than `pegin_confirmations`, which
//! the confirmation depth exists to make improbable — stays minted: the alert metric
//! `alys_pegin_deep_reorg_total` counts it and governance is notified, since only the federation can
//! decide what to do about coins minted for a deposit Bitcoin no longer has.
//!
//! The watcher records a Bitcoin block only once governance has announced a federation, so a fresh node
//! does not walk past deposits before it knows the address. Deposits are recognised by every federation
//! address the node knows when it walks their block: a node that learns of a rotation late (offline
//! while governance announced it) does not go back for deposits to the new address in blocks it already
//! walked; the other authorities, who knew it, claim them, and this node's import checks do not depend
//! on what it walked.

use std::time::Duration;

use alys_bitcoin::{BitcoinStatus, Follower, Step};
use alys_governance::{RuntimeView, stream::StreamHandle};
use alys_primitives::ChainHeads;
use alys_proto::governance::v1::{PeginNotification, stream_request};
use alys_storage::{ChainRead, DepositRecord, PeginRead, Storage, StorageError};
use bitcoin::hashes::Hash as _;
use tokio::sync::watch;
use tracing::Instrument as _;

use super::{
    deposit::scan_block,
    metrics as m,
    rules::{deposit_scripts_at, display_txid, future_scripts_at, known_scripts, rejection_at},
};

/// What the watcher needs.
#[derive(Debug)]
pub struct PeginWatcher {
    follower: Follower,
    storage: std::sync::Arc<Storage>,
    runtime: RuntimeView,
    heads: watch::Receiver<ChainHeads>,
    status: watch::Sender<BitcoinStatus>,
    governance: Option<StreamHandle>,
    poll: Duration,
    /// Bitcoin blocks committed without an fsync since the last durable commit (see [`Self::connect`]).
    deferred: std::sync::atomic::AtomicU32,
}

/// While catching up, at most this many Bitcoin blocks in a row are committed without an fsync.
const MAX_DEFERRED: u32 = 64;

impl PeginWatcher {
    /// A watcher following `follower`'s bitcoind into `storage`, publishing where it stands on `status`.
    pub const fn new(
        follower: Follower,
        storage: std::sync::Arc<Storage>,
        runtime: RuntimeView,
        heads: watch::Receiver<ChainHeads>,
        status: watch::Sender<BitcoinStatus>,
    ) -> Self {
        Self {
            follower,
            storage,
            runtime,
            heads,
            status,
            governance: None,
            poll: Duration::from_secs(1),
            deferred: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// Sends a `PeginNotification` to governance for each minted deposit.
    pub fn with_governance(mut self, governance: StreamHandle) -> Self {
        self.governance = Some(governance);
        self
    }

    /// Sets how often bitcoind is asked for new blocks once the watcher is up to date.
    pub const fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Runs until the task is dropped.
    pub async fn run(self) {
        loop {
            let span = tracing::debug_span!(target: "alys::pegin", "pegin_step");
            let idle = self.step().instrument(span).await;
            if idle {
                tokio::time::sleep(self.poll).await;
            }
        }
    }

    /// One step; `true` when there is nothing more to do right now.
    async fn step(&self) -> bool {
        let position = match self.storage.read().and_then(|r| r.bitcoin_tip()) {
            Ok(position) => position.map(|(h, hash)| (h, bitcoin::BlockHash::from_byte_array(hash.0))),
            Err(error) => {
                tracing::error!(target: "alys::pegin", %error, "cannot read the Bitcoin position");
                return true;
            }
        };
        match self.follower.step(position).await {
            Ok(Step::Connect { height, block, best }) => {
                self.set_connected(true);
                let scripts = known_scripts(&self.runtime);
                if scripts.is_empty() {
                    // Nothing could be recognised as a deposit yet: wait for governance's first
                    // federation rather than walk past blocks that may hold deposits to it.
                    tracing::debug!(target: "alys::pegin", height, "no federation known yet; waiting");
                    return true;
                }
                let deposits = scan_block(&block, height, &scripts, unix_now());
                let hash = alloy_primitives::B256::from(block.block_hash().to_byte_array());
                if let Err(error) = self.connect(height, hash, &deposits, &block.txdata, height < best) {
                    tracing::error!(target: "alys::pegin", height, %error, "cannot record a Bitcoin block");
                    return true;
                }
                metrics::counter!(alys_bitcoin::metrics::BLOCKS).increment(1);
                metrics::gauge!(alys_bitcoin::metrics::FOLLOWED_HEIGHT).set(height as f64);
                self.status.send_modify(|s| s.followed_height = Some(height));
                for deposit in &deposits {
                    let txid = display_txid(&deposit.txid);
                    if deposit.is_rejected() {
                        metrics::counter!(m::REJECTED, "reason" => deposit.rejection.clone()).increment(1);
                        tracing::info!(target: "alys::pegin", %txid, height, reason = %deposit.rejection, "deposit rejected");
                    } else {
                        metrics::counter!(m::SEEN).increment(1);
                        tracing::info!(target: "alys::pegin", %txid, height, sats = deposit.amount_sats(),
                            to = %deposit.evm_address, "deposit seen");
                    }
                }
                false
            }
            Ok(Step::Disconnect { height, hash }) => {
                self.set_connected(true);
                match self.disconnect(height) {
                    Ok(reorged) => {
                        tracing::warn!(target: "alys::pegin", height, %hash, "Bitcoin block left the best chain");
                        for record in reorged {
                            self.deep_reorg(&record).await;
                        }
                        false
                    }
                    Err(error) => {
                        tracing::error!(target: "alys::pegin", height, %error, "cannot undo a Bitcoin block");
                        true
                    }
                }
            }
            Ok(Step::Tip(best)) => {
                self.set_connected(true);
                if let Err(error) = self.make_durable() {
                    tracing::error!(target: "alys::pegin", %error, "cannot make the walked Bitcoin blocks durable");
                    return true;
                }
                self.status.send_modify(|s| {
                    s.height = best.height;
                    s.best_hash = Some(best.hash);
                });
                if let Err(error) = self.classify() {
                    tracing::error!(target: "alys::pegin", %error, "cannot record deposit rejections");
                }
                if let Err(error) = self.notify().await {
                    tracing::error!(target: "alys::pegin", %error, "cannot record peg-in notifications");
                }
                if let Err(error) = self.update_gauges() {
                    tracing::debug!(target: "alys::pegin", %error, "cannot read peg-in gauges");
                }
                true
            }
            Err(error) => {
                if self.status.borrow().connected {
                    tracing::warn!(target: "alys::pegin", %error, url = self.follower.client().url(), "Bitcoin node unavailable");
                }
                self.set_connected(false);
                true
            }
        }
    }

    fn set_connected(&self, connected: bool) {
        metrics::gauge!(alys_bitcoin::metrics::CONNECTED).set(if connected { 1.0 } else { 0.0 });
        self.status.send_if_modified(|s| {
            let changed = s.connected != connected;
            s.connected = connected;
            changed
        });
    }

    /// Records a Bitcoin block, its deposits and the payouts it confirms in one commit. While the
    /// watcher is catching up (`behind`: bitcoind has blocks after this one), a block holding no
    /// deposit and confirming no payout is committed without an fsync, at most [`MAX_DEFERRED`] in a
    /// row: a fresh node walking thousands of blocks would otherwise wait on the disk for each. The
    /// commit is atomic all the same, and any later durable commit (the next one of this watcher, or a
    /// block the chain commits) makes it durable too, since commits reach the disk in order; a crash
    /// before that rolls back to an earlier Bitcoin position, which the watcher walks again.
    fn connect(
        &self,
        height: u64,
        hash: alloy_primitives::B256,
        deposits: &[DepositRecord],
        txs: &[bitcoin::Transaction],
        behind: bool,
    ) -> Result<(), StorageError> {
        use std::sync::atomic::Ordering;
        let deferrable =
            behind && deposits.is_empty() && self.deferred.load(Ordering::Relaxed) < MAX_DEFERRED;
        let tx = if deferrable { self.storage.write_deferred()? } else { self.storage.write()? };
        tx.connect_bitcoin_block(height, hash, deposits)?;
        // Peg-out payouts in the block are confirmed with it, so confirmations follow reorgs exactly.
        let confirmed = tx.confirm_payouts(height, hash, txs)?;
        if deferrable && !confirmed.is_empty() {
            // A confirmation is worth its fsync: start again with a durable transaction.
            drop(tx);
            self.deferred.store(MAX_DEFERRED, Ordering::Relaxed);
            return self.connect(height, hash, deposits, txs, behind);
        }
        // Named for blocks that hold deposits: the ones whose loss would matter.
        if !deposits.is_empty() {
            alys_primitives::crash_point!("pegin::seen::before");
        }
        tx.commit()?;
        if deferrable {
            self.deferred.fetch_add(1, Ordering::Relaxed);
        } else {
            self.deferred.store(0, Ordering::Relaxed);
        }
        if !deposits.is_empty() {
            alys_primitives::crash_point!("pegin::seen::after");
        }
        for txid in confirmed {
            tracing::info!(target: "alys::pegout", txid = %display_txid(&txid), height, "peg-out transaction confirmed");
        }
        Ok(())
    }

    /// Makes the Bitcoin blocks committed without an fsync durable (an empty durable commit).
    fn make_durable(&self) -> Result<(), StorageError> {
        use std::sync::atomic::Ordering;
        if self.deferred.load(Ordering::Relaxed) > 0 {
            self.storage.write()?.commit()?;
            self.deferred.store(0, Ordering::Relaxed);
        }
        Ok(())
    }

    fn disconnect(&self, height: u64) -> Result<Vec<DepositRecord>, StorageError> {
        let tx = self.storage.write()?;
        let reorged = tx.disconnect_bitcoin_block(height)?;
        // Payouts confirmed in the block lose the confirmation with it: the payer broadcasts them again.
        let unconfirmed = tx.unconfirm_payouts(height)?;
        tx.commit()?;
        for txid in unconfirmed {
            tracing::warn!(target: "alys::pegout", txid = %display_txid(&txid), height, "peg-out transaction's Bitcoin block left the best chain");
        }
        Ok(reorged)
    }

    /// A minted deposit's Bitcoin block left the best chain: alert and tell governance.
    async fn deep_reorg(&self, record: &DepositRecord) {
        metrics::counter!(m::DEEP_REORG).increment(1);
        let txid = display_txid(&record.txid);
        tracing::error!(target: "alys::pegin", %txid, bitcoin_height = record.bitcoin_height,
            sats = record.amount_sats(), to = %record.evm_address,
            "a minted deposit's Bitcoin block left the best chain (reorg deeper than pegin_confirmations)");
        if let Some(governance) = &self.governance {
            for output in &record.outputs {
                let note = PeginNotification {
                    btc_txid: txid.to_string(),
                    vout: output.vout,
                    amount: output.amount_sats,
                    evm_address: record.evm_address.to_string(),
                    confirmations: 0,
                    extra_data: Some(b"bitcoin-reorg: minted deposit left the best chain".to_vec()),
                };
                let _ = governance.send(stream_request::Payload::PeginNotification(note)).await;
            }
        }
    }

    /// Records the rejection of deep enough deposits that cannot be minted at the next height.
    fn classify(&self) -> Result<(), StorageError> {
        let read = self.storage.read()?;
        let Some((tip, _)) = read.bitcoin_tip()? else { return Ok(()) };
        let height = read.head()?.map_or(0, |h| h.height) + 1;
        let state = self.runtime.state_at(height);
        let required = u64::from(state.parameters.pegin_confirmations.max(1));
        let valid = deposit_scripts_at(&self.runtime, height);
        if valid.is_empty() {
            return Ok(());
        }
        let future = future_scripts_at(&self.runtime, height);
        let mut rejected = Vec::new();
        for record in read.open_deposits(10_000)? {
            if tip.saturating_add(1).saturating_sub(record.bitcoin_height) < required {
                break;
            }
            if let Some(reason) = rejection_at(&record, &valid, &future, state.parameters.pegin_min_sats) {
                rejected.push((record.txid, reason));
            }
        }
        drop(read);
        if rejected.is_empty() {
            return Ok(());
        }
        let tx = self.storage.write()?;
        for (txid, reason) in &rejected {
            tx.reject_deposit(txid, reason.code())?;
        }
        tx.commit()?;
        for (txid, reason) in rejected {
            metrics::counter!(m::REJECTED, "reason" => reason.code()).increment(1);
            tracing::info!(target: "alys::pegin", txid = %display_txid(&txid), reason = reason.code(), "deposit rejected");
        }
        Ok(())
    }

    /// Sends a `PeginNotification` per output minted in canonical blocks not yet announced, then records
    /// how far it got. Notifications are buffered by the stream while governance is away; one lost to a
    /// crash between sending and recording is sent again (governance keys them by outpoint).
    async fn notify(&self) -> Result<(), StorageError> {
        let head = self.heads.borrow().head.height;
        let read = self.storage.read()?;
        let from = read.pegin_notified_height()? + 1;
        if from > head {
            return Ok(());
        }
        let to = head.min(from + 999);
        let tip = read.bitcoin_tip()?.map_or(0, |(h, _)| h);
        let mut notes = Vec::new();
        let mut minted = 0u64;
        for height in from..=to {
            let Some(block) = read.block_by_height(height)? else { break };
            for claim in &block.header.pegins {
                minted += 1;
                metrics::counter!(m::MINTED_SATS).increment(claim.amount_sats);
                let depth = read
                    .deposit(&claim.txid)?
                    .map_or(0, |d| tip.saturating_add(1).saturating_sub(d.bitcoin_height));
                for output in &claim.outputs {
                    notes.push(PeginNotification {
                        btc_txid: display_txid(&claim.txid).to_string(),
                        vout: output.vout,
                        amount: output.amount_sats,
                        evm_address: claim.evm_address.to_string(),
                        confirmations: u32::try_from(depth).unwrap_or(u32::MAX),
                        extra_data: None,
                    });
                }
            }
        }
        drop(read);
        metrics::counter!(m::MINTED).increment(minted);
        if let Some(governance) = &self.governance {
            for note in notes {
                let _ = governance.send(stream_request::Payload::PeginNotification(note)).await;
            }
        }
        let tx = self.storage.write()?;
        tx.set_pegin_notified_height(to)?;
        tx.commit()
    }

    fn update_gauges(&self) -> Result<(), StorageError> {
        let read = self.storage.read()?;
        let open = read.open_deposits(10_000)?;
        metrics::gauge!(m::OPEN).set(open.len() as f64);
        let oldest = open.iter().map(|d| d.seen_secs).min();
        let age = oldest.map_or(0, |seen| unix_now().saturating_sub(seen));
        metrics::gauge!(m::OLDEST_OPEN_SECONDS).set(age as f64);
        Ok(())
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
