//! Command-line interface.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde::Serialize;
use server::{AppState, Config};
use store::{InstanceState, StoreError};

#[derive(Parser)]
#[command(name = "svcdash", version, about = "Service dashboard for managed data-service instances")]
pub struct Args {
    /// Configuration file (TOML); also SVCDASH_CONFIG; ./svcdash.toml when present.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

impl Args {
    /// Whether this runs the service (rather than a command beside it).
    pub fn serves(&self) -> bool {
        matches!(self.command, Command::Serve { .. })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: HTTP APIs, job workers and the instances' engines.
    Serve {
        /// Address to listen on (SVCDASH_LISTEN).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Base of the URLs svcdash hands out (SVCDASH_PUBLIC_URL).
        #[arg(long)]
        public_url: Option<String>,
    },
    /// Print a commented example configuration.
    DefaultConfig,
    /// Create, list, show and delete service instances.
    #[command(subcommand)]
    Instances(InstancesCommand),
    /// Manage local users and their access.
    #[command(subcommand)]
    Users(UsersCommand),
    /// API tokens of local users: `token --user NAME` prints a new one (the same as
    /// `token create`); `token list` and `token revoke` manage them.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Token {
        #[command(subcommand)]
        command: Option<TokenCommand>,
        #[command(flatten)]
        create: NewToken,
    },
    /// The engines the catalog's services need, and the releases installed here.
    Engines,
    /// Manage the master key that seals every stored secret.
    #[command(subcommand)]
    MasterKey(MasterKeyCommand),
    /// Show the audit log: who changed what, on which instance, and how it went.
    Audit {
        /// Only this instance's entries (its name or id).
        #[arg(long)]
        instance: Option<String>,
        /// At most this many entries, newest first.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Hand a finished write-ahead log file to svcdash: PostgreSQL runs this as its
    /// archive_command, as the instance's account; it exits 0 once the file is in
    /// the backup store.
    WalPush {
        /// The node's archive socket.
        socket: PathBuf,
        /// The file (PostgreSQL's %p).
        file: PathBuf,
        /// Its name (PostgreSQL's %f).
        name: String,
    },
    /// Fetch an archived write-ahead log file from svcdash: PostgreSQL runs this as
    /// its restore_command during a restore to a point in time; it exits 1 when
    /// the archive does not hold the file.
    WalFetch {
        /// The node's fetch socket.
        socket: PathBuf,
        /// The file's name (PostgreSQL's %f).
        name: String,
        /// Where to write it (PostgreSQL's %p).
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum InstancesCommand {
    /// Create an instance; a running `svcdash serve` provisions it.
    Create {
        #[arg(long)]
        service: String,
        #[arg(long)]
        plan: String,
        #[arg(long, default_value = "default")]
        tenant: String,
        #[arg(long, default_value = "default")]
        subtenant: String,
        /// Wait until the instance is provisioned (or failed).
        #[arg(long)]
        wait: bool,
        /// Archive the write-ahead log to the backup store as it is written
        /// (PostgreSQL), whatever the plan's default.
        #[arg(long, conflicts_with = "no_continuous_archiving")]
        continuous_archiving: bool,
        /// Do not archive the write-ahead log, whatever the plan's default.
        #[arg(long)]
        no_continuous_archiving: bool,
        name: String,
    },
    List,
    Show {
        name: String,
    },
    /// Delete an instance's processes and data; its backups are kept.
    Delete {
        name: String,
    },
    /// Stop and start every process of an instance (a running `svcdash serve` does it).
    Restart {
        name: String,
    },
    /// Rebuild an instance's nodes on their kept data (a running `svcdash serve` does it).
    Recreate {
        name: String,
    },
    /// Write the age identity that opens an instance's archived write-ahead log and
    /// base backups to a new file (mode 0600), to keep somewhere safe: with it, the
    /// archive can be restored by hand with standard tools if svcdash is gone.
    ArchiveKey {
        name: String,
        /// The file to create; it must not exist.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a new API token for a local user, as `bearer <token>`; only its hash is kept.
    Create(NewToken),
    /// List tokens: id, user, when made, when they expire. Never the tokens themselves.
    List {
        /// Only this user's tokens.
        #[arg(long)]
        user: Option<String>,
    },
    /// Delete a token (by the id `token list` shows), or all of a user's with
    /// `--user NAME --all`; the sessions made from them end at once.
    Revoke {
        /// The token's id, as `token list` shows it.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<i64>,
        /// With `--all`: the user whose tokens are revoked.
        #[arg(long, requires = "all")]
        user: Option<String>,
        /// Every token of `--user`.
        #[arg(long, requires = "user")]
        all: bool,
    },
}

#[derive(clap::Args)]
struct NewToken {
    /// The user the token signs in as.
    #[arg(long, required = true)]
    user: Option<String>,
    /// How long the token lasts: `12h`, `30d`, `2w`, ..., or `never`; `[auth]
    /// token_expiry_days` (30) when not given.
    #[arg(long, value_parser = server::auth::TokenLifetime::parse)]
    expires: Option<server::auth::TokenLifetime>,
}

#[derive(Subcommand)]
enum MasterKeyCommand {
    /// Seal every stored secret (engine and binding passwords, backup keys, session
    /// tokens) under a new master key, written to the key file. Backup objects are
    /// not touched. `svcdash serve` must be stopped.
    Rotate,
}

#[derive(Subcommand)]
enum UsersCommand {
    Create {
        name: String,
    },
    /// Give a user access to a tenant, or to one subtenant of it.
    Grant {
        name: String,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        subtenant: Option<String>,
        /// `manage` may back up and restore; `read` may only look.
        #[arg(long, default_value = "manage", value_parser = ["manage", "read"])]
        role: String,
    },
    /// Take a user's access to a tenant away: every grant on the tenant, or with
    /// `--subtenant` the grant on that subtenant. Their requests and sessions lose it at once.
    Revoke {
        name: String,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        subtenant: Option<String>,
    },
    /// Set a user's password for the login page: asked twice on a terminal, else
    /// read as one line from standard input.
    Passwd {
        name: String,
    },
    List,
}

#[derive(Serialize, Default)]
struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    public_url: Option<String>,
}

async fn engines(state: AppState) -> anyhow::Result<()> {
    let statuses = server::engine_check::check(&state).await;
    println!("{:<16} {:<12} {:<10} installed", "service", "engine", "catalog");
    let mut missing = 0;
    for s in &statuses {
        let installed = match &s.installed {
            Ok(v) if s.matches() => v.clone(),
            Ok(v) => format!("{v} (not the catalog's release)"),
            Err(why) => {
                missing += 1;
                format!("missing: {why}")
            }
        };
        println!("{:<16} {:<12} {:<10} {installed}", s.service, s.engine, s.catalog_version);
    }
    anyhow::ensure!(missing == 0, "{missing} of the catalog's engines cannot run here");
    Ok(())
}

/// The subcommands PostgreSQL runs for every write-ahead log file, as an instance's
/// account, with no configuration or data folder: plain blocking I/O, started and
/// done in milliseconds. `None` for the others.
pub fn run_file_transfer(args: &Args) -> Option<anyhow::Result<()>> {
    match &args.command {
        Command::WalPush { socket, file, name } => Some(crate::wal_push::run(socket, file, name)),
        Command::WalFetch { socket, name, file } => Some(crate::wal_fetch::run(socket, name, file)),
        _ => None,
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let overrides = match &args.command {
        Command::Serve { listen, public_url } => Overrides { listen: *listen, public_url: public_url.clone() },
        _ => Overrides::default(),
    };
    match &args.command {
        Command::DefaultConfig => {
            print!("{}", server::config::EXAMPLE);
            return Ok(());
        }
        Command::WalPush { .. } | Command::WalFetch { .. } => {
            anyhow::bail!("wal-push and wal-fetch run without the async runtime")
        }
        _ => {}
    }
    let config = Config::load(args.config.as_deref(), overrides)?;
    init_logging(&config, matches!(args.command, Command::Serve { .. }));
    match args.command {
        Command::Serve { .. } => serve(config).await,
        Command::DefaultConfig | Command::WalPush { .. } | Command::WalFetch { .. } => Ok(()),
        Command::Instances(cmd) => instances(AppState::open(config).await?, cmd).await,
        Command::Users(cmd) => users(AppState::open(config).await?, cmd).await,
        Command::Audit { instance, limit } => audit(AppState::open(config).await?, instance, limit).await,
        Command::Engines => engines(AppState::open(config).await?).await,
        Command::MasterKey(MasterKeyCommand::Rotate) => rotate_master_key(config).await,
        Command::Token { command, create } => {
            tokens(AppState::open(config).await?, command.unwrap_or(TokenCommand::Create(create))).await
        }
    }
}

fn init_logging(config: &Config, serving: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if serving { config.log.level.as_str() } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if config.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data)?;
    let _serving = serving_lock(&config.data)?
        .ok_or_else(|| anyhow::anyhow!("another `svcdash serve` is using the data folder {}", config.data.display()))?;
    // Handlers first: a SIGTERM while svcdash starts (checking engines, starting
    // instances) stops it cleanly once it has started, rather than killing it.
    let signals = shutdown_signals()?;
    let server = server::start(config).await?;
    let token = server.shutdown_token();
    tokio::spawn(async move {
        signals.await;
        tracing::info!("shutting down: letting running jobs finish, then stopping the engines");
        token.cancel();
    });
    server.wait_stopped().await
}

/// An exclusive lock on the data folder held while `serve` runs; `None` when
/// another process holds it.
fn serving_lock(data: &std::path::Path) -> anyhow::Result<Option<std::fs::File>> {
    let path = data.join("svcdash.serve.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

/// Re-seals every stored secret under a new master key. The new key is written
/// beside the old one first and replaces it only after the store committed, so an
/// interrupted rotation is finished (or undone) by running it again.
async fn rotate_master_key(config: Config) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;
    if config.master_key.is_some() {
        bail!(
            "the master key comes from the configuration (master_key or SVCDASH_MASTER_KEY); rotation works with a \
             key file: move the key into master_key_file first"
        );
    }
    std::fs::create_dir_all(&config.data)?;
    let _lock = serving_lock(&config.data)?
        .ok_or_else(|| anyhow::anyhow!("`svcdash serve` is running on this data folder; stop it first"))?;
    let path = config.master_key_file.clone().unwrap_or_else(|| config.data.join("master.key"));
    let old = backup::keys::MasterKey::load_or_generate(&path)?;
    let store = store::SqliteStore::open(&config.database_path()).await?;
    let pending = path.with_extension("key.new");
    if pending.exists() {
        let new = backup::keys::MasterKey::load_or_generate(&pending)?;
        let sample = store::InstanceStore::any_sealed_value(&store).await?;
        if sample.is_some_and(|v| new.unseal(&v).is_ok()) {
            std::fs::rename(&pending, &path)?;
            println!("finished an interrupted rotation: {} holds the new master key", path.display());
            return Ok(());
        }
        std::fs::remove_file(&pending)?;
    }
    let new = backup::keys::MasterKey::generate();
    new.save(&pending)?;
    let resealed = store::InstanceStore::reseal_all(&store, &|sealed| new.seal(old.unseal(sealed)?.expose_secret()))
        .await
        .context("re-sealing the stored secrets; nothing was changed")?;
    std::fs::rename(&pending, &path).with_context(|| format!("replacing {}", path.display()))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    println!(
        "re-sealed {resealed} stored secrets under a new master key, now in {}; backup objects are unchanged",
        path.display()
    );
    Ok(())
}

/// Installs the SIGTERM and SIGINT handlers now; the future ends at the first signal.
fn shutdown_signals() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = term.recv() => {}
        }
    })
}

async fn instances(state: AppState, cmd: InstancesCommand) -> anyhow::Result<()> {
    match cmd {
        InstancesCommand::Create {
            service,
            plan,
            tenant,
            subtenant,
            wait,
            continuous_archiving,
            no_continuous_archiving,
            name,
        } => {
            let svc = state
                .catalog
                .service_by_name(&service)
                .or_else(|| state.catalog.service(&service))
                .with_context(|| format!("the catalog has no service {service:?}"))?;
            let pl = svc
                .plan_by_name(&plan)
                .or_else(|| svc.plan(&plan))
                .with_context(|| format!("service {} has no plan {plan:?}", svc.name))?;
            let guid = uuid_v4();
            let tenancy = server::instances::Tenancy {
                tenant_id: tenant.clone(),
                tenant_name: Some(tenant),
                subtenant_id: subtenant.clone(),
                subtenant_name: Some(subtenant),
            };
            let asked = match (continuous_archiving, no_continuous_archiving) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            };
            let archiving = state.continuous_archiving(svc, pl, asked).map_err(anyhow::Error::msg)?;
            match state
                .create_instance(
                    &guid,
                    &name,
                    svc,
                    pl,
                    tenancy,
                    server::instances::Start { continuous_archiving: archiving, restore_from: None },
                )
                .await
            {
                Ok(_) => {}
                Err(StoreError::Conflict(_)) => bail!("an instance named {name:?} exists already"),
                Err(e) => return Err(e.into()),
            }
            println!("created {name} ({guid}); a running `svcdash serve` provisions it");
            println!("dashboard: {}", state.dashboard_url(&guid));
            if wait {
                loop {
                    let instance = state.store.instance_by_guid(&guid).await?;
                    match instance.state {
                        InstanceState::Deploying => tokio::time::sleep(Duration::from_millis(500)).await,
                        InstanceState::Failed => {
                            bail!("provisioning failed: {}", instance.state_reason.unwrap_or_default())
                        }
                        state => {
                            println!("state: {state}");
                            break;
                        }
                    }
                }
            }
            Ok(())
        }
        InstancesCommand::List => {
            println!("{:<24} {:<12} {:<14} {:<12} {:<36} tenant/subtenant", "name", "service", "plan", "state", "id");
            for i in state.store.list_instances().await? {
                if i.state == InstanceState::Deleted {
                    continue;
                }
                let (service, plan) = names(&state, &i);
                println!(
                    "{:<24} {:<12} {:<14} {:<12} {:<36} {}/{}",
                    i.name,
                    service,
                    plan,
                    i.state.as_str(),
                    i.guid,
                    i.tenant_id,
                    i.subtenant_id
                );
            }
            Ok(())
        }
        InstancesCommand::Show { name } => {
            let i = find_instance(&state, &name).await?;
            let (service, plan) = names(&state, &i);
            println!("name:       {}", i.name);
            println!("id:         {}", i.guid);
            println!("service:    {service}");
            println!("plan:       {plan}");
            let updates = state.available_updates(&i);
            match updates.first() {
                Some(u) => println!("version:    {} (update available: {})", state.version_of(&i), u.version),
                None => println!("version:    {}", state.version_of(&i)),
            }
            for (node, role) in server::cluster::labelled_nodes(&state, &i).await? {
                let since = node.role_since.map(|t| api_types::timestamp::format(&t)).unwrap_or("not seen yet".into());
                println!("node {}:     {role}, port {} ({role} since {since})", node.index, node.port);
            }
            let nodes = state.store.nodes(i.id).await?;
            for node in nodes.iter().filter(|n| n.parachute.is_some()) {
                let trip = node.parachute.as_ref().expect("filtered");
                println!(
                    "parachute:  node {} stopped since {} (its {} disk reached its threshold)",
                    node.index,
                    api_types::timestamp::format(&trip.at),
                    trip.disk
                );
            }
            println!(
                "state:      {}{}",
                i.state,
                i.state_reason.clone().map(|r| format!(" ({r})")).unwrap_or_default()
            );
            if let Some(job) = state.store.running_job(i.id).await? {
                let what = match (job.backup_id, job.restore_id) {
                    (_, Some(r)) => format!("restore {}", state.store.restore(r).await?.seq),
                    (Some(b), None) => format!("backup {}", state.store.backup(b).await?.seq),
                    (None, None) => job.kind.to_string(),
                };
                // Which node matters only where there are several.
                let node = match job.node_index {
                    Some(n) if nodes.len() > 1 => format!(" on node {n}"),
                    _ => String::new(),
                };
                // A backup's total is an estimate; a restore's is the backup's size.
                let estimated = job.restore_id.is_none();
                match server::progress::of_job(&job, chrono::Utc::now()) {
                    Some(p) => println!("running:    {what}{node}: {}", server::progress::describe(&p, estimated)),
                    None => println!("running:    {what}{node}"),
                }
            }
            if i.continuous_archiving {
                let segments = state.store.wal_segments(i.id).await?;
                match segments.iter().max_by_key(|s| s.archived_at) {
                    Some(last) => println!(
                        "archiving:  on; {} write-ahead log files in the backup store, the last {} at {}",
                        segments.len(),
                        last.name,
                        api_types::timestamp::format(&last.archived_at)
                    ),
                    None => println!("archiving:  on; no write-ahead log file archived yet"),
                }
                // The CLI is its own process: only the window can be shown, not how the
                // running server's hand-overs go (the API's overview says that).
                match state.pitr_window(&i).await {
                    Ok(window) => match (window.start(), window.end()) {
                        (Some(start), Some(end)) => {
                            println!(
                                "recovery:   to any moment from {} to {} (timeline {})",
                                api_types::timestamp::format(&start),
                                api_types::timestamp::format(&end),
                                window.current_timeline()
                            );
                            for gap in &window.gaps {
                                println!(
                                    "            except {} to {}: {}",
                                    api_types::timestamp::format(&gap.start),
                                    api_types::timestamp::format(&gap.end),
                                    gap.reason
                                );
                            }
                        }
                        _ => println!("recovery:   not possible yet: the first base backup comes with the next backup"),
                    },
                    Err(e) => println!("recovery:   {}", e.description()),
                }
            }
            println!("tenant:     {}", i.tenant_id);
            println!("subtenant:  {}", i.subtenant_id);
            println!(
                "files:      {} (the account {} runs its engines when svcdash runs as root)",
                state.config.instances_dir().join(&i.local_name).display(),
                i.local_name
            );
            println!("created:    {}", api_types::timestamp::format(&i.created_at));
            println!("dashboard:  {}", state.dashboard_url(&i.guid));
            Ok(())
        }
        InstancesCommand::Delete { name } => {
            let i = find_instance(&state, &name).await?;
            state.delete_instance(&i).await?;
            println!("deleting {name} ({}); its backups are kept", i.guid);
            Ok(())
        }
        InstancesCommand::ArchiveKey { name, out } => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let i = find_instance(&state, &name).await?;
            anyhow::ensure!(i.continuous_archiving, "{name} does not archive its write-ahead log");
            let key = state.generated_key(&i).await?;
            let sealed = state.master.unseal(&key.sealed_key)?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&out)
                .with_context(|| format!("creating {}", out.display()))?;
            writeln!(file, "# age identity of the archive of {name} ({}), {}", i.guid, i.backup_guid)?;
            writeln!(file, "{}", secrecy::ExposeSecret::expose_secret(&sealed))?;
            file.sync_all()?;
            let detail = format!("archive key written to {}", out.display());
            state
                .audit_as(
                    "cli",
                    None,
                    "instance.archive-key",
                    Some(&i.guid),
                    store::AuditOutcome::Success,
                    Some(&detail),
                )
                .await;
            println!(
                "wrote the archive key of {name} to {}; anyone with it can read the instance's archive",
                out.display()
            );
            Ok(())
        }
        InstancesCommand::Restart { name } => queue_lifecycle(&state, &name, store::JobKind::Restart).await,
        InstancesCommand::Recreate { name } => queue_lifecycle(&state, &name, store::JobKind::Recreate).await,
    }
}

