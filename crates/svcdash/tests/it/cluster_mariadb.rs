//! MariaDB clusters on Galera, told as a story with real servers: provision three
//! members, bind, write through the binding's hosts in turn (as a connector's
//! sequential mode does), kill -9 the node being written to, keep writing on the
//! next, see the lost node rejoin, back up from another member, restore (one row;
//! the other members copy the restored one), and restart the cluster member by
//! member. The story prints its figures.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Connection;
use store::NodeRole;
use tokio::sync::Mutex;

use crate::cluster_story::{Writes, check_member_figures, roles, rolling_restart, settled_roles, specs, wait_writes};
use crate::helpers::*;

pub const MARIADB_CLUSTER_PLAN: &str = "d3f5b7c9-1e3a-4d5f-b7c9-1e3a5d7f9b33";

const MEMBERS: [Option<NodeRole>; 3] = [Some(NodeRole::Member); 3];

/// The binding's user on the node listening on `port`, bounded so that a write to
/// a lost node fails instead of hanging the loop.
async fn connect(creds: &Value, port: u64) -> Option<sqlx::MySqlConnection> {
    let mut on_node = creds.clone();
    on_node["port"] = port.into();
    tokio::time::timeout(Duration::from_secs(2), mariadb(&on_node)).await.ok()?.ok()
}

async fn exec(conn: &mut sqlx::MySqlConnection, sql: &str) -> Option<()> {
    let run = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(conn);
    tokio::time::timeout(Duration::from_secs(2), run).await.ok()?.ok().map(|_| ())
}

async fn count(creds: &Value, port: u64, table: &str) -> Option<i64> {
    let mut conn = connect(creds, port).await?;
    let query = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}"))).fetch_one(&mut conn);
    tokio::time::timeout(Duration::from_secs(10), query).await.ok()?.ok()
}

/// Inserts n = 1, 2, … into `table` on the first of the binding's hosts that takes
/// it, staying on it until a write fails, until `stop`.
async fn write_loop(table: &'static str, creds: Value, stop: Arc<AtomicBool>, writes: Arc<Mutex<Writes>>) {
    let ports: Vec<u64> = creds["hosts"].as_array().unwrap().iter().map(|h| h["port"].as_u64().unwrap()).collect();
    let mut conn: Option<sqlx::MySqlConnection> = None;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        if conn.is_none() {
            for port in &ports {
                if let Some(c) = connect(&creds, *port).await {
                    conn = Some(c);
                    break;
                }
            }
        }
        let ok = match conn.as_mut() {
            Some(c) => exec(c, &format!("INSERT INTO {table} VALUES ({n})")).await.is_some(),
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
        }
    }
}

/// How many acknowledged rows the node listening on `port` does not have.
async fn lost_rows(creds: &Value, port: u64, table: &str, acknowledged: &[u64]) -> usize {
    let mut conn = connect(creds, port).await.unwrap();
    let rows: Vec<i64> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT n FROM {table}"))).fetch_all(&mut conn).await.unwrap();
    let have: std::collections::HashSet<u64> = rows.into_iter().map(|n| n as u64).collect();
    acknowledged.iter().filter(|n| !have.contains(n)).count()
}

/// Waits until every node holds as many rows of `table`; returns how many.
async fn wait_same_rows(app: &TestApp, creds: &Value, ports: &[u64], table: &str) -> i64 {
    app.wait_for("every node to hold the same rows", Duration::from_secs(60), || async move {
        let first = count(creds, ports[0], table).await?;
        for port in &ports[1..] {
            if count(creds, *port, table).await != Some(first) {
                return None;
            }
        }
        Some(first)
    })
    .await
}

/// Resident memory of the instance's servers, in MiB.
async fn memory_mib(app: &TestApp, instance: &str) -> u64 {
    let i = app.state().store.instance_by_guid(instance).await.unwrap();
    let probe = app.state().deployer.probe().unwrap();
    let mut kib = 0;
    for index in 0..3 {
        let pids = probe.processes(&i.local_name, index).await;
        assert_eq!(pids.len(), 1, "one server a node, no state transfer running: {pids:?}");
        kib += rss_kib(pids[0]);
    }
    kib / 1024
}

