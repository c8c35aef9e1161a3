//! The pages in a real browser: headless Chromium driven by playwright-core
//! (tests/support/browser.mjs) signs in, backs up, restores after confirming,
//! reads the restore history, sets a personal key and downloads a backup made
//! with it, and switches on automatic reload. Screenshots of
//! each page land in target/screenshots.

use std::path::PathBuf;
use std::process::Command;

use reqwest::Method;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn a_person_backs_up_and_restores_in_the_browser() {
    let app = TestApp::start().await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let creds = app.bind(&id, REDIS_SERVICE, REDIS_PLAN).await;
    let mut conn = redis(&creds).await;
    let _: () = redis::cmd("SET").arg("greeting").arg("before the backup").query_async(&mut conn).await.unwrap();
    // Another instance whose backup, made with its personal key, the person
    // recovers into this one.
    let origin = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let origin_creds = app.bind(&origin, REDIS_SERVICE, REDIS_PLAN).await;
    let mut origin_conn = redis(&origin_creds).await;
    let _: () = redis::cmd("SET")
        .arg("from-origin")
        .arg("recovered from the origin")
        .query_async(&mut origin_conn)
        .await
        .unwrap();
    let origin_key = "the origin's personal key";
    let body = serde_json::json!({"encryption_key": origin_key}).to_string();
    let (_, prepared) = app
        .api_as(&app.token, Method::POST, &format!("/v1/instances/{origin}/disaster-recovery/prepare"), Some(&body))
        .await;
    let origin_guid = prepared["backup_guid"].as_str().unwrap().to_owned();
    let origin_backup = app.create_backup(&origin).await;
    app.wait_finished(&format!("/v1/instances/{origin}/backups/{origin_backup}")).await;

    browser_sign_in(&app).await;
    // A syntax error in the pages' script says so here, rather than as a timeout.
    let app_js = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../server/assets/app.js");
    let check = Command::new("node").arg("--check").arg(&app_js).output().expect("node runs");
    assert!(check.status.success(), "app.js: {}", String::from_utf8_lossy(&check.stderr));
    let mut script = browser_script("browser.mjs", &app.base, &id);
    script
        .env("PERSONAL_KEY", "a personal key for downloads")
        .env("ORIGIN_BACKUP_GUID", &origin_guid)
        .env("ORIGIN_KEY", origin_key);
    let findings = browser_findings(script).await.unwrap_or_else(|e| panic!("the browser test failed:\n{e}"));
    assert_eq!(findings["emptyState"], true, "{findings}");
    assert_eq!(findings["sameDocument"], true, "the backup's progress came without a full page load: {findings}");
    assert!(findings["backupSize"].as_str().unwrap().ends_with(" B"), "{findings}");
    assert_eq!(findings["restoresAfterNo"], 0, "No restores nothing: {findings}");
    let row: Vec<&str> = findings["restoreRow"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!((row[0], row[1], row[4]), ("1", "1", "done"), "{findings}");
    assert_eq!(
        (findings["autoReloadBefore"].as_bool(), findings["autoReloadAfterReload"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(findings["instancesListed"], 1);
    assert_eq!(findings["shortKeyValid"], false, "the browser enforces the minimum key length");
    assert_eq!(findings["firstBackupDownloadDisabled"], true, "made before the key: not downloadable");
    assert_eq!(findings["menuKeptThroughReload"], true, "a reload arriving while the menu is open leaves it open");
    let name = findings["downloadName"].as_str().unwrap();
    assert!(name.contains("-backup-2-") && name.ends_with(".rdb.zst.age"), "{name}");
    let downloaded = std::fs::read(findings["downloadPath"].as_str().unwrap()).unwrap();
    let (_, backup) = app.api(Method::GET, &format!("/v1/instances/{id}/backups/2")).await;
    assert_eq!(downloaded.len() as u64, backup["size"].as_u64().unwrap());
    assert!(downloaded.starts_with(b"age-encryption.org/v1\n-> scrypt "), "encrypted with the passphrase");
    assert_eq!(findings["signedOut"], true);
    assert_eq!(findings["pageErrors"], Value::Array(vec![]), "no script errors");

    // What the browser did, happened: the settings, two restores (the second from
    // the other instance's backups), and the data.
    let (_, settings) = app.api(Method::GET, &format!("/v1/instances/{id}/backups-config")).await;
    assert_eq!(
        settings,
        serde_json::json!({"min_backup_count": 2, "retention_time": 3, "min_encryption_key_length": 8, "exclude_from_auto_backup": true})
    );
    assert_eq!(findings["disasterRecovery"], true);
    let (_, restores) = app.api(Method::GET, &format!("/v1/instances/{id}/restores")).await;
    let statuses: Vec<&str> = restores.as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["done", "done"]);
    let uri = creds["uri"].as_str().unwrap().to_owned();
    let value: String = wait_for("the recovered value", std::time::Duration::from_secs(60), &mut || {
        let uri = uri.clone();
        async move {
            let mut conn = redis::Client::open(uri).ok()?.get_multiplexed_async_connection().await.ok()?;
            redis::cmd("GET").arg("from-origin").query_async(&mut conn).await.ok()
        }
    })
    .await;
    // The disaster recovery replaced the data with the origin's.
    assert_eq!(value, "recovered from the origin");
    for name in [
        "login",
        "backup-menu",
        "backups",
        "restore-dialog",
        "restore-history",
        "overview",
        "instances",
        "backups-phone",
    ] {
        let png = std::fs::read(screenshots().join(format!("{name}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name}.png");
    }
}
