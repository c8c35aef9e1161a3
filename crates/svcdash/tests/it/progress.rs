//! Long backups and restores: progress while they run (API, Backups page, command
//! line) and cancelling them. The operator's bandwidth limit
//! (`max_mib_per_second`) holds a backup of some 20 MiB to about ten seconds: long
//! enough to be caught mid-way without any timed assertion.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;

/// Polls `path` until its `progress` has counted bytes; returns the progress.
async fn progress_under_way(app: &TestApp, path: &str) -> Value {
    app.wait_for(&format!("{path} to report progress"), Duration::from_secs(60), || async move {
        let (status, body) = app.api(Method::GET, path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_ne!(body["status"], "done", "{path} ended before it was caught: {body}");
        let progress = body.get("progress")?.clone();
        (progress["bytes_done"].as_u64()? > 0).then_some(progress)
    })
    .await
}

fn assert_progress_shape(p: &Value) {
    let keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["bytes_done", "bytes_per_second", "bytes_total", "eta_seconds", "percent"], "{p}");
    let (done, total) = (p["bytes_done"].as_u64().unwrap(), p["bytes_total"].as_u64().unwrap());
    assert!(done <= total, "{p}");
    assert!(p["percent"].as_u64().unwrap() < 100, "{p}");
}

async fn cancel(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value) {
    app.api_as(token, Method::POST, &format!("{path}/cancel"), None).await
}

/// A PostgreSQL instance of org-a holding some 25 MiB (table `big`, 140,000 rows)
/// on a svcdash whose jobs move at most `mib_per_second`; its binding's credentials.
async fn slow_postgres(mib_per_second: u64) -> (TestApp, String, Value) {
    let dir = data_dir();
    let mut config = config(dir.path());
    config.backups.max_mib_per_second = mib_per_second;
    let mut app = TestApp::start_in(dir.path(), config).await;
    app.keep_dir(dir);
    let id = app.provision(PG_SERVICE, PG_PLAN, "org-a").await;
    let creds = app.bind(&id, PG_SERVICE, PG_PLAN).await;
    sqlx::raw_sql(
        "CREATE TABLE big AS SELECT g AS id, md5(g::text) || repeat('x', 120) AS body FROM generate_series(1, 140000) g",
    )
    .execute(&mut pg(&creds).await)
    .await
    .unwrap();
    (app, id, creds)
}

async fn rows(creds: &Value, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&mut pg(creds).await).await.unwrap()
}