/// Another tenant's Galera node on the same host, with a certificate of its own
/// (and trusting the instance's, which is public): it tries to join the instance's
/// cluster for a while. Returns its log.
async fn rogue_node_log(instance_cert: &std::path::Path, galera_ports: &[u16]) -> String {
    let dir = data_dir();
    let root = dir.path();
    std::fs::create_dir(root.join("data")).unwrap();
    let openssl = tokio::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-days", "2", "-subj", "/CN=svcdash galera", "-keyout"])
        .arg(root.join("key.pem"))
        .arg("-out")
        .arg(root.join("cert.pem"))
        .output()
        .await
        .unwrap();
    assert!(openssl.status.success(), "{}", String::from_utf8_lossy(&openssl.stderr));
    let ports: Vec<u16> = (0..4).map(|_| engines::free_port().unwrap()).collect();
    let members: Vec<String> = galera_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let config = format!(
        "[mysqld]\ndatadir={root}/data\nport={}\nbind-address=127.0.0.1\nsocket={root}/s.sock\n\
         log-error={root}/err.log\nwsrep_on=ON\nwsrep_provider=/usr/lib/galera/libgalera_smm.so\n\
         wsrep_cluster_address=gcomm://{}\nwsrep_node_address=127.0.0.1:{}\n\
         wsrep_provider_options=\"gmcast.listen_addr=tcp://127.0.0.1:{};ist.recv_addr=127.0.0.1:{};\
         socket.ssl_key={root}/key.pem;socket.ssl_cert={root}/cert.pem;socket.ssl_ca={}\"\n\
         wsrep_sst_receive_address=127.0.0.1:{}\nbinlog_format=ROW\n",
        ports[0],
        members.join(","),
        ports[1],
        ports[1],
        ports[2],
        instance_cert.display(),
        ports[3],
        root = root.display(),
    );
    std::fs::write(root.join("rogue.cnf"), config).unwrap();
    let mut rogue = tokio::process::Command::new("/usr/sbin/mariadbd")
        .arg(format!("--defaults-file={}", root.join("rogue.cnf").display()))
        .arg("--user=root")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(12)).await;
    let _ = rogue.kill().await;
    std::fs::read_to_string(root.join("err.log")).unwrap_or_default()
}

