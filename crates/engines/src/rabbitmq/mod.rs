//! RabbitMQ: one broker node per instance, with its own Erlang node name, cookie and
//! port mapper (`epmd` on a port of the node's own, so no two instances share one),
//! and the management plugin, through which svcdash does everything.
//!
//! Bindings are users with full permissions on the instance's virtual host (`/`)
//! and the `management` tag (they may use the management API for what they can
//! see), nothing else.
//!
//! A backup is the broker's definitions (`GET /api/definitions`): virtual hosts,
//! users, permissions, queues, exchanges, bindings, policies and parameters. Not
//! messages. A restore brings the topology back to the backup's: objects created
//! since are deleted (queues with their messages), objects that were in the backup
//! are made again, and queues in both keep their messages unless their settings
//! differ (then they are made again, empty). Users and permissions stay as they are
//! at the restore, as for the other engines: bindings keep working, and a backup
//! of another instance brings none of its credentials along.

use std::path::PathBuf;

use anyhow::{Context, bail};
use async_trait::async_trait;
use futures::{FutureExt, TryStreamExt};
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};
use tokio::process::Command;

use crate::engine::{
    BackupStream, ClusterKind, Engine, Node, NodeControl, Replication, RestoreSink, Role, StagedRestore, StartMode,
};
use crate::{AppCredentials, NodeLayout, NodeSpec, Tools, files};

mod cluster;

pub struct Rabbitmq;

/// The virtual host applications use.
const VHOST: &str = "/";
/// Definitions larger than this are refused rather than read into memory.
const MAX_DEFINITIONS: u64 = 256 << 20;

fn config_file(layout: &NodeLayout) -> PathBuf {
    layout.system().join("rabbitmq.conf")
}

fn plugins_file(layout: &NodeLayout) -> PathBuf {
    layout.system().join("enabled_plugins")
}

fn env_file(layout: &NodeLayout) -> PathBuf {
    layout.system().join("rabbitmq-env.conf")
}

/// The Erlang cookie lives in the account's HOME, the data folder.
fn cookie_file(layout: &NodeLayout) -> PathBuf {
    layout.data_dir().join(".erlang.cookie")
}

/// Beside the data folder: svcdash writes it.
fn staging_file(layout: &NodeLayout) -> PathBuf {
    layout.persistent().join("restore.json.partial")
}

fn management_url(spec: &NodeSpec) -> anyhow::Result<String> {
    Ok(format!("http://127.0.0.1:{}/api", spec.port_named("management")?))
}

/// One client for every node: readiness is polled every 100 ms, and a restore makes
/// many calls; each new client would build its connection pool again.
fn client() -> &'static reqwest::Client {
    static CLIENT: std::sync::LazyLock<reqwest::Client> = std::sync::LazyLock::new(|| {
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new())
    });
    &CLIENT
}

/// `/` as the management API spells a virtual host in a path.
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A management API request as svcdash's admin user.
fn admin(spec: &NodeSpec, method: reqwest::Method, path: &str) -> anyhow::Result<reqwest::RequestBuilder> {
    Ok(client()
        .request(method, format!("{}{path}", management_url(spec)?))
        .basic_auth(&spec.admin_user, Some(spec.admin_password.expose_secret())))
}

async fn send(request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<reqwest::Response> {
    let response = request.send().await.with_context(|| format!("{what}: the management API did not answer"))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        bail!("{what}: the management API answered {status}: {}", body.chars().take(500).collect::<String>());
    }
    Ok(response)
}

