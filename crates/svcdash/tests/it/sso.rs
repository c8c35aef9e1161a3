//! Single sign-on against a real OpenID provider (oidc-provider, see `idp.rs`):
//! the browser's round trip and its bad cases, bearer JWTs and opaque tokens
//! (only those issued for svcdash), access from group claims, renewing an
//! expired sign-in with the refresh token.

use reqwest::header::{ACCEPT, AUTHORIZATION, LOCATION};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use server::auth::{GroupMapping, ProviderKind};

use crate::helpers::*;
use crate::idp::{self, Idp};

const HTML: &str = "text/html";

pub struct Sso {
    pub app: TestApp,
    pub idp: Idp,
    _dir: tempfile::TempDir,
}

/// svcdash with single sign-on through a fresh provider; team-a manages org-a,
/// team-b may read org-b.
pub async fn start(idp_env: &[(&str, &str)]) -> Sso {
    let dir = data_dir();
    let port = engines::free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let idp = Idp::start(&format!("{base}/auth/callback"), idp_env);
    let mut config = config(dir.path());
    config.listen = ([127, 0, 0, 1], port).into();
    config.public_url = Some(base);
    config.auth.provider = ProviderKind::Oidc;
    config.auth.oidc.issuer = Some(idp.issuer.clone());
    config.auth.oidc.client_id = idp::CLIENT_ID.into();
    config.auth.oidc.client_secret = Some(idp::CLIENT_SECRET.to_owned().into());
    config.auth.oidc.scopes = vec!["profile".into(), "email".into(), "groups".into(), "offline_access".into()];
    config.auth.oidc.audiences = vec![idp::CLIENT_ID.into(), idp::CLI_CLIENT_ID.into()];
    let mapping = |group: &str, tenant: &str, role| GroupMapping {
        group: group.into(),
        tenant: tenant.into(),
        subtenant: None,
        role,
    };
    config.auth.group_mappings =
        vec![mapping("team-a", "org-a", store::Role::Manage), mapping("team-b", "org-b", store::Role::Read)];
    let app = TestApp::start_in(dir.path(), config).await;
    Sso { app, idp, _dir: dir }
}

/// A browser: keeps cookies, follows redirects, but stops before svcdash's callback
/// so the test can hold (and replay) it.
fn browser() -> reqwest::Client {
    browser_with(std::sync::Arc::new(reqwest::cookie::Jar::default()))
}

/// A browser keeping its cookies in `jar`.
fn browser_with(jar: std::sync::Arc<reqwest::cookie::Jar>) -> reqwest::Client {
    crate::helpers::http()
        .cookie_provider(jar)
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            if attempt.url().path() == "/auth/callback" { attempt.stop() } else { attempt.follow() }
        }))
        .build()
        .unwrap()
}

/// Walks a browser from `path` through the provider's login form as `user`, up
/// to svcdash's callback; returns the callback URL.
async fn to_callback(sso: &Sso, browser: &reqwest::Client, path: &str, user: &str) -> String {
    let res = browser.get(format!("{}{path}", sso.app.base)).header(ACCEPT, HTML).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "the provider's login form");
    let form_url = res.url().clone();
    assert!(form_url.as_str().starts_with(&sso.idp.issuer), "{form_url}");
    assert!(res.text().await.unwrap().contains("Sign in to the test identity provider"));
    let res = browser
        .post(format!("{form_url}/login"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("login={user}&password=x"))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    let location = res.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(location.starts_with(&format!("{}/auth/callback?", sso.app.base)), "{location}");
    location
}

