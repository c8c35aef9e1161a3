//! Restarting an instance: every process stops and starts again, the data stays,
//! the state goes `deploying` → `available`; one operation at a time.

use reqwest::{Method, StatusCode};

use crate::helpers::*;

async fn state_of(app: &TestApp, id: &str) -> String {
    instance_overview(app, id).await["state"].as_str().unwrap().to_owned()
}

async fn wait_available(app: &TestApp, id: &str) {
    wait_instance_state(app, id, "available").await;
}

#[tokio::test]
async fn a_restart_keeps_the_data_and_starts_new_processes() {
    let dir = data_dir();
    let mut app = TestApp::start_in(dir.path(), config(dir.path())).await;
    let id = app.provision(PG_SERVICE, PG_PLAN, "org-a").await;
    let creds = app.bind(&id, PG_SERVICE, PG_PLAN).await;
    let mut conn = pg(&creds).await;
    sqlx::raw_sql("CREATE TABLE kept (x int); INSERT INTO kept SELECT generate_series(1, 42);")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let spec = app.node(&id).await;
    let pid_before = engine_pid(app.state(), &spec).await.expect("the engine runs");

    let path = format!("/v1/instances/{id}/restart");
    let (status, body) = app.api_as(&app.token, Method::PATCH, &path, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    wait_available(&app, &id).await;
    let pid_after = engine_pid(app.state(), &spec).await.expect("the engine runs again");
    assert_ne!(pid_before, pid_after, "a new process");
    let count: i64 = pg_value_eventually(&creds, "SELECT count(*) FROM kept").await;
    assert_eq!(count, 42);
    // Readers may not restart; unknown instances are 404.
    let other = user_token(app.state(), "mallory", "org-b").await;
    assert_eq!(app.api_as(&other, Method::PATCH, &path, None).await.0, StatusCode::FORBIDDEN);
    let (status, _) = app.api_as(&app.token, Method::PATCH, "/v1/instances/no-such-instance/restart", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // One operation at a time: with no job workers, a restart stays queued, and a
    // second one is refused.
    app.stop().await;
    let mut paused = config(dir.path());
    paused.jobs.workers = 0;
    let mut app = TestApp::start_in(dir.path(), paused).await;
    assert_eq!(app.api_as(&app.token, Method::PATCH, &path, None).await.0, StatusCode::ACCEPTED);
    let (status, body) = app.api_as(&app.token, Method::PATCH, &path, None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::CONFLICT, Some("OperationInProgress")), "{body}");
    assert!(body["description"].as_str().unwrap().contains("restart is queued"), "{body}");
    // The queued restart survives svcdash stopping, and runs when workers are back.
    app.stop().await;
    let app = TestApp::start_in(dir.path(), config(dir.path())).await;
    let instance = app.state().store.instance_by_guid(&id).await.unwrap();
    app.wait_for("the queued restart to run", std::time::Duration::from_secs(60), || async {
        let idle = app.state().store.pending_job(instance.id).await.unwrap().is_none();
        (idle && state_of(&app, &id).await == "available").then_some(())
    })
    .await;
    let counts = app.state().store.job_counts().await.unwrap();
    assert!(counts.contains(&("restart".to_owned(), "done".to_owned(), 2)), "both restarts ran: {counts:?}");
    let (_, log) = app.api(Method::GET, &format!("/v1/instances/{id}/audit")).await;
    let restarts: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "instance.restart")
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(restarts, ["failure", "success", "success"]);
}

