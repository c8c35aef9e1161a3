//! API tokens and the sessions made from them end when they should: a revoked or
//! expired token, a session past its absolute lifetime, a revoked grant, and a
//! provider token's expiry. Tokens are made, listed and revoked with the CLI.

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, COOKIE, LOCATION};
use serde_json::Value;

use crate::helpers::*;
use crate::sessions::{HTML, client, curl_sign_in, json, session_rows};

/// The CLI on the app's data folder, beside the running server.
async fn cli(app: &TestApp, args: &[&str]) -> (bool, String) {
    let data = app.data.to_str().unwrap().to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        crate::cli::svcdash(&args, &[("SVCDASH_DATA", data.as_str())])
    })
    .await
    .unwrap()
}

/// The status (and body) of `GET path` with these credentials.
async fn get(app: &TestApp, path: &str, auth: (&str, &str)) -> (StatusCode, Value) {
    let res = client().get(format!("{}{path}", app.base)).header(auth.0, auth.1).send().await.unwrap();
    json(res).await
}

fn bearer(token: &str) -> (&'static str, &str) {
    (AUTHORIZATION.as_str(), token)
}

fn cookie(cookie: &str) -> (&'static str, &str) {
    (COOKIE.as_str(), cookie)
}

#[tokio::test]
async fn a_revoked_token_is_refused_and_the_sessions_made_from_it_end() {
    let app = TestApp::start().await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let dashboard = format!("/service-instances/{id}");
    let overview = format!("/v1/instances/{id}");

    let (ok, first) = cli(&app, &["token", "--user", "alice"]).await;
    assert!(ok && first.starts_with("bearer sd_"), "{first}");
    let first = first.trim().to_owned();
    let (ok, second) = cli(&app, &["token", "create", "--user", "alice", "--expires", "never"]).await;
    assert!(ok && second.starts_with("bearer sd_"), "{second}");
    let second = second.trim().to_owned();
    let first_cookie = curl_sign_in(&app, &first, &dashboard).await;
    let second_cookie = curl_sign_in(&app, &second, &dashboard).await;
    assert_eq!(get(&app, &overview, cookie(&first_cookie)).await.0, StatusCode::OK);

    // The list names the tokens, never shows them.
    let (ok, list) = cli(&app, &["token", "list", "--user", "alice"]).await;
    assert!(ok, "{list}");
    for secret in [&first, &second, &app.token] {
        let token = secret.trim_start_matches("bearer ");
        assert!(!list.contains(token) && !list.contains(&server::auth::hash_token(token)), "{list}");
    }
    let rows: Vec<Vec<&str>> = list.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 3, "{list}");
    assert!(rows.iter().all(|r| r[1] == "alice"), "{list}");
    // The helper's token does not expire; the CLI's default is 30 days; then `never`.
    let expires: Vec<&str> = rows.iter().map(|r| r[3]).collect();
    assert_eq!((expires[0], expires[2]), ("never", "never"), "{list}");
    let in_30_days = chrono::DateTime::parse_from_rfc3339(expires[1]).unwrap();
    let off = in_30_days.signed_duration_since(chrono::Utc::now() + chrono::Duration::days(30));
    assert!(off.num_seconds().abs() < 600, "{list}");
    let first_id = rows[1][0];

    let (ok, out) = cli(&app, &["token", "revoke", first_id]).await;
    assert!(ok, "{out}");
    assert_eq!(out.trim(), format!("token {first_id} revoked, 1 sessions ended"));
    let (status, body) = get(&app, &overview, bearer(&first)).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("Unauthorized")), "{body}");
    assert!(body["description"].as_str().unwrap().contains("revoked"), "{body}");
    let (status, body) = get(&app, &overview, cookie(&first_cookie)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the session made from it ended: {body}");
    let res = client().get(format!("{}{dashboard}", app.base)).header(COOKIE, &first_cookie).header(ACCEPT, HTML);
    let res = res.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "a browser goes to the login page");
    assert!(res.headers()[LOCATION].to_str().unwrap().starts_with("/auth/login"));
    // Nor can it sign in again.
    let res = client().get(format!("{}{dashboard}", app.base)).header(AUTHORIZATION, &first).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // The user's other token and its session are untouched...
    assert_eq!(get(&app, &overview, bearer(&second)).await.0, StatusCode::OK);
    assert_eq!(get(&app, &overview, cookie(&second_cookie)).await.0, StatusCode::OK);
    // ...until all of the user's tokens are revoked.
    let (ok, out) = cli(&app, &["token", "revoke", "--user", "alice", "--all"]).await;
    assert!(ok && out.trim() == "2 tokens of alice revoked, 1 sessions ended", "{out}");
    for credentials in [bearer(&second), bearer(&app.token), cookie(&second_cookie)] {
        assert_eq!(get(&app, &overview, credentials).await.0, StatusCode::UNAUTHORIZED, "{}", credentials.0);
    }
    assert_eq!(session_rows(&app).await, []);
    let (ok, out) = cli(&app, &["token", "revoke", first_id]).await;
    assert!(!ok && out.contains(&format!("there is no token {first_id}")), "{out}");

    let audit = audit_log(&app).await;
    let by_cli: Vec<&str> = audit.iter().filter(|e| e.actor == "cli").map(|e| e.action.as_str()).collect();
    assert_eq!(by_cli, ["token.revoke", "token.revoke", "token.create", "token.create"]);
}

