//! How each archiving instance's hand-overs are going, for the overview, the CLI
//! and Prometheus: archiving is behind when the last hand-over failed (the backup
//! store is unreachable, say), and PostgreSQL then keeps its files and retries.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    pub last_ok: Option<DateTime<Utc>>,
    pub last_error: Option<(DateTime<Utc>, String)>,
}

impl Health {
    /// Whether the newest hand-over failed.
    pub fn behind(&self) -> bool {
        match (&self.last_error, self.last_ok) {
            (Some((failed, _)), Some(ok)) => *failed > ok,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// Since this svcdash started, by instance guid.
#[derive(Default)]
pub struct ArchiveHealth {
    by_instance: Mutex<HashMap<String, Health>>,
}

impl ArchiveHealth {
    pub fn archived(&self, instance: &str) {
        self.with(instance, |h| h.last_ok = Some(Utc::now()));
    }

    pub fn failed(&self, instance: &str, why: &str) {
        self.with(instance, |h| h.last_error = Some((Utc::now(), why.to_owned())));
    }

    pub fn get(&self, instance: &str) -> Health {
        self.by_instance.lock().unwrap_or_else(|e| e.into_inner()).get(instance).cloned().unwrap_or_default()
    }

    pub fn all(&self) -> Vec<(String, Health)> {
        let map = self.by_instance.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    fn with(&self, instance: &str, change: impl FnOnce(&mut Health)) {
        let mut map = self.by_instance.lock().unwrap_or_else(|e| e.into_inner());
        change(map.entry(instance.to_owned()).or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behind_while_the_newest_hand_over_failed() {
        let health = ArchiveHealth::default();
        assert!(!health.get("a").behind());
        health.failed("a", "the store is down");
        assert!(health.get("a").behind());
        health.archived("a");
        assert!(!health.get("a").behind());
        assert!(!health.get("b").behind());
    }
}
