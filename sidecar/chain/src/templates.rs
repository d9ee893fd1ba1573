//! The work templates handed to merged miners, bounded so that nobody can push honest miners' work out.
//!
//! `createauxblock` is public: anyone may ask for work paying any address. Every template must be kept
//! until its batch is finalized, because a proof for it may still arrive; but memory must stay bounded.
//! The cache has two segments, each least-recently-used:
//!
//! - **probation** ([`PROBATION`] entries): a template asked for once. Random payout addresses land
//!   here and push out only each other.
//! - **protected** ([`PROTECTED`] entries): a template asked for again (a miner polling for the same
//!   head, as pools do every few seconds). An honest miner's current work lives here and is refreshed
//!   by every poll; a flood of fresh addresses cannot reach it.
//!
//! A submitted proof is looked up in both segments. Everything is dropped when a batch is finalized.

use std::{collections::HashMap, num::NonZeroUsize};

use alloy_primitives::{Address, B256};
use alys_auxpow::AuxPowHeader;
use lru::LruCache;

/// Templates asked for once.
pub(crate) const PROBATION: usize = 4_096;
/// Templates asked for more than once.
pub(crate) const PROTECTED: usize = 1_024;

/// A template as handed out: the proof header it becomes (without the proof yet) and the miner's
/// coinbase value in satoshis.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pub(crate) header: AuxPowHeader,
    pub(crate) coinbase_value: u64,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct TemplateCache {
    probation: LruCache<B256, Template>,
    protected: LruCache<B256, Template>,
    /// The template of each (payout address, head), by committed hash.
    by_work: HashMap<(Address, B256), B256>,
}

impl Default for TemplateCache {
    fn default() -> Self {
        Self::with_capacity(PROBATION, PROTECTED)
    }
}

impl TemplateCache {
    /// A cache with the given segment sizes (at least one entry each).
    pub(crate) fn with_capacity(probation: usize, protected: usize) -> Self {
        let size = |n: usize| NonZeroUsize::new(n.max(1)).unwrap_or(NonZeroUsize::MIN);
        Self {
            probation: LruCache::new(size(probation)),
            protected: LruCache::new(size(protected)),
            by_work: HashMap::new(),
        }
    }

    /// The template already handed to `miner` for `head`, if still kept; a repeated request promotes
    /// it to the protected segment.
    pub(crate) fn find(&mut self, miner: Address, head: B256) -> Option<(B256, u64)> {
        let hash = *self.by_work.get(&(miner, head))?;
        if let Some(template) = self.protected.get(&hash) {
            return Some((hash, template.coinbase_value));
        }
        let template = self.probation.pop(&hash)?;
        let value = template.coinbase_value;
        self.insert_protected(hash, template);
        Some((hash, value))
    }

    /// Keeps a newly made template.
    pub(crate) fn insert(&mut self, hash: B256, template: Template) {
        self.by_work.insert((template.header.miner, template.header.head), hash);
        if let Some((evicted, old)) = self.probation.push(hash, template)
            && evicted != hash
        {
            self.forget(evicted, &old);
        }
    }

    /// The template a proof names, if kept.
    pub(crate) fn get(&self, hash: &B256) -> Option<&Template> {
        self.protected.peek(hash).or_else(|| self.probation.peek(hash))
    }

    /// Drops every template (a batch was finalized: they all name the old finalized block).
    pub(crate) fn clear(&mut self) {
        self.probation.clear();
        self.protected.clear();
        self.by_work.clear();
    }

    /// Templates kept.
    pub(crate) fn len(&self) -> usize {
        self.probation.len() + self.protected.len()
    }

    fn insert_protected(&mut self, hash: B256, template: Template) {
        if let Some((evicted, old)) = self.protected.push(hash, template)
            && evicted != hash
        {
            self.forget(evicted, &old);
        }
    }

    fn forget(&mut self, hash: B256, template: &Template) {
        let key = (template.header.miner, template.header.head);
        if self.by_work.get(&key) == Some(&hash) {
            self.by_work.remove(&key);
        }
        metrics::counter!("alys_auxpow_templates_evicted_total").increment(1);
    }
}

#[cfg(test)]
mod tests {
    use alloy_primitives::Bytes;

    use super::*;

    fn template(miner: u64, head: u8) -> (B256, Template) {
        let miner = Address::from_word(B256::from(alloy_primitives::U256::from(miner)));
        let header = AuxPowHeader {
            finalized: B256::ZERO,
            head: B256::repeat_byte(head),
            head_height: 1,
            miner,
            bits: 0x207f_ffff,
            proof: Bytes::new(),
        };
        (header.aux_hash(1), Template { header, coinbase_value: 7 })
    }

    #[test]
    fn a_flood_of_new_addresses_does_not_evict_a_polling_miner() {
        let mut cache = TemplateCache::with_capacity(64, 8);
        let (honest, work) = template(1, 1);
        let miner = work.header.miner;
        cache.insert(honest, work);
        assert_eq!(cache.find(miner, B256::repeat_byte(1)), Some((honest, 7)), "the miner polls again");
        for n in 0..10_000 {
            let (hash, work) = template(1_000 + n, 1);
            cache.insert(hash, work);
        }
        assert!(cache.get(&honest).is_some(), "the honest miner's work survived the flood");
        assert_eq!(cache.find(miner, B256::repeat_byte(1)), Some((honest, 7)));
        assert!(cache.len() <= 64 + 8, "memory stays bounded: {}", cache.len());
    }

    #[test]
    fn repeated_requests_get_the_same_work_and_finality_clears_it() {
        let mut cache = TemplateCache::default();
        let (hash, work) = template(5, 2);
        let miner = work.header.miner;
        assert_eq!(cache.find(miner, B256::repeat_byte(2)), None);
        cache.insert(hash, work);
        assert_eq!(cache.find(miner, B256::repeat_byte(2)), Some((hash, 7)));
        assert_eq!(cache.find(miner, B256::repeat_byte(2)), Some((hash, 7)));
        assert_eq!(cache.find(miner, B256::repeat_byte(3)), None, "another head is other work");
        cache.clear();
        assert!(cache.get(&hash).is_none());
        assert_eq!(cache.len(), 0);
    }
}