#[async_trait]
impl Engine for Rabbitmq {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    fn short_name(&self) -> &'static str {
        "rabbitmq"
    }

    /// The installed release, from the name of its folder (the broker need not run).
    async fn version(&self, tools: &Tools) -> anyhow::Result<String> {
        let server = tools.find(self, "rabbitmq-server")?;
        let lib = server.parent().and_then(|bin| bin.parent()).context("rabbitmq-server has no folder")?.join("lib");
        std::fs::read_dir(&lib)?
            .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("rabbitmq_server-").map(str::to_owned))
            .max()
            .with_context(|| format!("no rabbitmq_server-* in {}", lib.display()))
    }

    fn programs(&self) -> &'static [&'static str] {
        &["rabbitmq-server"]
    }

    fn package(&self) -> &'static str {
        "rabbitmq-server"
    }

    /// The package's own scripts: those on PATH switch to the `rabbitmq` user.
    fn program_dirs(&self) -> Vec<PathBuf> {
        vec![PathBuf::from("/usr/lib/rabbitmq/bin")]
    }

    fn ports(&self) -> &'static [&'static str] {
        &["amqp", "management", "distribution", "epmd"]
    }

    fn process_names(&self) -> &'static [&'static str] {
        &["beam.smp", "epmd", "erl_child_setup", "inet_gethost"]
    }

    fn cluster_kind(&self) -> Option<ClusterKind> {
        Some(ClusterKind::MasterOnly)
    }

    fn members_take_writes(&self) -> bool {
        true
    }

    /// A member that runs in the cluster without a partition, as the node itself
    /// sees it; otherwise an error, and the node counts as unknown.
    async fn role(&self, node: &Node<'_>) -> anyhow::Result<Role> {
        if !node.spec.is_clustered() {
            return Ok(Role::Primary);
        }
        let (me, _) = cluster::members(&nodes(node.spec).await?, &cluster::node_name(node.spec.index));
        anyhow::ensure!(me, "the node does not run in its cluster");
        Ok(Role::Member)
    }

    /// The nodes running in the cluster, as this one sees them.
    async fn replication(&self, node: &Node<'_>) -> anyhow::Result<Option<Replication>> {
        if !node.spec.is_clustered() {
            return Ok(None);
        }
        let (me, running) = cluster::members(&nodes(node.spec).await?, &cluster::node_name(node.spec.index));
        anyhow::ensure!(me, "the node does not run in its cluster");
        Ok(Some(Replication { role: Role::Member, lag_bytes: None, lag_seconds: None, members: Some(running as u64) }))
    }

    /// Every node of the cluster runs, as this one sees it.
    async fn in_sync(&self, node: &Node<'_>) -> anyhow::Result<bool> {
        if !node.spec.is_clustered() {
            return Ok(true);
        }
        let (me, running) = cluster::members(&nodes(node.spec).await?, &cluster::node_name(node.spec.index));
        Ok(me && running == node.spec.peers.len() + 1)
    }

    fn pid_file(&self, layout: &NodeLayout) -> PathBuf {
        layout.run_dir().join("rabbitmq.pid")
    }

    fn backup_extension(&self) -> &'static str {
        "definitions.json"
    }

    fn backup_contents(&self) -> &'static str {
        "the definitions of the broker (virtual hosts, users, permissions, queues, exchanges, bindings, \
         policies, parameters) as the management API exports them; messages are not part of a backup"
    }

    /// The Erlang cookie in the account's own folder: a single node's made once, a
    /// cluster's the instance's (a single node becoming a cluster gets it).
    async fn init(&self, node: &Node<'_>) -> anyhow::Result<()> {
        let path = cookie_file(node.layout);
        let wanted = node.spec.is_clustered().then(|| cluster::cookie(node.spec));
        let present = files::read_small(&path);
        let write = match (&wanted, &present) {
            (_, None) => true,
            (Some(cookie), Some(now)) => cookie != now,
            (None, Some(_)) => false,
        };
        if write {
            if present.is_some() {
                // A link in its place is removed, never followed.
                std::fs::remove_file(&path).context("removing the old Erlang cookie")?;
            }
            let (_, engine) = crate::layout::owners(node.run_as);
            let mut file = files::create_new(&path, 0o400)?;
            let cookie = wanted.unwrap_or_else(|| crate::generate_secret(32));
            std::io::Write::write_all(&mut file, cookie.as_bytes()).context("writing the Erlang cookie")?;
            files::give(&file, &path, engine, 0o400)?;
        }
        Ok(())
    }

    fn start_command(&self, node: &Node<'_>, _mode: StartMode) -> anyhow::Result<Command> {
        let (layout, spec) = (node.layout, node.spec);
        let (svcdash, _) = crate::layout::owners(node.run_as);
        let config = format!(
            "# Written by svcdash; changes are overwritten.\n\
             listeners.tcp.default = 127.0.0.1:{amqp}\n\
             management.tcp.ip = 127.0.0.1\n\
             management.tcp.port = {management}\n\
             default_user = {user}\n\
             default_pass = {password}\n\
             default_vhost = {VHOST}\n\
             loopback_users = none\n\
             {cluster}",
            cluster = if spec.is_clustered() { cluster::config_lines(spec) } else { String::new() },
            amqp = spec.port,
            management = node.port("management")?,
            user = spec.admin_user,
            password = spec.admin_password.expose_secret(),
        );
        files::write_new(&config_file(layout), config.as_bytes(), svcdash, 0o640).context("writing rabbitmq.conf")?;
        files::write_new(&plugins_file(layout), b"[rabbitmq_management].\n", svcdash, 0o640)?;
        // Read instead of /etc/rabbitmq/rabbitmq-env.conf.
        files::write_new(&env_file(layout), b"", svcdash, 0o640)?;

        let epmd = cluster::epmd_port(spec)?.to_string();
        let mut cmd = node.command("rabbitmq-server")?;
        cmd.env("HOME", layout.data_dir())
            .env("RABBITMQ_NODENAME", cluster::node_name(spec.index))
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", spec.port.to_string())
            .env("RABBITMQ_DIST_PORT", node.port("distribution")?.to_string())
            .env("ERL_EPMD_PORT", &epmd)
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_CONF_ENV_FILE", env_file(layout))
            .env("RABBITMQ_CONFIG_FILE", config_file(layout))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", layout.system().join("advanced.config"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", plugins_file(layout))
            .env("RABBITMQ_MNESIA_BASE", layout.data_dir().join("mnesia"))
            .env("RABBITMQ_LOG_BASE", layout.run_dir())
            .env("RABBITMQ_LOGS", "-")
            .env("RABBITMQ_PID_FILE", self.pid_file(layout))
            // The script then runs the Erlang VM in its place, which stops cleanly on SIGTERM.
            .env("RUNNING_UNDER_SYSTEMD", "true");
        Ok(cmd)
    }

    async fn is_ready(&self, node: &Node<'_>) -> bool {
        match admin(node.spec, reqwest::Method::GET, "/overview") {
            Ok(request) => request.send().await.is_ok_and(|r| r.status().is_success()),
            Err(_) => false,
        }
    }

    /// A new cluster's virtual host makes quorum queues unless told otherwise.
    async fn setup(&self, node: &Node<'_>) -> anyhow::Result<()> {
        if node.spec.is_clustered() && node.spec.index == 0 {
            quorum_by_default(node.spec).await?;
        }
        Ok(())
    }

    async fn create_user(&self, node: &Node<'_>, username: &str, password: &str) -> anyhow::Result<AppCredentials> {
        let spec = node.spec;
        let user = format!("/users/{}", encode(username));
        send(
            admin(spec, reqwest::Method::PUT, &user)?.json(&json!({"password": password, "tags": "management"})),
            "creating the RabbitMQ user",
        )
        .await?;
        let permissions = format!("/permissions/{}/{}", encode(VHOST), encode(username));
        send(
            admin(spec, reqwest::Method::PUT, &permissions)?
                .json(&json!({"configure": ".*", "write": ".*", "read": ".*"})),
            "granting the RabbitMQ user its virtual host",
        )
        .await?;
        self.credentials(spec, username, password)
    }

    fn credentials(&self, spec: &NodeSpec, username: &str, password: &str) -> anyhow::Result<AppCredentials> {
        let management = spec.port_named("management")?;
        let mut extra = Map::new();
        extra.insert("vhost".into(), json!(VHOST));
        extra.insert("http_api_uri".into(), json!(format!("http://{username}:{password}@127.0.0.1:{management}/api/")));
        extra.insert("management_url".into(), json!(format!("http://127.0.0.1:{management}/")));
        if spec.is_clustered() {
            // Every node takes connections: clients go on with the next.
            let nodes = spec.cluster_addresses();
            extra.insert(
                "uris".into(),
                nodes
                    .iter()
                    .map(|(_, host, port)| {
                        json!(format!("amqp://{username}:{password}@{host}:{port}/{}", encode(VHOST)))
                    })
                    .collect(),
            );
            extra.insert("hosts".into(), spec.hosts_field());
        }
        Ok(AppCredentials {
            host: "127.0.0.1".into(),
            port: spec.port,
            username: username.into(),
            password: password.into(),
            database: None,
            uri: format!("amqp://{username}:{password}@127.0.0.1:{}/{}", spec.port, encode(VHOST)),
            extra,
        })
    }

    async fn delete_user(&self, node: &Node<'_>, username: &str) -> anyhow::Result<()> {
        let request = admin(node.spec, reqwest::Method::DELETE, &format!("/users/{}", encode(username)))?;
        let response = request.send().await.context("deleting the RabbitMQ user")?;
        if !(response.status().is_success() || response.status() == reqwest::StatusCode::NOT_FOUND) {
            bail!("deleting the RabbitMQ user: the management API answered {}", response.status());
        }
        Ok(())
    }

    /// `GET /api/definitions`, streamed as it arrives.
    async fn backup(&self, node: &Node<'_>) -> anyhow::Result<BackupStream> {
        let response = send(admin(node.spec, reqwest::Method::GET, "/definitions")?, "exporting definitions").await?;
        let stream = response.bytes_stream().map_err(std::io::Error::other);
        let reader = tokio_util::io::StreamReader::new(stream);
        // A broken body ends the stream with an error, which fails the upload.
        Ok(BackupStream {
            reader: Box::new(reader),
            done: async { Ok(()) }.boxed(),
            estimated_size: None,
            layout: None,
        })
    }

    async fn begin_restore(&self, node: &Node<'_>) -> anyhow::Result<RestoreSink> {
        let writer = files::staging_writer(&staging_file(node.layout))?;
        Ok(RestoreSink { writer: Box::new(writer), staged: Box::new(Restore) })
    }
}

