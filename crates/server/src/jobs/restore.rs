//! The restore job (one per node): the object is read back, authenticated, hashed
//! and loaded beside the node's data; only when all of that succeeded does the node
//! switch over to it. A failure leaves the instance's data as it was.
//!
//! A restore to a point in time loads a base backup the same way, and its commit
//! replays the archived write-ahead log up to the target beside the live data
//! (fetched through the node's fetch socket, served here while it runs).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use backup::Tracker;
use chrono::{DateTime, Utc};
use engines::{NodeSpec, RecoveryTarget, WalSocket};
use store::{Instance, Job, Restore};

use crate::state::AppState;

/// How long the file closed before a restore to a point in time may take to be
/// archived.
const SEAL_TIMEOUT: Duration = Duration::from_secs(120);

pub async fn run(state: &AppState, job: &Job, tracker: &Arc<Tracker>) -> anyhow::Result<()> {
    let backup_id = job.backup_id.context("a restore job without a backup")?;
    let instance = state.store.instance(job.instance_id).await?;
    crate::metrics::parachute::ensure_released(state, &instance).await?;
    let node = job.node_index.unwrap_or(0);
    let spec = state
        .node_specs(&instance)
        .await?
        .into_iter()
        .find(|s| s.index == node)
        .with_context(|| format!("instance {} has no node {node}", instance.guid))?;
    if let Some(restore_id) = job.restore_id {
        let restore = state.store.restore(restore_id).await?;
        if let Some(target) = restore.target_time {
            return point_in_time(state, &instance, &spec, &restore, target, tracker).await;
        }
    }
    // No sentinel may promote a replica while a node's data is being replaced: the
    // replica's data would win over the restored data. (A master-only restore
    // replaces a database on the live primary, and the replicas follow it.)
    let nodes = state.node_specs(&instance).await?;
    if nodes.len() > 1 && spec.engine.restore_rebuilds_peers() {
        return rebuilding_peers(state, &instance, backup_id, &spec, &nodes, tracker).await;
    }
    let clustered = nodes.len() > 1 && spec.engine.cluster_kind() == Some(engines::ClusterKind::MultiNode);
    if clustered {
        state.deployer.hold_failover(&nodes).await;
    }
    let result = load(state, backup_id, &spec, tracker).await;
    if clustered {
        let released = state.deployer.release_failover(&nodes).await;
        result?;
        return released;
    }
    result
}

/// A restore that starts a new cluster from the restored node (Galera): the other
/// nodes stop first, so none goes on with the old data, and start again after it,
/// copying the restored node (or rejoining the old data, if the restore failed).
/// The job ends once every node is back in step.
async fn rebuilding_peers(
    state: &AppState,
    instance: &Instance,
    backup_id: i64,
    spec: &NodeSpec,
    nodes: &[NodeSpec],
    tracker: &Arc<Tracker>,
) -> anyhow::Result<()> {
    let peers: Vec<&NodeSpec> = nodes.iter().filter(|n| n.index != spec.index).collect();
    for peer in &peers {
        state.deployer.stop(peer).await?;
    }
    let result = load(state, backup_id, spec, tracker).await;
    for peer in &peers {
        let started = async {
            state.deployer.start(peer).await?;
            crate::cluster::wait_in_sync(state, instance, peer).await
        };
        if let Err(e) = started.await {
            tracing::warn!(instance = %instance.guid, node = peer.index, error = format!("{e:#}"), "node did not rejoin after the restore");
            if result.is_ok() {
                return Err(e.context(format!("node {} did not copy the restored node", peer.index)));
            }
        }
    }
    crate::cluster::observe_roles(state, instance).await?;
    result
}

