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
    let client = reqwest::Client::new();
    wait_for("moto to answer", Duration::from_secs(60), &mut || {
        let (client, endpoint) = (&client, &endpoint);
        async move { client.get(endpoint.as_str()).send().await.ok().map(|_| ()) }
    })
    .await;
    let created = client.put(format!("{endpoint}/backups")).send().await.unwrap();
    assert!(created.status().is_success(), "creating the bucket: {}", created.status());
    (moto, endpoint)
}

#[tokio::test]
async fn backups_go_to_s3_in_several_parts_and_restore_from_there() {
    let (_moto, endpoint) = start_moto().await;
    let dir = data_dir();
    let mut config = config(dir.path());
    config.backups.url = Some("s3://backups/svcdash".into());
    config.backups.part_size_mib = 5;
    for (k, v) in [
        ("aws_endpoint", endpoint.as_str()),
        ("aws_allow_http", "true"),
        ("aws_access_key_id", "test"),
        ("aws_secret_access_key", "test"),
        ("aws_region", "us-east-1"),
        ("aws_virtual_hosted_style_request", "false"),
    ] {
        config.backups.options.insert(k.into(), v.into());
    }
    let app = TestApp::start_in(dir.path(), config).await;
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
    let done = app.wait_finished(&format!("/v1/instances/{id}/backups/{backup}")).await;
    assert_eq!(done["status"], "done", "{done}");
    assert!(done["size"].as_i64().unwrap() > 10 << 20, "expected a multi-part object: {done}");
    assert!(app.backup_objects().is_empty(), "nothing is written to the local backup folder");

    let listing = reqwest::get(format!("{endpoint}/backups?list-type=2")).await.unwrap().text().await.unwrap();
    assert!(listing.contains("backup-1.dump.zst.age"), "{listing}");
    assert!(listing.contains(&done["size"].to_string()), "the stored size differs from the recorded one: {listing}");

    sqlx::raw_sql("TRUNCATE blobs").execute(&mut conn).await.unwrap();
    drop(conn);
    let restore = app.restore(&id, backup).await;
    let finished = app.wait_finished(&format!("/v1/instances/{id}/restores/{restore}")).await;
    assert_eq!(finished["status"], "done", "{finished}");
    let mut conn = pg(&creds).await;
    assert_eq!(checksum(&mut conn).await, before);
}

async fn checksum(conn: &mut sqlx::PgConnection) -> String {
    sqlx::query_scalar("SELECT md5(string_agg(body, '' ORDER BY id)) FROM blobs").fetch_one(conn).await.unwrap()
}
