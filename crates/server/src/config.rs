//! svcdash's configuration: built-in defaults, then a TOML file, then `SVCDASH_*`
//! environment variables (`SVCDASH_SECTION__KEY`), then command-line flags.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Base of the URLs svcdash hands out (dashboard URLs); defaults to `http://<listen>`.
    pub public_url: Option<String>,
    /// Folder for the state database, backups, instance data and the master key.
    pub data: PathBuf,
    /// Catalog of services and plans (TOML); the built-in one when unset.
    pub catalog: Option<PathBuf>,
    /// The master key as text (`AGE-SECRET-KEY-1...`); else read from `master_key_file`.
    #[serde(skip_serializing)]
    pub master_key: Option<SecretString>,
    /// File holding the master key; `<data>/master.key` by default, created on first start.
    pub master_key_file: Option<PathBuf>,
    pub broker: BrokerConfig,
    pub http: HttpConfig,
    pub auth: crate::auth::AuthConfig,
    pub backups: BackupsConfig,
    pub engines: EnginesConfig,
    pub jobs: JobsConfig,
    pub metrics: crate::metrics::config::MetricsConfig,
    pub parachute: crate::metrics::config::ParachuteConfig,
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: ([127, 0, 0, 1], 8080).into(),
            public_url: None,
            data: PathBuf::from("data"),
            catalog: None,
            master_key: None,
            master_key_file: None,
            broker: BrokerConfig::default(),
            http: HttpConfig::default(),
            auth: crate::auth::AuthConfig::default(),
            backups: BackupsConfig::default(),
            engines: EnginesConfig::default(),
            jobs: JobsConfig::default(),
            metrics: Default::default(),
            parachute: Default::default(),
            log: LogConfig::default(),
        }
    }
}

/// Basic-auth credentials the platform uses on the Open Service Broker API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    pub username: String,
    /// Without a password the broker API answers 401 to everyone.
    #[serde(skip_serializing)]
    pub password: Option<SecretString>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self { username: "broker".into(), password: None }
    }
}

/// How svcdash learns a client's address behind reverse proxies.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// The header in which proxies list the addresses they saw, each appending its
    /// peer (`X-Forwarded-For`); read only on connections from `trusted_proxies`.
    pub client_address_header: String,
    /// Proxies (addresses or ranges such as `10.0.0.0/8`) whose header is believed.
    /// None by default: the connection's peer is the client.
    pub trusted_proxies: Vec<crate::client_addr::TrustedProxy>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { client_address_header: "X-Forwarded-For".into(), trusted_proxies: Vec::new() }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupsConfig {
    /// Where backup objects go: `file:///path`, `s3://bucket/prefix`, `az://...`, `gs://...`.
    /// Defaults to `<data>/backups`.
    pub url: Option<String>,
    /// Settings of the object store (e.g. `aws_access_key_id`, `aws_endpoint`, `aws_region`).
    #[serde(skip_serializing)]
    pub options: BTreeMap<String, String>,
    /// zstd level: 1 is fastest, 19 smallest.
    pub zstd_level: i32,
    /// zstd worker threads (0: compress on the pipeline thread).
    pub zstd_workers: u32,
    /// The smallest multipart upload part in MiB (at least 5, S3's minimum). Parts
    /// grow from it with the backup's estimated and uploaded size, so that any
    /// backup fits S3's 10,000 parts; each part is held in memory until stored.
    pub part_size_mib: usize,
    /// Parts uploaded at once.
    pub upload_concurrency: usize,
    /// Restore backups that were taken in pieces (PostgreSQL's tables) with one
    /// loader per core; false restores every backup as one stream, one core.
    pub restore_in_pieces: bool,
    /// The shortest personal encryption key users may set.
    pub min_encryption_key_length: usize,
    /// An instance's `min_backup_count` until its managers set one.
    pub default_min_backup_count: i64,
    /// An instance's `retention_time` (days) until its managers set one.
    pub default_retention_days: i64,
    /// Days the backups of a deprovisioned instance are kept (for disaster recovery).
    pub deleted_instance_retention_days: i64,
    /// Seconds between retention passes.
    pub retention_check_secs: u64,
    /// When scheduled backups run (cron, 5 fields, UTC); empty turns them off.
    pub schedule: String,
    /// Instances start up to this many seconds after the scheduled time, each at
    /// its own offset, so that they do not all start at once.
    pub schedule_spread_secs: u64,
    /// Instances that archive their write-ahead log hand over a partly filled
    /// segment after this many seconds: the most a point-in-time recovery can miss.
    pub wal_archive_timeout_secs: u32,
    /// A base backup that sends nothing for this long fails: `pg_basebackup` waits
    /// silently until the log it needs is archived, forever while archiving is
    /// stuck, and the instance's later jobs (restores too) would wait behind it.
    pub base_backup_idle_timeout_secs: u64,
    /// The most a backup reads from an engine, or a restore feeds into one, in MiB
    /// a second (0: as fast as it goes). Keeps a long backup from taking the disk
    /// and CPU a tenant's own queries need.
    pub max_mib_per_second: u64,
    /// The svcdash program PostgreSQL runs to hand over write-ahead log files; the
    /// running one by default.
    pub wal_push_program: Option<PathBuf>,
}

