//! Restores that load several tables at once. `pg_restore` reading one stream
//! loads the tables one after another and builds the indexes one after another;
//! `pg_restore --jobs` needs the whole archive in a file. A backup whose layout was
//! noted ([`super::archive`]) needs neither: every loader gets the archive's head
//! and then only its own tables' data blocks, read from the store where they lie.
//!
//! 1. the schema before the data (`--section=pre-data`), from the head alone;
//! 2. the data: the blocks shared out by size among the loaders, each a
//!    `pg_restore` of a list of entries fed the head and its blocks in order;
//! 3. indexes and unique and primary keys, shared out among as many loaders;
//! 4. the rest of the schema (foreign keys, triggers, …) in one, in the archive's
//!    order, since it depends on 3.
//!
//! Everything loads into the staging database, as the owner role (never a
//! superuser: the tenant's functions run during the load); the caller checks the
//! whole object meanwhile and only then switches over.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::archive::{ArchiveLayout, DataBlock, Section, Toc};
use super::{OWNER, RESTORE_ROLE, STAGING, client_command};
use crate::engine::{BackupPieces, Node};
use crate::{files, process};

/// Entries of the table of contents a restore handles specially whatever it is
/// told to restore (they set the session up).
const SESSION_ENTRIES: &[&str] = &["ENCODING", "STDSTRINGS", "SEARCHPATH"];
/// Bytes handed to a loader at once.
const PIPE_CHUNK: usize = 1 << 20;
/// Post-data entries that depend on nothing but their table: built at once.
const INDEXES: &[&str] = &["INDEX", "CONSTRAINT"];

/// How many loaders a restore runs: one per core, at most 8.
pub(super) fn loaders() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 8)
}

/// Loads the archive into the staging database (which the caller made empty).
pub(super) async fn load(
    node: &Node<'_>,
    layout: &ArchiveLayout,
    pieces: Arc<dyn BackupPieces>,
    password: &str,
    loaders: usize,
) -> anyhow::Result<()> {
    let mut head = Vec::new();
    pieces.read(0, layout.toc_end).read_to_end(&mut head).await.context("reading the archive's table of contents")?;
    let toc = Toc::parse(&head).map_err(|e| anyhow::anyhow!("the archive's table of contents is unreadable: {e:?}"))?;
    let head = Arc::new(head);
    let lists = Lists::new(node)?;
    let started = std::time::Instant::now();
    let step = |what: &str| tracing::info!(seconds = started.elapsed().as_secs_f64(), loaders, "restore: {what}");
    let result = async {
        // 1. The schema the data goes into.
        let mut pre = client_command(node, "pg_restore", RESTORE_ROLE, password)?;
        pre.arg("--section=pre-data");
        run(pre, "the schema", &head, Vec::new(), &pieces).await?;
        step("schema loaded");

        // 2. The data.
        let mut runs = Vec::new();
        for (i, (entries, blocks)) in share_data(&toc, &layout.blocks, loaders).into_iter().enumerate() {
            let mut cmd = client_command(node, "pg_restore", RESTORE_ROLE, password)?;
            cmd.arg("--use-list").arg(lists.write(&format!("data-{i}"), &entries)?);
            runs.push(run(cmd, "the data", &head, blocks, &pieces));
        }
        futures::future::try_join_all(runs).await?;
        step("data loaded");

        // 3. Indexes, 4. the rest.
        let (indexes, rest) = share_post_data(&toc, loaders);
        let mut runs = Vec::new();
        for (i, entries) in indexes.into_iter().enumerate() {
            let mut cmd = client_command(node, "pg_restore", RESTORE_ROLE, password)?;
            cmd.arg("--use-list").arg(lists.write(&format!("indexes-{i}"), &entries)?);
            runs.push(run(cmd, "the indexes", &head, Vec::new(), &pieces));
        }
        futures::future::try_join_all(runs).await?;
        step("indexes built");
        if !rest.is_empty() {
            let mut cmd = client_command(node, "pg_restore", RESTORE_ROLE, password)?;
            cmd.arg("--use-list").arg(lists.write("rest", &rest)?);
            run(cmd, "the constraints and triggers", &head, Vec::new(), &pieces).await?;
        }
        step("schema completed");
        anyhow::Ok(())
    }
    .await;
    lists.remove();
    result
}