/// Downloads the backup into the node and switches the node over to it.
async fn load(state: &AppState, backup_id: i64, spec: &NodeSpec, tracker: &Arc<Tracker>) -> anyhow::Result<()> {
    let backup = state.store.backup(backup_id).await?;
    let expected = backup.sha256.clone().context("the backup has no recorded checksum; it never completed")?;
    tracker.set_total(backup.plain_size.and_then(|s| u64::try_from(s).ok()));
    let layout = match state.config.backups.restore_in_pieces {
        true => state.store.backup_layout(backup.id).await?,
        false => None,
    };
    if let Some(layout) = layout {
        let layout: super::pieces::Layout = serde_json::from_str(&layout).context("reading the backup's layout")?;
        let pieces = Arc::new(super::pieces::ObjectPieces::new(
            state.storage.clone(),
            backup.object_key.clone(),
            state.backup_key(&backup).await?,
            layout.frames,
            tracker.clone(),
        ));
        // The object is checked as a whole while its pieces load. A failed check
        // stops the load (its reads fail); a failed load needs no check.
        let load = state.deployer.begin_parallel_restore(spec, &layout.engine, pieces);
        let verify = backup::verify(&state.storage, &backup.object_key, &expected);
        tokio::pin!(load, verify);
        let (staged, verified) = tokio::select! {
            staged = &mut load => match staged {
                Ok(Some(staged)) => (Ok(Some(staged)), verify.await),
                other => (other, Ok(0)),
            },
            verified = &mut verify => {
                if let Err(e) = &verified {
                    tracker.cancel(format!("{e:#}"));
                }
                (load.await, verified)
            }
        };
        match (staged, verified) {
            (Ok(Some(staged)), verified) => {
                let what = format!("backup {}, in pieces", backup.seq);
                let plain = verified.map(|_| u64::try_from(backup.plain_size.unwrap_or(0)).unwrap_or(0));
                return switch_over(state, spec, staged, plain, tracker, &what).await;
            }
            (Ok(None), _) => tracing::debug!(backup = backup.seq, "the engine restores this backup as one stream"),
            // A cancel, or a damaged object, explains a failed load best.
            (Err(e), verified) => {
                return Err(tracker.cancelled().map(anyhow::Error::msg).or(verified.err()).unwrap_or(e));
            }
        }
    }
    let key = state.backup_key(&backup).await?;
    let sink = state.deployer.begin_restore(spec).await?;
    let writer = Box::new(tracker.track(sink.writer));
    let loaded = backup::download(&state.storage, &backup.object_key, &expected, key.identity(), writer).await;
    switch_over(state, spec, sink.staged, loaded, tracker, &format!("backup {}", backup.seq)).await
}

/// The last moment a cancel is taken: after it the node's data is replaced.
async fn switch_over(
    state: &AppState,
    spec: &NodeSpec,
    staged: Box<dyn engines::StagedRestore>,
    loaded: anyhow::Result<u64>,
    tracker: &Tracker,
    what: &str,
) -> anyhow::Result<()> {
    match (loaded, tracker.cancelled()) {
        (Ok(bytes), None) => {
            tracing::info!(what, plain_bytes = bytes, "verified and loaded; switching over");
            state.deployer.commit_restore(spec, staged).await
        }
        (Ok(_), Some(reason)) | (Err(_), Some(reason)) => {
            state.deployer.abort_restore(spec, staged).await;
            Err(anyhow::anyhow!(reason))
        }
        (Err(e), None) => {
            state.deployer.abort_restore(spec, staged).await;
            Err(e)
        }
    }
}

async fn point_in_time(
    state: &AppState,
    instance: &Instance,
    spec: &NodeSpec,
    restore: &Restore,
    target: DateTime<Utc>,
    tracker: &Arc<Tracker>,
) -> anyhow::Result<()> {
    let mut users = Vec::new();
    for binding in state.store.bindings(instance.id).await? {
        users.push((binding.username, state.master.unseal(&binding.sealed_password)?));
    }
    let nodes = state.node_specs(instance).await?;
    let result = match nodes.len() > 1 {
        true => cluster_in_place(state, instance, &nodes, restore, target, users, tracker).await,
        false => {
            let into = Destination::Fork(restore);
            replay_into(state, instance, spec, target, users, into, &mut false, tracker).await
        }
    };
    // The history forked once the node ran on the restored data, even if a cluster's
    // other nodes then failed to copy it: the new timeline needs a base backup.
    let forked = state.store.restore(restore.id).await.map(|r| r.timeline.is_some()).unwrap_or(true);
    if forked {
        let what = format!("restore {} to {}", restore.seq, api_types::timestamp::format(&target));
        backup_after(state, instance, &what).await;
    }
    let timeline = result?;
    tracing::info!(timeline, target = %target, "restored to a point in time");
    Ok(())
}

