//! Tenants against each other, the host and svcdash's secrets: each test is one
//! attack a tenant with a binding (or with code running in its engine) could try.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use reqwest::Method;

use crate::helpers::*;

/// The account an instance's engines run under: (name, uid, gid).
async fn account(app: &TestApp, id: &str) -> (String, u32, u32) {
    let name = app.state().store.instance_by_guid(id).await.unwrap().local_name;
    let user = nix::unistd::User::from_name(&name).unwrap().unwrap_or_else(|| panic!("no account {name}"));
    (name, user.uid.as_raw(), user.gid.as_raw())
}

/// Runs a command as an instance's account (as code in its engine would run).
fn as_account(uid: u32, gid: u32, program: &str, args: &[&str]) -> (bool, String) {
    use std::os::unix::process::CommandExt;
    let out = Command::new(program).args(args).uid(uid).gid(gid).current_dir("/").output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The real uid of a process, from /proc.
fn process_uid(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap();
    line.split_whitespace().next().unwrap().parse().unwrap()
}

fn environment(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    raw.split(|b| *b == 0).filter(|v| !v.is_empty()).map(|v| String::from_utf8_lossy(v).into_owned()).collect()
}

async fn redis_error(conn: &mut redis::aio::MultiplexedConnection, args: &[&str]) -> String {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    match cmd.query_async::<redis::Value>(conn).await {
        Ok(value) => panic!("{args:?} was allowed: {value:?}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn redis_serves_no_one_without_credentials_and_bindings_reach_only_their_data() {
    let app = TestApp::start().await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let creds = app.bind(&id, REDIS_SERVICE, REDIS_PLAN).await;
    let port = creds["port"].as_u64().unwrap();

    // Any process on the host, without credentials.
    let anonymous = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut conn = anonymous.get_multiplexed_async_connection().await.unwrap();
    for args in [&["PING"][..], &["ACL", "WHOAMI"], &["GET", "x"], &["FLUSHALL"], &["CONFIG", "SET", "dir", "/tmp"]] {
        let error = redis_error(&mut conn, args).await;
        assert!(error.contains("NOAUTH"), "{args:?}: {error}");
    }
    // The default user is off, in the ACL file too (a restart keeps it off).
    let admin = app.node(&id).await;
    let admin_url = {
        use secrecy::ExposeSecret;
        format!("redis://{}:{}@127.0.0.1:{port}", admin.admin_user, admin.admin_password.expose_secret())
    };
    let mut admin_conn = redis::Client::open(admin_url).unwrap().get_multiplexed_async_connection().await.unwrap();
    let default_user: Vec<String> = redis::cmd("ACL").arg("LIST").query_async(&mut admin_conn).await.unwrap();
    let default_user = default_user.iter().find(|u| u.starts_with("user default ")).unwrap();
    assert!(default_user.contains(" off ") && default_user.ends_with(" -@all"), "{default_user}");

    // A binding's user: everything on its data, nothing on the server.
    let mut conn = redis(&creds).await;
    let _: () = redis::cmd("SET").arg("k").arg("v").query_async(&mut conn).await.unwrap();
    let got: String = redis::cmd("EVAL")
        .arg("return redis.call('GET', KEYS[1])")
        .arg(1)
        .arg("k")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(got, "v");
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut conn).await.unwrap();
    assert_eq!(keys, ["k"]);
    let whoami: String = redis::cmd("ACL").arg("WHOAMI").query_async(&mut conn).await.unwrap();
    assert_eq!(whoami, creds["username"].as_str().unwrap());
    let refused: &[&[&str]] = &[
        &["CONFIG", "SET", "dir", "/tmp"],
        &["CONFIG", "SET", "dbfilename", "x.rdb"],
        &["CONFIG", "GET", "dir"],
        &["MODULE", "LOAD", "/tmp/x.so"],
        &["DEBUG", "SLEEP", "0"],
        &["ACL", "SETUSER", "evil", "on", ">pw", "+@all"],
        &["ACL", "LIST"],
        &["SHUTDOWN", "NOSAVE"],
        &["REPLICAOF", "127.0.0.1", "1"],
        &["SLAVEOF", "127.0.0.1", "1"],
        &["FAILOVER"],
        &["MIGRATE", "127.0.0.1", "1", "k", "0", "1000"],
        &["SAVE"],
        &["BGSAVE"],
        &["BGREWRITEAOF"],
        &["CLIENT", "KILL", "TYPE", "normal"],
        &["EVAL", "return redis.call('CONFIG', 'SET', 'dir', '/tmp')", "0"],
    ];
    for args in refused {
        let error = redis_error(&mut conn, args).await;
        // NOPERM from the ACL; MODULE and DEBUG are also off in the configuration.
        let error = error.to_lowercase();
        assert!(error.contains("noperm") || error.contains("not allowed"), "{args:?}: {error}");
    }
    // Still up, data intact, its files where they were.
    let got: String = redis::cmd("GET").arg("k").query_async(&mut conn).await.unwrap();
    assert_eq!(got, "v");
    let _: () = redis::cmd("FLUSHDB").query_async(&mut conn).await.unwrap();
}

#[tokio::test]
async fn a_bound_postgres_user_cannot_become_superuser_by_restoring_its_own_backup() {
    let app = TestApp::start().await;
    let id = app.provision(PG_SERVICE, PG_PLAN, "org-a").await;
    let creds = app.bind(&id, PG_SERVICE, PG_PLAN).await;
    let user = creds["username"].as_str().unwrap().to_owned();
    let mut conn = pg(&creds).await;
    // A CHECK constraint that makes the binding's role a superuser whenever a
    // superuser evaluates it, as pg_restore does while it loads the rows.
    let trap = format!(
        "CREATE FUNCTION escalate(v int) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN \
           IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN \
             EXECUTE 'ALTER ROLE {user} SUPERUSER'; \
           END IF; \
           RETURN true; \
         END $$; \
         CREATE TABLE trap (v int CHECK (escalate(v))); \
         INSERT INTO trap SELECT generate_series(1, 10); \
         CREATE TABLE guarded (v int); \
         ALTER TABLE guarded ENABLE ROW LEVEL SECURITY; ALTER TABLE guarded FORCE ROW LEVEL SECURITY; \
         CREATE POLICY only_big ON guarded USING (v > 5) WITH CHECK (true); \
         INSERT INTO guarded VALUES (1), (10); \
         SET ROLE NONE; CREATE TABLE own_table (v int); INSERT INTO own_table VALUES (7);"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(trap)).execute(&mut conn).await.unwrap();
    drop(conn);
    // The binding reaches its database only.
    let other_db = creds["uri"].as_str().unwrap().replace("/app", "/postgres");
    let refused = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&other_db).await
    };
    assert!(refused.is_err_and(|e| e.to_string().contains("permission denied")), "the binding reaches `postgres`");

    let backup = app.create_backup(&id).await;
    app.wait_done(&format!("/v1/instances/{id}/backups/{backup}")).await;
    let restore = app.restore(&id, backup).await;
    app.wait_done(&format!("/v1/instances/{id}/restores/{restore}")).await;

    let admin = app.node(&id).await;
    let mut admin_conn = pg_admin(&admin, "app").await;
    let superuser: bool = sqlx::query_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = $1")
        .bind(&user)
        .fetch_one(&mut admin_conn)
        .await
        .unwrap();
    assert!(!superuser, "restoring the backup made the binding's role a superuser");
    // Everything came back, the rows row security hides from the owner included.
    for (sql, expected) in [
        ("SELECT count(*) FROM trap", 10_i64),
        ("SELECT count(*) FROM guarded", 2),
        ("SELECT sum(v) FROM own_table", 7),
    ] {
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut admin_conn).await.unwrap();
        assert_eq!(n, expected, "{sql}");
    }
    let owner: String = sqlx::query_scalar("SELECT tableowner::text FROM pg_tables WHERE tablename = 'own_table'")
        .fetch_one(&mut admin_conn)
        .await
        .unwrap();
    assert_eq!(owner, "app_owner", "restored objects belong to the database owner role");
    // The roles dumps and restores used have no password left.
    let with_password: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_authid WHERE rolname IN ('svcdash_backup', 'svcdash_restore') AND rolpassword IS NOT NULL",
    )
    .fetch_one(&mut admin_conn)
    .await
    .unwrap();
    assert_eq!(with_password, 0);
    // The binding still works and sees what the owner role sees.
    let n: i64 = pg_value_eventually(&creds, "SELECT count(*) FROM guarded").await;
    assert_eq!(n, 1, "row security applies to the binding");
}

