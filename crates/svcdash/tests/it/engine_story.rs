//! One story, told for every engine from one table: provision → bind → write
//! through the binding → backup → change → restore → the data as at the backup →
//! the download opens with standard tools → a recreate keeps the data →
//! deprovisioning leaves no process, folder or account behind. Real servers only.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;

use crate::helpers::*;

const KEY: &str = "a personal key for the engine story";

#[derive(Debug, Clone, Copy)]
enum Kind {
    Postgresql,
    Redis,
    Mariadb,
    Rabbitmq,
}

struct Story {
    kind: Kind,
    service: &'static str,
    plan: &'static str,
    /// How a download's file name ends.
    extension: &'static str,
}

const STORIES: &[Story] = &[
    Story { kind: Kind::Postgresql, service: PG_SERVICE, plan: PG_PLAN, extension: ".dump.zst.age" },
    Story { kind: Kind::Redis, service: REDIS_SERVICE, plan: REDIS_PLAN, extension: ".rdb.zst.age" },
    Story { kind: Kind::Mariadb, service: MARIADB_SERVICE, plan: MARIADB_PLAN, extension: ".xbstream.zst.age" },
    Story {
        kind: Kind::Rabbitmq,
        service: RABBITMQ_SERVICE,
        plan: RABBITMQ_PLAN,
        extension: ".definitions.json.zst.age",
    },
];

fn story(kind: &str) -> &'static Story {
    STORIES.iter().find(|s| format!("{:?}", s.kind).eq_ignore_ascii_case(kind)).unwrap()
}

#[tokio::test]
async fn postgresql_story() {
    tell(story("postgresql")).await;
}

#[tokio::test]
async fn redis_story() {
    tell(story("redis")).await;
}

#[tokio::test]
async fn mariadb_story() {
    tell(story("mariadb")).await;
}

#[tokio::test]
async fn rabbitmq_story() {
    tell(story("rabbitmq")).await;
}

