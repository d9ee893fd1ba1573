//! Polling filters (`eth_newFilter`, `eth_newBlockFilter`, `eth_getFilterChanges`, `eth_getFilterLogs`,
//! `eth_uninstallFilter`), which HTTP clients (viem, ethers) use where WebSocket clients subscribe.
//!
//! A filter remembers the last block it reported; each poll answers what the canonical chain gained since:
//! block hashes for block filters, matching logs (through the backend's `eth_getLogs`) for log filters.
//! Polling reads the canonical chain by number, so a reorg between two polls is not reported as removed
//! logs (use the `logs` subscription for that). As in geth, a filter not polled for five minutes is dropped,
//! and an unknown id is `-32000 filter not found`. The filters are shared by the HTTP and WebSocket servers.

use std::{
    collections::{HashMap, hash_map::RandomState},
    hash::BuildHasher,
    sync::Mutex,
    time::{Duration, Instant},
};

use alloy_eips::BlockNumberOrTag;
use alloy_rpc_types_eth::{Filter, FilterBlockOption, FilterChanges, Log};
use alys_el_api::{BackendError, EthBackend};
use jsonrpsee::types::ErrorObjectOwned;

use crate::error::{SERVER_ERROR_CODE, backend_error, invalid_params};

/// A filter not polled for this long is dropped (geth's deadline).
const FILTER_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// The most filters installed at once; beyond that `eth_new*Filter` fails until some expire.
const MAX_FILTERS: usize = 10_000;
/// The most block hashes one poll of a block filter answers (the newest ones).
const MAX_BLOCK_HASHES_PER_POLL: u64 = 1_024;

#[derive(Debug, Clone)]
enum Kind {
    Blocks,
    Logs(Box<Filter>),
}

#[derive(Debug)]
struct Installed {
    kind: Kind,
    /// The last block number already reported.
    reported: u64,
    polled: Instant,
}

#[derive(Debug, Default)]
struct Table {
    filters: HashMap<String, Installed>,
    next: u64,
    keys: RandomState,
}

/// The installed filters of one server.
#[derive(Debug, Default)]
pub(crate) struct Filters {
    table: Mutex<Table>,
}

fn not_found() -> ErrorObjectOwned {
    ErrorObjectOwned::owned(SERVER_ERROR_CODE, "filter not found", None::<()>)
}

fn internal_lock() -> ErrorObjectOwned {
    backend_error(&BackendError::Internal("filter table poisoned".into()))
}

impl Filters {
    fn install(&self, kind: Kind, head: u64) -> Result<String, ErrorObjectOwned> {
        let mut table = self.table.lock().map_err(|_| internal_lock())?;
        let now = Instant::now();
        table.filters.retain(|_, f| now.duration_since(f.polled) < FILTER_TIMEOUT);
        if table.filters.len() >= MAX_FILTERS {
            return Err(ErrorObjectOwned::owned(SERVER_ERROR_CODE, "too many filters", None::<()>));
        }
        let n = table.next;
        table.next = n.wrapping_add(1);
        let id = format!("0x{:016x}{:016x}", table.keys.hash_one((n, 0_u8)), table.keys.hash_one((n, 1_u8)));
        table.filters.insert(id.clone(), Installed { kind, reported: head, polled: now });
        Ok(id)
    }

    /// The filter's kind and last reported block, marking it polled; `filter not found` when unknown or
    /// expired.
    fn touch(&self, id: &str) -> Result<(Kind, u64), ErrorObjectOwned> {
        let mut table = self.table.lock().map_err(|_| internal_lock())?;
        let now = Instant::now();
        match table.filters.get_mut(id) {
            Some(f) if now.duration_since(f.polled) < FILTER_TIMEOUT => {
                f.polled = now;
                Ok((f.kind.clone(), f.reported))
            }
            Some(_) => {
                table.filters.remove(id);
                Err(not_found())
            }
            None => Err(not_found()),
        }
    }