#[tokio::test]
async fn long_backups_and_restores_show_progress_and_a_cancel_leaves_everything_as_it_was() {
    let (mut app, id, creds) = slow_postgres(2).await;
    let store = &app.state().store;
    let rita = crate::pages::reader_token(&app, "rita", "org-a").await;

    // A first backup: the total is the engine's estimate (the table's size).
    let first = format!("/v1/instances/{id}/backups/{}", app.create_backup(&id).await);
    let progress = progress_under_way(&app, &first).await;
    assert_progress_shape(&progress);
    assert!(progress["bytes_total"].as_u64().unwrap() > 10 << 20, "the table's size: {progress}");
    let html = crate::pages::page(&app, &app.token, &format!("/service-instances/{id}/backups")).await;
    assert!(html.contains(r#"<progress max="100" value=""#), "{html}");
    assert!(html.contains(r#"data-action="cancel" data-what="backup 1""#), "{html}");
    let (ok, out) = crate::cli::svcdash(&["instances", "show", &id], &[("SVCDASH_DATA", app.data.to_str().unwrap())]);
    assert!(ok, "{out}");
    let line = out.lines().find(|l| l.starts_with("running:")).unwrap_or_else(|| panic!("{out}"));
    assert!(line.starts_with("running:    backup 1: ") && line.contains(" of about ") && line.contains("/s"), "{out}");

    // Readers may watch, not cancel; a manager cancels.
    let (status, body) = cancel(&app, &rita, &first).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = cancel(&app, &app.token, &first).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"id": 1, "status": "running", "message": "backup 1 is stopping: cancelled by alice"})
    );
    let ended = app.wait_finished(&first).await;
    assert_eq!(ended["status"], "failed", "{ended}");
    assert!(ended.get("progress").is_none(), "{ended}");
    assert_eq!(app.job_errors(&first).await, ["cancelled by alice"]);
    assert_eq!(app.backup_objects(), Vec::<std::path::PathBuf>::new(), "the cancelled upload left nothing behind");
    let (status, body) = cancel(&app, &app.token, &first).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "NotRunning", "{body}");
    let html = crate::pages::page(&app, &app.token, &format!("/service-instances/{id}/backups")).await;
    assert!(html.contains("cancelled by alice"), "{html}");

    // A second backup runs to its end; its total is then exact for the restore.
    let second = app.create_backup(&id).await;
    let second_path = format!("/v1/instances/{id}/backups/{second}");
    assert_progress_shape(&progress_under_way(&app, &second_path).await);
    let done = app.wait_done(&second_path).await;
    assert!(done.get("progress").is_none(), "{done}");

    // A restore caught mid-way and cancelled leaves the data as it is now.
    sqlx::raw_sql(
        "CREATE TABLE after_backup (x int); INSERT INTO after_backup VALUES (1); DELETE FROM big WHERE id <= 10",
    )
    .execute(&mut pg(&creds).await)
    .await
    .unwrap();
    let restore = format!("/v1/instances/{id}/restores/{}", app.restore(&id, second).await);
    let progress = progress_under_way(&app, &restore).await;
    assert_progress_shape(&progress);
    let plain = store.backup_by_seq(store.instance_by_guid(&id).await.unwrap().id, second).await.unwrap().plain_size;
    assert_eq!(progress["bytes_total"].as_i64(), plain, "a restore's total is the backup's plain size");
    let html = crate::pages::page(&app, &app.token, &format!("/service-instances/{id}/backups")).await;
    assert!(html.contains(r#"data-action="cancel" data-what="restore 1""#), "{html}");
    let (status, body) = cancel(&app, &app.token, &restore).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(app.wait_finished(&restore).await["status"], "failed");
    assert_eq!(app.job_errors(&restore).await, ["cancelled by alice"]);
    assert_eq!(rows(&creds, "SELECT count(*) FROM after_backup").await, 1, "what came after the backup is still there");
    assert_eq!(rows(&creds, "SELECT count(*) FROM big").await, 140_000 - 10);
    let spec = app.node(&id).await;
    let staging: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = 'app_restore'")
        .fetch_one(&mut pg_admin(&spec, "postgres").await)
        .await
        .unwrap();
    assert_eq!(staging, 0, "the staged data is gone");

    // Queued behind a running backup, a restore is cancelled at once and never runs.
    let third = format!("/v1/instances/{id}/backups/{}", app.create_backup(&id).await);
    progress_under_way(&app, &third).await;
    let queued = format!("/v1/instances/{id}/restores/{}", app.restore(&id, second).await);
    let (status, body) = cancel(&app, &app.token, &queued).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, serde_json::json!({"id": 2, "status": "failed", "message": "restore 2 was cancelled by alice"}));
    let (status, body) = cancel(&app, &app.token, &third).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(app.wait_finished(&third).await["status"], "failed");
    let objects = app.backup_objects();
    assert_eq!(objects.len(), 1, "only the second backup is stored: {objects:?}");
    assert_eq!(rows(&creds, "SELECT count(*) FROM after_backup").await, 1, "the queued restore never ran");

    let audit = audit_log(&app).await;
    let cancels: Vec<String> = audit
        .iter()
        .filter(|e| e.action.ends_with(".cancel"))
        .map(|e| format!("{} {} {}", e.actor, e.action, e.detail.clone().unwrap_or_default()))
        .collect();
    assert_eq!(cancels.len(), 5, "{cancels:?}");
    assert!(cancels.iter().any(|c| c == "alice restore.cancel restore 2 was cancelled by alice"), "{cancels:?}");
    assert!(
        audit.iter().any(|e| e.actor == "rita" && e.action == "access" && e.outcome == store::AuditOutcome::Denied),
        "the refusal is audited"
    );
    app.stop().await;
}

/// The same in a real browser (tests/support/cancel.mjs): the progress bar, the
/// confirmation, and the backup listed failed with who cancelled it.
#[tokio::test]
async fn a_manager_cancels_a_running_backup_in_the_browser() {
    // Slow enough that the backup is still running when the browser gets to it.
    let (mut app, id, _) = slow_postgres(1).await;
    browser_sign_in(&app).await;
    let backup = format!("/v1/instances/{id}/backups/{}", app.create_backup(&id).await);
    progress_under_way(&app, &backup).await;

    let findings = browser_findings(browser_script("cancel.mjs", &app.base, &id))
        .await
        .unwrap_or_else(|e| panic!("the browser test failed:\n{e}"));
    assert!(findings["barLabel"].as_str().unwrap().ends_with(" % done"), "{findings}");
    assert!(findings["barText"].as_str().unwrap().contains(" of about "), "{findings}");
    assert!(findings["dialog"].as_str().unwrap().starts_with("Cancel backup 1?"), "{findings}");
    assert_eq!(findings["runningAfterNo"], 1, "No left the backup running: {findings}");
    assert_eq!(findings["status"], "Backup 1 is stopping: cancelled by alice.", "{findings}");
    assert!(findings["row"].as_str().unwrap().contains("failed cancelled by alice"), "{findings}");
    assert_eq!(findings["pageErrors"], serde_json::json!([]), "{findings}");
    assert_eq!(app.wait_finished(&backup).await["status"], "failed");
    assert_eq!(app.backup_objects(), Vec::<std::path::PathBuf>::new(), "the cancelled upload left nothing behind");
    app.stop().await;
}