impl Default for BackupsConfig {
    fn default() -> Self {
        let pipeline = backup::PipelineOptions::default();
        Self {
            url: None,
            options: BTreeMap::new(),
            zstd_level: pipeline.zstd_level,
            zstd_workers: pipeline.zstd_workers,
            part_size_mib: pipeline.part_size >> 20,
            upload_concurrency: pipeline.upload_concurrency,
            restore_in_pieces: true,
            min_encryption_key_length: 8,
            default_min_backup_count: 5,
            default_retention_days: 5,
            deleted_instance_retention_days: 30,
            retention_check_secs: 3600,
            schedule: "30 1 * * *".into(),
            schedule_spread_secs: 3600,
            wal_archive_timeout_secs: 60,
            base_backup_idle_timeout_secs: 600,
            max_mib_per_second: 0,
            wal_push_program: None,
        }
    }
}

impl std::fmt::Debug for BackupsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Options hold credentials: show their names only.
        f.debug_struct("BackupsConfig")
            .field("url", &self.url)
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .field("zstd_level", &self.zstd_level)
            .field("zstd_workers", &self.zstd_workers)
            .field("part_size_mib", &self.part_size_mib)
            .field("upload_concurrency", &self.upload_concurrency)
            .field("restore_in_pieces", &self.restore_in_pieces)
            .field("min_encryption_key_length", &self.min_encryption_key_length)
            .field("default_min_backup_count", &self.default_min_backup_count)
            .field("default_retention_days", &self.default_retention_days)
            .field("deleted_instance_retention_days", &self.deleted_instance_retention_days)
            .field("retention_check_secs", &self.retention_check_secs)
            .field("schedule", &self.schedule)
            .field("schedule_spread_secs", &self.schedule_spread_secs)
            .field("wal_archive_timeout_secs", &self.wal_archive_timeout_secs)
            .field("base_backup_idle_timeout_secs", &self.base_backup_idle_timeout_secs)
            .field("max_mib_per_second", &self.max_mib_per_second)
            .field("wal_push_program", &self.wal_push_program)
            .finish()
    }
}

impl BackupsConfig {
    pub fn default_settings(&self) -> store::BackupSettings {
        store::BackupSettings {
            min_backup_count: self.default_min_backup_count,
            retention_time_days: self.default_retention_days,
            exclude_from_auto_backup: false,
        }
    }

    pub fn pipeline(&self) -> backup::PipelineOptions {
        backup::PipelineOptions {
            zstd_level: self.zstd_level,
            zstd_workers: self.zstd_workers,
            part_size: self.part_size_mib.max(5) << 20,
            upload_concurrency: self.upload_concurrency.max(1),
            estimated_size: None,
            frame_size: None,
        }
    }

