//! Merkle proofs (EIP-1186) out of the persistent trie.

use alloy_primitives::{B256, Bytes};
use alloy_trie::Nibbles;

use super::{Cell, Node, Trie, encode, rlp};

impl Trie {
    /// The nodes on the path to `key`, root first, as `eth_getProof` lists them: the root always, then each
    /// node its parent references by hash (nodes shorter than 32 bytes are inlined in their parent, as in
    /// geth). The path ends at the key's leaf, or where the key is proven absent.
    pub(crate) fn proof(&self, key: B256) -> Vec<Bytes> {
        let nibbles = Nibbles::unpack(key).to_vec();
        let mut rest = nibbles.as_slice();
        let mut proof = Vec::new();
        let mut next: Option<&Cell> = self.root.as_deref();
        while let Some(cell) = next {
            if proof.is_empty() || rlp(cell).as_hash().is_some() {
                proof.push(encode(&cell.node).into());
            }
            next = match &cell.node {
                Node::Leaf { .. } => None,
                Node::Extension { path, child } => rest.strip_prefix(path.as_slice()).map(|tail| {
                    rest = tail;
                    &**child
                }),
                Node::Branch { children } => rest.split_first().and_then(|(first, tail)| {
                    rest = tail;
                    children.get(usize::from(*first)).and_then(Option::as_deref)
                }),
            };
        }
        proof
    }
}

#[cfg(test)]
mod tests {
    use alloy_primitives::{U256, keccak256};
    use alloy_trie::proof::verify_proof;

    use super::*;

    #[test]
    fn proofs_verify_for_present_and_absent_keys() {
        let mut trie = Trie::default();
        assert_eq!(trie.proof(B256::ZERO), Vec::<Bytes>::new());
        let keys: Vec<B256> = (0..300u64).map(|i| keccak256(i.to_be_bytes())).collect();
        for (i, key) in keys.iter().enumerate() {
            trie.insert(*key, alloy_rlp::encode(U256::from(i + 1)));
        }
        let root = trie.root();
        for (i, key) in keys.iter().enumerate().step_by(7) {
            let value = alloy_rlp::encode(U256::from(i + 1));
            verify_proof(root, Nibbles::unpack(key), Some(value), &trie.proof(*key)).unwrap();
        }
        let absent = keccak256(b"absent");
        verify_proof(root, Nibbles::unpack(absent), None, &trie.proof(absent)).unwrap();
        // A one-leaf trie: the root is the leaf itself.
        let mut single = Trie::default();
        single.insert(keys[0], vec![0x01]);
        verify_proof(single.root(), Nibbles::unpack(keys[0]), Some(vec![0x01]), &single.proof(keys[0]))
            .unwrap();
    }
}
