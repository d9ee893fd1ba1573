//! Answers to peers' sync requests, from the database: bounded, never more than
//! [`MAX_BLOCKS_PER_REQUEST`] blocks or [`MAX_RESPONSE_BYTES`] of them.

use alloy_primitives::Bytes;
use alys_network::{MAX_BLOCKS_PER_REQUEST, PeerStatus, Request, Response};
use alys_primitives::ChainHeads;
use alys_storage::{ChainRead, Storage};

/// The most block bytes one response carries (below the network's response limit); a range is cut
/// short when the next block would go over.
pub(crate) const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// The answer to `request` from the database.
pub(crate) fn answer(storage: &Storage, heads: &ChainHeads, network_id: &str, request: Request) -> Response {
    match request {
        Request::Status => Response::Status(PeerStatus {
            network_id: network_id.to_owned(),
            head: heads.head,
            finalized: heads.finalized,
        }),
        Request::BlocksByRange { start, count } => {
            let count = count.min(MAX_BLOCKS_PER_REQUEST);
            // A canonical range stops at the first height the chain does not have.
            blocks(storage, |read, i| {
                let height = start.saturating_add(i);
                if i >= count {
                    return Ok(Lookup::Done);
                }
                Ok(read.canonical_hash(height)?.map_or(Lookup::Done, Lookup::Hash))
            })
        }
        Request::BlocksByHash(hashes) => blocks(storage, |_, i| {
            let i = usize::try_from(i).unwrap_or(usize::MAX);
            Ok(hashes
                .get(i)
                .filter(|_| i < MAX_BLOCKS_PER_REQUEST as usize)
                .map_or(Lookup::Done, |h| Lookup::Hash(*h)))
        }),
        // Answered by the network itself; never reaches here.
        Request::Peers => Response::Error("not served here".into()),
    }
}

/// The next block a response wants.
enum Lookup {
    Hash(alloy_primitives::B256),
    Done,
}

/// Stored blocks `next(read, 0)`, `next(read, 1)`, … until `Done` or the byte cap (unknown hashes are
/// skipped).
fn blocks(
    storage: &Storage,
    mut next: impl FnMut(&alys_storage::ReadTx, u64) -> Result<Lookup, alys_storage::StorageError>,
) -> Response {
    let result = storage.read().and_then(|read| {
        let mut out = Vec::new();
        let mut size = 0;
        for i in 0.. {
            let Lookup::Hash(hash) = next(&read, i)? else { break };
            if let Some(bytes) = read.block_bytes(&hash)? {
                size += bytes.len();
                if size > MAX_RESPONSE_BYTES && !out.is_empty() {
                    break;
                }
                out.push(Bytes::from(bytes));
            }
        }
        Ok(out)
    });
    result.map_or_else(|e| Response::Error(format!("database: {e}")), Response::Blocks)
}
