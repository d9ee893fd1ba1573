//! The peg-out ledger: burns seen on the bridge contract, pending until their block is final and
//! canonical, then released, each exactly once, ever (DESIGN invariant 3); and where the burn sources
//! stand.
//!
//! # The rule that releases a burn
//!
//! A pending burn is released only when, in the transaction that releases it:
//! - its block number is at or below the finalized consensus block ([`ChainRead::finalized`]), and
//! - the canonical consensus block at that height carries the burn's execution block: its
//!   `execution_block_hash` is the burn's `block_hash` (a consensus block's height is its execution
//!   block's number).
//!
//! A burn whose block is not that one (a burn of an orphaned execution block, whose retraction has not
//! arrived yet) stays pending and is never released; its retraction removes it. Once released, a burn
//! stays released: seeing it again (a feed replay) or retracting it changes nothing.
//!
//! # Order
//!
//! Both sets are keyed by [`BurnPosition`] (block number, log index, block hash), so they list oldest
//! first and page by position ([`PegoutRead::pending_burns_page`]), and a release pass reads only the
//! pending burns at or below the finalized height.

use std::{collections::HashMap, ops::Bound};

use alloy_primitives::B256;
use alys_burns::{Burn, BurnPosition};
use alys_primitives::{BurnRef, SignedBlock};
use redb::{ReadableTable, TableDefinition, TableHandle, WriteTransaction};

use crate::{ChainRead, StorageError, Tables, WriteTx};

const PENDING: TableDefinition<'static, &[u8; 48], &[u8]> = TableDefinition::new("pegout_pending");
const RELEASED: TableDefinition<'static, &[u8; 48], &[u8]> = TableDefinition::new("pegout_released");
const META: TableDefinition<'static, &str, u64> = TableDefinition::new("pegout_meta");
/// Released burns no canonical block settled yet (the peg-out queue) → unix seconds they were queued.
const UNSETTLED: TableDefinition<'static, &[u8; 48], u64> = TableDefinition::new("pegout_unsettled");

/// The sets as an earlier version keyed them (block hash ‖ log index), moved on open.
const LEGACY_PENDING: TableDefinition<'static, &[u8; 40], &[u8]> = TableDefinition::new("pending_burns");
const LEGACY_RELEASED: TableDefinition<'static, &[u8; 40], &[u8]> = TableDefinition::new("released_burns");

const GETH_HEIGHT: &str = "geth_height";
const BURN_CURSOR: &str = "burn_cursor";