async fn queue_lifecycle(state: &AppState, name: &str, kind: store::JobKind) -> anyhow::Result<()> {
    let i = find_instance(state, name).await?;
    state.queue_lifecycle(&i, kind).await.map_err(|e| anyhow::anyhow!("{}", e.description()))?;
    let detail = format!("{kind} queued from the command line");
    state
        .audit_as("cli", None, &format!("instance.{kind}"), Some(&i.guid), store::AuditOutcome::Success, Some(&detail))
        .await;
    println!("{kind} of {name} ({}) queued; a running `svcdash serve` does it", i.guid);
    Ok(())
}

fn names(state: &AppState, i: &store::Instance) -> (String, String) {
    let service = state.catalog.service(&i.service_id);
    let plan = service.and_then(|s| s.plan(&i.plan_id));
    (
        service.map_or_else(|| i.service_id.clone(), |s| s.name.clone()),
        plan.map_or_else(|| i.plan_id.clone(), |p| p.name.clone()),
    )
}

async fn find_instance(state: &AppState, name: &str) -> anyhow::Result<store::Instance> {
    match state.store.instance_by_name(name).await {
        Ok(i) => Ok(i),
        Err(StoreError::NotFound) => match state.store.instance_by_guid(name).await {
            Ok(i) => Ok(i),
            Err(StoreError::NotFound) => bail!("there is no instance named {name:?}"),
            Err(e) => Err(e.into()),
        },
        Err(e) => Err(e.into()),
    }
}

