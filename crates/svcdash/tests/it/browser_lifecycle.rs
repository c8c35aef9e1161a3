//! The Metrics and Updates pages and the Restart / Recreate buttons in a real
//! browser (tests/support/lifecycle.mjs): what the pages show agrees with the
//! machine, each operation asks first and really happens (new engine process,
//! new version, data kept), and an activated parachute is shown and explained.

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::Method;
use serde_json::Value;

use crate::helpers::*;

async fn run_browser(base: &str, id: &str, phase: &str) -> Value {
    let mut script = browser_script("lifecycle.mjs", base, id);
    script.env("PHASE", phase);
    browser_findings(script).await.unwrap_or_else(|e| panic!("the browser test ({phase}) failed:\n{e}"))
}

fn df_mib(field: &str, path: &Path) -> u64 {
    let out = Command::new("df").args(["-B1", &format!("--output={field}")]).arg(path).output().unwrap();
    let bytes: f64 = String::from_utf8(out.stdout).unwrap().lines().nth(1).unwrap().trim().parse().unwrap();
    (bytes / (1024.0 * 1024.0)).round() as u64
}

#[tokio::test]
async fn a_manager_restarts_recreates_and_updates_in_the_browser() {
    let dir = data_dir();
    let mut old = config(dir.path());
    old.catalog = Some(catalog_with_version(dir.path(), "redis", "7.0.0"));
    let mut app = TestApp::start_in(dir.path(), old).await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let creds = app.bind(&id, REDIS_SERVICE, REDIS_PLAN).await;
    let mut conn = redis(&creds).await;
    let _: () = redis::cmd("SET").arg("kept").arg("through it all").query_async(&mut conn).await.unwrap();
    drop(conn);
    app.stop().await;

    let mut new = config(dir.path());
    new.catalog = Some(catalog_with_version(dir.path(), "redis", "7.1.0"));
    new.metrics.interval_secs = 1;
    new.parachute.persistent_threshold = 100;
    let mut app = TestApp::start_in(dir.path(), new).await;
    browser_sign_in(&app).await;
    let spec = app.node(&id).await;
    // svcdash answers at once and starts the engines meanwhile.
    let pid_before = app
        .wait_for("the engine to start", std::time::Duration::from_secs(60), || async {
            engine_pid(app.state(), &spec).await
        })
        .await;

    let findings = run_browser(&app.base, &id, "lifecycle").await;

    assert!(findings["updateNotice"].as_str().unwrap().contains("redis 7.1.0"), "{findings}");
    // Sizes in MiB (1024²), used / available; the persistent disk's size is df's.
    let persistent = app.layout(&id).await.persistent();
    let shown = findings["gauges"]["Persistent disk"].as_str().unwrap();
    let (_, available) = shown.split_once(" / ").unwrap();
    assert_eq!(available, format!("{} MiB", df_mib("size", &persistent)), "{findings}");
    for gauge in ["Memory", "Swap", "System disk", "Ephemeral disk", "Persistent disk"] {
        assert!(findings["gauges"][gauge].as_str().is_some_and(|g| g.ends_with(" MiB")), "{gauge}: {findings}");
    }
    assert_eq!(findings["load"].as_str().unwrap().split(" / ").count(), 3, "{findings}");
    assert!(findings["cpu"].as_str().unwrap().ends_with(" %"), "{findings}");
    assert!(findings["engine"].as_str().unwrap().starts_with("running: 1 process"), "{findings}");
    assert_eq!(findings["charts"], 5, "{findings}");
    assert!(findings["parachuteRows"][0].as_str().unwrap().contains("stops the engine at 100 %"), "{findings}");
    assert!(findings["restartExplains"].as_str().unwrap().contains("Its data, configuration and logs stay"));
    assert!(findings["recreateExplains"].as_str().unwrap().contains("kept persistent data"));
    assert_eq!(
        (findings["afterRestart"].as_str(), findings["afterRecreate"].as_str()),
        (Some("available"), Some("available"))
    );
    assert_eq!((findings["versionBefore"].as_str(), findings["versionAfter"].as_str()), (Some("7.0.0"), Some("7.1.0")));
    assert_eq!(findings["updatesListed"], serde_json::json!([["redis", "release", "7.1.0"]]));
    assert_eq!(findings["pageErrors"], Value::Array(vec![]));

    // What the browser did, happened, once each: "No" queued nothing.
    let (_, log) = app.api(Method::GET, &format!("/v1/instances/{id}/audit?limit=1000")).await;
    for action in ["instance.restart", "instance.recreate", "instance.update"] {
        let n = log.as_array().unwrap().iter().filter(|e| e["action"] == action && e["outcome"] == "success").count();
        assert_eq!(n, 1, "{action}: {log}");
    }
    assert_ne!(engine_pid(app.state(), &spec).await.expect("runs"), pid_before);
    let (_, overview) = app.api(Method::GET, &format!("/v1/instances/{id}")).await;
    assert_eq!(overview["version"], "7.1.0");
    let mut conn = redis(&creds).await;
    let kept: String = redis::cmd("GET").arg("kept").query_async(&mut conn).await.unwrap();
    assert_eq!(kept, "through it all");
    app.stop().await;

    // A disk over the parachute's threshold.
    let mut tight = config(dir.path());
    tight.catalog = Some(catalog_with_version(dir.path(), "redis", "7.1.0"));
    tight.metrics.interval_secs = 1;
    tight.parachute.persistent_threshold = threshold_under_usage(&persistent);
    let app = TestApp::start_in(dir.path(), tight).await;
    app.wait_for("the parachute", std::time::Duration::from_secs(30), || async {
        let (_, body) = app.api(Method::GET, &format!("/v1/instances/{id}")).await;
        (body["parachute_activated"] == true).then_some(())
    })
    .await;
    let findings = run_browser(&app.base, &id, "parachute").await;
    assert!(findings["alert"].as_str().unwrap().contains("Parachute activated"), "{findings}");
    assert!(findings["reason"].as_str().unwrap().contains("persistent disk"), "{findings}");
    assert_eq!(findings["metricsAlert"], true);
    assert!(findings["parachuteRows"][0].as_str().unwrap().contains("reached"), "{findings}");
    assert_eq!(findings["engine"], "not running");
    assert!(findings["refused"].as_str().unwrap().contains("the parachute keeps node 0 stopped"), "{findings}");
    for name in ["metrics", "recreate-dialog", "updates", "parachute-overview", "parachute-metrics"] {
        let png = std::fs::read(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../target/screenshots/{name}.png")),
        )
        .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name}.png");
    }
}
