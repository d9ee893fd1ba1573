//! A persistent Merkle-Patricia trie with cached node hashes.
//!
//! Updates copy only the path from the root to the changed leaf; every other node is shared with the
//! previous version and keeps its cached encoding. So a block's state root costs hashing proportional to
//! what the block changed, not to the size of the state, and each block's snapshot keeps its own trie
//! version for free. Keys are 32-byte hashes (64 nibbles), so no key is a prefix of another and branch
//! nodes never carry values. Node encodings come from alloy-trie, so roots equal its `HashBuilder`'s.

use std::sync::{Arc, OnceLock};

use alloy_primitives::{B256, keccak256};
use alloy_rlp::Encodable;
use alloy_trie::{
    EMPTY_ROOT_HASH, Nibbles, TrieMask,
    nodes::{BranchNodeRef, ExtensionNodeRef, LeafNodeRef, RlpNode},
};

mod proof;

type Path = Vec<u8>;

#[derive(Debug)]
enum Node {
    Leaf { path: Path, value: Vec<u8> },
    Extension { path: Path, child: Arc<Cell> },
    Branch { children: [Option<Arc<Cell>>; 16] },
}

#[derive(Debug)]
struct Cell {
    node: Node,
    rlp: OnceLock<RlpNode>,
}

fn cell(node: Node) -> Arc<Cell> {
    Arc::new(Cell { node, rlp: OnceLock::new() })
}

