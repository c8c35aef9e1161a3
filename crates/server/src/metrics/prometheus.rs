//! svcdash's own figures for Prometheus (`GET /metrics`, text exposition format):
//! HTTP requests by route and status, job durations by kind and outcome, and the
//! jobs in the queue by kind and status (read from the store at scrape time, so
//! they are right across restarts and replicas).

use axum::http::{Method, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::state::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    /// The route template (`/v1/instances/{instance_id}/backups`), never the raw path.
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    instance: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    kind: String,
    status: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

pub struct Prometheus {
    registry: Registry,
    /// One scrape at a time: the job gauges are cleared and set anew for each.
    render: tokio::sync::Mutex<()>,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Histograms<RequestLabels>,
    job_seconds: Histograms<JobLabels>,
    jobs: Family<JobLabels, Gauge>,
    wal_handovers: Family<OutcomeLabels, Counter>,
    wal_behind: Family<InstanceLabels, Gauge>,
}

fn request_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 4.0, 9))
}

fn job_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.5, 2.0, 14))
}

impl Prometheus {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("svcdash");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        let request_seconds: Histograms<RequestLabels> = Family::new_with_constructor(request_buckets);
        registry.register("http_request_duration_seconds", "Time to answer HTTP requests", request_seconds.clone());
        let job_seconds: Histograms<JobLabels> = Family::new_with_constructor(job_buckets);
        registry.register("job_duration_seconds", "Time jobs ran, by kind and outcome", job_seconds.clone());
        let jobs = Family::<JobLabels, Gauge>::default();
        registry.register("jobs", "Jobs in the state store, by kind and status", jobs.clone());
        let wal_handovers = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "wal_handovers",
            "Write-ahead log files PostgreSQL handed to svcdash, archived or failed",
            wal_handovers.clone(),
        );
        let wal_behind = Family::<InstanceLabels, Gauge>::default();
        registry.register(
            "wal_archiving_behind",
            "1 while an instance's newest write-ahead log hand-over failed: PostgreSQL keeps its files and retries",
            wal_behind.clone(),
        );
        Self {
            registry,
            render: tokio::sync::Mutex::new(()),
            requests,
            request_seconds,
            job_seconds,
            jobs,
            wal_handovers,
            wal_behind,
        }
    }

    /// Counts and times one answered request, by its route template (`route`).
    pub fn observe_request(&self, method: &Method, route: &str, status: StatusCode, seconds: f64) {
        // Any token is a valid method; unknown ones share a label so they cannot grow the series.
        let method = match method.as_str() {
            "GET" => "GET",
            "HEAD" => "HEAD",
            "POST" => "POST",
            "PUT" => "PUT",
            "PATCH" => "PATCH",
            "DELETE" => "DELETE",
            "OPTIONS" => "OPTIONS",
            _ => "other",
        };
        let labels = RequestLabels { method, route: route.to_owned(), status: status.as_u16() };
        self.requests.get_or_create(&labels).inc();
        self.request_seconds.get_or_create(&labels).observe(seconds);
    }

    pub fn observe_job(&self, kind: &str, status: &str, seconds: f64) {
        self.job_seconds.get_or_create(&JobLabels { kind: kind.into(), status: status.into() }).observe(seconds);
    }

    pub fn observe_wal_handover(&self, outcome: &str) {
        self.wal_handovers.get_or_create(&OutcomeLabels { outcome: outcome.into() }).inc();
    }

    /// The exposition text, with the job counts read now.
    pub async fn render(&self, state: &AppState) -> anyhow::Result<String> {
        let _one_at_a_time = self.render.lock().await;
        let counts = state.store.job_counts().await?;
        self.jobs.clear();
        for (kind, status, count) in counts {
            self.jobs.get_or_create(&JobLabels { kind, status }).set(count);
        }
        self.wal_behind.clear();
        for (instance, health) in state.metrics.archive.all() {
            self.wal_behind.get_or_create(&InstanceLabels { instance }).set(i64::from(health.behind()));
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

impl Default for Prometheus {
    fn default() -> Self {
        Self::new()
    }
}
