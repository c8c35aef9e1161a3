//! The Open Service Broker API against real engines.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

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
    assert_eq!(names, ["postgresql", "redis"]);
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
    let same = json!({"service_id": REDIS_SERVICE, "plan_id": REDIS_PLAN, "context": {"organization_guid": "org-a", "space_guid": "space-1"}});
    let (status, res) =
        app.broker(Method::PUT, &format!("/v2/service_instances/{id}?accepts_incomplete=true"), Some(same)).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    let other = json!({"service_id": PG_SERVICE, "plan_id": PG_PLAN, "context": {"organization_guid": "org-a", "space_guid": "space-1"}});
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

    let (status, _) = app
        .broker(Method::DELETE, &format!("{binding_path}?service_id={REDIS_SERVICE}&plan_id={REDIS_PLAN}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let refused = redis::Client::open(creds["uri"].as_str().unwrap()).unwrap().get_multiplexed_async_connection().await;
    assert!(refused.is_err(), "an unbound user can still log in");
    let (status, _) = app.broker(Method::DELETE, &binding_path, None).await;
    assert_eq!(status, StatusCode::GONE);

    // Deprovisioning removes processes and data and keeps backups.
    let backup = app.create_backup(&id).await;
    app.wait_finished(&format!("/v1/instances/{id}/backups/{backup}")).await;
    let local_name = app.state().store.instance_by_guid(&id).await.unwrap().local_name;
    let node_dir = app.data.join("instances").join(&local_name);
    assert!(node_dir.exists());
    let (status, _) = app.broker(Method::DELETE, &format!("/v2/service_instances/{id}"), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, res) =
        app.broker(Method::DELETE, &format!("/v2/service_instances/{id}?accepts_incomplete=true"), None).await;
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
    let (status, _) =
        app.broker(Method::DELETE, &format!("/v2/service_instances/{id}?accepts_incomplete=true"), None).await;
    assert_eq!(status, StatusCode::GONE);
    let (status, list) = app.api(Method::GET, &format!("/v1/instances/{id}/backups")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["status"], "done");
}
