//! RabbitMQ clusters, told as a story with real brokers: provision three nodes,
//! bind, see a queue declared without a type become a quorum queue on every node,
//! publish in a loop with the binding's user (through the management API, which
//! confirms each publish) on the nodes in turn, kill -9 the node published to,
//! go on with the next, see the lost node rejoin, back up from another member,
//! restore (one row; the definitions are the cluster's), restart the cluster node
//! by node and restart svcdash. The story prints its figures.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use store::NodeRole;
use tokio::sync::Mutex;

use crate::cluster_story::{Writes, check_member_figures, roles, rolling_restart, settled_roles, specs, wait_writes};
use crate::helpers::*;

pub const RABBITMQ_CLUSTER_PLAN: &str = "e4a6c8e0-2b4d-4e6f-a8c0-2b4d6f8a0c44";

const MEMBERS: [Option<NodeRole>; 3] = [Some(NodeRole::Member); 3];

/// The management API of the node whose management port is `port`, as the binding.
fn api(creds: &Value, port: u16, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .request(method, format!("http://127.0.0.1:{port}/api{path}"))
        .basic_auth(creds["username"].as_str().unwrap(), creds["password"].as_str())
        .timeout(Duration::from_secs(3))
}

/// Publishes `n` to queue `queue` through the node; whether the broker confirmed it.
async fn publish(creds: &Value, port: u16, queue: &str, n: u64) -> bool {
    let body = json!({"properties": {"delivery_mode": 2}, "routing_key": queue, "payload": n.to_string(),
                      "payload_encoding": "string"});
    let sent = api(creds, port, reqwest::Method::POST, "/exchanges/%2F/amq.default/publish").json(&body).send().await;
    match sent {
        Ok(r) if r.status().is_success() => r.json::<Value>().await.is_ok_and(|v| v["routed"] == true),
        _ => false,
    }
}

