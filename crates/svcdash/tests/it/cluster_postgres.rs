//! PostgreSQL clusters on pg_auto_failover, told as stories with real servers:
//! provision a primary and two replicas, bind, write through the binding's
//! multi-host URI with libpq's own `psql` (which picks the node taking writes),
//! kill the primary's node (its keeper and server, as a lost machine), keep writing
//! with the same URI, see the old primary return as a replica, back up from a
//! replica, restore on the primary with the replicas following, and restart the
//! cluster node by node. Each story prints its figures.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use store::NodeRole;
use tokio::sync::Mutex;

use crate::cluster_story::{Writes, roles, rolling_restart, settled_roles, specs, wait_writes};
use crate::helpers::*;

pub const PG_CLUSTER_PLAN: &str = "b1d3f5a7-9c1e-4b3d-a5f7-9c1e3b5d7f21";
pub const PG_SYNC_CLUSTER_PLAN: &str = "c2e4a6b8-0d2f-4c4e-b6a8-0d2f4c6e8a31";

fn psql_program() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed")
        .flatten()
        .map(|e| e.path().join("bin/psql"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop().expect("psql is installed")
}

/// Runs `sql` through libpq with `conninfo` (a URI); the output, or the error.
pub(crate) async fn psql(conninfo: &str, sql: &str) -> Result<String, String> {
    let run = tokio::process::Command::new(psql_program())
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", sql])
        .env("PGCONNECT_TIMEOUT", "2")
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(10), run).await {
        Ok(Ok(out)) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned()),
        Ok(Ok(out)) => Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("psql took more than 10 s".into()),
    }
}

/// The binding's user on one node, by port.
fn node_uri(creds: &Value, port: u16) -> String {
    format!(
        "postgres://{}:{}@127.0.0.1:{port}/app",
        creds["username"].as_str().unwrap(),
        creds["password"].as_str().unwrap()
    )
}

/// svcdash's admin connection to one node.
pub(crate) fn admin_uri(spec: &engines::NodeSpec) -> String {
    use secrecy::ExposeSecret;
    format!("postgres://{}:{}@127.0.0.1:{}/app", spec.admin_user, spec.admin_password.expose_secret(), spec.port)
}

