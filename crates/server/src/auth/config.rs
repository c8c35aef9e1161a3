//! The `[auth]` section: sessions, sign-in throttling.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// A session ends after this many seconds without a request.
    pub session_idle_secs: u64,
    /// Failed sign-ins allowed per user name and per client address within
    /// `failed_login_window_secs`; further attempts get 429 until the window passes.
    pub max_failed_logins: u32,
    pub failed_login_window_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { session_idle_secs: 600, max_failed_logins: 5, failed_login_window_secs: 300 }
    }
}
