//! `[metrics]` and `[parachute]`: how often node figures are collected, how long
//! they are kept, where they are pushed, and when the parachute stops an engine.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Seconds between collections of every node's figures; 0 turns collection
    /// (and with it the parachute) off.
    pub interval_secs: u64,
    /// Seconds of history kept per node (in memory; older collections are dropped).
    pub history_secs: u64,
    /// The most collections per node one `GET /v1/instances/{id}/metrics` answers
    /// with: what it answers without `quantity`; a larger `quantity` is refused
    /// (a day of history is tens of MB of lines).
    pub max_quantity: usize,
    /// Put the organisation (tenant) and space (subtenant) ids in front of the
    /// metric namespace: `<org>.<space>.<instance>.<deployment>.<service>.<node>`.
    pub tenancy_in_namespace: bool,
    /// A Graphite server (`host:port`, plaintext protocol) every collection is sent to.
    pub graphite: Option<String>,
    /// Bearer token Prometheus presents on `/metrics`; without one `/metrics` is off.
    #[serde(skip_serializing)]
    pub prometheus_token: Option<SecretString>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            interval_secs: 10,
            history_secs: 24 * 3600,
            max_quantity: 360,
            tenancy_in_namespace: false,
            graphite: None,
            prometheus_token: None,
        }
    }
}

impl std::fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsConfig")
            .field("interval_secs", &self.interval_secs)
            .field("history_secs", &self.history_secs)
            .field("max_quantity", &self.max_quantity)
            .field("tenancy_in_namespace", &self.tenancy_in_namespace)
            .field("graphite", &self.graphite)
            .field("prometheus_token", &self.prometheus_token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl MetricsConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        use secrecy::ExposeSecret;
        anyhow::ensure!(self.max_quantity >= 1, "[metrics] max_quantity is 0; it must be at least 1");
        if let Some(token) = &self.prometheus_token {
            anyhow::ensure!(
                token.expose_secret().len() >= 16,
                "[metrics] prometheus_token is shorter than 16 characters; use a long random one"
            );
        }
        Ok(())
    }

    /// Collections kept per node.
    pub fn capacity(&self) -> usize {
        if self.interval_secs == 0 {
            return 0;
        }
        usize::try_from(self.history_secs / self.interval_secs).unwrap_or(usize::MAX).clamp(1, 1_000_000)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParachuteConfig {
    /// Usage of the ephemeral disk (percent) at which the node's engine is stopped; 0: not watched.
    pub ephemeral_threshold: u8,
    /// Usage of the persistent disk (percent) at which the node's engine is stopped; 0: not watched.
    pub persistent_threshold: u8,
    /// Start the engine again by itself once every watched disk is back under its
    /// threshold; otherwise a restart (or recreate) by a manager is needed.
    pub auto_restart: bool,
}

impl Default for ParachuteConfig {
    fn default() -> Self {
        Self { ephemeral_threshold: 0, persistent_threshold: 80, auto_restart: false }
    }
}

impl ParachuteConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        for (disk, threshold) in self.thresholds() {
            anyhow::ensure!(threshold <= 100, "[parachute] {disk}_threshold is {threshold}; it must be 0 to 100");
        }
        Ok(())
    }

    /// The watched disks and their thresholds.
    pub fn thresholds(&self) -> impl Iterator<Item = (&'static str, u8)> {
        [("ephemeral", self.ephemeral_threshold), ("persistent", self.persistent_threshold)]
            .into_iter()
            .filter(|(_, t)| *t > 0)
    }
}
