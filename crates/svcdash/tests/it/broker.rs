//! The Open Service Broker API against real engines: the spec's flows, and
//! requests it does not allow (bad ids, missing or mismatched fields) changing
//! nothing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

#[tokio::test]
async fn broker_checks_credentials_and_version() {
    let app = TestApp::start().await;
    let url = format!("{}/v2/catalog", app.base);
    let res = app.client.get(&url).header("X-Broker-API-Version", "2.17").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = app
        .client
        .get(&url)
        .basic_auth(BROKER_USER, Some("wrong"))
        .header("X-Broker-API-Version", "2.17")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = app.client.get(&url).basic_auth(BROKER_USER, Some(BROKER_PASSWORD)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
    let body: Value = res.json().await.unwrap();
    assert!(body["description"].as_str().unwrap().contains("X-Broker-API-Version"));
    let res = app
        .client
        .get(&url)
        .basic_auth(BROKER_USER, Some(BROKER_PASSWORD))
        .header("X-Broker-API-Version", "2.9")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);

    let (status, catalog) = app.broker(Method::GET, "/v2/catalog", None).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> =
        catalog["services"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["postgresql", "redis", "mariadb", "rabbitmq"]);
    for service in catalog["services"].as_array().unwrap() {
        assert_eq!(service["plans"][0]["name"], "single-small");
        assert_eq!(service["bindable"], true);
    }
}