async fn tell(story: &Story) {
    let app = TestApp::start().await;
    let id = app.provision(story.service, story.plan, "org-a").await;
    let creds = app.bind(&id, story.service, story.plan).await;
    write(story.kind, &creds, "before").await;
    assert_eq!(read(story.kind, &creds).await, "before");

    let config = json!({"encryption_key": KEY}).to_string();
    let (status, body) =
        app.api_as(&app.token, Method::PATCH, &format!("/v1/instances/{id}/backups-config"), Some(&config)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The Backups page says what a backup holds.
    let page = app
        .client
        .get(format!("{}/service-instances/{id}/backups", app.base))
        .header("Authorization", &app.token)
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let contents = app.state().engine_of(&app.state().store.instance_by_guid(&id).await.unwrap()).unwrap();
    assert!(page.contains(&format!("A backup holds {}.", contents.backup_contents())), "{page}");
    if let Kind::Rabbitmq = story.kind {
        assert!(page.contains("messages are not part of a backup"), "{page}");
    }

    let backup = app.create_backup(&id).await;
    app.wait_done(&format!("/v1/instances/{id}/backups/{backup}")).await;

    write(story.kind, &creds, "after").await;
    assert_eq!(read(story.kind, &creds).await, "after");
    let restore = app.restore(&id, backup).await;
    app.wait_done(&format!("/v1/instances/{id}/restores/{restore}")).await;
    assert_eq!(read_eventually(story.kind, &creds).await, "before", "the data as at the backup");

    // The download, opened with standard tools only.
    let res = app
        .client
        .get(format!("{}/v1/instances/{id}/backups/{backup}/download", app.base))
        .header("Authorization", &app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let disposition = res.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(disposition.trim_end_matches('"').ends_with(story.extension), "{disposition}");
    let dir = data_dir();
    let file = dir.path().join(format!("backup{}", story.extension));
    std::fs::write(&file, res.bytes().await.unwrap()).unwrap();
    let plain = open_with_standard_tools(&file, KEY);
    opens(story.kind, &plain, dir.path());

    // A recreate keeps the data.
    let spec = app.node(&id).await;
    let pid_before = engine_pid(app.state(), &spec).await.expect("the engine runs");
    let (status, body) = app.api_as(&app.token, Method::PATCH, &format!("/v1/instances/{id}/recreate"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    app.wait_for("the engine to be recreated", Duration::from_secs(120), || {
        let (app, spec) = (&app, &spec);
        async move { engine_pid(app.state(), spec).await.filter(|pid| *pid != pid_before) }
    })
    .await;
    wait_instance_state(&app, &id, "available").await;
    assert_eq!(read_eventually(story.kind, &creds).await, "before", "the data after a recreate");

    // Deprovisioning leaves nothing behind.
    let instance = app.state().store.instance_by_guid(&id).await.unwrap();
    let node_folder = app.layout(&id).await.root().parent().unwrap().to_path_buf();
    let account = nix::unistd::User::from_name(&instance.local_name).unwrap();
    // The account's processes, by pid and start time: once the account is gone its
    // uid may go to another test's instance at once, so the uid alone proves nothing.
    let processes = account.as_ref().map(|a| processes_of(a.uid.as_raw())).unwrap_or_default();
    assert!(account.is_none() || !processes.is_empty(), "the engine runs under the instance's account");
    app.deprovision(&id, story.service, story.plan).await;
    assert!(!node_folder.exists(), "{} is left", node_folder.display());
    if account.is_some() {
        assert!(nix::unistd::User::from_name(&instance.local_name).unwrap().is_none(), "the account is left");
        let left: Vec<_> =
            processes.iter().filter(|(pid, started)| start_time(*pid).as_ref() == Some(started)).collect();
        assert!(left.is_empty(), "processes of the instance's account are left: {left:?}");
    }
}

/// Every process running as `uid`, with its start time.
fn processes_of(uid: u32) -> Vec<(u32, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let status = std::fs::read_to_string(e.path().join("status")).ok()?;
            let owner =
                status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().next()?.parse::<u32>().ok()?;
            (owner == uid).then_some((pid, start_time(pid)?))
        })
        .collect()
}

/// When process `pid` started (field 22 of its stat), if it runs.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.split_whitespace().nth(19).map(str::to_owned)
}

/// Makes `value` the instance's data, through the binding's credentials.
async fn write(kind: Kind, creds: &Value, value: &str) {
    match kind {
        Kind::Postgresql => {
            let mut conn = pg(creds).await;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE TABLE IF NOT EXISTS story (v text); DELETE FROM story; INSERT INTO story VALUES ('{value}')"
            )))
            .execute(&mut conn)
            .await
            .unwrap();
        }
        Kind::Redis => {
            let mut conn = redis(creds).await;
            redis::cmd("SET").arg("story").arg(value).query_async::<()>(&mut conn).await.unwrap();
        }
        Kind::Mariadb => {
            let mut conn = mariadb(creds).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE TABLE IF NOT EXISTS story (v varchar(100)); DELETE FROM story; INSERT INTO story VALUES ('{value}')"
            )))
            .execute(&mut conn)
            .await
            .unwrap();
        }
        Kind::Rabbitmq => {
            // The topology is the data: one queue named after the value, holding a message.
            for queue in rabbit_queues(creds).await.unwrap() {
                let res = rabbit(creds, Method::DELETE, &format!("queues/%2F/{queue}"), None).await;
                assert!(res.status().is_success(), "{}", res.text().await.unwrap());
            }
            let res =
                rabbit(creds, Method::PUT, &format!("queues/%2F/story-{value}"), Some(json!({"durable": true}))).await;
            assert!(res.status().is_success(), "{}", res.text().await.unwrap());
            let message = json!({"properties": {"delivery_mode": 2}, "routing_key": format!("story-{value}"),
                                 "payload": value, "payload_encoding": "string"});
            let res = rabbit(creds, Method::POST, "exchanges/%2F/amq.default/publish", Some(message)).await;
            assert!(res.status().is_success(), "{}", res.text().await.unwrap());
            assert_amqp_answers(creds).await;
        }
    }
}

/// The instance's data, read through the binding's credentials.
async fn read(kind: Kind, creds: &Value) -> String {
    try_read(kind, creds).await.expect("the instance answers")
}

async fn read_eventually(kind: Kind, creds: &Value) -> String {
    wait_for("the instance to answer", Duration::from_secs(60), &mut || async { try_read(kind, creds).await }).await
}

