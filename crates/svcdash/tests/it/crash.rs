//! svcdash itself killed with SIGKILL during a backup, or while PostgreSQL hands it
//! write-ahead log, then started again.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

/// `svcdash serve` as a child process; SIGTERM (and a wait of up to two minutes,
/// then SIGKILL) when dropped.
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

    fn signal(&self, signal: Signal) {
        nix::sys::signal::kill(Pid::from_raw(self.0.id() as i32), signal).unwrap();
    }

    /// SIGTERM, then waits up to `timeout` for svcdash to exit; false if it did not
    /// (it is killed then). The wait blocks the thread: a test's runtime has nothing
    /// to do meanwhile, and an unbounded wait here turned a failing test into one
    /// that hung without a word (its panic message is printed only once it ends).
    fn stop_within(&mut self, timeout: Duration) -> bool {
        if !matches!(self.0.try_wait(), Ok(None)) {
            return true;
        }
        let _ = nix::sys::signal::kill(Pid::from_raw(self.0.id() as i32), Signal::SIGTERM);
        let started = Instant::now();
        while started.elapsed() < timeout {
            if !matches!(self.0.try_wait(), Ok(None)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
        false
    }
}

impl Drop for Svcdash {
    fn drop(&mut self) {
        if !self.stop_within(Duration::from_secs(120)) {
            eprintln!("svcdash did not stop within 120 s of SIGTERM and was killed");
        }
    }
}

/// The `NAME=value` entries of a process's environment.
fn environ(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    raw.split(|b| *b == 0).filter(|v| !v.is_empty()).map(|v| String::from_utf8_lossy(v).into_owned()).collect()
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
        // After "(comm)": state, then the parent's id.
        let parent = stat.rsplit_once(") ").and_then(|(_, rest)| rest.split(' ').nth(1)?.parse::<u32>().ok());
        if parent == Some(pid) {
            found.push(child);
        }
    }
    found
}

