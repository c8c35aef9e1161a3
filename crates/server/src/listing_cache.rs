//! Backup listings as last served, by instance: a client polling an instance's
//! backups (the API's JSON, or the Backups page's `<main>`) is answered from
//! here, after its access is checked, while the instance's listing version
//! holds. The state store moves that version on with every change to what the
//! listing or the page shows, whichever process or replica made it, so a kept
//! listing is never served stale. A listing with a running backup or restore is
//! not kept: its progress moves with the clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;

/// What the kept listings of one kind may take in all; past it, others make room.
const BUDGET_BYTES: usize = 16 << 20;

#[derive(Debug)]
pub struct ListingCache<T = Listing> {
    kept: Mutex<Kept<T>>,
}

impl<T> Default for ListingCache<T> {
    fn default() -> Self {
        Self { kept: Mutex::new(Kept { by_instance: HashMap::new(), bytes: 0 }) }
    }
}

#[derive(Debug)]
struct Kept<T> {
    by_instance: HashMap<String, T>,
    bytes: usize,
}

/// A kept answer, and what it takes of the budget.
pub trait Weighed: Clone {
    fn bytes(&self) -> usize;
}

/// A listing's JSON as served at a version of the instance's listing.
#[derive(Debug, Clone)]
pub struct Listing {
    pub version: i64,
    pub body: Bytes,
}

impl Weighed for Listing {
    fn bytes(&self) -> usize {
        self.body.len()
    }
}

/// The Backups page's `<main>` as rendered at a version of the instance's
/// listing from this instance row, for those who may manage the instance and
/// for those who may only read it (each once one of them asked): served again
/// only while both the version and the row still hold, to the role it was
/// rendered for.
#[derive(Debug, Clone)]
pub struct KeptPage {
    pub version: i64,
    pub instance: store::Instance,
    pub for_managers: Option<Arc<str>>,
    pub for_readers: Option<Arc<str>>,
}

impl KeptPage {
    /// The `<main>` rendered for this role, if one was.
    pub fn main(&self, may_manage: bool) -> Option<&Arc<str>> {
        match may_manage {
            true => self.for_managers.as_ref(),
            false => self.for_readers.as_ref(),
        }
    }

    /// `kept` with `main` for this role beside what it held when it is of the
    /// same version and row; otherwise a page with `main` alone.
    pub fn with(
        kept: Option<&Self>,
        version: i64,
        instance: store::Instance,
        may_manage: bool,
        main: Arc<str>,
    ) -> Self {
        let mut page = match kept {
            Some(kept) if kept.version == version && kept.instance == instance => kept.clone(),
            _ => Self { version, instance, for_managers: None, for_readers: None },
        };
        match may_manage {
            true => page.for_managers = Some(main),
            false => page.for_readers = Some(main),
        }
        page
    }
}

impl Weighed for Arc<KeptPage> {
    fn bytes(&self) -> usize {
        [&self.for_managers, &self.for_readers].into_iter().flatten().map(|m| m.len()).sum()
    }
}

impl<T: Weighed> ListingCache<T> {
    /// The listing kept for the instance with this guid, whatever its version.
    pub fn get(&self, instance_guid: &str) -> Option<T> {
        self.lock().by_instance.get(instance_guid).cloned()
    }

    /// Keeps `listing` for the instance, in place of any older one.
    pub fn keep(&self, instance_guid: &str, listing: T) {
        let size = listing.bytes();
        if size > BUDGET_BYTES {
            return;
        }
        let mut kept = self.lock();
        if let Some(old) = kept.by_instance.remove(instance_guid) {
            kept.bytes -= old.bytes();
        }
        // Whichever comes first in the map's (random) order makes room: polls
        // put back what they still ask for.
        while kept.bytes + size > BUDGET_BYTES {
            let Some(guid) = kept.by_instance.keys().next().cloned() else { break };
            if let Some(old) = kept.by_instance.remove(&guid) {
                kept.bytes -= old.bytes();
            }
        }
        kept.bytes += size;
        kept.by_instance.insert(instance_guid.to_owned(), listing);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept<T>> {
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
        let cache: ListingCache = ListingCache::default();
        cache.keep("a", listing(1, 10));
        cache.keep("a", listing(7, 20));
        let kept = cache.get("a").unwrap();
        assert_eq!((kept.version, kept.body.len()), (7, 20));
        assert_eq!(cache.lock().bytes, 20);
        assert!(cache.get("b").is_none());
    }

    #[test]
    fn listings_past_the_budget_make_room() {
        let cache: ListingCache = ListingCache::default();
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
