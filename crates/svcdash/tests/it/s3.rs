//! Backups in an S3-compatible object store: moto's server, started by the test
//! (`./dev.sh test` installs it; `MOTO_SERVER` or PATH says where it is).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::helpers::*;

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_moto() -> (Moto, String) {
    let program = std::env::var("MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
    let port = engines::free_port().unwrap();
    let child = Command::new(&program)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program} ({e}); `./dev.sh test` installs moto's server"));
    let moto = Moto(child);
    let endpoint = format!("http://127.0.0.1:{port}");
    let client = crate::helpers::http().build().unwrap();
    wait_for("moto to answer", Duration::from_secs(60), &mut || {
        let (client, endpoint) = (&client, &endpoint);
        async move { client.get(endpoint.as_str()).send().await.ok().map(|_| ()) }
    })
    .await;
    let created = client.put(format!("{endpoint}/backups")).send().await.unwrap();
    assert!(created.status().is_success(), "creating the bucket: {}", created.status());
    (moto, endpoint)
}

/// svcdash's configuration with backups in `bucket` at the S3 server `endpoint`.
fn s3_config(data: &std::path::Path, endpoint: &str, bucket: &str) -> server::Config {
    let mut config = config(data);
    config.backups.url = Some(format!("s3://{bucket}/svcdash"));
    config.backups.part_size_mib = 5;
    for (k, v) in [
        ("aws_endpoint", endpoint),
        ("aws_allow_http", "true"),
        ("aws_access_key_id", "test"),
        ("aws_secret_access_key", "test"),
        ("aws_region", "us-east-1"),
        ("aws_virtual_hosted_style_request", "false"),
    ] {
        config.backups.options.insert(k.into(), v.into());
    }
    config
}