/// A cluster restored in place to a point in time: node 0, made the primary first,
/// replays beside its data while the other nodes stop (it serves alone meanwhile),
/// then starts a new formation on the restored data; the others throw their data
/// away (it lies on the history the restore abandoned) and copy node 0, as new
/// replicas do. A failure before the switch leaves every node's data as it was,
/// and starts the others again; one after it still leaves node 0 on the restored
/// data, and the fork recorded.
async fn cluster_in_place(
    state: &AppState,
    instance: &Instance,
    nodes: &[NodeSpec],
    restore: &Restore,
    target: DateTime<Utc>,
    users: Vec<(String, secrecy::SecretString)>,
    tracker: &Arc<Tracker>,
) -> anyhow::Result<u32> {
    let first = nodes.iter().find(|n| n.index == 0).context("the cluster has no node 0")?;
    // Checked again before the replay, once the archive holds everything: checked
    // here first so that a target gone out of the window (retention) changes no
    // node's role and stops none.
    let window = state.pitr_window(instance).await.map_err(|e| anyhow::anyhow!(e.description()))?;
    let plan = window.plan(target).map_err(anyhow::Error::msg)?;
    state.store.base_backup(plan.backup_id).await?.context("the base backup is gone")?;
    if crate::cluster::primary(state, instance).await.map(|p| p.index).ok() != Some(0) {
        state.deployer.promote(first).await.context("making node 0 the primary before the restore")?;
        crate::cluster::observe_roles(state, instance).await?;
    }
    let peers: Vec<&NodeSpec> = nodes.iter().filter(|n| n.index != 0).collect();
    for peer in &peers {
        state.deployer.stop(peer).await?;
    }
    // Once node 0 switched, the other nodes' data lies on the history the restore
    // left: none may run on it again, even if the job (or svcdash) stops before they
    // copied node 0. So they are marked before the replay, and the mark comes off
    // only if the replay failed before the switch.
    let rows = state.store.nodes(instance.id).await?;
    let row = |index: i64| rows.iter().find(|n| n.index == index);
    for peer in peers.iter().filter_map(|peer| row(peer.index)) {
        state.store.set_node_copy_pending(peer.id, true).await?;
    }
    let mut switched = false;
    let into = Destination::Fork(restore);
    let result = replay_into(state, instance, first, target, users, into, &mut switched, tracker).await;
    if switched {
        tracing::info!(instance = %instance.guid, "node 0 runs on the restored data; the other nodes copy it");
    } else {
        for peer in peers.iter().filter_map(|peer| row(peer.index)).filter(|n| !n.copy_pending) {
            state.store.set_node_copy_pending(peer.id, false).await?;
        }
    }
    // The other nodes copy node 0 at once, each as a new replica does.
    let back = peers.iter().map(|peer| async {
        match switched {
            true => {
                state.deployer.rebuild(peer).await?;
                crate::cluster::wait_in_sync(state, instance, peer).await?;
                if let Some(row) = row(peer.index) {
                    state.store.set_node_copy_pending(row.id, false).await?;
                }
            }
            false => {
                crate::cluster::start_or_copy(state, instance, peer).await?;
                crate::cluster::wait_in_sync(state, instance, peer).await?;
            }
        }
        crate::cluster::sync_users(state, instance, peer).await
    });
    // Every peer's failure is told: which of them copied node 0 says where to look.
    let mut failed = Vec::new();
    for (peer, back) in peers.iter().zip(futures::future::join_all(back).await) {
        if let Err(e) = back {
            tracing::warn!(instance = %instance.guid, node = peer.index, error = format!("{e:#}"), "node did not rejoin after the restore");
            failed.push((peer.index, e));
        }
    }
    if switched && !failed.is_empty() {
        let nodes: Vec<String> = failed.iter().map(|(index, _)| index.to_string()).collect();
        let (_, first) = failed.remove(0);
        return Err(first.context(format!(
            "node 0 runs on the restored data, and node {} did not copy it; the next check of the engines has \
             it copy node 0 again",
            nodes.join(" and node ")
        )));
    }
    crate::cluster::observe_roles(state, instance).await?;
    result
}

/// Makes `into` a new instance at `target` of `origin`'s history (the provision
/// parameter `restore_from`): origin's base backup and archive, replayed into the
/// new instance's node, with none of origin's users.
pub async fn new_instance_at(
    state: &AppState,
    into: &Instance,
    spec: &NodeSpec,
    origin: &Instance,
    target: DateTime<Utc>,
) -> anyhow::Result<()> {
    let origin_spec = state.node_specs(origin).await?.into_iter().next().context("the origin has no node")?;
    let password = origin_spec.admin_password.clone();
    let tracker = state.config.backups.tracker();
    let destination = Destination::NewInstance(password);
    let timeline = replay_into(state, origin, spec, target, Vec::new(), destination, &mut false, &tracker).await?;
    state.store.set_start_timeline(into.id, i64::from(timeline)).await?;
    tracing::info!(into = %into.guid, origin = %origin.guid, timeline, target = %target, "made at a moment of another instance");
    Ok(())
}

/// What a replay restores into.
enum Destination<'a> {
    /// The source itself, by this restore: its history forks.
    Fork(&'a Restore),
    /// A new instance, made with the source's admin password (to remove the
    /// source's users from it).
    NewInstance(secrecy::SecretString),
}

