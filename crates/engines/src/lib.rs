//! Data-service engines and the local process deployer. Each engine module knows how
//! to lay out, start, check, dump, load and grant access to one kind of server;
//! [`local::LocalDeployer`] runs them as supervised processes on this machine.

mod accounts;
mod files;
mod layout;
pub mod local;
mod postgres;
mod process;
mod redis;
mod tools;

pub use layout::NodeLayout;
pub use local::{LocalDeployer, RestoreTarget};
pub use tools::{Tools, ToolsConfig};

use secrecy::SecretString;

/// The kinds of engine svcdash can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Postgresql,
    Redis,
}

impl EngineKind {
    /// The file name ending of a backup of this engine, before compression and encryption.
    pub fn dump_extension(self) -> &'static str {
        match self {
            Self::Postgresql => "dump",
            Self::Redis => "rdb",
        }
    }

    /// The short name used in metric namespaces and process names.
    pub fn short_name(self) -> &'static str {
        match self {
            Self::Postgresql => "pg",
            Self::Redis => "redis",
        }
    }
}

/// Everything needed to run one node of an instance.
#[derive(Clone)]
pub struct NodeSpec {
    pub engine: EngineKind,
    pub instance_guid: String,
    /// The name svcdash made for the instance on this host: its folder's name and,
    /// when svcdash runs as root, its account's. Never an id from a request.
    pub local_name: String,
    pub index: i64,
    pub port: u16,
    pub admin_user: String,
    pub admin_password: SecretString,
}

impl std::fmt::Debug for NodeSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSpec")
            .field("engine", &self.engine)
            .field("instance_guid", &self.instance_guid)
            .field("local_name", &self.local_name)
            .field("index", &self.index)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// What an application gets to reach its instance.
#[derive(Debug, Clone)]
pub struct AppCredentials {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    pub database: Option<String>,
    pub uri: String,
}

/// Letters and digits only, so generated secrets never need quoting.
pub fn generate_secret(len: usize) -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), len)
}

/// A new local name for an instance: `sd-` and ten random lower-case letters and
/// digits, fit for a folder and an account name (at most 32 characters, starting
/// with a letter).
pub fn new_local_name() -> String {
    format!("sd-{}", generate_secret(10).to_ascii_lowercase())
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}
