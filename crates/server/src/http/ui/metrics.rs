//! The Metrics page: per node (one tab each when there are several) memory, swap
//! and the system, ephemeral and persistent disks as used / available MiB (1024²
//! bytes, as the reference counts), load, CPU use, the engine's processes, the
//! parachute, and small charts over the kept window.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use store::Role;

use super::chart::Chart;
use super::{Frame, Nav, PageCaller, PageError, render};
use crate::auth::Authenticator;
use crate::http::extract::{Path, Query};
use crate::metrics::history::Sample;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "metrics.html")]
struct MetricsPage {
    page: Frame,
    i: super::views::InstanceView,
    /// Node indexes with figures, for the tabs, and each node's role in a cluster.
    tabs: Vec<(i64, Option<String>)>,
    node: Option<NodeView>,
    interval_secs: u64,
    history_text: String,
}

pub struct NodeView {
    pub index: i64,
    pub collected_at_text: String,
    pub gauges: Vec<Gauge>,
    pub load: String,
    pub cpu_percent: String,
    pub engine: String,
    pub parachute_activated: bool,
    pub parachute: Vec<ParachuteDisk>,
    pub charts: Vec<Chart>,
    /// A cluster node's role and how far behind it (or its furthest replica) is.
    pub replication: Option<String>,
}

pub struct Gauge {
    pub label: &'static str,
    pub used: String,
    pub available: String,
    pub free: String,
    pub percent: u64,
}

pub struct ParachuteDisk {
    pub name: String,
    pub used_percent: i64,
    pub threshold: i64,
    pub activated: bool,
}

#[derive(serde::Deserialize)]
pub struct NodeQuery {
    node: Option<i64>,
}

pub async fn metrics_page(
    State(state): State<AppState>,
    PageCaller(caller): PageCaller,
    Path(guid): Path<String>,
    Query(query): Query<NodeQuery>,
) -> Result<Response, PageError> {
    let instance = state.authorized_instance(&caller, &guid, Role::Read).await?;
    let role = state.auth.role(&caller.principal, &instance).await.map_err(crate::error::ApiError::from)?;
    let mut page = Frame::new(&caller);
    page.nav = Some(Nav::new(&instance.guid, "metrics", role));
    page.busy = super::pages::busy(&state, &instance).await?;
    let indexes = state.metrics.history.nodes(&instance.guid);
    let selected = query.node.filter(|n| indexes.contains(n)).or_else(|| indexes.first().copied());
    let roles = super::views::node_views(&state, &instance).await.map_err(crate::error::ApiError::internal)?;
    let tabs = indexes.into_iter().map(|n| (n, roles.iter().find(|v| v.index == n).map(|v| v.role.clone()))).collect();
    let engine = state.engine_of(&instance).ok();
    let node = selected.map(|n| {
        node_view(n, &state.metrics.history.sampled(&instance.guid, n, super::chart::MAX_POINTS), engine.as_ref())
    });
    let config = &state.config.metrics;
    Ok(render(&MetricsPage {
        page,
        i: super::views::InstanceView::new(&state, &instance),
        tabs,
        node: node.flatten(),
        interval_secs: config.interval_secs,
        history_text: super::format::seconds(config.history_secs),
    }))
}

const MIB: f64 = 1024.0 * 1024.0;

fn mib(bytes: i64) -> String {
    format!("{:.0} MiB", bytes as f64 / MIB)
}

fn gauge(label: &'static str, sample: &Sample, prefix: &str) -> Option<Gauge> {
    let total = sample.get(&format!("{prefix}.total"))?;
    let used = sample.get(&format!("{prefix}.used"))?;
    let free = sample.get(&format!("{prefix}.free"))?;
    // Disks as the parachute (and df) count them: of the space non-root users can have.
    let base = if prefix.starts_with("system.disk.") { used + free } else { total };
    let percent = if base > 0 { (used * 100 / base) as u64 } else { 0 };
    Some(Gauge { label, used: mib(used), available: mib(total), free: mib(free), percent })
}

/// Busy and total CPU milliseconds over all CPUs.
fn cpu_times(sample: &Sample) -> (i64, i64) {
    let (mut busy, mut total) = (0, 0);
    for (name, value) in sample.points() {
        let Some(rest) = name.strip_prefix("system.cpu") else { continue };
        if rest.starts_with('.') {
            continue;
        }
        if rest.ends_with(".user") || rest.ends_with(".system") {
            busy += value;
            total += value;
        } else if rest.ends_with(".idle") {
            total += value;
        }
    }
    (busy, total)
}