async fn try_read(kind: Kind, creds: &Value) -> Option<String> {
    match kind {
        Kind::Postgresql => {
            let uri = creds["uri"].as_str()?;
            let mut conn = sqlx::PgConnection::connect(uri).await.ok()?;
            sqlx::query_scalar("SELECT v FROM story").fetch_one(&mut conn).await.ok()
        }
        Kind::Redis => {
            let mut conn =
                redis::Client::open(creds["uri"].as_str()?).ok()?.get_multiplexed_async_connection().await.ok()?;
            redis::cmd("GET").arg("story").query_async(&mut conn).await.ok()
        }
        Kind::Mariadb => {
            let mut conn = mariadb(creds).await.ok()?;
            sqlx::query_scalar("SELECT v FROM story").fetch_one(&mut conn).await.ok()
        }
        Kind::Rabbitmq => {
            let queues = rabbit_queues(creds).await?;
            let [queue] = queues.as_slice() else { return Some(format!("queues {queues:?}")) };
            Some(queue.strip_prefix("story-")?.to_owned())
        }
    }
}

/// Checks the plain bytes of a download with the engine's own standard tools.
fn opens(kind: Kind, plain: &[u8], dir: &Path) {
    let file = dir.join("plain");
    std::fs::write(&file, plain).unwrap();
    let run = |cmd: &mut Command| {
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    match kind {
        Kind::Postgresql => {
            let sql = run(Command::new("pg_restore").args(["--data-only", "--table=story", "-f", "-"]).arg(&file));
            assert!(String::from_utf8_lossy(&sql).contains("before"));
        }
        Kind::Redis => {
            run(Command::new("redis-check-rdb").arg(&file));
            assert!(plain.windows(6).any(|w| w == b"before"));
        }
        Kind::Mariadb => {
            let unpacked = dir.join("unpacked");
            std::fs::create_dir(&unpacked).unwrap();
            run(Command::new("mbstream").arg("-x").arg("-C").arg(&unpacked).stdin(std::fs::File::open(&file).unwrap()));
            run(Command::new("mariadb-backup").arg("--prepare").arg(format!("--target-dir={}", unpacked.display())));
            let table = std::fs::read(unpacked.join("app/story.ibd")).expect("the table's file");
            assert!(table.windows(6).any(|w| w == b"before"), "the row is in the table's file");
        }
        Kind::Rabbitmq => {
            let definitions: Value = serde_json::from_slice(plain).unwrap();
            let queues: Vec<&str> =
                definitions["queues"].as_array().unwrap().iter().filter_map(|q| q["name"].as_str()).collect();
            assert_eq!(queues, ["story-before"], "{definitions}");
        }
    }
}

/// A management API call as the binding, from its credentials.
async fn rabbit(creds: &Value, method: Method, path: &str, body: Option<Value>) -> reqwest::Response {
    let base = creds["management_url"].as_str().expect("management_url in the credentials");
    let api = creds["http_api_uri"].as_str().expect("http_api_uri in the credentials");
    assert!(api.ends_with("/api/") && api.contains(creds["password"].as_str().unwrap()), "{api}");
    let mut request = crate::helpers::http()
        .build()
        .unwrap()
        .request(method, format!("{base}api/{path}"))
        .basic_auth(creds["username"].as_str().unwrap(), creds["password"].as_str());
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn rabbit_queues(creds: &Value) -> Option<Vec<String>> {
    let res = rabbit(creds, Method::GET, "queues/%2F", None).await;
    let queues: Vec<Value> = res.json().await.ok()?;
    let mut names: Vec<String> = queues.iter().filter_map(|q| q["name"].as_str().map(str::to_owned)).collect();
    names.sort();
    Some(names)
}

/// The AMQP port speaks AMQP 0-9-1: the protocol header gets a Connection.Start.
async fn assert_amqp_answers(creds: &Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port = creds["port"].as_u64().unwrap() as u16;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(b"AMQP\x00\x00\x09\x01").await.unwrap();
    let mut frame = [0u8; 11];
    stream.read_exact(&mut frame).await.unwrap();
    // Frame type 1 (method), channel 0, then class 10 method 10 after the size.
    assert_eq!((frame[0], &frame[7..11]), (1, &[0, 10, 0, 10][..]), "{frame:?}");
    assert!(creds["uri"].as_str().unwrap().starts_with(&format!("amqp://{}:", creds["username"].as_str().unwrap())));
}
