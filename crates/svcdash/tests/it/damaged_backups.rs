//! Bad input to the new engines: a damaged backup fails its restore before the
//! instance is touched (checked by the data and definitions afterwards), and an
//! engine that cannot start says why in its own words.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// Replaces a backup's stored object with `plain`, encrypted and checksummed as
/// svcdash would: a backup that passes every transport check but whose content
/// the engine must refuse.
async fn replace_backup_content(app: &TestApp, id: &str, seq: i64, plain: Vec<u8>) {
    let state = app.state();
    let instance = state.store.instance_by_guid(id).await.unwrap();
    let backup = state.store.backup_by_seq(instance.id, seq).await.unwrap();
    let key = state.backup_key(&backup).await.unwrap();
    let stored = backup::upload(
        &state.storage,
        &backup.object_key,
        std::io::Cursor::new(plain),
        async { Ok(()) },
        key.recipient(),
        &state.config.backups.pipeline(),
    )
    .await
    .unwrap();
    state
        .store
        .record_backup_object(backup.id, stored.size as i64, &stored.sha256, stored.plain_size as i64)
        .await
        .unwrap();
}

/// The plain bytes of a backup, as a restore reads them.
async fn backup_content(app: &TestApp, id: &str, seq: i64) -> Vec<u8> {
    let state = app.state();
    let instance = state.store.instance_by_guid(id).await.unwrap();
    let backup = state.store.backup_by_seq(instance.id, seq).await.unwrap();
    let key = state.backup_key(&backup).await.unwrap();
    let dir = data_dir();
    let path = dir.path().join("plain");
    let file = tokio::fs::File::create(&path).await.unwrap();
    backup::download(&state.storage, &backup.object_key, backup.sha256.as_deref().unwrap(), key.identity(), file)
        .await
        .unwrap();
    std::fs::read(&path).unwrap()
}

/// Restores backup `seq` and expects it to fail; returns the job's error.
async fn failed_restore(app: &TestApp, id: &str, seq: i64) -> String {
    let restore = app.restore(id, seq).await;
    let finished = app.wait_finished(&format!("/v1/instances/{id}/restores/{restore}")).await;
    assert_eq!(finished["status"], "failed", "{finished}");
    let instance = app.state().store.instance_by_guid(id).await.unwrap();
    let job = app.state().store.restore_by_seq(instance.id, restore).await.unwrap();
    job.jobs[0].error.clone().unwrap()
}

async fn mariadb_rows(creds: &Value) -> Vec<(i32, String)> {
    let mut conn = mariadb(creds).await.unwrap();
    sqlx::query_as("SELECT id, v FROM kept ORDER BY id").fetch_all(&mut conn).await.unwrap()
}