/// CPU use in percent between two collections.
fn cpu_percent(before: &Sample, after: &Sample) -> Option<f64> {
    let ((b0, t0), (b1, t1)) = (cpu_times(before), cpu_times(after));
    (t1 > t0).then(|| (b1 - b0) as f64 * 100.0 / (t1 - t0) as f64)
}

fn node_view(index: i64, samples: &[Sample], engine: Option<&engines::EngineRef>) -> Option<NodeView> {
    let newest = samples.last()?;
    let replication = newest.get("replication.role").map(|role| {
        let name = |role: engines::Role| engine.map_or("node", |e| e.role_name(role));
        let bytes = newest.get("replication.lag_bytes").map_or_else(|| "–".to_owned(), |b| format!("{b} bytes"));
        let seconds = newest.get("replication.lag_ms").map_or_else(|| "–".to_owned(), |ms| format!("{} s", ms / 1000));
        match role {
            1 => format!("{}; its furthest replica is {bytes} and {seconds} behind", name(engines::Role::Primary)),
            2 => format!(
                "{}; {} nodes of the cluster in step with it",
                name(engines::Role::Member),
                newest.get("replication.members").map_or_else(|| "–".to_owned(), |n| n.to_string())
            ),
            _ => format!(
                "{}; {bytes} and {seconds} behind its {}",
                name(engines::Role::Replica),
                name(engines::Role::Primary)
            ),
        }
    });
    let load = |n: &str| {
        newest.get(&format!("system.load.{n}")).map_or_else(|| "–".to_owned(), |v| format!("{:.2}", v as f64 / 1e6))
    };
    let cpu = match samples {
        [.., a, b] => cpu_percent(a, b).map_or_else(|| "–".to_owned(), |p| format!("{p:.0} %")),
        _ => "–".to_owned(),
    };
    let engine = if newest.get("process.running") == Some(1) {
        let count = newest.get("process.count").unwrap_or(0);
        format!(
            "running: {count} process{}, {} resident",
            if count == 1 { "" } else { "es" },
            mib(newest.get("process.rss").unwrap_or(0))
        )
    } else {
        "not running".to_owned()
    };
    let gauges = [
        ("Memory", "system.memory"),
        ("Swap", "system.swap"),
        ("System disk", "system.disk.system"),
        ("Ephemeral disk", "system.disk.ephemeral"),
        ("Persistent disk", "system.disk.persistent"),
    ]
    .into_iter()
    .filter_map(|(label, prefix)| gauge(label, newest, prefix))
    .collect();
    let parachute = ["ephemeral", "persistent"]
        .into_iter()
        .filter_map(|name| {
            let get = |what: &str| newest.get(&format!("parachute.disk.{name}.{what}"));
            Some(ParachuteDisk {
                name: name.to_owned(),
                used_percent: get("used_percent")?,
                threshold: get("used_threshold")?,
                activated: get("activated") == Some(1),
            })
        })
        .collect();

    let series =
        |name: &str| -> Vec<(i64, f64)> { samples.iter().filter_map(|s| Some((s.at, s.get(name)? as f64))).collect() };
    let cpu_series: Vec<(i64, f64)> =
        samples.windows(2).filter_map(|w| Some((w[1].at, cpu_percent(&w[0], &w[1])?))).collect();
    let load_series: Vec<(i64, f64)> = series("system.load.load1").into_iter().map(|(t, v)| (t, v / 1e6)).collect();
    let bytes = |v: f64| mib(v as i64);
    let charts = vec![
        Chart::new("CPU use", &cpu_series, Some(100.0), |v| format!("{v:.0} %")),
        Chart::new("Load (1 min)", &load_series, None, |v| format!("{v:.2}")),
        Chart::new(
            "Memory used",
            &series("system.memory.used"),
            newest.get("system.memory.total").map(|t| t as f64),
            bytes,
        ),
        Chart::new(
            "Persistent disk used",
            &series("system.disk.persistent.used"),
            newest.get("system.disk.persistent.total").map(|t| t as f64),
            bytes,
        ),
        Chart::new("Engine memory", &series("process.rss"), None, bytes),
    ];
    Some(NodeView {
        index,
        collected_at_text: chrono::DateTime::from_timestamp(newest.at, 0)
            .map_or_else(String::new, |t| super::format::time(&t)),
        gauges,
        load: format!("{} / {} / {}", load("load1"), load("load5"), load("load15")),
        cpu_percent: cpu,
        engine,
        parachute_activated: newest.get("parachute.activated") == Some(1),
        parachute,
        charts,
        replication,
    })
}
