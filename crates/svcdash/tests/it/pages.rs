//! The pages as HTML for the roles: readers see metrics and updates but no
//! buttons that change anything (and the API refuses them), managers get the
//! buttons; the Metrics page shows one tab per node; a reloaded Backups page is
//! current and each caller's own.

use reqwest::header::ACCEPT;
use reqwest::{Method, StatusCode};
use sqlx::Connection;

use crate::helpers::*;

pub(crate) async fn page(app: &TestApp, token: &str, path: &str) -> String {
    let res = app
        .client
        .get(format!("{}{path}", app.base))
        .header("Authorization", token)
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    res.text().await.unwrap()
}

/// A bearer token of a new user who may read `tenant`'s instances.
pub async fn reader_token(app: &TestApp, name: &str, tenant: &str) -> String {
    let store = &app.state().store;
    let user = store.create_user(name).await.unwrap();
    store.grant(user.id, tenant, None, store::Role::Read).await.unwrap();
    let token = server::auth::new_token();
    store.create_token(user.id, &server::auth::hash_token(&token), None).await.unwrap();
    format!("bearer {token}")
}

#[tokio::test]
async fn readers_get_no_lifecycle_buttons_and_managers_do() {
    let dir = data_dir();
    let mut old = config(dir.path());
    old.catalog = Some(catalog_with_version(dir.path(), "redis", "6.9.0"));
    let mut app = TestApp::start_in(dir.path(), old).await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    app.stop().await;
    let app = TestApp::start_in(dir.path(), config(dir.path())).await;
    let rita = reader_token(&app, "rita", "org-a").await;

    for path in [format!("/service-instances/{id}"), format!("/service-instances/{id}/metrics")] {
        let reader = page(&app, &rita, &path).await;
        assert!(!reader.contains(r#"data-action="lifecycle""#), "{path}: {reader}");
        let manager = page(&app, &app.token, &path).await;
        assert!(manager.contains(r#"data-action="lifecycle""#), "{path}");
        assert!(manager.contains("Restart the instance?") && manager.contains("Recreate the instance?"));
    }
    let reader = page(&app, &rita, &format!("/service-instances/{id}/updates")).await;
    assert!(reader.contains("6.9.0") && reader.contains("<td>7</td>"), "the update is listed: {reader}");
    assert!(!reader.contains(r#"data-action="update""#) && reader.contains("Only managers"), "{reader}");
    let manager = page(&app, &app.token, &format!("/service-instances/{id}/updates")).await;
    assert!(manager.contains(r#"data-action="update""#));

    for (path, body) in [
        (format!("/v1/instances/{id}/restart"), None),
        (format!("/v1/instances/{id}/recreate"), None),
        (format!("/v1/instances/{id}/updates"), Some(format!(r#"{{"service_id":"{REDIS_SERVICE}"}}"#))),
    ] {
        let (status, answer) = app.api_as(&rita, Method::PATCH, &path, body.as_deref()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {answer}");
        assert!(answer["description"].as_str().unwrap().contains("may only read"), "{answer}");
    }
    // Readers may read the metrics.
    assert_eq!(app.api_as(&rita, Method::GET, &format!("/v1/instances/{id}/metrics"), None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_metrics_page_has_a_tab_per_node() {
    // Plans run one node so far, so a second node's figures are recorded by the
    // test rather than collected from a cluster; the collector's next round after
    // its first (which would forget a node that does not exist) is an hour away.
    let dir = data_dir();
    let mut paused = config(dir.path());
    paused.metrics.interval_secs = 3600;
    let app = TestApp::start_in(dir.path(), paused).await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;

    let history = &app.state().metrics.history;
    for (node, used_mib) in [(0, 100), (1, 300)] {
        let key = server::metrics::history::NodeKey { instance: id.clone(), node };
        let points = vec![
            ("system.memory.total".to_owned(), 1024 << 20),
            ("system.memory.used".to_owned(), used_mib << 20),
            ("system.memory.free".to_owned(), (1024 - used_mib) << 20),
        ];
        history.record(key, format!("ns.{node}"), 1_700_000_000, points);
    }
    let first = page(&app, &app.token, &format!("/service-instances/{id}/metrics")).await;
    assert!(first.contains(r#"href="?node=0" aria-current="page">Node 0"#), "{first}");
    assert!(first.contains(r#"href="?node=1" >Node 1"#), "{first}");
    assert!(first.contains("100 MiB / 1024 MiB"), "{first}");
    let second = page(&app, &app.token, &format!("/service-instances/{id}/metrics?node=1")).await;
    assert!(second.contains("<h2>Node 1</h2>") && second.contains("300 MiB / 1024 MiB"), "{second}");
    // An unknown node shows the first.
    let unknown = page(&app, &app.token, &format!("/service-instances/{id}/metrics?node=9")).await;
    assert!(unknown.contains("<h2>Node 0</h2>"), "{unknown}");
}

/// A Backups page reloaded while nothing on it changed is served from its last
/// rendering (see `server::listing_cache`), yet shows every change at the next
/// reload — svcdash's own and another process's writes to the state store — and
/// each caller gets their own frame and the buttons of their own role.
#[tokio::test]
async fn a_reloaded_backups_page_shows_every_change_and_each_callers_own_frame() {
    let app = TestApp::start().await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let path = format!("/service-instances/{id}/backups");
    let rita = reader_token(&app, "rita", "org-a").await;
    let manage = r#"data-action="backup""#;

    let first = page(&app, &app.token, &path).await;
    assert!(first.contains("No backups yet.") && first.contains(manage), "{first}");
    assert_eq!(page(&app, &app.token, &path).await, first, "reloaded, unchanged");
    let reader = page(&app, &rita, &path).await;
    assert!(reader.contains("No backups yet.") && !reader.contains(manage), "a reader gets no backup button");
    assert!(reader.contains(r#"title="Signed in">rita<"#), "the reader's own frame");
    assert!(!reader.contains(r#"title="Signed in">alice<"#));
    assert!(page(&app, &app.token, &path).await.contains(manage), "the manager's buttons again");
    let kept = app.state().backup_pages.get(&id).expect("the page is kept");
    assert!(
        kept.for_managers.is_some() && kept.for_readers.is_some(),
        "each role's rendering is kept beside the other's"
    );

    let seq = app.create_backup(&id).await;
    app.wait_done(&format!("/v1/instances/{id}/backups/{seq}")).await;
    let backed_up = page(&app, &app.token, &path).await;
    assert!(backed_up.contains(&format!(r#"<tr data-backup="{seq}">"#)), "{backed_up}");
    assert_eq!(page(&app, &app.token, &path).await, backed_up, "reloaded, unchanged");

    let settings = serde_json::json!({"min_backup_count": 7, "retention_time": 9}).to_string();
    let (status, body) =
        app.api_as(&app.token, Method::PATCH, &format!("/v1/instances/{id}/backups-config"), Some(&settings)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let set = page(&app, &app.token, &path).await;
    assert!(set.contains(r#"name="min_backup_count" type="number" min="0" step="1" required value="7""#), "{set}");
    assert!(set.contains(r#"name="retention_time" type="number" min="0" step="1" required value="9""#));

    let restore = app.restore(&id, seq).await;
    app.wait_done(&format!("/v1/instances/{id}/restores/{restore}")).await;
    let restored = page(&app, &app.token, &path).await;
    assert!(restored.contains(&format!(r#"<tr data-restore="{restore}">"#)), "{restored}");

    // Another process (another replica) renames the instance and changes its
    // settings: the next reload shows both.
    let url = format!("sqlite://{}", app.state().config.database_path().display());
    let mut other_process = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("UPDATE instances SET name = 'renamed-elsewhere' WHERE guid = ?")
        .bind(&id)
        .execute(&mut other_process)
        .await
        .unwrap();
    let renamed = page(&app, &app.token, &path).await;
    assert!(renamed.contains("<h1>renamed-elsewhere ") && renamed.contains("<title>Backups · renamed-elsewhere"));
    sqlx::query(
        "UPDATE backup_settings SET retention_time_days = 11 \
         WHERE instance_id = (SELECT id FROM instances WHERE guid = ?)",
    )
    .bind(&id)
    .execute(&mut other_process)
    .await
    .unwrap();
    other_process.close().await.unwrap();
    let changed = page(&app, &app.token, &path).await;
    assert!(changed.contains(r#"name="retention_time" type="number" min="0" step="1" required value="11""#));

    let mallory = user_token(app.state(), "mallory", "org-b").await;
    let res = app
        .client
        .get(format!("{}{path}", app.base))
        .header("Authorization", &mallory)
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "the kept page is served after the check only");
}