#[tokio::test]
async fn backups_go_to_s3_in_several_parts_and_restore_from_there() {
    let (_moto, endpoint) = start_moto().await;
    let dir = data_dir();
    let app = TestApp::start_in(dir.path(), s3_config(dir.path(), &endpoint, "backups")).await;
    let id = app.provision(PG_SERVICE, PG_PLAN, "org-a").await;
    let creds = app.bind(&id, PG_SERVICE, PG_PLAN).await;
    let mut conn = pg(&creds).await;
    // About 25 MiB of hex that compresses about 2:1: more than two 5 MiB parts.
    sqlx::raw_sql(
        "CREATE TABLE blobs AS SELECT g AS id, md5(random()::text) || md5(random()::text) || md5(random()::text) \
         || md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) \
         || md5(random()::text) AS body FROM generate_series(1, 100000) g",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let before = checksum(&mut conn).await;

    let backup = app.create_backup(&id).await;
    let done = app.wait_done(&format!("/v1/instances/{id}/backups/{backup}")).await;
    assert!(done["size"].as_i64().unwrap() > 10 << 20, "expected a multi-part object: {done}");
    assert!(app.backup_objects().is_empty(), "nothing is written to the local backup folder");

    let listing = reqwest::get(format!("{endpoint}/backups?list-type=2")).await.unwrap().text().await.unwrap();
    assert!(listing.contains("backup-1.dump.zst.age"), "{listing}");
    assert!(listing.contains(&done["size"].to_string()), "the stored size differs from the recorded one: {listing}");

    sqlx::raw_sql("TRUNCATE blobs").execute(&mut conn).await.unwrap();
    drop(conn);
    let restore = app.restore(&id, backup).await;
    app.wait_done(&format!("/v1/instances/{id}/restores/{restore}")).await;
    let mut conn = pg(&creds).await;
    assert_eq!(checksum(&mut conn).await, before);
}

async fn checksum(conn: &mut sqlx::PgConnection) -> String {
    sqlx::query_scalar("SELECT md5(string_agg(body, '' ORDER BY id)) FROM blobs").fetch_one(conn).await.unwrap()
}

/// The names of the objects in the S3 bucket.
async fn listing(endpoint: &str) -> String {
    reqwest::get(format!("{endpoint}/backups?list-type=2")).await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn downloads_retention_and_disaster_recovery_work_on_s3() {
    use reqwest::Method;
    let (_moto, endpoint) = start_moto().await;
    let dir = data_dir();
    let app = TestApp::start_in(dir.path(), s3_config(dir.path(), &endpoint, "backups")).await;
    let origin = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let creds = app.bind(&origin, REDIS_SERVICE, REDIS_PLAN).await;
    let mut conn = redis(&creds).await;
    let _: () = redis::cmd("SET").arg("city").arg("Lisbon").query_async(&mut conn).await.unwrap();
    let key = "an s3 personal key";
    let settings = serde_json::json!({"encryption_key": key, "min_backup_count": 1, "retention_time": 1}).to_string();
    app.api_as(&app.token, Method::PATCH, &format!("/v1/instances/{origin}/backups-config"), Some(&settings)).await;
    for n in 1..=3 {
        assert_eq!(app.create_backup(&origin).await, n);
        app.wait_finished(&format!("/v1/instances/{origin}/backups/{n}")).await;
    }
    let (_, prepared) =
        app.api_as(&app.token, Method::POST, &format!("/v1/instances/{origin}/disaster-recovery/prepare"), None).await;
    let backup_guid = prepared["backup_guid"].as_str().unwrap().to_owned();

    // A download is the S3 object as it is, whole or in ranges.
    let object = reqwest::get(format!("{endpoint}/backups/svcdash/{backup_guid}/backup-3.rdb.zst.age")).await.unwrap();
    assert!(object.status().is_success());
    let object = object.bytes().await.unwrap();
    let get = |range: Option<&'static str>| {
        let mut req = app
            .client
            .get(format!("{}/v1/instances/{origin}/backups/3/download", app.base))
            .header("Authorization", &app.token);
        if let Some(range) = range {
            req = req.header("Range", range);
        }
        req.send()
    };
    assert_eq!(get(None).await.unwrap().bytes().await.unwrap(), object);
    let mut joined = get(Some("bytes=0-9")).await.unwrap().bytes().await.unwrap().to_vec();
    joined.extend_from_slice(&get(Some("bytes=10-")).await.unwrap().bytes().await.unwrap());
    assert_eq!(joined, object);

    // Retention removes the objects from S3, not only the records.
    let before = listing(&endpoint).await;
    assert!(before.contains("backup-1.rdb.zst.age") && before.contains("backup-2.rdb.zst.age"), "{before}");
    let pass = server::retention::apply(app.state(), chrono::Utc::now() + chrono::Duration::days(2)).await.unwrap();
    assert_eq!(pass.removed, [(origin.clone(), 2), (origin.clone(), 1)]);
    let after = listing(&endpoint).await;
    assert!(!after.contains("backup-1.rdb.zst.age") && !after.contains("backup-2.rdb.zst.age"), "{after}");
    assert!(after.contains("backup-3.rdb.zst.age"), "{after}");

    // Disaster recovery reads the origin's backup back from S3 into another instance.
    let destination = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let body = serde_json::json!({"backup_guid": backup_guid, "encryption_key": key}).to_string();
    let (status, performed) = app
        .api_as(
            &app.token,
            Method::POST,
            &format!("/v1/instances/{destination}/disaster-recovery/perform"),
            Some(&body),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{performed}");
    app.wait_done(&format!("/v1/instances/{destination}/restores/1")).await;
    let dest = app.bind(&destination, REDIS_SERVICE, REDIS_PLAN).await;
    let mut conn = redis(&dest).await;
    let city: String = redis::cmd("GET").arg("city").query_async(&mut conn).await.unwrap();
    assert_eq!(city, "Lisbon");
}

#[tokio::test]
async fn a_failing_or_unreachable_store_fails_the_backup() {
    let (_moto, endpoint) = start_moto().await;
    let dead = format!("http://127.0.0.1:{}", engines::free_port().unwrap());
    for (endpoint, bucket, what) in
        [(endpoint.as_str(), "no-such-bucket", "missing bucket"), (dead.as_str(), "backups", "unreachable")]
    {
        let dir = data_dir();
        let app = TestApp::start_in(dir.path(), s3_config(dir.path(), endpoint, bucket)).await;
        let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
        let backup = app.create_backup(&id).await;
        let finished = app.wait_finished(&format!("/v1/instances/{id}/backups/{backup}")).await;
        assert_eq!(finished["status"], "failed", "{what}: {finished}");
        let job = app.state().store.backup_by_seq(app.state().store.instance_by_guid(&id).await.unwrap().id, backup);
        let job = job.await.unwrap().job;
        let error = job.error.unwrap_or_default();
        assert!(error.contains(&format!("starting the upload to s3://{bucket}/svcdash")), "{what}: {error}");
    }
    // Nothing was left in the real server's bucket either.
    assert!(!listing(&endpoint).await.contains(".zst.age"));
}