/// The queue as a node describes it.
async fn queue(creds: &Value, port: u16, name: &str) -> Option<Value> {
    let r = api(creds, port, reqwest::Method::GET, &format!("/queues/%2F/{name}")).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// Publishes n = 1, 2, … to `queue` on the first node that takes it, staying on it
/// until a publish fails, until `stop`.
async fn publish_loop(
    queue: &'static str,
    creds: Value,
    ports: Vec<u16>,
    stop: Arc<AtomicBool>,
    writes: Arc<Mutex<Writes>>,
) {
    let mut at = 0;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let ok = publish(&creds, ports[at], queue, n).await;
        let mut w = writes.lock().await;
        if ok {
            w.acknowledged.push(n);
        } else {
            w.failed += 1;
            w.failures.push(Instant::now());
            at = (at + 1) % ports.len();
            drop(w);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Waits until the queue holds every confirmed message, as node `port` counts them
/// (the count is refreshed every few seconds); returns how many it holds.
async fn wait_messages(app: &TestApp, creds: &Value, port: u16, name: &str, confirmed: usize) -> u64 {
    app.wait_for("the queue to count every confirmed message", Duration::from_secs(60), || async move {
        let held = queue(creds, port, name).await?["messages"].as_u64()?;
        (held >= confirmed as u64).then_some(held)
    })
    .await
}

/// Resident memory of every process of the instance's nodes, in MiB; no process
/// is counted for two nodes.
async fn memory_mib(app: &TestApp, instance: &str) -> u64 {
    let i = app.state().store.instance_by_guid(instance).await.unwrap();
    let probe = app.state().deployer.probe().unwrap();
    let (mut kib, mut seen) = (0, std::collections::HashSet::new());
    for index in 0..3 {
        for pid in probe.processes(&i.local_name, index).await {
            assert!(seen.insert(pid), "process {pid} counted for two nodes");
            kib += rss_kib(pid);
        }
    }
    kib / 1024
}

#[tokio::test]
async fn a_rabbitmq_cluster_loses_no_confirmed_message_when_a_node_is_lost_and_restores_once() {
    let dir = data_dir();
    let mut config = config(dir.path());
    config.engines.check_interval_secs = 1;
    config.metrics.interval_secs = 1;
    let mut app = TestApp::start_in(dir.path(), config).await;
    app.keep_dir(dir);

    let provisioned = Instant::now();
    let id = app.provision(RABBITMQ_SERVICE, RABBITMQ_CLUSTER_PLAN, "org-a").await;
    let provision_took = provisioned.elapsed();
    settled_roles(&app, &id, &MEMBERS).await;
    let creds = app.bind(&id, RABBITMQ_SERVICE, RABBITMQ_CLUSTER_PLAN).await;
    let nodes = specs(&app, &id).await;
    let management: Vec<u16> = nodes.iter().map(|s| s.port_named("management").unwrap()).collect();
    assert_eq!(creds["uris"].as_array().map(Vec::len), Some(3), "{creds}");
    assert_eq!(creds["hosts"].as_array().map(Vec::len), Some(3), "{creds}");

    // A queue declared without a type is a quorum queue with a member on each node.
    let declared = api(&creds, management[0], reqwest::Method::PUT, "/queues/%2F/w").json(&json!({"durable": true}));
    assert!(declared.send().await.unwrap().status().is_success());
    let w = queue(&creds, management[2], "w").await.expect("every node knows the queue");
    assert_eq!(w["type"], "quorum", "{w}");
    assert_eq!(w["members"].as_array().map(Vec::len), Some(3), "{w}");

    // Node 0, the one published to, is lost: the publisher goes on with the next.
    let (stop, writes) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Writes::default())));
    let writer = tokio::spawn(publish_loop("w", creds.clone(), management.clone(), stop.clone(), writes.clone()));
    wait_writes(&app, &writes, 100, "publishes before the kill").await;
    let pid = engine_pid(app.state(), &nodes[0]).await.unwrap();
    let killed = Instant::now();
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    let acked_before_kill = writes.lock().await.acknowledged.len();
    wait_writes(&app, &writes, acked_before_kill + 50, "publishes on another node").await;
    let publishing_again = killed.elapsed();
    app.wait_for("the lost node to rejoin", Duration::from_secs(120), || {
        let (app, id, nodes) = (&app, &id, &nodes);
        async move {
            let new_pid = engine_pid(app.state(), &nodes[0]).await;
            let synced = app.state().deployer.in_sync(&nodes[0]).await.unwrap_or(false);
            (new_pid.is_some_and(|p| p != pid) && synced && roles(app, id).await == MEMBERS).then_some(())
        }
    })
    .await;
    let rejoined_after = killed.elapsed();
    let acked = writes.lock().await.acknowledged.len();
    wait_writes(&app, &writes, acked + 20, "publishes after the rejoin").await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let writes = writes.lock().await;
    let held = wait_messages(&app, &creds, management[0], "w", writes.acknowledged.len()).await;
    let last_failure = writes.failures.iter().filter(|t| **t >= killed).max().copied();
    println!(
        "rabbitmq cluster: provisioned in {:.1} s; node lost: publishing again after {:.1} s (publishes failing for \
         {:.1} s), node back in the cluster after {:.1} s; {} publishes confirmed, {held} messages held, {} failed",
        provision_took.as_secs_f64(),
        publishing_again.as_secs_f64(),
        last_failure.map_or(Duration::ZERO, |t| t.duration_since(killed)).as_secs_f64(),
        rejoined_after.as_secs_f64(),
        writes.acknowledged.len(),
        writes.failed
    );
    // A publish that timed out may still have been taken; nothing else is there.
    assert!(held <= (writes.acknowledged.len() as u64) + writes.failed, "{held} messages");
    drop(writes);

    // Replication figures: every node a member, all three in step.
    check_member_figures(&app, &id, "rabbitmq").await;

    // A backup comes from another member; a change after it, then a restore: once,
    // on node 0, and every node sees the backup's definitions.
    let backup = app.create_backup(&id).await;
    app.wait_done(&format!("/v1/instances/{id}/backups/{backup}")).await;
    let i = app.state().store.instance_by_guid(&id).await.unwrap();
    let stored = app.state().store.backups(i.id).await.unwrap();
    assert_ne!(stored.iter().find(|b| b.seq == backup).unwrap().job.node_index, Some(0), "taken from another member");
    let later =
        api(&creds, management[1], reqwest::Method::PUT, "/queues/%2F/after_backup").json(&json!({"durable": true}));
    assert!(later.send().await.unwrap().status().is_success());
    let restore = app.restore(&id, backup).await;
    app.wait_done(&format!("/v1/instances/{id}/restores/{restore}")).await;
    let restored = app.state().store.restores(i.id).await.unwrap();
    let restored_nodes: Vec<i64> =
        restored.iter().find(|r| r.seq == restore).unwrap().jobs.iter().map(|j| j.node_index.unwrap()).collect();
    assert_eq!(restored_nodes, [0], "a master-only restore runs once");
    for port in &management {
        assert!(queue(&creds, *port, "after_backup").await.is_none(), "node with management port {port}");
        assert_eq!(queue(&creds, *port, "w").await.expect("the backup's queue")["type"], "quorum");
    }
    assert!(publish(&creds, management[2], "w", 0).await, "the binding publishes after the restore");

    // A rolling restart with a publisher: one node at a time; every node's VM is
    // new afterwards and every confirmed message is held.
    let declared = api(&creds, management[0], reqwest::Method::PUT, "/queues/%2F/r").json(&json!({"durable": true}));
    assert!(declared.send().await.unwrap().status().is_success());
    let (stop, writes) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Writes::default())));
    let writer = tokio::spawn(publish_loop("r", creds.clone(), management.clone(), stop.clone(), writes.clone()));
    wait_writes(&app, &writes, 50, "publishes before the restart").await;
    let took = rolling_restart(&app, &id, &nodes).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    settled_roles(&app, &id, &MEMBERS).await;
    let writes = writes.lock().await;
    let held = wait_messages(&app, &creds, management[1], "r", writes.acknowledged.len()).await;
    println!(
        "rabbitmq cluster rolling restart: {:.1} s; {} publishes confirmed, {held} messages held, {} failed",
        took.as_secs_f64(),
        writes.acknowledged.len(),
        writes.failed
    );
    drop(writes);
    println!("rabbitmq cluster memory: {} MiB for 3 nodes", memory_mib(&app, &id).await);

    // A recreate rolls too: each node's configuration is made again and it
    // rejoins with its data.
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
    for port in &management {
        assert!(publish(&creds, *port, "r", 0).await, "node with management port {port} after the recreate");
    }

    // svcdash's own restart: node 0, the last to stop, starts first; the others
    // join it; the messages are still there.
    // (A restarted node counts its queues' messages a few seconds after it starts.)
    let before = app
        .wait_for("the queue's count", Duration::from_secs(30), || async {
            queue(&creds, management[0], "r").await?["messages"].as_u64()
        })
        .await;
    let data = app.data.clone();
    app.stop().await;
    let mut again = crate::helpers::config(&data);
    again.engines.check_interval_secs = 1;
    let mut app = TestApp::start_in(&data, again).await;
    app.wait_for("every node back with the messages after svcdash's restart", Duration::from_secs(180), || {
        let (app, creds, nodes, management) = (&app, &creds, &nodes, &management);
        async move {
            for (spec, port) in nodes.iter().zip(management) {
                let synced = app.state().deployer.in_sync(spec).await.unwrap_or(false);
                // The count read before may be a few seconds old: never fewer.
                if !synced || queue(creds, *port, "r").await?["messages"].as_u64()? < before {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;

    app.deprovision(&id, RABBITMQ_SERVICE, RABBITMQ_CLUSTER_PLAN).await;
    app.stop().await;
}

#[tokio::test]
async fn a_single_rabbitmq_node_becomes_a_cluster_through_the_broker_and_keeps_its_queues_and_bindings() {
    let dir = data_dir();
    let mut app = TestApp::start_in(dir.path(), config(dir.path())).await;
    let id = app.provision(RABBITMQ_SERVICE, RABBITMQ_PLAN, "org-a").await;
    let old = app.bind_as(&id, "old-binding", RABBITMQ_SERVICE, RABBITMQ_PLAN).await;
    let port = specs(&app, &id).await[0].port_named("management").unwrap();
    let declared = api(&old, port, reqwest::Method::PUT, "/queues/%2F/kept").json(&json!({"durable": true}));
    assert!(declared.send().await.unwrap().status().is_success());
    for n in 0..10 {
        assert!(publish(&old, port, "kept", n).await);
    }

    let last = app.change_plan(&id, RABBITMQ_SERVICE, RABBITMQ_CLUSTER_PLAN).await;
    assert_eq!(last["state"], "succeeded", "{last}");
    settled_roles(&app, &id, &MEMBERS).await;
    let nodes = specs(&app, &id).await;
    assert_eq!(old["port"].as_u64(), Some(u64::from(nodes[0].port)), "node 0 kept its address");
    for spec in &nodes {
        // Every node knows the single node's queue and the old binding's user.
        let port = spec.port_named("management").unwrap();
        let kept = queue(&old, port, "kept").await.expect("the queue on every node");
        assert_eq!(kept["name"], "kept");
    }
    let held = wait_messages(&app, &old, nodes[2].port_named("management").unwrap(), "kept", 10).await;
    assert_eq!(held, 10);
    assert!(publish(&old, nodes[1].port_named("management").unwrap(), "kept", 11).await, "the old binding publishes");
    app.stop().await;
}