/// Inserts n = 1, 2, … into `table` through the binding's URI, one `psql` each
/// (libpq tries the hosts in turn and keeps the one that takes writes), until `stop`.
async fn write_loop(table: &'static str, uri: String, stop: Arc<AtomicBool>, writes: Arc<Mutex<Writes>>) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let ok = psql(&uri, &format!("INSERT INTO {table} VALUES ({n})")).await.is_ok();
        let mut w = writes.lock().await;
        if ok {
            w.acknowledged.push(n);
        } else {
            w.failed += 1;
            w.failures.push(Instant::now());
            drop(w);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// How many acknowledged rows the node does not have.
async fn lost_rows(spec: &engines::NodeSpec, table: &str, acknowledged: &[u64]) -> usize {
    let rows = psql(&admin_uri(spec), &format!("SELECT n FROM {table}")).await.unwrap();
    let have: std::collections::HashSet<u64> = rows.lines().map(|l| l.parse().unwrap()).collect();
    acknowledged.iter().filter(|n| !have.contains(n)).count()
}

pub(crate) async fn count(spec: &engines::NodeSpec, table: &str) -> Option<i64> {
    psql(&admin_uri(spec), &format!("SELECT count(*) FROM {table}")).await.ok()?.parse().ok()
}

/// Every node holds as many rows of `table` as the primary.
async fn wait_replicas_caught_up(app: &TestApp, nodes: &[engines::NodeSpec], primary: usize, table: &str) -> i64 {
    let rows = count(&nodes[primary], table).await.unwrap();
    app.wait_for("every node to hold the primary's rows", Duration::from_secs(60), || async move {
        for spec in nodes {
            if count(spec, table).await != Some(rows) {
                return None;
            }
        }
        Some(())
    })
    .await;
    rows
}

/// Kills a node as a lost machine would go: its keeper and its server.
pub(crate) fn kill_node(pid: u32) {
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
}

/// Provisions a cluster, binds, and fails it over with a client writing: returns
/// the app, the instance, the binding, the new primary's index and the figures line.
async fn fail_over(plan: &str, table: &'static str) -> (TestApp, String, Value, usize, usize) {
    let dir = data_dir();
    let mut config = config(dir.path());
    config.engines.check_interval_secs = 1;
    config.metrics.interval_secs = 1;
    let mut app = TestApp::start_in(dir.path(), config).await;
    app.keep_dir(dir);

    let id = app.provision(PG_SERVICE, plan, "org-a").await;
    settled_roles(&app, &id, &[Some(NodeRole::Primary), Some(NodeRole::Replica), Some(NodeRole::Replica)]).await;
    let creds = app.bind(&id, PG_SERVICE, plan).await;
    let nodes = specs(&app, &id).await;
    let uri = creds["uri"].as_str().unwrap().to_owned();
    let hosts: Vec<String> = nodes.iter().map(|s| format!("127.0.0.1:{}", s.port)).collect();
    assert!(uri.contains(&hosts.join(",")), "the uri names every node: {uri}");
    assert!(uri.ends_with("/app?target_session_attrs=read-write"), "{uri}");
    assert_eq!(creds["hosts"].as_array().unwrap().len(), 3, "{creds}");

    psql(&uri, &format!("CREATE TABLE {table} (n bigint PRIMARY KEY)")).await.unwrap();
    // The binding logs in to every node; replicas refuse its writes.
    for spec in &nodes[1..] {
        let direct = node_uri(&creds, spec.port);
        app.wait_for("the table to reach the replica", Duration::from_secs(30), || {
            let direct = direct.clone();
            async move { psql(&direct, &format!("SELECT count(*) FROM {table}")).await.ok() }
        })
        .await;
        let refused = psql(&direct, &format!("INSERT INTO {table} VALUES (0)")).await.unwrap_err();
        assert!(refused.contains("read-only transaction"), "{refused}");
    }

    let (stop, writes) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Writes::default())));
    let writer = tokio::spawn(write_loop(table, uri.clone(), stop.clone(), writes.clone()));
    wait_writes(&app, &writes, 50, "writes before the kill").await;
    let keeper = engine_pid(app.state(), &nodes[0]).await.unwrap();
    let killed = Instant::now();
    kill_node(keeper);
    let acked_before_kill = writes.lock().await.acknowledged.len();
    let new_primary = app
        .wait_for("a replica to be promoted", Duration::from_secs(120), || {
            let (app, id) = (&app, &id);
            async move { roles(app, id).await.iter().position(|r| *r == Some(NodeRole::Primary)).filter(|n| *n != 0) }
        })
        .await;
    let promoted_after = killed.elapsed();
    app.wait_for("the old primary to return as a replica", Duration::from_secs(120), || {
        let (app, id) = (&app, &id);
        async move { (roles(app, id).await[0] == Some(NodeRole::Replica)).then_some(()) }
    })
    .await;
    let rejoined_after = killed.elapsed();
    app.wait_for("writes after the old primary returned", Duration::from_secs(90), || {
        let writes = writes.clone();
        let before = writes.try_lock().map(|w| w.acknowledged.len()).unwrap_or(0);
        async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            (writes.lock().await.acknowledged.len() > before + 5).then_some(())
        }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();

    let writes = writes.lock().await;
    let last_failure = writes.failures.iter().filter(|t| **t >= killed).max().copied();
    let unavailable = last_failure.map_or(Duration::ZERO, |t| t.duration_since(killed));
    assert!(writes.acknowledged.len() > acked_before_kill, "writes resumed through the same URI after the failover");
    let lost = lost_rows(&nodes[new_primary], table, &writes.acknowledged).await;
    println!(
        "postgresql cluster failover ({}): new primary after {:.1} s, writes failing for {:.1} s, old primary back \
         as a replica after {:.1} s; {} writes acknowledged, {lost} of them lost, {} failed",
        if plan == PG_SYNC_CLUSTER_PLAN { "synchronous" } else { "asynchronous" },
        promoted_after.as_secs_f64(),
        unavailable.as_secs_f64(),
        rejoined_after.as_secs_f64(),
        writes.acknowledged.len(),
        writes.failed
    );
    drop(writes);
    wait_replicas_caught_up(&app, &nodes, new_primary, table).await;
    (app, id, creds, new_primary, lost)
}

