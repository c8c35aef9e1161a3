//! Node metrics: every `[metrics] interval_secs` each node's figures are collected
//! (the reference's `system` and `parachute` points, plus the engine's `process`
//! points, and `replication` points for nodes of a cluster), the parachute acts on them, they are kept for `history_secs` and, when
//! configured, sent to Graphite. svcdash's own figures for Prometheus live in
//! [`prometheus`].

pub mod config;
mod graphite;
pub mod history;
pub mod parachute;
pub mod points;
pub mod prometheus;
pub mod system;

use std::collections::HashSet;
use std::time::Duration;

use sha2::Digest;
use store::{Instance, InstanceState};
use tokio_util::sync::CancellationToken;

use self::history::{History, NodeKey};
use crate::state::AppState;

/// How long a node may take to give its replication figures.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(2);

/// What the collector keeps, and svcdash's own counters.
pub struct Metrics {
    pub history: History,
    pub prometheus: prometheus::Prometheus,
    /// How the archiving instances' write-ahead log hand-overs are going.
    pub archive: crate::archive::health::ArchiveHealth,
}

impl Metrics {
    pub fn new(config: &config::MetricsConfig) -> Self {
        Self {
            history: History::new(config.capacity()),
            prometheus: prometheus::Prometheus::new(),
            archive: Default::default(),
        }
    }
}

pub async fn run(state: AppState, shutdown: CancellationToken) {
    let every = state.config.metrics.interval_secs;
    if every == 0 {
        return;
    }
    let mut graphite = state.config.metrics.graphite.clone().map(graphite::Graphite::new);
    let mut tick = tokio::time::interval(Duration::from_secs(every));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match collect(&state).await {
            Ok(lines) => {
                if let Some(graphite) = &mut graphite {
                    graphite.send(lines).await;
                }
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "could not collect node metrics"),
        }
    }
}

/// Collects every node once, lets the parachute act, and keeps the collection;
/// returns it as Graphite lines.
pub async fn collect(state: &AppState) -> anyhow::Result<String> {
    let started = std::time::Instant::now();
    let machine = tokio::task::spawn_blocking(system::Machine::read).await?;
    let at = chrono::Utc::now().timestamp();
    let mut live = HashSet::new();
    let mut lines = String::new();
    for instance in state.store.list_instances().await? {
        if instance.state == InstanceState::Deleted {
            continue;
        }
        let Ok(engine) = state.engine_of(&instance) else { continue };
        let nodes = match state.store.nodes(instance.id).await {
            Ok(nodes) => nodes,
            Err(e) => {
                tracing::warn!(instance = %instance.guid, error = %e, "could not read the instance's nodes; skipped this round");
                continue;
            }
        };
        // A cluster's replication figures need the nodes' credentials.
        let specs = match nodes.len() {
            0 | 1 => Vec::new(),
            _ => state.node_specs(&instance).await.unwrap_or_default(),
        };
        for node in nodes {
            let disks = parachute::node_disks(state, &instance.local_name, node.index);
            let watched = parachute::watched_of(state, &disks);
            let activated = match parachute::check(state, &instance, &node, &watched).await {
                Ok(activated) => activated,
                Err(e) => {
                    tracing::error!(instance = %instance.guid, node = node.index, error = format!("{e:#}"), "the parachute could not act");
                    node.parachute.is_some()
                }
            };
            // After the parachute acted, so a collection that stops the engine says so.
            let pids = match state.deployer.probe() {
                Some(probe) => probe.processes(&instance.local_name, node.index).await,
                None => Vec::new(),
            };
            let mut collected = points::system(&machine, &disks);
            collected.extend(points::process(machine.process_trees(&pids)));
            collected.extend(points::parachute(&watched, activated));
            if let Some(spec) = specs.iter().find(|s| s.index == node.index)
                && let Ok(Ok(Some(figures))) =
                    tokio::time::timeout(REPLICATION_TIMEOUT, state.deployer.replication(spec)).await
            {
                collected.extend(points::replication(&figures));
            }
            let namespace = namespace(state, &instance, engine.short_name(), node.index);
            lines.push_str(&history::graphite_lines(&namespace, at, &collected));
            let key = NodeKey { instance: instance.guid.clone(), node: node.index };
            live.insert(key.clone());
            state.metrics.history.record(key, namespace, at, collected);
        }
    }
    state.metrics.history.retain(&live);
    tracing::debug!(nodes = live.len(), seconds = started.elapsed().as_secs_f64(), "node metrics collected");
    Ok(lines)
}

/// Says at start what an operator should know about `[metrics]` and `[parachute]`.
pub fn warn_about_settings(state: &AppState) {
    let parachute = &state.config.parachute;
    if state.config.metrics.interval_secs == 0 {
        if parachute.thresholds().next().is_some() {
            tracing::warn!("[metrics] interval_secs = 0 turns node metrics off, and with them the parachute");
        }
        return;
    }
    let instances = state.config.instances_dir();
    if let Some(disk) = system::disk(&instances) {
        for (name, threshold) in parachute.thresholds() {
            if disk.used_percent() >= u64::from(threshold) {
                tracing::warn!(
                    folder = %instances.display(),
                    used_percent = disk.used_percent(),
                    "the filesystem holding the instances is past the parachute's {name} threshold ({threshold} %): \
                     it will stop every engine there; free space or raise [parachute] {name}_threshold"
                );
            }
        }
    }
}

/// `[<org>.<space>.]<instance_id>.<deployment_name>.<service_type>.<node_id>`.
pub fn namespace(state: &AppState, instance: &Instance, service_type: &str, node: i64) -> String {
    let mut parts = Vec::with_capacity(6);
    if state.config.metrics.tenancy_in_namespace {
        parts.push(path_part(&instance.tenant_id));
        parts.push(path_part(&instance.subtenant_id));
    }
    parts.push(path_part(&instance.guid));
    parts.push(deployment_name(&instance.guid));
    parts.push(service_type.to_owned());
    parts.push(node.to_string());
    parts.join(".")
}

/// A short name of the instance's deployment, stable for its id.
pub fn deployment_name(instance_guid: &str) -> String {
    hex::encode(sha2::Sha256::digest(instance_guid.as_bytes()))[..9].to_owned()
}

/// Ids come from the platform: keep them from breaking a Graphite path.
fn path_part(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}