async fn page(browser: &reqwest::Client, url: &str) -> (StatusCode, String) {
    let res = browser.get(url).header(ACCEPT, HTML).send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

#[tokio::test]
async fn browsers_sign_in_through_the_identity_provider() {
    let sso = start(&[]).await;
    let app = &sso.app;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let overview = format!("/service-instances/{id}");

    let alice = browser();
    let callback = to_callback(&sso, &alice, &overview, "alice").await;
    // The callback signs in and returns to the page first asked for.
    let res = alice.get(&callback).header(ACCEPT, HTML).send().await.unwrap();
    assert_eq!((res.status(), res.url().path()), (StatusCode::OK, overview.as_str()));
    let html = res.text().await.unwrap();
    assert!(html.contains("alice@example.com") && html.contains("org-a") && html.contains("manage"), "{html}");
    let (status, html) = page(&alice, &format!("{}/", app.base)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&format!("href=\"{overview}\"")), "{html}");

    // A callback is good once: replaying it (its state, its code) signs nobody in.
    let (status, html) = page(&browser(), &callback).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("already used"), "{html}");
    let (status, _) = page(&alice, &callback).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A made-up state neither.
    let (status, html) = page(&browser(), &format!("{}/auth/callback?code=x&state=made-up", app.base)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    // Nor a callback carried to another browser than the one that began the sign-in.
    let callback = to_callback(&sso, &browser(), &overview, "alice").await;
    let (status, html) = page(&browser(), &callback).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("another browser"), "{html}");

    // Signed in, but without a group that reaches org-a: no access.
    for user in ["carol", "bob"] {
        let b = browser();
        let callback = to_callback(&sso, &b, &overview, user).await;
        let res = b.get(&callback).header(ACCEPT, HTML).send().await.unwrap();
        assert_eq!(res.url().path(), overview.as_str());
        let (status, html) = (res.status(), res.text().await.unwrap());
        assert_eq!(status, StatusCode::FORBIDDEN, "{user}");
        assert!(html.contains("No access"), "{html}");
    }

    let logins: Vec<(String, String)> = audit_log(app)
        .await
        .into_iter()
        .filter(|e| e.action == "login")
        .map(|e| (e.actor, e.outcome.to_string()))
        .collect();
    assert_eq!(
        logins,
        [("bob@example.com", "success"), ("carol@example.com", "success"), ("alice@example.com", "success")]
            .map(|(a, o)| (a.to_owned(), o.to_owned()))
    );
}

#[tokio::test]
async fn single_sign_on_returns_only_to_paths_on_this_server() {
    use reqwest::cookie::CookieStore;
    let sso = start(&[]).await;
    let no_redirects = crate::helpers::http().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for (asked, expected) in crate::web::RETURN_TO_CASES {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let path = format!("/auth/login?return_to={}", crate::web::encoded(asked));
        let callback = to_callback(&sso, &browser_with(jar.clone()), &path, "alice").await;
        // The callback, with the browser's cookies, as the browser would ask for it.
        let cookies = jar.cookies(&callback.parse().unwrap()).expect("the sign-in's cookie");
        let res = no_redirects.get(&callback).header(reqwest::header::COOKIE, cookies).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{asked:?}");
        assert_eq!(res.headers()[LOCATION], expected, "{asked:?}");
    }
}

