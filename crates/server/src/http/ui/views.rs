//! What the templates show, computed from the store's rows.

use api_types::TaskStatus;
use chrono::Utc;
use store::{Backup, Instance, Job, Restore};

use super::format;
use crate::state::AppState;

pub struct InstanceView {
    pub guid: String,
    pub backup_guid: String,
    pub name: String,
    pub service: String,
    pub plan: String,
    pub state: String,
    pub state_reason: Option<String>,
    pub tenant: String,
    pub subtenant: String,
    pub created_at: String,
    pub created_at_text: String,
    pub updated_at: String,
    pub updated_at_text: String,
}

impl InstanceView {
    pub fn new(state: &AppState, i: &Instance) -> Self {
        let service = state.catalog.service(&i.service_id);
        let plan = service.and_then(|s| s.plan(&i.plan_id));
        InstanceView {
            guid: i.guid.clone(),
            backup_guid: i.backup_guid.clone(),
            name: i.name.clone(),
            service: service.map_or_else(|| i.service_id.clone(), |s| s.name.clone()),
            plan: plan.map_or_else(|| i.plan_id.clone(), |p| p.name.clone()),
            state: i.state.to_string(),
            state_reason: i.state_reason.clone(),
            tenant: named(&i.tenant_id, i.tenant_name.as_deref()),
            subtenant: named(&i.subtenant_id, i.subtenant_name.as_deref()),
            created_at: api_types::timestamp::format(&i.created_at),
            created_at_text: format::time(&i.created_at),
            updated_at: api_types::timestamp::format(&i.updated_at),
            updated_at_text: format::time(&i.updated_at),
        }
    }
}

/// A node of a cluster instance, with the role it was last seen in.
pub struct NodeView {
    pub index: i64,
    pub role: String,
    pub port: u16,
    pub since_text: String,
    /// Why the node's engine is stopped on purpose, if it is.
    pub held: Option<String>,
}

/// The instance's nodes when it has several (single nodes have no role to show).
pub async fn node_views(state: &AppState, instance: &Instance) -> anyhow::Result<Vec<NodeView>> {
    Ok(crate::cluster::labelled_nodes(state, instance)
        .await?
        .into_iter()
        .map(|(n, role)| NodeView {
            index: n.index,
            role: role.to_owned(),
            port: n.port,
            since_text: n.role_since.map_or_else(|| "not seen yet".to_owned(), |t| format::time(&t)),
            held: n
                .parachute
                .map(|trip| format!("stopped by the parachute ({} disk) since {}", trip.disk, format::time(&trip.at))),
        })
        .collect())
}

fn named(id: &str, name: Option<&str>) -> String {
    match name {
        Some(name) if name != id => format!("{name} ({id})"),
        _ => id.to_owned(),
    }
}

pub struct BackupView {
    pub id: i64,
    pub status: String,
    pub error: Option<String>,
    pub triggered_at: String,
    pub triggered_at_text: String,
    pub finished_at_text: Option<String>,
    pub duration: String,
    pub size: String,
    /// The node it was taken from, once the job chose it.
    pub node: Option<i64>,
    /// Why it cannot be downloaded; `None` when it can.
    pub not_downloadable: Option<String>,
    pub progress: Option<ProgressView>,
    /// Queued or running: it can be cancelled.
    pub cancellable: bool,
}

/// A running job's progress bar and the line under it.
pub struct ProgressView {
    /// `None` draws a bar that says "busy" without a share.
    pub percent: Option<u8>,
    pub text: String,
    pub label: String,
}

impl ProgressView {
    /// `estimated`: the total is a guess (a backup's), shown with "about".
    pub fn new(p: &api_types::v1::Progress, estimated: bool) -> Self {
        let text = crate::progress::describe(p, estimated);
        let label = match p.percent {
            Some(pct) => format!("{pct} % done"),
            None => "running".into(),
        };
        ProgressView { percent: p.percent, text, label }
    }
}

impl BackupView {
    pub fn new(b: &Backup, personal_key: Option<&store::InstanceKey>) -> Self {
        let status = b.status();
        BackupView {
            id: b.seq,
            status: status.to_string(),
            error: b.job.error.clone(),
            node: b.job.node_index,
            triggered_at: api_types::timestamp::format(&b.job.created_at),
            triggered_at_text: format::time(&b.job.created_at),
            finished_at_text: b.job.finished_at.as_ref().map(format::time),
            duration: duration(&b.job),
            size: match (status, b.size) {
                (TaskStatus::Done, Some(size)) => format::size(size),
                _ => "–".into(),
            },
            not_downloadable: crate::backups::not_downloadable_reason(b, personal_key),
            progress: crate::progress::of_job(&b.job, Utc::now()).map(|p| ProgressView::new(&p, true)),
            cancellable: is_busy(status),
        }
    }
}

/// From the moment the job was queued to its end (or now, while it runs), as the
/// reference's dashboard counts it.
fn duration(job: &Job) -> String {
    format::duration(&job.created_at, &job.finished_at.unwrap_or_else(Utc::now))
}

pub struct RestoreView {
    pub id: i64,
    pub backup_id: i64,
    /// For a restore to a point in time: the moment.
    pub target_time_text: Option<String>,
    pub backup_created_at_text: String,
    /// One row per node the restore ran on; the backup's columns span them.
    pub nodes: Vec<RestoreNodeView>,
    /// Queued or running, no node restored yet: it can be cancelled.
    pub cancellable: bool,
}

pub struct RestoreNodeView {
    pub node: String,
    pub status: String,
    pub error: Option<String>,
    pub triggered_at_text: String,
    pub finished_at_text: Option<String>,
    pub duration: String,
    pub progress: Option<ProgressView>,
}

impl RestoreView {
    pub fn new(r: &Restore, backup: Option<&Backup>) -> Self {
        RestoreView {
            id: r.seq,
            backup_id: r.backup_seq,
            target_time_text: r.target_time.as_ref().map(format::time_ms),
            backup_created_at_text: backup.map_or_else(|| "–".into(), |b| format::time(&b.job.created_at)),
            nodes: r
                .jobs
                .iter()
                .map(|j| RestoreNodeView {
                    node: j.node_index.map_or_else(|| "–".into(), |n| n.to_string()),
                    status: j.status.to_string(),
                    error: j.error.clone(),
                    triggered_at_text: format::time(&j.created_at),
                    finished_at_text: j.finished_at.as_ref().map(format::time),
                    duration: duration(j),
                    progress: crate::progress::of_job(j, Utc::now()).map(|p| ProgressView::new(&p, false)),
                })
                .collect(),
            cancellable: is_busy(r.status()) && !r.jobs.iter().any(|j| j.status == TaskStatus::Done),
        }
    }
}

pub fn is_busy(status: TaskStatus) -> bool {
    matches!(status, TaskStatus::Queued | TaskStatus::Running)
}
