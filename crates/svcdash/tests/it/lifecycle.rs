//! Restarting an instance: every process stops and starts again, the data stays,
//! the state goes `deploying` → `available`; one operation at a time.

use reqwest::{Method, StatusCode};

use crate::helpers::*;

async fn state_of(app: &TestApp, id: &str) -> String {
    let (status, body) = app.api(Method::GET, &format!("/v1/instances/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["state"].as_str().unwrap().to_owned()
}

async fn wait_available(app: &TestApp, id: &str) {
    let (app_ref, id) = (app, id.to_owned());
    wait_for("the instance to be available", std::time::Duration::from_secs(60), &mut || {
        let id = id.clone();
        async move { (state_of(app_ref, &id).await == "available").then_some(()) }
    })
    .await;
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
    let pid_before = app.state().deployer.pid(&spec).await.expect("the engine runs");

    let path = format!("/v1/instances/{id}/restart");
    let (status, body) = app.api_as(&app.token, Method::PATCH, &path, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    wait_available(&app, &id).await;
    let pid_after = app.state().deployer.pid(&spec).await.expect("the engine runs again");
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
    wait_available(&app, &id).await;
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