async fn find_user(state: &AppState, name: &str) -> anyhow::Result<store::User> {
    match state.store.user_by_name(name).await {
        Ok(u) => Ok(u),
        Err(StoreError::NotFound) => {
            bail!("there is no user named {name:?}; create it with `svcdash users create {name}`")
        }
        Err(e) => Err(e.into()),
    }
}

async fn users(state: AppState, cmd: UsersCommand) -> anyhow::Result<()> {
    match cmd {
        UsersCommand::Create { name } => {
            match state.store.create_user(&name).await {
                Ok(_) => println!("created user {name}"),
                Err(StoreError::Conflict(_)) => bail!("user {name:?} exists already"),
                Err(e) => return Err(e.into()),
            }
            Ok(())
        }
        UsersCommand::Grant { name, tenant, subtenant, role } => {
            let user = find_user(&state, &name).await?;
            let role: store::Role = role.parse()?;
            state.store.grant(user.id, &tenant, subtenant.as_deref(), role).await?;
            let verb = if role == store::Role::Manage { "manage" } else { "see" };
            let message = match subtenant {
                Some(s) => format!("{name} may now {verb} instances of tenant {tenant}, subtenant {s}"),
                None => format!("{name} may now {verb} instances of tenant {tenant}"),
            };
            state.audit_as("cli", None, "user.grant", None, store::AuditOutcome::Success, Some(&message)).await;
            println!("{message}");
            Ok(())
        }
        UsersCommand::Revoke { name, tenant, subtenant } => {
            let user = find_user(&state, &name).await?;
            let removed = state.store.revoke_grants(user.id, &tenant, subtenant.as_deref()).await?;
            let what = match &subtenant {
                Some(s) => format!("tenant {tenant}, subtenant {s}"),
                None => format!("tenant {tenant}"),
            };
            if removed == 0 {
                bail!("{name} has no grant on {what}; nothing changed");
            }
            let detail = format!("{name}'s access to {what} revoked");
            state.audit_as("cli", None, "user.revoke", None, store::AuditOutcome::Success, Some(&detail)).await;
            println!("{name} has no access to {what} any more");
            let grants = state.store.grants(user.id).await?;
            let whole_tenant = grants.iter().any(|g| g.tenant_id == tenant && g.subtenant_id.is_none());
            if subtenant.is_some() && whole_tenant {
                println!("note: {name} still has a grant on the whole tenant {tenant}, which covers its subtenants");
            }
            Ok(())
        }
        UsersCommand::Passwd { name } => {
            let user = find_user(&state, &name).await?;
            let password = read_new_password(&name)?;
            let hash = tokio::task::spawn_blocking(move || server::auth::hash_password(&password)).await??;
            state.store.set_password_hash(user.id, &hash).await?;
            println!("password of {name} set");
            Ok(())
        }
        UsersCommand::List => {
            for user in state.store.list_users().await? {
                let grants: Vec<String> = state
                    .store
                    .grants(user.id)
                    .await?
                    .into_iter()
                    .map(|g| match g.subtenant_id {
                        Some(s) => format!("{}/{s} ({})", g.tenant_id, g.role),
                        None => format!("{} ({})", g.tenant_id, g.role),
                    })
                    .collect();
                println!("{}\t{}", user.name, grants.join(", "));
            }
            Ok(())
        }
    }
}

