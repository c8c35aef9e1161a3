//! svcdash's service: configuration, state, the HTTP APIs and the job workers.
//! [`start`] runs it all and hands back the bound address, so tests can use port 0.

mod archive;
mod audit;
pub mod auth;
mod backups;
mod cancel;
pub mod catalog;
pub mod client_addr;
pub mod cluster;
pub mod config;
pub mod domain_error;
pub mod engine_check;
pub mod error;
mod host;
mod http;
pub mod instances;
mod jobs;
pub mod listing_cache;
pub mod metrics;
pub mod pitr;
pub mod progress;
pub mod retention;
pub mod schedule;
pub mod state;
mod supervise;

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use state::AppState;

/// A running svcdash: HTTP server, job workers and supervised engines.
pub struct Server {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

/// Opens the state, recovers interrupted jobs, starts the instances' engines, the
/// job workers and the HTTP server.
pub async fn start(mut config: Config) -> anyhow::Result<Server> {
    let listener = TcpListener::bind(config.listen).await.with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    if config.public_url.is_none() {
        config.public_url = Some(format!("http://{addr}"));
    }
    let state = AppState::open(config).await?;
    if !state.deployer.isolated() {
        tracing::warn!(
            "svcdash does not run as root: every engine runs as svcdash's own user, so instances are not isolated \
             from svcdash or from each other (a tenant's code in one engine can reach the others and svcdash's files)"
        );
    }
    engine_check::log(&state).await;
    jobs::recover(&state).await?;
    state.record_versions().await?;
    metrics::warn_about_settings(&state);

    let shutdown = CancellationToken::new();
    // The API answers at once; jobs wait until the instances' engines are up again.
    let workers = {
        let (state, shutdown) = (state.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(e) = state.start_instances().await {
                tracing::error!(error = format!("{e:#}"), "could not start the instances");
            }
            let every = std::time::Duration::from_secs(state.config.engines.check_interval_secs.max(1));
            let watchdog = tokio::spawn(supervise::run(state.clone(), every, shutdown.clone()));
            // After the start: the parachute acts on engines that run, not ones starting.
            tokio::spawn(metrics::run(state.clone(), shutdown.clone()));
            jobs::run(state.clone(), state.config.jobs.workers, shutdown).await;
            let _ = watchdog.await;
        })
    };
    tokio::spawn(auth::session::sweep(state.clone(), shutdown.clone()));
    // Archiving stops only once running jobs have finished: a base backup waits until
    // its log is archived, and a shutdown would otherwise wait for it forever.
    let archiving = CancellationToken::new();
    let archive = tokio::spawn(archive::run(state.clone(), archiving.clone()));
    let every = std::time::Duration::from_secs(state.config.backups.retention_check_secs.max(60));
    tokio::spawn(retention::run(state.clone(), every, shutdown.clone()));
    if !state.config.backups.schedule.trim().is_empty() {
        let cron = schedule::parse(&state.config.backups.schedule)?;
        tokio::spawn(schedule::run(state.clone(), cron, std::time::Duration::from_secs(30), shutdown.clone()));
    }
    let app = http::router(state.clone());
    let stopping = shutdown.clone();
    let task_state = state.clone();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(stopping.cancelled_owned())
            .await;
        let _ = workers.await;
        archiving.cancel();
        let _ = archive.await;
        task_state.deployer.stop_all().await;
        served.context("serving HTTP")
    });
    tracing::info!(%addr, public_url = %state.config.public_url(), "svcdash is listening");
    Ok(Server { addr, state, shutdown, task })
}

impl Server {
    /// Stops accepting requests, lets running jobs finish, then stops the engines.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await.context("the server task panicked")?
    }

    /// Waits until the server has stopped (after its shutdown token is cancelled).
    pub async fn wait_stopped(self) -> anyhow::Result<()> {
        self.task.await.context("the server task panicked")?
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}
