//! The page handlers: instances, an instance's overview, its backups and restores.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use store::{InstanceState, Role};

use super::views::{BackupView, InstanceView, RestoreView, is_busy};
use super::{Frame, Nav, PageCaller, PageError, render};
use crate::auth::{Authenticator, Caller};
use crate::listing_cache::KeptPage;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "instances.html")]
struct InstancesPage {
    page: Frame,
    instances: Vec<InstanceView>,
}

pub async fn instances_page(
    State(state): State<AppState>,
    PageCaller(caller): PageCaller,
) -> Result<Response, PageError> {
    let mut instances = Vec::new();
    for instance in state.store.list_instances().await? {
        if instance.state == InstanceState::Deleted {
            continue;
        }
        if state.auth.role(&caller.principal, &instance).await.map_err(crate::error::ApiError::from)?.is_some() {
            instances.push(InstanceView::new(&state, &instance));
        }
    }
    let mut page = Frame::new(&caller);
    page.busy = instances.iter().any(|i| i.state == InstanceState::Deploying.as_str());
    Ok(render(&InstancesPage { page, instances }))
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    page: Frame,
    i: InstanceView,
    role: Role,
    version: String,
    updates: Vec<api_types::v1::AvailableUpdate>,
    parachute_activated: bool,
    /// A cluster's nodes and their roles; empty for a single node.
    nodes: Vec<super::views::NodeView>,
}

impl OverviewPage {
    /// The cluster's nodes the parachute holds stopped, as "node 1" or "nodes 0, 2";
    /// `None` for a single node.
    fn held_nodes(&self) -> Option<String> {
        let held: Vec<String> = self.nodes.iter().filter(|n| n.held.is_some()).map(|n| n.index.to_string()).collect();
        match held.len() {
            0 => None,
            1 => Some(format!("node {}", held[0])),
            _ => Some(format!("nodes {}", held.join(", "))),
        }
    }

    /// Whether some node of a cluster still runs while the parachute holds others.
    fn others_serve(&self) -> bool {
        self.nodes.iter().any(|n| n.held.is_none())
    }
}

pub async fn overview_page(state: &AppState, caller: &Caller, guid: &str) -> Result<Response, PageError> {
    let instance = state.authorized_instance(caller, guid, Role::Read).await?;
    let role = state.auth.role(&caller.principal, &instance).await.map_err(crate::error::ApiError::from)?;
    let mut page = Frame::new(caller);
    page.nav = Some(Nav::new(&instance.guid, "overview", role));
    page.busy = busy(state, &instance).await?;
    Ok(render(&OverviewPage {
        page,
        i: InstanceView::new(state, &instance),
        role: role.unwrap_or(Role::Read),
        version: state.version_of(&instance),
        updates: state.available_updates(&instance),
        parachute_activated: state.parachute_activated(&instance).await?,
        nodes: super::views::node_views(state, &instance).await.map_err(crate::error::ApiError::internal)?,
    }))
}

/// The Backups page: its frame around a `<main>` rendered apart.
#[derive(Template)]
#[template(path = "backups.html")]
struct BackupsPage<'a> {
    page: Frame,
    name: &'a str,
    main: &'a str,
}

#[derive(Template)]
#[template(path = "backups_main.html")]
struct BackupsMain {
    i: InstanceView,
    may_manage: bool,
    backups: Vec<BackupView>,
    restores: Vec<RestoreView>,
    min_key_length: usize,
    has_personal_key: bool,
    settings: store::BackupSettings,
    /// What a backup of this instance's engine holds (RabbitMQ: not its messages).
    backup_contents: &'static str,
    /// The Point-in-Time Recovery panel, for instances archiving their log.
    pitr: Option<super::pitr::PitrView>,
    /// Whether the instance has several nodes: backups then say which one they
    /// were taken from, and a moment is restored into a new instance only.
    clustered: bool,
    /// The plan a new instance made at a moment gets: the instance's own, or for a
    /// cluster a single-node plan of its service.
    pitr_plan: String,
}

/// A page that reloads itself while nothing on it changed gets the `<main>` kept
/// from its last rendering (see [`crate::listing_cache`]), after the caller's
/// check; a page with running work, or with a Point-in-Time Recovery window
/// (which moves as the log is archived), is rendered every time.
pub async fn backups_page(state: &AppState, caller: &Caller, guid: &str) -> Result<Response, PageError> {
    let kept = state.backup_pages.get(guid);
    let known = kept.as_ref().map(|k| k.version);
    let (read, role) = state.authorized_backups_overview_unless(caller, guid, known).await?;
    let may_manage = role == Role::Manage;
    let overview = match (read, &kept) {
        (store::OverviewRead::Unchanged(instance), Some(kept)) if kept.instance == instance => {
            match kept.main(may_manage) {
                Some(main) => return Ok(framed(caller, &kept.instance, role, false, main)),
                // Kept for the other role only.
                None => state.authorized_backups_overview(caller, guid).await?.0,
            }
        }
        (store::OverviewRead::Changed(overview), _) => overview,
        // Kept before the instance itself changed.
        (store::OverviewRead::Unchanged(_), _) => state.authorized_backups_overview(caller, guid).await?.0,
    };
    let version = overview.listing.version;
    let (main, instance, busy) = backups_main(state, overview, may_manage).await?;
    let html: Arc<str> =
        main.render().map_err(|e| crate::error::ApiError::internal(anyhow::anyhow!("rendering a page: {e}")))?.into();
    let page = framed(caller, &instance, role, busy, &html);
    if !busy && main.pitr.is_none() {
        let kept = KeptPage::with(kept.as_deref(), version, instance, may_manage, html);
        state.backup_pages.keep(guid, Arc::new(kept));
    }
    Ok(page)
}

