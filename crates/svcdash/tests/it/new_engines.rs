//! MariaDB and RabbitMQ across the features the engine story does not cover:
//! disaster recovery between instances (which must not carry credentials
//! along), the deprecated API, a restart, and per-node process metrics.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const KEY: &str = "a key for the origin's backups";

/// The origin's credentials, used on another port: whom they would let in there.
fn at_port(creds: &Value, port: &Value) -> Value {
    let mut moved = creds.clone();
    moved["port"] = port.clone();
    moved
}

#[tokio::test]
async fn disaster_recovery_between_mariadb_instances_brings_the_data_and_no_credentials() {
    let app = TestApp::start().await;
    let origin = app.provision(MARIADB_SERVICE, MARIADB_PLAN, "org-a").await;
    let origin_creds = app.bind(&origin, MARIADB_SERVICE, MARIADB_PLAN).await;
    let mut conn = mariadb(&origin_creds).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE ledger (id int primary key, amount int); \
         INSERT INTO ledger SELECT seq, seq * 10 FROM seq_1_to_500; \
         CREATE VIEW big AS SELECT id FROM ledger WHERE amount > 4000; \
         CREATE PROCEDURE total(OUT t bigint) SELECT sum(amount) INTO t FROM ledger; \
         CREATE TRIGGER doubled BEFORE INSERT ON ledger FOR EACH ROW SET NEW.amount = NEW.amount * 2; \
         CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM ledger WHERE id < 0",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);
    let (status, prepared) = app
        .api_as(
            &app.token,
            Method::POST,
            &format!("/v1/instances/{origin}/disaster-recovery/prepare"),
            Some(&json!({"encryption_key": KEY}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{prepared}");
    let backup = app.create_backup(&origin).await;
    app.wait_done(&format!("/v1/instances/{origin}/backups/{backup}")).await;

    let destination = app.provision(MARIADB_SERVICE, MARIADB_PLAN, "org-a").await;
    let dest_creds = app.bind(&destination, MARIADB_SERVICE, MARIADB_PLAN).await;
    let body = json!({"backup_guid": prepared["backup_guid"], "encryption_key": KEY}).to_string();
    let (status, performed) = app
        .api_as(
            &app.token,
            Method::POST,
            &format!("/v1/instances/{destination}/disaster-recovery/perform"),
            Some(&body),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{performed}");
    app.wait_done(&format!("/v1/instances/{destination}/restores/1")).await;

    // The destination's own binding reads the origin's data, views and routines.
    let mut conn = mariadb(&dest_creds).await.unwrap();
    let total: i64 =
        sqlx::query_scalar("SELECT CAST(sum(amount) AS SIGNED) FROM ledger").fetch_one(&mut conn).await.unwrap();
    assert_eq!(total, (1..=500).map(|g| g * 10).sum::<i64>());
    let big: i64 = sqlx::query_scalar("SELECT count(*) FROM big").fetch_one(&mut conn).await.unwrap();
    assert_eq!(big, 100);
    sqlx::raw_sql("CALL total(@t)").execute(&mut conn).await.unwrap();
    sqlx::raw_sql("INSERT INTO ledger VALUES (501, 7)").execute(&mut conn).await.unwrap();
    let doubled: i32 =
        sqlx::query_scalar("SELECT amount FROM ledger WHERE id = 501").fetch_one(&mut conn).await.unwrap();
    assert_eq!(doubled, 14, "the trigger runs");
    // Objects of the origin's binding, who does not exist here, now belong to app_owner.
    let definers: Vec<String> = sqlx::query_scalar(
        "SELECT definer FROM information_schema.views WHERE table_schema = 'app' \
         UNION ALL SELECT definer FROM information_schema.routines WHERE routine_schema = 'app' \
         UNION ALL SELECT definer FROM information_schema.triggers WHERE trigger_schema = 'app' \
         UNION ALL SELECT definer FROM information_schema.events WHERE event_schema = 'app'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(definers, ["app_owner@localhost"; 4], "{definers:?}");
    // The binding has no global privilege, restored data or not.
    let grants: Vec<String> = sqlx::query_scalar("SHOW GRANTS").fetch_all(&mut conn).await.unwrap();
    assert!(grants.iter().all(|g| g.starts_with("GRANT USAGE ON *.*") || g.contains("ON `app`.*")), "{grants:?}");
    assert!(grants.iter().all(|g| !g.contains("WITH GRANT OPTION")), "{grants:?}");
    for refused in ["SELECT * FROM mysql.user", "SHUTDOWN", "SET GLOBAL max_connections = 1", "CREATE DATABASE other"] {
        assert!(sqlx::raw_sql(refused).execute(&mut conn).await.is_err(), "{refused} was allowed");
    }
    // A view of a binding that goes keeps working for the next binding.
    sqlx::raw_sql("CREATE VIEW mine AS SELECT count(*) AS n FROM ledger").execute(&mut conn).await.unwrap();
    drop(conn);
    let binding = dest_creds["username"].as_str().unwrap().to_owned();
    let bindings =
        app.state().store.bindings(app.state().store.instance_by_guid(&destination).await.unwrap().id).await.unwrap();
    let guid = bindings.iter().find(|b| b.username == binding).unwrap().guid.clone();
    let (status, body) = app
        .broker(
            Method::DELETE,
            &format!(
                "/v2/service_instances/{destination}/service_bindings/{guid}?service_id={MARIADB_SERVICE}&plan_id={MARIADB_PLAN}"
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let next_creds = app.bind(&destination, MARIADB_SERVICE, MARIADB_PLAN).await;
    let mut conn = mariadb(&next_creds).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT n FROM mine").fetch_one(&mut conn).await.unwrap();
    assert_eq!(n, 501);
    drop(conn);
    assert!(mariadb(&dest_creds).await.is_err(), "the unbound binding still logs in");

    // The origin's binding does not exist on the destination.
    assert!(
        mariadb(&at_port(&origin_creds, &dest_creds["port"])).await.is_err(),
        "the origin's credentials work on the destination"
    );

    // The deprecated API backs it up and lists it.
    let res = app
        .client
        .post(format!("{}/service-instances/{destination}/backups", app.base))
        .header("Authorization", &app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED, "{}", res.text().await.unwrap());
    let listed =
        app.wait_for("the deprecated API to list a done backup", std::time::Duration::from_secs(120), || async {
            let res = app
                .client
                .get(format!("{}/service-instances/{destination}/backups", app.base))
                .header("Authorization", &app.token)
                .send()
                .await
                .unwrap();
            let body: Value = res.json().await.unwrap();
            body["backups"].as_array()?.iter().any(|b| b["backup_agent_task"]["status"] == "done").then_some(body)
        });
    listed.await;
}

#[tokio::test]
async fn a_rabbitmq_node_restarts_and_its_metrics_count_every_process() {
    let app = TestApp::start().await;
    let id = app.provision(RABBITMQ_SERVICE, RABBITMQ_PLAN, "org-a").await;
    app.bind(&id, RABBITMQ_SERVICE, RABBITMQ_PLAN).await;
    let spec = app.node(&id).await;
    let pid_before = engine_pid(app.state(), &spec).await.expect("the node runs");
    let processes = app.state().deployer.probe().unwrap().processes(&spec.local_name, 0).await;
    let names: Vec<String> = processes
        .iter()
        .map(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default().trim().to_owned())
        .collect();
    assert!(names.contains(&"beam.smp".to_owned()) && names.contains(&"epmd".to_owned()), "{names:?}");

    let (status, body) = app.api_as(&app.token, Method::PATCH, &format!("/v1/instances/{id}/restart"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    app.wait_for("the node to run again", std::time::Duration::from_secs(120), || {
        let (app, spec) = (&app, &spec);
        async move { engine_pid(app.state(), spec).await.filter(|p| *p != pid_before) }
    })
    .await;
    wait_instance_state(&app, &id, "available").await;

    let collected = server::metrics::collect(app.state()).await.unwrap();
    let count: u64 = collected
        .lines()
        .find(|l| l.contains(&format!("{id}.")) && l.contains(".rabbitmq.0.process.count "))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or_else(|| panic!("no process.count for the node in {collected}"));
    assert!(count >= 3, "beam.smp, its children and epmd: {count}");
    let rss: u64 = collected
        .lines()
        .find(|l| l.contains(&format!("{id}.")) && l.contains(".rabbitmq.0.process.rss "))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap();
    assert!(rss > 50 << 20, "a RabbitMQ node uses more than 50 MiB: {rss}");
}
