//! The client's asset cache: least recently used, bounded by entries
//! (`assetManager.maxCacheSize`) and by bytes, with hit/miss figures and the seed's tuning rule
//! (a hit rate under 80% grows the cache, up to a memory cap).
//!
//! Plain Rust: the Bevy side stores strong handles as values, so an eviction is what lets Bevy
//! unload the asset.

use std::collections::{BTreeMap, HashMap};

use crate::integration::{Direction, OptimisationRule, Transition};

/// Lookups per tuning window.
pub const TUNE_WINDOW: u64 = 200;

/// Figures over the cache's life.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CacheStats {
    /// Lookups that found the entry.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
    /// Entries pushed out to stay within the bounds.
    pub evictions: u64,
    /// Entries now.
    pub entries: usize,
    /// Bytes now.
    pub bytes: u64,
    /// Entry bound now.
    pub max_entries: usize,
    /// Byte bound now.
    pub max_bytes: u64,
    /// Times the tuning rule grew the cache.
    pub grown: u64,
}

impl CacheStats {
    /// Hits over lookups (1 when there were none).
    pub fn hit_rate(&self) -> f64 {
        let n = self.hits + self.misses;
        if n == 0 {
            1.0
        } else {
            self.hits as f64 / n as f64
        }
    }
}

struct Slot<V> {
    value: V,
    bytes: u64,
    stamp: u64,
}

/// An LRU cache keyed by asset file path.
pub struct LruCache<V> {
    slots: HashMap<String, Slot<V>>,
    order: BTreeMap<u64, String>,
    clock: u64,
    bytes: u64,
    max_entries: usize,
    max_bytes: u64,
    memory_cap: u64,
    stats: CacheStats,
    window: (u64, u64),
    rule: OptimisationRule,
}

impl<V> LruCache<V> {
    /// A cache of at most `max_entries` entries and `max_bytes` bytes; the tuning rule may grow
    /// both, but never the bytes past `memory_cap`.
    pub fn new(max_entries: usize, max_bytes: u64, memory_cap: u64) -> Self {
        Self {
            slots: HashMap::new(),
            order: BTreeMap::new(),
            clock: 0,
            bytes: 0,
            max_entries: max_entries.max(1),
            max_bytes: max_bytes.max(1),
            memory_cap: memory_cap.max(max_bytes),
            stats: CacheStats::default(),
            window: (0, 0),
            rule: OptimisationRule::new("assets.cache", Direction::Low, 0.8, 0.9),
        }
    }

    fn touch(&mut self, key: &str) {
        self.clock += 1;
        if let Some(slot) = self.slots.get_mut(key) {
            self.order.remove(&slot.stamp);
            slot.stamp = self.clock;
            self.order.insert(self.clock, key.to_string());
        }
    }

    fn count(&mut self, hit: bool) {
        if hit {
            self.stats.hits += 1;
            self.window.0 += 1;
        } else {
            self.stats.misses += 1;
        }
        self.window.1 += 1;
    }

    /// Looks an entry up, counting a hit or a miss; a hit makes it the most recent.
    pub fn get(&mut self, key: &str) -> Option<&V> {
        let hit = self.slots.contains_key(key);
        self.count(hit);
        if !hit {
            return None;
        }
        self.touch(key);
        self.slots.get(key).map(|s| &s.value)
    }

    /// Whether the key is cached, without counting or reordering.
    pub fn contains(&self, key: &str) -> bool {
        self.slots.contains_key(key)
    }

    /// Inserts (or replaces) an entry; returns what was evicted to make room, oldest first.
    /// An entry larger than the byte bound on its own is still kept (alone), so a large model
    /// is never refused outright.
    pub fn put(&mut self, key: &str, value: V, bytes: u64) -> Vec<(String, V)> {
        if let Some(old) = self.slots.remove(key) {
            self.order.remove(&old.stamp);
            self.bytes = self.bytes.saturating_sub(old.bytes);
        }
        self.clock += 1;
        self.slots.insert(
            key.to_string(),
            Slot {
                value,
                bytes,
                stamp: self.clock,
            },
        );
        self.order.insert(self.clock, key.to_string());
        self.bytes = self.bytes.saturating_add(bytes);
        self.shrink_to_bounds(Some(key))
    }

    /// Updates the size of an entry (a handle's bytes are known once it has loaded).
    pub fn resize(&mut self, key: &str, bytes: u64) -> Vec<(String, V)> {
        if let Some(slot) = self.slots.get_mut(key) {
            self.bytes = self.bytes.saturating_sub(slot.bytes).saturating_add(bytes);
            slot.bytes = bytes;
        }
        self.shrink_to_bounds(Some(key))
    }