/// The page's frame around its `<main>`.
fn framed(caller: &Caller, instance: &store::Instance, role: Role, busy: bool, main: &str) -> Response {
    let mut page = Frame::new(caller);
    page.nav = Some(Nav::new(&instance.guid, "backups", Some(role)));
    page.busy = busy;
    render(&BackupsPage { page, name: &instance.name, main })
}

/// The page's `<main>` from what the store read, its instance, and whether a
/// backup or restore is queued or running.
async fn backups_main(
    state: &AppState,
    overview: store::BackupsOverview,
    may_manage: bool,
) -> Result<(BackupsMain, store::Instance, bool), PageError> {
    let store::BackupsOverview { listing, restores, settings, nodes } = overview;
    let store::BackupListing { instance, backups, personal_key, .. } = listing;
    // A restore that failed on one node may still have another's job waiting.
    let busy = backups.iter().any(|b| is_busy(b.status()))
        || restores.iter().any(|r| is_busy(r.status()) || r.jobs.iter().any(|j| is_busy(j.status)));
    let restores = restores.iter().map(|r| RestoreView::new(r, backups.iter().find(|b| b.id == r.backup_id))).collect();
    let pitr = match instance.continuous_archiving {
        true => {
            let window = state.pitr_window(&instance).await?;
            let status = state.archiving_status(&instance).await.map_err(crate::error::ApiError::internal)?;
            Some(super::pitr::PitrView::new(&window, &status))
        }
        false => None,
    };
    let main = BackupsMain {
        i: InstanceView::new(state, &instance),
        may_manage,
        backups: backups.iter().map(|b| BackupView::new(b, personal_key.as_ref())).collect(),
        restores,
        min_key_length: state.config.backups.min_encryption_key_length,
        has_personal_key: personal_key.is_some(),
        settings,
        backup_contents: state.engine_of(&instance).map_or("", |e| e.backup_contents()),
        pitr,
        clustered: nodes > 1,
        pitr_plan: new_instance_plan(state, &instance, nodes),
    };
    Ok((main, instance, busy))
}

/// The plan to name for a new instance made at a moment of `instance`: its own,
/// unless it is a cluster (a new instance at a moment has one node).
fn new_instance_plan(state: &AppState, instance: &store::Instance, nodes: usize) -> String {
    let service = state.catalog.service(&instance.service_id);
    let own = service.and_then(|s| s.plan(&instance.plan_id)).map_or(instance.plan_id.as_str(), |p| &p.name);
    match service.and_then(|s| s.plans.iter().find(|p| p.nodes == 1)) {
        Some(single) if nodes > 1 => single.name.clone(),
        _ => own.to_owned(),
    }
}

#[derive(Template)]
#[template(path = "updates.html")]
struct UpdatesPage {
    page: Frame,
    i: InstanceView,
    may_manage: bool,
    service_id: String,
    version: String,
    updates: Vec<api_types::v1::AvailableUpdate>,
}

pub async fn updates_page(
    State(state): State<AppState>,
    PageCaller(caller): PageCaller,
    crate::http::extract::Path(guid): crate::http::extract::Path<String>,
) -> Result<Response, PageError> {
    let instance = state.authorized_instance(&caller, &guid, Role::Read).await?;
    let role = state.auth.role(&caller.principal, &instance).await.map_err(crate::error::ApiError::from)?;
    let mut page = Frame::new(&caller);
    page.nav = Some(Nav::new(&instance.guid, "updates", role));
    page.busy = busy(&state, &instance).await?;
    Ok(render(&UpdatesPage {
        page,
        i: InstanceView::new(&state, &instance),
        may_manage: role == Some(Role::Manage),
        service_id: instance.service_id.clone(),
        version: state.version_of(&instance),
        updates: state.available_updates(&instance),
    }))
}

/// Deploying, or a job on it queued or running: the page follows it until it ends.
pub async fn busy(state: &AppState, instance: &store::Instance) -> Result<bool, PageError> {
    Ok(instance.state == InstanceState::Deploying || state.store.pending_job(instance.id).await?.is_some())
}