pub(crate) fn create_tables(tx: &WriteTransaction) -> Result<(), StorageError> {
    tx.open_table(PENDING)?;
    tx.open_table(RELEASED)?;
    tx.open_table(META)?;
    // A database from before the queue existed: nothing was settled then, so every released burn is
    // queued.
    let queued = tx.list_tables()?.any(|t| t.name() == UNSETTLED.name());
    if !queued {
        let released: Vec<[u8; 48]> =
            tx.open_table(RELEASED)?.iter()?.map(|e| e.map(|(k, _)| *k.value())).collect::<Result<_, _>>()?;
        let mut unsettled = tx.open_table(UNSETTLED)?;
        for key in &released {
            unsettled.insert(key, now_secs())?;
        }
    }
    let legacy: Vec<String> = tx
        .list_tables()?
        .map(|t| t.name().to_owned())
        .filter(|name| name == LEGACY_PENDING.name() || name == LEGACY_RELEASED.name())
        .collect();
    for name in legacy {
        let (from, to, label) = if name == LEGACY_PENDING.name() {
            (LEGACY_PENDING, PENDING, "pending_burns")
        } else {
            (LEGACY_RELEASED, RELEASED, "released_burns")
        };
        let burns = {
            let table = tx.open_table(from)?;
            let mut burns = Vec::new();
            for entry in table.iter()? {
                burns.push(decode(label, entry?.1.value())?);
            }
            burns
        };
        let mut table = tx.open_table(to)?;
        for burn in &burns {
            table.insert(&burn.position().to_bytes(), burn.encoded().as_slice())?;
        }
        drop(table);
        tx.delete_table(from)?;
    }
    Ok(())
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn decode(table: &'static str, bytes: &[u8]) -> Result<Burn, StorageError> {
    Burn::decode(bytes).map_err(|source| StorageError::Decode { table, source })
}

fn page(
    table: &impl ReadableTable<&'static [u8; 48], &'static [u8]>,
    name: &'static str,
    after: Option<BurnPosition>,
    limit: usize,
) -> Result<Vec<Burn>, StorageError> {
    let after = after.map(BurnPosition::to_bytes);
    let start = after.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
    let mut out = Vec::new();
    for entry in table.range::<&[u8; 48]>((start, Bound::Unbounded))?.take(limit) {
        out.push(decode(name, entry?.1.value())?);
    }
    Ok(out)
}

const fn position_of(burn: &BurnRef) -> BurnPosition {
    BurnPosition { block_number: burn.block_number, log_index: burn.log_index, block_hash: burn.block_hash }
}

/// Pending burns at or below `height`, in chain order.
fn pending_up_to(
    table: &impl ReadableTable<&'static [u8; 48], &'static [u8]>,
    height: u64,
) -> Result<Vec<Burn>, StorageError> {
    let Some(above) = height.checked_add(1) else { return page(table, "pegout_pending", None, usize::MAX) };
    let end = BurnPosition::first_at(above).to_bytes();
    let mut out = Vec::new();
    for entry in table.range::<&[u8; 48]>(..&end)? {
        out.push(decode("pegout_pending", entry?.1.value())?);
    }
    Ok(out)
}

/// The execution block hash the canonical consensus block at each height carries, looked up once per
/// height.
struct Canonical<'a, T: ChainRead> {
    chain: &'a T,
    seen: HashMap<u64, Option<B256>>,
}

impl<'a, T: ChainRead> Canonical<'a, T> {
    fn new(chain: &'a T) -> Self {
        Self { chain, seen: HashMap::new() }
    }

    /// Whether `burn`'s block is the execution block of the canonical consensus block at its height.
    fn holds(&mut self, burn: &Burn) -> Result<bool, StorageError> {
        let height = burn.block_number;
        let hash = match self.seen.get(&height) {
            Some(hash) => *hash,
            None => {
                let hash = self.chain.block_by_height(height)?.map(|b| b.header.execution_block_hash);
                self.seen.insert(height, hash);
                hash
            }
        };
        Ok(hash == Some(burn.block_hash))
    }
}

/// Reading the peg-out ledger.
pub trait PegoutRead: Tables + ChainRead + Sized {
    /// Every burn waiting for release, in chain order (for bounded reads, [`Self::pending_burns_page`]).
    fn pending_burns(&self) -> Result<Vec<Burn>, StorageError> {
        page(&self.open(PENDING)?, "pegout_pending", None, usize::MAX)
    }

    /// Every burn released, in chain order (for bounded reads, [`Self::released_burns_page`]).
    fn released_burns(&self) -> Result<Vec<Burn>, StorageError> {
        page(&self.open(RELEASED)?, "pegout_released", None, usize::MAX)
    }

    /// Up to `limit` pending burns after position `after` (from the first when `None`), in chain order.
    fn pending_burns_page(
        &self,
        after: Option<BurnPosition>,
        limit: usize,
    ) -> Result<Vec<Burn>, StorageError> {
        page(&self.open(PENDING)?, "pegout_pending", after, limit)
    }

    /// Up to `limit` released burns after position `after` (from the first when `None`), in chain order.
    fn released_burns_page(
        &self,
        after: Option<BurnPosition>,
        limit: usize,
    ) -> Result<Vec<Burn>, StorageError> {
        page(&self.open(RELEASED)?, "pegout_released", after, limit)
    }

    /// The released burn at `position`, if it is released.
    fn released_burn(&self, position: &BurnPosition) -> Result<Option<Burn>, StorageError> {
        match self.open(RELEASED)?.get(&position.to_bytes())? {
            Some(bytes) => Ok(Some(decode("pegout_released", bytes.value())?)),
            None => Ok(None),
        }
    }

