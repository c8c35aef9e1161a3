//! The dashboard APIs' authentication, authorization and error shapes.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;

use crate::helpers::*;

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, error: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert!(!body["description"].as_str().unwrap_or_default().is_empty(), "{body}");
}

#[tokio::test]
async fn dashboard_api_checks_who_is_asking() {
    let app = TestApp::start().await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let path = format!("/v1/instances/{id}/backups");

    let res = app.client.get(format!("{}{path}", app.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body: Value = res.json().await.unwrap();
    assert_error(StatusCode::UNAUTHORIZED, &body, StatusCode::UNAUTHORIZED, "Unauthorized");

    let (status, body) = app.api_as("bearer sd_not-a-real-token", Method::GET, &path, None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "Unauthorized");
    let (status, body) = app.api_as("Basic YTpi", Method::GET, &path, None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "Unauthorized");

    // The scheme is case-insensitive, as `cf oauth-token` prints "bearer".
    let token = app.token.strip_prefix("bearer ").unwrap();
    for scheme in ["Bearer", "BEARER", "bearer"] {
        let (status, body) = app.api_as(&format!("{scheme} {token}"), Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{scheme}: {body}");
        assert_eq!(body, Value::Array(vec![]));
    }

    // A user of another tenant sees nothing and changes nothing.
    let other = user_token(app.state(), "mallory", "org-b").await;
    for (method, path) in [
        (Method::GET, path.clone()),
        (Method::POST, path.clone()),
        (Method::GET, format!("/v1/instances/{id}/restores")),
        (Method::GET, format!("/service-instances/{id}/backups")),
        (Method::POST, format!("/service-instances/{id}/backups")),
    ] {
        let (status, body) = app.api_as(&other, method.clone(), &path, None).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "Forbidden");
    }
    let (_, backups) = app.api(Method::GET, &path).await;
    assert_eq!(backups, Value::Array(vec![]), "the forbidden POST queued a backup");

    // A grant on the subtenant alone is enough.
    let user = app.state().store.create_user("sam").await.unwrap();
    app.state().store.grant(user.id, "org-a", Some("space-1"), store::Role::Manage).await.unwrap();
    let token = server::auth::new_token();
    app.state().store.create_token(user.id, &server::auth::hash_token(&token), None).await.unwrap();
    let (status, _) = app.api_as(&format!("bearer {token}"), Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    app.state().store.grant(user.id, "org-a", Some("space-2"), store::Role::Manage).await.unwrap();
}

/// A polled listing is served again while nothing in it changed (see
/// `server::listing_cache`), and shows every change at the next poll: svcdash's
/// own, and a write to the state store by another process (another replica)
/// alike. Whoever asks is checked every time.
#[tokio::test]
async fn a_polled_backup_listing_shows_every_change_at_the_next_poll() {
    let app = TestApp::start().await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let path = format!("/v1/instances/{id}/backups");
    let list = || async {
        let (status, body) = app.api(Method::GET, &path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    };
    let shown = |listing: &Value, field: &str| {
        listing.as_array().unwrap().iter().map(|b| b[field].clone()).collect::<Vec<Value>>()
    };
    assert_eq!(list().await, json!([]));

    let first = app.create_backup(&id).await;
    let queued = list().await;
    assert_eq!(shown(&queued, "id"), vec![json!(first)], "a queued backup is listed at once");
    app.wait_done(&format!("{path}/{first}")).await;
    let done = list().await;
    assert_eq!(shown(&done, "status"), vec![json!("done")]);
    assert_eq!(shown(&done, "downloadable"), vec![json!(false)], "no personal key yet");
    assert_eq!(list().await, done, "polled again, unchanged");

    let config = json!({"encryption_key": "correct horse battery staple"}).to_string();
    let (status, body) =
        app.api_as(&app.token, Method::PATCH, &format!("/v1/instances/{id}/backups-config"), Some(&config)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = app.create_backup(&id).await;
    app.wait_done(&format!("{path}/{second}")).await;
    let both = list().await;
    assert_eq!(shown(&both, "id"), vec![json!(second), json!(first)]);
    assert_eq!(shown(&both, "downloadable"), vec![json!(true), json!(false)], "only the new one has the key");

    let url = format!("sqlite://{}", app.state().config.database_path().display());
    let mut other_process = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query(
        "UPDATE backups SET size = 4242 WHERE seq = ? AND instance_id = (SELECT id FROM instances WHERE guid = ?)",
    )
    .bind(first)
    .bind(&id)
    .execute(&mut other_process)
    .await
    .unwrap();
    other_process.close().await.unwrap();
    let changed = list().await;
    assert_eq!(changed[1]["size"], 4242, "{changed}");
    assert_eq!(changed[0], both[0]);

    let other = user_token(app.state(), "mallory", "org-b").await;
    let (status, body) = app.api_as(&other, Method::GET, &path, None).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "Forbidden");
}

#[tokio::test]
async fn unknown_and_malformed_ids_get_clear_errors() {
    let app = TestApp::start().await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;

    let (status, body) = app.api(Method::GET, "/v1/instances/no-such-instance/backups").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NotFound");
    let (status, body) = app.api(Method::GET, &format!("/v1/instances/{id}/backups/7")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NotFound");
    let (status, body) = app.api(Method::GET, &format!("/v1/instances/{id}/restores/3")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NotFound");
    let (status, body) = app.api(Method::POST, &format!("/v1/instances/{id}/backups/9/restore")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NotFound");

    for bad in ["abc", "0", "-1", "1.5", "99999999999999999999"] {
        let (status, body) = app.api(Method::GET, &format!("/v1/instances/{id}/backups/{bad}")).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "BadRequest");
        assert!(body["description"].as_str().unwrap().contains(bad), "{body}");
    }
    let (status, body) = app.api(Method::GET, "/v1/nothing-here").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NotFound");
    let (status, body) = app.api(Method::DELETE, &format!("/v1/instances/{id}/restores")).await;
    assert_error(status, &body, StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");

    // Only a done backup can be restored.
    let backup = app.create_backup(&id).await;
    let (status, body) = app.api(Method::POST, &format!("/v1/instances/{id}/backups/{backup}/restore")).await;
    if status != StatusCode::OK {
        assert_error(status, &body, StatusCode::CONFLICT, "BackupNotRestorable");
    }
}

#[tokio::test]
async fn deprecated_api_keeps_its_shapes_and_412s() {
    let app = TestApp::start().await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let instance = app.state().store.instance_by_guid(&id).await.unwrap();

    let (status, created) = app.api(Method::POST, &format!("/service-instances/{id}/backups")).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let backup_id = created["id"].as_i64().unwrap();
    app.wait_finished(&format!("/v1/instances/{id}/backups/1")).await;

    // The reference's own curl example: form fields under a JSON content type.
    let (status, body) = app
        .api_as(
            &app.token,
            Method::POST,
            &format!("/service-instances/{id}/backups/restore"),
            Some(&format!("instance_id={}&backup_id={backup_id}", instance.id)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let restore_id = body["restore_id"].as_i64().unwrap();
    app.wait_finished(&format!("/v1/instances/{id}/restores/1")).await;

    for body in [
        format!("{{\"instance_id\": {}, \"backup_id\": 999}}", instance.id),
        format!("{{\"instance_id\": 999, \"backup_id\": {backup_id}}}"),
    ] {
        let (status, res) = app
            .api_as(&app.token, Method::POST, &format!("/service-instances/{id}/backups/restore"), Some(&body))
            .await;
        assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{res}");
        assert!(res["msg"].as_str().is_some(), "{res}");
    }
    let (status, res) = app.api(Method::POST, &format!("/service-instances/{id}/backups/999/download")).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{res}");
    assert!(res["msg"].as_str().unwrap().contains("999"));

    let (status, list) = app.api(Method::GET, &format!("/service-instances/{id}/backups")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["id"], instance.id);
    assert_eq!(list["instance_id"], id);
    let backup = &list["backups"][0];
    assert_eq!(backup["id"], backup_id);
    assert_eq!(backup["instance_id"], instance.id);
    let task = &backup["backup_agent_task"];
    let keys: Vec<&str> = task.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["created_at", "id", "status", "task_id", "updated_at"]);
    assert_eq!(task["task_id"], backup_id);
    assert_eq!(task["status"], "done");
    let restore = &list["restores"][0];
    assert_eq!(restore["id"], restore_id);
    assert_eq!(restore["backup_agent_tasks"].as_array().unwrap().len(), 1);
    assert_eq!(restore["backup_agent_tasks"][0]["task_id"], restore_id);
}

#[tokio::test]
async fn openapi_document_describes_every_route() {
    let app = TestApp::start().await;
    let res = app.client.get(format!("{}/v1/openapi.json", app.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let doc: Value = res.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/v1/instances", "get"),
        ("/v1/instances/{instance_id}", "get"),
        ("/v1/instances/{instance_id}/audit", "get"),
        ("/v1/instances/{instance_id}/backups-config", "get"),
        ("/v1/instances/{instance_id}/backups-config", "patch"),
        ("/v1/instances/{instance_id}/disaster-recovery/prepare", "post"),
        ("/v1/instances/{instance_id}/disaster-recovery/perform", "post"),
        ("/v1/instances/{instance_id}/restart", "patch"),
        ("/v1/instances/{instance_id}/recreate", "patch"),
        ("/v1/instances/{instance_id}/updates", "patch"),
        ("/v1/instances/{instance_id}/metrics", "get"),
        ("/metrics", "get"),
        ("/service-instances/{instance_id}", "get"),
        ("/v1/instances/{instance_id}/backups", "get"),
        ("/v1/instances/{instance_id}/backups", "post"),
        ("/v1/instances/{instance_id}/backups/{id}", "get"),
        ("/v1/instances/{instance_id}/backups/{id}", "delete"),
        ("/v1/instances/{instance_id}/backups/{id}/download", "get"),
        ("/v1/instances/{instance_id}/backups/{id}/restore", "post"),
        ("/v1/instances/{instance_id}/restores", "get"),
        ("/v1/instances/{instance_id}/restores/{id}", "get"),
        ("/service-instances/{instance_id}/backups", "get"),
        ("/service-instances/{instance_id}/backups", "post"),
        ("/service-instances/{instance_id}/backups/restore", "post"),
        ("/service-instances/{instance_id}/backups/{backup_id}/download", "post"),
        ("/v2/catalog", "get"),
        ("/v2/service_instances/{instance_id}", "put"),
        ("/v2/service_instances/{instance_id}", "delete"),
        ("/v2/service_instances/{instance_id}/last_operation", "get"),
        ("/v2/service_instances/{instance_id}/service_bindings/{binding_id}", "put"),
        ("/v2/service_instances/{instance_id}/service_bindings/{binding_id}", "delete"),
    ] {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} is not documented");
    }
}
