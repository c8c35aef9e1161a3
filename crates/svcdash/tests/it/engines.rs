//! The local deployer's care for its engines.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn an_engine_that_dies_is_started_again_with_its_data() {
    let dir = data_dir();
    let mut config = config(dir.path());
    config.engines.check_interval_secs = 1;
    let app = TestApp::start_in(dir.path(), config).await;
    let id = app.provision(PG_SERVICE, PG_PLAN, "org-a").await;
    let creds = app.bind(&id, PG_SERVICE, PG_PLAN).await;
    let mut conn = pg(&creds).await;
    sqlx::raw_sql("CREATE TABLE t (x int); INSERT INTO t VALUES (42);").execute(&mut conn).await.unwrap();
    drop(conn);

    let spec = app.node(&id).await;
    let pid = engine_pid(app.state(), &spec).await.unwrap();
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();

    let new_pid = app
        .wait_for("the engine to run again", Duration::from_secs(60), || {
            let (app, spec) = (&app, &spec);
            async move { engine_pid(app.state(), spec).await.filter(|p| *p != pid) }
        })
        .await;
    assert_ne!(new_pid, pid);
    // It replays its WAL before it takes connections again.
    let x: i32 = pg_value_eventually(&creds, "SELECT x FROM t").await;
    assert_eq!(x, 42);
}

#[tokio::test]
async fn a_missing_engine_fails_provisioning_with_a_clear_reason() {
    use reqwest::{Method, StatusCode};
    let dir = data_dir();
    let mut config = config(dir.path());
    config.engines.bin_dirs.insert("postgresql".into(), dir.path().join("no-postgres-here"));
    let app = TestApp::start_in(dir.path(), config).await;
    let body = serde_json::json!({"service_id": PG_SERVICE, "plan_id": PG_PLAN, "organization_guid": "org-a", "space_guid": "s"});
    let (status, res) =
        app.broker(Method::PUT, "/v2/service_instances/pg-missing?accepts_incomplete=true", Some(body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{res}");
    let op = app
        .wait_for("provisioning to end", Duration::from_secs(60), || {
            let app = &app;
            async move {
                let (_, op) = app.broker(Method::GET, "/v2/service_instances/pg-missing/last_operation", None).await;
                (op["state"] != "in progress").then_some(op)
            }
        })
        .await;
    assert_eq!(op["state"], "failed", "{op}");
    let why = op["description"].as_str().unwrap();
    assert!(why.contains("initdb") && why.contains("no-postgres-here"), "{why}");
    let instance = app.state().store.instance_by_guid("pg-missing").await.unwrap();
    assert_eq!(instance.state, store::InstanceState::Failed);
    assert!(instance.state_reason.unwrap().contains("initdb"));
}

#[tokio::test]
async fn engines_stop_with_svcdash_and_start_again_with_their_data() {
    let dir = data_dir();
    let data = dir.path();
    let mut app = TestApp::start_in(data, config(data)).await;
    let pg_id = app.provision(PG_SERVICE, PG_PLAN, "org-a").await;
    let redis_id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let pg_creds = app.bind(&pg_id, PG_SERVICE, PG_PLAN).await;
    let redis_creds = app.bind(&redis_id, REDIS_SERVICE, REDIS_PLAN).await;
    let mut conn = pg(&pg_creds).await;
    sqlx::raw_sql("CREATE TABLE kept (x int); INSERT INTO kept VALUES (7);").execute(&mut conn).await.unwrap();
    drop(conn);
    let mut conn = redis(&redis_creds).await;
    redis::cmd("SET").arg("kept").arg("yes").query_async::<()>(&mut conn).await.unwrap();
    drop(conn);
    let pids = [
        engine_pid(app.state(), &app.node(&pg_id).await).await.unwrap(),
        engine_pid(app.state(), &app.node(&redis_id).await).await.unwrap(),
    ];

    app.stop().await;
    for pid in pids {
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok();
        assert!(!alive, "engine {pid} still runs after svcdash stopped");
    }

    let app = TestApp::start_in(data, config(data)).await;
    let x: i32 = pg_value_eventually(&pg_creds, "SELECT x FROM kept").await;
    assert_eq!(x, 7);
    let kept: String = app
        .wait_for("Redis back with its data", Duration::from_secs(60), || {
            let uri = redis_creds["uri"].as_str().unwrap().to_owned();
            async move {
                let mut conn = redis::Client::open(uri).ok()?.get_multiplexed_async_connection().await.ok()?;
                redis::cmd("GET").arg("kept").query_async(&mut conn).await.ok()
            }
        })
        .await;
    assert_eq!(kept, "yes");
}
