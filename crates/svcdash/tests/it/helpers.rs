//! `TestApp`: svcdash on port 0 with a fresh data folder, typed helpers per
//! endpoint, and polling helpers instead of sleeps.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use server::{AppState, Config, Server};

pub const BROKER_USER: &str = "platform";
pub const BROKER_PASSWORD: &str = "broker-secret";
pub const PG_SERVICE: &str = "3c8a1d1e-7b52-4f0b-9d0c-5a8e1f4c2b01";
pub const PG_PLAN: &str = "5f2b7c9a-1d3e-4a6b-8c0d-2e4f6a8b0c11";
pub const REDIS_SERVICE: &str = "9e1f3a5c-7b9d-4c2e-8f0a-1b3d5e7f9a02";
pub const REDIS_PLAN: &str = "7a9c1e3f-5b7d-4e9f-a1c3-e5f7a9c1e312";
pub const MARIADB_SERVICE: &str = "4b6d8f0a-2c4e-4a6c-9e8f-0a2c4e6a8c03";
pub const MARIADB_PLAN: &str = "6c8e0a2c-4e6a-4c8e-a0c2-4e6a8c0e2413";
pub const RABBITMQ_SERVICE: &str = "8d0f2b4d-6f8b-4d0f-b2d4-6f8b0d2f4a04";
pub const RABBITMQ_PLAN: &str = "0e2a4c6e-8a0c-4e2a-c4e6-8a0c2e4a6b14";

/// A data folder the engine user (when tests run as root) can enter.
pub fn data_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    // TEST_KEEP_DATA=1 leaves every test's folder behind, logs and all, to look into.
    let keep = std::env::var_os("TEST_KEEP_DATA").is_some();
    let dir = tempfile::Builder::new().prefix("svcdash-it-").disable_cleanup(keep).tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

pub fn config(data: &Path) -> Config {
    let mut config = Config { listen: ([127, 0, 0, 1], 0).into(), data: data.to_path_buf(), ..Default::default() };
    config.broker.username = BROKER_USER.into();
    config.broker.password = Some(BROKER_PASSWORD.to_owned().into());
    // No surprise backups when a test runs at the scheduled hour; tests/it/schedule.rs
    // drives the schedule with the time it chooses.
    config.backups.schedule = String::new();
    // The parachute watches the disk the tests run on, whatever its usage: only
    // tests/it/parachute.rs, which sets thresholds against that usage, turns it on.
    config.parachute.persistent_threshold = 0;
    // svcdash runs inside the test binary here; PostgreSQL needs the real program.
    config.backups.wal_push_program = Some(PathBuf::from(env!("CARGO_BIN_EXE_svcdash")));
    config
}

pub struct TestApp {
    pub server: Option<Server>,
    pub base: String,
    pub client: reqwest::Client,
    /// `bearer <token>` of a user granted tenant `org-a`.
    pub token: String,
    pub data: PathBuf,
    /// The instances' folder, whose accounts go with the test even when it stopped
    /// svcdash (and then failed before starting it again).
    instances: PathBuf,
    _dir: Option<tempfile::TempDir>,
    _watchdog: Watchdog,
}

