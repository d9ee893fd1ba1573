//! Governance's tables: signature requests not yet answered, answers not yet taken, federation updates
//! by effective height, and accepted proposals. Values are the protobuf messages as governance sent them
//! (the governance crate verifies them again when it loads them: a database is outside data too).
//!
//! A federation update or proposal is written only in a transaction that has read the chain's head
//! ([`crate::ChainRead::head`]) and found it below the decision's effective height: write transactions
//! run one at a time, so no block at or above that height existed when the decision was committed.
//!
//! # A signature request's life
//!
//! ```text
//!   put_signature_request          answer_signature_request           take_signature_response
//! ─────────────────────────▶ pending ─────────────────────────▶ answered ─────────────────────────▶ gone
//!   (stored before it is sent)        (one commit: the request       (by the consumer, in the same
//!                                      leaves, its answer arrives)    transaction as what it did with it)
//! ```
//!
//! An answer is stored only for a request that is pending, in the same transaction that removes the
//! request, so a second copy of the same answer (governance repeats itself after a reconnect) finds
//! nothing pending and is not stored again: every request is answered at most once. The answer then stays
//! until a consumer takes it: a caller that timed out, or a node that restarted in between, still finds
//! it. A consumer with state of its own (the peg-out signer) takes it inside the write transaction that
//! records what it did with the signatures, so either both happen or neither.

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::{StorageError, Tables, WriteTx};

const SIGNATURE_REQUESTS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("signature_requests");
const SIGNATURE_RESPONSES: TableDefinition<'static, &str, &[u8]> =
    TableDefinition::new("signature_responses");
const FEDERATION_UPDATES: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("federation_updates");
const PROPOSALS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("proposals");

pub(crate) fn create_tables(tx: &WriteTransaction) -> Result<(), StorageError> {
    tx.open_table(SIGNATURE_REQUESTS)?;
    tx.open_table(SIGNATURE_RESPONSES)?;
    tx.open_table(FEDERATION_UPDATES)?;
    tx.open_table(PROPOSALS)?;
    Ok(())
}

/// Every entry of a string-keyed table, by key.
fn all<T: Tables + ?Sized>(
    tables: &T,
    def: TableDefinition<'static, &'static str, &'static [u8]>,
) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
    let table = tables.open(def)?;
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (id, bytes) = entry?;
        out.push((id.value().to_owned(), bytes.value().to_vec()));
    }
    Ok(out)
}

/// Reading governance's tables.
pub trait GovernanceRead: Tables {
    /// Signature requests stored and not yet answered: (request id, encoded request), by id.
    fn signature_requests(&self) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        all(self, SIGNATURE_REQUESTS)
    }

    /// The pending signature request `id`, encoded, if it is still waiting for its answer.
    fn signature_request(&self, id: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.open(SIGNATURE_REQUESTS)?.get(id)?.map(|bytes| bytes.value().to_vec()))
    }

    /// Answers stored and not yet taken: (request id, encoded response), by id.
    fn signature_responses(&self) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        all(self, SIGNATURE_RESPONSES)
    }

    /// The answer to request `id`, encoded, if it arrived and was not taken yet.
    fn signature_response(&self, id: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.open(SIGNATURE_RESPONSES)?.get(id)?.map(|bytes| bytes.value().to_vec()))
    }

    /// Federation updates: (effective height, encoded update), ascending.
    fn federation_updates(&self) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        let table = self.open(FEDERATION_UPDATES)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (height, bytes) = entry?;
            out.push((height.value(), bytes.value().to_vec()));
        }
        Ok(out)
    }

    /// Accepted proposals: (proposal id, encoded notification), by id.
    fn proposals(&self) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        all(self, PROPOSALS)
    }
}

impl<T: Tables> GovernanceRead for T {}

impl WriteTx {
    /// Stores a signature request before it is sent.
    pub fn put_signature_request(&self, id: &str, request: &[u8]) -> Result<(), StorageError> {
        self.table(SIGNATURE_REQUESTS)?.insert(id, request)?;
        Ok(())
    }

    /// Deletes a signature request without an answer; whether it was there.
    pub fn take_signature_request(&self, id: &str) -> Result<bool, StorageError> {
        Ok(self.table(SIGNATURE_REQUESTS)?.remove(id)?.is_some())
    }

