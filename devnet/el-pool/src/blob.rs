//! EIP-4844 blob transactions: the sidecar split off the network encoding, its checks against the
//! transaction's versioned hashes with the Ethereum KZG trusted setup (embedded in c-kzg, never fetched),
//! and the store of sidecars that payload building, reorgs and `engine_getBlobsV1` read.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use alloy_consensus::{Signed, Transaction, TxEnvelope};
use alloy_eips::{
    eip4844::{BlobAndProofV1, BlobTransactionSidecar, env_settings::EnvKzgSettings, kzg_to_versioned_hash},
    eip7594::BlobTransactionSidecarVariant,
    eip7840::BlobParams,
};
use alloy_primitives::B256;
use alys_el_api::{BlobSidecarError, PoolError};

/// How many blobs of transactions that left the pool (mined, mostly) stay available, for a reorg to
/// re-pool them and for `engine_getBlobsV1`: 768 blobs of 128 KiB, 96 MiB at most.
pub(crate) const MAX_RETIRED_BLOBS: usize = 768;

/// The encoded size a sidecar adds per blob: the blob, its commitment and proof, and RLP headers.
pub(crate) const SIDECAR_BYTES_PER_BLOB: usize = alloy_eips::eip4844::BYTES_PER_BLOB + 2 * 48 + 16;

/// Splits a transaction in its network encoding into the canonical transaction, as blocks carry it, and
/// its blob sidecar. Transactions of other types pass through without a sidecar.
pub(crate) fn split_sidecar(
    tx: TxEnvelope,
) -> Result<(TxEnvelope, Option<Arc<BlobTransactionSidecar>>), PoolError> {
    let TxEnvelope::Eip4844(signed) = tx else { return Ok((tx, None)) };
    let (variant, signature, hash) = signed.into_parts();
    let (canonical, sidecar) = variant.strip_sidecar();
    let sidecar = match sidecar {
        Some(BlobTransactionSidecarVariant::Eip4844(sidecar)) => sidecar,
        Some(BlobTransactionSidecarVariant::Eip7594(_)) => return Err(BlobSidecarError::CellProofs.into()),
        None => return Err(PoolError::MissingBlobSidecar),
    };
    // The hash covers the canonical encoding, so it stays the transaction's hash without the sidecar.
    Ok((TxEnvelope::Eip4844(Signed::new_unchecked(canonical, signature, hash)), Some(Arc::new(sidecar))))
}

/// Checks a blob transaction's sidecar against its versioned hashes and the fork's per-transaction
/// limit, and verifies the KZG proofs of its blobs.
pub(crate) fn validate_sidecar(
    tx: &TxEnvelope,
    sidecar: &BlobTransactionSidecar,
    params: &BlobParams,
) -> Result<(), PoolError> {
    let hashes = tx.blob_versioned_hashes().unwrap_or_default();
    if hashes.is_empty() {
        return Err(PoolError::NoBlobs);
    }
    if hashes.len() as u64 > params.max_blobs_per_tx {
        return Err(PoolError::TooManyBlobs { have: hashes.len(), permitted: params.max_blobs_per_tx });
    }
    let (blobs, commitments, proofs) = (sidecar.blobs.len(), sidecar.commitments.len(), sidecar.proofs.len());
    if [blobs, commitments, proofs].iter().any(|n| *n != hashes.len()) {
        let hashes = hashes.len();
        return Err(BlobSidecarError::Length { hashes, blobs, commitments, proofs }.into());
    }
    for (index, (claimed, commitment)) in hashes.iter().zip(&sidecar.commitments).enumerate() {
        let computed = kzg_to_versioned_hash(commitment.as_slice());
        if computed != *claimed {
            return Err(BlobSidecarError::VersionedHash { index, computed, claimed: *claimed }.into());
        }
    }
    sidecar.validate(hashes, EnvKzgSettings::Default.get()).map_err(|error| {
        tracing::debug!(target: "el::pool", %error, "blob proofs do not verify");
        PoolError::from(BlobSidecarError::InvalidProof)
    })
}

/// Sidecars of pooled blob transactions, and of recently retired ones, by transaction hash, with an
/// index from each blob's versioned hash.
#[derive(Debug, Default)]
pub(crate) struct BlobStore {
    sidecars: HashMap<B256, Arc<BlobTransactionSidecar>>,
    /// Versioned hash → (transaction hash, index of the blob in its sidecar).
    blobs: HashMap<B256, (B256, usize)>,
    /// Transactions that left the pool, oldest first; their sidecars go past [`MAX_RETIRED_BLOBS`].
    retired: VecDeque<B256>,
    retired_blobs: usize,
}

impl BlobStore {
    /// Keeps the sidecar of a pooled transaction (taking it back from the retired ones, if there).
    pub(crate) fn insert(&mut self, tx_hash: B256, sidecar: Arc<BlobTransactionSidecar>) {
        if let Some(position) = self.retired.iter().position(|h| *h == tx_hash) {
            self.retired.remove(position);
            self.retired_blobs = self.retired_blobs.saturating_sub(sidecar.blobs.len());
        }
        for (index, hash) in sidecar.versioned_hashes().enumerate() {
            self.blobs.insert(hash, (tx_hash, index));
        }
        self.sidecars.insert(tx_hash, sidecar);
    }

    /// The sidecar of a pooled or retired transaction.
    pub(crate) fn get(&self, tx_hash: &B256) -> Option<Arc<BlobTransactionSidecar>> {
        self.sidecars.get(tx_hash).cloned()
    }

    /// The transaction left the pool by inclusion: keep its sidecar while there is room.
    pub(crate) fn retire(&mut self, tx_hash: B256) {
        let Some(sidecar) = self.sidecars.get(&tx_hash) else { return };
        if self.retired.contains(&tx_hash) {
            return;
        }
        self.retired_blobs += sidecar.blobs.len();
        self.retired.push_back(tx_hash);
        while self.retired_blobs > MAX_RETIRED_BLOBS {
            let Some(oldest) = self.retired.pop_front() else { break };
            if let Some(sidecar) = self.remove(&oldest) {
                self.retired_blobs = self.retired_blobs.saturating_sub(sidecar.blobs.len());
            }
        }
    }

    /// Drops a sidecar now (its transaction was replaced or evicted).
    pub(crate) fn remove(&mut self, tx_hash: &B256) -> Option<Arc<BlobTransactionSidecar>> {
        let sidecar = self.sidecars.remove(tx_hash)?;
        for hash in sidecar.versioned_hashes() {
            if self.blobs.get(&hash).is_some_and(|(owner, _)| owner == tx_hash) {
                self.blobs.remove(&hash);
            }
        }
        Some(sidecar)
    }

    /// A blob and its proof by versioned hash.
    pub(crate) fn blob_and_proof(&self, versioned_hash: &B256) -> Option<BlobAndProofV1> {
        let (tx_hash, index) = self.blobs.get(versioned_hash)?;
        let sidecar = self.sidecars.get(tx_hash)?;
        Some(BlobAndProofV1 {
            blob: Box::new(*sidecar.blobs.get(*index)?),
            proof: *sidecar.proofs.get(*index)?,
        })
    }
}
