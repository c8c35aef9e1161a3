//! Where a node's files live: `system` (configuration), `ephemeral` (sockets, logs,
//! pid files) and `persistent` (the data), as on a real VM.

use std::path::{Path, PathBuf};

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

    pub fn log_file(&self, name: &str) -> PathBuf {
        self.ephemeral().join("log").join(format!("{name}.log"))
    }
}
