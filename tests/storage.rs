//! The storage conformance suite: the same checks against SQLite and
//! PostgreSQL. Each test makes its own database and drops it.

mod support;

use murmur::storage::{ApiKeyRow, AppRow, Store, StoreError, TeammateRow};
use support::{Backend, TestDb};

fn teammate(id: &str, email: &str, owner: bool) -> TeammateRow {
    TeammateRow {
        id: id.into(),
        name: format!("Name {id}"),
        email: email.into(),
        password_hash: "$argon2id$fake".into(),
        is_owner: owner,
        created_at: 1_000,
    }
}

fn app(id: &str, created_at: i64) -> AppRow {
    AppRow { id: id.into(), name: format!("App {id}"), identity_secret_enc: vec![1, 2, 3, 0, 255], created_at }
}

fn key(id: &str, app_id: &str, created_at: i64) -> ApiKeyRow {
    ApiKeyRow {
        id: id.into(),
        app_id: app_id.into(),
        name: "backend".into(),
        secret_enc: vec![9; 40],
        created_at,
        revoked_at: None,
    }
}

async fn teammates_and_owner(s: &Store) {
    assert_eq!(s.count_teammates().await.unwrap(), 0);
    assert!(s.owner().await.unwrap().is_none());
    s.insert_teammate(&teammate("t1", "owner@x.io", true), None).await.unwrap();
    assert_eq!(s.count_teammates().await.unwrap(), 1);
    assert_eq!(s.owner().await.unwrap().unwrap().id, "t1");
    // A second owner is refused by the unique index, whatever its email.
    assert!(matches!(s.insert_teammate(&teammate("t2", "other@x.io", true), None).await, Err(StoreError::Duplicate)));
    // A duplicate email is refused.
    assert!(matches!(s.insert_teammate(&teammate("t3", "owner@x.io", false), None).await, Err(StoreError::Duplicate)));
    assert_eq!(s.count_teammates().await.unwrap(), 1);
    let t = s.teammate_by_email("owner@x.io").await.unwrap().unwrap();
    assert!(t.is_owner);
    assert_eq!(t.name, "Name t1");
    assert!(s.teammate_by_email("nobody@x.io").await.unwrap().is_none());
    assert_eq!(s.teammate_by_id("t1").await.unwrap().unwrap().email, "owner@x.io");
    // The owner cannot be deleted; others can.
    assert!(!s.delete_teammate("t1").await.unwrap());
    s.insert_teammate(&teammate("t4", "four@x.io", false), None).await.unwrap();
    assert!(s.delete_teammate("t4").await.unwrap());
    assert!(!s.delete_teammate("t4").await.unwrap());
}

async fn a_failed_membership_leaves_no_teammate(s: &Store) {
    // Membership of an app that does not exist fails the foreign key; the
    // teammate row must not be left behind (one transaction).
    let r = s.insert_teammate(&teammate("t9", "nine@x.io", false), Some("missing-app")).await;
    assert!(r.is_err());
    assert!(s.teammate_by_id("t9").await.unwrap().is_none());
}

async fn sessions(s: &Store) {
    s.insert_teammate(&teammate("t1", "a@x.io", false), None).await.unwrap();
    s.insert_session("h1", "t1", 100, 200).await.unwrap();
    s.insert_session("h2", "t1", 100, 150).await.unwrap();
    assert_eq!(s.session_teammate("h1", 120).await.unwrap().unwrap().id, "t1");
    assert!(s.session_teammate("h2", 150).await.unwrap().is_none(), "expired at expires_at");
    assert!(s.session_teammate("nope", 120).await.unwrap().is_none());
    assert_eq!(s.delete_expired_sessions(150).await.unwrap(), 1);
    s.delete_session("h1").await.unwrap();
    assert!(s.session_teammate("h1", 120).await.unwrap().is_none());
    // Deleting a teammate ends their sessions.
    s.insert_session("h3", "t1", 100, 900).await.unwrap();
    assert!(s.delete_teammate("t1").await.unwrap());
    assert!(s.session_teammate("h3", 120).await.unwrap().is_none());
}