#[tokio::test]
async fn postgresql_cluster_fails_over_keeps_its_binding_and_restores_on_the_primary() {
    let (mut app, id, creds, new_primary, lost) = fail_over(PG_CLUSTER_PLAN, "w").await;
    // Replication is asynchronous: what was acknowledged in the last moment before
    // the kill may not have reached a replica. More than a few is a bug.
    assert!(lost <= 5, "{lost} acknowledged writes lost");
    let nodes = specs(&app, &id).await;
    let uri = creds["uri"].as_str().unwrap().to_owned();
    let overview = crate::pages::page(&app, &app.token, &format!("/service-instances/{id}")).await;
    assert!(
        overview.contains(&format!(
            r#"<tr data-node="{new_primary}"><td>Node {new_primary}</td><td><span class="badge role-primary">primary</span>"#
        )),
        "{overview}"
    );

    // A backup comes from a replica (its job role made on the primary), and the
    // Backups page says which.
    let backup = app.create_backup(&id).await;
    app.wait_done(&format!("/v1/instances/{id}/backups/{backup}")).await;
    let i = app.state().store.instance_by_guid(&id).await.unwrap();
    let stored = app.state().store.backups(i.id).await.unwrap();
    let taken_from = stored.iter().find(|b| b.seq == backup).unwrap().job.node_index.unwrap();
    assert_ne!(taken_from, new_primary as i64, "the backup was taken from a replica, not the primary");
    let rows_in_backup = count(&nodes[new_primary], "w").await.unwrap();

    // A change after the backup, then a restore: once, on the primary, one row;
    // the replicas follow and hold exactly the restored data.
    psql(&uri, "INSERT INTO w VALUES (-1); CREATE TABLE after_backup (x int)").await.unwrap();
    let restore = app.restore(&id, backup).await;
    app.wait_done(&format!("/v1/instances/{id}/restores/{restore}")).await;
    let restored = app.state().store.restores(i.id).await.unwrap();
    let restored = restored.iter().find(|r| r.seq == restore).unwrap();
    let restored_nodes: Vec<i64> = restored.jobs.iter().map(|j| j.node_index.unwrap()).collect();
    assert_eq!(restored_nodes, [new_primary as i64], "a master-only restore runs once, on the primary");
    let rows = wait_replicas_caught_up(&app, &nodes, new_primary, "w").await;
    assert_eq!(rows, rows_in_backup, "the restored table has the backup's rows");
    for spec in &nodes {
        let gone = psql(&admin_uri(spec), "SELECT to_regclass('after_backup') IS NULL").await.unwrap();
        assert_eq!(gone, "t", "node {} still has what was made after the backup", spec.index);
    }
    psql(&uri, "INSERT INTO w VALUES (-2)").await.expect("the binding writes after the restore");

    // A rolling restart with a client writing: replicas first, then a switchover,
    // then the old primary; every keeper is new afterwards.
    psql(&uri, "CREATE TABLE r (n bigint PRIMARY KEY)").await.unwrap();
    let (stop, writes) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Writes::default())));
    let writer = tokio::spawn(write_loop("r", uri.clone(), stop.clone(), writes.clone()));
    wait_writes(&app, &writes, 20, "writes before the restart").await;
    let took = rolling_restart(&app, &id, &nodes).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let now = roles(&app, &id).await;
    let primary_after = now.iter().position(|r| *r == Some(NodeRole::Primary)).expect("a primary after the restart");
    assert_ne!(primary_after, new_primary, "the primary's role moved to a replica before it restarted");
    let writes = writes.lock().await;
    let lost = lost_rows(&nodes[primary_after], "r", &writes.acknowledged).await;
    println!(
        "postgresql cluster rolling restart: {:.1} s; {} writes acknowledged, {lost} of them lost, {} failed",
        took.as_secs_f64(),
        writes.acknowledged.len(),
        writes.failed
    );
    assert_eq!(lost, 0, "a switchover loses no acknowledged write");
    drop(writes);

    println!("postgresql cluster memory: {} MiB for 3 nodes with the monitor", memory_mib(&app, &id).await);

    // A replica whose data a restore in place left on an abandoned history (marked
    // so when it could not copy node 0) copies the primary in the next rolling
    // restart instead of starting on that data.
    let marked = (primary_after + 1) % nodes.len();
    let node_row = |app: &TestApp| {
        let (store, instance) = (app.state().store.clone(), i.id);
        async move { store.nodes(instance).await.unwrap().into_iter().find(|n| n.index as usize == marked).unwrap() }
    };
    app.state().store.set_node_copy_pending(node_row(&app).await.id, true).await.unwrap();
    let left =
        engines::NodeLayout::new(app.state().config.instances_dir().join(&i.local_name).join(format!("node-{marked}")))
            .data_dir()
            .join("left-history");
    std::fs::write(&left, "").unwrap();
    crate::cluster_story::restart(&app, &id).await;
    assert!(!left.exists(), "node {marked} copied the primary, not started on the data it had");
    assert!(!node_row(&app).await.copy_pending, "node {marked}'s mark came off after its copy");
    psql(&uri, "INSERT INTO w VALUES (-3)").await.expect("the binding writes after the restart");
    let primary = roles(&app, &id).await.iter().position(|r| *r == Some(NodeRole::Primary)).expect("a primary");
    let rows = wait_replicas_caught_up(&app, &nodes, primary, "w").await;
    assert_eq!(rows, rows_in_backup + 2, "every node holds the restored rows and the two writes after the restore");

    // Deprovisioning stops every process of the instance, the monitor included.
    let account_pids = instance_pids(&app, &id).await;
    assert!(account_pids.len() >= 8, "a monitor and three nodes run: {account_pids:?}");
    app.deprovision(&id, PG_SERVICE, PG_CLUSTER_PLAN).await;
    for pid in account_pids {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "process {pid} outlived its instance");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_synchronous_postgresql_cluster_loses_no_acknowledged_write_in_a_failover() {
    let (mut app, id, _creds, new_primary, lost) = fail_over(PG_SYNC_CLUSTER_PLAN, "s").await;
    assert_eq!(lost, 0, "a commit returned only once a replica had it");
    let nodes = specs(&app, &id).await;
    let names = psql(&admin_uri(&nodes[new_primary]), "SHOW synchronous_standby_names").await.unwrap();
    assert!(names.starts_with("ANY 1 ("), "the new primary waits for a replica: {names:?}");

    // Replication figures per node, after the failover: the role and how far
    // behind, in the history (what Graphite gets) and on the Metrics page.
    let history = &app.state().metrics.history;
    app.wait_for("figures of every node in its new role", Duration::from_secs(60), || {
        let id = &id;
        async move {
            (0..3)
                .all(|node| {
                    history.sampled(id, node, 10).pop().is_some_and(|newest| {
                        newest.get("replication.role") == Some(i64::from(node as usize == new_primary))
                            && newest.get("replication.lag_bytes").is_some_and(|b| b >= 0)
                    })
                })
                .then_some(())
        }
    })
    .await;
    let instance = app.state().store.instance_by_guid(&id).await.unwrap();
    let lines = server::metrics::collect(app.state()).await.unwrap();
    for node in 0..3 {
        let namespace = server::metrics::namespace(app.state(), &instance, "pg", node);
        let role = i64::from(node as usize == new_primary);
        assert!(lines.contains(&format!("{namespace}.replication.role {role} ")), "{lines}");
    }
    let replica = (0..3).find(|n| *n != new_primary).unwrap();
    let metrics =
        crate::pages::page(&app, &app.token, &format!("/service-instances/{id}/metrics?node={replica}")).await;
    assert!(
        metrics.contains(r#"<dd id="replication">replica; "#) && metrics.contains("behind its primary"),
        "{metrics}"
    );

    // A server that takes the connection and then does not answer is reported, not
    // waited on: with the monitor's node table locked, asking whether a replica is
    // in step (which asks the monitor first) fails within the deployer's bound.
    let mut locker = {
        use secrecy::ExposeSecret;
        use sqlx::ConnectOptions;
        sqlx::postgres::PgConnectOptions::new()
            .host("127.0.0.1")
            .port(nodes[0].port_named("monitor").unwrap())
            .username(&nodes[0].admin_user)
            .password(nodes[0].admin_password.expose_secret())
            .database("pg_auto_failover")
            .connect()
            .await
            .unwrap()
    };
    sqlx::raw_sql("BEGIN; LOCK TABLE pgautofailover.node IN ACCESS EXCLUSIVE MODE").execute(&mut locker).await.unwrap();
    let started = std::time::Instant::now();
    let asked = tokio::time::timeout(Duration::from_secs(60), app.state().deployer.in_sync(&nodes[replica])).await;
    let took = started.elapsed();
    sqlx::raw_sql("COMMIT").execute(&mut locker).await.unwrap();
    let asked = asked.expect("the question is bounded");
    let error = format!("{:#}", asked.expect_err("a node whose monitor does not answer is not known to be in step"));
    assert!(error.contains("did not say whether it is in step within 15 s"), "{error}");
    assert!(took < Duration::from_secs(20), "asked for {took:?}");
    app.stop().await;
}

/// Proportional memory (PSS: shared memory split between the processes sharing
/// it, as PostgreSQL's backends share its buffers) of every process of the
/// instance's nodes, in MiB.
async fn memory_mib(app: &TestApp, instance: &str) -> u64 {
    let mut kib = 0;
    for pid in instance_pids(app, instance).await {
        let status = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        kib += status
            .lines()
            .find_map(|l| l.strip_prefix("Pss:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    kib / 1024
}

/// Every process the local deployer counts for the instance's nodes, each once.
async fn instance_pids(app: &TestApp, instance: &str) -> Vec<u32> {
    let i = app.state().store.instance_by_guid(instance).await.unwrap();
    let probe = app.state().deployer.probe().unwrap();
    let mut pids = Vec::new();
    for index in 0..3 {
        for pid in probe.processes(&i.local_name, index).await {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            assert!(!pids.contains(&pid), "process {pid} counted for two nodes: {stat}");
            pids.push(pid);
        }
    }
    pids
}

#[tokio::test]
async fn a_single_postgresql_node_becomes_a_cluster_through_the_broker_and_keeps_its_data_and_bindings() {
    let dir = data_dir();
    let mut app = TestApp::start_in(dir.path(), config(dir.path())).await;
    let id = app.provision(PG_SERVICE, PG_PLAN, "org-a").await;
    let old = app.bind_as(&id, "old-binding", PG_SERVICE, PG_PLAN).await;
    let old_uri = old["uri"].as_str().unwrap().to_owned();
    psql(&old_uri, "CREATE TABLE t AS SELECT generate_series(1, 1000) AS n").await.unwrap();
    let path = format!("/v2/service_instances/{id}?accepts_incomplete=true");
    let patch = |body: Value| app.broker(reqwest::Method::PATCH, &path, Some(body));

    let last = app.change_plan(&id, PG_SERVICE, PG_CLUSTER_PLAN).await;
    assert_eq!(last["state"], "succeeded", "{last}");
    settled_roles(&app, &id, &[Some(NodeRole::Primary), Some(NodeRole::Replica), Some(NodeRole::Replica)]).await;
    let nodes = specs(&app, &id).await;
    for spec in &nodes {
        // The old binding logs in to every node, which holds the single node's data.
        assert_eq!(psql(&node_uri(&old, spec.port), "SELECT count(*) FROM t").await.unwrap(), "1000");
    }
    assert_eq!(old["port"].as_u64(), Some(u64::from(nodes[0].port)), "node 0 kept its address");
    // Fetched again, the old binding carries the cluster's URI with its own user.
    let (status, fetched) = app
        .broker(
            reqwest::Method::GET,
            &format!("/v2/service_instances/{id}/service_bindings/old-binding?service_id={PG_SERVICE}"),
            None,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{fetched}");
    let refreshed = fetched["credentials"]["uri"].as_str().unwrap().to_owned();
    assert!(refreshed.contains("target_session_attrs=read-write"), "{refreshed}");
    assert_eq!(fetched["credentials"]["username"], old["username"]);
    psql(&refreshed, "INSERT INTO t VALUES (1001)").await.unwrap();

    // Between the cluster plans (asynchronous and synchronous replication): refused.
    let (status, body) = patch(serde_json::json!({"service_id": PG_SERVICE, "plan_id": PG_SYNC_CLUSTER_PLAN})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (reqwest::StatusCode::UNPROCESSABLE_ENTITY, Some("PlanChangeNotSupported")),
        "{body}"
    );

    // svcdash's own restart leaves a healthy cluster as it was: node 0 the
    // primary, every node with every row, every node a failover candidate again.
    app.stop().await;
    let mut app = TestApp::start_in(dir.path(), config(dir.path())).await;
    let nodes = specs(&app, &id).await;
    app.wait_for("the replicas to follow the primary again", Duration::from_secs(90), || {
        let (app, nodes) = (&app, &nodes);
        async move {
            for spec in nodes {
                if !app.state().deployer.in_sync(spec).await.unwrap_or(false) || count(spec, "t").await != Some(1001) {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    for spec in &nodes {
        let role = app.state().deployer.role(spec).await.unwrap();
        let expected = if spec.index == 0 { engines::Role::Primary } else { engines::Role::Replica };
        assert_eq!(role, expected, "node {}: no failover happened", spec.index);
    }
    let monitor = {
        use secrecy::ExposeSecret;
        let port = nodes[0].port_named("monitor").unwrap();
        format!(
            "postgres://{}:{}@127.0.0.1:{port}/pg_auto_failover",
            nodes[0].admin_user,
            nodes[0].admin_password.expose_secret()
        )
    };
    let priorities =
        psql(&monitor, "SELECT string_agg(candidatepriority::text, ',' ORDER BY nodename) FROM pgautofailover.node")
            .await
            .unwrap();
    assert_eq!(priorities, "50,50,50", "every node may be promoted again");
    psql(&refreshed, "INSERT INTO t VALUES (1002)").await.expect("the binding writes after svcdash restarted");
    app.stop().await;
}
