//! svcdash itself killed with SIGKILL during a backup, then started again.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

/// `svcdash serve` as a child process; SIGTERM (and a wait) when dropped.
struct Svcdash(Child);

impl Svcdash {
    fn start(data: &Path, port: u16, extra_env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_svcdash"));
        cmd.arg("serve")
            .env("SVCDASH_DATA", data)
            .env("SVCDASH_LISTEN", format!("127.0.0.1:{port}"))
            .env("SVCDASH_BROKER__USERNAME", BROKER_USER)
            .env("SVCDASH_BROKER__PASSWORD", BROKER_PASSWORD)
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("TEST_LOG").is_some() { Stdio::inherit() } else { Stdio::null() });
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        Self(cmd.spawn().unwrap())
    }

    fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Svcdash {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.0.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = self.0.wait();
        }
    }
}

fn cli(data: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_svcdash")).args(args).env("SVCDASH_DATA", data).output().unwrap();
    assert!(out.status.success(), "svcdash {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

async fn get(client: &reqwest::Client, url: &str, token: &str) -> Option<Value> {
    let res = client.get(url).header("Authorization", token).send().await.ok()?;
    (res.status() == StatusCode::OK).then(|| res.json()).map(|f| async { f.await.ok() })?.await
}

#[tokio::test]
async fn svcdash_killed_during_a_backup_never_lists_a_half_written_backup_as_done() {
    let dir = data_dir();
    let data = dir.path();
    let _accounts = AccountsGuard(data.to_path_buf());
    let port = engines::free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    cli(data, &["users", "create", "ops"]);
    cli(data, &["users", "grant", "ops", "--tenant", "org-a"]);
    let token = cli(data, &["token", "--user", "ops"]).trim().to_owned();
    assert!(token.starts_with("bearer sd_"), "{token}");
    let slow = [("SVCDASH_BACKUPS__ZSTD_LEVEL", "19"), ("SVCDASH_BACKUPS__ZSTD_WORKERS", "0")];
    let mut first = Svcdash::start(data, port, &slow);
    let created = cli(
        data,
        &[
            "instances",
            "create",
            "--service",
            "postgresql",
            "--plan",
            "single-small",
            "--tenant",
            "org-a",
            "--wait",
            "db1",
        ],
    );
    assert!(created.contains("state: provisioned"), "{created}");
    let show = cli(data, &["instances", "show", "db1"]);
    let id = show.lines().find_map(|l| l.strip_prefix("id:")).unwrap().trim().to_owned();
    assert!(show.contains(&format!("dashboard:  http://127.0.0.1:8080/service-instances/{id}")), "{show}");

    let (status, creds) = {
        let res = client
            .put(format!("{base}/v2/service_instances/{id}/service_bindings/b1"))
            .basic_auth(BROKER_USER, Some(BROKER_PASSWORD))
            .header("X-Broker-API-Version", "2.17")
            .json(&serde_json::json!({"service_id": PG_SERVICE, "plan_id": PG_PLAN}))
            .send()
            .await
            .unwrap();
        (res.status(), res.json::<Value>().await.unwrap())
    };
    assert_eq!(status, StatusCode::CREATED, "{creds}");
    let mut conn = pg(&creds["credentials"]).await;
    sqlx::raw_sql(
        "CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text) || md5((g * 7)::text), 8) AS body \
         FROM generate_series(1, 100000) g",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);

    let res =
        client.post(format!("{base}/v1/instances/{id}/backups")).header("Authorization", &token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let url = format!("{base}/v1/instances/{id}/backups/1");
    wait_for("backup running", Duration::from_secs(60), &mut || {
        let (client, url, token) = (&client, &url, &token);
        async move { get(client, url, token).await.filter(|b| b["status"] == "running") }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.kill();

    // Started again (at normal speed): the interrupted backup is failed, not done,
    // and nothing of it is in the store.
    let _second = Svcdash::start(data, port, &[]);
    let backup = wait_for("svcdash back", Duration::from_secs(60), &mut || {
        let (client, url, token) = (&client, &url, &token);
        async move { get(client, url, token).await }
    })
    .await;
    assert_eq!(backup["status"], "failed", "{backup}");
    let stored: Vec<_> = std::fs::read_dir(data.join("backups")).map(|d| d.flatten().collect()).unwrap_or_default();
    let objects: usize = stored.iter().map(|d| std::fs::read_dir(d.path()).map(|f| f.count()).unwrap_or(0)).sum();
    assert_eq!(objects, 0, "an interrupted backup left an object");

    // The engine the killed svcdash left behind was taken over: backups work again.
    let res =
        client.post(format!("{base}/v1/instances/{id}/backups")).header("Authorization", &token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let url = format!("{base}/v1/instances/{id}/backups/2");
    let done = wait_for("second backup", Duration::from_secs(120), &mut || {
        let (client, url, token) = (&client, &url, &token);
        async move { get(client, url, token).await.filter(|b| b["status"] != "queued" && b["status"] != "running") }
    })
    .await;
    assert_eq!(done["status"], "done", "{done}");
}