fn concat(a: &[u8], b: &[u8]) -> Path {
    let mut path = Vec::with_capacity(a.len() + b.len());
    path.extend_from_slice(a);
    path.extend_from_slice(b);
    path
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Puts `(nibble, node)` pairs into a fresh branch.
fn branch(entries: [(u8, Arc<Cell>); 2]) -> Arc<Cell> {
    let mut children: [Option<Arc<Cell>>; 16] = Default::default();
    for (nibble, node) in entries {
        if let Some(slot) = children.get_mut(usize::from(nibble)) {
            *slot = Some(node);
        }
    }
    cell(Node::Branch { children })
}

/// `prefix` followed by `node`: merges paths so no extension points at a leaf or an extension.
fn prefixed(prefix: &[u8], node: Arc<Cell>) -> Arc<Cell> {
    if prefix.is_empty() {
        return node;
    }
    match &node.node {
        Node::Leaf { path, value } => cell(Node::Leaf { path: concat(prefix, path), value: value.clone() }),
        Node::Extension { path, child } => {
            cell(Node::Extension { path: concat(prefix, path), child: Arc::clone(child) })
        }
        Node::Branch { .. } => cell(Node::Extension { path: prefix.to_vec(), child: node }),
    }
}

fn insert(node: Option<Arc<Cell>>, key: &[u8], value: Vec<u8>) -> Arc<Cell> {
    let Some(mut existing) = node else { return cell(Node::Leaf { path: key.to_vec(), value }) };
    // A node no older version shares (made earlier in this batch of updates) is changed in place.
    if let Some(owned) = Arc::get_mut(&mut existing) {
        match &mut owned.node {
            Node::Branch { children } => {
                if let Some((&first, rest)) = key.split_first()
                    && let Some(slot) = children.get_mut(usize::from(first))
                {
                    *slot = Some(insert(slot.take(), rest, value));
                    owned.rlp = OnceLock::new();
                }
                return existing;
            }
            Node::Leaf { path, value: old } if path.as_slice() == key => {
                *old = value;
                owned.rlp = OnceLock::new();
                return existing;
            }
            _ => {}
        }
    }
    match &existing.node {
        Node::Leaf { path, value: old } => {
            if path.as_slice() == key {
                return cell(Node::Leaf { path: path.clone(), value });
            }
            let common = common_prefix(path, key);
            let (Some(&a), Some(&b)) = (path.get(common), key.get(common)) else {
                // Keys have equal length, so differing keys differ at some nibble.
                return cell(Node::Leaf { path: key.to_vec(), value });
            };
            let old_leaf = cell(Node::Leaf {
                path: path.get(common + 1..).unwrap_or_default().to_vec(),
                value: old.clone(),
            });
            let new_leaf =
                cell(Node::Leaf { path: key.get(common + 1..).unwrap_or_default().to_vec(), value });
            prefixed(key.get(..common).unwrap_or_default(), branch([(a, old_leaf), (b, new_leaf)]))
        }
        Node::Extension { path, child } => {
            let common = common_prefix(path, key);
            if common == path.len() {
                let child = insert(Some(Arc::clone(child)), key.get(common..).unwrap_or_default(), value);
                return cell(Node::Extension { path: path.clone(), child });
            }
            let (Some(&a), Some(&b)) = (path.get(common), key.get(common)) else {
                return cell(Node::Leaf { path: key.to_vec(), value });
            };
            let rest = prefixed(path.get(common + 1..).unwrap_or_default(), Arc::clone(child));
            let new_leaf =
                cell(Node::Leaf { path: key.get(common + 1..).unwrap_or_default().to_vec(), value });
            prefixed(key.get(..common).unwrap_or_default(), branch([(a, rest), (b, new_leaf)]))
        }
        Node::Branch { children } => {
            let Some((&first, rest)) = key.split_first() else { return Arc::clone(&existing) };
            let mut children = children.clone();
            if let Some(slot) = children.get_mut(usize::from(first)) {
                *slot = Some(insert(slot.take(), rest, value));
            }
            cell(Node::Branch { children })
        }
    }
}

/// `None` when the key is absent (nothing changes); `Some(None)` when the node disappears.
fn remove(node: &Arc<Cell>, key: &[u8]) -> Option<Option<Arc<Cell>>> {
    match &node.node {
        Node::Leaf { path, .. } => (path.as_slice() == key).then_some(None),
        Node::Extension { path, child } => {
            let rest = key.strip_prefix(path.as_slice())?;
            Some(remove(child, rest)?.map(|child| prefixed(path, child)))
        }
        Node::Branch { children } => {
            let (&first, rest) = key.split_first()?;
            let index = usize::from(first);
            let updated = remove(children.get(index)?.as_ref()?, rest)?;
            let mut children = children.clone();
            if let Some(slot) = children.get_mut(index) {
                *slot = updated;
            }
            let mut present = children.iter().enumerate().filter_map(|(i, c)| c.as_ref().map(|c| (i, c)));
            match (present.next(), present.next()) {
                (None, _) => Some(None),
                (Some((i, only)), None) => Some(Some(prefixed(&[i as u8], Arc::clone(only)))),
                _ => Some(Some(cell(Node::Branch { children }))),
            }
        }
    }
}

fn rlp(cell: &Cell) -> &RlpNode {
    cell.rlp.get_or_init(|| RlpNode::from_rlp(&encode(&cell.node)))
}

/// A node's full RLP encoding, children referenced by their (cached) RLP or hash.
fn encode(node: &Node) -> Vec<u8> {
    let mut buf = Vec::new();
    match node {
        Node::Leaf { path, value } => {
            LeafNodeRef::new(&Nibbles::from_nibbles_unchecked(path), value).encode(&mut buf);
        }
        Node::Extension { path, child } => {
            ExtensionNodeRef::new(&Nibbles::from_nibbles_unchecked(path), rlp(child)).encode(&mut buf);
        }
        Node::Branch { children } => {
            let mut stack = Vec::with_capacity(16);
            let mut mask = 0u16;
            for (i, child) in children.iter().enumerate() {
                if let Some(child) = child {
                    stack.push(rlp(child).clone());
                    mask |= 1 << i;
                }
            }
            BranchNodeRef::new(&stack, TrieMask::new(mask)).encode(&mut buf);
        }
    }
    buf
}

/// A Merkle-Patricia trie over 32-byte keys. Cloning is O(1).
#[derive(Debug, Clone, Default)]
pub(crate) struct Trie {
    root: Option<Arc<Cell>>,
}

impl Trie {
    /// Sets `key` to the RLP-encoded `value`.
    pub(crate) fn insert(&mut self, key: B256, value: Vec<u8>) {
        let nibbles = Nibbles::unpack(key);
        self.root = Some(insert(self.root.take(), &nibbles.to_vec(), value));
    }

    /// Removes `key`, if present.
    pub(crate) fn remove(&mut self, key: B256) {
        let nibbles = Nibbles::unpack(key);
        if let Some(root) = &self.root
            && let Some(updated) = remove(root, &nibbles.to_vec())
        {
            self.root = updated;
        }
    }

    /// The root hash.
    pub(crate) fn root(&self) -> B256 {
        // Hash the two halves of a large root branch on two threads; the root then reuses the cache.
        if let Some(root) = &self.root
            && root.rlp.get().is_none()
            && let Node::Branch { children } = &root.node
            && self.pending_nodes_hint(children)
        {
            let (left, right) = children.split_at(8);
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    for child in left.iter().flatten() {
                        let _ = rlp(child);
                    }
                });
                for child in right.iter().flatten() {
                    let _ = rlp(child);
                }
            });
        }
        self.root_hash()
    }

    /// Whether enough nodes below the root need hashing to be worth a second thread.
    fn pending_nodes_hint(&self, children: &[Option<Arc<Cell>>; 16]) -> bool {
        let pending_grandchildren: usize = children
            .iter()
            .flatten()
            .map(|child| match &child.node {
                Node::Branch { children } => {
                    children.iter().flatten().filter(|c| c.rlp.get().is_none()).count()
                }
                _ => 0,
            })
            .sum();
        pending_grandchildren >= 64
    }

    fn root_hash(&self) -> B256 {
        match &self.root {
            None => EMPTY_ROOT_HASH,
            Some(root) => {
                let node = rlp(root);
                node.as_hash().unwrap_or_else(|| keccak256(node.as_slice()))
            }
        }
    }

    /// Whether the trie has no keys.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.root.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::U256;
    use std::collections::BTreeMap;

    fn reference(map: &BTreeMap<B256, Vec<u8>>) -> B256 {
        let mut hb = alloy_trie::HashBuilder::default();
        for (key, value) in map {
            hb.add_leaf(Nibbles::unpack(key), value);
        }
        hb.root()
    }

    #[test]
    fn large_batches_hash_in_parallel_and_match() {
        let mut trie = Trie::default();
        let mut map = BTreeMap::new();
        for round in 0..3u64 {
            for i in 0..2_000u64 {
                let key = keccak256((i * (round + 1)).to_be_bytes());
                let value = alloy_rlp::encode(U256::from(round * 10_000 + i + 1));
                trie.insert(key, value.clone());
                map.insert(key, value);
            }
            assert_eq!(trie.root(), reference(&map), "round {round}");
        }
    }

    #[test]
    fn matches_hash_builder_under_random_inserts_and_removes() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut trie = Trie::default();
        let mut map = BTreeMap::new();
        assert_eq!(trie.root(), EMPTY_ROOT_HASH);
        for step in 0..3_000u64 {
            // Few distinct keys so removes and overwrites happen; some keys share long prefixes.
            let k = next() % 300;
            let mut key = keccak256(k.to_be_bytes());
            if k % 7 == 0 {
                key.0[..20].fill(0xab);
            }
            if next() % 3 == 0 {
                trie.remove(key);
                map.remove(&key);
            } else {
                let value = alloy_rlp::encode(U256::from(next() % (1 << (next() % 64))));
                trie.insert(key, value.clone());
                map.insert(key, value);
            }
            if step % 97 == 0 || map.len() < 4 {
                assert_eq!(trie.root(), reference(&map), "step {step}");
            }
            let snapshot = trie.clone();
            let before = snapshot.root();
            trie.insert(B256::repeat_byte(0x11), vec![0x01]);
            assert_eq!(snapshot.root(), before, "older versions are unaffected");
            trie.remove(B256::repeat_byte(0x11));
        }
        assert_eq!(trie.root(), reference(&map));
        for key in map.keys().copied().collect::<Vec<_>>() {
            trie.remove(key);
        }
        assert!(trie.is_empty());
        assert_eq!(trie.root(), EMPTY_ROOT_HASH);
    }
}
