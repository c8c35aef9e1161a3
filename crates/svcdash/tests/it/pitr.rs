//! Point-in-time recovery of an archiving PostgreSQL instance, against a real
//! server archiving every 2 s: the window, restores that bring back exactly the
//! rows committed before their target, targets refused with nothing touched, and
//! restores along the timelines earlier restores made.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgConnection;

use crate::helpers::*;

const SCRAPE_TOKEN: &str = "scrape-secret-0123456789";

async fn start() -> TestApp {
    start_closing_every(2).await
}

/// svcdash closing the current write-ahead log file every `secs` (a test that closes
/// files itself, to know what each holds, passes an hour).
async fn start_closing_every(secs: u32) -> TestApp {
    let dir = data_dir();
    let data = dir.path().join("data");
    let mut config = config(&data);
    config.backups.wal_archive_timeout_secs = secs;
    config.metrics.prometheus_token = Some(SCRAPE_TOKEN.to_owned().into());
    let mut app = TestApp::start_in(&data, config).await;
    app.keep_dir(dir);
    app
}

async fn bind_with_id(app: &TestApp, id: &str) -> (String, Value) {
    let binding = server::instances::new_guid();
    let (status, body) = app
        .broker(
            Method::PUT,
            &format!("/v2/service_instances/{id}/service_bindings/{binding}"),
            Some(json!({"service_id": PG_SERVICE, "plan_id": PG_PLAN})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (binding, body["credentials"].clone())
}

async fn pg_connect(credentials: &Value) -> sqlx::Result<PgConnection> {
    use sqlx::Connection;
    PgConnection::connect(credentials["uri"].as_str().unwrap()).await
}

async fn rows(conn: &mut PgConnection) -> Vec<i32> {
    sqlx::query_scalar("SELECT id FROM events ORDER BY id").fetch_all(conn).await.unwrap()
}

async fn insert(conn: &mut PgConnection, id: i32) {
    sqlx::query("INSERT INTO events (id) VALUES ($1)").bind(id).execute(conn).await.unwrap();
}

/// A moment strictly between the commits before and after it.
pub(crate) async fn mark() -> DateTime<Utc> {
    tokio::time::sleep(Duration::from_millis(600)).await;
    let t = Utc::now();
    tokio::time::sleep(Duration::from_millis(600)).await;
    t
}

pub(crate) fn iso(t: DateTime<Utc>) -> String {
    api_types::timestamp::format(&t)
}

pub(crate) async fn window(app: &TestApp, id: &str) -> (StatusCode, Value) {
    app.api(Method::GET, &format!("/v1/instances/{id}/pitr")).await
}

/// Waits until the window reaches `t`.
pub(crate) async fn window_reaching(app: &TestApp, id: &str, t: DateTime<Utc>) -> Value {
    let started = std::time::Instant::now();
    loop {
        let (status, body) = window(app, id).await;
        let end = body["end_time"].as_str().and_then(|e| DateTime::parse_from_rfc3339(e).ok());
        if status == StatusCode::OK && end.is_some_and(|end| end >= t) {
            return body;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the window did not reach {t}: {status} {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn restore_to(app: &TestApp, id: &str, target: &str) -> (StatusCode, Value) {
    let body = json!({ "target_time": target }).to_string();
    app.api_as(&app.token, Method::POST, &format!("/v1/instances/{id}/pitr/restore"), Some(&body)).await
}

/// Restores to `target` and waits until it is done; returns the history entry.
async fn restored_to(app: &TestApp, id: &str, target: DateTime<Utc>) -> Value {
    let (status, body) = restore_to(app, id, &iso(target)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "queued");
    let seq = body["id"].as_i64().unwrap();
    app.wait_done(&format!("/v1/instances/{id}/restores/{seq}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restores_to_a_point_in_time_bring_back_exactly_what_was_committed_before_it() {
    let app = start().await;
    let id = app.provision_with(PG_SERVICE, PG_PLAN, "org-a", json!({"continuous_archiving": true})).await;
    let credentials = app.bind(&id, PG_SERVICE, PG_PLAN).await;
    let (gone, gone_credentials) = bind_with_id(&app, &id).await;

    // Nothing to restore to before the first base backup.
    let (status, body) = window(&app, &id).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "NoRecoveryWindow");

    let mut conn = pg(&credentials).await;
    sqlx::query("CREATE TABLE events (id int PRIMARY KEY)").execute(&mut conn).await.unwrap();
    let backup = app.create_backup(&id).await;
    app.wait_done(&format!("/v1/instances/{id}/backups/{backup}")).await;
    let instance = app.state().store.instance_by_guid(&id).await.unwrap();
    let bases = app.state().store.base_backups(instance.id).await.unwrap();
    assert_eq!(bases.len(), 1);
    let stored = app.data.join("backups").join(&bases[0].object_key);
    assert!(std::fs::read(&stored).unwrap().starts_with(b"age-encryption.org/v1"), "the base backup is encrypted");

    let t0 = mark().await;
    insert(&mut conn, 1).await;
    let t1 = mark().await;
    insert(&mut conn, 2).await;
    let t2 = mark().await;
    insert(&mut conn, 3).await;
    let t3 = mark().await;

    // Bindings change after the targets: the restored data must follow them.
    let late = app.bind(&id, PG_SERVICE, PG_PLAN).await;
    let offering = format!("service_id={PG_SERVICE}&plan_id={PG_PLAN}");
    let (status, body) = app
        .broker(Method::DELETE, &format!("/v2/service_instances/{id}/service_bindings/{gone}?{offering}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(pg_connect(&gone_credentials).await.is_err(), "an unbound user cannot log in");

    let shown = window_reaching(&app, &id, t3).await;
    let start = DateTime::parse_from_rfc3339(shown["start_time"].as_str().unwrap()).unwrap();
    assert!(start <= t0, "the window starts with the base backup: {shown}");
    assert_eq!(shown["gaps"], json!([]));
    assert_eq!(shown["timeline"], 1);
    assert!(shown["last_archived_at"].is_string(), "{shown}");

    // Refused, with the window named, and nothing queued.
    let long_before = iso(start.with_timezone(&Utc) - chrono::Duration::hours(1));
    for (target, error, says) in [
        ("yesterday", "InvalidTargetTime", "not an ISO 8601 time"),
        ("2026-13-01T00:00:00Z", "InvalidTargetTime", "the window is"),
        (long_before.as_str(), "TargetTimeOutOfRange", "outside the recovery window: the window is"),
        ("2999-01-01T00:00:00Z", "TargetTimeOutOfRange", "outside the recovery window"),
    ] {
        let (status, body) = restore_to(&app, &id, target).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{target}: {body}");
        assert_eq!(body["error"], error, "{target}: {body}");
        assert!(body["description"].as_str().unwrap().contains(says), "{target}: {body}");
    }
    let (status, body) = app
        .api_as(&app.token, Method::POST, &format!("/v1/instances/{id}/pitr/restore"), Some("{\"target\": 1}"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(app.state().store.restores(instance.id).await.unwrap().is_empty(), "nothing was queued");
    assert_eq!(rows(&mut conn).await, [1, 2, 3], "nothing was touched");

    // Back to between the second and third commit.
    let first = restored_to(&app, &id, t2).await;
    assert_eq!(first["target_time"], iso(t2));
    assert_eq!(first["backup_id"], backup);
    let mut conn = pg(&credentials).await;
    assert_eq!(rows(&mut conn).await, [1, 2]);

    // The instance goes on, on a new timeline, and keeps archiving.
    insert(&mut conn, 4).await;
    let t4 = mark().await;
    insert(&mut conn, 5).await;
    let t5 = mark().await;
    let shown = window_reaching(&app, &id, t5).await;
    assert_eq!(shown["timeline"], 2, "{shown}");
    let gaps = shown["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "what the first restore undid is a gap: {shown}");
    assert!(gaps[0]["reason"].as_str().unwrap().contains("restore 1 went back"), "{shown}");

    // Inside what the first restore undid: refused.
    let (status, body) = restore_to(&app, &id, &iso(t3)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["description"].as_str().unwrap().contains("falls in a gap"), "{body}");

    // After the first restore, on its timeline.
    restored_to(&app, &id, t4).await;
    let mut conn = pg(&credentials).await;
    assert_eq!(rows(&mut conn).await, [1, 2, 4]);

    // Before the first restore's target: the history before it is kept.
    restored_to(&app, &id, t1).await;
    let mut conn = pg(&credentials).await;
    assert_eq!(rows(&mut conn).await, [1]);
    insert(&mut conn, 6).await;
    assert_eq!(rows(&mut conn).await, [1, 6]);
    assert_eq!(rows(&mut pg(&late).await).await, [1, 6], "a user bound after the target keeps its access");
    assert!(pg_connect(&gone_credentials).await.is_err(), "a user unbound after the target stays locked out");

    let restores = app.state().store.restores(instance.id).await.unwrap();
    let timelines: Vec<_> = restores.iter().rev().map(|r| r.timeline).collect();
    assert_eq!(timelines, [Some(2), Some(3), Some(4)]);
    app.deprovision(&id, PG_SERVICE, PG_PLAN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_archiving_instances_have_a_window() {
    let app = TestApp::start().await;
    let id = app.provision(PG_SERVICE, PG_PLAN, "org-a").await;
    let (status, body) = window(&app, &id).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["description"].as_str().unwrap().contains("does not archive"), "{body}");
    let (status, body) = restore_to(&app, &id, "2026-11-30T10:00:00Z").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    app.deprovision(&id, PG_SERVICE, PG_PLAN).await;
}

/// What the overview says of the instance's archiving.
async fn archiving_status(app: &TestApp, id: &str) -> Value {
    let (status, body) = app.api(Method::GET, &format!("/v1/instances/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["continuous_archiving"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn while_the_store_is_unreachable_postgresql_keeps_its_log_and_archiving_catches_up() {
    let app = start().await;
    let id = app.provision_with(PG_SERVICE, PG_PLAN, "org-a", json!({"continuous_archiving": true})).await;
    let credentials = app.bind(&id, PG_SERVICE, PG_PLAN).await;
    let mut conn = pg(&credentials).await;
    sqlx::query("CREATE TABLE events (id int PRIMARY KEY)").execute(&mut conn).await.unwrap();
    let backup = app.create_backup(&id).await;
    app.wait_done(&format!("/v1/instances/{id}/backups/{backup}")).await;
    insert(&mut conn, 1).await;
    let t1 = mark().await;
    window_reaching(&app, &id, t1).await;
    assert_eq!(archiving_status(&app, &id).await["behind"], false);

    // The store's folder for the timeline becomes a file: every upload into it
    // fails, as against a store that is down.
    let instance = app.state().store.instance_by_guid(&id).await.unwrap();
    let timeline = app.data.join("backups").join(&instance.backup_guid).join("wal").join("00000001");
    let aside = timeline.with_extension("aside");
    std::fs::rename(&timeline, &aside).unwrap();
    std::fs::write(&timeline, b"the store is down").unwrap();

    insert(&mut conn, 2).await;
    let t2 = mark().await;
    insert(&mut conn, 3).await;
    let status = app
        .wait_for("the overview to say archiving is behind", Duration::from_secs(60), || async {
            let status = archiving_status(&app, &id).await;
            (status["behind"] == true).then_some(status)
        })
        .await;
    assert!(status["error"].as_str().is_some_and(|e| !e.is_empty()), "{status}");
    let url = format!("{}/metrics", app.base);
    let metrics = app.client.get(&url).bearer_auth(SCRAPE_TOKEN).send().await.unwrap().text().await.unwrap();
    let behind = format!("svcdash_wal_archiving_behind{{instance=\"{id}\"}} 1");
    assert!(metrics.contains(&behind), "Prometheus says it too: {metrics}");
    assert!(metrics.contains("svcdash_wal_handovers_total{outcome=\"failed\"}"), "{metrics}");
    let mut admin = pg_admin(&app.node(&id).await, "postgres").await;
    let failed: i64 =
        sqlx::query_scalar("SELECT failed_count FROM pg_stat_archiver").fetch_one(&mut admin).await.unwrap();
    assert!(failed > 0, "PostgreSQL saw the hand-overs fail and keeps its files");

    // The store is back: archiving catches up and nothing is missing.
    std::fs::remove_file(&timeline).unwrap();
    std::fs::rename(&aside, &timeline).unwrap();
    let t3 = mark().await;
    let shown = window_reaching(&app, &id, t3).await;
    assert_eq!(shown["gaps"], json!([]), "{shown}");
    app.wait_for("archiving to be on time again", Duration::from_secs(60), || async {
        (archiving_status(&app, &id).await["behind"] == false).then_some(())
    })
    .await;
    restored_to(&app, &id, t2).await;
    assert_eq!(rows(&mut pg(&credentials).await).await, [1, 2], "the commits made during the outage were kept");
    app.deprovision(&id, PG_SERVICE, PG_PLAN).await;
}

/// Closes the current write-ahead log file and waits until it is archived.
async fn archive_now(app: &TestApp, id: &str) -> String {
    let mut admin = pg_admin(&app.node(id).await, "postgres").await;
    let name: String =
        sqlx::query_scalar("SELECT pg_walfile_name(pg_switch_wal())").fetch_one(&mut admin).await.unwrap();
    let instance = app.state().store.instance_by_guid(id).await.unwrap();
    let store = app.state().store.clone();
    app.wait_for(&format!("{name} archived"), Duration::from_secs(60), || {
        let (store, name) = (store.clone(), name.clone());
        async move { store.wal_segment(instance.id, &name).await.unwrap() }
    })
    .await;
    name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_window_follows_what_the_store_holds_and_what_retention_keeps() {
    let app = start_closing_every(3600).await;
    let id = app.provision_with(PG_SERVICE, PG_PLAN, "org-a", json!({"continuous_archiving": true})).await;
    let credentials = app.bind(&id, PG_SERVICE, PG_PLAN).await;
    let mut conn = pg(&credentials).await;
    sqlx::query("CREATE TABLE events (id int PRIMARY KEY)").execute(&mut conn).await.unwrap();
    let first = app.create_backup(&id).await;
    app.wait_done(&format!("/v1/instances/{id}/backups/{first}")).await;
    // Commit 1 and the moment after it are in a file archived before the one lost:
    // replay to that moment finds no later commit before the hole, and ends there.
    insert(&mut conn, 1).await;
    let t1 = mark().await;
    archive_now(&app, &id).await;
    insert(&mut conn, 2).await;
    let lost = archive_now(&app, &id).await;
    let t2 = mark().await;
    let second = app.create_backup(&id).await;
    app.wait_done(&format!("/v1/instances/{id}/backups/{second}")).await;
    insert(&mut conn, 3).await;
    let t3 = mark().await;
    archive_now(&app, &id).await;
    let whole = window_reaching(&app, &id, t3).await;
    assert_eq!(whole["gaps"], json!([]), "{whole}");

    // The file holding the second commit goes missing from the store: the next
    // check makes it a gap, and targets in it are refused.
    let instance = app.state().store.instance_by_guid(&id).await.unwrap();
    let segment = app.state().store.wal_segment(instance.id, &lost).await.unwrap().unwrap();
    std::fs::remove_file(app.data.join("backups").join(&segment.object_key)).unwrap();
    server::retention::apply(app.state(), Utc::now()).await.unwrap();
    let (status, shown) = window(&app, &id).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["start_time"], whole["start_time"]);
    let gaps = shown["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{shown}");
    assert!(gaps[0]["reason"].as_str().unwrap().contains(&lost), "the gap names the missing file: {shown}");
    let (status, body) = restore_to(&app, &id, &iso(t2)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["description"].as_str().unwrap().contains("falls in a gap"), "{body}");

    // Before the gap, restores still work (replay ends with the archive's run, which
    // holds every commit up to the target).
    let restore = restored_to(&app, &id, t1).await;
    assert_eq!(rows(&mut pg(&credentials).await).await, [1]);

    // The new timeline gets a base backup of its own at once: those taken after the
    // target lie on the abandoned history.
    let third = second + 1;
    let done = app.wait_done(&format!("/v1/instances/{id}/backups/{third}")).await;
    assert!(done["triggered_at"].as_str() >= restore["triggered_at"].as_str(), "{done} {restore}");
    let mut conn = pg(&credentials).await;
    insert(&mut conn, 4).await;
    let t4 = mark().await;
    archive_now(&app, &id).await;
    window_reaching(&app, &id, t4).await;

    // Retention removes the first two backups with their base backups and the log
    // only they needed: the window then starts with the third, without a hole.
    let removed_bases = [
        app.state().store.base_backup(backup_row(&app, &id, first).await).await.unwrap().unwrap(),
        app.state().store.base_backup(backup_row(&app, &id, second).await).await.unwrap().unwrap(),
    ];
    let settings = json!({"min_backup_count": 1, "retention_time": 1}).to_string();
    let (status, _) =
        app.api_as(&app.token, Method::PATCH, &format!("/v1/instances/{id}/backups-config"), Some(&settings)).await;
    assert_eq!(status, StatusCode::OK);
    let pass = server::retention::apply(app.state(), Utc::now() + chrono::Duration::days(2)).await.unwrap();
    assert_eq!(pass.removed, [(id.clone(), second), (id.clone(), first)]);
    for base in &removed_bases {
        assert!(!app.data.join("backups").join(&base.object_key).exists(), "{} is gone", base.object_key);
    }
    let kept = app.state().store.wal_segments(instance.id).await.unwrap();
    let base_three = &app.state().store.base_backups(instance.id).await.unwrap()[0];
    assert_eq!(base_three.timeline, 2);
    let number = |name: &str| name[8..24].to_owned();
    assert!(
        kept.iter().filter(|s| s.name.len() >= 24).all(|s| number(&s.name) >= number(&base_three.start_wal)),
        "{kept:?}"
    );
    for segment in &kept {
        assert!(app.data.join("backups").join(&segment.object_key).exists(), "{} is kept", segment.name);
    }
    let (status, shown) = window(&app, &id).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    let start = DateTime::parse_from_rfc3339(shown["start_time"].as_str().unwrap()).unwrap();
    assert!(start > DateTime::parse_from_rfc3339(restore["finished_at"].as_str().unwrap()).unwrap(), "{shown}");
    assert_eq!(shown["gaps"], json!([]), "{shown}");
    let (status, body) = restore_to(&app, &id, &iso(t1)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    restored_to(&app, &id, t4).await;
    assert_eq!(rows(&mut pg(&credentials).await).await, [1, 4]);
    app.deprovision(&id, PG_SERVICE, PG_PLAN).await;
}

async fn backup_row(app: &TestApp, id: &str, seq: i64) -> i64 {
    let instance = app.state().store.instance_by_guid(id).await.unwrap();
    app.state().store.backup_by_seq(instance.id, seq).await.unwrap().id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_person_restores_to_a_moment_in_the_browser() {
    let app = start().await;
    let id = app.provision_with(PG_SERVICE, PG_PLAN, "org-a", json!({"continuous_archiving": true})).await;
    let credentials = app.bind(&id, PG_SERVICE, PG_PLAN).await;
    let mut conn = pg(&credentials).await;
    sqlx::query("CREATE TABLE events (id int PRIMARY KEY)").execute(&mut conn).await.unwrap();
    let backup = app.create_backup(&id).await;
    app.wait_done(&format!("/v1/instances/{id}/backups/{backup}")).await;
    insert(&mut conn, 1).await;
    let target = mark().await;
    insert(&mut conn, 2).await;
    let t2 = mark().await;
    window_reaching(&app, &id, t2).await;

    browser_sign_in(&app).await;
    let field = target.format("%Y-%m-%dT%H:%M:%S%.3f").to_string();
    let mut script = browser_script("pitr.mjs", &app.base, &id);
    script.env("TARGET", &field);
    let findings = browser_findings(script).await.unwrap_or_else(|e| panic!("the browser test failed:\n{e}"));

    assert!(
        findings["window"].as_str().unwrap().starts_with("This instance can be restored to any moment from"),
        "{findings}"
    );
    assert!(findings["bar"].as_str().unwrap().starts_with("Recovery window from"), "{findings}");
    assert_eq!(findings["barParts"], 1, "one reachable stretch, no gaps: {findings}");
    assert!(
        findings["min"].as_str().unwrap() <= field.as_str() && field.as_str() <= findings["max"].as_str().unwrap(),
        "{findings}"
    );
    assert_eq!(findings["tooEarlyValid"], false, "the field is bounded to the window");
    assert_eq!(findings["targetValid"], true);
    let command = findings["newInstanceCommand"].as_str().unwrap();
    let restore_from = format!(r#"{{"restore_from": {{"instance_id": "{id}", "target_time": "{}"}}}}"#, iso(target));
    assert!(command.starts_with("cf create-service ") && command.contains(&restore_from), "{command}");
    let shown = field.replace('T', " ");
    assert!(findings["dialog"].as_str().unwrap().contains(&format!("after {shown} UTC is lost")), "{findings}");
    assert_eq!(findings["restoresAfterNo"], 0, "No restores nothing: {findings}");
    let row: Vec<&str> = findings["restoreRow"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(row[1].contains(&format!("to {shown} UTC")), "the history names the moment: {findings}");
    assert_eq!(findings["pageErrors"], json!([]), "no script errors or blocked content");

    assert_eq!(rows(&mut pg(&credentials).await).await, [1], "the browser's restore brought back that moment");
    for name in ["pitr-panel", "pitr-dialog", "pitr-restored"] {
        assert!(
            std::fs::read(screenshots().join(format!("{name}.png"))).unwrap().starts_with(b"\x89PNG"),
            "{name}.png"
        );
    }
    app.deprovision(&id, PG_SERVICE, PG_PLAN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_instance_made_at_a_moment_of_another_leaves_that_one_untouched() {
    let app = start().await;
    let origin = app.provision_with(PG_SERVICE, PG_PLAN, "org-a", json!({"continuous_archiving": true})).await;
    let origin_credentials = app.bind(&origin, PG_SERVICE, PG_PLAN).await;
    let mut conn = pg(&origin_credentials).await;
    sqlx::query("CREATE TABLE events (id int PRIMARY KEY)").execute(&mut conn).await.unwrap();
    let backup = app.create_backup(&origin).await;
    app.wait_done(&format!("/v1/instances/{origin}/backups/{backup}")).await;
    insert(&mut conn, 1).await;
    let t1 = mark().await;
    insert(&mut conn, 2).await;
    let t2 = mark().await;
    window_reaching(&app, &origin, t2).await;

    // Refused before anything is made: another organization's instance, a moment
    // outside the window, a malformed parameter.
    for (org, parameter, says) in [
        ("org-b", json!({"instance_id": origin, "target_time": iso(t1)}), "there is no instance"),
        ("org-a", json!({"instance_id": origin, "target_time": "2000-01-01T00:00:00Z"}), "outside the recovery window"),
        ("org-a", json!({"instance_id": origin}), "parameter restore_from must be"),
    ] {
        let id = server::instances::new_guid();
        let (status, body) = app
            .broker(
                Method::PUT,
                &format!("/v2/service_instances/{id}?accepts_incomplete=true"),
                Some(json!({"service_id": PG_SERVICE, "plan_id": PG_PLAN, "organization_guid": org,
                            "space_guid": "space-1", "parameters": {"restore_from": parameter}})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["description"].as_str().unwrap().contains(says), "{body}");
        assert!(app.state().store.instance_by_guid(&id).await.is_err(), "nothing was recorded");
    }

    let copy = app
        .provision_with(
            PG_SERVICE,
            PG_PLAN,
            "org-a",
            json!({"continuous_archiving": true, "restore_from": {"instance_id": origin, "target_time": iso(t1)}}),
        )
        .await;
    let copy_credentials = app.bind(&copy, PG_SERVICE, PG_PLAN).await;
    assert_eq!(rows(&mut pg(&copy_credentials).await).await, [1], "the new instance holds that moment");
    assert_eq!(rows(&mut pg(&origin_credentials).await).await, [1, 2], "the origin is untouched");
    // The origin's applications have no access to the copy.
    let mut foreign = origin_credentials.clone();
    foreign["uri"] = json!(
        origin_credentials["uri"]
            .as_str()
            .unwrap()
            .replace(&format!(":{}/", origin_credentials["port"]), &format!(":{}/", copy_credentials["port"]))
    );
    assert!(pg_connect(&foreign).await.is_err(), "{foreign}");

    // The copy archives on a timeline of its own, from a base backup of its own.
    let mut copy_conn = pg(&copy_credentials).await;
    app.wait_done(&format!("/v1/instances/{copy}/backups/1")).await;
    insert(&mut copy_conn, 10).await;
    let t3 = mark().await;
    let shown = window_reaching(&app, &copy, t3).await;
    assert_eq!(shown["timeline"], 2, "{shown}");
    restored_to(&app, &copy, t3).await;
    assert_eq!(rows(&mut pg(&copy_credentials).await).await, [1, 10]);
    assert_eq!(rows(&mut pg(&origin_credentials).await).await, [1, 2]);
    app.deprovision(&copy, PG_SERVICE, PG_PLAN).await;
    app.deprovision(&origin, PG_SERVICE, PG_PLAN).await;
}

/// Runs a program as the `postgres` account (PostgreSQL refuses root), or as this
/// user when the tests do not run as root.
fn as_postgres(program: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = if nix::unistd::Uid::effective().is_root() {
        let mut cmd = std::process::Command::new("runuser");
        cmd.args(["-u", "postgres", "--", program]);
        cmd
    } else {
        std::process::Command::new(program)
    };
    cmd.args(args).output().unwrap()
}

/// What README's "Recovering by hand" says, step by step, with nothing but the
/// archive key, the objects, and Debian's age, zstd, tar and PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_archive_restores_by_hand_with_standard_tools() {
    let app = start().await;
    let id = app.provision_with(PG_SERVICE, PG_PLAN, "org-a", json!({"continuous_archiving": true})).await;
    let credentials = app.bind(&id, PG_SERVICE, PG_PLAN).await;
    let mut conn = pg(&credentials).await;
    sqlx::query("CREATE TABLE events (id int PRIMARY KEY)").execute(&mut conn).await.unwrap();
    let backup = app.create_backup(&id).await;
    app.wait_done(&format!("/v1/instances/{id}/backups/{backup}")).await;
    insert(&mut conn, 1).await;
    let t1 = mark().await;
    insert(&mut conn, 2).await;
    let t2 = mark().await;
    window_reaching(&app, &id, t2).await;
    let instance = app.state().store.instance_by_guid(&id).await.unwrap();

    // The operator kept the archive key; the instance's objects were copied out of
    // the store (here: the local store's folder, as `aws s3 cp --recursive` would).
    let work = tempfile::Builder::new().prefix("svcdash-by-hand-").tempdir().unwrap();
    let dir = work.path();
    let key = dir.join("archive.key");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_svcdash"))
        .args(["instances", "archive-key", &instance.name, "--out"])
        .arg(&key)
        .env("SVCDASH_DATA", &app.data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let objects = dir.join("objects");
    let copied = std::process::Command::new("cp")
        .arg("-r")
        .arg(app.data.join("backups").join(&instance.backup_guid))
        .arg(&objects)
        .status()
        .unwrap();
    assert!(copied.success());

    let shell = |script: &str| {
        let out = std::process::Command::new("sh").arg("-ec").arg(script).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    };
    // 1. The newest base backup before the moment, unpacked.
    shell("mkdir -m 700 restored && age -d -i archive.key objects/base/1.tar.zst.age | zstd -d | tar -x -C restored");
    // 2. Every archived file, decrypted into one folder.
    shell(
        "mkdir wal && for f in objects/wal/*/*.zst.age; do n=$(basename \"$f\" .zst.age); \
         age -d -i archive.key \"$f\" | zstd -d > \"wal/$n\"; done",
    );
    // 3. Recovery settings, local connections without password, and the account.
    let target = t1.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string();
    shell(&format!(
        "touch restored/recovery.signal && echo 'local all all trust' > restored/pg_hba.conf && \
         cat >> restored/postgresql.auto.conf <<EOF\nrestore_command = 'cp {wal}/%f %p'\n\
         recovery_target_time = '{target}'\nrecovery_target_action = 'promote'\nEOF\n\
         mkdir run && chmod -R go+rX . && chmod 700 restored && {chown}",
        wal = dir.join("wal").display(),
        chown =
            if nix::unistd::Uid::effective().is_root() { "chown -R postgres:postgres restored run" } else { "true" },
    ));
    // 4. Start it and wait until it promoted.
    let bin = std::path::Path::new("/usr/lib/postgresql")
        .read_dir()
        .unwrap()
        .flatten()
        .map(|e| e.path().join("bin"))
        .max()
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let data = dir.join("restored");
    let (run, log) = (dir.join("run"), dir.join("run/restored.log"));
    let started = as_postgres(
        bin.join("pg_ctl").to_str().unwrap(),
        &[
            "-D",
            data.to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-w",
            "-o",
            &format!("-c port={port} -c listen_addresses= -c unix_socket_directories={}", run.display()),
            "start",
        ],
    );
    assert!(
        started.status.success(),
        "{} {}",
        String::from_utf8_lossy(&started.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let psql = |sql: &str| {
        let out = as_postgres(
            bin.join("psql").to_str().unwrap(),
            &["-h", run.to_str().unwrap(), "-p", &port, "-U", "svcdash_admin", "-d", "app", "-Atc", sql],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let promoted = app
        .wait_for("the restored server to promote", Duration::from_secs(60), || {
            let answer = psql("SELECT pg_is_in_recovery()");
            async move { (answer == "f").then_some(()) }
        })
        .await;
    assert_eq!(promoted, ());
    let rows = psql("SELECT id FROM events ORDER BY id");
    as_postgres(bin.join("pg_ctl").to_str().unwrap(), &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"]);
    assert_eq!(
        rows,
        "1",
        "exactly what was committed before the moment: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    app.deprovision(&id, PG_SERVICE, PG_PLAN).await;
}

/// A base backup waits until its log is archived: svcdash stopping while one runs
/// keeps archiving until the job has finished, instead of waiting for it forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn svcdash_stops_while_a_base_backup_runs() {
    let mut app = start().await;
    let id = app.provision_with(PG_SERVICE, PG_PLAN, "org-a", json!({"continuous_archiving": true})).await;
    let backup = app.create_backup(&id).await;
    let path = format!("/v1/instances/{id}/backups/{backup}");
    app.wait_for("the backup to run", Duration::from_secs(60), || async {
        let (_, body) = app.api(Method::GET, &path).await;
        (body["status"] != "queued").then_some(())
    })
    .await;
    let stopped = tokio::time::timeout(Duration::from_secs(120), app.stop()).await;
    assert!(stopped.is_ok(), "svcdash did not stop while a base backup ran");
}

/// A base backup waits until the log it needs is archived. While the store refuses
/// the log, it fails after the idle limit, saying why, instead of holding the
/// instance's job queue forever; once the store is back, backups work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_base_backup_waiting_for_stuck_archiving_fails_instead_of_waiting_forever() {
    let dir = data_dir();
    let data = dir.path().join("data");
    let mut config = config(&data);
    config.backups.wal_archive_timeout_secs = 2;
    config.backups.base_backup_idle_timeout_secs = 5;
    let mut app = TestApp::start_in(&data, config).await;
    app.keep_dir(dir);
    let id = app.provision_with(PG_SERVICE, PG_PLAN, "org-a", json!({"continuous_archiving": true})).await;
    let first = app.create_backup(&id).await;
    app.wait_done(&format!("/v1/instances/{id}/backups/{first}")).await;
    archive_now(&app, &id).await;

    // Every upload into the timeline's folder fails, as against a store that is down
    // for the log only.
    let instance = app.state().store.instance_by_guid(&id).await.unwrap();
    let timeline = app.data.join("backups").join(&instance.backup_guid).join("wal").join("00000001");
    let aside = timeline.with_extension("aside");
    std::fs::rename(&timeline, &aside).unwrap();
    std::fs::write(&timeline, b"the store is down").unwrap();

    let stuck = app.create_backup(&id).await;
    let started = std::time::Instant::now();
    let finished = app.wait_finished(&format!("/v1/instances/{id}/backups/{stuck}")).await;
    assert_eq!(finished["status"], "failed", "{finished}");
    assert!(started.elapsed() < Duration::from_secs(90), "it took {:?}", started.elapsed());
    let stored = app.state().store.backup_by_seq(instance.id, stuck).await.unwrap();
    let error = stored.job.error.unwrap_or_default();
    assert!(error.contains("pg_basebackup sent nothing for 5 s"), "{error}");
    assert!(error.contains("archiving is behind"), "{error}");

    std::fs::remove_file(&timeline).unwrap();
    std::fs::rename(&aside, &timeline).unwrap();
    let again = app.create_backup(&id).await;
    app.wait_done(&format!("/v1/instances/{id}/backups/{again}")).await;
    app.deprovision(&id, PG_SERVICE, PG_PLAN).await;
}
