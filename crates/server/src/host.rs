//! svcdash's own files on the host: private to svcdash. Engines (running a tenant's
//! code) may walk through the data folder to their instance's folder, and read
//! nothing else in it: not the state database (password hashes, the audit log,
//! sealed secrets), not the master key, not the backups.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

use crate::config::Config;

/// Makes the data folder and sets the modes of what svcdash keeps in it. Also sets
/// the process's umask, so whatever svcdash (and the engines it starts) creates
/// later is private by default.
pub fn secure_data_folder(config: &Config) -> anyhow::Result<()> {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let data = &config.data;
    std::fs::create_dir_all(data).with_context(|| format!("creating data folder {}", data.display()))?;
    let root = nix::unistd::Uid::effective().is_root();
    // Engine accounts need to pass through (x) on their way to their own folder.
    set_mode(data, if root { 0o711 } else { 0o700 })?;
    for name in ["svcdash.db", "svcdash.db-wal", "svcdash.db-shm", "svcdash.db.lock", "svcdash.serve.lock"] {
        set_mode(&data.join(name), 0o600)?;
    }
    if config.backups.url.is_none() {
        set_mode(&data.join("backups"), 0o700)?;
    }
    Ok(())
}

/// Sets the mode of a file or folder svcdash owns; leaves alone what is missing or
/// belongs to someone else (an operator's own folder, say).
fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return Ok(()) };
    if meta.file_type().is_symlink() || meta.uid() != nix::unistd::Uid::effective().as_raw() {
        return Ok(());
    }
    if meta.permissions().mode() & 0o7777 != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting the mode of {}", path.display()))?;
    }
    Ok(())
}
