//! The `[auth]` section: who signs people in, what decides their access to an
//! instance, sessions and sign-in throttling.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use store::Role;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Who signs people in: `local` (svcdash's own users and login page), `oidc`
    /// (any OpenID Connect provider) or `uaa` (Cloud Foundry's UAA).
    pub provider: ProviderKind,
    /// What decides access to an instance: `grants` (local users' grants, and
    /// `group_mappings` for single sign-on users) or `cloud-foundry` (the Cloud
    /// Controller's permissions of the user on the instance).
    pub authorizer: AuthorizerKind,
    /// A session ends after this many seconds without a request.
    pub session_idle_secs: u64,
    /// A session ends this many seconds after it began, however busy it is.
    pub session_max_secs: u64,
    /// Days a new API token (`svcdash token`) lasts unless `--expires` says
    /// otherwise; 0: tokens do not expire.
    pub token_expiry_days: u32,
    /// Seconds an answer on a user's permissions (or a token's owner) is reused.
    pub permission_cache_secs: u64,
    /// Failed sign-ins allowed per user name and per client address within
    /// `failed_login_window_secs`. Past it, an address gets 429 until the window
    /// passes; a user name is not locked but delayed: each further attempt waits
    /// 1 s, 2 s, 4 s, … (at most 30 s) after the last failure.
    pub max_failed_logins: u32,
    pub failed_login_window_secs: u64,
    /// Passwords checked at once, server-wide (each check takes ~19 MiB); an
    /// attempt that finds none free within 5 s gets 429.
    pub password_check_slots: usize,
    pub oidc: OidcConfig,
    /// Single sign-on groups and the tenants (and subtenants) they give access to.
    pub group_mappings: Vec<GroupMapping>,
    pub cloud_foundry: CloudFoundryConfig,
    /// With `provider = "uaa"`: whether `/v2/catalog` carries the dashboard's UAA
    /// client (id, secret, redirect URI) for Cloud Foundry to register. Anyone
    /// holding the broker credentials then reads the client secret.
    pub catalog_dashboard_client: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            provider: ProviderKind::Local,
            authorizer: AuthorizerKind::Grants,
            session_idle_secs: 600,
            session_max_secs: 12 * 3600,
            token_expiry_days: 30,
            permission_cache_secs: 10,
            max_failed_logins: 5,
            failed_login_window_secs: 300,
            password_check_slots: 2,
            oidc: OidcConfig::default(),
            group_mappings: Vec::new(),
            cloud_foundry: CloudFoundryConfig::default(),
            catalog_dashboard_client: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    Local,
    Oidc,
    Uaa,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthorizerKind {
    Grants,
    CloudFoundry,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcConfig {
    /// The provider's issuer URL; its discovery document is read from
    /// `<issuer>/.well-known/openid-configuration`.
    pub issuer: Option<String>,
    pub client_id: String,
    #[serde(skip_serializing)]
    pub client_secret: Option<SecretString>,
    /// Scopes asked for besides `openid` (`offline_access` gets a refresh token
    /// from most providers; UAA mode adds `cloud_controller_service_permissions.read`).
    pub scopes: Vec<String>,
    /// The claim holding the user's groups.
    pub groups_claim: String,
    /// The clients bearer tokens may be issued for (`aud`, and `azp`/`client_id`
    /// where the token names its client); the client id when empty.
    pub audiences: Vec<String>,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            issuer: None,
            client_id: "svcdash".into(),
            client_secret: None,
            scopes: vec!["profile".into(), "email".into(), "offline_access".into()],
            groups_claim: "groups".into(),
            audiences: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupMapping {
    pub group: String,
    pub tenant: String,
    /// Only this subtenant of the tenant; the whole tenant when absent.
    #[serde(default)]
    pub subtenant: Option<String>,
    #[serde(default = "manage", with = "role_text")]
    pub role: Role,
}

fn manage() -> Role {
    Role::Manage
}

mod role_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use store::Role;

    pub fn serialize<S: Serializer>(role: &Role, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(role.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Role, D::Error> {
        String::deserialize(d)?.parse().map_err(|_| serde::de::Error::custom("role must be \"read\" or \"manage\""))
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CloudFoundryConfig {
    /// The Cloud Controller's URL (`https://api.<system domain>`), asked for each
    /// user's permissions on an instance.
    pub api_url: Option<String>,
}