#[tokio::test]
async fn instances_run_under_accounts_of_their_own_that_reach_nothing_else() {
    let app = TestApp::start().await;
    let pg_id = app.provision(PG_SERVICE, PG_PLAN, "org-a").await;
    let redis_id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let redis_creds = app.bind(&redis_id, REDIS_SERVICE, REDIS_PLAN).await;
    let mut conn = redis(&redis_creds).await;
    let _: () = redis::cmd("SET").arg("secret").arg("of-org-b").query_async(&mut conn).await.unwrap();
    drop(conn);
    let backup = app.create_backup(&redis_id).await;
    app.wait_finished(&format!("/v1/instances/{redis_id}/backups/{backup}")).await;

    let (pg_name, pg_uid, pg_gid) = account(&app, &pg_id).await;
    let (redis_name, redis_uid, _) = account(&app, &redis_id).await;
    assert_ne!(pg_uid, redis_uid);
    for (id, uid) in [(&pg_id, pg_uid), (&redis_id, redis_uid)] {
        assert_ne!(uid, 0);
        let pid = engine_pid(app.state(), &app.node(id).await).await.unwrap();
        assert_eq!(process_uid(pid), uid, "the engine runs under its instance's account");
        // Nothing of svcdash's environment (its configuration may hold secrets).
        let env = environment(pid);
        let names: Vec<&str> = env.iter().map(|v| v.split('=').next().unwrap()).collect();
        assert!(
            names.iter().all(|n| ["PATH", "LANG"].contains(n) || n.starts_with("PG") || n.starts_with("LC_")),
            "{env:?}"
        );
    }

    // Code running as the PostgreSQL instance's account against the Redis
    // instance's files and svcdash's own.
    let redis_node = app.layout(&redis_id).await;
    let pg_node = app.layout(&pg_id).await;
    let data = app.data.clone();
    let probes = [
        ("cat", redis_node.data_dir().join("dump.rdb")),
        ("ls", redis_node.data_dir()),
        ("ls", redis_node.root().to_path_buf()),
        ("cat", redis_node.system().join("redis.conf")),
        ("ls", data.join("instances")),
        ("cat", data.join("svcdash.db")),
        ("cat", data.join("master.key")),
        ("ls", data.join("backups")),
    ];
    for (program, path) in &probes {
        let (ok, out) = as_account(pg_uid, pg_gid, program, &[path.to_str().unwrap()]);
        assert!(!ok && out.contains("Permission denied"), "{program} {} as {pg_name}: {out}", path.display());
    }
    // ...while its own data is its own (so the probes above could succeed).
    let (ok, out) = as_account(pg_uid, pg_gid, "ls", &[pg_node.data_dir().to_str().unwrap()]);
    assert!(ok && out.contains("PG_VERSION"), "{out}");

    // Modes: svcdash's files private, engines' files private to their account.
    let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o711);
    assert_eq!(mode(&data.join("instances")), 0o711);
    assert_eq!(mode(&data.join("svcdash.db")), 0o600);
    assert_eq!(mode(&data.join("backups")), 0o700);
    for file in walk(&redis_node.data_dir()) {
        let meta = std::fs::symlink_metadata(&file).unwrap();
        assert_eq!(meta.permissions().mode() & 0o077, 0, "{} is readable by others", file.display());
        assert_eq!(meta.uid(), redis_uid, "{}", file.display());
    }

    // Deprovisioning removes the account along with the files.
    app.deprovision(&redis_id, REDIS_SERVICE, REDIS_PLAN).await;
    assert!(nix::unistd::User::from_name(&redis_name).unwrap().is_none(), "the account {redis_name} is left");
    assert!(!redis_node.root().exists());
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
}

