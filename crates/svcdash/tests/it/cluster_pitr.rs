//! Continuous archiving of a PostgreSQL cluster, as a story with real servers: the
//! primary archives through its node's socket, a replica promoted by a failover
//! goes on archiving on its new timeline, the window reaches across the failover
//! without a gap, and a new instance made at a moment before or after the failover
//! holds exactly what was committed then; such an instance becomes a cluster by a
//! plan change and goes on archiving. In place, the cluster goes back to a moment
//! on node 0, and the other nodes copy it.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use store::NodeRole;

use crate::cluster_postgres::{PG_CLUSTER_PLAN, PG_SYNC_CLUSTER_PLAN, count, kill_node, psql};
use crate::cluster_story::{roles, settled_roles, specs};
use crate::helpers::*;
use crate::pitr::{iso, mark, window, window_reaching};

fn time(value: &serde_json::Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(value.as_str().unwrap()).unwrap().into()
}

/// A folder whose entries cannot be renamed or removed (the immutable attribute),
/// as on a disk gone read-only, until the guard is dropped.
struct Immutable(std::path::PathBuf);

impl Immutable {
    fn set(folder: std::path::PathBuf) -> Self {
        let status = std::process::Command::new("chattr").arg("+i").arg(&folder).status().unwrap();
        assert!(status.success(), "chattr +i {}", folder.display());
        Immutable(folder)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

/// Inserts `n` through the binding's multi-host URI, trying again while the
/// cluster fails over.
async fn insert(app: &TestApp, uri: &str, n: i32) {
    app.wait_for(&format!("row {n} to be written"), Duration::from_secs(120), || async move {
        psql(uri, &format!("INSERT INTO events VALUES ({n})")).await.ok()
    })
    .await;
}

/// Every node holds `rows` rows of `events`.
async fn replicated(app: &TestApp, nodes: &[engines::NodeSpec], rows: i64) {
    app.wait_for("every node to hold every row", Duration::from_secs(60), || async move {
        for spec in nodes {
            if count(spec, "events").await != Some(rows) {
                return None;
            }
        }
        Some(())
    })
    .await;
}

/// svcdash closing the current write-ahead log file every 2 s, and checking the
/// nodes' roles every second.
async fn start() -> TestApp {
    let dir = data_dir();
    let data = dir.path().join("data");
    let mut config = config(&data);
    config.backups.wal_archive_timeout_secs = 2;
    config.engines.check_interval_secs = 1;
    let mut app = TestApp::start_in(&data, config).await;
    app.keep_dir(dir);
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_archiving_postgresql_cluster_keeps_its_window_across_a_failover() {
    let app = start().await;

    // Asynchronous: a synchronous cluster's election waits for every standby's
    // report (docs/clusters.md, "an election can stall"); the rows before the kill
    // are on every node before it.
    let id = app.provision_with(PG_SERVICE, PG_CLUSTER_PLAN, "org-a", json!({"continuous_archiving": true})).await;
    settled_roles(&app, &id, &[Some(NodeRole::Primary), Some(NodeRole::Replica), Some(NodeRole::Replica)]).await;
    let nodes = specs(&app, &id).await;
    let creds = app.bind(&id, PG_SERVICE, PG_CLUSTER_PLAN).await;
    let uri = creds["uri"].as_str().unwrap().to_owned();
    psql(&uri, "CREATE TABLE events (id int PRIMARY KEY)").await.unwrap();

    // The dump comes from a replica; the base backup beside it from the primary.
    let backup = app.create_backup(&id).await;
    app.wait_done(&format!("/v1/instances/{id}/backups/{backup}")).await;
    insert(&app, &uri, 1).await;
    let t1 = mark().await;
    insert(&app, &uri, 2).await;
    replicated(&app, &nodes, 2).await;
    let before = window_reaching(&app, &id, t1).await;
    assert_eq!(before["timeline"], 1, "{before}");

    let keeper = engine_pid(app.state(), &nodes[0]).await.unwrap();
    let killed = Instant::now();
    kill_node(keeper);
    let promoted = app
        .wait_for("a replica to be promoted", Duration::from_secs(120), || {
            let (app, id) = (&app, &id);
            async move { roles(app, id).await.iter().position(|r| *r == Some(NodeRole::Primary)).filter(|n| *n != 0) }
        })
        .await;
    insert(&app, &uri, 3).await;
    let writes_after = killed.elapsed();
    let t2 = mark().await;
    insert(&app, &uri, 4).await;

    // The promoted node archives on timeline 2, and the window goes on across the
    // failover without a gap.
    let started = Instant::now();
    let shown = window_reaching(&app, &id, t2).await;
    let reached_after = started.elapsed();
    assert_eq!(shown["timeline"], 2, "{shown}");
    assert_eq!(shown["gaps"], json!([]), "{shown}");
    assert!(shown["start_time"].as_str().unwrap() <= iso(t1).as_str(), "{shown}");

    // The Backups page offers both: in place, and a new single-node instance.
    let html = crate::pages::page(&app, &app.token, &format!("/service-instances/{id}/backups")).await;
    assert!(html.contains(r#"data-action="pitr""#), "a restore in place is offered");
    assert!(html.contains("node 0 serves alone meanwhile"), "the page says what a cluster's restore does");
    assert!(
        html.contains("cf create-service postgresql single-small NEW-NAME"),
        "the command names a single-node plan"
    );
    let (status, refused) = app
        .broker(
            Method::PUT,
            &format!("/v2/service_instances/{}?accepts_incomplete=true", server::instances::new_guid()),
            Some(json!({"service_id": PG_SERVICE, "plan_id": PG_CLUSTER_PLAN, "organization_guid": "org-a",
                        "space_guid": "space-1",
                        "parameters": {"restore_from": {"instance_id": id, "target_time": iso(t1)}}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused["description"].as_str().unwrap().contains("single-node"), "{refused}");

    let mut copies = Vec::new();
    for (target, expected) in [(t1, vec![1]), (t2, vec![1, 2, 3])] {
        let started = Instant::now();
        let copy = app
            .provision_with(
                PG_SERVICE,
                PG_PLAN,
                "org-a",
                json!({"continuous_archiving": true,
                       "restore_from": {"instance_id": id, "target_time": iso(target)}}),
            )
            .await;
        let made_in = started.elapsed();
        let copy_credentials = app.bind(&copy, PG_SERVICE, PG_PLAN).await;
        let rows: Vec<i32> = sqlx::query_scalar("SELECT id FROM events ORDER BY id")
            .fetch_all(&mut pg(&copy_credentials).await)
            .await
            .unwrap();
        assert_eq!(rows, expected, "a new instance at {}", iso(target));
        println!(
            "postgresql cluster archiving: instance made at {} ({} the failover) in {:.1} s",
            iso(target),
            if target == t1 { "before" } else { "after" },
            made_in.as_secs_f64()
        );
        copies.push((copy, copy_credentials));
    }
    let all = psql(&uri, "SELECT string_agg(id::text, ',' ORDER BY id) FROM events").await.unwrap();
    assert_eq!(all, "1,2,3,4", "the cluster is untouched");

    // The copy after the failover becomes a cluster by a plan change, and goes on
    // archiving: a moment after the change is inside its window.
    let (copy, copy_credentials) = copies.pop().unwrap();
    app.wait_done(&format!("/v1/instances/{copy}/backups/1")).await;
    let last = app.change_plan(&copy, PG_SERVICE, PG_CLUSTER_PLAN).await;
    assert_eq!(last["state"], "succeeded", "{last}");
    settled_roles(&app, &copy, &[Some(NodeRole::Primary), Some(NodeRole::Replica), Some(NodeRole::Replica)]).await;
    let copy_uri = copy_credentials["uri"].as_str().unwrap().to_owned();
    psql(&copy_uri, "INSERT INTO events VALUES (10)").await.unwrap();
    let t3 = mark().await;
    let shown = window_reaching(&app, &copy, t3).await;
    assert_eq!(shown["gaps"], json!([]), "{shown}");
    for (copy, _) in copies {
        app.deprovision(&copy, PG_SERVICE, PG_PLAN).await;
    }
    app.deprovision(&copy, PG_SERVICE, PG_CLUSTER_PLAN).await;

    // In place, to the moment after the failover: node 1 is the primary, so node 0
    // is promoted first; the other nodes copy the restored data.
    let started = Instant::now();
    let body = json!({ "target_time": iso(t2) }).to_string();
    let (status, queued) =
        app.api_as(&app.token, Method::POST, &format!("/v1/instances/{id}/pitr/restore"), Some(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let seq = queued["id"].as_i64().unwrap();
    let done = app.wait_done(&format!("/v1/instances/{id}/restores/{seq}")).await;
    let restored_in = started.elapsed();
    assert_eq!(done["status"], "done", "{done}");
    settled_roles(&app, &id, &[Some(NodeRole::Primary), Some(NodeRole::Replica), Some(NodeRole::Replica)]).await;
    let rows = psql(&uri, "SELECT string_agg(id::text, ',' ORDER BY id) FROM events").await.unwrap();
    assert_eq!(rows, "1,2,3", "the binding reaches the restored data");
    psql(&uri, "INSERT INTO events VALUES (5)").await.unwrap();
    replicated(&app, &nodes, 4).await;
    app.wait_for("every node to follow the restored primary in sync", Duration::from_secs(60), || async {
        for spec in &nodes {
            if !app.state().deployer.in_sync(spec).await.is_ok_and(|in_sync| in_sync) {
                return None;
            }
        }
        Some(())
    })
    .await;
    let t4 = mark().await;
    let shown = window_reaching(&app, &id, t4).await;
    // Timeline 2 began with the failover, 3 with node 0's promotion, 4 with the restore.
    assert_eq!(shown["timeline"], 4, "{shown}");
    assert_eq!(shown["gaps"].as_array().unwrap().len(), 1, "the restore undid what followed its target: {shown}");
    // The new history begins when node 0 served the restored data, before the
    // other nodes had copied it: what was written meanwhile can be restored to.
    let forked = time(&shown["gaps"][0]["end_time"]);
    assert!(forked < time(&done["finished_at"]), "the fork at {forked}, the restore ended {}", done["finished_at"]);

    let (status, last) = window(&app, &id).await;
    assert_eq!(status, StatusCode::OK);
    println!("postgresql cluster restored in place to a point in time in {:.1} s", restored_in.as_secs_f64());
    println!(
        "postgresql cluster archiving: node {promoted} promoted; writes through the binding again {:.1} s after the \
         kill; the window reached a moment after the failover {:.1} s after it was taken; window {} to {}",
        writes_after.as_secs_f64(),
        reached_after.as_secs_f64(),
        last["start_time"],
        last["end_time"]
    );
    app.deprovision(&id, PG_SERVICE, PG_CLUSTER_PLAN).await;
}

/// A synchronous cluster's base backup names its standbys: neither a new single
/// node made from it nor the staging server of a restore in place may wait for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_synchronous_cluster_restores_to_a_moment_in_place_and_into_a_single_node() {
    let mut app = start().await;
    let id = app.provision_with(PG_SERVICE, PG_SYNC_CLUSTER_PLAN, "org-a", json!({"continuous_archiving": true})).await;
    let nodes = specs(&app, &id).await;
    let uri = app.bind(&id, PG_SERVICE, PG_SYNC_CLUSTER_PLAN).await["uri"].as_str().unwrap().to_owned();
    psql(&uri, "CREATE TABLE events (id int PRIMARY KEY)").await.unwrap();
    let backup = app.create_backup(&id).await;
    app.wait_done(&format!("/v1/instances/{id}/backups/{backup}")).await;
    insert(&app, &uri, 1).await;
    let t1 = mark().await;
    insert(&app, &uri, 2).await;
    window_reaching(&app, &id, t1).await;

    let copy = app
        .provision_with(
            PG_SERVICE,
            PG_PLAN,
            "org-a",
            json!({"restore_from": {"instance_id": id, "target_time": iso(t1)}}),
        )
        .await;
    let mut conn = pg(&app.bind(&copy, PG_SERVICE, PG_PLAN).await).await;
    let commit = sqlx::query("INSERT INTO events VALUES (10)").execute(&mut conn);
    tokio::time::timeout(Duration::from_secs(10), commit).await.expect("the copy waits for no standby").unwrap();
    let rows: Vec<i32> = sqlx::query_scalar("SELECT id FROM events ORDER BY id").fetch_all(&mut conn).await.unwrap();
    assert_eq!(rows, [1, 10]);
    drop(conn);
    // The way back to a synchronous cluster, as the page advises: the plan change.
    let last = app.change_plan(&copy, PG_SERVICE, PG_SYNC_CLUSTER_PLAN).await;
    assert_eq!(last["state"], "succeeded", "{last}");
    let copy_nodes = specs(&app, &copy).await;
    let copy_uri = app.bind(&copy, PG_SERVICE, PG_SYNC_CLUSTER_PLAN).await["uri"].as_str().unwrap().to_owned();
    let standbys = app
        .wait_for("the copy's primary to wait for a standby", Duration::from_secs(60), || {
            let primary = crate::cluster_postgres::admin_uri(&copy_nodes[0]);
            async move { psql(&primary, "SHOW synchronous_standby_names").await.ok().filter(|s| !s.is_empty()) }
        })
        .await;
    assert!(standbys.starts_with("ANY 1"), "{standbys}");
    insert(&app, &copy_uri, 11).await;
    replicated(&app, &copy_nodes, 3).await;
    app.deprovision(&copy, PG_SERVICE, PG_SYNC_CLUSTER_PLAN).await;

    let body = json!({ "target_time": iso(t1) }).to_string();
    let (status, queued) =
        app.api_as(&app.token, Method::POST, &format!("/v1/instances/{id}/pitr/restore"), Some(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    app.wait_done(&format!("/v1/instances/{id}/restores/{}", queued["id"])).await;
    assert_eq!(psql(&uri, "SELECT string_agg(id::text, ',' ORDER BY id) FROM events").await.unwrap(), "1");
    // Synchronous again once the replicas copied the restored node: a commit
    // returns, and every node has it.
    insert(&app, &uri, 3).await;
    replicated(&app, &nodes, 2).await;

    // Node 2 cannot copy node 0 this time (its folder may not change). The restore
    // fails, and still forked the history: node 0 serves the restored data, the
    // window goes on from the restore, node 2 never runs on the data it left
    // behind, and copies node 0 once it can.
    let t2 = mark().await;
    insert(&app, &uri, 4).await;
    window_reaching(&app, &id, t2).await;
    let instance = app.state().store.instance_by_guid(&id).await.unwrap();
    let folder = engines::NodeLayout::new(app.state().config.instances_dir().join(&instance.local_name).join("node-2"))
        .persistent();
    let immutable = Immutable::set(folder);
    let body = json!({ "target_time": iso(t2) }).to_string();
    let (status, queued) =
        app.api_as(&app.token, Method::POST, &format!("/v1/instances/{id}/pitr/restore"), Some(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let path = format!("/v1/instances/{id}/restores/{}", queued["id"]);
    let failed = app.wait_finished(&path).await;
    let errors = app.job_errors(&path).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(errors.iter().any(|e| e.contains("node 2 did not copy it")), "{errors:?}");
    assert_eq!(psql(&uri, "SELECT string_agg(id::text, ',' ORDER BY id) FROM events").await.unwrap(), "1,3");
    let pending = |app: &TestApp| {
        let (store, instance) = (app.state().store.clone(), instance.id);
        async move { store.nodes(instance).await.unwrap().iter().map(|n| n.copy_pending).collect::<Vec<_>>() }
    };
    assert_eq!(pending(&app).await, [false, false, true]);
    // Neither the engines' checks nor svcdash's own restart start node 2 on the
    // history it left (it can still not copy node 0).
    let (data, config) = (app.data.clone(), (*app.state().config).clone());
    app.stop().await;
    let app = TestApp::start_in(&data, config).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(count(&nodes[2], "events").await.is_none(), "node 2 does not run on the history it left");
    assert!(!app.state().deployer.is_running(&instance.local_name, 2).await);
    assert_eq!(pending(&app).await, [false, false, true]);
    let t3 = mark().await;
    insert(&app, &uri, 5).await;
    let shown = window_reaching(&app, &id, t3).await;
    assert_eq!(shown["timeline"], 3, "{shown}");
    let gaps = shown["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 2, "each restore undid what followed its target: {shown}");
    let undone = format!("restore {} went back", queued["id"]);
    assert!(gaps[1]["reason"].as_str().unwrap().contains(&undone), "{shown}");
    let html = crate::pages::page(&app, &app.token, &format!("/service-instances/{id}/backups")).await;
    assert!(
        html.contains(&format!("restore {} went back", queued["id"])),
        "the Backups page shows the window and its gaps"
    );

    drop(immutable);
    replicated(&app, &nodes, 3).await;
    // The node serves as soon as it copied node 0; the mark comes off once the
    // copy has returned.
    app.wait_for("node 2 to follow node 0 in sync, unmarked", Duration::from_secs(60), || async {
        let in_sync = app.state().deployer.in_sync(&nodes[2]).await.is_ok_and(|in_sync| in_sync);
        (in_sync && pending(&app).await == [false, false, false]).then_some(())
    })
    .await;
    let node2 = crate::cluster_postgres::admin_uri(&nodes[2]);
    let rows = psql(&node2, "SELECT string_agg(id::text, ',' ORDER BY id) FROM events").await.unwrap();
    assert_eq!(rows, "1,3,5", "node 2 copied the restored data");
    app.deprovision(&id, PG_SERVICE, PG_SYNC_CLUSTER_PLAN).await;
}
