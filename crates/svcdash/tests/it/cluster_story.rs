//! Cluster instances, told as stories with real engines: provision three nodes,
//! bind, write through the binding in a loop, kill -9 the primary's server, keep
//! writing with the same credentials after the failover, see the old primary come
//! back as a replica, then back up (from a replica) and restore (rows as the
//! reference lays them out for the engine). Each story prints its figures: seconds
//! without a primary, acknowledged writes lost, failed writes, memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use store::NodeRole;
use tokio::sync::Mutex;

use crate::helpers::*;

pub const REDIS_CLUSTER_PLAN: &str = "2c4e6a8c-0e2a-4c6e-8a0c-3f5b7d9f1a22";

/// A bound on a single Redis call, so a write to a vanished master fails instead
/// of hanging the loop.
const CALL_TIMEOUT: Duration = Duration::from_secs(1);

async fn timed<T>(f: impl Future<Output = redis::RedisResult<T>>) -> Option<T> {
    tokio::time::timeout(CALL_TIMEOUT, f).await.ok()?.ok()
}

/// A connection as the binding's user to `port` on the binding's host.
async fn connect(creds: &Value, port: u64) -> Option<redis::aio::MultiplexedConnection> {
    let url = format!(
        "redis://{}:{}@{}:{port}",
        creds["username"].as_str().unwrap(),
        creds["password"].as_str().unwrap(),
        creds["host"].as_str().unwrap()
    );
    timed(redis::Client::open(url).unwrap().get_multiplexed_async_connection()).await
}

/// The master's port as the first of the binding's sentinels that answers says,
/// asked with the binding's credentials (what a Sentinel client does).
async fn master_port(creds: &Value) -> Option<u64> {
    for sentinel in creds["sentinels"].as_array().unwrap() {
        let Some(mut conn) = connect(creds, sentinel["port"].as_u64().unwrap()).await else { continue };
        let answer: Option<Option<(String, u64)>> = timed(
            redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(creds["master_name"].as_str().unwrap())
                .query_async(&mut conn),
        )
        .await;
        if let Some(Some((_, port))) = answer {
            return Some(port);
        }
    }
    None
}

/// What a writing loop saw (every engine's cluster story has one).
#[derive(Default)]
pub struct Writes {
    pub acknowledged: Vec<u64>,
    pub failed: u64,
    /// Failed writes, and when each failed.
    pub failures: Vec<Instant>,
}

/// Waits until the writing loop has had more than `count` writes acknowledged.
pub async fn wait_writes(app: &TestApp, writes: &Arc<Mutex<Writes>>, count: usize, what: &str) {
    app.wait_for(what, Duration::from_secs(60), || {
        let writes = writes.clone();
        async move { (writes.lock().await.acknowledged.len() > count).then_some(()) }
    })
    .await;
}

/// Restarts the instance through the API (a rolling restart) while the caller's
/// client writes, lets it write a second more, and checks that every node's main
/// process is new; returns how long the restart took.
pub async fn rolling_restart(app: &TestApp, id: &str, nodes: &[engines::NodeSpec]) -> Duration {
    let mut pids_before = Vec::new();
    for spec in nodes {
        pids_before.push(engine_pid(app.state(), spec).await.unwrap());
    }
    let started = Instant::now();
    restart(app, id).await;
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (spec, before) in nodes.iter().zip(&pids_before) {
        assert_ne!(engine_pid(app.state(), spec).await, Some(*before), "node {} was restarted", spec.index);
    }
    took
}