#[tokio::test]
async fn an_expired_token_is_refused_and_its_session_ends_with_it() {
    let app = TestApp::start().await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let store = &app.state().store;
    let alice = store.user_by_name("alice").await.unwrap();
    let token = server::auth::new_token();
    let expires_at = chrono::Utc::now() + chrono::Duration::seconds(5);
    store.create_token(alice.id, &server::auth::hash_token(&token), Some(expires_at)).await.unwrap();
    let token = format!("bearer {token}");
    let overview = format!("/v1/instances/{id}");

    let session = curl_sign_in(&app, &token, &format!("/service-instances/{id}")).await;
    assert_eq!(get(&app, &overview, bearer(&token)).await.0, StatusCode::OK);
    assert_eq!(get(&app, &overview, cookie(&session)).await.0, StatusCode::OK);

    let left = expires_at - chrono::Utc::now();
    tokio::time::sleep(left.to_std().unwrap_or_default() + std::time::Duration::from_millis(300)).await;
    let (status, body) = get(&app, &overview, bearer(&token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["description"].as_str().unwrap().contains("expired"), "{body}");
    let (status, body) = get(&app, &overview, cookie(&session)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the session ended with the token: {body}");
}

#[tokio::test]
async fn a_busy_session_ends_at_its_absolute_lifetime() {
    let dir = data_dir();
    let mut config = config(dir.path());
    config.auth.session_max_secs = 2;
    let app = TestApp::start_in(dir.path(), config).await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let overview = format!("/v1/instances/{id}");
    let before = std::time::Instant::now();
    let session = curl_sign_in(&app, &app.token, &format!("/service-instances/{id}")).await;
    let after = std::time::Instant::now();
    let lifetime = std::time::Duration::from_secs(2);

    // Used all along, never idle: it still ends, neither before nor long after its time.
    let mut last = StatusCode::OK;
    while last == StatusCode::OK {
        let sent = std::time::Instant::now();
        assert!(sent - after < lifetime * 2, "still on after {:?}", sent - after);
        last = get(&app, &overview, cookie(&session)).await.0;
        if last == StatusCode::OK {
            assert!(sent - after < lifetime, "answered though sent {:?} after it began", sent - after);
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    assert_eq!(last, StatusCode::UNAUTHORIZED);
    assert!(before.elapsed() >= lifetime, "ended early, after {:?}", before.elapsed());
    // A browser goes back to the login page; the token itself still works.
    let res = client().get(format!("{}{overview}", app.base)).header(COOKIE, &session).header(ACCEPT, HTML);
    assert_eq!(res.send().await.unwrap().status(), StatusCode::SEE_OTHER);
    assert_eq!(get(&app, &overview, bearer(&app.token)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn revoking_a_grant_ends_access_for_the_token_and_the_session_at_once() {
    let app = TestApp::start().await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let overview = format!("/v1/instances/{id}");
    for args in [
        &["users", "create", "bob"][..],
        &["users", "grant", "bob", "--tenant", "org-a"],
        &["users", "grant", "bob", "--tenant", "org-a", "--subtenant", "space-1", "--role", "read"],
    ] {
        let (ok, out) = cli(&app, args).await;
        assert!(ok, "{args:?}: {out}");
    }
    let (_, token) = cli(&app, &["token", "--user", "bob"]).await;
    let token = token.trim().to_owned();
    let session = curl_sign_in(&app, &token, &format!("/service-instances/{id}")).await;

    // Without the subtenant's grant the tenant's still reaches the instance, and says so.
    let (ok, out) = cli(&app, &["users", "revoke", "bob", "--tenant", "org-a", "--subtenant", "space-1"]).await;
    assert!(ok && out.contains("bob has no access to tenant org-a, subtenant space-1 any more"), "{out}");
    assert!(out.contains("still has a grant on the whole tenant org-a"), "{out}");
    let (status, body) = get(&app, &overview, cookie(&session)).await;
    assert_eq!((status, body["access"].as_str()), (StatusCode::OK, Some("manage")), "{body}");
    let (ok, out) = cli(&app, &["users", "revoke", "bob", "--tenant", "org-a", "--subtenant", "space-1"]).await;
    assert!(!ok && out.contains("bob has no grant on tenant org-a, subtenant space-1"), "{out}");

    let (ok, out) = cli(&app, &["users", "revoke", "bob", "--tenant", "org-a"]).await;
    assert!(ok && out.contains("bob has no access to tenant org-a any more"), "{out}");
    for credentials in [bearer(&token), cookie(&session)] {
        let (status, body) = get(&app, &overview, credentials).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("Forbidden")), "{body}");
        let (status, body) = get(&app, "/v1/instances", credentials).await;
        assert_eq!((status, body), (StatusCode::OK, Value::Array(vec![])));
    }
    let (ok, out) = cli(&app, &["users", "list"]).await;
    assert!(ok && out.lines().any(|l| l.trim_end() == "bob"), "no grants left: {out}");
    // Alice, granted the same tenant, keeps her access.
    assert_eq!(get(&app, &overview, bearer(&app.token)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_session_made_from_a_provider_token_has_its_access_and_ends_with_the_token() {
    // ID tokens live 4 s, and carry the groups.
    let sso = crate::sso::start(&[("OIDC_TTL_ID", "4"), ("OIDC_CLAIMS_IN_ID_TOKEN", "1")]).await;
    let app = &sso.app;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let tokens = sso.idp.tokens_for("alice").await;
    let issued = std::time::Instant::now();
    let token = format!("bearer {}", tokens["id_token"].as_str().unwrap());
    let overview = format!("/v1/instances/{id}");

    let session = curl_sign_in(app, &token, &format!("/service-instances/{id}")).await;
    // The session knows alice's groups: team-a manages org-a.
    let (status, body) = get(app, &overview, cookie(&session)).await;
    assert_eq!((status, body["access"].as_str()), (StatusCode::OK, Some("manage")), "{body}");
    assert_eq!(session_rows(app).await.len(), 1);

    tokio::time::sleep(std::time::Duration::from_millis(4600).saturating_sub(issued.elapsed())).await;
    let (status, body) = get(app, &overview, bearer(&token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = get(app, &overview, cookie(&session)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the session ended with the token: {body}");
}
