//! Backups and restores of real engines, end to end through the API.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::{Connection, Row};

use crate::helpers::*;

/// Rows that look like application data: text, hex and JSON.
async fn fill_postgres(conn: &mut sqlx::PgConnection, rows: i64) {
    sqlx::raw_sql(
        "CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL, token text, profile jsonb);
         CREATE INDEX accounts_email ON accounts(email);",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO accounts SELECT g, 'user' || g || '@example.com', md5(g::text), \
         jsonb_build_object('n', g, 'tags', jsonb_build_array('a', md5((g * 3)::text))) FROM generate_series(1, $1) g",
    )
    .bind(rows)
    .execute(&mut *conn)
    .await
    .unwrap();
}

async fn snapshot(conn: &mut sqlx::PgConnection) -> Vec<String> {
    sqlx::query("SELECT id::text || '|' || email || '|' || coalesce(token, '') || '|' || profile::text AS r FROM accounts ORDER BY id")
        .fetch_all(&mut *conn)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<String, _>("r"))
        .collect()
}

fn assert_backup_shape(backup: &Value) {
    let keys: Vec<&str> = backup.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["downloadable", "finished_at", "id", "size", "status", "triggered_at"], "{backup}");
    for field in ["triggered_at", "finished_at"] {
        let text = backup[field].as_str().unwrap();
        // 2021-04-21T01:30:03.832Z
        assert_eq!(text.len(), 24, "{text}");
        assert!(text.ends_with('Z') && text.as_bytes()[19] == b'.', "{text}");
    }
}

#[tokio::test]
async fn postgresql_backup_and_restore_round_trip() {
    let app = TestApp::start().await;
    let id = app.provision(PG_SERVICE, PG_PLAN, "org-a").await;
    let creds = app.bind(&id, PG_SERVICE, PG_PLAN).await;
    let mut conn = pg(&creds).await;
    fill_postgres(&mut conn, 5000).await;
    let before = snapshot(&mut conn).await;

    let backup = app.create_backup(&id).await;
    assert_eq!(backup, 1);
    let done = app.wait_done(&format!("/v1/instances/{id}/backups/{backup}")).await;
    assert!(done["size"].as_i64().unwrap() > 1000, "{done}");
    assert_eq!(done["downloadable"], false);
    assert_backup_shape(&done);

    sqlx::raw_sql("DELETE FROM accounts WHERE id > 100; UPDATE accounts SET email = 'changed' WHERE id = 1; CREATE TABLE later (x int);")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);

    let restore = app.restore(&id, backup).await;
    let finished = app.wait_done(&format!("/v1/instances/{id}/restores/{restore}")).await;
    assert_eq!(finished["backup_id"], backup);

    let mut conn = pg(&creds).await;
    assert_eq!(snapshot(&mut conn).await, before);
    let later: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('later')::text").fetch_one(&mut conn).await.unwrap();
    assert_eq!(later, None, "a table created after the backup is gone after the restore");
    // The bound user still owns what it creates after the database was swapped.
    sqlx::raw_sql("CREATE TABLE after_restore (x int)").execute(&mut conn).await.unwrap();

    let (status, list) = app.api(Method::GET, &format!("/v1/instances/{id}/restores")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let keys: Vec<&str> = list[0].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["backup_id", "finished_at", "id", "status", "triggered_at"]);
}

