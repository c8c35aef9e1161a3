//! Scheduled backups, driven with the time the test chooses
//! (`schedule::tick(state, cron, now)`) rather than by waiting for 01:30.

use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

async fn backups(app: &TestApp, id: &str) -> usize {
    let (status, list) = app.api(Method::GET, &format!("/v1/instances/{id}/backups")).await;
    assert_eq!(status, StatusCode::OK);
    list.as_array().unwrap().len()
}

#[tokio::test]
async fn instances_are_backed_up_once_per_slot_at_their_own_offset() {
    let dir = data_dir();
    let mut config = config(dir.path());
    config.backups.schedule_spread_secs = 3600;
    let app = TestApp::start_in(dir.path(), config).await;
    let state = app.state();
    let cron = server::schedule::parse("30 1 * * *").unwrap();
    let a = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let b = app.provision(REDIS_SERVICE, REDIS_PLAN, "org-a").await;
    let off = json!({"exclude_from_auto_backup": true}).to_string();
    let (status, _) =
        app.api_as(&app.token, Method::PATCH, &format!("/v1/instances/{b}/backups-config"), Some(&off)).await;
    assert_eq!(status, StatusCode::OK);

    // Slots from before the instances existed are not owed to them.
    let now = Utc::now();
    assert!(server::schedule::tick(state, &cron, now).await.unwrap().is_empty());

    // A's next backup: its offset after a slot. When the test runs inside a slot's
    // spread (01:30–02:30 here) and A's moment in it is still ahead, that slot is
    // the one (A existed before its moment); else the next slot.
    let offset = Duration::seconds(server::schedule::offset_secs(&a, 3600));
    let mut slot = cron.find_next_occurrence(&(now - Duration::hours(1)), false).unwrap();
    if slot + offset <= now {
        slot = cron.find_next_occurrence(&slot, false).unwrap();
    }
    // A starts at its own offset, not before; B is opted out.
    let before = slot + offset - Duration::seconds(1);
    assert!(server::schedule::tick(state, &cron, before).await.unwrap().is_empty(), "before A's offset");
    assert_eq!(server::schedule::tick(state, &cron, slot + offset).await.unwrap(), std::slice::from_ref(&a));
    app.wait_finished(&format!("/v1/instances/{a}/backups/1")).await;
    // Once per slot.
    assert!(server::schedule::tick(state, &cron, slot + Duration::minutes(61)).await.unwrap().is_empty());

    // svcdash was down for three days: the missed slots make one backup, not three.
    let later = slot + Duration::days(3) + Duration::minutes(61);
    assert_eq!(server::schedule::tick(state, &cron, later).await.unwrap(), std::slice::from_ref(&a));
    assert!(server::schedule::tick(state, &cron, later).await.unwrap().is_empty());
    app.wait_done(&format!("/v1/instances/{a}/backups/2")).await;
    assert_eq!((backups(&app, &a).await, backups(&app, &b).await), (2, 0));

    let (_, log) = app.api(Method::GET, &format!("/v1/instances/{a}/audit")).await;
    let scheduled =
        log.as_array().unwrap().iter().filter(|e| e["actor"] == "schedule" && e["action"] == "backup.create").count();
    assert_eq!(scheduled, 2);
}
