//! API tokens and the sessions made from them, against the SQLite store.

use chrono::{Duration, Utc};
use store::*;

fn limits() -> SessionLimits {
    SessionLimits { active_since: Utc::now() - Duration::hours(1), created_since: Utc::now() - Duration::hours(12) }
}

fn session(n: u32, bearer: Option<SessionBearer>) -> NewSession {
    NewSession {
        token_hash: format!("cookie-{n}"),
        subject: "local:alice".into(),
        user_name: "alice".into(),
        csrf_token: "csrf".into(),
        claims: "{}".into(),
        sealed_tokens: None,
        bearer,
    }
}

fn made_from(token: &Token, hash: &str) -> Option<SessionBearer> {
    Some(SessionBearer { hash: hash.into(), token_id: Some(token.id), expires_at: token.expires_at, max_sessions: 3 })
}

#[tokio::test]
async fn expired_tokens_identify_nobody_and_listing_shows_them() {
    let store = SqliteStore::temporary().await.unwrap();
    let alice = store.create_user("alice").await.unwrap();
    let bob = store.create_user("bob").await.unwrap();
    let live = store.create_token(alice.id, "live", Some(Utc::now() + Duration::hours(1))).await.unwrap();
    let expired = store.create_token(alice.id, "expired", Some(Utc::now() - Duration::seconds(1))).await.unwrap();
    let forever = store.create_token(bob.id, "forever", None).await.unwrap();

    let (token, user, _) = store.token_by_hash("live").await.unwrap();
    assert_eq!((token, user.name), (live.clone(), "alice".to_owned()));
    assert_eq!(store.token_by_hash("forever").await.unwrap().0, forever);
    assert!(matches!(store.token_by_hash("expired").await, Err(StoreError::NotFound)));

    assert_eq!(store.list_tokens(None).await.unwrap(), [live.clone(), expired.clone(), forever.clone()]);
    assert_eq!(store.list_tokens(Some(alice.id)).await.unwrap(), [live, expired]);
    assert_eq!(store.list_tokens(Some(bob.id)).await.unwrap()[0].user_name, "bob");
}

#[tokio::test]
async fn revoking_a_token_ends_its_sessions_and_no_others() {
    let store = SqliteStore::temporary().await.unwrap();
    let alice = store.create_user("alice").await.unwrap();
    let a = store.create_token(alice.id, "a", None).await.unwrap();
    let b = store.create_token(alice.id, "b", None).await.unwrap();
    store.create_session(session(1, made_from(&a, "a"))).await.unwrap();
    store.create_session(session(2, made_from(&b, "b"))).await.unwrap();
    store.create_session(session(3, None)).await.unwrap();

    assert_eq!(store.revoke_token(a.id).await.unwrap(), Revoked { tokens: 1, sessions: 1 });
    assert!(matches!(store.token_by_hash("a").await, Err(StoreError::NotFound)));
    assert!(matches!(store.session_by_token_hash("cookie-1", limits()).await, Err(StoreError::NotFound)));
    assert!(store.session_by_token_hash("cookie-2", limits()).await.is_ok());
    assert!(store.session_by_token_hash("cookie-3", limits()).await.is_ok());
    assert!(matches!(store.revoke_token(a.id).await, Err(StoreError::NotFound)));

    assert_eq!(store.revoke_user_tokens(alice.id).await.unwrap(), Revoked { tokens: 1, sessions: 1 });
    assert!(store.list_tokens(None).await.unwrap().is_empty());
    assert!(store.session_by_token_hash("cookie-3", limits()).await.is_ok(), "the login page's session stays");
}