#[tokio::test]
async fn provisioning_binding_and_deprovisioning_follow_the_spec() {
    let app = TestApp::start().await;
    let body = json!({"service_id": REDIS_SERVICE, "plan_id": REDIS_PLAN, "organization_guid": "org-a", "space_guid": "space-1"});

    let (status, res) = app.broker(Method::PUT, "/v2/service_instances/x1", Some(body.clone())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res["error"], "AsyncRequired");
    let (status, res) = app
        .broker(
            Method::PUT,
            "/v2/service_instances/x1?accepts_incomplete=true",
            Some(json!({"service_id": "nope", "plan_id": REDIS_PLAN})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{res}");
    let (status, _) = app.broker(Method::GET, "/v2/service_instances/never/last_operation", None).await;
    assert_eq!(status, StatusCode::GONE);

    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let instance = app.state().store.instance_by_guid(&id).await.unwrap();
    assert_eq!(instance.tenant_id, "org-a");
    assert_eq!(instance.subtenant_id, "space-1");
    assert_eq!(instance.tenant_name.as_deref(), Some("Org"));
    assert_eq!(instance.subtenant_name.as_deref(), Some("dev"));

    // The same request again is fine; a different one conflicts.
    let same = json!({"service_id": REDIS_SERVICE, "plan_id": REDIS_PLAN, "organization_guid": "org-a", "space_guid": "space-1",
                      "context": {"organization_guid": "org-a", "space_guid": "space-1"}});
    let (status, res) =
        app.broker(Method::PUT, &format!("/v2/service_instances/{id}?accepts_incomplete=true"), Some(same)).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    let other = json!({"service_id": PG_SERVICE, "plan_id": PG_PLAN, "organization_guid": "org-a", "space_guid": "space-1",
                       "context": {"organization_guid": "org-a", "space_guid": "space-1"}});
    let (status, _) =
        app.broker(Method::PUT, &format!("/v2/service_instances/{id}?accepts_incomplete=true"), Some(other)).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // A binding is a working user of its own.
    let binding_path = format!("/v2/service_instances/{id}/service_bindings/b1");
    let bind = json!({"service_id": REDIS_SERVICE, "plan_id": REDIS_PLAN});
    let (status, first) = app.broker(Method::PUT, &binding_path, Some(bind.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let creds = &first["credentials"];
    for field in ["host", "port", "username", "password", "uri"] {
        assert!(!creds[field].is_null(), "{field} missing: {creds}");
    }
    let mut conn = redis(creds).await;
    redis::cmd("SET").arg("k").arg("v").query_async::<()>(&mut conn).await.unwrap();
    let admin: redis::RedisResult<()> =
        redis::cmd("CONFIG").arg("SET").arg("save").arg("").query_async(&mut conn).await;
    assert!(admin.is_err(), "a bound user must not run admin commands");
    let (status, again) = app.broker(Method::PUT, &binding_path, Some(bind)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["credentials"], first["credentials"]);

    let offering = format!("service_id={REDIS_SERVICE}&plan_id={REDIS_PLAN}");
    let (status, _) = app.broker(Method::DELETE, &format!("{binding_path}?{offering}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let refused = redis::Client::open(creds["uri"].as_str().unwrap()).unwrap().get_multiplexed_async_connection().await;
    assert!(refused.is_err(), "an unbound user can still log in");
    let (status, _) = app.broker(Method::DELETE, &format!("{binding_path}?{offering}"), None).await;
    assert_eq!(status, StatusCode::GONE);

    // Deprovisioning removes processes and data and keeps backups.
    let backup = app.create_backup(&id).await;
    app.wait_finished(&format!("/v1/instances/{id}/backups/{backup}")).await;
    let local_name = app.state().store.instance_by_guid(&id).await.unwrap().local_name;
    let node_dir = app.data.join("instances").join(&local_name);
    assert!(node_dir.exists());
    let (status, _) = app.broker(Method::DELETE, &format!("/v2/service_instances/{id}?{offering}"), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let deprovision = format!("/v2/service_instances/{id}?accepts_incomplete=true&{offering}");
    let (status, res) = app.broker(Method::DELETE, &deprovision, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{res}");
    let op = res["operation"].as_str().unwrap().to_owned();
    let gone = app
        .wait_for("deprovision", std::time::Duration::from_secs(60), || {
            let (app, id, op) = (&app, &id, &op);
            async move {
                let (status, _) = app
                    .broker(Method::GET, &format!("/v2/service_instances/{id}/last_operation?operation={op}"), None)
                    .await;
                (status == StatusCode::GONE).then_some(status)
            }
        })
        .await;
    assert_eq!(gone, StatusCode::GONE);
    assert!(!node_dir.exists(), "instance files are still there");
    assert_eq!(app.backup_objects().len(), 1, "backups must be kept");
    let (status, _) = app.broker(Method::DELETE, &deprovision, None).await;
    assert_eq!(status, StatusCode::GONE);
    let (status, list) = app.api(Method::GET, &format!("/v1/instances/{id}/backups")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["status"], "done");
}

/// Every folder below `root`.
fn folders(root: &Path) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                found.insert(entry.path());
                pending.push(entry.path());
            }
        }
    }
    found
}

/// A broker request sent byte for byte as given. HTTP clients resolve `.` and `..`
/// segments (percent-encoded ones too) before sending; a caller need not.
async fn raw_broker(app: &TestApp, method: &str, target: &str, body: Option<&Value>) -> (StatusCode, Value) {
    use base64::Engine;
    let addr = app.base.strip_prefix("http://").unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{BROKER_USER}:{BROKER_PASSWORD}"));
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {auth}\r\n\
         X-Broker-API-Version: 2.17\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{response}"));
    let code: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    (StatusCode::from_u16(code).unwrap(), serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())))
}

fn assert_bad_request(status: StatusCode, body: &Value, what: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
    assert!(!body["description"].as_str().unwrap_or_default().is_empty(), "{what}: not an OSB error body: {body}");
}

/// The instance runs and the binding's user works.
async fn assert_untouched(app: &TestApp, id: &str, creds: &Value, binding: &str) {
    let instance = app.state().store.instance_by_guid(id).await.unwrap();
    assert!(
        matches!(instance.state, store::InstanceState::Provisioned | store::InstanceState::Available),
        "{}",
        instance.state
    );
    assert!(app.state().store.binding(instance.id, binding).await.is_ok(), "binding {binding} is gone");
    assert!(engine_pid(app.state(), &app.node(id).await).await.is_some(), "the engine stopped");
    let mut conn = redis(creds).await;
    redis::cmd("SET").arg("still").arg("here").query_async::<()>(&mut conn).await.unwrap();
}

#[tokio::test]
async fn ids_that_are_not_plain_names_are_refused_on_every_route_and_make_no_folder() {
    let app = TestApp::start().await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let bind = json!({"service_id": REDIS_SERVICE, "plan_id": REDIS_PLAN});
    let binding_path = format!("/v2/service_instances/{id}/service_bindings/b1");
    let (status, bound) = app.broker(Method::PUT, &binding_path, Some(bind.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{bound}");
    let creds = &bound["credentials"];
    let offering = format!("service_id={REDIS_SERVICE}&plan_id={REDIS_PLAN}");
    let provision = json!({"service_id": REDIS_SERVICE, "plan_id": REDIS_PLAN,
                           "organization_guid": "org-a", "space_guid": "space-1"});

    // The raw requests reach the broker as well-formed ones do.
    let (status, op) = raw_broker(&app, "GET", &format!("/v2/service_instances/{id}/last_operation"), None).await;
    assert_eq!((status, op["state"].as_str()), (StatusCode::OK, Some("succeeded")), "{op}");
    let (status, again) = raw_broker(&app, "PUT", &binding_path, Some(&bind)).await;
    assert_eq!((status, &again["credentials"]), (StatusCode::OK, creds), "{again}");

    let root = app.data.parent().unwrap().to_path_buf();
    let before = folders(&root);
    let instances = app.state().store.list_instances().await.unwrap().len();
    let long = "a".repeat(65);
    for bad in ["..%2F..%2Fevil", "a%2Fb", &long, ".", "..", "%0a", "x%0Aport%206380", "%C3%A9", "a%20b"] {
        let instance_routes = [
            ("PUT", format!("/v2/service_instances/{bad}?accepts_incomplete=true"), Some(&provision)),
            ("DELETE", format!("/v2/service_instances/{bad}?accepts_incomplete=true&{offering}"), None),
            ("GET", format!("/v2/service_instances/{bad}/last_operation"), None),
            ("PUT", format!("/v2/service_instances/{bad}/service_bindings/b2"), Some(&bind)),
            ("DELETE", format!("/v2/service_instances/{bad}/service_bindings/b1?{offering}"), None),
            ("PUT", format!("/v2/service_instances/{id}/service_bindings/{bad}"), Some(&bind)),
            ("DELETE", format!("/v2/service_instances/{id}/service_bindings/{bad}?{offering}"), None),
        ];
        for (method, target, body) in instance_routes {
            let (status, res) = raw_broker(&app, method, &target, body).await;
            assert_bad_request(status, &res, &format!("{method} {target}"));
            assert!(res["description"].as_str().unwrap().contains("1 to 64 ASCII letters"), "{target}: {res}");
        }
    }
    assert_eq!(folders(&root), before, "a refused request made a folder");
    assert_eq!(app.state().store.list_instances().await.unwrap().len(), instances);
    let instance = app.state().store.instance_by_guid(&id).await.unwrap();
    assert_eq!(app.state().store.bindings(instance.id).await.unwrap().len(), 1);
    assert_untouched(&app, &id, creds, "b1").await;
}

#[tokio::test]
async fn requests_without_the_fields_the_spec_requires_change_nothing() {
    let app = TestApp::start().await;
    let id = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let bind = json!({"service_id": REDIS_SERVICE, "plan_id": REDIS_PLAN});
    let binding_path = format!("/v2/service_instances/{id}/service_bindings/b1");
    let (status, bound) = app.broker(Method::PUT, &binding_path, Some(bind)).await;
    assert_eq!(status, StatusCode::CREATED, "{bound}");
    let creds = &bound["credentials"];
    let root = app.data.parent().unwrap().to_path_buf();
    let before = folders(&root);

    // Provisioning: service, plan, organisation and space, none blank.
    let context = json!({"platform": "cloudfoundry", "organization_guid": "org-a", "space_guid": "space-1"});
    let full = json!({"service_id": REDIS_SERVICE, "plan_id": REDIS_PLAN, "organization_guid": "org-a",
                      "space_guid": "space-1", "context": context});
    let variants: [(&str, &str, Option<Value>); 8] = [
        ("organization_guid", "organization_guid", Some(json!(""))),
        ("organization_guid", "organization_guid", Some(json!("  "))),
        ("organization_guid", "organization_guid", None),
        ("space_guid", "space_guid", Some(json!(""))),
        ("space_guid", "space_guid", None),
        ("service_id", "service_id", Some(json!(""))),
        ("plan_id", "plan_id", Some(json!(""))),
        ("plan_id", "plan_id", None),
    ];
    for (field, named, value) in variants {
        let mut body = full.clone();
        match value {
            Some(v) => body[field] = v,
            None => {
                body.as_object_mut().unwrap().remove(field);
            }
        }
        let (status, res) =
            app.broker(Method::PUT, "/v2/service_instances/n1?accepts_incomplete=true", Some(body.clone())).await;
        assert_bad_request(status, &res, &body.to_string());
        assert!(res["description"].as_str().unwrap().contains(named), "{body}: {res}");
    }
    // Neither organisation nor space, only a context.
    let bare = json!({"service_id": REDIS_SERVICE, "plan_id": REDIS_PLAN, "context": context});
    let (status, res) = app.broker(Method::PUT, "/v2/service_instances/n1?accepts_incomplete=true", Some(bare)).await;
    assert_bad_request(status, &res, "context only");
    assert!(matches!(app.state().store.instance_by_guid("n1").await, Err(store::StoreError::NotFound)));
    assert_eq!(folders(&root), before, "a refused provision made a folder");

    // Deprovisioning and unbinding: service and plan, given and the instance's.
    let wrong = [
        format!("service_id=&plan_id={REDIS_PLAN}"),
        format!("service_id={REDIS_SERVICE}&plan_id="),
        format!("plan_id={REDIS_PLAN}"),
        format!("service_id={REDIS_SERVICE}"),
        format!("service_id={PG_SERVICE}&plan_id={PG_PLAN}"),
        format!("service_id={REDIS_SERVICE}&plan_id={PG_PLAN}"),
        format!("service_id={PG_SERVICE}&plan_id={REDIS_PLAN}"),
    ];
    for query in &wrong {
        let path = format!("/v2/service_instances/{id}?accepts_incomplete=true&{query}");
        let (status, res) = app.broker(Method::DELETE, &path, None).await;
        assert_bad_request(status, &res, &path);
        let path = format!("{binding_path}?{query}");
        let (status, res) = app.broker(Method::DELETE, &path, None).await;
        assert_bad_request(status, &res, &path);
    }
    // last_operation: each parameter optional, none blank, service and plan the instance's.
    for query in [
        "service_id=".to_owned(),
        "plan_id=".to_owned(),
        "operation=".to_owned(),
        format!("service_id={PG_SERVICE}"),
        format!("plan_id={PG_PLAN}"),
    ] {
        let path = format!("/v2/service_instances/{id}/last_operation?{query}");
        let (status, res) = app.broker(Method::GET, &path, None).await;
        assert_bad_request(status, &res, &path);
    }
    let path = format!("/v2/service_instances/{id}/last_operation?service_id={REDIS_SERVICE}&plan_id={REDIS_PLAN}");
    assert_eq!(app.broker(Method::GET, &path, None).await.1["state"], "succeeded");
    // Binding: service and plan, the instance's.
    for body in [
        json!({"service_id": "", "plan_id": REDIS_PLAN}),
        json!({"service_id": REDIS_SERVICE, "plan_id": ""}),
        json!({"service_id": PG_SERVICE, "plan_id": PG_PLAN}),
        json!({"plan_id": REDIS_PLAN}),
    ] {
        let path = format!("/v2/service_instances/{id}/service_bindings/b2");
        let (status, res) = app.broker(Method::PUT, &path, Some(body.clone())).await;
        assert_bad_request(status, &res, &body.to_string());
    }

    let instance = app.state().store.instance_by_guid(&id).await.unwrap();
    assert_eq!(app.state().store.bindings(instance.id).await.unwrap().len(), 1);
    assert_eq!(
        app.state().store.last_lifecycle_job(instance.id).await.unwrap().unwrap().kind,
        store::JobKind::Provision
    );
    assert_untouched(&app, &id, creds, "b1").await;
    assert_eq!(folders(&root), before);
}
