//! Cloud Foundry mode: UAA signs people in (here the same real OpenID provider
//! stands in for it) and the Cloud Controller decides, per instance, who may read
//! and who may manage. The Cloud Controller cannot run on this machine, so a
//! stand-in answers its documented permissions endpoint
//! (`GET /v2/service_instances/:guid/permissions`) from the caller's token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::IntoResponse;
use base64::Engine;
use reqwest::header::ACCEPT;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use server::auth::{AuthorizerKind, ProviderKind};

use crate::helpers::*;
use crate::idp::{self, Idp};

/// What the stand-in says per user (`sub`), and the requests it saw.
#[derive(Clone, Default)]
struct CloudController {
    answers: Arc<HashMap<&'static str, (u16, Value)>>,
    asked: Arc<Mutex<Vec<(String, String)>>>,
    /// Where opaque tokens are checked, as the real one checks them with UAA.
    issuer: Arc<Mutex<String>>,
}

/// The user a token belongs to: a JWT's `sub` (svcdash has verified its
/// signature), or what the provider's userinfo says of an opaque token.
async fn token_owner(cc: &CloudController, token: &str) -> Option<String> {
    let jwt_sub = token
        .split('.')
        .nth(1)
        .and_then(|p| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|p| serde_json::from_slice::<Value>(&p).ok())
        .and_then(|claims| claims["sub"].as_str().map(str::to_owned));
    if jwt_sub.is_some() {
        return jwt_sub;
    }
    let issuer = cc.issuer.lock().unwrap().clone();
    let res =
        crate::helpers::http().build().unwrap().get(format!("{issuer}/me")).bearer_auth(token).send().await.ok()?;
    let info: Value = res.json().await.ok()?;
    info["sub"].as_str().map(str::to_owned)
}

async fn permissions(
    State(cc): State<CloudController>,
    Path(guid): Path<String>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bearer ").or_else(|| v.strip_prefix("Bearer ")))
        .unwrap_or_default()
        .to_owned();
    let sub = token_owner(&cc, &token).await;
    let Some(sub) = sub else { return (AxumStatus::UNAUTHORIZED, axum::Json(json!({"code": 1000}))) };
    cc.asked.lock().unwrap().push((sub.clone(), guid));
    match cc.answers.get(sub.as_str()) {
        Some((status, body)) => (AxumStatus::from_u16(*status).unwrap(), axum::Json(body.clone())),
        None => (AxumStatus::FORBIDDEN, axum::Json(json!({}))),
    }
}

async fn start_cloud_controller(cc: CloudController) -> String {
    let app = axum::Router::new()
        .route("/v2/service_instances/{guid}/permissions", axum::routing::get(permissions))
        .with_state(cc);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test]