/// One `pg_restore` into the staging database, fed the archive's head and then
/// `blocks`, read from the backup.
async fn run(
    mut cmd: tokio::process::Command,
    what: &str,
    head: &[u8],
    blocks: Vec<DataBlock>,
    pieces: &Arc<dyn BackupPieces>,
) -> anyhow::Result<()> {
    // The tenant's functions run during the load (constraints, index expressions):
    // as the owner role, never as a superuser, and ownership and grants of the dump
    // are not replayed (they could name roles that no longer exist).
    cmd.args(["--exit-on-error", "--no-owner", "--no-privileges", "--role", OWNER, "--dbname", STAGING])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("starting pg_restore")?;
    let mut stdin = child.stdin.take().context("pg_restore has no stdin")?;
    process::widen_pipe(&stdin);
    let stderr = process::collect_tail(child.stderr.take().context("pg_restore has no stderr")?);
    let fed = async {
        stdin.write_all(head).await?;
        for block in &blocks {
            // In pieces of a MiB, not tokio's 8 KiB: one wake-up of pg_restore each.
            let mut piece = tokio::io::BufReader::with_capacity(PIPE_CHUNK, pieces.read(block.start, block.end));
            tokio::io::copy_buf(&mut piece, &mut stdin).await?;
        }
        stdin.shutdown().await
    }
    .await;
    drop(stdin);
    let finished = process::finish(child, stderr, "pg_restore").await;
    // pg_restore's own error explains a broken pipe; a failed read explains itself.
    finished.with_context(|| format!("restoring {what}"))?;
    fed.with_context(|| format!("reading {what} from the backup"))
}

/// Shares the data blocks among `loaders` by size, largest first; each loader's
/// share in the archive's order (it reads forward only). The data entries without a
/// block (sequence values) go to the first.
fn share_data(toc: &Toc, blocks: &[DataBlock], loaders: usize) -> Vec<(Vec<i32>, Vec<DataBlock>)> {
    let mut by_size: Vec<&DataBlock> = blocks.iter().collect();
    by_size.sort_by_key(|b| std::cmp::Reverse(b.end - b.start));
    let loaders = loaders.clamp(1, blocks.len().max(1));
    let mut shares: Vec<(u64, Vec<DataBlock>)> = vec![(0, Vec::new()); loaders];
    for block in by_size {
        let least = shares.iter_mut().min_by_key(|(bytes, _)| *bytes).expect("at least one loader");
        least.0 += block.end - block.start;
        least.1.push(block.clone());
    }
    let without_block = toc
        .entries
        .iter()
        .filter(|e| e.section == Section::Data && !blocks.iter().any(|b| b.dump_id == e.dump_id))
        .map(|e| e.dump_id);
    let mut first = true;
    shares
        .into_iter()
        .map(|(_, mut blocks)| {
            blocks.sort_by_key(|b| b.start);
            let mut entries: Vec<i32> = if first { without_block.clone().collect() } else { Vec::new() };
            first = false;
            entries.extend(blocks.iter().map(|b| b.dump_id));
            (entries, blocks)
        })
        .collect()
}

/// The post-data entries: indexes and keys shared round-robin among `loaders`, and
/// the rest, in the archive's order.
fn share_post_data(toc: &Toc, loaders: usize) -> (Vec<Vec<i32>>, Vec<i32>) {
    let loaders = loaders.max(1);
    let mut indexes: Vec<Vec<i32>> = vec![Vec::new(); loaders];
    let mut rest = Vec::new();
    let mut next = 0;
    for entry in &toc.entries {
        let later = match entry.section {
            Section::PostData => true,
            Section::None => !SESSION_ENTRIES.contains(&entry.desc.as_str()),
            Section::PreData | Section::Data => false,
        };
        if !later {
            continue;
        }
        if entry.section == Section::PostData && INDEXES.contains(&entry.desc.as_str()) {
            indexes[next % loaders].push(entry.dump_id);
            next += 1;
        } else {
            rest.push(entry.dump_id);
        }
    }
    indexes.retain(|share| !share.is_empty());
    (indexes, rest)
}