/// How long one svcdash of a test may run: the longest story takes a few minutes
/// (`TEST_HANG_SECS` sets another limit).
fn hang_limit() -> Duration {
    let secs = std::env::var("TEST_HANG_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(15 * 60);
    Duration::from_secs(secs)
}

/// Ends the whole run, naming the test, when a test keeps its svcdash longer than
/// [`hang_limit`]: a test that hangs (a server that never answers, a blocked
/// runtime) fails the run at once instead of holding it until CI's limit.
struct Watchdog(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Watchdog {
    fn arm() -> Self {
        use std::sync::atomic::Ordering;
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let test = std::thread::current().name().unwrap_or("a test").to_owned();
        let (flag, limit) = (done.clone(), hang_limit());
        std::thread::spawn(move || {
            let started = Instant::now();
            while started.elapsed() < limit {
                std::thread::sleep(Duration::from_secs(1));
                if flag.load(Ordering::Relaxed) {
                    return;
                }
            }
            // Straight to the process's stderr: the test's captured output dies with it.
            let message = format!("\n{test} has run svcdash for {} s: it hangs; ending the run\n", limit.as_secs());
            let _ = std::io::Write::write_all(&mut std::io::stderr(), message.as_bytes());
            std::process::abort();
        });
        Self(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl TestApp {
    pub async fn start() -> Self {
        let dir = data_dir();
        // Deep, as real data folders can be: socket paths must not depend on it.
        let data = dir.path().join("a-data-folder-deep-enough-to-push-any-unix-socket-path-past-its-limit");
        let mut app = Self::start_in(&data, config(&data)).await;
        app._dir = Some(dir);
        app
    }

    pub async fn start_in(data: &Path, config: Config) -> Self {
        init_logs();
        let watchdog = Watchdog::arm();
        let server = server::start(config).await.expect("svcdash starts");
        let base = format!("http://{}", server.addr);
        let token = user_token(&server.state, "alice", "org-a").await;
        let instances = server.state.config.instances_dir();
        Self {
            server: Some(server),
            base,
            client: crate::helpers::http().build().unwrap(),
            token,
            data: data.to_path_buf(),
            instances,
            _dir: None,
            _watchdog: watchdog,
        }
    }

    /// Keeps `dir` (holding the data folder of [`Self::start_in`]) until the test ends.
    pub fn keep_dir(&mut self, dir: tempfile::TempDir) {
        self._dir = Some(dir);
    }

    pub fn state(&self) -> &AppState {
        &self.server.as_ref().unwrap().state
    }

    /// Stops svcdash as on SIGTERM: running jobs finish, engines stop cleanly.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await.unwrap();
        }
    }

    /// A dashboard API call as the default user.
    pub async fn api(&self, method: Method, path: &str) -> (StatusCode, Value) {
        self.api_as(&self.token, method, path, None).await
    }

    pub async fn api_as(&self, token: &str, method: Method, path: &str, body: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base)).header("Authorization", token);
        if let Some(body) = body {
            req = req.header("Content-Type", "application/json").body(body.to_owned());
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A broker API call with the platform's credentials and version header.
    pub async fn broker(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .basic_auth(BROKER_USER, Some(BROKER_PASSWORD))
            .header("X-Broker-API-Version", "2.17");
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Deprovisions an instance through the broker and waits until it is deleted.
    pub async fn deprovision(&self, instance: &str, service: &str, plan: &str) {
        let path =
            format!("/v2/service_instances/{instance}?accepts_incomplete=true&service_id={service}&plan_id={plan}");
        let (status, body) = self.broker(Method::DELETE, &path, None).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        wait_for("the instance to be deleted", Duration::from_secs(60), &mut || {
            let store = self.state().store.clone();
            let instance = instance.to_owned();
            async move {
                (store.instance_by_guid(&instance).await.ok()?.state == store::InstanceState::Deleted).then_some(())
            }
        })
        .await;
    }

    /// Provisions an instance through the broker in tenant `org`, and waits until it is ready.
    pub async fn provision(&self, service: &str, plan: &str, org: &str) -> String {
        self.provision_with(service, plan, org, Value::Null).await
    }

    /// Provisions with OSB `parameters` (`null` for none).
    pub async fn provision_with(&self, service: &str, plan: &str, org: &str, parameters: Value) -> String {
        let id = server::instances::new_guid();
        let (status, body) = self
            .broker(
                Method::PUT,
                &format!("/v2/service_instances/{id}?accepts_incomplete=true"),
                Some(json!({
                    "service_id": service,
                    "plan_id": plan,
                    "organization_guid": org,
                    "space_guid": "space-1",
                    "parameters": parameters,
                    "context": {"platform": "cloudfoundry", "organization_guid": org, "space_guid": "space-1",
                                "organization_name": "Org", "space_name": "dev", "instance_name": format!("i-{id}")}
                })),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["dashboard_url"], format!("{}/service-instances/{id}", self.base));
        let op = body["operation"].as_str().unwrap().to_owned();
        let state = self
            .wait_for(&format!("instance {id} provisioned"), Duration::from_secs(120), || {
                let (app, id, op) = (self, &id, &op);
                async move {
                    let (_, body) = app
                        .broker(Method::GET, &format!("/v2/service_instances/{id}/last_operation?operation={op}"), None)
                        .await;
                    match body["state"].as_str() {
                        Some("in progress") => None,
                        other => Some((other.map(str::to_owned), body.clone())),
                    }
                }
            })
            .await;
        assert_eq!(state.0.as_deref(), Some("succeeded"), "{}", state.1);
        id
    }

    /// Changes the instance's plan through the broker's `PATCH`, which must take it
    /// as an asynchronous update, and waits for it to end; returns the last
    /// operation's answer (its `state`, and `description` on failure).
    pub async fn change_plan(&self, id: &str, service: &str, plan: &str) -> Value {
        let path = format!("/v2/service_instances/{id}?accepts_incomplete=true");
        let (status, body) =
            self.broker(Method::PATCH, &path, Some(json!({"service_id": service, "plan_id": plan}))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let op = body["operation"].as_str().unwrap().to_owned();
        self.wait_for("the plan change", Duration::from_secs(180), || {
            let path = format!("/v2/service_instances/{id}/last_operation?operation={op}");
            async move {
                let (_, body) = self.broker(Method::GET, &path, None).await;
                (body["state"] != "in progress").then_some(body)
            }
        })
        .await
    }

    /// Binds and returns the credentials object.
    pub async fn bind(&self, instance: &str, service: &str, plan: &str) -> Value {
        self.bind_as(instance, &server::instances::new_guid(), service, plan).await
    }

    /// A binding with the id `binding`; returns its credentials.
    pub async fn bind_as(&self, instance: &str, binding: &str, service: &str, plan: &str) -> Value {
        let (status, body) = self
            .broker(
                Method::PUT,
                &format!("/v2/service_instances/{instance}/service_bindings/{binding}"),
                Some(json!({"service_id": service, "plan_id": plan})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["credentials"].clone()
    }

    pub async fn create_backup(&self, instance: &str) -> i64 {
        let (status, body) = self.api(Method::POST, &format!("/v1/instances/{instance}/backups")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["message"], "job to backup is queued");
        body["id"].as_i64().unwrap()
    }

    pub async fn restore(&self, instance: &str, backup: i64) -> i64 {
        let (status, body) =
            self.api(Method::POST, &format!("/v1/instances/{instance}/backups/{backup}/restore")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["id"].as_i64().unwrap()
    }

    /// Polls a backup or restore until it is finished; returns its last JSON.
    pub async fn wait_finished(&self, path: &str) -> Value {
        self.wait_for(path, Duration::from_secs(180), || async move {
            let (status, body) = self.api(Method::GET, path).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            matches!(body["status"].as_str(), Some("done" | "failed" | "deleted")).then_some(body)
        })
        .await
    }

    /// Waits for the backup or restore at `path` (`/v1/instances/ID/backups/N` or
    /// `…/restores/N`) to finish and asserts it is done; when it is not, the failure
    /// says what its jobs reported, which the API keeps to itself.
    pub async fn wait_done(&self, path: &str) -> Value {
        let body = self.wait_finished(path).await;
        if body["status"] != "done" {
            panic!("{path} is not done: {body}; its jobs said: {:?}", self.job_errors(path).await);
        }
        body
    }

    /// What the jobs of the backup or restore at `path` reported, if they failed.
    pub async fn job_errors(&self, path: &str) -> Vec<String> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let [_, "instances", guid, what, seq, ..] = parts[..] else { return vec![format!("no job behind {path}")] };
        let store = &self.state().store;
        let (Ok(instance), Ok(seq)) = (store.instance_by_guid(guid).await, seq.parse::<i64>()) else {
            return vec![format!("no instance or number in {path}")];
        };
        let jobs = match what {
            "backups" => store.backup_by_seq(instance.id, seq).await.map(|b| vec![b.job]),
            _ => store.restore_by_seq(instance.id, seq).await.map(|r| r.jobs),
        };
        jobs.map(|jobs| jobs.into_iter().filter_map(|j| j.error).collect()).unwrap_or_default()
    }

    pub async fn wait_for<T, F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        wait_for(what, timeout, &mut check).await
    }

    /// Where an instance's first node keeps its files.
    pub async fn layout(&self, instance: &str) -> engines::NodeLayout {
        let i = self.state().store.instance_by_guid(instance).await.unwrap();
        engines::NodeLayout::new(self.state().config.instances_dir().join(&i.local_name).join("node-0"))
    }

    /// The node spec of an instance's first node (to reach its engine directly).
    pub async fn node(&self, instance: &str) -> engines::NodeSpec {
        let i = self.state().store.instance_by_guid(instance).await.unwrap();
        self.state().node_specs(&i).await.unwrap().remove(0)
    }

    /// The stored objects below the local backup folder.
    pub fn backup_objects(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.data.join("backups"), &mut out);
        out.sort();
        out
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            print_engine_logs(&self.instances);
        }
        // Engines run in process groups of their own and would outlive the test; the
        // data folder goes with the test, so they are killed, not asked to save. The
        // instances' accounts are the host's and would outlive it too.
        if let Some(server) = self.server.take() {
            server.state.deployer.kill_all_now();
        }
        if self.instances.is_dir()
            && let Ok(deployer) =
                engines::LocalDeployer::new(self.instances.clone(), engines::Tools::new(Default::default()))
        {
            deployer.remove_accounts_now();
        }
    }
}

/// Prints the end of every engine log under the instances folder: what the
/// engines and their failover tools saw is the first thing to read when a test
/// fails (in CI, only the test's output is kept).
fn print_engine_logs(instances: &Path) {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(instances)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|instance| std::fs::read_dir(instance.path()).into_iter().flatten().flatten())
        .flat_map(|node| std::fs::read_dir(node.path().join("ephemeral/log")).into_iter().flatten().flatten())
        .map(|log| log.path())
        .collect();
    logs.sort();
    for log in logs {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        println!("==== the last lines of {} ====", log.display());
        // Enough to reach back past a node's restart (a restore that puts the old
        // data back writes a few dozen lines of its own).
        for line in &lines[lines.len().saturating_sub(150)..] {
            println!("{line}");
        }
    }
}

/// When dropped, removes the accounts of the instances svcdash made under the data
/// folder `0` (for tests that run `svcdash serve` as a process of its own, which
/// leaves the accounts when it stops, as it should). Declare it before the process
/// so that it is dropped after it.
pub struct AccountsGuard(pub PathBuf);

impl Drop for AccountsGuard {
    fn drop(&mut self) {
        let instances = self.0.join("instances");
        if instances.is_dir()
            && let Ok(deployer) = engines::LocalDeployer::new(instances, engines::Tools::new(Default::default()))
        {
            deployer.remove_accounts_now();
        }
    }
}

/// The main process of a node's engine, if it runs (as the local deployer sees it).
pub async fn engine_pid(state: &AppState, spec: &engines::NodeSpec) -> Option<u32> {
    state.deployer.probe().expect("the local deployer probes its nodes").main_pid(&spec.local_name, spec.index).await
}

/// A process's resident memory in KiB (0 once it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
}

/// An HTTP client for tests: every request gives up after two minutes, so a server
/// that stops answering fails the test with a message instead of hanging the run.
pub fn http() -> reqwest::ClientBuilder {
    reqwest::Client::builder().timeout(Duration::from_secs(120))
}

pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, check: &mut F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates a local user with a grant on `tenant` and returns `bearer <token>`.
pub async fn user_token(state: &AppState, name: &str, tenant: &str) -> String {
    let user = match state.store.user_by_name(name).await {
        Ok(user) => user,
        Err(_) => state.store.create_user(name).await.unwrap(),
    };
    state.store.grant(user.id, tenant, None, store::Role::Manage).await.unwrap();
    let token = server::auth::new_token();
    state.store.create_token(user.id, &server::auth::hash_token(&token), None).await.unwrap();
    format!("bearer {token}")
}

/// A PostgreSQL connection as svcdash's admin (the superuser) to `database`.
pub async fn pg_admin(spec: &engines::NodeSpec, database: &str) -> sqlx::PgConnection {
    use secrecy::ExposeSecret;
    use sqlx::ConnectOptions;
    sqlx::postgres::PgConnectOptions::new()
        .host("127.0.0.1")
        .port(spec.port)
        .username(&spec.admin_user)
        .password(spec.admin_password.expose_secret())
        .database(database)
        .connect()
        .await
        .unwrap()
}

pub async fn pg(credentials: &Value) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(credentials["uri"].as_str().unwrap()).await.unwrap()
}

/// Waits until PostgreSQL at `credentials` answers `sql` with one value (it may be
/// starting, or replaying its WAL).
pub async fn pg_value_eventually<T>(credentials: &Value, sql: &'static str) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
{
    let uri = credentials["uri"].as_str().unwrap().to_owned();
    wait_for(sql, Duration::from_secs(60), &mut || {
        let uri = uri.clone();
        async move {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&uri).await.ok()?;
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.ok()
        }
    })
    .await
}

/// A MariaDB connection as a binding, from its credentials.
pub async fn mariadb(credentials: &Value) -> sqlx::Result<sqlx::MySqlConnection> {
    use sqlx::ConnectOptions;
    use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};
    MySqlConnectOptions::new()
        .host(credentials["host"].as_str().unwrap())
        .port(credentials["port"].as_u64().unwrap() as u16)
        .username(credentials["username"].as_str().unwrap())
        .password(credentials["password"].as_str().unwrap())
        .database(credentials["database"].as_str().unwrap_or("app"))
        .ssl_mode(MySqlSslMode::Disabled)
        .connect()
        .await
}

