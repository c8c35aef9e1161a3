//! What every handler and job shares.

use std::sync::Arc;

use backup::BackupStorage;
use backup::keys::MasterKey;
use engines::{Deployer, LocalDeployer, Registry};
use store::Store;
use tokio::sync::Notify;

use crate::auth::oidc::Oidc;
use crate::auth::{Authority, LoginLimiter, ProviderKind};
use crate::catalog::Catalog;
use crate::config::Config;

/// Handles and layers clone it for every request, so a clone is one reference
/// count: no copy of the master key, no allocation.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub config: Arc<Config>,
    pub catalog: Arc<Catalog>,
    pub store: Arc<dyn Store>,
    /// Runs the instances' nodes; the local one is the embedded default.
    pub deployer: Arc<dyn Deployer>,
    /// The engines, by the names the catalog uses.
    pub engines: Registry,
    pub storage: BackupStorage,
    pub master: MasterKey,
    /// Who is asking and what they may do; [`crate::auth::Authenticator`] is its seam.
    pub auth: Arc<Authority>,
    /// The single sign-on provider, when one is configured (`[auth] provider`).
    pub oidc: Option<Arc<Oidc>>,
    /// Wakes the job workers when a job is queued.
    pub jobs: Arc<Notify>,
    pub login_limiter: Arc<LoginLimiter>,
    /// Kept node metrics and svcdash's own counters.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The backup listings the API served last, for clients that poll them.
    pub listings: crate::listing_cache::ListingCache,
    /// The Backups pages' `<main>` served last, for pages that reload themselves.
    pub backup_pages: crate::listing_cache::ListingCache<Arc<crate::listing_cache::KeptPage>>,
}

impl AppState {
    /// Opens everything the configuration names: store, master key, backup store, deployer.
    pub async fn open(config: Config) -> anyhow::Result<Self> {
        crate::host::secure_data_folder(&config)?;
        let engines = Registry::builtin();
        let catalog = Catalog::load(config.catalog.as_deref(), &engines)?;
        let store: Arc<dyn Store> = Arc::new(store::SqliteStore::open(&config.database_path()).await?);
        let master = config.master_key()?;
        let storage = BackupStorage::open(&config.backups_url()?, config.backups.options.clone())?;
        let deployer = LocalDeployer::new(config.instances_dir(), config.engines.tools())?;
        let oidc = match config.auth.provider {
            ProviderKind::Local => None,
            kind @ (ProviderKind::Oidc | ProviderKind::Uaa) => {
                // UAA hands out Cloud Controller permissions only for this scope.
                let extra = if kind == ProviderKind::Uaa {
                    vec!["cloud_controller_service_permissions.read".to_owned()]
                } else {
                    Vec::new()
                };
                let callback = format!("{}/auth/callback", config.public_url());
                Some(Arc::new(Oidc::new(&config.auth.oidc, callback, extra)?))
            }
        };
        let auth = Arc::new(Authority::new(&config.auth, store.clone(), master.clone(), oidc.clone())?);
        let login_limiter = Arc::new(LoginLimiter::new(
            config.auth.max_failed_logins,
            std::time::Duration::from_secs(config.auth.failed_login_window_secs),
            config.auth.password_check_slots,
        ));
        let metrics = Arc::new(crate::metrics::Metrics::new(&config.metrics));
        Ok(Self(Arc::new(Shared {
            metrics,
            config: Arc::new(config),
            catalog: Arc::new(catalog),
            store,
            deployer: Arc::new(deployer),
            engines,
            storage,
            master,
            auth,
            oidc,
            jobs: Arc::new(Notify::new()),
            login_limiter,
            listings: Default::default(),
            backup_pages: Default::default(),
        })))
    }

    pub fn dashboard_url(&self, instance_guid: &str) -> String {
        format!("{}/service-instances/{instance_guid}", self.config.public_url())
    }
}
