//! A real OpenID Connect provider for the tests: the npm package `oidc-provider`
//! (tests/support/oidc-provider.mjs), started on a free port. `./dev.sh test`
//! installs it under target/test-tools/node; `TEST_NODE_MODULES` says
//! where when it lives elsewhere.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

pub struct Idp {
    child: Child,
    pub issuer: String,
    /// svcdash's redirect URI, registered for its client.
    callback: String,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn node_modules() -> PathBuf {
    std::env::var_os("TEST_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-tools/node/node_modules"))
}

pub const CLIENT_ID: &str = "svcdash";
pub const CLIENT_SECRET: &str = "idp-client-secret";
/// A second client: the tests use it to get tokens of their own, as `cf oauth-token` would.
pub const CLI_CLIENT_ID: &str = "cli";
pub const CLI_REDIRECT: &str = "http://127.0.0.1:9/cli-callback";
/// Another application signing in with the same provider: its tokens are not for svcdash.
pub const OTHER_CLIENT_ID: &str = "other-app";
const OTHER_REDIRECT: &str = "http://127.0.0.1:9/other-callback";

/// Alice is in team-a, Bob in team-b; Carol and Dave in no group.
pub fn accounts() -> Value {
    json!({
        "alice": {"name": "Alice", "email": "alice@example.com", "groups": ["team-a"]},
        "bob": {"name": "Bob", "email": "bob@example.com", "groups": ["team-b"]},
        "carol": {"name": "Carol", "email": "carol@example.com", "groups": []},
        "dave": {"name": "Dave", "email": "dave@example.com", "groups": []},
    })
}

impl Idp {
    /// Starts the provider with svcdash's client (redirecting to `callback`), the CLI
    /// client and another application's. `env` sets further options (`OIDC_TTL_ID`, ...).
    pub fn start(callback: &str, env: &[(&str, &str)]) -> Idp {
        let modules = node_modules();
        assert!(
            modules.join("oidc-provider").is_dir(),
            "oidc-provider is not installed under {} (`./dev.sh test` installs it)",
            modules.display()
        );
        let clients = json!([
            {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [callback]},
            {"client_id": CLI_CLIENT_ID, "client_secret": "cli-secret", "redirect_uris": [CLI_REDIRECT]},
            {"client_id": OTHER_CLIENT_ID, "client_secret": "other-secret", "redirect_uris": [OTHER_REDIRECT]},
        ]);
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/oidc-provider.mjs");
        let mut child = Command::new("node")
            .arg(script)
            .env("TEST_NODE_MODULES", &modules)
            .env("OIDC_PORT", "0")
            .env("OIDC_CLIENTS", clients.to_string())
            .env("OIDC_ACCOUNTS", accounts().to_string())
            .envs(env.iter().copied())
            // Nothing to read: a terminal the test run was started from stays the run's.
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node ({e}); `./dev.sh test` installs Node.js"));
        // Read on threads of their own: a provider that never says it is ready fails
        // the test after a minute instead of blocking it (and the run) for good, and
        // says what it printed and whether it was still running.
        let started = std::time::Instant::now();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let reader = std::thread::spawn({
            let (stderr, pipe) = (stderr.clone(), child.stderr.take().unwrap());
            move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut lines = stderr.lock().unwrap();
                    if lines.len() < 200 {
                        lines.push(line);
                    }
                }
            }
        });
        let line = rx.recv_timeout(std::time::Duration::from_secs(60));
        let issuer = line.as_deref().ok().and_then(|l| l.trim().strip_prefix("OIDC_PROVIDER_READY "));
        let Some(issuer) = issuer.map(str::to_owned) else {
            let state = match child.try_wait() {
                Ok(Some(status)) => format!("it ended ({status})"),
                Ok(None) => "it was still running".to_owned(),
                Err(e) => format!("cannot tell whether it runs: {e}"),
            };
            let waited = started.elapsed();
            let _ = (child.kill(), child.wait());
            let _ = reader.join();
            panic!(
                "the OpenID provider did not say it was ready ({line:?} after {waited:?}; {state}); it wrote on stderr:\n{}",
                stderr.lock().unwrap().join("\n")
            )
        };
        Idp { child, issuer, callback: callback.to_owned() }
    }

    /// Tokens of `user` for the CLI client, the way a command-line tool gets them:
    /// authorization code flow with PKCE, the user picked by `login_hint`.
    pub async fn tokens_for(&self, user: &str) -> Value {
        self.tokens_of(CLI_CLIENT_ID, user).await
    }

    /// Tokens of `user` issued to `client` (svcdash's, the CLI's or the other application's).
    pub async fn tokens_of(&self, client: &str, user: &str) -> Value {
        use base64::Engine;
        use sha2::Digest;
        let (secret, redirect) = match client {
            CLIENT_ID => (CLIENT_SECRET, self.callback.as_str()),
            CLI_CLIENT_ID => ("cli-secret", CLI_REDIRECT),
            OTHER_CLIENT_ID => ("other-secret", OTHER_REDIRECT),
            _ => panic!("no client {client} at the test provider"),
        };
        let verifier = format!("verifier-{user}-0123456789-0123456789-0123456789");
        let challenge =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
        let http = crate::helpers::http()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::custom({
                let redirect = redirect.to_owned();
                move |attempt| {
                    if attempt.url().as_str().starts_with(&redirect) { attempt.stop() } else { attempt.follow() }
                }
            }))
            .build()
            .unwrap();
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("client_id", client),
                ("response_type", "code"),
                ("scope", "openid profile email groups"),
                ("redirect_uri", redirect),
                ("state", "s"),
                ("nonce", "n"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("login_hint", user),
            ])
            .finish();
        let res = http.get(format!("{}/auth?{query}", self.issuer)).send().await.unwrap();
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        let code = url::Url::parse(&location)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no code in {location}"));
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect),
                ("code_verifier", &verifier),
            ])
            .finish();
        let res = http
            .post(format!("{}/token", self.issuer))
            .basic_auth(client, Some(secret))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "token request: {}", res.status());
        res.json().await.unwrap()
    }
}
