//! Where backup objects live: any `object_store` backend, chosen by URL
//! (`file:///...`, `s3://bucket/prefix`, `az://...`, `gs://...`).

use std::sync::Arc;

use anyhow::Context;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

#[derive(Clone, Debug)]
pub struct BackupStorage {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    url: String,
    /// The folder of a `file://` store, where interrupted uploads leave staging files.
    local_dir: Option<std::path::PathBuf>,
}

impl BackupStorage {
    /// Opens the store at `url`; `options` are the backend's settings (credentials, endpoint, region).
    pub fn open(url: &str, options: impl IntoIterator<Item = (String, String)>) -> anyhow::Result<Self> {
        let parsed = Url::parse(url).with_context(|| format!("backup store URL {url:?} is not a URL"))?;
        let mut local_dir = None;
        if parsed.scheme() == "file" {
            let dir =
                parsed.to_file_path().map_err(|_| anyhow::anyhow!("backup store URL {url:?} is not a local path"))?;
            std::fs::create_dir_all(&dir).with_context(|| format!("creating backup folder {}", dir.display()))?;
            local_dir = Some(dir);
        }
        let (store, prefix) = object_store::parse_url_opts(&parsed, options)
            .with_context(|| format!("opening backup store {}", redact(&parsed)))?;
        Ok(Self { store: Arc::from(store), prefix, url: redact(&parsed), local_dir })
    }

    /// The full path of an object key below the store's prefix.
    pub fn path(&self, key: &str) -> Path {
        key.split('/').fold(self.prefix.clone(), |p, part| p.clone().join(part))
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The store's URL with any password removed, for logs and messages.
    pub fn display_url(&self) -> &str {
        &self.url
    }

    pub async fn delete(&self, key: &str) -> object_store::Result<()> {
        match self.store.delete(&self.path(key)).await {
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            other => other,
        }
    }

    /// Removes an object and whatever an interrupted upload of it left behind. On a
    /// local folder that is a `<name>#<n>` staging file; object stores drop incomplete
    /// multipart uploads by their own lifecycle rules.
    pub async fn delete_with_leftovers(&self, key: &str) -> anyhow::Result<()> {
        self.delete(key).await?;
        if let Some(dir) = &self.local_dir {
            let path = dir.join(key);
            let (Some(parent), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
                return Ok(());
            };
            let staging = format!("{name}#");
            for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
                if entry.file_name().to_str().is_some_and(|n| n.starts_with(&staging)) {
                    std::fs::remove_file(entry.path())?;
                }
            }
        }
        Ok(())
    }

    pub async fn exists(&self, key: &str) -> object_store::Result<bool> {
        match self.store.head(&self.path(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn redact(url: &Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("redacted"));
    }
    url.to_string()
}