/// Writes `<prefix>:<n>` for n = 1, 2, … through the master Sentinel names,
/// finding it again after every failure, until `stop`.
async fn write_loop(prefix: &'static str, creds: Value, stop: Arc<AtomicBool>, writes: Arc<Mutex<Writes>>) {
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        if conn.is_none()
            && let Some(port) = master_port(&creds).await
        {
            conn = connect(&creds, port).await;
        }
        let ok = match conn.as_mut() {
            Some(c) => {
                timed(redis::cmd("SET").arg(format!("{prefix}:{n}")).arg(n).query_async::<()>(c)).await.is_some()
            }
            None => false,
        };
        let mut w = writes.lock().await;
        if ok {
            w.acknowledged.push(n);
        } else {
            w.failed += 1;
            w.failures.push(Instant::now());
            conn = None;
            drop(w);
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        drop(w);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// How many of the acknowledged writes `<prefix>:<n>` the node does not have.
async fn lost_writes(spec: &engines::NodeSpec, prefix: &str, acknowledged: &[u64]) -> usize {
    let mut conn = admin(spec).await;
    let mut lost = 0;
    for chunk in acknowledged.chunks(500) {
        let keys: Vec<String> = chunk.iter().map(|n| format!("{prefix}:{n}")).collect();
        let values: Vec<Option<u64>> = redis::cmd("MGET").arg(&keys).query_async(&mut conn).await.unwrap();
        lost += values.iter().filter(|v| v.is_none()).count();
    }
    lost
}

pub async fn roles(app: &TestApp, instance: &str) -> Vec<Option<NodeRole>> {
    let i = app.state().store.instance_by_guid(instance).await.unwrap();
    app.state().store.nodes(i.id).await.unwrap().iter().map(|n| n.role).collect()
}

/// Waits for the nodes' recorded roles to be `expected`. The roles are what the
/// last engine check saw; a node too slow to say its role there (a loaded
/// machine) is recorded as unknown until the next check, a second later here.
pub async fn settled_roles(app: &TestApp, instance: &str, expected: &[Option<NodeRole>]) {
    let started = std::time::Instant::now();
    loop {
        let seen = roles(app, instance).await;
        if seen == expected {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the nodes' roles stayed {seen:?}, not {expected:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn specs(app: &TestApp, instance: &str) -> Vec<engines::NodeSpec> {
    let i = app.state().store.instance_by_guid(instance).await.unwrap();
    app.state().node_specs(&i).await.unwrap()
}

/// svcdash's own connection to a node's server.
async fn admin(spec: &engines::NodeSpec) -> redis::aio::MultiplexedConnection {
    use secrecy::ExposeSecret;
    let url = format!("redis://{}:{}@127.0.0.1:{}", spec.admin_user, spec.admin_password.expose_secret(), spec.port);
    redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap()
}

async fn dbsize(spec: &engines::NodeSpec) -> i64 {
    redis::cmd("DBSIZE").query_async(&mut admin(spec).await).await.unwrap()
}

/// Resident memory of every process of the instance's nodes, in MiB.
async fn memory_mib(app: &TestApp, instance: &str) -> u64 {
    let i = app.state().store.instance_by_guid(instance).await.unwrap();
    let probe = app.state().deployer.probe().unwrap();
    let mut kib = 0;
    let mut seen = std::collections::HashSet::new();
    for index in 0..3 {
        let pids = probe.processes(&i.local_name, index).await;
        // A server and its sentinel per node; the nodes share an account, not processes.
        assert_eq!(pids.len(), 2, "node {index}: {pids:?}");
        for pid in pids {
            assert!(seen.insert(pid), "process {pid} counted for two nodes");
            kib += rss_kib(pid);
        }
    }
    kib / 1024
}

#[tokio::test]
async fn redis_cluster_fails_over_keeps_its_binding_and_restores_on_every_node() {
    let dir = data_dir();
    let mut config = config(dir.path());
    // Roles are observed, and dead nodes started again, once a second.
    config.engines.check_interval_secs = 1;
    let mut app = TestApp::start_in(dir.path(), config).await;
    app.keep_dir(dir);

    let id = app.provision(REDIS_SERVICE, REDIS_CLUSTER_PLAN, "org-a").await;
    settled_roles(&app, &id, &[Some(NodeRole::Primary), Some(NodeRole::Replica), Some(NodeRole::Replica)]).await;
    let overview = crate::pages::page(&app, &app.token, &format!("/service-instances/{id}")).await;
    assert!(
        overview.contains(r#"<tr data-node="0"><td>Node 0</td><td><span class="badge role-master">master</span>"#),
        "{overview}"
    );
    assert_eq!(overview.matches(r#"class="badge role-replica">replica</span>"#).count(), 2, "{overview}");

    let creds = app.bind(&id, REDIS_SERVICE, REDIS_CLUSTER_PLAN).await;
    let nodes = specs(&app, &id).await;
    assert_eq!(creds["port"].as_u64(), Some(u64::from(nodes[0].port)), "the uri names the master: {creds}");
    assert_eq!(creds["sentinels"].as_array().unwrap().len(), 3, "{creds}");
    assert_eq!(master_port(&creds).await, Some(u64::from(nodes[0].port)));

    // The binding's user exists on every node; replicas refuse its writes.
    for spec in &nodes {
        let mut conn = connect(&creds, u64::from(spec.port)).await.expect("the binding logs in to every node");
        let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
        assert_eq!(pong, "PONG");
        if spec.index > 0 {
            let err = redis::cmd("SET").arg("x").arg(1).query_async::<()>(&mut conn).await.unwrap_err();
            assert!(err.to_string().contains("read only"), "{err}");
        }
    }
    // On a sentinel, the binding's user may ask where the master is, and change nothing.
    let sentinel_port = creds["sentinels"][1]["port"].as_u64().unwrap();
    let mut sentinel = connect(&creds, sentinel_port).await.unwrap();
    for change in [
        vec!["SENTINEL", "FAILOVER", creds["master_name"].as_str().unwrap()],
        vec!["SENTINEL", "SET", creds["master_name"].as_str().unwrap(), "quorum", "1"],
        vec!["SENTINEL", "REMOVE", creds["master_name"].as_str().unwrap()],
        vec!["ACL", "LIST"],
    ] {
        let err = redis::cmd(change[0]).arg(&change[1..]).query_async::<redis::Value>(&mut sentinel).await.unwrap_err();
        assert!(err.to_string().contains("no permissions"), "{change:?}: {err}");
    }

    // Failover: kill -9 the master's server while a client writes in a loop.
    let (stop, writes) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Writes::default())));
    let writer = tokio::spawn(write_loop("k", creds.clone(), stop.clone(), writes.clone()));
    wait_writes(&app, &writes, 200, "writes before the kill").await;
    let master_pid = engine_pid(app.state(), &nodes[0]).await.unwrap();
    let killed = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(master_pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    let acked_before_kill = writes.lock().await.acknowledged.len();
    let new_master = app
        .wait_for("a replica to be promoted", Duration::from_secs(60), || {
            let app = &app;
            let id = &id;
            async move { roles(app, id).await.iter().position(|r| *r == Some(NodeRole::Primary)).filter(|n| *n != 0) }
        })
        .await;
    let promoted_after = killed.elapsed();
    app.wait_for("the old master to return as a replica", Duration::from_secs(90), || {
        let app = &app;
        let id = &id;
        async move { (roles(app, id).await[0] == Some(NodeRole::Replica)).then_some(()) }
    })
    .await;
    let rejoined_after = killed.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();

    let writes = writes.lock().await;
    let last_failure = writes.failures.iter().filter(|t| **t >= killed).max().copied();
    let unavailable = last_failure.map_or(Duration::ZERO, |t| t.duration_since(killed));
    assert!(writes.acknowledged.len() > acked_before_kill, "writes resumed after the failover");
    assert_eq!(master_port(&creds).await, Some(u64::from(nodes[new_master].port)), "Sentinel names the new master");
    let lost = lost_writes(&nodes[new_master], "k", &writes.acknowledged).await;
    println!(
        "redis cluster failover: new master after {:.1} s, writes failing for {:.1} s, old master back as a replica \
         after {:.1} s; {} writes acknowledged, {lost} of them lost, {} failed",
        promoted_after.as_secs_f64(),
        unavailable.as_secs_f64(),
        rejoined_after.as_secs_f64(),
        writes.acknowledged.len(),
        writes.failed
    );
    // Replication is asynchronous: a write acknowledged in the last moments before
    // the kill may not have reached a replica. More than a few lost is a bug.
    assert!(lost <= 20, "{lost} acknowledged writes lost");
    let keys_on_master = dbsize(&nodes[new_master]).await;
    app.wait_for("every node to hold the master's keys", Duration::from_secs(30), || {
        let nodes = &nodes;
        async move {
            for spec in nodes {
                if dbsize(spec).await != keys_on_master {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    drop(writes);

    // A backup comes from a replica, and the Backups page says which.
    let backup = app.create_backup(&id).await;
    app.wait_done(&format!("/v1/instances/{id}/backups/{backup}")).await;
    let i = app.state().store.instance_by_guid(&id).await.unwrap();
    let stored = app.state().store.backups(i.id).await.unwrap();
    let taken_from = stored.iter().find(|b| b.seq == backup).unwrap().job.node_index.unwrap();
    assert_ne!(taken_from, new_master as i64, "the backup was taken from a replica, not the master");
    let backups_page = crate::pages::page(&app, &app.token, &format!("/service-instances/{id}/backups")).await;
    assert!(backups_page.contains(&format!(r#"<td class="backup-node">Node {taken_from}</td>"#)), "{backups_page}");

    // A change after the backup, then a restore: on every node, the master first,
    // one row per node under one "Backup created at" cell.
    let mut master = connect(&creds, master_port(&creds).await.unwrap()).await.unwrap();
    redis::cmd("SET").arg("after-backup").arg(1).query_async::<()>(&mut master).await.unwrap();
    let restore = app.restore(&id, backup).await;
    app.wait_done(&format!("/v1/instances/{id}/restores/{restore}")).await;
    let restored = app.state().store.restores(i.id).await.unwrap();
    let restored = restored.iter().find(|r| r.seq == restore).unwrap();
    let restored_nodes: Vec<i64> = restored.jobs.iter().map(|j| j.node_index.unwrap()).collect();
    assert_eq!(restored_nodes.len(), 3, "{restored_nodes:?}");
    assert_eq!(restored_nodes[0], new_master as i64, "the master is restored first");
    let backups_page = crate::pages::page(&app, &app.token, &format!("/service-instances/{id}/backups")).await;
    assert!(backups_page.contains(r#"<td rowspan="3">"#), "{backups_page}");
    for spec in &nodes {
        let exists: i64 = redis::cmd("EXISTS").arg("after-backup").query_async(&mut admin(spec).await).await.unwrap();
        assert_eq!(exists, 0, "node {} still has the change made after the backup", spec.index);
        assert_eq!(dbsize(spec).await, keys_on_master, "node {} holds the backup's keys", spec.index);
    }
    // The cluster still fails over and the binding still works after the restore.
    assert_eq!(master_port(&creds).await, Some(u64::from(nodes[new_master].port)));
    let mut master = connect(&creds, master_port(&creds).await.unwrap()).await.unwrap();
    redis::cmd("SET").arg("after-restore").arg(1).query_async::<()>(&mut master).await.unwrap();

    // A rolling restart with a client writing in a loop: replicas first, then a
    // switchover, then the old master; every process is new afterwards.
    let master_before = master_port(&creds).await.unwrap();
    let (stop, writes) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Writes::default())));
    let writer = tokio::spawn(write_loop("r", creds.clone(), stop.clone(), writes.clone()));
    wait_writes(&app, &writes, 100, "writes before the restart").await;
    let took = rolling_restart(&app, &id, &nodes).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let master_after = master_port(&creds).await.unwrap();
    assert_ne!(master_after, master_before, "the master's role moved to a replica before it restarted");
    let after = nodes.iter().find(|s| u64::from(s.port) == master_after).unwrap();
    let writes = writes.lock().await;
    let lost = lost_writes(after, "r", &writes.acknowledged).await;
    println!(
        "redis cluster rolling restart: {:.1} s; {} writes acknowledged, {lost} of them lost, {} failed",
        took.as_secs_f64(),
        writes.acknowledged.len(),
        writes.failed
    );
    assert!(lost <= 20, "{lost} acknowledged writes lost");
    assert!(writes.failed <= 50, "{} writes failed during a rolling restart", writes.failed);
    drop(writes);

    println!("redis cluster memory: {} MiB for 3 nodes with their sentinels", memory_mib(&app, &id).await);

    // Deprovisioning stops every process of every node, sentinels included.
    let mut pids = Vec::new();
    for index in 0..3 {
        let run = app.state().config.instances_dir().join(&i.local_name).join(format!("node-{index}/ephemeral/run"));
        for file in ["redis.pid", "sentinel.pid"] {
            let pid: i32 = std::fs::read_to_string(run.join(file)).unwrap().trim().parse().unwrap();
            assert!(
                std::path::Path::new(&format!("/proc/{pid}")).exists(),
                "node {index}'s {file} names a running process"
            );
            pids.push(pid);
        }
    }
    app.deprovision(&id, REDIS_SERVICE, REDIS_CLUSTER_PLAN).await;
    for pid in pids {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "process {pid} outlived its instance");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_person_sees_the_nodes_and_restores_a_redis_cluster_in_the_browser() {
    let dir = data_dir();
    let mut config = config(dir.path());
    config.engines.check_interval_secs = 1;
    config.metrics.interval_secs = 1;
    let mut app = TestApp::start_in(dir.path(), config).await;
    app.keep_dir(dir);
    let id = app.provision(REDIS_SERVICE, REDIS_CLUSTER_PLAN, "org-a").await;
    let creds = app.bind(&id, REDIS_SERVICE, REDIS_CLUSTER_PLAN).await;
    let mut master = connect(&creds, master_port(&creds).await.unwrap()).await.unwrap();
    redis::cmd("SET").arg("greeting").arg("before the backup").query_async::<()>(&mut master).await.unwrap();
    let backup = app.create_backup(&id).await;
    app.wait_done(&format!("/v1/instances/{id}/backups/{backup}")).await;
    redis::cmd("SET").arg("greeting").arg("after the backup").query_async::<()>(&mut master).await.unwrap();
    app.wait_for("figures of every node", Duration::from_secs(60), || {
        let history = &app.state().metrics.history;
        let id = &id;
        async move { (history.nodes(id).len() == 3).then_some(()) }
    })
    .await;
    // Replication figures per node: the role, and how far behind, in the history
    // (what Graphite gets) and on the Metrics page.
    let lines = server::metrics::collect(app.state()).await.unwrap();
    let history = &app.state().metrics.history;
    for node in 0..3 {
        let newest = history.sampled(&id, node, 10).pop().unwrap();
        assert_eq!(newest.get("replication.role"), Some(i64::from(node == 0)), "node {node}");
        assert!(newest.get("replication.lag_bytes").is_some_and(|b| b >= 0), "node {node}");
        assert!(newest.get("replication.lag_ms").is_some(), "node {node}");
        let namespace = server::metrics::namespace(
            app.state(),
            &app.state().store.instance_by_guid(&id).await.unwrap(),
            "redis",
            node,
        );
        assert!(lines.contains(&format!("{namespace}.replication.role {} ", i64::from(node == 0))), "{lines}");
    }
    let metrics = crate::pages::page(&app, &app.token, &format!("/service-instances/{id}/metrics?node=1")).await;
    assert!(
        metrics.contains(r#"<dd id="replication">replica; "#) && metrics.contains("behind its master"),
        "{metrics}"
    );

    browser_sign_in(&app).await;
    let findings = match browser_findings(browser_script("cluster.mjs", &app.base, &id)).await {
        Ok(findings) => findings,
        Err(printed) => {
            let restore = app.job_errors(&format!("/v1/instances/{id}/restores/1")).await;
            panic!("the browser test failed:\n{printed}\nthe restore's jobs said: {restore:?}");
        }
    };

    let pair = |a: &str, b: &str| serde_json::json!([a, b]);
    assert_eq!(
        findings["nodes"],
        serde_json::json!([pair("Node 0", "master"), pair("Node 1", "replica"), pair("Node 2", "replica")]),
        "{findings}"
    );
    assert_eq!(findings["tabs"], serde_json::json!(["Node 0 (master)", "Node 1 (replica)", "Node 2 (replica)"]));
    let taken_from = findings["takenFrom"].as_str().unwrap();
    assert!(taken_from == "Node 1" || taken_from == "Node 2", "the backup came from a replica: {findings}");
    let rows = findings["restoreRows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "one row per node: {findings}");
    assert_eq!(rows[0][0], "1", "{findings}");
    assert_eq!(rows[0][1], "1", "{findings}");
    assert_eq!(rows[0][3], "0", "the master's row comes first: {findings}");
    assert_eq!(rows[1][0], "1", "{findings}");
    assert_eq!(rows[2][0], "2", "{findings}");
    assert_eq!(
        findings["fusedCells"], 4,
        "restore, backup, its time and the restore's actions span the node rows: {findings}"
    );
    assert_eq!(findings["pageErrors"], serde_json::json!([]), "{findings}");
    let mut master = connect(&creds, master_port(&creds).await.unwrap()).await.unwrap();
    let greeting: String = redis::cmd("GET").arg("greeting").query_async(&mut master).await.unwrap();
    assert_eq!(greeting, "before the backup");
    app.stop().await;
}

#[tokio::test]
async fn a_single_redis_node_becomes_a_cluster_through_the_broker_and_keeps_its_data_and_bindings() {
    let dir = data_dir();
    let mut app = TestApp::start_in(dir.path(), config(dir.path())).await;
    let (_, catalog) = app.broker(reqwest::Method::GET, "/v2/catalog", None).await;
    let updateable = |name: &str| {
        catalog["services"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap()["plan_updateable"].clone()
    };
    for engine in ["postgresql", "redis", "mariadb", "rabbitmq"] {
        assert_eq!(updateable(engine), true, "{engine}: {catalog}");
    }
    assert!(catalog["services"].as_array().unwrap().iter().all(|s| s["bindings_retrievable"] == true), "{catalog}");

    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let old = app.bind_as(&id, "old-binding", REDIS_SERVICE, REDIS_PLAN).await;
    assert!(old.get("sentinels").is_none(), "a single node has no sentinels: {old}");
    // The platform fetches a binding: the same credentials, read from the store.
    let fetch = |query: String| {
        let (app, path) = (&app, format!("/v2/service_instances/{id}/service_bindings/old-binding{query}"));
        async move { app.broker(reqwest::Method::GET, &path, None).await }
    };
    let (status, fetched) = fetch(String::new()).await;
    assert_eq!((status, &fetched["credentials"]), (reqwest::StatusCode::OK, &old), "{fetched}");
    let (status, body) = fetch(format!("?service_id={PG_SERVICE}")).await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = app
        .broker(reqwest::Method::GET, &format!("/v2/service_instances/{id}/service_bindings/no-such-binding"), None)
        .await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND, "{body}");
    let mut conn = redis(&old).await;
    for n in 0..1000 {
        redis::cmd("SET").arg(format!("k:{n}")).arg(n).query_async::<()>(&mut conn).await.unwrap();
    }
    let path = format!("/v2/service_instances/{id}?accepts_incomplete=true");
    let patch = |body: Value| app.broker(reqwest::Method::PATCH, &path, Some(body));

    // What changes nothing, or cannot be done, is answered at once and changes nothing.
    let (status, body) = patch(serde_json::json!({"service_id": REDIS_SERVICE, "plan_id": REDIS_PLAN})).await;
    assert_eq!((status, body.clone()), (reqwest::StatusCode::OK, serde_json::json!({})), "{body}");
    let (status, body) = patch(serde_json::json!({"service_id": REDIS_SERVICE})).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let (status, body) = patch(serde_json::json!({"service_id": PG_SERVICE, "plan_id": PG_PLAN})).await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = patch(serde_json::json!({"service_id": REDIS_SERVICE, "plan_id": "no-such-plan"})).await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = app
        .broker(
            reqwest::Method::PATCH,
            &format!("/v2/service_instances/{id}"),
            Some(serde_json::json!({"service_id": REDIS_SERVICE, "plan_id": REDIS_CLUSTER_PLAN})),
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (reqwest::StatusCode::UNPROCESSABLE_ENTITY, Some("AsyncRequired")));
    let i = app.state().store.instance_by_guid(&id).await.unwrap();
    assert_eq!(i.plan_id, REDIS_PLAN);
    assert_eq!(app.state().store.nodes(i.id).await.unwrap().len(), 1);

    // Single node → cluster: an asynchronous operation the platform follows.
    let last = app.change_plan(&id, REDIS_SERVICE, REDIS_CLUSTER_PLAN).await;
    assert_eq!(last["state"], "succeeded", "{last}");
    settled_roles(&app, &id, &[Some(NodeRole::Primary), Some(NodeRole::Replica), Some(NodeRole::Replica)]).await;
    let nodes = specs(&app, &id).await;
    for spec in &nodes {
        assert_eq!(dbsize(spec).await, 1000, "node {} holds the single node's data", spec.index);
        // The binding made before the change logs in to every node.
        let mut conn = connect(&old, u64::from(spec.port)).await.expect("the old binding reaches every node");
        let value: u64 = redis::cmd("GET").arg("k:999").query_async(&mut conn).await.unwrap();
        assert_eq!(value, 999);
    }
    assert_eq!(old["port"].as_u64(), Some(u64::from(nodes[0].port)), "node 0 kept its address");
    // Fetched again, the binding made before the change carries the cluster's
    // fields, with its own user and password, and follows the master with them.
    let (status, fetched) = fetch(format!("?service_id={REDIS_SERVICE}&plan_id={REDIS_CLUSTER_PLAN}")).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{fetched}");
    let refreshed = &fetched["credentials"];
    assert_eq!((&refreshed["username"], &refreshed["password"]), (&old["username"], &old["password"]));
    assert_eq!(refreshed["sentinels"].as_array().map(Vec::len), Some(3), "{refreshed}");
    assert_eq!(master_port(refreshed).await, Some(u64::from(nodes[0].port)), "{refreshed}");
    let mut conn = redis(&old).await;
    redis::cmd("SET").arg("after-the-change").arg(1).query_async::<()>(&mut conn).await.unwrap();
    let new = app.bind(&id, REDIS_SERVICE, REDIS_CLUSTER_PLAN).await;
    assert_eq!(master_port(&new).await, Some(u64::from(nodes[0].port)), "{new}");

    // Back to a single node would drop two nodes: refused, nothing changes.
    let (status, body) = patch(serde_json::json!({"service_id": REDIS_SERVICE, "plan_id": REDIS_PLAN})).await;
    assert_eq!(status, reqwest::StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"], "PlanChangeNotSupported", "{body}");
    assert_eq!(app.state().store.instance_by_guid(&id).await.unwrap().plan_id, REDIS_CLUSTER_PLAN);

    // svcdash's own restart leaves a healthy cluster as it was: the same master,
    // every node with every key, no failover.
    app.stop().await;
    let app = TestApp::start_in(dir.path(), config(dir.path())).await;
    let nodes = specs(&app, &id).await;
    app.wait_for("the replicas to follow the master again", Duration::from_secs(60), || {
        let (app, nodes) = (&app, &nodes);
        async move {
            for spec in nodes {
                if !app.state().deployer.in_sync(spec).await.unwrap_or(false) || dbsize(spec).await != 1001 {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    assert_eq!(master_port(&new).await, Some(u64::from(nodes[0].port)), "no failover happened");
    for spec in &nodes {
        let role = app.state().deployer.role(spec).await.unwrap();
        let expected = if spec.index == 0 { engines::Role::Primary } else { engines::Role::Replica };
        assert_eq!(role, expected, "node {}", spec.index);
    }
}

/// Restarts the instance through the API (a rolling restart for a cluster) and
/// waits until it is done and the instance available.
pub async fn restart(app: &TestApp, id: &str) {
    let (status, body) = app.api(reqwest::Method::PATCH, &format!("/v1/instances/{id}/restart")).await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body}");
    let instance = app.state().store.instance_by_guid(id).await.unwrap();
    app.wait_for("the restart", Duration::from_secs(180), || {
        let store = app.state().store.clone();
        async move { store.pending_job(instance.id).await.unwrap().is_none().then_some(()) }
    })
    .await;
    let after = app.state().store.instance(instance.id).await.unwrap();
    assert_eq!(after.state, store::InstanceState::Available, "{:?}", after.state_reason);
}

/// The parachute of one node, as a collection sees it when that node's persistent
/// disk is past its threshold. On this machine every node's folder is on the same
/// disk, so the threshold (set under the disk's real usage) is given to one node's
/// check only: that is the one thing not as in production, where nodes have disks
/// of their own.
async fn trip(app: &TestApp, instance: &store::Instance, index: i64) -> bool {
    use server::metrics::{parachute, points::WatchedDisk};
    let node = app.state().store.nodes(instance.id).await.unwrap().into_iter().find(|n| n.index == index).unwrap();
    let disks = parachute::node_disks(app.state(), &instance.local_name, index);
    let path = app.state().config.instances_dir().join(&instance.local_name);
    let watched = [WatchedDisk { name: "persistent", threshold: threshold_under_usage(&path), disk: disks.persistent }];
    let instance = app.state().store.instance(instance.id).await.unwrap();
    parachute::check(app.state(), &instance, &node, &watched).await.unwrap()
}

#[tokio::test]
async fn a_full_disk_stops_one_node_and_the_cluster_serves_until_every_node_is_stopped() {
    let dir = data_dir();
    let mut app = TestApp::start_in(dir.path(), config(dir.path())).await;
    let id = app.provision(REDIS_SERVICE, REDIS_CLUSTER_PLAN, "org-a").await;
    let creds = app.bind(&id, REDIS_SERVICE, REDIS_CLUSTER_PLAN).await;
    let instance = app.state().store.instance_by_guid(&id).await.unwrap();
    let specs = app.state().node_specs(&instance).await.unwrap();
    let master = master_port(&creds).await.unwrap();
    let replicas: Vec<i64> = specs.iter().filter(|s| u64::from(s.port) != master).map(|s| s.index).collect();
    let master_index = specs.iter().find(|s| u64::from(s.port) == master).unwrap().index;
    assert_eq!(replicas.len(), 2);

    // A replica's disk fills: that node stops, the instance keeps serving.
    assert!(trip(&app, &instance, replicas[0]).await, "the parachute acted");
    assert_eq!(engine_pid(app.state(), &specs[replicas[0] as usize]).await, None, "the full node's engine stopped");
    for index in [master_index, replicas[1]] {
        assert!(engine_pid(app.state(), &specs[index as usize]).await.is_some(), "node {index} still runs");
    }
    let serving = |state| matches!(state, store::InstanceState::Available | store::InstanceState::Provisioned);
    let now = app.state().store.instance(instance.id).await.unwrap();
    assert!(serving(now.state), "{:?}: {:?}", now.state, now.state_reason);
    let mut conn = connect(&creds, master_port(&creds).await.unwrap()).await.unwrap();
    redis::cmd("SET").arg("k").arg("written with a node stopped").query_async::<()>(&mut conn).await.unwrap();
    let overview = crate::pages::page(&app, &app.token, &format!("/service-instances/{id}")).await;
    let row = overview.split(&format!(r#"<tr data-node="{}">"#, replicas[0])).nth(1).unwrap();
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("stopped by the parachute (persistent disk)"), "{row}");
    // The API tells the same to curl: each node's role, since when, and the held one.
    let (status, body) = app.api(reqwest::Method::GET, &format!("/v1/instances/{id}")).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let nodes = body["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{body}");
    for node in nodes {
        let index = node["index"].as_i64().unwrap();
        // The stopped node answers no more: `unknown` once an engine check asked it.
        let expected: &[&str] = match index {
            i if i == master_index => &["master"],
            i if i == replicas[0] => &["replica", "unknown"],
            _ => &["replica"],
        };
        assert!(expected.contains(&node["role"].as_str().unwrap()), "{node}");
        assert!(node["role_since"].is_string(), "{node}");
        let held = (index == replicas[0]).then_some("persistent");
        assert_eq!(node["parachute_disk"].as_str(), held, "{node}");
    }
    assert_eq!(body["parachute_activated"], true, "{body}");
    let held = format!("Parachute activated: the engine of node {} is stopped", replicas[0]);
    assert!(
        overview.contains(&held) && overview.contains("The other nodes serve the instance meanwhile"),
        "{overview}"
    );
    // A backup comes from the replica that runs.
    let backup = app.create_backup(&id).await;
    app.wait_done(&format!("/v1/instances/{id}/backups/{backup}")).await;
    let taken = app.state().store.backup_by_seq(instance.id, backup).await.unwrap();
    assert_eq!(taken.job.node_index, Some(replicas[1]), "the backup came from the replica that runs");
    // A restore needs every node: refused at once, saying which node and why.
    let (status, refused) =
        app.api(reqwest::Method::POST, &format!("/v1/instances/{id}/backups/{backup}/restore")).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (reqwest::StatusCode::CONFLICT, Some("ParachuteActive")),
        "{refused}"
    );
    let why = refused["description"].as_str().unwrap();
    assert!(why.contains(&format!("node {}", replicas[0])) && why.contains("restart the instance"), "{why}");

    // The other replica, then the master: only once no node runs is the instance failed.
    assert!(trip(&app, &instance, replicas[1]).await);
    assert!(serving(app.state().store.instance(instance.id).await.unwrap().state));
    assert!(trip(&app, &instance, master_index).await);
    let failed = app.state().store.instance(instance.id).await.unwrap();
    assert_eq!(failed.state, store::InstanceState::Failed);
    assert!(failed.state_reason.as_deref().unwrap().contains("parachute"), "{:?}", failed.state_reason);
    for spec in &specs {
        assert_eq!(engine_pid(app.state(), spec).await, None, "node {} stopped", spec.index);
    }
    let overview = crate::pages::page(&app, &app.token, &format!("/service-instances/{id}")).await;
    assert!(overview.contains("Parachute activated: the engine of nodes 0, 1, 2 is stopped"), "{overview}");
    assert!(!overview.contains("The other nodes serve"), "{overview}");

    // The disks have room again (the real thresholds are off here): a restart
    // brings every node back, released, with the data.
    restart(&app, &id).await;
    assert!(app.state().store.nodes(instance.id).await.unwrap().iter().all(|n| n.parachute.is_none()));
    let mut conn = connect(&creds, master_port(&creds).await.unwrap()).await.unwrap();
    let value: String = redis::cmd("GET").arg("k").query_async(&mut conn).await.unwrap();
    assert_eq!(value, "written with a node stopped");
    app.stop().await;
}

/// Every node of a cluster whose nodes are members (MariaDB, RabbitMQ) reports
/// itself as one with all three nodes in step: in the history, in the Graphite
/// lines (`short_name` is the engine's namespace) and on its Metrics tab.
pub async fn check_member_figures(app: &TestApp, id: &str, short_name: &str) {
    let history = &app.state().metrics.history;
    app.wait_for("every member's replication figures", Duration::from_secs(60), || async move {
        (0..3)
            .all(|node| {
                history.sampled(id, node, 10).pop().is_some_and(|newest| {
                    newest.get("replication.role") == Some(2) && newest.get("replication.members") == Some(3)
                })
            })
            .then_some(())
    })
    .await;
    let instance = app.state().store.instance_by_guid(id).await.unwrap();
    let lines = server::metrics::collect(app.state()).await.unwrap();
    for node in 0..3 {
        let namespace = server::metrics::namespace(app.state(), &instance, short_name, node);
        assert!(lines.contains(&format!("{namespace}.replication.role 2 ")), "{lines}");
        assert!(lines.contains(&format!("{namespace}.replication.members 3 ")), "{lines}");
    }
    let metrics = crate::pages::page(app, &app.token, &format!("/service-instances/{id}/metrics?node=1")).await;
    assert!(metrics.contains(r#"<dd id="replication">member; 3 nodes of the cluster in step with it"#), "{metrics}");
}