#[tokio::test]
async fn redis_backup_and_restore_round_trip() {
    let app = TestApp::start().await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let creds = app.bind(&id, REDIS_SERVICE, REDIS_PLAN).await;
    let mut conn = redis(&creds).await;
    for i in 0..500 {
        redis::cmd("SET").arg(format!("key:{i}")).arg(format!("value-{i}")).query_async::<()>(&mut conn).await.unwrap();
    }
    redis::cmd("HSET").arg("user:1").arg("name").arg("ada").query_async::<()>(&mut conn).await.unwrap();

    let backup = app.create_backup(&id).await;
    let done = app.wait_done(&format!("/v1/instances/{id}/backups/{backup}")).await;
    assert_backup_shape(&done);

    redis::cmd("FLUSHALL").query_async::<()>(&mut conn).await.unwrap();
    redis::cmd("SET").arg("new").arg("1").query_async::<()>(&mut conn).await.unwrap();

    let restore = app.restore(&id, backup).await;
    app.wait_done(&format!("/v1/instances/{id}/restores/{restore}")).await;

    let mut conn = redis(&creds).await;
    let size: i64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert_eq!(size, 501);
    let v: String = redis::cmd("GET").arg("key:42").query_async(&mut conn).await.unwrap();
    assert_eq!(v, "value-42");
    let name: String = redis::cmd("HGET").arg("user:1").arg("name").query_async(&mut conn).await.unwrap();
    assert_eq!(name, "ada");
    let new: Option<String> = redis::cmd("GET").arg("new").query_async(&mut conn).await.unwrap();
    assert_eq!(new, None);

    // The restored data is in the new append-only file too: it survives a restart.
    let spec = app.node(&id).await;
    app.state().deployer.stop(&spec).await.unwrap();
    app.state().deployer.start(&spec).await.unwrap();
    let mut conn = redis(&creds).await;
    let size: i64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert_eq!(size, 501);
}

/// A schema with more than tables: keys, a foreign key, a check, an expression
/// index, a trigger function, a view, an empty table, sequences and a large object.
const RICH_SCHEMA: &str = "
    CREATE TABLE customers (id serial PRIMARY KEY, email text UNIQUE NOT NULL);
    CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        customer_id int NOT NULL REFERENCES customers(id), total numeric(10,2) CHECK (total >= 0), note text);
    CREATE INDEX orders_lower_note ON orders (lower(note));
    CREATE TABLE audit (n bigserial PRIMARY KEY, what text NOT NULL);
    CREATE TABLE nothing_yet (x int);
    CREATE FUNCTION audit_order() RETURNS trigger LANGUAGE plpgsql
        AS $$ BEGIN INSERT INTO audit (what) VALUES ('order ' || NEW.id); RETURN NEW; END $$;
    CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION audit_order();
    CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
    INSERT INTO customers (email) SELECT 'c' || n || '@example.org' FROM generate_series(1, 300) n;
    INSERT INTO orders (customer_id, total, note)
        SELECT 1 + n % 300, n * 0.5, 'Note ' || md5(n::text) || E'\ttab' FROM generate_series(1, 20000) n;
    SELECT lo_from_bytea(424242, convert_to(repeat('large object ', 1000), 'UTF8'));
";

/// Everything a restore must bring back, as text.
async fn rich_snapshot(conn: &mut sqlx::PgConnection) -> Vec<String> {
    let queries = [
        "SELECT count(*)::text || ' ' || md5(string_agg(c::text, ',' ORDER BY id)) FROM customers c",
        "SELECT count(*)::text || ' ' || md5(string_agg(o::text, ',' ORDER BY id)) FROM orders o",
        "SELECT count(*)::text || ' ' || md5(string_agg(a::text, ',' ORDER BY n)) FROM audit a",
        "SELECT count(*)::text FROM big_orders",
        "SELECT count(*)::text FROM nothing_yet",
        "SELECT last_value::text FROM customers_id_seq",
        "SELECT last_value::text FROM audit_n_seq",
        "SELECT md5(lo_get(424242))",
        "SELECT string_agg(indexname || ':' || indexdef, '; ' ORDER BY indexname) FROM pg_indexes WHERE schemaname = 'public'",
        "SELECT string_agg(conname || ':' || contype::text, '; ' ORDER BY conname) FROM pg_constraint \
         WHERE connamespace = 'public'::regnamespace",
        "SELECT string_agg(tgname, '; ' ORDER BY tgname) FROM pg_trigger WHERE NOT tgisinternal",
    ];
    let mut out = Vec::new();
    for query in queries {
        let value: Option<String> = sqlx::query_scalar(query).fetch_one(&mut *conn).await.unwrap();
        out.push(format!("{query} => {}", value.unwrap_or_default()));
    }
    out
}