/// Runs the command line; it fails the test after two minutes instead of hanging it.
fn cli(data: &Path, args: &[&str]) -> String {
    let child = Command::new(env!("CARGO_BIN_EXE_svcdash"))
        .args(args)
        .env("SVCDASH_DATA", data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = Pid::from_raw(child.id() as i32);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let Ok(out) = rx.recv_timeout(Duration::from_secs(120)) else {
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        panic!("svcdash {args:?} did not finish within 120 s");
    };
    let out = out.unwrap();
    assert!(out.status.success(), "svcdash {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// User `ops` of tenant `org-a`, and an API token of theirs.
fn operator_token(data: &Path) -> String {
    cli(data, &["users", "create", "ops"]);
    cli(data, &["users", "grant", "ops", "--tenant", "org-a"]);
    cli(data, &["token", "--user", "ops"]).trim().to_owned()
}

/// Instance `db1` (PostgreSQL, single-small, org-a, with `flags`), made through the
/// command line of a running svcdash: its id and what `instances show` says.
fn create_postgresql(data: &Path, flags: &[&str]) -> (String, String) {
    let mut args = vec!["instances", "create", "--service", "postgresql", "--plan", "single-small"];
    args.extend(["--tenant", "org-a"]);
    args.extend(flags);
    args.extend(["--wait", "db1"]);
    let created = cli(data, &args);
    assert!(created.contains("state: provisioned"), "{created}");
    let show = cli(data, &["instances", "show", "db1"]);
    let id = show.lines().find_map(|l| l.strip_prefix("id:")).unwrap().trim().to_owned();
    (id, show)
}

/// Asks for backup `seq` of the instance and waits until it finished (done or failed).
async fn backup_and_wait(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    token: &str,
    seq: i64,
    timeout: Duration,
) -> Value {
    let res =
        client.post(format!("{base}/v1/instances/{id}/backups")).header("Authorization", token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let url = format!("{base}/v1/instances/{id}/backups/{seq}");
    wait_for(&format!("backup {seq}"), timeout, &mut || {
        let url = &url;
        async move { get(client, url, token).await.filter(|b| b["status"] != "queued" && b["status"] != "running") }
    })
    .await
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
    let client = crate::helpers::http().build().unwrap();

    let token = operator_token(data);
    assert!(token.starts_with("bearer sd_"), "{token}");
    let slow = [("SVCDASH_BACKUPS__ZSTD_LEVEL", "19"), ("SVCDASH_BACKUPS__ZSTD_WORKERS", "0")];
    let mut first = Svcdash::start(data, port, &slow);
    let (id, show) = create_postgresql(data, &[]);
    assert!(show.contains(&format!("dashboard:  http://127.0.0.1:8080/service-instances/{id}")), "{show}");
    // `serve` started itself again (same process id) with the allocators' settings;
    // the engines it started have a cleared environment.
    // glibc (2.36) cuts the variable at its first `:` in the process's memory once
    // it has read it, so only the first setting shows.
    let tunables = environ(first.0.id()).into_iter().find(|v| v.starts_with("GLIBC_TUNABLES="));
    assert!(
        tunables.as_deref().is_some_and(|v| v.starts_with("GLIBC_TUNABLES=glibc.malloc.arena_max=2")),
        "{tunables:?}"
    );
    assert!(environ(first.0.id()).iter().any(|v| v == "MIMALLOC_PURGE_DELAY=0"));
    let engines = children(first.0.id());
    assert!(!engines.is_empty(), "svcdash started the instance's engine");
    for pid in engines {
        let env = environ(pid);
        assert!(!env.iter().any(|v| v.starts_with("GLIBC_TUNABLES") || v.starts_with("MIMALLOC_")), "process {pid}");
    }

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
    let done = backup_and_wait(&client, &base, &id, &token, 2, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "done", "{done}");
}

/// svcdash killed with SIGKILL in the middle of a write-ahead log hand-over loses
/// no file: PostgreSQL was never told that one was archived, keeps it with those
/// written while svcdash was away, and hands them all over once svcdash is back.
/// The window then runs without a gap past the last commit (and says so only once
/// the archive holds it), and a restore to that moment brings back every row.
#[tokio::test]
async fn svcdash_killed_while_archiving_loses_no_write_ahead_log() {
    let dir = data_dir();
    let data = dir.path();
    let _accounts = AccountsGuard(data.to_path_buf());
    let port = engines::free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = crate::helpers::http().timeout(Duration::from_secs(30)).build().unwrap();
    let token = operator_token(data);
    // Files closed every second keep hand-overs coming; the slow compression makes
    // each take seconds, so that one is under way when svcdash is killed.
    let often = ("SVCDASH_BACKUPS__WAL_ARCHIVE_TIMEOUT_SECS", "1");
    let slow = [often, ("SVCDASH_BACKUPS__ZSTD_LEVEL", "19"), ("SVCDASH_BACKUPS__ZSTD_WORKERS", "0")];
    let mut first = Svcdash::start(data, port, &slow);
    let (id, _) = create_postgresql(data, &["--continuous-archiving"]);
    let res = client
        .put(format!("{base}/v2/service_instances/{id}/service_bindings/b1"))
        .basic_auth(BROKER_USER, Some(BROKER_PASSWORD))
        .header("X-Broker-API-Version", "2.17")
        .json(&serde_json::json!({"service_id": PG_SERVICE, "plan_id": PG_PLAN}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let creds = res.json::<Value>().await.unwrap()["credentials"].clone();
    let mut conn = bounded("connecting", pg(&creds)).await;
    bounded("CREATE TABLE", sqlx::raw_sql("CREATE TABLE big (id int PRIMARY KEY, body text)").execute(&mut conn))
        .await
        .unwrap();
    let done = backup_and_wait(&client, &base, &id, &token, 1, Duration::from_secs(180)).await;
    assert_eq!(done["status"], "done", "{done}");

    // About 8 MiB of log per batch: files fill faster than svcdash stores them.
    let mut committed = 0;
    for n in 0..6 {
        big_batch(&mut conn, n).await;
        committed += 10_000;
    }
    // Stopped (SIGSTOP), svcdash can neither store the file nor answer: one not in the
    // store then is one PostgreSQL has not been told is archived.
    let started = Instant::now();
    let in_flight = loop {
        if let Some(name) = handing_over(data) {
            first.signal(Signal::SIGSTOP);
            if stored(data, &name).is_none() {
                break name;
            }
            first.signal(Signal::SIGCONT);
        }
        assert!(started.elapsed() < Duration::from_secs(60), "PostgreSQL handed nothing over: {}", pg_log(data));
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    first.kill();

    // svcdash is gone: PostgreSQL goes on writing, and keeps what it cannot hand over.
    for n in 6..10 {
        big_batch(&mut conn, n).await;
        committed += 10_000;
    }
    let last_file: String = bounded(
        "the last file",
        sqlx::query_scalar("SELECT pg_walfile_name(pg_current_wal_lsn())").fetch_one(&mut conn),
    )
    .await
    .unwrap();
    drop(conn);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let last = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(600)).await;

    let mut second = Svcdash::start(data, port, &[often]);
    let pitr = format!("{base}/v1/instances/{id}/pitr");
    let started = Instant::now();
    let window = loop {
        let window = get(&client, &pitr, &token).await;
        let end = window.as_ref().and_then(|w| chrono::DateTime::parse_from_rfc3339(w["end_time"].as_str()?).ok());
        if let Some(window) = window.as_ref().filter(|_| end.is_some_and(|end| end >= last)) {
            break window.clone();
        }
        let waited = started.elapsed() < Duration::from_secs(180);
        assert!(waited, "the window did not reach {last}: {window:?}\n{}", pg_log(data));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Checked after the window was read, and files are only ever added: a window
    // that reached the last commit before the archive held it fails here.
    assert!(stored(data, &last_file).is_some(), "the window reaches past the last commit in {last_file}: {window}");
    assert!(stored(data, &in_flight).is_some(), "{in_flight}, handed over when svcdash was killed, is archived");
    assert_eq!(window["gaps"], serde_json::json!([]), "no file was lost: {window}");

    let body = serde_json::json!({"target_time": api_types::timestamp::format(&last)});
    let res = client.post(format!("{pitr}/restore")).header("Authorization", &token).json(&body).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let restore = format!("{base}/v1/instances/{id}/restores/1");
    let finished = wait_for("the restore", Duration::from_secs(180), &mut || {
        let (client, restore, token) = (&client, &restore, &token);
        async move { get(client, restore, token).await.filter(|r| r["status"] == "done" || r["status"] == "failed") }
    })
    .await;
    assert_eq!(finished["status"], "done", "{finished}");
    let mut conn = bounded("connecting", pg(&creds)).await;
    let count: i64 =
        bounded("counting", sqlx::query_scalar("SELECT count(*) FROM big").fetch_one(&mut conn)).await.unwrap();
    assert_eq!(count, committed, "every committed row came back");
    drop(conn);
    // It waits for the backup the restore queued, whose base backup waits for its
    // log to be archived.
    assert!(second.stop_within(Duration::from_secs(120)), "svcdash did not stop");
}

async fn big_batch(conn: &mut sqlx::PgConnection, n: i32) {
    let sql = format!(
        "INSERT INTO big SELECT g, repeat(md5(g::text), 16) FROM generate_series({}, {}) g",
        n * 10_000 + 1,
        (n + 1) * 10_000
    );
    bounded("a batch", sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(conn)).await.unwrap();
}

/// `what`, or a failed test after a minute instead of a hung one.
async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f).await.unwrap_or_else(|_| panic!("{what} took over a minute"))
}

/// The segment a `svcdash wal-push` of an instance under `data` is handing over.
fn handing_over(data: &Path) -> Option<String> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|proc| {
        let cwd = std::fs::read_link(proc.path().join("cwd")).ok()?;
        let cmdline = std::fs::read(proc.path().join("cmdline")).ok()?;
        let args: Vec<_> = cmdline.split(|b| *b == 0).filter(|a| !a.is_empty()).map(String::from_utf8_lossy).collect();
        let name = args.last()?;
        (cwd.starts_with(data)
            && args.get(1).is_some_and(|a| a == "wal-push")
            && name.len() == 24
            && name.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| name.to_string())
    })
}

/// Where the store holds the write-ahead log file `name`, if it does.
fn stored(data: &Path, name: &str) -> Option<PathBuf> {
    fn find(dir: &Path, file: &str) -> Option<PathBuf> {
        std::fs::read_dir(dir).ok()?.flatten().find_map(|entry| {
            let path = entry.path();
            if path.is_dir() { find(&path, file) } else { (entry.file_name() == file).then_some(path) }
        })
    }
    find(&data.join("backups"), &format!("{name}.zst.age"))
}

/// The end of PostgreSQL's log, for failure messages.
fn pg_log(data: &Path) -> String {
    let instances = std::fs::read_dir(data.join("instances")).into_iter().flatten().flatten();
    let logs = instances.map(|i| i.path().join("node-0/ephemeral/log/pg.log"));
    let text: String = logs.filter_map(|log| std::fs::read_to_string(log).ok()).collect();
    let lines: Vec<_> = text.lines().rev().take(30).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}