/// The list files `pg_restore --use-list` reads: in the node's system folder (no
/// engine writes there), readable by the engine's user only.
struct Lists {
    folder: PathBuf,
    owner: files::Owner,
    written: std::sync::Mutex<Vec<PathBuf>>,
}

impl Lists {
    fn new(node: &Node<'_>) -> anyhow::Result<Self> {
        let (_, engine) = crate::layout::owners(node.run_as);
        Ok(Self { folder: node.layout.system(), owner: engine, written: Default::default() })
    }

    fn write(&self, name: &str, entries: &[i32]) -> anyhow::Result<PathBuf> {
        let path = self.folder.join(format!("restore-{name}.list"));
        let text: String = entries.iter().map(|id| format!("{id};\n")).collect();
        files::write_new(&path, text.as_bytes(), self.owner, 0o400)?;
        self.written.lock().unwrap_or_else(|p| p.into_inner()).push(path.clone());
        Ok(path)
    }

    fn remove(self) {
        for path in self.written.into_inner().unwrap_or_else(|p| p.into_inner()) {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::archive::Scanner;

    const DUMP: &[u8] = include_bytes!("testdata/small.dump");

    fn layout() -> (Toc, ArchiveLayout) {
        let mut scanner = Scanner::new();
        scanner.observe(DUMP);
        (Toc::parse(DUMP).unwrap(), scanner.finish().unwrap())
    }

    #[test]
    fn every_data_entry_is_loaded_once_and_each_share_reads_forward() {
        let (toc, layout) = layout();
        for loaders in [1, 2, 3, 8] {
            let shares = share_data(&toc, &layout.blocks, loaders);
            assert_eq!(shares.len(), loaders.min(layout.blocks.len()));
            let mut loaded: Vec<i32> = shares.iter().flat_map(|(entries, _)| entries.clone()).collect();
            loaded.sort();
            let mut data: Vec<i32> =
                toc.entries.iter().filter(|e| e.section == Section::Data).map(|e| e.dump_id).collect();
            data.sort();
            assert_eq!(loaded, data, "{loaders} loaders");
            for (_, blocks) in &shares {
                assert!(blocks.windows(2).all(|w| w[0].start < w[1].start));
            }
        }
        // The largest block (the orders) has a loader of its own when there are two.
        let shares = share_data(&toc, &layout.blocks, 2);
        let largest = layout.blocks.iter().max_by_key(|b| b.end - b.start).unwrap();
        assert!(shares.iter().any(|(_, blocks)| blocks == std::slice::from_ref(largest)), "{shares:?}");
    }

    #[test]
    fn indexes_come_before_the_foreign_keys_that_need_them() {
        let (toc, _) = layout();
        let desc = |id: &i32| toc.entries.iter().find(|e| e.dump_id == *id).unwrap().desc.clone();
        let (indexes, rest) = share_post_data(&toc, 2);
        assert_eq!(indexes.len(), 2);
        let built: Vec<String> = indexes.iter().flatten().map(desc).collect();
        assert_eq!(built.iter().filter(|d| *d == "CONSTRAINT").count(), 3, "{built:?}");
        assert_eq!(built.iter().filter(|d| *d == "INDEX").count(), 1, "{built:?}");
        let later: Vec<String> = rest.iter().map(desc).collect();
        assert!(later.contains(&"FK CONSTRAINT".to_owned()), "{later:?}");
        assert!(!later.iter().any(|d| SESSION_ENTRIES.contains(&d.as_str())), "{later:?}");
    }
}
