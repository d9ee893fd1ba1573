//! Equivocation evidence: two blocks an authority signed for one slot, kept by (slot, author).
//!
//! Evidence is a fact anyone can check ([`alys_primitives::EquivocationEvidence`] carries both signed
//! headers), so it is stored once per (slot, author) whoever reported it first, and never removed: an
//! operator reads it to decide what to do with the authority, and a restarted node still refuses the
//! second block of a slot it holds evidence for.

use alys_primitives::EquivocationEvidence;
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};

use crate::{StorageError, Tables, WriteTx};

/// (slot big-endian ‖ author big-endian) → RLP evidence.
const EVIDENCE: TableDefinition<'static, &[u8; 12], &[u8]> = TableDefinition::new("equivocations");

pub(crate) fn create_tables(tx: &WriteTransaction) -> Result<(), StorageError> {
    tx.open_table(EVIDENCE)?;
    Ok(())
}

fn key(slot: u64, author: u32) -> [u8; 12] {
    let mut key = [0u8; 12];
    let (high, low) = key.split_at_mut(8);
    high.copy_from_slice(&slot.to_be_bytes());
    low.copy_from_slice(&author.to_be_bytes());
    key
}

fn decode(bytes: &[u8]) -> Result<EquivocationEvidence, StorageError> {
    EquivocationEvidence::decode(bytes)
        .map_err(|source| StorageError::Decode { table: "equivocations", source })
}

/// Reading equivocation evidence.
pub trait EvidenceRead: Tables {
    /// How many (slot, author) equivocations are recorded.
    fn equivocation_count(&self) -> Result<u64, StorageError> {
        Ok(self.open(EVIDENCE)?.len()?)
    }

    /// The evidence for (slot, author), if any.
    fn equivocation(&self, slot: u64, author: u32) -> Result<Option<EquivocationEvidence>, StorageError> {
        self.open(EVIDENCE)?.get(&key(slot, author))?.map(|v| decode(v.value())).transpose()
    }

    /// The most recent `limit` pieces of evidence, newest (highest slot) first.
    fn recent_equivocations(&self, limit: usize) -> Result<Vec<EquivocationEvidence>, StorageError> {
        let table = self.open(EVIDENCE)?;
        let mut out = Vec::new();
        for entry in table.iter()?.rev().take(limit) {
            out.push(decode(entry?.1.value())?);
        }
        Ok(out)
    }
}

impl<T: Tables> EvidenceRead for T {}

impl WriteTx {
    /// Records checked evidence; false (and nothing written) when (slot, author) already has some.
    pub fn put_equivocation(&self, evidence: &EquivocationEvidence) -> Result<bool, StorageError> {
        let key = key(evidence.first.slot, evidence.first.author);
        let mut table = self.table(EVIDENCE)?;
        if table.get(&key)?.is_some() {
            return Ok(false);
        }
        table.insert(&key, evidence.encoded().as_slice())?;
        Ok(true)
    }
}