async fn throttle(s: &Store) {
    let keys = vec!["account:a@x.io".to_string(), "address:1.2.3.4".to_string()];
    assert!(s.throttle_rows(&keys).await.unwrap().is_empty());
    s.throttle_fail("account:a@x.io", 1_000, 0).await.unwrap();
    s.throttle_fail("account:a@x.io", 2_000, 0).await.unwrap();
    s.throttle_fail("address:1.2.3.4", 2_000, 0).await.unwrap();
    let rows = s.throttle_rows(&keys).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].failures, rows[0].last_failure_at), (2, 2_000));
    assert_eq!(rows[1].failures, 1);
    // A count older than the forget horizon starts again.
    s.throttle_fail("account:a@x.io", 10_000, 5_000).await.unwrap();
    assert_eq!(s.throttle_rows(&keys[..1]).await.unwrap()[0].failures, 1);
    s.throttle_clear("account:a@x.io").await.unwrap();
    assert_eq!(s.throttle_rows(&keys).await.unwrap().len(), 1);
}

async fn apps_and_membership(s: &Store) {
    s.insert_teammate(&teammate("t1", "a@x.io", true), None).await.unwrap();
    s.insert_teammate(&teammate("t2", "b@x.io", false), None).await.unwrap();
    s.insert_app(&app("app1", 10), &["t1", "t2"]).await.unwrap();
    s.insert_app(&app("app2", 20), &["t1"]).await.unwrap();
    let ids = |v: Vec<AppRow>| v.into_iter().map(|a| a.id).collect::<Vec<_>>();
    assert_eq!(ids(s.apps_of("t1").await.unwrap()), ["app1", "app2"]);
    assert_eq!(ids(s.apps_of("t2").await.unwrap()), ["app1"]);
    assert!(s.app_of("app2", "t2").await.unwrap().is_none(), "not a member");
    let a = s.app_of("app1", "t2").await.unwrap().unwrap();
    assert_eq!(a.identity_secret_enc, vec![1, 2, 3, 0, 255]);
    s.add_member("app2", "t2").await.unwrap();
    s.add_member("app2", "t2").await.unwrap();
    assert_eq!(ids(s.apps_of("t2").await.unwrap()), ["app1", "app2"]);
    assert!(s.set_identity_secret("app2", &[7, 7]).await.unwrap());
    assert_eq!(s.app_of("app2", "t1").await.unwrap().unwrap().identity_secret_enc, vec![7, 7]);
    let team: Vec<_> = s.app_teammates("app1").await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(team, ["t1", "t2"], "owner first");
    // Removing a teammate removes their memberships.
    assert!(s.delete_teammate("t2").await.unwrap());
    assert_eq!(s.app_teammates("app1").await.unwrap().len(), 1);
}

async fn api_keys(s: &Store) {
    s.insert_teammate(&teammate("t1", "a@x.io", true), None).await.unwrap();
    s.insert_app(&app("app1", 10), &["t1"]).await.unwrap();
    s.insert_app(&app("app2", 20), &["t1"]).await.unwrap();
    s.insert_api_key(&key("k1", "app1", 100)).await.unwrap();
    s.insert_api_key(&key("k2", "app1", 200)).await.unwrap();
    s.insert_api_key(&key("k3", "app2", 300)).await.unwrap();
    assert!(matches!(s.insert_api_key(&key("k1", "app1", 400)).await, Err(StoreError::Duplicate)));
    let listed: Vec<_> = s.api_keys("app1").await.unwrap().into_iter().map(|k| k.id).collect();
    assert_eq!(listed, ["k2", "k1"], "newest first, only this app's");
    // A key can only be revoked through its own app.
    assert!(!s.revoke_api_key("app2", "k1", 500).await.unwrap());
    assert!(s.revoke_api_key("app1", "k1", 500).await.unwrap());
    assert!(!s.revoke_api_key("app1", "k1", 600).await.unwrap(), "already revoked");
    let k1 = s.api_key("k1").await.unwrap().unwrap();
    assert_eq!((k1.app_id.as_str(), k1.revoked_at), ("app1", Some(500)));
    assert_eq!(k1.secret_enc, vec![9; 40]);
    assert!(s.api_key("k9").await.unwrap().is_none());
}

async fn migrations_are_idempotent(s: &Store) {
    s.migrate().await.unwrap();
    s.ping().await.unwrap();
}

/// Runs one check on a fresh database of each backend.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = super::TestDb::new(super::Backend::Sqlite).await.unwrap();
                    super::$name(&db.store().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(db) = super::TestDb::new(super::Backend::Postgres).await else { return };
                    let store = db.store().await;
                    super::$name(&store).await;
                    store.close().await;
                }
            )*
        }
    };
}

conformance!(
    teammates_and_owner,
    a_failed_membership_leaves_no_teammate,
    sessions,
    throttle,
    apps_and_membership,
    api_keys,
    migrations_are_idempotent
);