    /// Up to `limit` released burns no canonical block settled yet (the peg-out queue) after position
    /// `after`, in chain order, each with when it was queued (unix seconds).
    fn unsettled_burns_page(
        &self,
        after: Option<BurnPosition>,
        limit: usize,
    ) -> Result<Vec<(Burn, u64)>, StorageError> {
        let unsettled = self.open(UNSETTLED)?;
        let released = self.open(RELEASED)?;
        let after = after.map(BurnPosition::to_bytes);
        let start = after.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
        let mut out = Vec::new();
        for entry in unsettled.range::<&[u8; 48]>((start, Bound::Unbounded))?.take(limit) {
            let (key, queued) = entry?;
            if let Some(bytes) = released.get(key.value())? {
                out.push((decode("pegout_released", bytes.value())?, queued.value()));
            }
        }
        Ok(out)
    }

    /// How many released burns wait for a canonical block to settle them, and since when the oldest
    /// waits (unix seconds).
    fn unsettled_burns(&self) -> Result<(u64, Option<u64>), StorageError> {
        let (mut count, mut oldest) = (0u64, None::<u64>);
        for entry in self.open(UNSETTLED)?.iter()? {
            let queued = entry?.1.value();
            count += 1;
            oldest = Some(oldest.map_or(queued, |o| o.min(queued)));
        }
        Ok((count, oldest))
    }

    /// Whether the burn is released.
    fn is_released(&self, burn: &Burn) -> Result<bool, StorageError> {
        Ok(self.open(RELEASED)?.get(&burn.position().to_bytes())?.is_some())
    }

    /// Pending burns that can never be released as they are: at or below the finalized height, in a
    /// block that is not the canonical one there. They wait for their retraction; a burn source that
    /// never sends one (a feed that lost it) leaves them here, which is worth an alarm.
    fn orphaned_pending_burns(&self) -> Result<Vec<Burn>, StorageError> {
        let Some(finalized) = self.finalized()? else { return Ok(Vec::new()) };
        let candidates = pending_up_to(&self.open(PENDING)?, finalized.height)?;
        let mut canonical = Canonical::new(self);
        let mut out = Vec::new();
        for burn in candidates {
            if !canonical.holds(&burn)? {
                out.push(burn);
            }
        }
        Ok(out)
    }

    /// The last block the geth path has read (0 before any).
    fn geth_height(&self) -> Result<u64, StorageError> {
        Ok(self.open(META)?.get(GETH_HEIGHT)?.map_or(0, |v| v.value()))
    }

    /// The last burn-feed cursor whose event is recorded here (0 before any).
    fn burn_cursor(&self) -> Result<u64, StorageError> {
        Ok(self.open(META)?.get(BURN_CURSOR)?.map_or(0, |v| v.value()))
    }
}

impl<T: Tables> PegoutRead for T {}

impl WriteTx {
    /// Records burns seen in (not yet final) blocks; burns already released are ignored.
    pub fn add_pending_burns(&self, burns: &[Burn]) -> Result<(), StorageError> {
        let released = self.table(RELEASED)?;
        let mut pending = self.table(PENDING)?;
        for burn in burns {
            let key = burn.position().to_bytes();
            if released.get(&key)?.is_none() {
                pending.insert(&key, burn.encoded().as_slice())?;
            }
        }
        Ok(())
    }

    /// Drops pending burns of a reverted block. A released burn is final and stays released; returns
    /// how many of `burns` were (a retraction of a final burn means finality was reverted, which the
    /// caller must report loudly).
    pub fn retract_burns(&self, burns: &[Burn]) -> Result<usize, StorageError> {
        let released = self.table(RELEASED)?;
        let mut pending = self.table(PENDING)?;
        let mut final_ones = 0;
        for burn in burns {
            let key = burn.position().to_bytes();
            pending.remove(&key)?;
            if released.get(&key)?.is_some() {
                final_ones += 1;
            }
        }
        Ok(final_ones)
    }