#[tokio::test]
async fn a_recreate_rebuilds_system_and_ephemeral_parts_and_keeps_the_data() {
    let dir = data_dir();
    let app = TestApp::start_in(dir.path(), config(dir.path())).await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let creds = app.bind(&id, REDIS_SERVICE, REDIS_PLAN).await;
    let mut conn = redis(&creds).await;
    let _: () = ::redis::cmd("SET").arg("kept").arg("42").query_async(&mut conn).await.unwrap();
    drop(conn);
    let layout = app.layout(&id).await;
    // Something left behind in the parts a recreate rebuilds, and in the one it keeps.
    std::fs::write(layout.ephemeral().join("leftover"), "x").unwrap();
    std::fs::write(layout.system().join("leftover"), "x").unwrap();
    std::fs::write(layout.persistent().join("kept-file"), "x").unwrap();
    let spec = app.node(&id).await;
    let pid_before = engine_pid(app.state(), &spec).await.expect("the engine runs");

    let path = format!("/v1/instances/{id}/recreate");
    let (status, body) = app.api_as(&app.token, Method::PATCH, &path, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    wait_available(&app, &id).await;
    assert!(!layout.ephemeral().join("leftover").exists());
    assert!(!layout.system().join("leftover").exists());
    assert!(layout.system().join("redis.conf").exists(), "configuration written again");
    assert!(layout.persistent().join("kept-file").exists());
    assert_ne!(engine_pid(app.state(), &spec).await.expect("runs again"), pid_before);
    let mut conn = redis(&creds).await;
    let kept: String = ::redis::cmd("GET").arg("kept").query_async(&mut conn).await.unwrap();
    assert_eq!(kept, "42");
    let other = user_token(app.state(), "mallory", "org-b").await;
    assert_eq!(app.api_as(&other, Method::PATCH, &path, None).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_update_moves_the_instance_to_the_catalogs_version_with_its_data() {
    let dir = data_dir();
    let mut old = config(dir.path());
    old.catalog = Some(catalog_with_version(dir.path(), "postgresql", "15.1.0"));
    let mut app = TestApp::start_in(dir.path(), old).await;
    let id = app.provision(PG_SERVICE, PG_PLAN, "org-a").await;
    let creds = app.bind(&id, PG_SERVICE, PG_PLAN).await;
    let mut conn = pg(&creds).await;
    sqlx::raw_sql("CREATE TABLE kept (x int); INSERT INTO kept SELECT generate_series(1, 5);")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let (_, body) = app.api(Method::GET, &format!("/v1/instances/{id}")).await;
    assert_eq!(
        (body["version"].as_str(), body["available_updates"].as_array().map(Vec::len)),
        (Some("15.1.0"), Some(0))
    );
    let path = format!("/v1/instances/{id}/updates");
    let (status, body) =
        app.api_as(&app.token, Method::PATCH, &path, Some(&format!(r#"{{"service_id":"{PG_SERVICE}"}}"#))).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::CONFLICT, Some("NoUpdateAvailable")), "{body}");
    app.stop().await;

    // The operator rolls out a newer release of the service.
    let mut new = config(dir.path());
    new.catalog = Some(catalog_with_version(dir.path(), "postgresql", "15.2.0"));
    let app = TestApp::start_in(dir.path(), new).await;
    let (_, body) = app.api(Method::GET, &format!("/v1/instances/{id}")).await;
    assert_eq!(body["version"], "15.1.0");
    assert_eq!(
        body["available_updates"],
        serde_json::json!([{"name": "postgresql", "type": "release", "version": "15.2.0"}])
    );

    // Bad requests change nothing.
    let cases = [
        (None, StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType"),
        (Some("{}".to_owned()), StatusCode::BAD_REQUEST, "BadRequest"),
        (Some(r#"{"service_id": 7}"#.to_owned()), StatusCode::BAD_REQUEST, "BadRequest"),
        (Some(r#"{"service_id":"no-such-service"}"#.to_owned()), StatusCode::NOT_FOUND, "ServiceNotFound"),
        (Some(format!(r#"{{"service_id":"{REDIS_SERVICE}"}}"#)), StatusCode::BAD_REQUEST, "ServiceMismatch"),
    ];
    for (body, status, error) in cases {
        let (got, answer) = app.api_as(&app.token, Method::PATCH, &path, body.as_deref()).await;
        assert_eq!((got, answer["error"].as_str()), (status, Some(error)), "{body:?}: {answer}");
    }
    let other = user_token(app.state(), "mallory", "org-b").await;
    let update = format!(r#"{{"service_id":"{PG_SERVICE}"}}"#);
    assert_eq!(app.api_as(&other, Method::PATCH, &path, Some(&update)).await.0, StatusCode::FORBIDDEN);

    let (status, body) = app.api_as(&app.token, Method::PATCH, &path, Some(&update)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    wait_available(&app, &id).await;
    let (_, body) = app.api(Method::GET, &format!("/v1/instances/{id}")).await;
    assert_eq!(body["version"], "15.2.0");
    assert_eq!(body["available_updates"], serde_json::json!([]));
    let count: i64 = pg_value_eventually(&creds, "SELECT count(*) FROM kept").await;
    assert_eq!(count, 5);
}

/// OSB `maintenance_info`: the catalog offers the service's release as a semantic
/// version, and a platform's `PATCH` naming it upgrades an instance that runs an
/// older one (`cf update-service --upgrade`), as the Updates page does.
#[tokio::test]
async fn platforms_upgrade_an_instance_through_maintenance_info() {
    let dir = data_dir();
    let mut old = config(dir.path());
    old.catalog = Some(catalog_with_version(dir.path(), "redis", "7.0"));
    let mut app = TestApp::start_in(dir.path(), old).await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let creds = app.bind(&id, REDIS_SERVICE, REDIS_PLAN).await;
    let mut conn = redis(&creds).await;
    redis::cmd("SET").arg("kept").arg("through the upgrade").query_async::<()>(&mut conn).await.unwrap();
    drop(conn);
    app.stop().await;

    let mut new = config(dir.path());
    new.catalog = Some(catalog_with_version(dir.path(), "redis", "7.1"));
    let app = TestApp::start_in(dir.path(), new).await;
    let (_, catalog) = app.broker(Method::GET, "/v2/catalog", None).await;
    let redis_service = catalog["services"].as_array().unwrap().iter().find(|s| s["name"] == "redis").unwrap();
    assert_eq!(redis_service["plans"][0]["maintenance_info"]["version"], "7.1.0", "{catalog}");

    let path = format!("/v2/service_instances/{id}?accepts_incomplete=true");
    let (status, body) = app
        .broker(
            Method::PATCH,
            &path,
            Some(serde_json::json!({"service_id": REDIS_SERVICE, "maintenance_info": {"version": "7.0.0"}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"], "MaintenanceInfoConflict", "{body}");
    assert_eq!(instance_overview(&app, &id).await["version"], "7.0", "nothing changed");

    let upgrade = serde_json::json!({"service_id": REDIS_SERVICE, "maintenance_info": {"version": "7.1.0"}});
    let (status, body) = app.broker(Method::PATCH, &path, Some(upgrade.clone())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let op = body["operation"].as_str().unwrap().to_owned();
    let last = app
        .wait_for("the upgrade", std::time::Duration::from_secs(120), || {
            let (app, id, op) = (&app, &id, &op);
            async move {
                let (_, body) = app
                    .broker(Method::GET, &format!("/v2/service_instances/{id}/last_operation?operation={op}"), None)
                    .await;
                (body["state"] != "in progress").then_some(body)
            }
        })
        .await;
    assert_eq!(last["state"], "succeeded", "{last}");
    let overview = instance_overview(&app, &id).await;
    assert_eq!(overview["version"], "7.1", "{overview}");
    let mut conn = redis(&creds).await;
    let kept: String = redis::cmd("GET").arg("kept").query_async(&mut conn).await.unwrap();
    assert_eq!(kept, "through the upgrade");

    // The same request again changes nothing.
    let (status, body) = app.broker(Method::PATCH, &path, Some(upgrade)).await;
    assert_eq!((status, body.clone()), (StatusCode::OK, serde_json::json!({})), "{body}");

    // A provision that expects another release is refused and makes nothing.
    let other = server::instances::new_guid();
    let (status, body) = app
        .broker(
            Method::PUT,
            &format!("/v2/service_instances/{other}?accepts_incomplete=true"),
            Some(serde_json::json!({
                "service_id": REDIS_SERVICE, "plan_id": REDIS_PLAN, "organization_guid": "org-a",
                "space_guid": "space-1", "maintenance_info": {"version": "7.0.0"}
            })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"], "MaintenanceInfoConflict", "{body}");
    assert!(app.state().store.instance_by_guid(&other).await.is_err(), "no instance was made");
}
