//! Disaster recovery: an instance's backups, made with its personal key, are
//! restored into another instance of the same service, also after the origin
//! was deprovisioned; a wrong key, an unknown guid or another service's backups
//! leave the destination untouched.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const KEY: &str = "the key the origin's backups are encrypted with";

async fn post(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    app.api_as(&app.token, Method::POST, path, Some(&body.to_string())).await
}

#[tokio::test]
async fn backups_of_a_lost_instance_restore_into_another() {
    let app = TestApp::start().await;
    let origin = app.provision(PG_SERVICE, PG_PLAN, "org-a").await;
    let creds = app.bind(&origin, PG_SERVICE, PG_PLAN).await;
    let mut conn = pg(&creds).await;
    sqlx::raw_sql("CREATE TABLE ledger (id int primary key, amount int); INSERT INTO ledger SELECT g, g * 10 FROM generate_series(1, 500) g;")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    // A backup before the key cannot serve: it is not encrypted with it.
    let early = app.create_backup(&origin).await;
    app.wait_finished(&format!("/v1/instances/{origin}/backups/{early}")).await;

    let (status, prepared) =
        post(&app, &format!("/v1/instances/{origin}/disaster-recovery/prepare"), json!({"encryption_key": KEY})).await;
    assert_eq!(status, StatusCode::OK, "{prepared}");
    let backup_guid = prepared["backup_guid"].as_str().unwrap().to_owned();
    // Without a body, prepare only tells the guid.
    let (status, bare) =
        app.api_as(&app.token, Method::POST, &format!("/v1/instances/{origin}/disaster-recovery/prepare"), None).await;
    assert_eq!((status, bare["backup_guid"].as_str()), (StatusCode::OK, Some(backup_guid.as_str())), "{bare}");
    let (status, body) =
        post(&app, &format!("/v1/instances/{origin}/disaster-recovery/prepare"), json!({"encryption_key": "short"}))
            .await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidBackupsConfig")));
    let backup = app.create_backup(&origin).await;
    let done = app.wait_finished(&format!("/v1/instances/{origin}/backups/{backup}")).await;
    assert_eq!(done["downloadable"], true, "prepare set the personal key: {done}");

    // The origin is lost.
    app.deprovision(&origin, PG_SERVICE, PG_PLAN).await;

    let destination = app.provision(PG_SERVICE, PG_PLAN, "org-a").await;
    let dest_creds = app.bind(&destination, PG_SERVICE, PG_PLAN).await;
    let mut conn = pg(&dest_creds).await;
    sqlx::raw_sql("CREATE TABLE keepme (x int); INSERT INTO keepme VALUES (1);").execute(&mut conn).await.unwrap();
    drop(conn);
    let perform = format!("/v1/instances/{destination}/disaster-recovery/perform");

    // Bad requests restore nothing.
    let redis = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    for (path, body, status, error) in [
        (
            &perform,
            json!({"backup_guid": backup_guid, "encryption_key": "a wrong but long key"}),
            StatusCode::BAD_REQUEST,
            "NoBackupForKey",
        ),
        (
            &perform,
            json!({"backup_guid": "8f6e0b7a-0000-4000-8000-000000000000", "encryption_key": KEY}),
            StatusCode::NOT_FOUND,
            "NotFound",
        ),
        (&perform, json!({"backup_guid": backup_guid}), StatusCode::BAD_REQUEST, "BadRequest"),
        (
            &format!("/v1/instances/{redis}/disaster-recovery/perform"),
            json!({"backup_guid": backup_guid, "encryption_key": KEY}),
            StatusCode::CONFLICT,
            "ServiceMismatch",
        ),
    ] {
        let (got, answer) = post(&app, path, body.clone()).await;
        assert_eq!((got, answer["error"].as_str()), (status, Some(error)), "{body}: {answer}");
        assert!(!answer.to_string().contains(KEY), "the key is not echoed");
    }
    let (_, restores) = app.api(Method::GET, &format!("/v1/instances/{destination}/restores")).await;
    assert_eq!(restores, Value::Array(vec![]), "nothing was queued");
    let kept: i64 = pg_value_eventually(&dest_creds, "SELECT count(*) FROM keepme").await;
    assert_eq!(kept, 1, "the destination is untouched");

    // Another tenant's user cannot use it.
    let mallory = user_token(app.state(), "mallory", "org-b").await;
    let body = json!({"backup_guid": backup_guid, "encryption_key": KEY}).to_string();
    assert_eq!(app.api_as(&mallory, Method::POST, &perform, Some(&body)).await.0, StatusCode::FORBIDDEN);

    let (status, performed) = post(&app, &perform, json!({"backup_guid": backup_guid, "encryption_key": KEY})).await;
    assert_eq!(status, StatusCode::OK, "{performed}");
    assert_eq!(performed, json!({"restore_id": 1}));
    let finished = app.wait_done(&format!("/v1/instances/{destination}/restores/1")).await;
    assert_eq!(finished["backup_id"], backup, "the origin's newest backup made with the key");
    let total: i64 = pg_value_eventually(&dest_creds, "SELECT sum(amount)::bigint FROM ledger").await;
    assert_eq!(total, (1..=500).map(|g| g * 10).sum::<i64>());
}