    /// Releases every pending burn that is final and canonical by the stored chain (module docs): each
    /// moves to the released set and is returned, in chain order; a burn is returned by at most one
    /// call, ever. Pending burns of other blocks wait.
    pub fn release_burns(&self) -> Result<Vec<Burn>, StorageError> {
        let Some(finalized) = self.finalized()? else { return Ok(Vec::new()) };
        let candidates = pending_up_to(&self.table(PENDING)?, finalized.height)?;
        let mut releasable = Vec::new();
        {
            let mut canonical = Canonical::new(self);
            for burn in candidates {
                if canonical.holds(&burn)? {
                    releasable.push(burn);
                }
            }
        }
        let mut pending = self.table(PENDING)?;
        let mut released = self.table(RELEASED)?;
        let mut unsettled = self.table(UNSETTLED)?;
        let now = now_secs();
        for burn in &releasable {
            let key = burn.position().to_bytes();
            pending.remove(&key)?;
            released.insert(&key, burn.encoded().as_slice())?;
            unsettled.insert(&key, now)?;
        }
        Ok(releasable)
    }

    /// The geth path's step for one chunk of finalized blocks up to `to`: records the chunk's burns as
    /// pending (released ones are ignored), advances the stored height to `to` and, unless peg-outs are
    /// paused (`release` false), releases what the rule allows ([`Self::release_burns`]), which it
    /// returns.
    pub fn ingest_final_burns(
        &self,
        burns: &[Burn],
        to: u64,
        release: bool,
    ) -> Result<Vec<Burn>, StorageError> {
        self.add_pending_burns(burns)?;
        self.table(META)?.insert(GETH_HEIGHT, to)?;
        if release { self.release_burns() } else { Ok(Vec::new()) }
    }

    /// The canonical chain changed: burns settled by `joined` blocks leave the queue, those settled by
    /// `left` blocks return to it.
    pub(crate) fn requeue_settled(
        &self,
        joined: &[SignedBlock],
        left: &[SignedBlock],
    ) -> Result<(), StorageError> {
        let mut unsettled = self.table(UNSETTLED)?;
        let released = self.table(RELEASED)?;
        let settled = |block: &SignedBlock| -> Vec<[u8; 48]> {
            block.header.pegout.as_ref().map_or_else(Vec::new, |p| {
                p.paid.iter().chain(&p.refunded).map(|b| position_of(b).to_bytes()).collect()
            })
        };
        let now = now_secs();
        for block in left {
            // A fee bump settles again what the block it replaces (an ancestor) settled: if that block
            // stays, so does the settlement; if it leaves too, it requeues them itself.
            if block.header.pegout.as_ref().is_some_and(|p| p.replaces.is_some()) {
                continue;
            }
            for key in settled(block) {
                if released.get(&key)?.is_some() {
                    unsettled.insert(&key, now)?;
                }
            }
        }
        for block in joined {
            for key in settled(block) {
                unsettled.remove(&key)?;
            }
        }
        Ok(())
    }

    /// Records the burn-feed cursor whose event this transaction records.
    pub fn set_burn_cursor(&self, cursor: u64) -> Result<(), StorageError> {
        self.table(META)?.insert(BURN_CURSOR, cursor)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]
    use alloy_primitives::{Address, Bytes, U256};
    use alys_primitives::{Approvals, BlockRef, ConsensusHeader, SignedBlock};

    use super::*;
    use crate::Storage;

    /// A burn in execution block `block` (hash `repeat_byte(block)`) unless `fork` picks a sibling.
    fn burn_in(block: u8, fork: u8, log_index: u64) -> Burn {
        Burn {
            block_number: u64::from(block),
            block_hash: B256::repeat_byte(block ^ fork.wrapping_mul(0x40)),
            log_index,
            tx_hash: B256::repeat_byte(0xee),
            tx_index: 0,
            sender: Address::repeat_byte(1),
            bitcoin_address: Bytes::from_static(b"bcrt1q"),
            value: U256::from(10u64),
        }
    }

    fn burn(block: u8, log_index: u64) -> Burn {
        burn_in(block, 0, log_index)
    }

