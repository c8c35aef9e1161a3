//! Continuous archiving of PostgreSQL's write-ahead log: a finished segment reaches
//! the backup store encrypted, PostgreSQL learns it is archived only then, nobody
//! but the instance's account may hand segments over, and only PostgreSQL
//! instances archive.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use tokio::io::AsyncReadExt;

use crate::helpers::*;

async fn admin(spec: &engines::NodeSpec) -> PgConnection {
    pg_admin(spec, "postgres").await
}

async fn show(conn: &mut PgConnection, setting: &str) -> String {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SHOW {setting}"))).fetch_one(conn).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_archiving_instance_hands_every_finished_segment_to_the_store() {
    let app = TestApp::start().await;
    let id = app.provision_with(PG_SERVICE, PG_PLAN, "org-a", json!({"continuous_archiving": true})).await;
    let instance = app.state().store.instance_by_guid(&id).await.unwrap();
    assert!(instance.continuous_archiving);
    let spec = app.node(&id).await;
    let mut conn = admin(&spec).await;
    assert_eq!(show(&mut conn, "archive_mode").await, "on");
    assert_eq!(show(&mut conn, "archive_timeout").await, "1min");

    sqlx::query("CREATE TABLE archived AS SELECT g, md5(g::text) AS h FROM generate_series(1, 20000) g")
        .execute(&mut conn)
        .await
        .unwrap();
    let name: String =
        sqlx::query_scalar("SELECT pg_walfile_name(pg_current_wal_lsn())").fetch_one(&mut conn).await.unwrap();
    sqlx::query("SELECT pg_switch_wal()").execute(&mut conn).await.unwrap();

    let store = app.state().store.clone();
    let segment = app
        .wait_for(&format!("segment {name} archived"), Duration::from_secs(90), || {
            let (store, name) = (store.clone(), name.clone());
            async move { store.wal_segment(instance.id, &name).await.unwrap() }
        })
        .await;
    assert_eq!(segment.timeline, 1);
    assert_eq!(segment.plain_size, 16 << 20);
    assert_eq!(segment.object_key, format!("{}/wal/00000001/{name}.zst.age", instance.backup_guid));
    assert!(segment.size < segment.plain_size / 4, "a mostly empty segment compresses: {} bytes", segment.size);
    assert!(segment.handed_over_at <= segment.archived_at);

    // The stored object is encrypted, and opens with the instance's key to the
    // very bytes PostgreSQL handed over.
    let stored = app.data.join("backups").join(&segment.object_key);
    assert!(std::fs::read(&stored).unwrap().starts_with(b"age-encryption.org/v1"));
    let key = app.state().key_by_id(segment.key_id).await.unwrap();
    let (writer, mut reader) = tokio::io::duplex(1 << 20);
    let collect = tokio::spawn(async move {
        let mut plain = Vec::new();
        reader.read_to_end(&mut plain).await.unwrap();
        plain
    });
    let storage = app.state().storage.clone();
    let size = backup::download(&storage, &segment.object_key, &segment.sha256, key.identity(), writer).await.unwrap();
    let plain = collect.await.unwrap();
    assert_eq!(size, 16 << 20);
    assert_eq!(hex::encode(Sha256::digest(&plain)), segment.plain_sha256);

    // PostgreSQL saw the hand-over succeed.
    let archived = app
        .wait_for("pg_stat_archiver to count it", Duration::from_secs(30), || {
            let (spec, name) = (spec.clone(), name.clone());
            async move {
                let mut conn = admin(&spec).await;
                let last: Option<String> = sqlx::query_scalar("SELECT last_archived_wal FROM pg_stat_archiver")
                    .fetch_one(&mut conn)
                    .await
                    .ok()?;
                (last.as_deref() >= Some(name.as_str())).then_some(last)
            }
        })
        .await;
    assert!(archived.is_some());

    // The socket is for the instance's account only.
    let socket = app.layout(&id).await.archive_socket();
    if nix::unistd::Uid::effective().is_root() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let meta = std::fs::symlink_metadata(&socket).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        assert_eq!(meta.uid(), 0);
        // Root is not the account either: it is refused before svcdash reads a byte.
        let dir = std::fs::File::open(socket.parent().unwrap()).unwrap();
        let via = format!("/proc/self/fd/{}/archive.sock", std::os::fd::AsRawFd::as_raw_fd(&dir));
        let mut stream = tokio::net::UnixStream::connect(&via).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("ERR only the instance's own account"), "{answer}");
        assert!(store.wal_segment(instance.id, "000000010000000000000099").await.unwrap().is_none());
    }

    app.deprovision(&id, PG_SERVICE, PG_PLAN).await;
    assert!(!socket.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_postgresql_instances_archive_and_only_when_asked() {
    let app = TestApp::start().await;
    for (service, plan, parameters, expected) in [
        (REDIS_SERVICE, REDIS_PLAN, json!({"continuous_archiving": true}), "PostgreSQL instances only"),
        (PG_SERVICE, PG_PLAN, json!({"continuous_archiving": "yes"}), "must be true or false"),
    ] {
        let id = server::instances::new_guid();
        let (status, body) = app
            .broker(
                Method::PUT,
                &format!("/v2/service_instances/{id}?accepts_incomplete=true"),
                Some(json!({"service_id": service, "plan_id": plan, "organization_guid": "org-a",
                            "space_guid": "space-1", "parameters": parameters})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["description"].as_str().unwrap().contains(expected), "{body}");
        assert!(app.state().store.instance_by_guid(&id).await.is_err(), "nothing was recorded");
    }

    // The plan's default is off.
    let id = app.provision(PG_SERVICE, PG_PLAN, "org-a").await;
    let spec = app.node(&id).await;
    assert!(spec.archive.is_none());
    assert_eq!(show(&mut admin(&spec).await, "archive_mode").await, "off");
    assert!(!app.layout(&id).await.archive_socket().exists());
    app.deprovision(&id, PG_SERVICE, PG_PLAN).await;
}

/// Hands `contents` over as the file `name`, as the node's `archive_command` does:
/// `svcdash wal-push` as the instance's account, from the data folder. Returns
/// what it printed when it failed.
fn wal_push(layout: &engines::NodeLayout, name: &str, contents: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;
    let data = layout.data_dir();
    let owner = std::fs::metadata(&data).unwrap();
    let file = data.join(format!("handed-over-{name}"));
    std::fs::write(&file, contents).unwrap();
    std::os::unix::fs::chown(&file, Some(owner.uid()), Some(owner.gid())).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_svcdash"));
    command.args(["wal-push", "../../ephemeral/archive.sock"]).arg(&file).arg(name).current_dir(&data);
    if nix::unistd::Uid::effective().is_root() {
        command.uid(owner.uid()).gid(owner.gid());
    }
    let out = command.output().unwrap();
    std::fs::remove_file(&file).unwrap();
    match out.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

/// A restore's staging server archives its new timeline's history file when it
/// promotes; when that restore then fails, nothing goes on from it, and a cluster
/// node promoted later takes the same timeline number. Its history file takes the
/// place of the abandoned one (archiving would stop for good otherwise); once a
/// segment of the timeline is archived, its history file is settled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_history_file_gives_way_only_while_nothing_went_on_from_its_timeline() {
    let app = TestApp::start().await;
    let id = app.provision_with(PG_SERVICE, PG_PLAN, "org-a", json!({"continuous_archiving": true})).await;
    let instance = app.state().store.instance_by_guid(&id).await.unwrap();
    let layout = app.layout(&id).await;
    let store = app.state().store.clone();
    let sha = |bytes: &[u8]| hex::encode(Sha256::digest(bytes));
    let recorded = |name: &'static str| {
        let store = store.clone();
        async move { store.wal_segment(instance.id, name).await.unwrap().unwrap().plain_sha256 }
    };

    let socket = layout.archive_socket();
    app.wait_for("the archive socket", Duration::from_secs(30), || async { socket.exists().then_some(()) }).await;

    let abandoned = b"1\t0/3000060\tbefore 2026-12-04 10:15:00.000+00\n";
    let promoted = b"1\t0/5000000\tno recovery target specified\n";
    wal_push(&layout, "00000007.history", abandoned).unwrap();
    assert_eq!(recorded("00000007.history").await, sha(abandoned));
    wal_push(&layout, "00000007.history", promoted).unwrap();
    assert_eq!(recorded("00000007.history").await, sha(promoted), "the promoted node's history file is archived");
    // Its object holds the new contents, for a replay that follows timeline 7.
    let segment = store.wal_segment(instance.id, "00000007.history").await.unwrap().unwrap();
    let key = app.state().key_by_id(segment.key_id).await.unwrap();
    let (writer, mut reader) = tokio::io::duplex(1 << 16);
    let storage = app.state().storage.clone();
    backup::download(&storage, &segment.object_key, &segment.sha256, key.identity(), writer).await.unwrap();
    let mut plain = Vec::new();
    reader.read_to_end(&mut plain).await.unwrap();
    assert_eq!(plain, promoted);
    let objects = app.backup_objects();
    let history: Vec<_> = objects.iter().filter(|p| p.to_string_lossy().contains("00000007.history")).collect();
    assert_eq!(history.len(), 1, "the replaced file's object is removed: {history:?}");

    // The timeline goes on: its history file no longer changes.
    wal_push(&layout, "000000070000000000000005", &vec![0; 16 << 20]).unwrap();
    let refused = wal_push(&layout, "00000007.history", abandoned).unwrap_err();
    assert!(refused.contains("archived before with other contents"), "{refused}");
    assert_eq!(recorded("00000007.history").await, sha(promoted));
    // The same contents again (PostgreSQL did not see the answer) are fine.
    wal_push(&layout, "00000007.history", promoted).unwrap();
    // A segment never changes.
    let refused = wal_push(&layout, "000000070000000000000005", &vec![1; 16 << 20]).unwrap_err();
    assert!(refused.contains("archived before with other contents"), "{refused}");
    // A `.partial` is never replayed: the newer one is kept.
    let partial = "000000060000000000000005.partial";
    wal_push(&layout, partial, b"first").unwrap();
    wal_push(&layout, partial, b"second").unwrap();
    assert_eq!(recorded(partial).await, sha(b"second"));
    app.deprovision(&id, PG_SERVICE, PG_PLAN).await;
}
