//! Governance's tables: signature requests not yet answered, federation updates by effective height,
//! and accepted proposals. Values are the protobuf messages as governance sent them (the governance
//! crate verifies them again when it loads them: a database is outside data too).

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::{StorageError, Tables, WriteTx};

const SIGNATURE_REQUESTS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("signature_requests");
const FEDERATION_UPDATES: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("federation_updates");
const PROPOSALS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("proposals");

pub(crate) fn create_tables(tx: &WriteTransaction) -> Result<(), StorageError> {
    tx.open_table(SIGNATURE_REQUESTS)?;
    tx.open_table(FEDERATION_UPDATES)?;
    tx.open_table(PROPOSALS)?;
    Ok(())
}

/// Reading governance's tables.
pub trait GovernanceRead: Tables {
    /// Signature requests stored and not yet answered: (request id, encoded request), by id.
    fn signature_requests(&self) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let table = self.open(SIGNATURE_REQUESTS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (id, bytes) = entry?;
            out.push((id.value().to_owned(), bytes.value().to_vec()));
        }
        Ok(out)
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
        let table = self.open(PROPOSALS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (id, bytes) = entry?;
            out.push((id.value().to_owned(), bytes.value().to_vec()));
        }
        Ok(out)
    }
}

impl<T: Tables> GovernanceRead for T {}

impl WriteTx {
    /// Stores a signature request before it is sent.
    pub fn put_signature_request(&self, id: &str, request: &[u8]) -> Result<(), StorageError> {
        self.table(SIGNATURE_REQUESTS)?.insert(id, request)?;
        Ok(())
    }

    /// Deletes a signature request; whether it was there.
    pub fn take_signature_request(&self, id: &str) -> Result<bool, StorageError> {
        Ok(self.table(SIGNATURE_REQUESTS)?.remove(id)?.is_some())
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
        assert_eq!(read.federation_updates().unwrap(), vec![(3, b"f3".to_vec()), (9, b"f9".to_vec())]);
        assert_eq!(read.proposals().unwrap(), vec![("p".into(), b"n".to_vec())]);
        drop(read);
        let tx = store.write().unwrap();
        assert!(tx.take_signature_request("a").unwrap());
        assert!(!tx.take_signature_request("a").unwrap(), "a second answer finds nothing");
        tx.commit().unwrap();
        assert_eq!(store.read().unwrap().signature_requests().unwrap().len(), 1);
    }
}