/// What the node says of the cluster's nodes.
async fn nodes(spec: &NodeSpec) -> anyhow::Result<Vec<Value>> {
    let request = admin(spec, reqwest::Method::GET, "/nodes")?.timeout(std::time::Duration::from_secs(10));
    Ok(send(request, "asking the node about its cluster").await?.json().await?)
}

/// Makes the virtual host again with quorum as its queues' type, while it holds
/// nothing but svcdash's own permission (a new cluster's, or a single node's that
/// never had a queue or a binding): 3.10 keeps the type only when the host is made
/// with it. Otherwise, and once done, nothing changes.
async fn quorum_by_default(spec: &NodeSpec) -> anyhow::Result<()> {
    let path = format!("/vhosts/{}", encode(VHOST));
    let vhost: Value =
        send(admin(spec, reqwest::Method::GET, &path)?, "reading the virtual host").await?.json().await?;
    if vhost["default_queue_type"] == "quorum" {
        return Ok(());
    }
    let defs = format!("/definitions/{}", encode(VHOST));
    let defs: Value = send(admin(spec, reqwest::Method::GET, &defs)?, "reading the virtual host").await?.json().await?;
    let empty = |list: &str| defs[list].as_array().is_none_or(|l| l.is_empty());
    let exchanges_builtin = defs["exchanges"]
        .as_array()
        .is_none_or(|l| l.iter().filter_map(Value::as_object).all(|e| is_builtin("exchanges", e)));
    let permissions = format!("/vhosts/{}/permissions", encode(VHOST));
    let permissions: Vec<Value> =
        send(admin(spec, reqwest::Method::GET, &permissions)?, "reading permissions").await?.json().await?;
    let only_svcdash = permissions.iter().all(|p| p["user"].as_str() == Some(spec.admin_user.as_str()));
    if !(empty("queues")
        && empty("bindings")
        && empty("policies")
        && empty("parameters")
        && exchanges_builtin
        && only_svcdash)
    {
        tracing::info!(instance = %spec.instance_guid, "the virtual host holds objects; its queues stay classic unless declared quorum");
        return Ok(());
    }
    send(admin(spec, reqwest::Method::DELETE, &path)?, "removing the empty virtual host").await?;
    send(admin(spec, reqwest::Method::PUT, &path)?.json(&cluster::quorum_vhost()), "making the virtual host").await?;
    let own = format!("/permissions/{}/{}", encode(VHOST), encode(&spec.admin_user));
    send(
        admin(spec, reqwest::Method::PUT, &own)?.json(&json!({"configure": ".*", "write": ".*", "read": ".*"})),
        "granting svcdash the virtual host",
    )
    .await?;
    Ok(())
}

