//! A small map whose entries expire: permission answers and token owners are
//! reused for a few seconds instead of asked for on every request.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct TtlCache<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

/// Beyond this many entries, expired ones are dropped on insert.
const SWEEP_ABOVE: usize = 10_000;

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entries: Mutex::new(HashMap::new()) }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(key).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, v)| v.clone())
    }

    pub fn insert(&self, key: K, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() > SWEEP_ABOVE {
            entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
        }
        entries.insert(key, (Instant::now(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire() {
        let cache = TtlCache::new(Duration::from_millis(40));
        cache.insert("a", 1);
        assert_eq!(cache.get(&"a"), Some(1));
        assert_eq!(cache.get(&"b"), None);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(cache.get(&"a"), None);
    }

    #[test]
    fn zero_ttl_caches_nothing() {
        let cache = TtlCache::new(Duration::ZERO);
        cache.insert("a", 1);
        assert_eq!(cache.get(&"a"), None);
    }
}