#[tokio::test]
async fn a_galera_cluster_loses_no_acknowledged_write_when_a_node_is_lost_and_restores_on_every_node() {
    let dir = data_dir();
    let mut config = config(dir.path());
    config.engines.check_interval_secs = 1;
    config.metrics.interval_secs = 1;
    let mut app = TestApp::start_in(dir.path(), config).await;
    app.keep_dir(dir);

    let provisioned = Instant::now();
    let id = app.provision(MARIADB_SERVICE, MARIADB_CLUSTER_PLAN, "org-a").await;
    let provision_took = provisioned.elapsed();
    settled_roles(&app, &id, &MEMBERS).await;
    let overview = crate::pages::page(&app, &app.token, &format!("/service-instances/{id}")).await;
    assert_eq!(overview.matches(r#"class="badge role-member">member</span>"#).count(), 3, "{overview}");

    let creds = app.bind(&id, MARIADB_SERVICE, MARIADB_CLUSTER_PLAN).await;
    let nodes = specs(&app, &id).await;
    let ports: Vec<u64> = nodes.iter().map(|s| u64::from(s.port)).collect();
    let hosts: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    assert!(creds["uri"].as_str().unwrap().contains(&hosts.join(",")), "{creds}");
    assert!(creds["jdbcUrl"].as_str().unwrap().starts_with("jdbc:mariadb:sequential://"), "{creds}");
    assert_eq!(creds["hosts"].as_array().unwrap().len(), 3, "{creds}");

    // Another tenant's node cannot join: the members refuse its certificate.
    let i = app.state().store.instance_by_guid(&id).await.unwrap();
    let galera_ports: Vec<u16> = nodes.iter().map(|s| s.port_named("galera").unwrap()).collect();
    let cert = app.data.join("instances").join(&i.local_name).join("galera-tls/cert.pem");
    let log = rogue_node_log(&cert, &galera_ports).await;
    assert!(log.contains("unknown ca"), "the members refused the rogue node's certificate: {log}");
    assert!(!log.contains("connection established"), "{log}");
    let mut conn = connect(&creds, ports[0]).await.unwrap();
    let (_, size): (String, String) =
        sqlx::query_as("SHOW STATUS LIKE 'wsrep_cluster_size'").fetch_one(&mut conn).await.unwrap();
    assert_eq!(size, "3");

    // The binding's user exists on every member, and every member takes writes.
    let mut first = connect(&creds, ports[0]).await.expect("the binding logs in to node 0");
    exec(&mut first, "CREATE TABLE w (n bigint PRIMARY KEY)").await.unwrap();
    for (i, port) in ports.iter().enumerate() {
        let mut conn = connect(&creds, *port).await.expect("the binding logs in to every node");
        exec(&mut conn, &format!("INSERT INTO w VALUES (-{})", i + 1)).await.expect("every member takes writes");
    }
    assert_eq!(wait_same_rows(&app, &creds, &ports, "w").await, 3);

    // Node 0, the one written to, is lost: the writer goes on with the next host.
    let (stop, writes) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Writes::default())));
    let writer = tokio::spawn(write_loop("w", creds.clone(), stop.clone(), writes.clone()));
    wait_writes(&app, &writes, 100, "writes before the kill").await;
    let pid = engine_pid(app.state(), &nodes[0]).await.unwrap();
    let killed = Instant::now();
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    let acked_before_kill = writes.lock().await.acknowledged.len();
    wait_writes(&app, &writes, acked_before_kill + 50, "writes on another member").await;
    let writing_again = killed.elapsed();
    app.wait_for("the lost node to rejoin", Duration::from_secs(120), || {
        let (app, id) = (&app, &id);
        async move {
            let new_pid = engine_pid(app.state(), &specs(app, id).await[0]).await;
            (new_pid.is_some_and(|p| p != pid) && roles(app, id).await == MEMBERS).then_some(())
        }
    })
    .await;
    let rejoined_after = killed.elapsed();
    let acked = writes.lock().await.acknowledged.len();
    wait_writes(&app, &writes, acked + 20, "writes after the rejoin").await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let rows = wait_same_rows(&app, &creds, &ports, "w").await;
    let writes = writes.lock().await;
    let last_failure = writes.failures.iter().filter(|t| **t >= killed).max().copied();
    let unavailable = last_failure.map_or(Duration::ZERO, |t| t.duration_since(killed));
    let lost = lost_rows(&creds, ports[0], "w", &writes.acknowledged).await;
    println!(
        "mariadb galera cluster: provisioned in {:.1} s; node lost: writing again after {:.1} s (writes failing for \
         {:.1} s), node back in the cluster after {:.1} s; {} writes acknowledged, {lost} of them lost, {} failed",
        provision_took.as_secs_f64(),
        writing_again.as_secs_f64(),
        unavailable.as_secs_f64(),
        rejoined_after.as_secs_f64(),
        writes.acknowledged.len(),
        writes.failed
    );
    assert_eq!(lost, 0, "a commit returns once every member certified it");
    // A write that timed out may still have committed; nothing else is there.
    let acked = writes.acknowledged.len() as i64 + 3;
    assert!(rows >= acked && rows <= acked + writes.failed as i64, "{rows} rows for {acked} acknowledged writes");
    drop(writes);

    // Replication figures: every node a member, all three in step.
    check_member_figures(&app, &id, "mariadb").await;

    // A backup comes from a member other than the one svcdash writes to.
    let backup = app.create_backup(&id).await;
    app.wait_done(&format!("/v1/instances/{id}/backups/{backup}")).await;
    let i = app.state().store.instance_by_guid(&id).await.unwrap();
    let stored = app.state().store.backups(i.id).await.unwrap();
    let taken_from = stored.iter().find(|b| b.seq == backup).unwrap().job.node_index.unwrap();
    assert_ne!(taken_from, 0, "the backup was taken from another member");

    // A change after the backup, then a restore: once (one row), on node 0; the
    // other members copy it and hold exactly the restored data.
    let mut conn = connect(&creds, ports[1]).await.unwrap();
    exec(&mut conn, "INSERT INTO w VALUES (-100); CREATE TABLE after_backup (x int)").await.unwrap();
    drop(conn);
    let restore = app.restore(&id, backup).await;
    app.wait_done(&format!("/v1/instances/{id}/restores/{restore}")).await;
    let restored = app.state().store.restores(i.id).await.unwrap();
    let restored = restored.iter().find(|r| r.seq == restore).unwrap();
    let restored_nodes: Vec<i64> = restored.jobs.iter().map(|j| j.node_index.unwrap()).collect();
    assert_eq!(restored_nodes, [0], "a master-only restore runs once");
    settled_roles(&app, &id, &MEMBERS).await;
    assert_eq!(wait_same_rows(&app, &creds, &ports, "w").await, rows, "every member has the backup's rows");
    for port in &ports {
        let mut conn = connect(&creds, *port).await.expect("the binding logs in after the restore");
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'app' AND table_name = 'after_backup'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(left, 0, "the node on port {port} still has what was made after the backup");
        exec(&mut conn, &format!("INSERT INTO w VALUES (-{})", 200 + port)).await.expect("every member takes writes");
    }

    // A rolling restart with a client writing: one member at a time; every
    // server is new afterwards and nothing acknowledged is lost.
    let (stop, writes) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Writes::default())));
    exec(&mut connect(&creds, ports[0]).await.unwrap(), "CREATE TABLE r (n bigint PRIMARY KEY)").await.unwrap();
    let writer = tokio::spawn(write_loop("r", creds.clone(), stop.clone(), writes.clone()));
    wait_writes(&app, &writes, 50, "writes before the restart").await;
    let took = rolling_restart(&app, &id, &nodes).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    settled_roles(&app, &id, &MEMBERS).await;
    wait_same_rows(&app, &creds, &ports, "r").await;
    let writes = writes.lock().await;
    let lost = lost_rows(&creds, ports[2], "r", &writes.acknowledged).await;
    println!(
        "mariadb galera cluster rolling restart: {:.1} s; {} writes acknowledged, {lost} of them lost, {} failed",
        took.as_secs_f64(),
        writes.acknowledged.len(),
        writes.failed
    );
    assert_eq!(lost, 0);
    drop(writes);

    println!("mariadb galera cluster memory: {} MiB for 3 nodes", memory_mib(&app, &id).await);

    // A recreate rolls too: each member's configuration is made again and it
    // rejoins with its data; the binding writes on every member afterwards.
    let (status, body) = app.api(reqwest::Method::PATCH, &format!("/v1/instances/{id}/recreate")).await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body}");
    app.wait_for("the recreate", Duration::from_secs(300), || {
        let (app, i) = (&app, &i);
        async move { app.state().store.pending_job(i.id).await.unwrap().is_none().then_some(()) }
    })
    .await;
    let after = app.state().store.instance(i.id).await.unwrap();
    assert_eq!(after.state, store::InstanceState::Available, "{:?}", after.state_reason);
    settled_roles(&app, &id, &MEMBERS).await;
    for port in &ports {
        let mut conn = connect(&creds, *port).await.expect("the binding logs in after the recreate");
        exec(&mut conn, &format!("INSERT INTO r VALUES (-{})", 300 + port)).await.expect("every member takes writes");
    }

    // svcdash's own restart: the cluster comes back whole (node 0, the last to
    // stop, starts it again) with its data.
    let rows_before = count(&creds, ports[0], "r").await.unwrap();
    let data = app.data.clone();
    app.stop().await;
    let mut again = crate::helpers::config(&data);
    again.engines.check_interval_secs = 1;
    let mut app = TestApp::start_in(&data, again).await;
    app.wait_for("every member with its rows after svcdash's restart", Duration::from_secs(180), || {
        let (app, creds, nodes) = (&app, &creds, &nodes);
        async move {
            for spec in nodes {
                let synced = app.state().deployer.in_sync(spec).await.unwrap_or(false);
                if !synced || count(creds, u64::from(spec.port), "r").await != Some(rows_before) {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    let mut conn = connect(&creds, ports[2]).await.unwrap();
    exec(&mut conn, "INSERT INTO r VALUES (-1)").await.expect("writes after svcdash's restart");
    conn.close().await.unwrap();

    app.deprovision(&id, MARIADB_SERVICE, MARIADB_CLUSTER_PLAN).await;
    app.stop().await;
}

#[tokio::test]
async fn a_single_mariadb_node_becomes_a_galera_cluster_through_the_broker_and_keeps_its_data_and_bindings() {
    let dir = data_dir();
    let mut app = TestApp::start_in(dir.path(), config(dir.path())).await;
    let id = app.provision(MARIADB_SERVICE, MARIADB_PLAN, "org-a").await;
    let old = app.bind_as(&id, "old-binding", MARIADB_SERVICE, MARIADB_PLAN).await;
    let mut conn = connect(&old, old["port"].as_u64().unwrap()).await.unwrap();
    exec(&mut conn, "CREATE TABLE t (n int PRIMARY KEY); INSERT INTO t SELECT seq FROM seq_1_to_1000").await.unwrap();
    conn.close().await.unwrap();

    let last = app.change_plan(&id, MARIADB_SERVICE, MARIADB_CLUSTER_PLAN).await;
    assert_eq!(last["state"], "succeeded", "{last}");
    settled_roles(&app, &id, &MEMBERS).await;
    let nodes = specs(&app, &id).await;
    assert_eq!(old["port"].as_u64(), Some(u64::from(nodes[0].port)), "node 0 kept its address");
    for spec in &nodes {
        // The old binding logs in to every member, which holds the single node's data.
        assert_eq!(count(&old, u64::from(spec.port), "t").await, Some(1000), "node {}", spec.index);
    }
    // Fetched again, the old binding names every member.
    let (status, fetched) = app
        .broker(
            reqwest::Method::GET,
            &format!("/v2/service_instances/{id}/service_bindings/old-binding?service_id={MARIADB_SERVICE}"),
            None,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{fetched}");
    assert_eq!(fetched["credentials"]["hosts"].as_array().map(Vec::len), Some(3), "{fetched}");
    let mut conn = connect(&old, u64::from(nodes[2].port)).await.unwrap();
    exec(&mut conn, "INSERT INTO t VALUES (1001)").await.expect("the old binding writes on a new member");
    conn.close().await.unwrap();
    assert_eq!(count(&old, u64::from(nodes[0].port), "t").await, Some(1001));
    app.stop().await;
}