#[tokio::test]
async fn provider_tokens_work_as_bearer_tokens() {
    // Groups in the ID token, as providers put them in tokens meant for APIs.
    let sso = start(&[("OIDC_TTL_ID", "4"), ("OIDC_CLAIMS_IN_ID_TOKEN", "1")]).await;
    let app = &sso.app;
    let a = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let b = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-b").await;
    let alice = sso.idp.tokens_for("alice").await;
    let bob = sso.idp.tokens_for("bob").await;
    let bearer = |tokens: &Value, which: &str| format!("bearer {}", tokens[which].as_str().unwrap());

    // The ID token is a JWT, checked against the provider's keys; the access token
    // is opaque here, so the provider's token introspection says whose it is (and,
    // since its answer carries no groups, userinfo which groups they are in).
    for which in ["id_token", "access_token"] {
        let (status, body) =
            app.api_as(&bearer(&alice, which), Method::GET, &format!("/v1/instances/{a}/backups"), None).await;
        assert_eq!(status, StatusCode::OK, "{which}: {body}");
        assert!(body.is_array(), "{body}");
        let (status, body) =
            app.api_as(&bearer(&alice, which), Method::POST, &format!("/v1/instances/{a}/backups"), Some("{}")).await;
        assert_eq!(status, StatusCode::OK, "{which}: {body}");
        // Alice's token does not reach org-b's instance...
        let (status, _) =
            app.api_as(&bearer(&alice, which), Method::GET, &format!("/v1/instances/{b}/backups"), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{which}");
        // ...and Bob's only reads there.
        let (status, _) =
            app.api_as(&bearer(&bob, which), Method::GET, &format!("/v1/instances/{b}/backups"), None).await;
        assert_eq!(status, StatusCode::OK, "{which}");
        let (status, _) =
            app.api_as(&bearer(&bob, which), Method::POST, &format!("/v1/instances/{b}/backups"), Some("{}")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{which}");
        let (status, _) =
            app.api_as(&bearer(&bob, which), Method::GET, &format!("/v1/instances/{a}/backups"), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{which}");
    }
    // A token whose signature does not check out is refused.
    let id_token = alice["id_token"].as_str().unwrap();
    // A character well inside the signature: the last one may carry only padding bits.
    let at = id_token.len() - 10;
    let other = if &id_token[at..at + 1] == "A" { "B" } else { "A" };
    let forged = format!("{}{other}{}", &id_token[..at], &id_token[at + 1..]);
    let (status, body) =
        app.api_as(&format!("bearer {forged}"), Method::GET, &format!("/v1/instances/{a}/backups"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // The reference's curl sign-in works with a provider token too.
    let res = crate::helpers::http()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/service-instances/{a}", app.base))
        .header(AUTHORIZATION, bearer(&alice, "id_token"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);

    // An expired JWT is refused with 401 (ID tokens live 4 s here).
    let carol = sso.idp.tokens_for("carol").await;
    let (status, _) = app.api_as(&bearer(&carol, "id_token"), Method::GET, "/v1/instances", None).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(4600)).await;
    let (status, body) = app.api_as(&bearer(&carol, "id_token"), Method::GET, "/v1/instances", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["description"].as_str().unwrap().contains("expired"), "{body}");
}

#[tokio::test]
async fn an_expired_sign_in_is_renewed_with_the_refresh_token() {
    let sso = start(&[("OIDC_TTL_ACCESS", "2")]).await;
    let app = &sso.app;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let b = browser();
    let callback = to_callback(&sso, &b, "/", "alice").await;
    assert_eq!(page(&b, &callback).await.0, StatusCode::OK);
    let overview = format!("{}/service-instances/{id}", app.base);
    assert_eq!(page(&b, &overview).await.0, StatusCode::OK);
    let sealed_before = sealed_tokens(app).await;

    // The access token expired: the next request renews it quietly.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(page(&b, &overview).await.0, StatusCode::OK);
    assert_ne!(sealed_tokens(app).await, sealed_before, "new tokens were stored");

    // When the provider cannot renew it, the session is over.
    drop(sso.idp);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let res = b.get(format!("{}/v1/instances/{id}", app.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body: Value = res.json().await.unwrap();
    assert!(body["description"].as_str().unwrap().contains("sign in again"), "{body}");
}

/// The sessions' sealed provider tokens, straight from the state database.
async fn sealed_tokens(app: &TestApp) -> Vec<Option<String>> {
    use sqlx::Connection;
    let url = format!("sqlite://{}?mode=ro", app.data.join("svcdash.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query_scalar("SELECT sealed_tokens FROM sessions ORDER BY id").fetch_all(&mut db).await.unwrap()
}

/// `(tenant, access)` of each instance `GET /v1/instances` shows the token's owner.
async fn visible(app: &TestApp, token: &str) -> (StatusCode, Value) {
    let (status, body) = app.api_as(&format!("bearer {token}"), Method::GET, "/v1/instances", None).await;
    if status != StatusCode::OK {
        return (status, body);
    }
    let seen = body.as_array().unwrap().iter().map(|i| serde_json::json!([i["tenant_id"], i["access"]])).collect();
    (status, Value::Array(seen))
}

/// A JWT with these claims, signed with HS256 keyed by `secret`.
fn hs256_jwt(claims: &Value, secret: &str) -> String {
    use base64::Engine;
    use hmac::{KeyInit, Mac};
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let signed = format!("{}.{}", b64(br#"{"alg":"HS256","typ":"JWT"}"#), b64(claims.to_string().as_bytes()));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(signed.as_bytes());
    format!("{signed}.{}", b64(&mac.finalize().into_bytes()))
}

#[tokio::test]
async fn bearer_tokens_are_accepted_only_when_issued_for_svcdash() {
    // The provider advertises HS256 for ID tokens, as some do: it must not count.
    // Groups in ID tokens, as providers put them in tokens meant for APIs.
    let sso = start(&[("OIDC_ID_TOKEN_ALGS", "RS256,HS256"), ("OIDC_CLAIMS_IN_ID_TOKEN", "1")]).await;
    let app = &sso.app;
    app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let alice_sees = serde_json::json!([["org-a", "manage"]]);

    // Tokens issued to svcdash's own client and to the listed CLI client, JWT and opaque alike.
    for client in [idp::CLIENT_ID, idp::CLI_CLIENT_ID] {
        let tokens = sso.idp.tokens_of(client, "alice").await;
        for which in ["id_token", "access_token"] {
            let (status, body) = visible(app, tokens[which].as_str().unwrap()).await;
            assert_eq!((status, &body), (StatusCode::OK, &alice_sees), "{client} {which}");
        }
    }

    // The same user's tokens from the same provider, issued to another application.
    let other = sso.idp.tokens_of(idp::OTHER_CLIENT_ID, "alice").await;
    for which in ["id_token", "access_token"] {
        let (status, body) = visible(app, other[which].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{which}: {body}");
        assert_eq!(body["error"], "Unauthorized", "{body}");
        assert!(body["description"].as_str().unwrap().contains(idp::OTHER_CLIENT_ID), "{which}: {body}");
    }

    // Claims good in every other way, for svcdash's client...
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({
        "iss": sso.idp.issuer, "aud": idp::CLIENT_ID, "sub": "alice", "iat": now, "exp": now + 300,
        "email": "alice@example.com", "groups": ["team-a"],
    });
    // ...signed with svcdash's client secret, which others may hold.
    let (status, body) = visible(app, &hs256_jwt(&claims, idp::CLIENT_SECRET)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["description"].as_str().unwrap().contains("HS256"), "{body}");
    // ...or not signed at all.
    use base64::Engine;
    let b64 = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
    for header in [r#"{"alg":"none","typ":"JWT"}"#, r#"{"alg":"none"}"#] {
        let unsigned = format!("{}.{}.", b64(header), b64(&claims.to_string()));
        let (status, body) = visible(app, &unsigned).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{header}: {body}");
    }
}

#[tokio::test]
async fn opaque_tokens_are_described_by_token_introspection() {
    // Introspection answers carry the user's name and groups; there is no userinfo
    // to ask, so all svcdash knows of an opaque token comes from introspection.
    let sso = start(&[("OIDC_INTROSPECTION_CLAIMS", "1"), ("OIDC_USERINFO", "0"), ("OIDC_TTL_ACCESS", "5")]).await;
    let app = &sso.app;
    let a = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;

    let alice = sso.idp.tokens_for("alice").await;
    let expires = std::time::Instant::now() + std::time::Duration::from_secs(alice["expires_in"].as_u64().unwrap());
    let token = alice["access_token"].as_str().unwrap();
    assert_eq!(token.split('.').count(), 1, "an opaque token: {token}");
    let (status, body) = visible(app, token).await;
    assert_eq!((status, body), (StatusCode::OK, serde_json::json!([["org-a", "manage"]])));
    // Bob's groups reach org-b only; the refusal names him as introspection did.
    let bob = sso.idp.tokens_for("bob").await;
    let (status, body) = app
        .api_as(
            &format!("bearer {}", bob["access_token"].as_str().unwrap()),
            Method::GET,
            &format!("/v1/instances/{a}/backups"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["description"].as_str().unwrap().contains("\"bob@example.com\""), "{body}");

    // The answer is remembered (permission_cache_secs, 10 s), but never past the token's expiry.
    tokio::time::sleep_until((expires + std::time::Duration::from_millis(600)).into()).await;
    let (status, body) = visible(app, token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn without_token_introspection_only_jwts_are_accepted() {
    let sso = start(&[("OIDC_INTROSPECTION", "0")]).await;
    let alice = sso.idp.tokens_for("alice").await;
    let (status, body) = visible(&sso.app, alice["id_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Userinfo would answer for this token, but says nothing of whom it was issued for.
    let (status, body) = visible(&sso.app, alice["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["description"].as_str().unwrap().contains("send a JWT issued for svcdash"), "{body}");
}