    /// Removes an entry.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        let slot = self.slots.remove(key)?;
        self.order.remove(&slot.stamp);
        self.bytes = self.bytes.saturating_sub(slot.bytes);
        Some(slot.value)
    }

    fn shrink_to_bounds(&mut self, keep: Option<&str>) -> Vec<(String, V)> {
        let mut out = Vec::new();
        while self.slots.len() > self.max_entries || self.bytes > self.max_bytes {
            let Some(victim) = self
                .order
                .values()
                .find(|k| Some(k.as_str()) != keep)
                .cloned()
            else {
                break;
            };
            if let Some(v) = self.remove(&victim) {
                self.stats.evictions += 1;
                out.push((victim, v));
            }
        }
        out
    }

    /// A new entry bound (a live config change); returns what no longer fits, oldest first.
    pub fn set_max_entries(&mut self, max_entries: usize) -> Vec<(String, V)> {
        self.max_entries = max_entries.max(1);
        self.shrink_to_bounds(None)
    }

    /// Keys from least to most recently used.
    pub fn keys_oldest_first(&self) -> impl Iterator<Item = &str> {
        self.order.values().map(String::as_str)
    }

    /// Values, in no order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.slots.values().map(|s| &s.value)
    }

    /// Figures now.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.slots.len(),
            bytes: self.bytes,
            max_entries: self.max_entries,
            max_bytes: self.max_bytes,
            ..self.stats
        }
    }

    /// The tuning rule, for its fired/settled counts.
    pub fn rule(&self) -> &OptimisationRule {
        &self.rule
    }

    /// The seed's tuning rule, evaluated once per [`TUNE_WINDOW`] lookups on that window's hit
    /// rate: under 80% engages it, and while engaged each window grows both bounds by a
    /// quarter (bytes never past the memory cap); 90% or more releases it. Returns the
    /// transition, if any, and whether the cache grew.
    pub fn tune(&mut self) -> (Option<Transition>, bool) {
        let (hits, lookups) = self.window;
        if lookups < TUNE_WINDOW {
            return (None, false);
        }
        self.window = (0, 0);
        let transition = self.rule.evaluate(hits as f64 / lookups as f64);
        let mut grew = false;
        if self.rule.engaged && self.max_bytes < self.memory_cap {
            self.max_entries += self.max_entries.div_ceil(4);
            self.max_bytes = (self.max_bytes + self.max_bytes.div_ceil(4)).min(self.memory_cap);
            self.stats.grown += 1;
            grew = true;
        }
        (transition, grew)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes come from the server's manifest: absurd ones (the fuzzer found `u64::MAX - 9`)
    /// neither overflow nor keep more than the one entry that is over the bound.
    #[test]
    fn absurd_sizes_neither_overflow_nor_pile_up() {
        let mut c = LruCache::new(8, 1000, 1000);
        c.put("a", 1, 10);
        let out = c.put("big", 2, u64::MAX - 9);
        assert_eq!(out, vec![("a".to_string(), 1)]);
        let out = c.put("bigger", 3, u64::MAX);
        assert_eq!(out, vec![("big".to_string(), 2)]);
        c.resize("bigger", u64::MAX - 1);
        assert_eq!(c.stats().entries, 1);
        assert_eq!(c.remove("bigger"), Some(3));
        assert_eq!((c.stats().entries, c.stats().bytes), (0, 0));
    }

    #[test]
    fn evicts_least_recent_by_count_and_by_bytes() {
        let mut c = LruCache::new(3, 1000, 1000);
        assert!(c.put("a", 1, 10).is_empty());
        c.put("b", 2, 10);
        c.put("c", 3, 10);
        assert_eq!(c.get("a"), Some(&1)); // a is now the most recent
        let out = c.put("d", 4, 10);
        assert_eq!(out, vec![("b".to_string(), 2)]);
        assert_eq!(
            c.keys_oldest_first().collect::<Vec<_>>(),
            vec!["c", "a", "d"]
        );
        // A large entry pushes out as many as it needs, oldest first.
        let out = c.put("e", 5, 985);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0, "c");
        assert_eq!(out[1].0, "a");
        let s = c.stats();
        assert_eq!((s.entries, s.bytes, s.evictions), (2, 995, 3));
        assert_eq!(c.get("zz"), None);
        let s = c.stats();
        assert_eq!((s.hits, s.misses), (1, 1));
        assert!((s.hit_rate() - 0.5).abs() < 1e-9);
        // Something bigger than the whole bound is kept alone rather than refused.
        let out = c.put("huge", 6, 5000);
        assert_eq!(out.len(), 2);
        assert!(c.contains("huge"));
        // Replacing an entry does not double count its bytes.
        c.put("huge", 7, 10);
        assert_eq!(c.stats().bytes, 10);
        // A smaller bound pushes out the oldest at once.
        c.put("x", 8, 10);
        c.put("y", 9, 10);
        let out = c.set_max_entries(1);
        assert_eq!(
            out.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            vec!["huge", "x"]
        );
        assert!(c.contains("y"));
    }

    #[test]
    fn a_low_hit_rate_grows_the_cache_up_to_the_cap_and_the_rule_settles() {
        let mut c: LruCache<u32> = LruCache::new(4, 400, 700);
        // A working set of 8 over a cache of 4: mostly misses.
        for i in 0..TUNE_WINDOW {
            let k = format!("k{}", i % 8);
            if c.get(&k).is_none() {
                c.put(&k, 0, 100);
            }
        }
        let (t, grew) = c.tune();
        assert_eq!(t, Some(Transition::Engaged));
        assert!(grew);
        assert_eq!(c.stats().max_entries, 5);
        assert_eq!(c.stats().max_bytes, 500);
        // Still engaged: grows again, but never past the memory cap.
        for _ in 0..3 {
            for i in 0..TUNE_WINDOW {
                let k = format!("k{}", i % 8);
                if c.get(&k).is_none() {
                    c.put(&k, 0, 100);
                }
            }
            c.tune();
        }
        assert_eq!(c.stats().max_bytes, 700);
        assert_eq!(c.stats().grown, 3);
        // A working set that fits: the hit rate recovers and the rule settles.
        for i in 0..TUNE_WINDOW {
            let k = format!("k{}", i % 3);
            if c.get(&k).is_none() {
                c.put(&k, 0, 100);
            }
        }
        let (t, grew) = c.tune();
        assert_eq!(t, Some(Transition::Released));
        assert!(!grew);
        assert_eq!(c.rule().fired, 1);
        assert_eq!(c.rule().settled, 1);
        // Under a full window nothing is evaluated.
        c.get("k0");
        assert_eq!(c.tune(), (None, false));
    }
}