/// Restores `spec` to `target` of `source`'s history (its own, or another
/// instance's); returns the timeline the node goes on with. `switched` is set once
/// the node runs on the restored data: an error after that leaves it there. A
/// restore of the source's own history is recorded as a fork right then: whatever
/// happens after, the history has forked there.
#[allow(clippy::too_many_arguments)]
async fn replay_into(
    state: &AppState,
    source: &Instance,
    spec: &NodeSpec,
    target: DateTime<Utc>,
    users: Vec<(String, secrecy::SecretString)>,
    into: Destination<'_>,
    switched: &mut bool,
    tracker: &Arc<Tracker>,
) -> anyhow::Result<u32> {
    // Replay stops at the first commit after the target: make sure the archive holds
    // one, and everything written up to now.
    // The primary writes (and archives) the source's history now.
    match crate::cluster::primary(state, source).await {
        Ok(source_spec) => match state.deployer.seal_wal(&source_spec).await {
            Ok(file) => {
                wait_for_segment(state, source, &file).await?;
                tracing::debug!("the archive holds everything written so far");
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "could not close the current write-ahead log file"),
        },
        Err(e) => tracing::warn!(
            instance = %source.guid,
            error = format!("{e:#}"),
            "could not find the primary of the instance restored from"
        ),
    }
    // The window may have changed since the restore was asked for (retention, say).
    let window = state.pitr_window(source).await.map_err(|e| anyhow::anyhow!(e.description()))?;
    let plan = window.plan(target).map_err(anyhow::Error::msg)?;
    let base = state.store.base_backup(plan.backup_id).await?.context("the base backup is gone")?;
    let key = state.key_by_id(base.key_id).await?;

    let listener = state.deployer.listen_for_wal(spec, WalSocket::Fetch).await?;
    let server = {
        let (state, source, first) = (state.clone(), source.clone(), base.start_wal.clone());
        tokio::spawn(async move { crate::archive::fetch::serve(state, source, listener, &first).await })
    };
    let recovery = RecoveryTarget {
        time: target,
        timeline: plan.timeline,
        users,
        client: crate::archive::client_program(&state.config)?,
        source_admin_password: match &into {
            Destination::Fork(_) => None,
            Destination::NewInstance(password) => Some(password.clone()),
        },
    };
    tracker.set_total(u64::try_from(base.plain_size).ok());
    let result = async {
        let sink = state.deployer.begin_point_in_time_restore(spec, &recovery).await?;
        let writer = Box::new(tracker.track(sink.writer));
        let loaded = backup::download(&state.storage, &base.object_key, &base.sha256, key.identity(), writer).await;
        let what = format!("base backup, replaying the archive to {target}");
        switch_over(state, spec, sink.staged, loaded, tracker, &what).await
    }
    .await;
    server.abort();
    result?;
    *switched = true;
    let forked_at = Utc::now();
    tracing::debug!("the node runs on the restored data");
    let timeline = timeline_of(state, spec).await?;
    if let Destination::Fork(restore) = into {
        state.store.set_restore_timeline(restore.id, i64::from(timeline), forked_at).await?;
    }
    // Closing the first file of the new timeline at once puts it in the archive.
    if spec.archive.is_some()
        && let Err(e) = state.deployer.seal_wal(spec).await
    {
        tracing::warn!(error = format!("{e:#}"), "could not close the first write-ahead log file of the new timeline");
    }
    Ok(timeline)
}

/// The timeline a node that has just started writes on, asked until it answers
/// (for up to [`SEAL_TIMEOUT`]): the fork is recorded with it.
async fn timeline_of(state: &AppState, spec: &NodeSpec) -> anyhow::Result<u32> {
    let started = std::time::Instant::now();
    loop {
        match state.deployer.wal_position(spec).await {
            Ok(position) => return Ok(position.timeline),
            Err(e) if started.elapsed() >= SEAL_TIMEOUT => {
                return Err(e.context("asking the restored node for its timeline"));
            }
            Err(e) => tracing::debug!(error = format!("{e:#}"), "the restored node does not answer yet"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Base backups taken after a restore's target lie on the abandoned history: the
/// new timeline gets one of its own at once, so the window grows again from here.
pub(crate) async fn backup_after(state: &AppState, instance: &Instance, what: &str) {
    match state.queue_backup(instance).await {
        Ok(request) => {
            let detail = format!("backup {} queued after {what}, for a base backup", request.backup().seq);
            state
                .audit_as(
                    "restore",
                    None,
                    "backup.create",
                    Some(&instance.guid),
                    store::AuditOutcome::Success,
                    Some(&detail),
                )
                .await;
        }
        Err(e) => tracing::warn!(error = %e.description(), "could not queue a backup after the restore"),
    }
}

async fn wait_for_segment(state: &AppState, instance: &Instance, name: &str) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    while state.store.wal_segment(instance.id, name).await?.is_none() {
        anyhow::ensure!(
            started.elapsed() < SEAL_TIMEOUT,
            "write-ahead log file {name} was not archived within {} s; the backup store may be unreachable",
            SEAL_TIMEOUT.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
