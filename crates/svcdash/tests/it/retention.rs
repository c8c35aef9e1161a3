//! Retention and deleting backups. Passes run with the time the test chooses
//! (`retention::apply(state, now)`), not by waiting days.

use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn old_backups_go_but_the_newest_and_those_being_restored_stay() {
    let dir = data_dir();
    let mut app = TestApp::start_in(dir.path(), config(dir.path())).await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    for n in 1..=5 {
        let seq = app.create_backup(&id).await;
        assert_eq!(seq, n);
        app.wait_finished(&format!("/v1/instances/{id}/backups/{seq}")).await;
    }
    let settings = json!({"min_backup_count": 2, "retention_time": 3}).to_string();
    let (status, _) =
        app.api_as(&app.token, Method::PATCH, &format!("/v1/instances/{id}/backups-config"), Some(&settings)).await;
    assert_eq!(status, StatusCode::OK);
    let objects_before = app.backup_objects();
    assert_eq!(objects_before.len(), 5, "{objects_before:?}");

    // A svcdash without job workers: a restore queued there stays queued.
    app.stop().await;
    let mut config = config(dir.path());
    config.jobs.workers = 0;
    let app = TestApp::start_in(dir.path(), config).await;
    let restore = app.restore(&id, 2).await;
    let (_, queued) = app.api(Method::GET, &format!("/v1/instances/{id}/restores/{restore}")).await;
    assert_eq!(queued["status"], "queued");

    // Young backups all stay.
    let pass = server::retention::apply(app.state(), Utc::now()).await.unwrap();
    assert_eq!(pass, server::retention::Pass::default());

    // Four days on: 1 and 3 are past retention with two newer done ones; 2 is being
    // restored; 4 and 5 are the two newest.
    let pass = server::retention::apply(app.state(), Utc::now() + Duration::days(4)).await.unwrap();
    assert_eq!(pass.removed, [(id.clone(), 3), (id.clone(), 1)]);
    assert_eq!(pass.failed, 0);
    let (_, listed) = app.api(Method::GET, &format!("/v1/instances/{id}/backups")).await;
    let statuses: Vec<(i64, &str)> =
        listed.as_array().unwrap().iter().map(|b| (b["id"].as_i64().unwrap(), b["status"].as_str().unwrap())).collect();
    assert_eq!(statuses, [(5, "done"), (4, "done"), (3, "deleted"), (2, "done"), (1, "deleted")]);
    let remaining: Vec<String> =
        app.backup_objects().iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(remaining.len(), 3, "the objects of 1 and 3 are gone from the store: {remaining:?}");
    assert!(remaining.iter().all(|n| !n.starts_with("backup-1.") && !n.starts_with("backup-3.")), "{remaining:?}");
    // A deleted backup cannot be restored or downloaded.
    let (status, body) = app.api(Method::POST, &format!("/v1/instances/{id}/backups/1/restore")).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::CONFLICT, Some("BackupNotRestorable")), "{body}");

    // Deleting by hand: refused while a restore reads it, done otherwise.
    let (status, body) = app.api(Method::DELETE, &format!("/v1/instances/{id}/backups/2")).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::LOCKED, Some("BackupInUse")), "{body}");
    let (status, body) = app.api(Method::DELETE, &format!("/v1/instances/{id}/backups/4")).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("deleted")), "{body}");
    assert_eq!(app.backup_objects().len(), 2);
    let reader = user_token(app.state(), "mallory", "org-b").await;
    let (status, _) = app.api_as(&reader, Method::DELETE, &format!("/v1/instances/{id}/backups/5"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, log) = app.api(Method::GET, &format!("/v1/instances/{id}/audit")).await;
    let deletes: Vec<(&str, &str)> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "backup.delete")
        .map(|e| (e["actor"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        deletes,
        [("alice", "success"), ("alice", "failure"), ("retention", "success"), ("retention", "success")]
    );
}

#[tokio::test]
async fn backups_of_a_deprovisioned_instance_stay_for_the_operators_period() {
    let app = TestApp::start().await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let seq = app.create_backup(&id).await;
    app.wait_finished(&format!("/v1/instances/{id}/backups/{seq}")).await;
    app.deprovision(&id, REDIS_SERVICE, REDIS_PLAN).await;
    assert_eq!(app.backup_objects().len(), 1, "kept after deprovisioning");
    // Within the 30 days (default), they stay; after, they go.
    let pass = server::retention::apply(app.state(), Utc::now() + Duration::days(29)).await.unwrap();
    assert!(pass.removed.is_empty());
    let pass = server::retention::apply(app.state(), Utc::now() + Duration::days(31)).await.unwrap();
    assert_eq!(pass.removed, [(id.clone(), 1)]);
    assert!(app.backup_objects().is_empty());
}