#[tokio::test]
async fn a_postgresql_backup_restores_in_pieces_and_as_one_stream_alike() {
    let app = TestApp::start().await;
    let id = app.provision(PG_SERVICE, PG_PLAN, "org-a").await;
    let creds = app.bind(&id, PG_SERVICE, PG_PLAN).await;
    let mut conn = pg(&creds).await;
    sqlx::raw_sql(RICH_SCHEMA).execute(&mut conn).await.unwrap();
    let before = rich_snapshot(&mut conn).await;
    assert!(before[2].contains("=> 20000 "), "the trigger wrote the audit: {before:?}");

    let seq = app.create_backup(&id).await;
    app.wait_done(&format!("/v1/instances/{id}/backups/{seq}")).await;
    let store = &app.state().store;
    let instance = store.instance_by_guid(&id).await.unwrap();
    let backup = store.backup_by_seq(instance.id, seq).await.unwrap();
    let layout: Value = serde_json::from_str(&store.backup_layout(backup.id).await.unwrap().unwrap()).unwrap();
    let blocks = layout["engine"]["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 5, "four tables and the large objects, each to be read on its own: {layout}");
    assert!(!layout["frames"].as_array().unwrap().is_empty(), "{layout}");

    let vandalise = "DELETE FROM orders WHERE id > 5; DROP TRIGGER orders_audit ON orders; \
                     INSERT INTO nothing_yet VALUES (1); SELECT lo_unlink(424242); DROP INDEX orders_lower_note;";
    sqlx::raw_sql(vandalise).execute(&mut conn).await.unwrap();
    drop(conn);
    let restore = app.restore(&id, seq).await;
    app.wait_done(&format!("/v1/instances/{id}/restores/{restore}")).await;
    let mut conn = pg(&creds).await;
    assert_eq!(rich_snapshot(&mut conn).await, before, "restored in pieces");
    // The replaced database goes in the background, soon after.
    let mut replaced = 1;
    for _ in 0..300 {
        replaced = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pg_database WHERE datname = 'app_replaced'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        if replaced == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(replaced, 0, "the replaced database was not dropped");

    // A backup taken before layouts were noted restores as one stream.
    sqlx::raw_sql(vandalise).execute(&mut conn).await.unwrap();
    drop(conn);
    let state_db = app.state().config.database_path();
    let mut sqlite = sqlx::SqliteConnection::connect(&format!("sqlite://{}", state_db.display())).await.unwrap();
    let forgotten = sqlx::query("DELETE FROM backup_layouts WHERE backup_id = ?")
        .bind(backup.id)
        .execute(&mut sqlite)
        .await
        .unwrap();
    assert_eq!(forgotten.rows_affected(), 1);
    drop(sqlite);
    let restore = app.restore(&id, seq).await;
    app.wait_done(&format!("/v1/instances/{id}/restores/{restore}")).await;
    let mut conn = pg(&creds).await;
    assert_eq!(rich_snapshot(&mut conn).await, before, "restored as one stream");
}

#[tokio::test]
async fn restore_of_a_corrupted_backup_fails_and_leaves_data_untouched() {
    let app = TestApp::start().await;
    let id = app.provision(PG_SERVICE, PG_PLAN, "org-a").await;
    let creds = app.bind(&id, PG_SERVICE, PG_PLAN).await;
    let mut conn = pg(&creds).await;
    fill_postgres(&mut conn, 2000).await;
    let backup = app.create_backup(&id).await;
    app.wait_done(&format!("/v1/instances/{id}/backups/{backup}")).await;

    sqlx::raw_sql("DELETE FROM accounts WHERE id > 10").execute(&mut conn).await.unwrap();
    let current = snapshot(&mut conn).await;
    drop(conn);

    // One changed byte in the middle of the stored object.
    let objects = app.backup_objects();
    assert_eq!(objects.len(), 1, "{objects:?}");
    let mut bytes = std::fs::read(&objects[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&objects[0], &bytes).unwrap();

    let restore = app.restore(&id, backup).await;
    let finished = app.wait_finished(&format!("/v1/instances/{id}/restores/{restore}")).await;
    assert_eq!(finished["status"], "failed", "{finished}");
    let job = app
        .state()
        .store
        .restore_by_seq(app.state().store.instance_by_guid(&id).await.unwrap().id, restore)
        .await
        .unwrap();
    let error = job.jobs[0].error.clone().unwrap();
    assert!(error.contains("authentication") || error.contains("sha256"), "{error}");

    let mut conn = pg(&creds).await;
    assert_eq!(snapshot(&mut conn).await, current, "the failed restore changed the data");

    // A truncated object fails the same way.
    std::fs::write(&objects[0], &bytes[..middle]).unwrap();
    let restore = app.restore(&id, backup).await;
    let finished = app.wait_finished(&format!("/v1/instances/{id}/restores/{restore}")).await;
    assert_eq!(finished["status"], "failed", "{finished}");
    assert_eq!(snapshot(&mut conn).await, current);
}

#[tokio::test]
async fn engine_killed_during_a_backup_fails_the_backup() {
    let dir = data_dir();
    let mut config = config(dir.path());
    // Slow compression keeps the dump streaming long enough to kill the engine mid-way.
    config.backups.zstd_level = 19;
    config.backups.zstd_workers = 0;
    let app = TestApp::start_in(dir.path(), config).await;
    let id = app.provision(PG_SERVICE, PG_PLAN, "org-a").await;
    let creds = app.bind(&id, PG_SERVICE, PG_PLAN).await;
    let mut conn = pg(&creds).await;
    sqlx::raw_sql(
        "CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text) || md5((g * 7)::text), 8) AS body \
         FROM generate_series(1, 100000) g",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);

    let backup = app.create_backup(&id).await;
    let path = format!("/v1/instances/{id}/backups/{backup}");
    app.wait_for("backup running", std::time::Duration::from_secs(30), || {
        let (app, path) = (&app, &path);
        async move { (app.api(Method::GET, path).await.1["status"] == "running").then_some(()) }
    })
    .await;
    let spec = app.node(&id).await;
    // Once pg_dump streams (the job first prepares the role it dumps as).
    let port = format!("--port {}", spec.port);
    app.wait_for("pg_dump to run", std::time::Duration::from_secs(30), || {
        let port = port.clone();
        async move {
            std::fs::read_dir("/proc").ok()?.flatten().find_map(|p| {
                let cmdline = std::fs::read(p.path().join("cmdline")).ok()?;
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                (cmdline.contains("pg_dump") && cmdline.contains(&port)).then_some(())
            })
        }
    })
    .await;
    let pid = engine_pid(app.state(), &spec).await.expect("postgres runs");
    // The whole process group: the postmaster and the backend serving pg_dump.
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();

    let finished = app.wait_finished(&path).await;
    assert_eq!(finished["status"], "failed", "{finished}");
    let stored = app
        .state()
        .store
        .backup_by_seq(app.state().store.instance_by_guid(&id).await.unwrap().id, backup)
        .await
        .unwrap();
    assert!(stored.job.error.as_deref().unwrap_or_default().contains("pg_dump"), "{:?}", stored.job.error);
    assert_eq!(stored.sha256, None);
    assert!(app.backup_objects().is_empty(), "a failed backup left an object: {:?}", app.backup_objects());
}

#[tokio::test]
async fn one_backup_and_one_restore_wait_in_the_queue_per_instance() {
    let dir = data_dir();
    let mut app = TestApp::start_in(dir.path(), config(dir.path())).await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let first = app.create_backup(&id).await;
    app.wait_done(&format!("/v1/instances/{id}/backups/{first}")).await;

    // Without job workers, what is queued stays queued.
    app.stop().await;
    let mut paused = config(dir.path());
    paused.jobs.workers = 0;
    paused.backups.schedule_spread_secs = 0;
    let mut app = TestApp::start_in(dir.path(), paused).await;
    let backups = format!("/v1/instances/{id}/backups");
    let (status, queued) = app.api(Method::POST, &backups).await;
    assert_eq!(status, StatusCode::OK, "{queued}");
    assert_eq!(queued, serde_json::json!({"id": 2, "message": "job to backup is queued"}));
    // Asking again answers with the queued backup, on both APIs.
    let (status, again) = app.api(Method::POST, &backups).await;
    assert_eq!((status, &again), (StatusCode::OK, &queued));
    let instance = app.state().store.instance_by_guid(&id).await.unwrap();
    let internal_id = app.state().store.backup_by_seq(instance.id, 2).await.unwrap().id;
    let (status, legacy) = app.api(Method::POST, &format!("/service-instances/{id}/backups")).await;
    assert_eq!(status, StatusCode::CREATED, "{legacy}");
    assert_eq!(legacy, serde_json::json!({"id": internal_id, "message": "job to backup is queued"}));
    // The schedule's slot passes with no other backup, and counts as done.
    let cron = server::schedule::parse("* * * * *").unwrap();
    let now = chrono::Utc::now() + chrono::Duration::minutes(2);
    assert!(server::schedule::tick(app.state(), &cron, now).await.unwrap().is_empty());
    assert!(app.state().store.last_scheduled_slot(instance.id).await.unwrap().is_some(), "the slot is recorded");
    let (_, list) = app.api(Method::GET, &backups).await;
    let listed: Vec<(i64, &str)> =
        list.as_array().unwrap().iter().map(|b| (b["id"].as_i64().unwrap(), b["status"].as_str().unwrap())).collect();
    assert_eq!(listed, [(2, "queued"), (1, "done")]);
    let (_, log) = app.api(Method::GET, &format!("/v1/instances/{id}/audit")).await;
    let details: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "backup.create")
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    // Newest first: the schedule's slot, the two repeated requests, the queued backup, the first.
    assert_eq!(details.len(), 5, "{details:?}");
    assert!(details[0].starts_with("backup 2 was already queued") && details[0].contains("schedule"), "{details:?}");
    assert_eq!(details[1..3], ["backup 2 was already queued; no other backup queued"; 2][..], "{details:?}");
    assert_eq!(details[3..], ["backup 2 queued", "backup 1 queued"][..]);

    // One queued restore: a second is refused (409 here, the deprecated API's 412).
    let restore = format!("/v1/instances/{id}/backups/{first}/restore");
    let (status, created) = app.api(Method::POST, &restore).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let (status, refused) = app.api(Method::POST, &restore).await;
    assert_eq!((status, refused["error"].as_str()), (StatusCode::CONFLICT, Some("RestoreInProgress")), "{refused}");
    assert!(refused["description"].as_str().unwrap().contains("restore 1 (of backup 1) is queued"), "{refused}");
    let first_internal = app.state().store.backup_by_seq(instance.id, first).await.unwrap().id;
    let body = serde_json::json!({"instance_id": instance.id, "backup_id": first_internal}).to_string();
    let (status, legacy) =
        app.api_as(&app.token, Method::POST, &format!("/service-instances/{id}/backups/restore"), Some(&body)).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{legacy}");
    assert!(legacy["msg"].as_str().unwrap().contains("restore 1"), "{legacy}");
    let (_, restores) = app.api(Method::GET, &format!("/v1/instances/{id}/restores")).await;
    assert_eq!(restores.as_array().unwrap().len(), 1, "{restores}");

    // Workers back: the queued backup and restore both run.
    app.stop().await;
    let app = TestApp::start_in(dir.path(), config(dir.path())).await;
    app.wait_done(&format!("{backups}/2")).await;
    app.wait_done(&format!("/v1/instances/{id}/restores/1")).await;
    assert_eq!(app.api(Method::GET, &backups).await.1.as_array().unwrap().len(), 2);
}
