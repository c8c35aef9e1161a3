//! Finding the engines' programs: a folder the operator configured for the engine
//! first, then PATH, then the folders the engine's OS package uses off PATH.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::bail;
use serde::{Deserialize, Serialize};

use crate::Engine;

/// Operator settings for where engine programs are: a folder per engine name
/// (`[engines.bin_dirs] postgresql = "/usr/lib/postgresql/15/bin"`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolsConfig {
    #[serde(default)]
    pub bin_dirs: BTreeMap<String, PathBuf>,
}

#[derive(Debug, Clone, Default)]
pub struct Tools {
    config: ToolsConfig,
}

impl Tools {
    pub fn new(config: ToolsConfig) -> Self {
        Self { config }
    }

    /// The path of `program`, or a clear error naming the package to install.
    pub fn find(&self, engine: &dyn Engine, program: &str) -> anyhow::Result<PathBuf> {
        if let Some(dir) = self.config.bin_dirs.get(engine.name()) {
            let path = dir.join(program);
            if is_executable(&path) {
                return Ok(path);
            }
            bail!("{program} is not in the configured folder {}", dir.display());
        }
        // The package's own folder first: Debian keeps initdb off PATH, and puts a
        // wrapper for rabbitmqctl on it that refuses any user but its own.
        let dirs = engine.program_dirs();
        if let Some(path) = dirs.iter().map(|dir| dir.join(program)).find(|p| is_executable(p)) {
            return Ok(path);
        }
        if let Some(path) = on_path(program) {
            return Ok(path);
        }
        let also = if dirs.is_empty() {
            String::new()
        } else {
            format!(" or in {}", dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "))
        };
        bail!(
            "{program} was not found on PATH{also}: install the {} package or set [engines.bin_dirs] {} in the \
             configuration",
            engine.package(),
            engine.name()
        )
    }

    /// Checks that every program an engine needs is there.
    pub fn check(&self, engine: &dyn Engine) -> anyhow::Result<()> {
        for program in engine.programs() {
            self.find(engine, program)?;
        }
        Ok(())
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

pub(crate) fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| is_executable(p))
}

/// `/usr/lib/<name>/<version>/bin` folders, newest version first (Debian's
/// PostgreSQL packages).
pub fn versioned_dirs(base: &str) -> Vec<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(base)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .collect();
    versions.sort();
    versions.into_iter().rev().map(|(_, p)| p).collect()
}