async fn tokens(state: AppState, cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create(NewToken { user, expires }) => {
            let user = find_user(&state, user.as_deref().context("--user is required")?).await?;
            let lifetime =
                expires.unwrap_or_else(|| server::auth::TokenLifetime::from_days(state.config.auth.token_expiry_days));
            let token = server::auth::new_token();
            let expires_at = lifetime.expires_at(chrono::Utc::now());
            let made = state.store.create_token(user.id, &server::auth::hash_token(&token), expires_at).await?;
            let detail = format!("token {} of {} created; expires {}", made.id, user.name, expiry(&made));
            state.audit_as("cli", None, "token.create", None, store::AuditOutcome::Success, Some(&detail)).await;
            println!("bearer {token}");
            Ok(())
        }
        TokenCommand::List { user } => {
            let user_id = match user {
                Some(name) => Some(find_user(&state, &name).await?.id),
                None => None,
            };
            println!("{:<6} {:<20} {:<26} expires", "id", "user", "created");
            for token in state.store.list_tokens(user_id).await? {
                println!(
                    "{:<6} {:<20} {:<26} {}",
                    token.id,
                    token.user_name,
                    api_types::timestamp::format(&token.created_at),
                    expiry(&token)
                );
            }
            Ok(())
        }
        TokenCommand::Revoke { id: Some(id), .. } => match state.store.revoke_token(id).await {
            Ok(revoked) => {
                let detail = format!("token {id} revoked, {} sessions ended", revoked.sessions);
                state.audit_as("cli", None, "token.revoke", None, store::AuditOutcome::Success, Some(&detail)).await;
                println!("{detail}");
                Ok(())
            }
            Err(StoreError::NotFound) => bail!("there is no token {id}; `svcdash token list` shows them"),
            Err(e) => Err(e.into()),
        },
        TokenCommand::Revoke { id: None, user, .. } => {
            let user = find_user(&state, user.as_deref().context("--user is required with --all")?).await?;
            let revoked = state.store.revoke_user_tokens(user.id).await?;
            let detail =
                format!("{} tokens of {} revoked, {} sessions ended", revoked.tokens, user.name, revoked.sessions);
            state.audit_as("cli", None, "token.revoke", None, store::AuditOutcome::Success, Some(&detail)).await;
            println!("{detail}");
            Ok(())
        }
    }
}

