//! Folders and files svcdash makes for engines. svcdash may be root while an engine
//! runs a tenant's code, so nothing here follows a symbolic link: every folder is
//! opened with `O_NOFOLLOW` and changed through its descriptor, files are created
//! with `O_EXCL`, and svcdash only ever creates entries in folders it owns itself
//! (an engine owns its data and scratch folders, never their parents).

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt, fchown};
use std::path::Path;

use anyhow::{Context, bail};

/// Who owns a folder or file, as raw ids; `None` fields are left as they are (when
/// svcdash is not root it cannot give files away, and need not).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owner {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// Makes `path` a folder with this owner and mode, or sets them on the folder that
/// is there. Refuses a link or a file in its place. The parent must be a folder no
/// engine can write to.
pub fn folder(path: &Path, owner: Owner, mode: u32) -> anyhow::Result<()> {
    match DirBuilder::new().mode(mode).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
    }
    let dir = open_folder(path)?;
    fchown(&dir, owner.uid, owner.gid).with_context(|| format!("setting the owner of {}", path.display()))?;
    dir.set_permissions(Permissions::from_mode(mode)).with_context(|| format!("setting the mode of {}", path.display()))
}

/// Opens a folder without following a link in its last part.
pub fn open_folder(path: &Path) -> anyhow::Result<File> {
    match OpenOptions::new().read(true).custom_flags(libc_flags::NOFOLLOW | libc_flags::DIRECTORY).open(path) {
        Ok(dir) => Ok(dir),
        Err(e) if e.raw_os_error() == Some(libc_flags::ELOOP) || e.raw_os_error() == Some(libc_flags::ENOTDIR) => {
            bail!("{} is not a folder (a link or a file is in its place)", path.display())
        }
        Err(e) => Err(e).with_context(|| format!("opening {}", path.display())),
    }
}

/// Listens on a new unix socket `name` in `folder` (one no engine can write to),
/// replacing an old one. The folder is reached through its descriptor, so the
/// 107-byte limit of socket paths does not depend on how deep it is.
pub fn unix_socket(folder: &Path, name: &str, owner: Owner, mode: u32) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::fd::AsRawFd;
    let dir = open_folder(folder)?;
    let path = folder.join(name);
    let via = std::path::PathBuf::from(format!("/proc/self/fd/{}/{name}", dir.as_raw_fd()));
    match std::fs::remove_file(&via) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing the old {}", path.display())),
    }
    let listener = tokio::net::UnixListener::bind(&via).with_context(|| format!("listening on {}", path.display()))?;
    std::fs::set_permissions(&via, Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    nix::unistd::chown(&via, owner.uid.map(nix::unistd::Uid::from_raw), owner.gid.map(nix::unistd::Gid::from_raw))
        .with_context(|| format!("setting the owner of {}", path.display()))?;
    Ok(listener)
}

/// Writes a new file (replacing a file of that name) with this owner and mode.
/// The folder must be one no engine can write to, or one svcdash just checked with
/// [`open_folder`]: the file itself is created with `O_EXCL`, so a link in its
/// place is never followed.
pub fn write_new(path: &Path, contents: &[u8], owner: Owner, mode: u32) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing the old {}", path.display())),
    }
    let mut file = create_new(path, mode)?;
    file.write_all(contents).with_context(|| format!("writing {}", path.display()))?;
    file.sync_all().with_context(|| format!("writing {}", path.display()))?;
    give(&file, path, owner, mode)
}

/// Creates a file that must not exist yet (`O_EXCL`, so a link there is an error,
/// not followed), readable and writable by svcdash only until [`give`] hands it on.
pub fn create_new(path: &Path, mode: u32) -> anyhow::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc_flags::NOFOLLOW)
        .mode(mode & 0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))
}

/// Sets the owner and mode of an open file.
pub fn give(file: &File, path: &Path, owner: Owner, mode: u32) -> anyhow::Result<()> {
    fchown(file, owner.uid, owner.gid).with_context(|| format!("setting the owner of {}", path.display()))?;
    file.set_permissions(Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

/// Opens a file for appending (creating it), without following a link; for logs
/// svcdash keeps in a folder of its own.
pub fn append(path: &Path, owner: Owner, mode: u32) -> anyhow::Result<File> {
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .custom_flags(libc_flags::NOFOLLOW)
        .mode(mode)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    give(&file, path, owner, mode)?;
    Ok(file)
}

/// Reads a small file without following a link in its last part (a pid file in a
/// folder an engine owns, say). `None` when it is missing or not a plain file.
pub fn read_small(path: &Path) -> Option<String> {
    use std::io::Read;
    let file =
        OpenOptions::new().read(true).custom_flags(libc_flags::NOFOLLOW | libc_flags::NONBLOCK).open(path).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(4096).read_to_string(&mut text).ok()?;
    Some(text)
}

/// The end of a log file svcdash keeps, for an error message; empty when unreadable.
pub fn read_tail(path: &Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = OpenOptions::new().read(true).custom_flags(libc_flags::NOFOLLOW).open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)));
    let mut bytes = Vec::new();
    let _ = file.take(16 * 1024).read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Whether `path` is a folder itself (not a link to one).
pub fn is_folder(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_dir())
}

/// Removes a folder and everything in it; links inside are removed, never followed
/// (the standard library's `remove_dir_all` works through descriptors).
pub fn remove_tree(path: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Ok(meta) if !meta.file_type().is_dir() => {
            std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))
        }
        _ => std::fs::remove_dir_all(path).with_context(|| format!("removing {}", path.display())),
    }
}

/// The few `open(2)` flags used here, from nix so no `unsafe` is needed.
mod libc_flags {
    use nix::errno::Errno;
    use nix::fcntl::OFlag;

    pub const NOFOLLOW: i32 = OFlag::O_NOFOLLOW.bits();
    pub const DIRECTORY: i32 = OFlag::O_DIRECTORY.bits();
    pub const NONBLOCK: i32 = OFlag::O_NONBLOCK.bits();
    pub const ELOOP: i32 = Errno::ELOOP as i32;
    pub const ENOTDIR: i32 = Errno::ENOTDIR as i32;
}

/// A new, empty file for a restore to write into (0600, created with `O_EXCL` after
/// removing whatever was there, a link included), in a folder svcdash owns.
pub fn staging_writer(path: &Path) -> anyhow::Result<tokio::fs::File> {
    remove_tree(path)?;
    Ok(tokio::fs::File::from_std(create_new(path, 0o600)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_refused_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::create_dir(&target).unwrap();
        std::fs::set_permissions(&target, Permissions::from_mode(0o755)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(folder(&link, Owner::default(), 0o700).is_err());
        assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o755);

        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let file_link = dir.path().join("file-link");
        std::os::unix::fs::symlink(&victim, &file_link).unwrap();
        assert!(create_new(&file_link, 0o600).is_err());
        assert!(append(&file_link, Owner::default(), 0o600).is_err());
        assert_eq!(read_small(&file_link), None);
        // write_new replaces the link itself.
        write_new(&file_link, b"new", Owner::default(), 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(read_small(&file_link).as_deref(), Some("new"));

        let tree = dir.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        std::os::unix::fs::symlink(&target, tree.join("inner-link")).unwrap();
        std::fs::write(target.join("kept"), "x").unwrap();
        remove_tree(&tree).unwrap();
        assert!(target.join("kept").exists());
        assert!(!tree.exists());
    }
}
