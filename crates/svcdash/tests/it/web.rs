//! Signing in on the web, hardened: sign-in returns only to paths on this server,
//! every answer carries the browser security headers, and password guessing is
//! throttled without exhausting memory or locking a user out for everyone.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION};
use reqwest::{Method, StatusCode};

use crate::helpers::*;
use crate::sessions::{client, form, set_cookie};

/// `return_to` values an attacker could put in a sign-in link, and where the
/// browser must land after signing in.
pub const RETURN_TO_CASES: [(&str, &str); 9] = [
    ("//evil.example", "/"),
    ("/\\evil.example", "/"),
    ("/\t/evil.example", "/"),
    ("/\n/evil", "/"),
    ("https://evil.example", "/"),
    ("javascript:alert(1)", "/"),
    ("/\\t/evil", "/"),
    // Still encoded in the path, where browsers leave it.
    ("/%09/evil.example", "/%09/evil.example"),
    ("/service-instances/x?y=1", "/service-instances/x?y=1"),
];

pub fn encoded(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

async fn with_password(app: &TestApp, name: &str, password: &str) {
    let user = app.state().store.user_by_name(name).await.unwrap();
    let hash = server::auth::hash_password(password).unwrap();
    app.state().store.set_password_hash(user.id, &hash).await.unwrap();
}

#[tokio::test]
async fn local_sign_in_returns_only_to_paths_on_this_server() {
    let app = TestApp::start().await;
    with_password(&app, "alice", "correct horse battery").await;
    let http = client();

    for (asked, expected) in RETURN_TO_CASES {
        // The link's target is what the form carries...
        let res = http.get(format!("{}/auth/login?return_to={}", app.base, encoded(asked))).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{asked:?}");
        let (cookie, _) = set_cookie(&res, "svcdash_login").unwrap();
        let html = res.text().await.unwrap();
        let field = format!(r#"name="return_to" value="{expected}""#);
        assert!(html.contains(&field), "{asked:?}: {field} missing in {html}");

        // ...and a form posted with the unchecked value still goes nowhere else.
        let csrf = cookie.strip_prefix("svcdash_login=").unwrap().to_owned();
        let res = http
            .post(format!("{}/auth/login", app.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(COOKIE, &cookie)
            .body(form(&[
                ("username", "alice"),
                ("password", "correct horse battery"),
                ("_csrf", &csrf),
                ("return_to", asked),
            ]))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{asked:?}");
        assert!(set_cookie(&res, "svcdash_session").is_some(), "{asked:?}: signed in");
        assert_eq!(res.headers()[LOCATION], expected, "{asked:?}");
    }
}

#[tokio::test]
async fn every_answer_carries_the_browser_security_headers() {
    let app = TestApp::start().await;
    let http = client();
    let (page, json) = ("text/html", "application/json");
    let answers = [
        ("the login page", Method::GET, "/auth/login", None, page, StatusCode::OK, "text/html"),
        ("a page, signed out", Method::GET, "/", None, page, StatusCode::SEE_OTHER, ""),
        ("an API answer", Method::GET, "/v1/instances", Some(app.token.as_str()), json, StatusCode::OK, json),
        ("an API error", Method::GET, "/v1/instances", None, json, StatusCode::UNAUTHORIZED, json),
        ("no such route", Method::GET, "/no/such/route", None, json, StatusCode::NOT_FOUND, json),
        ("the broker", Method::GET, "/v2/catalog", None, json, StatusCode::UNAUTHORIZED, ""),
        ("the stylesheet", Method::GET, "/assets/app.css", None, page, StatusCode::OK, "text/css"),
        ("the script", Method::GET, "/assets/app.js", None, page, StatusCode::OK, "text/javascript"),
    ];
    for (what, method, path, token, accept, status, content_type) in answers {
        let mut req = http.request(method, format!("{}{path}", app.base)).header("Accept", accept);
        if let Some(token) = token {
            req = req.header("Authorization", token);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), status, "{what}");
        let header = |name: &str| res.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        assert!(header("content-type").unwrap_or_default().starts_with(content_type), "{what}: {:?}", res.headers());
        let csp = header("content-security-policy").unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"));
        let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        ] {
            assert!(directives.contains(&directive), "{what}: {directive} missing in {csp}");
        }
        assert!(!csp.contains("unsafe-"), "{what}: {csp}");
        assert_eq!(header("x-frame-options").as_deref(), Some("DENY"), "{what}");
        assert_eq!(header("referrer-policy").as_deref(), Some("same-origin"), "{what}");
        assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"), "{what}");
    }
}

/// Sends `count` wrong-password sign-ins at once, the i-th as `name(i)` from
/// `from(i)` (as the trusted proxy reports it); returns each answer's status
/// and `Retry-After`.
async fn guess_in_parallel(
    base: &str,
    count: usize,
    name: impl Fn(usize) -> String,
    from: impl Fn(usize) -> String,
) -> Vec<(StatusCode, Option<u64>)> {
    let http = client();
    let attempts: Vec<_> = (0..count)
        .map(|i| {
            let attempt = http
                .post(format!("{base}/auth/login"))
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header("X-Forwarded-For", from(i))
                .header(COOKIE, "svcdash_login=sd_form")
                .body(form(&[("username", &name(i)), ("password", "a wrong guess"), ("_csrf", "sd_form")]))
                .send();
            tokio::spawn(attempt)
        })
        .collect();
    let mut answers = Vec::new();
    for attempt in attempts {
        let res = attempt.await.unwrap().unwrap();
        let retry = res.headers().get("retry-after").map(|v| v.to_str().unwrap().parse().unwrap());
        answers.push((res.status(), retry));
    }
    answers
}

#[tokio::test]
async fn parallel_guesses_from_one_address_get_no_more_than_the_allowed_failures() {
    let app = TestApp::start().await;
    with_password(&app, "alice", "correct horse battery").await;
    let max = app.state().config.auth.max_failed_logins as usize;
    // Different names, and made-up proxy headers svcdash must not believe (no
    // proxy is trusted): only the address can hold the guesses back.
    let answers = guess_in_parallel(&app.base, 20, |i| format!("user-{i}"), |i| format!("203.0.113.{i}")).await;
    let unauthorized = answers.iter().filter(|(s, _)| *s == StatusCode::UNAUTHORIZED).count();
    let refused: Vec<_> = answers.iter().filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS).collect();
    assert!((1..=max).contains(&unauthorized), "{unauthorized} wrong passwords were checked: {answers:?}");
    assert_eq!(unauthorized + refused.len(), 20, "{answers:?}");
    assert!(refused.iter().all(|(_, retry)| retry.is_some_and(|r| r >= 1)), "{answers:?}");
    let res = client().get(format!("{}/v1/instances", app.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "svcdash still answers");
}

#[tokio::test]
async fn a_user_guessed_at_from_one_address_still_signs_in_from_another() {
    let dir = data_dir();
    let mut config = config(dir.path());
    config.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    let app = TestApp::start_in(dir.path(), config).await;
    with_password(&app, "alice", "correct horse battery").await;

    let answers = guess_in_parallel(&app.base, 20, |_| "alice".to_owned(), |_| "203.0.113.66".to_owned()).await;
    assert!(answers.iter().all(|(s, _)| [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(s)));
    let http = client();
    let sign_in = || async {
        let res = http.get(format!("{}/auth/login", app.base)).send().await.unwrap();
        let (cookie, _) = set_cookie(&res, "svcdash_login").unwrap();
        let csrf = cookie.strip_prefix("svcdash_login=").unwrap().to_owned();
        http.post(format!("{}/auth/login", app.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("X-Forwarded-For", "198.51.100.7")
            .header(COOKIE, &cookie)
            .body(form(&[("username", "alice"), ("password", "correct horse battery"), ("_csrf", &csrf)]))
            .send()
            .await
            .unwrap()
    };
    // Alice, elsewhere, is asked to wait a moment at most, then gets in.
    let started = Instant::now();
    let mut res = sign_in().await;
    let mut waits = Vec::new();
    while res.status() == StatusCode::TOO_MANY_REQUESTS && waits.len() < 3 {
        let wait: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        waits.push(wait);
        tokio::time::sleep(Duration::from_secs(wait)).await;
        res = sign_in().await;
    }
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "waited {waits:?}");
    assert!(waits.iter().all(|w| *w <= 2), "waited {waits:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());

    // The audit log has the addresses the trusted proxy reported.
    let logins: Vec<(String, Option<String>)> = audit_log(&app)
        .await
        .into_iter()
        .filter(|e| e.action == "login")
        .map(|e| (e.outcome.to_string(), e.remote_addr))
        .collect();
    assert_eq!(logins[0], ("success".to_owned(), Some("198.51.100.7".to_owned())), "{logins:?}");
    assert!(
        logins.iter().filter(|(o, _)| o == "failure").all(|(_, addr)| addr.as_deref() == Some("203.0.113.66")),
        "{logins:?}"
    );
}

#[tokio::test]
async fn api_callers_are_audited_with_the_address_a_trusted_proxy_reports() {
    let dir = data_dir();
    let mut config = config(dir.path());
    config.http.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let app = TestApp::start_in(dir.path(), config).await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let mallory = user_token(app.state(), "mallory", "org-b").await;
    for forwarded in ["192.0.2.1, 198.51.100.23", "198.51.100.23, 127.0.0.1"] {
        let res = app
            .client
            .post(format!("{}/v1/instances/{id}/backups", app.base))
            .header("Authorization", &mallory)
            .header("X-Forwarded-For", forwarded)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
    }
    let entries = app.state().store.audit_entries(Some(&id), 10).await.unwrap();
    let denied: Vec<_> =
        entries.iter().filter(|e| e.actor == "mallory").map(|e| e.remote_addr.as_deref().unwrap_or("-")).collect();
    assert_eq!(denied, ["198.51.100.23", "198.51.100.23"]);
}

/// `svcdash serve` as its own process, so its memory is its own.
struct Svcdash(Child);

impl Drop for Svcdash {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn svcdash(data: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_svcdash"))
        .args(args)
        .env("SVCDASH_DATA", data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "svcdash {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The process's peak resident memory (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn fifty_parallel_wrong_passwords_stay_within_a_memory_bound() {
    const SLOTS: u64 = 2;
    const ARGON2_MIB: u64 = 19;
    let dir = data_dir();
    let data = dir.path();
    svcdash(data, &["users", "create", "alice"], None);
    svcdash(data, &["users", "passwd", "alice"], Some("correct horse battery\n"));
    let config = data.join("svcdash.toml");
    std::fs::write(
        &config,
        format!("[http]\ntrusted_proxies = [\"127.0.0.1\"]\n[auth]\npassword_check_slots = {SLOTS}\n"),
    )
    .unwrap();
    let port = engines::free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let server = Svcdash(
        Command::new(env!("CARGO_BIN_EXE_svcdash"))
            .arg("serve")
            .env("SVCDASH_CONFIG", &config)
            .env("SVCDASH_DATA", data)
            .env("SVCDASH_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("TEST_LOG").is_some() { Stdio::inherit() } else { Stdio::null() })
            .spawn()
            .unwrap(),
    );
    wait_for("svcdash to answer", Duration::from_secs(60), &mut || {
        let url = format!("{base}/auth/login");
        async move { reqwest::get(url).await.ok().filter(|r| r.status().is_success()).map(|_| ()) }
    })
    .await;
    // A first round fills what every check needs once (the hash unknown names
    // are checked against, the checking threads' memory).
    let warm = guess_in_parallel(&base, SLOTS as usize, |i| format!("warm-{i}"), |i| format!("192.0.2.{i}")).await;
    assert!(warm.iter().all(|(s, _)| *s == StatusCode::UNAUTHORIZED), "{warm:?}");
    let before = peak_rss_kib(server.0.id());

    // Distinct names and addresses: neither per-name nor per-address throttling
    // holds these back, only the bound on checks running at once.
    let answers = guess_in_parallel(
        &base,
        50,
        |i| if i == 0 { "alice".to_owned() } else { format!("user-{i}") },
        |i| format!("10.1.{}.{}", i / 200, i % 200 + 1),
    )
    .await;
    let after = peak_rss_kib(server.0.id());
    let checked = answers.iter().filter(|(s, _)| *s == StatusCode::UNAUTHORIZED).count();
    let busy = answers.iter().filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS).count();
    let grew_mib = after.saturating_sub(before) / 1024;
    println!(
        "peak RSS {} MiB before, {} MiB after 50 parallel wrong passwords ({checked} checked, {busy} turned away): \
         +{grew_mib} MiB; {SLOTS} slots × {ARGON2_MIB} MiB = {} MiB; unbounded: 50 × {ARGON2_MIB} MiB = {} MiB",
        before / 1024,
        after / 1024,
        SLOTS * ARGON2_MIB,
        50 * ARGON2_MIB,
    );
    assert_eq!(checked + busy, 50, "{answers:?}");
    assert!(checked >= 10, "most were checked, one slot after another: {answers:?}");
    assert!(grew_mib < SLOTS * 20 + 20, "grew by {grew_mib} MiB");
    assert!(grew_mib < 50 * ARGON2_MIB / 4, "grew by {grew_mib} MiB");
}