/// Definitions written completely beside the data.
struct Restore;

#[async_trait]
impl StagedRestore for Restore {
    /// Reads and checks the definitions, then makes the broker's topology theirs.
    async fn commit(self: Box<Self>, node: &Node<'_>, _control: &dyn NodeControl) -> anyhow::Result<()> {
        let path = staging_file(node.layout);
        let result = async {
            let size = std::fs::metadata(&path)?.len();
            anyhow::ensure!(size <= MAX_DEFINITIONS, "the definitions are larger than {MAX_DEFINITIONS} bytes");
            let text = tokio::fs::read(&path).await?;
            let backup = Definitions::parse(&text)?;
            apply(node.spec, &backup).await
        }
        .await;
        let _ = files::remove_tree(&path);
        result
    }

    async fn abort(self: Box<Self>, node: &Node<'_>) {
        let _ = files::remove_tree(&staging_file(node.layout));
    }
}

/// A definitions document, checked before anything is changed.
struct Definitions {
    document: Map<String, Value>,
}

/// The lists a restore brings back to the backup's state; users and permissions
/// are left as they are.
const TOPOLOGY: &[&str] = &["vhosts", "queues", "exchanges", "bindings", "policies", "parameters", "global_parameters"];

impl Definitions {
    fn parse(text: &[u8]) -> anyhow::Result<Self> {
        let value: Value = serde_json::from_slice(text)
            .context("the backup is not a RabbitMQ definitions document (not JSON); the instance was not changed")?;
        let Value::Object(document) = value else {
            bail!("the backup is not a RabbitMQ definitions document; the instance was not changed");
        };
        anyhow::ensure!(
            document.contains_key("rabbit_version") || document.contains_key("rabbitmq_version"),
            "the backup is not a RabbitMQ definitions document (no rabbit_version); the instance was not changed"
        );
        for list in TOPOLOGY {
            if let Some(value) = document.get(*list) {
                anyhow::ensure!(value.is_array(), "the backup's {list} is not a list; the instance was not changed");
                for item in value.as_array().into_iter().flatten() {
                    anyhow::ensure!(item.is_object(), "the backup's {list} holds something else than objects");
                }
            }
        }
        Ok(Self { document })
    }

