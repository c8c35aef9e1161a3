//! Backup settings, the personal encryption key and downloads: a downloaded
//! backup opens with standard tools only (Debian's `age` and `zstd`, then
//! `pg_restore`), byte ranges resume it, and a changed key makes older backups
//! restorable but no longer downloadable.

use std::process::Command;

use reqwest::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const KEY: &str = "correct horse battery staple";

async fn download(app: &TestApp, path: &str, range: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(format!("{}{path}", app.base)).header("Authorization", &app.token);
    if let Some(range) = range {
        req = req.header(RANGE, range);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn backups_config_validates_and_keeps_the_key_secret() {
    let app = TestApp::start().await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let path = format!("/v1/instances/{id}/backups-config");
    let (status, config) = app.api(Method::GET, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        config,
        json!({"min_backup_count": 5, "retention_time": 5, "min_encryption_key_length": 8, "exclude_from_auto_backup": false})
    );

    for (body, error) in [
        (json!({"min_backup_count": -1, "retention_time": 2}), "InvalidBackupsConfig"),
        (json!({"retention_time": -3}), "InvalidBackupsConfig"),
        (json!({"encryption_key": "short", "min_backup_count": 1}), "InvalidBackupsConfig"),
        (json!({"min_backup_count": "three"}), "BadRequest"),
        (json!({"exclude_from_auto_backup": "yes"}), "BadRequest"),
        (json!({"min_encryption_key_length": 4}), "BadRequest"),
        (json!({"colour": "blue"}), "BadRequest"),
    ] {
        let (status, answer) = app.api_as(&app.token, Method::PATCH, &path, Some(&body.to_string())).await;
        assert_eq!((status, answer["error"].as_str()), (StatusCode::BAD_REQUEST, Some(error)), "{body}: {answer}");
        assert!(!answer["description"].as_str().unwrap().is_empty());
        assert!(!answer.to_string().contains("short"), "the key is not echoed: {answer}");
        assert_eq!(app.api(Method::GET, &path).await.1, config, "nothing changed after {body}");
    }

    let update =
        json!({"encryption_key": KEY, "min_backup_count": 3, "retention_time": 7, "exclude_from_auto_backup": true});
    let (status, answer) = app.api_as(&app.token, Method::PATCH, &path, Some(&update.to_string())).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"message": "instance updated"})));
    let (_, now) = app.api(Method::GET, &path).await;
    assert_eq!(
        now,
        json!({"min_backup_count": 3, "retention_time": 7, "min_encryption_key_length": 8, "exclude_from_auto_backup": true})
    );
    // Another tenant's user sees nothing; the key is nowhere in clear.
    let other = user_token(app.state(), "mallory", "org-b").await;
    assert_eq!(app.api_as(&other, Method::GET, &path, None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.api_as(&other, Method::PATCH, &path, Some("{}")).await.0, StatusCode::FORBIDDEN);
    let mut db = std::fs::read(app.data.join("svcdash.db")).unwrap();
    db.extend(std::fs::read(app.data.join("svcdash.db-wal")).unwrap_or_default());
    assert!(!db.windows(KEY.len()).any(|w| w == KEY.as_bytes()), "the key is stored in clear");
    let (_, log) = app.api(Method::GET, &format!("/v1/instances/{id}/audit")).await;
    assert!(log.to_string().contains("personal encryption key set"), "{log}");
    assert!(!log.to_string().contains(KEY));
}

