//! Putting a data folder restored beside a node in place of its live one, for the
//! engines whose restores stage a whole folder (a MariaDB backup, a PostgreSQL
//! point in time).
//!
//! Every rename is inside the node's `persistent` folder, which svcdash owns: no
//! link a tenant made is followed. The old data is removed in the background, as
//! deleting a large folder takes seconds the restore need not wait for.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::engine::{NodeControl, StartMode};
use crate::{NodeLayout, files};

/// The live data while the node switches over, for putting it back.
fn replaced_dir(layout: &NodeLayout) -> PathBuf {
    layout.persistent().join("replaced")
}

/// Names of old data folders waiting to be removed, in `persistent`.
const DISCARDED_PREFIX: &str = "discarded-";

/// Stops the node, moves `staging` in as its data folder and starts it after a
/// restore. When the server does not start on it, puts the old data back and
/// starts that: the error says the instance has its old data.
pub(crate) async fn swap_in(layout: &NodeLayout, control: &dyn NodeControl, staging: &Path) -> anyhow::Result<()> {
    control.stop_discarding().await?;
    let (data, replaced) = (layout.data_dir(), replaced_dir(layout));
    files::remove_tree(&replaced)?;
    std::fs::rename(&data, &replaced).context("moving the live data aside")?;
    std::fs::rename(staging, &data).context("moving the restored data in place")?;
    if let Err(e) = control.start(StartMode::AfterRestore).await {
        tracing::error!(
            error = format!("{e:#}"),
            "the server did not start on the restored data; putting the old data back"
        );
        control.stop_discarding().await?;
        files::remove_tree(&data)?;
        std::fs::rename(&replaced, &data).context("putting the old data back")?;
        control.start(StartMode::Normal).await?;
        return Err(e.context("the server did not start on the restored data; the instance has its old data"));
    }
    discard(layout, &replaced);
    Ok(())
}

/// Renames `folder` out of the way at once and removes it, and any discarded
/// folder an earlier svcdash left behind, on the blocking pool.
pub(crate) fn discard(layout: &NodeLayout, folder: &Path) {
    let persistent = layout.persistent();
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    let aside = persistent.join(format!("{DISCARDED_PREFIX}{stamp}"));
    if let Err(e) = std::fs::rename(folder, &aside) {
        // Left where it is: the next switch removes it before it moves data there.
        tracing::warn!(error = %e, folder = %folder.display(), "could not move the old data aside");
        return;
    }
    tokio::task::spawn_blocking(move || {
        let Ok(entries) = std::fs::read_dir(&persistent) else { return };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(DISCARDED_PREFIX)
                && let Err(e) = files::remove_tree(&entry.path())
            {
                tracing::warn!(error = format!("{e:#}"), "could not remove the old data of a restored node");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;

    /// A node whose server starts, or does not, on the restored data; it records
    /// what it was asked and which data it saw at each start.
    struct FakeNode {
        layout: NodeLayout,
        starts_on_restored: bool,
        calls: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl NodeControl for FakeNode {
        async fn stop(&self) -> anyhow::Result<()> {
            self.calls.lock().unwrap().push("stop".into());
            Ok(())
        }

        async fn stop_discarding(&self) -> anyhow::Result<()> {
            self.calls.lock().unwrap().push("stop_discarding".into());
            Ok(())
        }

        async fn start(&self, mode: StartMode) -> anyhow::Result<()> {
            let data = std::fs::read_to_string(self.layout.data_dir().join("PG_VERSION"))?;
            self.calls.lock().unwrap().push(format!("start {mode:?} on {data}"));
            anyhow::ensure!(mode == StartMode::Normal || self.starts_on_restored, "the server exited");
            Ok(())
        }
    }

    fn node(starts_on_restored: bool) -> (tempfile::TempDir, FakeNode) {
        let dir = tempfile::tempdir().unwrap();
        let layout = NodeLayout::new(dir.path().to_owned());
        for (folder, content) in [(layout.data_dir(), "live"), (layout.persistent().join("pitr"), "restored")] {
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::write(folder.join("PG_VERSION"), content).unwrap();
        }
        (dir, FakeNode { layout, starts_on_restored, calls: Mutex::default() })
    }

    fn leftovers(layout: &NodeLayout) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(layout.persistent())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn the_restored_folder_goes_live_and_the_old_one_is_removed() {
        let (_dir, node) = node(true);
        let staging = node.layout.persistent().join("pitr");
        swap_in(&node.layout, &node, &staging).await.unwrap();
        assert_eq!(std::fs::read_to_string(node.layout.data_dir().join("PG_VERSION")).unwrap(), "restored");
        assert_eq!(*node.calls.lock().unwrap(), ["stop_discarding", "start AfterRestore on restored"]);
        for _ in 0..100 {
            if leftovers(&node.layout) == ["data"] {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the old data is still there: {:?}", leftovers(&node.layout));
    }

    #[tokio::test]
    async fn a_server_that_does_not_start_on_the_restored_folder_gets_its_old_data_back() {
        let (_dir, node) = node(false);
        let staging = node.layout.persistent().join("pitr");
        let error = swap_in(&node.layout, &node, &staging).await.unwrap_err();
        assert!(format!("{error:#}").contains("the instance has its old data"), "{error:#}");
        assert_eq!(std::fs::read_to_string(node.layout.data_dir().join("PG_VERSION")).unwrap(), "live");
        assert_eq!(
            *node.calls.lock().unwrap(),
            ["stop_discarding", "start AfterRestore on restored", "stop_discarding", "start Normal on live"]
        );
        assert_eq!(leftovers(&node.layout), ["data"], "the failed restored data is removed");
    }
}
