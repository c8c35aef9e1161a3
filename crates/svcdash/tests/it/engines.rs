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
    let pid = app.state().deployer.pid(&spec).await.unwrap();
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();

    let new_pid = app
        .wait_for("the engine to run again", Duration::from_secs(60), || {
            let (app, spec) = (&app, &spec);
            async move { app.state().deployer.pid(spec).await.filter(|p| *p != pid) }
        })
        .await;
    assert_ne!(new_pid, pid);
    // It replays its WAL before it takes connections again.
    let x: i32 = app
        .wait_for("the restarted engine to answer", Duration::from_secs(60), || {
            let uri = creds["uri"].as_str().unwrap().to_owned();
            async move {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&uri).await.ok()?;
                sqlx::query_scalar("SELECT x FROM t").fetch_one(&mut conn).await.ok()
            }
        })
        .await;
    assert_eq!(x, 42);
}