#[tokio::test]
async fn a_download_opens_with_standard_tools_and_resumes_with_ranges() {
    let app = TestApp::start().await;
    let id = app.provision(PG_SERVICE, PG_PLAN, "org-a").await;
    let creds = app.bind(&id, PG_SERVICE, PG_PLAN).await;
    let mut conn = pg(&creds).await;
    sqlx::raw_sql("CREATE TABLE orders (id int primary key, item text); INSERT INTO orders SELECT g, 'item-' || g FROM generate_series(1, 3000) g;")
        .execute(&mut conn)
        .await
        .unwrap();

    // Before a personal key: made with svcdash's key, not downloadable.
    let first = app.create_backup(&id).await;
    let done = app.wait_finished(&format!("/v1/instances/{id}/backups/{first}")).await;
    assert_eq!(done["downloadable"], false);
    let res = download(&app, &format!("/v1/instances/{id}/backups/{first}/download"), None).await;
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], 412);
    assert!(body["message"].as_str().unwrap().contains("no personal encryption key"), "{body}");

    let config = json!({"encryption_key": KEY}).to_string();
    let (status, _) =
        app.api_as(&app.token, Method::PATCH, &format!("/v1/instances/{id}/backups-config"), Some(&config)).await;
    assert_eq!(status, StatusCode::OK);
    let second = app.create_backup(&id).await;
    let done = app.wait_finished(&format!("/v1/instances/{id}/backups/{second}")).await;
    assert_eq!(done["downloadable"], true, "{done}");
    let size = done["size"].as_u64().unwrap();

    let path = format!("/v1/instances/{id}/backups/{second}/download");
    let res = download(&app, &path, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[CONTENT_LENGTH].to_str().unwrap(), size.to_string());
    assert_eq!(res.headers()["accept-ranges"], "bytes");
    let disposition = res.headers()[CONTENT_DISPOSITION].to_str().unwrap().to_owned();
    let name = disposition.split("filename=\"").nth(1).unwrap().trim_end_matches('"').to_owned();
    assert!(name.contains("-backup-2-") && name.ends_with(".dump.zst.age"), "{disposition}");
    let whole = res.bytes().await.unwrap();
    assert_eq!(whole.len() as u64, size);
    let stored =
        app.backup_objects().into_iter().find(|p| p.to_string_lossy().ends_with("backup-2.dump.zst.age")).unwrap();
    assert_eq!(whole, std::fs::read(stored).unwrap(), "the stored object, as it is");

    // Resuming: two ranges make the whole; a range past the end is refused.
    let res = download(&app, &path, Some("bytes=0-99")).await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.headers()[CONTENT_RANGE].to_str().unwrap(), format!("bytes 0-99/{size}"));
    let mut joined = res.bytes().await.unwrap().to_vec();
    let res = download(&app, &path, Some("bytes=100-")).await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    joined.extend_from_slice(&res.bytes().await.unwrap());
    assert_eq!(joined, whole);
    let res = download(&app, &path, Some(&format!("bytes={size}-"))).await;
    assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    // The deprecated API's POST hands out the same bytes.
    let res = app
        .client
        .post(format!(
            "{}/service-instances/{id}/backups/{}/download",
            app.base,
            backup_internal_id(&app, &id, second).await
        ))
        .header("Authorization", &app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap(), whole);

    // Standard tools open it: age (passphrase), zstd, pg_restore.
    let dir = data_dir();
    let file = dir.path().join(&name);
    std::fs::write(&file, &whole).unwrap();
    let dump = open_with_standard_tools(&file, KEY);
    let dump_file = dir.path().join("backup.dump");
    std::fs::write(&dump_file, &dump).unwrap();
    let out = Command::new("pg_restore").args(["--data-only", "--table=orders", "-f", "-"]).arg(&dump_file).output();
    let out = out.expect("pg_restore runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sql = String::from_utf8_lossy(&out.stdout);
    assert!(sql.contains("COPY public.orders") && sql.contains("2999\titem-2999"), "{}", &sql[..sql.len().min(2000)]);
    // The wrong passphrase opens nothing.
    let res = std::panic::catch_unwind(|| open_with_standard_tools(&file, "not the key at all"));
    assert!(res.is_err(), "a wrong passphrase decrypted the backup");

    // A new key: the older backup is restorable, but no longer downloadable.
    let config = json!({"encryption_key": "another long passphrase"}).to_string();
    app.api_as(&app.token, Method::PATCH, &format!("/v1/instances/{id}/backups-config"), Some(&config)).await;
    let (_, listed) = app.api(Method::GET, &format!("/v1/instances/{id}/backups")).await;
    assert!(listed.as_array().unwrap().iter().all(|b| b["downloadable"] == false), "{listed}");
    let res = download(&app, &path, None).await;
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
    let body: Value = res.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("current personal encryption key"), "{body}");
    sqlx::raw_sql("DELETE FROM orders").execute(&mut conn).await.unwrap();
    drop(conn);
    let restore = app.restore(&id, second).await;
    app.wait_done(&format!("/v1/instances/{id}/restores/{restore}")).await;
    let count: i64 = pg_value_eventually(&creds, "SELECT count(*) FROM orders").await;
    assert_eq!(count, 3000);
}

/// The deprecated API's id of a backup (its internal id).
async fn backup_internal_id(app: &TestApp, instance: &str, seq: i64) -> i64 {
    let (_, body) = app.api(Method::GET, &format!("/service-instances/{instance}/backups")).await;
    let backups = body["backups"].as_array().unwrap();
    // Newest first, like API V1.
    backups[backups.len() - seq as usize]["id"].as_i64().unwrap()
}