    fn list(&self, name: &str) -> impl Iterator<Item = &Map<String, Value>> {
        self.document.get(name).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_object)
    }

    /// What `POST /api/definitions` gets: the topology, no users or permissions.
    fn topology(&self) -> Value {
        let mut out = Map::new();
        for (key, value) in &self.document {
            if TOPOLOGY.contains(&key.as_str()) || key == "rabbit_version" || key == "rabbitmq_version" {
                out.insert(key.clone(), value.clone());
            }
        }
        Value::Object(out)
    }
}

fn text<'a>(item: &'a Map<String, Value>, key: &str) -> &'a str {
    item.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// What identifies an object of a list, and whether its settings match another's.
fn identity(list: &str, item: &Map<String, Value>) -> String {
    match list {
        "vhosts" => text(item, "name").to_owned(),
        "bindings" => format!(
            "{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
            text(item, "vhost"),
            text(item, "source"),
            text(item, "destination"),
            text(item, "destination_type"),
            text(item, "routing_key"),
            item.get("arguments").map(Value::to_string).unwrap_or_default()
        ),
        "parameters" => format!("{}\u{0}{}\u{0}{}", text(item, "vhost"), text(item, "component"), text(item, "name")),
        "global_parameters" => text(item, "name").to_owned(),
        _ => format!("{}\u{0}{}", text(item, "vhost"), text(item, "name")),
    }
}