    /// The answer to request `id` arrived: if the request is pending, removes it and stores `response`
    /// in its place, and returns true; otherwise (a repeated answer, or one to a request this node
    /// never made) changes nothing and returns false.
    pub fn answer_signature_request(&self, id: &str, response: &[u8]) -> Result<bool, StorageError> {
        if self.table(SIGNATURE_REQUESTS)?.remove(id)?.is_none() {
            return Ok(false);
        }
        self.table(SIGNATURE_RESPONSES)?.insert(id, response)?;
        Ok(true)
    }

    /// Removes and returns the stored answer to request `id`: the consumer's durable take, to commit
    /// with whatever it did with the answer. `None` if there is none (not answered yet, or taken).
    pub fn take_signature_response(&self, id: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.table(SIGNATURE_RESPONSES)?.remove(id)?.map(|bytes| bytes.value().to_vec()))
    }

    /// Stores a verified federation update by its effective height.
    pub fn put_federation_update(&self, height: u64, update: &[u8]) -> Result<(), StorageError> {
        self.table(FEDERATION_UPDATES)?.insert(height, update)?;
        Ok(())
    }

    /// Stores a verified proposal by id.
    pub fn put_proposal(&self, id: &str, notification: &[u8]) -> Result<(), StorageError> {
        self.table(PROPOSALS)?.insert(id, notification)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]
    use super::*;
    use crate::Storage;

    #[test]
    fn requests_updates_and_proposals_round_trip() {
        let store = Storage::in_memory().unwrap();
        let tx = store.write().unwrap();
        tx.put_signature_request("b", b"2").unwrap();
        tx.put_signature_request("a", b"1").unwrap();
        tx.put_federation_update(9, b"f9").unwrap();
        tx.put_federation_update(3, b"f3").unwrap();
        tx.put_proposal("p", b"n").unwrap();
        tx.commit().unwrap();
        let read = store.read().unwrap();
        assert_eq!(
            read.signature_requests().unwrap(),
            vec![("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec())]
        );
        assert_eq!(read.signature_request("b").unwrap(), Some(b"2".to_vec()));
        assert_eq!(read.signature_request("c").unwrap(), None);
        assert_eq!(read.federation_updates().unwrap(), vec![(3, b"f3".to_vec()), (9, b"f9".to_vec())]);
        assert_eq!(read.proposals().unwrap(), vec![("p".into(), b"n".to_vec())]);
        drop(read);
        let tx = store.write().unwrap();
        assert!(tx.take_signature_request("a").unwrap());
        assert!(!tx.take_signature_request("a").unwrap(), "a second answer finds nothing");
        tx.commit().unwrap();
        assert_eq!(store.read().unwrap().signature_requests().unwrap().len(), 1);
    }

    #[test]
    fn an_answer_replaces_its_request_once_and_stays_until_taken() {
        let store = Storage::in_memory().unwrap();
        let tx = store.write().unwrap();
        tx.put_signature_request("r", b"request").unwrap();
        tx.commit().unwrap();

        let tx = store.write().unwrap();
        assert!(tx.answer_signature_request("r", b"first").unwrap());
        assert!(!tx.answer_signature_request("r", b"second").unwrap(), "a repeated answer is not stored");
        assert!(!tx.answer_signature_request("never-asked", b"x").unwrap());
        tx.commit().unwrap();
        let read = store.read().unwrap();
        assert!(read.signature_requests().unwrap().is_empty());
        assert_eq!(read.signature_responses().unwrap(), vec![("r".into(), b"first".to_vec())]);
        assert_eq!(read.signature_response("r").unwrap(), Some(b"first".to_vec()));
        drop(read);

        // A take that is not committed leaves the answer where it was.
        let tx = store.write().unwrap();
        assert_eq!(tx.take_signature_response("r").unwrap(), Some(b"first".to_vec()));
        drop(tx);
        assert_eq!(store.read().unwrap().signature_response("r").unwrap(), Some(b"first".to_vec()));

        let tx = store.write().unwrap();
        assert_eq!(tx.take_signature_response("r").unwrap(), Some(b"first".to_vec()));
        assert_eq!(tx.take_signature_response("r").unwrap(), None, "taken once");
        tx.commit().unwrap();
        assert!(store.read().unwrap().signature_responses().unwrap().is_empty());
    }
}