async fn the_cloud_controller_decides_who_may_read_and_who_may_manage() {
    let cc = CloudController {
        answers: Arc::new(HashMap::from([
            ("alice", (200, json!({"manage": true, "read": true}))),
            ("bob", (200, json!({"manage": false, "read": true}))),
            ("carol", (200, json!({"manage": false, "read": false}))),
            ("dave", (401, json!({"code": 1000, "description": "Invalid Auth Token"}))),
        ])),
        asked: Arc::default(),
        issuer: Arc::default(),
    };
    let cc_url = start_cloud_controller(cc.clone()).await;

    let dir = data_dir();
    let port = engines::free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let uaa = Idp::start(&format!("{base}/auth/callback"), &[("OIDC_CLAIMS_IN_ID_TOKEN", "1")]);
    *cc.issuer.lock().unwrap() = uaa.issuer.clone();
    let mut config = config(dir.path());
    config.listen = ([127, 0, 0, 1], port).into();
    config.public_url = Some(base.clone());
    config.auth.provider = ProviderKind::Uaa;
    config.auth.authorizer = AuthorizerKind::CloudFoundry;
    config.auth.cloud_foundry.api_url = Some(cc_url);
    config.auth.oidc.issuer = Some(uaa.issuer.clone());
    config.auth.oidc.client_id = idp::CLIENT_ID.into();
    config.auth.oidc.client_secret = Some(idp::CLIENT_SECRET.to_owned().into());
    config.auth.oidc.audiences = vec![idp::CLI_CLIENT_ID.into()];
    config.auth.permission_cache_secs = 1;
    let app = TestApp::start_in(dir.path(), config).await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;

    // The catalog keeps the dashboard's UAA client (and its secret) to itself unless told otherwise.
    let (status, catalog) = app.broker(Method::GET, "/v2/catalog", None).await;
    assert_eq!(status, StatusCode::OK);
    let services = catalog["services"].as_array().unwrap();
    assert!(!services.is_empty());
    for service in services {
        assert!(service.get("dashboard_client").is_none(), "{service}");
    }
    assert!(!catalog.to_string().contains(idp::CLIENT_SECRET), "{catalog}");

    let token = |user: &'static str| {
        let uaa = &uaa;
        async move { format!("bearer {}", uaa.tokens_for(user).await["id_token"].as_str().unwrap()) }
    };
    let backups = format!("/v1/instances/{id}/backups");
    let (alice, bob, carol, dave) =
        (token("alice").await, token("bob").await, token("carol").await, token("dave").await);

    // manage: true — may change things.
    let (status, body) = app.api_as(&alice, Method::POST, &backups, Some("{}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // read only — may look, not change.
    let (status, _) = app.api_as(&bob, Method::GET, &backups, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.api_as(&bob, Method::POST, &backups, Some("{}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // neither — nothing.
    let (status, _) = app.api_as(&carol, Method::GET, &backups, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The Cloud Controller no longer accepts the token: 401, sign in again.
    let (status, body) = app.api_as(&dave, Method::GET, &backups, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // Answers are reused for the cache interval, then asked again.
    let asked = || cc.asked.lock().unwrap().iter().filter(|(sub, _)| sub == "alice").count();
    let before = asked();
    app.api_as(&alice, Method::GET, &backups, None).await;
    assert_eq!(asked(), before, "cached");
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    app.api_as(&alice, Method::GET, &backups, None).await;
    assert_eq!(asked(), before + 1, "asked again after the cache interval");
    assert!(cc.asked.lock().unwrap().iter().all(|(_, guid)| guid == &id));

    // A browser signs in through "UAA", and its session's token goes to the Cloud Controller.
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(ACCEPT, "text/html".parse().unwrap());
    let browser = crate::helpers::http().cookie_store(true).default_headers(headers).build().unwrap();
    let res = browser.get(format!("{base}/service-instances/{id}/backups")).send().await;
    let form = res.unwrap().url().clone();
    let res = browser
        .post(format!("{form}/login"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("login=bob&password=x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.url().path(), format!("/service-instances/{id}/backups"));
    let html = res.text().await.unwrap();
    assert!(html.contains("Available Backups"), "{html}");
    assert!(!html.contains("Manually Trigger A Backup"), "bob may only read: {html}");
}

#[tokio::test]
async fn the_catalog_carries_the_dashboard_client_when_the_operator_enables_it() {
    let dir = data_dir();
    let port = engines::free_port().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let uaa = Idp::start(&format!("{base}/auth/callback"), &[]);
    let mut config = config(dir.path());
    config.listen = ([127, 0, 0, 1], port).into();
    config.public_url = Some(base.clone());
    config.auth.provider = ProviderKind::Uaa;
    config.auth.oidc.issuer = Some(uaa.issuer.clone());
    config.auth.oidc.client_id = idp::CLIENT_ID.into();
    config.auth.oidc.client_secret = Some(idp::CLIENT_SECRET.to_owned().into());
    config.auth.catalog_dashboard_client = true;
    let app = TestApp::start_in(dir.path(), config).await;

    // For Cloud Foundry to register the client with UAA itself.
    let (status, catalog) = app.broker(Method::GET, "/v2/catalog", None).await;
    assert_eq!(status, StatusCode::OK);
    let services = catalog["services"].as_array().unwrap();
    assert!(!services.is_empty());
    for service in services {
        assert_eq!(
            service["dashboard_client"],
            json!({"id": idp::CLIENT_ID, "secret": idp::CLIENT_SECRET, "redirect_uri": format!("{base}/auth/callback")})
        );
    }
}
