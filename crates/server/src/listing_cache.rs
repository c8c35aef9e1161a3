//! The API's backup listings as last served, by instance: a client polling an
//! instance's backups is answered from here, after its access is checked, while
//! the instance's listing version holds. The state store moves that version on
//! with every change to what the listing shows, whichever process or replica
//! made it, so a kept listing is never served stale. A listing with a running
//! backup is not kept: its progress moves with the clock.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use axum::body::Bytes;

/// What the kept listings may take in all; past it, others make room.
const BUDGET_BYTES: usize = 16 << 20;

#[derive(Debug, Default)]
pub struct ListingCache {
    kept: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    by_instance: HashMap<String, Listing>,
    bytes: usize,
}

/// A listing's JSON as served at a version of the instance's listing.
#[derive(Debug, Clone)]
pub struct Listing {
    pub version: i64,
    pub body: Bytes,
}

impl ListingCache {
    /// The listing kept for the instance with this guid, whatever its version.
    pub fn get(&self, instance_guid: &str) -> Option<Listing> {
        self.lock().by_instance.get(instance_guid).cloned()
    }

    /// Keeps `listing` for the instance, in place of any older one.
    pub fn keep(&self, instance_guid: &str, listing: Listing) {
        let size = listing.body.len();
        if size > BUDGET_BYTES {
            return;
        }
        let mut kept = self.lock();
        if let Some(old) = kept.by_instance.remove(instance_guid) {
            kept.bytes -= old.body.len();
        }
        // Whichever comes first in the map's (random) order makes room: polls
        // put back what they still ask for.
        while kept.bytes + size > BUDGET_BYTES {
            let Some(guid) = kept.by_instance.keys().next().cloned() else { break };
            if let Some(old) = kept.by_instance.remove(&guid) {
                kept.bytes -= old.body.len();
            }
        }
        kept.bytes += size;
        kept.by_instance.insert(instance_guid.to_owned(), listing);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(version: i64, size: usize) -> Listing {
        Listing { version, body: Bytes::from(vec![b'x'; size]) }
    }

    #[test]
    fn a_newer_listing_replaces_the_kept_one() {
        let cache = ListingCache::default();
        cache.keep("a", listing(1, 10));
        cache.keep("a", listing(7, 20));
        let kept = cache.get("a").unwrap();
        assert_eq!((kept.version, kept.body.len()), (7, 20));
        assert_eq!(cache.lock().bytes, 20);
        assert!(cache.get("b").is_none());
    }

    #[test]
    fn listings_past_the_budget_make_room() {
        let cache = ListingCache::default();
        let quarter = BUDGET_BYTES / 4;
        for guid in ["a", "b", "c", "d", "e"] {
            cache.keep(guid, listing(1, quarter));
        }
        let kept = cache.lock();
        assert_eq!(kept.by_instance.len(), 4);
        assert_eq!(kept.bytes, BUDGET_BYTES);
        assert!(kept.by_instance.contains_key("e"), "the newest is kept");
        drop(kept);
        cache.keep("huge", listing(1, BUDGET_BYTES + 1));
        assert!(cache.get("huge").is_none());
    }
}