#[tokio::test]
async fn a_token_holds_a_bounded_number_of_sessions_and_none_outlives_it() {
    let store = SqliteStore::temporary().await.unwrap();
    let alice = store.create_user("alice").await.unwrap();
    let soon = store.create_token(alice.id, "soon", Some(Utc::now() + Duration::milliseconds(300))).await.unwrap();
    for n in 1..=5 {
        store.create_session(session(n, made_from(&soon, "soon"))).await.unwrap();
    }
    let live = |n: u32| {
        let store = &store;
        async move { store.session_by_token_hash(&format!("cookie-{n}"), limits()).await.is_ok() }
    };
    // The newest three stay.
    assert_eq!(
        [live(1).await, live(2).await, live(3).await, live(4).await, live(5).await],
        [false, false, true, true, true]
    );
    assert_eq!(store.session_by_token_hash("cookie-5", limits()).await.unwrap().token_id, Some(soon.id));

    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert!(!live(5).await, "the token expired, and its sessions with it");
    assert_eq!(store.delete_stale_sessions(limits()).await.unwrap(), 3);
}

#[tokio::test]
async fn sessions_end_when_idle_or_too_old() {
    let store = SqliteStore::temporary().await.unwrap();
    store.create_session(session(1, None)).await.unwrap();
    let after = Utc::now() + Duration::seconds(1);
    let idle = SessionLimits { active_since: after, created_since: Utc::now() - Duration::hours(1) };
    let old = SessionLimits { active_since: Utc::now() - Duration::hours(1), created_since: after };
    assert!(matches!(store.session_by_token_hash("cookie-1", idle).await, Err(StoreError::NotFound)));
    assert!(matches!(store.session_by_token_hash("cookie-1", old).await, Err(StoreError::NotFound)));
    assert!(store.session_by_token_hash("cookie-1", limits()).await.is_ok());
    assert_eq!(store.delete_stale_sessions(limits()).await.unwrap(), 0);
    assert_eq!(store.delete_stale_sessions(old).await.unwrap(), 1);
}

#[tokio::test]
async fn revoking_a_tenant_removes_its_subtenant_grants_too() {
    let store = SqliteStore::temporary().await.unwrap();
    let bob = store.create_user("bob").await.unwrap();
    store.grant(bob.id, "org-a", None, Role::Read).await.unwrap();
    store.grant(bob.id, "org-a", Some("s1"), Role::Manage).await.unwrap();
    store.grant(bob.id, "org-a", Some("s2"), Role::Manage).await.unwrap();
    store.grant(bob.id, "org-b", None, Role::Manage).await.unwrap();

    assert_eq!(store.revoke_grants(bob.id, "org-a", Some("s1")).await.unwrap(), 1);
    assert_eq!(store.revoke_grants(bob.id, "org-a", Some("s1")).await.unwrap(), 0);
    assert_eq!(store.revoke_grants(bob.id, "org-a", None).await.unwrap(), 2);
    let left: Vec<String> = store.grants(bob.id).await.unwrap().into_iter().map(|g| g.tenant_id).collect();
    assert_eq!(left, ["org-b"]);
}

#[tokio::test]
async fn a_token_brings_its_users_grants_in_order_and_none_of_anyone_elses() {
    let store = SqliteStore::temporary().await.unwrap();
    let alice = store.create_user("alice").await.unwrap();
    let bob = store.create_user("bob").await.unwrap();
    store.create_token(alice.id, "alice-token", None).await.unwrap();
    store.create_token(bob.id, "bob-token", None).await.unwrap();
    store.grant(bob.id, "org-b", Some("s1"), Role::Manage).await.unwrap();
    store.grant(bob.id, "org-a", None, Role::Read).await.unwrap();
    store.grant(alice.id, "org-c", None, Role::Manage).await.unwrap();

    let (_, user, grants) = store.token_by_hash("bob-token").await.unwrap();
    assert_eq!(user.name, "bob");
    assert_eq!(grants, store.grants(bob.id).await.unwrap());
    let tenants: Vec<(&str, Option<&str>, Role)> =
        grants.iter().map(|g| (g.tenant_id.as_str(), g.subtenant_id.as_deref(), g.role)).collect();
    assert_eq!(tenants, [("org-b", Some("s1"), Role::Manage), ("org-a", None, Role::Read)]);

    store.revoke_grants(alice.id, "org-c", None).await.unwrap();
    assert_eq!(store.token_by_hash("alice-token").await.unwrap().2, []);
}