    fn write<T>(store: &Storage, f: impl FnOnce(&WriteTx) -> Result<T, StorageError>) -> T {
        let tx = store.write().unwrap();
        let out = f(&tx).unwrap();
        tx.commit().unwrap();
        out
    }

    /// Consensus blocks 1..=n carrying execution blocks `repeat_byte(h)`, finalized up to `finalized`.
    fn chain(store: &Storage, n: u8, finalized: u8) {
        let mut parent = B256::ZERO;
        let mut refs = Vec::new();
        for h in 1..=n {
            let block = SignedBlock {
                header: ConsensusHeader {
                    parent_hash: parent,
                    parent_seal: Default::default(),
                    height: u64::from(h),
                    slot: u64::from(h),
                    author: 0,
                    execution_block_hash: B256::repeat_byte(h),
                    pegins: vec![],
                    auxpow: Bytes::new(),
                    pegout: None,
                },
                execution_block: Bytes::new(),
                execution_requests: vec![],
                author_signature: Bytes::new(),
                approvals: Approvals { signers: Bytes::new(), signature: Bytes::new() },
            };
            parent = write(store, |tx| tx.set_head(&block)).hash;
            refs.push(BlockRef { height: u64::from(h), hash: parent });
        }
        if finalized > 0 {
            write(store, |tx| tx.set_finalized(refs[usize::from(finalized) - 1]));
        }
    }