fn same_queue(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    ["durable", "auto_delete", "arguments", "type"].iter().all(|k| {
        let (x, y) = (a.get(*k), b.get(*k));
        // A live queue lists its type, an older export may not.
        *k == "type" && (x.is_none() || y.is_none()) || x == y
    })
}

/// Deletes what the backup does not have (and queues whose settings changed), then
/// imports the backup's topology.
async fn apply(spec: &NodeSpec, backup: &Definitions) -> anyhow::Result<()> {
    let live = send(admin(spec, reqwest::Method::GET, "/definitions")?, "reading the live definitions").await?;
    let live = Definitions::parse(&live.bytes().await?)?;
    for list in ["bindings", "policies", "parameters", "global_parameters", "queues", "exchanges", "vhosts"] {
        let wanted: std::collections::HashMap<String, &Map<String, Value>> =
            backup.list(list).map(|item| (identity(list, item), item)).collect();
        for item in live.list(list) {
            let keep = match wanted.get(&identity(list, item)) {
                Some(theirs) if list == "queues" => same_queue(item, theirs),
                Some(_) => true,
                None => list == "vhosts" && text(item, "name") == VHOST || is_builtin(list, item),
            };
            if !keep {
                delete(spec, list, item).await?;
            }
        }
    }
    send(admin(spec, reqwest::Method::POST, "/definitions")?.json(&backup.topology()), "importing the definitions")
        .await?;
    Ok(())
}

/// Objects the broker makes by itself: the default exchanges and its own parameters.
fn is_builtin(list: &str, item: &Map<String, Value>) -> bool {
    match list {
        "exchanges" => text(item, "name").is_empty() || text(item, "name").starts_with("amq."),
        "global_parameters" => ["cluster_name", "internal_cluster_id"].contains(&text(item, "name")),
        _ => false,
    }
}

async fn delete(spec: &NodeSpec, list: &str, item: &Map<String, Value>) -> anyhow::Result<()> {
    let vhost = encode(text(item, "vhost"));
    let path = match list {
        "vhosts" => format!("/vhosts/{}", encode(text(item, "name"))),
        "queues" => format!("/queues/{vhost}/{}", encode(text(item, "name"))),
        "exchanges" => format!("/exchanges/{vhost}/{}", encode(text(item, "name"))),
        "policies" => format!("/policies/{vhost}/{}", encode(text(item, "name"))),
        "parameters" => {
            format!("/parameters/{}/{vhost}/{}", encode(text(item, "component")), encode(text(item, "name")))
        }
        "global_parameters" => format!("/global-parameters/{}", encode(text(item, "name"))),
        "bindings" => {
            // Bindings are deleted by their properties key, which the list of the
            // binding's source and destination gives.
            let kind = if text(item, "destination_type") == "queue" { "q" } else { "e" };
            let list = format!(
                "/bindings/{vhost}/e/{}/{kind}/{}",
                encode(text(item, "source")),
                encode(text(item, "destination"))
            );
            let found: Vec<Map<String, Value>> =
                send(admin(spec, reqwest::Method::GET, &list)?, "listing bindings").await?.json().await?;
            let Some(key) = found
                .iter()
                .find(|b| identity("bindings", b) == identity("bindings", item))
                .and_then(|b| b.get("properties_key").and_then(Value::as_str))
            else {
                return Ok(());
            };
            format!("{list}/{}", encode(key))
        }
        other => bail!("cannot delete {other}"),
    };
    let response = admin(spec, reqwest::Method::DELETE, &path)?.send().await.context("deleting from the broker")?;
    if !(response.status().is_success() || response.status() == reqwest::StatusCode::NOT_FOUND) {
        bail!("deleting {path}: the management API answered {}", response.status());
    }
    Ok(())
}