    fn mark_reported(&self, id: &str, block: u64) -> Result<(), ErrorObjectOwned> {
        let mut table = self.table.lock().map_err(|_| internal_lock())?;
        if let Some(f) = table.filters.get_mut(id) {
            f.reported = f.reported.max(block);
        }
        Ok(())
    }

    pub(crate) fn uninstall(&self, id: &str) -> Result<bool, ErrorObjectOwned> {
        let mut table = self.table.lock().map_err(|_| internal_lock())?;
        Ok(table.filters.remove(id).is_some())
    }

    pub(crate) async fn new_block_filter<B: EthBackend>(
        &self,
        backend: &B,
    ) -> Result<String, ErrorObjectOwned> {
        let head = backend.block_number().await.map_err(|e| backend_error(&e))?;
        self.install(Kind::Blocks, head)
    }

    pub(crate) async fn new_log_filter<B: EthBackend>(
        &self,
        backend: &B,
        filter: Filter,
    ) -> Result<String, ErrorObjectOwned> {
        if filter.block_option.as_block_hash().is_some() {
            return Err(invalid_params("blockHash is not supported by eth_newFilter; use eth_getLogs"));
        }
        if let Err(err) = filter.block_option.ensure_valid_block_range() {
            return Err(invalid_params(err.to_string()));
        }
        let head = backend.block_number().await.map_err(|e| backend_error(&e))?;
        // A filter starting at an older block reports from there on its first poll.
        let start = filter.get_from_block().map_or(head, |from| from.saturating_sub(1).min(head));
        self.install(Kind::Logs(Box::new(filter)), start)
    }

    pub(crate) async fn changes<B: EthBackend>(
        &self,
        backend: &B,
        id: &str,
    ) -> Result<FilterChanges<alloy_rpc_types_eth::Transaction, Log>, ErrorObjectOwned> {
        let (kind, reported) = self.touch(id)?;
        let head = backend.block_number().await.map_err(|e| backend_error(&e))?;
        if head <= reported {
            return Ok(FilterChanges::Empty);
        }
        match kind {
            Kind::Blocks => {
                let first = (reported + 1).max(head.saturating_sub(MAX_BLOCK_HASHES_PER_POLL - 1));
                let mut hashes = Vec::new();
                for number in first..=head {
                    match backend.block(BlockNumberOrTag::Number(number).into(), false).await {
                        Ok(Some(block)) => hashes.push(block.header.hash),
                        Ok(None) | Err(BackendError::UnknownBlock) => {}
                        Err(e) => return Err(backend_error(&e)),
                    }
                }
                self.mark_reported(id, head)?;
                Ok(if hashes.is_empty() { FilterChanges::Empty } else { FilterChanges::Hashes(hashes) })
            }
            Kind::Logs(filter) => {
                let to = match filter.block_option.get_to_block() {
                    Some(BlockNumberOrTag::Number(to)) => head.min(*to),
                    _ => head,
                };
                let from = reported + 1;
                if from > to {
                    return Ok(FilterChanges::Empty);
                }
                let range = FilterBlockOption::Range {
                    from_block: Some(BlockNumberOrTag::Number(from)),
                    to_block: Some(BlockNumberOrTag::Number(to)),
                };
                let query = Filter { block_option: range, ..(*filter).clone() };
                let logs = backend.logs(query).await.map_err(|e| backend_error(&e))?;
                self.mark_reported(id, to)?;
                Ok(if logs.is_empty() { FilterChanges::Empty } else { FilterChanges::Logs(logs) })
            }
        }
    }

    pub(crate) async fn logs<B: EthBackend>(
        &self,
        backend: &B,
        id: &str,
    ) -> Result<Vec<Log>, ErrorObjectOwned> {
        match self.touch(id)? {
            (Kind::Logs(filter), _) => backend.logs(*filter).await.map_err(|e| backend_error(&e)),
            (Kind::Blocks, _) => Err(not_found()),
        }
    }
}

/// The id of a filter, as the client sends it back.
pub(crate) type FilterId = String;

/// Ids are compared as lower-case hex, as clients may re-case them.
pub(crate) fn normalize(id: FilterId) -> FilterId {
    id.to_ascii_lowercase()
}