    /// A new tracker for one backup or restore stream, paced as configured.
    pub fn tracker(&self) -> std::sync::Arc<backup::Tracker> {
        backup::Tracker::new(Some(self.max_mib_per_second << 20))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnginesConfig {
    /// A folder holding an engine's programs, by engine name; without one, svcdash
    /// looks in the folder the engine's OS package uses, then on PATH.
    pub bin_dirs: std::collections::BTreeMap<String, PathBuf>,
    /// Seconds between checks that every engine runs; one that died is started again.
    pub check_interval_secs: u64,
}

impl Default for EnginesConfig {
    fn default() -> Self {
        Self { bin_dirs: Default::default(), check_interval_secs: 10 }
    }
}

impl EnginesConfig {
    pub fn tools(&self) -> engines::Tools {
        engines::Tools::new(engines::ToolsConfig { bin_dirs: self.bin_dirs.clone() })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Jobs (backups, restores, provisioning) run at once across all instances.
    pub workers: usize,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self { workers: 2 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter such as `info` or `server=debug,info`; `RUST_LOG` wins.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: "text".into(), level: "info".into() }
    }
}

impl Config {
    /// Loads the layers: defaults, `file` (or `SVCDASH_CONFIG`, or `./svcdash.toml` when
    /// present), the environment, then `overrides` (from flags).
    pub fn load(file: Option<&Path>, overrides: impl Serialize) -> anyhow::Result<Self> {
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("SVCDASH_CONFIG").map(PathBuf::from))
            .or_else(|| Some(PathBuf::from("svcdash.toml")).filter(|p| p.exists()));
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = &file {
            if !file.exists() {
                anyhow::bail!("configuration file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file(file));
        }
        let figment = figment
            .merge(Env::prefixed("SVCDASH_").split("__").ignore(&["config"]))
            .merge(Serialized::defaults(overrides));
        let mut config: Config = figment.extract().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        config.data = absolute(&config.data)?;
        config.parachute.validate()?;
        config.metrics.validate()?;
        Ok(config)
    }

    /// Whether browsers reach svcdash over https, so cookies may be marked `Secure`.
    pub fn https(&self) -> bool {
        self.public_url().starts_with("https://")
    }

    pub fn public_url(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{}", self.listen)).trim_end_matches('/').to_owned()
    }

    pub fn database_path(&self) -> PathBuf {
        self.data.join("svcdash.db")
    }

    pub fn instances_dir(&self) -> PathBuf {
        self.data.join("instances")
    }

    pub fn backups_url(&self) -> anyhow::Result<String> {
        match &self.backups.url {
            Some(url) => Ok(url.clone()),
            None => Ok(url::Url::from_directory_path(self.data.join("backups"))
                .map_err(|()| anyhow::anyhow!("the data folder is not an absolute path"))?
                .to_string()),
        }
    }

    pub fn master_key(&self) -> anyhow::Result<backup::keys::MasterKey> {
        use secrecy::ExposeSecret;
        match &self.master_key {
            Some(text) => backup::keys::MasterKey::parse(text.expose_secret()).context("the configured master_key"),
            None => backup::keys::MasterKey::load_or_generate(
                &self.master_key_file.clone().unwrap_or_else(|| self.data.join("master.key")),
            ),
        }
    }
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_absolute() {
        Ok(path.to_path_buf())
    } else {
        Ok(std::env::current_dir().context("reading the current folder")?.join(path))
    }
}

/// The commented example that `svcdash default-config` prints.
pub const EXAMPLE: &str = include_str!("../svcdash.example.toml");

#[cfg(test)]
mod tests {
    #[test]
    fn debug_output_hides_secrets() {
        let mut config = super::Config::default();
        config.broker.password = Some("broker-pw".to_owned().into());
        config.master_key = Some("AGE-SECRET-KEY-1XYZ".to_owned().into());
        config.backups.options.insert("aws_secret_access_key".into(), "s3-secret".into());
        config.auth.oidc.client_secret = Some("oidc-client-secret".to_owned().into());
        config.metrics.prometheus_token = Some("prometheus-token".to_owned().into());
        let shown = format!("{config:?}");
        for secret in ["broker-pw", "AGE-SECRET-KEY-1XYZ", "s3-secret", "oidc-client-secret", "prometheus-token"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("aws_secret_access_key"));
    }
}
