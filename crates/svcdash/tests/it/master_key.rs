//! Rotating the master key: every stored secret is sealed again under a new key,
//! backups made before still restore, bindings still work, and a running
//! `svcdash serve` keeps the rotation from starting.

use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

fn rotate(data: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_svcdash"))
        .args(["master-key", "rotate"])
        .env("SVCDASH_DATA", data)
        .env_remove("SVCDASH_MASTER_KEY")
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test]
async fn every_secret_moves_to_the_new_master_key() {
    let dir = data_dir();
    let data = dir.path();
    let mut app = TestApp::start_in(data, config(data)).await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let creds = app.bind(&id, REDIS_SERVICE, REDIS_PLAN).await;
    let mut conn = redis(&creds).await;
    let _: () = redis::cmd("SET").arg("k").arg("v1").query_async(&mut conn).await.unwrap();
    let generated = app.create_backup(&id).await;
    app.wait_finished(&format!("/v1/instances/{id}/backups/{generated}")).await;
    let key = json!({"encryption_key": "a personal key to rotate around"}).to_string();
    app.api_as(&app.token, Method::PATCH, &format!("/v1/instances/{id}/backups-config"), Some(&key)).await;
    let personal = app.create_backup(&id).await;
    app.wait_finished(&format!("/v1/instances/{id}/backups/{personal}")).await;
    app.stop().await;
    let before = std::fs::read_to_string(data.join("master.key")).unwrap();

    // Not while svcdash serves this data folder.
    let port = engines::free_port().unwrap();
    let mut serving = Command::new(env!("CARGO_BIN_EXE_svcdash"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("SVCDASH_DATA", data)
        .env("SVCDASH_BACKUPS__SCHEDULE", "")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("svcdash serve to listen", Duration::from_secs(30), &mut || async move {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
    })
    .await;
    let (ok, out) = rotate(data);
    assert!(!ok && out.contains("stop it first"), "{out}");
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(serving.id() as i32), nix::sys::signal::Signal::SIGTERM);
    assert!(serving.wait().unwrap().success());
    assert_eq!(std::fs::read_to_string(data.join("master.key")).unwrap(), before, "refused means untouched");

    let (ok, out) = rotate(data);
    assert!(ok && out.contains("re-sealed"), "{out}");
    let after = std::fs::read_to_string(data.join("master.key")).unwrap();
    assert_ne!(after, before);
    assert!(after.starts_with("AGE-SECRET-KEY-1"));
    assert!(!data.join("master.key.new").exists());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(data.join("master.key")).unwrap().permissions().mode() & 0o777, 0o600);

    // Everything sealed before opens with the new key.
    let app = TestApp::start_in(data, config(data)).await;
    let uri = creds["uri"].as_str().unwrap().to_owned();
    wait_for("the instance's engine to be back", Duration::from_secs(60), &mut || {
        let uri = uri.clone();
        async move {
            let mut conn = redis::Client::open(uri).ok()?.get_multiplexed_async_connection().await.ok()?;
            redis::cmd("SET").arg("k").arg("changed").query_async::<()>(&mut conn).await.ok()
        }
    })
    .await;
    for backup in [generated, personal] {
        let restore = app.restore(&id, backup).await;
        app.wait_done(&format!("/v1/instances/{id}/restores/{restore}")).await;
    }
    let res = app.client.get(format!("{}/v1/instances/{id}/backups/{personal}/download", app.base));
    assert_eq!(res.header("Authorization", &app.token).send().await.unwrap().status(), StatusCode::OK);
    // A new binding needs the engine's admin password, sealed before the rotation.
    let fresh = app.bind(&id, REDIS_SERVICE, REDIS_PLAN).await;
    let mut conn = redis(&fresh).await;
    let value: String = redis::cmd("GET").arg("k").query_async(&mut conn).await.unwrap();
    assert_eq!(value, "v1", "restored");
}