/// When a token expires, as `token list` shows it.
fn expiry(token: &store::Token) -> String {
    match token.expires_at {
        None => "never".into(),
        Some(at) if at <= chrono::Utc::now() => format!("{} (expired)", api_types::timestamp::format(&at)),
        Some(at) => api_types::timestamp::format(&at),
    }
}

/// Passwords shorter than this are refused.
const MIN_PASSWORD_LEN: usize = 8;

fn read_new_password(name: &str) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("new password for {name}: "))?;
        let again = rpassword::prompt_password("again: ")?;
        if first != again {
            bail!("the two passwords differ; nothing changed");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.chars().count() < MIN_PASSWORD_LEN {
        bail!("a password needs at least {MIN_PASSWORD_LEN} characters; nothing changed");
    }
    Ok(password)
}

async fn audit(state: AppState, instance: Option<String>, limit: i64) -> anyhow::Result<()> {
    if !(1..=100_000).contains(&limit) {
        bail!("--limit must be between 1 and 100000");
    }
    let guid = match instance {
        Some(name) => Some(match state.store.instance_by_guid(&name).await {
            Ok(i) => i.guid,
            Err(StoreError::NotFound) => find_instance(&state, &name).await?.guid,
            Err(e) => return Err(e.into()),
        }),
        None => None,
    };
    println!("at\tactor\taction\tinstance\toutcome\taddress\tdetail");
    for e in state.store.audit_entries(guid.as_deref(), limit).await? {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            api_types::timestamp::format(&e.at),
            e.actor,
            e.action,
            e.instance_guid.as_deref().unwrap_or("-"),
            e.outcome,
            e.remote_addr.as_deref().unwrap_or("-"),
            e.detail.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

fn uuid_v4() -> String {
    server::instances::new_guid()
}
