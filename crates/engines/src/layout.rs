//! Where a node's files live: `system` (configuration), `ephemeral` (logs, pid files)
//! and `persistent` (the data), as on a real VM.
//!
//! Who owns what keeps root out of the engine's reach: svcdash owns every folder of
//! the skeleton (the engine's group may read and enter them), and the engine owns
//! only the two leaves it writes, `ephemeral/run` and `persistent/data`. So an engine
//! running a tenant's code can create links only where svcdash never creates files.

use std::path::{Path, PathBuf};

use crate::files::{self, Owner};
use crate::process::RunAs;

/// The name of [`NodeLayout::archive_socket`] in `ephemeral/`.
pub(crate) const ARCHIVE_SOCKET: &str = "archive.sock";

/// [`NodeLayout::archive_socket`] as seen from the data folder, which engines run
/// in: short whatever the depth of the data folder (socket paths have a 107-byte
/// limit).
pub(crate) const ARCHIVE_SOCKET_FROM_DATA: &str = "../../ephemeral/archive.sock";

/// [`NodeLayout::archive_socket`] as seen from a folder inside the data folder: a
/// cluster node's server runs in `persistent/data/pgdata`.
pub(crate) const ARCHIVE_SOCKET_FROM_DATA_CHILD: &str = "../../../ephemeral/archive.sock";

/// The name of [`NodeLayout::fetch_socket`] in `ephemeral/`, and the way to it from
/// the data folder (or a staging folder beside it).
pub(crate) const FETCH_SOCKET: &str = "fetch.sock";
pub(crate) const FETCH_SOCKET_FROM_DATA: &str = "../../ephemeral/fetch.sock";

#[derive(Debug, Clone)]
pub struct NodeLayout {
    root: PathBuf,
}

impl NodeLayout {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn system(&self) -> PathBuf {
        self.root.join("system")
    }

    pub fn ephemeral(&self) -> PathBuf {
        self.root.join("ephemeral")
    }

    pub fn persistent(&self) -> PathBuf {
        self.root.join("persistent")
    }

    /// The engine's output, written by the engine through a descriptor svcdash opens
    /// in a folder svcdash owns.
    pub fn log_file(&self, name: &str) -> PathBuf {
        self.ephemeral().join("log").join(format!("{name}.log"))
    }

    /// The engine's scratch folder (pid file): the engine owns it.
    pub fn run_dir(&self) -> PathBuf {
        self.ephemeral().join("run")
    }

    /// The socket the node hands its write-ahead log to: svcdash makes it in a folder
    /// it owns, for the engine's group.
    pub fn archive_socket(&self) -> PathBuf {
        self.ephemeral().join(ARCHIVE_SOCKET)
    }

    /// The socket a node restoring to a point in time fetches its archived
    /// write-ahead log from, made like [`Self::archive_socket`].
    pub fn fetch_socket(&self) -> PathBuf {
        self.ephemeral().join(FETCH_SOCKET)
    }

    /// The engine's data folder: the engine owns it.
    pub fn data_dir(&self) -> PathBuf {
        self.persistent().join("data")
    }

    /// Makes the node's folders (and the instance folder above them), or puts their
    /// owners and modes right: safe to run again, and on a node with data.
    pub fn prepare(&self, engine_user: Option<RunAs>) -> anyhow::Result<()> {
        let (svcdash, engine) = owners(engine_user);
        if let Some(instance) = self.root.parent() {
            files::folder(instance, svcdash, 0o750)?;
        }
        for dir in [self.root.clone(), self.system(), self.ephemeral(), self.ephemeral().join("log"), self.persistent()]
        {
            files::folder(&dir, svcdash, 0o750)?;
        }
        for dir in [self.run_dir(), self.data_dir()] {
            files::folder(&dir, engine, 0o700)?;
        }
        Ok(())
    }
}

/// svcdash's side (root, with the engine's group so it may enter) and the engine's.
pub(crate) fn owners(engine_user: Option<RunAs>) -> (Owner, Owner) {
    match engine_user {
        Some(user) => (
            Owner { uid: Some(0), gid: Some(user.gid.as_raw()) },
            Owner { uid: Some(user.uid.as_raw()), gid: Some(user.gid.as_raw()) },
        ),
        None => (Owner::default(), Owner::default()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Component, PathBuf};

    use super::*;

    fn resolve(path: &std::path::Path) -> PathBuf {
        let mut resolved = PathBuf::new();
        for part in path.components() {
            match part {
                Component::ParentDir => {
                    resolved.pop();
                }
                other => resolved.push(other),
            }
        }
        resolved
    }

    #[test]
    fn the_short_archive_socket_path_leads_to_the_socket() {
        let layout = NodeLayout::new(PathBuf::from("/srv/svcdash/instances/sd-abc/node-0"));
        assert_eq!(resolve(&layout.data_dir().join(ARCHIVE_SOCKET_FROM_DATA)), layout.archive_socket());
        assert_eq!(
            resolve(&layout.data_dir().join("pgdata").join(ARCHIVE_SOCKET_FROM_DATA_CHILD)),
            layout.archive_socket()
        );
        let fetch = PathBuf::from(FETCH_SOCKET_FROM_DATA);
        assert_eq!(fetch.file_name().unwrap(), FETCH_SOCKET);
        assert_eq!(fetch.parent(), PathBuf::from(ARCHIVE_SOCKET_FROM_DATA).parent());
    }
}