    #[test]
    fn burns_are_released_once_when_final_and_canonical_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alys.redb");
        {
            let store = Storage::open(&path).unwrap();
            chain(&store, 3, 2);
            write(&store, |tx| tx.add_pending_burns(&[burn(3, 1), burn(1, 0), burn(2, 3)]));
            assert_eq!(write(&store, |tx| tx.release_burns()), vec![burn(1, 0), burn(2, 3)]);
            assert!(write(&store, |tx| tx.release_burns()).is_empty(), "released once");
            assert_eq!(write(&store, |tx| tx.retract_burns(&[burn(3, 1)])), 0);
            assert!(store.read().unwrap().pending_burns().unwrap().is_empty());
            // Seeing a released burn again (a replay) does not make it pending again; retracting it
            // does not unrelease it, and says so.
            write(&store, |tx| tx.add_pending_burns(&[burn(1, 0)]));
            assert!(store.read().unwrap().pending_burns().unwrap().is_empty());
            assert_eq!(write(&store, |tx| tx.retract_burns(&[burn(1, 0)])), 1);
            assert!(store.read().unwrap().is_released(&burn(1, 0)).unwrap());
        }
        let store = Storage::open(&path).unwrap();
        assert_eq!(store.read().unwrap().released_burns().unwrap().len(), 2);
        chain_extend_and_finalize(&store, 5);
        assert_eq!(
            write(&store, |tx| tx.ingest_final_burns(&[burn(1, 0), burn(4, 0)], 4, true)),
            vec![burn(4, 0)]
        );
        assert_eq!(store.read().unwrap().geth_height().unwrap(), 4);
        // Peg-outs paused: final burns are held pending, then released once after the resume.
        assert!(write(&store, |tx| tx.ingest_final_burns(&[burn(5, 0), burn(4, 0)], 5, false)).is_empty());
        assert_eq!(store.read().unwrap().geth_height().unwrap(), 5);
        assert_eq!(store.read().unwrap().pending_burns().unwrap(), vec![burn(5, 0)], "released is not held");
        assert_eq!(write(&store, |tx| tx.release_burns()), vec![burn(5, 0)]);
        assert!(write(&store, |tx| tx.release_burns()).is_empty());
    }

    /// A block at `height` on `parent` (execution block `repeat_byte(salt)`) settling `paid` burns.
    fn settling(parent: B256, height: u64, salt: u8, paid: Vec<alys_primitives::BurnRef>) -> SignedBlock {
        SignedBlock {
            header: ConsensusHeader {
                parent_hash: parent,
                parent_seal: Default::default(),
                height,
                slot: height + u64::from(salt),
                author: 0,
                execution_block_hash: B256::repeat_byte(salt),
                pegins: vec![],
                auxpow: Bytes::new(),
                pegout: (!paid.is_empty()).then(|| alys_primitives::PegoutBlock {
                    paid: vec![],
                    refunded: paid,
                    fee_rate_sat_vb: 1,
                    tx: Bytes::new(),
                    replaces: None,
                }),
            },
            execution_block: Bytes::new(),
            execution_requests: vec![],
            author_signature: Bytes::new(),
            approvals: Approvals { signers: Bytes::new(), signature: Bytes::new() },
        }
    }

    fn queued(store: &Storage) -> Vec<Burn> {
        store.read().unwrap().unsettled_burns_page(None, 100).unwrap().into_iter().map(|(b, _)| b).collect()
    }

    #[test]
    fn the_queue_follows_the_canonical_chain_through_settlements_and_reorgs() {
        let store = Storage::in_memory().unwrap();
        chain(&store, 2, 2);
        write(&store, |tx| tx.add_pending_burns(&[burn(1, 0), burn(2, 0)]));
        write(&store, |tx| tx.release_burns());
        assert_eq!(queued(&store), vec![burn(1, 0), burn(2, 0)]);
        let (depth, oldest) = store.read().unwrap().unsettled_burns().unwrap();
        assert_eq!(depth, 2);
        assert!(oldest.is_some_and(|t| t > 0));
        let reference = |b: &Burn| alys_primitives::BurnRef {
            block_number: b.block_number,
            log_index: b.log_index,
            block_hash: b.block_hash,
        };
        // Block 3 settles the first burn: it leaves the queue.
        let head = store.read().unwrap().head().unwrap().unwrap();
        let settles = settling(head.hash, 3, 3, vec![reference(&burn(1, 0))]);
        write(&store, |tx| tx.set_head(&settles));
        assert_eq!(queued(&store), vec![burn(2, 0)]);
        // A sibling without it becomes the head (blocks 3' and 4'): the burn is queued again.
        let sibling = settling(head.hash, 3, 0x33, vec![]);
        let on_sibling = settling(sibling.header.hash(), 4, 0x34, vec![]);
        write(&store, |tx| tx.put_block(&sibling));
        write(&store, |tx| tx.set_head(&on_sibling));
        assert_eq!(queued(&store), vec![burn(1, 0), burn(2, 0)]);
        // Back to the settling branch: it leaves the queue again, once.
        let after = settling(settles.header.hash(), 4, 0x44, vec![]);
        let longer = settling(after.header.hash(), 5, 0x45, vec![]);
        write(&store, |tx| tx.put_block(&after));
        write(&store, |tx| tx.set_head(&longer));
        assert_eq!(queued(&store), vec![burn(2, 0)]);
    }

    /// Extends the test chain of [`chain`] to `n` blocks and finalizes the tip.
    fn chain_extend_and_finalize(store: &Storage, n: u8) {
        let read = store.read().unwrap();
        let mut parent = read.head().unwrap().unwrap().hash;
        let first = read.head().unwrap().unwrap().height as u8 + 1;
        drop(read);
        for h in first..=n {
            let block = SignedBlock {
                header: ConsensusHeader {
                    parent_hash: parent,
                    parent_seal: Default::default(),
                    height: u64::from(h),
                    slot: u64::from(h),
                    author: 0,
                    execution_block_hash: B256::repeat_byte(h),
                    pegins: vec![],
                    auxpow: Bytes::new(),
                    pegout: None,
                },
                execution_block: Bytes::new(),
                execution_requests: vec![],
                author_signature: Bytes::new(),
                approvals: Approvals { signers: Bytes::new(), signature: Bytes::new() },
            };
            parent = write(store, |tx| tx.set_head(&block)).hash;
        }
        write(store, |tx| tx.set_finalized(BlockRef { height: u64::from(n), hash: parent }));
    }

    #[test]
    fn a_burn_of_an_orphaned_block_waits_for_its_retraction() {
        let store = Storage::in_memory().unwrap();
        chain(&store, 4, 0);
        // Two burns at height 2: one in the canonical execution block, one in a reorged-away sibling.
        let canonical = burn(2, 0);
        let orphan = burn_in(2, 1, 0);
        write(&store, |tx| tx.add_pending_burns(&[canonical.clone(), orphan.clone()]));
        assert!(write(&store, |tx| tx.release_burns()).is_empty(), "nothing is final yet");
        chain_extend_and_finalize(&store, 4);
        assert_eq!(write(&store, |tx| tx.release_burns()), vec![canonical.clone()]);
        assert_eq!(store.read().unwrap().pending_burns().unwrap(), vec![orphan.clone()]);
        assert_eq!(store.read().unwrap().orphaned_pending_burns().unwrap(), vec![orphan.clone()]);
        assert!(write(&store, |tx| tx.release_burns()).is_empty(), "the orphan is never released");
        write(&store, |tx| tx.retract_burns(std::slice::from_ref(&orphan)));
        assert!(store.read().unwrap().pending_burns().unwrap().is_empty());
        assert_eq!(store.read().unwrap().released_burns().unwrap(), vec![canonical]);
    }

    #[test]
    fn pages_list_each_set_in_chain_order() {
        let store = Storage::in_memory().unwrap();
        let burns: Vec<Burn> = (1..=9).flat_map(|b| [burn(b, 1), burn(b, 0)]).collect();
        write(&store, |tx| tx.add_pending_burns(&burns));
        let read = store.read().unwrap();
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = read.pending_burns_page(after, 4).unwrap();
            assert!(page.len() <= 4);
            let Some(last) = page.last() else { break };
            after = Some(last.position());
            all.extend(page);
        }
        let mut sorted = burns;
        sorted.sort_by_key(Burn::position);
        assert_eq!(all, sorted);
        assert_eq!(read.pending_burns().unwrap(), sorted);
        assert!(read.released_burns_page(None, 10).unwrap().is_empty());
        assert_eq!(
            read.pending_burns_page(Some(sorted[16].position()), 10).unwrap(),
            vec![sorted[17].clone()]
        );
    }

    #[test]
    fn the_feed_cursor_commits_with_the_burn_it_announced() {
        let store = Storage::in_memory().unwrap();
        {
            let tx = store.write().unwrap();
            tx.add_pending_burns(&[burn(1, 0)]).unwrap();
            tx.set_burn_cursor(7).unwrap();
        }
        let read = store.read().unwrap();
        assert_eq!(read.burn_cursor().unwrap(), 0, "an uncommitted write moves neither");
        assert!(read.pending_burns().unwrap().is_empty());
        drop(read);
        write(&store, |tx| {
            tx.add_pending_burns(&[burn(1, 0)])?;
            tx.set_burn_cursor(7)
        });
        let read = store.read().unwrap();
        assert_eq!(read.burn_cursor().unwrap(), 7);
        assert_eq!(read.pending_burns().unwrap(), vec![burn(1, 0)]);
    }

    #[test]
    fn sets_of_an_earlier_version_are_moved_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alys.redb");
        {
            let db = redb::Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut pending = tx.open_table(LEGACY_PENDING).unwrap();
                pending.insert(&burn(3, 0).key().to_bytes(), burn(3, 0).encoded().as_slice()).unwrap();
                let mut released = tx.open_table(LEGACY_RELEASED).unwrap();
                released.insert(&burn(1, 2).key().to_bytes(), burn(1, 2).encoded().as_slice()).unwrap();
            }
            tx.commit().unwrap();
        }
        let store = Storage::open(&path).unwrap();
        let read = store.read().unwrap();
        assert_eq!(read.pending_burns().unwrap(), vec![burn(3, 0)]);
        assert_eq!(read.released_burns().unwrap(), vec![burn(1, 2)]);
        drop(read);
        drop(store);
        // Moved once: the old tables are gone, and reopening changes nothing.
        let store = Storage::open(&path).unwrap();
        assert_eq!(store.read().unwrap().pending_burns().unwrap(), vec![burn(3, 0)]);
    }
}