#[tokio::test]
async fn a_damaged_mariadb_backup_fails_before_the_instance_is_touched() {
    let app = TestApp::start().await;
    let id = app.provision(MARIADB_SERVICE, MARIADB_PLAN, "org-a").await;
    let creds = app.bind(&id, MARIADB_SERVICE, MARIADB_PLAN).await;
    {
        let mut conn = mariadb(&creds).await.unwrap();
        sqlx::raw_sql(
            "CREATE TABLE kept (id int primary key, v text); \
             INSERT INTO kept SELECT seq, concat('row-', seq) FROM seq_1_to_500",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        let backup = app.create_backup(&id).await;
        app.wait_done(&format!("/v1/instances/{id}/backups/{backup}")).await;
        sqlx::raw_sql("DELETE FROM kept WHERE id > 100; INSERT INTO kept VALUES (1000, 'after the backup')")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let now = mariadb_rows(&creds).await;
    assert_eq!(now.len(), 101);

    // A stream cut in half: unpacked, it is not a backup mariadb-backup can prepare.
    let plain = backup_content(&app, &id, 1).await;
    replace_backup_content(&app, &id, 1, plain[..plain.len() / 2].to_vec()).await;
    let error = failed_restore(&app, &id, 1).await;
    assert!(error.contains("mbstream") || error.contains("mariadb-backup") || error.contains("xbstream"), "{error}");
    assert_eq!(mariadb_rows(&creds).await, now, "the failed restore changed the data");

    // Not a stream at all.
    replace_backup_content(&app, &id, 1, b"-- MariaDB dump 10.19\nDROP TABLE kept;\n".to_vec()).await;
    failed_restore(&app, &id, 1).await;
    assert_eq!(mariadb_rows(&creds).await, now, "the failed restore changed the data");

    // The instance still backs up and restores.
    let backup = app.create_backup(&id).await;
    app.wait_done(&format!("/v1/instances/{id}/backups/{backup}")).await;
    let restore = app.restore(&id, backup).await;
    app.wait_done(&format!("/v1/instances/{id}/restores/{restore}")).await;
    assert_eq!(mariadb_rows(&creds).await, now);
}

async fn queues(creds: &Value) -> Vec<String> {
    let res = crate::helpers::http()
        .build()
        .unwrap()
        .get(format!("{}api/queues/%2F", creds["management_url"].as_str().unwrap()))
        .basic_auth(creds["username"].as_str().unwrap(), creds["password"].as_str())
        .send()
        .await
        .unwrap();
    let list: Vec<Value> = res.json().await.unwrap();
    let mut names: Vec<String> = list.iter().map(|q| q["name"].as_str().unwrap().to_owned()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn damaged_rabbitmq_definitions_fail_before_the_broker_is_touched() {
    let app = TestApp::start().await;
    let id = app.provision(RABBITMQ_SERVICE, RABBITMQ_PLAN, "org-a").await;
    let creds = app.bind(&id, RABBITMQ_SERVICE, RABBITMQ_PLAN).await;
    let client = crate::helpers::http().build().unwrap();
    let declare = |name: &str| {
        client
            .request(Method::PUT, format!("{}api/queues/%2F/{name}", creds["management_url"].as_str().unwrap()))
            .basic_auth(creds["username"].as_str().unwrap(), creds["password"].as_str())
            .json(&json!({"durable": true}))
            .send()
    };
    assert!(declare("orders").await.unwrap().status().is_success());
    let backup = app.create_backup(&id).await;
    app.wait_done(&format!("/v1/instances/{id}/backups/{backup}")).await;
    assert!(declare("made-after-the-backup").await.unwrap().status().is_success());
    let now = queues(&creds).await;
    assert_eq!(now, ["made-after-the-backup", "orders"]);

    for damaged in [
        b"{\"rabbit_version\": \"3.10.8\", \"queues\": [{\"name\": \"x\"".to_vec(),
        b"{\"rabbit_version\": \"3.10.8\", \"queues\": 5}".to_vec(),
        b"{\"queues\": []}".to_vec(),
        b"REDIS0010 not definitions".to_vec(),
    ] {
        replace_backup_content(&app, &id, backup, damaged.clone()).await;
        let error = failed_restore(&app, &id, backup).await;
        assert!(error.contains("definitions") || error.contains("list"), "{error}");
        assert_eq!(
            queues(&creds).await,
            now,
            "a failed restore changed the broker: {}",
            String::from_utf8_lossy(&damaged)
        );
    }
}

#[tokio::test]
async fn an_engine_that_cannot_start_says_why_in_its_own_words() {
    let dir = data_dir();
    let data = dir.path();
    let mut app = TestApp::start_in(data, config(data)).await;
    let id = app.provision(MARIADB_SERVICE, MARIADB_PLAN, "org-a").await;
    let layout = app.layout(&id).await;
    app.stop().await;

    // InnoDB's system tablespace overwritten: the server refuses to start.
    let ibdata = layout.data_dir().join("ibdata1");
    let size = std::fs::metadata(&ibdata).unwrap().len();
    std::fs::write(&ibdata, vec![0x5a; size as usize]).unwrap();

    let app = TestApp::start_in(data, config(data)).await;
    let overview = app
        .wait_for("the instance to fail", Duration::from_secs(120), || {
            let (app, id) = (&app, &id);
            async move {
                let body = instance_overview(app, id).await;
                (body["state"] == "failed").then_some(body)
            }
        })
        .await;
    let why = overview["state_description"].as_str().unwrap();
    assert!(why.contains("mariadb") && why.contains("[ERROR]"), "the engine's own log lines: {why}");
}