#[tokio::test]
async fn links_planted_in_a_node_folder_are_never_followed_by_svcdash() {
    let app = TestApp::start().await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let creds = app.bind(&id, REDIS_SERVICE, REDIS_PLAN).await;
    let mut conn = redis(&creds).await;
    let _: () = redis::cmd("SET").arg("kept").arg("before").query_async(&mut conn).await.unwrap();
    drop(conn);
    let backup = app.create_backup(&id).await;
    app.wait_finished(&format!("/v1/instances/{id}/backups/{backup}")).await;

    // Root's files, which code in the engine points links at.
    let victims = tempfile::Builder::new().prefix("svcdash-victim-").tempdir().unwrap();
    std::fs::set_permissions(victims.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let victim_file = victims.path().join("file");
    std::fs::write(&victim_file, "root's").unwrap();
    std::fs::set_permissions(&victim_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let victim_dir = victims.path().join("dir");
    std::fs::create_dir(&victim_dir).unwrap();
    std::fs::write(victim_dir.join("inside"), "root's").unwrap();

    let (name, uid, gid) = account(&app, &id).await;
    let node = app.layout(&id).await;
    let plant = |link: &Path, target: &Path| {
        let (ok, out) = as_account(uid, gid, "ln", &["-sfn", target.to_str().unwrap(), link.to_str().unwrap()]);
        assert!(ok, "{name} could not plant {}: {out}", link.display());
    };
    plant(&node.data_dir().join("evil-file"), &victim_file);
    plant(&node.data_dir().join("evil-dir"), &victim_dir);
    plant(&node.run_dir().join("evil-dir"), &victim_dir);
    // And where svcdash itself works: the engine cannot write there at all.
    for folder in [node.system(), node.ephemeral(), node.persistent(), node.ephemeral().join("log")] {
        let (ok, _) = as_account(uid, gid, "touch", &[folder.join("x").to_str().unwrap()]);
        assert!(!ok, "{name} can write to {}", folder.display());
    }

    let unchanged = |when: &str| {
        let meta = std::fs::metadata(&victim_file).unwrap();
        assert_eq!((meta.uid(), meta.permissions().mode() & 0o777), (0, 0o644), "{when}: the victim file changed");
        assert_eq!(std::fs::read_to_string(&victim_file).unwrap(), "root's", "{when}");
        assert_eq!(std::fs::metadata(&victim_dir).unwrap().uid(), 0, "{when}");
        assert!(victim_dir.join("inside").exists(), "{when}: the victim folder was emptied");
    };

    // A recreate rebuilds the node's folders around the links.
    let (status, body) = app.api(Method::PATCH, &format!("/v1/instances/{id}/recreate")).await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body}");
    wait_instance_state(&app, &id, "available").await;
    unchanged("after a recreate");

    // A restore writes the backup beside the data and renames it over whatever
    // `dump.rdb` is, a link too.
    let mut conn = redis(&creds).await;
    let _: () = redis::cmd("SET").arg("kept").arg("after").query_async(&mut conn).await.unwrap();
    drop(conn);
    plant(&node.data_dir().join("dump.rdb"), &victim_file);
    let restore = app.restore(&id, backup).await;
    app.wait_done(&format!("/v1/instances/{id}/restores/{restore}")).await;
    unchanged("after a restore");
    let mut conn = redis(&creds).await;
    let kept: String = redis::cmd("GET").arg("kept").query_async(&mut conn).await.unwrap();
    assert_eq!(kept, "before");
    assert!(!std::fs::symlink_metadata(node.data_dir().join("dump.rdb")).unwrap().file_type().is_symlink());
}
