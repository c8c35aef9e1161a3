//! The parachute against the disk the tests run on: a threshold at or below its
//! current usage trips it (the engine stops, the instance says why, restarts are
//! refused); with the disk back under the threshold a restart brings the engine
//! back with its data, or svcdash does it by itself when the operator allows it.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use server::Config;

use crate::helpers::*;

fn with_threshold(dir: &std::path::Path, threshold: u8, auto_restart: bool) -> Config {
    let mut config = config(dir);
    config.metrics.interval_secs = 1;
    // The watchdog looks every second: it must leave a node the parachute stopped alone.
    config.engines.check_interval_secs = 1;
    config.parachute.persistent_threshold = threshold;
    config.parachute.auto_restart = auto_restart;
    config
}

async fn newest_points(app: &TestApp, id: &str) -> std::collections::HashMap<String, i64> {
    let (status, body) = app.api(Method::GET, &format!("/v1/instances/{id}/metrics?quantity=1")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let parts: Vec<&str> = l.as_str().unwrap().split(' ').collect();
            let name = parts[0].split_once(".pg.0.").unwrap().1.to_owned();
            (name, parts[1].parse().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn the_parachute_stops_the_engine_and_a_restart_brings_it_back() {
    let dir = data_dir();
    let mut app = TestApp::start_in(dir.path(), config(dir.path())).await;
    let id = app.provision(PG_SERVICE, PG_PLAN, "org-a").await;
    let creds = app.bind(&id, PG_SERVICE, PG_PLAN).await;
    let mut conn = pg(&creds).await;
    sqlx::raw_sql("CREATE TABLE kept (x int); INSERT INTO kept SELECT generate_series(1, 7);")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let persistent = app.layout(&id).await.persistent();
    let threshold = threshold_under_usage(&persistent);
    app.stop().await;

    // At or above its threshold: the engine stops, the instance says why.
    let mut app = TestApp::start_in(dir.path(), with_threshold(dir.path(), threshold, false)).await;
    let body = wait_instance_state(&app, &id, "failed").await;
    assert_eq!(body["parachute_activated"], true, "{body}");
    let why = body["state_description"].as_str().unwrap();
    assert!(why.contains("parachute") && why.contains("persistent disk"), "{why}");
    let spec = app.node(&id).await;
    assert_eq!(engine_pid(app.state(), &spec).await, None, "the engine is stopped");
    let points = app
        .wait_for("parachute points", Duration::from_secs(10), || async {
            let p = newest_points(&app, &id).await;
            (p.get("parachute.activated") == Some(&1)).then_some(p)
        })
        .await;
    assert_eq!(points["parachute.disk.persistent.activated"], 1);
    assert_eq!(points["parachute.disk.persistent.used_threshold"], i64::from(threshold));
    assert!(points["parachute.disk.persistent.used_percent"] >= i64::from(threshold));
    assert_eq!(points["process.running"], 0);
    // The watchdog (every second here) leaves it stopped; a restart is refused while the disk is full.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(engine_pid(app.state(), &spec).await, None);
    // An engine started behind the parachute's back (as by a watchdog that looked
    // just before the trip) is stopped again at the next collection.
    // The parachute may stop it before it even answers: then the start fails so.
    if let Err(e) = app.state().deployer.start(&spec).await {
        assert!(format!("{e:#}").contains("exited during start-up (signal: 2 (SIGINT))"), "{e:#}");
    }
    app.wait_for("the engine stopped again", Duration::from_secs(10), || async {
        engine_pid(app.state(), &spec).await.is_none().then_some(())
    })
    .await;
    // Work that needs the engine is refused.
    let (status, body) = app.api(Method::POST, &format!("/v1/instances/{id}/backups")).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::CONFLICT, Some("InstanceNotReady")), "{body}");
    let restart = format!("/v1/instances/{id}/restart");
    let (status, body) = app.api_as(&app.token, Method::PATCH, &restart, None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::CONFLICT, Some("ParachuteActive")), "{body}");
    let (_, log) = app.api(Method::GET, &format!("/v1/instances/{id}/audit?limit=1000")).await;
    let trip = log.as_array().unwrap().iter().find(|e| e["action"] == "parachute.activated").expect("audited");
    assert_eq!(trip["actor"], "parachute");
    // The operator sees it on the command line too.
    let data = dir.path().to_str().unwrap();
    let (ok, out) = crate::cli::svcdash(&["instances", "show", &format!("i-{id}")], &[("SVCDASH_DATA", data)]);
    assert!(ok && out.contains("parachute:  node 0 stopped since"), "{out}");
    assert!(out.contains("its persistent disk reached its threshold"), "{out}");
    app.stop().await;

    // Under the threshold again (a larger one): still stopped across svcdash
    // restarts until a manager restarts the instance; then the data is back.
    let mut app = TestApp::start_in(dir.path(), with_threshold(dir.path(), 100, false)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let body = instance_overview(&app, &id).await;
    assert_eq!((body["state"].as_str(), body["parachute_activated"].as_bool()), (Some("failed"), Some(true)));
    let points = newest_points(&app, &id).await;
    assert_eq!((points["parachute.activated"], points["parachute.disk.persistent.activated"]), (1, 0));
    let (status, body) = app.api_as(&app.token, Method::PATCH, &restart, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let body = wait_instance_state(&app, &id, "available").await;
    assert_eq!(body["parachute_activated"], false);
    assert!(body.get("state_description").is_none(), "{body}");
    let count: i64 = pg_value_eventually(&creds, "SELECT count(*) FROM kept").await;
    assert_eq!(count, 7);
    app.stop().await;

    // Tripped again; then, when the operator allows it, svcdash restarts it by itself.
    let mut app = TestApp::start_in(dir.path(), with_threshold(dir.path(), threshold, false)).await;
    wait_instance_state(&app, &id, "failed").await;
    app.stop().await;
    let app = TestApp::start_in(dir.path(), with_threshold(dir.path(), 100, true)).await;
    let body = wait_instance_state(&app, &id, "available").await;
    assert_eq!(body["parachute_activated"], false);
    let count: i64 = pg_value_eventually(&creds, "SELECT count(*) FROM kept").await;
    assert_eq!(count, 7);
    let (_, log) = app.api(Method::GET, &format!("/v1/instances/{id}/audit?limit=1000")).await;
    assert!(log.as_array().unwrap().iter().any(|e| e["action"] == "parachute.released"), "{log}");
}

#[tokio::test]
async fn the_parachute_waits_for_a_running_job_to_end() {
    let dir = data_dir();
    let mut app = TestApp::start_in(dir.path(), config(dir.path())).await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let persistent = app.layout(&id).await.persistent();
    app.stop().await;

    // No collector and no job workers: this test takes their parts, so a job stays
    // "running" for as long as it likes.
    let mut paused = config(dir.path());
    paused.jobs.workers = 0;
    paused.metrics.interval_secs = 0;
    paused.parachute.persistent_threshold = threshold_under_usage(&persistent);
    let app = TestApp::start_in(dir.path(), paused).await;
    let state = app.state();
    let backup = app.create_backup(&id).await;
    let job = state.store.claim_next_job().await.unwrap().expect("the queued backup");
    let instance = state.store.instance_by_guid(&id).await.unwrap();
    let node = state.store.nodes(instance.id).await.unwrap().remove(0);
    let spec = app.node(&id).await;
    let watched = server::metrics::parachute::watched(state, &instance.local_name, 0);
    assert!(watched.iter().any(|w| w.over()), "the disk is over the threshold");

    let activated = server::metrics::parachute::check(state, &instance, &node, &watched).await.unwrap();
    assert!(!activated, "backup {backup} owns the engine while it runs");
    assert!(engine_pid(state, &spec).await.is_some(), "the engine still runs");
    assert_eq!(state.store.instance(instance.id).await.unwrap().state, instance.state, "unchanged");

    state.store.finish_job(job.id, api_types::TaskStatus::Failed, Some("ended by the test")).await.unwrap();
    let activated = server::metrics::parachute::check(state, &instance, &node, &watched).await.unwrap();
    assert!(activated, "the first check after the job trips it");
    assert_eq!(engine_pid(state, &spec).await, None, "the engine is stopped");
    assert_eq!(state.store.instance(instance.id).await.unwrap().state, store::InstanceState::Failed);
}
