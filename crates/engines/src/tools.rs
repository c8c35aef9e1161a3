//! Finding the engines' programs: configured paths first, then PATH, then the
//! places Debian installs PostgreSQL (`/usr/lib/postgresql/N/bin`).

use std::path::{Path, PathBuf};

use anyhow::bail;
use serde::{Deserialize, Serialize};

use crate::EngineKind;

/// Operator settings for where engine programs are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolsConfig {
    /// Folder holding initdb, postgres, pg_dump and pg_restore.
    pub postgres_bin_dir: Option<PathBuf>,
    /// Folder holding redis-server and redis-cli.
    pub redis_bin_dir: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Tools {
    config: ToolsConfig,
}

impl Tools {
    pub fn new(config: ToolsConfig) -> Self {
        Self { config }
    }

    /// The path of `program`, or a clear error naming the package to install.
    pub fn find(&self, engine: EngineKind, program: &str) -> anyhow::Result<PathBuf> {
        let configured = match engine {
            EngineKind::Postgresql => self.config.postgres_bin_dir.as_deref(),
            EngineKind::Redis => self.config.redis_bin_dir.as_deref(),
        };
        if let Some(dir) = configured {
            let path = dir.join(program);
            if is_executable(&path) {
                return Ok(path);
            }
            bail!("{program} is not in the configured folder {}", dir.display());
        }
        if engine == EngineKind::Postgresql {
            // Debian keeps initdb and postgres off PATH; prefer its newest version.
            if let Some(path) = debian_postgres(program) {
                return Ok(path);
            }
        }
        if let Some(path) = on_path(program) {
            return Ok(path);
        }
        let package = match engine {
            EngineKind::Postgresql => "postgresql",
            EngineKind::Redis => "redis-server",
        };
        bail!(
            "{program} was not found on PATH{}: install the {package} package or set its folder in the configuration",
            if engine == EngineKind::Postgresql { " or under /usr/lib/postgresql/*/bin" } else { "" }
        )
    }

    /// Checks that every program an engine needs is there.
    pub fn check(&self, engine: EngineKind) -> anyhow::Result<()> {
        let programs: &[&str] = match engine {
            EngineKind::Postgresql => &["initdb", "postgres", "pg_dump", "pg_restore"],
            EngineKind::Redis => &["redis-server", "redis-cli"],
        };
        for program in programs {
            self.find(engine, program)?;
        }
        Ok(())
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| is_executable(p))
}

fn debian_postgres(program: &str) -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin").join(program))))
        .filter(|(_, p)| is_executable(p))
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p)
}
