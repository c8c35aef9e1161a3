//! Signing in: the reference's curl cookie flow, the login page, CSRF tokens,
//! throttled guessing, idle sessions, read-only access and the audit log. Tokens
//! and sessions ending (expiry, revocation, lifetimes, revoked grants) are in
//! `tokens.rs`.

use reqwest::header::{ACCEPT, AUTHORIZATION, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;

pub const HTML: &str = "text/html,application/xhtml+xml";

/// A client that shows redirects instead of following them.
pub fn client() -> reqwest::Client {
    crate::helpers::http().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// The `name=value` of a cookie the response sets, with its attributes.
pub fn set_cookie(res: &reqwest::Response, name: &str) -> Option<(String, String)> {
    res.headers().get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
        pair.starts_with(&format!("{name}=")).then(|| (pair.to_owned(), attrs.to_owned()))
    })
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

/// The CSRF token a page hands its script.
fn page_csrf(html: &str) -> String {
    let tag = r#"<meta name="csrf-token" content=""#;
    let start = html.find(tag).expect("page has a csrf meta tag") + tag.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// The dashboard URL among an instance overview's `urls`.
fn dashboard_link(instance: &Value) -> String {
    let urls = instance["urls"].as_array().unwrap_or_else(|| panic!("no urls in {instance}"));
    let dashboard = urls.iter().find(|u| u["id"] == "Dashboard").unwrap_or_else(|| panic!("{instance}"));
    assert_eq!(dashboard["display_name"], "Service Instance Dashboard");
    dashboard["link"].as_str().unwrap().to_owned()
}

pub async fn json(res: reqwest::Response) -> (StatusCode, Value) {
    let status = res.status();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Signs in the way the reference tells curl users to, at the dashboard URL
/// (`/service-instances/:id...`), and returns the session cookie.
pub async fn curl_sign_in(app: &TestApp, token: &str, path: &str) -> String {
    let res = client().get(format!("{}{path}", app.base)).header(AUTHORIZATION, token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND, "{path}");
    assert_eq!(res.headers()[LOCATION], format!("{path}?signed_in=1").as_str(), "redirects to the same URL");
    let (cookie, attrs) = set_cookie(&res, "svcdash_session").expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(attrs.contains(attr), "{attr} missing in {attrs}");
    }
    assert!(!attrs.contains("Secure"), "served over http: {attrs}");
    cookie
}

/// The sessions in the state database: (id, the local token that made it).
pub async fn session_rows(app: &TestApp) -> Vec<(i64, Option<i64>)> {
    use sqlx::Connection;
    let url = format!("sqlite://{}?mode=ro", app.data.join("svcdash.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query_as("SELECT id, token_id FROM sessions ORDER BY id").fetch_all(&mut db).await.unwrap()
}

/// Asserts the reference's instance overview of an org-a Redis instance.
pub fn assert_overview(app: &TestApp, id: &str, body: &Value) {
    assert_eq!(dashboard_link(body), format!("{}/service-instances/{id}", app.base), "{body}");
    assert!(body["id"].is_i64(), "{body}");
    assert_eq!(body["access"], "manage");
    assert_eq!(body["state"], "provisioned");
    assert_eq!(body["tenant_id"], "org-a");
    assert_eq!(
        (body["service_id"].as_str(), body["service_guid"].as_str()),
        (Some(REDIS_SERVICE), Some(REDIS_SERVICE))
    );
    assert_eq!(body["plan_id"], REDIS_PLAN);
    assert_eq!(body["available_updates"], Value::Array(vec![]));
    for field in ["name", "subtenant_id", "subtenant_name", "tenant_name", "created_at", "updated_at"] {
        assert!(body[field].is_string(), "{field}: {body}");
    }
}

#[tokio::test]
async fn curl_signs_in_with_a_bearer_token_and_goes_on_with_the_cookie() {
    let app = TestApp::start().await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let http = client();

    let dashboard = format!("/service-instances/{id}");
    let cookie = curl_sign_in(&app, &app.token, &dashboard).await;
    // curl --location comes back with the cookie (and the header again).
    let res = http.get(format!("{}{dashboard}?signed_in=1", app.base)).header(COOKIE, &cookie).send().await;
    let (status, body) = json(res.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_overview(&app, &id, &body);

    // Later requests need only the cookie: on the dashboard URL, the deprecated API
    // below it, and API V1.
    let (status, body) =
        json(http.get(format!("{}{dashboard}", app.base)).header(COOKIE, &cookie).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_overview(&app, &id, &body);
    let res = http.get(format!("{}{dashboard}/backups", app.base)).header(COOKIE, &cookie).send().await;
    let (status, body) = json(res.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["instance_id"].as_str(), body["backups"].as_array().map(Vec::len)), (Some(id.as_str()), Some(0)));
    let res = http.get(format!("{}/v1/instances/{id}", app.base)).header(COOKIE, &cookie).send().await;
    let (status, body) = json(res.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_overview(&app, &id, &body);
    let res = http.get(format!("{}/v1/instances/{id}/backups", app.base)).header(COOKIE, &cookie).send().await;
    let (status, body) = json(res.unwrap()).await;
    assert_eq!((status, body), (StatusCode::OK, Value::Array(vec![])));

    // The reference's create-backup call sends the cookie and the bearer header.
    let res = http
        .post(format!("{}/service-instances/{id}/backups", app.base))
        .header(COOKIE, &cookie)
        .header(AUTHORIZATION, &app.token)
        .header("Content-Type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);

    // The cookie alone changes nothing without the session's CSRF token...
    let post = |csrf: Option<&str>| {
        let mut req = http.post(format!("{}/v1/instances/{id}/backups", app.base)).header(COOKIE, &cookie);
        if let Some(csrf) = csrf {
            req = req.header("X-CSRF-Token", csrf);
        }
        req.send()
    };
    let (status, body) = json(post(None).await.unwrap()).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("CsrfTokenMissing")), "{body}");
    let (status, body) = json(post(Some("sd_guessed")).await.unwrap()).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("CsrfTokenInvalid")), "{body}");
    // ...which the pages carry for their script.
    let res = http.get(format!("{}/service-instances/{id}/backups", app.base)).header(COOKIE, &cookie);
    let html = res.header(ACCEPT, HTML).send().await.unwrap().text().await.unwrap();
    let (status, body) = json(post(Some(&page_csrf(&html))).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], 2);

    // Another tenant's user gets no session; a bad token neither.
    let mallory = user_token(app.state(), "mallory", "org-b").await;
    for (token, expected) in [(mallory.as_str(), StatusCode::FORBIDDEN), ("bearer sd_nope", StatusCode::UNAUTHORIZED)] {
        let res = http.get(format!("{}/service-instances/{id}", app.base)).header(AUTHORIZATION, token).send();
        let res = res.await.unwrap();
        assert!(set_cookie(&res, "svcdash_session").is_none());
        assert_eq!(json(res).await.0, expected);
    }
    // A client that follows the redirect but keeps no cookies is served with its
    // token rather than sent round again.
    let res = crate::helpers::http()
        .build()
        .unwrap()
        .get(format!("{}{dashboard}", app.base))
        .header(AUTHORIZATION, &app.token);
    let (status, body) = json(res.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_overview(&app, &id, &body);

    // An unknown cookie is no session.
    let res = http.get(format!("{}/v1/instances/{id}", app.base)).header(COOKIE, "svcdash_session=sd_forged");
    assert_eq!(res.send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_reference_curl_examples_work_with_a_cookie_jar() {
    let app = TestApp::start().await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    // curl --cookie c --cookie-jar c --location -H "Authorization: $token" "$dashboard_url"
    let curl = crate::helpers::http().cookie_store(true).build().unwrap();
    let url = format!("{}/service-instances/{id}", app.base);
    let res = curl.get(&url).header(AUTHORIZATION, &app.token).send().await.unwrap();
    assert_eq!(res.url().as_str(), format!("{url}?signed_in=1"), "redirected back");
    let (status, body) = json(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_overview(&app, &id, &body);
    assert_eq!(session_rows(&app).await.len(), 1);

    // Every later example sends the jar and the header: the deprecated API...
    let res = curl.post(format!("{url}/backups")).header(AUTHORIZATION, &app.token);
    let res = res.header("Content-Type", "application/json").send().await.unwrap();
    let (status, body) = json(res).await;
    assert_eq!((status, body["message"].as_str()), (StatusCode::CREATED, Some("job to backup is queued")), "{body}");
    let (status, body) =
        json(curl.get(format!("{url}/backups")).header(AUTHORIZATION, &app.token).send().await.unwrap()).await;
    assert_eq!((status, body["backups"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)), "{body}");
    // ...and API V1, at /v1/instances/:id.
    let v1 = format!("{}/v1/instances/{id}", app.base);
    let (status, body) = json(curl.get(&v1).header(AUTHORIZATION, &app.token).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_overview(&app, &id, &body);
    let (status, body) =
        json(curl.get(format!("{v1}/backups")).header(AUTHORIZATION, &app.token).send().await.unwrap()).await;
    assert_eq!((status, body.as_array().map(Vec::len)), (StatusCode::OK, Some(1)), "{body}");

    // The jar alone keeps working, on the deprecated API and on API V1.
    let (status, body) = json(curl.get(format!("{url}/backups")).send().await.unwrap()).await;
    assert_eq!((status, body["instance_id"].as_str()), (StatusCode::OK, Some(id.as_str())), "{body}");
    let (status, body) = json(curl.get(&v1).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_overview(&app, &id, &body);
    assert_eq!(session_rows(&app).await.len(), 1, "one sign-in, one session");
}

#[tokio::test]
async fn bearer_requests_to_the_api_are_answered_at_once_without_a_session() {
    let app = TestApp::start().await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let http = client();
    for _ in 0..20 {
        let res = http.get(format!("{}/v1/instances/{id}", app.base)).header(AUTHORIZATION, &app.token).send();
        let res = res.await.unwrap();
        assert!(set_cookie(&res, "svcdash_session").is_none());
        let (status, body) = json(res).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_overview(&app, &id, &body);
    }
    for path in ["/v1/instances".to_owned(), format!("/v1/instances/{id}/backups")] {
        let res = http.get(format!("{}{path}", app.base)).header(AUTHORIZATION, &app.token).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert!(set_cookie(&res, "svcdash_session").is_none(), "{path}");
    }
    assert_eq!(session_rows(&app).await, []);
    let entries = app.state().store.audit_entries(None, 1000).await.unwrap();
    assert!(entries.iter().all(|e| e.action != "session.create"), "{entries:?}");
    // A refused token gets the documented error body, not a redirect.
    let res = http.get(format!("{}/v1/instances/{id}", app.base)).header(AUTHORIZATION, "bearer sd_nope").send();
    let (status, body) = json(res.await.unwrap()).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("Unauthorized")), "{body}");
}

#[tokio::test]
async fn clients_without_a_cookie_jar_do_not_pile_up_sessions() {
    let app = TestApp::start().await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let dashboard = format!("/service-instances/{id}");
    let mut cookies = Vec::new();
    for _ in 0..12 {
        // What a client that follows redirects without keeping cookies does...
        let res = crate::helpers::http()
            .build()
            .unwrap()
            .get(format!("{}{dashboard}", app.base))
            .header(AUTHORIZATION, &app.token);
        let (status, body) = json(res.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_overview(&app, &id, &body);
        // ...and the sessions its sign-ins would have handed it.
        cookies.push(curl_sign_in(&app, &app.token, &dashboard).await);
    }
    let rows = session_rows(&app).await;
    assert_eq!(rows.len(), 5, "{rows:?}");
    let token_id = rows[0].1.expect("made from the token");
    assert!(rows.iter().all(|(_, t)| *t == Some(token_id)), "{rows:?}");
    // The newest sessions work; the oldest were ended to make room.
    let status = |cookie: &String| {
        let req = client().get(format!("{}/v1/instances/{id}", app.base)).header(COOKIE, cookie).send();
        async move { req.await.unwrap().status() }
    };
    assert_eq!(status(cookies.last().unwrap()).await, StatusCode::OK);
    assert_eq!(status(&cookies[0]).await, StatusCode::UNAUTHORIZED);
    // Another user's sessions are not counted against this token.
    let bob = user_token(app.state(), "bob", "org-a").await;
    let bobs = curl_sign_in(&app, &bob, &dashboard).await;
    assert_eq!(session_rows(&app).await.len(), 6);
    assert_eq!(status(&bobs).await, StatusCode::OK);
    assert_eq!(status(cookies.last().unwrap()).await, StatusCode::OK);
}

#[tokio::test]
async fn the_login_page_signs_local_users_in_and_out() {
    let app = TestApp::start().await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let user = app.state().store.user_by_name("alice").await.unwrap();
    let hash = server::auth::hash_password("correct horse battery").unwrap();
    app.state().store.set_password_hash(user.id, &hash).await.unwrap();
    let http = client();

    // A browser without a session is sent to the login page and told where it was.
    let res = http.get(format!("{}/service-instances/{id}", app.base)).header(ACCEPT, HTML).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let login_url = res.headers()[LOCATION].to_str().unwrap().to_owned();
    assert_eq!(login_url, format!("/auth/login?return_to=%2Fservice-instances%2F{id}"));

    let res = http.get(format!("{}{login_url}", app.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (login_cookie, _) = set_cookie(&res, "svcdash_login").unwrap();
    let html = res.text().await.unwrap();
    let csrf = login_cookie.strip_prefix("svcdash_login=").unwrap().to_owned();
    assert!(html.contains(&format!(r#"name="_csrf" value="{csrf}""#)), "{html}");
    assert!(html.contains(&format!(r#"name="return_to" value="/service-instances/{id}""#)), "{html}");

    let return_to = format!("/service-instances/{id}");
    let attempt = |password: &'static str, cookie: Option<String>| {
        let mut req = http
            .post(format!("{}/auth/login", app.base))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form(&[("username", "alice"), ("password", password), ("_csrf", &csrf), ("return_to", &return_to)]));
        if let Some(cookie) = cookie {
            req = req.header(COOKIE, cookie);
        }
        req.send()
    };
    let res = attempt("wrong password", Some(login_cookie.clone())).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.text().await.unwrap().contains("Wrong user name or password."));
    // A form posted from elsewhere lacks the login cookie.
    let res = attempt("correct horse battery", None).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&res, "svcdash_session").is_none());

    let res = attempt("correct horse battery", Some(login_cookie)).await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], return_to.as_str());
    let (cookie, _) = set_cookie(&res, "svcdash_session").expect("signed in");

    let page = |path: String| {
        let req = http.get(format!("{}{path}", app.base)).header(COOKIE, &cookie).header(ACCEPT, HTML);
        async move {
            let res = req.send().await.unwrap();
            (res.status(), res.text().await.unwrap())
        }
    };
    let (status, html) = page("/".into()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&format!(r#"href="/service-instances/{id}""#)), "{html}");
    let (status, html) = page(format!("/service-instances/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    for text in ["Overview", "org-a", "redis", "single-small", "provisioned", "manage"] {
        assert!(html.contains(text), "{text} missing in the overview: {html}");
    }
    let (status, html) = page(format!("/service-instances/{id}/backups")).await;
    assert_eq!(status, StatusCode::OK);
    for text in
        ["Available Backups", "Manually Trigger A Backup", "Restore History", "Automatic Reload", "No backups yet."]
    {
        assert!(html.contains(text), "{text} missing in the backups page: {html}");
    }
    // The deprecated API still answers JSON on the same path.
    let res = http.get(format!("{}/service-instances/{id}/backups", app.base)).header(COOKIE, &cookie).send().await;
    let (status, body) = json(res.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["instance_id"], id.as_str());
    assert!(body["backups"].is_array(), "{body}");

    // Sign out: the cookie is worth nothing afterwards.
    let (_, html) = page("/".into()).await;
    let logout = |csrf: String| {
        http.post(format!("{}/auth/logout", app.base))
            .header(COOKIE, &cookie)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form(&[("_csrf", &csrf)]))
            .send()
    };
    assert_eq!(logout("sd_wrong".into()).await.unwrap().status(), StatusCode::FORBIDDEN);
    let res = logout(page_csrf(&html)).await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/auth/login");
    let res = http.get(format!("{}/v1/instances/{id}", app.base)).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let actions: Vec<(String, String)> = audit_log(&app)
        .await
        .into_iter()
        .filter(|e| e.actor == "alice")
        .map(|e| (e.action, e.outcome.to_string()))
        .collect();
    let expected = [("logout", "success"), ("login", "success"), ("login", "failure")];
    assert_eq!(actions, expected.map(|(a, o)| (a.to_owned(), o.to_owned())));
}

#[tokio::test]
async fn failed_logins_delay_the_user_name_and_refuse_the_address() {
    let dir = data_dir();
    let mut config = config(dir.path());
    config.auth.max_failed_logins = 3;
    config.http.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let app = TestApp::start_in(dir.path(), config).await;
    let user = app.state().store.user_by_name("alice").await.unwrap();
    let hash = server::auth::hash_password("correct horse battery").unwrap();
    app.state().store.set_password_hash(user.id, &hash).await.unwrap();
    let http = client();

    let attempt = |from: &str, username: &str, password: &str| {
        http.post(format!("{}/auth/login", app.base))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("X-Forwarded-For", from)
            .header(COOKIE, "svcdash_login=sd_form")
            .body(form(&[("username", username), ("password", password), ("_csrf", "sd_form")]))
            .send()
    };
    let retry_after =
        |res: &reqwest::Response| -> u64 { res.headers()["retry-after"].to_str().unwrap().parse().unwrap() };

    // Guesses at alice's password from three addresses.
    for n in 1..=3 {
        assert_eq!(
            attempt(&format!("192.0.2.{n}"), "alice", "guess").await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Her name is not locked, but delayed, from any address: even the right
    // password waits a second after the last failure, and is told so.
    let res = attempt("192.0.2.9", "alice", "correct horse battery").await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&res), 1);
    assert!(set_cookie(&res, "svcdash_session").is_none());
    assert!(res.text().await.unwrap().contains("Too many failed sign-ins for this user. Try again in a second."));
    // Each further failure doubles the delay.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(attempt("192.0.2.4", "alice", "guess").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let res = attempt("192.0.2.9", "alice", "correct horse battery").await.unwrap();
    assert_eq!((res.status(), retry_after(&res)), (StatusCode::TOO_MANY_REQUESTS, 2));
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let res = attempt("192.0.2.9", "alice", "correct horse battery").await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(set_cookie(&res, "svcdash_session").is_some());

    // One address guessing at several names is refused for the whole window.
    for name in ["bob", "carol", "dave"] {
        assert_eq!(attempt("198.51.100.1", name, "guess").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    let res = attempt("198.51.100.1", "alice", "correct horse battery").await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!((290..=300).contains(&retry_after(&res)), "{}", retry_after(&res));
    assert!(res.text().await.unwrap().contains("Too many failed sign-ins. Try again in"));
    // Other addresses are not.
    assert_eq!(attempt("198.51.100.2", "erin", "guess").await.unwrap().status(), StatusCode::UNAUTHORIZED);

    // The audit log names the client's address, not the proxy's.
    let denied: Vec<(String, Option<String>)> = audit_log(&app)
        .await
        .into_iter()
        .filter(|e| e.action == "login" && e.outcome == store::AuditOutcome::Denied)
        .map(|e| (e.actor, e.remote_addr))
        .collect();
    assert_eq!(
        denied,
        [("alice", "198.51.100.1"), ("alice", "192.0.2.9"), ("alice", "192.0.2.9")]
            .map(|(a, r)| (a.to_owned(), Some(r.to_owned())))
    );
}

#[tokio::test]
async fn sessions_end_after_the_idle_time() {
    let dir = data_dir();
    let mut config = config(dir.path());
    config.auth.session_idle_secs = 1;
    let app = TestApp::start_in(dir.path(), config).await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let path = format!("/v1/instances/{id}");
    let cookie = curl_sign_in(&app, &app.token, &format!("/service-instances/{id}")).await;
    let get = || client().get(format!("{}{path}", app.base)).header(COOKIE, &cookie).send();
    assert_eq!(get().await.unwrap().status(), StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let (status, body) = json(get().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // A browser goes back to the login page.
    let res = client().get(format!("{}{path}", app.base)).header(COOKIE, &cookie).header(ACCEPT, HTML).send();
    assert_eq!(res.await.unwrap().status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn readers_see_but_change_nothing_and_the_audit_log_says_who_did_what() {
    let app = TestApp::start().await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let store = &app.state().store;
    let reader = store.create_user("rita").await.unwrap();
    store.grant(reader.id, "org-a", None, store::Role::Read).await.unwrap();
    let token = server::auth::new_token();
    store.create_token(reader.id, &server::auth::hash_token(&token), None).await.unwrap();
    let rita = format!("bearer {token}");

    let backup = app.create_backup(&id).await;
    app.wait_finished(&format!("/v1/instances/{id}/backups/{backup}")).await;

    let (status, body) = app.api_as(&rita, Method::GET, &format!("/v1/instances/{id}"), None).await;
    assert_eq!((status, body["access"].as_str()), (StatusCode::OK, Some("read")), "{body}");
    let (status, body) = app.api_as(&rita, Method::GET, &format!("/v1/instances/{id}/backups"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_array().unwrap().len(), 1);
    let (status, list) = app.api_as(&rita, Method::GET, "/v1/instances", None).await;
    assert_eq!(status, StatusCode::OK);
    let listed: Vec<String> = list.as_array().unwrap().iter().map(dashboard_link).collect();
    assert_eq!(listed, [format!("{}/service-instances/{id}", app.base)]);
    for (method, path) in [
        (Method::POST, format!("/v1/instances/{id}/backups")),
        (Method::POST, format!("/v1/instances/{id}/backups/{backup}/restore")),
        (Method::POST, format!("/service-instances/{id}/backups")),
        (Method::GET, format!("/v1/instances/{id}/audit")),
    ] {
        let (status, body) = app.api_as(&rita, method.clone(), &path, Some("{}")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
        assert!(body["description"].as_str().unwrap().contains("may only read"), "{body}");
    }

    let (status, log) = app.api(Method::GET, &format!("/v1/instances/{id}/audit?limit=50")).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let log = log.as_array().unwrap();
    let summary: Vec<(&str, &str, &str)> = log
        .iter()
        .map(|e| (e["actor"].as_str().unwrap(), e["action"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [
            ("rita", "access", "denied"),
            ("rita", "access", "denied"),
            ("rita", "access", "denied"),
            ("rita", "access", "denied"),
            // Looking with a bearer token signs nobody in: no session.create.
            ("alice", "backup.create", "success"),
            ("broker:platform", "instance.provision", "success"),
        ]
    );
    assert_eq!(log[4]["detail"], "backup 1 queued");
    assert_eq!(log[4]["remote_addr"], "127.0.0.1");
    assert!(log.windows(2).all(|w| w[0]["id"].as_i64() > w[1]["id"].as_i64()), "newest first");
    let (status, body) = app.api(Method::GET, &format!("/v1/instances/{id}/audit?limit=0")).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("BadRequest")));

    // The same log on the command line, beside the running server.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_svcdash"))
        .args(["audit", "--instance", &id])
        .env("SVCDASH_DATA", &app.data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7, "{text}");
    assert!(
        lines[5].contains("\talice\tbackup.create\t") && lines[5].contains("\tsuccess\t127.0.0.1\tbackup 1 queued")
    );
}