pub async fn redis(credentials: &Value) -> redis::aio::MultiplexedConnection {
    redis::Client::open(credentials["uri"].as_str().unwrap()).unwrap().get_multiplexed_async_connection().await.unwrap()
}

/// svcdash's warnings go to the test's captured output, so a failing test shows
/// them (what went wrong in a job, say); `TEST_LOG=info` (any filter) shows more.
fn init_logs() {
    let filter = std::env::var("TEST_LOG").ok().filter(|f| !f.is_empty() && f != "1").unwrap_or_else(|| "warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

/// A parachute threshold (percent) the disk holding `path` is already past: some
/// way under its usage as `df` counts it, so other tests freeing space meanwhile
/// do not matter.
pub fn threshold_under_usage(path: &Path) -> u8 {
    let out = std::process::Command::new("df").args(["-B1", "--output=used,avail"]).arg(path).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let numbers: Vec<u64> = text.lines().nth(1).unwrap().split_whitespace().map(|n| n.parse().unwrap()).collect();
    let used = u8::try_from(numbers[0] * 100 / (numbers[0] + numbers[1])).unwrap();
    assert!(used >= 2, "the test disk is {used} % used: too empty to trip the parachute");
    used.saturating_sub(5).max(1)
}

/// The built-in catalog with `service`'s release set to `version`, written into `dir`.
pub fn catalog_with_version(dir: &Path, service: &str, version: &str) -> PathBuf {
    let built_in = include_str!("../../../server/catalog.toml");
    let marker = format!("name = \"{service}\"");
    let (head, tail) = built_in.split_once(&marker).unwrap_or_else(|| panic!("the built-in catalog has {service}"));
    let start = tail.find("version = \"").expect("a version line");
    let end = start + tail[start..].find('\n').unwrap();
    let text = format!("{head}{marker}{}version = \"{version}\"{}", &tail[..start], &tail[end..]);
    let path = dir.join(format!("catalog-{service}-{version}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The newest hundred entries of the whole audit log.
pub async fn audit_log(app: &TestApp) -> Vec<store::AuditEntry> {
    app.state().store.audit_entries(None, 100).await.unwrap()
}

/// `GET /v1/instances/:id`.
pub async fn instance_overview(app: &TestApp, id: &str) -> Value {
    let (status, body) = app.api(Method::GET, &format!("/v1/instances/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Waits until the instance is in `state`; returns its overview then.
pub async fn wait_instance_state(app: &TestApp, id: &str, state: &str) -> Value {
    let what = format!("the instance to be {state}");
    app.wait_for(&what, Duration::from_secs(60), || async {
        let body = instance_overview(app, id).await;
        (body["state"] == state).then_some(body)
    })
    .await
}

/// Decrypts with Debian's age (the passphrase typed on a pseudo-terminal) and
/// decompresses with Debian's zstd.
pub fn open_with_standard_tools(file: &Path, passphrase: &str) -> Vec<u8> {
    use std::io::Write;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/age-decrypt.py");
    let decrypted = file.with_extension("zst");
    let mut age = std::process::Command::new("python3")
        .arg(script)
        .arg(file)
        .arg(&decrypted)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(age.stdin.take().unwrap(), "{passphrase}").unwrap();
    let out = age.wait_with_output().unwrap();
    assert!(out.status.success(), "age -d failed: {}", String::from_utf8_lossy(&out.stderr));
    let out = std::process::Command::new("zstd").args(["-d", "-c"]).arg(&decrypted).output().unwrap();
    assert!(out.status.success(), "zstd -d failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The password alice signs in with in the browser tests.
pub const BROWSER_PASSWORD: &str = "a long browser password";

/// Gives alice [`BROWSER_PASSWORD`], for the sign-in form.
pub async fn browser_sign_in(app: &TestApp) {
    let user = app.state().store.user_by_name("alice").await.unwrap();
    let hash = server::auth::hash_password(BROWSER_PASSWORD).unwrap();
    app.state().store.set_password_hash(user.id, &hash).await.unwrap();
}

/// Where the browser tests put their screenshots.
pub fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots")
}

/// `node tests/support/SCRIPT` as the browser tests run it: headless Chromium
/// through playwright-core (installed by `./dev.sh test`), screenshots under
/// target/screenshots, signing in to `base` as alice. Callers add what the script
/// needs besides.
pub fn browser_script(script: &str, base: &str, instance: &str) -> std::process::Command {
    let modules = crate::idp::node_modules();
    assert!(
        modules.join("playwright-core").is_dir(),
        "playwright-core is not installed under {} (`./dev.sh test` installs it)",
        modules.display()
    );
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = std::process::Command::new("node");
    cmd.arg(manifest.join("tests/support").join(script))
        .env("TEST_NODE_MODULES", &modules)
        .env("BASE_URL", base)
        .env("INSTANCE", instance)
        .env("USER", "alice")
        .env("PASSWORD", BROWSER_PASSWORD)
        .env("SCREENSHOTS", screenshots());
    cmd
}

/// Runs a browser script to its end on a blocking thread (svcdash answers it
/// from this one) and returns its findings, the JSON of the last line it printed;
/// or, when it failed, everything it printed.
pub async fn browser_findings(mut cmd: std::process::Command) -> Result<Value, String> {
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("node runs")).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("{}\n{stdout}", String::from_utf8_lossy(&out.stderr)));
    }
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).map_err(|e| format!("its last line is not JSON ({e}):\n{stdout}"))
}
